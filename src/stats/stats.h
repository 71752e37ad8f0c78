/* stats — the statistics of CONTRACT §6 (`GET /api/v1/stats/{dataset}`): the query model and its
 * parsing (metrics, group_by, interval, from/to, where — with errors that name the parameter),
 * time buckets in UTC+07:00 (hour … year, ISO weeks), and the record-scan plan that answers any
 * query from the stored records over the (dataset, event_time) index, percentiles exact by
 * nearest rank. Live rollups ("cubes", issue 4) are to answer covered queries from the same
 * model; until then every answer is plan "scan". */
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
    const char *plan; /* "scan" */
    struct dtm_arena arena;
};

/* Answers q by scanning the records of its time range. */
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

/* ---- time buckets (UTC+07:00) */

/* The start (µs) of the bucket holding t, and its label: "2026-11-20T10:00+07:00",
 * "2026-11-20", "2026-W47", "2026-11", "2026-Q4", "2026". */
int64_t dtm_bucket_start(enum dtm_interval iv, int64_t t_us);
void dtm_bucket_label(enum dtm_interval iv, int64_t start_us, char *out, size_t outsz);

#endif
