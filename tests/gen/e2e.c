/*
 * e2e.c — generated stubs and skeletons over real connections: a root and
 * a node on one event_base on 127.0.0.1 (port 0, read back). The root
 * serves shapes.Store, the node serves shapes.Watcher. Covered: node->root
 * calls with struct/container/tree/scalar/string results, typed errors
 * (local and imported), a handler that is not implemented, a deferred
 * reply, oneways, root->child calls and a broadcast, a ref<Watcher>
 * passed to the root and called back, a list<ref<Watcher>> whose every
 * ref the root calls back, and optional parameters (scalar, string, struct,
 * list) each present, present with a zero value, and absent. The loop runs until a condition or a deadline;
 * nothing sleeps.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>
#include <event2/event.h>

#include "../common/loop.h"
#include "../common/suites.h"

#include "shapes.h"

/* ---- state shared by the handlers and the test ---- */

static struct {
    struct event_base *base;
    ember_root *root;
    ember_node *node;
    int joined;
    /* root side */
    ember_call *deferred_put;     /* Store.put, answered by the test later */
    char put_key[32];
    int put_seen;
    int forgot;
    ember_call *watch_call;       /* Store.watch, answered when the ping returns */
    ember_call *opt_call;         /* Store.opt, answered when every ping returns */
    uint32_t opt_count, opt_waiting;
    uint32_t opt_nums[8];         /* what each ref's ping returned, in list order */
    bool opt_failed;
    char find_seen[160];          /* Store.find: what the handler was given */
    /* node side */
    int progress_seen;
    uint32_t progress_done;
    /* completions */
    int done;
    ember_status status;
    uint32_t error_id;
    char text[160];
    uint64_t u;
    char reply[160];
    int broadcast_done;
} S;

static void reset(void)
{
    S.done = 0;
    S.status = (ember_status)-1;
    S.error_id = 0;
    S.text[0] = '\0';
    S.u = 0;
    S.reply[0] = '\0';
    S.find_seen[0] = '\0';
}

/* ---- root: shapes.Store ---- */

static void store_get(ember_call *call, const char *key, void *ud)
{
    (void)ud;
    if (strcmp(key, "missing") == 0) {
        shapes_NotFound nf;
        shapes_NotFound_init(&nf);
        nf.key = key;
        shapes_Store_get_fail_NotFound(call, &nf);
    } else if (strcmp(key, "denied") == 0) {
        common_Denied dn;
        common_Denied_init(&dn);
        dn.why = "no";
        shapes_Store_get_fail_common_Denied(call, &dn);
    } else {
        shapes_Scalars s;
        shapes_Scalars_init(&s);
        s.s = key;
        s.i64v = INT64_MIN;
        s.u64v = UINT64_MAX;
        s.temp = shapes_Temp_cold;
        shapes_Store_get_reply(call, &s);
    }
}

static void store_put(ember_call *call, const char *key, const shapes_Scalars *value,
                      void *ud)
{
    (void)ud;
    /* copy what we keep: the arguments die with the call */
    snprintf(S.put_key, sizeof S.put_key, "%s:%u", key, (unsigned)value->u32v);
    S.deferred_put = call;
    S.put_seen = 1;
}

static void store_echo(ember_call *call, const shapes_Containers *c, void *ud)
{
    (void)ud;
    shapes_Store_echo_reply(call, c);
}

static void store_grow(ember_call *call, const shapes_Tree *seed, uint32_t depth, void *ud)
{
    (void)ud;
    shapes_Tree t;
    shapes_Tree_init(&t);
    t.value = seed->value + (int32_t)depth;
    t.left = (shapes_Tree *)seed;
    shapes_Store_grow_reply(call, &t);
}

static void store_forget(ember_call *call, const char *key, void *ud)
{
    (void)call;
    (void)ud;
    S.forgot = strcmp(key, "old") == 0 ? 1 : -1;
}

static void watch_pinged(const ember_outcome *o, const uint32_t *ret, void *ud)
{
    ember_ref *who = ud;
    ember_call *call = S.watch_call;
    S.watch_call = NULL;
    if (o->status == EMBER_OK && *ret == 5)
        shapes_Store_watch_reply(call);
    else
        ember_call_fail(call, "ping failed: %s", ember_status_name(o->status));
    ember_ref_release(who);
}

/* Calls the passed ref back before answering. */
static void store_watch(ember_call *call, ember_ref *who, void *ud)
{
    (void)ud;
    S.watch_call = call;
    ember_ref_retain(who);
    shapes_Watcher_ping(who, "hello", watch_pinged, who, NULL);
}

typedef struct opt_ping { ember_ref *who; uint32_t i; } opt_ping;

static void opt_pinged(const ember_outcome *o, const uint32_t *ret, void *ud)
{
    opt_ping *p = ud;
    if (o->status == EMBER_OK)
        S.opt_nums[p->i] = *ret;
    else
        S.opt_failed = true;
    ember_ref_release(p->who);
    free(p);
    if (--S.opt_waiting > 0)
        return;
    if (S.opt_failed) {
        ember_call_fail(S.opt_call, "a ping failed");
        return;
    }
    shapes_Optionals r;
    shapes_Optionals_init(&r);
    r.has_nums = true;
    r.nums.items = S.opt_nums;
    r.nums.n = S.opt_count;
    shapes_Store_opt_reply(S.opt_call, &r);
}

/* Pings every ref of the list, ref i with i + 1 letters, and answers with
 * what each ping returned, in list order. */
static void store_opt(ember_call *call, const shapes_Optionals *o,
                      const shapes_list_ref_Watcher *many, void *ud)
{
    static const char text[] = "abcdefgh";
    (void)o;
    (void)ud;
    if (many->n == 0 || many->n > sizeof S.opt_nums / sizeof S.opt_nums[0]) {
        ember_call_fail(call, "want 1 to 8 refs");
        return;
    }
    S.opt_call = call;
    S.opt_count = S.opt_waiting = many->n;
    S.opt_failed = false;
    memset(S.opt_nums, 0, sizeof S.opt_nums);
    for (uint32_t i = 0; i < many->n; i++) {
        opt_ping *p = malloc(sizeof *p);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        *p = (opt_ping){ember_ref_retain(many->items[i]), i};
        shapes_Watcher_ping(p->who, text + sizeof text - 2 - i, opt_pinged, p, NULL);
    }
}

static void store_count(ember_call *call, void *ud)
{
    (void)ud;
    shapes_Store_count_reply(call, 7);
}

static void store_name(ember_call *call, void *ud)
{
    (void)ud;
    shapes_Store_name_fail_Empty2(call, NULL);
}

/* Writes down exactly what it was given, "-" for NULL, and replies with
 * the same text. */
static void store_find(ember_call *call, const char *key, const uint32_t *limit,
                       const char *prefix, const shapes_Inner *where,
                       const shapes_list_u32 *nums, void *ud)
{
    char *b = S.find_seen;
    size_t cap = sizeof S.find_seen, len = 0;
    (void)ud;
    len += (size_t)snprintf(b + len, cap - len, "%s", key);
    if (limit)
        len += (size_t)snprintf(b + len, cap - len, " limit=%u", *limit);
    else
        len += (size_t)snprintf(b + len, cap - len, " limit=-");
    if (prefix)
        len += (size_t)snprintf(b + len, cap - len, " prefix='%s'", prefix);
    else
        len += (size_t)snprintf(b + len, cap - len, " prefix=-");
    if (where)
        len += (size_t)snprintf(b + len, cap - len, " where=%d/'%s'", (int)where->depth,
                                where->label);
    else
        len += (size_t)snprintf(b + len, cap - len, " where=-");
    if (nums) {
        len += (size_t)snprintf(b + len, cap - len, " nums=[");
        for (uint32_t i = 0; i < nums->n && len < cap; i++)
            len += (size_t)snprintf(b + len, cap - len, "%s%u", i ? "," : "", nums->items[i]);
        if (len < cap)
            snprintf(b + len, cap - len, "]");
    } else {
        snprintf(b + len, cap - len, " nums=-");
    }
    shapes_Store_find_reply(call, S.find_seen);
}

static const shapes_Store_handlers store = {
    .remote_get = store_get,
    .remote_put = store_put,
    .remote_echo = store_echo,
    .remote_grow = store_grow,
    .remote_forget = store_forget,
    .remote_watch = store_watch,
    .remote_count = store_count,
    .remote_name = store_name,
    .remote_opt = store_opt,
    .remote_find = store_find,
    /* stop left NULL */
};

/* The root also exports Watcher with no handler at all: its calls fail
 * with "method not implemented". */
static const shapes_Watcher_handlers no_watcher;

/* ---- node: shapes.Watcher ---- */

static void watcher_progress(ember_call *call, uint32_t done, uint32_t total, void *ud)
{
    (void)call;
    (void)ud;
    S.progress_done = done * 100 + total;
    S.progress_seen = 1;
}

/* ud: NULL, or a counter of the pings this watcher answered. */
static void watcher_ping(ember_call *call, const char *text, void *ud)
{
    if (ud)
        ++*(int *)ud;
    shapes_Watcher_ping_reply(call, (uint32_t)strlen(text));
}

static const shapes_Watcher_handlers watcher = {
    .remote_progress = watcher_progress,
    .remote_ping = watcher_ping,
};

/* ---- callbacks ---- */

static void got_outcome(const ember_outcome *o)
{
    S.status = o->status;
    S.error_id = o->error_id;
    if (o->message)
        snprintf(S.text, sizeof S.text, "%s", o->message);
    S.done = 1;
}

static void got_scalars(const ember_outcome *o, const shapes_Scalars *ret, void *ud)
{
    (void)ud;
    got_outcome(o);
    CU_ASSERT((o->status == EMBER_OK) == (ret != NULL));
    if (ret) {
        snprintf(S.text, sizeof S.text, "%s", ret->s);
        CU_ASSERT(ret->i64v == INT64_MIN);
        CU_ASSERT(ret->u64v == UINT64_MAX);
        CU_ASSERT_EQUAL(ret->temp, shapes_Temp_cold);
    }
    if (o->status == EMBER_RAISED && o->error_id == shapes_NotFound_ID) {
        const shapes_NotFound *nf = o->error;
        snprintf(S.text, sizeof S.text, "%s", nf->key);
    }
    if (o->status == EMBER_RAISED && o->error_id == common_Denied_ID) {
        const common_Denied *dn = o->error;
        snprintf(S.text, sizeof S.text, "%s", dn->why);
    }
}

static void got_void(const ember_outcome *o, void *ud)
{
    (void)ud;
    got_outcome(o);
}

static void got_containers(const ember_outcome *o, const shapes_Containers *ret, void *ud)
{
    (void)ud;
    got_outcome(o);
    if (ret && ret->names.n == 2 && ret->tags.n == 1 && ret->tags.vals[0].n == 1) {
        snprintf(S.text, sizeof S.text, "%s,%s,%s", ret->names.items[0],
                 ret->names.items[1], ret->tags.vals[0].items[0]);
        S.u = ret->tags.keys[0];
    }
}

static void got_tree(const ember_outcome *o, const shapes_Tree *ret, void *ud)
{
    (void)ud;
    got_outcome(o);
    if (ret && ret->left)
        S.u = (uint64_t)(ret->value * 1000 + ret->left->value);
}

static void got_u64(const ember_outcome *o, const uint64_t *ret, void *ud)
{
    (void)ud;
    got_outcome(o);
    if (ret)
        S.u = *ret;
}

static void got_string(const ember_outcome *o, const char *const *ret, void *ud)
{
    (void)ud;
    got_outcome(o);
    CU_ASSERT_PTR_NULL(ret);
}

static void got_reply(const ember_outcome *o, const char *const *ret, void *ud)
{
    (void)ud;
    got_outcome(o);
    if (ret)
        snprintf(S.reply, sizeof S.reply, "%s", *ret);
}

/* S.u: how many numbers came back; S.text: them, comma-separated. */
static void got_opt_nums(const ember_outcome *o, const shapes_Optionals *ret, void *ud)
{
    (void)ud;
    got_outcome(o);
    if (!ret)
        return;
    S.u = ret->has_nums ? ret->nums.n : 0;
    size_t len = 0;
    for (uint32_t i = 0; i < S.u && len < sizeof S.text; i++)
        len += (size_t)snprintf(S.text + len, sizeof S.text - len, "%s%u",
                                i ? "," : "", ret->nums.items[i]);
}

static void got_ping(const ember_outcome *o, const uint32_t *ret, void *ud)
{
    (void)ud;
    got_outcome(o);
    if (ret)
        S.u = *ret;
}

static void got_broadcast_ping(const ember_outcome *o, const uint32_t *ret, void *ud)
{
    (void)ud;
    CU_ASSERT_EQUAL(o->status, EMBER_OK);
    CU_ASSERT_PTR_NOT_NULL(o->child);
    if (ret)
        S.u = *ret;
    S.broadcast_done = 1;
}

static int registered;

static void on_join(ember_root *r, ember_child *c, void *ud)
{
    (void)r;
    (void)c;
    (void)ud;
    S.joined = registered;
}

/* Ready once both sides agree: the root saw the child join and the node
 * saw its registration accepted. */
static void on_state(ember_node *n, ember_node_state st, const char *reason, void *ud)
{
    (void)n;
    (void)reason;
    (void)ud;
    if (st == EMBER_NODE_REGISTERED) {
        registered = 1;
        S.joined = ember_root_child_count(S.root) > 0;
    }
}

/* ---- setup ---- */

static void silent_log(ember_log_level lv, const char *msg, void *ud)
{
    (void)ud;
    if (lv >= EMBER_LOG_ERROR && getenv("EMBER_LOG"))
        fprintf(stderr, "ember: %s\n", msg);
}

static int setup(void)
{
    ember_set_log(silent_log, NULL);
    S.base = event_base_new();
    ember_root_config rc;
    ember_root_config_default(&rc);
    rc.on_join = on_join;
    S.root = ember_root_new(S.base, &rc);
    if (!S.root || shapes_Store_export(ember_root_exports(S.root), &store, NULL) ||
        shapes_Watcher_export(ember_root_exports(S.root), &no_watcher, NULL) ||
        ember_root_listen(S.root, "127.0.0.1:0"))
        return -1;
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ember_root_port(S.root));
    ember_node_config nc;
    ember_node_config_default(&nc);
    nc.on_state = on_state;
    S.node = ember_node_new(S.base, "gen-node", &nc);
    if (!S.node || shapes_Watcher_export(ember_node_exports(S.node), &watcher, NULL) ||
        ember_node_connect(S.node, addr))
        return -1;
    return run_until(S.base, flag_set, &S.joined, 5000) ? 0 : -1;
}

static int teardown(void)
{
    ember_node_free(S.node);
    ember_root_free(S.root);
    event_base_free(S.base);
    return 0;
}

/* ---- tests: node -> root ---- */

static ember_ref *root_ref(void)
{
    return ember_node_root(S.node);
}

static void test_call_struct_result(void)
{
    reset();
    CU_ASSERT(shapes_Store_get(root_ref(), "key", got_scalars, NULL, NULL) != 0);
    CU_ASSERT_FATAL(run_until(S.base, flag_set, &S.done, 5000));
    CU_ASSERT_EQUAL(S.status, EMBER_OK);
    CU_ASSERT_STRING_EQUAL(S.text, "key");
}

static void test_typed_errors(void)
{
    reset();
    shapes_Store_get(root_ref(), "missing", got_scalars, NULL, NULL);
    CU_ASSERT_FATAL(run_until(S.base, flag_set, &S.done, 5000));
    CU_ASSERT_EQUAL(S.status, EMBER_RAISED);
    CU_ASSERT_EQUAL(S.error_id, shapes_NotFound_ID);
    CU_ASSERT_STRING_EQUAL(S.text, "missing");

    reset();
    shapes_Store_get(root_ref(), "denied", got_scalars, NULL, NULL);
    CU_ASSERT_FATAL(run_until(S.base, flag_set, &S.done, 5000));
    CU_ASSERT_EQUAL(S.status, EMBER_RAISED);
    CU_ASSERT_EQUAL(S.error_id, common_Denied_ID);
    CU_ASSERT_STRING_EQUAL(S.text, "no");

    reset();
    shapes_Store_name(root_ref(), got_string, NULL, NULL);
    CU_ASSERT_FATAL(run_until(S.base, flag_set, &S.done, 5000));
    CU_ASSERT_EQUAL(S.status, EMBER_RAISED);
    CU_ASSERT_EQUAL(S.error_id, shapes_Empty2_ID);
}

static void test_not_implemented(void)
{
    reset();
    shapes_Watcher_ping(root_ref(), "x", got_ping, NULL, NULL);
    CU_ASSERT_FATAL(run_until(S.base, flag_set, &S.done, 5000));
    CU_ASSERT_EQUAL(S.status, EMBER_FAILED);
    CU_ASSERT_STRING_EQUAL(S.text, "method not implemented");
}

/* Store.find with these arguments; the handler must see `want`. */
static void find(const char *key, const uint32_t *limit, const char *prefix,
                 const shapes_Inner *where, const shapes_list_u32 *nums, const char *want)
{
    reset();
    CU_ASSERT(shapes_Store_find(root_ref(), key, limit, prefix, where, nums, got_reply, NULL,
                                NULL) != 0);
    CU_ASSERT_FATAL(run_until(S.base, flag_set, &S.done, 5000));
    CU_ASSERT_EQUAL(S.status, EMBER_OK);
    CU_ASSERT_STRING_EQUAL(S.find_seen, want);
    CU_ASSERT_STRING_EQUAL(S.reply, want);
}

static void test_optional_params(void)
{
    uint32_t five = 5, zero = 0, items[] = { 3, 1, 4 };
    shapes_Inner in, empty_in;
    shapes_list_u32 three = { items, 3 }, none = { NULL, 0 };

    shapes_Inner_init(&in);
    in.depth = -2;
    in.label = "deep";
    shapes_Inner_init(&empty_in);

    /* every optional left out: the handler gets NULL for each */
    find("a", NULL, NULL, NULL, NULL, "a limit=- prefix=- where=- nums=-");
    /* every one given */
    find("b", &five, "pre", &in, &three, "b limit=5 prefix='pre' where=-2/'deep' nums=[3,1,4]");
    /* given as zero, "" or empty: still present, not NULL */
    find("c", &zero, "", &empty_in, &none, "c limit=0 prefix='' where=0/'' nums=[]");
    /* one at a time */
    find("d", &five, NULL, NULL, NULL, "d limit=5 prefix=- where=- nums=-");
    find("e", NULL, "p", NULL, NULL, "e limit=- prefix='p' where=- nums=-");
    find("f", NULL, NULL, &in, NULL, "f limit=- prefix=- where=-2/'deep' nums=-");
    find("g", NULL, NULL, NULL, &three, "g limit=- prefix=- where=- nums=[3,1,4]");
}

static void test_containers_and_tree(void)
{
    reset();
    shapes_Containers c;
    shapes_Containers_init(&c);
    const char *names[] = { "a", "b" }, *tagv[] = { "t" };
    uint32_t tk[] = { 99 };
    shapes_list_string tv[] = { { tagv, 1 } };
    c.names.items = names;
    c.names.n = 2;
    c.tags.keys = tk;
    c.tags.vals = tv;
    c.tags.n = 1;
    shapes_Store_echo(root_ref(), &c, got_containers, NULL, NULL);
    CU_ASSERT_FATAL(run_until(S.base, flag_set, &S.done, 5000));
    CU_ASSERT_EQUAL(S.status, EMBER_OK);
    CU_ASSERT_STRING_EQUAL(S.text, "a,b,t");
    CU_ASSERT_EQUAL(S.u, 99);

    reset();
    shapes_Tree seed;
    shapes_Tree_init(&seed);
    seed.value = 4;
    shapes_Store_grow(root_ref(), &seed, 3, got_tree, NULL, NULL);
    CU_ASSERT_FATAL(run_until(S.base, flag_set, &S.done, 5000));
    CU_ASSERT_EQUAL(S.u, 7 * 1000 + 4);

    reset();
    shapes_Store_count(root_ref(), got_u64, NULL, NULL);
    CU_ASSERT_FATAL(run_until(S.base, flag_set, &S.done, 5000));
    CU_ASSERT_EQUAL(S.u, 7);
}

/* A Tree chain of n nodes is n structs inside one another, and the last
 * one's (empty) kids list one more, all inside the payload's own struct:
 * n + 2 levels. The sender refuses what the receiver's max_depth (64)
 * would refuse, so the call fails alone instead of costing the
 * connection. */
static void grow_chain(uint32_t n)
{
    static shapes_Tree chain[70];
    for (uint32_t i = 0; i < n; i++) {
        shapes_Tree_init(&chain[i]);
        chain[i].value = 1;
        chain[i].left = i + 1 < n ? &chain[i + 1] : NULL;
    }
    reset();
    shapes_Store_grow(root_ref(), &chain[0], 1, got_tree, NULL, NULL);
    CU_ASSERT_FATAL(run_until(S.base, flag_set, &S.done, 5000));
}

static void test_too_deep(void)
{
    /* 65 levels in the arguments: refused before they are sent. */
    grow_chain(63);
    CU_ASSERT_EQUAL(S.status, EMBER_FAILED);
    CU_ASSERT_PTR_NOT_NULL(strstr(S.text, "arguments could not be encoded: a value "
                                          "nested deeper than max_depth"));
    /* 64 in the arguments, so 65 in the result (the seed under a new
     * root): the server's reply is refused, and answered FAILED. */
    grow_chain(62);
    CU_ASSERT_EQUAL(S.status, EMBER_FAILED);
    CU_ASSERT_PTR_NOT_NULL(strstr(S.text, "reply could not be encoded: a value "
                                          "nested deeper than max_depth"));
    CU_ASSERT_EQUAL(S.u, 0);
    /* The connection stayed: the same call one level less works. */
    grow_chain(61);
    CU_ASSERT_EQUAL(S.status, EMBER_OK);
    CU_ASSERT_EQUAL(S.u, 2 * 1000 + 1);
    CU_ASSERT_EQUAL(ember_node_state_get(S.node), EMBER_NODE_REGISTERED);
}

static void test_deferred_reply(void)
{
    reset();
    S.put_seen = 0;
    shapes_Scalars v;
    shapes_Scalars_init(&v);
    v.u32v = 12;
    shapes_Store_put(root_ref(), "k", &v, got_void, NULL, NULL);
    CU_ASSERT_FATAL(run_until(S.base, flag_set, &S.put_seen, 5000));
    CU_ASSERT_STRING_EQUAL(S.put_key, "k:12");
    CU_ASSERT_FALSE(S.done);                 /* not answered yet */
    CU_ASSERT_EQUAL(shapes_Store_put_reply(S.deferred_put), 0);
    CU_ASSERT_FATAL(run_until(S.base, flag_set, &S.done, 5000));
    CU_ASSERT_EQUAL(S.status, EMBER_OK);
}

static void test_oneway(void)
{
    S.forgot = 0;
    CU_ASSERT_EQUAL(shapes_Store_forget(root_ref(), "old"), 0);
    CU_ASSERT_FATAL(run_until(S.base, flag_set, &S.forgot, 5000));
    CU_ASSERT_EQUAL(S.forgot, 1);
}

/* A local Watcher passed as ref<Watcher>; the root pings it back before
 * answering the watch call. */
static void test_ref_passed_and_called_back(void)
{
    reset();
    ember_ref *me = shapes_Watcher_local(&watcher, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(me);
    shapes_Store_watch(root_ref(), me, got_void, NULL, NULL);
    CU_ASSERT_FATAL(run_until(S.base, flag_set, &S.done, 5000));
    CU_ASSERT_EQUAL(S.status, EMBER_OK);
    ember_ref_release(me);
}

/* Three local Watchers passed in a list<ref<Watcher>>: the root calls
 * each back (ref i with i + 1 letters) before answering with what each
 * returned, so every ref must reach the root in order and work. */
static void test_list_of_refs_called_back(void)
{
    reset();
    int pinged[3] = {0, 0, 0};
    ember_ref *refs[3];
    for (int i = 0; i < 3; i++) {
        refs[i] = shapes_Watcher_local(&watcher, &pinged[i]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(refs[i]);
    }
    shapes_list_ref_Watcher many = {refs, 3};
    shapes_Optionals o;
    shapes_Optionals_init(&o);
    shapes_Store_opt(root_ref(), &o, &many, got_opt_nums, NULL, NULL);
    CU_ASSERT_FATAL(run_until(S.base, flag_set, &S.done, 5000));
    CU_ASSERT_EQUAL(S.status, EMBER_OK);
    CU_ASSERT_EQUAL(S.u, 3);                    /* three results came back */
    CU_ASSERT_STRING_EQUAL(S.text, "1,2,3");    /* ref i answered i + 1 */
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(pinged[i], 1);
        ember_ref_release(refs[i]);
    }
}

/* ---- tests: root -> child ---- */

static void test_root_calls_child(void)
{
    ember_child *c = ember_root_child_by_name(S.root, "gen-node");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    reset();
    shapes_Watcher_ping(ember_child_ref(c), "four", got_ping, NULL, NULL);
    CU_ASSERT_FATAL(run_until(S.base, flag_set, &S.done, 5000));
    CU_ASSERT_EQUAL(S.status, EMBER_OK);
    CU_ASSERT_EQUAL(S.u, 4);

    S.progress_seen = 0;
    CU_ASSERT_EQUAL(shapes_Watcher_progress(ember_child_ref(c), 3, 9), 0);
    CU_ASSERT_FATAL(run_until(S.base, flag_set, &S.progress_seen, 5000));
    CU_ASSERT_EQUAL(S.progress_done, 309);

    S.broadcast_done = 0;
    S.u = 0;
    CU_ASSERT_EQUAL(shapes_Watcher_ping_broadcast(S.root, NULL, NULL, "sixsix",
                                                  got_broadcast_ping, NULL, NULL), 1);
    CU_ASSERT_FATAL(run_until(S.base, flag_set, &S.broadcast_done, 5000));
    CU_ASSERT_EQUAL(S.u, 6);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    CU_pSuite s = CU_add_suite("gen-e2e", setup, teardown);
    CU_add_test(s, "node->root: struct result", test_call_struct_result);
    CU_add_test(s, "node->root: typed errors", test_typed_errors);
    CU_add_test(s, "node->root: handler not implemented", test_not_implemented);
    CU_add_test(s, "node->root: containers, tree, scalar", test_containers_and_tree);
    CU_add_test(s, "node->root: optional parameters", test_optional_params);
    CU_add_test(s, "node->root: values nested too deep fail alone", test_too_deep);
    CU_add_test(s, "node->root: deferred reply", test_deferred_reply);
    CU_add_test(s, "node->root: oneway", test_oneway);
    CU_add_test(s, "ref passed and called back", test_ref_passed_and_called_back);
    CU_add_test(s, "list of refs passed and called back", test_list_of_refs_called_back);
    CU_add_test(s, "root->child: call, oneway, broadcast", test_root_calls_child);
    return run_suites();
}
