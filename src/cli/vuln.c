/* cli/vuln.c — `dtm vuln add|set|list`: the vulnerability register (T4.4) from the command line,
 * for operators without a session and for scripts. Each change commits with its audit entry
 * (actor: the OS user). A running server sees the change at its next check ([alert]
 * check_interval): an item past its deadline, neither fixed nor accepted, raises the alert
 * vuln.overdue; fixing it clears the alert. */
#include "alert/alert.h"
#include "audit/audit.h"
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Checks the options that were given; prints why not. An exit code. */
static int validate(const char *title, const char *severity, const char *found,
                    const char *deadline, const char *plan, const char *status)
{
    const char *why = NULL;
    if (title && (!*title || strlen(title) > 255 || strpbrk(title, "\r\n\t")))
        why = "--title must be one line of 1 to 255 bytes";
    else if (severity && !dtm_vuln_severity_ok(severity))
        why = "--severity must be low, medium, high or critical";
    else if (found && !dtm_vuln_date_ok(found))
        why = "--found must be a date YYYY-MM-DD";
    else if (deadline && !dtm_vuln_date_ok(deadline))
        why = "--deadline must be a date YYYY-MM-DD";
    else if (plan && strlen(plan) > 4095)
        why = "--plan must be at most 4095 bytes";
    else if (status && !dtm_vuln_status_ok(status))
        why = "--status must be open, in_progress, fixed or accepted";
    if (why) {
        dtm_cli_error("%s", why);
        return DTM_EXIT_USAGE;
    }
    return DTM_EXIT_OK;
}

static void print_item(const struct dtm_vuln *v, bool json)
{
    struct dtm_cli_out out = {0};
    char id[24];
    if (json) {
        struct dtm_buf b;
        dtm_buf_init(&b, 64 * 1024);
        dtm_vuln_json(&b, v);
        printf("%s\n", b.p ? b.p : "{}");
        dtm_buf_free(&b);
        return;
    }
    snprintf(id, sizeof(id), "%lld", (long long)v->id);
    dtm_cli_out_add(&out, "id", id);
    dtm_cli_out_add(&out, "title", v->title);
    dtm_cli_out_add(&out, "severity", v->severity);
    dtm_cli_out_add(&out, "found", v->found);
    dtm_cli_out_add(&out, "deadline", v->deadline);
    dtm_cli_out_add(&out, "status", v->status);
    dtm_cli_out_print(&out, false);
}

static int audit(const struct dtm_conf *c, struct dtm_store *st, const struct dtm_vuln *v,
                 bool create)
{
    struct dtm_buf d;
    char target[32];
    int rc;
    snprintf(target, sizeof(target), "vulnerability:%lld", (long long)v->id);
    dtm_buf_init(&d, DTM_AUDIT_DETAIL_MAX - 1);
    dtm_buf_addc(&d, "{\"title\":");
    dtm_buf_json_strc(&d, v->title);
    dtm_buf_printf(&d, ",\"severity\":\"%s\",\"deadline\":\"%s\",\"status\":\"%s\"}", v->severity,
                   v->deadline, v->status);
    rc = d.err ? d.err
               : dtm_cli_audit(c, st, create ? "vulnerability.created" : "vulnerability.updated",
                               target, d.p);
    dtm_buf_free(&d);
    return rc;
}

/* add (id 0) and set (--id): the change and its audit entry in one transaction. */
static int change(int argc, char **argv, bool create)
{
    const char *usage =
        create ? "dtm vuln add --title T --severity low|medium|high|critical --found YYYY-MM-DD "
                 "--deadline YYYY-MM-DD [--plan TEXT] [--status open|in_progress|fixed|accepted] "
                 "[--json]"
               : "dtm vuln set --id N [--title T] [--severity S] [--found D] [--deadline D] "
                 "[--plan TEXT] [--status S] [--json]";
    const char *title = NULL, *severity = NULL, *found = NULL, *deadline = NULL, *plan = NULL,
               *status = NULL, *id_s = NULL;
    struct dtm_cli_opt opts[] = {{"title", &title, NULL}, {"severity", &severity, NULL},
                                 {"found", &found, NULL}, {"deadline", &deadline, NULL},
                                 {"plan", &plan, NULL},   {"status", &status, NULL},
                                 {"id", &id_s, NULL}};
    struct dtm_cli_common com;
    const char *pos[1];
    size_t npos;
    struct dtm_conf *c;
    struct dtm_store *st;
    struct dtm_vuln *v;
    int64_t id = 0;
    int rc = dtm_cli_parse(argc, argv, opts, DTM_ARRAY_LEN(opts), &com, pos, 0, &npos, usage);
    if (rc)
        return rc;
    if (com.help) {
        printf("usage: %s\n", usage);
        return DTM_EXIT_OK;
    }
    if (create && (!title || !severity || !found || !deadline)) {
        dtm_cli_error("--title, --severity, --found and --deadline are required\nusage: %s", usage);
        return DTM_EXIT_USAGE;
    }
    if (!create && (!id_s || dtm_str_to_i64(dtm_str_c(id_s), &id) || id < 1)) {
        dtm_cli_error("--id must name an item (a positive integer)\nusage: %s", usage);
        return DTM_EXIT_USAGE;
    }
    if ((rc = validate(title, severity, found, deadline, plan, status)))
        return rc;
    c = calloc(1, sizeof(*c));
    v = calloc(1, sizeof(*v));
    if (!c || !v || dtm_cli_load_conf(com.data_dir, NULL, c) || dtm_cli_open_store(c, &st)) {
        free(c);
        free(v);
        return DTM_EXIT_FAIL;
    }
    if ((rc = st->ops->begin(st)) == DTM_OK) {
        if (!create)
            rc = st->ops->vuln_get(st, id, v);
        if (rc == DTM_OK) {
            if (title)
                snprintf(v->title, sizeof(v->title), "%s", title);
            if (severity)
                snprintf(v->severity, sizeof(v->severity), "%s", severity);
            if (found)
                snprintf(v->found, sizeof(v->found), "%s", found);
            if (deadline)
                snprintf(v->deadline, sizeof(v->deadline), "%s", deadline);
            if (plan)
                snprintf(v->remediation_plan, sizeof(v->remediation_plan), "%s", plan);
            if (status || create)
                snprintf(v->status, sizeof(v->status), "%s", status ? status : "open");
            v->updated_at = dtm_now_us();
            if (strcmp(v->deadline, v->found) < 0)
                rc = DTM_EVALIDATION;
        }
        if (rc == DTM_OK && create) {
            v->created_at = v->updated_at;
            dtm_audit_os_user(v->created_by, sizeof(v->created_by));
            rc = st->ops->vuln_insert(st, v);
        } else if (rc == DTM_OK) {
            rc = st->ops->vuln_update(st, v);
        }
        if (rc == DTM_OK)
            rc = audit(c, st, v, create);
        if (rc == DTM_OK)
            rc = st->ops->commit(st);
        if (rc)
            st->ops->rollback(st);
    }
    st->ops->close(st);
    free(c);
    if (rc == DTM_ENOTFOUND)
        dtm_cli_error("there is no vulnerability %lld; `dtm vuln list` lists them", (long long)id);
    else if (rc == DTM_EVALIDATION)
        dtm_cli_error("the deadline (%s) is before the day it was found (%s)", v->deadline,
                      v->found);
    else if (rc)
        dtm_cli_error("cannot store the vulnerability (%s)", dtm_rc_name(rc));
    else
        print_item(v, com.json);
    free(v);
    return rc == DTM_EVALIDATION ? DTM_EXIT_USAGE : rc ? DTM_EXIT_FAIL : DTM_EXIT_OK;
}

struct list_ctx {
    bool json;
    size_t n;
};

static int list_one(void *ctx, const struct dtm_vuln *v)
{
    struct list_ctx *x = ctx;
    char today[11];
    if (x->json) {
        struct dtm_buf b;
        dtm_buf_init(&b, 64 * 1024);
        dtm_vuln_json(&b, v);
        printf("%s%s", x->n ? "," : "", b.p ? b.p : "{}");
        dtm_buf_free(&b);
    } else {
        dtm_vuln_today(dtm_now_us(), today);
        printf("%-6lld %-9s %-12s %-10s %-10s %s%s\n", (long long)v->id, v->severity, v->status,
               v->found, v->deadline, dtm_vuln_overdue(v, today) ? "[OVERDUE] " : "", v->title);
    }
    x->n++;
    return 0;
}

static int list(int argc, char **argv)
{
    const char *usage = "dtm vuln list [--json]";
    struct dtm_cli_common com;
    const char *pos[1];
    size_t npos;
    struct dtm_conf *c;
    struct dtm_store *st;
    struct list_ctx x = {false, 0};
    int rc = dtm_cli_parse(argc, argv, NULL, 0, &com, pos, 0, &npos, usage);
    if (rc)
        return rc;
    if (com.help) {
        printf("usage: %s\n", usage);
        return DTM_EXIT_OK;
    }
    if (!(c = calloc(1, sizeof(*c))) || dtm_cli_load_conf(com.data_dir, NULL, c) ||
        dtm_cli_open_store(c, &st)) {
        free(c);
        return DTM_EXIT_FAIL;
    }
    x.json = com.json;
    if (x.json)
        printf("{\"vulnerabilities\":[");
    else
        printf("%-6s %-9s %-12s %-10s %-10s %s\n", "ID", "SEVERITY", "STATUS", "FOUND", "DEADLINE",
               "TITLE");
    rc = st->ops->vuln_list(st, list_one, &x);
    if (x.json)
        printf("]}\n");
    st->ops->close(st);
    free(c);
    if (rc) {
        dtm_cli_error("cannot read the register (%s)", dtm_rc_name(rc));
        return DTM_EXIT_FAIL;
    }
    return DTM_EXIT_OK;
}

int dtm_cmd_vuln(int argc, char **argv)
{
    if (argc >= 1 && !strcmp(argv[0], "add"))
        return change(argc - 1, argv + 1, true);
    if (argc >= 1 && !strcmp(argv[0], "set"))
        return change(argc - 1, argv + 1, false);
    if (argc >= 1 && !strcmp(argv[0], "list"))
        return list(argc - 1, argv + 1);
    dtm_cli_error("usage: dtm vuln add|set|list …; `dtm help vuln` says more");
    return DTM_EXIT_USAGE;
}
