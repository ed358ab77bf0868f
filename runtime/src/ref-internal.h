/*
 * ref-internal.h — the refs room: what an endpoint serves (exports.c: the
 * sorted dispatch table), refs (ref.c: a peer's exports, a peer's object,
 * a local object) and proxies (proxy.c: refs passed on to a third party).
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
#ifndef EMBER_REF_INTERNAL_H
#define EMBER_REF_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "ember-internal.h"
#include "ep-internal.h"
#include "hash-internal.h"
#include "metrics-internal.h"

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
    ember_ref *sibling;            /* PROXY: the next one exported on its
                                      conn for the same fwd, another svc */
    /* REMOTE, protocol 3: the holds the table of refs of the frame being
     * handled took (released after it), the next ref it holds, and whether
     * the table made it (its entry is charged to the first decode). */
    uint32_t held;
    bool fresh;
    ember_ref *held_next;
};

/* What a ref received for the first time costs outside the decode's arena
 * (charged to its budget): the ref, and up to two buckets of the table
 * that finds it by object id (which doubles when full). */
#define EMBER_REF_ENTRY_BYTES (sizeof(struct ember_ref) + 2 * sizeof(void *))

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
/* The times r (LOCAL or PROXY) was sent on c and not released by the peer
 * yet (its DECREFs subtracted); 0: not exported there, or no c. */
uint64_t ember_ref_sent_on(ember_conn *c, const ember_ref *r);
/* The proxy exported on c that forwards service svc to `to`; NULL: none. */
ember_ref *ember_proxy_find(ember_conn *c, const ember_ref *to, uint32_t svc);
void ember_ref_decref_in(ember_conn *c, uint64_t oid, uint64_t count);
/* Exports r (LOCAL or PROXY) on c, or counts one more send: its object id,
 * 0 when out of memory. */
uint64_t ember_ref_export(ember_conn *c, ember_ref *r);
/* The frame being encoded on c is not sent: takes back the exports it made
 * (ember_frame_end keeps them when it is). */
void ember_ref_exports_undo(ember_conn *c);
/* A frame flagged EMBER_FR_REFS came in on c, its payload p[0..*len)
 * ending with the table: counts the objects the table lists as received,
 * holding each (*held: the list), and cuts the table off *len; c->in_refs
 * is how many refs it lists in all (each decode takes one). -1 with *why
 * for a malformed table (what it took is in *held). */
int ember_ref_table_in(ember_conn *c, const uint8_t *p, size_t *len,
                       ember_ref **held, const char **why);
/* Counts `count` receptions of the peer's object oid on c and holds it
 * for the frame being handled (*held: the list, as ember_ref_table_in
 * makes it; a ref held already is held once). A new entry is charged to
 * budget. -1 with *why: over the budget, or out of memory (nothing
 * counted). */
int ember_ref_hold_in(ember_conn *c, ember_dec *budget, uint64_t oid, uint64_t count,
                      ember_ref **held, const char **why);
/* Reads the ref at d->p as ember_dec_raw_ref would, without taking it
 * (charging its cleanup, and the entry of one new to us, as that does):
 * -1 (the decode failed, with its reason) if it names no object of d's
 * connection, or one its frame's table does not list. */
int ember_dec_check_ref(ember_dec *d);
/* The frame was handled: drops the table's holds, so the objects no
 * decode kept are released to their owner (DECREF). */
void ember_ref_table_done(ember_ref *held);

/* ---- proxy.c: refs passed on to a third party ---- */

/* The proxy on c forwarding service svc to `to` (a peer's object or exports
 * on another connection), made on first use, with one reference for the
 * caller (who exports it, then releases it); NULL when out of memory. */
ember_ref *ember_proxy_on(ember_conn *c, ember_ref *to,
                          const ember_service_desc *svc);
/* A proxy's last reference went: what it holds. */
void ember_proxy_free(ember_ref *r);
/* Checks the fields of a struct (to the end of d's region) as the
 * generated decoder of fields fs reads them, charging d's decode budget
 * with what it would allocate; nothing is allocated, no ref decoded. 0,
 * or -1 with d->why: what a proxy checks a forwarded call's arguments
 * with. */
int ember_proxy_check_fields(ember_dec *d, const ember_field_desc *fs, uint32_t n);
/* The same for the arguments of a call of m, as its generated dispatch
 * decodes them (the argument struct it allocates, then the fields). */
int ember_proxy_check_args(ember_dec *d, const ember_method_desc *m);

#endif
