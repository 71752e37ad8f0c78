/* api/openapi.c — the OpenAPI document at run time (openapi.h): the merged hand-written part,
 * a Record_<code> schema per dataset of the dictionary, localisation, a per-language cache keyed
 * by the dictionary's content (codes and versions), ETag and 304; and the hidden CLI commands
 * `dtm routes` and `dtm openapi` used by CI. */
#include "api/openapi.h"
#include "api/api.h"
#include "cli/cli.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *text_in(const struct dtm_i18n_text *t, enum dtm_lang lang)
{
    const char *a = lang == DTM_LANG_VI ? t->vi : t->en, *b = lang == DTM_LANG_VI ? t->en : t->vi;
    return a && *a ? a : b;
}

/* The JSON Schema of one field (CONTRACT §4 types and constraints). */
static cJSON *field_schema(const struct dtm_field_def *f, enum dtm_lang lang)
{
    cJSON *s = cJSON_CreateObject();
    const char *t;
    switch (f->type) {
    case DTM_T_INTEGER:
        cJSON_AddStringToObject(s, "type", "integer");
        break;
    case DTM_T_DECIMAL:
        /* a decimal is read from a JSON number or a string of digits (amounts keep precision) */
        cJSON_AddItemToObject(s, "type",
                              cJSON_CreateStringArray((const char *[]){"number", "string"}, 2));
        break;
    case DTM_T_BOOLEAN:
        cJSON_AddStringToObject(s, "type", "boolean");
        break;
    case DTM_T_DATE:
        cJSON_AddStringToObject(s, "type", "string");
        cJSON_AddStringToObject(s, "format", "date");
        break;
    case DTM_T_DATETIME:
        cJSON_AddStringToObject(s, "type", "string");
        cJSON_AddStringToObject(s, "format", "date-time");
        break;
    case DTM_T_ENUM:
        cJSON_AddStringToObject(s, "type", "string");
        cJSON_AddItemToObject(
            s, "enum", cJSON_CreateStringArray((const char *const *)f->values, (int)f->nvalues));
        break;
    default:
        cJSON_AddStringToObject(s, "type", "string");
    }
    if ((t = text_in(&f->title, lang)))
        cJSON_AddStringToObject(s, "title", t);
    if ((t = text_in(&f->description, lang)))
        cJSON_AddStringToObject(s, "description", t);
    if (f->max_length > 0)
        cJSON_AddNumberToObject(s, "maxLength", (double)f->max_length);
    if (f->pattern)
        cJSON_AddStringToObject(s, "pattern", f->pattern);
    if (f->has_min)
        cJSON_AddNumberToObject(s, "minimum", f->min);
    if (f->has_max)
        cJSON_AddNumberToObject(s, "maximum", f->max);
    if (f->unit)
        cJSON_AddStringToObject(s, "x-unit", f->unit);
    if (f->personal) {
        static const char *const masks[] = {"none", "partial", "hash", "redact"};
        cJSON_AddTrueToObject(s, "x-personal");
        cJSON_AddStringToObject(s, "x-mask", masks[f->mask]);
    }
    return s;
}

static cJSON *dataset_schema(const struct dtm_dataset *ds, enum dtm_lang lang)
{
    cJSON *s = cJSON_CreateObject(), *props = cJSON_CreateObject(), *req = cJSON_CreateArray(),
          *key = cJSON_CreateArray();
    const char *t;
    cJSON_AddStringToObject(s, "type", "object");
    if ((t = text_in(&ds->title, lang)))
        cJSON_AddStringToObject(s, "title", t);
    if ((t = text_in(&ds->description, lang)))
        cJSON_AddStringToObject(s, "description", t);
    for (size_t i = 0; i < ds->nfields; i++) {
        cJSON_AddItemToObject(props, ds->fields[i].name, field_schema(&ds->fields[i], lang));
        /* system_code defaults to the authenticated system (CONTRACT §4) */
        if (ds->fields[i].required && (int)i != ds->system_field)
            cJSON_AddItemToArray(req, cJSON_CreateString(ds->fields[i].name));
    }
    for (size_t k = 0; k < ds->nkey; k++)
        cJSON_AddItemToArray(key, cJSON_CreateString(ds->fields[ds->key[k]].name));
    cJSON_AddItemToObject(s, "properties", props);
    cJSON_AddItemToObject(s, "required", req);
    cJSON_AddFalseToObject(s, "additionalProperties");
    cJSON_AddStringToObject(s, "x-dataset", ds->code);
    cJSON_AddNumberToObject(s, "x-dataset-version", (double)ds->version);
    cJSON_AddItemToObject(s, "x-key", key);
    if (ds->time_field >= 0)
        cJSON_AddStringToObject(s, "x-time-field", ds->fields[ds->time_field].name);
    return s;
}

/* Replaces summary, description, title and a tag's x-displayName (Redoc's tag label) by their
 * x-vi-* form, in every object of the tree. */
static void localise(cJSON *n)
{
    static const char *const keys[][2] = {{"summary", "x-vi-summary"},
                                          {"description", "x-vi-description"},
                                          {"title", "x-vi-title"},
                                          {"x-displayName", "x-vi-displayName"}};
    if (cJSON_IsObject(n))
        for (size_t i = 0; i < DTM_ARRAY_LEN(keys); i++) {
            cJSON *vi = cJSON_GetObjectItemCaseSensitive(n, keys[i][1]);
            if (cJSON_IsString(vi)) {
                cJSON *old = cJSON_GetObjectItemCaseSensitive(n, keys[i][0]);
                if (cJSON_IsString(old) || !old)
                    cJSON_DeleteItemFromObjectCaseSensitive(n, keys[i][0]);
                if (!old || cJSON_IsString(old))
                    cJSON_AddItemToObject(n, keys[i][0], cJSON_CreateString(vi->valuestring));
            }
        }
    for (cJSON *c = n ? n->child : NULL; c; c = c->next)
        localise(c);
}

static cJSON *object_member(cJSON *o, const char *name)
{
    cJSON *m = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!m)
        m = cJSON_AddObjectToObject(o, name);
    return m;
}

char *dtm_openapi_build(const struct dtm_dict *dict, enum dtm_lang lang, size_t *len)
{
    cJSON *doc = cJSON_ParseWithLength(dtm_openapi_base, dtm_openapi_base_len), *schemas, *any,
          *codes, *p, *info;
    char name[DTM_NAME_MAX + 32], *out;
    if (!doc)
        return NULL;
    info = object_member(doc, "info");
    cJSON_DeleteItemFromObjectCaseSensitive(info, "version");
    cJSON_AddStringToObject(info, "version", DTM_VERSION);
    schemas = object_member(object_member(doc, "components"), "schemas");
    any = cJSON_CreateArray();
    codes = cJSON_CreateArray();
    for (size_t i = 0; i < dtm_dict_count(dict); i++) {
        const struct dtm_dataset *ds = dtm_dict_at(dict, i);
        cJSON *ref = cJSON_CreateObject();
        snprintf(name, sizeof(name), "Record_%s", ds->code);
        cJSON_DeleteItemFromObjectCaseSensitive(schemas, name);
        cJSON_AddItemToObject(schemas, name, dataset_schema(ds, lang));
        snprintf(name, sizeof(name), "#/components/schemas/Record_%s", ds->code);
        cJSON_AddStringToObject(ref, "$ref", name);
        cJSON_AddItemToArray(any, ref);
        cJSON_AddItemToArray(codes, cJSON_CreateString(ds->code));
    }
    /* Record: any dataset's record (the path's dataset decides which one applies) */
    p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "description",
                            lang == DTM_LANG_VI
                                ? "Một bản ghi của bộ dữ liệu nêu trong đường dẫn; lược đồ "
                                  "Record_<mã> tương ứng áp dụng."
                                : "One record of the dataset named in the path; its "
                                  "Record_<code> schema applies.");
    cJSON_AddItemToObject(p, "anyOf", any);
    cJSON_DeleteItemFromObjectCaseSensitive(schemas, "Record");
    cJSON_AddItemToObject(schemas, "Record", p);
    p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "type", "string");
    cJSON_AddItemToObject(p, "enum", codes);
    cJSON_DeleteItemFromObjectCaseSensitive(schemas, "DatasetCodeValue");
    cJSON_AddItemToObject(schemas, "DatasetCodeValue", p);
    if (lang == DTM_LANG_VI)
        localise(doc);
    out = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    if (out && len)
        *len = strlen(out);
    return out;
}

/* ---- GET /api/openapi.json: one cached document per language, rebuilt when the dictionary
 * changes (a new dataset or a new version of one: codes and versions are fingerprinted). */

struct cached {
    uint8_t fp[32];
    char *body;
    size_t n;
    char etag[48];
};
static struct cached cache[2];
static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;

static void dict_fingerprint(const struct dtm_dict *d, uint8_t out[32])
{
    struct dtm_buf b;
    dtm_buf_init(&b, 1 << 20);
    for (size_t i = 0; i < dtm_dict_count(d); i++) {
        const struct dtm_dataset *ds = dtm_dict_at(d, i);
        dtm_buf_printf(&b, "%s:%lld;", ds->code, (long long)ds->version);
    }
    dtm_sha256(b.p ? b.p : "", b.n, out);
    dtm_buf_free(&b);
}

static bool etag_matches(struct dtm_str inm, const char *etag)
{
    size_t n = strlen(etag);
    for (size_t i = 0; i + n <= inm.n; i++)
        if (memcmp(inm.p + i, etag, n) == 0)
            return true;
    return inm.n == 1 && inm.p[0] == '*';
}

int dtm_api_openapi(struct dtm_req *r)
{
    const char *q = dtm_http_query(r, "lang");
    enum dtm_lang lang = DTM_LANG_EN; /* the machine-readable default: English */
    uint8_t fp[32];
    struct cached *c;
    char *etag;
    int rc;
    if (q && strcmp(q, "vi") == 0)
        lang = DTM_LANG_VI;
    else if (q && strcmp(q, "en") != 0)
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "The parameter lang must be vi or en.");
    dict_fingerprint(dtm_http_env(r)->dict, fp);
    c = &cache[lang];
    pthread_mutex_lock(&cache_mu);
    if (!c->body || memcmp(c->fp, fp, 32) != 0) {
        size_t n = 0;
        uint8_t h[32];
        char *body = dtm_openapi_build(dtm_http_env(r)->dict, lang, &n);
        if (!body) {
            pthread_mutex_unlock(&cache_mu);
            return DTM_ENOMEM;
        }
        free(c->body);
        c->body = body;
        c->n = n;
        memcpy(c->fp, fp, 32);
        dtm_sha256(body, n, h);
        snprintf(c->etag, sizeof(c->etag), "\"%02x%02x%02x%02x%02x%02x%02x%02x-%s\"", h[0], h[1],
                 h[2], h[3], h[4], h[5], h[6], h[7], dtm_lang_code(lang));
    }
    if (!(etag = dtm_arena_alloc(&r->arena, sizeof(c->etag)))) {
        pthread_mutex_unlock(&cache_mu);
        return DTM_ENOMEM;
    }
    memcpy(etag, c->etag, sizeof(c->etag));
    dtm_http_add_header(r, "ETag", etag);
    dtm_http_add_header(r, "Cache-Control", "no-cache");
    dtm_http_add_header(r, "Access-Control-Allow-Origin", "*");
    if (etag_matches(dtm_http_header(r, "If-None-Match"), etag))
        rc = dtm_http_reply(r, 304, "application/json", "", 0);
    else /* the body is copied by dtm_http_reply, under the lock */
        rc = dtm_http_reply(r, 200, "application/json; charset=utf-8", c->body, c->n);
    pthread_mutex_unlock(&cache_mu);
    return rc;
}

/* ---- hidden commands for CI */

static const char *method_name(enum dtm_method m)
{
    static const char *const names[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OTHER"};
    return names[m];
}

int dtm_cmd_routes(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    for (const struct dtm_route *rt = dtm_routes; rt->pattern; rt++)
        printf("%s %s\n", method_name(rt->method), rt->pattern);
    return DTM_EXIT_OK;
}

int dtm_cmd_openapi(int argc, char **argv)
{
    const char *lang = NULL, *pos[1];
    size_t npos;
    struct dtm_cli_common common;
    struct dtm_cli_opt opts[] = {{"lang", &lang, NULL}};
    struct dtm_dict *dict = NULL;
    struct dtm_store *st = NULL;
    struct dtm_conf conf;
    char *doc;
    bool with_dir = false; /* the data dir only when named (the parser supplies a default) */
    for (int i = 0; i < argc; i++)
        with_dir |= strncmp(argv[i], "--data-dir", 10) == 0;
    int rc = dtm_cli_parse(argc, argv, opts, DTM_ARRAY_LEN(opts), &common, pos, 0, &npos,
                           "dtm openapi [--lang vi|en] [--data-dir D]");
    if (rc)
        return rc;
    if (lang && strcmp(lang, "vi") != 0 && strcmp(lang, "en") != 0) {
        dtm_cli_error("--lang must be vi or en");
        return DTM_EXIT_USAGE;
    }
    if (with_dir && common.data_dir) {
        if (dtm_cli_load_conf(common.data_dir, NULL, &conf) || dtm_cli_open_store(&conf, &st))
            return DTM_EXIT_FAIL;
        dict = dtm_cli_dict(st);
    } else {
        dict = dtm_dict_create();
    }
    if (!dict) {
        dtm_cli_error("the data dictionary cannot be loaded");
        if (st)
            st->ops->close(st);
        return DTM_EXIT_FAIL;
    }
    doc = dtm_openapi_build(dict, lang && !strcmp(lang, "vi") ? DTM_LANG_VI : DTM_LANG_EN, NULL);
    if (doc)
        printf("%s\n", doc);
    free(doc);
    dtm_dict_destroy(dict);
    if (st)
        st->ops->close(st);
    return doc ? DTM_EXIT_OK : DTM_EXIT_FAIL;
}
