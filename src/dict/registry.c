/* registry — the current set of dataset definitions, read by every request thread and changed
 * rarely (an admin's PUT). Readers take no lock: they load the current snapshot, an immutable
 * array sorted by code, and search it. A writer builds a new snapshot under a mutex and
 * publishes it; replaced snapshots and definitions are kept until dtm_dict_destroy, so a
 * request that still holds an older definition never sees it freed. */
#include "dict/dict.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct snapshot {
    size_t n;
    struct dtm_dataset **items; /* sorted by code */
    struct snapshot *older;     /* retired snapshots, newest first */
};

struct retired {
    struct dtm_dataset *ds;
    struct retired *next;
};

struct dtm_dict {
    _Atomic(struct snapshot *) cur;
    pthread_mutex_t mu; /* serialises writers */
    struct retired *retired;
};

static int cmp_code(struct dtm_str code, const char *c)
{
    size_t n = strlen(c);
    int r = memcmp(code.p, c, DTM_MIN(code.n, n));
    if (r)
        return r;
    return (code.n > n) - (code.n < n);
}

/* Index of code in s, or -(insertion point) - 1. */
static long search(const struct snapshot *s, struct dtm_str code)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = cmp_code(code, s->items[mid]->code);
        if (r == 0)
            return (long)mid;
        if (r < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -(long)lo - 1;
}

struct dtm_dict *dtm_dict_create(void)
{
    struct dtm_dict *d = calloc(1, sizeof *d);
    struct snapshot *s = calloc(1, sizeof *s);
    if (!d || !s || pthread_mutex_init(&d->mu, NULL) != 0) {
        free(d);
        free(s);
        return NULL;
    }
    atomic_init(&d->cur, s);
    for (size_t i = 0; dtm_builtin_datasets[i]; i++) {
        struct dtm_dataset *ds = NULL;
        char err[256];
        int rc = dtm_dataset_parse(dtm_str_c(dtm_builtin_datasets[i]), &ds, err, sizeof err);
        if (rc == DTM_ENOMEM) {
            dtm_dict_destroy(d);
            return NULL;
        }
        if (rc) { /* a broken built-in is our bug, not the user's */
            fprintf(stderr, "dtm: built-in dataset definition %zu is broken: %s\n", i, err);
            abort();
        }
        ds->builtin = true;
        if (dtm_dict_put(d, ds) != DTM_OK) {
            dtm_dict_destroy(d);
            return NULL;
        }
    }
    return d;
}

void dtm_dict_destroy(struct dtm_dict *d)
{
    if (!d)
        return;
    struct snapshot *s = atomic_load(&d->cur);
    for (size_t i = 0; i < s->n; i++)
        dtm_dataset_free(s->items[i]);
    while (s) {
        struct snapshot *older = s->older;
        free(s->items);
        free(s);
        s = older;
    }
    for (struct retired *r = d->retired, *next; r; r = next) {
        next = r->next;
        dtm_dataset_free(r->ds);
        free(r);
    }
    pthread_mutex_destroy(&d->mu);
    free(d);
}

/* Takes ownership of ds in every case (freed on failure). DTM_OK, DTM_EINVAL or DTM_ENOMEM. */
int dtm_dict_put(struct dtm_dict *d, struct dtm_dataset *ds)
{
    if (!d || !ds) {
        dtm_dataset_free(ds);
        return DTM_EINVAL;
    }
    int rc = DTM_ENOMEM;
    struct retired *ret = NULL;
    pthread_mutex_lock(&d->mu);
    struct snapshot *old = atomic_load_explicit(&d->cur, memory_order_relaxed);
    struct snapshot *s = calloc(1, sizeof *s);
    long at = search(old, dtm_str_c(ds->code));
    size_t n = at >= 0 ? old->n : old->n + 1;
    if (!s || !(s->items = calloc(n, sizeof *s->items)) ||
        (at >= 0 && !(ret = malloc(sizeof *ret)))) {
        if (s)
            free(s->items);
        free(s);
        dtm_dataset_free(ds);
        goto out;
    }
    s->n = n;
    if (at >= 0) {
        memcpy(s->items, old->items, old->n * sizeof *s->items); /* n >= 1 here */
        ret->ds = s->items[at];
        ret->next = d->retired;
        d->retired = ret;
        s->items[at] = ds;
    } else {
        size_t pos = (size_t)(-at - 1);
        if (pos)
            memcpy(s->items, old->items, pos * sizeof *s->items);
        s->items[pos] = ds;
        if (old->n > pos)
            memcpy(s->items + pos + 1, old->items + pos, (old->n - pos) * sizeof *s->items);
    }
    s->older = old;
    atomic_store_explicit(&d->cur, s, memory_order_release);
    rc = DTM_OK;
out:
    pthread_mutex_unlock(&d->mu);
    return rc;
}

const struct dtm_dataset *dtm_dict_get(const struct dtm_dict *d, struct dtm_str code)
{
    if (!d || !code.p)
        return NULL;
    struct snapshot *s = atomic_load_explicit(&((struct dtm_dict *)d)->cur, memory_order_acquire);
    long at = search(s, code);
    return at >= 0 ? s->items[at] : NULL;
}

size_t dtm_dict_count(const struct dtm_dict *d)
{
    struct snapshot *s = atomic_load_explicit(&((struct dtm_dict *)d)->cur, memory_order_acquire);
    return s->n;
}

const struct dtm_dataset *dtm_dict_at(const struct dtm_dict *d, size_t i)
{
    struct snapshot *s = atomic_load_explicit(&((struct dtm_dict *)d)->cur, memory_order_acquire);
    return i < s->n ? s->items[i] : NULL;
}
