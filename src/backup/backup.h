/* backup — backups of a data dir and their restore (issue 10 items 1-2; T4.2 item 6 of issue
 * 5): `dtm backup`, `dtm backup verify`, `dtm restore`, `dtm drill` and the server's scheduled
 * backups. A backup is one file, taken while servers keep writing (store/snapshot.c), holding
 * the store's files, dtm.conf, the TLS certificate and key and the spooled batch files — never
 * the master key: it is encrypted under a fresh key wrapped by the master key (KEK), so the
 * master key, kept apart from the backups, is what restores it.
 *
 * The file (all integers big-endian):
 *
 *   "DTMBACK1"                  8 bytes, magic
 *   header length H             4 bytes (at most 1 MiB)
 *   header                      H bytes of JSON in clear: format, cipher, compression,
 *                               chunk_bytes, kek_id, installation, wrapped_key (hex: the backup
 *                               key wrapped under the KEK) and the manifest (dtm version, time,
 *                               source data dir and installation, records per dataset, newest
 *                               receipt and audit entry, the files with their sizes and SHA-256,
 *                               the content's size and SHA-256)
 *   chunks, each:               length L (4 bytes), flags (1 byte: 1 = final, 2 = deflated), L
 *                               bytes of AES-256-GCM ciphertext, 16-byte tag
 *
 * The content is the manifest's files one after the other, cut into blocks of chunk_bytes (the
 * last one shorter), each zlib-compressed on its own (or stored when it would not shrink) and
 * sealed as one chunk — blocks compress in parallel. Chunk i is sealed under the backup key with
 * the nonce 0^32 || i (64 bits; the key seals this file only) and the associated data
 * SHA-256(magic, H, header) || i || flags: the header, the order of the chunks and the end are
 * authenticated, so an altered byte, a truncated file, swapped chunks or a header taken from
 * another backup do not open. */
#ifndef DTM_BACKUP_H
#define DTM_BACKUP_H

#include "conf/conf.h"
#include "core/core.h"
#include "store/store.h"

#include <stdatomic.h>

#define DTM_BACKUP_MAGIC "DTMBACK1"
#define DTM_BACKUP_FORMAT 1
#define DTM_BACKUP_FILES_MAX 4096
#define DTM_BACKUP_NAME_MAX 256

struct dtm_backup_file {
    char name[DTM_BACKUP_NAME_MAX]; /* relative to the data dir */
    int64_t size;
    char sha256[65];
};

/* The manifest of a backup (what its header says). */
struct dtm_backup_manifest {
    int format;
    char dtm_version[32];
    int64_t created_us;
    char created[40]; /* RFC 3339, UTC+07:00 */
    char store[16];   /* the backend: sqlite or postgresql */
    char source_data_dir[DTM_PATH_MAX];
    char installation[24]; /* dtm_installation_id of the source */
    char kek_id[24];       /* the master key the backup key is wrapped under */
    size_t ndatasets;
    struct {
        char code[DTM_CODE_MAX];
        int64_t records;
    } dataset[DTM_SNAPSHOT_DATASETS];
    int64_t records, last_receipt_seq, cubes_applied_seq, audit_seq;
    size_t nfiles;
    struct dtm_backup_file file[DTM_BACKUP_FILES_MAX];
    int64_t content_bytes;
    char content_sha256[65];
};

/* What a backup or restore did: the manifest, the file's size, seconds taken. */
struct dtm_backup_result {
    struct dtm_backup_manifest *m; /* owned; dtm_backup_result_free */
    int64_t file_bytes;
    double seconds;
};
void dtm_backup_result_free(struct dtm_backup_result *r);

/* How a backup is made. */
struct dtm_backup_opts {
    bool progress;          /* a progress line on stderr */
    size_t threads;         /* compression threads; 0 = one per core, at most 4 */
    const char *actor_kind; /* who asked, for the audit entry: cli | server */
    const char *actor;
    bool drill; /* a recovery drill's backup (deleted after): recorded as such, never as the
                   last backup */
    atomic_bool *cancel; /* set (by another thread) to stop the backup: DTM_EBUSY; may be NULL */
};
/* Writes a backup of c's data dir to out (via out.tmp, synced, renamed; a file already there is
 * replaced) and appends backup.created (or backup.failed) to the data dir's audit trail with
 * its backup_runs row. err: one sentence. */
int dtm_backup_create(const struct dtm_conf *c, const char *out, const struct dtm_backup_opts *o,
                      struct dtm_backup_result *res, char *err, size_t errsz);

/* Checks a backup with the master key file at master_key: the header, every chunk's tag, the
 * end, the decompressed content against the manifest (sizes, SHA-256 of each file and of the
 * whole). DTM_OK, or an error with one sentence naming what is wrong: DTM_EMALFORMED (damaged
 * or truncated), DTM_EAUTH (a foreign backup: another installation's or another master key),
 * DTM_EIO (unreadable). */
int dtm_backup_verify(const char *file, const char *master_key, bool progress,
                      struct dtm_backup_result *res, char *err, size_t errsz);

/* Restores a backup into new_dir, which must not exist or be empty (or hold only master.key,
 * then used when master_key is NULL): everything goes to NEW_DIR.partial first, is checked
 * like dtm_backup_verify, the master key file is copied in (0600), the store is opened (its
 * schema migrated) and its records counted against the manifest, backup.restored is appended
 * to its audit trail; then it is renamed to new_dir. On any failure nothing is left behind. */
int dtm_backup_restore(const char *file, const char *master_key, const char *new_dir, bool progress,
                       struct dtm_backup_result *res, char *err, size_t errsz);
/* The same with the database a PostgreSQL backup goes into (store_dsn: a libpq connection
 * string of an empty database; the restored dtm.conf names it). A PostgreSQL backup needs it,
 * a SQLite one refuses it. */
int dtm_backup_restore_to(const char *file, const char *master_key, const char *new_dir,
                          const char *store_dsn, bool progress, struct dtm_backup_result *res,
                          char *err, size_t errsz);

/* ---- the server's scheduled backups ([backup] schedule_hours, dir, keep; backup/job.c) */
struct dtm_backup_job;
/* Starts the thread: every schedule_hours (0 = never) a backup into dir (relative to the data
 * dir), keeping the newest `keep` backups there; each result is recorded in the store
 * (backup_runs) for `dtm status` and metrics. conf points at the server's configuration. */
int dtm_backup_job_start(const struct dtm_conf *const *conf, struct dtm_backup_job **out, char *err,
                         size_t errsz);
void dtm_backup_job_stop(struct dtm_backup_job *j);

#endif
