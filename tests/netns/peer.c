/*
 * peer.c — a small ember process for the network-namespace test (run.sh).
 *
 *   peer [--listen ADDR] [--connect NAME@ADDR] [--secs N]
 *
 * With --listen it is a root serving method 100 (echo) and printing a line
 * for every child that joins or leaves. With --connect it is a node named
 * NAME that keeps calling the root's method 100 (about 50 calls a second)
 * and prints every state change and, every second, its call books:
 *
 *   state registered|lost|... reason
 *   books sent=N ok=N failed=N pending=N
 *   join NAME / leave NAME reason
 *
 * It exits after --secs seconds (default 120) or on SIGTERM, printing the
 * final books; the exit status is 1 if a call was lost (sent != ok + failed
 * once everything has ended). Heartbeats are short (200 ms, dead after
 * 1000 ms) so that a cut link is noticed quickly.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include <ember/ember.h>

static struct event_base *base;
static ember_node *node;
static long sent, ok, failed;
static bool stopping;

static void echo(ember_call *k, uint32_t id, const void *p, size_t n, void *ud)
{
    (void)id;
    (void)ud;
    ember_call_reply_raw(k, p, n);
}

static void on_join(ember_root *r, ember_child *c, void *ud)
{
    (void)r;
    (void)ud;
    printf("join %s\n", ember_child_name(c));
}

static void on_leave(ember_root *r, ember_child *c, const char *why, void *ud)
{
    (void)r;
    (void)ud;
    printf("leave %s %s\n", ember_child_name(c), why ? why : "");
}

static void on_state(ember_node *n, ember_node_state st, const char *why, void *ud)
{
    (void)n;
    (void)ud;
    printf("state %s %s\n", ember_node_state_name(st), why ? why : "");
}

static void done(const ember_outcome *o, const void *p, size_t n, void *ud)
{
    (void)p;
    (void)n;
    (void)ud;
    if (o->status == EMBER_OK)
        ok++;
    else
        failed++;
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (node && !stopping) {
        sent++;
        ember_call_raw(ember_node_root(node), 100, "ping", 4, done, NULL, NULL);
    }
}

static void books(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (node)
        printf("books sent=%ld ok=%ld failed=%ld pending=%ld\n", sent, ok,
               failed, sent - ok - failed);
}

static void stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    stopping = true;
    event_base_loopexit(base, NULL);
}

static void limits(ember_limits *l)
{
    ember_limits_default(l);
    l->heartbeat_ms = 200;
    l->dead_after_ms = 1000;
    l->call_timeout_ms = 3000;
}

int main(int argc, char **argv)
{
    const char *listen = NULL, *connect = NULL;
    int secs = 120;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--listen") == 0)
            listen = argv[i + 1];
        else if (strcmp(argv[i], "--connect") == 0)
            connect = argv[i + 1];
        else if (strcmp(argv[i], "--secs") == 0)
            secs = atoi(argv[i + 1]);
    }
    if (!listen && !connect) {
        fprintf(stderr, "usage: peer [--listen ADDR] [--connect NAME@ADDR] [--secs N]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    ember_root *root = NULL;
    if (listen) {
        ember_root_config cfg;
        ember_root_config_default(&cfg);
        limits(&cfg.limits);
        cfg.on_join = on_join;
        cfg.on_leave = on_leave;
        root = ember_root_new(base, &cfg);
        if (!root || ember_exports_add_raw(ember_root_exports(root), 100, echo, NULL) ||
            ember_root_listen(root, listen)) {
            fprintf(stderr, "peer: cannot listen on %s: %s\n", listen,
                    ember_last_error());
            return 2;
        }
        printf("listening %s\n", listen);
    }
    if (connect) {
        char name[64];
        const char *at = strchr(connect, '@');
        if (!at || (size_t)(at - connect) >= sizeof name) {
            fprintf(stderr, "peer: --connect wants NAME@HOST:PORT\n");
            return 2;
        }
        memcpy(name, connect, (size_t)(at - connect));
        name[at - connect] = 0;
        ember_node_config cfg;
        ember_node_config_default(&cfg);
        limits(&cfg.limits);
        cfg.backoff_min_ms = 50;
        cfg.backoff_max_ms = 500;
        cfg.on_state = on_state;
        node = ember_node_new(base, name, &cfg);
        if (!node || ember_node_connect(node, at + 1)) {
            fprintf(stderr, "peer: cannot connect to %s: %s\n", at + 1,
                    ember_last_error());
            return 2;
        }
    }
    struct event *t = event_new(base, -1, EV_PERSIST, tick, NULL);
    struct event *b = event_new(base, -1, EV_PERSIST, books, NULL);
    struct event *s = evsignal_new(base, SIGTERM, stop, NULL);
    struct event *end = evtimer_new(base, stop, NULL);
    struct timeval tt = { 0, 20000 }, bt = { 1, 0 }, et = { secs, 0 };
    event_add(t, &tt);
    event_add(b, &bt);
    event_add(s, NULL);
    event_add(end, &et);
    event_base_dispatch(base);
    event_free(t);
    event_free(b);
    event_free(s);
    event_free(end);
    int rc = 0;
    if (node) {
        ember_node_free(node);  /* pending calls end (EMBER_SHUTDOWN) */
        printf("final sent=%ld ok=%ld failed=%ld\n", sent, ok, failed);
        if (sent != ok + failed) {
            printf("peer: calls lost: %ld\n", sent - ok - failed);
            rc = 1;
        }
    }
    if (root)
        ember_root_free(root);
    event_base_free(base);
    return rc;
}
