/* audit — the tamper-evident audit trail (S3, D6; issue 5 item 5): every security-relevant event
 * (key and grant changes, exports and downloads, retention, configuration reloads, server start
 * and stop, rejected keys) is appended to the store's audit_log as one entry chained to the one
 * before it: hash = HMAC-SHA-256(audit key, canonical encoding of the entry with the previous
 * entry's hash). The audit key is derived from the master key (gate/keyring), so whoever edits
 * the database without the master key cannot forge a consistent chain; `dtm audit verify`
 * recomputes it. The server writes the chain head (seq, hash) to its log every
 * `[audit] head_log_interval` seconds and at stop, so that a truncated trail is detectable too.
 *
 * Appends are serialised by the store's write transaction: CLI commands append inside their own
 * transaction (the change and its entry commit together or not at all); the server appends
 * through the writer thread (a write job with only in_txn). Nothing deletes or edits an entry;
 * entries are kept forever (the law asks for at least one year). */
#ifndef DTM_AUDIT_H
#define DTM_AUDIT_H

#include "conf/conf.h"
#include "core/core.h"
#include "store/store.h"

struct dtm_writer;

/* One event to record. Texts are copied into the entry and cut at its bounds; detail is a JSON
 * object (NULL = "{}") that never holds a secret or a personal value. */
struct dtm_audit_event {
    const char *actor_kind; /* system | user | cli | server */
    const char *actor;      /* a system code, a user name, the OS user of a CLI command */
    const char *action;     /* e.g. key.revoked, export.records */
    const char *target;     /* what the action was on (NULL = "") */
    const char *detail;
    const char *source_ip; /* NULL = "" */
};

/* The canonical encoding hashed: "dtm-audit-v1", seq and at as 8-byte big-endian integers, each
 * text (actor_kind, actor, action, target, detail, source_ip) as a 4-byte big-endian length and
 * its bytes, then prev_hash. Writes at most outsz bytes; returns the full length (like
 * snprintf). DTM_AUDIT_ENCODED_MAX bytes always suffice. */
#define DTM_AUDIT_ENCODED_MAX (12 + 16 + 6 * 4 + sizeof(struct dtm_audit_entry) + 32)
size_t dtm_audit_encode(const struct dtm_audit_entry *e, uint8_t *out, size_t outsz);
/* HMAC-SHA-256 of the canonical encoding under key (the keyring's audit_key). */
void dtm_audit_hash(const uint8_t key[32], const struct dtm_audit_entry *e, uint8_t out[32]);

/* Fills e from ev (seq, hashes zero). DTM_EINVAL when a required member (actor_kind, actor,
 * action) is missing or detail does not fit (a detail is never cut: it would not be JSON). */
int dtm_audit_entry_set(struct dtm_audit_entry *e, const struct dtm_audit_event *ev, int64_t at);

/* Appends an event inside the caller's open write transaction on st. *out (may be NULL)
 * receives the entry as stored (seq and hash: the new chain head). */
int dtm_audit_append(struct dtm_store *st, const uint8_t key[32], const struct dtm_audit_event *ev,
                     struct dtm_audit_entry *out);
/* The same with an entry already filled (dtm_audit_entry_set). */
int dtm_audit_append_entry(struct dtm_store *st, const uint8_t key[32], struct dtm_audit_entry *e);

/* ---- verification */

enum dtm_audit_break {
    DTM_AUDIT_INTACT,
    DTM_AUDIT_HASH_MISMATCH, /* the entry's content does not give its hash (altered) */
    DTM_AUDIT_PREV_MISMATCH, /* prev_hash is not the hash of the entry before */
    DTM_AUDIT_SEQ_GAP,       /* seq is not the one after the entry before (entries missing) */
};

/* The state of a verification: feed every entry in seq order to dtm_audit_verify_entry. */
struct dtm_audit_verify {
    int64_t entries;       /* entries checked and intact */
    int64_t head_seq;      /* the last intact entry (0 = none) */
    uint8_t head_hash[32]; /* its hash (zero bytes: none) */
    enum dtm_audit_break broken;
    int64_t broken_seq; /* the first broken entry */
};
void dtm_audit_verify_init(struct dtm_audit_verify *v);
/* Checks the next entry: DTM_OK when it continues the chain, 1 when it breaks it (v->broken and
 * v->broken_seq say where and how; later entries are not looked at). */
int dtm_audit_verify_entry(struct dtm_audit_verify *v, const uint8_t key[32],
                           const struct dtm_audit_entry *e);
/* Walks the whole trail of st. DTM_OK (see v->broken) or the store's error. */
int dtm_audit_verify(struct dtm_store *st, const uint8_t key[32], struct dtm_audit_verify *v);

/* One entry as a CSV line (seq, at, actor_kind, actor, action, target, detail, source_ip, hash;
 * ended by sep) or as a JSON object (after "," unless first, then sep) — `dtm audit list` and
 * GET /api/v1/audit alike. */
int dtm_audit_entry_format(struct dtm_buf *b, const struct dtm_audit_entry *e, bool json,
                           bool first, const char *sep);
/* One English sentence naming the first broken entry and what is wrong. */
void dtm_audit_verify_describe(const struct dtm_audit_verify *v, char *out, size_t outsz);

/* The name of the user running this process (the actor of a CLI command). */
void dtm_audit_os_user(char *out, size_t outsz);

/* ---- the server's trail: appends through the writer thread */

struct dtm_audit;
/* Starts the trail of `dtm serve`: a thread that logs the chain head every
 * `[audit] head_log_interval` seconds (read from *conf at each wait). key is copied. */
int dtm_audit_start(const struct dtm_conf *const *conf, const uint8_t key[32], struct dtm_writer *w,
                    struct dtm_audit **out, char *err, size_t errsz);
/* Queues an event (copied) for the writer; returns at once. A NULL trail records nothing. At
 * most a bounded number wait at a time: beyond it events are dropped, counted and logged (a flood
 * of rejected keys must not fill memory). */
void dtm_audit_record(struct dtm_audit *a, const struct dtm_audit_event *ev);
/* Records last (may be NULL; e.g. server.stopped), waits until it and every queued event are
 * committed, logs the chain head and stops the thread. Call before the writer stops. Events
 * recorded later (a request that outlived the drain) go to the stopped writer, which refuses
 * them (logged). NULL is fine. */
void dtm_audit_stop(struct dtm_audit *a, const struct dtm_audit_event *last);
/* Frees, once nothing can record any more (after the listeners are gone). NULL is fine. */
void dtm_audit_free(struct dtm_audit *a);

#endif
