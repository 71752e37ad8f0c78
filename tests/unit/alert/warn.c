/* Unit tests of src/alert/warn.c, the early warning (T4.1): the sliding window's arithmetic
 * (counting, forgetting slot by slot, a jump past the window, a clock going back), the EWMA
 * baseline and its spike threshold (first bucket, convergence, deviation, floor, warm-up),
 * addresses and their networks (/24, /48, other prefixes, mapped IPv4), the [warning]
 * settings' defaults and refusals, and the module's hooks run without an alert engine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "alert/warn.h"

#define S 1000000LL

static void test_window(void **state)
{
    struct dtm_warn_window w;
    int64_t width = 80 * S, t0 = 1000 * width; /* slots of 10 s */
    (void)state;
    memset(&w, 0, sizeof(w));
    assert_int_equal(dtm_warn_window_count(&w, width, t0), 0);
    assert_int_equal(dtm_warn_window_add(&w, width, t0, 1), 1);
    assert_int_equal(dtm_warn_window_add(&w, width, t0 + 1 * S, 1), 2);
    assert_int_equal(dtm_warn_window_add(&w, width, t0 + 15 * S, 3), 5);
    /* the first two are forgotten once their slot leaves the window (80 s later) */
    assert_int_equal(dtm_warn_window_count(&w, width, t0 + 79 * S), 5);
    assert_int_equal(dtm_warn_window_count(&w, width, t0 + 80 * S), 3);
    assert_int_equal(dtm_warn_window_count(&w, width, t0 + 89 * S), 3);
    assert_int_equal(dtm_warn_window_count(&w, width, t0 + 90 * S), 0);
    /* a jump far past the window empties it */
    assert_int_equal(dtm_warn_window_add(&w, width, t0 + 100 * S, 7), 7);
    assert_int_equal(dtm_warn_window_count(&w, width, t0 + 10000 * S), 0);
    /* a clock that goes back counts in the newest slot */
    assert_int_equal(dtm_warn_window_add(&w, width, t0 + 10000 * S, 1), 1);
    assert_int_equal(dtm_warn_window_add(&w, width, t0 + 9000 * S, 1), 2);
    /* a window narrower than 8 µs still works (slots of 1 µs) */
    memset(&w, 0, sizeof(w));
    assert_int_equal(dtm_warn_window_add(&w, 3, 100, 1), 1);
    assert_int_equal(dtm_warn_window_count(&w, 3, 108), 0);
    /* saturation, not overflow */
    memset(&w, 0, sizeof(w));
    dtm_warn_window_add(&w, width, t0, UINT32_MAX - 1);
    dtm_warn_window_add(&w, width, t0, 5);
    assert_int_equal(w.n[w.slot % DTM_WARN_SLOTS], UINT32_MAX);
}

static void test_baseline(void **state)
{
    struct dtm_warn_baseline b;
    (void)state;
    memset(&b, 0, sizeof(b));
    /* warming up: never a spike */
    assert_true(isinf(dtm_warn_threshold(&b, 3, 10, 1)));
    dtm_warn_baseline_fold(&b, 100, 0.5); /* the first bucket sets the mean */
    assert_true(b.mean == 100 && b.dev == 0 && b.buckets == 1);
    assert_true(dtm_warn_threshold(&b, 3, 10, 1) == 300);
    assert_true(isinf(dtm_warn_threshold(&b, 3, 10, 2)));
    dtm_warn_baseline_fold(&b, 200, 0.5); /* mean 150, deviation 0.5 × |200 − 100| = 50 */
    assert_true(fabs(b.mean - 150) < 1e-9 && fabs(b.dev - 50) < 1e-9);
    assert_true(fabs(dtm_warn_threshold(&b, 3, 10, 2) - 3 * (150 + 100)) < 1e-9);
    /* the floor holds a quiet baseline up */
    memset(&b, 0, sizeof(b));
    for (int i = 0; i < 20; i++)
        dtm_warn_baseline_fold(&b, 2, 0.2);
    assert_true(fabs(b.mean - 2) < 1e-9 && b.dev < 1e-9);
    assert_true(dtm_warn_threshold(&b, 3, 50, 10) == 50);
    /* converges to a new level; zeros bring it down */
    for (int i = 0; i < 200; i++)
        dtm_warn_baseline_fold(&b, 1000, 0.2);
    assert_true(fabs(b.mean - 1000) < 1e-6);
    for (int i = 0; i < 200; i++)
        dtm_warn_baseline_fold(&b, 0, 0.2);
    assert_true(b.mean < 1e-6);
    /* alpha out of range is clamped, not a division or a NaN */
    dtm_warn_baseline_fold(&b, 10, 0);
    assert_false(isnan(b.mean));
    dtm_warn_baseline_fold(&b, 10, 7);
    assert_true(fabs(b.mean - 10) < 1e-9);
}

static void net_of(const char *ip, int p4, int p6, char *out, size_t outsz)
{
    struct dtm_warn_addr a, n;
    assert_int_equal(dtm_warn_addr_parse(ip, &a), DTM_OK);
    dtm_warn_addr_network(&a, p4, p6, &n);
    dtm_warn_addr_text(&n, out, outsz);
}

static void test_addresses(void **state)
{
    struct dtm_warn_addr a, b;
    struct sockaddr_in s4;
    struct sockaddr_in6 s6;
    char t[64];
    (void)state;
    assert_int_equal(dtm_warn_addr_parse("203.0.113.77", &a), DTM_OK);
    assert_true(a.v4);
    dtm_warn_addr_text(&a, t, sizeof(t));
    assert_string_equal(t, "203.0.113.77");
    assert_int_equal(dtm_warn_addr_parse("::ffff:203.0.113.77", &b), DTM_OK);
    assert_true(b.v4 && memcmp(a.b, b.b, 16) == 0);
    assert_int_equal(dtm_warn_addr_parse("nonsense", &a), DTM_EINVAL);
    assert_int_equal(dtm_warn_addr_parse("", &a), DTM_EINVAL);
    assert_int_equal(dtm_warn_addr_parse(NULL, &a), DTM_EINVAL);
    net_of("203.0.113.77", 24, 48, t, sizeof(t));
    assert_string_equal(t, "203.0.113.0");
    net_of("203.0.113.77", 16, 48, t, sizeof(t));
    assert_string_equal(t, "203.0.0.0");
    net_of("203.0.113.77", 20, 48, t, sizeof(t));
    assert_string_equal(t, "203.0.112.0");
    net_of("203.0.113.77", 32, 48, t, sizeof(t));
    assert_string_equal(t, "203.0.113.77");
    net_of("2001:db8:abcd:1234::5", 24, 48, t, sizeof(t));
    assert_string_equal(t, "2001:db8:abcd::");
    net_of("2001:db8:abcd:1234::5", 24, 56, t, sizeof(t));
    assert_string_equal(t, "2001:db8:abcd:1200::");
    /* 127.0.0.1 and 127.0.1.2 are two /24 networks */
    net_of("127.0.0.1", 24, 48, t, sizeof(t));
    assert_string_equal(t, "127.0.0.0");
    net_of("127.0.1.2", 24, 48, t, sizeof(t));
    assert_string_equal(t, "127.0.1.0");
    /* from sockets */
    memset(&s4, 0, sizeof(s4));
    s4.sin_family = AF_INET;
    inet_pton(AF_INET, "10.1.2.3", &s4.sin_addr);
    assert_int_equal(dtm_warn_addr_from_sockaddr((struct sockaddr *)&s4, &a), DTM_OK);
    dtm_warn_addr_text(&a, t, sizeof(t));
    assert_string_equal(t, "10.1.2.3");
    memset(&s6, 0, sizeof(s6));
    s6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "::ffff:10.1.2.3", &s6.sin6_addr);
    assert_int_equal(dtm_warn_addr_from_sockaddr((struct sockaddr *)&s6, &b), DTM_OK);
    assert_true(b.v4 && memcmp(a.b, b.b, 16) == 0);
    inet_pton(AF_INET6, "2001:db8::1", &s6.sin6_addr);
    assert_int_equal(dtm_warn_addr_from_sockaddr((struct sockaddr *)&s6, &b), DTM_OK);
    assert_false(b.v4);
    assert_int_equal(dtm_warn_addr_from_sockaddr(NULL, &b), DTM_EINVAL);
}

static void test_conf(void **state)
{
    struct dtm_conf c;
    char err[256];
    (void)state;
    dtm_conf_defaults(&c, "/d");
    assert_true(c.warn_enabled && c.warn_admin_new_address && c.warn_silent);
    assert_int_equal(c.warn_account_failures, 5);
    assert_int_equal(c.warn_network_prefix_v4, 24);
    assert_int_equal(c.warn_network_prefix_v6, 48);
    assert_int_equal(c.warn_spike_bucket, 60);
    assert_true(c.warn_spike_alpha == 0.1);
    assert_int_equal(dtm_conf_load_string(&c,
                                          "[warning]\nip_failures = 3\nspike_bucket = 2\n"
                                          "spike_alpha = 0.5\nnetwork_learning = 0\n",
                                          "t.conf", err, sizeof(err)),
                     DTM_OK);
    assert_int_equal(c.warn_ip_failures, 3);
    assert_int_equal(c.warn_spike_bucket, 2);
    assert_true(c.warn_spike_alpha == 0.5);
    assert_int_equal(
        dtm_conf_load_string(&c, "[warning]\nnetwork_prefix_v4 = 33\n", "t.conf", err, sizeof(err)),
        DTM_EINVAL);
    assert_non_null(strstr(err, "warning.network_prefix_v4"));
    assert_int_equal(
        dtm_conf_load_string(&c, "[warning]\nspike_alpha = 2\n", "t.conf", err, sizeof(err)),
        DTM_EINVAL);
    assert_int_equal(
        dtm_conf_load_string(&c, "[warning]\nno_such = 1\n", "t.conf", err, sizeof(err)),
        DTM_EINVAL);
}

/* The hooks with no alert engine: they count and never fail, whatever they are given. */
static void test_hooks_without_engine(void **state)
{
    struct dtm_conf c;
    const struct dtm_conf *cp = &c;
    struct dtm_warn *w = NULL;
    struct sockaddr_in s4;
    char err[256];
    (void)state;
    dtm_conf_defaults(&c, "/nonexistent/dtm-warn-unit"); /* no store: nothing to learn from */
    c.warn_spike_bucket = 1;
    assert_int_equal(dtm_warn_start(&cp, NULL, &w, err, sizeof(err)), DTM_OK);
    memset(&s4, 0, sizeof(s4));
    s4.sin_family = AF_INET;
    for (int i = 0; i < 5000; i++) { /* many addresses: the tables evict, never grow */
        struct dtm_warn_request rq = {401, (struct sockaddr *)&s4, NULL, true};
        char code[32];
        s4.sin_addr.s_addr = htonl(0x0a000000u + (uint32_t)i);
        dtm_warn_request(w, &rq);
        snprintf(code, sizeof(code), "SYS%d", i % 700);
        rq = (struct dtm_warn_request){i % 7 ? 200 : 500, (struct sockaddr *)&s4, code, false};
        dtm_warn_request(w, &rq);
        dtm_warn_login(w, "alice", i % 2 == 0, "admin", i % 3 ? "10.0.0.1" : "bad", i % 5 == 0);
    }
    dtm_warn_request(w, NULL);
    dtm_warn_request(NULL, NULL);
    dtm_warn_login(w, NULL, true, NULL, NULL, false);
    dtm_warn_system_status(w, "SYS1", "online", "offline", 0);
    dtm_warn_system_status(w, "SYS1", "offline", "online", 1);
    dtm_warn_system_status(w, NULL, "offline", "online", 1);
    dtm_warn_free(w);
    dtm_warn_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window),
        cmocka_unit_test(test_baseline),
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_conf),
        cmocka_unit_test(test_hooks_without_engine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
