/* api/vulns.c — the vulnerability register (T4.4, alert/alert.h): GET /api/v1/vulnerabilities
 * (JSON or CSV; ?status= filter) and GET …/{id} for operators, auditors and admins; POST and
 * PATCH …/{id} for operators and admins, validated member by member (400 naming the member).
 * Changes are written on the alert engine's thread with their audit entry in the same
 * transaction (the request is suspended meanwhile); then the overdue check runs at once, so an
 * item past its deadline raises its alert and a fixed one clears it. */
#include "alert/alert.h"
#include "api/api.h"
#include "audit/audit.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BODY_LIMIT (64 * 1024)

/* Readers: operators, auditors and admins (analysts do not see the weaknesses of the system). */
static bool may_read(struct dtm_req *r)
{
    const char *role = r->person ? r->user.role : "";
    return !strcmp(role, "admin") || !strcmp(role, "operator") || !strcmp(role, "auditor");
}

static int forbidden(struct dtm_req *r)
{
    return dtm_http_problem(r, 403, "forbidden", "Forbidden",
                            "The vulnerability register is for operators, auditors and admins.");
}

static bool is_overdue(const struct dtm_vuln *v)
{
    char today[11];
    dtm_vuln_today(dtm_now_us(), today);
    return dtm_vuln_overdue(v, today);
}

/* The item's JSON with "overdue". */
static void item_json(struct dtm_buf *b, const struct dtm_vuln *v)
{
    dtm_vuln_json(b, v);
    if (b->err || !b->n)
        return;
    b->n--; /* its closing brace */
    dtm_buf_printf(b, ",\"overdue\":%s}", is_overdue(v) ? "true" : "false");
}

/* ---- GET */

struct list {
    struct dtm_buf *b;
    const char *status;
    bool csv;
    size_t n;
};

static int add_item(void *ctx, const struct dtm_vuln *v)
{
    struct list *x = ctx;
    char ts[40];
    if (x->status && strcmp(x->status, v->status))
        return 0;
    if (x->csv) {
        dtm_buf_printf(x->b, "%lld,", (long long)v->id);
        dtm_buf_csv(x->b, dtm_str_c(v->title));
        dtm_buf_printf(x->b, ",%s,%s,", v->severity, v->found);
        dtm_buf_csv(x->b, dtm_str_c(v->remediation_plan));
        dtm_buf_printf(x->b, ",%s,%s,%s,", v->deadline, v->status,
                       is_overdue(v) ? "true" : "false");
        dtm_buf_csv(x->b, dtm_str_c(v->created_by));
        dtm_time_fmt(v->created_at, ts, sizeof(ts));
        dtm_buf_printf(x->b, ",%s,", ts);
        dtm_time_fmt(v->updated_at, ts, sizeof(ts));
        dtm_buf_printf(x->b, "%s\r\n", ts);
    } else {
        if (x->n)
            dtm_buf_addch(x->b, ',');
        item_json(x->b, v);
    }
    x->n++;
    return x->b->err;
}

int dtm_api_vulns_list(struct dtm_req *r)
{
    struct dtm_store *st = dtm_http_store(r);
    const char *fmt = dtm_http_query(r, "format");
    struct dtm_buf b;
    struct list x = {&b, dtm_http_query(r, "status"), false, 0};
    int rc;
    if (!may_read(r))
        return forbidden(r);
    if (!st)
        return DTM_ESTORE;
    if (x.status && !dtm_vuln_status_ok(x.status))
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "Parameter status must be open, in_progress, fixed or accepted.");
    if (fmt && strcmp(fmt, "csv") && strcmp(fmt, "json"))
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "Parameter format must be json or csv.");
    x.csv = fmt ? !strcmp(fmt, "csv") : dtm_str_contains(dtm_http_header(r, "Accept"), "text/csv");
    dtm_buf_init(&b, 64 << 20);
    dtm_buf_addc(&b, x.csv ? "id,title,severity,found,remediation_plan,deadline,status,overdue,"
                             "created_by,created_at,updated_at\r\n"
                           : "{\"vulnerabilities\":[");
    rc = st->ops->vuln_list(st, add_item, &x);
    if (!x.csv)
        dtm_buf_addc(&b, "]}");
    if (rc == DTM_OK && b.err)
        rc = b.err;
    if (rc == DTM_OK)
        rc = x.csv ? dtm_http_reply(r, 200, "text/csv; charset=utf-8", b.p, b.n)
                   : dtm_http_json(r, 200, &b);
    dtm_buf_free(&b);
    return rc;
}

static int parse_id(struct dtm_req *r, int64_t *id)
{
    if (dtm_str_to_i64(r->params[0], id) || *id < 1) {
        dtm_http_problem(r, 404, "not_found", "Not found", "There is no vulnerability %.*s.",
                         (int)DTM_MIN(r->params[0].n, 64), r->params[0].p);
        return DTM_ENOTFOUND;
    }
    return DTM_OK;
}

int dtm_api_vuln_get(struct dtm_req *r)
{
    struct dtm_store *st = dtm_http_store(r);
    struct dtm_vuln *v;
    struct dtm_buf b;
    int64_t id;
    int rc;
    if (!may_read(r))
        return forbidden(r);
    if (!st)
        return DTM_ESTORE;
    if (parse_id(r, &id))
        return DTM_OK;
    if (!(v = dtm_arena_alloc(&r->arena, sizeof(*v))))
        return DTM_ENOMEM;
    if ((rc = st->ops->vuln_get(st, id, v)) == DTM_ENOTFOUND)
        return dtm_http_problem(r, 404, "not_found", "Not found", "There is no vulnerability %lld.",
                                (long long)id);
    if (rc)
        return rc;
    dtm_buf_init(&b, 64 * 1024);
    item_json(&b, v);
    rc = dtm_http_json(r, 200, &b);
    dtm_buf_free(&b);
    return rc;
}

/* ---- POST and PATCH */

struct change {
    struct dtm_req *r;
    bool create;
    struct dtm_vuln v; /* POST: the new item; PATCH: the members given (set[]) */
    bool set[6];       /* title, severity, found, remediation_plan, deadline, status */
    char actor[128], ip[64];
    int rc;
    const uint8_t *audit_key;
};

enum { M_TITLE, M_SEVERITY, M_FOUND, M_PLAN, M_DEADLINE, M_STATUS };
static const char *const members[] = {"title",    "severity", "found", "remediation_plan",
                                      "deadline", "status"};

/* Reads the body's members into c; answers 400 and returns non-zero on the first bad one. */
static int read_body(struct dtm_req *r, struct change *c)
{
    cJSON *root, *it;
    int rc = DTM_OK;
    if (!r->body.n || dtm_utf8_check(r->body.p, r->body.n) != r->body.n) {
        dtm_http_problem(r, 400, "bad_body", "Bad body",
                         "The body must be a JSON object in UTF-8.");
        return DTM_EINVAL;
    }
    root = cJSON_ParseWithLength(r->body.p, r->body.n);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        dtm_http_problem(r, 400, "bad_body", "Bad body", "The body must be a JSON object.");
        return DTM_EINVAL;
    }
    for (it = root->child; it && rc == DTM_OK; it = it->next) {
        size_t m;
        const char *s = cJSON_GetStringValue(it);
        for (m = 0; m < DTM_ARRAY_LEN(members); m++)
            if (it->string && !strcmp(it->string, members[m]))
                break;
        if (m == DTM_ARRAY_LEN(members)) {
            /* the name, cut at 64 bytes on a character boundary (the answer stays UTF-8) */
            size_t n = it->string ? strnlen(it->string, 64) : 0;
            bool cut = n == 64;
            while (cut && n > 0 && ((unsigned char)it->string[n] & 0xc0) == 0x80)
                n--;
            dtm_http_problem(r, 400, "bad_member", "Bad member",
                             "Unknown member %.*s; the members are title, severity, found, "
                             "remediation_plan, deadline and status.",
                             (int)n, it->string ? it->string : "");
            rc = DTM_EINVAL;
            break;
        }
        if (c->set[m]) {
            dtm_http_problem(r, 400, "bad_member", "Bad member", "Member %s is given twice.",
                             members[m]);
            rc = DTM_EINVAL;
            break;
        }
        c->set[m] = true;
        if (!s) {
            dtm_http_problem(r, 400, "bad_member", "Bad member", "Member %s must be a string.",
                             members[m]);
            rc = DTM_EINVAL;
            break;
        }
        switch (m) {
        case M_TITLE:
            if (!*s || strlen(s) >= sizeof(c->v.title) || strpbrk(s, "\r\n\t")) {
                dtm_http_problem(r, 400, "bad_member", "Bad member",
                                 "Member title must be one line of 1 to %zu bytes.",
                                 sizeof(c->v.title) - 1);
                rc = DTM_EINVAL;
            } else {
                snprintf(c->v.title, sizeof(c->v.title), "%s", s);
            }
            break;
        case M_SEVERITY:
            if (!dtm_vuln_severity_ok(s)) {
                dtm_http_problem(r, 400, "bad_member", "Bad member",
                                 "Member severity must be low, medium, high or critical.");
                rc = DTM_EINVAL;
            } else {
                snprintf(c->v.severity, sizeof(c->v.severity), "%s", s);
            }
            break;
        case M_FOUND:
        case M_DEADLINE:
            if (!dtm_vuln_date_ok(s)) {
                dtm_http_problem(r, 400, "bad_member", "Bad member",
                                 "Member %s must be a date YYYY-MM-DD.", members[m]);
                rc = DTM_EINVAL;
            } else {
                snprintf(m == M_FOUND ? c->v.found : c->v.deadline, sizeof(c->v.found), "%s", s);
            }
            break;
        case M_PLAN:
            if (strlen(s) >= sizeof(c->v.remediation_plan)) {
                dtm_http_problem(r, 400, "bad_member", "Bad member",
                                 "Member remediation_plan must be at most %zu bytes.",
                                 sizeof(c->v.remediation_plan) - 1);
                rc = DTM_EINVAL;
            } else {
                snprintf(c->v.remediation_plan, sizeof(c->v.remediation_plan), "%s", s);
            }
            break;
        default:
            if (!dtm_vuln_status_ok(s)) {
                dtm_http_problem(r, 400, "bad_member", "Bad member",
                                 "Member status must be open, in_progress, fixed or accepted.");
                rc = DTM_EINVAL;
            } else {
                snprintf(c->v.status, sizeof(c->v.status), "%s", s);
            }
        }
    }
    cJSON_Delete(root);
    return rc;
}

static int audit_change(struct change *c, struct dtm_store *st, const struct dtm_vuln *v)
{
    struct dtm_buf d;
    char target[32];
    int rc;
    bool first = true;
    snprintf(target, sizeof(target), "vulnerability:%lld", (long long)v->id);
    dtm_buf_init(&d, DTM_AUDIT_DETAIL_MAX - 1);
    dtm_buf_addc(&d, "{\"title\":");
    dtm_buf_json_strc(&d, v->title);
    dtm_buf_printf(&d, ",\"severity\":\"%s\",\"deadline\":\"%s\",\"status\":\"%s\",\"changed\":[",
                   v->severity, v->deadline, v->status);
    for (size_t m = 0; m < DTM_ARRAY_LEN(members); m++)
        if (c->set[m]) {
            dtm_buf_printf(&d, "%s\"%s\"", first ? "" : ",", members[m]);
            first = false;
        }
    dtm_buf_addc(&d, "]}");
    if (d.err) { /* a long title: the facts without it */
        dtm_buf_reset(&d);
        dtm_buf_printf(&d, "{\"severity\":\"%s\",\"status\":\"%s\"}", v->severity, v->status);
    }
    rc = dtm_audit_append(
        st, c->audit_key,
        &(struct dtm_audit_event){"user", c->actor,
                                  c->create ? "vulnerability.created" : "vulnerability.updated",
                                  target, d.p, c->ip},
        NULL);
    dtm_buf_free(&d);
    return rc;
}

/* In the engine's transaction. */
static int write_change(void *ctx, struct dtm_store *st)
{
    struct change *c = ctx;
    struct dtm_vuln *v = &c->v;
    int rc;
    if (!c->create) {
        struct dtm_vuln cur;
        if ((rc = st->ops->vuln_get(st, v->id, &cur)))
            return rc;
        if (c->set[M_TITLE])
            snprintf(cur.title, sizeof(cur.title), "%s", v->title);
        if (c->set[M_SEVERITY])
            snprintf(cur.severity, sizeof(cur.severity), "%s", v->severity);
        if (c->set[M_FOUND])
            snprintf(cur.found, sizeof(cur.found), "%s", v->found);
        if (c->set[M_PLAN])
            snprintf(cur.remediation_plan, sizeof(cur.remediation_plan), "%s", v->remediation_plan);
        if (c->set[M_DEADLINE])
            snprintf(cur.deadline, sizeof(cur.deadline), "%s", v->deadline);
        if (c->set[M_STATUS])
            snprintf(cur.status, sizeof(cur.status), "%s", v->status);
        *v = cur;
    }
    if (strcmp(v->deadline, v->found) < 0)
        return DTM_EVALIDATION; /* answered with both dates */
    v->updated_at = dtm_now_us();
    if (c->create) {
        v->created_at = v->updated_at;
        snprintf(v->created_by, sizeof(v->created_by), "%s", c->actor);
        rc = st->ops->vuln_insert(st, v);
    } else {
        rc = st->ops->vuln_update(st, v);
    }
    return rc ? rc : audit_change(c, st, v);
}

static void written(void *ctx, int rc)
{
    struct change *c = ctx;
    c->rc = rc;
    dtm_http_resume(c->r);
}

static int change_resumed(struct dtm_req *r)
{
    struct change *c = r->async;
    struct dtm_buf b;
    int rc;
    if (c->rc == DTM_ENOTFOUND)
        return dtm_http_problem(r, 404, "not_found", "Not found", "There is no vulnerability %lld.",
                                (long long)c->v.id);
    if (c->rc == DTM_EVALIDATION)
        return dtm_http_problem(r, 400, "bad_member", "Bad member",
                                "Member deadline (%s) is before found (%s).", c->v.deadline,
                                c->v.found);
    if (c->rc)
        return dtm_http_error(r, c->rc);
    dtm_alerts_poke(dtm_http_env(r)->alerts); /* overdue now, or fixed: the alert follows */
    dtm_buf_init(&b, 64 * 1024);
    item_json(&b, &c->v);
    rc = dtm_http_json(r, c->create ? 201 : 200, &b);
    dtm_buf_free(&b);
    return rc;
}

static int change(struct dtm_req *r, bool create)
{
    const struct dtm_server_env *env = dtm_http_env(r);
    struct change *c = dtm_arena_alloc(&r->arena, sizeof(*c));
    int rc;
    if (!c)
        return DTM_ENOMEM;
    memset(c, 0, sizeof(*c));
    c->r = r;
    c->create = create;
    c->audit_key = env->keys->audit_key;
    if (!create && parse_id(r, &c->v.id))
        return DTM_OK;
    if (read_body(r, c))
        return DTM_OK; /* answered */
    if (create) {
        for (size_t m = 0; m < DTM_ARRAY_LEN(members); m++)
            if (!c->set[m] && m != M_PLAN && m != M_STATUS)
                return dtm_http_problem(r, 400, "missing_member", "Missing member",
                                        "Member %s is required.", members[m]);
        if (!c->set[M_STATUS])
            snprintf(c->v.status, sizeof(c->v.status), "open");
    }
    snprintf(c->actor, sizeof(c->actor), "%s", r->person ? r->user.username : r->sys.code);
    dtm_http_client_ip(r, c->ip, sizeof(c->ip));
    r->async = c;
    dtm_http_suspend(r, change_resumed);
    if ((rc = dtm_alerts_call(env->alerts, write_change, written, c))) {
        c->rc = rc == DTM_ENOMEM ? rc : DTM_EBUSY;
        dtm_http_resume(r);
    }
    return DTM_HTTP_ASYNC;
}

int dtm_api_vuln_create(struct dtm_req *r)
{
    return change(r, true);
}

int dtm_api_vuln_update(struct dtm_req *r)
{
    return change(r, false);
}
