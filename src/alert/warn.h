/* alert/warn — early warning (T4.1, issue 5 item 7): rules over what the server sees that raise
 * security alerts through the alert engine (alert.h):
 * - auth.brute_force_account: [warning] account_failures failed logins of one (existing) user
 *   name within account_window seconds;
 * - auth.brute_force_ip: ip_failures failed authentications from one address (logins of any
 *   name, API keys, tokens, OAuth client secrets) within ip_window seconds;
 * - auth.admin_new_address: an administrator signs in from an address never seen for them (the
 *   first sign-in ever is only recorded);
 * - key.unusual_network: a connected system calls from a network (/network_prefix_v4 or
 *   /network_prefix_v6) outside those it was seen from in the last network_history_days, once
 *   it has been watched for network_learning seconds;
 * - http.denied_burst: denied_burst answers 401/403 to one address within denied_window s;
 * - traffic.spike, errors.spike: a system's requests (errors: 4xx and 5xx) in the current
 *   bucket of spike_bucket seconds above spike_factor × (its EWMA baseline + 2 × the mean
 *   deviation) and at least spike_floor (error_floor), once spike_warmup buckets are known;
 * - system.silent: the connectivity evaluator finds a system offline (cleared when it is back).
 * Windowed conditions are cleared when they end (a quiet window, a normal bucket).
 *
 * The hooks run on the request path: they never allocate, never touch the store and never wait
 * on anything but one stripe's mutex of a fixed-size table (16 stripes, set-associative, the
 * least recently touched entry evicted); an alert is only queued (dtm_alert_raise). A thread
 * sweeps the tables every second to end quiet windows and close idle buckets. State is kept in
 * memory: at start the thread learns the addresses people signed in from again from the audit
 * trail (login.succeeded of the last network_history_days); systems' networks and baselines are
 * learnt again from their traffic (no alert while learning). */
#ifndef DTM_WARN_H
#define DTM_WARN_H

#include "conf/conf.h"
#include "core/core.h"

struct dtm_alerts;
struct sockaddr;

/* ---- addresses as fixed-size keys */

/* An IPv4 address is kept as ::ffff:a.b.c.d (v4 set). */
struct dtm_warn_addr {
    uint8_t b[16];
    bool v4;
};
/* DTM_OK or DTM_EINVAL (not an IPv4 or IPv6 address). */
int dtm_warn_addr_parse(const char *text, struct dtm_warn_addr *out);
/* DTM_OK or DTM_EINVAL (not AF_INET / AF_INET6); sa NULL is DTM_EINVAL. */
int dtm_warn_addr_from_sockaddr(const struct sockaddr *sa, struct dtm_warn_addr *out);
/* The address as text (dotted IPv4 for v4). */
void dtm_warn_addr_text(const struct dtm_warn_addr *a, char *out, size_t outsz);
/* The network of a: the bits past prefix_v4 (of 32) or prefix_v6 (of 128) cleared. */
void dtm_warn_addr_network(const struct dtm_warn_addr *a, int prefix_v4, int prefix_v6,
                           struct dtm_warn_addr *out);

/* ---- the arithmetic (unit-tested) */

/* A sliding window of `width` µs kept as 8 slots of width/8: an event older than the window is
 * forgotten within width/8. */
#define DTM_WARN_SLOTS 8
struct dtm_warn_window {
    int64_t slot; /* index (time / slot width) of the newest slot */
    uint32_t n[DTM_WARN_SLOTS];
};
/* Adds k events at time now (µs, monotonic); returns the events in the window. */
uint32_t dtm_warn_window_add(struct dtm_warn_window *w, int64_t width, int64_t now, uint32_t k);
/* The events in the window at now (advances it). */
uint32_t dtm_warn_window_count(struct dtm_warn_window *w, int64_t width, int64_t now);

/* A baseline: the exponentially weighted moving average of a count per bucket and the EWMA of
 * its absolute deviation. */
struct dtm_warn_baseline {
    double mean, dev;
    int64_t buckets; /* buckets folded in */
};
/* Folds a closed bucket's count x with weight alpha (0 < alpha ≤ 1; the first bucket sets the
 * mean). */
void dtm_warn_baseline_fold(struct dtm_warn_baseline *b, double x, double alpha);
/* The count above which a bucket is a spike: factor × (mean + 2 × dev), at least floor; +inf
 * (never) while fewer than warmup buckets are known. */
double dtm_warn_threshold(const struct dtm_warn_baseline *b, double factor, int64_t floor,
                          int64_t warmup);

/* ---- the module */

struct dtm_warn;

/* Starts the sweeping thread. *conf is read at every use ([warning]; SIGHUP replaces it);
 * alerts may be NULL (nothing is raised). */
int dtm_warn_start(const struct dtm_conf *const *conf, struct dtm_alerts *alerts,
                   struct dtm_warn **out, char *err, size_t errsz);
/* Stops the thread (the hooks still work, without sweeping). NULL is fine. */
void dtm_warn_stop(struct dtm_warn *w);
/* Frees, once nothing can call the hooks any more. NULL is fine. */
void dtm_warn_free(struct dtm_warn *w);

/* One answered request (http/server.c, when it completes). */
struct dtm_warn_request {
    int status;
    const struct sockaddr *peer; /* NULL = unknown */
    const char *system;          /* the authenticated system's code, NULL = none */
    bool auth_failure; /* a credential (API key, token, client secret) was presented and refused */
};
void dtm_warn_request(struct dtm_warn *w, const struct dtm_warn_request *rq);

/* A sign-in (api/people.c): username as typed; known: an account of that name exists; role:
 * the account's (NULL when unknown); ip: the client's address as text; ok: signed in. */
void dtm_warn_login(struct dtm_warn *w, const char *username, bool known, const char *role,
                    const char *ip, bool ok);

/* A status change found by the connectivity evaluator (conn/status.c), with the statuses'
 * names ("never", "offline", "degraded", "online"). */
void dtm_warn_system_status(struct dtm_warn *w, const char *code, const char *was, const char *now,
                            int64_t last_seen);

#endif
