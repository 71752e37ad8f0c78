/* share — push sharing of data with consumer systems (F3, CONTRACT §6 "Subscriptions").
 *
 * A consumer subscribes to a dataset it is granted: conditions (`where`, as GET /api/v1/stats
 * takes them), metrics and group_by (default: count per system), an interval (hour | day), a
 * callback URL and a secret. `dtm serve` runs one delivery thread (push.c) that, for every
 * subscription, computes the aggregates of each bucket once it closed (its end plus [subscriptions]
 * settle_seconds) with stats/ — the numbers GET /api/v1/stats gives for the same range — and
 * POSTs them as JSON signed with X-DTM-Signature: sha256=<hex HMAC-SHA-256 of the body under the
 * secret> (alert/deliver.c's webhook POST), with X-DTM-Delivery (the same for every attempt at a
 * bucket: receivers deduplicate on it) and X-DTM-Timestamp.
 *
 * At-least-once, in order, nothing skipped: the subscription's cursor (the next bucket to
 * deliver) moves only after a 2xx answer; a failed attempt is retried with exponential backoff
 * and jitter ([subscriptions] retry_initial … retry_max) for as long as it takes; after downtime
 * every bucket since the cursor is delivered, oldest first. Every attempt is logged
 * (GET /api/v1/subscriptions/{id}/deliveries). Several nodes on one PostgreSQL: a node leases a
 * subscription in the store (subscription_claim) before it sends a bucket, so two nodes never
 * send the same bucket at once (a node that dies holding a lease loses it after the lease's
 * time: the bucket is then sent by another — at least once).
 *
 * Late records: a bucket's aggregates are computed when it is delivered; records arriving after
 * that are not sent again (the receiver reads the corrected numbers from GET /api/v1/stats).
 *
 * Callback URLs: http or https, no credentials in them; loopback, private, link-local and other
 * non-public addresses are refused (when subscribing, and again at each connection, after name
 * resolution) unless [subscriptions] allow_private = true. */
#ifndef DTM_SHARE_H
#define DTM_SHARE_H

#include "conf/conf.h"
#include "core/core.h"
#include "dict/dict.h"
#include "stats/stats.h"
#include "store/store.h"

#define DTM_SUB_SECRET_MIN 16
#define DTM_SUB_SECRET_MAX 256

/* The length (µs) of a bucket of interval "hour" or "day"; 0 for anything else. Buckets are
 * those of stats/ (UTC+07:00, which has no daylight saving: an hour or a day is always as long). */
int64_t dtm_sub_interval_us(const char *interval);

/* Checks a callback URL: at most DTM_SUB_URL_MAX - 1 bytes, http or https, a host, no user name
 * or password; without allow_private, the host (an address, or every address a name resolves
 * to) must be public. DTM_OK, or DTM_EINVAL with an English sentence in why. */
int dtm_sub_url_check(const char *url, bool allow_private, char *why, size_t whysz);

/* The query of a subscription over [from, to): its metrics, group_by and where (a JSON array of
 * conditions) parsed by dtm_query_parse. DTM_OK, or DTM_EINVAL with the parameter in *bad and a
 * sentence in err. */
int dtm_sub_query(const struct dtm_dataset *ds, const struct dtm_subscription *sub, int64_t from,
                  int64_t to, struct dtm_query *q, const char **bad, char *err, size_t errsz);

/* The delivery id of a bucket ("SUBID.UNIXSECONDS"): the same for every attempt. */
void dtm_sub_delivery_id(const struct dtm_subscription *sub, int64_t bucket, char *out,
                         size_t outsz);

/* The body of a bucket's delivery: {"subscription","delivery","dataset","interval","bucket",
 * "from","to","sent_at","columns","rows"}, the aggregates computed now on st. */
int dtm_sub_payload(struct dtm_store *st, const struct dtm_dataset *ds,
                    const struct dtm_subscription *sub, int64_t bucket, int64_t now,
                    struct dtm_buf *out);

/* The subscription as the API shows it (never its secret). */
void dtm_sub_json(struct dtm_buf *b, const struct dtm_subscription *sub);

/* ---- the delivery thread of `dtm serve` (push.c) */
struct dtm_pusher;
/* Starts it (nothing is started when [subscriptions] enabled is false: *out NULL). *conf is
 * read at every round (SIGHUP). dict: the datasets (shared, read-only). */
int dtm_push_start(const struct dtm_conf *const *conf, struct dtm_dict *dict,
                   struct dtm_pusher **out, char *err, size_t errsz);
/* Looks at the subscriptions at once (a new one). NULL is fine. */
void dtm_push_poke(struct dtm_pusher *p);
/* Stops after the attempt in flight (its outcome is stored) and frees. NULL is fine. */
void dtm_push_stop(struct dtm_pusher *p);
/* Deliveries since the process started: acknowledged (2xx) and failed attempts. */
void dtm_push_counts(uint64_t *ok, uint64_t *failed);

#endif
