/*
 * bench/raw/raw_server.c — the raw baseline's server: listens on
 * 127.0.0.1 port 0, prints "port=N", echoes every request frame.
 *
 *   --bidir N     also keeps N requests of --size bytes in flight to each client
 *   --fanout N    waits for N clients, then broadcasts a request to all of them
 *                 and waits for every reply, round after round; prints the
 *                 measurement line (child replies per second) and exits
 *
 * Exits when its last client leaves (or, for --fanout, after measuring).
 */
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "../common/bench.h"
#include "rawconn.h"

typedef struct server {
    bench_opts o;
    struct event_base *base;
    int lfd;
    rconn **conns;
    unsigned n_conns, cap_conns, open_conns, ever;
    /* fanout */
    bench_window w;
    unsigned pending;
    int measuring_done;
} server;

static void on_close(rconn *c, void *ud);

static void broadcast_round(server *s)
{
    uint64_t now = bench_now_ns();
    s->pending = 0;
    for (unsigned i = 0; i < s->n_conns; i++) {
        if (!s->conns[i])
            continue;
        rconn_request(s->conns[i], now, s->o.size);
        rconn_flush(s->conns[i]);
        s->pending++;
    }
}

static void on_reply(rconn *c, const uint8_t *payload, uint32_t len, void *ud)
{
    server *s = ud;
    (void)len;
    if (s->o.bidir) {
        rconn_request(c, 0, s->o.size);
        return;
    }
    if (!s->o.fanout || s->measuring_done)
        return;
    uint64_t now = bench_now_ns();
    if (bench_window_record(&s->w, rconn_ts(payload), now)) {
        s->measuring_done = 1;
        bench_window_print(&s->w);
        event_base_loopbreak(s->base);
        return;
    }
    if (--s->pending == 0)
        broadcast_round(s);
}

static void free_later(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    rconn_free(arg);
}

static void on_close(rconn *c, void *ud)
{
    server *s = ud;
    for (unsigned i = 0; i < s->n_conns; i++)
        if (s->conns[i] == c)
            s->conns[i] = NULL;
    struct timeval zero = {0, 0};
    event_base_once(s->base, -1, EV_TIMEOUT, free_later, c, &zero);
    if (--s->open_conns == 0 && !s->o.fanout)
        event_base_loopbreak(s->base);
    if (s->o.fanout && !s->measuring_done)
        bench_die("raw_server: a child left during the fanout");
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    server *s = arg;
    (void)what;
    for (int i = 0; i < 256; i++) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        bench_sock_tune(fd);
        if (s->n_conns == s->cap_conns) {
            s->cap_conns = s->cap_conns ? s->cap_conns * 2 : 16;
            s->conns = realloc(s->conns, s->cap_conns * sizeof *s->conns);
            if (!s->conns)
                bench_die("raw_server: out of memory");
        }
        rconn *c = rconn_new(s->base, fd, on_reply, on_close, s);
        s->conns[s->n_conns++] = c;
        s->open_conns++;
        s->ever++;
        if (s->o.bidir) {
            for (unsigned k = 0; k < s->o.bidir; k++)
                rconn_request(c, 0, s->o.size);
            rconn_flush(c);
        }
        if (s->o.fanout && s->ever == s->o.fanout) {
            bench_window_start(&s->w, &s->o);
            broadcast_round(s);
        }
    }
}

int main(int argc, char **argv)
{
    static server s;
    bench_parse(&s.o, argc, argv, "raw_server");
    bench_raise_nofile(0);
    s.base = event_base_new();
    if (!s.base)
        bench_die("event_base_new failed");
    int port;
    s.lfd = bench_listen(&port);
    struct event *lev = event_new(s.base, s.lfd, EV_READ | EV_PERSIST, on_accept, &s);
    event_add(lev, NULL);
    struct event *dl = bench_deadline(s.base, &s.o, 120, "raw_server");
    bench_announce_port(port);
    event_base_dispatch(s.base);
    for (unsigned i = 0; i < s.n_conns; i++)
        rconn_free(s.conns[i]);
    free(s.conns);
    event_free(lev);
    event_free(dl);
    close(s.lfd);
    event_base_free(s.base);
    return 0;
}
