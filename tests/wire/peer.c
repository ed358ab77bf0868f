/*
 * peer.c — a real ember root or node for tests/wire/test_wire.py, which
 * speaks ember's wire protocol from docs/protocol.md alone (no libember).
 * It serves and calls the example cluster's services (idl/db.idl,
 * idl/game.idl through generated/) and shapes.Store / shapes.Watcher
 * (tests/idl/shapes.idl) for refs, containers and scalars.
 *
 *   peer root [secret]            listens on 127.0.0.1:0, prints "port N"
 *   peer node ADDR NAME [secret]  registers with ADDR
 *
 * Every event is one line on stdout, which the Python side reads.
 * EMBER_WIRE_HB=1 sets heartbeat_ms / dead_after_ms to 300 / 900,
 * EMBER_WIRE_OUT=N out_high_water to N bytes, EMBER_WIRE_HS=N handshake_ms
 * to N ms.
 */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <event2/event.h>
#include <ember/ember.h>
#include "db.h"
#include "game.h"
#include "shapes.h"

#define P(...)                                                                 \
    do {                                                                       \
        printf(__VA_ARGS__);                                                   \
        printf("\n");                                                          \
        fflush(stdout);                                                        \
    } while (0)

static ember_call *held; /* a deferred call (save) */

static void db_login(ember_call *call, const char *name, void *ud)
{
    (void)ud;
    client_Pos pos = { 3, -4 };
    db_Player p = {
        .id = 42, .name = name, .pos = pos, .logins = 7, .created = true
    };
    P("serve login %s", name);
    db_Db_login_reply(call, &p);
}

static void db_position(ember_call *call, uint64_t player, void *ud)
{
    (void)ud;
    P("serve position %llu", (unsigned long long)player);
    switch (player) {
    case 1:
        ember_call_fail(call, "boom %d", 1);
        return;
    case 2:
        ember_call_fail_status(call, EMBER_UNAVAILABLE, "unavail");
        return;
    case 3:
        ember_call_fail_status(call, EMBER_NO_METHOD, "nomethod");
        return;
    case 4:
        ember_call_fail_status(call, EMBER_LIMIT, "limit");
        return;
    default:
        break;
    }
    client_Pos pos = { (int32_t)player, -(int32_t)player };
    db_Db_position_reply(call, &pos);
}

static void db_save(ember_call *call, uint64_t player, const client_Pos *pos,
                    void *ud)
{
    (void)ud;
    P("serve save %llu %d %d", (unsigned long long)player, pos->x, pos->y);
    if (player == 99) {
        held = call;
        return;
    } /* never answered until poked */
    db_Db_save_reply(call);
}

static void db_logout(ember_call *call, uint64_t player, const client_Pos *pos,
                      void *ud)
{
    (void)ud;
    P("serve logout %llu %s", (unsigned long long)player,
      pos ? "pos" : "nopos");
    if (held) {
        P("held cancelled=%d", ember_call_cancelled(held));
        db_Db_save_reply(held);
        held = NULL;
    }
    client_Pos r = pos ? *pos : (client_Pos){ -1, -1 };
    db_Db_logout_reply(call, &r);
}

static const db_Db_handlers dbh = { db_login, db_position, db_save, db_logout };

static void game_enter(ember_call *call, const game_Who *who,
                       const client_EnterReq *req, void *ud)
{
    (void)ud;
    P("serve enter %llu %s room %u", (unsigned long long)who->session,
      who->name, req->room);
    if (req->room == 0) {
        client_Refused r = { .code = -5, .why = "no room 0" };
        game_Game_enter_fail_client_Refused(call, &r);
        return;
    }
    const char *pl[] = { who->name, "bob" };
    client_RoomState st = { .room = req->room,
                            .pos = { 1, 2 },
                            .players = { pl, 2 },
                            .node = "c-peer" };
    game_Game_enter_reply(call, &st);
}

static const game_Game_handlers gameh = { .remote_enter = game_enter };

/* shapes.Store.watch: calls the Watcher back, then replies */
static void pinged(const ember_outcome *o, const uint32_t *ret, void *ud)
{
    ember_call *call = ud;
    P("ping outcome %s %u %s", ember_status_name(o->status), ret ? *ret : 0,
      o->message ? o->message : "");
    shapes_Store_watch_reply(call);
}

static void store_watch(ember_call *call, ember_ref *who, void *ud)
{
    (void)ud;
    P("serve watch %s", who ? "ref" : "null");
    if (!who) {
        shapes_Store_watch_reply(call);
        return;
    }
    shapes_Watcher_progress(who, 1, 2);
    shapes_Watcher_ping(who, "hi", pinged, call, NULL);
}

static void store_echo(ember_call *call, const shapes_Containers *c, void *ud)
{
    (void)ud;
    P("serve echo nums=%u grid=%u names=%u floats=%u flags=%u by_name=%u",
      c->nums.n, c->grid.n, c->names.n, c->floats.n, c->flags.n, c->by_name.n);
    shapes_Store_echo_reply(call, c);
}

static void store_put(ember_call *call, const char *key,
                      const shapes_Scalars *v, void *ud)
{
    (void)ud;
    P("serve put %s b=%d i8=%d i16=%d i32=%d i64=%lld u8=%u u16=%u u32=%u "
      "u64=%llu f32=%g f64=%g s=%s raw=%zu temp=%d color=%d",
      key, v->b, v->i8v, v->i16v, v->i32v, (long long)v->i64v, v->u8v, v->u16v,
      v->u32v, (unsigned long long)v->u64v, (double)v->f32v, v->f64v, v->s,
      v->raw.len, (int)v->temp, (int)v->color);
    shapes_Store_put_reply(call);
}

/* shapes.Store.grow: the seed comes back as it was */
static int tree_depth(const shapes_Tree *t)
{
    int d = 0;
    while (t) {
        d++;
        t = t->left;
    }
    return d;
}

static void store_grow(ember_call *call, const shapes_Tree *seed,
                       uint32_t depth, void *ud)
{
    (void)ud;
    P("serve grow depth %d (%u)", tree_depth(seed), depth);
    shapes_Store_grow_reply(call, seed);
}

static void store_count(ember_call *call, void *ud)
{
    (void)ud;
    shapes_Store_count_reply(call, 0);
}

static void store_opt(ember_call *call, const shapes_Optionals *o,
                      const shapes_list_ref_Watcher *many, void *ud)
{
    (void)ud;
    P("serve opt has_b=%d has_i=%d has_s=%d inner=%p nums=%d many=%u", o->has_b,
      o->has_i, o->has_s, (const void *)o->inner, o->has_nums, many->n);
    shapes_Store_opt_reply(call, o);
}

static const shapes_Store_handlers storeh = { .remote_watch = store_watch,
                                              .remote_echo = store_echo,
                                              .remote_put = store_put,
                                              .remote_grow = store_grow,
                                              .remote_count = store_count,
                                              .remote_opt = store_opt };

/* root side: calls to the child */
static void entered(const ember_outcome *o, const client_RoomState *ret,
                    void *ud)
{
    (void)ud;
    if (o->status == EMBER_OK)
        P("enter ok room %u pos %d,%d n=%u %s %s node %s", ret->room,
          ret->pos.x, ret->pos.y, ret->players.n,
          ret->players.n ? ret->players.items[0] : "",
          ret->players.n > 1 ? ret->players.items[1] : "", ret->node);
    else if (o->status == EMBER_RAISED)
        P("enter raised %08x code %d why %s", o->error_id,
          ((const client_Refused *)o->error)->code,
          ((const client_Refused *)o->error)->why);
    else
        P("enter %s %s", ember_status_name(o->status), o->message);
}

static void moved(const ember_outcome *o, const client_Pos *ret, void *ud)
{
    unsigned k = (unsigned)(uintptr_t)ud;
    if (o->status == EMBER_OK)
        P("move %u ok %d %d", k, ret->x, ret->y);
    else
        P("move %u %s err %08x %s", k, ember_status_name(o->status),
          o->error_id, o->message);
}

static void on_join(ember_root *r, ember_child *c, void *ud)
{
    (void)r;
    (void)ud;
    P("join %s id %u", ember_child_name(c), ember_child_id(c));
    if (strncmp(ember_child_name(c), "py-calls", 8) != 0)
        return;
    game_Who who = { .session = 5, .player = 6, .name = "ann" };
    client_EnterReq req = { .room = 9 };
    game_Game_enter(ember_child_ref(c), &who, &req, entered, NULL, NULL);
    req.room = 0;
    game_Game_enter(ember_child_ref(c), &who, &req, entered, NULL, NULL);
    client_MoveReq mr = { .dir = client_Dir_west };
    ember_callopts o = { .timeout_ms = 500 };
    who.player = 0;
    game_Game_move(ember_child_ref(c), &who, &mr, moved, (void *)(uintptr_t)0,
                   &o); /* stalled: TIMEOUT+CANCEL */
    for (uint64_t code = 1; code <= 13; code++) {
        who.player = code;
        game_Game_move(ember_child_ref(c), &who, &mr, moved,
                       (void *)(uintptr_t)code, NULL);
    }
}

static void on_leave(ember_root *r, ember_child *c, const char *why, void *ud)
{
    (void)r;
    (void)ud;
    P("leave %s %s", ember_child_name(c), why);
}

/* The limits the environment asks for (see the top). */
static void env_limits(ember_limits *l)
{
    if (getenv("EMBER_WIRE_HB")) {
        l->heartbeat_ms = 300;
        l->dead_after_ms = 900;
    }
    if (getenv("EMBER_WIRE_OUT"))
        l->out_high_water = (size_t)strtoull(getenv("EMBER_WIRE_OUT"), NULL, 10);
    if (getenv("EMBER_WIRE_HS"))
        l->handshake_ms = (uint32_t)strtoul(getenv("EMBER_WIRE_HS"), NULL, 10);
}

/* node side */
static void logged(const ember_outcome *o, const db_Player *p, void *ud)
{
    (void)ud;
    if (o->status == EMBER_OK)
        P("login ok %llu %s %d,%d %u %d", (unsigned long long)p->id, p->name,
          p->pos.x, p->pos.y, p->logins, p->created);
    else
        P("login %s %s", ember_status_name(o->status), o->message);
}

static void loggedout(const ember_outcome *o, const client_Pos *p, void *ud)
{
    (void)ud;
    if (o->status == EMBER_OK)
        P("logout ok %d %d", p->x, p->y);
    else
        P("logout %s %s", ember_status_name(o->status), o->message);
}

static void on_state(ember_node *n, ember_node_state st, const char *why,
                     void *ud)
{
    (void)ud;
    P("state %s %s", ember_node_state_name(st), why ? why : "");
    if (st == EMBER_NODE_REGISTERED) {
        P("registered id %u", ember_node_id(n));
        db_Db_login(ember_node_root(n), "zoë", logged, NULL, NULL);
        client_Pos pos = { -7, 8 };
        db_Db_logout(ember_node_root(n), 11, &pos, loggedout, NULL, NULL);
        db_Db_logout(ember_node_root(n), 12, NULL, loggedout, NULL, NULL);
    }
}

int main(int argc, char **argv)
{
    struct event_base *base = event_base_new();
    if (argc >= 2 && strcmp(argv[1], "root") == 0) {
        ember_root_config rc;
        ember_root_config_default(&rc);
        rc.on_join = on_join;
        rc.on_leave = on_leave;
        if (argc > 2)
            rc.secret = argv[2];
        env_limits(&rc.limits);
        ember_root *root = ember_root_new(base, &rc);
        db_Db_export(ember_root_exports(root), &dbh, NULL);
        game_Game_export(ember_root_exports(root), &gameh, NULL);
        shapes_Store_export(ember_root_exports(root), &storeh, NULL);
        if (ember_root_listen(root, "127.0.0.1:0") < 0) {
            P("listen %s", ember_last_error());
            return 1;
        }
        P("port %d", ember_root_port(root));
    } else if (argc >= 4) {
        ember_node_config nc;
        ember_node_config_default(&nc);
        nc.on_state = on_state;
        nc.backoff_min_ms = 200;
        if (argc > 4)
            nc.secret = argv[4];
        env_limits(&nc.limits);
        ember_node *node = ember_node_new(base, argv[3], &nc);
        game_Game_export(ember_node_exports(node), &gameh, NULL);
        ember_node_connect(node, argv[2]);
    } else
        return 2;
    event_base_dispatch(base);
    return 0;
}
