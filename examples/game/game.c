/*
 * game — a game logic node: rooms, enter, move, chat, leave (idl/game.idl).
 * A node of the gate (which routes client commands here by id) and of db
 * (positions). Chat goes to every player in the room as a push through the
 * gate, which hands it to net.
 *
 *   game [NAME] CONFIG.json
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "db.h"
#include "game.h"
#include "gate.h"
#include "server.h"

#define MAX_PLAYERS 4096

typedef struct player {
    bool used;
    uint64_t session;
    uint64_t id;
    char name[64];
    uint32_t room;
    client_Pos pos;
} player;

typedef struct gamesrv {
    srv s;
    ember_node *gate_link;
    uint64_t epoch;    /* links to the gate lost so far */
    ember_ref *gate;   /* the gate's services (push) */
    ember_ref *db;     /* db's services */
    player players[MAX_PLAYERS];
} gamesrv;

static player *find(gamesrv *g, uint64_t session)
{
    for (int i = 0; i < MAX_PLAYERS; i++)
        if (g->players[i].used && g->players[i].session == session)
            return &g->players[i];
    return NULL;
}

static player *slot(gamesrv *g)
{
    for (int i = 0; i < MAX_PLAYERS; i++)
        if (!g->players[i].used)
            return &g->players[i];
    return NULL;
}

/* The player of who, in a room; NULL after refusing call with 404. */
static player *in_room(gamesrv *g, ember_call *call, const game_Who *who)
{
    player *p = find(g, who->session);
    if (p && p->room)
        return p;
    srv_refuse(call, 404, "not in a room");
    return NULL;
}

/* A db call failed: 503 with its message. */
static void refuse_db(ember_call *call, const ember_outcome *o, const char *dflt)
{
    srv_refuse(call, 503, o->message ? o->message : dflt);
}

static const char **room_names(gamesrv *g, ember_call *call, uint32_t room, uint32_t *n)
{
    *n = 0;
    for (int i = 0; i < MAX_PLAYERS; i++)
        if (g->players[i].used && g->players[i].room == room)
            (*n)++;
    const char **names = ember_call_alloc(call, (*n + 1) * sizeof *names);
    uint32_t k = 0;
    for (int i = 0; names && i < MAX_PLAYERS && k < *n; i++)
        if (g->players[i].used && g->players[i].room == room)
            names[k++] = g->players[i].name;
    *n = names ? k : 0;
    return names;
}

/* ---- enter: load the position from db, then join the room ------------- */

typedef struct enter_ctx {
    gamesrv *g;
    ember_call *call;
    uint64_t session, id;
    char name[64];
    uint32_t room;
    uint64_t epoch;    /* g->epoch when the enter came */
} enter_ctx;

static void entered(const ember_outcome *o, const client_Pos *pos, void *ud)
{
    enter_ctx *ctx = ud;
    gamesrv *g = ctx->g;
    if (o->status != EMBER_OK) {
        refuse_db(ctx->call, o, "db unavailable");
        free(ctx);
        return;
    }
    if (ctx->epoch != g->epoch) {
        /* The gate that asked is gone: it has put the player out of the room. */
        ember_call_fail(ctx->call, "the link to the gate was lost");
        free(ctx);
        return;
    }
    player *p = find(g, ctx->session);
    if (!p)
        p = slot(g);
    if (!p) {
        srv_refuse(ctx->call, 503, "server full");
        free(ctx);
        return;
    }
    p->used = true;
    p->session = ctx->session;
    p->id = ctx->id;
    snprintf(p->name, sizeof p->name, "%s", ctx->name);
    p->room = ctx->room;
    p->pos = *pos;
    client_RoomState st;
    memset(&st, 0, sizeof st);
    st.room = ctx->room;
    st.pos = p->pos;
    st.players.items = room_names(g, ctx->call, ctx->room, &st.players.n);
    st.node = g->s.me->name;
    game_Game_enter_reply(ctx->call, &st);
    free(ctx);
}

static void remote_enter(ember_call *call, const game_Who *who, const client_EnterReq *req, void *ud)
{
    gamesrv *g = ud;
    if (req->room == 0) {
        srv_refuse(call, 400, "no room 0");
        return;
    }
    player *p = find(g, who->session);
    if (p && p->room) {
        srv_refuse(call, 409, "already in a room");
        return;
    }
    enter_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        ember_call_fail(call, "out of memory");
        return;
    }
    ctx->g = g;
    ctx->call = call;
    ctx->session = who->session;
    ctx->id = who->player;
    snprintf(ctx->name, sizeof ctx->name, "%s", who->name);
    ctx->room = req->room;
    ctx->epoch = g->epoch;
    db_Db_position(g->db, who->player, entered, ctx, NULL);
}

/* ---- move and leave: save the position in db, then reply -------------- */

typedef struct save_ctx {
    ember_call *call;
    bool leaving;          /* leave (reply rep), else move (reply rep.pos) */
    client_LeaveRep rep;
} save_ctx;

static void saved(const ember_outcome *o, void *ud)
{
    save_ctx *ctx = ud;
    if (o->status != EMBER_OK)
        refuse_db(ctx->call, o, "not saved");
    else if (ctx->leaving)
        game_Game_leave_reply(ctx->call, &ctx->rep);
    else
        game_Game_move_reply(ctx->call, &ctx->rep.pos);
    free(ctx);
}

/* Saves p's position; the reply follows (saved). -1: call failed. */
static int save(gamesrv *g, ember_call *call, const player *p, bool leaving)
{
    save_ctx *ctx = malloc(sizeof *ctx);
    if (!ctx) {
        ember_call_fail(call, "out of memory");
        return -1;
    }
    ctx->call = call;
    ctx->leaving = leaving;
    ctx->rep.room = p->room;
    ctx->rep.pos = p->pos;
    db_Db_save(g->db, p->id, &ctx->rep.pos, saved, ctx, NULL);
    return 0;
}

static void remote_move(ember_call *call, const game_Who *who, const client_MoveReq *req, void *ud)
{
    gamesrv *g = ud;
    player *p = in_room(g, call, who);
    if (!p)
        return;
    switch (req->dir) {
    case client_Dir_north: p->pos.y++; break;
    case client_Dir_south: p->pos.y--; break;
    case client_Dir_east: p->pos.x++; break;
    case client_Dir_west: p->pos.x--; break;
    default:
        srv_refuse(call, 400, "no such direction");
        return;
    }
    (void)save(g, call, p, false);
}

/* ---- chat: push to everyone in the room ------------------------------- */

static void remote_chat(ember_call *call, const game_Who *who, const client_ChatReq *req, void *ud)
{
    gamesrv *g = ud;
    player *me = in_room(g, call, who);
    if (!me)
        return;
    uint64_t *sessions = ember_call_alloc(call, MAX_PLAYERS * sizeof *sessions);
    uint32_t n = 0;
    for (int i = 0; sessions && i < MAX_PLAYERS; i++)
        if (g->players[i].used && g->players[i].room == me->room)
            sessions[n++] = g->players[i].session;
    client_ChatMsg msg = {me->room, me->name, req->text ? req->text : ""};
    uint8_t buf[4096];
    ember_enc e;
    ember_enc_init_fixed(&e, buf, sizeof buf);
    client_ChatMsg_encode(&e, &msg);
    if (e.failed) {
        srv_refuse(call, 413, "message too long");
        return;
    }
    gate_list_u64 to = {sessions, n};
    ember_bytes data = {buf, ember_enc_len(&e)};
    if (gate_Gate_push(g->gate, &to, client_PUSH_CHAT, data)) {
        srv_refuse(call, 503, "cannot push");
        return;
    }
    client_ChatRep rep = {n};
    game_Game_chat_reply(call, &rep);
}

/* ---- leave: save the position, forget the player ---------------------- */

static void remote_leave(ember_call *call, const game_Who *who, const client_LeaveReq *req, void *ud)
{
    gamesrv *g = ud;
    (void)req;
    player *p = in_room(g, call, who);
    if (!p)
        return;
    if (save(g, call, p, true) == 0)
        p->used = false;
}

/* The link to the gate was lost: the gate takes every player of this node
 * out of its room (docs/cluster.md), so the node forgets them too; when the
 * link comes back, their next ENTER starts afresh. */
static void link_changed(srv *s, ember_node *n, ember_node_state st)
{
    gamesrv *g = (gamesrv *)s;
    if (n != g->gate_link || st != EMBER_NODE_LOST)
        return;
    int n_players = 0;
    for (int i = 0; i < MAX_PLAYERS; i++) {
        n_players += g->players[i].used;
        g->players[i].used = false;
    }
    g->epoch++;
    if (n_players)
        srv_log(s, "link to the gate lost: %d player(s) out of their rooms", n_players);
}

static const game_Game_handlers handlers = {
    .remote_enter = remote_enter,
    .remote_move = remote_move,
    .remote_chat = remote_chat,
    .remote_leave = remote_leave,
};

int main(int argc, char **argv)
{
    static gamesrv g;
    if (srv_init(&g.s, "game", argc, argv))
        return 1;
    ember_node *gate = srv_need(&g.s, "gate");
    ember_node *db = srv_need(&g.s, "db");
    if (!gate || !db)
        return 1;
    if (game_Game_export(ember_node_exports(gate), &handlers, &g)) {
        srv_log(&g.s, "export: %s", ember_last_error());
        return 1;
    }
    g.gate_link = gate;
    g.s.on_link = link_changed;
    g.gate = ember_node_root(gate);
    g.db = ember_node_root(db);
    return srv_run(&g.s);
}
