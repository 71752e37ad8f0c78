/* csv.c — the CSV decoder (RFC 4180): the first row names the fields, every later row is a
 * record. CRLF or LF line ends, an optional UTF-8 BOM, quoted cells with "" for a quote and
 * embedded line breaks. An empty cell (quoted or not) is DTM_IN_NULL — CSV cannot tell an empty
 * string from a missing value, and "absent" is what the data dictionary expects — and every
 * other cell is DTM_IN_STRING: types come from the dataset definition, not from the text.
 * Rows are independent, so after a broken row next() goes on with the next one; a broken
 * header stops the decoder (nothing after it can be named). Cells are slices into the input;
 * only cells with "" escapes are copied into scratch. */
#include "ingest/decode_impl.h"

#include <stdlib.h>
#include <string.h>

struct csv_decoder {
    struct dtm_decoder super;
    size_t pos; /* start of the next row */
    bool header_done;
    size_t ncols;
    struct dtm_str cols[DTM_MAX_FIELDS];
    char *names; /* the header's names, copied once: they outlive every row */
    struct dtm_textpos tp;
    struct dtm_scratch sc;
};

struct csv_row {
    size_t end;  /* offset of the row's line break (or n) */
    size_t next; /* start of the following row */
    size_t ncells;
    size_t extra; /* offset of cell number `max` when there are more cells than that */
    struct dtm_str cells[DTM_MAX_FIELDS];
    size_t offs[DTM_MAX_FIELDS];
};

static struct dtm_decoder *csv_open(const char *p, size_t n)
{
    struct csv_decoder *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    dtm_decoder_base_init(&d->super, &dtm_csv_ops, p, n);
    dtm_textpos_init(&d->tp);
    if (n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        d->pos = 3;
    return &d->super;
}

static void csv_close(struct dtm_decoder *base)
{
    struct csv_decoder *d = (struct csv_decoder *)base;
    dtm_scratch_free(&d->sc);
    free(d->names);
    free(d);
}

/* A line break ends a row: "\n", "\r\n", or a "\r" that ends the input. */
static bool row_break(const char *p, size_t n, size_t i)
{
    return p[i] == '\n' || (p[i] == '\r' && (i + 1 == n || p[i + 1] == '\n'));
}

/* Parses the row starting at `start`, keeping at most `max` cells (counting all of them).
 * On a syntax error row->next skips to the next line so the caller can go on. */
static int parse_row(struct csv_decoder *d, size_t start, size_t max, struct csv_row *row,
                     struct dtm_decode_error *err)
{
    const char *p = d->super.p, *nl;
    size_t n = d->super.n, i = start, k = 0;

    for (;;) {
        size_t cell = i, seg, j;
        struct dtm_str v;

        if (i < n && p[i] == '"') {
            bool doubled = false;
            seg = ++i;
            for (;;) {
                const char *q = i < n ? memchr(p + i, '"', n - i) : NULL;
                if (!q) {
                    dtm_decode_fail(err, cell, "syntax", "unterminated quoted field");
                    row->next = n;
                    return DTM_EMALFORMED;
                }
                j = (size_t)(q - p);
                if (j + 1 < n && p[j + 1] == '"') {
                    doubled = true;
                    i = j + 2;
                    continue;
                }
                break;
            }
            v = (struct dtm_str){p + seg, j - seg};
            i = j + 1;
            if (doubled) {
                char *buf = dtm_scratch_alloc(&d->sc, j - seg);
                size_t w = 0;
                if (!buf) {
                    row->next = n;
                    return DTM_ENOMEM;
                }
                for (size_t x = seg; x < j; x++) {
                    buf[w++] = p[x];
                    if (p[x] == '"')
                        x++;
                }
                dtm_scratch_shrink(&d->sc, buf, j - seg, w);
                v = (struct dtm_str){buf, w};
            }
            if (i < n && p[i] != ',' && !row_break(p, n, i)) {
                dtm_decode_fail(err, i, "syntax", "unexpected character after a closing quote");
                goto skip;
            }
        } else {
            seg = i;
            while (i < n && p[i] != ',' && !row_break(p, n, i)) {
                if (p[i] == '"') {
                    dtm_decode_fail(err, i, "syntax",
                                    "a quote inside a cell needs the whole cell quoted");
                    goto skip;
                }
                i++;
            }
            v = (struct dtm_str){p + seg, i - seg};
        }
        if (k < max) {
            row->cells[k] = v;
            row->offs[k] = cell;
        } else if (k == max) {
            row->extra = cell;
        }
        k++;
        if (i < n && p[i] == ',') {
            i++;
            continue;
        }
        break;
    }
    row->ncells = k;
    row->end = i;
    if (i < n && p[i] == '\r')
        i++;
    if (i < n && p[i] == '\n')
        i++;
    row->next = i;
    return DTM_OK;

skip:
    nl = memchr(p + err->offset, '\n', n - err->offset);
    row->next = nl ? (size_t)(nl - p) + 1 : n;
    return DTM_EMALFORMED;
}

/* Parses and checks one row from d->pos, moving d->pos past it whatever happens. */
static int read_row(struct csv_decoder *d, size_t max, struct csv_row *row,
                    struct dtm_decode_error *err)
{
    const char *p = d->super.p;
    size_t start = d->pos, bad;
    int rc = parse_row(d, start, max, row, err);

    d->pos = row->next;
    if (rc == DTM_ENOMEM)
        return rc;
    /* Report bad UTF-8 before any later syntax error in the same row. */
    bad = dtm_utf8_check(p + start, (rc ? err->offset : row->end) - start);
    if (bad != (rc ? err->offset : row->end) - start) {
        dtm_decode_fail(err, start + bad, "utf8", "invalid UTF-8 byte 0x%02X",
                        (unsigned char)p[start + bad]);
        rc = DTM_EMALFORMED;
    }
    return rc;
}

/* Skips completely empty lines; returns false at the end of input. */
static bool skip_empty(struct csv_decoder *d)
{
    const char *p = d->super.p;
    size_t n = d->super.n;

    while (d->pos < n && row_break(p, n, d->pos))
        d->pos += p[d->pos] == '\r' && d->pos + 1 < n ? 2 : 1;
    return d->pos < n;
}

static int csv_fail(struct csv_decoder *d, struct dtm_decode_error *err)
{
    dtm_textpos_locate(&d->tp, d->super.p, err);
    return DTM_EMALFORMED;
}

static int read_header(struct csv_decoder *d, struct csv_row *row, struct dtm_decode_error *err)
{
    size_t total = 0;
    char *w;
    int rc;

    d->super.fatal = true; /* nothing after a broken header can be named */
    if (!skip_empty(d)) {
        dtm_decode_fail(err, d->pos, "empty", "the body is empty (no header row)");
        return csv_fail(d, err);
    }
    rc = read_row(d, DTM_MAX_FIELDS, row, err);
    if (rc == DTM_EMALFORMED)
        return csv_fail(d, err);
    if (rc)
        return rc;
    if (row->ncells > DTM_MAX_FIELDS) {
        dtm_decode_fail(err, row->extra, "too_many_fields", "the header has more than %d columns",
                        DTM_MAX_FIELDS);
        return csv_fail(d, err);
    }
    for (size_t k = 0; k < row->ncells; k++) {
        struct dtm_str a = row->cells[k];
        if (a.n == 0) {
            dtm_decode_fail(err, row->offs[k], "syntax", "column %zu of the header has no name",
                            k + 1);
            return csv_fail(d, err);
        }
        for (size_t x = 0; x < k; x++)
            if (row->cells[x].n == a.n && memcmp(row->cells[x].p, a.p, a.n) == 0) {
                dtm_decode_fail(err, row->offs[k], "duplicate_field",
                                "duplicate column \"%.*s\" in the header", (int)DTM_MIN(a.n, 64),
                                a.p);
                return csv_fail(d, err);
            }
        total += a.n;
    }
    d->names = malloc(total ? total : 1);
    if (!d->names)
        return DTM_ENOMEM;
    w = d->names;
    for (size_t k = 0; k < row->ncells; k++) {
        memcpy(w, row->cells[k].p, row->cells[k].n);
        d->cols[k] = (struct dtm_str){w, row->cells[k].n};
        w += row->cells[k].n;
    }
    d->ncols = row->ncells;
    d->header_done = true;
    d->super.fatal = false;
    return DTM_OK;
}

static int csv_next(struct dtm_decoder *base, struct dtm_in_record *out,
                    struct dtm_decode_error *err)
{
    struct csv_decoder *d = (struct csv_decoder *)base;
    struct csv_row row;
    size_t start;
    int rc;

    dtm_scratch_reset(&d->sc);
    if (!d->header_done) {
        rc = read_header(d, &row, err);
        if (rc)
            return rc;
        dtm_scratch_reset(&d->sc);
    }
    if (!skip_empty(d))
        return 0;

    start = d->pos;
    dtm_textpos_advance(&d->tp, base->p, start);
    out->line = d->tp.line;
    rc = read_row(d, d->ncols, &row, err);
    if (rc == DTM_EMALFORMED)
        return csv_fail(d, err);
    if (rc)
        return rc;
    if (row.ncells != d->ncols) {
        dtm_decode_fail(err, row.ncells > d->ncols ? row.extra : row.end, "csv_columns",
                        "the row has %zu cells, the header has %zu", row.ncells, d->ncols);
        return csv_fail(d, err);
    }
    for (size_t k = 0; k < d->ncols; k++) {
        out->f[k].name = d->cols[k];
        out->f[k].value = row.cells[k];
        out->f[k].kind = row.cells[k].n ? DTM_IN_STRING : DTM_IN_NULL;
    }
    out->nfields = d->ncols;
    return 1;
}

static size_t csv_offset(const struct dtm_decoder *base)
{
    const struct csv_decoder *d = (const struct csv_decoder *)base;
    return d->pos;
}

const struct dtm_decoder_ops dtm_csv_ops = {
    .format = DTM_FMT_CSV,
    .resumable = true,
    .open = csv_open,
    .next = csv_next,
    .close = csv_close,
    .offset = csv_offset,
};
