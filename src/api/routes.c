/* api/routes.c — the route table: method, path pattern, handler, who may call, body limit. */
#include "api/api.h"

#include <stdint.h>

const struct dtm_route dtm_routes[] = {
    {DTM_GET, "/healthz", dtm_api_healthz, DTM_ACCESS_PUBLIC, 0, "healthz", NULL},
    {DTM_GET, "/readyz", dtm_api_readyz, DTM_ACCESS_PUBLIC, 0, "readyz", NULL},
    {DTM_GET, "/api/v1/datasets", dtm_api_datasets_list, DTM_ACCESS_PUBLIC, 0, "datasets", NULL},
    {DTM_GET, "/api/v1/datasets/{code}", dtm_api_dataset_get, DTM_ACCESS_PUBLIC, 0, "dataset",
     NULL},
    {DTM_GET, "/api/v1/datasets/{code}/record", dtm_api_record_get, DTM_ACCESS_SYSTEM, 0, "record",
     NULL},
    {DTM_GET, "/api/v1/datasets/{code}/records", dtm_api_records, DTM_ACCESS_SYSTEM, 0, "records",
     NULL},
    {DTM_POST, "/api/v1/ingest/{dataset}", dtm_api_ingest, DTM_ACCESS_SOURCE, SIZE_MAX, "ingest",
     NULL},
    {DTM_GET, "/api/v1/receipts/{id}", dtm_api_receipt_get, DTM_ACCESS_SYSTEM, 0, "receipt", NULL},
    {DTM_POST, "/api/v1/heartbeat", dtm_api_heartbeat, DTM_ACCESS_SYSTEM, 64 * 1024, "heartbeat",
     NULL},
    {DTM_POST, "/api/v1/batches", dtm_api_batch_post, DTM_ACCESS_SOURCE, DTM_BODY_BATCH,
     "batch_post", dtm_api_batch_body},
    {DTM_GET, "/api/v1/batches", dtm_api_batch_list, DTM_ACCESS_SYSTEM, 0, "batches", NULL},
    {DTM_GET, "/api/v1/batches/{id}", dtm_api_batch_get, DTM_ACCESS_SYSTEM, 0, "batch", NULL},
    {DTM_DELETE, "/api/v1/batches/{id}", dtm_api_batch_delete, DTM_ACCESS_SYSTEM, 0, "batch_cancel",
     NULL},
    {DTM_GET, "/api/v1/batches/{id}/errors", dtm_api_batch_errors, DTM_ACCESS_SYSTEM, 0,
     "batch_errors", NULL},
    {DTM_GET, "/api/v1/stats/{code}", dtm_api_stats, DTM_ACCESS_SYSTEM, 0, "stats", NULL},
    {DTM_GET, "/api/v1/systems", dtm_api_systems_list, DTM_ACCESS_SYSTEM, 0, "systems", NULL},
    {DTM_GET, "/api/v1/systems/{code}", dtm_api_system_get, DTM_ACCESS_SYSTEM, 0, "system", NULL},
    {DTM_GET, "/api/v1/live", dtm_api_live, DTM_ACCESS_SYSTEM, 0, "live", NULL},
    {DTM_OTHER, NULL, NULL, DTM_ACCESS_PUBLIC, 0, NULL, NULL},
};
