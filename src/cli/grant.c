/* cli/grant.c — `dtm grant add|revoke|list`: the datasets a connected system may read (CONTRACT
 * §3: a `consumer` reads only the datasets it is granted, through GET /api/v1/stats/{dataset}
 * and GET /api/v1/datasets/{dataset}/records). Takes effect on the next request of a running
 * server (grants are read from the store on each request, not cached).
 *
 * A grant to a source or an aggregator is stored but changes nothing while it has that role
 * (those read their own — and their children's — records of every dataset): the command says so
 * on stderr and succeeds, so that a grant given ahead of a role change is not refused.
 * Exit codes: an unknown dataset is a usage error (2, as for import and export); an unknown
 * system or a revoke of a grant that does not exist is a failure (1, as for `dtm key rotate`). */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

/* Checks the system exists (and gets it) and the dataset is known; prints why not. An exit
 * code. */
static int check(struct dtm_store *st, const char *code, const char *dataset, bool need_dataset,
                 struct dtm_system *sys)
{
    struct dtm_dict *dict;
    int rc = st->ops->system_get(st, code, sys);
    if (rc == DTM_ENOTFOUND) {
        dtm_cli_error("there is no system '%s'; `dtm system list` lists them", code);
        return DTM_EXIT_FAIL;
    }
    if (rc) {
        dtm_cli_error("cannot read the system %s (%s)", code, dtm_rc_name(rc));
        return DTM_EXIT_FAIL;
    }
    if (!need_dataset)
        return DTM_EXIT_OK;
    if (!(dict = dtm_cli_dict(st))) {
        dtm_cli_error("cannot load the data dictionary");
        return DTM_EXIT_FAIL;
    }
    rc = dtm_dict_get(dict, dtm_str_c(dataset)) ? DTM_EXIT_OK : DTM_EXIT_USAGE;
    dtm_dict_destroy(dict);
    if (rc)
        dtm_cli_error("there is no dataset '%s'; GET /api/v1/datasets lists them", dataset);
    return rc;
}

/* The audit entry of a grant added or revoked (target: the system). */
static int audit(const struct dtm_conf *c, struct dtm_store *st, bool add, const char *code,
                 const char *dataset, const struct dtm_system *sys)
{
    struct dtm_buf d;
    int rc;
    dtm_buf_init(&d, DTM_AUDIT_DETAIL_MAX - 1);
    dtm_buf_addc(&d, "{\"dataset\":");
    dtm_buf_json_strc(&d, dataset);
    dtm_buf_addc(&d, ",\"role\":");
    dtm_buf_json_strc(&d, sys->role);
    dtm_buf_addch(&d, '}');
    rc = d.err ? d.err : dtm_cli_audit(c, st, add ? "grant.added" : "grant.revoked", code, d.p);
    dtm_buf_free(&d);
    return rc;
}

/* add and revoke: --system C --dataset D */
static int change(int argc, char **argv, bool add)
{
    const char *usage = add ? "dtm grant add --system C --dataset D [--json]"
                            : "dtm grant revoke --system C --dataset D [--json]";
    const char *code = NULL, *dataset = NULL;
    struct dtm_cli_opt opts[] = {{"system", &code, NULL}, {"dataset", &dataset, NULL}};
    struct dtm_cli_common com;
    const char *pos[1];
    size_t npos;
    struct dtm_conf c;
    struct dtm_store *st;
    struct dtm_system sys;
    struct dtm_cli_out out = {0};
    int rc = dtm_cli_parse(argc, argv, opts, DTM_ARRAY_LEN(opts), &com, pos, 0, &npos, usage);
    if (rc)
        return rc;
    if (com.help) {
        printf("usage: %s\n", usage);
        return DTM_EXIT_OK;
    }
    if (!code || !dataset) {
        dtm_cli_error("%s is required\nusage: %s", !code ? "--system" : "--dataset", usage);
        return DTM_EXIT_USAGE;
    }
    if (dtm_cli_load_conf(com.data_dir, NULL, &c) || dtm_cli_open_store(&c, &st))
        return DTM_EXIT_FAIL;
    /* a revoke may name a dataset that has left the dictionary since the grant */
    if ((rc = check(st, code, dataset, add, &sys))) {
        st->ops->close(st);
        return rc;
    }
    /* S3: the change and its audit entry commit together (none when nothing changed) */
    if ((rc = st->ops->begin(st)) == DTM_OK) {
        rc = add ? st->ops->grant_put(st, code, dataset, dtm_now_us())
                 : st->ops->grant_delete(st, code, dataset);
        if (rc == DTM_OK)
            rc = audit(&c, st, add, code, dataset, &sys);
        if (rc == DTM_OK)
            rc = st->ops->commit(st);
        if (rc)
            st->ops->rollback(st);
    }
    st->ops->close(st);
    if (add && rc == DTM_EEXIST) {
        rc = DTM_OK; /* granting twice is granting */
        fprintf(stderr, "dtm: system %s was already granted dataset %s\n", code, dataset);
    }
    if (!add && rc == DTM_ENOTFOUND) {
        dtm_cli_error("system %s has no grant of dataset %s; `dtm grant list --system %s` lists "
                      "its grants",
                      code, dataset, code);
        return DTM_EXIT_FAIL;
    }
    if (rc) {
        dtm_cli_error("cannot %s the grant (%s)", add ? "store" : "remove", dtm_rc_name(rc));
        return DTM_EXIT_FAIL;
    }
    if (add && strcmp(sys.role, "consumer") != 0)
        fprintf(stderr,
                "dtm: note: system %s has role %s; grants matter to consumers only (a %s reads "
                "its own%s records of every dataset)\n",
                code, sys.role, sys.role,
                strcmp(sys.role, "aggregator") == 0 ? " and its children's" : "");
    dtm_cli_out_add(&out, "system_code", code);
    dtm_cli_out_add(&out, "dataset", dataset);
    dtm_cli_out_add(&out, add ? "granted" : "revoked", "true");
    dtm_cli_out_print(&out, com.json);
    return DTM_EXIT_OK;
}

static int list_one(void *ctx, const struct dtm_grant *g)
{
    struct dtm_cli_list *x = ctx;
    struct dtm_buf *b = &x->b;
    char ts[40];
    dtm_time_fmt(g->granted_at, ts, sizeof(ts));
    if (!x->json) {
        dtm_buf_printf(b, "%-20s %-20s %s\n", g->system_code, g->dataset, ts);
        return b->err;
    }
    dtm_cli_list_item(x);
    dtm_buf_addc(b, "{\"system_code\":");
    dtm_buf_json_strc(b, g->system_code);
    dtm_buf_addc(b, ",\"dataset\":");
    dtm_buf_json_strc(b, g->dataset);
    dtm_buf_printf(b, ",\"granted_at\":\"%s\"}", ts);
    return b->err;
}

static int list(int argc, char **argv)
{
    static const char usage[] = "dtm grant list [--system C] [--json]";
    const char *code = NULL;
    struct dtm_cli_opt opts[] = {{"system", &code, NULL}};
    struct dtm_cli_common com;
    const char *pos[1];
    size_t npos;
    struct dtm_conf c;
    struct dtm_store *st;
    struct dtm_system sys;
    struct dtm_cli_list x;
    int rc = dtm_cli_parse(argc, argv, opts, DTM_ARRAY_LEN(opts), &com, pos, 0, &npos, usage);
    if (rc)
        return rc;
    if (com.help) {
        printf("usage: %s\n", usage);
        return DTM_EXIT_OK;
    }
    if (dtm_cli_load_conf(com.data_dir, NULL, &c) || dtm_cli_open_store(&c, &st))
        return DTM_EXIT_FAIL;
    if (code && (rc = check(st, code, NULL, false, &sys))) {
        st->ops->close(st);
        return rc;
    }
    dtm_cli_list_begin(&x, com.json, NULL);
    return dtm_cli_list_end(&x, st, st->ops->grant_list(st, code, list_one, &x), "the grants");
}

int dtm_cmd_grant(int argc, char **argv)
{
    if (argc >= 1 && !strcmp(argv[0], "add"))
        return change(argc - 1, argv + 1, true);
    if (argc >= 1 && !strcmp(argv[0], "revoke"))
        return change(argc - 1, argv + 1, false);
    if (argc >= 1 && !strcmp(argv[0], "list"))
        return list(argc - 1, argv + 1);
    dtm_cli_error("usage: dtm grant add|revoke|list …; `dtm help grant` says more");
    return DTM_EXIT_USAGE;
}
