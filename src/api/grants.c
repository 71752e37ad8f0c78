/* api/grants.c — grants of datasets to connected systems over HTTP, for administrators
 * (CONTRACT §3: a consumer reads the datasets it is granted): GET /api/v1/grants[?system=C],
 * POST /api/v1/grants {"system","dataset"}, DELETE /api/v1/grants/{system}/{dataset}. The same
 * store operations as `dtm grant` (cli/grant.c); a change and its audit entry (grant.added,
 * grant.revoked; S3) are written together by the writer thread, the only one that writes. */
#include "api/api.h"
#include "audit/audit.h"
#include "ingest/ingest.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- GET */

struct list_ctx {
    struct dtm_buf *b;
    int n;
};

static int list_one(void *ctx, const struct dtm_grant *g)
{
    struct list_ctx *x = ctx;
    char ts[40];
    dtm_time_fmt(g->granted_at, ts, sizeof(ts));
    dtm_buf_addc(x->b, x->n++ ? ",{\"system\":" : "{\"system\":");
    dtm_buf_json_strc(x->b, g->system_code);
    dtm_buf_addc(x->b, ",\"dataset\":");
    dtm_buf_json_strc(x->b, g->dataset);
    dtm_buf_printf(x->b, ",\"granted_at\":\"%s\"}", ts);
    return x->b->err;
}

int dtm_api_grants_list(struct dtm_req *r)
{
    const char *code = dtm_http_query(r, "system");
    struct dtm_store *st = dtm_http_store(r);
    struct dtm_system sys;
    struct dtm_buf b;
    struct list_ctx x;
    int rc;
    if (!st)
        return DTM_ESTORE;
    if (code && strlen(code) >= DTM_CODE_MAX)
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "The parameter system is too long.");
    if (code && (rc = st->ops->system_get(st, code, &sys)) != DTM_OK) {
        if (rc != DTM_ENOTFOUND)
            return rc;
        return dtm_http_problem(r, 404, "unknown_system", "Not found",
                                "There is no system %s (parameter system).", code);
    }
    dtm_buf_init(&b, 64 << 20);
    x = (struct list_ctx){&b, 0};
    dtm_buf_addc(&b, "{\"grants\":[");
    rc = st->ops->grant_list(st, code, list_one, &x);
    dtm_buf_addc(&b, "]}");
    if (rc == DTM_OK)
        rc = dtm_http_json(r, 200, &b);
    dtm_buf_free(&b);
    return rc;
}

/* ---- changes, through the writer */

struct change {
    struct dtm_write_job job;
    struct dtm_req *r;
    bool add;
    const uint8_t *audit_key;
    char system[DTM_CODE_MAX];
    char dataset[DTM_CODE_MAX];
    char role[16];
    char actor[128];
    char ip[64];
    int64_t now;
    int outcome; /* DTM_OK changed; DTM_EEXIST already granted; DTM_ENOTFOUND not granted */
};

static int change_txn(struct dtm_write_job *j, struct dtm_store *st)
{
    struct change *c = (struct change *)(void *)j;
    struct dtm_buf d;
    int rc = c->add ? st->ops->grant_put(st, c->system, c->dataset, c->now)
                    : st->ops->grant_delete(st, c->system, c->dataset);
    c->outcome = rc;
    if (rc == DTM_EEXIST || rc == DTM_ENOTFOUND)
        return DTM_OK; /* nothing changed, nothing to record; the group commits on */
    if (rc)
        return rc;
    /* the same entry as `dtm grant`, by a person */
    dtm_buf_init(&d, DTM_AUDIT_DETAIL_MAX - 1);
    dtm_buf_addc(&d, "{\"dataset\":");
    dtm_buf_json_strc(&d, c->dataset);
    dtm_buf_addc(&d, ",\"role\":");
    dtm_buf_json_strc(&d, c->role);
    dtm_buf_addch(&d, '}');
    rc = d.err
             ? d.err
             : dtm_audit_append(st, c->audit_key,
                                &(struct dtm_audit_event){"user", c->actor,
                                                          c->add ? "grant.added" : "grant.revoked",
                                                          c->system, d.p, c->ip},
                                NULL);
    dtm_buf_free(&d);
    return rc;
}

static void change_done(struct dtm_write_job *j)
{
    dtm_http_resume(((struct change *)(void *)j)->r);
}

static int change_resumed(struct dtm_req *r)
{
    struct change *c = r->async;
    struct dtm_buf b;
    char ts[40];
    int rc;
    if (c->job.rc)
        return dtm_http_error(r, c->job.rc);
    if (!c->add) {
        if (c->outcome == DTM_ENOTFOUND)
            return dtm_http_problem(r, 404, "not_granted", "Not found",
                                    "System %s has no grant of dataset %s.", c->system, c->dataset);
        return dtm_http_reply(r, 204, "application/json", "", 0);
    }
    dtm_time_fmt(c->now, ts, sizeof(ts));
    dtm_buf_init(&b, 4096);
    dtm_buf_addc(&b, "{\"system\":");
    dtm_buf_json_strc(&b, c->system);
    dtm_buf_addc(&b, ",\"dataset\":");
    dtm_buf_json_strc(&b, c->dataset);
    dtm_buf_printf(&b, ",\"created\":%s", c->outcome == DTM_EEXIST ? "false" : "true");
    if (c->outcome != DTM_EEXIST)
        dtm_buf_printf(&b, ",\"granted_at\":\"%s\"", ts);
    dtm_buf_addch(&b, '}');
    rc = dtm_http_json(r, c->outcome == DTM_EEXIST ? 200 : 201, &b);
    dtm_buf_free(&b);
    return rc;
}

/* Checks the system (it must exist) and, for a new grant, the dataset (it must be defined),
 * then hands the change to the writer. */
static int change(struct dtm_req *r, bool add, struct dtm_str system, struct dtm_str dataset)
{
    const struct dtm_server_env *env = dtm_http_env(r);
    struct dtm_store *st = dtm_http_store(r);
    struct dtm_system sys;
    struct change *c;
    int rc;
    if (!st)
        return DTM_ESTORE;
    if (system.n == 0 || system.n >= DTM_CODE_MAX || memchr(system.p, '\0', system.n))
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "The member system must name a connected system (1 to %d "
                                "characters).",
                                DTM_CODE_MAX - 1);
    if (dataset.n == 0 || dataset.n >= DTM_CODE_MAX || memchr(dataset.p, '\0', dataset.n))
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "The member dataset must name a dataset (1 to %d characters).",
                                DTM_CODE_MAX - 1);
    if (!(c = dtm_arena_alloc(&r->arena, sizeof(*c))))
        return DTM_ENOMEM;
    memset(c, 0, sizeof(*c));
    memcpy(c->system, system.p, system.n);
    memcpy(c->dataset, dataset.p, dataset.n);
    if ((rc = st->ops->system_get(st, c->system, &sys)) == DTM_ENOTFOUND)
        return dtm_http_problem(r, add ? 422 : 404, "unknown_system",
                                add ? "Invalid data" : "Not found",
                                "There is no system %s (member system).", c->system);
    if (rc)
        return rc;
    /* a revoke may name a dataset that has left the dictionary since the grant */
    if (add && !dtm_dict_get(env->dict, dataset))
        return dtm_http_problem(r, 422, "unknown_dataset", "Invalid data",
                                "There is no dataset %s (member dataset); GET /api/v1/datasets "
                                "lists them.",
                                c->dataset);
    c->r = r;
    c->add = add;
    c->audit_key = env->keys->audit_key;
    c->now = dtm_now_us();
    snprintf(c->role, sizeof(c->role), "%s", sys.role);
    snprintf(c->actor, sizeof(c->actor), "%s", r->person ? r->user.username : r->sys.code);
    dtm_http_client_ip(r, c->ip, sizeof(c->ip));
    c->job.dataset = "";
    c->job.system_code = "";
    c->job.in_txn = change_txn;
    c->job.done = change_done;
    r->async = c;
    dtm_http_suspend(r, change_resumed);
    if ((rc = dtm_writer_submit(env->writer, &c->job))) {
        c->job.rc = rc;
        dtm_http_resume(r);
    }
    return DTM_HTTP_ASYNC;
}

int dtm_api_grant_post(struct dtm_req *r)
{
    struct dtm_str ct = dtm_str_trim(dtm_http_header(r, "Content-Type"));
    cJSON *doc, *sys, *ds;
    int rc;
    if (ct.n < 16 || !dtm_str_ieqc((struct dtm_str){ct.p, 16}, "application/json") ||
        (ct.n > 16 && ct.p[16] != ';' && ct.p[16] != ' '))
        return dtm_http_problem(r, 415, "unsupported_media_type", "Unsupported media type",
                                "Send the grant as application/json: {\"system\", \"dataset\"}.");
    doc = cJSON_ParseWithLength(r->body.p ? r->body.p : "", r->body.n);
    if (!doc || !cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        return dtm_http_problem(r, 400, "malformed", "Malformed request",
                                "The body must be a JSON object {\"system\", \"dataset\"}.");
    }
    sys = cJSON_GetObjectItemCaseSensitive(doc, "system");
    ds = cJSON_GetObjectItemCaseSensitive(doc, "dataset");
    if (!cJSON_IsString(sys) || !cJSON_IsString(ds)) {
        cJSON_Delete(doc);
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "The members system and dataset are required, as strings.");
    }
    rc = change(r, true, dtm_str_c(sys->valuestring), dtm_str_c(ds->valuestring));
    cJSON_Delete(doc); /* change() copied what it keeps */
    return rc;
}

int dtm_api_grant_delete(struct dtm_req *r)
{
    return change(r, false, r->params[0], r->params[1]);
}
