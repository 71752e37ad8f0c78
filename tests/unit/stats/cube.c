/* Unit tests for the live rollups' building blocks (src/stats/cube.c): the histogram's bucket
 * function (every value within 1 % of the value that stands for its bucket, integers below 128
 * exact, order kept across signs), nearest-rank quantiles from a histogram against the exact
 * ones, the aggregate encoding with merge and removal, hour/day buckets in UTC+07:00, and the
 * refusal of a broken blob. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stats/stats.h"

static void test_hist_relative_error(void **state)
{
    (void)state;
    for (double v = 0.001; v < 1e12; v *= 1.0137) {
        double r = dtm_hist_value(dtm_hist_index(v), false);
        assert_true(fabs(r - v) / v < 0.008);
        double lo, hi;
        dtm_hist_bounds(dtm_hist_index(v), &lo, &hi);
        assert_true(lo <= v && v < hi);
    }
    for (int i = 0; i < 128; i++) /* integer latencies below 128 ms are exact */
        assert_true(dtm_hist_value(dtm_hist_index(i), true) == i);
    assert_int_equal(dtm_hist_index(0), 0);
    assert_true(dtm_hist_index(-5) < dtm_hist_index(-2));
    assert_true(dtm_hist_index(-2) < 0 && dtm_hist_index(0.5) > 0);
    assert_true(dtm_hist_index(1000) < dtm_hist_index(1001) ||
                dtm_hist_index(1000) == dtm_hist_index(1001));
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void test_quantiles_within_one_percent(void **state)
{
    struct dtm_cube_magg m = {.min = INFINITY, .max = -INFINITY};
    double vals[5000];
    (void)state;
    srand(7);
    for (int i = 0; i < 5000; i++) {
        struct dtm_hbin b;
        /* a long-tailed latency: most fast, some very slow */
        vals[i] = (double)(5 + rand() % 200 + (rand() % 10 == 0 ? rand() % 30000 : 0));
        b.idx = dtm_hist_index(vals[i]);
        b.cnt = 1;
        assert_int_equal(dtm_hist_merge(&m, &b, 1), DTM_OK);
        m.min = fmin(m.min, vals[i]);
        m.max = fmax(m.max, vals[i]);
    }
    qsort(vals, 5000, sizeof(double), cmp);
    const double ps[] = {0.5, 0.95, 0.99, 0.999, 0.0001, 1.0};
    for (size_t k = 0; k < sizeof(ps) / sizeof(ps[0]); k++) {
        size_t rank = (size_t)ceil(5000 * ps[k]);
        double exact = vals[(rank ? rank : 1) - 1];
        double got = dtm_hist_quantile(&m, ps[k], true);
        assert_true(fabs(got - exact) / exact < 0.01);
    }
    free(m.h);
}

static void test_merge_and_removal(void **state)
{
    /* a row of {10, 20, 500} then a delta removing 10 and adding 30: through the encoding */
    struct dtm_cube_magg a0 = {.n = 3, .sum = 530, .min = 10, .max = 500, .has_hist = true};
    struct dtm_cube_magg d0 = {
        .n = 0, .sum = 20, .min = 30, .max = 30, .removed = true, .has_hist = true};
    struct dtm_hbin ab[] = {
        {dtm_hist_index(10), 1}, {dtm_hist_index(20), 1}, {dtm_hist_index(500), 1}};
    struct dtm_hbin db[] = {{dtm_hist_index(10), -1}, {dtm_hist_index(30), 1}};
    (void)state;
    assert_int_equal(dtm_hist_merge(&a0, ab, 3), DTM_OK);
    assert_int_equal(dtm_hist_merge(&d0, db, 2), DTM_OK);
    struct dtm_cube_agg A = {.count = 3, .nm = 1, .m = &a0}, D = {.count = 0, .nm = 1, .m = &d0};
    struct dtm_cube_agg R;
    struct dtm_buf ea, ed, out;
    dtm_buf_init(&ea, 1 << 16);
    dtm_buf_init(&ed, 1 << 16);
    dtm_buf_init(&out, 1 << 16);
    dtm_cube_agg_encode(&A, &ea);
    dtm_cube_agg_encode(&D, &ed);
    assert_int_equal(dtm_agg_merge(ea.p, ea.n, ed.p, ed.n, &out), DTM_OK);
    assert_int_equal(dtm_cube_agg_decode(out.p, out.n, &R), DTM_OK);
    assert_int_equal(R.nm, 1);
    assert_int_equal(R.m[0].n, 3);
    assert_true(R.m[0].sum == 550);
    assert_true(R.m[0].min == 20); /* 10 went out: the lowest bucket left holds only 20 */
    assert_true(R.m[0].max == 500);
    assert_int_equal(R.m[0].nh, 3);
    assert_true(dtm_hist_quantile(&R.m[0], 0.5, true) == 30);
    dtm_cube_agg_release(&R);
    dtm_buf_free(&ea);
    dtm_buf_free(&ed);
    dtm_buf_free(&out);
    free(a0.h);
    free(d0.h);
}

static void test_buckets_utc7(void **state)
{
    int64_t t;
    (void)state;
    assert_int_equal(dtm_time_parse(dtm_str_c("2026-10-05T17:00:00Z"), &t), DTM_OK);
    /* 00:00 on 2026-10-06 in UTC+07:00 starts a day and an hour */
    assert_int_equal(dtm_cube_bucket_start(DTM_GRAIN_DAY, dtm_cube_bucket(DTM_GRAIN_DAY, t)), t);
    assert_int_equal(dtm_cube_bucket_start(DTM_GRAIN_HOUR, dtm_cube_bucket(DTM_GRAIN_HOUR, t)), t);
    assert_int_equal(dtm_cube_bucket(DTM_GRAIN_DAY, t - 1) + 1, dtm_cube_bucket(DTM_GRAIN_DAY, t));
    assert_int_equal(dtm_cube_bucket(DTM_GRAIN_HOUR, INT64_MIN), INT64_MIN);
    /* before 1970 too */
    assert_int_equal(dtm_time_parse(dtm_str_c("1969-12-31T23:30:00+07:00"), &t), DTM_OK);
    assert_true(dtm_cube_bucket_start(DTM_GRAIN_DAY, dtm_cube_bucket(DTM_GRAIN_DAY, t)) <= t);
}

static void test_broken_blob(void **state)
{
    struct dtm_cube_agg a;
    struct dtm_buf out;
    const unsigned char junk[] = {0x01, 0x02, 0xff, 0xff, 0xff};
    (void)state;
    assert_int_equal(dtm_cube_agg_decode(junk, sizeof(junk), &a), DTM_EMALFORMED);
    dtm_buf_init(&out, 1 << 16);
    assert_int_not_equal(dtm_agg_merge(junk, sizeof(junk), junk, sizeof(junk), &out), DTM_OK);
    dtm_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_relative_error),
        cmocka_unit_test(test_quantiles_within_one_percent),
        cmocka_unit_test(test_merge_and_removal),
        cmocka_unit_test(test_buckets_utc7),
        cmocka_unit_test(test_broken_blob),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
