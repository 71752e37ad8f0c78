/* api/openapi — the OpenAPI 3.1 document of the API (issue 8, CONTRACT §7): the hand-written
 * part merged at build time from the JSON files of src/api/openapi (scripts/openapi_merge.py →
 * dtm_openapi_base), completed at run time with a schema per dataset of the data dictionary
 * (built-in and custom: a PUT of a new dataset shows at once) and localised (English by default,
 * Vietnamese with ?lang=vi: every object's x-vi-summary / x-vi-description / x-vi-title replaces
 * its summary / description / title). Served at GET /api/openapi.json with an ETag; the
 * reference page /docs (api/docs.c) renders it. Hidden CLI commands print the document and the
 * route table, so CI can check that each describes the other exactly. */
#ifndef DTM_API_OPENAPI_H
#define DTM_API_OPENAPI_H

#include "core/core.h"
#include "dict/dict.h"

#include <stddef.h>

struct dtm_req;

extern const char dtm_openapi_base[]; /* generated: the merged JSON, UTF-8 */
extern const size_t dtm_openapi_base_len;

/* The whole document for dict in lang as compact JSON (malloc'd, NUL-terminated; *len its
 * length); NULL when out of memory or the embedded document does not parse (a build bug). */
char *dtm_openapi_build(const struct dtm_dict *dict, enum dtm_lang lang, size_t *len);

/* GET /api/openapi.json[?lang=vi|en] — cached per language and dictionary; ETag, 304. */
int dtm_api_openapi(struct dtm_req *r);

/* Hidden commands (src/cli/cli.c): `dtm routes` prints "METHOD PATTERN" per route of the table;
 * `dtm openapi [--lang vi|en] [--data-dir D]` prints the document (with the data dir's custom
 * datasets when --data-dir is given, else the built-ins). */
int dtm_cmd_routes(int argc, char **argv);
int dtm_cmd_openapi(int argc, char **argv);

#endif
