/*
 * net — accepts game clients over TCP and forwards their commands to the
 * gate (Firefly's net server). A node of the master and of the gate.
 *
 * Client protocol (idl/client.idl), both directions:
 *     u32 length (little endian; of what follows) | u32 command | payload
 * A request's reply comes back with the same command and a client.Reply
 * payload; pushes (client.PUSH_CHAT, ...) carry their own struct. At a
 * graceful stop net answers every command it read, sends client.PUSH_BYE
 * and closes.
 *
 * Every client is bounded ("clients" in the server's config, config.h):
 * commands in flight and bytes queued for it (over either, net stops
 * reading it; over the bytes for stall_ms, or pushed past twice them, it
 * is dropped), time to log in, time idle, the CHATs it sends a second (a
 * token bucket: over it a CHAT is refused 429, not pushed to the room), and
 * the number of clients. A client
 * dropped for a bound gets PUSH_BYE with the reason when it can still take
 * it; every drop is logged with its reason. A client that goes with
 * commands in flight keeps them, and its place among max_clients, until the
 * gate has answered them (client_free).
 *
 *   net [NAME] CONFIG.json       (listens on the server's "netport")
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "client.h"
#include "frame.h"
#include "gate.h"
#include "net.h"
#include "server.h"

/* Command ids from here on are pushes (server to client): a client sends
 * none of them. */
#define PUSH_IDS 9000u

typedef struct client {
    struct netsrv *n;
    uint64_t session;
    struct bufferevent *bev;  /* NULL once its connection is closed (gone) */
    char peer[64];            /* address:port, for the log */
    uint32_t inflight;        /* its commands forwarded, not answered yet */
    bool logged_in;           /* its last LOGIN was accepted (no LOGOUT since) */
    bool out_full;            /* over max_queued, until it drains to half */
    bool said_full;           /* out_full was logged (once per client) */
    bool closing;             /* freed once its output is flushed */
    bool gate_told;           /* gate.closed sent (or not to be sent) */
    uint64_t since_ms;        /* connected, or logged out: the login clock */
    uint64_t active_ms;       /* last frame read or reply sent: the idle clock */
    uint64_t full_ms;         /* when out_full was set; closing: when it began */
    uint64_t chat_tokens;     /* CHATs it may send now, in thousandths */
    uint64_t chat_ms;         /* when chat_tokens was last topped up */
    uint64_t chat_refused;    /* CHATs refused 429 since it was last logged */
    uint64_t chat_log_ms;     /* when that was logged (0: never) */
    struct client *prev, *next;  /* every client */
    struct client *hnext;     /* the session hash chain */
} client;

typedef struct netsrv {
    srv s;
    cfg_client_limits lim;
    ember_ref *gate;
    struct evconnlistener *listener;
    client *clients;
    uint32_t n_clients;
    client **buckets;         /* by session; n_buckets is a power of two */
    uint32_t n_buckets;
    uint64_t next_session;
    uint32_t inflight;        /* forwards waiting for the gate */
    bool draining;
    struct event *sweep;      /* login, idle and stall deadlines */
    struct event *relisten;   /* accept paused after EMFILE */
    uint64_t refused;         /* refused at max_clients since the last log */
    uint64_t refused_log_ms;
} netsrv;

static uint64_t now_ms(void)
{
    return now_us() / 1000u;
}

static client **bucket(netsrv *n, uint64_t session)
{
    return &n->buckets[session & (n->n_buckets - 1)];
}

static client *find(netsrv *n, uint64_t session)
{
    for (client *c = *bucket(n, session); c; c = c->hnext)
        if (c->session == session)
            return c;
    return NULL;
}

static size_t queued(const client *c)
{
    return evbuffer_get_length(bufferevent_get_output(c->bev));
}

static void maybe_drained(netsrv *n);

/* Forgets c: off the lists, its connection closed if it was still open. */
static void client_release(client *c)
{
    netsrv *n = c->n;
    if (c->prev)
        c->prev->next = c->next;
    else
        n->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    for (client **p = bucket(n, c->session); *p; p = &(*p)->hnext)
        if (*p == c) {
            *p = c->hnext;
            break;
        }
    n->n_clients--;
    if (c->bev)
        bufferevent_free(c->bev);
    free(c);
    maybe_drained(n);
}

/* Closes c's connection. A client with commands still in flight to the gate
 * stays (gone: nothing read from it or sent to it) until they are answered:
 * the gate is still working on them, so they keep counting against
 * max_inflight and its place against max_clients, as when it was connected.
 * Otherwise a client that sends max_inflight commands and hangs up, again
 * and again, would take net's link to the gate past max_outstanding (and
 * the other clients' commands would be refused) while the gate is slow. */
static void client_free(client *c)
{
    if (c->inflight == 0) {
        client_release(c);
        return;
    }
    if (c->bev)
        bufferevent_free(c->bev);
    c->bev = NULL;
}

/* Closed with a reset: what it did not read is discarded at once instead of
 * lingering in the kernel behind a window it never opens. */
static void client_reset(client *c)
{
    struct linger lg = {1, 0};
    setsockopt(bufferevent_getfd(c->bev), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    client_free(c);
}

/* The gate logs the session out, once. */
static void tell_gate(client *c)
{
    if (!c->gate_told && !c->n->s.stopping)
        gate_Gate_closed(c->n->gate, c->session);
    c->gate_told = true;
}

/* The client is gone: the gate logs its session out. */
static void client_gone(client *c)
{
    tell_gate(c);
    client_free(c);
}

/* One frame for c. With nothing queued it is written at once (one
 * sendmsg, no write event to arm and disarm); what the socket does not
 * take, or all of it when something is queued, goes behind the queue. */
static void send_frame(client *c, uint32_t command, const void *payload, size_t len)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    uint8_t hdr[FRAME_HDR];
    frame_header(hdr, command, len);
    size_t sent = 0;
    if (evbuffer_get_length(out) == 0) {
        struct iovec iov[2] = {{hdr, sizeof hdr}, {(void *)payload, len}};
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};
        ssize_t w = sendmsg(bufferevent_getfd(c->bev), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        /* An error is left to the bufferevent, which reports it on its write. */
        sent = w > 0 ? (size_t)w : 0;
    }
    if (sent < sizeof hdr)
        evbuffer_add(out, hdr + sent, sizeof hdr - sent);
    size_t done = sent > sizeof hdr ? sent - sizeof hdr : 0;
    if (done < len)
        evbuffer_add(out, (const uint8_t *)payload + done, len - done);
}

static void send_reply(client *c, uint32_t command, const client_Reply *r)
{
    uint8_t buf[65536];
    ember_enc e;
    ember_enc_init_fixed(&e, buf, sizeof buf);
    client_Reply_encode(&e, r);
    if (e.failed) {
        client_Reply err = {500, "reply too large", {NULL, 0}};
        ember_enc_init_fixed(&e, buf, sizeof buf);
        client_Reply_encode(&e, &err);
    }
    send_frame(c, command, buf, ember_enc_len(&e));
}

/* Reads nothing more; PUSH_BYE {reason}; closed once the output is out
 * (or after stall_ms at most, by the sweep). */
static void say_bye(client *c, const char *reason)
{
    c->closing = true;
    c->full_ms = now_ms();
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    uint8_t buf[256];
    ember_enc e;
    ember_enc_init_fixed(&e, buf, sizeof buf);
    client_Bye bye = {reason};
    client_Bye_encode(&e, &bye);
    /* Queued, not written at once: the client is freed once it is out. */
    frame_add(bufferevent_get_output(c->bev), client_PUSH_BYE, buf, ember_enc_len(&e));
}

/* A client that broke a bound: logged, the gate told, and closed — after
 * a PUSH_BYE with the reason when bye is set (it is still reading), at
 * once otherwise. */
static void drop(client *c, bool bye, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static void drop(client *c, bool bye, const char *fmt, ...)
{
    char why[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    srv_log(&c->n->s, "session %llu (%s): dropped: %s", (unsigned long long)c->session, c->peer,
            why);
    tell_gate(c);
    if (bye && !c->closing)
        say_bye(c, why);
    else
        client_reset(c);
}

/* After something was queued for c: over max_queued, net reads nothing
 * more from it until it drains to half (on_written). Replies can then add
 * at most max_inflight frames; pushes are bounded in remote_push. */
static void note_queued(client *c)
{
    size_t q = queued(c);
    if (c->closing || q <= (size_t)c->n->lim.max_queued)
        return;
    if (!c->out_full) {
        c->out_full = true;
        c->full_ms = now_ms();
        if (c->said_full)
            return;
        c->said_full = true;
        srv_log(&c->n->s, "session %llu (%s): %zu bytes queued, not reading it until it reads "
                "(dropped if it does not within %d ms)", (unsigned long long)c->session, c->peer,
                q, c->n->lim.stall_ms);
    }
}

/* ---- reading a client ------------------------------------------------- */

static bool may_read(const client *c)
{
    return !c->closing && !c->out_full &&
           (c->n->draining || c->inflight < (uint32_t)c->n->lim.max_inflight);
}

static void forwarded(const ember_outcome *o, const ember_bytes *ret, void *ud);

typedef struct fwd_ctx {
    netsrv *n;
    uint64_t session;
    uint32_t command;
} fwd_ctx;

/* Whether c may send a CHAT now (chat_per_s, chat_burst: a token bucket
 * in thousandths of a chat, topped up by the milliseconds since). A CHAT
 * is pushed to every player of the room: without the bound one client
 * would make net write to all of them as fast as it can send. The
 * refusals are logged at most once a second per client, with a count. */
static bool chat_allowed(client *c, uint64_t now)
{
    const cfg_client_limits *L = &c->n->lim;
    if (!L->chat_per_s)
        return true;
    uint64_t cap = (uint64_t)L->chat_burst * 1000u;
    c->chat_tokens += (now - c->chat_ms) * (uint64_t)L->chat_per_s;
    if (c->chat_tokens > cap)
        c->chat_tokens = cap;
    c->chat_ms = now;
    if (c->chat_tokens >= 1000u) {
        c->chat_tokens -= 1000u;
        return true;
    }
    c->chat_refused++;
    if (!c->chat_log_ms || now - c->chat_log_ms >= 1000) {
        srv_log(&c->n->s, "session %llu (%s): %llu CHAT(s) refused 429: over chat_per_s "
                "(%d a second, chat_burst %d)", (unsigned long long)c->session, c->peer,
                (unsigned long long)c->chat_refused, L->chat_per_s, L->chat_burst);
        c->chat_refused = 0;
        c->chat_log_ms = now;
    }
    return false;
}

/* One frame read from c: forwarded to the gate, or answered here. */
static void handle_frame(client *c, uint32_t command, const uint8_t *payload, size_t plen)
{
    netsrv *n = c->n;
    c->active_ms = now_ms();
    if (n->draining) {
        client_Reply r = {503, "server stopping", {NULL, 0}};
        send_reply(c, command, &r);
    } else if (command == client_PING) {
        client_Reply r = {0, "", {NULL, 0}};
        send_reply(c, command, &r);
    } else if (command == client_CHAT && !chat_allowed(c, c->active_ms)) {
        client_Reply r = {429, "too many chats", {NULL, 0}};
        send_reply(c, command, &r);
    } else {
        fwd_ctx *ctx = malloc(sizeof *ctx);
        if (!ctx) {
            client_Reply r = {503, "out of memory", {NULL, 0}};
            send_reply(c, command, &r);
            return;
        }
        ctx->n = n;
        ctx->session = c->session;
        ctx->command = command;
        ember_bytes data = {payload ? payload : (const uint8_t *)"", plen};
        n->inflight++;
        c->inflight++;
        gate_Gate_forward(n->gate, command, c->session, data, forwarded, ctx, NULL);
    }
}

/* Handles the complete frames in c's input while c is within its bounds,
 * then reads more or stops reading accordingly. 0, or -1 when c was freed. */
static int process(client *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (may_read(c)) {
        uint32_t len, command = 0;
        int head = frame_peek(in, &len, &command);
        if (head < 0)
            break;
        /* judged as soon as it is there: a short one would wait for bytes
         * that are not part of it */
        if (len < 4 || len > client_MAX_FRAME) {
            srv_log(&c->n->s, "session %llu (%s): bad frame length %u, closing",
                    (unsigned long long)c->session, c->peer, len);
            client_gone(c);
            return -1;
        }
        if (head > 0)
            break;
        if (command >= PUSH_IDS) {
            /* Its reply would carry a push's id: the client could not tell
             * the two apart (a reply read as PUSH_BYE would end it). */
            srv_log(&c->n->s, "session %llu (%s): command %u is a push's id (>= %u), closing",
                    (unsigned long long)c->session, c->peer, command, PUSH_IDS);
            client_gone(c);
            return -1;
        }
        if (evbuffer_get_length(in) < (size_t)len + 4)
            break;
        evbuffer_drain(in, FRAME_HDR);
        size_t plen = len - 4;
        handle_frame(c, command, evbuffer_pullup(in, (ssize_t)plen), plen);
        evbuffer_drain(in, plen);
        note_queued(c);
    }
    if (may_read(c))
        bufferevent_enable(c->bev, EV_READ);
    else
        bufferevent_disable(c->bev, EV_READ);
    return 0;
}

static void on_read(struct bufferevent *bev, void *ud)
{
    (void)bev;
    process(ud);
}

/* The output drained to half of max_queued (or, closing, to nothing). */
static void on_written(struct bufferevent *bev, void *ud)
{
    client *c = ud;
    (void)bev;
    if (c->closing) {
        if (queued(c) == 0)
            client_free(c);
        return;
    }
    if (c->out_full) {
        c->out_full = false;
        c->active_ms = now_ms();
        process(c);
    }
}

static void on_event(struct bufferevent *bev, short what, void *ud)
{
    client *c = ud;
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        client_gone(c);
}

/* ---- forwarding to the gate ------------------------------------------- */

static void forwarded(const ember_outcome *o, const ember_bytes *ret, void *ud)
{
    fwd_ctx *ctx = ud;
    netsrv *n = ctx->n;
    client *c = find(n, ctx->session);
    n->inflight--;
    if (c && !c->bev) {
        /* Gone: nobody to answer; it is forgotten with its last forward. */
        if (--c->inflight == 0)
            client_release(c);
    } else if (c) {
        client_Reply r;
        memset(&r, 0, sizeof r);
        if (o->status == EMBER_OK) {
            r.body = *ret;
        } else if (o->status == EMBER_RAISED && o->error_id == client_Refused_ID && o->error) {
            const client_Refused *why = o->error;
            r.code = why->code;
            r.message = why->why;
        } else {
            r.code = 500 + (int32_t)o->status;
            r.message = o->message ? o->message : ember_status_name(o->status);
        }
        c->inflight--;
        c->active_ms = now_ms();
        if (ctx->command == client_LOGIN && o->status == EMBER_OK) {
            c->logged_in = true;
        } else if (ctx->command == client_LOGOUT && o->status == EMBER_OK) {
            c->logged_in = false;
            c->since_ms = c->active_ms;
        }
        if (!c->closing) {
            send_reply(c, ctx->command, &r);
            note_queued(c);
            process(c);
        }
    }
    free(ctx);
    maybe_drained(n);
}

/* ---- accepting clients ------------------------------------------------ */

/* Clients refused at max_clients, logged at most once a second. */
static void log_refused(netsrv *n, uint64_t now)
{
    if (!n->refused || now - n->refused_log_ms < 1000)
        return;
    srv_log(&n->s, "refused %llu client(s): max_clients (%d) connected",
            (unsigned long long)n->refused, n->lim.max_clients);
    n->refused = 0;
    n->refused_log_ms = now;
}

/* At max_clients: PUSH_BYE and close. */
static void refuse_full(netsrv *n, evutil_socket_t fd)
{
    uint8_t buf[64];
    ember_enc e;
    ember_enc_init_fixed(&e, buf, sizeof buf);
    client_Bye bye = {"server full"};
    client_Bye_encode(&e, &bye);
    struct evbuffer *out = evbuffer_new();
    if (out) {
        /* A new socket's buffer is empty: the frame goes out whole. */
        frame_add(out, client_PUSH_BYE, buf, ember_enc_len(&e));
        evbuffer_write(out, fd);
        evbuffer_free(out);
    }
    evutil_closesocket(fd);
    n->refused++;
    log_refused(n, now_ms());
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *addr, int socklen, void *ud)
{
    netsrv *n = ud;
    (void)l;
    (void)socklen;
    if (n->n_clients >= (uint32_t)n->lim.max_clients) {
        refuse_full(n, fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* The kernel's send buffer would otherwise grow (tcp_wmem, up to 4 MiB)
     * for a client that does not read: cap it like net's own queue. */
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &n->lim.max_queued, sizeof n->lim.max_queued);
    client *c = calloc(1, sizeof *c);
    if (!c) {
        evutil_closesocket(fd);
        return;
    }
    c->n = n;
    c->session = ++n->next_session;
    c->since_ms = c->active_ms = c->chat_ms = now_ms();
    c->chat_tokens = (uint64_t)n->lim.chat_burst * 1000u;
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)addr;
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip);
        snprintf(c->peer, sizeof c->peer, "%s:%u", ip, ntohs(sin->sin_port));
    } else if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)addr;
        char ip[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof ip);
        snprintf(c->peer, sizeof c->peer, "[%s]:%u", ip, ntohs(sin6->sin6_port));
    }
    c->bev = bufferevent_socket_new(n->s.base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) {
        free(c);
        evutil_closesocket(fd);
        return;
    }
    c->next = n->clients;
    if (c->next)
        c->next->prev = c;
    n->clients = c;
    client **b = bucket(n, c->session);
    c->hnext = *b;
    *b = c;
    n->n_clients++;
    /* Input: one frame at most is buffered; output: told when it is down
     * to half of max_queued. */
    bufferevent_setwatermark(c->bev, EV_READ, 0, FRAME_HDR + client_MAX_FRAME);
    bufferevent_setwatermark(c->bev, EV_WRITE, (size_t)n->lim.max_queued / 2, 0);
    bufferevent_setcb(c->bev, on_read, on_written, on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void on_relisten(evutil_socket_t fd, short what, void *ud)
{
    netsrv *n = ud;
    (void)fd;
    (void)what;
    if (n->listener)
        evconnlistener_enable(n->listener);
}

/* accept() failed (EMFILE, ENFILE, ENOBUFS): pause accepting for 100 ms
 * instead of spinning on the readable listener. */
static void on_accept_error(struct evconnlistener *l, void *ud)
{
    netsrv *n = ud;
    int err = EVUTIL_SOCKET_ERROR();
    srv_log(&n->s, "accept: %s; accepting again in 100 ms", evutil_socket_error_to_string(err));
    evconnlistener_disable(l);
    struct timeval tv = {0, 100000};
    evtimer_add(n->relisten, &tv);
}

/* ---- deadlines -------------------------------------------------------- */

static void on_sweep(evutil_socket_t fd, short what, void *ud)
{
    netsrv *n = ud;
    (void)fd;
    (void)what;
    uint64_t now = now_ms();
    const cfg_client_limits *L = &n->lim;
    log_refused(n, now);
    client *c = n->clients;
    while (c) {
        client *next = c->next;
        if (!c->bev) {
            /* gone: waits for its forwards, with no deadline of its own */
        } else if (c->closing) {
            if (now - c->full_ms >= (uint64_t)L->stall_ms) {
                srv_log(&n->s, "session %llu (%s): closed with %zu bytes it did not read",
                        (unsigned long long)c->session, c->peer, queued(c));
                client_reset(c);
            }
        } else if (c->out_full && now - c->full_ms >= (uint64_t)L->stall_ms) {
            drop(c, false, "not reading its replies: %zu bytes queued for it for %d ms",
                 queued(c), L->stall_ms);
        } else if (!c->logged_in && !n->draining && now - c->since_ms >= (uint64_t)L->login_ms) {
            drop(c, true, "no login within %d ms", L->login_ms);
        } else if (L->idle_ms && c->inflight == 0 && may_read(c) && !n->draining &&
                   now - c->active_ms >= (uint64_t)L->idle_ms) {
            drop(c, true, "idle for %d ms", L->idle_ms);
        }
        c = next;
    }
}

/* Every deadline is checked by one sweep, a quarter of the shortest apart
 * (50 ms to 1 s). */
static int sweep_start(netsrv *n)
{
    int ms = n->lim.login_ms < n->lim.stall_ms ? n->lim.login_ms : n->lim.stall_ms;
    if (n->lim.idle_ms && n->lim.idle_ms < ms)
        ms = n->lim.idle_ms;
    ms /= 4;
    ms = ms < 50 ? 50 : ms > 1000 ? 1000 : ms;
    n->sweep = event_new(n->s.base, -1, EV_PERSIST, on_sweep, n);
    n->relisten = evtimer_new(n->s.base, on_relisten, n);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return n->sweep && n->relisten ? event_add(n->sweep, &tv) : -1;
}

/* Before srv_run frees the event base (drained), or after a failed start. */
static void timers_free(netsrv *n)
{
    if (n->sweep)
        event_free(n->sweep);
    if (n->relisten)
        event_free(n->relisten);
    n->sweep = n->relisten = NULL;
}

/* ---- Net service (called by the gate) --------------------------------- */

static void remote_push(ember_call *call, const net_list_u64 *sessions, uint32_t command,
                        ember_bytes data, void *ud)
{
    netsrv *n = ud;
    (void)call;
    for (uint32_t i = 0; i < sessions->n; i++) {
        client *c = find(n, sessions->items[i]);
        if (!c || !c->bev || c->closing)
            continue;
        send_frame(c, command, data.data, data.len);
        /* A client that does not read gets no more than twice max_queued. */
        size_t q = queued(c), max = (size_t)n->lim.max_queued;
        if (q > 2 * max)
            drop(c, false, "%zu bytes of pushes queued for it, more than twice max_queued (%zu)",
                 q, max);
        else
            note_queued(c);
    }
}

static const net_Net_handlers handlers = {.remote_push = remote_push};

/* ---- graceful stop: no new clients, finish forwards, flush, close ----- */

static void maybe_drained(netsrv *n)
{
    if (!n->draining || n->inflight)
        return;
    client *c = n->clients;
    while (c) {
        client *next = c->next;
        if (!c->closing) {
            /* Read nothing more; say so; close once the output is out. */
            say_bye(c, "server stopping");
            if (queued(c) == 0) {
                client_free(c); /* re-enters maybe_drained; list already updated */
                return;
            }
        }
        c = next;
    }
    if (!n->clients) {
        n->draining = false;
        timers_free(n);
        srv_drained(&n->s);
    }
}

static void net_stop(srv *s)
{
    netsrv *n = (netsrv *)s;
    if (n->listener) {
        evconnlistener_free(n->listener);
        n->listener = NULL;
    }
    n->draining = true;
    maybe_drained(n);
}

/* ---- setup ------------------------------------------------------------ */

/* The fd limit must fit max_clients (that max_clients x max_inflight fits
 * the link to the gate is checked with the config, cfg_load). */
static int check_limits(netsrv *n)
{
    uint32_t buckets = 64;
    while (buckets < (uint32_t)n->lim.max_clients)
        buckets *= 2;
    n->buckets = calloc(buckets, sizeof *n->buckets);
    if (!n->buckets)
        return -1;
    n->n_buckets = buckets;
    /* Each client is a descriptor: raise the soft limit as far as needed
     * and allowed; below it, accept pauses at EMFILE (on_accept_error). */
    struct rlimit rl;
    rlim_t want = (rlim_t)n->lim.max_clients + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < want)
            srv_log(&n->s, "open files limited to %llu (ulimit -n): fewer than max_clients (%d) "
                    "clients fit", (unsigned long long)rl.rlim_cur, n->lim.max_clients);
    }
    return 0;
}

int main(int argc, char **argv)
{
    static netsrv n;
    if (srv_init(&n.s, "net", argc, argv))
        return 1;
    n.lim = n.s.me->clients;
    if (check_limits(&n) || sweep_start(&n))
        return 1;
    ember_node *gate = srv_need(&n.s, "gate");
    if (!gate)
        return 1;
    if (net_Net_export(ember_node_exports(gate), &handlers, &n)) {
        srv_log(&n.s, "export: %s", ember_last_error());
        return 1;
    }
    n.gate = ember_node_root(gate);
    n.s.on_stop = net_stop;

    /* The host as the roots take theirs: an address of either family or a
     * name ("localhost"); only IPv4 literals were taken ("bad host ::1"). */
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char port[8];
    snprintf(port, sizeof port, "%d", n.s.me->netport);
    int gai = getaddrinfo(n.s.me->host, port, &hints, &res);
    if (gai != 0 || !res) {
        srv_log(&n.s, "cannot listen on %s:%d: %s", n.s.me->host, n.s.me->netport,
                gai_strerror(gai));
        return 1;
    }
    n.listener = evconnlistener_new_bind(n.s.base, on_accept, &n,
                                         LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 128,
                                         res->ai_addr, (int)res->ai_addrlen);
    int bind_errno = errno;
    freeaddrinfo(res);
    if (!n.listener) {
        srv_log(&n.s, "cannot listen on %s:%d: %s", n.s.me->host, n.s.me->netport,
                strerror(bind_errno));
        return 1;
    }
    evconnlistener_set_error_cb(n.listener, on_accept_error);
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    getsockname(evconnlistener_get_fd(n.listener), (struct sockaddr *)&bound, &blen);
    n.s.port = bound.ss_family == AF_INET6
                   ? ntohs(((const struct sockaddr_in6 *)&bound)->sin6_port)
                   : ntohs(((const struct sockaddr_in *)&bound)->sin_port);
    srv_log(&n.s, "clients on %s:%d (at most %d; %d commands in flight and %d bytes queued "
            "each; login %d ms, idle %d ms, stall %d ms; %d CHATs a second, %d at once)",
            n.s.me->host, n.s.port, n.lim.max_clients, n.lim.max_inflight, n.lim.max_queued,
            n.lim.login_ms, n.lim.idle_ms, n.lim.stall_ms, n.lim.chat_per_s, n.lim.chat_burst);
    int rc = srv_run(&n.s);
    while (n.clients)
        client_release(n.clients);
    if (n.listener)
        evconnlistener_free(n.listener);
    timers_free(&n);
    free(n.buckets);
    return rc;
}
