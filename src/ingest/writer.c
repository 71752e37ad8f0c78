/* ingest/writer.c — the one thread that writes records, and the one that writes the live rollups
 * beside it.
 *
 * The record writer takes every queued job, writes them all in one transaction (receipts, records
 * with history, idempotency answers, last-seen times), commits — one fsync for many requests
 * (group commit) — while adding each record's contribution to an in-memory accumulator. The
 * accumulator, drained into a compact run of deltas, goes with the committed jobs to the rollup
 * thread, which applies it to the rollups' own file (store: `cubes`) — on the other core, while
 * the record writer commits the next group — and only then calls each job's done(), which
 * resumes the waiting HTTP request: a statistic counts a record the moment its 2xx is sent.
 * When the rollup thread falls behind (a large batch), several group commits' runs are applied
 * in one transaction with the deltas of each cube row merged first: it does less work per
 * record the more there is. Its queue is bounded; the record writer waits when it is full.
 *
 * When the store can take a group's records in one call (record_put_many: PostgreSQL, where
 * every statement is a round trip), the jobs are written in segments: every job's head
 * (Idempotency-Key, receipt number), then all their records at once, then every job's tail
 * (receipt, answer). A segment ends before a job that must see an earlier one's effect (the same
 * Idempotency-Key) or that is not a plain ingest (no records, a preset answer): those run one by
 * one as before, so the outcome is the same as record by record. */
#include "ingest/ingest.h"
#include "metrics/metrics.h"
#include "report/quality.h"
#include "stats/stats.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TOUCH_SLOTS 4096
/* Bytes of delta runs waiting for the rollup thread before the record writer waits (~650 000
 * cube rows). Realtime groups never come near it; a batch's 50 000-row chunks do (20–30 MB of
 * deltas each): with room for two, the rollup thread takes several chunks at once and merges
 * their deltas of the same rows into one upsert, so the batch no longer goes at the pace of one
 * upsert per chunk and row — on PostgreSQL 1.6–1.8 × the rows/s of an 8 MB queue, on SQLite
 * 1.25 ×, for about 70 MB more peak memory during a batch (bench/RESULTS.md, 2026-11-26). */
#define CUBE_QUEUE_MAX (64u << 20)

/* One group commit's deltas and its jobs, waiting for the rollup thread. The deltas are a run
 * per drain of the accumulator (each allocated to its size: no doubling of one large buffer). */
struct cube_item {
    struct cube_item *next;
    struct dtm_buf *runs;
    size_t nruns, cap, bytes;
    struct dtm_write_job *jobs;
    int64_t last_seq; /* the commit's last receipt, 0 if none */
};

/* A group's records for one record_put_many call, with the job of each. */
struct many {
    struct dtm_writer *w;
    struct dtm_put *puts;
    struct dtm_write_job **job; /* of each put */
    size_t n, cap, jobcap;
};

struct touch {
    char code[DTM_CODE_MAX];
    int64_t when;
};

struct dtm_writer {
    pthread_t thread;
    bool running;
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
    struct cube_item *item;     /* … drained here when the accumulator is full */
    struct dtm_buf old;         /* the replaced version of an updated record */
    struct many many;           /* a group's records for record_put_many */
    struct dtm_qcount *qc;      /* this group commit's data-quality counts (report/qcount.c) */
    /* the rollup thread; its queue is under `lock` */
    struct dtm_store *cube_store;
    pthread_t cube_thread;
    bool cube_running, cube_stopping;
    pthread_cond_t cube_wake, cube_room;
    struct cube_item *cq_head, *cq_tail;
    size_t cq_bytes;
    int64_t cube_last_purge;
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

static void item_reset(struct cube_item *it)
{
    for (size_t i = 0; i < it->nruns; i++)
        dtm_buf_free(&it->runs[i]);
    it->nruns = it->bytes = 0;
}

static void item_free(struct cube_item *it)
{
    if (!it)
        return;
    item_reset(it);
    free(it->runs);
    free(it);
}

/* Moves the accumulator's rows into a new run of the item. */
static int item_drain(struct cube_item *it, struct dtm_cube_acc *acc)
{
    struct dtm_buf *b;
    int rc;
    if ((rc = dtm_array_reserve(&it->runs, it->nruns, &it->cap, sizeof(*it->runs))))
        return rc;
    b = &it->runs[it->nruns];
    dtm_buf_init(b, (size_t)1 << 30);
    if ((rc = dtm_cube_acc_drain(acc, b)) || b->n == 0) {
        dtm_buf_free(b);
        return rc;
    }
    it->nruns++;
    it->bytes += b->n;
    return DTM_OK;
}

/* The first part of a job inside the open transaction: its Idempotency-Key (a replay or a
 * conflict ends the job here), a job without records (only in_txn), a preset answer, or the
 * set-up of its receipt. *go: the job's records are to be written (then job_tail). */
static int job_head(struct dtm_writer *w, struct dtm_write_job *j, int64_t now, int64_t *seq,
                    bool *go)
{
    struct dtm_store *st = w->store;
    int rc;
    *go = false;
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
    if (!j->preset && j->rejected &&
        (rc = dtm_qcount_rejected(w->qc, j->dataset, j->system_code, j->rejected, j->errs,
                                  j->nerrs)))
        return rc;
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
    *go = true;
    return DTM_OK;
}

/* A record's outcome: its contribution to the rollups and the receipt's counts. */
static int job_count(struct dtm_writer *w, struct dtm_write_job *j,
                     const struct dtm_store_record *r, enum dtm_put_outcome o)
{
    int rc;
    if ((rc = roll_up(w, r, o)))
        return rc;
    if (dtm_cube_acc_full(w->cubes) && (rc = item_drain(w->item, w->cubes)))
        return rc;
    if ((rc = dtm_qcount_record(w->qc, j->dataset, r->system_code, r->event_time, o,
                                j->receipt.received_at)))
        return rc;
    if (o == DTM_PUT_DUPLICATE) {
        j->receipt.duplicates++;
    } else {
        j->receipt.accepted++;
        if (o == DTM_PUT_UPDATED)
            j->receipt.updated++;
    }
    return DTM_OK;
}

/* The last part of a job whose records are written: its receipt, in_txn, its answer and the
 * answer kept for its Idempotency-Key. */
static int job_tail(struct dtm_writer *w, struct dtm_write_job *j, int64_t now)
{
    struct dtm_store *st = w->store;
    int rc;
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

/* Writes one job's records inside the open transaction, record by record. */
static int write_job(struct dtm_writer *w, struct dtm_write_job *j, int64_t now, int64_t *seq)
{
    struct dtm_store *st = w->store;
    bool go;
    int rc;
    if ((rc = job_head(w, j, now, seq, &go)) || !go)
        return rc;
    for (size_t i = 0; i < j->nrecs; i++) {
        enum dtm_put_outcome o;
        if ((rc = st->ops->record_put(st, j->dataset, &j->recs[i], j->receipt.seq, now, &o,
                                      j->recs[i].facts ? keep_old : NULL, &w->old)))
            return rc;
        if ((rc = job_count(w, j, &j->recs[i], o)))
            return rc;
    }
    return job_tail(w, j, now);
}

/* ---- a group's records in one call (store ops record_put_many) */

/* Whether a job may share a record_put_many call with the jobs before it in the segment: it has
 * records and is not a preset answer, and no earlier job of the segment has the same
 * Idempotency-Key (its idem_get must see that job's answer, as it would one by one). */
static bool joinable(struct dtm_write_job *seg, struct dtm_write_job *j)
{
    if (j->preset || !j->nrecs)
        return false;
    if (!j->idem_key.n)
        return true;
    for (struct dtm_write_job *k = seg; k && k != j; k = k->next)
        if (k->idem_key.n == j->idem_key.n && strcmp(k->system_code, j->system_code) == 0 &&
            memcmp(k->idem_key.p, j->idem_key.p, j->idem_key.n) == 0)
            return false;
    return true;
}

static int many_cb(void *ctx, size_t i, enum dtm_put_outcome o,
                   const struct dtm_record_version *old)
{
    struct many *m = ctx;
    if (o == DTM_PUT_UPDATED && old && m->puts[i].r->facts) {
        int rc = keep_old(&m->w->old, old);
        if (rc)
            return rc;
    }
    return job_count(m->w, m->job[i], m->puts[i].r, o);
}

/* Writes the jobs from *jp on that can share one record_put_many call (at least one job);
 * *jp is left at the first job not written. */
static int write_segment(struct dtm_writer *w, struct many *m, struct dtm_write_job **jp,
                         int64_t now, int64_t *seq)
{
    struct dtm_write_job *seg = *jp, *j, *end;
    struct dtm_store *st = w->store;
    const char *ds[16];
    size_t nds = 0;
    int rc = DTM_OK;
    if (!joinable(seg, seg)) {
        seg->rc = DTM_OK;
        *jp = seg->next;
        return write_job(w, seg, now, seq);
    }
    m->n = 0;
    for (j = seg; j && joinable(seg, j); j = j->next) {
        bool go;
        /* at most 16 datasets a segment: the rollup accumulator keeps the cubes of 32 */
        size_t k = 0;
        for (; k < nds && strcmp(ds[k], j->dataset) != 0; k++)
            ;
        if (k == nds) {
            if (nds == DTM_ARRAY_LEN(ds))
                break;
            ds[nds++] = j->dataset;
        }
        j->rc = DTM_OK;
        if ((rc = job_head(w, j, now, seq, &go)))
            return rc;
        for (size_t i = 0; go && i < j->nrecs; i++) {
            if ((rc = dtm_array_reserve(&m->puts, m->n, &m->cap, sizeof(*m->puts))))
                return rc;
            if (m->jobcap < m->cap) {
                struct dtm_write_job **nj = realloc(m->job, m->cap * sizeof(*m->job));
                if (!nj)
                    return DTM_ENOMEM;
                m->job = nj;
                m->jobcap = m->cap;
            }
            m->puts[m->n] = (struct dtm_put){j->dataset, &j->recs[i], j->receipt.seq};
            m->job[m->n++] = j;
        }
    }
    end = j;
    m->w = w;
    if (m->n && (rc = st->ops->record_put_many(st, m->puts, m->n, now, many_cb, m)))
        return rc;
    for (j = seg; j != end && rc == DTM_OK; j = j->next)
        if (j->rc == DTM_OK && !j->replayed)
            rc = job_tail(w, j, now);
    *jp = end;
    return rc;
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

static void jobs_done(struct dtm_write_job *batch, int rc)
{
    for (struct dtm_write_job *j = batch; j;) {
        struct dtm_write_job *next = j->next;
        if (rc)
            j->rc = DTM_ESTORE;
        j->done(j); /* may free j */
        j = next;
    }
}

/* After lost deltas: marks every cube incomplete; true while that fails too (to be retried). */
static bool invalidate(struct dtm_store *st)
{
    if (st->ops->cube_invalidate && st->ops->cube_invalidate(st) != DTM_OK)
        return true;
    dtm_log(DTM_LOG_WARN,
            "rollups marked incomplete: statistics scan the records until the next start "
            "rebuilds them",
            NULL);
    return false;
}

/* The rollup thread: applies every waiting group commit's deltas in one transaction on its own
 * connection, then answers their jobs. */
static void *cube_run(void *arg)
{
    struct dtm_writer *w = arg;
    struct dtm_store *st = w->cube_store;
    struct dtm_cube_scratch sc;
    const struct dtm_buf **runs = NULL;
    size_t cap = 0;
    /* a group's deltas were lost and the cubes not yet marked incomplete (the store was away):
     * retried every second, and before any later group is applied — applied_seq moving past
     * the lost group would hide it */
    bool lost = false;
    dtm_cube_scratch_init(&sc);
    for (;;) {
        struct cube_item *items, *it;
        size_t n = 0, bytes;
        int64_t last = 0, now;
        int rc;
        pthread_mutex_lock(&w->lock);
        while (!w->cq_head && !w->cube_stopping) {
            struct timespec until;
            if (!lost) {
                pthread_cond_wait(&w->cube_wake, &w->lock);
                continue;
            }
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec++;
            if (pthread_cond_timedwait(&w->cube_wake, &w->lock, &until) != 0)
                break;
        }
        if (lost) {
            pthread_mutex_unlock(&w->lock);
            lost = invalidate(st);
            pthread_mutex_lock(&w->lock);
        }
        if (!w->cq_head) {
            if (!w->cube_stopping) {
                pthread_mutex_unlock(&w->lock);
                continue;
            }
            pthread_mutex_unlock(&w->lock);
            break;
        }
        items = w->cq_head;
        w->cq_head = w->cq_tail = NULL;
        bytes = w->cq_bytes;
        pthread_cond_broadcast(&w->cube_room); /* the record writer may write the next group */
        pthread_mutex_unlock(&w->lock);

        rc = lost ? DTM_ESTORE : DTM_OK; /* nothing applied before the cubes are marked */
        for (it = items; it && rc == DTM_OK; it = it->next) {
            for (size_t r = 0; r < it->nruns && rc == DTM_OK; r++)
                if ((rc = dtm_array_reserve(&runs, n, &cap, sizeof(*runs))) == DTM_OK)
                    runs[n++] = &it->runs[r];
            if (it->last_seq > last)
                last = it->last_seq;
        }
        now = dtm_now_us();
        if (rc == DTM_OK)
            rc = st->ops->cube_begin ? st->ops->cube_begin(st) : st->ops->begin(st);
        if (rc == DTM_OK)
            rc = dtm_cube_runs_apply(st, runs, n, &sc);
        if (rc == DTM_OK && last > 0 && st->ops->cube_applied)
            rc = st->ops->cube_applied(st, last);
        if (rc == DTM_OK && now - w->cube_last_purge > 600 * 1000000LL) {
            /* hour rows that left the recent days are never read again */
            if (st->ops->cube_purge)
                rc = st->ops->cube_purge(st, DTM_GRAIN_HOUR,
                                         dtm_cube_bucket(DTM_GRAIN_HOUR, dtm_cube_hour_floor(now)) -
                                             24);
            w->cube_last_purge = now;
        }
        if (rc == DTM_OK)
            rc = st->ops->commit(st);
        if (rc) {
            /* the records are committed: their jobs succeed; the cubes that now miss them are
             * marked incomplete, so the planner scans until `dtm serve` rebuilds them */
            st->ops->rollback(st);
            if (!lost)
                dtm_logf(DTM_LOG_ERROR, "rollup deltas not applied", "\"runs\":%zu", n);
            lost = invalidate(st);
        }
        for (it = items; it;) {
            struct cube_item *next = it->next;
            jobs_done(it->jobs, DTM_OK);
            item_free(it);
            it = next;
        }
        pthread_mutex_lock(&w->lock);
        w->cq_bytes -= bytes;
        pthread_cond_broadcast(&w->cube_room);
        pthread_mutex_unlock(&w->lock);
    }
    free(runs);
    dtm_cube_scratch_free(&sc);
    return NULL;
}

/* Hands a committed group's deltas and jobs to the rollup thread. */
static void cube_enqueue(struct dtm_writer *w, struct cube_item *it)
{
    pthread_mutex_lock(&w->lock);
    if (w->cq_tail)
        w->cq_tail->next = it;
    else
        w->cq_head = it;
    w->cq_tail = it;
    w->cq_bytes += it->bytes;
    pthread_cond_signal(&w->cube_wake);
    pthread_mutex_unlock(&w->lock);
}

static void *run(void *arg)
{
    struct dtm_writer *w = arg;
    static struct touch touches[TOUCH_SLOTS]; /* only this thread uses it */
    for (;;) {
        struct dtm_write_job *batch, *j, *last;
        int64_t seq = 0, first_seq = 0;
        size_t ntouch, records = 0, jobs = 0;
        int64_t now;
        int rc = DTM_OK;

        pthread_mutex_lock(&w->lock);
        /* the rollup thread is behind by more than its queue holds and has not even taken the
         * waiting runs: wait (jobs gather meanwhile and make the next group commit larger).
         * While it applies what it took, the next group is written: one group in each thread,
         * whatever the size of a group's runs. */
        while (w->cq_head && w->cq_bytes > CUBE_QUEUE_MAX)
            pthread_cond_wait(&w->cube_room, &w->lock);
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
        if (batch && !w->item && !(w->item = calloc(1, sizeof(*w->item))))
            rc = DTM_ENOMEM;
        if (rc == DTM_OK)
            rc = w->store->ops->begin(w->store);
        if (rc == DTM_OK && batch)
            rc = w->store->ops->receipt_next_seq(w->store, &seq);
        first_seq = seq;
        if (w->store->ops->record_put_many) {
            for (j = batch; j && rc == DTM_OK;)
                rc = write_segment(w, &w->many, &j, now, &seq);
        } else {
            for (j = batch; j && rc == DTM_OK; j = j->next) {
                j->rc = DTM_OK;
                rc = write_job(w, j, now, &seq);
            }
        }
        if (rc == DTM_OK && batch)
            rc = item_drain(w->item, w->cubes);
        if (rc == DTM_OK) /* data-quality counters, committed with the records */
            rc = dtm_qcount_flush(w->qc, w->store, now);
        dtm_qcount_clear(w->qc);
        if (rc == DTM_OK)
            rc = flush_touches(w, touches, ntouch);
        if (rc == DTM_OK && now - w->last_purge > 600 * 1000000LL) {
            rc = w->store->ops->idem_purge(w->store, now - 30LL * 86400 * 1000000);
            w->last_purge = now;
        }
        if (rc == DTM_OK)
            rc = w->store->ops->commit(w->store);
        if (records || rc) /* groups of records (not only a system's last-seen or a gate job) */
            dtm_metrics_commit(records, dtm_now_us() - now, rc == DTM_OK);
        for (j = batch; j && rc == DTM_OK; j = j->next)
            if (j->nrecs || j->rejected)
                dtm_metrics_records(j->dataset, j->system_code, j->receipt.accepted,
                                    j->receipt.duplicates, j->receipt.updated,
                                    (int64_t)j->rejected);
        if (rc) {
            w->store->ops->rollback(w->store);
            dtm_cube_acc_clear(w->cubes);
            if (w->item)
                item_reset(w->item);
            dtm_logf(DTM_LOG_ERROR, "group commit failed; requests answered 503",
                     "\"jobs\":%zu,\"records\":%zu", jobs, records);
            jobs_done(batch, rc);
        } else if (batch) {
            /* answered by the rollup thread once the deltas are in (a 2xx then means the
             * statistics count it too) — except a batch's chunks that are not its last, which
             * nobody reads before the batch is done: answered now, so that the batch runner
             * sends the next chunk while the rollups of this one are applied. The last chunk
             * is answered after its rollups, and so after every earlier chunk's (in order). */
            struct dtm_write_job **keep = &batch;
            while (*keep) {
                j = *keep;
                if (j->relaxed) {
                    *keep = j->next;
                    j->done(j); /* may free j */
                } else {
                    keep = &j->next;
                }
            }
            w->item->jobs = batch;
            w->item->last_seq = seq > first_seq ? seq - 1 : 0;
            cube_enqueue(w, w->item);
            w->item = NULL;
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
    if (!(w->cubes = dtm_cube_acc_new()) || !(w->qc = dtm_qcount_new())) {
        dtm_cube_acc_free(w->cubes);
        free(w);
        snprintf(err, errsz, "out of memory");
        return DTM_ENOMEM;
    }
    w->commit_max = (size_t)c->commit_max_records;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    pthread_cond_init(&w->cube_wake, NULL);
    pthread_cond_init(&w->cube_room, NULL);
    w->cube_last_purge = dtm_now_us();
    if ((rc = dtm_store_open(c, &w->cube_store, err, errsz))) {
        dtm_cube_acc_free(w->cubes);
        dtm_qcount_free(w->qc);
        free(w);
        return rc;
    }
    if (pthread_create(&w->cube_thread, NULL, cube_run, w) != 0) {
        snprintf(err, errsz, "cannot start the rollup thread");
        w->cube_store->ops->close(w->cube_store);
        dtm_cube_acc_free(w->cubes);
        dtm_qcount_free(w->qc);
        free(w);
        return DTM_EIO;
    }
    w->cube_running = true;
    if ((rc = dtm_store_open(c, &w->store, err, errsz))) {
        dtm_writer_free(w);
        return rc;
    }
    if (w->store->ops->tune_writer && (rc = w->store->ops->tune_writer(w->store))) {
        snprintf(err, errsz, "cannot configure the writer's store connection");
        dtm_writer_free(w);
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
        dtm_writer_free(w);
        return DTM_EIO;
    }
    w->running = true;
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
    if (w->running)
        pthread_join(w->thread, NULL);
    w->running = false;
    if (w->cube_running) {
        /* after the record writer: its last commits' deltas are applied and answered */
        pthread_mutex_lock(&w->lock);
        w->cube_stopping = true;
        pthread_cond_signal(&w->cube_wake);
        pthread_mutex_unlock(&w->lock);
        pthread_join(w->cube_thread, NULL);
        w->cube_running = false;
    }
    if (w->cube_store)
        w->cube_store->ops->close(w->cube_store);
    w->cube_store = NULL;
    if (w->maint_running) {
        pthread_join(w->maint_thread, NULL);
        w->maint_store->ops->maintain(w->maint_store); /* leave a short WAL behind */
        w->maint_store->ops->close(w->maint_store);
        w->maint_running = false;
    }
    if (w->store)
        w->store->ops->close(w->store);
    w->store = NULL;
}

void dtm_writer_free(struct dtm_writer *w)
{
    if (!w)
        return;
    dtm_writer_stop(w);
    dtm_cube_acc_free(w->cubes);
    dtm_qcount_free(w->qc);
    item_free(w->item);
    dtm_buf_free(&w->old);
    free(w->many.puts);
    free(w->many.job);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake);
    pthread_cond_destroy(&w->cube_wake);
    pthread_cond_destroy(&w->cube_room);
    free(w);
}
