/* core/crypto.c — random bytes, SHA-256, HMAC-SHA-256 and constant-time comparison from
 * OpenSSL's libcrypto; identifiers in Crockford base32. */
#include "core/core.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/core_names.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

int dtm_random(void *out, size_t n)
{
    return RAND_bytes(out, (int)n) == 1 ? DTM_OK : DTM_EIO;
}

/* OpenSSL 3 looks an algorithm up in its provider table on every one-shot call (EVP_Digest,
 * HMAC), which costs more than hashing a 350-byte record. So SHA-256 is fetched once per process,
 * and HMAC contexts are keyed once per thread and key and re-initialised for each message. */
static EVP_MD *sha256_md;
static EVP_MAC *hmac_mac;
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;
static pthread_key_t mac_cache_key;

#define MAC_CACHE 4
struct mac_cache {
    uint8_t key[MAC_CACHE][64];
    size_t keylen[MAC_CACHE];
    EVP_MAC_CTX *ctx[MAC_CACHE];
    size_t next;
};

static void mac_cache_free(void *p)
{
    struct mac_cache *c = p;
    for (size_t i = 0; i < MAC_CACHE; i++)
        EVP_MAC_CTX_free(c->ctx[i]);
    OPENSSL_cleanse(c, sizeof(*c));
    free(c);
}

static void fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    hmac_mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    pthread_key_create(&mac_cache_key, mac_cache_free);
}

void dtm_sha256(const void *p, size_t n, uint8_t out[32])
{
    unsigned int len = 32;
    pthread_once(&fetch_once, fetch);
    EVP_Digest(p, n, out, &len, sha256_md, NULL);
}

static EVP_MAC_CTX *mac_ctx(const uint8_t *key, size_t keylen)
{
    struct mac_cache *c = pthread_getspecific(mac_cache_key);
    OSSL_PARAM params[2];
    size_t i;
    if (keylen > 64)
        return NULL;
    if (!c) {
        c = calloc(1, sizeof(*c));
        if (!c || pthread_setspecific(mac_cache_key, c) != 0) {
            free(c);
            return NULL;
        }
    }
    for (i = 0; i < MAC_CACHE; i++)
        if (c->ctx[i] && c->keylen[i] == keylen && memcmp(c->key[i], key, keylen) == 0)
            return EVP_MAC_init(c->ctx[i], NULL, 0, NULL) == 1 ? c->ctx[i] : NULL;
    i = c->next++ % MAC_CACHE;
    EVP_MAC_CTX_free(c->ctx[i]);
    c->ctx[i] = EVP_MAC_CTX_new(hmac_mac);
    if (!c->ctx[i])
        return NULL;
    params[0] = OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    if (EVP_MAC_init(c->ctx[i], key, keylen, params) != 1) {
        EVP_MAC_CTX_free(c->ctx[i]);
        c->ctx[i] = NULL;
        return NULL;
    }
    memcpy(c->key[i], key, keylen);
    c->keylen[i] = keylen;
    return c->ctx[i];
}

void dtm_hmac_sha256(const uint8_t *key, size_t keylen, const void *p, size_t n, uint8_t out[32])
{
    EVP_MAC_CTX *ctx;
    size_t len = 32;
    unsigned int ulen = 32;
    pthread_once(&fetch_once, fetch);
    ctx = mac_ctx(key, keylen);
    if (ctx && EVP_MAC_update(ctx, p, n) == 1 && EVP_MAC_final(ctx, out, &len, 32) == 1)
        return;
    HMAC(EVP_sha256(), key, (int)keylen, p, n, out, &ulen); /* slow path, same result */
}

bool dtm_ct_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

void dtm_hex(const uint8_t *p, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 15];
    }
    out[2 * n] = '\0';
}

int dtm_random_token(const char *prefix, size_t bytes, char *out, size_t outsz)
{
    static const char b32[] = "0123456789abcdefghjkmnpqrstvwxyz"; /* Crockford, lower case */
    uint8_t r[33];
    size_t pl = strlen(prefix), nchars = (bytes * 8 + 4) / 5;
    if (bytes == 0 || bytes > 32 || outsz < pl + nchars + 1)
        return DTM_EINVAL;
    if (dtm_random(r, bytes))
        return DTM_EIO;
    r[bytes] = 0; /* the last character's spare bits */
    memcpy(out, prefix, pl);
    for (size_t i = 0; i < nchars; i++) {
        size_t bit = i * 5, byte = bit / 8, sh = bit % 8;
        unsigned v = ((unsigned)r[byte] << 8 | r[byte + 1]) >> (11 - sh);
        out[pl + i] = b32[v & 31];
    }
    out[pl + nchars] = '\0';
    OPENSSL_cleanse(r, sizeof(r));
    return DTM_OK;
}

int dtm_random_id(const char *prefix, char *out, size_t outsz)
{
    return dtm_random_token(prefix, 16, out, outsz);
}
