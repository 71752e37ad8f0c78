/* cli/user.c — `dtm user add|list|passwd|disable|enable|reset-mfa` (CONTRACT §1, §3): people's
 * accounts on the machine. New and reset passwords are random, printed once (`password:` line or
 * --json) and stored only as Argon2id hashes. Disabling an account, resetting its password or its
 * MFA ends its sessions at once (a running server reads sessions from the store on every
 * request). Every change is appended to the audit trail in the same transaction. */
#include "cli/cli.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#define RANDOM_PASSWORD_LEN 20

static int open_user(const char *data_dir, struct dtm_conf *c, struct dtm_store **st)
{
    if (dtm_cli_load_conf(data_dir, NULL, c) || dtm_cli_open_store(c, st))
        return DTM_EXIT_FAIL;
    return DTM_EXIT_OK;
}

/* Commits a change with its audit entry, or rolls back; prints why not. An exit code. */
static int finish(const struct dtm_conf *c, struct dtm_store *st, int rc, const char *action,
                  const char *target, const char *detail)
{
    if (rc == DTM_OK)
        rc = dtm_cli_audit(c, st, action, target, detail);
    if (rc == DTM_OK)
        rc = st->ops->commit(st);
    if (rc) {
        st->ops->rollback(st);
        dtm_cli_error("cannot change user %s (%s)", target, dtm_rc_name(rc));
        return DTM_EXIT_FAIL;
    }
    return DTM_EXIT_OK;
}

static int add(int argc, char **argv)
{
    static const char usage[] =
        "dtm user add --username U --role admin|operator|analyst|auditor [--json]";
    const char *username = NULL, *role = NULL;
    struct dtm_cli_opt opts[] = {{"username", &username, NULL}, {"role", &role, NULL}};
    struct dtm_cli_common com;
    const char *pos[1];
    size_t npos;
    struct dtm_conf c;
    struct dtm_store *st;
    struct dtm_cli_out out = {0};
    char pw[32], hash[160], d[64];
    int rc = dtm_cli_parse(argc, argv, opts, DTM_ARRAY_LEN(opts), &com, pos, 0, &npos, usage);
    if (rc)
        return rc;
    if (com.help) {
        printf("usage: %s\n", usage);
        return DTM_EXIT_OK;
    }
    if (!username || !dtm_username_valid(username)) {
        dtm_cli_error("--username needs 1 to 63 characters: lower-case letters, digits, '.', '_' "
                      "or '-', starting with a letter or digit\nusage: %s",
                      usage);
        return DTM_EXIT_USAGE;
    }
    if (!role || !dtm_role_valid(role)) {
        dtm_cli_error("--role must be admin, operator, analyst or auditor\nusage: %s", usage);
        return DTM_EXIT_USAGE;
    }
    if (open_user(com.data_dir, &c, &st))
        return DTM_EXIT_FAIL;
    if (dtm_password_random(pw, sizeof(pw), RANDOM_PASSWORD_LEN) ||
        dtm_password_hash(pw, hash, sizeof(hash))) {
        st->ops->close(st);
        dtm_cli_error("cannot make a password");
        return DTM_EXIT_FAIL;
    }
    if ((rc = st->ops->begin(st)) == DTM_OK)
        rc = st->ops->user_add(st, username, role, hash, dtm_now_us());
    if (rc == DTM_EEXIST) {
        st->ops->rollback(st);
        st->ops->close(st);
        OPENSSL_cleanse(pw, sizeof(pw));
        dtm_cli_error("user %s exists already", username);
        return DTM_EXIT_FAIL;
    }
    snprintf(d, sizeof(d), "{\"role\":\"%s\"}", role);
    rc = finish(&c, st, rc, "user.created", username, d);
    st->ops->close(st);
    if (rc == DTM_EXIT_OK) {
        dtm_cli_out_add(&out, "username", username);
        dtm_cli_out_add(&out, "role", role);
        dtm_cli_out_add(&out, "password", pw);
        dtm_cli_out_print(&out, com.json);
    }
    OPENSSL_cleanse(pw, sizeof(pw));
    OPENSSL_cleanse(&out, sizeof(out));
    return rc;
}

struct list_ctx {
    bool json;
    size_t n;
};

static int list_one(void *ctx, const struct dtm_user *u)
{
    struct list_ctx *x = ctx;
    char ts[40];
    dtm_time_fmt(u->created_at, ts, sizeof(ts));
    if (x->json)
        printf("%s{\"username\":\"%s\",\"role\":\"%s\",\"disabled\":%s,\"mfa_enrolled\":%s,"
               "\"created_at\":\"%s\"}",
               x->n ? "," : "", u->username, u->role, u->disabled ? "true" : "false",
               u->mfa_enabled ? "true" : "false", ts);
    else
        printf("%-24s %-9s %-9s %-4s %s\n", u->username, u->role,
               u->disabled ? "disabled" : "active", u->mfa_enabled ? "mfa" : "-", ts);
    x->n++;
    return DTM_OK;
}

static int list(int argc, char **argv)
{
    static const char usage[] = "dtm user list [--json]";
    struct dtm_cli_common com;
    const char *pos[1];
    size_t npos;
    struct dtm_conf c;
    struct dtm_store *st;
    struct list_ctx x = {0};
    int rc = dtm_cli_parse(argc, argv, NULL, 0, &com, pos, 0, &npos, usage);
    if (rc)
        return rc;
    if (com.help) {
        printf("usage: %s\n", usage);
        return DTM_EXIT_OK;
    }
    if (open_user(com.data_dir, &c, &st))
        return DTM_EXIT_FAIL;
    x.json = com.json;
    if (x.json)
        fputc('[', stdout);
    else
        printf("%-24s %-9s %-9s %-4s %s\n", "USERNAME", "ROLE", "STATE", "MFA", "CREATED");
    rc = st->ops->user_list(st, list_one, &x);
    st->ops->close(st);
    if (x.json)
        fputs("]\n", stdout);
    if (rc) {
        dtm_cli_error("cannot list the users (%s)", dtm_rc_name(rc));
        return DTM_EXIT_FAIL;
    }
    return DTM_EXIT_OK;
}

enum change { C_PASSWD, C_DISABLE, C_ENABLE, C_RESET_MFA };

/* passwd, disable, enable, reset-mfa: --username U */
static int change(int argc, char **argv, enum change what)
{
    static const char *const usages[] = {
        "dtm user passwd --username U [--json]", "dtm user disable --username U",
        "dtm user enable --username U", "dtm user reset-mfa --username U"};
    static const char *const actions[] = {"user.password_reset", "user.disabled", "user.enabled",
                                          "mfa.reset"};
    const char *usage = usages[what], *username = NULL;
    struct dtm_cli_opt opts[] = {{"username", &username, NULL}};
    struct dtm_cli_common com;
    const char *pos[1];
    size_t npos;
    struct dtm_conf c;
    struct dtm_store *st;
    struct dtm_user u;
    struct dtm_cli_out out = {0};
    char pw[32] = "";
    int rc = dtm_cli_parse(argc, argv, opts, DTM_ARRAY_LEN(opts), &com, pos, 0, &npos, usage);
    if (rc)
        return rc;
    if (com.help) {
        printf("usage: %s\n", usage);
        return DTM_EXIT_OK;
    }
    if (!username || !*username) {
        dtm_cli_error("--username is required\nusage: %s", usage);
        return DTM_EXIT_USAGE;
    }
    if (open_user(com.data_dir, &c, &st))
        return DTM_EXIT_FAIL;
    if ((rc = st->ops->begin(st)) == DTM_OK)
        rc = st->ops->user_get(st, username, &u);
    if (rc == DTM_ENOTFOUND) {
        st->ops->rollback(st);
        st->ops->close(st);
        dtm_cli_error("there is no user '%s'; `dtm user list` lists them", username);
        return DTM_EXIT_FAIL;
    }
    if (rc == DTM_OK) {
        switch (what) {
        case C_PASSWD:
            if (dtm_password_random(pw, sizeof(pw), RANDOM_PASSWORD_LEN) ||
                dtm_password_hash(pw, u.password_hash, sizeof(u.password_hash)))
                rc = DTM_EINTERNAL;
            u.password_changed_at = dtm_now_us();
            break;
        case C_DISABLE:
            u.disabled = true;
            break;
        case C_ENABLE:
            u.disabled = false;
            break;
        case C_RESET_MFA:
            u.mfa_enabled = false;
            u.mfa_secret_len = 0;
            break;
        }
    }
    if (rc == DTM_OK)
        rc = st->ops->user_update(st, &u);
    /* a new password, a disabled account or a reset MFA: every session of the account ends */
    if (rc == DTM_OK && what != C_ENABLE)
        rc = st->ops->session_delete_user(st, u.username, NULL);
    if (rc == DTM_OK && what == C_RESET_MFA)
        rc = st->ops->recovery_set(st, u.username, NULL, 0);
    rc = finish(&c, st, rc, actions[what], u.username, NULL);
    st->ops->close(st);
    if (rc == DTM_EXIT_OK && what == C_PASSWD) {
        dtm_cli_out_add(&out, "username", u.username);
        dtm_cli_out_add(&out, "password", pw);
        dtm_cli_out_print(&out, com.json);
    } else if (rc == DTM_EXIT_OK && !com.json) {
        static const char *const done[] = {"", "disabled", "enabled", "MFA reset"};
        printf("user %s: %s\n", u.username, done[what]);
    } else if (rc == DTM_EXIT_OK) {
        printf("{\"username\":\"%s\",\"done\":\"%s\"}\n", u.username, actions[what]);
    }
    OPENSSL_cleanse(pw, sizeof(pw));
    OPENSSL_cleanse(&out, sizeof(out));
    OPENSSL_cleanse(&u, sizeof(u));
    return rc;
}

int dtm_cmd_user(int argc, char **argv)
{
    if (argc >= 1 && !strcmp(argv[0], "add"))
        return add(argc - 1, argv + 1);
    if (argc >= 1 && !strcmp(argv[0], "list"))
        return list(argc - 1, argv + 1);
    if (argc >= 1 && !strcmp(argv[0], "passwd"))
        return change(argc - 1, argv + 1, C_PASSWD);
    if (argc >= 1 && !strcmp(argv[0], "disable"))
        return change(argc - 1, argv + 1, C_DISABLE);
    if (argc >= 1 && !strcmp(argv[0], "enable"))
        return change(argc - 1, argv + 1, C_ENABLE);
    if (argc >= 1 && !strcmp(argv[0], "reset-mfa"))
        return change(argc - 1, argv + 1, C_RESET_MFA);
    dtm_cli_error("usage: dtm user add|list|passwd|disable|enable|reset-mfa …; `dtm help user` "
                  "says more");
    return DTM_EXIT_USAGE;
}
