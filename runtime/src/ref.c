/*
 * ref.c — references. Three kinds:
 *   PEER    a peer's exports (object 0 of a connection): a child's ref, a
 *           node's root ref. Owned by the child / node; re-pointed on
 *           reconnect, NULL connection while down.
 *   REMOTE  an object a peer passed us (object id N on that connection).
 *           Deduplicated per connection; when the last holder releases it we
 *           send DECREF with the number of times we received it.
 *   LOCAL   an object of ours (ember_ref_local). Encoding it on a connection
 *           exports it there under a fresh object id, retained until the
 *           peer's DECREFs account for every time we sent it.
 *   PROXY   a PEER or REMOTE ref passed on to another connection (a third
 *           party): exported there like a LOCAL object, it forwards the
 *           calls it gets (proxy.c).
 * Wire value of a ref (a varint): 0 = none; (oid << 1) | 0 = an object of
 * the sender; (oid << 1) | 1 = an object of the receiver (a ref going home).
 */
#include <string.h>

#include "conn-internal.h"
#include "ember-internal.h"
#include "ep-internal.h"
#include "hash-internal.h"
#include "ref-internal.h"
#include "wire-internal.h"

static void link_set(ember_ref *r, ember_ep *ep)
{
    r->link = ep->link;
    r->link->rc++;
}

/* Drops one hold on l (NULL: none). */
static void link_put(ember_eplink *l)
{
    if (l && --l->rc == 0)
        ember_free(l, sizeof *l);
}

void ember_eplink_drop(ember_ep *ep)
{
    ember_eplink *l = ep->link;
    ep->link = NULL;
    if (l)
        l->ep = NULL;
    link_put(l);
}

ember_ref *ember_ref_new_peer(ember_ep *ep)
{
    ember_ref *r = ember_calloc(sizeof *r);
    if (r) {
        r->kind = EMBER_REF_PEER;
        r->rc = 1;
        link_set(r, ep);
    }
    return r;
}

EMBER_API ember_ref *ember_ref_local(const ember_service_desc *svc,
                                     const void *handlers, void *ud)
{
    ember_ref *r = ember_calloc(sizeof *r);
    if (!r || !(r->lex = ember_exports_new()) ||
        ember_exports_add(r->lex, svc, handlers, ud)) {
        if (r)
            ember_exports_free(r->lex);
        ember_free(r, sizeof *r);
        return NULL;
    }
    r->kind = EMBER_REF_LOCAL;
    r->rc = 1;
    return r;
}

EMBER_API int ember_ref_revoke(ember_ref *r)
{
    if (!r || r->kind != EMBER_REF_LOCAL)
        return ember_seterr("ember_ref_revoke: not a local object");
    r->revoked = true;
    return 0;
}

EMBER_API ember_ref *ember_ref_retain(ember_ref *r)
{
    if (r)
        r->rc++;
    return r;
}

/* ---- the peer's objects we hold, hashed by object id ---- */

static ember_ref *rref_find(ember_conn *c, uint64_t oid)
{
    ember_hnode *x = ember_htab_get(&c->rrefs, oid);
    return x ? EMBER_CONTAINER(x, ember_ref, hn) : NULL;
}

EMBER_API void ember_ref_release(ember_ref *r)
{
    if (!r || --r->rc > 0)
        return;
    if (r->kind == EMBER_REF_REMOTE && r->conn) {
        ember_conn *c = r->conn;
        ember_htab_del(&c->rrefs, &r->hn);
        if (c->wire)
            c->wire->decref(c, r->oid, r->wire);
        else
            ember_frame_send_hdr(c, EMBER_FR_DECREF, r->oid, r->wire);
    }
    if (r->kind == EMBER_REF_LOCAL)
        ember_exports_free(r->lex);
    if (r->kind == EMBER_REF_PROXY)
        ember_proxy_free(r);
    link_put(r->link);
    ember_free(r, sizeof *r);
}

EMBER_API bool ember_ref_alive(const ember_ref *r)
{
    if (!r)
        return false;
    if (r->kind == EMBER_REF_LOCAL)
        return true;
    if (r->kind == EMBER_REF_PROXY)
        return ember_ref_alive(r->fwd);
    return r->conn && r->conn->state == EMBER_CONN_READY;
}

void ember_ref_conn_closed(ember_conn *c)
{
    for (ember_hnode *x = ember_htab_take_all(&c->rrefs); x; x = x->next)
        EMBER_CONTAINER(x, ember_ref, hn)->conn = NULL;
    /* Our objects exported here: nobody on this connection holds them now. */
    ember_htab_take_all(&c->xobj_refs);
    ember_htab_take_all(&c->proxies);
    c->xundo = NULL;
    for (ember_hnode *n = ember_htab_take_all(&c->xobj_oids), *next; n; n = next) {
        next = n->next;
        ember_xobj *x = EMBER_CONTAINER(n, ember_xobj, by_oid);
        ember_ref *r = x->ref;
        ember_free(x, sizeof *x);
        ember_ref_release(r);
    }
}

static ember_xobj *find_xobj(ember_conn *c, uint64_t oid)
{
    ember_hnode *n = ember_htab_get(&c->xobj_oids, oid);
    return n ? EMBER_CONTAINER(n, ember_xobj, by_oid) : NULL;
}

static uint64_t ref_key(const ember_ref *r)
{
    return (uint64_t)(uintptr_t)r;
}

uint64_t ember_ref_sent_on(ember_conn *c, const ember_ref *r)
{
    ember_hnode *n = c ? ember_htab_get(&c->xobj_refs, ref_key(r)) : NULL;
    return n ? EMBER_CONTAINER(n, ember_xobj, by_ref)->sent : 0;
}

ember_ref *ember_ref_find_xobj(ember_conn *c, uint64_t oid)
{
    ember_xobj *x = find_xobj(c, oid);
    return x ? x->ref : NULL;
}

/* The proxies exported on c are hashed by the ref they forward to; those of
 * the same ref passed on as other services are chained behind the one in
 * the table (sibling). */
static void proxy_hash(ember_conn *c, ember_ref *px)
{
    ember_hnode *n = ember_htab_get(&c->proxies, ref_key(px->fwd));
    if (n) {
        ember_ref *first = EMBER_CONTAINER(n, ember_ref, hn);
        px->sibling = first->sibling;
        first->sibling = px;
    } else {
        px->sibling = NULL;
        ember_htab_put(&c->proxies, &px->hn, ref_key(px->fwd));
    }
}

static void proxy_unhash(ember_conn *c, ember_ref *px)
{
    ember_hnode *n = ember_htab_get(&c->proxies, ref_key(px->fwd));
    ember_ref *first = n ? EMBER_CONTAINER(n, ember_ref, hn) : NULL;
    if (first == px) {
        ember_htab_del(&c->proxies, &px->hn);
        if (px->sibling)
            ember_htab_put(&c->proxies, &px->sibling->hn, ref_key(px->fwd));
    } else {
        for (ember_ref *p = first; p; p = p->sibling)
            if (p->sibling == px) {
                p->sibling = px->sibling;
                break;
            }
    }
    px->sibling = NULL;
}

/* x is no longer exported on c: it goes, and its hold on the ref. */
static void xobj_drop(ember_conn *c, ember_xobj *x)
{
    ember_ref *r = x->ref;
    if (x->undo) /* not settled by its frame yet: out of the frame's list */
        for (ember_xobj **p = &c->xundo; *p; p = &(*p)->undo_next)
            if (*p == x) {
                *p = x->undo_next;
                break;
            }
    ember_htab_del(&c->xobj_oids, &x->by_oid);
    ember_htab_del(&c->xobj_refs, &x->by_ref);
    if (r->kind == EMBER_REF_PROXY)
        proxy_unhash(c, r);
    ember_free(x, sizeof *x);
    ember_ref_release(r);
}

void ember_ref_decref_in(ember_conn *c, uint64_t oid, uint64_t count)
{
    ember_xobj *x = find_xobj(c, oid);
    if (!x)
        return;
    x->sent = count >= x->sent ? 0 : x->sent - count;
    if (x->sent == 0) {
        ember_log(EMBER_LOG_DEBUG, "%s: object %llu released by %s",
                  c->ep->what, (unsigned long long)oid, c->peer);
        xobj_drop(c, x);
    }
}

/* One more send of x by the frame being encoded, undone if it is not sent. */
static void undo_note(ember_conn *c, ember_xobj *x)
{
    if (x->undo++ == 0) {
        x->undo_next = c->xundo;
        c->xundo = x;
    }
}

void ember_ref_exports_undo(ember_conn *c)
{
    ember_xobj *x;
    while ((x = c->xundo)) {
        c->xundo = x->undo_next;
        x->sent -= x->undo; /* sent counts every one of those */
        x->undo = 0;
        if (x->sent == 0)
            xobj_drop(c, x);
    }
}

ember_ref *ember_proxy_find(ember_conn *c, const ember_ref *to, uint32_t svc)
{
    ember_hnode *n = ember_htab_get(&c->proxies, ref_key(to));
    for (ember_ref *p = n ? EMBER_CONTAINER(n, ember_ref, hn) : NULL; p;
         p = p->sibling)
        if (p->svc->id == svc)
            return p;
    return NULL;
}

uint64_t ember_ref_export(ember_conn *c, ember_ref *r)
{
    ember_hnode *n = ember_htab_get(&c->xobj_refs, ref_key(r));
    if (n) {
        ember_xobj *x = EMBER_CONTAINER(n, ember_xobj, by_ref);
        x->sent++;
        undo_note(c, x);
        return x->by_oid.key;
    }
    ember_xobj *x = ember_malloc(sizeof *x);
    if (!x)
        return 0;
    if (ember_htab_put(&c->xobj_oids, &x->by_oid, c->next_oid) != 0) {
        ember_free(x, sizeof *x);
        return 0;
    }
    if (ember_htab_put(&c->xobj_refs, &x->by_ref, ref_key(r)) != 0) {
        ember_htab_del(&c->xobj_oids, &x->by_oid);
        ember_free(x, sizeof *x);
        return 0;
    }
    if (r->kind == EMBER_REF_PROXY) /* found again by ember_proxy_on */
        proxy_hash(c, r);
    c->next_oid++;
    x->ref = ember_ref_retain(r);
    x->sent = 1;
    x->undo = 0;
    undo_note(c, x);
    if (!ember_ref_ep(r)) { /* new, or its endpoint is gone: this one now */
        link_put(r->link);
        link_set(r, c->ep);
    }
    return x->by_oid.key;
}

EMBER_API void ember_enc_ref_value_as(ember_enc *e, ember_ref *r,
                                      const ember_service_desc *svc)
{
    ember_conn *c = e->conn;
    uint64_t v = 0;
    if (r && r->kind == EMBER_REF_PROXY)
        r = r->fwd; /* pass on what it stands for */
    if (r) {
        if (!c) { /* a ref only means something on a connection */
            e->failed = EMBER_ENC_NEEDS_CONN;
            return;
        }
        ember_ref *x = r;
        if (r->kind == EMBER_REF_REMOTE && r->conn == c) {
            ember_enc_raw_varint(e, r->oid << 1 | 1); /* going home */
            return;
        }
        if (r->kind != EMBER_REF_LOCAL && (r->conn == c || !svc)) {
            ember_seterr(r->conn == c
                             ? "a peer's exports cannot be passed back to it as a ref"
                             : "a ref passed on to another connection needs its "
                               "service (ember_enc_ref_as)");
            ember_log(EMBER_LOG_WARN, "%s", ember_last_error());
            e->failed = EMBER_ENC_BAD_REF;
            return;
        }
        /* A peer's object passed on to a third party: the third party calls
         * a proxy of ours, which forwards. */
        if (r->kind != EMBER_REF_LOCAL)
            x = ember_proxy_on(c, r, svc);
        uint64_t oid = x ? ember_ref_export(c, x) : 0;
        if (x != r)
            ember_ref_release(x); /* the export holds it now */
        if (!oid) {
            e->failed = 1;
            return;
        }
        v = oid << 1;
    }
    ember_enc_raw_varint(e, v);
}

EMBER_API void ember_enc_ref_value(ember_enc *e, ember_ref *r)
{
    ember_enc_ref_value_as(e, r, NULL);
}

EMBER_API void ember_enc_ref_as(ember_enc *e, uint32_t tag, ember_ref *ref,
                                const ember_service_desc *svc)
{
    ember_enc_key(e, tag, EMBER_WT_VARINT);
    ember_enc_ref_value_as(e, ref, svc);
}

EMBER_API void ember_enc_ref(ember_enc *e, uint32_t tag, ember_ref *ref)
{
    ember_enc_ref_as(e, tag, ref, NULL);
}

/* A peer's object passed to us: the entry found again by its object id
 * (the same object passed again), or made (*made), with one reference for
 * the caller. NULL when out of memory. The caller charges a decode budget
 * for a new one first. */
static ember_ref *rref_get(ember_conn *c, uint64_t oid, bool *made)
{
    ember_ref *r = rref_find(c, oid);
    *made = !r;
    if (r)
        return ember_ref_retain(r);
    if (!(r = ember_calloc(sizeof *r)))
        return NULL;
    r->kind = EMBER_REF_REMOTE;
    r->rc = 1;
    link_set(r, c->ep);
    r->oid = oid;
    if (ember_htab_put(&c->rrefs, &r->hn, r->oid)) {
        ember_ref_release(r); /* not connected yet: no DECREF */
        return NULL;
    }
    r->conn = c;
    return r;
}

int ember_ref_table_in(ember_conn *c, const uint8_t *p, size_t *len,
                       ember_ref **held, const char **why)
{
    *held = NULL;
    uint32_t tlen;
    ember_dec d;
    /* Its budget is the decode budget of the whole frame. */
    if (*len < 4) {
        *why = "its table of refs is cut short";
        return -1;
    }
    ember_dec_init_conn(&d, c, p, *len, NULL);
    d.p = p + *len - 4;
    if (ember_dec_raw_fixed32(&d, &tlen) || tlen > *len - 4) {
        *why = "its table of refs is cut short";
        return -1;
    }
    size_t payload = *len - 4 - tlen;
    uint64_t total = 0;
    d.p = p + payload;
    d.end = p + *len - 4;
    while (d.p < d.end) {
        uint64_t oid, count;
        if (ember_dec_raw_varint(&d, &oid) || ember_dec_raw_varint(&d, &count)) {
            *why = "its table of refs is cut short";
            return -1;
        }
        /* Every ref takes at least a byte of the payload: a count beyond
         * that is a lie (and could overflow what we owe the peer). */
        if (oid == 0 || count == 0 || count > payload - total) {
            *why = oid == 0 ? "its table of refs names object 0"
                   : count == 0 ? "its table of refs counts an object 0 times"
                                : "its table of refs counts more refs than "
                                  "the frame holds";
            return -1;
        }
        total += count;
        if (ember_ref_hold_in(c, &d, oid, count, held, why))
            return -1;
    }
    *len = payload;
    c->in_refs = total;
    return 0;
}

int ember_ref_hold_in(ember_conn *c, ember_dec *budget, uint64_t oid, uint64_t count,
                      ember_ref **held, const char **why)
{
    bool made;
    ember_ref *r;
    if (!rref_find(c, oid) && ember_dec_charge(budget, EMBER_REF_ENTRY_BYTES)) {
        *why = budget->why;
        return -1;
    }
    if (!(r = rref_get(c, oid, &made))) {
        *why = "out of memory";
        return -1;
    }
    r->fresh |= made;
    r->wire += count;
    if (r->held++ == 0) {
        r->held_next = *held;
        *held = r;
    } else {
        ember_ref_release(r); /* one hold per ref: held counts them */
    }
    return 0;
}

void ember_ref_table_done(ember_ref *held)
{
    while (held) {
        ember_ref *r = held;
        held = r->held_next;
        r->held = 0;
        r->fresh = false;
        ember_ref_release(r);
    }
}

static void release_cb(void *p)
{
    ember_ref_release(p);
}

/*
 * Why the ref word w (an object id and who owns it) names nothing on c, or
 * NULL: *found is then the ref it names, or NULL for a peer's object new
 * on a connection without tables of refs (decoding makes it).
 */
static const char *ref_unknown(ember_conn *c, uint64_t w, ember_ref **found)
{
    uint64_t oid = w >> 1;
    *found = NULL;
    /* Its refs died with it (ember_ref_conn_closed): a new one would be
     * left pointing at the connection once it is freed. */
    if (c->state == EMBER_CONN_CLOSED)
        return "a ref of a connection that is closed";
    if (w & 1) { /* one of ours coming home */
        if (oid == 0)
            return "a ref to the receiver's own exports";
        if (!(*found = ember_ref_find_xobj(c, oid)))
            return "ref to an object we never exported";
        return NULL;
    }
    if (oid == 0)
        return "ref with object id 0";
    /* The frame's table counted it already (ember_ref_table_in); one we
     * hold from an earlier frame only if this one lists it too, or it
     * would go uncounted. */
    if (c->ref_tables && (!(*found = rref_find(c, oid)) || !(*found)->held))
        return "a ref its frame's table of refs does not list";
    return NULL;
}

int ember_dec_check_ref(ember_dec *d)
{
    uint64_t w;
    ember_ref *r;
    const char *why;
    if (ember_dec_raw_varint(d, &w))
        return -1;
    if (w == 0)
        return 0;
    if (!d->conn)
        return ember_dec_fail(d, "refs decode only on a connection");
    if ((why = ref_unknown(d->conn, w, &r)))
        return ember_dec_fail(d, why);
    if (ember_dec_charge(d, EMBER_ARENA_CLEANUP_BYTES))
        return -1;
    /* A peer's object new to us: its entry, as ember_dec_raw_ref charges
     * it (and, passed on, the receiver's decode charges it again). */
    ember_conn *c = d->conn;
    bool made = !(w & 1) && (c->ref_tables ? r->fresh : !rref_find(c, w >> 1));
    return made ? ember_dec_charge(d, EMBER_REF_ENTRY_BYTES) : 0;
}

EMBER_API int ember_dec_raw_ref(ember_dec *d, ember_ref **v)
{
    if (!d || !v)
        return ember_seterr("ember_dec_raw_ref: NULL argument");
    ember_conn *c = d->conn;
    uint64_t w;
    const char *why;
    *v = NULL;
    if (ember_dec_raw_varint(d, &w))
        return -1;
    if (w == 0)
        return 0;
    if (!c || !d->arena)
        return ember_dec_fail(d, "refs decode only on a connection");
    ember_ref *r;
    if ((why = ref_unknown(c, w, &r)))
        return ember_dec_fail(d, why);
    /* The cleanup that releases the ref on reset is decoded memory too. */
    if (ember_dec_charge(d, EMBER_ARENA_CLEANUP_BYTES))
        return -1;
    if (w & 1) {
        if (r->kind == EMBER_REF_PROXY)
            r = r->fwd; /* a forwarded object: the ref we passed on */
        ember_ref_retain(r);
    } else {
        uint64_t oid = w >> 1;
        bool made;
        if (c->ref_tables) {
            if ((made = r->fresh) && ember_dec_charge(d, EMBER_REF_ENTRY_BYTES))
                return -1;
            ember_ref_retain(r);
            r->fresh = false;
            if (c->in_refs)
                c->in_refs--;
        } else {
            if (!rref_find(c, oid) && ember_dec_charge(d, EMBER_REF_ENTRY_BYTES))
                return -1;
            if (!(r = rref_get(c, oid, &made)))
                return ember_dec_fail(d, "out of memory");
            r->wire++;
        }
        /* A new entry is memory outside the arena, held while the ref
         * lives (a deferred call's refs count in its max_deferred_bytes):
         * the first decode that keeps it pays for it (its table's import
         * was charged to a budget of its own, for the frame's time). */
        if (made)
            d->outside += EMBER_REF_ENTRY_BYTES;
    }
    /* The decoded value lives as long as the arena: release it on reset. */
    if (ember_arena_defer(d->arena, release_cb, r)) {
        ember_ref_release(r);
        return ember_dec_fail(d, "out of memory");
    }
    *v = r;
    return 0;
}
