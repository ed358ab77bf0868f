/*
 * wire-internal.h — the wire room: ember's frames (kinds, the header, the
 * inline parser and varint readers) and the interface a wire personality
 * implements (ember's own: frame.c and handshake.c; Twisted PB: pb.c).
 * Knows a connection by name only.
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
#ifndef EMBER_WIRE_INTERNAL_H
#define EMBER_WIRE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <ember/ember.h>

typedef struct ember_conn ember_conn;

/* ---- frame.c: the wire format ---- */

enum ember_frame_kind {
    EMBER_FR_HELLO = 1,
    EMBER_FR_REGISTER = 2,
    EMBER_FR_WELCOME = 3,
    EMBER_FR_REFUSED = 4,
    EMBER_FR_CALL = 5,
    EMBER_FR_ONEWAY = 6,
    EMBER_FR_REPLY = 7,
    EMBER_FR_ERROR = 8,
    EMBER_FR_CANCEL = 9,
    EMBER_FR_DECREF = 10,
    EMBER_FR_PING = 11,
    EMBER_FR_PONG = 12,
    EMBER_FR_GOODBYE = 13,
    EMBER_FR_MAX_ = 13
};

/* Set in the kind byte of a CALL, ONEWAY, REPLY or ERROR (protocol 3) whose
 * payload holds objects of the sender: the frame ends with its table of
 * them (docs/protocol.md, "The table of refs"). */
#define EMBER_FR_REFS 0x80u

#define EMBER_FRAME_HDR 5u /* u32 length + u8 kind */
/* Largest frame accepted before registration completes. */
#define EMBER_HANDSHAKE_MAX_FRAME (1u << 20)
/* Output queued to a peer still registering beyond which we stop reading
 * from it (out_high_water once registered). */
#define EMBER_HANDSHAKE_MAX_OUT (64u << 10)

typedef struct ember_frame {
    uint8_t kind;
    uint32_t svc;             /* CALL, ONEWAY: the service id (fixed32) */
    uint64_t h[3];            /* the kind's header varints */
    const uint8_t *payload;   /* the rest of the frame */
    size_t len;
} ember_frame;

/* v as 4 bytes little endian at p (a frame's length, a service id): one
 * store where that is plain GNU C. */
static inline void ember_put_le32(uint8_t *p, uint32_t v)
{
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, &v, 4);
#else
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
#endif
}

/* The length prefix at p: the bytes of the frame after these 4. */
static inline uint32_t ember_frame_len(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

/*
 * A varint of up to 8 bytes at p, with 8 bytes readable there, read as one
 * little-endian word where that is plain GNU C: the first byte without the
 * continuation bit ends it, the 7-bit groups before it are packed in three
 * steps. Returns its length, 0 when it is longer (or the build has no
 * word reads): then byte by byte.
 */
static inline unsigned ember_varint_word_(const uint8_t *p, uint64_t *out)
{
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t x;
    memcpy(&x, p, 8);
    uint64_t stop = ~x & UINT64_C(0x8080808080808080);
    if (!stop)
        return 0;
    unsigned n = ((unsigned)__builtin_ctzll(stop) >> 3) + 1;
    if (n < 8)
        x &= (UINT64_C(1) << (8 * n)) - 1;
    x = (x & UINT64_C(0x007f007f007f007f)) |
        ((x & UINT64_C(0x7f007f007f007f00)) >> 1);
    x = (x & UINT64_C(0x00003fff00003fff)) |
        ((x & UINT64_C(0x3fff00003fff0000)) >> 2);
    x = (x & UINT64_C(0x000000000fffffff)) |
        ((x & UINT64_C(0x0fffffff00000000)) >> 4);
    *out = x;
    return n;
#else
    (void)p;
    (void)out;
    return 0;
#endif
}

/* A header varint: one byte, or a word (call ids: 5 to 7 bytes) inline. */
static inline int ember_frame_varint(ember_dec *d, uint64_t *out)
{
    const uint8_t *p = d->p;
    if (p < d->end && *p < 0x80) {
        *out = *p;
        d->p = p + 1;
        return 0;
    }
    unsigned n;
    if (d->end - p >= 8 && (n = ember_varint_word_(p, out))) {
        d->p = p + n;
        return 0;
    }
    return ember_dec_varint_(d, out);
}

/* Header varints each kind carries. */
int ember_frame_nhdr(uint8_t kind);
const char *ember_frame_kind_name(uint8_t kind);

extern const uint8_t ember_frame_nhdr_[EMBER_FR_MAX_ + 1];
/* The reason ember_frame_parse gives a frame over max_frame: the reader
 * tells it by identity, to say which limit and how large. */
extern const char ember_frame_too_large[];

/*
 * Parses one frame from p[0..n). Returns 1 with *f and *used set, 0 when more
 * bytes are needed (*used = the whole frame's size when the length is known,
 * else 0), -1 on a malformed frame (*why set). Inline: it runs once per
 * frame read.
 */
static inline int ember_frame_parse(const uint8_t *p, size_t n,
                                    uint32_t max_frame, ember_frame *f,
                                    size_t *used, const char **why)
{
    *used = 0;
    if (n < 4)
        return 0;
    uint32_t len = ember_frame_len(p);
    if (len == 0) {
        *why = "empty frame";
        return -1;
    }
    if (len > max_frame) {
        *why = ember_frame_too_large;
        return -1;
    }
    *used = (size_t)len + 4;
    if (n < *used)
        return 0;
    uint8_t kind = p[4], base = kind;
    if (kind == 0 || kind > EMBER_FR_MAX_) {
        /* CALL..ERROR with a table of refs; the reader checks the version */
        base = kind & (uint8_t)~EMBER_FR_REFS;
        if (!(kind & EMBER_FR_REFS) || (unsigned)base - EMBER_FR_CALL >= 4u) {
            *why = "unknown frame kind";
            return -1;
        }
    }
    /* Only p, end and why of the decoder are used by the varint reader. */
    ember_dec d;
    d.p = p + EMBER_FRAME_HDR;
    d.end = p + 4 + len;
    d.why = NULL;
    f->kind = kind;
    f->h[0] = f->h[1] = f->h[2] = 0;
    /* CALL and ONEWAY start with the service id, 4 bytes little endian:
     * a hash, so a varint would mostly take 5. */
    if ((unsigned)base - EMBER_FR_CALL < 2u) {
        if (len < 5) {
            *why = "truncated frame header";
            return -1;
        }
        f->svc = ember_frame_len(d.p);
        d.p += 4;
    }
    for (int i = 0; i < ember_frame_nhdr_[base]; i++) {
        const uint8_t *start = d.p;
        if (ember_frame_varint(&d, &f->h[i])) {
            /* Longer than a 64-bit value takes: the reader stopped at its
             * tenth byte, wherever the frame ends; else it was cut short. */
            *why = d.p - start == 10 ? "frame header varint overflows 64 bits"
                                     : "truncated frame header";
            return -1;
        }
    }
    f->payload = d.p;
    f->len = (size_t)(d.end - d.p);
    return 1;
}

/* A frame with only header varints: the first ember_frame_nhdr(kind) of
 * a, b (a kind sent this way has at most two). */
int ember_frame_send_hdr(ember_conn *c, uint8_t kind, uint64_t a, uint64_t b);

/* ---- the wire personality: framing, handshake, liveness, value encoding ----
 *
 * A connection speaks ember's own wire (c->wire == NULL: frame.c,
 * handshake.c, the inline paths below) or another personality behind this
 * interface (Twisted PB: pb.c). Calls, dispatch, exactly-once outcomes,
 * refs and the child manager only see what these hooks hand them.
 */
typedef struct ember_wire {
    const char *name;
    /* Reads and handles what arrived; conn.c's read_once for this wire.
     * 1 when bytes came in, 0 otherwise (or the connection closed). */
    int (*input)(ember_conn *c);
    /* Sends a call (call_id 0: oneway) to object oid (0: the peer's
     * exports). svc, m: the service and method, NULL when unknown (raw).
     * -1 when it is not sent, with the reason and *st the call's end. */
    int (*call)(ember_conn *c, uint64_t call_id, uint64_t oid, uint32_t method,
                const ember_service_desc *svc, const ember_method_desc *m,
                ember_encode_fn enc, const void *args, ember_status *st);
    /* Answers the peer's call call_id to method m (NULL: raw or unknown):
     * EMBER_OK (enc writes the result struct), EMBER_RAISED (enc writes
     * the error struct) or a failure with msg. */
    int (*answer)(ember_conn *c, uint64_t call_id, const ember_method_desc *m,
                  ember_status st, uint32_t error_id, ember_encode_fn enc,
                  const void *value, const char *msg);
    /* A call we made ended early (timeout, cancel): tell the peer, if the
     * wire can. */
    void (*cancel)(ember_conn *c, uint64_t call_id);
    /* We received object oid `count` times and hold it no more. */
    void (*decref)(ember_conn *c, uint64_t oid, uint64_t count);
    /* The peer has been silent for a heartbeat interval. */
    void (*ping)(ember_conn *c);
    /* Tells a registered peer we are leaving (reason NULL: a graceful
     * stop); -1 when the wire has no such message. */
    int (*goodbye)(ember_conn *c, const char *reason);
    /* The connection is being freed: the personality's state goes. */
    void (*free)(ember_conn *c);
} ember_wire;

/* pb.c: switches the new connection c to Twisted PB and starts its
 * negotiation: a root's PB listener (server) or a node registering as
 * `name` with a PB root (client). */
int ember_pb_start(ember_conn *c, bool server, const char *name);

#endif
