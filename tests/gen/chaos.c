/*
 * chaos.c — a randomized lifecycle test. A root and three nodes on one
 * event_base (loopback, port 0) run a random sequence of operations drawn
 * from a seeded PRNG: calls both ways and through refs with random
 * timeouts, cancels, handlers that reply at once, later, raise, fail, call
 * back or never answer, oneways, broadcasts, refs handed out as results and
 * taken as arguments (and so passed on through the root to a third party),
 * releases and revokes, graceful closes, abrupt frees, drops and
 * reconnects, then a root shutdown. Every call started is in a table; the
 * test checks that each outcome comes exactly once, never inside the call
 * that started it, never after its endpoint was freed, with a status that
 * fits what happened (an OK carries the right value, a TIMEOUT comes no
 * earlier than its deadline, LOST, UNAVAILABLE and SHUTDOWN only after
 * something went away), that no handler of a revoked object runs, that
 * nothing is pending at the end and the export tables are empty once
 * everything was let go, and that the runtime's memory goes back to zero.
 * Each node (each incarnation) speaks protocol version 2 or 3 at random
 * (ember_proto_max_, drawn apart from the operations so a seed's operations
 * are the same either way): on a version 2 connection the refs never
 * decoded (a refused call's, a late answer's) stay exported until it
 * closes (protocol.md, "The table of refs"), so with version 2 nodes the
 * export check first finds the nodes holding nothing and nothing exported
 * to a version 3 node, drops the version 2 nodes' connections, and then
 * finds every table empty; with version 3 alone it finds them empty at
 * once, as before. Half the seeds run version 3 alone; in the others
 * CHAOS_V2=PCT sets how often a node speaks version 2 (default 50, 0:
 * never).
 *
 * The seeds run by `make test` are CHAOS_SEEDS below; CHAOS_SEEDS=a-b in
 * the environment runs others (CHAOS_STEPS changes the length of a run).
 * Which interleavings a seed meets depends on timing too (loopback I/O,
 * timeouts), so a violation is reported with its seed, step and the
 * operations that led to it.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <CUnit/Basic.h>
#include <event2/event.h>

#include "../common/alloc.h"
#include "../common/loop.h"
#include "../common/suites.h"

#include "chaos.h"
#include "ref-internal.h" /* a connection's export tables */
#include "conn-internal.h"
#include "probe-internal.h" /* ember_proto_max_ */

/* The seeds make test runs: 83 once met a forwarded call whose refs were
 * never released (the owner gone), 187 a forwarded call left in flight
 * after its caller went (tests/gen/thirdparty.c has both as direct
 * tests); the others are plain runs. */
static const uint64_t CHAOS_SEEDS[] = {1, 2, 3, 4, 5, 6, 83, 187};

#define NN 3 /* nodes; endpoint 0 is the root, 1..NN the nodes */
#define NE (NN + 1)
#define MAXREC 8192
#define MAXHELD 48
#define MAXOBJ 512
#define MAXPEND 512
#define MAXINC 1024 /* node objects per slot in one run */

enum { OP_REPLY, OP_DEFER, OP_RAISE, OP_FAIL, OP_HANG, OP_CALLBACK, NOPS };
enum { K_ACT, K_GIVE, K_TAKE, K_BCAST };

/* What the runs met, over all seeds: outcomes by status, export checks. */
static long long seen_status[16];
static int exports_checked, seeds_run, v2_dropped, v2_nodes;

/* ---- the PRNG (splitmix64) ---- */

static uint64_t rng;
static uint64_t rnd(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static unsigned below(unsigned n)
{
    return n ? (unsigned)(rnd() % n) : 0;
}
static bool chance(unsigned pct)
{
    return below(100) < pct;
}

/* The nodes' versions come from a PRNG of their own: the operations a
 * seed draws are the same whichever versions its nodes speak. Half the
 * seeds run version 3 alone (mixed: false), the others draw a version for
 * every node they make. */
static uint64_t vrng;
static bool mixed;
static unsigned vrnd100(void)
{
    uint64_t z = (vrng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (unsigned)((z ^ (z >> 31)) % 100);
}
static uint32_t pick_version(void)
{
    static int pct = -1;
    if (pct < 0) {
        const char *e = getenv("CHAOS_V2");
        pct = e ? atoi(e) : 50;
    }
    return mixed && (int)vrnd100() < pct ? 2 : EMBER_PROTOCOL_VERSION;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- state ---- */

/* What a ref depends on: the connection epochs of the nodes on its way. */
typedef struct deps {
    unsigned mask;
    unsigned epoch[NE];
} deps;

typedef struct held {
    ember_ref *ref;
    int origin; /* >= 0: objs[origin]; -1 - e: endpoint e's exports */
    deps d;
} held;

typedef struct obj {
    ember_ref *ref;  /* the owner's reference; NULL once released */
    ember_ref *orig; /* the same, kept for reports */
    int owner;
    bool revoked;
} obj;

typedef struct rec {
    int kind, from, inc;
    uint64_t tag;
    uint32_t op;
    ember_ref *to;   /* retained (a received ref), or NULL */
    int child;       /* root -> node slot, with the child's join count */
    unsigned joins;
    ember_handle h;
    int n, want;     /* outcomes seen, expected (broadcasts: children) */
    ember_child *seen[NN];
    ember_status st;
    uint64_t gen0;
    bool loose;      /* something was down or going when it started */
    int origin;      /* the target's origin (-100: the peer's exports) */
    bool may_fail;   /* passes or gets a ref that cannot be passed */
    bool self;       /* calls its own object through a ref that came home */
    bool never, chain;
    long long t0;
    uint32_t timeout;
    deps d;          /* what the target depends on */
    int passed;      /* K_TAKE: the origin of the ref passed */
    deps pd;
    char msg[80];
} rec;

typedef struct srv {
    int ep;          /* who serves */
    int obj;         /* -1: the endpoint's exports */
} srv;

typedef struct ep {
    ember_root *root;
    ember_node *node;
    int inc;          /* incarnation: a new node object for this slot */
    uint32_t ver;     /* the protocol version it speaks at most */
    bool closing, closed, freeing;
    held h[MAXHELD];
    int nh;
    srv exports_srv;
} ep;

typedef struct pend {
    ember_call *call;
    uint64_t tag;
} pend;

static struct {
    struct event_base *base;
    uint64_t seed;
    int step;
    ep e[NE];
    unsigned epoch[NE];       /* node slot: bumped on every connect/loss */
    unsigned joins[NE];       /* root side: joins of each node slot */
    bool joined[NE];
    bool freed_inc[NE][MAXINC]; /* (slot, incarnation) freed */
    uint64_t gen;             /* disruptions so far */
    rec r[MAXREC];
    int nr;
    obj o[MAXOBJ];
    srv osrv[MAXOBJ];
    int no;
    pend deferred[MAXPEND], hung[MAXPEND];
    int ndeferred, nhung;
    rec *starting, *cancelling;
    int violations;
    int root_shut;
    char trail[16][96];
    int ntrail;
    long long pokes;
} S;

static void note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(S.trail[S.ntrail % 16], sizeof S.trail[0], fmt, ap);
    va_end(ap);
    S.ntrail++;
}

static void dump_nodes(void);
static void dump_xobjs(ember_conn *c, const char *side);
static void violation(const char *fmt, ...)
{
    if (S.violations++ < 8) {
        char msg[300];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        fprintf(stderr, "chaos: seed %" PRIu64 " step %d: %s\n", S.seed, S.step, msg);
        if (S.violations == 1) {
            int first = S.ntrail > 16 ? S.ntrail - 16 : 0;
            for (int i = first; i < S.ntrail; i++)
                fprintf(stderr, "chaos:   op %d: %s\n", i, S.trail[i % 16]);
            dump_nodes();
        }
    }
}

static bool all_up(void)
{
    for (int i = 1; i < NE; i++)
        if (!S.e[i].node || S.e[i].closing ||
            ember_node_state_get(S.e[i].node) != EMBER_NODE_REGISTERED || !S.joined[i])
            return false;
    return S.root_shut == 0;
}

static void dump_nodes(void)
{
    for (int i = 1; i < NE; i++) {
        char name[16];
        snprintf(name, sizeof name, "n%d", i);
        ember_conn *nc = S.e[i].node ? ember_node_root(S.e[i].node)->conn : NULL;
        ember_child *ch = S.e[0].root ? ember_root_child_by_name(S.e[0].root, name) : NULL;
        ember_conn *rc = ch ? ember_child_ref(ch)->conn : NULL;
        fprintf(stderr, "chaos:   node %d (version %u): exports %u refs %u; the root's side: "
                "exports %u refs %u\n", i, S.e[i].ver, nc ? nc->xobj_oids.n : 0, nc ? nc->rrefs.n : 0, rc ? rc->xobj_oids.n : 0,
                rc ? rc->rrefs.n : 0);
        for (uint32_t bk = 0; rc && bk < rc->rrefs.nb; bk++)
            for (ember_hnode *x = rc->rrefs.b[bk]; x; x = x->next) {
                ember_ref *rr = EMBER_CONTAINER(x, ember_ref, hn);
                fprintf(stderr, "chaos:   root holds oid %llu of node %d: rc %u wire %llu\n",
                        (unsigned long long)rr->oid, i, rr->rc, (unsigned long long)rr->wire);
                for (int k = 1; k < NE; k++) {
                    char nm[16];
                    snprintf(nm, sizeof nm, "n%d", k);
                    ember_child *kc = ember_root_child_by_name(S.e[0].root, nm);
                    ember_conn *kcc = kc ? ember_child_ref(kc)->conn : NULL;
                    ember_ref *px = kcc ? ember_proxy_find(kcc, rr, chaos_Obj_SERVICE_ID) : NULL;
                    if (px)
                        fprintf(stderr, "chaos:     proxy on node %d's conn: rc %u\n", k, px->rc);
                }
            }
        dump_xobjs(nc, "node");
        dump_xobjs(rc, "root");
        fprintf(stderr, "chaos:   node %d: %s%s%s, %s at the root\n", i,
                S.e[i].node ? ember_node_state_name(ember_node_state_get(S.e[i].node)) : "freed",
                S.e[i].closing ? " closing" : "", S.e[i].closed ? " closed" : "",
                S.e[0].root && ember_root_child_by_name(S.e[0].root, name) ? "a child" : "no child");
    }
}

static void dump_xobjs(ember_conn *c, const char *side)
{
    for (uint32_t b = 0; c && b < c->xobj_oids.nb; b++)
        for (ember_hnode *x = c->xobj_oids.b[b]; x; x = x->next) {
            ember_xobj *xo = EMBER_CONTAINER(x, ember_xobj, by_oid);
            int idx = -1;
            for (int i = 0; i < S.no; i++)
                if (S.o[i].orig == xo->ref)
                    idx = i;
            fprintf(stderr, "chaos:   %s: oid %llu sent %llu kind %d obj %d\n", side,
                    (unsigned long long)x->key, (unsigned long long)xo->sent, xo->ref->kind, idx);
            for (int i = 0; idx >= 0 && i < S.nr; i++)
                if (S.r[i].passed == idx)
                    fprintf(stderr, "chaos:     rec %d kind %d from %d to %d/%d: %s %s\n", i,
                            S.r[i].kind, S.r[i].from, S.r[i].child, S.r[i].origin,
                            ember_status_name(S.r[i].st), S.r[i].msg);
        }
}

static deps deps_now(unsigned mask)
{
    deps d = {mask, {0}};
    for (int i = 0; i < NE; i++)
        d.epoch[i] = S.epoch[i];
    return d;
}

static deps deps_or(deps a, deps b)
{
    deps d = deps_now(a.mask | b.mask);
    for (int i = 0; i < NE; i++)
        d.epoch[i] = (a.mask >> i & 1) ? a.epoch[i] : b.epoch[i];
    return d;
}

static bool deps_ok(const deps *d)
{
    for (int i = 1; i < NE; i++)
        if ((d->mask >> i & 1) && d->epoch[i] != S.epoch[i])
            return false;
    return true;
}

static bool origin_revoked(int origin)
{
    return origin >= 0 && S.o[origin].revoked;
}

/* ---- checking one outcome ---- */

static void check_outcome(rec *r, const ember_outcome *o, uint64_t value,
                          bool have_value)
{
    r->n++;
    r->st = o->status;
    if ((unsigned)o->status < 16)
        seen_status[o->status]++;
    snprintf(r->msg, sizeof r->msg, "%s", o->message ? o->message : "");
    if (r->n > r->want)
        violation("call %d (kind %d op %u) ended %d times, last %s", (int)(r - S.r),
                  r->kind, r->op, r->n, ember_status_name(o->status));
    if (r->never)
        violation("call %d was refused but its callback ran", (int)(r - S.r));
    if (S.starting == r)
        violation("call %d ended inside the call that started it (%s)", (int)(r - S.r),
                  ember_status_name(o->status));
    if (S.freed_inc[r->from][r->inc] && !S.e[r->from].freeing)
        violation("call %d ended after its endpoint was freed", (int)(r - S.r));
    bool disrupted = r->loose || S.gen != r->gen0 || !deps_ok(&r->d) ||
                     origin_revoked(r->origin);
    bool bad = false;
    switch (o->status) {
    case EMBER_OK:
        if (r->kind == K_ACT || r->kind == K_BCAST) {
            bad = !(r->op == OP_REPLY || r->op == OP_DEFER || r->op == OP_CALLBACK) ||
                  !have_value || value != 2 * r->tag + 1;
        }
        break;
    case EMBER_RAISED:
        bad = !(r->kind == K_ACT || r->kind == K_BCAST) ||
              !(r->op == OP_RAISE || r->op == OP_DEFER) || o->error_id != chaos_Nope_ID ||
              !o->error || ((const chaos_Nope *)o->error)->tag != r->tag;
        break;
    case EMBER_FAILED:
        bad = !(r->may_fail || ((r->kind == K_ACT || r->kind == K_BCAST) &&
                                (r->op == OP_FAIL || r->op == OP_DEFER)));
        break;
    case EMBER_CANCELLED:
        bad = S.cancelling != r;
        break;
    case EMBER_TIMEOUT:
        bad = r->timeout == 0 || now_ms() - r->t0 < (long long)r->timeout - 1;
        break;
    case EMBER_UNAVAILABLE:
        bad = !disrupted && !r->self;
        break;
    case EMBER_LOST:
    case EMBER_SHUTDOWN:
        bad = !disrupted;
        break;
    default:
        bad = true;
    }
    if (getenv("CHAOS_VERBOSE") && r->kind == K_GIVE &&
        (o->status == EMBER_TIMEOUT || o->status == EMBER_CANCELLED))
        fprintf(stderr, "chaos:   give %d from %d (child %d, origin %d) ended %s\n",
                (int)(r - S.r), r->from, r->child, r->origin, ember_status_name(o->status));
    if (r->self && o->status != EMBER_UNAVAILABLE)
        bad = true;
    if (bad)
        violation("call %d (kind %d op %u from %d, timeout %u, after %lld ms) ended %s: %s",
                  (int)(r - S.r), r->kind, r->op, r->from, r->timeout, now_ms() - r->t0,
                  ember_status_name(o->status), o->message ? o->message : "");
    if (r->to && r->n == r->want) {
        ember_ref_release(r->to);
        r->to = NULL;
    }
}

/* ---- starting calls ---- */

static rec *new_rec(int kind, int from)
{
    if (S.nr >= MAXREC)
        return NULL;
    rec *r = &S.r[S.nr];
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->from = from;
    r->inc = S.e[from].inc;
    r->tag = (uint64_t)S.nr;
    r->want = 1;
    r->gen0 = S.gen;
    r->loose = !all_up();
    r->t0 = now_ms();
    r->origin = -100;
    r->child = -1;
    S.nr++;
    return r;
}

static void act_done(const ember_outcome *o, const uint64_t *ret, void *ud);
static void start_act(int from, int target, uint32_t op, uint32_t timeout, bool chain);

static void after_start(rec *r)
{
    S.starting = NULL;
    if (r->h != 0 && S.e[r->from].freeing)
        violation("call %d started while its endpoint is being freed", (int)(r - S.r));
    if (r->h == 0 && S.e[r->from].freeing) {
        r->never = true; /* refused while its endpoint is being freed */
        if (r->to) {
            ember_ref_release(r->to);
            r->to = NULL;
        }
    }
}

/* A target for calls from `from`: -1 its peer (the root's child `child`, or
 * a node's root), else one of its held refs. Returns the ref to call. */
static ember_ref *pick_target(rec *r, int from, int target)
{
    ep *e = &S.e[from];
    if (target >= 0 && target < e->nh) {
        held *h = &e->h[target];
        r->to = ember_ref_retain(h->ref);
        r->origin = h->origin;
        r->d = deps_or(h->d, deps_now(from ? 1u << from : 0));
        r->self = h->ref->kind == EMBER_REF_LOCAL;
        return h->ref;
    }
    if (from == 0) {
        int slot = 1 + (int)below(NN);
        char name[16];
        snprintf(name, sizeof name, "n%d", slot);
        ember_child *c = S.e[0].root ? ember_root_child_by_name(S.e[0].root, name) : NULL;
        r->child = slot;
        r->joins = S.joins[slot];
        r->origin = -1 - slot;
        r->d = deps_now(1u << slot);
        if (!c)
            r->loose = true;
        return c ? ember_child_ref(c) : NULL;
    }
    r->origin = -1;
    r->d = deps_now(1u << from);
    return e->node ? ember_node_root(e->node) : NULL;
}

static void start_act_on(int from, ember_ref *to, rec *r, uint32_t op,
                         uint32_t timeout, bool chain)
{
    (void)from;
    r->op = op;
    r->timeout = timeout;
    r->chain = chain;
    ember_callopts opts = {timeout};
    S.starting = r;
    if (!to) {
        /* No peer to call: nothing to start (a NULL ref ends inside). */
        S.starting = NULL;
        r->n = 1;
        r->st = EMBER_UNAVAILABLE;
        return;
    }
    r->h = chaos_Obj_act(to, r->tag, op, act_done, r, timeout ? &opts : NULL);
    after_start(r);
}

static void start_act(int from, int target, uint32_t op, uint32_t timeout, bool chain)
{
    rec *r = new_rec(K_ACT, from);
    if (!r)
        return;
    ember_ref *to = pick_target(r, from, target);
    start_act_on(from, to, r, op, timeout, chain);
}

static void act_done(const ember_outcome *o, const uint64_t *ret, void *ud)
{
    rec *r = ud;
    check_outcome(r, o, ret ? *ret : 0, ret != NULL);
    if (r->chain && r->n == 1) {
        /* A call started from inside a completion callback. */
        ep *e = &S.e[r->from];
        if (r->inc != e->inc || (r->from == 0 && e->freeing) || S.nr >= MAXREC)
            return;
        if (r->from != 0 && !e->node)
            return;
        start_act(r->from, -1, OP_REPLY, 0, false);
    }
}

static uint32_t rand_timeout(void)
{
    switch (below(4)) {
    case 0:
        return 0;
    case 1:
        return 1 + below(10);
    default:
        return 10 + below(200);
    }
}

static uint32_t rand_op(void)
{
    static const uint32_t w[NOPS] = {40, 15, 10, 10, 10, 15};
    unsigned x = below(100), acc = 0;
    for (uint32_t i = 0; i < NOPS; i++)
        if (x < (acc += w[i]))
            return i;
    return OP_REPLY;
}

/* ---- serving ---- */

static void hold(ep *e, ember_ref *ref, int origin, deps d)
{
    if (e->nh >= MAXHELD) {
        ember_ref_release(e->h[0].ref);
        e->h[0] = e->h[--e->nh];
    }
    e->h[e->nh++] = (held){ember_ref_retain(ref), origin, d};
}

static bool check_serving(srv *s, const char *what)
{
    if (s->obj >= 0 && S.o[s->obj].revoked) {
        violation("%s ran on object %d after it was revoked", what, s->obj);
        return false;
    }
    if (S.freed_inc[s->ep][S.e[s->ep].inc] && !S.e[s->ep].freeing)
        violation("%s ran on endpoint %d after it was freed", what, s->ep);
    return true;
}

static void push(pend *v, int *n, ember_call *call, uint64_t tag)
{
    if (*n < MAXPEND)
        v[(*n)++] = (pend){call, tag};
    else
        ember_call_fail(call, "too many held");
}

static void remote_act(ember_call *call, uint64_t tag, uint32_t op, void *ud)
{
    srv *s = ud;
    if (!check_serving(s, "act"))
        return;
    switch (op) {
    case OP_REPLY:
        chaos_Obj_act_reply(call, 2 * tag + 1);
        break;
    case OP_DEFER:
        push(S.deferred, &S.ndeferred, call, tag);
        break;
    case OP_RAISE: {
        chaos_Nope err = {tag};
        chaos_Obj_act_fail_Nope(call, &err);
        break;
    }
    case OP_FAIL:
        ember_call_fail(call, "failed as asked (%" PRIu64 ")", tag);
        break;
    case OP_HANG:
        push(S.hung, &S.nhung, call, tag);
        break;
    case OP_CALLBACK: {
        /* Call the caller back from inside the handler, then answer. */
        ember_ref *back = ember_call_caller(call);
        rec *r = new_rec(K_ACT, s->ep);
        if (r) {
            r->d = deps_now(s->ep ? 1u << s->ep : 0xeu);
            r->loose = true; /* the caller may be a proxy going away */
            start_act_on(s->ep, back, r, chance(50) ? OP_REPLY : OP_RAISE,
                         chance(30) ? rand_timeout() : 0, false);
        }
        chaos_Obj_act_reply(call, 2 * tag + 1);
        break;
    }
    default:
        ember_call_fail(call, "no such op");
    }
}

static void remote_poke(ember_call *call, uint64_t tag, void *ud)
{
    (void)call;
    (void)tag;
    if (check_serving(ud, "poke"))
        S.pokes++;
}

static const chaos_Obj_handlers handlers;

static int new_obj(int owner)
{
    if (S.no >= MAXOBJ)
        return -1;
    int i = S.no++;
    S.osrv[i] = (srv){owner, i};
    S.o[i] = (obj){chaos_Obj_local(&handlers, &S.osrv[i]), NULL, owner, false};
    S.o[i].orig = S.o[i].ref;
    return i;
}

/* give: pick 0 a new object, 1 one of the callee's own, else a held ref. */
static void remote_give(ember_call *call, uint64_t tag, uint32_t pick, void *ud)
{
    srv *s = ud;
    if (!check_serving(s, "give"))
        return;
    rec *r = tag < (uint64_t)S.nr ? &S.r[tag] : NULL;
    ep *e = &S.e[s->ep];
    ember_ref *give = NULL;
    int origin = -100;
    deps d = deps_now(0);
    if (pick % 3 == 2 && e->nh) {
        held *h = &e->h[pick / 3 % (unsigned)e->nh];
        give = h->ref;
        origin = h->origin;
        d = h->d;
    } else {
        int mine[MAXOBJ], n = 0;
        for (int i = 0; pick % 3 == 1 && i < S.no; i++)
            if (S.o[i].owner == s->ep && S.o[i].ref && !S.o[i].revoked)
                mine[n++] = i;
        int i = n ? mine[pick / 3 % (unsigned)n] : new_obj(s->ep);
        if (i >= 0) {
            give = S.o[i].ref;
            origin = i;
        }
    }
    if (r) {
        r->passed = origin;
        r->pd = deps_or(d, deps_now(s->ep ? 1u << s->ep : 0));
        if (origin < 0)
            r->may_fail = true;
    }
    if (!give) {
        ember_call_fail(call, "nothing to give");
        if (r)
            r->may_fail = true;
        return;
    }
    chaos_Obj_give_reply(call, give);
}

static void give_done(const ember_outcome *o, ember_ref *const *ret, void *ud)
{
    rec *r = ud;
    check_outcome(r, o, 0, false);
    if (o->status == EMBER_OK && (!ret || !*ret))
        violation("give %d: OK without a ref", (int)(r - S.r));
    ep *e = &S.e[r->from];
    if (o->status == EMBER_OK && ret && *ret && r->inc == e->inc && !e->freeing &&
        (r->from == 0 || e->node))
        hold(e, *ret, r->passed, deps_or(r->pd, deps_or(r->d, deps_now(r->from ? 1u << r->from : 0))));
}

/* take: pick = tag << 1 | keep. The callee keeps the ref, and may call it. */
static void remote_take(ember_call *call, ember_ref *objref, uint32_t pick, void *ud)
{
    srv *s = ud;
    if (!check_serving(s, "take"))
        return;
    uint64_t tag = pick >> 1;
    rec *r = tag < (uint64_t)S.nr ? &S.r[tag] : NULL;
    ep *e = &S.e[s->ep];
    int origin = r ? r->passed : -100;
    deps d = r ? deps_or(r->pd, r->d) : deps_now(0xe);
    if (objref && (pick & 1) && (s->ep == 0 || e->node) && !e->freeing)
        hold(e, objref, origin, deps_or(d, deps_now(s->ep ? 1u << s->ep : 0)));
    if (objref && chance(30)) {
        rec *c = new_rec(K_ACT, s->ep);
        if (c) {
            c->origin = origin;
            c->d = deps_or(d, deps_now(s->ep ? 1u << s->ep : 0));
            c->loose = true;
            start_act_on(s->ep, objref, c, OP_REPLY, 0, false);
        }
    }
    chaos_Obj_take_reply(call);
}

static void take_done(const ember_outcome *o, void *ud)
{
    check_outcome(ud, o, 0, false);
}

static const chaos_Obj_handlers handlers = {remote_act, remote_poke, remote_give, remote_take};

/* ---- the cluster ---- */

/* A call from inside on_join, on_leave or on_state. */
static void call_from_callback(int from, int slot)
{
    if (!chance(30) || S.nr >= MAXREC - 64)
        return;
    rec *r = new_rec(K_ACT, from);
    if (!r)
        return;
    r->loose = true; /* a connection is coming or going */
    ember_ref *to = NULL;
    if (from == 0) {
        char name[16];
        snprintf(name, sizeof name, "n%d", slot);
        ember_child *c = S.e[0].root ? ember_root_child_by_name(S.e[0].root, name) : NULL;
        to = c ? ember_child_ref(c) : NULL;
        r->child = slot;
        r->joins = S.joins[slot];
    } else if (S.e[from].node) {
        to = ember_node_root(S.e[from].node);
        r->origin = -1;
    }
    r->d = deps_now(1u << slot);
    note("act from a callback of %d about %d", from, slot);
    start_act_on(from, to, r, chance(50) ? OP_REPLY : OP_RAISE, chance(30) ? rand_timeout() : 0,
                 false);
}

static void on_join(ember_root *root, ember_child *c, void *ud)
{
    (void)root;
    (void)ud;
    int slot = atoi(ember_child_name(c) + 1);
    if (slot >= 1 && slot < NE) {
        S.joins[slot]++;
        S.joined[slot] = true;
        S.epoch[slot]++;
        S.gen++;
        call_from_callback(0, slot);
    }
}

static void on_leave(ember_root *root, ember_child *c, const char *reason, void *ud)
{
    (void)root;
    (void)reason;
    (void)ud;
    int slot = atoi(ember_child_name(c) + 1);
    if (slot >= 1 && slot < NE) {
        S.joined[slot] = false;
        S.epoch[slot]++;
        S.gen++;
        if (!S.e[0].freeing)
            call_from_callback(0, 1 + (int)below(NN));
    }
}

static void on_state(ember_node *n, ember_node_state st, const char *reason, void *ud)
{
    (void)reason;
    int slot = (int)(intptr_t)ud;
    if (st == EMBER_NODE_REGISTERED || st == EMBER_NODE_LOST || st == EMBER_NODE_CLOSED) {
        S.epoch[slot]++;
        S.gen++;
    }
    if (S.e[slot].node == n)
        call_from_callback(slot, slot);
}

static ember_limits limits(void)
{
    ember_limits l;
    ember_limits_default(&l);
    l.shutdown_ms = 150;
    l.heartbeat_ms = 2000;
    l.dead_after_ms = 6000;
    return l;
}

static void new_node(int slot)
{
    ep *e = &S.e[slot];
    ember_node_config nc;
    ember_node_config_default(&nc);
    nc.limits = limits();
    nc.backoff_min_ms = 5;
    nc.backoff_max_ms = 20;
    nc.on_state = on_state;
    nc.ud = (void *)(intptr_t)slot;
    char name[16];
    snprintf(name, sizeof name, "n%d", slot);
    e->inc++;
    e->closing = e->closed = false;
    e->ver = pick_version();
    v2_nodes += e->ver == 2;
    ember_proto_max_ = e->ver;
    e->node = ember_node_new(S.base, name, &nc);
    ember_proto_max_ = EMBER_PROTOCOL_VERSION;
    CU_ASSERT_PTR_NOT_NULL_FATAL(e->node);
    e->exports_srv = (srv){slot, -1};
    CU_ASSERT_EQUAL(chaos_Obj_export(ember_node_exports(e->node), &handlers, &e->exports_srv), 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ember_root_port(S.e[0].root));
    CU_ASSERT_EQUAL(ember_node_connect(e->node, addr), 0);
}

static void release_held(ep *e)
{
    for (int i = 0; i < e->nh; i++)
        ember_ref_release(e->h[i].ref);
    e->nh = 0;
}

static void release_objs(int owner)
{
    for (int i = 0; i < S.no; i++)
        if (S.o[i].owner == owner && S.o[i].ref) {
            ember_ref_release(S.o[i].ref);
            S.o[i].ref = NULL;
        }
}

static void mark_freed(int slot)
{
    for (int i = 0; i < S.nr; i++) {
        rec *r = &S.r[i];
        if (r->from == slot && r->inc == S.e[slot].inc && r->n < r->want && !r->never)
            violation("call %d (kind %d op %u) still pending after its endpoint was freed",
                      i, r->kind, r->op);
    }
}

static void free_node(int slot)
{
    ep *e = &S.e[slot];
    if (!e->node)
        return;
    bool before = chance(50);
    if (before)
        release_held(e);
    e->freeing = true;
    S.freed_inc[slot][e->inc] = true;
    S.gen++;
    ember_node_free(e->node);
    e->freeing = false;
    e->node = NULL;
    mark_freed(slot);
    if (!before)
        release_held(e);
    release_objs(slot);
    S.epoch[slot]++; /* the root sees it go when it reads the EOF */
}

static void closed_done(ember_node *n, void *ud)
{
    (void)n;
    int slot = (int)(intptr_t)ud;
    S.e[slot].closed = true;
}

/* ---- the random operations ---- */

static void op_call(void)
{
    int from = (int)below(NE);
    ep *e = &S.e[from];
    if (from && !e->node)
        return;
    int target = e->nh && chance(50) ? (int)below((unsigned)e->nh) : -1;
    uint32_t op = rand_op();
    uint32_t t = chance(40) ? rand_timeout() : 0;
    note("act %d -> %s%d op %u timeout %u", from, target < 0 ? "peer" : "held ", target, op, t);
    start_act(from, target, op, t, chance(15));
}

static void op_give(void)
{
    int from = (int)below(NE);
    ep *e = &S.e[from];
    if (from && !e->node)
        return;
    rec *r = new_rec(K_GIVE, from);
    if (!r)
        return;
    int target = e->nh && chance(40) ? (int)below((unsigned)e->nh) : -1;
    ember_ref *to = pick_target(r, from, target);
    uint32_t pick = (uint32_t)below(1000);
    r->timeout = chance(20) ? rand_timeout() : 0;
    ember_callopts opts = {r->timeout};
    note("give %d -> %d pick %u", from, target, pick);
    if (!to) {
        r->n = 1;
        return;
    }
    S.starting = r;
    r->h = chaos_Obj_give(to, r->tag, pick, give_done, r, r->timeout ? &opts : NULL);
    after_start(r);
}

static void op_take(void)
{
    int from = (int)below(NE);
    ep *e = &S.e[from];
    if (from && !e->node)
        return;
    rec *r = new_rec(K_TAKE, from);
    if (!r)
        return;
    int target = e->nh && chance(30) ? (int)below((unsigned)e->nh) : -1;
    ember_ref *to = pick_target(r, from, target);
    /* What to pass: a held ref, an object of ours, or a new one. */
    ember_ref *pass = NULL;
    if (e->nh && chance(50)) {
        held *h = &e->h[below((unsigned)e->nh)];
        pass = h->ref;
        r->passed = h->origin;
        r->pd = h->d;
        if (h->origin < 0)
            r->may_fail = true; /* a peer's exports may be passed back to it */
    } else {
        int i = new_obj(from);
        if (i < 0) {
            r->n = 1;
            return;
        }
        pass = S.o[i].ref;
        r->passed = i;
        r->pd = deps_now(0);
    }
    if (chance(10)) {
        /* A peer's exports (the root's children, a node's root). */
        r->may_fail = true;
        r->passed = -100;
        if (from == 0) {
            ember_child *c = ember_root_child_next(S.e[0].root, NULL);
            pass = c ? ember_child_ref(c) : pass;
            if (c)
                r->pd = deps_now(1u << atoi(ember_child_name(c) + 1));
        } else {
            pass = ember_node_root(e->node);
        }
    }
    r->timeout = chance(20) ? rand_timeout() : 0;
    ember_callopts opts = {r->timeout};
    note("take %d -> %d", from, target);
    if (!to) {
        r->n = 1;
        return;
    }
    S.starting = r;
    r->h = chaos_Obj_take(to, pass, (uint32_t)(r->tag << 1 | (chance(60) ? 1 : 0)), take_done, r,
                          r->timeout ? &opts : NULL);
    after_start(r);
}

static void bcast_done(const ember_outcome *o, const uint64_t *ret, void *ud)
{
    rec *r = ud;
    for (int i = 0; i < r->n && i < NN; i++)
        if (r->seen[i] == o->child)
            violation("broadcast %d: child %p answered twice", (int)(r - S.r), (void *)o->child);
    if (r->n < NN)
        r->seen[r->n] = o->child;
    check_outcome(r, o, ret ? *ret : 0, ret != NULL);
}

static void op_bcast(void)
{
    if (!S.e[0].root)
        return;
    rec *r = new_rec(K_BCAST, 0);
    if (!r)
        return;
    r->op = chance(50) ? OP_REPLY : rand_op();
    if (r->op == OP_CALLBACK)
        r->op = OP_REPLY;
    r->timeout = chance(30) ? rand_timeout() : 0;
    r->d = deps_now(0xe);
    ember_callopts opts = {r->timeout};
    note("broadcast op %u timeout %u", r->op, r->timeout);
    S.starting = r;
    int n = chaos_Obj_act_broadcast(S.e[0].root, NULL, NULL, r->tag, r->op, bcast_done, r,
                                    r->timeout ? &opts : NULL);
    S.starting = NULL;
    if (n < 0)
        violation("broadcast refused: %s", ember_last_error());
    r->want = n < 0 ? 0 : n;
    if (r->n > r->want)
        violation("broadcast %d: %d outcomes for %d children", (int)(r - S.r), r->n, r->want);
}

static void op_poke(void)
{
    int from = (int)below(NE);
    ep *e = &S.e[from];
    if (from && !e->node)
        return;
    rec tmp;
    memset(&tmp, 0, sizeof tmp);
    int target = e->nh && chance(50) ? (int)below((unsigned)e->nh) : -1;
    ember_ref *to = pick_target(&tmp, from, target);
    if (tmp.to)
        ember_ref_release(tmp.to);
    note("poke %d -> %d", from, target);
    if (to)
        chaos_Obj_poke(to, 1);
}

static void op_cancel(void)
{
    if (!S.nr)
        return;
    rec *r = &S.r[S.nr - 1 - (int)below(S.nr < 64 ? (unsigned)S.nr : 64)];
    if (r->kind == K_BCAST || r->never || r->h == 0)
        return;
    ember_ref *to = r->to;
    if (!to && r->from == 0 && r->child > 0 && S.e[0].root) {
        char name[16];
        snprintf(name, sizeof name, "n%d", r->child);
        ember_child *c = ember_root_child_by_name(S.e[0].root, name);
        to = c && S.joins[r->child] == r->joins ? ember_child_ref(c) : NULL;
    } else if (!to && r->from > 0 && r->origin == -1 && S.e[r->from].inc == r->inc)
        to = S.e[r->from].node ? ember_node_root(S.e[r->from].node) : NULL;
    if (!to)
        return;
    note("cancel call %d (n %d)", (int)(r - S.r), r->n);
    int n0 = r->n;
    S.cancelling = r;
    int rc = ember_cancel(to, r->h);
    S.cancelling = NULL;
    if (rc == 0 && (n0 != 0 || r->n != 1))
        violation("cancel of call %d returned 0 with %d outcomes before, %d after",
                  (int)(r - S.r), n0, r->n);
    if (rc != 0 && n0 == 0 && r->n == 0 && ember_ref_alive(to))
        violation("cancel of pending call %d refused: %s", (int)(r - S.r), ember_last_error());
}

static void answer(pend *p)
{
    switch (below(3)) {
    case 0:
        chaos_Obj_act_reply(p->call, 2 * p->tag + 1);
        break;
    case 1: {
        chaos_Nope err = {p->tag};
        chaos_Obj_act_fail_Nope(p->call, &err);
        break;
    }
    default:
        ember_call_fail(p->call, "failed later");
    }
}

static void op_answer(void)
{
    if (!S.ndeferred)
        return;
    int i = (int)below((unsigned)S.ndeferred);
    note("answer deferred %" PRIu64, S.deferred[i].tag);
    pend p = S.deferred[i];
    S.deferred[i] = S.deferred[--S.ndeferred];
    answer(&p);
}

static void op_release(void)
{
    int from = (int)below(NE);
    ep *e = &S.e[from];
    if (!e->nh)
        return;
    int i = (int)below((unsigned)e->nh);
    note("release %d held %d", from, i);
    ember_ref_release(e->h[i].ref);
    e->h[i] = e->h[--e->nh];
}

static void op_revoke(void)
{
    if (!S.no)
        return;
    int i = (int)below((unsigned)S.no);
    if (!S.o[i].ref || S.o[i].revoked)
        return;
    note("revoke object %d of %d", i, S.o[i].owner);
    S.o[i].revoked = true;
    S.gen++;
    ember_ref_revoke(S.o[i].ref);
    if (chance(50)) {
        ember_ref_release(S.o[i].ref);
        S.o[i].ref = NULL;
    }
}

static void op_release_obj(void)
{
    if (!S.no)
        return;
    int i = (int)below((unsigned)S.no);
    if (!S.o[i].ref)
        return;
    note("release object %d", i);
    ember_ref_release(S.o[i].ref);
    S.o[i].ref = NULL;
}

static void op_lifecycle(void)
{
    int slot = 1 + (int)below(NN);
    ep *e = &S.e[slot];
    if (e->inc >= MAXINC - 2)
        return;
    if (!e->node) {
        note("new node %d", slot);
        new_node(slot);
        return;
    }
    if (e->closed || (e->closing && chance(30))) {
        note("free node %d (closed %d)", slot, e->closed);
        free_node(slot);
        return;
    }
    if (e->closing)
        return;
    switch (below(3)) {
    case 0:
        note("close node %d", slot);
        e->closing = true;
        S.gen++;
        ember_node_close(e->node, closed_done, (void *)(intptr_t)slot);
        break;
    case 1: {
        note("free node %d", slot);
        free_node(slot);
        break;
    }
    default: {
        char name[16];
        snprintf(name, sizeof name, "n%d", slot);
        ember_child *c = ember_root_child_by_name(S.e[0].root, name);
        note("drop child %d (%s)", slot, c ? "joined" : "absent");
        S.gen++;
        if (c)
            ember_root_drop(S.e[0].root, c, "chaos drops it");
    }
    }
}

static void run_a_little(void)
{
    switch (below(4)) {
    case 0:
        break;
    case 1:
        event_base_loop(S.base, EVLOOP_NONBLOCK);
        break;
    case 2:
        for (unsigned i = below(4); i > 0; i--)
            event_base_loop(S.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        break;
    default:
        run_for(S.base, (int)below(8));
    }
}

/* ---- one run ---- */

static bool bool_set(void *ud)
{
    return *(bool *)ud;
}

static bool up_cond(void *ud)
{
    (void)ud;
    return all_up();
}

static bool may_stay(const rec *r)
{
    /* Calls that can end only by their deadline or a shutdown. */
    return (r->op == OP_HANG && (r->kind == K_ACT || r->kind == K_BCAST));
}

static void op_answer(void);
static bool settled(void *ud)
{
    (void)ud;
    while (S.ndeferred) /* the handlers that ran meanwhile */
        op_answer();
    for (int i = 0; i < S.nr; i++)
        if (S.r[i].n < S.r[i].want && !S.r[i].never && !may_stay(&S.r[i]))
            return false;
    return true;
}

static unsigned conn_objs(ember_conn *c)
{
    return c ? c->xobj_oids.n + c->rrefs.n : 0;
}

/* With version 2 nodes, before their connections go: the nodes hold
 * nothing of the root's (decoded refs are counted on either version), and
 * the root has nothing exported to a version 3 node (its refs never stay).
 * What the root exports to a version 2 node may stay, and with it what the
 * root's proxies there forward to. */
static bool nothing_held_but_v2(void *ud)
{
    unsigned *left = ud;
    *left = 0;
    for (int i = 1; i < NE; i++)
        if (S.e[i].node && ember_node_root(S.e[i].node)->conn)
            *left += ember_node_root(S.e[i].node)->conn->rrefs.n;
    for (ember_child *c = ember_root_child_next(S.e[0].root, NULL); c;
         c = ember_root_child_next(S.e[0].root, c))
        if (ember_child_version_(c) >= 3)
            *left += ember_child_exported_(c);
    return *left == 0;
}

/* Drops the connection of every node that speaks version 2, what it left
 * exported with it, and waits for them to register again. */
static bool drop_v2_nodes(void)
{
    bool any = false;
    for (int i = 1; i < NE; i++) {
        char name[16];
        snprintf(name, sizeof name, "n%d", i);
        ember_child *c = ember_root_child_by_name(S.e[0].root, name);
        if (!c || ember_child_version_(c) != 2)
            continue;
        note("drop version 2 child %d", i);
        S.gen++;
        ember_root_drop(S.e[0].root, c, "chaos drops a version 2 node");
        any = true;
    }
    if (any && !run_until(S.base, up_cond, NULL, 5000))
        violation("the version 2 nodes did not register again");
    return any;
}

static bool exports_empty(void *ud)
{
    unsigned *left = ud;
    *left = 0;
    for (int i = 1; i < NE; i++) {
        if (S.e[i].node)
            *left += conn_objs(ember_node_root(S.e[i].node)->conn);
    }
    for (ember_child *c = ember_root_child_next(S.e[0].root, NULL); c;
         c = ember_root_child_next(S.e[0].root, c))
        *left += conn_objs(ember_child_ref(c)->conn);
    return *left == 0;
}



static void shut_done(ember_root *r, void *ud)
{
    (void)r;
    *(int *)ud = 2;
}

static long long phase_t;
static void phase(const char *what)
{
    if (getenv("CHAOS_VERBOSE"))
        fprintf(stderr, "chaos:   %s: %lld ms\n", what, now_ms() - phase_t);
    phase_t = now_ms();
}

static void run_seed(uint64_t seed, int steps)
{
    memset(&S, 0, sizeof S);
    long long live0 = live_bytes, t_start = now_ms();
    phase_t = t_start;
    S.seed = seed;
    rng = seed * 0x2545f4914f6cdd1dull + 1;
    vrng = ~seed * 0x9e3779b97f4a7c15ull;
    mixed = vrnd100() < 50;
    S.base = event_base_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(S.base);

    ember_root_config rc;
    ember_root_config_default(&rc);
    rc.limits = limits();
    rc.on_join = on_join;
    rc.on_leave = on_leave;
    S.e[0].root = ember_root_new(S.base, &rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(S.e[0].root);
    S.e[0].exports_srv = (srv){0, -1};
    CU_ASSERT_EQUAL(chaos_Obj_export(ember_root_exports(S.e[0].root), &handlers,
                                     &S.e[0].exports_srv), 0);
    CU_ASSERT_EQUAL_FATAL(ember_root_listen(S.e[0].root, "127.0.0.1:0"), 0);
    for (int i = 1; i < NE; i++)
        new_node(i);
    CU_ASSERT_FATAL(run_until(S.base, up_cond, NULL, 5000));

    for (S.step = 0; S.step < steps && S.nr < MAXREC - 64; S.step++) {
        unsigned x = below(100);
        if (x < 30)
            op_call();
        else if (x < 38)
            op_give();
        else if (x < 46)
            op_take();
        else if (x < 50)
            op_bcast();
        else if (x < 54)
            op_poke();
        else if (x < 64)
            op_cancel();
        else if (x < 76)
            op_answer();
        else if (x < 82)
            op_release();
        else if (x < 85)
            op_revoke();
        else if (x < 87)
            op_release_obj();
        else if (x < 90)
            op_lifecycle();
        else if (x < 92) {
            /* Let the cluster settle sometimes. */
            note("settle");
            for (int i = 1; i < NE; i++) {
                if (S.e[i].node && S.e[i].closing)
                    run_until(S.base, bool_set, &S.e[i].closed, 2000);
                if (S.e[i].closed)
                    free_node(i);
                if (!S.e[i].node)
                    new_node(i);
            }
            if (!run_until(S.base, up_cond, NULL, 2000))
                violation("the nodes did not all register again");
        }
        run_a_little();
    }

    phase("steps");
    /* The end: everyone back, deferred calls answered. */
    S.step = -1;
    for (int i = 1; i < NE; i++) {
        if (S.e[i].node && (S.e[i].closing || S.e[i].closed)) {
            run_until(S.base, bool_set, &S.e[i].closed, 2000);
            free_node(i);
        }
        if (!S.e[i].node)
            new_node(i);
    }
    if (!run_until(S.base, up_cond, NULL, 5000))
        violation("the nodes did not all register again");
    phase("all up");
    while (S.ndeferred)
        op_answer();
    if (!run_until(S.base, settled, NULL, 5000)) {
        for (int i = 0; i < S.nr; i++)
            if (S.r[i].n < S.r[i].want && !S.r[i].never && !may_stay(&S.r[i]))
                violation("call %d (kind %d op %u from %d timeout %u) never ended", i,
                          S.r[i].kind, S.r[i].op, S.r[i].from, S.r[i].timeout);
    }
    phase("settled");
    bool check_exports = chance(50);
    if (check_exports) {
        /* Cancel what hangs, let go of every ref: nothing stays exported. */
        for (int i = 0; i < S.nr; i++) {
            rec *r = &S.r[i];
            if (r->n >= r->want || r->never || r->kind == K_BCAST)
                continue;
            ember_ref *to = r->to;
            if (!to && r->from == 0 && r->child > 0) {
                char name[16];
                snprintf(name, sizeof name, "n%d", r->child);
                ember_child *c = ember_root_child_by_name(S.e[0].root, name);
                to = c && S.joins[r->child] == r->joins ? ember_child_ref(c) : NULL;
            } else if (!to && r->from > 0 && r->origin == -1 && S.e[r->from].inc == r->inc)
                to = ember_node_root(S.e[r->from].node);
            int crc = -2;
            if (to) {
                S.cancelling = r;
                crc = ember_cancel(to, r->h);
                S.cancelling = NULL;
            }
            if (getenv("CHAOS_VERBOSE"))
                fprintf(stderr, "chaos:   pending %d kind %d op %u from %d: cancel %d, n %d\n", i,
                        r->kind, r->op, r->from, crc, r->n);
        }
        for (int i = 0; i < NE; i++)
            release_held(&S.e[i]);
        for (int i = 0; i < NE; i++)
            release_objs(i);
        unsigned left = 0;
        exports_checked += all_up();
        bool v2 = false;
        for (int i = 1; i < NE; i++)
            v2 |= S.e[i].ver == 2;
        if (v2 && all_up()) {
            if (!run_until(S.base, nothing_held_but_v2, &left, 3000))
                violation("%u refs held by the nodes or exported to version 3 nodes "
                          "once everything was let go", left);
            v2_dropped += drop_v2_nodes();
        }
        if (!run_until(S.base, exports_empty, &left, 3000) && all_up()) {
            violation("%u objects still exported or held once everything was let go", left);
            for (int i = 0; getenv("CHAOS_VERBOSE") && i < S.nr; i++)
                if (S.r[i].kind == K_GIVE || S.r[i].kind == K_TAKE)
                    fprintf(stderr, "chaos:   %s %d from %d to %d/%d (d %x, passed %d) %s %s\n",
                            S.r[i].kind == K_GIVE ? "give" : "take", i, S.r[i].from,
                            S.r[i].child, S.r[i].origin, S.r[i].d.mask, S.r[i].passed,
                            ember_status_name(S.r[i].st), S.r[i].msg);
        }
    }

    phase("exports");
    /* Root shutdown with whatever still hangs, then the frees. */
    S.root_shut = 1;
    S.gen++;
    ember_root_shutdown(S.e[0].root, shut_done, &S.root_shut);
    int_at_least w = {&S.root_shut, 2};
    if (!run_until(S.base, reached, &w, 5000))
        violation("ember_root_shutdown's done never ran");
    phase("shutdown");
    for (int i = 1; i < NE; i++) {
        if (chance(50)) {
            S.e[i].closing = true;
            ember_node_close(S.e[i].node, closed_done, (void *)(intptr_t)i);
            if (!run_until(S.base, bool_set, &S.e[i].closed, 3000))
                violation("node %d's close never finished", i);
        }
        free_node(i);
    }
    S.e[0].freeing = true;
    S.freed_inc[0][0] = true;
    ember_root_free(S.e[0].root);
    S.e[0].freeing = false;
    mark_freed(0);
    S.e[0].root = NULL;
    release_held(&S.e[0]);
    release_objs(0);
    /* Late answers to every kept call: orphans, no-ops that free them. */
    while (S.ndeferred)
        op_answer();
    for (int i = 0; i < S.nhung; i++)
        answer(&S.hung[i]);
    S.nhung = 0;
    run_for(S.base, 5);
    for (int i = 0; i < S.nr; i++) {
        rec *r = &S.r[i];
        if (!r->never && r->n != r->want)
            violation("call %d (kind %d op %u from %d) ended %d times, not %d", i, r->kind,
                      r->op, r->from, r->n, r->want);
        if (r->to)
            ember_ref_release(r->to);
    }
    event_base_free(S.base);
    if (live_bytes != live0)
        violation("%lld bytes still allocated by the runtime", live_bytes - live0);
    CU_ASSERT_EQUAL(S.violations, 0);
    seeds_run++;
    if (getenv("CHAOS_VERBOSE"))
        fprintf(stderr, "chaos: seed %" PRIu64 ": %d calls, %lld ms\n", seed, S.nr,
                now_ms() - t_start);
    if (S.violations)
        fprintf(stderr, "chaos: seed %" PRIu64 ": %d violations\n", seed, S.violations);
}

static void report(void);
static void test_chaos(void)
{
    int steps = getenv("CHAOS_STEPS") ? atoi(getenv("CHAOS_STEPS")) : 400;
    const char *env = getenv("CHAOS_SEEDS");
    if (env) {
        unsigned long long a = 0, b = 0;
        int k = sscanf(env, "%llu-%llu", &a, &b);
        if (k < 2)
            b = a;
        for (unsigned long long s = a; s <= b; s++)
            run_seed(s, steps);
        report();
        return;
    }
    for (size_t i = 0; i < sizeof CHAOS_SEEDS / sizeof CHAOS_SEEDS[0]; i++)
        run_seed(CHAOS_SEEDS[i], steps);
    report();
}

static void report(void)
{
    fprintf(stderr, "    %d seeds, export tables checked empty in %d (version 2 nodes "
            "dropped first in %d), %d version 2 nodes; outcomes:", seeds_run,
            exports_checked, v2_dropped, v2_nodes);
    for (int i = 0; i < 16; i++)
        if (seen_status[i])
            fprintf(stderr, " %s %lld", ember_status_name((ember_status)i), seen_status[i]);
    fprintf(stderr, "\n");
}

int main(void)
{
    if (!getenv("EMBER_LOG"))
        ember_set_log_level(EMBER_LOG_OFF);
    ember_set_allocator(counting_alloc, NULL);
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("chaos", NULL, NULL);
    CU_add_test(s, "random calls, refs, cancels, closes and drops", test_chaos);
    return run_suites_named("test-gen-chaos");
}
