/* store — durable storage behind one interface, so that SQLite (sqlite.c, the embedded default)
 * and PostgreSQL (pg.c, later) sit side by side (CONTRACT §8). A struct dtm_store is one
 * connection: the writer thread owns one, each HTTP worker thread opens one for reads, each CLI
 * command opens one. Only the writer (and CLI commands) write. SQL is kept portable
 * (ON CONFLICT … DO NOTHING, no SQLite-only functions in shared statements); every statement
 * is parameterised. Record content is opaque bytes to the store, except that content sealed
 * by the ingest pipeline (T4.2) is opened with s->keys before any callback sees it. */
#ifndef DTM_STORE_H
#define DTM_STORE_H

#include "conf/conf.h"
#include "core/core.h"

#define DTM_CODE_MAX 64 /* system code buffer */
#define DTM_ID_MAX 48   /* key ids, receipt ids */

struct dtm_system {
    char code[DTM_CODE_MAX];
    char name[256];
    char org[256];
    char role[16];             /* source | consumer | aggregator */
    char parent[DTM_CODE_MAX]; /* "" = none */
    bool masked;               /* configured for masked data (Art. 9.4) */
    int64_t created_at;        /* µs */
    int64_t last_seen;         /* µs, 0 = never */
    char tier[16];             /* rate-limit tier (T2.2): bronze | silver | gold; "" = default */
};

struct dtm_key {
    char id[DTM_ID_MAX];
    char system_code[DTM_CODE_MAX];
    int64_t created_at;
    int64_t expires_at; /* 0 = no expiry */
    int64_t revoked_at; /* 0 = not revoked */
};
typedef int (*dtm_key_cb)(void *ctx, const struct dtm_key *k);

/* A record ready to store: validated, masked, hashed (by ingest/pipeline.c). */
struct dtm_store_record {
    uint8_t key_hash[16];     /* keyed hash of dataset + data key (T1.4) */
    uint8_t content_hash[16]; /* keyed hash of the canonical content */
    struct dtm_str system_code;
    int64_t event_time;     /* µs of the dataset's time field; INT64_MIN = none */
    struct dtm_str content; /* canonical JSON, sealed (T4.2: dtm_datakey_seal_to, the key hash
                               as associated data) unless the store has no keys */
    /* what the record adds to its dataset's cubes (struct dtm_facts, stats/stats.h); opaque to
     * the store; NULL = nothing */
    const void *facts;
};

enum dtm_put_outcome { DTM_PUT_NEW, DTM_PUT_DUPLICATE, DTM_PUT_UPDATED };

struct dtm_receipt {
    int64_t seq;
    char id[DTM_ID_MAX];
    char dataset[DTM_CODE_MAX];
    char system_code[DTM_CODE_MAX];
    char request_id[DTM_ID_MAX];
    int64_t received_at; /* µs */
    int64_t accepted, duplicates, updated, rejected;
};

struct dtm_idem {
    uint8_t request_hash[32];
    int status;
    char *body; /* malloc'd; the caller frees */
    size_t body_len;
    int64_t created_at;
};

/* A stored version of a record, as handed to record_get / receipt_records callbacks. */
struct dtm_record_version {
    int64_t revision;
    int64_t receipt_seq;
    int64_t received_at;
    int64_t replaced_at; /* 0 for the current version */
    struct dtm_str content;
};

/* A batch: a file received whole and stored in the background (CONTRACT §5). Progress is
 * committed with each chunk of records, so a batch resumes after a restart where its last
 * commit ended: next_row rows of the input are done. */
struct dtm_batch {
    char id[DTM_ID_MAX];
    char system_code[DTM_CODE_MAX]; /* the sender */
    char dataset[DTM_CODE_MAX];
    char format[8];      /* json | ndjson | xml | csv */
    char origin[8];      /* api (the server runs it) | cli (dtm import runs it) */
    char status[12];     /* queued | running | done | failed | cancelled */
    int priority;        /* 0 normal, 1 high, 2 urgent (T3.2) */
    bool masked;         /* the sender asked for masking (?mode=masked) */
    char source[256];    /* the file's name as given (dtm import), else "" */
    int64_t bytes;       /* size of the input (decompressed) */
    int64_t byte_offset; /* input read up to the last commit */
    int64_t next_row;    /* rows done up to the last commit (records and broken lines) */
    int64_t total, accepted, duplicates, updated, rejected;
    int64_t nerrors; /* rejected-row errors stored (a row may have several) */
    int64_t created_at, started_at, finished_at; /* µs, 0 = not yet */
    char error[256]; /* why a batch failed (English; the position for a broken file) */
};

/* One error of a rejected row (a row with several errors has several). */
struct dtm_batch_error {
    int64_t seq;  /* 1, 2, … within the batch */
    int64_t row;  /* 0-based row of the input */
    int64_t line; /* 1-based line where the row starts */
    char field[64];
    char code[48];
    char arg[160];
    int rule; /* index of the dataset rule that failed, -1 = none */
};

typedef int (*dtm_system_cb)(void *ctx, const struct dtm_system *sys);
typedef int (*dtm_batch_cb)(void *ctx, const struct dtm_batch *b);
typedef int (*dtm_batch_error_cb)(void *ctx, const struct dtm_batch_error *e);
typedef int (*dtm_version_cb)(void *ctx, const struct dtm_record_version *v);

/* A connected system's optional health probe (CONTRACT §5, conn/probe.c): the URL registered
 * with `dtm system add --probe-url` and the last result. */
struct dtm_probe {
    char system_code[DTM_CODE_MAX];
    char url[1024];
    int64_t at;      /* µs of the last probe; 0 = not probed yet */
    bool ok;         /* a 2xx answer within the timeout */
    int64_t ms;      /* how long the last probe took */
    char error[128]; /* why it failed ("HTTP 500", a libcurl sentence); "" when ok */
};
/* A period a system spent in one connectivity status (conn/status.c). */
struct dtm_status_interval {
    char system_code[DTM_CODE_MAX];
    char status[12];      /* online | degraded | offline */
    int64_t since, until; /* µs; until 0 = the current status */
};
typedef int (*dtm_probe_cb)(void *ctx, const struct dtm_probe *p);
typedef int (*dtm_status_cb)(void *ctx, const struct dtm_status_interval *iv);
typedef int (*dtm_cube_row_cb)(void *ctx, int64_t bucket, const void *dims, size_t dimslen,
                               int64_t n, const void *agg, size_t agglen);

/* A dataset granted to a connected system (CONTRACT §3: a consumer reads the datasets it is
 * granted). */
struct dtm_grant {
    char system_code[DTM_CODE_MAX];
    char dataset[DTM_CODE_MAX];
    int64_t granted_at; /* µs */
};
typedef int (*dtm_grant_cb)(void *ctx, const struct dtm_grant *g);

/* OAuth 2.0 (T2.4, CONTRACT §3; gate/jwt.c): a client of the client-credentials grant (the
 * secret is stored only as its SHA-256), and a key that signs access tokens (ES256). The
 * private half is sealed under the data keys (T4.2, the kid as associated data); the public
 * half is kept as a JWK and as PEM. */
struct dtm_oauth_client {
    char client_id[DTM_CODE_MAX];
    char system_code[DTM_CODE_MAX];
    uint8_t secret_hash[32];
    int64_t created_at, revoked_at; /* µs; revoked_at 0 = live */
    int64_t generation; /* of the secret: tokens carry it (claim cgen); a rotation ends older */
};
#define DTM_SIGNING_SEALED_MAX 1024
struct dtm_signing_key {
    char kid[DTM_ID_MAX];
    char alg[8];          /* ES256 */
    char public_jwk[512]; /* {"kty":"EC","crv":"P-256","x":…,"y":…,"kid":…,"use":"sig",…} */
    char public_pem[512]; /* SubjectPublicKeyInfo */
    uint8_t sealed[DTM_SIGNING_SEALED_MAX]; /* PKCS#8 PEM of the private key, sealed (T4.2) */
    size_t sealed_len;
    int64_t created_at, retired_at; /* µs; retired_at 0 = the current key */
};
typedef int (*dtm_signing_key_cb)(void *ctx, const struct dtm_signing_key *k);

/* A current record as record_page hands it out: its position (event time, id) for a cursor,
 * its system, the system that sent its current version (the sender of the receipt; "" for a
 * local import without --system), and its content. */
struct dtm_record_row {
    int64_t id;
    int64_t event_time; /* µs; INT64_MAX = none (such records sort last) */
    struct dtm_str system_code;
    struct dtm_str sender;
    struct dtm_str content;
};
typedef int (*dtm_record_row_cb)(void *ctx, const struct dtm_record_row *row);

/* An entry of the audit trail (S3, D6; audit/audit.h): append-only and hash-chained — hash is
 * HMAC-SHA-256 over the canonical encoding of the other members (dtm_audit_hash), prev_hash the
 * hash of the entry before (32 zero bytes for the first). detail is a JSON object that never
 * holds a secret or a personal value. */
#define DTM_AUDIT_DETAIL_MAX 2048
struct dtm_audit_entry {
    int64_t seq;         /* 1, 2, … without gaps */
    int64_t at;          /* µs */
    char actor_kind[12]; /* system | user | cli | server */
    char actor[128];
    char action[48];
    char target[256];
    char detail[DTM_AUDIT_DETAIL_MAX];
    char source_ip[64];
    uint8_t prev_hash[32];
    uint8_t hash[32];
};
/* audit_list's filters: at in [from, to) (INT64_MIN/INT64_MAX = open), actor and action equal
 * (NULL = any). */
struct dtm_audit_filter {
    int64_t from, to;
    const char *actor;
    const char *action;
};
typedef int (*dtm_audit_cb)(void *ctx, const struct dtm_audit_entry *e);
/* Computes e->hash once e->seq and e->prev_hash are set (audit/audit.c). */
typedef int (*dtm_audit_seal_fn)(void *ctx, struct dtm_audit_entry *e);

/* Alerts (T5.3, issue 5 item 8; alert/alert.h): one row per occurrence of a rule and key —
 * raises of an open one (firing or acknowledged) only bump count and last_seen. Times in µs,
 * 0 = not yet. */
#define DTM_ALERT_DETAIL_MAX 2048
struct dtm_alert {
    int64_t id;
    char rule[64];
    char key[256];
    char severity[12]; /* info | warning | critical */
    char state[16];    /* firing | acknowledged | resolved */
    char title[256];
    char detail[DTM_ALERT_DETAIL_MAX]; /* JSON object, never a secret */
    int64_t first_seen, last_seen, count;
    char acknowledged_by[128];
    int64_t acknowledged_at;
    char resolved_by[128]; /* a user, or "" when its rule cleared it */
    int64_t resolved_at;
    bool suppressed; /* raised within the suppression window: recorded, not notified */
};
/* alert_list's filters: state and severity equal (NULL = any), last_seen in [from, to). */
struct dtm_alert_filter {
    const char *state;
    const char *severity;
    const char *rule;
    int64_t from, to;
};
/* The delivery of an alert's notification to one channel (alert/deliver.c). */
struct dtm_alert_delivery {
    int64_t alert_id;
    char event[12]; /* fired | resolved (the notification of its resolution) */
    char channel[64];
    char status[12]; /* pending | delivered | failed */
    int64_t attempts;
    char error[160]; /* the last failure ("HTTP 500", a libcurl sentence); never a secret */
    int64_t updated_at;
};
/* An item of the vulnerability register (T4.4, issue 5 item 10). Dates are "YYYY-MM-DD". */
struct dtm_vuln {
    int64_t id;
    char title[256];
    char severity[12]; /* low | medium | high | critical */
    char found[12];
    char remediation_plan[4096];
    char deadline[12];
    char status[16]; /* open | in_progress | fixed | accepted */
    char created_by[128];
    int64_t created_at, updated_at;
};
typedef int (*dtm_alert_cb)(void *ctx, const struct dtm_alert *a);
typedef int (*dtm_alert_delivery_cb)(void *ctx, const struct dtm_alert_delivery *d);
typedef int (*dtm_vuln_cb)(void *ctx, const struct dtm_vuln *v);

/* A person (CONTRACT §3; gate/session.c): role admin | operator | analyst | auditor. */
#define DTM_USERNAME_MAX 64
struct dtm_user {
    char username[DTM_USERNAME_MAX];
    char role[16];
    char password_hash[160]; /* Argon2id (libsodium's encoded string) */
    int64_t created_at, password_changed_at;
    bool disabled;
    bool mfa_enabled;       /* TOTP confirmed: needed at every login */
    int64_t mfa_last_step;  /* the last TOTP time step accepted (replay guard) */
    uint8_t mfa_secret[96]; /* the TOTP seed sealed with AES-256-GCM (gate/totp.c) */
    size_t mfa_secret_len;  /* 0 = none (enrolment not started) */
};
typedef int (*dtm_user_cb)(void *ctx, const struct dtm_user *u);
/* A signed-in person's session: the id (256 random bits in the cookie) is stored only as its
 * SHA-256. */
struct dtm_session {
    uint8_t id_hash[32];
    char username[DTM_USERNAME_MAX];
    char csrf[48];                             /* the X-CSRF-Token of the session */
    int64_t created_at, last_seen, expires_at; /* µs; expires_at: the absolute timeout */
    char source_ip[64];
};

/* A data key (T4.2; gate/datakey.c) as stored: wrapped under the KEK named by kek_id. sealed
 * counts the seals reserved under it (processes reserve them by the million), retired_at the
 * time it stopped sealing (0 = the current key); a retired key still opens what it sealed. */
#define DTM_WRAPPED_MAX 128
struct dtm_datakey_row {
    int64_t id;
    uint8_t wrapped[DTM_WRAPPED_MAX];
    size_t wrapped_len;
    char kek_id[24];
    int64_t created_at, retired_at, sealed;
};
typedef int (*dtm_datakey_cb)(void *ctx, const struct dtm_datakey_row *k);
typedef int (*dtm_secret_cb)(void *ctx, const char *name, int64_t updated_at);
typedef int (*dtm_dataset_def_cb)(void *ctx, const char *code, const char *definition);
/* A network a connected system called from (T4.1; alert/warn.c): the address masked to its
 * prefix, as 16 bytes (IPv4 mapped). */
struct dtm_warn_net {
    char system_code[DTM_CODE_MAX];
    uint8_t network[16];
    int64_t first_seen, last_seen; /* µs */
};
typedef int (*dtm_warn_net_cb)(void *ctx, const struct dtm_warn_net *n);
typedef int (*dtm_quality_cb)(void *ctx, const char *system_code, const char *dataset,
                              const char *kind, const char *item, int64_t n);
/* One dataset's receipts since a time (catalog_summary): records accepted, duplicates, updated
 * and rejected, receipts, distinct systems, and the last receipt's time (µs). */
struct dtm_catalog_row {
    char dataset[DTM_CODE_MAX];
    int64_t accepted, duplicates, updated, rejected, receipts, systems, last_received;
};
typedef int (*dtm_catalog_cb)(void *ctx, const struct dtm_catalog_row *row);
/* A subscription of a consumer system to a dataset's aggregates (F3, CONTRACT §6; share/): the
 * aggregates of each hour or day bucket, once it closed, POSTed to url signed with its secret
 * (sealed under the data keys, T4.2, "subscription:ID" as associated data). next_bucket is the
 * cursor: the start (µs) of the next bucket to deliver; it moves only after a 2xx answer. The
 * lease (owner, until) is held by the node delivering it (several nodes on one PostgreSQL). */
#define DTM_SUB_URL_MAX 2048
#define DTM_SUB_SEALED_MAX 512
struct dtm_subscription {
    char id[DTM_ID_MAX];
    char system_code[DTM_CODE_MAX];
    char dataset[DTM_CODE_MAX];
    char where[2048];   /* JSON array of `where` conditions ("FIELD:eq:V", "FIELD:in:A|B") */
    char metrics[512];  /* as GET /api/v1/stats takes them */
    char group_by[512]; /* "" = none */
    char interval[8];   /* hour | day */
    char url[DTM_SUB_URL_MAX];
    uint8_t secret[DTM_SUB_SEALED_MAX]; /* sealed */
    size_t secret_len;
    int64_t created_at;
    int64_t next_bucket;     /* the cursor */
    int64_t attempts;        /* failed attempts at next_bucket */
    int64_t next_attempt_at; /* µs, not before (backoff); 0 = at once */
    char last_error[160];    /* of the last failed attempt; "" after a success */
    int64_t delivered;       /* buckets delivered */
    int64_t last_delivered_at;
    char lease_owner[64];
    int64_t lease_until;
};
/* One attempt at delivering one bucket (the delivery log). */
struct dtm_subscription_delivery {
    int64_t seq; /* set by the store */
    char subscription_id[DTM_ID_MAX];
    int64_t bucket;  /* µs, its start */
    int64_t attempt; /* 1, 2, … for this bucket */
    int64_t status;  /* HTTP status; 0 = no answer */
    bool ok;
    char error[160]; /* "" when ok; never a secret */
    int64_t at, ms;
};
typedef int (*dtm_subscription_cb)(void *ctx, const struct dtm_subscription *sub);
typedef int (*dtm_subscription_delivery_cb)(void *ctx, const struct dtm_subscription_delivery *d);

/* A kept report (report/; migration 22): its document (the JSON of report/report.h) is kept
 * in the store, so every node of a cluster serves it and backups carry it. A row is claimed
 * (status "running") by the node that produces it, then filled (status "done"). */
struct dtm_report_row {
    char kind[24];                    /* transactions | connectivity | quality | ranking */
    char period[16];                  /* the period's label: 2026-10, 2026-Q3, … */
    char lang[4];                     /* vi | en */
    char status[12];                  /* running | done */
    int64_t claimed_at, generated_at; /* µs */
    int64_t size;                     /* bytes of the document */
};
typedef int (*dtm_report_cb)(void *ctx, const struct dtm_report_row *r);

/* One record of a record_put_many call: the record of a dataset, with its receipt. */
struct dtm_put {
    const char *dataset;
    const struct dtm_store_record *r;
    int64_t receipt_seq;
};
/* old: the version an update replaced (content opened), NULL unless o is DTM_PUT_UPDATED */
typedef int (*dtm_put_cb)(void *ctx, size_t i, enum dtm_put_outcome o,
                          const struct dtm_record_version *old);

struct dtm_store;
struct dtm_backup_run; /* below, with the snapshots */

struct dtm_store_ops {
    const char *name;
    void (*close)(struct dtm_store *s);
    int (*migrate)(struct dtm_store *s);
    int (*ready)(struct dtm_store *s); /* DTM_OK when the storage is writable */
    int (*begin)(struct dtm_store *s);
    int (*commit)(struct dtm_store *s); /* durable when it returns DTM_OK */
    void (*rollback)(struct dtm_store *s);

    /* connected systems and their API keys (stored as hashes only) */
    int (*system_add)(struct dtm_store *s, const struct dtm_system *sys);
    int (*system_get)(struct dtm_store *s, const char *code, struct dtm_system *out);
    int (*system_list)(struct dtm_store *s, dtm_system_cb cb, void *ctx);
    int (*system_touch)(struct dtm_store *s, const char *code, int64_t last_seen);
    /* The rate-limit tier of a system (T2.2); DTM_ENOTFOUND when no such system. */
    int (*system_set_tier)(struct dtm_store *s, const char *code, const char *tier);
    /* connectivity (conn/): the probe URL of a system (NULL or "" clears it; DTM_ENOTFOUND when
     * no such system), every system that has one with its last result (by code), a result */
    int (*probe_set_url)(struct dtm_store *s, const char *code, const char *url);
    int (*probe_list)(struct dtm_store *s, dtm_probe_cb cb, void *ctx);
    int (*probe_put)(struct dtm_store *s, const struct dtm_probe *p); /* at, ok, ms, error */
    /* A status change: ends the system's current interval at iv->since and opens iv (until 0).
     * Call inside begin/commit. */
    int (*status_put)(struct dtm_store *s, const struct dtm_status_interval *iv);
    /* Intervals still current or ending after `after`, of one system (NULL = every system), by
     * system code then since. */
    int (*status_list)(struct dtm_store *s, const char *code, int64_t after, dtm_status_cb cb,
                       void *ctx);
    int (*key_add)(struct dtm_store *s, const struct dtm_key *k, const uint8_t hash[32]);
    /* Finds the key with this hash and its system. DTM_ENOTFOUND when none. */
    int (*key_find)(struct dtm_store *s, const uint8_t hash[32], struct dtm_key *key,
                    struct dtm_system *sys);
    /* Sets expires_at on every live key of a system that has none or a later one. */
    int (*key_expire_all)(struct dtm_store *s, const char *system_code, int64_t expires_at);
    int (*key_revoke)(struct dtm_store *s, const char *id, int64_t now);
    int (*client_add)(struct dtm_store *s, const char *client_id, const char *system_code,
                      const uint8_t secret_hash[32], int64_t now);
    /* DTM_ENOTFOUND when no such client. */
    int (*client_get)(struct dtm_store *s, const char *client_id, struct dtm_oauth_client *out);
    /* writes secret_hash, revoked_at and generation by client_id; DTM_ENOTFOUND when none */
    int (*client_set)(struct dtm_store *s, const struct dtm_oauth_client *c);
    /* a system's API keys, newest first (never their hashes) */
    int (*key_list)(struct dtm_store *s, const char *system_code, dtm_key_cb cb, void *ctx);
    /* OAuth signing keys (migration 11): signing_key_retire marks every current key retired at
     * now; signing_key_list hands out the current keys and those retired after retired_after,
     * newest first. */
    int (*signing_key_add)(struct dtm_store *s, const struct dtm_signing_key *k);
    int (*signing_key_retire)(struct dtm_store *s, int64_t now);
    int (*signing_key_list)(struct dtm_store *s, int64_t retired_after, dtm_signing_key_cb cb,
                            void *ctx);

    /* people (CONTRACT §3; gate/session.c) */
    int (*user_add)(struct dtm_store *s, const char *username, const char *role,
                    const char *password_hash, int64_t now);
    int (*user_get)(struct dtm_store *s, const char *username, struct dtm_user *out);
    int (*user_list)(struct dtm_store *s, dtm_user_cb cb, void *ctx);
    /* writes role, password_hash, password_changed_at, disabled, mfa_enabled, mfa_secret */
    int (*user_update)(struct dtm_store *s, const struct dtm_user *u);
    /* the user, their sessions and recovery codes; DTM_ENOTFOUND when absent */
    int (*user_delete)(struct dtm_store *s, const char *username);
    /* TOTP replay guard: records step as used when it is later than the last one used;
     * DTM_ECONFLICT when it is not (the code was used already). */
    int (*user_mfa_step)(struct dtm_store *s, const char *username, int64_t step);
    int (*session_put)(struct dtm_store *s, const struct dtm_session *se);
    int (*session_get)(struct dtm_store *s, const uint8_t id_hash[32], struct dtm_session *out);
    int (*session_touch)(struct dtm_store *s, const uint8_t id_hash[32], int64_t last_seen);
    int (*session_delete)(struct dtm_store *s, const uint8_t id_hash[32]);
    /* every session of a user but keep (NULL = all) */
    int (*session_delete_user)(struct dtm_store *s, const char *username, const uint8_t *keep);
    /* sessions past their absolute timeout or idle since before idle_before (µs) */
    int (*session_purge)(struct dtm_store *s, int64_t now, int64_t idle_before);
    /* replaces a user's MFA recovery codes (SHA-256 hashes; n = 0: none) */
    int (*recovery_set)(struct dtm_store *s, const char *username, const uint8_t (*hashes)[32],
                        size_t n);
    /* marks an unused code as used: DTM_OK, or DTM_ENOTFOUND (unknown or used already) */
    int (*recovery_use)(struct dtm_store *s, const char *username, const uint8_t hash[32],
                        int64_t now);

    /* records: the writer calls these inside begin/commit */
    /* The first free receipt sequence number; call inside the write transaction (which holds the
     * write lock, so numbers handed out from it cannot collide with another writer's). */
    int (*receipt_next_seq)(struct dtm_store *s, int64_t *seq);
    int (*receipt_put)(struct dtm_store *s, const struct dtm_receipt *r); /* with its seq */
    /* replaced (may be NULL) sees the current version's content before an update replaces it. */
    int (*record_put)(struct dtm_store *s, const char *dataset, const struct dtm_store_record *r,
                      int64_t receipt_seq, int64_t now, enum dtm_put_outcome *out,
                      dtm_version_cb replaced, void *ctx);
    /* The records of several jobs in one call (a group commit's), each as record_put would
     * store it, in order: the outcome of each is what record_put would give after the ones
     * before it (a key twice: new then duplicate or updated). cb is called for each record in
     * order with its outcome and, for an update, the replaced version (else NULL). receipt_put
     * then gives each receipt the ids its records were given. PostgreSQL: a few statements for
     * the whole group instead of one or more round trips per record. May be NULL (record_put
     * is used, record by record: SQLite, where a statement costs no round trip). */
    int (*record_put_many)(struct dtm_store *s, const struct dtm_put *puts, size_t n, int64_t now,
                           dtm_put_cb cb, void *ctx);
    int (*receipt_get)(struct dtm_store *s, int64_t seq, struct dtm_receipt *out);
    /* Current versions of the records whose current version came with this receipt. */
    int (*receipt_records)(struct dtm_store *s, int64_t seq, size_t limit, dtm_version_cb cb,
                           void *ctx);
    /* The current version then the history, newest first. DTM_ENOTFOUND when no record. */
    int (*record_get)(struct dtm_store *s, const char *dataset, const uint8_t key_hash[16],
                      dtm_version_cb cb, void *ctx);

    /* Idempotency-Key answers (24 h) */
    int (*idem_get)(struct dtm_store *s, const char *system_code, struct dtm_str key,
                    int64_t not_before, struct dtm_idem *out);
    int (*idem_put)(struct dtm_store *s, const char *system_code, struct dtm_str key,
                    const struct dtm_idem *v);
    int (*idem_purge)(struct dtm_store *s, int64_t before);

    /* Records of a dataset whose event time is in [from, to) (INT64_MIN/INT64_MAX = open). With
     * ordered, in time order (records without one last, when the range is open); without, in
     * whatever order reads fastest (an open range: the table in storage order). */
    int (*record_scan)(struct dtm_store *s, const char *dataset, int64_t from, int64_t to,
                       bool ordered, dtm_version_cb cb, void *ctx);
    /* The same read in storage order over the whole table, filtered by time: faster than the
     * time index when the range holds much of the dataset (pages in sequence, not at random).
     * May be NULL. */
    int (*record_scan_table)(struct dtm_store *s, const char *dataset, int64_t from, int64_t to,
                             dtm_version_cb cb, void *ctx);
    /* The part of that scan whose records' ids (storage order) are in [id_from, id_to), so
     * threads can read parts at once (records without a time too when the range is open on both
     * sides). The parts' bounds come from one record_id_split: computed by each thread on its own
     * snapshot, they would leave a gap whenever records arrive in between. May be NULL. */
    int (*record_scan_part)(struct dtm_store *s, const char *dataset, int64_t from, int64_t to,
                            int64_t id_from, int64_t id_to, dtm_version_cb cb, void *ctx);
    /* The id halfway between the smallest and the largest record id (DTM_ENOTFOUND: none). */
    int (*record_id_split)(struct dtm_store *s, int64_t *mid);
    /* Another connection to the same storage (for a second reading thread). May be NULL. */
    int (*reopen)(struct dtm_store *s, struct dtm_store **out);

    /* batches */
    int (*batch_put)(struct dtm_store *s, const struct dtm_batch *b);
    int (*batch_update)(struct dtm_store *s, const struct dtm_batch *b); /* by id */
    int (*batch_get)(struct dtm_store *s, const char *id, struct dtm_batch *out);
    /* Newest first; system_code NULL = every system. */
    int (*batch_list)(struct dtm_store *s, const char *system_code, size_t limit, dtm_batch_cb cb,
                      void *ctx);
    /* Batches of an origin that are queued or running: running first, then by priority (highest
     * first), then oldest first. */
    int (*batch_pending)(struct dtm_store *s, const char *origin, dtm_batch_cb cb, void *ctx);
    int (*batch_error_put)(struct dtm_store *s, const char *batch_id,
                           const struct dtm_batch_error *e);
    /* Errors with seq > after, in order, at most limit. */
    int (*batch_errors)(struct dtm_store *s, const char *batch_id, int64_t after, size_t limit,
                        dtm_batch_error_cb cb, void *ctx);

    /* grants of datasets to systems. grant_put: DTM_EEXIST when already granted; grant_delete
     * and grant_check: DTM_ENOTFOUND when not granted; grant_list: by system then dataset,
     * system_code NULL = every system. */
    int (*grant_put)(struct dtm_store *s, const char *system_code, const char *dataset,
                     int64_t now);
    int (*grant_delete)(struct dtm_store *s, const char *system_code, const char *dataset);
    int (*grant_check)(struct dtm_store *s, const char *system_code, const char *dataset);
    int (*grant_list)(struct dtm_store *s, const char *system_code, dtm_grant_cb cb, void *ctx);

    /* A page of a dataset's current records for exports, in (event time, id) order: those after
     * the position (after_time, after_id) with an event time in [from, to), and — only when the
     * range is open at both ends — then those without an event time (after_time INT64_MAX), by
     * id. systems (n > 0) keeps the records of those systems only. At most limit rows; cb may
     * return a positive value to stop early (returned as is). */
    int (*record_page)(struct dtm_store *s, const char *dataset, int64_t from, int64_t to,
                       int64_t after_time, int64_t after_id, const char *const *systems,
                       size_t nsystems, size_t limit, dtm_record_row_cb cb, void *ctx);
    /* Retention (D6): removes at most limit (0 = no limit) current records of a dataset whose
     * event time is before `before`, with their history, and the rollup rows of the whole hours
     * and days before it (pass a day start so that the rollups match the records left). Call
     * inside begin/commit. *removed: records removed. */
    int (*record_purge)(struct dtm_store *s, const char *dataset, int64_t before, size_t limit,
                        int64_t *removed);

    /* The audit trail (audit/): append-only, no operation updates or deletes an entry.
     * audit_append, inside the caller's transaction (which holds the write lock, so appends are
     * serialised): sets e->seq to the last seq + 1 and e->prev_hash to the last entry's hash (32
     * zero bytes when the trail is empty), calls seal to compute e->hash, inserts the entry.
     * audit_head: the last entry's seq and hash (0 and zero bytes when empty). audit_list:
     * entries with seq > after_seq matching f, by seq, at most limit (0 = no limit); cb may
     * return a positive value to stop early (returned as is). */
    int (*audit_append)(struct dtm_store *s, struct dtm_audit_entry *e, dtm_audit_seal_fn seal,
                        void *ctx);
    int (*audit_head)(struct dtm_store *s, int64_t *seq, uint8_t hash[32]);
    int (*audit_list)(struct dtm_store *s, const struct dtm_audit_filter *f, int64_t after_seq,
                      size_t limit, dtm_audit_cb cb, void *ctx);

    /* live rollups (stats/cube.c): a cube's id by dataset and dimension names ("a,b,c");
     * create registers a new one, complete when the dataset has no records yet. DTM_ENOTFOUND
     * when absent and not created. */
    int (*cube_id)(struct dtm_store *s, const char *dataset, const char *dims, bool create,
                   int64_t *id, bool *complete);
    /* Adds a delta (count n, encoded aggregate agg) to a cube row, creating it; grain
     * DTM_GRAIN_GAP (stats/stats.h) marks the hour bucket instead (dims, n and agg unused). */
    int (*cube_apply)(struct dtm_store *s, int64_t cube, int grain, int64_t bucket,
                      const void *dims, size_t dimslen, int64_t n, const void *agg, size_t agglen);
    /* Rows of a cube and grain with from <= bucket < to, in key order; with a prefix (prefixlen
     * > 0), only those whose encoded dimension tuple starts with it (one seek per bucket). */
    int (*cube_scan)(struct dtm_store *s, int64_t cube, int grain, int64_t from, int64_t to,
                     const void *prefix, size_t prefixlen, dtm_cube_row_cb cb, void *ctx);
    /* Removes the rows of every cube in a grain with bucket < before. May be NULL. */
    int (*cube_purge)(struct dtm_store *s, int grain, int64_t before);
    /* Forgets every row of a cube and marks it complete or not (a rebuild starts). */
    int (*cube_reset)(struct dtm_store *s, int64_t cube, bool complete);
    /* Whether an hour bucket in [from, to) of the cube is marked (DTM_GRAIN_GAP). */
    int (*cube_gap_any)(struct dtm_store *s, int64_t cube, int64_t from, int64_t to, bool *any);
    /* A transaction for the rollup writer thread: it holds the rollups' write lock only (begin
     * holds the records'), so both writers work at once. May be NULL (begin is used). */
    int (*cube_begin)(struct dtm_store *s);
    /* The rollups hold the deltas of every receipt up to seq (kept as a maximum). */
    int (*cube_applied)(struct dtm_store *s, int64_t seq);
    /* After a crash the rollups may miss the last receipts' deltas: then every cube is marked
     * incomplete (to be rebuilt) and *lagging set. */
    int (*cube_check)(struct dtm_store *s, bool *lagging);
    /* Marks every cube incomplete (to be rebuilt; the planner scans records meanwhile): the
     * rollup writer lost a group's deltas, which applied_seq alone may not show once later
     * groups (of this node or another) are applied. */
    int (*cube_invalidate)(struct dtm_store *s);

    /* Background upkeep, called about every 200 ms from its own thread and connection (SQLite:
     * WAL checkpoints, kept off the writer's path). May be NULL. */
    int (*maintain)(struct dtm_store *s);
    /* Makes this connection the writer's: larger cache; for SQLite no automatic checkpoints
     * (maintain does them). May be NULL. */
    int (*tune_writer)(struct dtm_store *s);
    /* Whether the next commits are durable when they return (the default), or only atomic and
     * durable with the next durable commit (SQLite: synchronous NORMAL in WAL mode — a process
     * crash loses nothing, a power cut may lose them). Called outside a transaction. May be
     * NULL. */
    int (*set_durable)(struct dtm_store *s, bool durable);

    /* data keys (T4.2; gate/datakey.c). datakey_add inserts with the row's id (DTM_EEXIST when
     * taken); datakey_get: DTM_ENOTFOUND when none; datakey_list: by id; datakey_update sets
     * wrapped, kek_id, retired_at and sealed of the row with that id. */
    int (*datakey_add)(struct dtm_store *s, const struct dtm_datakey_row *k);
    int (*datakey_get)(struct dtm_store *s, int64_t id, struct dtm_datakey_row *out);
    int (*datakey_list)(struct dtm_store *s, dtm_datakey_cb cb, void *ctx);
    int (*datakey_update)(struct dtm_store *s, const struct dtm_datakey_row *k);
    /* secrets (T4.2, migration 15): small named secrets sealed by the caller under the data
     * keys (alert channels' keys and passwords, named store:NAME in dtm.conf). secret_put
     * inserts or replaces; secret_get and secret_delete: DTM_ENOTFOUND when none; secret_list:
     * names and times only, by name. */
    int (*secret_put)(struct dtm_store *s, const char *name, const uint8_t *sealed, size_t n,
                      int64_t now);
    int (*secret_get)(struct dtm_store *s, const char *name, struct dtm_buf *out);
    int (*secret_list)(struct dtm_store *s, dtm_secret_cb cb, void *ctx);
    int (*secret_delete)(struct dtm_store *s, const char *name);
    /* the usual networks of systems (T4.1, migration 15): warn_net_put inserts or widens
     * (first_seen the earliest, last_seen the latest); warn_net_list those seen since, by
     * system; warn_net_purge forgets those not seen since before */
    int (*warn_net_put)(struct dtm_store *s, const struct dtm_warn_net *n);
    int (*warn_net_list)(struct dtm_store *s, int64_t since, dtm_warn_net_cb cb, void *ctx);
    int (*warn_net_purge)(struct dtm_store *s, int64_t before);
    /* OAuth access tokens revoked before they expire (RFC 7009, migration 15): token_revoke
     * records a jti until expires_at (µs; again = no change) and forgets those expired by now;
     * token_revoked: DTM_OK when revoked, DTM_ENOTFOUND when not */
    int (*token_revoke)(struct dtm_store *s, const char *jti, int64_t expires_at, int64_t now);
    int (*token_revoked)(struct dtm_store *s, const char *jti);
    /* dataset definitions of administrators (CONTRACT §4, migration 15): the canonical JSON by
     * code, inserted or replaced; listed by code */
    int (*dataset_def_put)(struct dtm_store *s, const char *code, const char *definition,
                           int64_t now, const char *by);
    int (*dataset_def_list)(struct dtm_store *s, dtm_dataset_def_cb cb, void *ctx);

    /* Alerts (alert/): alert_insert sets a->id; alert_update writes every member but rule, key
     * and first_seen by id (DTM_ENOTFOUND when none); alert_open finds the open alert (firing
     * or acknowledged) of a rule and key (DTM_ENOTFOUND when none); alert_last_resolved gives
     * the latest resolved_at of the rule and key (0 = never); alert_list: newest first, ids
     * below before_id (0 = from the newest), at most limit. cb may return a positive value to
     * stop early (returned as is). alert_delivery_put inserts or replaces by (alert, event,
     * channel). */
    int (*alert_insert)(struct dtm_store *s, struct dtm_alert *a);
    int (*alert_update)(struct dtm_store *s, const struct dtm_alert *a);
    int (*alert_get)(struct dtm_store *s, int64_t id, struct dtm_alert *out);
    int (*alert_open)(struct dtm_store *s, const char *rule, const char *key,
                      struct dtm_alert *out);
    int (*alert_last_resolved)(struct dtm_store *s, const char *rule, const char *key, int64_t *at);
    int (*alert_list)(struct dtm_store *s, const struct dtm_alert_filter *f, int64_t before_id,
                      size_t limit, dtm_alert_cb cb, void *ctx);
    int (*alert_delivery_put)(struct dtm_store *s, const struct dtm_alert_delivery *d);
    int (*alert_deliveries)(struct dtm_store *s, int64_t alert_id, dtm_alert_delivery_cb cb,
                            void *ctx);
    /* Every delivery still pending (status "pending"), by alert id then channel. */
    int (*alert_deliveries_pending)(struct dtm_store *s, dtm_alert_delivery_cb cb, void *ctx);
    /* The vulnerability register: vuln_insert sets v->id; vuln_update by id (DTM_ENOTFOUND
     * when none); vuln_list by id. */
    int (*vuln_insert)(struct dtm_store *s, struct dtm_vuln *v);
    int (*vuln_update)(struct dtm_store *s, const struct dtm_vuln *v);
    int (*vuln_get)(struct dtm_store *s, int64_t id, struct dtm_vuln *out);
    int (*vuln_list)(struct dtm_store *s, dtm_vuln_cb cb, void *ctx);

    /* Backups (backup/; issue 10): backup_run_add records one (in the caller's transaction);
     * backup_run_last gives the newest (ok or failed; drills' backups aside), or the newest
     * with status "ok" when ok_only (DTM_ENOTFOUND when none). */
    int (*backup_run_add)(struct dtm_store *s, const struct dtm_backup_run *r);
    int (*backup_run_last)(struct dtm_store *s, bool ok_only, struct dtm_backup_run *out);

    /* Subscriptions (F3; share/, migration 19). subscription_put inserts (DTM_EEXIST when the
     * id is taken); get and list see live ones only (list: system_code NULL = all, by
     * created_at then id); subscription_delete marks it deleted (DTM_ENOTFOUND when not live).
     * subscription_claim takes the lease of a live subscription whose cursor is still bucket
     * until `until`, when it is free (or expired by now, or already this owner's): DTM_OK, or
     * DTM_EBUSY when another node holds it or the cursor moved. subscription_done ends an
     * attempt of the owner at bucket and releases the lease: ok moves the cursor to
     * next_bucket (attempts 0, delivered + 1), else attempts + 1, next_attempt_at and error.
     * subscription_delivery_add appends to the delivery log; subscription_deliveries hands
     * out a subscription's entries with seq > after, by seq, at most limit. */
    int (*subscription_put)(struct dtm_store *s, const struct dtm_subscription *sub);
    int (*subscription_get)(struct dtm_store *s, const char *id, struct dtm_subscription *out);
    int (*subscription_list)(struct dtm_store *s, const char *system_code, dtm_subscription_cb cb,
                             void *ctx);
    int (*subscription_delete)(struct dtm_store *s, const char *id, int64_t now);
    int (*subscription_claim)(struct dtm_store *s, const char *id, int64_t bucket,
                              const char *owner, int64_t now, int64_t until);
    int (*subscription_done)(struct dtm_store *s, const char *id, const char *owner, int64_t bucket,
                             bool ok, int64_t next_bucket, int64_t next_attempt_at,
                             const char *error, int64_t now);
    int (*subscription_delivery_add)(struct dtm_store *s,
                                     const struct dtm_subscription_delivery *d);
    int (*subscription_deliveries)(struct dtm_store *s, const char *id, int64_t after, size_t limit,
                                   dtm_subscription_delivery_cb cb, void *ctx);

    /* Kept reports (report/; migration 22). report_claim: takes the row of (kind, period, lang)
     * for producing it — DTM_OK when taken (no row yet, or a "running" claim older than
     * stale_before), DTM_EEXIST when it is done or another node's claim is fresh (run once
     * across nodes). report_put: the produced document (status done). report_get: a done
     * report and its document (DTM_ENOTFOUND otherwise). report_list: done reports, newest
     * first. report_purge: done reports generated before `before`, and claims older. */
    int (*report_claim)(struct dtm_store *s, const char *kind, const char *period, const char *lang,
                        int64_t now, int64_t stale_before);
    int (*report_put)(struct dtm_store *s, const char *kind, const char *period, const char *lang,
                      int64_t generated_at, const char *doc, size_t n);
    int (*report_get)(struct dtm_store *s, const char *kind, const char *period, const char *lang,
                      struct dtm_report_row *row, struct dtm_buf *doc);
    int (*report_list)(struct dtm_store *s, dtm_report_cb cb, void *ctx);
    int (*report_purge)(struct dtm_store *s, int64_t before);

    /* Data-quality counters (report/qcount.c; migration 23), one row per receipt day (days
     * since the epoch in UTC+07:00), system, dataset, kind and item: quality_add adds n
     * (inside the writer's transaction); quality_sum hands out the sums over days in
     * [day_from, day_to) by system, dataset, kind, item. */
    int (*quality_add)(struct dtm_store *s, int64_t day, const char *system_code,
                       const char *dataset, const char *kind, const char *item, int64_t n);
    int (*quality_sum)(struct dtm_store *s, int64_t day_from, int64_t day_to, dtm_quality_cb cb,
                       void *ctx);

    /* The public catalogue's quality summary (issue 8; api/catalog.c): per dataset, the
     * receipts received at or after `since` (µs) added up. */
    int (*catalog_summary)(struct dtm_store *s, int64_t since, dtm_catalog_cb cb, void *ctx);

    /* Periodic jobs run once across the nodes sharing a store (forecast/anomaly.c; migration
     * 24): job_claim takes round `slot` of `job` for owner — DTM_OK when this call took it,
     * DTM_EEXIST when another node did. Claims older than `before` (µs) are removed. */
    int (*job_claim)(struct dtm_store *s, const char *job, int64_t slot, const char *owner,
                     int64_t now, int64_t before);
    /* A batch run by one node only (issue 9 item 3; batch/queue.c): batch_claim takes batch id
     * for this connection — DTM_OK, or DTM_EBUSY when another node's connection holds it.
     * PostgreSQL: a session advisory lock, given back by batch_release or when the connection
     * ends, so the batch of a node that dies is resumed by another. SQLite (one node): always
     * DTM_OK. */
    int (*batch_claim)(struct dtm_store *s, const char *id);
    void (*batch_release)(struct dtm_store *s, const char *id);
};

struct dtm_store {
    const struct dtm_store_ops *ops;
    /* T4.2: opens sealed record content before a callback sees it (gate/datakey.c; set by
     * dtm_store_open); NULL = content is handed out as stored */
    struct dtm_datakeys *keys;
};

/* Opens a connection to the configured backend. The caller closes it with s->ops->close(s).
 * Writes a one-sentence reason to err on failure. */
int dtm_store_open(const struct dtm_conf *c, struct dtm_store **out, char *err, size_t errsz);

/* Backends */
int dtm_store_sqlite_open(const char *path, struct dtm_store **out, char *err, size_t errsz);
/* conninfo: a libpq connection string; password NULL = the DSN's, PGPASSWORD or ~/.pgpass */
int dtm_store_pg_open(const char *conninfo, const char *password, struct dtm_store **out, char *err,
                      size_t errsz);

/* ---- snapshots for backups (issue 10; store/snapshot.c, used by backup/)
 *
 * A consistent copy of the store's files, taken while servers write: the files land in dir
 * (which must exist) under the names they have in the data dir, and the facts of the same
 * moment are noted. SQLite: the online backup API inside one read transaction, the rollups
 * (dtm.cubes.db) read before the records, so the copy's rollups are never ahead of its
 * records (behind, they are rebuilt at the first start). Another backend implements
 * dtm_store_snapshot for its own files (or a dump) the same way. */
#define DTM_SNAPSHOT_FILES 4
#define DTM_SNAPSHOT_DATASETS 64
struct dtm_snapshot {
    size_t nfiles;
    struct {
        char name[128];          /* relative to the data dir (e.g. "dtm.db") */
        char path[DTM_PATH_MAX]; /* the copy */
    } file[DTM_SNAPSHOT_FILES];
    size_t ndatasets;
    struct {
        char code[DTM_CODE_MAX];
        int64_t records;
    } dataset[DTM_SNAPSHOT_DATASETS];
    int64_t records;           /* all datasets */
    int64_t last_receipt_seq;  /* the newest receipt in the copy */
    int64_t cubes_applied_seq; /* the receipt the copy's rollups are complete up to */
    int64_t audit_seq;         /* the newest audit entry in the copy */
    char kek_id[24];           /* the master key wrapping the copy's data keys ("" = none) */
    bool kek_mixed;            /* data keys under two master keys (a rotation under way) */
};
/* One backup made (backup/; migration 16): the newest for `dtm status` and metrics. */
struct dtm_backup_run {
    int64_t at; /* µs, when it ended */
    char path[DTM_PATH_MAX];
    char status[16]; /* ok | failed | drill (a recovery drill's, deleted after it) */
    char error[256]; /* why it failed ("" = it did not) */
    int64_t bytes, records, ms;
};
/* progress (may be NULL) is called now and then with the bytes copied so far and the total;
 * when it returns non-zero the copy stops (DTM_EBUSY). dir NULL: the facts only, nothing copied
 * (a restore counts what it restored). */
int dtm_store_snapshot(const struct dtm_conf *c, const char *dir, struct dtm_snapshot *out,
                       int (*progress)(void *ctx, int64_t done, int64_t total), void *ctx,
                       char *err, size_t errsz);
/* PostgreSQL (store/pg_snapshot.c): the snapshot is one file, DTM_PG_DUMP_NAME, made by
 * pg_dump (custom format) from an exported snapshot whose facts fill out; the load runs
 * pg_restore of such a file into c's database, which must hold no table yet (DTM_EEXIST). */
#define DTM_PG_DUMP_NAME "pg.dump"
int dtm_store_pg_snapshot(const struct dtm_conf *c, const char *dir, struct dtm_snapshot *out,
                          int (*progress)(void *ctx, int64_t done, int64_t total), void *ctx,
                          char *err, size_t errsz);
int dtm_store_pg_load(const struct dtm_conf *c, const char *dump, char *err, size_t errsz);
/* [store] password_file's first line into pw ("" when the file has none). */
int dtm_store_password(const struct dtm_conf *c, char *pw, size_t pwsz, char *err, size_t errsz);
/* The libpq connection string of c: [store] dsn (key=value or URI form) with [store]
 * sslrootcert, sslcert and sslkey (relative to the data dir) put in place of the DSN's, into out
 * (initialised here). It may hold the DSN's password: the caller wipes and frees it with
 * dtm_store_conninfo_free. DTM_EINVAL (and err, without the DSN) when the DSN does not parse. */
int dtm_store_conninfo(const struct dtm_conf *c, struct dtm_buf *out, char *err, size_t errsz);
void dtm_store_conninfo_free(struct dtm_buf *b);

#endif
