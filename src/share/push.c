/* share/push.c — the delivery thread of subscriptions in `dtm serve` (F3, CONTRACT §6; see
 * share.h for the guarantees). About once a second (at once when poked) it lists the live
 * subscriptions and, for each whose next bucket has closed (end + settle_seconds) and whose
 * backoff has passed, leases it in the store, computes the bucket's aggregates, POSTs them signed
 * (alert/deliver.c's dtm_webhook_post) and records the attempt with its outcome in one
 * transaction on the thread's own store connection: a 2xx answer moves the cursor to the next
 * bucket (and the next closed bucket goes at once, oldest first), anything else schedules a
 * retry with exponential backoff and jitter. The secret is opened for one attempt and wiped. */
#include "share/share.h"
#include "alert/alert.h"
#include "gate/gate.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BODY_MAX (64 << 20)

static atomic_uint_fast64_t n_ok, n_failed;

void dtm_push_counts(uint64_t *ok, uint64_t *failed)
{
    *ok = atomic_load_explicit(&n_ok, memory_order_relaxed);
    *failed = atomic_load_explicit(&n_failed, memory_order_relaxed);
}

struct dtm_pusher {
    const struct dtm_conf *const *conf;
    struct dtm_dict *dict;
    struct dtm_periodic *clock;
    struct dtm_store *st;
    char owner[64]; /* this process, as lease holder */
};

/* What a round needs of each subscription to know whether it is due. */
struct due {
    char id[DTM_ID_MAX];
    int64_t next_bucket;
};
struct due_list {
    struct dtm_pusher *p;
    int64_t now, settle;
    struct due *v;
    size_t n, cap;
};

static bool stopping(struct dtm_pusher *p)
{
    return dtm_periodic_stopping(p->clock);
}

static bool closed(const struct dtm_subscription *sub, int64_t bucket, int64_t now, int64_t settle)
{
    int64_t len = dtm_sub_interval_us(sub->interval);
    return len && bucket + len + settle <= now;
}

static int collect(void *ctx, const struct dtm_subscription *sub)
{
    struct due_list *l = ctx;
    if (!closed(sub, sub->next_bucket, l->now, l->settle) || sub->next_attempt_at > l->now ||
        (sub->lease_until >= l->now && strcmp(sub->lease_owner, l->p->owner)))
        return DTM_OK;
    if (dtm_array_reserve(&l->v, l->n, &l->cap, sizeof(*l->v)))
        return DTM_ENOMEM;
    snprintf(l->v[l->n].id, sizeof(l->v[0].id), "%s", sub->id);
    l->v[l->n++].next_bucket = sub->next_bucket;
    return DTM_OK;
}

/* The wait before the next attempt after `failures` failed ones: retry_initial doubled per
 * failure, at most retry_max, with "equal jitter" (half of it fixed, half random) so that the
 * retries of many subscriptions to one receiver spread out. */
static int64_t backoff_us(const struct dtm_conf *c, int64_t failures)
{
    int64_t s = c->sub_retry_initial * 1000000, max = c->sub_retry_max * 1000000;
    uint32_t r = 0;
    for (int64_t i = 1; i < failures && s < max; i++)
        s *= 2;
    s = DTM_MIN(s, max);
    if (dtm_random(&r, sizeof(r)))
        r = (uint32_t)dtm_mono_us();
    return s / 2 + (int64_t)((double)(s / 2) * ((double)r / 4294967296.0));
}

/* Why a subscription cannot be delivered now (its dataset left the dictionary, its grant was
 * revoked, its secret does not open): NULL when it can. */
static const char *blocked(struct dtm_pusher *p, const struct dtm_subscription *sub,
                           const struct dtm_dataset **ds)
{
    int rc;
    if (!(*ds = dtm_dict_get(p->dict, dtm_str_c(sub->dataset))))
        return "the dataset is no longer defined";
    rc = p->st->ops->grant_check(p->st, sub->system_code, sub->dataset);
    if (rc == DTM_ENOTFOUND)
        return "the dataset is no longer granted to the system";
    if (rc)
        return "the store could not check the grant";
    return NULL;
}

static int open_secret(struct dtm_pusher *p, const struct dtm_subscription *sub,
                       struct dtm_buf *out)
{
    char aad[DTM_ID_MAX + 16];
    int n = snprintf(aad, sizeof(aad), "subscription:%s", sub->id);
    int rc = dtm_datakey_open(dtm_datakeys_get(*p->conf), aad, (size_t)n, sub->secret,
                              sub->secret_len, out);
    return rc ? rc : dtm_buf_addch(out, '\0');
}

/* Records the attempt and its outcome; DTM_OK when stored. */
static int record(struct dtm_pusher *p, const struct dtm_subscription *sub, bool ok, long status,
                  const char *why, int64_t ms)
{
    const struct dtm_conf *c = *p->conf;
    struct dtm_store *st = p->st;
    struct dtm_subscription_delivery d;
    int64_t now = dtm_now_us(), len = dtm_sub_interval_us(sub->interval);
    int rc;
    memset(&d, 0, sizeof(d));
    snprintf(d.subscription_id, sizeof(d.subscription_id), "%s", sub->id);
    d.bucket = sub->next_bucket;
    d.attempt = sub->attempts + 1;
    d.status = status;
    d.ok = ok;
    snprintf(d.error, sizeof(d.error), "%s", ok ? "" : why);
    d.at = now;
    d.ms = ms;
    if ((rc = st->ops->begin(st)) == DTM_OK &&
        (rc = st->ops->subscription_delivery_add(st, &d)) == DTM_OK &&
        (rc = st->ops->subscription_done(
             st, sub->id, p->owner, sub->next_bucket, ok, sub->next_bucket + len,
             now + backoff_us(c, sub->attempts + 1), d.error, now)) == DTM_OK)
        rc = st->ops->commit(st);
    if (rc) {
        st->ops->rollback(st);
        dtm_logf(DTM_LOG_WARN, "subscription delivery outcome not stored",
                 "\"subscription\":\"%s\",\"error\":\"%s\"", sub->id, dtm_rc_name(rc));
    }
    return rc;
}

/* One attempt at the subscription's next bucket (the lease is held). True when delivered. */
static bool attempt(struct dtm_pusher *p, const struct dtm_subscription *sub)
{
    const struct dtm_conf *c = *p->conf;
    const struct dtm_dataset *ds = NULL;
    struct dtm_buf body, secret;
    char why[160] = "", label[64], id[DTM_ID_MAX + 24], h_id[DTM_ID_MAX + 48], h_sub[96], h_ts[48];
    const char *hdrs[4] = {h_id, h_sub, h_ts, "X-DTM-Event: subscription.bucket"};
    const char *stop = blocked(p, sub, &ds);
    int64_t t0 = dtm_mono_us(), now = dtm_now_us();
    long status = 0;
    int rc = DTM_EIO;
    dtm_buf_init(&body, BODY_MAX);
    dtm_buf_init(&secret, DTM_SUB_SECRET_MAX + DTM_SEAL_OVERHEAD + 16);
    if (stop)
        snprintf(why, sizeof(why), "%s", stop);
    else if (open_secret(p, sub, &secret))
        snprintf(why, sizeof(why), "the subscription's secret cannot be opened");
    else if ((rc = dtm_sub_payload(p->st, ds, sub, sub->next_bucket, now, &body)))
        snprintf(why, sizeof(why), "the aggregates could not be computed (%s)", dtm_rc_name(rc));
    else {
        dtm_sub_delivery_id(sub, sub->next_bucket, id, sizeof(id));
        snprintf(h_id, sizeof(h_id), "X-DTM-Delivery: %s", id);
        snprintf(h_sub, sizeof(h_sub), "X-DTM-Subscription: %s", sub->id);
        snprintf(h_ts, sizeof(h_ts), "X-DTM-Timestamp: %lld", (long long)(now / 1000000));
        rc = dtm_webhook_post(&(struct dtm_webhook){.url = sub->url,
                                                    .secret = secret.p,
                                                    .body = body.p,
                                                    .n = body.n,
                                                    .headers = hdrs,
                                                    .nheaders = DTM_ARRAY_LEN(hdrs),
                                                    .timeout = c->sub_timeout,
                                                    .user_agent = "dtm-subscription/" DTM_VERSION,
                                                    .refuse_private = !c->sub_allow_private},
                              &status, why, sizeof(why));
    }
    if (secret.p)
        OPENSSL_cleanse(secret.p, secret.n);
    dtm_buf_free(&secret);
    dtm_buf_free(&body);
    /* the reason goes into JSON log lines and the delivery log as is: keep it plain */
    for (char *q = why; *q; q++)
        if (*q == '"' || *q == '\\' || (unsigned char)*q < 0x20)
            *q = '\'';
    dtm_bucket_label(!strcmp(sub->interval, "day") ? DTM_I_DAY : DTM_I_HOUR, sub->next_bucket,
                     label, sizeof(label));
    if (rc == DTM_OK) {
        atomic_fetch_add_explicit(&n_ok, 1, memory_order_relaxed);
        dtm_logf(DTM_LOG_INFO, "subscription bucket delivered",
                 "\"subscription\":\"%s\",\"bucket\":\"%s\",\"attempt\":%lld,\"status\":%ld",
                 sub->id, label, (long long)sub->attempts + 1, status);
    } else {
        atomic_fetch_add_explicit(&n_failed, 1, memory_order_relaxed);
        dtm_logf(DTM_LOG_WARN, "subscription delivery failed; will retry",
                 "\"subscription\":\"%s\",\"bucket\":\"%s\",\"attempt\":%lld,\"status\":%ld,"
                 "\"error\":\"%s\"",
                 sub->id, label, (long long)sub->attempts + 1, status, why);
    }
    return record(p, sub, rc == DTM_OK, status, why, (dtm_mono_us() - t0) / 1000) == DTM_OK &&
           rc == DTM_OK;
}

/* Buckets of one subscription sent in a round at most: catching up after a long downtime goes
 * on in the next rounds, and the other subscriptions get their turn in between. */
#define ROUND_BUCKETS 64

/* Delivers what is due of one subscription: its closed buckets in order while they succeed. */
static void deliver(struct dtm_pusher *p, const struct due *d, struct dtm_subscription *sub)
{
    int64_t bucket = d->next_bucket;
    for (int n = 0; n < ROUND_BUCKETS && !stopping(p); n++) {
        const struct dtm_conf *c = *p->conf;
        int64_t now = dtm_now_us();
        if (p->st->ops->subscription_claim(p->st, d->id, bucket, p->owner, now,
                                           now + (2 * c->sub_timeout + 60) * 1000000) != DTM_OK ||
            p->st->ops->subscription_get(p->st, d->id, sub) != DTM_OK || sub->next_bucket != bucket)
            return; /* another node has it, or it was deleted */
        if (!attempt(p, sub))
            return;
        bucket += dtm_sub_interval_us(sub->interval);
        if (!closed(sub, bucket, dtm_now_us(), c->sub_settle_seconds * 1000000))
            return;
    }
}

static struct dtm_store *store_of(struct dtm_pusher *p)
{
    char err[256];
    if (!p->st && dtm_store_open(*p->conf, &p->st, err, sizeof(err)) != DTM_OK) {
        dtm_log(DTM_LOG_WARN, "subscriptions: cannot open the store", NULL);
        p->st = NULL;
    }
    return p->st;
}

static void round_once(struct dtm_pusher *p)
{
    struct due_list l = {.p = p, .now = dtm_now_us()};
    struct dtm_subscription *sub;
    l.settle = (*p->conf)->sub_settle_seconds * 1000000;
    if (!store_of(p))
        return;
    if (p->st->ops->subscription_list(p->st, NULL, collect, &l) == DTM_OK &&
        (sub = malloc(sizeof(*sub)))) {
        for (size_t i = 0; i < l.n && !stopping(p); i++)
            deliver(p, &l.v[i], sub);
        OPENSSL_cleanse(sub, sizeof(*sub));
        free(sub);
    }
    free(l.v);
}

static int64_t run(struct dtm_periodic *clock, void *arg)
{
    (void)clock;
    round_once(arg);
    return 1000000; /* a round a second, or at once when poked */
}

int dtm_push_start(const struct dtm_conf *const *conf, struct dtm_dict *dict,
                   struct dtm_pusher **out, char *err, size_t errsz)
{
    struct dtm_pusher *p;
    char host[64], rnd[24];
    int rc;
    *out = NULL;
    if (!(*conf)->sub_enabled)
        return DTM_OK;
    if (!(p = calloc(1, sizeof(*p)))) {
        snprintf(err, errsz, "out of memory");
        return DTM_ENOMEM;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errsz, "cannot initialise libcurl");
        free(p);
        return DTM_EIO;
    }
    p->conf = conf;
    p->dict = dict;
    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = '\0';
    if (dtm_random_token("", 6, rnd, sizeof(rnd)))
        snprintf(rnd, sizeof(rnd), "%lld", (long long)dtm_mono_us());
    snprintf(p->owner, sizeof(p->owner), "%.24s:%ld:%.16s", host, (long)getpid(), rnd);
    if ((rc = dtm_periodic_start("subscription delivery", 0, run, p, &p->clock, err, errsz))) {
        free(p);
        return rc;
    }
    *out = p;
    return DTM_OK;
}

void dtm_push_poke(struct dtm_pusher *p)
{
    if (p)
        dtm_periodic_wake(p->clock);
}

void dtm_push_stop(struct dtm_pusher *p)
{
    if (!p)
        return;
    dtm_periodic_stop(p->clock);
    if (p->st)
        p->st->ops->close(p->st);
    free(p);
}
