/* Unit tests for the time buckets of src/stats/stats.c (UTC+07:00): the start and label of every
 * interval around midnight, ISO weeks at year ends (week 53, week 1 starting in December),
 * quarters and leap days; and the query parser's refusals naming their parameter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "stats/stats.h"

static int64_t t(const char *rfc3339)
{
    int64_t v;
    assert_int_equal(dtm_time_parse(dtm_str_c(rfc3339), &v), DTM_OK);
    return v;
}

static void expect(enum dtm_interval iv, const char *when, const char *label, const char *start)
{
    char got[40];
    int64_t s = dtm_bucket_start(iv, t(when));
    dtm_bucket_label(iv, s, got, sizeof(got));
    assert_string_equal(got, label);
    assert_int_equal(s, t(start));
    assert_true(s <= t(when));
}

static void test_midnight_in_utc7(void **state)
{
    (void)state;
    /* 17:00 UTC is already the next day here */
    expect(DTM_I_DAY, "2026-10-05T16:59:59Z", "2026-10-05", "2026-10-05T00:00:00+07:00");
    expect(DTM_I_DAY, "2026-10-05T17:00:00Z", "2026-10-06", "2026-10-06T00:00:00+07:00");
    expect(DTM_I_HOUR, "2026-10-05T17:30:00Z", "2026-10-06T00:00+07:00",
           "2026-10-06T00:00:00+07:00");
    expect(DTM_I_HOUR, "2026-10-05T23:59:59.999+07:00", "2026-10-05T23:00+07:00",
           "2026-10-05T23:00:00+07:00");
}

static void test_iso_weeks(void **state)
{
    (void)state;
    expect(DTM_I_WEEK, "2020-12-31T12:00:00+07:00", "2020-W53", "2020-12-28T00:00:00+07:00");
    expect(DTM_I_WEEK, "2021-01-03T23:00:00+07:00", "2020-W53", "2020-12-28T00:00:00+07:00");
    expect(DTM_I_WEEK, "2021-01-04T00:00:00+07:00", "2021-W01", "2021-01-04T00:00:00+07:00");
    expect(DTM_I_WEEK, "2024-12-30T08:00:00+07:00", "2025-W01", "2024-12-30T00:00:00+07:00");
    expect(DTM_I_WEEK, "2026-10-04T23:59:59+07:00", "2026-W40", "2026-09-28T00:00:00+07:00");
    expect(DTM_I_WEEK, "2026-10-05T00:00:00+07:00", "2026-W41", "2026-10-05T00:00:00+07:00");
}

static void test_months_quarters_years(void **state)
{
    (void)state;
    expect(DTM_I_MONTH, "2024-02-29T23:00:00+07:00", "2024-02", "2024-02-01T00:00:00+07:00");
    expect(DTM_I_MONTH, "2026-09-30T17:00:00Z", "2026-10", "2026-10-01T00:00:00+07:00");
    expect(DTM_I_QUARTER, "2026-09-30T23:30:00+07:00", "2026-Q3", "2026-07-01T00:00:00+07:00");
    expect(DTM_I_QUARTER, "2026-10-01T00:30:00+07:00", "2026-Q4", "2026-10-01T00:00:00+07:00");
    expect(DTM_I_QUARTER, "2026-12-31T16:59:59Z", "2026-Q4", "2026-10-01T00:00:00+07:00");
    expect(DTM_I_YEAR, "2026-12-31T17:00:00Z", "2027", "2027-01-01T00:00:00+07:00");
}

static void test_parse_refusals_name_the_parameter(void **state)
{
    struct dtm_dict *dict = dtm_dict_create();
    const struct dtm_dataset *ds = dtm_dict_get(dict, DTM_STR("transactions"));
    static struct dtm_query q;
    const char *bad = NULL, *w[] = {"status:eq:failed", "channel:in:web|api"};
    char err[512];
    (void)state;
    assert_non_null(ds);
    assert_int_equal(dtm_query_parse(ds, "count,p95:response_ms,rate:status=failed",
                                     "system_code,status", "week", "2026-10-01", "2026-10-31", w, 2,
                                     &q, &bad, err, sizeof(err)),
                     DTM_OK);
    assert_int_equal(q.nmetrics, 3);
    assert_int_equal(q.ngroup, 2);
    assert_int_equal(q.interval, DTM_I_WEEK);
    assert_int_equal(q.nwhere, 2);
    assert_int_equal(q.where[1].nvalues, 2);
    assert_string_equal(q.where[1].values[1], "api");
    assert_int_equal(q.to - q.from, 31LL * 86400 * 1000000);
    const struct {
        const char *metrics, *group, *interval, *from, *to, *where, *param;
    } bad_cases[] = {
        {"sum:status", NULL, NULL, NULL, NULL, NULL, "metrics"},
        {"", NULL, NULL, NULL, NULL, NULL, "metrics"},
        {NULL, "txn_id", NULL, NULL, NULL, NULL, "group_by"},
        {NULL, "status,status", NULL, NULL, NULL, NULL, "group_by"},
        {NULL, NULL, "fortnight", NULL, NULL, NULL, "interval"},
        {NULL, NULL, NULL, "soon", NULL, NULL, "from"},
        {NULL, NULL, NULL, "2026-10-02", "2026-10-01", NULL, "to"},
        {NULL, NULL, NULL, NULL, NULL, "status:ne:x", "where"},
        {NULL, NULL, NULL, NULL, NULL, "citizen_id:eq:1", "where"},
    };
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const char *wh[1] = {bad_cases[i].where};
        bad = NULL;
        assert_int_equal(dtm_query_parse(ds, bad_cases[i].metrics, bad_cases[i].group,
                                         bad_cases[i].interval, bad_cases[i].from, bad_cases[i].to,
                                         wh, bad_cases[i].where ? 1 : 0, &q, &bad, err,
                                         sizeof(err)),
                         DTM_EINVAL);
        assert_non_null(bad);
        assert_string_equal(bad, bad_cases[i].param);
        assert_true(strlen(err) > 10);
    }
    dtm_dict_destroy(dict);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_midnight_in_utc7),
        cmocka_unit_test(test_iso_weeks),
        cmocka_unit_test(test_months_quarters_years),
        cmocka_unit_test(test_parse_refusals_name_the_parameter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
