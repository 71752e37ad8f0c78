/* gate/ratelimit.c — T2.2: token buckets per connected system (by its tier), per source address
 * for unauthenticated calls, and per source address for failed authentications (so that key
 * guessing is throttled). The router (http/server.c) charges one token per request and turns
 * the answer into the RateLimit-* headers or a 429.
 *
 * A bucket is kept in its "virtual scheduling" form (GCRA, ATM Forum TM 4.0): one number, the
 * time at which it would be full again (tat). A request costs one emission interval
 * T = 1 s / rate; it passes when the bucket's debt after paying, tat' - now, is at most
 * burst × T. The same arithmetic as a token bucket holding burst tokens refilled at rate per
 * second, without a division or a floating-point number on the way, and an idle bucket
 * (tat <= now) is exactly a new one — so forgetting it loses nothing.
 *
 * Buckets live in a fixed table (RL_SHARDS × RL_SETS sets of RL_WAYS buckets, about 3 MB,
 * allocated once): a key maps to one set; a missing key takes a free way, else the way with the
 * smallest tat (the fullest bucket, usually an idle one). Each shard has its own mutex, held for
 * a few comparisons: MHD worker threads seldom wait for each other, and nothing is allocated
 * per request. Limits are passed in by the caller, so a SIGHUP reload changes them at once. */
#include "gate/gate.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define RL_SHARDS 64
#define RL_SETS 64 /* per shard */
#define RL_WAYS 8
#define NS 1000000000LL

struct rl_bucket {
    uint64_t h;   /* hash of kind and key; 0 = free way */
    int64_t tat;  /* ns (monotonic clock) at which the bucket is full again */
    int64_t t;    /* ns per request of the limit tat was computed with */
    uint8_t kind; /* enum dtm_rl_kind */
    uint8_t klen;
    char key[DTM_RL_KEY_MAX];
};

struct rl_shard {
    pthread_mutex_t lock;
    struct rl_bucket set[RL_SETS][RL_WAYS];
};

struct dtm_ratelimit {
    struct rl_shard shard[RL_SHARDS];
};

struct dtm_ratelimit *dtm_ratelimit_create(void)
{
    struct dtm_ratelimit *rl = calloc(1, sizeof(*rl));
    if (!rl)
        return NULL;
    for (size_t i = 0; i < RL_SHARDS; i++)
        pthread_mutex_init(&rl->shard[i].lock, NULL);
    return rl;
}

void dtm_ratelimit_destroy(struct dtm_ratelimit *rl)
{
    if (!rl)
        return;
    for (size_t i = 0; i < RL_SHARDS; i++)
        pthread_mutex_destroy(&rl->shard[i].lock);
    free(rl);
}

/* ns per request at a limit's rate */
static int64_t interval(const struct dtm_rl_limit *lim)
{
    int64_t rate = lim->rate > 0 ? lim->rate : 1;
    return NS / rate > 0 ? NS / rate : 1;
}

/* whole seconds, rounded up */
static int64_t ceil_s(int64_t ns)
{
    return ns <= 0 ? 0 : (ns + NS - 1) / NS;
}

bool dtm_rl_bucket_take(int64_t *tat, const struct dtm_rl_limit *lim, int64_t now, int64_t cost,
                        struct dtm_rl_answer *out)
{
    int64_t burst = lim->burst > 0 ? lim->burst : 1;
    int64_t t = interval(lim); /* emission interval */
    int64_t cap = burst * t;   /* the debt a full burst makes */
    int64_t base = *tat > now ? *tat : now;
    int64_t debt = base - now + (cost > 0 ? cost : 1) * t;
    out->limit = burst;
    if (debt > cap) {
        out->allowed = false;
        out->remaining = (cap - (base - now)) / t;
        if (out->remaining < 0)
            out->remaining = 0;
        out->reset_s = ceil_s(base - now);
        out->retry_after_s = ceil_s(debt - cap);
        if (out->retry_after_s < 1)
            out->retry_after_s = 1;
        return false;
    }
    out->allowed = true;
    out->retry_after_s = 0;
    if (cost > 0) {
        *tat = base + cost * t;
        out->remaining = (cap - debt) / t;
        out->reset_s = ceil_s(debt);
    } else {
        /* a look without paying: what a request would find */
        out->remaining = (cap - (base - now)) / t;
        out->reset_s = ceil_s(base - now);
    }
    return true;
}

/* FNV-1a over the kind and the key; never 0 (0 marks a free way) */
static uint64_t hash(enum dtm_rl_kind kind, const void *key, size_t n)
{
    const unsigned char *p = key;
    uint64_t h = 14695981039346656037ULL;
    h = (h ^ (uint64_t)kind) * 1099511628211ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h ? h : 1;
}

bool dtm_ratelimit_take(struct dtm_ratelimit *rl, enum dtm_rl_kind kind, const void *key,
                        size_t keylen, const struct dtm_rl_limit *lim, int64_t now, int64_t cost,
                        struct dtm_rl_answer *out)
{
    uint64_t h;
    int64_t t = interval(lim);
    struct rl_shard *sh;
    struct rl_bucket *set, *b = NULL, *victim = NULL;
    bool ok;
    if (keylen > DTM_RL_KEY_MAX)
        keylen = DTM_RL_KEY_MAX; /* system codes and addresses are shorter: never happens */
    h = hash(kind, key, keylen);
    sh = &rl->shard[h % RL_SHARDS];
    pthread_mutex_lock(&sh->lock);
    set = sh->set[(h / RL_SHARDS) % RL_SETS];
    for (size_t i = 0; i < RL_WAYS; i++) {
        struct rl_bucket *w = &set[i];
        if (w->h == h && w->kind == (uint8_t)kind && w->klen == keylen &&
            memcmp(w->key, key, keylen) == 0) {
            b = w;
            break;
        }
        if (!victim || (victim->h && (!w->h || w->tat < victim->tat)))
            victim = w;
    }
    if (!b) {
        if (cost <= 0) {
            /* a look at a bucket nobody paid into: it is full */
            int64_t fresh = 0;
            pthread_mutex_unlock(&sh->lock);
            return dtm_rl_bucket_take(&fresh, lim, now, 0, out);
        }
        b = victim;
        b->h = h;
        b->tat = 0;
        b->t = t;
        b->kind = (uint8_t)kind;
        b->klen = (uint8_t)keylen;
        memcpy(b->key, key, keylen);
    } else if (b->t != t) {
        /* the limit changed (a new tier, a reload): keep the requests owed, not the time */
        if (b->tat > now)
            b->tat = now + (b->tat - now) / b->t * t;
        b->t = t;
    }
    ok = dtm_rl_bucket_take(&b->tat, lim, now, cost, out);
    pthread_mutex_unlock(&sh->lock);
    return ok;
}

static const char *const tiers[] = {"bronze", "silver", "gold"};

bool dtm_rl_tier_valid(const char *name)
{
    for (size_t i = 0; i < DTM_ARRAY_LEN(tiers); i++)
        if (strcmp(name, tiers[i]) == 0)
            return true;
    return false;
}

void dtm_rl_tier_limit(const struct dtm_conf *c, const char *tier, struct dtm_rl_limit *out)
{
    if (!tier || !dtm_rl_tier_valid(tier))
        tier = c->ratelimit_default_tier;
    if (strcmp(tier, "bronze") == 0)
        *out = (struct dtm_rl_limit){c->ratelimit_bronze_rate, c->ratelimit_bronze_burst};
    else if (strcmp(tier, "gold") == 0)
        *out = (struct dtm_rl_limit){c->ratelimit_gold_rate, c->ratelimit_gold_burst};
    else
        *out = (struct dtm_rl_limit){c->ratelimit_silver_rate, c->ratelimit_silver_burst};
}
