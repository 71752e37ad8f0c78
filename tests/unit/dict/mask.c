/* Unit tests of src/dict/mask.c: the three masks of CONTRACT §4 on ASCII and multi-byte UTF-8,
 * HMAC stability (same value and key → same hash; another key → another hash), and masking of
 * whole records in raw and masked mode, including values the sender already masked (S2, F1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dict/dict.h"

static uint8_t key1[32], key2[32];

static int setup(void **state)
{
    static struct dtm_arena arena;
    for (int i = 0; i < 32; i++) {
        key1[i] = (uint8_t)i;
        key2[i] = (uint8_t)(i + 1);
    }
    dtm_arena_init(&arena, 1024);
    *state = &arena;
    return 0;
}

static int teardown(void **state)
{
    dtm_arena_free(*state);
    return 0;
}

static void assert_masked(struct dtm_arena *a, enum dtm_mask m, const char *in, const char *want)
{
    struct dtm_str out = dtm_mask_value(m, dtm_str_c(in), key1, a);
    assert_non_null(out.p);
    assert_int_equal(out.n, strlen(want));
    assert_memory_equal(out.p, want, out.n);
    assert_int_equal(out.p[out.n], '\0');
}

static void test_partial(void **state)
{
    struct dtm_arena *a = *state;
    assert_masked(a, DTM_MASK_PARTIAL, "001234567890", "0012******90");
    assert_masked(a, DTM_MASK_PARTIAL, "1234567", "1234*67");
    assert_masked(a, DTM_MASK_PARTIAL, "123456", "******");
    assert_masked(a, DTM_MASK_PARTIAL, "abc", "***");
    assert_masked(a, DTM_MASK_PARTIAL, "a", "*");
    assert_masked(a, DTM_MASK_PARTIAL, "", "");
    /* one '*' per hidden character (code point), multi-byte characters kept whole */
    assert_masked(a, DTM_MASK_PARTIAL, "Nguyễn Văn An", "Nguy*******An");
    assert_masked(a, DTM_MASK_PARTIAL, "Đặng Thị Ánh", "Đặng******nh");
    assert_masked(a, DTM_MASK_PARTIAL, "Hà Nội", "******");
    assert_masked(a, DTM_MASK_PARTIAL, "Trần Ngọc Ẩn", "Trần******Ẩn");
    assert_masked(a, DTM_MASK_PARTIAL, "😀😀😀😀x😀😀", "😀😀😀😀*😀😀");
}

static void test_hash(void **state)
{
    struct dtm_arena *a = *state;
    /* HMAC-SHA-256(key = 00 01 .. 1f, "001234567890"), checked with Python's hmac module */
    assert_masked(a, DTM_MASK_HASH, "001234567890",
                  "31b9fdd881e4aa9826ebcf1f64c0a13213b725308f3fcaa70769c0bbd5507831");
    assert_masked(a, DTM_MASK_HASH, "Nguyễn Văn An",
                  "53144e98d56705f9b710d64ca85ba31a5d2a1d4da635d07f6a82fa7b388b7ecd");

    struct dtm_str v = DTM_STR("001234567890");
    struct dtm_str h1 = dtm_mask_value(DTM_MASK_HASH, v, key1, a);
    struct dtm_str h2 = dtm_mask_value(DTM_MASK_HASH, v, key1, a);
    struct dtm_str h3 = dtm_mask_value(DTM_MASK_HASH, v, key2, a);
    struct dtm_str h4 = dtm_mask_value(DTM_MASK_HASH, DTM_STR("001234567891"), key1, a);
    assert_int_equal(h1.n, 64);
    assert_true(dtm_str_eq(h1, h2));  /* stable: joins on the masked value still work */
    assert_false(dtm_str_eq(h1, h3)); /* keyed: another installation, another hash */
    assert_false(dtm_str_eq(h1, h4));
    for (size_t i = 0; i < h1.n; i++)
        assert_true((h1.p[i] >= '0' && h1.p[i] <= '9') || (h1.p[i] >= 'a' && h1.p[i] <= 'f'));
}

static void test_redact_and_none(void **state)
{
    struct dtm_arena *a = *state;
    struct dtm_str r = dtm_mask_value(DTM_MASK_REDACT, DTM_STR("secret"), key1, a);
    assert_null(r.p);
    assert_int_equal(r.n, 0);
    struct dtm_str in = DTM_STR("keep");
    struct dtm_str n = dtm_mask_value(DTM_MASK_NONE, in, key1, a);
    assert_ptr_equal(n.p, in.p);
    assert_int_equal(n.n, 4);
}

static const char *const def =
    "{\"code\":\"m\",\"title\":{\"en\":\"M\"},\"key\":[\"id\"],\"fields\":["
    "{\"name\":\"id\",\"type\":\"string\",\"required\":true},"
    "{\"name\":\"pid\",\"type\":\"string\",\"personal\":true,\"mask\":\"partial\"},"
    "{\"name\":\"email\",\"type\":\"string\",\"personal\":true,\"mask\":\"hash\"},"
    "{\"name\":\"note\",\"type\":\"string\",\"personal\":true,\"mask\":\"redact\"},"
    "{\"name\":\"phone\",\"type\":\"string\",\"personal\":true},"
    "{\"name\":\"city\",\"type\":\"string\"},"
    "{\"name\":\"n\",\"type\":\"integer\"}]}";

static void build(struct dtm_in_record *in, const char *const *kv, size_t n)
{
    memset(in, 0, sizeof *in);
    for (size_t i = 0; i + 1 < n; i += 2) {
        in->f[in->nfields].name = dtm_str_c(kv[i]);
        in->f[in->nfields].value = dtm_str_c(kv[i + 1]);
        in->f[in->nfields].kind = DTM_IN_STRING;
        in->nfields++;
    }
}

static char *json_of(const struct dtm_record *rec, struct dtm_buf *b)
{
    dtm_buf_init(b, 1 << 16);
    assert_int_equal(dtm_record_json(rec, b), DTM_OK);
    return b->p;
}

static void test_record_raw(void **state)
{
    struct dtm_arena *a = *state;
    struct dtm_dataset *ds = NULL;
    char err[256];
    assert_int_equal(dtm_dataset_parse(dtm_str_c(def), &ds, err, sizeof err), DTM_OK);
    static const char *const kv[] = {
        "id",   "r1", "pid",   "001234567890", "email", "an@example.vn",
        "note", "ốm", "phone", "0912345678",   "city",  "Hà Nội",
        "n",    "5"};
    struct dtm_in_record in;
    build(&in, kv, DTM_ARRAY_LEN(kv));
    struct dtm_record rec;
    assert_int_equal(dtm_validate(ds, &in, 0, &rec, a, DTM_MODE_RAW, NULL, 0), 0);
    assert_int_equal(dtm_mask_record(&rec, DTM_MODE_RAW, key1, a), DTM_OK);
    struct dtm_buf b;
    struct dtm_str h = dtm_mask_value(DTM_MASK_HASH, DTM_STR("an@example.vn"), key1, a);
    char want[512];
    /* raw mode: only fields whose definition names a mask; phone (personal, no mask) stays */
    snprintf(want, sizeof want,
             "{\"id\":\"r1\",\"pid\":\"0012******90\",\"email\":\"%.*s\",\"phone\":\"0912345678\","
             "\"city\":\"Hà Nội\",\"n\":5}",
             (int)h.n, h.p);
    assert_string_equal(json_of(&rec, &b), want);
    dtm_buf_free(&b);
    assert_false(rec.v[3].present); /* redacted */
    dtm_dataset_free(ds);
}

static void test_record_masked_mode(void **state)
{
    struct dtm_arena *a = *state;
    struct dtm_dataset *ds = NULL;
    char err[256];
    assert_int_equal(dtm_dataset_parse(dtm_str_c(def), &ds, err, sizeof err), DTM_OK);
    struct dtm_str h = dtm_mask_value(DTM_MASK_HASH, DTM_STR("an@example.vn"), key1, a);
    char hex[65];
    snprintf(hex, sizeof hex, "%.*s", (int)h.n, h.p);

    /* raw values in masked mode: every personal field masked, partial when no mask is named */
    static const char *const raw[] = {
        "id",   "r1", "pid",   "001234567890", "email", "an@example.vn",
        "note", "ốm", "phone", "0912345678",   "city",  "Hà Nội"};
    struct dtm_in_record in;
    build(&in, raw, DTM_ARRAY_LEN(raw));
    struct dtm_record rec;
    struct dtm_buf b;
    char want[512];
    assert_int_equal(dtm_validate(ds, &in, 0, &rec, a, DTM_MODE_MASKED, NULL, 0), 0);
    assert_int_equal(dtm_mask_record(&rec, DTM_MODE_MASKED, key1, a), DTM_OK);
    snprintf(want, sizeof want,
             "{\"id\":\"r1\",\"pid\":\"0012******90\",\"email\":\"%s\",\"phone\":\"0912****78\","
             "\"city\":\"Hà Nội\"}",
             hex);
    assert_string_equal(json_of(&rec, &b), want);
    dtm_buf_free(&b);

    /* values the sender already masked are kept as they are (not masked twice) */
    const char *premasked[] = {"id",    "r1", "pid",   "0012******90",
                               "email", hex,  "phone", "09********"};
    build(&in, premasked, DTM_ARRAY_LEN(premasked));
    assert_int_equal(dtm_validate(ds, &in, 0, &rec, a, DTM_MODE_MASKED, NULL, 0), 0);
    const char *pid_in = rec.v[1].text.p, *email_in = rec.v[2].text.p;
    assert_int_equal(dtm_mask_record(&rec, DTM_MODE_MASKED, key1, a), DTM_OK);
    assert_ptr_equal(rec.v[1].text.p, pid_in);
    assert_ptr_equal(rec.v[2].text.p, email_in);
    snprintf(want, sizeof want,
             "{\"id\":\"r1\",\"pid\":\"0012******90\",\"email\":\"%s\",\"phone\":\"09********\"}",
             hex);
    assert_string_equal(json_of(&rec, &b), want);
    dtm_buf_free(&b);

    /* in raw mode the same hash-looking value is hashed again (the sender said it is raw) */
    assert_int_equal(dtm_validate(ds, &in, 0, &rec, a, DTM_MODE_RAW, NULL, 0), 0);
    assert_int_equal(dtm_mask_record(&rec, DTM_MODE_RAW, key1, a), DTM_OK);
    assert_false(dtm_str_eqc(rec.v[2].text, hex));
    dtm_dataset_free(ds);
}

static void test_builtin_transactions(void **state)
{
    struct dtm_arena *a = *state;
    struct dtm_dict *d = dtm_dict_create();
    const struct dtm_dataset *ds = dtm_dict_get(d, DTM_STR("transactions"));
    static const char *const kv[] = {
        "txn_id",     "T1",           "system_code", "sys-1",      "service_code",
        "1.000001",   "status",       "success",     "started_at", "2026-10-05T08:30:00Z",
        "citizen_id", "001234567890", "business_id", "0101234567"};
    struct dtm_in_record in;
    build(&in, kv, DTM_ARRAY_LEN(kv));
    struct dtm_record rec;
    assert_int_equal(dtm_validate(ds, &in, 0, &rec, a, DTM_MODE_RAW, NULL, 0), 0);
    assert_int_equal(dtm_mask_record(&rec, DTM_MODE_RAW, key1, a), DTM_OK);
    struct dtm_buf b;
    assert_string_equal(
        json_of(&rec, &b),
        "{\"txn_id\":\"T1\",\"system_code\":\"sys-1\",\"service_code\":\"1.000001\","
        "\"status\":\"success\",\"started_at\":\"2026-10-05T08:30:00Z\","
        "\"citizen_id\":\"0012******90\",\"business_id\":\"0101234567\"}");
    dtm_buf_free(&b);
    dtm_dict_destroy(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_partial),
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_redact_and_none),
        cmocka_unit_test(test_record_raw),
        cmocka_unit_test(test_record_masked_mode),
        cmocka_unit_test(test_builtin_transactions),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
