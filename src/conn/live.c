/* conn/live.c — the live feed behind GET /api/v1/live (CONTRACT §6, text/event-stream): while at
 * least one stream is open, a thread computes the dashboard KPIs once a second — transactions
 * today and in the last minute, today's failed share, average and p95 response time, systems by
 * status — into one event, then resumes every stream waiting for it. Between events a stream is
 * paused (dtm_http_pause): no HTTP worker waits on it, and a slow client skips to the latest
 * event instead of queueing them. Stopping the feed resumes every stream, which then ends. */
#include "conn/conn_impl.h"
#include "http/http.h"
#include "stats/stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define US 1000000LL
#define LIVE_PERIOD US /* one event a second */
/* a newcomer gets the latest event at once when it is this recent */
#define LIVE_FRESH (3 * US / 2)

struct dtm_live_sub {
    struct dtm_conn *c;
    struct dtm_req *r;
    struct dtm_live_sub *prev, *next;
    bool waiting;     /* paused until the next event */
    int64_t end_mono; /* a person's stream ends then (0 = never) */
    uint64_t seq;     /* the last event taken */
    char out[DTM_LIVE_EVENT_MAX];
    size_t n, off; /* out[off..n) is still to send */
};

int dtm_live_join(struct dtm_conn *c, struct dtm_req *r, struct dtm_live_sub **out)
{
    struct dtm_live_sub *s = NULL;
    int rc = DTM_OK;
    pthread_mutex_lock(&c->lock);
    if (c->stopping)
        rc = DTM_EBUSY;
    else if ((int64_t)c->nsubs >= (*c->conf)->max_live_streams)
        rc = DTM_ETOOBIG;
    else if (!(s = calloc(1, sizeof(*s))))
        rc = DTM_ENOMEM;
    if (rc == DTM_OK) {
        s->c = c;
        s->r = r;
        /* A person's stream is authenticated once, when it opens: it ends after [session]
         * live_stream_max s, at an event boundary, and the browser's EventSource opens it again
         * — the session checked again. So an ended session (signed out, disabled, expired)
         * stops feeding a forgotten tab within that time. A system's stream runs on (its key is
         * checked by the key cache on every request it makes). */
        s->end_mono = r->person ? dtm_mono_us() + (*c->conf)->session_live_stream_max * 1000000 : 0;
        s->next = c->subs;
        if (c->subs)
            c->subs->prev = s;
        c->subs = s;
        c->nsubs++;
        if (c->seq && dtm_mono_us() - c->event_mono > LIVE_FRESH)
            s->seq = c->seq; /* stale (nobody was listening): wait for a new one */
        pthread_cond_broadcast(&c->wake);
        *out = s;
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

long dtm_live_fill(void *arg, char *buf, size_t max)
{
    struct dtm_live_sub *s = arg;
    struct dtm_conn *c = s->c;
    pthread_mutex_lock(&c->lock);
    if (s->off == s->n && c->seq > s->seq) {
        memcpy(s->out, c->event, c->event_n);
        s->n = c->event_n;
        s->off = 0;
        s->seq = c->seq;
    }
    if (s->off < s->n && max > 0) {
        size_t k = DTM_MIN(max, s->n - s->off);
        memcpy(buf, s->out + s->off, k);
        s->off += k;
        pthread_mutex_unlock(&c->lock);
        return (long)k;
    }
    if (c->stopping || (s->end_mono && dtm_mono_us() >= s->end_mono)) {
        pthread_mutex_unlock(&c->lock);
        return 0; /* the end of the stream */
    }
    /* paused under the lock, so the feed's resume (under it too) always comes after */
    s->waiting = true;
    dtm_http_pause(s->r);
    pthread_mutex_unlock(&c->lock);
    return DTM_FILL_PAUSED;
}

void dtm_live_leave(void *arg)
{
    struct dtm_live_sub *s = arg;
    struct dtm_conn *c;
    if (!s)
        return;
    c = s->c;
    pthread_mutex_lock(&c->lock);
    if (s->prev)
        s->prev->next = s->next;
    else
        c->subs = s->next;
    if (s->next)
        s->next->prev = s->prev;
    c->nsubs--;
    pthread_mutex_unlock(&c->lock);
    free(s);
}

/* c->lock held */
static void wake_all(struct dtm_conn *c)
{
    for (struct dtm_live_sub *s = c->subs; s; s = s->next)
        if (s->waiting) {
            s->waiting = false;
            dtm_http_resume(s->r);
        }
}

void dtm_conn_live_end_locked(struct dtm_conn *c)
{
    wake_all(c);
}

/* ---- the KPIs */

struct tally {
    long long by[DTM_CONN_NSTATUS];
};

static int tally_one(void *ctx, const struct dtm_conn_view *v)
{
    ((struct tally *)ctx)->by[v->status]++;
    return DTM_OK;
}

/* A metric cell of a one-row result as a JSON number (cells are JSON-ready), or `none`. */
static void cell(struct dtm_buf *b, const struct dtm_result *res, size_t col, const char *none)
{
    const char *v = res->nrows && col < res->ncols ? res->rows[0][col] : NULL;
    dtm_buf_addc(b, v ? v : none);
}

static int kpis(struct dtm_conn *c, struct dtm_store *st, struct dtm_query *q, struct dtm_buf *b)
{
    const struct dtm_dataset *ds = dtm_conn_transactions(c);
    const struct dtm_conf *conf = *c->conf;
    int64_t now = dtm_now_us(), day = dtm_bucket_start(DTM_I_DAY, now);
    struct dtm_result res;
    struct tally t = {{0}};
    const char *bad = NULL;
    char ts[40], err[256];
    int rc;
    if (!ds)
        return DTM_ENOTFOUND;
    dtm_time_fmt(now, ts, sizeof(ts));
    dtm_buf_printf(b, "{\"time\":\"%s\"", ts);
    /* today: one query, no group (one row) */
    if ((rc = dtm_query_parse(ds, "count,rate:status=failed,avg:response_ms,p95:response_ms", NULL,
                              NULL, NULL, NULL, NULL, 0, q, &bad, err, sizeof(err))))
        return rc;
    q->from = day;
    q->to = day + 86400 * US;
    if ((rc = dtm_query_run(st, q, &res)))
        return rc;
    dtm_buf_addc(b, ",\"transactions_today\":");
    cell(b, &res, 0, "0");
    dtm_buf_addc(b, ",\"error_rate_today\":");
    cell(b, &res, 1, "null");
    dtm_buf_addc(b, ",\"avg_response_ms_today\":");
    cell(b, &res, 2, "null");
    dtm_buf_addc(b, ",\"p95_response_ms_today\":");
    cell(b, &res, 3, "null");
    dtm_result_free(&res);
    /* the last minute */
    if ((rc = dtm_query_parse(ds, "count", NULL, NULL, NULL, NULL, NULL, 0, q, &bad, err,
                              sizeof(err))))
        return rc;
    q->from = now - 60 * US;
    q->to = now + 1;
    if ((rc = dtm_query_run(st, q, &res)))
        return rc;
    dtm_buf_addc(b, ",\"transactions_last_minute\":");
    cell(b, &res, 0, "0");
    dtm_result_free(&res);
    if ((rc = dtm_conn_systems(c, st, conf, now, tally_one, &t)))
        return rc;
    dtm_buf_printf(b,
                   ",\"systems\":{\"online\":%lld,\"degraded\":%lld,\"offline\":%lld,"
                   "\"never\":%lld}}",
                   t.by[DTM_CONN_ONLINE], t.by[DTM_CONN_DEGRADED], t.by[DTM_CONN_OFFLINE],
                   t.by[DTM_CONN_NEVER]);
    return b->err;
}

/* c->lock held: the new event replaces the last one and every paused stream is resumed */
static bool publish(struct dtm_conn *c, const struct dtm_buf *json, int64_t made)
{
    int n = snprintf(c->event, sizeof(c->event), "id: %llu\ndata: %s\n\n",
                     (unsigned long long)c->seq + 1, json->p ? json->p : "{}");
    if (n < 0 || (size_t)n >= sizeof(c->event))
        return false;
    c->event_n = (size_t)n;
    c->seq++;
    c->event_mono = made;
    wake_all(c);
    return true;
}

void *dtm_conn_live_run(void *arg)
{
    struct dtm_conn *c = arg;
    struct dtm_store *st = NULL;
    struct dtm_query *q = malloc(sizeof(*q)); /* large: not on the stack */
    struct dtm_buf json;
    char err[256];
    int64_t next = 0;
    int last_rc = DTM_OK;
    if (!q || dtm_store_open(*c->conf, &st, err, sizeof(err))) {
        dtm_log(DTM_LOG_ERROR, "live feed cannot start: no store connection", NULL);
        free(q);
        return NULL;
    }
    dtm_buf_init(&json, DTM_LIVE_EVENT_MAX - 64);
    pthread_mutex_lock(&c->lock);
    for (;;) {
        int64_t t0;
        int rc;
        while (!c->stopping && c->nsubs == 0)
            pthread_cond_wait(&c->wake, &c->lock);
        if (dtm_conn_wait(c, next))
            break;
        if (c->nsubs == 0)
            continue;
        t0 = dtm_mono_us();
        next = t0 + LIVE_PERIOD;
        pthread_mutex_unlock(&c->lock);
        dtm_buf_reset(&json);
        rc = kpis(c, st, q, &json);
        pthread_mutex_lock(&c->lock);
        if (rc == DTM_OK && !publish(c, &json, t0))
            rc = DTM_ETOOBIG;
        if (rc && rc != last_rc)
            dtm_logf(DTM_LOG_WARN, "live feed: no event this second", "\"error\":\"%s\"",
                     dtm_rc_name(rc));
        last_rc = rc;
    }
    pthread_mutex_unlock(&c->lock);
    dtm_buf_free(&json);
    st->ops->close(st);
    free(q);
    return NULL;
}
