/* Unit tests of src/dict/dataset.c and src/dict/registry.c: the seven built-in definitions
 * (CONTRACT §4), their canonical JSON, the registry, and the rejection of broken definitions
 * with a one-sentence reason (G1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dict/dict.h"

static struct dtm_dataset *parse_ok(const char *json)
{
    struct dtm_dataset *ds = NULL;
    char err[256] = "";
    int rc = dtm_dataset_parse(dtm_str_c(json), &ds, err, sizeof err);
    if (rc != DTM_OK)
        fail_msg("definition rejected: %s", err);
    assert_non_null(ds);
    return ds;
}

static int field(const struct dtm_dataset *ds, const char *name)
{
    return dtm_dataset_field(ds, dtm_str_c(name));
}

static const struct dtm_field_def *fdef(const struct dtm_dataset *ds, const char *name)
{
    int i = field(ds, name);
    if (i < 0)
        fail_msg("dataset %s has no field %s", ds->code, name);
    return &ds->fields[i];
}

static bool has_cube(const struct dtm_dataset *ds, const char *const *names, size_t n)
{
    for (size_t c = 0; c < ds->ncubes; c++) {
        if (ds->cubes[c].n != n)
            continue;
        size_t found = 0;
        for (size_t k = 0; k < n; k++)
            for (size_t j = 0; j < ds->cubes[c].n; j++)
                found += ds->cubes[c].dims[j] == field(ds, names[k]);
        if (found == n)
            return true;
    }
    return false;
}

static void test_every_builtin_parses(void **state)
{
    (void)state;
    static const char *const codes[] = {"transactions",    "service_stats",  "connection_logs",
                                        "security_events", "training_stats", "inspections",
                                        "documents"};
    size_t n = 0;
    for (; dtm_builtin_datasets[n]; n++) {
        struct dtm_dataset *ds = parse_ok(dtm_builtin_datasets[n]);
        bool known = false;
        for (size_t k = 0; k < DTM_ARRAY_LEN(codes); k++)
            known |= strcmp(ds->code, codes[k]) == 0;
        assert_true(known);
        /* G2: published metadata in both languages */
        assert_non_null(ds->title.vi);
        assert_non_null(ds->title.en);
        assert_non_null(ds->description.vi);
        assert_non_null(ds->description.en);
        assert_non_null(ds->access.vi);
        assert_non_null(ds->access.en);
        assert_string_equal(ds->agency, "Cục Chuyển đổi số quốc gia, Bộ Khoa học và Công nghệ");
        assert_string_equal(ds->classification, "internal");
        assert_non_null(ds->update_frequency);
        /* every dataset carries the sending system's code, in its key */
        const struct dtm_field_def *sys = fdef(ds, "system_code");
        assert_int_equal(ds->system_field, field(ds, "system_code"));
        assert_int_equal(sys->type, DTM_T_STRING);
        assert_true(sys->required);
        assert_string_equal(sys->pattern, "^[A-Za-z0-9._-]{1,32}$");
        assert_non_null(sys->pattern_code);
        assert_int_equal(ds->key[0], ds->system_field);
        assert_true(ds->time_field >= 0);
        assert_true(ds->ncubes >= 1);
        for (size_t f = 0; f < ds->nfields; f++) {
            assert_non_null(ds->fields[f].title.vi);
            assert_non_null(ds->fields[f].title.en);
        }
        assert_non_null(ds->json);
        dtm_dataset_free(ds);
    }
    assert_int_equal(n, 7);
}

static struct dtm_dataset *builtin(const char *code)
{
    for (size_t i = 0; dtm_builtin_datasets[i]; i++) {
        struct dtm_dataset *ds = parse_ok(dtm_builtin_datasets[i]);
        if (strcmp(ds->code, code) == 0)
            return ds;
        dtm_dataset_free(ds);
    }
    fail_msg("no built-in %s", code);
    return NULL;
}

static void assert_enum(const struct dtm_dataset *ds, const char *name, const char *const *vals,
                        size_t n)
{
    const struct dtm_field_def *f = fdef(ds, name);
    assert_int_equal(f->type, DTM_T_ENUM);
    assert_int_equal(f->nvalues, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(f->values[i], vals[i]);
}

#define ENUM(ds, name, ...)                                                                        \
    do {                                                                                           \
        static const char *const v_[] = {__VA_ARGS__};                                             \
        assert_enum(ds, name, v_, DTM_ARRAY_LEN(v_));                                              \
    } while (0)

static void test_transactions(void **state)
{
    (void)state;
    struct dtm_dataset *ds = builtin("transactions");
    assert_int_equal(ds->nfields, 17);
    assert_int_equal(ds->nkey, 2);
    assert_int_equal(ds->key[1], field(ds, "txn_id"));
    assert_int_equal(ds->time_field, field(ds, "started_at"));
    assert_int_equal(ds->classification_field, field(ds, "classification"));
    assert_true(fdef(ds, "service_code")->required);
    assert_true(fdef(ds, "status")->required);
    assert_true(fdef(ds, "started_at")->required);
    assert_int_equal(fdef(ds, "txn_id")->max_length, 64);
    ENUM(ds, "channel", "web", "mobile", "api", "kiosk", "counter", "other");
    ENUM(ds, "status", "success", "failed", "pending");
    ENUM(ds, "priority", "low", "normal", "high", "urgent");
    ENUM(ds, "classification", "public", "internal", "confidential");
    const struct dtm_field_def *cid = fdef(ds, "citizen_id");
    assert_true(cid->personal);
    assert_int_equal(cid->mask, DTM_MASK_PARTIAL);
    assert_string_equal(cid->pattern, "^[0-9]{12}$");
    assert_true(fdef(ds, "response_ms")->has_min);
    assert_string_equal(fdef(ds, "response_ms")->unit, "ms");
    assert_int_equal(fdef(ds, "amount")->type, DTM_T_DECIMAL);
    assert_true(fdef(ds, "amount")->has_min && fdef(ds, "amount")->min == 0);
    assert_string_equal(fdef(ds, "amount")->unit, "VND");
    assert_int_equal(fdef(ds, "finished_at")->type, DTM_T_DATETIME);
    assert_int_equal(ds->nrules, 2);
    assert_int_equal(ds->rules[0].nif, 1);
    assert_int_equal(ds->rules[0].require[0], field(ds, "error_code"));
    assert_int_equal(ds->rules[1].op, DTM_OP_GE);
    assert_int_equal(ds->nmeasures, 2);
    static const char *const c1[] = {"system_code", "status", "error_code"};
    static const char *const c2[] = {"system_code", "service_code", "status"};
    static const char *const c3[] = {"region_code", "channel", "status"};
    static const char *const c4[] = {"agency_code", "service_code"};
    static const char *const c5[] = {"system_code", "service_code", "status", "error_code"};
    assert_true(has_cube(ds, c1, 3));
    assert_true(has_cube(ds, c2, 3));
    assert_true(has_cube(ds, c3, 3));
    assert_true(has_cube(ds, c4, 2));
    assert_true(has_cube(ds, c5, 4));
    dtm_dataset_free(ds);
}

static void test_other_builtins(void **state)
{
    (void)state;
    struct dtm_dataset *ds = builtin("service_stats");
    assert_int_equal(ds->nkey, 4);
    ENUM(ds, "period_type", "day", "week", "month", "quarter", "year");
    assert_int_equal(fdef(ds, "period_start")->type, DTM_T_DATE);
    assert_int_equal(ds->nrules, 1);
    assert_int_equal(ds->rules[0].nleft, 2);
    assert_int_equal(ds->rules[0].op, DTM_OP_LE);
    assert_int_equal(fdef(ds, "total")->type, DTM_T_INTEGER);
    assert_true(fdef(ds, "failed")->has_min);
    dtm_dataset_free(ds);

    ds = builtin("connection_logs");
    ENUM(ds, "direction", "in", "out");
    ENUM(ds, "status", "ok", "error");
    assert_int_equal(fdef(ds, "duration_ms")->type, DTM_T_INTEGER);
    dtm_dataset_free(ds);

    ds = builtin("security_events");
    ENUM(ds, "severity", "info", "low", "medium", "high", "critical");
    ENUM(ds, "status", "open", "mitigated", "resolved");
    assert_int_equal(ds->nrules, 1);
    assert_int_equal(ds->rules[0].left[0], field(ds, "resolved_at"));
    assert_int_equal(ds->rules[0].right[0], field(ds, "detected_at"));
    dtm_dataset_free(ds);

    ds = builtin("training_stats");
    assert_int_equal(ds->nkey, 4);
    assert_int_equal(ds->nmeasures, 4);
    dtm_dataset_free(ds);

    ds = builtin("inspections");
    ENUM(ds, "case_type", "inspection", "complaint", "denunciation", "violation", "incident");
    ENUM(ds, "status", "open", "in_progress", "closed");
    assert_int_equal(ds->rules[0].left[0], field(ds, "closed_at"));
    dtm_dataset_free(ds);

    ds = builtin("documents");
    ENUM(ds, "doc_type", "strategy", "plan", "policy", "legal", "standard", "technical_regulation",
         "norm", "other");
    assert_string_equal(fdef(ds, "url")->pattern, "^https?://");
    assert_int_equal(fdef(ds, "issued_at")->type, DTM_T_DATE);
    dtm_dataset_free(ds);
}

/* The canonical JSON parses back to itself. */
static void test_canonical_json(void **state)
{
    (void)state;
    for (size_t i = 0; dtm_builtin_datasets[i]; i++) {
        struct dtm_dataset *a = parse_ok(dtm_builtin_datasets[i]);
        struct dtm_dataset *b = parse_ok(a->json);
        assert_string_equal(a->json, b->json);
        assert_int_equal(a->nfields, b->nfields);
        assert_int_equal(a->nrules, b->nrules);
        dtm_dataset_free(a);
        dtm_dataset_free(b);
    }
    struct dtm_dataset *ds =
        parse_ok("  {\"fields\": [{\"type\": \"string\", \"name\": \"id\", \"required\": true, "
                 "\"personal\": false}], \"key\": [\"id\"], \"title\": {\"en\": \"T\"}, "
                 "\"code\": \"t\"}\n");
    assert_string_equal(ds->json, "{\"code\":\"t\",\"version\":1,\"title\":{\"en\":\"T\"},"
                                  "\"classification\":\"internal\",\"key\":[\"id\"],\"fields\":"
                                  "[{\"name\":\"id\",\"type\":\"string\",\"required\":true}],"
                                  "\"rules\":[],\"dimensions\":[],\"measures\":[],\"cubes\":[]}");
    dtm_dataset_free(ds);
}

static void test_field_lookup(void **state)
{
    (void)state;
    struct dtm_dataset *ds = builtin("transactions");
    assert_int_equal(field(ds, "txn_id"), 0);
    assert_int_equal(field(ds, "classification"), 16);
    assert_int_equal(field(ds, "txn"), -1);
    assert_int_equal(field(ds, "txn_id_"), -1);
    assert_int_equal(field(ds, ""), -1);
    assert_int_equal(dtm_dataset_field(ds, (struct dtm_str){"txn_id\0\0", 8}), -1);
    assert_int_equal(dtm_dataset_field(ds, (struct dtm_str){"txn_idx", 6}), 0);
    dtm_dataset_free(ds);
}

/* ---- broken definitions */

#define HEAD "{\"code\":\"t\",\"title\":{\"en\":\"T\"},"
#define ID "{\"name\":\"id\",\"type\":\"string\",\"required\":true}"
#define BASE(fields, rest) HEAD "\"key\":[\"id\"],\"fields\":[" ID fields "]" rest "}"

struct broken {
    const char *json;
    const char *reason; /* a substring of the error */
};

static const struct broken broken[] = {
    {"", "empty"},
    {"{\"code\": ", "not valid JSON (line 1, column"},
    {"{\"code\":\"t\"} x", "text after"},
    {"[1]", "must be a JSON object"},
    {"{\"code\":\"t\xff\"}", "UTF-8"},
    {BASE("", ",\"colour\":1"), "Unknown key 'colour' in the dataset definition"},
    {HEAD "\"code\":\"u\",\"key\":[\"id\"],\"fields\":[" ID "]}", "appears twice"},
    {"{\"code\":\"Transactions\",\"title\":{\"en\":\"T\"},\"key\":[\"id\"],\"fields\":[" ID "]}",
     "Dataset code 'Transactions' is invalid"},
    {"{\"title\":{\"en\":\"T\"},\"key\":[\"id\"],\"fields\":[" ID "]}", "has no code"},
    {"{\"code\":\"t\",\"key\":[\"id\"],\"fields\":[" ID "]}", "has no title"},
    {HEAD "\"key\":[\"id\"],\"title\":{\"fr\":\"T\"},\"fields\":[" ID "]}", "appears twice"},
    {"{\"code\":\"t\",\"title\":{\"fr\":\"T\"},\"key\":[\"id\"],\"fields\":[" ID "]}",
     "may only have one \"vi\" and one \"en\" text"},
    {HEAD "\"key\":[\"id\"],\"fields\":[]}", "from 1 to 64 fields"},
    {HEAD "\"fields\":[" ID "]}", "has no key"},
    {BASE(",{\"name\":\"x\",\"type\":\"string\",\"colour\":1}", ""),
     "Unknown key 'colour' in field 'x'"},
    {BASE(",{\"name\":\"1x\",\"type\":\"string\"}", ""), "Field name '1x' is invalid"},
    {BASE(",{\"name\":\"Xx\",\"type\":\"string\"}", ""), "Field name 'Xx' is invalid"},
    {BASE(",{\"name\":\"a234567890123456789012345678901234567890123456789012345678901234\","
          "\"type\":\"string\"}",
          ""),
     "is invalid"},
    {BASE(",{\"type\":\"string\"}", ""), "has no name"},
    {BASE(",{\"name\":\"id\",\"type\":\"string\"}", ""), "Field 'id' is defined twice"},
    {BASE(",{\"name\":\"x\",\"type\":\"text\"}", ""), "unknown type 'text'"},
    {BASE(",{\"name\":\"x\"}", ""), "Field 'x' has no type"},
    {BASE(",{\"name\":\"x\",\"type\":\"enum\"}", ""), "must list its values"},
    {BASE(",{\"name\":\"x\",\"type\":\"enum\",\"values\":[]}", ""), "must list its values"},
    {BASE(",{\"name\":\"x\",\"type\":\"enum\",\"values\":[\"a\",\"a\"]}", ""), "'a' twice"},
    {BASE(",{\"name\":\"x\",\"type\":\"enum\",\"values\":[\"a\",2]}", ""), "non-empty string"},
    {BASE(",{\"name\":\"x\",\"type\":\"string\",\"values\":[\"a\"]}", ""), "is not an enum"},
    {BASE(",{\"name\":\"x\",\"type\":\"string\",\"pattern\":\"([a-z\"}", ""),
     "The pattern of field 'x' does not compile"},
    {BASE(",{\"name\":\"x\",\"type\":\"integer\",\"pattern\":\"^1$\"}", ""), "not a string"},
    {BASE(",{\"name\":\"x\",\"type\":\"integer\",\"max_length\":3}", ""), "not a string"},
    {BASE(",{\"name\":\"x\",\"type\":\"string\",\"max_length\":0}", ""), "integer from 1"},
    {BASE(",{\"name\":\"x\",\"type\":\"string\",\"max_length\":2.5}", ""), "integer from 1"},
    {BASE(",{\"name\":\"x\",\"type\":\"string\",\"required\":\"yes\"}", ""), "true or false"},
    {BASE(",{\"name\":\"x\",\"type\":\"integer\",\"min\":5,\"max\":1}", ""), "min greater"},
    {BASE(",{\"name\":\"x\",\"type\":\"integer\",\"min\":0.5}", ""), "whole number"},
    {BASE(",{\"name\":\"x\",\"type\":\"string\",\"min\":0}", ""), "not an integer or decimal"},
    {BASE(",{\"name\":\"x\",\"type\":\"string\",\"mask\":\"partial\"}", ""), "not marked personal"},
    {BASE(",{\"name\":\"x\",\"type\":\"string\",\"personal\":true,\"mask\":\"blur\"}", ""),
     "partial, hash or redact"},
    {BASE(",{\"name\":\"x\",\"type\":\"date\",\"personal\":true}", ""), "must be a string"},
    {BASE(",{\"name\":\"x\",\"type\":\"string\",\"title\":{\"en\":\"\"}}", ""), "non-empty"},
    {BASE(",{\"name\":\"x\",\"type\":\"string\",\"title\":\"X\"}", ""), "must be an object"},
    {HEAD "\"key\":[\"nope\"],\"fields\":[" ID "]}", "The key names the unknown field 'nope'"},
    {HEAD "\"key\":[\"id\",\"id\"],\"fields\":[" ID "]}", "twice"},
    {HEAD "\"key\":[],\"fields\":[" ID "]}", "from 1 to 8"},
    {HEAD "\"key\":[\"id\",\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\"],\"fields\":[" ID
          ",{\"name\":\"a\",\"type\":\"string\",\"required\":true},"
          "{\"name\":\"b\",\"type\":\"string\",\"required\":true},"
          "{\"name\":\"c\",\"type\":\"string\",\"required\":true},"
          "{\"name\":\"d\",\"type\":\"string\",\"required\":true},"
          "{\"name\":\"e\",\"type\":\"string\",\"required\":true},"
          "{\"name\":\"f\",\"type\":\"string\",\"required\":true},"
          "{\"name\":\"g\",\"type\":\"string\",\"required\":true},"
          "{\"name\":\"h\",\"type\":\"string\",\"required\":true}]}",
     "from 1 to 8"},
    {HEAD "\"key\":[\"id\",\"x\"],\"fields\":[" ID ",{\"name\":\"x\",\"type\":\"string\"}]}",
     "Key field 'x' must be required"},
    {HEAD "\"key\":[\"id\",\"x\"],\"fields\":[" ID ",{\"name\":\"x\",\"type\":\"string\","
          "\"required\":true,\"personal\":true,\"mask\":\"partial\"}]}",
     "mask must be hash"},
    {BASE(",{\"name\":\"at\",\"type\":\"string\",\"required\":true}", ",\"time_field\":\"at\""),
     "must be a date or datetime"},
    {BASE(",{\"name\":\"at\",\"type\":\"datetime\"}", ",\"time_field\":\"at\""),
     "must be required"},
    {BASE("", ",\"time_field\":\"at\""), "must name one of its fields"},
    {BASE(",{\"name\":\"s\",\"type\":\"string\"}", ",\"measures\":[\"s\"]"),
     "Measure 's' must be an integer or decimal"},
    {BASE("", ",\"measures\":[\"n\"]"), "unknown field 'n'"},
    {BASE("", ",\"dimensions\":\"id\""), "must be an array"},
    {BASE(",{\"name\":\"p\",\"type\":\"string\",\"personal\":true}", ",\"dimensions\":[\"p\"]"),
     "cannot be a dimension"},
    {BASE(",{\"name\":\"a\",\"type\":\"string\"},{\"name\":\"b\",\"type\":\"string\"}",
          ",\"dimensions\":[\"a\"],\"cubes\":[[\"a\",\"b\"]]"),
     "Cube 1 uses field 'b', which is not a dimension"},
    {BASE(",{\"name\":\"a\",\"type\":\"string\"}", ",\"dimensions\":[\"a\"],\"cubes\":[[]]"),
     "Cube 1 must name from 1"},
    {BASE(",{\"name\":\"a\",\"type\":\"string\"},{\"name\":\"b\",\"type\":\"string\"}",
          ",\"dimensions\":[\"a\",\"b\"],\"cubes\":[[\"a\",\"b\"],[\"b\",\"a\"]]"),
     "same dimensions"},
    {BASE("", ",\"rules\":[{\"if\":{\"zz\":\"x\"},\"require\":[\"id\"]}]"), "unknown field 'zz'"},
    {BASE("", ",\"rules\":[{\"require\":[\"zz\"]}]"), "unknown field 'zz'"},
    {BASE("", ",\"rules\":[{\"if\":{\"id\":\"x\"}}]"), "must require, forbid or compare"},
    {BASE("", ",\"rules\":[{\"require\":[\"id\"],\"colour\":1}]"),
     "Unknown key 'colour' in rule 1"},
    {BASE(",{\"name\":\"a\",\"type\":\"integer\"}",
          ",\"rules\":[{\"left\":[\"a\"],\"op\":\"!=\",\"right\":[\"a\"]}]"),
     "op of rule 1"},
    {BASE(",{\"name\":\"a\",\"type\":\"integer\"}", ",\"rules\":[{\"left\":[\"a\"],\"op\":\"<\"}]"),
     "all of"},
    {BASE(",{\"name\":\"a\",\"type\":\"integer\"}",
          ",\"rules\":[{\"left\":[\"id\"],\"op\":\"<\",\"right\":[\"a\"]}]"),
     "neither a number nor a date"},
    {BASE(",{\"name\":\"a\",\"type\":\"date\"},{\"name\":\"b\",\"type\":\"datetime\"}",
          ",\"rules\":[{\"left\":[\"a\"],\"op\":\"<\",\"right\":[\"b\"]}]"),
     "one date with one date"},
    {BASE(",{\"name\":\"a\",\"type\":\"integer\"}",
          ",\"rules\":[{\"left\":[\"a\"],\"op\":\"<\",\"right\":[\"a\"],\"require\":[\"id\"]}]"),
     "not both"},
    {BASE(",{\"name\":\"k\",\"type\":\"enum\",\"values\":[\"a\"]}",
          ",\"rules\":[{\"if\":{\"k\":\"b\"},\"require\":[\"id\"]}]"),
     "not one of its values"},
    {BASE("", ",\"rules\":[{\"require\":[\"id\"],\"code\":\"Bad Code\"}]"), "machine name"},
    {BASE("", ",\"classification\":\"secret\""), "secret data is out of scope"},
    {BASE(",{\"name\":\"classification\",\"type\":\"enum\",\"values\":[\"public\","
          "\"Secret\"]}",
          ""),
     "may not allow the value 'Secret'"},
    {BASE("", ",\"classification\":\"topsecret\""), "public, internal or confidential"},
    {BASE("", ",\"update_frequency\":\"sometimes\""), "update_frequency"},
    {BASE("", ",\"version\":0"), "version must be an integer"},
};

static void test_broken_definitions(void **state)
{
    (void)state;
    for (size_t i = 0; i < DTM_ARRAY_LEN(broken); i++) {
        struct dtm_dataset *ds = (void *)1;
        char err[256] = "";
        int rc = dtm_dataset_parse(dtm_str_c(broken[i].json), &ds, err, sizeof err);
        if (rc != DTM_EVALIDATION || ds != NULL || !strstr(err, broken[i].reason))
            fail_msg("case %zu (%s): rc %d, err \"%s\", want \"%s\"", i, broken[i].json, rc, err,
                     broken[i].reason);
        /* one sentence */
        size_t n = strlen(err);
        assert_true(n > 10);
        assert_int_equal(err[n - 1], '.');
    }
}

static void test_too_many_fields(void **state)
{
    (void)state;
    char json[8192];
    size_t o = (size_t)snprintf(json, sizeof json, HEAD "\"key\":[\"id\"],\"fields\":[" ID);
    for (int i = 0; i < DTM_MAX_FIELDS; i++)
        o += (size_t)snprintf(json + o, sizeof json - o, ",{\"name\":\"f%d\",\"type\":\"string\"}",
                              i);
    snprintf(json + o, sizeof json - o, "]}");
    struct dtm_dataset *ds = NULL;
    char err[256];
    assert_int_equal(dtm_dataset_parse(dtm_str_c(json), &ds, err, sizeof err), DTM_EVALIDATION);
    assert_non_null(strstr(err, "from 1 to 64 fields"));
    /* NULL err is allowed */
    assert_int_equal(dtm_dataset_parse(dtm_str_c(json), &ds, NULL, 0), DTM_EVALIDATION);
}

static void test_full_definition(void **state)
{
    (void)state;
    struct dtm_dataset *ds = parse_ok(
        HEAD
        "\"version\":3,\"key\":[\"id\"],\"time_field\":\"at\",\"fields\":[" ID
        ",{\"name\":\"at\",\"type\":\"date\",\"required\":true},"
        "{\"name\":\"n\",\"type\":\"integer\",\"min\":-5,\"max\":5},"
        "{\"name\":\"ok\",\"type\":\"boolean\"},"
        "{\"name\":\"k\",\"type\":\"enum\",\"values\":[\"a\",\"b\"]},"
        "{\"name\":\"e\",\"type\":\"string\",\"personal\":true,\"mask\":\"hash\"}],"
        "\"rules\":[{\"if\":{\"ok\":true,\"k\":\"a\"},\"forbid\":[\"n\"],\"code\":\"no_n\","
        "\"message\":{\"vi\":\"Không có n.\",\"en\":\"No n.\"}},"
        "{\"left\":[\"n\"],\"op\":\"==\",\"right\":[\"n\"]}],"
        "\"dimensions\":[\"k\",\"ok\"],\"measures\":[\"n\"],\"cubes\":[[\"k\"],[\"k\",\"ok\"]]}");
    assert_int_equal(ds->version, 3);
    assert_int_equal(ds->time_field, 1);
    assert_int_equal(ds->system_field, -1);
    assert_int_equal(ds->classification_field, -1);
    assert_int_equal(ds->rules[0].nif, 2);
    assert_string_equal(ds->rules[0].if_value[0], "true");
    assert_string_equal(ds->rules[0].code, "no_n");
    assert_string_equal(ds->rules[0].message.vi, "Không có n.");
    assert_string_equal(ds->rules[1].code, "rule");
    assert_int_equal(ds->rules[1].op, DTM_OP_EQ);
    assert_int_equal(ds->fields[5].mask, DTM_MASK_HASH);
    assert_non_null(strstr(ds->json, "\"if\":{\"ok\":true,\"k\":\"a\"}"));
    assert_non_null(strstr(ds->json, "\"op\":\"=\""));
    assert_non_null(strstr(ds->json, "\"min\":-5"));
    struct dtm_dataset *again = parse_ok(ds->json);
    assert_string_equal(again->json, ds->json);
    dtm_dataset_free(again);
    dtm_dataset_free(ds);
    assert_string_equal(dtm_ftype_name(DTM_T_DATETIME), "datetime");
}

static void test_registry(void **state)
{
    (void)state;
    struct dtm_dict *d = dtm_dict_create();
    assert_non_null(d);
    assert_int_equal(dtm_dict_count(d), 7);
    for (size_t i = 1; i < dtm_dict_count(d); i++) /* sorted by code */
        assert_true(strcmp(dtm_dict_at(d, i - 1)->code, dtm_dict_at(d, i)->code) < 0);
    assert_null(dtm_dict_at(d, 7));
    const struct dtm_dataset *tx = dtm_dict_get(d, DTM_STR("transactions"));
    assert_non_null(tx);
    assert_true(tx->builtin);
    assert_null(dtm_dict_get(d, DTM_STR("transaction")));
    assert_null(dtm_dict_get(d, DTM_STR("transactionsx")));
    assert_null(dtm_dict_get(d, DTM_STR("")));

    /* add a new one */
    struct dtm_dataset *ds = parse_ok(BASE("", ""));
    assert_int_equal(dtm_dict_put(d, ds), DTM_OK);
    assert_int_equal(dtm_dict_count(d), 8);
    assert_ptr_equal(dtm_dict_get(d, DTM_STR("t")), ds);
    assert_false(ds->builtin);

    /* replace one: the old definition stays readable until destroy */
    struct dtm_dataset *ds2 = parse_ok(
        "{\"code\":\"transactions\",\"version\":2,\"title\":{\"en\":\"T\"},\"key\":[\"id\"],"
        "\"fields\":[" ID "]}");
    assert_int_equal(dtm_dict_put(d, ds2), DTM_OK);
    assert_int_equal(dtm_dict_count(d), 8);
    assert_int_equal(dtm_dict_get(d, DTM_STR("transactions"))->version, 2);
    assert_string_equal(tx->code, "transactions");
    assert_int_equal(tx->nfields, 17);

    assert_int_equal(dtm_dict_put(d, NULL), DTM_EINVAL);
    dtm_dict_destroy(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_builtin_parses),
        cmocka_unit_test(test_transactions),
        cmocka_unit_test(test_other_builtins),
        cmocka_unit_test(test_canonical_json),
        cmocka_unit_test(test_field_lookup),
        cmocka_unit_test(test_broken_definitions),
        cmocka_unit_test(test_too_many_fields),
        cmocka_unit_test(test_full_definition),
        cmocka_unit_test(test_registry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
