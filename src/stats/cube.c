/* stats/cube.c — live rollups (ARCHITECTURE "Rollups are cubes"). Each dataset declares cubes —
 * the dimension sets statistics are asked by — and each cube is kept per hour and per day in
 * UTC+07:00 as rows (cube, grain, bucket, dimension values) → count and, per measure, n, sum,
 * min, max and, for latency measures (unit ms or s), a log-linear histogram.
 *
 * The writer keeps one accumulator: every record of a group commit adds (or, for the old version
 * of an updated record, removes) its contribution in memory; before the commit one delta per
 * touched cube row goes to the store, sorted by key, merged into the stored row by the store
 * (SQLite: dtm_agg_merge as an SQL function in an upsert). A statistic is therefore exact and
 * current the moment the record's answer goes out.
 *
 * Hour rows are kept for the last DTM_CUBE_HOUR_DAYS local days (and the future): a record
 * older than that adds to its day rows only, and the planner answers hourly questions about
 * older periods from the records. Hourly questions are about recent operations (the dashboard,
 * a system's last 48 hours); a backfill of months of history would otherwise write about one
 * hour row per record for cubes as wide as agency × service (measured: 194 k records → 533 k
 * hour rows, the import 6 × slower), the no-compression case ARCHITECTURE warns about.
 *
 * Histogram: HDR-style log-linear buckets — 64 linear sub-buckets per power of two — so a bucket
 * is at most 1/64 of its lower bound wide and its midpoint is within 1/128 (0.8 %) of any value
 * in it. Written here rather than linked: Debian packages no HdrHistogram for C, and the bucket
 * function is eight lines; the storage format (varints, delta-coded bucket indexes) is ours.
 *
 * Min and max survive removals only approximately: when an update moves the minimum out of a
 * row, the row's minimum becomes the lower bound of its lowest non-empty histogram bucket (exact
 * for integers below 128, within 0.8 % above); measures without histogram keep the old extreme. */
#include "stats/stats.h"
#include "ingest/decode.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOUR_US 3600000000LL
#define DAY_US (24 * HOUR_US)
#define OFFSET_US (7 * HOUR_US) /* UTC+07:00 */
#define SUB 64                  /* linear sub-buckets per power of two */

/* ---- buckets of time */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int64_t dtm_cube_bucket(int grain, int64_t t_us)
{
    if (t_us == INT64_MIN)
        return INT64_MIN;
    return floor_div(t_us + OFFSET_US, grain == DTM_GRAIN_HOUR ? HOUR_US : DAY_US);
}

int64_t dtm_cube_bucket_start(int grain, int64_t bucket)
{
    return bucket * (grain == DTM_GRAIN_HOUR ? HOUR_US : DAY_US) - OFFSET_US;
}

int64_t dtm_cube_hour_ceiling(int64_t now_us)
{
    return dtm_cube_bucket_start(DTM_GRAIN_HOUR, dtm_cube_bucket(DTM_GRAIN_HOUR, now_us) + 25);
}

int64_t dtm_cube_hour_floor(int64_t now_us)
{
    return dtm_cube_bucket_start(DTM_GRAIN_DAY,
                                 dtm_cube_bucket(DTM_GRAIN_DAY, now_us) - (DTM_CUBE_HOUR_DAYS - 1));
}

/* ---- histogram buckets */

int32_t dtm_hist_index(double v)
{
    int e;
    double m;
    int32_t idx;
    if (v == 0 || !isfinite(v))
        return 0;
    m = frexp(fabs(v), &e); /* [0.5, 1) */
    if (e < -1000)
        e = -1000;
    if (e > 1100)
        e = 1100;
    idx = (int32_t)(e + 1024) * SUB + (int32_t)((m - 0.5) * 2 * SUB) + 1;
    return v < 0 ? -idx : idx;
}

void dtm_hist_bounds(int32_t idx, double *lo, double *hi)
{
    int32_t a = idx < 0 ? -idx : idx;
    int e, sub;
    double l, h;
    if (idx == 0) {
        *lo = *hi = 0;
        return;
    }
    a -= 1;
    e = a / SUB - 1024;
    sub = a % SUB;
    l = ldexp(0.5 + (double)sub / (2 * SUB), e);
    h = ldexp(0.5 + (double)(sub + 1) / (2 * SUB), e);
    if (idx < 0) {
        *lo = -h;
        *hi = -l;
    } else {
        *lo = l;
        *hi = h;
    }
}

double dtm_hist_value(int32_t idx, bool integer)
{
    double lo, hi;
    dtm_hist_bounds(idx, &lo, &hi);
    if (integer && hi - lo <= 1) {
        double c = ceil(lo); /* the only integer the bucket can hold */
        if (c < hi || lo == hi)
            return c;
    }
    return (lo + hi) / 2;
}

/* ---- aggregates and their encoding */

bool dtm_cube_has_hist(const struct dtm_field_def *f)
{
    return f->unit && (strcmp(f->unit, "ms") == 0 || strcmp(f->unit, "s") == 0);
}

static void put_uv(struct dtm_buf *b, uint64_t v)
{
    uint8_t t[10];
    size_t n = 0;
    while (v >= 0x80) {
        t[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    t[n++] = (uint8_t)v;
    dtm_buf_add(b, t, n);
}

static void put_sv(struct dtm_buf *b, int64_t v)
{
    put_uv(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

static void put_f64(struct dtm_buf *b, double d)
{
    uint8_t t[8];
    uint64_t u;
    memcpy(&u, &d, 8);
    for (int i = 0; i < 8; i++)
        t[i] = (uint8_t)(u >> (8 * i));
    dtm_buf_add(b, t, 8);
}

struct rd {
    const uint8_t *p, *end;
    bool bad;
};

static uint64_t get_uv(struct rd *r)
{
    uint64_t v = 0;
    for (int s = 0; s < 64; s += 7) {
        if (r->p >= r->end) {
            r->bad = true;
            return 0;
        }
        uint8_t c = *r->p++;
        v |= (uint64_t)(c & 0x7f) << s;
        if (!(c & 0x80))
            return v;
    }
    r->bad = true;
    return 0;
}

static int64_t get_sv(struct rd *r)
{
    uint64_t u = get_uv(r);
    return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

static double get_f64(struct rd *r)
{
    uint64_t u = 0;
    double d;
    if (r->end - r->p < 8) {
        r->bad = true;
        return 0;
    }
    for (int i = 0; i < 8; i++)
        u |= (uint64_t)r->p[i] << (8 * i);
    r->p += 8;
    memcpy(&d, &u, 8);
    return d;
}

void dtm_cube_agg_encode(const struct dtm_cube_agg *a, struct dtm_buf *b)
{
    put_uv(b, a->nm);
    for (uint32_t i = 0; i < a->nm; i++) {
        const struct dtm_cube_magg *m = &a->m[i];
        int32_t prev = 0;
        dtm_buf_addch(b, (char)((m->removed ? 1 : 0) | (m->has_hist ? 2 : 0)));
        put_sv(b, m->n);
        put_f64(b, m->sum);
        put_f64(b, m->min);
        put_f64(b, m->max);
        if (!m->has_hist)
            continue;
        put_uv(b, m->nh);
        for (uint32_t k = 0; k < m->nh; k++) {
            put_sv(b, (int64_t)m->h[k].idx - prev);
            put_sv(b, m->h[k].cnt);
            prev = m->h[k].idx;
        }
    }
}

/* Decodes into a (histograms malloc'd; free with agg_release). DTM_EMALFORMED on a bad blob. */
void dtm_cube_agg_release(struct dtm_cube_agg *a)
{
    for (uint32_t i = 0; i < a->nm; i++)
        free(a->m[i].h);
    if (!a->borrowed)
        free(a->m);
    a->m = NULL;
    a->nm = 0;
}

int dtm_cube_agg_decode(const void *p, size_t n, struct dtm_cube_agg *a)
{
    return dtm_cube_agg_read(p, n, UINT32_MAX, NULL, a);
}

int dtm_cube_agg_read(const void *p, size_t n, uint32_t hist_mask, struct dtm_cube_magg *room,
                      struct dtm_cube_agg *a)
{
    struct rd r = {p, (const uint8_t *)p + n, false};
    uint64_t nm = get_uv(&r);
    memset(a, 0, sizeof(*a));
    if (r.bad || nm > DTM_CUBE_MEASURES)
        return DTM_EMALFORMED;
    if (room) {
        memset(room, 0, nm * sizeof(*room));
        a->m = room;
        a->borrowed = true;
    } else if (nm && !(a->m = calloc(nm, sizeof(*a->m)))) {
        return DTM_ENOMEM;
    }
    a->nm = (uint32_t)nm;
    for (uint32_t i = 0; i < a->nm && !r.bad; i++) {
        struct dtm_cube_magg *m = &a->m[i];
        int32_t prev = 0;
        uint64_t nh;
        uint8_t flags;
        if (r.p >= r.end) {
            r.bad = true;
            break;
        }
        flags = *r.p++;
        m->removed = flags & 1;
        m->has_hist = flags & 2;
        m->n = get_sv(&r);
        m->sum = get_f64(&r);
        m->min = get_f64(&r);
        m->max = get_f64(&r);
        if (!m->has_hist)
            continue;
        nh = get_uv(&r);
        if (r.bad || nh > (uint64_t)(r.end - r.p))
            break;
        if (!(hist_mask & (1u << i))) { /* not asked: skipped */
            for (uint64_t k = 0; k < 2 * nh && !r.bad; k++)
                (void)get_uv(&r);
            continue;
        }
        if (nh && !(m->h = malloc(nh * sizeof(*m->h)))) {
            dtm_cube_agg_release(a);
            return DTM_ENOMEM;
        }
        m->nh = m->caph = (uint32_t)nh;
        for (uint32_t k = 0; k < m->nh; k++) {
            prev = (int32_t)(prev + get_sv(&r));
            m->h[k].idx = prev;
            m->h[k].cnt = get_sv(&r);
        }
    }
    if (r.bad) {
        dtm_cube_agg_release(a);
        return DTM_EMALFORMED;
    }
    return DTM_OK;
}

/* Adds the bins of src into dst (both sorted); zero counts are dropped. malloc'd result. */
int dtm_hist_merge(struct dtm_cube_magg *dst, const struct dtm_hbin *src, uint32_t ns)
{
    struct dtm_hbin *out;
    uint32_t i = 0, j = 0, k = 0;
    if (!ns)
        return DTM_OK;
    if (!(out = malloc(((size_t)dst->nh + ns) * sizeof(*out))))
        return DTM_ENOMEM;
    while (i < dst->nh || j < ns) {
        struct dtm_hbin b;
        if (j == ns || (i < dst->nh && dst->h[i].idx < src[j].idx)) {
            b = dst->h[i++];
        } else if (i == dst->nh || src[j].idx < dst->h[i].idx) {
            b = src[j++];
        } else {
            b = dst->h[i++];
            b.cnt += src[j++].cnt;
        }
        if (b.cnt != 0)
            out[k++] = b;
    }
    free(dst->h);
    dst->h = out;
    dst->nh = dst->caph = k;
    return DTM_OK;
}

/* Folds b into a (a's histograms malloc'd). */
static int agg_fold(struct dtm_cube_agg *a, const struct dtm_cube_agg *b)
{
    int rc;
    a->count += b->count;
    for (uint32_t i = 0; i < a->nm && i < b->nm; i++) {
        struct dtm_cube_magg *x = &a->m[i];
        const struct dtm_cube_magg *y = &b->m[i];
        x->n += y->n;
        x->sum += y->sum;
        x->min = fmin(x->min, y->min);
        x->max = fmax(x->max, y->max);
        x->has_hist = x->has_hist || y->has_hist;
        if ((rc = dtm_hist_merge(x, y->h, y->nh)))
            return rc;
        if (y->removed && x->nh) {
            double lo, hi, l2, h2;
            dtm_hist_bounds(x->h[0].idx, &lo, &h2);
            dtm_hist_bounds(x->h[x->nh - 1].idx, &l2, &hi);
            x->min = fmax(x->min, lo);
            x->max = fmin(x->max, hi);
        }
        if (x->n <= 0) {
            x->n = 0;
            x->sum = 0;
            x->min = INFINITY;
            x->max = -INFINITY;
        }
        x->removed = false;
    }
    return DTM_OK;
}

int dtm_agg_merge(const void *a, size_t an, const void *b, size_t bn, struct dtm_buf *out)
{
    struct dtm_cube_agg x, y;
    int rc;
    if ((rc = dtm_cube_agg_decode(a, an, &x)))
        return rc;
    if ((rc = dtm_cube_agg_decode(b, bn, &y))) {
        dtm_cube_agg_release(&x);
        return rc;
    }
    if (y.nm > x.nm) { /* a measure was added to the definition: the stored row lacks it */
        struct dtm_cube_magg *m = realloc(x.m, y.nm * sizeof(*m));
        if (!m) {
            rc = DTM_ENOMEM;
            goto out;
        }
        x.m = m;
        for (uint32_t i = x.nm; i < y.nm; i++)
            x.m[i] = (struct dtm_cube_magg){.min = INFINITY, .max = -INFINITY};
        x.nm = y.nm;
    }
    if ((rc = agg_fold(&x, &y)) == DTM_OK)
        dtm_cube_agg_encode(&x, out);
out:
    dtm_cube_agg_release(&x);
    dtm_cube_agg_release(&y);
    return rc ? rc : out->err;
}

/* ---- facts: what a record contributes */

static int facts_alloc(const struct dtm_dataset *ds, struct dtm_arena *a, struct dtm_facts *f)
{
    memset(f, 0, sizeof(*f));
    f->ds = ds;
    f->dim = dtm_arena_alloc(a, (ds->ndims + 1) * sizeof(*f->dim));
    f->m = dtm_arena_alloc(a, (ds->nmeasures + 1) * sizeof(*f->m));
    if (!f->dim || !f->m)
        return DTM_ENOMEM;
    memset(f->dim, 0, (ds->ndims + 1) * sizeof(*f->dim));
    return DTM_OK;
}

int dtm_facts_make(const struct dtm_record *rec, struct dtm_arena *a, const struct dtm_facts **out)
{
    const struct dtm_dataset *ds = rec->ds;
    struct dtm_facts *f = dtm_arena_alloc(a, sizeof(*f));
    if (!f || facts_alloc(ds, a, f))
        return DTM_ENOMEM;
    for (size_t i = 0; i < ds->ndims; i++) {
        const struct dtm_value *v = &rec->v[ds->dims[i]];
        if (!v->present)
            continue;
        /* a copy: the value may point into an input that is given back before the commit */
        if (!(f->dim[i].p = dtm_arena_strndup(a, v->text.p, v->text.n)))
            return DTM_ENOMEM;
        f->dim[i].n = v->text.n;
    }
    for (size_t i = 0; i < ds->nmeasures && i < DTM_CUBE_MEASURES; i++) {
        const struct dtm_value *v = &rec->v[ds->measures[i]];
        if (v->present) {
            f->m[i] = v->d;
            f->mpresent |= 1u << i;
        }
    }
    *out = f;
    return DTM_OK;
}

int dtm_facts_parse(const struct dtm_dataset *ds, struct dtm_str content, struct dtm_arena *a,
                    struct dtm_facts *f, int64_t *event_time)
{
    struct dtm_in_record *rec = malloc(sizeof(*rec));
    struct dtm_decode_error err;
    struct dtm_decoder *d;
    int rc = DTM_OK;
    *event_time = INT64_MIN;
    if (!rec || facts_alloc(ds, a, f)) {
        free(rec);
        return DTM_ENOMEM;
    }
    if (!(d = dtm_decoder_open(DTM_FMT_JSON, content.p, content.n))) {
        free(rec);
        return DTM_ENOMEM;
    }
    if (dtm_decoder_next(d, rec, &err) != 1) {
        rc = DTM_EMALFORMED;
        goto out;
    }
    for (size_t k = 0; k < rec->nfields; k++) {
        const struct dtm_in_field *fl = &rec->f[k];
        if (fl->kind == DTM_IN_NULL)
            continue;
        for (size_t i = 0; i < ds->ndims; i++)
            if (dtm_str_eqc(fl->name, ds->fields[ds->dims[i]].name)) {
                f->dim[i].p = dtm_arena_strndup(a, fl->value.p, fl->value.n);
                f->dim[i].n = fl->value.n;
                if (!f->dim[i].p)
                    rc = DTM_ENOMEM;
            }
        for (size_t i = 0; i < ds->nmeasures && i < DTM_CUBE_MEASURES; i++)
            if (dtm_str_eqc(fl->name, ds->fields[ds->measures[i]].name)) {
                char num[64];
                size_t n = DTM_MIN(fl->value.n, sizeof(num) - 1);
                memcpy(num, fl->value.p, n);
                num[n] = '\0';
                f->m[i] = strtod(num, NULL);
                f->mpresent |= 1u << i;
            }
        if (ds->time_field >= 0 && dtm_str_eqc(fl->name, ds->fields[ds->time_field].name)) {
            int64_t days;
            if (ds->fields[ds->time_field].type == DTM_T_DATE) {
                if (dtm_date_parse(fl->value, &days) == DTM_OK)
                    *event_time = dtm_day_start(days);
            } else if (dtm_time_parse(fl->value, event_time) != DTM_OK) {
                *event_time = INT64_MIN;
            }
        }
    }
out:
    dtm_decoder_close(d);
    free(rec);
    return rc;
}

/* ---- the accumulator of one group commit */

struct entry {
    uint64_t hash;
    int64_t cube;
    int64_t bucket;
    int grain;
    uint32_t keylen;
    uint8_t *key; /* encoded dimension values */
    struct dtm_cube_agg agg;
};

struct cache {
    const struct dtm_dataset *ds;
    int64_t ids[DTM_CUBE_MAX];
};

/* The hash beside the entry: a probe compares hashes in one cache line and touches an entry
 * (elsewhere in memory) only when they match. */
struct slot {
    uint64_t hash;
    struct entry *e;
};

struct dtm_cube_acc {
    struct dtm_arena arena;
    struct slot *table; /* open addressing, linear probing, at most half full */
    size_t nbuckets, n;
    struct entry **all; /* the n entries in insertion order (room for nbuckets / 2) */
    struct cache cache[32];
    size_t ncache;
    struct dtm_buf key, blob;
    int64_t hour_floor;   /* records from here on also go to hour rows … */
    int64_t hour_ceiling; /* … until here */
};

struct dtm_cube_acc *dtm_cube_acc_new(void)
{
    struct dtm_cube_acc *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    dtm_arena_init(&a->arena, 1 << 20);
    dtm_buf_init(&a->key, 1 << 16);
    dtm_buf_init(&a->blob, 1 << 24);
    return a;
}

static void acc_reset(struct dtm_cube_acc *a)
{
    free(a->table);
    a->table = NULL;
    a->nbuckets = a->n = 0;
    free(a->all);
    a->all = NULL;
    dtm_arena_reset(&a->arena);
}

void dtm_cube_acc_clear(struct dtm_cube_acc *a)
{
    acc_reset(a);
    a->ncache = 0; /* ids created in a rolled-back transaction do not exist */
}

void dtm_cube_acc_free(struct dtm_cube_acc *a)
{
    if (!a)
        return;
    acc_reset(a);
    dtm_arena_free(&a->arena);
    dtm_buf_free(&a->key);
    dtm_buf_free(&a->blob);
    free(a);
}

/* "system_code,status,error_code": a cube's identity in the store */
static void cube_sig(const struct dtm_dataset *ds, size_t c, char *out, size_t outsz)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t k = 0; k < ds->cubes[c].n && used < outsz; k++)
        used += (size_t)snprintf(out + used, outsz - used, "%s%s", k ? "," : "",
                                 ds->fields[ds->cubes[c].dims[k]].name);
}

int dtm_cube_ids(struct dtm_store *st, const struct dtm_dataset *ds, bool create, int64_t *ids,
                 bool *complete)
{
    for (size_t c = 0; c < ds->ncubes && c < DTM_CUBE_MAX; c++) {
        char sig[DTM_STATS_MAX_GROUP * DTM_NAME_MAX];
        int rc;
        cube_sig(ds, c, sig, sizeof(sig));
        rc = st->ops->cube_id(st, ds->code, sig, create, &ids[c], &complete[c]);
        if (rc == DTM_ENOTFOUND) {
            ids[c] = 0;
            complete[c] = false;
        } else if (rc) {
            return rc;
        }
    }
    return DTM_OK;
}

bool dtm_cube_acc_full(const struct dtm_cube_acc *a)
{
    return a->n >= DTM_CUBE_ACC_MAX;
}

void dtm_cube_acc_set_now(struct dtm_cube_acc *a, int64_t now_us)
{
    a->hour_floor = dtm_cube_hour_floor(now_us);
    a->hour_ceiling = dtm_cube_hour_ceiling(now_us);
}

int dtm_cube_acc_prepare(struct dtm_cube_acc *a, struct dtm_store *st, const struct dtm_dataset *ds)
{
    struct cache *c;
    bool complete[DTM_CUBE_MAX];
    int rc;
    for (size_t i = 0; i < a->ncache; i++)
        if (a->cache[i].ds == ds)
            return DTM_OK;
    if (a->ncache == DTM_ARRAY_LEN(a->cache))
        a->ncache = 0;
    c = &a->cache[a->ncache];
    c->ds = ds;
    if ((rc = dtm_cube_ids(st, ds, true, c->ids, complete)))
        return rc;
    a->ncache++;
    return DTM_OK;
}

/* Eight bytes at a time, multiply and fold (the keys are short and ours; an attacker choosing
 * dimension values can at worst make one group commit slower). */
static uint64_t hash_key(const void *p, size_t n, uint64_t seed)
{
    const uint8_t *s = p;
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (seed * 0xC2B2AE3D27D4EB4FULL) ^ n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0x9E3779B97F4A7C15ULL;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, s, n);
        h = (h ^ w) * 0x9E3779B97F4A7C15ULL;
    }
    h ^= h >> 32;
    h *= 0xD6E8FEB86659FD93ULL;
    return h ^ (h >> 32);
}

static int grow(struct dtm_cube_acc *a)
{
    size_t nb = a->nbuckets ? a->nbuckets * 2 : 4096;
    struct slot *t = calloc(nb, sizeof(*t));
    struct entry **all = realloc(a->all, nb / 2 * sizeof(*all));
    if (!t || !all) {
        free(t);
        if (all)
            a->all = all;
        return DTM_ENOMEM;
    }
    a->all = all;
    for (size_t i = 0; i < a->nbuckets; i++)
        if (a->table[i].e) {
            size_t k = a->table[i].hash & (nb - 1);
            while (t[k].e)
                k = (k + 1) & (nb - 1);
            t[k] = a->table[i];
        }
    free(a->table);
    a->table = t;
    a->nbuckets = nb;
    return DTM_OK;
}

static void encode_dims(struct dtm_buf *b, const struct dtm_facts *f, const int *cdims, size_t n)
{
    const struct dtm_dataset *ds = f->ds;
    dtm_buf_reset(b);
    for (size_t k = 0; k < n; k++) {
        size_t pos = 0;
        while (pos < ds->ndims && ds->dims[pos] != cdims[k])
            pos++;
        if (pos == ds->ndims || !f->dim[pos].p) {
            put_uv(b, 0);
            continue;
        }
        put_uv(b, f->dim[pos].n + 1);
        dtm_buf_add(b, f->dim[pos].p, f->dim[pos].n);
    }
}

void dtm_cube_dims_prefix(struct dtm_buf *b, struct dtm_str first)
{
    put_uv(b, first.n + 1);
    dtm_buf_add(b, first.p, first.n);
}

int dtm_cube_dims_decode(const void *p, size_t n, struct dtm_str *out, size_t max, size_t *count)
{
    struct rd r = {p, (const uint8_t *)p + n, false};
    size_t k = 0;
    while (r.p < r.end) {
        uint64_t len = get_uv(&r);
        if (r.bad || k == max)
            return DTM_EMALFORMED;
        if (len == 0) {
            out[k++] = (struct dtm_str){NULL, 0};
            continue;
        }
        if (len - 1 > (uint64_t)(r.end - r.p))
            return DTM_EMALFORMED;
        out[k++] = (struct dtm_str){(const char *)r.p, (size_t)(len - 1)};
        r.p += len - 1;
    }
    *count = k;
    return DTM_OK;
}

/* Appends a value's bin; the accumulator's histograms are sorted and combined at the flush
 * (normalize): an append is cheaper than keeping them sorted on every record. */
static int add_value(struct dtm_arena *ar, struct dtm_cube_magg *m, double x, int sign)
{
    if (m->nh == m->caph) {
        uint32_t nc = m->caph ? m->caph * 2 : 4;
        struct dtm_hbin *h = dtm_arena_alloc(ar, nc * sizeof(*h));
        if (!h)
            return DTM_ENOMEM;
        if (m->nh)
            memcpy(h, m->h, m->nh * sizeof(*h));
        m->h = h; /* the old array stays in the arena until the commit */
        m->caph = nc;
    }
    m->h[m->nh++] = (struct dtm_hbin){dtm_hist_index(x), sign};
    return DTM_OK;
}

static int cmp_bin(const void *x, const void *y)
{
    int32_t a = ((const struct dtm_hbin *)x)->idx, b = ((const struct dtm_hbin *)y)->idx;
    return a < b ? -1 : a > b;
}

/* Sorts an accumulator histogram's appended bins and combines equal ones (zeros dropped). */
static void normalize(struct dtm_cube_magg *m)
{
    uint32_t k = 0;
    if (m->nh > 1)
        qsort(m->h, m->nh, sizeof(*m->h), cmp_bin);
    for (uint32_t i = 0; i < m->nh; i++) {
        if (k && m->h[k - 1].idx == m->h[i].idx)
            m->h[k - 1].cnt += m->h[i].cnt;
        else
            m->h[k++] = m->h[i];
        if (m->h[k - 1].cnt == 0 && (i + 1 == m->nh || m->h[i + 1].idx != m->h[i].idx))
            k--;
    }
    m->nh = k;
}

static int contribute(struct dtm_cube_acc *a, int64_t cube, int grain, int64_t bucket,
                      const struct dtm_facts *f, int sign)
{
    const struct dtm_dataset *ds = f->ds;
    uint64_t h = hash_key(a->key.p, a->key.n, (uint64_t)cube * 31 + (uint64_t)bucket * 2 + grain);
    struct entry *e = NULL;
    size_t k;
    if (a->n >= a->nbuckets / 2 && grow(a))
        return DTM_ENOMEM;
    for (k = h & (a->nbuckets - 1); a->table[k].e; k = (k + 1) & (a->nbuckets - 1)) {
        struct entry *x = a->table[k].e;
        if (a->table[k].hash == h && x->cube == cube && x->bucket == bucket && x->grain == grain &&
            x->keylen == a->key.n && memcmp(x->key, a->key.p, a->key.n) == 0) {
            e = x;
            break;
        }
    }
    if (!e) {
        /* a gap mark counts records, nothing else */
        size_t nm = grain == DTM_GRAIN_GAP ? 0 : DTM_MIN(ds->nmeasures, (size_t)DTM_CUBE_MEASURES);
        if (!(e = dtm_arena_alloc(&a->arena, sizeof(*e))))
            return DTM_ENOMEM;
        memset(e, 0, sizeof(*e));
        e->hash = h;
        e->cube = cube;
        e->bucket = bucket;
        e->grain = grain;
        e->keylen = (uint32_t)a->key.n;
        e->key = (uint8_t *)dtm_arena_strndup(&a->arena, a->key.p, a->key.n);
        e->agg.nm = (uint32_t)nm;
        e->agg.m = dtm_arena_alloc(&a->arena, (nm + 1) * sizeof(struct dtm_cube_magg));
        if (!e->key || !e->agg.m)
            return DTM_ENOMEM;
        for (size_t i = 0; i < nm; i++)
            e->agg.m[i] =
                (struct dtm_cube_magg){.min = INFINITY,
                                       .max = -INFINITY,
                                       .has_hist = dtm_cube_has_hist(&ds->fields[ds->measures[i]])};
        a->table[k] = (struct slot){h, e};
        a->all[a->n++] = e;
    }
    e->agg.count += sign;
    for (uint32_t i = 0; i < e->agg.nm; i++) {
        struct dtm_cube_magg *m = &e->agg.m[i];
        double x = f->m[i];
        if (!(f->mpresent & (1u << i)))
            continue;
        m->n += sign;
        m->sum += sign * x;
        if (sign > 0) {
            m->min = fmin(m->min, x);
            m->max = fmax(m->max, x);
        } else {
            m->removed = true;
        }
        if (m->has_hist && add_value(&a->arena, m, x, sign))
            return DTM_ENOMEM;
    }
    return DTM_OK;
}

static int acc_add(struct dtm_cube_acc *a, const struct dtm_facts *f, int64_t event_time, int sign,
                   uint32_t only)
{
    const struct dtm_dataset *ds = f->ds;
    const struct cache *c = NULL;
    for (size_t i = 0; i < a->ncache; i++)
        if (a->cache[i].ds == ds)
            c = &a->cache[i];
    bool hourly =
        event_time != INT64_MIN && event_time >= a->hour_floor && event_time < a->hour_ceiling;
    bool gap = event_time != INT64_MIN && event_time >= a->hour_ceiling;
    if (!c)
        return DTM_EINVAL; /* dtm_cube_acc_prepare was not called for this dataset */
    for (size_t k = 0; k < ds->ncubes && k < DTM_CUBE_MAX; k++) {
        int rc;
        if (!(only & (1u << k)))
            continue;
        encode_dims(&a->key, f, ds->cubes[k].dims, ds->cubes[k].n);
        if (a->key.err)
            return a->key.err;
        for (int g = hourly ? DTM_GRAIN_HOUR : DTM_GRAIN_DAY; g <= DTM_GRAIN_DAY; g++)
            if ((rc = contribute(a, c->ids[k], g, dtm_cube_bucket(g, event_time), f, sign)))
                return rc;
        if (gap) {
            dtm_buf_reset(&a->key);
            if ((rc = contribute(a, c->ids[k], DTM_GRAIN_GAP,
                                 dtm_cube_bucket(DTM_GRAIN_HOUR, event_time), f, sign)))
                return rc;
        }
    }
    return DTM_OK;
}

int dtm_cube_acc_add(struct dtm_cube_acc *a, const struct dtm_facts *f, int64_t event_time,
                     int sign)
{
    return acc_add(a, f, event_time, sign, UINT32_MAX);
}

/* ---- deltas handed to the rollup thread (ingest/writer.c)
 *
 * A drained accumulator is a flat run of rows, each: u32 size of the rest | i64 cube | i64 bucket |
 * u8 grain | u32 keylen | key | i64 n | u32 agglen | agg (native byte order: the bytes never
 * leave the process). About 100 bytes a row instead of the accumulator's 300. */

struct dtm_cube_flat {
    int64_t cube, bucket, n;
    int grain;
    uint32_t keylen, agglen;
    const uint8_t *key, *agg;
};

int dtm_cube_acc_drain(struct dtm_cube_acc *a, struct dtm_buf *out)
{
    int rc = DTM_OK;
    for (size_t i = 0; i < a->n && rc == DTM_OK; i++) {
        struct entry *e = a->all[i];
        bool empty = e->agg.count == 0;
        uint32_t size, agglen;
        uint8_t grain = (uint8_t)e->grain;
        for (uint32_t m = 0; m < e->agg.nm; m++)
            normalize(&e->agg.m[m]);
        for (uint32_t m = 0; m < e->agg.nm && empty; m++)
            empty = e->agg.m[m].n == 0 && e->agg.m[m].nh == 0 && e->agg.m[m].sum == 0;
        if (empty)
            continue; /* a record moved within the same row: nothing changes */
        dtm_buf_reset(&a->blob);
        dtm_cube_agg_encode(&e->agg, &a->blob);
        if ((rc = a->blob.err))
            break;
        agglen = (uint32_t)a->blob.n;
        size = 8 + 8 + 1 + 4 + e->keylen + 8 + 4 + agglen;
        dtm_buf_add(out, &size, 4);
        dtm_buf_add(out, &e->cube, 8);
        dtm_buf_add(out, &e->bucket, 8);
        dtm_buf_add(out, &grain, 1);
        dtm_buf_add(out, &e->keylen, 4);
        if (e->keylen)
            dtm_buf_add(out, e->key, e->keylen);
        dtm_buf_add(out, &e->agg.count, 8);
        dtm_buf_add(out, &agglen, 4);
        dtm_buf_add(out, a->blob.p, agglen);
        rc = out->err;
    }
    acc_reset(a);
    return rc;
}

static int cmp_flat(const void *x, const void *y)
{
    const struct dtm_cube_flat *a = x, *b = y;
    int c;
    if (a->cube != b->cube)
        return a->cube < b->cube ? -1 : 1;
    if (a->grain != b->grain)
        return a->grain - b->grain;
    if (a->bucket != b->bucket)
        return a->bucket < b->bucket ? -1 : 1;
    c = memcmp(a->key, b->key, DTM_MIN(a->keylen, b->keylen));
    return c ? c : (int)a->keylen - (int)b->keylen;
}

/* Reads the rows of one drained run into rows[] (grown as needed). */
static int flat_rows(const struct dtm_buf *run, struct dtm_cube_flat **rows, size_t *n, size_t *cap)
{
    const uint8_t *p = (const uint8_t *)run->p, *end = p + run->n;
    while (p < end) {
        struct dtm_cube_flat f;
        uint32_t size;
        uint8_t grain;
        if (end - p < 4)
            return DTM_EINVAL;
        memcpy(&size, p, 4);
        p += 4;
        if ((size_t)(end - p) < size || size < 33)
            return DTM_EINVAL;
        memcpy(&f.cube, p, 8);
        memcpy(&f.bucket, p + 8, 8);
        memcpy(&grain, p + 16, 1);
        memcpy(&f.keylen, p + 17, 4);
        if (f.keylen > size - 33)
            return DTM_EINVAL;
        f.key = p + 21;
        memcpy(&f.n, p + 21 + f.keylen, 8);
        memcpy(&f.agglen, p + 29 + f.keylen, 4);
        if (f.agglen != size - 33 - f.keylen)
            return DTM_EINVAL;
        f.agg = p + 33 + f.keylen;
        f.grain = grain;
        if (dtm_array_reserve(rows, *n, cap, sizeof(**rows)))
            return DTM_ENOMEM;
        (*rows)[(*n)++] = f;
        p += size;
    }
    return DTM_OK;
}

int dtm_cube_runs_apply(struct dtm_store *st, const struct dtm_buf *const *runs, size_t nruns,
                        struct dtm_cube_scratch *sc)
{
    struct dtm_cube_flat *rows;
    size_t n = 0;
    int rc = DTM_OK;
    for (size_t i = 0; i < nruns && rc == DTM_OK; i++)
        rc = flat_rows(runs[i], &sc->rows, &n, &sc->cap);
    if (rc || n == 0)
        return rc;
    rows = sc->rows;
    /* in key order: consecutive upserts touch neighbouring pages, and the deltas of one row from
     * several group commits are merged first (one upsert each) */
    qsort(rows, n, sizeof(*rows), cmp_flat);
    for (size_t i = 0; i < n && rc == DTM_OK;) {
        size_t j = i + 1;
        int64_t count = rows[i].n;
        const void *agg = rows[i].agg;
        size_t agglen = rows[i].agglen;
        for (; j < n && cmp_flat(&rows[i], &rows[j]) == 0; j++) {
            struct dtm_buf *dst = agg == sc->merged[0].p ? &sc->merged[1] : &sc->merged[0];
            dtm_buf_reset(dst);
            if ((rc = dtm_agg_merge(agg, agglen, rows[j].agg, rows[j].agglen, dst)))
                return rc;
            count += rows[j].n;
            agg = dst->p;
            agglen = dst->n;
        }
        rc = st->ops->cube_apply(st, rows[i].cube, rows[i].grain, rows[i].bucket, rows[i].key,
                                 rows[i].keylen, count, agg, agglen);
        i = j;
    }
    return rc;
}

void dtm_cube_scratch_init(struct dtm_cube_scratch *sc)
{
    memset(sc, 0, sizeof(*sc));
    dtm_buf_init(&sc->merged[0], 1 << 24);
    dtm_buf_init(&sc->merged[1], 1 << 24);
}

void dtm_cube_scratch_free(struct dtm_cube_scratch *sc)
{
    free(sc->rows);
    dtm_buf_free(&sc->merged[0]);
    dtm_buf_free(&sc->merged[1]);
    memset(sc, 0, sizeof(*sc));
}

int dtm_cube_acc_flush(struct dtm_cube_acc *a, struct dtm_store *st)
{
    struct dtm_cube_scratch sc;
    struct dtm_buf run;
    const struct dtm_buf *runs[1] = {&run};
    int rc;
    if (!a->n)
        return DTM_OK;
    dtm_buf_init(&run, (size_t)1 << 30);
    dtm_cube_scratch_init(&sc);
    if ((rc = dtm_cube_acc_drain(a, &run)) == DTM_OK)
        rc = dtm_cube_runs_apply(st, runs, 1, &sc);
    dtm_cube_scratch_free(&sc);
    dtm_buf_free(&run);
    return rc;
}

/* ---- reading */

int dtm_hist_dense_add(struct dtm_hist_dense *d, const struct dtm_hbin *b, uint32_t nb)
{
    int64_t lo, hi;
    if (!nb)
        return DTM_OK;
    lo = b[0].idx; /* bins are sorted */
    hi = b[nb - 1].idx;
    if (!d->c || lo < d->lo || hi >= (int64_t)d->lo + d->n) {
        /* grow with slack on both sides; the index range is bounded (±136 000), so is this */
        int64_t nlo = d->c ? (lo < d->lo ? lo - 64 : d->lo) : lo - 64;
        int64_t nhi =
            d->c ? (hi >= (int64_t)d->lo + d->n ? hi + 64 : (int64_t)d->lo + d->n - 1) : hi + 64;
        uint32_t nn = (uint32_t)(nhi - nlo + 1);
        int64_t *c = calloc(nn, sizeof(*c));
        if (!c)
            return DTM_ENOMEM;
        if (d->c)
            memcpy(c + (d->lo - nlo), d->c, d->n * sizeof(*c));
        free(d->c);
        d->c = c;
        d->lo = (int32_t)nlo;
        d->n = nn;
    }
    for (uint32_t k = 0; k < nb; k++)
        d->c[b[k].idx - d->lo] += b[k].cnt;
    return DTM_OK;
}

double dtm_hist_dense_quantile(const struct dtm_hist_dense *d, double p, bool integer, double min,
                               double max)
{
    int64_t total = 0, rank, seen = 0;
    for (uint32_t k = 0; k < d->n; k++)
        total += d->c[k];
    if (total <= 0)
        return NAN;
    rank = (int64_t)ceil((double)total * p - 1e-9); /* nearest rank, as the scan */
    if (rank < 1)
        rank = 1;
    for (uint32_t k = 0; k < d->n; k++) {
        seen += d->c[k];
        if (d->c[k] > 0 && seen >= rank)
            return fmin(fmax(dtm_hist_value(d->lo + (int32_t)k, integer), min), max);
    }
    return max;
}

void dtm_hist_dense_free(struct dtm_hist_dense *d)
{
    free(d->c);
    memset(d, 0, sizeof(*d));
}

double dtm_hist_quantile(const struct dtm_cube_magg *m, double p, bool integer)
{
    int64_t total = 0, rank, seen = 0;
    for (uint32_t k = 0; k < m->nh; k++)
        total += m->h[k].cnt;
    if (total <= 0)
        return NAN;
    /* nearest rank, as the record scan computes it */
    rank = (int64_t)ceil((double)total * p - 1e-9);
    if (rank < 1)
        rank = 1;
    for (uint32_t k = 0; k < m->nh; k++) {
        seen += m->h[k].cnt;
        if (seen >= rank) {
            double v = dtm_hist_value(m->h[k].idx, integer);
            return fmin(fmax(v, m->min), m->max); /* never outside what was seen */
        }
    }
    return m->max;
}

/* ---- rebuilding cubes that do not hold every record */

struct rebuild {
    struct dtm_cube_acc *acc;
    struct dtm_store *st;
    const struct dtm_dataset *ds;
    uint32_t only;
    int64_t records;
    struct dtm_arena arena;
};

static int rebuild_one(void *ctx, const struct dtm_record_version *v)
{
    struct rebuild *rb = ctx;
    struct dtm_facts f;
    int64_t t;
    int rc = dtm_facts_parse(rb->ds, v->content, &rb->arena, &f, &t);
    if (rc == DTM_EMALFORMED)
        return DTM_OK; /* not a record we wrote */
    if (rc == DTM_OK)
        rc = acc_add(rb->acc, &f, t, +1, rb->only);
    dtm_arena_reset(&rb->arena);
    /* bounded memory: the deltas so far go to the store (same transaction) */
    rb->records++;
    if (rc == DTM_OK && dtm_cube_acc_full(rb->acc))
        rc = dtm_cube_acc_flush(rb->acc, rb->st);
    return rc;
}

int dtm_cube_rebuild(struct dtm_store *st, const struct dtm_dataset *ds, int64_t *records)
{
    int64_t ids[DTM_CUBE_MAX];
    bool complete[DTM_CUBE_MAX];
    struct rebuild rb = {.st = st, .ds = ds};
    int rc;
    *records = -1;
    if (!ds->ncubes || !st->ops->cube_id)
        return DTM_OK;
    if ((rc = st->ops->begin(st)))
        return rc;
    if ((rc = dtm_cube_ids(st, ds, true, ids, complete)))
        goto fail;
    for (size_t c = 0; c < ds->ncubes && c < DTM_CUBE_MAX; c++)
        if (!complete[c]) {
            rb.only |= 1u << c;
            if ((rc = st->ops->cube_reset(st, ids[c], true)))
                goto fail;
        }
    if (!rb.only)
        return st->ops->commit(st);
    if (!(rb.acc = dtm_cube_acc_new())) {
        rc = DTM_ENOMEM;
        goto fail;
    }
    rb.acc->cache[0].ds = ds;
    memcpy(rb.acc->cache[0].ids, ids, sizeof(ids));
    rb.acc->ncache = 1;
    dtm_cube_acc_set_now(rb.acc, dtm_now_us());
    dtm_arena_init(&rb.arena, 1 << 16);
    rc = st->ops->record_scan(st, ds->code, INT64_MIN, INT64_MAX, false, rebuild_one, &rb);
    if (rc == DTM_OK)
        rc = dtm_cube_acc_flush(rb.acc, st);
    dtm_arena_free(&rb.arena);
    dtm_cube_acc_free(rb.acc);
    if (rc)
        goto fail;
    *records = rb.records;
    return st->ops->commit(st);
fail:
    st->ops->rollback(st);
    return rc;
}
