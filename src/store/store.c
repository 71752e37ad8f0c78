/* store/store.c — picks the backend named in the configuration. */
#include "store/store.h"
#include "gate/gate.h"

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
        int rc;
        if (!c->store_dsn[0]) {
            snprintf(err, errsz,
                     "[store] backend = postgresql needs [store] dsn (a libpq "
                     "connection string, e.g. host=127.0.0.1 dbname=dtm user=dtm)");
            return DTM_EINVAL;
        }
        if (c->store_password_file[0] && (rc = dtm_store_password(c, pw, sizeof(pw), err, errsz)))
            return rc;
        rc = dtm_store_pg_open(c->store_dsn, pw[0] ? pw : NULL, out, err, errsz);
        sodium_memzero(pw, sizeof(pw));
        if (rc == DTM_OK)
            (*out)->keys = dtm_datakeys_get(c); /* T4.2 */
        return rc;
    }
    snprintf(err, errsz, "unknown storage backend '%s' (known: sqlite, postgresql)", c->backend);
    return DTM_EINVAL;
}
