/* api/credentials.c — connected systems and their credentials, for administrators (T2.4; the
 * same operations as `dtm system add` and `dtm key …`, gate/credentials.c):
 *   POST   /api/v1/systems                        register: its API key and OAuth client
 *   GET    /api/v1/systems/{code}/keys            its API keys and OAuth client (no secret)
 *   POST   /api/v1/systems/{code}/keys            a new API key; the live ones expire after
 *                                                 grace_seconds (default [auth] rotate_grace)
 *   DELETE /api/v1/systems/{code}/keys/{id}       revoke an API key now
 *   POST   /api/v1/systems/{code}/client-secret   a new OAuth client secret (old one and its
 *                                                 tokens end now)
 *   DELETE /api/v1/systems/{code}/client          revoke the OAuth client and its tokens
 * A secret is in the answer once (Cache-Control: no-store) and nowhere else. Each change and
 * its audit entry commit together, written by the writer thread. */
#include "api/api.h"
#include "audit/audit.h"
#include "gate/gate.h"

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

enum op { OP_REGISTER, OP_KEY_ROTATE, OP_KEY_REVOKE, OP_CLIENT_ROTATE, OP_CLIENT_REVOKE };

struct change {
    enum op op;
    struct dtm_system sys;   /* OP_REGISTER: the new one; else .code */
    char probe_url[1024];    /* OP_REGISTER */
    char key_id[DTM_ID_MAX]; /* OP_KEY_REVOKE */
    int64_t now, grace_us;
    const uint8_t *audit_key;
    char actor[128], ip[64];
    struct dtm_credentials cr;
    int outcome; /* what the operation said (DTM_ENOTFOUND, DTM_EEXIST, DTM_EINVAL) */
};

static const char *const actions[] = {"system.created", "key.rotated", "key.revoked",
                                      "oauth_client.rotated", "oauth_client.revoked"};

static int key_of_system(void *ctx, const struct dtm_key *k)
{
    struct change *c = ctx;
    if (!strcmp(k->id, c->key_id) && !k->revoked_at) {
        c->outcome = DTM_OK;
        return 1;
    }
    return 0;
}

static int change_txn(void *ctx, struct dtm_store *st)
{
    struct change *c = ctx;
    struct dtm_buf d;
    int rc = DTM_OK;
    switch (c->op) {
    case OP_REGISTER:
        rc = dtm_system_register(st, &c->sys, c->probe_url, c->now, &c->cr);
        break;
    case OP_KEY_ROTATE:
        rc = dtm_key_rotate(st, c->sys.code, c->now, c->grace_us, &c->cr);
        break;
    case OP_KEY_REVOKE: /* a key of this system (the path names both) */
        c->outcome = DTM_ENOTFOUND;
        if ((rc = st->ops->key_list(st, c->sys.code, key_of_system, c)) < 0)
            return rc;
        rc = c->outcome ? c->outcome : st->ops->key_revoke(st, c->key_id, c->now);
        break;
    case OP_CLIENT_ROTATE:
        rc = dtm_client_rotate(st, c->sys.code, c->now, &c->cr);
        break;
    case OP_CLIENT_REVOKE:
        rc = dtm_client_revoke(st, c->sys.code, c->now);
        break;
    }
    c->outcome = rc;
    if (rc == DTM_ENOTFOUND || rc == DTM_EEXIST || rc == DTM_EINVAL)
        return DTM_OK; /* nothing changed, nothing to record */
    if (rc)
        return rc;
    /* S3: which key or client, by whom — never a secret */
    dtm_buf_init(&d, DTM_AUDIT_DETAIL_MAX - 1);
    dtm_buf_addch(&d, '{');
    if (c->cr.key_id[0] || c->key_id[0]) {
        dtm_buf_addc(&d, "\"key_id\":");
        dtm_buf_json_strc(&d, c->cr.key_id[0] ? c->cr.key_id : c->key_id);
    }
    if (c->op == OP_REGISTER) {
        dtm_buf_addc(&d, ",\"name\":");
        dtm_buf_json_strc(&d, c->sys.name);
        dtm_buf_addc(&d, ",\"role\":");
        dtm_buf_json_strc(&d, c->sys.role);
    }
    dtm_buf_addch(&d, '}');
    rc = d.err ? d.err
               : dtm_audit_append(st, c->audit_key,
                                  &(struct dtm_audit_event){"user", c->actor, actions[c->op],
                                                            c->sys.code, d.p, c->ip},
                                  NULL);
    dtm_buf_free(&d);
    return rc;
}

/* Runs the change: true when made; false after answering why not. */
static bool run(struct dtm_req *r, struct change *c)
{
    const struct dtm_server_env *env = dtm_http_env(r);
    int rc;
    c->now = dtm_now_us();
    c->audit_key = env->keys->audit_key;
    snprintf(c->actor, sizeof(c->actor), "%s", r->user.username);
    dtm_http_client_ip(r, c->ip, sizeof(c->ip));
    if ((rc = dtm_gate_write(env->writer, change_txn, c))) {
        dtm_credentials_wipe(&c->cr);
        dtm_http_error(r, rc == DTM_EBUSY ? DTM_EBUSY : DTM_ESTORE);
        return false;
    }
    switch (c->outcome) {
    case DTM_OK:
        dtm_gate_keys_changed(env->conf); /* key caches of every process on this data dir */
        return true;
    case DTM_EEXIST:
        dtm_http_problem(r, 409, "conflict", "Conflict", "A system with code %s exists already.",
                         c->sys.code);
        break;
    case DTM_EINVAL:
        dtm_http_problem(r, 422, "bad_parent", "Invalid data",
                         "Member 'parent' must name an existing system with role aggregator.");
        break;
    default:
        if (c->op == OP_KEY_REVOKE)
            dtm_http_problem(r, 404, "unknown_key", "Not found",
                             "System %s has no live API key %s.", c->sys.code, c->key_id);
        else if (c->op == OP_CLIENT_REVOKE)
            dtm_http_problem(r, 404, "no_client", "Not found",
                             "System %s has no live OAuth client.", c->sys.code);
        else
            dtm_http_problem(r, 404, "unknown_system", "Not found", "There is no system %s.",
                             c->sys.code);
    }
    dtm_credentials_wipe(&c->cr);
    return false;
}

/* The answer with the secrets handed out once: system_code, then what cr holds. */
static int credentials_reply(struct dtm_req *r, int status, struct change *c, const char *extra)
{
    struct dtm_buf b;
    int rc;
    dtm_buf_init(&b, 8192);
    dtm_buf_addc(&b, "{\"system_code\":");
    dtm_buf_json_strc(&b, c->sys.code);
    if (c->cr.key_id[0]) {
        dtm_buf_addc(&b, ",\"key_id\":");
        dtm_buf_json_strc(&b, c->cr.key_id);
        dtm_buf_addc(&b, ",\"api_key\":");
        dtm_buf_json_strc(&b, c->cr.api_key);
    }
    if (c->cr.client_id[0]) {
        dtm_buf_addc(&b, ",\"client_id\":");
        dtm_buf_json_strc(&b, c->cr.client_id);
        dtm_buf_addc(&b, ",\"client_secret\":");
        dtm_buf_json_strc(&b, c->cr.client_secret);
    }
    dtm_buf_addc(&b, extra ? extra : "");
    dtm_buf_addch(&b, '}');
    dtm_credentials_wipe(&c->cr);
    dtm_http_add_header(r, "Pragma", "no-cache");
    rc = dtm_http_json(r, status, &b);
    if (b.p)
        OPENSSL_cleanse(b.p, b.n);
    dtm_buf_free(&b);
    return rc;
}

/* The system code of the path into c (404 answered when it is no code). */
static bool path_code(struct dtm_req *r, struct change *c)
{
    struct dtm_str p = r->params[0];
    if (!p.n || p.n >= sizeof(c->sys.code) || memchr(p.p, '\0', p.n)) {
        dtm_http_problem(r, 404, "unknown_system", "Not found", "There is no such system.");
        return false;
    }
    memcpy(c->sys.code, p.p, p.n);
    c->sys.code[p.n] = '\0';
    return true;
}

static struct change *change_new(struct dtm_req *r)
{
    struct change *c = dtm_arena_alloc(&r->arena, sizeof(*c));
    if (c)
        memset(c, 0, sizeof(*c));
    return c;
}

int dtm_api_system_create(struct dtm_req *r)
{
    const char *code, *name, *org, *role, *parent, *probe, *tier;
    struct change *c = change_new(r);
    bool bad = false;
    cJSON *j, *masked;
    if (!c)
        return DTM_ENOMEM;
    if (!(j = dtm_api_body_json(r)))
        return DTM_OK;
    code = dtm_api_member(r, j, "code", 64, &bad);
    name = dtm_api_member(r, j, "name", sizeof(c->sys.name) - 1, &bad);
    org = dtm_api_member(r, j, "org", sizeof(c->sys.org) - 1, &bad);
    role = dtm_api_member(r, j, "role", 16, &bad);
    parent = dtm_api_member(r, j, "parent", 64, &bad);
    probe = dtm_api_member(r, j, "probe_url", sizeof(c->probe_url) - 1, &bad);
    tier = dtm_api_member(r, j, "tier", 16, &bad);
    masked = cJSON_GetObjectItemCaseSensitive(j, "masked");
    if (!bad && masked && !cJSON_IsBool(masked) && !cJSON_IsNull(masked)) {
        bad = true;
        dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                         "Member 'masked' must be true or false.");
    }
    if (!bad && (!code || !dtm_system_code_valid(code))) {
        bad = true;
        dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                         "Member 'code' must have 1 to 32 letters, digits, '.', '_' or '-'.");
    }
    if (!bad && (!name || !*name)) {
        bad = true;
        dtm_http_problem(r, 400, "bad_parameter", "Bad parameter", "Member 'name' is required.");
    }
    if (!bad && role && !dtm_system_role_valid(role)) {
        bad = true;
        dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                         "Member 'role' must be source, consumer or aggregator.");
    }
    if (!bad && probe && *probe && !dtm_probe_url_valid(probe)) {
        bad = true;
        dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                         "Member 'probe_url' must be an http:// or https:// URL of printable "
                         "characters.");
    }
    if (!bad && tier && !dtm_rl_tier_valid(tier)) {
        bad = true;
        dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                         "Member 'tier' must be bronze, silver or gold.");
    }
    if (bad) {
        cJSON_Delete(j);
        return DTM_OK;
    }
    c->op = OP_REGISTER;
    snprintf(c->sys.code, sizeof(c->sys.code), "%s", code);
    snprintf(c->sys.name, sizeof(c->sys.name), "%s", name);
    snprintf(c->sys.org, sizeof(c->sys.org), "%s", org ? org : "");
    snprintf(c->sys.role, sizeof(c->sys.role), "%s", role ? role : "source");
    snprintf(c->sys.parent, sizeof(c->sys.parent), "%s", parent ? parent : "");
    snprintf(c->sys.tier, sizeof(c->sys.tier), "%s", tier ? tier : "");
    snprintf(c->probe_url, sizeof(c->probe_url), "%s", probe ? probe : "");
    c->sys.masked = cJSON_IsTrue(masked);
    cJSON_Delete(j);
    c->sys.created_at = dtm_now_us();
    if (!run(r, c))
        return DTM_OK;
    return credentials_reply(r, 201, c, NULL);
}

struct keys_ctx {
    struct dtm_buf *b;
    int n;
    int64_t now;
};

static void time_member(struct dtm_buf *b, const char *name, int64_t t)
{
    dtm_buf_printf(b, ",\"%s\":", name);
    dtm_buf_json_time(b, t);
}

static int key_json(void *ctx, const struct dtm_key *k)
{
    struct keys_ctx *x = ctx;
    const char *status = k->revoked_at                              ? "revoked"
                         : k->expires_at && k->expires_at <= x->now ? "expired"
                         : k->expires_at                            ? "expiring"
                                                                    : "active";
    dtm_buf_addc(x->b, x->n++ ? ",{\"id\":" : "{\"id\":");
    dtm_buf_json_strc(x->b, k->id);
    dtm_buf_printf(x->b, ",\"status\":\"%s\"", status);
    time_member(x->b, "created_at", k->created_at);
    time_member(x->b, "expires_at", k->expires_at);
    time_member(x->b, "revoked_at", k->revoked_at);
    dtm_buf_addch(x->b, '}');
    return x->b->err;
}

int dtm_api_system_keys(struct dtm_req *r)
{
    struct dtm_store *st = dtm_http_store(r);
    struct change *c = change_new(r);
    struct dtm_oauth_client cl;
    struct dtm_system sys;
    struct dtm_buf b;
    struct keys_ctx x;
    int rc;
    if (!st || !c)
        return !st ? DTM_ESTORE : DTM_ENOMEM;
    if (!path_code(r, c))
        return DTM_OK;
    if ((rc = st->ops->system_get(st, c->sys.code, &sys)) == DTM_ENOTFOUND)
        return dtm_http_problem(r, 404, "unknown_system", "Not found", "There is no system %s.",
                                c->sys.code);
    if (rc)
        return rc;
    dtm_buf_init(&b, 1 << 20);
    x = (struct keys_ctx){&b, 0, dtm_now_us()};
    dtm_buf_addc(&b, "{\"system_code\":");
    dtm_buf_json_strc(&b, sys.code);
    dtm_buf_addc(&b, ",\"keys\":[");
    rc = st->ops->key_list(st, sys.code, key_json, &x);
    dtm_buf_addc(&b, "],\"oauth_client\":");
    if (rc == DTM_OK && (rc = st->ops->client_get(st, sys.code, &cl)) == DTM_OK) {
        dtm_buf_addc(&b, "{\"client_id\":");
        dtm_buf_json_strc(&b, cl.client_id);
        dtm_buf_printf(&b, ",\"status\":\"%s\"", cl.revoked_at ? "revoked" : "active");
        time_member(&b, "created_at", cl.created_at);
        time_member(&b, "revoked_at", cl.revoked_at);
        dtm_buf_printf(&b, ",\"secret_generation\":%lld}", (long long)cl.generation);
    } else if (rc == DTM_ENOTFOUND) {
        rc = DTM_OK;
        dtm_buf_addc(&b, "null");
    }
    dtm_buf_addch(&b, '}');
    if (rc == DTM_OK)
        rc = dtm_http_json(r, 200, &b);
    dtm_buf_free(&b);
    return rc;
}

int dtm_api_system_key_rotate(struct dtm_req *r)
{
    struct change *c = change_new(r);
    char extra[96], ts[40];
    int64_t grace;
    if (!c)
        return DTM_ENOMEM;
    if (!path_code(r, c))
        return DTM_OK;
    grace = dtm_http_env(r)->conf->rotate_grace;
    if (r->body.n) { /* optional {"grace_seconds": N} */
        cJSON *j = dtm_api_body_json(r), *g;
        if (!j)
            return DTM_OK;
        g = cJSON_GetObjectItemCaseSensitive(j, "grace_seconds");
        if (g && (!cJSON_IsNumber(g) || g->valuedouble < 0 || g->valuedouble > 365.0 * 86400 ||
                  g->valuedouble != (double)(int64_t)g->valuedouble)) {
            cJSON_Delete(j);
            return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                    "Member 'grace_seconds' must be a whole number of seconds "
                                    "from 0 to 31536000.");
        }
        if (g)
            grace = (int64_t)g->valuedouble;
        cJSON_Delete(j);
    }
    c->op = OP_KEY_ROTATE;
    c->grace_us = grace * 1000000;
    if (!run(r, c))
        return DTM_OK;
    dtm_time_fmt(c->now + c->grace_us, ts, sizeof(ts));
    snprintf(extra, sizeof(extra), ",\"old_keys_expire_at\":\"%s\"", ts);
    return credentials_reply(r, 201, c, extra);
}

/* The changes named by the path alone: revoke a key (its id the second parameter), rotate or
 * revoke the OAuth client. */
static int path_change(struct dtm_req *r, enum op op)
{
    struct change *c = change_new(r);
    struct dtm_str id = r->params[1];
    if (!c)
        return DTM_ENOMEM;
    if (!path_code(r, c))
        return DTM_OK;
    if (op == OP_KEY_REVOKE) {
        if (!id.n || id.n >= sizeof(c->key_id) || memchr(id.p, '\0', id.n))
            return dtm_http_problem(r, 404, "unknown_key", "Not found", "There is no such key.");
        memcpy(c->key_id, id.p, id.n);
    }
    c->op = op;
    if (!run(r, c))
        return DTM_OK;
    if (op == OP_CLIENT_ROTATE)
        return credentials_reply(r, 200, c, NULL);
    return dtm_http_reply(r, 204, "application/json", "", 0);
}

int dtm_api_system_key_revoke(struct dtm_req *r)
{
    return path_change(r, OP_KEY_REVOKE);
}

int dtm_api_system_client_rotate(struct dtm_req *r)
{
    return path_change(r, OP_CLIENT_ROTATE);
}

int dtm_api_system_client_revoke(struct dtm_req *r)
{
    return path_change(r, OP_CLIENT_REVOKE);
}
