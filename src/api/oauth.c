/* api/oauth.c — the OAuth 2.0 endpoints (T2.4, CONTRACT §3): POST /oauth/token, the client
 * credentials grant of RFC 6749 §4.4 (form body only; the client authenticates with
 * client_id/client_secret in the body or with HTTP Basic, §2.3.1), answered as §5.1 or with the
 * errors of §5.2; POST /oauth/revoke, a client revoking one of its tokens (RFC 7009); and
 * GET /oauth/jwks.json, the public keys (RFC 7517) that verify the tokens.
 * Failed client authentications are charged to the caller's failed-authentication bucket (T2.2)
 * and every issuance and refusal is audited (S3) — never the secret, never the token. The
 * tokens, keys and scopes themselves are gate/jwt.c's. */
#include "api/api.h"
#include "audit/audit.h"
#include "ingest/ingest.h"

#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FORM_VALUE_MAX 2048

/* A form parameter of the token request. */
enum param { P_GRANT_TYPE, P_CLIENT_ID, P_CLIENT_SECRET, P_SCOPE, P_TOKEN, P_COUNT };
static const char *const param_names[P_COUNT] = {"grant_type", "client_id", "client_secret",
                                                 "scope", "token"};

struct form {
    bool seen[P_COUNT];
    char value[P_COUNT][FORM_VALUE_MAX];
    size_t len[P_COUNT];
};

/* The state of a token request that waits for the writer (its first signing key). */
struct token_req {
    struct dtm_write_job job;
    struct dtm_req *r;
    const struct dtm_keyring *keys;
    struct dtm_signing_key fresh; /* made before the transaction (its seal may need one) */
    struct dtm_system sys;
    struct dtm_token tok;
    char client_id[DTM_CODE_MAX];
};

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* application/x-www-form-urlencoded decoding of p[0..n) into out ('+' is a space). Returns the
 * length, -1 when malformed or too long. */
static long form_decode(const char *p, size_t n, char *out, size_t outsz)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int hi, lo;
            if (i + 2 >= n || (hi = hexval(p[i + 1])) < 0 || (lo = hexval(p[i + 2])) < 0)
                return -1;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (c == '\0' || o + 1 >= outsz)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return (long)o;
}

/* Parses the body. DTM_OK, or DTM_EMALFORMED / DTM_EEXIST (a parameter twice, §3.2) with the
 * parameter's name in *bad. Unknown parameters are ignored (§3.2). */
static int form_parse(struct dtm_str body, struct form *f, const char **bad)
{
    size_t i = 0;
    memset(f, 0, sizeof(*f));
    *bad = "";
    while (i < body.n) {
        size_t j = i, eq;
        char name[32];
        long nl;
        while (j < body.n && body.p[j] != '&')
            j++;
        eq = i;
        while (eq < j && body.p[eq] != '=')
            eq++;
        if (j > i) {
            nl = form_decode(body.p + i, eq - i, name, sizeof(name));
            for (int k = 0; nl > 0 && k < P_COUNT; k++) {
                long vl;
                if (strcmp(name, param_names[k]) != 0)
                    continue;
                *bad = param_names[k];
                if (f->seen[k])
                    return DTM_EEXIST;
                vl = form_decode(body.p + DTM_MIN(eq + 1, j), j - DTM_MIN(eq + 1, j), f->value[k],
                                 sizeof(f->value[k]));
                if (vl < 0)
                    return DTM_EMALFORMED;
                f->seen[k] = true;
                f->len[k] = (size_t)vl;
            }
        }
        i = j + 1;
    }
    *bad = "";
    return DTM_OK;
}

/* ---- answers */

/* RFC 6749 §5.2: {"error","error_description"} as application/json, with the members of an
 * RFC 9457 problem as well (CONTRACT §2), the description in the caller's language. */
__attribute__((format(printf, 4, 5))) static int
oauth_error(struct dtm_req *r, int status, const char *error, const char *fmt, ...)
{
    struct dtm_buf d, b;
    va_list ap;
    int rc;
    dtm_buf_init(&d, 4096);
    dtm_buf_init(&b, 8192);
    va_start(ap, fmt);
    dtm_buf_vprintf(&d, dtm_tr(r->lang, fmt), ap);
    va_end(ap);
    snprintf(r->problem, sizeof(r->problem), "oauth_%s", error);
    dtm_buf_printf(&b, "{\"error\":\"%s\",\"error_description\":", error);
    dtm_buf_json_str(&b, (struct dtm_str){d.p ? d.p : "", d.n});
    dtm_buf_printf(&b, ",\"type\":\"urn:dtm:problem:oauth_%s\",\"title\":", error);
    dtm_buf_json_strc(&b, dtm_tr(r->lang, status == 401   ? "Authentication required"
                                          : status == 415 ? "Unsupported media type"
                                                          : "Bad request"));
    dtm_buf_printf(&b, ",\"status\":%d,\"detail\":", status);
    dtm_buf_json_str(&b, (struct dtm_str){d.p ? d.p : "", d.n});
    dtm_buf_addc(&b, ",\"request_id\":");
    dtm_buf_json_strc(&b, r->request_id);
    dtm_buf_addch(&b, '}');
    dtm_http_add_header(r, "Pragma", "no-cache");
    if (status == 401) /* §5.2: the scheme the client may authenticate with */
        dtm_http_add_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Basic realm=\"dtm\"");
    rc = b.err ? dtm_http_error(r, b.err)
               : dtm_http_reply(r, status, "application/json; charset=utf-8", b.p, b.n);
    dtm_buf_free(&d);
    dtm_buf_free(&b);
    return rc;
}

/* A client id as an audit actor: what was sent, reduced to the characters of a system code. */
static void actor_of(const char *id, char *out, size_t outsz)
{
    static const char ok[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
    size_t o = 0;
    for (size_t i = 0; id[i] && o + 1 < outsz && i < DTM_CODE_MAX; i++)
        out[o++] = strchr(ok, id[i]) ? id[i] : '?'; /* id[i] is not NUL here */
    out[o] = '\0';
    if (o == 0)
        snprintf(out, outsz, "-");
}

/* S3: oauth.token_refused (reason, never the secret) or oauth.token_issued (jti, kid, scope,
 * expiry, never the token). */
static void audit_token(struct dtm_req *r, const char *action, const char *client_id,
                        const char *detail)
{
    const struct dtm_server_env *env = dtm_http_env(r);
    char ip[64], actor[DTM_CODE_MAX];
    if (!env->audit)
        return;
    dtm_http_client_ip(r, ip, sizeof(ip));
    actor_of(client_id, actor, sizeof(actor));
    dtm_audit_record(env->audit,
                     &(struct dtm_audit_event){"system", actor, action, actor, detail, ip});
}

static void audit_refused(struct dtm_req *r, const char *client_id, const char *reason)
{
    char d[128];
    snprintf(d, sizeof(d), "{\"reason\":\"%s\",\"grant_type\":\"client_credentials\"}", reason);
    audit_token(r, "oauth.token_refused", client_id, d);
}

/* Signs and answers (§5.1). */
static int issue(struct dtm_req *r, struct token_req *t)
{
    const struct dtm_server_env *env = dtm_http_env(r);
    struct dtm_store *st = dtm_http_store(r);
    struct dtm_buf b, scope, d;
    char *jwt = NULL, exp[40];
    int64_t now = dtm_now_us();
    int rc;
    if (!st)
        return DTM_ESTORE;
    rc = dtm_token_issue(st, env->conf, &t->sys, t->client_id, &t->tok, now, &jwt);
    if (rc)
        return rc;
    dtm_buf_init(&scope, 1024);
    dtm_buf_init(&b, 8192);
    dtm_buf_init(&d, DTM_AUDIT_DETAIL_MAX - 1);
    dtm_oauth_scope_string(&t->tok, &scope);
    dtm_buf_addc(&b, "{\"access_token\":");
    dtm_buf_json_strc(&b, jwt);
    dtm_buf_printf(&b, ",\"token_type\":\"Bearer\",\"expires_in\":%lld,\"scope\":",
                   (long long)(t->tok.expires_at - now / 1000000));
    dtm_buf_json_strc(&b, scope.p ? scope.p : "");
    dtm_buf_addch(&b, '}');
    dtm_time_fmt(t->tok.expires_at * 1000000, exp, sizeof(exp));
    dtm_buf_addc(&d, "{\"jti\":");
    dtm_buf_json_strc(&d, t->tok.jti);
    dtm_buf_addc(&d, ",\"kid\":");
    dtm_buf_json_strc(&d, t->tok.kid);
    dtm_buf_addc(&d, ",\"scope\":");
    dtm_buf_json_strc(&d, scope.p ? scope.p : "");
    dtm_buf_printf(&d, ",\"expires_at\":\"%s\"}", exp);
    if (!d.err)
        audit_token(r, "oauth.token_issued", t->client_id, d.p);
    /* the token is a secret: it leaves only in the answer (Cache-Control: no-store) */
    OPENSSL_cleanse(jwt, strlen(jwt));
    free(jwt);
    dtm_http_add_header(r, "Pragma", "no-cache");
    rc = dtm_http_json(r, 200, &b);
    dtm_buf_free(&scope);
    dtm_buf_free(&d);
    dtm_buf_free(&b);
    return rc;
}

/* ---- the first signing key, made by the writer (the only thread that writes) */

static int key_txn(struct dtm_write_job *j, struct dtm_store *st)
{
    struct token_req *t = (struct token_req *)(void *)j;
    char kid[DTM_ID_MAX];
    /* another request may have made it meanwhile: ensure looks inside the transaction */
    int rc = dtm_signing_key_ensure(st, &t->fresh, kid);
    if (rc || !kid[0])
        return rc;
    dtm_logf(DTM_LOG_INFO, "OAuth signing key created", "\"kid\":\"%s\"", kid);
    /* S3: a key change, committed with the key */
    return dtm_audit_append(st, t->keys->audit_key,
                            &(struct dtm_audit_event){"server", "dtm serve", "signing_key.created",
                                                      kid, "{\"alg\":\"ES256\"}", NULL},
                            NULL);
}

static void key_done(struct dtm_write_job *j)
{
    dtm_http_resume(((struct token_req *)(void *)j)->r);
}

static int key_resumed(struct dtm_req *r)
{
    struct token_req *t = r->async;
    int rc = t->job.rc ? t->job.rc : issue(r, t);
    if (rc)
        return dtm_http_error(r, rc);
    return DTM_OK;
}

/* ---- POST /oauth/token */

/* HTTP Basic client authentication (§2.3.1: id and secret form-encoded, then base64). true when
 * the header is Basic (ok tells whether it could be read). */
static bool basic_auth(struct dtm_req *r, struct form *f, bool *ok)
{
    struct dtm_str a = dtm_str_trim(dtm_http_header(r, MHD_HTTP_HEADER_AUTHORIZATION));
    unsigned char raw[2 * FORM_VALUE_MAX];
    const char *colon;
    int n;
    long il, sl;
    *ok = false;
    if (a.n < 6 || !dtm_str_ieqc((struct dtm_str){a.p, 6}, "Basic "))
        return false;
    a = dtm_str_trim((struct dtm_str){a.p + 6, a.n - 6});
    if (a.n == 0 || a.n > 4 * sizeof(raw) / 3 - 4 || a.n % 4)
        return true;
    n = EVP_DecodeBlock(raw, (const unsigned char *)a.p, (int)a.n);
    if (n < 0)
        return true;
    while (a.n && a.p[a.n - 1] == '=' && n > 0) { /* EVP_DecodeBlock counts the padding */
        a.n--;
        n--;
    }
    if (!(colon = memchr(raw, ':', (size_t)n)))
        return true;
    il = form_decode((const char *)raw, (size_t)(colon - (const char *)raw), f->value[P_CLIENT_ID],
                     sizeof(f->value[P_CLIENT_ID]));
    sl = form_decode(colon + 1, (size_t)n - (size_t)(colon + 1 - (const char *)raw),
                     f->value[P_CLIENT_SECRET], sizeof(f->value[P_CLIENT_SECRET]));
    if (il <= 0 || sl < 0)
        return true;
    f->len[P_CLIENT_ID] = (size_t)il;
    f->len[P_CLIENT_SECRET] = (size_t)sl;
    f->seen[P_CLIENT_ID] = f->seen[P_CLIENT_SECRET] = true;
    *ok = true;
    return true;
}

/* The form of a request to /oauth/token or /oauth/revoke, checked, and its client
 * authenticated (RFC 6749 §2.3.1: HTTP Basic or client_id and client_secret in the body).
 * DTM_OK with the client's system in sys; else the answer is given (rc DTM_EAUTH) or an error is
 * returned. */
static int client_form(struct dtm_req *r, struct form *f, bool token, struct dtm_system *sys)
{
    struct dtm_str ct = dtm_http_header(r, MHD_HTTP_HEADER_CONTENT_TYPE), mt;
    struct dtm_store *st;
    const char *bad, *reason;
    bool basic, basic_ok;
    int rc;
    mt = ct;
    if (memchr(ct.p ? ct.p : "", ';', ct.n))
        mt.n = (size_t)((const char *)memchr(ct.p, ';', ct.n) - ct.p);
    if (!dtm_str_ieqc(dtm_str_trim(mt), "application/x-www-form-urlencoded")) {
        oauth_error(r, 415, "invalid_request",
                    "The request must be sent as application/x-www-form-urlencoded (RFC 6749 "
                    "§4.4.2, RFC 7009 §2.1).");
        return DTM_EAUTH;
    }
    if (dtm_http_query(r, "client_secret")) {
        oauth_error(r, 400, "invalid_request", "The client_secret must not be sent in the URL.");
        return DTM_EAUTH;
    }
    rc = form_parse((struct dtm_str){r->body.p ? r->body.p : "", r->body.n}, f, &bad);
    if (rc == DTM_EEXIST) {
        oauth_error(r, 400, "invalid_request", "The parameter %s is given more than once.", bad);
        return DTM_EAUTH;
    }
    if (rc) {
        oauth_error(r, 400, "invalid_request", "The parameter %s is not correctly form-encoded.",
                    bad);
        return DTM_EAUTH;
    }
    if (token && (!f->seen[P_GRANT_TYPE] || f->len[P_GRANT_TYPE] == 0)) {
        oauth_error(r, 400, "invalid_request", "The parameter grant_type is required.");
        return DTM_EAUTH;
    }
    if (token && strcmp(f->value[P_GRANT_TYPE], "client_credentials") != 0) {
        oauth_error(r, 400, "unsupported_grant_type",
                    "Only grant_type=client_credentials is supported.");
        return DTM_EAUTH;
    }
    if (!token && (!f->seen[P_TOKEN] || f->len[P_TOKEN] == 0)) {
        oauth_error(r, 400, "invalid_request", "The parameter token is required.");
        return DTM_EAUTH;
    }
    {
        struct form fb;
        memset(&fb, 0, sizeof(fb));
        basic = basic_auth(r, &fb, &basic_ok);
        if (basic && (f->seen[P_CLIENT_SECRET] ||
                      (basic_ok && f->seen[P_CLIENT_ID] &&
                       strcmp(f->value[P_CLIENT_ID], fb.value[P_CLIENT_ID]) != 0))) {
            OPENSSL_cleanse(&fb, sizeof(fb));
            oauth_error(r, 400, "invalid_request",
                        "The client authenticates with one method only: HTTP Basic or "
                        "client_id and client_secret in the body.");
            return DTM_EAUTH;
        }
        if (basic && basic_ok) {
            memcpy(f->value[P_CLIENT_ID], fb.value[P_CLIENT_ID], sizeof(fb.value[0]));
            memcpy(f->value[P_CLIENT_SECRET], fb.value[P_CLIENT_SECRET], sizeof(fb.value[0]));
            f->len[P_CLIENT_ID] = fb.len[P_CLIENT_ID];
            f->len[P_CLIENT_SECRET] = fb.len[P_CLIENT_SECRET];
            f->seen[P_CLIENT_ID] = f->seen[P_CLIENT_SECRET] = true;
        }
        OPENSSL_cleanse(&fb, sizeof(fb));
    }
    /* T2.2: an address over its limit of failures gets no answer about any secret */
    if (dtm_http_auth_limited(r, false))
        return DTM_EAUTH;
    if (!(st = dtm_http_store(r)))
        return DTM_ESTORE;
    if (!f->seen[P_CLIENT_ID] || !f->seen[P_CLIENT_SECRET] || (basic && !basic_ok)) {
        rc = DTM_EAUTH;
        reason = basic ? "malformed_basic_auth" : "no_client_authentication";
    } else {
        rc = dtm_oauth_client_auth(
            st, (struct dtm_str){f->value[P_CLIENT_ID], f->len[P_CLIENT_ID]},
            (struct dtm_str){f->value[P_CLIENT_SECRET], f->len[P_CLIENT_SECRET]}, dtm_now_us(), sys,
            &reason);
    }
    OPENSSL_cleanse(f->value[P_CLIENT_SECRET], sizeof(f->value[P_CLIENT_SECRET]));
    if (rc == DTM_EAUTH) {
        audit_refused(r, f->value[P_CLIENT_ID], reason);
        if (!dtm_http_auth_limited(r, true))
            oauth_error(r, 401, "invalid_client",
                        "Client authentication failed (unknown client, wrong secret or revoked "
                        "client).");
    }
    return rc;
}

int dtm_api_oauth_token(struct dtm_req *r)
{
    const struct dtm_server_env *env = dtm_http_env(r);
    struct dtm_store *st;
    struct form *f;
    struct token_req *t;
    char why[256];
    int rc;
    f = dtm_arena_alloc(&r->arena, sizeof(*f));
    t = dtm_arena_alloc(&r->arena, sizeof(*t));
    if (!f || !t)
        return DTM_ENOMEM;
    memset(t, 0, sizeof(*t));
    if ((rc = client_form(r, f, true, &t->sys)))
        return rc == DTM_EAUTH ? DTM_OK : rc;
    if (!(st = dtm_http_store(r)))
        return DTM_ESTORE;
    /* authenticated: the id is a stored client id, shorter than DTM_CODE_MAX */
    memcpy(t->client_id, f->value[P_CLIENT_ID], DTM_MIN(f->len[P_CLIENT_ID], DTM_CODE_MAX - 1));
    rc =
        dtm_oauth_scope(st, env->dict, &t->sys,
                        (struct dtm_str){f->value[P_SCOPE], f->seen[P_SCOPE] ? f->len[P_SCOPE] : 0},
                        r->lang, &t->tok, why, sizeof(why));
    if (rc == DTM_EINVAL) {
        audit_refused(r, t->client_id, "invalid_scope");
        return oauth_error(r, 400, "invalid_scope", "%s", why);
    }
    if (rc)
        return rc;
    rc = issue(r, t);
    if (rc != DTM_ENOTFOUND)
        return rc;
    /* no signing key yet: the writer installs the first one, then the token is signed */
    if ((rc = dtm_signing_key_new(dtm_datakeys_get(env->conf), dtm_now_us(), &t->fresh)))
        return rc;
    t->keys = env->keys;
    t->job.dataset = "";
    t->job.system_code = "";
    t->job.in_txn = key_txn;
    t->job.done = key_done;
    t->r = r;
    r->async = t;
    dtm_http_suspend(r, key_resumed);
    if ((rc = dtm_writer_submit(env->writer, &t->job))) {
        t->job.rc = rc;
        dtm_http_resume(r);
    }
    return DTM_HTTP_ASYNC;
}

/* ---- GET /oauth/jwks.json */

int dtm_api_oauth_jwks(struct dtm_req *r)
{
    struct dtm_store *st = dtm_http_store(r);
    struct dtm_buf b;
    int rc;
    if (!st)
        return DTM_ESTORE;
    dtm_buf_init(&b, 1 << 20);
    rc = dtm_jwks(st, dtm_now_us(), &b);
    if (rc == DTM_OK) {
        /* public and cacheable; short, so that a rotated key is seen soon */
        dtm_http_add_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "public, max-age=300");
        rc = dtm_http_reply(r, 200, "application/json", b.p, b.n);
    }
    dtm_buf_free(&b);
    return rc;
}

/* ---- POST /oauth/revoke (RFC 7009): a client revokes one of its access tokens */

struct revoke_txn {
    char jti[DTM_ID_MAX];
    int64_t expires_at, now; /* µs */
    const uint8_t *audit_key;
    char actor[DTM_CODE_MAX], ip[64];
};

static int revoke_txn(void *ctx, struct dtm_store *st)
{
    struct revoke_txn *t = ctx;
    char d[DTM_ID_MAX + 16];
    int rc = st->ops->token_revoke(st, t->jti, t->expires_at, t->now);
    if (rc)
        return rc;
    snprintf(d, sizeof(d), "{\"jti\":\"%s\"}", t->jti); /* a jti is [A-Za-z0-9_] */
    return dtm_audit_append(
        st, t->audit_key,
        &(struct dtm_audit_event){"system", t->actor, "oauth.token_revoked", t->actor, d, t->ip},
        NULL);
}

int dtm_api_oauth_revoke(struct dtm_req *r)
{
    const struct dtm_server_env *env = dtm_http_env(r);
    struct form *f = dtm_arena_alloc(&r->arena, sizeof(*f));
    struct dtm_system sys, tsys;
    struct dtm_token tok;
    struct dtm_store *st;
    int rc;
    if (!f)
        return DTM_ENOMEM;
    if ((rc = client_form(r, f, false, &sys)))
        return rc == DTM_EAUTH ? DTM_OK : rc;
    if (!(st = dtm_http_store(r)))
        return DTM_ESTORE;
    rc = dtm_token_verify(st, env->conf, (struct dtm_str){f->value[P_TOKEN], f->len[P_TOKEN]},
                          dtm_now_us(), &tok, &tsys);
    if (rc == DTM_OK && strcmp(tsys.code, sys.code) == 0) {
        struct revoke_txn t = {0};
        snprintf(t.jti, sizeof(t.jti), "%s", tok.jti);
        t.now = dtm_now_us();
        t.expires_at = (tok.expires_at + DTM_TOKEN_LEEWAY) * 1000000;
        t.audit_key = env->keys->audit_key;
        snprintf(t.actor, sizeof(t.actor), "%s", sys.code);
        dtm_http_client_ip(r, t.ip, sizeof(t.ip));
        if ((rc = dtm_gate_write(env->writer, revoke_txn, &t)))
            return dtm_http_error(r, rc == DTM_EBUSY ? DTM_EBUSY : DTM_ESTORE);
    } else if (rc == DTM_OK) {
        /* §2.1: a client revokes only its own tokens; the answer does not say whose it is */
        audit_refused(r, sys.code, "revoke_other_clients_token");
    } else if (rc != DTM_EAUTH) {
        return rc;
    }
    OPENSSL_cleanse(f->value[P_TOKEN], sizeof(f->value[P_TOKEN]));
    /* §2.2: 200 whether it was revoked or was no valid token of this client */
    dtm_http_add_header(r, "Pragma", "no-cache");
    return dtm_http_reply(r, 200, "application/json; charset=utf-8", "{}", 2);
}
