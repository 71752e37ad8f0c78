/* cli/cli.c — the `dtm` command dispatcher, help, version and shared helpers. */
#include "cli/cli.h"
#include "api/openapi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
    const char *usage;
} commands[] = {
    {"init", dtm_cmd_init,
     "create a data dir: config, master key, TLS certificate, database, admin (--demo: demo "
     "data)",
     "dtm init [--data-dir DIR] [--demo [--seed N] [--demo-records N] [--demo-end YYYY-MM-DD]] "
     "[--json]"},
    {"serve", dtm_cmd_serve, "run the server in the foreground",
     "dtm serve [--data-dir DIR] [--config FILE] [--http ADDR:PORT|off] [--https ADDR:PORT|off]"},
    {"system", dtm_cmd_system, "connected systems: add, list, set-tier",
     "dtm system add --code C --name N [--org O] [--role source|consumer|aggregator] "
     "[--parent P] [--masked] [--probe-url URL] [--tier bronze|silver|gold] [--json]\n"
     "       dtm system list [--json]\n"
     "       dtm system set-tier --code C --tier bronze|silver|gold [--json]"},
    {"key", dtm_cmd_key,
     "API keys: rotate, revoke; OAuth clients: rotate-client, revoke-client; the master key: "
     "rotate-master; OAuth token signing: rotate-signing",
     "dtm key rotate --system C [--grace SECONDS] [--json]\n       dtm key revoke --id K\n"
     "       dtm key rotate-client --system C [--json]   (new OAuth client secret; the old one "
     "and its tokens end now)\n"
     "       dtm key revoke-client --system C   (no more tokens; issued ones refused)\n"
     "       dtm key revoke-token --jti J   (one access token ends now; its jti is in the audit "
     "entry oauth.token_issued)\n"
     "       dtm key rotate-master [--json]   (new master key; data keys re-wrapped, no "
     "downtime)\n"
     "       dtm key rotate-signing [--json]  (new ES256 key for OAuth tokens; old ones stay in "
     "/oauth/jwks.json until their tokens expired)"},
    {"import", dtm_cmd_import, "import batch files (JSON, NDJSON, XML, CSV; .gz) with progress",
     "dtm import --dataset D [--system C] [--format json|ndjson|xml|csv] [--masked] "
     "[--rejected FILE] [--url URL --key API_KEY] [--json] FILE… (- = standard input)"},
    {"export", dtm_cmd_export, "write a dataset's records out (CSV, JSON, NDJSON, XML)",
     "dtm export --dataset D [--from T] [--to T] --format csv|json|ndjson|xml|xlsx [-o OUT] "
     "(default: standard output)"},
    {"report", dtm_cmd_report,
     "a periodic report (transactions, connectivity, quality, ranking) as JSON, CSV, XLSX or PDF",
     "dtm report transactions|connectivity|quality|ranking --period P "
     "--format json|csv|xlsx|pdf [-o OUT] [--lang vi|en]\n"
     "  P: a day 2026-10-05, an ISO week 2026-W42, a month 2026-10, a quarter 2026-Q3 or a year\n"
     "  2026 (UTC+07:00). A report the server kept is written as produced; otherwise it is\n"
     "  computed now (a period not over yet is marked provisional). json and csv may go to\n"
     "  standard output."},
    {"grant", dtm_cmd_grant,
     "datasets a consumer system may read: add, revoke, list (grants matter to consumers only)",
     "dtm grant add --system C --dataset D [--json]\n"
     "       dtm grant revoke --system C --dataset D [--json]\n"
     "       dtm grant list [--system C] [--json]"},
    {"subscription", dtm_cmd_subscription,
     "consumers' subscriptions to aggregates (push sharing): list, with cursor and last error",
     "dtm subscription list [--system C] [--json]"},
    {"retention", dtm_cmd_retention,
     "remove records past their keeping period now ([retention] connection_logs_days)",
     "dtm retention run [--json]"},
    {"user", dtm_cmd_user,
     "people's accounts (roles admin, operator, analyst, auditor): add, list, passwd, disable, "
     "enable, reset-mfa",
     "dtm user add --username U --role admin|operator|analyst|auditor [--json]\n"
     "       dtm user list [--json]\n"
     "       dtm user passwd --username U [--json]   (a new random password, printed once)\n"
     "       dtm user disable|enable --username U\n"
     "       dtm user reset-mfa --username U"},
    {"backup", dtm_cmd_backup,
     "an encrypted, consistent backup of the data dir while it serves; verify one",
     "dtm backup -o FILE [--json]\n"
     "       dtm backup verify FILE [--master-key PATH] [--json]\n"
     "  The file holds the store, dtm.conf, the TLS certificate and key and spooled batches,\n"
     "  compressed and encrypted (AES-256-GCM) under a key wrapped by the master key. It never\n"
     "  holds the master key: keep DATA_DIR/master.key apart from the backups (a backup without\n"
     "  it cannot be restored, and after `dtm key rotate-master` older backups need the old\n"
     "  key). verify checks every chunk, the checksums and the manifest (default key: the data\n"
     "  dir's master.key)."},
    {"restore", dtm_cmd_restore, "restore a backup into a new, empty data dir",
     "dtm restore FILE --data-dir NEWDIR [--master-key PATH] [--json]\n"
     "  NEWDIR must not exist or be empty. --master-key is the master.key of the data dir the\n"
     "  backup came from (current when it was made); it is copied into NEWDIR (mode 0600). It\n"
     "  may instead be put in NEWDIR alone beforehand. A damaged or foreign backup is refused;\n"
     "  nothing is left behind on failure (the restore goes to NEWDIR.partial first)."},
    {"drill", dtm_cmd_drill,
     "the recovery drill: back up, verify, restore to a scratch dir, serve it, compare",
     "dtm drill [--master-key PATH] [--report FILE] [--scratch DIR] [--keep] [--json]\n"
     "  Works while a server runs on the data dir. Prints PASS or FAIL and the timings; exit 1\n"
     "  on FAIL. --master-key: restore with the copy of the master key kept apart (default: the\n"
     "  data dir's), so the drill also proves that copy opens the backups.\n"
     "  The scratch dir (in --scratch, else $TMPDIR, else /var/tmp) needs room for a\n"
     "  backup and a restored copy; --keep leaves it (backup, restored data dir, server log)."},
    {"audit", dtm_cmd_audit, "the audit trail: verify its hash chain, list its entries",
     "dtm audit verify [--head SEQ:HASH]\n"
     "       dtm audit list [--from T] [--to T] [--actor A] [--action A] [--format csv|json]"},
    {"status", dtm_cmd_status,
     "what an operator checks first: version, store, server uptime and queue, systems by status, "
     "alerts firing, batches, last backup",
     "dtm status [--json]"},
    {"secret", dtm_cmd_secret,
     "secrets of alert channels kept sealed in the store (named store:NAME in dtm.conf): set, "
     "list, delete",
     "dtm secret set NAME [--generate] [--json]   (the value from standard input)\n"
     "       dtm secret list [--json]\n"
     "       dtm secret delete NAME"},
    {"vuln", dtm_cmd_vuln,
     "the vulnerability register (T4.4): add, set, list; overdue items raise an alert",
     "dtm vuln add --title T --severity low|medium|high|critical --found YYYY-MM-DD "
     "--deadline YYYY-MM-DD [--plan TEXT] [--status open|in_progress|fixed|accepted] [--json]\n"
     "       dtm vuln set --id N [--title T] [--severity S] [--found D] [--deadline D] "
     "[--plan TEXT] [--status S] [--json]\n"
     "       dtm vuln list [--json]"},
};

void dtm_cli_error(const char *fmt, ...)
{
    va_list ap;
    fputs("dtm: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int dtm_cli_parse(int argc, char **argv, const struct dtm_cli_opt *opts, size_t nopts,
                  struct dtm_cli_common *common, const char **pos, size_t npos_max, size_t *npos,
                  const char *usage)
{
    *npos = 0;
    common->data_dir = NULL;
    common->json = false;
    common->help = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        char name[64];
        const char *eq;
        size_t j;
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            if (*npos >= npos_max) {
                dtm_cli_error("unexpected argument '%s'\nusage: %s", a, usage);
                return DTM_EXIT_USAGE;
            }
            pos[(*npos)++] = a;
            continue;
        }
        eq = strchr(a, '=');
        snprintf(name, sizeof(name), "%.*s", (int)(eq ? (size_t)(eq - a - 2) : strlen(a + 2)),
                 a + 2);
        if (eq)
            val = eq + 1;
        if (!strcmp(name, "json") || !strcmp(name, "help")) {
            *(strcmp(name, "json") ? &common->help : &common->json) = true;
            continue;
        }
        if (!strcmp(name, "data-dir")) {
            if (!val && i + 1 < argc)
                val = argv[++i];
            if (!val || !*val) {
                dtm_cli_error("--data-dir needs a directory\nusage: %s", usage);
                return DTM_EXIT_USAGE;
            }
            common->data_dir = val;
            continue;
        }
        for (j = 0; j < nopts; j++)
            if (!strcmp(opts[j].name, name))
                break;
        if (j == nopts) {
            dtm_cli_error("unknown option --%s\nusage: %s", name, usage);
            return DTM_EXIT_USAGE;
        }
        if (opts[j].flag) {
            if (eq) {
                dtm_cli_error("--%s takes no value\nusage: %s", name, usage);
                return DTM_EXIT_USAGE;
            }
            *opts[j].flag = true;
        } else {
            if (!val && i + 1 < argc)
                val = argv[++i];
            if (!val) {
                dtm_cli_error("--%s needs a value\nusage: %s", name, usage);
                return DTM_EXIT_USAGE;
            }
            *opts[j].value = val;
        }
    }
    common->data_dir = dtm_conf_default_data_dir(common->data_dir);
    return DTM_EXIT_OK;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* The format named by a file's extension (a .gz suffix looked through); NULL when unknown. */
static const char *format_of_name(const char *name, bool *gz)
{
    static const struct {
        const char *ext, *fmt;
    } map[] = {{".ndjson", "ndjson"},
               {".jsonl", "ndjson"},
               {".json", "json"},
               {".xml", "xml"},
               {".csv", "csv"}};
    char base[DTM_PATH_MAX];
    snprintf(base, sizeof(base), "%s", name);
    *gz = ends_with(base, ".gz");
    if (*gz)
        base[strlen(base) - 3] = '\0';
    for (size_t i = 0; i < DTM_ARRAY_LEN(map); i++)
        if (ends_with(base, map[i].ext))
            return map[i].fmt;
    return NULL;
}

const char *dtm_cli_import_format(const char *path, const char *given, bool *gz)
{
    bool is_stdin = strcmp(path, "-") == 0, g = false;
    const char *by_name = is_stdin ? NULL : format_of_name(path, &g), *fmt = given;
    *gz = g;
    if (!fmt)
        fmt = by_name ? by_name : is_stdin ? "ndjson" : NULL;
    if (!fmt || (strcmp(fmt, "json") && strcmp(fmt, "ndjson") && strcmp(fmt, "xml") &&
                 strcmp(fmt, "csv"))) {
        dtm_cli_error("cannot tell the format of %s: name it .json, .ndjson, .xml or .csv, or "
                      "give --format json|ndjson|xml|csv",
                      path);
        return NULL;
    }
    return fmt;
}

void dtm_cli_out_add(struct dtm_cli_out *o, const char *name, const char *value)
{
    if (o->n >= DTM_ARRAY_LEN(o->name))
        return;
    o->name[o->n] = name;
    snprintf(o->value[o->n], sizeof(o->value[o->n]), "%s", value);
    o->n++;
}

void dtm_cli_out_print(const struct dtm_cli_out *o, bool json)
{
    if (json) {
        struct dtm_buf b;
        dtm_buf_init(&b, 1 << 20);
        dtm_buf_addch(&b, '{');
        for (size_t i = 0; i < o->n; i++) {
            if (i)
                dtm_buf_addch(&b, ',');
            dtm_buf_json_strc(&b, o->name[i]);
            dtm_buf_addch(&b, ':');
            dtm_buf_json_strc(&b, o->value[i]);
        }
        dtm_buf_addc(&b, "}\n");
        fputs(b.p ? b.p : "{}\n", stdout);
        dtm_buf_free(&b);
    } else {
        for (size_t i = 0; i < o->n; i++)
            printf("%s: %s\n", o->name[i], o->value[i]);
    }
    fflush(stdout);
}

void dtm_cli_list_begin(struct dtm_cli_list *l, bool json, const char *text_head)
{
    dtm_buf_init(&l->b, 256 << 20);
    l->json = json;
    l->n = 0;
    if (json)
        dtm_buf_addch(&l->b, '[');
    else if (text_head)
        dtm_buf_addc(&l->b, text_head);
}

void dtm_cli_list_item(struct dtm_cli_list *l)
{
    dtm_buf_addc(&l->b, l->n++ ? ",\n" : "\n");
}

int dtm_cli_list_end(struct dtm_cli_list *l, struct dtm_store *st, int rc, const char *what)
{
    if (l->json)
        dtm_buf_addc(&l->b, l->n ? "\n]\n" : "]\n");
    st->ops->close(st);
    if (rc || l->b.err) {
        dtm_buf_free(&l->b);
        dtm_cli_error("cannot list %s", what);
        return DTM_EXIT_FAIL;
    }
    fputs(l->b.p ? l->b.p : "", stdout);
    dtm_buf_free(&l->b);
    return DTM_EXIT_OK;
}

int dtm_cli_load_conf(const char *data_dir, const char *config_file, struct dtm_conf *c)
{
    char path[DTM_PATH_MAX], err[512];
    int rc;
    dtm_conf_defaults(c, data_dir);
    dtm_conf_path(c, "dtm.conf", path, sizeof(path));
    rc = dtm_conf_load(c, path, err, sizeof(err));
    if (rc == DTM_ENOTFOUND) {
        dtm_cli_error("%s is not a DTM data dir (no dtm.conf); create one with `dtm init "
                      "--data-dir %s`",
                      data_dir, data_dir);
        return rc;
    }
    if (rc) {
        dtm_cli_error("%s", err);
        return rc;
    }
    if (config_file && (rc = dtm_conf_load(c, config_file, err, sizeof(err)))) {
        dtm_cli_error("%s", err);
        return rc;
    }
    {
        enum dtm_log_level lvl;
        if (dtm_log_level_parse(c->log_level, &lvl)) {
            dtm_cli_error("[log] level must be debug, info, warn or error (got %s)", c->log_level);
            return DTM_EINVAL;
        }
        dtm_log_set_level(lvl);
    }
    return DTM_OK;
}

int dtm_cli_open_store(const struct dtm_conf *c, struct dtm_store **out)
{
    char err[512];
    int rc = dtm_store_open(c, out, err, sizeof(err));
    if (rc) {
        dtm_cli_error("%s", err);
        return rc;
    }
    if ((rc = (*out)->ops->migrate(*out))) {
        dtm_cli_error("cannot prepare the database schema (see the log above)");
        (*out)->ops->close(*out);
        *out = NULL;
    }
    return rc;
}

static void help(FILE *f)
{
    fprintf(f,
            "DTM %s — receives and aggregates data on electronic transactions "
            "(Circular 12/2025/TT-BKHCN)\n\nusage: dtm COMMAND [options]\n\ncommands:\n",
            DTM_VERSION);
    for (size_t i = 0; i < DTM_ARRAY_LEN(commands); i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "  %-9s %s\n  %-9s %s\n\n", "version", "print the version", "help",
            "help [COMMAND]: this text, or a command's usage");
    fprintf(f, "Every command takes --data-dir DIR (default $DTM_DATA_DIR, else ./dtm-data).\n"
               "Exit codes: 0 ok, 1 failure, 2 usage error.\n");
}

int dtm_cli_main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : NULL;
    umask(077); /* keys, database and logs of a data dir are for its owner only */
    if (!cmd) {
        help(stderr);
        return DTM_EXIT_USAGE;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("dtm %s\n", DTM_VERSION);
        return DTM_EXIT_OK;
    }
    /* hidden, for CI (issue 8): the route table and the OpenAPI document (api/openapi.c) */
    if (!strcmp(cmd, "routes"))
        return dtm_cmd_routes(argc - 2, argv + 2);
    if (!strcmp(cmd, "openapi"))
        return dtm_cmd_openapi(argc - 2, argv + 2);
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        if (argc > 2) {
            for (size_t i = 0; i < DTM_ARRAY_LEN(commands); i++)
                if (!strcmp(argv[2], commands[i].name)) {
                    printf("%s\n\nusage: %s\n", commands[i].summary, commands[i].usage);
                    return DTM_EXIT_OK;
                }
            dtm_cli_error("no command '%s'; `dtm help` lists them", argv[2]);
            return DTM_EXIT_USAGE;
        }
        help(stdout);
        return DTM_EXIT_OK;
    }
    for (size_t i = 0; i < DTM_ARRAY_LEN(commands); i++)
        if (!strcmp(cmd, commands[i].name))
            return commands[i].run(argc - 2, argv + 2);
    dtm_cli_error("no command '%s'; `dtm help` lists them", cmd);
    return DTM_EXIT_USAGE;
}

static int dict_load_one(void *ctx, const char *code, const char *definition)
{
    struct dtm_dataset *ds = NULL;
    char err[256];
    int rc = dtm_dataset_parse(dtm_str_c(definition), &ds, err, sizeof(err));
    if (rc == DTM_ENOMEM)
        return rc;
    if (rc) {
        dtm_logf(DTM_LOG_WARN, "a stored dataset definition does not parse; skipped",
                 "\"dataset\":\"%s\"", code);
        return 0;
    }
    return dtm_dict_put(ctx, ds);
}

/* A stored definition that is new to the dict, or a newer version of one in it (SIGHUP). */
static int dict_refresh_one(void *ctx, const char *code, const char *definition)
{
    const struct dtm_dataset *cur = dtm_dict_get(ctx, dtm_str_c(code));
    struct dtm_dataset *ds = NULL;
    char err[256];
    if (dtm_dataset_parse(dtm_str_c(definition), &ds, err, sizeof(err)) != DTM_OK)
        return dict_load_one(ctx, code, definition); /* logs it, as at start */
    if (cur && cur->version >= ds->version) {
        dtm_dataset_free(ds);
        return 0;
    }
    dtm_logf(DTM_LOG_INFO, "dataset definition loaded", "\"dataset\":\"%s\",\"version\":%lld", code,
             (long long)ds->version);
    return dtm_dict_put(ctx, ds);
}

int dtm_cli_dict_refresh(struct dtm_store *st, struct dtm_dict *d)
{
    return st->ops->dataset_def_list(st, dict_refresh_one, d);
}

struct dtm_dict *dtm_cli_dict(struct dtm_store *st)
{
    struct dtm_dict *d = dtm_dict_create();
    if (d && st && st->ops->dataset_def_list(st, dict_load_one, d) != DTM_OK) {
        dtm_dict_destroy(d);
        d = NULL;
    }
    return d;
}
