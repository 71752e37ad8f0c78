/* cli/retention.c — `dtm retention run`: one retention pass now (jobs/retention.c): the
 * connection logs older than `[retention] connection_logs_days` (whole days, UTC+07:00) are
 * removed with their history and rollup rows. A running server does the same every day; this
 * command works beside it (SQLite serialises the writes). */
#include "cli/cli.h"
#include "jobs/jobs.h"

#include <stdio.h>
#include <string.h>

/* One retention.purged entry per dataset of the pass, in one transaction. Prints why not. */
static int audit(const struct dtm_conf *c, struct dtm_store *st,
                 const struct dtm_retention_result *res, size_t n, bool complete)
{
    int rc = st->ops->begin(st);
    for (size_t i = 0; i < n && rc == DTM_OK; i++) {
        char d[256], ts[40];
        dtm_time_fmt(res[i].before, ts, sizeof(ts));
        snprintf(d, sizeof(d),
                 "{\"dataset\":\"%s\",\"kept_days\":%lld,\"before\":\"%s\",\"removed\":%lld,"
                 "\"complete\":%s}",
                 res[i].dataset, (long long)res[i].days, ts, (long long)res[i].removed,
                 complete || i + 1 < n ? "true" : "false");
        rc = dtm_cli_audit(c, st, "retention.purged", res[i].dataset, d);
    }
    if (rc == DTM_OK)
        rc = st->ops->commit(st);
    if (rc) {
        st->ops->rollback(st);
        dtm_cli_error("cannot write the audit trail of the retention pass (%s)", dtm_rc_name(rc));
    }
    return rc;
}

static int run(int argc, char **argv)
{
    static const char usage[] = "dtm retention run [--json]";
    struct dtm_cli_common com;
    const char *pos[1];
    size_t npos, n = 0;
    struct dtm_conf c;
    struct dtm_store *st;
    struct dtm_retention_result res[8];
    int rc = dtm_cli_parse(argc, argv, NULL, 0, &com, pos, 0, &npos, usage);
    if (rc)
        return rc;
    if (com.help) {
        printf("usage: %s\n", usage);
        return DTM_EXIT_OK;
    }
    if (dtm_cli_load_conf(com.data_dir, NULL, &c) || dtm_cli_open_store(&c, &st))
        return DTM_EXIT_FAIL;
    rc = dtm_retention_run(st, &c, dtm_now_us(), res, DTM_ARRAY_LEN(res), &n);
    /* S3: what was removed is recorded, also by a pass that stopped half-way */
    if (audit(&c, st, res, n, rc == DTM_OK) && rc == DTM_OK)
        rc = DTM_ESTORE;
    st->ops->close(st);
    if (rc) {
        dtm_cli_error("the retention pass stopped (%s); what was removed before stays removed",
                      dtm_rc_name(rc));
        return DTM_EXIT_FAIL;
    }
    for (size_t i = 0; i < n; i++) {
        struct dtm_cli_out out = {0};
        char v[40];
        dtm_cli_out_add(&out, "dataset", res[i].dataset);
        snprintf(v, sizeof(v), "%lld", (long long)res[i].days);
        dtm_cli_out_add(&out, "kept_days", v);
        dtm_time_fmt(res[i].before, v, sizeof(v));
        dtm_cli_out_add(&out, "removed_before", v);
        snprintf(v, sizeof(v), "%lld", (long long)res[i].removed);
        dtm_cli_out_add(&out, "removed", v);
        dtm_cli_out_print(&out, com.json);
    }
    return DTM_EXIT_OK;
}

int dtm_cmd_retention(int argc, char **argv)
{
    if (argc >= 1 && !strcmp(argv[0], "run"))
        return run(argc - 1, argv + 1);
    dtm_cli_error("usage: dtm retention run; `dtm help retention` says more");
    return DTM_EXIT_USAGE;
}
