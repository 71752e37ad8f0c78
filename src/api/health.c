/* api/health.c — GET /healthz (the process answers) and GET /readyz (storage is writable and
 * the writer is not swamped), CONTRACT §7. */
#include "api/api.h"
#include "ingest/ingest.h"

int dtm_api_healthz(struct dtm_req *r)
{
    static const char ok[] = "{\"status\":\"ok\"}";
    return dtm_http_reply(r, 200, "application/json", ok, sizeof(ok) - 1);
}

int dtm_api_readyz(struct dtm_req *r)
{
    static const char ready[] = "{\"status\":\"ready\"}";
    const struct dtm_server_env *env = dtm_http_env(r);
    struct dtm_store *st = dtm_http_store(r);
    if (!st || st->ops->ready(st) != DTM_OK)
        return dtm_http_problem(r, 503, "not_ready", "Not ready", "Storage is not writable.");
    if (dtm_writer_depth(env->writer) >= (size_t)env->conf->queue_max)
        return dtm_http_problem(r, 503, "not_ready", "Not ready", "The writer queue is full.");
    return dtm_http_reply(r, 200, "application/json", ready, sizeof(ready) - 1);
}
