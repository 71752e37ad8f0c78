/* metrics — the process's counters for Prometheus (issue 10, CONTRACT §7: GET /metrics in the
 * text exposition format 0.0.4). Counters are process-wide and lock-free where they are hot
 * (HTTP requests: relaxed atomics per route and status); the per-dataset-and-system record
 * counters are written by the record writer's one thread and read by the scrape under a mutex.
 * Gauges that belong to other modules (queue depth, systems by status, alerts firing, batches)
 * are gathered at scrape time by api/metrics.c and written with the helpers below. */
#ifndef DTM_METRICS_H
#define DTM_METRICS_H

#include "core/core.h"

#include <stddef.h>
#include <stdint.h>

/* Notes the process's start (process_start_time_seconds). */
void dtm_metrics_start(void);
/* One answered HTTP request: its route (index in dtm_routes; SIZE_MAX = none matched), status and
 * duration from its first byte to its completion. */
void dtm_metrics_request(size_t route, int status, int64_t duration_us);
/* One committed ingest job (realtime request or batch chunk): its records by outcome. */
void dtm_metrics_records(const char *dataset, const char *system, int64_t accepted,
                         int64_t duplicate, int64_t updated, int64_t rejected);
/* One group commit of the record writer: records written and how long the transaction took. */
void dtm_metrics_commit(size_t records, int64_t duration_us, bool ok);
/* One batch job finished: done | failed | cancelled. */
void dtm_metrics_batch_finished(const char *status);

/* The exposition of every counter above, then the process's (CPU, memory, file descriptors,
 * start time) and the build's. route_names: the name of each route (n of them). */
void dtm_metrics_render(struct dtm_buf *b, const char *const *route_names, size_t n);

/* The state of the moment that /metrics and `dtm status` both show, read from the store (and the
 * connectivity module for the systems' status; c may be NULL). Each part is -1 when the store
 * could not give it. */
struct dtm_conn;
struct dtm_store;
struct dtm_conf;
struct dtm_metrics_now {
    int64_t systems[4];  /* by enum dtm_conn_status: never, offline, degraded, online */
    int64_t alerts[3];   /* firing, by enum dtm_alert_severity: info, warning, critical */
    int64_t batches[2];  /* queued, running */
    int64_t last_backup; /* µs when the last successful backup ended; 0 = never */
    bool have_systems, have_alerts, have_batches, have_backup;
};
void dtm_metrics_now(struct dtm_conn *c, struct dtm_store *st, const struct dtm_conf *conf,
                     struct dtm_metrics_now *out);

/* Helpers for gauges: "# HELP"/"# TYPE" once, then samples. A label value is escaped as the
 * format asks (backslash, double quote, newline). */
void dtm_metrics_head(struct dtm_buf *b, const char *name, const char *type, const char *help);
void dtm_metrics_sample(struct dtm_buf *b, const char *name, const char *labels, double v);
void dtm_metrics_label(struct dtm_buf *b, const char *name, const char *value, bool first);

#endif
