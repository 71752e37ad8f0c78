/* Unit tests of soap/wsdl.c: which PCRE patterns of the data dictionary become XSD patterns (only
 * those XSD reads the same way), and the schema generated for a built-in dataset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "soap/soap.h"

static void pattern_is(const char *pcre, const char *want)
{
    struct dtm_buf b;
    bool ok;
    dtm_buf_init(&b, 4096);
    ok = dtm_soap_xsd_pattern(pcre, &b);
    if (want) {
        assert_true(ok);
        assert_string_equal(b.p ? b.p : "", want);
    } else {
        assert_false(ok);
    }
    dtm_buf_free(&b);
}

static void test_patterns(void **state)
{
    (void)state;
    pattern_is("^[0-9]{12}$", "[0-9]{12}");
    pattern_is("^[A-Za-z0-9._-]{1,32}$", "[A-Za-z0-9._-]{1,32}");
    pattern_is("^(ab|cd)+\\.x$", "(ab|cd)+\\.x");
    pattern_is("^\\d{4}-\\d{2}$", "\\d{4}-\\d{2}");
    pattern_is("[0-9]+", NULL);        /* unanchored: PCRE finds it anywhere */
    pattern_is("^[0-9]+", NULL);       /* anchored at one end only */
    pattern_is("^a+?$", NULL);         /* lazy */
    pattern_is("^(?=a)a$", NULL);      /* lookahead */
    pattern_is("^(a)\\1$", NULL);      /* backreference */
    pattern_is("^\\bword$", NULL);     /* \b */
    pattern_is("^[[:digit:]]$", NULL); /* POSIX class */
    pattern_is("^a$|^b$", NULL);       /* an anchor inside */
    pattern_is("^abc\\$", NULL);       /* the last $ is escaped: not anchored */
    pattern_is("^a{,3}$", NULL);       /* PCRE2-only quantifier */
}

static void test_builtin_schema(void **state)
{
    struct dtm_dataset *ds = NULL;
    struct dtm_buf b;
    char err[256];
    (void)state;
    for (size_t i = 0; dtm_builtin_datasets[i] && !ds; i++) {
        assert_int_equal(
            dtm_dataset_parse(dtm_str_c(dtm_builtin_datasets[i]), &ds, err, sizeof(err)), DTM_OK);
        if (strcmp(ds->code, "transactions") != 0) {
            dtm_dataset_free(ds);
            ds = NULL;
        }
    }
    assert_non_null(ds);
    dtm_buf_init(&b, 1 << 20);
    assert_int_equal(dtm_soap_xsd(ds, &b), DTM_OK);
    assert_non_null(strstr(b.p, "targetNamespace=\"urn:dtm:dataset:"));
    assert_non_null(strstr(b.p, "<xs:complexType name=\"Record\">"));
    assert_non_null(strstr(b.p, "name=\"service_code\" minOccurs=\"1\""));
    assert_non_null(strstr(b.p, "name=\"system_code\" minOccurs=\"0\""));
    assert_non_null(strstr(b.p, "<xs:enumeration value=\"kiosk\"/>"));
    assert_non_null(strstr(b.p, "<xs:minInclusive value=\"0\"/>"));
    dtm_buf_free(&b);
    dtm_dataset_free(ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_patterns),
        cmocka_unit_test(test_builtin_schema),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
