/*
 * rt-internal.h — the runtime's object model, private to runtime/src.
 *
 *   ember_ep      what a root and a node share: the event_base, limits,
 *                 exports, buffer pool, call deadlines, the work event
 *                 (flush + deferred outcomes + reaping) and the sweep timer
 *                 (heartbeats, handshake deadlines).
 *   ember_conn    one TCP/unix connection: framing, outgoing call table,
 *                 incoming calls, objects exported on it, refs received on it.
 *   ember_call    an incoming call being served (pooled, inline arena).
 *   ember_ref     something callable: a peer's exports, a peer's object, or
 *                 a local object.
 *
 * The wire personality (framing + handshake) lives in frame.c and
 * handshake.c; call semantics (calltab.c, call.c, exports.c, ref.c) only see
 * parsed frames, so a second personality (Twisted PB) can slot in later.
 */
#ifndef EMBER_RT_INTERNAL_H
#define EMBER_RT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include <event2/event.h>

#include "buf-internal.h"
#include "ember-internal.h"
#include "metrics-internal.h"

typedef struct ember_conn ember_conn;
typedef struct ember_ep ember_ep;

#define EMBER_NONCE_LEN 32  /* HELLO and REGISTER nonces */
#define EMBER_MAC_LEN 32    /* HMAC-SHA256 */

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
        *why = "frame larger than max_frame";
        return -1;
    }
    *used = (size_t)len + 4;
    if (n < *used)
        return 0;
    uint8_t kind = p[4];
    if (kind == 0 || kind > EMBER_FR_MAX_) {
        *why = "unknown frame kind";
        return -1;
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
    if ((unsigned)kind - EMBER_FR_CALL < 2u) {
        if (len < 5) {
            *why = "truncated frame header";
            return -1;
        }
        f->svc = ember_frame_len(d.p);
        d.p += 4;
    }
    for (int i = 0; i < ember_frame_nhdr_[kind]; i++)
        if (ember_frame_varint(&d, &f->h[i])) {
            *why = "truncated frame header";
            return -1;
        }
    f->payload = d.p;
    f->len = (size_t)(d.end - d.p);
    return 1;
}

/* Starts a frame in c's output buffer; end patches the length and queues it.
 * Inline (after struct ember_conn below): every frame sent uses them. */
static inline int ember_frame_begin(ember_conn *c, ember_enc *e, uint8_t kind);
static inline int ember_frame_end(ember_conn *c, ember_enc *e);
/* A frame with only header varints: the first ember_frame_nhdr(kind) of
 * a, b (a kind sent this way has at most two). */
int ember_frame_send_hdr(ember_conn *c, uint8_t kind, uint64_t a, uint64_t b);

/* ---- hash.c: keyed hashing of what peers choose ---- */

/* SipHash's initial state for one key. */
typedef struct ember_sipkey {
    uint64_t v[4];
} ember_sipkey;

/* The process's random key (set by ember_hash_init). */
extern ember_sipkey ember_sipkey_;
/* Draws the key once (thread-safe); every table calls it before hashing. */
void ember_hash_init(void);
void ember_sipkey_init(ember_sipkey *s, uint64_t k0, uint64_t k1);
/* SipHash-c-d of data[0..n) (c = 1, d = 3 for the tables; 2-4 is the
 * reference, for tests). */
uint64_t ember_siphash(const ember_sipkey *s, const void *data, size_t n,
                       int crounds, int drounds);
/* A NUL-terminated string under the process key (child names). */
uint32_t ember_hash_str(const char *s);

static inline uint64_t ember_rotl64(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

static inline void ember_sipround(uint64_t v[4])
{
    v[0] += v[1]; v[1] = ember_rotl64(v[1], 13); v[1] ^= v[0];
    v[0] = ember_rotl64(v[0], 32);
    v[2] += v[3]; v[3] = ember_rotl64(v[3], 16); v[3] ^= v[2];
    v[0] += v[3]; v[3] = ember_rotl64(v[3], 21); v[3] ^= v[0];
    v[2] += v[1]; v[1] = ember_rotl64(v[1], 17); v[1] ^= v[2];
    v[2] = ember_rotl64(v[2], 32);
}

/* SipHash-1-3 of one 64-bit key (its 8 little-endian bytes) under the
 * process key: what ember_siphash(&ember_sipkey_, bytes, 8, 1, 3) gives,
 * in five rounds and no loads. Once per call served: inline. */
static inline uint64_t ember_hash_u64(uint64_t m)
{
    uint64_t v[4] = {ember_sipkey_.v[0], ember_sipkey_.v[1],
                     ember_sipkey_.v[2], ember_sipkey_.v[3]};
    const uint64_t b = (uint64_t)8 << 56;
    v[3] ^= m;
    ember_sipround(v);
    v[0] ^= m;
    v[3] ^= b;
    ember_sipround(v);
    v[0] ^= b;
    v[2] ^= 0xff;
    ember_sipround(v);
    ember_sipround(v);
    ember_sipround(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* ---- htab.c: objects hashed by a 64-bit key, intrusive ---- */

typedef struct ember_hnode {
    struct ember_hnode *next;
    uint64_t key;
    uint32_t hash;                 /* ember_hash_u64(key), kept for del and grow */
} ember_hnode;

typedef struct ember_htab {
    ember_hnode **b;
    uint32_t nb, n;
    uint64_t probes;               /* nodes looked at, for tests */
} ember_htab;

void ember_htab_grow(ember_htab *t);
/* Empties t; returns what it held, chained through next. */
ember_hnode *ember_htab_take_all(ember_htab *t);
void ember_htab_free(ember_htab *t);

/* Put, get and delete run once or twice per call: inline. Keys are hashed
 * under the process's random key (hash.c), so chains stay short whatever
 * keys a peer picks. */

/* Inserts x under key: 0; 1 when a node with that key is already in (x is
 * not inserted); -1 only when there is no table at all (out of memory). */
static inline int ember_htab_put_h(ember_htab *t, ember_hnode *x, uint64_t key,
                                   uint32_t h)
{
    if (t->n >= t->nb)
        ember_htab_grow(t);
    if (!t->nb)
        return -1;
    ember_hnode **head = &t->b[h & (t->nb - 1)];
    for (ember_hnode *y = *head; y; y = y->next) {
        t->probes++;
        if (y->key == key)
            return 1;
    }
    x->key = key;
    x->hash = h;
    x->next = *head;
    *head = x;
    t->n++;
    return 0;
}

/* The _h forms take ember_hash_u64(key) computed by the caller. */
static inline ember_hnode *ember_htab_get_h(ember_htab *t, uint64_t key, uint32_t h)
{
    if (!t->nb)
        return NULL;
    ember_hnode *x = t->b[h & (t->nb - 1)];
    for (; x; x = x->next) {
        t->probes++;
        if (x->key == key)
            break;
    }
    return x;
}

static inline int ember_htab_put(ember_htab *t, ember_hnode *x, uint64_t key)
{
    return ember_htab_put_h(t, x, key, (uint32_t)ember_hash_u64(key));
}

static inline ember_hnode *ember_htab_get(ember_htab *t, uint64_t key)
{
    return ember_htab_get_h(t, key, (uint32_t)ember_hash_u64(key));
}

static inline void ember_htab_del(ember_htab *t, ember_hnode *x)
{
    if (!t->nb)
        return;
    for (ember_hnode **pp = &t->b[x->hash & (t->nb - 1)]; *pp;
         pp = &(*pp)->next) {
        t->probes++;
        if (*pp == x) {
            *pp = x->next;
            t->n--;
            return;
        }
    }
}

#define EMBER_CONTAINER(p, type, member) \
    ((type *)(void *)((char *)(p) - offsetof(type, member)))

/* ---- the endpoint ---- */

struct ember_pending;
struct ember_deferred;

struct ember_deadlines;             /* calltab.c */

/* What a ref knows of its endpoint: shared by the refs, cleared when the
 * endpoint is freed, so a ref that outlives it fails its calls cleanly. */
typedef struct ember_eplink {
    ember_ep *ep;                   /* NULL once the endpoint is freed */
    uint32_t rc;                    /* the endpoint's + one per ref */
} ember_eplink;

struct ember_ep {
    struct event_base *base;
    ember_limits lim;
    ember_exports *exports;
    ember_eplink *link;         /* handed to refs (ref.c) */
    ember_bufpool pool;
    ember_root *root;           /* exactly one of root / node is set */
    ember_node *node;
    const char *what;           /* "root" / "node NAME" for logs */

    ember_conn *conns;          /* live connections (doubly linked) */
    size_t nconns;
    ember_conn *dirty;          /* connections with output to flush */
    ember_conn *dead;           /* closed, waiting to be freed */
    struct event *work_ev;      /* flush + deferred outcomes + reap */
    bool work_pending;
    bool in_work, kick_again;   /* re-kicks from inside the work event */
    struct ember_deferred *defq, *defq_tail;
    struct ember_deferred *defrun; /* the batch ember_defer_run is running */
    void *tls_ctx;              /* SSL_CTX when TLS is configured, else NULL */

    uint64_t htab_probes;       /* of connections freed (probe-internal.h) */

    struct ember_deadlines *dl; /* call deadlines (calltab.c) */
    struct event *timer_ev;
    uint64_t timer_at;          /* when timer_ev fires, 0: not armed */

    struct event *sweep_ev;     /* heartbeats + handshake deadlines */
    uint32_t sweep_ms;          /* its period */
    struct event *stop_ev;      /* a graceful stop's deadline (shutdown_ms) */

    ember_call *free_calls;     /* pool of call objects */
    uint32_t nfree_calls;
    ember_call *orphans;        /* calls whose connection is gone */
    uint32_t gen;               /* call generations, unique per endpoint */
    uint64_t inflight;          /* outgoing pending + incoming calls */

    ember_arena_spare arena_spare; /* big block shared by calls and scratch */
    ember_arena scratch;        /* decodes replies for callbacks */
    uint32_t scratch_users;     /* callbacks and handshakes reading it */
    uint64_t scratch_buf[64];

    /* Peers not registered yet, oldest first (conn.c), and the input
     * buffer bytes they hold together: a root bounds both
     * (max_unregistered, unregistered_bytes); a node's budget is none. */
    ember_conn *unreg_head, *unreg_tail;
    uint32_t unreg_n;
    size_t unreg_bytes, unreg_peak, unreg_budget;

    ember_ep_metrics mt;        /* closes by reason, registrations */

    bool stopping;              /* graceful shutdown: refuse new calls */
    bool freeing;

    /* Served calls answered inside their handler during the read batch
     * now running (call.c): their time is settled with one clock reading
     * when the batch ends, instead of one per call. */
    uint32_t batch_depth;       /* on_read nesting; output queued inside
                                   is flushed at the outermost end */
    uint32_t ntally, tally_calls;
    uint64_t tally_t0;          /* the earliest start among them */
    struct ember_tally {
        struct ember_xentry *x;
        uint64_t key;
        uint32_t ver, n;
    } tally[4];

    /* Hooks into root.c / node.c. */
    int (*on_handshake)(ember_conn *c, const ember_frame *f);
    /* A peer on another wire asks to register as `name` (root): 0 admitted
     * (the child exists, c is READY), else refused with why[] set. */
    int (*admit)(ember_conn *c, const char *name, char *why, size_t n);
    /* The admitted peer has been answered: on_join runs. */
    void (*joined)(ember_conn *c);
    /* A node's registration on another wire was answered: 0 accepted,
     * else refused (why). */
    void (*registered)(ember_conn *c, bool ok, const char *why);
    void (*on_lost)(ember_conn *c, const char *reason);
    void (*on_idle)(ember_ep *ep); /* stopping and nothing in flight */
};

int ember_ep_init(ember_ep *ep, struct event_base *base, const ember_limits *lim,
                  const char *what);
/* Closes every connection (pending calls: status), delivers deferred
 * outcomes, frees everything the endpoint owns. */
void ember_ep_fini(ember_ep *ep, ember_status status);
void ember_ep_kick(ember_ep *ep);   /* schedule the work event */
/* Writes what every dirty connection has queued. */
void ember_ep_flush_dirty(ember_ep *ep);
/* (Re)arms the sweep for connections with this heartbeat interval (a node
 * adopts its root's from WELCOME). */
#define EMBER_SWEEP_MIN_MS 5
#define EMBER_SWEEP_MAX_MS 1000
void ember_ep_sweep_every(ember_ep *ep, uint32_t heartbeat_ms);
/* A graceful stop begins: refuse new calls, run ep->on_idle once nothing
 * is in flight, or at the latest after lim.shutdown_ms, when every
 * connection is closed (what we serve is orphaned, what we called ends
 * EMBER_SHUTDOWN) so that nothing is in flight any more. */
void ember_ep_stop(ember_ep *ep, void (*on_idle)(ember_ep *ep));
/* Kicks the work event when stopping and nothing is in flight any more. */
static inline void ember_ep_check_idle(ember_ep *ep)
{
    if (ep->stopping && ep->inflight == 0)
        ember_ep_kick(ep);
}

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
     * exports). svc, m: the service and method, NULL when unknown (raw). */
    int (*call)(ember_conn *c, uint64_t call_id, uint64_t oid, uint32_t method,
                const ember_service_desc *svc, const ember_method_desc *m,
                ember_encode_fn enc, const void *args);
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

/* ---- the connection ---- */

enum { EMBER_CONN_HANDSHAKE, EMBER_CONN_READY, EMBER_CONN_CLOSED };

typedef struct ember_xobj {        /* a local object exported on a conn */
    uint64_t oid;
    ember_ref *ref;                /* retained while exported */
    uint64_t sent;                 /* times sent, minus decrefs */
} ember_xobj;

struct ember_conn {
    ember_ep *ep;
    ember_conn *prev, *next;       /* ep->conns, or ep->dead */
    ember_conn *dirty_next;
    bool dirty;
    int state;
    const ember_wire *wire;        /* NULL: ember's own wire */
    struct ember_pb *pb;           /* the PB personality's state (pb.c) */
    bool close_after_flush;
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
    bool write_needs_read;         /* a write waits for readability (TLS) */
    bool read_needs_write;         /* a read waits for writability (TLS) */
    /* Registration: on a root, the nonce it sent in HELLO; on a node, the
     * root's nonce and its own (checked against WELCOME's root proof). */
    uint8_t root_nonce[EMBER_NONCE_LEN];
    uint8_t node_nonce[EMBER_NONCE_LEN];
    uint64_t created_ms, last_rx_ms;
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
    ember_htab calls_by_id;        /* two-way ones, by the caller's call id */
    size_t deferred_bytes;         /* arena heap held by those calls that
                                      outlived their dispatch (deferred) */

    ember_xobj *xobjs;             /* local objects exported here */
    uint32_t nxobjs, capxobjs;
    uint64_t next_oid;
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
    d->depth = 0;
    d->why = NULL;
    d->in_len = len;
    d->used = 0;
}

/* The out-of-line ends of ember_frame_begin / ember_frame_end. */
int ember_frame_closed_(ember_enc *e);
int ember_frame_end_fail_(ember_conn *c, ember_enc *e, size_t len);

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
    e->p[4] = kind; /* the length is written by ember_frame_end */
    e->p += EMBER_FRAME_HDR;
    return 0;
}

static inline int ember_frame_end(ember_conn *c, ember_enc *e)
{
    size_t len = ember_enc_len(e) - 4;
    if (e->failed || len > c->ep->lim.max_frame)
        return ember_frame_end_fail_(c, e, len);
    ember_put_le32(e->base, (uint32_t)len);
    ember_buf_enc_commit(&c->out, e);
    ember_conn_mark_dirty(c);
    return 0;
}

/* ---- calltab.c: outgoing calls ---- */

/* Everything needed to end a call, with or without a slot. */
typedef struct ember_callback {
    ember_complete_fn done;
    ember_raw_cb rawcb;
    ember_fn cb;
    void *ud;
    ember_child *child;            /* broadcasts */
    const ember_service_desc *svc; /* names the service in NO_METHOD's
                                      message; NULL for raw calls */
} ember_callback;

typedef struct ember_pending {
    uint32_t gen;                  /* 0: free */
    uint32_t next_free;
    uint32_t dl_node;              /* its deadline in ep->dl (1-based), 0: none */
    ember_callback cb;
    const ember_method_desc *m;    /* the method called; NULL: raw */
} ember_pending;

/* Starts a call of (service, method) whose arguments enc(args) writes;
 * svc describes the service when the caller has it (generated stubs; NULL:
 * raw), which a wire that needs run-time types (PB) reads. */
ember_handle ember_calltab_start(ember_ref *to, const ember_service_desc *svc,
                                 uint32_t service, uint32_t method, bool oneway,
                                 ember_encode_fn enc, const void *args,
                                 const ember_callback *cb,
                                 const ember_callopts *opts);
/* Our call `id` on c: 1 in flight (*m its method), 0 already ended, -1
 * never issued. */
int ember_calltab_lookup(ember_conn *c, uint64_t id, const ember_method_desc **m);
/* An ember_encode_fn for payloads encoded beforehand (raw calls and
 * replies, broadcasts): value is a const ember_bytes *, copied as is. */
void ember_enc_payload(ember_enc *e, const void *value);
/* A REPLY or ERROR frame for one of our calls. -1: protocol violation. */
int ember_calltab_answer(ember_conn *c, const ember_frame *f);
/* Ends every pending call of c with st. */
void ember_calltab_fail_all(ember_conn *c, ember_status st, const char *msg);
void ember_calltab_free(ember_conn *c);
int ember_calltab_cancel(ember_conn *c, ember_handle h);
/* Delivers an outcome from the event loop (a call that could not start). */
void ember_defer_outcome(ember_ep *ep, const ember_callback *cb,
                         ember_status st, const char *msg);
void ember_defer_run(ember_ep *ep);
/* A child is about to be freed: delivers the deferred outcomes naming it
 * now, while o->child is valid. */
void ember_defer_run_child(ember_ep *ep, ember_child *child);
void ember_timer_fire(ember_ep *ep);
void ember_calltab_ep_fini(ember_ep *ep); /* frees ep->dl */
/* Values decoded into ep->scratch live until the last user lets go: an
 * outcome callback may end other calls, whose callbacks run inside it. */
void ember_scratch_hold(ember_ep *ep);
void ember_scratch_release(ember_ep *ep);

/* ---- call.c: incoming calls ---- */

struct ember_call {
    ember_ep *ep;                  /* NULL once the endpoint is freed */
    ember_conn *conn;              /* NULL once the connection is gone */
    ember_call *prev, *next;       /* conn->calls, ep->orphans or the pool */
    ember_hnode hn;                /* conn->calls_by_id, when hashed */
    bool hashed;
    ember_exports *ex;             /* stats; NULL once orphaned */
    struct ember_xentry *x;        /* the entry dispatched to, as of ex->ver */
    uint32_t xver;
    ember_ref *target;             /* a local object being called (retained) */
    ember_ref *fwd_to;             /* a proxy's forwarded call: where, and */
    ember_handle fwd_h;            /* its handle (to pass a CANCEL on) */
    uint64_t peer_id;
    uint64_t oid;                  /* the object called (0: the exports) */
    uint64_t start_us;
    uint32_t service, method;
    bool oneway, answered, cancelled, in_dispatch;
    size_t held;                   /* counted in conn->deferred_bytes */
    ember_arena arena;
    uint64_t inline_arena[64];     /* 512 bytes: most calls allocate nothing */
};

/* A CALL or ONEWAY frame. -1: protocol violation (already closed). */
int ember_call_dispatch(ember_conn *c, const ember_frame *f);
/* A read batch starts / ends: the calls it answered inline get their time. */
void ember_call_batch_begin(ember_ep *ep);
void ember_call_batch_end(ember_ep *ep);
void ember_call_cancel_in(ember_conn *c, uint64_t peer_id);
/* The connection is gone: calls become orphans; replies will be no-ops. */
void ember_call_orphan_all(ember_conn *c);
void ember_call_pool_free(ember_ep *ep);

/* ---- exports.c ---- */

/* An entry's key: the service id above the method id. */
static inline uint64_t ember_xkey(uint32_t service, uint32_t method)
{
    return (uint64_t)service << 32 | method;
}

typedef struct ember_xentry {
    uint64_t key;                       /* ember_xkey(service, method) */
    const ember_method_desc *m;         /* NULL for raw */
    const void *handlers;
    void *ud;
    ember_raw_handler raw;
    ember_method_stats st;
    ember_xmetrics *mx;                 /* ends and times (metrics.c) */
} ember_xentry;

struct ember_exports {
    ember_xentry *v;                    /* sorted by key */
    uint32_t n, cap;
    ember_xentry fallback;              /* raw (0, 0) */
    const ember_service_desc **svcs;
    uint32_t nsvcs;
    uint32_t ver;                       /* bumped whenever entries move */
    uint32_t hint;                      /* the entry resolved last (checked
                                           before use: may be stale) */
};

ember_exports *ember_exports_new(void);
void ember_exports_free(ember_exports *ex);
/* The index of the first entry whose key is >= key (binary search;
 * inline: once per call served). */
static inline uint32_t ember_exports_lower(const ember_exports *ex, uint64_t key)
{
    uint32_t lo = 0, hi = ex->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (ex->v[mid].key < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}
/* The entry for key, NULL if none. */
static inline ember_xentry *ember_exports_find(ember_exports *ex, uint64_t key)
{
    uint32_t i = ember_exports_lower(ex, key);
    return i < ex->n && ex->v[i].key == key ? &ex->v[i] : NULL;
}
/* What serves (service, method) on ex: the method's entry, else a raw
 * handler of the whole service; NULL if none (the fallback aside).
 * *served: whether ex serves the service at all. */
ember_xentry *ember_exports_resolve(ember_exports *ex, uint32_t service,
                                    uint32_t method, bool *served);
/* Every method ex serves has its own PB name (command-mode ones: name and
 * id), as a PB peer addresses them; -1 with the clash otherwise. */
int ember_exports_pb_check(const ember_exports *ex);
/* Counts a call's end (EMBER_END_*) against x, the entry dispatch found
 * while ex->ver was ver (found again by key if the table changed since). */
void ember_exports_record(ember_exports *ex, ember_xentry *x, uint32_t ver,
                          uint64_t key, unsigned end, uint64_t us);
/* Adds time only (a read batch's tally of n calls that each took max_us,
 * call.c), found the same way. */
void ember_exports_add_time(ember_exports *ex, ember_xentry *x, uint32_t ver,
                            uint64_t key, uint64_t total_us, uint64_t max_us,
                            uint32_t n);

/* ---- ref.c ---- */

/* PROXY: what a peer's or a third party's object becomes when it is passed
 * on to another connection (proxy.c). */
enum { EMBER_REF_PEER, EMBER_REF_REMOTE, EMBER_REF_LOCAL, EMBER_REF_PROXY };

struct ember_ref {
    uint8_t kind;
    bool revoked;                  /* LOCAL: withdrawn (ember_ref_revoke) */
    uint32_t rc;
    ember_eplink *link;            /* where to defer outcomes; NULL: none */
    ember_conn *conn;              /* PEER/REMOTE: NULL when dead */
    uint64_t oid;                  /* REMOTE */
    uint64_t wire;                 /* REMOTE: times received */
    ember_hnode hn;                /* REMOTE: conn->rrefs */
    ember_exports *lex;            /* LOCAL, PROXY: what it serves */
    ember_ref *fwd;                /* PROXY: where its calls go (retained) */
    const ember_service_desc *svc; /* PROXY: the service it forwards */
};

ember_ref *ember_ref_new_peer(ember_ep *ep);
/* The endpoint a ref's outcomes are deferred to; NULL when it is gone. */
static inline ember_ep *ember_ref_ep(const ember_ref *r)
{
    return r->link ? r->link->ep : NULL;
}
/* The endpoint freed: refs still holding its link see it gone. */
void ember_eplink_drop(ember_ep *ep);
/* The connection is gone: refs received on it die, exports are dropped. */
void ember_ref_conn_closed(ember_conn *c);
ember_ref *ember_ref_find_xobj(ember_conn *c, uint64_t oid);
void ember_ref_decref_in(ember_conn *c, uint64_t oid, uint64_t count);
/* Exports r (LOCAL or PROXY) on c, or counts one more send: its object id,
 * 0 when out of memory. */
uint64_t ember_ref_export(ember_conn *c, ember_ref *r);

/* ---- proxy.c: refs passed on to a third party ---- */

/* The proxy on c forwarding service svc to `to` (a peer's object or exports
 * on another connection), made on first use, with one reference for the
 * caller (who exports it, then releases it); NULL when out of memory. */
ember_ref *ember_proxy_on(ember_conn *c, ember_ref *to,
                          const ember_service_desc *svc);
/* A proxy's last reference went: what it holds. */
void ember_proxy_free(ember_ref *r);

/* ---- auth.c: shared-secret proofs (libcrypto) ---- */
int ember_random(void *p, size_t n);
int ember_auth_mac(const char *secret, const char *label, const uint8_t *a,
                   const uint8_t *b, const void *tail, size_t tail_len,
                   uint8_t out[EMBER_MAC_LEN]);
/* HMAC-SHA256(secret, "ember-register-v1" || root_nonce || node_nonce || name) */
int ember_auth_register_proof(const char *secret, const uint8_t *root_nonce,
                              const uint8_t *node_nonce, const char *name,
                              uint8_t out[EMBER_MAC_LEN]);
/* HMAC-SHA256(secret, "ember-welcome-v1" || node_nonce || root_nonce || id LE32) */
int ember_auth_welcome_proof(const char *secret, const uint8_t *node_nonce,
                             const uint8_t *root_nonce, uint32_t child_id,
                             uint8_t out[EMBER_MAC_LEN]);
/* Constant-time: got is exactly want. */
bool ember_auth_check(const ember_bytes *got, const uint8_t want[EMBER_MAC_LEN]);

/* ---- tls.c ---- */
struct ember_tls_config;
/* Builds ep->tls_ctx from cfg (server: a root). -1 with ember_last_error(). */
int ember_tls_ctx_new(ember_ep *ep, const struct ember_tls_config *cfg,
                      bool server);
void ember_tls_ctx_free(ember_ep *ep);
/* Switches a new connection to TLS; host: the name the node expects in the
 * root's certificate (NULL on a root). -1 with ember_last_error(). */
int ember_tls_attach(ember_conn *c, bool server, const char *host);

/* ---- root.c, node.c: the endpoint inside (metrics.c) ---- */
ember_ep *ember_root_ep(ember_root *r);
ember_ep *ember_node_ep(ember_node *n);

/* ---- addr.c ---- */
#include <sys/socket.h>
int ember_addr_parse(const char *addr, struct sockaddr_storage *ss,
                     socklen_t *len);
char *ember_addr_text(const struct sockaddr *sa, socklen_t len);
int ember_sock_prepare(int fd);

/* ---- arena.c, clock.c: hot-path helpers ---- */

/* Like ember_arena_alloc, without zeroing (the caller overwrites it all). */
void *ember_arena_alloc_nz(ember_arena *a, size_t size);
/* Its bump when the current block has room (inline: each decoded string
 * and argument struct takes one). */
static inline void *ember_arena_alloc_nz_fast(ember_arena *a, size_t size)
{
    size_t n = (size + 7u) & ~(size_t)7u;
    if (n == 0 || n < size || (size_t)(a->end - a->p) < n)
        return ember_arena_alloc_nz(a, size);
    void *r = a->p;
    a->p += n;
    return r;
}
/* A read batch or timer holds the clock: read once, used by everything the
 * batch does (call deadlines, call times). Holds nest; release each. */
void ember_clock_hold(void);
void ember_clock_release(void);
/* The held reading, or the real clock outside a hold. */
uint64_t ember_clock_us(void);
uint64_t ember_clock_ms(void);

#endif
