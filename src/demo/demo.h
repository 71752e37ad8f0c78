/* demo — a realistic, deterministic picture for `dtm init --demo` (CONTRACT §9): 25 connected
 * systems of ministries, provinces and the national portal; 90 days of `transactions` with daily
 * and weekly rhythm, failures with reasons, one system that went offline and one with a
 * data-quality problem; `service_stats` that match the valid transactions except a few
 * deliberate mismatches; some records of every other built-in dataset. The generator only writes
 * NDJSON files (one per built-in dataset); the caller registers the systems and imports the files
 * through the real ingest pipeline, so the demo exercises the same path as real data.
 * Same seed, end_day, days, transactions and now_us → byte-identical files (own PRNG and own
 * exp/log: no libm transcendental, no rand(), no clock). */
#ifndef DTM_DEMO_H
#define DTM_DEMO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DTM_DEMO_MAX_FILES 16

struct dtm_demo_system {
    char code[32];    /* e.g. "BCA-DVC", "HNI-IGATE" — matches ^[A-Za-z0-9._-]{1,32}$ */
    char name[160];   /* Vietnamese, e.g. "Cổng dịch vụ công Bộ Công an" */
    char org[160];    /* e.g. "Bộ Công an" */
    const char *role; /* "source" (most) or "aggregator" (static string) */
    char parent[32];  /* "" or the code of its aggregator (which comes earlier in the array) */
    bool offline; /* the one system that went offline: its data stops some days before the end */
    bool quality; /* the one system whose rows are partly invalid and partly re-sent */
    int64_t last_seen_us; /* time of its last record (transactions, connection_logs); 0 = none */
};

struct dtm_demo_opts {
    uint64_t seed;       /* same seed + same end_day → byte-identical files */
    int64_t end_day;     /* days since 1970-01-01 in UTC+07:00 of the last day (inclusive); the
                            data covers the `days` days ending there */
    size_t transactions; /* exact number of transaction lines (default 1000000 when 0), including
                            the quality system's invalid and duplicate lines */
    int days;            /* default 90 when 0; 1..3660 */
    int64_t now_us;      /* optional (0 = none): no record is later than this instant, so a demo
                            ending today looks live; part of the determinism key when set */
};

struct dtm_demo_out {
    struct dtm_demo_system *systems; /* malloc'd, free with dtm_demo_free; an aggregator comes */
    size_t nsystems;                 /* before its children (register them in this order) */
    char **files;                    /* absolute paths "<dir>/<dataset>.ndjson", in import order */
    char **datasets;                 /* their dataset codes (same order) */
    size_t nfiles;
    size_t records[DTM_DEMO_MAX_FILES]; /* lines written per file (same order) */
    /* what the importer should report for transactions and what the checks should find */
    size_t invalid;    /* transaction lines that break the dictionary (all of the quality system) */
    size_t duplicates; /* transaction lines that repeat an earlier valid line byte for byte */
    size_t mismatches; /* service_stats rows whose total differs from the valid transactions */
};

/* Writes one NDJSON file per built-in dataset into dir (which exists; absolute or relative — the
 * paths in out are made absolute) and describes the systems the records belong to.
 * Returns DTM_OK, DTM_EINVAL (bad options), DTM_ENOMEM or DTM_EIO, with a one-sentence English
 * reason in err (may be NULL). On failure *out is left empty (files already written stay).
 * The caller frees *out with dtm_demo_free. */
int dtm_demo_generate(const char *dir, const struct dtm_demo_opts *o,
                      struct dtm_demo_out *out /* OUT */, char *err, size_t errsz);
void dtm_demo_free(struct dtm_demo_out *out);

#endif
