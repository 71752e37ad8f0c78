/* conf/conf.c — the declarative configuration table and dtm.conf parsing (inih). */
#include "conf/conf.h"

#include <assert.h>
#include <ini.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum ctype { C_STR, C_INT, C_BOOL, C_DBL };

struct centry {
    const char *section;
    const char *key;
    enum ctype type;
    size_t off;
    size_t size; /* for strings */
    const char *def;
    int64_t min, max; /* for integers */
    const char *desc;
};

#define S(sec, k, field, d, desc)                                                                  \
    {                                                                                              \
        sec, k, C_STR, offsetof(struct dtm_conf, field), sizeof(((struct dtm_conf *)0)->field), d, \
            0, 0, desc                                                                             \
    }
#define I(sec, k, field, d, lo, hi, desc)                                                          \
    {                                                                                              \
        sec, k, C_INT, offsetof(struct dtm_conf, field), 0, d, lo, hi, desc                        \
    }
#define B(sec, k, field, d, desc)                                                                  \
    {                                                                                              \
        sec, k, C_BOOL, offsetof(struct dtm_conf, field), 0, d, 0, 0, desc                         \
    }
/* a decimal from 0 to 1 (a share) */
#define F(sec, k, field, d, desc)                                                                  \
    {                                                                                              \
        sec, k, C_DBL, offsetof(struct dtm_conf, field), 0, d, 0, 1, desc                          \
    }

static const struct centry table[] = {
    S("server", "http", http, "127.0.0.1:8080",
      "plain-HTTP listener ADDR:PORT, or off; loopback only unless http_public = true"),
    S("server", "https", https, "0.0.0.0:8443", "HTTPS listener ADDR:PORT (TLS 1.2+), or off"),
    B("server", "http_public", http_public, "false",
      "allow the plain-HTTP listener on a non-loopback address (not recommended)"),
    I("server", "threads", threads, "0", 0, 256, "HTTP worker threads; 0 = one per CPU core"),
    I("server", "max_connections", max_connections, "4096", 16, 1000000,
      "simultaneous client connections at most"),
    I("server", "connection_timeout", connection_timeout, "30", 1, 3600,
      "seconds of inactivity before a connection is closed (slow clients)"),
    I("server", "header_timeout", header_timeout, "30", 1, 3600,
      "seconds a request's headers may take in all, counted from the connection or the previous "
      "answer: a client sending them a byte at a time (slowloris) is cut off"),
    I("server", "drain_timeout", drain_timeout, "30", 0, 3600,
      "seconds SIGTERM waits for in-flight requests before stopping"),
    S("tls", "cert", tls_cert, "tls.crt", "PEM certificate chain (relative to the data dir)"),
    S("tls", "key", tls_key, "tls.key", "PEM private key (relative to the data dir)"),
    S("tls", "priorities", tls_priorities,
      "SECURE256:+SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:+AES-128-"
      "GCM:+CHACHA20-POLY1305:-SHA1:-RSA:%SERVER_PRECEDENCE",
      "GnuTLS priority string: TLS 1.2+ with AEAD suites and forward secrecy only"),
    S("metrics", "token", metrics_token, "",
      "GET /metrics: the bearer token Prometheus must send (store:NAME = a secret of `dtm secret "
      "set`); empty = only clients on this machine (loopback) may read the metrics"),
    S("store", "backend", backend, "sqlite", "storage backend: sqlite | postgresql"),
    S("store", "database", database, "dtm.db", "SQLite database file (relative to the data dir)"),
    S("store", "dsn", store_dsn, "",
      "PostgreSQL: libpq connection string (host=… port=… dbname=… user=… sslmode=…)"),
    S("store", "password_file", store_password_file, "",
      "PostgreSQL: file holding the password (relative to the data dir); empty = the DSN's, "
      "PGPASSWORD or ~/.pgpass"),
    S("store", "sslrootcert", store_sslrootcert, "",
      "PostgreSQL over TLS: CA certificate(s) the database's certificate must chain to (relative "
      "to the data dir; with sslmode=verify-full in dsn); empty = the DSN's sslrootcert"),
    S("store", "sslcert", store_sslcert, "",
      "PostgreSQL over TLS: client certificate for a server that asks for one (relative to the "
      "data dir); empty = the DSN's sslcert"),
    S("store", "sslkey", store_sslkey, "",
      "PostgreSQL over TLS: the client certificate's private key, mode 0600 (relative to the "
      "data dir); empty = the DSN's sslkey"),
    I("ingest", "max_body", max_body, "33554432", 1024, (int64_t)1 << 40,
      "bytes of one realtime request body at most (413 above)"),
    I("ingest", "max_records", max_records, "10000", 1, 1000000,
      "records of one realtime request at most (413 above)"),
    I("ingest", "idempotency_ttl", idempotency_ttl, "86400", 60, 30 * 86400,
      "seconds an Idempotency-Key answer is kept and replayed"),
    I("ingest", "commit_max_records", commit_max_records, "20000", 1, 1000000,
      "records one group commit writes at most"),
    I("ingest", "queue_max", queue_max, "20000", 1, 10000000,
      "requests waiting for the writer at most before answering 503"),
    I("ingest", "max_batch", max_batch, "17179869184", 1024, (int64_t)1 << 50,
      "bytes of one batch file at most, after gzip decompression (413 above)"),
    I("ingest", "batch_chunk", batch_chunk, "50000", 1, 200000,
      "batch rows stored per commit (a restarted batch resumes after the last one)"),
    I("systems", "online_within", online_within, "300", 1, 30 * 86400,
      "seconds since its last heartbeat or traffic within which a system counts as online"),
    F("systems", "degraded_error_rate", degraded_error_rate, "0.2",
      "failed share of a system's last hour (0 to 1) from which it counts as degraded"),
    I("systems", "check_interval", check_interval, "10", 1, 3600,
      "seconds between evaluations of every system's status (changes are recorded as intervals)"),
    I("systems", "probe_interval", probe_interval, "60", 1, 86400,
      "seconds between health probes of the systems registered with a probe URL"),
    I("systems", "probe_timeout", probe_timeout, "5", 1, 300,
      "seconds a health probe may take; a slower answer counts as failing"),
    I("systems", "max_live_streams", max_live_streams, "64", 0, 100000,
      "concurrent GET /api/v1/live event streams at most (503 beyond)"),
    I("keys", "rotate_grace", rotate_grace, "86400", 0, 90 * 86400,
      "seconds an old API key stays valid after `dtm key rotate`"),
    S("oauth", "issuer", oauth_issuer, "dtm",
      "iss of the OAuth access tokens issued by POST /oauth/token (and required in those "
      "presented)"),
    I("oauth", "token_ttl", oauth_token_ttl, "300", 1, 3600,
      "seconds an OAuth access token is valid (short-lived; at most one hour)"),
    I("oauth", "leeway", oauth_leeway, "30", 0, 30,
      "seconds of clock difference tolerated when checking a token's exp, nbf and iat"),
    I("session", "idle_timeout", session_idle_timeout, "1800", 1, 7 * 86400,
      "seconds without a request after which a person's session ends (sign in again)"),
    I("session", "absolute_timeout", session_absolute_timeout, "43200", 1, 30 * 86400,
      "seconds after sign-in after which a person's session ends however active it is"),
    I("session", "live_stream_max", session_live_stream_max, "120", 1, 3600,
      "seconds a person's GET /api/v1/live stream runs before it ends and the browser opens it "
      "again, its session checked again (a signed-out tab stops being fed within this time)"),
    I("session", "lockout_after", session_lockout_after, "5", 1, 1000,
      "failed logins of one user name, in a row, after which the name is locked for a while "
      "(each failure also delays the next attempt: 0.25 s, 0.5 s, 1 s, … up to 30 s)"),
    I("session", "lockout_minutes", session_lockout_minutes, "15", 1, 7 * 1440,
      "minutes a locked user name stays locked"),
    I("session", "ip_lockout_after", session_ip_lockout_after, "20", 1, 100000,
      "failed logins from one source address after which it may not try again for "
      "lockout_minutes"),
    S("log", "level", log_level, "info", "debug | info | warn | error"),
    B("log", "access", access_log, "true", "one JSON line per HTTP request"),
    B("connlog", "enabled", connlog_enabled, "true",
      "record every API call of a connected system as a connection_logs record (D6, G3)"),
    S("reports", "schedule", report_schedule, "month,quarter,year",
      "periods after whose close the server produces and keeps reports: day, week, month, "
      "quarter, year (comma-separated; empty = none)"),
    S("reports", "kinds", report_kinds, "transactions,connectivity,quality,ranking",
      "kinds of the scheduled reports"),
    S("reports", "langs", report_langs, "vi,en", "languages of the scheduled reports (vi, en)"),
    S("reports", "formats", report_formats, "json,csv,xlsx,pdf",
      "formats a kept report is offered in (each rendered from the kept document)"),
    I("reports", "keep", report_keep, "3650", 0, 36500,
      "days a produced report is kept (0 = forever)"),
    I("retention", "connection_logs_days", retention_connection_logs_days, "400", 1, 36500,
      "days connection_logs records are kept (at least 366: the law keeps them one year)"),
    I("audit", "head_log_interval", audit_head_log_interval, "300", 1, 86400,
      "seconds between server log lines with the audit chain head (seq, hash), so that a "
      "truncated audit trail is detectable; audit entries are kept forever"),
    I("backup", "schedule_hours", backup_schedule_hours, "0", 0, 24 * 366,
      "hours between the server's own backups (`dtm backup`); 0 = none (back up from cron or by "
      "hand). Each is encrypted under the master key, which is never in it: keep master.key "
      "apart from the backups"),
    S("backup", "dir", backup_dir, "backups",
      "directory of the scheduled backups (relative to the data dir; better on another disk)"),
    I("backup", "keep", backup_keep, "7", 1, 10000,
      "scheduled backups kept in dir; older ones are removed after a successful backup"),
    B("ratelimit", "enabled", ratelimit_enabled, "true",
      "token buckets per connected system and per source address (T2.2): RateLimit-* headers, "
      "429 with Retry-After"),
    S("ratelimit", "default_tier", ratelimit_default_tier, "silver",
      "tier of a system registered without --tier: bronze | silver | gold"),
    I("ratelimit", "bronze_rate", ratelimit_bronze_rate, "50", 1, 10000000,
      "requests per second of a bronze system"),
    I("ratelimit", "bronze_burst", ratelimit_bronze_burst, "100", 1, 100000000,
      "requests a bronze system may send at once (bucket size)"),
    I("ratelimit", "silver_rate", ratelimit_silver_rate, "500", 1, 10000000,
      "requests per second of a silver system"),
    I("ratelimit", "silver_burst", ratelimit_silver_burst, "1000", 1, 100000000,
      "requests a silver system may send at once (bucket size)"),
    I("ratelimit", "gold_rate", ratelimit_gold_rate, "50000", 1, 10000000,
      "requests per second of a gold system (the realtime benchmark's system is gold)"),
    I("ratelimit", "gold_burst", ratelimit_gold_burst, "100000", 1, 100000000,
      "requests a gold system may send at once (bucket size)"),
    I("ratelimit", "ip_rate", ratelimit_ip_rate, "100", 1, 10000000,
      "requests per second per source address without a valid API key; failed "
      "authentications have a bucket of this size of their own"),
    I("ratelimit", "ip_burst", ratelimit_ip_burst, "200", 1, 100000000,
      "requests at once per source address without a valid API key"),
    I("ratelimit", "max_conns_per_ip", ratelimit_max_conns_per_ip, "1024", 0, 1000000,
      "simultaneous connections per source address at most (more are refused at accept); "
      "0 = no cap; read at start"),
    I("alert", "suppress_minutes", alert_suppress_minutes, "30", 0, 7 * 24 * 60,
      "minutes after an alert is resolved during which the same rule and key is recorded again "
      "but not notified (suppression window)"),
    I("alert", "check_interval", alert_check_interval, "60", 1, 86400,
      "seconds between periodic alert checks (vulnerabilities past their deadline)"),
    S("alert", "channels", alert_channels, "",
      "channels every alert is sent to: names of [channel.NAME] sections, comma-separated"),
    S("alert", "channels_info", alert_channels_info, "",
      "channels of info alerts, instead of channels (empty = channels)"),
    S("alert", "channels_warning", alert_channels_warning, "",
      "channels of warning alerts, instead of channels (empty = channels)"),
    S("alert", "channels_critical", alert_channels_critical, "",
      "channels of critical alerts, instead of channels (empty = channels)"),
    I("alert", "max_attempts", alert_max_attempts, "6", 1, 100,
      "delivery attempts per alert and channel before it is marked failed"),
    I("alert", "retry_initial", alert_retry_initial, "5", 1, 3600,
      "seconds before the second delivery attempt; doubled after each failure (at most 1 h)"),
    B("alert", "notify_resolved", alert_notify_resolved, "true",
      "when a notified alert is resolved (its condition ended, or a person resolved it), the "
      "same channels are told"),
    /* T4.1: early warning (alert/warn.c); every rule raises an alert routed like the others */
    B("warning", "enabled", warn_enabled, "true",
      "early-warning rules (brute force, new admin address, unusual network, denied bursts, "
      "traffic and error spikes, silent systems) raise security alerts"),
    I("warning", "account_failures", warn_account_failures, "5", 1, 1000000,
      "failed logins of one existing user name within account_window that raise "
      "auth.brute_force_account"),
    I("warning", "account_window", warn_account_window, "300", 1, 86400,
      "seconds of the account brute-force window"),
    I("warning", "ip_failures", warn_ip_failures, "20", 1, 1000000,
      "failed authentications (logins, API keys, tokens, client secrets) from one address within "
      "ip_window that raise auth.brute_force_ip"),
    I("warning", "ip_window", warn_ip_window, "300", 1, 86400,
      "seconds of the address brute-force window"),
    I("warning", "denied_burst", warn_denied_burst, "50", 1, 1000000,
      "401 and 403 answers to one address within denied_window that raise http.denied_burst"),
    I("warning", "denied_window", warn_denied_window, "60", 1, 86400,
      "seconds of the denied-burst window"),
    B("warning", "admin_new_address", warn_admin_new_address, "true",
      "auth.admin_new_address when an administrator signs in from an address not seen for them "
      "before (the first sign-in is only recorded)"),
    I("warning", "network_prefix_v4", warn_network_prefix_v4, "24", 8, 32,
      "prefix length of a system's IPv4 networks for key.unusual_network"),
    I("warning", "network_prefix_v6", warn_network_prefix_v6, "48", 16, 128,
      "prefix length of a system's IPv6 networks for key.unusual_network"),
    I("warning", "network_learning", warn_network_learning, "86400", 0, 365 * 86400,
      "seconds a system is watched before a call from a new network raises key.unusual_network"),
    I("warning", "network_history_days", warn_network_history_days, "30", 1, 3650,
      "days a network a system called from is remembered"),
    I("warning", "spike_bucket", warn_spike_bucket, "60", 1, 3600,
      "seconds per bucket of each system's request and error baselines"),
    I("warning", "spike_factor", warn_spike_factor, "3", 1, 1000,
      "a bucket above spike_factor x (baseline + 2 x mean deviation) raises traffic.spike or "
      "errors.spike"),
    F("warning", "spike_alpha", warn_spike_alpha, "0.1",
      "weight (0 to 1) of the newest bucket in the exponentially weighted moving baseline"),
    I("warning", "spike_warmup", warn_spike_warmup, "10", 1, 100000,
      "buckets a system's baseline needs before spikes are raised"),
    I("warning", "spike_floor", warn_spike_floor, "300", 1, (int64_t)1 << 40,
      "requests in a bucket at least for traffic.spike"),
    I("warning", "error_floor", warn_error_floor, "30", 1, (int64_t)1 << 40,
      "failed requests (4xx, 5xx) in a bucket at least for errors.spike"),
    B("warning", "silent", warn_silent, "true",
      "system.silent when the connectivity evaluator finds a system offline (silent longer than "
      "[systems] online_within); cleared when it is back"),
    /* issue 7 item 6: anomalies of each system's hourly series (forecast/anomaly.c) */
    B("anomaly", "enabled", anomaly_enabled, "true",
      "`dtm serve` compares each system's transactions per hour and error rate with the 95 % "
      "band of their forecast and raises anomaly.transactions / anomaly.error_rate"),
    I("anomaly", "check_interval", anomaly_check_interval, "3600", 1, 86400,
      "seconds between anomaly checks (one node of a cluster runs each)"),
    I("anomaly", "consecutive", anomaly_consecutive, "3", 1, 24,
      "closed hours in a row outside the 95 % band that raise an anomaly alert"),
    I("anomaly", "min_history_days", anomaly_min_history_days, "7", 3, 60,
      "days of hourly history a system needs before its series are checked"),
    I("anomaly", "history_days", anomaly_history_days, "14", 3, 60,
      "days of hourly history the forecast is fitted on (read from the records)"),
    I("anomaly", "min_transactions", anomaly_min_transactions, "10", 1, 1000000,
      "transactions an hour needs for its error rate to be compared"),
    /* G4, Circular Art. 5.5: data quality and reconciliation (report/quality.c) */
    S("quality", "default_schedule", quality_default_schedule, "",
      "how often each system sends service_stats reports: day, week, month, quarter, year; "
      "empty = the update_frequency of the service_stats definition"),
    S("quality", "schedules", quality_schedules, "",
      "per-system reporting schedules overriding default_schedule: CODE=kind, comma-separated "
      "(e.g. MOF01=week,HCM=day)"),
    I("quality", "deadline_hours", quality_deadline_hours, "48", 0, 87600,
      "hours after the end of a period by which its service_stats report is on time"),
    F("quality", "reconciliation_tolerance", quality_recon_tolerance, "0.01",
      "share of the reported total (0 to 1) by which transactions counted may differ and still "
      "match"),
    I("quality", "reconciliation_floor", quality_recon_floor, "0", 0, (int64_t)1 << 40,
      "absolute difference between reported and counted totals that always matches (small "
      "totals)"),
    I("quality", "check_interval", quality_check_interval, "3600", 1, 86400,
      "seconds between the server's reconciliation checks (mismatches raise alerts)"),
    I("quality", "check_days", quality_check_days, "62", 1, 3660,
      "days back (by period start) the server's reconciliation check looks"),
    /* G5: ranking of the connected systems (report/quality.c); weights are relative */
    I("ranking", "weight_mandatory", rank_w_mandatory, "25", 0, 1000,
      "weight of the share of mandatory reports received on time"),
    I("ranking", "weight_usage", rank_w_usage, "15", 0, 1000,
      "weight of the usage and sharing volume (records accepted)"),
    I("ranking", "weight_quality", rank_w_quality, "20", 0, 1000,
      "weight of data quality (validity, duplicates, reconciliation)"),
    I("ranking", "weight_security", rank_w_security, "15", 0, 1000,
      "weight of standards and security compliance (security events, open vulnerabilities)"),
    I("ranking", "weight_efficiency", rank_w_efficiency, "15", 0, 1000,
      "weight of technical efficiency (uptime, error rate, response time)"),
    I("ranking", "weight_alerting", rank_w_alerting, "10", 0, 1000,
      "weight of the alerting criterion (alerts raised about the system)"),
    I("ranking", "class_a", rank_class_a, "80", 0, 100, "total score (0-100) from which class A"),
    I("ranking", "class_b", rank_class_b, "50", 0, 100, "total score (0-100) from which class B"),
    I("ranking", "response_target_ms", rank_response_target_ms, "1000", 1, 3600000,
      "average response time (ms) that scores full marks; slower scores target / average"),
    /* F3: push sharing, subscriptions of consumers (share/) */
    B("subscriptions", "enabled", sub_enabled, "true",
      "`dtm serve` delivers the subscriptions of consumers (signed webhook POSTs of aggregates)"),
    B("subscriptions", "allow_private", sub_allow_private, "false",
      "callback URLs may name loopback, private, link-local or other non-public addresses "
      "(refused by default: a subscription must not make the server call into its own network)"),
    I("subscriptions", "settle_seconds", sub_settle_seconds, "60", 0, 86400,
      "seconds after the end of an hour or day bucket before its aggregates are delivered "
      "(records late by more are not sent again: GET /api/v1/stats has them)"),
    I("subscriptions", "retry_initial", sub_retry_initial, "10", 1, 3600,
      "seconds before the second delivery attempt of a bucket; doubled after each failure, "
      "with random jitter"),
    I("subscriptions", "retry_max", sub_retry_max, "3600", 1, 86400,
      "seconds between delivery attempts at most; attempts go on until a 2xx answer"),
    I("subscriptions", "timeout", sub_timeout, "10", 1, 300,
      "seconds one delivery (connection and answer) may take"),
    I("subscriptions", "max_per_system", sub_max_per_system, "100", 1, 100000,
      "subscriptions one consumer system may hold"),
};

static int set(struct dtm_conf *c, const struct centry *e, const char *v, char *err, size_t errsz)
{
    char *base = (char *)c + e->off;
    switch (e->type) {
    case C_STR: {
        size_t n = strlen(v);
        if (n >= e->size) {
            snprintf(err, errsz, "value of %s.%s is too long", e->section, e->key);
            return DTM_EINVAL;
        }
        memcpy(base, v, n + 1);
        return DTM_OK;
    }
    case C_INT: {
        int64_t x;
        if (dtm_str_to_i64(dtm_str_c(v), &x) || x < e->min || x > e->max) {
            snprintf(err, errsz, "%s.%s must be an integer from %lld to %lld", e->section, e->key,
                     (long long)e->min, (long long)e->max);
            return DTM_EINVAL;
        }
        memcpy(base, &x, sizeof(x));
        return DTM_OK;
    }
    case C_BOOL: {
        bool b;
        if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on") || !strcmp(v, "1"))
            b = true;
        else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off") || !strcmp(v, "0"))
            b = false;
        else {
            snprintf(err, errsz, "%s.%s must be true or false", e->section, e->key);
            return DTM_EINVAL;
        }
        memcpy(base, &b, sizeof(b));
        return DTM_OK;
    }
    case C_DBL: {
        char *end = NULL;
        double x = strtod(v, &end);
        if (!*v || !end || *end || !(x >= (double)e->min && x <= (double)e->max)) {
            snprintf(err, errsz, "%s.%s must be a decimal from %lld to %lld", e->section, e->key,
                     (long long)e->min, (long long)e->max);
            return DTM_EINVAL;
        }
        memcpy(base, &x, sizeof(x));
        return DTM_OK;
    }
    }
    return DTM_EINTERNAL;
}

void dtm_conf_defaults(struct dtm_conf *c, const char *data_dir)
{
    char err[128];
    memset(c, 0, sizeof(*c));
    snprintf(c->data_dir, sizeof(c->data_dir), "%s", data_dir ? data_dir : "dtm-data");
    for (size_t i = 0; i < DTM_ARRAY_LEN(table); i++) {
        int rc = set(c, &table[i], table[i].def, err, sizeof(err));
        assert(rc == DTM_OK); /* a bad default is our bug */
        (void)rc;
    }
}

struct load_ctx {
    struct dtm_conf *c;
    char *err;
    size_t errsz;
    const char *path;
    int rc;
};

/* ---- [channel.NAME] sections: alert channels (T5.3; alert/deliver.c) */

#define CH_S(k, field, d)                                                                          \
    {                                                                                              \
        "channel", k, C_STR, offsetof(struct dtm_conf_channel, field),                             \
            sizeof(((struct dtm_conf_channel *)0)->field), d, 0, 0, NULL                           \
    }
static const struct centry channel_table[] = {
    CH_S("type", type, ""),
    CH_S("url", url, ""),
    CH_S("secret", secret, ""),
    CH_S("ca_file", ca_file, ""),
    {"channel", "timeout", C_INT, offsetof(struct dtm_conf_channel, timeout), 0, "10", 1, 300,
     NULL},
    CH_S("from", from, ""),
    CH_S("to", to, ""),
    CH_S("username", username, ""),
    CH_S("password", password, ""),
    {"channel", "tls", C_BOOL, offsetof(struct dtm_conf_channel, tls), 0, "true", 0, 0, NULL},
    CH_S("address", address, ""),
    {"channel", "facility", C_INT, offsetof(struct dtm_conf_channel, facility), 0, "16", 0, 23,
     NULL},
    CH_S("min_severity", min_severity, "info"),
    CH_S("rules", rules, ""),
};

/* The channel named by a section "channel.NAME", created with its defaults on first sight. */
static struct dtm_conf_channel *channel_of(struct dtm_conf *c, const char *name, char *err,
                                           size_t errsz)
{
    struct dtm_conf_channel *ch;
    size_t n = strlen(name);
    if (!n || n >= sizeof(ch->name) ||
        strspn(name, "abcdefghijklmnopqrstuvwxyz"
                     "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != n) {
        snprintf(err, errsz,
                 "channel names are 1 to 63 letters, digits, '-' or '_' (section [channel.%.63s])",
                 name);
        return NULL;
    }
    for (size_t i = 0; i < c->nchannels; i++)
        if (!strcmp(c->channels[i].name, name))
            return &c->channels[i];
    if (c->nchannels >= DTM_CONF_CHANNELS) {
        snprintf(err, errsz, "at most %d [channel.NAME] sections", DTM_CONF_CHANNELS);
        return NULL;
    }
    ch = &c->channels[c->nchannels++];
    memset(ch, 0, sizeof(*ch));
    snprintf(ch->name, sizeof(ch->name), "%s", name);
    for (size_t i = 0; i < DTM_ARRAY_LEN(channel_table); i++) {
        int rc =
            set((struct dtm_conf *)(void *)ch, &channel_table[i], channel_table[i].def, err, errsz);
        assert(rc == DTM_OK);
        (void)rc;
    }
    return ch;
}

static int channel_kv(struct load_ctx *x, const char *name, const char *key, const char *value)
{
    char e[256] = "";
    struct dtm_conf_channel *ch = channel_of(x->c, name, e, sizeof(e));
    size_t i = 0;
    if (ch) {
        for (i = 0; i < DTM_ARRAY_LEN(channel_table); i++)
            if (!strcmp(channel_table[i].key, key))
                break;
        if (i == DTM_ARRAY_LEN(channel_table))
            snprintf(e, sizeof(e), "unknown setting '%s' in section [channel.%s]", key, name);
        /* set() reads and writes through the offsets of channel_table, in a channel */
        else if (set((struct dtm_conf *)(void *)ch, &channel_table[i], value, e, sizeof(e)) ==
                 DTM_OK)
            return 1;
    }
    snprintf(x->err, x->errsz, "%s: %s", x->path, e);
    x->rc = DTM_EINVAL;
    return 0;
}

static int on_kv(void *user, const char *section, const char *key, const char *value)
{
    struct load_ctx *x = user;
    char e[256];
    if (x->rc)
        return 0;
    if (!strncmp(section, "channel.", 8))
        return channel_kv(x, section + 8, key, value);
    for (size_t i = 0; i < DTM_ARRAY_LEN(table); i++) {
        if (strcmp(table[i].section, section) || strcmp(table[i].key, key))
            continue;
        if (set(x->c, &table[i], value, e, sizeof(e))) {
            snprintf(x->err, x->errsz, "%s: %s", x->path, e);
            x->rc = DTM_EINVAL;
            return 0;
        }
        return 1;
    }
    snprintf(x->err, x->errsz, "%s: unknown setting '%s' in section [%s]", x->path, key, section);
    x->rc = DTM_EINVAL;
    return 0;
}

static bool severity_ok(const char *v)
{
    return !strcmp(v, "info") || !strcmp(v, "warning") || !strcmp(v, "critical");
}

/* Every name of a comma-separated [alert] list names a channel. */
static int check_route(const struct dtm_conf *c, const char *key, const char *list,
                       const char *name, char *err, size_t errsz)
{
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, ","), i;
        struct dtm_str t = dtm_str_trim((struct dtm_str){p, n});
        for (i = 0; t.n && i < c->nchannels; i++)
            if (dtm_str_eqc(t, c->channels[i].name))
                break;
        if (t.n && i == c->nchannels) {
            snprintf(err, errsz, "%s: alert.%s names channel '%.*s', which has no [channel.%.*s]",
                     name, key, (int)DTM_MIN(t.n, 64), t.p, (int)DTM_MIN(t.n, 64), t.p);
            return DTM_EINVAL;
        }
        p += n;
        if (*p)
            p++;
    }
    return DTM_OK;
}

/* T5.3: each channel has what its type needs; the routes name existing channels. */
static int check_channels(const struct dtm_conf *c, const char *name, char *err, size_t errsz)
{
    for (size_t i = 0; i < c->nchannels; i++) {
        const struct dtm_conf_channel *ch = &c->channels[i];
        const char *why = NULL;
        char host[256];
        int port;
        if (!strcmp(ch->type, "webhook")) {
            if (strncmp(ch->url, "http://", 7) && strncmp(ch->url, "https://", 8))
                why = "a webhook needs url = http://… or https://…";
        } else if (!strcmp(ch->type, "email")) {
            if (strncmp(ch->url, "smtp://", 7) && strncmp(ch->url, "smtps://", 8))
                why = "an email channel needs url = smtp://HOST:PORT or smtps://HOST:PORT";
            else if (!ch->from[0] || !ch->to[0])
                why = "an email channel needs from and to";
        } else if (!strcmp(ch->type, "syslog")) {
            if (strcmp(ch->address, "local") &&
                dtm_conf_split_addr(ch->address, host, sizeof(host), &port))
                why = "a syslog channel needs address = HOST:PORT (UDP) or local";
        } else {
            why = "type must be webhook, email or syslog";
        }
        if (!why && !severity_ok(ch->min_severity))
            why = "min_severity must be info, warning or critical";
        if (why) {
            snprintf(err, errsz, "%s: [channel.%s]: %s", name, ch->name, why);
            return DTM_EINVAL;
        }
    }
    if (check_route(c, "channels", c->alert_channels, name, err, errsz) ||
        check_route(c, "channels_info", c->alert_channels_info, name, err, errsz) ||
        check_route(c, "channels_warning", c->alert_channels_warning, name, err, errsz) ||
        check_route(c, "channels_critical", c->alert_channels_critical, name, err, errsz))
        return DTM_EINVAL;
    return DTM_OK;
}

/* [reports]: every word of a comma-separated list is one of the allowed (NULL-terminated). */
static int check_words(const char *list, const char *const *allowed, const char *key,
                       const char *name, char *err, size_t errsz)
{
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ","), i;
        struct dtm_str w = dtm_str_trim((struct dtm_str){p, n});
        for (i = 0; allowed[i] && !(w.n && dtm_str_eqc(w, allowed[i])); i++)
            ;
        if (w.n && !allowed[i]) {
            char values[128] = "";
            for (i = 0; allowed[i]; i++)
                snprintf(values + strlen(values), sizeof(values) - strlen(values), "%s%s",
                         i ? ", " : "", allowed[i]);
            snprintf(err, errsz, "%s: %s has '%.*s'; the values are %s", name, key, (int)w.n, w.p,
                     values);
            return DTM_EINVAL;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    return DTM_OK;
}

static int check_reports(const struct dtm_conf *c, const char *name, char *err, size_t errsz)
{
    static const char *const periods[] = {"day", "week", "month", "quarter", "year", NULL};
    static const char *const kinds[] = {"transactions", "connectivity", "quality", "ranking", NULL};
    static const char *const langs[] = {"vi", "en", NULL};
    static const char *const formats[] = {"json", "csv", "xlsx", "pdf", NULL};
    if (check_words(c->report_schedule, periods, "reports.schedule", name, err, errsz) ||
        check_words(c->report_kinds, kinds, "reports.kinds", name, err, errsz) ||
        check_words(c->report_langs, langs, "reports.langs", name, err, errsz) ||
        check_words(c->report_formats, formats, "reports.formats", name, err, errsz))
        return DTM_EINVAL;
    return DTM_OK;
}

/* Rules that a value's range cannot say, with their reason. */
static int check(const struct dtm_conf *c, const char *name, char *err, size_t errsz)
{
    const char *tier = c->ratelimit_default_tier;
    if (c->retention_connection_logs_days < 366) {
        snprintf(err, errsz,
                 "%s: retention.connection_logs_days is %lld, but connection logs must be kept at "
                 "least one year (D6, Circular 12/2025/TT-BKHCN Art. 8.3); use 366 or more",
                 name, (long long)c->retention_connection_logs_days);
        return DTM_EINVAL;
    }
    if (strcmp(tier, "bronze") && strcmp(tier, "silver") && strcmp(tier, "gold")) {
        snprintf(err, errsz, "%s: ratelimit.default_tier must be bronze, silver or gold (got %s)",
                 name, tier);
        return DTM_EINVAL;
    }
    if (check_channels(c, name, err, errsz))
        return DTM_EINVAL;
    if (check_reports(c, name, err, errsz))
        return DTM_EINVAL;
    return DTM_OK;
}

int dtm_conf_load_string(struct dtm_conf *c, const char *text, const char *name, char *err,
                         size_t errsz)
{
    struct load_ctx x = {c, err, errsz, name, DTM_OK};
    int line = 1;
    /* Debian's libinih reads a line in pieces of INI_MAX_LINE - 1 bytes (it is built with a
     * fixed line buffer) and takes the rest of a longer line for the next line: a long value
     * (a [store] dsn with its TLS paths) would be cut silently. Refused here, with its line. */
    _Static_assert(DTM_CONF_LINE_MAX == INI_MAX_LINE - 1, "DTM_CONF_LINE_MAX is libinih's");
    for (const char *p = text; *p; line++) {
        size_t n = strcspn(p, "\n");
        if (n > DTM_CONF_LINE_MAX) {
            snprintf(err, errsz,
                     "%s:%d: line longer than %d characters (dtm.conf's limit); shorten it "
                     "(e.g. [store] sslrootcert/sslcert/sslkey instead of the dsn's)",
                     name, line, DTM_CONF_LINE_MAX);
            return DTM_EINVAL;
        }
        p += n + (p[n] == '\n');
    }
    line = ini_parse_string(text, on_kv, &x);
    if (x.rc)
        return x.rc;
    if (line != 0) {
        snprintf(err, errsz, "%s:%d: syntax error", name, line);
        return DTM_EINVAL;
    }
    return check(c, name, err, errsz);
}

int dtm_conf_load(struct dtm_conf *c, const char *path, char *err, size_t errsz)
{
    struct dtm_buf text;
    char chunk[4096];
    size_t n;
    int rc;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errsz, "cannot open %s", path);
        return DTM_ENOTFOUND;
    }
    dtm_buf_init(&text, 1 << 20); /* a config larger than 1 MiB is a mistake */
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        dtm_buf_add(&text, chunk, n);
    fclose(f);
    if (text.err) {
        snprintf(err, errsz, "%s is larger than 1 MiB", path);
        dtm_buf_free(&text);
        return DTM_EINVAL;
    }
    rc = dtm_conf_load_string(c, text.p ? text.p : "", path, err, errsz);
    dtm_buf_free(&text);
    return rc;
}

int dtm_conf_sample(struct dtm_buf *out)
{
    const char *sec = "";
    dtm_buf_addc(out, "# dtm.conf — DTM configuration. Every setting is shown with its default.\n"
                      "# Unknown settings are refused at start. Reloaded on SIGHUP.\n");
    for (size_t i = 0; i < DTM_ARRAY_LEN(table); i++) {
        const struct centry *e = &table[i];
        if (strcmp(sec, e->section)) {
            sec = e->section;
            dtm_buf_printf(out, "\n[%s]\n", sec);
        }
        dtm_buf_printf(out, "# %s\n%s = %s\n", e->desc, e->key, e->def);
    }
    dtm_buf_addc(
        out,
        "\n# Alert channels (T5.3), one [channel.NAME] section each, named by alert.channels.\n"
        "# Every channel: min_severity = info|warning|critical, rules = names or prefixes* "
        "(empty = all).\n"
        "#[channel.ops-webhook]\n#type = webhook\n#url = https://ops.example/hooks/dtm\n"
        "#secret = store:ops-webhook (X-DTM-Signature: sha256=HMAC-SHA-256 of the body; the key\n"
        "#  is kept sealed in the store: `dtm secret set ops-webhook` reads it from stdin)\n"
        "#timeout = 10\n#ca_file =\n"
        "#[channel.ops-mail]\n#type = email\n#url = smtp://mail.example:587\n"
        "#tls = true (STARTTLS required)\n#ca_file =\n#username =\n#password = store:ops-mail\n"
        "#from = dtm@example.vn\n#to = soc@example.vn, oncall@example.vn\n"
        "#[channel.siem]\n#type = syslog\n#address = siem.example:514 (RFC 5424 over UDP; "
        "local = syslog(3))\n#facility = 16\n");
    return out->err;
}

void dtm_conf_path(const struct dtm_conf *c, const char *name, char *out, size_t outsz)
{
    if (name[0] == '/')
        snprintf(out, outsz, "%s", name);
    else
        snprintf(out, outsz, "%s/%s", c->data_dir, name);
}

const char *dtm_conf_default_data_dir(const char *given)
{
    const char *env;
    if (given && *given)
        return given;
    env = getenv("DTM_DATA_DIR");
    if (env && *env)
        return env;
    return "dtm-data";
}

int dtm_conf_split_addr(const char *s, char *host, size_t hostsz, int *port)
{
    const char *colon;
    size_t hl;
    int64_t p;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':')
            return DTM_EINVAL;
        hl = (size_t)(end - s - 1);
        if (hl >= hostsz)
            return DTM_EINVAL;
        memcpy(host, s + 1, hl);
        host[hl] = '\0';
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return DTM_EINVAL;
        hl = (size_t)(colon - s);
        if (hl >= hostsz)
            return DTM_EINVAL;
        memcpy(host, s, hl);
        host[hl] = '\0';
    }
    if (dtm_str_to_i64(dtm_str_c(colon + 1), &p) || p < 0 || p > 65535)
        return DTM_EINVAL;
    *port = (int)p;
    return DTM_OK;
}

bool dtm_conf_is_loopback(const char *host)
{
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
           strcmp(host, "localhost") == 0;
}
