/* Unit tests for src/share/subscription.c and the address check of alert/deliver.c: which
 * addresses count as public (SSRF, F3), callback URL checks (schemes, credentials, private
 * hosts, allow_private), bucket lengths, the query of a subscription (its where list parsed by
 * stats/ and bounded to the bucket) and the delivery id. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert/alert.h"
#include "share/share.h"

static void test_ip_public(void **state)
{
    static const char *const private_ips[] = {
        "127.0.0.1",
        "127.8.9.10",
        "10.0.0.1",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "198.18.0.1",
        "::1",
        "::",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.1.2.3",
        "localhost",
        "not-an-ip",
        "",
    };
    static const char *const public_ips[] = {"8.8.8.8",        "1.1.1.1",     "172.32.0.1",
                                             "198.51.100.7",   "2001:db8::1", "2606:4700::1111",
                                             "::ffff:8.8.8.8", "100.128.0.1"};
    (void)state;
    for (size_t i = 0; i < sizeof(private_ips) / sizeof(*private_ips); i++)
        assert_false(dtm_webhook_ip_public(private_ips[i]));
    for (size_t i = 0; i < sizeof(public_ips) / sizeof(*public_ips); i++)
        assert_true(dtm_webhook_ip_public(public_ips[i]));
}

static void test_url_check(void **state)
{
    char why[256];
    (void)state;
    assert_int_equal(dtm_sub_url_check("https://198.51.100.7/hook?x=1", false, why, sizeof(why)),
                     DTM_OK);
    assert_int_equal(dtm_sub_url_check("http://[2001:db8::1]:8080/h", false, why, sizeof(why)),
                     DTM_OK);
    /* private hosts: refused unless allowed */
    assert_int_equal(dtm_sub_url_check("http://127.0.0.1:9/h", false, why, sizeof(why)),
                     DTM_EINVAL);
    assert_non_null(strstr(why, "url"));
    assert_int_equal(dtm_sub_url_check("http://[::1]/h", false, why, sizeof(why)), DTM_EINVAL);
    assert_int_equal(dtm_sub_url_check("http://localhost/h", false, why, sizeof(why)), DTM_EINVAL);
    assert_int_equal(dtm_sub_url_check("http://127.0.0.1:9/h", true, why, sizeof(why)), DTM_OK);
    assert_int_equal(dtm_sub_url_check("http://localhost/h", true, why, sizeof(why)), DTM_OK);
    /* never: other schemes, credentials, no host, spaces, empty */
    assert_int_equal(dtm_sub_url_check("ftp://198.51.100.7/h", true, why, sizeof(why)), DTM_EINVAL);
    assert_int_equal(dtm_sub_url_check("file:///etc/passwd", true, why, sizeof(why)), DTM_EINVAL);
    assert_int_equal(dtm_sub_url_check("gopher://198.51.100.7/", true, why, sizeof(why)),
                     DTM_EINVAL);
    assert_int_equal(dtm_sub_url_check("http://u:p@198.51.100.7/h", true, why, sizeof(why)),
                     DTM_EINVAL);
    assert_non_null(strstr(why, "password"));
    assert_int_equal(dtm_sub_url_check("http://u@198.51.100.7/h", true, why, sizeof(why)),
                     DTM_EINVAL);
    assert_int_equal(dtm_sub_url_check("198.51.100.7/h", true, why, sizeof(why)), DTM_EINVAL);
    assert_int_equal(dtm_sub_url_check("http://a b/", true, why, sizeof(why)), DTM_EINVAL);
    assert_int_equal(dtm_sub_url_check("http://x/\r\nX-Evil: 1", true, why, sizeof(why)),
                     DTM_EINVAL);
    assert_int_equal(dtm_sub_url_check("", true, why, sizeof(why)), DTM_EINVAL);
}

static void test_interval(void **state)
{
    (void)state;
    assert_int_equal(dtm_sub_interval_us("hour"), INT64_C(3600000000));
    assert_int_equal(dtm_sub_interval_us("day"), INT64_C(86400000000));
    assert_int_equal(dtm_sub_interval_us("week"), 0);
    assert_int_equal(dtm_sub_interval_us(NULL), 0);
}

static void test_query(void **state)
{
    struct dtm_dict *dict = dtm_dict_create();
    const struct dtm_dataset *ds = dtm_dict_get(dict, dtm_str_c("transactions"));
    struct dtm_subscription *sub = calloc(1, sizeof(*sub));
    struct dtm_query *q = calloc(1, sizeof(*q));
    const char *bad = NULL;
    char err[256], id[128];
    (void)state;
    assert_non_null(ds);
    snprintf(sub->id, sizeof(sub->id), "sub_abc");
    snprintf(sub->where, sizeof(sub->where), "[\"status:eq:failed\",\"channel:in:web|api\"]");
    snprintf(sub->group_by, sizeof(sub->group_by), "system_code");
    snprintf(sub->interval, sizeof(sub->interval), "hour");
    assert_int_equal(dtm_sub_query(ds, sub, 3600000000, 7200000000, q, &bad, err, sizeof(err)),
                     DTM_OK);
    assert_int_equal(q->nwhere, 2);
    assert_int_equal(q->nmetrics, 1); /* count by default */
    assert_int_equal(q->ngroup, 1);
    assert_int_equal(q->from, 3600000000);
    assert_int_equal(q->to, 7200000000);
    snprintf(sub->where, sizeof(sub->where), "[\"nofield:eq:1\"]");
    assert_int_equal(dtm_sub_query(ds, sub, 0, 1, q, &bad, err, sizeof(err)), DTM_EINVAL);
    assert_string_equal(bad, "where");
    snprintf(sub->where, sizeof(sub->where), "{\"status\":\"failed\"}");
    assert_int_equal(dtm_sub_query(ds, sub, 0, 1, q, &bad, err, sizeof(err)), DTM_EINVAL);
    assert_string_equal(bad, "where");
    dtm_sub_delivery_id(sub, 1763607600000000, id, sizeof(id));
    assert_string_equal(id, "sub_abc.1763607600");
    free(q);
    free(sub);
    dtm_dict_destroy(dict);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ip_public),
        cmocka_unit_test(test_url_check),
        cmocka_unit_test(test_interval),
        cmocka_unit_test(test_query),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
