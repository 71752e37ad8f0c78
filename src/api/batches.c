/* api/batches.c — batch files (CONTRACT §5): POST /api/v1/batches?dataset=D streams the body to
 * the spool and answers 202 once the file is on disk and the batch is queued; GET one, GET the
 * sender's list, GET its rejected rows (JSON or CSV, streamed page by page), DELETE cancels.
 * A system sees only its own batches; anyone else's are 404, so ids reveal nothing. */
#include "api/api.h"
#include "audit/audit.h"
#include "batch/batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Why an upload is refused: found at its first piece, answered at its end (libmicrohttpd
 * answers only once the body was read). */
enum refusal {
    OK,
    NO_DATASET,
    UNKNOWN_DATASET,
    BAD_TYPE,
    BAD_ENCODING,
    BAD_PRIORITY,
    BAD_MODE,
    MASKED_ONLY,
    NO_SYSTEM,
    BAD_SYSTEM,
    NO_SPOOL
};

struct upload {
    struct dtm_spool *spool;
    struct dtm_batch b;
    struct dtm_system sender; /* the system the file is for (a person names it) */
    enum refusal why;
    char arg[DTM_CODE_MAX];
};

static void upload_cleanup(struct dtm_req *r)
{
    struct upload *u = r->async;
    if (u)
        dtm_spool_close(u->spool); /* removes the .part of an upload that did not finish */
}

static int refuse(struct upload *u, enum refusal why, const char *arg)
{
    u->why = why;
    snprintf(u->arg, sizeof(u->arg), "%s", arg ? arg : "");
    return DTM_EINVAL;
}

static int answer_refusal(struct dtm_req *r, const struct upload *u)
{
    switch (u->why) {
    case NO_DATASET:
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "The query parameter 'dataset' is required: the code of the "
                                "dataset.");
    case UNKNOWN_DATASET:
        return dtm_http_problem(r, 404, "unknown_dataset", "Unknown dataset",
                                "There is no dataset '%s'; GET /api/v1/datasets lists them.",
                                u->arg);
    case BAD_TYPE:
        return dtm_http_problem(r, 415, "unsupported_media_type", "Unsupported media type",
                                "Send the file as application/json, application/x-ndjson, "
                                "application/xml or text/csv.");
    case BAD_ENCODING:
        return dtm_http_problem(r, 415, "unsupported_encoding", "Unsupported content encoding",
                                "Content-Encoding may be gzip or identity.");
    case BAD_PRIORITY:
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "The query parameter 'priority' must be one of: normal, high, "
                                "urgent.");
    case BAD_MODE:
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "The query parameter 'mode' must be one of: raw, masked.");
    case MASKED_ONLY:
        return dtm_http_problem(r, 403, "masked_only", "Masked data only",
                                "System %s is configured to send masked data; it cannot ask for "
                                "raw.",
                                u->arg);
    case NO_SYSTEM:
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "The query parameter 'system' is required when a person sends "
                                "a file: the code of the system the records are from.");
    case BAD_SYSTEM:
        return dtm_http_problem(r, 422, "unknown_system", "Invalid data",
                                "System %s does not exist or may not send data (its role must "
                                "be source or aggregator).",
                                u->arg);
    case NO_SPOOL:
    case OK:
        break;
    }
    return dtm_http_problem(r, 507, "insufficient_storage", "Cannot keep the file",
                            "The server cannot write the file to its spool.");
}

/* Checks the query and headers and opens the spool (first piece of the body, or the end of an
 * empty one). */
static int upload_start(struct dtm_req *r, struct upload *u)
{
    const struct dtm_server_env *env = dtm_http_env(r);
    const char *dataset = dtm_http_query(r, "dataset"), *prio = dtm_http_query(r, "priority");
    const char *mode = dtm_http_query(r, "mode");
    struct dtm_str enc = dtm_str_trim(dtm_http_header(r, "Content-Encoding"));
    enum dtm_format fmt;
    const struct dtm_dataset *ds;
    int rc;

    if (!dataset || !*dataset)
        return refuse(u, NO_DATASET, NULL);
    if (!(ds = dtm_dict_get(env->dict, dtm_str_c(dataset))))
        return refuse(u, UNKNOWN_DATASET, dataset);
    if (dtm_format_from_content_type(dtm_http_header(r, "Content-Type"), &fmt))
        return refuse(u, BAD_TYPE, NULL);
    if (enc.n && !dtm_str_ieqc(enc, "gzip") && !dtm_str_ieqc(enc, "identity"))
        return refuse(u, BAD_ENCODING, NULL);
    if (prio && dtm_batch_priority_parse(prio, &u->b.priority))
        return refuse(u, BAD_PRIORITY, NULL);
    if (mode && strcmp(mode, "masked") != 0 && strcmp(mode, "raw") != 0)
        return refuse(u, BAD_MODE, NULL);
    if (r->person) { /* an operator or admin sends a file on behalf of a system */
        const char *code = dtm_http_query(r, "system");
        struct dtm_store *st = dtm_http_store(r);
        if (!code || !*code)
            return refuse(u, NO_SYSTEM, NULL);
        if (!st)
            return DTM_ESTORE;
        rc =
            strlen(code) < DTM_CODE_MAX ? st->ops->system_get(st, code, &u->sender) : DTM_ENOTFOUND;
        if (rc == DTM_ENOTFOUND || (rc == DTM_OK && strcmp(u->sender.role, "source") &&
                                    strcmp(u->sender.role, "aggregator")))
            return refuse(u, BAD_SYSTEM, code);
        if (rc)
            return rc;
    } else {
        u->sender = r->sys;
    }
    if (u->sender.masked && mode && strcmp(mode, "raw") == 0)
        return refuse(u, MASKED_ONLY, u->sender.code);
    u->b.masked = u->sender.masked || (mode && strcmp(mode, "masked") == 0);
    if ((rc = dtm_random_id("b", u->b.id, sizeof(u->b.id))))
        return rc;
    snprintf(u->b.system_code, sizeof(u->b.system_code), "%s", u->sender.code);
    snprintf(u->b.dataset, sizeof(u->b.dataset), "%s", ds->code);
    snprintf(u->b.format, sizeof(u->b.format), "%s", dtm_format_name(fmt));
    snprintf(u->b.origin, sizeof(u->b.origin), "api");
    snprintf(u->b.status, sizeof(u->b.status), "queued");
    if ((rc = dtm_spool_open(env->conf, u->b.id, dtm_str_ieqc(enc, "gzip"), env->conf->max_batch,
                             &u->spool)))
        return refuse(u, NO_SPOOL, NULL);
    return DTM_OK;
}

int dtm_api_batch_body(struct dtm_req *r, const char *p, size_t n)
{
    struct upload *u = r->async;
    int rc;
    if (!u) {
        if (!(u = dtm_arena_alloc(&r->arena, sizeof(*u))))
            return DTM_ENOMEM;
        memset(u, 0, sizeof(*u));
        r->async = u;
        r->cleanup = upload_cleanup;
        if ((rc = upload_start(r, u)))
            return rc;
    }
    return dtm_spool_write(u->spool, p, n);
}

int dtm_api_batch_post(struct dtm_req *r)
{
    const struct dtm_server_env *env = dtm_http_env(r);
    struct upload *u = r->async;
    struct dtm_buf b;
    char loc[96];
    int rc;

    if (!u) { /* an empty body: no piece came */
        rc = dtm_api_batch_body(r, "", 0);
        if (!(u = r->async))
            return rc;
    }
    if (u->why != OK)
        return answer_refusal(r, u);
    switch (r->stream_rc) {
    case DTM_OK:
        break;
    case DTM_ETOOBIG:
        return dtm_http_problem(r, 413, "too_large", "Request too large",
                                "The file is larger than the %lld bytes accepted for a batch.",
                                (long long)env->conf->max_batch);
    case DTM_EMALFORMED:
        return dtm_http_problem(r, 400, "bad_gzip", "Malformed body",
                                "The body is not valid gzip (Content-Encoding: gzip).");
    case DTM_EIO:
        return dtm_http_problem(r, 507, "insufficient_storage", "Cannot keep the file",
                                "The server cannot write the file to its spool.");
    default:
        return r->stream_rc;
    }
    if ((rc = dtm_spool_finish(u->spool, &u->b.bytes))) {
        if (rc == DTM_EMALFORMED)
            return dtm_http_problem(r, 400, "bad_gzip", "Malformed body",
                                    "The gzip stream ends before its end (truncated upload?).");
        return dtm_http_problem(r, 507, "insufficient_storage", "Cannot keep the file",
                                "The server cannot write the file to its spool.");
    }
    if (u->b.bytes == 0) {
        char path[DTM_PATH_MAX];
        dtm_spool_path(env->conf, u->b.id, path, sizeof(path));
        unlink(path);
        return dtm_http_problem(r, 400, "empty", "Empty body", "The batch file is empty.");
    }
    u->b.created_at = dtm_now_us();
    if ((rc = dtm_batch_save(env->writer, &u->b, true)))
        return rc;
    dtm_spool_close(u->spool); /* the file stays: it is ID.data now */
    u->spool = NULL;
    dtm_batches_wake(env->batches);
    if (r->person && env->audit) { /* S3: a person sent data in a system's name */
        char ip[64], d[160];
        dtm_http_client_ip(r, ip, sizeof(ip));
        snprintf(d, sizeof(d), "{\"batch\":\"%s\",\"dataset\":\"%s\",\"bytes\":%lld}", u->b.id,
                 u->b.dataset, (long long)u->b.bytes);
        dtm_audit_record(env->audit,
                         &(struct dtm_audit_event){"user", r->user.username, "batch.uploaded",
                                                   u->b.system_code, d, ip});
    }
    snprintf(loc, sizeof(loc), "/api/v1/batches/%s", u->b.id);
    dtm_http_add_header(r, "Location", dtm_arena_strndup(&r->arena, loc, strlen(loc)));
    dtm_buf_init(&b, 64 * 1024);
    dtm_batch_json(&u->b, &b);
    rc = dtm_http_json(r, 202, &b);
    dtm_buf_free(&b);
    return rc;
}

/* The caller's batch named by the first path parameter; NULL after answering 404. */
static int own_batch(struct dtm_req *r, struct dtm_batch *out)
{
    return dtm_api_batch_own(r, r->params[0], out);
}

int dtm_api_batch_own(struct dtm_req *r, struct dtm_str bid, struct dtm_batch *out)
{
    struct dtm_store *st = dtm_http_store(r);
    char id[DTM_ID_MAX];
    int rc = DTM_ENOTFOUND;
    if (!st)
        return DTM_ESTORE;
    if (bid.n && bid.n < sizeof(id)) {
        memcpy(id, bid.p, bid.n);
        id[bid.n] = '\0';
        rc = st->ops->batch_get(st, id, out);
        /* a system sees its own batches; operators and admins every one */
        if (rc == DTM_OK && !r->person && strcmp(out->system_code, r->sys.code) != 0)
            rc = DTM_ENOTFOUND;
    }
    if (rc == DTM_ENOTFOUND)
        dtm_http_problem(r, 404, "batch_not_found", "Batch not found",
                         "No batch with this id belongs to system %s.", r->sys.code);
    return rc;
}

static int reply_batch(struct dtm_req *r, int status, const struct dtm_batch *bt)
{
    struct dtm_buf b;
    int rc;
    dtm_buf_init(&b, 64 * 1024);
    dtm_batch_json(bt, &b);
    rc = dtm_http_json(r, status, &b);
    dtm_buf_free(&b);
    return rc;
}

int dtm_api_batch_get(struct dtm_req *r)
{
    struct dtm_batch bt;
    int rc = own_batch(r, &bt);
    if (rc)
        return rc == DTM_ENOTFOUND ? DTM_OK : rc;
    return reply_batch(r, 200, &bt);
}

int dtm_api_batch_delete(struct dtm_req *r)
{
    struct dtm_batch bt;
    int rc = own_batch(r, &bt);
    if (rc)
        return rc == DTM_ENOTFOUND ? DTM_OK : rc;
    if (strcmp(bt.origin, "api") != 0 &&
        (strcmp(bt.status, "queued") == 0 || strcmp(bt.status, "running") == 0))
        return dtm_http_problem(r, 409, "batch_not_cancellable", "Batch run elsewhere",
                                "Batch %s is run by `dtm import` on the server's machine; stop "
                                "that command to cancel it.",
                                bt.id);
    rc = dtm_batches_cancel(dtm_http_env(r)->batches, dtm_http_store(r), bt.id, &bt);
    if (rc == DTM_ECONFLICT)
        return dtm_http_problem(r, 409, "batch_finished", "Batch already finished",
                                "Batch %s is %s; only queued or running batches can be cancelled.",
                                bt.id, bt.status);
    if (rc)
        return rc;
    return reply_batch(r, 200, &bt);
}

static int list_one(void *ctx, const struct dtm_batch *bt)
{
    struct dtm_buf *b = ctx;
    if (b->p[b->n - 1] != '[')
        dtm_buf_addch(b, ',');
    dtm_batch_json(bt, b);
    return b->err;
}

int dtm_api_batch_list(struct dtm_req *r)
{
    struct dtm_store *st = dtm_http_store(r);
    const char *lim = dtm_http_query(r, "limit");
    int64_t limit = 100;
    struct dtm_buf b;
    int rc;
    if (!st)
        return DTM_ESTORE;
    if (lim && (dtm_str_to_i64(dtm_str_c(lim), &limit) || limit < 1 || limit > 1000))
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "The query parameter '%s' must be an integer from 1 to 1000.",
                                "limit");
    dtm_buf_init(&b, 64 << 20);
    dtm_buf_addc(&b, "{\"batches\":[");
    rc = st->ops->batch_list(st, r->person ? NULL : r->sys.code, (size_t)limit, list_one, &b);
    dtm_buf_addc(&b, "]}");
    rc = rc ? rc : dtm_http_json(r, 200, &b);
    dtm_buf_free(&b);
    return rc;
}

/* ---- rejected rows, streamed a page at a time (a batch may have millions) */

#define ERRORS_PAGE 1000

struct errors_stream {
    struct dtm_store *st;
    const struct dtm_dataset *ds;
    enum dtm_lang lang;
    char id[DTM_ID_MAX];
    bool csv, started, finished;
    int64_t after;
    struct dtm_buf out;
    size_t sent;
};

static int error_row(void *ctx, const struct dtm_batch_error *e)
{
    struct errors_stream *s = ctx;
    struct dtm_rec_error re;
    struct dtm_buf m;
    dtm_batch_error_to_rec(e, s->ds, &re);
    dtm_buf_init(&m, 4096);
    dtm_rec_error_message(&re, s->lang, &m);
    if (s->csv) {
        dtm_buf_printf(&s->out, "%lld,%lld,", (long long)e->row, (long long)e->line);
        dtm_buf_csv(&s->out, dtm_str_c(e->field));
        dtm_buf_addch(&s->out, ',');
        dtm_buf_csv(&s->out, dtm_str_c(e->code));
        dtm_buf_addch(&s->out, ',');
        dtm_buf_csv(&s->out, (struct dtm_str){m.p ? m.p : "", m.n});
        dtm_buf_addc(&s->out, "\r\n");
    } else {
        if (s->after)
            dtm_buf_addch(&s->out, ',');
        dtm_buf_printf(&s->out, "{\"row\":%lld,\"line\":%lld,\"field\":", (long long)e->row,
                       (long long)e->line);
        dtm_buf_json_strc(&s->out, e->field);
        dtm_buf_addc(&s->out, ",\"code\":");
        dtm_buf_json_strc(&s->out, e->code);
        dtm_buf_addc(&s->out, ",\"message\":");
        dtm_buf_json_str(&s->out, (struct dtm_str){m.p ? m.p : "", m.n});
        dtm_buf_addch(&s->out, '}');
    }
    dtm_buf_free(&m);
    s->after = e->seq;
    return s->out.err;
}

static long errors_fill(void *ctx, char *buf, size_t max)
{
    struct errors_stream *s = ctx;
    while (s->sent == s->out.n && !s->finished) {
        int64_t before = s->after;
        dtm_buf_reset(&s->out);
        s->sent = 0;
        if (!s->started) {
            s->started = true;
            if (s->csv)
                dtm_buf_addc(&s->out, "row,line,field,code,message\r\n");
            else
                dtm_buf_printf(&s->out, "{\"id\":\"%s\",\"errors\":[", s->id);
        }
        if (s->st->ops->batch_errors(s->st, s->id, s->after, ERRORS_PAGE, error_row, s))
            return -1;
        if (s->after == before) {
            s->finished = true;
            if (!s->csv)
                dtm_buf_addc(&s->out, "]}");
        }
        if (s->out.err)
            return -1;
    }
    size_t n = DTM_MIN(max, s->out.n - s->sent);
    memcpy(buf, s->out.p + s->sent, n);
    s->sent += n;
    return (long)n;
}

static void errors_free(void *ctx)
{
    struct errors_stream *s = ctx;
    dtm_buf_free(&s->out);
    free(s);
}

int dtm_api_batch_errors(struct dtm_req *r)
{
    struct dtm_batch bt;
    struct errors_stream *s;
    struct dtm_str accept = dtm_http_header(r, "Accept");
    const char *fmt = dtm_http_query(r, "format");
    int rc = own_batch(r, &bt);
    if (rc)
        return rc == DTM_ENOTFOUND ? DTM_OK : rc;
    if (!(s = calloc(1, sizeof(*s))))
        return DTM_ENOMEM;
    s->st = dtm_http_store(r);
    s->ds = dtm_dict_get(dtm_http_env(r)->dict, dtm_str_c(bt.dataset));
    s->lang = r->lang;
    snprintf(s->id, sizeof(s->id), "%s", bt.id);
    s->csv = fmt ? strcmp(fmt, "csv") == 0 : dtm_str_contains(accept, "text/csv");
    dtm_buf_init(&s->out, 64 << 20);
    return dtm_http_stream(r, 200,
                           s->csv ? "text/csv; charset=utf-8" : "application/json; charset=utf-8",
                           errors_fill, s, errors_free);
}
