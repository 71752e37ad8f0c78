/* conf — the configuration: one declarative table (section, key, type, default, field,
 * description) that parses dtm.conf (INI, via inih), rejects unknown keys, and generates the
 * commented sample written by `dtm init` (Redis's standardConfig, nginx's command table).
 * Also the data-dir layout. */
#ifndef DTM_CONF_H
#define DTM_CONF_H

#include "core/core.h"

#include <limits.h>

#define DTM_PATH_MAX 1024
/* bytes of one dtm.conf line at most (libinih's line buffer, INI_MAX_LINE - 1; conf.c) */
#define DTM_CONF_LINE_MAX 199

/* [channel.NAME] an alert channel (T5.3; alert/deliver.c). Secrets (secret, password) are
 * never logged; "store:NAME" names one kept sealed in the store (T4.2, gate.h). */
#define DTM_CONF_CHANNELS 8
struct dtm_conf_channel {
    char name[64];
    char type[12];              /* webhook | email | syslog */
    char url[1024];             /* webhook: http(s) URL; email: smtp:// or smtps:// server URL */
    char secret[256];           /* webhook: key of the X-DTM-Signature HMAC-SHA-256 */
    char ca_file[DTM_PATH_MAX]; /* CA certificates for https / STARTTLS ("" = the system's) */
    int64_t timeout;            /* s per attempt */
    char from[256];             /* email */
    char to[1024];              /* email: recipients, comma-separated */
    char username[128];         /* email: SMTP login ("" = none) */
    char password[256];
    bool tls;              /* email: TLS required (STARTTLS on smtp://; smtps:// is TLS anyway) */
    char address[256];     /* syslog: HOST:PORT (RFC 5424 over UDP) or "local" (syslog(3)) */
    int64_t facility;      /* syslog facility 0..23 (16 = local0) */
    char min_severity[12]; /* info | warning | critical: alerts below are not sent here */
    char rules[512];       /* rules sent here: names or prefixes ending in '*', comma-separated;
                              "" = every rule */
};

struct dtm_conf {
    char data_dir[DTM_PATH_MAX];
    char metrics_token[256]; /* [metrics] token: "" = loopback clients only */
    /* [server] */
    char http[128];   /* ADDR:PORT or "off" */
    char https[128];  /* ADDR:PORT or "off" */
    bool http_public; /* allow the plain-HTTP listener on a non-loopback address */
    int64_t threads;  /* HTTP worker threads; 0 = one per core */
    int64_t max_connections;
    int64_t connection_timeout; /* s, idle keep-alive and slow clients */
    int64_t header_timeout;     /* s a request's headers may take in all (slowloris) */
    int64_t drain_timeout;      /* s, SIGTERM waits this long for in-flight requests */
    /* [tls] */
    char tls_cert[DTM_PATH_MAX];
    char tls_key[DTM_PATH_MAX];
    char tls_priorities[256];
    /* [store] */
    char backend[16];
    char database[DTM_PATH_MAX];
    char store_dsn[1024];                   /* PostgreSQL: libpq connection string */
    char store_password_file[DTM_PATH_MAX]; /* PostgreSQL: "" = libpq's own sources */
    char store_sslrootcert[DTM_PATH_MAX];   /* PostgreSQL over TLS: "" = the DSN's */
    char store_sslcert[DTM_PATH_MAX];
    char store_sslkey[DTM_PATH_MAX];
    /* [ingest] */
    int64_t max_body;           /* bytes of one realtime request body */
    int64_t max_records;        /* records of one realtime request */
    int64_t idempotency_ttl;    /* s */
    int64_t commit_max_records; /* group commit: records per transaction at most */
    int64_t queue_max;          /* requests waiting for the writer before 503 */
    int64_t max_batch;          /* bytes of one batch file (decompressed) */
    int64_t batch_chunk;        /* batch rows per commit */
    /* [systems] connectivity (conn/) */
    int64_t online_within;      /* s since last seen within which a system is online */
    double degraded_error_rate; /* failed share of the last hour from which it is degraded */
    int64_t check_interval;     /* s between status evaluations */
    int64_t probe_interval;     /* s between health probes */
    int64_t probe_timeout;      /* s a probe may take */
    int64_t max_live_streams;   /* concurrent GET /api/v1/live streams */
    /* [keys] */
    int64_t rotate_grace; /* s an old key stays valid after `dtm key rotate` */
    /* [session] people's sessions and logins (CONTRACT §3; gate/session.c) */
    int64_t session_idle_timeout;     /* s without a request after which a session ends */
    int64_t session_live_stream_max;  /* s a person's live stream runs before it is reopened */
    int64_t session_absolute_timeout; /* s after sign-in after which a session ends anyway */
    int64_t session_lockout_after;    /* failed logins of one name before a lockout */
    int64_t session_lockout_minutes;  /* minutes a locked name stays locked */
    int64_t session_ip_lockout_after; /* failed logins from one address before it is refused */
    /* [oauth] access tokens of the client-credentials grant (T2.4; gate/jwt.c) */
    char oauth_issuer[128];  /* the tokens' iss */
    int64_t oauth_token_ttl; /* s an access token is valid (at most 3600) */
    int64_t oauth_leeway;    /* s of clock difference tolerated on exp, nbf, iat */
    /* [log] */
    char log_level[16];
    bool access_log;
    /* [connlog] connection logs as data (D6, G3) */
    bool connlog_enabled; /* every API call of a connected system is a connection_logs record */
    /* [reports] (report/report.h): produced by `dtm serve` after each period closes */
    char report_schedule[64]; /* period kinds: day,week,month,quarter,year */
    char report_kinds[128];   /* transactions,connectivity,quality,ranking */
    char report_langs[16];    /* vi,en */
    char report_formats[64];  /* formats listed for download: json,csv,xlsx,pdf */
    int64_t report_keep;      /* days a produced report is kept (0 = forever) */
    /* [retention] */
    int64_t retention_connection_logs_days; /* ≥ 366: the law keeps them at least one year */
    /* [audit] the audit trail (audit/; kept forever) */
    int64_t audit_head_log_interval; /* s between log lines with the audit chain head */
    /* [backup] scheduled backups of `dtm serve` (issue 10; backup/job.c) */
    int64_t backup_schedule_hours; /* 0 = none */
    char backup_dir[DTM_PATH_MAX]; /* relative to the data dir */
    int64_t backup_keep;           /* backups kept in backup_dir */
    /* [ratelimit] T2.2 (gate/ratelimit.c): requests per second and bucket size per tier */
    bool ratelimit_enabled;
    char ratelimit_default_tier[16]; /* bronze | silver | gold */
    int64_t ratelimit_bronze_rate, ratelimit_bronze_burst;
    int64_t ratelimit_silver_rate, ratelimit_silver_burst;
    int64_t ratelimit_gold_rate, ratelimit_gold_burst;
    int64_t ratelimit_ip_rate, ratelimit_ip_burst; /* per source address, without a valid key */
    int64_t ratelimit_max_conns_per_ip;            /* 0 = no cap (read at start only) */
    /* [alert] alerts and their channels (T5.3; alert/) */
    int64_t alert_suppress_minutes; /* after a resolution, the same rule+key is not notified */
    int64_t alert_check_interval;   /* s between periodic checks (overdue vulnerabilities) */
    char alert_channels[512];       /* channel names, comma-separated */
    char alert_channels_info[512];  /* per-severity overrides of channels ("" = channels) */
    char alert_channels_warning[512];
    char alert_channels_critical[512];
    int64_t alert_max_attempts;  /* delivery attempts per channel */
    int64_t alert_retry_initial; /* s before the second attempt, doubled after each */
    bool alert_notify_resolved;  /* a notified alert's resolution is notified too */
    /* [warning] early warning (T4.1; alert/warn.c) */
    bool warn_enabled;
    int64_t warn_account_failures, warn_account_window; /* failed logins of one name, s */
    int64_t warn_ip_failures, warn_ip_window;           /* failed authentications of an address */
    int64_t warn_denied_burst, warn_denied_window;      /* 401/403 answers to one address */
    bool warn_admin_new_address;
    int64_t warn_network_prefix_v4, warn_network_prefix_v6; /* bits of a system's networks */
    int64_t warn_network_learning;                          /* s watched before alerting */
    int64_t warn_network_history_days;                      /* days a network is remembered */
    int64_t warn_spike_bucket;                  /* s per bucket of the traffic baselines */
    int64_t warn_spike_factor;                  /* a bucket above factor × baseline is a spike */
    double warn_spike_alpha;                    /* EWMA weight of the newest bucket */
    int64_t warn_spike_warmup;                  /* buckets before a baseline is trusted */
    int64_t warn_spike_floor, warn_error_floor; /* requests / errors per bucket at least */
    bool warn_silent;                           /* system.silent when a system goes offline */
    /* [anomaly] anomalies of hourly series (issue 7 item 6; forecast/anomaly.c) */
    bool anomaly_enabled;
    int64_t anomaly_check_interval;   /* s between checks */
    int64_t anomaly_consecutive;      /* closed hours in a row outside the 95 % band */
    int64_t anomaly_min_history_days; /* days of history a system needs */
    int64_t anomaly_history_days;     /* days of history fitted */
    int64_t anomaly_min_transactions; /* an hour's records needed to compare its error rate */
    /* [quality] data quality and reconciliation (G4, Art. 5.5; report/quality.c) */
    char quality_default_schedule[16]; /* day|week|month|quarter|year: service_stats reports due */
    char quality_schedules[1024];      /* CODE=kind,… per-system schedules */
    int64_t quality_deadline_hours;    /* hours after a period's end a report is on time */
    double quality_recon_tolerance;    /* relative share of the reported total tolerated */
    int64_t quality_recon_floor;       /* absolute difference always tolerated */
    int64_t quality_check_interval;    /* s between the server's reconciliation checks */
    int64_t quality_check_days;        /* days back the server's check looks */
    /* [ranking] (G5; report/quality.c): weights of the criteria and class thresholds */
    int64_t rank_w_mandatory, rank_w_usage, rank_w_quality, rank_w_security, rank_w_efficiency,
        rank_w_alerting;
    int64_t rank_class_a, rank_class_b; /* total score (0–100) at least: class A, B */
    int64_t rank_response_target_ms;    /* average response time that scores full marks */
    /* [subscriptions] push sharing (F3; share/share.h) */
    bool sub_enabled;           /* `dtm serve` delivers subscriptions */
    bool sub_allow_private;     /* callback URLs may name loopback/private addresses */
    int64_t sub_settle_seconds; /* s after a bucket's end before it is delivered */
    int64_t sub_retry_initial;  /* s before the second attempt; doubled, with jitter */
    int64_t sub_retry_max;      /* s between attempts at most (retries never stop) */
    int64_t sub_timeout;        /* s a delivery may take */
    int64_t sub_max_per_system; /* live subscriptions of one system at most */
    struct dtm_conf_channel channels[DTM_CONF_CHANNELS];
    size_t nchannels;
};

/* Fills c with every default; data_dir as given. */
void dtm_conf_defaults(struct dtm_conf *c, const char *data_dir);

/* Reads an INI file over the current values. Unknown sections or keys, bad values → DTM_EINVAL
 * with "FILE: reason" in err. A missing file → DTM_ENOTFOUND. */
int dtm_conf_load(struct dtm_conf *c, const char *path, char *err, size_t errsz);

/* The same over text in memory (name is used in messages). */
int dtm_conf_load_string(struct dtm_conf *c, const char *text, const char *name, char *err,
                         size_t errsz);

/* Writes the commented sample configuration (every key, its default and description). */
int dtm_conf_sample(struct dtm_buf *out);

/* Resolves name against the data dir (absolute names are kept). */
void dtm_conf_path(const struct dtm_conf *c, const char *name, char *out, size_t outsz);

/* The data dir: DIR given, else $DTM_DATA_DIR, else ./dtm-data. */
const char *dtm_conf_default_data_dir(const char *given);

/* Splits "ADDR:PORT" ("[::1]:8443" for IPv6). DTM_OK or DTM_EINVAL. */
int dtm_conf_split_addr(const char *s, char *host, size_t hostsz, int *port);

/* Whether a listen host is a loopback address (127.0.0.0/8, ::1, localhost). */
bool dtm_conf_is_loopback(const char *host);

#endif
