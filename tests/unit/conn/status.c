/* Unit tests of the status model of src/conn/status.c: never / offline / degraded / online from
 * the last sighting, the failed share of the last hour and the probe (edges included); uptime
 * from intervals (window start, first sighting, open interval, degraded counting as up); and
 * the [systems] settings' defaults and the decimal setting's refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "conn/conn.h"

#define S 1000000LL

static void test_derive(void **state)
{
    struct dtm_conf c;
    struct dtm_probe p;
    int64_t now = 1800000000 * S;
    (void)state;
    dtm_conf_defaults(&c, "/d");
    assert_int_equal(c.online_within, 300);
    assert_true(c.degraded_error_rate == 0.2);
    memset(&p, 0, sizeof(p));
    assert_int_equal(dtm_conn_derive(&c, now, 0, -1, NULL), DTM_CONN_NEVER);
    assert_int_equal(dtm_conn_derive(&c, now, 0, 1, &p), DTM_CONN_NEVER);
    assert_int_equal(dtm_conn_derive(&c, now, now - 300 * S, -1, NULL), DTM_CONN_ONLINE);
    assert_int_equal(dtm_conn_derive(&c, now, now - 300 * S - 1, -1, NULL), DTM_CONN_OFFLINE);
    /* the failed share: at the threshold degraded, below online, none (no traffic) online */
    assert_int_equal(dtm_conn_derive(&c, now, now, 0.2, NULL), DTM_CONN_DEGRADED);
    assert_int_equal(dtm_conn_derive(&c, now, now, 0.19, NULL), DTM_CONN_ONLINE);
    assert_int_equal(dtm_conn_derive(&c, now, now, 0, NULL), DTM_CONN_ONLINE);
    assert_int_equal(dtm_conn_derive(&c, now, now - 1, 1, NULL), DTM_CONN_DEGRADED);
    assert_int_equal(dtm_conn_derive(&c, now, now - 301 * S, 1, NULL), DTM_CONN_OFFLINE);
    /* the probe: not run yet passes, failing degrades, passing does not */
    assert_int_equal(dtm_conn_derive(&c, now, now, -1, &p), DTM_CONN_ONLINE);
    p.at = now;
    assert_int_equal(dtm_conn_derive(&c, now, now, -1, &p), DTM_CONN_DEGRADED);
    p.ok = true;
    assert_int_equal(dtm_conn_derive(&c, now, now, -1, &p), DTM_CONN_ONLINE);
    /* a threshold of 0: any failure degrades, none does not */
    c.degraded_error_rate = 0;
    assert_int_equal(dtm_conn_derive(&c, now, now, 0.001, NULL), DTM_CONN_DEGRADED);
    assert_int_equal(dtm_conn_derive(&c, now, now, 0, NULL), DTM_CONN_ONLINE);
    assert_string_equal(dtm_conn_status_name(DTM_CONN_DEGRADED), "degraded");
    assert_string_equal(dtm_conn_status_name(DTM_CONN_NEVER), "never");
}

static struct dtm_status_interval iv(const char *status, int64_t since, int64_t until)
{
    struct dtm_status_interval v;
    memset(&v, 0, sizeof(v));
    snprintf(v.system_code, sizeof(v.system_code), "S");
    snprintf(v.status, sizeof(v.status), "%s", status);
    v.since = since;
    v.until = until;
    return v;
}

static void test_uptime(void **state)
{
    int64_t now = 1000 * S, from = now - 100 * S;
    struct dtm_status_interval a[4];
    (void)state;
    assert_true(dtm_conn_uptime(NULL, 0, from, now) < 0);
    /* first seen 40 s ago: online 10 s, offline 20 s, degraded 10 s (current) → 20/40 */
    a[0] = iv("online", now - 40 * S, now - 30 * S);
    a[1] = iv("offline", now - 30 * S, now - 10 * S);
    a[2] = iv("degraded", now - 10 * S, 0);
    assert_true(dtm_conn_uptime(a, 3, from, now) == 0.5);
    /* an interval begun before the window counts from the window's start: 50 of 100 s */
    a[0] = iv("online", now - 500 * S, now - 50 * S);
    a[1] = iv("offline", now - 50 * S, 0);
    assert_true(dtm_conn_uptime(a, 2, from, now) == 0.5);
    /* always up; seen this very instant */
    a[0] = iv("online", now - 5 * S, 0);
    assert_true(dtm_conn_uptime(a, 1, from, now) == 1.0);
    a[0] = iv("online", now, 0);
    assert_true(dtm_conn_uptime(a, 1, from, now) == 1.0);
    a[0] = iv("offline", now - 5 * S, 0);
    assert_true(dtm_conn_uptime(a, 1, from, now) == 0.0);
}

static void test_decimal_setting(void **state)
{
    struct dtm_conf c;
    char err[256];
    (void)state;
    dtm_conf_defaults(&c, "/d");
    assert_int_equal(
        dtm_conf_load_string(&c, "[systems]\ndegraded_error_rate = 0.35\n", "t", err, sizeof(err)),
        DTM_OK);
    assert_true(c.degraded_error_rate == 0.35);
    assert_int_equal(
        dtm_conf_load_string(&c, "[systems]\ndegraded_error_rate = 1.5\n", "t", err, sizeof(err)),
        DTM_EINVAL);
    assert_non_null(strstr(err, "degraded_error_rate"));
    assert_int_equal(
        dtm_conf_load_string(&c, "[systems]\ndegraded_error_rate = 0.2x\n", "t", err, sizeof(err)),
        DTM_EINVAL);
    assert_int_equal(
        dtm_conf_load_string(&c, "[systems]\ndegraded_error_rate = nan\n", "t", err, sizeof(err)),
        DTM_EINVAL);
    assert_int_equal(
        dtm_conf_load_string(&c, "[systems]\nmax_live_streams = 3\n", "t", err, sizeof(err)),
        DTM_OK);
    assert_int_equal(c.max_live_streams, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_derive),
        cmocka_unit_test(test_uptime),
        cmocka_unit_test(test_decimal_setting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
