/* api/forecast.c — GET /api/v1/forecast/{dataset} (CONTRACT §6, F7): parameters → the history
 * from stats/ (forecast/series.c) → the season (a week: 7 days; 168 hours when the hourly history
 * holds three weeks, else 24) → Holt-Winters and seasonal naive backtested, the better one
 * answering (forecast/holtwinters.c) → the history, the points with 80 % and 95 % bounds, both
 * methods' backtest errors and a sentence in the caller's language saying how the numbers were
 * made. Who may ask what is the statistics API's rule (dtm_api_scope): a source sees its own
 * system's series only, a consumer the datasets it is granted. */
#include "api/api.h"
#include "forecast/forecast.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_HISTORY_DAY 365 /* buckets of history asked by default: a year of days … */
/* … three weeks of hours, the least that gives the weekly season (hours older than the rollups'
 * hour rows are counted from the records: on the demo's million records 1.3 s, 0.5 s for one
 * week) */
#define DEFAULT_HISTORY_HOUR (DTM_FC_MIN_SEASONS * DTM_FC_SEASON_WEEK_HOURS)

struct fc_ctx {
    bool got;
    size_t n;
    double *y; /* malloc'd copy */
    int64_t t0;
    int rc;
};

static int take_series(void *ctx, const struct dtm_fc_series *s)
{
    struct fc_ctx *c = ctx;
    if (c->got)
        return DTM_OK;
    c->got = true;
    c->n = s->n;
    c->t0 = s->t0;
    if (!(c->y = malloc((s->n ? s->n : 1) * sizeof(double))))
        return DTM_ENOMEM;
    memcpy(c->y, s->y[0], s->n * sizeof(double));
    return DTM_OK;
}

/* A positive integer parameter in [lo, hi]; false after answering 400 naming it. */
static bool int_param(struct dtm_req *r, const char *name, int64_t lo, int64_t hi, int64_t *out)
{
    const char *v = dtm_http_query(r, name);
    int64_t x;
    if (!v)
        return true;
    if (dtm_str_to_i64(dtm_str_c(v), &x) || x < lo || x > hi) {
        dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                         "Parameter '%s' must be a whole number from %lld to %lld.", name,
                         (long long)lo, (long long)hi);
        return false;
    }
    *out = x;
    return true;
}

static void num(struct dtm_buf *b, double v)
{
    dtm_buf_printf(b, "%.10g", v);
}

static void score_json(struct dtm_buf *b, const struct dtm_fc_score *s)
{
    dtm_buf_addc(b, "\"mape\":");
    if (s->mape_ok)
        num(b, s->mape);
    else
        dtm_buf_addc(b, "null");
    dtm_buf_addc(b, ",\"mase\":");
    if (s->mase_ok)
        num(b, s->mase);
    else
        dtm_buf_addc(b, "null");
    dtm_buf_addc(b, ",\"mae\":");
    num(b, s->mae);
}

static void time_label(struct dtm_buf *b, int64_t t)
{
    char s[40];
    dtm_time_fmt(t, s, sizeof(s));
    dtm_buf_json_strc(b, s);
}

/* Why the season has its length: "weekly" (a daily series, or an hourly one with three weeks of
 * history), "daily_short_history" (an hourly one with less). */
static const char *season_reason(bool hourly, size_t m)
{
    return hourly && m != DTM_FC_SEASON_WEEK_HOURS ? "daily_short_history" : "weekly";
}

/* The sentence that says how the answer was made (every number explainable). */
static void explain(struct dtm_buf *b, enum dtm_lang lang, const struct dtm_forecast *f,
                    bool hourly)
{
    const char *unit = dtm_tr(lang, hourly ? "hours" : "days");
    bool mase = f->hw_score.mase_ok && f->sn_score.mase_ok;
    const char *what = mase ? "MASE" : "MAE";
    double hw = mase ? f->hw_score.mase : f->hw_score.mae;
    double sn = mase ? f->sn_score.mase : f->sn_score.mae;
    if (f->method == DTM_FC_HOLT_WINTERS)
        dtm_buf_trf(b, lang,
                    "Holt-Winters with additive trend and additive seasonality of %zu %s "
                    "(alpha %.3f, beta %.3f, gamma %.3f, fitted by minimising the one-step squared "
                    "error) over %zu %s of history; chosen over seasonal naive for its lower "
                    "backtest %s (%.3f against %.3f; %zu rolling-origin folds of %zu %s). The "
                    "bands are 80 %% and 95 %% prediction intervals from the one-step error "
                    "variance grown with the horizon.",
                    f->m, unit, f->hw.alpha, f->hw.beta, f->hw.gamma, f->n, unit, what, hw, sn,
                    f->folds, f->fold_h, unit);
    else
        dtm_buf_trf(b, lang,
                    "Seasonal naive (each point repeats the value one season of %zu %s before) "
                    "over %zu %s of history; chosen over Holt-Winters because its backtest %s is "
                    "not higher (%.3f against %.3f; %zu rolling-origin folds of %zu %s). The bands "
                    "are 80 %% and 95 %% prediction intervals from the spread of the seasonal "
                    "differences, grown with the seasons ahead.",
                    f->m, unit, f->n, unit, what, sn, hw, f->folds, f->fold_h, unit);
    if (hourly && f->m == DTM_FC_SEASON_WEEK_HOURS)
        dtm_buf_trf(b, lang,
                    " The season is the week (%d hours): the history holds at least %d hours "
                    "(three weeks).",
                    DTM_FC_SEASON_WEEK_HOURS, DTM_FC_MIN_SEASONS * DTM_FC_SEASON_WEEK_HOURS);
    else if (hourly)
        dtm_buf_trf(b, lang,
                    " The season is the day (%d hours), not the week: a weekly season of %d hours "
                    "needs at least %d hours of history (three weeks) and this series has %zu "
                    "(ask for more with the history parameter).",
                    DTM_FC_SEASON_HOUR, DTM_FC_SEASON_WEEK_HOURS,
                    DTM_FC_MIN_SEASONS * DTM_FC_SEASON_WEEK_HOURS, f->n);
}

int dtm_api_forecast(struct dtm_req *r)
{
    const struct dtm_dataset *ds = dtm_api_dataset(r);
    struct dtm_store *st = dtm_http_store(r);
    const char *wheres[DTM_STATS_MAX_WHERE + 1];
    const char *metric = dtm_http_query(r, "metric"), *iv = dtm_http_query(r, "interval");
    const char *bad = NULL;
    char err[512];
    struct dtm_query *q = dtm_arena_alloc(&r->arena, sizeof(*q));
    struct dtm_fc_point *pts = NULL;
    struct dtm_forecast f;
    struct fc_ctx c = {0};
    struct dtm_buf b;
    size_t nwheres, m;
    int64_t horizon, history, step, end;
    bool hourly;
    double lo = -INFINITY, hi = INFINITY;
    int rc;

    if (!ds)
        return DTM_OK; /* answered 404 */
    if (!st)
        return DTM_ESTORE;
    if (!q)
        return DTM_ENOMEM;
    if (!metric || !*metric)
        metric = "count";
    if (!iv)
        iv = "day";
    if (strcmp(iv, "day") && strcmp(iv, "hour"))
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "Parameter 'interval' must be day or hour.");
    hourly = !strcmp(iv, "hour");
    /* hourly: the daily season until the history is read (it sets the least history asked); the
     * weekly one when the history holds three weeks (dtm_fc_hour_season) */
    m = hourly ? DTM_FC_SEASON_HOUR : DTM_FC_SEASON_DAY;
    if (strchr(metric, ','))
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "Parameter 'metric' takes one metric (count, sum:F, avg:F, min:F, "
                                "max:F, p50:F, p95:F, p99:F or rate:F=V).");
    horizon = hourly ? 2 * DTM_FC_SEASON_HOUR : 2 * DTM_FC_SEASON_DAY;
    history = hourly ? DEFAULT_HISTORY_HOUR : DEFAULT_HISTORY_DAY;
    if (!int_param(r, "horizon", 1, DTM_FC_MAX_HORIZON, &horizon) ||
        !int_param(r, "history", (int64_t)(DTM_FC_MIN_SEASONS * m), DTM_FC_MAX_HISTORY, &history))
        return DTM_OK;
    nwheres = dtm_http_query_all(r, "where", wheres, DTM_ARRAY_LEN(wheres));
    if (nwheres > DTM_STATS_MAX_WHERE)
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "At most %d where conditions.", DTM_STATS_MAX_WHERE);
    if (dtm_query_parse(ds, metric, NULL, iv, NULL, NULL, wheres, nwheres, q, &bad, err,
                        sizeof(err)))
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter", "Parameter '%s': %s",
                                !strcmp(bad, "metrics") ? "metric" : bad, err);
    {
        struct dtm_api_scope *sc = dtm_arena_alloc(&r->arena, sizeof(*sc));
        if (!sc)
            return DTM_ENOMEM;
        if ((rc = dtm_api_scope(r, st, ds, sc)))
            return r->responded ? DTM_OK : rc;
        if (ds->system_field >= 0 && !sc->all &&
            dtm_query_restrict(q, ds->system_field, sc->ptrs, sc->n))
            return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                    "Too many child systems or conditions for one query.");
    }
    if (q->metrics[0].kind == DTM_M_COUNT)
        lo = 0;
    else if (q->metrics[0].kind == DTM_M_RATE) {
        lo = 0;
        hi = 1;
    }
    /* the history ends where the current (unfinished) bucket begins */
    step = dtm_fc_step(q->interval);
    end = dtm_bucket_start(q->interval, dtm_now_us());
    rc = dtm_fc_history(st, q, end - history * step, end, take_series, &c);
    if (rc)
        goto out;
    if (c.n < DTM_FC_MIN_SEASONS * m) {
        rc = dtm_http_problem(
            r, 422, "insufficient_history", "Too little history",
            hourly ? "A forecast by hour needs at least %zu hours of history from the first hour "
                     "with records (three daily seasons); this series has %zu."
                   : "A forecast by day needs at least %zu days of history from the first day "
                     "with records (three weekly seasons); this series has %zu.",
            DTM_FC_MIN_SEASONS * m, c.n);
        goto out;
    }
    if (hourly)
        m = dtm_fc_hour_season(c.n);
    if (!(pts = malloc((size_t)horizon * sizeof(*pts)))) {
        rc = DTM_ENOMEM;
        goto out;
    }
    if ((rc = dtm_forecast_run(c.y, c.n, m, (size_t)horizon, lo, hi, &f, pts)))
        goto out;
    dtm_buf_init(&b, 16 << 20);
    dtm_buf_addc(&b, "{\"dataset\":");
    dtm_buf_json_strc(&b, ds->code);
    dtm_buf_addc(&b, ",\"metric\":");
    dtm_buf_json_strc(&b, q->metrics[0].name);
    dtm_buf_printf(&b,
                   ",\"interval\":\"%s\",\"season\":%zu,\"season_reason\":\"%s\",\"horizon\":%lld,"
                   "\"method\":\"%s\"",
                   iv, m, season_reason(hourly, m), (long long)horizon,
                   dtm_fc_method_name(f.method));
    dtm_buf_addc(&b, ",\"methods\":{\"holt_winters\":{\"alpha\":");
    num(&b, f.hw.alpha);
    dtm_buf_addc(&b, ",\"beta\":");
    num(&b, f.hw.beta);
    dtm_buf_addc(&b, ",\"gamma\":");
    num(&b, f.hw.gamma);
    dtm_buf_addch(&b, ',');
    score_json(&b, &f.hw_score);
    dtm_buf_addc(&b, "},\"seasonal_naive\":{");
    score_json(&b, &f.sn_score);
    dtm_buf_printf(&b, "}},\"backtest\":{\"folds\":%zu,\"points_per_fold\":%zu}", f.folds,
                   f.fold_h);
    dtm_buf_addc(&b, ",\"history\":[");
    for (size_t i = 0; i < c.n; i++) {
        dtm_buf_addc(&b, i ? ",{\"t\":" : "{\"t\":");
        time_label(&b, c.t0 + (int64_t)i * step);
        dtm_buf_addc(&b, ",\"value\":");
        num(&b, c.y[i]);
        dtm_buf_addch(&b, '}');
    }
    dtm_buf_addc(&b, "],\"points\":[");
    for (int64_t h = 0; h < horizon; h++) {
        const struct dtm_fc_point *p = &pts[h];
        dtm_buf_addc(&b, h ? ",{\"t\":" : "{\"t\":");
        time_label(&b, end + h * step);
        dtm_buf_addc(&b, ",\"value\":");
        num(&b, p->value);
        dtm_buf_addc(&b, ",\"lo80\":");
        num(&b, p->lo80);
        dtm_buf_addc(&b, ",\"hi80\":");
        num(&b, p->hi80);
        dtm_buf_addc(&b, ",\"lo95\":");
        num(&b, p->lo95);
        dtm_buf_addc(&b, ",\"hi95\":");
        num(&b, p->hi95);
        dtm_buf_addch(&b, '}');
    }
    dtm_buf_addc(&b, "],\"explain\":");
    {
        struct dtm_buf e;
        dtm_buf_init(&e, 4096);
        explain(&e, r->lang, &f, hourly);
        dtm_buf_json_strc(&b, e.p ? e.p : "");
        dtm_buf_free(&e);
    }
    dtm_buf_addc(&b, "}\n");
    rc = b.err ? b.err : dtm_http_json(r, 200, &b);
    dtm_buf_free(&b);
out:
    free(pts);
    free(c.y);
    return rc;
}
