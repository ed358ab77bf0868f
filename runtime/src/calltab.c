/*
 * calltab.c — outgoing calls. Each connection keeps its pending calls in a
 * slot array with a free list; a call id is (generation << 24) | (slot + 1),
 * so a reply finds its call in O(1), a reply to a call that already ended
 * (stale generation) is ignored, and an id naming a slot that never existed
 * is a protocol violation. Deadlines of all the endpoint's calls sit in one
 * FIFO ring per distinct timeout behind one libevent timer (see below).
 */
#include <stdio.h>
#include <string.h>

#include "buf-internal.h"
#include "call-internal.h"
#include "conn-internal.h"
#include "ember-internal.h"
#include "ep-internal.h"
#include "ref-internal.h"
#include "wire-internal.h"

#define SLOT_BITS 24
#define SLOT_MASK ((1u << SLOT_BITS) - 1)

/* ---- call deadlines ---- */

/*
 * Calls started with the same timeout reach their deadlines in the order
 * they started, so each distinct timeout keeps a FIFO ring of (deadline,
 * call), sorted by deadline for free. Starting a call appends to it; ending
 * one does nothing: an entry whose call has ended (its slot no longer holds
 * the call's generation) is dead, and dead entries are dropped when they
 * reach the head (a timer fire, the ring filling up) or, when the ring
 * fills with live entries behind a dead one, by compacting it. So a
 * deadline costs one append per call and nothing on the reply path (an
 * unlink from a list per reply, or a min-heap's push and remove, cost more).
 * A connection being freed takes its entries out. The earliest deadline is
 * the least of the live heads. A few timeouts cover real use (the default
 * plus some explicit ones); past DL_LISTS distinct values a call joins the
 * list with the closest timeout and is inserted in deadline order from the
 * tail, which stays correct, just not O(1).
 *
 * The libevent timer moves only when a new deadline is earlier than the one
 * it is armed for. Ending calls leaves it alone: a fire that finds nothing
 * due re-arms for the earliest deadline left (at most one early wake-up per
 * timeout), which beats re-arming on every reply.
 */
#define DL_LISTS 8
#define DL_MIN_CAP 16u

typedef struct dl_ent {
    uint64_t at;            /* deadline, ms */
    ember_conn *conn;
    uint64_t id;            /* the call: live while its slot holds this id */
} dl_ent;

typedef struct dl_list {
    uint32_t ms;            /* the timeout its calls were started with */
    uint32_t head, tail;    /* entries [head, tail), free-running counters */
    uint32_t cap;           /* a power of two, 0: no ring yet */
    dl_ent *v;              /* entry i is v[i & (cap - 1)] */
    uint64_t last_at;       /* the latest deadline appended */
} dl_list;

struct ember_deadlines {
    uint32_t nlists;
    uint32_t last;          /* the list dl_pick returned last */
    dl_list lists[DL_LISTS];
};

#define ENT(l, i) (&(l)->v[(i) & ((l)->cap - 1)])

static bool dl_live(const dl_ent *e)
{
    uint32_t idx = (uint32_t)(e->id & SLOT_MASK) - 1;
    return e->conn->slots[idx].gen == (uint32_t)(e->id >> SLOT_BITS);
}

/* Drops the dead entries at the head. */
static void dl_trim(dl_list *l)
{
    uint32_t h = l->head, t = l->tail, mask = l->cap - 1;
    const dl_ent *v = l->v;
    while (h != t && !dl_live(&v[h & mask]))
        h++;
    l->head = h;
}

/* Keeps the live entries, in order. */
static void dl_compact(dl_list *l)
{
    uint32_t w = l->head;
    for (uint32_t i = l->head; i != l->tail; i++) {
        const dl_ent *e = ENT(l, i);
        if (dl_live(e))
            *ENT(l, w++) = *e;
    }
    l->tail = w;
}

/* Room for one more entry in a full ring: the dead at the head go; when
 * that frees less than a quarter, every dead one; when live entries still
 * fill more than half, the ring doubles. */
static int dl_room(dl_list *l)
{
    if (l->cap) {
        dl_trim(l);
        if (l->tail - l->head <= l->cap - l->cap / 4)
            return 0;
        dl_compact(l);
        if (l->tail - l->head <= l->cap / 2)
            return 0;
    }
    uint32_t ncap = l->cap ? l->cap * 2 : DL_MIN_CAP;
    if (ncap > (1u << 31))
        return -1;
    dl_ent *nv = ember_malloc(sizeof *nv * ncap);
    if (!nv)
        return -1;
    uint32_t n = 0;
    for (uint32_t i = l->head; i != l->tail; i++)
        nv[n++] = *ENT(l, i);
    ember_free(l->v, sizeof *l->v * l->cap);
    l->v = nv;
    l->cap = ncap;
    l->head = 0;
    l->tail = n;
    return 0;
}

/* The list for timeout ms: its own, else an empty one, else a new one,
 * else the one with the closest timeout. (dl_push tries the last one
 * first: calls mostly share one timeout.) */
static uint32_t dl_pick(struct ember_deadlines *dl, uint32_t ms)
{
    uint32_t empty = DL_LISTS, best = 0;
    uint32_t bestd = UINT32_MAX;
    for (uint32_t i = 0; i < dl->nlists; i++) {
        dl_list *l = &dl->lists[i];
        if (l->ms == ms)
            return i;
        dl_trim(l);
        if (l->head == l->tail && empty == DL_LISTS)
            empty = i;
        uint32_t d = l->ms > ms ? l->ms - ms : ms - l->ms;
        if (d < bestd)
            bestd = d, best = i;
    }
    if (empty == DL_LISTS && dl->nlists < DL_LISTS)
        empty = dl->nlists++;
    if (empty == DL_LISTS)
        return best;
    dl->lists[empty].ms = ms;
    dl->lists[empty].last_at = 0;
    return empty;
}

/* The list whose live head is due first (its dead heads dropped), NULL
 * when there is none. */
static dl_list *dl_earliest(struct ember_deadlines *dl)
{
    dl_list *best = NULL;
    if (!dl)
        return NULL;
    for (uint32_t i = 0; i < dl->nlists; i++) {
        dl_list *l = &dl->lists[i];
        dl_trim(l);
        if (l->head != l->tail &&
            (!best || ENT(l, l->head)->at < ENT(best, best->head)->at))
            best = l;
    }
    return best;
}

static void timer_set(ember_ep *ep, uint64_t at)
{
    uint64_t now = ember_clock_ms();
    uint64_t d = at > now ? at - now : 0;
    struct timeval tv = {(time_t)(d / 1000), (suseconds_t)(d % 1000) * 1000};
    evtimer_add(ep->timer_ev, &tv);
    ep->timer_at = at;
}

/* Fills entry e, and arms the timer if it is due first. */
EMBER_HOT_INLINE void dl_set(ember_ep *ep, dl_ent *e, uint64_t at, ember_conn *c,
                             uint64_t id)
{
    e->at = at;
    e->conn = c;
    e->id = id;
    if (!ep->timer_at || at < ep->timer_at)
        timer_set(ep, at);
}

/* Appends at the tail of l, which has room and no later deadline. */
EMBER_HOT_INLINE void dl_put(ember_ep *ep, dl_list *l, uint64_t at, ember_conn *c,
                             uint64_t id)
{
    l->last_at = at;
    dl_set(ep, ENT(l, l->tail++), at, c, id);
}

/* dl_push when the list the last call used is not this timeout's, or is
 * full, or holds a deadline later than this one. */
EMBER_COLD static int dl_push_any(ember_ep *ep, uint64_t at, uint32_t ms, ember_conn *c,
                       uint64_t id)
{
    struct ember_deadlines *dl = ep->dl;
    if (!dl && !(dl = ep->dl = ember_calloc(sizeof *dl)))
        return -1;
    dl_list *l = &dl->lists[dl->last];
    if (dl->last >= dl->nlists || l->ms != ms)
        l = &dl->lists[dl->last = dl_pick(dl, ms)];
    if (l->tail - l->head == l->cap && dl_room(l))
        return -1;
    if (at >= l->last_at) {
        dl_put(ep, l, at, c, id);
        return 0;
    }
    /* After the last entry due no later (lists are shared): the later ones
     * move up. */
    uint32_t i = l->tail++;
    while (i != l->head && ENT(l, i - 1)->at > at) {
        *ENT(l, i) = *ENT(l, i - 1);
        i--;
    }
    dl_set(ep, ENT(l, i), at, c, id);
    return 0;
}

/* Inline: the common case appends to the list the last call used. */
EMBER_HOT_INLINE int dl_push(ember_ep *ep, uint64_t at, uint32_t ms, ember_conn *c,
                             uint64_t id)
{
    struct ember_deadlines *dl = ep->dl;
    dl_list *l;
    if (!dl || dl->last >= dl->nlists || (l = &dl->lists[dl->last])->ms != ms ||
        l->tail - l->head == l->cap || at < l->last_at)
        return dl_push_any(ep, at, ms, c, id);
    dl_put(ep, l, at, c, id);
    return 0;
}

void ember_calltab_ep_fini(ember_ep *ep)
{
    struct ember_deadlines *dl = ep->dl;
    if (dl) {
        for (uint32_t i = 0; i < dl->nlists; i++)
            ember_free(dl->lists[i].v, sizeof *dl->lists[i].v * dl->lists[i].cap);
        ember_free(dl, sizeof *dl);
        ep->dl = NULL;
    }
}

/* ---- ending a call ---- */

void ember_scratch_hold(ember_ep *ep)
{
    ep->scratch_users++;
}

void ember_scratch_release(ember_ep *ep)
{
    if (--ep->scratch_users == 0)
        ember_arena_fini(&ep->scratch);
}

/* Runs a callback. It may end other calls (cancel, drop a child), whose
 * outcomes are delivered inside it: the reply values it is reading stay in
 * the scratch arena until the outermost delivery returns. */
EMBER_HOT_INLINE void deliver(ember_ep *ep, const ember_callback *cb,
                              ember_outcome *o, ember_dec *dec)
{
    o->child = cb->child;
    if (ep)
        ember_scratch_hold(ep);
    if (cb->rawcb) {
        const void *p = dec ? dec->p : NULL;
        size_t n = dec ? (size_t)(dec->end - dec->p) : 0;
        cb->rawcb(o, p, n, cb->ud);
    } else if (cb->done) {
        cb->done(o, dec, cb->cb, cb->ud);
    }
    if (ep)
        ember_scratch_release(ep);
}

/* Ends the call in slot idx: the slot is free again, then the outcome is
 * delivered. Inline into the reply path; finish() for the rest. */
EMBER_HOT_INLINE void finish_(ember_conn *c, uint32_t idx, ember_status st,
                              const char *msg, uint32_t error_id, ember_dec *dec)
{
    ember_ep *ep = c->ep;
    ember_pending *s = &c->slots[idx];
    ember_callback cb = s->cb; /* the slot may be reused by the callback */
    s->gen = 0; /* its deadline entry, if any, is dead now */
    s->next_free = c->free_slot;
    c->free_slot = idx + 1;
    c->npending--;
    ep->inflight--;
    ember_outcome o = {st, msg, error_id, NULL, NULL};
    deliver(ep, &cb, &o, dec);
    ember_ep_check_idle(ep);
}

static void finish(ember_conn *c, uint32_t idx, ember_status st, const char *msg,
                   uint32_t error_id, ember_dec *dec)
{
    finish_(c, idx, st, msg, error_id, dec);
}

/* ---- starting a call ---- */

static int slot_alloc(ember_conn *c, uint32_t *idx)
{
    if (c->free_slot == 0) {
        uint32_t ncap = c->nslots ? c->nslots * 2 : 4;
        if (ncap > SLOT_MASK)
            return -1;
        ember_pending *ns = ember_realloc(c->slots, sizeof *ns * c->nslots,
                                          sizeof *ns * ncap);
        if (!ns)
            return -1;
        memset(ns + c->nslots, 0, sizeof *ns * (ncap - c->nslots));
        for (uint32_t i = ncap; i > c->nslots; i--) {
            ns[i - 1].next_free = c->free_slot;
            c->free_slot = i;
        }
        c->slots = ns;
        c->nslots = ncap;
    }
    *idx = c->free_slot - 1;
    c->free_slot = c->slots[*idx].next_free;
    return 0;
}

static uint32_t next_gen(ember_ep *ep)
{
    if (++ep->gen == 0)
        ep->gen = 1;
    return ep->gen;
}

/* What a call whose arguments hold a string that is not UTF-8 ends with:
 * the parameter by name when the service's types know it. */
static const char *bad_utf8_msg(char *buf, size_t n, const ember_service_desc *svc,
                                uint32_t method, uint32_t tag)
{
    const ember_method_desc *m = NULL;
    for (uint32_t i = 0; svc && i < svc->n_methods; i++)
        if (svc->methods[i].id == method)
            m = &svc->methods[i];
    for (uint32_t i = 0; m && i < m->n_params; i++)
        if (m->params[i].tag == tag && m->params[i].type &&
            m->params[i].type->kind == EMBER_T_STRING) {
            snprintf(buf, n, "argument %s of %s.%s is not valid UTF-8: not "
                     "sent", m->params[i].name, svc->name, m->name);
            return buf;
        }
    if (tag == EMBER_ENC_ELEM)
        snprintf(buf, n, "a string in a list or map of the arguments is not "
                 "valid UTF-8: not sent");
    else
        snprintf(buf, n, "the string in argument field %u is not valid "
                 "UTF-8: not sent", tag);
    return buf;
}

/* Why a frame that did not encode failed, and the status its call ends
 * with (ember_encode_status): a string that is not UTF-8 named as the
 * argument, anything else as the encoder said. */
const char *ember_calltab_encode_failure(const ember_enc *e,
                                         const ember_service_desc *svc,
                                         uint32_t method, char *bad, size_t n,
                                         ember_status *st)
{
    *st = ember_encode_status(e);
    if (e->bad_utf8)
        return bad_utf8_msg(bad, n, svc, method, e->bad_utf8);
    snprintf(bad, n, "arguments could not be encoded: %s", ember_last_error());
    return bad;
}

/* A call that could not start ends from the event loop (or, with no loop
 * to defer to, here). */
static ember_handle refuse(ember_ep *ep, const ember_callback *cb, bool oneway,
                           uint32_t service, uint32_t method, ember_status st,
                           const char *why)
{
    ember_seterr("%s", why);
    if (oneway)
        return 0;
    if (ep) {
        ember_defer_outcome(ep, cb, st, why);
    } else {
        /* No event loop to defer to: the one case that ends inside. */
        ember_log(EMBER_LOG_ERROR, "call %08x.%u: %s", service, method, why);
        ember_outcome o = {st, why, 0, NULL, NULL};
        deliver(NULL, cb, &o, NULL);
    }
    return 0;
}

/* The slot idx, taken for a call whose frame is queued, holds it now. */
EMBER_HOT_INLINE ember_handle pending_add(ember_ep *ep, ember_conn *c, uint32_t idx,
                                          uint32_t gen, const ember_method_desc *m,
                                          const ember_callback *cb,
                                          const ember_callopts *opts)
{
    ember_pending *s = &c->slots[idx];
    uint64_t id = (uint64_t)gen << SLOT_BITS | (idx + 1);
    s->gen = gen;
    s->cb = *cb;
    s->m = m;
    c->npending++;
    ep->inflight++;
    uint32_t ms = opts && opts->timeout_ms ? opts->timeout_ms : ep->lim.call_timeout_ms;
    if (ms && dl_push(ep, ember_clock_ms() + ms, ms, c, id))
        ember_log(EMBER_LOG_ERROR, "%s: out of memory for a call deadline", ep->what);
    return id;
}

/* Queues the CALL (id 0: a ONEWAY) for method of service on to's object,
 * its arguments written by enc(args). -1 when it did not encode (e says
 * why). */
EMBER_HOT_INLINE int write_call(ember_conn *c, ember_enc *e, const ember_ref *to,
                                uint32_t service, uint64_t id, uint32_t method,
                                ember_encode_fn enc, const void *args)
{
    if (ember_frame_begin(c, e, id ? EMBER_FR_CALL : EMBER_FR_ONEWAY) == 0) {
        /* The header fits the room ember_frame_begin reserved. */
        ember_put_le32(e->p, service);
        e->p += 4;
        if (id)
            ember_frame_put_varint(e, id);
        ember_frame_put_varint(e, to->kind == EMBER_REF_REMOTE ? to->oid : 0);
        ember_frame_put_varint(e, method);
        if (enc)
            enc(e, args);
    }
    return ember_frame_end(c, e);
}

/* Every kind of call, and every way starting one can fail. */
EMBER_COLD static ember_handle start_any(ember_ref *to, const ember_service_desc *svc,
                              uint32_t service, uint32_t method, bool oneway,
                              ember_encode_fn enc, const void *args,
                              const ember_callback *cb, const ember_callopts *opts)
{
    ember_ep *ep = to ? ember_ref_ep(to) : NULL;
    ember_conn *c = to && to->kind != EMBER_REF_LOCAL ? to->conn : NULL;
    ember_status st = EMBER_UNAVAILABLE;
    const char *why = NULL;
    char bad[200];

    /* Started by a callback the free itself runs (a retry, say): there is
     * no loop left to end it from, and ending it here would only start it
     * again. Refused, with no outcome. */
    if (ep && ep->freeing) {
        ember_seterr("%s is being freed", ep->what);
        return 0;
    }
    if (!to)
        why = "call on a NULL ref";
    else if (to->kind == EMBER_REF_LOCAL)
        why = "a local object is called by its peers, not through its own ref";
    else if (ep && ep->stopping) /* before the connection: a closed node has none */
        why = ep->node ? "node is closed or closing (ember_node_close)"
                       : "root is shutting down (ember_root_shutdown)";
    else if (!c || c->state != EMBER_CONN_READY)
        why = "not connected";
    else if (!oneway && c->npending >= ep->lim.max_outstanding)
        st = EMBER_LIMIT, why = "too many calls in flight on this connection";
    else if (ember_buf_used(&c->out) > ep->lim.out_high_water)
        st = EMBER_LIMIT, why = "peer is not reading (output above high water)";

    uint32_t idx = 0, gen = 0;
    bool taken = false;
    if (!why && !oneway) {
        if (slot_alloc(c, &idx))
            st = EMBER_LIMIT, why = "out of call slots";
        else
            taken = true;
    }
    const ember_method_desc *m = NULL;
    if (!why && c->wire) {
        uint64_t id = 0;
        for (uint32_t i = 0; svc && i < svc->n_methods && !m; i++)
            if (svc->methods[i].id == method)
                m = &svc->methods[i];
        if (!oneway) {
            gen = next_gen(ep);
            id = (uint64_t)gen << SLOT_BITS | (idx + 1);
        }
        if (c->wire->call(c, id, to->kind == EMBER_REF_REMOTE ? to->oid : 0,
                          method, svc, m, enc, args, &st))
            why = ember_last_error();
    } else if (!why) {
        ember_enc e;
        if (!oneway)
            gen = next_gen(ep);
        uint64_t id = oneway ? 0 : (uint64_t)gen << SLOT_BITS | (idx + 1);
        if (write_call(c, &e, to, service, id, method, enc, args))
            why = ember_calltab_encode_failure(&e, svc, method, bad, sizeof bad, &st);
    }
    if (why) {
        if (taken) {
            c->slots[idx].next_free = c->free_slot;
            c->free_slot = idx + 1;
        }
        return refuse(ep, cb, oneway, service, method, st, why);
    }
    if (oneway)
        return 1;
    return pending_add(ep, c, idx, gen, m, cb, opts);
}

/* The common call, inline: two-way, on a ready connection of ember's own
 * wire, within its limits, with a slot free. Anything else, start_any. */
EMBER_HOT_INLINE ember_handle start_call(ember_ref *to, const ember_service_desc *svc,
                                         uint32_t service, uint32_t method,
                                         ember_encode_fn enc, const void *args,
                                         const ember_callback *cb,
                                         const ember_callopts *opts)
{
    ember_ep *ep = to ? ember_ref_ep(to) : NULL;
    ember_conn *c = ep && to->kind != EMBER_REF_LOCAL ? to->conn : NULL;
    if (!c || c->state != EMBER_CONN_READY || c->wire || !c->free_slot ||
        ep->freeing || ep->stopping || c->npending >= ep->lim.max_outstanding ||
        ember_buf_used(&c->out) > ep->lim.out_high_water)
        return start_any(to, svc, service, method, false, enc, args, cb, opts);
    uint32_t idx = c->free_slot - 1;
    uint32_t gen = next_gen(ep);
    ember_enc e;
    if (write_call(c, &e, to, service, (uint64_t)gen << SLOT_BITS | (idx + 1),
                   method, enc, args)) {
        char bad[200];
        ember_status st;
        const char *why = ember_calltab_encode_failure(&e, svc, method, bad, sizeof bad, &st);
        return refuse(ep, cb, false, service, method, st, why);
    }
    c->free_slot = c->slots[idx].next_free;
    return pending_add(ep, c, idx, gen, NULL, cb, opts);
}

ember_handle ember_calltab_start(ember_ref *to, const ember_service_desc *svc,
                                 uint32_t service, uint32_t method, bool oneway,
                                 ember_encode_fn enc, const void *args,
                                 const ember_callback *cb,
                                 const ember_callopts *opts)
{
    if (oneway)
        return start_any(to, svc, service, method, true, enc, args, cb, opts);
    return start_call(to, svc, service, method, enc, args, cb, opts);
}

/* ---- answers ---- */

/* The codes an ERROR carries (protocol.md, section 4); any other is
 * FAILED. CANCELLED, SHUTDOWN, TIMEOUT and LOST are our own ends of a
 * call, never a peer's word: a peer cannot make a call read as cancelled
 * by its caller. */
static ember_status wire_status(uint64_t code)
{
    switch (code) {
    case EMBER_FAILED:
    case EMBER_NO_METHOD:
    case EMBER_LIMIT:
    case EMBER_PROTOCOL:
    case EMBER_UNAVAILABLE:
        return (ember_status)code;
    default:
        return EMBER_FAILED;
    }
}

static int find_slot(ember_conn *c, uint64_t id, uint32_t *idx)
{
    uint32_t i = (uint32_t)(id & SLOT_MASK);
    if (i == 0 || i > c->nslots)
        return -1;
    *idx = i - 1;
    return c->slots[i - 1].gen != 0 && c->slots[i - 1].gen == (id >> SLOT_BITS)
               ? 1 : 0;
}

int ember_calltab_lookup(ember_conn *c, uint64_t id, const ember_method_desc **m)
{
    uint32_t idx;
    int r = find_slot(c, id, &idx);
    *m = r == 1 ? c->slots[idx].m : NULL;
    return r;
}

int ember_calltab_answer(ember_conn *c, const ember_frame *f)
{
    uint32_t idx;
    int r = find_slot(c, f->h[0], &idx);
    if (r < 0) {
        ember_conn_close(c, EMBER_PROTOCOL, "protocol violation: answer to a "
                         "call id never issued");
        return -1;
    }
    if (r == 0)
        return 0; /* the call already ended (timeout, cancel): ignore */
    ember_dec d;
    ember_dec_init_conn(&d, c, f->payload, f->len, &c->ep->scratch);
    if (f->kind == EMBER_FR_REPLY) {
        finish_(c, idx, EMBER_OK, "ok", 0, &d);
        return 0;
    }
    if (f->h[1] == EMBER_RAISED && f->h[2] > UINT32_MAX) {
        /* Error ids are 32 bits: cut, 2^32 + 1 would read as error 1. */
        finish(c, idx, EMBER_FAILED, "raised error id does not fit 32 bits", 0, NULL);
        return 0;
    }
    if (f->h[1] == EMBER_RAISED) {
        char msg[64];
        snprintf(msg, sizeof msg, "raised error %u", (unsigned)f->h[2]);
        finish(c, idx, EMBER_RAISED, msg, (uint32_t)f->h[2], &d);
        return 0;
    }
    /* Other errors carry { 1: string message }; NO_METHOD for a service
     * the object does not serve also { 2: object id }, with the service id
     * as error id. */
    const char *msg = NULL;
    uint64_t oid = 0;
    uint32_t tag;
    unsigned wt;
    int k;
    while ((k = ember_dec_field(&d, &tag, &wt)) == 1) {
        if (tag == 1 && wt == EMBER_WT_LEN)
            k = ember_dec_raw_string(&d, &msg);
        else if (tag == 2 && wt == EMBER_WT_VARINT)
            k = ember_dec_raw_varint(&d, &oid);
        else
            k = ember_dec_skip(&d, wt);
        if (k)
            break;
    }
    if (!msg || k < 0)
        msg = ember_status_name(wire_status(f->h[1]));
    /* The callee only knows the id of a service it does not serve; the
     * caller knows its name. */
    char named[160];
    const ember_service_desc *svc = c->slots[idx].cb.svc;
    uint32_t unserved = f->h[1] == EMBER_NO_METHOD && f->h[2] <= UINT32_MAX
                            ? (uint32_t)f->h[2] : 0;
    if (unserved && svc && unserved == svc->id) {
        snprintf(named, sizeof named, "object %llu does not serve %s",
                 (unsigned long long)oid, svc->name);
        msg = named;
    }
    finish(c, idx, wire_status(f->h[1]), msg, unserved, NULL);
    return 0;
}

void ember_calltab_fail_all(ember_conn *c, ember_status st, const char *msg)
{
    for (uint32_t i = 0; i < c->nslots; i++)
        if (c->slots[i].gen)
            finish(c, i, st, msg, 0, NULL);
}

void ember_calltab_drop_ended(ember_ep *ep)
{
    struct ember_deadlines *dl = ep->dl;
    for (uint32_t i = 0; dl && i < dl->nlists; i++)
        dl_compact(&dl->lists[i]);
}

void ember_calltab_free(ember_conn *c)
{
    ember_free(c->slots, sizeof *c->slots * c->nslots);
    c->slots = NULL;
    c->nslots = 0;
}

static void send_cancel(ember_conn *c, uint64_t id)
{
    if (c->wire)
        c->wire->cancel(c, id);
    else
        ember_frame_send_hdr(c, EMBER_FR_CANCEL, id, 0);
}

int ember_calltab_cancel(ember_conn *c, ember_handle h)
{
    uint32_t idx;
    if (find_slot(c, h, &idx) != 1)
        return ember_seterr("no such call in flight");
    finish(c, idx, EMBER_CANCELLED, "cancelled", 0, NULL);
    send_cancel(c, h);
    return 0;
}

void ember_timer_fire(ember_ep *ep)
{
    ember_clock_hold();
    uint64_t now = ember_clock_ms();
    dl_list *l;
    ep->timer_at = 0; /* it fired */
    while ((l = dl_earliest(ep->dl)) && ENT(l, l->head)->at <= now) {
        /* Off the ring first: the callback may start calls of its own. */
        dl_ent e = *ENT(l, l->head++);
        finish(e.conn, (uint32_t)(e.id & SLOT_MASK) - 1, EMBER_TIMEOUT,
               "call timed out", 0, NULL);
        /* Tell the peer it may stop working on it. */
        send_cancel(e.conn, e.id);
    }
    /* Callbacks may have armed it already, for a deadline of their own. */
    if ((l = dl_earliest(ep->dl)) && ENT(l, l->head)->at != ep->timer_at &&
        (!ep->timer_at || ENT(l, l->head)->at < ep->timer_at))
        timer_set(ep, ENT(l, l->head)->at);
    ember_clock_release();
}

/* ---- outcomes delivered later from the event loop ---- */

struct ember_deferred {
    struct ember_deferred *next;
    ember_callback cb;
    ember_status st;
    char msg[256]; /* as long as ember_last_error()'s text, which it often holds */
};

void ember_defer_outcome(ember_ep *ep, const ember_callback *cb,
                         ember_status st, const char *msg)
{
    struct ember_deferred *d = ember_malloc(sizeof *d);
    if (!d) { /* last resort: better inside than never */
        ember_outcome o = {st, msg, 0, NULL, NULL};
        deliver(ep, cb, &o, NULL);
        return;
    }
    d->next = NULL;
    d->cb = *cb;
    d->st = st;
    snprintf(d->msg, sizeof d->msg, "%s", msg);
    if (ep->defq_tail)
        ep->defq_tail->next = d;
    else
        ep->defq = d;
    ep->defq_tail = d;
    ep->inflight++;
    ember_ep_kick(ep);
}

static void run_one(ember_ep *ep, struct ember_deferred *d)
{
    ember_outcome o = {d->st, d->msg, 0, NULL, NULL};
    ep->inflight--;
    deliver(ep, &d->cb, &o, NULL);
    ember_free(d, sizeof *d);
}

/* Runs the outcomes queued so far; those their callbacks queue run on the
 * next turn of the loop. */
void ember_defer_run(ember_ep *ep)
{
    struct ember_deferred *d;
    ep->defrun = ep->defq;
    ep->defq = ep->defq_tail = NULL;
    while ((d = ep->defrun)) {
        ep->defrun = d->next;
        run_one(ep, d);
    }
}

/* Moves the entries of list *pp naming child to *to; returns the list's
 * new last entry. */
static struct ember_deferred *take_child(struct ember_deferred **pp,
                                         ember_child *child,
                                         struct ember_deferred ***to)
{
    struct ember_deferred *last = NULL;
    while (*pp) {
        struct ember_deferred *d = *pp;
        if (d->cb.child == child) {
            *pp = d->next;
            d->next = NULL;
            **to = d;
            *to = &d->next;
        } else {
            last = d;
            pp = &d->next;
        }
    }
    return last;
}

void ember_defer_run_child(ember_ep *ep, ember_child *child)
{
    struct ember_deferred *mine = NULL, **to = &mine;
    take_child(&ep->defrun, child, &to);
    ep->defq_tail = take_child(&ep->defq, child, &to);
    while (mine) {
        struct ember_deferred *d = mine;
        mine = d->next;
        run_one(ep, d);
    }
    ember_ep_check_idle(ep);
}

/* ---- the public call API ---- */

/* A typed call without its service: it would go as service id 0, which
 * names none (the peer's NO_METHOD, a oneway silently lost). */
static ember_handle refuse_no_service(ember_ref *to, const ember_callback *cb,
                                      bool oneway, uint32_t method)
{
    ember_ep *ep = to ? ember_ref_ep(to) : NULL;
    if (ep && ep->freeing)
        return ember_seterr("%s is being freed", ep->what), 0;
    return refuse(ep, cb, oneway, 0, method, EMBER_FAILED,
                  "a call needs its service descriptor (NULL given)");
}

EMBER_API ember_handle ember_call_start(ember_ref *to,
                                        const ember_service_desc *svc,
                                        uint32_t method_id, ember_encode_fn enc,
                                        const void *args, ember_complete_fn done,
                                        ember_fn cb, void *ud,
                                        const ember_callopts *opts)
{
    ember_callback k = {done, NULL, cb, ud, NULL, svc};
    if (!svc)
        return refuse_no_service(to, &k, false, method_id);
    return start_call(to, svc, svc->id, method_id, enc, args, &k, opts);
}

EMBER_API int ember_oneway_start(ember_ref *to, const ember_service_desc *svc,
                                 uint32_t method_id, ember_encode_fn enc,
                                 const void *args)
{
    if (!svc)
        return refuse_no_service(to, NULL, true, method_id), -1;
    return ember_calltab_start(to, svc, svc->id, method_id, true, enc,
                               args, NULL, NULL) ? 0 : -1;
}

EMBER_API ember_handle ember_call_raw(ember_ref *to, uint32_t service_id,
                                      uint32_t method_id, const void *payload,
                                      size_t len, ember_raw_cb cb, void *ud,
                                      const ember_callopts *opts)
{
    ember_callback k = {NULL, cb, NULL, ud, NULL, NULL};
    ember_bytes b = {payload, len};
    return ember_calltab_start(to, NULL, service_id, method_id, false,
                               ember_enc_payload, &b, &k, opts);
}

EMBER_API int ember_oneway_raw(ember_ref *to, uint32_t service_id,
                               uint32_t method_id, const void *payload,
                               size_t len)
{
    ember_bytes b = {payload, len};
    return ember_calltab_start(to, NULL, service_id, method_id, true,
                               ember_enc_payload, &b, NULL, NULL) ? 0 : -1;
}

EMBER_API int ember_cancel(ember_ref *to, ember_handle h)
{
    if (!to || to->kind == EMBER_REF_LOCAL || !to->conn || h == 0)
        return ember_seterr("no such call in flight");
    return ember_calltab_cancel(to->conn, h);
}
