/* api/alerts.c — the alerts of the alert engine (T5.3, alert/alert.h): GET /api/v1/alerts
 * (filters state, severity, rule, from/to on last_seen; JSON with each alert's delivery per
 * channel, or CSV; newest first, paged with ?before=ID), GET /api/v1/alerts/{id}, and POST
 * /api/v1/alerts/{id}/ack and /resolve, which the engine applies on its own thread (the request
 * is suspended meanwhile) and records on the audit trail with who did it. */
#include "alert/alert.h"
#include "api/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_DEFAULT 100
#define LIST_MAX 1000

/* ---- GET /api/v1/alerts */

struct list {
    struct dtm_req *r;
    struct dtm_store *st;
    struct dtm_buf *b;
    bool csv;
    size_t n;
    int64_t last_id;
};

static int add_delivery(void *ctx, const struct dtm_alert_delivery *d)
{
    struct list *x = ctx;
    char ts[40];
    if (x->b->n && x->b->p[x->b->n - 1] == '}')
        dtm_buf_addch(x->b, ',');
    dtm_buf_printf(x->b, "{\"event\":\"%s\",\"channel\":",
                   strcmp(d->event, "resolved") ? "fired" : "resolved");
    dtm_buf_json_strc(x->b, d->channel);
    dtm_buf_printf(x->b, ",\"status\":\"%s\",\"attempts\":%lld,\"error\":", d->status,
                   (long long)d->attempts);
    dtm_buf_json_strc(x->b, d->error);
    dtm_time_fmt(d->updated_at, ts, sizeof(ts));
    dtm_buf_printf(x->b, ",\"updated_at\":\"%s\"}", ts);
    return x->b->err;
}

static void csv_time(struct dtm_buf *b, int64_t t)
{
    char ts[40] = "";
    if (t)
        dtm_time_fmt(t, ts, sizeof(ts));
    dtm_buf_addch(b, ',');
    dtm_buf_addc(b, ts);
}

static void csv_text(struct dtm_buf *b, const char *s)
{
    dtm_buf_addch(b, ',');
    dtm_buf_csv(b, dtm_str_c(s));
}

static int add_alert(void *ctx, const struct dtm_alert *a)
{
    struct list *x = ctx;
    int rc;
    x->last_id = a->id;
    if (x->csv) {
        dtm_buf_printf(x->b, "%lld", (long long)a->id);
        csv_text(x->b, a->rule);
        csv_text(x->b, a->key);
        csv_text(x->b, a->severity);
        csv_text(x->b, a->state);
        csv_text(x->b, a->title);
        csv_time(x->b, a->first_seen);
        csv_time(x->b, a->last_seen);
        dtm_buf_printf(x->b, ",%lld", (long long)a->count);
        csv_text(x->b, a->acknowledged_by);
        csv_time(x->b, a->acknowledged_at);
        csv_text(x->b, a->resolved_by);
        csv_time(x->b, a->resolved_at);
        dtm_buf_printf(x->b, ",%s\r\n", a->suppressed ? "true" : "false");
        x->n++;
        return x->b->err;
    }
    if (x->n++)
        dtm_buf_addch(x->b, ',');
    dtm_alert_json(x->b, a);
    /* the item's closing brace makes room for its deliveries */
    if (x->b->err || x->b->n == 0)
        return x->b->err ? x->b->err : DTM_EINTERNAL;
    x->b->n--;
    dtm_buf_addc(x->b, ",\"deliveries\":[");
    if ((rc = x->st->ops->alert_deliveries(x->st, a->id, add_delivery, x)))
        return rc;
    dtm_buf_addc(x->b, "]}");
    return x->b->err;
}

static bool one_of(const char *v, const char *const *set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v, set[i]))
            return true;
    return false;
}

int dtm_api_alerts_list(struct dtm_req *r)
{
    static const char *const states[] = {"firing", "acknowledged", "resolved"};
    static const char *const sevs[] = {"info", "warning", "critical"};
    struct dtm_alert_filter f = {NULL, NULL, NULL, INT64_MIN, INT64_MAX};
    const char *v, *fmt = dtm_http_query(r, "format");
    struct dtm_str accept = dtm_http_header(r, "Accept");
    int64_t limit = LIST_DEFAULT, before = 0;
    struct dtm_store *st = dtm_http_store(r);
    struct dtm_buf b;
    struct list x = {r, st, &b, false, 0, 0};
    int rc;
    if (!st)
        return DTM_ESTORE;
    if ((f.state = dtm_http_query(r, "state")) && !one_of(f.state, states, 3))
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "Parameter state must be firing, acknowledged or resolved.");
    if ((f.severity = dtm_http_query(r, "severity")) && !one_of(f.severity, sevs, 3))
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "Parameter severity must be info, warning or critical.");
    if ((f.rule = dtm_http_query(r, "rule")) && (!*f.rule || strlen(f.rule) >= 64))
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "Parameter rule must be 1 to 63 characters.");
    if ((v = dtm_http_query(r, "from")) && dtm_time_bound_parse(dtm_str_c(v), false, &f.from))
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "Parameter from must be a date (YYYY-MM-DD) or an RFC 3339 time.");
    if ((v = dtm_http_query(r, "to")) && dtm_time_bound_parse(dtm_str_c(v), true, &f.to))
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "Parameter to must be a date (YYYY-MM-DD) or an RFC 3339 time.");
    if ((v = dtm_http_query(r, "limit")) &&
        (dtm_str_to_i64(dtm_str_c(v), &limit) || limit < 1 || limit > LIST_MAX))
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "Parameter limit must be an integer from 1 to %d.", LIST_MAX);
    if ((v = dtm_http_query(r, "before")) && (dtm_str_to_i64(dtm_str_c(v), &before) || before < 1))
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "Parameter before must be a positive alert id.");
    if (fmt && strcmp(fmt, "csv") && strcmp(fmt, "json"))
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "Parameter format must be json or csv.");
    x.csv = fmt ? !strcmp(fmt, "csv") : dtm_str_contains(accept, "text/csv");
    dtm_buf_init(&b, 64 << 20);
    if (x.csv)
        dtm_buf_addc(&b, "id,rule,key,severity,state,title,first_seen,last_seen,count,"
                         "acknowledged_by,acknowledged_at,resolved_by,resolved_at,suppressed\r\n");
    else
        dtm_buf_addc(&b, "{\"alerts\":[");
    rc = st->ops->alert_list(st, &f, before, (size_t)limit, add_alert, &x);
    if (rc == DTM_OK && !x.csv) {
        dtm_buf_addc(&b, "],\"next_before\":");
        if (x.n == (size_t)limit)
            dtm_buf_printf(&b, "%lld}", (long long)x.last_id);
        else
            dtm_buf_addc(&b, "null}");
    }
    if (rc == DTM_OK && b.err)
        rc = b.err;
    if (rc == DTM_OK)
        rc = x.csv ? dtm_http_reply(r, 200, "text/csv; charset=utf-8", b.p, b.n)
                   : dtm_http_json(r, 200, &b);
    dtm_buf_free(&b);
    return rc;
}

/* ---- GET /api/v1/alerts/{id} */

int dtm_api_alert_get(struct dtm_req *r)
{
    struct dtm_store *st = dtm_http_store(r);
    struct dtm_alert *a = dtm_arena_alloc(&r->arena, sizeof(*a));
    struct dtm_buf b;
    struct list x = {r, st, &b, false, 0, 0};
    int64_t id;
    int rc;
    if (!st)
        return DTM_ESTORE;
    if (!a)
        return DTM_ENOMEM;
    if (dtm_str_to_i64(r->params[0], &id) || id < 1 ||
        (rc = st->ops->alert_get(st, id, a)) == DTM_ENOTFOUND)
        return dtm_http_problem(r, 404, "not_found", "Not found", "There is no alert %.*s.",
                                (int)DTM_MIN(r->params[0].n, 64), r->params[0].p);
    if (rc)
        return rc;
    dtm_buf_init(&b, 1 << 20);
    rc = add_alert(&x, a);
    if (rc == DTM_OK)
        rc = dtm_http_json(r, 200, &b);
    dtm_buf_free(&b);
    return rc;
}

/* ---- POST /api/v1/alerts/{id}/ack and /resolve */

struct act {
    struct dtm_req *r;
    int64_t id;
    int rc;
    struct dtm_alert a;
};

static void acted(void *ctx, int rc, const struct dtm_alert *a)
{
    struct act *x = ctx;
    x->rc = rc;
    if (a)
        x->a = *a;
    dtm_http_resume(x->r);
}

static int act_resumed(struct dtm_req *r)
{
    struct act *x = r->async;
    struct dtm_buf b;
    int rc;
    if (x->rc == DTM_ENOTFOUND)
        return dtm_http_problem(r, 404, "not_found", "Not found", "There is no alert %lld.",
                                (long long)x->id);
    if (x->rc == DTM_ECONFLICT)
        return dtm_http_problem(r, 409, "alert_resolved", "Alert already resolved",
                                "Alert %lld was resolved already.", (long long)x->a.id);
    if (x->rc)
        return dtm_http_error(r, x->rc);
    dtm_buf_init(&b, 64 * 1024);
    dtm_alert_json(&b, &x->a);
    rc = dtm_http_json(r, 200, &b);
    dtm_buf_free(&b);
    return rc;
}

/* Who acts: the signed-in person (the router admits only people with the route's role). */
static void actor_of(struct dtm_req *r, struct dtm_alert_actor *by, char *ip, size_t ipsz)
{
    dtm_http_client_ip(r, ip, ipsz);
    by->kind = r->person ? "user" : "system";
    by->name = r->person ? r->user.username : r->sys.code;
    by->source_ip = ip;
}

static int act(struct dtm_req *r, bool ack)
{
    const struct dtm_server_env *env = dtm_http_env(r);
    struct act *x = dtm_arena_alloc(&r->arena, sizeof(*x));
    struct dtm_alert_actor by;
    char ip[64];
    int64_t id;
    int rc;
    if (!x)
        return DTM_ENOMEM;
    if (dtm_str_to_i64(r->params[0], &id) || id < 1)
        return dtm_http_problem(r, 404, "not_found", "Not found", "There is no alert %.*s.",
                                (int)DTM_MIN(r->params[0].n, 64), r->params[0].p);
    memset(x, 0, sizeof(*x));
    x->r = r;
    x->id = id;
    actor_of(r, &by, ip, sizeof(ip));
    r->async = x;
    dtm_http_suspend(r, act_resumed);
    rc = ack ? dtm_alert_ack(env->alerts, id, &by, acted, x)
             : dtm_alert_resolve(env->alerts, id, &by, acted, x);
    if (rc) {
        x->rc = rc == DTM_ENOMEM ? rc : DTM_EBUSY;
        dtm_http_resume(r);
    }
    return DTM_HTTP_ASYNC;
}

int dtm_api_alert_ack(struct dtm_req *r)
{
    return act(r, true);
}

int dtm_api_alert_resolve(struct dtm_req *r)
{
    return act(r, false);
}

/* ---- GET /api/v1/alert-channels: the channels of dtm.conf as the server runs them (operators),
 * for the dashboard's administration page — never a secret, nor a URL's user, query or fragment
 * (where webhook tokens hide); whether each secret is sealed in the store or written in clear. */

static void url_shown(struct dtm_buf *b, const char *url)
{
    const char *scheme = strstr(url, "://"), *host = scheme ? scheme + 3 : url, *at;
    char shown[1100];
    at = strchr(host, '@');
    if (at && at < host + strcspn(host, "/"))
        host = at + 1; /* user:password@ is dropped */
    snprintf(shown, sizeof(shown), "%.*s%.*s", scheme ? (int)(scheme + 3 - url) : 0, url,
             (int)strcspn(host, "?#"), host);
    dtm_buf_json_strc(b, shown);
}

static const char *secret_kind(const char *v)
{
    return !v[0] ? "none" : strncmp(v, "store:", 6) == 0 ? "sealed" : "clear";
}

int dtm_api_alert_channels(struct dtm_req *r)
{
    const struct dtm_conf *c = dtm_http_env(r)->conf;
    struct dtm_buf b;
    int rc;
    dtm_buf_init(&b, 1 << 20);
    dtm_buf_addc(&b, "{\"routes\":{\"default\":");
    dtm_buf_json_strc(&b, c->alert_channels);
    dtm_buf_addc(&b, ",\"info\":");
    dtm_buf_json_strc(&b, c->alert_channels_info);
    dtm_buf_addc(&b, ",\"warning\":");
    dtm_buf_json_strc(&b, c->alert_channels_warning);
    dtm_buf_addc(&b, ",\"critical\":");
    dtm_buf_json_strc(&b, c->alert_channels_critical);
    dtm_buf_addc(&b, "},\"channels\":[");
    for (size_t i = 0; i < c->nchannels; i++) {
        const struct dtm_conf_channel *ch = &c->channels[i];
        dtm_buf_addc(&b, i ? ",{\"name\":" : "{\"name\":");
        dtm_buf_json_strc(&b, ch->name);
        dtm_buf_addc(&b, ",\"type\":");
        dtm_buf_json_strc(&b, ch->type);
        dtm_buf_addc(&b, ",\"target\":");
        if (!strcmp(ch->type, "syslog"))
            dtm_buf_json_strc(&b, ch->address);
        else
            url_shown(&b, ch->url);
        if (!strcmp(ch->type, "email")) {
            dtm_buf_addc(&b, ",\"to\":");
            dtm_buf_json_strc(&b, ch->to);
        }
        dtm_buf_addc(&b, ",\"min_severity\":");
        dtm_buf_json_strc(&b, ch->min_severity);
        dtm_buf_addc(&b, ",\"rules\":");
        dtm_buf_json_strc(&b, ch->rules);
        dtm_buf_printf(&b, ",\"secret\":\"%s\"}",
                       !strcmp(ch->type, "webhook") ? secret_kind(ch->secret)
                       : !strcmp(ch->type, "email") ? secret_kind(ch->password)
                                                    : "none");
    }
    dtm_buf_addc(&b, "]}");
    rc = dtm_http_json(r, 200, &b);
    dtm_buf_free(&b);
    return rc;
}
