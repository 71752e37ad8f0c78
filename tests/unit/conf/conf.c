/* Unit tests of src/conf: defaults, parsing, unknown keys refused, the generated sample. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"

static char *write_tmp(const char *text)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/dtm-conf-test-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_defaults(void **state)
{
    struct dtm_conf c;
    (void)state;
    dtm_conf_defaults(&c, "/data");
    assert_string_equal(c.http, "127.0.0.1:8080");
    assert_string_equal(c.https, "0.0.0.0:8443");
    assert_false(c.http_public);
    assert_true(c.max_records == 10000);
    assert_true(c.idempotency_ttl == 86400);
    char p[DTM_PATH_MAX];
    dtm_conf_path(&c, "dtm.db", p, sizeof(p));
    assert_string_equal(p, "/data/dtm.db");
    dtm_conf_path(&c, "/abs/x", p, sizeof(p));
    assert_string_equal(p, "/abs/x");
}

static void test_load_values(void **state)
{
    struct dtm_conf c;
    char err[256];
    (void)state;
    dtm_conf_defaults(&c, "/d");
    char *path = write_tmp("[server]\nhttp = 127.0.0.1:9000\nthreads = 4\n[log]\naccess = off\n");
    assert_int_equal(dtm_conf_load(&c, path, err, sizeof(err)), DTM_OK);
    assert_string_equal(c.http, "127.0.0.1:9000");
    assert_true(c.threads == 4);
    assert_false(c.access_log);
    unlink(path);
}

static void test_rejects_unknown_and_bad(void **state)
{
    struct dtm_conf c;
    char err[256];
    (void)state;
    dtm_conf_defaults(&c, "/d");
    char *path = write_tmp("[server]\nhtpp = 1\n");
    assert_int_equal(dtm_conf_load(&c, path, err, sizeof(err)), DTM_EINVAL);
    assert_non_null(strstr(err, "unknown setting 'htpp'"));
    unlink(path);
    path = write_tmp("[ingest]\nmax_records = lots\n");
    assert_int_equal(dtm_conf_load(&c, path, err, sizeof(err)), DTM_EINVAL);
    assert_non_null(strstr(err, "max_records"));
    unlink(path);
    path = write_tmp("[log]\naccess = maybe\n");
    assert_int_equal(dtm_conf_load(&c, path, err, sizeof(err)), DTM_EINVAL);
    unlink(path);
    path = write_tmp("[nosuch]\nx = 1\n");
    assert_int_equal(dtm_conf_load(&c, path, err, sizeof(err)), DTM_EINVAL);
    unlink(path);
    assert_int_equal(dtm_conf_load(&c, "/nonexistent/dtm.conf", err, sizeof(err)), DTM_ENOTFOUND);
}

static void test_sample_round_trips(void **state)
{
    struct dtm_conf a, b;
    struct dtm_buf s;
    char err[256];
    (void)state;
    dtm_buf_init(&s, 1 << 20);
    assert_int_equal(dtm_conf_sample(&s), DTM_OK);
    assert_non_null(strstr(s.p, "[ingest]"));
    char *path = write_tmp(s.p);
    dtm_conf_defaults(&a, "/d");
    dtm_conf_defaults(&b, "/d");
    assert_int_equal(dtm_conf_load(&b, path, err, sizeof(err)), DTM_OK);
    assert_memory_equal(&a, &b, sizeof(a));
    unlink(path);
    dtm_buf_free(&s);
}

/* libinih's fixed line buffer: a line of DTM_CONF_LINE_MAX bytes loads whole, a longer one is
 * refused with its number (inih would cut it and read the rest as another line) */
static void test_long_lines(void **state)
{
    struct dtm_conf c;
    char err[256], text[600], value[400];
    (void)state;
    for (size_t n = 0; n < 2; n++) {
        size_t len = DTM_CONF_LINE_MAX + n - strlen("dsn = ");
        memset(value, 'a', len);
        memcpy(value, "host=", 5);
        value[len] = '\0';
        snprintf(text, sizeof(text), "[store]\ndsn = %s\nbackend = postgresql\n", value);
        dtm_conf_defaults(&c, "/d");
        if (n == 0) {
            assert_int_equal(dtm_conf_load_string(&c, text, "t.conf", err, sizeof(err)), DTM_OK);
            assert_string_equal(c.store_dsn, value);
            assert_string_equal(c.backend, "postgresql");
        } else {
            assert_int_equal(dtm_conf_load_string(&c, text, "t.conf", err, sizeof(err)),
                             DTM_EINVAL);
            assert_non_null(strstr(err, "t.conf:2: line longer than 199 characters"));
        }
    }
}

static void test_addresses(void **state)
{
    char host[64];
    int port;
    (void)state;
    assert_int_equal(dtm_conf_split_addr("127.0.0.1:8080", host, sizeof(host), &port), DTM_OK);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8080);
    assert_int_equal(dtm_conf_split_addr("[::1]:0", host, sizeof(host), &port), DTM_OK);
    assert_string_equal(host, "::1");
    assert_int_equal(dtm_conf_split_addr("nohost", host, sizeof(host), &port), DTM_EINVAL);
    assert_int_equal(dtm_conf_split_addr("h:70000", host, sizeof(host), &port), DTM_EINVAL);
    assert_true(dtm_conf_is_loopback("127.0.0.2"));
    assert_true(dtm_conf_is_loopback("::1"));
    assert_false(dtm_conf_is_loopback("0.0.0.0"));
    assert_false(dtm_conf_is_loopback("10.0.0.1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_load_values),
        cmocka_unit_test(test_rejects_unknown_and_bad),
        cmocka_unit_test(test_sample_round_trips),
        cmocka_unit_test(test_long_lines),
        cmocka_unit_test(test_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
