/* mask — masking of personal fields before anything is stored (F1, S2, Circular Art. 9.4),
 * the step after validation in the data flow. Three masks (CONTRACT §4): partial keeps the
 * first 4 and last 2 characters with one '*' per hidden character, hash is the installation's
 * keyed HMAC-SHA-256 as lowercase hex (stable, so joins on the masked value still work), redact
 * drops the value. Masked text lives in the request's arena. */
#include "dict/dict.h"

#include <string.h>

#define KEEP_HEAD 4 /* characters kept at the start by the partial mask */
#define KEEP_TAIL 2 /* and at the end */

static size_t count_code_points(struct dtm_str s)
{
    size_t n = 0;
    for (size_t k = 0; k < s.n; k++)
        n += ((unsigned char)s.p[k] & 0xC0) != 0x80;
    return n;
}

/* Byte offset of code point number cp (cp <= count) in s. */
static size_t cp_offset(struct dtm_str s, size_t cp)
{
    size_t k = 0;
    for (size_t seen = 0; k < s.n; k++) {
        if (((unsigned char)s.p[k] & 0xC0) == 0x80)
            continue;
        if (seen++ == cp)
            return k;
    }
    return s.n;
}

/* Already in the form this mask produces (MASKED mode: the sender masked it): partial — a '*'
 * in every hidden position; hash — 64 lowercase hex digits. validate.c has let through only
 * such '*' values. */
static bool already_masked(enum dtm_mask m, struct dtm_str v)
{
    if (m == DTM_MASK_HASH) {
        if (v.n != 64)
            return false;
        for (size_t k = 0; k < 64; k++)
            if (!((v.p[k] >= '0' && v.p[k] <= '9') || (v.p[k] >= 'a' && v.p[k] <= 'f')))
                return false;
        return true;
    }
    return m == DTM_MASK_PARTIAL && v.n && memchr(v.p, '*', v.n) != NULL;
}

static struct dtm_str mask_partial(struct dtm_str v, struct dtm_arena *arena)
{
    size_t n = count_code_points(v);
    if (n <= KEEP_HEAD + KEEP_TAIL) {
        char *p = dtm_arena_alloc(arena, n + 1);
        if (!p)
            return DTM_STR_NULL;
        memset(p, '*', n);
        p[n] = '\0';
        return (struct dtm_str){p, n};
    }
    size_t head = cp_offset(v, KEEP_HEAD), tail = cp_offset(v, n - KEEP_TAIL);
    size_t hidden = n - KEEP_HEAD - KEEP_TAIL, len = head + hidden + (v.n - tail);
    char *p = dtm_arena_alloc(arena, len + 1);
    if (!p)
        return DTM_STR_NULL;
    memcpy(p, v.p, head);
    memset(p + head, '*', hidden);
    memcpy(p + head + hidden, v.p + tail, v.n - tail);
    p[len] = '\0';
    return (struct dtm_str){p, len};
}

static struct dtm_str mask_hash(struct dtm_str v, const uint8_t hash_key[32],
                                struct dtm_arena *arena)
{
    uint8_t mac[32];
    char *p = dtm_arena_alloc(arena, 65);
    if (!p)
        return DTM_STR_NULL;
    dtm_hmac_sha256(hash_key, 32, v.p, v.n, mac);
    dtm_hex(mac, sizeof mac, p);
    return (struct dtm_str){p, 64};
}

struct dtm_str dtm_mask_value(enum dtm_mask m, struct dtm_str v, const uint8_t hash_key[32],
                              struct dtm_arena *arena)
{
    switch (m) {
    case DTM_MASK_PARTIAL:
        return mask_partial(v, arena);
    case DTM_MASK_HASH:
        return mask_hash(v, hash_key, arena);
    case DTM_MASK_REDACT:
        return DTM_STR_NULL;
    case DTM_MASK_NONE:
        break;
    }
    return v;
}

int dtm_mask_record(struct dtm_record *rec, enum dtm_mask_mode mode, const uint8_t hash_key[32],
                    struct dtm_arena *arena)
{
    const struct dtm_dataset *ds = rec->ds;
    for (size_t fi = 0; fi < ds->nfields; fi++) {
        const struct dtm_field_def *f = &ds->fields[fi];
        struct dtm_value *v = &rec->v[fi];
        if (!v->present || !f->personal)
            continue;
        enum dtm_mask m = f->mask;
        if (mode == DTM_MODE_MASKED) {
            /* the sender asked for masking: every personal field, partial by default */
            if (m == DTM_MASK_NONE)
                m = DTM_MASK_PARTIAL;
            if (already_masked(m, v->text))
                continue;
        }
        if (m == DTM_MASK_NONE)
            continue;
        if (m == DTM_MASK_REDACT) {
            v->present = false;
            v->text = DTM_STR_NULL;
            continue;
        }
        struct dtm_str t = dtm_mask_value(m, v->text, hash_key, arena);
        if (!t.p)
            return DTM_ENOMEM;
        v->text = t;
        v->i = 0;
        v->d = 0;
    }
    return DTM_OK;
}
