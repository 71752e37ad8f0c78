/* Unit tests for report/qcount.c and the schedule of report/quality.c: the writer's data-quality
 * counters summed into quality_counts on a real SQLite store in a temporary directory (accepted,
 * updated, duplicate, rejected by error code, the lag histogram and its exact sum, records
 * without an event time or dated after their receipt, a flush that adds to what is stored), and
 * the reporting schedule of a system ([quality] schedules, default_schedule, the fallback). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "report/quality.h"
#include "stats/stats.h"

struct fixture {
    char dir[64];
    struct dtm_store *st;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char path[128], err[256];
    snprintf(f->dir, sizeof(f->dir), "/tmp/dtm-unit-quality-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(path, sizeof(path), "%s/dtm.db", f->dir);
    assert_int_equal(dtm_store_sqlite_open(path, &f->st, err, sizeof(err)), DTM_OK);
    assert_int_equal(f->st->ops->migrate(f->st), DTM_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    static const char *const files[] = {"dtm.db",       "dtm.db-wal",       "dtm.db-shm",
                                        "dtm.cubes.db", "dtm.cubes.db-wal", "dtm.cubes.db-shm"};
    char path[160];
    f->st->ops->close(f->st);
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", f->dir, files[i]);
        unlink(path);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

struct row {
    char sys[64], ds[64], kind[16], item[64];
    int64_t n;
};
struct rows {
    struct row r[64];
    size_t n;
};

static int collect(void *ctx, const char *sys, const char *ds, const char *kind, const char *item,
                   int64_t n)
{
    struct rows *x = ctx;
    assert_true(x->n < 64);
    snprintf(x->r[x->n].sys, sizeof(x->r[x->n].sys), "%s", sys);
    snprintf(x->r[x->n].ds, sizeof(x->r[x->n].ds), "%s", ds);
    snprintf(x->r[x->n].kind, sizeof(x->r[x->n].kind), "%s", kind);
    snprintf(x->r[x->n].item, sizeof(x->r[x->n].item), "%s", item);
    x->r[x->n++].n = n;
    return 0;
}

static int64_t get(const struct rows *x, const char *sys, const char *ds, const char *kind,
                   const char *item)
{
    for (size_t i = 0; i < x->n; i++)
        if (!strcmp(x->r[i].sys, sys) && !strcmp(x->r[i].ds, ds) && !strcmp(x->r[i].kind, kind) &&
            !strcmp(x->r[i].item, item))
            return x->r[i].n;
    return -1;
}

static void test_counts(void **state)
{
    struct fixture *f = *state;
    struct dtm_store *st = f->st;
    struct dtm_qcount *q = dtm_qcount_new();
    const int64_t now = 1790000000LL * 1000000, sec = 1000000;
    struct dtm_rec_error errs[3];
    struct rows x = {0};
    char idx[16];
    int64_t day = dtm_cube_bucket(DTM_GRAIN_DAY, now);
    memset(errs, 0, sizeof(errs));
    errs[0].code = "enum";
    errs[1].code = "required";
    errs[2].code = "enum";
    assert_non_null(q);
    /* A: two new records 10 s and 30 s old, one updated 10 s old, one duplicate, one without an
     * event time, one dated after its receipt; B (another system, same dataset): one new */
    assert_int_equal(
        dtm_qcount_record(q, "transactions", dtm_str_c("A"), now - 10 * sec, DTM_PUT_NEW, now), 0);
    assert_int_equal(
        dtm_qcount_record(q, "transactions", dtm_str_c("A"), now - 30 * sec, DTM_PUT_NEW, now), 0);
    assert_int_equal(
        dtm_qcount_record(q, "transactions", dtm_str_c("A"), now - 10 * sec, DTM_PUT_UPDATED, now),
        0);
    assert_int_equal(dtm_qcount_record(q, "transactions", dtm_str_c("A"), now - 10 * sec,
                                       DTM_PUT_DUPLICATE, now),
                     0);
    assert_int_equal(
        dtm_qcount_record(q, "transactions", dtm_str_c("A"), INT64_MIN, DTM_PUT_NEW, now), 0);
    assert_int_equal(
        dtm_qcount_record(q, "transactions", dtm_str_c("A"), now + 5 * sec, DTM_PUT_NEW, now), 0);
    assert_int_equal(
        dtm_qcount_record(q, "transactions", dtm_str_c("B"), now - 2 * sec, DTM_PUT_NEW, now), 0);
    assert_int_equal(dtm_qcount_rejected(q, "transactions", "A", 2, errs, 3), 0);
    assert_int_equal(st->ops->begin(st), DTM_OK);
    assert_int_equal(dtm_qcount_flush(q, st, now), DTM_OK);
    assert_int_equal(st->ops->commit(st), DTM_OK);
    dtm_qcount_clear(q);
    /* a second group adds to the same rows */
    assert_int_equal(dtm_qcount_rejected(q, "transactions", "A", 1, errs, 1), 0);
    assert_int_equal(st->ops->begin(st), DTM_OK);
    assert_int_equal(dtm_qcount_flush(q, st, now), DTM_OK);
    assert_int_equal(st->ops->commit(st), DTM_OK);
    dtm_qcount_free(q);

    assert_int_equal(st->ops->quality_sum(st, day, day + 1, collect, &x), DTM_OK);
    assert_int_equal(get(&x, "A", "transactions", "n", "accepted"), 5);
    assert_int_equal(get(&x, "A", "transactions", "n", "updated"), 1);
    assert_int_equal(get(&x, "A", "transactions", "n", "duplicate"), 1);
    assert_int_equal(get(&x, "A", "transactions", "n", "rejected"), 3);
    assert_int_equal(get(&x, "A", "transactions", "err", "enum"), 3);
    assert_int_equal(get(&x, "A", "transactions", "err", "required"), 1);
    /* lags: 10 s, 30 s, 10 s and 0 (dated after receipt); none for the record without a time */
    assert_int_equal(get(&x, "A", "transactions", "lag_n", ""), 4);
    assert_int_equal(get(&x, "A", "transactions", "lag_ms", ""), 50000);
    snprintf(idx, sizeof(idx), "%d", (int)dtm_hist_index(10000));
    assert_int_equal(get(&x, "A", "transactions", "lag", idx), 2);
    snprintf(idx, sizeof(idx), "%d", (int)dtm_hist_index(0));
    assert_int_equal(get(&x, "A", "transactions", "lag", idx), 1);
    assert_int_equal(get(&x, "B", "transactions", "n", "accepted"), 1);
    assert_int_equal(get(&x, "B", "transactions", "lag_ms", ""), 2000);
    assert_int_equal(get(&x, "B", "transactions", "n", "rejected"), -1); /* zero: no row */
    /* other days: nothing */
    x.n = 0;
    assert_int_equal(st->ops->quality_sum(st, day + 1, day + 2, collect, &x), DTM_OK);
    assert_int_equal(x.n, 0);
}

static void test_schedule(void **state)
{
    struct dtm_conf c;
    (void)state;
    dtm_conf_defaults(&c, "/tmp");
    /* no default and no dictionary: month */
    assert_int_equal(dtm_quality_schedule(&c, NULL, "X"), DTM_P_MONTH);
    snprintf(c.quality_default_schedule, sizeof(c.quality_default_schedule), "week");
    snprintf(c.quality_schedules, sizeof(c.quality_schedules), "MOF01=day, HCM = quarter,AB=year");
    assert_int_equal(dtm_quality_schedule(&c, NULL, "MOF01"), DTM_P_DAY);
    assert_int_equal(dtm_quality_schedule(&c, NULL, "HCM"), DTM_P_QUARTER);
    assert_int_equal(dtm_quality_schedule(&c, NULL, "AB"), DTM_P_YEAR);
    assert_int_equal(dtm_quality_schedule(&c, NULL, "A"), DTM_P_WEEK);     /* a prefix only */
    assert_int_equal(dtm_quality_schedule(&c, NULL, "MOF0"), DTM_P_WEEK);  /* ditto */
    assert_int_equal(dtm_quality_schedule(&c, NULL, "OTHER"), DTM_P_WEEK); /* the default */
    snprintf(c.quality_schedules, sizeof(c.quality_schedules), "X=fortnight");
    assert_int_equal(dtm_quality_schedule(&c, NULL, "X"), DTM_P_WEEK); /* unknown: the default */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_counts, setup, teardown),
        cmocka_unit_test(test_schedule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
