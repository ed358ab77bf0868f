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
 *   net [NAME] CONFIG.json       (listens on the server's "netport")
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "frame.h"
#include "gate.h"
#include "net.h"
#include "server.h"

typedef struct client {
    struct netsrv *n;
    uint64_t session;
    struct bufferevent *bev;
    bool closing;             /* freed once its output is flushed */
    struct client *next;
} client;

typedef struct netsrv {
    srv s;
    ember_ref *gate;
    struct evconnlistener *listener;
    client *clients;
    uint64_t next_session;
    uint32_t inflight;        /* forwards waiting for the gate */
    bool draining;
} netsrv;

static client *find(netsrv *n, uint64_t session)
{
    for (client *c = n->clients; c; c = c->next)
        if (c->session == session)
            return c;
    return NULL;
}

static void maybe_drained(netsrv *n);

static void client_free(client *c)
{
    netsrv *n = c->n;
    for (client **p = &n->clients; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    bufferevent_free(c->bev);
    free(c);
    maybe_drained(n);
}

/* The client is gone (or dropped): the gate logs its session out. */
static void client_gone(client *c)
{
    if (!c->n->s.stopping)
        gate_Gate_closed(c->n->gate, c->session);
    client_free(c);
}

static void send_frame(client *c, uint32_t command, const void *payload, size_t len)
{
    frame_add(bufferevent_get_output(c->bev), command, payload, len);
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

/* ---- forwarding to the gate ------------------------------------------- */

typedef struct fwd_ctx {
    netsrv *n;
    uint64_t session;
    uint32_t command;
} fwd_ctx;

static void forwarded(const ember_outcome *o, const ember_bytes *ret, void *ud)
{
    fwd_ctx *ctx = ud;
    netsrv *n = ctx->n;
    client *c = find(n, ctx->session);
    if (c) {
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
        send_reply(c, ctx->command, &r);
    }
    free(ctx);
    n->inflight--;
    maybe_drained(n);
}

static void on_read(struct bufferevent *bev, void *ud)
{
    client *c = ud;
    netsrv *n = c->n;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        uint32_t len, command;
        if (frame_peek(in, &len, &command))
            return;
        if (len < 4 || len > client_MAX_FRAME) {
            srv_log(&n->s, "session %llu: bad frame length %u, closing",
                    (unsigned long long)c->session, len);
            client_gone(c);
            return;
        }
        if (evbuffer_get_length(in) < (size_t)len + 4)
            return;
        evbuffer_drain(in, FRAME_HDR);
        size_t plen = len - 4;
        uint8_t *payload = evbuffer_pullup(in, (ssize_t)plen);
        if (n->draining || c->closing) {
            client_Reply r = {503, "server stopping", {NULL, 0}};
            send_reply(c, command, &r);
        } else {
            fwd_ctx *ctx = malloc(sizeof *ctx);
            ctx->n = n;
            ctx->session = c->session;
            ctx->command = command;
            ember_bytes data = {payload ? payload : (const uint8_t *)"", plen};
            n->inflight++;
            gate_Gate_forward(n->gate, command, c->session, data, forwarded, ctx, NULL);
        }
        evbuffer_drain(in, plen);
    }
}

static void on_flushed(struct bufferevent *bev, void *ud)
{
    client *c = ud;
    (void)bev;
    if (c->closing)
        client_free(c);
}

static void on_event(struct bufferevent *bev, short what, void *ud)
{
    client *c = ud;
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        client_gone(c);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *addr, int socklen, void *ud)
{
    netsrv *n = ud;
    (void)l;
    (void)addr;
    (void)socklen;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    client *c = calloc(1, sizeof *c);
    c->n = n;
    c->session = ++n->next_session;
    c->bev = bufferevent_socket_new(n->s.base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) {
        free(c);
        evutil_closesocket(fd);
        return;
    }
    c->next = n->clients;
    n->clients = c;
    bufferevent_setcb(c->bev, on_read, on_flushed, on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* ---- Net service (called by the gate) --------------------------------- */

static void remote_push(ember_call *call, const net_list_u64 *sessions, uint32_t command,
                        ember_bytes data, void *ud)
{
    netsrv *n = ud;
    (void)call;
    for (uint32_t i = 0; i < sessions->n; i++) {
        client *c = find(n, sessions->items[i]);
        if (c && !c->closing)
            send_frame(c, command, data.data, data.len);
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
            c->closing = true;
            bufferevent_disable(c->bev, EV_READ);
            uint8_t buf[128];
            ember_enc e;
            ember_enc_init_fixed(&e, buf, sizeof buf);
            client_Bye bye = {"server stopping"};
            client_Bye_encode(&e, &bye);
            send_frame(c, client_PUSH_BYE, buf, ember_enc_len(&e));
            if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
                client_free(c); /* re-enters maybe_drained; list already updated */
                return;
            }
        }
        c = next;
    }
    if (!n->clients) {
        n->draining = false;
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

int main(int argc, char **argv)
{
    static netsrv n;
    if (srv_init(&n.s, "net", argc, argv))
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

    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)n.s.me->netport);
    if (inet_pton(AF_INET, n.s.me->host, &sin.sin_addr) != 1) {
        srv_log(&n.s, "bad host %s", n.s.me->host);
        return 1;
    }
    n.listener = evconnlistener_new_bind(n.s.base, on_accept, &n,
                                         LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 128,
                                         (struct sockaddr *)&sin, sizeof sin);
    if (!n.listener) {
        srv_log(&n.s, "cannot listen on %s:%d", n.s.me->host, n.s.me->netport);
        return 1;
    }
    struct sockaddr_in bound;
    socklen_t blen = sizeof bound;
    getsockname(evconnlistener_get_fd(n.listener), (struct sockaddr *)&bound, &blen);
    n.s.port = ntohs(bound.sin_port);
    srv_log(&n.s, "clients on %s:%d", n.s.me->host, n.s.port);
    int rc = srv_run(&n.s);
    while (n.clients)
        client_free(n.clients);
    if (n.listener)
        evconnlistener_free(n.listener);
    return rc;
}
