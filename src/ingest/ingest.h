/* ingest — receiving data (F1): the pipeline that turns a request body into stored records
 * (decode → validate → mask → key and content hashes, pipeline.c) and the single writer thread
 * that stores them with group commit (writer.c). A 2xx is sent only after the writer's commit
 * returned: records are durable before the sender hears "accepted" (CONTRACT §5). */
#ifndef DTM_INGEST_H
#define DTM_INGEST_H

#include "conf/conf.h"
#include "core/core.h"
#include "dict/dict.h"
#include "gate/gate.h"
#include "ingest/decode.h"
#include "store/store.h"

/* ---- the pipeline */

struct dtm_ingest_in {
    const struct dtm_dataset *ds;
    const struct dtm_system *caller; /* NULL: a local import (`dtm import` without --system) */
    const struct dtm_keyring *keys;
    struct dtm_store *store; /* for aggregator → child lookups */
    enum dtm_format format;
    struct dtm_str body;
    enum dtm_mask_mode mode;
    size_t max_records;
    size_t max_errors; /* errors kept for the answer */
    /* Batches: a broken line of a line-based format (NDJSON, CSV) is one rejected row (error
     * code "malformed") instead of the end of the input. */
    bool rows_continue;
    /* Batches: called with the decoder's offset before each record (a sealed spool opens the
     * input ahead of the decoder, batch/spool.c); non-zero stops the step with that error. */
    int (*ahead)(void *ctx, size_t offset);
    void *ahead_ctx;
};

struct dtm_ingest_out {
    int rc; /* DTM_OK, DTM_EMALFORMED (derr), DTM_ETOOBIG (too many records),
               DTM_EFORBIDDEN (forbidden_code), DTM_ENOMEM */
    struct dtm_decode_error derr;
    char forbidden_code[DTM_CODE_MAX];
    size_t total;               /* records decoded */
    size_t rejected;            /* records with at least one error */
    struct dtm_rec_error *errs; /* arena; at most max_errors */
    size_t nerrs;
    size_t errs_total;
    struct dtm_store_record *recs; /* arena; the valid records */
    size_t nrecs;
    size_t recs_cap, errs_cap; /* room in recs and errs */
};

/* Runs decode → validate → mask → hash over a whole body. Memory comes from arena. */
void dtm_ingest_prepare(const struct dtm_ingest_in *in, struct dtm_arena *arena,
                        struct dtm_ingest_out *out);

/* The same over the next rows of an open decoder (in->body is ignored): at most max_rows rows
 * (records, and broken lines when rows_continue) are added to out, whose counters carry on
 * (clear it before the first step; out->total is the row index). Returns 1 when rows may remain,
 * 0 at the end of the input or when out->rc was set. */
int dtm_ingest_step(const struct dtm_ingest_in *in, struct dtm_decoder *dec,
                    struct dtm_arena *arena, struct dtm_ingest_out *out, size_t max_rows);

/* The keyed hash of a data key: dataset code and the key fields' canonical texts. */
void dtm_ingest_key_hash(const struct dtm_keyring *keys, const char *dataset,
                         const struct dtm_str *vals, size_t n, uint8_t out[16]);

/* ---- the writer */

struct dtm_write_job;
/* Called by the writer inside the transaction, after the records were put, to produce the answer
 * that is sent (and kept for Idempotency-Key replay). */
typedef int (*dtm_answer_fn)(struct dtm_write_job *j, struct dtm_buf *out);

struct dtm_write_job {
    /* in */
    const char *dataset;
    const char *system_code;
    const char *request_id;
    struct dtm_store_record *recs;
    size_t nrecs;
    size_t rejected;
    /* the rejected rows' errors kept (may be fewer than the errors): counted by code for data
     * quality (report/qcount.c) */
    const struct dtm_rec_error *errs;
    size_t nerrs;
    struct dtm_str idem_key; /* empty = none */
    uint8_t idem_hash[32];   /* hash of the request (method, path, body) */
    int64_t idem_ttl_us;
    dtm_answer_fn answer_fn;
    bool preset; /* the answer (status, answer) is already built: only keep it for replay */
    void *ctx;
    /* Optional: more writes in the same transaction, after the records and the receipt (a
     * batch's progress and rejected rows commit with its records). A job with no answer_fn and
     * no records stores no receipt and only runs in_txn. */
    int (*in_txn)(struct dtm_write_job *j, struct dtm_store *st);
    /* Nobody waits for this job's durability (a batch chunk that is not the last: its progress
     * commits with it, so a lost commit is redone on resume). A group made only of such jobs
     * commits without fsync; the next durable commit makes it durable too. */
    bool relaxed;
    /* called once after commit: by the rollup thread once the group's rollup deltas are in (a
     * 2xx then means the statistics count it too); a relaxed job by the writer thread at once */
    void (*done)(struct dtm_write_job *j);
    /* out */
    int rc;        /* DTM_OK, DTM_ECONFLICT (key reused with another body), DTM_ESTORE, DTM_EBUSY */
    bool replayed; /* answered from a stored Idempotency-Key answer */
    struct dtm_receipt receipt;
    int status; /* HTTP status of the answer */
    struct dtm_buf answer;
    /* queue link */
    struct dtm_write_job *next;
};

struct dtm_writer;

/* Starts the writer thread with its own store connection. */
int dtm_writer_start(const struct dtm_conf *c, struct dtm_writer **out, char *err, size_t errsz);
/* Queues a job; j->done is called later on the writer thread. DTM_EBUSY when the queue is full
 * or the writer is stopping (then done is not called). */
int dtm_writer_submit(struct dtm_writer *w, struct dtm_write_job *j);
/* Notes that a system was seen now (heartbeat, traffic); written with the next commit or within
 * a second. */
void dtm_writer_touch(struct dtm_writer *w, const char *system_code, int64_t when);
/* Writes everything queued, then stops the thread. */
void dtm_writer_stop(struct dtm_writer *w);
/* Stops (if running) and frees. Submissions between stop and free are refused with EBUSY. */
void dtm_writer_free(struct dtm_writer *w);
/* Jobs waiting. */
size_t dtm_writer_depth(struct dtm_writer *w);

/* The public receipt id "r<seq>-<tag>" and its parsing. */
void dtm_receipt_format(const struct dtm_receipt *r, char *out, size_t outsz);
int dtm_receipt_parse(const char *id, int64_t *seq, char *tag, size_t tagsz);

#endif
