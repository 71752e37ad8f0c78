/* batch/spool.c — an uploaded batch file kept on disk: written to DATA_DIR/batches/ID.part as it
 * arrives (gunzipped on the fly by zlib, so a compressed upload is read once), synced and renamed
 * to ID.data before the 202 is sent — a batch that was answered survives a crash. Also the
 * read-only mapping through which run.c reads a batch. */
#define _DEFAULT_SOURCE /* madvise(MADV_DONTNEED): posix_madvise's DONTNEED is a no-op in glibc */
#include "batch/batch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

struct dtm_spool {
    int fd;
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
    s->fd = open(s->part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (s->fd < 0) {
        free(s);
        return DTM_EIO;
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

static int put(struct dtm_spool *s, const char *p, size_t n)
{
    if (s->bytes + (int64_t)n > s->max)
        return DTM_ETOOBIG;
    while (n) {
        ssize_t w = write(s->fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return DTM_EIO;
        }
        p += w;
        n -= (size_t)w;
        s->bytes += w;
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
    if (s->gzip && !s->zend)
        return DTM_EMALFORMED; /* truncated */
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

void dtm_map_drop(struct dtm_mapped *m, size_t off)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    off = DTM_MIN(off, m->n) / page * page;
    if (off > m->dropped) {
        dtm_map_forget(m, m->dropped, off);
        m->dropped = off;
    }
}

void dtm_map_forget(const struct dtm_mapped *m, size_t from, size_t to)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    from = (from + page - 1) / page * page;
    to = DTM_MIN(to, m->n) / page * page;
    if (m->n && to > from)
        madvise((char *)(uintptr_t)m->p + from, to - from, MADV_DONTNEED);
}

void dtm_unmap(struct dtm_mapped *m)
{
    if (m->n)
        munmap((void *)(uintptr_t)m->p, m->n);
    memset(m, 0, sizeof(*m));
}
