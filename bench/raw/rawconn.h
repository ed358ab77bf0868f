/*
 * bench/raw/rawconn.h — the raw baseline's connection: length-prefixed
 * frames on a nonblocking TCP socket driven by plain libevent events.
 *
 * Frame: u32 little-endian header, then the payload. The header's low 31
 * bits are the payload length; bit 31 marks a reply. A request is echoed
 * back unchanged as a reply (the header flag flipped in place); a reply is
 * handed to on_reply. Both ends run the same code, so both can call.
 *
 * Reads go straight into one contiguous buffer (256 KiB, grown for large
 * frames), every complete frame of a read is handled, and all the output a
 * read produces leaves in one write().
 */
#ifndef BENCH_RAWCONN_H
#define BENCH_RAWCONN_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
typedef struct rconn rconn;

/* A reply arrived; payload points into the input buffer. */
typedef void (*rconn_reply_fn)(rconn *c, const uint8_t *payload, uint32_t len,
                               void *ud);
/* The peer closed or the socket failed. Runs inside the connection's own
 * callbacks: do not free the rconn here; free it later (rconn_free). */
typedef void (*rconn_close_fn)(rconn *c, void *ud);

rconn *rconn_new(struct event_base *base, int fd, rconn_reply_fn on_reply,
                 rconn_close_fn on_close, void *ud);
void rconn_free(rconn *c);

/* Queues a request of `size` payload bytes (>= 8): the timestamp ts, then
 * filler. Call rconn_flush to send what is queued outside a read callback. */
void rconn_request(rconn *c, uint64_t ts, uint32_t size);
void rconn_flush(rconn *c);

/* Requests this connection echoed so far. */
uint64_t rconn_served(const rconn *c);

/* Reads the timestamp at the front of a payload. */
uint64_t rconn_ts(const uint8_t *payload);

#endif
