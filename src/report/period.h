/* report/period.h — the periods of reports, quality, reconciliation and rankings (CONTRACT §6):
 * a day `2026-10-05`, an ISO week `2026-W42`, a month `2026-10`, a quarter `2026-Q3` or a year
 * `2026`, each a half-open range of instants [from, to) in UTC+07:00 (Asia/Ho_Chi_Minh). */
#ifndef DTM_REPORT_PERIOD_H
#define DTM_REPORT_PERIOD_H

#include <cjson/cJSON.h>
#include <stdint.h>

enum dtm_period_kind { DTM_P_DAY, DTM_P_WEEK, DTM_P_MONTH, DTM_P_QUARTER, DTM_P_YEAR };

struct dtm_period {
    enum dtm_period_kind kind;
    int64_t from, to; /* µs since the epoch, [from, to) */
    char label[16];   /* canonical: "2026-10-05", "2026-W42", "2026-10", "2026-Q3", "2026" */
};

/* Parses a period label (years 1970–9999). DTM_OK or DTM_EINVAL (a malformed label, month 13,
 * week 54 of a year that has 52, 2026-02-30, …). */
int dtm_period_parse(const char *s, struct dtm_period *p /* OUT */);

/* The period of this kind that contains the instant t (µs). */
void dtm_period_at(enum dtm_period_kind kind, int64_t t_us, struct dtm_period *p /* OUT */);

/* The period of the same kind just before / just after p. */
void dtm_period_prev(const struct dtm_period *p, struct dtm_period *out /* OUT */);
void dtm_period_next(const struct dtm_period *p, struct dtm_period *out /* OUT */);

/* "day", "week", "month", "quarter", "year"; and back (DTM_OK or DTM_EINVAL). */
const char *dtm_period_kind_name(enum dtm_period_kind kind);
int dtm_period_kind_parse(const char *s, enum dtm_period_kind *kind /* OUT */);

/* Adds "period" (the label), "from" and "to" (RFC 3339, UTC+07:00) to the JSON object o: the
 * head of every answer about a period. */
void dtm_period_json(const struct dtm_period *p, cJSON *o);

#endif
