/* share/subscription.c — what a subscription is (F3, CONTRACT §6): the checks of a callback URL
 * (libcurl's URL parser; no credentials; public addresses only unless allowed), the query of a
 * bucket (stats/ parses metrics, group_by and where exactly as GET /api/v1/stats does), the
 * signed delivery's body and the API's JSON of a subscription. */
#include "share/share.h"
#include "alert/alert.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

int64_t dtm_sub_interval_us(const char *interval)
{
    if (interval && !strcmp(interval, "hour"))
        return INT64_C(3600000000);
    if (interval && !strcmp(interval, "day"))
        return INT64_C(86400000000);
    return 0;
}

/* Every address name resolves to must be public. */
static int host_public(const char *host, char *why, size_t whysz)
{
    struct addrinfo hints, *res = NULL, *ai;
    char ip[INET6_ADDRSTRLEN];
    int gai;
    if (dtm_webhook_ip_public(host))
        return DTM_OK;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    if ((gai = getaddrinfo(host, NULL, &hints, &res)) != 0) {
        snprintf(why, whysz, "the host of url does not resolve (%s)", gai_strerror(gai));
        return DTM_EINVAL;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        const void *a =
            ai->ai_family == AF_INET
                ? (const void *)&((struct sockaddr_in *)(void *)ai->ai_addr)->sin_addr
                : (const void *)&((struct sockaddr_in6 *)(void *)ai->ai_addr)->sin6_addr;
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            !inet_ntop(ai->ai_family, a, ip, sizeof(ip)) || !dtm_webhook_ip_public(ip)) {
            freeaddrinfo(res);
            snprintf(why, whysz,
                     "url names a loopback, private or otherwise non-public address, which "
                     "subscriptions may not call");
            return DTM_EINVAL;
        }
    }
    freeaddrinfo(res);
    return DTM_OK;
}

int dtm_sub_url_check(const char *url, bool allow_private, char *why, size_t whysz)
{
    CURLU *u;
    char *scheme = NULL, *host = NULL, *user = NULL, *pass = NULL;
    size_t n = strlen(url);
    int rc = DTM_EINVAL;
    if (n == 0 || n >= DTM_SUB_URL_MAX) {
        snprintf(why, whysz, "url must be an http or https URL of 1 to %d bytes",
                 DTM_SUB_URL_MAX - 1);
        return DTM_EINVAL;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)url[i] <= 0x20 || url[i] == 0x7f) {
            snprintf(why, whysz, "url must not hold spaces or control characters");
            return DTM_EINVAL;
        }
    if (!(u = curl_url())) {
        snprintf(why, whysz, "out of memory");
        return DTM_ENOMEM;
    }
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host[0]) {
        snprintf(why, whysz, "url is not a valid absolute URL (http or https)");
    } else if (strcasecmp(scheme, "http") && strcasecmp(scheme, "https")) {
        snprintf(why, whysz, "url must use http or https");
    } else if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
               curl_url_get(u, CURLUPART_PASSWORD, &pass, 0) == CURLUE_OK) {
        snprintf(why, whysz,
                 "url must not hold a user name or password: the receiver checks "
                 "X-DTM-Signature instead");
    } else {
        /* an IPv6 literal comes as "[::1]" */
        size_t hn = strlen(host);
        if (hn > 2 && host[0] == '[' && host[hn - 1] == ']') {
            memmove(host, host + 1, hn - 2);
            host[hn - 2] = '\0';
        }
        rc = allow_private ? DTM_OK : host_public(host, why, whysz);
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_free(pass);
    curl_url_cleanup(u);
    return rc;
}

int dtm_sub_query(const struct dtm_dataset *ds, const struct dtm_subscription *sub, int64_t from,
                  int64_t to, struct dtm_query *q, const char **bad, char *err, size_t errsz)
{
    const char *wheres[DTM_STATS_MAX_WHERE];
    size_t n = 0;
    cJSON *arr = cJSON_Parse(sub->where[0] ? sub->where : "[]"), *it;
    int rc;
    if (!cJSON_IsArray(arr)) {
        cJSON_Delete(arr);
        *bad = "where";
        snprintf(err, errsz, "where must be a list of conditions");
        return DTM_EINVAL;
    }
    cJSON_ArrayForEach(it, arr)
    {
        if (!cJSON_IsString(it) || n == DTM_STATS_MAX_WHERE) {
            cJSON_Delete(arr);
            *bad = "where";
            snprintf(err, errsz, "where must be at most %d conditions, each a string",
                     DTM_STATS_MAX_WHERE);
            return DTM_EINVAL;
        }
        wheres[n++] = it->valuestring;
    }
    rc = dtm_query_parse(ds, sub->metrics[0] ? sub->metrics : "count",
                         sub->group_by[0] ? sub->group_by : NULL, NULL, NULL, NULL, wheres, n, q,
                         bad, err, errsz);
    cJSON_Delete(arr);
    if (rc)
        return rc;
    q->from = from;
    q->to = to;
    return DTM_OK;
}

void dtm_sub_delivery_id(const struct dtm_subscription *sub, int64_t bucket, char *out,
                         size_t outsz)
{
    snprintf(out, outsz, "%s.%lld", sub->id, (long long)(bucket / 1000000));
}

int dtm_sub_payload(struct dtm_store *st, const struct dtm_dataset *ds,
                    const struct dtm_subscription *sub, int64_t bucket, int64_t now,
                    struct dtm_buf *out)
{
    int64_t len = dtm_sub_interval_us(sub->interval);
    struct dtm_query *q = malloc(sizeof(*q)); /* large: not on the stack */
    struct dtm_result res;
    struct dtm_buf t;
    const char *bad = NULL;
    char err[256], label[64], id[DTM_ID_MAX + 24];
    int rc;
    if (!q)
        return DTM_ENOMEM;
    if (!len) {
        free(q);
        return DTM_EINVAL;
    }
    if ((rc = dtm_sub_query(ds, sub, bucket, bucket + len, q, &bad, err, sizeof(err)))) {
        free(q);
        return rc;
    }
    /* the result's column names point into q: q lives until the table is rendered */
    if ((rc = dtm_query_run(st, q, &res))) {
        free(q);
        return rc;
    }
    dtm_bucket_label(!strcmp(sub->interval, "day") ? DTM_I_DAY : DTM_I_HOUR, bucket, label,
                     sizeof(label));
    dtm_sub_delivery_id(sub, bucket, id, sizeof(id));
    dtm_buf_addc(out, "{\"subscription\":");
    dtm_buf_json_strc(out, sub->id);
    dtm_buf_addc(out, ",\"delivery\":");
    dtm_buf_json_strc(out, id);
    dtm_buf_addc(out, ",\"dataset\":");
    dtm_buf_json_strc(out, sub->dataset);
    dtm_buf_addc(out, ",\"interval\":");
    dtm_buf_json_strc(out, sub->interval);
    dtm_buf_addc(out, ",\"bucket\":");
    dtm_buf_json_strc(out, label);
    dtm_buf_addc(out, ",\"from\":");
    dtm_buf_json_time(out, bucket);
    dtm_buf_addc(out, ",\"to\":");
    dtm_buf_json_time(out, bucket + len);
    dtm_buf_addc(out, ",\"sent_at\":");
    dtm_buf_json_time(out, now);
    /* the table as GET /api/v1/stats renders it, its members spliced in */
    dtm_buf_init(&t, 64 << 20);
    dtm_result_json(&res, &t);
    dtm_result_free(&res);
    free(q);
    if (!t.err && t.n > 1) {
        dtm_buf_addch(out, ',');
        dtm_buf_add(out, t.p + 1, t.n - 1);
    } else {
        out->err = t.err ? t.err : DTM_EINTERNAL;
    }
    dtm_buf_free(&t);
    return out->err;
}

void dtm_sub_json(struct dtm_buf *b, const struct dtm_subscription *sub)
{
    int64_t len = dtm_sub_interval_us(sub->interval);
    dtm_buf_addc(b, "{\"id\":");
    dtm_buf_json_strc(b, sub->id);
    dtm_buf_addc(b, ",\"system\":");
    dtm_buf_json_strc(b, sub->system_code);
    dtm_buf_addc(b, ",\"dataset\":");
    dtm_buf_json_strc(b, sub->dataset);
    dtm_buf_addc(b, ",\"where\":");
    dtm_buf_addc(b, sub->where[0] ? sub->where : "[]"); /* stored as canonical JSON */
    dtm_buf_addc(b, ",\"metrics\":");
    dtm_buf_json_strc(b, sub->metrics);
    dtm_buf_addc(b, ",\"group_by\":");
    dtm_buf_json_strc(b, sub->group_by);
    dtm_buf_addc(b, ",\"interval\":");
    dtm_buf_json_strc(b, sub->interval);
    dtm_buf_addc(b, ",\"url\":");
    dtm_buf_json_strc(b, sub->url);
    /* the cursor: the start of the next bucket to deliver; the last one delivered before it */
    dtm_buf_addc(b, ",\"cursor\":");
    dtm_buf_json_time(b, sub->next_bucket);
    dtm_buf_addc(b, ",\"last_delivered_bucket\":");
    if (sub->delivered && len)
        dtm_buf_json_time(b, sub->next_bucket - len);
    else
        dtm_buf_addc(b, "null");
    dtm_buf_printf(b, ",\"delivered\":%lld,\"failed_attempts\":%lld,\"last_error\":",
                   (long long)sub->delivered, (long long)sub->attempts);
    if (sub->last_error[0])
        dtm_buf_json_strc(b, sub->last_error);
    else
        dtm_buf_addc(b, "null");
    dtm_buf_addc(b, ",\"next_attempt_at\":");
    dtm_buf_json_time(b, sub->next_attempt_at);
    dtm_buf_addc(b, ",\"last_delivered_at\":");
    dtm_buf_json_time(b, sub->last_delivered_at);
    dtm_buf_addc(b, ",\"created_at\":");
    dtm_buf_json_time(b, sub->created_at);
    dtm_buf_addch(b, '}');
}
