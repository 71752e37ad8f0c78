/* report/report.h — periodic reports (CONTRACT §1 `dtm report`, §6 GET /api/v1/reports/{kind}):
 * - building a report's document (report.c): one cJSON document of sections, each with its
 *   localised title, a sentence saying how its numbers were computed and from which data, typed
 *   columns, rows and an optional chart — kinds `transactions` (from the statistics engine, the
 *   same numbers as GET /api/v1/stats), `connectivity` (from the recorded status intervals),
 *   `quality` and `ranking` (report/quality.h);
 * - rendering a document (render.c) as JSON, CSV, XLSX (one sheet per section) or PDF (cairo +
 *   pango: A4, a title page, tables that break across pages with their header repeated, charts,
 *   page numbers);
 * - the scheduled production (sched.c): after each configured period closes, `dtm serve`
 *   produces the reports of [reports] kinds × langs and keeps their documents in the store (so
 *   every node serves them and backups carry them), once across nodes (a claimed row). */
#ifndef DTM_REPORT_H
#define DTM_REPORT_H

#include "conf/conf.h"
#include "core/core.h"
#include "dict/dict.h"
#include "report/period.h"
#include "store/store.h"

typedef struct cJSON cJSON;

#define DTM_REPORT_KINDS 4
/* "transactions", "connectivity", "quality", "ranking" (index order) */
extern const char *const dtm_report_kinds[DTM_REPORT_KINDS];
bool dtm_report_kind_valid(const char *kind);

/* Builds the document of a report (the caller frees it with cJSON_Delete). now: the instant the
 * report is generated at; a period that has not ended by then is marked "provisional". lang: "vi"
 * or "en". DTM_OK; DTM_EINVAL (unknown kind); DTM_EUNSUPPORTED (a kind whose engine is not
 * built in); or the store's error — each with an English sentence in err. */
int dtm_report_build(struct dtm_store *st, const struct dtm_conf *conf, const struct dtm_dict *dict,
                     const char *kind, const struct dtm_period *p, const char *lang, int64_t now,
                     cJSON **out /* OUT */, char *err, size_t errsz);

enum dtm_report_format { DTM_REPORT_JSON, DTM_REPORT_CSV, DTM_REPORT_XLSX, DTM_REPORT_PDF };
/* "json", "csv", "xlsx", "pdf" → the format: DTM_OK or DTM_EINVAL. */
int dtm_report_format_parse(const char *name, enum dtm_report_format *out /* OUT */);
const char *dtm_report_format_name(enum dtm_report_format f);
const char *dtm_report_content_type(enum dtm_report_format f);

/* Renders a document into out (whose maximum size bounds it). tmpdir: where the XLSX writer
 * keeps its temporary files. DTM_OK, DTM_EMALFORMED (not a report document), DTM_EIO, … */
int dtm_report_render(const cJSON *doc, enum dtm_report_format f, const char *tmpdir,
                      struct dtm_buf *out);

/* ---- scheduled reports (sched.c) */

/* One pass of the scheduler: for each period kind of [reports] schedule, its last closed period
 * (so a server that was down when a period closed catches up at its start), and each of
 * [reports] kinds and langs whose report is not kept yet: claim it, build it and keep it; then
 * forget reports older than [reports] keep days. *made: reports produced. */
int dtm_reports_run_once(struct dtm_store *st, const struct dtm_conf *conf,
                         const struct dtm_dict *dict, int64_t now, int *made);

struct dtm_reports;
/* Starts the scheduler thread (its own store connection): a pass shortly after the start, then
 * every minute. conf points at the server's current configuration (SIGHUP replaces it). */
int dtm_reports_start(const struct dtm_conf *const *conf, struct dtm_dict *dict,
                      struct dtm_reports **out, char *err, size_t errsz);
/* Stops the thread (a pass in progress ends after the report it is building). NULL is fine. */
void dtm_reports_stop(struct dtm_reports *r);

#endif
