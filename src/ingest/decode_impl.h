/* decode_impl.h — what the decoders (json.c, ndjson.c, csv.c, xml.c) share behind the public
 * interface of decode.h, and nothing callers outside src/ingest/ should use:
 *   - the decoder vtable (struct dtm_decoder_ops) and the base struct every decoder embeds as
 *     its first member (h2o's `super`), so decode.c dispatches without knowing the formats;
 *   - scratch memory whose allocations never move (slices into it stay valid until reset);
 *   - error filling and line/column tracking;
 *   - the flat JSON object scanner, shared by json.c and ndjson.c. */
#ifndef DTM_DECODE_IMPL_H
#define DTM_DECODE_IMPL_H

#include "ingest/decode.h"

struct dtm_decoder_ops {
    enum dtm_format format;
    /* Line-based formats (NDJSON, CSV) continue after an error; for the others decode.c makes
     * the first error sticky. */
    bool resumable;
    struct dtm_decoder *(*open)(const char *p, size_t n);
    /* Same contract as dtm_decoder_next(); `out` and `err` are already cleared. */
    int (*next)(struct dtm_decoder *d, struct dtm_in_record *out, struct dtm_decode_error *err);
    void (*close)(struct dtm_decoder *d);
    /* Bytes of the input read so far (for progress and for dropping pages already read). */
    size_t (*offset)(const struct dtm_decoder *d);
};

/* The base of every decoder; each format's struct starts with `struct dtm_decoder super`. */
struct dtm_decoder {
    const struct dtm_decoder_ops *ops;
    const char *p; /* the whole input, owned by the caller */
    size_t n;
    bool single; /* the input held one record, not a collection */
    bool fatal;  /* set by a resumable decoder when an error cannot be skipped (CSV header) */
    int failed;  /* 0, or the result every later next() returns (with `error` when malformed) */
    struct dtm_decode_error error;
};

extern const struct dtm_decoder_ops dtm_json_ops;
extern const struct dtm_decoder_ops dtm_ndjson_ops;
extern const struct dtm_decoder_ops dtm_csv_ops;
extern const struct dtm_decoder_ops dtm_xml_ops;

/* Fills the base of a freshly allocated decoder. */
void dtm_decoder_base_init(struct dtm_decoder *d, const struct dtm_decoder_ops *ops, const char *p,
                           size_t n);

/* ---- scratch: bump allocation in chunks. An allocation never moves once handed out (a full
 * chunk is retired, not reallocated), so every slice into scratch stays valid until
 * dtm_scratch_reset(), which decoders call at the start of next(). In the steady state it is
 * one chunk and allocates nothing. */
struct dtm_scratch_chunk;
struct dtm_scratch {
    struct dtm_scratch_chunk *head; /* newest chunk; older ones are freed at reset */
    size_t used;
};

/* n contiguous bytes, valid until reset; NULL on allocation failure. */
char *dtm_scratch_alloc(struct dtm_scratch *s, size_t n);
/* Grows the most recent allocation `last` from old_n to new_n bytes, moving (copying) it to a
 * new chunk when the current one is full. Returns its (possibly new) address or NULL. */
char *dtm_scratch_grow(struct dtm_scratch *s, char *last, size_t old_n, size_t new_n);
/* Gives back the unused tail of the most recent allocation `last` (new_n <= old_n). */
void dtm_scratch_shrink(struct dtm_scratch *s, const char *last, size_t old_n, size_t new_n);
void dtm_scratch_reset(struct dtm_scratch *s);
void dtm_scratch_free(struct dtm_scratch *s);

/* ---- errors and positions */

/* Sets err->offset, code and detail (printf-style, truncated to fit). line/col are left for
 * dtm_textpos_locate(), since only the decoder knows where lines start. */
void dtm_decode_fail(struct dtm_decode_error *err, size_t off, const char *code, const char *fmt,
                     ...) __attribute__((format(printf, 4, 5)));

/* A forward-only cursor that counts lines, so positions cost O(input) in total even for a
 * 10 000-record array or a 1 GiB batch. */
struct dtm_textpos {
    size_t off;        /* everything before off has been counted */
    size_t line;       /* 1-based line of off */
    size_t line_start; /* offset where that line starts */
};

void dtm_textpos_init(struct dtm_textpos *tp);
/* Moves the cursor to off (off >= tp->off; a smaller off leaves it where it is). */
void dtm_textpos_advance(struct dtm_textpos *tp, const char *p, size_t off);
/* Advances to err->offset and fills err->line and err->col. */
void dtm_textpos_locate(struct dtm_textpos *tp, const char *p, struct dtm_decode_error *err);

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is invalid or truncated
 * (overlongs, surrogates and code points above U+10FFFF are invalid). avail >= 1. */
static inline size_t dtm_utf8_seq(const unsigned char *s, size_t avail)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    if (c < 0xC2)
        return 0;
    if (c < 0xE0)
        return avail >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c < 0xF0) {
        if (avail < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0))
            return 0; /* overlong, or a UTF-16 surrogate */
        return 3;
    }
    if (c < 0xF5) {
        if (avail < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] >= 0x90))
            return 0; /* overlong, or above U+10FFFF */
        return 4;
    }
    return 0;
}

/* ---- the flat JSON object scanner (json.c), shared with ndjson.c */

static inline size_t dtm_json_skip_ws(const char *p, size_t end, size_t i)
{
    while (i < end && (p[i] == ' ' || p[i] == '\n' || p[i] == '\r' || p[i] == '\t'))
        i++;
    return i;
}

/* Whether c can start a JSON value other than an object (for "not_an_object" vs "syntax"). */
static inline bool dtm_json_value_start(char c)
{
    return c == '"' || c == '[' || c == '-' || (c >= '0' && c <= '9') || c == 't' || c == 'f' ||
           c == 'n';
}

/* Scans one flat object at p[*pos] == '{', reading no byte at or after `end`. On success fills
 * out->f and out->nfields and leaves *pos just after the '}'. Names and values are slices into
 * p or, when they had escapes, into sc. Returns DTM_OK, DTM_ENOMEM, or DTM_EMALFORMED with err
 * filled except line/col. */
int dtm_json_scan_object(const char *p, size_t end, size_t *pos, struct dtm_scratch *sc,
                         struct dtm_in_record *out, struct dtm_decode_error *err);

#endif
