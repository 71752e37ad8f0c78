/* report/quality.h — data quality (G4), reconciliation of service_stats against transactions
 * (Circular Art. 5.5, T1.4) and the ranking of systems (G5): one implementation behind
 * GET /api/v1/quality, /reconciliation, /rankings and the `quality` / `ranking` report sections. */
#ifndef DTM_REPORT_QUALITY_H
#define DTM_REPORT_QUALITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "dict/dict.h"
#include "report/period.h"
#include "store/store.h"

typedef struct cJSON cJSON;
struct dtm_store;
struct dtm_conf;
struct dtm_dict;
struct dtm_period;

/* Appends to `sections` (a cJSON array) the sections of the quality / ranking report of
 * period p in lang ("vi" or "en"). DTM_OK, or an error code with an English sentence in err. */
int dtm_quality_report(struct dtm_store *st, const struct dtm_conf *conf,
                       const struct dtm_dict *dict, const struct dtm_period *p, const char *lang,
                       cJSON *sections, char *err, size_t errsz);
int dtm_ranking_report(struct dtm_store *st, const struct dtm_conf *conf,
                       const struct dtm_dict *dict, const struct dtm_period *p, const char *lang,
                       cJSON *sections, char *err, size_t errsz);

/* ---- the computations behind the API (api/quality.c), as JSON documents; now (µs) decides
 * which periods have ended. lang "vi" or "en" for the method texts. *out is the caller's. */
int dtm_quality_json(struct dtm_store *st, const struct dtm_conf *conf, const struct dtm_dict *dict,
                     const struct dtm_period *p, const char *lang, int64_t now, cJSON **out,
                     char *err, size_t errsz);
int dtm_reconciliation_json(struct dtm_store *st, const struct dtm_conf *conf,
                            const struct dtm_dict *dict, const struct dtm_period *p,
                            const char *lang, int64_t now, cJSON **out, char *err, size_t errsz);
int dtm_rankings_json(struct dtm_store *st, const struct dtm_conf *conf,
                      const struct dtm_dict *dict, const struct dtm_period *p, const char *lang,
                      int64_t now, cJSON **out, char *err, size_t errsz);

/* The reporting schedule of a system: [quality] schedules, else default_schedule. */
enum dtm_period_kind dtm_quality_schedule(const struct dtm_conf *c, const struct dtm_dict *dict,
                                          const char *code);

/* ---- the server's reconciliation check ([quality] check_interval): service_stats reports of
 * the last check_days days against transactions; a mismatch beyond tolerance (or reported
 * transactions none of which arrived) raises alert quality.reconciliation with key
 * SYSTEM/SERVICE/PERIOD — once: not while it is open, not again after a person resolved it;
 * cleared when a corrected report matches. */
struct dtm_alerts;
struct dtm_recon_job;
int dtm_recon_check(struct dtm_store *st, const struct dtm_conf *conf, const struct dtm_dict *dict,
                    struct dtm_alerts *alerts, int64_t now, struct dtm_recon_job *job,
                    size_t *nraised);
int dtm_recon_job_start(const struct dtm_conf *const *conf, const struct dtm_dict *dict,
                        struct dtm_alerts *alerts, struct dtm_recon_job **out, char *err,
                        size_t errsz);
void dtm_recon_job_stop(struct dtm_recon_job *j); /* NULL is fine; frees */

/* ---- counting in the record writer (qcount.c): per receipt day, system and dataset, what was
 * accepted, updated, duplicate or rejected (and by which error code), and the lag between a
 * record's event time and its receipt. The writer adds every job of a group commit, flushes
 * the sums into quality_counts inside the same transaction (so they are exactly as durable as
 * the records), and clears. Both entrances count: realtime requests and batch chunks, plus the
 * realtime requests refused whole (dtm_quality_note_rejected). */
struct dtm_qcount;
struct dtm_qcount *dtm_qcount_new(void);
void dtm_qcount_free(struct dtm_qcount *q);
/* A stored record of dataset: the system it belongs to, its event time (INT64_MIN = none),
 * the outcome and the receipt time (µs). */
int dtm_qcount_record(struct dtm_qcount *q, const char *dataset, struct dtm_str system,
                      int64_t event_time, enum dtm_put_outcome o, int64_t received_at);
/* Rows rejected from a job of sender `system` (NULL = ""), with the errors kept (errs, n). */
int dtm_qcount_rejected(struct dtm_qcount *q, const char *dataset, const char *system,
                        size_t rejected, const struct dtm_rec_error *errs, size_t nerrs);
/* Writes the sums (quality_add) for receipt time now; dtm_qcount_clear forgets them. */
int dtm_qcount_flush(struct dtm_qcount *q, struct dtm_store *st, int64_t now);
void dtm_qcount_clear(struct dtm_qcount *q);
/* A realtime request refused whole (no record stored): its rejected rows are counted through
 * the writer all the same (a job of counts only; dropped when the writer is busy). */
struct dtm_writer;
void dtm_quality_note_rejected(struct dtm_writer *w, const char *dataset, const char *system,
                               size_t rejected, const struct dtm_rec_error *errs, size_t nerrs);

#endif
