/* api/records.c — GET /api/v1/datasets/{code}/records (F3 share data, T3.4 export): a dataset's
 * current records as stored (personal fields stay masked), in event-time order, as JSON,
 * NDJSON, CSV or XML (stats/export.c formats them, as for `dtm export`).
 *
 * Paging: `limit` records a page (default 1000, at most 10 000) after the cursor `after`; the
 * next page's cursor is in a `Link: <…>; rel="next"` header, in the JSON member `next` and the
 * XML attribute `next`. A cursor is the (event time, id) of the last record of a page, so a
 * record stored later with an earlier event time is not in a paging already past it (a new
 * export finds it). So that the Link header can go first, a page is read twice: once to find
 * where it ends, once to stream it (never the whole answer in memory).
 *
 * Who sees what (CONTRACT §3): a source its own system's records, an aggregator its own and its
 * children's, a consumer every system's records of the datasets it is granted (`dtm grant`).
 * T3.2: a record classified `confidential` is exported only to the system it belongs to and to
 * the system that sent it; it still counts in statistics. */
#include "api/api.h"
#include "audit/audit.h"
#include "stats/stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_DEFAULT 1000
#define PAGE_MAX 10000
#define CHUNK 256 /* records read from the store at a time */
#define STOP 1    /* a row callback's "enough" */

/* ---- the caller's scope (shared with api/stats.c) */

struct children {
    const char *parent;
    struct dtm_api_scope *s;
};

static int child(void *ctx, const struct dtm_system *sys)
{
    struct children *c = ctx;
    if (strcmp(sys->parent, c->parent) != 0)
        return DTM_OK;
    if (c->s->n == DTM_API_SCOPE_MAX)
        return DTM_ETOOBIG;
    snprintf(c->s->codes[c->s->n], sizeof(c->s->codes[0]), "%s", sys->code);
    c->s->ptrs[c->s->n] = c->s->codes[c->s->n];
    c->s->n++;
    return DTM_OK;
}

int dtm_api_scope(struct dtm_req *r, struct dtm_store *st, const struct dtm_dataset *ds,
                  struct dtm_api_scope *out)
{
    int rc;
    memset(out, 0, sizeof(*out));
    /* T2.4: an OAuth token's scopes narrow its system's role: reading needs scope read, and a
     * token that names datasets reads only those */
    if (!dtm_token_allows(&r->token, false, dtm_str_c(ds->code))) {
        dtm_http_problem(r, 403, "insufficient_scope", "Forbidden",
                         "The access token's scope does not allow reading dataset %s; ask POST "
                         "/oauth/token for scope read and dataset:%s.",
                         ds->code, ds->code);
        return DTM_EFORBIDDEN;
    }
    /* People: the router admitted their role (analyst, auditor, admin: every system) */
    if (r->person) {
        out->all = true;
        return DTM_OK;
    }
    if (strcmp(r->sys.role, "consumer") == 0) {
        rc = st->ops->grant_check(st, r->sys.code, ds->code);
        if (rc == DTM_ENOTFOUND) {
            dtm_http_problem(r, 403, "not_granted", "Forbidden",
                             "System %s is not granted dataset %s; an administrator grants it "
                             "with `dtm grant add`.",
                             r->sys.code, ds->code);
            return DTM_EFORBIDDEN;
        }
        if (rc)
            return rc;
        out->all = true;
        return DTM_OK;
    }
    if (strcmp(r->sys.role, "source") != 0 && strcmp(r->sys.role, "aggregator") != 0) {
        dtm_http_problem(r, 403, "forbidden", "Forbidden",
                         "System %s has role %s, which may not read records.", r->sys.code,
                         r->sys.role);
        return DTM_EFORBIDDEN;
    }
    snprintf(out->codes[0], sizeof(out->codes[0]), "%s", r->sys.code);
    out->ptrs[0] = out->codes[0];
    out->n = 1;
    if (strcmp(r->sys.role, "aggregator") == 0) {
        struct children c = {r->sys.code, out};
        rc = st->ops->system_list(st, child, &c);
        if (rc == DTM_ETOOBIG) {
            dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                             "Too many child systems or conditions for one query.");
            return DTM_ETOOBIG;
        }
        if (rc)
            return rc;
    }
    return DTM_OK;
}

/* ---- one page */

enum state { S_HEAD, S_BODY, S_TAIL, S_DONE };

struct page {
    struct dtm_req *r;
    struct dtm_store *st;
    const struct dtm_dataset *ds;
    enum dtm_export_format fmt;
    struct dtm_query q; /* from, to and where */
    struct dtm_api_scope scope;
    char caller[DTM_USERNAME_MAX]; /* a system code, or a person's user name */
    bool person;
    bool confidential_ok; /* admins and auditors see confidential records */
    int classification;   /* field index, -1 = the dataset has none */
    size_t limit;
    /* where reading is (the last row read) and where the page ends (bounded: a next page) */
    int64_t at_time, at_id;
    bool bounded;
    int64_t end_time, end_id;
    char next[64];
    /* reading */
    size_t rows;    /* rows handed out by the last store call */
    size_t matched; /* lookahead: visible rows */
    bool more;      /* lookahead: a row past the page */
    bool past_end;  /* streaming: a row past the page's end */
    enum state state;
    int64_t n; /* records written */
    struct dtm_export_row row;
    struct dtm_buf out;
    size_t off;
    /* S3: the download's audit entry, recorded when the stream ends (the request may be gone by
     * then: everything it needs is copied here) */
    struct dtm_audit *audit; /* NULL = not streamed (yet) */
    char ip[64];
    struct dtm_buf detail; /* the entry's detail without its closing members */
};

/* The audit entry of a page that was streamed (export.records): caller, dataset, filters and
 * the records sent. Filter values of personal fields are not written (S3: no personal value). */
static void audit_download(struct page *p)
{
    dtm_buf_printf(&p->detail, ",\"records\":%lld,\"complete\":%s}", (long long)p->n,
                   p->state == S_DONE ? "true" : "false");
    dtm_audit_record(p->audit, &(struct dtm_audit_event){
                                   p->person ? "user" : "system", p->caller, "export.records",
                                   p->ds->code, p->detail.err ? NULL : p->detail.p, p->ip});
}

static void audit_prepare(struct page *p, const char *fmt, const char *after)
{
    struct dtm_req *r = p->r;
    struct dtm_buf *d = &p->detail;
    static const char *const names[] = {"from", "to"};
    dtm_buf_init(d, DTM_AUDIT_DETAIL_MAX - 64);
    dtm_buf_addc(d, "{\"key_id\":");
    dtm_buf_json_strc(d, r->key.id);
    dtm_buf_addc(d, ",\"format\":");
    dtm_buf_json_strc(d, fmt);
    for (size_t i = 0; i < DTM_ARRAY_LEN(names); i++) {
        const char *v = dtm_http_query(r, names[i]);
        dtm_buf_printf(d, ",\"%s\":", names[i]);
        if (v)
            dtm_buf_json_str(d, (struct dtm_str){v, strnlen(v, 64)});
        else
            dtm_buf_addc(d, "null");
    }
    dtm_buf_addc(d, ",\"where\":[");
    for (size_t w = 0; w < p->q.nwhere; w++) {
        const struct dtm_where *wh = &p->q.where[w];
        const struct dtm_field_def *f = &p->ds->fields[wh->field];
        dtm_buf_addc(d, w ? ",{\"field\":" : "{\"field\":");
        dtm_buf_json_strc(d, f->name);
        dtm_buf_addc(d, ",\"values\":[");
        for (size_t i = 0; i < wh->nvalues; i++) {
            if (i)
                dtm_buf_addch(d, ',');
            dtm_buf_json_strc(d, f->personal ? "[personal]" : wh->values[i]);
        }
        dtm_buf_addc(d, "]}");
    }
    dtm_buf_printf(d, "],\"after\":%s,\"limit\":%zu", after ? "true" : "false", p->limit);
    dtm_http_client_ip(r, p->ip, sizeof(p->ip));
    p->audit = dtm_http_env(r)->audit;
}

static void page_free(void *ctx)
{
    struct page *p = ctx;
    if (p->audit)
        audit_download(p);
    dtm_buf_free(&p->detail);
    dtm_export_row_free(&p->row);
    dtm_buf_free(&p->out);
    free(p);
}

static bool after_end(const struct page *p, const struct dtm_record_row *row)
{
    return p->bounded && (row->event_time > p->end_time ||
                          (row->event_time == p->end_time && row->id > p->end_id));
}

/* Whether the caller gets this record: where conditions and classification (the system scope
 * was applied by the store). Reads the record into p->row. */
static int visible(struct page *p, const struct dtm_record_row *row, bool *ok)
{
    int rc = dtm_export_row_read(&p->row, row->content);
    *ok = false;
    if (rc == DTM_EMALFORMED)
        return DTM_OK; /* not a record we wrote: skipped, as statistics do */
    if (rc)
        return rc;
    for (size_t w = 0; w < p->q.nwhere; w++) {
        const struct dtm_where *wh = &p->q.where[w];
        const char *v = dtm_export_get(&p->row, (size_t)wh->field);
        bool hit = false;
        for (size_t i = 0; v && i < wh->nvalues && !hit; i++)
            hit = strcmp(v, wh->values[i]) == 0;
        if (!hit)
            return DTM_OK;
    }
    /* T3.2: a confidential record only to its own system, to the system that sent it, and to
     * admins and auditors */
    if (p->classification >= 0 && !p->confidential_ok) {
        const char *cl = dtm_export_get(&p->row, (size_t)p->classification);
        if (cl && strcmp(cl, "confidential") == 0 &&
            (p->person ||
             (!dtm_str_eqc(row->system_code, p->caller) && !dtm_str_eqc(row->sender, p->caller))))
            return DTM_OK;
    }
    *ok = true;
    return DTM_OK;
}

static int look_row(void *ctx, const struct dtm_record_row *row)
{
    struct page *p = ctx;
    bool ok;
    int rc;
    p->rows++;
    p->at_time = row->event_time;
    p->at_id = row->id;
    if ((rc = visible(p, row, &ok)) || !ok)
        return rc;
    if (++p->matched > p->limit) {
        p->more = true;
        return STOP;
    }
    if (p->matched == p->limit) {
        p->end_time = row->event_time;
        p->end_id = row->id;
    }
    return DTM_OK;
}

static int emit_row(void *ctx, const struct dtm_record_row *row)
{
    struct page *p = ctx;
    bool ok;
    int rc;
    p->rows++;
    if (after_end(p, row)) {
        p->past_end = true;
        return STOP;
    }
    p->at_time = row->event_time;
    p->at_id = row->id;
    if ((rc = visible(p, row, &ok)) || !ok)
        return rc;
    dtm_export_append(&p->row, p->fmt, p->n, &p->out);
    p->r->records = ++p->n; /* so far: a connection log's count if the client goes away */
    return p->out.err;
}

/* The next CHUNK rows after p's position; *end when the data ended. */
static int read_chunk(struct page *p, dtm_record_row_cb cb, bool *end)
{
    const struct dtm_store_ops *ops = p->st->ops;
    int rc;
    p->rows = 0;
    rc = ops->record_page(p->st, p->ds->code, p->q.from, p->q.to, p->at_time, p->at_id,
                          p->scope.all ? NULL : p->scope.ptrs, p->scope.all ? 0 : p->scope.n, CHUNK,
                          cb, p);
    *end = rc == DTM_OK && p->rows < CHUNK;
    return rc;
}

static void cursor_fmt(int64_t t, int64_t id, char *out, size_t outsz)
{
    if (t == INT64_MAX)
        snprintf(out, outsz, "n.%lld", (long long)id);
    else
        snprintf(out, outsz, "%lld.%lld", (long long)t, (long long)id);
}

static int cursor_parse(const char *s, int64_t *t, int64_t *id)
{
    const char *dot = strrchr(s, '.');
    struct dtm_str ts;
    if (!dot || dtm_str_to_i64(dtm_str_c(dot + 1), id) || *id < 0)
        return DTM_EINVAL;
    ts = (struct dtm_str){s, (size_t)(dot - s)};
    if (dtm_str_eqc(ts, "n")) {
        *t = INT64_MAX;
        return DTM_OK;
    }
    return dtm_str_to_i64(ts, t) || *t == INT64_MAX ? DTM_EINVAL : DTM_OK;
}

/* Finds where the page ends: the position of its limit-th record, when one more follows. */
static int lookahead(struct page *p)
{
    int64_t t = p->at_time, id = p->at_id;
    bool end = false;
    int rc = DTM_OK;
    while (!end && !p->more && rc == DTM_OK)
        rc = read_chunk(p, look_row, &end);
    if (rc == STOP)
        rc = DTM_OK;
    p->bounded = p->more;
    if (p->more)
        cursor_fmt(p->end_time, p->end_id, p->next, sizeof(p->next));
    p->at_time = t; /* back to the start for streaming */
    p->at_id = id;
    return rc;
}

static void head(struct page *p)
{
    struct dtm_buf *b = &p->out;
    switch (p->fmt) {
    case DTM_EXPORT_JSON:
        dtm_buf_addc(b, "{\"dataset\":");
        dtm_buf_json_strc(b, p->ds->code);
        dtm_buf_addc(b, ",\"next\":");
        if (p->next[0])
            dtm_buf_json_strc(b, p->next);
        else
            dtm_buf_addc(b, "null");
        dtm_buf_addc(b, ",\"records\":[");
        break;
    case DTM_EXPORT_CSV:
        dtm_export_csv_header(p->ds, b);
        break;
    case DTM_EXPORT_XML:
        dtm_buf_addc(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<records dataset=\"");
        dtm_buf_xml(b, dtm_str_c(p->ds->code));
        if (p->next[0]) {
            dtm_buf_addc(b, "\" next=\"");
            dtm_buf_xml(b, dtm_str_c(p->next));
        }
        dtm_buf_addc(b, "\">\n");
        break;
    default:
        break;
    }
}

static void tail(struct page *p)
{
    if (p->fmt == DTM_EXPORT_JSON)
        dtm_buf_printf(&p->out, "%s],\"count\":%lld}\n", p->n ? "\n" : "", (long long)p->n);
    else if (p->fmt == DTM_EXPORT_XML)
        dtm_buf_addc(&p->out, "</records>\n");
}

static long fill(void *ctx, char *buf, size_t max)
{
    struct page *p = ctx;
    size_t n;
    while (p->off == p->out.n) {
        bool end = false;
        int rc = DTM_OK;
        dtm_buf_reset(&p->out);
        p->off = 0;
        switch (p->state) {
        case S_HEAD:
            head(p);
            p->state = S_BODY;
            break;
        case S_BODY:
            rc = read_chunk(p, emit_row, &end);
            if (rc == STOP)
                rc = DTM_OK;
            if (end || p->past_end)
                p->state = S_TAIL;
            break;
        case S_TAIL:
            tail(p);
            p->r->records = p->n;
            p->state = S_DONE;
            break;
        case S_DONE:
            return 0;
        }
        if (rc || p->out.err) {
            dtm_logf(DTM_LOG_ERROR, "record export stopped", "\"dataset\":\"%s\",\"error\":\"%s\"",
                     p->ds->code, dtm_rc_name(rc ? rc : p->out.err));
            return -1;
        }
    }
    n = DTM_MIN(max, p->out.n - p->off);
    memcpy(buf, p->out.p + p->off, n);
    p->off += n;
    return (long)n;
}

/* ---- the handler */

/* Appends ?name=value or &name=value (after the first), percent-encoded (RFC 3986 unreserved
 * characters kept). */
static void query_arg(struct dtm_buf *b, bool *first, const char *name, const char *v)
{
    static const char hex[] = "0123456789ABCDEF";
    dtm_buf_addch(b, *first ? '?' : '&');
    *first = false;
    dtm_buf_addc(b, name);
    dtm_buf_addch(b, '=');
    for (const unsigned char *c = (const unsigned char *)v; *c; c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
            *c == '-' || *c == '.' || *c == '_' || *c == '~') {
            dtm_buf_addch(b, (char)*c);
        } else {
            dtm_buf_addch(b, '%');
            dtm_buf_addch(b, hex[*c >> 4]);
            dtm_buf_addch(b, hex[*c & 15]);
        }
    }
}

/* The Link header of the next page: this request's parameters with after=NEXT. */
static const char *next_link(struct dtm_req *r, const char *next, const char *const *wheres,
                             size_t nwheres)
{
    static const char *const names[] = {"from", "to", "format", "limit"};
    struct dtm_buf b;
    const char *out = NULL;
    bool first = true;
    dtm_buf_init(&b, 64 * 1024);
    dtm_buf_addch(&b, '<');
    dtm_buf_addc(&b, r->path);
    for (size_t i = 0; i < DTM_ARRAY_LEN(names); i++) {
        const char *v = dtm_http_query(r, names[i]);
        if (v)
            query_arg(&b, &first, names[i], v);
    }
    for (size_t i = 0; i < nwheres; i++)
        query_arg(&b, &first, "where", wheres[i]);
    query_arg(&b, &first, "after", next);
    dtm_buf_addc(&b, ">; rel=\"next\"");
    if (!b.err)
        out = dtm_arena_strndup(&r->arena, b.p, b.n);
    dtm_buf_free(&b);
    return out;
}

static const char *content_type(enum dtm_export_format f)
{
    switch (f) {
    case DTM_EXPORT_CSV:
        return "text/csv; charset=utf-8";
    case DTM_EXPORT_NDJSON:
        return "application/x-ndjson; charset=utf-8";
    case DTM_EXPORT_XML:
        return "application/xml; charset=utf-8";
    default:
        return "application/json; charset=utf-8";
    }
}

int dtm_api_records(struct dtm_req *r)
{
    const struct dtm_dataset *ds = dtm_api_dataset(r);
    struct dtm_store *st = dtm_http_store(r);
    const char *wheres[DTM_STATS_MAX_WHERE + 1];
    const char *fmt = dtm_http_query(r, "format"), *limit_s = dtm_http_query(r, "limit");
    const char *after = dtm_http_query(r, "after"), *bad = NULL;
    struct dtm_str accept = dtm_http_header(r, "Accept");
    size_t nwheres;
    int64_t limit = PAGE_DEFAULT;
    char err[512];
    struct page *p;
    int rc;

    if (!ds)
        return DTM_OK; /* answered 404 */
    if (!st)
        return DTM_ESTORE;
    nwheres = dtm_http_query_all(r, "where", wheres, DTM_ARRAY_LEN(wheres));
    if (nwheres > DTM_STATS_MAX_WHERE)
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "At most %d where conditions.", DTM_STATS_MAX_WHERE);
    if (limit_s && (dtm_str_to_i64(dtm_str_c(limit_s), &limit) || limit < 1 || limit > PAGE_MAX))
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "Parameter 'limit' must be an integer from 1 to %d.", PAGE_MAX);
    if (!(p = calloc(1, sizeof(*p))))
        return DTM_ENOMEM;
    p->r = r;
    p->st = st;
    p->ds = ds;
    p->limit = (size_t)limit;
    p->at_time = INT64_MIN;
    p->classification = -1;
    snprintf(p->caller, sizeof(p->caller), "%s", r->person ? r->user.username : r->sys.code);
    p->person = r->person;
    p->confidential_ok =
        r->person && (strcmp(r->user.role, "admin") == 0 || strcmp(r->user.role, "auditor") == 0);
    dtm_export_row_init(&p->row, ds);
    dtm_buf_init(&p->out, 64 << 20);
    if (!fmt)
        fmt = dtm_str_contains(accept, "text/csv")               ? "csv"
              : dtm_str_contains(accept, "application/x-ndjson") ? "ndjson"
              : dtm_str_contains(accept, "application/xml")      ? "xml"
                                                                 : "json";
    if (dtm_export_format_parse(fmt, &p->fmt) || p->fmt == DTM_EXPORT_XLSX) {
        rc = dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                              "Parameter 'format' must be json, ndjson, csv or xml.");
        goto fail;
    }
    if (after && cursor_parse(after, &p->at_time, &p->at_id)) {
        rc = dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                              "Parameter 'after' must be a cursor given by a previous page.");
        goto fail;
    }
    if (dtm_query_parse(ds, NULL, NULL, NULL, dtm_http_query(r, "from"), dtm_http_query(r, "to"),
                        wheres, nwheres, &p->q, &bad, err, sizeof(err))) {
        rc = dtm_http_problem(r, 400, "bad_parameter", "Bad parameter", "Parameter '%s': %s", bad,
                              err);
        goto fail;
    }
    if ((rc = dtm_api_scope(r, st, ds, &p->scope))) {
        rc = r->responded ? DTM_OK : rc;
        goto fail;
    }
    for (size_t i = 0; i < ds->nfields; i++)
        if (strcmp(ds->fields[i].name, "classification") == 0)
            p->classification = (int)i;
    if ((rc = lookahead(p)))
        goto fail;
    if (p->next[0]) {
        const char *link = next_link(r, p->next, wheres, nwheres);
        if (link)
            dtm_http_add_header(r, "Link", link);
    }
    r->records = 0; /* set at the end of the stream */
    audit_prepare(p, fmt, after);
    return dtm_http_stream(r, 200, content_type(p->fmt), fill, p, page_free);
fail:
    page_free(p);
    return rc;
}
