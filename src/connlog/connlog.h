/* connlog — connection logs as data (D6, G3): every API call that DTM serves to an
 * authenticated connected system becomes a `connection_logs` record (system_code = the caller,
 * peer_system "DTM", direction "in", operation = the route's name, records, bytes, status,
 * started_at, duration_ms, error_reason), queryable like any dataset (statistics, exports) and
 * kept at least a year (jobs/retention.c).
 *
 * The HTTP layer hands each completed call to dtm_connlog_add, which only appends a row to a
 * bounded list in memory (a full list drops rows, counted and logged). Every 50 ms a
 * thread turns the rows into records through the normal pipeline (NDJSON → validate → hash, as a
 * local import) and submits them as one relaxed writer job per up to 1 000 rows (no fsync of their
 * own: they become durable with the next durable commit; a receipt with system "DTM" each).
 * What is pending is flushed on shutdown before the writer stops. */
#ifndef DTM_CONNLOG_H
#define DTM_CONNLOG_H

#include "conf/conf.h"
#include "core/core.h"
#include "dict/dict.h"
#include "gate/gate.h"
#include "store/store.h"

struct dtm_writer;
struct dtm_connlog;

#define DTM_CONNLOG_PENDING_MAX 100000 /* rows waiting for a flush at most */
#define DTM_CONNLOG_PEER "DTM"         /* peer_system of the calls DTM served */

/* One call served. */
struct dtm_connlog_row {
    char system_code[DTM_CODE_MAX]; /* the caller */
    const char *operation;          /* the route's name (static) */
    int64_t records;                /* records received or returned; -1 = not applicable */
    int64_t bytes;                  /* request body + response */
    int status;                     /* HTTP status (499: the client went away) */
    int64_t started_at;             /* µs, wall clock */
    int64_t duration_us;
    char error_reason[48]; /* a short code for errors (the problem's code), "" otherwise */
};

/* Starts the flush thread (it opens its own store connection). conf points at the server's
 * current configuration. */
int dtm_connlog_start(const struct dtm_conf *const *conf, const struct dtm_dict *dict,
                      const struct dtm_keyring *keys, struct dtm_writer *w,
                      struct dtm_connlog **out, char *err, size_t errsz);
/* Thread-safe; never blocks on I/O. Rows added after stop are dropped. */
void dtm_connlog_add(struct dtm_connlog *cl, const struct dtm_connlog_row *row);
/* Flushes what is pending to the writer and stops the thread. Call before the writer stops. */
void dtm_connlog_stop(struct dtm_connlog *cl);
/* Frees (after the HTTP listeners are gone: they may still add). NULL is fine. */
void dtm_connlog_free(struct dtm_connlog *cl);

#endif
