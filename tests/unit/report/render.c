/* Unit tests for report/render.c: the formats' names and types, the CSV of a document (a block
 * per section: title, header, rows, blank line; numbers as plain numbers, nulls empty, CSV
 * quoting), a PDF that starts and ends like one, and documents that are not reports refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <string.h>

#include "core/core.h"
#include "report/report.h"

static const char doc_text[] =
    "{\"kind\":\"transactions\",\"period\":\"2026-09\",\"lang\":\"vi\","
    "\"title\":\"Báo cáo giao dịch\",\"from\":\"2026-09-01T00:00:00.000+07:00\","
    "\"to\":\"2026-10-01T00:00:00.000+07:00\",\"generated_at\":\"2026-11-26T10:00:00.000+07:00\","
    "\"provisional\":false,\"sections\":["
    "{\"id\":\"by_system\",\"title\":\"Giao dịch theo hệ thống\",\"method\":\"Đếm.\","
    "\"columns\":[{\"key\":\"system\",\"label\":\"Hệ thống\",\"type\":\"text\"},"
    "{\"key\":\"total\",\"label\":\"Tổng số\",\"type\":\"int\"},"
    "{\"key\":\"rate\",\"label\":\"Tỷ lệ lỗi\",\"type\":\"percent\"}],"
    "\"rows\":[[\"MOF01\",1234,0.25],[\"A,B\",0,null]],"
    "\"chart\":{\"type\":\"bar\",\"x\":\"system\",\"y\":[\"total\"]}},"
    "{\"id\":\"empty\",\"title\":\"Trống\",\"method\":\"Không có.\","
    "\"columns\":[{\"key\":\"x\",\"label\":\"X\",\"type\":\"text\"}],\"rows\":[]}]}";

static void test_formats(void **state)
{
    enum dtm_report_format f;
    (void)state;
    assert_int_equal(dtm_report_format_parse("pdf", &f), DTM_OK);
    assert_int_equal(f, DTM_REPORT_PDF);
    assert_string_equal(dtm_report_content_type(f), "application/pdf");
    assert_int_equal(dtm_report_format_parse("xlsx", &f), DTM_OK);
    assert_string_equal(dtm_report_format_name(f), "xlsx");
    assert_int_equal(dtm_report_format_parse("docx", &f), DTM_EINVAL);
    assert_int_equal(dtm_report_format_parse(NULL, &f), DTM_EINVAL);
    assert_true(dtm_report_kind_valid("connectivity"));
    assert_false(dtm_report_kind_valid("sales"));
}

static void test_csv(void **state)
{
    cJSON *doc = cJSON_Parse(doc_text);
    struct dtm_buf b;
    (void)state;
    assert_non_null(doc);
    dtm_buf_init(&b, 1 << 20);
    assert_int_equal(dtm_report_render(doc, DTM_REPORT_CSV, "/tmp", &b), DTM_OK);
    dtm_buf_addch(&b, '\0');
    assert_string_equal(b.p, "Giao dịch theo hệ thống\r\n"
                             "Hệ thống,Tổng số,Tỷ lệ lỗi\r\n"
                             "MOF01,1234,0.25\r\n"
                             "\"A,B\",0,\r\n"
                             "\r\n"
                             "Trống\r\n"
                             "X\r\n"
                             "\r\n");
    dtm_buf_free(&b);
    cJSON_Delete(doc);
}

static void test_pdf(void **state)
{
    cJSON *doc = cJSON_Parse(doc_text);
    struct dtm_buf b;
    (void)state;
    dtm_buf_init(&b, 16 << 20);
    assert_int_equal(dtm_report_render(doc, DTM_REPORT_PDF, "/tmp", &b), DTM_OK);
    assert_true(b.n > 1000);
    assert_memory_equal(b.p, "%PDF-", 5);
    {
        /* the trailer: "%%EOF" within the last bytes */
        bool eof = false;
        for (size_t i = b.n - 16; i + 5 <= b.n; i++)
            eof = eof || memcmp(b.p + i, "%%EOF", 5) == 0;
        assert_true(eof);
    }
    dtm_buf_free(&b);
    cJSON_Delete(doc);
}

static void test_refused(void **state)
{
    static const char *const bad[] = {
        "[]",
        "{\"sections\":{}}",
        "{\"sections\":[{\"columns\":[],\"rows\":[]}]}",
        "{\"sections\":[{\"columns\":[{\"key\":\"a\"}],\"rows\":[[1,2]]}]}",
    };
    (void)state;
    for (size_t i = 0; i < DTM_ARRAY_LEN(bad); i++) {
        cJSON *doc = cJSON_Parse(bad[i]);
        struct dtm_buf b;
        dtm_buf_init(&b, 1 << 20);
        assert_int_equal(dtm_report_render(doc, DTM_REPORT_CSV, "/tmp", &b), DTM_EMALFORMED);
        dtm_buf_free(&b);
        cJSON_Delete(doc);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formats),
        cmocka_unit_test(test_csv),
        cmocka_unit_test(test_pdf),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
