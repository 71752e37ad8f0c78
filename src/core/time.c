/* core/time.c — clocks, RFC 3339 formatting and parsing, civil dates. Times without an offset
 * mean UTC+07:00 (CONTRACT §2). Civil-date arithmetic after H. Hinnant's public-domain
 * algorithms (days_from_civil / civil_from_days), written out because libc has no
 * timezone-free, thread-safe equivalent (timegm is not POSIX). */
#include "core/core.h"

#include <stdio.h>
#include <time.h>

int64_t dtm_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t dtm_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t dtm_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void dtm_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yy + (*m <= 2);
}

static void fmt(int64_t t_us, int offset_s, char *out, size_t outsz)
{
    int64_t local = t_us + (int64_t)offset_s * 1000000;
    int64_t secs = local >= 0 ? local / 1000000 : -((-local + 999999) / 1000000);
    int64_t ms = (local - secs * 1000000) / 1000;
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int64_t sod = secs - days * 86400, y;
    unsigned m, d;
    dtm_civil_from_days(days, &y, &m, &d);
    if (offset_s == 0)
        snprintf(out, outsz, "%04lld-%02u-%02uT%02d:%02d:%02d.%03lldZ", (long long)y, m, d,
                 (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60), (long long)ms);
    else
        snprintf(out, outsz, "%04lld-%02u-%02uT%02d:%02d:%02d.%03lld%c%02d:%02d", (long long)y, m,
                 d, (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60), (long long)ms,
                 offset_s < 0 ? '-' : '+', (offset_s < 0 ? -offset_s : offset_s) / 3600,
                 (offset_s < 0 ? -offset_s : offset_s) / 60 % 60);
}

void dtm_time_fmt(int64_t t_us, char *out, size_t outsz)
{
    fmt(t_us, DTM_TZ_OFFSET, out, outsz);
}

void dtm_buf_json_time(struct dtm_buf *b, int64_t t_us)
{
    char ts[40];
    if (!t_us) {
        dtm_buf_addc(b, "null");
        return;
    }
    dtm_time_fmt(t_us, ts, sizeof(ts));
    dtm_buf_printf(b, "\"%s\"", ts);
}

void dtm_time_fmt_utc(int64_t t_us, char *out, size_t outsz)
{
    fmt(t_us, 0, out, outsz);
}

static bool digits(struct dtm_str s, size_t at, size_t n, int *out)
{
    int v = 0;
    if (at + n > s.n)
        return false;
    for (size_t i = at; i < at + n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9')
            return false;
        v = v * 10 + (s.p[i] - '0');
    }
    *out = v;
    return true;
}

static const unsigned char mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

static bool valid_date(int y, int m, int d)
{
    if (y < 1 || m < 1 || m > 12 || d < 1)
        return false;
    int max = mdays[m - 1];
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        max = 29;
    return d <= max;
}

int dtm_date_parse(struct dtm_str s, int64_t *days)
{
    int y, m, d;
    if (s.n != 10 || !digits(s, 0, 4, &y) || s.p[4] != '-' || !digits(s, 5, 2, &m) ||
        s.p[7] != '-' || !digits(s, 8, 2, &d) || !valid_date(y, m, d))
        return DTM_EINVAL;
    *days = dtm_days_from_civil(y, (unsigned)m, (unsigned)d);
    return DTM_OK;
}

int dtm_time_parse(struct dtm_str s, int64_t *t_us)
{
    int y, mo, d, h, mi, sec = 0, oh, om;
    int64_t frac_us = 0, offset = DTM_TZ_OFFSET;
    size_t i;
    if (s.n < 16 || !digits(s, 0, 4, &y) || s.p[4] != '-' || !digits(s, 5, 2, &mo) ||
        s.p[7] != '-' || !digits(s, 8, 2, &d) ||
        (s.p[10] != 'T' && s.p[10] != 't' && s.p[10] != ' ') || !digits(s, 11, 2, &h) ||
        s.p[13] != ':' || !digits(s, 14, 2, &mi))
        return DTM_EINVAL;
    i = 16;
    if (i < s.n && s.p[i] == ':') {
        if (!digits(s, 17, 2, &sec))
            return DTM_EINVAL;
        i = 19;
        if (i < s.n && s.p[i] == '.') {
            int64_t scale = 100000;
            size_t start = ++i;
            while (i < s.n && s.p[i] >= '0' && s.p[i] <= '9') {
                frac_us += (s.p[i] - '0') * scale;
                scale /= 10;
                i++;
            }
            if (i == start || i - start > 9)
                return DTM_EINVAL;
        }
    }
    if (i < s.n) {
        if ((s.p[i] == 'Z' || s.p[i] == 'z') && i + 1 == s.n) {
            offset = 0;
        } else if ((s.p[i] == '+' || s.p[i] == '-') && i + 6 == s.n && digits(s, i + 1, 2, &oh) &&
                   s.p[i + 3] == ':' && digits(s, i + 4, 2, &om) && oh <= 23 && om <= 59) {
            offset = (oh * 3600 + om * 60) * (s.p[i] == '-' ? -1 : 1);
        } else {
            return DTM_EINVAL;
        }
    }
    if (!valid_date(y, mo, d) || h > 23 || mi > 59 || sec > 60)
        return DTM_EINVAL;
    if (sec == 60)
        sec = 59; /* leap second: clamp, as POSIX time has none */
    int64_t days = dtm_days_from_civil(y, (unsigned)mo, (unsigned)d);
    *t_us = ((days * 86400 + h * 3600 + mi * 60 + sec) - offset) * 1000000 + frac_us;
    return DTM_OK;
}

int64_t dtm_day_start(int64_t days)
{
    return (days * 86400 - DTM_TZ_OFFSET) * 1000000;
}

int dtm_time_bound_parse(struct dtm_str s, bool end, int64_t *t_us)
{
    int64_t days;
    if (dtm_date_parse(s, &days) == DTM_OK) {
        *t_us = dtm_day_start(days + (end ? 1 : 0));
        return DTM_OK;
    }
    return dtm_time_parse(s, t_us);
}
