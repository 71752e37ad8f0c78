/* store/pg_snapshot.c — backups of a PostgreSQL store (issue 10 item 1, issue 9): the snapshot
 * of `dtm backup` and the load of `dtm restore`, done by PostgreSQL's own tools run as child
 * processes (pg_dump and pg_restore, found on PATH; Debian's postgresql-client).
 *
 * Snapshot: one connection opens a REPEATABLE READ, READ ONLY transaction and exports its
 * snapshot (pg_export_snapshot); the facts of the manifest (records per dataset, newest receipt
 * and audit entry, the master key of the data keys) are read in it, and `pg_dump
 * --snapshot=ID --format=custom` dumps exactly that state while the transaction stays open —
 * one moment, however long the dump takes, while servers keep writing.
 *
 * Load: pg_restore --single-transaction --exit-on-error into a database that holds no table
 * yet: all of the dump or nothing.
 *
 * The connection reaches the tools through the environment only (PGHOST, PGPORT, PGDATABASE,
 * PGUSER, PGSSLMODE… from the DSN parsed by libpq; PGPASSWORD from [store] password_file or
 * the DSN): never on the command line, where `ps` shows it to every user of the machine. */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <signal.h>
#include <sodium.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define EVEN_ATTEMPTS 1000 /* ≈ 2 s of waiting for rollups even with the records */
#define ENV_MAX 512
#define TOOL_LOG "pg_tool.log"

/* The connection's environment for a child: the parent's, then PG* variables of the DSN. */
struct env {
    char *v[ENV_MAX];
    size_t n;
    char *owned[64];
    size_t nowned;
};

static void env_free(struct env *e)
{
    for (size_t i = 0; i < e->nowned; i++) {
        sodium_memzero(e->owned[i], strlen(e->owned[i]));
        free(e->owned[i]);
    }
    e->nowned = 0;
}

static int env_set(struct env *e, const char *name, const char *value)
{
    size_t nl = strlen(name), n = nl + strlen(value) + 2;
    char *kv;
    if (e->nowned >= DTM_ARRAY_LEN(e->owned) || !(kv = malloc(n)))
        return DTM_ENOMEM;
    snprintf(kv, n, "%s=%s", name, value);
    e->owned[e->nowned++] = kv;
    for (size_t i = 0; i < e->n; i++)
        if (strncmp(e->v[i], name, nl) == 0 && e->v[i][nl] == '=') {
            e->v[i] = kv;
            return DTM_OK;
        }
    if (e->n + 1 >= ENV_MAX)
        return DTM_ENOMEM;
    e->v[e->n++] = kv;
    e->v[e->n] = NULL;
    return DTM_OK;
}

static int env_build(const struct dtm_conf *c, struct env *e, char *dbname, size_t dbnamesz,
                     char *err, size_t errsz)
{
    PQconninfoOption *opts;
    char *perr = NULL, pw[1024] = "";
    struct dtm_buf dsn;
    int rc = DTM_OK;
    memset(e, 0, sizeof(*e));
    dbname[0] = '\0';
    for (char **p = environ; *p && e->n + 1 < ENV_MAX / 2; p++)
        e->v[e->n++] = *p;
    e->v[e->n] = NULL;
    /* [store] sslrootcert… too: PGSSLROOTCERT, PGSSLCERT, PGSSLKEY for the tools */
    if ((rc = dtm_store_conninfo(c, &dsn, err, errsz)))
        return rc;
    opts = PQconninfoParse(dsn.p, &perr);
    dtm_store_conninfo_free(&dsn);
    if (!opts) {
        /* libpq's message about the syntax; the DSN itself is never repeated (a password) */
        snprintf(err, errsz, "[store] dsn is not a valid libpq connection string: %s",
                 perr ? perr : "out of memory");
        PQfreemem(perr);
        return DTM_EINVAL;
    }
    for (PQconninfoOption *o = opts; o->keyword && rc == DTM_OK; o++) {
        if (!o->val || !*o->val)
            continue;
        if (strcmp(o->keyword, "dbname") == 0)
            snprintf(dbname, dbnamesz, "%s", o->val);
        if (o->envvar)
            rc = env_set(e, o->envvar, o->val);
    }
    PQconninfoFree(opts);
    if (rc == DTM_OK && c->store_password_file[0]) {
        if ((rc = dtm_store_password(c, pw, sizeof(pw), err, errsz)) == DTM_OK && pw[0])
            rc = env_set(e, "PGPASSWORD", pw);
        sodium_memzero(pw, sizeof(pw));
        if (rc) {
            if (rc == DTM_ENOMEM)
                snprintf(err, errsz, "out of memory");
            env_free(e);
            return rc;
        }
    }
    if (rc == DTM_OK && !getenv("PGCONNECT_TIMEOUT"))
        rc = env_set(e, "PGCONNECT_TIMEOUT", "10");
    if (rc) {
        snprintf(err, errsz, "out of memory");
        env_free(e);
    }
    return rc;
}

/* The tool's stderr (in dir/pg_tool.log): its first line, for the error message. */
static void tool_message(const char *log, char *out, size_t outsz)
{
    char buf[400] = "";
    FILE *f = fopen(log, "r");
    out[0] = '\0';
    if (!f)
        return;
    while (fgets(buf, sizeof(buf), f)) {
        buf[strcspn(buf, "\r\n")] = '\0';
        if (buf[0]) {
            snprintf(out, outsz, "%s", buf);
            break;
        }
    }
    fclose(f);
}

/* Runs argv[0] (on PATH) with env, stderr into log; waits, calling progress (with the size of
 * watch) every 100 ms: non-zero stops the tool (DTM_EBUSY). */
static int run_tool(char *const argv[], struct env *e, const char *log, const char *watch,
                    int (*progress)(void *, int64_t, int64_t), void *ctx, char *err, size_t errsz)
{
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int status = 0, rc;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, e->v);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        snprintf(err, errsz, "cannot run %s: %s (install PostgreSQL's client tools)", argv[0],
                 strerror(rc));
        return DTM_EIO;
    }
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        struct stat sb;
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR) {
            snprintf(err, errsz, "cannot wait for %s: %s", argv[0], strerror(errno));
            return DTM_EIO;
        }
        if (progress && progress(ctx, watch && stat(watch, &sb) == 0 ? sb.st_size : 0, 0)) {
            kill(pid, SIGTERM);
            waitpid(pid, &status, 0);
            snprintf(err, errsz, "%s was stopped", argv[0]);
            return DTM_EBUSY;
        }
        nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char m[300];
        tool_message(log, m, sizeof(m));
        snprintf(err, errsz, "%s failed: %s", argv[0], m[0] ? m : "no message");
        return DTM_ESTORE;
    }
    return DTM_OK;
}

static PGconn *connect_db(const struct dtm_conf *c, char *err, size_t errsz)
{
    char pw[1024] = "";
    const char *keys[] = {"connect_timeout", "dbname", "fallback_application_name", "password",
                          NULL};
    const char *vals[] = {"10", NULL, "dtm backup", pw, NULL};
    struct dtm_buf dsn;
    PGconn *conn;
    if (c->store_password_file[0] && dtm_store_password(c, pw, sizeof(pw), err, errsz))
        return NULL;
    if (dtm_store_conninfo(c, &dsn, err, errsz)) {
        sodium_memzero(pw, sizeof(pw));
        return NULL;
    }
    vals[1] = dsn.p;
    if (!pw[0])
        keys[3] = vals[3] = NULL;
    conn = PQconnectdbParams(keys, vals, 1);
    sodium_memzero(pw, sizeof(pw));
    dtm_store_conninfo_free(&dsn);
    if (!conn || PQstatus(conn) != CONNECTION_OK) {
        char m[300];
        snprintf(m, sizeof(m), "%s", conn ? PQerrorMessage(conn) : "out of memory");
        m[strcspn(m, "\r\n")] = '\0';
        snprintf(err, errsz, "cannot connect to PostgreSQL: %s", m);
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

/* A statement without parameters; *res kept when wanted (else cleared). */
static int q(PGconn *conn, const char *sql, PGresult **res, char *err, size_t errsz)
{
    PGresult *r = PQexec(conn, sql);
    ExecStatusType es = PQresultStatus(r);
    if (es != PGRES_COMMAND_OK && es != PGRES_TUPLES_OK) {
        char m[300];
        snprintf(m, sizeof(m), "%s", PQresultErrorMessage(r));
        m[strcspn(m, "\r\n")] = '\0';
        snprintf(err, errsz, "PostgreSQL: %s", m);
        PQclear(r);
        return DTM_ESTORE;
    }
    if (res)
        *res = r;
    else
        PQclear(r);
    return DTM_OK;
}

static int q_i64(PGconn *conn, const char *sql, int64_t *out, char *err, size_t errsz)
{
    PGresult *r;
    int rc = q(conn, sql, &r, err, errsz);
    if (rc)
        return rc;
    *out = PQntuples(r) == 1 && !PQgetisnull(r, 0, 0) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    return DTM_OK;
}

/* The facts of the snapshot, inside the open transaction. */
static int facts(PGconn *conn, struct dtm_snapshot *out, char *err, size_t errsz)
{
    PGresult *r;
    int rc;
    if ((rc = q_i64(conn, "SELECT coalesce(max(seq),0) FROM audit_log", &out->audit_seq, err,
                    errsz)))
        return rc;
    /* the order of the codes must not depend on the database's collation (a restore may
     * compare with another database) */
    if ((rc = q(conn,
                "SELECT d.code, count(*) FROM records r JOIN dataset_ids d ON d.id = r.ds"
                " GROUP BY d.code ORDER BY d.code COLLATE \"C\"",
                &r, err, errsz)))
        return rc;
    for (int i = 0; i < PQntuples(r) && out->ndatasets < DTM_SNAPSHOT_DATASETS; i++) {
        size_t k = out->ndatasets++;
        snprintf(out->dataset[k].code, sizeof(out->dataset[k].code), "%s", PQgetvalue(r, i, 0));
        out->dataset[k].records = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        out->records += out->dataset[k].records;
    }
    PQclear(r);
    if ((rc = q(conn, "SELECT DISTINCT kek_id FROM data_keys", &r, err, errsz)))
        return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *id = PQgetvalue(r, i, 0);
        if (out->kek_id[0] && strcmp(out->kek_id, id) != 0)
            out->kek_mixed = true;
        else
            snprintf(out->kek_id, sizeof(out->kek_id), "%s", id);
    }
    PQclear(r);
    return DTM_OK;
}

int dtm_store_pg_snapshot(const struct dtm_conf *c, const char *dir, struct dtm_snapshot *out,
                          int (*progress)(void *ctx, int64_t done, int64_t total), void *ctx,
                          char *err, size_t errsz)
{
    PGconn *conn = connect_db(c, err, errsz);
    PGresult *r = NULL;
    struct env e = {0};
    char snapshot[128], dbname[256], path[DTM_PATH_MAX + 16], log[DTM_PATH_MAX], opt[160];
    int rc;
    bool have_env = false;
    if (!conn)
        return DTM_ESTORE;
    /* rollups trail the records by the receipts just committed: a moment when they are even
     * is waited for a little (see store/snapshot.c) */
    for (int attempt = 0;; attempt++) {
        if ((rc = q(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", NULL, err, errsz)) ||
            (rc = q_i64(conn, "SELECT coalesce((SELECT v FROM cube_state WHERE k='applied_seq'),0)",
                        &out->cubes_applied_seq, err, errsz)) ||
            (rc = q_i64(conn, "SELECT coalesce(max(seq),0) FROM receipts", &out->last_receipt_seq,
                        err, errsz)))
            goto out;
        if (out->cubes_applied_seq >= out->last_receipt_seq || attempt >= EVEN_ATTEMPTS || !dir)
            break;
        q(conn, "ROLLBACK", NULL, err, errsz);
        nanosleep(&(struct timespec){0, 2 * 1000 * 1000}, NULL);
    }
    if ((rc = facts(conn, out, err, errsz)))
        goto out;
    if (!dir) {
        rc = DTM_OK;
        goto out;
    }
    if ((rc = q(conn, "SELECT pg_export_snapshot()", &r, err, errsz)))
        goto out;
    snprintf(snapshot, sizeof(snapshot), "%s", PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    if ((rc = env_build(c, &e, dbname, sizeof(dbname), err, errsz)))
        goto out;
    have_env = true;
    out->nfiles = 1;
    snprintf(out->file[0].name, sizeof(out->file[0].name), "%s", DTM_PG_DUMP_NAME);
    if (snprintf(out->file[0].path, sizeof(out->file[0].path), "%s/%s", dir, DTM_PG_DUMP_NAME) >=
            (int)sizeof(out->file[0].path) ||
        snprintf(log, sizeof(log), "%s/%s", dir, TOOL_LOG) >= (int)sizeof(log)) {
        snprintf(err, errsz, "the staging directory name %s is too long", dir);
        rc = DTM_EINVAL;
        goto out;
    }
    snprintf(path, sizeof(path), "--file=%s", out->file[0].path);
    snprintf(opt, sizeof(opt), "--snapshot=%s", snapshot);
    {
        /* the database from PGDATABASE; custom format: compressed, restorable by pg_restore */
        char *argv[] = {"pg_dump", "--format=custom", "--no-owner", "--no-privileges", opt, path,
                        NULL};
        rc = run_tool(argv, &e, log, out->file[0].path, progress, ctx, err, errsz);
    }
    unlink(log);
out:
    if (have_env)
        env_free(&e);
    if (PQstatus(conn) == CONNECTION_OK)
        PQclear(PQexec(conn, "ROLLBACK"));
    PQfinish(conn);
    return rc;
}

int dtm_store_pg_load(const struct dtm_conf *c, const char *dump, char *err, size_t errsz)
{
    PGconn *conn = connect_db(c, err, errsz);
    struct env e;
    char dbname[256], log[DTM_PATH_MAX + 16], db[300];
    int64_t tables = 0;
    int rc;
    if (!conn)
        return DTM_ESTORE;
    rc = q_i64(conn,
               "SELECT count(*) FROM pg_class k JOIN pg_namespace n ON n.oid = k.relnamespace"
               " WHERE n.nspname NOT IN ('pg_catalog','information_schema','pg_toast')"
               " AND k.relkind IN ('r','p','v','m','S')",
               &tables, err, errsz);
    PQfinish(conn);
    if (rc)
        return rc;
    if (tables) {
        snprintf(err, errsz,
                 "the database named by --store-dsn is not empty (%lld tables): restore into a "
                 "new, empty database (CREATE DATABASE); nothing in it was changed",
                 (long long)tables);
        return DTM_EEXIST;
    }
    if ((rc = env_build(c, &e, dbname, sizeof(dbname), err, errsz)))
        return rc;
    snprintf(log, sizeof(log), "%s.log", dump);
    /* -d takes the database's name only (the rest of the connection is in the environment) */
    snprintf(db, sizeof(db), "%s", dbname);
    {
        char *argv[] = {"pg_restore",
                        "--no-owner",
                        "--no-privileges",
                        "--single-transaction",
                        "--exit-on-error",
                        "--dbname",
                        db,
                        (char *)dump,
                        NULL};
        if (!dbname[0]) {
            env_free(&e);
            snprintf(err, errsz, "--store-dsn names no database (dbname=…)");
            return DTM_EINVAL;
        }
        rc = run_tool(argv, &e, log, NULL, NULL, NULL, err, errsz);
    }
    unlink(log);
    env_free(&e);
    return rc;
}
