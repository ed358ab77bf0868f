/*
 * calltab.c — outgoing calls. Each connection keeps its pending calls in a
 * slot array with a free list; a call id is (generation << 24) | (slot + 1),
 * so a reply finds its call in O(1), a reply to a call that already ended
 * (stale generation) is ignored, and an id naming a slot that never existed
 * is a protocol violation. Deadlines of all the endpoint's calls sit in one
 * FIFO list per distinct timeout behind one libevent timer (see below).
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
 * they started, so each distinct timeout keeps a FIFO list, sorted by
 * deadline for free: starting a call appends, ending one unlinks, both O(1)
 * (a min-heap of every call cost a push and a remove per call). The
 * earliest deadline is the least of the list heads. A few timeouts cover
 * real use (the default plus some explicit ones); past DL_LISTS distinct
 * values a call joins the list with the closest timeout and is inserted in
 * deadline order from the tail, which stays correct, just not O(1).
 *
 * The libevent timer moves only when a new deadline is earlier than the one
 * it is armed for. Ending calls leaves it alone: a fire that finds nothing
 * due re-arms for the earliest deadline left (at most one early wake-up per
 * timeout), which beats re-arming on every reply.
 */
#define DL_LISTS 8

typedef struct dl_node {
    uint64_t at;            /* deadline, ms */
    ember_conn *conn;
    uint32_t idx;           /* slot in conn's call table */
    uint32_t prev, next;    /* 1-based node numbers, 0: none; next also
                             * chains the free nodes */
    uint32_t list;
} dl_node;

typedef struct dl_list {
    uint32_t ms;            /* the timeout its calls were started with */
    uint32_t head, tail;    /* 1-based node numbers, 0: empty */
} dl_list;

struct ember_deadlines {
    dl_node *v;             /* node n is v[n - 1] */
    uint32_t cap, free;
    uint32_t nlists;
    uint32_t last;          /* the list dl_pick returned last */
    dl_list lists[DL_LISTS];
};

#define NODE(dl, n) (&(dl)->v[(n) - 1])

/* The list for timeout ms: its own, else an empty one, else a new one,
 * else the one with the closest timeout. */
static uint32_t dl_pick(struct ember_deadlines *dl, uint32_t ms)
{
    /* Calls mostly share one timeout: the last list first. */
    if (dl->last < dl->nlists && dl->lists[dl->last].ms == ms)
        return dl->last;
    uint32_t empty = DL_LISTS, best = 0;
    uint32_t bestd = UINT32_MAX;
    for (uint32_t i = 0; i < dl->nlists; i++) {
        dl_list *l = &dl->lists[i];
        if (l->ms == ms)
            return i;
        if (!l->head && empty == DL_LISTS)
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
    dl->lists[empty].head = dl->lists[empty].tail = 0;
    return empty;
}

/* The node with the earliest deadline, 0 when there is none. */
static uint32_t dl_earliest(const struct ember_deadlines *dl)
{
    uint32_t best = 0;
    if (!dl)
        return 0;
    for (uint32_t i = 0; i < dl->nlists; i++) {
        uint32_t h = dl->lists[i].head;
        if (h && (!best || NODE(dl, h)->at < NODE(dl, best)->at))
            best = h;
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

static int dl_push(ember_ep *ep, uint64_t at, uint32_t ms, ember_conn *c,
                   uint32_t idx)
{
    struct ember_deadlines *dl = ep->dl;
    if (!dl && !(dl = ep->dl = ember_calloc(sizeof *dl)))
        return -1;
    if (!dl->free) {
        uint32_t ncap = dl->cap ? dl->cap * 2 : 16;
        dl_node *nv = ember_realloc(dl->v, sizeof *nv * dl->cap, sizeof *nv * ncap);
        if (!nv)
            return -1;
        for (uint32_t n = ncap; n > dl->cap; n--) {
            nv[n - 1].next = dl->free;
            dl->free = n;
        }
        dl->v = nv;
        dl->cap = ncap;
    }
    uint32_t n = dl->free;
    dl_node *x = NODE(dl, n);
    dl->free = x->next;
    uint32_t li = dl->last = dl_pick(dl, ms);
    dl_list *l = &dl->lists[li];
    x->at = at;
    x->conn = c;
    x->idx = idx;
    x->list = li;
    /* After the last node due no later (the tail, unless lists were shared). */
    uint32_t p = l->tail;
    while (p && NODE(dl, p)->at > at)
        p = NODE(dl, p)->prev;
    x->prev = p;
    x->next = p ? NODE(dl, p)->next : l->head;
    if (x->next)
        NODE(dl, x->next)->prev = n;
    else
        l->tail = n;
    if (p)
        NODE(dl, p)->next = n;
    else
        l->head = n;
    c->slots[idx].dl_node = n;
    if (!ep->timer_at || at < ep->timer_at)
        timer_set(ep, at);
    return 0;
}

static void dl_remove(ember_ep *ep, uint32_t n)
{
    struct ember_deadlines *dl = ep->dl;
    dl_node *x = NODE(dl, n);
    dl_list *l = &dl->lists[x->list];
    x->conn->slots[x->idx].dl_node = 0;
    if (x->prev)
        NODE(dl, x->prev)->next = x->next;
    else
        l->head = x->next;
    if (x->next)
        NODE(dl, x->next)->prev = x->prev;
    else
        l->tail = x->prev;
    x->conn = NULL;
    x->next = dl->free;
    dl->free = n;
}

void ember_calltab_ep_fini(ember_ep *ep)
{
    if (ep->dl) {
        ember_free(ep->dl->v, sizeof *ep->dl->v * ep->dl->cap);
        ember_free(ep->dl, sizeof *ep->dl);
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

static void finish(ember_conn *c, uint32_t idx, ember_status st, const char *msg,
                   uint32_t error_id, ember_dec *dec)
{
    ember_ep *ep = c->ep;
    ember_pending *s = &c->slots[idx];
    ember_callback cb = s->cb; /* the slot may be reused by the callback */
    if (s->dl_node)
        dl_remove(ep, s->dl_node);
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

ember_handle ember_calltab_start(ember_ref *to, const ember_service_desc *svc,
                                 uint32_t service, uint32_t method, bool oneway,
                                 ember_encode_fn enc, const void *args,
                                 const ember_callback *cb,
                                 const ember_callopts *opts)
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
                          method, svc, m, enc, args)) {
            st = EMBER_LIMIT;
            why = ember_last_error();
            if (!oneway) {
                c->slots[idx].next_free = c->free_slot;
                c->free_slot = idx + 1;
            }
        }
    } else if (!why) {
        ember_enc e;
        if (ember_frame_begin(c, &e, oneway ? EMBER_FR_ONEWAY : EMBER_FR_CALL) == 0) {
            /* The header fits the room ember_frame_begin reserved. */
            ember_put_le32(e.p, service);
            e.p += 4;
            if (!oneway) {
                gen = next_gen(ep);
                ember_frame_put_varint(&e, (uint64_t)gen << SLOT_BITS | (idx + 1));
            }
            ember_frame_put_varint(&e, to->kind == EMBER_REF_REMOTE ? to->oid : 0);
            ember_frame_put_varint(&e, method);
            if (enc)
                enc(&e, args);
        }
        if (ember_frame_end(c, &e)) {
            st = EMBER_LIMIT;
            why = "arguments could not be encoded (too large, out of memory, "
                  "or a ref from another connection)";
            if (e.bad_utf8) /* the call's own fault: it alone fails */
                st = EMBER_FAILED, why = bad_utf8_msg(bad, sizeof bad, svc,
                                                      method, e.bad_utf8);
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
            ember_log(EMBER_LOG_ERROR, "call %08x.%u: %s", service, method, why);
            ember_outcome o = {st, why, 0, NULL, NULL};
            deliver(NULL, cb, &o, NULL);
        }
        return 0;
    }
    if (oneway)
        return 1;

    ember_pending *s = &c->slots[idx];
    s->gen = gen;
    s->dl_node = 0;
    s->cb = *cb;
    s->m = m;
    c->npending++;
    ep->inflight++;
    uint32_t ms = opts && opts->timeout_ms ? opts->timeout_ms : ep->lim.call_timeout_ms;
    if (ms && dl_push(ep, ember_clock_ms() + ms, ms, c, idx))
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
        finish(c, idx, EMBER_OK, "ok", 0, &d);
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
    uint32_t n;
    ep->timer_at = 0; /* it fired */
    while ((n = dl_earliest(ep->dl)) && NODE(ep->dl, n)->at <= now) {
        ember_conn *c = NODE(ep->dl, n)->conn;
        uint32_t idx = NODE(ep->dl, n)->idx;
        uint64_t id = (uint64_t)c->slots[idx].gen << SLOT_BITS | (idx + 1);
        finish(c, idx, EMBER_TIMEOUT, "call timed out", 0, NULL);
        /* Tell the peer it may stop working on it. */
        send_cancel(c, id);
    }
    /* Callbacks may have armed it already, for a deadline of their own. */
    if ((n = dl_earliest(ep->dl)) && NODE(ep->dl, n)->at != ep->timer_at &&
        (!ep->timer_at || NODE(ep->dl, n)->at < ep->timer_at))
        timer_set(ep, NODE(ep->dl, n)->at);
    ember_clock_release();
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

EMBER_API ember_handle ember_call_start(ember_ref *to,
                                        const ember_service_desc *svc,
                                        uint32_t method_id, ember_encode_fn enc,
                                        const void *args, ember_complete_fn done,
                                        ember_fn cb, void *ud,
                                        const ember_callopts *opts)
{
    ember_callback k = {done, NULL, cb, ud, NULL, svc};
    return ember_calltab_start(to, svc, svc ? svc->id : 0, method_id, false, enc,
                               args, &k, opts);
}

EMBER_API int ember_oneway_start(ember_ref *to, const ember_service_desc *svc,
                                 uint32_t method_id, ember_encode_fn enc,
                                 const void *args)
{
    return ember_calltab_start(to, svc, svc ? svc->id : 0, method_id, true, enc,
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
