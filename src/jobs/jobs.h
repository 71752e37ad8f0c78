/* jobs — background jobs of `dtm serve` that also run once from the command line. For now:
 * retention (retention.c), which purges records past their keeping period — the connection logs
 * after `[retention] connection_logs_days` (at least 366: D6, the law keeps them one year). The
 * server purges through the writer (only the writer writes while serving); `dtm retention run`
 * purges on its own store connection, like every CLI command. The audit trail (audit/) is never
 * purged: its entries are kept forever (S3; the law asks for at least one year). */
#ifndef DTM_JOBS_H
#define DTM_JOBS_H

#include "conf/conf.h"
#include "core/core.h"
#include "store/store.h"

struct dtm_writer;
struct dtm_audit;

#define DTM_RETENTION_CHUNK 10000 /* records removed per transaction */

/* What one retention pass did for a dataset. */
struct dtm_retention_result {
    const char *dataset;
    int64_t days;    /* kept this many days */
    int64_t before;  /* µs: records with an event time before it were removed */
    int64_t removed; /* records removed */
};

/* The cut-off of a keeping period: the start (00:00 UTC+07:00) of the day `days` days before the
 * day of now — a whole day, so that the hourly and daily rollups purged with the records match
 * the records left. */
int64_t dtm_retention_cutoff(int64_t now_us, int64_t days);

/* One pass on a store connection (`dtm retention run`), in transactions of DTM_RETENTION_CHUNK
 * records. out[] receives one result per dataset with a keeping period (at most max); *n how
 * many. DTM_OK or the store's error. */
int dtm_retention_run(struct dtm_store *st, const struct dtm_conf *c, int64_t now,
                      struct dtm_retention_result *out, size_t max, size_t *n);

/* The server's job: a thread that runs a pass shortly after the start and then every day, each
 * chunk a writer job (in_txn). conf points at the server's current configuration (SIGHUP
 * replaces it). */
struct dtm_retention;
int dtm_retention_start(const struct dtm_conf *const *conf, struct dtm_writer *w,
                        struct dtm_retention **out, char *err, size_t errsz);
/* Stops the thread (a pass in progress ends after its current chunk) and frees. NULL is fine.
 * Call before the writer stops. */
void dtm_retention_stop(struct dtm_retention *r);
/* S3: every pass is recorded (retention.purged per dataset) on this trail from now on (NULL =
 * none). Stop the retention job before the trail. */
void dtm_retention_audit(struct dtm_retention *r, struct dtm_audit *a);

#endif
