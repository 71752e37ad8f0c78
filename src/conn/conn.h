/* conn — connectivity of the connected systems (CONTRACT §5 heartbeat and health probes, §6
 * `GET /api/v1/systems` and `GET /api/v1/live`):
 * - the status model: online | degraded | offline | never, derived from when a system was last
 *   seen (heartbeats and traffic, written by the writer), the share of failed transactions of
 *   its last hour and its optional health probe (status.c);
 * - the evaluator thread that records every status change as an interval (system_status), from
 *   which uptime is computed (status.c);
 * - the prober thread that GETs each registered probe URL with libcurl (probe.c);
 * - the live feed: one thread computes the dashboard KPIs once a second while anyone listens,
 *   and every open event stream sends them (live.c).
 * One struct dtm_conn per server, started by `dtm serve`. Each thread has its own store
 * connection; the evaluator and the prober write only their small tables (status intervals,
 * probe results), the way CLI commands write beside the writer. */
#ifndef DTM_CONN_H
#define DTM_CONN_H

#include "conf/conf.h"
#include "core/core.h"
#include "dict/dict.h"
#include "store/store.h"

struct dtm_req;

enum dtm_conn_status { DTM_CONN_NEVER, DTM_CONN_OFFLINE, DTM_CONN_DEGRADED, DTM_CONN_ONLINE };
#define DTM_CONN_NSTATUS 4

/* "never", "offline", "degraded", "online" */
const char *dtm_conn_status_name(enum dtm_conn_status s);

/* The status model. never: never seen; offline: seen, but not within [systems] online_within
 * seconds; degraded: seen within it, but the failed share of its last hour (err_rate; < 0 = no
 * transactions) is at least degraded_error_rate, or its last probe failed; online: otherwise.
 * probe NULL = none registered; a probe not yet run counts as passing. */
enum dtm_conn_status dtm_conn_derive(const struct dtm_conf *c, int64_t now, int64_t last_seen,
                                     double err_rate, const struct dtm_probe *probe);

/* The share of [from, now) a system spent online or degraded, counted from its first interval
 * when that starts later (the time since it was first seen). iv: its intervals as status_list
 * gives them (by since). -1 when there is none (never seen, or not evaluated yet). */
double dtm_conn_uptime(const struct dtm_status_interval *iv, size_t n, int64_t from, int64_t now);

struct dtm_conn;

/* Starts the evaluator, the prober and the live feed. *conf is read at every round (SIGHUP
 * replaces it); dict gives the `transactions` dataset. Writes a sentence to err on failure. */
int dtm_conn_start(const struct dtm_conf *const *conf, struct dtm_dict *dict, struct dtm_conn **out,
                   char *err, size_t errsz);
/* Ends every live stream (each sends what it has, then ends) and stops the threads. Call before
 * draining the HTTP server: a paused stream would hold it. NULL and a second call are no-ops. */
void dtm_conn_stop(struct dtm_conn *c);
/* Frees c: after the HTTP server is destroyed (the streams' free callbacks use c). */
void dtm_conn_free(struct dtm_conn *c);

/* Someone told of every status change the evaluator records (T4.1: alert/warn.c raises
 * system.silent), on the evaluator's thread once the change is stored: the statuses' names and
 * when the system was last seen. Must not block. One watcher; fn NULL = none. */
typedef void (*dtm_conn_watch_fn)(void *ctx, const char *code, const char *was, const char *now,
                                  int64_t last_seen);
void dtm_conn_watch(struct dtm_conn *c, dtm_conn_watch_fn fn, void *ctx);

/* The failed share of a system's last hour as last evaluated; -1 when it had no transactions
 * or c is NULL. */
double dtm_conn_error_rate(struct dtm_conn *c, const char *code);

/* A system as the connectivity views show it. */
struct dtm_conn_view {
    const struct dtm_system *sys;
    const struct dtm_probe *probe; /* NULL = no probe URL */
    enum dtm_conn_status status;   /* now */
};
typedef int (*dtm_conn_view_cb)(void *ctx, const struct dtm_conn_view *v);
/* Every system (by code) with its probe and its status now; c may be NULL (no error rates).
 * The callback must not use st. A non-zero result of cb stops and is returned. */
int dtm_conn_systems(struct dtm_conn *c, struct dtm_store *st, const struct dtm_conf *conf,
                     int64_t now, dtm_conn_view_cb cb, void *ctx);
/* The probe of one system: DTM_ENOTFOUND when it has none. */
int dtm_conn_probe_get(struct dtm_store *st, const char *code, struct dtm_probe *out);

/* ---- the live feed (GET /api/v1/live) */

/* One open event stream. */
struct dtm_live_sub;
/* Joins the feed for the request r (whose answer is then a dtm_http_stream of dtm_live_fill and
 * dtm_live_leave). DTM_ETOOBIG when [systems] max_live_streams are open; DTM_EBUSY when the
 * feed is stopping. */
int dtm_live_join(struct dtm_conn *c, struct dtm_req *r, struct dtm_live_sub **out);
/* dtm_fill_fn of a stream: the next event's bytes; pauses the request between events; 0 (the
 * end) once the feed stops. */
long dtm_live_fill(void *sub, char *buf, size_t max);
/* Leaves the feed and frees sub (the stream's free callback). */
void dtm_live_leave(void *sub);

#endif
