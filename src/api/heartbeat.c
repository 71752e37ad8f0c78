/* api/heartbeat.c — POST /api/v1/heartbeat: a connected system says it is alive (CONTRACT §5);
 * its last_seen is written with the next group commit. */
#include "api/api.h"
#include "ingest/ingest.h"

int dtm_api_heartbeat(struct dtm_req *r)
{
    const struct dtm_server_env *env = dtm_http_env(r);
    struct dtm_buf b;
    char ts[40];
    int64_t now = dtm_now_us();
    int rc;
    dtm_writer_touch(env->writer, r->sys.code, now);
    dtm_time_fmt(now, ts, sizeof(ts));
    dtm_buf_init(&b, 4096);
    dtm_buf_addc(&b, "{\"system_code\":");
    dtm_buf_json_strc(&b, r->sys.code);
    dtm_buf_printf(&b, ",\"last_seen\":\"%s\",\"status\":\"online\"}", ts);
    rc = dtm_http_json(r, 200, &b);
    dtm_buf_free(&b);
    return rc;
}
