/* api/receipts.c — GET /api/v1/receipts/{id}: what one request stored (counts, and the records
 * whose current version came with it, as stored — masked). Only the sending system sees it;
 * anyone else gets 404, so receipt ids reveal nothing. */
#include "api/api.h"
#include "ingest/ingest.h"

#include <string.h>

#define RECEIPT_RECORDS_MAX 10000

static int record_json(void *ctx, const struct dtm_record_version *v)
{
    struct dtm_buf *b = ctx;
    if (b->p[b->n - 1] != '[')
        dtm_buf_addch(b, ',');
    dtm_buf_add(b, v->content.p, v->content.n);
    return b->err;
}

int dtm_api_receipt_get(struct dtm_req *r)
{
    char id[128], tag[DTM_ID_MAX], ts[40], pub[96];
    struct dtm_receipt rc;
    struct dtm_store *st = dtm_http_store(r);
    struct dtm_buf b;
    int64_t seq;
    int err;
    if (!st)
        return DTM_ESTORE;
    if (r->params[0].n >= sizeof(id))
        goto not_found;
    memcpy(id, r->params[0].p, r->params[0].n);
    id[r->params[0].n] = '\0';
    if (dtm_receipt_parse(id, &seq, tag, sizeof(tag)))
        goto not_found;
    err = st->ops->receipt_get(st, seq, &rc);
    if (err == DTM_ENOTFOUND)
        goto not_found;
    if (err)
        return err;
    if (strlen(tag) != strlen(rc.id) || !dtm_ct_equal(tag, rc.id, strlen(tag)) ||
        strcmp(rc.system_code, r->sys.code) != 0)
        goto not_found;
    dtm_receipt_format(&rc, pub, sizeof(pub));
    dtm_time_fmt(rc.received_at, ts, sizeof(ts));
    dtm_buf_init(&b, 256 << 20);
    dtm_buf_printf(&b, "{\"id\":\"%s\",\"dataset\":", pub);
    dtm_buf_json_strc(&b, rc.dataset);
    dtm_buf_addc(&b, ",\"system_code\":");
    dtm_buf_json_strc(&b, rc.system_code);
    dtm_buf_addc(&b, ",\"request_id\":");
    dtm_buf_json_strc(&b, rc.request_id);
    dtm_buf_printf(&b,
                   ",\"received_at\":\"%s\",\"accepted\":%lld,\"duplicates\":%lld,"
                   "\"updated\":%lld,\"rejected\":%lld,\"records\":[",
                   ts, (long long)rc.accepted, (long long)rc.duplicates, (long long)rc.updated,
                   (long long)rc.rejected);
    err = st->ops->receipt_records(st, seq, RECEIPT_RECORDS_MAX, record_json, &b);
    if (err) {
        dtm_buf_free(&b);
        return err;
    }
    dtm_buf_addc(&b, "]}");
    err = dtm_http_json(r, 200, &b);
    dtm_buf_free(&b);
    return err;
not_found:
    return dtm_http_problem(r, 404, "receipt_not_found", "Receipt not found",
                            "No receipt with this id belongs to system %s.", r->sys.code);
}
