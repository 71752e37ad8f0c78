/* cli/system.c — `dtm system add|list|set-tier` and `dtm key rotate|revoke` (CONTRACT §1,
 * T2.4): API keys are random (256 bits), printed once, stored only as hashes. Tiers: T2.2. */
#include "cli/cli.h"
#include "gate/gate.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

/* Prints what a change handed out, once, and wipes it. */
static void print_credentials(const char *code, struct dtm_credentials *cr, bool json)
{
    struct dtm_cli_out out = {0};
    dtm_cli_out_add(&out, "system_code", code);
    if (cr->key_id[0]) {
        dtm_cli_out_add(&out, "key_id", cr->key_id);
        dtm_cli_out_add(&out, "api_key", cr->api_key);
    }
    if (cr->client_id[0]) {
        dtm_cli_out_add(&out, "client_id", cr->client_id);
        dtm_cli_out_add(&out, "client_secret", cr->client_secret);
    }
    dtm_cli_out_print(&out, json);
    dtm_credentials_wipe(cr);
    OPENSSL_cleanse(&out, sizeof(out));
}

/* S3: the audit entry of a change, in the change's transaction. detail names the key by its id,
 * never the key or the client secret. */
static int audit(const struct dtm_conf *c, struct dtm_store *st, const char *action,
                 const char *target, const struct dtm_system *sys, const char *key_id,
                 const char *expires)
{
    struct dtm_buf d;
    int rc;
    dtm_buf_init(&d, DTM_AUDIT_DETAIL_MAX - 1);
    dtm_buf_addch(&d, '{');
    if (key_id) {
        dtm_buf_addc(&d, "\"key_id\":");
        dtm_buf_json_strc(&d, key_id);
    }
    if (expires) {
        dtm_buf_addc(&d, ",\"old_keys_expire_at\":");
        dtm_buf_json_strc(&d, expires);
    }
    if (sys) {
        dtm_buf_addc(&d, ",\"name\":");
        dtm_buf_json_strc(&d, sys->name);
        dtm_buf_addc(&d, ",\"org\":");
        dtm_buf_json_strc(&d, sys->org);
        dtm_buf_addc(&d, ",\"role\":");
        dtm_buf_json_strc(&d, sys->role);
        dtm_buf_addc(&d, ",\"parent\":");
        dtm_buf_json_strc(&d, sys->parent);
        dtm_buf_printf(&d, ",\"masked\":%s", sys->masked ? "true" : "false");
    }
    dtm_buf_addch(&d, '}');
    rc = d.err ? d.err : dtm_cli_audit(c, st, action, target, d.p);
    dtm_buf_free(&d);
    return rc;
}

static int system_add(int argc, char **argv)
{
    static const char usage[] = "dtm system add --code C --name N [--org O] "
                                "[--role source|consumer|aggregator] [--parent P] [--masked] "
                                "[--probe-url URL] [--tier bronze|silver|gold] [--json]";
    const char *code = NULL, *name = NULL, *org = "", *role = "source", *parent = NULL;
    const char *probe_url = NULL, *tier = NULL;
    bool masked = false;
    struct dtm_cli_opt opts[] = {
        {"code", &code, NULL},           {"name", &name, NULL},     {"org", &org, NULL},
        {"role", &role, NULL},           {"parent", &parent, NULL}, {"masked", NULL, &masked},
        {"probe-url", &probe_url, NULL}, {"tier", &tier, NULL}};
    struct dtm_cli_common com;
    const char *pos[1];
    size_t npos;
    struct dtm_conf c;
    struct dtm_store *st;
    struct dtm_system sys = {0};
    struct dtm_credentials cr = {0};
    int rc = dtm_cli_parse(argc, argv, opts, DTM_ARRAY_LEN(opts), &com, pos, 0, &npos, usage);
    if (rc)
        return rc;
    if (com.help) {
        printf("usage: %s\n", usage);
        return DTM_EXIT_OK;
    }
    if (!code || !name || !*name) {
        dtm_cli_error("--code and --name are required\nusage: %s", usage);
        return DTM_EXIT_USAGE;
    }
    if (!dtm_system_code_valid(code)) {
        dtm_cli_error("system code '%s' must be 1 to 32 letters, digits, '.', '_' or '-'", code);
        return DTM_EXIT_USAGE;
    }
    if (!dtm_system_role_valid(role)) {
        dtm_cli_error("--role must be source, consumer or aggregator (got %s)", role);
        return DTM_EXIT_USAGE;
    }
    if (strlen(name) >= sizeof(sys.name) || strlen(org) >= sizeof(sys.org)) {
        dtm_cli_error("--name and --org must be shorter than 256 bytes");
        return DTM_EXIT_USAGE;
    }
    if (probe_url && !dtm_probe_url_valid(probe_url)) {
        dtm_cli_error("--probe-url must be an http:// or https:// URL of printable characters, "
                      "shorter than 1024 bytes");
        return DTM_EXIT_USAGE;
    }
    if (tier && !dtm_rl_tier_valid(tier)) {
        dtm_cli_error("--tier must be bronze, silver or gold (got %s)", tier);
        return DTM_EXIT_USAGE;
    }
    if (parent && strlen(parent) >= sizeof(sys.parent)) {
        dtm_cli_error("--parent must name an aggregator system");
        return DTM_EXIT_USAGE;
    }
    if (dtm_cli_load_conf(com.data_dir, NULL, &c) || dtm_cli_open_store(&c, &st))
        return DTM_EXIT_FAIL;
    snprintf(sys.code, sizeof(sys.code), "%s", code);
    snprintf(sys.tier, sizeof(sys.tier), "%s", tier ? tier : "");
    snprintf(sys.name, sizeof(sys.name), "%s", name);
    snprintf(sys.org, sizeof(sys.org), "%s", org);
    snprintf(sys.role, sizeof(sys.role), "%s", role);
    sys.masked = masked;
    sys.created_at = dtm_now_us();
    snprintf(sys.parent, sizeof(sys.parent), "%s", parent ? parent : "");
    if ((rc = st->ops->begin(st)))
        goto fail;
    rc = dtm_system_register(st, &sys, probe_url, sys.created_at, &cr);
    if (rc == DTM_EINVAL || rc == DTM_EEXIST) {
        st->ops->rollback(st);
        st->ops->close(st);
        dtm_credentials_wipe(&cr);
        if (rc == DTM_EEXIST)
            dtm_cli_error("a system with code %s already exists", code);
        else
            dtm_cli_error("--parent %s must be an existing system with role aggregator", parent);
        return DTM_EXIT_FAIL;
    }
    if (rc || (rc = audit(&c, st, "system.created", code, &sys, cr.key_id, NULL)) ||
        (rc = st->ops->commit(st)))
        goto fail;
    st->ops->close(st);
    dtm_gate_keys_changed(&c);
    print_credentials(code, &cr, com.json);
    return DTM_EXIT_OK;
fail:
    st->ops->rollback(st);
    st->ops->close(st);
    dtm_credentials_wipe(&cr);
    dtm_cli_error("cannot add the system (%s)", dtm_rc_name(rc));
    return DTM_EXIT_FAIL;
}

static int list_one(void *ctx, const struct dtm_system *s)
{
    struct dtm_cli_list *x = ctx;
    struct dtm_buf *b = &x->b;
    char ts[40] = "";
    if (s->last_seen)
        dtm_time_fmt(s->last_seen, ts, sizeof(ts));
    if (!x->json) {
        dtm_buf_printf(b, "%-20s %-11s %-7s %-20s %s\n", s->code, s->role,
                       s->tier[0] ? s->tier : "-", ts[0] ? ts : "never", s->name);
        return b->err;
    }
    dtm_cli_list_item(x);
    dtm_buf_addc(b, "{\"code\":");
    dtm_buf_json_strc(b, s->code);
    dtm_buf_addc(b, ",\"name\":");
    dtm_buf_json_strc(b, s->name);
    dtm_buf_addc(b, ",\"org\":");
    dtm_buf_json_strc(b, s->org);
    dtm_buf_addc(b, ",\"role\":");
    dtm_buf_json_strc(b, s->role);
    dtm_buf_addc(b, ",\"parent\":");
    if (s->parent[0])
        dtm_buf_json_strc(b, s->parent);
    else
        dtm_buf_addc(b, "null");
    dtm_buf_printf(b, ",\"masked\":%s,\"tier\":", s->masked ? "true" : "false");
    if (s->tier[0])
        dtm_buf_json_strc(b, s->tier);
    else
        dtm_buf_addc(b, "null");
    dtm_buf_addc(b, ",\"last_seen\":");
    if (ts[0])
        dtm_buf_printf(b, "\"%s\"}", ts);
    else
        dtm_buf_addc(b, "null}");
    return b->err;
}

static int system_list(int argc, char **argv)
{
    static const char usage[] = "dtm system list [--json]";
    struct dtm_cli_common com;
    const char *pos[1];
    size_t npos;
    struct dtm_conf c;
    struct dtm_store *st;
    struct dtm_cli_list x;
    int rc = dtm_cli_parse(argc, argv, NULL, 0, &com, pos, 0, &npos, usage);
    if (rc)
        return rc;
    if (dtm_cli_load_conf(com.data_dir, NULL, &c) || dtm_cli_open_store(&c, &st))
        return DTM_EXIT_FAIL;
    dtm_cli_list_begin(&x, com.json, NULL);
    return dtm_cli_list_end(&x, st, st->ops->system_list(st, list_one, &x), "the systems");
}

/* T2.2: the rate-limit tier of a system; a running server picks it up with the next request
 * (keys.changed empties its key cache, which holds the systems' tiers). */
static int system_set_tier(int argc, char **argv)
{
    static const char usage[] = "dtm system set-tier --code C --tier bronze|silver|gold [--json]";
    const char *code = NULL, *tier = NULL;
    struct dtm_cli_opt opts[] = {{"code", &code, NULL}, {"tier", &tier, NULL}};
    struct dtm_cli_common com;
    const char *pos[1];
    size_t npos;
    struct dtm_conf c;
    struct dtm_store *st;
    struct dtm_cli_out out = {0};
    char detail[64];
    int rc = dtm_cli_parse(argc, argv, opts, DTM_ARRAY_LEN(opts), &com, pos, 0, &npos, usage);
    if (rc)
        return rc;
    if (com.help) {
        printf("usage: %s\n", usage);
        return DTM_EXIT_OK;
    }
    if (!code || !tier) {
        dtm_cli_error("--code and --tier are required\nusage: %s", usage);
        return DTM_EXIT_USAGE;
    }
    if (!dtm_rl_tier_valid(tier)) {
        dtm_cli_error("--tier must be bronze, silver or gold (got %s)", tier);
        return DTM_EXIT_USAGE;
    }
    if (dtm_cli_load_conf(com.data_dir, NULL, &c) || dtm_cli_open_store(&c, &st))
        return DTM_EXIT_FAIL;
    snprintf(detail, sizeof(detail), "{\"tier\":\"%s\"}", tier); /* a checked name */
    /* S3: the change and its audit entry commit together */
    if ((rc = st->ops->begin(st)) == DTM_OK &&
        (rc = st->ops->system_set_tier(st, code, tier)) == DTM_OK &&
        (rc = dtm_cli_audit(&c, st, "system.tier_changed", code, detail)) == DTM_OK)
        rc = st->ops->commit(st);
    if (rc)
        st->ops->rollback(st);
    st->ops->close(st);
    if (rc == DTM_ENOTFOUND) {
        dtm_cli_error("no system with code %s", code);
        return DTM_EXIT_FAIL;
    }
    if (rc) {
        dtm_cli_error("cannot set the tier (%s)", dtm_rc_name(rc));
        return DTM_EXIT_FAIL;
    }
    dtm_gate_keys_changed(&c);
    dtm_cli_out_add(&out, "system_code", code);
    dtm_cli_out_add(&out, "tier", tier);
    dtm_cli_out_print(&out, com.json);
    return DTM_EXIT_OK;
}

int dtm_cmd_system(int argc, char **argv)
{
    if (argc >= 1 && !strcmp(argv[0], "add"))
        return system_add(argc - 1, argv + 1);
    if (argc >= 1 && !strcmp(argv[0], "list"))
        return system_list(argc - 1, argv + 1);
    if (argc >= 1 && !strcmp(argv[0], "set-tier"))
        return system_set_tier(argc - 1, argv + 1);
    dtm_cli_error("usage: dtm system add|list|set-tier …; `dtm help system` says more");
    return DTM_EXIT_USAGE;
}

static int key_rotate(int argc, char **argv)
{
    static const char usage[] = "dtm key rotate --system C [--grace SECONDS] [--json]";
    const char *code = NULL, *grace_s = NULL;
    struct dtm_cli_opt opts[] = {{"system", &code, NULL}, {"grace", &grace_s, NULL}};
    struct dtm_cli_common com;
    const char *pos[1];
    size_t npos;
    struct dtm_conf c;
    struct dtm_store *st;
    struct dtm_credentials cr = {0};
    struct dtm_cli_out out = {0};
    char expires[40];
    int64_t grace, now = dtm_now_us();
    int rc = dtm_cli_parse(argc, argv, opts, DTM_ARRAY_LEN(opts), &com, pos, 0, &npos, usage);
    if (rc)
        return rc;
    if (!code) {
        dtm_cli_error("--system is required\nusage: %s", usage);
        return DTM_EXIT_USAGE;
    }
    if (dtm_cli_load_conf(com.data_dir, NULL, &c))
        return DTM_EXIT_FAIL;
    grace = c.rotate_grace;
    if (grace_s && (dtm_str_to_i64(dtm_str_c(grace_s), &grace) || grace < 0)) {
        dtm_cli_error("--grace must be a number of seconds ≥ 0");
        return DTM_EXIT_USAGE;
    }
    if (dtm_cli_open_store(&c, &st))
        return DTM_EXIT_FAIL;
    if ((rc = st->ops->begin(st)))
        goto fail;
    rc = dtm_key_rotate(st, code, now, grace * 1000000, &cr);
    if (rc == DTM_ENOTFOUND) {
        st->ops->rollback(st);
        st->ops->close(st);
        dtm_cli_error("no system with code %s", code);
        return DTM_EXIT_FAIL;
    }
    dtm_time_fmt(now + grace * 1000000, expires, sizeof(expires));
    if (rc || (rc = audit(&c, st, "key.rotated", code, NULL, cr.key_id, expires)) ||
        (rc = st->ops->commit(st)))
        goto fail;
    st->ops->close(st);
    dtm_gate_keys_changed(&c);
    dtm_cli_out_add(&out, "system_code", code);
    dtm_cli_out_add(&out, "key_id", cr.key_id);
    dtm_cli_out_add(&out, "api_key", cr.api_key);
    dtm_cli_out_add(&out, "old_keys_expire_at", expires);
    dtm_cli_out_print(&out, com.json);
    OPENSSL_cleanse(&out, sizeof(out));
    dtm_credentials_wipe(&cr);
    return DTM_EXIT_OK;
fail:
    st->ops->rollback(st);
    st->ops->close(st);
    dtm_credentials_wipe(&cr);
    dtm_cli_error("cannot rotate the key (%s)", dtm_rc_name(rc));
    return DTM_EXIT_FAIL;
}

static int key_revoke(int argc, char **argv)
{
    static const char usage[] = "dtm key revoke --id K";
    const char *id = NULL;
    struct dtm_cli_opt opts[] = {{"id", &id, NULL}};
    struct dtm_cli_common com;
    const char *pos[1];
    size_t npos;
    struct dtm_conf c;
    struct dtm_store *st;
    int rc = dtm_cli_parse(argc, argv, opts, DTM_ARRAY_LEN(opts), &com, pos, 0, &npos, usage);
    if (rc)
        return rc;
    if (!id) {
        dtm_cli_error("--id is required\nusage: %s", usage);
        return DTM_EXIT_USAGE;
    }
    if (dtm_cli_load_conf(com.data_dir, NULL, &c) || dtm_cli_open_store(&c, &st))
        return DTM_EXIT_FAIL;
    /* S3: the revocation and its audit entry commit together */
    if ((rc = st->ops->begin(st)) == DTM_OK &&
        (rc = st->ops->key_revoke(st, id, dtm_now_us())) == DTM_OK &&
        (rc = audit(&c, st, "key.revoked", id, NULL, id, NULL)) == DTM_OK)
        rc = st->ops->commit(st);
    if (rc)
        st->ops->rollback(st);
    st->ops->close(st);
    if (rc == DTM_OK)
        dtm_gate_keys_changed(&c);
    if (rc == DTM_ENOTFOUND) {
        dtm_cli_error("no active key with id %s", id);
        return DTM_EXIT_FAIL;
    }
    if (rc) {
        dtm_cli_error("cannot revoke the key (%s)", dtm_rc_name(rc));
        return DTM_EXIT_FAIL;
    }
    {
        struct dtm_cli_out out = {0};
        dtm_cli_out_add(&out, "revoked", id);
        dtm_cli_out_print(&out, com.json);
    }
    return DTM_EXIT_OK;
}

struct client_ctx {
    const char *code;
    struct dtm_credentials *cr; /* NULL = revoke */
};

static int client_txn(struct dtm_store *st, void *ctx)
{
    const struct client_ctx *x = ctx;
    return x->cr ? dtm_client_rotate(st, x->code, dtm_now_us(), x->cr)
                 : dtm_client_revoke(st, x->code, dtm_now_us());
}

/* `dtm key rotate-client` / `revoke-client`: the OAuth client of a system (T2.4). A new
 * secret ends the old one and every token issued under it at once (a leaked secret is the
 * reason to rotate); revoking ends the client and its tokens until the next rotation. */
static int client_change(int argc, char **argv, bool rotate)
{
    const char *usage = rotate ? "dtm key rotate-client --system C [--json]"
                               : "dtm key revoke-client --system C [--json]";
    const char *code = NULL;
    struct dtm_cli_opt opts[] = {{"system", &code, NULL}};
    struct dtm_cli_common com;
    const char *pos[1];
    size_t npos;
    struct dtm_conf c;
    struct dtm_store *st;
    struct dtm_credentials cr = {0};
    int rc = dtm_cli_parse(argc, argv, opts, DTM_ARRAY_LEN(opts), &com, pos, 0, &npos, usage);
    if (rc)
        return rc;
    if (com.help) {
        printf("usage: %s\n", usage);
        return DTM_EXIT_OK;
    }
    if (!code) {
        dtm_cli_error("--system is required\nusage: %s", usage);
        return DTM_EXIT_USAGE;
    }
    if (dtm_cli_load_conf(com.data_dir, NULL, &c) || dtm_cli_open_store(&c, &st))
        return DTM_EXIT_FAIL;
    rc = dtm_cli_audited(&c, st, client_txn, &(struct client_ctx){code, rotate ? &cr : NULL},
                         rotate ? "oauth_client.rotated" : "oauth_client.revoked", code, NULL);
    st->ops->close(st);
    if (rc == DTM_ENOTFOUND) {
        dtm_cli_error(rotate ? "no system with code %s" : "system %s has no live OAuth client",
                      code);
        return DTM_EXIT_FAIL;
    }
    if (rc) {
        dtm_credentials_wipe(&cr);
        dtm_cli_error("cannot change the OAuth client (%s)", dtm_rc_name(rc));
        return DTM_EXIT_FAIL;
    }
    if (rotate) {
        print_credentials(code, &cr, com.json);
    } else {
        struct dtm_cli_out out = {0};
        dtm_cli_out_add(&out, "revoked_client", code);
        dtm_cli_out_print(&out, com.json);
    }
    return DTM_EXIT_OK;
}

struct token_ctx {
    const char *jti;
    int64_t now;
};

static int token_txn(struct dtm_store *st, void *ctx)
{
    const struct token_ctx *x = ctx;
    return st->ops->token_revoke(
        st, x->jti, x->now + (int64_t)(DTM_TOKEN_TTL_MAX + DTM_TOKEN_LEEWAY) * 1000000, x->now);
}

/* `dtm key revoke-token --jti J`: an access token ends now (RFC 7009's effect, for an
 * administrator: the jti is in the audit entry oauth.token_issued). Kept until any token can
 * have expired. */
static int token_revoke(int argc, char **argv)
{
    static const char usage[] = "dtm key revoke-token --jti J";
    const char *jti = NULL;
    struct dtm_cli_opt opts[] = {{"jti", &jti, NULL}};
    struct dtm_cli_common com;
    const char *pos[1];
    size_t npos;
    struct dtm_conf c;
    struct dtm_store *st;
    int rc = dtm_cli_parse(argc, argv, opts, DTM_ARRAY_LEN(opts), &com, pos, 0, &npos, usage);
    if (rc)
        return rc;
    if (!jti || !*jti || strlen(jti) >= DTM_ID_MAX ||
        strspn(jti, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") !=
            strlen(jti)) {
        dtm_cli_error("--jti must be a token id (tok_…, from the audit entry "
                      "oauth.token_issued)\nusage: %s",
                      usage);
        return DTM_EXIT_USAGE;
    }
    if (dtm_cli_load_conf(com.data_dir, NULL, &c) || dtm_cli_open_store(&c, &st))
        return DTM_EXIT_FAIL;
    rc = dtm_cli_audited(&c, st, token_txn, &(struct token_ctx){jti, dtm_now_us()},
                         "oauth.token_revoked", jti, NULL);
    st->ops->close(st);
    if (rc) {
        dtm_cli_error("cannot revoke the token (%s)", dtm_rc_name(rc));
        return DTM_EXIT_FAIL;
    }
    {
        struct dtm_cli_out out = {0};
        dtm_cli_out_add(&out, "revoked_token", jti);
        dtm_cli_out_print(&out, com.json);
    }
    return DTM_EXIT_OK;
}

int dtm_cmd_key(int argc, char **argv)
{
    if (argc >= 1 && !strcmp(argv[0], "revoke-token"))
        return token_revoke(argc - 1, argv + 1);
    if (argc >= 1 && !strcmp(argv[0], "rotate-client"))
        return client_change(argc - 1, argv + 1, true);
    if (argc >= 1 && !strcmp(argv[0], "revoke-client"))
        return client_change(argc - 1, argv + 1, false);
    if (argc >= 1 && !strcmp(argv[0], "rotate"))
        return key_rotate(argc - 1, argv + 1);
    if (argc >= 1 && !strcmp(argv[0], "revoke"))
        return key_revoke(argc - 1, argv + 1);
    if (argc >= 1 && !strcmp(argv[0], "rotate-master")) /* T4.2: cli/masterkey.c */
        return dtm_cmd_key_rotate_master(argc - 1, argv + 1);
    if (argc >= 1 && !strcmp(argv[0], "rotate-signing")) /* T2.4: cli/signing.c */
        return dtm_cmd_key_rotate_signing(argc - 1, argv + 1);
    dtm_cli_error("usage: dtm key rotate|revoke|rotate-client|revoke-client|rotate-master|"
                  "rotate-signing …; `dtm help key` says more");
    return DTM_EXIT_USAGE;
}
