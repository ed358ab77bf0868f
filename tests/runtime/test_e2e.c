/*
 * test_e2e.c — roots and nodes on loopback in one process (and one test
 * across processes). A hand-written service stands in for idlc's output:
 *
 *   service test.Calc {
 *     i64 add(1: i64 a, 2: i64 b) = 1;
 *     i64 later(1: i64 a) = 2;                   // deferred reply
 *     i64 boom() raises (Boom = 77) = 3;         // typed error
 *     i64 fail() = 4;                            // remote failure
 *     i64 hang() = 5;                            // never answers by itself
 *     oneway note(1: i64 a) = 6;
 *     i64 watch(1: ref<Obs> who) = 7;            // calls who.ping back
 *   }
 *   service test.Obs { i64 ping(1: i64 a) = 100; }
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>


#include "../common/alloc.h" /* counting_alloc, live_bytes */
#include "helpers.h"
#include "call-internal.h" /* ember_enc_payload */
#include "conn-internal.h"
#include "ember-internal.h"
#include "ref-internal.h"
#include "probe-internal.h" /* ember_proto_max_ */
#include "wire-internal.h"

enum { M_ADD = 1, M_LATER, M_BOOM, M_FAIL, M_HANG, M_NOTE, M_WATCH, M_GIVE,
       M_ECHO_REF, M_CROWD, M_PING = 100 };
enum { M_GATE_UP = 200, M_GATE_DOWN = 201 };
#define BOOM_ID 77
/* Service ids (a generated service's is FNV-1a 32 of its name). */
#define CALC_ID 0xca1c0001u
#define OBS_ID 0x0b500002u
#define GATE_ID 0x6a7e0003u
#define EMPTY_ID 0xe0e70004u
#define MAX_HUNG 64

/* ---- test state ---- */

typedef struct result {
    int n;                  /* outcomes delivered: must end at exactly 1 */
    ember_status st;
    int64_t v;
    uint32_t error_id;
    char msg[256];
    char err[64];
    ember_child *child;
} result;

static struct {
    ember_call *later;
    ember_call *hung[MAX_HUNG];
    int nhung;
    int64_t notes;
    int nnotes;
    int pings;
    result pong;
    ember_ref *watched;
    int joins, leaves;
    ember_child *joined[8];
    char leave_reason[200];
    int served; /* calls served by any Calc */
    ember_ref *give; /* what M_GIVE returns */
    int crowds; /* M_CROWD calls decoded */
} G;

/* ---- encoding, as generated code would ---- */

typedef struct args2 {
    int64_t a, b;
} args2;

static void enc_args(ember_enc *e, const void *v)
{
    const args2 *a = v;
    ember_enc_sint(e, 1, a->a);
    ember_enc_sint(e, 2, a->b);
}

static void enc_i64(ember_enc *e, const void *v)
{
    ember_enc_sint(e, 1, *(const int64_t *)v);
}

static void enc_ref(ember_enc *e, const void *v)
{
    ember_enc_ref(e, 1, (ember_ref *)v);
}

static void enc_boom(ember_enc *e, const void *v)
{
    ember_enc_string(e, 1, v);
}

static int dec_args(ember_dec *d, args2 *a)
{
    uint32_t tag = 0;
    unsigned wt = 0;
    int k;
    memset(a, 0, sizeof *a);
    while ((k = ember_dec_field(d, &tag, &wt)) == 1) {
        if (tag == 1)
            k = ember_dec_i64(d, wt, &a->a);
        else if (tag == 2)
            k = ember_dec_i64(d, wt, &a->b);
        else
            k = ember_dec_skip(d, wt);
        if (k)
            return -1;
    }
    return k;
}

/* ---- the Calc service ---- */

static int d_add(ember_call *c, ember_dec *d, const void *h, void *ud)
{
    args2 a;
    (void)h;
    (void)ud;
    if (dec_args(d, &a))
        return -1;
    G.served++;
    int64_t r = a.a + a.b;
    ember_call_reply(c, enc_i64, &r);
    return 0;
}

static int d_later(ember_call *c, ember_dec *d, const void *h, void *ud)
{
    args2 a;
    (void)h;
    (void)ud;
    if (dec_args(d, &a))
        return -1;
    G.later = c;
    return 0;
}

static int d_boom(ember_call *c, ember_dec *d, const void *h, void *ud)
{
    (void)d;
    (void)h;
    (void)ud;
    ember_call_raise(c, BOOM_ID, enc_boom, "kaboom");
    return 0;
}

static int d_fail(ember_call *c, ember_dec *d, const void *h, void *ud)
{
    (void)d;
    (void)h;
    (void)ud;
    ember_call_fail(c, "no luck %d", 42);
    return 0;
}

static int d_hang(ember_call *c, ember_dec *d, const void *h, void *ud)
{
    (void)d;
    (void)h;
    (void)ud;
    if (G.nhung < MAX_HUNG)
        G.hung[G.nhung++] = c;
    return 0;
}

static int d_note(ember_call *c, ember_dec *d, const void *h, void *ud)
{
    args2 a;
    (void)c;
    (void)h;
    (void)ud;
    if (dec_args(d, &a))
        return -1;
    G.notes = G.notes * 10 + a.a;
    G.nnotes++;
    return 0;
}

static void done_i64(const ember_outcome *o, ember_dec *reply, ember_fn cb, void *ud);
static const ember_service_desc obs_svc, gate_svc;

static int d_watch(ember_call *c, ember_dec *d, const void *h, void *ud)
{
    uint32_t tag = 0;
    unsigned wt = 0;
    ember_ref *who = NULL;
    (void)h;
    (void)ud;
    while (ember_dec_field(d, &tag, &wt) == 1)
        if (tag == 1 ? ember_dec_ref(d, wt, &who) : ember_dec_skip(d, wt))
            return -1;
    if (!who)
        return -1;
    /* Keep it past the call (the arena releases the decoded one). */
    G.watched = ember_ref_retain(who);
    args2 a = {41, 0};
    ember_call_start(who, &obs_svc, M_PING, enc_args, &a, done_i64, NULL, &G.pong, NULL);
    int64_t zero = 0;
    ember_call_reply(c, enc_i64, &zero);
    return 0;
}

static int d_give(ember_call *c, ember_dec *d, const void *h, void *ud)
{
    (void)d;
    (void)h;
    (void)ud;
    ember_call_reply(c, enc_ref, G.give); /* a ref as the result */
    return 0;
}

static int d_echo_ref(ember_call *c, ember_dec *d, const void *h, void *ud)
{
    uint32_t tag = 0;
    unsigned wt = 0;
    ember_ref *who = NULL;
    (void)h;
    (void)ud;
    while (ember_dec_field(d, &tag, &wt) == 1)
        if (tag == 1 ? ember_dec_ref(d, wt, &who) : ember_dec_skip(d, wt))
            return -1;
    ember_call_reply(c, enc_ref, who); /* send the caller's object home */
    return 0;
}

/* crowd(1: list<ref<test.Obs>> who), decoded as generated code does. */
static int d_crowd(ember_call *c, ember_dec *d, const void *h, void *ud)
{
    uint32_t tag = 0, n = 0;
    unsigned wt = 0;
    (void)h;
    (void)ud;
    while (ember_dec_field(d, &tag, &wt) == 1) {
        if (tag != 1) {
            if (ember_dec_skip(d, wt))
                return -1;
            continue;
        }
        ember_ref **who = NULL;
        const uint8_t *end;
        if (ember_dec_list_begin(d, wt, 1, sizeof *who, &n, (void **)&who, &end))
            return -1;
        for (uint32_t i = 0; i < n; i++)
            if (ember_dec_raw_ref(d, &who[i]))
                return -1;
        if (ember_dec_list_end(d, end))
            return -1;
    }
    G.crowds++;
    int64_t zero = 0;
    ember_call_reply(c, enc_i64, &zero);
    return 0;
}

static const ember_method_desc calc_methods[] = {
    {.id = M_ADD, .name = "add", .dispatch = d_add},     {.id = M_LATER, .name = "later", .dispatch = d_later},
    {.id = M_BOOM, .name = "boom", .dispatch = d_boom},  {.id = M_FAIL, .name = "fail", .dispatch = d_fail},
    {.id = M_HANG, .name = "hang", .dispatch = d_hang},  {.id = M_NOTE, .name = "note", .oneway = true, .dispatch = d_note},
    {.id = M_WATCH, .name = "watch", .dispatch = d_watch}, {.id = M_GIVE, .name = "give", .dispatch = d_give},
    {.id = M_ECHO_REF, .name = "echo_ref", .dispatch = d_echo_ref},
    {.id = M_CROWD, .name = "crowd", .dispatch = d_crowd},
};
static const ember_service_desc calc_svc = {
    .name = "test.Calc", .id = CALC_ID, .fingerprint = 0x1234, .n_methods = 10, .methods = calc_methods};

static int d_ping(ember_call *c, ember_dec *d, const void *h, void *ud)
{
    args2 a;
    (void)h;
    (void)ud;
    if (dec_args(d, &a))
        return -1;
    G.pings++;
    int64_t r = a.a + 1;
    ember_call_reply(c, enc_i64, &r);
    return 0;
}

static const ember_method_desc obs_methods[] = {{.id = M_PING, .name = "ping", .dispatch = d_ping}};
static const ember_service_desc obs_svc = {
    .name = "test.Obs", .id = OBS_ID, .fingerprint = 0x99, .n_methods = 1, .methods = obs_methods};

/* ---- completions ---- */

static void done_i64(const ember_outcome *o, ember_dec *reply, ember_fn cb, void *ud)
{
    result *r = ud;
    uint32_t tag = 0;
    unsigned wt = 0;
    (void)cb;
    r->n++;
    r->st = o->status;
    r->error_id = o->error_id;
    r->child = o->child;
    snprintf(r->msg, sizeof r->msg, "%s", o->message ? o->message : "");
    if (o->status == EMBER_OK && reply) {
        while (ember_dec_field(reply, &tag, &wt) == 1)
            if (tag == 1)
                ember_dec_i64(reply, wt, &r->v);
            else
                ember_dec_skip(reply, wt);
    } else if (o->status == EMBER_RAISED && reply) {
        const char *s = NULL;
        while (ember_dec_field(reply, &tag, &wt) == 1)
            if (tag == 1)
                ember_dec_string(reply, wt, &s);
            else
                ember_dec_skip(reply, wt);
        snprintf(r->err, sizeof r->err, "%s", s ? s : "");
    }
    if (G.watched && r == &G.pong) { /* done with the ref we were given */
        ember_ref_release(G.watched);
        G.watched = NULL;
    }
}

static void raw_done(const ember_outcome *o, const void *payload, size_t len, void *ud)
{
    result *r = ud;
    r->n++;
    r->st = o->status;
    snprintf(r->msg, sizeof r->msg, "%s", o->message ? o->message : "");
    if (o->status == EMBER_OK) {
        ember_dec d;
        ember_arena *a = ember_arena_new();
        uint32_t tag = 0;
        unsigned wt = 0;
        ember_dec_init(&d, payload, len, a);
        while (ember_dec_field(&d, &tag, &wt) == 1)
            if (tag == 1)
                ember_dec_i64(&d, wt, &r->v);
            else
                ember_dec_skip(&d, wt);
        ember_arena_free(a);
    }
}

static bool call_cancelled(void *ud)
{
    return ember_call_cancelled(ud);
}

static bool got(void *ud)
{
    return ((result *)ud)->n > 0;
}

static bool ref_rc_is_one(void *ud)
{
    return ((ember_ref *)ud)->rc == 1;
}

/* ---- fixture ---- */

#define MAXN 8

typedef struct fx {
    struct event_base *base;
    ember_root *root;
    ember_node *node[MAXN];
    int nn;
    int port;
    char addr[64];
    char last_state_reason[MAXN][200];
    int lost[MAXN];
} fx;

static fx F;

static void dl_on_join(ember_child *c);
static bool dl_joining; /* t_deadline_contexts: its calls start on join */

static void on_join(ember_root *r, ember_child *c, void *ud)
{
    (void)r;
    (void)ud;
    if (dl_joining)
        dl_on_join(c);
    if (G.joins < 8)
        G.joined[G.joins] = c;
    G.joins++;
}

static void (*leave_hook)(ember_child *c); /* a test's own on_leave step */

static void on_leave(ember_root *r, ember_child *c, const char *reason, void *ud)
{
    (void)r;
    (void)ud;
    G.leaves++;
    snprintf(G.leave_reason, sizeof G.leave_reason, "%s", reason);
    if (leave_hook)
        leave_hook(c);
}

static void on_state(ember_node *n, ember_node_state st, const char *reason, void *ud)
{
    (void)n;
    intptr_t i = (intptr_t)ud;
    if (st == EMBER_NODE_LOST) {
        F.lost[i]++;
        snprintf(F.last_state_reason[i], sizeof F.last_state_reason[i], "%s",
                 reason ? reason : "");
    }
}

static ember_root *make_root(const ember_limits *lim, int port)
{
    ember_root_config cfg;
    ember_root_config_default(&cfg);
    if (lim)
        cfg.limits = *lim;
    cfg.on_join = on_join;
    cfg.on_leave = on_leave;
    ember_root *r = ember_root_new(F.base, &cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL(ember_exports_add(ember_root_exports(r), &calc_svc, NULL, NULL), 0);
    char a[64];
    snprintf(a, sizeof a, "127.0.0.1:%d", port);
    CU_ASSERT_EQUAL_FATAL(ember_root_listen(r, a), 0);
    F.port = ember_root_port(r);
    CU_ASSERT_TRUE(F.port > 0);
    snprintf(F.addr, sizeof F.addr, "127.0.0.1:%d", F.port);
    return r;
}

static ember_node *make_node(const char *name, const ember_limits *lim)
{
    ember_node_config cfg;
    ember_node_config_default(&cfg);
    if (lim)
        cfg.limits = *lim;
    cfg.backoff_min_ms = 10;
    cfg.backoff_max_ms = 100;
    cfg.on_state = on_state;
    cfg.ud = (void *)(intptr_t)F.nn;
    ember_node *n = ember_node_new(F.base, name, &cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(n);
    CU_ASSERT_EQUAL(ember_exports_add(ember_node_exports(n), &calc_svc, NULL, NULL), 0);
    CU_ASSERT_EQUAL(ember_node_connect(n, F.addr), 0);
    F.node[F.nn++] = n;
    return n;
}

static bool later_held(void *ud)
{
    (void)ud;
    return G.later != NULL;
}

static bool node_registered(void *ud)
{
    return ember_node_state_get(ud) == EMBER_NODE_REGISTERED;
}

static size_t want_children;
static bool n_children(void *ud)
{
    (void)ud;
    return ember_root_child_count(F.root) >= want_children;
}

static bool all_registered(void *ud)
{
    (void)ud;
    for (int i = 0; i < F.nn; i++)
        if (F.node[i] && ember_node_state_get(F.node[i]) != EMBER_NODE_REGISTERED)
            return false;
    return F.root && ember_root_child_count(F.root) == (size_t)F.nn;
}

/* Empty state and fixture, a new base; no root or node yet. */
static void fresh_fixture(void)
{
    memset(&G, 0, sizeof G);
    memset(&F, 0, sizeof F);
    F.base = event_base_new();
}

static void setup_basic(int nnodes)
{
    fresh_fixture();
    F.root = make_root(NULL, 0);
    static const char *names[] = {"n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7"};
    for (int i = 0; i < nnodes; i++)
        make_node(names[i], NULL);
    CU_ASSERT_TRUE_FATAL(run_until(F.base, all_registered, NULL, 3000));
}

static void teardown_basic(void)
{
    for (int i = 0; i < F.nn; i++)
        ember_node_free(F.node[i]);
    ember_root_free(F.root);
    event_base_free(F.base);
}

static ember_child *child(const char *name)
{
    return ember_root_child_by_name(F.root, name);
}

/* ---- tests ---- */

static void t_register(void)
{
    setup_basic(2);
    CU_ASSERT_EQUAL(G.joins, 2);
    ember_child *c0 = child("n0"), *c1 = child("n1");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c1);
    CU_ASSERT_PTR_EQUAL(ember_root_child_by_id(F.root, ember_child_id(c0)), c0);
    CU_ASSERT_EQUAL(ember_node_id(F.node[0]), ember_child_id(c0));
    CU_ASSERT_NOT_EQUAL(ember_child_id(c0), ember_child_id(c1));
    CU_ASSERT_TRUE(ember_child_has_service(c0, "test.Calc"));
    CU_ASSERT_FALSE(ember_child_has_service(c0, "test.Nope"));
    CU_ASSERT_TRUE(strncmp(ember_child_peer(c0), "127.0.0.1:", 10) == 0);
    /* iteration follows join order */
    CU_ASSERT_PTR_EQUAL(ember_root_child_next(F.root, NULL), G.joined[0]);
    CU_ASSERT_PTR_EQUAL(ember_root_child_next(F.root, G.joined[0]), G.joined[1]);
    CU_ASSERT_PTR_NULL(ember_root_child_next(F.root, G.joined[1]));
    CU_ASSERT_TRUE(ember_ref_alive(ember_node_root(F.node[0])));
    CU_ASSERT_TRUE(ember_child_uptime(c0) >= 0.0);
    ember_child_set_data(c0, &F);
    CU_ASSERT_PTR_EQUAL(ember_child_data(c0), &F);
    CU_ASSERT_PTR_NULL(ember_root_child_by_name(F.root, "nobody"));
    teardown_basic();
}

static void stat_fn(const ember_method_stats *s, void *ud)
{
    if (s->id == M_ADD)
        *(uint64_t *)ud = s->calls;
}

static void t_calls_both_ways(void)
{
    setup_basic(1);
    result r1 = {0}, r2 = {0}, r3 = {0}, r4 = {0};
    args2 a = {2, 3};
    /* node -> root, typed */
    ember_handle h = ember_call_start(ember_node_root(F.node[0]), &calc_svc, M_ADD, enc_args,
                                      &a, done_i64, NULL, &r1, NULL);
    CU_ASSERT_NOT_EQUAL(h, 0);
    CU_ASSERT_EQUAL(r1.n, 0); /* never inside the call */
    /* node -> root, raw payload */
    uint8_t buf[32];
    ember_enc e;
    ember_enc_init_fixed(&e, buf, sizeof buf);
    args2 b = {10, -4};
    enc_args(&e, &b);
    CU_ASSERT_NOT_EQUAL(ember_call_raw(ember_node_root(F.node[0]), CALC_ID, M_ADD, buf,
                                       ember_enc_len(&e), raw_done, &r2, NULL), 0);
    /* root -> child, typed and raw */
    ember_ref *cr = ember_child_ref(child("n0"));
    args2 c = {100, 1};
    CU_ASSERT_NOT_EQUAL(ember_call_start(cr, &calc_svc, M_ADD, enc_args, &c, done_i64, NULL,
                                         &r3, NULL), 0);
    CU_ASSERT_NOT_EQUAL(ember_call_raw(cr, CALC_ID, M_ADD, buf, ember_enc_len(&e), raw_done,
                                       &r4, NULL), 0);
    CU_ASSERT_TRUE(run_until(F.base, got, &r1, 2000));
    CU_ASSERT_TRUE(run_until(F.base, got, &r2, 2000));
    CU_ASSERT_TRUE(run_until(F.base, got, &r3, 2000));
    CU_ASSERT_TRUE(run_until(F.base, got, &r4, 2000));
    CU_ASSERT_EQUAL(r1.st, EMBER_OK);
    CU_ASSERT_EQUAL(r1.v, 5);
    CU_ASSERT_EQUAL(r2.st, EMBER_OK);
    CU_ASSERT_EQUAL(r2.v, 6);
    CU_ASSERT_EQUAL(r3.v, 101);
    CU_ASSERT_EQUAL(r4.v, 6);
    uint64_t calls = 0;
    ember_exports_stats(ember_root_exports(F.root), stat_fn, &calls);
    CU_ASSERT_EQUAL(calls, 2);
    run_for(F.base, 20); /* each reached above: no late duplicate outcome */
    CU_ASSERT_EQUAL(r1.n + r2.n + r3.n + r4.n, 4);
    teardown_basic();
}

static void t_deferred(void)
{
    setup_basic(1);
    result r = {0};
    args2 a = {7, 0};
    ember_call_start(ember_node_root(F.node[0]), &calc_svc, M_LATER, enc_args, &a, done_i64,
                     NULL, &r, NULL);
    CU_ASSERT_TRUE(run_until(F.base, later_held, NULL, 2000));
    CU_ASSERT_PTR_NOT_NULL_FATAL(G.later);
    CU_ASSERT_EQUAL(r.n, 0);
    CU_ASSERT_EQUAL(ember_call_method(G.later), M_LATER);
    CU_ASSERT_PTR_EQUAL(ember_call_child(G.later), child("n0"));
    CU_ASSERT_PTR_EQUAL(ember_call_caller(G.later), ember_child_ref(child("n0")));
    void *mem = ember_call_alloc(G.later, 100);
    CU_ASSERT_PTR_NOT_NULL(mem);
    int64_t v = 99;
    CU_ASSERT_EQUAL(ember_call_reply(G.later, enc_i64, &v), 0);
    CU_ASSERT_TRUE(run_until(F.base, got, &r, 2000));
    CU_ASSERT_EQUAL(r.st, EMBER_OK);
    CU_ASSERT_EQUAL(r.v, 99);
    teardown_basic();
}

static void t_raised_failed_nomethod(void)
{
    setup_basic(1);
    result r1 = {0}, r2 = {0}, r3 = {0}, r4 = {0};
    ember_ref *root = ember_node_root(F.node[0]);
    ember_call_start(root, &calc_svc, M_BOOM, NULL, NULL, done_i64, NULL, &r1, NULL);
    ember_call_start(root, &calc_svc, M_FAIL, NULL, NULL, done_i64, NULL, &r2, NULL);
    ember_call_start(root, &calc_svc, 999, NULL, NULL, done_i64, NULL, &r3, NULL);
    ember_call_raw(root, CALC_ID, 998, NULL, 0, raw_done, &r4, NULL);
    /* Method id 0 names no method of a service that is served. */
    result r5 = {0};
    ember_call_raw(root, CALC_ID, 0, NULL, 0, raw_done, &r5, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &r4, 2000));
    CU_ASSERT_TRUE(run_until(F.base, got, &r5, 2000));
    CU_ASSERT_EQUAL(r5.st, EMBER_NO_METHOD);
    CU_ASSERT_STRING_EQUAL(r5.msg, "no method 0 in test.Calc");
    CU_ASSERT_EQUAL(r1.n, 1);
    CU_ASSERT_EQUAL(r1.st, EMBER_RAISED);
    CU_ASSERT_EQUAL(r1.error_id, BOOM_ID);
    CU_ASSERT_STRING_EQUAL(r1.err, "kaboom");
    CU_ASSERT_EQUAL(r2.st, EMBER_FAILED);
    CU_ASSERT_STRING_EQUAL(r2.msg, "no luck 42");
    CU_ASSERT_EQUAL(r3.st, EMBER_NO_METHOD);
    CU_ASSERT_TRUE(strstr(r3.msg, "999") != NULL);
    CU_ASSERT_EQUAL(r4.st, EMBER_NO_METHOD);
    /* an unknown method does not cost the connection */
    CU_ASSERT_EQUAL(ember_node_state_get(F.node[0]), EMBER_NODE_REGISTERED);
    teardown_basic();
}

static void raw_fallback(ember_call *c, uint32_t sid, uint32_t mid,
                         const void *p, size_t len, void *ud)
{
    (void)sid;
    (void)ud;
    (void)p;
    int64_t v = (int64_t)mid * 1000 + (int64_t)len;
    uint8_t buf[16];
    ember_enc e;
    ember_enc_init_fixed(&e, buf, sizeof buf);
    enc_i64(&e, &v);
    ember_call_reply_raw(c, buf, ember_enc_len(&e));
}

static void t_raw_fallback(void)
{
    setup_basic(1);
    /* The gate pattern: the node forwards ids it does not know. */
    CU_ASSERT_EQUAL(ember_exports_add_raw(ember_node_exports(F.node[0]), 0, 0,
                                          raw_fallback, NULL), 0);
    CU_ASSERT_EQUAL(ember_exports_add_raw(ember_node_exports(F.node[0]), CALC_ID, M_ADD,
                                          raw_fallback, NULL), -1); /* taken */
    result r = {0};
    ember_call_raw(ember_child_ref(child("n0")), CALC_ID, 4242, "abc", 3, raw_done, &r, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &r, 2000));
    CU_ASSERT_EQUAL(r.st, EMBER_OK);
    CU_ASSERT_EQUAL(r.v, 4242003);
    teardown_basic();
}

static ember_ref *got_ref;

static void done_ref(const ember_outcome *o, ember_dec *reply, ember_fn cb, void *ud)
{
    result *r = ud;
    uint32_t tag = 0;
    unsigned wt = 0;
    (void)cb;
    r->n++;
    r->st = o->status;
    snprintf(r->msg, sizeof r->msg, "%s", o->message ? o->message : "");
    if (o->status == EMBER_OK && reply)
        while (ember_dec_field(reply, &tag, &wt) == 1) {
            ember_ref *x = NULL;
            if (tag == 1 && ember_dec_ref(reply, wt, &x) == 0)
                got_ref = ember_ref_retain(x); /* keep it past the callback */
            else
                ember_dec_skip(reply, wt);
        }
}

/* ---- the gate pattern: a raw fallback forwarding to its root ---- */

static struct {
    uint32_t sid, mid;
    bool oneway;
    int seen;
    ember_status fail_as;  /* not EMBER_OK: answer with ember_call_fail_status */
    uint32_t timeout_ms;   /* of the forwarded calls (0: the default) */
    bool defer;            /* keep the call and a copy of its payload */
    ember_call *held;
    uint8_t buf[256];
    size_t len;
} GW;

/* Forwards whatever it is called with, as it came, to its root; refuses
 * test.Obs itself. */
static void gw_forward(ember_call *c, uint32_t sid, uint32_t mid, const void *p,
                       size_t len, void *ud)
{
    ember_node *gw = ud;
    GW.sid = sid;
    GW.mid = mid;
    GW.oneway = ember_call_oneway(c);
    GW.seen++;
    CU_ASSERT_EQUAL(ember_call_service(c), sid);
    CU_ASSERT_EQUAL(ember_call_method(c), mid);
    ember_callopts o = {GW.timeout_ms};
    if (GW.defer && len <= sizeof GW.buf) {
        GW.held = c; /* forwarded later, from the loop */
        memcpy(GW.buf, p, len);
        GW.len = len;
    } else if (GW.fail_as != EMBER_OK)
        ember_call_fail_status(c, GW.fail_as, "as %s", ember_status_name(GW.fail_as));
    else if (sid == OBS_ID)
        ember_call_fail_status(c, EMBER_NO_METHOD, "gate: no route for %08x", sid);
    else
        CU_ASSERT_EQUAL(ember_call_forward(c, ember_node_root(gw), sid, mid, p, len, &o), 0);
}

static bool gw_holds(void *ud)
{
    (void)ud;
    return GW.held != NULL;
}

/* Calls through the gate and checks what it saw. */
static void via_gate(const ember_service_desc *svc, uint32_t mid, const args2 *a,
                     result *r)
{
    memset(r, 0, sizeof *r);
    ember_call_start(ember_child_ref(child("gw")), svc, mid, a ? enc_args : NULL, a,
                     done_i64, NULL, r, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, r, 2000));
    CU_ASSERT_EQUAL(r->n, 1);
    CU_ASSERT_EQUAL(GW.sid, svc->id);
    CU_ASSERT_EQUAL(GW.mid, mid);
    CU_ASSERT_FALSE(GW.oneway);
}

static void t_raw_gate(void)
{
    setup_basic(0);
    ember_node_config cfg;
    ember_node_config_default(&cfg);
    cfg.on_state = on_state;
    ember_node *gw = ember_node_new(F.base, "gw", &cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(gw);
    F.node[F.nn++] = gw;
    CU_ASSERT_EQUAL(ember_exports_add_raw(ember_node_exports(gw), 0, 0, gw_forward, gw), 0);
    CU_ASSERT_EQUAL(ember_node_connect(gw, F.addr), 0);
    CU_ASSERT_TRUE_FATAL(run_until(F.base, all_registered, NULL, 3000));
    memset(&GW, 0, sizeof GW);

    result r;
    args2 a = {2, 40};
    via_gate(&calc_svc, M_ADD, &a, &r); /* a reply */
    CU_ASSERT_EQUAL(r.st, EMBER_OK);
    CU_ASSERT_EQUAL(r.v, 42);
    via_gate(&calc_svc, M_BOOM, NULL, &r); /* a typed error, passed through */
    CU_ASSERT_EQUAL(r.st, EMBER_RAISED);
    CU_ASSERT_EQUAL(r.error_id, BOOM_ID);
    CU_ASSERT_STRING_EQUAL(r.err, "kaboom");
    via_gate(&calc_svc, M_FAIL, NULL, &r); /* a failure */
    CU_ASSERT_EQUAL(r.st, EMBER_FAILED);
    CU_ASSERT_STRING_EQUAL(r.msg, "no luck 42");
    via_gate(&calc_svc, 999, NULL, &r); /* the root has no such method */
    CU_ASSERT_EQUAL(r.st, EMBER_NO_METHOD);
    CU_ASSERT_STRING_EQUAL(r.msg, "no method 999 in test.Calc");
    via_gate(&gate_svc, M_GATE_UP, &a, &r); /* nor such a service */
    CU_ASSERT_EQUAL(r.st, EMBER_NO_METHOD);
    CU_ASSERT_STRING_EQUAL(r.msg, "object 0 does not serve test.Gate");
    via_gate(&obs_svc, M_PING, &a, &r); /* the gate's own NO_METHOD */
    CU_ASSERT_EQUAL(r.st, EMBER_NO_METHOD);
    CU_ASSERT_STRING_EQUAL(r.msg, "gate: no route for 0b500002");
    CU_ASSERT_EQUAL(GW.seen, 6);

    /* A oneway: the gate learns it is one and forwards it as one. */
    args2 n = {7, 0};
    CU_ASSERT_EQUAL(ember_oneway_start(ember_child_ref(child("gw")), &calc_svc, M_NOTE,
                                       enc_args, &n), 0);
    int_at_least one_note = {&G.nnotes, 1};
    CU_ASSERT_TRUE(run_until(F.base, reached, &one_note, 2000));
    CU_ASSERT_TRUE(GW.oneway);
    CU_ASSERT_EQUAL(GW.mid, M_NOTE);
    CU_ASSERT_EQUAL(G.notes, 7);
    CU_ASSERT_EQUAL(ember_node_state_get(gw), EMBER_NODE_REGISTERED);

    /* A downstream timeout reaches the first caller as a failure. */
    GW.timeout_ms = 50;
    via_gate(&calc_svc, M_HANG, NULL, &r);
    CU_ASSERT_EQUAL(r.st, EMBER_FAILED);
    CU_ASSERT_STRING_EQUAL(r.msg, "call timed out");
    GW.timeout_ms = 0;
    CU_ASSERT_EQUAL_FATAL(G.nhung, 1);
    CU_ASSERT_TRUE(run_until(F.base, call_cancelled, G.hung[0], 1000));
    CU_ASSERT_EQUAL(ember_call_reply(G.hung[0], NULL, NULL), 0);
    G.nhung = 0;

    /* The first caller gives up: what the gate forwarded is cancelled too
     * (its CANCEL goes on), and the gate cannot forward a call twice. */
    memset(&r, 0, sizeof r);
    ember_handle hh = ember_call_start(ember_child_ref(child("gw")), &calc_svc, M_HANG, NULL,
                                       NULL, done_i64, NULL, &r, NULL);
    int_at_least one_hung = {&G.nhung, 1};
    CU_ASSERT_TRUE_FATAL(run_until(F.base, reached, &one_hung, 2000));
    CU_ASSERT_FALSE(ember_call_cancelled(G.hung[0]));
    CU_ASSERT_EQUAL(ember_cancel(ember_child_ref(child("gw")), hh), 0);
    CU_ASSERT_EQUAL(r.st, EMBER_CANCELLED);
    CU_ASSERT_TRUE(run_until(F.base, call_cancelled, G.hung[0], 1000));
    CU_ASSERT_EQUAL(ember_call_reply(G.hung[0], NULL, NULL), 0);
    G.nhung = 0;

    /* ember_call_fail_status: NO_METHOD, UNAVAILABLE and LIMIT go as they
     * are, LOST and SHUTDOWN (the endings a relay passes on) as
     * UNAVAILABLE, any other status as FAILED; the message goes as given. */
    static const struct { ember_status as, got; } fs[] = {
        {EMBER_FAILED, EMBER_FAILED},           {EMBER_NO_METHOD, EMBER_NO_METHOD},
        {EMBER_UNAVAILABLE, EMBER_UNAVAILABLE}, {EMBER_LIMIT, EMBER_LIMIT},
        {EMBER_LOST, EMBER_UNAVAILABLE},        {EMBER_SHUTDOWN, EMBER_UNAVAILABLE},
        {EMBER_TIMEOUT, EMBER_FAILED},          {EMBER_CANCELLED, EMBER_FAILED},
        {EMBER_RAISED, EMBER_FAILED},           {EMBER_PROTOCOL, EMBER_FAILED},
    };
    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++) {
        char want[64];
        GW.fail_as = fs[i].as;
        via_gate(&calc_svc, M_ADD, &a, &r);
        CU_ASSERT_EQUAL(r.st, fs[i].got);
        snprintf(want, sizeof want, "as %s", ember_status_name(fs[i].as));
        CU_ASSERT_STRING_EQUAL(r.msg, want);
    }
    GW.fail_as = EMBER_OK;
    CU_ASSERT_EQUAL(ember_node_state_get(gw), EMBER_NODE_REGISTERED);

    /* Refs are not copied: the caller's, in a call or a oneway, would
     * name objects of gw at the root (which would drop gw for them), and
     * the root's, in its answer, objects of gw at the caller. The call
     * fails, the oneway is dropped, the refs go back to their owners. */
    ember_ref *obs = ember_ref_local(&obs_svc, NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(obs);
    memset(&r, 0, sizeof r);
    ember_call_start(ember_child_ref(child("gw")), &calc_svc, M_WATCH, enc_ref, obs,
                     done_i64, NULL, &r, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &r, 2000));
    CU_ASSERT_EQUAL(r.st, EMBER_FAILED);
    CU_ASSERT_STRING_EQUAL(r.msg, "values holding refs: a raw forward does not pass them on");
    CU_ASSERT_EQUAL(ember_oneway_start(ember_child_ref(child("gw")), &calc_svc, M_WATCH,
                                       enc_ref, obs), 0);
    CU_ASSERT_TRUE(run_until(F.base, ref_rc_is_one, obs, 2000));
    G.give = ember_ref_local(&obs_svc, NULL, NULL);
    got_ref = NULL;
    result g = {0};
    ember_call_start(ember_child_ref(child("gw")), &calc_svc, M_GIVE, NULL, NULL, done_ref,
                     NULL, &g, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &g, 2000));
    CU_ASSERT_EQUAL(g.st, EMBER_FAILED);
    CU_ASSERT_STRING_EQUAL(g.msg, "values holding refs: a raw forward does not pass them on");
    CU_ASSERT_PTR_NULL(got_ref);
    CU_ASSERT_TRUE(run_until(F.base, ref_rc_is_one, G.give, 2000));
    CU_ASSERT_EQUAL(G.pings, 0);
    CU_ASSERT_EQUAL(F.lost[0], 0);
    via_gate(&calc_svc, M_ADD, &a, &r); /* gw and its link carry on */
    CU_ASSERT_EQUAL(r.v, 42);

    /* Forwarded later, from a copy of the payload: the refs went back
     * when the frame was handled, and copied they would name nothing of
     * gw's at the root. The call fails as it does in the handler. */
    GW.defer = true;
    for (int i = 0; i < 2; i++) {
        memset(&r, 0, sizeof r);
        GW.held = NULL;
        if (i == 0)
            ember_call_start(ember_child_ref(child("gw")), &calc_svc, M_WATCH, enc_ref,
                             obs, done_i64, NULL, &r, NULL);
        else
            ember_call_start(ember_child_ref(child("gw")), &calc_svc, M_ADD, enc_args,
                             &a, done_i64, NULL, &r, NULL);
        CU_ASSERT_TRUE_FATAL(run_until(F.base, gw_holds, NULL, 2000));
        CU_ASSERT_EQUAL(ember_call_forward(GW.held, ember_node_root(gw), GW.sid, GW.mid,
                                           GW.buf, GW.len, NULL), 0);
        CU_ASSERT_TRUE(run_until(F.base, got, &r, 2000));
        CU_ASSERT_EQUAL(r.n, 1);
        if (i == 0) {
            CU_ASSERT_EQUAL(r.st, EMBER_FAILED);
            CU_ASSERT_STRING_EQUAL(r.msg, "values holding refs: a raw forward does "
                                          "not pass them on");
            CU_ASSERT_TRUE(run_until(F.base, ref_rc_is_one, obs, 2000));
        } else {
            CU_ASSERT_EQUAL(r.st, EMBER_OK); /* one without refs goes on */
            CU_ASSERT_EQUAL(r.v, 42);
        }
    }
    GW.defer = false;
    CU_ASSERT_EQUAL(G.pings, 0);
    CU_ASSERT_EQUAL(F.lost[0], 0);
    CU_ASSERT_EQUAL(ember_node_state_get(gw), EMBER_NODE_REGISTERED);
    ember_ref_release(G.give);
    G.give = NULL;
    ember_ref_release(obs);
    teardown_basic();
}

static void t_timeout(void)
{
    setup_basic(1);
    result r = {0};
    ember_callopts o = {50};
    ember_call_start(ember_node_root(F.node[0]), &calc_svc, M_HANG, NULL, NULL, done_i64, NULL,
                     &r, &o);
    CU_ASSERT_TRUE(run_until(F.base, got, &r, 2000));
    CU_ASSERT_EQUAL(r.st, EMBER_TIMEOUT);
    CU_ASSERT_EQUAL_FATAL(G.nhung, 1);
    /* The peer was told (CANCEL); a late reply is harmless and ignored. */
    CU_ASSERT_TRUE(run_until(F.base, call_cancelled, G.hung[0], 1000));
    int64_t v = 1;
    CU_ASSERT_EQUAL(ember_call_reply(G.hung[0], enc_i64, &v), 0);
    run_for(F.base, 30); /* time for the late reply to arrive: it must be ignored */
    CU_ASSERT_EQUAL(r.n, 1);
    CU_ASSERT_EQUAL(ember_node_state_get(F.node[0]), EMBER_NODE_REGISTERED);
    teardown_basic();
}

static void t_cancel(void)
{
    setup_basic(1);
    result r = {0};
    ember_ref *root = ember_node_root(F.node[0]);
    ember_handle h = ember_call_start(root, &calc_svc, M_HANG, NULL, NULL, done_i64, NULL, &r, NULL);
    int_at_least one_hung = {&G.nhung, 1};
    CU_ASSERT_TRUE(run_until(F.base, reached, &one_hung, 2000));
    CU_ASSERT_EQUAL_FATAL(G.nhung, 1);
    CU_ASSERT_FALSE(ember_call_cancelled(G.hung[0]));
    CU_ASSERT_EQUAL(ember_cancel(root, h), 0);
    CU_ASSERT_EQUAL(r.n, 1); /* delivered before ember_cancel returns */
    CU_ASSERT_EQUAL(r.st, EMBER_CANCELLED);
    CU_ASSERT_EQUAL(ember_cancel(root, h), -1);
    CU_ASSERT_TRUE(run_until(F.base, call_cancelled, G.hung[0], 1000));
    CU_ASSERT_EQUAL(ember_call_fail(G.hung[0], "too late"), 0);
    run_for(F.base, 20); /* time for the late failure to arrive: it must be ignored */
    CU_ASSERT_EQUAL(r.n, 1);
    teardown_basic();
}

static void t_oneway(void)
{
    setup_basic(1);
    for (int i = 1; i <= 3; i++) {
        args2 a = {i, 0};
        CU_ASSERT_EQUAL(ember_oneway_start(ember_node_root(F.node[0]), &calc_svc, M_NOTE,
                                           enc_args, &a), 0);
    }
    uint8_t buf[8] = {0x08, 0x08}; /* { 1: 4 } zigzag */
    CU_ASSERT_EQUAL(ember_oneway_raw(ember_child_ref(child("n0")), CALC_ID, M_NOTE, buf, 2), 0);
    int_at_least four_notes = {&G.nnotes, 4};
    CU_ASSERT_TRUE(run_until(F.base, reached, &four_notes, 2000));
    run_for(F.base, 20); /* no note is delivered twice */
    CU_ASSERT_EQUAL(G.nnotes, 4);
    CU_ASSERT_TRUE(G.notes == 1234 || G.notes == 4123); /* per-direction order */
    teardown_basic();
}

/* The frame's kind against the IDL's: a ONEWAY frame to a two-way method
 * (raw callers and hostile peers can send one) is a call whose answer is
 * discarded, kept until its handler answers it, so a handler that answers
 * later cannot answer whatever call reused it; a CALL to a oneway method is
 * answered at once, not left in flight at the callee for ever. */
static void t_kind_mismatch(void)
{
    setup_basic(1);
    ember_ref *root = ember_node_root(F.node[0]);
    CU_ASSERT_EQUAL(ember_oneway_raw(root, CALC_ID, M_HANG, NULL, 0), 0);
    int_at_least one_hung = {&G.nhung, 1};
    CU_ASSERT_TRUE_FATAL(run_until(F.base, reached, &one_hung, 2000));
    result later = {0};
    args2 a = {1, 2};
    ember_call_start(root, &calc_svc, M_LATER, enc_args, &a, done_i64, NULL, &later, NULL);
    CU_ASSERT_TRUE_FATAL(run_until(F.base, later_held, NULL, 2000));
    CU_ASSERT_PTR_NOT_EQUAL(G.later, G.hung[0]); /* the kept oneway is alive */
    CU_ASSERT_TRUE(ember_call_oneway(G.hung[0]));
    int64_t v = 7;
    CU_ASSERT_EQUAL(ember_call_reply(G.hung[0], enc_i64, &v), 0); /* discarded */
    run_for(F.base, 30);
    CU_ASSERT_EQUAL(later.n, 0); /* nobody else's call was answered */
    v = 5;
    CU_ASSERT_EQUAL(ember_call_reply(G.later, enc_i64, &v), 0);
    CU_ASSERT_TRUE(run_until(F.base, got, &later, 2000));
    CU_ASSERT_EQUAL(later.n, 1);
    CU_ASSERT_EQUAL(later.st, EMBER_OK);
    CU_ASSERT_EQUAL(later.v, 5);

    result r = {0};
    uint8_t buf[2] = {0x08, 0x12}; /* { 1: 9 } zigzag */
    ember_call_raw(root, CALC_ID, M_NOTE, buf, 2, raw_done, &r, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &r, 2000));
    CU_ASSERT_EQUAL(r.n, 1);
    CU_ASSERT_EQUAL(r.st, EMBER_OK);
    CU_ASSERT_EQUAL(G.nnotes, 1);
    CU_ASSERT_EQUAL(G.notes, 9);
    teardown_basic();
}

/* Whether the per-method metrics of a root or node name service
 * (docs/runtime.md, "Metrics": the endpoint's exports only). */
static bool metrics_name(ember_root *r, ember_node *n, const char *service)
{
    static char text[1 << 17];
    ember_metrics_src s = {r, n, NULL};
    long len = ember_metrics_render(&s, 1, text, sizeof text);
    CU_ASSERT_TRUE(len > 0 && (size_t)len < sizeof text);
    char l[96];
    snprintf(l, sizeof l, "service=\"%s\"", service);
    return strstr(text, l) != NULL;
}

static void t_refs(void)
{
    setup_basic(1);
    ember_ref *obs = ember_ref_local(&obs_svc, NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(obs);
    result r = {0};
    ember_call_start(ember_node_root(F.node[0]), &calc_svc, M_WATCH, enc_ref, obs, done_i64,
                     NULL, &r, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &G.pong, 2000));
    CU_ASSERT_TRUE(run_until(F.base, got, &r, 2000));
    CU_ASSERT_EQUAL(r.st, EMBER_OK);
    CU_ASSERT_EQUAL(G.pings, 1);
    CU_ASSERT_EQUAL(G.pong.st, EMBER_OK);
    CU_ASSERT_EQUAL(G.pong.v, 42);
    /* A local object's calls are not in the node's per-method metrics. */
    CU_ASSERT_FALSE(metrics_name(NULL, F.node[0], "test.Obs"));
    CU_ASSERT_TRUE(metrics_name(F.root, NULL, "test.Calc"));
    /* The root released its ref: the DECREF drops our export (rc back to 1). */
    CU_ASSERT_TRUE(run_until(F.base, ref_rc_is_one, obs, 2000));
    CU_ASSERT_EQUAL(obs->rc, 1);
    CU_ASSERT_TRUE(ember_ref_alive(obs));
    /* Calling our own local object through its ref is refused, from the loop. */
    result r2 = {0};
    CU_ASSERT_EQUAL(ember_call_start(obs, &obs_svc, M_PING, NULL, NULL, done_i64, NULL, &r2,
                                     NULL), 0);
    CU_ASSERT_EQUAL(r2.n, 0);
    CU_ASSERT_TRUE(run_until(F.base, got, &r2, 1000));
    CU_ASSERT_EQUAL(r2.st, EMBER_UNAVAILABLE);
    ember_ref_release(obs);
    teardown_basic();
}

static bool skip_n1(ember_child *c, void *ud)
{
    (void)ud;
    return strcmp(ember_child_name(c), "n1") != 0;
}

static result bres[MAXN];
static int bcount;

static void done_bcast(const ember_outcome *o, ember_dec *reply, ember_fn cb, void *ud)
{
    (void)ud;
    const char *nm = o->child ? ember_child_name(o->child) : "";
    if (nm[0] == 'n' && nm[1] >= '0' && nm[1] <= '7' && nm[2] == 0)
        done_i64(o, reply, cb, &bres[nm[1] - '0']);
    bcount++;
}

static void t_broadcast(void)
{
    setup_basic(3);
    memset(bres, 0, sizeof bres);
    bcount = 0;
    args2 a = {20, 1};
    int n = ember_root_broadcast(F.root, skip_n1, NULL, &calc_svc, M_ADD, enc_args, &a,
                                 done_bcast, NULL, NULL, NULL);
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT_TRUE(run_until(F.base, got, &bres[2], 2000));
    CU_ASSERT_TRUE(run_until(F.base, got, &bres[0], 2000));
    run_for(F.base, 20); /* the skipped n1 is not called, nobody twice */
    CU_ASSERT_EQUAL(bcount, 2);
    CU_ASSERT_EQUAL(bres[0].n, 1);
    CU_ASSERT_EQUAL(bres[1].n, 0);
    CU_ASSERT_EQUAL(bres[2].n, 1);
    CU_ASSERT_EQUAL(bres[0].v, 21);
    CU_ASSERT_PTR_EQUAL(bres[2].child, child("n2"));
    /* all children */
    bcount = 0;
    CU_ASSERT_EQUAL(ember_root_broadcast(F.root, NULL, NULL, &calc_svc, M_ADD, enc_args, &a,
                                         done_bcast, NULL, NULL, NULL), 3);
    int_at_least three = {&bcount, 3};
    CU_ASSERT_TRUE(run_until(F.base, reached, &three, 2000));
    run_for(F.base, 20); /* and no child answers twice */
    CU_ASSERT_EQUAL(bcount, 3);
    teardown_basic();
}

static bool node_lost0(void *ud)
{
    (void)ud;
    return F.lost[0] > 0;
}

static void t_kill_pending(void)
{
    setup_basic(1);
    result up[2] = {{0}}, down[2] = {{0}};
    ember_ref *root = ember_node_root(F.node[0]);
    ember_ref *cr = ember_child_ref(child("n0"));
    for (int i = 0; i < 2; i++) {
        ember_call_start(root, &calc_svc, M_HANG, NULL, NULL, done_i64, NULL, &up[i], NULL);
        ember_call_start(cr, &calc_svc, M_HANG, NULL, NULL, done_i64, NULL, &down[i], NULL);
    }
    int_at_least four_hung = {&G.nhung, 4};
    CU_ASSERT_TRUE(run_until(F.base, reached, &four_hung, 2000));
    CU_ASSERT_EQUAL_FATAL(G.nhung, 4);
    ember_root_drop(F.root, child("n0"), "test drops the child");
    /* The root's calls end at once; the node's when it notices. */
    CU_ASSERT_EQUAL(down[0].n, 1);
    CU_ASSERT_EQUAL(down[1].n, 1);
    CU_ASSERT_EQUAL(down[0].st, EMBER_LOST);
    CU_ASSERT_EQUAL(G.leaves, 1);
    CU_ASSERT_STRING_EQUAL(G.leave_reason, "test drops the child");
    CU_ASSERT_TRUE(run_until(F.base, node_lost0, NULL, 2000));
    CU_ASSERT_EQUAL(up[0].n, 1);
    CU_ASSERT_EQUAL(up[1].n, 1);
    CU_ASSERT_EQUAL(up[1].st, EMBER_LOST);
    /* Served calls are orphans now: answering them is a harmless no-op. */
    for (int i = 0; i < G.nhung; i++) {
        CU_ASSERT_TRUE(ember_call_cancelled(G.hung[i]));
        int64_t v = 5;
        CU_ASSERT_EQUAL(ember_call_reply(G.hung[i], enc_i64, &v), 0);
    }
    /* The node comes back by itself. */
    CU_ASSERT_TRUE(run_until(F.base, all_registered, NULL, 3000));
    CU_ASSERT_EQUAL(G.joins, 2);
    run_for(F.base, 20); /* all four ended above: none ends twice */
    CU_ASSERT_EQUAL(up[0].n + up[1].n + down[0].n + down[1].n, 4);
    teardown_basic();
}

static void t_reconnect_after_root_restart(void)
{
    setup_basic(1);
    result r = {0}, served = {0};
    ember_call_start(ember_node_root(F.node[0]), &calc_svc, M_HANG, NULL, NULL, done_i64, NULL,
                     &r, NULL);
    ember_call_start(ember_child_ref(child("n0")), &calc_svc, M_HANG, NULL, NULL, done_i64,
                     NULL, &served, NULL);
    int_at_least two_hung = {&G.nhung, 2};
    CU_ASSERT_TRUE(run_until(F.base, reached, &two_hung, 2000));
    int port = F.port;
    ember_root_free(F.root);
    F.root = NULL;
    CU_ASSERT_EQUAL(served.n, 1);
    CU_ASSERT_EQUAL(served.st, EMBER_SHUTDOWN);
    CU_ASSERT_EQUAL(G.leaves, 1); /* on_leave ran for the child */
    CU_ASSERT_TRUE(run_until(F.base, node_lost0, NULL, 2000));
    CU_ASSERT_EQUAL(r.n, 1);
    CU_ASSERT_EQUAL(r.st, EMBER_LOST);
    /* Orphans of the freed root: answering is still safe. */
    for (int i = 0; i < G.nhung; i++)
        ember_call_fail(G.hung[i], "late");
    /* While down, calls end with UNAVAILABLE from the loop. */
    result u = {0};
    ember_call_start(ember_node_root(F.node[0]), &calc_svc, M_ADD, NULL, NULL, done_i64, NULL,
                     &u, NULL);
    CU_ASSERT_EQUAL(u.n, 0);
    CU_ASSERT_TRUE(run_until(F.base, got, &u, 1000));
    CU_ASSERT_EQUAL(u.st, EMBER_UNAVAILABLE);
    F.root = make_root(NULL, port);
    CU_ASSERT_TRUE(run_until(F.base, all_registered, NULL, 3000));
    result r2 = {0};
    args2 a = {1, 1};
    ember_call_start(ember_node_root(F.node[0]), &calc_svc, M_ADD, enc_args, &a, done_i64,
                     NULL, &r2, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &r2, 2000));
    CU_ASSERT_EQUAL(r2.v, 2);
    CU_ASSERT_EQUAL(r.n, 1);
    teardown_basic();
}

static bool lost1(void *ud)
{
    (void)ud;
    return F.lost[1] > 0;
}

static void t_dup_alive(void)
{
    setup_basic(1);
    /* A second "n0" while the first is alive is refused, and told why. */
    make_node("n0", NULL);
    CU_ASSERT_TRUE(run_until(F.base, lost1, NULL, 2000));
    CU_ASSERT_TRUE(strstr(F.last_state_reason[1], "name in use") != NULL);
    CU_ASSERT_EQUAL(ember_root_child_count(F.root), 1);
    CU_ASSERT_EQUAL(ember_node_state_get(F.node[0]), EMBER_NODE_REGISTERED);
    CU_ASSERT_NOT_EQUAL(ember_node_state_get(F.node[1]), EMBER_NODE_REGISTERED);
    teardown_basic();
}

/* A hand-rolled peer that registers and then says nothing (a hung process). */
static int raw_register(int port, const char *name)
{
    int fd = loopback_connect(port);
    if (fd < 0)
        return -1;
    if (name) {
        uint8_t buf[128];
        ember_enc e;
        ember_enc_init_fixed(&e, buf, sizeof buf);
        e.p += 4;
        *e.p++ = EMBER_FR_REGISTER;
        ember_enc_uint(&e, 1, EMBER_PROTOCOL_VERSION);
        ember_enc_string(&e, 2, name);
        ember_enc_uint(&e, 99, 7); /* an unknown field is skipped */
        uint32_t len = (uint32_t)ember_enc_len(&e) - 4;
        memcpy(buf, &len, 4); /* little endian host assumed by the test */
        if (write(fd, buf, len + 4) != (ssize_t)(len + 4)) {
            close(fd);
            return -1;
        }
    }
    return fd;
}

static bool one_child(void *ud)
{
    (void)ud;
    return ember_root_child_count(F.root) == 1;
}

static bool one_leave(void *ud)
{
    (void)ud;
    return G.leaves >= 1;
}

static void t_dup_dead(void)
{
    fresh_fixture();
    ember_limits lim;
    ember_limits_default(&lim);
    lim.heartbeat_ms = 100;
    lim.dead_after_ms = 10000; /* not yet declared dead: replaced instead */
    F.root = make_root(&lim, 0);
    int fd = raw_register(F.port, "n0");
    CU_ASSERT_TRUE_FATAL(fd >= 0);
    CU_ASSERT_TRUE(run_until(F.base, one_child, NULL, 2000));
    /* The newcomer is refused and retries until the old "n0" has left the
     * root's PING unanswered for a heartbeat interval. */
    make_node("n0", NULL);
    CU_ASSERT_TRUE(run_until(F.base, all_registered, NULL, 3000));
    CU_ASSERT_EQUAL(G.leaves, 1);
    CU_ASSERT_TRUE(strstr(G.leave_reason, "replaced") != NULL);
    CU_ASSERT_EQUAL(ember_root_child_count(F.root), 1);
    close(fd);
    teardown_basic();
}

static void t_dup_idle_alive(void)
{
    fresh_fixture();
    ember_limits lim;
    ember_limits_default(&lim);
    lim.heartbeat_ms = 200;
    lim.dead_after_ms = 10000;
    F.root = make_root(&lim, 0);
    make_node("n0", &lim);
    CU_ASSERT_TRUE_FATAL(run_until(F.base, all_registered, NULL, 3000));
    /* An idle but live "n0": nothing is called, it only answers PINGs. A
     * newcomer keeps trying the name (backoff 10..100 ms) through several
     * heartbeat intervals, often while the root waits for a PONG; time is
     * the point. */
    make_node("n0", &lim);
    run_for(F.base, 1000);
    CU_ASSERT_EQUAL(G.leaves, 0);
    CU_ASSERT_EQUAL(ember_node_state_get(F.node[0]), EMBER_NODE_REGISTERED);
    CU_ASSERT_NOT_EQUAL(ember_node_state_get(F.node[1]), EMBER_NODE_REGISTERED);
    CU_ASSERT_TRUE(F.lost[1] >= 2);
    CU_ASSERT_TRUE(strstr(F.last_state_reason[1], "name in use") != NULL);
    teardown_basic();
}

/* A root that pings every 50 ms and drops a peer silent for 200 ms. */
static void heartbeat_root(ember_limits *lim)
{
    fresh_fixture();
    ember_limits_default(lim);
    lim->heartbeat_ms = 50;
    lim->dead_after_ms = 200;
    F.root = make_root(lim, 0);
}

/* The silent raw peer on fd was dropped, the node "alive" (F.node[0])
 * stays through several more dead_after_ms (time is the point); then the
 * teardown. */
static void only_silent_dropped(int fd)
{
    CU_ASSERT_TRUE(strstr(G.leave_reason, "silent") != NULL);
    run_for(F.base, 300);
    CU_ASSERT_EQUAL(G.leaves, 1);
    CU_ASSERT_PTR_NOT_NULL(child("alive"));
    CU_ASSERT_PTR_NULL(child("silent"));
    CU_ASSERT_EQUAL(ember_node_state_get(F.node[0]), EMBER_NODE_REGISTERED);
    close(fd);
    teardown_basic();
}

static void t_heartbeat_dead(void)
{
    ember_limits lim;
    heartbeat_root(&lim);
    /* A real node answers pings and stays; the silent one is declared dead. */
    make_node("alive", NULL);
    int fd = raw_register(F.port, "silent");
    CU_ASSERT_TRUE_FATAL(fd >= 0);
    CU_ASSERT_TRUE(run_until(F.base, one_leave, NULL, 3000));
    only_silent_dropped(fd);
}

/* t_sweep_survives_drop: when "x" leaves (silent), the application drops
 * "y", the next connection the heartbeat sweep would look at; a timer due
 * at once, which runs right after the sweep, notes whether "z", silent as
 * long as "x", went in the same sweep. */
static int z_left_with_x = -1;
static void note_z(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    z_left_with_x = child("z") == NULL;
}
static bool z_noted(void *ud)
{
    (void)ud;
    return z_left_with_x >= 0;
}
static void drop_y_after_x(ember_child *c)
{
    if (strcmp(ember_child_name(c), "x") != 0)
        return;
    ember_root_drop(F.root, child("y"), "dropped when x left");
    struct timeval now = {0, 0};
    CU_ASSERT_EQUAL(event_base_once(F.base, -1, EV_TIMEOUT, note_z, NULL, &now), 0);
}

static void t_sweep_survives_drop(void)
{
    fresh_fixture();
    ember_limits lim;
    ember_limits_default(&lim);
    lim.heartbeat_ms = 50;
    lim.dead_after_ms = 10000; /* nobody is dead of silence but by the test */
    F.root = make_root(&lim, 0);
    /* Connections are walked newest first: x, then y, then z. */
    int fd[3];
    const char *names[3] = {"z", "y", "x"};
    for (int i = 0; i < 3; i++) {
        fd[i] = raw_register(F.port, names[i]);
        CU_ASSERT_TRUE_FATAL(fd[i] >= 0);
        want_children = (size_t)i + 1;
        CU_ASSERT_TRUE_FATAL(run_until(F.base, n_children, NULL, 3000));
    }
    /* x and z have been silent for 20 s, as the next sweep sees it. */
    for (ember_conn *c = ember_root_ep(F.root)->conns; c; c = c->next)
        if (strcmp(c->name, "y") != 0)
            c->last_rx_ms = ember_now_ms() - 20000;
    leave_hook = drop_y_after_x;
    CU_ASSERT_TRUE(run_until(F.base, one_leave, NULL, 3000));
    CU_ASSERT_TRUE(run_until(F.base, z_noted, NULL, 3000));
    leave_hook = NULL;
    CU_ASSERT_EQUAL(z_left_with_x, 1);
    CU_ASSERT_EQUAL(G.leaves, 3);
    CU_ASSERT_EQUAL(ember_root_child_count(F.root), 0);
    for (int i = 0; i < 3; i++)
        close(fd[i]);
    teardown_basic();
}

/* Keeps the loop for *(int *)arg ms: a callback that runs long, or a
 * process held off the CPU, as far as the endpoints can tell. */
static void hog_loop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    uint64_t until = ember_now_ms() + (uint64_t)*(int *)arg;
    while (ember_now_ms() < until)
        ;
}

static void t_stalled_loop_keeps_peers(void)
{
    ember_limits lim;
    heartbeat_root(&lim);
    make_node("alive", NULL);
    CU_ASSERT_TRUE_FATAL(run_until(F.base, all_registered, NULL, 3000));
    int fd = raw_register(F.port, "silent");
    CU_ASSERT_TRUE_FATAL(fd >= 0);
    want_children = 2;
    CU_ASSERT_TRUE_FATAL(run_until(F.base, n_children, NULL, 3000));
    /* The loop stops for twice dead_after_ms: the root and the node hear
     * nothing meanwhile, yet neither may blame the other for it... */
    int ms = 2 * (int)lim.dead_after_ms;
    struct timeval now = {0, 0};
    CU_ASSERT_EQUAL_FATAL(event_base_once(F.base, -1, EV_TIMEOUT, hog_loop, &ms, &now), 0);
    CU_ASSERT_TRUE(run_until(F.base, one_leave, NULL, 3000));
    /* ...while the silent peer is still found, by the loop's own time. */
    only_silent_dropped(fd);
}

static bool fd_closed(void *ud)
{
    int fd = *(int *)ud;
    uint8_t buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* Outcome of a root -> child call pending while the child misbehaves. */
static struct { int n; ember_status st; char msg[160]; } PV;
static void pv_done(const ember_outcome *o, const void *p, size_t n, void *ud)
{
    (void)p;
    (void)n;
    (void)ud;
    PV.n++;
    PV.st = o->status;
    snprintf(PV.msg, sizeof PV.msg, "%s", o->message ? o->message : "");
}
static bool pv_got(void *ud) { (void)ud; return PV.n > 0; }

static void t_protocol_violations(void)
{
    fresh_fixture();
    ember_limits lim;
    ember_limits_default(&lim);
    lim.max_frame = 1024;
    lim.handshake_ms = 100;
    F.root = make_root(&lim, 0);
    /* CALL before REGISTER */
    int fd = raw_register(F.port, NULL);
    static const uint8_t call[] = {8, 0, 0, 0, EMBER_FR_CALL, 1, 0, 0xc0, 0xca, 1, 0, 1};
    CU_ASSERT_EQUAL(write(fd, call, sizeof call), (ssize_t)sizeof call);
    CU_ASSERT_TRUE(run_until(F.base, fd_closed, &fd, 2000));
    close(fd);
    /* A frame over max_frame */
    fd = raw_register(F.port, NULL);
    static const uint8_t big[] = {0, 0, 1, 0, EMBER_FR_PING};
    CU_ASSERT_EQUAL(write(fd, big, sizeof big), (ssize_t)sizeof big);
    CU_ASSERT_TRUE(run_until(F.base, fd_closed, &fd, 2000));
    close(fd);
    /* An unknown frame kind */
    fd = raw_register(F.port, NULL);
    static const uint8_t odd[] = {1, 0, 0, 0, 200};
    CU_ASSERT_EQUAL(write(fd, odd, sizeof odd), (ssize_t)sizeof odd);
    CU_ASSERT_TRUE(run_until(F.base, fd_closed, &fd, 2000));
    close(fd);
    /* Silence during the handshake */
    fd = raw_register(F.port, NULL);
    CU_ASSERT_TRUE(run_until(F.base, fd_closed, &fd, 2000));
    close(fd);
    /* A registered peer answering a call id never issued */
    fd = raw_register(F.port, "liar");
    CU_ASSERT_TRUE(run_until(F.base, one_child, NULL, 2000));
    /* ... while a call of the root's is pending on it: that call ends
     * EMBER_LOST (not EMBER_PROTOCOL: its reply never came), exactly once. */
    memset(&PV, 0, sizeof PV);
    ember_child *liar = ember_root_child_by_name(F.root, "liar");
    CU_ASSERT_PTR_NOT_NULL_FATAL(liar);
    CU_ASSERT_NOT_EQUAL(ember_call_raw(ember_child_ref(liar), CALC_ID, 7, "x", 1, pv_done,
                                       NULL, NULL), 0);
    static const uint8_t reply[] = {3, 0, 0, 0, EMBER_FR_REPLY, 0x80, 0x01};
    CU_ASSERT_EQUAL(write(fd, reply, sizeof reply), (ssize_t)sizeof reply);
    CU_ASSERT_TRUE(run_until(F.base, fd_closed, &fd, 2000));
    CU_ASSERT_EQUAL(G.leaves, 1);
    CU_ASSERT_TRUE(run_until(F.base, pv_got, NULL, 2000));
    run_for(F.base, 20); /* exactly once: no late second outcome */
    CU_ASSERT_EQUAL(PV.n, 1);
    CU_ASSERT_EQUAL(PV.st, EMBER_LOST);
    CU_ASSERT_STRING_EQUAL(PV.msg, "connection lost: peer broke the protocol: "
                                   "answer to a call id never issued");
    close(fd);
    teardown_basic();
}

static void t_limits(void)
{
    fresh_fixture();
    F.root = make_root(NULL, 0);
    ember_limits lim;
    ember_limits_default(&lim);
    lim.max_outstanding = 2;
    make_node("n0", &lim);
    CU_ASSERT_TRUE_FATAL(run_until(F.base, all_registered, NULL, 3000));
    result r[3] = {{0}};
    for (int i = 0; i < 3; i++)
        ember_call_start(ember_node_root(F.node[0]), &calc_svc, M_HANG, NULL, NULL, done_i64,
                         NULL, &r[i], NULL);
    CU_ASSERT_EQUAL(r[2].n, 0);
    CU_ASSERT_TRUE(run_until(F.base, got, &r[2], 1000));
    CU_ASSERT_EQUAL(r[2].st, EMBER_LIMIT);
    CU_ASSERT_EQUAL(r[0].n + r[1].n, 0);
    teardown_basic();
    CU_ASSERT_EQUAL(r[0].n, 1);
    CU_ASSERT_EQUAL(r[0].st, EMBER_SHUTDOWN);
}

static int stopped;
static void on_root_stopped(ember_root *r, void *ud)
{
    (void)ud;
    stopped++;
    /* Freeing the root from its shutdown callback is allowed. */
    if (r == F.root) {
        ember_root_free(r);
        F.root = NULL;
    }
}
static void on_node_closed(ember_node *n, void *ud)
{
    (void)n;
    (void)ud;
    stopped++;
}
static bool stopped_is(void *ud)
{
    return stopped >= *(int *)ud;
}

static void t_graceful(void)
{
    setup_basic(2);
    stopped = 0;
    /* Node close: goodbye, the root sees it leave. */
    ember_node_close(F.node[1], on_node_closed, NULL);
    int one = 1, two = 2;
    CU_ASSERT_TRUE(run_until(F.base, stopped_is, &one, 2000));
    CU_ASSERT_EQUAL(ember_node_state_get(F.node[1]), EMBER_NODE_CLOSED);
    CU_ASSERT_TRUE(run_until(F.base, one_leave, NULL, 2000));
    CU_ASSERT_TRUE(strstr(G.leave_reason, "goodbye") != NULL);
    /* Root shutdown waits for the call in flight. */
    result r = {0}, refused = {0};
    args2 a = {1, 0};
    ember_call_start(ember_node_root(F.node[0]), &calc_svc, M_LATER, enc_args, &a, done_i64,
                     NULL, &r, NULL);
    CU_ASSERT_TRUE(run_until(F.base, later_held, NULL, 2000));
    CU_ASSERT_PTR_NOT_NULL_FATAL(G.later);
    ember_root_shutdown(F.root, on_root_stopped, NULL);
    ember_call_start(ember_child_ref(child("n0")), &calc_svc, M_ADD, enc_args, &a, done_i64,
                     NULL, &refused, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &refused, 2000));
    /* Time must pass: the shutdown must not complete while G.later is open. */
    run_for(F.base, 30);
    CU_ASSERT_EQUAL(stopped, 1);
    CU_ASSERT_EQUAL(refused.st, EMBER_UNAVAILABLE);
    /* The child's calls reaching the stopping root are refused too. */
    result child_refused = {0};
    ember_call_start(ember_node_root(F.node[0]), &calc_svc, M_ADD, enc_args, &a, done_i64,
                     NULL, &child_refused, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &child_refused, 2000));
    CU_ASSERT_EQUAL(child_refused.n, 1);
    CU_ASSERT_EQUAL(child_refused.st, EMBER_UNAVAILABLE);
    CU_ASSERT_STRING_EQUAL(child_refused.msg, "shutting down");
    /* A child's call that crosses the GOODBYE (sent as the root's last call
     * in flight ends, so the root says GOODBYE and closes before reading
     * it) ends as any call of a connection that goes: EMBER_LOST. */
    result crossing = {0};
    ember_call_start(ember_node_root(F.node[0]), &calc_svc, M_ADD, enc_args, &a, done_i64,
                     NULL, &crossing, NULL);
    int64_t v = 3;
    ember_call_reply(G.later, enc_i64, &v);
    CU_ASSERT_TRUE(run_until(F.base, stopped_is, &two, 2000));
    CU_ASSERT_TRUE(run_until(F.base, got, &r, 2000));
    CU_ASSERT_EQUAL(r.st, EMBER_OK);
    CU_ASSERT_TRUE(run_until(F.base, got, &crossing, 2000));
    CU_ASSERT_EQUAL(crossing.n, 1);
    CU_ASSERT_EQUAL(crossing.st, EMBER_LOST);
    CU_ASSERT_STRING_EQUAL(crossing.msg, "connection lost: peer said goodbye");
    CU_ASSERT_TRUE(run_until(F.base, node_lost0, NULL, 2000));
    CU_ASSERT_TRUE(strstr(F.last_state_reason[0], "goodbye") != NULL);
    teardown_basic();
}

static void t_alloc_per_call(void)
{
    setup_basic(1);
    ember_ref *root = ember_node_root(F.node[0]);
    args2 a = {1, 2};
    /* warm up pools */
    for (int i = 0; i < 10; i++) {
        result r = {0};
        ember_call_start(root, &calc_svc, M_ADD, enc_args, &a, done_i64, NULL, &r, NULL);
        run_until(F.base, got, &r, 1000);
    }
    uint64_t before = ember_alloc_count();
    int ok = 0;
    for (int i = 0; i < 1000; i++) {
        result r = {0};
        ember_call_start(root, &calc_svc, M_ADD, enc_args, &a, done_i64, NULL, &r, NULL);
        ok += run_until(F.base, got, &r, 1000) && r.v == 3;
    }
    uint64_t allocs = ember_alloc_count() - before;
    CU_ASSERT_EQUAL(ok, 1000);
    printf("\n    allocations per call (round trip, both ends): %.3f\n",
           (double)allocs / 1000.0);
    CU_ASSERT_TRUE(allocs <= 1000);
    teardown_basic();
}

/* Raises the fd limit to `want` (the soft limit up to the hard one; as
 * root, the hard one too). Without enough fds the test cannot run: CUnit
 * has no skip, so it prints a SKIP line on stderr and returns false; as
 * root the limit can always be raised, so not getting it is a failure. */
static bool need_fds(const char *test, rlim_t want)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < want) {
        if (geteuid() == 0 && rl.rlim_max < want)
            rl.rlim_max = want;
        rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur >= want)
        return true;
    fprintf(stderr, "\nSKIP: %s: needs %llu file descriptors, the limit is "
            "%llu (hard %llu)%s\n", test, (unsigned long long)want,
            (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
            geteuid() == 0 ? "; running as root, so this is a failure" : "");
    if (geteuid() == 0)
        CU_FAIL("could not raise the fd limit as root");
    return false;
}

/* ---- one event_base, two roots: the gate pattern ---- */



static struct {
    ember_node *to_r2;    /* the gate's node registered with root 2 */
    ember_root *r2;       /* root 2, in the same process as the gate */
    int forwarded;
} GATE;

typedef struct gate_fwd { ember_call *call; int ends; } gate_fwd;
static gate_fwd gate_fwds[8];
static int ngate_fwds;

static void gate_fwd_done(const ember_outcome *o, ember_dec *reply, ember_fn cb,
                          void *ud)
{
    gate_fwd *f = ud;
    result r = {0};
    done_i64(o, reply, cb, &r);
    f->ends++;
    if (r.st == EMBER_OK)
        ember_call_reply(f->call, enc_i64, &r.v);
    else
        ember_call_fail(f->call, "gate: %s", ember_status_name(r.st));
}

/* Forwards add(a, b) to `to` and answers its caller with the result. */
static int gate_forward(ember_call *c, ember_dec *d, ember_ref *to)
{
    args2 a;
    if (dec_args(d, &a) || ngate_fwds == 8)
        return -1;
    gate_fwd *f = &gate_fwds[ngate_fwds++];
    f->call = c;
    f->ends = 0;
    GATE.forwarded++;
    ember_call_start(to, &calc_svc, M_ADD, enc_args, &a, gate_fwd_done, NULL, f, NULL);
    return 0;
}

/* Up: to root 2, through the gate's other node (a node of two roots). */
static int d_gate_up(ember_call *c, ember_dec *d, const void *h, void *ud)
{
    (void)h;
    (void)ud;
    return gate_forward(c, d, ember_node_root(GATE.to_r2));
}

/* Down: to root 2's child "leaf" (this process is root 2 as well). */
static int d_gate_down(ember_call *c, ember_dec *d, const void *h, void *ud)
{
    (void)h;
    (void)ud;
    ember_child *leaf = ember_root_child_by_name(GATE.r2, "leaf");
    if (!leaf)
        return -1;
    return gate_forward(c, d, ember_child_ref(leaf));
}

static const ember_method_desc gate_methods[] = {
    {.id = M_GATE_UP, .name = "up", .dispatch = d_gate_up},
    {.id = M_GATE_DOWN, .name = "down", .dispatch = d_gate_down},
};
static const ember_service_desc gate_svc = {
    .name = "test.Gate", .id = GATE_ID, .fingerprint = 0x6a7e, .n_methods = 2, .methods = gate_methods};

static ember_node *gate_node(const char *name, const char *addr, bool gate)
{
    ember_node_config cfg;
    ember_node_config_default(&cfg);
    cfg.backoff_min_ms = 10;
    cfg.backoff_max_ms = 100;
    ember_node *n = ember_node_new(F.base, name, &cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(n);
    CU_ASSERT_EQUAL(ember_exports_add(ember_node_exports(n), &calc_svc, NULL, NULL), 0);
    if (gate)
        CU_ASSERT_EQUAL(ember_exports_add(ember_node_exports(n), &gate_svc, NULL,
                                          NULL), 0);
    CU_ASSERT_EQUAL(ember_node_connect(n, addr), 0);
    return n;
}

static void t_two_roots_one_base(void)
{
    fresh_fixture();
    memset(&GATE, 0, sizeof GATE);
    ngate_fwds = 0;
    ember_root *r1 = make_root(NULL, 0);
    char addr1[64];
    snprintf(addr1, sizeof addr1, "%s", F.addr);
    ember_root *r2 = make_root(NULL, 0);
    char addr2[64];
    snprintf(addr2, sizeof addr2, "%s", F.addr);
    F.root = r1;
    GATE.r2 = r2;
    /* One process, one base: the gate is a node of root 1 (gA) and of root
     * 2 (gB), and root 2 itself; "leaf" is root 2's other child. */
    ember_node *ga = gate_node("gate", addr1, true);
    ember_node *gb = gate_node("gate", addr2, false);
    ember_node *leaf = gate_node("leaf", addr2, false);
    GATE.to_r2 = gb;
    CU_ASSERT_TRUE(run_until(F.base, node_registered, ga, 3000));
    CU_ASSERT_TRUE(run_until(F.base, node_registered, gb, 3000));
    CU_ASSERT_TRUE(run_until(F.base, node_registered, leaf, 3000));
    ember_child *c1 = ember_root_child_by_name(r1, "gate");
    ember_child *c2 = ember_root_child_by_name(r2, "gate");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c2);
    CU_ASSERT_TRUE(ember_child_has_service(c1, "test.Gate"));
    CU_ASSERT_FALSE(ember_child_has_service(c2, "test.Gate"));

    /* The gate calls both roots, and both roots call the gate, at once. */
    result up1 = {0}, up2 = {0}, down1 = {0}, down2 = {0};
    args2 a1 = {1, 2}, a2 = {10, 20}, a3 = {100, 200}, a4 = {1000, 2000};
    ember_call_start(ember_node_root(ga), &calc_svc, M_ADD, enc_args, &a1, done_i64, NULL,
                     &up1, NULL);
    ember_call_start(ember_node_root(gb), &calc_svc, M_ADD, enc_args, &a2, done_i64, NULL,
                     &up2, NULL);
    ember_call_start(ember_child_ref(c1), &calc_svc, M_ADD, enc_args, &a3, done_i64, NULL,
                     &down1, NULL);
    ember_call_start(ember_child_ref(c2), &calc_svc, M_ADD, enc_args, &a4, done_i64, NULL,
                     &down2, NULL);
    /* Root 1 -> gate -> root 2 (node of two roots), and root 1 -> gate ->
     * root 2's child leaf (root and node in one process). */
    result via_up = {0}, via_down = {0};
    args2 a5 = {5, 6}, a6 = {7, 8};
    ember_call_start(ember_child_ref(c1), &gate_svc, M_GATE_UP, enc_args, &a5, done_i64,
                     NULL, &via_up, NULL);
    ember_call_start(ember_child_ref(c1), &gate_svc, M_GATE_DOWN, enc_args, &a6, done_i64,
                     NULL, &via_down, NULL);
    result *all[] = {&up1, &up2, &down1, &down2, &via_up, &via_down};
    for (int i = 0; i < 6; i++)
        CU_ASSERT_TRUE(run_until(F.base, got, all[i], 3000));
    run_for(F.base, 20); /* no late second outcome */
    for (int i = 0; i < 6; i++) {
        CU_ASSERT_EQUAL(all[i]->n, 1);
        CU_ASSERT_EQUAL(all[i]->st, EMBER_OK);
    }
    CU_ASSERT_EQUAL(up1.v, 3);
    CU_ASSERT_EQUAL(up2.v, 30);
    CU_ASSERT_EQUAL(down1.v, 300);
    CU_ASSERT_EQUAL(down2.v, 3000);
    CU_ASSERT_EQUAL(via_up.v, 11);
    CU_ASSERT_EQUAL(via_down.v, 15);
    CU_ASSERT_EQUAL(GATE.forwarded, 2);
    CU_ASSERT_EQUAL(ngate_fwds, 2);
    for (int i = 0; i < ngate_fwds; i++)
        CU_ASSERT_EQUAL(gate_fwds[i].ends, 1);
    /* Losing root 2 does not disturb root 1: the gate's call through it
     * fails, its calls to root 1 go on. */
    ember_root_free(r2);
    GATE.r2 = NULL;
    ember_node_free(leaf);
    result via_lost = {0}, still = {0};
    ember_call_start(ember_child_ref(c1), &gate_svc, M_GATE_UP, enc_args, &a5, done_i64,
                     NULL, &via_lost, NULL);
    ember_call_start(ember_node_root(ga), &calc_svc, M_ADD, enc_args, &a1, done_i64, NULL,
                     &still, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &via_lost, 3000));
    CU_ASSERT_TRUE(run_until(F.base, got, &still, 3000));
    CU_ASSERT_EQUAL(via_lost.st, EMBER_FAILED);
    CU_ASSERT_EQUAL(still.st, EMBER_OK);
    CU_ASSERT_EQUAL(still.v, 3);
    CU_ASSERT_EQUAL(ember_node_state_get(ga), EMBER_NODE_REGISTERED);
    ember_node_free(gb);
    ember_node_free(ga);
    ember_root_free(r1);
    run_for(F.base, 10); /* teardown, not a wait: deferred frees */
    event_base_free(F.base);
}

static void t_thousand_nodes(void)
{
    if (!need_fds("1000 nodes", 2200))
        return;
    fresh_fixture();
    F.root = make_root(NULL, 0);
    enum { N = 1000 };
    ember_node **nodes = calloc(N, sizeof *nodes);
    ember_node_config cfg;
    ember_node_config_default(&cfg);
    cfg.backoff_min_ms = 10;
    cfg.backoff_max_ms = 200;
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "node-%04d", i);
        nodes[i] = ember_node_new(F.base, name, &cfg);
        ember_node_connect(nodes[i], F.addr);
    }
    want_children = N;
    CU_ASSERT_TRUE(run_until(F.base, n_children, NULL, 10000));
    CU_ASSERT_EQUAL(ember_root_child_count(F.root), (size_t)N);
    CU_ASSERT_EQUAL(G.joins, N);
    CU_ASSERT_PTR_NOT_NULL(child("node-0999"));
    /* One broadcast reaches every child (they serve nothing: NO_METHOD). */
    memset(bres, 0, sizeof bres);
    bcount = 0;
    CU_ASSERT_EQUAL(ember_root_broadcast(F.root, NULL, NULL, &calc_svc, M_ADD, NULL, NULL,
                                         done_bcast, NULL, NULL, NULL), N);
    int_at_least all = {&bcount, N};
    CU_ASSERT_TRUE(run_until(F.base, reached, &all, 5000));
    CU_ASSERT_EQUAL(bcount, N);
    for (int i = 0; i < N; i++)
        ember_node_free(nodes[i]);
    free(nodes);
    ember_root_free(F.root);
    CU_ASSERT_EQUAL(G.leaves, N);
    event_base_free(F.base);
}

/* ---- root and node in separate processes ---- */

static int child_process(int port)
{
    struct event_base *base = event_base_new();
    memset(&F, 0, sizeof F);
    F.base = base;
    snprintf(F.addr, sizeof F.addr, "127.0.0.1:%d", port);
    ember_node *n = make_node("forked", NULL);
    F.node[0] = n;
    F.nn = 1;
    if (!run_until(base, node_registered, n, 3000))
        return 2;
    result r = {0};
    args2 a = {40, 2};
    ember_call_start(ember_node_root(n), &calc_svc, M_ADD, enc_args, &a, done_i64, NULL, &r, NULL);
    run_until(base, got, &r, 3000);
    int rc = r.n == 1 && r.st == EMBER_OK && r.v == 42 ? 0 : 3;
    /* Stay until the root has called us back (or give up). */
    int_at_least served = {&G.served, 1};
    if (!run_until(base, reached, &served, 3000))
        rc = 4;
    ember_node_free(n);
    event_base_free(base);
    return rc;
}

static bool child_joined(void *ud)
{
    (void)ud;
    return child("forked") != NULL;
}

static void t_separate_processes(void)
{
    /* Fork first, so the child shares no event_base (or epoll) with us;
     * then tell it the port through a pipe. */
    int pfd[2];
    CU_ASSERT_EQUAL_FATAL(pipe(pfd), 0);
    fflush(stdout);
    pid_t pid = fork();
    CU_ASSERT_TRUE_FATAL(pid >= 0);
    if (pid == 0) {
        int port = 0;
        close(pfd[1]);
        if (read(pfd[0], &port, sizeof port) != (ssize_t)sizeof port)
            _exit(5);
        _exit(child_process(port));
    }
    close(pfd[0]);
    fresh_fixture();
    F.root = make_root(NULL, 0);
    CU_ASSERT_EQUAL(write(pfd[1], &F.port, sizeof F.port), (ssize_t)sizeof F.port);
    close(pfd[1]);
    CU_ASSERT_TRUE(run_until(F.base, child_joined, NULL, 5000));
    result r = {0};
    args2 a = {1, 2};
    if (child("forked"))
        ember_call_start(ember_child_ref(child("forked")), &calc_svc, M_ADD, enc_args, &a,
                         done_i64, NULL, &r, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &r, 3000));
    CU_ASSERT_EQUAL(r.v, 3);
    CU_ASSERT_TRUE(run_until(F.base, one_leave, NULL, 5000));
    int status = 0;
    waitpid(pid, &status, 0);
    CU_ASSERT_TRUE(WIFEXITED(status));
    CU_ASSERT_EQUAL(WEXITSTATUS(status), 0);
    CU_ASSERT_EQUAL(G.served, 1);
    teardown_basic();
}

static void t_unix_and_ipv6(void)
{
    fresh_fixture();
    ember_root_config cfg;
    ember_root_config_default(&cfg);
    cfg.on_join = on_join;
    F.root = ember_root_new(F.base, &cfg);
    char path[64];
    snprintf(path, sizeof path, "unix:/tmp/ember-test-%d.sock", (int)getpid());
    CU_ASSERT_EQUAL_FATAL(ember_root_listen(F.root, path), 0);
    bool v6 = ember_root_listen(F.root, "[::1]:0") == 0;
    CU_ASSERT_EQUAL(ember_root_listen(F.root, "nonsense"), -1);
    CU_ASSERT_TRUE(strlen(ember_last_error()) > 0);
    /* Every interface is said, not implied by an empty host. */
    CU_ASSERT_EQUAL(ember_root_listen(F.root, ":0"), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(ember_last_error(), "no host"));
    CU_ASSERT_EQUAL(ember_root_listen(F.root, "127.0.0.1:-0"), -1);
    snprintf(F.addr, sizeof F.addr, "%s", path);
    make_node("over-unix", NULL);
    if (v6) {
        snprintf(F.addr, sizeof F.addr, "[::1]:%d", ember_root_port(F.root));
        make_node("over-v6", NULL);
    } else {
        printf("\n    (no IPv6 loopback: IPv6 part skipped)\n");
    }
    CU_ASSERT_TRUE(run_until(F.base, all_registered, NULL, 3000));
    unlink(path + 5);
    teardown_basic();
}

/* ---- memory, backpressure, large frames ---- */

static void t_idle_child_memory(void)
{
    enum { HALF = 500 };
    if (!need_fds("idle child memory", 2 * 2 * HALF + 100))
        return;
    ember_set_allocator(counting_alloc, NULL);
    fresh_fixture();
    F.root = make_root(NULL, 0);
    static int fds[2 * HALF];
    long long at[2];
    for (int round = 0; round < 2; round++) {
        for (int i = round * HALF; i < (round + 1) * HALF; i++) {
            char name[32];
            snprintf(name, sizeof name, "idle-%d", i);
            fds[i] = raw_register(F.port, name);
        }
        want_children = (size_t)(round + 1) * HALF;
        CU_ASSERT_TRUE(run_until(F.base, n_children, NULL, 5000));
        /* Not a wait for a condition: let the registrations' buffers go
         * back to the pool before sampling (no event marks that). */
        run_for(F.base, 20);
        at[round] = live_bytes;
    }
    double per = (double)(at[1] - at[0]) / HALF;
    /* Plus what libevent allocates per connection: two events. */
    double ev = 2.0 * ((double)event_get_struct_event_size() + 16.0);
    printf("\n    idle registered child on the root: %.0f bytes via the ember "
           "allocator + ~%.0f in libevent events = ~%.0f bytes\n", per, ev, per + ev);
    CU_ASSERT_TRUE(per + ev <= 2048.0);
    for (int i = 0; i < 2 * HALF; i++)
        close(fds[i]);
    ember_root_free(F.root);
    event_base_free(F.base);
    ember_set_allocator(NULL, NULL);
}

static void t_high_water(void)
{
    fresh_fixture();
    ember_limits lim;
    ember_limits_default(&lim);
    lim.out_high_water = 256 * 1024;
    F.root = make_root(&lim, 0);
    int fd = raw_register(F.port, "sink"); /* registers, then never reads */
    CU_ASSERT_TRUE_FATAL(run_until(F.base, one_child, NULL, 2000));
    static uint8_t payload[64 * 1024];
    static result r[400];
    memset(r, 0, sizeof r);
    int limited = -1;
    for (int i = 0; i < 400 && limited < 0; i++) {
        ember_call_raw(ember_child_ref(child("sink")), CALC_ID, M_ADD, payload,
                       sizeof payload, raw_done, &r[i], NULL);
        /* Pacing, not a wait: give the loop a turn to flush between calls. */
        run_for(F.base, 1);
        if (r[i].n && r[i].st == EMBER_LIMIT)
            limited = i;
    }
    CU_ASSERT_TRUE(limited > 0);
    printf("\n    call %d failed fast with EMBER_LIMIT (peer not reading)\n", limited);
    close(fd);
    teardown_basic();
    for (int i = 0; i <= limited && limited >= 0; i++)
        CU_ASSERT_EQUAL(r[i].n, 1);
}

static void raw_len(ember_call *c, uint32_t sid, uint32_t mid,
                    const void *p, size_t len, void *ud)
{
    (void)sid;
    (void)mid;
    (void)ud;
    const uint8_t *b = p;
    int64_t v = (int64_t)len;
    for (size_t i = 0; i < len; i++)
        if (b[i] != (uint8_t)(i * 7))
            v = -1;
    ember_call_reply(c, enc_i64, &v);
}

static void t_large_frames(void)
{
    setup_basic(1);
    CU_ASSERT_EQUAL(ember_exports_add_raw(ember_root_exports(F.root), CALC_ID, 50, raw_len,
                                          NULL), 0);
    CU_ASSERT_EQUAL(ember_exports_add_raw(ember_node_exports(F.node[0]), CALC_ID, 50, raw_len,
                                          NULL), 0);
    size_t n = 3u << 20;
    uint8_t *big = malloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = (uint8_t)(i * 7);
    result up = {0}, down = {0}, over = {0};
    ember_call_raw(ember_node_root(F.node[0]), CALC_ID, 50, big, n, raw_done, &up, NULL);
    ember_call_raw(ember_child_ref(child("n0")), CALC_ID, 50, big, n, raw_done, &down, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &up, 5000));
    CU_ASSERT_TRUE(run_until(F.base, got, &down, 5000));
    CU_ASSERT_EQUAL(up.v, (int64_t)n);
    CU_ASSERT_EQUAL(down.v, (int64_t)n);
    free(big);
    /* Bigger than max_frame: refused locally, from the loop. */
    size_t huge = (16u << 20) + 1;
    uint8_t *h = calloc(1, huge);
    ember_call_raw(ember_node_root(F.node[0]), CALC_ID, 50, h, huge, raw_done, &over, NULL);
    free(h);
    CU_ASSERT_EQUAL(over.n, 0);
    CU_ASSERT_TRUE(run_until(F.base, got, &over, 2000));
    CU_ASSERT_EQUAL(over.st, EMBER_LIMIT);
    CU_ASSERT_EQUAL(ember_node_state_get(F.node[0]), EMBER_NODE_REGISTERED);
    teardown_basic();
}

struct stat_seen {
    uint64_t add_calls, fail_calls, fail_failures, max_us;
};

static void stat_all(const ember_method_stats *s, void *ud)
{
    struct stat_seen *x = ud;
    if (s->id == M_ADD)
        x->add_calls = s->calls;
    if (s->id == M_FAIL) {
        x->fail_calls = s->calls;
        x->fail_failures = s->failures;
    }
    if (s->max_us > x->max_us)
        x->max_us = s->max_us;
}

static void t_stats(void)
{
    setup_basic(1);
    result r[4] = {{0}};
    args2 a = {1, 1};
    ember_call_start(ember_node_root(F.node[0]), &calc_svc, M_ADD, enc_args, &a, done_i64, NULL, &r[0], NULL);
    ember_call_start(ember_node_root(F.node[0]), &calc_svc, M_ADD, enc_args, &a, done_i64, NULL, &r[1], NULL);
    ember_call_start(ember_node_root(F.node[0]), &calc_svc, M_FAIL, NULL, NULL, done_i64, NULL, &r[2], NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &r[2], 2000));
    struct stat_seen s = {0, 0, 0, 0};
    ember_exports_stats(ember_root_exports(F.root), stat_all, &s);
    CU_ASSERT_EQUAL(s.add_calls, 2);
    CU_ASSERT_EQUAL(s.fail_calls, 1);
    CU_ASSERT_EQUAL(s.fail_failures, 1);
    /* a duplicate method id is refused */
    CU_ASSERT_EQUAL(ember_exports_add(ember_root_exports(F.root), &calc_svc, NULL, NULL), -1);
    /* a hand-written descriptor missing a part is refused, saying which */
    ember_service_desc bad = calc_svc;
    bad.id ^= 1;
    bad.methods = NULL;
    CU_ASSERT_EQUAL(ember_exports_add(ember_root_exports(F.root), &bad, NULL, NULL), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(ember_last_error(), "no method table"));
    bad.name = NULL;
    CU_ASSERT_EQUAL(ember_exports_add(ember_root_exports(F.root), &bad, NULL, NULL), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(ember_last_error(), "has no name"));
    ember_method_desc m1 = calc_svc.methods[0];
    m1.name = NULL;
    bad = calc_svc;
    bad.id ^= 1;
    bad.methods = &m1;
    bad.n_methods = 1;
    CU_ASSERT_EQUAL(ember_exports_add(ember_root_exports(F.root), &bad, NULL, NULL), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(ember_last_error(), "method 0 of test.Calc"));
    teardown_basic();
}

static void t_remote_ref_dies_with_connection(void)
{
    setup_basic(1);
    ember_ref *obs = ember_ref_local(&obs_svc, NULL, NULL);
    result r = {0};
    /* The root keeps the ref (G.watched) until the pong: drop before it. */
    ember_call_start(ember_node_root(F.node[0]), &calc_svc, M_WATCH, enc_ref, obs, done_i64,
                     NULL, &r, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &r, 2000));
    CU_ASSERT_TRUE(run_until(F.base, got, &G.pong, 2000));
    /* Pass it again and hold it on the root this time. */
    G.pong.n = 0;
    ember_ref *kept = NULL;
    result r2 = {0};
    ember_call_start(ember_node_root(F.node[0]), &calc_svc, M_WATCH, enc_ref, obs, done_i64,
                     NULL, &r2, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &r2, 2000));
    kept = G.watched ? ember_ref_retain(G.watched) : NULL;
    CU_ASSERT_TRUE(run_until(F.base, got, &G.pong, 2000));
    CU_ASSERT_PTR_NOT_NULL_FATAL(kept);
    CU_ASSERT_TRUE(ember_ref_alive(kept));
    CU_ASSERT_TRUE(obs->rc >= 2); /* still exported: the root holds it */
    ember_root_drop(F.root, child("n0"), "bye");
    CU_ASSERT_FALSE(ember_ref_alive(kept));
    result r3 = {0};
    ember_call_start(kept, &obs_svc, M_PING, NULL, NULL, done_i64, NULL, &r3, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &r3, 1000));
    CU_ASSERT_EQUAL(r3.st, EMBER_UNAVAILABLE);
    ember_ref_release(kept);
    CU_ASSERT_TRUE(run_until(F.base, node_lost0, NULL, 2000));
    CU_ASSERT_EQUAL(obs->rc, 1); /* the node dropped its export with the connection */
    ember_ref_release(obs);
    teardown_basic();
}

static void t_bad_args_and_callback(void)
{
    setup_basic(1);
    /* The root calls the node back through the caller's ref. */
    result r = {0}, back = {0};
    args2 a = {1, 0};
    ember_call_start(ember_node_root(F.node[0]), &calc_svc, M_LATER, enc_args, &a, done_i64,
                     NULL, &r, NULL);
    CU_ASSERT_TRUE(run_until(F.base, later_held, NULL, 2000));
    CU_ASSERT_PTR_NOT_NULL_FATAL(G.later);
    args2 b = {5, 6};
    ember_call_start(ember_call_caller(G.later), &calc_svc, M_ADD, enc_args, &b, done_i64,
                     NULL, &back, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &back, 2000));
    CU_ASSERT_EQUAL(back.v, 11);
    int64_t v = 0;
    ember_call_reply(G.later, enc_i64, &v);
    CU_ASSERT_TRUE(run_until(F.base, got, &r, 2000));
    /* Arguments that do not decode: FAILED, then the peer is disconnected. */
    static const uint8_t bad[] = {0x0a, 0x00}; /* field 1 as LEN, wants VARINT */
    result f = {0};
    ember_call_raw(ember_node_root(F.node[0]), CALC_ID, M_ADD, bad, sizeof bad, raw_done, &f, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &f, 2000));
    CU_ASSERT_EQUAL(f.st, EMBER_FAILED);
    CU_ASSERT_TRUE(strstr(f.msg, "bad arguments") != NULL);
    CU_ASSERT_TRUE(run_until(F.base, node_lost0, NULL, 2000));
    CU_ASSERT_TRUE(run_until(F.base, all_registered, NULL, 3000)); /* and back */
    teardown_basic();
}

static void t_close_idle_node(void)
{
    fresh_fixture();
    stopped = 0;
    ember_node *n = ember_node_new(F.base, "never", NULL);
    CU_ASSERT_PTR_NULL(ember_node_new(F.base, "", NULL));
    CU_ASSERT_EQUAL(ember_node_connect(n, "no-port-here"), -1);
    /* Refused at once with the reason, never tried and retried forever. */
    static const struct { const char *addr, *why; } bad[] = {
        {":5", "no host"}, {"[]:5", "no host"}, {"127.0.0.1:+5", "bad port"},
        {"127.0.0.1: 5", "bad port"}, {"127.0.0.1:0x10", "bad port"},
        {"127.0.0.1:65536", "bad port"}, {"127.0.0.1:000007000", "bad port"},
        {"127.0.0.1:", "bad port"}, {"127.0.0.1:0", "port 0"},
        {"[::1]:0", "port 0"}, {"[::1]5", "want [v6]:port"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CU_ASSERT_EQUAL(ember_node_connect(n, bad[i].addr), -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(ember_last_error(), bad[i].why));
    }
    CU_ASSERT_EQUAL(ember_node_state_get(n), EMBER_NODE_IDLE);
    /* Limits that would drop a quiet peer before it is pinged are refused. */
    ember_node_config nc;
    ember_node_config_default(&nc);
    nc.limits.heartbeat_ms = 6000; /* dead_after_ms: the default 6000 */
    CU_ASSERT_PTR_NULL(ember_node_new(F.base, "late", &nc));
    CU_ASSERT_PTR_NOT_NULL(strstr(ember_last_error(), "must be below dead_after_ms"));
    /* So is a backoff whose least delay is above its most. */
    ember_node_config_default(&nc);
    nc.backoff_min_ms = 2000;
    nc.backoff_max_ms = 1000;
    CU_ASSERT_PTR_NULL(ember_node_new(F.base, "backoff", &nc));
    CU_ASSERT_STRING_EQUAL(ember_last_error(),
                           "backoff_min_ms (2000) must not be above backoff_max_ms (1000)");
    ember_root_config rc;
    ember_root_config_default(&rc);
    rc.limits.heartbeat_ms = 500;
    rc.limits.dead_after_ms = 400;
    CU_ASSERT_PTR_NULL(ember_root_new(F.base, &rc));
    CU_ASSERT_PTR_NOT_NULL(strstr(ember_last_error(), "heartbeat_ms (500) must be below"));
    ember_node_close(n, on_node_closed, NULL);
    int one = 1;
    CU_ASSERT_TRUE(run_until(F.base, stopped_is, &one, 1000));
    CU_ASSERT_EQUAL(ember_node_state_get(n), EMBER_NODE_CLOSED);
    CU_ASSERT_STRING_EQUAL(ember_node_state_name(EMBER_NODE_CLOSED), "closed");
    CU_ASSERT_STRING_EQUAL(ember_node_name(n), "never");
    ember_node_free(n);
    event_base_free(F.base);
}

/* A host name that does not resolve is not an error of ember_node_connect:
 * like a root that is down, the attempt fails and is retried with backoff.
 * ("no..such" has an empty label: the resolver refuses it without asking a
 * name server.) */
static int unresolved_lost;
static char unresolved_why[256];
static void on_unresolved_state(ember_node *n, ember_node_state st,
                                const char *reason, void *ud)
{
    (void)n;
    (void)ud;
    if (st == EMBER_NODE_LOST) {
        unresolved_lost++;
        snprintf(unresolved_why, sizeof unresolved_why, "%s", reason ? reason : "");
    }
}

static bool unresolved_retried(void *ud)
{
    (void)ud;
    return unresolved_lost >= 2;
}

static void t_connect_unresolved_name(void)
{
    fresh_fixture();
    ember_node_config cfg;
    ember_node_config_default(&cfg);
    cfg.on_state = on_unresolved_state;
    cfg.backoff_min_ms = 10;
    cfg.backoff_max_ms = 20;
    unresolved_lost = 0;
    ember_node *n = ember_node_new(F.base, "dns", &cfg);
    CU_ASSERT_EQUAL(ember_node_connect(n, "no..such.invalid:7000"), 0);
    CU_ASSERT_TRUE(run_until(F.base, unresolved_retried, NULL, 2000));
    CU_ASSERT_TRUE(strstr(unresolved_why, "cannot resolve") != NULL);
    /* The node has its address: a second one is refused, as always. */
    CU_ASSERT_EQUAL(ember_node_connect(n, "127.0.0.1:1"), -1);
    ember_node_free(n);
    event_base_free(F.base);
}

static void t_adopt_fd(void)
{
    fresh_fixture();
    F.root = make_root(NULL, 0);
    int sv[2];
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    CU_ASSERT_EQUAL(ember_root_adopt_fd(F.root, sv[0]), 0);
    /* register by hand over the other end */
    uint8_t buf[64];
    ember_enc e;
    ember_enc_init_fixed(&e, buf, sizeof buf);
    e.p += 4;
    *e.p++ = EMBER_FR_REGISTER;
    ember_enc_uint(&e, 1, EMBER_PROTOCOL_VERSION);
    ember_enc_string(&e, 2, "paired");
    uint32_t len = (uint32_t)ember_enc_len(&e) - 4;
    memcpy(buf, &len, 4);
    CU_ASSERT_EQUAL(write(sv[1], buf, len + 4), (ssize_t)(len + 4));
    CU_ASSERT_TRUE(run_until(F.base, one_child, NULL, 2000));
    CU_ASSERT_STRING_EQUAL(ember_child_peer(child("paired")), "adopted");
    close(sv[1]);
    CU_ASSERT_TRUE(run_until(F.base, one_leave, NULL, 2000));
    teardown_basic();
}

static void t_ref_as_result(void)
{
    setup_basic(1);
    G.give = ember_ref_local(&obs_svc, NULL, NULL);
    got_ref = NULL;
    result r = {0}, p = {0};
    ember_call_start(ember_node_root(F.node[0]), &calc_svc, M_GIVE, NULL, NULL, done_ref, NULL,
                     &r, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &r, 2000));
    CU_ASSERT_PTR_NOT_NULL_FATAL(got_ref);
    CU_ASSERT_TRUE(ember_ref_alive(got_ref));
    CU_ASSERT_EQUAL(G.give->rc, 2); /* ours + the export on the connection */
    args2 a = {9, 0};
    ember_call_start(got_ref, &obs_svc, M_PING, enc_args, &a, done_i64, NULL, &p, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &p, 2000));
    CU_ASSERT_EQUAL(p.v, 10);
    CU_ASSERT_EQUAL(G.pings, 1);
    CU_ASSERT_FALSE(metrics_name(F.root, NULL, "test.Obs"));
    ember_ref_release(got_ref); /* -> DECREF: the root drops its export */
    CU_ASSERT_TRUE(run_until(F.base, ref_rc_is_one, G.give, 2000));
    CU_ASSERT_EQUAL(G.give->rc, 1);
    ember_ref_release(G.give);
    G.give = NULL;

    /* A ref sent back to its owner decodes to the owner's own object. */
    ember_ref *obs = ember_ref_local(&obs_svc, NULL, NULL);
    result e = {0};
    got_ref = NULL;
    ember_call_start(ember_node_root(F.node[0]), &calc_svc, M_ECHO_REF, enc_ref, obs, done_ref,
                     NULL, &e, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &e, 2000));
    CU_ASSERT_EQUAL(e.st, EMBER_OK);
    CU_ASSERT_PTR_EQUAL(got_ref, obs);
    if (got_ref)
        ember_ref_release(got_ref);
    /* A peer's exports cannot be passed back to it. */
    result bad = {0};
    ember_call_start(ember_node_root(F.node[0]), &calc_svc, M_ECHO_REF, enc_ref,
                     ember_node_root(F.node[0]), done_ref, NULL, &bad, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &bad, 2000));
    CU_ASSERT_EQUAL(bad.st, EMBER_FAILED);
    CU_ASSERT_STRING_EQUAL(bad.msg, "arguments could not be encoded: a peer's exports "
                                    "cannot be passed back to it as a ref");
    CU_ASSERT_EQUAL(bad.n, 1);
    CU_ASSERT_TRUE(run_until(F.base, ref_rc_is_one, obs, 2000));
    CU_ASSERT_EQUAL(obs->rc, 1);
    ember_ref_release(obs);
    teardown_basic();
}

static int pipelined_ok, pipelined_done;

static void done_count(const ember_outcome *o, ember_dec *reply, ember_fn cb, void *ud)
{
    result r = {0};
    done_i64(o, reply, cb, &r);
    pipelined_done++;
    if (r.st == EMBER_OK && r.v == (int64_t)(intptr_t)ud + 1)
        pipelined_ok++;
}

static bool all_piped(void *ud)
{
    return pipelined_done >= *(int *)ud;
}

static void t_pipelined(void)
{
    setup_basic(1);
    enum { N = 20000 };
    pipelined_ok = pipelined_done = 0;
    for (int i = 0; i < N; i++) {
        args2 a = {i, 1};
        ember_call_start(i % 2 ? ember_node_root(F.node[0]) : ember_child_ref(child("n0")),
                         &calc_svc, M_ADD, enc_args, &a, done_count, NULL, (void *)(intptr_t)i,
                         NULL);
    }
    int n = N;
    CU_ASSERT_TRUE(run_until(F.base, all_piped, &n, 10000));
    CU_ASSERT_EQUAL(pipelined_ok, N);
    run_for(F.base, 20); /* no outcome is delivered twice */
    CU_ASSERT_EQUAL(pipelined_done, N);
    teardown_basic();
}

static int order_bad, order_n;
static uint64_t order_last;

static void done_order(const ember_outcome *o, ember_dec *reply, ember_fn cb, void *ud)
{
    (void)reply;
    (void)cb;
    uint64_t due = (uint64_t)(uintptr_t)ud;
    if (o->status != EMBER_TIMEOUT || due < order_last)
        order_bad++;
    order_last = due;
    order_n++;
}

static bool all_ordered(void *ud)
{
    return order_n >= *(int *)ud;
}

static void t_deadline_order(void)
{
    setup_basic(1);
    order_bad = order_n = 0;
    order_last = 0;
    enum { N = 60 };
    /* One clock reading for all of them (as inside a read batch), so that
     * their deadlines are in the order of their timeouts however slowly
     * they start (under valgrind, say). */
    ember_clock_hold();
    for (int i = 0; i < N; i++) {
        uint32_t ms = 10 + (uint32_t)((i * 37) % N) * 3; /* shuffled 10..187 ms */
        ember_callopts o = {ms};
        ember_call_start(ember_node_root(F.node[0]), &calc_svc, M_HANG, NULL, NULL, done_order,
                         NULL, (void *)(uintptr_t)ms, &o);
    }
    ember_clock_release();
    int n = N;
    CU_ASSERT_TRUE(run_until(F.base, all_ordered, &n, 3000));
    CU_ASSERT_EQUAL(order_bad, 0);
    CU_ASSERT_EQUAL(order_n, N);
    /* Every served call is answered, late or not (else it leaks). */
    int_at_least all_hung = {&G.nhung, N};
    CU_ASSERT_TRUE(run_until(F.base, reached, &all_hung, 2000));
    for (int i = 0; i < G.nhung; i++)
        ember_call_fail(G.hung[i], "late");
    teardown_basic();
}

/* One call held on each of two children, thousands answered behind them
 * with the same timeout, then one child dropped: every call ends once, the
 * held one on the child left with EMBER_TIMEOUT. */
static void t_deadline_behind_held(void)
{
    setup_basic(2);
    ember_ref *to0 = ember_child_ref(child("n0")), *to1 = ember_child_ref(child("n1"));
    result r0 = {0}, r1 = {0};
    ember_callopts o = {300};
    ember_call_start(to0, &calc_svc, M_HANG, NULL, NULL, done_i64, NULL, &r0, &o);
    ember_call_start(to1, &calc_svc, M_HANG, NULL, NULL, done_i64, NULL, &r1, &o);
    pipelined_ok = pipelined_done = 0;
    enum { WAVE = 400, WAVES = 8 };
    int n = 0;
    for (int w = 0; w < WAVES; w++) {
        for (int i = 0; i < WAVE; i++, n++) {
            args2 a = {n, 1};
            ember_call_start(i % 2 ? to1 : to0, &calc_svc, M_ADD, enc_args, &a, done_count,
                             NULL, (void *)(intptr_t)n, &o);
        }
        CU_ASSERT_TRUE(run_until(F.base, all_piped, &n, 5000));
    }
    CU_ASSERT_EQUAL(pipelined_ok, WAVE * WAVES);
    CU_ASSERT_EQUAL(r0.n + r1.n, 0);
    ember_root_drop(F.root, child("n0"), "dropped by the test");
    CU_ASSERT_TRUE(run_until(F.base, got, &r0, 2000));
    CU_ASSERT_NOT_EQUAL(r0.st, EMBER_TIMEOUT);
    CU_ASSERT_TRUE(run_until(F.base, got, &r1, 2000));
    CU_ASSERT_EQUAL(r1.st, EMBER_TIMEOUT);
    run_for(F.base, 30); /* no outcome is delivered twice */
    CU_ASSERT_EQUAL(r0.n, 1);
    CU_ASSERT_EQUAL(r1.n, 1);
    CU_ASSERT_EQUAL(pipelined_done, WAVE * WAVES);
    for (int i = 0; i < G.nhung; i++)
        ember_call_fail(G.hung[i], "late");
    teardown_basic();
}

/* ---- 50 ms calls from every kind of place, to a child that holds them ---- */

enum { DL_JOIN, DL_TIMER, DL_REPLY, DL_TIMEOUT, DL_N, DL_ROUNDS = 8 };
static struct {
    ember_ref *to;
    struct event *timer;
    int outcomes[DL_N];
    int wrong[DL_N]; /* outcomes other than EMBER_TIMEOUT */
    int from[DL_N];  /* each call's ud: where it started */
} D;

static void dl_start(int from);

static void dl_replied(const ember_outcome *o, ember_dec *reply, ember_fn cb, void *ud)
{
    (void)reply;
    (void)cb;
    (void)ud;
    CU_ASSERT_EQUAL(o->status, EMBER_OK);
    dl_start(DL_REPLY); /* inside a reply's delivery */
}

static void dl_done(const ember_outcome *o, ember_dec *reply, ember_fn cb, void *ud)
{
    int from = *(int *)ud;
    (void)reply;
    (void)cb;
    D.outcomes[from]++;
    D.wrong[from] += o->status != EMBER_TIMEOUT;
    if (D.outcomes[from] >= DL_ROUNDS)
        return;
    /* Again from the same kind of place; on_join's goes on from its
     * timeout's delivery, inside the deadline timer. */
    if (from == DL_TIMER) {
        struct timeval tv = {0, 1000};
        evtimer_add(D.timer, &tv);
    } else if (from == DL_REPLY) {
        args2 a = {1, 2};
        ember_call_start(D.to, &calc_svc, M_ADD, enc_args, &a, dl_replied, NULL, NULL,
                         NULL);
    } else {
        dl_start(DL_TIMEOUT);
    }
}

static void dl_start(int from)
{
    static const ember_callopts o = {50};
    D.from[from] = from;
    CU_ASSERT_NOT_EQUAL(ember_call_start(D.to, &calc_svc, M_HANG, NULL, NULL, dl_done,
                                         NULL, &D.from[from], &o), 0);
}

static void dl_on_timer(evutil_socket_t fd, short what, void *ud)
{
    (void)fd;
    (void)what;
    (void)ud;
    dl_start(DL_TIMER);
}

static void dl_on_join(ember_child *c)
{
    D.to = ember_child_ref(c);
    dl_start(DL_JOIN);
    dl_replied(&(ember_outcome){EMBER_OK, "ok", 0, NULL, NULL}, NULL, NULL, NULL);
    struct timeval tv = {0, 1000};
    evtimer_add(D.timer, &tv);
}

static bool dl_all_ended(void *ud)
{
    (void)ud;
    for (int i = 0; i < DL_N; i++)
        if (D.outcomes[i] < (i == DL_JOIN ? 1 : DL_ROUNDS))
            return false;
    return true;
}

/* Calls with a 50 ms timeout to a child that never answers end
 * EMBER_TIMEOUT exactly once, whether they started in on_join, a timer of
 * the application's, a reply's callback or a timeout's callback, long before
 * the child goes. */
static void t_deadline_contexts(void)
{
    fresh_fixture();
    memset(&D, 0, sizeof D);
    D.timer = evtimer_new(F.base, dl_on_timer, NULL);
    dl_joining = true;
    F.root = make_root(NULL, 0);
    make_node("n0", NULL);
    CU_ASSERT_TRUE(run_until(F.base, dl_all_ended, NULL, 10000));
    run_for(F.base, 100); /* nothing ends twice */
    dl_joining = false;
    CU_ASSERT_EQUAL(G.leaves, 0);
    for (int i = 0; i < DL_N; i++) {
        CU_ASSERT_EQUAL(D.outcomes[i], i == DL_JOIN ? 1 : DL_ROUNDS);
        CU_ASSERT_EQUAL(D.wrong[i], 0);
    }
    for (int i = 0; i < G.nhung; i++)
        ember_call_fail(G.hung[i], "late");
    event_free(D.timer);
    teardown_basic();
}

/* ---- a reply's values outlive calls ended inside its callback ---- */

static struct {
    ember_handle sibling;
    result sib;
    uint32_t rrefs_after_cancel;
    int alive_after_cancel;
} H;

static void done_ref_cancel(const ember_outcome *o, ember_dec *reply, ember_fn cb,
                            void *ud)
{
    result *r = ud;
    ember_ref *root = ember_node_root(F.node[0]), *x = NULL;
    uint32_t tag = 0;
    unsigned wt = 0;
    (void)cb;
    r->n++;
    r->st = o->status;
    if (o->status != EMBER_OK || !reply)
        return;
    if (ember_dec_field(reply, &tag, &wt) != 1 || ember_dec_ref(reply, wt, &x))
        return;
    /* A hedged request: the first answer cancels the sibling, whose outcome
     * is delivered right here, inside this callback. */
    CU_ASSERT_EQUAL(ember_cancel(root, H.sibling), 0);
    CU_ASSERT_EQUAL(H.sib.n, 1);
    /* The decoded ref is still this reply's: held, alive, retainable. */
    H.rrefs_after_cancel = root->conn->rrefs.n;
    H.alive_after_cancel = ember_ref_alive(x);
    got_ref = ember_ref_retain(x);
}

static void t_nested_delivery_keeps_reply(void)
{
    setup_basic(1);
    memset(&H, 0, sizeof H);
    G.give = ember_ref_local(&obs_svc, NULL, NULL);
    got_ref = NULL;
    ember_ref *root = ember_node_root(F.node[0]);
    result r = {0}, p = {0};
    H.sibling = ember_call_start(root, &calc_svc, M_HANG, NULL, NULL, done_i64, NULL, &H.sib,
                                 NULL);
    ember_call_start(root, &calc_svc, M_GIVE, NULL, NULL, done_ref_cancel, NULL, &r, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &r, 2000));
    CU_ASSERT_EQUAL_FATAL(G.nhung, 1);
    ember_call_fail(G.hung[0], "cancelled"); /* every served call is answered */
    CU_ASSERT_EQUAL(H.sib.st, EMBER_CANCELLED);
    CU_ASSERT_EQUAL(H.rrefs_after_cancel, 1);
    CU_ASSERT_TRUE(H.alive_after_cancel);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got_ref);
    args2 a = {1, 0};
    ember_call_start(got_ref, &obs_svc, M_PING, enc_args, &a, done_i64, NULL, &p, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &p, 2000));
    CU_ASSERT_EQUAL(p.v, 2);
    ember_ref_release(got_ref);
    got_ref = NULL;
    CU_ASSERT_TRUE(run_until(F.base, ref_rc_is_one, G.give, 2000));
    ember_ref_release(G.give);
    G.give = NULL;
    teardown_basic();
}

/* ---- a second answer ---- */

static int second_answer = 1;

static void answer_twice(ember_call *c, uint32_t sid, uint32_t mid,
                         const void *p, size_t len, void *ud)
{
    (void)sid;
    int64_t one = 1, two = 2;
    (void)mid;
    (void)p;
    (void)len;
    (void)ud;
    ember_call_reply(c, enc_i64, &one);
    /* The call lives until its handler returns: the second answer is
     * refused, and so is a third of another kind. */
    second_answer = ember_call_reply(c, enc_i64, &two);
    if (ember_call_fail(c, "three") != -1 || ember_call_raise(c, 1, NULL, NULL) != -1)
        second_answer = 1;
}

static void t_second_answer(void)
{
    setup_basic(1);
    CU_ASSERT_EQUAL(ember_exports_add_raw(ember_root_exports(F.root), CALC_ID, 60,
                                          answer_twice, NULL), 0);
    result r[3];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 3; i++) /* the pooled call is reused each time */
        ember_call_raw(ember_node_root(F.node[0]), CALC_ID, 60, NULL, 0, raw_done, &r[i],
                       NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &r[2], 2000));
    run_for(F.base, 20); /* no second answer reaches the caller */
    CU_ASSERT_EQUAL(second_answer, -1);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(r[i].n, 1);
        CU_ASSERT_EQUAL(r[i].st, EMBER_OK);
        CU_ASSERT_EQUAL(r[i].v, 1);
    }
    CU_ASSERT_EQUAL(ember_call_reply(NULL, NULL, NULL), -1);
    CU_ASSERT_EQUAL(ember_node_state_get(F.node[0]), EMBER_NODE_REGISTERED);
    teardown_basic();
}

/* ---- a broadcast outcome names a child that is still there ---- */

static struct {
    int n, leaves_then;
    ember_status st;
    char name[16];
} BD;

static void done_bcast_named(const ember_outcome *o, ember_dec *reply, ember_fn cb,
                             void *ud)
{
    (void)reply;
    (void)cb;
    (void)ud;
    BD.n++;
    BD.st = o->status;
    BD.leaves_then = G.leaves;
    snprintf(BD.name, sizeof BD.name, "%s", o->child ? ember_child_name(o->child) : "");
}

static void t_broadcast_child_dropped(void)
{
    setup_basic(1);
    memset(&BD, 0, sizeof BD);
    /* Stopping: the call to n0 cannot start, its outcome is deferred... */
    ember_root_shutdown(F.root, NULL, NULL);
    CU_ASSERT_EQUAL(ember_root_broadcast(F.root, NULL, NULL, &calc_svc, M_ADD, NULL, NULL,
                                         done_bcast_named, NULL, NULL, NULL), 1);
    CU_ASSERT_EQUAL(BD.n, 0);
    /* ...and n0 goes before it runs: it ends first, naming n0. */
    ember_root_drop(F.root, child("n0"), "test: dropped");
    CU_ASSERT_EQUAL(BD.n, 1);
    CU_ASSERT_EQUAL(BD.leaves_then, 0);
    CU_ASSERT_STRING_EQUAL(BD.name, "n0");
    CU_ASSERT_EQUAL(BD.st, EMBER_UNAVAILABLE);
    CU_ASSERT_EQUAL(G.leaves, 1);
    run_for(F.base, 20); /* and it does not end twice */
    CU_ASSERT_EQUAL(BD.n, 1);
    teardown_basic();
}

/* ---- refs that outlive their root or node ---- */

/* Arguments 2 and 3 for M_ADD, and a ref in field 15, which add does not
 * know. */
static void enc_add_ref(ember_enc *e, const void *v)
{
    ember_enc_sint(e, 1, 2);
    ember_enc_sint(e, 2, 3);
    ember_enc_ref(e, 15, (ember_ref *)v);
}

static bool give_exported(void *ud)
{
    (void)ud;
    return G.give->rc == 2;
}

/* Refs a receiver never decodes go back to their owner at once (each
 * frame lists the objects it holds): the arguments of a call to a method
 * the peer lacks, a ref in a field the handler does not know, a result
 * that arrives after its call was cancelled. Each stayed exported until
 * the connection closed. */
static void t_refs_never_decoded(void)
{
    setup_basic(1);
    ember_ref *root = ember_node_root(F.node[0]);
    ember_ref *obs = ember_ref_local(&obs_svc, NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(obs);
    result r = {0}, a = {0}, g = {0};
    ember_call_start(root, &calc_svc, 99, enc_ref, obs, done_i64, NULL, &r, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &r, 2000));
    CU_ASSERT_EQUAL(r.st, EMBER_NO_METHOD);
    CU_ASSERT_TRUE(run_until(F.base, ref_rc_is_one, obs, 2000));

    ember_call_start(root, &calc_svc, M_ADD, enc_add_ref, obs, done_i64, NULL, &a, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &a, 2000));
    CU_ASSERT_EQUAL(a.st, EMBER_OK);
    CU_ASSERT_EQUAL(a.v, 5);
    CU_ASSERT_TRUE(run_until(F.base, ref_rc_is_one, obs, 2000));
    ember_ref_release(obs);

    /* The root answered (its reply is on the way, exporting G.give) when
     * the node gives up on the call: the reply comes late. */
    G.give = ember_ref_local(&obs_svc, NULL, NULL);
    got_ref = NULL;
    ember_handle h = ember_call_start(root, &calc_svc, M_GIVE, NULL, NULL, done_ref, NULL,
                                      &g, NULL);
    CU_ASSERT_TRUE(run_until(F.base, give_exported, NULL, 2000));
    CU_ASSERT_EQUAL(g.n, 0);
    CU_ASSERT_EQUAL(ember_cancel(root, h), 0);
    CU_ASSERT_EQUAL(g.st, EMBER_CANCELLED);
    CU_ASSERT_TRUE(run_until(F.base, ref_rc_is_one, G.give, 2000));
    CU_ASSERT_PTR_NULL(got_ref);
    CU_ASSERT_EQUAL(ember_node_root(F.node[0])->conn->rrefs.n, 0);
    ember_ref_release(G.give);
    G.give = NULL;
    teardown_basic();
}

/* Root side of t_proxy_refs_untyped: replies with a ref to n0's exports,
 * passed on as a Calc: hand-written, with no run-time types (calc_svc), or
 * with those of watch(1: ref<Obs> who) only. */
static const ember_type obs_ref_t = {.kind = EMBER_T_REF, .name = "test.Obs",
                                     .svc = &obs_svc};
static const ember_field_desc watch_params[] = {{1, "who", &obs_ref_t, false}};
static const ember_method_desc calc_typed_methods[] = {
    {.id = M_ADD, .name = "add", .dispatch = d_add},
    {.id = M_WATCH, .name = "watch", .dispatch = d_watch, .params = watch_params,
     .n_params = 1},
};
static const ember_service_desc calc_typed_svc = {
    .name = "test.Calc", .id = CALC_ID, .fingerprint = 0x1234, .n_methods = 2,
    .methods = calc_typed_methods};
static const ember_service_desc *pass_as = &calc_svc;

static void enc_n0_as_calc(ember_enc *e, const void *v)
{
    (void)v;
    ember_enc_ref_as(e, 1, ember_child_ref(child("n0")), pass_as);
}

/* watch's who, and a ref in field 15, which watch does not know. */
static void enc_two_refs(ember_enc *e, const void *v)
{
    ember_ref *const *r = v;
    ember_enc_ref(e, 1, r[0]);
    ember_enc_ref(e, 15, r[1]);
}

static int d_pass(ember_call *c, ember_dec *d, const void *h, void *ud)
{
    (void)d;
    (void)h;
    (void)ud;
    ember_call_reply(c, enc_n0_as_calc, NULL);
    return 0;
}

static const ember_method_desc pass_methods[] = {{.id = 1, .name = "pass", .dispatch = d_pass}};
static const ember_service_desc pass_svc = {
    .name = "test.Pass", .id = 0x9a550005u, .fingerprint = 0x5, .n_methods = 1,
    .methods = pass_methods};

/* A proxy whose method's run-time types hold no ref (here none at all)
 * copies the arguments as they came: a ref of the caller in them would
 * name an object of the wrong connection at the owner, which finds it
 * unlisted and drops the connection (the proxy's, with every call on it),
 * or takes it for one of its own. The caller's frame lists its refs, so
 * the proxy knows: the call fails there, the refs go back to the caller,
 * the owner never sees it. */
static void t_proxy_refs_untyped(void)
{
    setup_basic(2);
    CU_ASSERT_EQUAL(ember_exports_add(ember_root_exports(F.root), &pass_svc, NULL, NULL), 0);
    ember_ref *root1 = ember_node_root(F.node[1]);
    result p = {0}, w = {0}, a = {0};
    got_ref = NULL;
    ember_call_start(root1, &pass_svc, 1, NULL, NULL, done_ref, NULL, &p, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &p, 2000));
    CU_ASSERT_EQUAL(p.st, EMBER_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got_ref);
    ember_ref *obs = ember_ref_local(&obs_svc, NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(obs);
    ember_call_start(got_ref, &calc_svc, M_WATCH, enc_ref, obs, done_i64, NULL, &w, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &w, 2000));
    CU_ASSERT_EQUAL(w.st, EMBER_FAILED);
    CU_ASSERT_PTR_NOT_NULL(strstr(w.msg, "not passed on"));
    CU_ASSERT_TRUE(run_until(F.base, ref_rc_is_one, obs, 2000));
    CU_ASSERT_EQUAL(G.pings, 0);
    /* The proxy and n0 are fine: calls without refs go through. */
    args2 x = {2, 3};
    ember_call_start(got_ref, &calc_svc, M_ADD, enc_args, &x, done_i64, NULL, &a, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &a, 2000));
    CU_ASSERT_EQUAL(a.st, EMBER_OK);
    CU_ASSERT_EQUAL(a.v, 5);
    /* The other way: n0's result holds an object of its own. */
    G.give = ember_ref_local(&obs_svc, NULL, NULL);
    ember_ref *proxy = got_ref;
    result g = {0};
    got_ref = NULL;
    ember_call_start(proxy, &calc_svc, M_GIVE, NULL, NULL, done_ref, NULL, &g, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &g, 2000));
    CU_ASSERT_EQUAL(g.st, EMBER_FAILED);
    CU_ASSERT_PTR_NOT_NULL(strstr(g.msg, "not passed on"));
    CU_ASSERT_PTR_NULL(got_ref);
    CU_ASSERT_TRUE(run_until(F.base, ref_rc_is_one, G.give, 2000));
    result b = {0};
    ember_call_start(proxy, &calc_svc, M_ADD, enc_args, &x, done_i64, NULL, &b, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &b, 2000));
    CU_ASSERT_EQUAL(b.st, EMBER_OK);
    CU_ASSERT_EQUAL(F.lost[0] + F.lost[1], 0);
    CU_ASSERT_EQUAL(G.leaves, 0);
    ember_ref_release(G.give);
    G.give = NULL;
    ember_ref_release(proxy);

    /* Typed: watch's ref goes on (a proxy again), the one of field 15
     * would be copied. */
    pass_as = &calc_typed_svc;
    got_ref = NULL;
    result q = {0}, t = {0};
    ember_call_start(root1, &pass_svc, 1, NULL, NULL, done_ref, NULL, &q, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &q, 2000));
    CU_ASSERT_PTR_NOT_NULL_FATAL(got_ref);
    ember_ref *obs2 = ember_ref_local(&obs_svc, NULL, NULL);
    ember_ref *two[2] = {obs, obs2};
    ember_call_start(got_ref, &calc_svc, M_WATCH, enc_two_refs, two, done_i64, NULL, &t,
                     NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &t, 2000));
    CU_ASSERT_EQUAL(t.st, EMBER_FAILED);
    CU_ASSERT_PTR_NOT_NULL(strstr(t.msg, "not passed on"));
    CU_ASSERT_TRUE(run_until(F.base, ref_rc_is_one, obs, 2000));
    CU_ASSERT_TRUE(run_until(F.base, ref_rc_is_one, obs2, 2000));
    CU_ASSERT_EQUAL(G.pings, 0);
    CU_ASSERT_EQUAL(F.lost[0] + F.lost[1], 0);
    pass_as = &calc_svc;
    ember_ref_release(obs2);
    ember_ref_release(obs);
    ember_ref_release(got_ref);
    got_ref = NULL;
    teardown_basic();
}

/* note(1: string s, 2: list<u64> v), as the root passes n0's exports on. */
static const ember_type str_t = {.kind = EMBER_T_STRING};
static const ember_type u64_t = {.kind = EMBER_T_U64};
static const ember_type u64s_t = {.kind = EMBER_T_LIST, .elem = &u64_t};
static const ember_field_desc note_params[] = {{1, "s", &str_t, false},
                                               {2, "v", &u64s_t, false}};
static const ember_method_desc calc_note_methods[] = {
    {.id = M_NOTE, .name = "note", .dispatch = d_note, .params = note_params,
     .n_params = 2},
};
static const ember_service_desc calc_note_svc = {
    .name = "test.Calc", .id = CALC_ID, .fingerprint = 0x1234, .n_methods = 1,
    .methods = calc_note_methods};

typedef struct note_args { const char *s; uint32_t nv; } note_args;

static void enc_note(ember_enc *e, const void *v)
{
    const note_args *a = v;
    ember_enc_string(e, 1, a->s);
    ember_enc_key(e, 2, EMBER_WT_LEN);
    size_t m = ember_enc_len_begin(e);
    ember_enc_raw_varint(e, a->nv);
    for (uint32_t i = 0; i < a->nv; i++)
        ember_enc_raw_varint(e, i);
    ember_enc_len_end(e, m);
}

/* A root with the defaults, n0 with limits `small` (said when it
 * registers) and n1; the root passes n0's exports on as `as`: the proxy
 * n1 got is got_ref. */
static void setup_proxy_of_n0(const ember_limits *small, const ember_service_desc *as)
{
    fresh_fixture();
    F.root = make_root(NULL, 0);
    make_node("n0", small);
    make_node("n1", NULL);
    CU_ASSERT_TRUE_FATAL(run_until(F.base, all_registered, NULL, 3000));
    CU_ASSERT_EQUAL(ember_exports_add(ember_root_exports(F.root), &pass_svc, NULL, NULL), 0);
    pass_as = as;
    result q = {0};
    got_ref = NULL;
    ember_call_start(ember_node_root(F.node[1]), &pass_svc, 1, NULL, NULL, done_ref,
                     NULL, &q, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &q, 2000));
    CU_ASSERT_PTR_NOT_NULL_FATAL(got_ref);
}

/* n0 takes strings of 16 bytes and lists of 4 at most and says so when it
 * registers; the root's own limits are the defaults. A call through the
 * root's proxy of n0 with a longer string or list would make n0 drop the
 * root (with every call on that connection): the root checks the
 * arguments under the smaller limits, so that call fails FAILED and n0
 * never sees it. The caller broke none of the limits it was told (the
 * root's): it stays, and its next call, within n0's, goes through. */
static void t_proxy_owner_limits(void)
{
    ember_limits small;
    ember_limits_default(&small);
    small.max_string = 16;
    small.max_elems = 4;
    setup_proxy_of_n0(&small, &calc_note_svc);
    const note_args bad[] = {{"a string of 17 b.", 1}, {"short", 5}};
    const char *why[] = {"string or bytes longer than the limit",
                         "list or map longer than the limit"};
    result q = {0};
    for (int i = 0; i < 2; i++) {
        result r = {0};
        ember_call_start(got_ref, &calc_svc, M_NOTE, enc_note, &bad[i], done_i64, NULL,
                         &r, NULL);
        CU_ASSERT_TRUE(run_until(F.base, got, &r, 2000));
        CU_ASSERT_EQUAL(r.n, 1);
        CU_ASSERT_EQUAL(r.st, EMBER_FAILED);
        CU_ASSERT_PTR_NOT_NULL(strstr(r.msg, why[i]));
        CU_ASSERT_PTR_NOT_NULL(strstr(r.msg, "the limits test.Calc.note's owner said"));
    }
    ember_ref_release(got_ref);
    got_ref = NULL;
    /* The caller's connection carries on: a call on it is answered. */
    memset(&q, 0, sizeof q);
    ember_call_start(ember_node_root(F.node[1]), &pass_svc, 1, NULL, NULL, done_ref,
                     NULL, &q, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &q, 2000));
    CU_ASSERT_EQUAL(q.st, EMBER_OK);
    CU_ASSERT_PTR_NOT_NULL(got_ref);
    ember_ref_release(got_ref);
    got_ref = NULL;
    CU_ASSERT_EQUAL(F.lost[1], 0); /* the caller stays */
    CU_ASSERT_EQUAL(F.lost[0], 0); /* n0 too */
    CU_ASSERT_EQUAL(G.nnotes, 0); /* and never saw a call */
    CU_ASSERT_EQUAL(ember_node_state_get(F.node[1]), EMBER_NODE_REGISTERED);
    pass_as = &calc_svc;
    teardown_basic();
}

/* crowd's list of refs, as the root passes n0's exports on. */
static const ember_type obs_refs_t = {.kind = EMBER_T_LIST, .elem = &obs_ref_t};
static const ember_field_desc crowd_params[] = {{1, "who", &obs_refs_t, false}};
static const ember_method_desc calc_crowd_methods[] = {
    {.id = M_CROWD, .name = "crowd", .dispatch = d_crowd, .params = crowd_params,
     .n_params = 1},
};
static const ember_service_desc calc_crowd_svc = {
    .name = "test.Calc", .id = CALC_ID, .fingerprint = 0x1234, .n_methods = 1,
    .methods = calc_crowd_methods};

#define CROWD 20

static void enc_crowd(ember_enc *e, const void *v)
{
    ember_ref *const *who = v;
    ember_enc_key(e, 1, EMBER_WT_LEN);
    size_t m = ember_enc_len_begin(e);
    ember_enc_raw_varint(e, CROWD);
    for (int i = 0; i < CROWD; i++)
        ember_enc_ref_value(e, who[i]);
    ember_enc_len_end(e, m);
}

/* Each ref new to its receiver costs the decode budget its entry in the
 * table of refs as well as its cleanup (ember_dec_raw_ref): the proxy's
 * check counts both, or arguments holding many refs pass it and make the
 * owner, whose decode does count them, drop the root. n0's budget here
 * (a floor of 1000 bytes) holds 20 refs' cleanups, not their entries. */
static void t_proxy_owner_ref_budget(void)
{
    ember_limits small;
    ember_limits_default(&small);
    small.decode_floor = 1000;
    setup_proxy_of_n0(&small, &calc_crowd_svc);
    result r = {0};
    ember_ref *who[CROWD];
    for (int i = 0; i < CROWD; i++)
        CU_ASSERT_PTR_NOT_NULL_FATAL(who[i] = ember_ref_local(&obs_svc, NULL, NULL));
    ember_call_start(got_ref, &calc_svc, M_CROWD, enc_crowd, who, done_i64, NULL, &r, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &r, 2000));
    CU_ASSERT_EQUAL(r.n, 1);
    CU_ASSERT_EQUAL(r.st, EMBER_FAILED);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.msg, "the limits test.Calc.crowd's owner said"));
    for (int i = 0; i < CROWD; i++) { /* every ref went back */
        CU_ASSERT_TRUE(run_until(F.base, ref_rc_is_one, who[i], 2000));
        ember_ref_release(who[i]);
    }
    /* Nobody was dropped: n0's connection carries the next call. */
    args2 x = {2, 3};
    memset(&r, 0, sizeof r);
    ember_call_start(ember_child_ref(child("n0")), &calc_svc, M_ADD, enc_args, &x,
                     done_i64, NULL, &r, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &r, 2000));
    CU_ASSERT_EQUAL(r.st, EMBER_OK);
    CU_ASSERT_EQUAL(F.lost[0], 0);
    CU_ASSERT_EQUAL(F.lost[1], 0);
    CU_ASSERT_EQUAL(G.crowds, 0);
    ember_ref_release(got_ref);
    got_ref = NULL;
    pass_as = &calc_svc;
    teardown_basic();
}

#define NULLS 200
#define PADS 20

/* crowd with NULLS null refs, then PADS unknown fields whose keys take ten
 * bytes where one would do (a varint may be written longer than it needs). */
static void enc_crowd_padded(ember_enc *e, const void *v)
{
    static const uint8_t pad[] = {0xa0, 0x86, 0x80, 0x80, 0x80, 0x80, 0x80,
                                  0x80, 0x80, 0x00, 0x00}; /* field 100: 0 */
    (void)v;
    ember_enc_key(e, 1, EMBER_WT_LEN);
    size_t m = ember_enc_len_begin(e);
    ember_enc_raw_varint(e, NULLS);
    for (int i = 0; i < NULLS; i++)
        ember_enc_ref_value(e, NULL);
    ember_enc_len_end(e, m);
    const ember_bytes b = {pad, sizeof pad};
    for (int i = 0; i < PADS; i++)
        ember_enc_payload(e, &b);
}

/* The owner's decode budget counts the arguments it receives, which the
 * proxy writes anew when they hold refs: each key in its fewest bytes. n0
 * (4 bytes a byte, a floor of 100) cannot take the NULLS pointers of
 * crowd's list from the 245 bytes it would get, though the caller's 425
 * would have paid for them: the proxy checks what it writes, that call
 * alone fails, and n0 never drops the root. */
static void t_proxy_owner_budget_rewritten(void)
{
    ember_limits small;
    ember_limits_default(&small);
    small.decode_ratio = 4;
    small.decode_floor = 100;
    setup_proxy_of_n0(&small, &calc_crowd_svc);
    result r = {0};
    ember_call_start(got_ref, &calc_svc, M_CROWD, enc_crowd_padded, NULL, done_i64, NULL,
                     &r, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &r, 2000));
    CU_ASSERT_EQUAL(r.n, 1);
    CU_ASSERT_EQUAL(r.st, EMBER_FAILED);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.msg, "decode budget"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.msg, "the limits test.Calc.crowd's owner said"));
    /* n0 kept its link to the root, and the caller its own. */
    args2 x = {2, 3};
    memset(&r, 0, sizeof r);
    ember_call_start(ember_child_ref(child("n0")), &calc_svc, M_ADD, enc_args, &x,
                     done_i64, NULL, &r, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &r, 2000));
    CU_ASSERT_EQUAL(r.st, EMBER_OK);
    CU_ASSERT_EQUAL(F.lost[0], 0);
    CU_ASSERT_EQUAL(F.lost[1], 0);
    CU_ASSERT_EQUAL(G.crowds, 0);
    ember_ref_release(got_ref);
    got_ref = NULL;
    pass_as = &calc_svc;
    teardown_basic();
}

static void t_refs_after_free(void)
{
    setup_basic(1);
    G.give = ember_ref_local(&obs_svc, NULL, NULL);
    got_ref = NULL;
    result r = {0};
    ember_call_start(ember_node_root(F.node[0]), &calc_svc, M_GIVE, NULL, NULL, done_ref, NULL,
                     &r, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &r, 2000));
    CU_ASSERT_PTR_NOT_NULL_FATAL(got_ref);
    /* Every kind: one received from the root, a local object the root
     * exported, a child's, the node's root ref. */
    ember_ref *refs[4] = {got_ref, G.give,
                          ember_ref_retain(ember_child_ref(child("n0"))),
                          ember_ref_retain(ember_node_root(F.node[0]))};
    ember_node_free(F.node[0]);
    ember_root_free(F.root);
    F.nn = 0;
    F.root = NULL;
    for (int i = 0; i < 4; i++) {
        result x = {0};
        CU_ASSERT_EQUAL(ember_call_start(refs[i], &obs_svc, M_PING, NULL, NULL, done_i64,
                                         NULL, &x, NULL), 0);
        CU_ASSERT_EQUAL(x.n, 1); /* no loop to defer to: ended inside */
        CU_ASSERT_EQUAL(x.st, EMBER_UNAVAILABLE);
        CU_ASSERT_FALSE(i != 1 && ember_ref_alive(refs[i]));
        ember_ref_release(refs[i]);
    }
    got_ref = NULL;
    G.give = NULL;
    event_base_free(F.base);
}

/* ---- freeing while a callback retries ---- */

static int free_retries;

static void retry_done(const ember_outcome *o, const void *p, size_t n, void *ud)
{
    (void)o;
    (void)p;
    (void)n;
    free_retries++;
    if (free_retries < 100000) /* a bound, so a regression fails, not hangs */
        ember_call_raw(ember_node_root(ud), CALC_ID, M_ADD, "x", 1, retry_done, ud, NULL);
}

static void t_free_while_retrying(void)
{
    fresh_fixture();
    ember_node_config cfg;
    ember_node_config_default(&cfg);
    ember_node *n = ember_node_new(F.base, "retrier", &cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(n);
    /* Port 1: nothing listens, every call ends "not connected" and is
     * started again by its callback. */
    CU_ASSERT_EQUAL(ember_node_connect(n, "127.0.0.1:1"), 0);
    free_retries = 0;
    ember_call_raw(ember_node_root(n), CALC_ID, M_ADD, "x", 1, retry_done, n, NULL);
    int_at_least some = {&free_retries, 3};
    CU_ASSERT_TRUE(run_until(F.base, reached, &some, 2000));
    int before = free_retries;
    ember_node_free(n); /* ends the pending one; its retry is refused */
    CU_ASSERT_EQUAL(free_retries, before + 1);
    event_base_free(F.base);
}

/* ---- a service with no methods ---- */

static const ember_service_desc empty_svc = {
    .name = "test.Empty", .id = EMPTY_ID, .fingerprint = 0x77, .n_methods = 0, .methods = NULL};

static void t_empty_service(void)
{
    fresh_fixture();
    /* First into empty tables (no entry array yet), then alongside others. */
    ember_root *r = ember_root_new(F.base, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL(ember_exports_add(ember_root_exports(r), &empty_svc, NULL,
                                      NULL), 0);
    ember_root_free(r);
    F.root = make_root(NULL, 0);
    CU_ASSERT_EQUAL(ember_exports_add(ember_root_exports(F.root), &empty_svc, NULL,
                                      NULL), 0);
    make_node("n0", NULL);
    CU_ASSERT_EQUAL(ember_exports_add(ember_node_exports(F.node[0]), &empty_svc,
                                      NULL, NULL), 0);
    CU_ASSERT_TRUE_FATAL(run_until(F.base, all_registered, NULL, 3000));
    CU_ASSERT_TRUE(ember_child_has_service(child("n0"), "test.Empty"));
    result x = {0};
    args2 a = {1, 2};
    ember_call_start(ember_node_root(F.node[0]), &calc_svc, M_ADD, enc_args, &a, done_i64, NULL,
                     &x, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &x, 2000));
    CU_ASSERT_EQUAL(x.v, 3);
    teardown_basic();
}

/* ---- many refs in one frame ---- */

#define MANY_REFS 200000

/* Field 1, MANY_REFS times: distinct objects of ours, each made here and
 * held by its export once sent. */
static void enc_many(ember_enc *e, const void *value)
{
    (void)value;
    for (int i = 0; i < MANY_REFS; i++) {
        ember_ref *obj = ember_ref_local(&obs_svc, NULL, NULL);
        ember_enc_ref(e, 1, obj);
        ember_ref_release(obj);
    }
}

static void give_many(ember_call *c, uint32_t sid, uint32_t mid,
                      const void *p, size_t len, void *ud)
{
    (void)sid;
    (void)mid;
    (void)p;
    (void)len;
    (void)ud;
    ember_call_reply(c, enc_many, NULL);
}

static void done_many(const ember_outcome *o, ember_dec *reply, ember_fn cb, void *ud)
{
    result *r = ud;
    uint32_t tag = 0;
    unsigned wt = 0;
    (void)cb;
    r->n++;
    r->st = o->status;
    while (o->status == EMBER_OK && ember_dec_field(reply, &tag, &wt) == 1) {
        ember_ref *x = NULL;
        if (ember_dec_ref(reply, wt, &x) || !x)
            return;
        r->v++;
    }
    /* All distinct: the connection holds one ref each. */
    r->error_id = ember_node_root(F.node[0])->conn->rrefs.n;
}

/* ---- a ref decoded after its connection closed ---- */

static struct {
    int n, rc;
    ember_ref *x;
} DC;

/* Drops the child that answered, then decodes the ref in its reply. */
static void drop_then_decode(const ember_outcome *o, ember_dec *reply, ember_fn cb, void *ud)
{
    uint32_t tag = 0;
    unsigned wt = 0;
    (void)cb;
    (void)ud;
    DC.n++;
    ember_root_drop(F.root, o->child ? o->child : child("n0"), "test: dropped");
    DC.rc = o->status == EMBER_OK && reply && ember_dec_field(reply, &tag, &wt) == 1
                ? ember_dec_ref(reply, wt, &DC.x) : -2;
}

/* A completion that closes the reply's connection and then decodes a ref
 * from it: the ref is refused (its connection is gone), on protocol 2 as
 * on 3; on 2 it was made and left in the closed connection's table,
 * pointing at the connection once it was freed. */
static void t_ref_after_close(void)
{
    for (uint32_t v = 2; v <= 3; v++) {
        fresh_fixture();
        F.root = make_root(NULL, 0);
        ember_proto_max_ = v;
        make_node("n0", NULL);
        ember_proto_max_ = EMBER_PROTOCOL_VERSION;
        CU_ASSERT_TRUE_FATAL(run_until(F.base, all_registered, NULL, 3000));
        G.give = ember_ref_local(&obs_svc, NULL, NULL);
        memset(&DC, 0, sizeof DC);
        ember_call_start(ember_child_ref(child("n0")), &calc_svc, M_GIVE, NULL, NULL,
                         drop_then_decode, NULL, NULL, NULL);
        int_at_least one = {&DC.n, 1};
        CU_ASSERT_TRUE(run_until(F.base, reached, &one, 2000));
        CU_ASSERT_EQUAL(DC.rc, -1);
        CU_ASSERT_PTR_NULL(DC.x);
        ember_ref_release(G.give);
        G.give = NULL;
        teardown_basic();
    }
}

/* ---- max_outstanding as both sides count it ---- */

static int oneway_drops;

static void grab_drop(ember_log_level lv, const char *msg, void *ud)
{
    (void)ud;
    if (lv == EMBER_LOG_WARN && strstr(msg, "dropping ONEWAYs"))
        oneway_drops++;
}

static bool hung_cancelled(void *ud)
{
    int n = *(int *)ud;
    for (int i = 0; i < n; i++)
        if (!ember_call_cancelled(G.hung[i]))
            return false;
    return G.nhung >= n;
}

/* The caller stops counting a call when it times out (or is cancelled),
 * while the callee's handler may still be running it: the calls it makes
 * next, up to max_outstanding, are served, not taken for a violation; and
 * a oneway (which the caller never counts) beyond the limit is dropped. */
static void t_outstanding_after_cancel(void)
{
    fresh_fixture();
    ember_limits lim;
    ember_limits_default(&lim);
    lim.max_outstanding = 4;
    F.root = make_root(&lim, 0);
    make_node("n0", &lim);
    CU_ASSERT_TRUE_FATAL(run_until(F.base, all_registered, NULL, 3000));
    ember_ref *root = ember_node_root(F.node[0]);
    ember_callopts quick = {50};
    result r[8];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 4; i++)
        ember_call_start(root, &calc_svc, M_HANG, NULL, NULL, done_i64, NULL, &r[i], &quick);
    int four = 4;
    CU_ASSERT_TRUE(run_until(F.base, hung_cancelled, &four, 3000));
    for (int i = 0; i < 4; i++)
        CU_ASSERT_EQUAL(r[i].st, EMBER_TIMEOUT);
    for (int i = 4; i < 8; i++)
        ember_call_start(root, &calc_svc, M_HANG, NULL, NULL, done_i64, NULL, &r[i], NULL);
    int_at_least held = {&G.nhung, 8};
    CU_ASSERT_TRUE(run_until(F.base, reached, &held, 3000));
    oneway_drops = 0;
    ember_set_log(grab_drop, NULL);
    CU_ASSERT_EQUAL(ember_oneway_start(root, &calc_svc, M_HANG, NULL, NULL), 0);
    CU_ASSERT_TRUE(run_until(F.base, flag_set, &oneway_drops, 2000));
    quiet_logs();
    CU_ASSERT_EQUAL(G.nhung, 8);
    CU_ASSERT_EQUAL(F.lost[0], 0);
    CU_ASSERT_EQUAL(ember_node_state_get(F.node[0]), EMBER_NODE_REGISTERED);
    for (int i = 0; i < 8; i++)
        ember_call_reply(G.hung[i], NULL, NULL);
    G.nhung = 0;
    int_at_least ended = {&r[7].n, 1};
    CU_ASSERT_TRUE(run_until(F.base, reached, &ended, 2000));
    for (int i = 4; i < 8; i++)
        CU_ASSERT_EQUAL(r[i].st, EMBER_OK);
    teardown_basic();
}

/* ---- the peer's limits ---- */

#define BIG_BYTES 100000

static void give_big(ember_call *c, uint32_t sid, uint32_t mid, const void *p,
                     size_t len, void *ud)
{
    (void)sid;
    (void)mid;
    (void)p;
    (void)len;
    (void)ud;
    static uint8_t big[BIG_BYTES];
    ember_call_reply_raw(c, big, sizeof big);
}

/* n structs, each inside the one before, in field 1. */
static void enc_nested(ember_enc *e, const void *v)
{
    int n = *(const int *)v;
    size_t marks[16];
    for (int i = 0; i < n; i++) {
        ember_enc_key(e, 1, EMBER_WT_LEN);
        marks[i] = ember_enc_len_begin(e);
    }
    for (int i = n - 1; i >= 0; i--)
        ember_enc_len_end(e, marks[i]);
}

/* Decodes every struct nested in field 1, each level checked against the
 * connection's max_depth. */
static int dec_nested(ember_dec *d)
{
    uint32_t tag = 0;
    unsigned wt = 0;
    int k;
    while ((k = ember_dec_field(d, &tag, &wt)) == 1) {
        const uint8_t *saved;
        if (tag != 1)
            k = ember_dec_skip(d, wt);
        else if ((k = ember_dec_enter(d, wt, &saved)) == 0 && (k = dec_nested(d)) == 0)
            ember_dec_leave(d, saved);
        if (k)
            return -1;
    }
    return k;
}

static int d_nested(ember_call *c, ember_dec *d, const void *h, void *ud)
{
    (void)h;
    (void)ud;
    if (dec_nested(d))
        return -1;
    ember_call_reply(c, NULL, NULL);
    return 0;
}

static const ember_method_desc nest_methods[] = {
    {.id = 1, .name = "nest", .dispatch = d_nested}};
static const ember_service_desc nest_svc = {
    .name = "test.Nest", .id = 0x6e657374u, .n_methods = 1, .methods = nest_methods};

/* A node that takes frames of at most 64 KiB and values 8 deep says so at
 * registration: the root keeps what it sends within that, so a frame or a
 * value the node would disconnect for fails alone at the root, and the
 * node stays. */
static void t_peer_limits(void)
{
    fresh_fixture();
    F.root = make_root(NULL, 0);
    ember_limits lim;
    ember_limits_default(&lim);
    lim.max_frame = 64u << 10;
    lim.max_depth = 8;
    make_node("n0", &lim);
    CU_ASSERT_TRUE_FATAL(run_until(F.base, all_registered, NULL, 3000));
    CU_ASSERT_EQUAL(ember_exports_add_raw(ember_root_exports(F.root), CALC_ID, 62, give_big,
                                          NULL), 0);
    CU_ASSERT_EQUAL(ember_exports_add(ember_node_exports(F.node[0]), &nest_svc, NULL, NULL), 0);
    ember_ref *node = ember_child_ref(child("n0"));
    /* A reply too large for the node: the node's call fails, LIMIT. */
    result r = {0};
    ember_call_raw(ember_node_root(F.node[0]), CALC_ID, 62, NULL, 0, raw_done, &r, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &r, 2000));
    CU_ASSERT_EQUAL(r.st, EMBER_LIMIT);
    CU_ASSERT_STRING_EQUAL(r.msg, "reply could not be encoded: frame of 100005 bytes exceeds "
                                  "the peer's max_frame (65536)");
    /* Arguments too large for it: the root's call fails, saying whose
     * limit it is. */
    static uint8_t big[BIG_BYTES];
    result a = {0};
    ember_call_raw(node, CALC_ID, M_ADD, big, sizeof big, raw_done, &a, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &a, 2000));
    CU_ASSERT_EQUAL(a.st, EMBER_LIMIT);
    CU_ASSERT_STRING_EQUAL(a.msg, "arguments could not be encoded: frame of 100011 bytes "
                                  "exceeds the peer's max_frame (65536)");
    /* A value deeper than the node takes: the call fails, FAILED; 8 levels
     * (the payload struct and 7 inside it) go. */
    int deep = 8, ok = 7;
    result d = {0}, k = {0};
    ember_call_start(node, &nest_svc, 1, enc_nested, &deep, done_i64, NULL, &d, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &d, 2000));
    CU_ASSERT_EQUAL(d.st, EMBER_FAILED);
    CU_ASSERT_PTR_NOT_NULL(strstr(d.msg, "nested deeper than max_depth"));
    ember_call_start(node, &nest_svc, 1, enc_nested, &ok, done_i64, NULL, &k, NULL);
    CU_ASSERT_TRUE(run_until(F.base, got, &k, 2000));
    CU_ASSERT_EQUAL(k.st, EMBER_OK);
    CU_ASSERT_EQUAL(F.lost[0], 0);
    CU_ASSERT_EQUAL(ember_node_state_get(F.node[0]), EMBER_NODE_REGISTERED);
    teardown_basic();
}

static bool no_exports(void *ud)
{
    return ((ember_conn *)ud)->xobj_oids.n == 0;
}

static void t_many_refs(void)
{
    /* 200,000 new refs take ~29 MB decoded (each its entry, ~120 bytes,
     * and its cleanup) for 0.8 MB on the wire: over the default decode
     * budget (x16), as the docs say; a node that expects such replies
     * raises decode_ratio. */
    fresh_fixture();
    F.root = make_root(NULL, 0);
    ember_limits lim;
    ember_limits_default(&lim);
    lim.decode_ratio = 64;
    make_node("n0", &lim);
    CU_ASSERT_TRUE_FATAL(run_until(F.base, all_registered, NULL, 3000));
    CU_ASSERT_EQUAL(ember_exports_add_raw(ember_root_exports(F.root), CALC_ID, 61, give_many,
                                          NULL), 0);
    result r = {0};
    ember_call_start(ember_node_root(F.node[0]), &calc_svc, 61, NULL, NULL, done_many, NULL,
                     &r, NULL);
    /* Looked up by a linear scan, the refs would take minutes. */
    CU_ASSERT_TRUE(run_until(F.base, got, &r, 10000));
    CU_ASSERT_EQUAL(r.st, EMBER_OK);
    CU_ASSERT_EQUAL(r.v, MANY_REFS);
    CU_ASSERT_EQUAL(r.error_id, MANY_REFS);
    /* Released with the reply: every one goes back (DECREF). */
    CU_ASSERT_EQUAL(ember_node_root(F.node[0])->conn->rrefs.n, 0);
    CU_ASSERT_EQUAL(ember_node_state_get(F.node[0]), EMBER_NODE_REGISTERED);
    /* ... and the root drops every export once the DECREFs arrive. */
    ember_conn *rc = ember_child_ref(ember_root_child_by_name(F.root, "n0"))->conn;
    CU_ASSERT_TRUE(run_until(F.base, no_exports, rc, 5000));
    teardown_basic();
}

void add_e2e_suite(void)
{
    CU_pSuite s = CU_add_suite("end-to-end", NULL, NULL);
    CU_add_test(s, "register", t_register);
    CU_add_test(s, "calls both ways (typed and raw)", t_calls_both_ways);
    CU_add_test(s, "deferred reply", t_deferred);
    CU_add_test(s, "raised, failed, no method", t_raised_failed_nomethod);
    CU_add_test(s, "raw fallback handler", t_raw_fallback);
    CU_add_test(s, "raw gate: service, method, oneway; every answer", t_raw_gate);
    CU_add_test(s, "timeout", t_timeout);
    CU_add_test(s, "cancel", t_cancel);
    CU_add_test(s, "oneway", t_oneway);
    CU_add_test(s, "a ONEWAY to a two-way method, a CALL to a oneway one", t_kind_mismatch);
    CU_add_test(s, "refs passed, called back, released", t_refs);
    CU_add_test(s, "broadcast", t_broadcast);
    CU_add_test(s, "connection killed with calls pending", t_kill_pending);
    CU_add_test(s, "reconnect after root restart", t_reconnect_after_root_restart);
    CU_add_test(s, "duplicate name, old alive", t_dup_alive);
    CU_add_test(s, "duplicate name, old silent", t_dup_dead);
    CU_add_test(s, "duplicate name, old idle but alive", t_dup_idle_alive);
    CU_add_test(s, "heartbeat declares silent peer dead", t_heartbeat_dead);
    CU_add_test(s, "heartbeat sweep goes on past a child dropped in on_leave",
                t_sweep_survives_drop);
    CU_add_test(s, "a stalled loop does not drop its live peers", t_stalled_loop_keeps_peers);
    CU_add_test(s, "protocol violations disconnect", t_protocol_violations);
    CU_add_test(s, "max_outstanding fails fast", t_limits);
    CU_add_test(s, "graceful close and shutdown", t_graceful);
    CU_add_test(s, "allocations per call", t_alloc_per_call);
    CU_add_test(s, "1000 nodes", t_thousand_nodes);
    CU_add_test(s, "one base: a node of two roots, root and node at once",
                t_two_roots_one_base);
    CU_add_test(s, "separate processes", t_separate_processes);
    CU_add_test(s, "unix socket and IPv6", t_unix_and_ipv6);
    CU_add_test(s, "idle child memory", t_idle_child_memory);
    CU_add_test(s, "output high water fails fast", t_high_water);
    CU_add_test(s, "large frames both ways", t_large_frames);
    CU_add_test(s, "per-method stats", t_stats);
    CU_add_test(s, "refs die with their connection", t_remote_ref_dies_with_connection);
    CU_add_test(s, "call back the caller; bad arguments", t_bad_args_and_callback);
    CU_add_test(s, "closing a node that never connected", t_close_idle_node);
    CU_add_test(s, "a host name that does not resolve is retried", t_connect_unresolved_name);
    CU_add_test(s, "adopting a connected socket", t_adopt_fd);
    CU_add_test(s, "a ref as a result", t_ref_as_result);
    CU_add_test(s, "refs never decoded go back to their owner", t_refs_never_decoded);
    CU_add_test(s, "what is sent stays within the peer's limits", t_peer_limits);
    CU_add_test(s, "max_outstanding as the caller counts it", t_outstanding_after_cancel);
    CU_add_test(s, "a ref decoded after its connection closed", t_ref_after_close);
    CU_add_test(s, "a proxy does not copy refs its types do not place",
                t_proxy_refs_untyped);
    CU_add_test(s, "a proxy checks arguments under the owner's limits",
                t_proxy_owner_limits);
    CU_add_test(s, "a proxy counts the refs' entries as the owner does",
                t_proxy_owner_ref_budget);
    CU_add_test(s, "a proxy checks the budget of the arguments it writes",
                t_proxy_owner_budget_rewritten);
    CU_add_test(s, "20000 calls in flight", t_pipelined);
    CU_add_test(s, "deadlines end in order", t_deadline_order);
    CU_add_test(s, "deadlines behind held calls, a child dropped", t_deadline_behind_held);
    CU_add_test(s, "50 ms deadlines from every kind of place", t_deadline_contexts);
    CU_add_test(s, "a reply outlives calls its callback ends",
                t_nested_delivery_keeps_reply);
    CU_add_test(s, "a second answer inside the handler", t_second_answer);
    CU_add_test(s, "a broadcast outcome ends before its child goes",
                t_broadcast_child_dropped);
    CU_add_test(s, "refs outlive their root and node", t_refs_after_free);
    CU_add_test(s, "freeing while a callback retries", t_free_while_retrying);
    CU_add_test(s, "a service with no methods", t_empty_service);
    CU_add_test(s, "200000 refs in one reply", t_many_refs);
}
