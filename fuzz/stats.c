/* fuzz/stats.c — libFuzzer driver for the statistics parameter parser (dtm_query_parse in
 * src/stats/stats.c: metrics, group_by, interval, from, to, where) and the time buckets it feeds.
 * Input: the first byte picks a built-in dataset; the rest is split at '\n' into metrics,
 * group_by, interval, from, to and then up to DTM_STATS_MAX_WHERE + 1 `where` values; one of
 * the first five lines that is exactly "-" is an absent parameter. Any input is either refused
 * naming the parameter with a reason, or gives a query that stays inside its bounds; never a crash,
 * an overflow or a leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stats/stats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NLINES (5 + DTM_STATS_MAX_WHERE + 1)

static struct dtm_dataset *builtin[16];
static size_t nbuiltin;

static void load_builtins(void)
{
    char err[256];
    for (size_t i = 0; dtm_builtin_datasets[i] && nbuiltin < 16; i++)
        if (dtm_dataset_parse(dtm_str_c(dtm_builtin_datasets[i]), &builtin[nbuiltin], err,
                              sizeof(err)) == DTM_OK)
            nbuiltin++;
    if (!nbuiltin)
        abort();
}

static void check(const struct dtm_query *q)
{
    char label[64];
    if (q->nmetrics > DTM_STATS_MAX_METRICS || q->ngroup > DTM_STATS_MAX_GROUP ||
        q->nwhere > DTM_STATS_MAX_WHERE || q->from >= q->to)
        abort();
    for (size_t i = 0; i < q->nmetrics; i++)
        if (q->metrics[i].field < -1 || q->metrics[i].field >= (int)q->ds->nfields ||
            !memchr(q->metrics[i].name, '\0', sizeof(q->metrics[i].name)))
            abort();
    for (size_t i = 0; i < q->ngroup; i++)
        if (q->group[i] < 0 || q->group[i] >= (int)q->ds->nfields)
            abort();
    for (size_t i = 0; i < q->nwhere; i++)
        if (q->where[i].field < 0 || q->where[i].field >= (int)q->ds->nfields ||
            q->where[i].nvalues > DTM_STATS_MAX_VALUES)
            abort();
    /* the buckets of the range's ends: time arithmetic on any instant the parser accepted */
    if (q->interval != DTM_I_NONE) {
        if (q->from != INT64_MIN)
            dtm_bucket_label(q->interval, dtm_bucket_start(q->interval, q->from), label,
                             sizeof(label));
        if (q->to != INT64_MAX)
            dtm_bucket_label(q->interval, dtm_bucket_start(q->interval, q->to - 1), label,
                             sizeof(label));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct dtm_query q; /* ~270 KiB: not on the stack */
    const char *line[NLINES] = {NULL};
    const char *bad = NULL;
    char err[512] = "", *text;
    size_t nl = 0;
    const struct dtm_dataset *ds;

    if (!nbuiltin)
        load_builtins();
    if (size < 1)
        return 0;
    ds = builtin[data[0] % nbuiltin];
    /* NUL-terminated copy; a NUL inside a line ends it, as in a decoded query parameter */
    text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    for (char *p = text; nl < NLINES;) {
        char *e = strchr(p, '\n');
        if (e)
            *e = '\0';
        line[nl] = nl < 5 && strcmp(p, "-") == 0 ? NULL : p; /* a where is never absent */
        nl++;
        if (!e)
            break;
        p = e + 1;
    }
    if (dtm_query_parse(ds, line[0], line[1], line[2], line[3], line[4], nl > 5 ? line + 5 : NULL,
                        nl > 5 ? nl - 5 : 0, &q, &bad, err, sizeof(err)) == DTM_OK) {
        const char *own[] = {"SYS_A", "SYS_B"};
        check(&q);
        /* the permission filter a source gets appended (src/api/scope) */
        if (dtm_query_restrict(&q, 0, own, 2) == DTM_OK)
            check(&q);
    } else if (!bad || !err[0]) {
        abort(); /* a refusal names the parameter and says why */
    }
    free(text);
    return 0;
}
