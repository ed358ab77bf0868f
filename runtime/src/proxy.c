/*
 * proxy.c — third-party references, in the manner of Cap'n Proto: when a
 * ref to a peer's object (or a peer's exports) is passed on to another
 * connection, the receiver gets an object of ours, a proxy, exported like a
 * local object. Its calls are forwarded untouched to where the ref points
 * and its answers relayed back, so no user code runs on the way. A proxy
 * serves the one service the ref was passed as (ref<Service>). Arguments,
 * results and raised errors that hold refs are re-encoded on the way, with
 * the run-time types of the method (generated code): each ref decoded on
 * one connection is encoded on the other, so it becomes a proxy in turn (or
 * goes home). It lives as long as the receiver holds it (or a call through
 * it is in flight) and holds the forwarded ref meanwhile, so the owner
 * learns the release (its DECREF) once both the receiver and the local
 * holders are done. When the owner goes, the forwarded calls end
 * EMBER_UNAVAILABLE.
 */
#include <stdio.h>

#include "call-internal.h"
#include "conn-internal.h"
#include "ember-internal.h"
#include "ref-internal.h"
#include "wire-internal.h"
#include "metrics-internal.h"

/* What a proxy costs, made when a ref new to us is passed on: the ref, its
 * exports table with its one entry and that entry's metrics, and its slot
 * among the connection's exported objects (and two buckets of each of the
 * two tables that find it). Charged to the decode that brought the ref. */
#define PROXY_BYTES                                                          \
    (sizeof(ember_ref) + sizeof(ember_exports) + sizeof(ember_xentry) +      \
     sizeof(ember_xmetrics) + sizeof(ember_xobj) + 4 * sizeof(void *))

/* True if a value of type t can hold a ref (structs are walked to `depth`
 * levels: enough for every type a recursive struct reaches). */
static bool type_has_ref(const ember_type *t, int depth)
{
    if (!t || depth > 64)
        return false;
    switch (t->kind) {
    case EMBER_T_REF:
        return true;
    case EMBER_T_LIST:
        return type_has_ref(t->elem, depth + 1);
    case EMBER_T_MAP:
        return type_has_ref(t->key, depth + 1) || type_has_ref(t->elem, depth + 1);
    case EMBER_T_STRUCT:
        for (uint32_t i = 0; i < t->n_fields; i++)
            if (type_has_ref(t->fields[i].type, depth + 1))
                return true;
        return false;
    default:
        return false;
    }
}

/* Refs inside the arguments, the result or a raised error would name
 * objects of the wrong connection on the other side: such methods are
 * re-encoded. */
static bool method_has_refs(const ember_method_desc *m)
{
    for (uint32_t i = 0; i < m->n_params; i++)
        if (type_has_ref(m->params[i].type, 0))
            return true;
    for (uint32_t i = 0; i < m->n_raises; i++)
        if (type_has_ref(m->raises[i].type, 0))
            return true;
    return type_has_ref(m->result, 0);
}

static const ember_method_desc *find_method(const ember_service_desc *svc,
                                           uint32_t id)
{
    for (uint32_t i = 0; i < svc->n_methods; i++)
        if (svc->methods[i].id == id)
            return &svc->methods[i];
    return NULL;
}

/* ---- re-encoding a value that holds refs, from one connection to another ---- */

static unsigned wire_type(const ember_type *t)
{
    switch (t->kind) {
    case EMBER_T_F64:
        return EMBER_WT_I64;
    case EMBER_T_F32:
        return EMBER_WT_I32;
    case EMBER_T_STRING:
    case EMBER_T_BYTES:
    case EMBER_T_LIST:
    case EMBER_T_MAP:
    case EMBER_T_STRUCT:
        return EMBER_WT_LEN;
    default:
        return EMBER_WT_VARINT;
    }
}

/* Copies a value of wire type wt as it is. */
static int copy_value(ember_dec *d, ember_enc *e, unsigned wt)
{
    const uint8_t *p = d->p;
    if (ember_dec_skip(d, wt))
        return -1;
    ember_bytes b = {p, (size_t)(d->p - p)};
    ember_enc_payload(e, &b);
    return 0;
}

static int xcode_fields(ember_dec *d, ember_enc *e, const ember_field_desc *fs,
                        uint32_t n);

/* Re-encodes one value (no key) of type t: refs decoded from d's connection
 * are encoded on e's; what holds no ref is copied. */
static int xcode_value(ember_dec *d, ember_enc *e, unsigned wt, const ember_type *t)
{
    if (!type_has_ref(t, 0) || wt != wire_type(t))
        return copy_value(d, e, wt);
    const uint8_t *end;
    size_t mark;
    uint64_t count;
    int r = 0;
    switch (t->kind) {
    case EMBER_T_REF: {
        ember_ref *ref;
        size_t outside = d->outside;
        if (ember_dec_raw_ref(d, &ref)) /* released with the call's arena */
            return -1;
        /* A ref new to us becomes a new proxy on e's connection, which
         * lives as long as the ref: decoded memory too (the decode budget,
         * and a forwarded call's max_deferred_bytes while it waits). */
        if (d->outside != outside) {
            if (ember_dec_charge(d, PROXY_BYTES))
                return -1;
            d->outside += PROXY_BYTES;
        }
        ember_enc_ref_value_as(e, ref, t->svc);
        return 0;
    }
    case EMBER_T_STRUCT:
        if (ember_dec_enter_raw(d, &end))
            return -1;
        mark = ember_enc_len_begin(e);
        r = xcode_fields(d, e, t->fields, t->n_fields);
        ember_enc_len_end(e, mark);
        break;
    default: /* a list or a map: a count, then the elements (pairs) */
        if (ember_dec_enter_raw(d, &end) || ember_dec_raw_varint(d, &count))
            return -1;
        mark = ember_enc_len_begin(e);
        ember_enc_raw_varint(e, count);
        for (uint64_t i = 0; i < count && r == 0; i++) {
            if (t->kind == EMBER_T_MAP)
                r = xcode_value(d, e, wire_type(t->key), t->key);
            if (r == 0)
                r = xcode_value(d, e, wire_type(t->elem), t->elem);
        }
        ember_enc_len_end(e, mark);
        if (r == 0 && d->p != d->end)
            r = ember_dec_fail(d, "list longer than its count");
        break;
    }
    ember_dec_leave(d, end);
    return r;
}

static int xcode_fields(ember_dec *d, ember_enc *e, const ember_field_desc *fs,
                        uint32_t n)
{
    uint32_t tag;
    unsigned wt;
    int k;
    while ((k = ember_dec_field(d, &tag, &wt)) == 1) {
        const ember_type *t = NULL;
        for (uint32_t i = 0; i < n && !t; i++)
            if (fs[i].tag == tag)
                t = fs[i].type;
        ember_enc_key(e, tag, wt);
        if (t ? xcode_value(d, e, wt, t) : copy_value(d, e, wt))
            return -1;
    }
    return k;
}

/* Decodes the refs of a value of type t and skips the rest: the refs of a
 * forwarded call that could not be passed on are counted (and released
 * with the call's arena) as if they had been, so the caller is told. */
static int skim_fields(ember_dec *d, const ember_field_desc *fs, uint32_t n);

static int skim_value(ember_dec *d, unsigned wt, const ember_type *t)
{
    if (!type_has_ref(t, 0) || wt != wire_type(t))
        return ember_dec_skip(d, wt);
    const uint8_t *end;
    uint64_t count;
    int r = 0;
    switch (t->kind) {
    case EMBER_T_REF: {
        ember_ref *ref;
        return ember_dec_raw_ref(d, &ref);
    }
    case EMBER_T_STRUCT:
        if (ember_dec_enter_raw(d, &end))
            return -1;
        r = skim_fields(d, t->fields, t->n_fields);
        break;
    default:
        if (ember_dec_enter_raw(d, &end) || ember_dec_raw_varint(d, &count))
            return -1;
        for (uint64_t i = 0; i < count && r == 0; i++) {
            if (t->kind == EMBER_T_MAP)
                r = skim_value(d, wire_type(t->key), t->key);
            if (r == 0)
                r = skim_value(d, wire_type(t->elem), t->elem);
        }
        break;
    }
    ember_dec_leave(d, end);
    return r;
}

static int skim_fields(ember_dec *d, const ember_field_desc *fs, uint32_t n)
{
    uint32_t tag;
    unsigned wt;
    int k;
    while ((k = ember_dec_field(d, &tag, &wt)) == 1) {
        const ember_type *t = NULL;
        for (uint32_t i = 0; i < n && !t; i++)
            if (fs[i].tag == tag)
                t = fs[i].type;
        if (t ? skim_value(d, wt, t) : ember_dec_skip(d, wt))
            return -1;
    }
    return k;
}

/* Protocol 3: the frame being handled on c lists refs of its sender that
 * no decode took: they sit where the method's types know no ref (a field
 * of a newer version, a hand-written table), and copied they would name
 * objects of the wrong connection on the other side, which the receiver
 * finds unlisted (and drops the connection) or takes for its own. Such
 * values are not passed on: false, with why (logged at WARN). */
static bool refs_copied(const ember_conn *c, const ember_service_desc *svc,
                        const ember_method_desc *m, char *why, size_t n)
{
    if (!c || !c->in_refs)
        return false;
    snprintf(why, n, "values holding refs where the types of %s.%s have "
             "none: not passed on", svc->name, m ? m->name : "?");
    ember_log(EMBER_LOG_WARN, "%s: %s from %s (%s)", c->ep->what, why,
              c->name ? c->name : "unregistered peer", c->peer);
    return true;
}

/* What is re-encoded: a struct of fields from a decoder (on the other
 * connection); the encoder writes on the frame's. */
typedef struct xcode {
    ember_dec *d;
    const ember_field_desc *fields;
    uint32_t n;
    const ember_service_desc *svc;
    const ember_method_desc *m;
} xcode;

static void enc_xcode(ember_enc *e, const void *value)
{
    const xcode *x = value;
    char why[200];
    int k = xcode_fields(x->d, e, x->fields, x->n);
    if (k == 0 && !e->failed &&
        refs_copied(x->d->conn, x->svc, x->m, why, sizeof why)) {
        ember_seterr("%s", why);
        e->failed = EMBER_ENC_BAD_ARGS;
    }
    if (k && !e->failed) {
        /* what the peer sent, not our encoder: FAILED, with why */
        const ember_conn *from = x->d->conn;
        const char *why = x->d->why ? x->d->why : "they do not decode";
        ember_log(EMBER_LOG_WARN, "%s: values from %s (%s) not passed on "
                  "through a proxy: %s", from->ep->what,
                  from->name ? from->name : "unregistered peer", from->peer, why);
        ember_seterr("bad values: %s", why);
        e->failed = EMBER_ENC_BAD_ARGS;
    }
}

/* An answer of the owner's (a REPLY or an ERROR it raised) that would go
 * on as it came, holding refs no decode took: fails the call instead. */
static bool answer_refs_copied(ember_call *call, const ember_outcome *o)
{
    char why[200];
    const ember_ref *px = call->target; /* the proxy, held by the call */
    if ((o->status != EMBER_OK && o->status != EMBER_RAISED) || !call->fwd_to ||
        !refs_copied(call->fwd_to->conn, px->svc, find_method(px->svc, call->method),
                     why, sizeof why))
        return false;
    ember_call_fail(call, "%s", why);
    return true;
}

static void relayed(const ember_outcome *o, const void *p, size_t n, void *ud)
{
    ember_call *call = ud;
    call->fwd_h = 0;
    if (!answer_refs_copied(call, o))
        ember_call_relay(call, o, p, n);
}

/* The answer of a forwarded call whose result or errors may hold refs. A
 * raised error the method does not declare cannot be re-encoded: its refs
 * would name the wrong objects, so the caller gets a failure instead. */
static void relayed_typed(const ember_outcome *o, ember_dec *reply, ember_fn cb,
                          void *ud)
{
    ember_call *call = ud;
    (void)cb;
    /* call->target is the proxy, held by the call. */
    const ember_method_desc *m = find_method(call->target->svc, call->method);
    call->fwd_h = 0;
    if (o->status == EMBER_OK && reply && m) {
        ember_field_desc ret = {1, "ret", m->result, false};
        xcode x = {reply, &ret, m->result ? 1 : 0, call->target->svc, m};
        if (ember_call_reply(call, enc_xcode, &x) == 0)
            return;
    }
    if (o->status == EMBER_RAISED && reply && m) {
        const ember_type *t = ember_raise_type(m, o->error_id);
        if (!t) {
            ember_call_fail(call, "the owner raised error %u, which %s does not "
                            "declare", (unsigned)o->error_id, m->name);
            return;
        }
        xcode x = {reply, t->fields, t->n_fields, call->target->svc, m};
        if (ember_call_raise(call, o->error_id, enc_xcode, &x) == 0)
            return;
    }
    const void *p = reply ? reply->p : NULL;
    if (!answer_refs_copied(call, o))
        ember_call_relay(call, o, p, reply ? (size_t)(reply->end - reply->p) : 0);
}

/* The raw handler of every call to a proxy: the service matched already
 * (it is all the proxy serves). */
static void forward(ember_call *call, uint32_t service, uint32_t method,
                    const void *p, size_t n, void *ud)
{
    ember_ref *px = ud;
    const ember_service_desc *svc = px->svc;
    const ember_method_desc *m = find_method(svc, method);
    char why[200];
    if (!m) {
        ember_call_fail_status(call, EMBER_NO_METHOD, "no method %u in %s",
                               method, svc->name);
    } else if (method_has_refs(m)) {
        /* Decoded from the caller's connection (in the call's arena),
         * encoded on the owner's as the frame is written. */
        ember_dec d;
        ember_dec_init_conn(&d, call->conn, p, n, &call->arena);
        xcode x = {&d, m->params, m->n_params, svc, m};
        if (ember_call_oneway(call)) {
            ember_oneway_start(px->fwd, svc, method, enc_xcode, &x);
        } else {
            call->fwd_to = ember_ref_retain(px->fwd);
            call->fwd_h = ember_call_start(px->fwd, svc, method, enc_xcode, &x,
                                           relayed_typed, NULL, call, NULL);
        }
        /* Refused before a byte was encoded (the owner gone, stopping, a
         * limit): the refs the caller sent are still ours to count, or its
         * exports would stay until its connection closes. */
        if (d.p == (const uint8_t *)p && n)
            (void)skim_fields(&d, m->params, m->n_params);
        if (ember_call_oneway(call))
            return;
        /* The refs new to us live while the call waits at the owner: held
         * like a typed call's (max_deferred_bytes). */
        call->raw_outside = d.outside;
    } else if (refs_copied(call->conn, svc, m, why, sizeof why)) {
        if (!ember_call_oneway(call))
            ember_call_fail(call, "%s", why);
    } else if (ember_call_oneway(call)) {
        ember_oneway_raw(px->fwd, service, method, p, n);
    } else {
        /* Answered exactly once by relayed(), whatever happens to either
         * side meanwhile (a call that cannot start ends from the loop); the
         * caller's CANCEL is passed on (ember_call_cancel_in). */
        call->fwd_to = ember_ref_retain(px->fwd);
        call->fwd_h = ember_call_raw(px->fwd, service, method, p, n, relayed,
                                     call, NULL);
    }
}

ember_ref *ember_proxy_on(ember_conn *c, ember_ref *to,
                          const ember_service_desc *svc)
{
    ember_ref *x = ember_proxy_find(c, to, svc->id);
    if (x)
        return ember_ref_retain(x);
    if (!svc->id)
        return NULL;
    ember_ref *px = ember_calloc(sizeof *px);
    if (!px)
        return NULL;
    if (!(px->lex = ember_exports_new()) ||
        ember_exports_add_raw(px->lex, svc->id, 0, forward, px)) {
        ember_exports_free(px->lex);
        ember_free(px, sizeof *px);
        return NULL;
    }
    px->kind = EMBER_REF_PROXY;
    px->rc = 1;
    px->svc = svc;
    px->fwd = ember_ref_retain(to);
    return px;
}

void ember_proxy_free(ember_ref *r)
{
    ember_exports_free(r->lex);
    ember_ref_release(r->fwd);
}
