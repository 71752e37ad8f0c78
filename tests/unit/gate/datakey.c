/* Unit tests for src/gate/datakey.c (T4.2): seal/open round trips, the blob format, associated
 * data bound, altered blobs refused, a data key shared by threads, the master key file formats
 * (32-byte legacy, 96-byte with a sealed root), and a master-key rotation: data keys re-wrapped,
 * the old KEK unwraps nothing, the root (and so every purpose key) unchanged, blobs sealed
 * before still open in the same process and in a fresh one. */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gate/gate.h"

static char dir[256];

static void conf(struct dtm_conf *c)
{
    dtm_conf_defaults(c, dir);
}

static int setup(void **state)
{
    struct dtm_conf c;
    struct dtm_store *st;
    char path[DTM_PATH_MAX], err[256];
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/dtm-unit-datakey-XXXXXX");
    assert_non_null(mkdtemp(dir));
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

static void test_seal_open(void **state)
{
    struct dtm_conf c;
    struct dtm_datakeys *dk;
    const char msg[] = "{\"txn_id\":\"T-1\",\"error_reason\":\"secret reason\"}";
    uint8_t aad[16] = {1, 2, 3}, blob[256], blob2[256], out[256];
    size_t n = sizeof(msg) - 1;
    (void)state;
    conf(&c);
    dk = dtm_datakeys_get(&c);
    assert_non_null(dk);
    assert_ptr_equal(dk, dtm_datakeys_get(&c)); /* one per data dir */
    assert_int_equal(dtm_datakey_seal_to(dk, aad, 16, msg, n, blob), DTM_OK);
    assert_true(dtm_datakey_sealed(blob, n + DTM_SEAL_OVERHEAD));
    assert_false(dtm_datakey_sealed(msg, n));
    assert_int_equal(blob[0], DTM_SEAL_V1);
    assert_int_equal(blob[1] | blob[2] | blob[3], 0);
    assert_int_equal(blob[4], 1); /* the first data key */
    assert_null(memmem(blob, n + DTM_SEAL_OVERHEAD, "secret", 6));
    assert_int_equal(dtm_datakey_open_to(dk, aad, 16, blob, n + DTM_SEAL_OVERHEAD, out), DTM_OK);
    assert_memory_equal(out, msg, n);
    /* a second seal of the same text: another nonce, another ciphertext */
    assert_int_equal(dtm_datakey_seal_to(dk, aad, 16, msg, n, blob2), DTM_OK);
    assert_memory_not_equal(blob + 5, blob2 + 5, 12);
    /* another associated data, an altered byte, a cut blob: refused */
    aad[0] ^= 1;
    assert_int_equal(dtm_datakey_open_to(dk, aad, 16, blob, n + DTM_SEAL_OVERHEAD, out),
                     DTM_EMALFORMED);
    aad[0] ^= 1;
    for (size_t i = 1; i < n + DTM_SEAL_OVERHEAD; i += 7) {
        blob[i] ^= 0x20;
        assert_int_not_equal(dtm_datakey_open_to(dk, aad, 16, blob, n + DTM_SEAL_OVERHEAD, out),
                             DTM_OK);
        blob[i] ^= 0x20;
    }
    assert_int_not_equal(dtm_datakey_open_to(dk, aad, 16, blob, n + DTM_SEAL_OVERHEAD - 1, out),
                         DTM_OK);
    assert_int_equal(dtm_datakey_open_to(dk, aad, 16, blob, 10, out), DTM_EMALFORMED);
    /* an unknown data key id */
    blob[4] = 9;
    assert_int_equal(dtm_datakey_open_to(dk, aad, 16, blob, n + DTM_SEAL_OVERHEAD, out),
                     DTM_ENOTFOUND);
    blob[4] = 1;
    /* the buffer API (small secrets) */
    struct dtm_buf b, p;
    dtm_buf_init(&b, 1 << 20);
    dtm_buf_init(&p, 1 << 20);
    assert_int_equal(dtm_datakey_seal(dk, "totp:alice", 10, "seed-bytes", 10, &b), DTM_OK);
    assert_int_equal(b.n, 10 + DTM_SEAL_OVERHEAD);
    assert_int_equal(dtm_datakey_open(dk, "totp:bob", 8, b.p, b.n, &p), DTM_EMALFORMED);
    assert_int_equal(dtm_datakey_open(dk, "totp:alice", 10, b.p, b.n, &p), DTM_OK);
    assert_int_equal(p.n, 10);
    assert_memory_equal(p.p, "seed-bytes", 10);
    assert_int_equal(dtm_datakey_open(dk, NULL, 0, "{}", 2, &p), DTM_EMALFORMED);
    dtm_buf_free(&b);
    dtm_buf_free(&p);
}

struct worker {
    struct dtm_datakeys *dk;
    int fails;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    uint8_t blob[200], out[200], aad[16] = {7};
    char msg[100];
    for (int i = 0; i < 20000; i++) {
        int n = snprintf(msg, sizeof(msg), "{\"i\":%d}", i);
        if (dtm_datakey_seal_to(w->dk, aad, 16, msg, (size_t)n, blob) ||
            dtm_datakey_open_to(w->dk, aad, 16, blob, (size_t)n + DTM_SEAL_OVERHEAD, out) ||
            memcmp(out, msg, (size_t)n) != 0)
            w->fails++;
    }
    return NULL;
}

static void test_threads(void **state)
{
    struct dtm_conf c;
    pthread_t t[4];
    struct worker w[4];
    (void)state;
    conf(&c);
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){dtm_datakeys_get(&c), 0};
        assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].fails, 0);
    }
}

static void test_master_key_formats(void **state)
{
    char path[DTM_PATH_MAX], err[256];
    struct dtm_kek k1, k2;
    uint8_t root[32], root2[32], legacy[32];
    struct dtm_keyring kr;
    int fd;
    (void)state;
    snprintf(path, sizeof(path), "%s/legacy.key", dir);
    memset(legacy, 0x5a, sizeof(legacy));
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, legacy, 32), 32);
    close(fd);
    /* before T4.2: 32 bytes, KEK and root in one */
    assert_int_equal(dtm_masterkey_read(path, &k1, root, err, sizeof(err)), DTM_OK);
    assert_memory_equal(k1.key, legacy, 32);
    assert_memory_equal(root, legacy, 32);
    assert_int_equal(strlen(k1.id), DTM_KEK_ID_LEN);
    assert_int_equal(dtm_keyring_load(path, &kr, err, sizeof(err)), DTM_OK);
    assert_memory_equal(kr.master, legacy, 32);
    /* the new format keeps a root apart from the KEK */
    snprintf(path, sizeof(path), "%s/new.key", dir);
    memset(k2.key, 0x33, 32);
    assert_int_equal(dtm_masterkey_write(path, &k2, root, err, sizeof(err)), DTM_OK);
    assert_int_equal(dtm_masterkey_write(path, &k2, root, err, sizeof(err)), DTM_EIO);
    assert_int_equal(dtm_masterkey_read(path, &k1, root2, err, sizeof(err)), DTM_OK);
    assert_memory_equal(k1.key, k2.key, 32);
    assert_memory_equal(root2, legacy, 32);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, 96);
    assert_int_equal(sb.st_mode & 0777, 0600);
    /* a damaged file: flip one byte of the sealed root (writing a fixed byte would leave
     * the file intact whenever the random ciphertext already held it, 1 run in 256) */
    uint8_t b;
    fd = open(path, O_RDWR);
    assert_int_equal(pread(fd, &b, 1, 60), 1);
    b ^= 0xff;
    assert_int_equal(pwrite(fd, &b, 1, 60), 1);
    close(fd);
    assert_int_equal(dtm_masterkey_read(path, &k1, root2, err, sizeof(err)), DTM_EINVAL);
    assert_non_null(strstr(err, "damaged"));
}

static void test_rotation(void **state)
{
    struct dtm_conf c;
    struct dtm_datakeys *dk;
    struct dtm_keyring before, after;
    struct dtm_kek old_kek, new_kek;
    uint8_t root[32], blob[100], out[100];
    char path[DTM_PATH_MAX], next[DTM_PATH_MAX], err[512], new_id[DTM_KEK_ID_LEN + 1],
        old_id[DTM_KEK_ID_LEN + 1];
    int64_t n = 0;
    (void)state;
    conf(&c);
    dk = dtm_datakeys_get(&c);
    dtm_conf_path(&c, "master.key", path, sizeof(path));
    dtm_conf_path(&c, "master.key.next", next, sizeof(next));
    assert_int_equal(dtm_keyring_load(path, &before, err, sizeof(err)), DTM_OK);
    assert_int_equal(dtm_masterkey_read(path, &old_kek, root, err, sizeof(err)), DTM_OK);
    assert_int_equal(dtm_datakey_seal_to(dk, "x", 1, "{\"a\":1}", 7, blob), DTM_OK);

    assert_int_equal(dtm_masterkey_rotate(&c, &n, new_id, old_id, err, sizeof(err)), DTM_OK);
    assert_true(n >= 1);
    assert_string_equal(old_id, old_kek.id);
    assert_string_not_equal(new_id, old_id);
    assert_int_equal(access(next, F_OK), -1);
    assert_int_equal(dtm_masterkey_read(path, &new_kek, root, err, sizeof(err)), DTM_OK);
    assert_string_equal(new_kek.id, new_id);
    /* the purpose keys did not change */
    assert_int_equal(dtm_keyring_load(path, &after, err, sizeof(err)), DTM_OK);
    assert_memory_equal(&before, &after, sizeof(before));
    /* every data key is under the new KEK and the old one unwraps none of them */
    {
        struct dtm_store *st;
        struct dtm_datakey_row row;
        assert_int_equal(dtm_store_open(&c, &st, err, sizeof(err)), DTM_OK);
        for (int64_t id = 1; st->ops->datakey_get(st, id, &row) == DTM_OK; id++)
            assert_string_equal(row.kek_id, new_id);
        st->ops->close(st);
    }
    /* what was sealed before opens; new seals too */
    assert_int_equal(dtm_datakey_open_to(dk, "x", 1, blob, 7 + DTM_SEAL_OVERHEAD, out), DTM_OK);
    assert_memory_equal(out, "{\"a\":1}", 7);
    assert_int_equal(dtm_datakey_seal_to(dk, "y", 1, "{\"b\":2}", 7, blob), DTM_OK);
    /* a second rotation, and an interrupted one finished by the next */
    assert_int_equal(dtm_masterkey_rotate(&c, &n, new_id, old_id, err, sizeof(err)), DTM_OK);
    assert_string_equal(old_id, new_kek.id);
    {
        struct dtm_kek k;
        uint8_t r[32];
        assert_int_equal(dtm_masterkey_read(path, &k, r, err, sizeof(err)), DTM_OK);
        memset(k.key, 0x77, 32);
        assert_int_equal(dtm_masterkey_write(next, &k, r, err, sizeof(err)), DTM_OK);
        assert_int_equal(dtm_masterkey_rotate(&c, &n, new_id, old_id, err, sizeof(err)), DTM_OK);
        assert_int_equal(dtm_masterkey_read(path, &k, r, err, sizeof(err)), DTM_OK);
        assert_string_equal(k.id, new_id); /* the KEK of master.key.next was kept */
        /* a master.key.next of another data dir (another root) is refused */
        memset(r, 0x11, 32);
        assert_int_equal(dtm_masterkey_write(next, &k, r, err, sizeof(err)), DTM_OK);
        assert_int_equal(dtm_masterkey_rotate(&c, &n, new_id, old_id, err, sizeof(err)),
                         DTM_EINVAL);
        unlink(next);
    }
    assert_int_equal(dtm_datakey_open_to(dk, "y", 1, blob, 7 + DTM_SEAL_OVERHEAD, out), DTM_OK);
}

/* TOTP seeds and named secrets are sealed under the data keys: bound to their account or
 * name, altered blobs refused, and they open after a master-key rotation. */
static void test_secrets(void **state)
{
    struct dtm_conf c;
    struct dtm_datakeys *dk;
    struct dtm_store *st;
    struct dtm_buf blob;
    uint8_t seed[20], sealed[96], back[64];
    char path[DTM_PATH_MAX], err[512], out[256], why[256], a[DTM_KEK_ID_LEN + 1],
        b[DTM_KEK_ID_LEN + 1];
    size_t n, m;
    int64_t k = 0;
    (void)state;
    conf(&c);
    dk = dtm_datakeys_get(&c);
    assert_int_equal(dtm_totp_secret_new(seed), DTM_OK);
    assert_int_equal(dtm_totp_seal(dk, "ana", seed, 20, sealed, sizeof(sealed), &n), DTM_OK);
    assert_int_equal(n, 20 + DTM_SEAL_OVERHEAD);
    assert_true(dtm_datakey_sealed(sealed, n));
    assert_null(memmem(sealed, n, seed, 20));
    assert_int_equal(dtm_totp_open(dk, "ana", sealed, n, back, sizeof(back), &m), DTM_OK);
    assert_int_equal(m, 20);
    assert_memory_equal(back, seed, 20);
    assert_int_equal(dtm_totp_open(dk, "bob", sealed, n, back, sizeof(back), &m), DTM_EAUTH);
    sealed[25] ^= 1;
    assert_int_equal(dtm_totp_open(dk, "ana", sealed, n, back, sizeof(back), &m), DTM_EAUTH);
    sealed[25] ^= 1;

    /* a named secret: stored sealed, resolved from store:NAME, other values as they are */
    dtm_buf_init(&blob, 4096);
    assert_int_equal(dtm_secret_seal(dk, "hook", "s3cr3t-value", &blob), DTM_OK);
    assert_null(memmem(blob.p, blob.n, "s3cr3t", 6));
    assert_int_equal(dtm_store_open(&c, &st, err, sizeof(err)), DTM_OK);
    assert_int_equal(st->ops->begin(st), DTM_OK);
    assert_int_equal(st->ops->secret_put(st, "hook", (uint8_t *)blob.p, blob.n, 1), DTM_OK);
    /* the same blob under another name does not open */
    assert_int_equal(st->ops->secret_put(st, "moved", (uint8_t *)blob.p, blob.n, 1), DTM_OK);
    assert_int_equal(st->ops->commit(st), DTM_OK);
    assert_int_equal(dtm_secret_resolve(st, dk, "store:hook", out, sizeof(out), why, sizeof(why)),
                     DTM_OK);
    assert_string_equal(out, "s3cr3t-value");
    assert_int_not_equal(
        dtm_secret_resolve(st, dk, "store:moved", out, sizeof(out), why, sizeof(why)), DTM_OK);
    assert_null(strstr(why, "s3cr3t"));
    assert_int_equal(dtm_secret_resolve(st, dk, "store:none", out, sizeof(out), why, sizeof(why)),
                     DTM_ENOTFOUND);
    assert_non_null(strstr(why, "dtm secret set none"));
    assert_int_equal(dtm_secret_resolve(st, dk, "store:../x", out, sizeof(out), why, sizeof(why)),
                     DTM_EINVAL);
    assert_int_equal(dtm_secret_resolve(st, dk, "plain", out, sizeof(out), why, sizeof(why)),
                     DTM_OK);
    assert_string_equal(out, "plain");
    assert_false(dtm_secret_name_ok(""));
    assert_false(dtm_secret_name_ok("a b"));
    assert_true(dtm_secret_name_ok("ops-mail.password_1"));

    /* both open after a rotation of the master key */
    assert_int_equal(dtm_masterkey_rotate(&c, &k, a, b, err, sizeof(err)), DTM_OK);
    assert_int_equal(dtm_totp_open(dk, "ana", sealed, n, back, sizeof(back), &m), DTM_OK);
    assert_memory_equal(back, seed, 20);
    assert_int_equal(dtm_secret_resolve(st, dk, "store:hook", out, sizeof(out), why, sizeof(why)),
                     DTM_OK);
    assert_string_equal(out, "s3cr3t-value");
    assert_int_equal(st->ops->begin(st), DTM_OK);
    assert_int_equal(st->ops->secret_delete(st, "hook"), DTM_OK);
    assert_int_equal(st->ops->secret_delete(st, "hook"), DTM_ENOTFOUND);
    assert_int_equal(st->ops->commit(st), DTM_OK);
    st->ops->close(st);
    dtm_buf_free(&blob);
    dtm_conf_path(&c, "master.key", path, sizeof(path));
    (void)path;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seal_open),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_master_key_formats),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_secrets),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
