/*
 * evolve.c — schema evolution: tests/idl/evolve_v1.idl (module ev1) and
 * evolve_v2.idl (module ev2, the same schema grown) in one program. What
 * v2 writes, v1 reads (new fields skipped), and what v1 writes, v2 reads
 * (new fields zero/absent); over a connection, each version calls the
 * other: parameters one side does not know are skipped, those it does not
 * send arrive zero/empty (required) or NULL (optional). Module names are
 * on the wire only in service and error ids, so the two prefixes are just
 * a way to link both versions together.
 */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/Basic.h>
#include <event2/event.h>

#include "../common/loop.h"
#include "../common/suites.h"

#include "evolve_v1.h"
#include "evolve_v2.h"

static uint8_t buf[1 << 16];
static ember_arena *arena;

static int setup(void)
{
    arena = ember_arena_new();
    return arena ? 0 : -1;
}

static int teardown(void)
{
    ember_arena_free(arena);
    return 0;
}

static void test_new_writer_old_reader(void)
{
    ev2_Item items[2];
    ev2_Item_init(&items[0]);
    ev2_Item_init(&items[1]);
    items[0].id = 1;
    items[0].name = "sword";
    items[0].weight = 3.5;
    items[1].id = 2;
    items[1].name = "shield";
    uint64_t members[] = { 7, 8, 9 };
    ev2_Guild guild;
    ev2_Guild_init(&guild);
    guild.name = "knights";
    guild.members.items = members;
    guild.members.n = 3;
    const char *keys[] = { "hp" };
    int64_t vals[] = { -3 };
    static const uint8_t avatar[] = { 1, 2, 3 };

    ev2_Player p2;
    ev2_Player_init(&p2);
    p2.id = 42;
    p2.name = "arthur";
    p2.items.items = items;
    p2.items.n = 2;
    p2.mood = ev2_Mood_sleepy;          /* a value v1 does not know */
    p2.guild = &guild;
    p2.stats.keys = keys;
    p2.stats.vals = vals;
    p2.stats.n = 1;
    p2.has_title = true;
    p2.title = "king";
    p2.avatar.data = avatar;
    p2.avatar.len = sizeof avatar;

    ember_enc e;
    ember_enc_init_fixed(&e, buf, sizeof buf);
    ev2_Player_encode(&e, &p2);
    CU_ASSERT_FATAL(!e.failed);

    ev1_Player p1;
    ember_dec d;
    ember_dec_init(&d, buf, ember_enc_len(&e), arena);
    CU_ASSERT_FATAL(ev1_Player_decode(&d, &p1) == 0);
    CU_ASSERT(p1.id == 42);
    CU_ASSERT_STRING_EQUAL(p1.name, "arthur");
    CU_ASSERT_EQUAL_FATAL(p1.items.n, 2);
    CU_ASSERT_EQUAL(p1.items.items[0].id, 1);
    CU_ASSERT_STRING_EQUAL(p1.items.items[1].name, "shield");
    CU_ASSERT_EQUAL((int)p1.mood, 2);   /* kept as is */
    CU_ASSERT_PTR_NULL(ev1_Mood_name(p1.mood));

    /* v1 re-encodes only what it knows, and v2 reads that back */
    ember_enc_init_fixed(&e, buf, sizeof buf);
    ev1_Player_encode(&e, &p1);
    ev2_Player back;
    ember_dec_init(&d, buf, ember_enc_len(&e), arena);
    CU_ASSERT_FATAL(ev2_Player_decode(&d, &back) == 0);
    CU_ASSERT_EQUAL(back.mood, ev2_Mood_sleepy);
    CU_ASSERT_PTR_NULL(back.guild);
    CU_ASSERT_EQUAL(back.items.items[0].weight, 0);
}

static void test_old_writer_new_reader(void)
{
    ev1_Item item;
    ev1_Item_init(&item);
    item.id = 5;
    item.name = "cup";
    ev1_Player p1;
    ev1_Player_init(&p1);
    p1.id = 1;
    p1.name = "bedivere";
    p1.items.items = &item;
    p1.items.n = 1;
    p1.mood = ev1_Mood_angry;

    ember_enc e;
    ember_enc_init_fixed(&e, buf, sizeof buf);
    ev1_Player_encode(&e, &p1);
    CU_ASSERT_FATAL(!e.failed);

    ev2_Player p2;
    ember_dec d;
    ember_dec_init(&d, buf, ember_enc_len(&e), arena);
    CU_ASSERT_FATAL(ev2_Player_decode(&d, &p2) == 0);
    CU_ASSERT(p2.id == 1);
    CU_ASSERT_STRING_EQUAL(p2.name, "bedivere");
    CU_ASSERT_EQUAL(p2.mood, ev2_Mood_angry);
    CU_ASSERT_EQUAL_FATAL(p2.items.n, 1);
    CU_ASSERT_EQUAL(p2.items.items[0].weight, 0);       /* missing: zero */
    CU_ASSERT_STRING_EQUAL(p2.items.items[0].name, "cup");
    CU_ASSERT_PTR_NULL(p2.guild);                       /* absent */
    CU_ASSERT_EQUAL(p2.stats.n, 0);
    CU_ASSERT_FALSE(p2.has_title);
    CU_ASSERT_STRING_EQUAL(p2.title, "");               /* never NULL */
    CU_ASSERT_EQUAL(p2.avatar.len, 0);
}

/* The services' descriptors: same method ids, v2 has one more method. */
static void test_services(void)
{
    CU_ASSERT_EQUAL(ev1_Lobby_join_ID, ev2_Lobby_join_ID);
    CU_ASSERT_EQUAL(ev1_Lobby_tally_ID, ev2_Lobby_tally_ID);
    CU_ASSERT_EQUAL(ev1_Lobby_service.n_methods, 3);
    CU_ASSERT_EQUAL(ev2_Lobby_service.n_methods, 4);
    CU_ASSERT_EQUAL(ev2_Lobby_service.methods[1].id, ev2_Lobby_leave_ID);
}

/* ---- over a connection: a v1 root serves a v2 node ---- */

static struct {
    int ready, done;
    ember_status status;
    char name[32];
    uint64_t id;
    bool guild;
    /* what a tally handler was given, and what a tally caller got back */
    int mood;
    bool limit, hint, zero_extra;
    char tag[32];
    size_t nxs;
    uint32_t n;
    bool has_n;
    char note[64];
} X;

/* v1 handler: knows only `name`; the v2 caller's `level` is skipped. */
static void v1_join(ember_call *call, const char *name, void *ud)
{
    (void)ud;
    ev1_Player p;
    ev1_Player_init(&p);
    p.id = 77;
    p.name = name;
    p.mood = ev1_Mood_angry;
    ev1_Lobby_join_reply(call, &p);
}

/* v1 handler of tally: a v2 caller's parameters 3..7 are skipped, its
 * Mood may be a value v1 has no name for. */
static void v1_tally(ember_call *call, const char *who, ev1_Mood mood, void *ud)
{
    (void)ud;
    X.mood = (int)mood;
    ev1_Tally t;
    ev1_Tally_init(&t);
    t.n = 5;
    t.note = who;
    ev1_Lobby_tally_reply(call, &t);
}

static const ev1_Lobby_handlers v1_lobby = { .remote_join = v1_join, .remote_tally = v1_tally };

/* v2 handlers, called by a v1 node: what v1 does not send arrives as
 * zero/empty (required) or NULL (optional). */
static void v2_join(ember_call *call, const char *name, uint32_t level, void *ud)
{
    (void)ud;
    X.id = level;
    ev2_Player p;
    ev2_Player_init(&p);
    p.id = 78;
    p.name = name;
    p.mood = ev2_Mood_sleepy;
    ev2_Lobby_join_reply(call, &p);
}

static void v2_tally(ember_call *call, const char *who, ev2_Mood mood, const uint32_t *limit,
                     const char *tag, const ev2_Item *extra, const ev2_list_u32 *xs,
                     const ev2_Item *hint, void *ud)
{
    (void)ud;
    X.mood = (int)mood;
    X.limit = limit != NULL;
    X.hint = hint != NULL;
    snprintf(X.tag, sizeof X.tag, "%s", tag ? tag : "(null)");
    X.zero_extra = extra && extra->id == 0 && extra->name && !extra->name[0] && extra->weight == 0;
    X.nxs = xs ? xs->n : 99;
    ev2_Tally t;
    ev2_Tally_init(&t);                 /* n left out: the v1 caller reads 0 */
    t.note = who;
    t.has_mood = true;
    t.mood = ev2_Mood_sleepy;
    ev2_Lobby_tally_reply(call, &t);
}

static void v2_poke(ember_call *call, uint32_t n, void *ud)
{
    (void)ud;
    ev2_Busy b;
    ev2_Busy_init(&b);
    b.retry = n;
    ev2_Lobby_poke_fail_Busy(call, &b);
}

static const ev2_Lobby_handlers v2_lobby = {
    .remote_join = v2_join, .remote_tally = v2_tally, .remote_poke = v2_poke,
};

static void on_state(ember_node *n, ember_node_state st, const char *reason, void *ud)
{
    (void)n;
    (void)reason;
    (void)ud;
    if (st == EMBER_NODE_REGISTERED)
        X.ready = 1;
}

static void joined(const ember_outcome *o, const ev2_Player *ret, void *ud)
{
    (void)ud;
    X.status = o->status;
    if (ret) {
        snprintf(X.name, sizeof X.name, "%s", ret->name);
        X.id = ret->id;
        X.guild = ret->guild != NULL;
    }
    X.done = 1;
}

static void joined_v1(const ember_outcome *o, const ev1_Player *ret, void *ud)
{
    (void)ud;
    X.status = o->status;
    if (ret) {
        snprintf(X.name, sizeof X.name, "%s", ret->name);
        X.mood = (int)ret->mood;
    }
    X.done = 1;
}

static void joined_msg(const ember_outcome *o, const ev2_Player *ret, void *ud)
{
    (void)ret;
    (void)ud;
    X.status = o->status;
    snprintf(X.note, sizeof X.note, "%s", o->message ? o->message : "");
    X.done = 1;
}

static void tallied_v1(const ember_outcome *o, const ev1_Tally *ret, void *ud)
{
    (void)ud;
    X.status = o->status;
    if (ret) {
        X.n = ret->n;
        snprintf(X.note, sizeof X.note, "%s", ret->note);
    }
    X.done = 1;
}

static void tallied_v2(const ember_outcome *o, const ev2_Tally *ret, void *ud)
{
    (void)ud;
    X.status = o->status;
    if (ret) {
        X.has_n = ret->has_n;
        X.n = ret->n;
        snprintf(X.note, sizeof X.note, "%s", ret->note);
    }
    X.done = 1;
}

static void poked(const ember_outcome *o, void *ud)
{
    (void)ud;
    X.status = o->status;
    snprintf(X.note, sizeof X.note, "%s", o->message ? o->message : "");
    X.guild = o->error != NULL;
    X.done = 1;
}

static void left(const ember_outcome *o, void *ud)
{
    (void)ud;
    X.status = o->status;
    X.done = 1;
}

static void silent_log(ember_log_level lv, const char *msg, void *ud)
{
    (void)lv;
    (void)ud;
    if (getenv("EMBER_LOG"))
        fprintf(stderr, "ember: %s\n", msg);
}

/* A root serving one version's Lobby and a node connected to it. Both
 * versions of a real schema have one module name, so one service id; here
 * the modules differ only to compile into one program, so the root serves
 * its descriptor under the id the caller's version uses. */
typedef struct pair {
    struct event_base *base;
    ember_root *root;
    ember_node *node;
    ember_service_desc desc;
} pair;

static void pair_open(pair *p, const ember_service_desc *served, uint32_t id, const void *handlers,
                      bool pb)
{
    ember_set_log(silent_log, NULL);
    memset(&X, 0, sizeof X);
    p->base = event_base_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(p->base);
    p->root = ember_root_new(p->base, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p->root);
    p->desc = *served;
    p->desc.id = id;
    CU_ASSERT_EQUAL_FATAL(ember_exports_add(ember_root_exports(p->root), &p->desc, handlers, NULL), 0);
    CU_ASSERT_EQUAL_FATAL((pb ? ember_root_listen_pb : ember_root_listen)(p->root, "127.0.0.1:0"), 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ember_root_port(p->root));

    ember_node_config nc;
    ember_node_config_default(&nc);
    nc.on_state = on_state;
    p->node = ember_node_new(p->base, "evolve-node", &nc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p->node);
    CU_ASSERT_EQUAL_FATAL((pb ? ember_node_connect_pb : ember_node_connect)(p->node, addr), 0);
    CU_ASSERT_FATAL(run_until(p->base, flag_set, &X.ready, 5000));
}

static void pair_close(pair *p)
{
    ember_node_free(p->node);
    ember_root_free(p->root);
    event_base_free(p->base);
}

/* ---- a new caller, an old server ---- */
static void test_old_root_new_node(void)
{
    pair p;
    pair_open(&p, &ev1_Lobby_service, ev2_Lobby_SERVICE_ID, &v1_lobby, false);
    ember_ref *root = ember_node_root(p.node);

    /* a v2 call with a parameter v1 does not know; a v1 result v2 extends */
    X.done = 0;
    ev2_Lobby_join(root, "percival", 9, joined, NULL, NULL);
    CU_ASSERT_FATAL(run_until(p.base, flag_set, &X.done, 5000));
    CU_ASSERT_EQUAL(X.status, EMBER_OK);
    CU_ASSERT_STRING_EQUAL(X.name, "percival");
    CU_ASSERT_EQUAL(X.id, 77);
    CU_ASSERT_FALSE(X.guild);

    /* new required and optional parameters are skipped; a Mood v1 has no
     * name for arrives as its number; a field v2 made optional arrives */
    static const uint32_t limit = 3, xs[] = { 1, 2 };
    ev2_Item extra, hint;
    ev2_Item_init(&extra);
    extra.id = 4;
    extra.name = "lance";
    hint = extra;
    const ev2_list_u32 list = { (uint32_t *)xs, 2 };
    X.done = 0;
    ev2_Lobby_tally(root, "gawain", ev2_Mood_sleepy, &limit, "t", &extra, &list, &hint,
                    tallied_v2, NULL, NULL);
    CU_ASSERT_FATAL(run_until(p.base, flag_set, &X.done, 5000));
    CU_ASSERT_EQUAL(X.status, EMBER_OK);
    CU_ASSERT_EQUAL(X.mood, 2);
    CU_ASSERT_TRUE(X.has_n);
    CU_ASSERT_EQUAL(X.n, 5);
    CU_ASSERT_STRING_EQUAL(X.note, "gawain");

    /* a method v1 does not have */
    X.done = 0;
    ev2_Lobby_leave(root, 77, left, NULL, NULL);
    CU_ASSERT_FATAL(run_until(p.base, flag_set, &X.done, 5000));
    CU_ASSERT_EQUAL(X.status, EMBER_NO_METHOD);
    pair_close(&p);
}

/* ---- an old caller, a new server ---- */
static void test_new_root_old_node(void)
{
    pair p;
    pair_open(&p, &ev2_Lobby_service, ev1_Lobby_SERVICE_ID, &v2_lobby, false);
    ember_ref *root = ember_node_root(p.node);

    /* v1 never sends `level`: the v2 handler gets 0; v2's result has
     * fields and a Mood v1 does not know */
    X.done = 0;
    X.id = 1234;
    ev1_Lobby_join(root, "galahad", joined_v1, NULL, NULL);
    CU_ASSERT_FATAL(run_until(p.base, flag_set, &X.done, 5000));
    CU_ASSERT_EQUAL(X.status, EMBER_OK);
    CU_ASSERT_EQUAL(X.id, 0);
    CU_ASSERT_STRING_EQUAL(X.name, "galahad");
    CU_ASSERT_EQUAL(X.mood, ev2_Mood_sleepy);

    /* missing required parameters are zero/empty (a string "", a struct
     * zeroed, a list empty), missing optional ones NULL; the field the
     * v2 server leaves out reads 0 in v1 */
    X.done = 0;
    X.n = 1234;
    ev1_Lobby_tally(root, "bors", ev1_Mood_angry, tallied_v1, NULL, NULL);
    CU_ASSERT_FATAL(run_until(p.base, flag_set, &X.done, 5000));
    CU_ASSERT_EQUAL(X.status, EMBER_OK);
    CU_ASSERT_EQUAL(X.mood, ev2_Mood_angry);
    CU_ASSERT_FALSE(X.limit);
    CU_ASSERT_FALSE(X.hint);
    CU_ASSERT_STRING_EQUAL(X.tag, "");
    CU_ASSERT_TRUE(X.zero_extra);
    CU_ASSERT_EQUAL(X.nxs, 0);
    CU_ASSERT_EQUAL(X.n, 0);
    CU_ASSERT_STRING_EQUAL(X.note, "bors");

    /* an error v1's void method does not declare: FAILED, as for any
     * other method, never RAISED with no error struct */
    X.done = 0;
    ev1_Lobby_poke(root, 3, poked, NULL, NULL);
    CU_ASSERT_FATAL(run_until(p.base, flag_set, &X.done, 5000));
    CU_ASSERT_EQUAL(X.status, EMBER_FAILED);
    CU_ASSERT_STRING_EQUAL(X.note, "the peer raised an undeclared error");
    CU_ASSERT_FALSE(X.guild);
    pair_close(&p);
}

/* ---- over Perspective Broker, where arguments are positional ---- */
static void test_pb(void)
{
    /* an old caller's call lacks the trailing arguments: zero/empty, NULL */
    pair p;
    pair_open(&p, &ev2_Lobby_service, ev1_Lobby_SERVICE_ID, &v2_lobby, true);
    X.done = 0;
    X.n = 1234;
    ev1_Lobby_tally(ember_node_root(p.node), "bors", ev1_Mood_angry, tallied_v1, NULL, NULL);
    CU_ASSERT_FATAL(run_until(p.base, flag_set, &X.done, 5000));
    CU_ASSERT_EQUAL(X.status, EMBER_OK);
    CU_ASSERT_FALSE(X.limit);
    CU_ASSERT_STRING_EQUAL(X.tag, "");
    CU_ASSERT_TRUE(X.zero_extra);
    CU_ASSERT_EQUAL(X.n, 0);
    pair_close(&p);

    /* a new caller's extra arguments are more than an old server takes: a
     * TypeError, as from a Python method (docs/idl.md, "Schema evolution") */
    pair_open(&p, &ev1_Lobby_service, ev2_Lobby_SERVICE_ID, &v1_lobby, true);
    X.done = 0;
    ev2_Lobby_join(ember_node_root(p.node), "percival", 9, joined_msg, NULL, NULL);
    CU_ASSERT_FATAL(run_until(p.base, flag_set, &X.done, 5000));
    CU_ASSERT_EQUAL(X.status, EMBER_FAILED);
    CU_ASSERT_PTR_NOT_NULL(strstr(X.note, "TypeError: join takes at most 1 argument (2 given)"));
    pair_close(&p);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    CU_pSuite s = CU_add_suite("gen-evolve", setup, teardown);
    CU_add_test(s, "v2 writes, v1 reads", test_new_writer_old_reader);
    CU_add_test(s, "v1 writes, v2 reads", test_old_writer_new_reader);
    CU_add_test(s, "service descriptors", test_services);
    CU_add_test(s, "v1 root serves a v2 node", test_old_root_new_node);
    CU_add_test(s, "v2 root serves a v1 node", test_new_root_old_node);
    CU_add_test(s, "over PB: trailing arguments", test_pb);
    return run_suites();
}
