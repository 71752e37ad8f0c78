/* api/subscriptions.c — push sharing (F3, CONTRACT §6 "Subscriptions"; share/share.h):
 * POST /api/v1/subscriptions (consumer systems, for a dataset they are granted),
 * GET /api/v1/subscriptions (a system's own; operators and admins see every one, ?system=C),
 * GET and DELETE /api/v1/subscriptions/{id}, GET /api/v1/subscriptions/{id}/deliveries (the
 * delivery log). The secret is sealed under the data keys here, before the writer thread stores
 * the subscription with its audit entry (subscription.created / subscription.deleted, S3); it is
 * never shown again nor logged. */
#include "api/api.h"
#include "audit/audit.h"
#include "ingest/ingest.h"
#include "share/share.h"

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define YEAR_US (INT64_C(366) * 86400 * 1000000)

/* ---- changes, through the writer */

struct change {
    struct dtm_write_job job;
    struct dtm_req *r;
    bool add;
    const uint8_t *audit_key;
    struct dtm_subscription sub;
    char actor_kind[12];
    char actor[128];
    char ip[64];
    int64_t now;
    int outcome;
};

static int change_txn(struct dtm_write_job *j, struct dtm_store *st)
{
    struct change *c = (struct change *)(void *)j;
    struct dtm_buf d;
    int rc = c->add ? st->ops->subscription_put(st, &c->sub)
                    : st->ops->subscription_delete(st, c->sub.id, c->now);
    c->outcome = rc;
    if (rc == DTM_ENOTFOUND || rc == DTM_EEXIST)
        return DTM_OK; /* nothing changed, nothing to record */
    if (rc)
        return rc;
    /* who, which dataset, where to (the URL's host only: a path may carry a token) */
    dtm_buf_init(&d, DTM_AUDIT_DETAIL_MAX - 1);
    dtm_buf_addc(&d, "{\"system\":");
    dtm_buf_json_strc(&d, c->sub.system_code);
    dtm_buf_addc(&d, ",\"dataset\":");
    dtm_buf_json_strc(&d, c->sub.dataset);
    if (c->add) {
        const char *h = strstr(c->sub.url, "://");
        size_t n = h ? strcspn(h + 3, "/?#") : 0;
        dtm_buf_addc(&d, ",\"interval\":");
        dtm_buf_json_strc(&d, c->sub.interval);
        dtm_buf_addc(&d, ",\"host\":");
        dtm_buf_json_str(&d, (struct dtm_str){h ? h + 3 : "", DTM_MIN(n, 255)});
    }
    dtm_buf_addch(&d, '}');
    rc = d.err ? d.err
               : dtm_audit_append(st, c->audit_key,
                                  &(struct dtm_audit_event){c->actor_kind, c->actor,
                                                            c->add ? "subscription.created"
                                                                   : "subscription.deleted",
                                                            c->sub.id, d.p, c->ip},
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
    char *loc;
    int rc;
    if (c->job.rc)
        rc = dtm_http_error(r, c->job.rc);
    else if (!c->add && c->outcome == DTM_ENOTFOUND)
        rc = dtm_http_problem(r, 404, "not_found", "Not found", "There is no subscription %s.",
                              c->sub.id);
    else if (!c->add)
        rc = dtm_http_reply(r, 204, "application/json", "", 0);
    else if (c->outcome == DTM_EEXIST)
        rc = dtm_http_error(r, DTM_ECONFLICT);
    else {
        dtm_buf_init(&b, 64 * 1024);
        dtm_sub_json(&b, &c->sub);
        if ((loc = dtm_arena_alloc(&r->arena, DTM_ID_MAX + 32))) {
            snprintf(loc, DTM_ID_MAX + 32, "/api/v1/subscriptions/%s", c->sub.id);
            dtm_http_add_header(r, "Location", loc);
        }
        rc = b.err ? b.err : dtm_http_json(r, 201, &b);
        dtm_buf_free(&b);
    }
    OPENSSL_cleanse(c->sub.secret, sizeof(c->sub.secret));
    return rc;
}

static int submit(struct dtm_req *r, struct change *c)
{
    const struct dtm_server_env *env = dtm_http_env(r);
    int rc;
    c->r = r;
    c->audit_key = env->keys->audit_key;
    c->now = dtm_now_us();
    snprintf(c->actor_kind, sizeof(c->actor_kind), "%s", r->person ? "user" : "system");
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

/* ---- POST */

static int bad_member(struct dtm_req *r, const char *name, const char *fmt_detail)
{
    return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter", "Parameter '%s': %s", name,
                            fmt_detail);
}

/* `where`: absent or null (none), one condition, or a list of them → a canonical JSON array. */
static int where_of(struct dtm_req *r, cJSON *doc, char *out, size_t outsz)
{
    cJSON *w = cJSON_GetObjectItemCaseSensitive(doc, "where"), *arr, *it;
    char *txt;
    int rc = DTM_OK;
    if (!w || cJSON_IsNull(w)) {
        snprintf(out, outsz, "[]");
        return DTM_OK;
    }
    if (!(arr = cJSON_CreateArray()))
        return DTM_ENOMEM;
    if (cJSON_IsString(w)) {
        cJSON_AddItemToArray(arr, cJSON_CreateString(w->valuestring));
    } else if (cJSON_IsArray(w) && cJSON_GetArraySize(w) <= DTM_STATS_MAX_WHERE) {
        cJSON_ArrayForEach(it, w)
        {
            if (!cJSON_IsString(it)) {
                rc = DTM_EINVAL;
                break;
            }
            cJSON_AddItemToArray(arr, cJSON_CreateString(it->valuestring));
        }
    } else {
        rc = DTM_EINVAL;
    }
    txt = rc ? NULL : cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
    if (rc || !txt || strlen(txt) >= outsz) {
        free(txt);
        return bad_member(r, "where",
                          "a condition FIELD:eq:VALUE or FIELD:in:V1|V2, or a list of at most 8 "
                          "of them (2 KiB in all at most).");
    }
    snprintf(out, outsz, "%s", txt);
    free(txt);
    return DTM_OK;
}

struct counter {
    int64_t n;
};

static int count_one(void *ctx, const struct dtm_subscription *sub)
{
    (void)sub;
    ((struct counter *)ctx)->n++;
    return DTM_OK;
}

int dtm_api_subscription_create(struct dtm_req *r)
{
    const struct dtm_server_env *env = dtm_http_env(r);
    const struct dtm_conf *conf = env->conf;
    struct dtm_store *st = dtm_http_store(r);
    const struct dtm_dataset *ds;
    const char *dataset, *url, *secret, *metrics, *group_by, *interval, *from, *bad_name = NULL;
    struct dtm_query *q = dtm_arena_alloc(&r->arena, sizeof(*q));
    struct dtm_api_scope *sc = dtm_arena_alloc(&r->arena, sizeof(*sc));
    struct change *c = dtm_arena_alloc(&r->arena, sizeof(*c));
    struct dtm_subscription *sub;
    struct dtm_buf sealed;
    struct counter cnt = {0};
    bool bad = false, gave_group = false;
    char why[256], aad[DTM_ID_MAX + 16];
    int64_t now = dtm_now_us(), at = now;
    cJSON *doc;
    int rc;
    if (!st)
        return DTM_ESTORE;
    if (!q || !sc || !c)
        return DTM_ENOMEM;
    memset(c, 0, sizeof(*c));
    sub = &c->sub;
    c->add = true;
    if (strcmp(r->sys.role, "consumer") != 0)
        return dtm_http_problem(r, 403, "forbidden", "Forbidden",
                                "System %s has role %s; only consumer systems subscribe to "
                                "datasets.",
                                r->sys.code, r->sys.role);
    if (!(doc = dtm_api_body_json(r)))
        return DTM_OK; /* answered */
    dataset = dtm_api_member(r, doc, "dataset", DTM_CODE_MAX - 1, &bad);
    url = dtm_api_member(r, doc, "url", DTM_SUB_URL_MAX - 1, &bad);
    secret = dtm_api_member(r, doc, "secret", DTM_SUB_SECRET_MAX, &bad);
    metrics = dtm_api_member(r, doc, "metrics", sizeof(sub->metrics) - 1, &bad);
    group_by = dtm_api_member(r, doc, "group_by", sizeof(sub->group_by) - 1, &bad);
    interval = dtm_api_member(r, doc, "interval", 8, &bad);
    from = dtm_api_member(r, doc, "from", 64, &bad);
    gave_group = cJSON_GetObjectItemCaseSensitive(doc, "group_by") != NULL;
    if (bad) {
        rc = DTM_OK; /* answered */
        goto out;
    }
    if (!dataset) {
        rc = bad_member(r, "dataset", "required: the code of a dataset you are granted.");
        goto out;
    }
    if (!(ds = dtm_dict_get(env->dict, dtm_str_c(dataset)))) {
        rc = dtm_http_problem(r, 422, "unknown_dataset", "Invalid data",
                              "There is no dataset %s (member dataset); GET /api/v1/datasets "
                              "lists them.",
                              dataset);
        goto out;
    }
    /* a consumer subscribes only to what it may read (and an OAuth token's scope allows) */
    if ((rc = dtm_api_scope(r, st, ds, sc))) {
        rc = r->responded ? DTM_OK : rc;
        goto out;
    }
    if (!url) {
        rc = bad_member(r, "url", "required: the http or https URL the deliveries are POSTed to.");
        goto out;
    }
    if (dtm_sub_url_check(url, conf->sub_allow_private, why, sizeof(why))) {
        rc = bad_member(r, "url", why);
        goto out;
    }
    if (!secret || strlen(secret) < DTM_SUB_SECRET_MIN) {
        rc = dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                              "Parameter 'secret': required, %d to %d bytes: the key of the "
                              "deliveries' HMAC-SHA-256 signature (X-DTM-Signature).",
                              DTM_SUB_SECRET_MIN, DTM_SUB_SECRET_MAX);
        goto out;
    }
    if (!interval)
        interval = "hour";
    if (!dtm_sub_interval_us(interval)) {
        rc = bad_member(r, "interval", "hour or day.");
        goto out;
    }
    if (from &&
        (dtm_time_parse(dtm_str_c(from), &at) || at < now - YEAR_US || at > now + YEAR_US)) {
        rc = bad_member(r, "from",
                        "an RFC 3339 time within a year of now: the first bucket to deliver "
                        "(default: the current one).");
        goto out;
    }
    if ((rc = where_of(r, doc, sub->where, sizeof(sub->where))))
        goto out;
    snprintf(sub->metrics, sizeof(sub->metrics), "%s", metrics ? metrics : "count");
    /* default: count per system (when the dataset has a system dimension) */
    snprintf(sub->group_by, sizeof(sub->group_by), "%s",
             group_by     ? group_by
             : gave_group ? ""
                          : "system_code");
    snprintf(sub->interval, sizeof(sub->interval), "%s", interval);
    if (!gave_group && dtm_sub_query(ds, sub, 0, 1, q, &bad_name, why, sizeof(why)) &&
        !strcmp(bad_name, "group_by"))
        sub->group_by[0] = '\0';
    if (dtm_sub_query(ds, sub, 0, 1, q, &bad_name, why, sizeof(why))) {
        rc = bad_member(r, bad_name, why);
        goto out;
    }
    if ((rc = st->ops->subscription_list(st, r->sys.code, count_one, &cnt)))
        goto out;
    if (cnt.n >= conf->sub_max_per_system) {
        rc = dtm_http_problem(r, 409, "too_many_subscriptions", "Conflict",
                              "System %s holds %lld subscriptions already, the most allowed; "
                              "delete one first.",
                              r->sys.code, (long long)cnt.n);
        goto out;
    }
    if ((rc = dtm_random_id("sub_", sub->id, sizeof(sub->id))))
        goto out;
    snprintf(sub->system_code, sizeof(sub->system_code), "%s", r->sys.code);
    snprintf(sub->dataset, sizeof(sub->dataset), "%s", ds->code);
    snprintf(sub->url, sizeof(sub->url), "%s", url);
    sub->created_at = now;
    sub->next_bucket = dtm_bucket_start(!strcmp(interval, "day") ? DTM_I_DAY : DTM_I_HOUR, at);
    /* T4.2: the secret sealed under the data keys, bound to this subscription */
    dtm_buf_init(&sealed, sizeof(sub->secret));
    rc = dtm_datakey_seal(dtm_datakeys_get(conf), aad,
                          (size_t)snprintf(aad, sizeof(aad), "subscription:%s", sub->id), secret,
                          strlen(secret), &sealed);
    if (rc == DTM_OK && sealed.n <= sizeof(sub->secret)) {
        memcpy(sub->secret, sealed.p, sealed.n);
        sub->secret_len = sealed.n;
    } else if (rc == DTM_OK) {
        rc = DTM_ETOOBIG;
    }
    dtm_buf_free(&sealed);
    if (rc)
        goto out;
    cJSON_Delete(doc);
    return submit(r, c);
out:
    cJSON_Delete(doc);
    return rc;
}

/* ---- reading */

/* The subscription named by the path, when the caller may see it (its system, or operators and
 * admins); NULL after answering 404. */
static int find(struct dtm_req *r, struct dtm_subscription *out)
{
    struct dtm_store *st = dtm_http_store(r);
    char id[DTM_ID_MAX];
    int rc;
    if (!st)
        return DTM_ESTORE;
    if (r->params[0].n == 0 || r->params[0].n >= sizeof(id))
        return DTM_ENOTFOUND;
    memcpy(id, r->params[0].p, r->params[0].n);
    id[r->params[0].n] = '\0';
    rc = st->ops->subscription_get(st, id, out);
    if (rc == DTM_OK && !r->person && strcmp(out->system_code, r->sys.code))
        rc = DTM_ENOTFOUND; /* another system's: it does not exist for this one */
    return rc;
}

static int not_found(struct dtm_req *r)
{
    return dtm_http_problem(r, 404, "not_found", "Not found",
                            "There is no subscription %.*s of yours.", (int)r->params[0].n,
                            r->params[0].p);
}

struct list_ctx {
    struct dtm_buf *b;
    int n;
};

static int list_one(void *ctx, const struct dtm_subscription *sub)
{
    struct list_ctx *x = ctx;
    if (x->n++)
        dtm_buf_addch(x->b, ',');
    dtm_sub_json(x->b, sub);
    return x->b->err;
}

int dtm_api_subscriptions_list(struct dtm_req *r)
{
    struct dtm_store *st = dtm_http_store(r);
    const char *system = r->person ? dtm_http_query(r, "system") : r->sys.code;
    struct dtm_buf b;
    struct list_ctx x;
    int rc;
    if (!st)
        return DTM_ESTORE;
    if (system && strlen(system) >= DTM_CODE_MAX)
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "The parameter system is too long.");
    dtm_buf_init(&b, 64 << 20);
    x = (struct list_ctx){&b, 0};
    dtm_buf_addc(&b, "{\"subscriptions\":[");
    rc = st->ops->subscription_list(st, system, list_one, &x);
    dtm_buf_addc(&b, "]}");
    if (rc == DTM_OK)
        rc = b.err ? b.err : dtm_http_json(r, 200, &b);
    dtm_buf_free(&b);
    return rc;
}

int dtm_api_subscription_get(struct dtm_req *r)
{
    struct dtm_subscription *sub = dtm_arena_alloc(&r->arena, sizeof(*sub));
    struct dtm_buf b;
    int rc;
    if (!sub)
        return DTM_ENOMEM;
    if ((rc = find(r, sub)))
        return rc == DTM_ENOTFOUND ? not_found(r) : rc;
    dtm_buf_init(&b, 64 * 1024);
    dtm_sub_json(&b, sub);
    rc = b.err ? b.err : dtm_http_json(r, 200, &b);
    dtm_buf_free(&b);
    return rc;
}

int dtm_api_subscription_delete(struct dtm_req *r)
{
    struct change *c = dtm_arena_alloc(&r->arena, sizeof(*c));
    int rc;
    if (!c)
        return DTM_ENOMEM;
    memset(c, 0, sizeof(*c));
    if ((rc = find(r, &c->sub)))
        return rc == DTM_ENOTFOUND ? not_found(r) : rc;
    OPENSSL_cleanse(c->sub.secret, sizeof(c->sub.secret));
    return submit(r, c);
}

struct log_ctx {
    struct dtm_buf *b;
    const char *interval;
    int n;
    int64_t last;
};

static int log_one(void *ctx, const struct dtm_subscription_delivery *d)
{
    struct log_ctx *x = ctx;
    char label[64];
    dtm_bucket_label(!strcmp(x->interval, "day") ? DTM_I_DAY : DTM_I_HOUR, d->bucket, label,
                     sizeof(label));
    dtm_buf_printf(x->b, "%s{\"seq\":%lld,\"bucket\":", x->n++ ? "," : "", (long long)d->seq);
    dtm_buf_json_strc(x->b, label);
    dtm_buf_addc(x->b, ",\"from\":");
    dtm_buf_json_time(x->b, d->bucket);
    dtm_buf_printf(x->b, ",\"attempt\":%lld,\"status\":", (long long)d->attempt);
    if (d->status)
        dtm_buf_printf(x->b, "%lld", (long long)d->status);
    else
        dtm_buf_addc(x->b, "null");
    dtm_buf_printf(x->b, ",\"ok\":%s,\"error\":", d->ok ? "true" : "false");
    if (d->error[0])
        dtm_buf_json_strc(x->b, d->error);
    else
        dtm_buf_addc(x->b, "null");
    dtm_buf_addc(x->b, ",\"at\":");
    dtm_buf_json_time(x->b, d->at);
    dtm_buf_printf(x->b, ",\"ms\":%lld}", (long long)d->ms);
    x->last = d->seq;
    return x->b->err;
}

int dtm_api_subscription_deliveries(struct dtm_req *r)
{
    struct dtm_store *st = dtm_http_store(r);
    struct dtm_subscription *sub = dtm_arena_alloc(&r->arena, sizeof(*sub));
    const char *after_s = dtm_http_query(r, "after"), *limit_s = dtm_http_query(r, "limit");
    int64_t after = 0, limit = 100;
    struct dtm_buf b;
    struct log_ctx x;
    int rc;
    if (!sub)
        return DTM_ENOMEM;
    if ((rc = find(r, sub)))
        return rc == DTM_ENOTFOUND ? not_found(r) : rc;
    if (after_s && (dtm_str_to_i64(dtm_str_c(after_s), &after) || after < 0))
        return bad_member(r, "after", "the seq of the last entry read (an integer >= 0).");
    if (limit_s && (dtm_str_to_i64(dtm_str_c(limit_s), &limit) || limit < 1 || limit > 1000))
        return bad_member(r, "limit", "an integer from 1 to 1000.");
    dtm_buf_init(&b, 64 << 20);
    x = (struct log_ctx){&b, sub->interval, 0, after};
    dtm_buf_addc(&b, "{\"deliveries\":[");
    rc = st->ops->subscription_deliveries(st, sub->id, after, (size_t)limit, log_one, &x);
    dtm_buf_printf(&b, "],\"next_after\":%lld}", (long long)x.last);
    if (rc == DTM_OK)
        rc = b.err ? b.err : dtm_http_json(r, 200, &b);
    dtm_buf_free(&b);
    return rc;
}
