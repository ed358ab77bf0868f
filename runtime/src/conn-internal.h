/*
 * conn-internal.h — the connection room: one TCP/unix connection (conn.c):
 * its buffers, transport (plain or TLS, tls.c), the outgoing call slots,
 * incoming calls, objects exported on it, refs received on it, and close.
 * Frame output (ember_frame_begin / ember_frame_end) is inline here, as it
 * writes into the connection's buffer.
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
#ifndef EMBER_CONN_INTERNAL_H
#define EMBER_CONN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <event2/event.h>

#include "auth-internal.h"
#include "buf-internal.h"
#include "ember-internal.h"
#include "ep-internal.h"
#include "hash-internal.h"
#include "wire-internal.h"

/* ---- the transport: how a connection's bytes move (plain or TLS) ---- */

/*
 * read/write return the bytes moved (> 0), 0 for end of stream (read only),
 * or -1: with errno EAGAIN when the socket is not ready (the transport then
 * sets c->write_needs_read / c->read_needs_write if the other direction must
 * become ready first, as TLS does), otherwise a failure described by
 * ember_last_error(). Framing, calls and the child manager never see which
 * transport a connection uses.
 */
typedef struct ember_transport {
    ssize_t (*read)(ember_conn *c, void *p, size_t n);
    ssize_t (*write)(ember_conn *c, const void *p, size_t n);
    /* Decrypted bytes buffered inside the transport (no read event will
     * announce them). NULL: never. */
    bool (*pending)(ember_conn *c);
    /* Best-effort close notification and release, before close(fd). */
    void (*close)(ember_conn *c);
} ember_transport;

extern const ember_transport ember_plain_transport;

/* ---- the connection ---- */

struct ember_pending;              /* call-internal.h */

enum { EMBER_CONN_HANDSHAKE, EMBER_CONN_READY, EMBER_CONN_CLOSED };

/* A local object (or a proxy) exported on a conn, hashed both ways: by its
 * object id for the peer's calls and DECREFs, by the ref's address when it
 * is sent again. */
typedef struct ember_xobj {
    ember_hnode by_oid;            /* c->xobj_oids, key: the object id */
    ember_hnode by_ref;            /* c->xobj_refs, key: the ref's address */
    ember_ref *ref;                /* retained while exported */
    uint64_t sent;                 /* times sent, minus decrefs */
    /* The frame being encoded: the times it sent this object, and the
     * next object it sent (c->xundo), so they are undone if it is not sent. */
    uint64_t undo;
    struct ember_xobj *undo_next;
} ember_xobj;

/* What a peer we do not read from must take of its output within
 * dead_after_ms to be kept: a slow reader that keeps reading is alive. */
#define EMBER_DRAIN_STEP (64u << 10)

struct ember_conn {
    ember_ep *ep;
    ember_conn *prev, *next;       /* ep->conns, or ep->dead */
    ember_conn *dirty_next;
    bool dirty;
    int state;
    const ember_wire *wire;        /* NULL: ember's own wire */
    struct ember_pb *pb;           /* the PB personality's state (pb.c) */
    bool close_after_flush;
    bool peer_gone;                /* read its end of stream, or the socket
                                      failed: no linger at the close */
    bool ping_out;                 /* a PING is unanswered */
    bool read_paused;              /* output over its cap: not reading */
    uint8_t close_class;           /* 1 + EMBER_CLOSE_*, 0: from the reason */
    int fd;
    struct event *rev, *wev;
    bool wev_added;
    ember_buf in, out;
    const ember_transport *tp;
    void *tls;                     /* SSL, for the TLS transport */
    bool tls_done;                 /* TLS handshake finished */
    char *tls_err;                 /* a TLS failure met behind bytes already
                                      read: the next read reports it */
    size_t tls_hs_in;              /* bytes OpenSSL read from the socket
                                      before the handshake finished (it may
                                      hold them all: a ClientHello can
                                      announce 128 KiB) */
    bool write_needs_read;         /* a write waits for readability (TLS) */
    bool read_needs_write;         /* a read waits for writability (TLS) */
    /* Registration: on a root, the nonce it sent in HELLO; on a node, the
     * root's nonce and its own (checked against WELCOME's root proof). */
    uint8_t root_nonce[EMBER_NONCE_LEN];
    uint8_t node_nonce[EMBER_NONCE_LEN];
    uint64_t created_ms, last_rx_ms;
    /* While we do not read from it (read_paused), the sweep's marks: what
     * was queued for the peer, ours and the kernel's, when it last took
     * EMBER_DRAIN_STEP bytes of it, and when. */
    uint64_t drained_ms;
    size_t drain_mark;
    bool drain_marked;
    uint32_t heartbeat_ms, dead_after_ms;
    char *peer;                    /* "127.0.0.1:41234" */
    const char *name;              /* child name or "root"; not owned */
    ember_child *child;            /* on a root */
    ember_ref *peer_ref;           /* the peer's exports; owned by child/node */

    struct ember_pending *slots;   /* outgoing calls */
    uint32_t nslots, free_slot, npending;
    uint32_t in_hint;              /* size of the last frame if large, else 0 */
    ember_conn *unreg_prev, *unreg_next; /* ep's unregistered peers */
    bool unreg;                    /* on that list */
    size_t unreg_held;             /* input bytes counted in ep->unreg_bytes */

    ember_call *calls;             /* incoming calls in flight */
    uint32_t ncalls;
    uint32_t ncancelled;           /* of those, the ones the caller cancelled
                                      (still running: their caller no longer
                                      counts them) */
    bool oneway_dropped;           /* a ONEWAY over max_outstanding was
                                      dropped (logged once) */
    ember_htab calls_by_id;        /* two-way ones, by the caller's call id */
    size_t deferred_bytes;         /* arena heap held by those calls that
                                      outlived their dispatch (deferred) */

    ember_htab xobj_oids, xobj_refs; /* local objects exported here */
    ember_htab proxies;            /* the proxies among them, by the ref
                                      they forward to (ref.hn) */
    uint64_t next_oid;
    ember_xobj *xundo;             /* exported by the frame being encoded */
    bool ref_tables;               /* protocol 3: frames holding our objects
                                      list them (EMBER_FR_REFS); the refs
                                      the peer sends are counted by their
                                      frame's table, not by their decode
                                      (as a PB message's are, pb.c) */
    /* What we send is kept within our limits and the ones the peer said it
     * takes at registration (ember_conn_peer_limits), so that a frame it
     * would disconnect for fails alone here. */
    uint32_t out_max_frame, out_max_depth;
    ember_dec_limits peer_lim;     /* as the peer said them (0: not said) */
    uint64_t in_refs;              /* the refs of the sender the frame being
                                      handled lists and no decode took yet:
                                      a proxy does not copy those (proxy.c) */
    ember_htab rrefs;              /* the peer's objects we hold, by oid */
};

/* Takes ownership of fd (nonblocking). NULL on failure (fd closed). */
ember_conn *ember_conn_new(ember_ep *ep, int fd, const char *peer);
/* Registration finished: calls may flow (and c leaves the unregistered). */
void ember_conn_set_ready(ember_conn *c);
/* Closes: pending calls end with `st`, incoming calls are orphaned,
 * refs die, ep->on_lost runs. The struct is freed later. */
void ember_conn_close(ember_conn *c, ember_status st, const char *reason);
void ember_conn_closef(ember_conn *c, ember_status st, const char *fmt, ...)
    EMBER_PRINTF(3, 4);
/* The peer's max_frame and decode limits (each 0: not said), from its
 * HELLO or REGISTER: what we send stays within its max_frame and
 * max_depth too, and a proxy checks what it passes on under the rest. */
void ember_conn_peer_limits(ember_conn *c, uint32_t max_frame,
                            const ember_dec_limits *lim);
/* Queues GOODBYE (with a reason, or NULL: a graceful stop) to a
 * registered peer. */
int ember_conn_goodbye(ember_conn *c, const char *reason);
/* The reason a peer's GOODBYE closes with (logged at INFO, not WARN); a
 * GOODBYE that gives a reason closes with "<this>: <reason>". */
#define EMBER_GOODBYE_REASON "peer said goodbye"
void ember_conn_mark_dirty_(ember_conn *c);
/* Output was queued: the end of the read batch running now flushes c, or
 * outside a batch the work event (once per loop iteration). */
static inline void ember_conn_mark_dirty(ember_conn *c)
{
    if (!c->dirty && c->state != EMBER_CONN_CLOSED)
        ember_conn_mark_dirty_(c);
}
void ember_conn_flush(ember_conn *c);
void ember_conn_free(ember_conn *c);

/* ---- lingering: the end of a closed connection's socket ----
 *
 * A socket closed while the peer's bytes wait unread in it makes the
 * kernel answer with a reset, and a peer reading a reset may lose the
 * GOODBYE, REFUSED or last error queued before it. So the close hands the
 * socket to a linger (ember_conn_close): the rest of the output is written,
 * shutdown(SHUT_WR) sends our end of stream, and what the peer sends is
 * read and thrown away until its own end of stream, EMBER_LINGER_MAX_IN
 * bytes or handshake_ms, then the socket is closed. A linger is a socket
 * and a small struct on its endpoint, at most EMBER_LINGER_MAX of them (the
 * oldest is cut at once past it), and ember_ep_fini cuts them all. */
#define EMBER_LINGER_MAX 256u
#define EMBER_LINGER_MAX_IN (4u << 20)
/* Output left unwritten at the close that a linger still writes (plain
 * sockets alone): a peer with more queued for it was not reading. */
#define EMBER_LINGER_MAX_OUT (64u << 10)
/* Closes every linger of ep at once (a reset where the peer's bytes wait). */
void ember_linger_cut_all(ember_ep *ep);
/* For a wire's input: reads what the socket has into c->in (at least
 * `want` bytes of room): 1 when bytes came in, 0 when none (EAGAIN) or
 * the connection closed. */
int ember_conn_read_into(ember_conn *c, size_t want);
/* Drops `used` bytes of c->in that were handled: 1 to read on, 0 to stop
 * (output over its cap: reading paused). */
int ember_conn_read_done(ember_conn *c, size_t used);
/* Hash table nodes c's tables have looked at so far. */
uint64_t ember_conn_htab_probes(const ember_conn *c);
static inline ember_dec_limits ember_conn_dec_limits(const ember_conn *c)
{
    const ember_limits *lim = &c->ep->lim;
    ember_dec_limits l = {lim->max_depth, lim->max_elems, lim->max_string,
                          lim->decode_ratio, lim->decode_floor};
    return l;
}

/* ember_dec_init for a frame's payload from c, with c's decode limits:
 * inline, once per call served and per reply. */
static inline void ember_dec_init_conn(ember_dec *d, ember_conn *c,
                                       const uint8_t *p, size_t len,
                                       ember_arena *arena)
{
    d->p = p;
    d->end = p + len;
    d->arena = arena;
    d->conn = c;
    d->lim = ember_conn_dec_limits(c);
    /* max_depth counts the payload's own struct as the first level, as
     * ember_frame_begin does for what we send. */
    d->depth = 1;
    d->why = NULL;
    d->in_len = len;
    d->used = 0;
    d->outside = 0;
}

/* Starts a frame in c's output buffer; end patches the length and queues it.
 * Inline: every frame sent uses them. */
static inline int ember_frame_begin(ember_conn *c, ember_enc *e, uint8_t kind);

/* The out-of-line ends of ember_frame_begin / ember_frame_end. */
int ember_frame_closed_(ember_enc *e);
int ember_frame_end_fail_(ember_conn *c, ember_enc *e, size_t len);
/* The frame being encoded was sent: the exports it made stay. */
void ember_frame_exports_kept_(ember_conn *c);
/* ember_frame_end of a frame that sent objects (c->xundo): protocol 3
 * ends it with its table of them and flags its kind; its exports stay
 * when it is sent, and are taken back when it is not. */
int ember_frame_end_refs_(ember_conn *c, ember_enc *e);

/* What ember_frame_begin reserves: the frame's first 5 bytes, then room
 * for any kind's header (a service id and up to five varints), written with
 * ember_frame_put_varint without further checks. */
#define EMBER_FRAME_BEGIN_ROOM 64u

static inline void ember_frame_put_varint(ember_enc *e, uint64_t v)
{
    e->p = ember_enc_varint_at_(e->p, v);
}

static inline int ember_frame_begin(ember_conn *c, ember_enc *e, uint8_t kind)
{
    if (c->state == EMBER_CONN_CLOSED)
        return ember_frame_closed_(e);
    if (ember_buf_enc_begin(&c->out, e, c, EMBER_FRAME_BEGIN_ROOM))
        return -1;
    /* max_depth counts the payload's own struct as the first level. */
    e->depth_left = c->out_max_depth - 1;
    e->p[4] = kind; /* the length is written by ember_frame_end */
    e->p += EMBER_FRAME_HDR;
    return 0;
}

/* Queues the frame being encoded, or fails it (the common part of both
 * ends). */
static inline int ember_frame_commit_(ember_conn *c, ember_enc *e)
{
    size_t len = ember_enc_len(e) - 4;
    if (e->failed || len > c->out_max_frame)
        return ember_frame_end_fail_(c, e, len);
    ember_put_le32(e->base, (uint32_t)len);
    ember_buf_enc_commit(&c->out, e);
    ember_conn_mark_dirty(c);
    return 0;
}

static inline int ember_frame_end(ember_conn *c, ember_enc *e)
{
    if (c->xundo)
        return ember_frame_end_refs_(c, e);
    return ember_frame_commit_(c, e);
}

/* ---- tls.c ---- */
struct ember_tls_config;
/* Builds ep->tls_ctx from cfg (server: a root). -1 with ember_last_error(). */
int ember_tls_ctx_new(ember_ep *ep, const struct ember_tls_config *cfg,
                      bool server);
void ember_tls_ctx_free(ember_ep *ep);
/* Switches a new connection to TLS; host: the name the node expects in the
 * root's certificate (NULL on a root). -1 with ember_last_error(). */
int ember_tls_attach(ember_conn *c, bool server, const char *host);
/* 0 when host can be checked against a root's certificate (ep: a node's
 * with its TLS context), else -1 with ember_last_error(). */
int ember_tls_host_check(ember_ep *ep, const char *host);

#endif
