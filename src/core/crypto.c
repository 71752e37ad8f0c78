/* core/crypto.c — random bytes, SHA-256, HMAC-SHA-256 and constant-time comparison from
 * OpenSSL's libcrypto; identifiers in Crockford base32. */
#include "core/core.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <string.h>

int dtm_random(void *out, size_t n)
{
    return RAND_bytes(out, (int)n) == 1 ? DTM_OK : DTM_EIO;
}

void dtm_sha256(const void *p, size_t n, uint8_t out[32])
{
    unsigned int len = 32;
    EVP_Digest(p, n, out, &len, EVP_sha256(), NULL);
}

void dtm_hmac_sha256(const uint8_t *key, size_t keylen, const void *p, size_t n, uint8_t out[32])
{
    unsigned int len = 32;
    HMAC(EVP_sha256(), key, (int)keylen, p, n, out, &len);
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

int dtm_random_id(const char *prefix, char *out, size_t outsz)
{
    static const char b32[] = "0123456789abcdefghjkmnpqrstvwxyz"; /* Crockford, lower case */
    uint8_t r[17];
    size_t pl = strlen(prefix);
    if (outsz < pl + 27)
        return DTM_EINVAL;
    if (dtm_random(r, 16))
        return DTM_EIO;
    r[16] = 0;
    memcpy(out, prefix, pl);
    for (size_t i = 0; i < 26; i++) {
        size_t bit = i * 5, byte = bit / 8, sh = bit % 8;
        unsigned v = ((unsigned)r[byte] << 8 | r[byte + 1]) >> (11 - sh);
        out[pl + i] = b32[v & 31];
    }
    out[pl + 26] = '\0';
    return DTM_OK;
}
