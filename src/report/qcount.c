/* report/qcount.c — the data-quality counters the record writer keeps (G4; migration 23): per
 * receipt day, system and dataset, the records accepted / updated / duplicate / rejected, the
 * rejections by error code, and the lag between event time and receipt as a log-linear
 * histogram (stats/cube.c's buckets, so p95 is within 0.8 %) with its exact sum. The writer
 * adds every job of a group commit here and flushes the sums inside the commit's transaction:
 * realtime requests and batch chunks go through the same path, so both are counted, exactly as
 * durable as the records. Realtime requests refused whole (no record valid) never reach the
 * writer with records: dtm_quality_note_rejected sends the writer a job that counts them. */
#include "ingest/ingest.h"
#include "report/quality.h"
#include "stats/stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hbin {
    int32_t idx;
    int64_t n;
};
struct ecount {
    char code[DTM_NAME_MAX];
    int64_t n;
};
struct group {
    char dataset[DTM_CODE_MAX];
    char system[DTM_CODE_MAX];
    int64_t accepted, updated, duplicate, rejected, lag_ms, lag_n;
    struct hbin *bins;
    size_t nbins, capbins, lastbin;
    struct ecount *errs;
    size_t nerrs, caperrs;
};
struct dtm_qcount {
    struct group *g;
    size_t n, cap, last;
};

struct dtm_qcount *dtm_qcount_new(void)
{
    return calloc(1, sizeof(struct dtm_qcount));
}

void dtm_qcount_free(struct dtm_qcount *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->cap; i++) {
        free(q->g[i].bins);
        free(q->g[i].errs);
    }
    free(q->g);
    free(q);
}

void dtm_qcount_clear(struct dtm_qcount *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->n; i++) {
        struct group *g = &q->g[i];
        g->accepted = g->updated = g->duplicate = g->rejected = g->lag_ms = g->lag_n = 0;
        g->nbins = g->nerrs = g->lastbin = 0;
    }
    q->n = q->last = 0;
}

static bool same(const char *a, const char *b, size_t bn)
{
    return strlen(a) == bn && memcmp(a, b, bn) == 0;
}

/* The group of (dataset, system), added when new; the last one found is tried first (a job's
 * records mostly belong to one system). Codes longer than a code may be are cut. */
static struct group *group(struct dtm_qcount *q, const char *dataset, const char *sys, size_t sn)
{
    struct group *g;
    if (sn >= DTM_CODE_MAX)
        sn = DTM_CODE_MAX - 1;
    if (q->last < q->n && same(q->g[q->last].system, sys, sn) &&
        strcmp(q->g[q->last].dataset, dataset) == 0)
        return &q->g[q->last];
    for (size_t i = 0; i < q->n; i++)
        if (same(q->g[i].system, sys, sn) && strcmp(q->g[i].dataset, dataset) == 0) {
            q->last = i;
            return &q->g[i];
        }
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 8;
        struct group *ng = realloc(q->g, cap * sizeof(*ng));
        if (!ng)
            return NULL;
        memset(ng + q->cap, 0, (cap - q->cap) * sizeof(*ng));
        q->g = ng;
        q->cap = cap;
    }
    g = &q->g[q->n];
    snprintf(g->dataset, sizeof(g->dataset), "%s", dataset);
    memcpy(g->system, sys, sn);
    g->system[sn] = 0;
    q->last = q->n++;
    return g;
}

static int add_bin(struct group *g, int32_t idx)
{
    if (g->lastbin < g->nbins && g->bins[g->lastbin].idx == idx) {
        g->bins[g->lastbin].n++;
        return DTM_OK;
    }
    for (size_t i = 0; i < g->nbins; i++)
        if (g->bins[i].idx == idx) {
            g->bins[i].n++;
            g->lastbin = i;
            return DTM_OK;
        }
    if (dtm_array_reserve(&g->bins, g->nbins, &g->capbins, sizeof(*g->bins)))
        return DTM_ENOMEM;
    g->bins[g->nbins] = (struct hbin){idx, 1};
    g->lastbin = g->nbins++;
    return DTM_OK;
}

int dtm_qcount_record(struct dtm_qcount *q, const char *dataset, struct dtm_str system,
                      int64_t event_time, enum dtm_put_outcome o, int64_t received_at)
{
    struct group *g;
    int64_t lag;
    if (!q)
        return DTM_OK;
    if (!(g = group(q, dataset, system.p ? system.p : "", system.p ? system.n : 0)))
        return DTM_ENOMEM;
    if (o == DTM_PUT_DUPLICATE) {
        g->duplicate++;
        return DTM_OK; /* a re-sent record says nothing about freshness */
    }
    g->accepted++;
    if (o == DTM_PUT_UPDATED)
        g->updated++;
    if (event_time == INT64_MIN || event_time == INT64_MAX)
        return DTM_OK;
    /* a record dated after its receipt (clock skew, scheduled) counts as no lag */
    lag = received_at > event_time ? (received_at - event_time) / 1000 : 0;
    g->lag_ms += lag;
    g->lag_n++;
    return add_bin(g, dtm_hist_index((double)lag));
}

int dtm_qcount_rejected(struct dtm_qcount *q, const char *dataset, const char *system,
                        size_t rejected, const struct dtm_rec_error *errs, size_t nerrs)
{
    struct group *g;
    if (!q || !rejected)
        return DTM_OK;
    if (!system)
        system = "";
    if (!(g = group(q, dataset, system, strlen(system))))
        return DTM_ENOMEM;
    g->rejected += (int64_t)rejected;
    for (size_t i = 0; i < nerrs; i++) {
        const char *code = errs[i].rule && errs[i].rule->code[0] ? errs[i].rule->code
                           : errs[i].code                        ? errs[i].code
                                                                 : "invalid";
        size_t k = 0;
        for (; k < g->nerrs && strcmp(g->errs[k].code, code) != 0; k++)
            ;
        if (k == g->nerrs) {
            if (dtm_array_reserve(&g->errs, g->nerrs, &g->caperrs, sizeof(*g->errs)))
                return DTM_ENOMEM;
            snprintf(g->errs[k].code, sizeof(g->errs[k].code), "%s", code);
            g->errs[k].n = 0;
            g->nerrs++;
        }
        g->errs[k].n++;
    }
    return DTM_OK;
}

int dtm_qcount_flush(struct dtm_qcount *q, struct dtm_store *st, int64_t now)
{
    int64_t day = dtm_cube_bucket(DTM_GRAIN_DAY, now);
    int rc = DTM_OK;
    if (!q || !st->ops->quality_add)
        return DTM_OK;
    for (size_t i = 0; i < q->n && rc == DTM_OK; i++) {
        struct group *g = &q->g[i];
        const struct {
            const char *kind, *item;
            int64_t n;
        } c[] = {{"n", "accepted", g->accepted},   {"n", "updated", g->updated},
                 {"n", "duplicate", g->duplicate}, {"n", "rejected", g->rejected},
                 {"lag_ms", "", g->lag_ms},        {"lag_n", "", g->lag_n}};
        for (size_t k = 0; k < DTM_ARRAY_LEN(c) && rc == DTM_OK; k++)
            if (c[k].n)
                rc = st->ops->quality_add(st, day, g->system, g->dataset, c[k].kind, c[k].item,
                                          c[k].n);
        for (size_t k = 0; k < g->nbins && rc == DTM_OK; k++) {
            char item[16];
            snprintf(item, sizeof(item), "%d", (int)g->bins[k].idx);
            rc = st->ops->quality_add(st, day, g->system, g->dataset, "lag", item, g->bins[k].n);
        }
        for (size_t k = 0; k < g->nerrs && rc == DTM_OK; k++)
            rc = st->ops->quality_add(st, day, g->system, g->dataset, "err", g->errs[k].code,
                                      g->errs[k].n);
    }
    return rc;
}

/* ---- realtime requests refused whole: a job of their counts only */

struct note {
    struct dtm_write_job job; /* first: done() frees the note through it */
    char dataset[DTM_CODE_MAX], system[DTM_CODE_MAX];
    size_t rejected, nerrs;
    struct dtm_rec_error errs[];
};

/* The job carries no records and no rejected count of its own (the request's metrics were
 * counted when it was refused): its counts are written here, in the writer's transaction. */
static int note_in_txn(struct dtm_write_job *j, struct dtm_store *st)
{
    struct note *n = (struct note *)j;
    struct dtm_qcount *q = dtm_qcount_new();
    int rc;
    if (!q)
        return DTM_ENOMEM;
    rc = dtm_qcount_rejected(q, n->dataset, n->system, n->rejected, n->errs, n->nerrs);
    if (rc == DTM_OK)
        rc = dtm_qcount_flush(q, st, dtm_now_us());
    dtm_qcount_free(q);
    return rc;
}

static void note_done(struct dtm_write_job *j)
{
    free(j); /* the job is the first member of its note */
}

void dtm_quality_note_rejected(struct dtm_writer *w, const char *dataset, const char *system,
                               size_t rejected, const struct dtm_rec_error *errs, size_t nerrs)
{
    struct note *n;
    if (!w || !rejected)
        return;
    if (!(n = calloc(1, sizeof(*n) + nerrs * sizeof(n->errs[0]))))
        return;
    snprintf(n->dataset, sizeof(n->dataset), "%s", dataset);
    snprintf(n->system, sizeof(n->system), "%s", system ? system : "");
    for (size_t i = 0; i < nerrs; i++) {
        /* the code may live in the dictionary, which a reload frees: the note keeps a copy */
        const char *code = errs[i].rule && errs[i].rule->code[0] ? errs[i].rule->code
                           : errs[i].code                        ? errs[i].code
                                                                 : "invalid";
        snprintf(n->errs[i].arg, sizeof(n->errs[i].arg), "%s", code);
        n->errs[i].code = n->errs[i].arg;
    }
    n->rejected = rejected;
    n->nerrs = nerrs;
    n->job.dataset = n->dataset;
    n->job.system_code = n->system;
    n->job.in_txn = note_in_txn;
    n->job.done = note_done;
    n->job.relaxed = true; /* nobody waits: it becomes durable with the next commit */
    if (dtm_writer_submit(w, &n->job) != DTM_OK)
        free(n);
}
