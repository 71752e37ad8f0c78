/* api/body.c — request bodies shared by the handlers: the JSON object of a body and its string
 * members, each refusal answered as a problem that names what is wrong. */
#include "api/api.h"

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <string.h>

/* The JSON object of the body; answers 400/415 itself and returns NULL. */
cJSON *dtm_api_body_json(struct dtm_req *r)
{
    struct dtm_str ct = dtm_http_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    cJSON *j;
    if (!dtm_str_contains(ct, "application/json")) {
        dtm_http_problem(r, 415, "unsupported_media_type", "Unsupported media type",
                         "Send a JSON object with Content-Type: application/json.");
        return NULL;
    }
    j = cJSON_ParseWithLength(r->body.p ? r->body.p : "", r->body.n);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        dtm_http_problem(r, 400, "malformed", "Malformed request",
                         "The body must be a JSON object.");
        return NULL;
    }
    return j;
}

/* A string member: NULL when absent; *bad set (and 400 answered) when present but not a
 * string of at most max bytes. */
const char *dtm_api_member(struct dtm_req *r, cJSON *j, const char *name, size_t max, bool *bad)
{
    cJSON *m = cJSON_GetObjectItemCaseSensitive(j, name);
    if (!m || cJSON_IsNull(m))
        return NULL;
    if (!cJSON_IsString(m) || strlen(m->valuestring) > max) {
        if (!*bad)
            dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                             "Member '%s' must be a string of at most %zu bytes.", name, max);
        *bad = true;
        return NULL;
    }
    return m->valuestring;
}
