/* validate — typed checking of one decoded record against its dataset (T3.3, T2.3), the step
 * between the decoders (ingest/) and masking (mask.c) in the data flow. Every value is checked
 * on its text, whatever the decoder's kind (CSV and XML give only text), and turned into its
 * canonical text and typed value (struct dtm_value). Then the cross-field rules run. All errors
 * of a record are collected. Also: dtm_record_json, the canonical serialisation that is stored
 * and hashed.
 *
 * This is the hot path of ingestion: no malloc per field. Canonical texts that differ from the
 * input come from the request's arena; pattern matching uses one PCRE2 match block per thread. */
#include "dict/dict.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#define NUM_MAX 128 /* bytes of a canonical number */

struct ctx {
    const struct dtm_dataset *ds;
    struct dtm_record *rec;
    struct dtm_arena *arena;
    enum dtm_mask_mode mode;
    struct dtm_rec_error *errs;
    size_t max_errs;
    size_t count; /* all errors, written or not */
    size_t index;
    pcre2_match_data *md; /* this thread's match block, fetched on first use */
};

/* Copies at most DTM_NAME_MAX-1 bytes of s into dst without cutting a UTF-8 sequence. */
static void copy_name(char dst[DTM_NAME_MAX], struct dtm_str s)
{
    size_t n = s.n;
    if (n > DTM_NAME_MAX - 1) {
        n = DTM_NAME_MAX - 1;
        while (n > 0 && ((unsigned char)s.p[n] & 0xC0) == 0x80)
            n--;
    }
    if (n)
        memcpy(dst, s.p, n);
    dst[n] = '\0';
}

static struct dtm_rec_error *add_err(struct ctx *c, struct dtm_str field, const char *code,
                                     const char *arg, const struct dtm_rule *rule)
{
    c->count++;
    if (c->count > c->max_errs || !c->errs)
        return NULL;
    struct dtm_rec_error *e = &c->errs[c->count - 1];
    e->index = c->index;
    copy_name(e->field, field);
    e->code = code;
    e->arg[0] = '\0';
    if (arg) {
        size_t n = strlen(arg);
        if (n >= sizeof e->arg) {
            n = sizeof e->arg - 1;
            while (n > 0 && ((unsigned char)arg[n] & 0xC0) == 0x80)
                n--;
        }
        memcpy(e->arg, arg, n);
        e->arg[n] = '\0';
    }
    e->rule = rule;
    return e;
}

static void field_err(struct ctx *c, int fi, const char *code, const char *arg)
{
    add_err(c, dtm_str_c(c->ds->fields[fi].name), code, arg, NULL);
}

/* Finds a field by name, trying the field after the last one found first: senders usually
 * keep the definition's order. */
static int find_field(const struct dtm_dataset *ds, struct dtm_str name, size_t *hint)
{
    size_t n = ds->nfields;
    if (name.n == 0 || name.n >= DTM_NAME_MAX)
        return -1;
    size_t i = *hint < n ? *hint : 0;
    for (size_t k = 0; k < n; k++, i = i + 1 < n ? i + 1 : 0) {
        const char *f = ds->fields[i].name;
        /* names are NUL-padded to DTM_NAME_MAX: f[n-1] != 0 && f[n] == 0 means strlen(f) == n */
        if (f[name.n] == '\0' && f[name.n - 1] != '\0' && f[0] == name.p[0] &&
            memcmp(f, name.p, name.n) == 0) {
            *hint = i + 1;
            return (int)i;
        }
    }
    return -1;
}

/* The text t, or an arena copy of buf[0..n) when it differs from t (canonical forms). */
static bool set_canonical(struct ctx *c, struct dtm_value *v, const char *buf, size_t n)
{
    if (n == v->text.n && memcmp(buf, v->text.p, n) == 0)
        return true;
    char *p = dtm_arena_strndup(c->arena, buf, n);
    if (!p)
        return false;
    v->text = (struct dtm_str){p, n};
    return true;
}

/* ---- numbers */

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

/* Parses [+-]?digits[.digits][(e|E)[+-]?digits] and writes the exact canonical form (no
 * superfluous zeros, no '+', no exponent, "-" only for non-zero values) into out. Returns the
 * length, or 0 when s is not such a number or the canonical form would not fit. *fraction says
 * whether a fractional part remains. */
static size_t canon_number(struct dtm_str s, char out[NUM_MAX], bool *fraction)
{
    const char *p = s.p, *end = s.p + s.n;
    bool neg = false;
    if (p < end && (*p == '+' || *p == '-'))
        neg = *p++ == '-';
    const char *int_p = p;
    while (p < end && is_digit(*p))
        p++;
    size_t int_n = (size_t)(p - int_p);
    if (int_n == 0)
        return 0;
    const char *frac_p = p;
    size_t frac_n = 0;
    if (p < end && *p == '.') {
        frac_p = ++p;
        while (p < end && is_digit(*p))
            p++;
        frac_n = (size_t)(p - frac_p);
        if (frac_n == 0)
            return 0;
    }
    long exp = 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        bool eneg = false;
        if (p < end && (*p == '+' || *p == '-'))
            eneg = *p++ == '-';
        if (p == end)
            return 0;
        for (; p < end && is_digit(*p); p++) {
            exp = exp * 10 + (*p - '0');
            if (exp > 4 * NUM_MAX)
                return 0;
        }
        if (eneg)
            exp = -exp;
    }
    if (p != end)
        return 0;

    /* digits D = int digits then fraction digits; the point sits after `point` of them */
    size_t nd = int_n + frac_n;
#define DIGIT(k) ((k) < int_n ? int_p[(k)] : frac_p[(k)-int_n])
    long point = (long)int_n + exp;
    long first = -1, last = -1; /* first and last non-zero digit */
    for (size_t k = 0; k < nd; k++)
        if (DIGIT(k) != '0') {
            if (first < 0)
                first = (long)k;
            last = (long)k;
        }
    size_t o = 0;
    if (first < 0) { /* zero */
        out[0] = '0';
        out[1] = '\0';
        *fraction = false;
        return 1;
    }
    if (neg)
        out[o++] = '-';
    /* integer part: digits [first, point), zeros past the end of D */
    if (first >= point) {
        out[o++] = '0';
    } else {
        for (long k = first; k < point; k++) {
            if (o >= NUM_MAX - 1)
                return 0;
            out[o++] = k < (long)nd ? DIGIT((size_t)k) : '0';
        }
    }
    *fraction = last >= point;
    if (*fraction) {
        out[o++] = '.';
        for (long k = point; k <= last; k++) {
            if (o >= NUM_MAX - 1)
                return 0;
            out[o++] = k < 0 ? '0' : DIGIT((size_t)k);
        }
    }
#undef DIGIT
    out[o] = '\0';
    return o;
}

/* An integer is written [+-]?digits: no fraction, no exponent, even when exact. */
static bool plain_integer(struct dtm_str s)
{
    for (size_t k = 0; k < s.n; k++)
        if (!is_digit(s.p[k]) && !(k == 0 && (s.p[k] == '+' || s.p[k] == '-')))
            return false;
    return true;
}

/* Canonical integer text → int64 (false on overflow). */
static bool parse_i64(const char *s, size_t n, int64_t *out)
{
    size_t k = 0;
    bool neg = s[0] == '-';
    if (neg)
        k++;
    uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; k < n; k++) {
        unsigned dgt = (unsigned)(s[k] - '0');
        if (v > (lim - dgt) / 10)
            return false;
        v = v * 10 + dgt;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

static void fmt_limit(char *out, size_t n, double v)
{
    if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(out, n, "%.0f", v);
        return;
    }
    snprintf(out, n, "%.15g", v);
    if (strtod(out, NULL) != v)
        snprintf(out, n, "%.17g", v);
}

static bool check_bounds(struct ctx *c, int fi, double x)
{
    const struct dtm_field_def *f = &c->ds->fields[fi];
    char arg[40];
    if (f->has_min && x < f->min) {
        fmt_limit(arg, sizeof arg, f->min);
        field_err(c, fi, "min", arg);
        return false;
    }
    if (f->has_max && x > f->max) {
        fmt_limit(arg, sizeof arg, f->max);
        field_err(c, fi, "max", arg);
        return false;
    }
    return true;
}

/* ---- dates and times */

static bool digits(const char *p, size_t n, unsigned *out)
{
    unsigned v = 0;
    for (size_t k = 0; k < n; k++) {
        if (!is_digit(p[k]))
            return false;
        v = v * 10 + (unsigned)(p[k] - '0');
    }
    *out = v;
    return true;
}

/* "YYYY-MM-DD", a real calendar date → days since 1970-01-01 */
static bool parse_date(const char *p, int64_t *days)
{
    static const unsigned char mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    unsigned y, m, d;
    if (!digits(p, 4, &y) || p[4] != '-' || !digits(p + 5, 2, &m) || p[7] != '-' ||
        !digits(p + 8, 2, &d))
        return false;
    if (y < 1 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
        return false;
    if (m == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
        return false;
    *days = dtm_days_from_civil((int64_t)y, m, d);
    return true;
}

/* RFC 3339 date-time (CONTRACT §2) → canonical "YYYY-MM-DDTHH:MM:SS[.frac]±HH:MM|Z" in out.
 * Returns the length, 0 when the text is not a date-time. */
static size_t canon_datetime(struct dtm_str s, char out[48])
{
    const char *p = s.p;
    size_t n = s.n, k;
    unsigned hh, mi, ss = 0, oh, om;
    int64_t days;
    if (n < 16 || !parse_date(p, &days) || (p[10] != 'T' && p[10] != 't' && p[10] != ' ') ||
        !digits(p + 11, 2, &hh) || p[13] != ':' || !digits(p + 14, 2, &mi) || hh > 23 || mi > 59)
        return 0;
    memcpy(out, p, 10);
    out[10] = 'T';
    memcpy(out + 11, p + 11, 5);
    k = 16;
    bool seconds = k < n && p[k] == ':';
    if (seconds) {
        if (k + 3 > n || !digits(p + k + 1, 2, &ss) || ss > 60)
            return 0;
        k += 3;
    }
    size_t o = 16;
    out[o++] = ':';
    out[o++] = (char)('0' + ss / 10);
    out[o++] = (char)('0' + ss % 10);
    if (seconds && k < n && p[k] == '.') {
        size_t f = ++k;
        while (k < n && is_digit(p[k]))
            k++;
        if (k == f || k - f > 9)
            return 0;
        out[o++] = '.';
        memcpy(out + o, p + f, k - f);
        o += k - f;
    }
    if (k == n) { /* no offset: UTC+07:00 (CONTRACT §2) */
        memcpy(out + o, "+07:00", 6);
        o += 6;
    } else if (k + 1 == n && (p[k] == 'Z' || p[k] == 'z')) {
        out[o++] = 'Z';
    } else if (k + 6 == n && (p[k] == '+' || p[k] == '-') && digits(p + k + 1, 2, &oh) &&
               p[k + 3] == ':' && digits(p + k + 4, 2, &om) && oh <= 23 && om <= 59) {
        memcpy(out + o, p + k, 6);
        o += 6;
    } else {
        return 0;
    }
    out[o] = '\0';
    return o;
}

/* ---- strings */

static size_t count_code_points(struct dtm_str s)
{
    size_t n = 0;
    for (size_t k = 0; k < s.n; k++)
        n += ((unsigned char)s.p[k] & 0xC0) != 0x80;
    return n;
}

/* Whether v is in the form dtm_mask_value(m, ...) produces: partial — a '*' in every hidden
 * position (first 4 and last 2 characters kept; all '*' up to 6 characters); hash — 64
 * lowercase hex digits. */
static bool masked_form(enum dtm_mask m, struct dtm_str v)
{
    if (m == DTM_MASK_HASH) {
        if (v.n != 64)
            return false;
        for (size_t k = 0; k < 64; k++)
            if (!is_digit(v.p[k]) && !(v.p[k] >= 'a' && v.p[k] <= 'f'))
                return false;
        return true;
    }
    size_t n = count_code_points(v), cp = 0;
    for (size_t k = 0; k < v.n; k++) {
        if (((unsigned char)v.p[k] & 0xC0) == 0x80)
            continue;
        bool hidden = n <= 6 || (cp >= 4 && cp < n - 2);
        if (hidden && v.p[k] != '*')
            return false;
        cp++;
    }
    return true;
}

static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static pthread_key_t md_key;
static bool md_key_ok;

static void md_destroy(void *p)
{
    pcre2_match_data_free(p);
}

static void md_init(void)
{
    md_key_ok = pthread_key_create(&md_key, md_destroy) == 0;
}

/* One match block per thread (several threads validate at once), freed when the thread ends.
 * A match needs only to know whether it matched: one ovector pair is enough. */
static pcre2_match_data *thread_match_data(void)
{
    pthread_once(&md_once, md_init);
    if (!md_key_ok)
        return NULL;
    pcre2_match_data *md = pthread_getspecific(md_key);
    if (!md && (md = pcre2_match_data_create(1, NULL)) && pthread_setspecific(md_key, md) != 0) {
        pcre2_match_data_free(md);
        md = NULL;
    }
    return md;
}

static bool check_string(struct ctx *c, int fi)
{
    const struct dtm_field_def *f = &c->ds->fields[fi];
    struct dtm_value *v = &c->rec->v[fi];
    if (c->mode == DTM_MODE_MASKED && f->personal) {
        enum dtm_mask m = f->mask != DTM_MASK_NONE ? f->mask : DTM_MASK_PARTIAL;
        if (m == DTM_MASK_PARTIAL && memchr(v->text.p, '*', v->text.n)) {
            if (masked_form(m, v->text))
                return true;
            field_err(c, fi, "masked_form", NULL);
            return false;
        }
        if (m == DTM_MASK_HASH && masked_form(m, v->text))
            return true;
    }
    if (f->max_length && v->text.n > (size_t)f->max_length &&
        count_code_points(v->text) > (size_t)f->max_length) {
        char arg[24];
        snprintf(arg, sizeof arg, "%lld", (long long)f->max_length);
        field_err(c, fi, "max_length", arg);
        return false;
    }
    if (f->pattern_code) {
        if (!c->md && !(c->md = thread_match_data())) {
            field_err(c, fi, "internal", NULL);
            return false;
        }
        int rc = pcre2_match(f->pattern_code, (PCRE2_SPTR)v->text.p, v->text.n, 0, 0, c->md, NULL);
        if (rc < 0) { /* no match, or a match error (limits, bad UTF-8): not accepted */
            field_err(c, fi, "pattern", f->pattern);
            return false;
        }
    }
    return true;
}

static void enum_values_arg(const struct dtm_field_def *f, char *out, size_t outsz)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t k = 0; k < f->nvalues; k++) {
        int w = snprintf(out + o, outsz - o, "%s%s", k ? ", " : "", f->values[k]);
        if (w < 0 || (size_t)w >= outsz - o) {
            /* too long: end with an ellipsis on a character boundary */
            size_t cut = outsz >= 5 ? outsz - 5 : 0;
            while (cut > 0 && ((unsigned char)out[cut] & 0xC0) == 0x80)
                cut--;
            memcpy(out + cut, "\xe2\x80\xa6", 4); /* U+2026 and NUL */
            return;
        }
        o += (size_t)w;
    }
}

static const char *const type_name[] = {
    [DTM_T_STRING] = "string",   [DTM_T_INTEGER] = "integer", [DTM_T_DECIMAL] = "decimal",
    [DTM_T_BOOLEAN] = "boolean", [DTM_T_DATE] = "date",       [DTM_T_DATETIME] = "datetime",
    [DTM_T_ENUM] = "enum"};

/* Checks the text of present field fi and sets its canonical text and typed value. Returns
 * false (after adding the error) when the value is invalid. */
static bool check_value(struct ctx *c, int fi)
{
    const struct dtm_field_def *f = &c->ds->fields[fi];
    struct dtm_value *v = &c->rec->v[fi];
    const char *tname = type_name[f->type];
    char buf[NUM_MAX];

    /* S4: state secrets are out of scope — before the enum check, whatever the field's type */
    if (fi == c->ds->classification_field && dtm_str_ieqc(v->text, "secret")) {
        field_err(c, fi, "secret", NULL);
        return false;
    }
    switch (f->type) {
    case DTM_T_STRING:
        return check_string(c, fi);
    case DTM_T_ENUM:
        for (size_t k = 0; k < f->nvalues; k++) {
            const char *e = f->values[k];
            if (e[0] == v->text.p[0] && strnlen(e, v->text.n + 1) == v->text.n &&
                memcmp(e, v->text.p, v->text.n) == 0)
                return true;
        }
        {
            char arg[sizeof c->errs->arg];
            enum_values_arg(f, arg, sizeof arg);
            field_err(c, fi, "enum", arg);
        }
        return false;
    case DTM_T_INTEGER:
    case DTM_T_DECIMAL: {
        bool fraction;
        size_t n = canon_number(v->text, buf, &fraction);
        if (n == 0 || (f->type == DTM_T_INTEGER && !plain_integer(v->text))) {
            field_err(c, fi, "type", tname);
            return false;
        }
        if (f->type == DTM_T_INTEGER) {
            if (!parse_i64(buf, n, &v->i)) {
                field_err(c, fi, "type", tname);
                return false;
            }
            v->d = (double)v->i;
        } else {
            v->d = strtod(buf, NULL);
            if (!isfinite(v->d)) {
                field_err(c, fi, "type", tname);
                return false;
            }
        }
        if (!check_bounds(c, fi, f->type == DTM_T_INTEGER ? (double)v->i : v->d))
            return false;
        if (!set_canonical(c, v, buf, n)) {
            field_err(c, fi, "internal", NULL);
            return false;
        }
        return true;
    }
    case DTM_T_BOOLEAN: {
        struct dtm_str t = v->text;
        if (dtm_str_ieqc(t, "true") || dtm_str_eqc(t, "1"))
            v->i = 1;
        else if (dtm_str_ieqc(t, "false") || dtm_str_eqc(t, "0"))
            v->i = 0;
        else {
            field_err(c, fi, "type", tname);
            return false;
        }
        v->d = (double)v->i;
        if (!dtm_str_eqc(t, v->i ? "true" : "false")) /* static text, no copy */
            v->text = v->i ? DTM_STR("true") : DTM_STR("false");
        return true;
    }
    case DTM_T_DATE:
        if (v->text.n != 10 || !parse_date(v->text.p, &v->i)) {
            field_err(c, fi, "type", tname);
            return false;
        }
        v->d = (double)v->i;
        return true;
    case DTM_T_DATETIME: {
        char dt[48];
        size_t n = canon_datetime(v->text, dt);
        if (n == 0 || dtm_time_parse((struct dtm_str){dt, n}, &v->i) != DTM_OK) {
            field_err(c, fi, "type", tname);
            return false;
        }
        v->d = (double)v->i;
        if (!set_canonical(c, v, dt, n)) {
            field_err(c, fi, "internal", NULL);
            return false;
        }
        return true;
    }
    }
    field_err(c, fi, "type", tname);
    return false;
}

/* ---- cross-field rules */

static bool cond_holds(const struct dtm_record *rec, uint64_t valid, const struct dtm_rule *r)
{
    for (size_t k = 0; k < r->nif; k++) {
        int fi = r->if_field[k];
        const struct dtm_value *v = &rec->v[fi];
        if (!v->present || !(valid >> fi & 1) || !dtm_str_eqc(v->text, r->if_value[k]))
            return false;
    }
    return true;
}

/* "status = failed, channel = web" */
static void cond_arg(const struct dtm_dataset *ds, const struct dtm_rule *r, char *out,
                     size_t outsz)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t k = 0; k < r->nif && o < outsz; k++) {
        int w = snprintf(out + o, outsz - o, "%s%s = %s", k ? ", " : "",
                         ds->fields[r->if_field[k]].name, r->if_value[k]);
        if (w < 0)
            break;
        o += (size_t)w;
    }
}

static const char *const op_text[] = {"", "<", "<=", "=", ">=", ">"};

/* "success + failed <= total" */
static void rule_arg(const struct dtm_dataset *ds, const struct dtm_rule *r, char *out,
                     size_t outsz)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t k = 0; k < r->nleft + r->nright + 1 && o < outsz; k++) {
        int w;
        if (k < r->nleft)
            w = snprintf(out + o, outsz - o, "%s%s", k ? " + " : "", ds->fields[r->left[k]].name);
        else if (k == r->nleft)
            w = snprintf(out + o, outsz - o, " %s ", op_text[r->op]);
        else
            w = snprintf(out + o, outsz - o, "%s%s", k > r->nleft + 1 ? " + " : "",
                         ds->fields[r->right[k - r->nleft - 1]].name);
        if (w < 0)
            break;
        o += (size_t)w;
    }
}

static bool compare(enum dtm_rule_op op, int cmp)
{
    switch (op) {
    case DTM_OP_LT:
        return cmp < 0;
    case DTM_OP_LE:
        return cmp <= 0;
    case DTM_OP_EQ:
        return cmp == 0;
    case DTM_OP_GE:
        return cmp >= 0;
    case DTM_OP_GT:
        return cmp > 0;
    case DTM_OP_NONE:
        break;
    }
    return true;
}

/* Sums one side. Integers, dates and datetimes add exactly in int64; a decimal (or an int64
 * overflow) switches the side to double. */
static void side_sum(const struct dtm_dataset *ds, const struct dtm_record *rec, const int *idx,
                     size_t n, int64_t *isum, double *dsum, bool *exact)
{
    *isum = 0;
    *dsum = 0;
    for (size_t k = 0; k < n; k++) {
        const struct dtm_value *v = &rec->v[idx[k]];
        *dsum += ds->fields[idx[k]].type == DTM_T_DECIMAL ? v->d : (double)v->i;
        if (ds->fields[idx[k]].type == DTM_T_DECIMAL || __builtin_add_overflow(*isum, v->i, isum))
            *exact = false;
    }
}

static void check_rules(struct ctx *c, uint64_t valid)
{
    const struct dtm_dataset *ds = c->ds;
    const struct dtm_record *rec = c->rec;
    char arg[sizeof c->errs->arg];
    for (size_t ri = 0; ri < ds->nrules; ri++) {
        const struct dtm_rule *r = &ds->rules[ri];
        if (!cond_holds(rec, valid, r))
            continue;
        bool custom = strcmp(r->code, "rule") != 0, have_arg = false;
        for (size_t k = 0; k < r->nrequire; k++) {
            if (rec->v[r->require[k]].present)
                continue;
            if (!have_arg) { /* built only on error: this is the hot path */
                cond_arg(ds, r, arg, sizeof arg);
                have_arg = true;
            }
            add_err(c, dtm_str_c(ds->fields[r->require[k]].name), custom ? r->code : "required",
                    arg, r);
        }
        for (size_t k = 0; k < r->nforbid; k++) {
            if (!rec->v[r->forbid[k]].present)
                continue;
            if (!have_arg) {
                cond_arg(ds, r, arg, sizeof arg);
                have_arg = true;
            }
            add_err(c, dtm_str_c(ds->fields[r->forbid[k]].name), custom ? r->code : "forbidden",
                    arg, r);
        }
        if (r->op == DTM_OP_NONE)
            continue;
        bool skip = false;
        for (size_t k = 0; k < r->nleft && !skip; k++)
            skip = !rec->v[r->left[k]].present || !(valid >> r->left[k] & 1);
        for (size_t k = 0; k < r->nright && !skip; k++)
            skip = !rec->v[r->right[k]].present || !(valid >> r->right[k] & 1);
        if (skip)
            continue;
        int64_t li, rgi;
        double ld, rd;
        bool exact = true;
        side_sum(ds, rec, r->left, r->nleft, &li, &ld, &exact);
        side_sum(ds, rec, r->right, r->nright, &rgi, &rd, &exact);
        int cmp;
        if (exact) {
            cmp = (li > rgi) - (li < rgi);
        } else {
            /* decimals: tolerate the rounding of binary doubles */
            double eps = 1e-9 * DTM_MAX(1.0, DTM_MAX(fabs(ld), fabs(rd)));
            cmp = fabs(ld - rd) <= eps ? 0 : (ld > rd) - (ld < rd);
        }
        if (!compare(r->op, cmp)) {
            rule_arg(ds, r, arg, sizeof arg);
            add_err(c, dtm_str_c(ds->fields[r->left[0]].name), r->code, arg, r);
        }
    }
}

size_t dtm_validate(const struct dtm_dataset *ds, const struct dtm_in_record *in, size_t index,
                    struct dtm_record *rec, struct dtm_arena *arena, enum dtm_mask_mode mode,
                    struct dtm_rec_error *errs, size_t max_errs)
{
    struct ctx c = {ds, rec, arena, mode, errs, max_errs, 0, index, NULL};
    uint64_t seen = 0, valid = 0;
    size_t hint = 0;

    rec->ds = ds;
    memset(rec->v, 0, ds->nfields * sizeof rec->v[0]);
    for (size_t k = 0; k < in->nfields; k++) {
        const struct dtm_in_field *inf = &in->f[k];
        int fi = find_field(ds, inf->name, &hint);
        if (fi < 0) {
            add_err(&c, inf->name, "unknown_field", ds->code, NULL);
            continue;
        }
        if (seen >> fi & 1) /* decoders reject duplicates; keep the first */
            continue;
        seen |= (uint64_t)1 << fi;
        if (inf->kind == DTM_IN_NULL || inf->value.n == 0) /* absent */
            continue;
        rec->v[fi].present = true;
        rec->v[fi].text = inf->value;
    }
    for (size_t fi = 0; fi < ds->nfields; fi++) {
        if (!rec->v[fi].present) {
            if (ds->fields[fi].required)
                field_err(&c, (int)fi, "required", NULL);
            continue;
        }
        if (check_value(&c, (int)fi))
            valid |= (uint64_t)1 << fi;
    }
    if (ds->nrules)
        check_rules(&c, valid);
    return c.count;
}

/* ---- canonical JSON of a record */

int dtm_record_json(const struct dtm_record *rec, struct dtm_buf *out)
{
    const struct dtm_dataset *ds = rec->ds;
    bool first = true;
    dtm_buf_addch(out, '{');
    for (size_t fi = 0; fi < ds->nfields; fi++) {
        const struct dtm_value *v = &rec->v[fi];
        if (!v->present)
            continue;
        if (!first)
            dtm_buf_addch(out, ',');
        first = false;
        dtm_buf_json_strc(out, ds->fields[fi].name);
        dtm_buf_addch(out, ':');
        switch (ds->fields[fi].type) {
        case DTM_T_INTEGER:
        case DTM_T_DECIMAL:
        case DTM_T_BOOLEAN: /* canonical texts are valid JSON literals */
            dtm_buf_add(out, v->text.p, v->text.n);
            break;
        default:
            dtm_buf_json_str(out, v->text);
            break;
        }
    }
    dtm_buf_addch(out, '}');
    return out->err;
}
