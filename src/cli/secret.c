/* cli/secret.c — `dtm secret set|list|delete` (T4.2): the secrets that alert channels use (a
 * webhook's signing key, an SMTP password) kept sealed under the data keys in the store instead
 * of in clear in dtm.conf, which names them as store:NAME. A value is read from standard input
 * (never from the command line, which other users of the machine can see in ps and which lands
 * in shell histories) or generated (--generate, printed once). Each change commits with its
 * audit entry; the value never appears in the audit trail or a log. A running server reads a
 * secret at each delivery, so a change applies from the next alert. */
#include "cli/cli.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define VALUE_MAX 255 /* the longest channel secret (struct dtm_conf_channel) */

/* The value from standard input: up to VALUE_MAX bytes, one trailing newline removed. */
static int read_value(char *out, size_t outsz)
{
    size_t n = fread(out, 1, outsz - 1, stdin);
    int extra = n == outsz - 1 ? getchar() : EOF;
    out[n] = '\0';
    if (n && out[n - 1] == '\n' && extra == EOF)
        out[--n] = '\0';
    if (n && out[n - 1] == '\r')
        out[--n] = '\0';
    if (extra != EOF && !(extra == '\n' && getchar() == EOF)) {
        dtm_cli_error("the secret is longer than %d bytes", VALUE_MAX);
        return DTM_EXIT_USAGE;
    }
    if (!n || memchr(out, '\0', n) || strchr(out, '\n')) {
        dtm_cli_error("the secret must be one non-empty line on standard input");
        return DTM_EXIT_USAGE;
    }
    return DTM_EXIT_OK;
}

struct change_ctx {
    const char *name;
    const struct dtm_buf *blob; /* the sealed value; NULL = delete */
};

static int change_txn(struct dtm_store *st, void *ctx)
{
    const struct change_ctx *x = ctx;
    return x->blob ? st->ops->secret_put(st, x->name, (const uint8_t *)x->blob->p, x->blob->n,
                                         dtm_now_us())
                   : st->ops->secret_delete(st, x->name);
}

/* One change (put when value, else delete) and its audit entry, in one transaction. */
static int change(const struct dtm_conf *c, const char *name, const char *value)
{
    struct dtm_store *st;
    struct dtm_buf blob;
    int rc;
    dtm_buf_init(&blob, 4096);
    if (dtm_cli_open_store(c, &st))
        return DTM_EXIT_FAIL;
    /* sealed before the transaction: the first seal of a process may take one of its own */
    rc = value ? dtm_secret_seal(dtm_datakeys_get(c), name, value, &blob) : DTM_OK;
    if (rc == DTM_OK)
        rc = dtm_cli_audited(c, st, change_txn, &(struct change_ctx){name, value ? &blob : NULL},
                             value ? "secret.set" : "secret.deleted", name, NULL);
    st->ops->close(st);
    dtm_buf_free(&blob);
    if (rc == DTM_ENOTFOUND) {
        dtm_cli_error("there is no secret named %s", name);
        return DTM_EXIT_FAIL;
    }
    if (rc) {
        dtm_cli_error("cannot %s the secret %s (%s)", value ? "store" : "delete", name,
                      dtm_rc_name(rc));
        return DTM_EXIT_FAIL;
    }
    return DTM_EXIT_OK;
}

struct list_ctx {
    bool json, first;
};

static int list_one(void *ctx, const char *name, int64_t updated_at)
{
    struct list_ctx *x = ctx;
    char t[40];
    dtm_time_fmt(updated_at, t, sizeof(t));
    if (x->json)
        printf("%s{\"name\":\"%s\",\"updated_at\":\"%s\"}", x->first ? "" : ",", name, t);
    else
        printf("%s\t%s\n", name, t);
    x->first = false;
    return 0;
}

int dtm_cmd_secret(int argc, char **argv)
{
    static const char usage[] =
        "dtm secret set NAME [--generate] [--json]   (the value from standard input)\n"
        "       dtm secret list [--json]\n"
        "       dtm secret delete NAME";
    bool generate = false;
    struct dtm_cli_opt opts[] = {{"generate", NULL, &generate}};
    struct dtm_cli_common com;
    const char *pos[2];
    size_t npos;
    struct dtm_conf c;
    char value[VALUE_MAX + 1];
    int rc = dtm_cli_parse(argc, argv, opts, DTM_ARRAY_LEN(opts), &com, pos, 2, &npos, usage);
    if (rc)
        return rc;
    if (com.help || !npos) {
        printf("usage: %s\n", usage);
        return com.help ? DTM_EXIT_OK : DTM_EXIT_USAGE;
    }
    if (strcmp(pos[0], "list") && (npos != 2 || !dtm_secret_name_ok(pos[1]))) {
        dtm_cli_error("name the secret: 1 to 63 letters, digits, '.', '-' or '_'\nusage: %s",
                      usage);
        return DTM_EXIT_USAGE;
    }
    if (!strcmp(pos[0], "list")) {
        struct dtm_store *st;
        struct list_ctx x = {com.json, true};
        if (npos != 1) {
            dtm_cli_error("usage: %s", usage);
            return DTM_EXIT_USAGE;
        }
        if (dtm_cli_load_conf(com.data_dir, NULL, &c) || dtm_cli_open_store(&c, &st))
            return DTM_EXIT_FAIL;
        if (com.json)
            printf("[");
        rc = st->ops->secret_list(st, list_one, &x);
        if (com.json)
            printf("]\n");
        st->ops->close(st);
        if (rc) {
            dtm_cli_error("cannot list the secrets (%s)", dtm_rc_name(rc));
            return DTM_EXIT_FAIL;
        }
        return DTM_EXIT_OK;
    }
    if (!strcmp(pos[0], "delete")) {
        if (dtm_cli_load_conf(com.data_dir, NULL, &c))
            return DTM_EXIT_FAIL;
        return change(&c, pos[1], NULL);
    }
    if (strcmp(pos[0], "set")) {
        dtm_cli_error("unknown action '%s'\nusage: %s", pos[0], usage);
        return DTM_EXIT_USAGE;
    }
    if (generate) {
        uint8_t raw[32];
        static const char hex[] = "0123456789abcdef";
        if (dtm_random(raw, sizeof(raw)))
            return DTM_EXIT_FAIL;
        for (size_t i = 0; i < sizeof(raw); i++) {
            value[2 * i] = hex[raw[i] >> 4];
            value[2 * i + 1] = hex[raw[i] & 15];
        }
        value[2 * sizeof(raw)] = '\0';
        OPENSSL_cleanse(raw, sizeof(raw));
    } else if ((rc = read_value(value, sizeof(value)))) {
        OPENSSL_cleanse(value, sizeof(value));
        return rc;
    }
    if (dtm_cli_load_conf(com.data_dir, NULL, &c)) {
        OPENSSL_cleanse(value, sizeof(value));
        return DTM_EXIT_FAIL;
    }
    rc = change(&c, pos[1], value);
    if (rc == DTM_EXIT_OK) {
        struct dtm_cli_out out = {0};
        char ref[80];
        snprintf(ref, sizeof(ref), "%s%s", DTM_SECRET_REF, pos[1]);
        dtm_cli_out_add(&out, "name", pos[1]);
        dtm_cli_out_add(&out, "config_value", ref);
        if (generate)
            dtm_cli_out_add(&out, "secret", value); /* printed once: the receiver needs it */
        dtm_cli_out_print(&out, com.json);
        OPENSSL_cleanse(&out, sizeof(out));
    }
    OPENSSL_cleanse(value, sizeof(value));
    return rc;
}
