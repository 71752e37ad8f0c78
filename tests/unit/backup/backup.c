/* Unit tests for src/backup/backup.c (issue 10): the per-backup key wrapped under the KEK
 * (gate/datakey.c dtm_kek_wrap), a backup of several chunks compressed on several threads read
 * back byte for byte, and the chunk framing: chunks swapped, dropped, cut or with their
 * final flag changed do not open; a restore never leaves anything behind. */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup/backup.h"
#include "gate/gate.h"

static char dir[256];
static char data[300];

static void conf(struct dtm_conf *c)
{
    dtm_conf_defaults(c, data);
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static uint8_t *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    uint8_t *p;
    long len;
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    p = malloc((size_t)len + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return p;
}

/* A spooled batch file of 3.5 MB (text and random bytes): the backup has several chunks. */
static uint8_t *spool;
static size_t spool_n = 3500 * 1024;

static int setup(void **state)
{
    struct dtm_conf c;
    struct dtm_store *st;
    struct dtm_buf sample;
    char path[DTM_PATH_MAX], err[256];
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/dtm-unit-backup-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(data, sizeof(data), "%s/data", dir);
    assert_int_equal(mkdir(data, 0700), 0);
    conf(&c);
    dtm_conf_path(&c, "master.key", path, sizeof(path));
    assert_int_equal(dtm_keyring_create(path, err, sizeof(err)), DTM_OK);
    dtm_buf_init(&sample, 1 << 20);
    assert_int_equal(dtm_conf_sample(&sample), DTM_OK);
    dtm_conf_path(&c, "dtm.conf", path, sizeof(path));
    write_file(path, sample.p, sample.n);
    dtm_buf_free(&sample);
    assert_int_equal(dtm_store_open(&c, &st, err, sizeof(err)), DTM_OK);
    assert_int_equal(st->ops->migrate(st), DTM_OK);
    st->ops->close(st);
    dtm_conf_path(&c, "batches", path, sizeof(path));
    assert_int_equal(mkdir(path, 0700), 0);
    spool = malloc(spool_n);
    assert_non_null(spool);
    for (size_t i = 0; i < spool_n; i++)
        spool[i] = (uint8_t)(i < spool_n / 2 ? "batch row text "[i % 15] : rand());
    dtm_conf_path(&c, "batches/b1.data", path, sizeof(path));
    write_file(path, spool, spool_n);
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];
    (void)state;
    free(spool);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_kek_wrap(void **state)
{
    struct dtm_kek a = {0}, b = {0};
    uint8_t key[32], out[32], wrapped[DTM_KEK_WRAPPED_LEN];
    (void)state;
    memset(a.key, 1, 32);
    memset(b.key, 2, 32);
    memset(key, 7, 32);
    assert_int_equal(dtm_kek_wrap(&a, "aad", key, wrapped), DTM_OK);
    assert_null(memmem(wrapped, sizeof(wrapped), key, 8));
    assert_int_equal(dtm_kek_unwrap(&a, "aad", wrapped, out), DTM_OK);
    assert_memory_equal(out, key, 32);
    assert_int_equal(dtm_kek_unwrap(&b, "aad", wrapped, out), DTM_EMALFORMED);
    assert_int_equal(dtm_kek_unwrap(&a, "other", wrapped, out), DTM_EMALFORMED);
    wrapped[20] ^= 1;
    assert_int_equal(dtm_kek_unwrap(&a, "aad", wrapped, out), DTM_EMALFORMED);
}

/* offsets of the chunks of a backup file: n chunks, off[i] where chunk i starts */
static size_t chunks(const uint8_t *p, size_t n, size_t *off, size_t max)
{
    size_t at = 12 + ((size_t)p[8] << 24 | (size_t)p[9] << 16 | (size_t)p[10] << 8 | p[11]), k = 0;
    while (at + 5 <= n && k < max) {
        size_t len =
            (size_t)p[at] << 24 | (size_t)p[at + 1] << 16 | (size_t)p[at + 2] << 8 | p[at + 3];
        off[k++] = at;
        at += 5 + len + 16;
    }
    assert_int_equal(at, n);
    return k;
}

static int restore_of(const uint8_t *p, size_t n, const char *name, char *err, size_t errsz)
{
    char file[400], target[400], key[DTM_PATH_MAX], partial[420];
    struct dtm_backup_result res;
    struct dtm_conf c;
    struct stat sb;
    int rc;
    conf(&c);
    dtm_conf_path(&c, "master.key", key, sizeof(key));
    snprintf(file, sizeof(file), "%s/%s.dtmb", dir, name);
    snprintf(target, sizeof(target), "%s/%s", dir, name);
    snprintf(partial, sizeof(partial), "%s.partial", target);
    write_file(file, p, n);
    rc = dtm_backup_restore(file, key, target, false, &res, err, errsz);
    dtm_backup_result_free(&res);
    if (rc) { /* nothing left behind */
        assert_int_not_equal(stat(target, &sb), 0);
        assert_int_not_equal(stat(partial, &sb), 0);
    }
    return rc;
}

static void test_round_trip_and_framing(void **state)
{
    struct dtm_conf c;
    struct dtm_backup_result res;
    char file[400], err[1024], path[600], key[DTM_PATH_MAX];
    uint8_t *p, *q, *got;
    size_t n, off[64], k, gn;
    (void)state;
    conf(&c);
    dtm_conf_path(&c, "master.key", key, sizeof(key));
    snprintf(file, sizeof(file), "%s/b.dtmb", dir);
    assert_int_equal(
        dtm_backup_create(
            &c, file, &(struct dtm_backup_opts){.threads = 3, .actor_kind = "cli", .actor = "unit"},
            &res, err, sizeof(err)),
        DTM_OK);
    assert_true(res.m->nfiles >= 4); /* dtm.db, dtm.cubes.db, dtm.conf, batches/b1.data */
    dtm_backup_result_free(&res);
    assert_int_equal(dtm_backup_verify(file, key, false, &res, err, sizeof(err)), DTM_OK);
    dtm_backup_result_free(&res);
    p = read_file(file, &n);
    assert_null(memmem(p, n, "batch row text batch row text", 29));
    k = chunks(p, n, off, 64);
    assert_true(k >= 4);
    assert_true(p[off[k - 1] + 4] & 1); /* the last is final */
    assert_false(p[off[0] + 4] & 1);    /* the first is not */

    /* the round trip: the spooled file comes back byte for byte */
    assert_int_equal(restore_of(p, n, "ok", err, sizeof(err)), DTM_OK);
    snprintf(path, sizeof(path), "%s/ok/batches/b1.data", dir);
    got = read_file(path, &gn);
    assert_int_equal(gn, spool_n);
    assert_memory_equal(got, spool, spool_n);
    free(got);

    /* chunks 1 and 2 swapped */
    q = malloc(n);
    assert_non_null(q);
    {
        size_t a = off[1], b = off[2], c2 = off[3];
        memcpy(q, p, n);
        memcpy(q + a, p + b, c2 - b);
        memcpy(q + a + (c2 - b), p + a, b - a);
        assert_int_equal(restore_of(q, n, "swapped", err, sizeof(err)), DTM_EMALFORMED);
        assert_non_null(strstr(err, "authentication tag"));
    }
    /* chunk 1 dropped */
    memcpy(q, p, off[1]);
    memcpy(q + off[1], p + off[2], n - off[2]);
    assert_int_equal(restore_of(q, n - (off[2] - off[1]), "dropped", err, sizeof(err)),
                     DTM_EMALFORMED);
    /* the final chunk dropped: truncated at a chunk boundary */
    assert_int_equal(restore_of(p, off[k - 1], "cut", err, sizeof(err)), DTM_EMALFORMED);
    assert_non_null(strstr(err, "truncated"));
    /* a middle chunk marked final */
    memcpy(q, p, n);
    q[off[1] + 4] |= 1;
    assert_int_equal(restore_of(q, n, "final", err, sizeof(err)), DTM_EMALFORMED);
    /* the final chunk's flag cleared */
    memcpy(q, p, n);
    q[off[k - 1] + 4] &= (uint8_t)~1;
    assert_int_equal(restore_of(q, n, "notfinal", err, sizeof(err)), DTM_EMALFORMED);
    /* a chunk's length changed */
    memcpy(q, p, n);
    q[off[2] + 3] ^= 4;
    assert_int_equal(restore_of(q, n, "length", err, sizeof(err)), DTM_EMALFORMED);
    free(q);

    /* a restore whose NEWDIR.partial is there is refused and leaves it alone */
    snprintf(path, sizeof(path), "%s/again.partial", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(file, sizeof(file), "%s/again.dtmb", dir);
    write_file(file, p, n);
    snprintf(path, sizeof(path), "%s/again", dir);
    assert_int_equal(dtm_backup_restore(file, key, path, false, &res, err, sizeof(err)),
                     DTM_EEXIST);
    dtm_backup_result_free(&res);
    snprintf(path, sizeof(path), "%s/again.partial", dir);
    assert_int_equal(rmdir(path), 0);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kek_wrap),
        cmocka_unit_test(test_round_trip_and_framing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
