/* Unit tests of src/dict/validate.c and src/dict/messages.c: every error code on every type,
 * canonical forms, cross-field rules, S4 (secret), masked mode, canonical record JSON, the
 * localised messages, and validation from several threads at once. Records are built by hand
 * (struct dtm_in_record), not decoded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "dict/dict.h"

static const char *const test_def =
    "{\"code\":\"t\",\"title\":{\"en\":\"Test\"},\"key\":[\"id\"],\"time_field\":\"at\","
    "\"fields\":["
    "{\"name\":\"id\",\"type\":\"string\",\"required\":true,\"max_length\":8},"
    "{\"name\":\"code\",\"type\":\"string\",\"pattern\":\"^[A-Z]{2}[0-9]+$\"},"
    "{\"name\":\"n\",\"type\":\"integer\",\"min\":0,\"max\":100},"
    "{\"name\":\"big\",\"type\":\"integer\"},"
    "{\"name\":\"x\",\"type\":\"decimal\",\"min\":-1.5,\"max\":1000},"
    "{\"name\":\"ok\",\"type\":\"boolean\"},"
    "{\"name\":\"day\",\"type\":\"date\"},"
    "{\"name\":\"at\",\"type\":\"datetime\",\"required\":true},"
    "{\"name\":\"end\",\"type\":\"datetime\"},"
    "{\"name\":\"kind\",\"type\":\"enum\",\"values\":[\"a\",\"b\",\"c\"]},"
    "{\"name\":\"classification\",\"type\":\"enum\",\"values\":[\"public\",\"internal\"]},"
    "{\"name\":\"name\",\"type\":\"string\",\"max_length\":5},"
    "{\"name\":\"pid\",\"type\":\"string\",\"pattern\":\"^[0-9]{12}$\",\"personal\":true,"
    "\"mask\":\"partial\"},"
    "{\"name\":\"email\",\"type\":\"string\",\"personal\":true,\"mask\":\"hash\","
    "\"max_length\":40},"
    "{\"name\":\"phone\",\"type\":\"string\",\"personal\":true,\"pattern\":\"^[0-9]{10}$\"},"
    "{\"name\":\"note\",\"type\":\"string\",\"personal\":true,\"mask\":\"redact\"},"
    "{\"name\":\"a\",\"type\":\"integer\"},{\"name\":\"b\",\"type\":\"integer\"},"
    "{\"name\":\"total\",\"type\":\"integer\"},{\"name\":\"reason\",\"type\":\"string\"},"
    "{\"name\":\"p\",\"type\":\"decimal\"},{\"name\":\"q\",\"type\":\"decimal\"}],"
    "\"rules\":["
    "{\"if\":{\"kind\":\"b\"},\"require\":[\"reason\"]},"
    "{\"if\":{\"kind\":\"c\"},\"forbid\":[\"reason\"]},"
    "{\"left\":[\"a\",\"b\"],\"op\":\"<=\",\"right\":[\"total\"]},"
    "{\"left\":[\"end\"],\"op\":\">=\",\"right\":[\"at\"],\"code\":\"time_order\","
    "\"message\":{\"vi\":\"Kết thúc trước khi bắt đầu.\",\"en\":\"The end is before the "
    "start.\"}},"
    "{\"if\":{\"ok\":true},\"require\":[\"day\"],\"code\":\"need_day\"},"
    "{\"left\":[\"p\",\"q\"],\"op\":\"=\",\"right\":[\"x\"]}]}";

struct fixture {
    struct dtm_dataset *ds;
    struct dtm_arena arena;
    struct dtm_in_record in;
    struct dtm_record rec;
    struct dtm_rec_error errs[32];
    size_t nerr;
};

static int setup(void **state)
{
    static struct fixture fx;
    char err[256];
    memset(&fx, 0, sizeof fx);
    if (dtm_dataset_parse(dtm_str_c(test_def), &fx.ds, err, sizeof err) != DTM_OK) {
        fprintf(stderr, "test definition rejected: %s\n", err);
        return -1;
    }
    dtm_arena_init(&fx.arena, 4096);
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    dtm_dataset_free(fx->ds);
    dtm_arena_free(&fx->arena);
    return 0;
}

static void add(struct fixture *fx, const char *name, const char *value, enum dtm_in_kind kind)
{
    struct dtm_in_field *f = &fx->in.f[fx->in.nfields++];
    f->name = dtm_str_c(name);
    f->value = value ? dtm_str_c(value) : DTM_STR_NULL;
    f->kind = kind;
}

/* A valid base record, then name/value pairs (NULL-terminated) added as strings. */
static size_t run(struct fixture *fx, enum dtm_mask_mode mode, ...)
{
    va_list ap;
    fx->in.nfields = 0;
    va_start(ap, mode);
    bool base = true;
    for (const char *name; (name = va_arg(ap, const char *));) {
        if (strcmp(name, "-nobase") == 0) {
            base = false;
            continue;
        }
        add(fx, name, va_arg(ap, const char *), DTM_IN_STRING);
    }
    va_end(ap);
    if (base) {
        add(fx, "id", "r1", DTM_IN_STRING);
        add(fx, "at", "2026-10-05T08:30:00+07:00", DTM_IN_STRING);
    }
    fx->nerr = dtm_validate(fx->ds, &fx->in, 7, &fx->rec, &fx->arena, mode, fx->errs,
                            DTM_ARRAY_LEN(fx->errs));
    return fx->nerr;
}

#define RUN(fx, ...) run(fx, DTM_MODE_RAW, __VA_ARGS__, (const char *)NULL)
#define RUN_MASKED(fx, ...) run(fx, DTM_MODE_MASKED, __VA_ARGS__, (const char *)NULL)

static const struct dtm_value *val(struct fixture *fx, const char *name)
{
    int i = dtm_dataset_field(fx->ds, dtm_str_c(name));
    assert_true(i >= 0);
    return &fx->rec.v[i];
}

static void assert_text(struct fixture *fx, const char *name, const char *text)
{
    const struct dtm_value *v = val(fx, name);
    assert_true(v->present);
    char buf[128];
    snprintf(buf, sizeof buf, "%.*s", (int)v->text.n, v->text.p);
    assert_string_equal(buf, text);
}

/* Exactly one error, with this field, code and (when given) arg. */
static void assert_err(struct fixture *fx, const char *field, const char *code, const char *arg)
{
    if (fx->nerr != 1) {
        for (size_t i = 0; i < fx->nerr && i < DTM_ARRAY_LEN(fx->errs); i++)
            fprintf(stderr, "  error %zu: %s %s %s\n", i, fx->errs[i].field, fx->errs[i].code,
                    fx->errs[i].arg);
        fail_msg("%zu errors, want one (%s on %s)", fx->nerr, code, field);
    }
    assert_string_equal(fx->errs[0].field, field);
    assert_string_equal(fx->errs[0].code, code);
    assert_int_equal(fx->errs[0].index, 7);
    if (arg)
        assert_string_equal(fx->errs[0].arg, arg);
}

static void assert_valid(struct fixture *fx)
{
    for (size_t i = 0; i < fx->nerr && i < DTM_ARRAY_LEN(fx->errs); i++)
        fprintf(stderr, "  error %zu: %s %s %s\n", i, fx->errs[i].field, fx->errs[i].code,
                fx->errs[i].arg);
    assert_int_equal(fx->nerr, 0);
}

static void test_minimal_record(void **state)
{
    struct fixture *fx = *state;
    run(fx, DTM_MODE_RAW, (const char *)NULL);
    assert_valid(fx);
    assert_ptr_equal(fx->rec.ds, fx->ds);
    assert_text(fx, "id", "r1");
    assert_false(val(fx, "n")->present);
    /* untouched canonical text is the input itself: no copy */
    assert_ptr_equal(val(fx, "at")->text.p, fx->in.f[1].value.p);
}

static void test_unknown_and_required(void **state)
{
    struct fixture *fx = *state;
    RUN(fx, "colour", "red");
    assert_err(fx, "colour", "unknown_field", "t");

    RUN(fx, "-nobase", "at", "2026-01-01T00:00:00Z");
    assert_err(fx, "id", "required", "");

    /* absent = missing, null, or empty text */
    fx->in.nfields = 0;
    add(fx, "id", NULL, DTM_IN_NULL);
    add(fx, "at", "", DTM_IN_STRING);
    fx->nerr = dtm_validate(fx->ds, &fx->in, 7, &fx->rec, &fx->arena, DTM_MODE_RAW, fx->errs, 32);
    assert_int_equal(fx->nerr, 2);
    assert_string_equal(fx->errs[0].field, "id");
    assert_string_equal(fx->errs[1].field, "at");
    assert_string_equal(fx->errs[1].code, "required");

    /* an empty optional value is simply absent */
    RUN(fx, "n", "");
    assert_valid(fx);
    assert_false(val(fx, "n")->present);
}

static void test_integers(void **state)
{
    struct fixture *fx = *state;
    static const struct {
        const char *in, *out;
    } ok[] = {{"12", "12"}, {"+12", "12"},  {"0012", "12"}, {"0", "0"},
              {"-0", "0"},  {"100", "100"}, {"00", "0"},    {"007", "7"}};
    for (size_t i = 0; i < DTM_ARRAY_LEN(ok); i++) {
        RUN(fx, "n", ok[i].in);
        assert_valid(fx);
        assert_text(fx, "n", ok[i].out);
    }
    RUN(fx, "n", "42");
    assert_int_equal(val(fx, "n")->i, 42);
    assert_true(val(fx, "n")->d == 42.0);

    static const char *const bad[] = {"12.5", "abc",  "1 2",  " 12", "12 ", "--1",
                                      "+",    "0x10", "1e",   "1.",  ".5",  "1e-1",
                                      "١٢",   "1,5",  "12.0", "1e2", "-"};
    for (size_t i = 0; i < DTM_ARRAY_LEN(bad); i++) {
        RUN(fx, "n", bad[i]);
        assert_err(fx, "n", "type", "integer");
    }
    RUN(fx, "big", "9223372036854775807");
    assert_valid(fx);
    assert_true(val(fx, "big")->i == INT64_MAX);
    RUN(fx, "big", "-9223372036854775808");
    assert_valid(fx);
    assert_true(val(fx, "big")->i == INT64_MIN);
    RUN(fx, "big", "9223372036854775808");
    assert_err(fx, "big", "type", "integer");
    RUN(fx, "big", "-9223372036854775809");
    assert_err(fx, "big", "type", "integer");

    RUN(fx, "n", "-1");
    assert_err(fx, "n", "min", "0");
    RUN(fx, "n", "101");
    assert_err(fx, "n", "max", "100");
    RUN(fx, "n", "100");
    assert_valid(fx);

    /* the decoder's kind does not matter: a JSON number or a JSON string */
    fx->in.nfields = 0;
    add(fx, "id", "r1", DTM_IN_STRING);
    add(fx, "at", "2026-10-05T08:30:00Z", DTM_IN_STRING);
    add(fx, "n", "7", DTM_IN_NUMBER);
    assert_int_equal(
        dtm_validate(fx->ds, &fx->in, 0, &fx->rec, &fx->arena, DTM_MODE_RAW, fx->errs, 32), 0);
    assert_int_equal(val(fx, "n")->i, 7);
}

static void test_decimals(void **state)
{
    struct fixture *fx = *state;
    static const struct {
        const char *in, *out;
        double d;
    } ok[] = {{"12.50", "12.5", 12.5},
              {"0012", "12", 12},
              {"-0.0", "0", 0},
              {"0.50", "0.5", 0.5},
              {"000.5", "0.5", 0.5},
              {"1.5e2", "150", 150},
              {"1E-2", "0.01", 0.01},
              {"-1.25", "-1.25", -1.25},
              {"+3", "3", 3},
              {"999.999", "999.999", 999.999},
              {"12345e-7", "0.0012345", 0.0012345},
              {"0.000", "0", 0}};
    for (size_t i = 0; i < DTM_ARRAY_LEN(ok); i++) {
        RUN(fx, "x", ok[i].in);
        assert_valid(fx);
        assert_text(fx, "x", ok[i].out);
        if (val(fx, "x")->d != ok[i].d)
            fail_msg("%s: %.17g, want %.17g", ok[i].in, val(fx, "x")->d, ok[i].d);
    }
    static const char *const bad[] = {"12.",    ".5",  "1e",       "abc", "1.2.3",
                                      "1e9999", "NaN", "Infinity", "1,5"};
    for (size_t i = 0; i < DTM_ARRAY_LEN(bad); i++) {
        RUN(fx, "x", bad[i]);
        assert_err(fx, "x", "type", "decimal");
    }
    RUN(fx, "x", "-2");
    assert_err(fx, "x", "min", "-1.5");
    RUN(fx, "x", "1000.01");
    assert_err(fx, "x", "max", "1000");
    RUN(fx, "x", "-1.5");
    assert_valid(fx);
}

static void test_booleans(void **state)
{
    struct fixture *fx = *state;
    static const struct {
        const char *in, *out;
    } ok[] = {{"true", "true"},   {"TRUE", "true"}, {"1", "true"},
              {"False", "false"}, {"0", "false"},   {"false", "false"}};
    for (size_t i = 0; i < DTM_ARRAY_LEN(ok); i++) {
        RUN(fx, "ok", ok[i].in, "day", "2026-01-01");
        assert_valid(fx);
        assert_text(fx, "ok", ok[i].out);
        assert_int_equal(val(fx, "ok")->i, ok[i].out[0] == 't');
    }
    static const char *const bad[] = {"yes", "no", "2", "t", "truee"};
    for (size_t i = 0; i < DTM_ARRAY_LEN(bad); i++) {
        RUN(fx, "ok", bad[i]);
        assert_err(fx, "ok", "type", "boolean");
    }
}

static void test_dates(void **state)
{
    struct fixture *fx = *state;
    RUN(fx, "day", "2024-02-29");
    assert_valid(fx);
    assert_int_equal(val(fx, "day")->i, 19782);
    RUN(fx, "day", "1970-01-01");
    assert_int_equal(val(fx, "day")->i, 0);
    RUN(fx, "day", "2000-02-29");
    assert_valid(fx);
    static const char *const bad[] = {
        "2023-02-29", "1900-02-29", "2024-13-01",          "2024-00-10", "2024-04-31", "2024-1-01",
        "24-01-01",   "2024/01/01", "2024-01-01T00:00:00", "0000-01-01", "today"};
    for (size_t i = 0; i < DTM_ARRAY_LEN(bad); i++) {
        RUN(fx, "day", bad[i]);
        assert_err(fx, "day", "type", "date");
    }
}

static void test_datetimes(void **state)
{
    struct fixture *fx = *state;
    static const struct {
        const char *in, *out;
    } ok[] = {
        {"2026-10-05T08:30:00Z", "2026-10-05T08:30:00Z"},
        {"2026-10-05T08:30:00+07:00", "2026-10-05T08:30:00+07:00"},
        {"2026-10-05 08:30", "2026-10-05T08:30:00+07:00"},
        {"2026-10-05T08:30", "2026-10-05T08:30:00+07:00"},
        {"2026-10-05t08:30:00z", "2026-10-05T08:30:00Z"},
        {"2026-10-05T08:30:00.120+07:00", "2026-10-05T08:30:00.120+07:00"},
        {"2026-10-05T08:30:00.5", "2026-10-05T08:30:00.5+07:00"},
        {"2026-10-05T08:30:00-05:30", "2026-10-05T08:30:00-05:30"},
    };
    for (size_t i = 0; i < DTM_ARRAY_LEN(ok); i++) {
        RUN(fx, "-nobase", "id", "r", "at", ok[i].in);
        assert_valid(fx);
        assert_text(fx, "at", ok[i].out);
    }
    RUN(fx, "-nobase", "id", "r", "at", "2026-10-05T08:30:00Z");
    assert_true(val(fx, "at")->i == INT64_C(1791189000000000));
    RUN(fx, "-nobase", "id", "r", "at", "2026-10-05T15:30:00+07:00");
    assert_true(val(fx, "at")->i == INT64_C(1791189000000000));
    RUN(fx, "-nobase", "id", "r", "at", "2026-10-05 15:30");
    assert_true(val(fx, "at")->i == INT64_C(1791189000000000));
    RUN(fx, "-nobase", "id", "r", "at", "2026-10-05T08:30:00.25Z");
    assert_true(val(fx, "at")->i == INT64_C(1791189000250000));

    static const char *const bad[] = {"2026-10-05",
                                      "2026-10-05T25:00",
                                      "2026-10-05T08:60",
                                      "2026-02-30T08:00:00Z",
                                      "2026-10-05T08:30:00+7:00",
                                      "2026-10-05T08:30:00+0700",
                                      "2026-10-05T08:30:00.Z",
                                      "2026-10-05T08:30.5Z",
                                      "2026-10-05T08:30:00ZZ",
                                      "2026-10-05X08:30",
                                      "yesterday"};
    for (size_t i = 0; i < DTM_ARRAY_LEN(bad); i++) {
        RUN(fx, "-nobase", "id", "r", "at", bad[i]);
        assert_err(fx, "at", "type", "datetime");
    }
}

static void test_strings(void **state)
{
    struct fixture *fx = *state;
    RUN(fx, "name", "Ngọc"); /* 4 code points, 6 bytes */
    assert_valid(fx);
    RUN(fx, "name", "Nguyễn"); /* 6 code points */
    assert_err(fx, "name", "max_length", "5");
    RUN(fx, "name", "Đặng");
    assert_valid(fx);
    RUN(fx, "name", "abcdef");
    assert_err(fx, "name", "max_length", "5");

    RUN(fx, "code", "AB12");
    assert_valid(fx);
    RUN(fx, "code", "ab12");
    assert_err(fx, "code", "pattern", "^[A-Z]{2}[0-9]+$");
    RUN(fx, "code", "AB12\nCD");
    assert_err(fx, "code", "pattern", NULL);
    RUN(fx, "pid", "001234567890");
    assert_valid(fx);
    RUN(fx, "pid", "00123456789");
    assert_err(fx, "pid", "pattern", "^[0-9]{12}$");
}

static void test_enums_and_secret(void **state)
{
    struct fixture *fx = *state;
    RUN(fx, "kind", "a");
    assert_valid(fx);
    RUN(fx, "kind", "A");
    assert_err(fx, "kind", "enum", "a, b, c");
    RUN(fx, "kind", "ab");
    assert_err(fx, "kind", "enum", "a, b, c");

    /* S4: secret is refused before the enum check, whatever the case */
    static const char *const secret[] = {"secret", "Secret", "SECRET"};
    for (size_t i = 0; i < DTM_ARRAY_LEN(secret); i++) {
        RUN(fx, "classification", secret[i]);
        assert_err(fx, "classification", "secret", NULL);
    }
    RUN(fx, "classification", "public");
    assert_valid(fx);
    RUN(fx, "classification", "top");
    assert_err(fx, "classification", "enum", "public, internal");
}

static void test_rules(void **state)
{
    struct fixture *fx = *state;
    RUN(fx, "kind", "b");
    assert_err(fx, "reason", "required", "kind = b");
    assert_non_null(fx->errs[0].rule);
    RUN(fx, "kind", "b", "reason", "why");
    assert_valid(fx);
    RUN(fx, "kind", "c", "reason", "why");
    assert_err(fx, "reason", "forbidden", "kind = c");
    RUN(fx, "kind", "a", "reason", "why");
    assert_valid(fx);

    /* sums */
    RUN(fx, "a", "3", "b", "4", "total", "7");
    assert_valid(fx);
    RUN(fx, "a", "3", "b", "5", "total", "7");
    assert_err(fx, "a", "rule", "a + b <= total");
    RUN(fx, "a", "3", "total", "2"); /* b absent: skipped */
    assert_valid(fx);
    RUN(fx, "a", "3", "b", "x", "total", "2"); /* b invalid: only its own error */
    assert_err(fx, "b", "type", NULL);
    RUN(fx, "a", "9223372036854775807", "b", "1", "total", "1"); /* overflow → double */
    assert_err(fx, "a", "rule", NULL);

    /* decimals compare as numbers: 0.1 + 0.2 = 0.3 */
    RUN(fx, "p", "0.1", "q", "0.2", "x", "0.3");
    assert_valid(fx);
    RUN(fx, "p", "0.1", "q", "0.2", "x", "0.31");
    assert_err(fx, "p", "rule", "p + q = x");

    /* datetimes compare as instants, whatever the offsets */
    RUN(fx, "end", "2026-10-05T01:30:00Z"); /* = 08:30+07:00 */
    assert_valid(fx);
    RUN(fx, "end", "2026-10-05T01:29:59Z");
    assert_err(fx, "end", "time_order", "end >= at");
    assert_string_equal(fx->errs[0].rule->code, "time_order");

    /* a custom code on a require rule, with a boolean condition */
    RUN(fx, "ok", "1");
    assert_err(fx, "day", "need_day", "ok = true");
    RUN(fx, "ok", "0");
    assert_valid(fx);
}

static void test_all_errors_collected(void **state)
{
    struct fixture *fx = *state;
    RUN(fx, "-nobase", "zz", "1", "n", "x", "kind", "q", "day", "2024-02-30", "name", "toolong",
        "end", "soon");
    /* zz unknown, id and at required, n type, day type, end type, kind enum, name max_length */
    assert_int_equal(fx->nerr, 8);
    assert_string_equal(fx->errs[0].code, "unknown_field");
    assert_string_equal(fx->errs[1].field, "id");
    for (size_t i = 0; i < fx->nerr; i++)
        assert_int_equal(fx->errs[i].index, 7);

    /* only max_errs are written; the count is the total */
    struct dtm_rec_error two[2];
    memset(two, 0, sizeof two);
    size_t n = dtm_validate(fx->ds, &fx->in, 3, &fx->rec, &fx->arena, DTM_MODE_RAW, two, 2);
    assert_int_equal(n, 8);
    assert_string_equal(two[1].field, "id");
    assert_int_equal(two[1].index, 3);
    assert_int_equal(dtm_validate(fx->ds, &fx->in, 3, &fx->rec, &fx->arena, DTM_MODE_RAW, NULL, 0),
                     8);

    /* an over-long unknown name is cut on a character boundary */
    char longname[200];
    memset(longname, 0, sizeof longname);
    for (size_t i = 0; i + 2 < 150; i += 2)
        memcpy(longname + i, "\xc3\xa9", 2);
    RUN(fx, longname, "1");
    assert_string_equal(fx->errs[0].code, "unknown_field");
    assert_int_equal(strlen(fx->errs[0].field), 62);
}

static void test_masked_mode(void **state)
{
    struct fixture *fx = *state;
    /* partial form of a 12-digit id: raw mode checks the pattern, masked mode accepts it */
    RUN(fx, "pid", "0012******90");
    assert_err(fx, "pid", "pattern", NULL);
    RUN_MASKED(fx, "pid", "0012******90");
    assert_valid(fx);
    RUN_MASKED(fx, "pid", "001234567890"); /* raw value in masked mode: checked, then masked */
    assert_valid(fx);
    RUN_MASKED(fx, "pid", "001234567*90"); /* less hidden than DTM hides */
    assert_err(fx, "pid", "masked_form", NULL);
    RUN_MASKED(fx, "pid", "****");
    assert_valid(fx);
    RUN_MASKED(fx, "pid", "*********");
    assert_valid(fx);
    RUN_MASKED(fx, "pid", "00123");
    assert_err(fx, "pid", "pattern", NULL);

    /* a personal field without a mask is masked partially in masked mode */
    RUN_MASKED(fx, "phone", "0912****78");
    assert_valid(fx);
    RUN(fx, "phone", "0912****78");
    assert_err(fx, "phone", "pattern", NULL);

    /* hash form: 64 lowercase hex passes max_length 40 only in masked mode */
    const char *hex = "31b9fdd881e4aa9826ebcf1f64c0a13213b725308f3fcaa70769c0bbd5507831";
    RUN_MASKED(fx, "email", hex);
    assert_valid(fx);
    RUN(fx, "email", hex);
    assert_err(fx, "email", "max_length", "40");
    RUN_MASKED(fx, "email", "31B9FDD881E4AA9826EBCF1F64C0A13213B725308F3FCAA70769C0BBD5507831");
    assert_err(fx, "email", "max_length", "40");

    /* non-personal fields are checked as usual */
    RUN_MASKED(fx, "code", "A*12");
    assert_err(fx, "code", "pattern", NULL);
}

static char *record_json(struct fixture *fx, struct dtm_buf *b)
{
    dtm_buf_init(b, 1 << 16);
    assert_int_equal(dtm_record_json(&fx->rec, b), DTM_OK);
    return b->p;
}

static void test_record_json(void **state)
{
    struct fixture *fx = *state;
    struct dtm_buf b;
    RUN(fx, "n", "007", "x", "12.50", "ok", "TRUE", "day", "2024-02-29", "kind", "a", "name",
        "Hà\"N", "end", "2026-10-05 09:00", "classification", "", "reason", "a\\b\n");
    assert_valid(fx);
    assert_string_equal(
        record_json(fx, &b),
        "{\"id\":\"r1\",\"n\":7,\"x\":12.5,\"ok\":true,\"day\":\"2024-02-29\","
        "\"at\":\"2026-10-05T08:30:00+07:00\",\"end\":\"2026-10-05T09:00:00+07:00\","
        "\"kind\":\"a\",\"name\":\"Hà\\\"N\",\"reason\":\"a\\\\b\\n\"}");
    dtm_buf_free(&b);
}

static void test_builtin_transactions(void **state)
{
    (void)state;
    struct dtm_dict *d = dtm_dict_create();
    const struct dtm_dataset *ds = dtm_dict_get(d, DTM_STR("transactions"));
    struct dtm_arena arena;
    dtm_arena_init(&arena, 4096);
    struct dtm_in_record in = {0};
    static const char *const kv[] = {"txn_id",         "T-0001",
                                     "system_code",    "dvc.bo-kh",
                                     "agency_code",    "G12",
                                     "service_code",   "1.001234",
                                     "channel",        "web",
                                     "status",         "failed",
                                     "error_reason",   "Hết thời gian chờ",
                                     "started_at",     "2026-10-05T08:30:00+07:00",
                                     "finished_at",    "2026-10-05T08:30:01.250+07:00",
                                     "response_ms",    "1250",
                                     "citizen_id",     "001234567890",
                                     "business_id",    "0101234567-001",
                                     "amount",         "50000.00",
                                     "region_code",    "01",
                                     "priority",       "normal",
                                     "classification", "internal"};
    for (size_t i = 0; i < DTM_ARRAY_LEN(kv); i += 2) {
        in.f[in.nfields].name = dtm_str_c(kv[i]);
        in.f[in.nfields].value = dtm_str_c(kv[i + 1]);
        in.f[in.nfields].kind = DTM_IN_STRING;
        in.nfields++;
    }
    struct dtm_record rec;
    struct dtm_rec_error errs[8];
    /* failed without error_code: the rule's own message */
    assert_int_equal(dtm_validate(ds, &in, 0, &rec, &arena, DTM_MODE_RAW, errs, 8), 1);
    assert_string_equal(errs[0].field, "error_code");
    assert_string_equal(errs[0].code, "required");
    struct dtm_buf b;
    dtm_buf_init(&b, 4096);
    dtm_rec_error_message(&errs[0], DTM_LANG_EN, &b);
    assert_string_equal(b.p, "A failed transaction (status = failed) must carry an error_code.");
    dtm_buf_free(&b);

    in.f[in.nfields].name = DTM_STR("error_code");
    in.f[in.nfields].value = DTM_STR("TIMEOUT");
    in.nfields++;
    assert_int_equal(dtm_validate(ds, &in, 0, &rec, &arena, DTM_MODE_RAW, errs, 8), 0);

    /* S4 on the real dataset */
    in.f[15].value = DTM_STR("SECRET");
    assert_int_equal(dtm_validate(ds, &in, 0, &rec, &arena, DTM_MODE_RAW, errs, 8), 1);
    assert_string_equal(errs[0].code, "secret");
    in.f[15].value = DTM_STR("internal");

    /* business_id: 10 or 13 digits, with or without the dash */
    static const char *const ids[] = {"0101234567", "0101234567001", "0101234567-001"};
    for (size_t i = 0; i < DTM_ARRAY_LEN(ids); i++) {
        in.f[11].value = dtm_str_c(ids[i]);
        assert_int_equal(dtm_validate(ds, &in, 0, &rec, &arena, DTM_MODE_RAW, errs, 8), 0);
    }
    in.f[11].value = DTM_STR("010123456");
    assert_int_equal(dtm_validate(ds, &in, 0, &rec, &arena, DTM_MODE_RAW, errs, 8), 1);
    assert_string_equal(errs[0].code, "pattern");
    in.f[11].value = DTM_STR("0101234567");

    /* finished before started */
    in.f[8].value = DTM_STR("2026-10-05T01:29:00Z");
    assert_int_equal(dtm_validate(ds, &in, 0, &rec, &arena, DTM_MODE_RAW, errs, 8), 1);
    assert_string_equal(errs[0].field, "finished_at");
    assert_string_equal(errs[0].code, "rule");
    dtm_buf_init(&b, 4096);
    dtm_rec_error_message(&errs[0], DTM_LANG_VI, &b);
    assert_string_equal(b.p, "Thời điểm kết thúc (finished_at) không được trước thời điểm bắt "
                             "đầu (started_at).");
    dtm_buf_free(&b);
    dtm_arena_free(&arena);
    dtm_dict_destroy(d);
}

static void message(const struct dtm_rec_error *e, enum dtm_lang lang, const char *want)
{
    struct dtm_buf b;
    dtm_buf_init(&b, 4096);
    dtm_rec_error_message(e, lang, &b);
    assert_int_equal(b.err, DTM_OK);
    assert_string_equal(b.p, want);
    dtm_buf_free(&b);
}

static void test_messages(void **state)
{
    struct fixture *fx = *state;
    RUN(fx, "kind", "z");
    message(&fx->errs[0], DTM_LANG_EN, "Field 'kind' must be one of: a, b, c.");
    message(&fx->errs[0], DTM_LANG_VI, "Trường 'kind' phải là một trong các giá trị: a, b, c.");

    RUN(fx, "-nobase", "at", "2026-01-01");
    assert_int_equal(fx->nerr, 2);
    message(&fx->errs[0], DTM_LANG_EN, "Field 'id' is required.");
    message(&fx->errs[0], DTM_LANG_VI, "Trường 'id' là bắt buộc.");
    message(&fx->errs[1], DTM_LANG_EN,
            "Field 'at' must be a date and time in RFC 3339 form, such as "
            "2026-10-05T08:30:00+07:00.");

    RUN(fx, "n", "1.5");
    message(&fx->errs[0], DTM_LANG_EN, "Field 'n' must be an integer.");
    message(&fx->errs[0], DTM_LANG_VI, "Trường 'n' phải là số nguyên.");
    RUN(fx, "n", "500");
    message(&fx->errs[0], DTM_LANG_EN, "Field 'n' must be at most 100.");
    message(&fx->errs[0], DTM_LANG_VI, "Trường 'n' phải nhỏ hơn hoặc bằng 100.");
    RUN(fx, "name", "Nguyễn");
    message(&fx->errs[0], DTM_LANG_VI, "Trường 'name' chỉ được dài tối đa 5 ký tự.");

    RUN(fx, "classification", "secret");
    message(&fx->errs[0], DTM_LANG_EN,
            "Records classified as secret are not accepted: state-secret data is out of scope.");
    message(&fx->errs[0], DTM_LANG_VI,
            "Không tiếp nhận bản ghi có độ mật là bí mật: dữ liệu bí mật nhà nước nằm ngoài phạm "
            "vi của hệ thống.");

    RUN(fx, "kind", "b");
    message(&fx->errs[0], DTM_LANG_EN, "Field 'reason' is required when kind = b.");
    message(&fx->errs[0], DTM_LANG_VI, "Trường 'reason' là bắt buộc khi kind = b.");
    RUN(fx, "kind", "c", "reason", "x");
    message(&fx->errs[0], DTM_LANG_EN, "Field 'reason' must not be given when kind = c.");

    RUN(fx, "a", "5", "b", "5", "total", "1");
    message(&fx->errs[0], DTM_LANG_EN, "Field 'a' breaks the rule a + b <= total.");
    message(&fx->errs[0], DTM_LANG_VI, "Trường 'a' vi phạm quy tắc a + b <= total.");
    RUN(fx, "end", "2020-01-01T00:00:00Z");
    message(&fx->errs[0], DTM_LANG_EN, "The end is before the start.");
    message(&fx->errs[0], DTM_LANG_VI, "Kết thúc trước khi bắt đầu.");
    RUN(fx, "ok", "true");
    message(&fx->errs[0], DTM_LANG_EN, "Field 'day' is required when ok = true.");

    RUN(fx, "zz", "1");
    message(&fx->errs[0], DTM_LANG_EN, "Field 'zz' is not defined in dataset 't'.");
    message(&fx->errs[0], DTM_LANG_VI, "Trường 'zz' không có trong tập dữ liệu 't'.");
    RUN_MASKED(fx, "pid", "0012345678*0");
    message(&fx->errs[0], DTM_LANG_EN,
            "Field 'pid' contains '*' but is not masked the way DTM masks it (first 4 and last "
            "2 characters kept, one '*' per hidden character).");

    struct dtm_rec_error e = {.field = "system_code", .code = "system_code", .arg = "other"};
    message(&e, DTM_LANG_EN,
            "Field 'system_code' names system 'other', for which this sender may not send data.");
    e.code = "strange";
    message(&e, DTM_LANG_EN, "Field 'system_code' is invalid (strange).");
}

/* Several threads validate at once (each with its own arena); pattern matching must not share
 * state between them. */
struct worker {
    const struct dtm_dataset *ds;
    int bad;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    struct dtm_arena arena;
    dtm_arena_init(&arena, 4096);
    struct dtm_in_record in = {0};
    const char *pairs[][2] = {{"id", "r"},
                              {"at", "2026-10-05 08:30"},
                              {"code", "AB12"},
                              {"pid", "001234567890"},
                              {"phone", "0912345678"}};
    for (size_t i = 0; i < 5; i++) {
        in.f[i].name = dtm_str_c(pairs[i][0]);
        in.f[i].value = dtm_str_c(pairs[i][1]);
    }
    in.nfields = 5;
    struct dtm_record rec;
    struct dtm_rec_error errs[4];
    for (int i = 0; i < 20000; i++) {
        in.f[2].value = i % 2 ? DTM_STR("AB12") : DTM_STR("ab12");
        size_t n = dtm_validate(w->ds, &in, 0, &rec, &arena, DTM_MODE_RAW, errs, 4);
        if (n != (size_t)(i % 2 ? 0 : 1))
            w->bad++;
        dtm_arena_reset(&arena);
    }
    dtm_arena_free(&arena);
    return NULL;
}

static void test_threads(void **state)
{
    struct fixture *fx = *state;
    pthread_t t[4];
    struct worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){fx->ds, 0};
        assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].bad, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal_record),
        cmocka_unit_test(test_unknown_and_required),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_decimals),
        cmocka_unit_test(test_booleans),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_datetimes),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_enums_and_secret),
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_all_errors_collected),
        cmocka_unit_test(test_masked_mode),
        cmocka_unit_test(test_record_json),
        cmocka_unit_test(test_builtin_transactions),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
