/* api/docs — the human API reference at /docs (issue 8): an HTML page that loads Redoc's
 * standalone bundle (embedded at build time from docs/api/node_modules by scripts/embed_docs.py;
 * nothing is fetched at run time) and renders GET /api/openapi.json in Vietnamese or English
 * (?lang=, else Accept-Language). The page carries its own Content-Security-Policy, the
 * dashboard's plus exactly what Redoc needs: inline styles (styled-components) and a blob:
 * worker (its search index). */
#ifndef DTM_API_DOCS_H
#define DTM_API_DOCS_H

#include "web/web.h"

struct dtm_req;

extern const struct dtm_web_asset dtm_docs_assets[]; /* generated, NULL-path terminated */

int dtm_api_docs_page(struct dtm_req *r);  /* GET /docs */
int dtm_api_docs_asset(struct dtm_req *r); /* GET /docs/{file} */

#endif
