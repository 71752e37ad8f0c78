/* cli/subscription.c — `dtm subscription list [--system C] [--json]`: the consumers'
 * subscriptions (F3; share/) for operators — dataset, interval, cursor, deliveries, the last
 * error — read from the store (a server may be running). Never their secrets. */
#include "cli/cli.h"
#include "share/share.h"

#include <stdio.h>
#include <string.h>

static int list_one(void *ctx, const struct dtm_subscription *sub)
{
    struct dtm_cli_list *x = ctx;
    char cursor[40];
    if (x->json) {
        dtm_cli_list_item(x);
        dtm_sub_json(&x->b, sub);
        return x->b.err;
    }
    dtm_time_fmt(sub->next_bucket, cursor, sizeof(cursor));
    dtm_buf_printf(&x->b, "%-30s %-16s %-16s %-5s %-30s %8lld %s\n", sub->id, sub->system_code,
                   sub->dataset, sub->interval, cursor, (long long)sub->delivered,
                   sub->last_error[0] ? sub->last_error : "-");
    return x->b.err;
}

static int list(int argc, char **argv)
{
    static const char usage[] = "dtm subscription list [--system C] [--json]";
    const char *code = NULL;
    struct dtm_cli_opt opts[] = {{"system", &code, NULL}};
    struct dtm_cli_common com;
    const char *pos[1];
    size_t npos;
    struct dtm_conf c;
    struct dtm_store *st;
    struct dtm_cli_list x;
    char head[160];
    int rc = dtm_cli_parse(argc, argv, opts, DTM_ARRAY_LEN(opts), &com, pos, 0, &npos, usage);
    if (rc)
        return rc;
    if (com.help) {
        printf("usage: %s\n", usage);
        return DTM_EXIT_OK;
    }
    if (dtm_cli_load_conf(com.data_dir, NULL, &c) || dtm_cli_open_store(&c, &st))
        return DTM_EXIT_FAIL;
    snprintf(head, sizeof(head), "%-30s %-16s %-16s %-5s %-30s %8s %s\n", "ID", "SYSTEM", "DATASET",
             "EVERY", "CURSOR (NEXT BUCKET)", "SENT", "LAST ERROR");
    dtm_cli_list_begin(&x, com.json, head);
    return dtm_cli_list_end(&x, st, st->ops->subscription_list(st, code, list_one, &x),
                            "the subscriptions");
}

int dtm_cmd_subscription(int argc, char **argv)
{
    if (argc >= 1 && !strcmp(argv[0], "list"))
        return list(argc - 1, argv + 1);
    dtm_cli_error("usage: dtm subscription list [--system C] [--json]");
    return DTM_EXIT_USAGE;
}
