/* backup/backup.c — `dtm backup`, `dtm backup verify` and `dtm restore` (issue 10): the backup
 * file described in backup/backup.h, written from a snapshot of the store (store/snapshot.c)
 * and the data dir's other files, compressed (zlib) and encrypted (AES-256-GCM) in chunks, so
 * that a store of many GB never sits in memory; read back chunk by chunk to verify or restore.
 *
 * The snapshot's copies of the databases go to a staging dir beside the output file (removed at
 * the end): the backup needs free space for one uncompressed copy of the store there, and the
 * live store is read once, inside one read transaction. The manifest (sizes and SHA-256 of
 * every file) is computed from the staged copies before the content is written, so that the
 * header, which the chunks authenticate, can carry it. */
#define _XOPEN_SOURCE 700 /* realpath */
#include "backup/backup.h"
#include "audit/audit.h"
#include "gate/gate.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define BLOCK_BYTES (1 << 20) /* content bytes per chunk */
#define CHUNK_MAX (16 << 20)  /* the most a reader accepts */
#define HEADER_MAX (1 << 20)
#define IO_BYTES (1 << 20)
#define KEY_AAD "dtm backup key v1"
#define ZLEVEL 1 /* sealed record content does not compress: spend little time on it */

void dtm_backup_result_free(struct dtm_backup_result *r)
{
    free(r->m);
    r->m = NULL;
}

/* ---- progress on a terminal */

struct progress {
    bool on;
    const char *what;
    int64_t total, last_us;
    atomic_bool *cancel; /* NULL = cannot be stopped */
};

static bool cancelled(const struct progress *p)
{
    return p->cancel && atomic_load(p->cancel);
}

static void progress_show(struct progress *p, int64_t done, bool end)
{
    int64_t now = dtm_now_us();
    if (!p->on || (!end && now - p->last_us < 200000))
        return;
    p->last_us = now;
    if (p->total > 0)
        fprintf(stderr, "\r%s: %5.1f %% (%lld of %lld MB)%s", p->what,
                100.0 * (double)done / (double)p->total, (long long)(done >> 20),
                (long long)(p->total >> 20), end ? "\n" : "");
    else
        fprintf(stderr, "\r%s: %lld MB%s", p->what, (long long)(done >> 20), end ? "\n" : "");
    fflush(stderr);
}

static int snapshot_progress(void *ctx, int64_t done, int64_t total)
{
    struct progress *p = ctx;
    p->total = total;
    progress_show(p, done, false);
    return cancelled(p);
}

/* ---- small helpers */

static void put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static int write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return DTM_EIO;
        b += w;
        n -= (size_t)w;
    }
    return DTM_OK;
}

/* Reads exactly n bytes; *got says how many came before the end of the file. */
static int read_full(int fd, void *p, size_t n, size_t *got)
{
    uint8_t *b = p;
    *got = 0;
    while (*got < n) {
        ssize_t r = read(fd, b + *got, n - *got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return DTM_EIO;
        if (r == 0)
            break;
        *got += (size_t)r;
    }
    return DTM_OK;
}

static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = DTM_OK;
    if (fd < 0)
        return DTM_EIO;
    if (fsync(fd) != 0)
        rc = DTM_EIO;
    close(fd);
    return rc;
}

static void dir_of(const char *path, char *out, size_t outsz)
{
    const char *s = strrchr(path, '/');
    if (!s)
        snprintf(out, outsz, ".");
    else if (s == path)
        snprintf(out, outsz, "/");
    else
        snprintf(out, outsz, "%.*s", (int)(s - path), path);
}

/* Removes a directory tree of ours (regular files and directories only, no symlinks followed).
 */
static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[DTM_PATH_MAX + 260];
    if (!d) {
        unlink(dir);
        return;
    }
    while ((e = readdir(d))) {
        struct stat sb;
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
            remove_tree(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* A name a backup may carry: relative, no "..", printable ASCII without backslash, at most
 * one directory level (batches/ID.data). */
static bool safe_name(const char *n)
{
    size_t len = strlen(n), slashes = 0;
    if (!len || len >= DTM_BACKUP_NAME_MAX || n[0] == '/' || n[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)n[i];
        if (ch == '/') {
            if (++slashes > 1 || n[i + 1] == '.' || n[i + 1] == '\0')
                return false;
        } else if (!(ch >= 'a' && ch <= 'z') && !(ch >= 'A' && ch <= 'Z') &&
                   !(ch >= '0' && ch <= '9') && ch != '.' && ch != '-' && ch != '_') {
            return false;
        }
    }
    return strstr(n, "..") == NULL;
}

/* ---- the sources of a backup: staged database copies and files of the data dir */

struct source {
    char name[DTM_BACKUP_NAME_MAX];
    int fd;
};

struct sources {
    struct source *v;
    size_t n, cap;
};

static int source_add(struct sources *s, const char *name, int fd)
{
    if (s->n >= DTM_BACKUP_FILES_MAX || !safe_name(name) ||
        dtm_array_reserve(&s->v, s->n, &s->cap, sizeof(*s->v))) {
        close(fd);
        return s->n >= DTM_BACKUP_FILES_MAX ? DTM_ETOOBIG : DTM_EINVAL;
    }
    snprintf(s->v[s->n].name, sizeof(s->v[s->n].name), "%s", name);
    s->v[s->n++].fd = fd;
    return DTM_OK;
}

static bool source_has(const struct sources *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->v[i].name, name))
            return true;
    return false;
}

static void sources_close(struct sources *s)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].fd >= 0)
            close(s->v[i].fd);
    free(s->v);
    memset(s, 0, sizeof(*s));
}

/* A file of the data dir (relative name inside it, else skipped: an absolute certificate path
 * belongs to whoever manages it). Missing files are skipped. */
static int add_data_file(struct sources *s, const struct dtm_conf *c, const char *name)
{
    char path[DTM_PATH_MAX];
    int fd;
    if (name[0] == '/' || source_has(s, name))
        return DTM_OK;
    dtm_conf_path(c, name, path, sizeof(path));
    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
        return errno == ENOENT ? DTM_OK : DTM_EIO;
    return source_add(s, name, fd);
}

/* The spooled batch files (batches/ID.data; not the .part of uploads under way). Opened before
 * and after the snapshot: a file deleted meanwhile stays readable through its descriptor. */
static int add_spool(struct sources *s, const struct dtm_conf *c)
{
    char dir[DTM_PATH_MAX], name[DTM_BACKUP_NAME_MAX], path[DTM_PATH_MAX + 300];
    DIR *d;
    struct dirent *e;
    int rc = DTM_OK;
    dtm_conf_path(c, "batches", dir, sizeof(dir));
    if (!(d = opendir(dir)))
        return DTM_OK;
    while ((e = readdir(d)) && rc == DTM_OK) {
        size_t n = strlen(e->d_name);
        int fd;
        if (n < 6 || strcmp(e->d_name + n - 5, ".data") != 0 || n > 200)
            continue;
        snprintf(name, sizeof(name), "batches/%.200s", e->d_name);
        if (source_has(s, name) || !safe_name(name))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
            continue; /* finished and removed meanwhile */
        rc = source_add(s, name, fd);
    }
    closedir(d);
    return rc;
}

/* SHA-256 and size of each source (first pass), and of the whole content. */
static int hash_sources(struct sources *s, struct dtm_backup_manifest *m, uint8_t *buf,
                        struct progress *p, char *err, size_t errsz)
{
    EVP_MD_CTX *all = EVP_MD_CTX_new(), *one = EVP_MD_CTX_new();
    int64_t done = 0;
    int rc = DTM_OK;
    if (!all || !one || EVP_DigestInit_ex(all, EVP_sha256(), NULL) != 1) {
        rc = DTM_ENOMEM;
        goto out;
    }
    m->nfiles = s->n;
    for (size_t i = 0; i < s->n; i++) {
        struct dtm_backup_file *f = &m->file[i];
        uint8_t md[32];
        off_t off = 0;
        ssize_t r;
        snprintf(f->name, sizeof(f->name), "%s", s->v[i].name);
        EVP_DigestInit_ex(one, EVP_sha256(), NULL);
        while ((r = pread(s->v[i].fd, buf, IO_BYTES, off)) > 0) {
            EVP_DigestUpdate(one, buf, (size_t)r);
            EVP_DigestUpdate(all, buf, (size_t)r);
            off += r;
            done += r;
            progress_show(p, done, false);
            if (cancelled(p)) {
                snprintf(err, errsz, "the backup was stopped");
                rc = DTM_EBUSY;
                goto out;
            }
        }
        if (r < 0) {
            snprintf(err, errsz, "cannot read %s: %s", f->name, strerror(errno));
            rc = DTM_EIO;
            goto out;
        }
        f->size = off;
        EVP_DigestFinal_ex(one, md, NULL);
        dtm_hex(md, 32, f->sha256);
        m->content_bytes += off;
    }
    {
        uint8_t md[32];
        EVP_DigestFinal_ex(all, md, NULL);
        dtm_hex(md, 32, m->content_sha256);
    }
out:
    EVP_MD_CTX_free(all);
    EVP_MD_CTX_free(one);
    return rc;
}

/* ---- the header */

static void header_json(struct dtm_buf *b, const struct dtm_backup_manifest *m,
                        const uint8_t wrapped[DTM_KEK_WRAPPED_LEN])
{
    char hex[2 * DTM_KEK_WRAPPED_LEN + 1];
    dtm_hex(wrapped, DTM_KEK_WRAPPED_LEN, hex);
    dtm_buf_printf(b,
                   "{\"format\":%d,\"cipher\":\"AES-256-GCM\",\"compression\":\"zlib\","
                   "\"chunk_bytes\":%d,\"kek_id\":\"%s\",\"installation\":\"%s\","
                   "\"wrapped_key\":\"%s\",\"manifest\":{\"dtm_version\":",
                   DTM_BACKUP_FORMAT, BLOCK_BYTES, m->kek_id, m->installation, hex);
    dtm_buf_json_strc(b, m->dtm_version);
    dtm_buf_printf(b, ",\"created\":\"%s\",\"created_us\":%lld,\"store\":", m->created,
                   (long long)m->created_us);
    dtm_buf_json_strc(b, m->store);
    dtm_buf_addc(b, ",\"source_data_dir\":");
    dtm_buf_json_strc(b, m->source_data_dir);
    dtm_buf_printf(b, ",\"installation\":\"%s\",\"records\":%lld,\"datasets\":{", m->installation,
                   (long long)m->records);
    for (size_t i = 0; i < m->ndatasets; i++) {
        if (i)
            dtm_buf_addch(b, ',');
        dtm_buf_json_strc(b, m->dataset[i].code);
        dtm_buf_printf(b, ":%lld", (long long)m->dataset[i].records);
    }
    dtm_buf_printf(b,
                   "},\"last_receipt_seq\":%lld,\"cubes_applied_seq\":%lld,\"audit_seq\":%lld,"
                   "\"files\":[",
                   (long long)m->last_receipt_seq, (long long)m->cubes_applied_seq,
                   (long long)m->audit_seq);
    for (size_t i = 0; i < m->nfiles; i++) {
        dtm_buf_addc(b, i ? ",{\"name\":" : "{\"name\":");
        dtm_buf_json_strc(b, m->file[i].name);
        dtm_buf_printf(b, ",\"size\":%lld,\"sha256\":\"%s\"}", (long long)m->file[i].size,
                       m->file[i].sha256);
    }
    dtm_buf_printf(b, "],\"content_bytes\":%lld,\"content_sha256\":\"%s\"}}",
                   (long long)m->content_bytes, m->content_sha256);
}

static bool json_i64(const cJSON *o, const char *name, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9.0e15)
        return false;
    *out = (int64_t)v->valuedouble;
    return true;
}

static bool json_text(const cJSON *o, const char *name, char *out, size_t outsz)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= outsz)
        return false;
    snprintf(out, outsz, "%s", v->valuestring);
    return true;
}

static bool is_hex(const char *s, size_t n)
{
    if (strlen(s) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static int unhex(const char *s, uint8_t *out, size_t n)
{
    if (!is_hex(s, 2 * n))
        return DTM_EMALFORMED;
    for (size_t i = 0; i < n; i++) {
        unsigned hi = (unsigned)(s[2 * i] <= '9' ? s[2 * i] - '0' : s[2 * i] - 'a' + 10);
        unsigned lo =
            (unsigned)(s[2 * i + 1] <= '9' ? s[2 * i + 1] - '0' : s[2 * i + 1] - 'a' + 10);
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return DTM_OK;
}

/* Parses the header (hostile until the first chunk authenticates it). */
static int header_parse(const char *text, size_t n, struct dtm_backup_manifest *m,
                        uint8_t wrapped[DTM_KEK_WRAPPED_LEN], int64_t *chunk_bytes)
{
    cJSON *root = cJSON_ParseWithLength(text, n), *man, *ds, *files, *it;
    char s[64];
    int64_t v;
    int rc = DTM_EMALFORMED;
    if (!root || !cJSON_IsObject(root))
        goto out;
    if (!json_i64(root, "format", &v) || v != DTM_BACKUP_FORMAT)
        goto out;
    m->format = (int)v;
    if (!json_text(root, "cipher", s, sizeof(s)) || strcmp(s, "AES-256-GCM") ||
        !json_text(root, "compression", s, sizeof(s)) || strcmp(s, "zlib") ||
        !json_i64(root, "chunk_bytes", chunk_bytes) || *chunk_bytes < 1 ||
        *chunk_bytes > CHUNK_MAX || !json_text(root, "kek_id", m->kek_id, sizeof(m->kek_id)) ||
        !json_text(root, "installation", m->installation, sizeof(m->installation)))
        goto out;
    {
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(root, "wrapped_key");
        if (!cJSON_IsString(w) || unhex(w->valuestring, wrapped, DTM_KEK_WRAPPED_LEN))
            goto out;
    }
    man = cJSON_GetObjectItemCaseSensitive(root, "manifest");
    if (!cJSON_IsObject(man) ||
        !json_text(man, "dtm_version", m->dtm_version, sizeof(m->dtm_version)) ||
        !json_text(man, "created", m->created, sizeof(m->created)) ||
        !json_i64(man, "created_us", &m->created_us) ||
        !json_text(man, "store", m->store, sizeof(m->store)) ||
        !json_text(man, "source_data_dir", m->source_data_dir, sizeof(m->source_data_dir)) ||
        !json_i64(man, "records", &m->records) ||
        !json_i64(man, "last_receipt_seq", &m->last_receipt_seq) ||
        !json_i64(man, "cubes_applied_seq", &m->cubes_applied_seq) ||
        !json_i64(man, "audit_seq", &m->audit_seq) ||
        !json_i64(man, "content_bytes", &m->content_bytes) ||
        !json_text(man, "content_sha256", m->content_sha256, sizeof(m->content_sha256)) ||
        !is_hex(m->content_sha256, 64))
        goto out;
    ds = cJSON_GetObjectItemCaseSensitive(man, "datasets");
    if (!cJSON_IsObject(ds))
        goto out;
    cJSON_ArrayForEach(it, ds)
    {
        if (m->ndatasets >= DTM_SNAPSHOT_DATASETS || !cJSON_IsNumber(it) ||
            strlen(it->string) >= DTM_CODE_MAX || it->valuedouble < 0)
            goto out;
        snprintf(m->dataset[m->ndatasets].code, DTM_CODE_MAX, "%s", it->string);
        m->dataset[m->ndatasets++].records = (int64_t)it->valuedouble;
    }
    files = cJSON_GetObjectItemCaseSensitive(man, "files");
    if (!cJSON_IsArray(files))
        goto out;
    v = 0;
    cJSON_ArrayForEach(it, files)
    {
        struct dtm_backup_file *f = &m->file[m->nfiles];
        if (m->nfiles >= DTM_BACKUP_FILES_MAX || !json_text(it, "name", f->name, sizeof(f->name)) ||
            !safe_name(f->name) || !json_i64(it, "size", &f->size) ||
            !json_text(it, "sha256", f->sha256, sizeof(f->sha256)) || !is_hex(f->sha256, 64))
            goto out;
        for (size_t j = 0; j < m->nfiles; j++)
            if (!strcmp(m->file[j].name, f->name))
                goto out;
        v += f->size;
        m->nfiles++;
    }
    if (v != m->content_bytes)
        goto out;
    rc = DTM_OK;
out:
    cJSON_Delete(root);
    return rc;
}

/* ---- chunks */

#define F_FINAL 1    /* the last chunk */
#define F_DEFLATED 2 /* the block is zlib-compressed (else stored: it would not shrink) */

struct sealer {
    EVP_CIPHER_CTX *ctx;
    uint8_t key[32];
    uint8_t hhash[32]; /* SHA-256 of magic, length and header */
    uint64_t index;    /* the next chunk (reading) */
};

static void chunk_iv_aad(const uint8_t hhash[32], uint64_t index, uint8_t flags, uint8_t iv[12],
                         uint8_t aad[41])
{
    memset(iv, 0, 4);
    put_be64(iv + 4, index);
    memcpy(aad, hhash, 32);
    put_be64(aad + 32, index);
    aad[40] = flags;
}

/* Seals p (n bytes) as chunk index into out: length, flags, ciphertext, tag (n + 21 bytes). */
static int chunk_seal(EVP_CIPHER_CTX *ctx, const uint8_t key[32], const uint8_t hhash[32],
                      uint64_t index, uint8_t flags, const uint8_t *p, size_t n, uint8_t *out)
{
    uint8_t iv[12], aad[41];
    int len;
    chunk_iv_aad(hhash, index, flags, iv, aad);
    put_be32(out, (uint32_t)n);
    out[4] = flags;
    if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, iv) != 1 ||
        EVP_EncryptUpdate(ctx, NULL, &len, aad, sizeof(aad)) != 1 ||
        (n && EVP_EncryptUpdate(ctx, out + 5, &len, p, (int)n) != 1) ||
        EVP_EncryptFinal_ex(ctx, out + 5 + n, &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, out + 5 + n) != 1)
        return DTM_EINTERNAL;
    return DTM_OK;
}

/* Opens the next chunk (ct: n bytes then the tag) into out. */
static int chunk_open(struct sealer *s, const uint8_t *ct, size_t n, uint8_t flags, uint8_t *out)
{
    uint8_t iv[12], aad[41];
    int len;
    chunk_iv_aad(s->hhash, s->index, flags, iv, aad);
    if (EVP_DecryptInit_ex(s->ctx, EVP_aes_256_gcm(), NULL, s->key, iv) != 1 ||
        EVP_DecryptUpdate(s->ctx, NULL, &len, aad, sizeof(aad)) != 1 ||
        (n && EVP_DecryptUpdate(s->ctx, out, &len, ct, (int)n) != 1) ||
        EVP_CIPHER_CTX_ctrl(s->ctx, EVP_CTRL_GCM_SET_TAG, 16, (void *)(uintptr_t)(ct + n)) != 1 ||
        EVP_DecryptFinal_ex(s->ctx, out + n, &len) != 1)
        return DTM_EMALFORMED;
    s->index++;
    return DTM_OK;
}

/* ---- writing a backup */

/* The master key that wraps the snapshot's data keys: master.key, or master.key.next when a
 * rotation committed but has not yet renamed it. */
static int pick_kek(const struct dtm_conf *c, const struct dtm_snapshot *snap, struct dtm_kek *kek,
                    char inst[DTM_KEK_ID_LEN + 1], char *err, size_t errsz)
{
    static const char *const names[] = {"master.key", "master.key.next"};
    char path[DTM_PATH_MAX], e[256];
    uint8_t root[32];
    if (snap->kek_mixed) {
        snprintf(err, errsz,
                 "a master key rotation is under way (data keys under two master "
                 "keys); run the backup again when `dtm key rotate-master` is done");
        return DTM_EBUSY;
    }
    for (size_t i = 0; i < DTM_ARRAY_LEN(names); i++) {
        dtm_conf_path(c, names[i], path, sizeof(path));
        if (dtm_masterkey_read(path, kek, root, e, sizeof(e)) != DTM_OK) {
            if (i == 0) {
                snprintf(err, errsz, "%s", e);
                return DTM_EIO;
            }
            continue;
        }
        dtm_installation_id(root, inst);
        OPENSSL_cleanse(root, sizeof(root));
        if (!snap->kek_id[0] || !strcmp(snap->kek_id, kek->id))
            return DTM_OK;
    }
    OPENSSL_cleanse(kek, sizeof(*kek));
    snprintf(err, errsz,
             "the data keys of the store are wrapped under master key %s, which is "
             "not in the data dir",
             snap->kek_id);
    return DTM_EIO;
}

/* S3: the backup on the audit trail of the data dir, with its row for `dtm status`. */
static int record_run(const struct dtm_conf *c, const struct dtm_backup_run *run,
                      const char *actor_kind, const char *actor, const char *detail)
{
    struct dtm_keyring kr;
    struct dtm_store *st = NULL;
    char path[DTM_PATH_MAX], err[256];
    struct dtm_audit_event ev = {
        actor_kind, actor,  strcmp(run->status, "failed") ? "backup.created" : "backup.failed",
        run->path,  detail, NULL};
    int rc;
    dtm_conf_path(c, "master.key", path, sizeof(path));
    if ((rc = dtm_keyring_load(path, &kr, err, sizeof(err))))
        return rc;
    if ((rc = dtm_store_open(c, &st, err, sizeof(err))))
        goto out;
    if ((rc = st->ops->migrate(st)) || (rc = st->ops->begin(st)))
        goto out;
    if ((rc = st->ops->backup_run_add(st, run)) ||
        (rc = dtm_audit_append(st, kr.audit_key, &ev, NULL)) || (rc = st->ops->commit(st)))
        st->ops->rollback(st);
out:
    if (st)
        st->ops->close(st);
    dtm_keyring_wipe(&kr);
    return rc;
}

/* Compresses and seals the content into fd after the header: the content (every source, one
 * after the other) is cut into blocks of BLOCK_BYTES, each compressed on its own (zlib) and
 * sealed as one chunk. Compression is most of a backup's time (≈ 45 MB/s per core here at
 * level 1), so blocks are compressed by `threads` workers while this thread reads the next
 * blocks and writes the finished ones in order. */
struct slot {
    uint8_t *in, *out; /* BLOCK_BYTES; a sealed chunk */
    size_t inn, outn;
    uint64_t index;
    bool final;
    int state; /* 0 free, 1 read (to compress), 2 being compressed, 3 sealed */
    int rc;
};

struct pipeline {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct slot *slot;
    size_t nslots;
    uint64_t next_take; /* the next block a worker takes */
    bool quit;
    const uint8_t *key, *hhash;
};

static void *compress_worker(void *arg)
{
    struct pipeline *pl = arg;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    uint8_t *z = malloc(compressBound(BLOCK_BYTES));
    pthread_mutex_lock(&pl->mu);
    for (;;) {
        struct slot *sl = &pl->slot[pl->next_take % pl->nslots];
        uLongf zn = compressBound(BLOCK_BYTES);
        const uint8_t *p;
        size_t n;
        uint8_t flags;
        int rc = DTM_OK;
        if (pl->quit)
            break;
        if (sl->state != 1 || sl->index != pl->next_take) {
            pthread_cond_wait(&pl->cv, &pl->mu);
            continue;
        }
        sl->state = 2;
        pl->next_take++;
        pthread_mutex_unlock(&pl->mu);
        flags = sl->final ? F_FINAL : 0;
        p = sl->in;
        n = sl->inn;
        if (!ctx || !z)
            rc = DTM_ENOMEM;
        else if (compress2(z, &zn, sl->in, sl->inn, ZLEVEL) == Z_OK && zn < sl->inn) {
            flags |= F_DEFLATED;
            p = z;
            n = zn;
        }
        if (rc == DTM_OK)
            rc = chunk_seal(ctx, pl->key, pl->hhash, sl->index, flags, p, n, sl->out);
        sl->outn = n + 21;
        pthread_mutex_lock(&pl->mu);
        sl->rc = rc;
        sl->state = 3;
        pthread_cond_broadcast(&pl->cv);
    }
    pthread_mutex_unlock(&pl->mu);
    EVP_CIPHER_CTX_free(ctx);
    if (z) {
        OPENSSL_cleanse(z, compressBound(BLOCK_BYTES));
        free(z);
    }
    return NULL;
}

/* Reads the next block of the content (n bytes) from the sources at *file / *off. */
static int read_block(struct sources *src, size_t *file, off_t *off, uint8_t *p, size_t n,
                      char *err, size_t errsz)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r;
        if (*file >= src->n) {
            snprintf(err, errsz, "a file of the backup shrank while it was written");
            return DTM_EIO;
        }
        r = pread(src->v[*file].fd, p + got, n - got, *off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errsz, "cannot read %s: %s", src->v[*file].name, strerror(errno));
            return DTM_EIO;
        }
        if (r == 0) {
            (*file)++;
            *off = 0;
            continue;
        }
        got += (size_t)r;
        *off += r;
    }
    return DTM_OK;
}

static int write_content(struct sources *src, int fd, const uint8_t key[32],
                         const uint8_t hhash[32], int64_t content_bytes, size_t threads,
                         struct progress *p, char *err, size_t errsz)
{
    struct pipeline pl = {.key = key, .hhash = hhash};
    pthread_t tid[8];
    size_t nthreads = 0, file = 0;
    off_t off = 0;
    uint64_t nblocks =
        content_bytes ? (uint64_t)((content_bytes + BLOCK_BYTES - 1) / BLOCK_BYTES) : 1;
    uint64_t next_fill = 0, next_write = 0;
    int64_t left = content_bytes, written = 0;
    int rc = DTM_OK;
    if (threads < 1)
        threads = 1;
    if (threads > DTM_ARRAY_LEN(tid))
        threads = DTM_ARRAY_LEN(tid);
    pl.nslots = 2 * threads + 2;
    pthread_mutex_init(&pl.mu, NULL);
    pthread_cond_init(&pl.cv, NULL);
    if (!(pl.slot = calloc(pl.nslots, sizeof(*pl.slot)))) {
        rc = DTM_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < pl.nslots; i++)
        if (!(pl.slot[i].in = malloc(BLOCK_BYTES)) ||
            !(pl.slot[i].out = malloc(compressBound(BLOCK_BYTES) + 64))) {
            rc = DTM_ENOMEM;
            goto out;
        }
    for (; nthreads < threads; nthreads++)
        if (pthread_create(&tid[nthreads], NULL, compress_worker, &pl) != 0)
            break;
    if (!nthreads) {
        snprintf(err, errsz, "cannot start the compression threads");
        rc = DTM_EIO;
        goto out;
    }
    pthread_mutex_lock(&pl.mu);
    while (next_write < nblocks && rc == DTM_OK) {
        struct slot *fs = &pl.slot[next_fill % pl.nslots], *ws = &pl.slot[next_write % pl.nslots];
        if (ws->state == 3) { /* the oldest block is sealed: write it */
            pthread_mutex_unlock(&pl.mu);
            if ((rc = ws->rc) == DTM_OK && write_all(fd, ws->out, ws->outn)) {
                snprintf(err, errsz, "cannot write the backup: %s", strerror(errno));
                rc = DTM_EIO;
            }
            written += (int64_t)ws->inn;
            progress_show(p, written, false);
            if (rc == DTM_OK && cancelled(p)) {
                snprintf(err, errsz, "the backup was stopped");
                rc = DTM_EBUSY;
            }
            pthread_mutex_lock(&pl.mu);
            ws->state = 0;
            next_write++;
            pthread_cond_broadcast(&pl.cv);
        } else if (next_fill < nblocks && fs->state == 0) { /* a free slot: read a block */
            size_t n = left < BLOCK_BYTES ? (size_t)left : BLOCK_BYTES;
            pthread_mutex_unlock(&pl.mu);
            rc = read_block(src, &file, &off, fs->in, n, err, errsz);
            pthread_mutex_lock(&pl.mu);
            fs->inn = n;
            fs->index = next_fill;
            fs->final = next_fill + 1 == nblocks;
            fs->state = 1;
            left -= (int64_t)n;
            next_fill++;
            pthread_cond_broadcast(&pl.cv);
        } else {
            pthread_cond_wait(&pl.cv, &pl.mu);
        }
    }
    pl.quit = true;
    pthread_cond_broadcast(&pl.cv);
    pthread_mutex_unlock(&pl.mu);
    for (size_t i = 0; i < nthreads; i++)
        pthread_join(tid[i], NULL);
    if (rc == DTM_OK && left != 0) {
        snprintf(err, errsz, "a file of the backup changed size while it was written");
        rc = DTM_EIO;
    }
    if (rc == DTM_OK) { /* a file that grew meanwhile: its bytes were not all read */
        uint8_t b;
        while (file < src->n && pread(src->v[file].fd, &b, 1, off) == 0) {
            file++;
            off = 0;
        }
        if (file < src->n) {
            snprintf(err, errsz, "%s grew while the backup was written", src->v[file].name);
            rc = DTM_EIO;
        }
    }
out:
    if (rc && !err[0])
        snprintf(err, errsz, "%s while writing the backup", dtm_rc_name(rc));
    if (pl.slot)
        for (size_t i = 0; i < pl.nslots; i++) {
            if (pl.slot[i].in)
                OPENSSL_cleanse(pl.slot[i].in, BLOCK_BYTES);
            free(pl.slot[i].in);
            free(pl.slot[i].out);
        }
    free(pl.slot);
    pthread_mutex_destroy(&pl.mu);
    pthread_cond_destroy(&pl.cv);
    return rc;
}

/* Staging dirs (.backup-PID-XXXXXX) of backups whose process is gone (killed, or the machine
 * stopped): each holds an uncompressed copy of the store. */
static void remove_stale_stages(const struct dtm_conf *c)
{
    char dir[DTM_PATH_MAX], path[DTM_PATH_MAX + 300];
    DIR *d;
    struct dirent *e;
    dtm_conf_path(c, ".", dir, sizeof(dir));
    if (!(d = opendir(dir)))
        return;
    while ((e = readdir(d))) {
        char *end;
        long pid;
        if (strncmp(e->d_name, ".backup-", 8) != 0)
            continue;
        pid = strtol(e->d_name + 8, &end, 10);
        if (end == e->d_name + 8 || *end != '-' || pid <= 0 ||
            (kill((pid_t)pid, 0) != 0 && errno == ESRCH)) {
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            remove_tree(path);
        }
    }
    closedir(d);
}

int dtm_backup_create(const struct dtm_conf *c, const char *out_path,
                      const struct dtm_backup_opts *o, struct dtm_backup_result *res, char *err,
                      size_t errsz)
{
    bool progress = o->progress;
    size_t threads = o->threads;
    struct dtm_snapshot *snap = calloc(1, sizeof(*snap));
    struct dtm_backup_manifest *m = calloc(1, sizeof(*m));
    struct sources src = {0};
    struct sealer s = {0};
    struct dtm_kek kek;
    struct dtm_buf hdr;
    struct progress p = {.on = progress, .what = "snapshot", .cancel = o->cancel};
    struct dtm_backup_run run = {0};
    char stage[DTM_PATH_MAX + 16], tmp[DTM_PATH_MAX + 16], dir[DTM_PATH_MAX], detail[512];
    uint8_t wrapped[DTM_KEK_WRAPPED_LEN], head[12], *buf = malloc(IO_BYTES);
    int64_t t0 = dtm_now_us();
    int rc, fd = -1;
    bool have_kek = false;
    struct stat sb;

    memset(res, 0, sizeof(*res));
    err[0] = '\0';
    if (!threads) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n < 1 ? 1 : n > 4 ? 4 : (size_t)n;
    }
    dtm_buf_init(&hdr, HEADER_MAX);
    stage[0] = '\0';
    snprintf(tmp, sizeof(tmp), "%s.tmp", out_path);
    dir_of(out_path, dir, sizeof(dir));
    if (!snap || !m || !buf) {
        snprintf(err, errsz, "out of memory");
        rc = DTM_ENOMEM;
        goto out;
    }
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        snprintf(err, errsz, "the directory %s of the backup file does not exist", dir);
        rc = DTM_EIO;
        goto out;
    }
    /* the uncompressed copies stay beside the store they come from (same disk, same access),
     * not beside the backup file, which may be on a share */
    remove_stale_stages(c);
    {
        char name[64];
        snprintf(name, sizeof(name), ".backup-%ld-XXXXXX", (long)getpid());
        dtm_conf_path(c, name, stage, sizeof(stage));
    }
    if (!mkdtemp(stage)) {
        snprintf(err, errsz, "cannot create the staging directory %s: %s", stage, strerror(errno));
        stage[0] = '\0';
        rc = DTM_EIO;
        goto out;
    }
    /* spool files first (kept open), then the snapshot, then spool files that came meanwhile */
    if ((rc = add_spool(&src, c))) {
        snprintf(err, errsz, "cannot read the spooled batch files");
        goto out;
    }
    if ((rc = dtm_store_snapshot(c, stage, snap, snapshot_progress, &p, err, errsz)))
        goto out;
    progress_show(&p, p.total, true);
    if ((rc = pick_kek(c, snap, &kek, m->installation, err, errsz)))
        goto out;
    have_kek = true;
    for (size_t i = 0; i < snap->nfiles; i++) {
        int sfd = open(snap->file[i].path, O_RDONLY | O_CLOEXEC);
        if (sfd < 0 || (rc = source_add(&src, snap->file[i].name, sfd))) {
            snprintf(err, errsz, "cannot read the snapshot of %s", snap->file[i].name);
            rc = rc ? rc : DTM_EIO;
            goto out;
        }
    }
    /* PostgreSQL's password file and TLS files come along like the TLS key: the backup is
     * encrypted */
    if ((rc = add_data_file(&src, c, "dtm.conf")) || (rc = add_data_file(&src, c, c->tls_cert)) ||
        (rc = add_data_file(&src, c, c->tls_key)) ||
        (c->store_password_file[0] && (rc = add_data_file(&src, c, c->store_password_file))) ||
        (c->store_sslrootcert[0] && (rc = add_data_file(&src, c, c->store_sslrootcert))) ||
        (c->store_sslcert[0] && (rc = add_data_file(&src, c, c->store_sslcert))) ||
        (c->store_sslkey[0] && (rc = add_data_file(&src, c, c->store_sslkey))) ||
        (rc = add_spool(&src, c))) {
        snprintf(err, errsz, "cannot read the files of the data dir %s", c->data_dir);
        goto out;
    }
    /* the manifest */
    m->format = DTM_BACKUP_FORMAT;
    snprintf(m->dtm_version, sizeof(m->dtm_version), "%s", DTM_VERSION);
    m->created_us = dtm_now_us();
    dtm_time_fmt(m->created_us, m->created, sizeof(m->created));
    snprintf(m->store, sizeof(m->store), "%s", c->backend);
    if (!realpath(c->data_dir, m->source_data_dir))
        snprintf(m->source_data_dir, sizeof(m->source_data_dir), "%s", c->data_dir);
    snprintf(m->kek_id, sizeof(m->kek_id), "%s", kek.id);
    m->ndatasets = snap->ndatasets;
    for (size_t i = 0; i < snap->ndatasets; i++) {
        snprintf(m->dataset[i].code, sizeof(m->dataset[i].code), "%s", snap->dataset[i].code);
        m->dataset[i].records = snap->dataset[i].records;
    }
    m->records = snap->records;
    m->last_receipt_seq = snap->last_receipt_seq;
    m->cubes_applied_seq = snap->cubes_applied_seq;
    m->audit_seq = snap->audit_seq;
    p = (struct progress){.on = progress, .what = "checksum", .cancel = o->cancel};
    for (size_t i = 0; i < src.n; i++)
        if (fstat(src.v[i].fd, &sb) == 0)
            p.total += sb.st_size;
    if ((rc = hash_sources(&src, m, buf, &p, err, errsz)))
        goto out;
    progress_show(&p, p.total, true);
    /* the key of this backup, wrapped under the master key */
    if (dtm_random(s.key, sizeof(s.key)) || dtm_kek_wrap(&kek, KEY_AAD, s.key, wrapped) ||
        !(s.ctx = EVP_CIPHER_CTX_new())) {
        snprintf(err, errsz, "cannot make the key of the backup");
        rc = DTM_EIO;
        goto out;
    }
    header_json(&hdr, m, wrapped);
    if (hdr.err) {
        snprintf(err, errsz, "the manifest is too large (%zu files)", m->nfiles);
        rc = DTM_ETOOBIG;
        goto out;
    }
    memcpy(head, DTM_BACKUP_MAGIC, 8);
    put_be32(head + 8, (uint32_t)hdr.n);
    {
        EVP_MD_CTX *h = EVP_MD_CTX_new();
        if (!h || EVP_DigestInit_ex(h, EVP_sha256(), NULL) != 1 ||
            EVP_DigestUpdate(h, head, sizeof(head)) != 1 ||
            EVP_DigestUpdate(h, hdr.p, hdr.n) != 1 || EVP_DigestFinal_ex(h, s.hhash, NULL) != 1) {
            EVP_MD_CTX_free(h);
            rc = DTM_ENOMEM;
            snprintf(err, errsz, "out of memory");
            goto out;
        }
        EVP_MD_CTX_free(h);
    }
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
        snprintf(err, errsz, "cannot create %s: %s", tmp, strerror(errno));
        rc = DTM_EIO;
        goto out;
    }
    if (write_all(fd, head, sizeof(head)) || write_all(fd, hdr.p, hdr.n)) {
        snprintf(err, errsz, "cannot write %s: %s", tmp, strerror(errno));
        rc = DTM_EIO;
        goto out;
    }
    p = (struct progress){
        .on = progress, .what = "backup", .total = m->content_bytes, .cancel = o->cancel};
    if ((rc = write_content(&src, fd, s.key, s.hhash, m->content_bytes, threads, &p, err, errsz)))
        goto out;
    progress_show(&p, m->content_bytes, true);
    if (fsync(fd) != 0 || fstat(fd, &sb) != 0) {
        snprintf(err, errsz, "cannot sync %s: %s", tmp, strerror(errno));
        rc = DTM_EIO;
        goto out;
    }
    res->file_bytes = sb.st_size;
    close(fd);
    fd = -1;
    if (rename(tmp, out_path) != 0 || sync_dir(dir) != DTM_OK) {
        snprintf(err, errsz, "cannot rename %s to %s: %s", tmp, out_path, strerror(errno));
        rc = DTM_EIO;
        goto out;
    }
    res->seconds = (double)(dtm_now_us() - t0) / 1e6;
    res->m = m;
    m = NULL;
    rc = DTM_OK;
out:
    if (fd >= 0)
        close(fd);
    if (rc)
        unlink(tmp);
    sources_close(&src);
    if (stage[0])
        remove_tree(stage);
    /* the run on the audit trail and for `dtm status` (also a failed one) */
    run.at = dtm_now_us();
    if (!realpath(out_path, run.path))
        snprintf(run.path, sizeof(run.path), "%s", out_path);
    snprintf(run.status, sizeof(run.status), "%s", rc ? "failed" : o->drill ? "drill" : "ok");
    if (rc)
        snprintf(run.error, sizeof(run.error), "%s", err);
    run.bytes = res->file_bytes;
    run.records = res->m ? res->m->records : 0;
    run.ms = (dtm_now_us() - t0) / 1000;
    if (res->m)
        snprintf(detail, sizeof(detail),
                 "{\"bytes\":%lld,\"records\":%lld,\"kek_id\":\"%s\",\"content_sha256\":\"%s\","
                 "\"drill\":%s}",
                 (long long)res->file_bytes, (long long)res->m->records, res->m->kek_id,
                 res->m->content_sha256, o->drill ? "true" : "false");
    else
        snprintf(detail, sizeof(detail), "{\"error\":\"%s\"}", dtm_rc_name(rc));
    if (rc != DTM_EUNSUPPORTED && record_run(c, &run, o->actor_kind, o->actor, detail) &&
        rc == DTM_OK)
        dtm_log(DTM_LOG_WARN, "backup made, but its audit entry could not be written", NULL);
    if (have_kek)
        OPENSSL_cleanse(&kek, sizeof(kek));
    OPENSSL_cleanse(s.key, sizeof(s.key));
    EVP_CIPHER_CTX_free(s.ctx);
    dtm_buf_free(&hdr);
    free(buf);
    free(snap);
    free(m);
    return rc;
}

/* ---- reading a backup */

/* Where the content goes while it is read: nowhere (verify) or into files under dir. */
struct sink {
    const struct dtm_backup_manifest *m;
    const char *dir; /* NULL = verify only */
    size_t file;     /* the file being filled */
    int64_t at;      /* bytes of it so far */
    int fd;
    EVP_MD_CTX *one, *all;
    char *err;
    size_t errsz;
    const char *name; /* the backup file, for messages */
};

static int sink_open_file(struct sink *k)
{
    char path[DTM_PATH_MAX + 300];
    const char *name = k->m->file[k->file].name, *slash = strchr(name, '/');
    if (!k->dir)
        return DTM_OK;
    if (slash) {
        snprintf(path, sizeof(path), "%s/%.*s", k->dir, (int)(slash - name), name);
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            goto fail;
    }
    snprintf(path, sizeof(path), "%s/%s", k->dir, name);
    if ((k->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0)
        goto fail;
    return DTM_OK;
fail:
    snprintf(k->err, k->errsz, "cannot create %s: %s", path, strerror(errno));
    return DTM_EIO;
}

/* The end of the current file: its size and SHA-256 against the manifest. */
static int sink_close_file(struct sink *k)
{
    const struct dtm_backup_file *f = &k->m->file[k->file];
    uint8_t md[32];
    char hex[65];
    EVP_DigestFinal_ex(k->one, md, NULL);
    dtm_hex(md, 32, hex);
    if (k->fd >= 0) {
        int bad = fsync(k->fd) != 0;
        bad |= close(k->fd) != 0;
        k->fd = -1;
        if (bad) {
            snprintf(k->err, k->errsz, "cannot write %s: %s", f->name, strerror(errno));
            return DTM_EIO;
        }
    }
    if (strcmp(hex, f->sha256) != 0) {
        snprintf(k->err, k->errsz, "%s is damaged: the SHA-256 of %s does not match its manifest",
                 k->name, f->name);
        return DTM_EMALFORMED;
    }
    k->file++;
    k->at = 0;
    EVP_DigestInit_ex(k->one, EVP_sha256(), NULL);
    return DTM_OK;
}

/* n decompressed bytes of the content. */
static int sink_put(struct sink *k, const uint8_t *p, size_t n)
{
    int rc;
    EVP_DigestUpdate(k->all, p, n);
    while (n) {
        const struct dtm_backup_file *f;
        size_t take;
        /* files of size 0 end where they start */
        while (k->file < k->m->nfiles && k->m->file[k->file].size == k->at) {
            if (k->at == 0 && (rc = sink_open_file(k)))
                return rc;
            if ((rc = sink_close_file(k)))
                return rc;
        }
        if (k->file >= k->m->nfiles) {
            snprintf(k->err, k->errsz,
                     "%s is damaged: its content is longer than its manifest says", k->name);
            return DTM_EMALFORMED;
        }
        f = &k->m->file[k->file];
        if (k->at == 0 && (rc = sink_open_file(k)))
            return rc;
        take = (size_t)(f->size - k->at) < n ? (size_t)(f->size - k->at) : n;
        EVP_DigestUpdate(k->one, p, take);
        if (k->fd >= 0 && write_all(k->fd, p, take)) {
            snprintf(k->err, k->errsz, "cannot write %s: %s", f->name, strerror(errno));
            return DTM_EIO;
        }
        k->at += (int64_t)take;
        p += take;
        n -= take;
    }
    return DTM_OK;
}

/* The end of the content: every file complete, the whole checksum. */
static int sink_end(struct sink *k)
{
    uint8_t md[32];
    char hex[65];
    int rc;
    while (k->file < k->m->nfiles && k->m->file[k->file].size == k->at) {
        if (k->at == 0 && (rc = sink_open_file(k)))
            return rc;
        if ((rc = sink_close_file(k)))
            return rc;
    }
    if (k->file < k->m->nfiles) {
        snprintf(k->err, k->errsz, "%s is damaged: its content ends inside %s", k->name,
                 k->m->file[k->file].name);
        return DTM_EMALFORMED;
    }
    EVP_DigestFinal_ex(k->all, md, NULL);
    dtm_hex(md, 32, hex);
    if (strcmp(hex, k->m->content_sha256) != 0) {
        snprintf(k->err, k->errsz,
                 "%s is damaged: the SHA-256 of its content does not match its manifest", k->name);
        return DTM_EMALFORMED;
    }
    return DTM_OK;
}

/* Opens, checks and reads a whole backup into the sink's dir (NULL = nowhere). */
static int read_backup(const char *file, const char *master_key, const char *dir, bool progress,
                       struct dtm_backup_manifest *m, int64_t *file_bytes, char *err, size_t errsz)
{
    struct sealer s = {0};
    struct sink k = {.m = m, .dir = dir, .fd = -1, .err = err, .errsz = errsz, .name = file};
    struct dtm_kek kek;
    struct progress p = {.on = progress, .what = dir ? "restore" : "verify"};
    uint8_t head[12], wrapped[DTM_KEK_WRAPPED_LEN], root[32], *ct = NULL, *pt = NULL, *zout = NULL;
    char *hdr = NULL, inst[DTM_KEK_ID_LEN + 1], kerr[256];
    int64_t chunk_bytes = 0, pos;
    size_t got, maxct = 0;
    bool final = false, have_kek = false;
    struct stat sb;
    int rc, fd = open(file, O_RDONLY | O_CLOEXEC);

    if (fd < 0 || fstat(fd, &sb) != 0) {
        snprintf(err, errsz, "cannot open the backup %s: %s", file, strerror(errno));
        rc = DTM_EIO;
        goto out;
    }
    *file_bytes = sb.st_size;
    p.total = sb.st_size;
    if (read_full(fd, head, sizeof(head), &got) || got != sizeof(head) ||
        memcmp(head, DTM_BACKUP_MAGIC, 8) != 0) {
        snprintf(err, errsz, "%s is not a DTM backup (no DTMBACK1 header)", file);
        rc = DTM_EMALFORMED;
        goto out;
    }
    if (get_be32(head + 8) == 0 || get_be32(head + 8) > HEADER_MAX) {
        snprintf(err, errsz, "%s is damaged: its header length is impossible", file);
        rc = DTM_EMALFORMED;
        goto out;
    }
    if (!(hdr = malloc(get_be32(head + 8))) || read_full(fd, hdr, get_be32(head + 8), &got) ||
        got != get_be32(head + 8)) {
        snprintf(err, errsz, "%s is truncated: its header is cut short", file);
        rc = DTM_EMALFORMED;
        goto out;
    }
    if (header_parse(hdr, got, m, wrapped, &chunk_bytes)) {
        snprintf(err, errsz, "%s is damaged: its header is not a valid backup manifest", file);
        rc = DTM_EMALFORMED;
        goto out;
    }
    {
        EVP_MD_CTX *h = EVP_MD_CTX_new();
        if (!h || EVP_DigestInit_ex(h, EVP_sha256(), NULL) != 1 ||
            EVP_DigestUpdate(h, head, sizeof(head)) != 1 || EVP_DigestUpdate(h, hdr, got) != 1 ||
            EVP_DigestFinal_ex(h, s.hhash, NULL) != 1) {
            EVP_MD_CTX_free(h);
            rc = DTM_ENOMEM;
            snprintf(err, errsz, "out of memory");
            goto out;
        }
        EVP_MD_CTX_free(h);
    }
    /* the master key must unwrap the backup's key */
    if ((rc = dtm_masterkey_read(master_key, &kek, root, kerr, sizeof(kerr)))) {
        snprintf(err, errsz, "%s", kerr);
        rc = DTM_EIO;
        goto out;
    }
    have_kek = true;
    dtm_installation_id(root, inst);
    OPENSSL_cleanse(root, sizeof(root));
    if (dtm_kek_unwrap(&kek, KEY_AAD, wrapped, s.key)) {
        if (strcmp(inst, m->installation) != 0)
            snprintf(err, errsz,
                     "%s is a backup of another DTM installation (%s): the master key %s belongs "
                     "to installation %s",
                     file, m->installation, master_key, inst);
        else if (strcmp(kek.id, m->kek_id) != 0)
            snprintf(err, errsz,
                     "%s was made under master key %s, but %s is master key %s: give the master "
                     "key that was current when the backup was made",
                     file, m->kek_id, master_key, kek.id);
        else
            snprintf(err, errsz, "%s is damaged: its key does not open with the master key", file);
        rc = strcmp(kek.id, m->kek_id) ? DTM_EAUTH : DTM_EMALFORMED;
        goto out;
    }
    maxct = compressBound((uLong)chunk_bytes);
    if (!(s.ctx = EVP_CIPHER_CTX_new()) || !(ct = malloc(maxct + 16)) || !(pt = malloc(maxct)) ||
        !(zout = malloc((size_t)chunk_bytes)) || !(k.one = EVP_MD_CTX_new()) ||
        !(k.all = EVP_MD_CTX_new()) || EVP_DigestInit_ex(k.one, EVP_sha256(), NULL) != 1 ||
        EVP_DigestInit_ex(k.all, EVP_sha256(), NULL) != 1) {
        snprintf(err, errsz, "out of memory");
        rc = DTM_ENOMEM;
        goto out;
    }
    pos = (int64_t)sizeof(head) + (int64_t)got;
    while (!final) {
        uint8_t ch[5];
        uint32_t n;
        const uint8_t *block;
        uLongf bn = (uLongf)chunk_bytes;
        if ((rc = read_full(fd, ch, sizeof(ch), &got)))
            goto io;
        if (got == 0) {
            snprintf(err, errsz,
                     "%s is truncated: it ends after chunk %llu, before its final chunk", file,
                     (unsigned long long)s.index);
            rc = DTM_EMALFORMED;
            goto out;
        }
        n = get_be32(ch);
        if (got != sizeof(ch) || n > maxct || ch[4] > (F_FINAL | F_DEFLATED)) {
            snprintf(err, errsz, "%s is %s at chunk %llu (byte %lld)", file,
                     got != sizeof(ch) ? "truncated" : "damaged", (unsigned long long)s.index,
                     (long long)pos);
            rc = DTM_EMALFORMED;
            goto out;
        }
        final = (ch[4] & F_FINAL) != 0;
        if ((rc = read_full(fd, ct, (size_t)n + 16, &got)))
            goto io;
        if (got != (size_t)n + 16) {
            snprintf(err, errsz, "%s is truncated: it ends inside chunk %llu", file,
                     (unsigned long long)s.index);
            rc = DTM_EMALFORMED;
            goto out;
        }
        if (chunk_open(&s, ct, n, ch[4], pt)) {
            snprintf(err, errsz,
                     "%s is damaged or altered: chunk %llu (byte %lld) fails its "
                     "authentication tag",
                     file, (unsigned long long)s.index, (long long)pos);
            rc = DTM_EMALFORMED;
            goto out;
        }
        pos += 5 + (int64_t)n + 16;
        block = pt;
        bn = n;
        if (ch[4] & F_DEFLATED) {
            bn = (uLongf)chunk_bytes;
            if (uncompress(zout, &bn, pt, n) != Z_OK) {
                snprintf(err, errsz, "%s is damaged: chunk %llu does not decompress", file,
                         (unsigned long long)s.index - 1);
                rc = DTM_EMALFORMED;
                goto out;
            }
            block = zout;
        }
        if (bn > (uLongf)chunk_bytes || (!final && bn != (uLongf)chunk_bytes)) {
            snprintf(err, errsz, "%s is damaged: chunk %llu has the wrong size", file,
                     (unsigned long long)s.index - 1);
            rc = DTM_EMALFORMED;
            goto out;
        }
        if ((rc = sink_put(&k, block, bn)))
            goto out;
        progress_show(&p, pos, false);
    }
    if ((rc = read_full(fd, ct, 1, &got)))
        goto io;
    if (got) {
        snprintf(err, errsz, "%s is damaged: it has bytes after its final chunk", file);
        rc = DTM_EMALFORMED;
        goto out;
    }
    if ((rc = sink_end(&k)))
        goto out;
    progress_show(&p, pos, true);
    rc = DTM_OK;
    goto out;
io:
    snprintf(err, errsz, "cannot read the backup %s: %s", file, strerror(errno));
    rc = DTM_EIO;
out:
    if (p.on && p.last_us && rc)
        fputc('\n', stderr);
    if (k.fd >= 0)
        close(k.fd);
    if (fd >= 0)
        close(fd);
    if (have_kek)
        OPENSSL_cleanse(&kek, sizeof(kek));
    OPENSSL_cleanse(s.key, sizeof(s.key));
    if (pt) {
        OPENSSL_cleanse(pt, maxct);
        free(pt);
    }
    if (zout) {
        OPENSSL_cleanse(zout, (size_t)chunk_bytes);
        free(zout);
    }
    EVP_MD_CTX_free(k.one);
    EVP_MD_CTX_free(k.all);
    EVP_CIPHER_CTX_free(s.ctx);
    free(ct);
    free(hdr);
    return rc;
}

int dtm_backup_verify(const char *file, const char *master_key, bool progress,
                      struct dtm_backup_result *res, char *err, size_t errsz)
{
    int64_t t0 = dtm_now_us();
    int rc;
    memset(res, 0, sizeof(*res));
    if (!(res->m = calloc(1, sizeof(*res->m)))) {
        snprintf(err, errsz, "out of memory");
        return DTM_ENOMEM;
    }
    rc = read_backup(file, master_key, NULL, progress, res->m, &res->file_bytes, err, errsz);
    res->seconds = (double)(dtm_now_us() - t0) / 1e6;
    return rc;
}

/* ---- restoring */

/* Whether dir is missing (*exists false), empty, or holds only master.key (*key_only). */
static int check_target(const char *dir, bool *exists, bool *key_only, char *err, size_t errsz)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t others = 0;
    *exists = *key_only = false;
    if (!d) {
        if (errno == ENOENT)
            return DTM_OK;
        snprintf(err, errsz, "cannot read the directory %s: %s", dir, strerror(errno));
        return DTM_EIO;
    }
    *exists = true;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (!strcmp(e->d_name, "master.key"))
            *key_only = true;
        else
            others++;
    }
    closedir(d);
    if (others) {
        snprintf(err, errsz,
                 "%s is not empty: restore into a new or empty directory (nothing in it is "
                 "overwritten)",
                 dir);
        return DTM_EEXIST;
    }
    return DTM_OK;
}

/* Copies the master key file (0600, synced). */
static int copy_key(const char *from, const char *to, char *err, size_t errsz)
{
    uint8_t buf[512];
    ssize_t n;
    size_t got;
    int in = open(from, O_RDONLY | O_CLOEXEC), out, rc = DTM_OK;
    if (in < 0) {
        snprintf(err, errsz, "cannot open the master key %s: %s", from, strerror(errno));
        return DTM_EIO;
    }
    n = read_full(in, buf, sizeof(buf), &got) ? -1 : (ssize_t)got;
    close(in);
    if (n <= 0 || (size_t)n == sizeof(buf)) {
        snprintf(err, errsz, "cannot read the master key %s", from);
        return DTM_EIO;
    }
    if ((out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
        snprintf(err, errsz, "cannot create %s: %s", to, strerror(errno));
        rc = DTM_EIO;
    } else {
        if (fchmod(out, 0600) != 0 || write_all(out, buf, (size_t)n) || fsync(out) != 0) {
            snprintf(err, errsz, "cannot write %s: %s", to, strerror(errno));
            rc = DTM_EIO;
        }
        close(out);
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    return rc;
}

struct count_ctx {
    const struct dtm_backup_manifest *m;
    int64_t records;
};

/* The restored store: schema migrated, records per dataset as in the manifest, the restore on
 * its audit trail. */
static int check_restored(const char *dir, const char *file, const struct dtm_backup_manifest *m,
                          char *err, size_t errsz)
{
    struct dtm_conf c;
    struct dtm_store *st = NULL;
    struct dtm_keyring kr;
    struct dtm_snapshot *snap = NULL;
    char path[DTM_PATH_MAX], e[512], detail[512];
    char user[128];
    int rc;
    bool have_kr = false;
    dtm_conf_defaults(&c, dir);
    dtm_conf_path(&c, "dtm.conf", path, sizeof(path));
    if ((rc = dtm_conf_load(&c, path, e, sizeof(e)))) {
        snprintf(err, errsz, "the restored configuration does not load: %s", e);
        return rc;
    }
    if (strcmp(c.backend, m->store) != 0) {
        snprintf(err, errsz, "the restored configuration names the backend %s, the backup holds %s",
                 c.backend, m->store);
        return DTM_EINVAL;
    }
    if (strcmp(c.backend, "sqlite") == 0 && c.database[0] == '/') {
        snprintf(err, errsz, "the restored configuration names a database outside the data dir");
        return DTM_EINVAL;
    }
    /* the counts, from the restored files as they are */
    if (!(snap = calloc(1, sizeof(*snap)))) {
        snprintf(err, errsz, "out of memory");
        return DTM_ENOMEM;
    }
    if ((rc = dtm_store_snapshot(&c, NULL, snap, NULL, NULL, e, sizeof(e)))) {
        snprintf(err, errsz, "the restored store does not open: %s", e);
        free(snap);
        return rc;
    }
    rc = snap->records == m->records && snap->last_receipt_seq == m->last_receipt_seq
             ? DTM_OK
             : DTM_EMALFORMED;
    for (size_t i = 0; i < m->ndatasets && rc == DTM_OK; i++)
        if (i >= snap->ndatasets || strcmp(snap->dataset[i].code, m->dataset[i].code) ||
            snap->dataset[i].records != m->dataset[i].records)
            rc = DTM_EMALFORMED;
    free(snap);
    if (rc) {
        snprintf(err, errsz, "the restored store does not hold the records its manifest counts");
        return rc;
    }
    dtm_conf_path(&c, "master.key", path, sizeof(path));
    if ((rc = dtm_keyring_load(path, &kr, e, sizeof(e)))) {
        snprintf(err, errsz, "%s", e);
        return rc;
    }
    have_kr = true;
    if ((rc = dtm_store_open(&c, &st, e, sizeof(e)))) {
        snprintf(err, errsz, "the restored store does not open: %s", e);
        goto out;
    }
    if ((rc = st->ops->migrate(st))) {
        snprintf(err, errsz, "the restored store's schema cannot be brought up to date");
        goto out;
    }
    {
        struct dtm_buf d;
        dtm_buf_init(&d, sizeof(detail) - 1);
        dtm_buf_addc(&d, "{\"file\":");
        dtm_buf_json_strc(&d, file);
        dtm_buf_printf(&d,
                       ",\"created\":\"%s\",\"installation\":\"%s\",\"records\":%lld,"
                       "\"content_sha256\":\"%s\"}",
                       m->created, m->installation, (long long)m->records, m->content_sha256);
        snprintf(detail, sizeof(detail), "%s", d.err ? "{}" : d.p);
        dtm_buf_free(&d);
    }
    dtm_audit_os_user(user, sizeof(user));
    if ((rc = st->ops->begin(st)) == DTM_OK) {
        struct dtm_audit_event ev = {"cli",  user, "backup.restored", m->source_data_dir,
                                     detail, NULL};
        if ((rc = dtm_audit_append(st, kr.audit_key, &ev, NULL)) || (rc = st->ops->commit(st)))
            st->ops->rollback(st);
    }
    if (rc)
        snprintf(err, errsz, "cannot write the restore to the restored audit trail");
out:
    if (st)
        st->ops->close(st);
    if (have_kr)
        dtm_keyring_wipe(&kr);
    return rc;
}

/* A PostgreSQL backup: the restored dtm.conf is pointed at store_dsn (a [store] section
 * appended: the last value of a key wins), the dump is loaded into that database (empty; all of
 * it or nothing) and removed from the data dir. */
static int pg_load(const char *dir, const char *store_dsn, char *err, size_t errsz)
{
    struct dtm_conf c;
    char path[DTM_PATH_MAX + 32], e[512];
    FILE *f;
    int rc;
    snprintf(path, sizeof(path), "%s/dtm.conf", dir);
    if (!(f = fopen(path, "a"))) {
        snprintf(err, errsz, "cannot write %s: %s", path, strerror(errno));
        return DTM_EIO;
    }
    fprintf(f, "\n# dtm restore: the database the backup was restored into\n[store]\ndsn = %s\n",
            store_dsn);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        fclose(f);
        snprintf(err, errsz, "cannot write %s: %s", path, strerror(errno));
        return DTM_EIO;
    }
    fclose(f);
    dtm_conf_defaults(&c, dir);
    if ((rc = dtm_conf_load(&c, path, e, sizeof(e)))) {
        snprintf(err, errsz, "the restored configuration does not load: %s", e);
        return rc;
    }
    snprintf(path, sizeof(path), "%s/%s", dir, DTM_PG_DUMP_NAME);
    rc = dtm_store_pg_load(&c, path, err, errsz);
    unlink(path);
    return rc;
}

int dtm_backup_restore(const char *file, const char *master_key, const char *new_dir, bool progress,
                       struct dtm_backup_result *res, char *err, size_t errsz)
{
    return dtm_backup_restore_to(file, master_key, new_dir, NULL, progress, res, err, errsz);
}

int dtm_backup_restore_to(const char *file, const char *master_key, const char *new_dir,
                          const char *store_dsn, bool progress, struct dtm_backup_result *res,
                          char *err, size_t errsz)
{
    bool loaded = false;
    char partial[DTM_PATH_MAX + 16], key_in_dir[DTM_PATH_MAX + 16], key_copy[DTM_PATH_MAX + 32];
    char parent[DTM_PATH_MAX], target[DTM_PATH_MAX];
    bool exists, key_only;
    int64_t t0 = dtm_now_us();
    int rc;
    memset(res, 0, sizeof(*res));
    snprintf(target, sizeof(target), "%s", new_dir);
    while (strlen(target) > 1 && target[strlen(target) - 1] == '/')
        target[strlen(target) - 1] = '\0';
    if ((rc = check_target(target, &exists, &key_only, err, errsz)))
        return rc;
    snprintf(key_in_dir, sizeof(key_in_dir), "%s/master.key", target);
    if (!master_key) {
        if (!key_only) {
            snprintf(err, errsz,
                     "restoring needs the master key the backup was made under: give "
                     "--master-key PATH (or put it in %s as master.key)",
                     target);
            return DTM_EINVAL;
        }
        master_key = key_in_dir;
    } else if (key_only) {
        snprintf(err, errsz, "%s already holds a master.key: remove it or leave out --master-key",
                 target);
        return DTM_EEXIST;
    }
    dir_of(target, parent, sizeof(parent));
    snprintf(partial, sizeof(partial), "%s.partial", target);
    if (mkdir(partial, 0700) != 0) {
        if (errno == EEXIST)
            snprintf(err, errsz, "%s exists (an interrupted restore?): remove it and restore again",
                     partial);
        else
            snprintf(err, errsz, "cannot create %s: %s", partial, strerror(errno));
        return errno == EEXIST ? DTM_EEXIST : DTM_EIO;
    }
    if (!(res->m = calloc(1, sizeof(*res->m)))) {
        snprintf(err, errsz, "out of memory");
        rc = DTM_ENOMEM;
        goto fail;
    }
    if ((rc = read_backup(file, master_key, partial, progress, res->m, &res->file_bytes, err,
                          errsz)))
        goto fail;
    if (strcmp(res->m->store, "postgresql") == 0) {
        if (!store_dsn) {
            snprintf(err, errsz,
                     "%s is a backup of a PostgreSQL store: name an empty database to restore it "
                     "into with --store-dsn DSN",
                     file);
            rc = DTM_EINVAL;
            goto fail;
        }
        if ((rc = pg_load(partial, store_dsn, err, errsz)))
            goto fail;
        loaded = true;
    } else if (store_dsn) {
        snprintf(err, errsz,
                 "%s is a backup of a %s store, restored into the data dir: --store-dsn is for "
                 "PostgreSQL backups",
                 file, res->m->store);
        rc = DTM_EINVAL;
        goto fail;
    }
    snprintf(key_copy, sizeof(key_copy), "%s/master.key", partial);
    if ((rc = copy_key(master_key, key_copy, err, errsz)))
        goto fail;
    if ((rc = check_restored(partial, file, res->m, err, errsz)))
        goto fail;
    if (sync_dir(partial) != DTM_OK) {
        snprintf(err, errsz, "cannot sync %s", partial);
        rc = DTM_EIO;
        goto fail;
    }
    /* an empty target is replaced by the rename; a key-only one gives its key up first (the copy
     * in the restored dir is synced) */
    if (key_only && unlink(key_in_dir) != 0) {
        snprintf(err, errsz, "cannot move %s: %s", key_in_dir, strerror(errno));
        rc = DTM_EIO;
        goto fail;
    }
    if (rename(partial, target) != 0) {
        snprintf(err, errsz, "cannot rename %s to %s: %s", partial, target, strerror(errno));
        rc = DTM_EIO;
        if (key_only)
            copy_key(key_copy, key_in_dir, err, 0);
        goto fail;
    }
    sync_dir(parent);
    res->seconds = (double)(dtm_now_us() - t0) / 1e6;
    return DTM_OK;
fail:
    remove_tree(partial);
    if (loaded) { /* the tables stay in the database: say so */
        size_t n = strlen(err);
        snprintf(err + n, errsz - n,
                 " (the database named by --store-dsn now holds the restored tables: drop and "
                 "create it again before another restore)");
    }
    (void)exists;
    return rc;
}
