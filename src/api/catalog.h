/* api/catalog — the public data catalogue (issue 8, G2, CONTRACT §4): the quality summary of
 * each dataset shown by GET /api/v1/datasets, and the DCAT JSON-LD export
 * GET /api/v1/catalog.jsonld for national data portals. */
#ifndef DTM_API_CATALOG_H
#define DTM_API_CATALOG_H

#include "core/core.h"

struct dtm_req;
struct dtm_dataset;

/* Appends `"quality":{…}` for ds: its receipts of the last 30 days added up (records
 * submitted, accepted, duplicate and rejected shares, systems reporting, last received), from
 * a summary cached for 60 s. Returns DTM_OK or a store error. */
int dtm_catalog_quality_json(struct dtm_req *r, const struct dtm_dataset *ds, struct dtm_buf *b);

int dtm_api_catalog_jsonld(struct dtm_req *r); /* GET /api/v1/catalog.jsonld */

#endif
