/* batch/queue.c — the server's batches, one at a time on one thread: the batch that was running
 * when the server stopped first (it resumes after its last commit), then queued ones by priority
 * (urgent, high, normal; T3.2) and age. One at a time leaves the second core to the writer:
 * run.c already overlaps decoding with storing. */
#include "batch/batch.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct dtm_batches {
    const struct dtm_conf *const *conf;
    struct dtm_dict *dict;
    const struct dtm_keyring *keys;
    struct dtm_writer *writer;
    struct dtm_store *store; /* this thread's read connection */
    pthread_t thread;
    bool running_thread;
    pthread_mutex_t lock;
    pthread_cond_t wake, idle;
    bool woken;
    atomic_bool stop;
    atomic_bool cancel;       /* for the batch being run */
    char current[DTM_ID_MAX]; /* id of the batch being run, "" when none */
};

/* The first pending batch no other node runs (several nodes share a PostgreSQL store: each
 * batch is claimed by one, store->batch_claim). */
struct pick {
    struct dtm_store *store;
    struct dtm_batch *b;
};

static int first_pending(void *ctx, const struct dtm_batch *b)
{
    struct pick *p = ctx;
    if (p->store->ops->batch_claim(p->store, b->id) != DTM_OK)
        return 0; /* another node's: the next one */
    /* read again once claimed: the node that held it may have finished it or moved it on
     * since the list was read */
    if (p->store->ops->batch_get(p->store, b->id, p->b) != DTM_OK ||
        (strcmp(p->b->status, "queued") != 0 && strcmp(p->b->status, "running") != 0)) {
        p->store->ops->batch_release(p->store, b->id);
        memset(p->b, 0, sizeof(*p->b));
        return 0;
    }
    return 1; /* stop after the first */
}

static void fail_batch(struct dtm_batches *q, struct dtm_batch *b, const char *why)
{
    snprintf(b->status, sizeof(b->status), "failed");
    snprintf(b->error, sizeof(b->error), "%s", why);
    b->finished_at = dtm_now_us();
    if (dtm_batch_save(q->writer, b, false) == DTM_OK)
        dtm_logf(DTM_LOG_WARN, "batch failed", "\"batch\":\"%s\",\"reason\":\"%s\"", b->id, why);
}

static void log_end(const struct dtm_batch *b, int64_t t0)
{
    double s = (double)(dtm_mono_us() - t0) / 1e6;
    dtm_logf(DTM_LOG_INFO, "batch ended",
             "\"batch\":\"%s\",\"status\":\"%s\",\"rows\":%lld,\"accepted\":%lld,"
             "\"duplicates\":%lld,\"rejected\":%lld,\"seconds\":%.3f",
             b->id, b->status, (long long)b->total, (long long)b->accepted,
             (long long)b->duplicates, (long long)b->rejected, s);
}

/* Runs one batch; returns false when the queue should pause (writer stopping or failing). */
static bool run_one(struct dtm_batches *q, struct dtm_batch *b)
{
    const struct dtm_conf *c = *q->conf;
    const struct dtm_dataset *ds = dtm_dict_get(q->dict, dtm_str_c(b->dataset));
    struct dtm_system caller;
    struct dtm_mapped m;
    char path[DTM_PATH_MAX];
    int64_t t0 = dtm_mono_us();
    int rc;

    if (!ds) {
        fail_batch(q, b, "the dataset no longer exists");
        return true;
    }
    if (q->store->ops->system_get(q->store, b->system_code, &caller) != DTM_OK) {
        fail_batch(q, b, "the sending system no longer exists");
        return true;
    }
    dtm_spool_path(c, b->id, path, sizeof(path));
    if ((rc = dtm_spool_map(c, path, &m))) { /* T4.2: sealed */
        fail_batch(q, b,
                   rc == DTM_ENOTFOUND ? "the received file is missing from the spool"
                                       : "the received file cannot be read");
        return true;
    }
    if (strcmp(b->status, "queued") == 0) {
        snprintf(b->status, sizeof(b->status), "running");
        b->started_at = dtm_now_us();
        if (dtm_batch_save(q->writer, b, false) != DTM_OK) {
            dtm_unmap(&m);
            return false;
        }
    }
    dtm_logf(DTM_LOG_INFO, "batch started",
             "\"batch\":\"%s\",\"dataset\":\"%s\",\"system\":\"%s\",\"bytes\":%lld,"
             "\"resume_row\":%lld",
             b->id, b->dataset, b->system_code, (long long)b->bytes, (long long)b->next_row);
    struct dtm_batch_run run = {
        .b = b,
        .ds = ds,
        .caller = &caller,
        .keys = q->keys,
        .store = q->store,
        .writer = q->writer,
        .input = &m,
        .chunk = (size_t)c->batch_chunk,
        .cancel = &q->cancel,
        .stop = &q->stop,
    };
    rc = dtm_batch_run(&run);
    dtm_unmap(&m);
    if (rc == DTM_EMALFORMED) { /* the rows before the resume point no longer decode */
        fail_batch(q, b, "the received file changed: it cannot be resumed");
        unlink(path);
        return true;
    }
    if (rc) {
        dtm_logf(rc == DTM_EBUSY ? DTM_LOG_INFO : DTM_LOG_ERROR, "batch paused",
                 "\"batch\":\"%s\",\"next_row\":%lld", b->id, (long long)b->next_row);
        return false;
    }
    log_end(b, t0);
    unlink(path);
    return true;
}

/* Removes spool files that no batch will read: uploads cut off by a crash (ID.part), and files
 * whose batch was never queued or is final. */
static void clean_spool(struct dtm_batches *q)
{
    char dir[DTM_PATH_MAX], path[DTM_PATH_MAX + 300];
    struct dirent *e;
    DIR *d;
    dtm_conf_path(*q->conf, "batches", dir, sizeof(dir));
    if (!(d = opendir(dir)))
        return;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        bool drop = false;
        if (n > 5 && strcmp(e->d_name + n - 5, ".part") == 0) {
            drop = true;
        } else if (n > 5 && n - 5 < DTM_ID_MAX && strcmp(e->d_name + n - 5, ".data") == 0) {
            struct dtm_batch b;
            char id[DTM_ID_MAX];
            memcpy(id, e->d_name, n - 5);
            id[n - 5] = '\0';
            drop = q->store->ops->batch_get(q->store, id, &b) == DTM_ENOTFOUND ||
                   (strcmp(b.status, "queued") != 0 && strcmp(b.status, "running") != 0);
        }
        if (drop) {
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            unlink(path);
        }
    }
    closedir(d);
}

static void *loop(void *arg)
{
    struct dtm_batches *q = arg;
    while (!atomic_load(&q->stop)) {
        struct dtm_batch b;
        int rc;
        memset(&b, 0, sizeof(b));
        /* under the lock: a cancel cannot slip between choosing a batch and marking it current */
        pthread_mutex_lock(&q->lock);
        rc = q->store->ops->batch_pending(q->store, "api", first_pending,
                                          &(struct pick){q->store, &b});
        if ((rc == DTM_OK || rc == 1) && b.id[0]) {
            snprintf(q->current, sizeof(q->current), "%s", b.id);
            atomic_store(&q->cancel, false);
        }
        pthread_mutex_unlock(&q->lock);
        if ((rc == DTM_OK || rc == 1) && b.id[0]) {
            bool go_on = run_one(q, &b);
            q->store->ops->batch_release(q->store, b.id);
            pthread_mutex_lock(&q->lock);
            q->current[0] = '\0';
            pthread_cond_broadcast(&q->idle);
            pthread_mutex_unlock(&q->lock);
            if (go_on)
                continue;
        }
        /* nothing to do (or a pause after a failure): wait for a new batch, or retry in 5 s */
        pthread_mutex_lock(&q->lock);
        if (!q->woken && !atomic_load(&q->stop)) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 5;
            pthread_cond_timedwait(&q->wake, &q->lock, &until);
        }
        q->woken = false;
        pthread_mutex_unlock(&q->lock);
    }
    return NULL;
}

int dtm_batches_start(const struct dtm_conf *const *conf, struct dtm_dict *dict,
                      const struct dtm_keyring *keys, struct dtm_writer *writer,
                      struct dtm_batches **out, char *err, size_t errsz)
{
    struct dtm_batches *q = calloc(1, sizeof(*q));
    int rc;
    if (!q) {
        snprintf(err, errsz, "out of memory");
        return DTM_ENOMEM;
    }
    q->conf = conf;
    q->dict = dict;
    q->keys = keys;
    q->writer = writer;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->wake, NULL);
    pthread_cond_init(&q->idle, NULL);
    if ((rc = dtm_store_open(*conf, &q->store, err, errsz))) {
        dtm_batches_free(q);
        return rc;
    }
    clean_spool(q); /* before the listeners open: no upload is in progress */
    if (pthread_create(&q->thread, NULL, loop, q) != 0) {
        snprintf(err, errsz, "cannot start the batch thread");
        dtm_batches_free(q);
        return DTM_EIO;
    }
    q->running_thread = true;
    *out = q;
    return DTM_OK;
}

void dtm_batches_wake(struct dtm_batches *q)
{
    pthread_mutex_lock(&q->lock);
    q->woken = true;
    pthread_cond_signal(&q->wake);
    pthread_mutex_unlock(&q->lock);
}

int dtm_batches_cancel(struct dtm_batches *q, struct dtm_store *st, const char *id,
                       struct dtm_batch *out)
{
    int rc;
    pthread_mutex_lock(&q->lock);
    if (strcmp(q->current, id) == 0) {
        atomic_store(&q->cancel, true);
        while (strcmp(q->current, id) == 0)
            pthread_cond_wait(&q->idle, &q->lock);
        pthread_mutex_unlock(&q->lock);
        return st->ops->batch_get(st, id, out);
    }
    /* not running: a queued one becomes cancelled (the lock keeps the runner from taking it) */
    if ((rc = st->ops->batch_get(st, id, out))) {
        pthread_mutex_unlock(&q->lock);
        return rc;
    }
    if (strcmp(out->status, "queued") != 0 && strcmp(out->status, "running") != 0) {
        pthread_mutex_unlock(&q->lock);
        return DTM_ECONFLICT;
    }
    snprintf(out->status, sizeof(out->status), "cancelled");
    out->finished_at = dtm_now_us();
    rc = dtm_batch_save(q->writer, out, false);
    pthread_mutex_unlock(&q->lock);
    if (rc == DTM_OK) {
        char path[DTM_PATH_MAX];
        dtm_spool_path(*q->conf, id, path, sizeof(path));
        unlink(path);
    }
    return rc;
}

void dtm_batches_stop(struct dtm_batches *q)
{
    if (!q || !q->running_thread)
        return;
    atomic_store(&q->stop, true);
    dtm_batches_wake(q);
    pthread_join(q->thread, NULL);
    q->running_thread = false;
}

void dtm_batches_free(struct dtm_batches *q)
{
    if (!q)
        return;
    dtm_batches_stop(q);
    if (q->store)
        q->store->ops->close(q->store);
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->wake);
    pthread_cond_destroy(&q->idle);
    free(q);
}
