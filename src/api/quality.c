/* api/quality.c — GET /api/v1/quality, /api/v1/reconciliation and /api/v1/rankings (CONTRACT §6;
 * G4, G5, Circular Art. 5.5): the period from `period` (src/report/period.h; rankings also take
 * `year`), the computation of report/quality.c, answered as JSON or, with format=csv (or
 * Accept: text/csv), as one CSV table of the rows. Readers: every signed-in person (operators,
 * analysts, auditors, admins). */
#include "api/api.h"
#include "report/quality.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*compute_fn)(struct dtm_store *st, const struct dtm_conf *conf,
                          const struct dtm_dict *dict, const struct dtm_period *p, const char *lang,
                          int64_t now, cJSON **out, char *err, size_t errsz);

/* One CSV cell of a JSON value: numbers as JSON writes them, arrays as their items joined by
 * spaces (top errors as code:count), null as empty. */
static void csv_value(struct dtm_buf *b, const cJSON *v)
{
    if (!v || cJSON_IsNull(v))
        return;
    if (cJSON_IsString(v)) {
        dtm_buf_csv(b, dtm_str_c(v->valuestring));
    } else if (cJSON_IsArray(v)) {
        struct dtm_buf t;
        const cJSON *e;
        dtm_buf_init(&t, 1 << 20);
        cJSON_ArrayForEach(e, v)
        {
            if (t.n)
                dtm_buf_addc(&t, " ");
            if (cJSON_IsString(e))
                dtm_buf_addc(&t, e->valuestring);
            else if (cJSON_IsObject(e)) {
                const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "code"),
                            *n = cJSON_GetObjectItemCaseSensitive(e, "count");
                if (cJSON_IsString(c) && cJSON_IsNumber(n))
                    dtm_buf_printf(&t, "%s:%.0f", c->valuestring, n->valuedouble);
            }
        }
        dtm_buf_csv(b, (struct dtm_str){t.p ? t.p : "", t.n});
        dtm_buf_free(&t);
    } else {
        char *s = cJSON_PrintUnformatted(v);
        if (s)
            dtm_buf_addc(b, s);
        free(s);
    }
}

/* The rows as CSV: the members of the first row (rankings: the criteria's scores) as columns. */
static void rows_csv(const cJSON *rows, struct dtm_buf *b)
{
    const cJSON *first = cJSON_GetArrayItem(rows, 0), *m, *row;
    bool start = true;
    if (!first)
        return;
    cJSON_ArrayForEach(m, first)
    {
        if (cJSON_IsObject(m)) { /* criteria: one column per criterion */
            const cJSON *c;
            cJSON_ArrayForEach(c, m)
            {
                dtm_buf_addc(b, start ? "" : ",");
                dtm_buf_csv(b, dtm_str_c(c->string));
                start = false;
            }
            continue;
        }
        dtm_buf_addc(b, start ? "" : ",");
        dtm_buf_csv(b, dtm_str_c(m->string));
        start = false;
    }
    dtm_buf_addc(b, "\r\n");
    cJSON_ArrayForEach(row, rows)
    {
        start = true;
        cJSON_ArrayForEach(m, first)
        {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, m->string);
            if (cJSON_IsObject(m)) {
                const cJSON *c;
                cJSON_ArrayForEach(c, m)
                {
                    const cJSON *cv = cJSON_GetObjectItemCaseSensitive(v, c->string);
                    dtm_buf_addc(b, start ? "" : ",");
                    csv_value(b, cJSON_GetObjectItemCaseSensitive(cv, "score"));
                    start = false;
                }
                continue;
            }
            dtm_buf_addc(b, start ? "" : ",");
            csv_value(b, v);
            start = false;
        }
        dtm_buf_addc(b, "\r\n");
    }
}

/* A connected system (CONTRACT §3: a source reads its own quality) sees the rows of the systems
 * it may read (its own; an aggregator's children too); a consumer none: 403. */
static int scope_rows(struct dtm_req *r, struct dtm_store *st, cJSON *doc)
{
    const struct dtm_server_env *env = dtm_http_env(r);
    const struct dtm_dataset *ds = dtm_dict_get(env->dict, dtm_str_c("transactions"));
    struct dtm_api_scope *sc;
    cJSON *rows = cJSON_GetObjectItemCaseSensitive(doc, "rows"), *row;
    int rc;
    if (r->person)
        return DTM_OK;
    if (strcmp(r->sys.role, "consumer") == 0 || !ds)
        return dtm_http_problem(
            r, 403, "forbidden", "Forbidden",
            "Data quality is read by people and by the systems that send data.");
    if (!(sc = dtm_arena_alloc(&r->arena, sizeof(*sc))))
        return DTM_ENOMEM;
    if ((rc = dtm_api_scope(r, st, ds, sc)))
        return rc;
    for (row = rows ? rows->child : NULL; row && !sc->all;) {
        cJSON *next = row->next;
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(row, "system");
        bool mine = false;
        for (size_t i = 0; i < sc->n && !mine; i++)
            mine = cJSON_IsString(s) && strcmp(s->valuestring, sc->codes[i]) == 0;
        if (!mine)
            cJSON_Delete(cJSON_DetachItemViaPointer(rows, row));
        row = next;
    }
    return DTM_OK;
}

static int answer(struct dtm_req *r, compute_fn fn, const char *pname, const char *plabel)
{
    const struct dtm_server_env *env = dtm_http_env(r);
    struct dtm_store *st = dtm_http_store(r);
    const char *fmt = dtm_http_query(r, "format");
    struct dtm_str accept = dtm_http_header(r, "Accept");
    struct dtm_period p;
    cJSON *doc = NULL;
    char err[256];
    int rc;
    if (!st)
        return DTM_ESTORE;
    if (!fmt)
        fmt = dtm_str_contains(accept, "text/csv") ? "csv" : "json";
    if (strcmp(fmt, "json") != 0 && strcmp(fmt, "csv") != 0)
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "Parameter 'format' must be json or csv.");
    if (plabel) {
        if (dtm_period_parse(plabel, &p))
            return dtm_http_problem(
                r, 400, "bad_parameter", "Bad parameter",
                "Parameter '%s': a period is a day (2026-10-05), an ISO week (2026-W42), a "
                "month (2026-10), a quarter (2026-Q3) or a year (2026).",
                pname);
    } else {
        dtm_period_at(strcmp(pname, "year") == 0 ? DTM_P_YEAR : DTM_P_MONTH, dtm_now_us(), &p);
    }
    if ((rc = fn(st, env->conf, env->dict, &p, dtm_lang_code(r->lang), dtm_now_us(), &doc, err,
                 sizeof(err)))) {
        dtm_logf(DTM_LOG_WARN, "quality: computation failed", "\"error\":\"%s\"", dtm_rc_name(rc));
        return rc;
    }
    if (fn == dtm_quality_json && (rc = scope_rows(r, st, doc))) {
        cJSON_Delete(doc);
        return r->responded ? DTM_OK : rc;
    }
    if (strcmp(fmt, "csv") == 0) {
        struct dtm_buf b;
        dtm_buf_init(&b, 256 << 20);
        rows_csv(cJSON_GetObjectItemCaseSensitive(doc, "rows"), &b);
        cJSON_Delete(doc);
        if (b.err) {
            rc = b.err;
            dtm_buf_free(&b);
            return rc;
        }
        rc = dtm_http_reply(r, 200, "text/csv; charset=utf-8", b.p ? b.p : "", b.n);
        dtm_buf_free(&b);
        return rc;
    }
    {
        char *s = cJSON_PrintUnformatted(doc);
        cJSON_Delete(doc);
        if (!s)
            return DTM_ENOMEM;
        rc = dtm_http_reply(r, 200, "application/json; charset=utf-8", s, strlen(s));
        free(s);
        return rc;
    }
}

int dtm_api_quality(struct dtm_req *r)
{
    return answer(r, dtm_quality_json, "period", dtm_http_query(r, "period"));
}

int dtm_api_reconciliation(struct dtm_req *r)
{
    return answer(r, dtm_reconciliation_json, "period", dtm_http_query(r, "period"));
}

int dtm_api_rankings(struct dtm_req *r)
{
    const char *year = dtm_http_query(r, "year"), *period = dtm_http_query(r, "period");
    if (year && period)
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "Parameter 'year': give year or period, not both.");
    if (year && (strlen(year) != 4 || strspn(year, "0123456789") != 4))
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "Parameter 'year': a year is four digits (2026).");
    return year ? answer(r, dtm_rankings_json, "year", year)
                : answer(r, dtm_rankings_json, period ? "period" : "year", period);
}
