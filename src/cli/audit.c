/* cli/audit.c — `dtm audit verify|list` (CONTRACT §1; S3, D6) for auditors on the machine, and
 * the helper with which other commands append their entry to the audit trail inside their own
 * transaction (audit/audit.h). `verify` recomputes the whole hash chain: exit 0 and "audit: N
 * entries, chain intact", or exit 1 naming the first broken entry. (GET /api/v1/audit comes with
 * people and the auditor role: no connected system may read the trail.) */
#include "audit/audit.h"
#include "cli/cli.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

/* The audit key of a data dir (from its master key). Prints why not. */
static int load_key(const struct dtm_conf *c, uint8_t key[32])
{
    struct dtm_keyring kr;
    char path[DTM_PATH_MAX], err[512];
    dtm_conf_path(c, "master.key", path, sizeof(path));
    if (dtm_keyring_load(path, &kr, err, sizeof(err))) {
        dtm_cli_error("%s", err);
        return DTM_EINVAL;
    }
    memcpy(key, kr.audit_key, 32);
    dtm_keyring_wipe(&kr);
    return DTM_OK;
}

int dtm_cli_audit(const struct dtm_conf *c, struct dtm_store *st, const char *action,
                  const char *target, const char *detail)
{
    uint8_t key[32];
    char user[128];
    struct dtm_audit_event ev = {"cli", user, action, target, detail, NULL};
    int rc;
    if ((rc = load_key(c, key)))
        return rc;
    dtm_audit_os_user(user, sizeof(user));
    rc = dtm_audit_append(st, key, &ev, NULL);
    OPENSSL_cleanse(key, sizeof(key));
    return rc;
}

int dtm_cli_audited(const struct dtm_conf *c, struct dtm_store *st, dtm_cli_txn_fn fn, void *ctx,
                    const char *action, const char *target, const char *detail)
{
    int rc = st->ops->begin(st);
    if (rc)
        return rc;
    if (!(rc = fn(st, ctx)) && !(rc = dtm_cli_audit(c, st, action, target, detail)))
        rc = st->ops->commit(st);
    if (rc)
        st->ops->rollback(st);
    return rc;
}

struct head_ctx {
    int64_t seq;
    uint8_t hash[32];
    bool found;
};

static int head_one(void *ctx, const struct dtm_audit_entry *e)
{
    struct head_ctx *h = ctx;
    if (e->seq == h->seq) {
        h->found = true;
        memcpy(h->hash, e->hash, 32);
    }
    return 1;
}

/* --head SEQ:HASH, a chain head the server logged: the trail must still hold entry SEQ with
 * that hash. A trail cut after a logged head is still a valid chain; this finds the cut. Prints
 * why not; an exit code. */
static int check_head(struct dtm_store *st, const char *arg, const struct dtm_audit_verify *v)
{
    struct head_ctx h = {0};
    uint8_t want[32];
    const char *colon = strchr(arg, ':');
    char hex[65];
    if (!colon || dtm_str_to_i64((struct dtm_str){arg, (size_t)(colon - arg)}, &h.seq) ||
        h.seq < 1 || strlen(colon + 1) != 64) {
        dtm_cli_error("--head takes SEQ:HASH as logged by the server (\"audit chain head\")");
        return DTM_EXIT_USAGE;
    }
    for (size_t i = 0; i < 32; i++) {
        unsigned hi, lo;
        const char *x = colon + 1 + 2 * i;
        static const char digits[] = "0123456789abcdef";
        const char *a = strchr(digits, x[0] | 0x20), *b = strchr(digits, x[1] | 0x20);
        if (!a || !b || !x[0] || !x[1]) {
            dtm_cli_error("--head takes SEQ:HASH with a hash of 64 hex digits");
            return DTM_EXIT_USAGE;
        }
        hi = (unsigned)(a - digits);
        lo = (unsigned)(b - digits);
        want[i] = (uint8_t)(hi << 4 | lo);
    }
    if (h.seq > v->head_seq) {
        dtm_cli_error("audit: the trail ends at entry %lld, but the server logged entry %lld as "
                      "its head: entries %lld to %lld were removed (truncated)",
                      (long long)v->head_seq, (long long)h.seq, (long long)v->head_seq + 1,
                      (long long)h.seq);
        return DTM_EXIT_FAIL;
    }
    if (st->ops->audit_list(st, NULL, h.seq - 1, 1, head_one, &h) < 0 || !h.found) {
        dtm_cli_error("cannot read entry %lld of the audit trail", (long long)h.seq);
        return DTM_EXIT_FAIL;
    }
    if (!dtm_ct_equal(h.hash, want, 32)) {
        dtm_hex(h.hash, 32, hex);
        dtm_cli_error("audit: entry %lld has hash %s, not the one the server logged: the trail was "
                      "rewritten",
                      (long long)h.seq, hex);
        return DTM_EXIT_FAIL;
    }
    return DTM_EXIT_OK;
}

static int verify(int argc, char **argv)
{
    static const char usage[] = "dtm audit verify [--head SEQ:HASH]";
    const char *head = NULL;
    struct dtm_cli_opt opts[] = {{"head", &head, NULL}};
    struct dtm_cli_common com;
    const char *pos[1];
    size_t npos;
    struct dtm_conf c;
    struct dtm_store *st;
    struct dtm_audit_verify v;
    uint8_t key[32];
    char what[256], hex[65];
    int rc = dtm_cli_parse(argc, argv, opts, DTM_ARRAY_LEN(opts), &com, pos, 0, &npos, usage);
    if (rc)
        return rc;
    if (com.help) {
        printf("usage: %s\n", usage);
        return DTM_EXIT_OK;
    }
    if (dtm_cli_load_conf(com.data_dir, NULL, &c) || load_key(&c, key))
        return DTM_EXIT_FAIL;
    if (dtm_cli_open_store(&c, &st)) {
        OPENSSL_cleanse(key, sizeof(key));
        return DTM_EXIT_FAIL;
    }
    rc = dtm_audit_verify(st, key, &v);
    OPENSSL_cleanse(key, sizeof(key));
    if (rc) {
        st->ops->close(st);
        dtm_cli_error("cannot read the audit trail (%s)", dtm_rc_name(rc));
        return DTM_EXIT_FAIL;
    }
    dtm_audit_verify_describe(&v, what, sizeof(what));
    if (v.broken != DTM_AUDIT_INTACT) {
        st->ops->close(st);
        dtm_cli_error("audit: %s; %lld entries before it are intact", what, (long long)v.entries);
        return DTM_EXIT_FAIL;
    }
    rc = head ? check_head(st, head, &v) : DTM_EXIT_OK;
    st->ops->close(st);
    if (rc)
        return rc;
    dtm_hex(v.head_hash, 32, hex);
    printf("audit: %s\nhead: seq %lld hash %s\n", what, (long long)v.head_seq, hex);
    return DTM_EXIT_OK;
}

struct list_ctx {
    struct dtm_buf *b;
    bool json;
    int64_t n, last;
};

static int list_one(void *ctx, const struct dtm_audit_entry *e)
{
    struct list_ctx *x = ctx;
    x->last = e->seq;
    return dtm_audit_entry_format(x->b, e, x->json, x->n++ == 0, "\n");
}

#define LIST_PAGE 1000

static int list(int argc, char **argv)
{
    static const char usage[] = "dtm audit list [--from T] [--to T] [--actor A] [--action A] "
                                "[--format csv|json]";
    const char *from = NULL, *to = NULL, *actor = NULL, *action = NULL, *format = NULL;
    struct dtm_cli_opt opts[] = {{"from", &from, NULL},
                                 {"to", &to, NULL},
                                 {"actor", &actor, NULL},
                                 {"action", &action, NULL},
                                 {"format", &format, NULL}};
    struct dtm_cli_common com;
    const char *pos[1];
    size_t npos;
    struct dtm_conf c;
    struct dtm_store *st;
    struct dtm_audit_filter f = {INT64_MIN, INT64_MAX, NULL, NULL};
    struct dtm_buf b;
    struct list_ctx x;
    int rc = dtm_cli_parse(argc, argv, opts, DTM_ARRAY_LEN(opts), &com, pos, 0, &npos, usage);
    if (rc)
        return rc;
    if (com.help) {
        printf("usage: %s\n", usage);
        return DTM_EXIT_OK;
    }
    if (format && strcmp(format, "csv") && strcmp(format, "json")) {
        dtm_cli_error("--format must be csv or json\nusage: %s", usage);
        return DTM_EXIT_USAGE;
    }
    if ((from && dtm_time_bound_parse(dtm_str_c(from), false, &f.from)) ||
        (to && dtm_time_bound_parse(dtm_str_c(to), true, &f.to))) {
        dtm_cli_error("--from and --to take a date (2026-10-05) or an RFC 3339 time "
                      "(2026-10-05T08:30:00+07:00)");
        return DTM_EXIT_USAGE;
    }
    f.actor = actor;
    f.action = action;
    if (dtm_cli_load_conf(com.data_dir, NULL, &c) || dtm_cli_open_store(&c, &st))
        return DTM_EXIT_FAIL;
    dtm_buf_init(&b, 64 << 20);
    x = (struct list_ctx){&b, com.json || (format && !strcmp(format, "json")), 0, 0};
    if (x.json)
        fputc('[', stdout);
    else
        fputs("seq,at,actor_kind,actor,action,target,detail,source_ip,hash\n", stdout);
    for (;;) {
        int64_t n0 = x.n;
        dtm_buf_reset(&b);
        rc = st->ops->audit_list(st, &f, x.last, LIST_PAGE, list_one, &x);
        if (rc || b.err)
            break;
        fwrite(b.p ? b.p : "", 1, b.n, stdout);
        if (x.n - n0 < LIST_PAGE)
            break;
    }
    st->ops->close(st);
    dtm_buf_free(&b);
    if (rc) {
        dtm_cli_error("cannot read the audit trail (%s)", dtm_rc_name(rc));
        return DTM_EXIT_FAIL;
    }
    if (x.json)
        fputs(x.n ? "\n]\n" : "]\n", stdout);
    return fflush(stdout) == 0 ? DTM_EXIT_OK : DTM_EXIT_FAIL;
}

int dtm_cmd_audit(int argc, char **argv)
{
    if (argc >= 1 && !strcmp(argv[0], "verify"))
        return verify(argc - 1, argv + 1);
    if (argc >= 1 && !strcmp(argv[0], "list"))
        return list(argc - 1, argv + 1);
    dtm_cli_error("usage: dtm audit verify|list …; `dtm help audit` says more");
    return DTM_EXIT_USAGE;
}
