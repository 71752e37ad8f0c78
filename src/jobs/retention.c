/* jobs/retention.c — records past their keeping period are removed (with their history and the
 * rollup rows of the days they were in): the connection logs after `[retention]
 * connection_logs_days` (D6: at least one year, Circular 12/2025 Art. 8.3; the configuration
 * refuses less). A pass removes DTM_RETENTION_CHUNK records per transaction, so the writer and
 * readers are never held long. The server runs a pass a minute after it starts and then daily;
 * `dtm retention run` runs one now. */
#include "jobs/jobs.h"
#include "audit/audit.h"
#include "ingest/ingest.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FIRST_PASS_US (60 * 1000000LL)
#define PERIOD_US (24 * 3600 * 1000000LL)

/* The datasets with a keeping period, and where the configuration keeps it. */
static const struct {
    const char *dataset;
    size_t days_off; /* int64_t in struct dtm_conf */
} kept[] = {
    {"connection_logs", offsetof(struct dtm_conf, retention_connection_logs_days)},
};

static int64_t days_of(const struct dtm_conf *c, size_t i)
{
    int64_t d;
    memcpy(&d, (const char *)c + kept[i].days_off, sizeof(d));
    return d;
}

int64_t dtm_retention_cutoff(int64_t now_us, int64_t days)
{
    int64_t local = now_us / 1000000 + DTM_TZ_OFFSET;
    int64_t today = local >= 0 ? local / 86400 : -((-local + 86399) / 86400);
    return dtm_day_start(today - days);
}

static void log_pass(const struct dtm_retention_result *r)
{
    char ts[40];
    dtm_time_fmt(r->before, ts, sizeof(ts));
    dtm_logf(DTM_LOG_INFO, "retention: records past their keeping period removed",
             "\"dataset\":\"%s\",\"days\":%lld,\"before\":\"%s\",\"removed\":%lld", r->dataset,
             (long long)r->days, ts, (long long)r->removed);
}

int dtm_retention_run(struct dtm_store *st, const struct dtm_conf *c, int64_t now,
                      struct dtm_retention_result *out, size_t max, size_t *n)
{
    int rc = DTM_OK;
    *n = 0;
    for (size_t i = 0; i < DTM_ARRAY_LEN(kept) && *n < max; i++) {
        struct dtm_retention_result *r = &out[(*n)++];
        int64_t removed;
        r->dataset = kept[i].dataset;
        r->days = days_of(c, i);
        r->before = dtm_retention_cutoff(now, r->days);
        r->removed = 0;
        do {
            if ((rc = st->ops->begin(st)))
                return rc;
            rc = st->ops->record_purge(st, r->dataset, r->before, DTM_RETENTION_CHUNK, &removed);
            if (rc == DTM_OK)
                rc = st->ops->commit(st);
            if (rc) {
                st->ops->rollback(st);
                return rc;
            }
            r->removed += removed;
        } while (removed >= DTM_RETENTION_CHUNK); /* more: whole partitions dropped (PostgreSQL) */
    }
    return rc;
}

/* ---- the server's job */

struct dtm_retention {
    const struct dtm_conf *const *conf;
    struct dtm_writer *writer;
    struct dtm_periodic *clock;
    pthread_mutex_t lock; /* audit, job_done */
    pthread_cond_t cond;
    struct dtm_audit *audit; /* S3: passes are recorded there (NULL = not) */
    /* the chunk in the writer */
    struct dtm_write_job job;
    bool job_done;
    const char *dataset;
    int64_t before, removed;
};

static int purge_txn(struct dtm_write_job *j, struct dtm_store *st)
{
    struct dtm_retention *r = j->ctx;
    return st->ops->record_purge(st, r->dataset, r->before, DTM_RETENTION_CHUNK, &r->removed);
}

static void chunk_done(struct dtm_write_job *j)
{
    struct dtm_retention *r = j->ctx;
    pthread_mutex_lock(&r->lock);
    r->job_done = true;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

/* One chunk through the writer; waits for its commit. */
static int chunk(struct dtm_retention *r)
{
    int rc;
    memset(&r->job, 0, sizeof(r->job));
    r->job.dataset = r->dataset;
    r->job.system_code = "DTM";
    r->job.in_txn = purge_txn;
    r->job.relaxed = true; /* nobody waits; the next durable commit makes it durable */
    r->job.done = chunk_done;
    r->job.ctx = r;
    r->removed = 0;
    r->job_done = false;
    if ((rc = dtm_writer_submit(r->writer, &r->job)))
        return rc;
    pthread_mutex_lock(&r->lock);
    while (!r->job_done)
        pthread_cond_wait(&r->cond, &r->lock);
    pthread_mutex_unlock(&r->lock);
    return r->job.rc;
}

/* S3: the pass's audit entry for a dataset (also when it stopped half-way). */
static void record(struct dtm_retention *r, const struct dtm_retention_result *res, bool complete)
{
    struct dtm_audit *a;
    char d[256], ts[40];
    pthread_mutex_lock(&r->lock);
    a = r->audit;
    pthread_mutex_unlock(&r->lock);
    if (!a)
        return;
    dtm_time_fmt(res->before, ts, sizeof(ts));
    snprintf(d, sizeof(d),
             "{\"dataset\":\"%s\",\"kept_days\":%lld,\"before\":\"%s\",\"removed\":%lld,"
             "\"complete\":%s}",
             res->dataset, (long long)res->days, ts, (long long)res->removed,
             complete ? "true" : "false");
    dtm_audit_record(a, &(struct dtm_audit_event){"server", "dtm serve", "retention.purged",
                                                  res->dataset, d, NULL});
}

static int64_t pass(struct dtm_periodic *clock, void *arg)
{
    struct dtm_retention *r = arg;
    const struct dtm_conf *c = *r->conf;
    int64_t now = dtm_now_us();
    for (size_t i = 0; i < DTM_ARRAY_LEN(kept); i++) {
        struct dtm_retention_result res = {kept[i].dataset, days_of(c, i), 0, 0};
        int rc;
        res.before = dtm_retention_cutoff(now, res.days);
        r->dataset = res.dataset;
        r->before = res.before;
        do {
            if ((rc = chunk(r)))
                break;
            res.removed += r->removed;
        } while (r->removed >= DTM_RETENTION_CHUNK && !dtm_periodic_stopping(clock));
        if (rc)
            dtm_logf(DTM_LOG_WARN, "retention pass failed; retried tomorrow",
                     "\"dataset\":\"%s\",\"removed\":%lld,\"error\":\"%s\"", res.dataset,
                     (long long)res.removed, dtm_rc_name(rc));
        else
            log_pass(&res);
        record(r, &res, rc == DTM_OK);
    }
    return PERIOD_US;
}

int dtm_retention_start(const struct dtm_conf *const *conf, struct dtm_writer *w,
                        struct dtm_retention **out, char *err, size_t errsz)
{
    struct dtm_retention *r = calloc(1, sizeof(*r));
    int rc;
    if (!r) {
        snprintf(err, errsz, "out of memory");
        return DTM_ENOMEM;
    }
    r->conf = conf;
    r->writer = w;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    if ((rc = dtm_periodic_start("retention", FIRST_PASS_US, pass, r, &r->clock, err, errsz))) {
        pthread_mutex_destroy(&r->lock);
        pthread_cond_destroy(&r->cond);
        free(r);
        return rc;
    }
    *out = r;
    return DTM_OK;
}

void dtm_retention_audit(struct dtm_retention *r, struct dtm_audit *a)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    r->audit = a;
    pthread_mutex_unlock(&r->lock);
}

void dtm_retention_stop(struct dtm_retention *r)
{
    if (!r)
        return;
    dtm_periodic_stop(r->clock);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    free(r);
}
