/* cli/status.c — `dtm status` (issue 10 item 6): what an operator wants to know at a glance —
 * version, the store and its size, whether a server answers on this data dir's HTTP listener
 * (and then its uptime and the writer's queue, read from its /metrics on loopback), connected
 * systems by status, alerts firing, batches waiting, and the last backup. Everything but the
 * server's own figures comes from the store, so it works with the server stopped too. */
#include "alert/alert.h"
#include "backup/backup.h"
#include "cli/cli.h"
#include "conn/conn.h"
#include "metrics/metrics.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static size_t collect(char *p, size_t size, size_t n, void *ctx)
{
    struct dtm_buf *b = ctx;
    return dtm_buf_add(b, p, size * n) ? 0 : size * n;
}

/* A sample of an exposition without labels ("name value"); -1 when absent. */
static double sample(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, name, n) && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

/* The running server's uptime and queue from its /metrics on the loopback HTTP listener. */
static void server_part(const struct dtm_conf *c, struct dtm_cli_out *out)
{
    char host[128], url[300], v[400], addr[160], path[DTM_PATH_MAX];
    struct dtm_buf b;
    int port;
    long status = 0;
    CURL *h;
    FILE *f;
    /* where the running server said it listens (serve.addr), else what dtm.conf says */
    snprintf(addr, sizeof(addr), "%s", c->http);
    dtm_conf_path(c, "serve.addr", path, sizeof(path));
    if ((f = fopen(path, "r"))) {
        if (fgets(addr, sizeof(addr), f))
            addr[strcspn(addr, "\r\n")] = '\0';
        fclose(f);
    }
    if (!strcmp(addr, "off") || dtm_conf_split_addr(addr, host, sizeof(host), &port)) {
        dtm_cli_out_add(out, "server", "unknown (no plain HTTP listener in dtm.conf to ask)");
        return;
    }
    if (!strcmp(host, "0.0.0.0") || !*host)
        snprintf(host, sizeof(host), "127.0.0.1");
    snprintf(url, sizeof(url), "http://%s%s%s:%d/metrics", strchr(host, ':') ? "[" : "", host,
             strchr(host, ':') ? "]" : "", port);
    dtm_buf_init(&b, 16 << 20);
    if (!(h = curl_easy_init())) {
        dtm_buf_free(&b);
        return;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 3L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    if (status != 200 || !b.p) {
        snprintf(v, sizeof(v), "not answering at %s", url);
        dtm_cli_out_add(out, "server", v);
    } else {
        double start = sample(b.p, "process_start_time_seconds"),
               depth = sample(b.p, "dtm_writer_queue_depth");
        int64_t up = start > 0 ? dtm_now_us() / 1000000 - (int64_t)start : 0;
        snprintf(v, sizeof(v), "running at http://%s:%d", host, port);
        dtm_cli_out_add(out, "server", v);
        snprintf(v, sizeof(v), "%lldd %02lldh %02lldm", (long long)(up / 86400),
                 (long long)(up / 3600 % 24), (long long)(up / 60 % 60));
        dtm_cli_out_add(out, "uptime", v);
        snprintf(v, sizeof(v), "%.0f", depth < 0 ? 0 : depth);
        dtm_cli_out_add(out, "queue_depth", v);
    }
    dtm_buf_free(&b);
}

static void store_part(const struct dtm_conf *c, struct dtm_store *st, struct dtm_cli_out *out)
{
    struct dtm_metrics_now n;
    struct dtm_backup_run br;
    struct stat sb;
    char v[DTM_PATH_MAX + 128], path[DTM_PATH_MAX], t[40];
    int rc;
    if (!strcmp(c->backend, "sqlite")) {
        double mb = 0;
        static const char *const files[] = {"dtm.db", "dtm.db-wal", "dtm.cubes.db",
                                            "dtm.cubes.db-wal"};
        for (size_t i = 0; i < DTM_ARRAY_LEN(files); i++) {
            dtm_conf_path(c, files[i], path, sizeof(path));
            if (stat(path, &sb) == 0)
                mb += (double)sb.st_size / 1e6;
        }
        snprintf(v, sizeof(v), "sqlite, %.1f MB", mb);
    } else {
        snprintf(v, sizeof(v), "%s", c->backend);
    }
    dtm_cli_out_add(out, "store", v);
    dtm_metrics_now(NULL, st, c, &n);
    if (n.have_systems) {
        snprintf(v, sizeof(v), "%lld (online %lld, degraded %lld, offline %lld, never seen %lld)",
                 (long long)(n.systems[DTM_CONN_ONLINE] + n.systems[DTM_CONN_DEGRADED] +
                             n.systems[DTM_CONN_OFFLINE] + n.systems[DTM_CONN_NEVER]),
                 (long long)n.systems[DTM_CONN_ONLINE], (long long)n.systems[DTM_CONN_DEGRADED],
                 (long long)n.systems[DTM_CONN_OFFLINE], (long long)n.systems[DTM_CONN_NEVER]);
        dtm_cli_out_add(out, "systems", v);
    }
    if (n.have_alerts) {
        snprintf(v, sizeof(v), "%lld (critical %lld, warning %lld, info %lld)",
                 (long long)(n.alerts[0] + n.alerts[1] + n.alerts[2]),
                 (long long)n.alerts[DTM_ALERT_CRITICAL], (long long)n.alerts[DTM_ALERT_WARNING],
                 (long long)n.alerts[DTM_ALERT_INFO]);
        dtm_cli_out_add(out, "alerts_firing", v);
    }
    if (n.have_batches) {
        snprintf(v, sizeof(v), "%lld queued, %lld running", (long long)n.batches[0],
                 (long long)n.batches[1]);
        dtm_cli_out_add(out, "batches", v);
    }
    rc = st->ops->backup_run_last(st, false, &br);
    if (rc == DTM_OK) {
        dtm_time_fmt(br.at, t, sizeof(t));
        if (!strcmp(br.status, "ok"))
            snprintf(v, sizeof(v), "%s ok %s", t, br.path);
        else
            snprintf(v, sizeof(v), "%s %s: %.200s", t, br.status, br.error);
        dtm_cli_out_add(out, "last_backup", v);
    } else if (rc == DTM_ENOTFOUND) {
        dtm_cli_out_add(out, "last_backup", "never");
    }
}

int dtm_cmd_status(int argc, char **argv)
{
    static const char usage[] = "dtm status [--data-dir DIR] [--json]";
    struct dtm_cli_common com;
    const char *pos[1];
    size_t npos;
    struct dtm_conf *c;
    struct dtm_store *st;
    struct dtm_cli_out out = {0};
    int rc = dtm_cli_parse(argc, argv, NULL, 0, &com, pos, 0, &npos, usage);
    if (rc)
        return rc;
    if (com.help) {
        printf("usage: %s\n", usage);
        return DTM_EXIT_OK;
    }
    if (!(c = calloc(1, sizeof(*c))))
        return DTM_EXIT_FAIL;
    if (dtm_cli_load_conf(com.data_dir, NULL, c) || dtm_cli_open_store(c, &st)) {
        free(c);
        return DTM_EXIT_FAIL;
    }
    dtm_cli_out_add(&out, "version", DTM_VERSION);
    dtm_cli_out_add(&out, "data_dir", c->data_dir);
    server_part(c, &out);
    store_part(c, st, &out);
    st->ops->close(st);
    free(c);
    dtm_cli_out_print(&out, com.json);
    return DTM_EXIT_OK;
}
