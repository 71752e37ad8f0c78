/* http — the HTTP layer over libmicrohttpd: listeners (plain HTTP on loopback, HTTPS with
 * TLS 1.2+ and a certificate reloadable on SIGHUP), the route table, request bodies with size
 * limits, X-Request-Id, language choice, RFC 9457 problems, JSON-lines access logs, and
 * suspending a request while it waits for the writer (so no worker thread is held). The router
 * — not each handler — authenticates and authorises (STYLE.md). */
#ifndef DTM_HTTP_H
#define DTM_HTTP_H

#include "conf/conf.h"
#include "core/core.h"
#include "dict/dict.h"
#include "gate/gate.h"
#include "store/store.h"

struct dtm_writer;
struct dtm_batches;
struct dtm_connlog;
struct dtm_conn;
struct dtm_audit;
struct dtm_alerts;
struct dtm_warn;
struct dtm_server;
struct dtm_req;

enum dtm_method { DTM_GET, DTM_HEAD, DTM_POST, DTM_PUT, DTM_DELETE, DTM_PATCH, DTM_OTHER };

/* Who may call a route. */
enum dtm_access {
    DTM_ACCESS_PUBLIC, /* anyone */
    DTM_ACCESS_SYSTEM, /* any connected system with a valid API key (X-API-Key) */
    DTM_ACCESS_SOURCE, /* a system that may push data: role source or aggregator */
    /* People (CONTRACT §3), signed in with a session cookie; a role's routes admit admins too. */
    DTM_ACCESS_PEOPLE,   /* any signed-in person */
    DTM_ACCESS_ADMIN,    /* admin */
    DTM_ACCESS_OPERATOR, /* operator (systems, alerts, reports) or admin */
    DTM_ACCESS_ANALYST,  /* analyst (statistics, reports, exports), operator or admin */
    DTM_ACCESS_AUDITOR,  /* auditor (audit trail, logs) or admin */
    /* Read routes that connected systems (as DTM_ACCESS_SYSTEM) and people share: */
    DTM_ACCESS_SYSTEM_OR_PEOPLE,   /* or any signed-in person (systems, the live feed) */
    DTM_ACCESS_SYSTEM_OR_ANALYST,  /* or analyst, operator (reports) or admin: statistics */
    DTM_ACCESS_SYSTEM_OR_READER,   /* or analyst, auditor (logs) or admin: record exports */
    DTM_ACCESS_SYSTEM_OR_OPERATOR, /* or operator or admin: batches */
    /* DTM_ACCESS_SOURCE, or an operator or admin sending a file on behalf of one (?system=C):
     * batch uploads from the dashboard */
    DTM_ACCESS_SOURCE_OR_OPERATOR,
    /* DTM_ACCESS_SYSTEM whose key may instead come inside the body (SOAP's WS-Security
     * UsernameToken): with no X-API-Key or Bearer header the router lets the request through
     * unauthenticated, and the handler calls dtm_http_gate_key once it has read the body. */
    DTM_ACCESS_SYSTEM_BODY,
};
/* Whether a signed-in person with this role may call a route of this access (admins: every
 * route that admits people). */
bool dtm_access_admits_role(enum dtm_access a, const char *role);
/* Whether connected systems (API keys, tokens) may call a route of this access. */
bool dtm_access_admits_systems(enum dtm_access a);

/* A handler either queues a response (returns DTM_OK) or suspends the request (returns
 * DTM_HTTP_ASYNC after dtm_http_suspend); a negative result is answered as a problem. */
#define DTM_HTTP_ASYNC 1
typedef int (*dtm_handler)(struct dtm_req *r);

struct dtm_route {
    enum dtm_method method;
    const char *pattern; /* "/api/v1/ingest/{dataset}": {name} matches one path segment */
    dtm_handler handler;
    enum dtm_access access;
    size_t body_max;  /* 0 = the route takes no body; SIZE_MAX = [ingest] max_body;
                         DTM_BODY_BATCH = [ingest] max_batch */
    const char *name; /* for logs and metrics */
    /* Optional: the body is streamed to this function piece by piece instead of being kept in
     * memory (batch files). A non-zero result ends the streaming: the rest of the body is read
     * and dropped (up to a bound) and then the handler answers, seeing r->stream_rc. */
    int (*on_body)(struct dtm_req *r, const char *p, size_t n);
};
#define DTM_BODY_BATCH (SIZE_MAX - 1)

extern const struct dtm_route dtm_routes[]; /* api/routes.c, terminated by a NULL pattern */

/* Routes whose problems are rendered in another form than RFC 9457 JSON (SOAP faults): by route
 * name, the renderer that gets the problem's JSON body and answers it itself (api/routes.c,
 * terminated by a NULL name). The status the renderer answers with goes on the wire; logs,
 * connection logs and early warning count the problem's own status. */
struct dtm_route_problem {
    const char *route_name;
    int (*render)(struct dtm_req *r, int status, const struct dtm_buf *problem_json);
};
extern const struct dtm_route_problem dtm_route_problems[];

#define DTM_MAX_PARAMS 4
#define DTM_MAX_EXTRA_HEADERS 6

struct dtm_req {
    struct dtm_server *srv;
    void *conn; /* struct MHD_Connection * */
    const struct dtm_route *route;
    enum dtm_method method;
    const char *path;
    struct dtm_str params[DTM_MAX_PARAMS]; /* path parameters in pattern order */
    size_t nparams;
    char request_id[DTM_ID_MAX];
    enum dtm_lang lang;
    /* the caller, when route->access is not public */
    bool authenticated;
    struct dtm_system sys;
    struct dtm_key key;
    struct dtm_token token; /* T2.4: token.valid when it came with a Bearer token (key.id = jti) */
    /* or a signed-in person (session cookie; gate/session.c): their account and session */
    bool person;
    struct dtm_user user;
    struct dtm_session session;
    /* body */
    struct dtm_buf body;
    size_t body_max;
    bool body_too_big;
    size_t body_discarded; /* bytes read and dropped after the limit was passed */
    int stream_rc;         /* first failure of route->on_body */
    size_t body_seen;      /* bytes of the body received */
    /* called when the request ends, however it ends (files of a streamed body) */
    void (*cleanup)(struct dtm_req *r);
    /* per-request memory */
    struct dtm_arena arena;
    int64_t t0;
    /* response */
    int status;
    size_t resp_bytes;
    bool responded;
    const char *extra_name[DTM_MAX_EXTRA_HEADERS];
    const char *extra_value[DTM_MAX_EXTRA_HEADERS];
    size_t nextra;
    /* async: the handler's state and the function called when the request is resumed */
    bool suspended;
    dtm_handler on_resume;
    void *async;
    /* for the access log: records of the request (-1 = not applicable) */
    int64_t records;
    /* the code of the problem answered ("" = none): a connection log's error_reason */
    char problem[48];
    /* T2.2: the bucket charged for the request (RateLimit-* headers; limit 0 = none) */
    struct dtm_rl_answer rl;
    /* the route's problem renderer (dtm_route_problems), NULL = RFC 9457 JSON */
    int (*problem_fn)(struct dtm_req *r, int status, const struct dtm_buf *problem_json);
    bool auth_in_body; /* credentials came in the body (dtm_http_gate_key): early warning */
};

/* What the server shares with handlers. */
struct dtm_server_env {
    const struct dtm_conf *conf; /* current configuration (replaced on SIGHUP) */
    struct dtm_dict *dict;
    const struct dtm_keyring *keys;
    struct dtm_writer *writer;
    struct dtm_batches *batches;
    struct dtm_conn *conn; /* connectivity: system status, probes, the live feed (conn/) */
    struct dtm_key_cache *key_cache;
    /* called for every authenticated request: a connected system was seen (traffic) */
    void (*seen)(struct dtm_writer *w, const char *system_code, int64_t when);
    /* every completed call of an authenticated system becomes a connection log (D6, G3) when
     * [connlog] enabled; NULL = none */
    struct dtm_connlog *connlog;
    /* S3: the audit trail (downloads of records, rejected keys); NULL = none */
    struct dtm_audit *audit;
    /* T5.3: the alert engine (alert/alert.h): raise and clear from any thread; NULL = none */
    struct dtm_alerts *alerts;
    /* T4.1: early warning (alert/warn.h): every completed request feeds it; NULL = none */
    struct dtm_warn *warn;
};

const struct dtm_server_env *dtm_http_env(const struct dtm_req *r);
/* The calling thread's own store connection (opened on first use, closed at shutdown). */
struct dtm_store *dtm_http_store(struct dtm_req *r);

/* Request accessors */
struct dtm_str dtm_http_header(struct dtm_req *r, const char *name);
/* Whether the request came over TLS (the HTTPS listener). */
bool dtm_http_is_tls(struct dtm_req *r);
/* The client's address as text ("" when unknown): an audit entry's source_ip. */
void dtm_http_client_ip(struct dtm_req *r, char *out, size_t outsz);
/* Query argument (URL-decoded by libmicrohttpd); NULL when absent. */
const char *dtm_http_query(struct dtm_req *r, const char *name);
/* Every value of a repeated query argument (?where=a&where=b), in order: up to max into out;
 * returns how many there are. */
size_t dtm_http_query_all(struct dtm_req *r, const char *name, const char **out, size_t max);
/* Responses. Each takes a copy of the body. */
int dtm_http_add_header(struct dtm_req *r, const char *name,
                        const char *value /* static or arena */);
int dtm_http_reply(struct dtm_req *r, int status, const char *content_type, const char *body,
                   size_t len);
int dtm_http_json(struct dtm_req *r, int status, const struct dtm_buf *body);
/* A response produced piece by piece: fill writes up to max bytes into buf and returns how many,
 * 0 at the end, -1 on failure (the connection is closed). free_ctx(ctx) runs when it is done.
 * fill runs on the connection's worker thread (dtm_http_store may be used between pieces). */
typedef long (*dtm_fill_fn)(void *ctx, char *buf, size_t max);
int dtm_http_stream(struct dtm_req *r, int status, const char *content_type, dtm_fill_fn fill,
                    void *ctx, void (*free_ctx)(void *ctx));
/* A fill with nothing to send yet (an event stream between events) calls dtm_http_pause(r) and
 * returns DTM_FILL_PAUSED: the connection leaves the event loop, so no worker thread waits, until
 * dtm_http_resume(r) — from any thread, exactly once per pause — and fill is called again. A
 * paused connection never times out and does not notice a client that went away; every paused
 * stream must be resumed before the server stops. */
#define DTM_FILL_PAUSED (-2)
void dtm_http_pause(struct dtm_req *r);
/* RFC 9457 problem: status, a machine code (the type is "urn:dtm:problem:CODE"), a title and a
 * detail as English msgids (translated per request; detail is a printf format). */
int dtm_http_problem(struct dtm_req *r, int status, const char *code, const char *title,
                     const char *detail_fmt, ...) __attribute__((format(printf, 5, 6)));
/* Builds a problem body into b without answering (for answers kept for replay). */
int dtm_http_problem_build(struct dtm_req *r, int status, const char *code, const char *title,
                           const char *extra_members, struct dtm_buf *b, const char *detail_fmt,
                           va_list ap) __attribute__((format(printf, 7, 0)));
int dtm_http_problem_v(struct dtm_req *r, int status, const char *code, const char *title,
                       const char *extra_members, const char *detail_fmt, va_list ap)
    __attribute__((format(printf, 6, 0)));
/* Maps an engine result code to a problem response (the one place that does so). */
int dtm_http_error(struct dtm_req *r, int rc);
/* T2.2: the caller's bucket of failed authentications, for a handler that authenticates by
 * itself (POST /oauth/token): failed = false only looks, true charges a failure. True when the
 * address is over its limit (429 with Retry-After answered). */
bool dtm_http_auth_limited(struct dtm_req *r, bool failed);
/* DTM_ACCESS_SYSTEM_BODY routes: authenticates the caller with an API key found in the body,
 * exactly as the router does with X-API-Key (the key cache, revoked/expired keys audited, the
 * failed-authentication and system buckets, traffic seen). system_code, when not empty, must be
 * the key's system (else it counts as a wrong key). An empty key is DTM_EAUTH after charging the
 * address's bucket. Returns DTM_OK, an error code to answer, or DTM_HTTP_ASYNC when answered. */
int dtm_http_gate_key(struct dtm_req *r, struct dtm_str key, struct dtm_str system_code);
/* Whether the authenticated system may not send data to dataset — its role is not source or
 * aggregator, or its token's scope does not allow it: the rule of DTM_ACCESS_SOURCE routes.
 * True after answering 403. */
bool dtm_http_send_refused(struct dtm_req *r, struct dtm_str dataset);

/* Suspends the request until dtm_http_resume; then on_resume(r) is called on a worker thread to
 * queue the answer. Call before handing the request to another thread. */
void dtm_http_suspend(struct dtm_req *r, dtm_handler on_resume);
/* Thread-safe: may be called from any thread (the writer). */
void dtm_http_resume(struct dtm_req *r);

/* Server lifecycle (cli/serve.c) */
struct dtm_server *dtm_server_create(struct dtm_server_env *env, char *err, size_t errsz);
/* fds: the listening sockets to serve on instead of binding the addresses ({http, https}; -1 =
 * bind; NULL = bind both) — those of a server handing over to this one (cli/takeover.c). The
 * server owns them from then on. */
int dtm_server_start(struct dtm_server *s, const char *http_addr, const char *https_addr,
                     const int fds[2], char *err, size_t errsz);
/* Reloads the TLS certificate and key (SIGHUP). The old ones stay valid for handshakes that use
 * them. */
int dtm_server_reload_tls(struct dtm_server *s, char *err, size_t errsz);
/* Stops accepting (the listening sockets stay open until dtm_server_destroy: a server taking
 * over keeps accepting on them), answers from then on with `Connection: close`, and waits up to
 * timeout_s for in-flight requests — and with connections, also up to half a second for every
 * kept-alive connection to close (handover: a busy client's next request is answered, then its
 * connection closed, so it meets no closed socket; idle ones are closed after that). */
void dtm_server_drain(struct dtm_server *s, int64_t timeout_s, bool connections);
void dtm_server_destroy(struct dtm_server *s);
/* The port a listener is bound to (for ADDR:0); 0 when off. */
int dtm_server_port(struct dtm_server *s, bool tls);
/* A listener's socket (to hand over); -1 when off. */
int dtm_server_listen_fd(struct dtm_server *s, bool tls);

#endif
