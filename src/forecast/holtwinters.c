/* forecast/holtwinters.c — F7: the maths of the forecasts, written here because it is small and
 * no Debian library offers it in C: Holt-Winters with additive trend and additive seasonality
 * (the component form of Hyndman & Athanasopoulos, "Forecasting: principles and practice",
 * §8.3, with the classic seasonal equation s_t = γ(y_t − ℓ_t) + (1 − γ)s_{t−m}), its parameters
 * fitted by minimising the sum of squared one-step errors (a fixed grid, then Nelder–Mead,
 * clamped to the bounds: deterministic, and bounded at DTM_FC_GRID_EVALS + DTM_FC_NM_EVALS passes
 * over the series); the seasonal-naive baseline; prediction intervals from the one-step error
 * variance grown with the horizon (the additive model's variance formula, ETS(A,A,A), with
 * β_ets = αβ and γ_ets = γ(1 − α)); and the rolling-origin backtest that picks the method. */
#include "forecast/forecast.h"

#include <float.h>
#include <math.h>
#include <string.h>

#define Z80 1.2815515655446004 /* the normal quantiles of 90 % and 97.5 % */
#define Z95 1.959963984540054

static bool finite_all(const double *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(y[i]))
            return false;
    return true;
}

/* The state before the second season: the level at the end of the first season, the trend from
 * the difference of the first two seasons' means, the seasonal components as the average
 * detrended deviation of the two seasons, normalised to sum 0. */
static void hw_init(const double *y, size_t m, double *level, double *trend, double *s)
{
    double m1 = 0, m2 = 0, b, mean = 0, mid = ((double)m - 1) / 2;
    for (size_t i = 0; i < m; i++) {
        m1 += y[i];
        m2 += y[m + i];
    }
    m1 /= (double)m;
    m2 /= (double)m;
    b = (m2 - m1) / (double)m;
    for (size_t i = 0; i < m; i++) {
        double d = (double)i - mid;
        s[i] = ((y[i] - (m1 + b * d)) + (y[m + i] - (m2 + b * d))) / 2;
        mean += s[i];
    }
    mean /= (double)m;
    for (size_t i = 0; i < m; i++)
        s[i] -= mean;
    *level = m1 + b * mid;
    *trend = b;
}

double dtm_hw_run(const double *y, size_t n, size_t m, double alpha, double beta, double gamma,
                  struct dtm_hw_model *out)
{
    double l, b, sse = 0;
    size_t cnt = 0;
    memset(out, 0, sizeof(*out));
    out->m = m;
    out->n = n;
    out->alpha = alpha;
    out->beta = beta;
    out->gamma = gamma;
    if (m < 2 || m > DTM_FC_MAX_SEASON || n < 2 * m)
        return INFINITY;
    hw_init(y, m, &l, &b, out->season);
    for (size_t t = m; t < n; t++) {
        double *s = &out->season[t % m];
        double e = y[t] - (l + b + *s), ln;
        ln = alpha * (y[t] - *s) + (1 - alpha) * (l + b);
        b = beta * (ln - l) + (1 - beta) * b;
        *s = gamma * (y[t] - ln) + (1 - gamma) * *s;
        l = ln;
        sse += e * e;
        cnt++;
    }
    out->level = l;
    out->trend = b;
    out->sse = sse;
    out->sigma2 = cnt ? sse / (double)cnt : 0;
    if (!isfinite(sse) || !isfinite(l) || !isfinite(b))
        return INFINITY;
    return sse;
}

double dtm_hw_point(const struct dtm_hw_model *md, size_t h)
{
    return md->level + (double)h * md->trend + md->season[(md->n - 1 + h) % md->m];
}

double dtm_hw_sd(const struct dtm_hw_model *md, size_t h)
{
    double v = 1;
    for (size_t j = 1; j < h; j++) {
        double c = md->alpha * (1 + (double)j * md->beta) +
                   (j % md->m == 0 ? md->gamma * (1 - md->alpha) : 0);
        v += c * c;
    }
    return sqrt(md->sigma2 * v);
}

/* ---- the fit */

static const double lo_b[3] = {0.01, 0, 0}, hi_b[3] = {1, 1, 1};

struct objective {
    const double *y;
    size_t n, m;
    struct dtm_hw_model tmp;
};

static double clampd(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static double eval(struct objective *o, double p[3])
{
    for (int i = 0; i < 3; i++)
        p[i] = clampd(p[i], lo_b[i], hi_b[i]);
    double f = dtm_hw_run(o->y, o->n, o->m, p[0], p[1], p[2], &o->tmp);
    return isfinite(f) ? f : DBL_MAX;
}

/* Nelder–Mead (reflection 1, expansion 2, contraction ½, shrink ½) from x, each vertex clamped
 * to the bounds; at most `budget` evaluations. x and *fx: in, the start; out, the best. */
static void nelder_mead(struct objective *o, double x[3], double *fx, int budget)
{
    double v[4][3], f[4];
    int evals = 0;
    for (int i = 0; i < 4; i++) {
        memcpy(v[i], x, sizeof(v[i]));
        if (i > 0) {
            double step = 0.1;
            v[i][i - 1] += v[i][i - 1] + step > hi_b[i - 1] ? -step : step;
        }
        f[i] = i == 0 ? *fx : eval(o, v[i]);
        evals += i > 0;
    }
    while (evals < budget) {
        double c[3] = {0, 0, 0}, r[3], fr;
        int hi = 0, lo = 0, nh = 0;
        /* order: best lo, worst hi, second worst nh (ties: the lower index, deterministic) */
        for (int i = 1; i < 4; i++) {
            if (f[i] < f[lo])
                lo = i;
            if (f[i] > f[hi])
                hi = i;
        }
        nh = lo;
        for (int i = 0; i < 4; i++)
            if (i != hi && f[i] >= f[nh])
                nh = i;
        if (f[hi] - f[lo] <= 1e-12 * (fabs(f[lo]) + 1e-12))
            break;
        for (int i = 0; i < 4; i++)
            if (i != hi)
                for (int k = 0; k < 3; k++)
                    c[k] += v[i][k] / 3;
        for (int k = 0; k < 3; k++)
            r[k] = c[k] + (c[k] - v[hi][k]);
        fr = eval(o, r);
        evals++;
        if (fr < f[lo]) {
            double e[3], fe;
            for (int k = 0; k < 3; k++)
                e[k] = c[k] + 2 * (c[k] - v[hi][k]);
            fe = eval(o, e);
            evals++;
            if (fe < fr) {
                memcpy(v[hi], e, sizeof(e));
                f[hi] = fe;
            } else {
                memcpy(v[hi], r, sizeof(r));
                f[hi] = fr;
            }
        } else if (fr < f[nh]) {
            memcpy(v[hi], r, sizeof(r));
            f[hi] = fr;
        } else {
            double k3[3], fk;
            bool outside = fr < f[hi];
            for (int k = 0; k < 3; k++)
                k3[k] = outside ? c[k] + 0.5 * (r[k] - c[k]) : c[k] + 0.5 * (v[hi][k] - c[k]);
            fk = eval(o, k3);
            evals++;
            if (fk < (outside ? fr : f[hi])) {
                memcpy(v[hi], k3, sizeof(k3));
                f[hi] = fk;
            } else {
                for (int i = 0; i < 4; i++) {
                    if (i == lo)
                        continue;
                    for (int k = 0; k < 3; k++)
                        v[i][k] = v[lo][k] + 0.5 * (v[i][k] - v[lo][k]);
                    f[i] = eval(o, v[i]);
                    evals++;
                }
            }
        }
    }
    for (int i = 0; i < 4; i++)
        if (f[i] < *fx) {
            *fx = f[i];
            memcpy(x, v[i], sizeof(v[i]));
        }
}

int dtm_hw_fit(const double *y, size_t n, size_t m, struct dtm_hw_model *out)
{
    static const double ga[] = {0.05, 0.2, 0.4, 0.6, 0.8, 0.95};
    static const double gb[] = {0, 0.05, 0.2, 0.5};
    static const double gg[] = {0, 0.1, 0.3, 0.6, 0.9};
    struct objective o = {y, n, m, {0}};
    double best[3] = {0.5, 0.05, 0.1}, fbest = DBL_MAX;
    if (m < 2 || m > DTM_FC_MAX_SEASON || n < 2 * m || !finite_all(y, n))
        return DTM_EINVAL;
    /* 6 × 4 × 5 = DTM_FC_GRID_EVALS points */
    for (size_t a = 0; a < DTM_ARRAY_LEN(ga); a++)
        for (size_t b = 0; b < DTM_ARRAY_LEN(gb); b++)
            for (size_t g = 0; g < DTM_ARRAY_LEN(gg); g++) {
                double p[3] = {ga[a], gb[b], gg[g]}, f = eval(&o, p);
                if (f < fbest) {
                    fbest = f;
                    memcpy(best, p, sizeof(p));
                }
            }
    nelder_mead(&o, best, &fbest, DTM_FC_NM_EVALS);
    dtm_hw_run(y, n, m, best[0], best[1], best[2], out);
    if (!isfinite(out->sse)) /* every candidate diverged: the plainest model */
        dtm_hw_run(y, n, m, 0.5, 0, 0, out);
    return DTM_OK;
}

/* ---- seasonal naive */

double dtm_snaive_point(const double *y, size_t n, size_t m, size_t h)
{
    return y[n - m + (h - 1) % m];
}

double dtm_snaive_sigma(const double *y, size_t n, size_t m)
{
    double s = 0;
    if (n <= m)
        return 0;
    for (size_t t = m; t < n; t++)
        s += (y[t] - y[t - m]) * (y[t] - y[t - m]);
    return sqrt(s / (double)(n - m));
}

double dtm_snaive_mae(const double *y, size_t n, size_t m)
{
    double s = 0;
    if (n <= m)
        return 0;
    for (size_t t = m; t < n; t++)
        s += fabs(y[t] - y[t - m]);
    return s / (double)(n - m);
}

/* ---- backtest and the answer */

struct acc {
    double ape, ae, mase;
    size_t nape, nae, nmase;
};

static void acc_fold(struct acc *a, const double *actual, const double *pred, size_t h,
                     double scale)
{
    double ae = 0;
    for (size_t i = 0; i < h; i++) {
        double e = fabs(actual[i] - pred[i]);
        ae += e;
        if (actual[i] != 0) {
            a->ape += e / fabs(actual[i]);
            a->nape++;
        }
    }
    a->ae += ae;
    a->nae += h;
    if (scale > 0) {
        a->mase += ae / (double)h / scale;
        a->nmase++;
    }
}

static void acc_score(const struct acc *a, struct dtm_fc_score *s)
{
    s->mape_ok = a->nape > 0;
    s->mape = s->mape_ok ? 100 * a->ape / (double)a->nape : 0;
    s->mase_ok = a->nmase > 0;
    s->mase = s->mase_ok ? a->mase / (double)a->nmase : 0;
    s->mae = a->nae ? a->ae / (double)a->nae : 0;
}

const char *dtm_fc_method_name(enum dtm_fc_method m)
{
    return m == DTM_FC_HOLT_WINTERS ? "holt_winters" : "seasonal_naive";
}

size_t dtm_fc_hour_season(size_t n)
{
    return n >= DTM_FC_MIN_SEASONS * DTM_FC_SEASON_WEEK_HOURS ? DTM_FC_SEASON_WEEK_HOURS
                                                              : DTM_FC_SEASON_HOUR;
}

int dtm_forecast_run(const double *y, size_t n, size_t m, size_t horizon, double lo, double hi,
                     struct dtm_forecast *f, struct dtm_fc_point *points)
{
    struct acc ahw = {0}, asn = {0};
    double pred_hw[DTM_FC_MAX_SEASON], pred_sn[DTM_FC_MAX_SEASON];
    struct dtm_hw_model fold;
    bool use_hw;
    memset(f, 0, sizeof(*f));
    if (m < 2 || m > DTM_FC_MAX_SEASON || n < DTM_FC_MIN_SEASONS * m || horizon == 0 ||
        horizon > DTM_FC_MAX_HORIZON || !finite_all(y, n))
        return DTM_EINVAL;
    f->m = m;
    f->n = n;
    f->horizon = horizon;
    f->fold_h = DTM_MIN(horizon, m);
    f->folds = DTM_MIN((size_t)DTM_FC_FOLDS, (n - 2 * m) / f->fold_h);
    /* rolling origin: fold i trains on y[0..n − (i+1)·h) and predicts the h points after */
    for (size_t i = 0; i < f->folds; i++) {
        size_t nt = n - (i + 1) * f->fold_h;
        double scale = dtm_snaive_mae(y, nt, m);
        if (dtm_hw_fit(y, nt, m, &fold))
            return DTM_EINVAL;
        for (size_t h = 1; h <= f->fold_h; h++) {
            pred_hw[h - 1] = clampd(dtm_hw_point(&fold, h), lo, hi);
            pred_sn[h - 1] = dtm_snaive_point(y, nt, m, h);
        }
        acc_fold(&ahw, y + nt, pred_hw, f->fold_h, scale);
        acc_fold(&asn, y + nt, pred_sn, f->fold_h, scale);
    }
    acc_score(&ahw, &f->hw_score);
    acc_score(&asn, &f->sn_score);
    if (f->hw_score.mase_ok && f->sn_score.mase_ok)
        use_hw = f->hw_score.mase < f->sn_score.mase;
    else
        use_hw = f->hw_score.mae < f->sn_score.mae;
    f->method = use_hw ? DTM_FC_HOLT_WINTERS : DTM_FC_SEASONAL_NAIVE;
    if (dtm_hw_fit(y, n, m, &f->hw))
        return DTM_EINVAL;
    {
        double sig_sn = dtm_snaive_sigma(y, n, m);
        for (size_t h = 1; h <= horizon; h++) {
            struct dtm_fc_point *p = &points[h - 1];
            double v, sd;
            if (use_hw) {
                v = dtm_hw_point(&f->hw, h);
                sd = dtm_hw_sd(&f->hw, h);
            } else {
                v = dtm_snaive_point(y, n, m, h);
                sd = sig_sn * sqrt((double)((h - 1) / m + 1));
            }
            if (!isfinite(v) || !isfinite(sd)) {
                v = dtm_snaive_point(y, n, m, h);
                sd = 0;
            }
            p->value = clampd(v, lo, hi);
            p->lo80 = clampd(v - Z80 * sd, lo, hi);
            p->hi80 = clampd(v + Z80 * sd, lo, hi);
            p->lo95 = clampd(v - Z95 * sd, lo, hi);
            p->hi95 = clampd(v + Z95 * sd, lo, hi);
        }
    }
    return DTM_OK;
}
