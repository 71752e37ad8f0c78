/* api/routes.c — the route table: method, path pattern, handler, who may call, body limit. */
#include "api/api.h"

#include <stdint.h>

const struct dtm_route dtm_routes[] = {
    {DTM_GET, "/healthz", dtm_api_healthz, DTM_ACCESS_PUBLIC, 0, "healthz"},
    {DTM_GET, "/readyz", dtm_api_readyz, DTM_ACCESS_PUBLIC, 0, "readyz"},
    {DTM_GET, "/api/v1/datasets", dtm_api_datasets_list, DTM_ACCESS_PUBLIC, 0, "datasets"},
    {DTM_GET, "/api/v1/datasets/{code}", dtm_api_dataset_get, DTM_ACCESS_PUBLIC, 0, "dataset"},
    {DTM_GET, "/api/v1/datasets/{code}/record", dtm_api_record_get, DTM_ACCESS_SYSTEM, 0, "record"},
    {DTM_POST, "/api/v1/ingest/{dataset}", dtm_api_ingest, DTM_ACCESS_SOURCE, SIZE_MAX, "ingest"},
    {DTM_GET, "/api/v1/receipts/{id}", dtm_api_receipt_get, DTM_ACCESS_SYSTEM, 0, "receipt"},
    {DTM_POST, "/api/v1/heartbeat", dtm_api_heartbeat, DTM_ACCESS_SYSTEM, 64 * 1024, "heartbeat"},
    {DTM_OTHER, NULL, NULL, DTM_ACCESS_PUBLIC, 0, NULL},
};
