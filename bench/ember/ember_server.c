/*
 * bench/ember/ember_server.c — the ember peer's server: an ember root on
 * 127.0.0.1 port 0 that serves bench.Echo through idlc's skeleton. Prints
 * "port=N", then runs until its last child leaves.
 *
 *   --bidir N     keeps N calls of --size bytes in flight to each child
 *                 (bench.Peer.echo) while the child calls us
 *   --fanout N    waits for N children, then broadcasts Peer.echo to all of
 *                 them with the generated _broadcast helper, round after
 *                 round; prints the measurement line (child replies per
 *                 second) and exits
 *   --idle --conns N   waits for N children, prints the root's heap growth
 *                 per child (bytes_per_child=) and exits
 *   --allocs      counts allocations per served call in steady state and
 *                 prints allocs_per_call= after the measured interval
 */
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>
#include <ember/ember.h>

#include "../common/bench.h"
#include "bench.h"
#include "counting.h"

typedef struct server {
    bench_opts o;
    struct event_base *base;
    ember_root *root;
    char *payload;
    unsigned children, joined;
    int done;
    /* fanout */
    bench_window w;
    unsigned pending;
    uint64_t t_round;
    /* idle */
    size_t heap0, rss0;
    int64_t live0;
    struct event *settle;
    /* allocs */
    uint64_t served, t_first, t_from, t_to, served0;
    bench_counts c0;
} server;

static void on_fan_reply(const ember_outcome *o, const char *const *ret, void *ud);

static void finish(server *s)
{
    s->done = 1;
    event_base_loopbreak(s->base);
}

static void remote_echo(ember_call *call, const char *str, void *ud)
{
    server *s = ud;
    bench_Echo_echo_reply(call, str);
    if (!s->o.allocs || s->done)
        return;
    /* The interval starts a warm-up after the first call and stays inside the
     * client's (which started earlier): 80 % of --secs. */
    uint64_t now = bench_now_ns();
    if (!s->t_first) {
        s->t_first = now;
        s->t_from = now + (uint64_t)(s->o.warmup * 1e9);
        s->t_to = s->t_from + (uint64_t)(s->o.secs * 0.8e9);
    }
    if (now >= s->t_from && !s->served0) {
        s->served0 = s->served + 1;
        s->c0 = bench_counting_get();
    }
    s->served++;
    if (now >= s->t_to && s->served0) {
        bench_counts c = bench_counting_get();
        double calls = (double)(s->served - s->served0);
        printf("allocs_per_call=%.3f libevent_allocs_per_call=%.3f\n",
               (double)(c.ember_allocs - s->c0.ember_allocs) / calls,
               (double)(c.event_allocs - s->c0.event_allocs) / calls);
        fflush(stdout);
        s->done = 1;   /* keep serving until the client leaves */
    }
}

/* bidir: the root's own calls to a child. */
static void on_peer_echo(const ember_outcome *o, const char *const *ret, void *ud)
{
    (void)ret;
    ember_child *c = ud;
    if (o->status != EMBER_OK)
        return;   /* the child is leaving */
    server *s = ember_child_data(c);
    bench_Peer_echo(ember_child_ref(c), s->payload, on_peer_echo, c, NULL);
}

static void broadcast_round(server *s)
{
    s->t_round = bench_now_ns();
    int n = bench_Peer_echo_broadcast(s->root, NULL, NULL, s->payload,
                                      on_fan_reply, s, NULL);
    if (n <= 0)
        bench_die("ember_server: broadcast reached no child");
    s->pending = (unsigned)n;
}

static void on_fan_reply(const ember_outcome *o, const char *const *ret, void *ud)
{
    server *s = ud;
    (void)ret;
    if (s->done)
        return;
    if (o->status != EMBER_OK)
        bench_die("ember_server: fanout call failed: %s %s",
                  ember_status_name(o->status), o->message ? o->message : "");
    if (bench_window_record(&s->w, s->t_round, bench_now_ns())) {
        bench_window_print(&s->w);
        finish(s);
        return;
    }
    if (--s->pending == 0)
        broadcast_round(s);
}

static void on_join(ember_root *r, ember_child *c, void *ud)
{
    server *s = ud;
    (void)r;
    s->children++;
    s->joined++;
    ember_child_set_data(c, s);
    for (unsigned k = 0; k < s->o.bidir; k++)
        bench_Peer_echo(ember_child_ref(c), s->payload, on_peer_echo, c, NULL);
    if (s->o.fanout && s->joined == s->o.fanout) {
        bench_window_start(&s->w, &s->o);
        broadcast_round(s);
    }
    if (s->o.idle && s->joined == s->o.conns) {
        struct timeval settle = {0, 500000};
        evtimer_add(s->settle, &settle);
    }
}

static void on_leave(ember_root *r, ember_child *c, const char *reason, void *ud)
{
    server *s = ud;
    (void)r;
    (void)c;
    (void)reason;
    if (--s->children == 0 && !s->o.fanout && !s->o.idle)
        finish(s);
}

static void on_settled(evutil_socket_t fd, short what, void *arg)
{
    server *s = arg;
    (void)fd;
    (void)what;
    size_t n = ember_root_child_count(s->root);
    if (n == 0)
        bench_die("ember_server: no children");
    bench_counts c = bench_counting_get();
    printf("bytes_per_child=%.0f ember_bytes_per_child=%.0f rss_per_child=%.0f children=%zu\n",
           ((double)bench_heap_in_use() - (double)s->heap0) / (double)n,
           (double)(c.ember_live - s->live0) / (double)n,
           ((double)bench_rss() - (double)s->rss0) / (double)n, n);
    fflush(stdout);
    finish(s);
}

int main(int argc, char **argv)
{
    static server s;
    bench_parse(&s.o, argc, argv, "ember_server");
    bench_raise_nofile(0);
    /* The counting hooks cost a malloc_usable_size per allocation: only
     * for the workloads that read them. */
    if (s.o.allocs || s.o.idle)
        bench_counting_install();
    ember_set_log_level(EMBER_LOG_ERROR);
    s.payload = bench_payload(s.o.size);

    s.base = event_base_new();
    if (!s.base)
        bench_die("event_base_new failed");
    ember_root_config cfg;
    ember_root_config_default(&cfg);
    cfg.on_join = on_join;
    cfg.on_leave = on_leave;
    cfg.ud = &s;
    s.root = ember_root_new(s.base, &cfg);
    if (!s.root)
        bench_die("ember_root_new: %s", ember_last_error());
    static const bench_Echo_handlers h = {.remote_echo = remote_echo};
    if (bench_Echo_export(ember_root_exports(s.root), &h, &s))
        bench_die("bench_Echo_export: %s", ember_last_error());
    s.settle = evtimer_new(s.base, on_settled, &s);
    if (ember_root_listen(s.root, "127.0.0.1:0"))
        bench_die("ember_root_listen: %s", ember_last_error());
    s.heap0 = bench_heap_in_use();
    s.rss0 = bench_rss();
    s.live0 = bench_counting_get().ember_live;

    struct event *dl = bench_deadline(s.base, &s.o, 120, "ember_server");
    bench_announce_port(ember_root_port(s.root));
    event_base_dispatch(s.base);

    ember_root_free(s.root);
    event_free(dl);
    event_free(s.settle);
    event_base_free(s.base);
    free(s.payload);
    return 0;
}
