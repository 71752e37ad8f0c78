/* audit/audit.c — the hash-chained audit trail (S3, D6): the canonical encoding and its HMAC,
 * appends inside a transaction, verification of the whole chain, and the server's trail (events
 * queued to the writer thread, the chain head logged periodically and at stop). */
#include "audit/audit.h"
#include "ingest/ingest.h"

#include <assert.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <pwd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define QUEUED_MAX 1024 /* server events waiting for the writer at most */

static const uint8_t zero_hash[32];

/* ---- encoding and hash */

struct enc {
    uint8_t *out;
    size_t outsz, n;
};

static void put(struct enc *c, const void *p, size_t n)
{
    if (c->n < c->outsz)
        memcpy(c->out + c->n, p, DTM_MIN(n, c->outsz - c->n));
    c->n += n;
}

static void put_u64(struct enc *c, uint64_t v)
{
    uint8_t b[8];
    for (int i = 7; i >= 0; i--, v >>= 8)
        b[i] = (uint8_t)(v & 0xff);
    put(c, b, 8);
}

/* A text member: its length (4 bytes, big-endian) then its bytes, up to its array's bound. */
static void put_text(struct enc *c, const char *s, size_t bound)
{
    size_t n = strnlen(s, bound);
    uint8_t b[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    put(c, b, 4);
    put(c, s, n);
}

size_t dtm_audit_encode(const struct dtm_audit_entry *e, uint8_t *out, size_t outsz)
{
    struct enc c = {out, outsz, 0};
    put(&c, "dtm-audit-v1", 12);
    put_u64(&c, (uint64_t)e->seq);
    put_u64(&c, (uint64_t)e->at);
    put_text(&c, e->actor_kind, sizeof(e->actor_kind));
    put_text(&c, e->actor, sizeof(e->actor));
    put_text(&c, e->action, sizeof(e->action));
    put_text(&c, e->target, sizeof(e->target));
    put_text(&c, e->detail, sizeof(e->detail));
    put_text(&c, e->source_ip, sizeof(e->source_ip));
    put(&c, e->prev_hash, 32);
    return c.n;
}

void dtm_audit_hash(const uint8_t key[32], const struct dtm_audit_entry *e, uint8_t out[32])
{
    uint8_t *buf = malloc(DTM_AUDIT_ENCODED_MAX);
    size_t n;
    if (!buf) {
        memset(out, 0, 32); /* cannot seal: the append fails (see seal) */
        return;
    }
    n = dtm_audit_encode(e, buf, DTM_AUDIT_ENCODED_MAX);
    assert(n <= DTM_AUDIT_ENCODED_MAX);
    dtm_hmac_sha256(key, 32, buf, n, out);
    free(buf);
}

int dtm_audit_entry_set(struct dtm_audit_entry *e, const struct dtm_audit_event *ev, int64_t at)
{
    const char *detail = ev->detail ? ev->detail : "{}";
    memset(e, 0, sizeof(*e));
    if (!ev->actor_kind || !ev->actor || !ev->action || !*ev->actor_kind || !*ev->action)
        return DTM_EINVAL;
    if (strlen(detail) >= sizeof(e->detail))
        return DTM_EINVAL;
    e->at = at;
    snprintf(e->actor_kind, sizeof(e->actor_kind), "%s", ev->actor_kind);
    snprintf(e->actor, sizeof(e->actor), "%s", ev->actor);
    snprintf(e->action, sizeof(e->action), "%s", ev->action);
    snprintf(e->target, sizeof(e->target), "%s", ev->target ? ev->target : "");
    snprintf(e->detail, sizeof(e->detail), "%s", detail);
    snprintf(e->source_ip, sizeof(e->source_ip), "%s", ev->source_ip ? ev->source_ip : "");
    return DTM_OK;
}

/* The store's seal callback: the hash, once seq and prev_hash are known. */
static int seal(void *ctx, struct dtm_audit_entry *e)
{
    dtm_audit_hash(ctx, e, e->hash);
    return dtm_ct_equal(e->hash, zero_hash, 32) ? DTM_ENOMEM : DTM_OK;
}

int dtm_audit_append_entry(struct dtm_store *st, const uint8_t key[32], struct dtm_audit_entry *e)
{
    return st->ops->audit_append(st, e, seal, (void *)key);
}

int dtm_audit_append(struct dtm_store *st, const uint8_t key[32], const struct dtm_audit_event *ev,
                     struct dtm_audit_entry *out)
{
    struct dtm_audit_entry *e = malloc(sizeof(*e));
    int rc;
    if (!e)
        return DTM_ENOMEM;
    if ((rc = dtm_audit_entry_set(e, ev, dtm_now_us())) == DTM_OK &&
        (rc = dtm_audit_append_entry(st, key, e)) == DTM_OK && out)
        *out = *e;
    free(e);
    return rc;
}

/* ---- verification */

void dtm_audit_verify_init(struct dtm_audit_verify *v)
{
    memset(v, 0, sizeof(*v));
}

int dtm_audit_verify_entry(struct dtm_audit_verify *v, const uint8_t key[32],
                           const struct dtm_audit_entry *e)
{
    uint8_t h[32];
    v->broken_seq = e->seq;
    if (e->seq != v->head_seq + 1) {
        v->broken = DTM_AUDIT_SEQ_GAP;
        return 1;
    }
    if (!dtm_ct_equal(e->prev_hash, v->head_hash, 32)) {
        v->broken = DTM_AUDIT_PREV_MISMATCH;
        return 1;
    }
    dtm_audit_hash(key, e, h);
    if (!dtm_ct_equal(h, e->hash, 32)) {
        v->broken = DTM_AUDIT_HASH_MISMATCH;
        return 1;
    }
    v->broken_seq = 0;
    v->entries++;
    v->head_seq = e->seq;
    memcpy(v->head_hash, e->hash, 32);
    return DTM_OK;
}

struct verify_ctx {
    struct dtm_audit_verify *v;
    const uint8_t *key;
    int64_t last; /* seq of the last entry read */
};

static int verify_one(void *ctx, const struct dtm_audit_entry *e)
{
    struct verify_ctx *x = ctx;
    x->last = e->seq;
    return dtm_audit_verify_entry(x->v, x->key, e);
}

#define VERIFY_PAGE 10000

int dtm_audit_verify(struct dtm_store *st, const uint8_t key[32], struct dtm_audit_verify *v)
{
    struct verify_ctx x = {v, key, 0};
    int rc;
    dtm_audit_verify_init(v);
    for (;;) {
        int64_t checked = v->entries;
        rc = st->ops->audit_list(st, NULL, x.last, VERIFY_PAGE, verify_one, &x);
        if (rc == 1)
            return DTM_OK; /* broken: v says where */
        if (rc)
            return rc;
        if (v->entries - checked < VERIFY_PAGE)
            return DTM_OK; /* a short page: the end */
    }
}

void dtm_audit_verify_describe(const struct dtm_audit_verify *v, char *out, size_t outsz)
{
    long long seq = (long long)v->broken_seq, prev = (long long)v->head_seq;
    switch (v->broken) {
    case DTM_AUDIT_INTACT:
        snprintf(out, outsz, "%lld entr%s, chain intact", (long long)v->entries,
                 v->entries == 1 ? "y" : "ies");
        break;
    case DTM_AUDIT_HASH_MISMATCH:
        snprintf(out, outsz,
                 "entry %lld is broken: hash mismatch (its content was altered after it was "
                 "written)",
                 seq);
        break;
    case DTM_AUDIT_PREV_MISMATCH:
        snprintf(out, outsz,
                 "entry %lld is broken: prev_hash mismatch (it does not follow entry %lld)", seq,
                 prev);
        break;
    case DTM_AUDIT_SEQ_GAP:
        if (seq == prev + 2)
            snprintf(out, outsz, "entry %lld is broken: gap in seq (entry %lld is missing)", seq,
                     prev + 1);
        else if (seq > prev + 2)
            snprintf(out, outsz,
                     "entry %lld is broken: gap in seq (entries %lld to %lld are missing)", seq,
                     prev + 1, seq - 1);
        else
            snprintf(out, outsz, "entry %lld is broken: gap in seq (expected entry %lld)", seq,
                     prev + 1);
        break;
    }
}

void dtm_audit_os_user(char *out, size_t outsz)
{
    struct passwd pw, *res = NULL;
    char buf[4096];
    uid_t uid = geteuid();
    if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res && res->pw_name)
        snprintf(out, outsz, "%s", res->pw_name);
    else
        snprintf(out, outsz, "uid:%lu", (unsigned long)uid);
}

/* ---- the server's trail */

struct dtm_audit {
    const struct dtm_conf *const *conf;
    uint8_t key[32];
    struct dtm_writer *writer;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stopping;
    bool joined;   /* the thread was joined (dtm_audit_stop ran) */
    size_t queued; /* jobs in the writer (under lock) */
    int64_t dropped;
};

struct audit_job {
    struct dtm_write_job job;
    struct dtm_audit *a;
    bool append;   /* false: only read the chain head */
    bool log_head; /* log the chain head after the commit */
    struct dtm_audit_entry e;
    int64_t head_seq;
    uint8_t head_hash[32];
};

static void log_head(int64_t seq, const uint8_t hash[32])
{
    char hex[65];
    dtm_hex(hash, 32, hex);
    dtm_logf(DTM_LOG_INFO, "audit chain head", "\"seq\":%lld,\"hash\":\"%s\"", (long long)seq, hex);
}

static int job_txn(struct dtm_write_job *j, struct dtm_store *st)
{
    struct audit_job *aj = j->ctx;
    int rc;
    if (!aj->append)
        return st->ops->audit_head(st, &aj->head_seq, aj->head_hash);
    if ((rc = dtm_audit_append_entry(st, aj->a->key, &aj->e)))
        return rc;
    aj->head_seq = aj->e.seq;
    memcpy(aj->head_hash, aj->e.hash, 32);
    return DTM_OK;
}

static void job_done(struct dtm_write_job *j)
{
    struct audit_job *aj = j->ctx;
    struct dtm_audit *a = aj->a;
    if (j->rc && aj->append)
        dtm_logf(DTM_LOG_ERROR, "audit entry not stored", "\"action\":\"%s\",\"error\":\"%s\"",
                 aj->e.action, dtm_rc_name(j->rc));
    else if (!j->rc && aj->log_head)
        log_head(aj->head_seq, aj->head_hash);
    free(aj);
    pthread_mutex_lock(&a->lock);
    a->queued--;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
}

/* Queues a job (an event, or with ev NULL a read of the head). */
static void submit(struct dtm_audit *a, const struct dtm_audit_event *ev, bool with_head)
{
    struct audit_job *aj;
    int rc;
    pthread_mutex_lock(&a->lock);
    if (a->queued >= QUEUED_MAX) {
        int64_t n = ++a->dropped;
        pthread_mutex_unlock(&a->lock);
        if ((n & (n - 1)) == 0) /* 1, 2, 4, 8 …: not a line per dropped event */
            dtm_logf(DTM_LOG_WARN, "audit events dropped: too many waiting for the writer",
                     "\"dropped\":%lld", (long long)n);
        return;
    }
    a->queued++;
    pthread_mutex_unlock(&a->lock);
    if (!(aj = calloc(1, sizeof(*aj)))) {
        rc = DTM_ENOMEM;
        goto fail;
    }
    aj->a = a;
    aj->append = ev != NULL;
    aj->log_head = with_head;
    if (ev && (rc = dtm_audit_entry_set(&aj->e, ev, dtm_now_us())))
        goto fail;
    aj->job.dataset = "audit";
    aj->job.system_code = "DTM";
    aj->job.in_txn = job_txn;
    aj->job.relaxed = !ev; /* reading the head needs no fsync */
    aj->job.done = job_done;
    aj->job.ctx = aj;
    if ((rc = dtm_writer_submit(a->writer, &aj->job)) == DTM_OK)
        return;
fail:
    dtm_logf(DTM_LOG_ERROR, "audit entry not stored", "\"action\":\"%s\",\"error\":\"%s\"",
             ev ? ev->action : "(head)", dtm_rc_name(rc));
    free(aj);
    pthread_mutex_lock(&a->lock);
    a->queued--;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
}

void dtm_audit_record(struct dtm_audit *a, const struct dtm_audit_event *ev)
{
    if (a && ev)
        submit(a, ev, false);
}

static void *run(void *arg)
{
    struct dtm_audit *a = arg;
    pthread_mutex_lock(&a->lock);
    for (;;) {
        struct timespec next;
        clock_gettime(CLOCK_REALTIME, &next);
        next.tv_sec += (*a->conf)->audit_head_log_interval;
        while (!a->stopping && pthread_cond_timedwait(&a->cond, &a->lock, &next) == 0)
            ;
        if (a->stopping)
            break;
        pthread_mutex_unlock(&a->lock);
        submit(a, NULL, true);
        pthread_mutex_lock(&a->lock);
    }
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

int dtm_audit_start(const struct dtm_conf *const *conf, const uint8_t key[32], struct dtm_writer *w,
                    struct dtm_audit **out, char *err, size_t errsz)
{
    struct dtm_audit *a = calloc(1, sizeof(*a));
    if (!a) {
        snprintf(err, errsz, "out of memory");
        return DTM_ENOMEM;
    }
    a->conf = conf;
    memcpy(a->key, key, 32);
    a->writer = w;
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->cond, NULL);
    if (pthread_create(&a->thread, NULL, run, a) != 0) {
        snprintf(err, errsz, "cannot start the audit thread");
        pthread_mutex_destroy(&a->lock);
        pthread_cond_destroy(&a->cond);
        free(a);
        return DTM_EIO;
    }
    *out = a;
    return DTM_OK;
}

void dtm_audit_stop(struct dtm_audit *a, const struct dtm_audit_event *last)
{
    bool joined;
    if (!a)
        return;
    pthread_mutex_lock(&a->lock);
    joined = a->joined;
    a->stopping = a->joined = true;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
    if (joined)
        return;
    pthread_join(a->thread, NULL);
    /* the last event carries the head of the trail as the server leaves it */
    submit(a, last, true);
    pthread_mutex_lock(&a->lock);
    while (a->queued)
        pthread_cond_wait(&a->cond, &a->lock);
    pthread_mutex_unlock(&a->lock);
}

void dtm_audit_free(struct dtm_audit *a)
{
    if (!a)
        return;
    dtm_audit_stop(a, NULL);
    pthread_mutex_lock(&a->lock);
    while (a->queued) /* refused submissions are counted back at once; accepted ones finish */
        pthread_cond_wait(&a->cond, &a->lock);
    pthread_mutex_unlock(&a->lock);
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->cond);
    OPENSSL_cleanse(a->key, sizeof(a->key));
    free(a);
}

int dtm_audit_entry_format(struct dtm_buf *b, const struct dtm_audit_entry *e, bool json,
                           bool first, const char *sep)
{
    char ts[40], hex[65];
    dtm_time_fmt(e->at, ts, sizeof(ts));
    dtm_hex(e->hash, 32, hex);
    if (!json) {
        dtm_buf_printf(b, "%lld,%s,", (long long)e->seq, ts);
        dtm_buf_csv(b, dtm_str_c(e->actor_kind));
        dtm_buf_addch(b, ',');
        dtm_buf_csv(b, dtm_str_c(e->actor));
        dtm_buf_addch(b, ',');
        dtm_buf_csv(b, dtm_str_c(e->action));
        dtm_buf_addch(b, ',');
        dtm_buf_csv(b, dtm_str_c(e->target));
        dtm_buf_addch(b, ',');
        dtm_buf_csv(b, dtm_str_c(e->detail));
        dtm_buf_addch(b, ',');
        dtm_buf_csv(b, dtm_str_c(e->source_ip));
        dtm_buf_printf(b, ",%s%s", hex, sep);
        return b->err;
    }
    dtm_buf_printf(b, "%s%s{\"seq\":%lld,\"at\":\"%s\",\"actor_kind\":", first ? "" : ",", sep,
                   (long long)e->seq, ts);
    dtm_buf_json_strc(b, e->actor_kind);
    dtm_buf_addc(b, ",\"actor\":");
    dtm_buf_json_strc(b, e->actor);
    dtm_buf_addc(b, ",\"action\":");
    dtm_buf_json_strc(b, e->action);
    dtm_buf_addc(b, ",\"target\":");
    dtm_buf_json_strc(b, e->target);
    dtm_buf_addc(b, ",\"detail\":");
    /* detail is a JSON object as written; an altered one is shown as a string */
    if (e->detail[0] == '{')
        dtm_buf_addc(b, e->detail);
    else
        dtm_buf_json_strc(b, e->detail);
    dtm_buf_addc(b, ",\"source_ip\":");
    dtm_buf_json_strc(b, e->source_ip);
    dtm_buf_printf(b, ",\"hash\":\"%s\"}", hex);
    return b->err;
}
