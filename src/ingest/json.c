/* json.c — the JSON decoder: a body that is one flat object or an array of flat objects
 * (CONTRACT §5), each object becoming one record of raw fields. The object scanner here is
 * also used line by line by ndjson.c.
 *
 * Why a hand-written scanner and not cJSON (which the project links for other things):
 *   - cJSON turns every number into a double, losing its exact text: "12.50" becomes 12.5 and
 *     integers above 2^53 (tax codes, account numbers sent unquoted) silently change. The data
 *     dictionary must see exactly what the source sent (DTM_IN_NUMBER carries the text).
 *   - cJSON reports no position for an error; a 400 must give the line and byte (CONTRACT §5).
 *   - cJSON does not validate UTF-8, accepts lone surrogates in \u escapes, and keeps duplicate
 *     keys (the second silently shadows or loses to the first): all three must be rejected.
 *   - cJSON allocates a node per value and a copy per string. Records are flat (scalars only),
 *     so a scanner that hands out slices into the input is small (this file) and allocates
 *     nothing in the common case; only strings with escapes are unescaped into scratch memory.
 * This is the hot path of realtime ingest: a 350-byte record of 17 fields decodes in well under
 * a microsecond. */
#include "ingest/decode_impl.h"

#include <stdlib.h>
#include <string.h>

/* Byte classes inside a string: 0 copy as is, 1 '"', 2 '\\', 3 control (< 0x20), 4 non-ASCII. */
static const unsigned char str_class[256] = {
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* 0x00 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* 0x10 */
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x20 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x30 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x40 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, /* 0x50 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x60 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x70 */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, /* 0x80 */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, /* 0x90 */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, /* 0xA0 */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, /* 0xB0 */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, /* 0xC0 */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, /* 0xD0 */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, /* 0xE0 */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, /* 0xF0 */
};

/* SWAR over 8 bytes (Hacker's Delight / Bit Twiddling Hacks): whether any byte is zero, or
 * less than n (n <= 128). Exact as a yes/no answer, which is all the fast path needs. */
#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

static inline uint64_t has_zero(uint64_t v)
{
    return (v - ONES) & ~v & HIGHS;
}

static inline uint64_t has_less(uint64_t v, unsigned n)
{
    return (v - ONES * n) & ~v & HIGHS;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int hex4(const unsigned char *s)
{
    int v = 0;
    for (int k = 0; k < 4; k++) {
        unsigned c = s[k];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (int)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (int)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (int)(c - 'A' + 10);
        else
            return -1;
    }
    return v;
}

static size_t put_utf8(char *w, unsigned cp)
{
    if (cp < 0x80) {
        w[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        w[0] = (char)(0xC0 | (cp >> 6));
        w[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        w[0] = (char)(0xE0 | (cp >> 12));
        w[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        w[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    w[0] = (char)(0xF0 | (cp >> 18));
    w[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    w[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    w[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The slow path of scan_string: the string from `start` has an escape at `i` (everything before
 * i is already validated). Unescapes into scratch. An unescaped string is never longer than its
 * escaped form, so one allocation of the escaped length is enough. */
static int scan_escaped(const char *p, size_t end, size_t start, size_t i, size_t *pos,
                        struct dtm_scratch *sc, struct dtm_str *out, struct dtm_decode_error *err)
{
    const unsigned char *s = (const unsigned char *)p;
    size_t j = i, w;
    char *buf;

    while (j < end && s[j] != '"')
        j += s[j] == '\\' ? 2 : 1;
    if (j >= end) {
        dtm_decode_fail(err, start - 1, "syntax", "unterminated string");
        return DTM_EMALFORMED;
    }
    buf = dtm_scratch_alloc(sc, j - start);
    if (!buf)
        return DTM_ENOMEM;
    memcpy(buf, p + start, i - start);
    w = i - start;

    while (i < j) {
        unsigned c = s[i];
        switch (str_class[c]) {
        case 0:
            buf[w++] = (char)c;
            i++;
            continue;
        case 3:
            dtm_decode_fail(err, i, "syntax", "control character 0x%02X in string must be escaped",
                            c);
            return DTM_EMALFORMED;
        case 4: {
            size_t len = dtm_utf8_seq(s + i, j - i);
            if (!len) {
                dtm_decode_fail(err, i, "utf8", "invalid UTF-8 byte 0x%02X", c);
                return DTM_EMALFORMED;
            }
            memcpy(buf + w, p + i, len);
            w += len;
            i += len;
            continue;
        }
        default: /* '\\'; a '"' cannot occur before j */
            break;
        }
        switch (s[i + 1]) {
        case '"':
        case '\\':
        case '/':
            buf[w++] = (char)s[i + 1];
            break;
        case 'b':
            buf[w++] = '\b';
            break;
        case 'f':
            buf[w++] = '\f';
            break;
        case 'n':
            buf[w++] = '\n';
            break;
        case 'r':
            buf[w++] = '\r';
            break;
        case 't':
            buf[w++] = '\t';
            break;
        case 'u': {
            int cp = i + 6 <= j ? hex4(s + i + 2) : -1;
            if (cp < 0) {
                dtm_decode_fail(err, i, "syntax", "\\u must be followed by 4 hex digits");
                return DTM_EMALFORMED;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                int lo = i + 12 <= j && s[i + 6] == '\\' && s[i + 7] == 'u' ? hex4(s + i + 8) : -1;
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    dtm_decode_fail(err, i, "syntax",
                                    "high surrogate \\u%04X not followed by a low surrogate", cp);
                    return DTM_EMALFORMED;
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                i += 6;
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                dtm_decode_fail(err, i, "syntax", "lone low surrogate \\u%04X", cp);
                return DTM_EMALFORMED;
            }
            w += put_utf8(buf + w, (unsigned)cp);
            i += 4;
            break;
        }
        default:
            dtm_decode_fail(err, i, "syntax", "invalid escape in string");
            return DTM_EMALFORMED;
        }
        i += 2;
    }
    dtm_scratch_shrink(sc, buf, j - start, w);
    *out = (struct dtm_str){buf, w};
    *pos = j + 1;
    return DTM_OK;
}

/* Skips bytes that need no attention in a string: everything but '"', '\\', controls and
 * non-ASCII. Returns the offset of the first such byte, or end. */
static inline size_t skip_plain(const unsigned char *s, size_t end, size_t i)
{
    /* 8 bytes at a time (SWAR) */
    while (end - i >= 8) {
        uint64_t v, m;
        memcpy(&v, s + i, 8);
        m = has_less(v, 0x20) | has_zero(v ^ (ONES * '"')) | has_zero(v ^ (ONES * '\\')) |
            (v & HIGHS);
        if (m) {
#if defined(__GNUC__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            i += (size_t)__builtin_ctzll(m) >> 3; /* the lowest flag is always exact */
#endif
            break;
        }
        i += 8;
    }
    while (i < end && str_class[s[i]] == 0)
        i++;
    return i;
}

/* The rest of a string from `start` when byte i is not a plain one: non-ASCII (validated),
 * an escape (slow path), a control character or the end of input (errors). */
static int scan_string_rest(const char *p, size_t end, size_t start, size_t i, size_t *pos,
                            struct dtm_scratch *sc, struct dtm_str *out,
                            struct dtm_decode_error *err)
{
    const unsigned char *s = (const unsigned char *)p;

    for (;;) {
        if (i >= end) {
            dtm_decode_fail(err, start - 1, "syntax", "unterminated string");
            return DTM_EMALFORMED;
        }
        switch (str_class[s[i]]) {
        case 1:
            *out = (struct dtm_str){p + start, i - start};
            *pos = i + 1;
            return DTM_OK;
        case 2:
            return scan_escaped(p, end, start, i, pos, sc, out, err);
        case 3:
            dtm_decode_fail(err, i, "syntax", "control character 0x%02X in string must be escaped",
                            s[i]);
            return DTM_EMALFORMED;
        default: {
            size_t len = dtm_utf8_seq(s + i, end - i);
            if (!len) {
                dtm_decode_fail(err, i, "utf8", "invalid UTF-8 byte 0x%02X", s[i]);
                return DTM_EMALFORMED;
            }
            i = skip_plain(s, end, i + len);
        }
        }
    }
}

/* A string whose opening quote is at *pos - 1. Without escapes (the common case) the result is
 * a slice of the input and nothing is copied; plain ASCII never leaves this inline fast path. */
static inline int scan_string(const char *p, size_t end, size_t *pos, struct dtm_scratch *sc,
                              struct dtm_str *out, struct dtm_decode_error *err)
{
    size_t start = *pos, i = skip_plain((const unsigned char *)p, end, start);

    if (i < end && p[i] == '"') {
        *out = (struct dtm_str){p + start, i - start};
        *pos = i + 1;
        return DTM_OK;
    }
    return scan_string_rest(p, end, start, i, pos, sc, out, err);
}

/* RFC 8259 number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?; the value is its text. */
static int scan_number(const char *p, size_t end, size_t *pos, struct dtm_str *out,
                       struct dtm_decode_error *err)
{
    size_t start = *pos, i = start;

    if (p[i] == '-')
        i++;
    if (i < end && p[i] == '0') {
        i++;
    } else if (i < end && p[i] >= '1' && p[i] <= '9') {
        while (i < end && is_digit(p[i]))
            i++;
    } else {
        goto bad;
    }
    if (i < end && p[i] == '.') {
        i++;
        if (i >= end || !is_digit(p[i]))
            goto bad;
        while (i < end && is_digit(p[i]))
            i++;
    }
    if (i < end && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        if (i < end && (p[i] == '+' || p[i] == '-'))
            i++;
        if (i >= end || !is_digit(p[i]))
            goto bad;
        while (i < end && is_digit(p[i]))
            i++;
    }
    if (i < end && (is_digit(p[i]) || p[i] == '.' || (p[i] >= 'a' && p[i] <= 'z') ||
                    (p[i] >= 'A' && p[i] <= 'Z')))
        goto bad; /* "01", "1.2.3", "1x" */
    *out = (struct dtm_str){p + start, i - start};
    *pos = i;
    return DTM_OK;
bad:
    dtm_decode_fail(err, start, "syntax", "invalid number");
    return DTM_EMALFORMED;
}

/* A cheap hash of a field name, to skip most comparisons in the duplicate check. */
static uint32_t name_hash(struct dtm_str s)
{
    uint32_t h;
    if (!s.n)
        return 0;
    h = (uint32_t)s.n * 0x9E3779B1u;
    h ^= (uint32_t)(unsigned char)s.p[0] | (uint32_t)(unsigned char)s.p[s.n - 1] << 8 |
         (uint32_t)(unsigned char)s.p[s.n >> 1] << 16;
    h ^= h >> 15;
    h *= 0x2C1B3C6Du;
    h ^= h >> 12;
    return h;
}

int dtm_json_scan_object(const char *p, size_t end, size_t *pos, struct dtm_scratch *sc,
                         struct dtm_in_record *out, struct dtm_decode_error *err)
{
    uint32_t hashes[DTM_MAX_FIELDS];
    uint64_t seen = 0; /* one bit per hash value mod 64: most names need no comparison */
    size_t i = *pos + 1, nf = 0;
    int rc;

    i = dtm_json_skip_ws(p, end, i);
    if (i < end && p[i] == '}') {
        out->nfields = 0;
        *pos = i + 1;
        return DTM_OK;
    }
    for (;;) {
        struct dtm_in_field *f;
        size_t key_off = i;
        uint32_t h;

        if (i >= end || p[i] != '"') {
            if (i >= end)
                dtm_decode_fail(err, i, "syntax", "unexpected end of input, expected a key");
            else
                dtm_decode_fail(err, i, "syntax", "expected a string key");
            return DTM_EMALFORMED;
        }
        if (nf == DTM_MAX_FIELDS) {
            dtm_decode_fail(err, i, "too_many_fields", "a record may have at most %d fields",
                            DTM_MAX_FIELDS);
            return DTM_EMALFORMED;
        }
        f = &out->f[nf];
        i++;
        rc = scan_string(p, end, &i, sc, &f->name, err);
        if (rc)
            return rc;

        h = name_hash(f->name);
        if (seen & (UINT64_C(1) << (h & 63))) {
            for (size_t k = 0; k < nf; k++)
                if (hashes[k] == h && out->f[k].name.n == f->name.n &&
                    memcmp(out->f[k].name.p, f->name.p, f->name.n) == 0) {
                    dtm_decode_fail(err, key_off, "duplicate_field", "duplicate field \"%.*s\"",
                                    (int)DTM_MIN(f->name.n, 64), f->name.p);
                    return DTM_EMALFORMED;
                }
        }
        seen |= UINT64_C(1) << (h & 63);
        hashes[nf] = h;

        i = dtm_json_skip_ws(p, end, i);
        if (i >= end || p[i] != ':') {
            dtm_decode_fail(err, i, "syntax", "expected ':' after object key");
            return DTM_EMALFORMED;
        }
        i = dtm_json_skip_ws(p, end, i + 1);
        if (i >= end) {
            dtm_decode_fail(err, i, "syntax", "unexpected end of input, expected a value");
            return DTM_EMALFORMED;
        }
        switch (p[i]) {
        case '"':
            i++;
            rc = scan_string(p, end, &i, sc, &f->value, err);
            if (rc)
                return rc;
            f->kind = DTM_IN_STRING;
            break;
        case 't':
            if (end - i < 4 || memcmp(p + i, "true", 4) != 0)
                goto bad_value;
            f->value = DTM_STR("true");
            f->kind = DTM_IN_BOOL;
            i += 4;
            break;
        case 'f':
            if (end - i < 5 || memcmp(p + i, "false", 5) != 0)
                goto bad_value;
            f->value = DTM_STR("false");
            f->kind = DTM_IN_BOOL;
            i += 5;
            break;
        case 'n':
            if (end - i < 4 || memcmp(p + i, "null", 4) != 0)
                goto bad_value;
            f->value = DTM_STR_NULL;
            f->kind = DTM_IN_NULL;
            i += 4;
            break;
        case '{':
        case '[':
            dtm_decode_fail(
                err, i, "nested_value", "field \"%.*s\" has a nested %s; records must be flat",
                (int)DTM_MIN(f->name.n, 64), f->name.p, p[i] == '{' ? "object" : "array");
            return DTM_EMALFORMED;
        default:
            if (p[i] != '-' && !is_digit(p[i]))
                goto bad_value;
            rc = scan_number(p, end, &i, &f->value, err);
            if (rc)
                return rc;
            f->kind = DTM_IN_NUMBER;
        }
        nf++;

        i = dtm_json_skip_ws(p, end, i);
        if (i < end && p[i] == ',') {
            i = dtm_json_skip_ws(p, end, i + 1);
            continue;
        }
        if (i < end && p[i] == '}')
            break;
        if (i >= end)
            dtm_decode_fail(err, i, "syntax", "unexpected end of input, expected ',' or '}'");
        else
            dtm_decode_fail(err, i, "syntax", "expected ',' or '}' after a value");
        return DTM_EMALFORMED;
    }
    out->nfields = nf;
    *pos = i + 1;
    return DTM_OK;

bad_value:
    dtm_decode_fail(err, i, "syntax", "expected a value (string, number, true, false or null)");
    return DTM_EMALFORMED;
}

/* ---- the decoder: one object, or an array of objects */

enum json_state { JSON_START, JSON_FIRST, JSON_NEXT, JSON_END };

struct json_decoder {
    struct dtm_decoder super;
    enum json_state state;
    size_t pos;
    struct dtm_textpos tp;
    struct dtm_scratch sc;
};

static struct dtm_decoder *json_open(const char *p, size_t n)
{
    struct json_decoder *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    dtm_decoder_base_init(&d->super, &dtm_json_ops, p, n);
    dtm_textpos_init(&d->tp);
    return &d->super;
}

static void json_close(struct dtm_decoder *base)
{
    struct json_decoder *d = (struct json_decoder *)base;
    dtm_scratch_free(&d->sc);
    free(d);
}

static int json_fail(struct json_decoder *d, struct dtm_decode_error *err, size_t off,
                     const char *code, const char *detail)
{
    dtm_decode_fail(err, off, code, "%s", detail);
    dtm_textpos_locate(&d->tp, d->super.p, err);
    return DTM_EMALFORMED;
}

/* Scans the object at d->pos into out. */
static int json_record(struct json_decoder *d, struct dtm_in_record *out,
                       struct dtm_decode_error *err)
{
    int rc;

    dtm_textpos_advance(&d->tp, d->super.p, d->pos);
    out->line = d->tp.line;
    rc = dtm_json_scan_object(d->super.p, d->super.n, &d->pos, &d->sc, out, err);
    if (rc == DTM_EMALFORMED)
        dtm_textpos_locate(&d->tp, d->super.p, err);
    return rc;
}

/* After the top-level value: only whitespace may follow. */
static int json_finish(struct json_decoder *d, struct dtm_decode_error *err)
{
    d->pos = dtm_json_skip_ws(d->super.p, d->super.n, d->pos);
    if (d->pos != d->super.n)
        return json_fail(d, err, d->pos, "syntax", "unexpected data after the top-level value");
    d->state = JSON_END;
    return 0;
}

static int json_next(struct dtm_decoder *base, struct dtm_in_record *out,
                     struct dtm_decode_error *err)
{
    struct json_decoder *d = (struct json_decoder *)base;
    const char *p = base->p;
    size_t n = base->n;
    int rc;

    dtm_scratch_reset(&d->sc);
    switch (d->state) {
    case JSON_START:
        if (n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) /* RFC 8259 §8.1: may ignore a BOM */
            d->pos = 3;
        d->pos = dtm_json_skip_ws(p, n, d->pos);
        if (d->pos == n)
            return json_fail(d, err, d->pos, "empty", "the body is empty");
        if (p[d->pos] == '{') {
            base->single = true;
            rc = json_record(d, out, err);
            if (rc)
                return rc;
            rc = json_finish(d, err);
            return rc ? rc : 1;
        }
        if (p[d->pos] != '[') {
            if (dtm_json_value_start(p[d->pos]))
                return json_fail(d, err, d->pos, "not_an_object",
                                 "the body must be an object or an array of objects");
            return json_fail(d, err, d->pos, "syntax", "expected '{' or '['");
        }
        d->pos = dtm_json_skip_ws(p, n, d->pos + 1);
        if (d->pos < n && p[d->pos] == ']') {
            d->pos++;
            return json_finish(d, err);
        }
        d->state = JSON_FIRST;
        break;
    case JSON_FIRST:
        break;
    case JSON_NEXT:
        d->pos = dtm_json_skip_ws(p, n, d->pos);
        if (d->pos < n && p[d->pos] == ']') {
            d->pos++;
            return json_finish(d, err);
        }
        if (d->pos >= n)
            return json_fail(d, err, d->pos, "syntax",
                             "unexpected end of input, expected ',' or ']'");
        if (p[d->pos] != ',')
            return json_fail(d, err, d->pos, "syntax", "expected ',' or ']' after an element");
        d->pos = dtm_json_skip_ws(p, n, d->pos + 1);
        break;
    case JSON_END:
        return 0;
    }

    /* an array element */
    if (d->pos >= n)
        return json_fail(d, err, d->pos, "syntax", "unexpected end of input, expected an object");
    if (p[d->pos] != '{') {
        if (p[d->pos] != ']' && dtm_json_value_start(p[d->pos]))
            return json_fail(d, err, d->pos, "not_an_object", "array elements must be objects");
        return json_fail(d, err, d->pos, "syntax", "expected an object");
    }
    rc = json_record(d, out, err);
    if (rc)
        return rc;
    d->state = JSON_NEXT;
    return 1;
}

static size_t json_offset(const struct dtm_decoder *base)
{
    const struct json_decoder *d = (const struct json_decoder *)base;
    return d->pos;
}

const struct dtm_decoder_ops dtm_json_ops = {
    .format = DTM_FMT_JSON,
    .resumable = false,
    .open = json_open,
    .next = json_next,
    .close = json_close,
    .offset = json_offset,
};
