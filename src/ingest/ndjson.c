/* ndjson.c — the NDJSON / JSON Lines decoder: one flat JSON object per line, scanned with
 * json.c's object scanner. Lines are independent, so after a broken line next() goes on with
 * the next one: a batch file reports every bad row instead of stopping at the first. Blank
 * lines are skipped; "\r\n" line ends are accepted. */
#include "ingest/decode_impl.h"

#include <stdlib.h>
#include <string.h>

struct ndjson_decoder {
    struct dtm_decoder super;
    size_t pos;    /* start of the next line */
    size_t line;   /* number of the line that starts at pos */
    bool nonblank; /* a line with content was seen (else the body is "empty") */
    bool done;
    struct dtm_scratch sc;
};

static struct dtm_decoder *ndjson_open(const char *p, size_t n)
{
    struct ndjson_decoder *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    dtm_decoder_base_init(&d->super, &dtm_ndjson_ops, p, n);
    d->line = 1;
    if (n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        d->pos = 3; /* a BOM at the very start; columns still count it */
    return &d->super;
}

static void ndjson_close(struct dtm_decoder *base)
{
    struct ndjson_decoder *d = (struct ndjson_decoder *)base;
    dtm_scratch_free(&d->sc);
    free(d);
}

static int ndjson_next(struct dtm_decoder *base, struct dtm_in_record *out,
                       struct dtm_decode_error *err)
{
    struct ndjson_decoder *d = (struct ndjson_decoder *)base;
    const char *p = base->p;
    size_t n = base->n;

    dtm_scratch_reset(&d->sc);
    while (d->pos < n) {
        size_t start = d->pos, line = d->line, line_start, end, i;
        const char *nl = memchr(p + start, '\n', n - start);
        int rc;

        end = nl ? (size_t)(nl - p) : n;
        d->pos = nl ? end + 1 : n;
        d->line++;
        line_start = line == 1 ? 0 : start;
        if (end > start && p[end - 1] == '\r')
            end--;
        i = dtm_json_skip_ws(p, end, start);
        if (i == end)
            continue; /* blank line */
        d->nonblank = true;

        out->line = line;
        if (p[i] != '{') {
            if (dtm_json_value_start(p[i]))
                dtm_decode_fail(err, i, "not_an_object", "each line must be a JSON object");
            else
                dtm_decode_fail(err, i, "syntax", "expected '{'");
            rc = DTM_EMALFORMED;
        } else {
            rc = dtm_json_scan_object(p, end, &i, &d->sc, out, err);
            if (rc == DTM_OK) {
                i = dtm_json_skip_ws(p, end, i);
                if (i != end) {
                    dtm_decode_fail(err, i, "syntax", "unexpected data after the object");
                    rc = DTM_EMALFORMED;
                }
            }
        }
        if (rc == DTM_EMALFORMED) {
            err->line = line;
            err->col = err->offset - line_start + 1;
            return rc;
        }
        return rc ? rc : 1;
    }
    if (!d->nonblank && !d->done) {
        d->done = true;
        dtm_decode_fail(err, 0, "empty", "the body is empty");
        err->line = 1;
        err->col = 1;
        return DTM_EMALFORMED;
    }
    return 0;
}

static size_t ndjson_offset(const struct dtm_decoder *base)
{
    const struct ndjson_decoder *d = (const struct ndjson_decoder *)base;
    return d->pos;
}

const struct dtm_decoder_ops dtm_ndjson_ops = {
    .format = DTM_FMT_NDJSON,
    .resumable = true,
    .open = ndjson_open,
    .next = ndjson_next,
    .close = ndjson_close,
    .offset = ndjson_offset,
};
