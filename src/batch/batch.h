/* batch — files received whole and stored in the background (CONTRACT §5, F1): one pipeline,
 * two entrances. spool.c keeps an upload on disk (gunzipped on the fly, synced) before the 202;
 * run.c takes a batch through the realtime pipeline (decode → validate → mask → hash → writer)
 * in chunks whose records, progress and rejected rows commit together, so an interrupted batch
 * resumes after its last commit and never stores a row twice; queue.c runs the server's
 * batches one at a time, by priority, and resumes them after a restart. `dtm import` runs
 * run.c in its own process. */
#ifndef DTM_BATCH_H
#define DTM_BATCH_H

#include "conf/conf.h"
#include "core/core.h"
#include "dict/dict.h"
#include "gate/gate.h"
#include "ingest/ingest.h"
#include "store/store.h"

#include <stdatomic.h>

/* ---- the spool: an upload written to DATA_DIR/batches/ID.data */

struct dtm_spool;

/* Starts DATA_DIR/batches/ID.part; gzip = the body is gzip-compressed (decompressed as it comes
 * in); max = bytes allowed after decompression. */
int dtm_spool_open(const struct dtm_conf *c, const char *id, bool gzip, int64_t max,
                   struct dtm_spool **out);
/* Appends a piece of the body. DTM_ETOOBIG past max, DTM_EMALFORMED for broken gzip, DTM_EIO. */
int dtm_spool_write(struct dtm_spool *s, const char *p, size_t n);
/* Checks the end of the gzip stream, syncs the file and renames it to ID.data. *bytes = its size.
 */
int dtm_spool_finish(struct dtm_spool *s, int64_t *bytes);
/* Removes whatever was written and frees s (also after finish: then only frees). */
void dtm_spool_close(struct dtm_spool *s);
/* The path of a batch's data file. */
void dtm_spool_path(const struct dtm_conf *c, const char *id, char *out, size_t outsz);

/* A read-only mapping of a whole file (empty files map to an empty input). */
struct dtm_datakeys;
struct dtm_mapped {
    const char *p;
    size_t n;
    size_t dropped; /* bytes at the start already given back to the kernel */
    bool anon;      /* T4.2: a spool file opened into memory (nothing to read again from) */
    size_t cap;     /* bytes of that memory */
    /* T4.2: the sealed file, still mapped, whose chunks are opened into p as the reader comes
     * near them (dtm_map_ensure): p[0, ready) holds plaintext */
    const uint8_t *src;
    size_t srcn, srcoff, ready;
    uint64_t chunk;
    struct dtm_datakeys *dk;
};
int dtm_map_file(const char *path, struct dtm_mapped *m);
/* T4.2: a spool file (dtm_spool_path) as its plaintext: spool files are sealed in chunks of
 * 64 KiB (AES-256-GCM under a data key, each chunk with its own nonce and tag, its index and a
 * last-chunk flag as associated data, so chunks cannot be reordered, dropped or cut off). The
 * plaintext goes to anonymous memory as it is needed: dtm_map_ensure opens the chunks up to an
 * offset, dtm_map_drop gives back what was read — so memory holds a window of the file, not the
 * file (a 700 MB upload would otherwise cost 700 MB). A spool file written before T4.2 maps as
 * is. DTM_ENOTFOUND, DTM_EIO, DTM_EMALFORMED (altered or truncated), DTM_ENOMEM. */
int dtm_spool_map(const struct dtm_conf *c, const char *path, struct dtm_mapped *m);
/* Makes p[0, upto) readable (all of it for upto >= n): opens the chunks of a sealed spool not
 * opened yet. DTM_OK (and at once for any other mapping) or DTM_EMALFORMED (a chunk altered). */
int dtm_map_ensure(struct dtm_mapped *m, size_t upto);
/* Gives back the pages before off (they are read again from the file if needed; those of a
 * sealed spool are gone: call it only behind what anyone reads again). */
void dtm_map_drop(struct dtm_mapped *m, size_t off);
/* Gives back the whole pages inside [from, to) (read again after a drop, e.g. rejected rows). */
void dtm_map_forget(const struct dtm_mapped *m, size_t from, size_t to);
void dtm_unmap(struct dtm_mapped *m);

/* ---- running one batch */

struct dtm_batch_run {
    struct dtm_batch *b; /* its state: read at the start, updated after each commit */
    const struct dtm_dataset *ds;
    const struct dtm_system *caller; /* NULL: a local import that may write any registered system */
    const struct dtm_keyring *keys;
    struct dtm_store *store; /* a read connection (aggregator and system lookups) */
    struct dtm_writer *writer;
    struct dtm_mapped *input;
    size_t chunk;              /* rows per commit */
    const atomic_bool *cancel; /* set → the batch ends "cancelled" at the next chunk */
    const atomic_bool *stop;   /* set → stop after the current chunk; the batch stays running */
    void *ctx;
    /* Optional, on the runner's thread after each commit: the state and the chunk's errors. */
    void (*progress)(void *ctx, const struct dtm_batch *b, const struct dtm_rec_error *errs,
                     size_t nerrs);
};

/* Runs (or resumes) r->b to a final status: done, failed (a broken JSON or XML file: the rows
 * before the break are kept and b->error says where), or cancelled. DTM_OK when the final
 * status was committed; otherwise (the writer stopping or failing, r->stop) the batch keeps its
 * last committed state and resumes from there on the next run. */
int dtm_batch_run(struct dtm_batch_run *r);

/* Writes b (a new batch, or a changed status) through the writer and waits for the commit. */
int dtm_batch_save(struct dtm_writer *w, const struct dtm_batch *b, bool insert);

/* Priority names: "normal" 0, "high" 1, "urgent" 2 (DTM_EINVAL otherwise). */
int dtm_batch_priority_parse(const char *s, int *out);
const char *dtm_batch_priority_name(int p);
/* Fraction done, 0..1 (1 once final). */
double dtm_batch_progress(const struct dtm_batch *b);
/* The batch as the JSON object of CONTRACT §5 (plus a few more members). */
void dtm_batch_json(const struct dtm_batch *b, struct dtm_buf *out);
/* An error of a stored rejected row, ready for dtm_rec_error_message. */
void dtm_batch_error_to_rec(const struct dtm_batch_error *e, const struct dtm_dataset *ds,
                            struct dtm_rec_error *out);

/* ---- the server's queue */

struct dtm_batches;

int dtm_batches_start(const struct dtm_conf *const *conf, struct dtm_dict *dict,
                      const struct dtm_keyring *keys, struct dtm_writer *writer,
                      struct dtm_batches **out, char *err, size_t errsz);
/* A batch was queued: look again. */
void dtm_batches_wake(struct dtm_batches *q);
/* Cancels a queued or running batch and waits until it is final; *out = its state then.
 * DTM_ENOTFOUND, DTM_ECONFLICT (already final: *out filled), DTM_ESTORE. */
int dtm_batches_cancel(struct dtm_batches *q, struct dtm_store *st, const char *id,
                       struct dtm_batch *out);
/* Stops after the current chunk (the batch resumes at the next start). Before the writer stops. */
void dtm_batches_stop(struct dtm_batches *q);
void dtm_batches_free(struct dtm_batches *q);

#endif
