/* cli/serve.c — `dtm serve`: load the configuration and keys, migrate the store, start the
 * writer and the listeners, then wait for signals: SIGHUP reloads the configuration and the TLS
 * certificate without dropping connections; SIGTERM/SIGINT drain in-flight requests (every
 * accepted record is committed and answered) and stop. */
#include "cli/cli.h"
#include "audit/audit.h"
#include "dict/dict.h"
#include "stats/stats.h"
#include "gate/gate.h"
#include "http/http.h"
#include "ingest/ingest.h"
#include "connlog/connlog.h"
#include "jobs/jobs.h"
#include "batch/batch.h"
#include "conn/conn.h"
#include "alert/alert.h"
#include "alert/warn.h"
#include "forecast/forecast.h"
#include "backup/backup.h"
#include "metrics/metrics.h"
#include "cli/takeover.h"
#include "report/report.h"
#include "report/quality.h"
#include "share/share.h"

#ifdef __GLIBC__
#include <errno.h>
#include <malloc.h>
#endif
#include <pthread.h>
#include <systemd/sd-daemon.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* T4.1: the connectivity evaluator's status changes go to the early warning (system.silent). */
static void warn_status(void *ctx, const char *code, const char *was, const char *now,
                        int64_t last_seen)
{
    dtm_warn_system_status(ctx, code, was, now, last_seen);
}

/* DATA_DIR/serve.addr: where this server's plain HTTP listener answers (HOST:PORT), so that
 * `dtm status` finds it whatever flags it was started with; removed when it stops (host NULL). */
static void addr_file_write(const struct dtm_conf *c, const char *host, int port)
{
    char path[DTM_PATH_MAX];
    FILE *f;
    dtm_conf_path(c, "serve.addr", path, sizeof(path));
    if (!host) {
        unlink(path);
        return;
    }
    if ((f = fopen(path, "w"))) {
        fprintf(f, "%s:%d\n", strcmp(host, "0.0.0.0") && *host ? host : "127.0.0.1", port);
        fclose(f);
    }
}

/* SIGUSR2: an upgrade without downtime — the binary at the path this server was started from
 * (a new version, once installed there) is started as `dtm serve ARGS --takeover` and takes the
 * listening sockets over (cli/takeover.c). Under systemd it announces itself as the main process
 * (NotifyAccess=all). The arguments are made before fork: the child only calls execv. */
static void spawn_successor(const char *exe, int argc, char **argv)
{
    char **args = calloc((size_t)argc + 4, sizeof(*args));
    bool has = false;
    int n = 0;
    pid_t pid;
    if (!args || !*exe) {
        dtm_log(DTM_LOG_ERROR, "upgrade: cannot start a successor (no path to this binary)", NULL);
        free(args);
        return;
    }
    args[n++] = (char *)exe;
    args[n++] = (char *)"serve";
    for (int i = 0; i < argc; i++) {
        has |= strcmp(argv[i], "--takeover") == 0;
        args[n++] = argv[i];
    }
    if (!has)
        args[n++] = (char *)"--takeover";
    args[n] = NULL;
    pid = fork();
    if (pid == 0) {
        /* the signal mask is inherited, as the successor wants it: it waits for the same ones */
        execv(exe, args);
        _exit(127);
    }
    if (pid < 0)
        dtm_logf(DTM_LOG_ERROR, "upgrade: cannot start a successor", "\"errno\":%d", errno);
    else
        dtm_logf(DTM_LOG_INFO, "upgrade: successor started", "\"pid\":%ld", (long)pid);
    free(args);
}

/* Configurations replaced by SIGHUP stay allocated until exit: handlers may still read them. */
struct conf_node {
    struct dtm_conf conf;
    struct conf_node *next;
};

static int reload(struct dtm_server_env *env, struct dtm_server *srv, struct conf_node **confs,
                  const char *data_dir, const char *config_file, const char *http,
                  const char *https)
{
    struct conf_node *n = calloc(1, sizeof(*n));
    char err[512] = "";
    int rc;
    if (!n)
        return DTM_ENOMEM;
    if ((rc = dtm_cli_load_conf(data_dir, config_file, &n->conf))) {
        free(n);
        dtm_log(DTM_LOG_ERROR, "reload failed; keeping the running configuration", NULL);
        return rc;
    }
    /* listeners are not moved by a reload: keep the addresses in use */
    snprintf(n->conf.http, sizeof(n->conf.http), "%s", http);
    snprintf(n->conf.https, sizeof(n->conf.https), "%s", https);
    n->next = *confs;
    *confs = n;
    env->conf = &n->conf;
    if (strcmp(https, "off") != 0 && dtm_server_reload_tls(srv, err, sizeof(err))) {
        struct dtm_buf f;
        dtm_buf_init(&f, 1024);
        dtm_buf_addc(&f, "\"error\":");
        dtm_buf_json_strc(&f, err);
        dtm_log(DTM_LOG_ERROR, "TLS reload failed; keeping the old certificate", f.p);
        dtm_buf_free(&f);
    }
    /* dataset definitions stored by another node (PostgreSQL) or a command */
    {
        struct dtm_store *st = NULL;
        if (dtm_cli_open_store(env->conf, &st) == DTM_OK) {
            if (dtm_cli_dict_refresh(st, env->dict))
                dtm_log(DTM_LOG_ERROR, "cannot read the stored dataset definitions", NULL);
            st->ops->close(st);
        }
    }
    dtm_log(DTM_LOG_INFO, "configuration reloaded", NULL);
    return DTM_OK;
}

int dtm_cmd_serve(int argc, char **argv)
{
    static const char usage[] = "dtm serve [--data-dir DIR] [--config FILE] [--http ADDR:PORT|off] "
                                "[--https ADDR:PORT|off] [--takeover]";
    const char *config_file = NULL, *http = NULL, *https = NULL;
    bool takeover = false;
    struct dtm_cli_opt opts[] = {{"config", &config_file, NULL},
                                 {"http", &http, NULL},
                                 {"https", &https, NULL},
                                 {"takeover", NULL, &takeover}};
    struct dtm_cli_common com;
    const char *pos[1];
    size_t npos;
    struct conf_node *confs = calloc(1, sizeof(*confs));
    struct dtm_server_env env = {0};
    struct dtm_keyring keys;
    struct dtm_store *st = NULL;
    struct dtm_writer *writer = NULL;
    struct dtm_batches *batches = NULL;
    struct dtm_server *srv = NULL;
    struct dtm_conn *conn = NULL;
    struct dtm_connlog *connlog = NULL;
    struct dtm_retention *retention = NULL;
    struct dtm_reports *reports = NULL; /* issue 7: scheduled reports */
    struct dtm_backup_job *backup_job = NULL;
    struct dtm_pusher *pusher = NULL; /* F3: subscriptions (share/) */
    struct dtm_audit *audit = NULL;
    struct dtm_alerts *alerts = NULL;
    struct dtm_warn *warn = NULL;
    struct dtm_anomaly_job *anomaly = NULL;
    struct dtm_recon_job *recon = NULL; /* issue 7: reconciliation mismatches raise alerts */
    struct dtm_takeover *tko = NULL;
    int handed[2] = {-1, -1};
    bool handing_over = false;
    const char *stop_signal = NULL;
    uint64_t watchdog_us = 0;
    int64_t last_ping = 0;
    char path[DTM_PATH_MAX], err[512], http_addr[128], https_addr[128], self_exe[DTM_PATH_MAX];
    sigset_t set;
    int rc, exit_code = DTM_EXIT_FAIL;

    if (!confs)
        return DTM_EXIT_FAIL;
#ifdef __GLIBC__
    /* Requests allocate and free the same sizes all day: keep freed memory instead of giving it
     * back to the kernel and faulting it in again (measured: 6 % of worker time in page faults). */
    mallopt(M_TRIM_THRESHOLD, 8 << 20);
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
#endif
    rc = dtm_cli_parse(argc, argv, opts, DTM_ARRAY_LEN(opts), &com, pos, 0, &npos, usage);
    if (rc || com.help) {
        free(confs);
        if (com.help)
            printf("usage: %s\n", usage);
        return com.help ? DTM_EXIT_OK : rc;
    }
    /* Block the signals in every thread; this one waits for them with sigwait. */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGPIPE);
    sigaddset(&set, SIGUSR1); /* a successor took the listening sockets (cli/takeover.c) */
    sigaddset(&set, SIGUSR2); /* start a successor (an upgraded binary) */
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    if (dtm_cli_load_conf(com.data_dir, config_file, &confs->conf))
        goto out;
    if (http)
        snprintf(confs->conf.http, sizeof(confs->conf.http), "%s", http);
    if (https)
        snprintf(confs->conf.https, sizeof(confs->conf.https), "%s", https);
    snprintf(http_addr, sizeof(http_addr), "%s", confs->conf.http);
    snprintf(https_addr, sizeof(https_addr), "%s", confs->conf.https);
    env.conf = &confs->conf;
    dtm_log_set_buffered(true);
    /* the path of this binary, for an upgrade (SIGUSR2): the file there may be replaced later */
    {
        ssize_t k = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
        self_exe[k > 0 ? k : 0] = '\0';
    }

    dtm_conf_path(env.conf, "master.key", path, sizeof(path));
    if (dtm_keyring_load(path, &keys, err, sizeof(err))) {
        dtm_cli_error("%s", err);
        goto out;
    }
    env.keys = &keys;
    /* issue 10: a restart without downtime. The running server's listening sockets come here
     * first; it then stops accepting (connections wait on the sockets), answers what it has,
     * ends cleanly, and this server starts on its sockets: the store is not opened by both. */
    if (takeover) {
        int ctl;
        rc = dtm_takeover_request(env.conf, handed, &ctl, err, sizeof(err));
        if (rc == DTM_ENOTFOUND) {
            dtm_log(DTM_LOG_INFO, "takeover: no server runs on this data dir; starting as usual",
                    NULL);
        } else if (rc) {
            dtm_cli_error("%s", err);
            goto out;
        } else {
            int64_t t0 = dtm_mono_us();
            dtm_log(DTM_LOG_INFO, "takeover: listening sockets received; the running server ends",
                    NULL);
            /* systemd: this process is the service from now on (NotifyAccess=all) */
            sd_notifyf(0, "MAINPID=%lu\nSTATUS=taking over", (unsigned long)getpid());
            if (dtm_takeover_finish(ctl, env.conf->drain_timeout + 120, err, sizeof(err))) {
                dtm_cli_error("%s", err);
                goto out;
            }
            dtm_logf(DTM_LOG_INFO, "takeover: the previous server has ended", "\"ms\":%lld",
                     (long long)((dtm_mono_us() - t0) / 1000));
        }
    }
    if (dtm_cli_open_store(env.conf, &st))
        goto out;
    if (st->ops->ready(st)) {
        dtm_cli_error("the database is not writable");
        goto out;
    }
    env.dict = dtm_cli_dict(st);
    if (!env.dict) {
        dtm_cli_error("cannot load the data dictionary");
        goto out;
    }
    /* live rollups that miss records (an older data dir, or the last deltas lost in a crash)
     * are filled before serving */
    if (st->ops->cube_check) {
        bool lagging = false;
        if (st->ops->cube_check(st, &lagging)) {
            dtm_cli_error("cannot check the rollups");
            goto out;
        }
        if (lagging)
            dtm_log(DTM_LOG_WARN, "rollups miss the last receipts (a crash?): rebuilding", NULL);
    }
    for (size_t i = 0; i < dtm_dict_count(env.dict); i++) {
        const struct dtm_dataset *ds = dtm_dict_at(env.dict, i);
        int64_t t0 = dtm_now_us(), n;
        if (dtm_cube_rebuild(st, ds, &n)) {
            dtm_cli_error("cannot build the rollups of dataset %s", ds->code);
            goto out;
        }
        if (n >= 0)
            dtm_logf(DTM_LOG_INFO, "rollups rebuilt",
                     "\"dataset\":\"%s\",\"records\":%lld,\"ms\":%lld", ds->code, (long long)n,
                     (long long)((dtm_now_us() - t0) / 1000));
    }
    st->ops->close(st);
    st = NULL;
    dtm_metrics_start();
    if (dtm_writer_start(env.conf, &writer, err, sizeof(err))) {
        dtm_cli_error("%s", err);
        goto out;
    }
    env.writer = writer;
    if (dtm_batches_start(&env.conf, env.dict, env.keys, writer, &batches, err, sizeof(err))) {
        dtm_cli_error("%s", err);
        goto out;
    }
    env.batches = batches;
    if (dtm_connlog_start(&env.conf, env.dict, env.keys, writer, &connlog, err, sizeof(err)) ||
        dtm_retention_start(&env.conf, writer, &retention, err, sizeof(err))) {
        dtm_cli_error("%s", err);
        goto out;
    }
    env.connlog = connlog;
    /* S3: the audit trail, appended through the writer */
    if (dtm_audit_start(&env.conf, keys.audit_key, writer, &audit, err, sizeof(err))) {
        dtm_cli_error("%s", err);
        goto out;
    }
    env.audit = audit;
    dtm_retention_audit(retention, audit);
    /* issue 10: scheduled backups ([backup] schedule_hours) */
    if (dtm_backup_job_start(&env.conf, &backup_job, err, sizeof(err))) {
        dtm_cli_error("%s", err);
        goto out;
    }
    /* F3: push sharing, the delivery of consumers' subscriptions */
    if (dtm_push_start(&env.conf, env.dict, &pusher, err, sizeof(err))) {
        dtm_cli_error("%s", err);
        goto out;
    }
    /* T5.3: the alert engine and its delivery channels */
    if (dtm_alerts_start(&env.conf, keys.audit_key, &alerts, err, sizeof(err))) {
        dtm_cli_error("%s", err);
        goto out;
    }
    env.alerts = alerts;
    /* T4.1: the early-warning rules, raising through the alert engine */
    if (dtm_warn_start(&env.conf, alerts, &warn, err, sizeof(err))) {
        dtm_cli_error("%s", err);
        goto out;
    }
    env.warn = warn;
    /* issue 7 item 3: the periodic reconciliation check ([quality] check_interval) */
    if (dtm_recon_job_start(&env.conf, env.dict, alerts, &recon, err, sizeof(err))) {
        dtm_cli_error("%s", err);
        goto out;
    }
    /* issue 7 item 6: anomalies of each system's hourly series ([anomaly]) */
    if (dtm_anomaly_start(&env.conf, env.dict, alerts, &anomaly, err, sizeof(err))) {
        dtm_cli_error("%s", err);
        goto out;
    }
    if (dtm_conn_start(&env.conf, env.dict, &conn, err, sizeof(err))) {
        dtm_cli_error("%s", err);
        goto out;
    }
    env.conn = conn;
    dtm_conn_watch(conn, warn_status, warn);
    /* issue 7: the reports of each closed period ([reports] schedule) */
    if (dtm_reports_start(&env.conf, env.dict, &reports, err, sizeof(err))) {
        dtm_cli_error("%s", err);
        goto out;
    }
    env.seen = dtm_writer_touch;
    env.key_cache = dtm_key_cache_create(env.conf);
    srv = dtm_server_create(&env, err, sizeof(err));
    if (!srv || dtm_server_start(srv, http_addr, https_addr, handed, err, sizeof(err))) {
        dtm_cli_error("%s", err);
        goto out;
    }
    {
        struct dtm_buf f;
        int hp = dtm_server_port(srv, false), sp = dtm_server_port(srv, true);
        char host[128], detail[DTM_AUDIT_DETAIL_MAX] = "{}";
        int port;
        dtm_buf_init(&f, 4096);
        dtm_buf_printf(&f, "\"version\":\"%s\",\"pid\":%ld,\"data_dir\":", DTM_VERSION,
                       (long)getpid());
        dtm_buf_json_strc(&f, com.data_dir);
        if (hp && !dtm_conf_split_addr(http_addr, host, sizeof(host), &port)) {
            dtm_buf_printf(&f, ",\"http\":\"http://%s:%d/\",\"http_port\":%d", host, hp, hp);
            addr_file_write(env.conf, host, hp);
        }
        if (sp && !dtm_conf_split_addr(https_addr, host, sizeof(host), &port))
            dtm_buf_printf(&f, ",\"https\":\"https://%s:%d/\",\"https_port\":%d",
                           strcmp(host, "0.0.0.0") ? host : "localhost", sp, sp);
        dtm_log(DTM_LOG_INFO, "listening", f.err ? NULL : f.p);
        /* the same facts (no secrets) open the server's part of the audit trail */
        if (!f.err && f.n + 3 <= sizeof(detail))
            snprintf(detail, sizeof(detail), "{%.*s}", (int)f.n, f.p);
        dtm_audit_record(audit, &(struct dtm_audit_event){"server", "dtm serve", "server.started",
                                                          "", detail, NULL});
        dtm_buf_free(&f);
    }
    handed[0] = handed[1] = -1; /* the server's now */
    dtm_takeover_listen(env.conf, srv, &tko);
    /* systemd (Type=notify): ready now that the listeners accept; a no-op elsewhere */
    sd_notifyf(0, "READY=1\nSTATUS=serving\nMAINPID=%lu", (unsigned long)getpid());
    if (sd_watchdog_enabled(0, &watchdog_us) <= 0)
        watchdog_us = 0;
    for (;;) {
        struct timespec tick = {0, 200 * 1000 * 1000};
        int sig = sigtimedwait(&set, NULL, &tick);
        dtm_log_flush();
        /* WatchdogSec=: the signal loop is alive (every 200 ms it comes here) — pinged at half
         * the interval */
        if (watchdog_us && dtm_mono_us() - last_ping >= (int64_t)watchdog_us / 2) {
            sd_notify(0, "WATCHDOG=1");
            last_ping = dtm_mono_us();
        }
        if (sig < 0)
            continue;
        if (sig == SIGPIPE)
            continue;
        if (sig == SIGUSR2) {
            if (tko)
                spawn_successor(self_exe, argc, argv);
            else /* it could not take the sockets, and binding them again would serve twice */
                dtm_log(DTM_LOG_ERROR,
                        "upgrade refused: this server has no serve.sock to hand "
                        "its sockets over (see the log at start)",
                        NULL);
            continue;
        }
        if (sig == SIGUSR1) {
            if (!dtm_takeover_requested(tko))
                continue;
            dtm_logf(DTM_LOG_INFO, "stopping: a successor took over the listening sockets",
                     "\"timeout_s\":%lld", (long long)env.conf->drain_timeout);
            stop_signal = "{\"signal\":\"SIGUSR1\",\"reason\":\"takeover\"}";
            handing_over = true;
            /* not STOPPING: for systemd the service goes on, in the successor */
            sd_notify(0, "STATUS=handing over to the successor");
            break;
        }
        if (sig == SIGHUP) {
            dtm_log(DTM_LOG_INFO, "SIGHUP: reloading configuration and TLS certificate", NULL);
            sd_notify(0, "RELOADING=1\nSTATUS=reloading");
            if (reload(&env, srv, &confs, com.data_dir, config_file, http_addr, https_addr) ==
                DTM_OK)
                dtm_audit_record(audit, &(struct dtm_audit_event){"server", "dtm serve",
                                                                  "config.reloaded", "dtm.conf",
                                                                  "{\"signal\":\"SIGHUP\"}", NULL});
            sd_notify(0, "READY=1\nSTATUS=serving");
            continue;
        }
        dtm_logf(DTM_LOG_INFO, "stopping: draining in-flight requests",
                 "\"signal\":\"%s\",\"timeout_s\":%lld", sig == SIGINT ? "SIGINT" : "SIGTERM",
                 (long long)env.conf->drain_timeout);
        stop_signal = sig == SIGINT ? "{\"signal\":\"SIGINT\"}" : "{\"signal\":\"SIGTERM\"}";
        sd_notify(0, "STOPPING=1\nSTATUS=draining");
        break;
    }
    /* live event streams never end by themselves: end them so draining does not wait for them */
    dtm_conn_stop(conn);
    dtm_server_drain(srv, env.conf->drain_timeout, handing_over);
    exit_code = DTM_EXIT_OK;
    addr_file_write(env.conf, NULL, 0);
out:
    /* order: the running batch stops after its current chunk (it resumes at the next start); the
     * writer finishes every queued job (each waiting request is resumed and answered; later ones
     * get 503), then the listeners stop, then the writer's memory goes. The connection logs of
     * the calls answered so far go to the writer before it stops (calls cut off later are not
     * logged); the retention job ends after its current chunk. */
    dtm_takeover_stop(tko); /* serve.sock goes; a successor binds its own after this one ends */
    dtm_conn_stop(conn);
    dtm_connlog_stop(connlog);
    dtm_retention_stop(retention);
    dtm_reports_stop(reports); /* a report being built ends first */
    /* F3: the delivery in flight ends, its outcome stored */
    dtm_push_stop(pusher);
    dtm_backup_job_stop(backup_job); /* a backup under way ends first */
    dtm_batches_stop(batches);
    dtm_warn_stop(warn);       /* its sweeps raise no more */
    dtm_anomaly_stop(anomaly); /* a check under way ends first; it raises no more */
    dtm_recon_job_stop(recon); /* a check under way ends first; it raises no more */
    recon = NULL;
    dtm_alerts_stop(alerts); /* applies what is queued, answers waiting requests */
    /* S3: server.stopped and the chain head as the server leaves it, before the writer stops */
    dtm_audit_stop(audit, stop_signal
                              ? &(struct dtm_audit_event){"server", "dtm serve", "server.stopped",
                                                          "", stop_signal, NULL}
                              : NULL);
    dtm_writer_stop(writer);
    dtm_server_destroy(srv);
    dtm_conn_free(conn); /* after the listeners: their streams' free callbacks use it */
    dtm_batches_free(batches);
    dtm_connlog_free(connlog); /* after the listeners: they add rows until they are gone */
    dtm_writer_free(writer);
    dtm_audit_free(audit);   /* after the listeners: a late download may still record */
    dtm_warn_free(warn);     /* after the listeners: a late request may still feed it */
    dtm_alerts_free(alerts); /* after the listeners: a late request may still raise */
    dtm_key_cache_destroy(env.key_cache);
    if (st)
        st->ops->close(st);
    if (env.dict)
        dtm_dict_destroy(env.dict);
    dtm_keyring_wipe(&keys);
    for (int i = 0; i < 2; i++)
        if (handed[i] >= 0)
            close(handed[i]); /* received, never served on */
    /* last: closing the successor's connection tells it this server has ended */
    dtm_takeover_free(tko);
    while (confs) {
        struct conf_node *n = confs->next;
        free(confs);
        confs = n;
    }
    if (exit_code == DTM_EXIT_OK)
        dtm_log(DTM_LOG_INFO, "stopped", NULL);
    dtm_log_set_buffered(false);
    return exit_code;
}
