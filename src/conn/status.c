/* conn/status.c — the status model and its history (issue 4): a system's status (online,
 * degraded, offline, never) derived from when it was last seen, the failed share of its last
 * hour and its health probe; uptime from the recorded intervals; and the evaluator thread,
 * which every [systems] check_interval seconds finds each system's status and records each
 * change as an interval (system_status, until NULL for the current one). Also the service's
 * start and stop. */
#include "conn/conn_impl.h"
#include "stats/stats.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define US 1000000LL

static const char *const status_names[DTM_CONN_NSTATUS] = {
    [DTM_CONN_NEVER] = "never",
    [DTM_CONN_OFFLINE] = "offline",
    [DTM_CONN_DEGRADED] = "degraded",
    [DTM_CONN_ONLINE] = "online",
};

const char *dtm_conn_status_name(enum dtm_conn_status s)
{
    return (unsigned)s < DTM_CONN_NSTATUS ? status_names[s] : "never";
}

static enum dtm_conn_status status_parse(const char *name)
{
    for (int i = 0; i < DTM_CONN_NSTATUS; i++)
        if (strcmp(name, status_names[i]) == 0)
            return (enum dtm_conn_status)i;
    return DTM_CONN_NEVER;
}

static bool is_up(const char *status)
{
    return strcmp(status, "online") == 0 || strcmp(status, "degraded") == 0;
}

enum dtm_conn_status dtm_conn_derive(const struct dtm_conf *c, int64_t now, int64_t last_seen,
                                     double err_rate, const struct dtm_probe *probe)
{
    if (last_seen <= 0)
        return DTM_CONN_NEVER;
    if (now - last_seen > c->online_within * US)
        return DTM_CONN_OFFLINE;
    /* a threshold of 0 makes any failure count; no failure never does */
    if (err_rate > 0 && err_rate >= c->degraded_error_rate)
        return DTM_CONN_DEGRADED;
    if (probe && probe->at && !probe->ok)
        return DTM_CONN_DEGRADED;
    return DTM_CONN_ONLINE;
}

double dtm_conn_uptime(const struct dtm_status_interval *iv, size_t n, int64_t from, int64_t now)
{
    int64_t start, up = 0;
    if (n == 0)
        return -1;
    start = DTM_MAX(from, iv[0].since);
    if (start >= now) /* first seen this instant */
        return is_up(iv[n - 1].status) ? 1 : 0;
    for (size_t i = 0; i < n; i++) {
        int64_t a = DTM_MAX(iv[i].since, start);
        int64_t b = DTM_MIN(iv[i].until ? iv[i].until : now, now);
        if (b > a && is_up(iv[i].status))
            up += b - a;
    }
    return (double)up / (double)(now - start);
}

/* ---- error rates of the last hour */

static int rate_cmp(const void *a, const void *b)
{
    return strcmp(((const struct dtm_conn_rate *)a)->code, ((const struct dtm_conn_rate *)b)->code);
}

double dtm_conn_error_rate(struct dtm_conn *c, const char *code)
{
    struct dtm_conn_rate key;
    const struct dtm_conn_rate *hit = NULL;
    double rate = -1;
    if (!c)
        return -1;
    snprintf(key.code, sizeof(key.code), "%s", code);
    pthread_mutex_lock(&c->lock);
    if (c->nrates)
        hit = bsearch(&key, c->rates, c->nrates, sizeof(key), rate_cmp);
    if (hit)
        rate = hit->rate;
    pthread_mutex_unlock(&c->lock);
    return rate;
}

const struct dtm_dataset *dtm_conn_transactions(struct dtm_conn *c)
{
    const struct dtm_dataset *ds = dtm_dict_get(c->dict, DTM_STR("transactions"));
    if (!ds)
        dtm_log(DTM_LOG_ERROR, "no dataset 'transactions': connectivity has no error rates", NULL);
    return ds;
}

static int column(const struct dtm_result *res, const char *name)
{
    for (size_t j = 0; j < res->ncols; j++)
        if (strcmp(res->cols[j], name) == 0)
            return (int)j;
    return -1;
}

/* One statistics query (failed share by system over the last hour) replaces the rates. */
static int refresh_rates(struct dtm_conn *c, struct dtm_store *st, struct dtm_query *q, int64_t now)
{
    const struct dtm_dataset *ds = dtm_conn_transactions(c);
    struct dtm_conn_rate *rates = NULL, *old;
    struct dtm_result res;
    const char *bad = NULL;
    char err[256];
    size_t n = 0;
    int rc, kc, rcol;
    if (!ds)
        return DTM_ENOTFOUND;
    if ((rc = dtm_query_parse(ds, "count,rate:status=failed", "system_code", NULL, NULL, NULL, NULL,
                              0, q, &bad, err, sizeof(err))))
        return rc;
    q->from = now - 3600 * US;
    q->to = now + 1;
    if ((rc = dtm_query_run(st, q, &res)))
        return rc;
    kc = column(&res, "system_code");
    rcol = column(&res, "rate:status=failed");
    if (kc >= 0 && rcol >= 0 && res.nrows && !(rates = calloc(res.nrows, sizeof(*rates)))) {
        dtm_result_free(&res);
        return DTM_ENOMEM;
    }
    for (size_t i = 0; kc >= 0 && rcol >= 0 && i < res.nrows; i++) {
        const char *code = res.rows[i][kc], *rate = res.rows[i][rcol];
        if (!code || !rate || strlen(code) >= sizeof(rates[0].code))
            continue;
        snprintf(rates[n].code, sizeof(rates[n].code), "%s", code);
        rates[n++].rate = strtod(rate, NULL);
    }
    dtm_result_free(&res);
    if (n)
        qsort(rates, n, sizeof(*rates), rate_cmp);
    pthread_mutex_lock(&c->lock);
    old = c->rates;
    c->rates = rates;
    c->nrates = n;
    pthread_mutex_unlock(&c->lock);
    free(old);
    return DTM_OK;
}

/* ---- every system with its probe and status */

struct probes {
    struct dtm_probe *p;
    size_t n, cap;
};

static int probe_collect(void *ctx, const struct dtm_probe *p)
{
    struct probes *x = ctx;
    if (dtm_array_reserve(&x->p, x->n, &x->cap, sizeof(*x->p)))
        return DTM_ENOMEM;
    x->p[x->n++] = *p;
    return DTM_OK;
}

static int probe_cmp(const void *a, const void *b)
{
    return strcmp(((const struct dtm_probe *)a)->system_code,
                  ((const struct dtm_probe *)b)->system_code);
}

struct walk {
    struct dtm_conn *c;
    const struct dtm_conf *conf;
    int64_t now;
    const struct probes *probes;
    dtm_conn_view_cb cb;
    void *ctx;
};

static int system_one(void *ctx, const struct dtm_system *sys)
{
    struct walk *w = ctx;
    struct dtm_probe *key = NULL;
    const struct dtm_probe *p = NULL;
    struct dtm_conn_view v;
    if (w->probes->n) {
        /* the probes are sorted by code as the store lists them */
        if (!(key = malloc(sizeof(*key))))
            return DTM_ENOMEM;
        snprintf(key->system_code, sizeof(key->system_code), "%s", sys->code);
        p = bsearch(key, w->probes->p, w->probes->n, sizeof(*key), probe_cmp);
        free(key);
    }
    v.sys = sys;
    v.probe = p;
    v.status =
        dtm_conn_derive(w->conf, w->now, sys->last_seen, dtm_conn_error_rate(w->c, sys->code), p);
    return w->cb(w->ctx, &v);
}

int dtm_conn_systems(struct dtm_conn *c, struct dtm_store *st, const struct dtm_conf *conf,
                     int64_t now, dtm_conn_view_cb cb, void *ctx)
{
    struct probes pr = {0};
    struct walk w = {c, conf, now, &pr, cb, ctx};
    int rc = st->ops->probe_list(st, probe_collect, &pr);
    if (rc == DTM_OK)
        rc = st->ops->system_list(st, system_one, &w);
    free(pr.p);
    return rc;
}

struct probe_find {
    const char *code;
    struct dtm_probe *out;
    bool found;
};

static int probe_match(void *ctx, const struct dtm_probe *p)
{
    struct probe_find *f = ctx;
    if (strcmp(p->system_code, f->code) == 0) {
        *f->out = *p;
        f->found = true;
    }
    return DTM_OK;
}

int dtm_conn_probe_get(struct dtm_store *st, const char *code, struct dtm_probe *out)
{
    struct probe_find f = {code, out, false};
    int rc = st->ops->probe_list(st, probe_match, &f);
    if (rc)
        return rc;
    return f.found ? DTM_OK : DTM_ENOTFOUND;
}

/* ---- the evaluator */

struct intervals {
    struct dtm_status_interval *iv;
    size_t n, cap;
};

static int current_collect(void *ctx, const struct dtm_status_interval *iv)
{
    struct intervals *x = ctx;
    if (iv->until)
        return DTM_OK; /* ended after now: a clock that went back; not the current one */
    if (dtm_array_reserve(&x->iv, x->n, &x->cap, sizeof(*x->iv)))
        return DTM_ENOMEM;
    x->iv[x->n++] = *iv;
    return DTM_OK;
}

static int interval_cmp(const void *a, const void *b)
{
    return strcmp(((const struct dtm_status_interval *)a)->system_code,
                  ((const struct dtm_status_interval *)b)->system_code);
}

struct change {
    struct dtm_status_interval iv;
    enum dtm_conn_status was;
    int64_t last_seen;
};

struct eval {
    const struct dtm_conf *conf;
    int64_t now;
    const struct intervals *current; /* by code */
    struct change *changes;
    size_t n, cap;
};

/* A status change starts when it happened as well as we can tell: going offline, online_within
 * after the last sighting; coming (back) online, at the last sighting; anything else now. Never
 * before the interval it ends. */
static int eval_one(void *ctx, const struct dtm_conn_view *v)
{
    struct eval *e = ctx;
    struct dtm_status_interval key, *cur = NULL;
    enum dtm_conn_status was = DTM_CONN_NEVER;
    int64_t since = e->now;
    struct change *ch;
    snprintf(key.system_code, sizeof(key.system_code), "%s", v->sys->code);
    if (e->current->n)
        cur = bsearch(&key, e->current->iv, e->current->n, sizeof(key), interval_cmp);
    if (cur)
        was = status_parse(cur->status);
    if (v->status == was || v->status == DTM_CONN_NEVER)
        return DTM_OK;
    if (v->status == DTM_CONN_OFFLINE)
        since = v->sys->last_seen + e->conf->online_within * US;
    else if (was == DTM_CONN_NEVER || was == DTM_CONN_OFFLINE)
        since = v->sys->last_seen;
    since = DTM_MIN(since, e->now);
    if (cur && since < cur->since)
        since = cur->since;
    if (dtm_array_reserve(&e->changes, e->n, &e->cap, sizeof(*e->changes)))
        return DTM_ENOMEM;
    ch = &e->changes[e->n++];
    memset(ch, 0, sizeof(*ch));
    snprintf(ch->iv.system_code, sizeof(ch->iv.system_code), "%s", v->sys->code);
    snprintf(ch->iv.status, sizeof(ch->iv.status), "%s", dtm_conn_status_name(v->status));
    ch->iv.since = since;
    ch->was = was;
    ch->last_seen = v->sys->last_seen;
    return DTM_OK;
}

static void log_change(const struct dtm_status_interval *iv, enum dtm_conn_status was)
{
    struct dtm_buf f;
    char ts[40];
    dtm_time_fmt(iv->since, ts, sizeof(ts));
    dtm_buf_init(&f, 1024);
    dtm_buf_addc(&f, "\"system\":");
    dtm_buf_json_strc(&f, iv->system_code);
    dtm_buf_printf(&f, ",\"from\":\"%s\",\"to\":\"%s\",\"since\":\"%s\"", dtm_conn_status_name(was),
                   iv->status, ts);
    dtm_log(DTM_LOG_INFO, "system status changed", f.err ? NULL : f.p);
    dtm_buf_free(&f);
}

void dtm_conn_watch(struct dtm_conn *c, dtm_conn_watch_fn fn, void *ctx)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    c->watch = fn;
    c->watch_ctx = ctx;
    pthread_mutex_unlock(&c->lock);
}

/* T4.1: the recorded changes go to the watcher (system.silent). */
static void tell_watcher(struct dtm_conn *c, const struct eval *e)
{
    dtm_conn_watch_fn fn;
    void *ctx;
    pthread_mutex_lock(&c->lock);
    fn = c->watch;
    ctx = c->watch_ctx;
    pthread_mutex_unlock(&c->lock);
    for (size_t i = 0; fn && i < e->n; i++)
        fn(ctx, e->changes[i].iv.system_code, dtm_conn_status_name(e->changes[i].was),
           e->changes[i].iv.status, e->changes[i].last_seen);
}

static int evaluate(struct dtm_conn *c, struct dtm_store *st, struct dtm_query *q)
{
    const struct dtm_conf *conf = *c->conf;
    struct intervals current = {0};
    struct eval e = {.conf = conf, .now = dtm_now_us(), .current = &current};
    int rc, rrc;
    /* rates that cannot be refreshed stay as they were; the rest goes on */
    rrc = refresh_rates(c, st, q, e.now);
    if ((rc = st->ops->status_list(st, NULL, e.now, current_collect, &current)) ||
        (rc = dtm_conn_systems(c, st, conf, e.now, eval_one, &e)))
        goto out;
    if (e.n) {
        if ((rc = st->ops->begin(st)))
            goto out;
        for (size_t i = 0; i < e.n && rc == DTM_OK; i++)
            rc = st->ops->status_put(st, &e.changes[i].iv);
        if (rc == DTM_OK)
            rc = st->ops->commit(st);
        if (rc) {
            st->ops->rollback(st);
            goto out;
        }
        for (size_t i = 0; i < e.n; i++)
            log_change(&e.changes[i].iv, e.changes[i].was);
        tell_watcher(c, &e);
    }
    rc = rrc;
out:
    free(current.iv);
    free(e.changes);
    return rc;
}

bool dtm_conn_wait(struct dtm_conn *c, int64_t until)
{
    while (!c->stopping) {
        int64_t now = dtm_mono_us();
        struct timespec ts;
        if (now >= until)
            break;
        ts.tv_sec = (time_t)(until / US);
        ts.tv_nsec = (long)(until % US) * 1000;
        pthread_cond_timedwait(&c->wake, &c->lock, &ts);
    }
    return c->stopping;
}

void *dtm_conn_status_run(void *arg)
{
    struct dtm_conn *c = arg;
    struct dtm_store *st = NULL;
    struct dtm_query *q = malloc(sizeof(*q)); /* large: not on the stack */
    char err[256];
    int last_rc = DTM_OK;
    if (!q || dtm_store_open(*c->conf, &st, err, sizeof(err))) {
        dtm_log(DTM_LOG_ERROR, "connectivity evaluator cannot start: no store connection", NULL);
        free(q);
        return NULL;
    }
    pthread_mutex_lock(&c->lock);
    while (!c->stopping) {
        int64_t next = dtm_mono_us() + (*c->conf)->check_interval * US;
        int rc;
        pthread_mutex_unlock(&c->lock);
        rc = evaluate(c, st, q);
        if (rc && rc != last_rc) /* once per kind of failure, not every round */
            dtm_logf(DTM_LOG_WARN, "connectivity evaluation failed", "\"error\":\"%s\"",
                     dtm_rc_name(rc));
        last_rc = rc;
        pthread_mutex_lock(&c->lock);
        dtm_conn_wait(c, next);
    }
    pthread_mutex_unlock(&c->lock);
    st->ops->close(st);
    free(q);
    return NULL;
}

/* ---- the service */

int dtm_conn_start(const struct dtm_conf *const *conf, struct dtm_dict *dict, struct dtm_conn **out,
                   char *err, size_t errsz)
{
    struct dtm_conn *c = calloc(1, sizeof(*c));
    pthread_condattr_t ca;
    if (!c) {
        snprintf(err, errsz, "out of memory");
        return DTM_ENOMEM;
    }
    c->conf = conf;
    c->dict = dict;
    pthread_mutex_init(&c->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errsz, "cannot initialise libcurl for the health probes");
        dtm_conn_free(c);
        return DTM_EINTERNAL;
    }
    c->curl_ready = true;
    if (pthread_create(&c->status_thread, NULL, dtm_conn_status_run, c) == 0)
        c->status_started = true;
    if (c->status_started && pthread_create(&c->probe_thread, NULL, dtm_conn_probe_run, c) == 0)
        c->probe_started = true;
    if (c->probe_started && pthread_create(&c->live_thread, NULL, dtm_conn_live_run, c) == 0)
        c->live_started = true;
    if (!c->live_started) {
        snprintf(err, errsz, "cannot start the connectivity threads");
        dtm_conn_free(c);
        return DTM_EINTERNAL;
    }
    *out = c;
    return DTM_OK;
}

void dtm_conn_stop(struct dtm_conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    c->stopping = true;
    dtm_conn_live_end_locked(c);
    pthread_cond_broadcast(&c->wake);
    pthread_mutex_unlock(&c->lock);
    if (c->status_started)
        pthread_join(c->status_thread, NULL);
    if (c->probe_started)
        pthread_join(c->probe_thread, NULL);
    if (c->live_started)
        pthread_join(c->live_thread, NULL);
    c->status_started = c->probe_started = c->live_started = false;
}

void dtm_conn_free(struct dtm_conn *c)
{
    if (!c)
        return;
    dtm_conn_stop(c);
    if (c->curl_ready)
        curl_global_cleanup();
    free(c->rates);
    pthread_cond_destroy(&c->wake);
    pthread_mutex_destroy(&c->lock);
    free(c);
}
