/*
 * bot — game clients for the example cluster. N bots connect to net, each
 * runs the script login, enter a room, move, chat, leave, logout, and checks
 * every reply (and that its own chat comes back as a push). Prints the first
 * bot's transcript in full, one line per other bot, and the latency of each
 * command; exits non-zero if any check failed.
 *
 *   bot [-n BOTS] [-r ROOMS] [-m MOVES] [-c CHATS] [-p NAME_PREFIX] [-t TIMEOUT_S]
 *       [-P] [-X] [-L | -E | -F | -S | -I | -D | -K PINGS] [-G NODE] [-R FILE]
 *       [-B SECS [-W WARMUP_S]] HOST:PORT
 *
 * Before entering its room each bot also sends a move, which the game node
 * must refuse (typed error client.Refused, code 404) — unless -P. With -X
 * each bot sends a frame too long after its login instead, which net must
 * answer by closing the connection. With -L (-E) each bot hangs up right
 * after sending its login (its enter), without waiting for the reply.
 * With -G NODE the bots pause in their rooms until SIGUSR1 (the caller
 * kills NODE meanwhile); then the next command of each bot whose room was
 * on NODE must be refused with 410, after which it enters again and goes on.
 *
 * Misbehaving clients, for net's bounds (each bot succeeds when net closes
 * its connection as it must): with -F each bot logs in, then floods MOVE
 * frames (1 MiB per write) and never reads again; with -S it connects and
 * sends nothing; with -I it logs in and then sends nothing. -S and -I bots
 * print the reason of net's PUSH_BYE. With -D each bot logs in, enters its
 * room and then neither reads nor sends (it runs until its -t deadline or
 * a signal): what others chat piles up for it in net. -c CHATS makes each
 * scripted bot chat CHATS times instead of once. With -K PINGS each bot
 * logs in and then sends only PINGS PINGs (net answers them itself), each
 * a second after the last reply: net's idle timeout must spare it.
 *
 * With -B SECS the bots are a benchmark (make bench): no refused move, no
 * transcript; each enters its room and moves at full speed, one command in
 * flight. Once every bot is in its room and -W WARMUP_S (0.5) has passed,
 * "measure: start" is printed, SECS later "measure: end"; the bots then
 * send nothing more and, once every one has its last reply, print
 *     bench clients=N commands=C secs=S cmds_per_s=R p50_us=X p99_us=Y cpu_s=T
 * over the commands answered in between (T: the bot process's own CPU
 * time in the window). They stay connected until SIGTERM, so that closing
 * them is not measured.
 *
 * With -R FILE the bots write there, at exit, one line each:
 *     NAME PLAYER X Y UNANSWERED DX DY
 * PLAYER the id from its acknowledged login (0: none), (X,Y) the position
 * of its last acknowledged command, UNANSWERED the command net's goodbye
 * left without a reply ("-": none) and (DX,DY) how that command would have
 * moved the player. The database must hold (X,Y): a command executed whose
 * reply was lost would show as (X+DX,Y+DY).
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "frame.h"

enum { C_LOGIN, C_ENTER, C_MOVE, C_CHAT, C_LEAVE, C_LOGOUT, C_PING, C_N };
static const char *cmd_names[C_N] = {"login", "enter", "move", "chat", "leave", "logout", "ping"};
static const uint32_t cmd_ids[C_N] = {client_LOGIN, client_ENTER, client_MOVE, client_CHAT,
                                      client_LEAVE, client_LOGOUT, client_PING};
static const client_Dir script_dirs[] = {client_Dir_north, client_Dir_east, client_Dir_east,
                                         client_Dir_south, client_Dir_north};

typedef struct lat {
    uint64_t *us;
    size_t n, cap;
    uint64_t errors;
} lat;

enum { M_SCRIPT, M_FLOOD, M_SILENT, M_IDLE, M_DEAF };

typedef struct bot {
    int index;
    char name[48];
    struct bufferevent *bev;
    ember_arena *arena;
    int step;             /* C_* of the command in flight */
    int moves_done;
    int chats_done;
    int pings_done;
    struct event *ping_timer; /* -K: the next PING, a second after the last reply */
    uint64_t sent_us;
    int32_t expect;       /* the refusal the command in flight must get, or 0 */
    bool probed;
    bool dropped;         /* sent a bad frame: net must close */
    bool hanging_up;      /* closes once its last command is written */
    bool paused;          /* -G: in its room, waiting for SIGUSR1 */
    bool waiting_push;    /* chat answered, own push not seen yet */
    bool got_own_push;
    bool done, failed;
    char why[256];
    const char *unanswered;   /* at net's goodbye, or NULL */
    char bye[128];            /* -S, -I: the reason net gave */
    uint64_t flooded;         /* -F: bytes written */
    uint64_t flood_us;        /* -F: when the flood began */
    int dx, dy;               /* the move unanswered, if one was */
    /* what the bot learned and expects */
    uint64_t player;
    bool created;
    uint32_t logins;
    uint32_t room;
    char node[32];
    client_Pos start, pos;
    uint32_t pushes;
    uint32_t commands;
} bot;

static struct {
    struct event_base *base;
    struct sockaddr_in addr;
    int n_bots, rooms, moves, chats, pings;
    bool probe;           /* check a refusal too (on unless -P) */
    bool bad_frame;       /* -X */
    int mode;             /* M_SCRIPT, or -F, -S, -I, -D */
    int hangup;           /* -L, -E: C_LOGIN, C_ENTER; else -1 */
    char gone[32];        /* -G: the game node killed while the bots pause */
    bool resumed;         /* -G: SIGUSR1 came */
    int paused, told_gone;
    char prefix[24];
    const char *record;   /* -R FILE */
    bot *bots;
    int finished;
    lat lat[C_N];
    struct event *deadline;
    /* -B: the measured window */
    double bench_secs, bench_warm;
    int entered;          /* bots in their room */
    bool measuring, bench_over, bench_printed;
    int resting;          /* bots done with the window */
    uint64_t m_t0, m_t1, m_cmds;
    double m_cpu0, m_cpu1;
    lat m_lat;
    struct event *m_timer;
} W;

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* The first bot's transcript. */
static void say(bot *b, const char *fmt, ...)
{
    if (b->index != 0 || W.bench_secs > 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    printf("  %s ", b->name);
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);   /* a test may wait for a line */
    va_end(ap);
}

static void bench_rest(bot *b);

static void finish(bot *b)
{
    if (b->done)
        return;
    b->done = true;
    if (b->bev) {
        bufferevent_free(b->bev);
        b->bev = NULL;
    }
    if (++W.finished == W.n_bots)
        event_base_loopexit(W.base, NULL);
    bench_rest(NULL);
}

static void fail(bot *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->why, sizeof b->why, fmt, ap);
    va_end(ap);
    b->failed = true;
    say(b, "FAILED: %s", b->why);
    finish(b);
}

/* Sends command step with the request encoded by the caller into e. */
static void send_cmd(bot *b, int step, ember_enc *e)
{
    frame_add(bufferevent_get_output(b->bev), cmd_ids[step], e->base, ember_enc_len(e));
    b->step = step;
    b->sent_us = now_us();
    if (step == W.hangup) {
        say(b, "   hang up without waiting for the reply");
        b->hanging_up = true;
    }
}

/* -F: MOVE frames (length 4, command MOVE, no payload), 1 MiB a write. */
static void flood(bot *b)
{
    static uint8_t chunk[1 << 20];
    if (!chunk[0]) {
        struct evbuffer *one = evbuffer_new();
        frame_add(one, client_MOVE, NULL, 0);
        evbuffer_remove(one, chunk, FRAME_HDR);
        evbuffer_free(one);
        for (size_t i = FRAME_HDR; i < sizeof chunk; i += FRAME_HDR)
            memcpy(chunk + i, chunk, FRAME_HDR);
    }
    bufferevent_write(b->bev, chunk, sizeof chunk);
    b->flooded += sizeof chunk;
}

/* The command is out: a bot that hangs up is done; a flooder sends more. */
static void on_write(struct bufferevent *bev, void *ud)
{
    bot *b = ud;
    (void)bev;
    if (b->hanging_up)
        finish(b);
    else if (b->flood_us)
        flood(b);
}

static const char *dir_name(client_Dir d)
{
    const char *s = client_Dir_name(d);
    return s ? s : "?";
}

/* -K: a PING, answered by net itself. */
static void send_ping(evutil_socket_t fd, short what, void *ud)
{
    bot *b = ud;
    (void)fd;
    (void)what;
    if (b->done)
        return;
    uint8_t none[1];
    ember_enc e;
    ember_enc_init_fixed(&e, none, sizeof none);
    say(b, "-> ping");
    b->pings_done++;
    send_cmd(b, C_PING, &e);
}

static void next(bot *b)
{
    uint8_t buf[512];
    ember_enc e;
    ember_enc_init_fixed(&e, buf, sizeof buf);
    switch (b->step) {
    case -1: {
        client_LoginReq r = {b->name};
        client_LoginReq_encode(&e, &r);
        say(b, "-> login   name=%s", b->name);
        send_cmd(b, C_LOGIN, &e);
        break;
    }
    case C_LOGIN:
        if (W.pings) {   /* -K: nothing but PINGs from now on */
            b->step = C_PING;
            next(b);
            break;
        }
        if (W.bad_frame) {
            static const uint8_t too_long[FRAME_HDR] = {0xff, 0xff, 0xff, 0xff};
            say(b, "-> a frame too long (net must close the connection)");
            b->dropped = true;
            bufferevent_write(b->bev, too_long, sizeof too_long);
            break;
        }
        if (W.probe && !b->probed) {
            client_MoveReq m = {client_Dir_north};
            client_MoveReq_encode(&e, &m);
            say(b, "-> move    north (not in a room yet: must be refused)");
            b->probed = true;
            b->expect = 404;
            send_cmd(b, C_MOVE, &e);
            break;
        }
        /* fall through */
    case -2: {
        client_EnterReq r = {(uint32_t)(1 + b->index % W.rooms)};
        client_EnterReq_encode(&e, &r);
        say(b, "-> enter   room=%u", r.room);
        send_cmd(b, C_ENTER, &e);
        break;
    }
    case C_ENTER:
    case C_MOVE:
        if (b->moves_done < W.moves) {
            client_Dir d = script_dirs[b->moves_done % (sizeof script_dirs / sizeof script_dirs[0])];
            client_MoveReq r = {d};
            client_MoveReq_encode(&e, &r);
            say(b, "-> move    %s", dir_name(d));
            send_cmd(b, C_MOVE, &e);
            break;
        }
        /* fall through */
    case C_CHAT:
        if (b->chats_done < W.chats) {
            char text[96];
            snprintf(text, sizeof text, "hello from %s", b->name);
            client_ChatReq r = {text};
            client_ChatReq_encode(&e, &r);
            say(b, "-> chat    \"%s\"", text);
            b->chats_done++;
            send_cmd(b, C_CHAT, &e);
            break;
        }
        /* LeaveReq {} and LogoutReq {}: an empty payload */
        say(b, "-> leave");
        send_cmd(b, C_LEAVE, &e);
        break;
    case C_LEAVE:
        say(b, "-> logout");
        send_cmd(b, C_LOGOUT, &e);
        break;
    case C_LOGOUT:
        say(b, "done: %u commands, %u pushes", b->commands, b->pushes);
        finish(b);
        break;
    case C_PING:
        if (b->pings_done == W.pings) {
            say(b, "done: %d pings, each a second after the last reply", W.pings);
            finish(b);
            break;
        }
        if (!b->ping_timer)
            b->ping_timer = evtimer_new(W.base, send_ping, b);
        struct timeval tv = {1, 0};
        evtimer_add(b->ping_timer, &tv);
        break;
    }
}

/* -G: every bot waits in its room (or is done) until SIGUSR1. */
static void pause_bot(bot *b)
{
    b->paused = true;
    if (++W.paused + W.finished == W.n_bots) {
        printf("  all bots paused in their rooms: kill %s, then SIGUSR1 (pid %d)\n", W.gone,
               (int)getpid());
        fflush(stdout);
    }
}

static void on_resume(evutil_socket_t fd, short what, void *ud)
{
    (void)fd;
    (void)what;
    (void)ud;
    W.resumed = true;
    for (int i = 0; i < W.n_bots; i++) {
        bot *b = &W.bots[i];
        if (!b->paused || b->done)
            continue;
        b->paused = false;
        if (strcmp(b->node, W.gone) == 0) {
            b->expect = 410;
            say(b, "   resumed: %s left, so the next command must be refused (410)", W.gone);
        }
        next(b);
    }
}

static void lat_add(lat *l, uint64_t us)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->us = realloc(l->us, l->cap * sizeof *l->us);
    }
    l->us[l->n++] = us;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(lat *l, double p)
{
    if (!l->n)
        return 0;
    size_t i = (size_t)(p * (double)(l->n - 1) + 0.5);
    return (double)l->us[i] / 1000.0;
}

/* The bot process's CPU time so far, user + system, in seconds. */
static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void bench_print(void)
{
    lat *l = &W.m_lat;
    double secs = W.m_t1 > W.m_t0 ? (double)(W.m_t1 - W.m_t0) / 1e6 : 0;
    if (W.bench_printed)
        return;
    W.bench_printed = true;
    if (l->n)
        qsort(l->us, l->n, sizeof *l->us, cmp_u64);
    printf("bench clients=%d commands=%llu secs=%.3f cmds_per_s=%.0f p50_us=%.0f p99_us=%.0f "
           "cpu_s=%.3f\n", W.n_bots, (unsigned long long)W.m_cmds, secs,
           secs ? (double)W.m_cmds / secs : 0.0, pct(l, 0.50) * 1000.0, pct(l, 0.99) * 1000.0,
           W.m_cpu1 - W.m_cpu0);
    fflush(stdout);
}

/* -B: b (or, NULL, a bot that finished) sends nothing more after the
 * window; once every bot is quiet the result is printed. */
static void bench_rest(bot *b)
{
    if (!W.bench_over)
        return;
    if (b)
        W.resting++;
    if (W.resting + W.finished == W.n_bots)
        bench_print();
}

static void on_term(evutil_socket_t fd, short what, void *ud)
{
    (void)fd;
    (void)what;
    (void)ud;
    event_base_loopexit(W.base, NULL);
}

/* -B: WARMUP after the last bot entered its room, then SECS measured. */
static void on_bench_timer(evutil_socket_t fd, short what, void *ud)
{
    (void)fd;
    (void)what;
    (void)ud;
    if (!W.measuring) {
        W.measuring = true;
        W.m_t0 = now_us();
        W.m_cpu0 = cpu_s();
        printf("measure: start\n");
        fflush(stdout);
        struct timeval tv = {(time_t)W.bench_secs,
                             (suseconds_t)((W.bench_secs - (double)(time_t)W.bench_secs) * 1e6)};
        evtimer_add(W.m_timer, &tv);
        return;
    }
    W.measuring = false;
    W.bench_over = true;
    W.m_t1 = now_us();
    W.m_cpu1 = cpu_s();
    printf("measure: end\n");
    fflush(stdout);
}

static void bench_entered(void)
{
    if (W.bench_secs <= 0 || ++W.entered != W.n_bots)
        return;
    struct timeval tv = {(time_t)W.bench_warm,
                         (suseconds_t)((W.bench_warm - (double)(time_t)W.bench_warm) * 1e6)};
    evtimer_add(W.m_timer, &tv);
}

/* Decodes the reply body into *v with dec, or fails the bot. */
#define BODY(b, rep, type, v)                                                  \
    do {                                                                       \
        ember_dec d_;                                                          \
        memset((v), 0, sizeof *(v));                                           \
        ember_dec_init(&d_, (rep)->body.data, (rep)->body.len, (b)->arena);    \
        if (type##_decode(&d_, (v))) {                                         \
            fail((b), "%s: reply does not decode: %s", cmd_names[(b)->step],   \
                 d_.why ? d_.why : "?");                                       \
            return;                                                            \
        }                                                                      \
    } while (0)

static void on_reply(bot *b, const client_Reply *rep)
{
    uint64_t us = now_us() - b->sent_us;
    double ms = (double)us / 1000.0;
    lat *l = &W.lat[b->step];
    lat_add(l, us);
    b->commands++;
    if (W.measuring) {
        lat_add(&W.m_lat, us);
        W.m_cmds++;
    }
    if (b->expect) {   /* refused as expected, the bot (re-)enters its room */
        int32_t want = b->expect;
        b->expect = 0;
        if (rep->code != want) {
            l->errors++;
            fail(b, "%s: expected refusal %d, got %d %s", cmd_names[b->step], want, rep->code,
                 rep->message ? rep->message : "");
            return;
        }
        say(b, "<- %-7s %.2f ms: refused as expected: %d %s", cmd_names[b->step], ms, rep->code,
            rep->message ? rep->message : "");
        W.told_gone += want == 410;
        ember_arena_reset(b->arena);
        b->step = -2;
        next(b);
        return;
    }
    if (rep->code != 0) {
        l->errors++;
        fail(b, "%s refused: %d %s", cmd_names[b->step], rep->code, rep->message ? rep->message : "");
        return;
    }
    switch (b->step) {
    case C_LOGIN: {
        client_LoginRep r;
        BODY(b, rep, client_LoginRep, &r);
        if (!r.name || strcmp(r.name, b->name) != 0 || r.player == 0) {
            fail(b, "login: wrong player");
            return;
        }
        b->player = r.player;
        b->created = r.created;
        b->logins = r.logins;
        b->start = b->pos = r.pos;
        if (W.mode == M_FLOOD) {
            say(b, "<- login   %.2f ms: flooding MOVE frames, reading nothing more", ms);
            bufferevent_disable(b->bev, EV_READ);
            b->flood_us = now_us();
            flood(b);
            return;
        }
        if (W.mode == M_IDLE) {
            say(b, "<- login   %.2f ms: sending nothing more", ms);
            return;
        }
        if (r.created)
            say(b, "<- login   %.2f ms: new player #%llu created at (%d,%d)", ms,
                (unsigned long long)r.player, r.pos.x, r.pos.y);
        else
            say(b, "<- login   %.2f ms: player #%llu loaded from the database, "
                   "last at (%d,%d), login #%u", ms, (unsigned long long)r.player,
                r.pos.x, r.pos.y, r.logins);
        break;
    }
    case C_ENTER: {
        client_RoomState r;
        BODY(b, rep, client_RoomState, &r);
        if (r.room != (uint32_t)(1 + b->index % W.rooms)) {
            fail(b, "enter: wrong room %u", r.room);
            return;
        }
        if (r.pos.x != b->pos.x || r.pos.y != b->pos.y) {
            fail(b, "enter: position (%d,%d), expected the saved (%d,%d)", r.pos.x, r.pos.y,
                 b->pos.x, b->pos.y);
            return;
        }
        b->room = r.room;
        snprintf(b->node, sizeof b->node, "%s", r.node ? r.node : "?");
        say(b, "<- enter   %.2f ms: room %u on %s at (%d,%d), %u player(s) there", ms, r.room,
            b->node, r.pos.x, r.pos.y, r.players.n);
        bench_entered();
        if (W.mode == M_DEAF) {
            say(b, "   deaf: reading nothing more, sending nothing more");
            bufferevent_disable(b->bev, EV_READ);
            ember_arena_reset(b->arena);
            return;
        }
        if (W.gone[0] && !W.resumed) {
            pause_bot(b);
            ember_arena_reset(b->arena);
            return;
        }
        break;
    }
    case C_MOVE: {
        client_Pos r;
        BODY(b, rep, client_Pos, &r);
        client_Dir d = script_dirs[b->moves_done % (sizeof script_dirs / sizeof script_dirs[0])];
        client_Pos want = b->pos;
        want.x += d == client_Dir_east ? 1 : d == client_Dir_west ? -1 : 0;
        want.y += d == client_Dir_north ? 1 : d == client_Dir_south ? -1 : 0;
        if (r.x != want.x || r.y != want.y) {
            fail(b, "move: at (%d,%d), expected (%d,%d)", r.x, r.y, want.x, want.y);
            return;
        }
        b->pos = r;
        b->moves_done++;
        say(b, "<- move    %.2f ms: now at (%d,%d)", ms, r.x, r.y);
        break;
    }
    case C_CHAT: {
        client_ChatRep r;
        BODY(b, rep, client_ChatRep, &r);
        if (r.delivered < 1) {
            fail(b, "chat: delivered to nobody");
            return;
        }
        say(b, "<- chat    %.2f ms: delivered to %u player(s)", ms, r.delivered);
        if (!b->got_own_push) {
            b->waiting_push = true;   /* go on when our own message arrives */
            ember_arena_reset(b->arena);
            return;
        }
        break;
    }
    case C_LEAVE: {
        client_LeaveRep r;
        BODY(b, rep, client_LeaveRep, &r);
        if (r.room != b->room || r.pos.x != b->pos.x || r.pos.y != b->pos.y) {
            fail(b, "leave: room %u at (%d,%d)", r.room, r.pos.x, r.pos.y);
            return;
        }
        say(b, "<- leave   %.2f ms: left room %u at (%d,%d)", ms, r.room, r.pos.x, r.pos.y);
        break;
    }
    case C_PING:
        if (rep->body.len) {
            fail(b, "ping: a reply with a body");
            return;
        }
        say(b, "<- ping    %.2f ms", ms);
        break;
    case C_LOGOUT: {
        client_LogoutRep r;
        BODY(b, rep, client_LogoutRep, &r);
        if (r.pos.x != b->pos.x || r.pos.y != b->pos.y) {
            fail(b, "logout: saved (%d,%d), expected (%d,%d)", r.pos.x, r.pos.y, b->pos.x, b->pos.y);
            return;
        }
        say(b, "<- logout  %.2f ms: saved at (%d,%d)", ms, r.pos.x, r.pos.y);
        break;
    }
    }
    ember_arena_reset(b->arena);
    if (W.bench_over)
        bench_rest(b);
    else
        next(b);
}

static void on_push(bot *b, uint32_t command, const uint8_t *p, size_t len)
{
    if (command == client_PUSH_BYE) {
        client_Bye bye;
        client_Bye_init(&bye);
        ember_dec d;
        ember_dec_init(&d, p, len, b->arena);
        client_Bye_decode(&d, &bye);
        if (W.mode == M_SILENT || W.mode == M_IDLE) {
            snprintf(b->bye, sizeof b->bye, "%s", bye.reason ? bye.reason : "");
            say(b, "<= bye     \"%s\"", b->bye);
            return;
        }
        b->unanswered = b->step >= 0 && !b->waiting_push && !b->paused ? cmd_names[b->step] : NULL;
        if (b->step == C_MOVE && !b->expect && b->unanswered) {
            client_Dir dir = script_dirs[b->moves_done % (sizeof script_dirs / sizeof script_dirs[0])];
            b->dx = dir == client_Dir_east ? 1 : dir == client_Dir_west ? -1 : 0;
            b->dy = dir == client_Dir_north ? 1 : dir == client_Dir_south ? -1 : 0;
        }
        fail(b, "net said goodbye (%s) with %s unanswered", bye.reason,
             b->unanswered ? b->unanswered : "nothing");
        return;
    }
    if (command != client_PUSH_CHAT) {
        fail(b, "unknown push %u", command);
        return;
    }
    client_ChatMsg m;
    memset(&m, 0, sizeof m);
    ember_dec d;
    ember_dec_init(&d, p, len, b->arena);
    if (client_ChatMsg_decode(&d, &m)) {
        fail(b, "chat push does not decode");
        return;
    }
    b->pushes++;
    bool mine = m.from && strcmp(m.from, b->name) == 0;
    if (b->index == 0)
        say(b, "<= push    room %u: %s says \"%s\"", m.room, m.from ? m.from : "?",
            m.text ? m.text : "");
    ember_arena_reset(b->arena);
    if (mine) {
        b->got_own_push = true;
        if (b->waiting_push) {
            b->waiting_push = false;
            next(b);
        }
    }
}

static void on_read(struct bufferevent *bev, void *ud)
{
    bot *b = ud;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (!b->done) {
        uint32_t len, command;
        if (frame_peek(in, &len, &command))
            return;
        if (len < 4 || len > client_MAX_FRAME) {
            fail(b, "bad frame from net (length %u)", len);
            return;
        }
        if (evbuffer_get_length(in) < (size_t)len + 4)
            return;
        evbuffer_drain(in, FRAME_HDR);
        size_t plen = len - 4;
        const uint8_t *p = evbuffer_pullup(in, (ssize_t)plen);
        if (command >= 9000) {
            on_push(b, command, p, plen);
        } else if (command != cmd_ids[b->step]) {
            fail(b, "reply to %u while %s is in flight", command, cmd_names[b->step]);
        } else {
            client_Reply rep;
            memset(&rep, 0, sizeof rep);
            ember_dec d;
            ember_dec_init(&d, p, plen, b->arena);
            if (client_Reply_decode(&d, &rep))
                fail(b, "reply frame does not decode");
            else
                on_reply(b, &rep);
        }
        if (b->done)
            return;
        evbuffer_drain(in, plen);
    }
}

static void on_event(struct bufferevent *bev, short what, void *ud)
{
    bot *b = ud;
    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        setsockopt(bufferevent_getfd(b->bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (W.mode != M_SILENT)
            next(b);
        return;
    }
    if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) && b->flood_us) {
        say(b, "<- dropped by net after %.1f s of flooding (%llu MiB written)",
            (double)(now_us() - b->flood_us) / 1e6, (unsigned long long)(b->flooded >> 20));
        finish(b);
    } else if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) && b->bye[0]) {
        say(b, "<- closed by net after its goodbye");
        finish(b);
    } else if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) && b->dropped) {
        say(b, "<- closed by net, as it must be");
        finish(b);
    } else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        fail(b, "connection to net %s", (what & BEV_EVENT_EOF) ? "closed" : "failed");
}

static void on_deadline(evutil_socket_t fd, short what, void *ud)
{
    (void)fd;
    (void)what;
    (void)ud;
    for (int i = 0; i < W.n_bots; i++)
        if (!W.bots[i].done)
            fail(&W.bots[i], "timed out during %s", W.bots[i].step >= 0 ? cmd_names[W.bots[i].step] : "connect");
}

/* -R: what each bot knows for certain, for a check against the database. */
static int write_record(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return -1;
    }
    for (int i = 0; i < W.n_bots; i++) {
        const bot *b = &W.bots[i];
        fprintf(f, "%s %llu %d %d %s %d %d\n", b->name, (unsigned long long)b->player, b->pos.x,
                b->pos.y, b->unanswered ? b->unanswered : "-", b->dx, b->dy);
    }
    return fclose(f) ? -1 : 0;
}

static void usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [-n BOTS] [-r ROOMS] [-m MOVES] [-p PREFIX] [-t TIMEOUT_S] [-P] [-X]\n"
            "           [-c CHATS] [-L | -E | -F | -S | -I | -D | -K PINGS] [-G NODE] [-R FILE]\n"
            "           [-B SECS [-W WARMUP_S]] HOST:PORT\n"
            "  -c CHATS chat CHATS times (1)\n"
            "  -P       skip the refused move before entering a room\n"
            "  -X       after login send a frame too long; net must close the connection\n"
            "  -L, -E   hang up right after sending the login (the enter)\n"
            "  -F       log in, then flood MOVE frames and never read: net must drop it\n"
            "  -S, -I   send nothing (-I: after logging in): net must say goodbye and close\n"
            "  -D       log in, enter the room, then neither read nor send\n"
            "  -K PINGS after logging in send only PINGS pings, each a second after the\n"
            "           last reply\n"
            "  -G NODE  pause in the room until SIGUSR1; the next command of a bot whose\n"
            "           room was on NODE must then be refused with 410\n"
            "  -R FILE  at exit write each bot's player, last acknowledged position and\n"
            "           the command left unanswered by net's goodbye\n"
            "  -B SECS  benchmark: move at full speed, measure SECS once every bot is in\n"
            "           its room and WARMUP_S (-W, 0.5) passed; print commands/s, p50, p99\n",
            argv0);
    exit(2);
}

int main(int argc, char **argv)
{
    W.n_bots = 20;
    W.rooms = 4;
    W.moves = 5;
    W.chats = 1;
    W.probe = true;
    W.hangup = -1;
    int timeout_s = 30;
    W.bench_warm = 0.5;
    snprintf(W.prefix, sizeof W.prefix, "bot");
    int opt;
    while ((opt = getopt(argc, argv, "n:r:m:c:p:t:PXLEFSIDK:G:R:B:W:")) != -1) {
        switch (opt) {
        case 'n': W.n_bots = atoi(optarg); break;
        case 'r': W.rooms = atoi(optarg); break;
        case 'm': W.moves = atoi(optarg); break;
        case 'c': W.chats = atoi(optarg); break;
        case 'p': snprintf(W.prefix, sizeof W.prefix, "%s", optarg); break;
        case 't': timeout_s = atoi(optarg); break;
        case 'P': W.probe = false; break;
        case 'X': W.bad_frame = true; break;
        case 'L': W.hangup = C_LOGIN; break;
        case 'E': W.hangup = C_ENTER; break;
        case 'F': W.mode = M_FLOOD; break;
        case 'S': W.mode = M_SILENT; break;
        case 'I': W.mode = M_IDLE; break;
        case 'D': W.mode = M_DEAF; break;
        case 'K': W.pings = atoi(optarg); break;
        case 'G': snprintf(W.gone, sizeof W.gone, "%s", optarg); break;
        case 'R': W.record = optarg; break;
        case 'B': W.bench_secs = atof(optarg); break;
        case 'W': W.bench_warm = atof(optarg); break;
        default: usage(argv[0]);
        }
    }
    if (optind != argc - 1 || W.n_bots < 1 || W.rooms < 1 || W.moves < 0 || W.chats < 1 || W.pings < 0 ||
        W.bench_secs < 0 || W.bench_warm < 0)
        usage(argv[0]);
    if (W.bench_secs > 0) {
        W.probe = false;
        W.moves = INT_MAX;
    }
    /* One socket per bot. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)W.n_bots + 64) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur < (rlim_t)W.n_bots + 64)
            fprintf(stderr, "bot: %d bots need %d open files; ulimit -n allows %llu\n", W.n_bots,
                    W.n_bots + 64, (unsigned long long)rl.rlim_cur);
    }
    char host[128];
    snprintf(host, sizeof host, "%s", argv[optind]);
    char *colon = strrchr(host, ':');
    if (!colon)
        usage(argv[0]);
    *colon = 0;
    W.addr.sin_family = AF_INET;
    W.addr.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &W.addr.sin_addr) != 1)
        usage(argv[0]);

    W.base = event_base_new();
    W.bots = calloc((size_t)W.n_bots, sizeof *W.bots);
    printf("%d bots -> net at %s:%s, %d room(s), %d move(s) each\n\n", W.n_bots, host, colon + 1,
           W.rooms, W.moves);
    printf("transcript of %s01:\n", W.prefix);
    uint64_t t0 = now_us();
    for (int i = 0; i < W.n_bots; i++) {
        bot *b = &W.bots[i];
        b->index = i;
        b->step = -1;
        snprintf(b->name, sizeof b->name, "%s%02d", W.prefix, i + 1);
        b->arena = ember_arena_new();
        /* -D, -F: little room in its kernel (set before the handshake,
         * which announces the window), so what it does not read piles up
         * in net. */
        evutil_socket_t fd = -1;
        if ((W.mode == M_DEAF || W.mode == M_FLOOD) && (fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0) {
            int small = 4096;
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
            evutil_make_socket_nonblocking(fd);
        }
        b->bev = bufferevent_socket_new(W.base, fd, BEV_OPT_CLOSE_ON_FREE);
        bufferevent_setcb(b->bev, on_read, on_write, on_event, b);
        bufferevent_enable(b->bev, EV_READ | EV_WRITE);
        if (bufferevent_socket_connect(b->bev, (struct sockaddr *)&W.addr, sizeof W.addr))
            fail(b, "cannot connect");
    }
    struct timeval tv = {timeout_s, 0};
    W.deadline = evtimer_new(W.base, on_deadline, NULL);
    evtimer_add(W.deadline, &tv);
    W.m_timer = evtimer_new(W.base, on_bench_timer, NULL);
    struct event *term = W.bench_secs > 0 ? evsignal_new(W.base, SIGTERM, on_term, NULL) : NULL;
    if (term)
        event_add(term, NULL);
    struct event *resume = W.gone[0] ? evsignal_new(W.base, SIGUSR1, on_resume, NULL) : NULL;
    if (resume)
        event_add(resume, NULL);
    if (W.finished < W.n_bots)
        event_base_dispatch(W.base);
    double secs = (double)(now_us() - t0) / 1e6;

    printf("\nthe other bots:\n");
    int failed = 0, loaded = 0;
    uint64_t calls = 0, errors = 0;
    for (int i = 0; i < W.n_bots; i++) {
        bot *b = &W.bots[i];
        failed += b->failed;
        loaded += b->player && !b->created;
        if (i == 0 || (W.bench_secs > 0 && !b->failed))
            continue;
        if (b->failed)
            printf("  %s FAILED: %s\n", b->name, b->why);
        else if (b->hanging_up)
            printf("  %s ok: hung up after sending its %s\n", b->name, cmd_names[b->step]);
        else if (b->flood_us)
            printf("  %s ok: dropped by net while flooding\n", b->name);
        else if (b->bye[0])
            printf("  %s ok: closed by net: %s\n", b->name, b->bye);
        else
            printf("  %s ok: player #%llu %s, room %u on %s, (%d,%d) -> (%d,%d), %u pushes\n",
                   b->name, (unsigned long long)b->player,
                   b->created ? "created" : "loaded from db", b->room, b->node, b->start.x,
                   b->start.y, b->pos.x, b->pos.y, b->pushes);
    }
    printf("\n%-8s %7s %7s %9s %9s %9s\n", "command", "calls", "errors", "p50 ms", "p99 ms", "max ms");
    for (int c = 0; c < C_N; c++) {
        lat *l = &W.lat[c];
        if (l->n)
            qsort(l->us, l->n, sizeof *l->us, cmp_u64);
        calls += l->n;
        errors += l->errors;
        printf("%-8s %7zu %7llu %9.2f %9.2f %9.2f\n", cmd_names[c], l->n,
               (unsigned long long)l->errors, pct(l, 0.50), pct(l, 0.99),
               l->n ? (double)l->us[l->n - 1] / 1000.0 : 0.0);
    }
    printf("\n%d bots, %llu calls, %llu errors, %d failed, %d of %d players loaded from the "
           "database, %.2f s\n",
           W.n_bots, (unsigned long long)calls, (unsigned long long)errors, failed, loaded,
           W.n_bots, secs);
    if (W.gone[0])
        printf("%d bot(s) told with 410 that %s, their room's game node, left\n", W.told_gone,
               W.gone);
    if (W.bench_secs > 0) {
        failed += !W.bench_over;
        bench_print();
    }
    if (W.record && write_record(W.record))
        failed++;
    for (int i = 0; i < W.n_bots; i++) {
        if (W.bots[i].ping_timer)
            event_free(W.bots[i].ping_timer);
        if (W.bots[i].bev)
            bufferevent_free(W.bots[i].bev);
        ember_arena_free(W.bots[i].arena);
    }
    for (int c = 0; c < C_N; c++)
        free(W.lat[c].us);
    free(W.bots);
    free(W.m_lat.us);
    event_free(W.m_timer);
    if (term)
        event_free(term);
    event_free(W.deadline);
    if (resume)
        event_free(resume);
    event_base_free(W.base);
    return failed ? 1 : 0;
}
