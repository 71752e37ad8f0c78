/* Unit tests of src/demo/demo.c: the demo files are byte-identical for the same seed and differ
 * for another; there are at least 20 systems, one aggregator before its children, exactly one
 * offline and one with quality problems; every line of every file is UTF-8 JSON that the real
 * NDJSON decoder and validator accept — except the quality system's broken transactions, whose
 * number the generator reports; the quality system's re-sent lines are exact copies; the
 * service_stats rows match the valid, de-duplicated transactions except the reported few; the
 * daily and weekly rhythm is there; now_us cuts the data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "demo/demo.h"
#include "dict/dict.h"
#include "ingest/decode.h"

#define NTXN 20000

struct fixture {
    char dir_a[64], dir_b[64], dir_c[64];
    struct dtm_demo_opts opts;
    struct dtm_demo_out a, b, c;
    struct dtm_dict *dict;
};

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)len + 1);
    if (p && fread(p, 1, (size_t)len, f) != (size_t)len) {
        free(p);
        p = NULL;
    }
    fclose(f);
    if (p) {
        p[len] = 0;
        *n = (size_t)len;
    }
    return p;
}

static void remove_dir(const char *dir, const struct dtm_demo_out *o)
{
    for (size_t i = 0; i < o->nfiles; i++)
        unlink(o->files[i]);
    rmdir(dir);
}

static int setup(void **state)
{
    static struct fixture fx;
    char err[256];
    memset(&fx, 0, sizeof fx);
    snprintf(fx.dir_a, sizeof fx.dir_a, "/tmp/dtm-demo-a-XXXXXX");
    snprintf(fx.dir_b, sizeof fx.dir_b, "/tmp/dtm-demo-b-XXXXXX");
    snprintf(fx.dir_c, sizeof fx.dir_c, "/tmp/dtm-demo-c-XXXXXX");
    if (!mkdtemp(fx.dir_a) || !mkdtemp(fx.dir_b) || !mkdtemp(fx.dir_c))
        return -1;
    fx.opts.seed = 42;
    fx.opts.end_day = dtm_days_from_civil(2025, 6, 30);
    fx.opts.transactions = NTXN;
    if (dtm_demo_generate(fx.dir_a, &fx.opts, &fx.a, err, sizeof err) != DTM_OK ||
        dtm_demo_generate(fx.dir_b, &fx.opts, &fx.b, err, sizeof err) != DTM_OK) {
        fprintf(stderr, "demo: %s\n", err);
        return -1;
    }
    struct dtm_demo_opts other = fx.opts;
    other.seed = 43;
    if (dtm_demo_generate(fx.dir_c, &other, &fx.c, err, sizeof err) != DTM_OK) {
        fprintf(stderr, "demo: %s\n", err);
        return -1;
    }
    fx.dict = dtm_dict_create();
    if (!fx.dict)
        return -1;
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    remove_dir(fx->dir_a, &fx->a);
    remove_dir(fx->dir_b, &fx->b);
    remove_dir(fx->dir_c, &fx->c);
    dtm_demo_free(&fx->a);
    dtm_demo_free(&fx->b);
    dtm_demo_free(&fx->c);
    dtm_dict_destroy(fx->dict);
    return 0;
}

static void test_files(void **state)
{
    struct fixture *fx = *state;
    static const char *const want[] = {"transactions",    "service_stats",  "connection_logs",
                                       "security_events", "training_stats", "inspections",
                                       "documents"};
    assert_int_equal(fx->a.nfiles, 7);
    for (size_t i = 0; i < fx->a.nfiles; i++) {
        char suffix[64];
        snprintf(suffix, sizeof suffix, "/%s.ndjson", want[i]);
        assert_string_equal(fx->a.datasets[i], want[i]);
        assert_true(fx->a.files[i][0] == '/');
        size_t n = strlen(fx->a.files[i]);
        assert_string_equal(fx->a.files[i] + n - strlen(suffix), suffix);
        assert_true(fx->a.records[i] > 0);
    }
    assert_int_equal(fx->a.records[0], NTXN);
}

static void test_deterministic(void **state)
{
    struct fixture *fx = *state;
    assert_int_equal(fx->a.nfiles, fx->b.nfiles);
    for (size_t i = 0; i < fx->a.nfiles; i++) {
        size_t na, nb;
        char *pa = slurp(fx->a.files[i], &na), *pb = slurp(fx->b.files[i], &nb);
        assert_non_null(pa);
        assert_non_null(pb);
        assert_int_equal(na, nb);
        assert_memory_equal(pa, pb, na);
        assert_int_equal(fx->a.records[i], fx->b.records[i]);
        free(pa);
        free(pb);
    }
    assert_int_equal(fx->a.invalid, fx->b.invalid);
    assert_int_equal(fx->a.duplicates, fx->b.duplicates);
    assert_int_equal(fx->a.mismatches, fx->b.mismatches);
    for (size_t s = 0; s < fx->a.nsystems; s++)
        assert_true(fx->a.systems[s].last_seen_us == fx->b.systems[s].last_seen_us);

    /* another seed, another picture (but still the exact count) */
    size_t na, nc;
    char *pa = slurp(fx->a.files[0], &na), *pc = slurp(fx->c.files[0], &nc);
    assert_non_null(pa);
    assert_non_null(pc);
    assert_true(na != nc || memcmp(pa, pc, na) != 0);
    assert_int_equal(fx->c.records[0], NTXN);
    free(pa);
    free(pc);
}

static bool code_ok(const char *c)
{
    size_t n = strlen(c);
    if (n < 1 || n > 32)
        return false;
    for (; *c; c++)
        if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
              *c == '.' || *c == '_' || *c == '-'))
            return false;
    return true;
}

static void test_systems(void **state)
{
    struct fixture *fx = *state;
    const struct dtm_demo_out *o = &fx->a;
    int64_t end_us = ((fx->opts.end_day + 1) * 86400LL - DTM_TZ_OFFSET) * 1000000;
    size_t offline = 0, quality = 0, aggregators = 0, children = 0;
    assert_true(o->nsystems >= 20);
    for (size_t s = 0; s < o->nsystems; s++) {
        const struct dtm_demo_system *sy = &o->systems[s];
        assert_true(code_ok(sy->code));
        assert_true(strlen(sy->name) > 5);
        assert_true(strlen(sy->org) > 3);
        assert_int_equal(dtm_utf8_check(sy->name, strlen(sy->name)), strlen(sy->name));
        for (size_t t = 0; t < s; t++)
            assert_string_not_equal(sy->code, o->systems[t].code);
        assert_true(!strcmp(sy->role, "source") || !strcmp(sy->role, "aggregator"));
        aggregators += !strcmp(sy->role, "aggregator");
        if (sy->parent[0]) { /* its aggregator was listed before it */
            bool found = false;
            for (size_t t = 0; t < s; t++)
                found |= !strcmp(o->systems[t].code, sy->parent) &&
                         !strcmp(o->systems[t].role, "aggregator");
            assert_true(found);
            children++;
        }
        assert_true(sy->last_seen_us > 0 && sy->last_seen_us < end_us);
        if (sy->offline) {
            offline++;
            /* gone for about 15 of the 90 days */
            assert_true(sy->last_seen_us < end_us - 10 * 86400000000LL);
            assert_true(sy->last_seen_us > end_us - 20 * 86400000000LL);
        } else {
            assert_true(sy->last_seen_us > end_us - 86400000000LL);
        }
        quality += sy->quality;
        assert_false(sy->offline && sy->quality);
    }
    assert_int_equal(offline, 1);
    assert_int_equal(quality, 1);
    assert_int_equal(aggregators, 1);
    assert_true(children >= 10);
}

/* ---- a small open-addressing set / map keyed by strings (the test's own bookkeeping) */

#define MAP_SLOTS (1u << 16)

struct cell {
    char key[128];
    long total, success, failed, n_ms;
    double sum_ms;
    uint64_t line_hash;
    bool used, seen_in_stats;
};

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static struct cell *map_get(struct cell *m, const char *key, bool *created)
{
    for (uint64_t i = fnv(key) & (MAP_SLOTS - 1);; i = (i + 1) & (MAP_SLOTS - 1)) {
        if (!m[i].used) {
            m[i].used = true;
            snprintf(m[i].key, sizeof m[i].key, "%s", key);
            if (created)
                *created = true;
            return &m[i];
        }
        if (!strcmp(m[i].key, key)) {
            if (created)
                *created = false;
            return &m[i];
        }
    }
}

static const char *jstr(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const char *in_field(const struct dtm_in_record *in, const char *name, char *buf,
                            size_t bufsz)
{
    for (size_t i = 0; i < in->nfields; i++)
        if (dtm_str_eqc(in->f[i].name, name)) {
            snprintf(buf, bufsz, "%.*s", (int)in->f[i].value.n, in->f[i].value.p);
            return buf;
        }
    return NULL;
}

/* Runs every line of a file through the NDJSON decoder and the validator. Returns the number of
 * invalid records; each invalid one must belong to `allowed` (NULL = none may be invalid). */
static size_t validate_file(struct fixture *fx, size_t i, const char *allowed, size_t *nrec)
{
    const struct dtm_dataset *ds = dtm_dict_get(fx->dict, dtm_str_c(fx->a.datasets[i]));
    assert_non_null(ds);
    size_t n;
    char *text = slurp(fx->a.files[i], &n);
    assert_non_null(text);
    assert_int_equal(dtm_utf8_check(text, n), n);
    struct dtm_decoder *d = dtm_decoder_open(DTM_FMT_NDJSON, text, n);
    assert_non_null(d);
    static struct dtm_in_record in;
    static struct dtm_record rec;
    struct dtm_decode_error derr;
    struct dtm_rec_error errs[8];
    struct dtm_arena arena;
    dtm_arena_init(&arena, 16384);
    size_t bad = 0, count = 0;
    int rc;
    while ((rc = dtm_decoder_next(d, &in, &derr)) == 1) {
        size_t ne = dtm_validate(ds, &in, count, &rec, &arena, DTM_MODE_RAW, errs, 8);
        if (ne) {
            char sys[64];
            const char *code = in_field(&in, "system_code", sys, sizeof sys);
            if (!allowed || !code || strcmp(code, allowed) != 0) {
                struct dtm_buf b;
                dtm_buf_init(&b, 4096);
                dtm_rec_error_message(&errs[0], DTM_LANG_EN, &b);
                fail_msg("%s line %zu: %s", fx->a.datasets[i], in.line, b.p ? b.p : "?");
            }
            bad++;
        }
        count++;
        dtm_arena_reset(&arena);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(count, fx->a.records[i]);
    dtm_arena_free(&arena);
    dtm_decoder_close(d);
    free(text);
    if (nrec)
        *nrec = count;
    return bad;
}

static const char *quality_code(const struct dtm_demo_out *o)
{
    for (size_t s = 0; s < o->nsystems; s++)
        if (o->systems[s].quality)
            return o->systems[s].code;
    return NULL;
}

static const char *offline_code(const struct dtm_demo_out *o, int64_t *last_seen_us)
{
    for (size_t s = 0; s < o->nsystems; s++)
        if (o->systems[s].offline) {
            *last_seen_us = o->systems[s].last_seen_us;
            return o->systems[s].code;
        }
    return NULL;
}

static void test_valid(void **state)
{
    struct fixture *fx = *state;
    size_t n;
    size_t bad = validate_file(fx, 0, quality_code(&fx->a), &n);
    assert_int_equal(bad, fx->a.invalid);
    assert_true(bad > 0);
    assert_true(bad < n / 50);
    for (size_t i = 1; i < fx->a.nfiles; i++) {
        assert_int_equal(validate_file(fx, i, NULL, &n), 0);
        assert_true(n >= 10 && n <= 20000); /* tens to a few thousand */
    }
}

/* Transactions: fields, failure share, rhythm, offline, duplicates; and service_stats against
 * the valid, de-duplicated transactions. */
static void test_transactions_and_stats(void **state)
{
    struct fixture *fx = *state;
    const struct dtm_dataset *ds = dtm_dict_get(fx->dict, DTM_STR("transactions"));
    assert_non_null(ds);
    const char *qual = quality_code(&fx->a);
    int64_t off_last = 0;
    const char *off = offline_code(&fx->a, &off_last);
    assert_non_null(qual);
    assert_non_null(off);
    struct cell *cells = calloc(MAP_SLOTS, sizeof *cells);
    struct cell *keys = calloc(MAP_SLOTS, sizeof *keys);
    assert_non_null(cells);
    assert_non_null(keys);

    size_t n;
    char *text = slurp(fx->a.files[0], &n);
    assert_non_null(text);
    long lines = 0, failed = 0, valid = 0, dups = 0, by_hour[24] = {0}, by_day[90] = {0};
    long with_amount = 0, with_citizen = 0, with_business = 0;
    struct dtm_arena arena;
    dtm_arena_init(&arena, 16384);
    static struct dtm_in_record in;
    static struct dtm_record rec;
    struct dtm_rec_error errs[4];
    struct dtm_decode_error derr;
    char prev_start[40] = "";
    int64_t first_day = fx->opts.end_day - 89;
    for (char *line = text, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = 0;
        lines++;
        cJSON *o = cJSON_Parse(line);
        assert_non_null(o);
        const char *sys = jstr(o, "system_code"), *txn = jstr(o, "txn_id");
        const char *svc = jstr(o, "service_code"), *status = jstr(o, "status");
        const char *start = jstr(o, "started_at");
        assert_non_null(sys);
        assert_non_null(txn);
        assert_non_null(svc);
        assert_non_null(status);
        assert_non_null(start);
        with_amount += cJSON_GetObjectItemCaseSensitive(o, "amount") != NULL;
        with_citizen += jstr(o, "citizen_id") != NULL;
        with_business += jstr(o, "business_id") != NULL;

        /* the real decoder and validator on this one line */
        struct dtm_decoder *d = dtm_decoder_open(DTM_FMT_NDJSON, line, strlen(line));
        assert_int_equal(dtm_decoder_next(d, &in, &derr), 1);
        bool ok = dtm_validate(ds, &in, 0, &rec, &arena, DTM_MODE_RAW, errs, 4) == 0;
        dtm_decoder_close(d);
        dtm_arena_reset(&arena);
        if (!ok) {
            assert_string_equal(sys, qual);
            cJSON_Delete(o);
            continue;
        }
        char key[128];
        bool created;
        snprintf(key, sizeof key, "%s|%s", sys, txn);
        struct cell *first = map_get(keys, key, &created);
        if (created)
            first->line_hash = fnv(line);
        if (!created) { /* a re-sent line: byte-identical, only from the quality system */
            assert_string_equal(sys, qual);
            assert_true(first->line_hash == fnv(line));
            dups++;
            cJSON_Delete(o);
            continue;
        }
        assert_true(strcmp(start, prev_start) >= 0); /* in time order */
        snprintf(prev_start, sizeof prev_start, "%s", start);
        valid++;
        int64_t t;
        assert_int_equal(dtm_time_parse(dtm_str_c(start), &t), DTM_OK);
        assert_true(strcmp(sys, off) != 0 || t <= off_last);
        int64_t loc_s = t / 1000000 + DTM_TZ_OFFSET, day = loc_s / 86400 - first_day;
        assert_true(day >= 0 && day < 90);
        by_hour[loc_s % 86400 / 3600]++;
        by_day[day]++;
        if (!strcmp(status, "failed")) {
            failed++;
            assert_non_null(jstr(o, "error_code"));
            assert_non_null(jstr(o, "error_reason"));
        }
        snprintf(key, sizeof key, "%s|%s|%.10s", sys, svc, start);
        struct cell *c = map_get(cells, key, NULL);
        c->total++;
        c->success += !strcmp(status, "success");
        c->failed += !strcmp(status, "failed");
        const cJSON *ms = cJSON_GetObjectItemCaseSensitive(o, "response_ms");
        if (cJSON_IsNumber(ms)) {
            c->sum_ms += ms->valuedouble;
            c->n_ms++;
        }
        cJSON_Delete(o);
    }
    free(text);
    dtm_arena_free(&arena);
    assert_int_equal(lines, NTXN);
    assert_int_equal(dups, (long)fx->a.duplicates);
    assert_int_equal(valid + dups + (long)fx->a.invalid, NTXN);
    assert_true(dups > 0);
    /* failures 2–8 % */
    assert_true(failed * 100 > valid * 2 && failed * 100 < valid * 8);
    /* office hours peak, lunch dip, night low; weekends much lower (per day) */
    assert_true(by_hour[10] > 2 * by_hour[12]);
    assert_true(by_hour[10] > 10 * by_hour[3]);
    assert_true(by_hour[15] > by_hour[12]);
    long weekday = 0, weekend = 0, nweekday = 0, nweekend = 0;
    for (int64_t d = 0; d < 90; d++) {
        int wd = (int)(((first_day + d) % 7 + 11) % 7); /* 0 = Sunday */
        if (wd == 0 || wd == 6) {
            weekend += by_day[d];
            nweekend++;
        } else {
            weekday += by_day[d];
            nweekday++;
        }
    }
    assert_true(weekend * nweekday * 3 < weekday * nweekend); /* < 1/3 of a weekday */
    assert_true(with_amount > NTXN / 10 && with_citizen > NTXN / 3 && with_business > NTXN / 20);

    /* service_stats */
    text = slurp(fx->a.files[1], &n);
    assert_non_null(text);
    long rows = 0, mismatched = 0;
    for (char *line = text, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        *nl = 0;
        rows++;
        cJSON *o = cJSON_Parse(line);
        assert_non_null(o);
        assert_string_equal(jstr(o, "period_type"), "day");
        char key[128];
        snprintf(key, sizeof key, "%s|%s|%s", jstr(o, "system_code"), jstr(o, "service_code"),
                 jstr(o, "period_start"));
        bool created;
        struct cell *c = map_get(cells, key, &created);
        assert_false(created); /* no row without transactions */
        assert_false(c->seen_in_stats);
        c->seen_in_stats = true;
        long total = (long)cJSON_GetObjectItemCaseSensitive(o, "total")->valuedouble;
        long success = (long)cJSON_GetObjectItemCaseSensitive(o, "success")->valuedouble;
        long fail = (long)cJSON_GetObjectItemCaseSensitive(o, "failed")->valuedouble;
        assert_true(success + fail <= total);
        if (total != c->total) {
            mismatched++;
            assert_true(total > c->total);
        } else {
            assert_int_equal(success, c->success);
            assert_int_equal(fail, c->failed);
            const cJSON *avg = cJSON_GetObjectItemCaseSensitive(o, "avg_response_ms");
            if (c->n_ms) {
                assert_non_null(avg);
                double want = c->sum_ms / (double)c->n_ms;
                assert_true(avg->valuedouble > want - 0.051 && avg->valuedouble < want + 0.051);
            } else {
                assert_null(avg);
            }
        }
        cJSON_Delete(o);
    }
    free(text);
    for (size_t i = 0; i < MAP_SLOTS; i++) /* every (system, service, day) has its row */
        if (cells[i].used)
            assert_true(cells[i].seen_in_stats);
    assert_int_equal(mismatched, (long)fx->a.mismatches);
    assert_true(mismatched >= 5 && mismatched <= 10);
    assert_true(rows > 100);
    free(cells);
    free(keys);
}

/* now_us cuts the last day: nothing later, the count is still exact. */
static void test_now(void **state)
{
    (void)state;
    char dir[64], err[256];
    snprintf(dir, sizeof dir, "/tmp/dtm-demo-n-XXXXXX");
    assert_non_null(mkdtemp(dir));
    struct dtm_demo_opts o = {
        .seed = 7, .end_day = dtm_days_from_civil(2025, 3, 12), .transactions = 3000, .days = 14};
    o.now_us = ((o.end_day * 86400LL - DTM_TZ_OFFSET) + 10 * 3600 + 1234) * 1000000;
    struct dtm_demo_out out;
    assert_int_equal(dtm_demo_generate(dir, &o, &out, err, sizeof err), DTM_OK);
    assert_int_equal(out.records[0], 3000);
    for (size_t s = 0; s < out.nsystems; s++)
        assert_true(out.systems[s].last_seen_us <= o.now_us);
    for (size_t i = 0; i < out.nfiles; i++) {
        size_t n;
        char *text = slurp(out.files[i], &n);
        assert_non_null(text);
        for (char *line = text, *nl; *line; line = nl + 1) {
            nl = strchr(line, '\n');
            *nl = 0;
            cJSON *j = cJSON_Parse(line);
            assert_non_null(j);
            static const char *const tf[] = {"started_at", "detected_at", "opened_at",
                                             "resolved_at", "closed_at"};
            for (size_t f = 0; f < 5; f++) {
                const char *v = jstr(j, tf[f]);
                int64_t t;
                if (v && dtm_time_parse(dtm_str_c(v), &t) == DTM_OK)
                    assert_true(t <= o.now_us);
            }
            cJSON_Delete(j);
        }
        free(text);
    }
    remove_dir(dir, &out);
    dtm_demo_free(&out);

    /* bad options */
    o.days = -1;
    assert_int_equal(dtm_demo_generate(dir, &o, &out, err, sizeof err), DTM_EINVAL);
    o.days = 14;
    o.now_us = (o.end_day - 30) * 86400LL * 1000000;
    assert_int_equal(dtm_demo_generate("/tmp", &o, &out, err, sizeof err), DTM_EINVAL);
    assert_int_equal(out.nfiles, 0);
    o.now_us = 0;
    assert_int_equal(dtm_demo_generate("/nonexistent/dir", &o, &out, err, sizeof err), DTM_EIO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_systems),
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_transactions_and_stats),
        cmocka_unit_test(test_now),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
