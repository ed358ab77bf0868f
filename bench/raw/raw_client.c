/*
 * bench/raw/raw_client.c — the raw baseline's client: connects to the
 * server at --port, keeps --inflight requests of --size bytes in flight,
 * warms up, measures for --secs and prints the measurement line.
 *
 *   --echo-only --conns N   opens N connections that only answer the
 *                           server's requests (the fanout children) and
 *                           exits when the server closes them
 *
 *   --calls N               makes exactly N calls (no clock, no window),
 *                           prints calls=N and exits
 *
 * With a server in --bidir mode, the requests it served in the interval
 * count too: the line reports both directions together.
 */
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>

#include "../common/bench.h"
#include "rawconn.h"

typedef struct client {
    bench_opts o;
    struct event_base *base;
    bench_window w;
    bench_count count;
    int started, done;
    uint64_t served0;
    unsigned open;
} client;

static void on_reply(rconn *c, const uint8_t *payload, uint32_t len, void *ud)
{
    client *cl = ud;
    (void)len;
    if (cl->done)
        return;
    if (cl->o.calls) {
        int more;
        if (bench_count_done(&cl->count, &more)) {
            cl->done = 1;
            event_base_loopbreak(cl->base);
        } else if (more) {
            rconn_request(c, 0, cl->o.size);
        }
        return;
    }
    uint64_t now = bench_now_ns();
    if (!cl->started && now >= cl->w.t_measure) {
        cl->started = 1;
        cl->served0 = rconn_served(c);
    }
    if (bench_window_record(&cl->w, rconn_ts(payload), now)) {
        cl->done = 1;
        cl->w.peer_calls = rconn_served(c) - cl->served0;
        event_base_loopbreak(cl->base);
        return;
    }
    rconn_request(c, now, cl->o.size);
}

static void on_close(rconn *c, void *ud)
{
    client *cl = ud;
    (void)c;
    if (--cl->open == 0)
        event_base_loopbreak(cl->base);
    if (!cl->o.echo_only && !cl->done)
        bench_die("raw_client: the server closed the connection");
}

int main(int argc, char **argv)
{
    static client cl;
    bench_parse(&cl.o, argc, argv, "raw_client");
    if (!cl.o.port)
        bench_die("raw_client: --port is required");
    bench_raise_nofile(0);
    cl.base = event_base_new();
    if (!cl.base)
        bench_die("event_base_new failed");
    unsigned n = cl.o.echo_only ? cl.o.conns : 1;
    rconn **conns = calloc(n, sizeof *conns);
    if (!conns)
        bench_die("raw_client: out of memory");
    for (unsigned i = 0; i < n; i++) {
        conns[i] = rconn_new(cl.base, bench_connect(cl.o.host, cl.o.port),
                             on_reply, on_close, &cl);
        cl.open++;
    }
    struct event *dl = bench_deadline(cl.base, &cl.o, 60, "raw_client");
    if (cl.o.calls) {
        for (unsigned long k = bench_count_start(&cl.count, &cl.o); k > 0; k--)
            rconn_request(conns[0], 0, cl.o.size);
        rconn_flush(conns[0]);
    } else if (!cl.o.echo_only) {
        bench_window_start(&cl.w, &cl.o);
        uint64_t now = bench_now_ns();
        for (unsigned k = 0; k < cl.o.inflight; k++)
            rconn_request(conns[0], now, cl.o.size);
        rconn_flush(conns[0]);
    }
    event_base_dispatch(cl.base);
    if (cl.o.calls)
        printf("calls=%lu\n", cl.count.done);
    else if (!cl.o.echo_only)
        bench_window_print(&cl.w);
    for (unsigned i = 0; i < n; i++)
        rconn_free(conns[i]);
    free(conns);
    event_free(dl);
    event_base_free(cl.base);
    return 0;
}
