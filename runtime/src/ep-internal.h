/*
 * ep-internal.h — the endpoint room: what a root and a node share (ep.c):
 * the event_base, limits, exports, buffer pool, call deadlines, the work
 * event (flush + deferred outcomes + reaping), the sweep timer (heartbeats,
 * handshake deadlines) and the graceful stop. Knows connections, calls and
 * exports by name only.
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
#ifndef EMBER_EP_INTERNAL_H
#define EMBER_EP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "buf-internal.h"
#include "ember-internal.h"
#include "metrics-internal.h"
#include "wire-internal.h"

typedef struct ember_ep ember_ep;

/* ---- the endpoint ---- */

struct ember_deferred;
struct ember_linger;               /* conn.c */

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
    uint32_t proto_max;         /* highest version spoken (ember_proto_max_) */

    ember_conn *conns;          /* live connections (doubly linked) */
    size_t nconns;
    struct ember_conn_walk *walks; /* loops over conns that run callbacks */
    ember_conn *dirty;          /* connections with output to flush */
    ember_conn *dead;           /* closed, waiting to be freed */
    struct ember_linger *lingers; /* closed sockets draining (conn.c) */
    uint32_t nlingers;
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
    uint64_t swept_ms;          /* when it last ran (or was rescheduled) */
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
    /* A peer on another wire asks to register as name[0..len), as the
     * peer sent it (root): 0 admitted (the child exists, c is READY), else
     * refused with why[] set (a name breaking REGISTER's rules too). */
    int (*admit)(ember_conn *c, const char *name, size_t len, char *why, size_t n);
    /* The admitted peer has been answered: on_join runs. */
    void (*joined)(ember_conn *c);
    /* A node's registration on another wire was answered: 0 accepted,
     * else refused (why). */
    void (*registered)(ember_conn *c, bool ok, const char *why);
    void (*on_lost)(ember_conn *c, const char *reason);
    void (*on_idle)(ember_ep *ep); /* stopping and nothing in flight */
    /* Runs once, from the work event, when no connection is open and no
     * socket lingers any more (a graceful stop's end). */
    void (*on_quiet)(ember_ep *ep);
};

/* A loop over ep->conns whose body can run callbacks (a call's outcome, a
 * leave), which can close any connection, the next one too:
 * ember_conn_close moves every walk on past the one it closes.
 *     ember_conn_walk w;
 *     for (ember_conn *c = ember_conn_walk_start(ep, &w); c;
 *          c = ember_conn_walk_next(ep, &w)) ...
 * The loop runs to its end (no break): the last next ends the walk. */
typedef struct ember_conn_walk {
    ember_conn *next;
    struct ember_conn_walk *up;  /* a walk started inside another */
} ember_conn_walk;

ember_conn *ember_conn_walk_start(ember_ep *ep, ember_conn_walk *w);
ember_conn *ember_conn_walk_next(ember_ep *ep, ember_conn_walk *w);

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

/* ---- root.c, node.c: the endpoint inside (metrics.c) ---- */
ember_ep *ember_root_ep(ember_root *r);
ember_ep *ember_node_ep(ember_node *n);

#endif
