/* Unit tests of src/gate/ratelimit.c (T2.2): the token-bucket arithmetic (GCRA form), the
 * RateLimit-* numbers it reports, the table of buckets (separate keys and kinds, eviction of
 * idle buckets within the fixed memory), tiers from the configuration, and many threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "gate/gate.h"

#define MS 1000000LL /* ns */
#define S 1000000000LL

static void test_burst_then_refused(void **state)
{
    struct dtm_rl_limit lim = {5, 5}; /* bronze of the e2e test: 5/s, bucket of 5 */
    struct dtm_rl_answer a;
    int64_t tat = 0, now = 1000 * S;
    (void)state;
    for (int i = 0; i < 5; i++) {
        assert_true(dtm_rl_bucket_take(&tat, &lim, now, 1, &a));
        assert_true(a.allowed);
        assert_int_equal(a.limit, 5);
        assert_int_equal(a.remaining, 4 - i);
        assert_int_equal(a.retry_after_s, 0);
    }
    assert_int_equal(a.reset_s, 1); /* 5 tokens at 5/s: full again in 1 s */
    int64_t before = tat;
    assert_false(dtm_rl_bucket_take(&tat, &lim, now, 1, &a));
    assert_false(a.allowed);
    assert_int_equal(a.remaining, 0);
    assert_int_equal(a.retry_after_s, 1); /* 200 ms, rounded up to whole seconds */
    assert_int_equal(tat, before);        /* a refused request pays nothing */
}

static void test_refill(void **state)
{
    struct dtm_rl_limit lim = {10, 2};
    struct dtm_rl_answer a;
    int64_t tat = 0, now = 5 * S;
    (void)state;
    assert_true(dtm_rl_bucket_take(&tat, &lim, now, 1, &a));
    assert_true(dtm_rl_bucket_take(&tat, &lim, now, 1, &a));
    assert_false(dtm_rl_bucket_take(&tat, &lim, now, 1, &a));
    /* one token comes back every 100 ms */
    assert_false(dtm_rl_bucket_take(&tat, &lim, now + 99 * MS, 1, &a));
    assert_true(dtm_rl_bucket_take(&tat, &lim, now + 100 * MS, 1, &a));
    assert_int_equal(a.remaining, 0);
    assert_false(dtm_rl_bucket_take(&tat, &lim, now + 150 * MS, 1, &a));
    /* long idle: full again, never more than the burst */
    assert_true(dtm_rl_bucket_take(&tat, &lim, now + 60 * S, 1, &a));
    assert_int_equal(a.remaining, 1);
    /* a steady caller at exactly the rate is never refused */
    tat = 0;
    for (int i = 0; i < 1000; i++)
        assert_true(dtm_rl_bucket_take(&tat, &lim, now + i * 100 * MS, 1, &a));
}

static void test_peek_and_retry_after(void **state)
{
    struct dtm_rl_limit lim = {1, 3};
    struct dtm_rl_answer a;
    int64_t tat = 0, now = 7 * S;
    (void)state;
    /* looking does not pay */
    assert_true(dtm_rl_bucket_take(&tat, &lim, now, 0, &a));
    assert_int_equal(a.remaining, 3);
    assert_int_equal(tat, 0);
    for (int i = 0; i < 3; i++)
        assert_true(dtm_rl_bucket_take(&tat, &lim, now, 1, &a));
    assert_int_equal(a.reset_s, 3);
    assert_false(dtm_rl_bucket_take(&tat, &lim, now, 0, &a));
    assert_false(dtm_rl_bucket_take(&tat, &lim, now, 1, &a));
    assert_int_equal(a.retry_after_s, 1);
    /* waiting Retry-After is enough */
    assert_true(dtm_rl_bucket_take(&tat, &lim, now + a.retry_after_s * S, 1, &a));
    /* an odd rate: 3/s is 333 333 333 ns per request */
    lim = (struct dtm_rl_limit){3, 1};
    tat = 0;
    assert_true(dtm_rl_bucket_take(&tat, &lim, now, 1, &a));
    assert_false(dtm_rl_bucket_take(&tat, &lim, now + 333 * MS, 1, &a));
    assert_true(dtm_rl_bucket_take(&tat, &lim, now + 334 * MS, 1, &a));
}

static void test_table_keys_and_kinds(void **state)
{
    struct dtm_ratelimit *rl = dtm_ratelimit_create();
    struct dtm_rl_limit lim = {1, 2};
    struct dtm_rl_answer a;
    int64_t now = 100 * S;
    unsigned char ip[4] = {10, 0, 0, 1};
    (void)state;
    assert_non_null(rl);
    assert_true(dtm_ratelimit_take(rl, DTM_RL_SYSTEM, "SYS1", 4, &lim, now, 1, &a));
    assert_true(dtm_ratelimit_take(rl, DTM_RL_SYSTEM, "SYS1", 4, &lim, now, 1, &a));
    assert_false(dtm_ratelimit_take(rl, DTM_RL_SYSTEM, "SYS1", 4, &lim, now, 1, &a));
    /* another system, and the same bytes as another kind, have buckets of their own */
    assert_true(dtm_ratelimit_take(rl, DTM_RL_SYSTEM, "SYS2", 4, &lim, now, 1, &a));
    assert_true(dtm_ratelimit_take(rl, DTM_RL_IP, "SYS1", 4, &lim, now, 1, &a));
    /* a look at a bucket nobody paid into: full, and it is not created */
    assert_true(dtm_ratelimit_take(rl, DTM_RL_AUTH_FAIL, ip, 4, &lim, now, 0, &a));
    assert_int_equal(a.remaining, 2);
    assert_true(dtm_ratelimit_take(rl, DTM_RL_AUTH_FAIL, ip, 4, &lim, now, 1, &a));
    assert_true(dtm_ratelimit_take(rl, DTM_RL_AUTH_FAIL, ip, 4, &lim, now, 1, &a));
    assert_false(dtm_ratelimit_take(rl, DTM_RL_AUTH_FAIL, ip, 4, &lim, now, 0, &a));
    /* a new tier: SYS1 owes 2 requests at 1/s (2 s); at 1000/s with a bucket of 100 it has 98 */
    lim = (struct dtm_rl_limit){1000, 100};
    assert_true(dtm_ratelimit_take(rl, DTM_RL_SYSTEM, "SYS1", 4, &lim, now, 1, &a));
    assert_int_equal(a.limit, 100);
    assert_int_equal(a.remaining, 97);
    dtm_ratelimit_destroy(rl);
}

static void test_table_bounded(void **state)
{
    /* far more keys than buckets: memory stays fixed, idle buckets are reused, and a bucket in
     * debt survives a flood of keys that each came once and left theirs idle */
    struct dtm_ratelimit *rl = dtm_ratelimit_create();
    struct dtm_rl_limit busy = {1, 100}, flood = {1000000, 1};
    struct dtm_rl_answer a;
    int64_t now = 100 * S;
    char key[32];
    (void)state;
    for (int i = 0; i < 100; i++)
        assert_true(dtm_ratelimit_take(rl, DTM_RL_SYSTEM, "BUSY", 4, &busy, now, 1, &a));
    assert_false(dtm_ratelimit_take(rl, DTM_RL_SYSTEM, "BUSY", 4, &busy, now, 1, &a));
    for (int i = 0; i < 300000; i++) {
        int n = snprintf(key, sizeof(key), "k%d", i);
        now += 10 * 1000; /* 10 µs apart: each earlier one is idle again by then */
        assert_true(dtm_ratelimit_take(rl, DTM_RL_IP, key, (size_t)n, &flood, now, 1, &a));
    }
    /* 3 s later BUSY got 3 requests back, not a fresh bucket of 100 */
    assert_true(dtm_ratelimit_take(rl, DTM_RL_SYSTEM, "BUSY", 4, &busy, now, 1, &a));
    assert_int_equal(a.remaining, 2);
    dtm_ratelimit_destroy(rl);
}

static void test_tiers(void **state)
{
    struct dtm_conf c;
    struct dtm_rl_limit l;
    char err[256];
    (void)state;
    dtm_conf_defaults(&c, "/tmp");
    assert_true(c.ratelimit_enabled);
    assert_true(dtm_rl_tier_valid("bronze") && dtm_rl_tier_valid("silver") &&
                dtm_rl_tier_valid("gold"));
    assert_false(dtm_rl_tier_valid("platinum") || dtm_rl_tier_valid(""));
    dtm_rl_tier_limit(&c, "bronze", &l);
    assert_int_equal(l.rate, c.ratelimit_bronze_rate);
    assert_int_equal(l.burst, c.ratelimit_bronze_burst);
    dtm_rl_tier_limit(&c, "gold", &l);
    assert_int_equal(l.rate, c.ratelimit_gold_rate);
    /* the realtime benchmark (~15 000 req/s from one gold system) must not be limited */
    assert_true(l.rate >= 20000);
    dtm_rl_tier_limit(&c, "", &l); /* default_tier = silver */
    assert_int_equal(l.rate, c.ratelimit_silver_rate);
    assert_int_equal(dtm_conf_load_string(&c,
                                          "[ratelimit]\ndefault_tier = bronze\nbronze_rate = 5\n"
                                          "bronze_burst = 7\n",
                                          "t.conf", err, sizeof(err)),
                     DTM_OK);
    dtm_rl_tier_limit(&c, "nonsense", &l);
    assert_int_equal(l.rate, 5);
    assert_int_equal(l.burst, 7);
    assert_int_equal(
        dtm_conf_load_string(&c, "[ratelimit]\ndefault_tier = tin\n", "t.conf", err, sizeof(err)),
        DTM_EINVAL);
    assert_non_null(strstr(err, "default_tier"));
}

struct hammer {
    struct dtm_ratelimit *rl;
    int64_t allowed;
};

static void *hammer_run(void *arg)
{
    struct hammer *h = arg;
    struct dtm_rl_limit lim = {1, 1000};
    struct dtm_rl_answer a;
    for (int i = 0; i < 20000; i++)
        if (dtm_ratelimit_take(h->rl, DTM_RL_SYSTEM, "HOT", 3, &lim, 50 * S, 1, &a))
            h->allowed++;
    return NULL;
}

static void test_threads(void **state)
{
    /* 8 threads on one bucket at one instant: exactly the burst passes */
    struct dtm_ratelimit *rl = dtm_ratelimit_create();
    struct hammer h[8];
    pthread_t t[8];
    int64_t total = 0;
    (void)state;
    for (int i = 0; i < 8; i++) {
        h[i] = (struct hammer){rl, 0};
        assert_int_equal(pthread_create(&t[i], NULL, hammer_run, &h[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        total += h[i].allowed;
    }
    assert_int_equal(total, 1000);
    dtm_ratelimit_destroy(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_refused),
        cmocka_unit_test(test_refill),
        cmocka_unit_test(test_peek_and_retry_after),
        cmocka_unit_test(test_table_keys_and_kinds),
        cmocka_unit_test(test_table_bounded),
        cmocka_unit_test(test_tiers),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
