/*
 * services.c — calls name their service. A root and two nodes on one
 * event_base (127.0.0.1, port 0 read back), with generated code of two
 * modules whose services reuse method ids: a.X.f = 1, b.Y.g = 1, b.Z.g = 1.
 * Covered: a call to a service the child does not serve ends NO_METHOD
 * ("object 0 does not serve a.X") without running the child's method of
 * the same id and without costing the connection; two services with the
 * same ids served side by side by one endpoint; the same on a passed
 * object ("object 1 does not serve a.X"); a broadcast whose argument is a
 * ref (each child gets its own export of the object and calls it back).
 * The loop runs until a condition or a deadline; nothing sleeps.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>
#include <event2/event.h>

#include "../common/loop.h"
#include "../common/suites.h"

#include "mod_a.h"
#include "mod_b.h"

#define NNODES 2

static struct {
    struct event_base *base;
    ember_root *root;
    ember_node *node[NNODES];
    int joined;
    /* node side */
    int y_calls, z_calls, notes;
    ember_ref *kept[NNODES];      /* Hub.keep: the ref each node was given */
    int echo_calls;               /* the root's local Echo, called back */
    /* completions */
    int done;
    ember_status status;
    char msg[160];
    char text[64];
    uint64_t u;
} S;

static void reset(void)
{
    S.done = 0;
    S.status = (ember_status)-1;
    S.msg[0] = S.text[0] = '\0';
    S.u = 0;
}

/* Every completion lands here: the outcome, a number, a string. */
static void record(const ember_outcome *o, uint64_t u, const char *text)
{
    S.done++;
    S.status = o->status;
    S.u = u;
    snprintf(S.msg, sizeof S.msg, "%s", o->message ? o->message : "");
    snprintf(S.text, sizeof S.text, "%s", text ? text : "");
}

static void got_u64(const ember_outcome *o, const uint64_t *ret, void *ud)
{
    (void)ud;
    record(o, ret ? *ret : 0, NULL);
}

static void got_str(const ember_outcome *o, const char *const *ret, void *ud)
{
    (void)ud;
    record(o, 0, ret ? *ret : NULL);
}

static void got_void(const ember_outcome *o, void *ud)
{
    (void)ud;
    record(o, 0, NULL);
}

/* ---- node side: b.Y, b.Z, b.Hub ---- */

static void y_g(ember_call *call, uint64_t player_to_delete, void *ud)
{
    (void)ud;
    char s[32];
    S.y_calls++;
    snprintf(s, sizeof s, "deleted %llu", (unsigned long long)player_to_delete);
    b_Y_g_reply(call, s);
}

static void z_g(ember_call *call, uint64_t n, void *ud)
{
    (void)ud;
    S.z_calls++;
    b_Z_g_reply(call, n * 10);
}

static void z_note(ember_call *call, const char *s, void *ud)
{
    (void)call;
    (void)ud;
    S.notes += strcmp(s, "hi") == 0;
}

static const b_Y_handlers y_handlers = {y_g};
static const b_Z_handlers z_handlers = {z_g, z_note};

static void hub_keep(ember_call *call, ember_ref *echo, void *ud)
{
    int i = (int)(intptr_t)ud;
    if (S.kept[i])
        ember_ref_release(S.kept[i]);
    S.kept[i] = ember_ref_retain(echo);
    b_Hub_keep_reply(call);
}

static const b_Hub_handlers hub_handlers = {hub_keep, NULL, NULL, NULL, NULL, NULL};

/* ---- root side: a local b.Echo ---- */

static void echo_twice(ember_call *call, uint64_t n, void *ud)
{
    (void)ud;
    S.echo_calls++;
    b_Echo_twice_reply(call, 2 * n);
}

static const b_Echo_handlers echo_handlers = {echo_twice, NULL};

/* ---- fixture ---- */

static void on_join(ember_root *r, ember_child *c, void *ud)
{
    (void)r;
    (void)c;
    (void)ud;
    S.joined++;
}

static bool all_joined(void *ud)
{
    (void)ud;
    return S.joined == NNODES;
}

static int setup(void)
{
    memset(&S, 0, sizeof S);
    S.base = event_base_new();
    ember_root_config rc;
    ember_root_config_default(&rc);
    rc.on_join = on_join;
    S.root = ember_root_new(S.base, &rc);
    if (!S.root || ember_root_listen(S.root, "127.0.0.1:0"))
        return 1;
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ember_root_port(S.root));
    for (int i = 0; i < NNODES; i++) {
        char name[16];
        snprintf(name, sizeof name, "n%d", i);
        S.node[i] = ember_node_new(S.base, name, NULL);
        ember_exports *ex = ember_node_exports(S.node[i]);
        /* Y and Z both have a method 1: one endpoint serves both. */
        if (b_Y_export(ex, &y_handlers, NULL) || b_Z_export(ex, &z_handlers, NULL) ||
            b_Hub_export(ex, &hub_handlers, (void *)(intptr_t)i) ||
            ember_node_connect(S.node[i], addr))
            return 1;
    }
    return run_until(S.base, all_joined, NULL, 5000) ? 0 : 1;
}

static int teardown(void)
{
    for (int i = 0; i < NNODES; i++) {
        if (S.kept[i])
            ember_ref_release(S.kept[i]);
        ember_node_free(S.node[i]);
    }
    ember_root_free(S.root);
    event_base_free(S.base);
    return 0;
}

static ember_ref *child_ref(int i)
{
    char name[16];
    snprintf(name, sizeof name, "n%d", i);
    ember_child *c = ember_root_child_by_name(S.root, name);
    return c ? ember_child_ref(c) : NULL;
}

/* ---- tests ---- */

/* a.X.f on a child that serves b.Y (whose g has the same id): refused,
 * Y.g never runs with X.f's arguments, and the connection stays. */
static void test_wrong_service_refused(void)
{
    ember_ref *child = child_ref(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(child);
    reset();
    a_X_f(child, 12345, got_u64, NULL, NULL);
    CU_ASSERT_FATAL(run_until(S.base, flag_set, &S.done, 5000));
    CU_ASSERT_EQUAL(S.done, 1);
    CU_ASSERT_EQUAL(S.status, EMBER_NO_METHOD);
    CU_ASSERT_STRING_EQUAL(S.msg, "object 0 does not serve a.X");
    CU_ASSERT_EQUAL(S.y_calls, 0);
    CU_ASSERT_EQUAL(S.z_calls, 0);
    CU_ASSERT_EQUAL(ember_node_state_get(S.node[0]), EMBER_NODE_REGISTERED);
    CU_ASSERT_EQUAL(ember_root_child_count(S.root), NNODES);
    CU_ASSERT_TRUE(ember_child_has_service(ember_root_child_by_name(S.root, "n0"), "b.Y"));
    CU_ASSERT_FALSE(ember_child_has_service(ember_root_child_by_name(S.root, "n0"), "a.X"));

    /* The same connection still serves what the child does export. */
    reset();
    b_Y_g(child, 12345, got_str, NULL, NULL);
    CU_ASSERT_FATAL(run_until(S.base, flag_set, &S.done, 5000));
    CU_ASSERT_EQUAL(S.status, EMBER_OK);
    CU_ASSERT_STRING_EQUAL(S.text, "deleted 12345");
    CU_ASSERT_EQUAL(S.y_calls, 1);
}

/* b.Y.g and b.Z.g share id 1 on one endpoint: each call reaches its own. */
static void test_same_ids_side_by_side(void)
{
    ember_ref *child = child_ref(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(child);
    int y0 = S.y_calls, z0 = S.z_calls;
    reset();
    b_Z_g(child, 7, got_u64, NULL, NULL);
    CU_ASSERT_FATAL(run_until(S.base, flag_set, &S.done, 5000));
    CU_ASSERT_EQUAL(S.status, EMBER_OK);
    CU_ASSERT_EQUAL(S.u, 70);
    CU_ASSERT_EQUAL(S.z_calls, z0 + 1);
    CU_ASSERT_EQUAL(S.y_calls, y0);
    reset();
    b_Y_g(child, 7, got_str, NULL, NULL);
    CU_ASSERT_FATAL(run_until(S.base, flag_set, &S.done, 5000));
    CU_ASSERT_STRING_EQUAL(S.text, "deleted 7");
    CU_ASSERT_EQUAL(S.z_calls, z0 + 1);
    /* A oneway names its service too: a.X has no method 2, Z.note is 2. */
    S.notes = 0;
    CU_ASSERT_EQUAL(b_Z_note(child, "hi"), 0);
    CU_ASSERT(run_until(S.base, flag_set, &S.notes, 5000));
}

static bool both_kept(void *ud)
{
    (void)ud;
    return S.kept[0] && S.kept[1];
}

static bool echoed_twice(void *ud)
{
    return S.done >= *(int *)ud;
}

/* Hub.keep takes a ref<Echo>: broadcast, each child gets its own export
 * of the root's object and calls it back; a.X on the object is refused. */
static void test_broadcast_with_ref(void)
{
    ember_ref *echo = b_Echo_local(&echo_handlers, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(echo);
    reset();
    CU_ASSERT_EQUAL(b_Hub_keep_broadcast(S.root, NULL, NULL, echo, got_void, NULL, NULL),
                    NNODES);
    ember_ref_release(echo); /* the exports hold it now */
    int want = NNODES;
    CU_ASSERT_FATAL(run_until(S.base, echoed_twice, &want, 5000));
    CU_ASSERT_EQUAL(S.status, EMBER_OK);
    CU_ASSERT_FATAL(both_kept(NULL));
    CU_ASSERT_PTR_NOT_EQUAL(S.kept[0], S.kept[1]);

    reset();
    S.echo_calls = 0;
    for (int i = 0; i < NNODES; i++)
        b_Echo_twice(S.kept[i], 21 + (uint64_t)i, got_u64, NULL, NULL);
    CU_ASSERT_FATAL(run_until(S.base, echoed_twice, &want, 5000));
    CU_ASSERT_EQUAL(S.status, EMBER_OK);
    CU_ASSERT_EQUAL(S.echo_calls, NNODES);

    /* The passed object serves b.Echo only. */
    reset();
    a_X_f(S.kept[0], 1, got_u64, NULL, NULL);
    CU_ASSERT_FATAL(run_until(S.base, flag_set, &S.done, 5000));
    CU_ASSERT_EQUAL(S.status, EMBER_NO_METHOD);
    CU_ASSERT_STRING_EQUAL(S.msg, "object 1 does not serve a.X");
    CU_ASSERT_EQUAL(S.echo_calls, NNODES);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    CU_pSuite s = CU_add_suite("gen-services", setup, teardown);
    CU_add_test(s, "a call to a service the child does not serve", test_wrong_service_refused);
    CU_add_test(s, "two services with the same ids on one endpoint", test_same_ids_side_by_side);
    CU_add_test(s, "broadcast with a ref argument", test_broadcast_with_ref);
    return run_suites();
}
