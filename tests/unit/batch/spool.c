/* Unit tests for src/batch/spool.c: an upload spooled plain and gzipped (in pieces of every
 * size, and two gzip members one after the other), the size limit counted after decompression
 * (a gzip bomb stops at max), broken and truncated gzip, an abandoned upload leaving nothing, and
 * the file mapping with pages given back (the content stays readable). Also the decoder offset
 * that batch progress and page dropping rely on. T4.2: the spool file is sealed (no plaintext on
 * disk; altered, reordered or truncated files do not open). */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "batch/batch.h"
#include "gate/gate.h"

static char dir[256];

static void conf(struct dtm_conf *c)
{
    dtm_conf_defaults(c, dir);
}

static int setup(void **state)
{
    (void)state;
    struct dtm_conf c;
    struct dtm_store *st;
    char path[DTM_PATH_MAX], err[256];
    snprintf(dir, sizeof(dir), "/tmp/dtm-unit-spool-XXXXXX");
    assert_non_null(mkdtemp(dir));
    /* T4.2: spool files are sealed under the data dir's data keys */
    conf(&c);
    dtm_conf_path(&c, "master.key", path, sizeof(path));
    assert_int_equal(dtm_keyring_create(path, err, sizeof(err)), DTM_OK);
    assert_int_equal(dtm_store_open(&c, &st, err, sizeof(err)), DTM_OK);
    assert_int_equal(st->ops->migrate(st), DTM_OK);
    st->ops->close(st);
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* gzip of p (one member) into a malloc'd buffer */
static unsigned char *gz(const char *p, size_t n, size_t *out_n)
{
    z_stream z = {0};
    size_t cap = compressBound((uLong)n) + 64;
    unsigned char *o = malloc(cap);
    assert_non_null(o);
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (Bytef *)(uintptr_t)p;
    z.avail_in = (uInt)n;
    z.next_out = o;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    *out_n = cap - z.avail_out;
    deflateEnd(&z);
    return o;
}

static char *read_data(const struct dtm_conf *c, const char *id, size_t *n)
{
    char path[DTM_PATH_MAX];
    struct dtm_mapped m;
    char *copy;
    dtm_spool_path(c, id, path, sizeof(path));
    assert_int_equal(dtm_spool_map(c, path, &m), DTM_OK);
    assert_int_equal(dtm_map_ensure(&m, m.n), DTM_OK);
    copy = malloc(m.n + 1);
    memcpy(copy, m.p, m.n);
    copy[m.n] = '\0';
    *n = m.n;
    dtm_unmap(&m);
    return copy;
}

static void put_in_pieces(struct dtm_spool *s, const unsigned char *p, size_t n, size_t piece)
{
    for (size_t i = 0; i < n; i += piece)
        assert_int_equal(dtm_spool_write(s, (const char *)p + i, DTM_MIN(piece, n - i)), DTM_OK);
}

static void test_plain_and_gzip_in_pieces(void **state)
{
    struct dtm_conf c;
    static char text[200000];
    (void)state;
    conf(&c);
    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = (char)('a' + (i * 7919) % 26);
    size_t zn;
    unsigned char *z = gz(text, sizeof(text), &zn);
    const size_t pieces[] = {1, 7, 4096, 65536, 1 << 20};
    for (size_t k = 0; k < sizeof(pieces) / sizeof(pieces[0]); k++) {
        for (int g = 0; g < 2; g++) {
            struct dtm_spool *s;
            char id[32];
            int64_t bytes = -1;
            size_t n;
            snprintf(id, sizeof(id), "b%zu-%d", k, g);
            assert_int_equal(dtm_spool_open(&c, id, g, 1 << 30, &s), DTM_OK);
            if (g)
                put_in_pieces(s, z, zn, pieces[k]);
            else
                put_in_pieces(s, (const unsigned char *)text, sizeof(text), pieces[k]);
            assert_int_equal(dtm_spool_finish(s, &bytes), DTM_OK);
            dtm_spool_close(s);
            assert_int_equal(bytes, sizeof(text));
            char *back = read_data(&c, id, &n);
            assert_int_equal(n, sizeof(text));
            assert_memory_equal(back, text, n);
            free(back);
        }
    }
    free(z);
}

static void test_two_gzip_members(void **state)
{
    struct dtm_conf c;
    struct dtm_spool *s;
    size_t an, bn, n;
    int64_t bytes;
    (void)state;
    conf(&c);
    unsigned char *a = gz("first\n", 6, &an), *b = gz("second\n", 7, &bn);
    assert_int_equal(dtm_spool_open(&c, "two", true, 1 << 20, &s), DTM_OK);
    assert_int_equal(dtm_spool_write(s, (char *)a, an), DTM_OK);
    assert_int_equal(dtm_spool_write(s, (char *)b, bn), DTM_OK);
    assert_int_equal(dtm_spool_finish(s, &bytes), DTM_OK);
    dtm_spool_close(s);
    char *back = read_data(&c, "two", &n);
    assert_string_equal(back, "first\nsecond\n");
    free(back);
    free(a);
    free(b);
}

static bool exists(const char *id, const char *ext)
{
    char p[512];
    struct stat st;
    snprintf(p, sizeof(p), "%s/batches/%s.%s", dir, id, ext);
    return stat(p, &st) == 0;
}

static void test_limit_after_decompression_and_broken_gzip(void **state)
{
    struct dtm_conf c;
    struct dtm_spool *s;
    static char zeros[1 << 20];
    size_t zn;
    int64_t bytes;
    (void)state;
    conf(&c);
    /* 1 MiB of zeros is ~1 KiB of gzip: the limit counts what it expands to */
    unsigned char *z = gz(zeros, sizeof(zeros), &zn);
    assert_true(zn < 4096);
    assert_int_equal(dtm_spool_open(&c, "bomb", true, 100000, &s), DTM_OK);
    assert_int_equal(dtm_spool_write(s, (char *)z, zn), DTM_ETOOBIG);
    dtm_spool_close(s);
    assert_false(exists("bomb", "part"));
    assert_false(exists("bomb", "data"));
    /* not gzip at all */
    assert_int_equal(dtm_spool_open(&c, "junk", true, 1 << 20, &s), DTM_OK);
    assert_int_equal(dtm_spool_write(s, "this is not gzip", 16), DTM_EMALFORMED);
    dtm_spool_close(s);
    /* truncated: the stream never ends */
    assert_int_equal(dtm_spool_open(&c, "cut", true, 1 << 21, &s), DTM_OK);
    assert_int_equal(dtm_spool_write(s, (char *)z, zn / 2), DTM_OK);
    assert_int_equal(dtm_spool_finish(s, &bytes), DTM_EMALFORMED);
    dtm_spool_close(s);
    assert_false(exists("cut", "part"));
    assert_false(exists("cut", "data"));
    /* plain data past the limit */
    assert_int_equal(dtm_spool_open(&c, "big", false, 10, &s), DTM_OK);
    assert_int_equal(dtm_spool_write(s, "0123456789", 10), DTM_OK);
    assert_int_equal(dtm_spool_write(s, "x", 1), DTM_ETOOBIG);
    dtm_spool_close(s);
    assert_false(exists("big", "part"));
    free(z);
}

static void test_map_drop_keeps_content_readable(void **state)
{
    struct dtm_conf c;
    struct dtm_spool *s;
    struct dtm_mapped m;
    char path[DTM_PATH_MAX];
    static char text[300000];
    int64_t bytes;
    (void)state;
    conf(&c);
    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = (char)('0' + i % 10);
    (void)s;
    (void)bytes;
    /* a plain file (the spool itself is sealed: test_sealed) */
    snprintf(path, sizeof(path), "%s/plain.txt", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, sizeof(text), f), sizeof(text));
    fclose(f);
    assert_int_equal(dtm_map_file(path, &m), DTM_OK);
    dtm_map_drop(&m, 200001);
    assert_int_equal(m.dropped % 4096, 0);
    assert_true(m.dropped <= 200001 && m.dropped > 190000);
    dtm_map_drop(&m, 1000); /* never backwards */
    assert_true(m.dropped > 190000);
    dtm_map_forget(&m, 10, 150000);
    assert_memory_equal(m.p, text, sizeof(text)); /* pages come back from the file */
    dtm_unmap(&m);
    assert_int_equal(dtm_map_file("/nonexistent/x", &m), DTM_ENOTFOUND);
}

static void test_decoder_offset(void **state)
{
    static const char nd[] = "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n";
    struct dtm_in_record rec;
    struct dtm_decode_error err;
    struct dtm_decoder *d = dtm_decoder_open(DTM_FMT_NDJSON, nd, sizeof(nd) - 1);
    (void)state;
    assert_int_equal(dtm_decoder_offset(d), 0);
    assert_int_equal(dtm_decoder_next(d, &rec, &err), 1);
    assert_int_equal(dtm_decoder_offset(d), 8);
    assert_int_equal(dtm_decoder_next(d, &rec, &err), 1);
    assert_int_equal(dtm_decoder_next(d, &rec, &err), 1);
    assert_int_equal(dtm_decoder_next(d, &rec, &err), 0);
    assert_int_equal(dtm_decoder_offset(d), sizeof(nd) - 1);
    assert_true(dtm_decoder_resumable(d));
    dtm_decoder_close(d);
    d = dtm_decoder_open(DTM_FMT_JSON, "[{\"a\":1},{\"a\":2}]", 17);
    assert_false(dtm_decoder_resumable(d));
    assert_int_equal(dtm_decoder_next(d, &rec, &err), 1);
    assert_true(dtm_decoder_offset(d) > 0 && dtm_decoder_offset(d) <= 17);
    dtm_decoder_close(d);
}

static void test_priorities(void **state)
{
    int p = -1;
    (void)state;
    assert_int_equal(dtm_batch_priority_parse("urgent", &p), DTM_OK);
    assert_int_equal(p, 2);
    assert_int_equal(dtm_batch_priority_parse("high", &p), DTM_OK);
    assert_int_equal(p, 1);
    assert_int_equal(dtm_batch_priority_parse("normal", &p), DTM_OK);
    assert_int_equal(p, 0);
    assert_int_equal(dtm_batch_priority_parse("asap", &p), DTM_EINVAL);
    assert_string_equal(dtm_batch_priority_name(2), "urgent");
    assert_string_equal(dtm_batch_priority_name(9), "normal");
}

/* T4.2: what the spool file holds, and what happens when it is altered */
static void test_sealed(void **state)
{
    struct dtm_conf c;
    struct dtm_spool *s;
    struct dtm_mapped m;
    char path[DTM_PATH_MAX], cmd[DTM_PATH_MAX + 64];
    static char text[150000];
    int64_t bytes;
    (void)state;
    conf(&c);
    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = "MARKER-SPOOL-"[i % 13];
    assert_int_equal(dtm_spool_open(&c, "sealed", false, 1 << 20, &s), DTM_OK);
    assert_int_equal(dtm_spool_write(s, text, sizeof(text)), DTM_OK);
    assert_int_equal(dtm_spool_finish(s, &bytes), DTM_OK);
    dtm_spool_close(s);
    dtm_spool_path(&c, "sealed", path, sizeof(path));
    assert_int_equal(dtm_map_file(path, &m), DTM_OK);
    assert_true(m.n > sizeof(text));
    assert_null(memmem(m.p, m.n, "MARKER", 6));
    dtm_unmap(&m);
    /* opened as it is read: the first chunk at once, the rest on demand; what was read and
     * dropped is wiped (nothing to read it again from) */
    assert_int_equal(dtm_spool_map(&c, path, &m), DTM_OK);
    assert_true(m.anon);
    assert_int_equal(m.n, sizeof(text));
    assert_int_equal(m.ready, 65536);
    assert_memory_equal(m.p, text, 65536);
    assert_int_equal(dtm_map_ensure(&m, 70000), DTM_OK);
    assert_int_equal(m.ready, 2 * 65536);
    dtm_map_drop(&m, 100000); /* up to what is opened, in whole pages */
    assert_true(m.dropped > 0 && m.dropped <= 100000);
    assert_int_equal(m.p[0], 0);
    assert_int_equal(dtm_map_ensure(&m, m.n), DTM_OK);
    assert_int_equal(m.ready, sizeof(text));
    assert_memory_equal(m.p + m.dropped, text + m.dropped, sizeof(text) - m.dropped);
    dtm_unmap(&m);
    /* one byte altered in the second chunk: found when that chunk is opened */
    snprintf(cmd, sizeof(cmd), "printf 'Z' | dd of='%s' bs=1 seek=70000 conv=notrunc 2>/dev/null",
             path);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(dtm_spool_map(&c, path, &m), DTM_OK);
    assert_int_equal(dtm_map_ensure(&m, m.n), DTM_EMALFORMED);
    dtm_unmap(&m);
    /* cut after its first chunk (a whole frame: 25 + 4 + 65536 + 33) */
    assert_int_equal(dtm_spool_open(&c, "cut", false, 1 << 20, &s), DTM_OK);
    assert_int_equal(dtm_spool_write(s, text, sizeof(text)), DTM_OK);
    assert_int_equal(dtm_spool_finish(s, &bytes), DTM_OK);
    dtm_spool_close(s);
    dtm_spool_path(&c, "cut", path, sizeof(path));
    assert_int_equal(truncate(path, 25 + 4 + 65536 + 33), 0);
    assert_int_equal(dtm_spool_map(&c, path, &m), DTM_EMALFORMED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_and_gzip_in_pieces),
        cmocka_unit_test(test_two_gzip_members),
        cmocka_unit_test(test_limit_after_decompression_and_broken_gzip),
        cmocka_unit_test(test_map_drop_keeps_content_readable),
        cmocka_unit_test(test_decoder_offset),
        cmocka_unit_test(test_priorities),
        cmocka_unit_test(test_sealed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
