/*
 * proxy.c — third-party references, in the manner of Cap'n Proto: when a
 * ref to a peer's object (or a peer's exports) is passed on to another
 * connection, the receiver gets an object of ours, a proxy, exported like a
 * local object. Its calls are forwarded untouched to where the ref points
 * and its answers relayed back, so no user code runs on the way. A proxy
 * serves the one service the ref was passed as (ref<Service>); it lives as
 * long as the receiver holds it (or a call through it is in flight) and
 * holds the forwarded ref meanwhile, so the owner learns the release (its
 * DECREF) once both the receiver and the local holders are done. When the
 * owner goes, the forwarded calls end EMBER_UNAVAILABLE.
 */
#include "rt-internal.h"

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

/* Refs inside the arguments or the result would name objects of the wrong
 * connection on the other side: such methods are not forwarded. */
static bool method_has_refs(const ember_method_desc *m)
{
    for (uint32_t i = 0; i < m->n_params; i++)
        if (type_has_ref(m->params[i].type, 0))
            return true;
    return type_has_ref(m->result, 0);
}

static void relayed(const ember_outcome *o, const void *p, size_t n, void *ud)
{
    ember_call *call = ud;
    call->fwd_h = 0;
    ember_call_relay(call, o, p, n);
}

/* The raw handler of every call to a proxy: the service matched already
 * (it is all the proxy serves). */
static void forward(ember_call *call, uint32_t service, uint32_t method,
                    const void *p, size_t n, void *ud)
{
    ember_ref *px = ud;
    const ember_service_desc *svc = px->svc;
    const ember_method_desc *m = NULL;
    for (uint32_t i = 0; i < svc->n_methods && !m; i++)
        if (svc->methods[i].id == method)
            m = &svc->methods[i];
    if (!m) {
        ember_call_fail_status(call, EMBER_NO_METHOD, "no method %u in %s",
                               method, svc->name);
    } else if (method_has_refs(m)) {
        ember_call_fail(call, "%s.%s passes refs, which a forwarded ref "
                        "cannot carry", svc->name, m->name);
    } else if (ember_call_oneway(call)) {
        ember_oneway_raw(px->fwd, service, method, p, n);
    } else {
        /* Answered exactly once by relayed(), whatever happens to either
         * side meanwhile (a call that cannot start ends from the loop); the
         * caller's CANCEL is passed on (ember_call_cancel_in). */
        call->fwd_to = px->fwd;
        call->fwd_h = ember_call_raw(px->fwd, service, method, p, n, relayed,
                                     call, NULL);
    }
}

ember_ref *ember_proxy_on(ember_conn *c, ember_ref *to,
                          const ember_service_desc *svc)
{
    for (uint32_t i = 0; i < c->nxobjs; i++) {
        ember_ref *x = c->xobjs[i].ref;
        if (x->kind == EMBER_REF_PROXY && x->fwd == to && x->svc->id == svc->id)
            return ember_ref_retain(x);
    }
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
