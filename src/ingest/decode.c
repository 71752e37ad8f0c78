/* decode.c — the one entry point of the decoders: picks a format from a Content-Type and
 * dispatches open/next/close to json.c, ndjson.c, csv.c or xml.c through their vtables
 * (decode_impl.h). It also owns the pieces the formats share: sticky errors for formats that
 * cannot resume, scratch memory and line/column tracking. */
#include "ingest/decode_impl.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct dtm_decoder_ops *const ops_by_format[] = {
    [DTM_FMT_JSON] = &dtm_json_ops,
    [DTM_FMT_NDJSON] = &dtm_ndjson_ops,
    [DTM_FMT_XML] = &dtm_xml_ops,
    [DTM_FMT_CSV] = &dtm_csv_ops,
};

static const struct {
    const char *mime;
    enum dtm_format format;
} media_types[] = {
    {"application/json", DTM_FMT_JSON},
    {"application/x-ndjson", DTM_FMT_NDJSON},
    {"application/ndjson", DTM_FMT_NDJSON},
    {"application/jsonl", DTM_FMT_NDJSON},
    {"application/x-jsonlines", DTM_FMT_NDJSON},
    {"application/xml", DTM_FMT_XML},
    {"text/xml", DTM_FMT_XML},
    {"text/csv", DTM_FMT_CSV},
};

/* Splits s at the first c: returns the part before, leaves *rest after it (empty if none). */
static struct dtm_str split(struct dtm_str s, char c, struct dtm_str *rest)
{
    const char *q = s.n ? memchr(s.p, c, s.n) : NULL;
    if (!q) {
        *rest = (struct dtm_str){s.p + s.n, 0};
        return s;
    }
    *rest = (struct dtm_str){q + 1, s.n - (size_t)(q - s.p) - 1};
    return (struct dtm_str){s.p, (size_t)(q - s.p)};
}

int dtm_format_from_content_type(struct dtm_str content_type, enum dtm_format *out)
{
    struct dtm_str params;
    struct dtm_str mime = dtm_str_trim(split(content_type, ';', &params));
    size_t i;

    for (i = 0; i < DTM_ARRAY_LEN(media_types); i++)
        if (dtm_str_ieqc(mime, media_types[i].mime))
            break;
    if (i == DTM_ARRAY_LEN(media_types))
        return DTM_EUNSUPPORTED;

    /* Parameters: only charset matters; the body must be UTF-8 (CONTRACT §2). */
    while (params.n) {
        struct dtm_str value;
        struct dtm_str param = split(params, ';', &params);
        struct dtm_str name = dtm_str_trim(split(param, '=', &value));
        if (!dtm_str_ieqc(name, "charset"))
            continue;
        value = dtm_str_trim(value);
        if (value.n >= 2 && value.p[0] == '"' && value.p[value.n - 1] == '"')
            value = (struct dtm_str){value.p + 1, value.n - 2};
        if (!dtm_str_ieqc(value, "utf-8") && !dtm_str_ieqc(value, "utf8") &&
            !dtm_str_ieqc(value, "us-ascii"))
            return DTM_EUNSUPPORTED;
    }
    *out = media_types[i].format;
    return DTM_OK;
}

const char *dtm_format_name(enum dtm_format f)
{
    switch (f) {
    case DTM_FMT_JSON:
        return "json";
    case DTM_FMT_NDJSON:
        return "ndjson";
    case DTM_FMT_XML:
        return "xml";
    case DTM_FMT_CSV:
        return "csv";
    }
    return "unknown";
}

void dtm_decoder_base_init(struct dtm_decoder *d, const struct dtm_decoder_ops *ops, const char *p,
                           size_t n)
{
    memset(d, 0, sizeof *d);
    d->ops = ops;
    d->p = p;
    d->n = n;
}

struct dtm_decoder *dtm_decoder_open(enum dtm_format f, const char *p, size_t n)
{
    if ((size_t)f >= DTM_ARRAY_LEN(ops_by_format) || !ops_by_format[f])
        return NULL;
    if (!p)
        p = "";
    return ops_by_format[f]->open(p, n);
}

int dtm_decoder_next(struct dtm_decoder *d, struct dtm_in_record *out, struct dtm_decode_error *err)
{
    int rc;

    out->nfields = 0;
    out->line = 0;
    if (d->failed) {
        *err = d->error;
        return d->failed;
    }
    err->offset = 0;
    err->line = 0;
    err->col = 0;
    err->code = NULL;
    err->detail[0] = '\0';

    rc = d->ops->next(d, out, err);
    if (rc == DTM_EMALFORMED && (!d->ops->resumable || d->fatal)) {
        d->error = *err;
        d->failed = rc;
    } else if (rc < 0 && rc != DTM_EMALFORMED) {
        /* Out of memory mid-record leaves a decoder's state undefined: stop here. */
        d->error = *err;
        d->failed = rc;
    }
    if (rc != 1)
        out->nfields = 0;
    return rc;
}

bool dtm_decoder_single(const struct dtm_decoder *d)
{
    return d->single;
}

bool dtm_decoder_resumable(const struct dtm_decoder *d)
{
    return d->ops->resumable && !d->fatal;
}

size_t dtm_decoder_offset(const struct dtm_decoder *d)
{
    size_t o = d->ops->offset(d);
    return o < d->n ? o : d->n;
}

void dtm_decoder_close(struct dtm_decoder *d)
{
    if (d)
        d->ops->close(d);
}

/* ---- scratch */

struct dtm_scratch_chunk {
    struct dtm_scratch_chunk *prev;
    size_t cap;
    char data[];
};

#define SCRATCH_MIN 4096

/* Starts a new chunk of at least `need` bytes; the old chunk stays alive until reset. */
static char *scratch_chunk(struct dtm_scratch *s, size_t need)
{
    size_t cap = s->head ? s->head->cap * 2 : SCRATCH_MIN;
    struct dtm_scratch_chunk *c;

    while (cap < need) {
        if (cap > SIZE_MAX / 2)
            return NULL;
        cap *= 2;
    }
    if (cap > SIZE_MAX - sizeof *c)
        return NULL;
    c = malloc(sizeof *c + cap);
    if (!c)
        return NULL;
    c->prev = s->head;
    c->cap = cap;
    s->head = c;
    s->used = 0;
    return c->data;
}

char *dtm_scratch_alloc(struct dtm_scratch *s, size_t n)
{
    char *r;

    if (!s->head || s->head->cap - s->used < n)
        if (!scratch_chunk(s, n))
            return NULL;
    r = s->head->data + s->used;
    s->used += n;
    return r;
}

char *dtm_scratch_grow(struct dtm_scratch *s, char *last, size_t old_n, size_t new_n)
{
    char *r;

    assert(new_n >= old_n);
    if (s->head && last + old_n == s->head->data + s->used &&
        new_n - old_n <= s->head->cap - s->used) {
        s->used += new_n - old_n;
        return last;
    }
    r = dtm_scratch_alloc(s, new_n);
    if (r && old_n)
        memcpy(r, last, old_n);
    return r;
}

void dtm_scratch_shrink(struct dtm_scratch *s, const char *last, size_t old_n, size_t new_n)
{
    assert(new_n <= old_n);
    if (s->head && last + old_n == s->head->data + s->used)
        s->used -= old_n - new_n;
}

void dtm_scratch_reset(struct dtm_scratch *s)
{
    struct dtm_scratch_chunk *c;

    if (!s->head)
        return;
    c = s->head->prev;
    while (c) {
        struct dtm_scratch_chunk *prev = c->prev;
        free(c);
        c = prev;
    }
    s->head->prev = NULL;
    s->used = 0;
}

void dtm_scratch_free(struct dtm_scratch *s)
{
    dtm_scratch_reset(s);
    free(s->head);
    s->head = NULL;
    s->used = 0;
}

/* ---- errors and positions */

void dtm_decode_fail(struct dtm_decode_error *err, size_t off, const char *code, const char *fmt,
                     ...)
{
    va_list ap;

    err->offset = off;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->detail, sizeof err->detail, fmt, ap);
    va_end(ap);
}

void dtm_textpos_init(struct dtm_textpos *tp)
{
    tp->off = 0;
    tp->line = 1;
    tp->line_start = 0;
}

void dtm_textpos_advance(struct dtm_textpos *tp, const char *p, size_t off)
{
    const char *q = p + tp->off, *e = p + off;

    if (off <= tp->off)
        return;
    while (q < e) {
        const char *nl = memchr(q, '\n', (size_t)(e - q));
        if (!nl)
            break;
        tp->line++;
        q = nl + 1;
        tp->line_start = (size_t)(q - p);
    }
    tp->off = off;
}

void dtm_textpos_locate(struct dtm_textpos *tp, const char *p, struct dtm_decode_error *err)
{
    if (err->offset < tp->off) { /* not expected: count from the start */
        dtm_text_pos(p, err->offset, &err->line, &err->col);
        return;
    }
    dtm_textpos_advance(tp, p, err->offset);
    err->line = tp->line;
    err->col = err->offset - tp->line_start + 1;
}
