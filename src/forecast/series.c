/* forecast/series.c — the history of a forecast: one statistics query (stats/: daily series come
 * from the day rows of the rollups; hourly ones older than the rollups' hour rows from the
 * records) over whole buckets, its rows turned into one dense series per group. A bucket without
 * records counts 0 (count, sum); an average, rate, minimum, maximum or percentile has no value
 * there, and the previous bucket's value stands in for it. */
#include "forecast/forecast.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int64_t dtm_fc_step(enum dtm_interval iv)
{
    return iv == DTM_I_HOUR ? 3600 * 1000000LL : 86400 * 1000000LL;
}

/* The start of the bucket a result's period label names. */
static int label_start(enum dtm_interval iv, const char *label, int64_t *t)
{
    int64_t days;
    if (iv == DTM_I_HOUR)
        return dtm_time_parse(dtm_str_c(label), t);
    if (dtm_date_parse(dtm_str_c(label), &days))
        return DTM_EINVAL;
    *t = dtm_day_start(days);
    return DTM_OK;
}

static bool zero_filled(enum dtm_metric_kind k)
{
    return k == DTM_M_COUNT || k == DTM_M_SUM;
}

/* Hands one group's rows [r0, r1) to cb. */
static int one_group(const struct dtm_query *q, const struct dtm_result *res, size_t r0, size_t r1,
                     int64_t from, size_t nb, double *buf, bool *seen, dtm_fc_series_cb cb,
                     void *ctx)
{
    size_t pcol = q->ngroup, first = nb;
    int64_t step = dtm_fc_step(q->interval);
    struct dtm_fc_series s = {0};
    for (size_t k = 0; k < q->nmetrics; k++)
        for (size_t i = 0; i < nb; i++)
            buf[k * nb + i] = NAN;
    memset(seen, 0, nb * sizeof(bool));
    for (size_t r = r0; r < r1; r++) {
        int64_t t;
        size_t i;
        if (!res->rows[r][pcol] || label_start(q->interval, res->rows[r][pcol], &t) || t < from)
            continue;
        i = (size_t)((t - from) / step);
        if (i >= nb)
            continue;
        seen[i] = true;
        if (i < first)
            first = i;
        for (size_t k = 0; k < q->nmetrics; k++) {
            const char *cell = res->rows[r][pcol + 1 + k];
            char *end;
            double v;
            if (!cell)
                continue;
            v = strtod(cell, &end);
            if (*end == '\0' && isfinite(v))
                buf[k * nb + i] = v;
        }
    }
    if (first == nb)
        return DTM_OK; /* no records: no series */
    for (size_t k = 0; k < q->nmetrics; k++) {
        double *y = buf + k * nb, prev = NAN;
        bool zero = zero_filled(q->metrics[k].kind);
        /* before the first value of a metric that has no value where there are records (an
         * average of a measure never given): its first value, else 0 */
        for (size_t i = first; i < nb && isnan(prev); i++)
            if (!isnan(y[i]))
                prev = y[i];
        if (isnan(prev))
            prev = 0;
        for (size_t i = first; i < nb; i++) {
            if (isnan(y[i]))
                y[i] = zero && !seen[i] ? 0 : prev;
            prev = y[i];
        }
        s.y[k] = y + first;
    }
    s.group = q->ngroup ? (res->rows[r0][0] ? res->rows[r0][0] : "") : "";
    s.n = nb - first;
    s.t0 = from + (int64_t)first * step;
    s.step = step;
    s.nmetrics = q->nmetrics;
    return cb(ctx, &s);
}

int dtm_fc_history(struct dtm_store *st, struct dtm_query *q, int64_t from, int64_t to,
                   dtm_fc_series_cb cb, void *ctx)
{
    struct dtm_result res;
    int64_t step = dtm_fc_step(q->interval);
    size_t nb, r0 = 0;
    double *buf = NULL;
    bool *seen = NULL;
    int rc;
    if ((q->interval != DTM_I_HOUR && q->interval != DTM_I_DAY) || q->ngroup > 1 || to <= from ||
        (to - from) / step > DTM_FC_MAX_HISTORY)
        return DTM_EINVAL;
    nb = (size_t)((to - from) / step);
    q->from = from;
    q->to = to;
    if ((rc = dtm_query_run(st, q, &res)))
        return rc;
    buf = malloc(nb * q->nmetrics * sizeof(double));
    seen = malloc(nb * sizeof(bool));
    if (!buf || !seen) {
        rc = DTM_ENOMEM;
        goto out;
    }
    /* rows come sorted by the group's value, then by bucket */
    while (r0 < res.nrows) {
        size_t r1 = r0 + 1;
        if (q->ngroup)
            while (r1 < res.nrows && ((!res.rows[r1][0] && !res.rows[r0][0]) ||
                                      (res.rows[r1][0] && res.rows[r0][0] &&
                                       !strcmp(res.rows[r1][0], res.rows[r0][0]))))
                r1++;
        else
            r1 = res.nrows;
        if ((rc = one_group(q, &res, r0, r1, from, nb, buf, seen, cb, ctx)))
            goto out;
        r0 = r1;
    }
out:
    free(buf);
    free(seen);
    dtm_result_free(&res);
    return rc;
}
