/* fuzz/query.c — libFuzzer driver for the query string: the raw bytes after '?' are split and
 * percent-decoded the way libmicrohttpd hands them to our handlers ('&' between arguments, the
 * first '=' between name and value, '+' as a space, MHD_http_unescape — the function the server
 * uses), then every parameter goes to the parser its route uses: dataset (the dictionary),
 * metrics, group_by, interval, from, to, where (dtm_query_parse, as /stats and /records),
 * from/to (dtm_time_bound_parse), limit (dtm_str_to_i64), format (dtm_export_format_parse) and
 * priority (dtm_batch_priority_parse, /batches). Never a crash, an overflow or a leak; a refusal
 * always names its parameter. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "batch/batch.h"
#include "stats/stats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ARGS 64

struct arg {
    const char *name, *value; /* value NULL: "name" without '=' */
};

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

static void unescape(char *s)
{
    for (char *p = s; *p; p++)
        if (*p == '+')
            *p = ' ';
    MHD_http_unescape(s);
}

/* The first value of name, as MHD_lookup_connection_value gives it. */
static const char *first(const struct arg *a, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(a[i].name, name) == 0)
            return a[i].value;
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct dtm_query q; /* ~270 KiB: not on the stack */
    struct arg a[MAX_ARGS];
    const char *wheres[DTM_STATS_MAX_WHERE + 1], *v, *bad = NULL;
    const struct dtm_dataset *ds;
    size_t na = 0, nw = 0;
    char err[512] = "", *text = malloc(size + 1), *p;
    int64_t t, i64;
    int prio;
    enum dtm_export_format fmt;

    if (!text)
        return 0;
    if (!nbuiltin)
        load_builtins();
    memcpy(text, data, size);
    text[size] = '\0';
    for (p = text; *p && na < MAX_ARGS;) {
        char *amp = strchr(p, '&'), *eq;
        if (amp)
            *amp = '\0';
        if (*p) {
            eq = strchr(p, '=');
            if (eq) {
                *eq = '\0';
                unescape(eq + 1);
            }
            unescape(p);
            a[na++] = (struct arg){p, eq ? eq + 1 : NULL};
        }
        if (!amp)
            break;
        p = amp + 1;
    }

    ds = builtin[0];
    if ((v = first(a, na, "dataset")))
        for (size_t i = 0; i < nbuiltin; i++)
            if (strcmp(builtin[i]->code, v) == 0)
                ds = builtin[i];
    for (size_t i = 0; i < na && nw < DTM_ARRAY_LEN(wheres); i++)
        if (strcmp(a[i].name, "where") == 0 && a[i].value)
            wheres[nw++] = a[i].value;
    if (dtm_query_parse(ds, first(a, na, "metrics"), first(a, na, "group_by"),
                        first(a, na, "interval"), first(a, na, "from"), first(a, na, "to"), wheres,
                        nw, &q, &bad, err, sizeof(err)) != DTM_OK) {
        if (!bad || !err[0])
            abort();
    } else if (q.from >= q.to || q.nwhere != nw) {
        abort();
    }
    if ((v = first(a, na, "from")))
        (void)dtm_time_bound_parse(dtm_str_c(v), false, &t);
    if ((v = first(a, na, "to")))
        (void)dtm_time_bound_parse(dtm_str_c(v), true, &t);
    if ((v = first(a, na, "limit")))
        (void)dtm_str_to_i64(dtm_str_c(v), &i64);
    if ((v = first(a, na, "format")))
        (void)dtm_export_format_parse(v, &fmt);
    if ((v = first(a, na, "priority")) && dtm_batch_priority_parse(v, &prio) == DTM_OK &&
        (prio < 0 || prio > 2))
        abort();
    free(text);
    return 0;
}
