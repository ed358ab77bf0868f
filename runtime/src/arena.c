/*
 * arena.c — bump allocation for decoded values. A call's arena starts on
 * an inline block inside the call object, so small calls allocate nothing;
 * bigger ones chain heap blocks that a reset frees — except that an arena
 * attached to a spare slot hands its biggest block (up to
 * EMBER_ARENA_SPARE_MAX) to the slot, and takes it back when it next needs
 * a block that fits. Cleanups (releasing decoded refs) run on reset.
 */
#include <string.h>

#include "ember-internal.h"

struct ember_arena_blk {
    struct ember_arena_blk *next;
    size_t size; /* bytes allocated for this block, header included */
};

struct ember_arena_cleanup {
    struct ember_arena_cleanup *next;
    void (*fn)(void *);
    void *p;
};

#define ALIGN8(n) (((n) + 7u) & ~(size_t)7u)
#define BLK_HDR ALIGN8(sizeof(struct ember_arena_blk))
#define STANDALONE_FIRST 1024u

_Static_assert(ALIGN8(sizeof(struct ember_arena_cleanup)) <= EMBER_ARENA_CLEANUP_BYTES,
               "ref.c charges EMBER_ARENA_CLEANUP_BYTES per deferred cleanup");

void ember_arena_init(ember_arena *a, void *buf, size_t cap)
{
    memset(a, 0, sizeof *a);
    a->first = buf;
    a->first_cap = cap;
    a->p = buf;
    a->end = a->p + cap;
}

static void run_cleanups(ember_arena *a)
{
    /* A cleanup may not allocate in this arena; take the list first. */
    while (a->cleanups) {
        struct ember_arena_cleanup *c = a->cleanups;
        a->cleanups = c->next;
        c->fn(c->p);
    }
}

void ember_arena_spare_clear(ember_arena_spare *s)
{
    if (s->blk)
        ember_free(s->blk, s->blk->size);
    s->blk = NULL;
    s->busy = false;
}

void ember_arena_spare_sweep(ember_arena_spare *s)
{
    if (!s->busy)
        ember_arena_spare_clear(s);
    s->busy = false;
}

size_t ember_arena_spare_bytes(const ember_arena_spare *s)
{
    return s->blk ? s->blk->size : 0;
}

/* Keeps b in the slot if it is the biggest block seen that fits the cap;
 * frees whichever of the two is not kept. */
static void spare_offer(ember_arena_spare *s, struct ember_arena_blk *b)
{
    if (b->size <= EMBER_ARENA_SPARE_MAX &&
        (!s->blk || s->blk->size < b->size)) {
        struct ember_arena_blk *old = s->blk;
        s->blk = b;
        s->busy = true;
        b = old;
    }
    if (b)
        ember_free(b, b->size);
}

void ember_arena_fini_(ember_arena *a)
{
    run_cleanups(a);
    while (a->extra) {
        struct ember_arena_blk *b = a->extra;
        a->extra = b->next;
        if (a->spare)
            spare_offer(a->spare, b);
        else
            ember_free(b, b->size);
    }
    a->p = a->first;
    a->end = a->first + a->first_cap;
    a->heap = 0;
}

EMBER_API void ember_arena_reset(ember_arena *a)
{
    if (a)
        ember_arena_fini(a);
}

EMBER_API ember_arena *ember_arena_new(void)
{
    size_t hdr = ALIGN8(sizeof(ember_arena));
    uint8_t *mem = ember_malloc(hdr + STANDALONE_FIRST);
    if (!mem) {
        ember_seterr("out of memory");
        return NULL;
    }
    ember_arena *a = (ember_arena *)mem;
    ember_arena_init(a, mem + hdr, STANDALONE_FIRST);
    a->standalone = true;
    return a;
}

EMBER_API void ember_arena_free(ember_arena *a)
{
    if (!a)
        return;
    ember_arena_fini(a);
    if (a->standalone)
        ember_free(a, ALIGN8(sizeof(ember_arena)) + STANDALONE_FIRST);
}

/* Uninitialised memory: for strings and bytes, which the decoder overwrites
 * right away (zeroing a 64 KiB string first would double its cost). */
void *ember_arena_alloc_nz(ember_arena *a, size_t size)
{
    size_t n = ALIGN8(size ? size : 1);
    if (n < size) /* overflow */
        return NULL;
    if ((size_t)(a->end - a->p) < n) {
        size_t prev = a->extra ? a->extra->size : a->first_cap;
        size_t cap = prev * 2 < 4096 ? 4096 : prev * 2;
        if (cap > ((size_t)1 << 20))
            cap = (size_t)1 << 20;
        if (cap < n + BLK_HDR)
            cap = n + BLK_HDR;
        if (cap < n) /* overflow */
            return NULL;
        struct ember_arena_blk *b;
        if (a->spare && a->spare->blk && a->spare->blk->size >= n + BLK_HDR) {
            b = a->spare->blk; /* already faulted in: no malloc, no faults */
            a->spare->blk = NULL;
            a->spare->busy = true;
        } else if ((b = ember_malloc(cap))) {
            b->size = cap;
        } else {
            return NULL;
        }
        b->next = a->extra;
        a->extra = b;
        a->heap += b->size;
        a->p = (uint8_t *)b + BLK_HDR;
        a->end = (uint8_t *)b + b->size;
    }
    void *r = a->p;
    a->p += n;
    return r;
}

EMBER_API void *ember_arena_alloc(ember_arena *a, size_t size)
{
    if (!a) {
        ember_seterr("ember_arena_alloc: NULL arena");
        return NULL;
    }
    void *r = ember_arena_alloc_nz(a, size);
    if (!r)
        return NULL;
    ember_arena_zero(r, size);
    return r;
}

int ember_arena_defer(ember_arena *a, void (*fn)(void *), void *p)
{
    struct ember_arena_cleanup *c = ember_arena_alloc(a, sizeof *c);
    if (!c)
        return -1;
    c->fn = fn;
    c->p = p;
    c->next = a->cleanups;
    a->cleanups = c;
    return 0;
}
