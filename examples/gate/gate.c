/*
 * gate — where client commands enter the cluster (Firefly's gate pattern).
 * A node of the master and of db; the root of the game nodes and of net.
 *
 * net calls Gate.forward(command, session, data) for every client command.
 * The gate handles login and logout itself (with db) and routes every other
 * command, untyped, by id to a game.Game method of a game node: the node that holds
 * the player's room (a room stays on the node its players are on; a room
 * nobody is in is placed by room number); a node that left is skipped.
 * Game nodes push to players with Gate.push, which the gate hands to net.
 *
 *   gate [NAME] CONFIG.json
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "db.h"
#include "game.h"
#include "gate.h"
#include "net.h"
#include "server.h"

#define MAX_SESSIONS 4096

typedef struct sess_ctx sess_ctx;

typedef enum { LOGGING_IN, LOGGED_IN, LOGGING_OUT } sess_state;

typedef struct gsession {
    bool used;
    sess_state state;
    bool entering;        /* an ENTER to node is in flight */
    bool leaving;         /* the client's LEAVE to node is in flight */
    bool lost;            /* the room's node left: the next command gets 410 */
    sess_ctx *logout;     /* a logout waiting for that ENTER's reply, or NULL */
    uint64_t id;
    uint64_t player;
    char name[64];
    char node[64];        /* game node holding the player's room, or "" */
    uint32_t room;        /* set when the ENTER is sent */
} gsession;

typedef struct gatesrv {
    srv s;
    ember_ref *db;
    ember_arena *arena;   /* scratch for decoding client payloads */
    gsession sessions[MAX_SESSIONS];
    uint64_t full_refused;    /* logins refused at MAX_SESSIONS, not logged yet */
    uint64_t full_log_us;     /* when that was last logged */
} gatesrv;

static gsession *find(gatesrv *g, uint64_t id)
{
    for (int i = 0; i < MAX_SESSIONS; i++)
        if (g->sessions[i].used && g->sessions[i].id == id)
            return &g->sessions[i];
    return NULL;
}

/* The logged-in session; NULL after refusing call (if any) with 401. */
static gsession *session_of(gatesrv *g, ember_call *call, uint64_t session)
{
    gsession *s = find(g, session);
    if (s && s->state == LOGGED_IN)
        return s;
    if (call)
        srv_refuse(call, 401, "not logged in");
    return NULL;
}

/* True when c is a game node: an ember node that declared service, or a
 * Twisted one (a PB node declares no services: the config's app "pygame"
 * says what it is). */
static bool serves(gatesrv *g, ember_child *c, const char *service)
{
    if (ember_child_has_service(c, service))
        return true;
    const cfg_server *cs = cfg_find(&g->s.cfg, ember_child_name(c));
    return cs && strcmp(cs->app, "pygame") == 0;
}

/* A live child named name serving service, or NULL. */
static ember_child *live_node(gatesrv *g, const char *service, const char *name)
{
    ember_child *c = name[0] ? ember_root_child_by_name(g->s.root, name) : NULL;
    return c && serves(g, c, service) ? c : NULL;
}

/* The game node for a room, so all players of one room meet on one node:
 * the live node some session is in that room on (sticky: a room stays where
 * it is when nodes come and go), else the room number picks among the live
 * nodes serving the service. */
static ember_child *pick_node(gatesrv *g, const char *service, uint32_t room)
{
    for (int i = 0; room && i < MAX_SESSIONS; i++) {
        const gsession *s = &g->sessions[i];
        ember_child *c = s->used && s->room == room ? live_node(g, service, s->node) : NULL;
        if (c)
            return c;
    }
    ember_child *live[64];
    size_t n = 0;
    for (ember_child *c = ember_root_child_next(g->s.root, NULL); c && n < 64;
         c = ember_root_child_next(g->s.root, c))
        if (serves(g, c, service))
            live[n++] = c;
    return n ? live[room % n] : NULL;
}

/* A reply payload is the struct { 1: return value }: find the value. */
static ember_bytes unwrap(const void *payload, size_t len)
{
    ember_bytes b = {NULL, 0};
    ember_dec d;
    ember_dec_init(&d, payload, len, NULL);
    uint32_t tag;
    unsigned wt;
    while (ember_dec_field(&d, &tag, &wt) == 1) {
        if (tag == 1 && wt == EMBER_WT_LEN) {
            uint64_t n;
            if (ember_dec_raw_varint(&d, &n) || n > (uint64_t)(d.end - d.p))
                break;
            b.data = d.p;
            b.len = (size_t)n;
            break;
        }
        if (ember_dec_skip(&d, wt))
            break;
    }
    return b;
}

/* Passes a failed outcome on to the caller. An untyped call hands over a
 * raised error undecoded: decode the one we know, Refused. */
static void pass_failure(gatesrv *g, ember_call *call, const ember_outcome *o,
                         const void *payload, size_t len)
{
    if (o->status == EMBER_RAISED && o->error_id == client_Refused_ID) {
        client_Refused r;
        client_Refused_init(&r);
        const client_Refused *err = o->error;
        if (!err && payload) {
            ember_dec d;
            ember_dec_init(&d, payload, len, g->arena);
            if (client_Refused_decode(&d, &r) == 0)
                err = &r;
        }
        if (err) {
            srv_refuse(call, err->code, err->why);
            ember_arena_reset(g->arena);
            return;
        }
    }
    srv_refuse(call, 500 + (int32_t)o->status, o->message ? o->message : ember_status_name(o->status));
}

/* ---- routed commands --------------------------------------------------- */

static void finish_logout(gatesrv *g, sess_ctx *ctx);
static void leave_and_logout(gatesrv *g, gsession *s);
static void left_at(gatesrv *g, sess_ctx *ctx, const void *payload, size_t len);

typedef struct route_ctx {
    gatesrv *g;
    ember_call *call;     /* NULL for the gate's own leave at logout */
    uint64_t session;
    uint32_t command;
    uint32_t room;        /* ENTER: the room entered */
    sess_ctx *logout;     /* the logout waiting for this leave, or NULL */
} route_ctx;

static void routed_raw(const ember_outcome *o, const void *payload, size_t len, void *ud)
{
    route_ctx *ctx = ud;
    gsession *s = find(ctx->g, ctx->session);
    bool entered = s && ctx->command == client_ENTER && ctx->room;
    if (entered) {
        s->entering = false;
        if (o->status != EMBER_OK) {
            s->node[0] = 0;
            s->room = 0;
        }
    }
    if (s && ctx->command == client_LEAVE && ctx->call)
        s->leaving = false;
    if (s && ctx->command == client_LEAVE && o->status == EMBER_OK) {
        if (ctx->logout)
            left_at(ctx->g, ctx->logout, payload, len);
        s->room = 0;
        s->node[0] = 0;
    }
    if (ctx->call) {
        if (o->status == EMBER_OK)
            ember_call_reply_raw(ctx->call, payload, len);
        else if (o->status == EMBER_NO_METHOD)
            srv_refuse(ctx->call, 404, "no such command");
        else
            pass_failure(ctx->g, ctx->call, o, payload, len);
    }
    if (ctx->logout)
        finish_logout(ctx->g, ctx->logout);
    else if (entered && s->logout)   /* a logout waited for this enter */
        leave_and_logout(ctx->g, s);
    free(ctx);
}

/* A routed call ended: the reply (or raised error) payload as it came. */
static void routed(const ember_outcome *o, ember_dec *reply, ember_fn cb, void *ud)
{
    (void)cb;
    routed_raw(o, reply ? reply->p : NULL, reply ? (size_t)(reply->end - reply->p) : 0, ud);
}

/* Writes the encoded game.Routed (bytes) as the call's arguments. */
static void enc_routed(ember_enc *e, const void *v)
{
    const ember_bytes *b = v;
    if (ember_enc_reserve(e, b->len) == 0) {
        memcpy(e->p, b->data, b->len);
        e->p += b->len;
    }
}

/* The game node holding s's room, NULL when none (or it left). */
static ember_child *room_node(gatesrv *g, const gsession *s)
{
    return s->node[0] ? ember_root_child_by_name(g->s.root, s->node) : NULL;
}

/* Calls command on node as game.Routed (session s, client payload data);
 * routed() answers call (NULL: nobody to answer) and then goes on with the
 * logout (if any). -1 when nothing was sent (call, if any, answered). */
static int send_routed(gatesrv *g, ember_child *node, ember_call *call, gsession *s,
                       uint32_t command, ember_bytes data, uint32_t room, sess_ctx *logout)
{
    game_Routed r = {{s->id, s->player, s->name}, data};
    uint8_t buf[8192];
    ember_enc e;
    ember_enc_init_fixed(&e, buf, sizeof buf);
    game_Routed_encode(&e, &r);
    if (e.failed) {
        if (call)
            srv_refuse(call, 413, "request too large");
        return -1;
    }
    route_ctx *ctx = malloc(sizeof *ctx);
    if (!ctx) {
        if (call)
            ember_call_fail(call, "out of memory");
        return -1;
    }
    *ctx = (route_ctx){g, call, s->id, command, room, logout};
    /* Through game.Game's description, not untyped: a Twisted node (PB)
     * needs the method's run-time types; an ember node gets the same bytes. */
    ember_bytes args = {buf, ember_enc_len(&e)};
    ember_call_start(ember_child_ref(node), &game_Game_service, command, enc_routed, &args,
                     routed, NULL, ctx, NULL);
    return 0;
}

/* The node holding s's room left: the player is out of the room, which its
 * next command (but ENTER) is told with 410. */
static void lose_room(gsession *s)
{
    s->node[0] = 0;
    s->room = 0;
    s->lost = true;
}

/* True when command is a game.Game method (a Twisted node can only be
 * called through its description). */
static bool game_method(uint32_t command)
{
    for (uint32_t i = 0; i < game_Game_service.n_methods; i++)
        if (game_Game_service.methods[i].id == command)
            return true;
    return false;
}

/* A game.Game command's request, decoded. */
typedef union game_req {
    client_EnterReq enter;
    client_MoveReq move;
    client_ChatReq chat;
    client_LeaveReq leave;
} game_req;

/* Decodes data as the request struct of command into *req; true when it is
 * not one. The client's bytes become the game node's arguments as they
 * are, and arguments that do not decode make a node drop its link to the
 * gate (every player in its rooms would lose them): they are checked here. */
static bool bad_request(gatesrv *g, uint32_t command, ember_bytes data, game_req *req)
{
    memset(req, 0, sizeof *req);
    ember_dec d;
    ember_dec_init(&d, data.data, data.len, g->arena);
    int bad;
    switch (command) {
    case client_ENTER: bad = client_EnterReq_decode(&d, &req->enter); break;
    case client_MOVE: bad = client_MoveReq_decode(&d, &req->move); break;
    case client_CHAT: bad = client_ChatReq_decode(&d, &req->chat); break;
    case client_LEAVE: bad = client_LeaveReq_decode(&d, &req->leave); break;
    default: bad = 0; break;
    }
    ember_arena_reset(g->arena);
    return bad != 0;
}

/* Routes command (client payload data) for session s to its game node. */
static void route(gatesrv *g, ember_call *call, gsession *s, uint32_t command,
                  ember_bytes data)
{
    game_req req; /* only its numbers are read: its strings went with the arena */
    if (bad_request(g, command, data, &req)) {
        srv_refuse(call, 400, "bad request");
        return;
    }
    /* Commands are game.Game's method ids: a node that does not know one
     * answers NO_METHOD, which the client gets as 404 (routed). */
    const char *service = game_Game_service.name;
    ember_child *node = room_node(g, s);
    if (!node && s->node[0] && !s->entering)
        lose_room(s);   /* it left; child_left is yet to hear of it */
    if (s->lost) {
        s->lost = false;
        if (command != client_ENTER) {
            srv_refuse(call, 410, "the room's game node left");
            return;
        }
    }
    /* A second ENTER meanwhile would reach the node before the first
     * joined and put the player in its room there, wherever that room is;
     * one behind a LEAVE would go to the node being left, which would hold
     * the player in a room the gate no longer knows of (for good: no leave
     * ever reaches it). */
    if (command == client_ENTER && (s->entering || s->leaving)) {
        srv_refuse(call, 409, s->entering ? "already entering a room" : "leaving a room");
        return;
    }
    uint32_t room = 0;
    if (!node && command == client_ENTER) {
        node = pick_node(g, service, req.enter.room);
        room = req.enter.room;
    }
    if (!node)   /* not in a room: any node answers (and refuses) */
        node = pick_node(g, service, 0);
    if (!node) {
        srv_refuse(call, 503, "no game node serves this command");
        return;
    }
    if (!game_method(command)) {
        srv_refuse(call, 404, "no such command");
        return;
    }
    int sent = send_routed(g, node, call, s, command, data, room, NULL);
    if (sent == 0 && command == client_LEAVE)
        s->leaving = true;
    if (sent == 0 && room) {
        /* The room is the player's from now on: a logout meanwhile leaves
         * it, once the enter is answered (the node may still be joining). */
        snprintf(s->node, sizeof s->node, "%s", ember_child_name(node));
        s->room = room;
        s->entering = true;
    }
}

/* ---- login ------------------------------------------------------------- */

/* A login or logout waiting for db (call is NULL when a client that went
 * away is logged out). */
struct sess_ctx {
    gatesrv *g;
    ember_call *call;
    uint64_t session;
    bool has_pos;         /* logout: pos is from the game node's leave reply */
    client_Pos pos;
};

static sess_ctx *sess_ctx_new(gatesrv *g, ember_call *call, uint64_t session)
{
    sess_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        fprintf(stderr, "[gate] out of memory\n");
        abort();
    }
    ctx->g = g;
    ctx->call = call;
    ctx->session = session;
    return ctx;
}

static void reply_body(ember_call *call, void (*enc)(ember_enc *, const void *), const void *v)
{
    uint8_t buf[4096];
    ember_enc e;
    ember_enc_init_fixed(&e, buf, sizeof buf);
    enc(&e, v);
    ember_bytes b = {buf, ember_enc_len(&e)};
    gate_Gate_forward_reply(call, b);
}

static void enc_login_rep(ember_enc *e, const void *v) { client_LoginRep_encode(e, v); }
static void enc_logout_rep(ember_enc *e, const void *v) { client_LogoutRep_encode(e, v); }

static void logged_out(const ember_outcome *o, const client_Pos *pos, void *ud);

static void logged_in(const ember_outcome *o, const db_Player *p, void *ud)
{
    sess_ctx *ctx = ud;
    gatesrv *g = ctx->g;
    gsession *s = find(g, ctx->session);
    if (o->status != EMBER_OK) {
        if (s)
            s->used = false;
        pass_failure(g, ctx->call, o, NULL, 0);
        free(ctx);
        return;
    }
    if (!s) {
        /* The client went away meanwhile: the login is over already. */
        srv_refuse(ctx->call, 401, "the client went away");
        ctx->call = NULL;
        db_Db_logout(g->db, p->id, NULL, logged_out, ctx, NULL);
        return;
    }
    s->state = LOGGED_IN;
    s->player = p->id;
    client_LoginRep rep = {p->id, p->name, p->pos, p->created, p->logins};
    reply_body(ctx->call, enc_login_rep, &rep);
    free(ctx);
}

/* Why a player may not have this name, or NULL. The gate and the game
 * nodes keep a name in 64 bytes: a longer one would be cut, even inside a
 * UTF-8 sequence, and then not encode in any routed command. Every player
 * of a room gets the names in it (RoomState, ChatMsg): none may hold a
 * control character that forges, hides or reorders text on their
 * screens, the rules of node names (ember_name_check). */
static const char *bad_name(const char *name)
{
    size_t len = strlen(name);
    if (len == 0)
        return "empty player name";
    if (len >= sizeof ((gsession *)NULL)->name)
        return "player name too long (at most 63 bytes)";
    if (ember_name_check(name, len))
        return "player name with a control character";
    return NULL;
}

static void login(gatesrv *g, ember_call *call, uint64_t session, ember_bytes data)
{
    client_LoginReq req;
    memset(&req, 0, sizeof req);
    ember_dec d;
    ember_dec_init(&d, data.data, data.len, g->arena);
    if (client_LoginReq_decode(&d, &req) || !req.name || !*req.name) {
        ember_arena_reset(g->arena);
        srv_refuse(call, 400, "bad login request");
        return;
    }
    const char *why = bad_name(req.name);
    if (why) {
        ember_arena_reset(g->arena);
        srv_refuse(call, 400, why);
        return;
    }
    gsession *s = find(g, session);
    if (s) {
        ember_arena_reset(g->arena);
        srv_refuse(call, 409, s->state == LOGGING_IN ? "already logging in" : "already logged in");
        return;
    }
    /* One session per player (a second would move the same player in
     * rooms of its own, each saving its position over the other's): a
     * name in use on another connection, logging in or out included, is
     * refused here, before db counts a login for it. db finds players by
     * their exact name, so a name is a player. */
    for (int i = 0; i < MAX_SESSIONS; i++) {
        const gsession *o = &g->sessions[i];
        if (o->used && strcmp(o->name, req.name) == 0) {
            ember_arena_reset(g->arena);
            srv_refuse(call, 409, o->state == LOGGING_IN
                                      ? "already logging in on another connection"
                                      : "already logged in on another connection");
            return;
        }
    }
    for (int i = 0; !s && i < MAX_SESSIONS; i++)
        if (!g->sessions[i].used)
            s = &g->sessions[i];
    if (!s) {
        ember_arena_reset(g->arena);
        srv_refuse(call, 503, "too many sessions");
        /* Logged at most once a second, with how many. */
        g->full_refused++;
        uint64_t now = now_us();
        if (now - g->full_log_us >= 1000000) {
            srv_log(&g->s, "refused %llu login(s): %d sessions, the most the gate holds",
                    (unsigned long long)g->full_refused, MAX_SESSIONS);
            g->full_refused = 0;
            g->full_log_us = now;
        }
        return;
    }
    /* The session exists from now on, so a close meanwhile finds it. */
    memset(s, 0, sizeof *s);
    s->used = true;
    s->id = session;
    s->state = LOGGING_IN;
    snprintf(s->name, sizeof s->name, "%s", req.name);
    db_Db_login(g->db, req.name, logged_in, sess_ctx_new(g, call, session), NULL);
    ember_arena_reset(g->arena);
}

/* ---- logout: leave the room, save, forget the session ----------------- */

/* The logout's leave succeeded: the game node saved the position it
 * replies with, which the logout may then record too. */
static void left_at(gatesrv *g, sess_ctx *ctx, const void *payload, size_t len)
{
    client_LeaveRep rep;
    memset(&rep, 0, sizeof rep);
    ember_bytes body = unwrap(payload, len);
    ember_dec d;
    ember_dec_init(&d, body.data, body.len, g->arena);
    if (client_LeaveRep_decode(&d, &rep) == 0) {
        ctx->has_pos = true;
        ctx->pos = rep.pos;
    }
    ember_arena_reset(g->arena);
}

static void logged_out(const ember_outcome *o, const client_Pos *pos, void *ud)
{
    sess_ctx *ctx = ud;
    if (ctx->call) {
        if (o->status == EMBER_OK) {
            client_LogoutRep rep = {*pos};
            reply_body(ctx->call, enc_logout_rep, &rep);
        } else {
            pass_failure(ctx->g, ctx->call, o, NULL, 0);
        }
    }
    free(ctx);
}

static void finish_logout(gatesrv *g, sess_ctx *ctx)
{
    gsession *s = find(g, ctx->session);
    if (!s) {
        if (ctx->call)
            srv_refuse(ctx->call, 401, "not logged in");
        free(ctx);
        return;
    }
    /* Without a position from a leave the one db has stands: the game node
     * saved every move there, and the gate's guess could be older. */
    s->used = false;
    db_Db_logout(g->db, s->player, ctx->has_pos ? &ctx->pos : NULL, logged_out, ctx, NULL);
}

/* Leaves s's room, if any (the game node saves the position), then goes
 * on with the logout waiting in s->logout. */
static void leave_and_logout(gatesrv *g, gsession *s)
{
    sess_ctx *ctx = s->logout;
    s->logout = NULL;
    ember_child *node = room_node(g, s);
    static const uint8_t empty[1];
    ember_bytes none = {empty, 0};
    if (!node || !s->room ||
        send_routed(g, node, NULL, s, client_LEAVE, none, 0, ctx))
        finish_logout(g, ctx);
}

/* LOGOUT (call) or the client went away (call NULL). */
static void logout(gatesrv *g, ember_call *call, uint64_t session)
{
    gsession *s = find(g, session);
    if (s && !call && s->state == LOGGING_IN) {
        srv_log(&g->s, "session %llu went away during its login: logged out once db answers",
                (unsigned long long)session);
        s->used = false;   /* logged_in finds it gone */
        return;
    }
    s = session_of(g, call, session);
    if (!s)
        return;
    s->state = LOGGING_OUT;
    s->logout = sess_ctx_new(g, call, session);
    /* An enter in flight may still be joining the room: leave after it. */
    if (s->entering)
        srv_log(&g->s, "session %llu logs out while entering room %u on %s: leaves it once "
                "the enter is answered", (unsigned long long)session, s->room, s->node);
    else
        leave_and_logout(g, s);
}

/* ---- Gate service ----------------------------------------------------- */

static void remote_forward(ember_call *call, uint32_t command, uint64_t session,
                           ember_bytes data, void *ud)
{
    gatesrv *g = ud;
    if (command == client_LOGIN) {
        login(g, call, session, data);
        return;
    }
    if (command == client_LOGOUT) {
        logout(g, call, session);
        return;
    }
    gsession *s = session_of(g, call, session);
    if (!s)
        return;
    route(g, call, s, command, data);
}

static void remote_closed(ember_call *call, uint64_t session, void *ud)
{
    (void)call;
    logout(ud, NULL, session);
}

static void remote_push(ember_call *call, const gate_list_u64 *sessions, uint32_t command,
                        ember_bytes data, void *ud)
{
    gatesrv *g = ud;
    (void)call;
    net_list_u64 to = {sessions->items, sessions->n};
    for (ember_child *c = ember_root_child_next(g->s.root, NULL); c;
         c = ember_root_child_next(g->s.root, c))
        if (ember_child_has_service(c, net_Net_service.name))
            net_Net_push(ember_child_ref(c), &to, command, data);
}

static const gate_Gate_handlers handlers = {
    .remote_forward = remote_forward,
    .remote_closed = remote_closed,
    .remote_push = remote_push,
};

/* A game node left: its players are out of their rooms (an enter in flight
 * fails on its own, and its client hears of that). */
static void child_left(srv *s, ember_child *c, const char *reason)
{
    gatesrv *g = (gatesrv *)s;
    (void)reason;
    for (int i = 0; i < MAX_SESSIONS; i++) {
        gsession *gs = &g->sessions[i];
        if (gs->used && !gs->entering && strcmp(gs->node, ember_child_name(c)) == 0)
            lose_room(gs);
    }
}

int main(int argc, char **argv)
{
    static gatesrv g;
    if (srv_init(&g.s, "gate", argc, argv))
        return 1;
    ember_node *db = srv_need(&g.s, "db");
    if (!db)
        return 1;
    g.db = ember_node_root(db);
    g.arena = ember_arena_new();
    g.s.on_leave = child_left;
    ember_root *root = srv_root(&g.s);
    if (!root || !g.arena || gate_Gate_export(ember_root_exports(root), &handlers, &g)) {
        srv_log(&g.s, "setup: %s", ember_last_error());
        return 1;
    }
    int rc = srv_run(&g.s);
    ember_arena_free(g.arena);
    return rc;
}
