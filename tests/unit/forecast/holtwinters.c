/* Unit tests for forecast/holtwinters.c: on synthetic series with a known trend and season and
 * deterministic noise, the fitted model recovers the season, its forecasts beat seasonal naive
 * in backtest MASE and on the held-out continuation, and the 80 % / 95 % intervals hold about
 * that share of a noisy continuation; an hourly series with a weekly pattern is forecast better
 * with the weekly season of 168 hours than with the daily one; edge cases (a constant series,
 * zeros: MAPE undefined, too little history, a non-finite value) answer without NaN. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "forecast/forecast.h"

#include <math.h>
#include <string.h>

#define PI 3.14159265358979323846

/* a deterministic normal deviate (64-bit LCG, Box–Muller) */
static uint64_t rng_state;
static double unif(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return ((double)(rng_state >> 11) + 0.5) / 9007199254740992.0;
}
static double gauss(void)
{
    return sqrt(-2 * log(unif())) * cos(2 * PI * unif());
}

static const double week[7] = {30, 22, 10, -5, -12, -20, -25}; /* sums to 0 */

/* level 200 + 1.5 t + week[t % 7] + N(0, sd) */
static void weekly(double *y, size_t n, double sd, uint64_t seed)
{
    rng_state = seed;
    for (size_t t = 0; t < n; t++)
        y[t] = 200 + 1.5 * (double)t + week[t % 7] + sd * gauss();
}

static void test_recovers_season_and_trend(void **state)
{
    double y[140];
    struct dtm_hw_model md;
    (void)state;
    weekly(y, 140, 2, 7);
    assert_int_equal(dtm_hw_fit(y, 140, 7, &md), DTM_OK);
    assert_true(md.alpha >= 0.01 && md.alpha <= 1 && md.beta >= 0 && md.beta <= 1 &&
                md.gamma >= 0 && md.gamma <= 1);
    for (size_t p = 0; p < 7; p++)
        assert_true(fabs(md.season[p] - week[p]) < 4);
    assert_true(fabs(md.trend - 1.5) < 0.3);
    /* the level at the last point (t = 139, season removed) */
    assert_true(fabs(md.level - (200 + 1.5 * 139)) < 6);
    assert_true(isfinite(md.sigma2) && sqrt(md.sigma2) < 4);
    /* the forecast follows the known continuation */
    for (size_t h = 1; h <= 14; h++) {
        double truth = 200 + 1.5 * (double)(139 + h) + week[(139 + h) % 7];
        assert_true(fabs(dtm_hw_point(&md, h) - truth) < 8);
        assert_true(dtm_hw_sd(&md, h) >= dtm_hw_sd(&md, h > 1 ? h - 1 : 1));
    }
}

static void test_beats_seasonal_naive(void **state)
{
    double y[154], truth[14];
    struct dtm_fc_point pts[14];
    struct dtm_forecast f;
    double e_hw = 0, e_sn = 0;
    (void)state;
    weekly(y, 154, 3, 11);
    memcpy(truth, y + 140, sizeof(truth));
    assert_int_equal(dtm_forecast_run(y, 140, 7, 14, 0, INFINITY, &f, pts), DTM_OK);
    assert_true(f.hw_score.mase_ok && f.sn_score.mase_ok);
    assert_true(f.hw_score.mase < f.sn_score.mase);
    assert_int_equal(f.method, DTM_FC_HOLT_WINTERS);
    assert_string_equal(dtm_fc_method_name(f.method), "holt_winters");
    assert_int_equal(f.folds, DTM_FC_FOLDS);
    assert_int_equal(f.fold_h, 7);
    assert_true(f.hw_score.mape_ok && f.hw_score.mape < 5);
    /* and on the held-out continuation */
    for (size_t h = 0; h < 14; h++) {
        e_hw += fabs(truth[h] - pts[h].value);
        e_sn += fabs(truth[h] - dtm_snaive_point(y, 140, 7, h + 1));
        assert_true(pts[h].lo95 <= pts[h].lo80 && pts[h].lo80 <= pts[h].value &&
                    pts[h].value <= pts[h].hi80 && pts[h].hi80 <= pts[h].hi95);
    }
    assert_true(e_hw < e_sn);
}

/* Over many noisy series (white noise around a known season and trend), the share of held-out
 * points inside each interval is near its level. */
static void test_interval_coverage(void **state)
{
    size_t in80 = 0, in95 = 0, all = 0;
    (void)state;
    for (uint64_t seed = 1; seed <= 60; seed++) {
        double y[119];
        struct dtm_fc_point pts[7];
        struct dtm_forecast f;
        weekly(y, 119, 5, seed * 977);
        assert_int_equal(dtm_forecast_run(y, 112, 7, 7, -INFINITY, INFINITY, &f, pts), DTM_OK);
        for (size_t h = 0; h < 7; h++) {
            double v = y[112 + h];
            in80 += v >= pts[h].lo80 && v <= pts[h].hi80;
            in95 += v >= pts[h].lo95 && v <= pts[h].hi95;
            all++;
        }
    }
    print_message("coverage: 80 %% band %.3f, 95 %% band %.3f over %zu points\n",
                  (double)in80 / (double)all, (double)in95 / (double)all, all);
    assert_true((double)in80 / (double)all > 0.70 && (double)in80 / (double)all < 0.90);
    assert_true((double)in95 / (double)all > 0.88 && (double)in95 / (double)all <= 0.99);
}

/* Hourly: a daily season of 24 over three weeks. */
static void test_hourly(void **state)
{
    double y[24 * 21];
    struct dtm_fc_point pts[48];
    struct dtm_forecast f;
    (void)state;
    rng_state = 5;
    for (size_t t = 0; t < 24 * 21; t++)
        y[t] = 50 + 40 * sin(2 * PI * (double)(t % 24) / 24) + 2 * gauss();
    assert_int_equal(dtm_forecast_run(y, 24 * 21, 24, 48, 0, INFINITY, &f, pts), DTM_OK);
    assert_true(f.hw_score.mase < f.sn_score.mase);
    for (size_t h = 1; h <= 48; h++) {
        double truth = 50 + 40 * sin(2 * PI * (double)((24 * 21 - 1 + h) % 24) / 24);
        assert_true(fabs(pts[h - 1].value - truth) < 8);
    }
}

/* Hourly with a weekly pattern: weekdays a busy daytime curve, weekends a quiet flat one, noise
 * N(0, 3), over eight weeks (the last one held out). The weekly season of 168 hours (the one
 * dtm_fc_hour_season gives seven weeks of history) forecasts the held-out week better than a
 * daily season of 24 and than seasonal naive of 24, in MASE on one scale: the training part's
 * seasonal-naive(24) MAE. */
static double weekly_hour(size_t t)
{
    double s = sin(PI * (double)(t % 24) / 24);
    return (t / 24) % 7 >= 5 ? 10 + 10 * s * s : 20 + 80 * s * s;
}

static void test_hourly_weekly_season(void **state)
{
    enum { N = 8 * 168, NT = 7 * 168, H = 168 };
    static double y[N];
    static struct dtm_fc_point pts[H];
    struct dtm_hw_model w, d;
    struct dtm_forecast f;
    double scale, e_w = 0, e_d = 0, e_sn = 0;
    (void)state;
    rng_state = 17;
    for (size_t t = 0; t < N; t++)
        y[t] = weekly_hour(t) + 0.005 * (double)t + 3 * gauss();
    assert_int_equal(dtm_fc_hour_season(NT), DTM_FC_SEASON_WEEK_HOURS);
    assert_int_equal(dtm_fc_hour_season(3 * 168), DTM_FC_SEASON_WEEK_HOURS);
    assert_int_equal(dtm_fc_hour_season(3 * 168 - 1), DTM_FC_SEASON_HOUR);
    assert_int_equal(dtm_hw_fit(y, NT, 168, &w), DTM_OK);
    assert_int_equal(dtm_hw_fit(y, NT, 24, &d), DTM_OK);
    scale = dtm_snaive_mae(y, NT, 24);
    assert_true(scale > 0);
    for (size_t h = 1; h <= H; h++) {
        double v = y[NT + h - 1];
        e_w += fabs(v - dtm_hw_point(&w, h));
        e_d += fabs(v - dtm_hw_point(&d, h));
        e_sn += fabs(v - dtm_snaive_point(y, NT, 24, h));
    }
    e_w /= H * scale;
    e_d /= H * scale;
    e_sn /= H * scale;
    print_message("held-out week, MASE: Holt-Winters 168 %.3f, Holt-Winters 24 %.3f, seasonal "
                  "naive 24 %.3f\n",
                  e_w, e_d, e_sn);
    assert_true(e_w < e_d && e_w < e_sn);
    assert_true(e_w < 0.5);
    /* the whole forecast with the weekly season: both methods on it, the answer near the truth */
    assert_int_equal(dtm_forecast_run(y, NT, 168, H, 0, INFINITY, &f, pts), DTM_OK);
    assert_int_equal(f.m, 168);
    assert_int_equal(f.folds, DTM_FC_FOLDS);
    assert_int_equal(f.fold_h, 168);
    for (size_t h = 1; h <= H; h++) {
        size_t t = NT - 1 + h;
        assert_true(fabs(pts[h - 1].value - (weekly_hour(t) + 0.005 * (double)t)) < 12);
    }
}

static void test_constant_and_zeros(void **state)
{
    double c[35], z[35];
    struct dtm_fc_point pts[10];
    struct dtm_forecast f;
    (void)state;
    for (size_t i = 0; i < 35; i++) {
        c[i] = 42;
        z[i] = 0;
    }
    assert_int_equal(dtm_forecast_run(c, 35, 7, 10, 0, INFINITY, &f, pts), DTM_OK);
    for (size_t h = 0; h < 10; h++) {
        assert_true(fabs(pts[h].value - 42) < 1e-9);
        assert_true(fabs(pts[h].lo95 - 42) < 1e-9 && fabs(pts[h].hi95 - 42) < 1e-9);
    }
    assert_false(f.hw_score.mase_ok); /* the seasonal differences are all 0: no scale */
    assert_true(f.hw_score.mape_ok && f.hw_score.mape < 1e-9);
    assert_true(isfinite(f.hw.alpha) && isfinite(f.hw.sigma2));
    assert_int_equal(dtm_forecast_run(z, 35, 7, 10, 0, INFINITY, &f, pts), DTM_OK);
    assert_false(f.hw_score.mape_ok); /* every actual is 0: MAPE undefined */
    assert_false(f.sn_score.mape_ok);
    assert_false(f.hw_score.mase_ok);
    assert_int_equal(f.method, DTM_FC_SEASONAL_NAIVE); /* a tie: the simpler */
    for (size_t h = 0; h < 10; h++)
        assert_true(pts[h].value == 0 && pts[h].lo95 == 0 && pts[h].hi95 == 0);
}

static void test_edges(void **state)
{
    double y[60];
    struct dtm_fc_point pts[400];
    struct dtm_forecast f;
    struct dtm_hw_model md;
    (void)state;
    weekly(y, 60, 1, 3);
    /* three seasons are needed */
    assert_int_equal(dtm_forecast_run(y, 20, 7, 7, 0, INFINITY, &f, pts), DTM_EINVAL);
    assert_int_equal(dtm_forecast_run(y, 21, 7, 7, 0, INFINITY, &f, pts), DTM_OK);
    assert_int_equal(f.folds, 1);
    assert_int_equal(dtm_forecast_run(y, 60, 7, 0, 0, INFINITY, &f, pts), DTM_EINVAL);
    assert_int_equal(dtm_forecast_run(y, 60, 7, DTM_FC_MAX_HORIZON + 1, 0, INFINITY, &f, pts),
                     DTM_EINVAL);
    assert_int_equal(dtm_forecast_run(y, 60, 7, DTM_FC_MAX_HORIZON, 0, INFINITY, &f, pts), DTM_OK);
    for (size_t h = 0; h < DTM_FC_MAX_HORIZON; h++)
        assert_true(isfinite(pts[h].value) && isfinite(pts[h].lo95) && isfinite(pts[h].hi95) &&
                    pts[h].lo95 >= 0);
    assert_int_equal(dtm_hw_fit(y, 13, 7, &md), DTM_EINVAL);
    assert_int_equal(dtm_hw_fit(y, 60, 1, &md), DTM_EINVAL);
    y[30] = NAN;
    assert_int_equal(dtm_forecast_run(y, 60, 7, 7, 0, INFINITY, &f, pts), DTM_EINVAL);
    /* a rate stays in [0, 1] */
    for (size_t i = 0; i < 60; i++)
        y[i] = i % 7 == 0 ? 0.9 : 0.02;
    assert_int_equal(dtm_forecast_run(y, 60, 7, 14, 0, 1, &f, pts), DTM_OK);
    for (size_t h = 0; h < 14; h++)
        assert_true(pts[h].lo95 >= 0 && pts[h].hi95 <= 1);
    /* a wild series does not make the fit diverge into NaN */
    for (size_t i = 0; i < 60; i++)
        y[i] = (i % 2 ? 1e12 : -1e12) * (double)(i + 1);
    assert_int_equal(dtm_forecast_run(y, 60, 7, 7, -INFINITY, INFINITY, &f, pts), DTM_OK);
    for (size_t h = 0; h < 7; h++)
        assert_true(isfinite(pts[h].value) && isfinite(pts[h].hi95));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recovers_season_and_trend),
        cmocka_unit_test(test_beats_seasonal_naive),
        cmocka_unit_test(test_interval_coverage),
        cmocka_unit_test(test_hourly),
        cmocka_unit_test(test_hourly_weekly_season),
        cmocka_unit_test(test_constant_and_zeros),
        cmocka_unit_test(test_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
