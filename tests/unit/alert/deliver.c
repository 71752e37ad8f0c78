/* Unit tests for src/alert/deliver.c and src/alert/vuln.c: routing (per-severity lists, a
 * channel's min_severity and rules), the webhook signature (RFC 4231 HMAC-SHA-256 vector), the
 * backoff, the RFC 5424 syslog line (PRI, escaping of structured data), the e-mail (headers,
 * no header injection, RFC 2047 subject), the [channel.NAME] configuration, and the register's
 * validation and overdue rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert/alert.h"

static struct dtm_alert alert(const char *rule, const char *sev)
{
    struct dtm_alert a;
    memset(&a, 0, sizeof(a));
    a.id = 42;
    snprintf(a.rule, sizeof(a.rule), "%s", rule);
    snprintf(a.key, sizeof(a.key), "user:alice");
    snprintf(a.severity, sizeof(a.severity), "%s", sev);
    snprintf(a.state, sizeof(a.state), "firing");
    snprintf(a.title, sizeof(a.title), "Brute force on alice");
    snprintf(a.detail, sizeof(a.detail), "{}");
    a.first_seen = a.last_seen = 1764115200000000LL;
    a.count = 1;
    return a;
}

static const char conf_text[] = "[alert]\n"
                                "channels = hook, mail, siem\n"
                                "channels_critical = hook, mail, siem, pager\n"
                                "[channel.hook]\ntype = webhook\nurl = https://h.example/x\n"
                                "secret = s\n"
                                "[channel.mail]\ntype = email\nurl = smtp://m.example:587\n"
                                "from = a@example.vn\nto = b@example.vn\nmin_severity = warning\n"
                                "[channel.siem]\ntype = syslog\naddress = 10.0.0.9:514\n"
                                "rules = auth.*, vuln.overdue\n"
                                "[channel.pager]\ntype = webhook\nurl = http://p.example/\n"
                                "min_severity = critical\n";

static void test_route(void **state)
{
    struct dtm_conf *c = calloc(1, sizeof(*c));
    char err[256] = "";
    size_t idx[8], n;
    struct dtm_alert a;
    (void)state;
    dtm_conf_defaults(c, "/tmp");
    assert_int_equal(dtm_conf_load_string(c, conf_text, "t.conf", err, sizeof(err)), DTM_OK);
    assert_int_equal(c->nchannels, 4);
    assert_string_equal(c->channels[1].name, "mail");
    assert_true(c->channels[1].tls); /* STARTTLS required by default */
    assert_int_equal(c->channels[2].facility, 16);
    assert_int_equal(c->channels[0].timeout, 10);

    a = alert("auth.brute_force", "info");
    n = dtm_alert_route(c, &a, idx, 8);
    assert_int_equal(n, 2); /* mail takes warning and above */
    assert_int_equal(idx[0], 0);
    assert_int_equal(idx[1], 2);
    a = alert("spike.requests", "warning");
    n = dtm_alert_route(c, &a, idx, 8);
    assert_int_equal(n, 2); /* siem takes auth.* and vuln.overdue only */
    assert_int_equal(idx[0], 0);
    assert_int_equal(idx[1], 1);
    a = alert("vuln.overdue", "critical");
    n = dtm_alert_route(c, &a, idx, 8);
    assert_int_equal(n, 4);
    assert_int_equal(idx[3], 3);
    free(c);
}

static void test_rule_match(void **state)
{
    (void)state;
    assert_true(dtm_alert_rule_match("", "x"));
    assert_true(dtm_alert_rule_match(" , ", "x"));
    assert_true(dtm_alert_rule_match("auth.*", "auth.brute_force"));
    assert_false(dtm_alert_rule_match("auth.*", "authz.x"));
    assert_true(dtm_alert_rule_match("a, vuln.overdue ", "vuln.overdue"));
    assert_false(dtm_alert_rule_match("vuln.overdue", "vuln.overdue2"));
    assert_true(dtm_alert_rule_match("*", "anything"));
}

static void test_signature(void **state)
{
    char sig[80];
    static const char data[] = "what do ya want for nothing?";
    (void)state;
    /* RFC 4231, test case 2 */
    dtm_alert_signature("Jefe", data, strlen(data), sig, sizeof(sig));
    assert_string_equal(sig,
                        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

static void test_backoff(void **state)
{
    (void)state;
    assert_int_equal(dtm_alert_backoff(5, 2), 5);
    assert_int_equal(dtm_alert_backoff(5, 3), 10);
    assert_int_equal(dtm_alert_backoff(5, 4), 20);
    assert_int_equal(dtm_alert_backoff(1, 2), 1);
    assert_int_equal(dtm_alert_backoff(1, 5), 8);
    assert_int_equal(dtm_alert_backoff(60, 40), 3600);
    assert_int_equal(dtm_alert_backoff(0, 2), 1);
}

static void test_syslog(void **state)
{
    struct dtm_buf b;
    struct dtm_alert a = alert("auth.brute_force", "critical");
    (void)state;
    snprintf(a.key, sizeof(a.key), "user:\"x]\\y");
    snprintf(a.title, sizeof(a.title), "line1\nline2");
    dtm_buf_init(&b, 8192);
    assert_int_equal(dtm_alert_syslog_format(&b, &a, 16, "host one", 1234), DTM_OK);
    assert_memory_equal(b.p, "<130>1 ", 7); /* local0 × 8 + crit */
    assert_non_null(strstr(b.p, "Z host_one dtm 1234 alert [dtm@32473 id=\"42\" "
                                "rule=\"auth.brute_force\" key=\"user:\\\"x\\]\\\\y\" "
                                "severity=\"critical\" state=\"firing\" count=\"1\"] "
                                "\xEF\xBB\xBFline1 line2"));
    assert_null(strchr(b.p, '\n'));
    dtm_buf_reset(&b);
    a = alert("x", "info");
    dtm_alert_syslog_format(&b, &a, 4, "", 1);
    assert_memory_equal(b.p, "<38>1 ", 6);
    assert_non_null(strstr(b.p, "Z - dtm 1 alert "));
    dtm_buf_free(&b);
}

static void test_email(void **state)
{
    struct dtm_buf b;
    struct dtm_alert a = alert("auth.brute_force", "warning");
    (void)state;
    snprintf(a.title, sizeof(a.title), "evil\r\nBcc: victim@example.com");
    dtm_buf_init(&b, 1 << 16);
    assert_int_equal(dtm_alert_email_format(&b, &a, "dtm@example.vn", "soc@example.vn", "h.example",
                                            1764115200000000LL),
                     DTM_OK);
    assert_memory_equal(b.p, "From: dtm@example.vn\r\nTo: soc@example.vn\r\n", 42);
    assert_non_null(strstr(b.p, "\r\nSubject: [DTM warning] evil  Bcc: victim@example.com\r\n"));
    assert_null(strstr(b.p, "\r\nBcc:"));
    assert_non_null(strstr(b.p, "\r\nDate: Wed, 26 Nov 2025 00:00:00 +0000\r\n"));
    assert_non_null(strstr(b.p, "\r\nMessage-ID: <dtm-alert-42-"));
    assert_non_null(strstr(b.p, "@h.example>\r\n"));
    assert_non_null(strstr(b.p, "Content-Type: text/plain; charset=UTF-8\r\n"));
    assert_non_null(strstr(b.p, "\r\n\r\nDTM alert: evil  Bcc"));
    dtm_buf_reset(&b);
    /* a resolved alert says so */
    a = alert("x", "critical");
    snprintf(a.state, sizeof(a.state), "resolved");
    dtm_alert_email_format(&b, &a, "a@b", "c@d", "h", 0);
    assert_non_null(strstr(b.p, "\r\nSubject: [DTM resolved] Brute force on alice\r\n"));
    assert_non_null(strstr(b.p, "\r\n\r\nDTM alert resolved: Brute force on alice\r\n"));
    dtm_buf_reset(&b);
    /* a Vietnamese title: an RFC 2047 encoded word */
    a = alert("x", "info");
    snprintf(a.title, sizeof(a.title), "Đăng nhập");
    dtm_alert_email_format(&b, &a, "a@b", "c@d", "h", 0);
    assert_non_null(strstr(b.p, "\r\nSubject: =?UTF-8?B?"));
    dtm_buf_free(&b);
}

static void test_bad_conf(void **state)
{
    static const struct {
        const char *text, *needle;
    } cases[] = {
        {"[alert]\nchannels = a\n", "names channel 'a'"},
        {"[channel.a]\ntype = x\n", "type must be"},
        {"[channel.a]\ntype = webhook\nurl = file:///etc/passwd\n", "webhook needs url"},
        {"[channel.a]\ntype = email\nurl = http://x/\nfrom = a\nto = b\n", "smtp://"},
        {"[channel.a]\ntype = syslog\naddress = x\n", "HOST:PORT"},
        {"[channel.a]\ntype = syslog\naddress = local\nmin_severity = high\n", "min_severity"},
        {"[channel.a]\ntimeout = 0\n", "timeout must be an integer"},
        {"[channel.a]\nfoo = 1\n", "unknown setting 'foo' in section [channel.a]"},
        {"[channel.]\ntype = webhook\n", "channel names are"},
        {"[channel.a]\ntype = syslog\naddress = local\n[channel.b]\ntype = syslog\naddress = "
         "local\n[channel.c]\ntype = syslog\naddress = local\n[channel.d]\ntype = syslog\n"
         "address = local\n[channel.e]\ntype = syslog\naddress = local\n[channel.f]\ntype = "
         "syslog\naddress = local\n[channel.g]\ntype = syslog\naddress = local\n[channel.h]\n"
         "type = syslog\naddress = local\n[channel.i]\ntype = syslog\n",
         "at most 8"},
    };
    struct dtm_conf *c = calloc(1, sizeof(*c));
    (void)state;
    for (size_t i = 0; i < DTM_ARRAY_LEN(cases); i++) {
        char err[512] = "";
        dtm_conf_defaults(c, "/tmp");
        assert_int_equal(dtm_conf_load_string(c, cases[i].text, "t.conf", err, sizeof(err)),
                         DTM_EINVAL);
        if (!strstr(err, cases[i].needle))
            fail_msg("case %zu: '%s' not in '%s'", i, cases[i].needle, err);
    }
    free(c);
}

static void test_vuln_rules(void **state)
{
    struct dtm_vuln v;
    char today[11];
    (void)state;
    assert_true(dtm_vuln_date_ok("2026-02-28"));
    assert_true(dtm_vuln_date_ok("2028-02-29"));
    assert_false(dtm_vuln_date_ok("2026-02-29"));
    assert_false(dtm_vuln_date_ok("2026-2-28"));
    assert_false(dtm_vuln_date_ok("2026-02-28T00:00"));
    assert_false(dtm_vuln_date_ok(""));
    assert_true(dtm_vuln_status_ok("in_progress"));
    assert_false(dtm_vuln_status_ok("closed"));
    assert_true(dtm_vuln_severity_ok("critical"));
    assert_false(dtm_vuln_severity_ok("Critical"));
    /* 2025-11-25T17:00:00Z is 2025-11-26 00:00 in UTC+07:00 */
    dtm_vuln_today(1764090000000000LL, today);
    assert_string_equal(today, "2025-11-26");
    dtm_vuln_today(1764089999000000LL, today);
    assert_string_equal(today, "2025-11-25");
    memset(&v, 0, sizeof(v));
    snprintf(v.deadline, sizeof(v.deadline), "2025-11-25");
    snprintf(v.status, sizeof(v.status), "open");
    assert_true(dtm_vuln_overdue(&v, "2025-11-26"));
    assert_false(dtm_vuln_overdue(&v, "2025-11-25")); /* the deadline day itself is in time */
    snprintf(v.status, sizeof(v.status), "in_progress");
    assert_true(dtm_vuln_overdue(&v, "2025-11-26"));
    snprintf(v.status, sizeof(v.status), "fixed");
    assert_false(dtm_vuln_overdue(&v, "2025-11-26"));
    snprintf(v.status, sizeof(v.status), "accepted");
    assert_false(dtm_vuln_overdue(&v, "2026-11-26"));
    assert_int_equal(dtm_vuln_alert_severity("high"), DTM_ALERT_CRITICAL);
    assert_int_equal(dtm_vuln_alert_severity("medium"), DTM_ALERT_WARNING);
    assert_int_equal(dtm_vuln_alert_severity("low"), DTM_ALERT_INFO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route),     cmocka_unit_test(test_rule_match),
        cmocka_unit_test(test_signature), cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_syslog),    cmocka_unit_test(test_email),
        cmocka_unit_test(test_bad_conf),  cmocka_unit_test(test_vuln_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
