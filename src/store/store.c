/* store/store.c — picks the backend named in the configuration. */
#include "store/store.h"
#include "gate/gate.h"

#include <stdio.h>
#include <string.h>

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
    snprintf(err, errsz, "unknown storage backend '%s' (known: sqlite)", c->backend);
    return DTM_EINVAL;
}
