/* report/report.c — building the document of a periodic report (report.h; CONTRACT §6, issue 7):
 * - `transactions`: per system and per system × service, counted by the statistics engine
 *   (stats/: dtm_query_parse + dtm_query_run, answered from the rollups where they cover the
 *   question, else from the records — the numbers GET /api/v1/stats gives, on either store), with
 *   the same counts of the previous period for the change, and the failure reasons (error_code of
 *   the failed transactions) ranked per system and service;
 * - `connectivity`: from the status intervals the connectivity evaluator records (conn/status.c,
 *   store status_list): per system its time online, degraded and offline within the period,
 *   uptime, the outages (offline intervals) and the heartbeat gaps behind them, and the status
 *   history itself;
 * - `quality` and `ranking`: the sections of report/quality.h.
 * Every section carries a `method` sentence: how each number was computed and from what data. */
#include "report/report.h"
#include "report/quality.h"
#include "stats/stats.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define US 1000000LL

const char *const dtm_report_kinds[DTM_REPORT_KINDS] = {"transactions", "connectivity", "quality",
                                                        "ranking"};

bool dtm_report_kind_valid(const char *kind)
{
    for (size_t i = 0; i < DTM_REPORT_KINDS; i++)
        if (kind && strcmp(kind, dtm_report_kinds[i]) == 0)
            return true;
    return false;
}

/* A report being built. */
struct ctx {
    struct dtm_store *st;
    const struct dtm_conf *conf;
    const struct dtm_dict *dict;
    const struct dtm_period *p;
    bool vi;
    int64_t now;
    char *err;
    size_t errsz;
    /* the statistics query: the result of dtm_query_run points into it (column names), so it
     * lives until the report is built; each result is freed before the next query */
    struct dtm_query *q;
    /* the registered systems (names) */
    struct dtm_system *sys;
    size_t nsys, capsys;
};

#define TR(c, en, vi_text) ((c)->vi ? (vi_text) : (en))

static int sys_collect(void *p, const struct dtm_system *s)
{
    struct ctx *c = p;
    if (dtm_array_reserve(&c->sys, c->nsys, &c->capsys, sizeof(*c->sys)))
        return DTM_ENOMEM;
    c->sys[c->nsys++] = *s;
    return DTM_OK;
}

static const char *sys_name(const struct ctx *c, const char *code)
{
    for (size_t i = 0; i < c->nsys; i++)
        if (strcmp(c->sys[i].code, code) == 0)
            return c->sys[i].name;
    return "";
}

/* ---- the document's parts */

static cJSON *section(cJSON *sections, const char *id, const char *title, const char *method)
{
    cJSON *s = cJSON_CreateObject();
    if (!s)
        return NULL;
    cJSON_AddItemToArray(sections, s);
    cJSON_AddStringToObject(s, "id", id);
    cJSON_AddStringToObject(s, "title", title);
    cJSON_AddStringToObject(s, "method", method);
    cJSON_AddItemToObject(s, "columns", cJSON_CreateArray());
    cJSON_AddItemToObject(s, "rows", cJSON_CreateArray());
    return s;
}

static void column(cJSON *s, const char *key, const char *label, const char *type)
{
    cJSON *c = cJSON_CreateObject();
    if (!c)
        return;
    cJSON_AddStringToObject(c, "key", key);
    cJSON_AddStringToObject(c, "label", label);
    cJSON_AddStringToObject(c, "type", type);
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(s, "columns"), c);
}

static void chart(cJSON *s, const char *type, const char *x, const char *y1, const char *y2)
{
    cJSON *ch = cJSON_AddObjectToObject(s, "chart"), *y;
    if (!ch)
        return;
    cJSON_AddStringToObject(ch, "type", type);
    cJSON_AddStringToObject(ch, "x", x);
    y = cJSON_AddArrayToObject(ch, "y");
    if (y1)
        cJSON_AddItemToArray(y, cJSON_CreateString(y1));
    if (y2)
        cJSON_AddItemToArray(y, cJSON_CreateString(y2));
}

static cJSON *row(cJSON *s)
{
    cJSON *r = cJSON_CreateArray();
    if (r)
        cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(s, "rows"), r);
    return r;
}

static void cell_str(cJSON *r, const char *v)
{
    cJSON_AddItemToArray(r, v ? cJSON_CreateString(v) : cJSON_CreateNull());
}
static void cell_int(cJSON *r, int64_t v)
{
    cJSON_AddItemToArray(r, cJSON_CreateNumber((double)v));
}
/* a number, null when NaN */
static void cell_num(cJSON *r, double v)
{
    cJSON_AddItemToArray(r, isnan(v) ? cJSON_CreateNull() : cJSON_CreateNumber(v));
}
static void cell_time(cJSON *r, int64_t t)
{
    char ts[40];
    if (!t) {
        cJSON_AddItemToArray(r, cJSON_CreateNull());
        return;
    }
    dtm_time_fmt(t, ts, sizeof(ts));
    cJSON_AddItemToArray(r, cJSON_CreateString(ts));
}

/* ---- transactions */

/* One group (a system, or a system × service) and its numbers. */
struct group {
    char sys[DTM_CODE_MAX];
    char svc[128];
    int64_t total, success, failed, pending, prev;
    double avg, p95;
    bool seen; /* in the period (not only in the previous one) */
};

struct groups {
    struct group *g;
    size_t n, cap;
};

static struct group *group_get(struct groups *gs, const char *sys, const char *svc)
{
    for (size_t i = 0; i < gs->n; i++)
        if (strcmp(gs->g[i].sys, sys) == 0 && strcmp(gs->g[i].svc, svc) == 0)
            return &gs->g[i];
    if (dtm_array_reserve(&gs->g, gs->n, &gs->cap, sizeof(*gs->g)))
        return NULL;
    memset(&gs->g[gs->n], 0, sizeof(*gs->g));
    snprintf(gs->g[gs->n].sys, sizeof(gs->g[0].sys), "%s", sys);
    snprintf(gs->g[gs->n].svc, sizeof(gs->g[0].svc), "%s", svc);
    gs->g[gs->n].avg = gs->g[gs->n].p95 = NAN;
    return &gs->g[gs->n++];
}

static int group_cmp(const void *a, const void *b)
{
    const struct group *x = a, *y = b;
    int d = strcmp(x->sys, y->sys);
    return d ? d : strcmp(x->svc, y->svc);
}

/* The text of a result cell: a JSON string's value, a number's text; "" for null. */
static void cell_text(const char *cell, char *out, size_t outsz)
{
    cJSON *j;
    out[0] = '\0';
    if (!cell)
        return;
    if (cell[0] != '"') {
        snprintf(out, outsz, "%s", cell);
        return;
    }
    if ((j = cJSON_Parse(cell)) && cJSON_IsString(j))
        snprintf(out, outsz, "%s", j->valuestring);
    cJSON_Delete(j);
}

static double cell_double(const char *cell)
{
    return cell ? strtod(cell, NULL) : NAN;
}

static int col_of(const struct dtm_result *res, const char *name)
{
    for (size_t j = 0; j < res->ncols; j++)
        if (strcmp(res->cols[j], name) == 0)
            return (int)j;
    return -1;
}

/* Runs a statistics query over [from, to). */
static int query(struct ctx *c, const struct dtm_dataset *ds, const char *metrics,
                 const char *group_by, const char *where, int64_t from, int64_t to,
                 struct dtm_result *res, char *plan, size_t plansz)
{
    struct dtm_query *q;
    const char *bad = NULL;
    const char *wheres[1] = {where};
    int rc;
    if (!c->q && !(c->q = malloc(sizeof(*c->q)))) /* large: not on the stack */
        return DTM_ENOMEM;
    q = c->q;
    rc = dtm_query_parse(ds, metrics, group_by, NULL, NULL, NULL, wheres, where ? 1 : 0, q, &bad,
                         c->err, c->errsz);
    if (rc == DTM_OK) {
        q->from = from;
        q->to = to;
        rc = dtm_query_run(c->st, q, res);
        if (rc == DTM_OK && plan && res->plan)
            snprintf(plan, plansz, "%s", res->plan);
        else if (rc)
            snprintf(c->err, c->errsz, "the statistics query failed (%s)", dtm_rc_name(rc));
    }
    return rc;
}

/* Fills the groups of one grouping (group_by "system_code" or "system_code,service_code"). */
static int tx_groups(struct ctx *c, const struct dtm_dataset *ds, const char *group_by,
                     bool by_service, struct groups *gs, char *plan, size_t plansz)
{
    struct dtm_period prev;
    struct dtm_result res;
    char sys[DTM_CODE_MAX], svc[128], st_text[32], *status_by;
    int rc;
    size_t len = strlen(group_by) + sizeof(",status");
    dtm_period_prev(c->p, &prev);
    /* totals, average and p95 of the period */
    if ((rc = query(c, ds, "count,avg:response_ms,p95:response_ms", group_by, NULL, c->p->from,
                    c->p->to, &res, plan, plansz)))
        return rc;
    {
        int ks = col_of(&res, "system_code"), kv = by_service ? col_of(&res, "service_code") : -1;
        int kn = col_of(&res, "count"), ka = col_of(&res, "avg:response_ms"),
            kp = col_of(&res, "p95:response_ms");
        for (size_t i = 0; i < res.nrows && rc == DTM_OK; i++) {
            struct group *g;
            cell_text(ks >= 0 ? res.rows[i][ks] : NULL, sys, sizeof(sys));
            cell_text(kv >= 0 ? res.rows[i][kv] : NULL, svc, sizeof(svc));
            if (!(g = group_get(gs, sys, svc))) {
                rc = DTM_ENOMEM;
                break;
            }
            g->seen = true;
            g->total = (int64_t)cell_double(res.rows[i][kn]);
            g->avg = cell_double(res.rows[i][ka]);
            g->p95 = cell_double(res.rows[i][kp]);
        }
    }
    dtm_result_free(&res);
    if (rc)
        return rc;
    /* by status */
    if (!(status_by = malloc(len)))
        return DTM_ENOMEM;
    snprintf(status_by, len, "%s,status", group_by);
    rc = query(c, ds, "count", status_by, NULL, c->p->from, c->p->to, &res, NULL, 0);
    free(status_by);
    if (rc)
        return rc;
    {
        int ks = col_of(&res, "system_code"), kv = by_service ? col_of(&res, "service_code") : -1;
        int kst = col_of(&res, "status"), kn = col_of(&res, "count");
        for (size_t i = 0; i < res.nrows && rc == DTM_OK; i++) {
            struct group *g;
            int64_t n = (int64_t)cell_double(res.rows[i][kn]);
            cell_text(ks >= 0 ? res.rows[i][ks] : NULL, sys, sizeof(sys));
            cell_text(kv >= 0 ? res.rows[i][kv] : NULL, svc, sizeof(svc));
            cell_text(res.rows[i][kst], st_text, sizeof(st_text));
            if (!(g = group_get(gs, sys, svc))) {
                rc = DTM_ENOMEM;
                break;
            }
            if (strcmp(st_text, "success") == 0)
                g->success += n;
            else if (strcmp(st_text, "failed") == 0)
                g->failed += n;
            else if (strcmp(st_text, "pending") == 0)
                g->pending += n;
        }
    }
    dtm_result_free(&res);
    if (rc)
        return rc;
    /* the previous period's totals */
    if ((rc = query(c, ds, "count", group_by, NULL, prev.from, prev.to, &res, NULL, 0)))
        return rc;
    {
        int ks = col_of(&res, "system_code"), kv = by_service ? col_of(&res, "service_code") : -1;
        int kn = col_of(&res, "count");
        for (size_t i = 0; i < res.nrows; i++) {
            struct group *g;
            cell_text(ks >= 0 ? res.rows[i][ks] : NULL, sys, sizeof(sys));
            cell_text(kv >= 0 ? res.rows[i][kv] : NULL, svc, sizeof(svc));
            if (!(g = group_get(gs, sys, svc))) {
                rc = DTM_ENOMEM;
                break;
            }
            g->prev = (int64_t)cell_double(res.rows[i][kn]);
        }
    }
    dtm_result_free(&res);
    if (gs->n > 1)
        qsort(gs->g, gs->n, sizeof(*gs->g), group_cmp);
    return rc;
}

static void tx_cells(cJSON *r, const struct group *g)
{
    cell_int(r, g->total);
    cell_int(r, g->success);
    cell_int(r, g->failed);
    cell_int(r, g->pending);
    cell_num(r, g->total ? (double)g->failed / (double)g->total : NAN);
    cell_num(r, g->avg);
    cell_num(r, g->p95);
    cell_int(r, g->prev);
    cell_num(r, g->prev ? (double)(g->total - g->prev) / (double)g->prev : NAN);
}

static void tx_columns(struct ctx *c, cJSON *s)
{
    column(s, "total", TR(c, "Total", "Tổng số"), "int");
    column(s, "successful", TR(c, "Successful", "Thành công"), "int");
    column(s, "failed", TR(c, "Failed", "Thất bại"), "int");
    column(s, "pending", TR(c, "Pending", "Đang xử lý"), "int");
    column(s, "failure_rate", TR(c, "Failure rate", "Tỷ lệ lỗi"), "percent");
    column(s, "avg_ms", TR(c, "Average response", "Phản hồi trung bình"), "ms");
    column(s, "p95_ms", TR(c, "p95 response", "Phản hồi p95"), "ms");
    column(s, "previous_total", TR(c, "Previous period", "Kỳ trước"), "int");
    column(s, "change", TR(c, "Change", "Thay đổi"), "percent");
}

static int tx_method(struct ctx *c, char *out, size_t outsz, const char *what, const char *plan)
{
    struct dtm_period prev;
    dtm_period_prev(c->p, &prev);
    snprintf(out, outsz,
             c->vi ? "Đếm từ tập dữ liệu transactions (các bản ghi có started_at trong kỳ %s, giờ "
                     "UTC+07:00), %s, cùng số liệu như GET /api/v1/stats (nguồn: %s): tổng số = "
                     "mọi bản ghi; thành công, thất bại, đang xử lý = số bản ghi có status "
                     "success, failed, pending; tỷ lệ lỗi = thất bại / tổng số; phản hồi trung "
                     "bình và p95 (hạng gần nhất) tính trên response_ms của các bản ghi có trường "
                     "này; kỳ trước = tổng số của kỳ %s; thay đổi = (tổng số − kỳ trước) / kỳ "
                     "trước, để trống khi kỳ trước bằng 0."
                   : "Counted from the transactions dataset (records whose started_at falls in "
                     "%s, UTC+07:00), %s, the same numbers as GET /api/v1/stats (answered from "
                     "%s): total = every record; successful, failed, pending = records with "
                     "status success, failed, pending; failure rate = failed / total; average and "
                     "p95 (nearest rank) response over the response_ms of the records that carry "
                     "it; previous period = the total of %s; change = (total − previous) / "
                     "previous, empty when the previous total is 0.",
             c->p->label, what, plan, prev.label);
    return DTM_OK;
}

struct reason {
    char code[128];
    int64_t n;
};

static int reason_cmp(const void *a, const void *b)
{
    const struct reason *x = a, *y = b;
    if (x->n != y->n)
        return x->n > y->n ? -1 : 1;
    return strcmp(x->code, y->code);
}

/* Failure reasons per system and service, ranked by count within each: answered from the
 * system × service × status × error_code rollup (the records are scanned where it is not
 * complete: a data dir older than that cube, until `dtm serve` has rebuilt it). */
static int tx_reasons(struct ctx *c, const struct dtm_dataset *ds, cJSON *sections,
                      const struct groups *svc_groups)
{
    struct dtm_result res;
    char plan[128] = "", method[2048];
    cJSON *s;
    int rc;
    if ((rc = query(c, ds, "count", "system_code,service_code,error_code", "status:eq:failed",
                    c->p->from, c->p->to, &res, plan, sizeof(plan))))
        return rc;
    snprintf(method, sizeof(method),
             c->vi ? "Các giao dịch thất bại (status = failed, started_at trong kỳ %s) của mỗi hệ "
                     "thống và dịch vụ (service_code), nhóm theo mã lỗi (error_code) và xếp hạng "
                     "theo số lượng trong từng hệ thống và dịch vụ (bằng nhau thì theo mã); tỷ "
                     "trọng = số giao dịch của mã lỗi / số giao dịch thất bại của hệ thống và dịch "
                     "vụ đó (nguồn: %s)."
                   : "The failed transactions (status = failed, started_at in %s) of each system "
                     "and service (service_code), grouped by error_code and ranked by count "
                     "within each system and service (ties by code); share = the code's count / "
                     "the failed transactions of that system and service (answered from %s).",
             c->p->label, plan);
    if (!(s = section(sections, "failure_reasons",
                      TR(c, "Failure reasons by system and service",
                         "Nguyên nhân lỗi theo hệ thống và dịch vụ"),
                      method))) {
        dtm_result_free(&res);
        return DTM_ENOMEM;
    }
    column(s, "system", TR(c, "System", "Hệ thống"), "text");
    column(s, "service", TR(c, "Service", "Dịch vụ"), "text");
    column(s, "rank", TR(c, "Rank", "Hạng"), "int");
    column(s, "error_code", TR(c, "Error code", "Mã lỗi"), "text");
    column(s, "count", TR(c, "Count", "Số lượng"), "int");
    column(s, "share", TR(c, "Share", "Tỷ trọng"), "percent");
    {
        int ks = col_of(&res, "system_code"), kv = col_of(&res, "service_code"),
            ke = col_of(&res, "error_code"), kn = col_of(&res, "count");
        size_t nrows = res.nrows ? res.nrows : 1;
        struct reason *rs = calloc(nrows, sizeof(*rs));
        char(*sys)[DTM_CODE_MAX] = calloc(nrows, sizeof(*sys));
        char(*svc)[128] = calloc(nrows, sizeof(*svc));
        bool *done = calloc(nrows, sizeof(bool));
        if (!rs || !sys || !svc || !done)
            rc = DTM_ENOMEM;
        for (size_t i = 0; rc == DTM_OK && i < res.nrows; i++) {
            cell_text(res.rows[i][ks], sys[i], sizeof(sys[i]));
            cell_text(res.rows[i][kv], svc[i], sizeof(svc[i]));
        }
        /* systems and services in code order (the groups are sorted) */
        for (size_t gi = 0; rc == DTM_OK && gi < svc_groups->n; gi++) {
            const struct group *g = &svc_groups->g[gi];
            size_t nr = 0;
            for (size_t i = 0; i < res.nrows; i++) {
                if (done[i] || strcmp(sys[i], g->sys) || strcmp(svc[i], g->svc))
                    continue;
                done[i] = true;
                cell_text(res.rows[i][ke], rs[nr].code, sizeof(rs[nr].code));
                rs[nr++].n = (int64_t)cell_double(res.rows[i][kn]);
            }
            if (nr > 1)
                qsort(rs, nr, sizeof(*rs), reason_cmp);
            for (size_t k = 0; k < nr; k++) {
                cJSON *r = row(s);
                if (!r) {
                    rc = DTM_ENOMEM;
                    break;
                }
                cell_str(r, g->sys);
                cell_str(r, g->svc);
                cell_int(r, (int64_t)k + 1);
                cell_str(r, rs[k].code[0] ? rs[k].code : NULL);
                cell_int(r, rs[k].n);
                cell_num(r, g->failed ? (double)rs[k].n / (double)g->failed : NAN);
            }
        }
        free(rs);
        free(sys);
        free(svc);
        free(done);
    }
    dtm_result_free(&res);
    return rc;
}

static int report_transactions(struct ctx *c, cJSON *sections)
{
    const struct dtm_dataset *ds = dtm_dict_get(c->dict, DTM_STR("transactions"));
    struct groups bysys = {0}, bysvc = {0};
    struct group all = {.avg = NAN, .p95 = NAN};
    char plan[128] = "", plan2[128] = "", method[2048];
    cJSON *s, *r;
    int rc;
    if (!ds) {
        snprintf(c->err, c->errsz, "there is no dataset 'transactions'");
        return DTM_ENOTFOUND;
    }
    if ((rc = tx_groups(c, ds, "system_code", false, &bysys, plan, sizeof(plan))) ||
        (rc = tx_groups(c, ds, "system_code,service_code", true, &bysvc, plan2, sizeof(plan2))))
        goto out;
    /* the whole period: the sums of the systems, and the average and p95 of every record */
    {
        struct dtm_result res;
        struct dtm_period prev;
        dtm_period_prev(c->p, &prev);
        for (size_t i = 0; i < bysys.n; i++) {
            all.total += bysys.g[i].total;
            all.success += bysys.g[i].success;
            all.failed += bysys.g[i].failed;
            all.pending += bysys.g[i].pending;
            all.prev += bysys.g[i].prev;
        }
        if ((rc = query(c, ds, "count,avg:response_ms,p95:response_ms", NULL, NULL, c->p->from,
                        c->p->to, &res, NULL, 0)))
            goto out;
        if (res.nrows == 1) {
            all.avg = cell_double(res.rows[0][col_of(&res, "avg:response_ms")]);
            all.p95 = cell_double(res.rows[0][col_of(&res, "p95:response_ms")]);
        }
        dtm_result_free(&res);
    }
    tx_method(c, method, sizeof(method), TR(c, "all systems together", "mọi hệ thống gộp lại"),
              plan);
    if (!(s = section(sections, "summary", TR(c, "Summary", "Tổng hợp"), method)) ||
        !(r = row(s))) {
        rc = DTM_ENOMEM;
        goto out;
    }
    column(s, "period", TR(c, "Period", "Kỳ"), "text");
    tx_columns(c, s);
    cell_str(r, c->p->label);
    tx_cells(r, &all);

    tx_method(c, method, sizeof(method), TR(c, "per system", "theo từng hệ thống"), plan);
    if (!(s = section(sections, "by_system",
                      TR(c, "Transactions by system", "Giao dịch theo hệ thống"), method))) {
        rc = DTM_ENOMEM;
        goto out;
    }
    column(s, "system", TR(c, "System", "Hệ thống"), "text");
    column(s, "name", TR(c, "Name", "Tên hệ thống"), "text");
    tx_columns(c, s);
    chart(s, "bar", "system", "successful", "failed");
    for (size_t i = 0; i < bysys.n; i++) {
        if (!(r = row(s))) {
            rc = DTM_ENOMEM;
            goto out;
        }
        cell_str(r, bysys.g[i].sys);
        cell_str(r, sys_name(c, bysys.g[i].sys));
        tx_cells(r, &bysys.g[i]);
    }

    tx_method(c, method, sizeof(method),
              TR(c, "per system and service (service_code)",
                 "theo từng hệ thống và dịch vụ (service_code)"),
              plan2);
    if (!(s = section(
              sections, "by_service",
              TR(c, "Transactions by system and service", "Giao dịch theo hệ thống và dịch vụ"),
              method))) {
        rc = DTM_ENOMEM;
        goto out;
    }
    column(s, "system", TR(c, "System", "Hệ thống"), "text");
    column(s, "service", TR(c, "Service", "Dịch vụ"), "text");
    tx_columns(c, s);
    for (size_t i = 0; i < bysvc.n; i++) {
        if (!(r = row(s))) {
            rc = DTM_ENOMEM;
            goto out;
        }
        cell_str(r, bysvc.g[i].sys);
        cell_str(r, bysvc.g[i].svc);
        tx_cells(r, &bysvc.g[i]);
    }
    rc = tx_reasons(c, ds, sections, &bysvc);
out:
    free(bysys.g);
    free(bysvc.g);
    return rc;
}

/* ---- connectivity */

struct ivs {
    struct dtm_status_interval *iv;
    size_t n, cap;
};

static int iv_collect(void *p, const struct dtm_status_interval *iv)
{
    struct ivs *x = p;
    if (dtm_array_reserve(&x->iv, x->n, &x->cap, sizeof(*x->iv)))
        return DTM_ENOMEM;
    x->iv[x->n++] = *iv;
    return DTM_OK;
}

static const char *status_label(const struct ctx *c, const char *s)
{
    if (strcmp(s, "online") == 0)
        return TR(c, "online", "trực tuyến");
    if (strcmp(s, "degraded") == 0)
        return TR(c, "degraded", "suy giảm");
    if (strcmp(s, "offline") == 0)
        return TR(c, "offline", "mất kết nối");
    return s;
}

static int report_connectivity(struct ctx *c, cJSON *sections)
{
    struct ivs x = {0};
    int64_t end = DTM_MIN(c->p->to, c->now), from = c->p->from;
    char method[2048];
    cJSON *su, *so, *sg, *sh, *r;
    int rc;
    if ((rc = c->st->ops->status_list(c->st, NULL, from, iv_collect, &x))) {
        snprintf(c->err, c->errsz, "the status history could not be read (%s)", dtm_rc_name(rc));
        goto out;
    }
    snprintf(method, sizeof(method),
             c->vi ? "Từ lịch sử trạng thái kết nối mà DTM ghi lại (mỗi %lld giây, trạng thái của "
                     "từng hệ thống được đánh giá từ lần cuối nhận heartbeat hoặc dữ liệu, tỷ lệ "
                     "lỗi giờ gần nhất và kiểm tra sức khỏe; mỗi thay đổi được lưu thành một "
                     "khoảng), cắt theo kỳ %s đến %s: thời gian trực tuyến, suy giảm, mất kết nối "
                     "= tổng độ dài các khoảng của trạng thái đó trong kỳ; thời gian quan sát = từ "
                     "đầu kỳ (hoặc lần đầu thấy hệ thống) đến cuối kỳ; tỷ lệ hoạt động = (trực "
                     "tuyến + suy giảm) / thời gian quan sát; sự cố = các khoảng mất kết nối."
                   : "From the connectivity status history DTM records (every %lld s each "
                     "system's status is evaluated from its last heartbeat or traffic, the "
                     "failed share of its last hour and its health probe; each change is kept as "
                     "an interval), clipped to %s up to %s: online, degraded, offline = the "
                     "summed length of that status's intervals within the period; observed = "
                     "from the period's start (or when the system was first seen) to its end; "
                     "uptime = (online + degraded) / observed; outages = the offline intervals.",
             (long long)c->conf->check_interval, c->p->label,
             end < c->p->to ? TR(c, "now", "hiện tại") : TR(c, "its end", "cuối kỳ"));
    if (!(su = section(sections, "uptime",
                       TR(c, "Uptime by system", "Tỷ lệ hoạt động theo hệ thống"), method))) {
        rc = DTM_ENOMEM;
        goto out;
    }
    column(su, "system", TR(c, "System", "Hệ thống"), "text");
    column(su, "name", TR(c, "Name", "Tên hệ thống"), "text");
    column(su, "observed_s", TR(c, "Observed (s)", "Quan sát (giây)"), "int");
    column(su, "online_s", TR(c, "Online (s)", "Trực tuyến (giây)"), "int");
    column(su, "degraded_s", TR(c, "Degraded (s)", "Suy giảm (giây)"), "int");
    column(su, "offline_s", TR(c, "Offline (s)", "Mất kết nối (giây)"), "int");
    column(su, "uptime", TR(c, "Uptime", "Tỷ lệ hoạt động"), "percent");
    column(su, "outages", TR(c, "Outages", "Số sự cố"), "int");
    column(su, "longest_outage_s", TR(c, "Longest outage (s)", "Sự cố dài nhất (giây)"), "int");
    chart(su, "bar", "system", "uptime", NULL);

    snprintf(method, sizeof(method),
             c->vi ? "Mỗi khoảng hệ thống ở trạng thái mất kết nối (offline: không nhận được "
                     "heartbeat hay dữ liệu trong [systems] online_within = %lld giây) giao với kỳ "
                     "%s; bắt đầu và kết thúc cắt theo kỳ, kết thúc để trống khi sự cố còn tiếp "
                     "diễn; thời lượng tính bằng giây trong kỳ."
                   : "Each interval a system spent offline (no heartbeat or traffic within "
                     "[systems] online_within = %lld s) that meets %s; start and end clipped to "
                     "the period, the end empty while the outage goes on; the duration in "
                     "seconds within the period.",
             (long long)c->conf->online_within, c->p->label);
    if (!(so = section(sections, "outages", TR(c, "Outages", "Sự cố mất kết nối"), method))) {
        rc = DTM_ENOMEM;
        goto out;
    }
    column(so, "system", TR(c, "System", "Hệ thống"), "text");
    column(so, "start", TR(c, "Start", "Bắt đầu"), "time");
    column(so, "end", TR(c, "End", "Kết thúc"), "time");
    column(so, "duration_s", TR(c, "Duration (s)", "Thời lượng (giây)"), "int");

    snprintf(method, sizeof(method),
             c->vi ? "Khoảng trống heartbeat: một hệ thống bị đánh dấu mất kết nối khi không "
                     "nhận được heartbeat hay dữ liệu trong online_within = %lld giây, nên lần "
                     "liên lạc cuối = đầu khoảng mất kết nối − %lld giây (chính xác trong vòng "
                     "check_interval = %lld giây) và lần liên lạc tiếp theo = cuối khoảng đó; "
                     "khoảng trống = lần tiếp theo − lần cuối (để trống khi chưa liên lạc lại)."
                   : "Heartbeat gaps: a system is marked offline when no heartbeat or traffic "
                     "came within online_within = %lld s, so its last contact = the offline "
                     "interval's start − %lld s (to within check_interval = %lld s) and its next "
                     "contact = that interval's end; gap = next − last contact (empty while none "
                     "came yet).",
             (long long)c->conf->online_within, (long long)c->conf->online_within,
             (long long)c->conf->check_interval);
    if (!(sg = section(sections, "heartbeat_gaps",
                       TR(c, "Heartbeat gaps", "Khoảng trống heartbeat"), method))) {
        rc = DTM_ENOMEM;
        goto out;
    }
    column(sg, "system", TR(c, "System", "Hệ thống"), "text");
    column(sg, "last_contact", TR(c, "Last contact", "Liên lạc cuối"), "time");
    column(sg, "next_contact", TR(c, "Next contact", "Liên lạc tiếp theo"), "time");
    column(sg, "gap_s", TR(c, "Gap (s)", "Khoảng trống (giây)"), "int");

    snprintf(method, sizeof(method),
             c->vi ? "Mọi khoảng trạng thái đã ghi của từng hệ thống giao với kỳ %s, theo thời "
                     "gian; từ và đến cắt theo kỳ (đến để trống với trạng thái hiện tại)."
                   : "Every recorded status interval of each system that meets %s, in time "
                     "order; from and to clipped to the period (to empty for the current "
                     "status).",
             c->p->label);
    if (!(sh = section(sections, "history", TR(c, "Status history", "Lịch sử trạng thái"),
                       method))) {
        rc = DTM_ENOMEM;
        goto out;
    }
    column(sh, "system", TR(c, "System", "Hệ thống"), "text");
    column(sh, "status", TR(c, "Status", "Trạng thái"), "class");
    column(sh, "from", TR(c, "From", "Từ"), "time");
    column(sh, "to", TR(c, "To", "Đến"), "time");
    column(sh, "duration_s", TR(c, "Duration (s)", "Thời lượng (giây)"), "int");

    for (size_t si = 0; si < c->nsys; si++) {
        const char *code = c->sys[si].code;
        int64_t on = 0, deg = 0, off = 0, first = 0, longest = 0, outages = 0;
        for (size_t i = 0; i < x.n; i++) {
            const struct dtm_status_interval *iv = &x.iv[i];
            int64_t a, b, until = iv->until ? iv->until : end;
            if (strcmp(iv->system_code, code) || iv->since >= end || until <= from)
                continue;
            a = DTM_MAX(iv->since, from);
            b = DTM_MIN(until, end);
            if (!first)
                first = a;
            if (strcmp(iv->status, "online") == 0)
                on += b - a;
            else if (strcmp(iv->status, "degraded") == 0)
                deg += b - a;
            else if (strcmp(iv->status, "offline") == 0) {
                off += b - a;
                outages++;
                longest = DTM_MAX(longest, b - a);
                if (!(r = row(so)))
                    goto nomem;
                cell_str(r, code);
                cell_time(r, a);
                cell_time(r, iv->until && iv->until <= end ? b : 0);
                cell_int(r, (b - a) / US);
                if (!(r = row(sg)))
                    goto nomem;
                cell_str(r, code);
                cell_time(r, iv->since - c->conf->online_within * US);
                cell_time(r, iv->until);
                if (iv->until && iv->until <= end)
                    cell_int(r, (iv->until - (iv->since - c->conf->online_within * US)) / US);
                else
                    cell_str(r, NULL);
            }
            if (!(r = row(sh)))
                goto nomem;
            cell_str(r, code);
            cell_str(r, status_label(c, iv->status));
            cell_time(r, a);
            cell_time(r, iv->until && iv->until <= end ? b : 0);
            cell_int(r, (b - a) / US);
        }
        if (!(r = row(su)))
            goto nomem;
        cell_str(r, code);
        cell_str(r, c->sys[si].name);
        if (!first) { /* never seen within the period */
            for (int k = 0; k < 5; k++)
                cell_str(r, NULL);
            cell_int(r, 0);
            cell_int(r, 0);
            continue;
        }
        cell_int(r, (end - first) / US);
        cell_int(r, on / US);
        cell_int(r, deg / US);
        cell_int(r, off / US);
        cell_num(r, end > first ? (double)(on + deg) / (double)(end - first) : NAN);
        cell_int(r, outages);
        cell_int(r, longest / US);
    }
    goto out;
nomem:
    rc = DTM_ENOMEM;
out:
    free(x.iv);
    return rc;
}

/* ---- the document */

static const char *title_of(const struct ctx *c, const char *kind)
{
    if (strcmp(kind, "transactions") == 0)
        return TR(c, "Transaction report", "Báo cáo giao dịch");
    if (strcmp(kind, "connectivity") == 0)
        return TR(c, "Connectivity report", "Báo cáo kết nối");
    if (strcmp(kind, "quality") == 0)
        return TR(c, "Data quality report", "Báo cáo chất lượng dữ liệu");
    return TR(c, "Ranking of connected systems", "Báo cáo xếp hạng hệ thống kết nối");
}

int dtm_report_build(struct dtm_store *st, const struct dtm_conf *conf, const struct dtm_dict *dict,
                     const char *kind, const struct dtm_period *p, const char *lang, int64_t now,
                     cJSON **out, char *err, size_t errsz)
{
    struct ctx c = {.st = st,
                    .conf = conf,
                    .dict = dict,
                    .p = p,
                    .vi = strcmp(lang, "en") != 0,
                    .now = now,
                    .err = err,
                    .errsz = errsz};
    char ts[40];
    cJSON *doc, *sections;
    int rc;
    *out = NULL;
    err[0] = '\0';
    if (!dtm_report_kind_valid(kind)) {
        snprintf(err, errsz, "kind must be transactions, connectivity, quality or ranking");
        return DTM_EINVAL;
    }
    if ((rc = st->ops->system_list(st, sys_collect, &c))) {
        snprintf(err, errsz, "the connected systems could not be read (%s)", dtm_rc_name(rc));
        free(c.sys);
        return rc;
    }
    if (!(doc = cJSON_CreateObject())) {
        free(c.sys);
        return DTM_ENOMEM;
    }
    cJSON_AddStringToObject(doc, "kind", kind);
    dtm_period_json(p, doc);
    cJSON_AddStringToObject(doc, "period_kind", dtm_period_kind_name(p->kind));
    dtm_time_fmt(now, ts, sizeof(ts));
    cJSON_AddStringToObject(doc, "generated_at", ts);
    cJSON_AddStringToObject(doc, "lang", c.vi ? "vi" : "en");
    cJSON_AddStringToObject(doc, "title", title_of(&c, kind));
    /* a period not over yet: its numbers will still change */
    cJSON_AddBoolToObject(doc, "provisional", p->to > now);
    sections = cJSON_AddArrayToObject(doc, "sections");
    if (!sections)
        rc = DTM_ENOMEM;
    else if (strcmp(kind, "transactions") == 0)
        rc = report_transactions(&c, sections);
    else if (strcmp(kind, "connectivity") == 0)
        rc = report_connectivity(&c, sections);
    else if (strcmp(kind, "quality") == 0)
        rc = dtm_quality_report(st, conf, dict, p, c.vi ? "vi" : "en", sections, err, errsz);
    else
        rc = dtm_ranking_report(st, conf, dict, p, c.vi ? "vi" : "en", sections, err, errsz);
    free(c.sys);
    free(c.q);
    if (rc) {
        if (!err[0])
            snprintf(err, errsz, "the report could not be built (%s)", dtm_rc_name(rc));
        cJSON_Delete(doc);
        return rc;
    }
    *out = doc;
    return DTM_OK;
}
