/*
 * calltab.c — outgoing calls. Each connection keeps its pending calls in a
 * slot array with a free list; a call id is (generation << 24) | (slot + 1),
 * so a reply finds its call in O(1), a reply to a call that already ended
 * (stale generation) is ignored, and an id naming a slot that never existed
 * is a protocol violation. Deadlines of all the endpoint's calls sit in one
 * binary min-heap behind one libevent timer armed at the earliest deadline.
 */
#include <stdio.h>
#include <string.h>

#include "rt-internal.h"

#define SLOT_BITS 24
#define SLOT_MASK ((1u << SLOT_BITS) - 1)

/* ---- deadline heap ---- */

static void heap_set(ember_ep *ep, uint32_t pos, ember_heap_ent ent)
{
    ep->heap[pos] = ent;
    ent.conn->slots[ent.idx].heap_pos = pos + 1;
}

static void heap_up(ember_ep *ep, uint32_t pos)
{
    ember_heap_ent ent = ep->heap[pos];
    while (pos > 0) {
        uint32_t parent = (pos - 1) / 2;
        if (ep->heap[parent].at <= ent.at)
            break;
        heap_set(ep, pos, ep->heap[parent]);
        pos = parent;
    }
    heap_set(ep, pos, ent);
}

static void heap_down(ember_ep *ep, uint32_t pos)
{
    ember_heap_ent ent = ep->heap[pos];
    for (;;) {
        uint32_t kid = pos * 2 + 1;
        if (kid >= ep->nheap)
            break;
        if (kid + 1 < ep->nheap && ep->heap[kid + 1].at < ep->heap[kid].at)
            kid++;
        if (ep->heap[kid].at >= ent.at)
            break;
        heap_set(ep, pos, ep->heap[kid]);
        pos = kid;
    }
    heap_set(ep, pos, ent);
}

static void timer_arm(ember_ep *ep)
{
    if (ep->nheap == 0) {
        if (ep->timer_at)
            evtimer_del(ep->timer_ev);
        ep->timer_at = 0;
        return;
    }
    uint64_t at = ep->heap[0].at;
    if (at == ep->timer_at)
        return;
    uint64_t now = ember_now_ms();
    uint64_t d = at > now ? at - now : 0;
    struct timeval tv = {(time_t)(d / 1000), (suseconds_t)(d % 1000) * 1000};
    evtimer_add(ep->timer_ev, &tv);
    ep->timer_at = at;
}

static int heap_push(ember_ep *ep, uint64_t at, ember_conn *c, uint32_t idx)
{
    if (ep->nheap == ep->capheap) {
        uint32_t ncap = ep->capheap ? ep->capheap * 2 : 16;
        ember_heap_ent *nh = ember_realloc(ep->heap, sizeof *nh * ep->capheap,
                                           sizeof *nh * ncap);
        if (!nh)
            return -1;
        ep->heap = nh;
        ep->capheap = ncap;
    }
    ember_heap_ent ent = {at, c, idx};
    ep->heap[ep->nheap++] = ent;
    heap_up(ep, ep->nheap - 1);
    timer_arm(ep);
    return 0;
}

static void heap_remove(ember_ep *ep, uint32_t pos)
{
    ember_heap_ent gone = ep->heap[pos];
    gone.conn->slots[gone.idx].heap_pos = 0;
    ep->nheap--;
    if (pos < ep->nheap) {
        ember_heap_ent last = ep->heap[ep->nheap];
        heap_set(ep, pos, last);
        if (last.at < gone.at)
            heap_up(ep, pos);
        else
            heap_down(ep, pos);
    }
    timer_arm(ep);
}

/* ---- ending a call ---- */

static void deliver(ember_ep *ep, const ember_callback *cb, ember_outcome *o,
                    ember_dec *dec)
{
    o->child = cb->child;
    if (cb->rawcb) {
        const void *p = dec ? dec->p : NULL;
        size_t n = dec ? (size_t)(dec->end - dec->p) : 0;
        cb->rawcb(o, p, n, cb->ud);
    } else if (cb->done) {
        cb->done(o, dec, cb->cb, cb->ud);
    }
    if (ep)
        ember_arena_reset(&ep->scratch);
}

static void finish(ember_conn *c, uint32_t idx, ember_status st, const char *msg,
                   uint32_t error_id, ember_dec *dec)
{
    ember_ep *ep = c->ep;
    ember_pending *s = &c->slots[idx];
    ember_callback cb = {s->done, s->rawcb, s->cb, s->ud, s->child};
    if (s->heap_pos)
        heap_remove(ep, s->heap_pos - 1);
    s->gen = 0;
    s->next_free = c->free_slot;
    c->free_slot = idx + 1;
    c->npending--;
    ep->inflight--;
    ember_outcome o = {st, msg, error_id, NULL, NULL};
    deliver(ep, &cb, &o, dec);
    ember_ep_check_idle(ep);
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

ember_handle ember_calltab_start(ember_ref *to, uint32_t method, bool oneway,
                                 ember_encode_fn enc, const void *args,
                                 const void *payload, size_t len,
                                 const ember_callback *cb,
                                 const ember_callopts *opts)
{
    ember_ep *ep = to ? to->ep : NULL;
    ember_conn *c = to && to->kind != EMBER_REF_LOCAL ? to->conn : NULL;
    ember_status st = EMBER_UNAVAILABLE;
    const char *why = NULL;

    if (!to)
        why = "call on a NULL ref";
    else if (to->kind == EMBER_REF_LOCAL)
        why = "a local object is called by its peers, not through its own ref";
    else if (!c || c->state != EMBER_CONN_READY)
        why = "not connected";
    else if (ep->stopping)
        why = "shutting down";
    else if (!oneway && c->npending >= ep->lim.max_outstanding)
        st = EMBER_LIMIT, why = "too many calls in flight on this connection";
    else if (ember_buf_used(&c->out) > ep->lim.out_high_water)
        st = EMBER_LIMIT, why = "peer is not reading (output above high water)";

    uint32_t idx = 0, gen = 0;
    if (!why && !oneway && slot_alloc(c, &idx))
        st = EMBER_LIMIT, why = "out of call slots";
    if (!why) {
        ember_enc e;
        if (ember_frame_begin(c, &e, oneway ? EMBER_FR_ONEWAY : EMBER_FR_CALL) == 0) {
            if (!oneway) {
                gen = next_gen(ep);
                ember_enc_raw_varint(&e, (uint64_t)gen << SLOT_BITS | (idx + 1));
            }
            ember_enc_raw_varint(&e, to->kind == EMBER_REF_REMOTE ? to->oid : 0);
            ember_enc_raw_varint(&e, method);
            if (enc) {
                enc(&e, args);
            } else if (len && ember_enc_reserve(&e, len) == 0) {
                memcpy(e.p, payload, len);
                e.p += len;
            }
        }
        if (ember_frame_end(c, &e)) {
            st = EMBER_LIMIT;
            why = "arguments could not be encoded (too large, out of memory, "
                  "or a ref from another connection)";
            if (!oneway) {
                c->slots[idx].next_free = c->free_slot;
                c->free_slot = idx + 1;
            }
        }
    }
    if (why) {
        ember_seterr("%s", why);
        if (oneway)
            return 0;
        if (ep) {
            ember_defer_outcome(ep, cb, st, why);
        } else {
            /* No event loop to defer to: the one case that ends inside. */
            ember_log(EMBER_LOG_ERROR, "call %u: %s", method, why);
            ember_outcome o = {st, why, 0, NULL, NULL};
            deliver(NULL, cb, &o, NULL);
        }
        return 0;
    }
    if (oneway)
        return 1;

    ember_pending *s = &c->slots[idx];
    s->gen = gen;
    s->heap_pos = 0;
    s->raw = cb->rawcb != NULL;
    s->done = cb->done;
    s->rawcb = cb->rawcb;
    s->cb = cb->cb;
    s->ud = cb->ud;
    s->child = cb->child;
    c->npending++;
    ep->inflight++;
    uint32_t ms = opts && opts->timeout_ms ? opts->timeout_ms : ep->lim.call_timeout_ms;
    if (ms && heap_push(ep, ember_now_ms() + ms, c, idx))
        ember_log(EMBER_LOG_ERROR, "%s: out of memory for a call deadline", ep->what);
    return (uint64_t)gen << SLOT_BITS | (idx + 1);
}

/* ---- answers ---- */

static ember_status wire_status(uint64_t code)
{
    switch (code) {
    case EMBER_FAILED:
    case EMBER_NO_METHOD:
    case EMBER_LIMIT:
    case EMBER_PROTOCOL:
    case EMBER_UNAVAILABLE:
    case EMBER_SHUTDOWN:
    case EMBER_CANCELLED:
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
    ember_dec_init(&d, f->payload, f->len, &c->ep->scratch);
    d.conn = c;
    d.lim = ember_conn_dec_limits(c);
    if (f->kind == EMBER_FR_REPLY) {
        finish(c, idx, EMBER_OK, "ok", 0, &d);
        return 0;
    }
    if (f->h[1] == EMBER_RAISED) {
        char msg[64];
        snprintf(msg, sizeof msg, "raised error %u", (unsigned)f->h[2]);
        finish(c, idx, EMBER_RAISED, msg, (uint32_t)f->h[2], &d);
        return 0;
    }
    /* Other errors carry { 1: string message }. */
    const char *msg = NULL;
    uint32_t tag;
    unsigned wt;
    int k;
    while ((k = ember_dec_field(&d, &tag, &wt)) == 1) {
        if (tag == 1 && wt == EMBER_WT_LEN)
            k = ember_dec_raw_string(&d, &msg);
        else
            k = ember_dec_skip(&d, wt);
        if (k)
            break;
    }
    if (!msg || k < 0)
        msg = ember_status_name(wire_status(f->h[1]));
    finish(c, idx, wire_status(f->h[1]), msg, 0, NULL);
    return 0;
}

void ember_calltab_fail_all(ember_conn *c, ember_status st, const char *msg)
{
    for (uint32_t i = 0; i < c->nslots; i++)
        if (c->slots[i].gen)
            finish(c, i, st, msg, 0, NULL);
}

void ember_calltab_free(ember_conn *c)
{
    ember_free(c->slots, sizeof *c->slots * c->nslots);
    c->slots = NULL;
    c->nslots = 0;
}

int ember_calltab_cancel(ember_conn *c, ember_handle h)
{
    uint32_t idx;
    if (find_slot(c, h, &idx) != 1)
        return ember_seterr("no such call in flight");
    finish(c, idx, EMBER_CANCELLED, "cancelled", 0, NULL);
    ember_frame_send_hdr(c, EMBER_FR_CANCEL, 1, h, 0, 0);
    return 0;
}

void ember_timer_fire(ember_ep *ep)
{
    uint64_t now = ember_now_ms();
    ep->timer_at = 0;
    while (ep->nheap && ep->heap[0].at <= now) {
        ember_heap_ent ent = ep->heap[0];
        uint64_t id = (uint64_t)ent.conn->slots[ent.idx].gen << SLOT_BITS |
                      (ent.idx + 1);
        finish(ent.conn, ent.idx, EMBER_TIMEOUT, "call timed out", 0, NULL);
        /* Tell the peer it may stop working on it. */
        ember_frame_send_hdr(ent.conn, EMBER_FR_CANCEL, 1, id, 0, 0);
    }
    timer_arm(ep);
}

/* ---- outcomes delivered later from the event loop ---- */

struct ember_deferred {
    struct ember_deferred *next;
    ember_callback cb;
    ember_status st;
    char msg[120];
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

void ember_defer_run(ember_ep *ep)
{
    struct ember_deferred *d = ep->defq;
    ep->defq = ep->defq_tail = NULL;
    while (d) {
        struct ember_deferred *next = d->next;
        ember_outcome o = {d->st, d->msg, 0, NULL, NULL};
        ep->inflight--;
        deliver(ep, &d->cb, &o, NULL);
        ember_free(d, sizeof *d);
        d = next;
    }
}

/* ---- the public call API ---- */

EMBER_API ember_handle ember_call_start(ember_ref *to, uint32_t method_id,
                                        ember_encode_fn enc, const void *args,
                                        ember_complete_fn done, ember_fn cb,
                                        void *ud, const ember_callopts *opts)
{
    ember_callback k = {done, NULL, cb, ud, NULL};
    return ember_calltab_start(to, method_id, false, enc, args, NULL, 0, &k, opts);
}

EMBER_API int ember_oneway_start(ember_ref *to, uint32_t method_id,
                                 ember_encode_fn enc, const void *args)
{
    return ember_calltab_start(to, method_id, true, enc, args, NULL, 0, NULL,
                               NULL) ? 0 : -1;
}

EMBER_API ember_handle ember_call_raw(ember_ref *to, uint32_t method_id,
                                      const void *payload, size_t len,
                                      ember_raw_cb cb, void *ud,
                                      const ember_callopts *opts)
{
    ember_callback k = {NULL, cb, NULL, ud, NULL};
    return ember_calltab_start(to, method_id, false, NULL, NULL, payload, len,
                               &k, opts);
}

EMBER_API int ember_oneway_raw(ember_ref *to, uint32_t method_id,
                               const void *payload, size_t len)
{
    return ember_calltab_start(to, method_id, true, NULL, NULL, payload, len,
                               NULL, NULL) ? 0 : -1;
}

EMBER_API int ember_cancel(ember_ref *to, ember_handle h)
{
    if (!to || to->kind == EMBER_REF_LOCAL || !to->conn || h == 0)
        return ember_seterr("no such call in flight");
    return ember_calltab_cancel(to->conn, h);
}
