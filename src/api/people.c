/* api/people.c — people's sessions, accounts and MFA (CONTRACT §3, T4.3):
 *   POST/GET/DELETE /api/v1/session          sign in (cookie + CSRF token), who am I, sign out
 *   POST /api/v1/session/password            change one's own password
 *   POST /api/v1/session/mfa                 start TOTP enrolment (secret, otpauth URI, QR SVG)
 *   GET  /api/v1/session/mfa/qr.png          the enrolment's QR code as PNG
 *   POST /api/v1/session/mfa/confirm         activate with a code; 10 one-time recovery codes
 *   GET/POST /api/v1/users, PATCH/DELETE /api/v1/users/{username}   accounts (admins)
 * The router authenticates the session and checks role, MFA for admins and the CSRF token
 * (http/server.c); changes go through the writer (gate/session.c); every event is audited. */
#include "api/api.h"
#include "alert/warn.h"
#include "audit/audit.h"

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An Argon2id hash of a random password nobody knows: an unknown user name costs the same
 * verification time as a known one. Made once. */
static char dummy_hash[160];
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

static void dummy_make(void)
{
    char pw[40];
    if (dtm_password_random(pw, sizeof(pw), 32) == DTM_OK)
        dtm_password_hash(pw, dummy_hash, sizeof(dummy_hash));
    OPENSSL_cleanse(pw, sizeof(pw));
}

/* ---- helpers */

static void audit(struct dtm_req *r, const char *actor, const char *action, const char *target,
                  const char *detail)
{
    char ip[64];
    dtm_http_client_ip(r, ip, sizeof(ip));
    dtm_audit_record(dtm_http_env(r)->audit,
                     &(struct dtm_audit_event){"user", actor && *actor ? actor : "-", action,
                                               target, detail, ip});
}

static void user_json(struct dtm_buf *b, const struct dtm_user *u)
{
    char ts[40];
    dtm_time_fmt(u->created_at, ts, sizeof(ts));
    dtm_buf_addc(b, "{\"username\":");
    dtm_buf_json_strc(b, u->username);
    dtm_buf_addc(b, ",\"role\":");
    dtm_buf_json_strc(b, u->role);
    dtm_buf_printf(b, ",\"disabled\":%s,\"mfa_enrolled\":%s,\"created_at\":\"%s\"}",
                   u->disabled ? "true" : "false", u->mfa_enabled ? "true" : "false", ts);
}

/* The person's own view: who, role, MFA state and the session's CSRF token. */
static void me_json(struct dtm_buf *b, const struct dtm_user *u, const struct dtm_session *se,
                    const struct dtm_conf *c)
{
    char t1[40], t2[40];
    dtm_time_fmt(se->created_at, t1, sizeof(t1));
    dtm_time_fmt(se->expires_at, t2, sizeof(t2));
    dtm_buf_addc(b, "{\"username\":");
    dtm_buf_json_strc(b, u->username);
    dtm_buf_addc(b, ",\"role\":");
    dtm_buf_json_strc(b, u->role);
    dtm_buf_printf(b,
                   ",\"mfa_enrolled\":%s,\"mfa_required\":%s,\"csrf_token\":\"%s\","
                   "\"signed_in_at\":\"%s\",\"expires_at\":\"%s\",\"idle_timeout\":%lld}",
                   u->mfa_enabled ? "true" : "false",
                   strcmp(u->role, "admin") == 0 && !u->mfa_enabled ? "true" : "false", se->csrf,
                   t1, t2, (long long)c->session_idle_timeout);
}

static int store_failed(struct dtm_req *r, int rc)
{
    return dtm_http_error(r, rc == DTM_EBUSY ? DTM_EBUSY : DTM_ESTORE);
}

/* ---- sign in */

struct login_txn {
    const struct dtm_user *u;
    int64_t idle_before; /* sessions idle since before this are removed (housekeeping) */
    int64_t step;        /* a TOTP step to claim; -1 = none */
    bool recovery;       /* a recovery code to use */
    uint8_t rhash[32];   /* its hash */
    struct dtm_session se;
    int outcome; /* DTM_OK, DTM_ECONFLICT (TOTP step used), DTM_ENOTFOUND (recovery code) */
};

static int login_txn(void *ctx, struct dtm_store *st)
{
    struct login_txn *t = ctx;
    int rc;
    t->outcome = DTM_OK;
    if (t->step >= 0) {
        rc = st->ops->user_mfa_step(st, t->u->username, t->step);
        if (rc == DTM_ECONFLICT) {
            t->outcome = rc;
            return DTM_OK;
        }
        if (rc)
            return rc;
    }
    if (t->recovery) {
        rc = st->ops->recovery_use(st, t->u->username, t->rhash, dtm_now_us());
        if (rc == DTM_ENOTFOUND) {
            t->outcome = rc;
            return DTM_OK;
        }
        if (rc)
            return rc;
    }
    /* every sign-in also clears the sessions that ended meanwhile */
    if ((rc = st->ops->session_purge(st, t->se.created_at, t->idle_before)))
        return rc;
    return st->ops->session_put(st, &t->se);
}

/* A failed attempt: counted, audited (locking the name after too many) and answered 401 with
 * one message whatever went wrong, or with a code's own message (mfa: the password was right). */
static int login_failed(struct dtm_req *r, const char *username, const char *role,
                        const char *reason, bool mfa)
{
    const struct dtm_conf *c = dtm_http_env(r)->conf;
    bool known = role != NULL;
    char ip[64], d[160];
    dtm_http_client_ip(r, ip, sizeof(ip));
    /* T4.1: brute force on the account or from the address */
    dtm_warn_login(dtm_http_env(r)->warn, username, known, role, ip, false);
    snprintf(d, sizeof(d), "{\"reason\":\"%s\"}", reason);
    /* an unknown name is not written down: it may be a password typed in the wrong field */
    audit(r, known ? username : "-", "login.failed", known ? username : "", d);
    if (dtm_login_failed(c, username, ip, dtm_now_us())) {
        snprintf(d, sizeof(d), "{\"failures\":%lld,\"minutes\":%lld}",
                 (long long)c->session_lockout_after, (long long)c->session_lockout_minutes);
        audit(r, known ? username : "-", "login.locked", known ? username : "", d);
    }
    dtm_http_add_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Cookie realm=\"dtm\"");
    if (mfa)
        return dtm_http_problem(r, 401, "mfa_failed", "Authentication failed",
                                "The code is not valid or was already used.");
    return dtm_http_problem(r, 401, "login_failed", "Authentication failed",
                            "The user name or password is wrong.");
}

static int login_refused(struct dtm_req *r, enum dtm_login_gate g, int64_t retry_s)
{
    char *v = dtm_arena_alloc(&r->arena, 24);
    if (v) {
        snprintf(v, 24, "%lld", (long long)retry_s);
        dtm_http_add_header(r, MHD_HTTP_HEADER_RETRY_AFTER, v);
    }
    if (g == DTM_LOGIN_TOO_SOON)
        return dtm_http_problem(r, 429, "login_delayed", "Too many requests",
                                "Too soon after a failed sign-in; retry after %lld seconds.",
                                (long long)retry_s);
    return dtm_http_problem(r, 429, "login_locked", "Too many requests",
                            "Too many failed sign-ins; this is locked for %lld seconds.",
                            (long long)retry_s);
}

int dtm_api_session_post(struct dtm_req *r)
{
    const struct dtm_server_env *env = dtm_http_env(r);
    const struct dtm_conf *c = env->conf;
    struct dtm_store *st;
    struct dtm_user u;
    struct login_txn t;
    char sid[DTM_SESSION_ID_MAX], ip[64], uname[DTM_USERNAME_MAX], *cookie;
    const char *username, *password, *totp, *recovery;
    bool bad = false, known, ok;
    int64_t now = dtm_now_us(), retry;
    enum dtm_login_gate g;
    struct dtm_buf b;
    cJSON *j = dtm_api_body_json(r);
    int rc;
    if (!j)
        return DTM_OK;
    username = dtm_api_member(r, j, "username", DTM_USERNAME_MAX - 1, &bad);
    password = dtm_api_member(r, j, "password", DTM_PASSWORD_MAX, &bad);
    totp = dtm_api_member(r, j, "totp", 64, &bad);
    recovery = dtm_api_member(r, j, "recovery_code", 64, &bad);
    if (!bad && (!username || !*username || !password || !*password)) {
        dtm_http_problem(r, 400, "missing_parameter", "Missing parameter",
                         "Members 'username' and 'password' are required.");
        bad = true;
    }
    if (bad) {
        cJSON_Delete(j);
        return DTM_OK;
    }
    snprintf(uname, sizeof(uname), "%s", username);
    dtm_http_client_ip(r, ip, sizeof(ip));
    if ((g = dtm_login_check(c, uname, ip, now, &retry)) != DTM_LOGIN_OK) {
        /* T4.1: an attempt refused while delayed or locked is still an attempt, and the
         * brute-force rules count it. It is not audited one by one (login.locked says it, and
         * an attacker must not be able to fill the trail). */
        struct dtm_store *s2 = dtm_http_store(r);
        known = s2 && s2->ops->user_get(s2, uname, &u) == DTM_OK;
        dtm_warn_login(env->warn, uname, known, known ? u.role : NULL, ip, false);
        cJSON_Delete(j);
        return login_refused(r, g, retry);
    }
    if (!(st = dtm_http_store(r))) {
        cJSON_Delete(j);
        return DTM_ESTORE;
    }
    rc = st->ops->user_get(st, uname, &u);
    if (rc && rc != DTM_ENOTFOUND) {
        cJSON_Delete(j);
        return rc;
    }
    known = rc == DTM_OK;
    pthread_once(&dummy_once, dummy_make);
    ok = dtm_password_verify(known ? u.password_hash : dummy_hash, password) && known;
    if (!ok || u.disabled) {
        cJSON_Delete(j);
        return login_failed(r, uname, known ? u.role : NULL,
                            !known ? "unknown_user"
                            : !ok  ? "wrong_password"
                                   : "disabled",
                            false);
    }
    memset(&t, 0, sizeof(t));
    t.u = &u;
    t.step = -1;
    if (u.mfa_enabled) {
        uint8_t seed[64];
        size_t n = 0;
        const char *code = totp && *totp ? totp : recovery;
        if (!code || !*code) {
            cJSON_Delete(j);
            return dtm_http_problem(r, 401, "totp_required", "Authentication required",
                                    "This account needs a code from its authenticator app "
                                    "(member 'totp') or one of its recovery codes.");
        }
        rc = dtm_totp_open(dtm_datakeys_get(env->conf), u.username, u.mfa_secret, u.mfa_secret_len,
                           seed, sizeof(seed), &n);
        if (rc) {
            cJSON_Delete(j);
            dtm_logf(DTM_LOG_ERROR, "a TOTP seed cannot be opened", "\"user\":\"%s\"", u.username);
            return DTM_EINTERNAL;
        }
        rc = dtm_totp_check(seed, n, dtm_str_c(code), now / 1000000, &t.step);
        OPENSSL_cleanse(seed, sizeof(seed));
        if (rc == DTM_EAUTH) {
            t.step = -1;
            t.recovery = dtm_recovery_hash(dtm_str_c(code), t.rhash);
            if (!t.recovery) {
                cJSON_Delete(j);
                return login_failed(r, uname, u.role, "wrong_totp", true);
            }
        } else if (rc) {
            cJSON_Delete(j);
            return rc;
        }
    }
    cJSON_Delete(j);
    if ((rc = dtm_session_new(sid, t.se.id_hash, t.se.csrf)))
        return rc;
    snprintf(t.se.username, sizeof(t.se.username), "%s", u.username);
    t.se.created_at = t.se.last_seen = now;
    t.se.expires_at = now + c->session_absolute_timeout * 1000000;
    snprintf(t.se.source_ip, sizeof(t.se.source_ip), "%s", ip);
    t.idle_before = now - c->session_idle_timeout * 1000000;
    if ((rc = dtm_gate_write(env->writer, login_txn, &t)))
        return store_failed(r, rc);
    if (t.outcome == DTM_ECONFLICT)
        return login_failed(r, uname, u.role, "totp_reused", true);
    if (t.outcome == DTM_ENOTFOUND)
        return login_failed(r, uname, u.role, "wrong_recovery_code", true);
    dtm_login_succeeded(uname);
    dtm_warn_login(env->warn, u.username, true, u.role, ip, true); /* T4.1: a new address? */
    audit(r, u.username, "login.succeeded", u.username,
          t.recovery      ? "{\"mfa\":\"recovery_code\"}"
          : u.mfa_enabled ? "{\"mfa\":\"totp\"}"
                          : "{\"mfa\":\"none\"}");
    /* Secure always: browsers accept Secure cookies from http://127.0.0.1 and localhost too */
    if ((cookie = dtm_arena_alloc(&r->arena, 128)))
        snprintf(cookie, 128, "%s=%s; Path=/; HttpOnly; Secure; SameSite=Strict",
                 DTM_SESSION_COOKIE, sid);
    OPENSSL_cleanse(sid, sizeof(sid));
    if (!cookie)
        return DTM_ENOMEM;
    dtm_http_add_header(r, MHD_HTTP_HEADER_SET_COOKIE, cookie);
    dtm_buf_init(&b, 8192);
    me_json(&b, &u, &t.se, c);
    rc = dtm_http_json(r, 201, &b);
    dtm_buf_free(&b);
    return rc;
}

int dtm_api_session_get(struct dtm_req *r)
{
    struct dtm_buf b;
    int rc;
    dtm_buf_init(&b, 8192);
    me_json(&b, &r->user, &r->session, dtm_http_env(r)->conf);
    rc = dtm_http_json(r, 200, &b);
    dtm_buf_free(&b);
    return rc;
}

struct del_txn {
    uint8_t id_hash[32];
};

static int del_txn(void *ctx, struct dtm_store *st)
{
    return st->ops->session_delete(st, ((struct del_txn *)ctx)->id_hash);
}

int dtm_api_session_delete(struct dtm_req *r)
{
    struct del_txn t;
    int rc;
    memcpy(t.id_hash, r->session.id_hash, 32);
    if ((rc = dtm_gate_write(dtm_http_env(r)->writer, del_txn, &t)))
        return store_failed(r, rc);
    audit(r, r->user.username, "logout", r->user.username, NULL);
    dtm_http_add_header(r, MHD_HTTP_HEADER_SET_COOKIE,
                        DTM_SESSION_COOKIE "=; Path=/; HttpOnly; Secure; SameSite=Strict; "
                                           "Max-Age=0");
    return dtm_http_reply(r, 204, "application/json", "", 0);
}

/* ---- one's own password */

struct user_txn {
    struct dtm_user u;
    const uint8_t *keep_session; /* sessions of the user ended but this one; NULL = none ended */
    bool end_sessions;
    bool recovery_clear;
    const uint8_t (*codes)[32]; /* recovery codes to set (n) */
    size_t ncodes;
    int64_t step; /* a TOTP step to claim first (-1 = none) */
    int outcome;
};

static int user_txn(void *ctx, struct dtm_store *st)
{
    struct user_txn *t = ctx;
    int rc;
    t->outcome = DTM_OK;
    if (t->step >= 0) {
        rc = st->ops->user_mfa_step(st, t->u.username, t->step);
        if (rc == DTM_ECONFLICT) {
            t->outcome = rc;
            return DTM_OK;
        }
        if (rc)
            return rc;
    }
    rc = st->ops->user_update(st, &t->u);
    if (rc == DTM_ENOTFOUND) {
        t->outcome = rc;
        return DTM_OK;
    }
    if (rc)
        return rc;
    if (t->end_sessions && (rc = st->ops->session_delete_user(st, t->u.username, t->keep_session)))
        return rc;
    if ((t->ncodes || t->recovery_clear) &&
        (rc = st->ops->recovery_set(st, t->u.username, t->codes, t->ncodes)))
        return rc;
    return DTM_OK;
}

int dtm_api_session_password(struct dtm_req *r)
{
    struct user_txn t;
    const char *cur, *next, *why;
    bool bad = false;
    cJSON *j = dtm_api_body_json(r);
    int rc;
    if (!j)
        return DTM_OK;
    cur = dtm_api_member(r, j, "current_password", DTM_PASSWORD_MAX, &bad);
    next = dtm_api_member(r, j, "new_password", DTM_PASSWORD_MAX + 1, &bad);
    if (bad) {
        cJSON_Delete(j);
        return DTM_OK;
    }
    if (!cur || !next) {
        cJSON_Delete(j);
        return dtm_http_problem(r, 400, "missing_parameter", "Missing parameter",
                                "Members 'current_password' and 'new_password' are required.");
    }
    if (!dtm_password_verify(r->user.password_hash, cur)) {
        cJSON_Delete(j);
        audit(r, r->user.username, "user.password_change_failed", r->user.username,
              "{\"reason\":\"wrong_password\"}");
        return dtm_http_problem(r, 403, "wrong_password", "Forbidden",
                                "The current password is wrong.");
    }
    if ((why = dtm_password_policy(r->user.username, next))) {
        cJSON_Delete(j);
        return dtm_http_problem(r, 400, "password_policy", "Password refused",
                                "Member 'new_password': %s", dtm_tr(r->lang, why));
    }
    memset(&t, 0, sizeof(t));
    t.u = r->user;
    t.step = -1;
    rc = dtm_password_hash(next, t.u.password_hash, sizeof(t.u.password_hash));
    cJSON_Delete(j);
    if (rc)
        return rc;
    t.u.password_changed_at = dtm_now_us();
    t.end_sessions = true; /* every other session of the person ends */
    t.keep_session = r->session.id_hash;
    if ((rc = dtm_gate_write(dtm_http_env(r)->writer, user_txn, &t)))
        return store_failed(r, rc);
    audit(r, r->user.username, "user.password_changed", r->user.username, NULL);
    return dtm_http_reply(r, 204, "application/json", "", 0);
}

/* ---- MFA enrolment */

/* The pending seed of the signed-in person (base32); answers and returns an error when none. */
static int pending_seed(struct dtm_req *r, char *b32, size_t b32sz)
{
    uint8_t seed[64];
    size_t n = 0;
    int rc;
    if (r->user.mfa_enabled) {
        dtm_http_problem(r, 409, "mfa_enrolled", "Conflict",
                         "Multi-factor authentication is already active for this account; an "
                         "administrator can reset it with `dtm user reset-mfa`.");
        return DTM_ECONFLICT;
    }
    if (!r->user.mfa_secret_len) {
        dtm_http_problem(r, 409, "mfa_not_started", "Conflict",
                         "Start the enrolment first: POST /api/v1/session/mfa.");
        return DTM_ECONFLICT;
    }
    rc = dtm_totp_open(dtm_datakeys_get(dtm_http_env(r)->conf), r->user.username,
                       r->user.mfa_secret, r->user.mfa_secret_len, seed, sizeof(seed), &n);
    if (rc == DTM_OK)
        rc = dtm_totp_base32(seed, n, b32, b32sz);
    OPENSSL_cleanse(seed, sizeof(seed));
    return rc;
}

int dtm_api_mfa_begin(struct dtm_req *r)
{
    const struct dtm_server_env *env = dtm_http_env(r);
    uint8_t seed[DTM_TOTP_SECRET_BYTES];
    char b32[64];
    struct user_txn t;
    struct dtm_buf uri, b;
    int rc;
    if (r->user.mfa_enabled)
        return dtm_http_problem(r, 409, "mfa_enrolled", "Conflict",
                                "Multi-factor authentication is already active for this "
                                "account; an administrator can reset it with `dtm user "
                                "reset-mfa`.");
    memset(&t, 0, sizeof(t));
    t.u = r->user;
    t.step = -1;
    if ((rc = dtm_totp_secret_new(seed)) ||
        (rc = dtm_totp_seal(dtm_datakeys_get(env->conf), t.u.username, seed, sizeof(seed),
                            t.u.mfa_secret, sizeof(t.u.mfa_secret), &t.u.mfa_secret_len)) ||
        (rc = dtm_totp_base32(seed, sizeof(seed), b32, sizeof(b32)))) {
        OPENSSL_cleanse(seed, sizeof(seed));
        return rc;
    }
    OPENSSL_cleanse(seed, sizeof(seed));
    if ((rc = dtm_gate_write(env->writer, user_txn, &t))) {
        OPENSSL_cleanse(b32, sizeof(b32));
        return store_failed(r, rc);
    }
    audit(r, r->user.username, "mfa.enrolment_started", r->user.username, NULL);
    dtm_buf_init(&uri, 4096);
    dtm_totp_uri(r->user.username, b32, &uri);
    dtm_buf_init(&b, 1 << 20);
    dtm_buf_addc(&b, "{\"secret\":");
    dtm_buf_json_strc(&b, b32);
    dtm_buf_addc(&b, ",\"otpauth_uri\":");
    dtm_buf_json_str(&b, (struct dtm_str){uri.p ? uri.p : "", uri.n});
    dtm_buf_addc(&b, ",\"qr_png\":\"/api/v1/session/mfa/qr.png\",\"qr_svg\":");
    {
        struct dtm_buf svg;
        dtm_buf_init(&svg, 1 << 20);
        rc = dtm_qr_svg(uri.err ? "" : uri.p, &svg);
        dtm_buf_json_str(&b, (struct dtm_str){svg.p ? svg.p : "", svg.n});
        dtm_buf_free(&svg);
    }
    dtm_buf_printf(&b, ",\"algorithm\":\"SHA1\",\"digits\":6,\"period\":30}");
    OPENSSL_cleanse(b32, sizeof(b32));
    rc = rc ? rc : dtm_http_json(r, 201, &b);
    if (uri.p)
        OPENSSL_cleanse(uri.p, uri.n);
    if (b.p)
        OPENSSL_cleanse(b.p, b.n);
    dtm_buf_free(&uri);
    dtm_buf_free(&b);
    return rc;
}

int dtm_api_mfa_qr(struct dtm_req *r)
{
    char b32[64];
    struct dtm_buf uri, png;
    int rc = pending_seed(r, b32, sizeof(b32));
    if (rc)
        return r->responded ? DTM_OK : rc;
    dtm_buf_init(&uri, 4096);
    dtm_buf_init(&png, 4 << 20);
    dtm_totp_uri(r->user.username, b32, &uri);
    OPENSSL_cleanse(b32, sizeof(b32));
    rc = uri.err ? uri.err : dtm_qr_png(uri.p, &png);
    if (rc == DTM_OK)
        rc = dtm_http_reply(r, 200, "image/png", png.p, png.n);
    if (uri.p)
        OPENSSL_cleanse(uri.p, uri.n);
    dtm_buf_free(&uri);
    dtm_buf_free(&png);
    return rc;
}

int dtm_api_mfa_confirm(struct dtm_req *r)
{
    const struct dtm_server_env *env = dtm_http_env(r);
    char codes[DTM_RECOVERY_CODES][DTM_RECOVERY_CODE_MAX];
    uint8_t hashes[DTM_RECOVERY_CODES][32], seed[64];
    size_t n = 0;
    struct user_txn t;
    const char *code;
    bool bad = false;
    struct dtm_buf b;
    cJSON *j;
    int rc;
    if (r->user.mfa_enabled || !r->user.mfa_secret_len) {
        char b32[64];
        rc = pending_seed(r, b32, sizeof(b32)); /* answers */
        return r->responded ? DTM_OK : rc;
    }
    if (!(j = dtm_api_body_json(r)))
        return DTM_OK;
    code = dtm_api_member(r, j, "totp", 64, &bad);
    if (bad) {
        cJSON_Delete(j);
        return DTM_OK;
    }
    memset(&t, 0, sizeof(t));
    t.u = r->user;
    rc = dtm_totp_open(dtm_datakeys_get(env->conf), t.u.username, t.u.mfa_secret,
                       t.u.mfa_secret_len, seed, sizeof(seed), &n);
    if (rc == DTM_OK)
        rc = dtm_totp_check(seed, n, dtm_str_c(code ? code : ""), dtm_now_us() / 1000000, &t.step);
    OPENSSL_cleanse(seed, sizeof(seed));
    cJSON_Delete(j);
    if (rc == DTM_EAUTH) {
        audit(r, r->user.username, "mfa.confirm_failed", r->user.username, NULL);
        return dtm_http_problem(r, 400, "mfa_failed", "Bad parameter",
                                "Member 'totp': the code is not valid; enter the 6 digits the "
                                "authenticator app shows now.");
    }
    if (rc)
        return rc;
    if ((rc = dtm_recovery_new(codes, hashes, DTM_RECOVERY_CODES)))
        return rc;
    t.u.mfa_enabled = true;
    t.codes = (const uint8_t(*)[32])hashes;
    t.ncodes = DTM_RECOVERY_CODES;
    t.end_sessions = true; /* other sessions were opened without the second factor */
    t.keep_session = r->session.id_hash;
    if ((rc = dtm_gate_write(env->writer, user_txn, &t))) {
        OPENSSL_cleanse(codes, sizeof(codes));
        return store_failed(r, rc);
    }
    if (t.outcome == DTM_ECONFLICT) {
        OPENSSL_cleanse(codes, sizeof(codes));
        return dtm_http_problem(r, 400, "mfa_failed", "Bad parameter",
                                "Member 'totp': this code was already used; wait for the next "
                                "one.");
    }
    audit(r, r->user.username, "mfa.enrolled", r->user.username, "{\"recovery_codes\":10}");
    dtm_buf_init(&b, 8192);
    dtm_buf_addc(&b, "{\"mfa_enrolled\":true,\"recovery_codes\":[");
    for (size_t i = 0; i < DTM_RECOVERY_CODES; i++) {
        if (i)
            dtm_buf_addch(&b, ',');
        dtm_buf_json_strc(&b, codes[i]);
    }
    dtm_buf_addc(&b, "]}");
    OPENSSL_cleanse(codes, sizeof(codes));
    rc = dtm_http_json(r, 200, &b);
    if (b.p)
        OPENSSL_cleanse(b.p, b.n);
    dtm_buf_free(&b);
    return rc;
}

/* ---- accounts (admins) */

static int list_one(void *ctx, const struct dtm_user *u)
{
    struct dtm_buf *b = ctx;
    if (b->n && b->p[b->n - 1] == '}')
        dtm_buf_addch(b, ',');
    user_json(b, u);
    return b->err;
}

int dtm_api_users_list(struct dtm_req *r)
{
    struct dtm_store *st = dtm_http_store(r);
    struct dtm_buf b;
    int rc;
    if (!st)
        return DTM_ESTORE;
    dtm_buf_init(&b, 16 << 20);
    dtm_buf_addc(&b, "{\"users\":[");
    rc = st->ops->user_list(st, list_one, &b);
    dtm_buf_addc(&b, "]}");
    rc = rc ? rc : dtm_http_json(r, 200, &b);
    dtm_buf_free(&b);
    return rc;
}

struct add_txn {
    struct dtm_user u;
    int outcome;
};

static int add_txn(void *ctx, struct dtm_store *st)
{
    struct add_txn *t = ctx;
    int rc = st->ops->user_add(st, t->u.username, t->u.role, t->u.password_hash, t->u.created_at);
    t->outcome = rc == DTM_EEXIST ? rc : DTM_OK;
    return rc == DTM_EEXIST ? DTM_OK : rc;
}

int dtm_api_users_add(struct dtm_req *r)
{
    struct add_txn t;
    char pw[32], d[96];
    const char *username, *role;
    bool bad = false;
    struct dtm_buf b;
    cJSON *j = dtm_api_body_json(r);
    int rc;
    if (!j)
        return DTM_OK;
    username = dtm_api_member(r, j, "username", 256, &bad);
    role = dtm_api_member(r, j, "role", 32, &bad);
    if (bad) {
        cJSON_Delete(j);
        return DTM_OK;
    }
    if (!username || !dtm_username_valid(username)) {
        cJSON_Delete(j);
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "Member 'username' must have 1 to 63 characters: lower-case "
                                "letters, digits, '.', '_' or '-', starting with a letter or "
                                "digit.");
    }
    if (!role || !dtm_role_valid(role)) {
        cJSON_Delete(j);
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "Member 'role' must be admin, operator, analyst or auditor.");
    }
    memset(&t, 0, sizeof(t));
    snprintf(t.u.username, sizeof(t.u.username), "%s", username);
    snprintf(t.u.role, sizeof(t.u.role), "%s", role);
    cJSON_Delete(j);
    t.u.created_at = dtm_now_us();
    if ((rc = dtm_password_random(pw, sizeof(pw), 20)) ||
        (rc = dtm_password_hash(pw, t.u.password_hash, sizeof(t.u.password_hash))))
        return rc;
    if ((rc = dtm_gate_write(dtm_http_env(r)->writer, add_txn, &t))) {
        OPENSSL_cleanse(pw, sizeof(pw));
        return store_failed(r, rc);
    }
    if (t.outcome == DTM_EEXIST) {
        OPENSSL_cleanse(pw, sizeof(pw));
        return dtm_http_problem(r, 409, "conflict", "Conflict", "User %s exists already.",
                                t.u.username);
    }
    snprintf(d, sizeof(d), "{\"role\":\"%s\"}", t.u.role);
    audit(r, r->user.username, "user.created", t.u.username, d);
    dtm_buf_init(&b, 8192);
    user_json(&b, &t.u);
    b.n--; /* reopen the object: the initial password, shown this once */
    dtm_buf_addc(&b, ",\"password\":");
    dtm_buf_json_strc(&b, pw);
    dtm_buf_addch(&b, '}');
    OPENSSL_cleanse(pw, sizeof(pw));
    rc = dtm_http_json(r, 201, &b);
    if (b.p)
        OPENSSL_cleanse(b.p, b.n);
    dtm_buf_free(&b);
    return rc;
}

/* The account named by the path; answers 404 itself. */
static int path_user(struct dtm_req *r, struct dtm_user *u)
{
    char name[DTM_USERNAME_MAX];
    struct dtm_store *st = dtm_http_store(r);
    int rc;
    if (!st)
        return DTM_ESTORE;
    if (r->params[0].n >= sizeof(name) ||
        (snprintf(name, sizeof(name), "%.*s", (int)r->params[0].n, r->params[0].p),
         !dtm_username_valid(name)) ||
        (rc = st->ops->user_get(st, name, u)) == DTM_ENOTFOUND) {
        dtm_http_problem(r, 404, "not_found", "Not found", "No user with this name.");
        return DTM_ENOTFOUND;
    }
    return rc;
}

int dtm_api_user_patch(struct dtm_req *r)
{
    struct user_txn t;
    const char *role;
    cJSON *j, *dis;
    bool bad = false;
    struct dtm_buf b, d;
    int rc;
    memset(&t, 0, sizeof(t));
    if ((rc = path_user(r, &t.u)))
        return r->responded ? DTM_OK : rc;
    if (!(j = dtm_api_body_json(r)))
        return DTM_OK;
    role = dtm_api_member(r, j, "role", 32, &bad);
    dis = cJSON_GetObjectItemCaseSensitive(j, "disabled");
    if (bad) {
        cJSON_Delete(j);
        return DTM_OK;
    }
    if (role && !dtm_role_valid(role)) {
        cJSON_Delete(j);
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "Member 'role' must be admin, operator, analyst or auditor.");
    }
    if (dis && !cJSON_IsBool(dis)) {
        cJSON_Delete(j);
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "Member 'disabled' must be true or false.");
    }
    if (strcmp(t.u.username, r->user.username) == 0 &&
        ((role && strcmp(role, t.u.role) != 0) || (dis && cJSON_IsTrue(dis)))) {
        cJSON_Delete(j);
        return dtm_http_problem(r, 409, "conflict", "Conflict",
                                "Administrators cannot change their own role or disable "
                                "themselves; another administrator can.");
    }
    dtm_buf_init(&d, 256);
    dtm_buf_addch(&d, '{');
    if (role) {
        dtm_buf_printf(&d, "\"role\":\"%s\",\"old_role\":\"%s\"", role, t.u.role);
        snprintf(t.u.role, sizeof(t.u.role), "%s", role);
    }
    if (dis) {
        t.u.disabled = cJSON_IsTrue(dis);
        t.end_sessions = t.u.disabled;
        dtm_buf_printf(&d, "%s\"disabled\":%s", role ? "," : "", t.u.disabled ? "true" : "false");
    }
    dtm_buf_addch(&d, '}');
    cJSON_Delete(j);
    t.step = -1;
    if ((rc = dtm_gate_write(dtm_http_env(r)->writer, user_txn, &t))) {
        dtm_buf_free(&d);
        return store_failed(r, rc);
    }
    audit(r, r->user.username, "user.changed", t.u.username, d.err ? NULL : d.p);
    dtm_buf_free(&d);
    dtm_buf_init(&b, 8192);
    user_json(&b, &t.u);
    rc = dtm_http_json(r, 200, &b);
    dtm_buf_free(&b);
    return rc;
}

struct delete_txn {
    char username[DTM_USERNAME_MAX];
};

static int delete_txn(void *ctx, struct dtm_store *st)
{
    int rc = st->ops->user_delete(st, ((struct delete_txn *)ctx)->username);
    return rc == DTM_ENOTFOUND ? DTM_OK : rc;
}

int dtm_api_user_delete(struct dtm_req *r)
{
    struct dtm_user u;
    struct delete_txn t;
    int rc;
    if ((rc = path_user(r, &u)))
        return r->responded ? DTM_OK : rc;
    if (strcmp(u.username, r->user.username) == 0)
        return dtm_http_problem(r, 409, "conflict", "Conflict",
                                "Administrators cannot delete their own account; another "
                                "administrator can.");
    snprintf(t.username, sizeof(t.username), "%s", u.username);
    if ((rc = dtm_gate_write(dtm_http_env(r)->writer, delete_txn, &t)))
        return store_failed(r, rc);
    audit(r, r->user.username, "user.deleted", u.username, NULL);
    return dtm_http_reply(r, 204, "application/json", "", 0);
}
