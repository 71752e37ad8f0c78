/* report/period.c — period labels ↔ ranges of instants in UTC+07:00 (report/period.h), on top of
 * the statistics' time buckets (stats/stats.c: ISO weeks, quarters), so that a period and a
 * bucket of the same name always cover the same instants. */
#include "report/period.h"

#include "core/core.h"
#include "stats/stats.h"

#include <stdio.h>
#include <string.h>

#define US_PER_DAY (86400LL * 1000000LL)

static const char *const kind_names[] = {"day", "week", "month", "quarter", "year"};
static const enum dtm_interval intervals[] = {DTM_I_DAY, DTM_I_WEEK, DTM_I_MONTH, DTM_I_QUARTER,
                                              DTM_I_YEAR};
/* days from a period's start that always land in the next period, never beyond it */
static const int64_t span_days[] = {1, 7, 31, 92, 366};

const char *dtm_period_kind_name(enum dtm_period_kind kind)
{
    return kind_names[kind];
}

int dtm_period_kind_parse(const char *s, enum dtm_period_kind *kind)
{
    for (size_t i = 0; i < sizeof kind_names / sizeof kind_names[0]; i++)
        if (strcmp(s, kind_names[i]) == 0) {
            *kind = (enum dtm_period_kind)i;
            return DTM_OK;
        }
    return DTM_EINVAL;
}

void dtm_period_at(enum dtm_period_kind kind, int64_t t_us, struct dtm_period *p)
{
    enum dtm_interval iv = intervals[kind];
    p->kind = kind;
    p->from = dtm_bucket_start(iv, t_us);
    p->to = dtm_bucket_start(iv, p->from + span_days[kind] * US_PER_DAY);
    dtm_bucket_label(iv, p->from, p->label, sizeof p->label);
}

void dtm_period_prev(const struct dtm_period *p, struct dtm_period *out)
{
    dtm_period_at(p->kind, p->from - 1, out);
}

void dtm_period_next(const struct dtm_period *p, struct dtm_period *out)
{
    dtm_period_at(p->kind, p->to, out);
}

/* Reads exactly n digits at s into *v. */
static bool digits(const char *s, int n, int *v)
{
    int x = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        x = x * 10 + (s[i] - '0');
    }
    *v = x;
    return true;
}

/* A day inside the period the label names (days since the epoch), by the label's shape; the
 * label is then checked by formatting the period found (week 53 of a 52-week year, month 13 and
 * the like name another period, or none). */
int dtm_period_parse(const char *s, struct dtm_period *p)
{
    int y, a;
    size_t n = s ? strlen(s) : 0;
    enum dtm_period_kind kind;
    int64_t day;
    if (n < 4 || n > 10 || !digits(s, 4, &y) || y < 1970)
        return DTM_EINVAL;
    if (n == 4) {
        kind = DTM_P_YEAR;
        day = dtm_days_from_civil(y, 1, 1);
    } else if (s[4] != '-') {
        return DTM_EINVAL;
    } else if (n == 7 && s[5] == 'Q' && digits(s + 6, 1, &a) && a >= 1 && a <= 4) {
        kind = DTM_P_QUARTER;
        day = dtm_days_from_civil(y, (unsigned)(a - 1) * 3 + 1, 1);
    } else if (n == 8 && s[5] == 'W' && digits(s + 6, 2, &a) && a >= 1 && a <= 53) {
        kind = DTM_P_WEEK; /* 4 January is always in week 1 */
        day = dtm_days_from_civil(y, 1, 4) + (int64_t)(a - 1) * 7;
    } else if (n == 7 && digits(s + 5, 2, &a) && a >= 1 && a <= 12) {
        kind = DTM_P_MONTH;
        day = dtm_days_from_civil(y, (unsigned)a, 1);
    } else if (n == 10 && dtm_date_parse(dtm_str_c(s), &day) == DTM_OK) {
        kind = DTM_P_DAY;
    } else {
        return DTM_EINVAL;
    }
    dtm_period_at(kind, dtm_day_start(day), p);
    return strcmp(p->label, s) == 0 ? DTM_OK : DTM_EINVAL;
}

void dtm_period_json(const struct dtm_period *p, cJSON *o)
{
    char t[40];
    cJSON_AddStringToObject(o, "period", p->label);
    dtm_time_fmt(p->from, t, sizeof(t));
    cJSON_AddStringToObject(o, "from", t);
    dtm_time_fmt(p->to, t, sizeof(t));
    cJSON_AddStringToObject(o, "to", t);
}
