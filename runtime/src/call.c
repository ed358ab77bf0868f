/*
 * call.c — incoming calls. A call object comes from the endpoint's pool and
 * carries a 512-byte inline arena for its decoded arguments, so a steady
 * stream of small calls allocates nothing. In-flight calls are linked on
 * their connection; those that outlive their dispatch (answered later) are
 * also hashed by the caller's call id, for CANCEL and to refuse a second
 * call under an id in flight. A call answered inside its handler is never
 * hashed: nothing can name it while it runs. When the connection goes, the
 * calls become orphans: the handler may still answer later, and that answer
 * just frees the call.
 */
#include <stdio.h>
#include <string.h>

#include "call-internal.h"
#include "conn-internal.h"
#include "ember-internal.h"
#include "ep-internal.h"
#include "hash-internal.h"
#include "metrics-internal.h"
#include "ref-internal.h"
#include "wire-internal.h"

#define CALL_POOL_MAX 256

/* A call object, its fields before the arena as the last call left them:
 * ember_call_dispatch sets every one. A pooled call's arena is as new
 * already: call_put finished it before pooling it. */
static ember_call *call_get(ember_ep *ep)
{
    ember_call *k = ep->free_calls;
    if (k) {
        ep->free_calls = k->next;
        ep->nfree_calls--;
    } else if ((k = ember_malloc(sizeof *k))) {
        ember_arena_init(&k->arena, k->inline_arena, sizeof k->inline_arena);
        k->arena.spare = &ep->arena_spare;
    }
    return k;
}

static void call_put(ember_call *k)
{
    ember_ep *ep = k->ep;
    if (k->target) {
        ember_ref *t = k->target;
        k->target = NULL;
        ember_ref_release(t);
    }
    if (k->fwd_to) {
        ember_ref *t = k->fwd_to;
        k->fwd_to = NULL;
        ember_ref_release(t);
    }
    ember_arena_fini(&k->arena);
    if (ep && !ep->freeing && ep->nfree_calls < CALL_POOL_MAX) {
        k->next = ep->free_calls;
        ep->free_calls = k;
        ep->nfree_calls++;
    } else {
        ember_free(k, sizeof *k);
    }
}

void ember_call_pool_free(ember_ep *ep)
{
    while (ep->free_calls) {
        ember_call *k = ep->free_calls;
        ep->free_calls = k->next;
        ember_free(k, sizeof *k);
    }
    ep->nfree_calls = 0;
}

static void link_call(ember_conn *c, ember_call *k)
{
    k->prev = NULL;
    k->next = c->calls;
    if (c->calls)
        c->calls->prev = k;
    c->calls = k;
    c->ncalls++;
    c->ep->inflight++;
}

/* Takes k off its connection (or the orphan list). */
static void unlink_call(ember_call *k)
{
    ember_conn *c = k->conn;
    ember_ep *ep = k->ep;
    if (c) {
        if (k->hashed)
            ember_htab_del(&c->calls_by_id, &k->hn);
        k->hashed = false;
        if (k->prev)
            k->prev->next = k->next;
        else
            c->calls = k->next;
        if (k->next)
            k->next->prev = k->prev;
        c->ncalls--;
        if (k->cancelled)
            c->ncancelled--;
        c->deferred_bytes -= k->held;
        k->held = 0;
        ep->inflight--;
        k->conn = NULL;
        ember_ep_check_idle(ep);
    } else if (ep) {
        if (k->prev)
            k->prev->next = k->next;
        else
            ep->orphans = k->next;
        if (k->next)
            k->next->prev = k->prev;
    }
    k->prev = k->next = NULL;
}

/*
 * Counts the call's end in its method's stats. A call answered inside its
 * handler during a read batch joins the batch's tally (a few distinct
 * methods): when the batch ends, one clock reading settles them all, each
 * counting its share of the batch's time in total_us and the whole batch
 * time as a candidate for max_us (a bound: a slow handler shows in max_us
 * as before, and the batch's time is counted once in total_us, not once
 * per call). Other ends read the clock for real.
 */
static bool tally_add(ember_call *k)
{
    ember_ep *ep = k->ep;
    if (!ep || !ep->batch_depth || !k->in_dispatch || k->ex != ep->exports ||
        (k->x != &k->ex->fallback && k->xver != k->ex->ver))
        return false;
    struct ember_tally *t = NULL;
    for (uint32_t i = 0; i < ep->ntally; i++)
        if (ep->tally[i].x == k->x && ep->tally[i].ver == k->xver) {
            t = &ep->tally[i];
            break;
        }
    if (!t) {
        if (ep->ntally == sizeof ep->tally / sizeof ep->tally[0])
            return false;
        t = &ep->tally[ep->ntally++];
        t->x = k->x;
        t->ver = k->xver;
        t->key = ember_xkey(k->service, k->method);
        t->n = 0;
    }
    t->n++;
    if (!ep->tally_calls++ || k->start_us < ep->tally_t0)
        ep->tally_t0 = k->start_us;
    return true;
}

void ember_call_batch_begin(ember_ep *ep)
{
    ep->batch_depth++;
}

void ember_call_batch_end(ember_ep *ep)
{
    if (--ep->batch_depth || !ep->tally_calls)
        return;
    uint64_t now = ember_now_us();
    uint64_t us = now > ep->tally_t0 ? now - ep->tally_t0 : 0;
    ember_exports *ex = ep->exports;
    for (uint32_t i = 0; i < ep->ntally; i++) {
        struct ember_tally *t = &ep->tally[i];
        ember_exports_add_time(ex, t->x, t->ver, t->key,
                               us * t->n / ep->tally_calls, us, t->n);
    }
    ep->ntally = ep->tally_calls = 0;
}

static void call_record(ember_call *k, unsigned end)
{
    if (!k->ex)
        return;
    if (tally_add(k)) { /* k->x is current: tally_add checked */
        k->x->mx->ends[end]++;
        return;
    }
    ember_exports_record(k->ex, k->x, k->xver,
                         ember_xkey(k->service, k->method), end,
                         ember_now_us() - k->start_us);
}

/* A call counted on arrival that dispatch refuses before it has a call
 * object (out of memory, its id in flight): it ends FAILED like any call,
 * timed from its batch's reading to the refusal. */
static void refused_end(ember_exports *ex, ember_xentry *x, uint32_t service,
                        uint32_t method)
{
    uint64_t t0 = ember_clock_us(), now = ember_now_us();
    ember_exports_record(ex, x, ex->ver, ember_xkey(service, method),
                         EMBER_END_FAILED, now > t0 ? now - t0 : 0);
}

/* The answer is written (or discarded): the call is over. */
static void call_end(ember_call *k, unsigned end)
{
    call_record(k, end);
    unlink_call(k);
    if (!k->in_dispatch)
        call_put(k);
}

/* k forwarded its call (ember_call_forward, a proxy): the caller gave up,
 * so the forwarded call is cancelled (a CANCEL downstream). Its outcome
 * may answer and free k: the ref is held across. */
static void cancel_forwarded(ember_call *k)
{
    if (!k->fwd_h)
        return;
    ember_handle h = k->fwd_h;
    ember_ref *to = ember_ref_retain(k->fwd_to);
    k->fwd_h = 0;
    ember_cancel(to, h);
    ember_ref_release(to);
}

void ember_call_orphan_all(ember_conn *c)
{
    ember_ep *ep = c->ep;
    while (c->calls) {
        ember_call *k = c->calls;
        unlink_call(k);
        /* Its end, once: a call its caller cancelled stays cancelled. */
        call_record(k, k->cancelled ? EMBER_END_CANCELLED : EMBER_END_LOST);
        k->cancelled = true;
        k->ex = NULL;
        k->next = ep->orphans;
        if (ep->orphans)
            ep->orphans->prev = k;
        ep->orphans = k;
        /* A forwarded call: nobody waits for what it forwarded any more,
         * so it is cancelled as the caller's CANCEL would be (its outcome
         * answers k, an orphan now, which frees it). */
        cancel_forwarded(k);
    }
}

void ember_call_cancel_in(ember_conn *c, uint64_t peer_id)
{
    ember_hnode *x = ember_htab_get(&c->calls_by_id, peer_id);
    if (!x)
        return;
    ember_call *k = EMBER_CONTAINER(x, ember_call, hn);
    if (!k->cancelled)
        c->ncancelled++;
    k->cancelled = true;
    /* A forwarded call: cancel what it forwarded (its outcome, CANCELLED,
     * ends k at once, silently). */
    cancel_forwarded(k);
}

/* What ember_call_forward does not pass on, either way. */
#define REFS_NOT_FORWARDED "values holding refs: a raw forward does not pass them on"

static void forwarded(const ember_outcome *o, const void *p, size_t n, void *ud)
{
    ember_call *call = ud;
    call->fwd_h = 0;
    /* An answer whose frame lists refs of the next hop: they would reach
     * the caller as objects of ours (see ember_call_forward_with). */
    if (call->fwd_to->conn && call->fwd_to->conn->in_refs &&
        (o->status == EMBER_OK || o->status == EMBER_RAISED))
        ember_call_fail(call, "%s", REFS_NOT_FORWARDED);
    else
        ember_call_relay(call, o, p, n);
}

EMBER_API int ember_call_forward(ember_call *call, ember_ref *to, uint32_t service,
                                 uint32_t method, const void *payload, size_t len,
                                 const ember_callopts *opts)
{
    return ember_call_forward_with(call, to, service, method, payload, len,
                                   forwarded, opts);
}

int ember_call_forward_with(ember_call *call, ember_ref *to, uint32_t service,
                            uint32_t method, const void *payload, size_t len,
                            ember_raw_cb cb, const ember_callopts *opts)
{
    if (!call || !to)
        return ember_seterr("ember_call_forward: NULL argument");
    if (call->answered || call->fwd_to)
        return ember_seterr("ember_call_forward: the call was answered or "
                            "forwarded already");
    /* Its frame lists refs of the caller (protocol 3), still in the
     * payload: copied, they would name objects of the wrong connection,
     * which the next hop finds unlisted (and drops its connection to us,
     * with every call on it) or takes for its own. They go back to the
     * caller when the frame is handled; forwarded later (a copy of the
     * payload kept), they were released already and name nothing. */
    if (call->raw_refs) {
        if (!call->oneway)
            return ember_call_fail(call, "%s", REFS_NOT_FORWARDED);
        const ember_conn *c = call->conn; /* NULL: gone since */
        ember_log(EMBER_LOG_WARN, "%s: a oneway from %s (%s) dropped: %s",
                  call->ep ? call->ep->what : "ember",
                  c && c->name ? c->name : c ? "unregistered peer" : "a peer gone",
                  c ? c->peer : "-", REFS_NOT_FORWARDED);
        return 0;
    }
    if (call->oneway)
        return ember_oneway_raw(to, service, method, payload, len);
    /* Answered exactly once by cb, whatever happens to either side
     * meanwhile (a call that cannot start ends from the loop); the
     * caller's CANCEL, or its connection going, cancels it. */
    call->fwd_to = ember_ref_retain(to);
    call->fwd_h = ember_call_raw(to, service, method, payload, len, cb, call, opts);
    return 0;
}

/* An ERROR frame with { 1: message }; a NO_METHOD for a service the object
 * does not serve names the service as error id and adds { 2: object id }. */
static void send_error_(ember_conn *c, uint64_t call_id, ember_status code,
                        const char *msg, uint32_t service, uint64_t oid)
{
    if (c->wire) {
        c->wire->answer(c, call_id, NULL, code, 0, NULL, NULL, msg);
        return;
    }
    ember_enc e;
    if (ember_frame_begin(c, &e, EMBER_FR_ERROR))
        return;
    ember_enc_raw_varint(&e, call_id);
    ember_enc_raw_varint(&e, (uint64_t)code);
    ember_enc_raw_varint(&e, service);
    ember_enc_string(&e, 1, msg);
    if (service)
        ember_enc_uint(&e, 2, oid);
    ember_frame_end(c, &e);
}

static void send_error(ember_conn *c, uint64_t call_id, ember_status code,
                       const char *msg)
{
    send_error_(c, call_id, code, msg, 0, 0);
}

/* For messages: the name of a service ex serves. */
static const char *service_name(const ember_exports *ex, uint32_t id)
{
    for (uint32_t i = 0; ex && i < ex->nsvcs; i++)
        if (ex->svcs[i]->id == id)
            return ex->svcs[i]->name;
    return "a raw service";
}

int ember_call_dispatch(ember_conn *c, const ember_frame *f)
{
    ember_ep *ep = c->ep;
    bool oneway = f->kind == EMBER_FR_ONEWAY;
    uint64_t call_id = oneway ? 0 : f->h[0];
    uint64_t oid = oneway ? f->h[0] : f->h[1];
    uint64_t mid = oneway ? f->h[1] : f->h[2];
    uint32_t svc = f->svc;
    char msg[128];

    /* The caller counts its calls until they end there: a call it
     * cancelled (or timed out) no longer counts, though its handler still
     * runs here; nor do its oneways, so one over the limit is dropped,
     * not taken for a violation. Cancelled calls still running may take
     * as many again. */
    uint32_t live = c->ncalls - c->ncancelled;
    if (oneway && live >= ep->lim.max_outstanding) {
        if (!c->oneway_dropped)
            ember_log(EMBER_LOG_WARN, "%s: dropping ONEWAYs from %s while %u of "
                      "its calls are in flight (max_outstanding)", ep->what,
                      c->peer, live);
        c->oneway_dropped = true;
        return 0;
    }
    if (live >= ep->lim.max_outstanding ||
        c->ncalls >= 2 * (uint64_t)ep->lim.max_outstanding) {
        ember_conn_closef(c, EMBER_PROTOCOL, "peer exceeded max_outstanding "
                          "(%u calls in flight%s)", ep->lim.max_outstanding,
                          live >= ep->lim.max_outstanding ? "" : ", cancelled");
        return -1;
    }
    /* Deferred calls keep their decoded arguments; each frame's are bounded
     * by the decode budget, and their sum by max_deferred_bytes. */
    if (c->deferred_bytes > ep->lim.max_deferred_bytes) {
        ember_conn_closef(c, EMBER_PROTOCOL, "peer exceeded max_deferred_bytes "
                          "(unanswered calls hold %zu bytes)", c->deferred_bytes);
        return -1;
    }
    ember_exports *ex = ep->exports;
    ember_ref *target = NULL;
    if (oid != 0) {
        target = ember_ref_find_xobj(c, oid);
        ex = target ? target->lex : NULL;
        if (target && target->revoked) {
            if (!oneway)
                send_error(c, call_id, EMBER_UNAVAILABLE,
                           "object withdrawn by its owner");
            return 0;
        }
    }
    bool served = false;
    bool mid_ok = mid && mid <= UINT32_MAX; /* method ids are 1..2^32-1 */
    ember_xentry *x = ex && mid_ok
                          ? ember_exports_resolve(ex, svc, (uint32_t)mid, &served)
                          : NULL;
    if (ex && !mid_ok) /* no such method, but whether the service is served */
        (void)ember_exports_resolve(ex, svc, 0, &served);
    /* Not for an id out of range: the fallback would see it cut to 32 bits. */
    if (!x && ex && ex->fallback.raw && oid == 0 && mid <= UINT32_MAX)
        x = &ex->fallback, served = true;
    if (!x || ep->stopping) {
        if (oid && !ex)
            snprintf(msg, sizeof msg, "no object %llu on this connection",
                     (unsigned long long)oid);
        else if (!served)
            snprintf(msg, sizeof msg, "object %llu does not serve service "
                     "%08x", (unsigned long long)oid, svc);
        else
            snprintf(msg, sizeof msg, "no method %llu in %s",
                     (unsigned long long)mid, service_name(ex, svc));
        ember_log(EMBER_LOG_DEBUG, "%s: %s from %s", ep->what,
                  x ? "call refused while stopping" : msg, c->peer);
        if (!oneway && x)
            send_error(c, call_id, EMBER_UNAVAILABLE, "shutting down");
        else if (!oneway)
            send_error_(c, call_id, EMBER_NO_METHOD, msg,
                        ex && !served ? svc : 0, oid);
        return 0;
    }

    x->st.calls++; /* counted on arrival; failures and time when it ends */
    /* Two calls under one id could not be told apart (their answers,
     * CANCEL): the newcomer fails, the connection and the first stay. Only
     * calls that outlived their dispatch are in the table (see the end), so
     * while none is deferred there is nothing to look up, or to hash. */
    uint32_t idh = 0;
    bool have_idh = false;
    if (!oneway && c->calls_by_id.n) {
        idh = (uint32_t)ember_hash_u64(call_id);
        have_idh = true;
        if (ember_htab_get_h(&c->calls_by_id, call_id, idh)) {
            refused_end(ex, x, svc, (uint32_t)mid);
            snprintf(msg, sizeof msg, "call id %llu is already in flight",
                     (unsigned long long)call_id);
            ember_log(EMBER_LOG_DEBUG, "%s: %s from %s", ep->what, msg, c->peer);
            send_error(c, call_id, EMBER_FAILED, msg);
            return 0;
        }
    }
    /* The frame's kind and the IDL's must agree, or the handler's idea of
     * the call's life would not be the runtime's. A CALL to a oneway method
     * is served as a oneway and answered (void: None on PB) once its
     * arguments decoded (undecodable ones get FAILED, as any call's). A
     * ONEWAY to a two-way method is served as a call whose answer is
     * discarded (kept): it lives until its handler answers, now or later
     * (ending it when the handler returns would let a deferred answer land
     * on whichever call reused it), and counts against max_outstanding and
     * max_deferred_bytes like any call. */
    bool ack = x->m && !oneway && x->m->oneway;
    if (ack)
        oneway = true;
    bool keep = oneway && x->m && !x->m->oneway;
    ember_call *k = call_get(ep);
    if (!k) {
        refused_end(ex, x, svc, (uint32_t)mid);
        if (!oneway || ack) /* a CALL waits for an answer, to a oneway too */
            send_error(c, call_id, EMBER_LIMIT, "out of memory");
        return 0;
    }
    /* Every field before the arena, in struct order (call_get leaves them
     * as the last call left them); link_call sets prev and next, hn is set
     * when hashed, raw_outside before a raw handler runs. */
    k->ep = ep;
    k->conn = c;
    k->hashed = false;
    k->ex = ex;
    k->x = x;
    k->xver = ex->ver;
    k->target = target ? ember_ref_retain(target) : NULL;
    k->fwd_to = NULL;
    k->fwd_h = 0;
    k->peer_id = call_id;
    k->oid = oid;
    k->start_us = ember_clock_us(); /* when the batch holding it was read */
    k->service = svc;
    k->method = (uint32_t)mid;
    k->oneway = oneway;
    k->answered = false;
    k->cancelled = false;
    k->in_dispatch = true; /* an answer inside the handler must not free k */
    k->raw_refs = c->in_refs != 0; /* counted before any decode took one */
    k->held = 0;
    link_call(c, k);

    int rc = 0;
    ember_dec d;
    d.why = NULL;
    if (x->raw) {
        k->raw_outside = 0;
        x->raw(k, svc, (uint32_t)mid, f->payload, f->len, x->ud);
    } else {
        ember_dec_init_conn(&d, c, f->payload, f->len, &k->arena);
        rc = x->m->dispatch(k, &d, x->handlers, x->ud);
    }
    if (rc < 0) {
        const char *why = d.why ? d.why : "arguments do not decode";
        if (ack) { /* k is a oneway: its failure would go unsent */
            snprintf(msg, sizeof msg, "bad arguments: %s", why);
            send_error(c, call_id, EMBER_FAILED, msg);
        }
        if (!k->answered)
            ember_call_fail(k, "bad arguments: %s", why);
        ember_conn_closef(c, EMBER_PROTOCOL, "undecodable arguments for %s.%s: "
                          "%s", x->st.service, x->st.method, why);
    } else if (ack && c->state == EMBER_CONN_READY) {
        if (c->wire)
            c->wire->answer(c, call_id, x->m, EMBER_OK, 0, NULL, NULL, NULL);
        else
            ember_frame_send_hdr(c, EMBER_FR_REPLY, call_id, 0);
    }
    if (oneway && !keep && !k->answered) { /* a oneway call ends with its handler */
        k->answered = true;
        call_end(k, EMBER_END_OK);
    }
    if (!k->answered && k->conn == c) { /* deferred: it holds its arena */
        k->held = k->arena.heap + (x->raw ? k->raw_outside : d.outside);
        c->deferred_bytes += k->held;
        /* ...and CANCEL and a later call under its id must find it. Out of
         * memory leaves it out of the table: CANCEL just won't find it. No
         * frame of c was read since the check above: the id is not in. A
         * kept ONEWAY has no id to find it by. */
        if (!oneway) {
            if (!have_idh)
                idh = (uint32_t)ember_hash_u64(call_id);
            k->hashed = ember_htab_put_h(&c->calls_by_id, &k->hn, call_id, idh) == 0;
        }
    }
    k->in_dispatch = false;
    if (k->answered)
        call_put(k);
    return rc;
}

/* ---- answering ---- */

/* Common start of every answer: -1 if already answered; 0 to write; 1 to
 * discard (oneway, cancelled or orphaned). */
static int answer_begin(ember_call *k)
{
    if (!k || k->answered)
        return -1;
    k->answered = true;
    if (k->oneway || k->cancelled || !k->conn ||
        k->conn->state != EMBER_CONN_READY)
        return 1;
    return 0;
}

/* How a call ends whose answer is discarded (answer_begin gave 1),
 * whatever its handler answered: cancelled by its caller, or lost with its
 * connection; a oneway call ends as its handler said (end). */
static unsigned discarded_end(const ember_call *k, unsigned end)
{
    return k->cancelled ? EMBER_END_CANCELLED
           : k->oneway  ? end
                        : EMBER_END_LOST;
}

/* Writes the answer frame: a REPLY, or an ERROR carrying a raised error.
 * If it cannot be encoded the caller gets a failure instead; -1 then. */
static int write_answer(ember_call *k, bool raised, uint32_t error_id,
                        ember_encode_fn enc, const void *value)
{
    ember_conn *c = k->conn;
    if (c->wire)
        return c->wire->answer(c, k->peer_id, k->x ? k->x->m : NULL,
                               raised ? EMBER_RAISED : EMBER_OK, error_id, enc,
                               value, NULL);
    ember_enc e;
    if (ember_frame_begin(c, &e, raised ? EMBER_FR_ERROR : EMBER_FR_REPLY) == 0) {
        ember_frame_put_varint(&e, k->peer_id);
        if (raised) {
            ember_frame_put_varint(&e, EMBER_RAISED);
            ember_frame_put_varint(&e, error_id);
        }
        if (enc)
            enc(&e, value);
    }
    if (ember_frame_end(c, &e) == 0)
        return 0;
    const char *what = raised ? "error" : "reply";
    ember_log(EMBER_LOG_WARN, "%s: %s to %s.%u could not be encoded: %s",
              c->ep->what, what, service_name(k->ex, k->service), k->method,
              ember_last_error());
    char msg[200];
    snprintf(msg, sizeof msg, "%s could not be encoded: %s", what,
             e.bad_utf8 ? "a string in it is not valid UTF-8" : ember_last_error());
    send_error(c, k->peer_id, ember_encode_status(&e), msg);
    return -1;
}

EMBER_API int ember_call_reply(ember_call *k, ember_encode_fn enc, const void *value)
{
    int r = answer_begin(k);
    if (r < 0)
        return ember_seterr("call already answered");
    unsigned end = r == 0 ? (write_answer(k, false, 0, enc, value) == 0
                                 ? EMBER_END_OK : EMBER_END_FAILED)
                   : discarded_end(k, EMBER_END_OK);
    call_end(k, end);
    return 0;
}

EMBER_API int ember_call_reply_raw(ember_call *k, const void *payload, size_t len)
{
    ember_bytes b = {payload, len};
    return ember_call_reply(k, ember_enc_payload, &b);
}

EMBER_API int ember_call_raise(ember_call *k, uint32_t error_id,
                               ember_encode_fn enc, const void *error)
{
    int r = answer_begin(k);
    if (r < 0)
        return ember_seterr("call already answered");
    /* An error that does not encode reaches the caller as a failure. */
    call_end(k, r == 0 ? (write_answer(k, true, error_id, enc, error) == 0
                              ? EMBER_END_RAISED : EMBER_END_FAILED)
                       : discarded_end(k, EMBER_END_RAISED));
    return 0;
}

EMBER_API int ember_call_raise_raw(ember_call *k, uint32_t error_id,
                                   const void *payload, size_t len)
{
    ember_bytes b = {payload, len};
    return ember_call_raise(k, error_id, ember_enc_payload, &b);
}

/* The status a failure goes on the wire with. */
static ember_status fail_code(ember_status st)
{
    switch (st) {
    case EMBER_NO_METHOD:
    case EMBER_UNAVAILABLE:
    case EMBER_LIMIT:
        return st;
    case EMBER_LOST:
    case EMBER_SHUTDOWN:
        return EMBER_UNAVAILABLE;
    default:
        return EMBER_FAILED;
    }
}

/* A failure answer; a NO_METHOD naming service (not 0) says the object
 * does not serve it. */
static int fail_v(ember_call *k, ember_status st, uint32_t service,
                  const char *fmt, va_list ap)
{
    char msg[512];
    int r = answer_begin(k);
    if (r < 0)
        return ember_seterr("call already answered");
    if (r == 0) {
        vsnprintf(msg, sizeof msg, fmt ? fmt : "failed", ap);
        st = fail_code(st);
        send_error_(k->conn, k->peer_id, st, msg,
                    st == EMBER_NO_METHOD ? service : 0, k->oid);
    }
    call_end(k, r == 0 ? EMBER_END_FAILED : discarded_end(k, EMBER_END_FAILED));
    return 0;
}

static int fail_with(ember_call *k, ember_status st, uint32_t service,
                     const char *fmt, ...) EMBER_PRINTF(4, 5);
static int fail_with(ember_call *k, ember_status st, uint32_t service,
                     const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = fail_v(k, st, service, fmt, ap);
    va_end(ap);
    return r;
}

EMBER_API int ember_call_fail(ember_call *k, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = fail_v(k, EMBER_FAILED, 0, fmt, ap);
    va_end(ap);
    return r;
}

EMBER_API int ember_call_fail_status(ember_call *k, ember_status st,
                                     const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = fail_v(k, st, 0, fmt, ap);
    va_end(ap);
    return r;
}

EMBER_API int ember_call_relay(ember_call *k, const ember_outcome *o,
                               const void *payload, size_t len)
{
    if (!o)
        return ember_call_fail(k, "no outcome to relay");
    if (o->status == EMBER_OK)
        return ember_call_reply_raw(k, payload, len);
    if (o->status == EMBER_RAISED)
        return ember_call_raise_raw(k, o->error_id, payload, len);
    /* A NO_METHOD for a service the object does not serve keeps naming
     * it, so the caller can name it too. */
    return fail_with(k, o->status, o->status == EMBER_NO_METHOD ? o->error_id : 0,
                     "%s", o->message ? o->message : ember_status_name(o->status));
}

EMBER_API ember_ref *ember_call_caller(ember_call *k)
{
    return k && k->conn ? k->conn->peer_ref : NULL;
}

EMBER_API ember_child *ember_call_child(ember_call *k)
{
    return k && k->conn ? k->conn->child : NULL;
}

EMBER_API uint32_t ember_call_service(const ember_call *k)
{
    return k ? k->service : 0;
}

EMBER_API uint32_t ember_call_method(const ember_call *k)
{
    return k ? k->method : 0;
}

EMBER_API bool ember_call_oneway(const ember_call *k)
{
    return k && k->oneway;
}

EMBER_API bool ember_call_cancelled(const ember_call *k)
{
    return !k || k->cancelled || !k->conn || k->conn->state != EMBER_CONN_READY;
}

EMBER_API void *ember_call_alloc(ember_call *k, size_t size)
{
    if (!k) {
        ember_seterr("ember_call_alloc: NULL call");
        return NULL;
    }
    return ember_arena_alloc(&k->arena, size);
}
