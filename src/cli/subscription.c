/* cli/subscription.c — `dtm subscription list [--system C] [--json]`: the consumers'
 * subscriptions (F3; share/) for operators — dataset, interval, cursor, deliveries, the last
 * error — read from the store (a server may be running). Never their secrets. */
#include "cli/cli.h"
#include "share/share.h"

#include <stdio.h>
#include <string.h>

struct list_ctx {
    struct dtm_buf *b;
    bool json;
    int n;
};

static int list_one(void *ctx, const struct dtm_subscription *sub)
{
    struct list_ctx *x = ctx;
    char cursor[40];
    if (x->json) {
        dtm_buf_addc(x->b, x->n++ ? ",\n" : "\n");
        dtm_sub_json(x->b, sub);
        return x->b->err;
    }
    dtm_time_fmt(sub->next_bucket, cursor, sizeof(cursor));
    dtm_buf_printf(x->b, "%-30s %-16s %-16s %-5s %-30s %8lld %s\n", sub->id, sub->system_code,
                   sub->dataset, sub->interval, cursor, (long long)sub->delivered,
                   sub->last_error[0] ? sub->last_error : "-");
    return x->b->err;
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
    struct dtm_buf b;
    struct list_ctx x;
    int rc = dtm_cli_parse(argc, argv, opts, DTM_ARRAY_LEN(opts), &com, pos, 0, &npos, usage);
    if (rc)
        return rc;
    if (com.help) {
        printf("usage: %s\n", usage);
        return DTM_EXIT_OK;
    }
    if (dtm_cli_load_conf(com.data_dir, NULL, &c) || dtm_cli_open_store(&c, &st))
        return DTM_EXIT_FAIL;
    dtm_buf_init(&b, 256 << 20);
    x = (struct list_ctx){&b, com.json, 0};
    if (com.json)
        dtm_buf_addch(&b, '[');
    else
        dtm_buf_printf(&b, "%-30s %-16s %-16s %-5s %-30s %8s %s\n", "ID", "SYSTEM", "DATASET",
                       "EVERY", "CURSOR (NEXT BUCKET)", "SENT", "LAST ERROR");
    rc = st->ops->subscription_list(st, code, list_one, &x);
    if (com.json)
        dtm_buf_addc(&b, x.n ? "\n]\n" : "]\n");
    st->ops->close(st);
    if (rc || b.err) {
        dtm_buf_free(&b);
        dtm_cli_error("cannot list the subscriptions");
        return DTM_EXIT_FAIL;
    }
    fputs(b.p ? b.p : "", stdout);
    dtm_buf_free(&b);
    return DTM_EXIT_OK;
}

int dtm_cmd_subscription(int argc, char **argv)
{
    if (argc >= 1 && !strcmp(argv[0], "list"))
        return list(argc - 1, argv + 1);
    dtm_cli_error("usage: dtm subscription list [--system C] [--json]");
    return DTM_EXIT_USAGE;
}
