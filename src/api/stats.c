/* api/stats.c — GET /api/v1/stats/{dataset} (CONTRACT §6): parameters → stats/ query → a table
 * as JSON, CSV or XML (by `format` or `Accept`). Bad parameters are 400 naming the parameter and
 * the allowed values. A source sees only its own system's rows, an aggregator its own and its
 * children's, a consumer the datasets it is granted (dtm_api_scope, api/records.c). Records
 * classified confidential, hidden from other systems in record exports, count here (T3.2). The
 * plan that answered is in the `DTM-Plan` header. */
#include "api/api.h"
#include "batch/batch.h"
#include "stats/stats.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void result_xml(const struct dtm_result *res, const char *dataset, struct dtm_buf *b)
{
    dtm_buf_addc(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<stats dataset=\"");
    dtm_buf_xml(b, dtm_str_c(dataset));
    dtm_buf_addc(b, "\">\n");
    for (size_t i = 0; i < res->nrows; i++) {
        dtm_buf_addc(b, "  <row>");
        for (size_t j = 0; j < res->ncols; j++) {
            dtm_buf_addc(b, "<cell name=\"");
            dtm_buf_xml(b, dtm_str_c(res->cols[j]));
            if (!res->rows[i][j]) {
                dtm_buf_addc(b, "\" null=\"true\"/>");
                continue;
            }
            dtm_buf_addc(b, "\">");
            dtm_buf_xml(b, dtm_str_c(res->rows[i][j]));
            dtm_buf_addc(b, "</cell>");
        }
        dtm_buf_addc(b, "</row>\n");
    }
    dtm_buf_addc(b, "</stats>\n");
}

/* The workbook is written to a temporary file of the data dir (libxlsxwriter writes files), read
 * back into the answer and removed. */
static int reply_xlsx(struct dtm_req *r, const struct dtm_result *res, const char *dataset)
{
    const struct dtm_conf *c = dtm_http_env(r)->conf;
    char id[DTM_ID_MAX], name[DTM_ID_MAX + 16], path[DTM_PATH_MAX], dir[DTM_PATH_MAX];
    struct dtm_mapped m;
    int rc;
    if ((rc = dtm_random_id("stats-", id, sizeof(id))))
        return rc;
    snprintf(name, sizeof(name), "%s.xlsx", id);
    dtm_conf_path(c, name, path, sizeof(path));
    dtm_conf_path(c, ".", dir, sizeof(dir));
    rc = dtm_result_xlsx(res, path, dir, dataset);
    if (rc == DTM_OK && (rc = dtm_map_file(path, &m)) == DTM_OK) {
        rc = dtm_http_reply(
            r, 200, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", m.p, m.n);
        dtm_unmap(&m);
    }
    unlink(path);
    if (rc == DTM_ETOOBIG)
        return dtm_http_problem(r, 400, "too_many_rows", "Too many rows",
                                "The answer has more rows than a spreadsheet holds; ask for CSV.");
    return rc;
}

int dtm_api_stats_query(struct dtm_req *r, const struct dtm_dataset *ds,
                        const struct dtm_api_stats_args *a, struct dtm_result *out)
{
    struct dtm_store *st = dtm_http_store(r);
    struct dtm_query *q = dtm_arena_alloc(&r->arena, sizeof(*q)); /* large: not on the stack */
    const char *bad = NULL;
    char err[512];
    int rc;
    if (!st)
        return DTM_ESTORE;
    if (!q)
        return DTM_ENOMEM;
    if (dtm_query_parse(ds, a->metrics, a->group_by, a->interval, a->from, a->to, a->wheres,
                        a->nwheres, q, &bad, err, sizeof(err))) {
        dtm_http_problem(r, 400, "bad_parameter", "Bad parameter", "Parameter '%s': %s", bad, err);
        return DTM_EINVAL;
    }
    q->scan_only = a->scan_only;
    /* a consumer reads the datasets it is granted; a source its own system's rows, an
     * aggregator also its children's */
    {
        struct dtm_api_scope *sc = dtm_arena_alloc(&r->arena, sizeof(*sc));
        if (!sc)
            return DTM_ENOMEM;
        if ((rc = dtm_api_scope(r, st, ds, sc)))
            return rc;
        if (ds->system_field >= 0 && !sc->all &&
            dtm_query_restrict(q, ds->system_field, sc->ptrs, sc->n)) {
            dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                             "Too many child systems or conditions for one query.");
            return DTM_EINVAL;
        }
    }
    return dtm_query_run(st, q, out);
}

int dtm_api_stats(struct dtm_req *r)
{
    const struct dtm_dataset *ds = dtm_api_dataset(r);
    struct dtm_store *st = dtm_http_store(r);
    const char *wheres[DTM_STATS_MAX_WHERE + 1];
    size_t nwheres;
    const char *fmt = dtm_http_query(r, "format"), *plan;
    struct dtm_str accept = dtm_http_header(r, "Accept");
    struct dtm_result res;
    struct dtm_buf b;
    int rc;

    if (!ds)
        return DTM_OK; /* answered 404 */
    if (!st)
        return DTM_ESTORE;
    nwheres = dtm_http_query_all(r, "where", wheres, DTM_ARRAY_LEN(wheres));
    if (nwheres > DTM_STATS_MAX_WHERE)
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "At most %d where conditions.", DTM_STATS_MAX_WHERE);
    if (!fmt)
        fmt = dtm_str_contains(accept, "text/csv")          ? "csv"
              : dtm_str_contains(accept, "application/xml") ? "xml"
                                                            : "json";
    if (dtm_str_contains(accept, "spreadsheetml") && !dtm_http_query(r, "format"))
        fmt = "xlsx";
    if (strcmp(fmt, "json") && strcmp(fmt, "csv") && strcmp(fmt, "xml") && strcmp(fmt, "xlsx"))
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "format must be json, csv, xml or xlsx.");
    /* plan=scan: answer from the records even when a cube covers the query (reconciling a
     * rollup with its records) */
    if ((plan = dtm_http_query(r, "plan")) && strcmp(plan, "scan") && strcmp(plan, "auto"))
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "Parameter 'plan': plan must be auto (the default) or scan.");
    {
        struct dtm_api_stats_args a = {
            .metrics = dtm_http_query(r, "metrics"),
            .group_by = dtm_http_query(r, "group_by"),
            .interval = dtm_http_query(r, "interval"),
            .from = dtm_http_query(r, "from"),
            .to = dtm_http_query(r, "to"),
            .wheres = wheres,
            .nwheres = nwheres,
            .scan_only = plan && !strcmp(plan, "scan"),
        };
        if ((rc = dtm_api_stats_query(r, ds, &a, &res)))
            return r->responded ? DTM_OK : rc;
    }
    /* the plan's text lives in the result, which is freed before the answer goes out */
    plan = dtm_arena_strndup(&r->arena, res.plan, strlen(res.plan));
    if (!plan) {
        dtm_result_free(&res);
        return DTM_ENOMEM;
    }
    dtm_http_add_header(r, "DTM-Plan", plan);
    if (!strcmp(fmt, "xlsx")) {
        rc = reply_xlsx(r, &res, ds->code);
        dtm_result_free(&res);
        return rc;
    }
    dtm_buf_init(&b, 256 << 20);
    if (!strcmp(fmt, "csv"))
        dtm_result_csv(&res, &b);
    else if (!strcmp(fmt, "xml"))
        result_xml(&res, ds->code, &b);
    else
        dtm_result_json(&res, &b);
    dtm_result_free(&res);
    if (b.err) {
        rc = b.err;
        dtm_buf_free(&b);
        return rc;
    }
    rc = dtm_http_reply(r, 200,
                        !strcmp(fmt, "csv")   ? "text/csv; charset=utf-8"
                        : !strcmp(fmt, "xml") ? "application/xml; charset=utf-8"
                                              : "application/json; charset=utf-8",
                        b.p ? b.p : "", b.n);
    dtm_buf_free(&b);
    return rc;
}
