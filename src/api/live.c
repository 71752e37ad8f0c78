/* api/live.c — GET /api/v1/live (CONTRACT §6): the dashboard's KPIs as text/event-stream, one
 * event a second, made by conn/live.c. The stream ends when the client goes away or the server
 * stops. At most [systems] max_live_streams at once: 503 beyond. */
#include "api/api.h"
#include "conn/conn.h"

int dtm_api_live(struct dtm_req *r)
{
    const struct dtm_server_env *env = dtm_http_env(r);
    struct dtm_live_sub *sub = NULL;
    int rc = env->conn ? dtm_live_join(env->conn, r, &sub) : DTM_EBUSY;
    if (rc == DTM_ETOOBIG) {
        dtm_http_add_header(r, "Retry-After", "10");
        return dtm_http_problem(r, 503, "too_many_streams", "Too many live streams",
                                "At most %lld live streams may be open at once; retry later.",
                                (long long)env->conf->max_live_streams);
    }
    if (rc)
        return rc;
    dtm_http_add_header(r, "X-Accel-Buffering", "no"); /* a proxy in front passes each event */
    return dtm_http_stream(r, 200, "text/event-stream; charset=utf-8", dtm_live_fill, sub,
                           dtm_live_leave);
}
