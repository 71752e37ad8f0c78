/* forecast/anomaly.c — anomaly detection on series (issue 7 item 6; early detection of
 * bottlenecks and disruptions): every [anomaly] check_interval seconds `dtm serve` reads, in one
 * statistics query over the records, each system's transactions per hour and failed share
 * (rate:status=failed) over [anomaly] history_days days and the window of the last
 * DTM_ANOMALY_WINDOW closed hours. Each series' forecast (forecast/holtwinters.c: the method with
 * the lower backtest MASE) is fitted on the hours before the window and forecasts the window; a
 * run of at least [anomaly] consecutive hours outside the 95 % band that ends at the last closed
 * hour raises one alert (alert/alert.h), rule anomaly.transactions or anomaly.error_rate, key the
 * system code, with the observed and expected values and the band; the last closed hour back
 * inside clears it. One episode raises one alert: none is raised while one is open (firing or
 * acknowledged), nor again when a person resolved the episode's alert (resolved after the run
 * began). An hour's error rate is compared only when it had [anomaly] min_transactions
 * transactions (a rate of three transactions says little). With several nodes on one store, each
 * round is claimed in the store (job_claim) and one node runs it. */
#include "forecast/forecast.h"
#include "alert/alert.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define H_US (3600 * 1000000LL)
#define DETAIL_HOURS 6 /* hours of the run described in an alert's detail, the last ones */

struct check {
    struct dtm_store *st;
    const struct dtm_conf *c;
    struct dtm_alerts *alerts;
    size_t window;
    bool has_rate;
    struct dtm_anomaly_memo *memo;
    struct dtm_anomaly_stats *out;
};

/* The memo's entry of rule and key, or -1. */
static long memo_find(const struct dtm_anomaly_memo *m, const char *rule, const char *key)
{
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->e[i].rule, rule) && !strcmp(m->e[i].key, key))
            return (long)i;
    return -1;
}

/* Whether a person resolved an alert of rule for system at or after `since` (the episode's
 * alert was dealt with: not raised again). */
struct resolved_find {
    const char *system;
    int64_t since;
    bool found;
    int seen;
};

static int resolved_one(void *ctx, const struct dtm_alert *a)
{
    struct resolved_find *f = ctx;
    if (!strcmp(a->key, f->system) && a->resolved_by[0] && a->resolved_at >= f->since) {
        f->found = true;
        return 1;
    }
    return ++f->seen >= 200 ? 1 : DTM_OK;
}

static bool resolved_by_person(struct dtm_store *st, const char *rule, const char *system,
                               int64_t since)
{
    struct dtm_alert_filter flt = {"resolved", NULL, rule, since, INT64_MAX};
    struct resolved_find f = {system, since, false, 0};
    if (st->ops->alert_list(st, &flt, 0, 200, resolved_one, &f) < 0)
        return true; /* unsure: do not raise twice */
    return f.found;
}

static void json_num(struct dtm_buf *b, const char *name, double v)
{
    dtm_buf_printf(b, ",\"%s\":%.6g", name, v);
}

/* One metric of one system: forecast the window, find the run of outside hours at its end. */
static int one_metric(struct check *k, const struct dtm_fc_series *s, size_t metric,
                      const double *count)
{
    const char *rule = metric ? DTM_ANOMALY_RULE_RATE : DTM_ANOMALY_RULE_COUNT;
    const double *y = s->y[metric];
    size_t nh = s->n - k->window, run = 0, need = (size_t)k->c->anomaly_consecutive;
    struct dtm_fc_point pts[DTM_ANOMALY_WINDOW];
    struct dtm_forecast f;
    struct dtm_alert open;
    bool outside[DTM_ANOMALY_WINDOW];
    long mi;
    int rc;
    /* The season: the same rule as GET /api/v1/forecast (dtm_fc_hour_season) — the week of 168
     * hours when the hours before the window hold three weeks ([anomaly] history_days ≥ 21), so
     * that a quiet weekend is expected rather than flagged; else the day of 24 hours (as with the
     * default 14 days), the weekly swing then only moving the level the model follows. */
    if ((rc = dtm_forecast_run(y, nh, dtm_fc_hour_season(nh), k->window, 0, metric ? 1 : INFINITY,
                               &f, pts)))
        return rc == DTM_EINVAL ? DTM_OK : rc;
    for (size_t i = 0; i < k->window; i++) {
        double v = y[nh + i];
        outside[i] = (v < pts[i].lo95 || v > pts[i].hi95) &&
                     (!metric || count[nh + i] >= (double)k->c->anomaly_min_transactions);
    }
    while (run < k->window && outside[k->window - 1 - run])
        run++;
    rc = k->st->ops->alert_open(k->st, rule, s->group, &open);
    if (rc && rc != DTM_ENOTFOUND)
        return rc;
    mi = memo_find(k->memo, rule, s->group);
    if (run == 0 && (rc == DTM_OK || mi >= 0)) {
        dtm_alert_clear(k->alerts, rule, s->group);
        if (mi >= 0) /* forgotten: the last entry takes its place */
            k->memo->e[mi] = k->memo->e[--k->memo->n];
        k->out->cleared++;
        return DTM_OK;
    }
    if (run < need || rc == DTM_OK || mi >= 0)
        return DTM_OK; /* not (yet) an anomaly, or its alert is open: one per episode */
    {
        size_t first = k->window - run, last = k->window - 1;
        int64_t since = s->t0 + (int64_t)(nh + first) * s->step;
        char title[256], t[40];
        struct dtm_buf d;
        if (resolved_by_person(k->st, rule, s->group, since))
            return DTM_OK;
        dtm_buf_init(&d, DTM_ALERT_DETAIL_MAX - 1);
        dtm_buf_addc(&d, "{\"system\":");
        dtm_buf_json_strc(&d, s->group);
        dtm_buf_printf(&d, ",\"dataset\":\"transactions\",\"metric\":\"%s\",\"hours\":%zu",
                       metric ? "rate:status=failed" : "count", run);
        dtm_time_fmt(since, t, sizeof(t));
        dtm_buf_printf(&d, ",\"since\":\"%s\",\"method\":\"%s\"", t, dtm_fc_method_name(f.method));
        json_num(&d, "observed", y[nh + last]);
        json_num(&d, "expected", pts[last].value);
        json_num(&d, "lo95", pts[last].lo95);
        json_num(&d, "hi95", pts[last].hi95);
        dtm_buf_addc(&d, ",\"window\":[");
        for (size_t i = run > DETAIL_HOURS ? last + 1 - DETAIL_HOURS : first; i <= last; i++) {
            dtm_time_fmt(s->t0 + (int64_t)(nh + i) * s->step, t, sizeof(t));
            dtm_buf_printf(&d, "%s{\"t\":\"%s\"", d.p[d.n - 1] == '[' ? "" : ",", t);
            json_num(&d, "observed", y[nh + i]);
            json_num(&d, "expected", pts[i].value);
            json_num(&d, "lo95", pts[i].lo95);
            json_num(&d, "hi95", pts[i].hi95);
            dtm_buf_addch(&d, '}');
        }
        dtm_buf_addc(&d, "]}");
        snprintf(title, sizeof(title),
                 "%s of system %s outside the forecast band for %zu hours (observed %.4g, "
                 "expected %.4g, 95 %% band %.4g to %.4g)",
                 metric ? "Error rate" : "Transactions per hour", s->group, run, y[nh + last],
                 pts[last].value, pts[last].lo95, pts[last].hi95);
        rc = d.err ? d.err
                   : dtm_alert_raise(k->alerts, rule, s->group, DTM_ALERT_WARNING, title, d.p);
        dtm_buf_free(&d);
        if (rc == DTM_OK) {
            k->out->raised++;
            if (k->memo->n < DTM_ANOMALY_MEMO && strlen(s->group) < sizeof(k->memo->e[0].key)) {
                snprintf(k->memo->e[k->memo->n].rule, sizeof(k->memo->e[0].rule), "%s", rule);
                snprintf(k->memo->e[k->memo->n].key, sizeof(k->memo->e[0].key), "%s", s->group);
                k->memo->n++;
            }
        }
        return rc == DTM_EBUSY ? DTM_OK : rc;
    }
}

static int one_system(void *ctx, const struct dtm_fc_series *s)
{
    struct check *k = ctx;
    size_t min = (size_t)DTM_MAX(k->c->anomaly_min_history_days * 24,
                                 (int64_t)(DTM_FC_MIN_SEASONS * DTM_FC_SEASON_HOUR));
    int rc;
    if (!s->group[0] || s->n < k->window + min)
        return DTM_OK; /* too little history before the window */
    k->out->systems++;
    if ((rc = one_metric(k, s, 0, s->y[0])))
        return rc;
    return k->has_rate ? one_metric(k, s, 1, s->y[0]) : DTM_OK;
}

int dtm_anomaly_check(struct dtm_store *st, const struct dtm_conf *c, const struct dtm_dict *dict,
                      struct dtm_alerts *alerts, struct dtm_anomaly_memo *memo, int64_t now,
                      struct dtm_anomaly_stats *out)
{
    const struct dtm_dataset *ds = dtm_dict_get(dict, DTM_STR("transactions"));
    struct dtm_query *q;
    struct dtm_anomaly_memo none = {0};
    struct check k = {st, c, alerts, DTM_ANOMALY_WINDOW, true, memo ? memo : &none, out};
    const char *bad = NULL;
    char err[256];
    int64_t end = dtm_bucket_start(DTM_I_HOUR, now), days;
    int rc;
    memset(out, 0, sizeof(*out));
    if (!ds || ds->system_field < 0 || ds->time_field < 0)
        return DTM_OK;
    if (!(q = malloc(sizeof(*q))))
        return DTM_ENOMEM;
    /* the failed share, when the dataset has the transactions' status field */
    if (dtm_query_parse(ds, "count,rate:status=failed", ds->fields[ds->system_field].name, "hour",
                        NULL, NULL, NULL, 0, q, &bad, err, sizeof(err))) {
        k.has_rate = false;
        if ((rc = dtm_query_parse(ds, "count", ds->fields[ds->system_field].name, "hour", NULL,
                                  NULL, NULL, 0, q, &bad, err, sizeof(err))))
            goto out;
    }
    days = DTM_MAX(c->anomaly_history_days, c->anomaly_min_history_days);
    rc = dtm_fc_history(st, q, end - (days * 24 + DTM_ANOMALY_WINDOW) * H_US, end, one_system, &k);
out:
    free(q);
    return rc;
}

/* ---- the job of `dtm serve` */

struct dtm_anomaly_job {
    const struct dtm_conf *const *conf;
    const struct dtm_dict *dict;
    struct dtm_alerts *alerts;
    struct dtm_store *st;
    char owner[96];
    struct dtm_anomaly_memo memo;
    struct dtm_periodic *clock;
};

static void round_run(struct dtm_anomaly_job *j, const struct dtm_conf *c)
{
    struct dtm_anomaly_stats s;
    char err[256];
    int64_t now = dtm_now_us(), t0 = dtm_mono_us(),
            slot = now / 1000000 / c->anomaly_check_interval;
    int rc;
    if (!j->st && dtm_store_open(c, &j->st, err, sizeof(err)) != DTM_OK) {
        j->st = NULL;
        dtm_logf(DTM_LOG_ERROR, "anomaly check: cannot open the store", "\"error\":\"%.200s\"",
                 err);
        return;
    }
    /* one node per round (several nodes on one store); claims are kept a week */
    rc = j->st->ops->job_claim(j->st, "anomaly", slot, j->owner, now, now - 7 * 86400 * 1000000LL);
    if (rc == DTM_EEXIST)
        return;
    if (rc == DTM_OK)
        rc = dtm_anomaly_check(j->st, c, j->dict, j->alerts, &j->memo, now, &s);
    if (rc) {
        dtm_logf(DTM_LOG_ERROR, "anomaly check failed", "\"error\":\"%s\"", dtm_rc_name(rc));
        j->st->ops->close(j->st); /* a broken connection is opened again next round */
        j->st = NULL;
        return;
    }
    dtm_logf(DTM_LOG_INFO, "anomaly check",
             "\"round\":%lld,\"systems\":%lld,\"raised\":%lld,\"cleared\":%lld,\"ms\":%lld",
             (long long)slot, (long long)s.systems, (long long)s.raised, (long long)s.cleared,
             (long long)((dtm_mono_us() - t0) / 1000));
}

/* µs until the next round: rounds start on the clock's multiples of the interval (every node
 * alike, and no hour skipped by drift), a tenth of it late (at most 2 minutes): the records of
 * the hour that just closed have come in. */
static int64_t next_round(const struct dtm_conf *c)
{
    int64_t interval = c->anomaly_check_interval, now_s = dtm_now_us() / 1000000;
    return (interval - now_s % interval + DTM_MIN(interval / 10, 120)) * 1000000LL;
}

static int64_t job_main(struct dtm_periodic *clock, void *arg)
{
    struct dtm_anomaly_job *j = arg;
    const struct dtm_conf *c = *j->conf;
    (void)clock;
    if (c->anomaly_enabled)
        round_run(j, c);
    return next_round(*j->conf);
}

int dtm_anomaly_start(const struct dtm_conf *const *conf, const struct dtm_dict *dict,
                      struct dtm_alerts *alerts, struct dtm_anomaly_job **out, char *err,
                      size_t errsz)
{
    struct dtm_anomaly_job *j = calloc(1, sizeof(*j));
    char host[64] = "";
    int rc;
    *out = NULL;
    if (!j) {
        snprintf(err, errsz, "out of memory");
        return DTM_ENOMEM;
    }
    j->conf = conf;
    j->dict = dict;
    j->alerts = alerts;
    gethostname(host, sizeof(host) - 1);
    snprintf(j->owner, sizeof(j->owner), "%s:%ld", host, (long)getpid());
    if ((rc = dtm_periodic_start("anomaly check", next_round(*conf), job_main, j, &j->clock, err,
                                 errsz))) {
        free(j);
        return rc;
    }
    *out = j;
    return DTM_OK;
}

void dtm_anomaly_stop(struct dtm_anomaly_job *j)
{
    if (!j)
        return;
    dtm_periodic_stop(j->clock);
    if (j->st)
        j->st->ops->close(j->st);
    free(j);
}
