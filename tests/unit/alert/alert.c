/* Unit tests for src/alert/alert.c: the rules of one change applied on a real SQLite store in
 * a temporary directory — a new alert fires and is notified, a raise of an open one only bumps
 * count and last_seen (de-duplication, also when acknowledged), a clear resolves it, a raise
 * within the suppression window after a resolution is recorded but not notified (and notified
 * again after the window), people's acknowledgement and resolution (conflicts, unknown ids,
 * audit entries) — the engine itself (raises from several threads de-duplicated into one alert,
 * people's actions and calls answered through their callbacks, nothing accepted once stopped)
 * and the alert's JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alert/alert.h"
#include "audit/audit.h"

#define MIN_US (60 * 1000000LL)

static const uint8_t key[32] = {9, 8, 7, 6, 5, 4, 3, 2, 1};

struct fixture {
    char dir[64];
    struct dtm_store *st;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char path[128], err[256];
    snprintf(f->dir, sizeof(f->dir), "/tmp/dtm-unit-alert-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(path, sizeof(path), "%s/dtm.db", f->dir);
    assert_int_equal(dtm_store_sqlite_open(path, &f->st, err, sizeof(err)), DTM_OK);
    assert_int_equal(f->st->ops->migrate(f->st), DTM_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char path[160];
    f->st->ops->close(f->st);
    snprintf(path, sizeof(path), "%s/dtm.db", f->dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/dtm.db-wal", f->dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/dtm.db-shm", f->dir);
    unlink(path);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Applies one change in its own transaction. */
static void apply(struct dtm_store *st, struct dtm_alert_change *c, int64_t suppress_us)
{
    assert_int_equal(st->ops->begin(st), DTM_OK);
    assert_int_equal(dtm_alert_apply(st, c, suppress_us, key), DTM_OK);
    assert_int_equal(st->ops->commit(st), DTM_OK);
}

static struct dtm_alert_change raise_at(const char *rule, const char *k, const char *sev,
                                        int64_t at)
{
    struct dtm_alert_change c;
    memset(&c, 0, sizeof(c));
    c.op = DTM_ALERT_OP_RAISE;
    c.at = at;
    snprintf(c.in.rule, sizeof(c.in.rule), "%s", rule);
    snprintf(c.in.key, sizeof(c.in.key), "%s", k);
    snprintf(c.in.severity, sizeof(c.in.severity), "%s", sev);
    snprintf(c.in.title, sizeof(c.in.title), "Brute force on %s", k);
    snprintf(c.in.detail, sizeof(c.in.detail), "{\"failures\":12}");
    return c;
}

static struct dtm_alert_change other(enum dtm_alert_op op, const char *rule, const char *k,
                                     int64_t id, int64_t at)
{
    struct dtm_alert_change c;
    memset(&c, 0, sizeof(c));
    c.op = op;
    c.at = at;
    c.in.id = id;
    snprintf(c.in.rule, sizeof(c.in.rule), "%s", rule ? rule : "");
    snprintf(c.in.key, sizeof(c.in.key), "%s", k ? k : "");
    snprintf(c.actor_kind, sizeof(c.actor_kind), "user");
    snprintf(c.actor, sizeof(c.actor), "op1");
    snprintf(c.source_ip, sizeof(c.source_ip), "10.1.2.3");
    return c;
}

static int count_rows(void *ctx, const struct dtm_alert *a)
{
    (void)a;
    (*(int *)ctx)++;
    return 0;
}

static void test_dedup_clear_suppress(void **state)
{
    struct fixture *f = *state;
    struct dtm_store *st = f->st;
    int64_t t0 = 1764115200000000LL, first;
    struct dtm_alert_change c = raise_at("auth.brute_force", "user:alice", "warning", t0);
    struct dtm_alert got;
    int n = 0;

    apply(st, &c, 30 * MIN_US);
    assert_true(c.notify);
    assert_string_equal(c.out.state, "firing");
    assert_int_equal(c.out.count, 1);
    assert_false(c.out.suppressed);
    first = c.out.id;

    /* the same rule+key: count and last_seen, no notification; severity only rises */
    c = raise_at("auth.brute_force", "user:alice", "critical", t0 + 1000);
    apply(st, &c, 30 * MIN_US);
    assert_false(c.notify);
    assert_int_equal(c.out.id, first);
    assert_int_equal(c.out.count, 2);
    assert_int_equal(c.out.last_seen, t0 + 1000);
    assert_string_equal(c.out.severity, "critical");
    c = raise_at("auth.brute_force", "user:alice", "info", t0 + 2000);
    apply(st, &c, 30 * MIN_US);
    assert_string_equal(c.out.severity, "critical");
    assert_int_equal(st->ops->alert_get(st, first, &got), DTM_OK);
    assert_int_equal(got.count, 3);
    assert_int_equal(got.first_seen, t0);

    /* another key is another alert */
    c = raise_at("auth.brute_force", "user:bob", "warning", t0 + 3000);
    apply(st, &c, 30 * MIN_US);
    assert_true(c.notify);
    assert_true(c.out.id != first);

    /* clear: resolved by the rule; a clear of nothing open changes nothing */
    c = other(DTM_ALERT_OP_CLEAR, "auth.brute_force", "user:alice", 0, t0 + 10 * MIN_US);
    apply(st, &c, 30 * MIN_US);
    assert_int_equal(c.rc, DTM_OK);
    assert_string_equal(c.out.state, "resolved");
    assert_int_equal(c.out.resolved_at, t0 + 10 * MIN_US);
    assert_string_equal(c.out.resolved_by, "");
    assert_true(c.notify_resolved); /* it was notified: so is its end */
    c = other(DTM_ALERT_OP_CLEAR, "auth.brute_force", "user:alice", 0, t0 + 11 * MIN_US);
    apply(st, &c, 30 * MIN_US);
    assert_int_equal(c.rc, DTM_ENOTFOUND);
    assert_false(c.notify_resolved);

    /* within the window: a new alert, recorded, not notified */
    c = raise_at("auth.brute_force", "user:alice", "warning", t0 + 20 * MIN_US);
    apply(st, &c, 30 * MIN_US);
    assert_false(c.notify);
    assert_true(c.out.suppressed);
    assert_string_equal(c.out.state, "firing");
    assert_true(c.out.id != first);
    /* and it de-duplicates like any open alert */
    c = raise_at("auth.brute_force", "user:alice", "warning", t0 + 21 * MIN_US);
    apply(st, &c, 30 * MIN_US);
    assert_int_equal(c.out.count, 2);
    assert_false(c.notify);

    /* still firing when the window has passed (30 min after the resolution at +10): news again */
    c = raise_at("auth.brute_force", "user:alice", "warning", t0 + 39 * MIN_US);
    apply(st, &c, 30 * MIN_US);
    assert_false(c.notify);
    assert_true(c.out.suppressed);
    c = raise_at("auth.brute_force", "user:alice", "warning", t0 + 40 * MIN_US);
    apply(st, &c, 30 * MIN_US);
    assert_true(c.notify);
    assert_false(c.out.suppressed);
    assert_int_equal(c.out.count, 4);
    c = raise_at("auth.brute_force", "user:alice", "warning", t0 + 41 * MIN_US);
    apply(st, &c, 30 * MIN_US);
    assert_false(c.notify);
    /* its end is news too now */
    c = other(DTM_ALERT_OP_CLEAR, "auth.brute_force", "user:alice", 0, t0 + 42 * MIN_US);
    apply(st, &c, 30 * MIN_US);
    assert_true(c.notify_resolved);

    /* a suppressed one ended within the window: its end is not notified */
    c = raise_at("auth.brute_force", "user:alice", "warning", t0 + 43 * MIN_US);
    apply(st, &c, 30 * MIN_US);
    assert_true(c.out.suppressed);
    c = other(DTM_ALERT_OP_CLEAR, "auth.brute_force", "user:alice", 0, t0 + 44 * MIN_US);
    apply(st, &c, 30 * MIN_US);
    assert_false(c.notify_resolved);

    /* after the window: notified again */
    c = raise_at("auth.brute_force", "user:alice", "warning", t0 + 80 * MIN_US);
    apply(st, &c, 30 * MIN_US);
    assert_true(c.notify);
    assert_false(c.out.suppressed);

    /* the list: newest first, filters */
    assert_int_equal(st->ops->alert_list(st, NULL, 0, 0, count_rows, &n), DTM_OK);
    assert_int_equal(n, 5); /* alice ×4 (+10, +20→+42, +43→+44, +80) and bob */
    n = 0;
    assert_int_equal(st->ops->alert_list(
                         st,
                         &(struct dtm_alert_filter){"resolved", NULL, NULL, INT64_MIN, INT64_MAX},
                         0, 0, count_rows, &n),
                     DTM_OK);
    assert_int_equal(n, 3);
    n = 0;
    assert_int_equal(st->ops->alert_list(
                         st,
                         &(struct dtm_alert_filter){NULL, "critical", NULL, INT64_MIN, INT64_MAX},
                         0, 0, count_rows, &n),
                     DTM_OK);
    assert_int_equal(n, 1);
}

static int find_action(void *ctx, const struct dtm_audit_entry *e)
{
    const char *want = ctx;
    return strcmp(e->action, want) == 0 && strcmp(e->actor, "op1") == 0 &&
                   strcmp(e->source_ip, "10.1.2.3") == 0
               ? 1
               : 0;
}

static void test_ack_resolve(void **state)
{
    struct fixture *f = *state;
    struct dtm_store *st = f->st;
    int64_t t0 = 1764115200000000LL, id;
    struct dtm_alert_change c = raise_at("admin.new_address", "user:root", "critical", t0);
    struct dtm_audit_verify v;

    apply(st, &c, 0);
    id = c.out.id;
    c = other(DTM_ALERT_OP_ACK, NULL, NULL, id, t0 + 5);
    apply(st, &c, 0);
    assert_int_equal(c.rc, DTM_OK);
    assert_string_equal(c.out.state, "acknowledged");
    assert_string_equal(c.out.acknowledged_by, "op1");
    assert_int_equal(c.out.acknowledged_at, t0 + 5);
    /* a second acknowledgement answers the alert as it is */
    c = other(DTM_ALERT_OP_ACK, NULL, NULL, id, t0 + 6);
    apply(st, &c, 0);
    assert_int_equal(c.rc, DTM_OK);
    assert_int_equal(c.out.acknowledged_at, t0 + 5);
    /* an acknowledged alert still de-duplicates */
    c = raise_at("admin.new_address", "user:root", "critical", t0 + 7);
    apply(st, &c, 0);
    assert_int_equal(c.out.id, id);
    assert_int_equal(c.out.count, 2);
    assert_string_equal(c.out.state, "acknowledged");
    assert_false(c.notify);

    c = other(DTM_ALERT_OP_RESOLVE, NULL, NULL, id, t0 + 8);
    apply(st, &c, 0);
    assert_int_equal(c.rc, DTM_OK);
    assert_string_equal(c.out.state, "resolved");
    assert_string_equal(c.out.resolved_by, "op1");
    assert_true(c.notify_resolved);
    c = other(DTM_ALERT_OP_RESOLVE, NULL, NULL, id, t0 + 9);
    apply(st, &c, 0);
    assert_int_equal(c.rc, DTM_ECONFLICT);
    c = other(DTM_ALERT_OP_ACK, NULL, NULL, id, t0 + 9);
    apply(st, &c, 0);
    assert_int_equal(c.rc, DTM_ECONFLICT);
    c = other(DTM_ALERT_OP_ACK, NULL, NULL, 424242, t0 + 9);
    apply(st, &c, 0);
    assert_int_equal(c.rc, DTM_ENOTFOUND);

    /* audited with the actor and address; the chain verifies */
    assert_int_equal(st->ops->audit_list(st, NULL, 0, 0, find_action, "alert.acknowledged"), 1);
    assert_int_equal(st->ops->audit_list(st, NULL, 0, 0, find_action, "alert.resolved"), 1);
    assert_int_equal(dtm_audit_verify(st, key, &v), DTM_OK);
    assert_int_equal(v.broken, DTM_AUDIT_INTACT);
    assert_true(v.entries >= 3);
}

static void test_json(void **state)
{
    struct dtm_alert a;
    struct dtm_buf b;
    (void)state;
    memset(&a, 0, sizeof(a));
    a.id = 7;
    snprintf(a.rule, sizeof(a.rule), "auth.burst_401");
    snprintf(a.key, sizeof(a.key), "ip:\"10.0.0.1\"\n");
    snprintf(a.severity, sizeof(a.severity), "warning");
    snprintf(a.state, sizeof(a.state), "firing");
    snprintf(a.title, sizeof(a.title), "Nhiều lỗi 401");
    snprintf(a.detail, sizeof(a.detail), "{\"n\":40}");
    a.first_seen = a.last_seen = 1764115200000000LL;
    a.count = 3;
    dtm_buf_init(&b, 1 << 16);
    assert_int_equal(dtm_alert_json(&b, &a), DTM_OK);
    assert_non_null(strstr(b.p, "\"key\":\"ip:\\\"10.0.0.1\\\"\\n\""));
    assert_non_null(strstr(b.p, "\"detail\":{\"n\":40}"));
    assert_non_null(strstr(b.p, "\"acknowledged_by\":null,\"acknowledged_at\":null"));
    assert_non_null(strstr(b.p, "\"first_seen\":\"2025-11-26T07:00:00.000+07:00\""));
    assert_non_null(strstr(b.p, "\"suppressed\":false}"));
    dtm_buf_free(&b);
}

static void test_severity_names(void **state)
{
    enum dtm_alert_severity s;
    (void)state;
    assert_int_equal(dtm_alert_severity_parse("warning", &s), DTM_OK);
    assert_int_equal(s, DTM_ALERT_WARNING);
    assert_int_equal(dtm_alert_severity_parse("WARNING", &s), DTM_EINVAL);
    assert_int_equal(dtm_alert_severity_parse(NULL, &s), DTM_EINVAL);
    assert_string_equal(dtm_alert_severity_name(DTM_ALERT_CRITICAL), "critical");
    /* a NULL engine: raising is a no-op (modules may run without one) */
    assert_int_equal(dtm_alert_raise(NULL, "x", "y", DTM_ALERT_INFO, "t", NULL), DTM_OK);
}

/* ---- the engine: raises from several threads at once, people's actions and calls */

#define THREADS 4
#define RAISES 400

struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done, rc;
    struct dtm_alert a;
};

static void person_done(void *ctx, int rc, const struct dtm_alert *a)
{
    struct waiter *w = ctx;
    pthread_mutex_lock(&w->lock);
    w->rc = rc;
    if (a)
        w->a = *a;
    w->done = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static void call_done(void *ctx, int rc)
{
    person_done(ctx, rc, NULL);
}

static void wait_done(struct waiter *w)
{
    pthread_mutex_lock(&w->lock);
    while (!w->done)
        pthread_cond_wait(&w->cond, &w->lock);
    w->done = 0;
    pthread_mutex_unlock(&w->lock);
}

static void *raiser(void *arg)
{
    struct dtm_alerts *e = arg;
    for (int i = 0; i < RAISES; i++)
        dtm_alert_raise(e, "http.denied_burst", "ip:10.0.0.1", DTM_ALERT_WARNING, "401 burst",
                        "{\"n\":1}");
    return NULL;
}

struct counted {
    struct waiter w; /* first: call_done sees a struct waiter */
    int n;
};

static int count_id(void *ctx, struct dtm_store *st)
{
    struct counted *x = ctx;
    x->n = 0;
    return st->ops->alert_list(st, NULL, 0, 0, count_rows, &x->n);
}

static int find_rule(void *ctx, const struct dtm_alert *a)
{
    *(struct dtm_alert *)ctx = *a;
    return 1;
}

static void test_engine_threads(void **state)
{
    struct fixture *f = *state;
    struct dtm_conf *c = calloc(1, sizeof(*c));
    const struct dtm_conf *cp = c;
    struct dtm_alerts *e = NULL;
    pthread_t t[THREADS];
    struct counted x = {{PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, {0}}, 0};
    struct dtm_alert a;
    struct dtm_alert_actor by = {"user", "op1", "127.0.0.1"};
    char err[256];
    uint64_t dropped;
    dtm_conf_defaults(c, f->dir);
    assert_int_equal(dtm_alerts_start(&cp, key, &e, err, sizeof(err)), DTM_OK);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, raiser, e), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    /* a call runs after every raise queued before it */
    assert_int_equal(dtm_alerts_call(e, count_id, call_done, &x.w), DTM_OK);
    wait_done(&x.w);
    assert_int_equal(x.w.rc, DTM_OK);
    assert_int_equal(x.n, 1); /* one alert, however many raises */
    assert_int_equal(f->st->ops->alert_list(f->st, NULL, 0, 1, find_rule, &a), 1);
    dropped = dtm_alerts_dropped(e);
    assert_int_equal((uint64_t)a.count + dropped, THREADS * RAISES);
    assert_string_equal(a.state, "firing");

    /* people's actions come back through their callback */
    assert_int_equal(dtm_alert_ack(e, a.id, &by, person_done, &x.w), DTM_OK);
    wait_done(&x.w);
    assert_int_equal(x.w.rc, DTM_OK);
    assert_string_equal(x.w.a.state, "acknowledged");
    assert_int_equal(dtm_alert_resolve(e, a.id, &by, person_done, &x.w), DTM_OK);
    wait_done(&x.w);
    assert_string_equal(x.w.a.resolved_by, "op1");
    assert_int_equal(dtm_alert_resolve(e, a.id, &by, person_done, &x.w), DTM_OK);
    wait_done(&x.w);
    assert_int_equal(x.w.rc, DTM_ECONFLICT);
    assert_int_equal(dtm_alert_ack(e, 987654, &by, person_done, &x.w), DTM_OK);
    wait_done(&x.w);
    assert_int_equal(x.w.rc, DTM_ENOTFOUND);

    /* a detail that is not a JSON object is replaced (it is embedded as is) */
    assert_int_equal(dtm_alert_raise(e, "x.y", "k", DTM_ALERT_INFO, "t", "{\"a\":"), DTM_OK);
    assert_int_equal(dtm_alert_raise(e, "", "k", DTM_ALERT_INFO, "t", NULL), DTM_EINVAL);
    dtm_alerts_stop(e); /* applies what is queued */
    assert_int_equal(dtm_alert_raise(e, "x.y", "k", DTM_ALERT_INFO, "t", NULL), DTM_EBUSY);
    assert_int_equal(dtm_alert_ack(e, 1, &by, person_done, &x.w), DTM_EBUSY);
    dtm_alerts_free(e);
    assert_int_equal(f->st->ops->alert_list(
                         f->st, &(struct dtm_alert_filter){NULL, NULL, "x.y", INT64_MIN, INT64_MAX},
                         0, 1, find_rule, &a),
                     1);
    assert_string_equal(a.detail, "{\"invalid_detail\":true}");
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dedup_clear_suppress, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ack_resolve, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_threads, setup, teardown),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_severity_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
