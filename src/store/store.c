/* store/store.c — picks the backend named in the configuration. */
#include "store/store.h"
#include "gate/gate.h"

#include <libpq-fe.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

/* [store] password_file: the first line of the file (PostgreSQL's password) */
int dtm_store_password(const struct dtm_conf *c, char *pw, size_t pwsz, char *err, size_t errsz)
{
    char path[DTM_PATH_MAX];
    FILE *f;
    size_t n;
    dtm_conf_path(c, c->store_password_file, path, sizeof(path));
    if (!(f = fopen(path, "r"))) {
        snprintf(err, errsz, "cannot read [store] password_file %s", path);
        return DTM_ESTORE;
    }
    if (!fgets(pw, (int)pwsz, f))
        pw[0] = '\0';
    fclose(f);
    n = strcspn(pw, "\r\n");
    pw[n] = '\0';
    return DTM_OK;
}

/* ' and \ escaped with \ inside '…' (libpq's key=value syntax) */
static void conninfo_add(struct dtm_buf *b, const char *key, const char *val)
{
    dtm_buf_printf(b, "%s%s='", b->n ? " " : "", key);
    for (const char *p = val; *p; p++) {
        if (*p == '\'' || *p == '\\')
            dtm_buf_addch(b, '\\');
        dtm_buf_addch(b, *p);
    }
    dtm_buf_addch(b, '\'');
}

void dtm_store_conninfo_free(struct dtm_buf *b)
{
    if (b->p)
        sodium_memzero(b->p, b->cap);
    dtm_buf_free(b);
}

int dtm_store_conninfo(const struct dtm_conf *c, struct dtm_buf *out, char *err, size_t errsz)
{
    /* [store] keys that stand for the DSN's own: files, relative to the data dir like every
     * other path of dtm.conf (and kept in backups); a DSN line stays short (conf.c's limit) */
    const char *keys[] = {"sslrootcert", "sslcert", "sslkey"};
    const char *vals[] = {c->store_sslrootcert, c->store_sslcert, c->store_sslkey};
    PQconninfoOption *opts;
    char *perr = NULL, path[DTM_PATH_MAX];
    dtm_buf_init(out, 64 * 1024);
    /* room for all of it at once (escaping at most doubles): no realloc leaves a copy behind */
    dtm_buf_reserve(out, 2 * strlen(c->store_dsn) + DTM_ARRAY_LEN(keys) * (2 * sizeof(path) + 16));
    if (!vals[0][0] && !vals[1][0] && !vals[2][0]) {
        dtm_buf_addc(out, c->store_dsn); /* as written: libpq parses it */
    } else if (!(opts = PQconninfoParse(c->store_dsn, &perr))) {
        /* libpq's message about the syntax; the DSN itself is never repeated (a password) */
        snprintf(err, errsz, "[store] dsn is not a valid libpq connection string: %s",
                 perr ? perr : "out of memory");
        PQfreemem(perr);
        dtm_store_conninfo_free(out);
        return DTM_EINVAL;
    } else {
        for (PQconninfoOption *o = opts; o->keyword; o++) {
            bool replaced = false;
            for (size_t i = 0; i < DTM_ARRAY_LEN(keys); i++)
                replaced |= vals[i][0] && strcmp(o->keyword, keys[i]) == 0;
            if (o->val && *o->val && !replaced)
                conninfo_add(out, o->keyword, o->val);
        }
        for (PQconninfoOption *o = opts; o->keyword; o++)
            if (o->val)
                sodium_memzero(o->val, strlen(o->val)); /* a password among them */
        PQconninfoFree(opts);
        for (size_t i = 0; i < DTM_ARRAY_LEN(keys); i++)
            if (vals[i][0]) {
                dtm_conf_path(c, vals[i], path, sizeof(path));
                conninfo_add(out, keys[i], path);
            }
    }
    if (out->err || !out->p) {
        dtm_store_conninfo_free(out);
        snprintf(err, errsz, "out of memory");
        return DTM_ENOMEM;
    }
    return DTM_OK;
}

int dtm_store_open(const struct dtm_conf *c, struct dtm_store **out, char *err, size_t errsz)
{
    char path[DTM_PATH_MAX];
    if (strcmp(c->backend, "sqlite") == 0) {
        int rc;
        dtm_conf_path(c, c->database, path, sizeof(path));
        rc = dtm_store_sqlite_open(path, out, err, errsz);
        if (rc == DTM_OK)
            (*out)->keys = dtm_datakeys_get(c); /* T4.2: sealed content opens on reading */
        return rc;
    }
    if (strcmp(c->backend, "postgresql") == 0) {
        char pw[1024] = "";
        struct dtm_buf dsn;
        int rc;
        if (!c->store_dsn[0]) {
            snprintf(err, errsz,
                     "[store] backend = postgresql needs [store] dsn (a libpq "
                     "connection string, e.g. host=127.0.0.1 dbname=dtm user=dtm)");
            return DTM_EINVAL;
        }
        if (c->store_password_file[0] && (rc = dtm_store_password(c, pw, sizeof(pw), err, errsz)))
            return rc;
        if ((rc = dtm_store_conninfo(c, &dsn, err, errsz)) == DTM_OK)
            rc = dtm_store_pg_open(dsn.p, pw[0] ? pw : NULL, out, err, errsz);
        sodium_memzero(pw, sizeof(pw));
        if (dsn.p)
            dtm_store_conninfo_free(&dsn);
        if (rc == DTM_OK)
            (*out)->keys = dtm_datakeys_get(c); /* T4.2 */
        return rc;
    }
    snprintf(err, errsz, "unknown storage backend '%s' (known: sqlite, postgresql)", c->backend);
    return DTM_EINVAL;
}
