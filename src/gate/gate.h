/* gate — who is calling: the installation's keyring (master key and the keys derived from it),
 * API keys of connected systems (random, ≥ 128 bits, shown once, stored only as a hash, T2.4),
 * OAuth client secrets, and people's passwords (Argon2id, libsodium). Authorisation by role
 * lives with the routes (api/routes.c); rate limits (ratelimit.c) are charged by the router;
 * sessions arrive with the security issue. */
#ifndef DTM_GATE_H
#define DTM_GATE_H

#include "conf/conf.h"
#include "core/core.h"
#include "store/store.h"

/* The master key (32 random bytes in DATA_DIR/master.key, mode 0600) and purpose keys derived
 * from it with HMAC-SHA-256(master, label), so that one secret protects them all. */
struct dtm_keyring {
    uint8_t master[32];
    uint8_t record_key[32];  /* keyed hash of data keys (dedup index) */
    uint8_t content_key[32]; /* keyed hash of record content (duplicate detection) */
    uint8_t mask_key[32];    /* `hash` masking of personal fields (CONTRACT §4) */
    uint8_t audit_key[32];   /* the audit trail's hash chain (audit/, S3) */
};

/* Writes a new master key file (0600, refuses to overwrite). */
int dtm_keyring_create(const char *path, char *err, size_t errsz);
/* Reads the master key (refusing a file readable by others) and derives the purpose keys. */
int dtm_keyring_load(const char *path, struct dtm_keyring *out, char *err, size_t errsz);
void dtm_keyring_wipe(struct dtm_keyring *k);

#define DTM_SECRET_MAX 80
/* A new secret token: prefix + 52 chars of base32 (256 bits), and its SHA-256 (what is stored).
 * API keys are "dtm_…", client secrets "dtmcs_…". */
int dtm_secret_new(const char *prefix, char *out, size_t outsz, uint8_t hash[32]);
void dtm_secret_hash(struct dtm_str secret, uint8_t hash[32]);

/* Authenticates an X-API-Key value. DTM_OK with the key and its system; DTM_EAUTH when the key
 * is unknown, revoked or expired (the caller answers 401 without saying which);
 * DTM_ESTORE on storage failure. */
int dtm_gate_api_key(struct dtm_store *st, struct dtm_str key, int64_t now, struct dtm_key *k,
                     struct dtm_system *sys);

/* A process-wide cache of authenticated API keys, so that a request does not query the store.
 * CLI commands that change keys or systems (possibly in another process, on the same data dir)
 * touch the file DATA_DIR/keys.changed (dtm_gate_keys_changed); the cache compares that file's
 * modification time on every lookup (one stat(2)) and empties itself when it moved, so a revoked
 * key stops working with the next request. Expiry and revocation times are checked on every
 * request as well. Unknown keys are never cached. */
struct dtm_key_cache;
struct dtm_key_cache *dtm_key_cache_create(const struct dtm_conf *c);
void dtm_key_cache_destroy(struct dtm_key_cache *kc);
int dtm_gate_api_key_cached(struct dtm_key_cache *kc, struct dtm_store *st, struct dtm_str key,
                            int64_t now, struct dtm_key *k, struct dtm_system *sys);
/* Signals running servers that keys or systems changed. */
void dtm_gate_keys_changed(const struct dtm_conf *c);

/* T2.2: rate limits (gate/ratelimit.c). Token buckets kept as GCRA "theoretical arrival times"
 * in a fixed, sharded table (no allocation per request; idle buckets are evicted first). */
enum dtm_rl_kind {
    DTM_RL_SYSTEM,    /* an authenticated connected system, by system code (its tier's limit) */
    DTM_RL_IP,        /* unauthenticated calls, by source address */
    DTM_RL_AUTH_FAIL, /* failed authentications, by source address (key guessing) */
};
#define DTM_RL_KEY_MAX 64
struct dtm_rl_limit {
    int64_t rate;  /* requests per second refilled */
    int64_t burst; /* bucket size: requests that may come at once */
};
/* What a bucket said: the RateLimit-* headers (limit = burst, remaining whole requests, reset =
 * seconds until full again) and, when refused, the Retry-After seconds (≥ 1). */
struct dtm_rl_answer {
    bool allowed;
    int64_t limit, remaining, reset_s, retry_after_s;
};
struct dtm_ratelimit;
struct dtm_ratelimit *dtm_ratelimit_create(void);
void dtm_ratelimit_destroy(struct dtm_ratelimit *rl);
/* Charges cost requests (0 = only look) to the bucket of (kind, key) at now (ns of a monotonic
 * clock); thread-safe. Returns out->allowed; a refused request pays nothing. */
bool dtm_ratelimit_take(struct dtm_ratelimit *rl, enum dtm_rl_kind kind, const void *key,
                        size_t keylen, const struct dtm_rl_limit *lim, int64_t now, int64_t cost,
                        struct dtm_rl_answer *out);
/* The arithmetic of one bucket (exposed for tests): tat is the ns at which it is full again. */
bool dtm_rl_bucket_take(int64_t *tat, const struct dtm_rl_limit *lim, int64_t now, int64_t cost,
                        struct dtm_rl_answer *out);
/* Tiers sold to connected systems: bronze | silver | gold ([ratelimit] in dtm.conf). */
bool dtm_rl_tier_valid(const char *name);
/* The limit of a tier; "" or an unknown name = [ratelimit] default_tier. */
void dtm_rl_tier_limit(const struct dtm_conf *c, const char *tier, struct dtm_rl_limit *out);

/* Argon2id (libsodium's crypto_pwhash_str, moderate limits). out >= 128 bytes. */
int dtm_password_hash(const char *password, char *out, size_t outsz);
bool dtm_password_verify(const char *hash, const char *password);
/* A random password of n characters (n < outsz) from an unambiguous alphabet. */
int dtm_password_random(char *out, size_t outsz, size_t n);

#endif
