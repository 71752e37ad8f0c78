/* ingest/writer.c — the one thread that writes records. It takes every queued job, writes them
 * all in one transaction (receipts, records with history, idempotency answers, last-seen
 * times, and one delta per touched row of the live rollups), commits — one fsync for many
 * requests (group commit) — and only then calls each job's done(), which resumes the waiting HTTP
 * request. */
#include "ingest/ingest.h"
#include "stats/stats.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TOUCH_SLOTS 4096

struct touch {
    char code[DTM_CODE_MAX];
    int64_t when;
};

struct dtm_writer {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct dtm_write_job *head, *tail;
    size_t depth;
    size_t queue_max;
    size_t commit_max;
    bool stopping;
    struct dtm_store *store;
    struct dtm_store *maint_store; /* for background upkeep (checkpoints) */
    pthread_t maint_thread;
    bool maint_running;
    struct touch touches[TOUCH_SLOTS];
    size_t ntouches;
    int64_t last_purge;
    bool relaxed;               /* the store connection commits without fsync */
    struct dtm_cube_acc *cubes; /* this group commit's rollup deltas */
    struct dtm_buf old;         /* the replaced version of an updated record */
};

static int keep_old(void *ctx, const struct dtm_record_version *v)
{
    struct dtm_buf *b = ctx;
    dtm_buf_reset(b);
    dtm_buf_add(b, v->content.p, v->content.n);
    return b->err;
}

/* A record's contribution to the cubes: in for a new record; for an update, the old version
 * out and the new one in; a duplicate changes nothing. */
static int roll_up(struct dtm_writer *w, const struct dtm_store_record *r, enum dtm_put_outcome o)
{
    const struct dtm_facts *f = r->facts;
    int rc;
    if (!f || o == DTM_PUT_DUPLICATE)
        return DTM_OK;
    if (o == DTM_PUT_UPDATED) {
        struct dtm_facts old;
        struct dtm_arena a;
        int64_t t;
        dtm_arena_init(&a, 4096);
        rc = dtm_facts_parse(f->ds, (struct dtm_str){w->old.p, w->old.n}, &a, &old, &t);
        if (rc == DTM_OK)
            rc = dtm_cube_acc_add(w->cubes, &old, t, -1);
        dtm_arena_free(&a);
        if (rc)
            return rc;
    }
    return dtm_cube_acc_add(w->cubes, f, r->event_time, +1);
}

void dtm_receipt_format(const struct dtm_receipt *r, char *out, size_t outsz)
{
    snprintf(out, outsz, "r%lld-%s", (long long)r->seq, r->id);
}

int dtm_receipt_parse(const char *id, int64_t *seq, char *tag, size_t tagsz)
{
    const char *dash;
    if (id[0] != 'r' || !(dash = strchr(id, '-')))
        return DTM_EINVAL;
    if (dtm_str_to_i64((struct dtm_str){id + 1, (size_t)(dash - id - 1)}, seq) || *seq <= 0)
        return DTM_EINVAL;
    if (strlen(dash + 1) >= tagsz)
        return DTM_EINVAL;
    snprintf(tag, tagsz, "%s", dash + 1);
    return DTM_OK;
}

size_t dtm_writer_depth(struct dtm_writer *w)
{
    size_t d;
    pthread_mutex_lock(&w->lock);
    d = w->depth;
    pthread_mutex_unlock(&w->lock);
    return d;
}

int dtm_writer_submit(struct dtm_writer *w, struct dtm_write_job *j)
{
    pthread_mutex_lock(&w->lock);
    if (w->stopping || w->depth >= w->queue_max) {
        pthread_mutex_unlock(&w->lock);
        return DTM_EBUSY;
    }
    j->next = NULL;
    if (w->tail)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    w->depth++;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    return DTM_OK;
}

void dtm_writer_touch(struct dtm_writer *w, const char *system_code, int64_t when)
{
    size_t i;
    pthread_mutex_lock(&w->lock);
    for (i = 0; i < w->ntouches; i++)
        if (strcmp(w->touches[i].code, system_code) == 0) {
            if (w->touches[i].when < when)
                w->touches[i].when = when;
            break;
        }
    if (i == w->ntouches && w->ntouches < TOUCH_SLOTS) {
        snprintf(w->touches[i].code, sizeof(w->touches[i].code), "%s", system_code);
        w->touches[i].when = when;
        if (w->ntouches++ == 0)
            pthread_cond_signal(&w->wake);
    }
    pthread_mutex_unlock(&w->lock);
}

/* Writes one job's records inside the open transaction. */
static int write_job(struct dtm_writer *w, struct dtm_write_job *j, int64_t now, int64_t *seq)
{
    struct dtm_store *st = w->store;
    int rc;
    if (j->idem_key.n) {
        struct dtm_idem prev;
        rc = st->ops->idem_get(st, j->system_code, j->idem_key, now - j->idem_ttl_us, &prev);
        if (rc == DTM_OK) {
            if (!dtm_ct_equal(prev.request_hash, j->idem_hash, 32)) {
                free(prev.body);
                j->rc = DTM_ECONFLICT;
                return DTM_OK;
            }
            j->replayed = true;
            j->status = prev.status;
            dtm_buf_reset(&j->answer);
            dtm_buf_add(&j->answer, prev.body, prev.body_len);
            free(prev.body);
            return DTM_OK;
        }
        if (rc != DTM_ENOTFOUND)
            return rc;
    }
    if (!j->answer_fn && !j->nrecs)
        return j->in_txn ? j->in_txn(j, st) : DTM_OK;
    if (j->preset) {
        struct dtm_idem v = {
            .status = j->status, .body = j->answer.p, .body_len = j->answer.n, .created_at = now};
        memcpy(v.request_hash, j->idem_hash, 32);
        return st->ops->idem_put(st, j->system_code, j->idem_key, &v);
    }
    memset(&j->receipt, 0, sizeof(j->receipt));
    if ((rc = dtm_random_id("", j->receipt.id, sizeof(j->receipt.id))))
        return rc;
    snprintf(j->receipt.dataset, sizeof(j->receipt.dataset), "%s", j->dataset);
    snprintf(j->receipt.system_code, sizeof(j->receipt.system_code), "%s", j->system_code);
    snprintf(j->receipt.request_id, sizeof(j->receipt.request_id), "%s",
             j->request_id ? j->request_id : "");
    j->receipt.received_at = now;
    j->receipt.rejected = (int64_t)j->rejected;
    j->receipt.seq = (*seq)++;
    if (j->nrecs && j->recs[0].facts &&
        (rc = dtm_cube_acc_prepare(w->cubes, st, ((const struct dtm_facts *)j->recs[0].facts)->ds)))
        return rc;
    for (size_t i = 0; i < j->nrecs; i++) {
        enum dtm_put_outcome o;
        if ((rc = st->ops->record_put(st, j->dataset, &j->recs[i], j->receipt.seq, now, &o,
                                      j->recs[i].facts ? keep_old : NULL, &w->old)))
            return rc;
        if ((rc = roll_up(w, &j->recs[i], o)))
            return rc;
        if (dtm_cube_acc_full(w->cubes) && (rc = dtm_cube_acc_flush(w->cubes, st)))
            return rc;
        if (o == DTM_PUT_DUPLICATE) {
            j->receipt.duplicates++;
        } else {
            j->receipt.accepted++;
            if (o == DTM_PUT_UPDATED)
                j->receipt.updated++;
        }
    }
    if ((rc = st->ops->receipt_put(st, &j->receipt)))
        return rc;
    if (j->in_txn && (rc = j->in_txn(j, st)))
        return rc;
    j->status = 200;
    dtm_buf_reset(&j->answer);
    if (j->answer_fn && (rc = j->answer_fn(j, &j->answer)))
        return rc;
    if (j->idem_key.n) {
        struct dtm_idem v = {
            .status = j->status, .body = j->answer.p, .body_len = j->answer.n, .created_at = now};
        memcpy(v.request_hash, j->idem_hash, 32);
        if ((rc = st->ops->idem_put(st, j->system_code, j->idem_key, &v)))
            return rc;
    }
    return DTM_OK;
}

static int flush_touches(struct dtm_writer *w, struct touch *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = w->store->ops->system_touch(w->store, t[i].code, t[i].when);
        if (rc)
            return rc;
    }
    return DTM_OK;
}

static void *run(void *arg)
{
    struct dtm_writer *w = arg;
    static struct touch touches[TOUCH_SLOTS]; /* only this thread uses it */
    for (;;) {
        struct dtm_write_job *batch, *j, *last;
        int64_t seq = 0;
        size_t ntouch, records = 0, jobs = 0;
        int64_t now;
        int rc = DTM_OK;

        pthread_mutex_lock(&w->lock);
        while (!w->head && !w->stopping) {
            if (w->ntouches) {
                /* only last-seen times pending: give jobs half a second to join them */
                struct timespec until;
                clock_gettime(CLOCK_REALTIME, &until);
                until.tv_nsec += 500 * 1000 * 1000;
                if (until.tv_nsec >= 1000000000) {
                    until.tv_sec++;
                    until.tv_nsec -= 1000000000;
                }
                if (pthread_cond_timedwait(&w->wake, &w->lock, &until) != 0)
                    break;
            } else {
                pthread_cond_wait(&w->wake, &w->lock);
            }
        }
        if (!w->head && w->stopping && w->ntouches == 0) {
            pthread_mutex_unlock(&w->lock);
            break;
        }
        /* take jobs up to commit_max records (at least one job) */
        batch = w->head;
        last = NULL;
        for (j = w->head; j; j = j->next) {
            if (last && records + j->nrecs > w->commit_max)
                break;
            records += j->nrecs;
            jobs++;
            last = j;
        }
        if (last) {
            w->head = last->next;
            if (!w->head)
                w->tail = NULL;
            last->next = NULL;
            w->depth -= jobs;
        } else {
            batch = NULL;
        }
        ntouch = w->ntouches;
        memcpy(touches, w->touches, ntouch * sizeof(touches[0]));
        w->ntouches = 0;
        pthread_mutex_unlock(&w->lock);

        now = dtm_now_us();
        if (w->store->ops->set_durable) {
            bool relaxed = batch != NULL;
            for (j = batch; j && relaxed; j = j->next)
                relaxed = j->relaxed;
            if (relaxed != w->relaxed && w->store->ops->set_durable(w->store, !relaxed) == DTM_OK)
                w->relaxed = relaxed;
        }
        dtm_cube_acc_set_now(w->cubes, now);
        rc = w->store->ops->begin(w->store);
        if (rc == DTM_OK && batch)
            rc = w->store->ops->receipt_next_seq(w->store, &seq);
        for (j = batch; j && rc == DTM_OK; j = j->next) {
            j->rc = DTM_OK;
            rc = write_job(w, j, now, &seq);
        }
        if (rc == DTM_OK)
            rc = dtm_cube_acc_flush(w->cubes, w->store);
        if (rc == DTM_OK)
            rc = flush_touches(w, touches, ntouch);
        if (rc == DTM_OK && now - w->last_purge > 600 * 1000000LL) {
            rc = w->store->ops->idem_purge(w->store, now - 30LL * 86400 * 1000000);
            /* hour rows that left the recent days are never read again */
            if (rc == DTM_OK && w->store->ops->cube_purge)
                rc = w->store->ops->cube_purge(
                    w->store, DTM_GRAIN_HOUR,
                    dtm_cube_bucket(DTM_GRAIN_HOUR, dtm_cube_hour_floor(now)) - 24);
            w->last_purge = now;
        }
        if (rc == DTM_OK)
            rc = w->store->ops->commit(w->store);
        if (rc) {
            w->store->ops->rollback(w->store);
            dtm_cube_acc_clear(w->cubes);
            dtm_logf(DTM_LOG_ERROR, "group commit failed; requests answered 503",
                     "\"jobs\":%zu,\"records\":%zu", jobs, records);
        }
        for (j = batch; j;) {
            struct dtm_write_job *next = j->next;
            if (rc)
                j->rc = DTM_ESTORE;
            j->done(j); /* may free j */
            j = next;
        }
        /* Touches lost to a failed commit are not retried: the next traffic sets them again. A
         * second of rest after a failure keeps a broken disk from spinning the CPU. */
        if (rc) {
            struct timespec ts = {1, 0};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

/* Store upkeep beside the writer (SQLite checkpoints), every 200 ms until the writer stops. */
static void *maintain(void *arg)
{
    struct dtm_writer *w = arg;
    for (unsigned tick = 1;; tick++) {
        struct timespec ts = {0, 100 * 1000 * 1000}; /* look at `stopping` ten times a second */
        bool stop;
        pthread_mutex_lock(&w->lock);
        stop = w->stopping;
        pthread_mutex_unlock(&w->lock);
        if (stop)
            break;
        if (tick % 2 == 0)
            w->maint_store->ops->maintain(w->maint_store);
        nanosleep(&ts, NULL);
    }
    return NULL;
}

int dtm_writer_start(const struct dtm_conf *c, struct dtm_writer **out, char *err, size_t errsz)
{
    struct dtm_writer *w = calloc(1, sizeof(*w));
    int rc;
    if (!w) {
        snprintf(err, errsz, "out of memory");
        return DTM_ENOMEM;
    }
    w->queue_max = (size_t)c->queue_max;
    dtm_buf_init(&w->old, 64u << 20);
    if (!(w->cubes = dtm_cube_acc_new())) {
        free(w);
        snprintf(err, errsz, "out of memory");
        return DTM_ENOMEM;
    }
    w->commit_max = (size_t)c->commit_max_records;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    if ((rc = dtm_store_open(c, &w->store, err, errsz))) {
        dtm_cube_acc_free(w->cubes);
        free(w);
        return rc;
    }
    if (w->store->ops->tune_writer && (rc = w->store->ops->tune_writer(w->store))) {
        snprintf(err, errsz, "cannot configure the writer's store connection");
        w->store->ops->close(w->store);
        dtm_cube_acc_free(w->cubes);
        free(w);
        return rc;
    }
    if (w->store->ops->maintain && dtm_store_open(c, &w->maint_store, err, errsz) == DTM_OK) {
        if (pthread_create(&w->maint_thread, NULL, maintain, w) == 0) {
            w->maint_running = true;
        } else {
            w->maint_store->ops->close(w->maint_store);
            w->maint_store = NULL;
        }
    }
    if (pthread_create(&w->thread, NULL, run, w) != 0) {
        snprintf(err, errsz, "cannot start the writer thread");
        w->store->ops->close(w->store);
        dtm_cube_acc_free(w->cubes);
        free(w);
        return DTM_EIO;
    }
    *out = w;
    return DTM_OK;
}

void dtm_writer_stop(struct dtm_writer *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    if (w->stopping) {
        pthread_mutex_unlock(&w->lock);
        return;
    }
    w->stopping = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    if (w->maint_running) {
        pthread_join(w->maint_thread, NULL);
        w->maint_store->ops->maintain(w->maint_store); /* leave a short WAL behind */
        w->maint_store->ops->close(w->maint_store);
        w->maint_running = false;
    }
    w->store->ops->close(w->store);
    w->store = NULL;
}

void dtm_writer_free(struct dtm_writer *w)
{
    if (!w)
        return;
    dtm_writer_stop(w);
    dtm_cube_acc_free(w->cubes);
    dtm_buf_free(&w->old);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake);
    free(w);
}
