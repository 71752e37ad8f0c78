/* Unit tests for src/ingest/decode.c and the four decoders (json.c, ndjson.c, csv.c, xml.c):
 * happy paths of every format, every error code with its line and column, hostile inputs
 * (XXE, billion laughs, invalid UTF-8), 10 000-record bodies, scratch lifetime across chunk
 * growth, continue-after-error for the line-based formats, and concurrent XML decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/decode.h"

#define LIT(s) (s), (sizeof(s) - 1)

struct run {
    struct dtm_decoder *d;
    struct dtm_in_record rec;
    struct dtm_decode_error err;
    int rc;
};

static struct dtm_decoder *open_or_die(enum dtm_format f, const char *p, size_t n)
{
    struct dtm_decoder *d = dtm_decoder_open(f, p, n);
    assert_non_null(d);
    return d;
}

static int step(struct run *r)
{
    r->rc = dtm_decoder_next(r->d, &r->rec, &r->err);
    return r->rc;
}

/* A slice as a NUL-terminated string, for readable assertion failures. */
static const char *z(struct dtm_str s)
{
    static char bufs[4][4096];
    static int k;
    char *b = bufs[k++ & 3];
    size_t n = DTM_MIN(s.n, sizeof bufs[0] - 1);
    if (n)
        memcpy(b, s.p, n);
    b[n] = '\0';
    return b;
}

static void check_field(const struct dtm_in_record *r, size_t i, const char *name,
                        enum dtm_in_kind kind, const char *value)
{
    assert_true(i < r->nfields);
    assert_string_equal(z(r->f[i].name), name);
    assert_int_equal(r->f[i].name.n, strlen(name));
    assert_int_equal(r->f[i].kind, kind);
    if (value) {
        assert_string_equal(z(r->f[i].value), value);
        assert_int_equal(r->f[i].value.n, strlen(value));
    } else {
        assert_int_equal(r->f[i].value.n, 0);
    }
}

static bool sticky(enum dtm_format f)
{
    return f == DTM_FMT_JSON || f == DTM_FMT_XML;
}

/* Reads `nrec` records, then expects error `code` at line:col (and a consistent offset and
 * a detail). Sticky formats must repeat the same error on the next call. */
static void check_error_n(enum dtm_format f, const char *in, size_t n, size_t nrec,
                          const char *code, size_t line, size_t col)
{
    struct run r = {.d = open_or_die(f, in, n)};
    size_t got = 0, l, c;

    while (step(&r) == 1)
        got++;
    if (r.rc != DTM_EMALFORMED || strcmp(r.err.code ? r.err.code : "", code) != 0 ||
        r.err.line != line || r.err.col != col)
        print_error("input %.*s\n  got rc %d code %s at %zu:%zu (%s) after %zu records\n",
                    (int)DTM_MIN(n, 200), in, r.rc, r.err.code ? r.err.code : "-", r.err.line,
                    r.err.col, r.err.detail, got);
    assert_int_equal(got, nrec);
    assert_int_equal(r.rc, DTM_EMALFORMED);
    assert_string_equal(r.err.code, code);
    assert_int_equal(r.err.line, line);
    assert_int_equal(r.err.col, col);
    assert_true(r.err.detail[0] != '\0');
    assert_true(r.err.offset <= n);
    dtm_text_pos(in, r.err.offset, &l, &c);
    assert_int_equal(l, line);
    assert_int_equal(c, col);
    assert_int_equal(r.rec.nfields, 0);
    if (sticky(f)) {
        struct dtm_decode_error first = r.err;
        assert_int_equal(step(&r), DTM_EMALFORMED);
        assert_string_equal(r.err.code, first.code);
        assert_int_equal(r.err.offset, first.offset);
        assert_int_equal(r.err.line, first.line);
    }
    dtm_decoder_close(r.d);
}

#define ERR(f, lit, nrec, code, line, col) check_error_n(f, LIT(lit), nrec, code, line, col)

/* Next step of a resumable decoder must be this error. */
static void expect_err(struct run *r, const char *code, size_t line, size_t col)
{
    assert_int_equal(step(r), DTM_EMALFORMED);
    assert_string_equal(r->err.code, code);
    assert_int_equal(r->err.line, line);
    assert_int_equal(r->err.col, col);
}

static void expect_rec(struct run *r, size_t line, size_t nfields)
{
    if (step(r) != 1)
        print_error("rc %d code %s %s at %zu:%zu\n", r->rc, r->err.code ? r->err.code : "-",
                    r->err.detail, r->err.line, r->err.col);
    assert_int_equal(r->rc, 1);
    assert_int_equal(r->rec.line, line);
    assert_int_equal(r->rec.nfields, nfields);
}

static void expect_end(struct run *r)
{
    assert_int_equal(step(r), 0);
    assert_int_equal(step(r), 0);
}

/* ---- content types */

static void test_content_type(void **state)
{
    enum dtm_format f;
    (void)state;

    assert_int_equal(dtm_format_from_content_type(DTM_STR("application/json"), &f), DTM_OK);
    assert_int_equal(f, DTM_FMT_JSON);
    assert_int_equal(dtm_format_from_content_type(DTM_STR(" Application/JSON ; charset=UTF-8"), &f),
                     DTM_OK);
    assert_int_equal(f, DTM_FMT_JSON);
    assert_int_equal(dtm_format_from_content_type(DTM_STR("application/x-ndjson"), &f), DTM_OK);
    assert_int_equal(f, DTM_FMT_NDJSON);
    assert_int_equal(dtm_format_from_content_type(DTM_STR("application/jsonl"), &f), DTM_OK);
    assert_int_equal(f, DTM_FMT_NDJSON);
    assert_int_equal(dtm_format_from_content_type(DTM_STR("application/xml"), &f), DTM_OK);
    assert_int_equal(f, DTM_FMT_XML);
    assert_int_equal(dtm_format_from_content_type(DTM_STR("text/xml;charset=\"utf-8\""), &f),
                     DTM_OK);
    assert_int_equal(f, DTM_FMT_XML);
    assert_int_equal(dtm_format_from_content_type(DTM_STR("text/csv; header=present"), &f), DTM_OK);
    assert_int_equal(f, DTM_FMT_CSV);

    assert_int_equal(dtm_format_from_content_type(DTM_STR("text/csv; charset=iso-8859-1"), &f),
                     DTM_EUNSUPPORTED);
    assert_int_equal(dtm_format_from_content_type(DTM_STR("text/plain"), &f), DTM_EUNSUPPORTED);
    assert_int_equal(dtm_format_from_content_type(DTM_STR("application/jsonx"), &f),
                     DTM_EUNSUPPORTED);
    assert_int_equal(dtm_format_from_content_type(DTM_STR(""), &f), DTM_EUNSUPPORTED);
    assert_int_equal(dtm_format_from_content_type(DTM_STR_NULL, &f), DTM_EUNSUPPORTED);

    assert_string_equal(dtm_format_name(DTM_FMT_JSON), "json");
    assert_string_equal(dtm_format_name(DTM_FMT_NDJSON), "ndjson");
    assert_string_equal(dtm_format_name(DTM_FMT_XML), "xml");
    assert_string_equal(dtm_format_name(DTM_FMT_CSV), "csv");
}

/* ---- JSON */

static void test_json_single(void **state)
{
    static const char in[] = " {\"s\":\"Hà Nội\", \"n\":12.50, \"big\":123456789012345678901234,"
                             "\"e\":-0.5E+10,\"t\":true,\"f\":false,\"z\":null,\"zero\":0} \n";
    struct run r = {.d = open_or_die(DTM_FMT_JSON, LIT(in))};
    (void)state;

    expect_rec(&r, 1, 8);
    assert_true(dtm_decoder_single(r.d));
    check_field(&r.rec, 0, "s", DTM_IN_STRING, "Hà Nội");
    check_field(&r.rec, 1, "n", DTM_IN_NUMBER, "12.50");
    check_field(&r.rec, 2, "big", DTM_IN_NUMBER, "123456789012345678901234");
    check_field(&r.rec, 3, "e", DTM_IN_NUMBER, "-0.5E+10");
    check_field(&r.rec, 4, "t", DTM_IN_BOOL, "true");
    check_field(&r.rec, 5, "f", DTM_IN_BOOL, "false");
    check_field(&r.rec, 6, "z", DTM_IN_NULL, NULL);
    check_field(&r.rec, 7, "zero", DTM_IN_NUMBER, "0");
    /* no escapes: names and values are slices of the input, nothing copied */
    assert_ptr_equal(r.rec.f[0].name.p, in + 3);
    assert_ptr_equal(r.rec.f[0].value.p, in + 7);
    expect_end(&r);
    dtm_decoder_close(r.d);
}

static void test_json_array(void **state)
{
    static const char in2[] = "[\n  {\"a\": 1},\n\n  {\"a\": \"x\",\n   \"b\": null}\n  ,{}]";
    struct run r = {.d = open_or_die(DTM_FMT_JSON, LIT(in2))};
    (void)state;

    expect_rec(&r, 2, 1);
    assert_false(dtm_decoder_single(r.d));
    check_field(&r.rec, 0, "a", DTM_IN_NUMBER, "1");
    expect_rec(&r, 4, 2);
    check_field(&r.rec, 0, "a", DTM_IN_STRING, "x");
    check_field(&r.rec, 1, "b", DTM_IN_NULL, NULL);
    expect_rec(&r, 6, 0);
    expect_end(&r);
    dtm_decoder_close(r.d);

    r.d = open_or_die(DTM_FMT_JSON, LIT(" [ ] "));
    expect_end(&r);
    assert_false(dtm_decoder_single(r.d));
    dtm_decoder_close(r.d);

    r.d = open_or_die(DTM_FMT_JSON, LIT("\xEF\xBB\xBF{}"));
    expect_rec(&r, 1, 0);
    assert_true(dtm_decoder_single(r.d));
    expect_end(&r);
    dtm_decoder_close(r.d);
}

static void test_json_escapes(void **state)
{
    static const char in[] =
        "{\"k\\u00e9\":\"\\u0041\\u00e9\\u4E2D\\ud83d\\ude00|\\n\\t\\\"\\\\\\/\\b\\f\\r\","
        "\"plain\":\"x\", \"nul\":\"a\\u0000b\"}";
    struct run r = {.d = open_or_die(DTM_FMT_JSON, LIT(in))};
    (void)state;

    expect_rec(&r, 1, 3);
    check_field(&r.rec, 0, "k\xC3\xA9", DTM_IN_STRING,
                "A\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80|\n\t\"\\/\b\f\r");
    check_field(&r.rec, 1, "plain", DTM_IN_STRING, "x");
    assert_int_equal(r.rec.f[2].value.n, 3);
    assert_memory_equal(r.rec.f[2].value.p, "a\0b", 3);
    expect_end(&r);
    dtm_decoder_close(r.d);
}

/* Escaped values go to scratch; a record needing far more than one scratch chunk must keep
 * every earlier value intact (scratch never moves a live slice). */
static void test_json_scratch_lifetime(void **state)
{
    enum { NF = 24, LEN = 1500 };
    size_t cap = NF * (LEN * 2 + 32) + 16, w = 0;
    char *in = malloc(cap);
    struct run r;
    (void)state;

    assert_non_null(in);
    in[w++] = '[';
    for (int rec = 0; rec < 2; rec++) {
        in[w++] = rec ? ',' : ' ';
        in[w++] = '{';
        for (int k = 0; k < NF; k++) {
            w += (size_t)snprintf(in + w, cap - w, "%s\"f%d\":\"", k ? "," : "", k);
            for (int c = 0; c < LEN; c++) {
                in[w++] = '\\';
                in[w++] = 'n';
            }
            in[w++] = (char)('A' + k);
            in[w++] = '"';
        }
        in[w++] = '}';
        if (!rec) { /* second record reuses the scratch */
            in = realloc(in, cap * 2 + 16);
            assert_non_null(in);
            cap = cap * 2 + 16;
        }
    }
    in[w++] = ']';

    r.d = open_or_die(DTM_FMT_JSON, in, w);
    for (int rec = 0; rec < 2; rec++) {
        expect_rec(&r, 1, NF);
        for (int k = 0; k < NF; k++) {
            struct dtm_str v = r.rec.f[k].value;
            assert_int_equal(v.n, LEN + 1);
            for (int c = 0; c < LEN; c++)
                assert_int_equal(v.p[c], '\n');
            assert_int_equal(v.p[LEN], 'A' + k);
        }
    }
    expect_end(&r);
    dtm_decoder_close(r.d);
    free(in);
}

static void test_json_errors(void **state)
{
    (void)state;
    ERR(DTM_FMT_JSON, "", 0, "empty", 1, 1);
    ERR(DTM_FMT_JSON, "  \n  ", 0, "empty", 2, 3);
    ERR(DTM_FMT_JSON, "{\"a\":1} x", 0, "syntax", 1, 9);
    ERR(DTM_FMT_JSON, "{\"a\":1}{}", 0, "syntax", 1, 8);
    ERR(DTM_FMT_JSON, "[{\"a\":1}] ]", 1, "syntax", 1, 11);
    ERR(DTM_FMT_JSON, "{\"a\":{\"b\":1}}", 0, "nested_value", 1, 6);
    ERR(DTM_FMT_JSON, "{\"a\":[1]}", 0, "nested_value", 1, 6);
    ERR(DTM_FMT_JSON, "{\"a\":1,\"a\":2}", 0, "duplicate_field", 1, 8);
    ERR(DTM_FMT_JSON, "{\"a\":1,\"\\u0061\":2}", 0, "duplicate_field", 1, 8);
    ERR(DTM_FMT_JSON, "[{\"a\":1},2]", 1, "not_an_object", 1, 10);
    ERR(DTM_FMT_JSON, "[[]]", 0, "not_an_object", 1, 2);
    ERR(DTM_FMT_JSON, "\"str\"", 0, "not_an_object", 1, 1);
    ERR(DTM_FMT_JSON, "42", 0, "not_an_object", 1, 1);
    ERR(DTM_FMT_JSON, "null", 0, "not_an_object", 1, 1);
    ERR(DTM_FMT_JSON, "}", 0, "syntax", 1, 1);
    /* numbers */
    ERR(DTM_FMT_JSON, "{\"a\":01}", 0, "syntax", 1, 6);
    ERR(DTM_FMT_JSON, "{\"a\":1.}", 0, "syntax", 1, 6);
    ERR(DTM_FMT_JSON, "{\"a\":.5}", 0, "syntax", 1, 6);
    ERR(DTM_FMT_JSON, "{\"a\":+1}", 0, "syntax", 1, 6);
    ERR(DTM_FMT_JSON, "{\"a\":-}", 0, "syntax", 1, 6);
    ERR(DTM_FMT_JSON, "{\"a\":1e}", 0, "syntax", 1, 6);
    ERR(DTM_FMT_JSON, "{\"a\":1x}", 0, "syntax", 1, 6);
    ERR(DTM_FMT_JSON, "{\"a\":tru}", 0, "syntax", 1, 6);
    ERR(DTM_FMT_JSON, "{\"a\":NaN}", 0, "syntax", 1, 6);
    ERR(DTM_FMT_JSON, "{\"a\":1", 0, "syntax", 1, 7);
    /* structure */
    ERR(DTM_FMT_JSON, "{\"a\":1,}", 0, "syntax", 1, 8);
    ERR(DTM_FMT_JSON, "[{\"a\":1},]", 1, "syntax", 1, 10);
    ERR(DTM_FMT_JSON, "{\"a\" 1}", 0, "syntax", 1, 6);
    ERR(DTM_FMT_JSON, "{a:1}", 0, "syntax", 1, 2);
    ERR(DTM_FMT_JSON, "{\"a\":1 \"b\":2}", 0, "syntax", 1, 8);
    ERR(DTM_FMT_JSON, "[{\"a\":1}", 1, "syntax", 1, 9);
    ERR(DTM_FMT_JSON, "[{\"a\":1} {}]", 1, "syntax", 1, 10);
    ERR(DTM_FMT_JSON, "[", 0, "syntax", 1, 2);
    ERR(DTM_FMT_JSON, "[\n  {\"a\": 1},\n  {\"a\": {}}\n]", 1, "nested_value", 3, 9);
    ERR(DTM_FMT_JSON, "[\r\n{\"a\": 1},\r\n{\"b\":\r\n  x}]", 1, "syntax", 4, 3);
    /* strings */
    ERR(DTM_FMT_JSON, "{\"a\":\"x", 0, "syntax", 1, 6);
    ERR(DTM_FMT_JSON, "{\"a\":\"x\\\"}", 0, "syntax", 1, 6);
    ERR(DTM_FMT_JSON, "{\"a\":\"x\ty\"}", 0, "syntax", 1, 8);
    ERR(DTM_FMT_JSON, "{\"a\":\"x\\n\ny\"}", 0, "syntax", 1, 10);
    ERR(DTM_FMT_JSON, "{\"a\":\"\\x\"}", 0, "syntax", 1, 7);
    ERR(DTM_FMT_JSON, "{\"a\":\"\\u12G4\"}", 0, "syntax", 1, 7);
    ERR(DTM_FMT_JSON, "{\"a\":\"\\u12\"}", 0, "syntax", 1, 7);
    ERR(DTM_FMT_JSON, "{\"a\":\"\\ud800\"}", 0, "syntax", 1, 7);
    ERR(DTM_FMT_JSON, "{\"a\":\"\\udc00\"}", 0, "syntax", 1, 7);
    ERR(DTM_FMT_JSON, "{\"a\":\"x\\ud800\\u0041\"}", 0, "syntax", 1, 8);
    ERR(DTM_FMT_JSON, "{\"a\":\"\\ud83d\\ud83d\"}", 0, "syntax", 1, 7);
    /* UTF-8: bad continuation, overlong, surrogate, truncated, in keys, outside strings */
    ERR(DTM_FMT_JSON, "{\"a\":\"\xC3\x28\"}", 0, "utf8", 1, 7);
    ERR(DTM_FMT_JSON, "{\"a\":\"\xC0\xAF\"}", 0, "utf8", 1, 7);
    ERR(DTM_FMT_JSON, "{\"a\":\"\xED\xA0\x80\"}", 0, "utf8", 1, 7);
    ERR(DTM_FMT_JSON, "{\"a\":\"ok\xF0\x9F\"}", 0, "utf8", 1, 9);
    ERR(DTM_FMT_JSON, "{\"a\":\"\xF4\x90\x80\x80\"}", 0, "utf8", 1, 7);
    ERR(DTM_FMT_JSON, "{\"a\":\"\\n\xC3\x28\"}", 0, "utf8", 1, 9);
    ERR(DTM_FMT_JSON, "{\"\xFF\":1}", 0, "utf8", 1, 3);
    ERR(DTM_FMT_JSON, "{\"a\":1,\xC3\xA9}", 0, "syntax", 1, 8);
}

static void test_json_too_many_fields(void **state)
{
    char in[2048];
    size_t w = 0, off65 = 0;
    struct run r;
    (void)state;

    /* exactly DTM_MAX_FIELDS is fine */
    in[w++] = '{';
    for (int k = 0; k < DTM_MAX_FIELDS; k++)
        w += (size_t)snprintf(in + w, sizeof in - w, "%s\"f%d\":%d", k ? "," : "", k, k);
    in[w++] = '}';
    r.d = open_or_die(DTM_FMT_JSON, in, w);
    expect_rec(&r, 1, DTM_MAX_FIELDS);
    check_field(&r.rec, 63, "f63", DTM_IN_NUMBER, "63");
    expect_end(&r);
    dtm_decoder_close(r.d);

    /* one more is not */
    w--;
    in[w++] = ',';
    off65 = w;
    w += (size_t)snprintf(in + w, sizeof in - w, "\"f64\":64}");
    check_error_n(DTM_FMT_JSON, in, w, 0, "too_many_fields", 1, off65 + 1);
}

static void test_json_10000(void **state)
{
    enum { N = 10000 };
    size_t cap = (size_t)N * 80 + 16, w = 0, count = 0;
    char *in = malloc(cap);
    struct run r;
    (void)state;

    assert_non_null(in);
    in[w++] = '[';
    for (int i = 0; i < N; i++)
        w += (size_t)snprintf(in + w, cap - w, "%s\n{\"id\":%d,\"name\":\"r\\u00e9c %d\"}",
                              i ? "," : "", i, i);
    w += (size_t)snprintf(in + w, cap - w, "\n]\n");
    r.d = open_or_die(DTM_FMT_JSON, in, w);
    while (step(&r) == 1) {
        char want[32];
        snprintf(want, sizeof want,
                 "r\xC3\xA9"
                 "c %zu",
                 count);
        assert_int_equal(r.rec.line, count + 2);
        assert_string_equal(z(r.rec.f[1].value), want);
        count++;
    }
    assert_int_equal(r.rc, 0);
    assert_int_equal(count, N);
    dtm_decoder_close(r.d);
    free(in);
}

/* ---- NDJSON */

static void test_ndjson(void **state)
{
    static const char in[] = "{\"a\":1}\r\n\n  \r\n{\"a\":\"b\\u00e9\", \"c\":true}\n{\"a\":3}";
    struct run r = {.d = open_or_die(DTM_FMT_NDJSON, LIT(in))};
    (void)state;

    expect_rec(&r, 1, 1);
    assert_false(dtm_decoder_single(r.d));
    check_field(&r.rec, 0, "a", DTM_IN_NUMBER, "1");
    expect_rec(&r, 4, 2);
    check_field(&r.rec, 0, "a", DTM_IN_STRING, "b\xC3\xA9");
    check_field(&r.rec, 1, "c", DTM_IN_BOOL, "true");
    expect_rec(&r, 5, 1);
    expect_end(&r);
    dtm_decoder_close(r.d);

    r.d = open_or_die(DTM_FMT_NDJSON, LIT("\xEF\xBB\xBF{\"a\":1}\n"));
    expect_rec(&r, 1, 1);
    expect_end(&r);
    dtm_decoder_close(r.d);
}

static void test_ndjson_continue_after_error(void **state)
{
    static const char in[] = "{\"a\":1}\n"            /* 1 */
                             "{bad\n"                 /* 2: syntax at col 2 */
                             "\r\n"                   /* 3: blank */
                             "{\"a\":3}\r\n"          /* 4 */
                             "[1]\n"                  /* 5: not_an_object */
                             "   \n"                  /* 6: blank */
                             "{\"a\":5,\"a\":6}\n"    /* 7: duplicate_field at col 8 */
                             "{\"a\":\"\xC3\x28\"}\n" /* 8: utf8 at col 7 */
                             "{\"a\":{}}\n"           /* 9: nested_value at col 6 */
                             "{\"a\":1} {}\n"         /* 10: syntax at col 9 */
                             "{\"a\":\"x\r\n"         /* 11: unterminated, col 6 */
                             "{\"a\":7}";             /* 12 */
    struct run r = {.d = open_or_die(DTM_FMT_NDJSON, LIT(in))};
    (void)state;

    expect_rec(&r, 1, 1);
    expect_err(&r, "syntax", 2, 2);
    expect_rec(&r, 4, 1);
    check_field(&r.rec, 0, "a", DTM_IN_NUMBER, "3");
    expect_err(&r, "not_an_object", 5, 1);
    expect_err(&r, "duplicate_field", 7, 8);
    expect_err(&r, "utf8", 8, 7);
    expect_err(&r, "nested_value", 9, 6);
    expect_err(&r, "syntax", 10, 9);
    expect_err(&r, "syntax", 11, 6);
    expect_rec(&r, 12, 1);
    check_field(&r.rec, 0, "a", DTM_IN_NUMBER, "7");
    expect_end(&r);
    dtm_decoder_close(r.d);
}

static void test_ndjson_errors(void **state)
{
    (void)state;
    ERR(DTM_FMT_NDJSON, "", 0, "empty", 1, 1);
    ERR(DTM_FMT_NDJSON, "\n \r\n\n", 0, "empty", 1, 1);
    ERR(DTM_FMT_NDJSON, "{\"a\":1}\n\"x\"\n", 1, "not_an_object", 2, 1);
    ERR(DTM_FMT_NDJSON, "{\"a\":1}\n  x\n", 1, "syntax", 2, 3);
    ERR(DTM_FMT_NDJSON, "{\"a\":1}\n{\"a\":\"\xED\xA0\x80\"}", 1, "utf8", 2, 7);
    ERR(DTM_FMT_NDJSON, "{\"a\":\n1}", 0, "syntax", 1, 6);

    /* the empty error is reported once, then the end */
    struct run r = {.d = open_or_die(DTM_FMT_NDJSON, LIT(""))};
    expect_err(&r, "empty", 1, 1);
    expect_end(&r);
    dtm_decoder_close(r.d);
}

static void test_ndjson_10000(void **state)
{
    enum { N = 10000 };
    size_t cap = (size_t)N * 64, w = 0, count = 0;
    char *in = malloc(cap);
    struct run r;
    (void)state;

    assert_non_null(in);
    for (int i = 0; i < N; i++)
        w += (size_t)snprintf(in + w, cap - w, "{\"id\":%d,\"v\":\"x\"}\r\n", i);
    r.d = open_or_die(DTM_FMT_NDJSON, in, w);
    while (step(&r) == 1) {
        assert_int_equal(r.rec.line, count + 1);
        count++;
    }
    assert_int_equal(r.rc, 0);
    assert_int_equal(count, N);
    dtm_decoder_close(r.d);
    free(in);
}

/* ---- CSV */

static void test_csv(void **state)
{
    static const char in[] = "a,b,c\r\n"
                             "1,,x\r\n"
                             "\"q\",\"\",\"he said \"\"hi\"\"\"\r\n";
    struct run r = {.d = open_or_die(DTM_FMT_CSV, LIT(in))};
    (void)state;

    expect_rec(&r, 2, 3);
    assert_false(dtm_decoder_single(r.d));
    check_field(&r.rec, 0, "a", DTM_IN_STRING, "1");
    check_field(&r.rec, 1, "b", DTM_IN_NULL, NULL);
    check_field(&r.rec, 2, "c", DTM_IN_STRING, "x");
    assert_ptr_equal(r.rec.f[0].value.p, in + 7); /* a slice, not a copy */
    expect_rec(&r, 3, 3);
    check_field(&r.rec, 0, "a", DTM_IN_STRING, "q");
    check_field(&r.rec, 1, "b", DTM_IN_NULL, NULL);
    check_field(&r.rec, 2, "c", DTM_IN_STRING, "he said \"hi\"");
    expect_end(&r);
    dtm_decoder_close(r.d);
}

static void test_csv_bom_lf_quoted_newlines(void **state)
{
    static const char in[] = "\xEF\xBB\xBFid,\"na\"\"me\",note\n"
                             "1,H\xC3\xA0 N\xE1\xBB\x99i,\"line1\nline2\r\nline3\"\n"
                             "2,\"a,b\",\n"
                             "\n"
                             "3,x,\"y\"";
    struct run r = {.d = open_or_die(DTM_FMT_CSV, LIT(in))};
    (void)state;

    expect_rec(&r, 2, 3);
    check_field(&r.rec, 0, "id", DTM_IN_STRING, "1");
    check_field(&r.rec, 1, "na\"me", DTM_IN_STRING, "H\xC3\xA0 N\xE1\xBB\x99i");
    check_field(&r.rec, 2, "note", DTM_IN_STRING, "line1\nline2\r\nline3");
    expect_rec(&r, 5, 3);
    check_field(&r.rec, 1, "na\"me", DTM_IN_STRING, "a,b");
    check_field(&r.rec, 2, "note", DTM_IN_NULL, NULL);
    expect_rec(&r, 7, 3);
    check_field(&r.rec, 2, "note", DTM_IN_STRING, "y");
    expect_end(&r);
    dtm_decoder_close(r.d);
}

static void test_csv_empty_rows(void **state)
{
    struct run r = {.d = open_or_die(DTM_FMT_CSV, LIT("\n\r\na\n\n1\n\r\n\n2\n"))};
    (void)state;

    expect_rec(&r, 5, 1);
    check_field(&r.rec, 0, "a", DTM_IN_STRING, "1");
    expect_rec(&r, 8, 1);
    check_field(&r.rec, 0, "a", DTM_IN_STRING, "2");
    expect_end(&r);
    dtm_decoder_close(r.d);

    r.d = open_or_die(DTM_FMT_CSV, LIT("a,b\n")); /* header only: no records */
    expect_end(&r);
    dtm_decoder_close(r.d);
    r.d = open_or_die(DTM_FMT_CSV, LIT("a,b"));
    expect_end(&r);
    dtm_decoder_close(r.d);

    r.d = open_or_die(DTM_FMT_CSV, LIT("a,b\n,\n")); /* a row of empty cells is a row */
    expect_rec(&r, 2, 2);
    check_field(&r.rec, 0, "a", DTM_IN_NULL, NULL);
    check_field(&r.rec, 1, "b", DTM_IN_NULL, NULL);
    expect_end(&r);
    dtm_decoder_close(r.d);
}

static void test_csv_continue_after_error(void **state)
{
    static const char in[] = "a,b\n"
                             "1,2,3\n"             /* 2: csv_columns at the extra cell, col 5 */
                             "4\n"                 /* 3: csv_columns at the row end, col 2 */
                             "5,6\n"               /* 4 */
                             "\"x\"y,1\n"          /* 5: syntax after the closing quote, col 4 */
                             "x\"y,1\n"            /* 6: syntax at the stray quote, col 2 */
                             "7,\xC3\x28\n"        /* 7: utf8 at col 3 */
                             "\"multi\nline\",8\n" /* 8-9 */
                             "9,\"open\n"          /* 10: unterminated, col 3 */
                             "10,11\n";
    struct run r = {.d = open_or_die(DTM_FMT_CSV, LIT(in))};
    (void)state;

    expect_err(&r, "csv_columns", 2, 5);
    expect_err(&r, "csv_columns", 3, 2);
    expect_rec(&r, 4, 2);
    check_field(&r.rec, 1, "b", DTM_IN_STRING, "6");
    expect_err(&r, "syntax", 5, 4);
    expect_err(&r, "syntax", 6, 2);
    expect_err(&r, "utf8", 7, 3);
    expect_rec(&r, 8, 2);
    check_field(&r.rec, 0, "a", DTM_IN_STRING, "multi\nline");
    expect_err(&r, "syntax", 10, 3);
    expect_end(&r); /* the open quote swallowed the rest */
    dtm_decoder_close(r.d);
}

static void test_csv_errors(void **state)
{
    char in[1024];
    size_t w = 0, off65 = 0;
    (void)state;

    ERR(DTM_FMT_CSV, "", 0, "empty", 1, 1);
    ERR(DTM_FMT_CSV, "\xEF\xBB\xBF", 0, "empty", 1, 4);
    ERR(DTM_FMT_CSV, "\n\r\n", 0, "empty", 3, 1);
    ERR(DTM_FMT_CSV, "a,b,a\n1,2,3\n", 0, "duplicate_field", 1, 5);
    ERR(DTM_FMT_CSV, "a,,b\n", 0, "syntax", 1, 3);
    ERR(DTM_FMT_CSV, "a,\"b\n", 0, "syntax", 1, 3);
    ERR(DTM_FMT_CSV, "\xC0\xAF,b\n1,2\n", 0, "utf8", 1, 1);
    ERR(DTM_FMT_CSV, "a,b\n1,2\n3,4,\n", 1, "csv_columns", 3, 5);

    /* header errors are fatal: the decoder keeps returning them */
    struct run r = {.d = open_or_die(DTM_FMT_CSV, LIT("x,x\n1,2\n"))};
    expect_err(&r, "duplicate_field", 1, 3);
    expect_err(&r, "duplicate_field", 1, 3);
    dtm_decoder_close(r.d);

    for (int k = 0; k <= DTM_MAX_FIELDS; k++) {
        if (k == DTM_MAX_FIELDS)
            off65 = w + 1;
        w += (size_t)snprintf(in + w, sizeof in - w, "%sc%d", k ? "," : "", k);
    }
    check_error_n(DTM_FMT_CSV, in, w, 0, "too_many_fields", 1, off65 + 1);
}

static void test_csv_scratch_lifetime(void **state)
{
    enum { NF = 20, LEN = 2000 };
    size_t cap = NF * (LEN * 2 + 16) + 256, w = 0;
    char *in = malloc(cap);
    struct run r;
    (void)state;

    assert_non_null(in);
    for (int k = 0; k < NF; k++)
        w += (size_t)snprintf(in + w, cap - w, "%sf%d", k ? "," : "", k);
    in[w++] = '\n';
    for (int k = 0; k < NF; k++) {
        if (k)
            in[w++] = ',';
        in[w++] = '"';
        for (int c = 0; c < LEN; c++) {
            in[w++] = '"';
            in[w++] = '"';
        }
        in[w++] = (char)('a' + k);
        in[w++] = '"';
    }
    r.d = open_or_die(DTM_FMT_CSV, in, w);
    expect_rec(&r, 2, NF);
    for (int k = 0; k < NF; k++) {
        struct dtm_str v = r.rec.f[k].value;
        assert_int_equal(v.n, LEN + 1);
        for (int c = 0; c < LEN; c++)
            assert_int_equal(v.p[c], '"');
        assert_int_equal(v.p[LEN], 'a' + k);
    }
    expect_end(&r);
    dtm_decoder_close(r.d);
    free(in);
}

static void test_csv_10000(void **state)
{
    enum { N = 10000 };
    size_t cap = (size_t)N * 48 + 64, w = 0, count = 0;
    char *in = malloc(cap);
    struct run r;
    (void)state;

    assert_non_null(in);
    w += (size_t)snprintf(in, cap, "id,name,amount\r\n");
    for (int i = 0; i < N; i++)
        w += (size_t)snprintf(in + w, cap - w, "%d,\"n \"\"%d\"\"\",%d.50\r\n", i, i, i);
    r.d = open_or_die(DTM_FMT_CSV, in, w);
    while (step(&r) == 1) {
        char want[32];
        snprintf(want, sizeof want, "n \"%zu\"", count);
        assert_int_equal(r.rec.line, count + 2);
        check_field(&r.rec, 1, "name", DTM_IN_STRING, want);
        count++;
    }
    assert_int_equal(r.rc, 0);
    assert_int_equal(count, N);
    dtm_decoder_close(r.d);
    free(in);
}

/* ---- XML */

static void test_xml(void **state)
{
    static const char in[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<records>\n"
        "  <record id=\"7\"><a>1</a><b/><c></c><d>x &amp; y &#233;</d>"
        "<e><![CDATA[<raw>]]></e><!-- note --><f> sp </f><g>x<!--c-->y<![CDATA[z]]></g></record>\n"
        "  <!-- between -->\n"
        "  <record>\n"
        "    <a>H\xC3\xA0 N\xE1\xBB\x99i</a>\n"
        "  </record>\n"
        "</records>\n";
    struct run r = {.d = open_or_die(DTM_FMT_XML, LIT(in))};
    (void)state;

    expect_rec(&r, 3, 7);
    assert_false(dtm_decoder_single(r.d));
    check_field(&r.rec, 0, "a", DTM_IN_STRING, "1");
    check_field(&r.rec, 1, "b", DTM_IN_NULL, NULL);
    check_field(&r.rec, 2, "c", DTM_IN_NULL, NULL);
    check_field(&r.rec, 3, "d", DTM_IN_STRING, "x & y \xC3\xA9");
    check_field(&r.rec, 4, "e", DTM_IN_STRING, "<raw>");
    check_field(&r.rec, 5, "f", DTM_IN_STRING, " sp ");
    check_field(&r.rec, 6, "g", DTM_IN_STRING, "xyz");
    expect_rec(&r, 5, 1);
    check_field(&r.rec, 0, "a", DTM_IN_STRING, "H\xC3\xA0 N\xE1\xBB\x99i");
    expect_end(&r);
    dtm_decoder_close(r.d);
}

static void test_xml_single_and_empty(void **state)
{
    struct run r = {.d = open_or_die(DTM_FMT_XML, LIT("\xEF\xBB\xBF<record><a>1</a></record>\n"))};
    (void)state;

    expect_rec(&r, 1, 1);
    assert_true(dtm_decoder_single(r.d));
    check_field(&r.rec, 0, "a", DTM_IN_STRING, "1");
    expect_end(&r);
    dtm_decoder_close(r.d);

    r.d = open_or_die(DTM_FMT_XML, LIT("<record/>"));
    expect_rec(&r, 1, 0);
    assert_true(dtm_decoder_single(r.d));
    expect_end(&r);
    dtm_decoder_close(r.d);

    r.d = open_or_die(DTM_FMT_XML, LIT("<records/>"));
    expect_end(&r);
    assert_false(dtm_decoder_single(r.d));
    dtm_decoder_close(r.d);

    r.d = open_or_die(DTM_FMT_XML, LIT("<records>\n</records>"));
    expect_end(&r);
    dtm_decoder_close(r.d);

    /* namespaces: local names are used */
    r.d = open_or_die(DTM_FMT_XML, LIT("<r:records xmlns:r=\"urn:x\"><r:record><r:a>1</r:a><b>2</b>"
                                       "</r:record></r:records>"));
    expect_rec(&r, 1, 2);
    check_field(&r.rec, 0, "a", DTM_IN_STRING, "1");
    check_field(&r.rec, 1, "b", DTM_IN_STRING, "2");
    expect_end(&r);
    dtm_decoder_close(r.d);
}

static void test_xml_hostile(void **state)
{
    (void)state;
    /* XXE: an external entity reading a local file */
    ERR(DTM_FMT_XML,
        "<?xml version=\"1.0\"?>\n"
        "<!DOCTYPE records [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\n"
        "<records><record><a>&xxe;</a></record></records>",
        0, "xml_dtd", 2, 1);
    /* XXE through a network DTD */
    ERR(DTM_FMT_XML, "<!DOCTYPE records SYSTEM \"http://example.invalid/x.dtd\"><records/>", 0,
        "xml_dtd", 1, 1);
    /* billion laughs */
    ERR(DTM_FMT_XML,
        "<?xml version=\"1.0\"?>\n"
        "<!DOCTYPE lolz [\n"
        " <!ENTITY lol \"lol\">\n"
        " <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
        " <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n"
        " <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
        " <!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
        " <!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n"
        " <!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">\n"
        " <!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">\n"
        " <!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">\n"
        " <!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">\n"
        "]>\n"
        "<record><a>&lol9;</a></record>",
        0, "xml_dtd", 2, 1);
    /* a DOCTYPE after comments and processing instructions, and after a BOM */
    ERR(DTM_FMT_XML, "<!-- c -->\n<?pi x?>\n  <!DOCTYPE records>\n<records/>", 0, "xml_dtd", 3, 3);
    ERR(DTM_FMT_XML, "\xEF\xBB\xBF<!DOCTYPE records><records/>", 0, "xml_dtd", 1, 4);
    /* a DOCTYPE anywhere else is not well-formed */
    ERR(DTM_FMT_XML, "<records><!DOCTYPE records></records>", 0, "syntax", 1, 10);
    /* undeclared entities are never resolved */
    ERR(DTM_FMT_XML, "<record><a>&foo;</a></record>", 0, "syntax", 1, 17);
}

static void test_xml_errors(void **state)
{
    char in[4096];
    size_t w = 0, off65 = 0;
    (void)state;

    ERR(DTM_FMT_XML, "", 0, "empty", 1, 1);
    ERR(DTM_FMT_XML, " \n ", 0, "empty", 2, 2);
    ERR(DTM_FMT_XML, "<records><record><a><b>1</b></a></record></records>", 0, "nested_value", 1,
        21);
    ERR(DTM_FMT_XML, "<records>\n<record><a>x<b/>y</a></record></records>", 0, "nested_value", 2,
        13);
    ERR(DTM_FMT_XML, "<foo/>", 0, "syntax", 1, 1);
    ERR(DTM_FMT_XML, "<?xml version=\"1.0\"?>\n<!-- <record> -->\n<foo><record/></foo>", 0,
        "syntax", 3, 1);
    ERR(DTM_FMT_XML, "<records><record/><item/></records>", 1, "syntax", 1, 19);
    ERR(DTM_FMT_XML, "<record><a>1</a><a>2</a></record>", 0, "duplicate_field", 1, 17);
    ERR(DTM_FMT_XML, "<records><record>hi<a>1</a></record></records>", 0, "syntax", 1, 10);
    ERR(DTM_FMT_XML, "<record><a>\xC3\x28</a></record>", 0, "utf8", 1, 12);
    ERR(DTM_FMT_XML, "<record><a>\xC0\xAF</a></record>", 0, "utf8", 1, 12);
    ERR(DTM_FMT_XML, "<record>\n<a>\xED\xA0\x80</a></record>", 0, "utf8", 2, 4);
    /* libxml2's own errors, converted to byte columns */
    ERR(DTM_FMT_XML, "<records>\n<record><a>1</b></record>\n</records>", 0, "syntax", 2, 17);
    ERR(DTM_FMT_XML, "<record><a>\xC3\xA9\xC3\xA9</b></record>", 0, "syntax", 1, 20);
    ERR(DTM_FMT_XML, "<record><a>1</a></record>x", 0, "syntax", 1, 26);
    ERR(DTM_FMT_XML, "<records><record><a>1</a></record>", 1, "syntax", 1, 35);
    ERR(DTM_FMT_XML, "<record a=1/>", 0, "syntax", 1, 11);

    w += (size_t)snprintf(in + w, sizeof in - w, "<record>");
    for (int k = 0; k <= DTM_MAX_FIELDS; k++) {
        if (k == DTM_MAX_FIELDS)
            off65 = w;
        w += (size_t)snprintf(in + w, sizeof in - w, "<f%d>%d</f%d>", k, k, k);
    }
    w += (size_t)snprintf(in + w, sizeof in - w, "</record>");
    check_error_n(DTM_FMT_XML, in, w, 0, "too_many_fields", 1, off65 + 1);
}

static void test_xml_scratch_lifetime(void **state)
{
    enum { NF = 12, LEN = 3000 };
    size_t cap = NF * (LEN * 2 + 64) + 64, w = 0;
    char *in = malloc(cap);
    struct run r;
    (void)state;

    assert_non_null(in);
    w += (size_t)snprintf(in + w, cap - w, "<record>");
    for (int k = 0; k < NF; k++) {
        w += (size_t)snprintf(in + w, cap - w, "<f%d>", k);
        for (int c = 0; c < LEN; c++)
            in[w++] = 'x';
        w += (size_t)snprintf(in + w, cap - w, "<!--c--><![CDATA[");
        for (int c = 0; c < LEN; c++)
            in[w++] = 'y';
        w += (size_t)snprintf(in + w, cap - w, "]]>%c</f%d>", 'A' + k, k);
    }
    w += (size_t)snprintf(in + w, cap - w, "</record>");
    r.d = open_or_die(DTM_FMT_XML, in, w);
    expect_rec(&r, 1, NF);
    for (int k = 0; k < NF; k++) {
        struct dtm_str v = r.rec.f[k].value;
        assert_int_equal(v.n, 2 * LEN + 1);
        for (int c = 0; c < LEN; c++) {
            assert_int_equal(v.p[c], 'x');
            assert_int_equal(v.p[LEN + c], 'y');
        }
        assert_int_equal(v.p[2 * LEN], 'A' + k);
    }
    expect_end(&r);
    dtm_decoder_close(r.d);
    free(in);
}

static void test_xml_10000(void **state)
{
    enum { N = 10000 };
    size_t cap = (size_t)N * 80 + 64, w = 0, count = 0;
    char *in = malloc(cap);
    struct run r;
    (void)state;

    assert_non_null(in);
    w += (size_t)snprintf(in, cap, "<records>\n");
    for (int i = 0; i < N; i++)
        w += (size_t)snprintf(in + w, cap - w,
                              "<record><id>%d</id><name>n &lt;%d&gt;</name><x/></record>\n", i, i);
    w += (size_t)snprintf(in + w, cap - w, "</records>\n");
    r.d = open_or_die(DTM_FMT_XML, in, w);
    while (step(&r) == 1) {
        char want[32];
        snprintf(want, sizeof want, "n <%zu>", count);
        assert_int_equal(r.rec.line, count + 2);
        assert_int_equal(r.rec.nfields, 3);
        check_field(&r.rec, 1, "name", DTM_IN_STRING, want);
        check_field(&r.rec, 2, "x", DTM_IN_NULL, NULL);
        count++;
    }
    assert_int_equal(r.rc, 0);
    assert_int_equal(count, N);
    dtm_decoder_close(r.d);
    free(in);
}

/* Several threads decode at once; each must see its own errors (no global libxml2 state). */
static void *xml_worker(void *arg)
{
    static const char good[] = "<records><record><a>1</a></record><record><a>2</a></record>"
                               "</records>";
    static const char bad[] = "<records>\n<record><a>1</b></record></records>";
    long id = (long)(intptr_t)arg;
    long failures = 0;

    for (int i = 0; i < 300; i++) {
        bool use_bad = ((i + id) & 1) != 0;
        struct dtm_in_record rec;
        struct dtm_decode_error err;
        struct dtm_decoder *d = dtm_decoder_open(DTM_FMT_XML, use_bad ? bad : good,
                                                 use_bad ? sizeof bad - 1 : sizeof good - 1);
        int rc, n = 0;
        while ((rc = dtm_decoder_next(d, &rec, &err)) == 1)
            n++;
        if (use_bad ? (rc != DTM_EMALFORMED || err.line != 2 || strcmp(err.code, "syntax") != 0)
                    : (rc != 0 || n != 2))
            failures++;
        dtm_decoder_close(d);
    }
    return (void *)(intptr_t)failures;
}

static void test_xml_threads(void **state)
{
    pthread_t t[4];
    (void)state;

    for (long i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, xml_worker, (void *)(intptr_t)i), 0);
    for (int i = 0; i < 4; i++) {
        void *failures;
        assert_int_equal(pthread_join(t[i], &failures), 0);
        assert_int_equal((intptr_t)failures, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_type),
        cmocka_unit_test(test_json_single),
        cmocka_unit_test(test_json_array),
        cmocka_unit_test(test_json_escapes),
        cmocka_unit_test(test_json_scratch_lifetime),
        cmocka_unit_test(test_json_errors),
        cmocka_unit_test(test_json_too_many_fields),
        cmocka_unit_test(test_json_10000),
        cmocka_unit_test(test_ndjson),
        cmocka_unit_test(test_ndjson_continue_after_error),
        cmocka_unit_test(test_ndjson_errors),
        cmocka_unit_test(test_ndjson_10000),
        cmocka_unit_test(test_csv),
        cmocka_unit_test(test_csv_bom_lf_quoted_newlines),
        cmocka_unit_test(test_csv_empty_rows),
        cmocka_unit_test(test_csv_continue_after_error),
        cmocka_unit_test(test_csv_errors),
        cmocka_unit_test(test_csv_scratch_lifetime),
        cmocka_unit_test(test_csv_10000),
        cmocka_unit_test(test_xml),
        cmocka_unit_test(test_xml_single_and_empty),
        cmocka_unit_test(test_xml_hostile),
        cmocka_unit_test(test_xml_errors),
        cmocka_unit_test(test_xml_scratch_lifetime),
        cmocka_unit_test(test_xml_10000),
        cmocka_unit_test(test_xml_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
