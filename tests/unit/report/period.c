/* Unit tests for report/period.c: every label shape, its range in UTC+07:00, the periods before
 * and after (across year ends and ISO week 53), and the labels refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/core.h"
#include "report/period.h"

static int64_t t(const char *rfc3339)
{
    int64_t v;
    assert_int_equal(dtm_time_parse(dtm_str_c(rfc3339), &v), DTM_OK);
    return v;
}

static void expect(const char *label, enum dtm_period_kind kind, const char *from, const char *to)
{
    struct dtm_period p;
    assert_int_equal(dtm_period_parse(label, &p), DTM_OK);
    assert_int_equal(p.kind, kind);
    assert_string_equal(p.label, label);
    assert_int_equal(p.from, t(from));
    assert_int_equal(p.to, t(to));
}

static void test_shapes(void **state)
{
    (void)state;
    expect("2026-10-05", DTM_P_DAY, "2026-10-05T00:00:00+07:00", "2026-10-06T00:00:00+07:00");
    expect("2026-W42", DTM_P_WEEK, "2026-10-12T00:00:00+07:00", "2026-10-19T00:00:00+07:00");
    expect("2020-W53", DTM_P_WEEK, "2020-12-28T00:00:00+07:00", "2021-01-04T00:00:00+07:00");
    expect("2026-W53", DTM_P_WEEK, "2026-12-28T00:00:00+07:00", "2027-01-04T00:00:00+07:00");
    expect("2025-W01", DTM_P_WEEK, "2024-12-30T00:00:00+07:00", "2025-01-06T00:00:00+07:00");
    expect("2026-10", DTM_P_MONTH, "2026-10-01T00:00:00+07:00", "2026-11-01T00:00:00+07:00");
    expect("2024-02", DTM_P_MONTH, "2024-02-01T00:00:00+07:00", "2024-03-01T00:00:00+07:00");
    expect("2026-Q3", DTM_P_QUARTER, "2026-07-01T00:00:00+07:00", "2026-10-01T00:00:00+07:00");
    expect("2026-Q4", DTM_P_QUARTER, "2026-10-01T00:00:00+07:00", "2027-01-01T00:00:00+07:00");
    expect("2026", DTM_P_YEAR, "2026-01-01T00:00:00+07:00", "2027-01-01T00:00:00+07:00");
}

static void test_refused(void **state)
{
    (void)state;
    struct dtm_period p;
    const char *bad[] = {"",        "26",          "2026-13",  "2026-00",    "2026-Q5",
                         "2026-Q0", "2025-W53",    "2026-W00", "2026-02-30", "2026-1",
                         "2026/10", "2026-10-05x", "1969",     "abcd",       "2026-W4a"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (dtm_period_parse(bad[i], &p) != DTM_EINVAL)
            fail_msg("accepted: %s", bad[i]);
    assert_int_equal(dtm_period_parse(NULL, &p), DTM_EINVAL);
}

static void test_neighbours_and_at(void **state)
{
    (void)state;
    struct dtm_period p, q;
    assert_int_equal(dtm_period_parse("2021-W01", &p), DTM_OK);
    dtm_period_prev(&p, &q);
    assert_string_equal(q.label, "2020-W53");
    dtm_period_next(&q, &p);
    assert_string_equal(p.label, "2021-W01");
    assert_int_equal(dtm_period_parse("2026-Q1", &p), DTM_OK);
    dtm_period_prev(&p, &q);
    assert_string_equal(q.label, "2025-Q4");
    assert_int_equal(dtm_period_parse("2026-01-01", &p), DTM_OK);
    dtm_period_prev(&p, &q);
    assert_string_equal(q.label, "2025-12-31");
    /* 17:00 UTC is already the next day in UTC+07:00 */
    dtm_period_at(DTM_P_DAY, t("2026-10-05T17:00:00Z"), &p);
    assert_string_equal(p.label, "2026-10-06");
    dtm_period_at(DTM_P_MONTH, t("2026-09-30T17:00:00Z"), &p);
    assert_string_equal(p.label, "2026-10");
    enum dtm_period_kind k;
    assert_int_equal(dtm_period_kind_parse("quarter", &k), DTM_OK);
    assert_int_equal(k, DTM_P_QUARTER);
    assert_string_equal(dtm_period_kind_name(k), "quarter");
    assert_int_equal(dtm_period_kind_parse("fortnight", &k), DTM_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_neighbours_and_at),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
