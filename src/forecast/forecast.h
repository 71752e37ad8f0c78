/* forecast — F7: forecasting a daily or hourly series of a dataset's statistics (CONTRACT §6,
 * GET /api/v1/forecast/{dataset}) and the anomaly check of `dtm serve` (issue 7 item 6).
 *
 * - holtwinters.c: the maths, written here (no numerical library is needed for it): Holt-Winters
 *   with additive trend and additive seasonality, its parameters fitted by minimising the
 *   one-step-ahead squared error (a grid, then Nelder–Mead, bounded and deterministic); the
 *   seasonal-naive baseline; prediction intervals; a rolling-origin backtest (MAPE, MASE) of both;
 *   the method with the lower backtest MASE is the one answered.
 * - series.c: the history of a series from stats/ (the rollups for daily series), missing buckets
 *   filled (0 for counts and sums, the previous value for averages, rates and percentiles).
 * - anomaly.c: the hourly check of `dtm serve` ([anomaly]): per system, transactions per hour and
 *   error rate against the 95 % band of their forecast; N consecutive hours outside raise one
 *   alert (alert/alert.h), cleared when the series is back inside. */
#ifndef DTM_FORECAST_H
#define DTM_FORECAST_H

#include "conf/conf.h"
#include "core/core.h"
#include "stats/stats.h"
#include "store/store.h"

/* Season lengths: 7 for daily series (the week); for hourly ones the week too, 168 hours, when
 * the history holds DTM_FC_MIN_SEASONS whole weeks (two weeks initialise the model, the third is
 * what its parameters are fitted and backtested on), else the day, 24 hours (the weekly effect
 * then only moves the level, which the model follows): dtm_fc_hour_season. */
#define DTM_FC_SEASON_DAY 7
#define DTM_FC_SEASON_HOUR 24
#define DTM_FC_SEASON_WEEK_HOURS 168
#define DTM_FC_MAX_SEASON 168
#define DTM_FC_MIN_SEASONS 3    /* history needed: three whole seasons */
#define DTM_FC_MAX_HORIZON 366  /* points of one forecast at most */
#define DTM_FC_MAX_HISTORY 4000 /* buckets of history at most */
#define DTM_FC_FOLDS 5          /* backtest folds at most */
#define DTM_FC_GRID_EVALS 120   /* cost of a fit: grid points … */
#define DTM_FC_NM_EVALS 240     /* … plus Nelder–Mead steps, each one pass over the series */

/* A fitted Holt-Winters model: the state after the last observation. The seasonal component of
 * phase p (observation t has phase t % m, t counted from the series' first point) is season[p]. */
struct dtm_hw_model {
    size_t m; /* season length */
    size_t n; /* observations it was run over */
    double alpha, beta, gamma;
    double level, trend;
    double season[DTM_FC_MAX_SEASON];
    double sigma2; /* mean squared one-step error in sample (from the second season on) */
    double sse;
};

/* Runs Holt-Winters with the given parameters over y[0..n) (n ≥ 2m, 2 ≤ m ≤ DTM_FC_MAX_SEASON),
 * initialised from the first two seasons. Returns the sum of squared one-step errors (+inf when
 * the parameters make the state diverge). */
double dtm_hw_run(const double *y, size_t n, size_t m, double alpha, double beta, double gamma,
                  struct dtm_hw_model *out);
/* Fits alpha, beta, gamma in [0.01, 1] × [0, 1] × [0, 1] by minimising the one-step squared error:
 * a grid of DTM_FC_GRID_EVALS points, then Nelder–Mead from the best (at most DTM_FC_NM_EVALS
 * evaluations). Deterministic. DTM_OK or DTM_EINVAL (n < 2m, bad m, a non-finite value). */
int dtm_hw_fit(const double *y, size_t n, size_t m, struct dtm_hw_model *out);
/* The forecast h ≥ 1 steps after the last observation, and its standard deviation (the additive
 * model's: σ²(1 + Σ_{j<h} c_j²), c_j = α(1 + jβ) + γ(1 − α)·[j mod m = 0]). */
double dtm_hw_point(const struct dtm_hw_model *md, size_t h);
double dtm_hw_sd(const struct dtm_hw_model *md, size_t h);

/* Seasonal naive: the value one season before. sigma: the root mean square of y[t] − y[t−m] in
 * sample; the h-step standard deviation is sigma·√(⌊(h−1)/m⌋ + 1). */
double dtm_snaive_point(const double *y, size_t n, size_t m, size_t h);
double dtm_snaive_sigma(const double *y, size_t n, size_t m);
/* The in-sample mean absolute seasonal difference: MASE's scale (0 when none). */
double dtm_snaive_mae(const double *y, size_t n, size_t m);

/* Backtest errors of a method: MAPE in percent over the points whose actual value is not 0,
 * MASE = the mean over folds of the fold's MAE / its training part's seasonal-naive MAE (folds
 * whose scale is 0 left out). A `*_ok` false: undefined (every actual 0, every scale 0). */
struct dtm_fc_score {
    double mape, mase, mae;
    bool mape_ok, mase_ok;
};

struct dtm_fc_point {
    double value, lo80, hi80, lo95, hi95;
};

enum dtm_fc_method { DTM_FC_HOLT_WINTERS, DTM_FC_SEASONAL_NAIVE };

struct dtm_forecast {
    size_t m, n, horizon;
    size_t folds, fold_h;   /* backtest: folds of fold_h points each, the last ones of the series */
    struct dtm_hw_model hw; /* fitted on the whole series */
    struct dtm_fc_score hw_score, sn_score;
    enum dtm_fc_method method;
};

/* Forecasts y[0..n) horizon steps ahead (points[0..horizon)): both methods backtested on a
 * rolling origin (the last `folds` windows of min(horizon, m) points, each method refitted on what
 * comes before), the one with the lower MASE answers (MAE when MASE is undefined; seasonal naive
 * on a tie: the simpler). Values and bounds are clamped to [lo, hi] (a count is never negative,
 * a rate stays in [0, 1]). DTM_OK, DTM_EINVAL (n < DTM_FC_MIN_SEASONS·m, a non-finite value,
 * horizon 0 or too large). */
int dtm_forecast_run(const double *y, size_t n, size_t m, size_t horizon, double lo, double hi,
                     struct dtm_forecast *f, struct dtm_fc_point *points);
const char *dtm_fc_method_name(enum dtm_fc_method m); /* "holt_winters" | "seasonal_naive" */
/* The season of an hourly series of n points: DTM_FC_SEASON_WEEK_HOURS when n holds
 * DTM_FC_MIN_SEASONS weeks, else DTM_FC_SEASON_HOUR (both methods use it). */
size_t dtm_fc_hour_season(size_t n);

/* ---- series (series.c) */

/* One group's series, as the callback of dtm_fc_history sees it: y[k][0..n) the values of metric
 * k of q, at bucket starts t0, t0 + step, …; count[0..n) the records of each bucket (NULL unless
 * the query's first metric is count). group: the group_by value ("" without group_by). */
struct dtm_fc_series {
    const char *group;
    size_t n;
    int64_t t0, step; /* µs */
    const double *y[DTM_STATS_MAX_METRICS];
    size_t nmetrics;
};
typedef int (*dtm_fc_series_cb)(void *ctx, const struct dtm_fc_series *s);

/* Runs q (interval hour or day, at most one group_by field) over the buckets [from, to) (bucket
 * starts) and calls cb once per group that has records, with its series from its first bucket
 * with records to the end (missing buckets: 0 for count and sum, the previous value otherwise).
 * DTM_OK, the query's error, or cb's. */
int dtm_fc_history(struct dtm_store *st, struct dtm_query *q, int64_t from, int64_t to,
                   dtm_fc_series_cb cb, void *ctx);
/* The bucket step of an interval in µs (UTC+07:00 has no daylight saving time). */
int64_t dtm_fc_step(enum dtm_interval iv);

/* ---- the anomaly check (anomaly.c) */

struct dtm_alerts;
#define DTM_ANOMALY_WINDOW 24 /* closed hours compared with the forecast band */
#define DTM_ANOMALY_RULE_COUNT "anomaly.transactions"
#define DTM_ANOMALY_RULE_RATE "anomaly.error_rate"

/* What one check found (for tests and logs). */
struct dtm_anomaly_stats {
    int64_t systems, raised, cleared;
};
/* The alerts this node raised and has not cleared: the alert engine stores a raise a moment
 * after it is queued, so the next check may not see it open yet — it must not raise it again. */
#define DTM_ANOMALY_MEMO 256
struct dtm_anomaly_memo {
    size_t n;
    struct {
        char rule[32], key[64];
    } e[DTM_ANOMALY_MEMO];
};
/* One check at time now on st: per system of the transactions dataset, hourly transactions and
 * failed share over [anomaly] history_days before the window, forecast over the window of the
 * last DTM_ANOMALY_WINDOW closed hours; a run of at least [anomaly] consecutive hours outside the
 * 95 % band that ends at the last closed hour raises DTM_ANOMALY_RULE_* (key: the system code)
 * once per episode; the last closed hour inside the band clears it. */
int dtm_anomaly_check(struct dtm_store *st, const struct dtm_conf *c, const struct dtm_dict *dict,
                      struct dtm_alerts *alerts, struct dtm_anomaly_memo *memo, int64_t now,
                      struct dtm_anomaly_stats *out);

/* The job of `dtm serve`: a thread running the check every [anomaly] check_interval seconds, on
 * the clock's multiples of it plus a tenth of it (at most 2 minutes: hourly checks at hh:02), on
 * its own store connection; when several nodes share a store, one of them runs each round (a
 * claim in the store). */
struct dtm_anomaly_job;
int dtm_anomaly_start(const struct dtm_conf *const *conf, const struct dtm_dict *dict,
                      struct dtm_alerts *alerts, struct dtm_anomaly_job **out, char *err,
                      size_t errsz);
void dtm_anomaly_stop(struct dtm_anomaly_job *j); /* and frees; NULL is fine */

#endif
