/* api/metrics.c — GET /metrics (CONTRACT §7; issue 10): the process's counters (metrics/) and
 * the gauges of the moment — the writer's queue, batches queued and running, connected systems by
 * status, alerts firing, the store's files — in Prometheus text format 0.0.4. Who may read it:
 * with `[metrics] token` set, a client sending `Authorization: Bearer <token>` (compared in
 * constant time); without, only clients on this machine (loopback). */
#include "api/api.h"
#include "conn/conn.h"
#include "gate/gate.h"
#include "ingest/ingest.h"
#include "metrics/metrics.h"
#include "share/share.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static bool loopback(struct dtm_req *r)
{
    char ip[64];
    dtm_http_client_ip(r, ip, sizeof(ip));
    return !strncmp(ip, "127.", 4) || !strcmp(ip, "::1") || !strncmp(ip, "::ffff:127.", 11);
}

/* Whether the caller may read the metrics; answers 401/403 itself when not. */
static bool allowed(struct dtm_req *r)
{
    const struct dtm_conf *c = dtm_http_env(r)->conf;
    struct dtm_str auth = dtm_http_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
    char token[256], why[160];
    bool ok;
    if (!c->metrics_token[0]) {
        if (loopback(r))
            return true;
        dtm_http_problem(r, 403, "forbidden", "Forbidden",
                         "The metrics are served to this machine only; set [metrics] token to "
                         "let a Prometheus elsewhere read them with a bearer token.");
        return false;
    }
    if (dtm_secret_resolve(dtm_http_store(r), dtm_datakeys_get(c), c->metrics_token, token,
                           sizeof(token), why, sizeof(why))) {
        dtm_logf(DTM_LOG_ERROR, "the metrics token cannot be read", "\"why\":\"%s\"", why);
        dtm_http_error(r, DTM_EINTERNAL);
        return false;
    }
    ok = auth.n == 7 + strlen(token) && dtm_str_ieqc((struct dtm_str){auth.p, 7}, "Bearer ") &&
         dtm_ct_equal(auth.p + 7, token, strlen(token));
    OPENSSL_cleanse(token, sizeof(token));
    if (!ok) {
        dtm_http_add_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"dtm metrics\"");
        dtm_http_problem(r, 401, "unauthorized", "Authentication required",
                         "Send the metrics token of [metrics] token as a bearer token.");
    }
    return ok;
}

/* The gauges of the moment; a part the store cannot give is left out (and logged). */
static void gauges(struct dtm_req *r, struct dtm_buf *b)
{
    const struct dtm_server_env *env = dtm_http_env(r);
    const struct dtm_conf *c = env->conf;
    struct dtm_store *st = dtm_http_store(r);
    static const char *const files[] = {"dtm.db", "dtm.db-wal", "dtm.cubes.db", "dtm.cubes.db-wal"};
    static const char *const sev[] = {"info", "warning", "critical"};
    struct dtm_metrics_now n;
    char l[96], path[DTM_PATH_MAX];
    struct stat sb;
    dtm_metrics_head(b, "dtm_writer_queue_depth", "gauge",
                     "jobs waiting for the record writer (requests and batch chunks)");
    dtm_metrics_sample(b, "dtm_writer_queue_depth", NULL,
                       env->writer ? (double)dtm_writer_depth(env->writer) : 0);
    {
        /* F3: subscription deliveries of this process (share/push.c) */
        uint64_t ok, failed;
        dtm_push_counts(&ok, &failed);
        dtm_metrics_head(b, "dtm_subscription_deliveries_total", "counter",
                         "subscription delivery attempts: acknowledged (2xx) or failed");
        dtm_metrics_sample(b, "dtm_subscription_deliveries_total", "outcome=\"ok\"", (double)ok);
        dtm_metrics_sample(b, "dtm_subscription_deliveries_total", "outcome=\"failed\"",
                           (double)failed);
    }
    if (!st)
        return;
    dtm_metrics_now(env->conn, st, c, &n);
    if (n.have_systems) {
        dtm_metrics_head(b, "dtm_systems", "gauge", "connected systems by status now");
        for (int s = 0; s < DTM_CONN_NSTATUS; s++) {
            snprintf(l, sizeof(l), "status=\"%s\"", dtm_conn_status_name((enum dtm_conn_status)s));
            dtm_metrics_sample(b, "dtm_systems", l, (double)n.systems[s]);
        }
    }
    if (n.have_alerts) {
        dtm_metrics_head(b, "dtm_alerts_firing", "gauge", "alerts firing now, by severity");
        for (int s = 0; s < 3; s++) {
            snprintf(l, sizeof(l), "severity=\"%s\"", sev[s]);
            dtm_metrics_sample(b, "dtm_alerts_firing", l, (double)n.alerts[s]);
        }
    }
    if (n.have_batches) {
        dtm_metrics_head(b, "dtm_batches", "gauge", "batch jobs queued or running now");
        dtm_metrics_sample(b, "dtm_batches", "status=\"queued\"", (double)n.batches[0]);
        dtm_metrics_sample(b, "dtm_batches", "status=\"running\"", (double)n.batches[1]);
    }
    if (n.have_backup) {
        dtm_metrics_head(b, "dtm_last_backup_timestamp_seconds", "gauge",
                         "when the last successful backup ended (0 = never)");
        dtm_metrics_sample(b, "dtm_last_backup_timestamp_seconds", NULL,
                           (double)(n.last_backup / 1000000));
    }
    if (!strcmp(c->backend, "sqlite")) {
        dtm_metrics_head(b, "dtm_store_bytes", "gauge", "size of the store's files");
        for (size_t i = 0; i < DTM_ARRAY_LEN(files); i++) {
            dtm_conf_path(c, files[i], path, sizeof(path));
            snprintf(l, sizeof(l), "file=\"%s\"", files[i]);
            dtm_metrics_sample(b, "dtm_store_bytes", l,
                               stat(path, &sb) == 0 ? (double)sb.st_size : 0);
        }
    }
}

/* The route table is constant: its names, once. */
static const char *names[256];
static size_t nnames;
static pthread_once_t names_once = PTHREAD_ONCE_INIT;

static void names_load(void)
{
    for (; dtm_routes[nnames].pattern && nnames < DTM_ARRAY_LEN(names); nnames++)
        names[nnames] = dtm_routes[nnames].name;
}

int dtm_api_metrics(struct dtm_req *r)
{
    struct dtm_buf b;
    int rc;
    if (!allowed(r))
        return DTM_OK;
    pthread_once(&names_once, names_load);
    dtm_buf_init(&b, 16 << 20);
    dtm_metrics_render(&b, names, nnames);
    gauges(r, &b);
    rc = b.err ? b.err
               : dtm_http_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.n);
    dtm_buf_free(&b);
    return rc;
}
