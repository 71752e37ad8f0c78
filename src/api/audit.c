/* api/audit.c — GET /api/v1/audit (S3, D6; auditors and admins): the audit trail, oldest first,
 * filtered by from/to (dates or RFC 3339 times), actor and action, a page of `limit` entries
 * (default 1000, at most 10 000) after the cursor `after` (a seq); JSON, or CSV with
 * `format=csv` / `Accept: text/csv` (the columns of `dtm audit list`). Every read is itself
 * audited (audit.exported). The trail cannot be changed through the API. */
#include "api/api.h"
#include "audit/audit.h"

#include <stdio.h>
#include <string.h>

#define PAGE_DEFAULT 1000
#define PAGE_MAX 10000

struct page {
    struct dtm_buf *b;
    bool csv;
    int64_t n, last;
};

static int one(void *ctx, const struct dtm_audit_entry *e)
{
    struct page *x = ctx;
    x->last = e->seq;
    return dtm_audit_entry_format(x->b, e, !x->csv, x->n++ == 0, x->csv ? "\r\n" : "");
}

int dtm_api_audit_list(struct dtm_req *r)
{
    const char *from = dtm_http_query(r, "from"), *to = dtm_http_query(r, "to"),
               *actor = dtm_http_query(r, "actor"), *action = dtm_http_query(r, "action"),
               *format = dtm_http_query(r, "format"), *lim = dtm_http_query(r, "limit"),
               *after = dtm_http_query(r, "after");
    struct dtm_audit_filter f = {INT64_MIN, INT64_MAX, NULL, NULL};
    int64_t limit = PAGE_DEFAULT, after_seq = 0;
    struct dtm_store *st;
    struct dtm_buf b, d;
    struct page x;
    char ip[64];
    int rc;
    bool csv;
    if (format && strcmp(format, "csv") != 0 && strcmp(format, "json") != 0)
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "Parameter 'format' must be json or csv.");
    csv = format ? strcmp(format, "csv") == 0
                 : dtm_str_contains(dtm_http_header(r, "Accept"), "text/csv");
    if (from && dtm_time_bound_parse(dtm_str_c(from), false, &f.from))
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "Parameter 'from' must be a date (2026-10-05) or an RFC 3339 "
                                "time.");
    if (to && dtm_time_bound_parse(dtm_str_c(to), true, &f.to))
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "Parameter 'to' must be a date (2026-10-05) or an RFC 3339 time.");
    if (lim && (dtm_str_to_i64(dtm_str_c(lim), &limit) || limit < 1 || limit > PAGE_MAX))
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "Parameter 'limit' must be an integer from 1 to %d.", PAGE_MAX);
    if (after && (dtm_str_to_i64(dtm_str_c(after), &after_seq) || after_seq < 0))
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "Parameter 'after' must be the seq of an entry.");
    if ((actor && strlen(actor) > 256) || (action && strlen(action) > 64))
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "Parameters 'actor' and 'action' are too long.");
    f.actor = actor && *actor ? actor : NULL;
    f.action = action && *action ? action : NULL;
    if (!(st = dtm_http_store(r)))
        return DTM_ESTORE;
    dtm_buf_init(&b, 64 << 20);
    x = (struct page){&b, csv, 0, after_seq};
    if (csv)
        dtm_buf_addc(&b, "seq,at,actor_kind,actor,action,target,detail,source_ip,hash\r\n");
    else
        dtm_buf_addc(&b, "{\"entries\":[");
    rc = st->ops->audit_list(st, &f, after_seq, (size_t)limit, one, &x);
    if (rc) {
        dtm_buf_free(&b);
        return rc < 0 ? rc : DTM_EINTERNAL;
    }
    if (!csv) {
        dtm_buf_addc(&b, "],\"next\":");
        if (x.n == limit)
            dtm_buf_printf(&b, "\"%lld\"", (long long)x.last);
        else
            dtm_buf_addc(&b, "null");
        dtm_buf_addch(&b, '}');
    }
    /* the read is an export of the trail: recorded */
    dtm_buf_init(&d, DTM_AUDIT_DETAIL_MAX - 64);
    dtm_buf_printf(&d, "{\"format\":\"%s\",\"entries\":%lld,\"after\":%lld,\"actor\":",
                   csv ? "csv" : "json", (long long)x.n, (long long)after_seq);
    if (f.actor)
        dtm_buf_json_str(&d, (struct dtm_str){f.actor, strnlen(f.actor, 128)});
    else
        dtm_buf_addc(&d, "null");
    dtm_buf_addc(&d, ",\"action\":");
    if (f.action)
        dtm_buf_json_strc(&d, f.action);
    else
        dtm_buf_addc(&d, "null");
    dtm_buf_addch(&d, '}');
    dtm_http_client_ip(r, ip, sizeof(ip));
    dtm_audit_record(dtm_http_env(r)->audit,
                     &(struct dtm_audit_event){"user", r->user.username, "audit.exported", "",
                                               d.err ? NULL : d.p, ip});
    dtm_buf_free(&d);
    if (csv) {
        if (b.err)
            rc = dtm_http_error(r, b.err);
        else
            rc = dtm_http_reply(r, 200, "text/csv; charset=utf-8", b.p, b.n);
    } else {
        rc = dtm_http_json(r, 200, &b);
    }
    dtm_buf_free(&b);
    return rc;
}
