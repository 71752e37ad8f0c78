/* Unit tests for src/audit/audit.c: the canonical encoding of an audit entry (fixed layout,
 * length-prefixed texts so that moving a byte between members changes it), its HMAC, and the
 * verification of a chain — intact, an altered entry, a missing entry, a wrong prev_hash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "audit/audit.h"

static const uint8_t key[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static void entry(struct dtm_audit_entry *e, const char *action, const char *target)
{
    struct dtm_audit_event ev = {"cli",     "ops", action, target, "{\"dataset\":\"transactions\"}",
                                 "10.0.0.7"};
    assert_int_equal(dtm_audit_entry_set(e, &ev, 1764115200000000LL), DTM_OK);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void test_encoding_layout(void **state)
{
    struct dtm_audit_entry e;
    uint8_t buf[DTM_AUDIT_ENCODED_MAX];
    size_t n, off = 0;
    static const char *const texts[] = {
        "cli", "ops", "grant.added", "S1", "{\"dataset\":\"transactions\"}", "10.0.0.7"};
    (void)state;
    entry(&e, "grant.added", "S1");
    e.seq = 0x0102030405060708LL;
    memset(e.prev_hash, 0xab, 32);
    n = dtm_audit_encode(&e, buf, sizeof(buf));
    assert_memory_equal(buf, "dtm-audit-v1", 12);
    off = 12;
    assert_memory_equal(buf + off, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    off += 8;
    assert_int_equal(buf[off + 7], (uint8_t)(1764115200000000LL & 0xff));
    off += 8;
    for (size_t i = 0; i < DTM_ARRAY_LEN(texts); i++) {
        size_t len = strlen(texts[i]);
        assert_int_equal(be32(buf + off), len);
        assert_memory_equal(buf + off + 4, texts[i], len);
        off += 4 + len;
    }
    for (size_t i = 0; i < 32; i++)
        assert_int_equal(buf[off + i], 0xab);
    assert_int_equal(n, off + 32);
    /* a short buffer: the full length is still returned, nothing written past it */
    memset(buf, 0, sizeof(buf));
    assert_int_equal(dtm_audit_encode(&e, buf, 10), n);
    assert_int_equal(buf[10], 0);
}

static void test_hash_is_hmac_of_encoding(void **state)
{
    struct dtm_audit_entry e, f;
    uint8_t buf[DTM_AUDIT_ENCODED_MAX], h1[32], h2[32];
    size_t n;
    (void)state;
    entry(&e, "key.revoked", "key_1");
    e.seq = 7;
    n = dtm_audit_encode(&e, buf, sizeof(buf));
    dtm_hmac_sha256(key, 32, buf, n, h1);
    dtm_audit_hash(key, &e, h2);
    assert_memory_equal(h1, h2, 32);
    /* a byte moved from one member to the next changes the encoding (length prefixes) */
    f = e;
    snprintf(f.actor_kind, sizeof(f.actor_kind), "clio");
    snprintf(f.actor, sizeof(f.actor), "ps");
    dtm_audit_hash(key, &f, h1);
    assert_memory_not_equal(h1, h2, 32);
    /* every member counts */
    f = e;
    f.at++;
    dtm_audit_hash(key, &f, h1);
    assert_memory_not_equal(h1, h2, 32);
    f = e;
    f.prev_hash[31] ^= 1;
    dtm_audit_hash(key, &f, h1);
    assert_memory_not_equal(h1, h2, 32);
    f = e;
    snprintf(f.source_ip, sizeof(f.source_ip), "10.0.0.8");
    dtm_audit_hash(key, &f, h1);
    assert_memory_not_equal(h1, h2, 32);
    /* another key, another hash */
    {
        uint8_t other[32] = {0};
        dtm_audit_hash(other, &e, h1);
        assert_memory_not_equal(h1, h2, 32);
    }
}

static void test_entry_set_bounds(void **state)
{
    struct dtm_audit_entry e;
    static char big[DTM_AUDIT_DETAIL_MAX + 10];
    struct dtm_audit_event ev = {"cli", "ops", "export.local", "transactions", big, NULL};
    (void)state;
    memset(big, 'x', sizeof(big) - 1);
    assert_int_equal(dtm_audit_entry_set(&e, &ev, 1), DTM_EINVAL);
    ev.detail = NULL;
    assert_int_equal(dtm_audit_entry_set(&e, &ev, 1), DTM_OK);
    assert_string_equal(e.detail, "{}");
    assert_string_equal(e.source_ip, "");
    ev.action = NULL;
    assert_int_equal(dtm_audit_entry_set(&e, &ev, 1), DTM_EINVAL);
}

/* A chain of n entries as the store would build it. */
static void chain(struct dtm_audit_entry *es, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        entry(&es[i], "grant.added", "S1");
        es[i].seq = (int64_t)i + 1;
        if (i)
            memcpy(es[i].prev_hash, es[i - 1].hash, 32);
        dtm_audit_hash(key, &es[i], es[i].hash);
    }
}

static int run(const struct dtm_audit_entry *es, size_t n, struct dtm_audit_verify *v)
{
    dtm_audit_verify_init(v);
    for (size_t i = 0; i < n; i++)
        if (dtm_audit_verify_entry(v, key, &es[i]))
            return 1;
    return 0;
}

static void test_verify(void **state)
{
    struct dtm_audit_entry es[5];
    struct dtm_audit_verify v;
    char what[256];
    (void)state;
    chain(es, 5);
    assert_int_equal(run(es, 5, &v), 0);
    assert_int_equal(v.broken, DTM_AUDIT_INTACT);
    assert_int_equal(v.entries, 5);
    assert_int_equal(v.head_seq, 5);
    assert_memory_equal(v.head_hash, es[4].hash, 32);
    dtm_audit_verify_describe(&v, what, sizeof(what));
    assert_string_equal(what, "5 entries, chain intact");

    /* an altered detail */
    snprintf(es[2].detail, sizeof(es[2].detail), "{\"dataset\":\"documents\"}");
    assert_int_equal(run(es, 5, &v), 1);
    assert_int_equal(v.broken, DTM_AUDIT_HASH_MISMATCH);
    assert_int_equal(v.broken_seq, 3);
    assert_int_equal(v.entries, 2);
    dtm_audit_verify_describe(&v, what, sizeof(what));
    assert_non_null(strstr(what, "entry 3 "));
    assert_non_null(strstr(what, "hash mismatch"));

    /* a missing entry (4 left out) */
    chain(es, 5);
    {
        struct dtm_audit_entry gap[4] = {es[0], es[1], es[2], es[4]};
        assert_int_equal(run(gap, 4, &v), 1);
    }
    assert_int_equal(v.broken, DTM_AUDIT_SEQ_GAP);
    assert_int_equal(v.broken_seq, 5);
    dtm_audit_verify_describe(&v, what, sizeof(what));
    assert_non_null(strstr(what, "entry 4 is missing"));

    /* the first entries missing */
    assert_int_equal(run(es + 2, 3, &v), 1);
    assert_int_equal(v.broken, DTM_AUDIT_SEQ_GAP);
    assert_int_equal(v.broken_seq, 3);
    dtm_audit_verify_describe(&v, what, sizeof(what));
    assert_non_null(strstr(what, "entries 1 to 2 are missing"));

    /* renumbered to hide a gap: the chain of prev_hash breaks */
    {
        struct dtm_audit_entry re[4] = {es[0], es[1], es[2], es[4]};
        re[3].seq = 4;
        assert_int_equal(run(re, 4, &v), 1);
    }
    assert_int_equal(v.broken, DTM_AUDIT_PREV_MISMATCH);
    assert_int_equal(v.broken_seq, 4);

    /* a replaced hash */
    chain(es, 5);
    es[1].hash[0] ^= 0xff;
    assert_int_equal(run(es, 5, &v), 1);
    assert_int_equal(v.broken, DTM_AUDIT_HASH_MISMATCH);
    assert_int_equal(v.broken_seq, 2);

    /* the first entry must follow nothing: 32 zero bytes */
    chain(es, 1);
    es[0].prev_hash[0] = 1;
    assert_int_equal(run(es, 1, &v), 1);
    assert_int_equal(v.broken, DTM_AUDIT_PREV_MISMATCH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encoding_layout),
        cmocka_unit_test(test_hash_is_hmac_of_encoding),
        cmocka_unit_test(test_entry_set_bounds),
        cmocka_unit_test(test_verify),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
