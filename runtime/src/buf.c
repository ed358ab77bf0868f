/*
 * buf.c — contiguous buffers. Frames are parsed in place and encoded in
 * place, so a buffer only ever moves when it grows or compacts. An idle
 * connection holds no buffer at all: empty buffers go back to a pool shared
 * by the endpoint's connections — standard 64 KiB blocks, plus at most two
 * spare large buffers for frames that do not fit a block (see
 * buf-internal.h and docs/runtime.md, "Memory").
 */
#include <string.h>

#include "buf-internal.h"
#include "ember-internal.h"

static void large_free_all(ember_bufpool *pool)
{
    while (pool->nlarge > 0) {
        pool->nlarge--;
        ember_free(pool->large[pool->nlarge], pool->large_cap[pool->nlarge]);
    }
    pool->large_bytes = 0;
}

void ember_bufpool_clear(ember_bufpool *pool)
{
    while (pool->n > 0)
        ember_free(pool->free[--pool->n], EMBER_BUF_BLOCK);
    large_free_all(pool);
}

void ember_bufpool_sweep(ember_bufpool *pool)
{
    /* Large frames stopped: give the memory back rather than pin it. */
    if (!pool->large_busy)
        large_free_all(pool);
    pool->large_busy = false;
}

/* The smallest spare large buffer with room for `used` + `need` bytes, or
 * NULL. */
static uint8_t *large_take(ember_bufpool *pool, size_t used, size_t need,
                           size_t *cap)
{
    int best = -1;
    for (int i = 0; i < pool->nlarge; i++)
        if (pool->large_cap[i] >= used && pool->large_cap[i] - used >= need &&
            (best < 0 || pool->large_cap[i] < pool->large_cap[best]))
            best = i;
    if (best < 0)
        return NULL;
    uint8_t *d = pool->large[best];
    *cap = pool->large_cap[best];
    pool->large_bytes -= *cap;
    pool->nlarge--;
    pool->large[best] = pool->large[pool->nlarge];
    pool->large_cap[best] = pool->large_cap[pool->nlarge];
    pool->large_busy = true;
    return d;
}

/* Keeps a large buffer as a spare if the count and the byte budget allow. */
static bool large_keep(ember_bufpool *pool, uint8_t *data, size_t cap)
{
    if (!pool || pool->nlarge >= EMBER_BUF_LARGE_MAX ||
        cap > EMBER_BUF_LARGE_BUDGET - pool->large_bytes)
        return false;
    pool->large[pool->nlarge] = data;
    pool->large_cap[pool->nlarge] = cap;
    pool->nlarge++;
    pool->large_bytes += cap;
    pool->large_busy = true;
    return true;
}

void ember_buf_release(ember_buf *b)
{
    if (b->data && !ember_buf_pool_give(b) &&
        (b->cap <= EMBER_BUF_BLOCK || !large_keep(b->pool, b->data, b->cap)))
        ember_free(b->data, b->cap);
    b->data = NULL;
    b->off = b->len = b->cap = 0;
}

/* Compacts, then reallocs to ncap: a big buffer moves without a second
 * copy of it alive at once (glibc remaps large blocks). */
static int grow_in_place(ember_buf *b, size_t used, size_t ncap)
{
    if (b->off) {
        memmove(b->data, b->data + b->off, used);
        b->off = 0;
        b->len = used;
    }
    uint8_t *nd = ember_realloc(b->data, b->cap, ncap);
    if (!nd)
        return ember_seterr("out of memory");
    b->data = nd;
    b->cap = ncap;
    return 0;
}

int ember_buf_reserve_(ember_buf *b, size_t need)
{
    if (!b->data && need <= EMBER_BUF_BLOCK) {
        if (ember_buf_pool_take(b))
            return 0;
        if (!(b->data = ember_malloc(EMBER_BUF_BLOCK)))
            return ember_seterr("out of memory");
        b->cap = EMBER_BUF_BLOCK;
        b->off = b->len = 0;
        return 0;
    }
    size_t used = b->len - b->off;
    if (b->off && b->cap - used >= need) { /* compacting is enough */
        memmove(b->data, b->data + b->off, used);
        b->off = 0;
        b->len = used;
        return 0;
    }
    size_t ncap = b->cap ? b->cap : EMBER_BUF_BLOCK;
    if (need > SIZE_MAX / 4 - used)
        return ember_seterr("buffer too large");
    while (ncap - used < need)
        ncap *= 2;
    if (b->soft_cap && ncap > b->soft_cap && ncap > EMBER_BUF_LARGE_BUDGET) {
        /* Near the cap (an output queue to a slow reader): no doubling. */
        size_t exact = used + need;
        ncap = exact <= b->soft_cap ? b->soft_cap
             : exact + (need < EMBER_BUF_STEP ? EMBER_BUF_STEP - need : 0);
    }
    /* Too big to be kept as a spare, from a buffer that is not a pool
     * block: grow it in place rather than hold old and new at once. */
    if (ncap > EMBER_BUF_LARGE_BUDGET && b->data && b->cap > EMBER_BUF_BLOCK)
        return grow_in_place(b, used, ncap);
    /* A spare large buffer saves the malloc and, above all, the page
     * faults of touching fresh memory on every large frame. */
    uint8_t *nd = b->pool ? large_take(b->pool, used, need, &ncap) : NULL;
    if (!nd && !(nd = ember_malloc(ncap)))
        return ember_seterr("out of memory");
    if (used)
        memcpy(nd, b->data + b->off, used);
    ember_buf_release(b); /* the old storage goes back to the pool */
    b->data = nd;
    b->cap = ncap;
    b->off = 0;
    b->len = used;
    return 0;
}


int ember_buf_enc_grow(ember_buf *b, ember_enc *e, size_t need)
{
    /* Offsets survive the move; pretend the frame so far is committed. */
    size_t committed = b->len - b->off;
    size_t base_rel = (size_t)(e->base - (b->data + b->off));
    size_t p_rel = (size_t)(e->p - (b->data + b->off));
    b->len = b->off + p_rel;
    int rc = ember_buf_reserve(b, need);
    b->len = b->off + committed;
    if (rc)
        return -1;
    e->base = b->data + b->off + base_rel;
    e->p = b->data + b->off + p_rel;
    e->end = b->data + b->cap;
    return 0;
}

void ember_buf_enc_abort(ember_buf *b, ember_enc *e)
{
    e->owner = NULL;
    if (b->len == b->off)
        ember_buf_release(b);
}
