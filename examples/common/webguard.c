/* webguard.c — see webguard.h. */
#include "webguard.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#define WG_MAX_HEADERS (16 * 1024)
#define WG_MAX_BODY (64 * 1024)
/* Input a client may have waiting: evhttp keeps reading while it writes an
 * answer, so a client that pipelines requests and never reads the answers
 * would otherwise fill memory at the speed of loopback. */
#define WG_MAX_INPUT (WG_MAX_HEADERS + WG_MAX_BODY + 64 * 1024)

/* A client that has sent something: those that never do are evhttp's
 * (its timeout closes them), so nothing is kept for them. */
typedef struct wg_conn {
    struct wg_conn *next;
    struct bufferevent *bev;
    struct evhttp_connection *evcon;
    struct event *deadline; /* armed while a request is arriving */
} wg_conn;

static struct {
    struct event_base *base;
    const char *who;
    void (*cb)(struct evhttp_request *, void *);
    void *arg;
    wg_conn *conns;
    unsigned n;
} G;

static wg_conn *find(const struct bufferevent *bev)
{
    for (wg_conn *k = G.conns; k; k = k->next)
        if (k->bev == bev)
            return k;
    return NULL;
}

/* evhttp frees the connection (any reason): its record goes with it. */
static void on_closed(struct evhttp_connection *evcon, void *ud)
{
    wg_conn *k = ud;
    (void)evcon;
    for (wg_conn **pp = &G.conns; *pp; pp = &(*pp)->next)
        if (*pp == k) {
            *pp = k->next;
            break;
        }
    G.n--;
    event_free(k->deadline);
    free(k);
}

/* The connection is shut down, not freed: evhttp then reads EOF and frees
 * it its own way, which keeps a request a handler still holds alive. */
static void on_deadline(evutil_socket_t fd, short what, void *ud)
{
    wg_conn *k = ud;
    (void)fd;
    (void)what;
    fprintf(stderr, "[%s] warn: web: a client's request took over %d s to arrive: "
            "dropped\n", G.who, WG_REQUEST_S);
    shutdown(bufferevent_getfd(k->bev), SHUT_RDWR);
}

/* The record of the connection bev belongs to (evhttp's connection is the
 * bufferevent's callback argument), made on its first bytes; NULL when over
 * the cap. */
static wg_conn *attach(struct bufferevent *bev, wg_conn *k)
{
    void *evcon = NULL;
    bufferevent_getcb(bev, NULL, NULL, NULL, &evcon);
    if (!evcon)
        return NULL;
    if (k && k->evcon == evcon)
        return k;
    if (!k) {
        k = G.n < WG_MAX_CONNS ? calloc(1, sizeof *k) : NULL;
        if (k && !(k->deadline = evtimer_new(G.base, on_deadline, k))) {
            free(k);
            k = NULL;
        }
        if (!k)
            return NULL;
        k->bev = bev;
        k->next = G.conns;
        G.conns = k;
        G.n++;
    }
    /* New, or a record whose connection went without telling (a new
     * bufferevent at the old one's address): it is this connection's now. */
    evtimer_del(k->deadline);
    k->evcon = evcon;
    evhttp_connection_set_closecb(evcon, on_closed, k);
    return k;
}

static void arm(wg_conn *k)
{
    if (!evtimer_pending(k->deadline, NULL)) {
        struct timeval tv = {WG_REQUEST_S, 0};
        evtimer_add(k->deadline, &tv);
    }
}

/* Bytes came in (inside the read of bev, which is alive): a request that
 * starts arms its deadline. */
static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *ud)
{
    struct bufferevent *bev = ud;
    if (!info->n_added)
        return;
    wg_conn *k = attach(bev, find(bev));
    if (!k && G.n >= WG_MAX_CONNS)
        fprintf(stderr, "[%s] warn: web: %d clients at once: one more dropped\n",
                G.who, WG_MAX_CONNS);
    else if (!k)
        fprintf(stderr, "[%s] warn: web: out of memory for a client's record: dropped\n",
                G.who);
    else if (evbuffer_get_length(buf) > WG_MAX_INPUT)
        fprintf(stderr, "[%s] warn: web: a client has over %d bytes waiting (it does "
                "not read its answers): dropped\n", G.who, WG_MAX_INPUT);
    else {
        arm(k);
        return;
    }
    shutdown(bufferevent_getfd(bev), SHUT_RDWR); /* evhttp reads EOF, closes */
    evbuffer_drain(buf, evbuffer_get_length(buf));
}

static struct bufferevent *new_bev(struct event_base *base, void *ud)
{
    (void)ud;
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (bev && !evbuffer_add_cb(bufferevent_get_input(bev), on_input, bev)) {
        bufferevent_free(bev);
        return NULL; /* evhttp makes its own */
    }
    return bev;
}

/* A request arrived whole: its deadline is met. */
static void on_request(struct evhttp_request *req, void *ud)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    wg_conn *k = evcon ? find(evhttp_connection_get_bufferevent(evcon)) : NULL;
    (void)ud;
    if (k) {
        evtimer_del(k->deadline);
        /* Bytes after it are the next request's: its clock runs already. */
        if (evbuffer_get_length(bufferevent_get_input(k->bev)))
            arm(k);
    }
    G.cb(req, G.arg);
}

void wg_serve(struct evhttp *http, struct event_base *base, const char *who,
              void (*cb)(struct evhttp_request *, void *), void *arg)
{
    G.base = base;
    G.who = who;
    G.cb = cb;
    G.arg = arg;
    evhttp_set_max_headers_size(http, WG_MAX_HEADERS);
    evhttp_set_max_body_size(http, WG_MAX_BODY);
    evhttp_set_timeout(http, WG_REQUEST_S);
    evhttp_set_bevcb(http, new_bev, NULL);
    evhttp_set_gencb(http, on_request, NULL);
}
