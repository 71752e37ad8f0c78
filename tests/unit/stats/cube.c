/* Unit tests for the live rollups' building blocks (src/stats/cube.c): the histogram's bucket
 * function (every value within 1 % of the value that stands for its bucket, integers below 128
 * exact, order kept across signs), nearest-rank quantiles from a histogram against the exact
 * ones, the aggregate encoding with merge and removal, hour/day buckets in UTC+07:00, the
 * refusal of a broken blob, and — on a real SQLite store — that the deltas of several group
 * commits applied together by the rollup thread (drained runs, merged per row) leave exactly the
 * rows one accumulator flushed at once leaves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dict/dict.h"
#include "stats/stats.h"
#include "store/store.h"

#include <stdio.h>
#include <unistd.h>

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

/* ---- runs applied by the rollup thread == one accumulator flushed */

static const char *const RECS[] = {
    "{\"system_code\":\"A\",\"txn_id\":\"1\",\"service_code\":\"S1\",\"status\":\"success\","
    "\"started_at\":\"2026-03-02T10:00:00+07:00\",\"response_ms\":120}",
    "{\"system_code\":\"A\",\"txn_id\":\"2\",\"service_code\":\"S1\",\"status\":\"failed\","
    "\"error_code\":\"E1\",\"started_at\":\"2026-03-02T11:00:00+07:00\",\"response_ms\":900}",
    "{\"system_code\":\"B\",\"txn_id\":\"3\",\"service_code\":\"S2\",\"status\":\"success\","
    "\"started_at\":\"2026-03-03T09:30:00+07:00\",\"response_ms\":55}",
};

struct rows {
    char text[32768];
    size_t n;
};

/* A cube row as text: bucket, dims, count and each measure's n, sum, min, max and histogram (the
 * encoding's "a value was removed" hint is left out: applying a run where a record came and went
 * again skips the row, while one accumulator keeps the hint — both are exact). */
static int collect(void *ctx, int64_t bucket, const void *dims, size_t dimslen, int64_t n,
                   const void *agg, size_t agglen)
{
    struct rows *r = ctx;
    struct dtm_cube_agg a;
    assert_int_equal(dtm_cube_agg_decode(agg, agglen, &a), DTM_OK);
    r->n += (size_t)snprintf(r->text + r->n, sizeof(r->text) - r->n, "%lld/", (long long)bucket);
    for (size_t i = 0; i < dimslen; i++)
        r->n += (size_t)snprintf(r->text + r->n, sizeof(r->text) - r->n, "%02x",
                                 ((const uint8_t *)dims)[i]);
    r->n += (size_t)snprintf(r->text + r->n, sizeof(r->text) - r->n, "/%lld/%lld:", (long long)n,
                             (long long)a.count);
    for (uint32_t m = 0; m < a.nm; m++) {
        const struct dtm_cube_magg *g = &a.m[m];
        r->n += (size_t)snprintf(r->text + r->n, sizeof(r->text) - r->n, "%lld,%g,%g,%g",
                                 (long long)g->n, g->sum, g->min, g->max);
        for (uint32_t k = 0; k < g->nh; k++)
            r->n += (size_t)snprintf(r->text + r->n, sizeof(r->text) - r->n, ",%d=%lld",
                                     g->h[k].idx, (long long)g->h[k].cnt);
        r->n += (size_t)snprintf(r->text + r->n, sizeof(r->text) - r->n, ";");
    }
    r->n += (size_t)snprintf(r->text + r->n, sizeof(r->text) - r->n, "|");
    dtm_cube_agg_release(&a);
    assert_true(r->n < sizeof(r->text) - 1);
    return 0;
}

/* Stores the facts of RECS (each added `times` times, plus one removal of RECS[0]) into a fresh
 * store, either through one accumulator flush or as one run per record applied together. */
static void load(const char *path, bool runs, struct rows *out)
{
    struct dtm_store *st;
    struct dtm_dict *dict = dtm_dict_create();
    const struct dtm_dataset *ds = dtm_dict_get(dict, dtm_str_c("transactions"));
    struct dtm_cube_acc *acc = dtm_cube_acc_new();
    struct dtm_buf run[4];
    const struct dtm_buf *rp[4];
    struct dtm_cube_scratch sc;
    int64_t ids[DTM_CUBE_MAX];
    bool complete[DTM_CUBE_MAX];
    char err[256];
    assert_non_null(ds);
    unlink(path);
    assert_int_equal(dtm_store_sqlite_open(path, &st, err, sizeof(err)), DTM_OK);
    assert_int_equal(st->ops->migrate(st), DTM_OK);
    assert_int_equal(st->ops->begin(st), DTM_OK);
    assert_int_equal(dtm_cube_acc_prepare(acc, st, ds), DTM_OK);
    dtm_cube_acc_set_now(acc, 1772420000LL * 1000000); /* 2026-03-02: hour rows too */
    dtm_cube_scratch_init(&sc);
    for (size_t i = 0; i < 4; i++) {
        struct dtm_arena a;
        struct dtm_facts f;
        int64_t t;
        const char *rec = RECS[i % 3];
        dtm_arena_init(&a, 1 << 16);
        assert_int_equal(dtm_facts_parse(ds, dtm_str_c(rec), &a, &f, &t), DTM_OK);
        assert_int_equal(dtm_cube_acc_add(acc, &f, t, +1), DTM_OK);
        if (i == 3) /* an update moving RECS[0] out again */
            assert_int_equal(dtm_cube_acc_add(acc, &f, t, -1), DTM_OK);
        dtm_arena_free(&a);
        dtm_buf_init(&run[i], 1 << 20);
        rp[i] = &run[i];
        if (runs)
            assert_int_equal(dtm_cube_acc_drain(acc, &run[i]), DTM_OK);
    }
    if (runs)
        assert_int_equal(dtm_cube_runs_apply(st, rp, 4, &sc), DTM_OK);
    else
        assert_int_equal(dtm_cube_acc_flush(acc, st), DTM_OK);
    assert_int_equal(st->ops->commit(st), DTM_OK);
    assert_int_equal(dtm_cube_ids(st, ds, false, ids, complete), DTM_OK);
    out->n = 0;
    for (size_t c = 0; c < ds->ncubes; c++)
        for (int g = DTM_GRAIN_HOUR; g <= DTM_GRAIN_DAY; g++)
            assert_int_equal(
                st->ops->cube_scan(st, ids[c], g, INT64_MIN, INT64_MAX, NULL, 0, collect, out), 0);
    for (size_t i = 0; i < 4; i++)
        dtm_buf_free(&run[i]);
    dtm_cube_scratch_free(&sc);
    dtm_cube_acc_free(acc);
    st->ops->close(st);
    dtm_dict_destroy(dict);
}

static void test_runs_equal_one_flush(void **state)
{
    static struct rows a, b;
    char dir[] = "/tmp/dtm-unit-cube-XXXXXX", p1[64], p2[64];
    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(p1, sizeof(p1), "%s/one.db", dir);
    snprintf(p2, sizeof(p2), "%s/runs.db", dir);
    load(p1, false, &a);
    load(p2, true, &b);
    assert_true(a.n > 100);
    assert_string_equal(a.text, b.text);
    for (const char *f = "one.db\0one.cubes.db\0runs.db\0runs.cubes.db\0"; *f; f += strlen(f) + 1) {
        char p[96];
        snprintf(p, sizeof(p), "%s/%s", dir, f);
        unlink(p);
    }
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_relative_error),
        cmocka_unit_test(test_quantiles_within_one_percent),
        cmocka_unit_test(test_merge_and_removal),
        cmocka_unit_test(test_buckets_utc7),
        cmocka_unit_test(test_broken_blob),
        cmocka_unit_test(test_runs_equal_one_flush),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
