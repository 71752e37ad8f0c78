/* gate/credentials.c — the credentials of connected systems (T2.4, CONTRACT §1 and §3):
 * registering a system with its first API key and OAuth client, rotating and revoking API
 * keys, rotating and revoking the OAuth client secret. Shared by the command line
 * (cli/system.c) and the administration API (api/systems.c). Each function works inside the
 * caller's write transaction, where the caller also writes the audit entry. Secrets are random
 * (256 bits), handed out once, stored only as their SHA-256. */
#include "gate/gate.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

bool dtm_system_code_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 32)
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

bool dtm_system_role_valid(const char *s)
{
    return !strcmp(s, "source") || !strcmp(s, "consumer") || !strcmp(s, "aggregator");
}

bool dtm_probe_url_valid(const char *s)
{
    size_t n = strlen(s);
    if (n >= sizeof(((struct dtm_probe *)0)->url) ||
        (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return false;
    return n > 8;
}

void dtm_credentials_wipe(struct dtm_credentials *c)
{
    OPENSSL_cleanse(c, sizeof(*c));
}

int dtm_key_issue(struct dtm_store *st, const char *code, int64_t now, struct dtm_credentials *out)
{
    struct dtm_key k = {0};
    uint8_t hash[32];
    int rc;
    if ((rc = dtm_random_id("key_", k.id, sizeof(k.id))) ||
        (rc = dtm_secret_new("dtm_", out->api_key, sizeof(out->api_key), hash)))
        return rc;
    snprintf(k.system_code, sizeof(k.system_code), "%s", code);
    k.created_at = now;
    if ((rc = st->ops->key_add(st, &k, hash)))
        return rc;
    snprintf(out->key_id, sizeof(out->key_id), "%s", k.id);
    return DTM_OK;
}

int dtm_key_rotate(struct dtm_store *st, const char *code, int64_t now, int64_t grace_us,
                   struct dtm_credentials *out)
{
    struct dtm_system sys;
    int rc = st->ops->system_get(st, code, &sys);
    if (rc || (rc = st->ops->key_expire_all(st, code, now + grace_us)))
        return rc;
    return dtm_key_issue(st, code, now, out);
}

int dtm_system_register(struct dtm_store *st, const struct dtm_system *sys, const char *probe_url,
                        int64_t now, struct dtm_credentials *out)
{
    uint8_t hash[32];
    int rc;
    if (sys->parent[0]) {
        struct dtm_system par;
        rc = st->ops->system_get(st, sys->parent, &par);
        if (rc == DTM_ENOTFOUND || (rc == DTM_OK && strcmp(par.role, "aggregator")))
            return DTM_EINVAL;
        if (rc)
            return rc;
    }
    if ((rc = st->ops->system_add(st, sys)) ||
        (probe_url && *probe_url && (rc = st->ops->probe_set_url(st, sys->code, probe_url))) ||
        (rc = dtm_key_issue(st, sys->code, now, out)) ||
        (rc = dtm_secret_new("dtmcs_", out->client_secret, sizeof(out->client_secret), hash)) ||
        (rc = st->ops->client_add(st, sys->code, sys->code, hash, now)))
        return rc;
    snprintf(out->client_id, sizeof(out->client_id), "%s", sys->code);
    return DTM_OK;
}

int dtm_client_rotate(struct dtm_store *st, const char *code, int64_t now,
                      struct dtm_credentials *out)
{
    struct dtm_oauth_client cl;
    struct dtm_system sys;
    uint8_t hash[32];
    int rc;
    if ((rc = st->ops->system_get(st, code, &sys)) ||
        (rc = dtm_secret_new("dtmcs_", out->client_secret, sizeof(out->client_secret), hash)))
        return rc;
    /* the client of a system is named by its code (dtm_system_register) */
    rc = st->ops->client_get(st, code, &cl);
    if (rc == DTM_ENOTFOUND) {
        rc = st->ops->client_add(st, code, code, hash, now);
    } else if (rc == DTM_OK) {
        memcpy(cl.secret_hash, hash, sizeof(hash));
        cl.revoked_at = 0;
        cl.generation++; /* the tokens issued under the old secret end now */
        rc = st->ops->client_set(st, &cl);
    }
    if (rc == DTM_OK)
        snprintf(out->client_id, sizeof(out->client_id), "%s", code);
    return rc;
}

int dtm_client_revoke(struct dtm_store *st, const char *code, int64_t now)
{
    struct dtm_oauth_client cl;
    int rc = st->ops->client_get(st, code, &cl);
    if (rc)
        return rc;
    if (cl.revoked_at)
        return DTM_ENOTFOUND; /* nothing live to revoke */
    cl.revoked_at = now;
    return st->ops->client_set(st, &cl);
}
