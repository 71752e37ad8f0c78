/* report/sched.c — the scheduled reports of `dtm serve` (CONTRACT §6: "produced automatically
 * after each period"): a thread with its own store connection that, shortly after the start and
 * then every minute, looks for the reports due — for each period kind of [reports] schedule the
 * last closed period, for each of [reports] kinds and langs — and produces those not kept yet.
 * A report is claimed first (a row of the store's `reports`, taken in its own transaction: when
 * several nodes share one PostgreSQL, only one produces it; a claim left by a node that died is
 * taken over after an hour), built, and its document kept in the store: every node serves it and
 * backups carry it. Reports older than [reports] keep days are forgotten. Each report produced is
 * a progress line in the log. */
#include "report/report.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define US 1000000LL
#define FIRST_PASS_US                                                                              \
    (5 * US) /* after the start: a server stopped at once (tests, restarts) never runs it */
#define PERIOD_US (60 * US)
#define CLAIM_STALE_S 3600 /* a claim this old was left by a node that stopped mid-way */

/* Whether name is in a comma-separated list. */
static bool listed(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        while (len && (*p == ' ' || *p == '\t'))
            p++, len--;
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len == n && strncmp(p, name, n) == 0)
            return true;
        p = e ? e + 1 : NULL;
    }
    return false;
}

static int produce(struct dtm_store *st, const struct dtm_conf *conf, const struct dtm_dict *dict,
                   const char *kind, const struct dtm_period *p, const char *lang, int64_t now)
{
    struct dtm_report_row row;
    cJSON *doc = NULL;
    char err[512], *text = NULL;
    int rc;
    if (st->ops->report_get(st, kind, p->label, lang, &row, NULL) == DTM_OK)
        return DTM_EEXIST; /* kept already */
    if ((rc = st->ops->begin(st)))
        return rc;
    rc = st->ops->report_claim(st, kind, p->label, lang, now, now - CLAIM_STALE_S * US);
    if (rc == DTM_OK)
        rc = st->ops->commit(st);
    else
        st->ops->rollback(st);
    if (rc)
        return rc; /* DTM_EEXIST: another node has it */
    if ((rc = dtm_report_build(st, conf, dict, kind, p, lang, now, &doc, err, sizeof(err)))) {
        if (rc != DTM_EUNSUPPORTED)
            dtm_logf(DTM_LOG_WARN, "scheduled report failed; retried within the hour",
                     "\"kind\":\"%s\",\"period\":\"%s\",\"lang\":\"%s\",\"error\":\"%s\"", kind,
                     p->label, lang, dtm_rc_name(rc));
        return rc;
    }
    if (!(text = cJSON_PrintUnformatted(doc)))
        rc = DTM_ENOMEM;
    else if ((rc = st->ops->begin(st)) == DTM_OK) {
        rc = st->ops->report_put(st, kind, p->label, lang, now, text, strlen(text));
        if (rc == DTM_OK)
            rc = st->ops->commit(st);
        else
            st->ops->rollback(st);
    }
    if (rc == DTM_OK)
        dtm_logf(DTM_LOG_INFO, "report produced",
                 "\"kind\":\"%s\",\"period\":\"%s\",\"lang\":\"%s\",\"bytes\":%zu", kind, p->label,
                 lang, strlen(text));
    cJSON_free(text);
    cJSON_Delete(doc);
    return rc;
}

struct dtm_reports {
    const struct dtm_conf *const *conf;
    struct dtm_dict *dict;
    struct dtm_periodic *clock;
    struct dtm_store *st; /* the thread's own connection, opened at its first pass */
};

/* One pass; clock (NULL from the command line) ends it early, between two reports, when the
 * server stops. */
static int pass(struct dtm_store *st, const struct dtm_conf *conf, const struct dtm_dict *dict,
                int64_t now, int *made, struct dtm_periodic *clock)
{
    static const char *const langs[] = {"vi", "en"};
    int rc = DTM_OK;
    *made = 0;
    for (int pk = DTM_P_DAY; pk <= DTM_P_YEAR; pk++) {
        struct dtm_period cur, last;
        if (!listed(conf->report_schedule, dtm_period_kind_name((enum dtm_period_kind)pk)))
            continue;
        dtm_period_at((enum dtm_period_kind)pk, now, &cur);
        dtm_period_prev(&cur, &last); /* the last closed period */
        for (size_t k = 0; k < DTM_REPORT_KINDS; k++) {
            if (!listed(conf->report_kinds, dtm_report_kinds[k]))
                continue;
            for (size_t l = 0; l < DTM_ARRAY_LEN(langs); l++) {
                int r;
                if (!listed(conf->report_langs, langs[l]))
                    continue;
                if (dtm_periodic_stopping(clock))
                    return rc;
                r = produce(st, conf, dict, dtm_report_kinds[k], &last, langs[l], now);
                if (r == DTM_OK)
                    (*made)++;
                else if (r == DTM_ESTORE || r == DTM_ENOMEM)
                    rc = r;
            }
        }
    }
    if (conf->report_keep > 0 && st->ops->begin(st) == DTM_OK) {
        if (st->ops->report_purge(st, now - conf->report_keep * 86400 * US) == DTM_OK)
            st->ops->commit(st);
        else
            st->ops->rollback(st);
    }
    return rc;
}

int dtm_reports_run_once(struct dtm_store *st, const struct dtm_conf *conf,
                         const struct dtm_dict *dict, int64_t now, int *made)
{
    return pass(st, conf, dict, now, made, NULL);
}

static int64_t run(struct dtm_periodic *clock, void *arg)
{
    struct dtm_reports *r = arg;
    char err[256];
    int made = 0;
    if (!r->st && dtm_store_open(*r->conf, &r->st, err, sizeof(err)))
        dtm_logf(DTM_LOG_WARN, "scheduled reports: cannot open the store", "\"error\":\"%s\"",
                 "store");
    if (r->st && pass(r->st, *r->conf, r->dict, dtm_now_us(), &made, clock) == DTM_ESTORE) {
        r->st->ops->close(r->st); /* reopened at the next pass */
        r->st = NULL;
    }
    return PERIOD_US;
}

int dtm_reports_start(const struct dtm_conf *const *conf, struct dtm_dict *dict,
                      struct dtm_reports **out, char *err, size_t errsz)
{
    struct dtm_reports *r = calloc(1, sizeof(*r));
    int rc;
    if (!r) {
        snprintf(err, errsz, "out of memory");
        return DTM_ENOMEM;
    }
    r->conf = conf;
    r->dict = dict;
    if ((rc = dtm_periodic_start("report scheduler", FIRST_PASS_US, run, r, &r->clock, err,
                                 errsz))) {
        free(r);
        return rc;
    }
    *out = r;
    return DTM_OK;
}

void dtm_reports_stop(struct dtm_reports *r)
{
    if (!r)
        return;
    dtm_periodic_stop(r->clock);
    if (r->st)
        r->st->ops->close(r->st);
    free(r);
}
