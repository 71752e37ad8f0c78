/* core/periodic.c — the clock of the server's background jobs (retention, scheduled reports,
 * backups, anomaly checks, reconciliation, subscription pushes, the connection-log flush, the
 * early-warning sweeper): one thread per job that calls the job's function, waits the delay it
 * returns, and calls it again, until stopped. The wait is on the monotonic clock (a wall-clock
 * step neither fires a job early nor holds it back), a wake cuts it short, and a stop ends it at
 * once and joins the thread; a job long at work asks dtm_periodic_stopping between its steps. */
#include "core/core.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct dtm_periodic {
    dtm_periodic_fn fn;
    void *arg;
    int64_t next_us; /* monotonic: the next call */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool woken;
    atomic_bool stopping;
};

static void *run(void *arg)
{
    struct dtm_periodic *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!atomic_load(&p->stopping) && !p->woken && dtm_mono_us() < p->next_us) {
            struct timespec until = {(time_t)(p->next_us / 1000000),
                                     (long)(p->next_us % 1000000) * 1000};
            pthread_cond_timedwait(&p->cond, &p->lock, &until);
        }
        if (atomic_load(&p->stopping))
            break;
        p->woken = false;
        pthread_mutex_unlock(&p->lock);
        int64_t delay = p->fn(p, p->arg);
        pthread_mutex_lock(&p->lock);
        p->next_us = dtm_mono_us() + (delay > 0 ? delay : 0);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int dtm_periodic_start(const char *what, int64_t first_us, dtm_periodic_fn fn, void *arg,
                       struct dtm_periodic **out, char *err, size_t errsz)
{
    struct dtm_periodic *p = calloc(1, sizeof(*p));
    pthread_condattr_t ca;
    *out = NULL;
    if (!p) {
        snprintf(err, errsz, "out of memory");
        return DTM_ENOMEM;
    }
    p->fn = fn;
    p->arg = arg;
    p->next_us = dtm_mono_us() + (first_us > 0 ? first_us : 0);
    atomic_init(&p->stopping, false);
    pthread_mutex_init(&p->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cond, &ca);
    pthread_condattr_destroy(&ca);
    *out = p; /* before the thread runs: the job may keep it where its function looks */
    if (pthread_create(&p->thread, NULL, run, p) != 0) {
        *out = NULL;
        pthread_cond_destroy(&p->cond);
        pthread_mutex_destroy(&p->lock);
        free(p);
        snprintf(err, errsz, "cannot start the %s thread", what);
        return DTM_EIO;
    }
    return DTM_OK;
}

bool dtm_periodic_stopping(struct dtm_periodic *p)
{
    return p && atomic_load(&p->stopping);
}

void dtm_periodic_wake(struct dtm_periodic *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->woken = true;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

void dtm_periodic_stop(struct dtm_periodic *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->stopping, true);
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->thread, NULL);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
