/* store/snapshot.c — a consistent copy of the store's files for `dtm backup` (issue 10), taken
 * while servers keep writing. SQLite: one connection opens a read transaction on the rollups'
 * file (dtm.cubes.db) and then on dtm.db, and copies both pages by pages with the online backup
 * API (sqlite3_backup_*) inside that transaction: WAL mode lets the writers go on meanwhile and
 * the copy is the state of one moment. Rollups are applied after the records they come from
 * are committed, so a rollup snapshot taken first is never ahead of the record snapshot; when
 * it is behind (receipts not yet applied), `dtm serve` on the restored data dir finds
 * applied_seq behind and rebuilds the rollups from the records. The facts of the same moment
 * (records per dataset, newest receipt and audit entry, the master key wrapping the data keys)
 * come from the same transaction. PostgreSQL: pg_dump of an exported snapshot
 * (store/pg_snapshot.c). */
#include "store/store.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#define PAGES_PER_STEP 2048
#define EVEN_ATTEMPTS 1000 /* ≈ 2 s of waiting for rollups even with the records */

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* "dtm.db" → "dtm.cubes.db" (store/sqlite.c names the rollups' file so) */
static void cubes_name(const char *db, char *out, size_t outsz)
{
    size_t n = strlen(db);
    int k = n > 3 && strcmp(db + n - 3, ".db") == 0
                ? snprintf(out, outsz, "%.*s.cubes.db", (int)(n - 3), db)
                : snprintf(out, outsz, "%s.cubes", db);
    if (k < 0 || (size_t)k >= outsz)
        out[0] = '\0'; /* too long: the caller refuses the empty name */
}

static int fail(sqlite3 *db, const char *what, char *err, size_t errsz)
{
    snprintf(err, errsz, "cannot %s: %s", what, db ? sqlite3_errmsg(db) : "out of memory");
    return DTM_ESTORE;
}

/* Runs a query and calls row for each result row. */
static int each_row(sqlite3 *db, const char *sql, void (*row)(void *ctx, sqlite3_stmt *st),
                    void *ctx)
{
    sqlite3_stmt *st = NULL;
    int rc;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return SQLITE_ERROR;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if (row)
            row(ctx, st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void int_row(void *ctx, sqlite3_stmt *st)
{
    *(int64_t *)ctx = sqlite3_column_int64(st, 0);
}

static void dataset_row(void *ctx, sqlite3_stmt *st)
{
    struct dtm_snapshot *s = ctx;
    const unsigned char *code = sqlite3_column_text(st, 0);
    if (s->ndatasets >= DTM_SNAPSHOT_DATASETS || !code)
        return;
    snprintf(s->dataset[s->ndatasets].code, sizeof(s->dataset[0].code), "%s", code);
    s->dataset[s->ndatasets].records = sqlite3_column_int64(st, 1);
    s->records += s->dataset[s->ndatasets].records;
    s->ndatasets++;
}

static void kek_row(void *ctx, sqlite3_stmt *st)
{
    struct dtm_snapshot *s = ctx;
    const unsigned char *id = sqlite3_column_text(st, 0);
    if (!id)
        return;
    if (s->kek_id[0] && strcmp(s->kek_id, (const char *)id) != 0)
        s->kek_mixed = true;
    else
        snprintf(s->kek_id, sizeof(s->kek_id), "%s", id);
}

/* Copies database `name` of src into a new file at path, a step at a time. */
static int copy_db(sqlite3 *src, const char *name, const char *path, int64_t *done, int64_t total,
                   int (*progress)(void *, int64_t, int64_t), void *ctx, char *err, size_t errsz)
{
    sqlite3 *dst = NULL;
    sqlite3_backup *b;
    int rc, page = 4096, last = 0;
    if (sqlite3_open_v2(path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        rc = fail(dst, "create the copy of the database", err, errsz);
        sqlite3_close(dst);
        return rc;
    }
    if (!(b = sqlite3_backup_init(dst, "main", src, name))) {
        rc = fail(dst, "start copying the database", err, errsz);
        sqlite3_close(dst);
        return rc;
    }
    {
        sqlite3_stmt *st = NULL;
        char sql[64];
        snprintf(sql, sizeof(sql), "PRAGMA %s.page_size", name);
        if (sqlite3_prepare_v2(src, sql, -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            page = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    /* the source is inside our read transaction: a step never sees another writer's pages, so
     * the copy never restarts and is the state of the transaction's start */
    while ((rc = sqlite3_backup_step(b, PAGES_PER_STEP)) == SQLITE_OK || rc == SQLITE_BUSY ||
           rc == SQLITE_LOCKED) {
        int copied = sqlite3_backup_pagecount(b) - sqlite3_backup_remaining(b);
        if (rc != SQLITE_OK) {
            sqlite3_sleep(10);
            continue;
        }
        *done += (int64_t)(copied - last) * page;
        last = copied;
        if (progress && progress(ctx, *done, total)) {
            sqlite3_backup_finish(b);
            sqlite3_close(dst);
            snprintf(err, errsz, "the copy of the database was stopped");
            return DTM_EBUSY;
        }
    }
    *done += (int64_t)(sqlite3_backup_pagecount(b) - last) * page;
    sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE) {
        snprintf(err, errsz, "cannot copy the database: %s", sqlite3_errstr(rc));
        sqlite3_close(dst);
        return DTM_ESTORE;
    }
    rc = sqlite3_close(dst) == SQLITE_OK ? DTM_OK : DTM_EIO;
    if (rc)
        snprintf(err, errsz, "cannot close the copy of the database");
    return rc;
}

static int64_t page_bytes(sqlite3 *db, const char *name)
{
    char sql[96];
    int64_t n = 0, sz = 0;
    snprintf(sql, sizeof(sql), "PRAGMA %s.page_count", name);
    each_row(db, sql, int_row, &n);
    snprintf(sql, sizeof(sql), "PRAGMA %s.page_size", name);
    each_row(db, sql, int_row, &sz);
    return n * sz;
}

/* out = "dir/name" (or name alone when dir is ""); false when it does not fit. */
static bool set_name(char *out, size_t outsz, const char *dir, const char *name)
{
    int n = *dir ? snprintf(out, outsz, "%s/%s", dir, name) : snprintf(out, outsz, "%s", name);
    return n >= 0 && (size_t)n < outsz;
}

static int sqlite_snapshot(const struct dtm_conf *c, const char *dir, struct dtm_snapshot *out,
                           int (*progress)(void *, int64_t, int64_t), void *ctx, char *err,
                           size_t errsz)
{
    char path[DTM_PATH_MAX], cpath[DTM_PATH_MAX + 16], cname[160];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t done = 0, total;
    int rc = DTM_ESTORE;
    dtm_conf_path(c, c->database, path, sizeof(path));
    cubes_name(path, cpath, sizeof(cpath));
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        snprintf(err, errsz, "cannot open the database %s: %s", path,
                 db ? sqlite3_errmsg(db) : "out of memory");
        goto out;
    }
    sqlite3_busy_timeout(db, 10000);
    if (sqlite3_prepare_v2(db, "ATTACH DATABASE ?1 AS cubes", -1, &st, NULL) != SQLITE_OK) {
        rc = fail(db, "open the rollups", err, errsz);
        goto out;
    }
    sqlite3_bind_text(st, 1, cpath, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        rc = fail(db, "open the rollups", err, errsz);
        goto out;
    }
    /* the schemas are read before the transaction (reading them opens and closes its own) */
    if (each_row(db, "PRAGMA main.schema_version", NULL, NULL) != SQLITE_OK ||
        each_row(db, "PRAGMA cubes.schema_version", NULL, NULL) != SQLITE_OK) {
        rc = fail(db, "read the schema", err, errsz);
        goto out;
    }
    /* the read transaction: rollups first, then the records (see the top of the file). While
     * records come in, the rollups trail the records by the receipts just committed: a moment
     * when they are even is waited for a little (then the restored rollups need no rebuild),
     * else the copy is taken with rollups behind. */
    for (int attempt = 0;; attempt++) {
        if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
            each_row(db,
                     "SELECT coalesce((SELECT v FROM cubes.cube_state WHERE k='applied_seq'),0)",
                     int_row, &out->cubes_applied_seq) != SQLITE_OK ||
            each_row(db, "SELECT coalesce((SELECT max(seq) FROM main.receipts),0)", int_row,
                     &out->last_receipt_seq) != SQLITE_OK) {
            rc = fail(db, "start a read transaction", err, errsz);
            goto out;
        }
        if (out->cubes_applied_seq >= out->last_receipt_seq || attempt >= EVEN_ATTEMPTS || !dir)
            break;
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_sleep(2);
    }
    if (each_row(db, "SELECT coalesce((SELECT max(seq) FROM main.audit_log),0)", int_row,
                 &out->audit_seq) != SQLITE_OK ||
        each_row(db,
                 "SELECT d.code, count(*) FROM main.records r JOIN main.dataset_ids d"
                 " ON d.id = r.ds GROUP BY d.code ORDER BY d.code",
                 dataset_row, out) != SQLITE_OK ||
        each_row(db, "SELECT DISTINCT kek_id FROM main.data_keys", kek_row, out) != SQLITE_OK) {
        rc = fail(db, "read the facts of the snapshot", err, errsz);
        goto out;
    }
    if (!dir) { /* the facts only */
        rc = DTM_OK;
        goto out;
    }
    total = page_bytes(db, "main") + page_bytes(db, "cubes");
    out->nfiles = 2;
    cubes_name(c->database[0] == '/' ? base_name(c->database) : c->database, cname, sizeof(cname));
    if (!cname[0] ||
        !set_name(out->file[0].name, sizeof(out->file[0].name), "",
                  c->database[0] == '/' ? base_name(c->database) : c->database) ||
        !set_name(out->file[1].name, sizeof(out->file[1].name), "", cname)) {
        snprintf(err, errsz, "the database name %s is too long", c->database);
        rc = DTM_EINVAL;
        goto out;
    }
    for (size_t i = 0; i < 2; i++) {
        if (!set_name(out->file[i].path, sizeof(out->file[i].path), dir,
                      base_name(out->file[i].name))) {
            snprintf(err, errsz, "the staging directory name %s is too long", dir);
            rc = DTM_EINVAL;
            goto out;
        }
        if ((rc = copy_db(db, i == 0 ? "main" : "cubes", out->file[i].path, &done, total, progress,
                          ctx, err, errsz)))
            goto out;
    }
    rc = DTM_OK;
out:
    if (db) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(db);
    }
    return rc;
}

int dtm_store_snapshot(const struct dtm_conf *c, const char *dir, struct dtm_snapshot *out,
                       int (*progress)(void *ctx, int64_t done, int64_t total), void *ctx,
                       char *err, size_t errsz)
{
    memset(out, 0, sizeof(*out));
    if (dir && strcmp(c->backend, "sqlite") == 0 && c->database[0] == '/') {
        snprintf(err, errsz,
                 "[store] database names a file outside the data dir (%s): back it up with the "
                 "data dir's own files only when it is inside it (a relative name)",
                 c->database);
        return DTM_EUNSUPPORTED;
    }
    if (strcmp(c->backend, "sqlite") == 0)
        return sqlite_snapshot(c, dir, out, progress, ctx, err, errsz);
    if (strcmp(c->backend, "postgresql") == 0)
        return dtm_store_pg_snapshot(c, dir, out, progress, ctx, err, errsz);
    snprintf(err, errsz, "backups of the storage backend '%s' are not supported", c->backend);
    return DTM_EUNSUPPORTED;
}
