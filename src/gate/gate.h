/* gate — who is calling: the installation's keyring (master key and the keys derived from it),
 * API keys of connected systems (random, ≥ 128 bits, shown once, stored only as a hash, T2.4),
 * OAuth client secrets and access tokens (jwt.c), people's passwords (Argon2id, libsodium),
 * sessions and TOTP (session.c, totp.c), and the data keys of encryption at rest (datakey.c).
 * Authorisation by role lives with the routes (api/routes.c, http/server.c gate()); rate limits
 * (ratelimit.c) are charged by the router. */
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

/* ---- the credentials of connected systems (gate/credentials.c; T2.4): shared by `dtm system`
 * and `dtm key` and by the administration API. Each works inside the caller's write
 * transaction; the caller writes the audit entry there too (never a secret). */
bool dtm_system_code_valid(const char *s); /* 1..32 of [A-Za-z0-9._-] */
bool dtm_system_role_valid(const char *s); /* source | consumer | aggregator */
bool dtm_probe_url_valid(const char *s);   /* http(s)://, printable ASCII, < 1 KiB */
/* What a change hands out once: the members it set ("" otherwise). */
struct dtm_credentials {
    char key_id[DTM_ID_MAX];
    char api_key[DTM_SECRET_MAX];
    char client_id[DTM_CODE_MAX];
    char client_secret[DTM_SECRET_MAX];
};
void dtm_credentials_wipe(struct dtm_credentials *c);
/* A new system (sys->parent, when set, must be an aggregator: DTM_EINVAL otherwise;
 * DTM_EEXIST when the code is taken) with its first API key and its OAuth client (client_id =
 * the code). */
int dtm_system_register(struct dtm_store *st, const struct dtm_system *sys, const char *probe_url,
                        int64_t now, struct dtm_credentials *out);
/* A new API key of a system (key_id, api_key). */
int dtm_key_issue(struct dtm_store *st, const char *code, int64_t now, struct dtm_credentials *out);
/* A new key; the system's live keys expire after grace_us (DTM_ENOTFOUND: no such system). */
int dtm_key_rotate(struct dtm_store *st, const char *code, int64_t now, int64_t grace_us,
                   struct dtm_credentials *out);
/* A new OAuth client secret (client_id, client_secret): the old secret stops at once and so
 * do the tokens issued under it (their cgen claim is older); a revoked client lives again. */
int dtm_client_rotate(struct dtm_store *st, const char *code, int64_t now,
                      struct dtm_credentials *out);
/* Revokes a system's OAuth client: no new token, and its tokens are refused at once.
 * DTM_ENOTFOUND when there is no live client. */
int dtm_client_revoke(struct dtm_store *st, const char *code, int64_t now);

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

/* T2.4, CONTRACT §3: OAuth 2.0 client credentials (gate/jwt.c). A connected system's client
 * (client_id = its code, the secret stored as a hash) obtains short-lived ES256 JWTs from
 * POST /oauth/token and presents them as `Authorization: Bearer`. Scopes: `ingest` (push data;
 * source and aggregator), `read` (records and statistics the role and grants allow) and
 * `dataset:CODE` (narrows both to the datasets named). */
struct dtm_dict;
#define DTM_TOKEN_DATASETS_MAX 8
#define DTM_TOKEN_TTL_MAX 3600 /* s: [oauth] token_ttl at most; retired keys stay this long */
#define DTM_TOKEN_LEEWAY 30    /* s: [oauth] leeway at most (clock difference on exp, nbf, iat) */
#define DTM_JWT_MAX 4096       /* bytes of a presented token at most */
struct dtm_token {
    bool valid;       /* the caller came with a verified Bearer token */
    bool ingest;      /* scope ingest */
    bool read;        /* scope read */
    size_t ndatasets; /* dataset:CODE scopes; 0 = every dataset the role and grants allow */
    char datasets[DTM_TOKEN_DATASETS_MAX][DTM_CODE_MAX];
    char jti[DTM_ID_MAX];
    char kid[DTM_ID_MAX];
    int64_t expires_at; /* s since the epoch */
};
/* Authenticates a client by id and secret (the secret's SHA-256 compared in constant time).
 * DTM_OK with its system; DTM_EAUTH with *reason (unknown_client | wrong_secret | revoked, for
 * the audit trail) — the caller answers invalid_client without saying which; or a store
 * error. */
int dtm_oauth_client_auth(struct dtm_store *st, struct dtm_str client_id, struct dtm_str secret,
                          int64_t now, struct dtm_system *sys, const char **reason);
/* The scopes granted for a requested scope string (RFC 6749 §3.3; empty = the role's: ingest
 * and read for a source or aggregator, read for a consumer; datasets only = the role's actions
 * narrowed to them). DTM_EINVAL with a sentence in why (in lang) when a scope is unknown or
 * beyond the system's role or grants (invalid_scope); a store error otherwise. */
int dtm_oauth_scope(struct dtm_store *st, const struct dtm_dict *dict, const struct dtm_system *sys,
                    struct dtm_str requested, enum dtm_lang lang, struct dtm_token *out, char *why,
                    size_t whysz);
/* Appends the space-separated scope string of t to b. */
int dtm_oauth_scope_string(const struct dtm_token *t, struct dtm_buf *b);
/* Whether a token's scopes allow an action (ingest, else read) on a dataset (empty = none
 * named: allowed only when the token names no dataset). True when t is not valid (no token). */
bool dtm_token_allows(const struct dtm_token *t, bool ingest, struct dtm_str dataset);
/* Signing keys (migration 11). _new: a new ES256 key, its private half sealed under the data
 * keys with its kid as associated data — made outside any write transaction (the first seal of a
 * process takes one of its own). _install, in the caller's write transaction: k becomes the
 * current key; the old ones are retired but stay published and accepted while tokens they
 * signed may live. _ensure, in the caller's write transaction: installs fresh when there is no
 * current key (its kid in kid; "" when one existed). */
int dtm_signing_key_new(struct dtm_datakeys *dk, int64_t now, struct dtm_signing_key *k);
int dtm_signing_key_install(struct dtm_store *st, const struct dtm_signing_key *k);
int dtm_signing_key_ensure(struct dtm_store *st, const struct dtm_signing_key *fresh,
                           char kid[DTM_ID_MAX]);
/* Signs a token for a system's client with the current key: t holds the scopes granted and
 * receives jti, kid and expires_at; *out the compact JWT (the caller frees it). DTM_ENOTFOUND
 * when there is no signing key yet. */
int dtm_token_issue(struct dtm_store *st, const struct dtm_conf *c, const struct dtm_system *sys,
                    const char *client_id, struct dtm_token *t, int64_t now_us, char **out);
/* Verifies a Bearer token: ES256 only, kid published, signature, iss, exp/nbf/iat (with
 * [oauth] leeway), then the client (not revoked) and its system (same role). DTM_OK with out
 * and sys; DTM_EAUTH when anything is wrong; a store error. */
int dtm_token_verify(struct dtm_store *st, const struct dtm_conf *c, struct dtm_str bearer,
                     int64_t now_us, struct dtm_token *out, struct dtm_system *sys);
/* The JWK set (RFC 7517) of the keys still accepted: {"keys":[…]} appended to out. */
int dtm_jwks(struct dtm_store *st, int64_t now_us, struct dtm_buf *out);

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

/* ---- people (CONTRACT §3; gate/session.c): accounts, password policy, sessions, failed logins */

#define DTM_SESSION_COOKIE "dtm_session"
#define DTM_PASSWORD_MIN 12
#define DTM_PASSWORD_MAX 1024
/* admin | operator | analyst | auditor */
bool dtm_role_valid(const char *role);
/* 1 to 63 characters: lower-case letters, digits, '.', '_', '-', starting with a letter/digit */
bool dtm_username_valid(const char *username);
/* The password policy: NULL when password is acceptable for username, else an English sentence
 * (a msgid) naming the rule broken: length (DTM_PASSWORD_MIN..MAX), not the user name, not a
 * common password. */
const char *dtm_password_policy(const char *username, const char *password);

/* A new session: id (the cookie value: 256 random bits, base64url, 43 characters), its
 * SHA-256 (what is stored) and a CSRF token (128 random bits, base64url). */
#define DTM_SESSION_ID_MAX 48
int dtm_session_new(char id[DTM_SESSION_ID_MAX], uint8_t hash[32], char csrf[48]);
void dtm_session_hash(struct dtm_str id, uint8_t hash[32]);

/* Failed logins (in the server process): per user name a progressive delay (after the n-th
 * failure in a row the next attempt waits 2^(n-1)·250 ms, at most 30 s) and a lockout of
 * [session] lockout_minutes after lockout_after failures; per source address a lockout after
 * ip_lockout_after failures. Names are tracked whether or not they exist, so the answers tell
 * nothing about which ones do. Thread-safe; a bounded table (the oldest entries give way). */
enum dtm_login_gate { DTM_LOGIN_OK, DTM_LOGIN_TOO_SOON, DTM_LOGIN_LOCKED, DTM_LOGIN_IP_LOCKED };
enum dtm_login_gate dtm_login_check(const struct dtm_conf *c, const char *username, const char *ip,
                                    int64_t now_us, int64_t *retry_s);
/* Records a failure; true when it locked the name (the lockout starts now). */
bool dtm_login_failed(const struct dtm_conf *c, const char *username, const char *ip,
                      int64_t now_us);
void dtm_login_succeeded(const char *username);

/* The server's changes to people's rows go through its writer (which owns every write): fn runs
 * inside a group commit on the writer thread. fn returns non-zero only when the store failed
 * (the whole group is then rolled back and answered 503); outcomes go into ctx. */
struct dtm_writer;
typedef int (*dtm_gate_txn_fn)(void *ctx, struct dtm_store *st);
/* Waits for the commit: DTM_OK, the store's error, or DTM_EBUSY (writer full or stopping). */
int dtm_gate_write(struct dtm_writer *w, dtm_gate_txn_fn fn, void *ctx);
/* Returns at once; ctx (n bytes) is copied and fn runs later, not necessarily durably. */
int dtm_gate_write_async(struct dtm_writer *w, dtm_gate_txn_fn fn, const void *ctx, size_t n);

/* ---- MFA (T4.3; gate/totp.c): TOTP per RFC 6238 (SHA-1, 30 s, 6 digits: what authenticator
 * apps use), seeds sealed under the data keys, one-time recovery codes */

#define DTM_TOTP_SECRET_BYTES 20
#define DTM_RECOVERY_CODES 10
#define DTM_RECOVERY_CODE_MAX 24
/* Seals a seed under the data keys (dtm_datakey_seal_to, T4.2) with the user name in the
 * associated data (a seed moved to another account does not open); out needs
 * n + DTM_SEAL_OVERHEAD bytes. Not while this thread holds a write transaction (see there).
 * Opening: DTM_EAUTH when the seed does not open (altered, moved, or sealed before T4.2 — an
 * administrator then resets the account's MFA). */
struct dtm_datakeys;
int dtm_totp_seal(struct dtm_datakeys *dk, const char *username, const uint8_t *secret, size_t n,
                  uint8_t *out, size_t outsz, size_t *outlen);
int dtm_totp_open(struct dtm_datakeys *dk, const char *username, const uint8_t *sealed, size_t n,
                  uint8_t *secret, size_t secretsz, size_t *secretlen);
/* A new random seed. */
int dtm_totp_secret_new(uint8_t secret[DTM_TOTP_SECRET_BYTES]);
/* Checks a 6-digit code at now (s) allowing one step either way: DTM_OK with *step (the time
 * step it matched), DTM_EAUTH otherwise. Constant-time comparison. */
int dtm_totp_check(const uint8_t *secret, size_t n, struct dtm_str code, int64_t now_s,
                   int64_t *step);
/* The code of a step (tests, `dtm user`): out >= 7 bytes. */
int dtm_totp_code(const uint8_t *secret, size_t n, int64_t step, char out[8]);
/* The seed in base32 (RFC 4648, no padding) and the otpauth:// URI of authenticator apps. */
int dtm_totp_base32(const uint8_t *secret, size_t n, char *out, size_t outsz);
void dtm_totp_uri(const char *username, const char *b32, struct dtm_buf *out);
/* A QR code of text (libqrencode) as an SVG document or a PNG image (grey-scale, zlib). */
int dtm_qr_svg(const char *text, struct dtm_buf *out);
int dtm_qr_png(const char *text, struct dtm_buf *out);
/* n new recovery codes ("xxxxx-xxxxx-xxxxx-xxxxx": 100 random bits) and their hashes. */
int dtm_recovery_new(char (*codes)[DTM_RECOVERY_CODE_MAX], uint8_t (*hashes)[32], size_t n);
/* The hash of a code as typed (case, spaces and dashes ignored); false when it cannot be one. */
bool dtm_recovery_hash(struct dtm_str code, uint8_t hash[32]);

/* ---- encryption at rest (T4.2; gate/datakey.c)
 *
 * Envelope encryption. Stored record content, batch spool files and small secrets are sealed
 * with AES-256-GCM under *data keys* (random, 256 bits) kept in the store's data_keys table,
 * each wrapped (AES-256-GCM, its id as associated data) under the *key-encryption key* (KEK)
 * held in DATA_DIR/master.key. The KEK has an id (a fingerprint) stored with every wrapped data
 * key, so `dtm key rotate-master` re-wraps the data keys under a new KEK in one transaction
 * while servers run: a server unwraps a data key lazily, the first time it needs it, with the
 * KEK whose id the row names (master.key, or master.key.next during a rotation).
 *
 * master.key holds the KEK and, sealed under it, the *root secret* from which the keyring's
 * purpose keys are derived (record_key, mask_key, audit_key… above): those must survive a
 * rotation (hashes, masks and the audit chain stay valid), so they do not hang on the KEK. A
 * 32-byte master.key (data dirs made before T4.2) is both KEK and root; the first rotation
 * writes the new format (96 bytes: "DTK1", KEK, nonce, sealed root, tag).
 *
 * A sealed blob: version byte 0x01 | data key id (4 bytes, big-endian) | nonce (12) |
 * ciphertext | tag (16). The first byte of canonical JSON is '{', so content stored before T4.2
 * still reads as it is. */
#define DTM_SEAL_V1 0x01
#define DTM_SEAL_OVERHEAD 33 /* version, key id, nonce, tag */
/* The data keys of c's data dir: one object per data dir and process, created on first use and
 * kept until exit (NULL only when out of memory). Nothing is read until a key is needed. */
struct dtm_datakeys *dtm_datakeys_get(const struct dtm_conf *c);
/* Whether p looks like a sealed blob (not plain JSON). */
static inline bool dtm_datakey_sealed(const void *p, size_t n)
{
    return n >= DTM_SEAL_OVERHEAD && *(const uint8_t *)p == DTM_SEAL_V1;
}
/* Seals n bytes under the current data key with aad as associated data (the blob opens only
 * with the same aad: bind it to where the blob is kept). out has n + DTM_SEAL_OVERHEAD bytes.
 * Thread-safe and cheap (a cipher context per thread and key). The first seal of a process,
 * and one in 2^20 after, reserves seals of the current key in the store (its own connection and
 * transaction): do not call it while this thread holds a write transaction on the same data
 * dir. DTM_OK, DTM_EIO (master key unreadable), DTM_ESTORE, DTM_ENOMEM. */
int dtm_datakey_seal_to(struct dtm_datakeys *dk, const void *aad, size_t aadlen, const void *p,
                        size_t n, uint8_t *out);
/* Opens a blob of n bytes sealed with aad: the plaintext (n - DTM_SEAL_OVERHEAD bytes) to out.
 * DTM_EMALFORMED when the blob is not sealed, was altered or has another aad; DTM_ENOTFOUND
 * when its data key is unknown; DTM_EIO when no KEK unwraps it. */
int dtm_datakey_open_to(struct dtm_datakeys *dk, const void *aad, size_t aadlen,
                        const uint8_t *blob, size_t n, uint8_t *out);
/* The same appending to a growable buffer: the API for small secrets (TOTP seeds, signing
 * keys, webhook secrets) and backups. A secret sealed this way survives master-key rotations,
 * and an old master key no longer opens it once rotated. */
int dtm_datakey_seal(struct dtm_datakeys *dk, const void *aad, size_t aadlen, const void *p,
                     size_t n, struct dtm_buf *out);
int dtm_datakey_open(struct dtm_datakeys *dk, const void *aad, size_t aadlen, const void *blob,
                     size_t n, struct dtm_buf *out);
/* Named secrets (alert channels' webhook keys and SMTP passwords) kept sealed in the store's
 * `secrets` table (`dtm secret set NAME`), with their name as associated data; dtm.conf names
 * one as "store:NAME" where it would otherwise hold the secret in clear. Names: 1..63 of
 * [A-Za-z0-9._-]. _seal: the blob to store (outside a write transaction, see above). _resolve:
 * a config value that is "store:NAME" becomes the secret (out, NUL-terminated), any other value
 * is copied as is; on failure a sentence without the secret in why. */
#define DTM_SECRET_REF "store:"
bool dtm_secret_name_ok(const char *name);
int dtm_secret_seal(struct dtm_datakeys *dk, const char *name, const char *value,
                    struct dtm_buf *out);
int dtm_secret_resolve(struct dtm_store *st, struct dtm_datakeys *dk, const char *ref, char *out,
                       size_t outsz, char *why, size_t whysz);
/* master.key files: the KEK (and its id: 16 hex characters of HMAC-SHA-256(KEK, "dtm kek id
 * v1")) and the root secret. */
#define DTM_KEK_ID_LEN 16
struct dtm_kek {
    uint8_t key[32];
    char id[DTM_KEK_ID_LEN + 1];
};
/* Reads a master key file (refusing one readable by others). */
int dtm_masterkey_read(const char *path, struct dtm_kek *kek, uint8_t root[32], char *err,
                       size_t errsz);
/* Writes a new master key file (0600, fsync; refuses to overwrite). */
int dtm_masterkey_write(const char *path, const struct dtm_kek *kek, const uint8_t root[32],
                        char *err, size_t errsz);
/* Wraps a 32-byte key under a KEK (AES-256-GCM, random nonce, aad bound) and opens it again:
 * the per-file keys of backups (backup/). out/in: DTM_KEK_WRAPPED_LEN bytes (nonce, ciphertext,
 * tag). Unwrap: DTM_EMALFORMED when the KEK is not the one it was wrapped under. */
#define DTM_KEK_WRAPPED_LEN 60
int dtm_kek_wrap(const struct dtm_kek *kek, const char *aad, const uint8_t key[32],
                 uint8_t out[DTM_KEK_WRAPPED_LEN]);
int dtm_kek_unwrap(const struct dtm_kek *kek, const char *aad,
                   const uint8_t in[DTM_KEK_WRAPPED_LEN], uint8_t key[32]);
/* The id of an installation (16 hex characters): from the root secret of its master key, so it
 * stays the same across `dtm key rotate-master` and tells data dirs apart. */
void dtm_installation_id(const uint8_t root[32], char out[DTM_KEK_ID_LEN + 1]);
/* `dtm key rotate-master`: a new KEK is written to master.key.next, every data key is re-wrapped
 * under it in one transaction, master.key.next is renamed over master.key (the old KEK is gone)
 * and a last transaction re-wraps any data key a server created meanwhile. An interrupted
 * rotation is finished by the next one (it reuses master.key.next). *rewrapped: data keys
 * re-wrapped; new_id: the new KEK's id. */
int dtm_masterkey_rotate(const struct dtm_conf *c, int64_t *rewrapped,
                         char new_id[DTM_KEK_ID_LEN + 1], char old_id[DTM_KEK_ID_LEN + 1],
                         char *err, size_t errsz);

#endif
