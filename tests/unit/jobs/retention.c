/* Unit tests for src/jobs/retention.c: the cut-off is the start of a whole day in UTC+07:00,
 * `days` days before the day of now; and the configuration refuses keeping connection logs less
 * than a year (D6). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "jobs/jobs.h"

static int64_t t(const char *rfc3339)
{
    int64_t v;
    assert_int_equal(dtm_time_parse(dtm_str_c(rfc3339), &v), DTM_OK);
    return v;
}

static void test_cutoff(void **state)
{
    (void)state;
    assert_int_equal(dtm_retention_cutoff(t("2026-11-26T08:21:00+07:00"), 400),
                     t("2025-10-22T00:00:00+07:00"));
    /* 23:30 UTC on the 25th is already the 26th here */
    assert_int_equal(dtm_retention_cutoff(t("2026-11-25T23:30:00Z"), 1),
                     t("2026-11-25T00:00:00+07:00"));
    assert_int_equal(dtm_retention_cutoff(t("2026-11-26T00:00:00+07:00"), 0),
                     t("2026-11-26T00:00:00+07:00"));
}

static void test_conf_refuses_less_than_a_year(void **state)
{
    struct dtm_conf c;
    char err[512];
    (void)state;
    dtm_conf_defaults(&c, "/d");
    assert_int_equal(c.retention_connection_logs_days, 400);
    assert_true(c.connlog_enabled);
    assert_int_equal(dtm_conf_load_string(&c, "[retention]\nconnection_logs_days = 365\n", "x.conf",
                                          err, sizeof(err)),
                     DTM_EINVAL);
    assert_non_null(strstr(err, "connection_logs_days"));
    assert_non_null(strstr(err, "366"));
    assert_int_equal(dtm_conf_load_string(&c,
                                          "[retention]\nconnection_logs_days = 366\n"
                                          "[connlog]\nenabled = false\n",
                                          "x.conf", err, sizeof(err)),
                     DTM_OK);
    assert_int_equal(c.retention_connection_logs_days, 366);
    assert_false(c.connlog_enabled);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cutoff),
        cmocka_unit_test(test_conf_refuses_less_than_a_year),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
