/* core/arena.c — per-request and per-batch memory, freed in one step (nginx pools). */
#include "core/core.h"

#include <stdlib.h>
#include <string.h>

struct dtm_arena_block {
    struct dtm_arena_block *next;
    size_t size;
    size_t used;
    _Alignas(16) unsigned char data[];
};

void dtm_arena_init(struct dtm_arena *a, size_t block_size)
{
    a->head = NULL;
    a->block_size = block_size ? block_size : 16384;
    a->total = 0;
}

void *dtm_arena_alloc(struct dtm_arena *a, size_t n)
{
    struct dtm_arena_block *b = a->head;
    size_t need = (n + 15) & ~(size_t)15;
    if (need < n)
        return NULL;
    if (!b || b->size - b->used < need) {
        size_t size = need > a->block_size ? need : a->block_size;
        struct dtm_arena_block *nb = malloc(sizeof(*nb) + size);
        if (!nb)
            return NULL;
        nb->size = size;
        nb->used = 0;
        if (b && need > a->block_size) {
            /* a big one-off: keep the current block for later small allocations */
            nb->next = b->next;
            b->next = nb;
            nb->used = need;
            a->total += need;
            return nb->data;
        }
        nb->next = b;
        a->head = b = nb;
    }
    void *p = b->data + b->used;
    b->used += need;
    a->total += need;
    return p;
}

char *dtm_arena_strndup(struct dtm_arena *a, const char *p, size_t n)
{
    char *s = dtm_arena_alloc(a, n + 1);
    if (!s)
        return NULL;
    if (n)
        memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

void dtm_arena_reset(struct dtm_arena *a)
{
    struct dtm_arena_block *b = a->head, *keep = NULL;
    while (b) {
        struct dtm_arena_block *next = b->next;
        if (!next) {
            keep = b; /* the oldest block, of block_size unless it was a one-off */
            break;
        }
        free(b);
        b = next;
    }
    if (keep && keep->size != a->block_size) {
        free(keep);
        keep = NULL;
    }
    if (keep)
        keep->used = 0;
    a->head = keep;
    a->total = 0;
}

void dtm_arena_free(struct dtm_arena *a)
{
    struct dtm_arena_block *b = a->head;
    while (b) {
        struct dtm_arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->total = 0;
}
