/*
 * thirdparty.c — refs passed on to a third party (Cap'n Proto's model: the
 * process that passes a ref on proxies the calls). A root R gets a
 * ref<b.Echo> from its node A and passes it to its node B; B calls it, R
 * forwards to A with no user code, the answer comes back. Covered on one
 * event_base: the calls, a call to another service through the proxy, refs
 * in the arguments, results and raised errors of forwarded calls (each a
 * proxy again), the releases reaching A in any order, A withdrawing its
 * object, B's cancel passed on, A, B and R each going away with a call in
 * flight through the proxy, and a process that is both root and node
 * passing its root's object to its child; then with three processes (fork):
 * B and A killed (SIGKILL) with calls in flight, and R killed while B's
 * call waits at A. Then the refs no decode takes (a refused call, a field
 * the receiver does not know, an answer after its call ended), directly and
 * through the proxy, and the counts DECREF carries. Every test runs with
 * every endpoint speaking protocol version 3, then with A, B, both or R
 * speaking at most version 2 (ember_proto_max_): only what protocol.md says
 * differs on version 2 may differ. Every call ends exactly once; nothing
 * sleeps.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <event2/event.h>

#include "../common/loop.h"
#include "../common/suites.h"

#include "mod_a.h"
#include "mod_b.h"
#include "probe-internal.h" /* the work a connection's hash tables did */
#include "ref-internal.h"   /* a ref's count: the releases reaching the owner */

#define HOLD 999          /* Echo.twice(HOLD) is kept unanswered */
#define MAX_HELD 8

/* ---- a peer: serves b.Hub and owns a b.Echo ---- */

typedef struct peer {
    ember_ref *echo;            /* its own Echo, handed out by Hub.give */
    ember_ref *give;            /* if set, Hub.give hands out this instead */
    ember_ref *kept;            /* Hub.keep */
    ember_ref *hub;             /* Hub.meet */
    ember_call *held[MAX_HELD]; /* Echo.twice(HOLD) */
    int nheld, echo_calls;
    int held_fd;                /* a byte written here per held call (fork) */
    bool relay_only;            /* Hub.give fails until `give` is set */
    bool undeclared;            /* Hub.redirect raises an undeclared error */
    ember_ref **all;            /* Hub.keep keeps every ref here when set */
    int nall, capall;
    bool hold_answers;          /* Hub.give and Hub.redirect are held */
    ember_call *late[MAX_HELD]; /* ... here, answered by peer_answer_late */
    bool late_raise[MAX_HELD];  /* a Hub.redirect */
    int nlate;
} peer;

static void echo_twice(ember_call *call, uint64_t n, void *ud)
{
    peer *p = ud;
    p->echo_calls++;
    if (n == HOLD && p->nheld < MAX_HELD) {
        p->held[p->nheld++] = call;
        if (p->held_fd >= 0 && write(p->held_fd, "h", 1) != 1)
            abort();
        return;
    }
    b_Echo_twice_reply(call, 2 * n);
}

static const b_Echo_handlers echo_handlers = {echo_twice, NULL};

static void hub_keep(ember_call *call, ember_ref *echo, void *ud)
{
    peer *p = ud;
    if (p->all) {
        if (p->nall < p->capall)
            p->all[p->nall++] = ember_ref_retain(echo);
        b_Hub_keep_reply(call);
        return;
    }
    if (p->kept)
        ember_ref_release(p->kept);
    p->kept = ember_ref_retain(echo);
    b_Hub_keep_reply(call);
}

/* Asked to call the ref it is given: answers with the result, or with
 * 1000 + the status when the call failed. */
static void asked(const ember_outcome *o, const uint64_t *ret, void *ud)
{
    b_Hub_ask_reply(ud, ret ? *ret : 1000 + (uint64_t)o->status);
}

static void hub_ask(ember_call *call, ember_ref *echo, uint64_t n, void *ud)
{
    (void)ud;
    b_Echo_twice(echo, n, asked, call, NULL);
}

/* Holds a Hub.give or Hub.redirect when the peer holds answers. */
static bool held_late(peer *p, ember_call *call, bool raise)
{
    if (!p->hold_answers || p->nlate == MAX_HELD)
        return false;
    p->late_raise[p->nlate] = raise;
    p->late[p->nlate++] = call;
    return true;
}

static void hub_give(ember_call *call, void *ud)
{
    peer *p = ud;
    if (held_late(p, call, false))
        return;
    if (p->relay_only && !p->give) {
        ember_call_fail(call, "nothing to give yet");
        return;
    }
    if (!p->give && !p->echo)
        p->echo = b_Echo_local(&echo_handlers, p);
    b_Hub_give_reply(call, p->give ? p->give : p->echo);
}

static void peer_answer_late(peer *p, ember_ref *obj);

/* Answers the held calls and lets go of the kept ref. */
static void peer_drop(peer *p)
{
    for (int i = 0; i < p->nheld; i++)
        b_Echo_twice_reply(p->held[i], 2 * HOLD);
    p->nheld = 0;
    peer_answer_late(p, NULL);
    if (p->kept)
        ember_ref_release(p->kept);
    p->kept = NULL;
    if (p->hub)
        ember_ref_release(p->hub);
    p->hub = NULL;
    for (int i = 0; i < p->nall; i++)
        ember_ref_release(p->all[i]);
    p->nall = 0;
}

static void hub_drop(ember_call *call, void *ud)
{
    peer_drop(ud);
    b_Hub_drop_reply(call);
}

static void hub_meet(ember_call *call, ember_ref *other, void *ud)
{
    peer *p = ud;
    if (p->hub)
        ember_ref_release(p->hub);
    p->hub = ember_ref_retain(other);
    b_Hub_meet_reply(call);
}

/* Raises Elsewhere with the peer's own Echo inside (or, when undeclared
 * is set, an error Hub.redirect does not declare). */
static void hub_redirect(ember_call *call, void *ud)
{
    peer *p = ud;
    if (held_late(p, call, true))
        return;
    if (p->undeclared) {
        ember_call_raise_raw(call, 0x1234, NULL, 0);
        return;
    }
    if (!p->echo)
        p->echo = b_Echo_local(&echo_handlers, p);
    b_Elsewhere err;
    b_Elsewhere_init(&err);
    err.echo = p->echo;
    err.n = 7;
    b_Hub_redirect_fail_Elsewhere(call, &err);
}

/* Answers the held Hub.give and Hub.redirect calls with obj: the reply,
 * or Elsewhere holding it. */
static void peer_answer_late(peer *p, ember_ref *obj)
{
    for (int i = 0; i < p->nlate; i++) {
        if (!p->late_raise[i]) {
            b_Hub_give_reply(p->late[i], obj);
            continue;
        }
        b_Elsewhere err;
        b_Elsewhere_init(&err);
        err.echo = obj;
        err.n = 7;
        b_Hub_redirect_fail_Elsewhere(p->late[i], &err);
    }
    p->nlate = 0;
}

static const b_Hub_handlers hub_handlers = {hub_keep, hub_ask, hub_give, hub_drop,
                                            hub_meet, hub_redirect};

static void peer_init(peer *p)
{
    memset(p, 0, sizeof *p);
    p->held_fd = -1;
}

static void peer_fini(peer *p)
{
    peer_drop(p);
    if (p->echo)
        ember_ref_release(p->echo);
    if (p->give)
        ember_ref_release(p->give);
}

/* ---- the test's side ---- */

static struct event_base *base;

/* The highest protocol version R, A and B speak (ember_proto_max_): each
 * suite runs the tests with its own, so version 2 and 3 peers meet in one
 * cluster. B, A and R here name the endpoints, whatever the tests call
 * them. */
static uint32_t ver_r = EMBER_PROTOCOL_VERSION, ver_a = EMBER_PROTOCOL_VERSION,
                ver_b = EMBER_PROTOCOL_VERSION;

static uint32_t node_ver(const char *name)
{
    return strcmp(name, "a") == 0 ? ver_a : strcmp(name, "b") == 0 ? ver_b
         : EMBER_PROTOCOL_VERSION;
}

/* What a node named name speaks with R. */
static uint32_t spoken(const char *name)
{
    uint32_t v = node_ver(name);
    return v < ver_r ? v : ver_r;
}

typedef struct res {
    int n;
    ember_status st;
    uint64_t u;
    ember_ref *ref;
    char msg[128];
} res;

static void got_u64(const ember_outcome *o, const uint64_t *ret, void *ud)
{
    res *r = ud;
    r->n++;
    r->st = o->status;
    r->u = ret ? *ret : 0;
    snprintf(r->msg, sizeof r->msg, "%s", o->message ? o->message : "");
}

static void got_ref(const ember_outcome *o, ember_ref *const *ret, void *ud)
{
    res *r = ud;
    r->n++;
    r->st = o->status;
    r->ref = ret && *ret ? ember_ref_retain(*ret) : NULL;
}

static void got_void(const ember_outcome *o, void *ud)
{
    res *r = ud;
    r->n++;
    r->st = o->status;
}

/* Hub.redirect's outcome: the ref and number inside the raised Elsewhere. */
static void got_elsewhere(const ember_outcome *o, void *ud)
{
    res *r = ud;
    got_void(o, ud);
    snprintf(r->msg, sizeof r->msg, "%s", o->message ? o->message : "");
    if (o->status != EMBER_RAISED || o->error_id != b_Elsewhere_ID)
        return;
    const b_Elsewhere *err = o->error;
    r->u = err->n;
    r->ref = err->echo ? ember_ref_retain(err->echo) : NULL;
}

static bool done(void *ud)
{
    return ((res *)ud)->n > 0;
}

static bool rc_is_one(void *ud)
{
    return ((ember_ref *)ud)->rc == 1;
}

static bool rc_is_two(void *ud)
{
    return ((ember_ref *)ud)->rc == 2;
}

/* Runs until r has its outcome, and checks it came exactly once. */
static void wait_res(res *r)
{
    CU_ASSERT_FATAL(run_until(base, done, r, 5000));
    run_until(base, NULL, NULL, 0);
    CU_ASSERT_EQUAL(r->n, 1);
}

static ember_root *new_root(peer *p)
{
    ember_proto_max_ = ver_r;
    ember_root *r = ember_root_new(base, NULL);
    ember_proto_max_ = EMBER_PROTOCOL_VERSION;
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    if (p)
        CU_ASSERT_EQUAL(b_Hub_export(ember_root_exports(r), &hub_handlers, p), 0);
    CU_ASSERT_EQUAL_FATAL(ember_root_listen(r, "127.0.0.1:0"), 0);
    return r;
}

static ember_node *new_node(const char *name, ember_root *to, peer *p)
{
    ember_proto_max_ = node_ver(name);
    ember_node *n = ember_node_new(base, name, NULL);
    ember_proto_max_ = EMBER_PROTOCOL_VERSION;
    CU_ASSERT_PTR_NOT_NULL_FATAL(n);
    if (p)
        CU_ASSERT_EQUAL(b_Hub_export(ember_node_exports(n), &hub_handlers, p), 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ember_root_port(to));
    CU_ASSERT_EQUAL(ember_node_connect(n, addr), 0);
    return n;
}

typedef struct joined { ember_root *r; size_t n; } joined;
static bool has_children(void *ud)
{
    joined *j = ud;
    return ember_root_child_count(j->r) >= j->n;
}

static bool registered(void *ud)
{
    return ember_node_state_get(ud) == EMBER_NODE_REGISTERED;
}

static ember_ref *child_ref(ember_root *r, const char *name)
{
    ember_child *c = ember_root_child_by_name(r, name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    return ember_child_ref(c);
}

/* R with nodes "a" and "b"; R holds A's Echo (from Hub.give) in *aref. */
typedef struct trio {
    ember_root *r;
    ember_node *a, *b;
    peer pa, pb;
    ember_ref *aref;
} trio;

static void trio_start(trio *t)
{
    memset(t, 0, sizeof *t);
    peer_init(&t->pa);
    peer_init(&t->pb);
    t->r = new_root(NULL);
    t->a = new_node("a", t->r, &t->pa);
    t->b = new_node("b", t->r, &t->pb);
    joined j = {t->r, 2};
    CU_ASSERT_FATAL(run_until(base, has_children, &j, 5000));
    CU_ASSERT_FATAL(run_until(base, registered, t->a, 5000));
    CU_ASSERT_FATAL(run_until(base, registered, t->b, 5000));
    CU_ASSERT_EQUAL(ember_child_version_(ember_root_child_by_name(t->r, "a")), spoken("a"));
    CU_ASSERT_EQUAL(ember_child_version_(ember_root_child_by_name(t->r, "b")), spoken("b"));
    CU_ASSERT_EQUAL(ember_node_version_(t->a), spoken("a"));
    CU_ASSERT_EQUAL(ember_node_version_(t->b), spoken("b"));
    res g = {0};
    b_Hub_give(child_ref(t->r, "a"), got_ref, &g, NULL);
    wait_res(&g);
    CU_ASSERT_EQUAL_FATAL(g.st, EMBER_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g.ref);
    t->aref = g.ref;
}

/* B asks R to pass A's object along and calls it: the answer (or 1000 +
 * the status B's call ended with). */
static void ask_b(trio *t, uint64_t n, res *r)
{
    memset(r, 0, sizeof *r);
    b_Hub_ask(child_ref(t->r, "b"), t->aref, n, got_u64, r, NULL);
}

/* R passes A's exports to B as a ref<Hub>, which B keeps (Hub.meet). */
static void b_meets_a(trio *t)
{
    res m = {0};
    b_Hub_meet(child_ref(t->r, "b"), child_ref(t->r, "a"), got_void, &m, NULL);
    wait_res(&m);
    CU_ASSERT_EQUAL(m.st, EMBER_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t->pb.hub);
}

/* R passes A's object to B, which keeps it. */
static void b_keeps(trio *t)
{
    res k = {0};
    b_Hub_keep(child_ref(t->r, "b"), t->aref, got_void, &k, NULL);
    wait_res(&k);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t->pb.kept);
}

/* R lets go of A's object: once nobody else holds it either, A's own
 * reference is all that is left. */
static void r_lets_go(trio *t)
{
    ember_ref_release(t->aref);
    t->aref = NULL;
    CU_ASSERT(run_until(base, rc_is_one, t->pa.echo, 5000));
}

static void wait_held(peer *p, int n)
{
    int_at_least c = {&p->nheld, n};
    CU_ASSERT_FATAL(run_until(base, reached, &c, 5000));
}

static void trio_stop(trio *t)
{
    if (t->aref)
        ember_ref_release(t->aref);
    peer_fini(&t->pb);
    ember_node_free(t->b);
    peer_fini(&t->pa);
    ember_node_free(t->a);
    ember_root_free(t->r);
}

/* ---- tests on one base ---- */

static void test_forwarded(void)
{
    trio t;
    trio_start(&t);
    res r;
    ask_b(&t, 21, &r);
    wait_res(&r);
    CU_ASSERT_EQUAL(r.st, EMBER_OK);
    CU_ASSERT_EQUAL(r.u, 42);
    CU_ASSERT_EQUAL(t.pa.echo_calls, 1);

    /* B keeps it and calls it itself, twice; then a.X, which it is not. */
    b_keeps(&t);
    for (uint64_t i = 1; i <= 2; i++) {
        memset(&r, 0, sizeof r);
        b_Echo_twice(t.pb.kept, i, got_u64, &r, NULL);
        wait_res(&r);
        CU_ASSERT_EQUAL(r.u, 2 * i);
    }
    CU_ASSERT_EQUAL(t.pa.echo_calls, 3);
    memset(&r, 0, sizeof r);
    a_X_f(t.pb.kept, 5, got_u64, &r, NULL);
    wait_res(&r);
    CU_ASSERT_EQUAL(r.st, EMBER_NO_METHOD);
    /* The proxy's object id on B's connection, whatever it is. */
    unsigned long long oid = 0;
    char svc[16] = "";
    CU_ASSERT_EQUAL(sscanf(r.msg, "object %llu does not serve %15s", &oid, svc), 2);
    CU_ASSERT(oid > 0);
    CU_ASSERT_STRING_EQUAL(svc, "a.X");
    CU_ASSERT_EQUAL(t.pa.echo_calls, 3);

    /* B lets go, then R: A hears of it, its object is its own again. */
    ember_ref_release(t.pb.kept);
    t.pb.kept = NULL;
    r_lets_go(&t);
    trio_stop(&t);
}

/* R lets go first, B still holds it: A's object stays until B is done. */
static void test_released_root_first(void)
{
    trio t;
    trio_start(&t);
    b_keeps(&t);
    ember_ref_release(t.aref);
    t.aref = NULL;
    run_until(base, NULL, NULL, 50); /* a DECREF would have arrived by now */
    CU_ASSERT_EQUAL(t.pa.echo->rc, 2);
    res r = {0};
    b_Echo_twice(t.pb.kept, 4, got_u64, &r, NULL);
    wait_res(&r);
    CU_ASSERT_EQUAL(r.u, 8);
    ember_ref_release(t.pb.kept);
    t.pb.kept = NULL;
    CU_ASSERT(run_until(base, rc_is_one, t.pa.echo, 5000));
    trio_stop(&t);
}

/* A goes with B's call waiting at A: B's call ends UNAVAILABLE, and so
 * does the next; B's release then frees R's proxy. */
static void test_owner_leaves(void)
{
    trio t;
    trio_start(&t);
    res r;
    ask_b(&t, HOLD, &r);
    wait_held(&t.pa, 1);
    ember_node_free(t.a);
    t.a = NULL;
    peer_drop(&t.pa); /* a late answer: a no-op that frees the call */
    wait_res(&r);
    CU_ASSERT_EQUAL(r.u, 1000 + EMBER_UNAVAILABLE);
    ask_b(&t, 3, &r);
    wait_res(&r);
    CU_ASSERT_EQUAL(r.u, 1000 + EMBER_UNAVAILABLE);
    CU_ASSERT_FALSE(ember_ref_alive(t.aref));
    trio_stop(&t);
}

/* A goes, then B calls through R with a ref of its own in the arguments:
 * the call ends UNAVAILABLE and R still decodes the arguments it could not
 * pass on, so B's object is not left exported to R. The same when A
 * withdrew the object B calls. */
static void test_args_of_a_call_that_cannot_go_on(void)
{
    trio t;
    trio_start(&t);
    b_meets_a(&t);
    ember_child *cb = ember_root_child_by_name(t.r, "b");
    CU_ASSERT_PTR_NOT_NULL_FATAL(cb);
    ember_node_free(t.a);
    t.a = NULL;
    peer mine;
    peer_init(&mine);
    ember_ref *echo = b_Echo_local(&echo_handlers, &mine);
    res k = {0};
    b_Hub_keep(t.pb.hub, echo, got_void, &k, NULL);
    wait_res(&k);
    CU_ASSERT_EQUAL(k.st, EMBER_UNAVAILABLE);
    CU_ASSERT(run_until(base, rc_is_one, echo, 5000));
    CU_ASSERT_EQUAL(echo->rc, 1); /* B's own: nothing holds it at R */
    ember_ref_release(echo);
    peer_fini(&mine);
    trio_stop(&t);
}

/* R passes A's exports to B as a ref<Hub>: B's calls of Hub through it carry
 * refs both ways, each re-encoded by R into a proxy of its own. */
static void test_refs_through_a_proxy(void)
{
    trio t;
    trio_start(&t);
    b_meets_a(&t);

    /* A ref in a result: A's Echo, to B through R. */
    res g = {0};
    b_Hub_give(t.pb.hub, got_ref, &g, NULL);
    wait_res(&g);
    CU_ASSERT_EQUAL(g.st, EMBER_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g.ref);
    res r = {0};
    b_Echo_twice(g.ref, 4, got_u64, &r, NULL);
    wait_res(&r);
    CU_ASSERT_EQUAL(r.u, 8);
    CU_ASSERT_EQUAL(t.pa.echo_calls, 1);

    /* A ref in the arguments: B's own Echo, which A calls back through R. */
    peer mine;
    peer_init(&mine);
    ember_ref *echo = b_Echo_local(&echo_handlers, &mine);
    memset(&r, 0, sizeof r);
    b_Hub_ask(t.pb.hub, echo, 5, got_u64, &r, NULL);
    wait_res(&r);
    CU_ASSERT_EQUAL(r.st, EMBER_OK);
    CU_ASSERT_EQUAL(r.u, 10);
    CU_ASSERT_EQUAL(mine.echo_calls, 1);
    CU_ASSERT_EQUAL(t.pa.echo_calls, 1);

    /* Everything let go: B's object is B's alone again, A's is A's. */
    ember_ref_release(g.ref);
    CU_ASSERT(run_until(base, rc_is_one, echo, 5000));
    ember_ref_release(echo);
    peer_fini(&mine);
    peer_drop(&t.pb);
    r_lets_go(&t);
    trio_stop(&t);
}

/* A raises an error holding its Echo to B through R: R re-encodes the
 * error as it does results, so B gets a proxy it can call, which reaches
 * A's Echo, and lets go of like any other. */
static void test_ref_in_a_raised_error(void)
{
    trio t;
    trio_start(&t);
    b_meets_a(&t);

    res e = {0};
    b_Hub_redirect(t.pb.hub, got_elsewhere, &e, NULL);
    wait_res(&e);
    CU_ASSERT_EQUAL(e.st, EMBER_RAISED);
    CU_ASSERT_EQUAL(e.u, 7);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e.ref);
    res r = {0};
    b_Echo_twice(e.ref, 21, got_u64, &r, NULL);
    wait_res(&r);
    CU_ASSERT_EQUAL(r.st, EMBER_OK);
    CU_ASSERT_EQUAL(r.u, 42);
    CU_ASSERT_EQUAL(t.pa.echo_calls, 1);

    /* An error the method does not declare: R cannot know what refs it
     * holds, so B gets a failure that says so. */
    t.pa.undeclared = true;
    res u = {0};
    b_Hub_redirect(t.pb.hub, got_elsewhere, &u, NULL);
    wait_res(&u);
    CU_ASSERT_EQUAL(u.st, EMBER_FAILED);
    CU_ASSERT_PTR_NOT_NULL(strstr(u.msg, "error 4660, which redirect does not declare"));
    CU_ASSERT_PTR_NULL(u.ref);

    /* B lets go of the ref from the error: R's proxy goes, and A's Echo is
     * held by A and by R's own ref from trio_start alone again. */
    ember_ref_release(e.ref);
    peer_drop(&t.pb);
    r_lets_go(&t);
    trio_stop(&t);
}

/* ---- many objects exported to one peer ---- */

#define MANY 5000
#define WINDOW 256

typedef struct many {
    peer *b;
    int next, done, failed;
    uint64_t sum;               /* of the answers: 2 (i + HOLD + 1) each */
} many;

static void many_next(many *m);

static void many_got(const ember_outcome *o, const uint64_t *ret, void *ud)
{
    many *m = ud;
    m->done++;
    m->failed += o->status != EMBER_OK;
    m->sum += ret ? *ret : 0;
    many_next(m);
}

static void many_next(many *m)
{
    if (m->next < m->b->nall) {
        int i = m->next++;
        b_Echo_twice(m->b->all[i], (uint64_t)(i + HOLD + 1), many_got, m, NULL);
    }
}

static bool many_done(void *ud)
{
    many *m = ud;
    return m->done == m->b->nall;
}

static bool none_exported(void *ud)
{
    return ember_child_exported_(ud) == 0;
}

static bool one_exported(void *ud)
{
    return ember_child_exported_(ud) == 1;
}

/* B keeps (Hub.keep) what R gives it: the call's outcome checked. */
static void b_keeps_ref(trio *t, ember_ref *what)
{
    res k = {0};
    b_Hub_keep(child_ref(t->r, "b"), what, got_void, &k, NULL);
    wait_res(&k);
    CU_ASSERT_EQUAL(k.st, EMBER_OK);
}

/* R passes A's exports on to B as two services, ref<Hub> and ref<Echo>:
 * two proxies on B's connection for one object, each reused when passed
 * again as its service, also once the other one is gone. */
static void test_one_object_as_two_services(void)
{
    trio t;
    trio_start(&t);
    ember_child *cb = ember_root_child_by_name(t.r, "b");
    CU_ASSERT_PTR_NOT_NULL_FATAL(cb);
    ember_ref *a = child_ref(t.r, "a");
    res m = {0};
    b_Hub_meet(child_ref(t.r, "b"), a, got_void, &m, NULL);
    wait_res(&m);
    CU_ASSERT_EQUAL(ember_child_exported_(cb), 1);
    b_keeps_ref(&t, a); /* as ref<Echo>: a second proxy */
    CU_ASSERT_EQUAL(ember_child_exported_(cb), 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t.pb.kept);
    uint64_t echo_oid = t.pb.kept->oid; /* the object B holds it as */
    b_keeps_ref(&t, a); /* the same one again */
    CU_ASSERT_EQUAL(ember_child_exported_(cb), 2);
    CU_ASSERT_EQUAL(t.pb.kept->oid, echo_oid);

    /* B lets go of the Hub proxy, the first made: the Echo one stays
     * found. */
    ember_ref_release(t.pb.hub);
    t.pb.hub = NULL;
    CU_ASSERT(run_until(base, one_exported, cb, 5000));
    b_keeps_ref(&t, a);
    CU_ASSERT_EQUAL(ember_child_exported_(cb), 1);
    CU_ASSERT_EQUAL(t.pb.kept->oid, echo_oid);
    memset(&m, 0, sizeof m);
    b_Hub_meet(child_ref(t.r, "b"), a, got_void, &m, NULL);
    wait_res(&m);
    CU_ASSERT_EQUAL(ember_child_exported_(cb), 2);
    peer_drop(&t.pb);
    CU_ASSERT(run_until(base, none_exported, cb, 5000));
    trio_stop(&t);
}

/* R passes MANY objects of its own to B, which keeps them all and calls
 * each: every call and every release finds its object by id in a hash
 * table, a few nodes looked at each, however many objects B holds. */
static void test_many_exports(void)
{
    trio t;
    trio_start(&t);
    ember_child *cb = ember_root_child_by_name(t.r, "b");
    CU_ASSERT_PTR_NOT_NULL_FATAL(cb);
    t.pb.all = calloc(MANY, sizeof *t.pb.all);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t.pb.all);
    t.pb.capall = MANY;
    peer mine;
    peer_init(&mine);
    res k = {0};
    for (int i = 0; i < MANY; i++) {
        ember_ref *echo = b_Echo_local(&echo_handlers, &mine);
        b_Hub_keep(child_ref(t.r, "b"), echo, got_void, &k, NULL);
        ember_ref_release(echo); /* R's own hold: B keeps it alive now */
    }
    int_at_least all_kept = {&t.pb.nall, MANY};
    CU_ASSERT_FATAL(run_until(base, reached, &all_kept, 20000));
    CU_ASSERT_EQUAL(ember_child_exported_(cb), MANY);

    uint64_t p0 = ember_child_htab_probes_(cb);
    many m = {&t.pb, 0, 0, 0, 0};
    for (int i = 0; i < WINDOW; i++)
        many_next(&m);
    CU_ASSERT_FATAL(run_until(base, many_done, &m, 20000));
    CU_ASSERT_EQUAL(m.failed, 0);
    CU_ASSERT_EQUAL(m.sum, (uint64_t)MANY * (MANY - 1) + 2u * (HOLD + 1) * MANY);
    CU_ASSERT_EQUAL(mine.echo_calls, MANY);
    uint64_t probes = ember_child_htab_probes_(cb) - p0;
    fprintf(stderr, "    %d calls to %d objects exported to one peer: %llu "
            "hash nodes looked at\n", MANY, MANY, (unsigned long long)probes);
    CU_ASSERT(probes <= 4u * MANY);

    /* B lets go of them all: each DECREF finds its object as fast, and
     * R's exports to B are empty again. */
    p0 = ember_child_htab_probes_(cb);
    peer_drop(&t.pb);
    CU_ASSERT(run_until(base, none_exported, cb, 20000));
    CU_ASSERT(ember_child_htab_probes_(cb) - p0 <= 8u * MANY);
    free(t.pb.all);
    t.pb.all = NULL;
    t.pb.capall = 0;
    peer_fini(&mine);
    trio_stop(&t);
}

/* A withdraws its object: B's calls through R end UNAVAILABLE, and so do
 * R's own; the releases still reach A. */
static void test_owner_revokes(void)
{
    trio t;
    trio_start(&t);
    b_keeps(&t);
    CU_ASSERT_EQUAL(ember_ref_revoke(t.pa.echo), 0);
    res r = {0};
    b_Echo_twice(t.pb.kept, 2, got_u64, &r, NULL);
    wait_res(&r);
    CU_ASSERT_EQUAL(r.st, EMBER_UNAVAILABLE);
    CU_ASSERT_STRING_EQUAL(r.msg, "object withdrawn by its owner");
    memset(&r, 0, sizeof r);
    b_Echo_twice(t.aref, 2, got_u64, &r, NULL);
    wait_res(&r);
    CU_ASSERT_EQUAL(r.st, EMBER_UNAVAILABLE);
    CU_ASSERT_EQUAL(t.pa.echo_calls, 0);
    CU_ASSERT_EQUAL(ember_ref_revoke(t.aref), -1); /* not ours */
    ember_ref_release(t.pb.kept);
    t.pb.kept = NULL;
    r_lets_go(&t);
    trio_stop(&t);
}

static bool held_cancelled(void *ud)
{
    peer *p = ud;
    return p->nheld > 0 && ember_call_cancelled(p->held[0]);
}

/* ---- B sends arguments that do not decode ---- */

static void got_raw(const ember_outcome *o, const void *p, size_t n, void *ud)
{
    res *r = ud;
    (void)p;
    (void)n;
    r->n++;
    r->st = o->status;
    snprintf(r->msg, sizeof r->msg, "%s", o->message ? o->message : "");
}

static bool not_registered(void *ud)
{
    return !registered(ud);
}

typedef struct bad_case {
    bool hub;              /* through A's exports as a ref<Hub>, not A's Echo */
    bool oneway;
    uint32_t method;
    const char *payload;
    size_t len;
    const char *why;       /* what B is told (calls) */
} bad_case;

/* Arguments a proxy would forward byte for byte (or copy around the refs
 * it re-encodes) that A's decoder refuses: A would drop its connection to
 * R, with its registration and every call on it, because of what B sent.
 * R checks them against the method's types: B is answered FAILED "bad
 * arguments: ..." and disconnected, as a direct callee would do; A never
 * sees the call and stays, and so does the proxy's object. */
static void test_bad_args_caller(void)
{
    static const bad_case cases[] = {
        /* twice(1: u64 n): a string where the u64 is */
        {false, false, b_Echo_twice_ID, "\x0a\x01x", 3, "wrong wire type"},
        /* a varint of more than 64 bits */
        {false, false, b_Echo_twice_ID, "\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02",
         11, "overflows 64 bits"},
        /* a length running past the end */
        {false, false, b_Echo_twice_ID, "\x12\x05x", 3, "past the end"},
        /* the oneway tick(1: u64 n), a string again: nobody is told */
        {false, true, b_Echo_tick_ID, "\x0a\x01x", 3, NULL},
        /* ask(1: ref<Echo> echo, 2: u64 n), re-encoded for its ref: n is
         * a string, copied as it came */
        {true, false, b_Hub_ask_ID, "\x08\x00\x12\x01x", 5, "wrong wire type"},
    };
    trio t;
    trio_start(&t);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bad_case *c = &cases[i];
        CU_ASSERT_FATAL(run_until(base, registered, t.b, 10000));
        joined j = {t.r, 2};
        CU_ASSERT_FATAL(run_until(base, has_children, &j, 10000));
        ember_ref *to;
        uint32_t svc;
        if (c->hub) {
            b_meets_a(&t);
            to = t.pb.hub;
            svc = b_Hub_SERVICE_ID;
        } else {
            b_keeps(&t);
            to = t.pb.kept;
            svc = b_Echo_SERVICE_ID;
        }
        res r = {0};
        if (c->oneway) {
            CU_ASSERT_EQUAL(ember_oneway_raw(to, svc, c->method, c->payload, c->len), 0);
        } else {
            ember_call_raw(to, svc, c->method, c->payload, c->len, got_raw, &r, NULL);
            wait_res(&r);
            CU_ASSERT_EQUAL(r.st, EMBER_FAILED);
            CU_ASSERT_PTR_NOT_NULL(strstr(r.msg, "bad arguments: "));
            CU_ASSERT_PTR_NOT_NULL(strstr(r.msg, c->why));
        }
        /* B broke the protocol: R drops it (B reconnects), not A. */
        CU_ASSERT(run_until(base, not_registered, t.b, 5000));
        CU_ASSERT(ember_ref_alive(t.aref)); /* R's connection to A stays */
        CU_ASSERT_EQUAL(ember_node_state_get(t.a), EMBER_NODE_REGISTERED);
        CU_ASSERT_EQUAL(t.pa.echo_calls, 0);
        peer_drop(&t.pb);
    }
    /* A's object still answers R, through the same connection. */
    res r = {0};
    b_Echo_twice(t.aref, 4, got_u64, &r, NULL);
    wait_res(&r);
    CU_ASSERT_EQUAL(r.st, EMBER_OK);
    CU_ASSERT_EQUAL(r.u, 8);
    CU_ASSERT_EQUAL(t.pa.echo_calls, 1);
    /* and B, back, calls it with good arguments */
    CU_ASSERT_FATAL(run_until(base, registered, t.b, 10000));
    joined j = {t.r, 2};
    CU_ASSERT_FATAL(run_until(base, has_children, &j, 10000));
    ask_b(&t, 5, &r);
    wait_res(&r);
    CU_ASSERT_EQUAL(r.st, EMBER_OK);
    CU_ASSERT_EQUAL(r.u, 10);
    trio_stop(&t);
}

/* B gives up on a call waiting at A (timeout): R passes the CANCEL on. */
static void test_cancel_passed_on(void)
{
    trio t;
    trio_start(&t);
    b_keeps(&t);
    res r = {0};
    ember_callopts o = {100};
    b_Echo_twice(t.pb.kept, HOLD, got_u64, &r, &o);
    wait_held(&t.pa, 1);
    wait_res(&r);
    CU_ASSERT_EQUAL(r.st, EMBER_TIMEOUT);
    CU_ASSERT(run_until(base, held_cancelled, &t.pa, 5000));
    peer_drop(&t.pa); /* an answer nobody waits for */
    memset(&r, 0, sizeof r);
    b_Echo_twice(t.pb.kept, 3, got_u64, &r, NULL); /* the proxy still works */
    wait_res(&r);
    CU_ASSERT_EQUAL(r.u, 6);
    ember_ref_release(t.pb.kept);
    t.pb.kept = NULL;
    r_lets_go(&t);
    trio_stop(&t);
}

/* B goes with its own call through R's proxy waiting at A: nobody waits
 * for it any more, so R cancels what it forwarded (A sees the call
 * cancelled), and nothing at R holds A's object for it: once R lets go,
 * A's object is A's alone, before A answers. */
static void test_caller_gone_cancels_forwarded(void)
{
    trio t;
    trio_start(&t);
    b_keeps(&t);
    res r = {0};
    b_Echo_twice(t.pb.kept, HOLD, got_u64, &r, NULL);
    wait_held(&t.pa, 1);
    peer_fini(&t.pb);
    ember_node_free(t.b);
    t.b = NULL;
    peer_init(&t.pb);
    CU_ASSERT_EQUAL(r.n, 1);
    CU_ASSERT_EQUAL(r.st, EMBER_SHUTDOWN);
    CU_ASSERT(run_until(base, held_cancelled, &t.pa, 5000));
    /* R lets go: A's object is held by A and by the call it keeps. */
    ember_ref_release(t.aref);
    t.aref = NULL;
    CU_ASSERT(run_until(base, rc_is_two, t.pa.echo, 5000));
    CU_ASSERT_EQUAL(t.pa.nheld, 1);
    peer_drop(&t.pa);
    CU_ASSERT_EQUAL(t.pa.echo->rc, 1);
    trio_stop(&t);
}

/* B goes with its call waiting at A: R's call to B ends LOST; A's late
 * answer is dropped at R; R's release still reaches A. */
static void test_caller_leaves(void)
{
    trio t;
    trio_start(&t);
    res r;
    ask_b(&t, HOLD, &r);
    wait_held(&t.pa, 1);
    peer_fini(&t.pb);
    ember_node_free(t.b);
    t.b = NULL;
    peer_init(&t.pb);
    wait_res(&r);
    CU_ASSERT_EQUAL(r.st, EMBER_LOST);
    peer_drop(&t.pa); /* the late answer */
    run_until(base, NULL, NULL, 20);
    r_lets_go(&t);
    trio_stop(&t);
}

/* R goes with B's call waiting at A: B's call ends LOST; A's answer is
 * dropped; nothing leaks. */
static void test_forwarder_goes(void)
{
    trio t;
    trio_start(&t);
    res r = {0};
    b_keeps(&t);
    b_Echo_twice(t.pb.kept, HOLD, got_u64, &r, NULL);
    wait_held(&t.pa, 1);
    ember_ref_release(t.aref);
    t.aref = NULL;
    ember_root_free(t.r);
    t.r = NULL;
    wait_res(&r);
    CU_ASSERT_EQUAL(r.st, EMBER_LOST);
    peer_drop(&t.pa);
    run_until(base, NULL, NULL, 20);
    peer_fini(&t.pb);
    ember_node_free(t.b);
    peer_fini(&t.pa);
    ember_node_free(t.a);
}

/* M is a node of R and the root of B: R's object, passed by M to B. */
static void test_root_and_node(void)
{
    peer pr, pb;
    peer_init(&pr);
    peer_init(&pb);
    ember_root *r = new_root(&pr);
    ember_node *mn = new_node("m", r, NULL);
    ember_root *mr = new_root(NULL);
    ember_node *b = new_node("b", mr, &pb);
    joined j2 = {mr, 1};
    CU_ASSERT_FATAL(run_until(base, has_children, &j2, 5000));
    CU_ASSERT_FATAL(run_until(base, registered, mn, 5000));
    res g = {0};
    b_Hub_give(ember_node_root(mn), got_ref, &g, NULL);
    wait_res(&g);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g.ref);
    res a = {0};
    b_Hub_ask(child_ref(mr, "b"), g.ref, 50, got_u64, &a, NULL);
    wait_res(&a);
    CU_ASSERT_EQUAL(a.st, EMBER_OK);
    CU_ASSERT_EQUAL(a.u, 100);
    CU_ASSERT_EQUAL(pr.echo_calls, 1);
    /* M's node side goes with B's call waiting at R: UNAVAILABLE. */
    memset(&a, 0, sizeof a);
    b_Hub_ask(child_ref(mr, "b"), g.ref, HOLD, got_u64, &a, NULL);
    wait_held(&pr, 1);
    ember_node_free(mn);
    wait_res(&a);
    CU_ASSERT_EQUAL(a.u, 1000 + EMBER_UNAVAILABLE);
    ember_ref_release(g.ref);
    peer_drop(&pr);
    run_until(base, NULL, NULL, 20);
    CU_ASSERT(run_until(base, rc_is_one, pr.echo, 5000));
    peer_fini(&pb);
    ember_node_free(b);
    ember_root_free(mr);
    peer_fini(&pr);
    ember_root_free(r);
}

/* ---- refs never decoded, version 2 and 3 ---- */

/* Two objects: the first where Hub.keep has its ref, the second in field
 * 9, which no version of Hub.keep has. */
static void enc_two(ember_enc *e, const void *v)
{
    ember_ref *const *two = v;
    ember_enc_ref_as(e, 1, two[0], &b_Echo_service);
    ember_enc_ref_as(e, 9, two[1], &b_Echo_service);
}

/* The outcome of a call started with ember_call_start (nothing decoded). */
static void raw_done(const ember_outcome *o, ember_dec *reply, ember_fn fn, void *ud)
{
    (void)reply;
    (void)fn;
    got_void(o, ud);
    res *r = ud;
    snprintf(r->msg, sizeof r->msg, "%s", o->message ? o->message : "");
}

/* A call with nothing in it to `to` and its answer: whatever `to`'s end
 * sent before answering (a DECREF) has arrived. */
static void round_trip(ember_ref *to)
{
    res r = {0};
    a_X_f(to, 1, got_u64, &r, NULL);
    wait_res(&r);
    CU_ASSERT_EQUAL(r.st, EMBER_NO_METHOD);
}

static void wait_late(peer *p, int n)
{
    int_at_least c = {&p->nlate, n};
    CU_ASSERT_FATAL(run_until(base, reached, &c, 5000));
}

/* A call whose caller gave up while its callee answers: the callee answers
 * with obj from inside the caller's outcome (or right after its cancel),
 * before it reads the caller's CANCEL, so its answer arrives late. */
typedef struct late {
    res r;
    peer *callee;
    ember_node *n;            /* the callee */
    ember_ref *obj;
    uint64_t sent;            /* obj's sends on n's connection once answered */
} late;

static void late_answer(late *l)
{
    peer_answer_late(l->callee, l->obj);
    l->sent = ember_node_sent_(l->n, l->obj);
}

static void late_timed_out(const ember_outcome *o, ember_ref *const *ret, void *ud)
{
    late *l = ud;
    got_ref(o, ret, &l->r);
    late_answer(l);
}

/* R's objects sent to B in a call B refuses (an unknown method) or in a
 * field B does not know, and B's object in answers R no longer waits for
 * (timed out, cancelled): on version 3 every one goes back at once; on
 * version 2 none is counted, so each stays exported until B's connection
 * closes. Everything else is the same on both. */
static void test_never_decoded(void)
{
    trio t;
    trio_start(&t);
    bool v3 = spoken("b") >= 3;
    ember_child *cb = ember_root_child_by_name(t.r, "b");
    CU_ASSERT_PTR_NOT_NULL_FATAL(cb);
    ember_ref *to_b = child_ref(t.r, "b");
    peer mine;
    peer_init(&mine);
    ember_ref *two[2] = {b_Echo_local(&echo_handlers, &mine),
                         b_Echo_local(&echo_handlers, &mine)};

    /* A method B's Hub does not have: refused before anything is decoded. */
    res r = {0};
    ember_call_start(to_b, &b_Hub_service, 99, enc_two, two, raw_done, NULL, &r, NULL);
    wait_res(&r);
    CU_ASSERT_EQUAL(r.st, EMBER_NO_METHOD);
    round_trip(to_b);
    CU_ASSERT_EQUAL(ember_child_sent_(cb, two[0]), v3 ? 0 : 1);
    CU_ASSERT_EQUAL(ember_child_sent_(cb, two[1]), v3 ? 0 : 1);

    /* Hub.keep: the first kept, the second in a field B skips. */
    memset(&r, 0, sizeof r);
    ember_call_start(to_b, &b_Hub_service, b_Hub_keep_ID, enc_two, two, raw_done,
                     NULL, &r, NULL);
    wait_res(&r);
    CU_ASSERT_EQUAL(r.st, EMBER_OK);
    CU_ASSERT_PTR_NOT_NULL(t.pb.kept);
    round_trip(to_b);
    CU_ASSERT_EQUAL(ember_child_sent_(cb, two[0]), v3 ? 1 : 2);
    CU_ASSERT_EQUAL(ember_child_sent_(cb, two[1]), v3 ? 0 : 2);
    /* B lets go of the one it kept: a DECREF of the one it counted. */
    peer_drop(&t.pb);
    round_trip(to_b);
    CU_ASSERT_EQUAL(ember_child_sent_(cb, two[0]), v3 ? 0 : 1);
    CU_ASSERT_EQUAL(ember_child_sent_(cb, two[1]), v3 ? 0 : 2);
    CU_ASSERT_EQUAL(ember_child_exported_(cb), v3 ? 0 : 2);

    /* B's answers arriving after R's call ended: a reply after a timeout,
     * a raised error after a cancel. */
    t.pb.hold_answers = true;
    late l = {{0}, &t.pb, t.b, b_Echo_local(&echo_handlers, &mine), 0};
    ember_callopts o = {200 * (uint32_t)test_slow()};
    b_Hub_give(to_b, late_timed_out, &l, &o);
    wait_late(&t.pb, 1);
    wait_res(&l.r);
    CU_ASSERT_EQUAL(l.r.st, EMBER_TIMEOUT);
    CU_ASSERT_EQUAL(l.sent, 1); /* sent before B read the CANCEL */
    res e = {0};
    ember_handle h = b_Hub_redirect(to_b, got_elsewhere, &e, NULL);
    wait_late(&t.pb, 1);
    CU_ASSERT_EQUAL(ember_cancel(to_b, h), 0);
    CU_ASSERT_EQUAL(e.n, 1);
    CU_ASSERT_EQUAL(e.st, EMBER_CANCELLED);
    late_answer(&l);
    CU_ASSERT_EQUAL(l.sent, v3 ? 1 : 2);
    round_trip(to_b);
    CU_ASSERT_EQUAL(e.n, 1);
    CU_ASSERT_EQUAL(ember_node_sent_(t.b, l.obj), v3 ? 0 : 2);
    CU_ASSERT_EQUAL(l.obj->rc, v3 ? 1 : 2);

    /* B goes: what stayed exported on version 2 goes with it. */
    ember_node_free(t.b);
    t.b = NULL;
    CU_ASSERT_EQUAL(l.obj->rc, 1);
    CU_ASSERT(run_until(base, rc_is_one, two[0], 5000));
    CU_ASSERT(run_until(base, rc_is_one, two[1], 5000));
    ember_ref_release(l.obj);
    ember_ref_release(two[0]);
    ember_ref_release(two[1]);
    peer_fini(&mine);
    trio_stop(&t);
}

/* B's objects in calls through R's proxy that R does not re-encode: a
 * method the types of b.Hub do not describe (the proxy refuses it, as any
 * callee an unknown method), a field Hub.keep does not have (on version 3
 * the call fails "not passed on"; on version 2, which sends no table, the
 * payload is copied to A). On version 3 every ref R did not decode goes
 * back at once; on version 2 it stays exported until B goes. */
static void test_never_decoded_through_a_proxy(void)
{
    trio t;
    trio_start(&t);
    bool v3 = spoken("b") >= 3;
    b_meets_a(&t);
    ember_child *ca = ember_root_child_by_name(t.r, "a");
    CU_ASSERT_PTR_NOT_NULL_FATAL(ca);
    peer mine;
    peer_init(&mine);
    ember_ref *two[2] = {b_Echo_local(&echo_handlers, &mine),
                         b_Echo_local(&echo_handlers, &mine)};
    res r = {0};
    ember_call_start(t.pb.hub, &b_Hub_service, 99, enc_two, two, raw_done, NULL, &r, NULL);
    wait_res(&r);
    /* A method the types do not describe: the proxy answers it itself. */
    CU_ASSERT_EQUAL(r.st, EMBER_NO_METHOD);
    CU_ASSERT_STRING_EQUAL(r.msg, "no method 99 in b.Hub");
    round_trip(ember_node_root(t.b));
    CU_ASSERT_EQUAL(ember_node_sent_(t.b, two[0]), v3 ? 0 : 1);
    CU_ASSERT_EQUAL(ember_node_sent_(t.b, two[1]), v3 ? 0 : 1);

    memset(&r, 0, sizeof r);
    ember_call_start(t.pb.hub, &b_Hub_service, b_Hub_keep_ID, enc_two, two,
                     raw_done, NULL, &r, NULL);
    wait_res(&r);
    CU_ASSERT_EQUAL(r.st, v3 ? EMBER_FAILED : EMBER_OK);
    CU_ASSERT((t.pa.kept != NULL) == !v3);
    round_trip(ember_node_root(t.b));
    CU_ASSERT_EQUAL(ember_node_sent_(t.b, two[0]), v3 ? 0 : 2);
    CU_ASSERT_EQUAL(ember_node_sent_(t.b, two[1]), v3 ? 0 : 2);
    CU_ASSERT_EQUAL(ember_child_exported_(ca), v3 ? 0 : 1); /* R's proxy */

    /* A lets go: R's proxy goes, and its DECREF reaches B. */
    peer_drop(&t.pa);
    round_trip(child_ref(t.r, "a"));
    CU_ASSERT_EQUAL(ember_child_exported_(ca), 0);
    round_trip(ember_node_root(t.b));
    CU_ASSERT_EQUAL(ember_node_sent_(t.b, two[0]), v3 ? 0 : 1);
    CU_ASSERT_EQUAL(ember_node_sent_(t.b, two[1]), v3 ? 0 : 2);

    peer_fini(&t.pb);
    ember_node_free(t.b);
    t.b = NULL;
    peer_init(&t.pb);
    CU_ASSERT_EQUAL(two[0]->rc, 1);
    CU_ASSERT_EQUAL(two[1]->rc, 1);
    ember_ref_release(two[0]);
    ember_ref_release(two[1]);
    peer_fini(&mine);
    r_lets_go(&t);
    trio_stop(&t);
}

/* A's object passed to B through R three times, and R's own three times:
 * B's release of each is one DECREF of the count it got, on whichever
 * version; the proxy and every export are gone once all let go. */
static void test_decref_counts(void)
{
    trio t;
    trio_start(&t);
    ember_child *ca = ember_root_child_by_name(t.r, "a");
    ember_child *cb = ember_root_child_by_name(t.r, "b");
    CU_ASSERT_PTR_NOT_NULL_FATAL(ca);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cb);
    ember_ref *kept[8];
    t.pb.all = kept;
    t.pb.capall = 8;
    peer mine;
    peer_init(&mine);
    ember_ref *own = b_Echo_local(&echo_handlers, &mine);
    for (int i = 0; i < 3; i++) {
        b_keeps_ref(&t, t.aref);
        b_keeps_ref(&t, own);
    }
    CU_ASSERT_EQUAL(t.pb.nall, 6);
    CU_ASSERT_EQUAL(ember_child_sent_(cb, own), 3);
    CU_ASSERT_EQUAL(ember_child_exported_(cb), 2); /* own and the proxy */
    CU_ASSERT_EQUAL(ember_node_sent_(t.a, t.pa.echo), 1); /* R's aref */
    res r = {0};
    b_Echo_twice(kept[0], 5, got_u64, &r, NULL);
    wait_res(&r);
    CU_ASSERT_EQUAL(r.u, 10);
    CU_ASSERT_EQUAL(t.pa.echo_calls, 1);
    peer_drop(&t.pb);
    CU_ASSERT(run_until(base, none_exported, cb, 5000));
    CU_ASSERT_EQUAL(ember_child_sent_(cb, own), 0);
    CU_ASSERT_EQUAL(own->rc, 1);
    CU_ASSERT_EQUAL(ember_node_sent_(t.a, t.pa.echo), 1);
    r_lets_go(&t);
    CU_ASSERT_EQUAL(ember_node_sent_(t.a, t.pa.echo), 0);
    CU_ASSERT_EQUAL(ember_child_exported_(ca), 0);
    t.pb.all = NULL;
    t.pb.capall = 0;
    ember_ref_release(own);
    peer_fini(&mine);
    trio_stop(&t);
}

/* Refs coming home through R: B hands A's object (R's proxy) to A's Hub
 * (R's proxy too), and R's own object back to R; each arrives as the
 * original. */
static void test_refs_coming_home(void)
{
    trio t;
    trio_start(&t);
    ember_child *ca = ember_root_child_by_name(t.r, "a");
    ember_child *cb = ember_root_child_by_name(t.r, "b");
    CU_ASSERT_PTR_NOT_NULL_FATAL(ca);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cb);
    b_keeps(&t);
    b_meets_a(&t);
    res k = {0};
    b_Hub_keep(t.pb.hub, t.pb.kept, got_void, &k, NULL);
    wait_res(&k);
    CU_ASSERT_EQUAL(k.st, EMBER_OK);
    CU_ASSERT_PTR_EQUAL(t.pa.kept, t.pa.echo); /* A's own, home */

    peer mine;
    peer_init(&mine);
    ember_ref *own = b_Echo_local(&echo_handlers, &mine);
    b_keeps_ref(&t, own);
    t.pb.give = ember_ref_retain(t.pb.kept);
    res g = {0};
    b_Hub_give(child_ref(t.r, "b"), got_ref, &g, NULL);
    wait_res(&g);
    CU_ASSERT_EQUAL(g.st, EMBER_OK);
    CU_ASSERT_PTR_EQUAL(g.ref, own); /* R's own, home */
    ember_ref_release(g.ref);

    /* Everything let go: nothing exported anywhere but R's aref at A. */
    ember_ref_release(t.pb.give);
    t.pb.give = NULL;
    peer_drop(&t.pb);
    peer_drop(&t.pa);
    CU_ASSERT(run_until(base, none_exported, cb, 5000));
    CU_ASSERT(run_until(base, none_exported, ca, 5000));
    CU_ASSERT_EQUAL(own->rc, 1);
    r_lets_go(&t);
    CU_ASSERT_EQUAL(ember_node_sent_(t.a, t.pa.echo), 0);
    ember_ref_release(own);
    peer_fini(&mine);
    trio_stop(&t);
}

/* A broadcast's outcomes: counts those that are OK. */
static void bcast_done(const ember_outcome *o, void *ud)
{
    *(int *)ud += o->status == EMBER_OK;
}

/* R broadcasts its object to A and B, whatever they speak: each gets its
 * own export, and each release reaches R. */
static void test_broadcast_ref(void)
{
    trio t;
    trio_start(&t);
    ember_child *ca = ember_root_child_by_name(t.r, "a");
    ember_child *cb = ember_root_child_by_name(t.r, "b");
    CU_ASSERT_PTR_NOT_NULL_FATAL(ca);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cb);
    peer mine;
    peer_init(&mine);
    ember_ref *own = b_Echo_local(&echo_handlers, &mine);
    int ok = 0;
    CU_ASSERT_EQUAL(b_Hub_keep_broadcast(t.r, NULL, NULL, own, bcast_done, &ok, NULL), 2);
    int_at_least both = {&ok, 2};
    CU_ASSERT_FATAL(run_until(base, reached, &both, 5000));
    CU_ASSERT_EQUAL(ember_child_sent_(ca, own), 1);
    CU_ASSERT_EQUAL(ember_child_sent_(cb, own), 1);
    res r = {0};
    b_Echo_twice(t.pa.kept, 3, got_u64, &r, NULL);
    wait_res(&r);
    CU_ASSERT_EQUAL(r.u, 6);
    memset(&r, 0, sizeof r);
    b_Echo_twice(t.pb.kept, 4, got_u64, &r, NULL);
    wait_res(&r);
    CU_ASSERT_EQUAL(r.u, 8);
    CU_ASSERT_EQUAL(mine.echo_calls, 2);
    peer_drop(&t.pa);
    peer_drop(&t.pb);
    CU_ASSERT(run_until(base, none_exported, ca, 5000));
    CU_ASSERT(run_until(base, none_exported, cb, 5000));
    CU_ASSERT_EQUAL(own->rc, 1);
    ember_ref_release(own);
    peer_fini(&mine);
    trio_stop(&t);
}

/* ---- three processes ---- */

/* A child process: a node named name of the root at port, serving b.Hub;
 * writes a byte to held_fd per held call; runs until killed. */
static pid_t spawn_node(const char *name, int port, int held_fd)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    struct event_base *b = event_base_new();
    peer p;
    peer_init(&p);
    p.held_fd = held_fd;
    ember_proto_max_ = node_ver(name);
    ember_node *n = ember_node_new(b, name, NULL);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    if (!n || b_Hub_export(ember_node_exports(n), &hub_handlers, &p) ||
        ember_node_connect(n, addr))
        _exit(3);
    event_base_dispatch(b);
    _exit(0);
}

static void wake(evutil_socket_t fd, short what, void *ud)
{
    (void)fd;
    (void)what;
    (void)ud;
}

/* Runs until a byte arrives on fd (a child held a call). */
static bool byte_in(void *ud)
{
    char c;
    return read(*(int *)ud, &c, 1) == 1;
}

static bool wait_byte(int fd)
{
    struct event *ev = event_new(base, fd, EV_READ | EV_PERSIST, wake, NULL);
    event_add(ev, NULL);
    bool ok = run_until(base, byte_in, &fd, 5000);
    event_free(ev);
    return ok;
}

static void reap(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* R here, A and B in their own processes: B, then A, killed with calls in
 * flight through R. */
static void test_three_processes(void)
{
    int fds[2];
    CU_ASSERT_EQUAL_FATAL(pipe(fds), 0);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    ember_root *r = new_root(NULL);
    int port = ember_root_port(r);
    pid_t a = spawn_node("a", port, fds[1]);
    pid_t b = spawn_node("b", port, -1);
    joined j = {r, 2};
    CU_ASSERT_FATAL(run_until(base, has_children, &j, 5000));
    res g = {0};
    b_Hub_give(child_ref(r, "a"), got_ref, &g, NULL);
    wait_res(&g);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g.ref);
    res q = {0};
    b_Hub_ask(child_ref(r, "b"), g.ref, 21, got_u64, &q, NULL);
    wait_res(&q);
    CU_ASSERT_EQUAL(q.u, 42);

    /* B dies while its call waits at A. */
    memset(&q, 0, sizeof q);
    b_Hub_ask(child_ref(r, "b"), g.ref, HOLD, got_u64, &q, NULL);
    CU_ASSERT_FATAL(wait_byte(fds[0]));
    reap(b);
    wait_res(&q);
    CU_ASSERT_EQUAL(q.st, EMBER_LOST);
    res d = {0};
    b_Hub_drop(child_ref(r, "a"), got_void, &d, NULL); /* A answers late */
    wait_res(&d);

    /* A new B; A dies while its call waits there. */
    b = spawn_node("b", port, -1);
    j.n = 2;
    CU_ASSERT_FATAL(run_until(base, has_children, &j, 5000));
    memset(&q, 0, sizeof q);
    b_Hub_ask(child_ref(r, "b"), g.ref, HOLD, got_u64, &q, NULL);
    CU_ASSERT_FATAL(wait_byte(fds[0]));
    reap(a);
    wait_res(&q);
    CU_ASSERT_EQUAL(q.u, 1000 + EMBER_UNAVAILABLE);
    memset(&q, 0, sizeof q);
    b_Hub_ask(child_ref(r, "b"), g.ref, 1, got_u64, &q, NULL);
    wait_res(&q);
    CU_ASSERT_EQUAL(q.u, 1000 + EMBER_UNAVAILABLE);
    ember_ref_release(g.ref);
    reap(b);
    ember_root_free(r);
    close(fds[0]);
    close(fds[1]);
}

/* A child process: the root R, whose Hub.give hands out A's object (got
 * from A when it joins). */
static peer r_peer;

static void r_got_a(const ember_outcome *o, ember_ref *const *ret, void *ud)
{
    (void)o;
    peer *p = ud;
    if (ret && *ret && !p->give)
        p->give = ember_ref_retain(*ret);
}

static void r_join_give(ember_root *r, ember_child *c, void *ud)
{
    (void)r;
    if (strcmp(ember_child_name(c), "a") == 0)
        b_Hub_give(ember_child_ref(c), r_got_a, ud, NULL);
}

static pid_t spawn_root(int *port)
{
    int fds[2];
    if (pipe(fds))
        return -1;
    pid_t pid = fork();
    if (pid != 0) {
        close(fds[1]);
        int got = read(fds[0], port, sizeof *port) == (ssize_t)sizeof *port;
        close(fds[0]);
        return got ? pid : -1;
    }
    close(fds[0]);
    struct event_base *b = event_base_new();
    peer_init(&r_peer);
    r_peer.relay_only = true;
    ember_root_config rc;
    ember_root_config_default(&rc);
    rc.on_join = r_join_give;
    rc.ud = &r_peer;
    ember_proto_max_ = ver_r;
    ember_root *r = ember_root_new(b, &rc);
    if (!r || b_Hub_export(ember_root_exports(r), &hub_handlers, &r_peer) ||
        ember_root_listen(r, "127.0.0.1:0"))
        _exit(3);
    int p = ember_root_port(r);
    if (write(fds[1], &p, sizeof p) != (ssize_t)sizeof p)
        _exit(3);
    close(fds[1]);
    event_base_dispatch(b);
    _exit(0);
}

/* B here; R and A in their own processes; R is killed while B's call
 * through it waits at A. */
static void test_forwarder_killed(void)
{
    int fds[2];
    CU_ASSERT_EQUAL_FATAL(pipe(fds), 0);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    int port = 0;
    pid_t r = spawn_root(&port);
    CU_ASSERT_FATAL(r > 0);
    pid_t a = spawn_node("a", port, fds[1]);
    ember_proto_max_ = ver_b;
    ember_node *b = ember_node_new(base, "b", NULL);
    ember_proto_max_ = EMBER_PROTOCOL_VERSION;
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    CU_ASSERT_EQUAL_FATAL(ember_node_connect(b, addr), 0);
    /* R hands out A's object once A has joined and answered its give (a
     * call before that, or before B registered, fails: ask again). */
    res g = {0};
    for (int i = 0; i < 500 && !g.ref; i++) {
        memset(&g, 0, sizeof g);
        b_Hub_give(ember_node_root(b), got_ref, &g, NULL);
        CU_ASSERT_FATAL(run_until(base, done, &g, 5000));
        if (!g.ref)
            run_until(base, NULL, NULL, 10);
    }
    CU_ASSERT_PTR_NOT_NULL_FATAL(g.ref);
    res q = {0};
    b_Echo_twice(g.ref, HOLD, got_u64, &q, NULL);
    CU_ASSERT_FATAL(wait_byte(fds[0])); /* held at A: it went through R */
    reap(r);
    wait_res(&q);
    CU_ASSERT_EQUAL(q.st, EMBER_LOST);
    ember_ref_release(g.ref);
    reap(a);
    ember_node_free(b);
    close(fds[0]);
    close(fds[1]);
}

static int setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    return base ? 0 : 1;
}

static int teardown(void)
{
    event_base_free(base);
    ver_r = ver_a = ver_b = EMBER_PROTOCOL_VERSION;
    return 0;
}

/* The suites: every version 3, then version 2 peers among them. */
static int setup_a2(void) { ver_a = 2; return setup(); }
static int setup_b2(void) { ver_b = 2; return setup(); }
static int setup_ab2(void) { ver_a = ver_b = 2; return setup(); }
static int setup_r2(void) { ver_r = 2; return setup(); }

static const struct {
    const char *name;
    CU_InitializeFunc init;
} suites[] = {
    {"gen-thirdparty", setup},
    {"gen-thirdparty, A version 2", setup_a2},
    {"gen-thirdparty, B version 2", setup_b2},
    {"gen-thirdparty, A and B version 2", setup_ab2},
    {"gen-thirdparty, R version 2", setup_r2},
};

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++) {
        CU_pSuite s = CU_add_suite(suites[i].name, suites[i].init, teardown);
        CU_add_test(s, "B calls A's object through R", test_forwarded);
        CU_add_test(s, "R releases before B", test_released_root_first);
        CU_add_test(s, "A leaves with a call in flight", test_owner_leaves);
        CU_add_test(s, "refs in the arguments and results of forwarded calls",
                    test_refs_through_a_proxy);
        CU_add_test(s, "a ref inside an error raised through a proxy",
                    test_ref_in_a_raised_error);
        CU_add_test(s, "A withdraws its object", test_owner_revokes);
        CU_add_test(s, "the refs in a call that cannot be passed on",
                    test_args_of_a_call_that_cannot_go_on);
        CU_add_test(s, "5000 objects exported to one peer", test_many_exports);
        CU_add_test(s, "one object passed on as two services", test_one_object_as_two_services);
        CU_add_test(s, "B's arguments that do not decode: B goes, not A",
                    test_bad_args_caller);
        CU_add_test(s, "B's cancel is passed on to A", test_cancel_passed_on);
        CU_add_test(s, "B leaves with a call in flight", test_caller_leaves);
        CU_add_test(s, "B goes: what R forwarded for it is cancelled",
                    test_caller_gone_cancels_forwarded);
        CU_add_test(s, "R goes with a call in flight", test_forwarder_goes);
        CU_add_test(s, "a process both root and node forwards", test_root_and_node);
        CU_add_test(s, "refs never decoded", test_never_decoded);
        CU_add_test(s, "refs never decoded by R's proxy",
                    test_never_decoded_through_a_proxy);
        CU_add_test(s, "DECREF counts", test_decref_counts);
        CU_add_test(s, "refs coming home through R", test_refs_coming_home);
        CU_add_test(s, "a broadcast holding a ref", test_broadcast_ref);
        CU_add_test(s, "three processes: B, then A killed", test_three_processes);
        CU_add_test(s, "three processes: R killed", test_forwarder_killed);
    }
    return run_suites();
}
