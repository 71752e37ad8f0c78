/* gate/jwt.c — OAuth 2.0 client credentials (T2.4, CONTRACT §3, RFC 6749 §4.4): client
 * authentication against the stored secret hash, scopes that map to roles and datasets, the
 * keys that sign access tokens (ES256 on P-256, generated with OpenSSL, the private half sealed
 * under the data keys of encryption at rest), issuing tokens (RFC 7519 JWTs via libjwt, with
 * kid), verifying Bearer tokens for the router (gate() in http/server.c) — revoked clients,
 * rotated client secrets and revoked tokens included — and the public JWK set (RFC 7517) other
 * systems verify them with.
 *
 * A presented token is checked before libjwt sees it with a key: exactly three base64url parts,
 * a header whose alg is ES256 and whose kid names a published key — so "alg":"none" and the
 * HS256-with-the-public-key confusion are refused whatever libjwt would do with them. */
#include "dict/dict.h"
#include "gate/gate.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- base64url without padding (RFC 7515 §2) */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Encodes n bytes; out has room for 4 * (n + 2) / 3 + 1. */
static void b64url_encode(const uint8_t *p, size_t n, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64url[v >> 18 & 63];
        out[o++] = b64url[v >> 12 & 63];
        out[o++] = b64url[v >> 6 & 63];
        out[o++] = b64url[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = b64url[v >> 18 & 63];
        out[o++] = b64url[v >> 12 & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = b64url[v >> 18 & 63];
        out[o++] = b64url[v >> 12 & 63];
        out[o++] = b64url[v >> 6 & 63];
    }
    out[o] = '\0';
}

static int b64url_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Decodes s (no padding) into out (at most outsz bytes). Returns the length, -1 when s is not
 * base64url or does not fit. */
static long b64url_decode(struct dtm_str s, uint8_t *out, size_t outsz)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    if (s.n % 4 == 1)
        return -1;
    for (size_t i = 0; i < s.n; i++) {
        int v = b64url_value(s.p[i]);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= outsz)
                return -1;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    return (long)o;
}

/* ---- client authentication (RFC 6749 §2.3.1) */

int dtm_oauth_client_auth(struct dtm_store *st, struct dtm_str client_id, struct dtm_str secret,
                          int64_t now, struct dtm_system *sys, const char **reason)
{
    struct dtm_oauth_client cl;
    char id[DTM_CODE_MAX];
    uint8_t h[32];
    int rc;
    *reason = "unknown_client";
    /* hashed first, whatever happens next: the work done does not say whether the client
     * exists */
    dtm_secret_hash(secret.n <= DTM_SECRET_MAX ? secret : DTM_STR(""), h);
    if (client_id.n == 0 || client_id.n >= sizeof(id) || memchr(client_id.p, '\0', client_id.n))
        return DTM_EAUTH;
    memcpy(id, client_id.p, client_id.n);
    id[client_id.n] = '\0';
    rc = st->ops->client_get(st, id, &cl);
    if (rc == DTM_ENOTFOUND) {
        uint8_t dummy[32] = {0};
        volatile int same = sodium_memcmp(h, dummy, 32);
        (void)same;
        return DTM_EAUTH;
    }
    if (rc)
        return rc;
    /* T2.4: the secret is compared as its SHA-256, in constant time */
    if (secret.n == 0 || secret.n > DTM_SECRET_MAX || sodium_memcmp(h, cl.secret_hash, 32) != 0) {
        *reason = "wrong_secret";
        return DTM_EAUTH;
    }
    if (cl.revoked_at && cl.revoked_at <= now) {
        *reason = "revoked";
        return DTM_EAUTH;
    }
    rc = st->ops->system_get(st, cl.system_code, sys);
    if (rc == DTM_ENOTFOUND)
        return DTM_EAUTH;
    if (rc)
        return rc;
    *reason = "";
    return DTM_OK;
}

/* ---- scopes */

/* A sentence for the client in its language (po/vi.po), cut to whysz. */
__attribute__((format(printf, 4, 5))) static void say(char *why, size_t whysz, enum dtm_lang lang,
                                                      const char *fmt, ...)
{
    struct dtm_buf b;
    va_list ap;
    dtm_buf_init(&b, 4096);
    va_start(ap, fmt);
    dtm_buf_vprintf(&b, dtm_tr(lang, fmt), ap);
    va_end(ap);
    snprintf(why, whysz, "%s", b.p ? b.p : "");
    dtm_buf_free(&b);
}

static bool role_sends(const char *role)
{
    return strcmp(role, "source") == 0 || strcmp(role, "aggregator") == 0;
}

static bool has_dataset(const struct dtm_token *t, struct dtm_str code)
{
    for (size_t i = 0; i < t->ndatasets; i++)
        if (dtm_str_eqc(code, t->datasets[i]))
            return true;
    return false;
}

/* Splits a scope string (RFC 6749 §3.3: space-delimited) into t; known names only. For each
 * dataset:CODE, check (may be NULL) decides. DTM_OK or DTM_EINVAL with why. */
typedef int (*scope_check_fn)(void *ctx, struct dtm_str code, char *why, size_t whysz);
static int scope_parse(struct dtm_str s, struct dtm_token *t, scope_check_fn check, void *ctx,
                       enum dtm_lang lang, char *why, size_t whysz)
{
    size_t i = 0;
    int rc;
    while (i < s.n) {
        struct dtm_str tok;
        size_t j = i;
        while (j < s.n && s.p[j] != ' ')
            j++;
        tok = (struct dtm_str){s.p + i, j - i};
        i = j + 1;
        if (tok.n == 0)
            continue;
        for (size_t k = 0; k < tok.n; k++) {
            unsigned char c = (unsigned char)tok.p[k];
            if (c < 0x21 || c > 0x7e || c == '"' || c == '\\') {
                say(why, whysz, lang, "A scope may hold printable ASCII characters only.");
                return DTM_EINVAL;
            }
        }
        if (dtm_str_eqc(tok, "ingest")) {
            t->ingest = true;
        } else if (dtm_str_eqc(tok, "read")) {
            t->read = true;
        } else if (tok.n > 8 && memcmp(tok.p, "dataset:", 8) == 0 && tok.n - 8 < DTM_CODE_MAX) {
            struct dtm_str code = {tok.p + 8, tok.n - 8};
            if (has_dataset(t, code))
                continue;
            if (t->ndatasets == DTM_TOKEN_DATASETS_MAX) {
                say(why, whysz, lang, "At most %d dataset scopes may be asked for at once.",
                    DTM_TOKEN_DATASETS_MAX);
                return DTM_EINVAL;
            }
            if (check && (rc = check(ctx, code, why, whysz)))
                return rc;
            memcpy(t->datasets[t->ndatasets], code.p, code.n);
            t->datasets[t->ndatasets][code.n] = '\0';
            t->ndatasets++;
        } else {
            say(why, whysz, lang,
                "Unknown scope '%.*s'; the scopes are ingest, read and dataset:CODE.",
                (int)DTM_MIN(tok.n, 64), tok.p);
            return DTM_EINVAL;
        }
    }
    return DTM_OK;
}

struct scope_ctx {
    enum dtm_lang lang;
    struct dtm_store *st;
    const struct dtm_dict *dict;
    const struct dtm_system *sys;
    int rc; /* a storage failure */
};

static int scope_check(void *ctx, struct dtm_str code, char *why, size_t whysz)
{
    struct scope_ctx *x = ctx;
    char c[DTM_CODE_MAX];
    int rc;
    if (!dtm_dict_get(x->dict, code)) {
        say(why, whysz, x->lang, "There is no dataset '%.*s' (scope dataset:%.*s).",
            (int)DTM_MIN(code.n, 64), code.p, (int)DTM_MIN(code.n, 64), code.p);
        return DTM_EINVAL;
    }
    if (role_sends(x->sys->role))
        return DTM_OK; /* a source reads and writes its own records of every dataset */
    memcpy(c, code.p, code.n);
    c[code.n] = '\0';
    rc = x->st->ops->grant_check(x->st, x->sys->code, c);
    if (rc == DTM_ENOTFOUND) {
        say(why, whysz, x->lang, "System %s is not granted dataset %s (scope dataset:%s).",
            x->sys->code, c, c);
        return DTM_EINVAL;
    }
    if (rc) {
        x->rc = rc;
        snprintf(why, whysz, "-");
        return rc;
    }
    return DTM_OK;
}

int dtm_oauth_scope(struct dtm_store *st, const struct dtm_dict *dict, const struct dtm_system *sys,
                    struct dtm_str requested, enum dtm_lang lang, struct dtm_token *out, char *why,
                    size_t whysz)
{
    struct scope_ctx x = {lang, st, dict, sys, DTM_OK};
    int rc;
    memset(out, 0, sizeof(*out));
    why[0] = '\0';
    rc = scope_parse(requested, out, scope_check, &x, lang, why, whysz);
    if (x.rc)
        return x.rc;
    if (rc)
        return rc;
    if (out->ingest && !role_sends(sys->role)) {
        say(why, whysz, lang, "System %s has role %s, which may not send data (scope ingest).",
            sys->code, sys->role);
        return DTM_EINVAL;
    }
    /* no action asked for (nothing, or datasets only): the role's own */
    if (!out->ingest && !out->read) {
        out->ingest = role_sends(sys->role);
        out->read = true;
    }
    return DTM_OK;
}

int dtm_oauth_scope_string(const struct dtm_token *t, struct dtm_buf *b)
{
    const char *sep = "";
    if (t->ingest) {
        dtm_buf_addc(b, "ingest");
        sep = " ";
    }
    if (t->read) {
        dtm_buf_printf(b, "%sread", sep);
        sep = " ";
    }
    for (size_t i = 0; i < t->ndatasets; i++) {
        dtm_buf_printf(b, "%sdataset:%s", sep, t->datasets[i]);
        sep = " ";
    }
    return b->err;
}

bool dtm_token_allows(const struct dtm_token *t, bool ingest, struct dtm_str dataset)
{
    if (!t->valid)
        return true; /* not a token: the role decides alone */
    if (ingest ? !t->ingest : !t->read)
        return false;
    return t->ndatasets == 0 || (dataset.n && has_dataset(t, dataset));
}

/* ---- sealing private keys: under the data keys (T4.2), the kid as associated data */

/* Opens a sealed private key into out (NUL-terminated PEM). DTM_EAUTH when it does not open
 * (altered, or sealed before T4.2). */
static int unseal(struct dtm_datakeys *dk, const struct dtm_signing_key *k, char *out, size_t outsz)
{
    int rc;
    if (!dk)
        return DTM_ENOMEM;
    if (!dtm_datakey_sealed(k->sealed, k->sealed_len) || k->sealed_len - DTM_SEAL_OVERHEAD >= outsz)
        return DTM_EAUTH;
    rc = dtm_datakey_open_to(dk, k->kid, strlen(k->kid), k->sealed, k->sealed_len, (uint8_t *)out);
    if (rc) {
        OPENSSL_cleanse(out, outsz);
        return rc == DTM_EMALFORMED ? DTM_EAUTH : rc;
    }
    out[k->sealed_len - DTM_SEAL_OVERHEAD] = '\0';
    return DTM_OK;
}

/* ---- signing keys */

/* PEM of a key into out (NUL-terminated). */
static int pem_of(EVP_PKEY *pk, bool private_key, char *out, size_t outsz)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *p;
    long n;
    int rc = DTM_EINTERNAL;
    if (!bio)
        return DTM_ENOMEM;
    if ((private_key ? PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL)
                     : PEM_write_bio_PUBKEY(bio, pk)) != 1)
        goto out;
    n = BIO_get_mem_data(bio, &p);
    if (n <= 0 || (size_t)n >= outsz)
        goto out;
    memcpy(out, p, (size_t)n);
    out[n] = '\0';
    rc = DTM_OK;
out:
    BIO_free(bio); /* a memory BIO: its buffer is freed with it */
    return rc;
}

/* The public JWK of a P-256 key, its kid being the RFC 7638 thumbprint. */
static int jwk_of(EVP_PKEY *pk, struct dtm_signing_key *k)
{
    BIGNUM *x = NULL, *y = NULL;
    uint8_t bx[32], by[32], th[32];
    char sx[48], sy[48], canon[160];
    int rc = DTM_EINTERNAL;
    if (EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_X, &x) != 1 ||
        EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_Y, &y) != 1 ||
        BN_bn2binpad(x, bx, 32) != 32 || BN_bn2binpad(y, by, 32) != 32)
        goto out;
    b64url_encode(bx, 32, sx);
    b64url_encode(by, 32, sy);
    /* RFC 7638 §3.2: the required members in lexicographic order, no white space */
    snprintf(canon, sizeof(canon), "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
             sx, sy);
    dtm_sha256(canon, strlen(canon), th);
    b64url_encode(th, 32, k->kid);
    snprintf(k->public_jwk, sizeof(k->public_jwk),
             "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\",\"kid\":\"%s\","
             "\"use\":\"sig\",\"alg\":\"ES256\"}",
             sx, sy, k->kid);
    rc = DTM_OK;
out:
    BN_free(x);
    BN_free(y);
    return rc;
}

int dtm_signing_key_new(struct dtm_datakeys *dk, int64_t now, struct dtm_signing_key *k)
{
    EVP_PKEY *pk;
    char priv[1024];
    size_t n;
    int rc;
    memset(k, 0, sizeof(*k));
    if (!dk)
        return DTM_ENOMEM;
    if (!(pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")))
        return DTM_EINTERNAL;
    snprintf(k->alg, sizeof(k->alg), "ES256");
    k->created_at = now;
    if (!(rc = jwk_of(pk, k)) && !(rc = pem_of(pk, false, k->public_pem, sizeof(k->public_pem))) &&
        !(rc = pem_of(pk, true, priv, sizeof(priv)))) {
        n = strlen(priv);
        if (n + DTM_SEAL_OVERHEAD > sizeof(k->sealed))
            rc = DTM_ETOOBIG;
        else if (!(rc = dtm_datakey_seal_to(dk, k->kid, strlen(k->kid), priv, n, k->sealed)))
            k->sealed_len = n + DTM_SEAL_OVERHEAD;
    }
    OPENSSL_cleanse(priv, sizeof(priv));
    EVP_PKEY_free(pk);
    return rc;
}

/* How long a retired key stays published and accepted: the longest a token it signed can
 * live, and the clock leeway. */
static int64_t retired_after(int64_t now)
{
    return now - (int64_t)(DTM_TOKEN_TTL_MAX + DTM_TOKEN_LEEWAY) * 1000000;
}

struct current_ctx {
    struct dtm_signing_key *k;
    bool found;
};

static int current_one(void *ctx, const struct dtm_signing_key *k)
{
    struct current_ctx *x = ctx;
    if (k->retired_at)
        return DTM_OK;
    *x->k = *k; /* newest first: the first current key */
    x->found = true;
    return 1;
}

/* The current signing key: DTM_OK, DTM_ENOTFOUND when there is none. */
static int key_current(struct dtm_store *st, int64_t now, struct dtm_signing_key *k)
{
    struct current_ctx x = {k, false};
    int rc = st->ops->signing_key_list(st, retired_after(now), current_one, &x);
    if (rc < 0)
        return rc;
    return x.found ? DTM_OK : DTM_ENOTFOUND;
}

int dtm_signing_key_install(struct dtm_store *st, const struct dtm_signing_key *k)
{
    int rc = st->ops->signing_key_retire(st, k->created_at);
    return rc ? rc : st->ops->signing_key_add(st, k);
}

int dtm_signing_key_ensure(struct dtm_store *st, const struct dtm_signing_key *fresh,
                           char kid[DTM_ID_MAX])
{
    struct dtm_signing_key *k = malloc(sizeof(*k));
    int rc;
    kid[0] = '\0';
    if (!k)
        return DTM_ENOMEM;
    rc = key_current(st, fresh->created_at, k);
    if (rc == DTM_ENOTFOUND && !(rc = dtm_signing_key_install(st, fresh)))
        snprintf(kid, DTM_ID_MAX, "%s", fresh->kid);
    free(k);
    return rc;
}

/* ---- issuing */

int dtm_token_issue(struct dtm_store *st, const struct dtm_conf *c, const struct dtm_system *sys,
                    const char *client_id, struct dtm_token *t, int64_t now_us, char **out)
{
    struct dtm_signing_key *k = malloc(sizeof(*k));
    struct dtm_oauth_client client;
    char priv[1024];
    struct dtm_buf scope;
    jwt_t *jwt = NULL;
    int64_t now = now_us / 1000000,
            ttl = DTM_MIN(DTM_MAX(c->oauth_token_ttl, 1), DTM_TOKEN_TTL_MAX);
    int rc;
    *out = NULL;
    dtm_buf_init(&scope, 1024);
    priv[0] = '\0';
    if (!k) {
        rc = DTM_ENOMEM;
        goto out;
    }
    if ((rc = key_current(st, now_us, k)))
        goto out;
    if ((rc = st->ops->client_get(st, client_id, &client))) {
        rc = rc == DTM_ENOTFOUND ? DTM_EAUTH : rc; /* ENOTFOUND says: no signing key */
        goto out;
    }
    if ((rc = unseal(dtm_datakeys_get(c), k, priv, sizeof(priv)))) {
        dtm_logf(DTM_LOG_ERROR,
                 "the current OAuth signing key cannot be opened: rotate it with `dtm key "
                 "rotate-signing`",
                 "\"kid\":\"%s\"", k->kid);
        rc = DTM_EINTERNAL;
        goto out;
    }
    if ((rc = dtm_random_id("tok_", t->jti, sizeof(t->jti))) ||
        (rc = dtm_oauth_scope_string(t, &scope)))
        goto out;
    snprintf(t->kid, sizeof(t->kid), "%s", k->kid);
    t->expires_at = now + ttl;
    rc = DTM_EINTERNAL;
    if (jwt_new(&jwt) || jwt_add_header(jwt, "kid", k->kid) ||
        jwt_add_grant(jwt, "iss", c->oauth_issuer) || jwt_add_grant(jwt, "sub", client_id) ||
        jwt_add_grant(jwt, "system", sys->code) || jwt_add_grant(jwt, "role", sys->role) ||
        jwt_add_grant(jwt, "scope", scope.p ? scope.p : "") ||
        jwt_add_grant_int(jwt, "iat", (long)now) || jwt_add_grant_int(jwt, "nbf", (long)now) ||
        jwt_add_grant_int(jwt, "exp", (long)t->expires_at) || jwt_add_grant(jwt, "jti", t->jti) ||
        jwt_add_grant_int(jwt, "cgen", (long)client.generation) ||
        jwt_set_alg(jwt, JWT_ALG_ES256, (const unsigned char *)priv, (int)strlen(priv)))
        goto out;
    if (!(*out = jwt_encode_str(jwt)))
        goto out;
    rc = DTM_OK;
out:
    OPENSSL_cleanse(priv, sizeof(priv));
    if (jwt)
        jwt_free(jwt); /* wipes nothing, but holds only a copy of the key it was given */
    dtm_buf_free(&scope);
    free(k);
    return rc;
}

/* ---- verifying */

/* The public keys known to this process, by kid (immutable per kid), reloaded from the store
 * when an unknown kid arrives and every minute (retirements). */
#define PUB_MAX 32
static struct {
    pthread_mutex_t lock;
    size_t n;
    struct {
        char kid[DTM_ID_MAX];
        char pem[512];
    } k[PUB_MAX];
    int64_t loaded_at; /* monotonic µs; 0 = never */
} pubs = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int pub_one(void *ctx, const struct dtm_signing_key *k)
{
    (void)ctx;
    if (pubs.n == PUB_MAX)
        return 1;
    snprintf(pubs.k[pubs.n].kid, sizeof(pubs.k[0].kid), "%s", k->kid);
    snprintf(pubs.k[pubs.n].pem, sizeof(pubs.k[0].pem), "%s", k->public_pem);
    pubs.n++;
    return DTM_OK;
}

static bool pub_find(const char *kid, char *pem, size_t pemsz)
{
    for (size_t i = 0; i < pubs.n; i++)
        if (strcmp(pubs.k[i].kid, kid) == 0) {
            snprintf(pem, pemsz, "%s", pubs.k[i].pem);
            return true;
        }
    return false;
}

/* The public key PEM of a kid still accepted. DTM_OK, DTM_EAUTH (unknown), or a store error. */
static int pub_key(struct dtm_store *st, const char *kid, int64_t now_us, char *pem, size_t pemsz)
{
    int64_t mono = dtm_mono_us();
    int rc = DTM_OK;
    bool found;
    pthread_mutex_lock(&pubs.lock);
    found = pubs.loaded_at && mono - pubs.loaded_at < 60000000 && pub_find(kid, pem, pemsz);
    /* a miss reads the few rows again: a key rotated a moment ago is found at once, and a
     * flood of made-up kids is held back by the failed-authentication bucket (T2.2) */
    if (!found) {
        pubs.n = 0;
        pubs.loaded_at = mono;
        rc = st->ops->signing_key_list(st, retired_after(now_us), pub_one, NULL);
        if (rc > 0)
            rc = DTM_OK;
        if (rc)
            pubs.loaded_at = 0;
        else
            found = pub_find(kid, pem, pemsz);
    }
    pthread_mutex_unlock(&pubs.lock);
    if (rc)
        return rc;
    return found ? DTM_OK : DTM_EAUTH;
}

/* The header of a compact JWS, checked before any key is used: alg ES256 exactly, a kid, no
 * crit. kid receives the kid. */
static int header_check(struct dtm_str tok, char kid[DTM_ID_MAX])
{
    uint8_t buf[1024];
    const char *dot = memchr(tok.p, '.', tok.n);
    cJSON *h = NULL, *alg, *k;
    long n;
    int rc = DTM_EAUTH;
    if (!dot)
        return DTM_EAUTH;
    n = b64url_decode((struct dtm_str){tok.p, (size_t)(dot - tok.p)}, buf, sizeof(buf) - 1);
    if (n <= 0)
        return DTM_EAUTH;
    buf[n] = '\0';
    if (!(h = cJSON_ParseWithLength((const char *)buf, (size_t)n)) || !cJSON_IsObject(h))
        goto out;
    /* a member twice: cJSON reads the first, libjwt's parser the last — refuse the ambiguity */
    for (const cJSON *a = h->child; a; a = a->next)
        for (const cJSON *b = a->next; b; b = b->next)
            if (a->string && b->string && strcmp(a->string, b->string) == 0)
                goto out;
    alg = cJSON_GetObjectItemCaseSensitive(h, "alg");
    k = cJSON_GetObjectItemCaseSensitive(h, "kid");
    if (!cJSON_IsString(alg) || strcmp(alg->valuestring, "ES256") != 0 || !cJSON_IsString(k) ||
        strlen(k->valuestring) == 0 || strlen(k->valuestring) >= DTM_ID_MAX ||
        cJSON_GetObjectItemCaseSensitive(h, "crit") || cJSON_GetObjectItemCaseSensitive(h, "jku") ||
        cJSON_GetObjectItemCaseSensitive(h, "jwk") || cJSON_GetObjectItemCaseSensitive(h, "x5u"))
        goto out;
    snprintf(kid, DTM_ID_MAX, "%s", k->valuestring);
    rc = DTM_OK;
out:
    cJSON_Delete(h);
    return rc;
}

/* A compact JWS: three non-empty base64url parts. */
static bool compact_shape(struct dtm_str tok)
{
    size_t dots = 0, part = 0;
    for (size_t i = 0; i < tok.n; i++) {
        if (tok.p[i] == '.') {
            if (part == 0)
                return false;
            dots++;
            part = 0;
            continue;
        }
        if (b64url_value(tok.p[i]) < 0)
            return false;
        part++;
    }
    return dots == 2 && part > 0;
}

static bool str_claim(jwt_t *jwt, const char *name, char *out, size_t outsz)
{
    const char *v = jwt_get_grant(jwt, name);
    if (!v || strlen(v) == 0 || strlen(v) >= outsz)
        return false;
    snprintf(out, outsz, "%s", v);
    return true;
}

static bool int_claim(jwt_t *jwt, const char *name, int64_t *out)
{
    long v;
    errno = 0;
    v = jwt_get_grant_int(jwt, name);
    if (errno)
        return false;
    *out = (int64_t)v;
    return true;
}

/* What a verified token says (the signature checked once). */
struct claims {
    struct dtm_token tok; /* scopes, jti, kid, expires_at */
    char iss[128];
    char sub[DTM_CODE_MAX];
    char code[DTM_CODE_MAX];
    char role[16];
    int64_t exp, nbf, iat;
    int64_t cgen; /* the client secret's generation when issued (0 when absent) */
};

/* Tokens whose signature was verified, by the SHA-256 of the whole token (direct-mapped): a
 * client presents the same token for minutes, and opening a PEM key and verifying ECDSA costs
 * about a millisecond with OpenSSL 3. Only verified tokens enter; an entry is used only while
 * its token has not expired, and the time, issuer, client and system checks are redone on
 * every request. */
#define VC_SLOTS 256
static struct {
    pthread_mutex_t lock;
    struct vc_entry {
        uint8_t hash[32];
        bool used;
        struct claims cl;
    } e[VC_SLOTS];
} vcache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static bool vc_get(const uint8_t h[32], struct claims *out)
{
    struct vc_entry *e = &vcache.e[h[0] % VC_SLOTS];
    bool hit;
    pthread_mutex_lock(&vcache.lock);
    hit = e->used && memcmp(e->hash, h, 32) == 0;
    if (hit)
        *out = e->cl;
    pthread_mutex_unlock(&vcache.lock);
    return hit;
}

static void vc_put(const uint8_t h[32], const struct claims *cl)
{
    struct vc_entry *e = &vcache.e[h[0] % VC_SLOTS];
    pthread_mutex_lock(&vcache.lock);
    memcpy(e->hash, h, 32);
    e->cl = *cl;
    e->used = true;
    pthread_mutex_unlock(&vcache.lock);
}

/* The signature and claims of a token not seen before. DTM_OK, DTM_EAUTH or a store error. */
static int decode(struct dtm_store *st, struct dtm_str bearer, int64_t now_us, struct claims *cl)
{
    char kid[DTM_ID_MAX], pem[512], *tok = NULL, scope[1024], why[160];
    jwt_t *jwt = NULL;
    int rc;
    if (header_check(bearer, kid))
        return DTM_EAUTH;
    if ((rc = pub_key(st, kid, now_us, pem, sizeof(pem))))
        return rc;
    if (!(tok = malloc(bearer.n + 1)))
        return DTM_ENOMEM;
    memcpy(tok, bearer.p, bearer.n);
    tok[bearer.n] = '\0';
    rc = DTM_EAUTH;
    if (jwt_decode(&jwt, tok, (const unsigned char *)pem, (int)strlen(pem)) || !jwt ||
        jwt_get_alg(jwt) != JWT_ALG_ES256)
        goto out;
    if (!str_claim(jwt, "iss", cl->iss, sizeof(cl->iss)) ||
        !str_claim(jwt, "sub", cl->sub, sizeof(cl->sub)) ||
        !str_claim(jwt, "system", cl->code, sizeof(cl->code)) ||
        !str_claim(jwt, "role", cl->role, sizeof(cl->role)) ||
        !str_claim(jwt, "jti", cl->tok.jti, sizeof(cl->tok.jti)) ||
        !int_claim(jwt, "exp", &cl->exp) || !int_claim(jwt, "iat", &cl->iat))
        goto out;
    if (!int_claim(jwt, "nbf", &cl->nbf))
        cl->nbf = cl->iat;
    if (!int_claim(jwt, "cgen", &cl->cgen))
        cl->cgen = 0;
    scope[0] = '\0';
    if (jwt_get_grant(jwt, "scope") &&
        snprintf(scope, sizeof(scope), "%s", jwt_get_grant(jwt, "scope")) >= (int)sizeof(scope))
        goto out;
    if (scope_parse(dtm_str_c(scope), &cl->tok, NULL, NULL, DTM_LANG_EN, why, sizeof(why)))
        goto out;
    snprintf(cl->tok.kid, sizeof(cl->tok.kid), "%s", kid);
    cl->tok.expires_at = cl->exp;
    rc = DTM_OK;
out:
    if (jwt)
        jwt_free(jwt);
    free(tok);
    return rc;
}

int dtm_token_verify(struct dtm_store *st, const struct dtm_conf *c, struct dtm_str bearer,
                     int64_t now_us, struct dtm_token *out, struct dtm_system *sys)
{
    struct claims *cl = malloc(sizeof(*cl));
    struct dtm_oauth_client client;
    int64_t now = now_us / 1000000, leeway;
    uint8_t h[32];
    int rc = DTM_EAUTH;
    memset(out, 0, sizeof(*out));
    if (!cl)
        return DTM_ENOMEM;
    memset(cl, 0, sizeof(*cl));
    if (bearer.n == 0 || bearer.n > DTM_JWT_MAX || !compact_shape(bearer))
        goto out;
    dtm_sha256(bearer.p, bearer.n, h);
    if (!vc_get(h, cl)) {
        if ((rc = decode(st, bearer, now_us, cl)))
            goto out;
        vc_put(h, cl);
    }
    rc = DTM_EAUTH;
    /* RFC 7519 §4.1.4-5, with a small leeway for clocks apart */
    leeway = DTM_MIN(DTM_MAX(c->oauth_leeway, 0), DTM_TOKEN_LEEWAY);
    if (strcmp(cl->iss, c->oauth_issuer) != 0 || cl->exp + leeway <= now ||
        cl->nbf - leeway > now || cl->iat - leeway > now || cl->exp - cl->iat > DTM_TOKEN_TTL_MAX)
        goto out;
    /* the client and its system as they are now: a revoked client, a rotated secret or a
     * changed role ends the tokens issued before */
    if ((rc = st->ops->client_get(st, cl->sub, &client)) == DTM_ENOTFOUND ||
        (rc == DTM_OK &&
         ((client.revoked_at && client.revoked_at <= now_us) || client.generation != cl->cgen ||
          strcmp(client.system_code, cl->code) != 0))) {
        rc = DTM_EAUTH;
        goto out;
    }
    if (rc)
        goto out;
    if ((rc = st->ops->system_get(st, cl->code, sys)) == DTM_ENOTFOUND ||
        (rc == DTM_OK && strcmp(sys->role, cl->role) != 0)) {
        rc = DTM_EAUTH;
        goto out;
    }
    if (rc)
        goto out;
    /* RFC 7009: a token revoked by its client or an administrator */
    if ((rc = st->ops->token_revoked(st, cl->tok.jti)) != DTM_ENOTFOUND) {
        rc = rc == DTM_OK ? DTM_EAUTH : rc;
        goto out;
    }
    if (cl->tok.ingest && !role_sends(sys->role)) {
        rc = DTM_EAUTH;
        goto out;
    }
    *out = cl->tok;
    out->valid = true;
    rc = DTM_OK;
out:
    free(cl);
    return rc;
}

/* ---- the JWK set */

struct jwks_ctx {
    struct dtm_buf *b;
    int n;
};

static int jwks_one(void *ctx, const struct dtm_signing_key *k)
{
    struct jwks_ctx *x = ctx;
    dtm_buf_addc(x->b, x->n++ ? "," : "");
    dtm_buf_addc(x->b, k->public_jwk);
    return x->b->err;
}

int dtm_jwks(struct dtm_store *st, int64_t now_us, struct dtm_buf *out)
{
    struct jwks_ctx x = {out, 0};
    int rc;
    dtm_buf_addc(out, "{\"keys\":[");
    rc = st->ops->signing_key_list(st, retired_after(now_us), jwks_one, &x);
    dtm_buf_addc(out, "]}");
    return rc ? rc : out->err;
}
