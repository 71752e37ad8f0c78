/* stats — the statistics of CONTRACT §6 (`GET /api/v1/stats/{dataset}`): the query model and its
 * parsing (metrics, group_by, interval, from/to, where — with errors that name the parameter),
 * time buckets in UTC+07:00 (hour … year, ISO weeks), and the record-scan plan that answers any
 * query from the stored records over the (dataset, event_time) index, percentiles exact by
 * nearest rank — and the live rollups ("cubes", cube.c) that answer every query they cover. */
#ifndef DTM_STATS_H
#define DTM_STATS_H

#include "core/core.h"
#include "dict/dict.h"
#include "store/store.h"

#define DTM_STATS_MAX_METRICS 16
#define DTM_STATS_MAX_GROUP 8
#define DTM_STATS_MAX_WHERE 8
#define DTM_STATS_MAX_VALUES 256 /* values of one where (an aggregator's children, too) */

enum dtm_metric_kind {
    DTM_M_COUNT,
    DTM_M_SUM,
    DTM_M_AVG,
    DTM_M_MIN,
    DTM_M_MAX,
    DTM_M_P50,
    DTM_M_P95,
    DTM_M_P99,
    DTM_M_RATE
};

enum dtm_interval {
    DTM_I_NONE,
    DTM_I_HOUR,
    DTM_I_DAY,
    DTM_I_WEEK,
    DTM_I_MONTH,
    DTM_I_QUARTER,
    DTM_I_YEAR
};

struct dtm_metric {
    enum dtm_metric_kind kind;
    int field;       /* field index (sum…p99: a measure; rate: a dimension); -1 for count */
    char value[128]; /* rate:FIELD=VALUE */
    char name[192];  /* the column name, as asked: "count", "sum:amount", "rate:status=failed" */
};

struct dtm_where {
    int field;
    size_t nvalues;
    char values[DTM_STATS_MAX_VALUES][128];
};

struct dtm_query {
    const struct dtm_dataset *ds;
    struct dtm_metric metrics[DTM_STATS_MAX_METRICS];
    size_t nmetrics;
    int group[DTM_STATS_MAX_GROUP]; /* dimension field indexes */
    size_t ngroup;
    enum dtm_interval interval;
    int64_t from, to; /* µs, [from, to); INT64_MIN / INT64_MAX = open */
    struct dtm_where where[DTM_STATS_MAX_WHERE];
    size_t nwhere;
    bool scan_only; /* answer from the records even when a cube covers the query */
};

/* Parses the parameters (each may be NULL = absent; wheres is the list of `where` values).
 * DTM_OK, or DTM_EINVAL with the parameter's name in *bad and an English sentence in err that
 * names the allowed values. */
int dtm_query_parse(const struct dtm_dataset *ds, const char *metrics, const char *group_by,
                    const char *interval, const char *from, const char *to,
                    const char *const *wheres, size_t nwheres, struct dtm_query *q,
                    const char **bad, char *err, size_t errsz);

/* Adds `FIELD in values` (permissions: a source sees only its own system). DTM_EINVAL when full. */
int dtm_query_restrict(struct dtm_query *q, int field, const char *const *values, size_t n);

/* The answer: a table. Cells are JSON-ready texts (numbers unquoted, strings quoted). */
struct dtm_result {
    size_t ncols;
    char **cols;
    size_t nrows;
    char ***rows;     /* rows[i][j]: the cell's text, NULL = null */
    bool *numeric;    /* per column: cells are numbers */
    const char *plan; /* "scan" or "cube=…" */
    struct dtm_arena arena;
    struct dtm_arena arena2; /* the groups a second scanning thread made */
};

/* Answers q from the smallest covering cube, else by scanning the records of its time range. */
int dtm_query_run(struct dtm_store *st, const struct dtm_query *q, struct dtm_result *out);
void dtm_result_free(struct dtm_result *r);

/* Renders a result (JSON: {"columns":[…],"rows":[[…]…]}; CSV with a header row). */
void dtm_result_json(const struct dtm_result *r, struct dtm_buf *out);
void dtm_result_csv(const struct dtm_result *r, struct dtm_buf *out);

/* ---- Excel (stats/xlsx.c): a table as a workbook with typed cells, a bold header row, a frozen
 * pane and fitted column widths; rows stream (constant memory). At most 1 048 575 data rows:
 * DTM_ETOOBIG past that. tmpdir: where libxlsxwriter keeps its temporary files. */
struct dtm_xlsx;
int dtm_xlsx_open(const char *path, const char *tmpdir, const char *sheet, size_t ncols,
                  const char *const *cols, const double *widths /* NULL = 14 each */,
                  struct dtm_xlsx **out);
/* One row: cells[j] NULL or "" = empty; numeric[j] = write it as a number when it parses. */
int dtm_xlsx_row(struct dtm_xlsx *x, const char *const *cells, const bool *numeric);
int dtm_xlsx_close(struct dtm_xlsx *x); /* writes the file; frees x */
int dtm_result_xlsx(const struct dtm_result *r, const char *path, const char *tmpdir,
                    const char *sheet);

/* ---- record exports (stats/export.c): stored records written out as they are stored
 * (personal fields stay masked), shared by `dtm export` and GET /api/v1/datasets/{code}/records.
 * JSON and NDJSON are the stored canonical JSON itself; CSV has a header row of every field of
 * the definition (RFC 4180, CSV-injection safe); XML is <record><field>value</field>…</record>
 * of the stored fields in stored order. A stored record is read back with the JSON decoder of
 * ingest/, which keeps numbers' exact text (cJSON would turn 12.50 into a double). */
enum dtm_export_format {
    DTM_EXPORT_CSV,
    DTM_EXPORT_JSON,
    DTM_EXPORT_NDJSON,
    DTM_EXPORT_XML,
    DTM_EXPORT_XLSX, /* cells only (dtm_export_get): a workbook is written by stats/xlsx.c */
};
/* "csv", "json", "ndjson", "xml", "xlsx" → the format; DTM_EINVAL when unknown. */
int dtm_export_format_parse(const char *name, enum dtm_export_format *out);

#define DTM_EXPORT_MAX_FIELDS 64
/* One stored record read back field by field. The values are NUL-terminated copies that stay
 * valid until the next read; release with dtm_export_row_free. */
struct dtm_export_row {
    const struct dtm_dataset *ds;
    struct dtm_str content; /* the stored JSON (JSON/NDJSON need only this: set it directly) */
    size_t nfields;         /* fields of the record, in stored order */
    struct dtm_str name[DTM_EXPORT_MAX_FIELDS];
    struct dtm_str value[DTM_EXPORT_MAX_FIELDS];
    int pos[DTM_EXPORT_MAX_FIELDS]; /* definition field index → index above, -1 = absent */
    struct dtm_buf text;            /* the copies */
};
void dtm_export_row_init(struct dtm_export_row *row, const struct dtm_dataset *ds);
void dtm_export_row_free(struct dtm_export_row *row);
/* Reads a stored record. DTM_EMALFORMED when it is not one, DTM_ENOMEM / DTM_ETOOBIG. */
int dtm_export_row_read(struct dtm_export_row *row, struct dtm_str content);
/* The value of field f (definition index) of the record read; NULL when absent. */
const char *dtm_export_get(const struct dtm_export_row *row, size_t f);
/* CSV header row: every field name of the definition, CRLF. */
void dtm_export_csv_header(const struct dtm_dataset *ds, struct dtm_buf *out);
/* Appends the record: JSON (",\n" before all but the first record — n is the number of records
 * written before — and "\n" before the first), NDJSON (one line), CSV (one row, CRLF), XML
 * ("  <record>…</record>\n"). XLSX appends nothing. */
void dtm_export_append(const struct dtm_export_row *row, enum dtm_export_format fmt, int64_t n,
                       struct dtm_buf *out);

/* ---- live rollups (stats/cube.c) */

#define DTM_CUBE_MAX 16      /* cubes of one dataset kept */
#define DTM_CUBE_MEASURES 16 /* measures of one dataset kept in cubes */
/* DTM_GRAIN_GAP is not a grain of rows but a mark: "this hour bucket of the cube had
 * contributions that went to the day row only" (a record dated too far ahead, see
 * dtm_cube_hour_ceiling); the planner answers no hourly question across a marked hour from the
 * cube. */
enum { DTM_GRAIN_HOUR = 0, DTM_GRAIN_DAY = 1, DTM_GRAIN_GAP = 2 };
#define DTM_CUBE_HOUR_DAYS 3 /* hour rows for today and the two days before (≥ 48 h) */

/* The first instant whose records go to hour rows at time now: the start of the local day
 * DTM_CUBE_HOUR_DAYS - 1 days ago. Hour rows are complete from there on. */
int64_t dtm_cube_hour_floor(int64_t now_us);
/* The first instant whose records no longer go to hour rows at time now: the hour 24 h ahead
 * (clock skew and scheduled records fit; a record dated next year does not keep an hour row
 * that no purge would reach before then). Their hours are marked (DTM_GRAIN_GAP). */
int64_t dtm_cube_hour_ceiling(int64_t now_us);

/* What a record contributes to its dataset's cubes: its dimension values (in ds->dims order;
 * p NULL = absent) and measure values (ds->measures order, bit i of mpresent = present). */
struct dtm_facts {
    const struct dtm_dataset *ds;
    struct dtm_str *dim;
    double *m;
    uint32_t mpresent;
};
/* From a validated, masked record (copies what it keeps into a). */
int dtm_facts_make(const struct dtm_record *rec, struct dtm_arena *a, const struct dtm_facts **out);
/* From a stored record's canonical JSON (the old version of an updated record), with its event
 * time (INT64_MIN = none). */
int dtm_facts_parse(const struct dtm_dataset *ds, struct dtm_str content, struct dtm_arena *a,
                    struct dtm_facts *f, int64_t *event_time);

/* Bucket number of t in a grain (hours or days since the epoch, counted in UTC+07:00;
 * INT64_MIN for no time) and the start (µs) of a bucket. */
int64_t dtm_cube_bucket(int grain, int64_t t_us);
int64_t dtm_cube_bucket_start(int grain, int64_t bucket);

/* Whether a measure's cube aggregate keeps a histogram (percentiles): latency measures, whose
 * unit is ms or s. */
bool dtm_cube_has_hist(const struct dtm_field_def *f);

/* Log-linear histogram buckets: index of a value (0 for 0; sign of the value; index order is
 * value order), the bucket's bounds, and the value that stands for it (integer measures: the
 * only integer of a bucket narrower than 1, else the midpoint: within 0.8 %). */
int32_t dtm_hist_index(double v);
void dtm_hist_bounds(int32_t idx, double *lo, double *hi);
double dtm_hist_value(int32_t idx, bool integer);

struct dtm_hbin {
    int32_t idx;
    int64_t cnt;
};
/* The aggregate of one measure over a cube row (or a query group). */
struct dtm_cube_magg {
    int64_t n;
    double sum, min, max; /* min/max: ±INFINITY when n is 0 */
    bool removed;         /* a delta that removed values (min/max to be checked) */
    bool has_hist;
    struct dtm_hbin *h; /* sorted by idx */
    uint32_t nh, caph;
};
struct dtm_cube_agg {
    int64_t count;
    uint32_t nm;
    struct dtm_cube_magg *m;
    bool borrowed; /* m is the caller's */
};
/* Decodes a stored aggregate (malloc'd histograms: release it). DTM_EMALFORMED when broken. */
int dtm_cube_agg_decode(const void *p, size_t n, struct dtm_cube_agg *a);
/* The same for reading: histograms only of the measures in hist_mask (the others' bins are
 * skipped), measures in room (DTM_CUBE_MEASURES of them) when not NULL. */
int dtm_cube_agg_read(const void *p, size_t n, uint32_t hist_mask, struct dtm_cube_magg *room,
                      struct dtm_cube_agg *a);
void dtm_cube_agg_release(struct dtm_cube_agg *a);
void dtm_cube_agg_encode(const struct dtm_cube_agg *a, struct dtm_buf *b);
/* Adds bins into dst's (malloc'd) histogram. */
int dtm_hist_merge(struct dtm_cube_magg *dst, const struct dtm_hbin *src, uint32_t ns);
/* A histogram as dense counts over a range of bucket indexes: merging many rows' bins into a
 * query group costs an addition each, no search or sort. */
struct dtm_hist_dense {
    int64_t *c;
    int32_t lo; /* index of c[0] */
    uint32_t n;
};
int dtm_hist_dense_add(struct dtm_hist_dense *d, const struct dtm_hbin *b, uint32_t nb);
double dtm_hist_dense_quantile(const struct dtm_hist_dense *d, double p, bool integer, double min,
                               double max);
void dtm_hist_dense_free(struct dtm_hist_dense *d);
/* Nearest-rank quantile p of a histogram, clamped to [min, max]; NAN when empty. */
double dtm_hist_quantile(const struct dtm_cube_magg *m, double p, bool integer);
/* The store's merge of a delta into a stored aggregate (SQLite calls it from SQL). */
int dtm_agg_merge(const void *a, size_t an, const void *b, size_t bn, struct dtm_buf *out);
/* The encoded start of every tuple whose first value is `first`. */
void dtm_cube_dims_prefix(struct dtm_buf *b, struct dtm_str first);
/* Splits an encoded tuple of dimension values (a value with p NULL is absent). */
int dtm_cube_dims_decode(const void *p, size_t n, struct dtm_str *out, size_t max, size_t *count);

/* The ids of a dataset's cubes in the store (0 = none) and whether each holds every record
 * (a cube added after records arrived does not, until rebuilt). create: register missing ones. */
int dtm_cube_ids(struct dtm_store *st, const struct dtm_dataset *ds, bool create, int64_t *ids,
                 bool *complete);

/* Fills the cubes of a dataset that do not hold every record (registered after records
 * arrived: an older data dir, a definition that gained a cube) from its records, in one
 * transaction; the others are left alone. *records: records read, -1 when nothing was to do. */
int dtm_cube_rebuild(struct dtm_store *st, const struct dtm_dataset *ds, int64_t *records);

/* The writer's accumulator: a group commit's contributions in memory, one delta per touched
 * cube row written by flush (inside the transaction). prepare registers a dataset's cubes (call
 * before its first record_put of the transaction); clear forgets everything after a rollback. */
struct dtm_cube_acc;
struct dtm_cube_acc *dtm_cube_acc_new(void);
void dtm_cube_acc_set_now(struct dtm_cube_acc *a, int64_t now_us); /* moves the hour floor */
/* Holds DTM_CUBE_ACC_MAX rows (~300 bytes each): drain (or flush) it then to bound memory. A
 * row drained twice in one commit costs the rollup thread one merge, not one more upsert. */
#define DTM_CUBE_ACC_MAX 16384
bool dtm_cube_acc_full(const struct dtm_cube_acc *a);
void dtm_cube_acc_free(struct dtm_cube_acc *a);
int dtm_cube_acc_prepare(struct dtm_cube_acc *a, struct dtm_store *st,
                         const struct dtm_dataset *ds);
int dtm_cube_acc_add(struct dtm_cube_acc *a, const struct dtm_facts *f, int64_t event_time,
                     int sign);
int dtm_cube_acc_flush(struct dtm_cube_acc *a, struct dtm_store *st);
/* Moves the accumulator's rows, encoded, to the end of out (a "run", about 100 bytes a row) and
 * empties it: the record writer hands runs to the rollup thread, which applies them. */
int dtm_cube_acc_drain(struct dtm_cube_acc *a, struct dtm_buf *out);
/* Memory the rollup thread reuses from one round to the next. */
struct dtm_cube_flat;
struct dtm_cube_scratch {
    struct dtm_cube_flat *rows;
    size_t cap;
    struct dtm_buf merged[2];
};
void dtm_cube_scratch_init(struct dtm_cube_scratch *sc);
void dtm_cube_scratch_free(struct dtm_cube_scratch *sc);
/* Applies runs (from dtm_cube_acc_drain) to the store inside its open transaction: all their rows
 * in key order, the deltas of one cube row merged into a single upsert. */
int dtm_cube_runs_apply(struct dtm_store *st, const struct dtm_buf *const *runs, size_t nruns,
                        struct dtm_cube_scratch *sc);
void dtm_cube_acc_clear(struct dtm_cube_acc *a);

/* ---- time buckets (UTC+07:00) */

/* The start (µs) of the bucket holding t, and its label: "2026-11-20T10:00+07:00",
 * "2026-11-20", "2026-W47", "2026-11", "2026-Q4", "2026". */
int64_t dtm_bucket_start(enum dtm_interval iv, int64_t t_us);
void dtm_bucket_label(enum dtm_interval iv, int64_t start_us, char *out, size_t outsz);

#endif
