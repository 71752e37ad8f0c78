/* gate/password.c — people's passwords: Argon2id via libsodium, never logged. */
#include "gate/gate.h"

#include <sodium.h>
#include <string.h>

int dtm_password_hash(const char *password, char *out, size_t outsz)
{
    if (outsz < crypto_pwhash_STRBYTES || sodium_init() < 0)
        return DTM_EINVAL;
    if (crypto_pwhash_str(out, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
        return DTM_ENOMEM;
    return DTM_OK;
}

bool dtm_password_verify(const char *hash, const char *password)
{
    if (sodium_init() < 0)
        return false;
    return crypto_pwhash_str_verify(hash, password, strlen(password)) == 0;
}

int dtm_password_random(char *out, size_t outsz, size_t n)
{
    /* no 0/O, 1/l/I: easy to read out and type */
    static const char alphabet[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    if (n + 1 > outsz)
        return DTM_EINVAL;
    if (sodium_init() < 0)
        return DTM_EIO;
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[randombytes_uniform(sizeof(alphabet) - 1)];
    out[n] = '\0';
    return DTM_OK;
}
