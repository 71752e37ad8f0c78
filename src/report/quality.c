/* report/quality.c — data quality (G4), reconciliation (Circular Art. 5.5, T1.4) and the
 * ranking of systems (G5): one computation behind GET /api/v1/quality, /reconciliation,
 * /rankings (api/quality.c), the `quality` and `ranking` report sections and the server's
 * periodic reconciliation check that raises alerts. Every number comes with how it was
 * computed: the `method` texts and, for rankings, each score's inputs and formula.
 *
 * Where the numbers come from:
 * - service_stats records (the periodic reports of each system) in the period, by period_start;
 * - transactions counted per system, service and day through the statistics engine (the
 *   rollups when they cover the query, else a scan of the records);
 * - quality_counts (migration 23, report/qcount.c): per receipt day, system and dataset, the
 *   records accepted, updated, duplicate, rejected (by error code) and the lag between event
 *   time and receipt, counted by the writer in the same transaction as the records;
 * - connectivity intervals (uptime), security_events records, the vulnerability register and
 *   the alerts (rankings).
 * A system's reporting schedule: [quality] schedules (CODE=kind) or default_schedule — a
 * deployment decision of the regulator, so configuration rather than per-system data. */
#include "report/quality.h"

#include "alert/alert.h"
#include "conn/conn.h"
#include "report/period.h"
#include "stats/stats.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RECON_RULE "quality.reconciliation"

/* ---- small helpers */

static const char *L(const char *lang, const char *en, const char *vi)
{
    return lang && strcmp(lang, "en") == 0 ? en : vi;
}

static void cpy(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

/* A cell of a statistics result: strings come quoted (JSON), labels bare. */
static void cell_text(const char *cell, char *out, size_t outsz)
{
    out[0] = 0;
    if (!cell)
        return;
    if (cell[0] == '"') {
        cJSON *j = cJSON_Parse(cell);
        if (cJSON_IsString(j))
            cpy(out, outsz, j->valuestring);
        cJSON_Delete(j);
        return;
    }
    cpy(out, outsz, cell);
}

static double cell_num(const char *cell)
{
    return cell ? strtod(cell, NULL) : NAN;
}

static int64_t day_of(int64_t t_us)
{
    return dtm_cube_bucket(DTM_GRAIN_DAY, t_us);
}

static void date_label(int64_t t_us, char *out, size_t n)
{
    int64_t y;
    unsigned m, d;
    dtm_civil_from_days(day_of(t_us), &y, &m, &d);
    snprintf(out, n, "%04lld-%02u-%02u", (long long)y, m, d);
}

static cJSON *num_or_null(double v)
{
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

/* a share rounded to 6 decimals, so that JSON shows 0.857143 rather than 0.8571428571428571 */
static double r6(double v)
{
    return isfinite(v) ? round(v * 1e6) / 1e6 : v;
}

static double r2(double v)
{
    return isfinite(v) ? round(v * 100) / 100 : v;
}

/* ---- the systems and their schedules */

struct sys {
    char code[DTM_CODE_MAX];
    char name[256];
    char role[16];
    int64_t created_at;
    enum dtm_period_kind sched;
};

struct ctx {
    struct dtm_store *st;
    const struct dtm_conf *conf;
    const struct dtm_dict *dict;
    int64_t now, from, to;
    struct sys *sys;
    size_t nsys, capsys;
    struct rep *rep;
    size_t nrep, caprep;
    struct tx *tx;
    size_t ntx, captx;
    struct rrow *rr;
    size_t nrr, caprr;
    char err[256];
};

/* The kind of period a dataset's update_frequency names (daily → day, …); month otherwise. */
static enum dtm_period_kind kind_of_frequency(const struct dtm_dict *dict)
{
    static const char *const f[][2] = {
        {"daily", "day"},   {"weekly", "week"}, {"monthly", "month"}, {"quarterly", "quarter"},
        {"yearly", "year"}, {"annual", "year"}, {"annually", "year"}};
    const struct dtm_dataset *ds = dict ? dtm_dict_get(dict, dtm_str_c("service_stats")) : NULL;
    enum dtm_period_kind k = DTM_P_MONTH;
    for (size_t i = 0; ds && ds->update_frequency && i < DTM_ARRAY_LEN(f); i++)
        if (strcmp(ds->update_frequency, f[i][0]) == 0 ||
            strcmp(ds->update_frequency, f[i][1]) == 0)
            dtm_period_kind_parse(f[i][1], &k);
    return k;
}

enum dtm_period_kind dtm_quality_schedule(const struct dtm_conf *c, const struct dtm_dict *dict,
                                          const char *code)
{
    enum dtm_period_kind k = DTM_P_MONTH;
    const char *p = c->quality_schedules;
    size_t cl = strlen(code);
    if (!c->quality_default_schedule[0] ||
        dtm_period_kind_parse(c->quality_default_schedule, &k) != DTM_OK)
        k = kind_of_frequency(dict);
    /* CODE=kind items, comma-separated, spaces around each part ignored */
    while (p && *p) {
        const char *end = strchr(p, ','), *stop = end ? end : p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(stop - p)), *ks = p, *ke, *vs, *ve;
        if (eq) {
            for (; ks < eq && *ks == ' '; ks++)
                ;
            for (ke = eq; ke > ks && ke[-1] == ' '; ke--)
                ;
            for (vs = eq + 1; vs < stop && *vs == ' '; vs++)
                ;
            for (ve = stop; ve > vs && ve[-1] == ' '; ve--)
                ;
            if ((size_t)(ke - ks) == cl && memcmp(ks, code, cl) == 0) {
                char kind[16];
                enum dtm_period_kind v;
                snprintf(kind, sizeof(kind), "%.*s",
                         (int)DTM_MIN((size_t)(ve - vs), sizeof(kind) - 1), vs);
                if (dtm_period_kind_parse(kind, &v) == DTM_OK)
                    k = v;
            }
        }
        p = end ? end + 1 : NULL;
    }
    return k;
}

static int sys_cb(void *vctx, const struct dtm_system *s)
{
    struct ctx *x = vctx;
    struct sys *y;
    if (strcmp(s->role, "consumer") == 0)
        return 0; /* consumers send no data: nothing to measure */
    if (dtm_array_reserve(&x->sys, x->nsys, &x->capsys, sizeof(*x->sys)))
        return DTM_ENOMEM;
    y = &x->sys[x->nsys++];
    cpy(y->code, sizeof(y->code), s->code);
    cpy(y->name, sizeof(y->name), s->name);
    cpy(y->role, sizeof(y->role), s->role);
    y->created_at = s->created_at;
    y->sched = dtm_quality_schedule(x->conf, x->dict, s->code);
    return 0;
}

static struct sys *find_sys(struct ctx *x, const char *code)
{
    for (size_t i = 0; i < x->nsys; i++)
        if (strcmp(x->sys[i].code, code) == 0)
            return &x->sys[i];
    return NULL;
}

/* ---- service_stats reports */

struct rep {
    char sys[DTM_CODE_MAX], svc[DTM_CODE_MAX];
    enum dtm_period_kind kind;
    int64_t ps, pe; /* the reported period [ps, pe) */
    char label[16];
    int64_t total;
    int64_t received_at;
};

static int rep_cb(void *vctx, const struct dtm_record_version *v)
{
    struct ctx *x = vctx;
    cJSON *j = cJSON_ParseWithLength(v->content.p, v->content.n), *f;
    struct rep r;
    struct dtm_period p;
    int64_t days;
    memset(&r, 0, sizeof(r));
    if (!j)
        return 0;
    f = cJSON_GetObjectItemCaseSensitive(j, "system_code");
    cpy(r.sys, sizeof(r.sys), cJSON_IsString(f) ? f->valuestring : "");
    f = cJSON_GetObjectItemCaseSensitive(j, "service_code");
    cpy(r.svc, sizeof(r.svc), cJSON_IsString(f) ? f->valuestring : "");
    f = cJSON_GetObjectItemCaseSensitive(j, "period_type");
    if (!cJSON_IsString(f) || dtm_period_kind_parse(f->valuestring, &r.kind))
        goto skip;
    f = cJSON_GetObjectItemCaseSensitive(j, "period_start");
    if (!cJSON_IsString(f) || dtm_date_parse(dtm_str_c(f->valuestring), &days))
        goto skip;
    dtm_period_at(r.kind, dtm_day_start(days), &p);
    r.ps = p.from;
    r.pe = p.to;
    cpy(r.label, sizeof(r.label), p.label);
    f = cJSON_GetObjectItemCaseSensitive(j, "total");
    r.total = cJSON_IsNumber(f) ? (int64_t)f->valuedouble : 0;
    r.received_at = v->received_at;
    if (dtm_array_reserve(&x->rep, x->nrep, &x->caprep, sizeof(*x->rep))) {
        cJSON_Delete(j);
        return DTM_ENOMEM;
    }
    x->rep[x->nrep++] = r;
skip:
    cJSON_Delete(j);
    return 0;
}

/* ---- transactions per system, service and day */

struct tx {
    char sys[DTM_CODE_MAX], svc[DTM_CODE_MAX];
    int64_t day, n;
};

static int cmp_tx(const void *a, const void *b)
{
    const struct tx *p = a, *q = b;
    int c = strcmp(p->sys, q->sys);
    if (!c)
        c = strcmp(p->svc, q->svc);
    if (!c)
        c = p->day < q->day ? -1 : p->day > q->day;
    return c;
}

static const struct dtm_dataset *dataset(struct ctx *x, const char *code)
{
    return dtm_dict_get(x->dict, dtm_str_c(code));
}

/* Runs a statistics query over [from, to); the caller frees res. */
static int stats(struct ctx *x, const char *ds_code, const char *metrics, const char *group_by,
                 const char *interval, int64_t from, int64_t to, struct dtm_result *res)
{
    const struct dtm_dataset *ds = dataset(x, ds_code);
    struct dtm_query *q;
    const char *bad = NULL;
    int rc;
    if (!ds)
        return DTM_ENOTFOUND;
    if (!(q = calloc(1, sizeof(*q))))
        return DTM_ENOMEM;
    rc = dtm_query_parse(ds, metrics, group_by, interval, NULL, NULL, NULL, 0, q, &bad, x->err,
                         sizeof(x->err));
    if (rc == DTM_OK) {
        q->from = from;
        q->to = to;
        rc = dtm_query_run(x->st, q, res);
    }
    free(q);
    return rc;
}

static int load_tx(struct ctx *x, int64_t from, int64_t to)
{
    struct dtm_result res;
    int rc = stats(x, "transactions", "count", "system_code,service_code", "day", from, to, &res);
    if (rc == DTM_ENOTFOUND)
        return DTM_OK;
    if (rc)
        return rc;
    for (size_t i = 0; i < res.nrows && rc == DTM_OK; i++) {
        struct tx t;
        char lab[40];
        int64_t days;
        cell_text(res.rows[i][0], t.sys, sizeof(t.sys));
        cell_text(res.rows[i][1], t.svc, sizeof(t.svc));
        cell_text(res.rows[i][2], lab, sizeof(lab));
        if (dtm_date_parse(dtm_str_c(lab), &days))
            continue;
        t.day = days;
        t.n = (int64_t)cell_num(res.rows[i][3]);
        if ((rc = dtm_array_reserve(&x->tx, x->ntx, &x->captx, sizeof(*x->tx))) == DTM_OK)
            x->tx[x->ntx++] = t;
    }
    dtm_result_free(&res);
    if (x->ntx)
        qsort(x->tx, x->ntx, sizeof(*x->tx), cmp_tx);
    return rc;
}

/* Transactions of a system and service in [from, to): a binary search to the first day of the
 * range in the sorted rows, then the days of the range. */
static int64_t tx_count(struct ctx *x, const char *sys, const char *svc, int64_t from, int64_t to)
{
    int64_t d0 = day_of(from), d1 = day_of(to), n = 0;
    size_t lo = 0, hi = x->ntx;
    struct tx key;
    cpy(key.sys, sizeof(key.sys), sys);
    cpy(key.svc, sizeof(key.svc), svc);
    key.day = d0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cmp_tx(&x->tx[mid], &key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < x->ntx && x->tx[lo].day < d1 && strcmp(x->tx[lo].sys, sys) == 0 &&
           strcmp(x->tx[lo].svc, svc) == 0;
         lo++)
        n += x->tx[lo].n;
    return n;
}

/* Reports sorted by system, service, period start; the first of a system (svc NULL) or of a
 * system and service. */
static int cmp_rep(const void *a, const void *b)
{
    const struct rep *p = a, *q = b;
    int c = strcmp(p->sys, q->sys);
    if (!c)
        c = strcmp(p->svc, q->svc);
    if (!c)
        c = p->ps < q->ps ? -1 : p->ps > q->ps;
    return c;
}

static size_t rep_first(struct ctx *x, const char *sys, const char *svc)
{
    size_t lo = 0, hi = x->nrep;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(x->rep[mid].sys, sys);
        if (!c && svc)
            c = strcmp(x->rep[mid].svc, svc);
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* ---- reconciliation */

enum rstatus { R_MATCHED, R_MISMATCHED, R_MISSING_TX, R_MISSING_REPORT };
static const char *const rstatus_name[] = {"matched", "mismatched", "missing_transactions",
                                           "missing_report"};

struct rrow {
    char sys[DTM_CODE_MAX], svc[DTM_CODE_MAX];
    enum dtm_period_kind kind;
    char label[16];
    int64_t ps, pe;
    bool has_report;
    int64_t reported, counted, received_at;
    double allowed;
    enum rstatus status;
};

static int cmp_rrow(const void *a, const void *b)
{
    const struct rrow *p = a, *q = b;
    int c = strcmp(p->sys, q->sys);
    if (!c)
        c = strcmp(p->svc, q->svc);
    if (!c)
        c = p->ps < q->ps ? -1 : p->ps > q->ps;
    if (!c)
        c = (int)p->kind - (int)q->kind;
    return c;
}

static int add_rrow(struct ctx *x, const struct rrow *r)
{
    if (dtm_array_reserve(&x->rr, x->nrr, &x->caprr, sizeof(*x->rr)))
        return DTM_ENOMEM;
    x->rr[x->nrr++] = *r;
    return DTM_OK;
}

/* Loads systems, the reports with period_start in [from, to) and the transactions they and the
 * period cover, and builds the reconciliation rows. */
static int prepare(struct ctx *x)
{
    int64_t tfrom = x->from, tto = x->to;
    int rc;
    if ((rc = x->st->ops->system_list(x->st, sys_cb, x)))
        return rc;
    if (dataset(x, "service_stats") &&
        (rc = x->st->ops->record_scan(x->st, "service_stats", x->from, x->to, false, rep_cb, x)))
        return rc;
    if (x->nrep)
        qsort(x->rep, x->nrep, sizeof(*x->rep), cmp_rep);
    for (size_t i = 0; i < x->nrep; i++) {
        tfrom = DTM_MIN(tfrom, x->rep[i].ps);
        tto = DTM_MAX(tto, x->rep[i].pe);
    }
    if ((rc = load_tx(x, tfrom, tto)))
        return rc;
    /* one row per report */
    for (size_t i = 0; i < x->nrep; i++) {
        const struct rep *p = &x->rep[i];
        struct rrow r;
        memset(&r, 0, sizeof(r));
        cpy(r.sys, sizeof(r.sys), p->sys);
        cpy(r.svc, sizeof(r.svc), p->svc);
        r.kind = p->kind;
        cpy(r.label, sizeof(r.label), p->label);
        r.ps = p->ps;
        r.pe = p->pe;
        r.has_report = true;
        r.reported = p->total;
        r.received_at = p->received_at;
        r.counted = tx_count(x, p->sys, p->svc, p->ps, p->pe);
        r.allowed = DTM_MAX(x->conf->quality_recon_tolerance * (double)p->total,
                            (double)x->conf->quality_recon_floor);
        if (r.counted == 0 && r.reported > 0)
            r.status = R_MISSING_TX;
        else
            r.status = fabs((double)(r.counted - r.reported)) <= r.allowed + 1e-9 ? R_MATCHED
                                                                                  : R_MISMATCHED;
        if ((rc = add_rrow(x, &r)))
            return rc;
    }
    /* transactions without a report: for each system and service with transactions, every
     * period of the system's schedule that starts in the range and has ended, that no report of
     * the system and service overlaps */
    for (size_t i = 0; i < x->ntx; i++) {
        const struct tx *t = &x->tx[i];
        struct sys *s;
        struct dtm_period q;
        if (i > 0 && strcmp(t->sys, x->tx[i - 1].sys) == 0 && strcmp(t->svc, x->tx[i - 1].svc) == 0)
            continue; /* the first row of each (system, service) does the work */
        s = find_sys(x, t->sys);
        dtm_period_at(s ? s->sched : DTM_P_MONTH, x->from, &q);
        if (q.from < x->from)
            dtm_period_next(&q, &q);
        for (; q.from < x->to && q.to <= x->now; dtm_period_next(&q, &q)) {
            struct rrow r;
            bool covered = false;
            int64_t n = tx_count(x, t->sys, t->svc, q.from, q.to);
            if (n == 0)
                continue;
            for (size_t k = rep_first(x, t->sys, t->svc);
                 k < x->nrep && !covered && strcmp(x->rep[k].sys, t->sys) == 0 &&
                 strcmp(x->rep[k].svc, t->svc) == 0;
                 k++)
                covered = x->rep[k].ps < q.to && x->rep[k].pe > q.from;
            if (covered)
                continue;
            memset(&r, 0, sizeof(r));
            cpy(r.sys, sizeof(r.sys), t->sys);
            cpy(r.svc, sizeof(r.svc), t->svc);
            r.kind = q.kind;
            cpy(r.label, sizeof(r.label), q.label);
            r.ps = q.from;
            r.pe = q.to;
            r.counted = n;
            r.status = R_MISSING_REPORT;
            if ((rc = add_rrow(x, &r)))
                return rc;
        }
    }
    if (x->nrr)
        qsort(x->rr, x->nrr, sizeof(*x->rr), cmp_rrow);
    return DTM_OK;
}

static void ctx_free(struct ctx *x)
{
    free(x->sys);
    free(x->rep);
    free(x->tx);
    free(x->rr);
}

/* A ctx that could not be prepared: the error sentence (what: why) and the ctx freed. */
static int ctx_fail(struct ctx *x, const char *what, int rc, char *err, size_t errsz)
{
    snprintf(err, errsz, "%s: %s", what, x->err[0] ? x->err : dtm_rc_name(rc));
    ctx_free(x);
    return rc;
}

static void ctx_init(struct ctx *x, struct dtm_store *st, const struct dtm_conf *conf,
                     const struct dtm_dict *dict, int64_t from, int64_t to, int64_t now)
{
    memset(x, 0, sizeof(*x));
    x->st = st;
    x->conf = conf;
    x->dict = dict;
    x->from = from;
    x->to = to;
    x->now = now;
}

static cJSON *rrow_json(const struct rrow *r)
{
    cJSON *o = cJSON_CreateObject();
    char d[16];
    cJSON_AddStringToObject(o, "system", r->sys);
    cJSON_AddStringToObject(o, "service", r->svc);
    cJSON_AddStringToObject(o, "period_type", dtm_period_kind_name(r->kind));
    cJSON_AddStringToObject(o, "period", r->label);
    date_label(r->ps, d, sizeof(d));
    cJSON_AddStringToObject(o, "period_start", d);
    if (r->has_report) {
        cJSON_AddNumberToObject(o, "reported", (double)r->reported);
        cJSON_AddNumberToObject(o, "counted", (double)r->counted);
        cJSON_AddNumberToObject(o, "difference", (double)(r->counted - r->reported));
        cJSON_AddItemToObject(
            o, "relative",
            num_or_null(r->reported  ? r6((double)(r->counted - r->reported) / (double)r->reported)
                        : r->counted ? NAN
                                     : 0));
        cJSON_AddNumberToObject(o, "allowed", r6(r->allowed));
        {
            char t[40];
            dtm_time_fmt(r->received_at, t, sizeof(t));
            cJSON_AddStringToObject(o, "received_at", t);
        }
    } else {
        cJSON_AddNullToObject(o, "reported");
        cJSON_AddNumberToObject(o, "counted", (double)r->counted);
        cJSON_AddNullToObject(o, "difference");
        cJSON_AddNullToObject(o, "relative");
        cJSON_AddNullToObject(o, "allowed");
        cJSON_AddNullToObject(o, "received_at");
    }
    cJSON_AddStringToObject(o, "status", rstatus_name[r->status]);
    return o;
}

static const char *recon_method(const char *lang)
{
    return L(
        lang,
        "For each service_stats report whose period starts in the period: reported = its "
        "total; counted = the transactions records of the same system and service whose "
        "started_at falls in the reported period (day, week, month, quarter or year, UTC+07:00); "
        "difference = counted - reported; relative = difference / reported. Matched when "
        "|difference| <= max(tolerance x reported, floor); missing_transactions when "
        "transactions count none; missing_report: a period of the system's reporting "
        "schedule, ended, with transactions but no report overlapping it.",
        "Với mỗi báo cáo service_stats có kỳ bắt đầu trong kỳ xét: số báo cáo = total của báo "
        "cáo; số đếm = số bản ghi transactions cùng hệ thống và dịch vụ có started_at trong kỳ "
        "báo cáo (ngày, tuần, tháng, quý hoặc năm, UTC+07:00); chênh lệch = số đếm - số báo "
        "cáo; tương đối = chênh lệch / số báo cáo. Khớp khi |chênh lệch| <= max(dung sai x số "
        "báo cáo, ngưỡng tuyệt đối); missing_transactions khi không đếm được giao dịch nào; "
        "missing_report: một kỳ theo lịch báo cáo của hệ thống, đã kết thúc, có giao dịch "
        "nhưng không có báo cáo nào.");
}

int dtm_reconciliation_json(struct dtm_store *st, const struct dtm_conf *conf,
                            const struct dtm_dict *dict, const struct dtm_period *p,
                            const char *lang, int64_t now, cJSON **out, char *err, size_t errsz)
{
    struct ctx x;
    cJSON *o, *rows, *sum;
    int64_t counts[4] = {0};
    int rc;
    ctx_init(&x, st, conf, dict, p->from, p->to, now);
    if ((rc = prepare(&x)))
        return ctx_fail(&x, "reconciliation", rc, err, errsz);
    o = cJSON_CreateObject();
    dtm_period_json(p, o);
    cJSON_AddNumberToObject(o, "tolerance", conf->quality_recon_tolerance);
    cJSON_AddNumberToObject(o, "floor", (double)conf->quality_recon_floor);
    cJSON_AddStringToObject(o, "method", recon_method(lang));
    rows = cJSON_AddArrayToObject(o, "rows");
    for (size_t i = 0; i < x.nrr; i++) {
        cJSON_AddItemToArray(rows, rrow_json(&x.rr[i]));
        counts[x.rr[i].status]++;
    }
    sum = cJSON_AddObjectToObject(o, "summary");
    for (int i = 0; i < 4; i++)
        cJSON_AddNumberToObject(sum, rstatus_name[i], (double)counts[i]);
    ctx_free(&x);
    *out = o;
    return DTM_OK;
}

/* ---- data quality */

#define TOP_ERRORS 5
struct hbin {
    int32_t idx;
    int64_t n;
};
struct ecnt {
    char code[DTM_NAME_MAX];
    int64_t n;
};
struct qrow {
    char sys[DTM_CODE_MAX], ds[DTM_CODE_MAX];
    int64_t accepted, updated, duplicate, rejected, lag_ms, lag_n;
    struct hbin *bins;
    size_t nbins, capbins;
    struct ecnt *errs;
    size_t nerrs, caperrs;
};

struct qacc {
    struct qrow *r;
    size_t n, cap;
};

static struct qrow *qrow_get(struct qacc *a, const char *sys, const char *ds)
{
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->r[i].sys, sys) == 0 && strcmp(a->r[i].ds, ds) == 0)
            return &a->r[i];
    if (dtm_array_reserve(&a->r, a->n, &a->cap, sizeof(*a->r)))
        return NULL;
    memset(&a->r[a->n], 0, sizeof(a->r[a->n]));
    cpy(a->r[a->n].sys, sizeof(a->r[a->n].sys), sys);
    cpy(a->r[a->n].ds, sizeof(a->r[a->n].ds), ds);
    return &a->r[a->n++];
}

static int qsum_cb(void *vctx, const char *sys, const char *ds, const char *kind, const char *item,
                   int64_t n)
{
    struct qrow *r = qrow_get(vctx, sys, ds);
    if (!r)
        return DTM_ENOMEM;
    if (strcmp(kind, "n") == 0) {
        if (strcmp(item, "accepted") == 0)
            r->accepted += n;
        else if (strcmp(item, "updated") == 0)
            r->updated += n;
        else if (strcmp(item, "duplicate") == 0)
            r->duplicate += n;
        else if (strcmp(item, "rejected") == 0)
            r->rejected += n;
    } else if (strcmp(kind, "lag_ms") == 0) {
        r->lag_ms += n;
    } else if (strcmp(kind, "lag_n") == 0) {
        r->lag_n += n;
    } else if (strcmp(kind, "lag") == 0) {
        if (dtm_array_reserve(&r->bins, r->nbins, &r->capbins, sizeof(*r->bins)))
            return DTM_ENOMEM;
        r->bins[r->nbins].idx = (int32_t)strtol(item, NULL, 10);
        r->bins[r->nbins++].n = n;
    } else if (strcmp(kind, "err") == 0) {
        if (dtm_array_reserve(&r->errs, r->nerrs, &r->caperrs, sizeof(*r->errs)))
            return DTM_ENOMEM;
        cpy(r->errs[r->nerrs].code, sizeof(r->errs[r->nerrs].code), item);
        r->errs[r->nerrs++].n = n;
    }
    return 0;
}

static int cmp_bin(const void *a, const void *b)
{
    int32_t p = ((const struct hbin *)a)->idx, q = ((const struct hbin *)b)->idx;
    return p < q ? -1 : p > q;
}

static int cmp_err(const void *a, const void *b)
{
    const struct ecnt *p = a, *q = b;
    if (p->n != q->n)
        return p->n > q->n ? -1 : 1;
    return strcmp(p->code, q->code);
}

/* p95 of the lag by nearest rank over the histogram (the value standing for the bucket). */
static double lag_p95(struct qrow *r)
{
    int64_t total = 0, rank, seen = 0;
    for (size_t i = 0; i < r->nbins; i++)
        total += r->bins[i].n;
    if (!total)
        return NAN;
    qsort(r->bins, r->nbins, sizeof(*r->bins), cmp_bin);
    rank = (int64_t)ceil(0.95 * (double)total);
    for (size_t i = 0; i < r->nbins; i++) {
        seen += r->bins[i].n;
        if (seen >= rank)
            return dtm_hist_value(r->bins[i].idx, true);
    }
    return NAN;
}

static void qacc_free(struct qacc *a)
{
    for (size_t i = 0; i < a->n; i++) {
        free(a->r[i].bins);
        free(a->r[i].errs);
    }
    free(a->r);
}

static int cmp_qrow(const void *a, const void *b)
{
    const struct qrow *p = a, *q = b;
    int c = strcmp(p->sys, q->sys);
    return c ? c : strcmp(p->ds, q->ds);
}

/* Completeness and timeliness of a system's service_stats reports over [x->from, x->to). */
struct compl
{
    enum dtm_period_kind sched;
    int64_t expected, received, on_time, late;
    int64_t since;                 /* reports are owed from this instant on */
    cJSON *missing, *late_periods; /* labels */
};

static void completeness(struct ctx *x, const struct sys *s, struct compl *c)
{
    struct dtm_period q;
    int64_t since;
    size_t k0;
    int64_t deadline = x->conf->quality_deadline_hours * 3600LL * 1000000LL;
    memset(c, 0, sizeof(*c));
    c->sched = s->sched;
    c->missing = cJSON_CreateArray();
    c->late_periods = cJSON_CreateArray();
    /* a system owes reports from its registration, or from the first period it reported when
     * that is earlier (a system registered after it started reporting elsewhere) */
    since = s->created_at;
    k0 = rep_first(x, s->code, NULL);
    for (size_t k = k0; k < x->nrep && strcmp(x->rep[k].sys, s->code) == 0; k++)
        since = DTM_MIN(since, x->rep[k].ps);
    c->since = since;
    dtm_period_at(s->sched, x->from, &q);
    if (q.from < x->from)
        dtm_period_next(&q, &q);
    for (; q.from < x->to && q.to <= x->now; dtm_period_next(&q, &q)) {
        int64_t first = INT64_MAX;
        if (q.to <= since)
            continue;
        c->expected++;
        for (size_t k = rep_first(x, s->code, NULL);
             k < x->nrep && strcmp(x->rep[k].sys, s->code) == 0; k++)
            if (x->rep[k].kind == s->sched && x->rep[k].ps == q.from)
                first = DTM_MIN(first, x->rep[k].received_at);
        if (first == INT64_MAX) {
            cJSON_AddItemToArray(c->missing, cJSON_CreateString(q.label));
            continue;
        }
        c->received++;
        if (first <= q.to + deadline) {
            c->on_time++;
        } else {
            c->late++;
            cJSON_AddItemToArray(c->late_periods, cJSON_CreateString(q.label));
        }
    }
}

struct recon_sum {
    int64_t rows, matched, mismatched, missing_tx, missing_report;
};

static void recon_of(struct ctx *x, const char *sys, struct recon_sum *s)
{
    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < x->nrr; i++) {
        if (strcmp(x->rr[i].sys, sys) != 0)
            continue;
        s->rows++;
        switch (x->rr[i].status) {
        case R_MATCHED:
            s->matched++;
            break;
        case R_MISMATCHED:
            s->mismatched++;
            break;
        case R_MISSING_TX:
            s->missing_tx++;
            break;
        case R_MISSING_REPORT:
            s->missing_report++;
            break;
        }
    }
}

static const char *quality_method(const char *lang)
{
    return L(
        lang,
        "Counted by the record writer in the same transaction as the records, per day of "
        "receipt (UTC+07:00), system and dataset: submitted = accepted + duplicates + "
        "rejected; validity = (submitted - rejected) / submitted; duplicate rate = duplicates "
        "/ submitted (a record sent again unchanged); top errors = rejections by error code "
        "(rows rejected are counted against the system that sent them; for realtime requests "
        "at most the first errors of each request are classified). Freshness = receipt time "
        "- the record's event time, average exact, p95 by nearest rank over a log-linear "
        "histogram (within 0.8 %). Completeness (service_stats) = periods of the system's "
        "reporting schedule that start in the period and have ended, with a report of that "
        "period type and start, / periods expected (owed from the system's registration, or "
        "from its first report when that is earlier); timeliness = reports whose first receipt "
        "came by the period end + deadline_hours, / reports received. Reconciliation: the "
        "rows of GET /api/v1/reconciliation for the system.",
        "Do bộ ghi dữ liệu đếm trong cùng giao dịch với bản ghi, theo ngày nhận (UTC+07:00), "
        "hệ thống và bộ dữ liệu: đã gửi = chấp nhận + trùng lặp + bị từ chối; hợp lệ = (đã gửi "
        "- bị từ chối) / đã gửi; tỷ lệ trùng = trùng lặp / đã gửi (bản ghi gửi lại không đổi); "
        "lỗi hàng đầu = số bản ghi bị từ chối theo mã lỗi (tính cho hệ thống đã gửi; với yêu "
        "cầu thời gian thực chỉ phân loại các lỗi đầu tiên của mỗi yêu cầu). Độ kịp thời dữ "
        "liệu = thời điểm nhận - thời điểm sự kiện, trung bình chính xác, p95 theo hạng gần "
        "nhất trên biểu đồ tần suất log-tuyến tính (sai số dưới 0,8 %). Đầy đủ (service_stats) "
        "= số kỳ theo lịch báo cáo của hệ thống bắt đầu trong kỳ xét và đã kết thúc có báo cáo "
        "đúng loại kỳ và ngày bắt đầu / số kỳ phải báo cáo (tính từ khi hệ thống được đăng ký, "
        "hoặc từ "
        "báo cáo đầu tiên nếu sớm hơn); đúng hạn = số báo cáo nhận lần đầu "
        "trước thời điểm kết thúc kỳ + deadline_hours / số báo cáo đã nhận. Đối soát: các dòng "
        "của GET /api/v1/reconciliation của hệ thống.");
}

/* The quality rows as JSON objects (one per system and dataset). */
static int quality_rows(struct ctx *x, cJSON *rows)
{
    struct qacc a = {0};
    int rc = DTM_OK;
    /* every system that sends data has a service_stats row (completeness) */
    for (size_t i = 0; i < x->nsys; i++)
        if (!qrow_get(&a, x->sys[i].code, "service_stats"))
            return DTM_ENOMEM;
    if (x->st->ops->quality_sum &&
        (rc = x->st->ops->quality_sum(x->st, day_of(x->from), day_of(x->to), qsum_cb, &a))) {
        qacc_free(&a);
        return rc;
    }
    if (a.n)
        qsort(a.r, a.n, sizeof(*a.r), cmp_qrow);
    for (size_t i = 0; i < a.n; i++) {
        struct qrow *r = &a.r[i];
        cJSON *o = cJSON_CreateObject(), *errs;
        int64_t sub = r->accepted + r->duplicate + r->rejected;
        struct sys *s = find_sys(x, r->sys);
        cJSON_AddStringToObject(o, "system", r->sys);
        cJSON_AddStringToObject(o, "dataset", r->ds);
        cJSON_AddNumberToObject(o, "submitted", (double)sub);
        cJSON_AddNumberToObject(o, "accepted", (double)r->accepted);
        cJSON_AddNumberToObject(o, "updated", (double)r->updated);
        cJSON_AddNumberToObject(o, "duplicates", (double)r->duplicate);
        cJSON_AddNumberToObject(o, "rejected", (double)r->rejected);
        cJSON_AddItemToObject(
            o, "validity", num_or_null(sub ? r6((double)(sub - r->rejected) / (double)sub) : NAN));
        cJSON_AddItemToObject(o, "duplicate_rate",
                              num_or_null(sub ? r6((double)r->duplicate / (double)sub) : NAN));
        errs = cJSON_AddArrayToObject(o, "top_errors");
        if (r->nerrs)
            qsort(r->errs, r->nerrs, sizeof(*r->errs), cmp_err);
        for (size_t k = 0; k < r->nerrs && k < TOP_ERRORS; k++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "code", r->errs[k].code);
            cJSON_AddNumberToObject(e, "count", (double)r->errs[k].n);
            cJSON_AddItemToArray(errs, e);
        }
        cJSON_AddNumberToObject(o, "freshness_records", (double)r->lag_n);
        cJSON_AddItemToObject(
            o, "freshness_avg_ms",
            num_or_null(r->lag_n ? r2((double)r->lag_ms / (double)r->lag_n) : NAN));
        cJSON_AddItemToObject(o, "freshness_p95_ms", num_or_null(lag_p95(r)));
        if (strcmp(r->ds, "service_stats") == 0 && s) {
            struct compl c;
            struct recon_sum rs;
            completeness(x, s, &c);
            cJSON_AddStringToObject(o, "schedule", dtm_period_kind_name(c.sched));
            {
                char d[16];
                date_label(DTM_MAX(c.since, x->from), d, sizeof(d));
                cJSON_AddStringToObject(o, "owed_since", d);
            }
            cJSON_AddNumberToObject(o, "expected", (double)c.expected);
            cJSON_AddNumberToObject(o, "received", (double)c.received);
            cJSON_AddNumberToObject(o, "on_time", (double)c.on_time);
            cJSON_AddNumberToObject(o, "late", (double)c.late);
            cJSON_AddItemToObject(
                o, "completeness",
                num_or_null(c.expected ? r6((double)c.received / (double)c.expected) : NAN));
            cJSON_AddItemToObject(
                o, "timeliness",
                num_or_null(c.received ? r6((double)c.on_time / (double)c.received) : NAN));
            cJSON_AddItemToObject(o, "missing_periods", c.missing);
            cJSON_AddItemToObject(o, "late_periods", c.late_periods);
            recon_of(x, r->sys, &rs);
            cJSON_AddNumberToObject(o, "reconciliation_rows", (double)rs.rows);
            cJSON_AddNumberToObject(o, "reconciliation_mismatches",
                                    (double)(rs.mismatched + rs.missing_tx + rs.missing_report));
        } else {
            static const char *const nul[] = {"schedule",
                                              "owed_since",
                                              "expected",
                                              "received",
                                              "on_time",
                                              "late",
                                              "completeness",
                                              "timeliness",
                                              "reconciliation_rows",
                                              "reconciliation_mismatches"};
            for (size_t k = 0; k < DTM_ARRAY_LEN(nul); k++)
                cJSON_AddNullToObject(o, nul[k]);
            cJSON_AddItemToObject(o, "missing_periods", cJSON_CreateArray());
            cJSON_AddItemToObject(o, "late_periods", cJSON_CreateArray());
        }
        cJSON_AddItemToArray(rows, o);
    }
    qacc_free(&a);
    return DTM_OK;
}

int dtm_quality_json(struct dtm_store *st, const struct dtm_conf *conf, const struct dtm_dict *dict,
                     const struct dtm_period *p, const char *lang, int64_t now, cJSON **out,
                     char *err, size_t errsz)
{
    struct ctx x;
    cJSON *o, *cfg;
    int rc;
    ctx_init(&x, st, conf, dict, p->from, p->to, now);
    if ((rc = prepare(&x)))
        return ctx_fail(&x, "quality", rc, err, errsz);
    o = cJSON_CreateObject();
    dtm_period_json(p, o);
    cfg = cJSON_AddObjectToObject(o, "config");
    cJSON_AddStringToObject(cfg, "default_schedule",
                            conf->quality_default_schedule[0]
                                ? conf->quality_default_schedule
                                : dtm_period_kind_name(kind_of_frequency(dict)));
    cJSON_AddNumberToObject(cfg, "deadline_hours", (double)conf->quality_deadline_hours);
    cJSON_AddNumberToObject(cfg, "reconciliation_tolerance", conf->quality_recon_tolerance);
    cJSON_AddNumberToObject(cfg, "reconciliation_floor", (double)conf->quality_recon_floor);
    cJSON_AddStringToObject(o, "method", quality_method(lang));
    if ((rc = quality_rows(&x, cJSON_AddArrayToObject(o, "rows")))) {
        snprintf(err, errsz, "quality: %s", dtm_rc_name(rc));
        cJSON_Delete(o);
        ctx_free(&x);
        return rc;
    }
    ctx_free(&x);
    *out = o;
    return DTM_OK;
}

/* ---- rankings */

enum { C_MANDATORY, C_USAGE, C_QUALITY, C_SECURITY, C_EFFICIENCY, C_ALERTING, NCRIT };
static const char *const crit_name[NCRIT] = {"mandatory", "usage",      "quality",
                                             "security",  "efficiency", "alerting"};

struct rsys {
    const struct sys *s;
    double score[NCRIT]; /* NAN = not measurable */
    cJSON *evidence[NCRIT];
    double total;
    char klass[2];
};

struct vcount {
    int64_t open_high;
};
static int vuln_cb(void *vctx, const struct dtm_vuln *v)
{
    struct vcount *c = vctx;
    if ((strcmp(v->status, "open") == 0 || strcmp(v->status, "in_progress") == 0) &&
        (strcmp(v->severity, "high") == 0 || strcmp(v->severity, "critical") == 0))
        c->open_high++;
    return 0;
}

struct acount {
    struct ctx *x;
    int64_t *n; /* per system of x */
};
static int alert_cb(void *vctx, const struct dtm_alert *a)
{
    struct acount *c = vctx;
    if (a->first_seen < c->x->from || a->first_seen >= c->x->to)
        return 0;
    for (size_t i = 0; i < c->x->nsys; i++) {
        size_t n = strlen(c->x->sys[i].code);
        if (strncmp(a->key, c->x->sys[i].code, n) == 0 && (a->key[n] == 0 || a->key[n] == '/'))
            c->n[i]++;
    }
    return 0;
}

struct ivs {
    struct dtm_status_interval *v;
    size_t n, cap;
    int64_t end;
};
static int iv_cb(void *vctx, const struct dtm_status_interval *iv)
{
    struct ivs *s = vctx;
    if (iv->since >= s->end)
        return 0;
    if (dtm_array_reserve(&s->v, s->n, &s->cap, sizeof(*s->v)))
        return DTM_ENOMEM;
    s->v[s->n++] = *iv;
    return 0;
}

static double mean_avail(const double *v, size_t n, size_t *used)
{
    double s = 0;
    *used = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i])) {
            s += v[i];
            (*used)++;
        }
    return *used ? s / (double)*used : NAN;
}

static cJSON *evidence(double score, int64_t weight, const char *formula)
{
    cJSON *e = cJSON_CreateObject();
    cJSON_AddItemToObject(e, "score", num_or_null(r2(score)));
    cJSON_AddNumberToObject(e, "weight", (double)weight);
    cJSON_AddStringToObject(e, "formula", formula);
    cJSON_AddObjectToObject(e, "inputs");
    return e;
}

static cJSON *inputs(cJSON *e)
{
    return cJSON_GetObjectItemCaseSensitive(e, "inputs");
}

static int cmp_rsys(const void *a, const void *b)
{
    const struct rsys *p = a, *q = b;
    double x = isfinite(p->total) ? p->total : -1, y = isfinite(q->total) ? q->total : -1;
    if (x != y)
        return x > y ? -1 : 1;
    return strcmp(p->s->code, q->s->code);
}

static const char *ranking_method(const char *lang)
{
    return L(
        lang,
        "Each criterion scores 0-100. mandatory = 100 x service_stats periods received on "
        "time / periods expected (as in quality). usage = 100 x records accepted from the "
        "system (every dataset) / the most accepted from one system. quality = 100 x the mean "
        "of validity, 1 - duplicate rate (all datasets) and the share of reconciliation rows "
        "matched. security = max(0, 100 - 20 x critical - 10 x high - 5 x medium - 1 x low "
        "security_events of the system in the period - 10 x open high or critical "
        "vulnerabilities of the register). efficiency = 100 x the mean of uptime (online or "
        "degraded share of the period up to now), 1 - failed share of transactions and "
        "min(1, response_target_ms / average response_ms). alerting = max(0, 100 - 10 x "
        "alerts about the system first raised in the period). A measure without data is "
        "left out of its mean; a criterion without data is left out of the total; a system "
        "with none of mandatory, usage, quality and efficiency measurable is listed unranked. "
        "Total = "
        "sum(weight x score) / sum(weight); class A from class_a, B from class_b, else C.",
        "Mỗi tiêu chí được chấm 0-100. mandatory = 100 x số kỳ service_stats nhận đúng hạn / "
        "số kỳ phải báo cáo (như ở chất lượng dữ liệu). usage = 100 x số bản ghi được chấp "
        "nhận của hệ thống (mọi bộ dữ liệu) / số lớn nhất của một hệ thống. quality = 100 x "
        "trung bình của tỷ lệ hợp lệ, 1 - tỷ lệ trùng (mọi bộ dữ liệu) và tỷ lệ dòng đối soát "
        "khớp. security = max(0, 100 - 20 x nghiêm trọng - 10 x cao - 5 x trung bình - 1 x "
        "thấp (sự kiện security_events của hệ thống trong kỳ) - 10 x lỗ hổng mức cao hoặc "
        "nghiêm trọng đang mở trong sổ đăng ký). efficiency = 100 x trung bình của thời gian "
        "hoạt động (tỷ lệ trực tuyến hoặc suy giảm trong kỳ đến nay), 1 - tỷ lệ giao dịch "
        "thất bại và min(1, response_target_ms / thời gian phản hồi trung bình). alerting = "
        "max(0, 100 - 10 x số cảnh báo về hệ thống phát sinh lần đầu trong kỳ). Thước đo không "
        "có dữ liệu bị bỏ khỏi trung bình; tiêu chí không có dữ liệu bị bỏ khỏi tổng; hệ thống "
        "không "
        "đo được tiêu chí nào trong mandatory, usage, quality, efficiency thì không xếp hạng. Tổng "
        "= "
        "tổng(trọng số x điểm) / tổng(trọng số); hạng A từ class_a, B từ class_b, còn lại C.");
}

static int rank_compute(struct ctx *x, struct rsys **out, size_t *nout)
{
    const struct dtm_conf *c = x->conf;
    const int64_t w[NCRIT] = {c->rank_w_mandatory, c->rank_w_usage,      c->rank_w_quality,
                              c->rank_w_security,  c->rank_w_efficiency, c->rank_w_alerting};
    struct rsys *rs = calloc(x->nsys ? x->nsys : 1, sizeof(*rs));
    struct qacc a = {0};
    struct vcount vc = {0};
    struct acount ac = {x, calloc(x->nsys ? x->nsys : 1, sizeof(int64_t))};
    struct dtm_result txr, ser;
    bool have_tx = false, have_se = false;
    int64_t max_acc = 0;
    int64_t end = DTM_MIN(x->to, x->now);
    int rc = DTM_OK;
    if (!rs || !ac.n) {
        free(rs);
        free(ac.n);
        return DTM_ENOMEM;
    }
    memset(&txr, 0, sizeof(txr));
    memset(&ser, 0, sizeof(ser));
    if (x->st->ops->quality_sum)
        rc = x->st->ops->quality_sum(x->st, day_of(x->from), day_of(x->to), qsum_cb, &a);
    if (rc == DTM_OK)
        rc = x->st->ops->vuln_list(x->st, vuln_cb, &vc);
    if (rc == DTM_OK) {
        struct dtm_alert_filter f = {NULL, NULL, NULL, x->from, INT64_MAX};
        rc = x->st->ops->alert_list(x->st, &f, 0, 0, alert_cb, &ac);
    }
    if (rc == DTM_OK) {
        rc = stats(x, "transactions", "count,rate:status=failed,avg:response_ms", "system_code",
                   NULL, x->from, x->to, &txr);
        have_tx = rc == DTM_OK;
        if (rc == DTM_ENOTFOUND)
            rc = DTM_OK;
    }
    if (rc == DTM_OK) {
        rc = stats(x, "security_events", "count", "system_code,severity", NULL, x->from, x->to,
                   &ser);
        have_se = rc == DTM_OK;
        if (rc == DTM_ENOTFOUND)
            rc = DTM_OK;
    }
    for (size_t i = 0; i < x->nsys && rc == DTM_OK; i++) {
        int64_t acc = 0;
        for (size_t k = 0; k < a.n; k++)
            if (strcmp(a.r[k].sys, x->sys[i].code) == 0)
                acc += a.r[k].accepted;
        max_acc = DTM_MAX(max_acc, acc);
    }
    for (size_t i = 0; i < x->nsys && rc == DTM_OK; i++) {
        struct rsys *r = &rs[i];
        const struct sys *s = &x->sys[i];
        cJSON *in;
        r->s = s;
        /* mandatory data on time */
        {
            struct compl cp;
            completeness(x, s, &cp);
            r->score[C_MANDATORY] =
                cp.expected ? 100.0 * (double)cp.on_time / (double)cp.expected : NAN;
            r->evidence[C_MANDATORY] =
                evidence(r->score[C_MANDATORY], w[C_MANDATORY], "100 x on_time / expected");
            in = inputs(r->evidence[C_MANDATORY]);
            cJSON_AddStringToObject(in, "schedule", dtm_period_kind_name(cp.sched));
            cJSON_AddNumberToObject(in, "expected", (double)cp.expected);
            cJSON_AddNumberToObject(in, "received", (double)cp.received);
            cJSON_AddNumberToObject(in, "on_time", (double)cp.on_time);
            cJSON_AddItemToObject(in, "missing_periods", cp.missing);
            cJSON_AddItemToObject(in, "late_periods", cp.late_periods);
        }
        /* usage and sharing volume; quality from the same counters */
        {
            int64_t acc = 0, dup = 0, rej = 0;
            double m[3];
            size_t used;
            struct recon_sum rsum;
            for (size_t k = 0; k < a.n; k++)
                if (strcmp(a.r[k].sys, s->code) == 0) {
                    acc += a.r[k].accepted;
                    dup += a.r[k].duplicate;
                    rej += a.r[k].rejected;
                }
            /* no system sent anything in the period: the criterion tells nothing, left out */
            r->score[C_USAGE] = max_acc ? 100.0 * (double)acc / (double)max_acc : NAN;
            r->evidence[C_USAGE] =
                evidence(r->score[C_USAGE], w[C_USAGE], "100 x accepted / max_accepted");
            in = inputs(r->evidence[C_USAGE]);
            cJSON_AddNumberToObject(in, "accepted", (double)acc);
            cJSON_AddNumberToObject(in, "max_accepted", (double)max_acc);
            recon_of(x, s->code, &rsum);
            m[0] = acc + dup + rej ? (double)(acc + dup) / (double)(acc + dup + rej) : NAN;
            m[1] = acc + dup + rej ? 1.0 - (double)dup / (double)(acc + dup + rej) : NAN;
            m[2] = rsum.rows ? (double)rsum.matched / (double)rsum.rows : NAN;
            r->score[C_QUALITY] = 100.0 * mean_avail(m, 3, &used);
            r->evidence[C_QUALITY] =
                evidence(r->score[C_QUALITY], w[C_QUALITY],
                         "100 x mean(validity, 1 - duplicate_rate, reconciliation_matched_share)");
            in = inputs(r->evidence[C_QUALITY]);
            cJSON_AddNumberToObject(in, "submitted", (double)(acc + dup + rej));
            cJSON_AddNumberToObject(in, "rejected", (double)rej);
            cJSON_AddNumberToObject(in, "duplicates", (double)dup);
            cJSON_AddItemToObject(in, "validity", num_or_null(r6(m[0])));
            cJSON_AddItemToObject(in, "duplicate_rate", num_or_null(r6(1.0 - m[1])));
            cJSON_AddNumberToObject(in, "reconciliation_rows", (double)rsum.rows);
            cJSON_AddNumberToObject(in, "reconciliation_matched", (double)rsum.matched);
            cJSON_AddItemToObject(in, "reconciliation_matched_share", num_or_null(r6(m[2])));
        }
        /* standards and security compliance */
        {
            int64_t sev[5] = {0}; /* critical high medium low info */
            static const char *const sevn[5] = {"critical", "high", "medium", "low", "info"};
            double sc;
            for (size_t k = 0; have_se && k < ser.nrows; k++) {
                char code[DTM_CODE_MAX], sv[16];
                cell_text(ser.rows[k][0], code, sizeof(code));
                cell_text(ser.rows[k][1], sv, sizeof(sv));
                if (strcmp(code, s->code) != 0)
                    continue;
                for (int j = 0; j < 5; j++)
                    if (strcmp(sv, sevn[j]) == 0)
                        sev[j] += (int64_t)cell_num(ser.rows[k][2]);
            }
            sc = 100.0 - 20.0 * (double)sev[0] - 10.0 * (double)sev[1] - 5.0 * (double)sev[2] -
                 1.0 * (double)sev[3] - 10.0 * (double)vc.open_high;
            r->score[C_SECURITY] = sc < 0 ? 0 : sc;
            r->evidence[C_SECURITY] =
                evidence(r->score[C_SECURITY], w[C_SECURITY],
                         "max(0, 100 - 20 x critical - 10 x high - 5 x medium - 1 x low - 10 x "
                         "open_vulnerabilities)");
            in = inputs(r->evidence[C_SECURITY]);
            for (int j = 0; j < 5; j++)
                cJSON_AddNumberToObject(in, sevn[j], (double)sev[j]);
            cJSON_AddNumberToObject(in, "open_vulnerabilities", (double)vc.open_high);
        }
        /* technical efficiency */
        {
            struct ivs iv = {NULL, 0, 0, end};
            double m[3] = {NAN, NAN, NAN}, n = 0, failed = NAN, avg = NAN;
            size_t used;
            if (end > x->from &&
                (rc = x->st->ops->status_list(x->st, s->code, x->from, iv_cb, &iv)) == DTM_OK &&
                iv.n) {
                double u = dtm_conn_uptime(iv.v, iv.n, x->from, end);
                if (u >= 0)
                    m[0] = u;
            }
            free(iv.v);
            for (size_t k = 0; have_tx && k < txr.nrows; k++) {
                char code[DTM_CODE_MAX];
                cell_text(txr.rows[k][0], code, sizeof(code));
                if (strcmp(code, s->code) != 0)
                    continue;
                n = cell_num(txr.rows[k][1]);
                failed = cell_num(txr.rows[k][2]);
                avg = cell_num(txr.rows[k][3]);
            }
            if (n > 0 && isfinite(failed))
                m[1] = 1.0 - failed;
            if (n > 0 && isfinite(avg))
                m[2] = avg > 0 ? DTM_MIN(1.0, (double)c->rank_response_target_ms / avg) : 1.0;
            r->score[C_EFFICIENCY] = 100.0 * mean_avail(m, 3, &used);
            r->evidence[C_EFFICIENCY] =
                evidence(r->score[C_EFFICIENCY], w[C_EFFICIENCY],
                         "100 x mean(uptime, 1 - failed_share, min(1, response_target_ms / "
                         "avg_response_ms))");
            in = inputs(r->evidence[C_EFFICIENCY]);
            cJSON_AddItemToObject(in, "uptime", num_or_null(r6(m[0])));
            cJSON_AddNumberToObject(in, "transactions", n);
            cJSON_AddItemToObject(in, "failed_share", num_or_null(n > 0 ? r6(failed) : NAN));
            cJSON_AddItemToObject(in, "avg_response_ms", num_or_null(n > 0 ? r2(avg) : NAN));
            cJSON_AddNumberToObject(in, "response_target_ms", (double)c->rank_response_target_ms);
        }
        /* alerting */
        {
            double sc = 100.0 - 10.0 * (double)ac.n[i];
            r->score[C_ALERTING] = sc < 0 ? 0 : sc;
            r->evidence[C_ALERTING] =
                evidence(r->score[C_ALERTING], w[C_ALERTING], "max(0, 100 - 10 x alerts)");
            cJSON_AddNumberToObject(inputs(r->evidence[C_ALERTING]), "alerts", (double)ac.n[i]);
        }
        /* total and class */
        {
            double num = 0, den = 0;
            /* a system with nothing measured in the period (no report owed, no records, no
             * transactions) is listed unranked: security and alerting alone say nothing */
            bool active = isfinite(r->score[C_MANDATORY]) || isfinite(r->score[C_USAGE]) ||
                          isfinite(r->score[C_QUALITY]) || isfinite(r->score[C_EFFICIENCY]);
            for (int k = 0; active && k < NCRIT; k++)
                if (isfinite(r->score[k])) {
                    num += (double)w[k] * r->score[k];
                    den += (double)w[k];
                }
            r->total = den > 0 ? num / den : NAN;
            /* compared rounded to 2 decimals, as shown */
            snprintf(r->klass, sizeof(r->klass), "%s",
                     !isfinite(r->total)                              ? ""
                     : r2(r->total) >= (double)c->rank_class_a - 1e-9 ? "A"
                     : r2(r->total) >= (double)c->rank_class_b - 1e-9 ? "B"
                                                                      : "C");
        }
    }
    if (have_tx)
        dtm_result_free(&txr);
    if (have_se)
        dtm_result_free(&ser);
    qacc_free(&a);
    free(ac.n);
    if (rc) {
        for (size_t i = 0; i < x->nsys; i++)
            for (int k = 0; k < NCRIT; k++)
                cJSON_Delete(rs[i].evidence[k]);
        free(rs);
        return rc;
    }
    if (x->nsys)
        qsort(rs, x->nsys, sizeof(*rs), cmp_rsys);
    *out = rs;
    *nout = x->nsys;
    return DTM_OK;
}

int dtm_rankings_json(struct dtm_store *st, const struct dtm_conf *conf,
                      const struct dtm_dict *dict, const struct dtm_period *p, const char *lang,
                      int64_t now, cJSON **out, char *err, size_t errsz)
{
    struct ctx x;
    struct rsys *rs = NULL;
    size_t n = 0;
    cJSON *o, *rows, *wj;
    int rc;
    const int64_t w[NCRIT] = {conf->rank_w_mandatory,  conf->rank_w_usage,
                              conf->rank_w_quality,    conf->rank_w_security,
                              conf->rank_w_efficiency, conf->rank_w_alerting};
    ctx_init(&x, st, conf, dict, p->from, p->to, now);
    if ((rc = prepare(&x)) || (rc = rank_compute(&x, &rs, &n)))
        return ctx_fail(&x, "rankings", rc, err, errsz);
    o = cJSON_CreateObject();
    dtm_period_json(p, o);
    wj = cJSON_AddObjectToObject(o, "weights");
    for (int k = 0; k < NCRIT; k++)
        cJSON_AddNumberToObject(wj, crit_name[k], (double)w[k]);
    cJSON_AddNumberToObject(o, "class_a", (double)conf->rank_class_a);
    cJSON_AddNumberToObject(o, "class_b", (double)conf->rank_class_b);
    cJSON_AddStringToObject(o, "method", ranking_method(lang));
    rows = cJSON_AddArrayToObject(o, "rows");
    for (size_t i = 0; i < n; i++) {
        cJSON *r = cJSON_CreateObject(), *cr;
        cJSON_AddItemToObject(r, "rank",
                              num_or_null(isfinite(rs[i].total) ? (double)(i + 1) : NAN));
        cJSON_AddStringToObject(r, "system", rs[i].s->code);
        cJSON_AddStringToObject(r, "name", rs[i].s->name);
        cJSON_AddItemToObject(r, "total", num_or_null(r2(rs[i].total)));
        if (rs[i].klass[0])
            cJSON_AddStringToObject(r, "class", rs[i].klass);
        else
            cJSON_AddNullToObject(r, "class");
        cr = cJSON_AddObjectToObject(r, "criteria");
        for (int k = 0; k < NCRIT; k++) {
            cJSON_AddItemToObject(cr, crit_name[k], rs[i].evidence[k]);
            rs[i].evidence[k] = NULL;
        }
        cJSON_AddItemToArray(rows, r);
    }
    free(rs);
    ctx_free(&x);
    *out = o;
    return DTM_OK;
}

/* ---- the report sections (report/render of the reports engineer draws them) */

static cJSON *column(const char *key, const char *label, const char *type)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "key", key);
    cJSON_AddStringToObject(c, "label", label);
    cJSON_AddStringToObject(c, "type", type);
    return c;
}

static cJSON *section(cJSON *sections, const char *id, const char *title, const char *method)
{
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "id", id);
    cJSON_AddStringToObject(s, "title", title);
    cJSON_AddStringToObject(s, "method", method);
    cJSON_AddArrayToObject(s, "columns");
    cJSON_AddArrayToObject(s, "rows");
    cJSON_AddItemToArray(sections, s);
    return s;
}

/* Copies the members named by the section's columns from each object of src into rows;
 * arrays become text ("code:count …" for top errors, labels joined by spaces). */
static void fill_rows(cJSON *sec, const cJSON *src)
{
    const cJSON *cols = cJSON_GetObjectItemCaseSensitive(sec, "columns"), *o;
    cJSON *rows = cJSON_GetObjectItemCaseSensitive(sec, "rows");
    cJSON_ArrayForEach(o, src)
    {
        cJSON *row = cJSON_CreateArray();
        const cJSON *c;
        cJSON_ArrayForEach(c, cols)
        {
            const char *key = cJSON_GetObjectItemCaseSensitive(c, "key")->valuestring;
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
            if (cJSON_IsArray(v)) {
                struct dtm_buf b;
                const cJSON *e;
                dtm_buf_init(&b, 1 << 20);
                cJSON_ArrayForEach(e, v)
                {
                    if (b.n)
                        dtm_buf_addc(&b, " ");
                    if (cJSON_IsString(e))
                        dtm_buf_addc(&b, e->valuestring);
                    else if (cJSON_IsObject(e))
                        dtm_buf_printf(&b, "%s:%.0f",
                                       cJSON_GetObjectItemCaseSensitive(e, "code")->valuestring,
                                       cJSON_GetObjectItemCaseSensitive(e, "count")->valuedouble);
                }
                dtm_buf_addc(&b, "");
                cJSON_AddItemToArray(row, cJSON_CreateString(b.p && !b.err ? b.p : ""));
                dtm_buf_free(&b);
            } else {
                cJSON_AddItemToArray(row, v ? cJSON_Duplicate(v, true) : cJSON_CreateNull());
            }
        }
        cJSON_AddItemToArray(rows, row);
    }
}

static void add_cols(cJSON *sec, const char *lang, const char *const (*c)[4], size_t n)
{
    cJSON *cols = cJSON_GetObjectItemCaseSensitive(sec, "columns");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(cols, column(c[i][0], L(lang, c[i][1], c[i][2]), c[i][3]));
}

int dtm_quality_report(struct dtm_store *st, const struct dtm_conf *conf,
                       const struct dtm_dict *dict, const struct dtm_period *p, const char *lang,
                       cJSON *sections, char *err, size_t errsz)
{
    static const char *const qcols[][4] = {
        {"system", "System", "Hệ thống", "text"},
        {"dataset", "Dataset", "Bộ dữ liệu", "text"},
        {"submitted", "Submitted", "Đã gửi", "int"},
        {"rejected", "Rejected", "Bị từ chối", "int"},
        {"validity", "Validity", "Hợp lệ", "percent"},
        {"duplicate_rate", "Duplicates", "Trùng lặp", "percent"},
        {"top_errors", "Top errors", "Lỗi hàng đầu", "text"},
        {"completeness", "Completeness", "Đầy đủ", "percent"},
        {"timeliness", "Timeliness", "Đúng hạn", "percent"},
        {"reconciliation_mismatches", "Reconciliation mismatches", "Sai lệch đối soát", "int"},
        {"freshness_avg_ms", "Freshness (avg)", "Độ trễ (TB)", "ms"},
        {"freshness_p95_ms", "Freshness (p95)", "Độ trễ (p95)", "ms"},
    };
    static const char *const rcols[][4] = {
        {"system", "System", "Hệ thống", "text"},
        {"service", "Service", "Dịch vụ", "text"},
        {"period", "Period", "Kỳ", "text"},
        {"reported", "Reported", "Báo cáo", "int"},
        {"counted", "Counted", "Đếm được", "int"},
        {"difference", "Difference", "Chênh lệch", "int"},
        {"relative", "Relative", "Tương đối", "percent"},
        {"status", "Status", "Trạng thái", "text"},
    };
    cJSON *q = NULL, *r = NULL, *sec;
    int64_t now = dtm_now_us();
    int rc;
    if ((rc = dtm_quality_json(st, conf, dict, p, lang, now, &q, err, errsz)) ||
        (rc = dtm_reconciliation_json(st, conf, dict, p, lang, now, &r, err, errsz))) {
        cJSON_Delete(q);
        return rc;
    }
    sec = section(sections, "quality", L(lang, "Data quality", "Chất lượng dữ liệu"),
                  quality_method(lang));
    add_cols(sec, lang, qcols, DTM_ARRAY_LEN(qcols));
    fill_rows(sec, cJSON_GetObjectItemCaseSensitive(q, "rows"));
    /* the report lists per system how many rows matched, and the rows that did not (every
     * matched row of a month would make a PDF of a hundred pages) */
    {
        static const char *const scols[][4] = {
            {"system", "System", "Hệ thống", "text"},
            {"rows", "Compared", "Số dòng đối soát", "int"},
            {"matched", "Matched", "Khớp", "int"},
            {"mismatched", "Mismatched", "Lệch", "int"},
            {"missing_transactions", "No transactions", "Không có giao dịch", "int"},
            {"missing_report", "No report", "Thiếu báo cáo", "int"},
        };
        cJSON *sum = cJSON_CreateArray(), *bad = cJSON_CreateArray(), *row, *cur = NULL;
        cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(r, "rows"))
        {
            const char *sys = cJSON_GetObjectItemCaseSensitive(row, "system")->valuestring;
            const char *status = cJSON_GetObjectItemCaseSensitive(row, "status")->valuestring;
            cJSON *n;
            if (!cur ||
                strcmp(cJSON_GetObjectItemCaseSensitive(cur, "system")->valuestring, sys) != 0) {
                cur = cJSON_CreateObject();
                cJSON_AddStringToObject(cur, "system", sys);
                for (int i = 0; i < 4; i++)
                    cJSON_AddNumberToObject(cur, rstatus_name[i], 0);
                cJSON_AddNumberToObject(cur, "rows", 0);
                cJSON_AddItemToArray(sum, cur);
            }
            n = cJSON_GetObjectItemCaseSensitive(cur, status);
            cJSON_SetNumberValue(n, n->valuedouble + 1);
            n = cJSON_GetObjectItemCaseSensitive(cur, "rows");
            cJSON_SetNumberValue(n, n->valuedouble + 1);
            if (strcmp(status, "matched") != 0)
                cJSON_AddItemToArray(bad, cJSON_Duplicate(row, true));
        }
        sec = section(sections, "reconciliation_summary",
                      L(lang, "Reconciliation by system", "Đối soát theo hệ thống"),
                      recon_method(lang));
        add_cols(sec, lang, scols, DTM_ARRAY_LEN(scols));
        fill_rows(sec, sum);
        sec = section(sections, "reconciliation",
                      L(lang, "Reconciliation: the differences", "Đối soát: các dòng chênh lệch"),
                      L(lang,
                        "The rows of the reconciliation that are not matched (mismatched beyond "
                        "tolerance, or missing on one side); matched rows are counted in the "
                        "section before.",
                        "Các dòng đối soát không khớp (lệch vượt dung sai, hoặc thiếu một phía); "
                        "các dòng khớp được đếm ở mục trước."));
        add_cols(sec, lang, rcols, DTM_ARRAY_LEN(rcols));
        fill_rows(sec, bad);
        cJSON_Delete(sum);
        cJSON_Delete(bad);
    }
    cJSON_Delete(q);
    cJSON_Delete(r);
    return DTM_OK;
}

int dtm_ranking_report(struct dtm_store *st, const struct dtm_conf *conf,
                       const struct dtm_dict *dict, const struct dtm_period *p, const char *lang,
                       cJSON *sections, char *err, size_t errsz)
{
    static const char *const cols[][4] = {
        {"rank", "Rank", "Thứ hạng", "int"},
        {"system", "System", "Hệ thống", "text"},
        {"total", "Total", "Tổng điểm", "number"},
        {"class", "Class", "Xếp loại", "class"},
        {"mandatory", "Mandatory data on time", "Dữ liệu bắt buộc đúng hạn", "number"},
        {"usage", "Usage", "Mức độ sử dụng", "number"},
        {"quality", "Data quality", "Chất lượng dữ liệu", "number"},
        {"security", "Security", "An toàn thông tin", "number"},
        {"efficiency", "Technical efficiency", "Hiệu quả kỹ thuật", "number"},
        {"alerting", "Alerting", "Cảnh báo", "number"},
    };
    static const char *const ecols[][4] = {
        {"system", "System", "Hệ thống", "text"},    {"criterion", "Criterion", "Tiêu chí", "text"},
        {"score", "Score", "Điểm", "number"},        {"weight", "Weight", "Trọng số", "int"},
        {"formula", "Formula", "Công thức", "text"}, {"inputs", "Inputs", "Số liệu", "text"},
    };
    cJSON *o = NULL, *flat = cJSON_CreateArray(), *ev = cJSON_CreateArray(), *row, *sec;
    int rc = dtm_rankings_json(st, conf, dict, p, lang, dtm_now_us(), &o, err, errsz);
    if (rc) {
        cJSON_Delete(flat);
        cJSON_Delete(ev);
        return rc;
    }
    cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(o, "rows"))
    {
        cJSON *f = cJSON_CreateObject(), *cr = cJSON_GetObjectItemCaseSensitive(row, "criteria"),
              *c;
        static const char *const keep[] = {"rank", "system", "total", "class"};
        for (size_t k = 0; k < DTM_ARRAY_LEN(keep); k++)
            cJSON_AddItemToObject(
                f, keep[k], cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(row, keep[k]), true));
        cJSON_ArrayForEach(c, cr)
        {
            cJSON *e = cJSON_CreateObject();
            char *in = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(c, "inputs"));
            cJSON_AddItemToObject(
                f, c->string, cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(c, "score"), true));
            cJSON_AddItemToObject(
                e, "system",
                cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(row, "system"), true));
            cJSON_AddStringToObject(e, "criterion", c->string);
            cJSON_AddItemToObject(
                e, "score", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(c, "score"), true));
            cJSON_AddItemToObject(
                e, "weight", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(c, "weight"), true));
            cJSON_AddItemToObject(
                e, "formula",
                cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(c, "formula"), true));
            cJSON_AddStringToObject(e, "inputs", in ? in : "");
            free(in);
            cJSON_AddItemToArray(ev, e);
        }
        cJSON_AddItemToArray(flat, f);
    }
    sec = section(sections, "ranking", L(lang, "Ranking", "Xếp hạng"), ranking_method(lang));
    add_cols(sec, lang, cols, DTM_ARRAY_LEN(cols));
    fill_rows(sec, flat);
    {
        cJSON *chart = cJSON_AddObjectToObject(sec, "chart"), *y;
        cJSON_AddStringToObject(chart, "type", "bar");
        cJSON_AddStringToObject(chart, "x", "system");
        y = cJSON_AddArrayToObject(chart, "y");
        cJSON_AddItemToArray(y, cJSON_CreateString("total"));
    }
    sec = section(sections, "evidence", L(lang, "Evidence of the scores", "Căn cứ chấm điểm"),
                  ranking_method(lang));
    add_cols(sec, lang, ecols, DTM_ARRAY_LEN(ecols));
    fill_rows(sec, ev);
    cJSON_Delete(o);
    cJSON_Delete(flat);
    cJSON_Delete(ev);
    return DTM_OK;
}

/* ---- the server's periodic reconciliation check */

struct dtm_recon_job {
    const struct dtm_conf *const *conf;
    const struct dtm_dict *dict;
    struct dtm_alerts *alerts;
    struct dtm_periodic *clock;
    struct dtm_store *st; /* the thread's own connection, opened at its first round */
    char owner[96];       /* host:pid, for job_claim */
    /* keys raised by this process (the engine stores them asynchronously) */
    char **raised;
    size_t nraised, capraised;
};

static bool raised_before(struct dtm_recon_job *j, const char *key)
{
    for (size_t i = 0; i < j->nraised; i++)
        if (strcmp(j->raised[i], key) == 0)
            return true;
    return false;
}

int dtm_recon_check(struct dtm_store *st, const struct dtm_conf *conf, const struct dtm_dict *dict,
                    struct dtm_alerts *alerts, int64_t now, struct dtm_recon_job *job,
                    size_t *nraised)
{
    struct ctx x;
    int rc;
    *nraised = 0;
    ctx_init(&x, st, conf, dict, now - conf->quality_check_days * 86400LL * 1000000LL, now, now);
    if ((rc = prepare(&x))) {
        ctx_free(&x);
        return rc;
    }
    for (size_t i = 0; i < x.nrr && rc == DTM_OK; i++) {
        const struct rrow *r = &x.rr[i];
        char key[256];
        struct dtm_alert open;
        int64_t resolved = 0;
        bool bad = r->status == R_MISMATCHED || r->status == R_MISSING_TX;
        if (!r->has_report)
            continue;
        snprintf(key, sizeof(key), "%s/%s/%s", r->sys, r->svc, r->label);
        rc = st->ops->alert_open(st, RECON_RULE, key, &open);
        if (rc == DTM_ENOTFOUND) {
            rc = DTM_OK;
            if (!bad)
                continue;
            if (job && raised_before(job, key))
                continue;
            if ((rc = st->ops->alert_last_resolved(st, RECON_RULE, key, &resolved)))
                break;
            if (resolved)
                continue; /* a person resolved it: one alert per system, service and period */
            {
                char title[256];
                cJSON *d = rrow_json(r);
                char *dj = cJSON_PrintUnformatted(d);
                double rel = r->reported
                                 ? 100.0 * (double)(r->counted - r->reported) / (double)r->reported
                                 : 0;
                snprintf(title, sizeof(title),
                         "Reconciliation mismatch: %s service %s period %s: reported %lld, "
                         "counted %lld (%+lld, %+.2f %%)",
                         r->sys, r->svc, r->label, (long long)r->reported, (long long)r->counted,
                         (long long)(r->counted - r->reported), rel);
                dtm_alert_raise(alerts, RECON_RULE, key, DTM_ALERT_WARNING, title, dj);
                free(dj);
                cJSON_Delete(d);
                (*nraised)++;
                if (job &&
                    dtm_array_reserve(&job->raised, job->nraised, &job->capraised,
                                      sizeof(char *)) == DTM_OK &&
                    (job->raised[job->nraised] = strdup(key)))
                    job->nraised++;
            }
        } else if (rc == DTM_OK && !bad) {
            dtm_alert_clear(alerts, RECON_RULE, key); /* the report was corrected */
        }
    }
    ctx_free(&x);
    return rc;
}

static int64_t recon_run(struct dtm_periodic *clock, void *arg)
{
    struct dtm_recon_job *j = arg;
    const struct dtm_conf *c = *j->conf;
    char err[256];
    size_t n = 0;
    int64_t now = dtm_now_us();
    int rc = j->st ? DTM_OK : dtm_store_open(c, &j->st, err, sizeof(err));
    (void)clock;
    /* one node per round when several share the store */
    if (rc == DTM_OK && j->st->ops->job_claim)
        rc = j->st->ops->job_claim(j->st, "reconciliation",
                                   now / 1000000 / c->quality_check_interval, j->owner, now,
                                   now - 7 * 86400LL * 1000000LL);
    if (rc == DTM_OK)
        rc = dtm_recon_check(j->st, c, j->dict, j->alerts, now, j, &n);
    if (rc == DTM_EEXIST)
        rc = DTM_OK; /* another node's round */
    if (rc) {
        dtm_logf(DTM_LOG_WARN, "quality: the reconciliation check failed", "\"error\":\"%s\"",
                 dtm_rc_name(rc));
        if (j->st) /* a broken connection is opened again next round */
            j->st->ops->close(j->st);
        j->st = NULL;
    } else if (n) {
        dtm_logf(DTM_LOG_INFO, "quality: reconciliation mismatches raised", "\"alerts\":%zu", n);
    }
    return c->quality_check_interval * 1000000LL;
}

int dtm_recon_job_start(const struct dtm_conf *const *conf, const struct dtm_dict *dict,
                        struct dtm_alerts *alerts, struct dtm_recon_job **out, char *err,
                        size_t errsz)
{
    struct dtm_recon_job *j = calloc(1, sizeof(*j));
    int rc;
    if (!j) {
        snprintf(err, errsz, "out of memory");
        return DTM_ENOMEM;
    }
    j->conf = conf;
    j->dict = dict;
    j->alerts = alerts;
    {
        char host[64] = "";
        gethostname(host, sizeof(host) - 1);
        snprintf(j->owner, sizeof(j->owner), "%s:%ld", host, (long)getpid());
    }
    /* the first check two seconds after the start */
    if ((rc = dtm_periodic_start("reconciliation", 2000000, recon_run, j, &j->clock, err, errsz))) {
        free(j);
        return rc;
    }
    *out = j;
    return DTM_OK;
}

void dtm_recon_job_stop(struct dtm_recon_job *j)
{
    if (!j)
        return;
    dtm_periodic_stop(j->clock);
    if (j->st)
        j->st->ops->close(j->st);
    for (size_t i = 0; i < j->nraised; i++)
        free(j->raised[i]);
    free(j->raised);
    free(j);
}
