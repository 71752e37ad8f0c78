/* batch/spool.c — an uploaded batch file kept on disk: written to DATA_DIR/batches/ID.part as it
 * arrives (gunzipped on the fly by zlib, so a compressed upload is read once), synced and renamed
 * to ID.data before the 202 is sent — a batch that was answered survives a crash. Also the
 * read-only mapping through which run.c reads a batch.
 *
 * T4.2: the file never holds the upload in clear. It is "DTMSPOOL", a version byte and a random
 * 16-byte file id, then frames: a 4-byte big-endian length and a chunk of at most 64 KiB sealed
 * under the current data key (gate/datakey.c) with the file id, the chunk's index and whether
 * it is the last as associated data; the last frame (possibly empty) marks the end, so a file
 * cut short or with chunks swapped, dropped or altered does not open. */
#define _DEFAULT_SOURCE /* madvise(MADV_DONTNEED): posix_madvise's DONTNEED is a no-op in glibc */
#include "batch/batch.h"

#include "gate/gate.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <zlib.h>

#define SPOOL_MAGIC "DTMSPOOL"
#define SPOOL_HDR (8 + 1 + 16)
#define SPOOL_CHUNK (64 * 1024)

struct dtm_spool {
    int fd;
    struct dtm_datakeys *dk;
    uint8_t file_id[16];
    uint64_t chunk_no;
    size_t pn; /* plaintext waiting in plain */
    uint8_t plain[SPOOL_CHUNK];
    uint8_t frame[4 + SPOOL_CHUNK + DTM_SEAL_OVERHEAD];
    char part[DTM_PATH_MAX];
    char data[DTM_PATH_MAX];
    char dir[DTM_PATH_MAX];
    bool gzip, zinit, zend, finished;
    z_stream z;
    int64_t bytes, max;
    char out[64 * 1024];
};

void dtm_spool_path(const struct dtm_conf *c, const char *id, char *out, size_t outsz)
{
    char name[DTM_ID_MAX + 16];
    snprintf(name, sizeof(name), "batches/%s.data", id);
    dtm_conf_path(c, name, out, outsz);
}

static int write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return DTM_EIO;
        }
        p += w;
        n -= (size_t)w;
    }
    return DTM_OK;
}

int dtm_spool_open(const struct dtm_conf *c, const char *id, bool gzip, int64_t max,
                   struct dtm_spool **out)
{
    struct dtm_spool *s = calloc(1, sizeof(*s));
    if (!s)
        return DTM_ENOMEM;
    s->fd = -1;
    s->gzip = gzip;
    s->max = max;
    dtm_conf_path(c, "batches", s->dir, sizeof(s->dir));
    if (mkdir(s->dir, 0700) != 0 && errno != EEXIST) {
        free(s);
        return DTM_EIO;
    }
    dtm_spool_path(c, id, s->data, sizeof(s->data));
    snprintf(s->part, sizeof(s->part), "%s", s->data);
    snprintf(s->part + strlen(s->part) - 4, 5, "part");
    if (!(s->dk = dtm_datakeys_get(c)) || dtm_random(s->file_id, sizeof(s->file_id))) {
        free(s);
        return DTM_EIO;
    }
    s->fd = open(s->part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (s->fd < 0) {
        free(s);
        return DTM_EIO;
    }
    {
        uint8_t hdr[SPOOL_HDR];
        memcpy(hdr, SPOOL_MAGIC, 8);
        hdr[8] = 1;
        memcpy(hdr + 9, s->file_id, 16);
        if (write_all(s->fd, hdr, sizeof(hdr))) {
            dtm_spool_close(s);
            return DTM_EIO;
        }
    }
    if (gzip) {
        /* 16 + MAX_WBITS: a gzip wrapper (not zlib, not raw deflate) */
        if (inflateInit2(&s->z, 16 + MAX_WBITS) != Z_OK) {
            dtm_spool_close(s);
            return DTM_ENOMEM;
        }
        s->zinit = true;
    }
    *out = s;
    return DTM_OK;
}

/* The associated data of chunk i of a file: file id | i (8 bytes, big-endian) | last. */
static void chunk_aad(const uint8_t file_id[16], uint64_t i, bool last, uint8_t aad[25])
{
    memcpy(aad, file_id, 16);
    for (int k = 0; k < 8; k++)
        aad[16 + k] = (uint8_t)(i >> (56 - 8 * k));
    aad[24] = last;
}

/* Seals what waits in s->plain as the next chunk and writes its frame. */
static int flush_chunk(struct dtm_spool *s, bool last)
{
    uint8_t aad[25];
    size_t n = s->pn + DTM_SEAL_OVERHEAD;
    int rc;
    chunk_aad(s->file_id, s->chunk_no, last, aad);
    for (int k = 0; k < 4; k++)
        s->frame[k] = (uint8_t)(n >> (24 - 8 * k));
    if ((rc = dtm_datakey_seal_to(s->dk, aad, sizeof(aad), s->plain, s->pn, s->frame + 4)))
        return rc;
    if (write_all(s->fd, s->frame, 4 + n))
        return DTM_EIO;
    s->chunk_no++;
    s->pn = 0;
    return DTM_OK;
}

static int put(struct dtm_spool *s, const char *p, size_t n)
{
    if (s->bytes + (int64_t)n > s->max)
        return DTM_ETOOBIG;
    while (n) {
        size_t k = DTM_MIN(n, SPOOL_CHUNK - s->pn);
        int rc;
        memcpy(s->plain + s->pn, p, k);
        s->pn += k;
        p += k;
        n -= k;
        s->bytes += (int64_t)k;
        if (s->pn == SPOOL_CHUNK && (rc = flush_chunk(s, false)))
            return rc;
    }
    return DTM_OK;
}

int dtm_spool_write(struct dtm_spool *s, const char *p, size_t n)
{
    if (!s->gzip)
        return put(s, p, n);
    s->z.next_in = (Bytef *)(uintptr_t)p;
    s->z.avail_in = (uInt)n;
    while (s->z.avail_in) {
        int zr, rc;
        if (s->zend) { /* another gzip member follows (gzip -c a b) */
            if (inflateReset(&s->z) != Z_OK)
                return DTM_EMALFORMED;
            s->zend = false;
        }
        s->z.next_out = (Bytef *)s->out;
        s->z.avail_out = sizeof(s->out);
        zr = inflate(&s->z, Z_NO_FLUSH);
        if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR)
            return zr == Z_MEM_ERROR ? DTM_ENOMEM : DTM_EMALFORMED;
        if ((rc = put(s, s->out, sizeof(s->out) - s->z.avail_out)))
            return rc;
        if (zr == Z_STREAM_END)
            s->zend = true;
        else if (zr == Z_BUF_ERROR && s->z.avail_out)
            break;
    }
    return DTM_OK;
}

/* fsync of the directory, so the rename itself is durable */
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

int dtm_spool_finish(struct dtm_spool *s, int64_t *bytes)
{
    int rc;
    if (s->gzip && !s->zend)
        return DTM_EMALFORMED; /* truncated */
    if ((rc = flush_chunk(s, true)))
        return rc;
    if (fsync(s->fd) != 0 || close(s->fd) != 0) {
        s->fd = -1;
        return DTM_EIO;
    }
    s->fd = -1;
    if (rename(s->part, s->data) != 0)
        return DTM_EIO;
    s->finished = true;
    *bytes = s->bytes;
    return sync_dir(s->dir);
}

void dtm_spool_close(struct dtm_spool *s)
{
    if (!s)
        return;
    if (s->fd >= 0)
        close(s->fd);
    if (!s->finished)
        unlink(s->part);
    if (s->zinit)
        inflateEnd(&s->z);
    OPENSSL_cleanse(s->plain, sizeof(s->plain));
    free(s);
}

/* ---- mapping */

int dtm_map_file(const char *path, struct dtm_mapped *m)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    memset(m, 0, sizeof(*m));
    if (fd < 0)
        return errno == ENOENT ? DTM_ENOTFOUND : DTM_EIO;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return DTM_EIO;
    }
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return DTM_EIO;
        }
        madvise(p, (size_t)st.st_size, MADV_SEQUENTIAL);
        m->p = p;
        m->n = (size_t)st.st_size;
    } else {
        m->p = "";
    }
    close(fd);
    return DTM_OK;
}

/* The next frame of a sealed spool at m->srcoff: its sealed length (0 = malformed) */
static size_t frame_len(const struct dtm_mapped *m, size_t off)
{
    const uint8_t *p = m->src + off;
    size_t len;
    if (m->srcn - off < 4)
        return 0; /* cut short */
    len = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
    if (len < DTM_SEAL_OVERHEAD || len > SPOOL_CHUNK + DTM_SEAL_OVERHEAD || m->srcn - off - 4 < len)
        return 0;
    return len;
}

int dtm_spool_map(const struct dtm_conf *c, const char *path, struct dtm_mapped *m)
{
    struct dtm_mapped f;
    size_t n = 0, off;
    int fd = -1, rc = dtm_map_file(path, &f);
    if (rc)
        return rc;
    if (f.n < SPOOL_HDR || memcmp(f.p, SPOOL_MAGIC, 8) != 0) {
        *m = f; /* spooled before T4.2 */
        return DTM_OK;
    }
    memset(m, 0, sizeof(*m));
    m->src = (const uint8_t *)f.p;
    m->srcn = f.n;
    m->srcoff = SPOOL_HDR;
    m->anon = true;
    if (m->src[8] != 1 || !(m->dk = dtm_datakeys_get(c))) {
        rc = DTM_EMALFORMED;
        goto fail;
    }
    /* the plaintext's size from the frames' lengths (their content is opened later), read with
     * pread: touching the mapping would make the whole file resident (fault-around) */
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        rc = DTM_EIO;
        goto fail;
    }
    for (off = SPOOL_HDR; off < f.n;) {
        uint8_t h[4];
        size_t len;
        if (f.n - off < 4 || pread(fd, h, 4, (off_t)off) != 4) {
            rc = DTM_EMALFORMED;
            goto fail;
        }
        len = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
        if (len < DTM_SEAL_OVERHEAD || len > SPOOL_CHUNK + DTM_SEAL_OVERHEAD ||
            f.n - off - 4 < len) {
            rc = DTM_EMALFORMED;
            goto fail;
        }
        n += len - DTM_SEAL_OVERHEAD;
        off += 4 + len;
    }
    close(fd);
    fd = -1;
    if (f.n == SPOOL_HDR) {
        rc = DTM_EMALFORMED; /* not even the last frame */
        goto fail;
    }
    /* address space for all of it; pages are used only as chunks are opened */
    m->cap = n ? n : 1;
    m->p = mmap(NULL, m->cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m->p == MAP_FAILED) {
        m->p = NULL;
        rc = DTM_ENOMEM;
        goto fail;
    }
    m->n = n;
    /* the first window now: a tampered file fails here rather than halfway */
    if ((rc = dtm_map_ensure(m, DTM_MIN(n, (size_t)SPOOL_CHUNK))))
        goto fail;
    return DTM_OK;
fail:
    if (fd >= 0)
        close(fd);
    dtm_unmap(m); /* and the file (m->src) */
    return rc;
}

int dtm_map_ensure(struct dtm_mapped *m, size_t upto)
{
    while (m->src && m->srcoff < m->srcn && (m->ready < upto || upto >= m->n)) {
        uint8_t aad[25];
        size_t len = frame_len(m, m->srcoff);
        bool last;
        if (!len)
            return DTM_EMALFORMED;
        last = m->srcoff + 4 + len == m->srcn; /* the last frame ends the file */
        if (m->ready + len - DTM_SEAL_OVERHEAD > m->n)
            return DTM_EMALFORMED;
        chunk_aad(m->src + 9, m->chunk, last, aad);
        if (dtm_datakey_open_to(m->dk, aad, sizeof(aad), m->src + m->srcoff + 4, len,
                                (uint8_t *)(uintptr_t)m->p + m->ready))
            return DTM_EMALFORMED;
        /* the sealed pages were read once: they can go (they come back from the file) */
        {
            size_t page = (size_t)sysconf(_SC_PAGESIZE), from = m->srcoff / page * page,
                   to = (m->srcoff + 4 + len) / page * page;
            if (to > from)
                madvise((void *)(uintptr_t)(m->src + from), to - from, MADV_DONTNEED);
        }
        m->chunk++;
        m->ready += len - DTM_SEAL_OVERHEAD;
        m->srcoff += 4 + len;
    }
    return DTM_OK;
}

void dtm_map_drop(struct dtm_mapped *m, size_t off)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    off = DTM_MIN(DTM_MIN(off, m->n), m->anon ? m->ready : m->n) / page * page;
    if (m->anon) {
        /* T4.2: opened plaintext that was read: wiped by the kernel (not kept) */
        if (off > m->dropped)
            madvise((char *)(uintptr_t)m->p + m->dropped, off - m->dropped, MADV_DONTNEED);
        if (off > m->dropped)
            m->dropped = off;
        return;
    }
    if (off > m->dropped) {
        dtm_map_forget(m, m->dropped, off);
        m->dropped = off;
    }
}

void dtm_map_forget(const struct dtm_mapped *m, size_t from, size_t to)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (m->anon)
        return;
    from = (from + page - 1) / page * page;
    to = DTM_MIN(to, m->n) / page * page;
    if (m->n && to > from)
        madvise((char *)(uintptr_t)m->p + from, to - from, MADV_DONTNEED);
}

void dtm_unmap(struct dtm_mapped *m)
{
    if (m->anon) {
        if (m->p)
            munmap((void *)(uintptr_t)m->p, m->cap);
        if (m->src)
            munmap((void *)(uintptr_t)m->src, m->srcn);
    } else if (m->n) {
        munmap((void *)(uintptr_t)m->p, m->n);
    }
    memset(m, 0, sizeof(*m));
}
