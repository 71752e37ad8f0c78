/* Unit tests of src/gate: secrets, key hashing, the keyring, API-key authentication against a
 * real SQLite store, the key cache and its invalidation, passwords. */
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

#include "gate/gate.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/dtm-gate-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd);
}

static void test_secrets(void **state)
{
    char a[DTM_SECRET_MAX], b[DTM_SECRET_MAX];
    uint8_t ha[32], hb[32], h2[32];
    (void)state;
    assert_int_equal(dtm_secret_new("dtm_", a, sizeof(a), ha), DTM_OK);
    assert_int_equal(dtm_secret_new("dtm_", b, sizeof(b), hb), DTM_OK);
    assert_int_equal(strlen(a), 4 + 52); /* 256 bits in base32 */
    assert_string_not_equal(a, b);
    dtm_secret_hash(dtm_str_c(a), h2);
    assert_memory_equal(ha, h2, 32);
    assert_memory_not_equal(ha, hb, 32);
    assert_int_equal(dtm_secret_new("dtm_", a, 20, ha), DTM_EINVAL);
}

static void test_keyring(void **state)
{
    char path[128], err[256];
    struct dtm_keyring k1, k2;
    (void)state;
    snprintf(path, sizeof(path), "%s/master.key", dir);
    assert_int_equal(dtm_keyring_create(path, err, sizeof(err)), DTM_OK);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(dtm_keyring_create(path, err, sizeof(err)), DTM_EIO); /* never overwrite */
    assert_int_equal(dtm_keyring_load(path, &k1, err, sizeof(err)), DTM_OK);
    assert_int_equal(dtm_keyring_load(path, &k2, err, sizeof(err)), DTM_OK);
    assert_memory_equal(&k1, &k2, sizeof(k1));
    assert_memory_not_equal(k1.record_key, k1.mask_key, 32);
    chmod(path, 0644);
    assert_int_equal(dtm_keyring_load(path, &k1, err, sizeof(err)), DTM_EINVAL);
    assert_non_null(strstr(err, "chmod 600"));
}

/* Gives system SYS1 a new key with this id; its secret is written to secret. */
static void add_key(struct dtm_store *st, const char *id, char secret[DTM_SECRET_MAX], int64_t now)
{
    struct dtm_key k = {0};
    uint8_t hash[32];
    assert_int_equal(dtm_secret_new("dtm_", secret, DTM_SECRET_MAX, hash), DTM_OK);
    snprintf(k.id, sizeof(k.id), "%s", id);
    snprintf(k.system_code, sizeof(k.system_code), "SYS1");
    k.created_at = now;
    assert_int_equal(st->ops->key_add(st, &k, hash), DTM_OK);
}

static void test_api_key_auth_and_cache(void **state)
{
    struct dtm_conf c;
    struct dtm_store *st;
    struct dtm_system sys = {0}, got;
    struct dtm_key gk;
    char secret[DTM_SECRET_MAX], err[256];
    int64_t now = dtm_now_us();
    (void)state;
    dtm_conf_defaults(&c, dir);
    assert_int_equal(dtm_store_open(&c, &st, err, sizeof(err)), DTM_OK);
    assert_int_equal(st->ops->migrate(st), DTM_OK);
    snprintf(sys.code, sizeof(sys.code), "SYS1");
    snprintf(sys.name, sizeof(sys.name), "One");
    snprintf(sys.role, sizeof(sys.role), "source");
    sys.created_at = now;
    assert_int_equal(st->ops->system_add(st, &sys), DTM_OK);
    add_key(st, "key_1", secret, now);

    struct dtm_key_cache *kc = dtm_key_cache_create(&c);
    assert_int_equal(dtm_gate_api_key_cached(kc, st, dtm_str_c(secret), now, &gk, &got), DTM_OK);
    assert_string_equal(got.code, "SYS1");
    assert_string_equal(gk.id, "key_1");
    /* wrong, empty and over-long keys */
    assert_int_equal(dtm_gate_api_key_cached(kc, st, DTM_STR("dtm_nope"), now, &gk, &got),
                     DTM_EAUTH);
    assert_int_equal(dtm_gate_api_key_cached(kc, st, DTM_STR(""), now, &gk, &got), DTM_EAUTH);
    /* revoke through the store (as the CLI does), signal, and the cache must notice */
    assert_int_equal(st->ops->key_revoke(st, "key_1", now), DTM_OK);
    assert_int_equal(dtm_gate_api_key_cached(kc, st, dtm_str_c(secret), now + 1, &gk, &got),
                     DTM_OK); /* not signalled yet: still cached */
    dtm_gate_keys_changed(&c);
    assert_int_equal(dtm_gate_api_key_cached(kc, st, dtm_str_c(secret), now + 1, &gk, &got),
                     DTM_EAUTH);
    assert_int_equal(dtm_gate_api_key(st, dtm_str_c(secret), now + 1, &gk, &got), DTM_EAUTH);
    assert_int_equal(st->ops->key_revoke(st, "key_1", now), DTM_ENOTFOUND);
    dtm_key_cache_destroy(kc);
    st->ops->close(st);
}

static void test_expiry_after_rotation(void **state)
{
    struct dtm_conf c;
    struct dtm_store *st;
    struct dtm_system got;
    struct dtm_key gk;
    char secret[DTM_SECRET_MAX], err[256];
    int64_t now = dtm_now_us();
    (void)state;
    dtm_conf_defaults(&c, dir);
    assert_int_equal(dtm_store_open(&c, &st, err, sizeof(err)), DTM_OK);
    add_key(st, "key_2", secret, now);
    assert_int_equal(st->ops->key_expire_all(st, "SYS1", now + 1000), DTM_OK);
    assert_int_equal(dtm_gate_api_key(st, dtm_str_c(secret), now + 999, &gk, &got), DTM_OK);
    assert_int_equal(dtm_gate_api_key(st, dtm_str_c(secret), now + 1000, &gk, &got), DTM_EAUTH);
    st->ops->close(st);
}

static void test_passwords(void **state)
{
    char pw[32], hash[256];
    (void)state;
    assert_int_equal(dtm_password_random(pw, sizeof(pw), 20), DTM_OK);
    assert_int_equal(strlen(pw), 20);
    assert_int_equal(dtm_password_hash(pw, hash, sizeof(hash)), DTM_OK);
    assert_non_null(strstr(hash, "$argon2id$"));
    assert_true(dtm_password_verify(hash, pw));
    assert_false(dtm_password_verify(hash, "wrong"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secrets),
        cmocka_unit_test(test_keyring),
        cmocka_unit_test(test_api_key_auth_and_cache),
        cmocka_unit_test(test_expiry_after_rotation),
        cmocka_unit_test(test_passwords),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
