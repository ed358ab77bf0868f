/*
 * test_misuse.c — the public API used wrongly, as a program written from
 * the docs alone might: NULL arguments, sizes out of range, stops twice,
 * calls from inside callbacks; and encodes that fail part-way, which must
 * leave nothing behind (exports, pending calls).
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helpers.h"
#include "probe-internal.h"

static struct event_base *base;
static ember_root *root;
static ember_node *node;
static ember_child *child;

#define MIS_SVC 0x6d150001u /* the raw service the root serves */

/* ---- a local object's service (never called) ---- */

static int obj_dispatch(ember_call *call, ember_dec *args, const void *h, void *ud)
{
    (void)args;
    (void)h;
    (void)ud;
    ember_call_reply(call, NULL, NULL);
    return 0;
}

static const ember_method_desc obj_methods[] = {
    {.id = 1, .name = "ping", .dispatch = obj_dispatch},
};
static const ember_service_desc obj_svc = {
    .name = "misuse.Obj", .id = 0x6d150002u, .n_methods = 1, .methods = obj_methods,
};

/* ---- a node's service that keeps the refs it is given ---- */

static ember_ref *kept[8];
static int nkept;

static int keep_dispatch(ember_call *call, ember_dec *d, const void *h, void *ud)
{
    (void)h;
    (void)ud;
    uint32_t tag, n;
    unsigned wt;
    void *items;
    const uint8_t *end;
    int k;
    while ((k = ember_dec_field(d, &tag, &wt)) == 1) {
        if (tag != 1 || wt != EMBER_WT_LEN) {
            if (ember_dec_skip(d, wt))
                return -1;
            continue;
        }
        if (ember_dec_list_begin(d, wt, 1, sizeof(ember_ref *), &n, &items, &end))
            return -1;
        ember_ref **v = items;
        for (uint32_t i = 0; i < n; i++) {
            if (ember_dec_raw_ref(d, &v[i]))
                return -1;
            if (v[i] && nkept < 8)
                kept[nkept++] = ember_ref_retain(v[i]);
        }
        if (ember_dec_list_end(d, end))
            return -1;
    }
    if (k < 0)
        return -1;
    ember_call_reply(call, NULL, NULL);
    return 0;
}

/* With the run-time types a PB peer needs: keep(1: list<ref<Obj>> refs). */
static const ember_type t_obj_ref = {.kind = EMBER_T_REF, .name = "misuse.Obj",
                                     .svc = &obj_svc};
static const ember_type t_obj_refs = {.kind = EMBER_T_LIST, .elem = &t_obj_ref};
static const ember_field_desc keep_params[] = {{1, "refs", &t_obj_refs, false}};
static const ember_method_desc keep_methods[] = {
    {.id = 1, .name = "keep", .dispatch = keep_dispatch, .pb_name = "keep",
     .params = keep_params, .n_params = 1},
};
static const ember_service_desc keep_svc = {
    .name = "misuse.Keep", .id = 0x6d150003u, .n_methods = 1, .methods = keep_methods,
};

static void release_kept(void)
{
    while (nkept > 0)
        ember_ref_release(kept[--nkept]);
}

/* ---- a root and one node on one base ---- */

typedef struct ended {
    int n;
    ember_status st;
    char msg[200];
} ended;

static void call_done(const ember_outcome *o, ember_dec *reply, ember_fn cb, void *ud)
{
    ended *e = ud;
    (void)reply;
    (void)cb;
    e->n++;
    e->st = o->status;
    snprintf(e->msg, sizeof e->msg, "%s", o->message ? o->message : "");
}

static void raw_done(const ember_outcome *o, const void *p, size_t n, void *ud)
{
    (void)p;
    (void)n;
    call_done(o, NULL, NULL, ud);
}

static bool has_ended(void *ud) { return ((ended *)ud)->n > 0; }

static bool registered(void *ud)
{
    return ember_node_state_get(ud) == EMBER_NODE_REGISTERED;
}

static void setup_on(ember_raw_handler h, bool pb)
{
    base = event_base_new();
    root = ember_root_new(base, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(root);
    if (h)
        CU_ASSERT_EQUAL(ember_exports_add_raw(ember_root_exports(root), MIS_SVC, 0,
                                              h, NULL), 0);
    CU_ASSERT_EQUAL_FATAL((pb ? ember_root_listen_pb : ember_root_listen)(root,
                                                                          "127.0.0.1:0"),
                          0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ember_root_port(root));
    node = ember_node_new(base, "mis", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(node);
    CU_ASSERT_EQUAL(ember_exports_add(ember_node_exports(node), &keep_svc, NULL, NULL), 0);
    CU_ASSERT_EQUAL((pb ? ember_node_connect_pb : ember_node_connect)(node, addr), 0);
    CU_ASSERT_TRUE_FATAL(run_until(base, registered, node, 3000));
    child = ember_root_child_by_name(root, "mis");
    CU_ASSERT_PTR_NOT_NULL_FATAL(child);
}

static void setup(ember_raw_handler h)
{
    setup_on(h, false);
}

static void teardown(void)
{
    ember_node_free(node);
    ember_root_free(root);
    event_base_free(base);
    node = NULL;
    root = NULL;
    child = NULL;
}

/* ---- an encode that fails part-way through a list of refs ---- */

/* Field 1: a list of refs; the last cannot go to the connection (the
 * peer's own exports), so the encode fails after the others were written. */
typedef struct ref_list {
    ember_ref *items[4];
    uint32_t n;
} ref_list;

static void enc_ref_list(ember_enc *e, const void *value)
{
    const ref_list *l = value;
    ember_enc_key(e, 1, EMBER_WT_LEN);
    size_t mark = ember_enc_len_begin(e);
    ember_enc_raw_varint(e, l->n);
    for (uint32_t i = 0; i < l->n; i++)
        ember_enc_ref_value(e, l->items[i]);
    ember_enc_len_end(e, mark);
}

static ember_ref *obj_a, *obj_b;
static int served;

static void reply_bad_list(ember_call *call, uint32_t sid, uint32_t id,
                           const void *p, size_t n, void *ud)
{
    (void)sid;
    (void)p;
    (void)n;
    (void)ud;
    served++;
    /* id 1: the refs then a peer's exports; id 2: the same ref twice. */
    ref_list l = {{obj_a, obj_b, ember_call_caller(call)}, 3};
    if (id == 2)
        l = (ref_list){{obj_a, obj_a, obj_b, ember_call_caller(call)}, 4};
    CU_ASSERT_EQUAL(ember_call_reply(call, enc_ref_list, &l), 0);
}

static void t_reply_rollback(void)
{
    setup(reply_bad_list);
    obj_a = ember_ref_local(&obj_svc, NULL, NULL);
    obj_b = ember_ref_local(&obj_svc, NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(obj_a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(obj_b);
    for (uint32_t m = 1; m <= 2; m++) {
        ended e = {0};
        CU_ASSERT_NOT_EQUAL(ember_call_raw(ember_node_root(node), MIS_SVC, m, NULL, 0,
                                           raw_done, &e, NULL), 0);
        CU_ASSERT_TRUE(run_until(base, has_ended, &e, 3000));
        CU_ASSERT_EQUAL(e.n, 1);
        CU_ASSERT_EQUAL(e.st, EMBER_FAILED);
        /* The reply never left: nothing of it stays exported to the node. */
        CU_ASSERT_EQUAL(ember_child_exported_(child), 0);
    }
    CU_ASSERT_EQUAL(served, 2);
    teardown();
    ember_ref_release(obj_a);
    ember_ref_release(obj_b);
}

static bool none_exported(void *ud)
{
    (void)ud;
    return ember_child_exported_(child) == 0;
}

static void call_rollback(bool pb)
{
    setup_on(NULL, pb);
    ember_ref *a = ember_ref_local(&obj_svc, NULL, NULL);
    ember_ref *b = ember_ref_local(&obj_svc, NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    /* a goes to the node for good first, and the node keeps it. */
    ref_list one = {{a}, 1};
    ended ok = {0};
    CU_ASSERT_NOT_EQUAL(ember_call_start(ember_child_ref(child), &keep_svc, 1,
                                         enc_ref_list, &one, call_done, NULL, &ok,
                                         NULL), 0);
    CU_ASSERT_TRUE(run_until(base, has_ended, &ok, 3000));
    CU_ASSERT_EQUAL(ok.st, EMBER_OK);
    CU_ASSERT_EQUAL(nkept, 1);
    CU_ASSERT_EQUAL(ember_child_exported_(child), 1);
    /* Calls that fail to encode after a and b: a's count stays, b is not
     * exported at all. */
    ref_list l = {{a, b, b, ember_child_ref(child)}, 4};
    ended e = {0};
    CU_ASSERT_EQUAL(ember_call_start(ember_child_ref(child), &keep_svc, 1, enc_ref_list,
                                     &l, call_done, NULL, &e, NULL), 0);
    CU_ASSERT_EQUAL(ember_child_exported_(child), 1);
    CU_ASSERT_TRUE(run_until(base, has_ended, &e, 3000));
    CU_ASSERT_EQUAL(e.n, 1);
    /* On either wire a bad argument is the caller's fault, not a limit. */
    CU_ASSERT_EQUAL(e.st, EMBER_FAILED);
    CU_ASSERT_TRUE(strstr(e.msg, "arguments could not be encoded: a peer's exports") != NULL);
    /* The same from a oneway. */
    CU_ASSERT_EQUAL(ember_oneway_start(ember_child_ref(child), &keep_svc, 1,
                                       enc_ref_list, &l), -1);
    CU_ASSERT_EQUAL(ember_child_exported_(child), 1);
    /* And a broadcast, whose ref arguments are encoded once per child. */
    ended bc = {0};
    CU_ASSERT_EQUAL(ember_root_broadcast(root, NULL, NULL, &keep_svc, 1, enc_ref_list,
                                         &l, call_done, NULL, &bc, NULL), 1);
    CU_ASSERT_TRUE(run_until(base, has_ended, &bc, 3000));
    CU_ASSERT_EQUAL(bc.st, EMBER_FAILED);
    CU_ASSERT_EQUAL(ember_child_exported_(child), 1);
    /* The node lets a go: its one DECREF accounts for the one time a was
     * sent, and the export goes. */
    release_kept();
    CU_ASSERT_TRUE(run_until(base, none_exported, NULL, 3000));
    teardown();
    ember_ref_release(a);
    ember_ref_release(b);
}

static void t_call_rollback(void) { call_rollback(false); }
static void t_call_rollback_pb(void) { call_rollback(true); }

/* ---- NULL where an object belongs ---- */

static bool refused_with_reason(void)
{
    return ember_last_error()[0] != 0;
}

static void t_null_objects(void)
{
    char buf[64];
    ember_limits_default(NULL);
    ember_root_config_default(NULL);
    ember_node_config_default(NULL);
    CU_ASSERT_PTR_NULL(ember_arena_alloc(NULL, 8));
    ember_dec_init(NULL, NULL, 0, NULL);
    ember_dec d;
    ember_dec_init(&d, NULL, 5, NULL); /* no data: nothing to read */
    uint32_t tag;
    unsigned wt;
    CU_ASSERT_EQUAL(ember_dec_field(&d, &tag, &wt), 0);
    CU_ASSERT_TRUE(ember_utf8_valid(NULL, 0));
    CU_ASSERT_FALSE(ember_utf8_valid(NULL, 3));
    ember_ref *got = NULL;
    CU_ASSERT_EQUAL(ember_dec_raw_ref(NULL, &got), -1);
    CU_ASSERT_EQUAL(ember_pb_raw_service(NULL), 0);

    CU_ASSERT_PTR_NULL(ember_root_new(NULL, NULL));
    CU_ASSERT_PTR_NOT_NULL(strstr(ember_last_error(), "event_base"));
    CU_ASSERT_PTR_NULL(ember_node_new(NULL, "n", NULL));
    CU_ASSERT_PTR_NOT_NULL(strstr(ember_last_error(), "event_base"));

    /* Roots. */
    CU_ASSERT_EQUAL(ember_root_listen(NULL, "127.0.0.1:0"), -1);
    CU_ASSERT_TRUE(refused_with_reason());
    CU_ASSERT_EQUAL(ember_root_listen_pb(NULL, "127.0.0.1:0"), -1);
    CU_ASSERT_EQUAL(ember_root_port(NULL), -1);
    CU_ASSERT_EQUAL(ember_root_listener_count(NULL), 0);
    CU_ASSERT_EQUAL(ember_root_listener_port(NULL, 0), -1);
    CU_ASSERT_PTR_NULL(ember_root_exports(NULL));
    CU_ASSERT_EQUAL(ember_root_child_count(NULL), 0);
    CU_ASSERT_PTR_NULL(ember_root_child_by_name(NULL, "x"));
    CU_ASSERT_PTR_NULL(ember_root_child_by_id(NULL, 1));
    CU_ASSERT_PTR_NULL(ember_root_child_next(NULL, NULL));
    ember_root_drop(NULL, NULL, NULL);
    CU_ASSERT_EQUAL(ember_root_broadcast(NULL, NULL, NULL, &obj_svc, 1, NULL, NULL,
                                         call_done, NULL, NULL, NULL), -1);
    ember_root_shutdown(NULL, NULL, NULL);
    ember_root_free(NULL);
    int sv[2];
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    CU_ASSERT_EQUAL(ember_root_adopt_fd(NULL, sv[0]), -1);
    CU_ASSERT_EQUAL(fcntl(sv[0], F_GETFD), -1); /* taken, even so: closed */
    close(sv[1]);

    /* Children. */
    CU_ASSERT_PTR_NULL(ember_child_name(NULL));
    CU_ASSERT_EQUAL(ember_child_id(NULL), 0);
    CU_ASSERT_PTR_NULL(ember_child_ref(NULL));
    CU_ASSERT_PTR_NULL(ember_child_peer(NULL));
    ember_child_set_data(NULL, buf);
    CU_ASSERT_PTR_NULL(ember_child_data(NULL));
    CU_ASSERT_EQUAL(ember_child_uptime(NULL), 0);
    CU_ASSERT_FALSE(ember_child_has_service(NULL, "x"));

    /* Nodes. */
    CU_ASSERT_PTR_NULL(ember_node_exports(NULL));
    CU_ASSERT_EQUAL(ember_node_connect(NULL, "127.0.0.1:1"), -1);
    CU_ASSERT_TRUE(refused_with_reason());
    CU_ASSERT_EQUAL(ember_node_connect_pb(NULL, "127.0.0.1:1"), -1);
    CU_ASSERT_PTR_NULL(ember_node_root(NULL));
    CU_ASSERT_EQUAL(ember_node_state_get(NULL), EMBER_NODE_IDLE);
    CU_ASSERT_PTR_NULL(ember_node_name(NULL));
    CU_ASSERT_EQUAL(ember_node_id(NULL), 0);
    ember_node_close(NULL, NULL, NULL);
    ember_node_free(NULL);

    /* Served calls. */
    CU_ASSERT_EQUAL(ember_call_service(NULL), 0);
    CU_ASSERT_EQUAL(ember_call_method(NULL), 0);
    CU_ASSERT_FALSE(ember_call_oneway(NULL));
    CU_ASSERT_TRUE(ember_call_cancelled(NULL));
    CU_ASSERT_PTR_NULL(ember_call_alloc(NULL, 8));
    CU_ASSERT_EQUAL(ember_call_forward(NULL, NULL, 1, 1, NULL, 0, NULL), -1);
    CU_ASSERT_TRUE(refused_with_reason());
    CU_ASSERT_EQUAL(ember_call_reply(NULL, NULL, NULL), -1);
    CU_ASSERT_EQUAL(ember_call_fail(NULL, "x"), -1);
    CU_ASSERT_EQUAL(ember_pb_reply_raw(NULL, NULL, 0), -1);

    /* Metrics into no buffer. */
    ember_metrics_src src = {0};
    CU_ASSERT_EQUAL(ember_metrics_render(NULL, 1, buf, sizeof buf), -1);
    base = event_base_new();
    root = ember_root_new(base, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(root);
    src.root = root;
    CU_ASSERT_EQUAL(ember_metrics_render(&src, 1, NULL, 10), -1);
    CU_ASSERT_TRUE(ember_metrics_render(&src, 1, NULL, 0) > 0); /* as snprintf */
    ember_root_free(root);
    root = NULL;
    event_base_free(base);
}

/* ---- bad arguments on a live connection ---- */

static ember_call *held;

static void hold_or_answer(ember_call *call, uint32_t sid, uint32_t id,
                           const void *p, size_t n, void *ud)
{
    (void)sid;
    (void)p;
    (void)n;
    (void)ud;
    if (id == 1) { /* a payload that is not there */
        CU_ASSERT_EQUAL(ember_call_reply_raw(call, NULL, 5), 0);
    } else if (id == 2) {
        CU_ASSERT_EQUAL(ember_call_raise_raw(call, 7, NULL, 5), 0);
    } else if (id == 3) {
        CU_ASSERT_EQUAL(ember_call_fail(call, NULL), 0);
    } else {
        held = call;
    }
}

static void t_bad_arguments(void)
{
    setup(hold_or_answer);
    ember_ref *to = ember_node_root(node);
    /* A payload of 5 bytes at NULL: the call alone fails, from the loop. */
    ended e = {0};
    CU_ASSERT_EQUAL(ember_call_raw(to, MIS_SVC, 9, NULL, 5, raw_done, &e, NULL), 0);
    CU_ASSERT_EQUAL(e.n, 0);
    CU_ASSERT_TRUE(run_until(base, has_ended, &e, 3000));
    CU_ASSERT_EQUAL(e.st, EMBER_FAILED);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "NULL"));
    CU_ASSERT_EQUAL(ember_oneway_raw(to, MIS_SVC, 9, NULL, 5), -1);
    CU_ASSERT_TRUE(refused_with_reason());
    ended pe = {0};
    CU_ASSERT_EQUAL(ember_pb_call_raw(to, NULL, NULL, 5, raw_done, &pe, NULL), 0);
    CU_ASSERT_TRUE(run_until(base, has_ended, &pe, 3000));
    CU_ASSERT_NOT_EQUAL(pe.st, EMBER_OK);
    /* A typed call or oneway without its service descriptor: refused (it
     * would go as service 0, which names none). */
    ended ns = {0};
    CU_ASSERT_EQUAL(ember_call_start(to, NULL, 1, NULL, NULL, call_done, NULL, &ns, NULL), 0);
    CU_ASSERT_EQUAL(ns.n, 0);
    CU_ASSERT_TRUE(run_until(base, has_ended, &ns, 3000));
    CU_ASSERT_EQUAL(ns.st, EMBER_FAILED);
    CU_ASSERT_STRING_EQUAL(ns.msg, "a call needs its service descriptor (NULL given)");
    CU_ASSERT_EQUAL(ember_oneway_start(to, NULL, 1, NULL, NULL), -1);
    CU_ASSERT_STRING_EQUAL(ember_last_error(), "a call needs its service descriptor (NULL given)");
    /* Answers with a payload at NULL, or no format: the caller is told. */
    for (uint32_t m = 1; m <= 3; m++) {
        ended a = {0};
        CU_ASSERT_NOT_EQUAL(ember_call_raw(to, MIS_SVC, m, NULL, 0, raw_done, &a,
                                           NULL), 0);
        CU_ASSERT_TRUE(run_until(base, has_ended, &a, 3000));
        CU_ASSERT_EQUAL(a.n, 1);
        CU_ASSERT_EQUAL(a.st, EMBER_FAILED);
    }
    ended k = {0};
    CU_ASSERT_NOT_EQUAL(ember_call_raw(to, MIS_SVC, 9, "", 0, raw_done, &k, NULL), 0);
    CU_ASSERT_TRUE(run_until(base, flag_set, &held, 3000) || held);
    CU_ASSERT_PTR_NOT_NULL_FATAL(held);
    CU_ASSERT_EQUAL(ember_pb_reply_raw(held, NULL, 5), -1);
    CU_ASSERT_TRUE(run_until(base, has_ended, &k, 3000));
    CU_ASSERT_EQUAL(k.st, EMBER_FAILED);
    held = NULL;
    /* A child of another root is not this root's to drop or walk from. */
    ember_root *other = ember_root_new(base, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(other);
    ember_root_drop(other, child, "not yours");
    CU_ASSERT_PTR_NULL(ember_root_child_next(other, child));
    CU_ASSERT_EQUAL(ember_node_state_get(node), EMBER_NODE_REGISTERED);
    CU_ASSERT_EQUAL(ember_root_child_count(root), 1);
    ember_root_free(other);
    CU_ASSERT_FALSE(ember_child_has_service(child, NULL));
    CU_ASSERT_PTR_NULL(ember_root_child_by_name(root, NULL));
    teardown();
}

/* ---- from inside callbacks ---- */

static int joins, leaves;
static ember_node *free_on_leave;

static void drop_on_join(ember_root *r, ember_child *c, void *ud)
{
    (void)ud;
    joins++;
    ember_root_drop(r, c, "not today");
}

static void drop_again_on_leave(ember_root *r, ember_child *c, const char *why,
                                void *ud)
{
    (void)why;
    (void)ud;
    leaves++;
    ember_root_drop(r, c, "again"); /* it is leaving: nothing more */
    if (free_on_leave) { /* another endpoint's object: allowed */
        ember_node_free(free_on_leave);
        free_on_leave = NULL;
    }
}

static bool left(void *ud) { return leaves >= *(int *)ud; }

static void t_inside_callbacks(void)
{
    base = event_base_new();
    ember_root_config rc;
    ember_root_config_default(&rc);
    rc.on_join = drop_on_join;
    rc.on_leave = drop_again_on_leave;
    root = ember_root_new(base, &rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(root);
    CU_ASSERT_EQUAL_FATAL(ember_root_listen(root, "127.0.0.1:0"), 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ember_root_port(root));
    node = ember_node_new(base, "in", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(node);
    CU_ASSERT_EQUAL(ember_node_connect(node, addr), 0);
    int one = 1;
    CU_ASSERT_TRUE(run_until(base, left, &one, 3000));
    CU_ASSERT_EQUAL(joins, 1);
    CU_ASSERT_EQUAL(ember_root_child_count(root), 0);
    /* The next registration: the root frees the node as its child leaves. */
    free_on_leave = node;
    node = NULL;
    int two = 2;
    CU_ASSERT_TRUE(run_until(base, left, &two, 5000));
    CU_ASSERT_PTR_NULL(free_on_leave);
    run_for(base, 20);
    ember_root_free(root);
    root = NULL;
    event_base_free(base);
}

void add_misuse_suite(void)
{
    CU_pSuite s = CU_add_suite("misuse", NULL, NULL);
    CU_add_test(s, "a reply that fails to encode exports nothing", t_reply_rollback);
    CU_add_test(s, "a call that fails to encode exports nothing", t_call_rollback);
    CU_add_test(s, "a call to a PB peer that fails to encode exports nothing",
                t_call_rollback_pb);
    CU_add_test(s, "NULL roots, nodes, children, calls and buffers", t_null_objects);
    CU_add_test(s, "bad arguments on a live connection", t_bad_arguments);
    CU_add_test(s, "drops and frees from inside callbacks", t_inside_callbacks);
}
