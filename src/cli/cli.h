/* cli — the `dtm` commands (CONTRACT §1): argument parsing, the secret-printing convention
 * (`name: value` lines or one JSON object with --json), and one file per command group. Exit
 * codes: 0 ok, 1 failure, 2 usage error; errors are one sentence on stderr. */
#ifndef DTM_CLI_H
#define DTM_CLI_H

#include "conf/conf.h"
#include "core/core.h"
#include "dict/dict.h"
#include "gate/gate.h"
#include "store/store.h"

struct dtm_writer;
#define DTM_EXIT_OK 0
#define DTM_EXIT_FAIL 1
#define DTM_EXIT_USAGE 2

/* One option of a command: --name VALUE (value != NULL) or --name (flag != NULL). */
struct dtm_cli_opt {
    const char *name;
    const char **value;
    bool *flag;
};

/* Parses argv (after the command words) against opts; positional arguments are collected into
 * pos (at most npos_max). Prints a usage error and returns DTM_EXIT_USAGE on failure, or
 * DTM_EXIT_OK. --data-dir, --json and --help are always accepted. */
struct dtm_cli_common {
    const char *data_dir;
    bool json;
    bool help;
};
int dtm_cli_parse(int argc, char **argv, const struct dtm_cli_opt *opts, size_t nopts,
                  struct dtm_cli_common *common, const char **pos, size_t npos_max, size_t *npos,
                  const char *usage);

/* Prints an error sentence on stderr: "dtm: ...". */
void dtm_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Secret/result output: collects name/value pairs, prints them as lines or one JSON object. */
struct dtm_cli_out {
    const char *name[16];
    char value[16][256];
    size_t n;
};
void dtm_cli_out_add(struct dtm_cli_out *o, const char *name, const char *value);
void dtm_cli_out_print(const struct dtm_cli_out *o, bool json);

/* Listings (`dtm system list`, `grant list`, `subscription list`): rows of the store printed as
 * one JSON array or as text lines under a head. The row callback starts each JSON item with
 * dtm_cli_list_item; end closes the store and prints the listing, or "cannot list WHAT". */
struct dtm_cli_list {
    struct dtm_buf b;
    bool json;
    int n; /* JSON items so far */
};
void dtm_cli_list_begin(struct dtm_cli_list *l, bool json, const char *text_head /* or NULL */);
void dtm_cli_list_item(struct dtm_cli_list *l);
/* rc: the store's listing. DTM_EXIT_OK or DTM_EXIT_FAIL. */
int dtm_cli_list_end(struct dtm_cli_list *l, struct dtm_store *st, int rc, const char *what);

/* Loads dtm.conf of the data dir (and --config FILE over it). Prints the error. */
int dtm_cli_load_conf(const char *data_dir, const char *config_file, struct dtm_conf *c);
/* The data dictionary of a data dir: the built-ins and the definitions administrators stored
 * (PUT /api/v1/datasets/{code}); a stored one that no longer parses is skipped with a warning.
 * NULL when out of memory or the store cannot list them. */
struct dtm_dict *dtm_cli_dict(struct dtm_store *st);
/* Adds to d the stored definitions it lacks or holds an older version of (SIGHUP: defined
 * through another node, or while this one ran from an older backup). */
int dtm_cli_dict_refresh(struct dtm_store *st, struct dtm_dict *d);
/* Opens the store of a data dir for a command (migrating it). Prints the error. */
int dtm_cli_open_store(const struct dtm_conf *c, struct dtm_store **out);

/* Commands */
int dtm_cmd_init(int argc, char **argv);
int dtm_cmd_serve(int argc, char **argv);
int dtm_cmd_system(int argc, char **argv);
int dtm_cmd_key(int argc, char **argv);
int dtm_cmd_key_rotate_master(int argc, char **argv);  /* T4.2: cli/masterkey.c */
int dtm_cmd_key_rotate_signing(int argc, char **argv); /* T2.4: cli/signing.c */
int dtm_cmd_import(int argc, char **argv);
int dtm_cmd_export(int argc, char **argv);
int dtm_cmd_grant(int argc, char **argv);
int dtm_cmd_subscription(int argc, char **argv); /* F3 (cli/subscription.c) */
int dtm_cmd_retention(int argc, char **argv);
int dtm_cmd_audit(int argc, char **argv);
int dtm_cmd_user(int argc, char **argv);    /* people (cli/user.c) */
int dtm_cmd_vuln(int argc, char **argv);    /* T4.4 (cli/vuln.c) */
int dtm_cmd_secret(int argc, char **argv);  /* T4.2 (cli/secret.c) */
int dtm_cmd_status(int argc, char **argv);  /* issue 10 (cli/status.c) */
int dtm_cmd_backup(int argc, char **argv);  /* issue 10 (cli/backup.c) */
int dtm_cmd_restore(int argc, char **argv); /* issue 10 (cli/backup.c) */
int dtm_cmd_drill(int argc, char **argv);   /* issue 10 (cli/backup.c) */
int dtm_cmd_report(int argc, char **argv);  /* issue 7 (cli/report.c) */

/* One change of a command and its audit entry, committed together (S3): fn(st, ctx) runs in a
 * write transaction of st, then dtm_cli_audit(c, st, action, target, detail); any failure rolls
 * both back. Returns DTM_OK or the first error (fn's, the audit's or the commit's). */
typedef int (*dtm_cli_txn_fn)(struct dtm_store *st, void *ctx);
int dtm_cli_audited(const struct dtm_conf *c, struct dtm_store *st, dtm_cli_txn_fn fn, void *ctx,
                    const char *action, const char *target, const char *detail);
/* Appends this command's entry to the audit trail inside st's open transaction (cli/audit.c):
 * actor the OS user (kind cli), detail a JSON object (NULL = {}) without secrets or personal
 * values. Prints why the master key cannot be read; on any failure the caller rolls back, so
 * that no change goes unrecorded. */
int dtm_cli_audit(const struct dtm_conf *c, struct dtm_store *st, const char *action,
                  const char *target, const char *detail);

/* Importing files into a local data dir (cli/import.c; also `dtm init --demo`). */
struct dtm_local_import {
    struct dtm_conf conf;
    struct dtm_keyring keys;
    struct dtm_store *store;
    struct dtm_dict *dict;
    struct dtm_writer *writer;
    enum dtm_lang lang; /* of the rejected rows' messages: from $LANG */
};
struct dtm_local_file {
    const char *dataset;
    const char *system;   /* NULL: every row names its system (any registered one) */
    const char *format;   /* NULL: from the file name */
    const char *path;     /* "-" = standard input */
    const char *rejected; /* NULL: PATH.rejected.csv; "": none */
    bool masked;
    bool quiet; /* no progress on stderr */
};
/* Prints the reason and returns an exit code on failure (close anyway). */
int dtm_local_import_open(const char *data_dir, struct dtm_local_import *li);
/* One file to its end; *b is the batch as it ended. An exit code. */
int dtm_local_import_file(struct dtm_local_import *li, const struct dtm_local_file *f,
                          struct dtm_batch *b);
void dtm_local_import_close(struct dtm_local_import *li);
/* The format of a file to import: given (--format), else its extension (.gz looked through,
 * *gz set), else ndjson for standard input ("-"). NULL after printing why when unknown. */
const char *dtm_cli_import_format(const char *path, const char *given, bool *gz);
/* Final counts of an import: rows, accepted, duplicates, updated, rejected. */
void dtm_cli_print_counts(const int64_t v[5], bool json);
/* `dtm import --url --key`: the files go to a remote server's POST /api/v1/batches
 * (cli/remote.c). An exit code. */
int dtm_remote_import(const char *url, const char *key, const char *dataset, const char *format,
                      bool masked, const char *rejected, const char *const *files, size_t n,
                      bool json);

/* TLS certificate for a new data dir (OpenSSL): a self-signed ECDSA P-256 certificate for
 * localhost, 127.0.0.1 and ::1 plus the host name. */
int dtm_tls_self_signed(const char *cert_path, const char *key_path, char *err, size_t errsz);

int dtm_cli_main(int argc, char **argv);

#endif
