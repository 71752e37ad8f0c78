/* Unit tests for src/stats/export.c: a stored record read back field by field (exact number
 * texts, NUL-terminated values by definition index) and written as CSV (every field of the
 * definition, quoting, CSV injection), XML (escaped, stored order), JSON and NDJSON (as stored). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "stats/stats.h"

static const char stored[] =
    "{\"txn_id\":\"T-1\",\"system_code\":\"S1\",\"service_code\":\"a,\\\"b\\\"\","
    "\"status\":\"success\",\"started_at\":\"2026-10-05T08:30:00+07:00\","
    "\"citizen_id\":\"0012******89\",\"amount\":12.50,"
    "\"error_reason\":\"=cmd|' /C calc'!A0 <x> & y\"}";

static int field(const struct dtm_dataset *ds, const char *name)
{
    for (size_t i = 0; i < ds->nfields; i++)
        if (!strcmp(ds->fields[i].name, name))
            return (int)i;
    fail_msg("no field %s", name);
    return -1;
}

static void test_read_and_write(void **state)
{
    struct dtm_dict *d = dtm_dict_create();
    const struct dtm_dataset *ds;
    struct dtm_export_row row;
    struct dtm_buf b;
    enum dtm_export_format f;
    (void)state;
    assert_non_null(d);
    ds = dtm_dict_get(d, DTM_STR("transactions"));
    assert_non_null(ds);
    dtm_export_row_init(&row, ds);
    assert_int_equal(dtm_export_row_read(&row, DTM_STR(stored)), DTM_OK);
    assert_string_equal(dtm_export_get(&row, (size_t)field(ds, "amount")), "12.50");
    assert_string_equal(dtm_export_get(&row, (size_t)field(ds, "service_code")), "a,\"b\"");
    assert_null(dtm_export_get(&row, (size_t)field(ds, "channel")));
    assert_int_equal(row.nfields, 8);

    dtm_buf_init(&b, 1 << 20);
    dtm_export_csv_header(ds, &b);
    assert_true(b.n > 2 && !memcmp(b.p, "txn_id,system_code,", 19));
    assert_int_equal(b.p[b.n - 2], '\r');
    dtm_buf_reset(&b);
    dtm_export_append(&row, DTM_EXPORT_CSV, 0, &b);
    assert_non_null(strstr(b.p, "T-1,S1,,\"a,\"\"b\"\"\","));
    assert_non_null(strstr(b.p, ",12.50,"));
    assert_non_null(strstr(b.p, "\"'=cmd|' /C calc'!A0 <x> & y\"")); /* not a formula */
    dtm_buf_reset(&b);
    dtm_export_append(&row, DTM_EXPORT_XML, 0, &b);
    assert_non_null(strstr(b.p, "  <record><txn_id>T-1</txn_id><system_code>S1</system_code>"));
    assert_non_null(strstr(b.p, "<error_reason>=cmd|' /C calc'!A0 &lt;x&gt; &amp; y</error_reason>"
                                "</record>\n"));
    dtm_buf_reset(&b);
    dtm_export_append(&row, DTM_EXPORT_JSON, 0, &b);
    dtm_export_append(&row, DTM_EXPORT_JSON, 1, &b);
    assert_int_equal(b.n, 1 + (sizeof(stored) - 1) + 2 + (sizeof(stored) - 1));
    assert_true(!memcmp(b.p, "\n{", 2) && strstr(b.p, "}\n,\n{") == NULL &&
                strstr(b.p, "},\n{") != NULL);
    dtm_buf_reset(&b);
    dtm_export_append(&row, DTM_EXPORT_NDJSON, 0, &b);
    assert_int_equal(b.n, sizeof(stored));
    assert_int_equal(b.p[b.n - 1], '\n');

    assert_int_equal(dtm_export_row_read(&row, DTM_STR("not json")), DTM_EMALFORMED);
    assert_int_equal(dtm_export_format_parse("ndjson", &f), DTM_OK);
    assert_int_equal(f, DTM_EXPORT_NDJSON);
    assert_int_equal(dtm_export_format_parse("pdf", &f), DTM_EINVAL);
    dtm_buf_free(&b);
    dtm_export_row_free(&row);
    dtm_dict_destroy(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_and_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
