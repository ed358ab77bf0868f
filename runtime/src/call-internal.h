/*
 * call-internal.h — the calls room: outgoing calls (calltab.c: the call
 * table, pending calls, deadlines, deferred outcomes) and incoming calls
 * (call.c: struct ember_call, dispatch, read batches, orphans).
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
#ifndef EMBER_CALL_INTERNAL_H
#define EMBER_CALL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ember-internal.h"
#include "ep-internal.h"
#include "hash-internal.h"
#include "wire-internal.h"

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
/* Drops every deadline of a call that ended, those of closed connections
 * included (closing ended all their calls): once before the closed ones
 * are freed, as a deadline names its connection. */
void ember_calltab_drop_ended(ember_ep *ep);
void ember_calltab_free(ember_conn *c);
int ember_calltab_cancel(ember_conn *c, ember_handle h);
/* ember_enc.failed of a forwarded call whose arguments did not decode as
 * they were re-encoded (proxy.c; ember_last_error() says why). */
#define EMBER_ENC_BAD_ARGS 4
/* Whose fault a call, answer or error that did not encode is: its values' (a string not
 * UTF-8, a ref or a value the connection cannot take: FAILED), or a
 * limit's (a frame over max_frame, ours or the peer's, no memory: LIMIT). */
static inline ember_status ember_encode_status(const ember_enc *e)
{
    return e->bad_utf8 || e->failed == EMBER_ENC_BAD_ARGS ||
                   e->failed == EMBER_ENC_BAD_REF
               ? EMBER_FAILED
               : EMBER_LIMIT;
}
/* Why the arguments e wrote for method of svc did not encode (a string
 * that is not UTF-8 named by parameter when svc knows it), in bad (n
 * bytes) or a constant, and the status the call ends with. */
const char *ember_calltab_encode_failure(const ember_enc *e,
                                         const ember_service_desc *svc,
                                         uint32_t method, char *bad, size_t n,
                                         ember_status *st);
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
    bool raw_refs;                 /* its frame held refs of the caller (a
                                      raw forward must not copy its payload) */
    size_t held;                   /* counted in conn->deferred_bytes */
    size_t raw_outside;            /* a raw handler's decoded memory outside
                                      the arena (a proxy's new refs) */
    ember_arena arena;
    uint64_t inline_arena[64];     /* 512 bytes: most calls allocate nothing */
};

/* A CALL or ONEWAY frame. -1: protocol violation (already closed). */
int ember_call_dispatch(ember_conn *c, const ember_frame *f);
/* A read batch starts / ends: the calls it answered inline get their time. */
void ember_call_batch_begin(ember_ep *ep);
void ember_call_batch_end(ember_ep *ep);
void ember_call_cancel_in(ember_conn *c, uint64_t peer_id);
/* ember_call_forward with the callback that answers the call (it clears
 * call->fwd_h, then answers: a proxy checks the answer first). */
int ember_call_forward_with(ember_call *call, ember_ref *to, uint32_t service,
                            uint32_t method, const void *payload, size_t len,
                            ember_raw_cb cb, const ember_callopts *opts);
/* The connection is gone: calls become orphans; replies will be no-ops. */
void ember_call_orphan_all(ember_conn *c);
void ember_call_pool_free(ember_ep *ep);

#endif
