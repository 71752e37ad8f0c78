/* gate/keys.c — the keyring, secret tokens and API-key authentication. */
#include "gate/gate.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int dtm_keyring_create(const char *path, char *err, size_t errsz)
{
    /* T4.2: a KEK and, sealed under it, a separate root secret (gate/datakey.c) */
    struct dtm_kek kek;
    uint8_t root[32];
    int rc = DTM_OK;
    if (dtm_random(kek.key, sizeof(kek.key)) || dtm_random(root, sizeof(root))) {
        snprintf(err, errsz, "cannot get random bytes");
        rc = DTM_EIO;
    } else {
        rc = dtm_masterkey_write(path, &kek, root, err, errsz);
    }
    OPENSSL_cleanse(&kek, sizeof(kek));
    OPENSSL_cleanse(root, sizeof(root));
    return rc;
}

static void derive(const uint8_t master[32], const char *label, uint8_t out[32])
{
    dtm_hmac_sha256(master, 32, label, strlen(label), out);
}

int dtm_keyring_load(const char *path, struct dtm_keyring *out, char *err, size_t errsz)
{
    /* T4.2: the purpose keys come from the root secret, which a master-key rotation keeps */
    struct dtm_kek kek;
    int rc = dtm_masterkey_read(path, &kek, out->master, err, errsz);
    OPENSSL_cleanse(&kek, sizeof(kek));
    if (rc)
        return rc == DTM_ENOTFOUND ? DTM_EIO : rc;
    derive(out->master, "dtm record key v1", out->record_key);
    derive(out->master, "dtm content key v1", out->content_key);
    derive(out->master, "dtm mask key v1", out->mask_key);
    derive(out->master, "dtm audit key v1", out->audit_key);
    return DTM_OK;
}

void dtm_keyring_wipe(struct dtm_keyring *k)
{
    OPENSSL_cleanse(k, sizeof(*k));
}

int dtm_secret_new(const char *prefix, char *out, size_t outsz, uint8_t hash[32])
{
    int rc = dtm_random_token(prefix, 32, out, outsz);
    if (rc == DTM_OK)
        dtm_secret_hash(dtm_str_c(out), hash);
    return rc;
}

/* A key found in the store still authenticates: not revoked, not past its rotation grace. */
static int key_live(const struct dtm_key *k, int64_t now)
{
    if (k->revoked_at && k->revoked_at <= now)
        return DTM_EAUTH;
    if (k->expires_at && k->expires_at <= now)
        return DTM_EAUTH;
    return DTM_OK;
}

void dtm_secret_hash(struct dtm_str secret, uint8_t hash[32])
{
    /* Tokens carry 256 random bits, so a fast unsalted hash is enough: nobody can brute-force
     * the preimage, and lookups stay O(1) by an index on the hash. */
    dtm_sha256(secret.p, secret.n, hash);
}

int dtm_gate_api_key(struct dtm_store *st, struct dtm_str key, int64_t now, struct dtm_key *k,
                     struct dtm_system *sys)
{
    uint8_t h[32];
    int rc;
    if (key.n == 0 || key.n > DTM_SECRET_MAX)
        return DTM_EAUTH;
    dtm_secret_hash(key, h);
    /* The lookup is by the SHA-256 of what the client sent: its timing depends only on the
     * client's own input, never on a stored secret, so it leaks nothing an attacker can use. */
    rc = st->ops->key_find(st, h, k, sys);
    if (rc == DTM_ENOTFOUND)
        return DTM_EAUTH;
    if (rc)
        return rc;
    return key_live(k, now);
}

#define KC_SLOTS 4096

struct kc_entry {
    bool used;
    uint8_t hash[32];
    struct dtm_key key;
    struct dtm_system sys;
};

struct dtm_key_cache {
    pthread_rwlock_t lock;
    char path[DTM_PATH_MAX];
    int fd; /* keys.changed, kept open: fstat is cheaper than a path lookup per request */
    struct timespec seen; /* mtime of keys.changed when the cache was last valid */
    bool seen_exists;
    struct kc_entry slot[KC_SLOTS];
};

struct dtm_key_cache *dtm_key_cache_create(const struct dtm_conf *c)
{
    struct dtm_key_cache *kc = calloc(1, sizeof(*kc));
    if (!kc)
        return NULL;
    pthread_rwlock_init(&kc->lock, NULL);
    dtm_conf_path(c, "keys.changed", kc->path, sizeof(kc->path));
    /* The CLI rewrites this file in place (O_TRUNC keeps the inode), so the open descriptor sees
     * every change. Without it, fall back to stat(2) of the path. */
    kc->fd = open(kc->path, O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
    return kc;
}

void dtm_key_cache_destroy(struct dtm_key_cache *kc)
{
    if (!kc)
        return;
    pthread_rwlock_destroy(&kc->lock);
    if (kc->fd >= 0)
        close(kc->fd);
    OPENSSL_cleanse(kc, sizeof(*kc));
    free(kc);
}

void dtm_gate_keys_changed(const struct dtm_conf *c)
{
    char path[DTM_PATH_MAX], stamp[32];
    int fd, n;
    dtm_conf_path(c, "keys.changed", path, sizeof(path));
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    n = snprintf(stamp, sizeof(stamp), "%lld\n", (long long)dtm_now_us());
    if (write(fd, stamp, (size_t)n) < 0) {
        /* the mtime moved anyway */
    }
    close(fd);
}

int dtm_gate_api_key_cached(struct dtm_key_cache *kc, struct dtm_store *st, struct dtm_str key,
                            int64_t now, struct dtm_key *k, struct dtm_system *sys)
{
    uint8_t h[32];
    struct stat sb;
    bool exists, hit = false;
    size_t slot;
    int rc;
    if (!kc)
        return dtm_gate_api_key(st, key, now, k, sys);
    if (key.n == 0 || key.n > DTM_SECRET_MAX)
        return DTM_EAUTH;
    exists = (kc->fd >= 0 ? fstat(kc->fd, &sb) : stat(kc->path, &sb)) == 0;
    dtm_secret_hash(key, h);
    slot = ((size_t)h[0] << 8 | h[1]) % KC_SLOTS;
    pthread_rwlock_rdlock(&kc->lock);
    if (exists == kc->seen_exists && (!exists || (sb.st_mtim.tv_sec == kc->seen.tv_sec &&
                                                  sb.st_mtim.tv_nsec == kc->seen.tv_nsec))) {
        struct kc_entry *e = &kc->slot[slot];
        if (e->used && dtm_ct_equal(e->hash, h, 32)) {
            *k = e->key;
            *sys = e->sys;
            hit = true;
        }
    } else {
        pthread_rwlock_unlock(&kc->lock);
        pthread_rwlock_wrlock(&kc->lock);
        for (size_t i = 0; i < KC_SLOTS; i++)
            kc->slot[i].used = false;
        kc->seen_exists = exists;
        if (exists)
            kc->seen = sb.st_mtim;
    }
    pthread_rwlock_unlock(&kc->lock);
    if (!hit) {
        rc = st->ops->key_find(st, h, k, sys);
        if (rc == DTM_ENOTFOUND)
            return DTM_EAUTH;
        if (rc)
            return rc;
        pthread_rwlock_wrlock(&kc->lock);
        kc->slot[slot].used = true;
        memcpy(kc->slot[slot].hash, h, 32);
        kc->slot[slot].key = *k;
        kc->slot[slot].sys = *sys;
        pthread_rwlock_unlock(&kc->lock);
    }
    return key_live(k, now);
}
