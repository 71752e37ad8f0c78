/* api/systems.c — GET /api/v1/systems and GET /api/v1/systems/{code} (CONTRACT §6): each
 * connected system the caller may see, with its status now (conn/), when it was last seen,
 * today's transactions, failed share, average and p95 response time (one statistics query for
 * the whole list; "today" is the day in UTC+07:00), its uptime over 30 days (from the recorded
 * status intervals) and its last probe. One system adds its last 48 hours (one statistics query
 * by hour) and its status intervals of the last 30 days. A source sees itself, an aggregator
 * itself and its children, a consumer every system; another one's page is 403. */
#include "api/api.h"
#include "conn/conn.h"
#include "stats/stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define US 1000000LL
#define WINDOW (30LL * 86400 * US) /* uptime and intervals */
#define HOURS 48
#define METRICS "count,rate:status=failed,avg:response_ms,p95:response_ms"

struct entry {
    struct dtm_system sys;
    struct dtm_probe *probe; /* NULL = none (request arena) */
    enum dtm_conn_status status;
    double uptime; /* -1 = unknown */
    /* today's cells (JSON numbers from the result's arena); NULL = none */
    const char *count, *rate, *avg, *p95;
};

struct entries {
    struct dtm_req *r;
    struct entry *e; /* malloc'd, by code */
    size_t n, cap;
};

static bool may_see(const struct dtm_req *r, const struct dtm_system *sys)
{
    if ((r->person || strcmp(r->sys.role, "consumer") == 0) || strcmp(sys->code, r->sys.code) == 0)
        return true;
    return strcmp(r->sys.role, "aggregator") == 0 && strcmp(sys->parent, r->sys.code) == 0;
}

static int entry_add(void *ctx, const struct dtm_conn_view *v)
{
    struct entries *x = ctx;
    struct entry *e;
    if (!may_see(x->r, v->sys))
        return DTM_OK;
    if (dtm_array_reserve(&x->e, x->n, &x->cap, sizeof(*x->e)))
        return DTM_ENOMEM;
    e = &x->e[x->n];
    memset(e, 0, sizeof(*e));
    e->sys = *v->sys;
    e->status = v->status;
    e->uptime = -1;
    if (v->probe) {
        if (!(e->probe = dtm_arena_alloc(&x->r->arena, sizeof(*e->probe))))
            return DTM_ENOMEM;
        *e->probe = *v->probe;
    }
    x->n++;
    return DTM_OK;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct entry *)a)->sys.code, ((const struct entry *)b)->sys.code);
}

static struct entry *entry_find(struct entries *x, const char *code)
{
    struct entry *key, *hit;
    if (!x->n || strlen(code) >= DTM_CODE_MAX || !(key = malloc(sizeof(*key))))
        return NULL;
    snprintf(key->sys.code, sizeof(key->sys.code), "%s", code);
    hit = bsearch(key, x->e, x->n, sizeof(*key), entry_cmp);
    free(key);
    return hit;
}

/* ---- status intervals */

struct intervals {
    struct dtm_status_interval *iv; /* malloc'd */
    size_t n, cap;
};

static int interval_add(void *ctx, const struct dtm_status_interval *iv)
{
    struct intervals *x = ctx;
    if (dtm_array_reserve(&x->iv, x->n, &x->cap, sizeof(*x->iv)))
        return DTM_ENOMEM;
    x->iv[x->n++] = *iv;
    return DTM_OK;
}

/* Uptime of every entry from the intervals of every system (both by code). */
static int uptimes(struct dtm_store *st, struct entries *x, int64_t now)
{
    struct intervals all = {0};
    size_t i = 0;
    int rc = st->ops->status_list(st, NULL, now - WINDOW, interval_add, &all);
    for (size_t k = 0; rc == DTM_OK && k < x->n; k++) {
        size_t j;
        while (i < all.n && strcmp(all.iv[i].system_code, x->e[k].sys.code) < 0)
            i++;
        for (j = i; j < all.n && strcmp(all.iv[j].system_code, x->e[k].sys.code) == 0;)
            j++;
        x->e[k].uptime = dtm_conn_uptime(all.iv + i, j - i, now - WINDOW, now);
        i = j;
    }
    free(all.iv);
    return rc;
}

/* ---- today's figures */

static int column(const struct dtm_result *res, const char *name)
{
    for (size_t j = 0; j < res->ncols; j++)
        if (strcmp(res->cols[j], name) == 0)
            return (int)j;
    return -1;
}

/* One query: today's metrics by system (restricted to the entries when not every system is
 * asked for and they fit in one condition). The cells point into res. */
static int today(struct dtm_req *r, struct dtm_store *st, struct entries *x, bool all, int64_t now,
                 struct dtm_result *res)
{
    const struct dtm_dataset *ds = dtm_dict_get(dtm_http_env(r)->dict, DTM_STR("transactions"));
    struct dtm_query *q = dtm_arena_alloc(&r->arena, sizeof(*q)); /* large: not on the stack */
    const char *bad = NULL;
    char err[256];
    int64_t day = dtm_bucket_start(DTM_I_DAY, now);
    int rc, kc, c[4];
    if (!ds || !q)
        return ds ? DTM_ENOMEM : DTM_EINTERNAL;
    if (dtm_query_parse(ds, METRICS, "system_code", NULL, NULL, NULL, NULL, 0, q, &bad, err,
                        sizeof(err)))
        return DTM_EINTERNAL;
    q->from = day;
    q->to = day + 86400 * US;
    if (!all && x->n <= DTM_STATS_MAX_VALUES) {
        const char **codes = dtm_arena_alloc(&r->arena, (x->n + 1) * sizeof(*codes));
        if (!codes)
            return DTM_ENOMEM;
        for (size_t i = 0; i < x->n; i++)
            codes[i] = x->e[i].sys.code;
        if (dtm_query_restrict(q, ds->system_field, codes, x->n))
            return DTM_EINTERNAL;
    }
    if ((rc = dtm_query_run(st, q, res)))
        return rc;
    kc = column(res, "system_code");
    c[0] = column(res, "count");
    c[1] = column(res, "rate:status=failed");
    c[2] = column(res, "avg:response_ms");
    c[3] = column(res, "p95:response_ms");
    for (size_t i = 0; kc >= 0 && i < res->nrows; i++) {
        struct entry *e = res->rows[i][kc] ? entry_find(x, res->rows[i][kc]) : NULL;
        if (!e)
            continue;
        e->count = c[0] >= 0 ? res->rows[i][c[0]] : NULL;
        e->rate = c[1] >= 0 ? res->rows[i][c[1]] : NULL;
        e->avg = c[2] >= 0 ? res->rows[i][c[2]] : NULL;
        e->p95 = c[3] >= 0 ? res->rows[i][c[3]] : NULL;
    }
    return DTM_OK;
}

/* ---- JSON */

/* The members of a system's object, without the closing brace. */
static void entry_json(struct dtm_buf *b, const struct entry *e)
{
    const struct dtm_probe *p = e->probe;
    dtm_buf_addc(b, "{\"code\":");
    dtm_buf_json_strc(b, e->sys.code);
    dtm_buf_addc(b, ",\"name\":");
    dtm_buf_json_strc(b, e->sys.name);
    dtm_buf_addc(b, ",\"org\":");
    dtm_buf_json_strc(b, e->sys.org);
    dtm_buf_addc(b, ",\"role\":");
    dtm_buf_json_strc(b, e->sys.role);
    dtm_buf_addc(b, ",\"parent\":");
    if (e->sys.parent[0])
        dtm_buf_json_strc(b, e->sys.parent);
    else
        dtm_buf_addc(b, "null");
    dtm_buf_printf(b, ",\"status\":\"%s\",\"last_seen\":", dtm_conn_status_name(e->status));
    dtm_buf_json_time(b, e->sys.last_seen);
    dtm_buf_printf(b,
                   ",\"transactions_today\":%s,\"error_rate_today\":%s,"
                   "\"avg_response_ms_today\":%s,\"p95_response_ms_today\":%s,\"uptime_30d\":",
                   e->count ? e->count : "0", e->rate ? e->rate : "null", e->avg ? e->avg : "null",
                   e->p95 ? e->p95 : "null");
    if (e->uptime < 0)
        dtm_buf_addc(b, "null");
    else
        dtm_buf_printf(b, "%.6f", e->uptime);
    dtm_buf_addc(b, ",\"probe\":");
    if (!p) {
        dtm_buf_addc(b, "null");
    } else if (!p->at) {
        dtm_buf_addc(b, "{\"ok\":null,\"checked_at\":null,\"response_ms\":null,\"error\":null}");
    } else {
        dtm_buf_printf(b, "{\"ok\":%s,\"checked_at\":", p->ok ? "true" : "false");
        dtm_buf_json_time(b, p->at);
        dtm_buf_printf(b, ",\"response_ms\":%lld,\"error\":", (long long)p->ms);
        if (p->error[0])
            dtm_buf_json_strc(b, p->error);
        else
            dtm_buf_addc(b, "null");
        dtm_buf_addch(b, '}');
    }
    dtm_buf_addc(b, ",\"href\":\"/api/v1/systems/");
    dtm_buf_add(b, e->sys.code, strlen(e->sys.code)); /* codes are [A-Za-z0-9._-] */
    dtm_buf_addch(b, '"');
}

int dtm_api_systems_list(struct dtm_req *r)
{
    const struct dtm_server_env *env = dtm_http_env(r);
    struct dtm_store *st = dtm_http_store(r);
    struct entries x = {.r = r};
    struct dtm_result res;
    struct dtm_buf b;
    bool have_res = false;
    int64_t now = dtm_now_us();
    int rc;
    if (!st)
        return DTM_ESTORE;
    memset(&res, 0, sizeof(res));
    if ((rc = dtm_conn_systems(env->conn, st, env->conf, now, entry_add, &x)) ||
        (rc = uptimes(st, &x, now)))
        goto out;
    if ((rc = today(r, st, &x, (r->person || strcmp(r->sys.role, "consumer") == 0), now, &res)))
        goto out;
    have_res = true;
    dtm_buf_init(&b, 256 << 20);
    dtm_buf_addc(&b, "{\"time\":");
    dtm_buf_json_time(&b, now);
    dtm_buf_addc(&b, ",\"systems\":[");
    for (size_t i = 0; i < x.n; i++) {
        if (i)
            dtm_buf_addch(&b, ',');
        entry_json(&b, &x.e[i]);
        dtm_buf_addch(&b, '}');
    }
    dtm_buf_addc(&b, "]}");
    rc = dtm_http_json(r, 200, &b);
    dtm_buf_free(&b);
out:
    if (have_res)
        dtm_result_free(&res);
    free(x.e);
    return rc;
}

/* ---- one system */

/* The last 48 hours, oldest first, every hour present: one query by hour. */
static int hourly(struct dtm_req *r, struct dtm_store *st, const char *code, int64_t now,
                  struct dtm_buf *b)
{
    const struct dtm_dataset *ds = dtm_dict_get(dtm_http_env(r)->dict, DTM_STR("transactions"));
    struct dtm_query *q = dtm_arena_alloc(&r->arena, sizeof(*q));
    struct dtm_result res;
    const char *bad = NULL;
    char err[256];
    int64_t first = dtm_bucket_start(DTM_I_HOUR, now) - (HOURS - 1) * 3600 * US;
    int rc, pc, c[4];
    if (!ds || !q)
        return ds ? DTM_ENOMEM : DTM_EINTERNAL;
    if (dtm_query_parse(ds, METRICS, NULL, "hour", NULL, NULL, NULL, 0, q, &bad, err,
                        sizeof(err)) ||
        dtm_query_restrict(q, ds->system_field, &code, 1))
        return DTM_EINTERNAL;
    q->from = first;
    q->to = first + HOURS * 3600 * US;
    if ((rc = dtm_query_run(st, q, &res)))
        return rc;
    pc = column(&res, "period");
    c[0] = column(&res, "count");
    c[1] = column(&res, "rate:status=failed");
    c[2] = column(&res, "avg:response_ms");
    c[3] = column(&res, "p95:response_ms");
    dtm_buf_addc(b, ",\"hourly\":[");
    for (int h = 0; h < HOURS; h++) {
        int64_t start = first + h * 3600 * US;
        char label[40];
        const char *v[4] = {NULL, NULL, NULL, NULL};
        dtm_bucket_label(DTM_I_HOUR, start, label, sizeof(label));
        for (size_t i = 0; pc >= 0 && i < res.nrows; i++)
            if (res.rows[i][pc] && strcmp(res.rows[i][pc], label) == 0) {
                for (int k = 0; k < 4; k++)
                    v[k] = c[k] >= 0 ? res.rows[i][c[k]] : NULL;
                break;
            }
        dtm_buf_addc(b, h ? ",{\"hour\":" : "{\"hour\":");
        dtm_buf_json_time(b, start);
        dtm_buf_printf(b,
                       ",\"transactions\":%s,\"error_rate\":%s,\"avg_response_ms\":%s,"
                       "\"p95_response_ms\":%s}",
                       v[0] ? v[0] : "0", v[1] ? v[1] : "null", v[2] ? v[2] : "null",
                       v[3] ? v[3] : "null");
    }
    dtm_buf_addch(b, ']');
    dtm_result_free(&res);
    return DTM_OK;
}

int dtm_api_system_get(struct dtm_req *r)
{
    const struct dtm_server_env *env = dtm_http_env(r);
    struct dtm_store *st = dtm_http_store(r);
    struct entries x = {.r = r};
    struct intervals iv = {0};
    struct dtm_system sys;
    struct dtm_probe probe;
    struct dtm_result res;
    struct dtm_buf b;
    char code[DTM_CODE_MAX];
    bool consumer = (r->person || strcmp(r->sys.role, "consumer") == 0), have_res = false;
    int64_t now = dtm_now_us();
    int rc;
    struct dtm_conn_view v = {&sys, NULL, DTM_CONN_NEVER};

    if (!st)
        return DTM_ESTORE;
    if (r->params[0].n >= sizeof(code))
        return dtm_http_problem(r, 404, "unknown_system", "Unknown system",
                                "There is no connected system '%.*s'.", 64, r->params[0].p);
    memcpy(code, r->params[0].p, r->params[0].n);
    code[r->params[0].n] = '\0';
    /* Whether another system exists is not told to one that may not see it: 403 either way. */
    rc = st->ops->system_get(st, code, &sys);
    if (rc && rc != DTM_ENOTFOUND)
        return rc;
    if (!consumer && (rc == DTM_ENOTFOUND || !may_see(r, &sys)))
        return dtm_http_problem(r, 403, "forbidden", "Forbidden",
                                "System %s may not read the connectivity of system %s.",
                                r->sys.code, code);
    if (rc == DTM_ENOTFOUND)
        return dtm_http_problem(r, 404, "unknown_system", "Unknown system",
                                "There is no connected system '%s'.", code);
    rc = dtm_conn_probe_get(st, code, &probe);
    if (rc && rc != DTM_ENOTFOUND)
        return rc;
    v.probe = rc == DTM_OK ? &probe : NULL;
    v.status = dtm_conn_derive(env->conf, now, sys.last_seen, dtm_conn_error_rate(env->conn, code),
                               v.probe);
    memset(&res, 0, sizeof(res));
    if ((rc = entry_add(&x, &v)) ||
        (rc = st->ops->status_list(st, code, now - WINDOW, interval_add, &iv)))
        goto out;
    x.e[0].uptime = dtm_conn_uptime(iv.iv, iv.n, now - WINDOW, now);
    if ((rc = today(r, st, &x, false, now, &res)))
        goto out;
    have_res = true;
    dtm_buf_init(&b, 16 << 20);
    entry_json(&b, &x.e[0]);
    if ((rc = hourly(r, st, code, now, &b))) {
        dtm_buf_free(&b);
        goto out;
    }
    dtm_buf_addc(&b, ",\"intervals\":[");
    for (size_t i = 0; i < iv.n; i++) {
        dtm_buf_printf(&b, "%s{\"status\":\"%s\",\"since\":", i ? "," : "", iv.iv[i].status);
        dtm_buf_json_time(&b, iv.iv[i].since);
        dtm_buf_addc(&b, ",\"until\":");
        dtm_buf_json_time(&b, iv.iv[i].until);
        dtm_buf_addch(&b, '}');
    }
    dtm_buf_addc(&b, "]}");
    rc = dtm_http_json(r, 200, &b);
    dtm_buf_free(&b);
out:
    if (have_res)
        dtm_result_free(&res);
    free(x.e);
    free(iv.iv);
    return rc;
}
