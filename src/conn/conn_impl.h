/* conn/conn_impl.h — what the files of conn/ share and nobody else sees: the service's state
 * and each thread's entry point. */
#ifndef DTM_CONN_IMPL_H
#define DTM_CONN_IMPL_H

#include "conn/conn.h"

#include <pthread.h>

/* A system's failed share of its last hour, as the evaluator last found it. */
struct dtm_conn_rate {
    char code[DTM_CODE_MAX];
    double rate;
};

#define DTM_LIVE_EVENT_MAX 2048 /* bytes of one event ("id: …\ndata: {…}\n\n") */

struct dtm_conn {
    const struct dtm_conf *const *conf;
    struct dtm_dict *dict;
    pthread_mutex_t lock; /* everything below */
    pthread_cond_t wake;  /* stopping, a new live stream (CLOCK_MONOTONIC) */
    bool stopping;
    pthread_t status_thread, probe_thread, live_thread;
    bool status_started, probe_started, live_started, curl_ready;
    /* the evaluator's error rates, by code */
    struct dtm_conn_rate *rates;
    size_t nrates;
    /* the live feed */
    struct dtm_live_sub *subs;
    size_t nsubs;
    char event[DTM_LIVE_EVENT_MAX]; /* the latest event, ready to send */
    size_t event_n;
    uint64_t seq;       /* number of the latest event; 0 = none yet */
    int64_t event_mono; /* when it was made (monotonic µs) */
    /* told of every recorded status change (dtm_conn_watch) */
    dtm_conn_watch_fn watch;
    void *watch_ctx;
};

void *dtm_conn_status_run(void *arg);
void *dtm_conn_probe_run(void *arg);
void *dtm_conn_live_run(void *arg);
/* Stopping: every paused live stream is resumed, to send what it has and end. c->lock held. */
void dtm_conn_live_end_locked(struct dtm_conn *c);

/* Waits on c->wake until the monotonic time `until` or stopping; call with c->lock held.
 * Returns c->stopping. */
bool dtm_conn_wait(struct dtm_conn *c, int64_t until);

/* The `transactions` dataset; NULL (logged) when the dictionary has none. */
const struct dtm_dataset *dtm_conn_transactions(struct dtm_conn *c);

#endif
