/* core/str.c — slices (struct dtm_str) and result-code names. */
#include "core/core.h"

#include <string.h>

const char *dtm_rc_name(int rc)
{
    switch (rc) {
    case DTM_OK:
        return "ok";
    case DTM_ENOMEM:
        return "out_of_memory";
    case DTM_EINVAL:
        return "invalid";
    case DTM_EIO:
        return "io";
    case DTM_ENOTFOUND:
        return "not_found";
    case DTM_EEXIST:
        return "exists";
    case DTM_ETOOBIG:
        return "too_big";
    case DTM_EUNSUPPORTED:
        return "unsupported";
    case DTM_EMALFORMED:
        return "malformed";
    case DTM_EVALIDATION:
        return "validation";
    case DTM_EAUTH:
        return "unauthenticated";
    case DTM_EFORBIDDEN:
        return "forbidden";
    case DTM_ESTORE:
        return "store";
    case DTM_EBUSY:
        return "busy";
    case DTM_ECONFLICT:
        return "conflict";
    default:
        return "internal";
    }
}

bool dtm_str_eq(struct dtm_str a, struct dtm_str b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

bool dtm_str_eqc(struct dtm_str a, const char *c)
{
    return dtm_str_eq(a, dtm_str_c(c));
}

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

bool dtm_str_ieqc(struct dtm_str a, const char *c)
{
    size_t i;
    for (i = 0; i < a.n; i++)
        if (c[i] == '\0' || lower(a.p[i]) != lower(c[i]))
            return false;
    return c[i] == '\0';
}

struct dtm_str dtm_str_trim(struct dtm_str a)
{
    while (a.n && (a.p[0] == ' ' || a.p[0] == '\t')) {
        a.p++;
        a.n--;
    }
    while (a.n && (a.p[a.n - 1] == ' ' || a.p[a.n - 1] == '\t'))
        a.n--;
    return a;
}

int dtm_str_to_i64(struct dtm_str s, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    uint64_t v = 0, lim;
    if (s.n == 0)
        return DTM_EINVAL;
    if (s.p[0] == '-' || s.p[0] == '+') {
        neg = s.p[0] == '-';
        i = 1;
    }
    if (i == s.n)
        return DTM_EINVAL;
    lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < s.n; i++) {
        unsigned d = (unsigned char)s.p[i] - '0';
        if (d > 9)
            return DTM_EINVAL;
        if (v > (lim - d) / 10)
            return DTM_EINVAL;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return DTM_OK;
}

bool dtm_str_contains(struct dtm_str a, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; m <= a.n && i <= a.n - m; i++)
        if (dtm_str_ieqc((struct dtm_str){a.p + i, m}, needle))
            return true;
    return false;
}
