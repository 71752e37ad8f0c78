/* api/ingest.c — POST /api/v1/ingest/{dataset}, realtime receiving (CONTRACT §5, F1): read the
 * parameters, run the pipeline on the worker thread, hand the records to the writer, suspend the
 * request, and answer after the commit — so a 2xx always means "durably stored". */
#include "api/api.h"
#include "metrics/metrics.h"
#include "ingest/ingest.h"
#include "report/quality.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ERRORS 1000 /* record errors listed in one answer; `rejected` counts them all */

struct ingest {
    struct dtm_write_job job;
    struct dtm_ingest_out out;
    struct dtm_req *r;
    char receipt_id[96];
    /* renders a JSON answer (REST: as it is; SOAP: as an envelope) */
    int (*reply)(struct dtm_req *r, int status, const char *json, size_t len, bool replay);
};

void dtm_api_errors_json(struct dtm_buf *b, const struct dtm_rec_error *errs, size_t n,
                         enum dtm_lang lang)
{
    dtm_buf_addc(b, "\"errors\":[");
    for (size_t i = 0; i < n; i++) {
        const struct dtm_rec_error *e = &errs[i];
        const char *code = e->rule && e->rule->code[0] ? e->rule->code : e->code;
        if (i)
            dtm_buf_addch(b, ',');
        dtm_buf_printf(b, "{\"index\":%zu,\"field\":", e->index);
        dtm_buf_json_strc(b, e->field);
        dtm_buf_addc(b, ",\"code\":");
        dtm_buf_json_strc(b, code);
        dtm_buf_addc(b, ",\"message\":");
        {
            struct dtm_buf m;
            dtm_buf_init(&m, 8192);
            dtm_rec_error_message(e, lang, &m);
            dtm_buf_json_str(b, (struct dtm_str){m.p ? m.p : "", m.n});
            dtm_buf_free(&m);
        }
        dtm_buf_addch(b, '}');
    }
    dtm_buf_addch(b, ']');
}

/* Builds the 200 answer inside the writer's transaction (kept for Idempotency-Key replay). */
static int answer(struct dtm_write_job *j, struct dtm_buf *b)
{
    struct ingest *in = j->ctx;
    dtm_receipt_format(&j->receipt, in->receipt_id, sizeof(in->receipt_id));
    dtm_buf_printf(b, "{\"accepted\":%lld,\"duplicates\":%lld,\"updated\":%lld,\"rejected\":%zu,",
                   (long long)j->receipt.accepted, (long long)j->receipt.duplicates,
                   (long long)j->receipt.updated, in->out.rejected);
    dtm_api_errors_json(b, in->out.errs, in->out.nerrs, in->r->lang);
    dtm_buf_printf(b, ",\"receipt\":\"%s\"}", in->receipt_id);
    return b->err;
}

static void done(struct dtm_write_job *j)
{
    struct ingest *in = j->ctx;
    dtm_http_resume(in->r);
}

static int reply_answer(struct dtm_req *r, int status, const char *body, size_t len, bool replay)
{
    if (replay)
        dtm_http_add_header(r, "Idempotency-Replayed", "true");
    return dtm_http_reply(r, status,
                          status >= 400 ? "application/problem+json; charset=utf-8"
                                        : "application/json; charset=utf-8",
                          body, len);
}

static int idem_conflict(struct dtm_req *r)
{
    return dtm_http_problem(r, 409, "idempotency_key_reused", "Idempotency key reused",
                            "This Idempotency-Key was already used with a different request "
                            "within 24 hours.");
}

static int resumed(struct dtm_req *r)
{
    struct ingest *in = r->async;
    int rc;
    if (in->job.rc == DTM_ECONFLICT)
        rc = idem_conflict(r);
    else if (in->job.rc)
        rc = dtm_http_error(r, in->job.rc);
    else
        rc = in->reply(r, in->job.status, in->job.answer.p, in->job.answer.n, in->job.replayed);
    dtm_buf_free(&in->job.answer);
    return rc;
}

/* Hands a job to the writer and suspends the request until it is committed. */
static int submit(struct dtm_req *r, struct ingest *in)
{
    int rc;
    r->async = in;
    dtm_http_suspend(r, resumed);
    if ((rc = dtm_writer_submit(dtm_http_env(r)->writer, &in->job))) {
        in->job.rc = rc;
        dtm_http_resume(r);
    }
    return DTM_HTTP_ASYNC;
}

/* Answers a problem with the data. With an Idempotency-Key the answer is first kept (by the
 * writer, durably) so that a retry gets exactly this answer again. */
__attribute__((format(printf, 7, 8))) static int data_problem(struct dtm_req *r, struct ingest *in,
                                                              int status, const char *code,
                                                              const char *title, const char *extra,
                                                              const char *fmt, ...)
{
    va_list ap;
    int rc;
    va_start(ap, fmt);
    if (!in->job.idem_key.n) {
        rc = dtm_http_problem_v(r, status, code, title, extra, fmt, ap);
        va_end(ap);
        return rc;
    }
    rc = dtm_http_problem_build(r, status, code, title, extra, &in->job.answer, fmt, ap);
    va_end(ap);
    if (rc)
        return rc;
    in->job.preset = true;
    in->job.status = status;
    return submit(r, in);
}

static bool flag(const char *v, bool *out)
{
    if (!v)
        return true;
    if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "")) {
        *out = true;
        return true;
    }
    if (!strcmp(v, "false") || !strcmp(v, "0")) {
        *out = false;
        return true;
    }
    return false;
}

static bool valid_idem_key(struct dtm_str k)
{
    if (k.n == 0 || k.n > 255)
        return false;
    for (size_t i = 0; i < k.n; i++)
        if ((unsigned char)k.p[i] < 0x21 || (unsigned char)k.p[i] > 0x7e)
            return false;
    return true;
}

/* 422 with the record errors. */
__attribute__((format(printf, 4, 5))) static int problem_records(struct dtm_req *r,
                                                                 struct ingest *in,
                                                                 const struct dtm_ingest_out *o,
                                                                 const char *fmt, ...)
{
    struct dtm_buf x, b;
    va_list ap;
    int rc;
    /* nothing goes to the writer: the rejected records are counted here */
    dtm_metrics_records(in->job.dataset, in->job.system_code, 0, 0, 0, (int64_t)o->rejected);
    dtm_quality_note_rejected(dtm_http_env(r)->writer, in->job.dataset, in->job.system_code,
                              o->rejected, o->errs, o->nerrs);
    dtm_buf_init(&x, 32 << 20);
    dtm_buf_printf(&x, "\"accepted\":0,\"rejected\":%zu,", o->rejected);
    dtm_api_errors_json(&x, o->errs, o->nerrs, r->lang);
    if (x.err) {
        rc = x.err;
        dtm_buf_free(&x);
        return rc;
    }
    dtm_buf_init(&b, 4096);
    va_start(ap, fmt);
    dtm_buf_vprintf(&b, dtm_tr(r->lang, fmt), ap);
    va_end(ap);
    rc = data_problem(r, in, 422, "validation", "Invalid data", x.p, "%s", b.p ? b.p : "");
    dtm_buf_free(&b);
    dtm_buf_free(&x);
    return rc;
}

int dtm_api_ingest(struct dtm_req *r)
{
    const struct dtm_dataset *ds = dtm_api_dataset(r);
    struct dtm_str ctype = dtm_http_header(r, "Content-Type");
    struct dtm_api_ingest_args a = {
        .ds = ds,
        .content_type = ctype,
        .body = {r->body.p ? r->body.p : "", r->body.n},
        .idem_key = dtm_http_header(r, "Idempotency-Key"),
        .mode = dtm_http_query(r, "mode"),
        .reply = reply_answer,
    };

    if (!ds)
        return DTM_OK; /* answered 404 */
    if (ctype.n == 0 || dtm_format_from_content_type(ctype, &a.format) != DTM_OK)
        return dtm_http_problem(r, 415, "unsupported_media_type", "Unsupported media type",
                                "Send application/json, application/x-ndjson, application/xml or "
                                "text/csv (UTF-8); got '%.*s'.",
                                (int)DTM_MIN(ctype.n, 100), ctype.p ? ctype.p : "");
    if (!flag(dtm_http_query(r, "atomic"), &a.atomic))
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "Parameter %s must be true or false.", "atomic");
    return dtm_api_ingest_run(r, &a);
}

int dtm_api_ingest_run(struct dtm_req *r, const struct dtm_api_ingest_args *a)
{
    const struct dtm_server_env *env = dtm_http_env(r);
    const struct dtm_dataset *ds = a->ds;
    struct dtm_str ctype = a->content_type, idem = a->idem_key;
    const char *mode_s = a->mode;
    bool atomic = a->atomic;
    enum dtm_format fmt = a->format;
    enum dtm_mask_mode mode = r->sys.masked ? DTM_MODE_MASKED : DTM_MODE_RAW;
    struct dtm_store *st = dtm_http_store(r);
    struct ingest *in;
    uint8_t ih[32];
    int rc;

    if (!st)
        return DTM_ESTORE;
    if (mode_s) {
        if (!strcmp(mode_s, "masked")) {
            mode = DTM_MODE_MASKED;
        } else if (!strcmp(mode_s, "raw")) {
            if (r->sys.masked)
                return dtm_http_problem(r, 403, "masked_only", "Forbidden",
                                        "System %s is configured for masked data and may not "
                                        "send raw personal data (mode=raw).",
                                        r->sys.code);
            mode = DTM_MODE_RAW;
        } else {
            return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                    "Parameter %s must be one of: %s.", "mode", "raw, masked");
        }
    }
    if (idem.n) {
        struct dtm_idem prev;
        struct dtm_buf h;
        if (!valid_idem_key(idem))
            return dtm_http_problem(r, 400, "bad_idempotency_key", "Bad Idempotency-Key",
                                    "The Idempotency-Key must be 1 to 255 visible ASCII "
                                    "characters.");
        /* the request's identity: dataset, options, content type and body */
        dtm_buf_init(&h, 4096);
        dtm_buf_printf(&h, "%s\n%d\n%d\n", ds->code, atomic, (int)mode);
        dtm_buf_add(&h, ctype.p, ctype.n);
        dtm_buf_addch(&h, '\n');
        if (h.err) {
            dtm_buf_free(&h);
            return DTM_ENOMEM;
        }
        {
            /* hash header and body without copying the body */
            uint8_t hh[32], hb[32], both[64];
            dtm_sha256(h.p, h.n, hh);
            dtm_sha256(a->body.p ? a->body.p : "", a->body.n, hb);
            memcpy(both, hh, 32);
            memcpy(both + 32, hb, 32);
            dtm_sha256(both, 64, ih);
        }
        dtm_buf_free(&h);
        rc = st->ops->idem_get(st, r->sys.code, idem,
                               dtm_now_us() - env->conf->idempotency_ttl * 1000000, &prev);
        if (rc == DTM_OK) {
            bool same = dtm_ct_equal(prev.request_hash, ih, 32);
            if (same)
                rc = a->reply(r, prev.status, prev.body, prev.body_len, true);
            else
                rc = idem_conflict(r);
            free(prev.body);
            return rc;
        }
        if (rc != DTM_ENOTFOUND)
            return rc;
    }

    in = dtm_arena_alloc(&r->arena, sizeof(*in));
    if (!in)
        return DTM_ENOMEM;
    memset(in, 0, sizeof(*in));
    in->r = r;
    in->reply = a->reply;
    in->job.dataset = ds->code;
    in->job.system_code = r->sys.code;
    in->job.request_id = r->request_id;
    in->job.answer_fn = answer;
    in->job.ctx = in;
    in->job.done = done;
    in->job.idem_ttl_us = env->conf->idempotency_ttl * 1000000;
    dtm_buf_init(&in->job.answer, 64 << 20);
    if (idem.n) {
        in->job.idem_key = idem;
        memcpy(in->job.idem_hash, ih, 32);
    }
    {
        struct dtm_ingest_in pin = {
            .ds = ds,
            .caller = &r->sys,
            .keys = env->keys,
            .store = st,
            .format = fmt,
            .body = a->body,
            .mode = mode,
            .max_records = (size_t)env->conf->max_records,
            .max_errors = MAX_ERRORS,
        };
        dtm_ingest_prepare(&pin, &r->arena, &in->out);
    }
    r->records = (int64_t)in->out.total;
    switch (in->out.rc) {
    case DTM_OK:
        break;
    case DTM_EMALFORMED: {
        const struct dtm_decode_error *d = &in->out.derr;
        struct dtm_buf x;
        dtm_buf_init(&x, 4096);
        dtm_buf_printf(&x,
                       "\"line\":%zu,\"col\":%zu,\"byte\":%zu,\"errors\":[{\"index\":%zu,"
                       "\"field\":\"\",\"code\":",
                       d->line, d->col, d->offset, in->out.total);
        dtm_buf_json_strc(&x, d->code ? d->code : "syntax");
        dtm_buf_addc(&x, ",\"message\":");
        {
            struct dtm_buf m;
            dtm_buf_init(&m, 4096);
            dtm_buf_trf(&m, r->lang, "Line %zu, byte %zu: %s.", d->line, d->col,
                        d->detail[0] ? d->detail : "syntax error");
            dtm_buf_json_str(&x, (struct dtm_str){m.p ? m.p : "", m.n});
            dtm_buf_free(&m);
        }
        dtm_buf_addc(&x, "}]");
        rc = data_problem(r, in, 400, "malformed", "Malformed body", x.err ? NULL : x.p,
                          "The body is not valid %s at line %zu, byte %zu: %s.",
                          dtm_format_name(fmt), d->line, d->col,
                          d->detail[0] ? d->detail : "syntax error");
        dtm_buf_free(&x);
        return rc;
    }
    case DTM_ETOOBIG:
        return data_problem(r, in, 413, "too_many_records", "Too many records", NULL,
                            "A request may carry at most %lld records; send more as a batch "
                            "(POST /api/v1/batches).",
                            (long long)env->conf->max_records);
    case DTM_EFORBIDDEN:
        return dtm_http_problem(r, 403, "forbidden_system_code", "Forbidden",
                                "System %s may not send records of system %s.", r->sys.code,
                                in->out.forbidden_code);
    default:
        return in->out.rc;
    }
    if (in->out.total == 0)
        return data_problem(r, in, 422, "no_records", "No records", NULL,
                            "The body contains no records.");
    if (in->out.nrecs == 0)
        return problem_records(r, in, &in->out, "None of the %zu records is valid (%zu errors).",
                               in->out.total, in->out.errs_total);
    if (atomic && in->out.rejected)
        return problem_records(r, in, &in->out,
                               "%zu of %zu records are invalid; with atomic=true nothing was "
                               "stored.",
                               in->out.rejected, in->out.total);
    in->job.recs = in->out.recs;
    in->job.nrecs = in->out.nrecs;
    in->job.rejected = in->out.rejected;
    in->job.errs = in->out.errs;
    in->job.nerrs = in->out.nerrs;
    return submit(r, in);
}
