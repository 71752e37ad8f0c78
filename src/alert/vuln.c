/* alert/vuln.c — the vulnerability register (T4.4, issue 5 item 10): what a valid item is, when
 * it is overdue (past its deadline, neither fixed nor accepted) and the periodic check that
 * raises the alert "vuln.overdue" for each overdue item and clears it when the item is fixed,
 * accepted or given a later deadline. */
#include "alert/alert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool dtm_vuln_status_ok(const char *s)
{
    return s && (!strcmp(s, "open") || !strcmp(s, "in_progress") || !strcmp(s, "fixed") ||
                 !strcmp(s, "accepted"));
}

bool dtm_vuln_severity_ok(const char *s)
{
    return s && (!strcmp(s, "low") || !strcmp(s, "medium") || !strcmp(s, "high") ||
                 !strcmp(s, "critical"));
}

bool dtm_vuln_date_ok(const char *s)
{
    int64_t days, y;
    unsigned m, d;
    char back[16];
    if (!s || strlen(s) != 10 || dtm_date_parse(dtm_str_c(s), &days))
        return false;
    /* a real day: 2026-02-30 does not come back the same */
    dtm_civil_from_days(days, &y, &m, &d);
    snprintf(back, sizeof(back), "%04lld-%02u-%02u", (long long)y, m, d);
    return !strcmp(back, s);
}

void dtm_vuln_today(int64_t now_us, char out[11])
{
    int64_t local = now_us / 1000000 + DTM_TZ_OFFSET, y;
    int64_t day = local >= 0 ? local / 86400 : -((-local + 86399) / 86400);
    unsigned m, d;
    char buf[32];
    dtm_civil_from_days(day, &y, &m, &d);
    snprintf(buf, sizeof(buf), "%04lld-%02u-%02u", (long long)y, m, d);
    memcpy(out, buf, 10);
    out[10] = '\0';
}

bool dtm_vuln_overdue(const struct dtm_vuln *v, const char *today)
{
    if (!strcmp(v->status, "fixed") || !strcmp(v->status, "accepted"))
        return false;
    /* ISO dates compare as text */
    return v->deadline[0] && strcmp(v->deadline, today) < 0;
}

void dtm_vuln_alert_key(int64_t id, char *out, size_t outsz)
{
    snprintf(out, outsz, "vuln:%lld", (long long)id);
}

enum dtm_alert_severity dtm_vuln_alert_severity(const char *s)
{
    if (!strcmp(s, "critical") || !strcmp(s, "high"))
        return DTM_ALERT_CRITICAL;
    if (!strcmp(s, "medium"))
        return DTM_ALERT_WARNING;
    return DTM_ALERT_INFO;
}

int dtm_vuln_json(struct dtm_buf *b, const struct dtm_vuln *v)
{
    char ts[40];
    dtm_buf_printf(b, "{\"id\":%lld,\"title\":", (long long)v->id);
    dtm_buf_json_strc(b, v->title);
    dtm_buf_printf(b, ",\"severity\":\"%s\",\"found\":\"%s\",\"remediation_plan\":", v->severity,
                   v->found);
    dtm_buf_json_strc(b, v->remediation_plan);
    dtm_buf_printf(b, ",\"deadline\":\"%s\",\"status\":\"%s\",\"created_by\":", v->deadline,
                   v->status);
    dtm_buf_json_strc(b, v->created_by);
    dtm_time_fmt(v->created_at, ts, sizeof(ts));
    dtm_buf_printf(b, ",\"created_at\":\"%s\"", ts);
    dtm_time_fmt(v->updated_at, ts, sizeof(ts));
    dtm_buf_printf(b, ",\"updated_at\":\"%s\"}", ts);
    return b->err;
}

/* ---- the periodic check */

struct check {
    struct dtm_alerts *e;
    char today[11];
    size_t raised;
};

static int check_one(void *ctx, const struct dtm_vuln *v)
{
    struct check *x = ctx;
    char key[48];
    dtm_vuln_alert_key(v->id, key, sizeof(key));
    if (dtm_vuln_overdue(v, x->today)) {
        struct dtm_buf d;
        char title[320];
        dtm_buf_init(&d, DTM_ALERT_DETAIL_MAX - 1);
        dtm_buf_printf(&d, "{\"vulnerability\":%lld,\"title\":", (long long)v->id);
        dtm_buf_json_strc(&d, v->title);
        dtm_buf_printf(&d, ",\"severity\":\"%s\",\"deadline\":\"%s\",\"status\":\"%s\"}",
                       v->severity, v->deadline, v->status);
        snprintf(title, sizeof(title), "Vulnerability %lld is past its deadline %s: %.200s",
                 (long long)v->id, v->deadline, v->title);
        dtm_alert_raise(x->e, DTM_VULN_RULE, key, dtm_vuln_alert_severity(v->severity), title,
                        d.err || !d.p ? NULL : d.p);
        dtm_buf_free(&d);
        x->raised++;
    } else {
        dtm_alert_clear(x->e, DTM_VULN_RULE, key);
    }
    return 0;
}

/* An open alert of the rule whose item is gone (it cannot be, items are never deleted) or
 * whose item is fine is cleared by check_one; nothing else to do. */
int dtm_vuln_check(struct dtm_alerts *e, struct dtm_store *st, int64_t now)
{
    struct check x = {e, "", 0};
    dtm_vuln_today(now, x.today);
    return st->ops->vuln_list(st, check_one, &x);
}
