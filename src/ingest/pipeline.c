/* ingest/pipeline.c — one body to storable records: decode → check the sender may write each
 * record's system_code → validate against the dictionary (T3.3) → mask personal fields (S2) →
 * canonical JSON, keyed hash of the data key (dedup, T1.4) and of the content. */
#include "ingest/ingest.h"
#include "stats/stats.h"

#include <stdio.h>
#include <string.h>

void dtm_ingest_key_hash(const struct dtm_keyring *keys, const char *dataset,
                         const struct dtm_str *vals, size_t n, uint8_t out[16])
{
    /* dataset NUL value US value US …: unambiguous because values are valid UTF-8 text without
     * control characters in key fields (codes and ids), and lengths differ otherwise */
    uint8_t full[32];
    struct dtm_buf b;
    dtm_buf_init(&b, 64 * 1024);
    dtm_buf_add(&b, dataset, strlen(dataset) + 1);
    for (size_t i = 0; i < n; i++) {
        dtm_buf_printf(&b, "%zu:", vals[i].n);
        dtm_buf_add(&b, vals[i].p, vals[i].n);
        dtm_buf_addch(&b, '\x1f');
    }
    dtm_hmac_sha256(keys->record_key, 32, b.p ? b.p : "", b.n, full);
    memcpy(out, full, 16);
    dtm_buf_free(&b);
}

/* Codes a sender was allowed to write during one step: a batch interleaves the rows of many
 * systems, and a store lookup per row (a read transaction each) was a third of a batch's time. */
#define ALLOWED_SLOTS 32
struct allowed {
    char code[ALLOWED_SLOTS][DTM_CODE_MAX];
    size_t n, next;
};

/* May `caller` write records of system `code`? (CONTRACT §4: a source only its own; an
 * aggregator its own and its children's; a local import without a caller any registered
 * system.) */
static bool may_write(const struct dtm_ingest_in *in, struct dtm_str code, struct allowed *ok)
{
    struct dtm_system child;
    char buf[DTM_CODE_MAX];
    if (in->caller && dtm_str_eqc(code, in->caller->code))
        return true;
    if ((in->caller && strcmp(in->caller->role, "aggregator") != 0) || code.n >= sizeof(buf) ||
        !in->store)
        return false;
    for (size_t i = 0; i < ok->n; i++)
        if (dtm_str_eqc(code, ok->code[i]))
            return true;
    memcpy(buf, code.p, code.n);
    buf[code.n] = '\0';
    if (in->store->ops->system_get(in->store, buf, &child) != DTM_OK)
        return false;
    if (in->caller && strcmp(child.parent, in->caller->code) != 0)
        return false;
    memcpy(ok->code[ok->next], buf, code.n + 1);
    ok->next = (ok->next + 1) % ALLOWED_SLOTS;
    if (ok->n < ALLOWED_SLOTS)
        ok->n++;
    return true;
}

/* Returns a copy of an arena array with twice the room (the old one stays in the arena until
 * the request ends), updating *cap; NULL when out of memory. */
static void *grow(struct dtm_arena *arena, const void *arr, size_t *cap, size_t elem)
{
    size_t ncap = *cap ? *cap * 2 : 16;
    void *n = dtm_arena_alloc(arena, ncap * elem);
    if (!n)
        return NULL;
    if (*cap)
        memcpy(n, arr, *cap * elem);
    *cap = ncap;
    return n;
}

/* Appends one error to out's list (which grows as needed: most requests have none — a fixed
 * list of max_errors per request was most of the server's memory at 500 connections). */
static int add_error(const struct dtm_ingest_in *in, struct dtm_arena *arena,
                     struct dtm_ingest_out *out, const struct dtm_rec_error *e)
{
    if (out->nerrs == in->max_errors)
        return DTM_OK;
    if (out->nerrs == out->errs_cap &&
        !(out->errs = grow(arena, out->errs, &out->errs_cap, sizeof(*out->errs))))
        return DTM_ENOMEM;
    out->errs[out->nerrs++] = *e;
    return DTM_OK;
}

/* One rejected row: counted, and its errors (nerr in all, the first n of them in errs, each given
 * the row's line) added to the list. */
static int reject(const struct dtm_ingest_in *in, struct dtm_arena *arena,
                  struct dtm_ingest_out *out, struct dtm_rec_error *errs, size_t n, size_t nerr,
                  size_t line)
{
    out->rejected++;
    out->errs_total += nerr;
    for (size_t e = 0; e < n; e++) {
        errs[e].line = line;
        if (add_error(in, arena, out, &errs[e]))
            return DTM_ENOMEM;
    }
    return DTM_OK;
}

void dtm_ingest_prepare(const struct dtm_ingest_in *in, struct dtm_arena *arena,
                        struct dtm_ingest_out *out)
{
    struct dtm_decoder *dec = dtm_decoder_open(in->format, in->body.p, in->body.n);
    memset(out, 0, sizeof(*out));
    if (!dec) {
        out->rc = DTM_ENOMEM;
        return;
    }
    dtm_ingest_step(in, dec, arena, out, SIZE_MAX);
    dtm_decoder_close(dec);
}

int dtm_ingest_step(const struct dtm_ingest_in *in, struct dtm_decoder *dec,
                    struct dtm_arena *arena, struct dtm_ingest_out *out, size_t max_rows)
{
    const struct dtm_dataset *ds = in->ds;
    struct dtm_in_record *rin;
    struct dtm_record *rec;
    struct dtm_buf json;
    size_t *cap = &out->recs_cap;
    struct dtm_rec_error scratch[64]; /* one record's errors */
    struct allowed *allowed = dtm_arena_alloc(arena, sizeof(*allowed));
    int sys_idx = ds->system_field;
    size_t rows = 0;
    bool more = true;

    rin = dtm_arena_alloc(arena, sizeof(*rin));
    rec = dtm_arena_alloc(arena, sizeof(*rec));
    if (!rin || !rec || !allowed) {
        out->rc = DTM_ENOMEM;
        return 0;
    }
    allowed->n = allowed->next = 0;
    dtm_buf_init(&json, 4 << 20);
    for (;; rows++) {
        size_t idx = out->total, nerr;
        int r;
        if (rows == max_rows)
            goto out;
        if (in->ahead && (out->rc = in->ahead(in->ahead_ctx, dtm_decoder_offset(dec))))
            break;
        r = dtm_decoder_next(dec, rin, &out->derr);
        if (r == 0)
            break;
        if (r < 0 && in->rows_continue && dtm_decoder_resumable(dec)) {
            struct dtm_rec_error e = {.index = idx, .code = "malformed"};
            snprintf(e.arg, sizeof(e.arg), "%s",
                     out->derr.detail[0] ? out->derr.detail : out->derr.code);
            out->total++;
            if ((out->rc = reject(in, arena, out, &e, 1, 1, out->derr.line)))
                break;
            continue;
        }
        if (r < 0) {
            out->rc = DTM_EMALFORMED;
            break;
        }
        if (++out->total > in->max_records) {
            out->rc = DTM_ETOOBIG;
            break;
        }
        /* system_code: defaults to the sender; else the sender must be allowed to write it */
        if (sys_idx >= 0) {
            size_t k;
            for (k = 0; k < rin->nfields; k++)
                if (dtm_str_eqc(rin->f[k].name, "system_code"))
                    break;
            if (!in->caller && (k == rin->nfields || rin->f[k].kind == DTM_IN_NULL)) {
                /* a local import names the system in each record: "required" below */
            } else if (k == rin->nfields || rin->f[k].kind == DTM_IN_NULL ||
                       rin->f[k].value.n == 0) {
                if (k == rin->nfields) {
                    if (k == DTM_MAX_FIELDS) {
                        out->rc = DTM_EMALFORMED;
                        out->derr.code = "too_many_fields";
                        break;
                    }
                    rin->nfields++;
                }
                rin->f[k].name = DTM_STR("system_code");
                rin->f[k].value = dtm_str_c(in->caller->code);
                rin->f[k].kind = DTM_IN_STRING;
            } else if (may_write(in, rin->f[k].value, allowed)) {
                /* allowed */
            } else if (in->rows_continue) {
                struct dtm_rec_error e = {
                    .index = idx, .field = "system_code", .code = "system_code"};
                size_t n = DTM_MIN(rin->f[k].value.n, sizeof(e.arg) - 1);
                memcpy(e.arg, rin->f[k].value.p, n);
                if ((out->rc = reject(in, arena, out, &e, 1, 1, rin->line)))
                    break;
                continue;
            } else {
                size_t n = DTM_MIN(rin->f[k].value.n, sizeof(out->forbidden_code) - 1);
                memcpy(out->forbidden_code, rin->f[k].value.p, n);
                out->forbidden_code[n] = '\0';
                out->rc = DTM_EFORBIDDEN;
                break;
            }
        }
        nerr = dtm_validate(ds, rin, idx, rec, arena, in->mode, scratch, DTM_ARRAY_LEN(scratch));
        if (nerr) {
            if ((out->rc = reject(in, arena, out, scratch, DTM_MIN(nerr, DTM_ARRAY_LEN(scratch)),
                                  nerr, rin->line)))
                break;
            continue;
        }
        if (dtm_mask_record(rec, in->mode, in->keys->mask_key, arena)) {
            out->rc = DTM_ENOMEM;
            break;
        }
        dtm_buf_reset(&json);
        if (dtm_record_json(rec, &json) || json.err) {
            out->rc = json.err ? json.err : DTM_ENOMEM;
            break;
        }
        if (out->nrecs == *cap && !(out->recs = grow(arena, out->recs, cap, sizeof(*out->recs)))) {
            out->rc = DTM_ENOMEM;
            break;
        }
        struct dtm_store_record *sr = &out->recs[out->nrecs++];
        struct dtm_str keyvals[8];
        uint8_t h[32];
        for (size_t k = 0; k < ds->nkey; k++)
            keyvals[k] = rec->v[ds->key[k]].text;
        dtm_ingest_key_hash(in->keys, ds->code, keyvals, ds->nkey, sr->key_hash);
        dtm_hmac_sha256(in->keys->content_key, 32, json.p, json.n, h);
        memcpy(sr->content_hash, h, 16);
        if (in->store && in->store->keys) {
            /* T4.2: sealed here, in the pipeline's thread (not the single writer's), the key
             * hash (dataset and data key) as associated data */
            uint8_t *sealed = dtm_arena_alloc(arena, json.n + DTM_SEAL_OVERHEAD);
            int src = sealed ? dtm_datakey_seal_to(in->store->keys, sr->key_hash, 16, json.p,
                                                   json.n, sealed)
                             : DTM_ENOMEM;
            if (src) {
                out->rc = src;
                break;
            }
            sr->content.p = (const char *)sealed;
            sr->content.n = json.n + DTM_SEAL_OVERHEAD;
        } else {
            sr->content.p = dtm_arena_strndup(arena, json.p, json.n);
            sr->content.n = json.n;
        }
        sr->system_code = sys_idx >= 0 ? rec->v[sys_idx].text
                          : in->caller ? dtm_str_c(in->caller->code)
                                       : DTM_STR("");
        /* a copy: the value may point into the input, which a batch gives back page by page
         * before the writer reads the record (touching it again mapped the whole file back) */
        sr->system_code.p = dtm_arena_strndup(arena, sr->system_code.p, sr->system_code.n);
        sr->event_time = INT64_MIN;
        if (ds->time_field >= 0 && rec->v[ds->time_field].present) {
            const struct dtm_value *tv = &rec->v[ds->time_field];
            sr->event_time =
                ds->fields[ds->time_field].type == DTM_T_DATE ? dtm_day_start(tv->i) : tv->i;
        }
        const struct dtm_facts *facts = NULL;
        if (!sr->content.p || !sr->system_code.p || dtm_facts_make(rec, arena, &facts)) {
            out->rc = DTM_ENOMEM;
            break;
        }
        sr->facts = facts;
    }
    more = false;
out:
    dtm_buf_free(&json);
    return more && out->rc == DTM_OK;
}
