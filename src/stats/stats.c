/* stats/stats.c — parsing a statistics query, time buckets in UTC+07:00, and the record-scan plan:
 * the records of the time range are read in time order, each stored JSON record is read back with
 * the ingest JSON decoder (exact number texts), filtered, and added to its group (group_by values
 * and time bucket) in a hash table; percentiles are exact (nearest rank over the group's values).
 */
#include "stats/stats.h"
#include "ingest/decode.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- parsing */

static int field_index(const struct dtm_dataset *ds, struct dtm_str name)
{
    for (size_t i = 0; i < ds->nfields; i++)
        if (dtm_str_eqc(name, ds->fields[i].name))
            return (int)i;
    return -1;
}

static bool in_list(const int *list, size_t n, int v)
{
    for (size_t i = 0; i < n; i++)
        if (list[i] == v)
            return true;
    return false;
}

/* Appends the names of the fields in list to out, comma-separated. */
static void names(const struct dtm_dataset *ds, const int *list, size_t n, char *out, size_t outsz)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && used < outsz; i++)
        used += (size_t)snprintf(out + used, outsz - used, "%s%s", i ? ", " : "",
                                 ds->fields[list[i]].name);
}

/* The next comma-separated item of *s (trimmed); false at the end. */
static bool next_item(const char **s, struct dtm_str *item)
{
    const char *p = *s, *comma;
    if (!p || !*p)
        return false;
    comma = strchr(p, ',');
    *item = dtm_str_trim((struct dtm_str){p, comma ? (size_t)(comma - p) : strlen(p)});
    *s = comma ? comma + 1 : p + strlen(p);
    return true;
}

#define BAD(param, ...)                                                                            \
    do {                                                                                           \
        *bad = (param);                                                                            \
        snprintf(err, errsz, __VA_ARGS__);                                                         \
        return DTM_EINVAL;                                                                         \
    } while (0)

static int parse_metrics(const struct dtm_dataset *ds, const char *s, struct dtm_query *q,
                         const char **bad, char *err, size_t errsz)
{
    static const struct {
        const char *prefix;
        enum dtm_metric_kind kind;
    } kinds[] = {{"sum:", DTM_M_SUM}, {"avg:", DTM_M_AVG},  {"min:", DTM_M_MIN},
                 {"max:", DTM_M_MAX}, {"p50:", DTM_M_P50},  {"p95:", DTM_M_P95},
                 {"p99:", DTM_M_P99}, {"rate:", DTM_M_RATE}};
    struct dtm_str it;
    char measures[512], dims[512];
    names(ds, ds->measures, ds->nmeasures, measures, sizeof(measures));
    names(ds, ds->dims, ds->ndims, dims, sizeof(dims));
    if (!s)
        s = "count";
    while (next_item(&s, &it)) {
        struct dtm_metric *m;
        size_t k;
        if (q->nmetrics == DTM_STATS_MAX_METRICS)
            BAD("metrics", "At most %d metrics can be asked at once.", DTM_STATS_MAX_METRICS);
        m = &q->metrics[q->nmetrics];
        memset(m, 0, sizeof(*m));
        if (it.n >= sizeof(m->name))
            BAD("metrics", "The metric '%.40s…' is too long.", it.p);
        memcpy(m->name, it.p, it.n);
        if (dtm_str_eqc(it, "count")) {
            m->kind = DTM_M_COUNT;
            m->field = -1;
            q->nmetrics++;
            continue;
        }
        for (k = 0; k < DTM_ARRAY_LEN(kinds); k++)
            if (it.n > strlen(kinds[k].prefix) &&
                memcmp(it.p, kinds[k].prefix, strlen(kinds[k].prefix)) == 0)
                break;
        if (k == DTM_ARRAY_LEN(kinds))
            BAD("metrics",
                "The metric '%s' is unknown; use count, sum:F, avg:F, min:F, max:F, p50:F, p95:F, "
                "p99:F (F one of: %s) or rate:FIELD=VALUE (FIELD one of: %s).",
                m->name, measures, dims);
        m->kind = kinds[k].kind;
        struct dtm_str arg = {it.p + strlen(kinds[k].prefix), it.n - strlen(kinds[k].prefix)};
        if (m->kind == DTM_M_RATE) {
            const char *eq = memchr(arg.p, '=', arg.n);
            struct dtm_str f = {arg.p, eq ? (size_t)(eq - arg.p) : arg.n};
            m->field = field_index(ds, f);
            if (!eq || m->field < 0 || !in_list(ds->dims, ds->ndims, m->field))
                BAD("metrics", "The metric '%s' must be rate:FIELD=VALUE with FIELD one of: %s.",
                    m->name, dims);
            snprintf(m->value, sizeof(m->value), "%.*s", (int)(arg.n - f.n - 1), eq + 1);
        } else {
            m->field = field_index(ds, arg);
            if (m->field < 0 || !in_list(ds->measures, ds->nmeasures, m->field))
                BAD("metrics", "The metric '%s' needs a measure of dataset %s: one of %s.", m->name,
                    ds->code, measures);
        }
        q->nmetrics++;
    }
    if (!q->nmetrics)
        BAD("metrics", "The parameter 'metrics' lists no metric.");
    return DTM_OK;
}

int dtm_query_restrict(struct dtm_query *q, int field, const char *const *values, size_t n)
{
    struct dtm_where *w;
    if (q->nwhere == DTM_STATS_MAX_WHERE || n > DTM_STATS_MAX_VALUES)
        return DTM_EINVAL;
    w = &q->where[q->nwhere++];
    w->field = field;
    w->nvalues = n;
    for (size_t i = 0; i < n; i++)
        snprintf(w->values[i], sizeof(w->values[i]), "%s", values[i]);
    return DTM_OK;
}

int dtm_query_parse(const struct dtm_dataset *ds, const char *metrics, const char *group_by,
                    const char *interval, const char *from, const char *to,
                    const char *const *wheres, size_t nwheres, struct dtm_query *q,
                    const char **bad, char *err, size_t errsz)
{
    static const char *const ivs[] = {"", "hour", "day", "week", "month", "quarter", "year"};
    char dims[512];
    struct dtm_str it;
    int rc;
    memset(q, 0, sizeof(*q));
    q->ds = ds;
    q->from = INT64_MIN;
    q->to = INT64_MAX;
    names(ds, ds->dims, ds->ndims, dims, sizeof(dims));
    if ((rc = parse_metrics(ds, metrics, q, bad, err, errsz)))
        return rc;
    while (group_by && next_item(&group_by, &it)) {
        int f = field_index(ds, it);
        if (f < 0 || !in_list(ds->dims, ds->ndims, f))
            BAD("group_by", "'%.*s' is not a dimension of dataset %s; group_by takes: %s.",
                (int)DTM_MIN(it.n, 64), it.p, ds->code, dims);
        if (in_list(q->group, q->ngroup, f))
            BAD("group_by", "'%.*s' appears twice in group_by.", (int)DTM_MIN(it.n, 64), it.p);
        if (q->ngroup == DTM_STATS_MAX_GROUP)
            BAD("group_by", "group_by takes at most %d dimensions.", DTM_STATS_MAX_GROUP);
        q->group[q->ngroup++] = f;
    }
    if (interval) {
        size_t k;
        for (k = 1; k < DTM_ARRAY_LEN(ivs); k++)
            if (strcmp(interval, ivs[k]) == 0)
                break;
        if (k == DTM_ARRAY_LEN(ivs))
            BAD("interval", "interval must be one of: hour, day, week, month, quarter, year.");
        if (ds->time_field < 0)
            BAD("interval", "Dataset %s has no time field, so it has no intervals.", ds->code);
        q->interval = (enum dtm_interval)k;
    }
    if (from && dtm_time_bound_parse(dtm_str_c(from), false, &q->from))
        BAD("from", "from must be a date (2026-10-05) or an RFC 3339 time "
                    "(2026-10-05T08:30:00+07:00).");
    if (to && dtm_time_bound_parse(dtm_str_c(to), true, &q->to))
        BAD("to", "to must be a date (2026-10-05, the whole day) or an RFC 3339 time.");
    if (q->from >= q->to)
        BAD("to", "to must be later than from.");
    for (size_t i = 0; i < nwheres; i++) {
        const char *w = wheres[i], *c1 = strchr(w, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        struct dtm_where *wh;
        int f;
        if (!c1 || !c2 || (strncmp(c1, ":eq:", 4) != 0 && strncmp(c1, ":in:", 4) != 0))
            BAD("where", "where takes FIELD:eq:VALUE or FIELD:in:V1|V2 (got '%.80s').", w);
        f = field_index(ds, (struct dtm_str){w, (size_t)(c1 - w)});
        if (f < 0 || !in_list(ds->dims, ds->ndims, f))
            BAD("where", "where: '%.*s' is not a dimension of dataset %s; use one of: %s.",
                (int)DTM_MIN((size_t)(c1 - w), 64), w, ds->code, dims);
        if (q->nwhere == DTM_STATS_MAX_WHERE)
            BAD("where", "At most %d where conditions.", DTM_STATS_MAX_WHERE);
        wh = &q->where[q->nwhere++];
        wh->field = f;
        wh->nvalues = 0;
        for (const char *v = c2 + 1;;) {
            const char *bar = c1[1] == 'i' ? strchr(v, '|') : NULL;
            size_t n = bar ? (size_t)(bar - v) : strlen(v);
            if (wh->nvalues == DTM_STATS_MAX_VALUES || n >= sizeof(wh->values[0]))
                BAD("where", "where: at most %d values of at most 127 bytes each.",
                    DTM_STATS_MAX_VALUES);
            memcpy(wh->values[wh->nvalues], v, n);
            wh->values[wh->nvalues++][n] = '\0';
            if (!bar)
                break;
            v = bar + 1;
        }
    }
    return DTM_OK;
}

/* ---- time buckets */

int64_t dtm_bucket_start(enum dtm_interval iv, int64_t t_us)
{
    int64_t local = t_us / 1000000 + DTM_TZ_OFFSET, days, y;
    unsigned m, d;
    if (t_us < 0 && t_us % 1000000)
        local--;
    days = local >= 0 ? local / 86400 : -((-local + 86399) / 86400);
    switch (iv) {
    case DTM_I_NONE:
        return 0;
    case DTM_I_HOUR: {
        int64_t h = local >= 0 ? local / 3600 : -((-local + 3599) / 3600);
        return (h * 3600 - DTM_TZ_OFFSET) * 1000000;
    }
    case DTM_I_DAY:
        break;
    case DTM_I_WEEK: /* ISO: weeks start on Monday; 1970-01-01 was a Thursday */
        days -= ((days + 3) % 7 + 7) % 7;
        break;
    case DTM_I_MONTH:
    case DTM_I_QUARTER:
    case DTM_I_YEAR:
        dtm_civil_from_days(days, &y, &m, &d);
        m = iv == DTM_I_YEAR ? 1 : iv == DTM_I_QUARTER ? (m - 1) / 3 * 3 + 1 : m;
        days = dtm_days_from_civil(y, m, 1);
        break;
    }
    return dtm_day_start(days);
}

void dtm_bucket_label(enum dtm_interval iv, int64_t start_us, char *out, size_t outsz)
{
    int64_t local = start_us / 1000000 + DTM_TZ_OFFSET;
    int64_t days = local >= 0 ? local / 86400 : -((-local + 86399) / 86400), y;
    unsigned m, d;
    dtm_civil_from_days(days, &y, &m, &d);
    switch (iv) {
    case DTM_I_HOUR:
        snprintf(out, outsz, "%04lld-%02u-%02uT%02lld:00+07:00", (long long)y, m, d,
                 (long long)((local - days * 86400) / 3600));
        break;
    case DTM_I_WEEK: {
        /* the ISO year is the year of the week's Thursday */
        int64_t thu = days + 3, ty, jan4, week1;
        unsigned tm, td;
        dtm_civil_from_days(thu, &ty, &tm, &td);
        jan4 = dtm_days_from_civil(ty, 1, 4);
        week1 = jan4 - ((jan4 + 3) % 7 + 7) % 7;
        snprintf(out, outsz, "%04lld-W%02lld", (long long)ty, (long long)((days - week1) / 7 + 1));
        break;
    }
    case DTM_I_MONTH:
        snprintf(out, outsz, "%04lld-%02u", (long long)y, m);
        break;
    case DTM_I_QUARTER:
        snprintf(out, outsz, "%04lld-Q%u", (long long)y, (m - 1) / 3 + 1);
        break;
    case DTM_I_YEAR:
        snprintf(out, outsz, "%04lld", (long long)y);
        break;
    default:
        snprintf(out, outsz, "%04lld-%02u-%02u", (long long)y, m, d);
        break;
    }
}

/* ---- the scan */

struct vals {
    double *v;
    size_t n, cap;
};

struct group {
    char *key; /* group values joined by \x1f, then the bucket start */
    size_t keylen;
    int64_t bucket;
    char **dimv; /* group values (NULL = absent) */
    int64_t count;
    double sum[DTM_STATS_MAX_METRICS], min[DTM_STATS_MAX_METRICS], max[DTM_STATS_MAX_METRICS];
    int64_t n[DTM_STATS_MAX_METRICS]; /* values seen, or matches for rate */
    struct vals vals[DTM_STATS_MAX_METRICS];
    struct dtm_hist_dense *hist; /* cube plan: per metric, the merged histogram of a percentile */
    struct group *next;
};

struct scan {
    const struct dtm_query *q;
    struct dtm_arena *arena;
    struct group **table;
    size_t nbuckets, ngroups;
    int fieldmap_n;
    struct dtm_str fv[64]; /* this record's values by field index */
    bool fpresent[64];
    struct dtm_in_record rec;
    size_t flen[DTM_MAX_FIELDS]; /* lengths of the field names */
    struct dtm_buf key;
    int rc;
    /* the cube plan */
    bool cube;
    int grain;
    const int *cdims; /* the cube's dimension field indexes */
    size_t ncdims;
    int mindex[DTM_STATS_MAX_METRICS]; /* per metric: index of its measure in ds->measures */
    bool need_measures;                /* a metric reads a measure's aggregate */
    uint32_t hist_mask;                /* measures whose histogram a percentile reads */
    struct dtm_cube_magg room[DTM_CUBE_MEASURES];
};

static uint64_t hash(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a: keys are ours, not an attacker's choice */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    return h;
}

static int grow_table(struct scan *s)
{
    size_t nb = s->nbuckets ? s->nbuckets * 2 : 1024;
    struct group **t = calloc(nb, sizeof(*t));
    if (!t)
        return DTM_ENOMEM;
    for (size_t i = 0; i < s->nbuckets; i++)
        for (struct group *g = s->table[i], *next; g; g = next) {
            next = g->next;
            size_t b = hash(g->key, g->keylen) & (nb - 1);
            g->next = t[b];
            t[b] = g;
        }
    free(s->table);
    s->table = t;
    s->nbuckets = nb;
    return DTM_OK;
}

static struct group *find_group(struct scan *s, int64_t bucket)
{
    const struct dtm_query *q = s->q;
    struct group *g;
    size_t b;
    dtm_buf_reset(&s->key);
    for (size_t i = 0; i < q->ngroup; i++) {
        int f = q->group[i];
        if (s->fpresent[f])
            dtm_buf_add(&s->key, s->fv[f].p, s->fv[f].n);
        else
            dtm_buf_addch(&s->key, '\x1e'); /* absent differs from "" */
        dtm_buf_addch(&s->key, '\x1f');
    }
    dtm_buf_add(&s->key, &bucket, sizeof(bucket));
    if (s->key.err)
        return NULL;
    if (s->ngroups >= s->nbuckets && grow_table(s))
        return NULL;
    b = hash(s->key.p, s->key.n) & (s->nbuckets - 1);
    for (g = s->table[b]; g; g = g->next)
        if (g->keylen == s->key.n && memcmp(g->key, s->key.p, s->key.n) == 0)
            return g;
    if (!(g = dtm_arena_alloc(s->arena, sizeof(*g))))
        return NULL;
    memset(g, 0, sizeof(*g));
    g->key = dtm_arena_strndup(s->arena, s->key.p, s->key.n);
    g->keylen = s->key.n;
    g->bucket = bucket;
    g->dimv = dtm_arena_alloc(s->arena, (q->ngroup + 1) * sizeof(char *));
    if (!g->key || !g->dimv)
        return NULL;
    if (s->cube) {
        if (!(g->hist = dtm_arena_alloc(s->arena, q->nmetrics * sizeof(*g->hist) + 1)))
            return NULL;
        memset(g->hist, 0, q->nmetrics * sizeof(*g->hist));
    }
    for (size_t i = 0; i < q->ngroup; i++) {
        int f = q->group[i];
        g->dimv[i] = s->fpresent[f] ? dtm_arena_strndup(s->arena, s->fv[f].p, s->fv[f].n) : NULL;
        if (s->fpresent[f] && !g->dimv[i])
            return NULL;
    }
    g->next = s->table[b];
    s->table[b] = g;
    s->ngroups++;
    return g;
}

static int add_value(struct vals *v, double x)
{
    if (dtm_array_reserve(&v->v, v->n, &v->cap, sizeof(*v->v)))
        return DTM_ENOMEM;
    v->v[v->n++] = x;
    return DTM_OK;
}

/* Whether the current values (s->fv) pass every `where`. */
static bool matches(const struct scan *s)
{
    const struct dtm_query *q = s->q;
    for (size_t w = 0; w < q->nwhere; w++) {
        const struct dtm_where *wh = &q->where[w];
        bool ok = false;
        for (size_t i = 0; i < wh->nvalues && s->fpresent[wh->field] && !ok; i++)
            ok = dtm_str_eqc(s->fv[wh->field], wh->values[i]);
        if (!ok)
            return false;
    }
    return true;
}

static int one_record(void *ctx, const struct dtm_record_version *ver)
{
    struct scan *s = ctx;
    const struct dtm_query *q = s->q;
    struct dtm_decode_error err;
    struct dtm_decoder *d = dtm_decoder_open(DTM_FMT_JSON, ver->content.p, ver->content.n);
    struct group *g;
    int64_t bucket = 0;
    if (!d)
        return DTM_ENOMEM;
    if (dtm_decoder_next(d, &s->rec, &err) != 1) {
        dtm_decoder_close(d);
        return DTM_OK; /* not a record we wrote: skipped */
    }
    memset(s->fpresent, 0, sizeof(s->fpresent));
    for (size_t k = 0, hint = 0; k < s->rec.nfields; k++) {
        /* stored records list their fields in the definition's order: try the next one first */
        struct dtm_str name = s->rec.f[k].name;
        int f;
        while (hint < q->ds->nfields && s->flen[hint] != name.n)
            hint++;
        if (hint < q->ds->nfields && memcmp(q->ds->fields[hint].name, name.p, name.n) == 0)
            f = (int)hint++;
        else if ((f = field_index(q->ds, name)) >= 0)
            hint = (size_t)f + 1;
        if (f >= 0 && f < 64 && s->rec.f[k].kind != DTM_IN_NULL) {
            s->fv[f] = s->rec.f[k].value;
            s->fpresent[f] = true;
        }
    }
    if (!matches(s)) {
        dtm_decoder_close(d);
        return DTM_OK;
    }
    if (q->interval) {
        int64_t t;
        int tf = q->ds->time_field;
        if (!s->fpresent[tf]) {
            dtm_decoder_close(d);
            return DTM_OK;
        }
        if (q->ds->fields[tf].type == DTM_T_DATE) {
            int64_t days;
            if (dtm_date_parse(s->fv[tf], &days)) {
                dtm_decoder_close(d);
                return DTM_OK;
            }
            t = dtm_day_start(days);
        } else if (dtm_time_parse(s->fv[tf], &t)) {
            dtm_decoder_close(d);
            return DTM_OK;
        }
        bucket = dtm_bucket_start(q->interval, t);
    }
    if (!(g = find_group(s, bucket))) {
        dtm_decoder_close(d);
        return DTM_ENOMEM;
    }
    g->count++;
    for (size_t i = 0; i < q->nmetrics; i++) {
        const struct dtm_metric *m = &q->metrics[i];
        if (m->kind == DTM_M_COUNT)
            continue;
        if (!s->fpresent[m->field])
            continue;
        if (m->kind == DTM_M_RATE) {
            if (dtm_str_eqc(s->fv[m->field], m->value))
                g->n[i]++;
            continue;
        }
        char num[64];
        size_t n = DTM_MIN(s->fv[m->field].n, sizeof(num) - 1);
        memcpy(num, s->fv[m->field].p, n);
        num[n] = '\0';
        double x = strtod(num, NULL);
        if (g->n[i] == 0 || x < g->min[i])
            g->min[i] = x;
        if (g->n[i] == 0 || x > g->max[i])
            g->max[i] = x;
        g->sum[i] += x;
        g->n[i]++;
        if (m->kind >= DTM_M_P50 && m->kind <= DTM_M_P99 && add_value(&g->vals[i], x)) {
            dtm_decoder_close(d);
            return DTM_ENOMEM;
        }
    }
    dtm_decoder_close(d);
    return DTM_OK;
}

/* ---- the cube plan */

static int measure_index(const struct dtm_dataset *ds, int field)
{
    for (size_t i = 0; i < ds->nmeasures && i < DTM_CUBE_MEASURES; i++)
        if (ds->measures[i] == field)
            return (int)i;
    return -1;
}

static int one_cube_row(void *ctx, int64_t bucket, const void *dims, size_t dimslen, int64_t n,
                        const void *agg, size_t agglen)
{
    struct scan *s = ctx;
    const struct dtm_query *q = s->q;
    struct dtm_str v[DTM_STATS_MAX_GROUP];
    struct dtm_cube_agg a;
    struct group *g;
    size_t nv;
    int64_t tb = 0;
    int rc;
    if (n <= 0 || (bucket == INT64_MIN && q->interval))
        return DTM_OK; /* emptied by updates; or no time where a period is asked */
    if (dtm_cube_dims_decode(dims, dimslen, v, DTM_STATS_MAX_GROUP, &nv) || nv != s->ncdims)
        return DTM_OK; /* written under another definition of the cube */
    for (size_t k = 0; k < nv; k++) {
        s->fv[s->cdims[k]] = v[k];
        s->fpresent[s->cdims[k]] = v[k].p != NULL;
    }
    if (!matches(s))
        return DTM_OK;
    if (q->interval)
        tb = dtm_bucket_start(q->interval, dtm_cube_bucket_start(s->grain, bucket));
    if (!(g = find_group(s, tb)))
        return DTM_ENOMEM;
    g->count += n;
    for (size_t i = 0; i < q->nmetrics; i++) {
        const struct dtm_metric *m = &q->metrics[i];
        if (m->kind == DTM_M_RATE && s->fpresent[m->field] &&
            dtm_str_eqc(s->fv[m->field], m->value))
            g->n[i] += n;
    }
    if (!s->need_measures)
        return DTM_OK;
    if ((rc = dtm_cube_agg_read(agg, agglen, s->hist_mask, s->room, &a)))
        return rc;
    for (size_t i = 0; i < q->nmetrics && rc == DTM_OK; i++) {
        const struct dtm_metric *m = &q->metrics[i];
        const struct dtm_cube_magg *x;
        if (m->kind == DTM_M_COUNT || m->kind == DTM_M_RATE)
            continue;
        if (s->mindex[i] >= (int)a.nm || (x = &a.m[s->mindex[i]])->n <= 0)
            continue;
        if (g->n[i] == 0 || x->min < g->min[i])
            g->min[i] = x->min;
        if (g->n[i] == 0 || x->max > g->max[i])
            g->max[i] = x->max;
        g->sum[i] += x->sum;
        g->n[i] += x->n;
        if (m->kind >= DTM_M_P50 && m->kind <= DTM_M_P99)
            rc = dtm_hist_dense_add(&g->hist[i], x->h, x->nh);
    }
    dtm_cube_agg_release(&a);
    return rc;
}

/* Picks the smallest complete cube holding every field the query names, at the coarsest grain
 * its time range and interval allow. false: no cube covers it (the records are scanned). */
static bool choose_cube(struct dtm_store *st, const struct dtm_query *q, struct scan *s,
                        int64_t *cube, int64_t *from_b, int64_t *to_b)
{
    const struct dtm_dataset *ds = q->ds;
    int64_t ids[DTM_CUBE_MAX];
    bool complete[DTM_CUBE_MAX];
    int need[DTM_STATS_MAX_GROUP + DTM_STATS_MAX_WHERE + DTM_STATS_MAX_METRICS];
    size_t nneed = 0, best = SIZE_MAX;
    int grain = -1;
    if (q->scan_only || !st->ops->cube_id || !ds->ncubes)
        return false;
    for (int g = DTM_GRAIN_DAY; g >= DTM_GRAIN_HOUR && grain < 0; g--) {
        bool ok =
            (q->from == INT64_MIN ||
             dtm_cube_bucket_start(g, dtm_cube_bucket(g, q->from)) == q->from) &&
            (q->to == INT64_MAX || dtm_cube_bucket_start(g, dtm_cube_bucket(g, q->to)) == q->to);
        if (g == DTM_GRAIN_HOUR) /* hour rows exist for recent days only */
            ok = ok && q->from != INT64_MIN && q->from >= dtm_cube_hour_floor(dtm_now_us());
        if (ok && !(g == DTM_GRAIN_DAY && q->interval == DTM_I_HOUR))
            grain = g;
    }
    if (grain < 0)
        return false;
    for (size_t i = 0; i < q->ngroup; i++)
        need[nneed++] = q->group[i];
    for (size_t i = 0; i < q->nwhere; i++)
        need[nneed++] = q->where[i].field;
    for (size_t i = 0; i < q->nmetrics; i++) {
        const struct dtm_metric *m = &q->metrics[i];
        s->mindex[i] = -1;
        if (m->kind == DTM_M_RATE)
            need[nneed++] = m->field;
        else if (m->kind != DTM_M_COUNT &&
                 ((s->mindex[i] = measure_index(ds, m->field)) < 0 ||
                  (m->kind >= DTM_M_P50 && !dtm_cube_has_hist(&ds->fields[m->field]))))
            return false;
        if (s->mindex[i] >= 0) {
            s->need_measures = true;
            if (m->kind >= DTM_M_P50 && m->kind <= DTM_M_P99)
                s->hist_mask |= 1u << s->mindex[i];
        }
    }
    if (dtm_cube_ids(st, ds, false, ids, complete))
        return false;
    for (size_t c = 0; c < ds->ncubes && c < DTM_CUBE_MAX; c++) {
        bool covers = ids[c] && complete[c] && ds->cubes[c].n < best;
        for (size_t k = 0; k < nneed && covers; k++)
            covers = in_list(ds->cubes[c].dims, ds->cubes[c].n, need[k]);
        if (covers) {
            best = ds->cubes[c].n;
            *cube = ids[c];
            s->cdims = ds->cubes[c].dims;
            s->ncdims = ds->cubes[c].n;
        }
    }
    if (best == SIZE_MAX)
        return false;
    s->grain = grain;
    /* records without a time count only when the range is open on both sides (as the scan) */
    *from_b = q->from == INT64_MIN ? (q->to == INT64_MAX ? INT64_MIN : INT64_MIN + 1)
                                   : dtm_cube_bucket(grain, q->from);
    *to_b = q->to == INT64_MAX ? INT64_MAX : dtm_cube_bucket(grain, q->to);
    if (grain == DTM_GRAIN_HOUR && st->ops->cube_gap_any) {
        /* an hour whose records went to the day row only (dated too far ahead) */
        bool gap = true;
        if (st->ops->cube_gap_any(st, *cube, *from_b, *to_b, &gap) || gap)
            return false;
    }
    return true;
}

struct share {
    int64_t from, to, in, all;
};

static int count_share(void *ctx, int64_t bucket, const void *dims, size_t dimslen, int64_t n,
                       const void *agg, size_t agglen)
{
    struct share *sh = ctx;
    sh->all += n;
    if (bucket >= sh->from && bucket < sh->to)
        sh->in += n;
    return DTM_OK;
}

/* Whether a scan of a time range should read the whole table in storage order rather than
 * follow the time index: when the range holds much of the dataset, the index visits the table's
 * pages at random (10 M records, 90 of 90 days: 56 s by the index, 24 s in order). The share is
 * read from the day rows of the dataset's smallest complete cube. */
static bool table_order(struct dtm_store *st, const struct dtm_query *q)
{
    const struct dtm_dataset *ds = q->ds;
    int64_t ids[DTM_CUBE_MAX];
    bool complete[DTM_CUBE_MAX];
    struct share sh = {0};
    size_t best = SIZE_MAX, bc = 0;
    if ((q->from == INT64_MIN && q->to == INT64_MAX) || !st->ops->record_scan_table ||
        !st->ops->cube_id || !ds->ncubes || dtm_cube_ids(st, ds, false, ids, complete))
        return false;
    for (size_t c = 0; c < ds->ncubes && c < DTM_CUBE_MAX; c++)
        if (ids[c] && complete[c] && ds->cubes[c].n < best) {
            best = ds->cubes[c].n;
            bc = c;
        }
    if (best == SIZE_MAX)
        return false;
    sh.from = q->from == INT64_MIN ? INT64_MIN + 1 : dtm_cube_bucket(DTM_GRAIN_DAY, q->from);
    sh.to = q->to == INT64_MAX ? INT64_MAX : dtm_cube_bucket(DTM_GRAIN_DAY, q->to) + 1;
    if (st->ops->cube_scan(st, ids[bc], DTM_GRAIN_DAY, INT64_MIN, INT64_MAX, NULL, 0, count_share,
                           &sh))
        return false;
    return sh.all > 0 && sh.in * 10 >= sh.all * 4; /* 40 % or more */
}

/* Reads the cube rows of the range. When a `where` names the cube's first dimension and the
 * range is short, one seek per bucket and value reads only the matching rows (a system's
 * figures are not found by reading every system's). */
static int cube_read(struct dtm_store *st, const struct dtm_query *q, struct scan *s, int64_t cube,
                     int64_t from_b, int64_t to_b)
{
    const struct dtm_where *w = NULL;
    for (size_t i = 0; i < q->nwhere; i++)
        if (q->where[i].field == s->cdims[0] && (!w || q->where[i].nvalues < w->nvalues))
            w = &q->where[i];
    if (w && from_b != INT64_MIN && to_b != INT64_MAX && to_b - from_b <= 4096 &&
        (to_b - from_b) * (int64_t)w->nvalues <= 4096) {
        for (size_t v = 0; v < w->nvalues; v++) {
            struct dtm_buf p;
            bool seen = false;
            int rc;
            for (size_t u = 0; u < v && !seen; u++) /* a value asked twice is read once */
                seen = strcmp(w->values[u], w->values[v]) == 0;
            if (seen)
                continue;
            dtm_buf_init(&p, 256);
            dtm_cube_dims_prefix(&p, dtm_str_c(w->values[v]));
            rc = p.err ? p.err
                       : st->ops->cube_scan(st, cube, s->grain, from_b, to_b, p.p, p.n,
                                            one_cube_row, s);
            dtm_buf_free(&p);
            if (rc)
                return rc;
        }
        return DTM_OK;
    }
    return st->ops->cube_scan(st, cube, s->grain, from_b, to_b, NULL, 0, one_cube_row, s);
}

/* ---- a scan in two parts at once: this thread reads the first half of the table, a second
 * thread with its own connection the other; then the second's groups are folded into the first's
 * (a scan that reads the whole table is CPU-bound: decoding each stored record) */

struct part {
    struct scan s;
    struct dtm_store *st;
    int64_t mid; /* this part reads the ids from here on, the caller's those before */
    int rc;
};

static void *part_run(void *arg)
{
    struct part *p = arg;
    const struct dtm_query *q = p->s.q;
    p->rc = p->st->ops->record_scan_part(p->st, q->ds->code, q->from, q->to, p->mid, INT64_MAX,
                                         one_record, &p->s);
    return NULL;
}

static int fold(struct scan *s, struct scan *t)
{
    for (size_t b = 0; b < t->nbuckets; b++)
        for (struct group *g2 = t->table[b], *next; g2; g2 = next) {
            struct group *g;
            size_t h;
            next = g2->next;
            h = hash(g2->key, g2->keylen);
            for (g = s->nbuckets ? s->table[h & (s->nbuckets - 1)] : NULL; g; g = g->next)
                if (g->keylen == g2->keylen && memcmp(g->key, g2->key, g2->keylen) == 0)
                    break;
            if (!g) { /* a group only the second part saw: it moves over (its memory is the
                       * result's second arena) */
                if (s->ngroups >= s->nbuckets && grow_table(s))
                    return DTM_ENOMEM;
                g2->next = s->table[h & (s->nbuckets - 1)];
                s->table[h & (s->nbuckets - 1)] = g2;
                s->ngroups++;
                continue;
            }
            g->count += g2->count;
            for (size_t i = 0; i < s->q->nmetrics; i++) {
                struct vals *v = &g2->vals[i];
                if (g2->n[i]) {
                    if (g->n[i] == 0 || g2->min[i] < g->min[i])
                        g->min[i] = g2->min[i];
                    if (g->n[i] == 0 || g2->max[i] > g->max[i])
                        g->max[i] = g2->max[i];
                    g->sum[i] += g2->sum[i];
                    g->n[i] += g2->n[i];
                }
                for (size_t k = 0; k < v->n; k++)
                    if (add_value(&g->vals[i], v->v[k]))
                        return DTM_ENOMEM;
                free(v->v);
                v->v = NULL;
                v->n = v->cap = 0;
            }
        }
    return DTM_OK;
}

static int scan_in_parts(struct dtm_store *st, const struct dtm_query *q, struct scan *s,
                         struct dtm_arena *arena2)
{
    struct part *p = calloc(1, sizeof(*p));
    pthread_t t;
    int rc;
    if (!p)
        return DTM_ENOMEM;
    /* one split point for both parts (records that arrive meanwhile fall on either side) */
    if (!st->ops->record_id_split || st->ops->record_id_split(st, &p->mid) != DTM_OK ||
        st->ops->reopen(st, &p->st) != DTM_OK) {
        free(p);
        return st->ops->record_scan_part(st, q->ds->code, q->from, q->to, INT64_MIN, INT64_MAX,
                                         one_record, s);
    }
    p->s.q = q;
    p->s.arena = arena2;
    memcpy(p->s.flen, s->flen, sizeof(s->flen));
    dtm_buf_init(&p->s.key, 1 << 20);
    if (pthread_create(&t, NULL, part_run, p) != 0) {
        rc = st->ops->record_scan_part(st, q->ds->code, q->from, q->to, INT64_MIN, INT64_MAX,
                                       one_record, s);
    } else {
        rc = st->ops->record_scan_part(st, q->ds->code, q->from, q->to, INT64_MIN, p->mid,
                                       one_record, s);
        pthread_join(t, NULL);
        if (rc == DTM_OK)
            rc = p->rc;
        if (rc == DTM_OK)
            rc = fold(s, &p->s);
    }
    /* groups that stayed in the second table (a failure): free their values */
    for (size_t b = 0; rc && b < p->s.nbuckets; b++)
        for (struct group *g = p->s.table[b]; g; g = g->next)
            for (size_t i = 0; i < DTM_STATS_MAX_METRICS; i++)
                free(g->vals[i].v);
    free(p->s.table);
    dtm_buf_free(&p->s.key);
    p->st->ops->close(p->st);
    free(p);
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmp_group(const void *a, const void *b)
{
    const struct group *x = *(const struct group *const *)a, *y = *(const struct group *const *)b;
    /* the group values first (the key without its trailing bucket), then the bucket */
    size_t xn = x->keylen - sizeof(int64_t), yn = y->keylen - sizeof(int64_t);
    int c = memcmp(x->key, y->key, DTM_MIN(xn, yn));
    if (c)
        return c;
    if (xn != yn)
        return xn < yn ? -1 : 1;
    return x->bucket < y->bucket ? -1 : x->bucket > y->bucket;
}

static char *fmt_num(struct dtm_arena *a, double x)
{
    char b[64];
    if (x == (double)(int64_t)x && x > -9e15 && x < 9e15)
        snprintf(b, sizeof(b), "%lld", (long long)x);
    else
        snprintf(b, sizeof(b), "%.15g", x);
    return dtm_arena_strndup(a, b, strlen(b));
}

static char *metric_cell(struct dtm_arena *a, const struct dtm_dataset *ds,
                         const struct dtm_metric *m, struct group *g, size_t i)
{
    switch (m->kind) {
    case DTM_M_COUNT:
        return fmt_num(a, (double)g->count);
    case DTM_M_SUM:
        return fmt_num(a, g->sum[i]);
    case DTM_M_AVG:
        return g->n[i] ? fmt_num(a, g->sum[i] / (double)g->n[i]) : NULL;
    case DTM_M_MIN:
        return g->n[i] ? fmt_num(a, g->min[i]) : NULL;
    case DTM_M_MAX:
        return g->n[i] ? fmt_num(a, g->max[i]) : NULL;
    case DTM_M_RATE:
        return g->count ? fmt_num(a, (double)g->n[i] / (double)g->count) : NULL;
    default: {
        struct vals *v = &g->vals[i];
        if (g->hist) {
            double x = dtm_hist_dense_quantile(&g->hist[i],
                                               m->kind == DTM_M_P50   ? 0.50
                                               : m->kind == DTM_M_P95 ? 0.95
                                                                      : 0.99,
                                               ds->fields[m->field].type == DTM_T_INTEGER,
                                               g->min[i], g->max[i]);
            return isnan(x) ? NULL : fmt_num(a, x);
        }
        double p = m->kind == DTM_M_P50 ? 0.50 : m->kind == DTM_M_P95 ? 0.95 : 0.99;
        size_t rank;
        if (!v->n)
            return NULL;
        qsort(v->v, v->n, sizeof(double), cmp_double);
        /* nearest rank: the smallest value with at least p of the values at or below it */
        rank = (size_t)((double)v->n * p + 0.999999999);
        return fmt_num(a, v->v[DTM_MAX(rank, 1) - 1]);
    }
    }
}

int dtm_query_run(struct dtm_store *st, const struct dtm_query *q, struct dtm_result *out)
{
    struct scan s = {.q = q};
    struct group **all = NULL;
    size_t k = 0, c;
    int64_t cube = 0, from_b = 0, to_b = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    dtm_arena_init(&out->arena, 1 << 16);
    dtm_arena_init(&out->arena2, 1 << 16);
    out->plan = "scan";
    s.arena = &out->arena;
    dtm_buf_init(&s.key, 1 << 20);
    for (size_t i = 0; i < q->ds->nfields && i < DTM_MAX_FIELDS; i++)
        s.flen[i] = strlen(q->ds->fields[i].name);
    if (choose_cube(st, q, &s, &cube, &from_b, &to_b)) {
        char plan[DTM_STATS_MAX_GROUP * DTM_NAME_MAX + 32];
        size_t used = (size_t)snprintf(plan, sizeof(plan), "cube=");
        for (size_t i = 0; i < s.ncdims && used < sizeof(plan); i++)
            used += (size_t)snprintf(plan + used, sizeof(plan) - used, "%s%s", i ? "+" : "",
                                     q->ds->fields[s.cdims[i]].name);
        if (used < sizeof(plan))
            snprintf(plan + used, sizeof(plan) - used, "; grain=%s",
                     s.grain == DTM_GRAIN_DAY ? "day" : "hour");
        out->plan = dtm_arena_strndup(&out->arena, plan, strlen(plan));
        s.cube = true;
        rc = out->plan ? cube_read(st, q, &s, cube, from_b, to_b) : DTM_ENOMEM;
    } else {
        bool stored_order = (q->from == INT64_MIN && q->to == INT64_MAX) || table_order(st, q);
        if (stored_order && st->ops->record_scan_part && st->ops->reopen)
            rc = scan_in_parts(st, q, &s, &out->arena2);
        else if (stored_order && q->from != INT64_MIN && q->to != INT64_MAX)
            rc = st->ops->record_scan_table(st, q->ds->code, q->from, q->to, one_record, &s);
        else
            rc = st->ops->record_scan(st, q->ds->code, q->from, q->to, false, one_record, &s);
    }
    if (rc)
        goto out;
    /* no group-by and no record: one row of zeros, as SQL's aggregate without GROUP BY */
    if (s.ngroups == 0 && q->ngroup == 0 && q->interval == DTM_I_NONE) {
        memset(s.fpresent, 0, sizeof(s.fpresent));
        if (!find_group(&s, 0)) {
            rc = DTM_ENOMEM;
            goto out;
        }
    }
    out->ncols = q->ngroup + (q->interval ? 1 : 0) + q->nmetrics;
    out->cols = dtm_arena_alloc(&out->arena, out->ncols * sizeof(char *));
    out->numeric = dtm_arena_alloc(&out->arena, out->ncols * sizeof(bool));
    all = malloc((s.ngroups + 1) * sizeof(*all));
    out->rows = dtm_arena_alloc(&out->arena, (s.ngroups + 1) * sizeof(char **));
    if (!out->cols || !out->numeric || !all || !out->rows) {
        rc = DTM_ENOMEM;
        goto out;
    }
    c = 0;
    for (size_t i = 0; i < q->ngroup; i++) {
        out->numeric[c] = false;
        out->cols[c++] = q->ds->fields[q->group[i]].name;
    }
    if (q->interval) {
        out->numeric[c] = false;
        out->cols[c++] = "period";
    }
    for (size_t i = 0; i < q->nmetrics; i++) {
        out->numeric[c] = true;
        out->cols[c++] = (char *)q->metrics[i].name;
    }
    for (size_t b = 0; b < s.nbuckets; b++)
        for (struct group *g = s.table[b]; g; g = g->next)
            all[k++] = g;
    qsort(all, k, sizeof(*all), cmp_group);
    for (size_t r = 0; r < k; r++) {
        struct group *g = all[r];
        char **row = dtm_arena_alloc(&out->arena, out->ncols * sizeof(char *));
        if (!row) {
            rc = DTM_ENOMEM;
            goto out;
        }
        c = 0;
        for (size_t i = 0; i < q->ngroup; i++)
            row[c++] = g->dimv[i];
        if (q->interval) {
            char lab[40];
            dtm_bucket_label(q->interval, g->bucket, lab, sizeof(lab));
            row[c++] = dtm_arena_strndup(&out->arena, lab, strlen(lab));
        }
        for (size_t i = 0; i < q->nmetrics; i++)
            row[c++] = metric_cell(&out->arena, q->ds, &q->metrics[i], g, i);
        out->rows[out->nrows++] = row;
    }
out:
    for (size_t b = 0; b < s.nbuckets; b++)
        for (struct group *g = s.table[b]; g; g = g->next)
            for (size_t i = 0; i < DTM_STATS_MAX_METRICS; i++) {
                free(g->vals[i].v);
                if (g->hist && i < q->nmetrics)
                    dtm_hist_dense_free(&g->hist[i]);
            }
    free(s.table);
    free(all);
    dtm_buf_free(&s.key);
    if (rc)
        dtm_result_free(out);
    return rc;
}

void dtm_result_free(struct dtm_result *r)
{
    dtm_arena_free(&r->arena);
    dtm_arena_free(&r->arena2);
    memset(r, 0, sizeof(*r));
}

void dtm_result_json(const struct dtm_result *r, struct dtm_buf *out)
{
    dtm_buf_addc(out, "{\"columns\":[");
    for (size_t j = 0; j < r->ncols; j++) {
        if (j)
            dtm_buf_addch(out, ',');
        dtm_buf_json_strc(out, r->cols[j]);
    }
    dtm_buf_addc(out, "],\"rows\":[");
    for (size_t i = 0; i < r->nrows; i++) {
        dtm_buf_addc(out, i ? ",[" : "[");
        for (size_t j = 0; j < r->ncols; j++) {
            const char *v = r->rows[i][j];
            if (j)
                dtm_buf_addch(out, ',');
            if (!v)
                dtm_buf_addc(out, "null");
            else if (r->numeric[j])
                dtm_buf_addc(out, v);
            else
                dtm_buf_json_strc(out, v);
        }
        dtm_buf_addch(out, ']');
    }
    dtm_buf_addc(out, "]}");
}

void dtm_result_csv(const struct dtm_result *r, struct dtm_buf *out)
{
    for (size_t j = 0; j < r->ncols; j++) {
        if (j)
            dtm_buf_addch(out, ',');
        dtm_buf_csv(out, dtm_str_c(r->cols[j]));
    }
    dtm_buf_addc(out, "\r\n");
    for (size_t i = 0; i < r->nrows; i++) {
        for (size_t j = 0; j < r->ncols; j++) {
            if (j)
                dtm_buf_addch(out, ',');
            if (r->rows[i][j])
                dtm_buf_csv(out, dtm_str_c(r->rows[i][j]));
        }
        dtm_buf_addc(out, "\r\n");
    }
}
