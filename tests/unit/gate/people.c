/* Unit tests of src/gate/session.c and src/gate/totp.c: user names and roles, the password
 * policy, session ids, the failed-login tracker (delay, lockout, sameness for unknown names),
 * TOTP codes against RFC 6238's SHA-1 test vectors (the sealed seed: gate/datakey.c), base32, QR
 * codes and recovery codes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "gate/gate.h"

static void test_names_roles_policy(void **state)
{
    (void)state;
    assert_true(dtm_username_valid("ana.nguyen-2"));
    assert_false(dtm_username_valid(""));
    assert_false(dtm_username_valid(".ana"));
    assert_false(dtm_username_valid("Ana"));
    assert_false(dtm_username_valid("a b"));
    assert_false(dtm_username_valid("ana'--"));
    assert_true(dtm_role_valid("auditor"));
    assert_false(dtm_role_valid("root"));
    assert_non_null(dtm_password_policy("ana", "short"));
    assert_non_null(dtm_password_policy("ana.nguyen.long", "ANA.NGUYEN.LONG"));
    assert_non_null(dtm_password_policy("ana", "Password1234"));
    char big[DTM_PASSWORD_MAX + 2];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_non_null(dtm_password_policy("ana", big));
    assert_null(dtm_password_policy("ana", "correct horse battery"));
}

static void test_session_ids(void **state)
{
    char a[DTM_SESSION_ID_MAX], b[DTM_SESSION_ID_MAX], ca[48], cb[48];
    uint8_t ha[32], hb[32], h[32];
    (void)state;
    assert_int_equal(dtm_session_new(a, ha, ca), DTM_OK);
    assert_int_equal(dtm_session_new(b, hb, cb), DTM_OK);
    assert_int_equal(strlen(a), 43);
    assert_int_equal(strlen(ca), 22);
    assert_string_not_equal(a, b);
    assert_string_not_equal(ca, cb);
    dtm_session_hash(dtm_str_c(a), h);
    assert_memory_equal(h, ha, 32);
}

static void test_login_tracker(void **state)
{
    struct dtm_conf c;
    int64_t t = 1000000000000LL, retry;
    (void)state;
    dtm_conf_defaults(&c, "/tmp");
    c.session_lockout_after = 3;
    c.session_lockout_minutes = 1;
    c.session_ip_lockout_after = 1000;
    for (int k = 0; k < 2; k++) {
        const char *name = k ? "Nobody" : "known";
        assert_int_equal(dtm_login_check(&c, name, "10.0.0.1", t, &retry), DTM_LOGIN_OK);
        assert_false(dtm_login_failed(&c, name, "10.0.0.1", t));
        /* 250 ms after the first failure */
        assert_int_equal(dtm_login_check(&c, name, "10.0.0.1", t + 100000, &retry),
                         DTM_LOGIN_TOO_SOON);
        assert_int_equal(retry, 1);
        assert_int_equal(dtm_login_check(&c, name, "10.0.0.1", t + 260000, &retry), DTM_LOGIN_OK);
        assert_false(dtm_login_failed(&c, name, "10.0.0.1", t + 260000));
        /* 500 ms after the second */
        assert_int_equal(dtm_login_check(&c, name, "10.0.0.1", t + 700000, &retry),
                         DTM_LOGIN_TOO_SOON);
        assert_true(dtm_login_failed(&c, name, "10.0.0.1", t + 800000));
        assert_int_equal(dtm_login_check(&c, name, "10.0.0.1", t + 5000000, &retry),
                         DTM_LOGIN_LOCKED);
        assert_true(retry > 50 && retry <= 60);
        /* the name is case-insensitive; the lock runs out */
        assert_int_equal(
            dtm_login_check(&c, k ? "NOBODY" : "KNOWN", "10.0.0.2", t + 5000000, &retry),
            DTM_LOGIN_LOCKED);
        assert_int_equal(dtm_login_check(&c, name, "10.0.0.1", t + 61000000, &retry), DTM_LOGIN_OK);
    }
    dtm_login_succeeded("known");
    /* per address */
    c.session_ip_lockout_after = 2;
    dtm_login_failed(&c, "x1", "10.9.9.9", t);
    dtm_login_failed(&c, "x2", "10.9.9.9", t);
    assert_int_equal(dtm_login_check(&c, "x3", "10.9.9.9", t + 1, &retry), DTM_LOGIN_IP_LOCKED);
    assert_int_equal(dtm_login_check(&c, "x3", "10.9.9.8", t + 1, &retry), DTM_LOGIN_OK);
}

static void test_totp_rfc6238(void **state)
{
    /* RFC 6238 appendix B, SHA-1 seed "12345678901234567890", last 6 digits */
    static const uint8_t seed[] = "12345678901234567890";
    static const struct {
        int64_t t;
        const char *code;
    } v[] = {{59, "287082"},         {1111111109, "081804"}, {1111111111, "050471"},
             {1234567890, "005924"}, {2000000000, "279037"}, {20000000000LL, "353130"}};
    char code[8];
    int64_t step;
    (void)state;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        assert_int_equal(dtm_totp_code(seed, 20, v[i].t / 30, code), DTM_OK);
        assert_string_equal(code, v[i].code);
        assert_int_equal(dtm_totp_check(seed, 20, dtm_str_c(v[i].code), v[i].t, &step), DTM_OK);
        assert_int_equal(step, v[i].t / 30);
        /* one step either way */
        assert_int_equal(dtm_totp_check(seed, 20, dtm_str_c(v[i].code), v[i].t + 30, &step),
                         DTM_OK);
        assert_int_equal(dtm_totp_check(seed, 20, dtm_str_c(v[i].code), v[i].t + 90, &step),
                         DTM_EAUTH);
    }
    assert_int_equal(dtm_totp_check(seed, 20, dtm_str_c("28708"), 59, &step), DTM_EAUTH);
    assert_int_equal(dtm_totp_check(seed, 20, dtm_str_c("28708a"), 59, &step), DTM_EAUTH);
}

static void test_base32_uri_qr(void **state)
{
    char b32[64];
    struct dtm_buf b;
    (void)state;
    assert_int_equal(
        dtm_totp_base32((const uint8_t *)"Hello!\xde\xad\xbe\xef", 10, b32, sizeof(b32)), DTM_OK);
    assert_string_equal(b32, "JBSWY3DPEHPK3PXP");
    dtm_buf_init(&b, 1 << 20);
    dtm_totp_uri("ana", b32, &b);
    dtm_buf_addch(&b, '\0');
    assert_string_equal(b.p, "otpauth://totp/DTM:ana?secret=JBSWY3DPEHPK3PXP&issuer=DTM"
                             "&algorithm=SHA1&digits=6&period=30");
    dtm_buf_reset(&b);
    assert_int_equal(dtm_qr_svg("otpauth://totp/DTM:ana?secret=X", &b), DTM_OK);
    assert_true(b.n > 100 && memcmp(b.p, "<svg", 4) == 0);
    dtm_buf_reset(&b);
    assert_int_equal(dtm_qr_png("otpauth://totp/DTM:ana?secret=X", &b), DTM_OK);
    assert_true(b.n > 50 && memcmp(b.p, "\x89PNG\r\n\x1a\n", 8) == 0);
    dtm_buf_free(&b);
}

static void test_recovery_codes(void **state)
{
    char codes[DTM_RECOVERY_CODES][DTM_RECOVERY_CODE_MAX];
    uint8_t hashes[DTM_RECOVERY_CODES][32], h[32];
    char typed[40];
    (void)state;
    assert_int_equal(dtm_recovery_new(codes, hashes, DTM_RECOVERY_CODES), DTM_OK);
    for (size_t i = 0; i < DTM_RECOVERY_CODES; i++) {
        assert_int_equal(strlen(codes[i]), 23);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(codes[i], codes[j]);
    }
    /* typed in capitals with spaces instead of dashes */
    snprintf(typed, sizeof(typed), "%s", codes[3]);
    for (char *p = typed; *p; p++)
        *p = *p == '-' ? ' ' : (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    assert_true(dtm_recovery_hash(dtm_str_c(typed), h));
    assert_memory_equal(h, hashes[3], 32);
    assert_false(dtm_recovery_hash(dtm_str_c("123456"), h));
    assert_false(dtm_recovery_hash(dtm_str_c("aaaaa-aaaaa-aaaaa-aaaai"), h));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_roles_policy), cmocka_unit_test(test_session_ids),
        cmocka_unit_test(test_login_tracker),      cmocka_unit_test(test_totp_rfc6238),
        cmocka_unit_test(test_base32_uri_qr),      cmocka_unit_test(test_recovery_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
