/* batch/run.c — one batch through the realtime pipeline, a chunk at a time. Two chunks are in
 * flight: while the writer commits chunk k (its records, the batch's new progress and chunk k's
 * rejected rows, in one transaction), this thread decodes and validates chunk k+1 — so decoding
 * and storing overlap on two cores. The input is a read-only file mapping; pages already decoded
 * are given back after each chunk, so memory stays flat however large the file. */
#include "batch/batch.h"
#include "metrics/metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "This job was committed", from the writer thread to the one waiting. */
struct completion {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
};

static void completion_init(struct completion *c)
{
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    c->done = false;
}

static void completion_signal(struct completion *c)
{
    pthread_mutex_lock(&c->lock);
    c->done = true;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

static void completion_wait(struct completion *c)
{
    pthread_mutex_lock(&c->lock);
    while (!c->done)
        pthread_cond_wait(&c->cond, &c->lock);
    pthread_mutex_unlock(&c->lock);
}

static void completion_destroy(struct completion *c)
{
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
}

struct slot {
    struct dtm_batch_run *run;
    struct dtm_arena arena;
    struct dtm_ingest_out out;
    struct dtm_write_job job;
    /* the state this chunk ends in, before the writer adds its counts */
    int64_t next_row, byte_offset;
    const char *final_status; /* NULL: more chunks follow */
    char error[256];
    struct completion done; /* set on the writer thread */
    struct dtm_batch snap;  /* the batch as this chunk's transaction left it */
};

/* Per run: the batch as last written inside a transaction (written by the writer thread, read
 * by the runner only after that job completed), and whether a chunk's transaction failed
 * (set on the writer thread: a failed group's jobs are done there before the next group
 * begins). */
struct run_state {
    struct dtm_batch txn;
    atomic_bool failed;
};

static struct run_state *state_of(struct slot *s)
{
    return s->job.ctx;
}

/* In the writer's transaction: the chunk's counts join the batch's, then progress and errors. */
static int chunk_in_txn(struct dtm_write_job *j, struct dtm_store *st)
{
    struct slot *s = (struct slot *)((char *)j - offsetof(struct slot, job));
    struct dtm_batch *b = &state_of(s)->txn;
    const struct dtm_ingest_out *o = &s->out;
    int rc;
    /* The chunk before this one was rolled back, but this one was already submitted (two are in
     * flight). Committing it would record progress past rows never stored — and end the batch
     * "done" without them. Its group fails instead (503 for the requests that share it); the
     * batch resumes later from the progress last committed. */
    if (atomic_load(&state_of(s)->failed))
        return DTM_EBUSY;
    b->next_row = s->next_row;
    b->byte_offset = s->byte_offset;
    b->total = s->next_row;
    b->rejected += (int64_t)o->rejected;
    if (j->nrecs) {
        b->accepted += j->receipt.accepted;
        b->duplicates += j->receipt.duplicates;
        b->updated += j->receipt.updated;
    }
    for (size_t i = 0; i < o->nerrs; i++) {
        const struct dtm_rec_error *e = &o->errs[i];
        struct dtm_batch_error be = {
            .seq = b->nerrors + 1, .row = (int64_t)e->index, .line = (int64_t)e->line, .rule = -1};
        snprintf(be.field, sizeof(be.field), "%s", e->field);
        snprintf(be.code, sizeof(be.code), "%s", e->code ? e->code : "");
        snprintf(be.arg, sizeof(be.arg), "%s", e->arg);
        if (e->rule && s->run->ds->nrules)
            be.rule = (int)(e->rule - s->run->ds->rules);
        if ((rc = st->ops->batch_error_put(st, b->id, &be)))
            return rc;
        b->nerrors++;
    }
    if (s->final_status) {
        snprintf(b->status, sizeof(b->status), "%s", s->final_status);
        snprintf(b->error, sizeof(b->error), "%s", s->error);
        b->finished_at = dtm_now_us();
    }
    /* the runner reads this copy: the next chunk's transaction may already change b */
    s->snap = *b;
    return st->ops->batch_update(st, b);
}

static void chunk_done(struct dtm_write_job *j)
{
    struct slot *s = (struct slot *)((char *)j - offsetof(struct slot, job));
    if (j->rc)
        atomic_store(&state_of(s)->failed, true);
    completion_signal(&s->done);
}

/* Waits for a submitted chunk, then reports it (the batch's counts and its rejected rows). */
static int finish(struct dtm_batch_run *r, struct slot *s)
{
    completion_wait(&s->done);
    if (s->job.rc)
        return s->job.rc;
    *r->b = s->snap;
    if (s->final_status)
        dtm_metrics_batch_finished(s->final_status);
    if (r->progress)
        r->progress(r->ctx, r->b, s->out.errs, s->out.nerrs);
    return DTM_OK;
}

static int submit(struct dtm_batch_run *r, struct slot *s, struct run_state *rs)
{
    struct dtm_write_job *j = &s->job;
    memset(j, 0, sizeof(*j));
    j->dataset = r->b->dataset;
    j->system_code = r->b->system_code;
    j->request_id = r->b->id;
    j->recs = s->out.recs;
    j->nrecs = s->out.nrecs;
    j->rejected = s->out.rejected;
    j->errs = s->out.errs;
    j->nerrs = s->out.nerrs;
    j->ctx = rs;
    j->in_txn = chunk_in_txn;
    j->done = chunk_done;
    j->relaxed = !s->final_status; /* the last chunk's commit makes every earlier one durable */
    s->done.done = false;
    return dtm_writer_submit(r->writer, j);
}

/* Orders a chunk's records by key hash, keeping the file order of equal keys (the later version of
 * a record must still win). The writer then walks the dedup index in order instead of at random:
 * each index page is visited once per chunk while it is hot. A bottom-up merge sort: stable, and
 * qsort is not. */
static void sort_by_key(struct dtm_store_record *a, size_t n, struct dtm_arena *arena)
{
    struct dtm_store_record *tmp = n > 1 ? dtm_arena_alloc(arena, n * sizeof(*a)) : NULL, *src = a,
                            *dst = tmp;
    if (!tmp)
        return; /* unsorted is correct, only slower */
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = DTM_MIN(lo + width, n), hi = DTM_MIN(lo + 2 * width, n);
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                dst[k++] = memcmp(src[j].key_hash, src[i].key_hash, 16) < 0 ? src[j++] : src[i++];
            while (i < mid)
                dst[k++] = src[i++];
            while (j < hi)
                dst[k++] = src[j++];
        }
        struct dtm_store_record *t = src;
        src = dst;
        dst = t;
    }
    if (src != a)
        memcpy(a, src, n * sizeof(*a));
}

/* Skips the rows done before a restart (decoded again, not validated). */
/* T4.2: a sealed spool is opened this far ahead of the decoder — more than any record of a
 * line-based batch is long (a longer line reads as malformed). Memory holds about this much
 * plaintext plus the two chunks in flight, whatever the file's size. */
#define AHEAD_BYTES ((size_t)16 << 20)

static int open_ahead(void *ctx, size_t offset)
{
    /* an altered spool is the server's failure, not a malformed upload */
    return dtm_map_ensure(ctx, offset + AHEAD_BYTES) ? DTM_EIO : DTM_OK;
}

static int skip_rows(struct dtm_decoder *dec, struct dtm_mapped *input, int64_t n,
                     struct dtm_decode_error *err)
{
    struct dtm_in_record *rin = malloc(sizeof(*rin));
    int rc = DTM_OK;
    if (!rin)
        return DTM_ENOMEM;
    for (int64_t i = 0; i < n; i++) {
        int r;
        if ((rc = open_ahead(input, dtm_decoder_offset(dec))))
            break;
        r = dtm_decoder_next(dec, rin, err);
        if (r == 0)
            break;
        if (r < 0 && !dtm_decoder_resumable(dec)) {
            rc = DTM_EMALFORMED;
            break;
        }
    }
    free(rin);
    return rc;
}

static enum dtm_format format_of(const char *name)
{
    if (strcmp(name, "json") == 0)
        return DTM_FMT_JSON;
    if (strcmp(name, "xml") == 0)
        return DTM_FMT_XML;
    if (strcmp(name, "csv") == 0)
        return DTM_FMT_CSV;
    return DTM_FMT_NDJSON;
}

int dtm_batch_run(struct dtm_batch_run *r)
{
    struct dtm_batch *b = r->b;
    struct dtm_ingest_in in = {
        .ds = r->ds,
        .caller = r->caller,
        .keys = r->keys,
        .store = r->store,
        .format = format_of(b->format),
        .mode = b->masked ? DTM_MODE_MASKED : DTM_MODE_RAW,
        .max_records = SIZE_MAX,
        .max_errors = SIZE_MAX,
        .rows_continue = true,
        .ahead = open_ahead,
        .ahead_ctx = r->input,
    };
    struct run_state rs = {.txn = *b};
    struct slot *slots = calloc(2, sizeof(*slots)), *inflight = NULL;
    struct dtm_decoder *dec = NULL;
    struct dtm_decode_error derr;
    int rc = DTM_OK, cur = 0;
    int64_t rows = b->next_row;
    size_t chunk_start = 0;

    if (!slots)
        return DTM_ENOMEM;
    for (int i = 0; i < 2; i++) {
        slots[i].run = r;
        dtm_arena_init(&slots[i].arena, 1 << 20);
        completion_init(&slots[i].done);
    }
    /* the formats whose parser may read anywhere in the document get all of it at once */
    if (in.format != DTM_FMT_NDJSON && in.format != DTM_FMT_CSV &&
        (rc = dtm_map_ensure(r->input, r->input->n)))
        goto out;
    if (!(dec = dtm_decoder_open(in.format, r->input->p, r->input->n))) {
        rc = DTM_ENOMEM;
        goto out;
    }
    memset(&derr, 0, sizeof(derr));
    if (rows && (rc = skip_rows(dec, r->input, rows, &derr)))
        goto out;
    for (;;) {
        struct slot *s = &slots[cur];
        int more;
        bool cancel = r->cancel && atomic_load(r->cancel);

        chunk_start = dtm_decoder_offset(dec);
        dtm_arena_reset(&s->arena);
        memset(&s->out, 0, sizeof(s->out));
        s->out.total = (size_t)rows;
        s->final_status = NULL;
        s->error[0] = '\0';
        more = cancel ? 0 : dtm_ingest_step(&in, dec, &s->arena, &s->out, r->chunk);
        sort_by_key(s->out.recs, s->out.nrecs, &s->arena);
        if (cancel) {
            /* the chunk stores nothing: the batch ends with what was committed */
            s->out.total = (size_t)rows;
            s->final_status = "cancelled";
        } else if (s->out.rc == DTM_EMALFORMED) {
            const struct dtm_decode_error *d = &s->out.derr;
            s->final_status = "failed";
            snprintf(s->error, sizeof(s->error), "malformed %s at line %zu, column %zu: %s",
                     dtm_format_name(in.format), d->line, d->col,
                     d->detail[0] ? d->detail
                     : d->code    ? d->code
                                  : "syntax error");
        } else if (s->out.rc) {
            rc = s->out.rc;
            break;
        } else if (!more) {
            s->final_status = "done";
        }
        rows = (int64_t)s->out.total;
        s->next_row = rows;
        s->byte_offset =
            s->final_status && !cancel ? (int64_t)r->input->n : (int64_t)dtm_decoder_offset(dec);
        if (!s->final_status && r->stop && atomic_load(r->stop)) {
            /* the prepared chunk is dropped: it is read again on resume */
            rc = inflight ? finish(r, inflight) : DTM_OK;
            inflight = NULL;
            if (rc == DTM_OK)
                rc = DTM_EBUSY;
            break;
        }
        if (cancel)
            s->out.nrecs = s->out.nerrs = s->out.rejected = 0;
        if ((rc = submit(r, s, &rs)))
            break;
        /* submitted before the chunk in flight is waited for: the record writer takes this one
         * while the rollup thread still applies the one before (ingest/writer.c) */
        if (inflight) {
            rc = finish(r, inflight);
            inflight = s; /* if that failed, `out` still waits for this one */
            if (rc)
                break;
        }
        /* what the chunks up to this one's start needed was copied out of the input, and
         * their rejected rows' text was read (progress): those pages can go */
        dtm_map_drop(r->input, chunk_start);
        inflight = s;
        cur ^= 1;
        if (s->final_status) {
            inflight = NULL;
            rc = finish(r, s);
            break;
        }
    }
out:
    if (inflight)
        completion_wait(&inflight->done); /* never leave the writer holding this stack's memory */
    dtm_decoder_close(dec);
    for (int i = 0; i < 2; i++) {
        dtm_arena_free(&slots[i].arena);
        completion_destroy(&slots[i].done);
    }
    free(slots);
    return rc;
}

/* ---- saving a batch's row through the writer */

struct save_job {
    struct dtm_write_job job;
    const struct dtm_batch *b;
    bool insert;
    struct completion done;
};

static int save_in_txn(struct dtm_write_job *j, struct dtm_store *st)
{
    struct save_job *s = (struct save_job *)j;
    return s->insert ? st->ops->batch_put(st, s->b) : st->ops->batch_update(st, s->b);
}

static void save_done(struct dtm_write_job *j)
{
    completion_signal(&((struct save_job *)j)->done);
}

int dtm_batch_save(struct dtm_writer *w, const struct dtm_batch *b, bool insert)
{
    struct save_job s = {.b = b, .insert = insert};
    int rc;
    s.job.dataset = b->dataset;
    s.job.system_code = b->system_code;
    s.job.in_txn = save_in_txn;
    s.job.done = save_done;
    completion_init(&s.done);
    if ((rc = dtm_writer_submit(w, &s.job)) == DTM_OK) {
        completion_wait(&s.done);
        rc = s.job.rc;
    }
    completion_destroy(&s.done);
    return rc;
}

/* ---- names and JSON */

static const char *const priorities[] = {"normal", "high", "urgent"};

int dtm_batch_priority_parse(const char *s, int *out)
{
    for (size_t i = 0; i < DTM_ARRAY_LEN(priorities); i++)
        if (strcmp(s, priorities[i]) == 0) {
            *out = (int)i;
            return DTM_OK;
        }
    return DTM_EINVAL;
}

const char *dtm_batch_priority_name(int p)
{
    return p >= 0 && p < (int)DTM_ARRAY_LEN(priorities) ? priorities[p] : "normal";
}

double dtm_batch_progress(const struct dtm_batch *b)
{
    if (strcmp(b->status, "done") == 0)
        return 1.0;
    if (b->bytes <= 0)
        return 0.0;
    return DTM_MIN(1.0, (double)b->byte_offset / (double)b->bytes);
}

static void json_time(struct dtm_buf *out, const char *name, int64_t t)
{
    dtm_buf_printf(out, ",\"%s\":", name);
    dtm_buf_json_time(out, t);
}

void dtm_batch_json(const struct dtm_batch *b, struct dtm_buf *out)
{
    dtm_buf_addc(out, "{\"id\":");
    dtm_buf_json_strc(out, b->id);
    dtm_buf_addc(out, ",\"dataset\":");
    dtm_buf_json_strc(out, b->dataset);
    dtm_buf_addc(out, ",\"system_code\":");
    dtm_buf_json_strc(out, b->system_code);
    dtm_buf_addc(out, ",\"status\":");
    dtm_buf_json_strc(out, b->status);
    dtm_buf_printf(out,
                   ",\"total\":%lld,\"accepted\":%lld,\"duplicates\":%lld,\"updated\":%lld,"
                   "\"rejected\":%lld,\"progress\":%.4f,\"bytes\":%lld,\"bytes_done\":%lld",
                   (long long)b->total, (long long)b->accepted, (long long)b->duplicates,
                   (long long)b->updated, (long long)b->rejected, dtm_batch_progress(b),
                   (long long)b->bytes, (long long)b->byte_offset);
    dtm_buf_addc(out, ",\"format\":");
    dtm_buf_json_strc(out, b->format);
    dtm_buf_addc(out, ",\"priority\":");
    dtm_buf_json_strc(out, dtm_batch_priority_name(b->priority));
    json_time(out, "created_at", b->created_at);
    json_time(out, "started_at", b->started_at);
    json_time(out, "finished_at", b->finished_at);
    if (b->error[0]) {
        dtm_buf_addc(out, ",\"error\":");
        dtm_buf_json_strc(out, b->error);
    }
    dtm_buf_addch(out, '}');
}

void dtm_batch_error_to_rec(const struct dtm_batch_error *e, const struct dtm_dataset *ds,
                            struct dtm_rec_error *out)
{
    memset(out, 0, sizeof(*out));
    out->index = (size_t)e->row;
    out->line = (size_t)e->line;
    snprintf(out->field, sizeof(out->field), "%s", e->field);
    out->code = e->code;
    snprintf(out->arg, sizeof(out->arg), "%s", e->arg);
    if (ds && e->rule >= 0 && (size_t)e->rule < ds->nrules)
        out->rule = &ds->rules[e->rule];
}
