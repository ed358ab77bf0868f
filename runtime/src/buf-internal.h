/*
 * buf-internal.h — contiguous byte buffers for a connection's input and
 * output, and the small per-endpoint pool idle connections give them back to.
 */
#ifndef EMBER_BUF_INTERNAL_H
#define EMBER_BUF_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <ember/codec.h>

#define EMBER_BUF_BLOCK (64u * 1024u) /* pooled block size, and the least we read */
#define EMBER_BUF_POOL_MAX 8

typedef struct ember_bufpool {
    uint8_t *free[EMBER_BUF_POOL_MAX];
    int n;
} ember_bufpool;

/* Bytes data[off..len) are live; data[len..cap) is free space. */
typedef struct ember_buf {
    uint8_t *data;
    size_t off, len, cap;
    ember_bufpool *pool;
} ember_buf;

void ember_bufpool_clear(ember_bufpool *pool);

static inline size_t ember_buf_used(const ember_buf *b)
{
    return b->len - b->off;
}

/* At least `need` free bytes after len (compacting or growing). */
int ember_buf_reserve(ember_buf *b, size_t need);
/* Drops n bytes from the front; an emptied buffer goes back to the pool. */
void ember_buf_consume(ember_buf *b, size_t n);
/* Gives the storage back (pool or free) whatever it holds. */
void ember_buf_release(ember_buf *b);

/* Encoding straight into the buffer: the frame lives at [len, enc.p). */
int ember_buf_enc_begin(ember_buf *b, ember_enc *e, void *conn, size_t hint);
int ember_buf_enc_grow(ember_buf *b, ember_enc *e, size_t need);
void ember_buf_enc_commit(ember_buf *b, ember_enc *e);
/* Abandons the frame being encoded. */
void ember_buf_enc_abort(ember_buf *b, ember_enc *e);

#endif
