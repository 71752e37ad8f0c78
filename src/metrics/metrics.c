/* metrics/metrics.c — the process's counters and their Prometheus text exposition (format 0.0.4:
 * https://prometheus.io/docs/instrumenting/exposition_formats/). Written by hand: the format is
 * a few lines of text, and the C client library (prometheus-client-c) is not packaged by Debian.
 *
 * HTTP requests are counted per route and status in fixed arrays of relaxed atomics (a request
 * costs two increments and an add, no lock); latency goes into a fixed-bucket histogram per
 * route. Records are counted per dataset and system in an open-addressing table written by the
 * record writer's single thread, read by the scrape, both under one mutex (one lock per
 * committed job, never contended by request threads). */
#include "metrics/metrics.h"
#include "alert/alert.h"
#include "backup/backup.h"
#include "conn/conn.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define ROUTES_MAX 192 /* routes of dtm_routes at most; the slot after them: no route matched */
static const int codes[] = {200, 201, 202, 204, 206, 304, 400, 401, 403, 404, 405, 406, 408, 409,
                            410, 411, 413, 414, 415, 422, 429, 431, 499, 500, 501, 502, 503, 504};
#define NCODES (sizeof(codes) / sizeof(codes[0]))
/* request latency, seconds (upper bounds; +Inf after) */
static const double lat_le[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                0.25,  0.5,    1,     2.5,  5,     10};
#define NLAT (sizeof(lat_le) / sizeof(lat_le[0]))
/* the writer's commits: records per commit and seconds per commit */
static const double size_le[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000};
#define NSIZE (sizeof(size_le) / sizeof(size_le[0]))
static const double commit_le[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                   0.05,   0.1,   0.25,   0.5,   1,    2.5};
#define NCOMMIT (sizeof(commit_le) / sizeof(commit_le[0]))

static atomic_uint_fast64_t req_n[ROUTES_MAX + 1][NCODES + 1]; /* last column: another code */
static atomic_uint_fast64_t lat_n[ROUTES_MAX + 1][NLAT + 1];   /* not cumulative; last: +Inf */
static atomic_uint_fast64_t lat_sum_us[ROUTES_MAX + 1];
static atomic_uint_fast64_t size_n[NSIZE + 1], commit_n[NCOMMIT + 1], commit_sum_us, commit_records,
    commit_failed;
static atomic_uint_fast64_t batches_done, batches_failed, batches_cancelled;

static size_t bucket_of(const double *le, size_t n, double v)
{
    size_t i = 0;
    while (i < n && v > le[i])
        i++;
    return i;
}

void dtm_metrics_request(size_t route, int status, int64_t duration_us)
{
    size_t r = route < ROUTES_MAX ? route : ROUTES_MAX, c = NCODES;
    for (size_t i = 0; i < NCODES; i++)
        if (codes[i] == status) {
            c = i;
            break;
        }
    if (duration_us < 0)
        duration_us = 0;
    atomic_fetch_add_explicit(&req_n[r][c], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&lat_n[r][bucket_of(lat_le, NLAT, (double)duration_us / 1e6)], 1,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&lat_sum_us[r], (uint64_t)duration_us, memory_order_relaxed);
}

void dtm_metrics_commit(size_t records, int64_t duration_us, bool ok)
{
    if (!ok) {
        atomic_fetch_add_explicit(&commit_failed, 1, memory_order_relaxed);
        return;
    }
    atomic_fetch_add_explicit(&size_n[bucket_of(size_le, NSIZE, (double)records)], 1,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&commit_n[bucket_of(commit_le, NCOMMIT, (double)duration_us / 1e6)],
                              1, memory_order_relaxed);
    atomic_fetch_add_explicit(&commit_sum_us, (uint64_t)(duration_us > 0 ? duration_us : 0),
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&commit_records, records, memory_order_relaxed);
}

void dtm_metrics_batch_finished(const char *status)
{
    atomic_uint_fast64_t *c = !strcmp(status, "done")     ? &batches_done
                              : !strcmp(status, "failed") ? &batches_failed
                                                          : &batches_cancelled;
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* ---- records by dataset and system */

#define REC_SLOTS                                                                                  \
    4096 /* dataset × system pairs; beyond, a dataset's rest goes to system "_other" */
struct rec {
    char dataset[64], system[64]; /* DTM_CODE_MAX */
    uint64_t accepted, duplicate, updated, rejected;
};
static struct {
    pthread_mutex_t lock;
    size_t n;
    struct rec slot[REC_SLOTS];
} recs = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* The counters of a pair, made on first sight; NULL when the table is three quarters full and
 * force is not set (the rest stays free for each dataset's "_other"). */
static struct rec *rec_find(const char *ds, const char *sys, bool force)
{
    uint64_t h = 1469598103934665603ULL;
    size_t i;
    for (const char *p = ds; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h = (h ^ 0xff) * 1099511628211ULL;
    for (const char *p = sys; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    for (i = h % REC_SLOTS;; i = (i + 1) % REC_SLOTS) {
        struct rec *r = &recs.slot[i];
        if (!r->dataset[0]) {
            if (recs.n >= REC_SLOTS * 3 / 4 && (!force || recs.n >= REC_SLOTS - 1))
                return NULL;
            snprintf(r->dataset, sizeof(r->dataset), "%s", ds);
            snprintf(r->system, sizeof(r->system), "%s", sys);
            recs.n++;
            return r;
        }
        if (!strcmp(r->dataset, ds) && !strcmp(r->system, sys))
            return r;
    }
}

void dtm_metrics_records(const char *dataset, const char *system, int64_t accepted,
                         int64_t duplicate, int64_t updated, int64_t rejected)
{
    struct rec *r;
    if (!dataset || !*dataset)
        return;
    pthread_mutex_lock(&recs.lock);
    r = rec_find(dataset, system && *system ? system : "_none", false);
    if (!r)
        r = rec_find(dataset, "_other", true);
    if (r) {
        r->accepted += (uint64_t)DTM_MAX(accepted, 0);
        r->duplicate += (uint64_t)DTM_MAX(duplicate, 0);
        r->updated += (uint64_t)DTM_MAX(updated, 0);
        r->rejected += (uint64_t)DTM_MAX(rejected, 0);
    }
    pthread_mutex_unlock(&recs.lock);
}

/* ---- exposition */

void dtm_metrics_head(struct dtm_buf *b, const char *name, const char *type, const char *help)
{
    dtm_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void dtm_metrics_label(struct dtm_buf *b, const char *name, const char *value, bool first)
{
    dtm_buf_printf(b, "%s%s=\"", first ? "" : ",", name);
    for (const char *p = value; *p; p++) {
        if (*p == '\\' || *p == '"')
            dtm_buf_addch(b, '\\');
        if (*p == '\n')
            dtm_buf_addc(b, "\\n");
        else
            dtm_buf_addch(b, *p);
    }
    dtm_buf_addch(b, '"');
}

static void value(struct dtm_buf *b, double v)
{
    if (v == (double)(int64_t)v && v < 9e15 && v > -9e15)
        dtm_buf_printf(b, " %lld\n", (long long)v);
    else
        dtm_buf_printf(b, " %.9g\n", v);
}

void dtm_metrics_sample(struct dtm_buf *b, const char *name, const char *labels, double v)
{
    dtm_buf_addc(b, name);
    if (labels && *labels)
        dtm_buf_printf(b, "{%s}", labels);
    value(b, v);
}

static uint64_t ld(atomic_uint_fast64_t *a)
{
    return atomic_load_explicit(a, memory_order_relaxed);
}

/* A histogram's _bucket (cumulative), _sum and _count lines; labels without braces. */
static void histogram(struct dtm_buf *b, const char *name, const char *labels, const double *le,
                      size_t n, atomic_uint_fast64_t *counts, double sum)
{
    uint64_t cum = 0;
    for (size_t i = 0; i <= n; i++) {
        cum += ld(&counts[i]);
        dtm_buf_printf(b, "%s_bucket{%s%s", name, labels, *labels ? "," : "");
        if (i < n)
            dtm_buf_printf(b, "le=\"%g\"}", le[i]);
        else
            dtm_buf_addc(b, "le=\"+Inf\"}");
        value(b, (double)cum);
    }
    dtm_buf_printf(b, "%s_sum%s%s%s", name, *labels ? "{" : "", labels, *labels ? "}" : "");
    value(b, sum);
    dtm_buf_printf(b, "%s_count%s%s%s", name, *labels ? "{" : "", labels, *labels ? "}" : "");
    value(b, (double)cum);
}

static void render_http(struct dtm_buf *b, const char *const *names, size_t n)
{
    struct dtm_buf l;
    dtm_buf_init(&l, 1024);
    dtm_metrics_head(b, "dtm_http_requests_total", "counter",
                     "HTTP requests answered, by route and status");
    for (size_t r = 0; r <= ROUTES_MAX; r++) {
        if (r < ROUTES_MAX && r >= n)
            continue;
        for (size_t c = 0; c <= NCODES; c++) {
            uint64_t v = ld(&req_n[r][c]);
            char code[8];
            if (!v)
                continue;
            snprintf(code, sizeof(code), "%d", c < NCODES ? codes[c] : 0);
            dtm_buf_reset(&l);
            dtm_metrics_label(&l, "route", r < ROUTES_MAX ? names[r] : "none", true);
            dtm_metrics_label(&l, "status", c < NCODES ? code : "other", false);
            dtm_metrics_sample(b, "dtm_http_requests_total", l.p, (double)v);
        }
    }
    dtm_metrics_head(b, "dtm_http_request_duration_seconds", "histogram",
                     "time from a request's arrival to its answer, by route");
    for (size_t r = 0; r <= ROUTES_MAX; r++) {
        uint64_t any = 0;
        if (r < ROUTES_MAX && r >= n)
            continue;
        for (size_t i = 0; i <= NLAT; i++)
            any += ld(&lat_n[r][i]);
        if (!any)
            continue;
        dtm_buf_reset(&l);
        dtm_metrics_label(&l, "route", r < ROUTES_MAX ? names[r] : "none", true);
        histogram(b, "dtm_http_request_duration_seconds", l.p, lat_le, NLAT, lat_n[r],
                  (double)ld(&lat_sum_us[r]) / 1e6);
    }
    dtm_buf_free(&l);
}

static void render_records(struct dtm_buf *b)
{
    static const char *const outcomes[] = {"accepted", "duplicate", "updated", "rejected"};
    struct dtm_buf l;
    dtm_buf_init(&l, 1024);
    dtm_metrics_head(b, "dtm_records_total", "counter",
                     "records received, by dataset, system and outcome (accepted | duplicate | "
                     "updated | rejected)");
    pthread_mutex_lock(&recs.lock);
    for (size_t i = 0; i < REC_SLOTS; i++) {
        const struct rec *r = &recs.slot[i];
        const uint64_t v[] = {r->accepted, r->duplicate, r->updated, r->rejected};
        if (!r->dataset[0])
            continue;
        for (size_t k = 0; k < 4; k++) {
            dtm_buf_reset(&l);
            dtm_metrics_label(&l, "dataset", r->dataset, true);
            dtm_metrics_label(&l, "system", r->system, false);
            dtm_metrics_label(&l, "outcome", outcomes[k], false);
            dtm_metrics_sample(b, "dtm_records_total", l.p, (double)v[k]);
        }
    }
    pthread_mutex_unlock(&recs.lock);
    dtm_buf_free(&l);
}

static void render_writer(struct dtm_buf *b)
{
    dtm_metrics_head(b, "dtm_writer_commit_records", "histogram",
                     "records written by one group commit of the record writer");
    histogram(b, "dtm_writer_commit_records", "", size_le, NSIZE, size_n,
              (double)ld(&commit_records));
    dtm_metrics_head(b, "dtm_writer_commit_duration_seconds", "histogram",
                     "duration of one group commit (the transaction, fsync included)");
    histogram(b, "dtm_writer_commit_duration_seconds", "", commit_le, NCOMMIT, commit_n,
              (double)ld(&commit_sum_us) / 1e6);
    dtm_metrics_head(b, "dtm_writer_commit_failures_total", "counter",
                     "group commits that failed (their requests were answered 503)");
    dtm_metrics_sample(b, "dtm_writer_commit_failures_total", NULL, (double)ld(&commit_failed));
    dtm_metrics_head(b, "dtm_batches_finished_total", "counter",
                     "batch jobs finished, by final status");
    dtm_metrics_sample(b, "dtm_batches_finished_total", "status=\"done\"",
                       (double)ld(&batches_done));
    dtm_metrics_sample(b, "dtm_batches_finished_total", "status=\"failed\"",
                       (double)ld(&batches_failed));
    dtm_metrics_sample(b, "dtm_batches_finished_total", "status=\"cancelled\"",
                       (double)ld(&batches_cancelled));
}

static int64_t started_at; /* µs, the first time anything was counted or rendered */

static void render_process(struct dtm_buf *b)
{
    struct rusage ru;
    struct rlimit rl;
    long page = sysconf(_SC_PAGESIZE);
    unsigned long vsz = 0, rss = 0;
    FILE *f;
    DIR *d;
    size_t fds = 0;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        dtm_metrics_head(b, "process_cpu_seconds_total", "counter",
                         "user and system CPU time spent, in seconds");
        dtm_metrics_sample(b, "process_cpu_seconds_total", NULL,
                           (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                               (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
    }
    if ((f = fopen("/proc/self/statm", "r"))) {
        if (fscanf(f, "%lu %lu", &vsz, &rss) == 2) {
            dtm_metrics_head(b, "process_resident_memory_bytes", "gauge",
                             "resident memory size in bytes");
            dtm_metrics_sample(b, "process_resident_memory_bytes", NULL,
                               (double)rss * (double)page);
            dtm_metrics_head(b, "process_virtual_memory_bytes", "gauge",
                             "virtual memory size in bytes");
            dtm_metrics_sample(b, "process_virtual_memory_bytes", NULL, (double)vsz * (double)page);
        }
        fclose(f);
    }
    if ((d = opendir("/proc/self/fd"))) {
        struct dirent *e;
        while ((e = readdir(d)))
            fds += e->d_name[0] != '.';
        closedir(d);
        dtm_metrics_head(b, "process_open_fds", "gauge", "open file descriptors");
        dtm_metrics_sample(b, "process_open_fds", NULL, (double)(fds ? fds - 1 : 0));
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        dtm_metrics_head(b, "process_max_fds", "gauge", "maximum open file descriptors");
        dtm_metrics_sample(b, "process_max_fds", NULL, (double)rl.rlim_cur);
    }
    dtm_metrics_head(b, "process_start_time_seconds", "gauge",
                     "start time of the process since the epoch, in seconds");
    dtm_metrics_sample(b, "process_start_time_seconds", NULL, (double)(started_at / 1000000));
    dtm_metrics_head(b, "dtm_build_info", "gauge", "the version of dtm serving (always 1)");
    dtm_metrics_sample(b, "dtm_build_info", "version=\"" DTM_VERSION "\"", 1);
}

void dtm_metrics_start(void)
{
    started_at = dtm_now_us();
}

void dtm_metrics_render(struct dtm_buf *b, const char *const *route_names, size_t n)
{
    render_http(b, route_names, DTM_MIN(n, (size_t)ROUTES_MAX));
    render_records(b);
    render_writer(b);
    render_process(b);
}

/* ---- the state of the moment (store reads, at scrape or `dtm status` time) */

static int by_status(void *ctx, const struct dtm_conn_view *v)
{
    ((struct dtm_metrics_now *)ctx)->systems[v->status]++;
    return 0;
}

static int by_severity(void *ctx, const struct dtm_alert *a)
{
    enum dtm_alert_severity s = DTM_ALERT_INFO;
    dtm_alert_severity_parse(a->severity, &s);
    ((struct dtm_metrics_now *)ctx)->alerts[s]++;
    return 0;
}

static int by_batch(void *ctx, const struct dtm_batch *b)
{
    ((struct dtm_metrics_now *)ctx)->batches[strcmp(b->status, "running") == 0]++;
    return 0;
}

void dtm_metrics_now(struct dtm_conn *c, struct dtm_store *st, const struct dtm_conf *conf,
                     struct dtm_metrics_now *out)
{
    struct dtm_backup_run br;
    int rc;
    memset(out, 0, sizeof(*out));
    out->have_systems = dtm_conn_systems(c, st, conf, dtm_now_us(), by_status, out) == DTM_OK;
    out->have_alerts =
        st->ops->alert_list(st, &(struct dtm_alert_filter){"firing", NULL, NULL, 0, INT64_MAX}, 0,
                            100000, by_severity, out) == DTM_OK;
    out->have_batches = st->ops->batch_pending(st, "api", by_batch, out) == DTM_OK;
    rc = st->ops->backup_run_last(st, true, &br);
    out->have_backup = rc == DTM_OK || rc == DTM_ENOTFOUND;
    out->last_backup = rc == DTM_OK ? br.at : 0;
}
