/*
 * test_edges.c — the API at its edges: zeroed configs, the port of every
 * listener, node names checked at creation, the keyed hash against its
 * reference, log escaping.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "ember-internal.h"
#include "hash-internal.h"
#include "probe-internal.h" /* ember_log_reread_env_ */

/* ---- a root and nodes on one base ---- */

static struct event_base *base;

#define EDGE_SVC 0xed9e0001u /* the raw echo service */

static void echo(ember_call *call, uint32_t sid, uint32_t id, const void *p,
                 size_t n, void *ud)
{
    (void)sid;
    (void)id;
    (void)ud;
    ember_call_reply_raw(call, p, n);
}

typedef struct ended {
    int n;
    ember_status st;
    char msg[200];
} ended;

static void raw_done(const ember_outcome *o, const void *p, size_t n, void *ud)
{
    ended *e = ud;
    (void)p;
    (void)n;
    e->n++;
    e->st = o->status;
    snprintf(e->msg, sizeof e->msg, "%s", o->message ? o->message : "");
}

static bool registered(void *ud)
{
    return ember_node_state_get(ud) == EMBER_NODE_REGISTERED;
}

static bool has_ended(void *ud) { return ((ended *)ud)->n > 0; }

static ember_node *node_at(const char *name, int port, const ember_node_config *cfg)
{
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    ember_node *n = ember_node_new(base, name, cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(n);
    CU_ASSERT_EQUAL(ember_node_connect(n, addr), 0);
    return n;
}

/* ---- zero-initialised configs ---- */

static void t_zero_configs(void)
{
    base = event_base_new();
    ember_root_config rc = {0};
    ember_root *r = ember_root_new(base, &rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    ember_exports_add_raw(ember_root_exports(r), EDGE_SVC, 7, echo, NULL);
    CU_ASSERT_EQUAL_FATAL(ember_root_listen(r, "127.0.0.1:0"), 0);
    ember_node_config nc = {0};
    ember_node *n = node_at("zero", ember_root_port(r), &nc);
    /* With zero limits taken literally the handshake deadline is 0 ms and
     * every registration times out at once. */
    CU_ASSERT_TRUE(run_until(base, registered, n, 3000));
    ended e = {0, EMBER_OK, ""};
    CU_ASSERT_NOT_EQUAL(ember_call_raw(ember_node_root(n), EDGE_SVC, 7, "hi", 2, raw_done,
                                       &e, NULL), 0);
    CU_ASSERT_TRUE(run_until(base, has_ended, &e, 3000));
    CU_ASSERT_EQUAL(e.st, EMBER_OK);
    /* What the endpoint runs with is the defaults, field by field. */
    ember_limits d, got;
    memset(&d, 0, sizeof d); /* padding too: compared with memcmp */
    memset(&got, 0, sizeof got);
    ember_limits_default(&d);
    ember_limits_resolve(&got);
    CU_ASSERT_EQUAL(memcmp(&d, &got, sizeof d), 0);
    ember_node_free(n);
    ember_root_free(r);
    event_base_free(base);
}

/* ---- shutdown deadlines ---- */

static ember_call *held_call;
static void hold(ember_call *call, uint32_t sid, uint32_t id, const void *p,
                 size_t n, void *ud)
{
    (void)sid;
    (void)id;
    (void)p;
    (void)n;
    (void)ud;
    held_call = call; /* answered only after the stop */
}

static bool holding(void *ud)
{
    (void)ud;
    return held_call != NULL;
}

static int stops;
static void root_stopped(ember_root *r, void *ud)
{
    (void)r;
    (void)ud;
    stops++;
}
static void node_closed(ember_node *n, void *ud)
{
    (void)n;
    (void)ud;
    stops++;
}

static void t_shutdown_deadline(void)
{
    base = event_base_new();
    ember_root_config rc = {0};
    rc.limits.shutdown_ms = 300;
    ember_root *r = ember_root_new(base, &rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    ember_exports_add_raw(ember_root_exports(r), EDGE_SVC, 8, hold, NULL);
    CU_ASSERT_EQUAL_FATAL(ember_root_listen(r, "127.0.0.1:0"), 0);
    ember_node_config nc = {0};
    nc.backoff_min_ms = 5000; /* it must not come back during the test */
    ember_node *n = node_at("stuck", ember_root_port(r), &nc);
    ember_exports_add_raw(ember_node_exports(n), EDGE_SVC, 9, hold, NULL);
    CU_ASSERT_TRUE_FATAL(run_until(base, registered, n, 3000));
    /* The node calls the root, whose handler never answers by itself... */
    ended served = {0, EMBER_OK, ""}, made = {0, EMBER_OK, ""};
    held_call = NULL;
    ember_call_raw(ember_node_root(n), EDGE_SVC, 8, "x", 1, raw_done, &served, NULL);
    CU_ASSERT_TRUE_FATAL(run_until(base, holding, NULL, 3000));
    ember_call *root_held = held_call;
    held_call = NULL;
    /* ...and the root calls the node, whose handler never answers either. */
    ember_child *c = ember_root_child_by_name(r, "stuck");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    ember_call_raw(ember_child_ref(c), EDGE_SVC, 9, "y", 1, raw_done, &made, NULL);
    CU_ASSERT_TRUE_FATAL(run_until(base, holding, NULL, 3000));
    ember_call *node_held = held_call;
    stops = 0;
    uint64_t t0 = ember_now_ms();
    ember_root_shutdown(r, root_stopped, NULL);
    int one = 1;
    CU_ASSERT_TRUE(run_until(base, flag_set, &stops, 3000));
    uint64_t took = ember_now_ms() - t0;
    CU_ASSERT_EQUAL(stops, one);
    /* It waited for the deadline. libevent times its timers with the coarse
     * monotonic clock (a tick of up to 4 ms behind ours) and ember_now_ms
     * truncates: a few ms of slack, no more. */
    CU_ASSERT_TRUE(took + 10 >= 300);
    /* The root's own call ends SHUTDOWN; the one it served is orphaned:
     * the node's call ends when the connection goes, the late answer is a
     * no-op. */
    CU_ASSERT_TRUE(run_until(base, has_ended, &made, 1000));
    CU_ASSERT_EQUAL(made.n, 1);
    CU_ASSERT_EQUAL(made.st, EMBER_SHUTDOWN);
    CU_ASSERT_TRUE(run_until(base, has_ended, &served, 1000));
    CU_ASSERT_EQUAL(served.st, EMBER_LOST);
    CU_ASSERT_TRUE(strstr(served.msg, "shutdown deadline passed") != NULL);
    CU_ASSERT_EQUAL(ember_call_reply_raw(root_held, "late", 4), 0);
    ember_call_reply_raw(node_held, "late", 4); /* its caller went: no-op */
    run_for(base, 20);
    CU_ASSERT_EQUAL(made.n, 1);
    CU_ASSERT_EQUAL(served.n, 1);
    ember_root_free(r);
    ember_node_free(n);
    event_base_free(base);
}

static void t_close_deadline(void)
{
    base = event_base_new();
    ember_root *r = ember_root_new(base, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL_FATAL(ember_root_listen(r, "127.0.0.1:0"), 0);
    ember_node_config nc = {0};
    nc.limits.shutdown_ms = 200;
    ember_node *n = node_at("closing", ember_root_port(r), &nc);
    ember_exports_add_raw(ember_node_exports(n), EDGE_SVC, 9, hold, NULL);
    CU_ASSERT_TRUE_FATAL(run_until(base, registered, n, 3000));
    ember_child *c = ember_root_child_by_name(r, "closing");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    ended made = {0, EMBER_OK, ""}, mine = {0, EMBER_OK, ""};
    held_call = NULL;
    ember_call_raw(ember_child_ref(c), EDGE_SVC, 9, "y", 1, raw_done, &made, NULL);
    CU_ASSERT_TRUE_FATAL(run_until(base, holding, NULL, 3000));
    stops = 0;
    ember_node_close(n, node_closed, NULL);
    /* Refused while closing: new calls from the node. */
    ember_call_raw(ember_node_root(n), EDGE_SVC, 8, "z", 1, raw_done, &mine, NULL);
    CU_ASSERT_TRUE(run_until(base, flag_set, &stops, 3000));
    CU_ASSERT_EQUAL(ember_node_state_get(n), EMBER_NODE_CLOSED);
    CU_ASSERT_TRUE(run_until(base, has_ended, &made, 1000));
    CU_ASSERT_EQUAL(made.st, EMBER_LOST); /* at the root: the node went */
    CU_ASSERT_TRUE(run_until(base, has_ended, &mine, 1000));
    CU_ASSERT_EQUAL(mine.st, EMBER_UNAVAILABLE);
    ember_call_reply_raw(held_call, "late", 4); /* orphaned: a no-op */
    run_for(base, 20);
    CU_ASSERT_EQUAL(stops, 1);
    CU_ASSERT_EQUAL(made.n, 1);
    ember_node_free(n);
    ember_root_free(r);
    event_base_free(base);
}

/* A closed node stays closed: ember_node_connect (and _pb) refuse it, so
 * it neither registers again nor runs its close's done a second time. */
static void t_closed_node_stays_closed(void)
{
    base = event_base_new();
    ember_root *r = ember_root_new(base, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL_FATAL(ember_root_listen(r, "127.0.0.1:0"), 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ember_root_port(r));

    /* Closed before it ever connected. */
    ember_node *idle = ember_node_new(base, "idle", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(idle);
    stops = 0;
    ember_node_close(idle, node_closed, NULL);
    CU_ASSERT_TRUE_FATAL(run_until(base, flag_set, &stops, 3000));
    CU_ASSERT_EQUAL(ember_node_connect(idle, addr), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(ember_last_error(), "closed"));
    CU_ASSERT_EQUAL(ember_node_connect_pb(idle, addr), -1);

    /* Closed after registering. */
    ember_node *n = node_at("was-here", ember_root_port(r), NULL);
    CU_ASSERT_TRUE_FATAL(run_until(base, registered, n, 3000));
    ember_node_close(n, node_closed, NULL);
    int_at_least two = {&stops, 2};
    CU_ASSERT_TRUE_FATAL(run_until(base, reached, &two, 3000));
    CU_ASSERT_EQUAL(ember_node_connect(n, addr), -1);
    /* Calls say why they cannot go: the node is closed, not "not
     * connected" as if it would connect later. */
    ended e = {0, EMBER_OK, ""};
    ember_call_raw(ember_node_root(n), EDGE_SVC, 7, "hi", 2, raw_done, &e, NULL);
    CU_ASSERT_TRUE(run_until(base, has_ended, &e, 3000));
    CU_ASSERT_EQUAL(e.st, EMBER_UNAVAILABLE);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "node is closed"));
    CU_ASSERT_EQUAL(ember_oneway_raw(ember_node_root(idle), EDGE_SVC, 7, "hi", 2), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(ember_last_error(), "node is closed"));

    run_for(base, 300); /* a reconnect, had one started, would be done */
    CU_ASSERT_EQUAL(stops, 2);
    CU_ASSERT_EQUAL(ember_node_state_get(idle), EMBER_NODE_CLOSED);
    CU_ASSERT_EQUAL(ember_node_state_get(n), EMBER_NODE_CLOSED);
    CU_ASSERT_EQUAL(ember_root_child_count(r), 0);
    ember_node_free(idle);
    ember_node_free(n);
    ember_root_free(r);
    event_base_free(base);
}

/* A node closed from its on_state as it starts connecting stays closed:
 * the attempt that state announced is not made. */
static int cs_states[5], cs_after_closed;
static void close_on_connecting(ember_node *n, ember_node_state st, const char *why,
                                void *ud)
{
    (void)why;
    (void)ud;
    if (cs_states[EMBER_NODE_CLOSED])
        cs_after_closed++;
    cs_states[st]++;
    if (st == EMBER_NODE_CONNECTING)
        ember_node_close(n, node_closed, NULL);
}

static bool has_child(void *ud) { return ember_root_child_count(ud) > 0; }

static void t_close_in_on_state(void)
{
    base = event_base_new();
    ember_root *r = ember_root_new(base, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL_FATAL(ember_root_listen(r, "127.0.0.1:0"), 0);
    ember_node_config nc = {0};
    nc.on_state = close_on_connecting;
    memset(cs_states, 0, sizeof cs_states);
    cs_after_closed = 0;
    stops = 0;
    ember_node *n = node_at("closes-at-once", ember_root_port(r), &nc);
    CU_ASSERT_TRUE_FATAL(run_until(base, flag_set, &stops, 3000));
    /* Had the connection been made anyway, it would register meanwhile. */
    CU_ASSERT_FALSE(run_until(base, has_child, r, 500));
    CU_ASSERT_EQUAL(stops, 1);
    CU_ASSERT_EQUAL(ember_node_state_get(n), EMBER_NODE_CLOSED);
    CU_ASSERT_EQUAL(cs_states[EMBER_NODE_CONNECTING], 1);
    CU_ASSERT_EQUAL(cs_states[EMBER_NODE_REGISTERED], 0);
    CU_ASSERT_EQUAL(cs_states[EMBER_NODE_CLOSED], 1);
    CU_ASSERT_EQUAL(cs_after_closed, 0);
    ember_node_free(n);
    ember_root_free(r);
    event_base_free(base);
}

/* A second ember_root_shutdown while the first is under way changes
 * nothing: the first call's done runs, once, and the second's never. */
static int first_done, second_done;
static void count_done(ember_root *r, void *ud)
{
    (void)r;
    (*(int *)ud)++;
}

static void t_shutdown_twice(void)
{
    base = event_base_new();
    ember_root *r = ember_root_new(base, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL_FATAL(ember_root_listen(r, "127.0.0.1:0"), 0);
    ember_node *n = node_at("stays", ember_root_port(r), NULL);
    CU_ASSERT_TRUE_FATAL(run_until(base, registered, n, 3000));
    first_done = second_done = 0;
    ember_root_shutdown(r, count_done, &first_done);
    ember_root_shutdown(r, count_done, &second_done);
    CU_ASSERT_TRUE(run_until(base, flag_set, &first_done, 3000));
    run_for(base, 50);
    CU_ASSERT_EQUAL(first_done, 1);
    CU_ASSERT_EQUAL(second_done, 0);
    /* A stopped root listens no more: a listener made now would accept
     * nodes only to close them. */
    CU_ASSERT_EQUAL(ember_root_listen(r, "127.0.0.1:0"), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(ember_last_error(), "shutting down"));
    CU_ASSERT_EQUAL(ember_root_listen_pb(r, "127.0.0.1:0"), -1);
    CU_ASSERT_EQUAL(ember_root_listener_count(r), 1);
    ember_node_free(n);
    ember_root_free(r);
    event_base_free(base);
}

/* ---- what may be done from inside callbacks ---- */

static ember_node *cb_node;
static int cb_closed, cb_in_call;
static ended cb_first, cb_on_state, cb_unavail;

static void closed_once(ember_node *n, void *ud)
{
    (void)n;
    (void)ud;
    cb_closed++;
}

/* A completion callback that closes its node. */
static void done_then_close(const ember_outcome *o, const void *p, size_t n,
                            void *ud)
{
    raw_done(o, p, n, ud);
    ember_node_close(cb_node, closed_once, NULL);
}

static void unavail_done(const ember_outcome *o, const void *p, size_t n,
                         void *ud)
{
    CU_ASSERT_EQUAL(cb_in_call, 0); /* from the loop, not inside the call */
    raw_done(o, p, n, ud);
}

/* on_state starts calls: on REGISTERED one that works, on CONNECTING one
 * that must end UNAVAILABLE from the loop. */
static void state_calls(ember_node *n, ember_node_state st, const char *why,
                        void *ud)
{
    (void)why;
    (void)ud;
    if (st == EMBER_NODE_REGISTERED && !cb_on_state.n)
        ember_call_raw(ember_node_root(n), EDGE_SVC, 7, "st", 2, raw_done,
                       &cb_on_state, NULL);
    if (st == EMBER_NODE_CONNECTING && !cb_unavail.n) {
        cb_in_call = 1;
        ember_call_raw(ember_node_root(n), EDGE_SVC, 7, "un", 2, unavail_done,
                       &cb_unavail, NULL);
        cb_in_call = 0;
    }
}

static void t_callbacks(void)
{
    base = event_base_new();
    ember_root *r = ember_root_new(base, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    ember_exports_add_raw(ember_root_exports(r), EDGE_SVC, 7, echo, NULL);
    CU_ASSERT_EQUAL_FATAL(ember_root_listen(r, "127.0.0.1:0"), 0);
    memset(&cb_first, 0, sizeof cb_first);
    memset(&cb_on_state, 0, sizeof cb_on_state);
    memset(&cb_unavail, 0, sizeof cb_unavail);
    cb_closed = 0;
    ember_node_config nc = {0};
    nc.on_state = state_calls;
    cb_node = node_at("cb", ember_root_port(r), &nc);
    CU_ASSERT_TRUE_FATAL(run_until(base, registered, cb_node, 3000));
    CU_ASSERT_TRUE(run_until(base, has_ended, &cb_on_state, 3000));
    CU_ASSERT_EQUAL(cb_on_state.st, EMBER_OK);
    CU_ASSERT_TRUE(run_until(base, has_ended, &cb_unavail, 3000));
    CU_ASSERT_EQUAL(cb_unavail.st, EMBER_UNAVAILABLE);
    /* A completion callback closes the node: the close finishes once. */
    ember_call_raw(ember_node_root(cb_node), EDGE_SVC, 7, "x", 1,
                   done_then_close, &cb_first, NULL);
    CU_ASSERT_TRUE(run_until(base, flag_set, &cb_closed, 3000));
    CU_ASSERT_EQUAL(cb_first.st, EMBER_OK);
    CU_ASSERT_EQUAL(ember_node_state_get(cb_node), EMBER_NODE_CLOSED);
    run_for(base, 20);
    CU_ASSERT_EQUAL(cb_closed, 1);
    CU_ASSERT_EQUAL(cb_first.n, 1);
    ember_node_free(cb_node);
    ember_root_free(r);
    event_base_free(base);
}

/* A node freed while it serves a call: the late answer is a no-op, as
 * after ember_root_free. */
static void t_orphans_after_node_free(void)
{
    base = event_base_new();
    ember_root *r = ember_root_new(base, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL_FATAL(ember_root_listen(r, "127.0.0.1:0"), 0);
    ember_node *n = node_at("freed", ember_root_port(r), NULL);
    ember_exports_add_raw(ember_node_exports(n), EDGE_SVC, 9, hold, NULL);
    CU_ASSERT_TRUE_FATAL(run_until(base, registered, n, 3000));
    ember_child *c = ember_root_child_by_name(r, "freed");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    ended made = {0, EMBER_OK, ""};
    held_call = NULL;
    ember_call_raw(ember_child_ref(c), EDGE_SVC, 9, "y", 1, raw_done, &made,
                   NULL);
    CU_ASSERT_TRUE_FATAL(run_until(base, holding, NULL, 3000));
    ember_node_free(n);
    CU_ASSERT_TRUE(run_until(base, has_ended, &made, 3000));
    CU_ASSERT_EQUAL(made.st, EMBER_LOST);
    CU_ASSERT_TRUE(ember_call_cancelled(held_call));
    CU_ASSERT_EQUAL(ember_call_reply_raw(held_call, "late", 4), 0);
    run_for(base, 20);
    CU_ASSERT_EQUAL(made.n, 1);
    ember_root_free(r);
    event_base_free(base);
}

/* ---- strings that are not UTF-8 ---- */

/* service edge.Utf { string greet(1: string who) = 1; } by hand, with its
 * run-time types (what idlc generates). */
#define UTF_SVC 0xed9e0002u
static const ember_type t_string = {EMBER_T_STRING, NULL, NULL, NULL, NULL, 0, NULL};
static const ember_field_desc greet_params[] = {{1, "who", &t_string, false}};

static void enc_str(ember_enc *e, const void *v)
{
    ember_enc_string(e, 1, v);
}

static int d_greet(ember_call *c, ember_dec *d, const void *h, void *ud)
{
    const char *who = "";
    uint32_t tag;
    unsigned wt;
    int k;
    (void)h;
    (void)ud;
    while ((k = ember_dec_field(d, &tag, &wt)) == 1)
        if ((tag == 1 ? ember_dec_string(d, wt, &who) : ember_dec_skip(d, wt)))
            return -1;
    if (k < 0)
        return -1;
    /* "bad-reply": the handler answers with a string that is not UTF-8. */
    ember_call_reply(c, enc_str, strcmp(who, "bad-reply") ? who : "caf\xe9");
    return 0;
}

static const ember_method_desc utf_methods[] = {
    {.id = 1, .name = "greet", .dispatch = d_greet, .params = greet_params,
     .n_params = 1, .result = &t_string}};
static const ember_service_desc utf_svc = {
    .name = "edge.Utf", .id = UTF_SVC, .n_methods = 1, .methods = utf_methods};

static void greet_done(const ember_outcome *o, ember_dec *reply, ember_fn cb,
                       void *ud)
{
    ended *e = ud;
    (void)reply;
    (void)cb;
    e->n++;
    e->st = o->status;
    snprintf(e->msg, sizeof e->msg, "%s", o->message ? o->message : "");
}

static int lost_states;
static void count_lost(ember_node *n, ember_node_state st, const char *why,
                       void *ud)
{
    (void)n;
    (void)why;
    (void)ud;
    lost_states += st == EMBER_NODE_LOST;
}

static void t_bad_utf8(void)
{
    base = event_base_new();
    ember_root *r = ember_root_new(base, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL(ember_exports_add(ember_root_exports(r), &utf_svc, NULL,
                                      NULL), 0);
    CU_ASSERT_EQUAL_FATAL(ember_root_listen(r, "127.0.0.1:0"), 0);
    ember_node_config nc = {0};
    nc.on_state = count_lost;
    lost_states = 0;
    ember_node *n = node_at("utf", ember_root_port(r), &nc);
    CU_ASSERT_TRUE_FATAL(run_until(base, registered, n, 3000));
    ember_ref *root = ember_node_root(n);
    ended before = {0, EMBER_OK, ""}, bad = {0, EMBER_OK, ""};
    ended after = {0, EMBER_OK, ""}, badrep = {0, EMBER_OK, ""};
    ended last = {0, EMBER_OK, ""};
    /* A good call in flight, then one whose argument is not UTF-8: it
     * alone fails, locally, naming the argument. */
    ember_call_start(root, &utf_svc, 1, enc_str, "ok", greet_done, NULL,
                     &before, NULL);
    CU_ASSERT_EQUAL(ember_call_start(root, &utf_svc, 1, enc_str, "\xc3\x28",
                                     greet_done, NULL, &bad, NULL), 0);
    CU_ASSERT_EQUAL(bad.n, 0); /* ends from the loop, not inside */
    ember_call_start(root, &utf_svc, 1, enc_str, "still", greet_done, NULL,
                     &after, NULL);
    /* The handler's reply is not UTF-8: that call alone fails. */
    ember_call_start(root, &utf_svc, 1, enc_str, "bad-reply", greet_done, NULL,
                     &badrep, NULL);
    ember_call_start(root, &utf_svc, 1, enc_str, "last", greet_done, NULL,
                     &last, NULL);
    CU_ASSERT_TRUE(run_until(base, has_ended, &last, 3000));
    CU_ASSERT_TRUE(run_until(base, has_ended, &badrep, 3000));
    CU_ASSERT_EQUAL(before.st, EMBER_OK);
    CU_ASSERT_EQUAL(after.st, EMBER_OK);
    CU_ASSERT_EQUAL(last.st, EMBER_OK);
    CU_ASSERT_EQUAL(bad.n, 1);
    CU_ASSERT_EQUAL(bad.st, EMBER_FAILED);
    CU_ASSERT_TRUE(strstr(bad.msg, "argument who of edge.Utf.greet is not "
                                   "valid UTF-8") != NULL);
    CU_ASSERT_EQUAL(badrep.st, EMBER_FAILED);
    CU_ASSERT_TRUE(strstr(badrep.msg, "not valid UTF-8") != NULL);
    /* A oneway with a bad string is refused at once. */
    CU_ASSERT_EQUAL(ember_oneway_start(root, &utf_svc, 1, enc_str, "\xff"), -1);
    CU_ASSERT_TRUE(strstr(ember_last_error(), "not valid UTF-8") != NULL);
    /* So is a broadcast (its arguments are encoded once): no child is
     * called and no outcome ever comes. */
    ended bcast = {0, EMBER_OK, ""};
    CU_ASSERT_EQUAL(ember_root_broadcast(r, NULL, NULL, &utf_svc, 1, enc_str, "\xc3\x28",
                                         greet_done, NULL, &bcast, NULL), -1);
    /* ... and says which argument, as the call does. */
    CU_ASSERT_TRUE(strstr(ember_last_error(), "broadcast not sent: argument who "
                                              "of edge.Utf.greet is not valid UTF-8") != NULL);
    CU_ASSERT_FALSE(run_until(base, has_ended, &bcast, 200));
    /* Nobody was disconnected. */
    CU_ASSERT_EQUAL(lost_states, 0);
    CU_ASSERT_EQUAL(ember_node_state_get(n), EMBER_NODE_REGISTERED);
    ember_node_free(n);
    ember_root_free(r);
    event_base_free(base);
}

/* ---- the port of every listener ---- */

static void t_listener_ports(void)
{
    base = event_base_new();
    ember_root *r = ember_root_new(base, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL(ember_root_listener_count(r), 0);
    CU_ASSERT_EQUAL(ember_root_port(r), -1);
    CU_ASSERT_EQUAL_FATAL(ember_root_listen(r, "127.0.0.1:0"), 0);
    CU_ASSERT_EQUAL_FATAL(ember_root_listen(r, "127.0.0.1:0"), 0);
    CU_ASSERT_EQUAL(ember_root_listener_count(r), 2);
    int p0 = ember_root_listener_port(r, 0), p1 = ember_root_listener_port(r, 1);
    CU_ASSERT_TRUE(p0 > 0 && p1 > 0 && p0 != p1);
    CU_ASSERT_EQUAL(ember_root_port(r), p0);
    CU_ASSERT_EQUAL(ember_root_listener_port(r, 2), -1);
    CU_ASSERT_EQUAL(ember_root_listener_port(r, -1), -1);
    /* Each port really is one of the root's. */
    ember_node *a = node_at("via-first", p0, NULL);
    ember_node *b = node_at("via-second", p1, NULL);
    CU_ASSERT_TRUE(run_until(base, registered, a, 3000));
    CU_ASSERT_TRUE(run_until(base, registered, b, 3000));
    CU_ASSERT_EQUAL(ember_root_child_count(r), 2);
    ember_node_free(a);
    ember_node_free(b);
    ember_root_free(r);
    event_base_free(base);
}

/* ---- node names ---- */

static void t_node_names(void)
{
    base = event_base_new();
    char name[300];
    memset(name, 'a', sizeof name);
    name[299] = 0;
    CU_ASSERT_PTR_NULL(ember_node_new(base, name, NULL));
    CU_ASSERT_TRUE(strstr(ember_last_error(), "1..255 bytes") != NULL);
    CU_ASSERT_PTR_NULL(ember_node_new(base, "bad\xff" "name", NULL));
    CU_ASSERT_TRUE(strstr(ember_last_error(), "UTF-8") != NULL);
    CU_ASSERT_PTR_NULL(ember_node_new(base, "\xc0\xaf", NULL)); /* overlong */
    /* Control characters: C0, DEL, C1 (U+0085, NEL), the line separator,
     * the bidirectional marks and overrides; U+00A0, U+2027 and U+202F are
     * fine. */
    static const char *const controls[] = {
        "a\nb", "tab\there", "del\x7f", "nel\xc2\x85", "ls\xe2\x80\xa8",
        "rlo\xe2\x80\xaetxt", "rlm\xe2\x80\x8f", "rli\xe2\x81\xa7", "alm\xd8\x9c"};
    for (size_t i = 0; i < sizeof controls / sizeof controls[0]; i++) {
        CU_ASSERT_PTR_NULL(ember_node_new(base, controls[i], NULL));
        CU_ASSERT_TRUE(strstr(ember_last_error(), "control characters") != NULL);
    }
    static const char *const fine[] = {"no\302\240break", "dot\xe2\x80\xa7",
                                       "nnbsp\xe2\x80\xaf", "word\xe2\x81\xa0"};
    for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++) {
        ember_node *ok = ember_node_new(base, fine[i], NULL);
        CU_ASSERT_PTR_NOT_NULL(ok);
        if (ok)
            ember_node_free(ok);
    }
    CU_ASSERT_PTR_NULL(ember_node_new(base, "", NULL));
    CU_ASSERT_PTR_NULL(ember_node_new(base, NULL, NULL));
    name[255] = 0;
    ember_node *n = ember_node_new(base, name, NULL);
    CU_ASSERT_PTR_NOT_NULL(n);
    ember_node_free(n);
    n = ember_node_new(base, "n\xc3\xa9ud", NULL); /* "néud" */
    CU_ASSERT_PTR_NOT_NULL(n);
    ember_node_free(n);
    event_base_free(base);
}

/* ---- the keyed hash ---- */

static void t_siphash(void)
{
    /* The reference vector of the SipHash paper (appendix A): key
     * 00 01 .. 0f, message 00 01 .. 07, SipHash-2-4. */
    ember_sipkey k;
    ember_sipkey_init(&k, 0x0706050403020100ull, 0x0f0e0d0c0b0a0908ull);
    uint8_t m[15];
    for (int i = 0; i < 15; i++)
        m[i] = (uint8_t)i;
    CU_ASSERT_EQUAL(ember_siphash(&k, m, 8, 2, 4), 0x93f5f5799a932462ull);
    CU_ASSERT_EQUAL(ember_siphash(&k, m, 0, 2, 4), 0x726fdb47dd0e0e31ull);
    CU_ASSERT_EQUAL(ember_siphash(&k, m, 15, 2, 4), 0xa129ca6149be45e5ull);
    /* The inline 8-byte form is SipHash-1-3 under the process key. */
    ember_hash_init();
    uint64_t keys[] = {0, 1, 0x7f000001ull, 1ull << 48, ~0ull};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        uint8_t b[8];
        for (int j = 0; j < 8; j++)
            b[j] = (uint8_t)(keys[i] >> (8 * j));
        CU_ASSERT_EQUAL(ember_hash_u64(keys[i]),
                        ember_siphash(&ember_sipkey_, b, 8, 1, 3));
    }
}

/* ---- log escaping ---- */

static void t_escape(void)
{
    char out[64];
    ember_escape(out, sizeof out, "a\nb\r\tc", 6);
    CU_ASSERT_STRING_EQUAL(out, "a\\nb\\r\\tc");
    ember_escape(out, sizeof out, "\x1b[2J\x7f", 5);
    CU_ASSERT_STRING_EQUAL(out, "\\x1b[2J\\x7f");
    /* Printable UTF-8 stays; C1 controls and broken sequences do not. */
    ember_escape(out, sizeof out, "n\xc3\xa9ud \xc2\x9b \xff \xe2\x82", 13);
    CU_ASSERT_STRING_EQUAL(out, "n\xc3\xa9ud \\xc2\\x9b \\xff \\xe2\\x82");
    /* Escaping twice changes nothing. */
    char twice[64];
    ember_escape(twice, sizeof twice, out, strlen(out));
    CU_ASSERT_STRING_EQUAL(twice, out);
    /* Cut to the buffer, never in the middle of an escape. */
    char small[6];
    ember_escape(small, sizeof small, "ab\ncd", 5);
    CU_ASSERT_STRING_EQUAL(small, "ab\\nc");
    ember_escape(small, 4, "ab\ncd", 5);
    CU_ASSERT_STRING_EQUAL(small, "ab");
}

/* ---- EMBER_LOG ---- */

static char env_line[200];
static ember_log_level env_lv;

static void keep_line(ember_log_level lv, const char *msg, void *ud)
{
    (void)ud;
    env_lv = lv;
    snprintf(env_line, sizeof env_line, "%s", msg);
}

/* A level is named in any case; anything else is said, escaped, and
 * leaves the default. */
static void t_env_level(void)
{
    char *was = getenv("EMBER_LOG") ? strdup(getenv("EMBER_LOG")) : NULL;
    ember_log_level before = ember_log_get_level();
    ember_set_log(keep_line, NULL);
    setenv("EMBER_LOG", "Warn", 1);
    ember_log_reread_env_();
    CU_ASSERT_EQUAL(ember_log_get_level(), EMBER_LOG_WARN);
    CU_ASSERT_STRING_EQUAL(env_line, "");
    setenv("EMBER_LOG", "verbose\n", 1);
    ember_log_reread_env_();
    CU_ASSERT_EQUAL(ember_log_get_level(), EMBER_LOG_INFO);
    CU_ASSERT_EQUAL(env_lv, EMBER_LOG_WARN);
    CU_ASSERT_STRING_EQUAL(env_line, "EMBER_LOG=\"verbose\\n\" is not a level (debug, "
                           "info, warn, error, off): logging at info");
    if (was)
        setenv("EMBER_LOG", was, 1);
    else
        unsetenv("EMBER_LOG");
    free(was);
    ember_set_log_level(before);
    ember_set_log(NULL, NULL);
    quiet_logs();
}

/* A log callback that asks for the level (a wrapper filtering by it), run
 * by the line that says EMBER_LOG named no level: it reads INFO, once. */
static int asking_calls;
static ember_log_level asked;

static void asking_line(ember_log_level lv, const char *msg, void *ud)
{
    (void)lv;
    (void)msg;
    (void)ud;
    if (++asking_calls > 1)
        return; /* called again from inside: the level is not set yet */
    asked = ember_log_get_level();
}

static void t_env_level_from_callback(void)
{
    char *was = getenv("EMBER_LOG") ? strdup(getenv("EMBER_LOG")) : NULL;
    ember_log_level before = ember_log_get_level();
    asking_calls = 0;
    asked = EMBER_LOG_OFF;
    ember_set_log(asking_line, NULL);
    setenv("EMBER_LOG", "loud", 1);
    ember_log_reread_env_();
    CU_ASSERT_EQUAL(ember_log_get_level(), EMBER_LOG_INFO);
    CU_ASSERT_EQUAL(asking_calls, 1);
    CU_ASSERT_EQUAL(asked, EMBER_LOG_INFO);
    if (was)
        setenv("EMBER_LOG", was, 1);
    else
        unsetenv("EMBER_LOG");
    free(was);
    ember_set_log_level(before);
    ember_set_log(NULL, NULL);
    quiet_logs();
}

/* ---- a broadcast whose filter makes children leave ---- */

static const ember_service_desc echo_svc = {"edge.Echo", EDGE_SVC, 0, 0, NULL, NULL};
static ember_root *bc_root;
static int bc_done, bc_leaves;
static ember_child *bc_left[4];

static void bc_leave(ember_root *r, ember_child *c, const char *why, void *ud)
{
    (void)r;
    (void)why;
    (void)ud;
    if (bc_leaves < 4)
        bc_left[bc_leaves] = c;
    bc_leaves++;
}

static void bc_outcome(const ember_outcome *o, ember_dec *reply, ember_fn cb, void *ud)
{
    (void)reply;
    (void)cb;
    (void)ud;
    CU_ASSERT_PTR_NOT_NULL(o->child);
    for (int i = 0; i < bc_leaves && i < 4; i++)
        CU_ASSERT_PTR_NOT_EQUAL(o->child, bc_left[i]);
    CU_ASSERT_EQUAL(o->status, EMBER_OK);
    bc_done++;
}

/* The first child it sees: drops the one after it; the second it sees:
 * drops that one itself, and says yes. */
static int bc_seen;
static bool bc_filter(ember_child *c, void *ud)
{
    (void)ud;
    bc_seen++;
    if (bc_seen == 1)
        ember_root_drop(bc_root, ember_root_child_next(bc_root, c), "by the filter");
    else if (bc_seen == 2)
        ember_root_drop(bc_root, c, "by the filter");
    return true;
}

static bool four_children(void *ud) { return ember_root_child_count(ud) == 4; }
static bool bc_all(void *ud) { return bc_done >= *(int *)ud; }

static void t_broadcast_filter_drops(void)
{
    base = event_base_new();
    ember_root_config rc = {0};
    rc.on_leave = bc_leave;
    bc_root = ember_root_new(base, &rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bc_root);
    CU_ASSERT_EQUAL_FATAL(ember_root_listen(bc_root, "127.0.0.1:0"), 0);
    ember_node_config nc = {0};
    nc.backoff_min_ms = 10000; /* the dropped ones stay away */
    nc.backoff_max_ms = 20000;
    ember_node *n[4];
    for (int i = 0; i < 4; i++) {
        char name[8];
        snprintf(name, sizeof name, "b%d", i & 3);
        n[i] = node_at(name, ember_root_port(bc_root), &nc);
        ember_exports_add_raw(ember_node_exports(n[i]), EDGE_SVC, 7, echo, NULL);
    }
    CU_ASSERT_TRUE_FATAL(run_until(base, four_children, bc_root, 3000));
    bc_done = bc_leaves = bc_seen = 0;
    /* In join order: the second child leaves while the first is filtered,
     * the third while it is: neither is called, and the walk goes on to
     * the fourth. */
    int called = ember_root_broadcast(bc_root, bc_filter, NULL, &echo_svc, 7, NULL,
                                      NULL, bc_outcome, NULL, NULL, NULL);
    CU_ASSERT_EQUAL(called, 2);
    CU_ASSERT_EQUAL(bc_seen, 3);
    CU_ASSERT_EQUAL(bc_leaves, 2);
    CU_ASSERT_TRUE(run_until(base, bc_all, &called, 3000));
    run_for(base, 50);
    CU_ASSERT_EQUAL(bc_done, 2);
    CU_ASSERT_EQUAL(ember_root_child_count(bc_root), 2);
    for (int i = 0; i < 4; i++)
        ember_node_free(n[i]);
    ember_root_free(bc_root);
    event_base_free(base);
}

void add_edges_suite(void)
{
    CU_pSuite s = CU_add_suite("edges", NULL, NULL);
    CU_add_test(s, "zero-initialised configs are the defaults", t_zero_configs);
    CU_add_test(s, "the port of every listener", t_listener_ports);
    CU_add_test(s, "a root's shutdown has a deadline", t_shutdown_deadline);
    CU_add_test(s, "a node's close has a deadline", t_close_deadline);
    CU_add_test(s, "a closed node cannot connect again", t_closed_node_stays_closed);
    CU_add_test(s, "a node closed from on_state as it connects stays closed",
                t_close_in_on_state);
    CU_add_test(s, "a second root shutdown keeps the first's done", t_shutdown_twice);
    CU_add_test(s, "calls and a close from inside callbacks", t_callbacks);
    CU_add_test(s, "served calls outlive a freed node", t_orphans_after_node_free);
    CU_add_test(s, "strings that are not UTF-8 fail their call alone", t_bad_utf8);
    CU_add_test(s, "node names checked at creation", t_node_names);
    CU_add_test(s, "SipHash against its reference", t_siphash);
    CU_add_test(s, "log escaping", t_escape);
    CU_add_test(s, "EMBER_LOG names a level", t_env_level);
    CU_add_test(s, "EMBER_LOG naming none, said to a callback asking the level",
                t_env_level_from_callback);
    CU_add_test(s, "a broadcast whose filter makes children leave", t_broadcast_filter_drops);
}
