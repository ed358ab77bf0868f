/*
 * bench/ember/ember_client.c — the ember peer's client: ember nodes that
 * register with the root at --port and call bench.Echo.echo through idlc's
 * stub, --inflight calls in flight, then print the measurement line. Every
 * node serves bench.Peer (the root's calls in bidir and fanout).
 *
 *   --echo-only --conns N   N nodes that only serve Peer.echo (fanout
 *                           children); exit once the root has gone
 *   --idle --conns N        N idle nodes (idle10k); exit once the root has gone
 *   --allocs                prints client_allocs_per_call= instead
 *   --calls N               makes exactly N calls (no clock, no window),
 *                           prints calls=N and exits
 *
 * Against a server in --bidir mode the Peer calls served in the interval
 * count too: the line reports both directions together.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>
#include <ember/ember.h>

#include "../common/bench.h"
#include "bench.h"
#include "counting.h"

typedef struct client client;

typedef struct slot {
    client *cl;
    uint64_t t_sent;
} slot;

/* A node, as its state callback sees it. */
typedef struct member {
    client *cl;
    bool up;                    /* registered now */
} member;

struct client {
    bench_opts o;
    struct event_base *base;
    ember_node **nodes;
    member *members;
    unsigned up;                /* nodes registered now */
    char *payload;
    slot *slots;
    bench_window w;
    bench_count count;
    int started, done, calling;
    uint64_t served, served0;
    bench_counts c0;
};

static void on_echo(const ember_outcome *o, const char *const *ret, void *ud);

/* Calls Echo.echo on the first node's root for slot sl, sent at now. */
static void send_echo(client *cl, slot *sl, uint64_t now)
{
    sl->t_sent = now;
    if (!bench_Echo_echo(ember_node_root(cl->nodes[0]), cl->payload, on_echo, sl, NULL))
        bench_die("ember_client: call did not start: %s", ember_last_error());
}

static void on_echo(const ember_outcome *o, const char *const *ret, void *ud)
{
    slot *sl = ud;
    client *cl = sl->cl;
    (void)ret;
    if (cl->done)
        return;
    if (o->status != EMBER_OK)
        bench_die("ember_client: call failed: %s %s", ember_status_name(o->status),
                  o->message ? o->message : "");
    if (cl->o.calls) {
        int more;
        if (bench_count_done(&cl->count, &more)) {
            cl->done = 1;
            event_base_loopbreak(cl->base);
        } else if (more) {
            send_echo(cl, sl, 0);
        }
        return;
    }
    uint64_t now = bench_now_ns();
    if (!cl->started && now >= cl->w.t_measure) {
        cl->started = 1;
        cl->served0 = cl->served;
        cl->c0 = bench_counting_get();
    }
    if (bench_window_record(&cl->w, sl->t_sent, now)) {
        cl->done = 1;
        cl->w.peer_calls = cl->served - cl->served0;
        event_base_loopbreak(cl->base);
        return;
    }
    send_echo(cl, sl, now);
}

static void remote_peer_echo(ember_call *call, const char *s, void *ud)
{
    client *cl = ud;
    cl->served++;
    bench_Peer_echo_reply(call, s);
}

static void start_calls(client *cl)
{
    cl->calling = 1;
    if (cl->o.calls) {
        unsigned long n = bench_count_start(&cl->count, &cl->o);
        for (unsigned long k = 0; k < n; k++) {
            cl->slots[k].cl = cl;
            send_echo(cl, &cl->slots[k], 0);
        }
        return;
    }
    bench_window_start(&cl->w, &cl->o);
    uint64_t now = bench_now_ns();
    for (unsigned k = 0; k < cl->o.inflight; k++) {
        cl->slots[k].cl = cl;
        send_echo(cl, &cl->slots[k], now);
    }
}

/* A node the root turned away before it registered (thousands connecting
 * at once pass its max_unregistered) retries by itself and counts only
 * once registered. */
static void on_state(ember_node *n, ember_node_state st, const char *reason, void *ud)
{
    member *m = ud;
    client *cl = m->cl;
    (void)n;
    if (st == EMBER_NODE_REGISTERED && !m->up) {
        m->up = true;
        if (++cl->up == cl->o.conns && !cl->o.echo_only && !cl->o.idle &&
            !cl->calling)
            start_calls(cl);
    } else if (st == EMBER_NODE_LOST && m->up) {
        m->up = false;
        /* The root has gone: the fanout and idle children end here. */
        if (!cl->o.echo_only && !cl->o.idle && !cl->done)
            bench_die("ember_client: lost the root: %s", reason ? reason : "");
        if (--cl->up == 0)
            event_base_loopbreak(cl->base);
    }
}

int main(int argc, char **argv)
{
    static client cl;
    bench_parse(&cl.o, argc, argv, "ember_client");
    if (!cl.o.port)
        bench_die("ember_client: --port is required");
    bench_raise_nofile(0);
    /* The counting hooks cost a malloc_usable_size per allocation: only
     * when counting. */
    if (cl.o.allocs)
        bench_counting_install();
    ember_set_log_level(EMBER_LOG_ERROR);
    cl.payload = bench_payload(cl.o.size);
    cl.slots = calloc(cl.o.inflight, sizeof *cl.slots);
    cl.nodes = calloc(cl.o.conns, sizeof *cl.nodes);
    cl.members = calloc(cl.o.conns, sizeof *cl.members);
    if (!cl.slots || !cl.nodes || !cl.members)
        bench_die("out of memory");

    cl.base = event_base_new();
    if (!cl.base)
        bench_die("event_base_new failed");
    char addr[64];
    snprintf(addr, sizeof addr, "%s:%d", cl.o.host, cl.o.port);
    ember_node_config cfg;
    ember_node_config_default(&cfg);
    cfg.on_state = on_state;
    static const bench_Peer_handlers h = {.remote_echo = remote_peer_echo};
    for (unsigned i = 0; i < cl.o.conns; i++) {
        char name[32];
        snprintf(name, sizeof name, "bench%u", i);
        cl.members[i].cl = &cl;
        cfg.ud = &cl.members[i];
        cl.nodes[i] = ember_node_new(cl.base, name, &cfg);
        if (!cl.nodes[i])
            bench_die("ember_node_new: %s", ember_last_error());
        if (bench_Peer_export(ember_node_exports(cl.nodes[i]), &h, &cl))
            bench_die("bench_Peer_export: %s", ember_last_error());
        if (ember_node_connect(cl.nodes[i], addr))
            bench_die("ember_node_connect: %s", ember_last_error());
    }
    struct event *dl = bench_deadline(cl.base, &cl.o, 120, "ember_client");
    event_base_dispatch(cl.base);

    if (cl.o.allocs) {
        bench_counts c = bench_counting_get();
        double calls = (double)cl.w.calls;
        printf("client_allocs_per_call=%.3f client_libevent_allocs_per_call=%.3f\n",
               (double)(c.ember_allocs - cl.c0.ember_allocs) / calls,
               (double)(c.event_allocs - cl.c0.event_allocs) / calls);
    } else if (cl.o.calls) {
        printf("calls=%lu\n", cl.count.done);
    } else if (!cl.o.echo_only && !cl.o.idle) {
        bench_window_print(&cl.w);
    }
    fflush(stdout);
    for (unsigned i = 0; i < cl.o.conns; i++)
        ember_node_free(cl.nodes[i]);
    event_free(dl);
    event_base_free(cl.base);
    free(cl.nodes);
    free(cl.members);
    free(cl.slots);
    free(cl.payload);
    return 0;
}
