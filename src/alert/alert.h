/* alert — security alerts and their channels (T5.3, issue 5 item 8) and the vulnerability
 * register (T4.4, item 10).
 *
 * An alert is one occurrence of a rule ("vuln.overdue", "auth.brute_force", …) for a key (what
 * it is about: an account, an address, a vulnerability id). Other modules call
 * dtm_alert_raise / dtm_alert_clear from any thread: both only queue the event and return at
 * once (never waiting on the store or on delivery). The engine's thread (alert.c) applies the
 * events in order on its own store connection:
 * - a raise of a rule+key with an open alert (firing or acknowledged) only bumps its count and
 *   last_seen (de-duplication: no new notification);
 * - otherwise a new alert is stored, firing; it is notified unless the same rule+key was
 *   resolved less than [alert] suppress_minutes ago (suppression: recorded with suppressed =
 *   true, not notified — until a raise after the window, which notifies it);
 * - a clear resolves the open alert of the rule+key (resolved_by "");
 * - people acknowledge and resolve alerts through the API (dtm_alert_ack / dtm_alert_resolve,
 *   audited in the same transaction).
 * Notified alerts go to the delivery thread (deliver.c), which sends each to the channels its
 * severity and rule are routed to ([alert] channels, channels_<severity>; a channel's
 * min_severity and rules): webhook (JSON POST signed with X-DTM-Signature: sha256=<hex
 * HMAC-SHA-256 of the body>), e-mail (SMTP via libcurl, STARTTLS required by default) and
 * syslog (RFC 5424 over UDP, or syslog(3)). Failed attempts are retried with exponential
 * backoff ([alert] retry_initial doubled, at most [alert] max_attempts). When a notified alert
 * is resolved, the channels are told too ([alert] notify_resolved). Each channel's
 * delivery state is stored (alert_deliveries), "pending" from the moment the alert is stored.
 *
 * Alerts, deliveries and the register live in the store (migration 12), so they survive
 * restarts: deliveries still pending when the server stopped are resumed when it starts again
 * (at-least-once: a receiver may see an alert twice, X-DTM-Alert-Id tells). */
#ifndef DTM_ALERT_H
#define DTM_ALERT_H

#include "conf/conf.h"
#include "core/core.h"
#include "store/store.h"

enum dtm_alert_severity { DTM_ALERT_INFO, DTM_ALERT_WARNING, DTM_ALERT_CRITICAL };

/* "info", "warning", "critical" */
const char *dtm_alert_severity_name(enum dtm_alert_severity s);
/* DTM_OK or DTM_EINVAL. */
int dtm_alert_severity_parse(const char *s, enum dtm_alert_severity *out);

struct dtm_alerts; /* the engine of `dtm serve` */

/* ---- raising and clearing: thread-safe, non-blocking (for every module) */

/* Raises rule for key. rule: a short dotted name (e.g. "auth.brute_force"); key: what it is
 * about (NULL = ""); title: one English line for people; detail_json: a JSON object with the
 * facts (NULL = "{}"), never a secret or a password. Texts are copied (cut at their bounds;
 * a detail that does not fit becomes {"truncated":true}). Returns at once: DTM_OK when queued,
 * DTM_EBUSY when the engine is stopping or its queue is full (the event is dropped, counted and
 * logged), DTM_EINVAL for an empty rule. e NULL is fine (nothing happens). */
int dtm_alert_raise(struct dtm_alerts *e, const char *rule, const char *key,
                    enum dtm_alert_severity severity, const char *title, const char *detail_json);
/* Resolves the open alert of rule+key, if any (the condition is over). Same return values. */
int dtm_alert_clear(struct dtm_alerts *e, const char *rule, const char *key);

/* ---- people's actions (api/alerts.c): asynchronous, the answer comes through done */

/* Who acts, for the alert and the audit trail. */
struct dtm_alert_actor {
    const char *kind; /* user | cli */
    const char *name;
    const char *source_ip; /* NULL = "" */
};
/* Called once on the engine's thread with the outcome: DTM_OK and the alert as stored,
 * DTM_ENOTFOUND (no such alert), DTM_ECONFLICT (already resolved), DTM_EBUSY (stopping),
 * DTM_ESTORE; a is NULL unless DTM_OK or DTM_ECONFLICT. */
typedef void (*dtm_alert_done_fn)(void *ctx, int rc, const struct dtm_alert *a);
/* Acknowledges a firing alert (one already acknowledged is answered as it is). Audited as
 * alert.acknowledged. DTM_OK when queued (done will be called), else DTM_EBUSY (done is not
 * called). */
int dtm_alert_ack(struct dtm_alerts *e, int64_t id, const struct dtm_alert_actor *by,
                  dtm_alert_done_fn done, void *ctx);
/* Resolves an open alert. Audited as alert.resolved. */
int dtm_alert_resolve(struct dtm_alerts *e, int64_t id, const struct dtm_alert_actor *by,
                      dtm_alert_done_fn done, void *ctx);

/* Runs fn(ctx, st) inside a write transaction on the engine's thread and store connection
 * (committed when it returns DTM_OK, rolled back otherwise), then done(ctx, rc) on that thread.
 * For the register's changes (api/vulns.c): the HTTP thread never waits on the store's lock.
 * DTM_OK when queued, else DTM_EBUSY (done is not called). */
int dtm_alerts_call(struct dtm_alerts *e, int (*fn)(void *ctx, struct dtm_store *st),
                    void (*done)(void *ctx, int rc), void *ctx);
/* Runs the periodic checks (overdue vulnerabilities) as soon as possible. */
void dtm_alerts_poke(struct dtm_alerts *e);

/* ---- the engine's life (cli/serve.c) */

/* Starts the engine and delivery threads. *conf is read at every use (SIGHUP replaces it);
 * audit_key (copied) seals the audit entries of people's actions and of fired alerts. */
int dtm_alerts_start(const struct dtm_conf *const *conf, const uint8_t audit_key[32],
                     struct dtm_alerts **out, char *err, size_t errsz);
/* Applies every queued event, answers the waiting calls, stops the threads (deliveries in
 * flight end with their current attempt; later retries are dropped, their state stays
 * "pending"). Raises after this return DTM_EBUSY. NULL is fine. */
void dtm_alerts_stop(struct dtm_alerts *e);
/* Frees, once nothing can call it any more (after the listeners are gone). NULL is fine. */
void dtm_alerts_free(struct dtm_alerts *e);
/* Events dropped because the queue was full (for tests and metrics). */
uint64_t dtm_alerts_dropped(struct dtm_alerts *e);

/* ---- the engine's rules in one transaction (alert.c; unit-tested on a real store) */

enum dtm_alert_op {
    DTM_ALERT_OP_RAISE,
    DTM_ALERT_OP_CLEAR,
    DTM_ALERT_OP_ACK,
    DTM_ALERT_OP_RESOLVE
};
struct dtm_alert_change {
    enum dtm_alert_op op;
    /* raise: rule, key, severity, title, detail; clear: rule, key; ack/resolve: id */
    struct dtm_alert in;
    char actor_kind[12], actor[128], source_ip[64]; /* ack/resolve */
    int64_t at;                                     /* µs */
    /* out */
    int rc;               /* DTM_OK, DTM_ENOTFOUND, DTM_ECONFLICT (see dtm_alert_done_fn) */
    bool notify;          /* a new alert to deliver */
    bool notify_resolved; /* a notified (not suppressed) alert was resolved */
    struct dtm_alert out;
};
/* Applies c inside the caller's open transaction on st. suppress_us: the suppression window.
 * audit_key: when not NULL, new alerts and people's actions are appended to the audit trail.
 * Returns the store's error only (the outcome is c->rc). */
int dtm_alert_apply(struct dtm_store *st, struct dtm_alert_change *c, int64_t suppress_us,
                    const uint8_t *audit_key);

/* The alert as JSON (the API's item and the webhook's body): {"id":…,"rule":…,…}. Times in
 * RFC 3339 (UTC+07:00), null when not set. */
int dtm_alert_json(struct dtm_buf *b, const struct dtm_alert *a);

/* ---- delivery (deliver.c) */

struct dtm_deliverer;
int dtm_deliver_start(const struct dtm_conf *const *conf, struct dtm_deliverer **out, char *err,
                      size_t errsz);
/* Queues the delivery of an alert (copied) to one channel, after `attempts` earlier attempts;
 * event "fired" (the alert is new) or "resolved" (its resolution, [alert] notify_resolved)
 * (its state row, "pending", is stored already: the engine writes it with the alert, so a
 * delivery cut by a stop is resumed at the next start — at least once). Never blocks. */
void dtm_deliver_enqueue(struct dtm_deliverer *d, const struct dtm_alert *a, const char *event,
                         const char *channel, int64_t attempts);
void dtm_deliver_stop(struct dtm_deliverer *d); /* and frees; NULL is fine */

/* The channels an alert goes to under c: indexes into c->channels, at most max; returns how
 * many. [alert] channels_<severity> (or channels when empty), each kept when the alert's
 * severity is at least its min_severity and its rules match the alert's rule. */
size_t dtm_alert_route(const struct dtm_conf *c, const struct dtm_alert *a, size_t *idx,
                       size_t max);
/* Whether rule matches a rules list ("" = all; names, or prefixes ending in '*'). */
bool dtm_alert_rule_match(const char *rules, const char *rule);
/* X-DTM-Signature's value: "sha256=" and the lower-case hex HMAC-SHA-256 of body under secret
 * (out at least 72 bytes). */
void dtm_alert_signature(const char *secret, const char *body, size_t n, char *out, size_t outsz);
/* One signed webhook POST, shared by alert channels and subscriptions (share/push.c): body as
 * application/json with X-DTM-Signature (dtm_alert_signature of the body under secret) and the
 * extra headers ("Name: value", never CR or LF in them); http and https only, no redirects, the
 * answer read and dropped. refuse_private: the connection is refused when the address connected
 * to (after name resolution) is not public (dtm_webhook_ip_public). DTM_OK on a 2xx answer, else
 * DTM_EIO (DTM_ENOMEM) with a sentence in why that never holds the secret; *status: the answer's
 * HTTP status (0 = none). */
struct dtm_webhook {
    const char *url, *secret, *body;
    size_t n;
    const char *const *headers;
    size_t nheaders;
    int64_t timeout;     /* s, connection and answer each */
    const char *ca_file; /* NULL or "" = the system's */
    const char *user_agent;
    bool refuse_private;
};
int dtm_webhook_post(const struct dtm_webhook *w, long *status, char *why, size_t whysz);
/* Whether a numeric address (IPv4 or IPv6 text) is public: not loopback, private (RFC 1918,
 * fc00::/7), link-local, CGNAT, multicast, unspecified or reserved. */
bool dtm_webhook_ip_public(const char *ip);
/* Seconds before attempt number `attempt` (2, 3, …): initial × 2^(attempt−2), at most 3600. */
int64_t dtm_alert_backoff(int64_t initial, int64_t attempt);
/* An RFC 5424 syslog message for the alert: "<PRI>1 TIMESTAMP HOST dtm PROCID alert
 * [dtm@32473 id=… rule=… key=… severity=… state=… count=…] BOM title". */
int dtm_alert_syslog_format(struct dtm_buf *b, const struct dtm_alert *a, int facility,
                            const char *hostname, long pid);
/* The e-mail (RFC 5322 headers From, To, Subject, Date, Message-ID, MIME UTF-8; CRLF lines) for
 * the alert ("[DTM <severity>] title", or "[DTM resolved] title" for a resolved one). Header
 * values are cleaned of CR and LF (no header injection). */
int dtm_alert_email_format(struct dtm_buf *b, const struct dtm_alert *a, const char *from,
                           const char *to, const char *hostname, int64_t now);

/* ---- the vulnerability register (vuln.c; T4.4) */

/* Whether a status, a severity, a date ("YYYY-MM-DD", a real day) is valid. */
bool dtm_vuln_status_ok(const char *s);
bool dtm_vuln_severity_ok(const char *s);
bool dtm_vuln_date_ok(const char *s);
/* Whether v is past its deadline on day `today` ("YYYY-MM-DD", UTC+07:00) and neither fixed
 * nor accepted. */
bool dtm_vuln_overdue(const struct dtm_vuln *v, const char *today);
/* Today's date in UTC+07:00 ("YYYY-MM-DD"). */
void dtm_vuln_today(int64_t now_us, char out[11]);
/* The alert of an overdue item: rule "vuln.overdue", key "vuln:<id>", severity by the item's
 * (critical, high → critical; medium → warning; low → info). */
#define DTM_VULN_RULE "vuln.overdue"
void dtm_vuln_alert_key(int64_t id, char *out, size_t outsz);
enum dtm_alert_severity dtm_vuln_alert_severity(const char *vuln_severity);
/* One periodic check on st: raises the alert of every overdue item, clears those of items that
 * are not (any more). */
int dtm_vuln_check(struct dtm_alerts *e, struct dtm_store *st, int64_t now);
/* The item as JSON (the API's). */
int dtm_vuln_json(struct dtm_buf *b, const struct dtm_vuln *v);

#endif
