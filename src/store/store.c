/* store/store.c — picks the backend named in the configuration. */
#include "store/store.h"

#include <stdio.h>
#include <string.h>

int dtm_store_open(const struct dtm_conf *c, struct dtm_store **out, char *err, size_t errsz)
{
    char path[DTM_PATH_MAX];
    if (strcmp(c->backend, "sqlite") == 0) {
        dtm_conf_path(c, c->database, path, sizeof(path));
        return dtm_store_sqlite_open(path, out, err, errsz);
    }
    snprintf(err, errsz, "unknown storage backend '%s' (known: sqlite)", c->backend);
    return DTM_EINVAL;
}
