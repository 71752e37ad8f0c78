/* alert/warn.c — the early-warning rules (T4.1) and their state: fixed-size, lock-striped,
 * set-associative tables of sliding windows, per-system baselines and known networks, and
 * known administrator addresses; the hooks called from the request path, the sign-in handler
 * and the connectivity evaluator; and the sweeping thread that ends quiet windows. Alerts go
 * only through the alert engine's queue (dtm_alert_raise / dtm_alert_clear, after the table's
 * stripe is unlocked). See warn.h for the rules. */
#include "alert/warn.h"
#include "alert/alert.h"
#include "store/store.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define US 1000000LL
#define SHARDS 16
#define WAYS 8
#define KEY_MAX 64 /* user names and system codes (DTM_USERNAME_MAX, DTM_CODE_MAX) */
#define NETS 16    /* networks remembered per system */
#define ADDRS 16   /* addresses remembered per administrator */

/* The rules' clock: monotonic, coarse (a few ms; a tenth of the cost of a precise read on the
 * request path). Every time of the rules' state is on it (the state lives in memory only). */
static int64_t now_us(void)
{
    struct timespec ts;
#ifdef CLOCK_MONOTONIC_COARSE
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
#else
    clock_gettime(CLOCK_MONOTONIC, &ts);
#endif
    return (int64_t)ts.tv_sec * US + ts.tv_nsec / 1000;
}

/* ---- addresses */

int dtm_warn_addr_parse(const char *text, struct dtm_warn_addr *out)
{
    struct in_addr a4;
    memset(out, 0, sizeof(*out));
    if (!text)
        return DTM_EINVAL;
    if (inet_pton(AF_INET, text, &a4) == 1) {
        out->b[10] = out->b[11] = 0xff;
        memcpy(out->b + 12, &a4, 4);
        out->v4 = true;
        return DTM_OK;
    }
    if (inet_pton(AF_INET6, text, out->b) == 1) {
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        out->v4 = memcmp(out->b, mapped, sizeof(mapped)) == 0;
        return DTM_OK;
    }
    return DTM_EINVAL;
}

int dtm_warn_addr_from_sockaddr(const struct sockaddr *sa, struct dtm_warn_addr *out)
{
    memset(out, 0, sizeof(*out));
    if (sa && sa->sa_family == AF_INET) {
        out->b[10] = out->b[11] = 0xff;
        memcpy(out->b + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        out->v4 = true;
        return DTM_OK;
    }
    if (sa && sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        memcpy(out->b, a->s6_addr, 16);
        out->v4 = IN6_IS_ADDR_V4MAPPED(a);
        return DTM_OK;
    }
    return DTM_EINVAL;
}

void dtm_warn_addr_text(const struct dtm_warn_addr *a, char *out, size_t outsz)
{
    char buf[INET6_ADDRSTRLEN] = "";
    if (a->v4)
        inet_ntop(AF_INET, a->b + 12, buf, sizeof(buf));
    else
        inet_ntop(AF_INET6, a->b, buf, sizeof(buf));
    snprintf(out, outsz, "%s", buf);
}

void dtm_warn_addr_network(const struct dtm_warn_addr *a, int prefix_v4, int prefix_v6,
                           struct dtm_warn_addr *out)
{
    int bits =
        a->v4 ? 96 + DTM_MIN(DTM_MAX(prefix_v4, 0), 32) : DTM_MIN(DTM_MAX(prefix_v6, 0), 128);
    *out = *a;
    for (int i = 0; i < 16; i++) {
        int keep = bits - i * 8;
        if (keep >= 8)
            continue;
        out->b[i] &= keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
    }
}

/* ---- the arithmetic */

static int64_t slot_width(int64_t width)
{
    return DTM_MAX(width / DTM_WARN_SLOTS, 1);
}

/* Moves the window to the slot of now, emptying the slots it passes. */
static void window_advance(struct dtm_warn_window *w, int64_t width, int64_t now)
{
    int64_t s = now / slot_width(width);
    if (s <= w->slot)
        return; /* same slot, or a clock that went back: counted in the newest */
    if (s - w->slot >= DTM_WARN_SLOTS) {
        memset(w->n, 0, sizeof(w->n));
    } else {
        for (int64_t i = w->slot + 1; i <= s; i++)
            w->n[i % DTM_WARN_SLOTS] = 0;
    }
    w->slot = s;
}

uint32_t dtm_warn_window_count(struct dtm_warn_window *w, int64_t width, int64_t now)
{
    uint32_t sum = 0;
    window_advance(w, width, now);
    for (int i = 0; i < DTM_WARN_SLOTS; i++)
        sum += w->n[i];
    return sum;
}

uint32_t dtm_warn_window_add(struct dtm_warn_window *w, int64_t width, int64_t now, uint32_t k)
{
    uint32_t *n;
    window_advance(w, width, now);
    n = &w->n[w->slot % DTM_WARN_SLOTS];
    *n = *n > UINT32_MAX - k ? UINT32_MAX : *n + k;
    return dtm_warn_window_count(w, width, now);
}

void dtm_warn_baseline_fold(struct dtm_warn_baseline *b, double x, double alpha)
{
    alpha = alpha <= 0 ? 0.001 : alpha > 1 ? 1 : alpha;
    if (b->buckets == 0) {
        b->mean = x;
        b->dev = 0;
    } else {
        double d = fabs(x - b->mean);
        b->mean += alpha * (x - b->mean);
        b->dev += alpha * (d - b->dev);
    }
    b->buckets++;
}

double dtm_warn_threshold(const struct dtm_warn_baseline *b, double factor, int64_t floor,
                          int64_t warmup)
{
    double t;
    if (b->buckets < warmup)
        return INFINITY;
    t = factor * (b->mean + 2 * b->dev);
    return t < (double)floor ? (double)floor : t;
}

/* ---- fixed-size, lock-striped, set-associative tables */

/* Every slot starts with this; the rule's state follows (stride bytes per slot). */
struct head {
    uint64_t h;      /* 0 = empty */
    int64_t touched; /* monotonic µs */
    bool firing;     /* an alert is open for this key (raised, not yet cleared) */
    uint8_t klen;
    char key[KEY_MAX];
};

struct table {
    size_t stride, sets; /* bytes per slot, sets per shard */
    unsigned char *mem;
    pthread_mutex_t mu[SHARDS];
};

static int table_init(struct table *t, size_t payload, size_t slots_per_shard)
{
    t->stride = (sizeof(struct head) + payload + 15) & ~(size_t)15;
    t->sets = 1; /* a power of two: the set is a mask of the hash */
    while (t->sets * 2 * WAYS <= slots_per_shard)
        t->sets *= 2;
    t->mem = calloc(SHARDS * t->sets * WAYS, t->stride);
    if (!t->mem)
        return DTM_ENOMEM;
    for (int i = 0; i < SHARDS; i++)
        pthread_mutex_init(&t->mu[i], NULL);
    return DTM_OK;
}

static void table_free(struct table *t)
{
    if (!t->mem)
        return;
    for (int i = 0; i < SHARDS; i++)
        pthread_mutex_destroy(&t->mu[i]);
    free(t->mem);
    t->mem = NULL;
}

static struct head *slot_at(struct table *t, size_t shard, size_t set, size_t way)
{
    return (struct head *)(void *)(t->mem + ((shard * t->sets + set) * WAYS + way) * t->stride);
}

static void *payload(struct head *h)
{
    return (unsigned char *)h + sizeof(struct head);
}

static uint64_t hash_seed;

/* FNV-1a from a per-process random seed, never 0. */
static uint64_t key_hash(const void *key, size_t n)
{
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ULL ^ hash_seed;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 29;
    return h ? h : 1;
}

/* An entry evicted while its alert was open: cleared after the stripe is unlocked. */
struct evicted {
    bool any;
    uint8_t klen;
    char key[KEY_MAX];
};

/* Finds (create: or makes) the slot of key and returns it with its stripe locked (*shard: which
 * to unlock), or NULL (unlocked) when absent and not created. A new slot is zeroed; the least
 * recently touched of its set is evicted, one without an open alert first. */
static struct head *table_get(struct table *t, const void *key, size_t klen, bool create,
                              int64_t now, size_t *shard, struct evicted *ev)
{
    uint64_t h;
    size_t set;
    struct head *victim = NULL;
    if (klen == 0 || klen > KEY_MAX)
        return NULL;
    h = key_hash(key, klen);
    *shard = h % SHARDS;
    set = (size_t)(h / SHARDS) & (t->sets - 1);
    pthread_mutex_lock(&t->mu[*shard]);
    for (size_t i = 0; i < WAYS; i++) {
        struct head *s = slot_at(t, *shard, set, i);
        if (s->h == h && s->klen == klen && memcmp(s->key, key, klen) == 0) {
            s->touched = now;
            return s;
        }
        if (!victim ||
            (victim->h && (!s->h || (s->firing == victim->firing ? s->touched < victim->touched
                                                                 : victim->firing))))
            victim = s;
    }
    if (!create) {
        pthread_mutex_unlock(&t->mu[*shard]);
        return NULL;
    }
    if (victim->h && victim->firing && ev) {
        ev->any = true;
        ev->klen = victim->klen;
        memcpy(ev->key, victim->key, victim->klen);
    }
    memset(victim, 0, t->stride);
    victim->h = h;
    victim->klen = (uint8_t)klen;
    memcpy(victim->key, key, klen);
    victim->touched = now;
    return victim;
}

/* ---- the module */

struct sysnet {
    struct dtm_warn_addr net;
    int64_t first, last; /* µs (now_us) */
    int64_t saved;       /* the last written to the store (0 = not yet) */
};

/* A connected system: its traffic buckets and baselines, its networks. */
struct sysstate {
    int64_t bucket;     /* index of the current bucket (now_us / spike_bucket); 0 = none yet */
    int64_t bucket_end; /* when it ends (µs): no division per request until then */
    uint32_t req, err, err5;
    struct dtm_warn_baseline req_b, err_b;
    double req_thr, err_thr; /* thresholds of the current bucket */
    bool req_firing, err_firing;
    int64_t watched_since; /* µs (now_us) of its first call seen */
    uint8_t last_peer[16]; /* the address of its latest call checked, and when (µs): the */
    int64_t last_peer_at;  /* same address again within a second is not looked up again */
    uint8_t nnets;
    struct sysnet nets[NETS];
};

struct admin {
    uint8_t n;
    struct {
        struct dtm_warn_addr a;
        int64_t last; /* µs (now_us) */
    } addr[ADDRS];
};

struct dtm_warn {
    const struct dtm_conf *const *conf;
    struct dtm_alerts *alerts;
    struct table account;       /* user name → dtm_warn_window of failed logins */
    struct table ipfail;        /* address → dtm_warn_window of failed authentications */
    struct table denied;        /* address → dtm_warn_window of 401/403 answers */
    struct table systems;       /* system code → sysstate */
    struct table admins;        /* user name → admin */
    struct dtm_periodic *clock; /* the sweeper: a sweep a second */
    int64_t next_save;          /* the usual networks are written then (now_us) */
    struct dtm_store *st;       /* the sweeper's own connection (networks), opened on first need */
};

/* One alert to raise or clear once the stripe is unlocked. */
struct event {
    bool raise;
    const char *rule;
    char key[160];
    enum dtm_alert_severity severity;
    char title[192];
    char detail[768]; /* user names are escaped into it: room for the longest */
};

static void emit(struct dtm_warn *w, const struct event *e)
{
    if (e->raise)
        dtm_alert_raise(w->alerts, e->rule, e->key, e->severity, e->title, e->detail);
    else
        dtm_alert_clear(w->alerts, e->rule, e->key);
}

static void ev_clear(struct event *e, const char *rule, const char *key, size_t klen)
{
    memset(e, 0, sizeof(*e));
    e->rule = rule;
    snprintf(e->key, sizeof(e->key), "%.*s", (int)klen, key);
}

/* The JSON of a string member's value (bounded, escaped). */
static void json_str(char *out, size_t outsz, const char *s)
{
    struct dtm_buf b;
    dtm_buf_init(&b, 256);
    dtm_buf_json_strc(&b, s);
    snprintf(out, outsz, "%s", b.err || !b.p ? "\"\"" : b.p);
    dtm_buf_free(&b);
}

/* The key of an address-keyed window (16 bytes) as alert key (its text). */
static void addr_key_text(const char *key, size_t klen, char *out, size_t outsz)
{
    struct dtm_warn_addr a = {0};
    if (klen != 16) {
        snprintf(out, outsz, "-");
        return;
    }
    memcpy(a.b, key, 16);
    a.v4 = memcmp(a.b, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0;
    dtm_warn_addr_text(&a, out, outsz);
}

/* Counts one event in the window of key in t (an entry evicted meanwhile with its alert open has
 * that alert cleared); returns true when the count reaches limit and no alert was open (the
 * caller raises it). */
static bool window_hit(struct dtm_warn *w, struct table *t, const void *key, size_t klen,
                       int64_t width_s, int64_t limit, uint32_t *count, const char *clear_rule,
                       bool key_is_addr)
{
    struct evicted ev = {0};
    size_t shard;
    int64_t now = now_us();
    struct head *h = table_get(t, key, klen, true, now, &shard, &ev);
    bool fire = false;
    if (!h)
        return false;
    *count = dtm_warn_window_add(payload(h), width_s * US, now, 1);
    if (!h->firing && *count >= (uint64_t)limit) {
        h->firing = true;
        fire = true;
    }
    pthread_mutex_unlock(&t->mu[shard]);
    if (ev.any) { /* no longer watched: its alert ends with it */
        struct event e;
        char k[KEY_MAX + 1];
        if (key_is_addr)
            addr_key_text(ev.key, ev.klen, k, sizeof(k));
        else
            snprintf(k, sizeof(k), "%.*s", (int)ev.klen, ev.key);
        ev_clear(&e, clear_rule, k, strlen(k));
        emit(w, &e);
    }
    return fire;
}

static void raise_window(struct dtm_warn *w, const char *rule, const char *key,
                         enum dtm_alert_severity sev, const char *title, const char *what,
                         uint32_t count, int64_t window)
{
    struct event e = {.raise = true, .rule = rule, .severity = sev};
    char k[400];
    snprintf(e.key, sizeof(e.key), "%s", key);
    snprintf(e.title, sizeof(e.title), "%s", title);
    json_str(k, sizeof(k), key);
    snprintf(e.detail, sizeof(e.detail), "{\"%s\":%s,\"count\":%u,\"window_s\":%lld}", what, k,
             count, (long long)window);
    emit(w, &e);
}

/* T4.1: failed authentications of an address (logins, keys, tokens, client secrets). */
static void ip_failure(struct dtm_warn *w, const struct dtm_conf *c, const struct dtm_warn_addr *a)
{
    uint32_t n;
    char ip[INET6_ADDRSTRLEN + 1], title[160];
    if (!window_hit(w, &w->ipfail, a->b, 16, c->warn_ip_window, c->warn_ip_failures, &n,
                    "auth.brute_force_ip", true))
        return;
    dtm_warn_addr_text(a, ip, sizeof(ip));
    snprintf(title, sizeof(title), "Brute force from %s: %u failed authentications in %llds", ip, n,
             (long long)c->warn_ip_window);
    raise_window(w, "auth.brute_force_ip", ip, DTM_ALERT_CRITICAL, title, "address", n,
                 c->warn_ip_window);
}

/* The current bucket of a system: closes the buckets passed since (folding them into the
 * baselines, empty ones as zeros) and, when a spike is open and the bucket just closed was not
 * one, fills the clears. */
static void sys_roll(struct sysstate *s, const struct dtm_conf *c, int64_t bucket, bool *clear_req,
                     bool *clear_err)
{
    double a = c->warn_spike_alpha;
    int64_t gap;
    if (s->bucket == 0) {
        s->bucket = bucket;
        s->bucket_end = (bucket + 1) * c->warn_spike_bucket * US;
        s->req_thr = dtm_warn_threshold(&s->req_b, (double)c->warn_spike_factor,
                                        c->warn_spike_floor, c->warn_spike_warmup);
        s->err_thr = dtm_warn_threshold(&s->err_b, (double)c->warn_spike_factor,
                                        c->warn_error_floor, c->warn_spike_warmup);
        return;
    }
    if (bucket <= s->bucket)
        return;
    s->bucket_end = (bucket + 1) * c->warn_spike_bucket * US;
    if (s->req_firing && (double)s->req <= s->req_thr) {
        s->req_firing = false;
        *clear_req = true;
    }
    if (s->err_firing && (double)s->err <= s->err_thr) {
        s->err_firing = false;
        *clear_err = true;
    }
    dtm_warn_baseline_fold(&s->req_b, s->req, a);
    dtm_warn_baseline_fold(&s->err_b, s->err, a);
    /* empty buckets: a few hundred folds bring any baseline to nothing */
    gap = DTM_MIN(bucket - s->bucket - 1, 512);
    for (int64_t i = 0; i < gap; i++) {
        dtm_warn_baseline_fold(&s->req_b, 0, a);
        dtm_warn_baseline_fold(&s->err_b, 0, a);
    }
    if (gap > 0) { /* a spike ends with a silent bucket */
        if (s->req_firing)
            *clear_req = true;
        if (s->err_firing)
            *clear_err = true;
        s->req_firing = s->err_firing = false;
    }
    s->req = s->err = s->err5 = 0;
    s->bucket = bucket;
    s->req_thr = dtm_warn_threshold(&s->req_b, (double)c->warn_spike_factor, c->warn_spike_floor,
                                    c->warn_spike_warmup);
    s->err_thr = dtm_warn_threshold(&s->err_b, (double)c->warn_spike_factor, c->warn_error_floor,
                                    c->warn_spike_warmup);
}

/* Whether net is one of the system's networks (refreshing it), forgetting those not seen for
 * history_days. Adds it when not. */
static bool sys_network_known(struct sysstate *s, const struct dtm_warn_addr *net, int64_t now,
                              int64_t history_us)
{
    size_t oldest = 0;
    for (size_t i = 0; i < s->nnets;) {
        if (now - s->nets[i].last > history_us) {
            s->nets[i] = s->nets[--s->nnets];
            continue;
        }
        if (memcmp(s->nets[i].net.b, net->b, 16) == 0) {
            s->nets[i].last = now;
            return true;
        }
        if (s->nets[i].last < s->nets[oldest].last)
            oldest = i;
        i++;
    }
    if (s->nnets == NETS) /* full: the least recently used goes */
        s->nets[oldest] = s->nets[--s->nnets];
    s->nets[s->nnets++] = (struct sysnet){*net, now, now, 0};
    return false;
}

/* T4.1: per system — request and error spikes against its baseline; calls from an unusual
 * network. */
static void system_request(struct dtm_warn *w, const struct dtm_conf *c, const char *code,
                           const struct dtm_warn_addr *peer, int status)
{
    struct evicted ev = {0};
    struct event e[4];
    size_t shard, ne = 0, klen = strnlen(code, KEY_MAX + 1);
    int64_t mono = now_us(), now = mono;
    struct head *h = table_get(&w->systems, code, klen, true, mono, &shard, &ev);
    struct sysstate *s;
    bool clear_req = false, clear_err = false;
    if (!h)
        return;
    s = payload(h);
    if (mono >= s->bucket_end)
        sys_roll(s, c, mono / (c->warn_spike_bucket * US), &clear_req, &clear_err);
    if (clear_req)
        ev_clear(&e[ne++], "traffic.spike", code, klen);
    if (clear_err)
        ev_clear(&e[ne++], "errors.spike", code, klen);
    s->req++;
    if (status >= 400)
        s->err++;
    if (status >= 500)
        s->err5++;
    if (!s->req_firing && (double)s->req > s->req_thr) {
        struct event *x = &e[ne++];
        memset(x, 0, sizeof(*x));
        s->req_firing = true;
        *x = (struct event){.raise = true, .rule = "traffic.spike", .severity = DTM_ALERT_WARNING};
        snprintf(x->key, sizeof(x->key), "%s", code);
        snprintf(x->title, sizeof(x->title),
                 "Traffic spike from system %s: more than %.0f requests in %llds (baseline %.1f)",
                 code, s->req_thr, (long long)c->warn_spike_bucket, s->req_b.mean);
        snprintf(x->detail, sizeof(x->detail),
                 "{\"system\":\"%s\",\"requests\":%u,\"threshold\":%.1f,\"baseline\":%.2f,"
                 "\"deviation\":%.2f,\"bucket_s\":%lld}",
                 code, s->req, s->req_thr, s->req_b.mean, s->req_b.dev,
                 (long long)c->warn_spike_bucket);
    }
    if (status >= 400 && !s->err_firing && (double)s->err > s->err_thr) {
        struct event *x = &e[ne++];
        s->err_firing = true;
        *x = (struct event){.raise = true, .rule = "errors.spike", .severity = DTM_ALERT_WARNING};
        snprintf(x->key, sizeof(x->key), "%s", code);
        snprintf(x->title, sizeof(x->title),
                 "Error spike of system %s: more than %.0f failed requests in %llds (baseline "
                 "%.1f)",
                 code, s->err_thr, (long long)c->warn_spike_bucket, s->err_b.mean);
        snprintf(x->detail, sizeof(x->detail),
                 "{\"system\":\"%s\",\"errors\":%u,\"errors_5xx\":%u,\"threshold\":%.1f,"
                 "\"baseline\":%.2f,\"deviation\":%.2f,\"bucket_s\":%lld}",
                 code, s->err, s->err5, s->err_thr, s->err_b.mean, s->err_b.dev,
                 (long long)c->warn_spike_bucket);
    }
    if (peer && (mono - s->last_peer_at >= US || memcmp(s->last_peer, peer->b, 16) != 0)) {
        struct dtm_warn_addr net;
        bool had_history;
        dtm_warn_addr_network(peer, (int)c->warn_network_prefix_v4, (int)c->warn_network_prefix_v6,
                              &net);
        if (!s->watched_since)
            s->watched_since = now;
        memcpy(s->last_peer, peer->b, 16);
        s->last_peer_at = mono;
        had_history = s->nnets > 0 && now - s->watched_since >= c->warn_network_learning * US;
        if (!sys_network_known(s, &net, now, c->warn_network_history_days * 86400 * US) &&
            had_history) {
            struct event *x = &e[ne++];
            char ip[INET6_ADDRSTRLEN + 1], nt[INET6_ADDRSTRLEN + 1];
            int plen = peer->v4 ? (int)c->warn_network_prefix_v4 : (int)c->warn_network_prefix_v6;
            dtm_warn_addr_text(peer, ip, sizeof(ip));
            dtm_warn_addr_text(&net, nt, sizeof(nt));
            *x = (struct event){
                .raise = true, .rule = "key.unusual_network", .severity = DTM_ALERT_WARNING};
            snprintf(x->key, sizeof(x->key), "%s", code);
            snprintf(x->title, sizeof(x->title),
                     "System %s called from an unusual network %s/%d (address %s)", code, nt, plen,
                     ip);
            snprintf(x->detail, sizeof(x->detail),
                     "{\"system\":\"%s\",\"address\":\"%s\",\"network\":\"%s/%d\","
                     "\"known_networks\":%u,\"history_days\":%lld}",
                     code, ip, nt, plen, (unsigned)s->nnets - 1,
                     (long long)c->warn_network_history_days);
        }
    }
    pthread_mutex_unlock(&w->systems.mu[shard]);
    if (ev.any) {
        struct event x;
        ev_clear(&x, "traffic.spike", ev.key, ev.klen);
        emit(w, &x);
        ev_clear(&x, "errors.spike", ev.key, ev.klen);
        emit(w, &x);
    }
    for (size_t i = 0; i < ne; i++)
        emit(w, &e[i]);
}

void dtm_warn_request(struct dtm_warn *w, const struct dtm_warn_request *rq)
{
    const struct dtm_conf *c;
    struct dtm_warn_addr peer;
    bool have_peer;
    if (!w || !rq)
        return;
    c = *w->conf;
    if (!c->warn_enabled)
        return;
    have_peer = dtm_warn_addr_from_sockaddr(rq->peer, &peer) == DTM_OK;
    /* system codes are [A-Za-z0-9_-] (store): safe in the alerts' JSON as they are */
    if (rq->system && rq->system[0])
        system_request(w, c, rq->system, have_peer ? &peer : NULL, rq->status);
    if (!have_peer)
        return;
    if (rq->auth_failure)
        ip_failure(w, c, &peer);
    if (rq->status == 401 || rq->status == 403) {
        uint32_t n;
        char ip[INET6_ADDRSTRLEN + 1], title[160];
        if (!window_hit(w, &w->denied, peer.b, 16, c->warn_denied_window, c->warn_denied_burst, &n,
                        "http.denied_burst", true))
            return;
        dtm_warn_addr_text(&peer, ip, sizeof(ip));
        snprintf(title, sizeof(title),
                 "Burst of denied requests from %s: %u answers 401/403 in %llds", ip, n,
                 (long long)c->warn_denied_window);
        raise_window(w, "http.denied_burst", ip, DTM_ALERT_WARNING, title, "address", n,
                     c->warn_denied_window);
    }
}

/* Records that username signed in from a at `at` (µs, now_us); *first: no address was known
 * for them. Returns whether a was known. */
static bool admin_record(struct dtm_warn *w, const char *username, const struct dtm_warn_addr *a,
                         int64_t at, bool *first)
{
    size_t shard, klen = strnlen(username, KEY_MAX + 1), oldest = 0;
    struct head *h = table_get(&w->admins, username, klen, true, now_us(), &shard, NULL);
    struct admin *ad;
    bool known = false;
    *first = true;
    if (!h)
        return true; /* not a name we keep: nothing to say */
    ad = payload(h);
    *first = ad->n == 0;
    for (size_t i = 0; i < ad->n; i++) {
        if (memcmp(ad->addr[i].a.b, a->b, 16) == 0) {
            ad->addr[i].last = DTM_MAX(ad->addr[i].last, at);
            known = true;
            break;
        }
        if (ad->addr[i].last < ad->addr[oldest].last)
            oldest = i;
    }
    if (!known) {
        if (ad->n == ADDRS)
            ad->addr[oldest] = ad->addr[--ad->n];
        ad->addr[ad->n].a = *a;
        ad->addr[ad->n++].last = at;
    }
    pthread_mutex_unlock(&w->admins.mu[shard]);
    return known;
}

/* T4.1: an administrator signing in from an address not seen for them before. */
static void admin_login(struct dtm_warn *w, const char *username, const struct dtm_warn_addr *a)
{
    bool first;
    if (!admin_record(w, username, a, now_us(), &first) && !first) {
        struct event e = {
            .raise = true, .rule = "auth.admin_new_address", .severity = DTM_ALERT_WARNING};
        char ip[INET6_ADDRSTRLEN + 1], u[400];
        dtm_warn_addr_text(a, ip, sizeof(ip));
        json_str(u, sizeof(u), username);
        /* one alert per administrator and address */
        snprintf(e.key, sizeof(e.key), "%s@%s", username, ip);
        snprintf(e.title, sizeof(e.title), "Administrator %.64s signed in from a new address %s",
                 username, ip);
        snprintf(e.detail, sizeof(e.detail), "{\"username\":%s,\"address\":\"%s\"}", u, ip);
        emit(w, &e);
    }
}

void dtm_warn_login(struct dtm_warn *w, const char *username, bool known, const char *role,
                    const char *ip, bool ok)
{
    const struct dtm_conf *c;
    struct dtm_warn_addr a;
    bool have_addr;
    if (!w || !username)
        return;
    c = *w->conf;
    if (!c->warn_enabled)
        return;
    have_addr = dtm_warn_addr_parse(ip, &a) == DTM_OK;
    if (ok) {
        if (have_addr && known && role && strcmp(role, "admin") == 0 && c->warn_admin_new_address)
            admin_login(w, username, &a);
        return;
    }
    if (have_addr)
        ip_failure(w, c, &a);
    /* a name that is no account is not written down: it may be a password typed in the wrong
     * field (the address rule counts it) */
    if (known) {
        uint32_t n;
        size_t klen = strnlen(username, KEY_MAX + 1);
        char title[192];
        if (klen > KEY_MAX ||
            !window_hit(w, &w->account, username, klen, c->warn_account_window,
                        c->warn_account_failures, &n, "auth.brute_force_account", false))
            return;
        snprintf(title, sizeof(title), "Brute force on account %.64s: %u failed logins in %llds",
                 username, n, (long long)c->warn_account_window);
        raise_window(w, "auth.brute_force_account", username, DTM_ALERT_CRITICAL, title, "username",
                     n, c->warn_account_window);
    }
}

void dtm_warn_system_status(struct dtm_warn *w, const char *code, const char *was, const char *now,
                            int64_t last_seen)
{
    const struct dtm_conf *c;
    if (!w || !code || !was || !now)
        return;
    c = *w->conf;
    if (!c->warn_enabled || !c->warn_silent)
        return;
    if (strcmp(now, "offline") == 0) {
        struct event e = {.raise = true, .rule = "system.silent", .severity = DTM_ALERT_WARNING};
        char ts[40] = "";
        if (last_seen > 0)
            dtm_time_fmt(last_seen, ts, sizeof(ts));
        snprintf(e.key, sizeof(e.key), "%s", code);
        snprintf(e.title, sizeof(e.title),
                 "System %s is silent: nothing received for more than %llds", code,
                 (long long)c->online_within);
        snprintf(e.detail, sizeof(e.detail),
                 "{\"system\":\"%s\",\"last_seen\":\"%s\",\"online_within_s\":%lld}", code, ts,
                 (long long)c->online_within);
        emit(w, &e);
    } else if (strcmp(was, "offline") == 0 &&
               (strcmp(now, "online") == 0 || strcmp(now, "degraded") == 0)) {
        dtm_alert_clear(w->alerts, "system.silent", code);
    }
}

/* ---- the sweeper: ends quiet windows (clearing their alerts), closes idle buckets */

static void sweep_windows(struct dtm_warn *w, struct table *t, int64_t width_s, const char *rule,
                          bool key_is_addr)
{
    int64_t now = now_us();
    for (size_t sh = 0; sh < SHARDS; sh++) {
        struct event e[WAYS];
        size_t ne = 0;
        for (size_t set = 0; set < t->sets; set++) {
            pthread_mutex_lock(&t->mu[sh]);
            for (size_t i = 0; i < WAYS; i++) {
                struct head *h = slot_at(t, sh, set, i);
                char k[KEY_MAX + 1];
                if (!h->h || dtm_warn_window_count(payload(h), width_s * US, now) > 0)
                    continue;
                if (h->firing) { /* a whole window without a failure: it is over */
                    if (key_is_addr)
                        addr_key_text(h->key, h->klen, k, sizeof(k));
                    else
                        snprintf(k, sizeof(k), "%.*s", (int)h->klen, h->key);
                    ev_clear(&e[ne++], rule, k, strlen(k));
                }
                memset(h, 0, t->stride);
            }
            pthread_mutex_unlock(&t->mu[sh]);
            for (size_t i = 0; i < ne; i++)
                emit(w, &e[i]);
            ne = 0;
        }
    }
}

static void sweep_systems(struct dtm_warn *w, const struct dtm_conf *c)
{
    struct table *t = &w->systems;
    int64_t bucket = now_us() / (c->warn_spike_bucket * US);
    for (size_t sh = 0; sh < SHARDS; sh++) {
        for (size_t set = 0; set < t->sets; set++) {
            struct event e[2 * WAYS];
            size_t ne = 0;
            pthread_mutex_lock(&t->mu[sh]);
            for (size_t i = 0; i < WAYS; i++) {
                struct head *h = slot_at(t, sh, set, i);
                bool cr = false, ce = false;
                if (!h->h)
                    continue;
                sys_roll(payload(h), c, bucket, &cr, &ce);
                if (cr)
                    ev_clear(&e[ne++], "traffic.spike", h->key, h->klen);
                if (ce)
                    ev_clear(&e[ne++], "errors.spike", h->key, h->klen);
            }
            pthread_mutex_unlock(&t->mu[sh]);
            for (size_t i = 0; i < ne; i++)
                emit(w, &e[i]);
        }
    }
}

/* The addresses people signed in from, as the audit trail remembers them (login.succeeded within
 * network_history_days): known again after a restart, so an administrator's first sign-in since
 * then is judged like any other. Every person's are kept (the trail does not say the role);
 * only administrators' are ever looked at. */
struct seed {
    struct dtm_warn *w;
    int64_t wall, mono;
    size_t n;
};

static int seed_one(void *ctx, const struct dtm_audit_entry *e)
{
    struct seed *sd = ctx;
    struct dtm_warn_addr a;
    bool first;
    if (strcmp(e->actor_kind, "user") != 0 || dtm_warn_addr_parse(e->source_ip, &a) != DTM_OK)
        return DTM_OK;
    admin_record(sd->w, e->actor, &a, sd->mono - DTM_MAX(sd->wall - e->at, 0), &first);
    return ++sd->n >= 1000000 ? 1 : DTM_OK;
}

static void seed_admins(struct dtm_warn *w)
{
    const struct dtm_conf *c = *w->conf;
    struct dtm_store *st = NULL;
    struct seed sd = {w, dtm_now_us(), now_us(), 0};
    struct dtm_audit_filter f = {sd.wall - c->warn_network_history_days * 86400 * US, INT64_MAX,
                                 NULL, "login.succeeded"};
    char err[256];
    int rc;
    if (!c->warn_enabled || !c->warn_admin_new_address)
        return;
    if (dtm_store_open(c, &st, err, sizeof(err))) {
        dtm_log(DTM_LOG_WARN, "early warning: no store to learn sign-in addresses from", NULL);
        return;
    }
    rc = st->ops->audit_list(st, &f, 0, 0, seed_one, &sd);
    st->ops->close(st);
    if (rc < 0)
        dtm_logf(DTM_LOG_WARN, "early warning: sign-in addresses not learnt", "\"error\":\"%s\"",
                 dtm_rc_name(rc));
}

/* ---- the usual networks of systems, kept in the store (warn_networks): a restart does not
 * start their learning again. The sweeper writes those new or seen again since their last
 * write, every NET_SAVE_S and when stopping; dtm serve reads them back at start. */

#define NET_SAVE_S 60
#define NET_RESAVE (10 * 60 * US) /* a network seen again is written again after this */

static struct dtm_store *store_of(struct dtm_warn *w)
{
    char err[256];
    if (!w->st && dtm_store_open(*w->conf, &w->st, err, sizeof(err)) != DTM_OK) {
        w->st = NULL;
        dtm_log(DTM_LOG_WARN, "early warning: no store for the usual networks of systems", NULL);
    }
    return w->st;
}

struct net_seed {
    struct dtm_warn *w;
    int64_t wall, mono;
    size_t n;
};

static int seed_net(void *ctx, const struct dtm_warn_net *n)
{
    struct net_seed *sd = ctx;
    size_t shard, klen = strnlen(n->system_code, KEY_MAX + 1);
    int64_t first = sd->mono - DTM_MAX(sd->wall - n->first_seen, 0),
            last = sd->mono - DTM_MAX(sd->wall - n->last_seen, 0);
    struct head *h = table_get(&sd->w->systems, n->system_code, klen, true, sd->mono, &shard, NULL);
    struct sysstate *s;
    bool known = false;
    if (!h)
        return DTM_OK;
    s = payload(h);
    /* a call that came before this seed (it runs beside the first requests) may have added the
     * network already: one entry, seen since the older of the two */
    for (size_t i = 0; i < s->nnets && !known; i++)
        if ((known = memcmp(s->nets[i].net.b, n->network, 16) == 0) && first < s->nets[i].first)
            s->nets[i].first = first;
    if (!known && s->nnets < NETS) {
        struct sysnet *x = &s->nets[s->nnets++];
        memset(x, 0, sizeof(*x));
        memcpy(x->net.b, n->network, 16);
        x->net.v4 = memcmp(x->net.b, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0;
        x->first = first;
        x->last = x->saved = last;
    }
    if (!s->watched_since || first < s->watched_since)
        s->watched_since = first; /* watched since its oldest network known */
    pthread_mutex_unlock(&sd->w->systems.mu[shard]);
    return ++sd->n >= 100000 ? 1 : DTM_OK;
}

static void seed_networks(struct dtm_warn *w)
{
    const struct dtm_conf *c = *w->conf;
    struct net_seed sd = {w, dtm_now_us(), now_us(), 0};
    struct dtm_store *st;
    int rc;
    if (!c->warn_enabled || !(st = store_of(w)))
        return;
    rc = st->ops->warn_net_list(st, sd.wall - c->warn_network_history_days * 86400 * US, seed_net,
                                &sd);
    if (rc < 0)
        dtm_logf(DTM_LOG_WARN, "early warning: usual networks not read", "\"error\":\"%s\"",
                 dtm_rc_name(rc));
}

/* Writes the networks new or seen again since their last write, and forgets those older than
 * the history. */
static void save_networks(struct dtm_warn *w, const struct dtm_conf *c)
{
    struct table *t = &w->systems;
    struct dtm_warn_net *v = NULL;
    size_t n = 0, cap = 0;
    int64_t mono = now_us(), wall = dtm_now_us();
    struct dtm_store *st;
    int rc;
    for (size_t sh = 0; sh < SHARDS; sh++) {
        pthread_mutex_lock(&t->mu[sh]);
        for (size_t set = 0; set < t->sets; set++)
            for (size_t i = 0; i < WAYS; i++) {
                struct head *h = slot_at(t, sh, set, i);
                struct sysstate *s;
                if (!h->h)
                    continue;
                s = payload(h);
                for (size_t k = 0; k < s->nnets; k++) {
                    struct sysnet *x = &s->nets[k];
                    if (x->saved && x->last - x->saved < NET_RESAVE)
                        continue;
                    if (dtm_array_reserve(&v, n, &cap, sizeof(*v)))
                        break;
                    memset(&v[n], 0, sizeof(v[n]));
                    snprintf(v[n].system_code, sizeof(v[n].system_code), "%.*s", (int)h->klen,
                             h->key);
                    memcpy(v[n].network, x->net.b, 16);
                    v[n].first_seen = wall - (mono - x->first);
                    v[n].last_seen = wall - (mono - x->last);
                    n++;
                    x->saved = x->last;
                }
            }
        pthread_mutex_unlock(&t->mu[sh]);
    }
    if (!n || !(st = store_of(w))) {
        free(v);
        return;
    }
    if ((rc = st->ops->begin(st)) == DTM_OK) {
        for (size_t i = 0; i < n && rc == DTM_OK; i++)
            rc = st->ops->warn_net_put(st, &v[i]);
        if (rc == DTM_OK)
            rc = st->ops->warn_net_purge(st, wall - c->warn_network_history_days * 86400 * US);
        rc = rc ? rc : st->ops->commit(st);
        if (rc)
            st->ops->rollback(st);
    }
    if (rc)
        dtm_logf(DTM_LOG_WARN, "early warning: usual networks not saved", "\"error\":\"%s\"",
                 dtm_rc_name(rc));
    free(v);
}

static int64_t sweeper(struct dtm_periodic *clock, void *arg)
{
    struct dtm_warn *w = arg;
    const struct dtm_conf *c = *w->conf;
    (void)clock;
    if (c->warn_enabled) {
        sweep_windows(w, &w->account, c->warn_account_window, "auth.brute_force_account", false);
        sweep_windows(w, &w->ipfail, c->warn_ip_window, "auth.brute_force_ip", true);
        sweep_windows(w, &w->denied, c->warn_denied_window, "http.denied_burst", true);
        sweep_systems(w, c);
        if (now_us() >= w->next_save) {
            save_networks(w, c);
            w->next_save = now_us() + NET_SAVE_S * US;
        }
    }
    return US;
}

int dtm_warn_start(const struct dtm_conf *const *conf, struct dtm_alerts *alerts,
                   struct dtm_warn **out, char *err, size_t errsz)
{
    struct dtm_warn *w = calloc(1, sizeof(*w));
    int rc;
    if (!w) {
        snprintf(err, errsz, "out of memory");
        return DTM_ENOMEM;
    }
    if (!hash_seed && dtm_random(&hash_seed, sizeof(hash_seed)))
        hash_seed = (uint64_t)dtm_now_us();
    w->conf = conf;
    w->alerts = alerts;
    if (table_init(&w->account, sizeof(struct dtm_warn_window), 256) ||
        table_init(&w->ipfail, sizeof(struct dtm_warn_window), 1024) ||
        table_init(&w->denied, sizeof(struct dtm_warn_window), 1024) ||
        table_init(&w->systems, sizeof(struct sysstate), 256) ||
        table_init(&w->admins, sizeof(struct admin), 64)) {
        snprintf(err, errsz, "out of memory for the early-warning tables");
        dtm_warn_free(w);
        return DTM_ENOMEM;
    }
    /* what the store remembers (administrators' sign-in addresses, systems' usual networks) is
     * loaded before the server listens: no request is judged without it */
    seed_admins(w);
    seed_networks(w);
    w->next_save = now_us() + NET_SAVE_S * US;
    if ((rc = dtm_periodic_start("early-warning", US, sweeper, w, &w->clock, err, errsz))) {
        dtm_warn_free(w);
        return rc;
    }
    *out = w;
    return DTM_OK;
}

void dtm_warn_stop(struct dtm_warn *w)
{
    if (!w)
        return;
    if (w->clock) {
        dtm_periodic_stop(w->clock);
        w->clock = NULL;
        if ((*w->conf)->warn_enabled)
            save_networks(w, *w->conf); /* what was learnt since the last write */
    }
    if (w->st) /* also when the start failed after the networks were read */
        w->st->ops->close(w->st);
    w->st = NULL;
}

void dtm_warn_free(struct dtm_warn *w)
{
    if (!w)
        return;
    dtm_warn_stop(w);
    table_free(&w->account);
    table_free(&w->ipfail);
    table_free(&w->denied);
    table_free(&w->systems);
    table_free(&w->admins);
    free(w);
}
