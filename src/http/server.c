/* http/server.c — libmicrohttpd wrapper: listeners, TLS, routing, authentication, bodies,
 * responses, access logs, suspend/resume and draining. */
#include "http/http.h"
#include "metrics/metrics.h"
#include "audit/audit.h"
#include "connlog/connlog.h"
#include "alert/warn.h"

#include <arpa/inet.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* One loaded certificate chain and key. Retired ones are kept until shutdown, because a
 * handshake on another thread may still hold them. */
struct tls_cred {
    gnutls_pcert_st pcert[8];
    unsigned npcert;
    gnutls_privkey_t key;
    struct tls_cred *next;
};

struct store_node {
    struct dtm_store *store;
    struct store_node *next;
};

/* An open connection, watched for how long its next request's headers take (T2.2, slow
 * clients). libmicrohttpd's connection_timeout counts inactivity only, so a client that sends
 * its headers a byte a second never trips it (measured: still open after 20 s with a timeout of
 * 3 s). The watchdog thread shuts down a connection whose headers are not complete
 * [server] header_timeout seconds after it opened or after its previous answer. */
struct conn_watch {
    MHD_socket fd;
    _Atomic int64_t since; /* µs (monotonic) since headers are awaited; 0 = inside a request */
    struct conn_watch *prev, *next;
};

struct dtm_server {
    struct dtm_server_env *env;
    struct MHD_Daemon *http, *https;
    int quiesced[2]; /* the listening sockets MHD gave back while draining: closed at destroy */
    atomic_long inflight;
    atomic_bool draining;
    pthread_mutex_t lock; /* tls and stores lists */
    struct tls_cred *_Atomic tls;
    struct tls_cred *retired;
    struct store_node *stores;
    struct dtm_ratelimit *ratelimit; /* T2.2 buckets; limits come from env->conf per request */
    pthread_mutex_t watch_lock;      /* the watched connections; held while one is shut down */
    struct conn_watch *watched;
    pthread_t watchdog;
    bool watchdog_started;
    atomic_bool watchdog_stop;
};

static char request_prefix[20];

static void init_request_prefix(void)
{
    char id[40];
    dtm_random_id("", id, sizeof(id));
    snprintf(request_prefix, sizeof(request_prefix), "%.12s", id);
}

/* Bytes of an over-limit body read and dropped before hanging up on the sender. */
#define DISCARD_MAX ((size_t)64 << 20)

/* T2.3: header fields of one request at most (431 above). Their total size is bounded by the
 * connection's memory (MHD_OPTION_CONNECTION_MEMORY_LIMIT): libmicrohttpd answers 431 itself
 * past it, and 414 for a request line that does not fit. */
#define MAX_REQUEST_HEADERS 64

static _Thread_local struct dtm_store *tl_store;
static _Thread_local struct dtm_server *tl_store_owner;

const struct dtm_server_env *dtm_http_env(const struct dtm_req *r)
{
    return r->srv->env;
}

struct dtm_store *dtm_http_store(struct dtm_req *r)
{
    char err[256];
    struct store_node *n;
    if (tl_store && tl_store_owner == r->srv)
        return tl_store;
    n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    if (dtm_store_open(r->srv->env->conf, &n->store, err, sizeof(err))) {
        dtm_logf(DTM_LOG_ERROR, "cannot open the store for a worker", "\"error\":\"%s\"",
                 "see previous line");
        free(n);
        return NULL;
    }
    pthread_mutex_lock(&r->srv->lock);
    n->next = r->srv->stores;
    r->srv->stores = n;
    pthread_mutex_unlock(&r->srv->lock);
    tl_store = n->store;
    tl_store_owner = r->srv;
    return tl_store;
}

/* ---- request accessors */

struct dtm_str dtm_http_header(struct dtm_req *r, const char *name)
{
    size_t len = 0;
    const char *v = NULL;
    if (MHD_lookup_connection_value_n(r->conn, MHD_HEADER_KIND, name, strlen(name), &v, &len) !=
            MHD_YES ||
        !v)
        return DTM_STR_NULL;
    return (struct dtm_str){v, len};
}

const char *dtm_http_query(struct dtm_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

bool dtm_http_is_tls(struct dtm_req *r)
{
    const union MHD_ConnectionInfo *tls =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    return tls && tls->tls_session;
}

void dtm_http_client_ip(struct dtm_req *r, char *out, size_t outsz)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    char buf[INET6_ADDRSTRLEN] = "";
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, buf,
                  sizeof(buf));
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, buf,
                  sizeof(buf));
    snprintf(out, outsz, "%s", buf);
}

/* S3: a known API key that was revoked or has expired is an audit entry (auth.key_rejected,
 * naming the key by its id, never the key); an unknown key names nothing and is not recorded. */
static void key_rejected(struct dtm_req *r)
{
    const struct dtm_server_env *env = r->srv->env;
    char ip[64], d[160];
    int64_t now = dtm_now_us();
    if (!env->audit)
        return;
    dtm_http_client_ip(r, ip, sizeof(ip));
    snprintf(d, sizeof(d), "{\"reason\":\"%s\",\"route\":\"%s\"}",
             r->key.revoked_at && r->key.revoked_at <= now ? "revoked" : "expired",
             r->route ? r->route->name : "-");
    dtm_audit_record(env->audit, &(struct dtm_audit_event){"system", r->sys.code,
                                                           "auth.key_rejected", r->key.id, d, ip});
}

struct query_all {
    const char *name;
    const char **out;
    size_t max, n;
};

static enum MHD_Result query_one(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    struct query_all *q = cls;
    (void)kind;
    if (key && value && strcmp(key, q->name) == 0) {
        if (q->n < q->max)
            q->out[q->n] = value;
        q->n++;
    }
    return MHD_YES;
}

size_t dtm_http_query_all(struct dtm_req *r, const char *name, const char **out, size_t max)
{
    struct query_all q = {name, out, max, 0};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, query_one, &q);
    return q.n;
}

/* ---- responses */

int dtm_http_add_header(struct dtm_req *r, const char *name, const char *value)
{
    if (r->nextra >= DTM_MAX_EXTRA_HEADERS)
        return DTM_ETOOBIG;
    r->extra_name[r->nextra] = name;
    r->extra_value[r->nextra] = value;
    r->nextra++;
    return DTM_OK;
}

/* T2.3: the security headers of every answer of ours (libmicrohttpd's own early refusals —
 * 400 for a broken request line, 431 for oversized headers, 414 — carry none, and no data).
 * The Content-Security-Policy depends on what is answered: API answers (JSON, CSV, XML,
 * problems …) are never to be rendered, scripted or framed, so they get a policy that allows
 * nothing. An answer that needs another one (the future dashboard's HTML at /) gets a row here —
 * the first row whose path prefix and content-type prefix both match wins — or sets its own
 * Content-Security-Policy with dtm_http_add_header, which is then kept. */
static const struct csp_rule {
    const char *path_prefix;  /* NULL = any path */
    const char *content_type; /* prefix; NULL = any */
    const char *policy;
} csp_rules[] = {
    /* the dashboard's page (src/web/web.c): scripts, styles, images and API calls from this
     * origin only — no inline script or style, nothing from elsewhere */
    {"/", "text/html",
     "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
     "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
     "form-action 'self'; frame-ancestors 'none'"},
    {NULL, NULL, "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"},
};

static bool extra_header_set(const struct dtm_req *r, const char *name)
{
    for (size_t i = 0; i < r->nextra; i++)
        if (strcasecmp(r->extra_name[i], name) == 0)
            return true;
    return false;
}

static void security_headers(struct dtm_req *r, struct MHD_Response *resp, const char *content_type)
{
    /* NULL on a plain connection (the daemon of a connection is a worker of the pool) */
    const union MHD_ConnectionInfo *tls =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (!extra_header_set(r, "Content-Security-Policy"))
        for (size_t i = 0; i < DTM_ARRAY_LEN(csp_rules); i++) {
            const struct csp_rule *c = &csp_rules[i];
            if ((!c->path_prefix ||
                 strncmp(r->path, c->path_prefix, strlen(c->path_prefix)) == 0) &&
                (!c->content_type ||
                 strncasecmp(content_type, c->content_type, strlen(c->content_type)) == 0)) {
                MHD_add_response_header(resp, "Content-Security-Policy", c->policy);
                break;
            }
        }
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(resp, "Cross-Origin-Resource-Policy", "same-origin");
    /* RFC 6797 §7.2: HSTS only over TLS (a browser ignores it on plain HTTP) */
    if (tls && tls->tls_session)
        MHD_add_response_header(resp, "Strict-Transport-Security",
                                "max-age=31536000; includeSubDomains");
}

/* Adds the common headers, queues resp and releases it. */
static int queue_response(struct dtm_req *r, int status, const char *content_type,
                          struct MHD_Response *resp, size_t len)
{
    enum MHD_Result ok;
    bool cache_set = false; /* a handler's own Cache-Control (the public JWK set) */
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, "X-Request-Id", r->request_id);
    for (size_t i = 0; i < r->nextra; i++)
        cache_set |= strcmp(r->extra_name[i], MHD_HTTP_HEADER_CACHE_CONTROL) == 0;
    if (!cache_set)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    security_headers(r, resp, content_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_LANGUAGE, dtm_lang_code(r->lang));
    for (size_t i = 0; i < r->nextra; i++)
        MHD_add_response_header(resp, r->extra_name[i], r->extra_value[i]);
    if (r->rl.limit > 0) {
        /* T2.2, CONTRACT §2: the IETF draft's RateLimit-* fields of the bucket charged */
        char v[3][24];
        snprintf(v[0], sizeof(v[0]), "%lld", (long long)r->rl.limit);
        snprintf(v[1], sizeof(v[1]), "%lld", (long long)r->rl.remaining);
        snprintf(v[2], sizeof(v[2]), "%lld", (long long)r->rl.reset_s);
        MHD_add_response_header(resp, "RateLimit-Limit", v[0]);
        MHD_add_response_header(resp, "RateLimit-Remaining", v[1]);
        MHD_add_response_header(resp, "RateLimit-Reset", v[2]);
        if (!r->rl.allowed) {
            snprintf(v[0], sizeof(v[0]), "%lld", (long long)r->rl.retry_after_s);
            MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, v[0]);
        }
    }
    if (atomic_load(&r->srv->draining))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    ok = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    r->responded = true;
    r->status = status;
    r->resp_bytes = len;
    return ok == MHD_YES ? DTM_OK : DTM_EIO;
}

int dtm_http_reply(struct dtm_req *r, int status, const char *content_type, const char *body,
                   size_t len)
{
    struct MHD_Response *resp;
    if (r->responded)
        return DTM_EINTERNAL;
    resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return DTM_ENOMEM;
    return queue_response(r, status, content_type, resp, len);
}

struct stream {
    dtm_fill_fn fill;
    void *ctx;
    void (*free_ctx)(void *ctx);
    size_t *sent; /* the request's resp_bytes (the request outlives its response's reads) */
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream *s = cls;
    long n = s->fill(s->ctx, buf, max);
    (void)pos;
    if (n == DTM_FILL_PAUSED)
        return 0; /* suspended by the fill: called again once resumed */
    if (n < 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    *s->sent += (size_t)n;
    return n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : (ssize_t)n;
}

static void stream_free(void *cls)
{
    struct stream *s = cls;
    if (s->free_ctx)
        s->free_ctx(s->ctx);
    free(s);
}

int dtm_http_stream(struct dtm_req *r, int status, const char *content_type, dtm_fill_fn fill,
                    void *ctx, void (*free_ctx)(void *ctx))
{
    struct MHD_Response *resp;
    struct stream *s = malloc(sizeof(*s));
    if (r->responded || !s) {
        free(s);
        if (free_ctx)
            free_ctx(ctx);
        return r->responded ? DTM_EINTERNAL : DTM_ENOMEM;
    }
    *s = (struct stream){fill, ctx, free_ctx, &r->resp_bytes};
    resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_read, s, stream_free);
    if (!resp) {
        stream_free(s);
        return DTM_ENOMEM;
    }
    return queue_response(r, status, content_type, resp, 0);
}

int dtm_http_json(struct dtm_req *r, int status, const struct dtm_buf *body)
{
    if (body->err)
        return dtm_http_error(r, body->err);
    return dtm_http_reply(r, status, "application/json; charset=utf-8", body->p ? body->p : "",
                          body->n);
}

int dtm_http_problem_build(struct dtm_req *r, int status, const char *code, const char *title,
                           const char *extra, struct dtm_buf *b, const char *detail_fmt, va_list ap)
{
    struct dtm_buf d;
    snprintf(r->problem, sizeof(r->problem), "%s", code);
    dtm_buf_init(&d, 64 * 1024);
    dtm_buf_vprintf(&d, dtm_tr(r->lang, detail_fmt), ap);
    dtm_buf_printf(b, "{\"type\":\"urn:dtm:problem:%s\",\"title\":", code);
    dtm_buf_json_strc(b, dtm_tr(r->lang, title));
    dtm_buf_printf(b, ",\"status\":%d,\"detail\":", status);
    dtm_buf_json_str(b, (struct dtm_str){d.p ? d.p : "", d.n});
    dtm_buf_addc(b, ",\"instance\":");
    dtm_buf_json_strc(b, r->path);
    dtm_buf_addc(b, ",\"request_id\":");
    dtm_buf_json_strc(b, r->request_id);
    if (extra && *extra) {
        dtm_buf_addch(b, ',');
        dtm_buf_addc(b, extra);
    }
    dtm_buf_addch(b, '}');
    dtm_buf_free(&d);
    return b->err;
}

int dtm_http_problem_v(struct dtm_req *r, int status, const char *code, const char *title,
                       const char *extra, const char *detail_fmt, va_list ap)
{
    struct dtm_buf b;
    int rc;
    dtm_buf_init(&b, 16 << 20);
    if (dtm_http_problem_build(r, status, code, title, extra, &b, detail_fmt, ap))
        rc = dtm_http_reply(r, 500, "application/problem+json",
                            "{\"type\":\"urn:dtm:problem:internal\",\"status\":500}", 46);
    else if (r->problem_fn) {
        rc = r->problem_fn(r, status, &b); /* e.g. a SOAP fault (HTTP 500) */
        r->status = status;                /* what logs and early warning count */
    } else
        rc = dtm_http_reply(r, status, "application/problem+json; charset=utf-8", b.p, b.n);
    dtm_buf_free(&b);
    return rc;
}

int dtm_http_problem(struct dtm_req *r, int status, const char *code, const char *title,
                     const char *detail_fmt, ...)
{
    va_list ap;
    int rc;
    va_start(ap, detail_fmt);
    rc = dtm_http_problem_v(r, status, code, title, NULL, detail_fmt, ap);
    va_end(ap);
    return rc;
}

int dtm_http_error(struct dtm_req *r, int rc)
{
    switch (rc) {
    case DTM_EINVAL:
        return dtm_http_problem(r, 400, "bad_request", "Bad request", "The request is not valid.");
    case DTM_EMALFORMED:
        return dtm_http_problem(r, 400, "malformed", "Malformed request",
                                "The request body could not be read.");
    case DTM_ENOTFOUND:
        return dtm_http_problem(r, 404, "not_found", "Not found",
                                "Nothing exists at this address.");
    case DTM_EEXIST:
    case DTM_ECONFLICT:
        return dtm_http_problem(r, 409, "conflict", "Conflict",
                                "The request conflicts with the current state.");
    case DTM_ETOOBIG:
        return dtm_http_problem(r, 413, "too_large", "Request too large",
                                "The request body is larger than allowed.");
    case DTM_EUNSUPPORTED:
        return dtm_http_problem(r, 415, "unsupported_media_type", "Unsupported media type",
                                "This content type is not supported here.");
    case DTM_EVALIDATION:
        return dtm_http_problem(r, 422, "validation", "Invalid data",
                                "The data does not satisfy the data dictionary.");
    case DTM_EAUTH:
        dtm_http_add_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "ApiKey realm=\"dtm\"");
        return dtm_http_problem(r, 401, "unauthenticated", "Authentication required",
                                "A valid API key is required (header X-API-Key).");
    case DTM_EFORBIDDEN:
        return dtm_http_problem(r, 403, "forbidden", "Forbidden",
                                "Your credentials do not allow this request.");
    case DTM_ESTORE:
        dtm_http_add_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "5");
        return dtm_http_problem(r, 503, "storage_unavailable", "Service unavailable",
                                "Storage is temporarily unavailable; nothing was stored. Retry "
                                "later.");
    case DTM_EBUSY:
        dtm_http_add_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
        return dtm_http_problem(r, 503, "busy", "Service unavailable",
                                "The server is busy or shutting down; nothing was stored. Retry "
                                "later.");
    default:
        return dtm_http_problem(r, 500, "internal", "Internal error",
                                "An unexpected error occurred; it has been logged.");
    }
}

void dtm_http_suspend(struct dtm_req *r, dtm_handler on_resume)
{
    r->suspended = true;
    r->on_resume = on_resume;
    MHD_suspend_connection(r->conn);
}

void dtm_http_resume(struct dtm_req *r)
{
    MHD_resume_connection(r->conn);
}

void dtm_http_pause(struct dtm_req *r)
{
    MHD_suspend_connection(r->conn); /* from a content reader: allowed (microhttpd.h) */
}

/* ---- routing */

static const char *const method_names[] = {
    [DTM_GET] = "GET",       [DTM_HEAD] = "HEAD",   [DTM_POST] = "POST",   [DTM_PUT] = "PUT",
    [DTM_DELETE] = "DELETE", [DTM_PATCH] = "PATCH", [DTM_OTHER] = "OTHER",
};

static enum dtm_method parse_method(const char *m)
{
    for (size_t i = 0; i < DTM_OTHER; i++)
        if (strcmp(m, method_names[i]) == 0)
            return (enum dtm_method)i;
    return DTM_OTHER;
}

/* Matches path against pattern; fills params. */
static bool match(const char *pattern, const char *path, struct dtm_req *r)
{
    const char *p = pattern, *u = path;
    size_t np = 0;
    while (*p && *u) {
        if (*p == '{') {
            const char *start = u;
            while (*p && *p != '}')
                p++;
            if (*p == '}')
                p++;
            while (*u && *u != '/')
                u++;
            if (u == start || np >= DTM_MAX_PARAMS)
                return false;
            r->params[np].p = start;
            r->params[np].n = (size_t)(u - start);
            np++;
            continue;
        }
        if (*p != *u)
            return false;
        p++;
        u++;
    }
    if (*p || *u)
        return false;
    r->nparams = np;
    return true;
}

/* 0 = found; 404 / 405 otherwise */
static int route(struct dtm_req *r)
{
    bool path_known = false;
    for (const struct dtm_route *rt = dtm_routes; rt->pattern; rt++) {
        if (!match(rt->pattern, r->path, r))
            continue;
        path_known = true;
        if (rt->method == r->method || (rt->method == DTM_GET && r->method == DTM_HEAD)) {
            r->route = rt;
            return 0;
        }
    }
    return path_known ? 405 : 404;
}

static bool valid_request_id(struct dtm_str v)
{
    if (v.n == 0 || v.n >= DTM_ID_MAX)
        return false;
    for (size_t i = 0; i < v.n; i++) {
        char c = v.p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':'))
            return false;
    }
    return true;
}

/* The bucket key of the caller's address: IPv4 (also mapped into IPv6) by address, IPv6 by its
 * /64 (one subscriber's prefix, which anyone gets whole). Returns its length; 0 = unknown. */
static size_t peer_key(struct dtm_req *r, unsigned char out[16])
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    if (sa && sa->sa_family == AF_INET) {
        memcpy(out, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        return 4;
    }
    if (sa && sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            memcpy(out, a->s6_addr + 12, 4);
            return 4;
        }
        memcpy(out, a->s6_addr, 8);
        return 8;
    }
    return 0;
}

/* T2.2: charges the request to its bucket (cost 0: only looks). When the bucket is empty,
 * answers 429 with Retry-After and returns true. The health endpoints are never limited. */
static bool rate_limited(struct dtm_req *r, enum dtm_rl_kind kind, int64_t cost)
{
    const struct dtm_conf *c = r->srv->env->conf;
    struct dtm_rl_limit lim;
    unsigned char addr[16];
    const void *key = addr;
    size_t n;
    if (!c->ratelimit_enabled || !r->srv->ratelimit)
        return false;
    if (r->route &&
        (strcmp(r->route->name, "healthz") == 0 || strcmp(r->route->name, "readyz") == 0))
        return false;
    if (kind == DTM_RL_SYSTEM) {
        dtm_rl_tier_limit(c, r->sys.tier, &lim);
        key = r->sys.code;
        n = strlen(r->sys.code);
    } else {
        lim = (struct dtm_rl_limit){c->ratelimit_ip_rate, c->ratelimit_ip_burst};
        n = peer_key(r, addr);
    }
    if (dtm_ratelimit_take(r->srv->ratelimit, kind, key, n, &lim, dtm_mono_us() * 1000, cost,
                           &r->rl))
        return false;
    dtm_http_problem(r, 429, "rate_limited", "Too many requests",
                     "The request rate limit was exceeded; retry after %lld seconds.",
                     (long long)r->rl.retry_after_s);
    return true;
}

bool dtm_http_auth_limited(struct dtm_req *r, bool failed)
{
    struct dtm_rl_answer keep = r->rl;
    if (rate_limited(r, DTM_RL_AUTH_FAIL, failed ? 1 : 0))
        return true;
    r->rl = keep; /* the headers keep telling the request's own bucket */
    return false;
}

/* ---- T2.4: OAuth access tokens (gate/jwt.c) as `Authorization: Bearer <JWT>` */

/* The token of an Authorization: Bearer header (RFC 6750 §2.1); empty when there is none. */
static struct dtm_str bearer_token(struct dtm_req *r)
{
    struct dtm_str a = dtm_str_trim(dtm_http_header(r, MHD_HTTP_HEADER_AUTHORIZATION));
    if (a.n <= 7 || !dtm_str_ieqc((struct dtm_str){a.p, 7}, "Bearer "))
        return DTM_STR_NULL;
    return dtm_str_trim((struct dtm_str){a.p + 7, a.n - 7});
}

/* 401 for a token that is not (or no longer) valid (RFC 6750 §3.1). */
static int bearer_refused(struct dtm_req *r)
{
    dtm_http_add_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                        "Bearer realm=\"dtm\", error=\"invalid_token\"");
    dtm_http_problem(r, 401, "invalid_token", "Authentication required",
                     "The access token is not valid or has expired; get a new one from POST "
                     "/oauth/token.");
    return DTM_HTTP_ASYNC;
}

/* A token's scopes narrow its system's role (RFC 6750 §3.1 insufficient_scope, 403): sending
 * needs `ingest`, and a token naming datasets sends only those (the first path parameter, or
 * ?dataset= for batches). Reads are narrowed where the dataset is known (dtm_api_scope). */
static bool token_refuses_dataset(struct dtm_req *r, struct dtm_str ds)
{
    if (!r->token.valid || dtm_token_allows(&r->token, true, ds))
        return false;
    dtm_http_add_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                        "Bearer realm=\"dtm\", error=\"insufficient_scope\", scope=\"ingest\"");
    if (!r->token.ingest)
        dtm_http_problem(r, 403, "insufficient_scope", "Forbidden",
                         "The access token's scope does not allow sending data; ask POST "
                         "/oauth/token for scope ingest.");
    else
        dtm_http_problem(r, 403, "insufficient_scope", "Forbidden",
                         "The access token's scope does not allow sending data to dataset %.*s; "
                         "ask POST /oauth/token for scope dataset:%.*s.",
                         (int)DTM_MIN(ds.n, 64), ds.p ? ds.p : "", (int)DTM_MIN(ds.n, 64),
                         ds.p ? ds.p : "");
    return true;
}

static bool token_refuses(struct dtm_req *r)
{
    if (!r->token.valid || (r->route->access != DTM_ACCESS_SOURCE &&
                            r->route->access != DTM_ACCESS_SOURCE_OR_OPERATOR))
        return false;
    return token_refuses_dataset(r, r->nparams ? r->params[0]
                                               : dtm_str_c(dtm_http_query(r, "dataset")));
}

/* ---- people (CONTRACT §3; gate/session.c) */

bool dtm_access_admits_systems(enum dtm_access a)
{
    return a == DTM_ACCESS_SYSTEM || a == DTM_ACCESS_SOURCE || a == DTM_ACCESS_SYSTEM_OR_PEOPLE ||
           a == DTM_ACCESS_SYSTEM_OR_ANALYST || a == DTM_ACCESS_SYSTEM_OR_READER ||
           a == DTM_ACCESS_SYSTEM_OR_OPERATOR || a == DTM_ACCESS_SOURCE_OR_OPERATOR ||
           a == DTM_ACCESS_SYSTEM_BODY;
}

bool dtm_access_admits_role(enum dtm_access a, const char *role)
{
    bool admin = strcmp(role, "admin") == 0, oper = strcmp(role, "operator") == 0,
         analyst = strcmp(role, "analyst") == 0, auditor = strcmp(role, "auditor") == 0;
    if (!admin && !oper && !analyst && !auditor)
        return false;
    switch (a) {
    case DTM_ACCESS_PEOPLE:
    case DTM_ACCESS_SYSTEM_OR_PEOPLE:
        return true;
    case DTM_ACCESS_ADMIN:
        return admin;
    case DTM_ACCESS_OPERATOR:
    case DTM_ACCESS_SYSTEM_OR_OPERATOR:
    case DTM_ACCESS_SOURCE_OR_OPERATOR:
        return admin || oper;
    case DTM_ACCESS_ANALYST:
    case DTM_ACCESS_SYSTEM_OR_ANALYST:
        return admin || oper || analyst;
    case DTM_ACCESS_AUDITOR:
        return admin || auditor;
    case DTM_ACCESS_SYSTEM_OR_READER:
        return admin || analyst || auditor;
    default:
        return false;
    }
}

struct session_write {
    uint8_t id_hash[32];
    int64_t at;
    bool del;
};

static int session_write_txn(void *ctx, struct dtm_store *st)
{
    struct session_write *w = ctx;
    return w->del ? st->ops->session_delete(st, w->id_hash)
                  : st->ops->session_touch(st, w->id_hash, w->at);
}

static void person_unauthenticated(struct dtm_req *r, const char *detail)
{
    dtm_http_add_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Cookie realm=\"dtm\"");
    dtm_http_problem(r, 401, "unauthenticated", "Authentication required", "%s",
                     dtm_tr(r->lang, detail));
}

/* The people's path of gate(): the session cookie, its timeouts, the account, the role, MFA for
 * admins, and CSRF on state-changing methods. Answers itself on failure (DTM_HTTP_ASYNC). */
static int gate_person(struct dtm_req *r)
{
    static const char ended[] = "Your session has ended or is not valid; sign in again (POST "
                                "/api/v1/session).";
    const struct dtm_server_env *env = r->srv->env;
    const struct dtm_conf *c = env->conf;
    const char *cookie = MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, DTM_SESSION_COOKIE);
    struct session_write w = {0};
    struct dtm_store *st;
    int64_t now = dtm_now_us(), idle = c->session_idle_timeout * 1000000;
    char ip[64];
    int rc;
    if (!cookie || !*cookie) {
        if (!rate_limited(r, DTM_RL_IP, 1))
            person_unauthenticated(r, "Sign in first: POST /api/v1/session with your user name "
                                      "and password.");
        return DTM_HTTP_ASYNC;
    }
    if (rate_limited(r, DTM_RL_AUTH_FAIL, 0))
        return DTM_HTTP_ASYNC;
    if (strlen(cookie) >= DTM_SESSION_ID_MAX) {
        if (!rate_limited(r, DTM_RL_AUTH_FAIL, 1))
            person_unauthenticated(r, ended);
        return DTM_HTTP_ASYNC;
    }
    if (!(st = dtm_http_store(r)))
        return DTM_ESTORE;
    dtm_session_hash(dtm_str_c(cookie), w.id_hash);
    rc = st->ops->session_get(st, w.id_hash, &r->session);
    if (rc == DTM_ENOTFOUND) {
        if (!rate_limited(r, DTM_RL_AUTH_FAIL, 1))
            person_unauthenticated(r, ended);
        return DTM_HTTP_ASYNC;
    }
    if (rc)
        return rc;
    rc = st->ops->user_get(st, r->session.username, &r->user);
    if (rc && rc != DTM_ENOTFOUND)
        return rc;
    if (rc == DTM_ENOTFOUND || r->user.disabled || now >= r->session.expires_at ||
        now - r->session.last_seen > idle) {
        const char *why = rc == DTM_ENOTFOUND                 ? "account_removed"
                          : r->user.disabled                  ? "account_disabled"
                          : now - r->session.last_seen > idle ? "idle_timeout"
                                                              : "absolute_timeout";
        char d[96];
        w.del = true;
        dtm_gate_write_async(env->writer, session_write_txn, &w, sizeof(w));
        dtm_http_client_ip(r, ip, sizeof(ip));
        snprintf(d, sizeof(d), "{\"reason\":\"%s\"}", why);
        dtm_audit_record(env->audit,
                         &(struct dtm_audit_event){"user", r->session.username, "session.expired",
                                                   r->session.username, d, ip});
        person_unauthenticated(r, ended);
        return DTM_HTTP_ASYNC;
    }
    r->person = true;
    if (rate_limited(r, DTM_RL_IP, 1))
        return DTM_HTTP_ASYNC;
    /* activity: last_seen is written at most every quarter of the idle timeout (or minute) */
    if (now - r->session.last_seen > DTM_MIN(idle / 4, 60 * 1000000LL)) {
        w.at = now;
        dtm_gate_write_async(env->writer, session_write_txn, &w, sizeof(w));
    }
    if (!dtm_access_admits_role(r->route->access, r->user.role)) {
        dtm_http_problem(r, 403, "forbidden", "Forbidden",
                         "Your role (%s) does not allow this request.", r->user.role);
        return DTM_HTTP_ASYNC;
    }
    /* CONTRACT §3, T4.3: an admin acts only after enrolling TOTP */
    if (strcmp(r->user.role, "admin") == 0 && !r->user.mfa_enabled &&
        r->route->access != DTM_ACCESS_PEOPLE) {
        dtm_http_problem(r, 403, "mfa_required", "Multi-factor authentication required",
                         "Administrators must enrol an authenticator app before any other action: "
                         "POST /api/v1/session/mfa, then POST /api/v1/session/mfa/confirm with "
                         "a code.");
        return DTM_HTTP_ASYNC;
    }
    /* CSRF: a state-changing request made with the cookie carries the session's token */
    if (r->method == DTM_POST || r->method == DTM_PUT || r->method == DTM_PATCH ||
        r->method == DTM_DELETE) {
        struct dtm_str t = dtm_http_header(r, "X-CSRF-Token");
        size_t n = strlen(r->session.csrf);
        if (t.n != n || n == 0 || !dtm_ct_equal(t.p, r->session.csrf, n)) {
            dtm_http_problem(r, 403, "csrf", "Forbidden",
                             "A request that changes anything with a session cookie must carry "
                             "the header X-CSRF-Token with the csrf_token given at sign-in.");
            return DTM_HTTP_ASYNC;
        }
    }
    return DTM_OK;
}

static int gate_system(struct dtm_req *r, struct dtm_str key, struct dtm_str bearer,
                       struct dtm_str system_code);

/* Authenticates and authorises by the route's access rule, and charges the caller's bucket.
 * Queues the problem on failure. */
static int gate(struct dtm_req *r)
{
    struct dtm_str key, bearer = DTM_STR_NULL;
    if (r->route->access == DTM_ACCESS_PUBLIC)
        return rate_limited(r, DTM_RL_IP, 1) ? DTM_HTTP_ASYNC : DTM_OK;
    key = dtm_http_header(r, "X-API-Key");
    if (key.n == 0)
        bearer = bearer_token(r);
    /* the key may come in the body: the handler calls dtm_http_gate_key */
    if (key.n == 0 && bearer.n == 0 && r->route->access == DTM_ACCESS_SYSTEM_BODY)
        return DTM_OK;
    /* people: a session cookie on a route that admits them, with no system credential */
    if (key.n == 0 && bearer.n == 0 && r->route->access >= DTM_ACCESS_PEOPLE &&
        (!dtm_access_admits_systems(r->route->access) ||
         MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, DTM_SESSION_COOKIE)))
        return gate_person(r);
    if (key.n == 0 && bearer.n == 0)
        return rate_limited(r, DTM_RL_IP, 1) ? DTM_HTTP_ASYNC : DTM_EAUTH;
    return gate_system(r, key, bearer, DTM_STR_NULL);
}

int dtm_http_gate_key(struct dtm_req *r, struct dtm_str key, struct dtm_str system_code)
{
    if (key.n == 0)
        return rate_limited(r, DTM_RL_IP, 1) ? DTM_HTTP_ASYNC : DTM_EAUTH;
    r->auth_in_body = true;
    return gate_system(r, key, DTM_STR_NULL, system_code);
}

/* Whether the system's role may send data (DTM_ACCESS_SOURCE); answers 403 when not. */
static bool role_refuses_sending(struct dtm_req *r)
{
    if (strcmp(r->sys.role, "source") == 0 || strcmp(r->sys.role, "aggregator") == 0)
        return false;
    dtm_http_problem(r, 403, "forbidden", "Forbidden",
                     "System %s has role %s, which may not send data.", r->sys.code, r->sys.role);
    return true;
}

bool dtm_http_send_refused(struct dtm_req *r, struct dtm_str dataset)
{
    return role_refuses_sending(r) || token_refuses_dataset(r, dataset);
}

/* gate() for a connected system's credential: an API key, a Bearer token, or (SOAP) a key that
 * came in the body, which must then belong to system_code when that is given. */
static int gate_system(struct dtm_req *r, struct dtm_str key, struct dtm_str bearer,
                       struct dtm_str system_code)
{
    int rc;
    struct dtm_store *st;
    /* Key guessing: while an address is over its limit of failed authentications, no key it
     * sends is even checked, so a right guess looks like a wrong one. */
    if (rate_limited(r, DTM_RL_AUTH_FAIL, 0))
        return DTM_HTTP_ASYNC;
    st = dtm_http_store(r);
    if (!st)
        return DTM_ESTORE;
    if (bearer.n) {
        rc = dtm_token_verify(st, r->srv->env->conf, bearer, dtm_now_us(), &r->token, &r->sys);
        if (rc == DTM_OK) /* logs and connection logs name the token by its jti */
            snprintf(r->key.id, sizeof(r->key.id), "%s", r->token.jti);
    } else {
        rc = dtm_gate_api_key_cached(r->srv->env->key_cache, st, key, dtm_now_us(), &r->key,
                                     &r->sys);
        /* a UsernameToken naming another system than its key's is a wrong credential */
        if (rc == DTM_OK && system_code.n && !dtm_str_eqc(system_code, r->sys.code)) {
            rc = DTM_EAUTH;
            r->key.id[0] = '\0';
        }
    }
    if (rc == DTM_EAUTH && r->key.id[0])
        key_rejected(r); /* found, but revoked or expired */
    if (rc == DTM_EAUTH && rate_limited(r, DTM_RL_AUTH_FAIL, 1))
        return DTM_HTTP_ASYNC;
    if (rc == DTM_EAUTH && bearer.n)
        return bearer_refused(r);
    if (rc)
        return rc;
    r->authenticated = true;
    if (r->srv->env->seen)
        r->srv->env->seen(r->srv->env->writer, r->sys.code, dtm_now_us());
    if (rate_limited(r, DTM_RL_SYSTEM, 1))
        return DTM_HTTP_ASYNC;
    if (!dtm_access_admits_systems(r->route->access)) {
        dtm_http_problem(r, 403, "forbidden", "Forbidden",
                         "This resource is for signed-in people, not connected systems.");
        return DTM_HTTP_ASYNC; /* answered */
    }
    if ((r->route->access == DTM_ACCESS_SOURCE ||
         r->route->access == DTM_ACCESS_SOURCE_OR_OPERATOR) &&
        role_refuses_sending(r))
        return DTM_HTTP_ASYNC; /* answered */
    if (token_refuses(r))
        return DTM_HTTP_ASYNC; /* answered */
    return DTM_OK;
}

static void access_log(struct dtm_req *r)
{
    struct dtm_buf f;
    const struct dtm_conf *c = r->srv->env->conf;
    if (!c->access_log && r->status < 500)
        return;
    dtm_buf_init(&f, 8192);
    dtm_buf_addc(&f, "\"method\":");
    dtm_buf_json_strc(&f, method_names[r->method]);
    dtm_buf_addc(&f, ",\"path\":");
    dtm_buf_json_str(&f, (struct dtm_str){r->path, strnlen(r->path, 512)});
    dtm_buf_printf(&f,
                   ",\"route\":\"%s\",\"status\":%d,\"us\":%lld,\"bytes_in\":%zu,\"bytes_out\":%zu",
                   r->route ? r->route->name : "-", r->status, (long long)(dtm_mono_us() - r->t0),
                   r->body.n ? r->body.n : r->body_seen, r->resp_bytes);
    dtm_buf_addc(&f, ",\"request_id\":");
    dtm_buf_json_strc(&f, r->request_id);
    if (r->authenticated) {
        dtm_buf_addc(&f, ",\"system\":");
        dtm_buf_json_strc(&f, r->sys.code);
        dtm_buf_addc(&f, ",\"key_id\":");
        dtm_buf_json_strc(&f, r->key.id);
    }
    if (r->person) {
        dtm_buf_addc(&f, ",\"user\":");
        dtm_buf_json_strc(&f, r->user.username);
    }
    if (r->records >= 0)
        dtm_buf_printf(&f, ",\"records\":%lld", (long long)r->records);
    dtm_log(r->status >= 500 ? DTM_LOG_ERROR : DTM_LOG_INFO, "request", f.err ? NULL : f.p);
    dtm_buf_free(&f);
}

/* D6, G3: a call of an authenticated connected system becomes a connection_logs record (the
 * public endpoints called without a key are not logged). */
static void connection_log(struct dtm_req *r)
{
    const struct dtm_server_env *env = r->srv->env;
    struct dtm_connlog_row row;
    int64_t us = dtm_mono_us() - r->t0;
    if (!r->authenticated || !env->connlog || !env->conf->connlog_enabled)
        return;
    memset(&row, 0, sizeof(row));
    snprintf(row.system_code, sizeof(row.system_code), "%s", r->sys.code);
    row.operation = r->route ? r->route->name : "-";
    row.records = r->records;
    row.bytes =
        (int64_t)((r->body.n ? r->body.n : r->body_seen) + r->body_discarded + r->resp_bytes);
    row.status = r->status;
    row.started_at = dtm_now_us() - us;
    row.duration_us = us;
    if (r->status >= 400) {
        if (r->problem[0])
            snprintf(row.error_reason, sizeof(row.error_reason), "%s", r->problem);
        else if (r->status == 499)
            snprintf(row.error_reason, sizeof(row.error_reason), "client_closed");
        else
            snprintf(row.error_reason, sizeof(row.error_reason), "http_%d", r->status);
    }
    dtm_connlog_add(env->connlog, &row);
}

/* T4.1: every answered request feeds the early-warning rules (alert/warn.h): its status, the
 * client's address and the authenticated system. Cheap and non-blocking (one stripe of a
 * fixed table; alerts are only queued). Refused sign-ins are counted by their handler. */
static void warn_request(struct dtm_req *r)
{
    const union MHD_ConnectionInfo *ci;
    struct dtm_warn_request rq = {0};
    if (!r->srv->env->warn)
        return;
    ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    rq.status = r->status;
    rq.peer = ci ? ci->client_addr : NULL;
    rq.system = r->authenticated ? r->sys.code : NULL;
    if (r->status == 401 && r->route && strcmp(r->route->name, "session_post") != 0)
        rq.auth_failure =
            strncmp(r->route->name, "oauth_", 6) == 0 || dtm_http_header(r, "X-API-Key").n > 0 ||
            dtm_http_header(r, MHD_HTTP_HEADER_AUTHORIZATION).n > 0 || r->auth_in_body;
    dtm_warn_request(r->srv->env->warn, &rq);
}

static void req_free(struct dtm_req *r)
{
    if (r->cleanup)
        r->cleanup(r);
    dtm_buf_free(&r->body);
    dtm_arena_free(&r->arena);
    free(r);
}

/* Request ids need to be unique, not secret: a random per-process prefix and a counter (a CSPRNG
 * call per request showed up in profiles). */
static void request_id(char *out, size_t outsz)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    static atomic_ullong counter;
    pthread_once(&once, init_request_prefix);
    snprintf(out, outsz, "req_%s%llx", request_prefix,
             (unsigned long long)atomic_fetch_add(&counter, 1));
}

static struct dtm_req *req_new(struct dtm_server *s, struct MHD_Connection *c, const char *url,
                               const char *method)
{
    struct dtm_req *r = calloc(1, sizeof(*r));
    struct dtm_str rid;
    if (!r)
        return NULL;
    r->srv = s;
    r->conn = c;
    r->t0 = dtm_mono_us();
    r->path = url;
    r->method = parse_method(method);
    r->records = -1;
    dtm_arena_init(&r->arena, 16384);
    dtm_buf_init(&r->body, 0);
    rid = dtm_http_header(r, "X-Request-Id");
    if (valid_request_id(rid)) {
        memcpy(r->request_id, rid.p, rid.n);
        r->request_id[rid.n] = '\0';
    } else {
        request_id(r->request_id, sizeof(r->request_id));
    }
    r->lang = dtm_lang_from_header(dtm_http_header(r, MHD_HTTP_HEADER_ACCEPT_LANGUAGE));
    return r;
}

/* First call of a request: route, authenticate, check the announced body size. Returns true when
 * a response was queued (an early error). */
static bool begin(struct dtm_req *r)
{
    int st = route(r), rc;
    const struct dtm_conf *c = r->srv->env->conf;
    struct dtm_str cl;
    int64_t len = -1;
    if (MHD_get_connection_values(r->conn, MHD_HEADER_KIND, NULL, NULL) > MAX_REQUEST_HEADERS) {
        dtm_http_problem(r, 431, "too_many_headers", "Request header fields too large",
                         "A request may carry at most %d header fields.", MAX_REQUEST_HEADERS);
        return true;
    }
    if (st && rate_limited(r, DTM_RL_IP, 1))
        return true; /* scanning for paths is throttled like any anonymous call */
    if (st == 404) {
        dtm_http_problem(r, 404, "not_found", "Not found", "No resource at %s.", r->path);
        return true;
    }
    if (st == 405) {
        dtm_http_problem(r, 405, "method_not_allowed", "Method not allowed",
                         "This method is not allowed on %s.", r->path);
        return true;
    }
    for (const struct dtm_route_problem *p = dtm_route_problems; p->route_name; p++)
        if (strcmp(p->route_name, r->route->name) == 0)
            r->problem_fn = p->render;
    rc = gate(r);
    if (rc == DTM_HTTP_ASYNC)
        return true;
    if (rc) {
        dtm_http_error(r, rc);
        return true;
    }
    r->body_max = r->route->body_max == SIZE_MAX         ? (size_t)c->max_body
                  : r->route->body_max == DTM_BODY_BATCH ? (size_t)c->max_batch
                                                         : r->route->body_max;
    r->body.max = r->body_max;
    cl = dtm_http_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl.n && dtm_str_to_i64(cl, &len) == DTM_OK && len > (int64_t)r->body_max) {
        r->body_too_big = true;
        /* A client that waits for "100 Continue" gets the 413 before sending anything. One that
         * sends at once would see its connection reset in the middle of the body if we answered
         * and closed now, so its body is read and dropped (up to a bound) and the 413 comes at
         * the end — nginx's lingering close. A body far past the limit is not worth reading. */
        if (dtm_str_ieqc(dtm_str_trim(dtm_http_header(r, MHD_HTTP_HEADER_EXPECT)),
                         "100-continue") ||
            len > (int64_t)(r->body_max + DISCARD_MAX)) {
            dtm_http_problem(r, 413, "too_large", "Request too large",
                             "The body has %lld bytes; at most %zu are accepted here.",
                             (long long)len, r->body_max);
            return true;
        }
    }
    return false;
}

/* T2.3: strict content types. A body sent to a route must be of a type the route reads, else
 * 415 naming the types it reads (RFC 9110 §15.5.16); a charset, when given, must be UTF-8. The
 * default is JSON; a route that reads something else gets a row here (by its path pattern).
 * types NULL: the handler checks the type itself (ingest and batches read the four decoder
 * formats and name them in their own 415). Checked once the body is in, so that a client that
 * sends at once is not reset in the middle of its body. */
static const struct media_rule {
    const char *pattern;
    const char *types; /* ", "-separated */
} media_rules[] = {
    {"/api/v1/ingest/{dataset}", NULL},
    {"/api/v1/batches", NULL},
    {"/oauth/token", "application/x-www-form-urlencoded"},
    {"/oauth/revoke", "application/x-www-form-urlencoded"},
    {"/soap", "text/xml, application/soap+xml"},
};

static bool media_type_in(struct dtm_str mime, const char *types)
{
    const char *t = types;
    while (*t) {
        size_t n = strcspn(t, ",");
        if (mime.n == n && strncasecmp(mime.p, t, n) == 0)
            return true;
        t += n;
        while (*t == ',' || *t == ' ')
            t++;
    }
    return false;
}

/* True when the body's Content-Type is refused (415 answered). */
static bool media_refused(struct dtm_req *r)
{
    const char *types = "application/json";
    struct dtm_str ct, mime, rest;
    const char *semi;
    if (r->route->body_max == 0 || r->route->on_body || r->body.n == 0)
        return false;
    for (size_t i = 0; i < DTM_ARRAY_LEN(media_rules); i++)
        if (strcmp(r->route->pattern, media_rules[i].pattern) == 0)
            types = media_rules[i].types;
    if (!types)
        return false;
    ct = dtm_http_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    semi = ct.n ? memchr(ct.p, ';', ct.n) : NULL;
    mime = dtm_str_trim(semi ? (struct dtm_str){ct.p, (size_t)(semi - ct.p)} : ct);
    rest = semi ? (struct dtm_str){semi + 1, ct.n - (size_t)(semi - ct.p) - 1} : DTM_STR_NULL;
    if (mime.n && media_type_in(mime, types)) {
        /* parameters: only charset matters, and it must be UTF-8 (or its subset ASCII) */
        while (rest.n) {
            const char *next = memchr(rest.p, ';', rest.n);
            struct dtm_str param = {rest.p, next ? (size_t)(next - rest.p) : rest.n};
            const char *eq = memchr(param.p, '=', param.n);
            rest = next ? (struct dtm_str){next + 1, rest.n - param.n - 1} : DTM_STR_NULL;
            if (eq && dtm_str_ieqc(dtm_str_trim((struct dtm_str){param.p, (size_t)(eq - param.p)}),
                                   "charset")) {
                struct dtm_str v =
                    dtm_str_trim((struct dtm_str){eq + 1, param.n - (size_t)(eq - param.p) - 1});
                if (v.n >= 2 && v.p[0] == '"' && v.p[v.n - 1] == '"')
                    v = (struct dtm_str){v.p + 1, v.n - 2};
                if (!dtm_str_ieqc(v, "utf-8") && !dtm_str_ieqc(v, "utf8") &&
                    !dtm_str_ieqc(v, "us-ascii"))
                    goto refuse;
            }
        }
        return false;
    }
refuse:
    if (ct.n == 0)
        dtm_http_problem(r, 415, "unsupported_media_type", "Unsupported media type",
                         "The body needs a Content-Type header: %s (UTF-8).", types);
    else
        dtm_http_problem(r, 415, "unsupported_media_type", "Unsupported media type",
                         "This resource reads a body of type %s (UTF-8); got '%.*s'.", types,
                         (int)DTM_MIN(ct.n, 100), ct.p);
    return true;
}

/* ---- slow clients */

static void watch_set(struct MHD_Connection *c, int64_t since)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct conn_watch *w = ci ? ci->socket_context : NULL;
    if (w)
        atomic_store_explicit(&w->since, since, memory_order_relaxed);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct dtm_server *s = cls;
    struct conn_watch *w = *socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!ci || !(w = calloc(1, sizeof(*w))))
            return; /* not watched: connection_timeout still applies */
        w->fd = ci->connect_fd;
        atomic_init(&w->since, dtm_mono_us());
        pthread_mutex_lock(&s->watch_lock);
        w->next = s->watched;
        if (s->watched)
            s->watched->prev = w;
        s->watched = w;
        pthread_mutex_unlock(&s->watch_lock);
        *socket_context = w;
        return;
    }
    if (!w)
        return;
    /* libmicrohttpd closes the socket after this returns: once unlinked, the watchdog cannot
     * shut down a descriptor number that was reused */
    pthread_mutex_lock(&s->watch_lock);
    if (w->prev)
        w->prev->next = w->next;
    else
        s->watched = w->next;
    if (w->next)
        w->next->prev = w->prev;
    pthread_mutex_unlock(&s->watch_lock);
    free(w);
    *socket_context = NULL;
}

static void *watchdog_run(void *arg)
{
    struct dtm_server *s = arg;
    while (!atomic_load(&s->watchdog_stop)) {
        struct timespec tick = {0, 250 * 1000 * 1000};
        int64_t now, limit;
        long cut = 0;
        nanosleep(&tick, NULL);
        now = dtm_mono_us();
        limit = s->env->conf->header_timeout * 1000000;
        pthread_mutex_lock(&s->watch_lock);
        for (struct conn_watch *w = s->watched; w; w = w->next) {
            int64_t since = atomic_load_explicit(&w->since, memory_order_relaxed);
            if (since && now - since > limit) {
                /* the event loop sees the end of the stream and closes the connection */
                shutdown(w->fd, SHUT_RDWR);
                atomic_store_explicit(&w->since, 0, memory_order_relaxed);
                cut++;
            }
        }
        pthread_mutex_unlock(&s->watch_lock);
        if (cut)
            dtm_logf(DTM_LOG_INFO, "slow clients cut off",
                     "\"connections\":%ld,\"header_timeout\":%lld", cut,
                     (long long)s->env->conf->header_timeout);
    }
    return NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    struct dtm_server *s = cls;
    struct dtm_req *r = *con_cls;
    int rc;
    (void)version;
    if (!r) {
        watch_set(c, 0); /* the headers are in */
        r = req_new(s, c, url, method);
        if (!r)
            return MHD_NO;
        *con_cls = r;
        atomic_fetch_add(&s->inflight, 1);
        begin(r);
        return MHD_YES;
    }
    if (*upload_size && r->route && r->route->on_body) {
        r->body_seen += *upload_size;
        if (!r->responded && !r->body_too_big && r->stream_rc == DTM_OK)
            r->stream_rc = r->route->on_body(r, upload, *upload_size);
        else if (!r->responded && (r->body_discarded += *upload_size) > DISCARD_MAX)
            return MHD_NO;
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        if (!r->responded && !r->body_too_big && dtm_buf_add(&r->body, upload, *upload_size)) {
            if (r->body.err != DTM_ETOOBIG) {
                dtm_http_error(r, r->body.err);
                return MHD_NO;
            }
            /* libmicrohttpd cannot send an answer in the middle of a body whose length was not
             * announced (chunked): drop the rest and answer 413 at its end — or hang up on a
             * sender that keeps going far past the limit. */
            r->body_too_big = true;
            dtm_buf_free(&r->body);
        }
        if (r->body_too_big) {
            r->body_discarded += *upload_size;
            if (r->body_discarded > DISCARD_MAX)
                return MHD_NO;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->body_too_big && !r->responded) {
        dtm_http_problem(r, 413, "too_large", "Request too large",
                         "The body is larger than the %zu bytes accepted here.", r->body_max);
        return MHD_YES;
    }
    if (r->responded)
        return MHD_YES;
    if (r->suspended) {
        r->suspended = false;
        rc = r->on_resume(r);
    } else if (media_refused(r)) {
        return MHD_YES;
    } else {
        rc = r->route->handler(r);
    }
    if (rc == DTM_HTTP_ASYNC)
        return MHD_YES;
    if (!r->responded)
        dtm_http_error(r, rc < 0 ? rc : DTM_EINTERNAL);
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct dtm_server *s = cls;
    struct dtm_req *r = *con_cls;
    watch_set(c, dtm_mono_us()); /* the next request's headers are awaited from now */
    if (!r)
        return;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && r->status == 0)
        r->status = 499; /* the client went away before the answer */
    access_log(r);
    connection_log(r);
    warn_request(r);
    dtm_metrics_request(r->route ? (size_t)(r->route - dtm_routes) : SIZE_MAX, r->status,
                        dtm_mono_us() - r->t0);
    req_free(r);
    *con_cls = NULL;
    atomic_fetch_sub(&s->inflight, 1);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct dtm_buf m;
    (void)cls;
    dtm_buf_init(&m, 4096);
    dtm_buf_vprintf(&m, fmt, ap);
    while (m.n && (m.p[m.n - 1] == '\n'))
        m.p[--m.n] = '\0';
    if (!m.err) {
        struct dtm_buf f;
        dtm_buf_init(&f, 8192);
        dtm_buf_addc(&f, "\"detail\":");
        dtm_buf_json_str(&f, (struct dtm_str){m.p, m.n});
        dtm_log(DTM_LOG_WARN, "http", f.err ? NULL : f.p);
        dtm_buf_free(&f);
    }
    dtm_buf_free(&m);
}

/* ---- TLS */

static void cred_free(struct tls_cred *t)
{
    for (unsigned i = 0; i < t->npcert; i++)
        gnutls_pcert_deinit(&t->pcert[i]);
    if (t->key)
        gnutls_privkey_deinit(t->key);
    free(t);
}

static int cred_load(const struct dtm_conf *c, struct tls_cred **out, char *err, size_t errsz)
{
    char cpath[DTM_PATH_MAX], kpath[DTM_PATH_MAX];
    gnutls_datum_t cd = {NULL, 0}, kd = {NULL, 0};
    struct tls_cred *t = calloc(1, sizeof(*t));
    int g, rc = DTM_OK;
    if (!t)
        return DTM_ENOMEM;
    dtm_conf_path(c, c->tls_cert, cpath, sizeof(cpath));
    dtm_conf_path(c, c->tls_key, kpath, sizeof(kpath));
    if ((g = gnutls_load_file(cpath, &cd)) < 0) {
        snprintf(err, errsz, "cannot read the TLS certificate %s: %s", cpath, gnutls_strerror(g));
        rc = DTM_EIO;
        goto out;
    }
    if ((g = gnutls_load_file(kpath, &kd)) < 0) {
        snprintf(err, errsz, "cannot read the TLS key %s: %s", kpath, gnutls_strerror(g));
        rc = DTM_EIO;
        goto out;
    }
    t->npcert = DTM_ARRAY_LEN(t->pcert);
    if ((g = gnutls_pcert_list_import_x509_raw(t->pcert, &t->npcert, &cd, GNUTLS_X509_FMT_PEM, 0)) <
        0) {
        t->npcert = 0;
        snprintf(err, errsz, "the TLS certificate %s is not valid PEM: %s", cpath,
                 gnutls_strerror(g));
        rc = DTM_EINVAL;
        goto out;
    }
    if ((g = gnutls_privkey_init(&t->key)) < 0 ||
        (g = gnutls_privkey_import_x509_raw(t->key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
        snprintf(err, errsz, "the TLS key %s is not a valid PEM key: %s", kpath,
                 gnutls_strerror(g));
        rc = DTM_EINVAL;
        goto out;
    }
out:
    gnutls_free(cd.data);
    if (kd.data) {
        gnutls_memset(kd.data, 0, kd.size);
        gnutls_free(kd.data);
    }
    if (rc)
        cred_free(t);
    else
        *out = t;
    return rc;
}

static struct dtm_server *tls_server; /* the cert callback has no closure argument */

static int cert_cb(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                   const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                   gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
    struct tls_cred *t = atomic_load(&tls_server->tls);
    (void)session;
    (void)req_ca_dn;
    (void)nreqs;
    (void)pk_algos;
    (void)pk_algos_length;
    if (!t)
        return -1;
    *pcert = t->pcert;
    *pcert_length = t->npcert;
    *pkey = t->key;
    return 0;
}

int dtm_server_reload_tls(struct dtm_server *s, char *err, size_t errsz)
{
    struct tls_cred *t = NULL, *old;
    int rc = cred_load(s->env->conf, &t, err, errsz);
    if (rc)
        return rc;
    pthread_mutex_lock(&s->lock);
    old = atomic_exchange(&s->tls, t);
    if (old) {
        old->next = s->retired;
        s->retired = old;
    }
    pthread_mutex_unlock(&s->lock);
    return DTM_OK;
}

/* ---- lifecycle */

struct dtm_server *dtm_server_create(struct dtm_server_env *env, char *err, size_t errsz)
{
    struct dtm_server *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errsz, "out of memory");
        return NULL;
    }
    s->env = env;
    s->quiesced[0] = s->quiesced[1] = -1;
    atomic_init(&s->inflight, 0);
    atomic_init(&s->draining, false);
    atomic_init(&s->tls, NULL);
    atomic_init(&s->watchdog_stop, false);
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->watch_lock, NULL);
    s->ratelimit = dtm_ratelimit_create();
    if (!s->ratelimit) {
        pthread_mutex_destroy(&s->watch_lock);
        pthread_mutex_destroy(&s->lock);
        free(s);
        snprintf(err, errsz, "out of memory");
        return NULL;
    }
    return s;
}

static int parse_listen(const char *addr, struct sockaddr_storage *ss, unsigned *flags, char *err,
                        size_t errsz, bool public_ok, const char *what)
{
    char host[128];
    int port;
    memset(ss, 0, sizeof(*ss));
    if (dtm_conf_split_addr(addr, host, sizeof(host), &port)) {
        snprintf(err, errsz, "%s address '%s' is not ADDR:PORT", what, addr);
        return DTM_EINVAL;
    }
    if (!public_ok && !dtm_conf_is_loopback(host)) {
        snprintf(err, errsz,
                 "plain HTTP may listen on a loopback address only (got %s); use HTTPS, or set "
                 "[server] http_public = true",
                 host);
        return DTM_EINVAL;
    }
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    if (host[0] == '\0')
        snprintf(host, sizeof(host), "0.0.0.0");
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *flags |= MHD_USE_IPv6;
    } else {
        snprintf(err, errsz, "%s address '%s' is not a numeric IP address", what, host);
        return DTM_EINVAL;
    }
    return DTM_OK;
}

static struct MHD_Daemon *start_one(struct dtm_server *s, const char *addr, bool tls, int fd,
                                    char *err, size_t errsz)
{
    const struct dtm_conf *c = s->env->conf;
    struct sockaddr_storage ss;
    /* MHD_USE_ITC: MHD_quiesce_daemon (draining, handover) needs it with internal threads */
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
                     MHD_USE_TURBO | MHD_USE_ITC;
    unsigned threads =
        c->threads > 0 ? (unsigned)c->threads : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
    struct MHD_Daemon *d;
    if (threads < 1)
        threads = 1;
    if (parse_listen(addr, &ss, &flags, err, errsz, tls || c->http_public, tls ? "HTTPS" : "HTTP"))
        return NULL;
    if (tls)
        flags |= MHD_USE_TLS;
    struct MHD_OptionItem ops[16];
    size_t n = 0;
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, NULL};
    if (fd >= 0)
        ops[n++] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, fd, NULL};
    else
        ops[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &ss};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, threads, NULL};
    ops[n++] =
        (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, (intptr_t)c->max_connections, NULL};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT,
                                       (intptr_t)c->connection_timeout, NULL};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT, 10 * 1024, NULL};
    if (c->ratelimit_enabled && c->ratelimit_max_conns_per_ip > 0)
        ops[n++] = (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                                           (intptr_t)c->ratelimit_max_conns_per_ip, NULL};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, s};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, s};
    if (tls) {
        ops[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_CERT_CALLBACK, 0, (void *)cert_cb};
        ops[n++] =
            (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)c->tls_priorities};
    }
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_ARRAY, ops,
                         MHD_OPTION_END);
    if (!d)
        snprintf(err, errsz,
                 "cannot listen on %s (%s): address in use, not permitted, or bad "
                 "TLS settings",
                 addr, tls ? "HTTPS" : "HTTP");
    return d;
}

int dtm_server_start(struct dtm_server *s, const char *http_addr, const char *https_addr,
                     const int fds[2], char *err, size_t errsz)
{
    int http_fd = fds ? fds[0] : -1, https_fd = fds ? fds[1] : -1;
    if (!s->watchdog_started) {
        if (pthread_create(&s->watchdog, NULL, watchdog_run, s) != 0) {
            snprintf(err, errsz, "cannot start the slow-client watchdog thread");
            return DTM_EIO;
        }
        s->watchdog_started = true;
    }
    if (https_fd >= 0 || (https_addr && strcmp(https_addr, "off") != 0)) {
        if (dtm_server_reload_tls(s, err, errsz))
            return DTM_EINVAL;
        tls_server = s;
        s->https = start_one(s, https_addr ? https_addr : "", true, https_fd, err, errsz);
        if (!s->https)
            return DTM_EIO;
    }
    if (http_fd >= 0 || (http_addr && strcmp(http_addr, "off") != 0)) {
        s->http = start_one(s, http_addr ? http_addr : "", false, http_fd, err, errsz);
        if (!s->http)
            return DTM_EIO;
    }
    if (!s->http && !s->https) {
        snprintf(err, errsz, "both listeners are off; nothing to serve");
        return DTM_EINVAL;
    }
    return DTM_OK;
}

int dtm_server_listen_fd(struct dtm_server *s, bool tls)
{
    struct MHD_Daemon *d = tls ? s->https : s->http;
    const union MHD_DaemonInfo *i;
    if (!d)
        return -1;
    i = MHD_get_daemon_info(d, MHD_DAEMON_INFO_LISTEN_FD);
    return i ? i->listen_fd : -1;
}

int dtm_server_port(struct dtm_server *s, bool tls)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int fd = dtm_server_listen_fd(s, tls);
    /* from the socket itself: MHD knows no bound port of a socket handed to it */
    if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

#define DRAIN_IDLE_GRACE_MS 500

static long open_connections(struct dtm_server *s)
{
    long n = 0;
    struct MHD_Daemon *d[2] = {s->http, s->https};
    for (int i = 0; i < 2; i++) {
        const union MHD_DaemonInfo *info =
            d[i] ? MHD_get_daemon_info(d[i], MHD_DAEMON_INFO_CURRENT_CONNECTIONS) : NULL;
        if (info)
            n += (long)info->num_connections;
    }
    return n;
}

void dtm_server_drain(struct dtm_server *s, int64_t timeout_s, bool connections)
{
    int64_t now = dtm_mono_us(), deadline = now + timeout_s * 1000000;
    /* a client that sent nothing for this long after the last answers is idle: its connection
     * is closed, as nginx does on a graceful stop (a busy client has had its `Connection:
     * close` answer by then and reconnects to the successor) */
    int64_t idle_deadline = now + DRAIN_IDLE_GRACE_MS * 1000;
    atomic_store(&s->draining, true);
    if (s->http)
        s->quiesced[0] = MHD_quiesce_daemon(s->http);
    if (s->https)
        s->quiesced[1] = MHD_quiesce_daemon(s->https);
    while ((atomic_load(&s->inflight) > 0 ||
            (connections && open_connections(s) > 0 && dtm_mono_us() < idle_deadline)) &&
           dtm_mono_us() < deadline) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&s->inflight) > 0)
        dtm_logf(DTM_LOG_WARN, "drain timeout; closing connections", "\"in_flight\":%ld",
                 (long)atomic_load(&s->inflight));
    else if (connections && open_connections(s) > 0)
        dtm_logf(DTM_LOG_INFO, "closing idle connections", "\"connections\":%ld",
                 open_connections(s));
}

void dtm_server_destroy(struct dtm_server *s)
{
    if (!s)
        return;
    if (s->watchdog_started) {
        atomic_store(&s->watchdog_stop, true);
        pthread_join(s->watchdog, NULL);
    }
    if (s->http)
        MHD_stop_daemon(s->http);
    if (s->https)
        MHD_stop_daemon(s->https);
    for (int i = 0; i < 2; i++) /* MHD's rule: closed only once its daemon has stopped */
        if (s->quiesced[i] >= 0)
            close(s->quiesced[i]);
    while (s->stores) {
        struct store_node *n = s->stores;
        s->stores = n->next;
        n->store->ops->close(n->store);
        free(n);
    }
    if (s->tls)
        cred_free(s->tls);
    while (s->retired) {
        struct tls_cred *t = s->retired;
        s->retired = t->next;
        cred_free(t);
    }
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->watch_lock); /* every connection was closed by now */
    dtm_ratelimit_destroy(s->ratelimit);
    if (tls_server == s)
        tls_server = NULL;
    free(s);
}
