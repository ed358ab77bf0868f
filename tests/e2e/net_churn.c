/*
 * net_churn.c — net's bound on what it sends the gate (docs/security.md,
 * "The example cluster's client port"): max_clients x max_inflight
 * forwards in flight, below the 65536 calls its link to the gate may have
 * (max_outstanding).
 *
 * This program plays the master and the gate: two ember roots net registers
 * with, on loopback. The gate holds every Gate.forward unanswered until the
 * test lets them go, so nothing depends on timing. net (NET, the real
 * binary) runs as a child process.
 *
 * A. With max_clients 64 and max_inflight 1024 (64 x 1024 = 65536) net must
 *    refuse to start: the gate counts a oneway (Gate.closed) against
 *    max_outstanding while it runs, so with 65536 forwards in flight the
 *    next client to go would make the gate drop net's link, and with it
 *    every player's commands.
 * B. Clients hanging up with their commands in flight, again and again,
 *    with max_clients 64 and max_inflight 1023:
 *    1. A player connects; its command is forwarded and answered.
 *    2. A hostile client connects, sends 1022 MOVEs, and hangs up once the
 *       gate holds them all; again and again. One short of max_inflight, so
 *       that net still reads it and sees it go at once (at max_inflight net
 *       reads nothing more from a client, its hang-up included, until a
 *       reply). Each one's forwards still count: after 63 of them (with the
 *       player, 64 clients) the next connection is refused "server full",
 *       the gate holds 63 x 1022 forwards, and it was told each time at
 *       once that the client went (Gate.closed).
 *    3. The player's next command still reaches the gate. (When net forgot
 *       a client's forwards once it hung up, the 65th such client took the
 *       link to max_outstanding, and every player's command was refused 508.)
 *    4. The gate answers everything: the player gets its reply, the gone
 *       clients' replies go nowhere, and a new client is accepted again;
 *       then net stops gracefully (exit status 0).
 * C. At the bound: max_clients 255 x max_inflight 257 = 65535. 255 clients
 *    each have 257 commands held; the gate pushes to one that does not read
 *    until net drops it: its Gate.closed reaches the gate, which keeps net's
 *    link; once the gate answers, the others get every reply.
 *
 *   test-net-churn NET DIR      (DIR: where the config and net's log go)
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include <ember/ember.h>

#include "client.h"
#include "frame.h"
#include "gate.h"
#include "net.h"
#include "../common/loop.h"
#include "../common/net.h"

#define MAX_CLIENTS 64
#define MAX_INFLIGHT 1023                 /* B: 64 x 1023 < 65536 */
#define CHURN_SENDS (MAX_INFLIGHT - 1)   /* each hostile connection's commands */
#define CHURNS (MAX_CLIENTS + 8)
#define FULL_CLIENTS 255                  /* C: 255 x 257 = 65535 */
#define FULL_INFLIGHT 257
#define SECRET "net-churn-test-secret-6f1d0c2a9b8e7d5c4b3a29181706f5e4"

static struct event_base *base;
static const char *net_bin, *net_dir;
static struct event *net_log_ev;
static pid_t net_pid = -1;
static char net_log[1 << 16];
static size_t net_log_len;
static bool net_log_eof;
static int net_port;

/* ---- the gate: holds every forward ------------------------------------ */

typedef struct held {
    ember_call *call;
    uint64_t session;
} held;

static held *holds;
static size_t n_held, cap_held;
static int closed_told;     /* Gate.closed received */
static bool net_joined;     /* net registered with the gate */
static int net_left;        /* net's link to the gate was closed */

static void remote_forward(ember_call *call, uint32_t command, uint64_t session,
                           ember_bytes data, void *ud)
{
    (void)command;
    (void)data;
    (void)ud;
    if (n_held == cap_held) {
        cap_held = cap_held ? 2 * cap_held : 4096;
        holds = realloc(holds, cap_held * sizeof *holds);
        if (!holds) {
            fprintf(stderr, "test-net-churn: out of memory\n");
            abort();
        }
    }
    holds[n_held++] = (held){call, session};
}

static void remote_closed(ember_call *call, uint64_t session, void *ud)
{
    (void)call;
    (void)session;
    (void)ud;
    closed_told++;
}

static const gate_Gate_handlers gate_handlers = {
    .remote_forward = remote_forward,
    .remote_closed = remote_closed,
};

static void gate_join(ember_root *r, ember_child *c, void *ud)
{
    (void)r;
    (void)ud;
    if (strcmp(ember_child_name(c), "net") == 0)
        net_joined = true;
}

static void gate_leave(ember_root *r, ember_child *c, const char *reason, void *ud)
{
    (void)r;
    (void)reason;
    (void)ud;
    if (strcmp(ember_child_name(c), "net") == 0)
        net_left++;
}

/* Answers every held forward, in the order they came. */
static void release_all(void)
{
    static const uint8_t none[1];
    for (size_t i = 0; i < n_held; i++)
        gate_Gate_forward_reply(holds[i].call, (ember_bytes){none, 0});
    n_held = 0;
}

static size_t held_for(uint64_t session)
{
    size_t n = 0;
    for (size_t i = 0; i < n_held; i++)
        n += holds[i].session == session;
    return n;
}

/* ---- net, the child process ------------------------------------------- */

static void on_net_log(evutil_socket_t fd, short what, void *ud)
{
    (void)what;
    (void)ud;
    char buf[4096];
    ssize_t r = read(fd, buf, sizeof buf);
    if (r <= 0) {
        if (r == 0 || (errno != EAGAIN && errno != EINTR))
            net_log_eof = true;
        return;
    }
    size_t n = (size_t)r;
    if (n > sizeof net_log - 1 - net_log_len)
        n = sizeof net_log - 1 - net_log_len;
    memcpy(net_log + net_log_len, buf, n);
    net_log_len += n;
    net_log[net_log_len] = 0;
    const char *p = strstr(net_log, "clients on 127.0.0.1:");
    if (p && !net_port)
        net_port = atoi(p + strlen("clients on 127.0.0.1:"));
}

static bool log_ended(void *ud)
{
    (void)ud;
    return net_log_eof;
}

static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "test-net-churn: FAIL: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    fprintf(stderr, "--- net's log ---\n%s", net_log);
    if (net_pid > 0) {
        kill(net_pid, SIGKILL);
        waitpid(net_pid, NULL, 0);
    }
    exit(1);
}

/* net with these limits; its stderr is read into net_log. */
static void start_net(int master_port, int gate_port, int max_clients, int max_inflight)
{
    net_log_len = 0;
    net_log[0] = 0;
    net_log_eof = false;
    net_port = 0;
    net_joined = false;
    net_left = 0;
    closed_told = 0;
    char path[1024];
    snprintf(path, sizeof path, "%s/net-churn.json", net_dir);
    FILE *f = fopen(path, "w");
    if (!f)
        fail("cannot write %s: %s", path, strerror(errno));
    fprintf(f,
            "{\n"
            "  \"master\": {\"roothost\": \"127.0.0.1\", \"rootport\": %d},\n"
            "  \"secret\": \"" SECRET "\",\n"
            "  \"servers\": {\n"
            "    \"net\": {\"app\": \"net\", \"netport\": 0,\n"
            "            \"clients\": {\"max_clients\": %d, \"max_inflight\": %d},\n"
            "            \"remoteport\": [{\"rootname\": \"gate\", \"rootport\": %d}]}\n"
            "  }\n"
            "}\n",
            master_port, max_clients, max_inflight, gate_port);
    fclose(f);
    int p[2];
    if (pipe(p))
        fail("pipe: %s", strerror(errno));
    net_pid = fork();
    if (net_pid < 0)
        fail("fork: %s", strerror(errno));
    if (net_pid == 0) {
        dup2(p[1], 2);
        close(p[0]);
        close(p[1]);
        execl(net_bin, net_bin, "net", path, (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", net_bin, strerror(errno));
        _exit(127);
    }
    close(p[1]);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    net_log_ev = event_new(base, p[0], EV_READ | EV_PERSIST, on_net_log, NULL);
    if (!net_log_ev || event_add(net_log_ev, NULL))
        fail("cannot read net's log");
}

static bool log_ended_or_joined(void *ud)
{
    (void)ud;
    return net_log_eof || net_joined;
}

/* net's exit status, once its log ended (it exited). */
static int net_exit(void)
{
    if (!run_until(base, log_ended, NULL, 10000))
        fail("net did not exit within 10 s");
    close(event_get_fd(net_log_ev));
    event_free(net_log_ev);
    net_log_ev = NULL;
    int st = 0;
    waitpid(net_pid, &st, 0);
    net_pid = -1;
    return st;
}

/* A graceful stop: exit status 0. */
static void stop_net(void)
{
    kill(net_pid, SIGTERM);
    int st = net_exit();
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail("net exited with status 0x%x after SIGTERM", st);
}

/* ---- game clients ----------------------------------------------------- */

typedef struct tclient {
    struct bufferevent *bev;
    int replies;
    int32_t code;           /* of the last reply */
    char message[128];      /* of the last reply */
    char bye[128];          /* PUSH_BYE's reason, "" if none */
    bool closed;
} tclient;

static ember_arena *arena;

static void on_client_read(struct bufferevent *bev, void *ud)
{
    tclient *t = ud;
    struct evbuffer *in = bufferevent_get_input(bev);
    uint32_t len, command;
    while (frame_peek(in, &len, &command) == 0 && evbuffer_get_length(in) >= (size_t)len + 4) {
        size_t plen = len - 4;
        evbuffer_drain(in, FRAME_HDR);
        const uint8_t *p = evbuffer_pullup(in, (ssize_t)plen);
        ember_dec d;
        ember_dec_init(&d, p ? p : (const uint8_t *)"", plen, arena);
        if (command == client_PUSH_BYE) {
            client_Bye bye;
            memset(&bye, 0, sizeof bye);
            if (client_Bye_decode(&d, &bye) == 0 && bye.reason)
                snprintf(t->bye, sizeof t->bye, "%s", bye.reason);
        } else {
            client_Reply r;
            memset(&r, 0, sizeof r);
            if (client_Reply_decode(&d, &r) == 0) {
                t->replies++;
                t->code = r.code;
                snprintf(t->message, sizeof t->message, "%s", r.message ? r.message : "");
            }
        }
        ember_arena_reset(arena);
        evbuffer_drain(in, plen);
    }
}

static void on_client_event(struct bufferevent *bev, short what, void *ud)
{
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        ((tclient *)ud)->closed = true;
}

static void client_open(tclient *t)
{
    memset(t, 0, sizeof *t);
    t->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    struct sockaddr_in sa = loopback_addr(net_port);
    if (!t->bev || bufferevent_socket_connect(t->bev, (struct sockaddr *)&sa, sizeof sa))
        fail("cannot connect to net on port %d", net_port);
    bufferevent_setcb(t->bev, on_client_read, NULL, on_client_event, t);
    bufferevent_enable(t->bev, EV_READ);
}

static void client_close(tclient *t)
{
    bufferevent_free(t->bev);
    t->bev = NULL;
}

/* n MOVEs with an empty payload (the gate here reads none). */
static void send_moves(tclient *t, int n)
{
    for (int i = 0; i < n; i++)
        frame_add(bufferevent_get_output(t->bev), client_MOVE, NULL, 0);
}

/* ---- conditions ------------------------------------------------------- */

static bool port_known(void *ud)
{
    (void)ud;
    return net_port > 0 && net_joined;
}

typedef struct until_held {
    tclient *t;
    size_t want;
} until_held;

/* want forwards held, or t heard something (a reply, a goodbye, a close). */
static bool held_or_heard(void *ud)
{
    until_held *u = ud;
    return n_held >= u->want || u->t->replies || u->t->bye[0] || u->t->closed;
}

static bool replied(void *ud)
{
    return ((tclient *)ud)->replies > 0;
}

static bool told_closed(void *ud)
{
    return closed_told >= *(int *)ud;
}

static bool all_replied(void *ud)
{
    const tclient *t = ud;
    return t->replies >= FULL_INFLIGHT;
}

static bool told_or_left(void *ud)
{
    (void)ud;
    return closed_told > 0 || net_left > 0;
}

static ember_root *master, *gate;

/* Starts net with these limits; once it listens and is registered with the
 * gate, its first client's first command is forwarded and answered (until
 * net's link to the gate is up that command is refused, 506: it is sent
 * again). That client's session, or 0 when t is NULL. */
static uint64_t net_up(int max_clients, int max_inflight, tclient *t)
{
    start_net(ember_root_port(master), ember_root_port(gate), max_clients, max_inflight);
    if (!run_until(base, port_known, NULL, 10000))
        fail("net did not listen for clients and register with the gate within 10 s");
    if (!t)
        return 0;
    client_open(t);
    uint64_t session = 0;
    for (int tries = 0; !session; tries++) {
        if (tries == 50)
            fail("a first command never reached the gate (last reply %d %s)", t->code,
                 t->message);
        t->replies = 0;
        send_moves(t, 1);
        until_held u = {t, 1};
        if (!run_until(base, held_or_heard, &u, 5000))
            fail("a first command was neither forwarded nor answered");
        if (n_held)
            session = holds[0].session;
        else if (t->replies && t->code != 500 + EMBER_UNAVAILABLE)
            fail("a first command was refused %d %s", t->code, t->message);
    }
    release_all();
    if (!run_until(base, replied, t, 5000) || t->code != 0)
        fail("a first command was not answered 0 (%d %s)", t->code, t->message);
    t->replies = 0;
    return session;
}

/* A. max_clients x max_inflight = max_outstanding: refused. */
static void part_a(void)
{
    start_net(ember_root_port(master), ember_root_port(gate), 64, 1024);
    run_until(base, log_ended_or_joined, NULL, 10000);
    if (net_joined)
        fail("net started with max_clients 64 x max_inflight 1024 = max_outstanding (65536)");
    int st = net_exit();
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 1 ||
        !strstr(net_log, "servers.net.clients: max_clients x max_inflight (65536)"))
        fail("net with max_clients 64 x max_inflight 1024 exited with status 0x%x", st);
}

/* B. A client hanging up with its commands in flight, again and again. */
static int part_b(void)
{
    /* 1. The player. */
    tclient player;
    uint64_t session = net_up(MAX_CLIENTS, MAX_INFLIGHT, &player);

    /* 2. The hostile client, hanging up with CHURN_SENDS commands in flight,
     * until a connection of it hears something (a refusal). */
    int accepted = 0;
    tclient churn;
    for (int i = 0; i < CHURNS; i++) {
        client_open(&churn);
        send_moves(&churn, CHURN_SENDS);
        until_held u = {&churn, n_held + CHURN_SENDS};
        if (!run_until(base, held_or_heard, &u, 10000))
            fail("hostile client %d: its commands were neither forwarded nor answered", i + 1);
        client_close(&churn);
        if (churn.replies || churn.bye[0] || churn.closed)
            break;
        accepted++;
    }

    /* 3. The player goes on. */
    send_moves(&player, 1);
    until_held u = {&player, n_held + 1};
    if (!run_until(base, held_or_heard, &u, 5000) || held_for(session) != 1)
        fail("after %d clients hung up with %d commands each in flight, the player's command "
             "did not reach the gate: %s %d %s", accepted, CHURN_SENDS,
             player.replies ? "refused" : "no answer", player.code, player.message);
    if (accepted != MAX_CLIENTS - 1 || strcmp(churn.bye, "server full") != 0)
        fail("%d hostile clients accepted one after another with %d commands each in flight, "
             "expected %d, then \"server full\" (the next one heard: %d %s%s)", accepted,
             CHURN_SENDS, MAX_CLIENTS - 1, churn.code, churn.message, churn.bye);
    if (n_held != (size_t)accepted * CHURN_SENDS + 1)
        fail("the gate holds %zu forwards, expected %d", n_held, accepted * CHURN_SENDS + 1);
    if (!run_until(base, told_closed, &accepted, 5000))
        fail("the gate was told of %d clients gone, expected %d", closed_told, accepted);

    /* 4. The gate answers: its last answer is the player's, so net has
     * seen every other one before it. */
    release_all();
    if (!run_until(base, replied, &player, 10000) || player.code != 0)
        fail("the player's command was not answered 0 (%d %s)", player.code, player.message);
    tclient late;
    client_open(&late);
    send_moves(&late, 1);
    u = (until_held){&late, 1};
    if (!run_until(base, held_or_heard, &u, 5000) || n_held != 1)
        fail("a client after the gate answered was not served: %s", late.bye);
    release_all();
    if (!run_until(base, replied, &late, 5000) || late.code != 0)
        fail("the late client's command was not answered 0 (%d %s)", late.code, late.message);
    stop_net();
    client_close(&player);
    client_close(&late);
    return accepted;
}

/* C. Every client at max_inflight, and one of them dropped. */
static void part_c(void)
{
    static tclient cs[FULL_CLIENTS];
    net_up(FULL_CLIENTS, FULL_INFLIGHT, NULL);
    for (int i = 0; i < FULL_CLIENTS; i++) {
        client_open(&cs[i]);
        send_moves(&cs[i], FULL_INFLIGHT);
        until_held u = {&cs[i], n_held + FULL_INFLIGHT};
        if (!run_until(base, held_or_heard, &u, 10000) ||
            n_held != (size_t)(i + 1) * FULL_INFLIGHT)
            fail("client %d of %d: %zu forwards held, %d replies (%d %s)%s", i + 1,
                 FULL_CLIENTS, n_held, cs[i].replies, cs[i].code, cs[i].message, cs[i].bye);
    }
    /* The first reads nothing more; pushes for it pile up in net. */
    uint64_t first = holds[0].session;
    bufferevent_disable(cs[0].bev, EV_READ);
    ember_child *net = ember_root_child_by_name(gate, "net");
    static uint8_t big[60000];
    net_list_u64 to = {&first, 1};
    for (int i = 0; i < 40 && net; i++)
        net_Net_push(ember_child_ref(net), &to, client_PUSH_CHAT, (ember_bytes){big, sizeof big});
    if (!run_until(base, told_or_left, NULL, 10000))
        fail("net did not drop a client with %d x 60000 bytes pushed that it does not read", 40);
    if (net_left || closed_told != 1)
        fail("with %d forwards in flight, a client dropped: the gate was told %d time(s) and "
             "%s net's link", FULL_CLIENTS * FULL_INFLIGHT, closed_told,
             net_left ? "closed" : "kept");
    /* The gate answers; the last client's last reply comes last. */
    release_all();
    if (!run_until(base, all_replied, &cs[FULL_CLIENTS - 1], 10000))
        fail("the last client got %d of its %d replies", cs[FULL_CLIENTS - 1].replies,
             FULL_INFLIGHT);
    for (int i = 1; i < FULL_CLIENTS; i++)
        if (cs[i].replies != FULL_INFLIGHT || cs[i].code != 0)
            fail("client %d got %d of its %d replies (the last %d %s)", i + 1, cs[i].replies,
                 FULL_INFLIGHT, cs[i].code, cs[i].message);
    stop_net();
    for (int i = 0; i < FULL_CLIENTS; i++)
        client_close(&cs[i]);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: test-net-churn NET DIR\n");
        return 2;
    }
    net_bin = argv[1];
    net_dir = argv[2];
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    arena = ember_arena_new();
    ember_root_config rc;
    ember_root_config_default(&rc);
    rc.secret = SECRET;
    master = ember_root_new(base, &rc);
    rc.on_join = gate_join;
    rc.on_leave = gate_leave;
    gate = ember_root_new(base, &rc);
    if (!base || !arena || !master || !gate || ember_root_listen(master, "127.0.0.1:0") ||
        ember_root_listen(gate, "127.0.0.1:0") ||
        gate_Gate_export(ember_root_exports(gate), &gate_handlers, NULL))
        fail("setup: %s", ember_last_error());
    part_a();
    int accepted = part_b();
    part_c();
    ember_root_free(gate);
    ember_root_free(master);
    ember_arena_free(arena);
    free(holds);
    event_base_free(base);
    printf("test-net-churn: ok (64 x 1024 commands in flight refused at start; %d clients hung "
           "up with %d commands each in flight to a gate holding them, then the next was "
           "refused \"server full\", the player's command still went through, and once the "
           "gate answered a new client was served; %d clients with %d commands each in flight, "
           "one dropped: the gate was told and kept net)\n",
           accepted, CHURN_SENDS, FULL_CLIENTS, FULL_INFLIGHT);
    return 0;
}
