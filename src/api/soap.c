/* api/soap.c — the SOAP endpoint (CONTRACT §5, Annex I §2.1): GET /soap?wsdl (and ?xsd=CODE, one
 * dataset's schema), POST /soap. Conversion only: the envelope is read by soap/, and each
 * operation is handed to what REST uses — SubmitRecords to dtm_api_ingest_run (the realtime
 * pipeline and the writer: answered after the commit, same idempotency, duplicates, masking and
 * validation codes), GetBatchStatus to dtm_api_batch_own (a system sees its own batches),
 * QueryStats to dtm_api_stats_query (dtm_query_parse and the stats access rules), Ping. The key
 * comes in X-API-Key (checked by the router) or in a WS-Security UsernameToken, checked by
 * dtm_http_gate_key exactly as the router checks a header. Every problem — the router's 401, 403,
 * 413, 415 and 429 included — is answered as a SOAP fault with HTTP status 500 (SOAP 1.1 §6.2;
 * the problem's own status is in the fault's detail, and Retry-After stays a header). */
#include "api/api.h"
#include "batch/batch.h"
#include "soap/soap.h"
#include "stats/stats.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static enum dtm_soap_version version(struct dtm_req *r)
{
    return dtm_soap_version_of(dtm_http_header(r, "Content-Type"));
}

/* Seconds of a Retry-After the answer carries (429: the bucket's; 503: the header set), or -1. */
static int64_t retry_after(struct dtm_req *r, int status)
{
    if (status == 429)
        return r->rl.retry_after_s;
    for (size_t i = 0; i < r->nextra; i++)
        if (strcmp(r->extra_name[i], "Retry-After") == 0) {
            int64_t v;
            if (dtm_str_to_i64(dtm_str_c(r->extra_value[i]), &v) == DTM_OK)
                return v;
        }
    return -1;
}

int dtm_api_soap_fault(struct dtm_req *r, int status, const struct dtm_buf *problem)
{
    enum dtm_soap_version v = version(r);
    struct dtm_buf b;
    int rc;
    dtm_buf_init(&b, 32 << 20);
    rc = dtm_soap_fault(&b, v, problem->p ? problem->p : "{}", problem->n, r->lang,
                        retry_after(r, status));
    if (rc == DTM_OK)
        rc = dtm_http_reply(r, 500, dtm_soap_content_type(v), b.p, b.n);
    else
        rc = dtm_http_reply(r, 500, "text/plain; charset=utf-8", "internal error\n", 15);
    dtm_buf_free(&b);
    return rc;
}

/* ---- GET /soap?wsdl */

/* The Host header when it is a plain host[:port] (it goes into the WSDL), else localhost. */
static void host_of(struct dtm_req *r, char *out, size_t outsz)
{
    struct dtm_str h = dtm_str_trim(dtm_http_header(r, "Host"));
    bool ok = h.n > 0 && h.n < outsz && h.n <= 255;
    for (size_t i = 0; ok && i < h.n; i++) {
        char c = h.p[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '.' || c == '-' || c == ':' || c == '[' || c == ']';
    }
    if (ok)
        snprintf(out, outsz, "%.*s", (int)h.n, h.p);
    else
        snprintf(out, outsz, "localhost");
}

int dtm_api_soap_wsdl(struct dtm_req *r)
{
    const struct dtm_server_env *env = dtm_http_env(r);
    const char *xsd = dtm_http_query(r, "xsd");
    char host[300], address[340];
    struct dtm_buf b;
    int rc;
    dtm_buf_init(&b, 64 << 20);
    if (xsd) {
        const struct dtm_dataset *ds = dtm_dict_get(env->dict, dtm_str_c(xsd));
        if (!ds) {
            dtm_buf_free(&b);
            return dtm_http_problem(r, 404, "unknown_dataset", "Unknown dataset",
                                    "There is no dataset '%.*s'. GET /api/v1/datasets lists them.",
                                    (int)DTM_MIN(strlen(xsd), 64), xsd);
        }
        rc = dtm_soap_xsd(ds, &b);
    } else {
        host_of(r, host, sizeof(host));
        snprintf(address, sizeof(address), "%s://%s/soap", dtm_http_is_tls(r) ? "https" : "http",
                 host);
        rc = dtm_soap_wsdl(env->dict, address, &b);
    }
    if (rc == DTM_OK)
        rc = dtm_http_reply(r, 200, "text/xml; charset=utf-8", b.p, b.n);
    dtm_buf_free(&b);
    return rc;
}

/* ---- POST /soap */

static void el(struct dtm_buf *b, const char *name, const char *v)
{
    dtm_buf_printf(b, "<dtm:%s>", name);
    dtm_buf_xml(b, dtm_str_c(v ? v : ""));
    dtm_buf_printf(b, "</dtm:%s>", name);
}

static void el_i64(struct dtm_buf *b, const char *name, long long v)
{
    dtm_buf_printf(b, "<dtm:%s>%lld</dtm:%s>", name, v, name);
}

static void el_time(struct dtm_buf *b, const char *name, int64_t t)
{
    char s[48];
    if (!t)
        return;
    dtm_time_fmt(t, s, sizeof(s));
    el(b, name, s);
}

static int reply_envelope(struct dtm_req *r, struct dtm_buf *b)
{
    int rc;
    dtm_soap_end(b, version(r));
    rc = b->err ? b->err : dtm_http_reply(r, 200, dtm_soap_content_type(version(r)), b->p, b->n);
    dtm_buf_free(b);
    return rc;
}

static long long jnum(const cJSON *o, const char *name)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(m) ? (long long)m->valuedouble : 0;
}

/* SubmitRecords' answer from the ingest path's JSON (the 200 receipt, or a problem). */
static int submit_reply(struct dtm_req *r, int status, const char *json, size_t len, bool replay)
{
    struct dtm_buf b;
    cJSON *j, *e;
    if (replay)
        dtm_http_add_header(r, "Idempotency-Replayed", "true");
    if (status >= 400) {
        struct dtm_buf p = {(char *)json, len, len, len, 0};
        int rc = dtm_api_soap_fault(r, status, &p);
        r->status = status;
        return rc;
    }
    if (!(j = cJSON_ParseWithLength(json, len)))
        return DTM_EINTERNAL;
    dtm_buf_init(&b, 64 << 20);
    dtm_soap_begin(&b, version(r));
    dtm_buf_addc(&b, "<dtm:SubmitRecordsResponse>");
    el_i64(&b, "accepted", jnum(j, "accepted"));
    el_i64(&b, "duplicates", jnum(j, "duplicates"));
    el_i64(&b, "updated", jnum(j, "updated"));
    el_i64(&b, "rejected", jnum(j, "rejected"));
    dtm_buf_addc(&b, "<dtm:errors>");
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "errors"))
    {
        dtm_buf_addc(&b, "<dtm:error>");
        el_i64(&b, "index", jnum(e, "index"));
        el(&b, "field", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "field")));
        el(&b, "code", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "code")));
        el(&b, "message", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "message")));
        dtm_buf_addc(&b, "</dtm:error>");
    }
    dtm_buf_addc(&b, "</dtm:errors>");
    el(&b, "receipt", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "receipt")));
    el(&b, "replayed", replay ? "true" : "false");
    dtm_buf_addc(&b, "</dtm:SubmitRecordsResponse>");
    cJSON_Delete(j);
    return reply_envelope(r, &b);
}

static int missing(struct dtm_req *r, const char *op, const char *name)
{
    return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                            "Operation %s needs the element <%s>.", op, name);
}

static int repeated(struct dtm_req *r, const char *name)
{
    return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                            "The element <%s> may appear only once.", name);
}

/* An argument that occurs at most once: *out NULL when absent. False after answering 400. */
static bool arg(struct dtm_req *r, const struct dtm_soap_request *q, const char *name,
                const char **out)
{
    bool many;
    *out = dtm_soap_arg(q, name, &r->arena, &many);
    if (many)
        repeated(r, name);
    return !many;
}

static const struct dtm_dataset *dataset_arg(struct dtm_req *r, const struct dtm_soap_request *q)
{
    const char *code;
    const struct dtm_dataset *ds;
    if (!arg(r, q, "dataset", &code))
        return NULL;
    if (!code) {
        missing(r, q->op_name, "dataset");
        return NULL;
    }
    ds = dtm_dict_get(dtm_http_env(r)->dict, dtm_str_c(code));
    if (!ds)
        dtm_http_problem(r, 404, "unknown_dataset", "Unknown dataset",
                         "There is no dataset '%.*s'. GET /api/v1/datasets lists them.",
                         (int)DTM_MIN(strlen(code), 64), code);
    return ds;
}

static int submit_records(struct dtm_req *r, struct dtm_soap_request *q)
{
    const struct dtm_dataset *ds = dataset_arg(r, q);
    const char *atomic, *idem;
    struct dtm_api_ingest_args a = {.format = DTM_FMT_XML, .reply = submit_reply};
    struct dtm_buf x;
    char bad[DTM_NAME_MAX + 8];
    char *copy;
    int rc;
    if (!ds)
        return DTM_OK; /* answered */
    if (dtm_http_send_refused(r, dtm_str_c(ds->code)))
        return DTM_OK;
    if (!arg(r, q, "atomic", &atomic) || !arg(r, q, "mode", &a.mode) ||
        !arg(r, q, "idempotencyKey", &idem))
        return DTM_OK;
    if (atomic && !strcmp(atomic, "true")) {
        a.atomic = true;
    } else if (atomic && !strcmp(atomic, "1")) {
        a.atomic = true;
    } else if (atomic && strcmp(atomic, "false") && strcmp(atomic, "0")) {
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "Parameter %s must be true or false.", "atomic");
    }
    a.ds = ds;
    /* the request's identity for an idempotency key: the records, not the envelope (whose
     * header may change between retries); SOAP 1.1 and 1.2 replay each other's answers */
    a.content_type = dtm_str_c("application/soap+xml; operation=SubmitRecords");
    a.idem_key = idem ? dtm_str_c(idem) : dtm_http_header(r, "Idempotency-Key");
    dtm_buf_init(&x, (size_t)dtm_http_env(r)->conf->max_body * 2 + 4096);
    rc = dtm_soap_records_xml(q, ds->code, &x, bad, sizeof(bad));
    if (rc == DTM_ENOTFOUND) {
        dtm_buf_free(&x);
        return missing(r, q->op_name, "records");
    }
    if (rc == DTM_EMALFORMED) {
        dtm_buf_free(&x);
        return dtm_http_problem(r, 400, "malformed", "Malformed body",
                                "Unexpected content <%s> in <records>: the records of dataset %s "
                                "are elements <%s> (or <record>).",
                                bad, ds->code, ds->code);
    }
    copy = rc ? NULL : dtm_arena_strndup(&r->arena, x.p ? x.p : "", x.n);
    a.body = (struct dtm_str){copy, x.n};
    dtm_buf_free(&x);
    if (rc)
        return rc;
    if (!copy)
        return DTM_ENOMEM;
    if (a.idem_key.n && idem) /* the DOM is freed before the records are stored */
        a.idem_key.p = dtm_arena_strndup(&r->arena, a.idem_key.p, a.idem_key.n);
    if (a.mode)
        a.mode = dtm_arena_strndup(&r->arena, a.mode, strlen(a.mode));
    dtm_soap_request_free(q);
    return dtm_api_ingest_run(r, &a);
}

static int batch_status(struct dtm_req *r, const struct dtm_soap_request *q)
{
    const char *id;
    struct dtm_batch bt;
    struct dtm_buf b;
    int rc;
    if (!arg(r, q, "id", &id))
        return DTM_OK;
    if (!id)
        return missing(r, q->op_name, "id");
    if ((rc = dtm_api_batch_own(r, dtm_str_c(id), &bt)))
        return rc == DTM_ENOTFOUND ? DTM_OK : rc;
    dtm_buf_init(&b, 1 << 20);
    dtm_soap_begin(&b, version(r));
    dtm_buf_addc(&b, "<dtm:GetBatchStatusResponse>");
    el(&b, "id", bt.id);
    el(&b, "dataset", bt.dataset);
    el(&b, "systemCode", bt.system_code);
    el(&b, "status", bt.status);
    el_i64(&b, "total", bt.total);
    el_i64(&b, "accepted", bt.accepted);
    el_i64(&b, "duplicates", bt.duplicates);
    el_i64(&b, "updated", bt.updated);
    el_i64(&b, "rejected", bt.rejected);
    dtm_buf_printf(&b, "<dtm:progress>%.4f</dtm:progress>", dtm_batch_progress(&bt));
    el(&b, "format", bt.format);
    el(&b, "priority", dtm_batch_priority_name(bt.priority));
    el_time(&b, "createdAt", bt.created_at);
    el_time(&b, "startedAt", bt.started_at);
    el_time(&b, "finishedAt", bt.finished_at);
    if (bt.error[0])
        el(&b, "error", bt.error);
    dtm_buf_addc(&b, "</dtm:GetBatchStatusResponse>");
    return reply_envelope(r, &b);
}

/* A result cell ("JSON-ready": numbers bare, strings quoted) as text. */
static void cell(struct dtm_buf *b, const char *c)
{
    if (!c) {
        dtm_buf_addc(b, "<dtm:v xsi:nil=\"true\"/>");
        return;
    }
    dtm_buf_addc(b, "<dtm:v>");
    if (c[0] == '"') {
        cJSON *s = cJSON_Parse(c);
        dtm_buf_xml(b, dtm_str_c(cJSON_IsString(s) ? s->valuestring : ""));
        cJSON_Delete(s);
    } else {
        dtm_buf_xml(b, dtm_str_c(c));
    }
    dtm_buf_addc(b, "</dtm:v>");
}

static int query_stats(struct dtm_req *r, const struct dtm_soap_request *q)
{
    const struct dtm_dataset *ds = dataset_arg(r, q);
    const char *wheres[DTM_STATS_MAX_WHERE + 1];
    struct dtm_api_stats_args a = {0};
    struct dtm_result res;
    struct dtm_buf b;
    int rc;
    if (!ds)
        return DTM_OK;
    if (!arg(r, q, "metrics", &a.metrics) || !arg(r, q, "groupBy", &a.group_by) ||
        !arg(r, q, "interval", &a.interval) || !arg(r, q, "from", &a.from) ||
        !arg(r, q, "to", &a.to))
        return DTM_OK;
    a.nwheres = dtm_soap_args(q, "where", &r->arena, wheres, DTM_ARRAY_LEN(wheres));
    if (a.nwheres > DTM_STATS_MAX_WHERE)
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "At most %d where conditions.", DTM_STATS_MAX_WHERE);
    a.wheres = wheres;
    if ((rc = dtm_api_stats_query(r, ds, &a, &res)))
        return r->responded ? DTM_OK : rc;
    dtm_buf_init(&b, 256 << 20);
    dtm_soap_begin(&b, version(r));
    dtm_buf_addc(&b, "<dtm:QueryStatsResponse "
                     "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><dtm:columns>");
    for (size_t j = 0; j < res.ncols; j++)
        el(&b, "column", res.cols[j]);
    dtm_buf_addc(&b, "</dtm:columns><dtm:rows>");
    for (size_t i = 0; i < res.nrows; i++) {
        dtm_buf_addc(&b, "<dtm:row>");
        for (size_t j = 0; j < res.ncols; j++)
            cell(&b, res.rows[i][j]);
        dtm_buf_addc(&b, "</dtm:row>");
    }
    dtm_buf_addc(&b, "</dtm:rows>");
    el(&b, "plan", res.plan);
    dtm_buf_addc(&b, "</dtm:QueryStatsResponse>");
    dtm_result_free(&res);
    return reply_envelope(r, &b);
}

static int ping(struct dtm_req *r)
{
    struct dtm_buf b;
    char now[48];
    dtm_time_fmt(dtm_now_us(), now, sizeof(now));
    dtm_buf_init(&b, 4096);
    dtm_soap_begin(&b, version(r));
    dtm_buf_addc(&b, "<dtm:PingResponse>");
    el(&b, "status", "ok");
    el(&b, "version", DTM_VERSION);
    el(&b, "systemCode", r->sys.code);
    el(&b, "time", now);
    dtm_buf_addc(&b, "</dtm:PingResponse>");
    return reply_envelope(r, &b);
}

/* SOAP 1.1: the SOAPAction header must be there (WS-I BP R2744); when not empty it names the
 * operation of the body ("urn:dtm:soap/NAME", quotes allowed). True after answering 400. */
static bool action_refused(struct dtm_req *r, const char *op)
{
    struct dtm_str a = dtm_str_trim(dtm_http_header(r, "SOAPAction"));
    char want[96];
    if (version(r) != DTM_SOAP_11)
        return false;
    if (!a.p) {
        dtm_http_problem(r, 400, "soap_action", "Bad request",
                         "A SOAP 1.1 request needs the SOAPAction header (\"urn:dtm:soap/%s\").",
                         op);
        return true;
    }
    if (a.n >= 2 && a.p[0] == '"' && a.p[a.n - 1] == '"')
        a = (struct dtm_str){a.p + 1, a.n - 2};
    snprintf(want, sizeof(want), DTM_SOAP_NS "/%s", op);
    if (a.n == 0 || dtm_str_eqc(a, want))
        return false;
    dtm_http_problem(r, 400, "soap_action", "Bad request",
                     "The SOAPAction header does not name the operation in the body (%s).", op);
    return true;
}

/* Answers a refused envelope: why.detail is one of soap.c's own msgids, with one %s. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static int refused(struct dtm_req *r, const struct dtm_soap_refusal *why)
{
    return dtm_http_problem(r, why->status, why->code,
                            why->status == 413 ? "Request too large" : "Malformed request",
                            why->detail, why->arg);
}
#pragma GCC diagnostic pop

int dtm_api_soap(struct dtm_req *r)
{
    struct dtm_soap_request *q = dtm_arena_alloc(&r->arena, sizeof(*q));
    struct dtm_soap_refusal why;
    int rc;
    if (!q)
        return DTM_ENOMEM;
    rc = dtm_soap_request_read((struct dtm_str){r->body.p ? r->body.p : "", r->body.n}, version(r),
                               q, &why);
    if (rc == DTM_EMALFORMED) {
        dtm_soap_request_free(q);
        /* no credential could be read: charged to the address like any anonymous call */
        if (!r->authenticated && dtm_http_gate_key(r, DTM_STR_NULL, DTM_STR_NULL) == DTM_HTTP_ASYNC)
            return DTM_OK; /* 429 answered */
        return refused(r, &why);
    }
    if (rc) {
        dtm_soap_request_free(q);
        return rc;
    }
    if (action_refused(r, q->op_name))
        goto answered;
    /* the key of X-API-Key was checked by the router; else the UsernameToken's */
    if (!r->authenticated) {
        rc = dtm_http_gate_key(r, dtm_str_c(q->password), dtm_str_c(q->username));
        if (rc == DTM_EAUTH) {
            dtm_http_problem(r, 401, "unauthenticated", "Authentication required",
                             "A valid API key is required: the X-API-Key header, or a WS-Security "
                             "UsernameToken (username = system code, password = API key).");
            goto answered;
        }
        if (rc == DTM_HTTP_ASYNC)
            goto answered;
        if (rc)
            goto out;
    }
    if (!strcmp(q->op_name, "SubmitRecords")) {
        rc = submit_records(r, q); /* frees q before handing the records on */
        dtm_soap_request_free(q);
        return rc;
    }
    if (!strcmp(q->op_name, "GetBatchStatus"))
        rc = batch_status(r, q);
    else if (!strcmp(q->op_name, "QueryStats"))
        rc = query_stats(r, q);
    else if (!strcmp(q->op_name, "Ping"))
        rc = ping(r);
    else
        rc = dtm_http_problem(r, 400, "unknown_operation", "Bad request",
                              "Unknown operation <%s>: the operations are SubmitRecords, "
                              "GetBatchStatus, QueryStats and Ping (GET /soap?wsdl).",
                              q->op_name);
out:
    dtm_soap_request_free(q);
    return rc;
answered:
    dtm_soap_request_free(q);
    return DTM_OK;
}
