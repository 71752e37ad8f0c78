/* api/datasets.c — the data dictionary over HTTP (CONTRACT §4, G1, G2): the public catalogue
 * GET /api/v1/datasets, one definition GET /api/v1/datasets/{code}, admins' definitions PUT
 * /api/v1/datasets/{code}, and one stored record with its history
 * GET /api/v1/datasets/{code}/record?KEYFIELD=VALUE… */
#include "api/api.h"
#include "api/catalog.h"
#include "audit/audit.h"
#include "ingest/ingest.h"

#include <stdio.h>

#include <string.h>

static void i18n_json(struct dtm_buf *b, const struct dtm_i18n_text *t)
{
    dtm_buf_addc(b, "{\"vi\":");
    dtm_buf_json_strc(b, t->vi);
    dtm_buf_addc(b, ",\"en\":");
    dtm_buf_json_strc(b, t->en);
    dtm_buf_addch(b, '}');
}

int dtm_api_datasets_list(struct dtm_req *r)
{
    const struct dtm_dict *d = dtm_http_env(r)->dict;
    struct dtm_buf b;
    int rc;
    dtm_buf_init(&b, 16 << 20);
    dtm_buf_addc(&b, "{\"datasets\":[");
    for (size_t i = 0; i < dtm_dict_count(d); i++) {
        const struct dtm_dataset *ds = dtm_dict_at(d, i);
        if (i)
            dtm_buf_addch(&b, ',');
        dtm_buf_addc(&b, "{\"code\":");
        dtm_buf_json_strc(&b, ds->code);
        dtm_buf_printf(&b, ",\"version\":%lld,\"title\":", (long long)ds->version);
        i18n_json(&b, &ds->title);
        dtm_buf_addc(&b, ",\"description\":");
        i18n_json(&b, &ds->description);
        dtm_buf_addc(&b, ",\"agency\":");
        dtm_buf_json_strc(&b, ds->agency);
        dtm_buf_addc(&b, ",\"classification\":");
        dtm_buf_json_strc(&b, ds->classification);
        dtm_buf_addc(&b, ",\"access\":");
        i18n_json(&b, &ds->access);
        dtm_buf_addc(&b, ",\"update_frequency\":");
        dtm_buf_json_strc(&b, ds->update_frequency);
        /* issue 8, G2: scope, keywords and the current quality summary (api/catalog.c) */
        dtm_buf_addc(&b, ",\"scope\":");
        i18n_json(&b, &ds->scope);
        dtm_buf_addc(&b, ",\"keywords\":");
        i18n_json(&b, &ds->keywords);
        dtm_buf_addch(&b, ',');
        if ((rc = dtm_catalog_quality_json(r, ds, &b))) {
            dtm_buf_free(&b);
            return rc;
        }
        dtm_buf_printf(&b, ",\"builtin\":%s,\"href\":\"/api/v1/datasets/%s\"}",
                       ds->builtin ? "true" : "false", ds->code);
    }
    dtm_buf_addc(&b, "]}");
    rc = dtm_http_json(r, 200, &b);
    dtm_buf_free(&b);
    return rc;
}

const struct dtm_dataset *dtm_api_dataset(struct dtm_req *r)
{
    const struct dtm_dataset *ds = dtm_dict_get(dtm_http_env(r)->dict, r->params[0]);
    if (!ds)
        dtm_http_problem(r, 404, "unknown_dataset", "Unknown dataset",
                         "There is no dataset '%.*s'. GET /api/v1/datasets lists them.",
                         (int)DTM_MIN(r->params[0].n, 64), r->params[0].p);
    return ds;
}

int dtm_api_dataset_get(struct dtm_req *r)
{
    const struct dtm_dataset *ds = dtm_api_dataset(r);
    if (!ds)
        return DTM_OK;
    return dtm_http_reply(r, 200, "application/json; charset=utf-8", ds->json, strlen(ds->json));
}

struct versions {
    struct dtm_buf *b;
    struct dtm_store *st;
    int n;
};

static void receipt_member(struct versions *x, int64_t seq)
{
    struct dtm_receipt rc;
    char id[96];
    if (x->st->ops->receipt_get(x->st, seq, &rc) == DTM_OK) {
        dtm_receipt_format(&rc, id, sizeof(id));
        dtm_buf_printf(x->b, ",\"receipt\":\"%s\"", id);
    }
}

static int version_json(void *ctx, const struct dtm_record_version *v)
{
    struct versions *x = ctx;
    char ts[40];
    if (x->n > 1)
        dtm_buf_addch(x->b, ',');
    dtm_buf_addc(x->b, "{\"record\":");
    dtm_buf_add(x->b, v->content.p, v->content.n);
    dtm_time_fmt(v->received_at, ts, sizeof(ts));
    dtm_buf_printf(x->b, ",\"revision\":%lld,\"received_at\":\"%s\"", (long long)v->revision, ts);
    receipt_member(x, v->receipt_seq);
    if (x->n == 0) {
        dtm_buf_addc(x->b, ",\"history\":[");
    } else {
        dtm_time_fmt(v->replaced_at, ts, sizeof(ts));
        dtm_buf_printf(x->b, ",\"replaced_at\":\"%s\"}", ts);
    }
    x->n++;
    return DTM_OK;
}

int dtm_api_record_get(struct dtm_req *r)
{
    const struct dtm_dataset *ds = dtm_api_dataset(r);
    struct dtm_str vals[8];
    uint8_t kh[16];
    struct dtm_buf b;
    struct versions x;
    struct dtm_store *st;
    int rc;
    if (!ds)
        return DTM_OK;
    if (!dtm_token_allows(&r->token, false, dtm_str_c(ds->code))) /* T2.4: token scopes */
        return dtm_http_problem(r, 403, "insufficient_scope", "Forbidden",
                                "The access token's scope does not allow reading dataset %s; ask "
                                "POST /oauth/token for scope read and dataset:%s.",
                                ds->code, ds->code);
    /* people: a record with its history (confidential ones too) to admins and auditors only */
    if (r->person && strcmp(r->user.role, "admin") != 0 && strcmp(r->user.role, "auditor") != 0)
        return dtm_http_problem(r, 403, "forbidden", "Forbidden",
                                "Your role (%s) reads records through exports: GET "
                                "/api/v1/datasets/%s/records.",
                                r->user.role, ds->code);
    for (size_t k = 0; k < ds->nkey; k++) {
        const char *name = ds->fields[ds->key[k]].name;
        const char *v = dtm_http_query(r, name);
        if ((!v || !*v) && strcmp(name, "system_code") == 0 && !r->person)
            v = r->sys.code;
        if (!v || !*v)
            return dtm_http_problem(r, 400, "missing_parameter", "Missing parameter",
                                    "The key field %s is required as a query parameter.", name);
        if (!r->person && strcmp(name, "system_code") == 0 && strcmp(v, r->sys.code) != 0)
            return dtm_http_problem(r, 403, "forbidden", "Forbidden",
                                    "A system may read only its own records.");
        vals[k] = dtm_str_c(v);
    }
    dtm_ingest_key_hash(dtm_http_env(r)->keys, ds->code, vals, ds->nkey, kh);
    if (!(st = dtm_http_store(r)))
        return DTM_ESTORE;
    dtm_buf_init(&b, 64 << 20);
    x.b = &b;
    x.st = st;
    x.n = 0;
    rc = st->ops->record_get(st, ds->code, kh, version_json, &x);
    if (rc == DTM_ENOTFOUND) {
        dtm_buf_free(&b);
        return dtm_http_problem(r, 404, "record_not_found", "Record not found",
                                "No record of %s has this key.", ds->code);
    }
    if (rc) {
        dtm_buf_free(&b);
        return rc;
    }
    dtm_buf_addc(&b, "]}");
    rc = dtm_http_json(r, 200, &b);
    dtm_buf_free(&b);
    return rc;
}

/* ---- PUT /api/v1/datasets/{code} (admins; CONTRACT §4): defines a new dataset or a new
 * version of one defined so: the definition is checked like the built-ins, stored with its
 * audit entry (S3: dataset.defined / dataset.changed) and used from the next request on. The
 * built-ins are fixed. A new version must have a greater `version`, and a field it keeps keeps
 * its type (stored records were checked against it). Other processes on the data dir (dtm
 * import) read the stored definitions when they start. */

struct def_txn {
    const struct dtm_dataset *ds;
    bool created;
    const uint8_t *audit_key;
    char actor[128], ip[64];
};

static int def_txn(void *ctx, struct dtm_store *st)
{
    struct def_txn *t = ctx;
    char d[96];
    int rc = st->ops->dataset_def_put(st, t->ds->code, t->ds->json, dtm_now_us(), t->actor);
    if (rc)
        return rc;
    snprintf(d, sizeof(d), "{\"version\":%lld,\"fields\":%zu}", (long long)t->ds->version,
             t->ds->nfields);
    return dtm_audit_append(
        st, t->audit_key,
        &(struct dtm_audit_event){"user", t->actor,
                                  t->created ? "dataset.defined" : "dataset.changed", t->ds->code,
                                  d, t->ip},
        NULL);
}

/* A field of old that new keeps with another type; NULL when none. */
static const struct dtm_field_def *type_changed(const struct dtm_dataset *old,
                                                const struct dtm_dataset *new,
                                                const struct dtm_field_def **now)
{
    for (size_t i = 0; i < old->nfields; i++) {
        int k = dtm_dataset_field(new, dtm_str_c(old->fields[i].name));
        if (k >= 0 && new->fields[k].type != old->fields[i].type) {
            *now = &new->fields[k];
            return &old->fields[i];
        }
    }
    return NULL;
}

int dtm_api_dataset_put(struct dtm_req *r)
{
    const struct dtm_server_env *env = dtm_http_env(r);
    const struct dtm_dataset *old = dtm_dict_get(env->dict, r->params[0]);
    const struct dtm_field_def *was, *now;
    struct dtm_dataset *ds = NULL;
    struct def_txn t = {0};
    char err[256];
    int rc;
    if (old && old->builtin)
        return dtm_http_problem(r, 409, "builtin_dataset", "Conflict",
                                "Dataset %s is built in and cannot be changed; define a new "
                                "dataset with another code.",
                                old->code);
    rc = dtm_dataset_parse((struct dtm_str){r->body.p ? r->body.p : "", r->body.n}, &ds, err,
                           sizeof(err));
    if (rc == DTM_ENOMEM)
        return rc;
    if (rc)
        return dtm_http_problem(r, 422, "invalid_definition", "Invalid data",
                                "The dataset definition is not valid: %s", err);
    if (!dtm_str_eqc(r->params[0], ds->code)) {
        dtm_dataset_free(ds);
        return dtm_http_problem(r, 400, "code_mismatch", "Bad parameter",
                                "The definition's code must be the one of the path.");
    }
    if (old && ds->version <= old->version) {
        rc = dtm_http_problem(r, 409, "stale_version", "Conflict",
                              "Dataset %s is at version %lld: a new definition needs a greater "
                              "version.",
                              old->code, (long long)old->version);
        dtm_dataset_free(ds);
        return rc;
    }
    if (old && (was = type_changed(old, ds, &now))) {
        rc = dtm_http_problem(r, 409, "field_type_changed", "Conflict",
                              "Field %s would change type from %s to %s, but records were stored "
                              "with the old one; give the new field another name.",
                              was->name, dtm_ftype_name(was->type), dtm_ftype_name(now->type));
        dtm_dataset_free(ds);
        return rc;
    }
    t.ds = ds;
    t.created = old == NULL;
    t.audit_key = env->keys->audit_key;
    snprintf(t.actor, sizeof(t.actor), "%s", r->user.username);
    dtm_http_client_ip(r, t.ip, sizeof(t.ip));
    if ((rc = dtm_gate_write(env->writer, def_txn, &t))) {
        dtm_dataset_free(ds);
        return dtm_http_error(r, rc == DTM_EBUSY ? DTM_EBUSY : DTM_ESTORE);
    }
    /* the dictionary owns it now, and keeps it valid as long as it lives */
    if ((rc = dtm_dict_put(env->dict, ds)))
        return rc;
    dtm_logf(DTM_LOG_INFO, t.created ? "dataset defined" : "dataset changed",
             "\"dataset\":\"%s\",\"version\":%lld", ds->code, (long long)ds->version);
    return dtm_http_reply(r, t.created ? 201 : 200, "application/json; charset=utf-8", ds->json,
                          strlen(ds->json));
}
