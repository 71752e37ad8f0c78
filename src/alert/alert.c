/* alert/alert.c — the alert engine (T5.3): the rules of one change (de-duplication,
 * suppression, acknowledgement, resolution) applied in a transaction, and the engine's thread
 * that takes the events other threads queue (raise and clear never block), applies them on its
 * own store connection, hands new alerts to the delivery thread (deliver.c) and runs the
 * periodic checks (overdue vulnerabilities, vuln.c). */
#include "alert/alert.h"
#include "audit/audit.h"

#include <cJSON.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define QUEUE_MAX 2048 /* events waiting at most: beyond, raises are dropped and counted */

static const char *const severity_names[] = {"info", "warning", "critical"};

const char *dtm_alert_severity_name(enum dtm_alert_severity s)
{
    return (unsigned)s < DTM_ARRAY_LEN(severity_names) ? severity_names[s] : "critical";
}

int dtm_alert_severity_parse(const char *s, enum dtm_alert_severity *out)
{
    for (size_t i = 0; s && i < DTM_ARRAY_LEN(severity_names); i++)
        if (!strcmp(s, severity_names[i])) {
            *out = (enum dtm_alert_severity)i;
            return DTM_OK;
        }
    return DTM_EINVAL;
}

static int severity_rank(const char *s)
{
    enum dtm_alert_severity v = DTM_ALERT_CRITICAL;
    dtm_alert_severity_parse(s, &v);
    return (int)v;
}

/* ---- JSON */

static void json_time(struct dtm_buf *b, const char *name, int64_t t)
{
    dtm_buf_printf(b, ",\"%s\":", name);
    dtm_buf_json_time(b, t);
}

static void json_member(struct dtm_buf *b, const char *name, const char *v)
{
    dtm_buf_printf(b, ",\"%s\":", name);
    dtm_buf_json_strc(b, v);
}

int dtm_alert_json(struct dtm_buf *b, const struct dtm_alert *a)
{
    dtm_buf_printf(b, "{\"id\":%lld", (long long)a->id);
    json_member(b, "rule", a->rule);
    json_member(b, "key", a->key);
    json_member(b, "severity", a->severity);
    json_member(b, "state", a->state);
    json_member(b, "title", a->title);
    /* detail is a JSON object written by our own modules (checked when raised) */
    dtm_buf_printf(b, ",\"detail\":%s", a->detail[0] ? a->detail : "{}");
    json_time(b, "first_seen", a->first_seen);
    json_time(b, "last_seen", a->last_seen);
    dtm_buf_printf(b, ",\"count\":%lld", (long long)a->count);
    dtm_buf_addc(b, ",\"acknowledged_by\":");
    if (a->acknowledged_by[0])
        dtm_buf_json_strc(b, a->acknowledged_by);
    else
        dtm_buf_addc(b, "null");
    json_time(b, "acknowledged_at", a->acknowledged_at);
    dtm_buf_addc(b, ",\"resolved_by\":");
    if (a->resolved_by[0])
        dtm_buf_json_strc(b, a->resolved_by);
    else
        dtm_buf_addc(b, "null");
    json_time(b, "resolved_at", a->resolved_at);
    dtm_buf_printf(b, ",\"suppressed\":%s}", a->suppressed ? "true" : "false");
    return b->err;
}

/* ---- one change in a transaction */

static int audit(struct dtm_store *st, const uint8_t *key, const struct dtm_alert_change *c,
                 const char *action, const struct dtm_alert *a)
{
    char target[32], detail[512];
    struct dtm_buf d;
    int rc;
    if (!key)
        return DTM_OK;
    snprintf(target, sizeof(target), "alert:%lld", (long long)a->id);
    dtm_buf_init(&d, sizeof(detail) - 1);
    dtm_buf_addc(&d, "{\"rule\":");
    dtm_buf_json_strc(&d, a->rule);
    dtm_buf_addc(&d, ",\"key\":");
    dtm_buf_json_strc(&d, a->key);
    dtm_buf_printf(&d, ",\"severity\":\"%s\",\"state\":\"%s\",\"suppressed\":%s}", a->severity,
                   a->state, a->suppressed ? "true" : "false");
    snprintf(detail, sizeof(detail), "%s", d.err || !d.p ? "{}" : d.p);
    dtm_buf_free(&d);
    if (c->op == DTM_ALERT_OP_RAISE)
        rc = dtm_audit_append(
            st, key, &(struct dtm_audit_event){"server", "dtm serve", action, target, detail, NULL},
            NULL);
    else
        rc = dtm_audit_append(st, key,
                              &(struct dtm_audit_event){c->actor_kind[0] ? c->actor_kind : "user",
                                                        c->actor, action, target, detail,
                                                        c->source_ip},
                              NULL);
    return rc;
}

static int apply_raise(struct dtm_store *st, struct dtm_alert_change *c, int64_t suppress_us,
                       const uint8_t *audit_key)
{
    struct dtm_alert *o = &c->out;
    int64_t resolved = 0;
    int rc = st->ops->alert_open(st, c->in.rule, c->in.key, o);
    if (rc == DTM_OK) {
        /* de-duplication: the same condition again */
        o->count++;
        if (c->at > o->last_seen)
            o->last_seen = c->at;
        if (severity_rank(c->in.severity) > severity_rank(o->severity))
            snprintf(o->severity, sizeof(o->severity), "%s", c->in.severity);
        /* a suppressed alert still firing once the window has passed is news again */
        if (o->suppressed && !strcmp(o->state, "firing")) {
            if ((rc = st->ops->alert_last_resolved(st, c->in.rule, c->in.key, &resolved)))
                return rc;
            if (c->at - resolved >= suppress_us) {
                o->suppressed = false;
                c->notify = true;
            }
        }
        if ((rc = st->ops->alert_update(st, o)) || !c->notify)
            return rc;
        return audit(st, audit_key, c, "alert.fired", o);
    }
    if (rc != DTM_ENOTFOUND)
        return rc;
    if ((rc = st->ops->alert_last_resolved(st, c->in.rule, c->in.key, &resolved)))
        return rc;
    *o = c->in;
    o->id = 0;
    snprintf(o->state, sizeof(o->state), "firing");
    o->first_seen = o->last_seen = c->at;
    o->count = 1;
    o->acknowledged_by[0] = o->resolved_by[0] = '\0';
    o->acknowledged_at = o->resolved_at = 0;
    o->suppressed = resolved && c->at - resolved < suppress_us;
    if ((rc = st->ops->alert_insert(st, o)))
        return rc;
    c->notify = !o->suppressed;
    return audit(st, audit_key, c, "alert.fired", o);
}

static int apply_clear(struct dtm_store *st, struct dtm_alert_change *c)
{
    struct dtm_alert *o = &c->out;
    int rc = st->ops->alert_open(st, c->in.rule, c->in.key, o);
    if (rc == DTM_ENOTFOUND) {
        c->rc = DTM_ENOTFOUND;
        return DTM_OK;
    }
    if (rc)
        return rc;
    snprintf(o->state, sizeof(o->state), "resolved");
    o->resolved_at = c->at;
    o->resolved_by[0] = '\0';
    c->notify_resolved = !o->suppressed;
    return st->ops->alert_update(st, o);
}

static int apply_person(struct dtm_store *st, struct dtm_alert_change *c, const uint8_t *audit_key)
{
    struct dtm_alert *o = &c->out;
    bool ack = c->op == DTM_ALERT_OP_ACK;
    int rc = st->ops->alert_get(st, c->in.id, o);
    if (rc == DTM_ENOTFOUND) {
        c->rc = DTM_ENOTFOUND;
        return DTM_OK;
    }
    if (rc)
        return rc;
    if (!strcmp(o->state, "resolved")) {
        c->rc = DTM_ECONFLICT;
        return DTM_OK;
    }
    if (ack && !strcmp(o->state, "acknowledged"))
        return DTM_OK; /* already: answered as it is */
    if (ack) {
        snprintf(o->state, sizeof(o->state), "acknowledged");
        snprintf(o->acknowledged_by, sizeof(o->acknowledged_by), "%s", c->actor);
        o->acknowledged_at = c->at;
    } else {
        snprintf(o->state, sizeof(o->state), "resolved");
        snprintf(o->resolved_by, sizeof(o->resolved_by), "%s", c->actor);
        o->resolved_at = c->at;
        c->notify_resolved = !o->suppressed;
    }
    if ((rc = st->ops->alert_update(st, o)))
        return rc;
    return audit(st, audit_key, c, ack ? "alert.acknowledged" : "alert.resolved", o);
}

int dtm_alert_apply(struct dtm_store *st, struct dtm_alert_change *c, int64_t suppress_us,
                    const uint8_t *audit_key)
{
    c->rc = DTM_OK;
    c->notify = c->notify_resolved = false;
    switch (c->op) {
    case DTM_ALERT_OP_RAISE:
        return apply_raise(st, c, suppress_us, audit_key);
    case DTM_ALERT_OP_CLEAR:
        return apply_clear(st, c);
    case DTM_ALERT_OP_ACK:
    case DTM_ALERT_OP_RESOLVE:
        return apply_person(st, c, audit_key);
    }
    return DTM_EINTERNAL;
}

/* ---- the engine */

enum ev_kind { EV_CHANGE, EV_CALL };

struct ev {
    enum ev_kind kind;
    struct dtm_alert_change c;
    dtm_alert_done_fn done; /* EV_CHANGE of a person (NULL for raise and clear) */
    int (*fn)(void *ctx, struct dtm_store *st);
    void (*call_done)(void *ctx, int rc);
    void *ctx;
    /* a notification (event fired or resolved): the channels it is routed to (their rows are
     * pending) */
    const char *event;
    char channels[DTM_CONF_CHANNELS][64];
    size_t nchannels;
    struct ev *next;
};

struct dtm_alerts {
    const struct dtm_conf *const *conf;
    uint8_t audit_key[32];
    struct dtm_deliverer *deliver;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct ev *head, *tail;
    size_t depth;
    bool stopping, stopped, poked;
    uint64_t dropped;
    int64_t last_drop_log; /* µs */
    struct dtm_store *st;  /* the thread's own */
};

static int push(struct dtm_alerts *e, struct ev *v, bool bounded)
{
    pthread_mutex_lock(&e->lock);
    if (e->stopping || (bounded && e->depth >= QUEUE_MAX)) {
        bool log = false;
        if (!e->stopping) {
            int64_t now = dtm_now_us();
            e->dropped++;
            if (now - e->last_drop_log > 60 * 1000000LL) {
                e->last_drop_log = now;
                log = true;
            }
        }
        uint64_t dropped = e->dropped;
        pthread_mutex_unlock(&e->lock);
        if (log)
            dtm_logf(DTM_LOG_WARN, "alert queue full: events dropped", "\"dropped\":%llu",
                     (unsigned long long)dropped);
        free(v);
        return DTM_EBUSY;
    }
    v->next = NULL;
    if (e->tail)
        e->tail->next = v;
    else
        e->head = v;
    e->tail = v;
    e->depth++;
    pthread_cond_signal(&e->cond);
    pthread_mutex_unlock(&e->lock);
    return DTM_OK;
}

static void copy_text(char *dst, size_t dstsz, const char *s)
{
    snprintf(dst, dstsz, "%s", s ? s : "");
}

int dtm_alert_raise(struct dtm_alerts *e, const char *rule, const char *key,
                    enum dtm_alert_severity severity, const char *title, const char *detail_json)
{
    struct ev *v;
    const char *detail = detail_json && *detail_json ? detail_json : "{}";
    if (!e)
        return DTM_OK;
    if (!rule || !*rule)
        return DTM_EINVAL;
    if (!(v = calloc(1, sizeof(*v))))
        return DTM_ENOMEM;
    v->kind = EV_CHANGE;
    v->c.op = DTM_ALERT_OP_RAISE;
    v->c.at = dtm_now_us();
    copy_text(v->c.in.rule, sizeof(v->c.in.rule), rule);
    copy_text(v->c.in.key, sizeof(v->c.in.key), key);
    copy_text(v->c.in.severity, sizeof(v->c.in.severity), dtm_alert_severity_name(severity));
    copy_text(v->c.in.title, sizeof(v->c.in.title), title && *title ? title : rule);
    if (strlen(detail) >= sizeof(v->c.in.detail)) {
        detail = "{\"truncated\":true}"; /* never a cut (invalid) JSON */
    } else {
        cJSON *j = cJSON_Parse(detail); /* it is embedded as is in the API and webhooks */
        if (!cJSON_IsObject(j))
            detail = "{\"invalid_detail\":true}";
        cJSON_Delete(j);
    }
    copy_text(v->c.in.detail, sizeof(v->c.in.detail), detail);
    return push(e, v, true);
}

int dtm_alert_clear(struct dtm_alerts *e, const char *rule, const char *key)
{
    struct ev *v;
    if (!e)
        return DTM_OK;
    if (!rule || !*rule)
        return DTM_EINVAL;
    if (!(v = calloc(1, sizeof(*v))))
        return DTM_ENOMEM;
    v->kind = EV_CHANGE;
    v->c.op = DTM_ALERT_OP_CLEAR;
    v->c.at = dtm_now_us();
    copy_text(v->c.in.rule, sizeof(v->c.in.rule), rule);
    copy_text(v->c.in.key, sizeof(v->c.in.key), key);
    return push(e, v, true);
}

static int person(struct dtm_alerts *e, enum dtm_alert_op op, int64_t id,
                  const struct dtm_alert_actor *by, dtm_alert_done_fn done, void *ctx)
{
    struct ev *v;
    if (!e)
        return DTM_EBUSY;
    if (!(v = calloc(1, sizeof(*v))))
        return DTM_ENOMEM;
    v->kind = EV_CHANGE;
    v->c.op = op;
    v->c.at = dtm_now_us();
    v->c.in.id = id;
    copy_text(v->c.actor_kind, sizeof(v->c.actor_kind), by && by->kind ? by->kind : "user");
    copy_text(v->c.actor, sizeof(v->c.actor), by && by->name ? by->name : "");
    copy_text(v->c.source_ip, sizeof(v->c.source_ip), by ? by->source_ip : NULL);
    v->done = done;
    v->ctx = ctx;
    return push(e, v, false); /* people's actions are few: never dropped */
}

int dtm_alert_ack(struct dtm_alerts *e, int64_t id, const struct dtm_alert_actor *by,
                  dtm_alert_done_fn done, void *ctx)
{
    return person(e, DTM_ALERT_OP_ACK, id, by, done, ctx);
}

int dtm_alert_resolve(struct dtm_alerts *e, int64_t id, const struct dtm_alert_actor *by,
                      dtm_alert_done_fn done, void *ctx)
{
    return person(e, DTM_ALERT_OP_RESOLVE, id, by, done, ctx);
}

int dtm_alerts_call(struct dtm_alerts *e, int (*fn)(void *ctx, struct dtm_store *st),
                    void (*done)(void *ctx, int rc), void *ctx)
{
    struct ev *v;
    if (!e)
        return DTM_EBUSY;
    if (!(v = calloc(1, sizeof(*v))))
        return DTM_ENOMEM;
    v->kind = EV_CALL;
    v->fn = fn;
    v->call_done = done;
    v->ctx = ctx;
    return push(e, v, false);
}

void dtm_alerts_poke(struct dtm_alerts *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->lock);
    e->poked = true;
    pthread_cond_signal(&e->cond);
    pthread_mutex_unlock(&e->lock);
}

uint64_t dtm_alerts_dropped(struct dtm_alerts *e)
{
    uint64_t n;
    if (!e)
        return 0;
    pthread_mutex_lock(&e->lock);
    n = e->dropped;
    pthread_mutex_unlock(&e->lock);
    return n;
}

/* Ends an event: its caller learns the outcome, a new alert goes to the channels. */
static void finish(struct dtm_alerts *e, struct ev *v, int rc)
{
    if (v->kind == EV_CALL) {
        if (v->call_done)
            v->call_done(v->ctx, rc);
    } else {
        int out = rc ? rc : v->c.rc;
        for (size_t i = 0; !rc && v->event && i < v->nchannels; i++)
            dtm_deliver_enqueue(e->deliver, &v->c.out, v->event, v->channels[i], 0);
        if (!rc && v->c.notify && !v->nchannels)
            dtm_logf(DTM_LOG_WARN, "alert routed to no channel",
                     "\"id\":%lld,\"rule\":\"%.64s\",\"severity\":\"%s\"", (long long)v->c.out.id,
                     v->c.out.rule, v->c.out.severity);
        if (v->done)
            v->done(v->ctx, out, out == DTM_OK || out == DTM_ECONFLICT ? &v->c.out : NULL);
        else if (rc)
            dtm_logf(DTM_LOG_ERROR, "alert event lost: the store failed",
                     "\"rule\":\"%.64s\",\"op\":%d", v->c.in.rule, (int)v->c.op);
    }
    free(v);
}

static struct dtm_store *store(struct dtm_alerts *e)
{
    char err[256];
    if (!e->st && dtm_store_open(*e->conf, &e->st, err, sizeof(err)) != DTM_OK) {
        dtm_logf(DTM_LOG_ERROR, "alerts: cannot open the store", "\"error\":\"%.200s\"", err);
        e->st = NULL;
    }
    return e->st;
}

/* A notification's channels, each with its delivery row (pending, no attempt yet) written with
 * the alert: a stop before the delivery leaves it to the next start. */
static int route(struct dtm_store *st, const struct dtm_conf *c, struct ev *v, const char *event)
{
    size_t idx[DTM_CONF_CHANNELS];
    struct dtm_alert_delivery d;
    int rc = DTM_OK;
    v->event = event;
    v->nchannels = dtm_alert_route(c, &v->c.out, idx, DTM_ARRAY_LEN(idx));
    for (size_t i = 0; i < v->nchannels && rc == DTM_OK; i++) {
        snprintf(v->channels[i], sizeof(v->channels[i]), "%s", c->channels[idx[i]].name);
        memset(&d, 0, sizeof(d));
        d.alert_id = v->c.out.id;
        snprintf(d.channel, sizeof(d.channel), "%s", v->channels[i]);
        snprintf(d.event, sizeof(d.event), "%s", event);
        snprintf(d.status, sizeof(d.status), "pending");
        d.updated_at = v->c.at;
        rc = st->ops->alert_delivery_put(st, &d);
    }
    return rc;
}

/* ---- deliveries left pending by an earlier run */

struct pending {
    struct dtm_alert_delivery *d;
    size_t n, cap;
};

static int keep_pending(void *ctx, const struct dtm_alert_delivery *d)
{
    struct pending *p = ctx;
    if (dtm_array_reserve(&p->d, p->n, &p->cap, sizeof(*p->d)))
        return DTM_ENOMEM;
    p->d[p->n++] = *d;
    return 0;
}

static void resume(struct dtm_alerts *e)
{
    struct dtm_store *st = store(e);
    struct pending p = {NULL, 0, 0};
    struct dtm_alert *a = malloc(sizeof(*a));
    int rc;
    if (!st || !a) {
        free(a);
        return;
    }
    if ((rc = st->ops->alert_deliveries_pending(st, keep_pending, &p)))
        dtm_logf(DTM_LOG_ERROR, "alerts: pending deliveries not read", "\"error\":\"%s\"",
                 dtm_rc_name(rc));
    for (size_t i = 0; i < p.n; i++) {
        bool fired = strcmp(p.d[i].event, "resolved") != 0;
        if (st->ops->alert_get(st, p.d[i].alert_id, a) != DTM_OK)
            continue;
        if (fired && strcmp(a->state, "firing")) {
            /* resolved (or acknowledged) since: the news was that it fired */
            snprintf(a->state, sizeof(a->state), "firing");
            a->resolved_at = a->acknowledged_at = 0;
            a->resolved_by[0] = a->acknowledged_by[0] = '\0';
        }
        dtm_deliver_enqueue(e->deliver, a, fired ? "fired" : "resolved", p.d[i].channel,
                            p.d[i].attempts);
    }
    if (p.n)
        dtm_logf(DTM_LOG_INFO, "alert deliveries resumed", "\"deliveries\":%zu", p.n);
    free(p.d);
    free(a);
}

/* Raises and clears are applied together in one transaction (they fail only with the store);
 * people's actions and calls each in their own (their outcome is their own). */
static void run_batch(struct dtm_alerts *e, struct ev *list)
{
    struct dtm_store *st = store(e);
    int64_t suppress_us = (*e->conf)->alert_suppress_minutes * 60 * 1000000LL;
    while (list) {
        struct ev *v = list, *end = list, *next;
        int rc = st ? DTM_OK : DTM_ESTORE;
        bool group = v->kind == EV_CHANGE && !v->done;
        if (group)
            while (end->next && end->next->kind == EV_CHANGE && !end->next->done)
                end = end->next;
        next = end->next;
        end->next = NULL;
        if (rc == DTM_OK)
            rc = st->ops->begin(st);
        for (struct ev *x = v; x && rc == DTM_OK; x = x->next) {
            if (x->kind == EV_CALL) {
                rc = x->fn(x->ctx, st);
            } else {
                x->c.at = x->c.at ? x->c.at : dtm_now_us();
                rc = dtm_alert_apply(st, &x->c, suppress_us, e->audit_key);
                if (rc == DTM_OK && x->c.notify)
                    rc = route(st, *e->conf, x, "fired");
                else if (rc == DTM_OK && x->c.notify_resolved && (*e->conf)->alert_notify_resolved)
                    rc = route(st, *e->conf, x, "resolved");
            }
        }
        if (st && rc == DTM_OK)
            rc = st->ops->commit(st);
        if (st && rc)
            st->ops->rollback(st);
        while (v) {
            struct ev *n = v->next;
            finish(e, v, rc);
            v = n;
        }
        list = next;
    }
}

static void check(struct dtm_alerts *e)
{
    struct dtm_store *st = store(e);
    int rc;
    if (!st)
        return;
    if ((rc = dtm_vuln_check(e, st, dtm_now_us())))
        dtm_logf(DTM_LOG_WARN, "alerts: the vulnerability check failed", "\"error\":\"%s\"",
                 dtm_rc_name(rc));
}

static void *run(void *arg)
{
    struct dtm_alerts *e = arg;
    int64_t next_check = dtm_mono_us() + 1000000; /* first check a second after the start */
    resume(e);
    pthread_mutex_lock(&e->lock);
    for (;;) {
        struct ev *list;
        bool due;
        while (!e->head && !e->stopping && !e->poked && dtm_mono_us() < next_check) {
            struct timespec until;
            int64_t wait = next_check - dtm_mono_us();
            clock_gettime(CLOCK_REALTIME, &until);
            wait = DTM_MIN(wait, 1000000);
            until.tv_sec += (time_t)(wait / 1000000);
            until.tv_nsec += (long)(wait % 1000000) * 1000;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&e->cond, &e->lock, &until);
        }
        list = e->head;
        e->head = e->tail = NULL;
        e->depth = 0;
        due = !e->stopping && (e->poked || dtm_mono_us() >= next_check);
        e->poked = false;
        if (!list && e->stopping)
            break;
        pthread_mutex_unlock(&e->lock);
        if (list)
            run_batch(e, list);
        if (due) {
            check(e);
            next_check = dtm_mono_us() + (*e->conf)->alert_check_interval * 1000000LL;
        }
        pthread_mutex_lock(&e->lock);
    }
    e->stopped = true;
    pthread_mutex_unlock(&e->lock);
    return NULL;
}

int dtm_alerts_start(const struct dtm_conf *const *conf, const uint8_t audit_key[32],
                     struct dtm_alerts **out, char *err, size_t errsz)
{
    struct dtm_alerts *e = calloc(1, sizeof(*e));
    int rc;
    if (!e) {
        snprintf(err, errsz, "out of memory");
        return DTM_ENOMEM;
    }
    e->conf = conf;
    memcpy(e->audit_key, audit_key, 32);
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->cond, NULL);
    if ((rc = dtm_deliver_start(conf, &e->deliver, err, errsz)))
        goto fail;
    if (pthread_create(&e->thread, NULL, run, e) != 0) {
        snprintf(err, errsz, "cannot start the alert thread");
        dtm_deliver_stop(e->deliver);
        rc = DTM_EIO;
        goto fail;
    }
    *out = e;
    return DTM_OK;
fail:
    pthread_mutex_destroy(&e->lock);
    pthread_cond_destroy(&e->cond);
    free(e);
    return rc;
}

void dtm_alerts_stop(struct dtm_alerts *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->lock);
    if (e->stopping) {
        pthread_mutex_unlock(&e->lock);
        return;
    }
    e->stopping = true;
    pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&e->lock);
    pthread_join(e->thread, NULL);
    dtm_deliver_stop(e->deliver);
    e->deliver = NULL;
    if (e->st)
        e->st->ops->close(e->st);
    e->st = NULL;
}

void dtm_alerts_free(struct dtm_alerts *e)
{
    if (!e)
        return;
    dtm_alerts_stop(e);
    pthread_mutex_destroy(&e->lock);
    pthread_cond_destroy(&e->cond);
    OPENSSL_cleanse(e->audit_key, sizeof(e->audit_key));
    free(e);
}
