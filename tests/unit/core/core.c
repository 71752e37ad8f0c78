/* Unit tests of src/core: slices, buffers, arenas, time, UTF-8, hashing, languages, periodic
 * jobs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core.h"

static void test_str_to_i64(void **state)
{
    int64_t v;
    (void)state;
    assert_int_equal(dtm_str_to_i64(DTM_STR("0"), &v), DTM_OK);
    assert_int_equal(v, 0);
    assert_int_equal(dtm_str_to_i64(DTM_STR("-9223372036854775808"), &v), DTM_OK);
    assert_true(v == INT64_MIN);
    assert_int_equal(dtm_str_to_i64(DTM_STR("9223372036854775807"), &v), DTM_OK);
    assert_true(v == INT64_MAX);
    assert_int_equal(dtm_str_to_i64(DTM_STR("9223372036854775808"), &v), DTM_EINVAL);
    assert_int_equal(dtm_str_to_i64(DTM_STR(""), &v), DTM_EINVAL);
    assert_int_equal(dtm_str_to_i64(DTM_STR("-"), &v), DTM_EINVAL);
    assert_int_equal(dtm_str_to_i64(DTM_STR("12a"), &v), DTM_EINVAL);
    assert_int_equal(dtm_str_to_i64(DTM_STR(" 1"), &v), DTM_EINVAL);
}

static void test_buf_limits_and_sticky_error(void **state)
{
    struct dtm_buf b;
    (void)state;
    dtm_buf_init(&b, 8);
    assert_int_equal(dtm_buf_addc(&b, "12345678"), DTM_OK);
    assert_int_equal(b.n, 8);
    assert_int_equal(dtm_buf_addch(&b, 'x'), DTM_ETOOBIG);
    /* sticky: later appends fail too, content unchanged */
    assert_int_equal(dtm_buf_addc(&b, ""), DTM_ETOOBIG);
    assert_string_equal(b.p, "12345678");
    dtm_buf_reset(&b);
    assert_int_equal(b.err, DTM_OK);
    assert_int_equal(dtm_buf_printf(&b, "%d-%s", 42, "a"), DTM_OK);
    assert_string_equal(b.p, "42-a");
    dtm_buf_free(&b);
}

static void test_array_reserve(void **state)
{
    int64_t *a = NULL;
    size_t n = 0, cap = 0;
    (void)state;
    for (int64_t i = 0; i < 1000; i++) {
        assert_int_equal(dtm_array_reserve(&a, n, &cap, sizeof(*a)), DTM_OK);
        assert_true(cap > n);
        a[n++] = i;
    }
    assert_int_equal(cap, 1024); /* 16 doubled */
    for (int64_t i = 0; i < 1000; i++)
        assert_int_equal(a[i], i);
    /* no room is asked when there is some */
    assert_int_equal(dtm_array_reserve(&a, 10, &cap, sizeof(*a)), DTM_OK);
    assert_int_equal(cap, 1024);
    /* an impossible size is refused and the array kept */
    cap = SIZE_MAX / 2 + 1;
    assert_int_equal(dtm_array_reserve(&a, cap, &cap, 8), DTM_ENOMEM);
    assert_int_equal(a[999], 999);
    free(a);
}

static void test_buf_json_and_xml_escaping(void **state)
{
    struct dtm_buf b;
    (void)state;
    dtm_buf_init(&b, 1024);
    dtm_buf_json_str(&b, (struct dtm_str){"a\"b\\c\n\x01\xc3\xa1", 9});
    assert_string_equal(b.p, "\"a\\\"b\\\\c\\n\\u0001\xc3\xa1\"");
    dtm_buf_reset(&b);
    dtm_buf_xml_str(&b, DTM_STR("<a href='x'>&\"</a>"));
    assert_string_equal(b.p, "&lt;a href=&apos;x&apos;&gt;&amp;&quot;&lt;/a&gt;");
    dtm_buf_free(&b);
}

static void test_arena(void **state)
{
    struct dtm_arena a;
    char *p, *q, *big;
    (void)state;
    dtm_arena_init(&a, 64);
    p = dtm_arena_alloc(&a, 10);
    q = dtm_arena_alloc(&a, 10);
    assert_non_null(p);
    assert_non_null(q);
    assert_true(((uintptr_t)p & 15) == 0 && ((uintptr_t)q & 15) == 0);
    assert_true(q != p);
    big = dtm_arena_alloc(&a, 1000); /* larger than a block */
    assert_non_null(big);
    memset(big, 'x', 1000);
    p = dtm_arena_strndup(&a, "hello", 3);
    assert_string_equal(p, "hel");
    dtm_arena_reset(&a);
    assert_non_null(dtm_arena_alloc(&a, 32));
    dtm_arena_free(&a);
}

static void test_time_parse_and_format(void **state)
{
    int64_t t, d;
    char out[40];
    (void)state;
    /* no offset means UTC+07:00 */
    assert_int_equal(dtm_time_parse(DTM_STR("2026-11-20T10:00:00"), &t), DTM_OK);
    assert_true(t == (int64_t)1795143600 * 1000000);
    assert_int_equal(dtm_time_parse(DTM_STR("2026-11-20T03:00:00Z"), &t), DTM_OK);
    assert_true(t == (int64_t)1795143600 * 1000000);
    assert_int_equal(dtm_time_parse(DTM_STR("2026-11-20T10:00:00.250+07:00"), &t), DTM_OK);
    assert_true(t == (int64_t)1795143600 * 1000000 + 250000);
    assert_int_equal(dtm_time_parse(DTM_STR("2026-11-19 22:30:00-04:30"), &t), DTM_OK);
    assert_true(t == (int64_t)1795143600 * 1000000);
    assert_int_equal(dtm_time_parse(DTM_STR("2026-02-29T00:00:00Z"), &t), DTM_EINVAL);
    assert_int_equal(dtm_time_parse(DTM_STR("2024-02-29T00:00:00Z"), &t), DTM_OK);
    assert_int_equal(dtm_time_parse(DTM_STR("2026-11-20T24:00:00Z"), &t), DTM_EINVAL);
    assert_int_equal(dtm_time_parse(DTM_STR("2026-11-20T10:00:00+7"), &t), DTM_EINVAL);
    assert_int_equal(dtm_time_parse(DTM_STR("x"), &t), DTM_EINVAL);
    dtm_time_fmt((int64_t)1795143600 * 1000000, out, sizeof(out));
    assert_string_equal(out, "2026-11-20T10:00:00.000+07:00");
    dtm_time_fmt_utc((int64_t)1795143600 * 1000000, out, sizeof(out));
    assert_string_equal(out, "2026-11-20T03:00:00.000Z");
    assert_int_equal(dtm_date_parse(DTM_STR("1970-01-02"), &d), DTM_OK);
    assert_true(d == 1);
    assert_int_equal(dtm_date_parse(DTM_STR("2026-13-01"), &d), DTM_EINVAL);
}

static void test_utf8(void **state)
{
    (void)state;
    assert_int_equal(dtm_utf8_check("Vi\xe1\xbb\x87t Nam", 10), 10);
    assert_int_equal(dtm_utf8_check("ab\xc3\x28", 4), 2);       /* bad continuation */
    assert_int_equal(dtm_utf8_check("\xc0\xaf", 2), 0);         /* overlong */
    assert_int_equal(dtm_utf8_check("a\xed\xa0\x80", 4), 1);    /* surrogate */
    assert_int_equal(dtm_utf8_check("\xf4\x90\x80\x80", 4), 0); /* > U+10FFFF */
    assert_int_equal(dtm_utf8_check("\xe1\xbb", 2), 0);         /* truncated */
    size_t line, col;
    dtm_text_pos("ab\ncd\nef", 7, &line, &col);
    assert_int_equal(line, 3);
    assert_int_equal(col, 2);
}

static void test_hashes(void **state)
{
    uint8_t out[32];
    char hex[65];
    (void)state;
    dtm_sha256("abc", 3, out);
    dtm_hex(out, 32, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    /* RFC 4231 test case 2 */
    dtm_hmac_sha256((const uint8_t *)"Jefe", 4, "what do ya want for nothing?", 28, out);
    dtm_hex(out, 32, hex);
    assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* the same again (cached context) and with another key */
    dtm_hmac_sha256((const uint8_t *)"Jefe", 4, "what do ya want for nothing?", 28, out);
    dtm_hex(out, 32, hex);
    assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    dtm_hmac_sha256((const uint8_t *)"Jeff", 4, "what do ya want for nothing?", 28, out);
    dtm_hex(out, 32, hex);
    assert_string_not_equal(hex,
                            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    assert_true(dtm_ct_equal("abc", "abc", 3));
    assert_false(dtm_ct_equal("abc", "abd", 3));
}

static void test_random_id(void **state)
{
    char a[64], b[64];
    (void)state;
    assert_int_equal(dtm_random_id("r_", a, sizeof(a)), DTM_OK);
    assert_int_equal(dtm_random_id("r_", b, sizeof(b)), DTM_OK);
    assert_int_equal(strlen(a), 28);
    assert_string_not_equal(a, b);
    assert_int_equal(dtm_random_id("r_", a, 10), DTM_EINVAL);
}

static void test_languages(void **state)
{
    (void)state;
    assert_int_equal(dtm_lang_from_header(DTM_STR_NULL), DTM_LANG_VI);
    assert_int_equal(dtm_lang_from_header(DTM_STR("en")), DTM_LANG_EN);
    assert_int_equal(dtm_lang_from_header(DTM_STR("en-US,en;q=0.9")), DTM_LANG_EN);
    assert_int_equal(dtm_lang_from_header(DTM_STR("vi-VN, en;q=0.8")), DTM_LANG_VI);
    assert_int_equal(dtm_lang_from_header(DTM_STR("en;q=0.5, vi;q=0.9")), DTM_LANG_VI);
    assert_int_equal(dtm_lang_from_header(DTM_STR("fr, en;q=0.1")), DTM_LANG_EN);
    assert_int_equal(dtm_lang_from_header(DTM_STR("fr")), DTM_LANG_VI);
    assert_int_equal(dtm_lang_from_header(DTM_STR("en;q=0")), DTM_LANG_VI);
    /* English is the msgid itself; Vietnamese comes from po/vi.po */
    assert_string_equal(dtm_tr(DTM_LANG_EN, "Not found"), "Not found");
    assert_string_not_equal(dtm_tr(DTM_LANG_VI, "Not found"), "Not found");
    assert_string_equal(dtm_tr(DTM_LANG_VI, "no such message id"), "no such message id");
}

struct job {
    atomic_int calls;
    atomic_bool busy, saw_stop;
    int64_t delay;
    bool spin; /* the call lasts until the stop begins */
};

static int64_t job_fn(struct dtm_periodic *p, void *arg)
{
    struct job *j = arg;
    atomic_fetch_add(&j->calls, 1);
    atomic_store(&j->busy, true);
    for (int i = 0; j->spin && i < 10000 && !dtm_periodic_stopping(p); i++)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    atomic_store(&j->saw_stop, dtm_periodic_stopping(p));
    return j->delay;
}

static bool wait_calls(struct job *j, int n)
{
    for (int i = 0; i < 5000 && atomic_load(&j->calls) < n; i++)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    return atomic_load(&j->calls) >= n;
}

static void test_periodic(void **state)
{
    struct dtm_periodic *p = NULL;
    struct job j = {.delay = 3600 * 1000000LL};
    char err[128];
    (void)state;
    /* the first call after first_us, the next one an hour later, or at once when woken */
    assert_int_equal(dtm_periodic_start("test", 1000, job_fn, &j, &p, err, sizeof(err)), DTM_OK);
    assert_non_null(p);
    assert_true(wait_calls(&j, 1));
    nanosleep(&(struct timespec){0, 50000000}, NULL);
    assert_int_equal(atomic_load(&j.calls), 1);
    dtm_periodic_wake(p);
    assert_true(wait_calls(&j, 2));
    assert_false(dtm_periodic_stopping(p));
    dtm_periodic_stop(p); /* ends the hour's wait (the suite would time out otherwise) */
    assert_int_equal(atomic_load(&j.calls), 2);
    /* a stop before the first call: never called */
    struct job k = {.delay = 1};
    assert_int_equal(dtm_periodic_start("test", 3600 * 1000000LL, job_fn, &k, &p, err, sizeof(err)),
                     DTM_OK);
    dtm_periodic_stop(p);
    assert_int_equal(atomic_load(&k.calls), 0);
    /* a long call sees the stop begin and returns; the stop waits for it */
    struct job l = {.delay = 1, .spin = true};
    assert_int_equal(dtm_periodic_start("test", 0, job_fn, &l, &p, err, sizeof(err)), DTM_OK);
    for (int i = 0; i < 5000 && !atomic_load(&l.busy); i++)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    assert_true(atomic_load(&l.busy));
    dtm_periodic_stop(p);
    assert_true(atomic_load(&l.saw_stop));
    assert_int_equal(atomic_load(&l.calls), 1);
    dtm_periodic_stop(NULL);
    dtm_periodic_wake(NULL);
    assert_false(dtm_periodic_stopping(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_str_to_i64),
        cmocka_unit_test(test_buf_limits_and_sticky_error),
        cmocka_unit_test(test_buf_json_and_xml_escaping),
        cmocka_unit_test(test_arena),
        cmocka_unit_test(test_time_parse_and_format),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_hashes),
        cmocka_unit_test(test_random_id),
        cmocka_unit_test(test_languages),
        cmocka_unit_test(test_array_reserve),
        cmocka_unit_test(test_periodic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
