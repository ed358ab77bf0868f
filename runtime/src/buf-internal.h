/*
 * buf-internal.h — contiguous byte buffers for a connection's input and
 * output, and the small per-endpoint pool idle connections give them back to.
 */
/*
 * Rooms, lowest first (docs/internals.md); a header includes only headers
 * of rooms below its own:
 *
 *   handshake  pb-raw  pb-xcode   the wires' insides
 *   call       outgoing calls (calltab), incoming calls (dispatch)
 *   ref        exports, refs, proxies
 *   conn       a connection: struct, transport, TLS, frame output
 *   ep         the endpoint: struct, work event, sweep, graceful stop
 *   wire       frames, the personality interface
 *   hash  auth  addr  ember  buf  metrics  pb  probe   (leaves: they
 *              include public headers and ember-internal.h only)
 */
#ifndef EMBER_BUF_INTERNAL_H
#define EMBER_BUF_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ember/codec.h>

#define EMBER_BUF_BLOCK (64u * 1024u) /* pooled block size, and the least we read */
#define EMBER_BUF_POOL_MAX 8
/*
 * Spare large buffers (bigger than a block: frames over ~64 KiB). Without
 * them every large frame mallocs and frees its buffers, and glibc hands
 * that memory back to the kernel each time, so every call page-faults it
 * in again. The pool keeps at most EMBER_BUF_LARGE_MAX of them, together
 * at most EMBER_BUF_LARGE_BUDGET bytes (a bigger buffer is simply freed),
 * and drops them all at a sweep that finds them unused since the last one.
 */
#define EMBER_BUF_LARGE_MAX 2
#define EMBER_BUF_LARGE_BUDGET (2u * 1024u * 1024u)

typedef struct ember_bufpool {
    uint8_t *free[EMBER_BUF_POOL_MAX];
    int n;
    uint8_t *large[EMBER_BUF_LARGE_MAX];
    size_t large_cap[EMBER_BUF_LARGE_MAX];
    int nlarge;
    size_t large_bytes;        /* sum of large_cap[0..nlarge) */
    bool large_busy;           /* a large buffer came or went since the sweep */
} ember_bufpool;

/* Bytes data[off..len) are live; data[len..cap) is free space. A buffer
 * doubles as it grows, up to soft_cap (0: no cap); past it, it grows by
 * what is needed plus EMBER_BUF_STEP at most, in place (realloc), so a
 * queue capped near soft_cap never holds twice its size. */
typedef struct ember_buf {
    uint8_t *data;
    size_t off, len, cap;
    ember_bufpool *pool;
    size_t soft_cap;
} ember_buf;

#define EMBER_BUF_STEP ((size_t)1 << 20)

void ember_bufpool_clear(ember_bufpool *pool);
/* Called periodically (the endpoint's sweep): frees the spare large buffers
 * when none was taken or given back since the previous call. */
void ember_bufpool_sweep(ember_bufpool *pool);

static inline size_t ember_buf_used(const ember_buf *b)
{
    return b->len - b->off;
}

/* An empty buffer (no storage) takes a pooled block: false if none. Inline
 * with its counterpart below: a connection's buffers come from the pool
 * and go back to it on every read and write that empties them. */
static inline bool ember_buf_pool_take(ember_buf *b)
{
    if (!b->pool || b->pool->n == 0)
        return false;
    b->data = b->pool->free[--b->pool->n];
    b->cap = EMBER_BUF_BLOCK;
    b->off = b->len = 0;
    return true;
}

/* A block-sized buffer's storage goes back to the pool: false if it is not
 * block-sized or the pool is full. */
static inline bool ember_buf_pool_give(ember_buf *b)
{
    if (b->cap != EMBER_BUF_BLOCK || !b->pool || b->pool->n >= EMBER_BUF_POOL_MAX)
        return false;
    b->pool->free[b->pool->n++] = b->data;
    b->data = NULL;
    b->off = b->len = b->cap = 0;
    return true;
}

/* At least `need` free bytes after len (compacting or growing). */
int ember_buf_reserve_(ember_buf *b, size_t need);
static inline int ember_buf_reserve(ember_buf *b, size_t need)
{
    if (b->cap - b->len >= need)
        return 0;
    if (!b->data && need <= EMBER_BUF_BLOCK && ember_buf_pool_take(b))
        return 0;
    return ember_buf_reserve_(b, need);
}
/* Gives the storage back (pool or free) whatever it holds. */
void ember_buf_release(ember_buf *b);
/* Drops n bytes from the front; an emptied buffer goes back to the pool. */
static inline void ember_buf_consume(ember_buf *b, size_t n)
{
    b->off += n;
    if (b->off >= b->len && !(b->data && ember_buf_pool_give(b)))
        ember_buf_release(b);
}

/* Encoding straight into the buffer: the frame lives at [len, enc.p).
 * Inline: every frame sent goes through begin and commit. */
static inline int ember_buf_enc_begin(ember_buf *b, ember_enc *e, void *conn,
                                      size_t hint)
{
    e->owner = b;
    e->conn = conn;
    e->failed = 0;
    e->bad_utf8 = 0;
    e->depth_left = UINT32_MAX;
    if (ember_buf_reserve(b, hint)) {
        e->base = e->p = e->end = NULL;
        e->failed = 1;
        return -1;
    }
    e->base = e->p = b->data + b->len;
    e->end = b->data + b->cap;
    return 0;
}

int ember_buf_enc_grow(ember_buf *b, ember_enc *e, size_t need);

static inline void ember_buf_enc_commit(ember_buf *b, ember_enc *e)
{
    b->len = (size_t)(e->p - b->data);
    e->owner = NULL;
}
/* Abandons the frame being encoded. */
void ember_buf_enc_abort(ember_buf *b, ember_enc *e);

#endif
