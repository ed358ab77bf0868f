/*
 * faults.c — process and network faults against roots and nodes.
 *
 *   kill9          a node process is killed (SIGKILL) with calls pending both
 *                  ways: each of the root's calls to it ends exactly once
 *                  with EMBER_LOST, on_leave fires, the calls it had made to
 *                  the root become orphans whose late answers are no-ops
 *   sigstop        a node process is stopped (SIGSTOP): a half-open peer;
 *                  heartbeats find it within dead_after_ms (+ one sweep)
 *   root-restart   the root process is killed and started again on the same
 *                  port: the node's pending calls end with EMBER_LOST, it
 *                  reconnects with backoff and registers again, and the new
 *                  root's join callback fires
 *   graceful-stop  ember_root_shutdown with held calls in flight both ways
 *                  (node -> root and root -> node): each completes exactly
 *                  once with EMBER_OK, new calls are refused both ways
 *                  (EMBER_UNAVAILABLE), done runs only after the last one
 *   soak SECS      (not part of `make test`; `make soak`) nodes churning,
 *                  calls at a high rate both ways, RSS stable (at most 4 MiB
 *                  of growth after warm-up) and every call, tracked one by
 *                  one, ended exactly once
 *
 * Usage: faults [case...]   (no argument: every case but soak)
 *        faults soak [SECS]
 * Tests never sleep to synchronise: they run the event loop until a
 * condition or a deadline. Only processes this program forked are signalled,
 * by pid.
 */
#include "../hostile/harness.h"
#include "../common/loop.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int fcntl_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -1 : 0;
}

/* In a forked child: drop every inherited descriptor (the parent's
 * sockets, its epoll instance) but stdio and `keep`. */
static void close_inherited(int keep)
{
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536)
        max = 65536;
    for (int fd = 3; fd < max; fd++)
        if (fd != keep)
            close(fd);
}

/* Short liveness deadlines, stretched by test_slow(): under valgrind a
 * forked node can be off the CPU for longer than 400 ms, and would then
 * give up on its root (or its handshake) on its own, before the fault the
 * case makes. */
static void fast_limits(ember_limits *l)
{
    uint32_t slow = (uint32_t)test_slow();
    h_limits(l);
    l->handshake_ms *= slow;
    l->heartbeat_ms = 100 * slow;
    l->dead_after_ms = 400 * slow;
    l->call_timeout_ms = 10000 * slow;
}

/* ------------------------------------------------------------------ */
/* shared pieces                                                      */
/* ------------------------------------------------------------------ */

typedef struct tally {
    long started, ended, ok, lost, timeout, other;
    ember_status other_st;
} tally;

static void tally_done(const ember_outcome *o, const void *p, size_t n, void *ud)
{
    tally *t = ud;
    (void)p;
    (void)n;
    t->ended++;
    switch (o->status) {
    case EMBER_OK: t->ok++; break;
    case EMBER_LOST: t->lost++; break;
    case EMBER_TIMEOUT: t->timeout++; break;
    default: t->other++; t->other_st = o->status; break;
    }
}

static void tally_call(tally *t, ember_ref *to, uint32_t method)
{
    t->started++;
    ember_call_raw(to, H_SVC, method, "fault", 5, tally_done, t, NULL);
}

static bool tally_settled(void *ud)
{
    tally *t = ud;
    return t->ended == t->started;
}

/* Calls tracked one by one: a call takes a slot, its ud names the slot and
 * the slot's generation, and its outcome frees the slot. An outcome for a
 * free slot or an older generation is a call ending a second time; a slot
 * still taken at the end is a call that never ended. Totals alone would
 * balance a call ending twice against another never ending. Bounded: a
 * slot is reused once its call ended. */
#define CT_SLOTS 65536

typedef struct ctrack {
    uint32_t gen[CT_SLOTS];
    int32_t tag[CT_SLOTS];
    bool used[CT_SLOTS];
    uint32_t freel[CT_SLOTS];
    int nfree;
    long live, twice, full;
    bool ready;
} ctrack;

static void ct_init(ctrack *c)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < CT_SLOTS; i++) {
        c->gen[i] = 1;
        c->freel[i] = (uint32_t)(CT_SLOTS - 1 - i);
    }
    c->nfree = CT_SLOTS;
    c->ready = true;
}

/* The ud for a new call (never NULL), or NULL when every slot is taken. */
static void *ct_start(ctrack *c, int tag)
{
    if (!c->nfree) {
        c->full++;
        return NULL;
    }
    uint32_t i = c->freel[--c->nfree];
    c->used[i] = true;
    c->tag[i] = tag;
    c->live++;
    return (void *)(uintptr_t)((uint64_t)c->gen[i] << 20 | i);
}

/* Ends the call `ud` names; -1 (counted in twice) if it had ended already. */
static int ct_end(ctrack *c, void *ud, int *tag)
{
    uint64_t v = (uint64_t)(uintptr_t)ud;
    uint32_t i = (uint32_t)(v & 0xfffff), g = (uint32_t)(v >> 20);
    if (!ud || i >= CT_SLOTS || !c->used[i] || c->gen[i] != g) {
        c->twice++;
        return -1;
    }
    c->used[i] = false;
    c->gen[i]++;
    c->freel[c->nfree++] = i;
    c->live--;
    if (tag)
        *tag = c->tag[i];
    return 0;
}

/* Every call ended, each exactly once. */
static bool ct_clean(const ctrack *c)
{
    return c->live == 0 && c->twice == 0 && c->full == 0;
}

static bool ct_settled(void *ud) { return ((ctrack *)ud)->live == 0; }

typedef struct joins {
    int joins, leaves;
    char first_why[160];    /* why the first child left */
} joins;

static void on_join(ember_root *r, ember_child *c, void *ud)
{
    (void)r;
    (void)c;
    ((joins *)ud)->joins++;
}

static void on_leave(ember_root *r, ember_child *c, const char *why, void *ud)
{
    (void)r;
    (void)c;
    joins *j = ud;
    if (!j->leaves++)
        snprintf(j->first_why, sizeof j->first_why, "%s", why ? why : "");
}

static h_held held; /* the root's H_HOLD calls */

static void release_held(void)
{
    h_held_release(&held, "late", 4);
}

static bool held_n(void *ud) { return held.n >= (int)(intptr_t)ud; }
static bool node_held_n(void *ud)
{
    return h_node_held_count() >= (int)(intptr_t)ud;
}

static ember_root *root_new(joins *j, const ember_limits *lim, const char *addr)
{
    ember_root_config cfg;
    ember_root_config_default(&cfg);
    cfg.limits = *lim;
    cfg.on_join = on_join;
    cfg.on_leave = on_leave;
    cfg.ud = j;
    ember_root *r = ember_root_new(H_base, &cfg);
    if (!r)
        return NULL;
    ember_exports_add_raw(ember_root_exports(r), H_SVC, H_ECHO, h_echo, NULL);
    ember_exports_add_raw(ember_root_exports(r), H_SVC, H_HOLD, h_hold, &held);
    if (ember_root_listen(r, addr)) {
        ember_root_free(r);
        return NULL;
    }
    return r;
}

static ember_node *node_new(const char *name, int port, const ember_limits *lim)
{
    ember_node_config cfg;
    ember_node_config_default(&cfg);
    cfg.limits = *lim;
    cfg.backoff_min_ms = 20;
    cfg.backoff_max_ms = 200;
    return h_node_new_cfg(name, port, &cfg);
}

/* A child process running one node that makes `calls` held calls to the
 * root, then runs forever (until killed). */
static pid_t spawn_node(int port, const ember_limits *lim, int calls)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    /* The parent's base is left alone; the child has its own. */
    close_inherited(-1);
    H_base = event_base_new();
    ember_node *n = node_new("worker", port, lim);
    if (!n || !h_run_until(h_node_registered, n, 5000))
        _exit(2);
    tally t = {0};
    for (int i = 0; i < calls; i++)
        tally_call(&t, ember_node_root(n), H_HOLD);
    for (;;)
        event_base_loop(H_base, EVLOOP_ONCE);
}

static void reap(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static ember_child *child_named(ember_root *r, const char *name)
{
    return ember_root_child_by_name(r, name);
}

static bool has_worker(void *ud) { return child_named(ud, "worker") != NULL; }

/* ------------------------------------------------------------------ */
/* kill -9 and SIGSTOP                                                */
/* ------------------------------------------------------------------ */

typedef struct leave_wait { joins *j; int want; } leave_wait;
static bool left(void *ud)
{
    leave_wait *w = ud;
    return w->j->leaves >= w->want;
}

static void node_fault(int sig)
{
    ember_limits lim;
    fast_limits(&lim);
    joins j = {0, 0, ""};
    held.n = 0;
    ember_root *r = root_new(&j, &lim, "127.0.0.1:0");
    CHECK(r);
    int port = ember_root_port(r);
    pid_t pid = spawn_node(port, &lim, 5);
    CHECK(pid > 0);
    bool up = h_run_until(has_worker, r, 5000) &&
              h_run_until(held_n, (void *)5, 5000);
    if (!up) {
        reap(pid);
        ember_root_free(r);
        CHECK(!"the worker registered and made its calls");
    }
    /* Calls from the root to the worker: held there, never answered. */
    tally t = {0};
    ember_child *c = child_named(r, "worker");
    for (int i = 0; i < 7; i++)
        tally_call(&t, ember_child_ref(c), H_NODE_HOLD);
    h_run_for(50); /* time must pass: held calls do not end by themselves */
    CHECK(t.ended == 0);

    uint64_t t0 = h_now_ms();
    kill(pid, sig);
    leave_wait w = { &j, 1 };
    bool gone = h_run_until(left, &w, 5000) && h_run_until(tally_settled, &t, 5000);
    uint64_t took = h_now_ms() - t0;
    reap(pid);
    if (!gone) {
        ember_root_free(r);
        CHECK(!"the root noticed the worker was gone");
    }
    fprintf(stderr, "  %s: worker declared gone after %llu ms\n",
            sig == SIGKILL ? "kill -9" : "SIGSTOP", (unsigned long long)took);
    /* Every call to the dead node ended exactly once, as lost. */
    bool books = t.started == 7 && t.ended == 7 && t.lost == 7 && t.ok == 0 &&
                 t.other == 0 && t.timeout == 0;
    if (!books)
        fprintf(stderr, "  calls: started %ld ended %ld lost %ld ok %ld "
                "timeout %ld other %ld (%s)\n", t.started, t.ended, t.lost,
                t.ok, t.timeout, t.other, ember_status_name(t.other_st));
    /* Its calls to us are orphans: answering them is harmless. */
    release_held();
    h_run_for(20); /* the leave was reached above: no second join or leave */
    if (!(j.joins == 1 && j.leaves == 1))
        fprintf(stderr, "  joins %d leaves %d, the first leave: %s\n", j.joins,
                j.leaves, j.first_why);
    CHECK(j.joins == 1 && j.leaves == 1);
    CHECK(ember_root_child_count(r) == 0);
    ember_root_free(r);
    h_run_for(10); /* teardown, not a wait: let deferred frees run */
    CHECK(books);
    if (sig == SIGSTOP) {
        /* Found by heartbeats within dead_after_ms plus a sweep or two. */
        CHECK(strstr(j.first_why, "heartbeat"));
        CHECK(took < lim.dead_after_ms + 3 * lim.heartbeat_ms + 200u * (unsigned)test_slow());
    } else {
        /* Found by the close (or reset) the kernel makes for the dead
         * process, not by a heartbeat. */
        CHECK(!strstr(j.first_why, "heartbeat"));
        CHECK(took < 1000u * (unsigned)test_slow());
    }
}

static void case_kill9(void) { node_fault(SIGKILL); }
static void case_sigstop(void) { node_fault(SIGSTOP); }

/* ------------------------------------------------------------------ */
/* root restart (the root in a child process)                         */
/* ------------------------------------------------------------------ */

/* Runs a root on addr in a child; writes one byte to fd for every join. */
static pid_t spawn_root(const char *addr, int port_fd, const ember_limits *lim)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    close_inherited(port_fd);
    H_base = event_base_new();
    joins j = {0, 0, ""};
    ember_root *r = root_new(&j, lim, addr);
    if (!r)
        _exit(2);
    int port = ember_root_port(r);
    if (write(port_fd, &port, sizeof port) != (ssize_t)sizeof port)
        _exit(3);
    int seen = 0;
    for (;;) {
        event_base_loop(H_base, EVLOOP_ONCE);
        while (seen < j.joins) {
            int one = -1;
            if (write(port_fd, &one, sizeof one) != (ssize_t)sizeof one)
                _exit(4);
            seen++;
        }
    }
}

typedef struct pipe_wait { int fd; int value; bool got; } pipe_wait;

static bool pipe_readable(void *ud)
{
    pipe_wait *w = ud;
    if (w->got)
        return true;
    ssize_t r = read(w->fd, &w->value, sizeof w->value);
    if (r == (ssize_t)sizeof w->value)
        w->got = true;
    return w->got;
}

static bool node_lost(void *ud)
{
    return ember_node_state_get(ud) != EMBER_NODE_REGISTERED;
}

static void case_root_restart(void)
{
    ember_limits lim;
    fast_limits(&lim);
    int p[2];
    CHECK(pipe(p) == 0);
    /* Nonblocking read end: we poll it from the loop. */
    CHECK(fcntl_nonblock(p[0]) == 0);
    pid_t a = spawn_root("127.0.0.1:0", p[1], &lim);
    CHECK(a > 0);
    pipe_wait w = { p[0], 0, false };
    if (!h_run_until(pipe_readable, &w, 5000)) {
        reap(a);
        CHECK(!"root A started");
    }
    int port = w.value;
    ember_node *n = node_new("survivor", port, &lim);
    CHECK(n);
    w.got = false;
    bool ok = h_run_until(h_node_registered, n, 5000) &&
              h_run_until(pipe_readable, &w, 5000) && w.value == -1;
    if (!ok) {
        reap(a);
        ember_node_free(n);
        CHECK(!"the node registered with root A");
    }
    tally t = {0};
    for (int i = 0; i < 5; i++)
        tally_call(&t, ember_node_root(n), H_HOLD);
    h_run_for(50); /* time must pass: held calls do not end by themselves */
    CHECK(t.ended == 0);
    reap(a);
    bool lost = h_run_until(node_lost, n, 3000) && h_run_until(tally_settled, &t, 3000);
    /* Root B on the same port. */
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    pid_t b = spawn_root(addr, p[1], &lim);
    w.got = false;
    bool b_up = h_run_until(pipe_readable, &w, 5000) && w.value == port;
    w.got = false;
    bool back = b_up && h_run_until(h_node_registered, n, 5000) &&
                h_run_until(pipe_readable, &w, 5000) && w.value == -1;
    /* Calls work again. */
    tally t2 = {0};
    for (int i = 0; i < 5; i++)
        tally_call(&t2, ember_node_root(n), H_ECHO);
    bool works = back && h_run_until(tally_settled, &t2, 3000) && t2.ok == 5;
    reap(b);
    ember_node_free(n);
    h_run_for(10); /* teardown, not a wait: let deferred frees run */
    close(p[0]);
    close(p[1]);
    CHECK(lost);
    if (!(t.lost == 5 && t.ended == 5))
        fprintf(stderr, "  pending calls: ended %ld lost %ld other %ld (%s)\n",
                t.ended, t.lost, t.other, ember_status_name(t.other_st));
    CHECK(t.lost == 5 && t.ended == 5);
    CHECK(b_up);
    CHECK(back);
    CHECK(works);
}

/* ------------------------------------------------------------------ */
/* graceful stop                                                      */
/* ------------------------------------------------------------------ */

static bool stopped;
static void on_stopped(ember_root *r, void *ud)
{
    (void)r;
    (void)ud;
    stopped = true;
}

static bool is_stopped(void *ud)
{
    (void)ud;
    return stopped;
}

/* Both directions tracked call by call; `tag` says which tally. */
static ctrack GT;
static tally g_up, g_down;

static void g_done(const ember_outcome *o, const void *p, size_t n, void *ud)
{
    int tag = 0;
    if (ct_end(&GT, ud, &tag))
        return;
    tally_done(o, p, n, tag ? &g_down : &g_up);
}

static void case_graceful_stop(void)
{
    ember_limits lim;
    fast_limits(&lim);
    joins j = {0, 0, ""};
    held.n = 0;
    stopped = false;
    ember_root *r = root_new(&j, &lim, "127.0.0.1:0");
    CHECK(r);
    ember_node *n = node_new("calm", ember_root_port(r), &lim);
    CHECK(n);
    CHECK(h_run_until(h_node_registered, n, 5000));
    ember_child *ch = ember_root_child_by_name(r, "calm");
    CHECK(ch);
    ct_init(&GT);
    memset(&g_up, 0, sizeof g_up);
    memset(&g_down, 0, sizeof g_down);
    h_release_node_held();
    /* Six held calls each way: node -> root (H_HOLD), root -> node
     * (H_NODE_HOLD). */
    for (int i = 0; i < 6; i++) {
        g_up.started++;
        ember_call_raw(ember_node_root(n), H_SVC, H_HOLD, "up", 2, g_done,
                       ct_start(&GT, 0), NULL);
        g_down.started++;
        ember_call_raw(ember_child_ref(ch), H_SVC, H_NODE_HOLD, "down", 4, g_done,
                       ct_start(&GT, 1), NULL);
    }
    CHECK(h_run_until(held_n, (void *)6, 3000));
    CHECK(h_run_until(node_held_n, (void *)6, 3000));
    ember_root_shutdown(r, on_stopped, NULL);
    h_run_for(50); /* time must pass: the shutdown waits for held calls */
    /* Not done while calls are in flight, and none of them ended. */
    CHECK(!stopped);
    CHECK(g_up.ended == 0 && g_down.ended == 0);
    /* New calls are refused both ways: EMBER_UNAVAILABLE. */
    tally t_new = {0}, t_new_down = {0};
    tally_call(&t_new, ember_node_root(n), H_ECHO);
    tally_call(&t_new_down, ember_child_ref(ch), H_NODE_ECHO);
    h_run_until(tally_settled, &t_new, 3000);
    h_run_until(tally_settled, &t_new_down, 3000);
    /* Answer one direction first: still not done. */
    h_release_node_held();
    bool down_done = h_run_until(tally_settled, &g_down, 3000);
    bool early = stopped;
    release_held();
    bool done = h_run_until(is_stopped, NULL, 5000);
    bool settled = h_run_until(ct_settled, &GT, 3000);
    h_run_for(50); /* time for a second outcome to show */
    ember_root_free(r);
    ember_node_free(n);
    h_run_for(10); /* teardown, not a wait: let deferred frees run */
    CHECK(down_done);
    CHECK(!early);
    CHECK(done);
    CHECK(settled);
    if (!ct_clean(&GT))
        fprintf(stderr, "  calls not ended %ld, ended twice %ld\n", GT.live,
                GT.twice);
    CHECK(ct_clean(&GT));
    if (g_up.ok != 6 || g_down.ok != 6)
        fprintf(stderr, "  in flight: up ok %ld lost %ld other %ld (%s); "
                "down ok %ld lost %ld other %ld (%s)\n", g_up.ok, g_up.lost,
                g_up.other, ember_status_name(g_up.other_st), g_down.ok,
                g_down.lost, g_down.other, ember_status_name(g_down.other_st));
    CHECK(g_up.ok == 6 && g_up.ended == 6);
    CHECK(g_down.ok == 6 && g_down.ended == 6);
    if (!(t_new.other == 1 && t_new.other_st == EMBER_UNAVAILABLE &&
          t_new_down.other == 1 && t_new_down.other_st == EMBER_UNAVAILABLE))
        fprintf(stderr, "  new calls: up %s, down %s\n",
                ember_status_name(t_new.ok ? EMBER_OK : t_new.other_st),
                ember_status_name(t_new_down.ok ? EMBER_OK : t_new_down.other_st));
    CHECK(t_new.ended == 1 && t_new.other == 1 &&
          t_new.other_st == EMBER_UNAVAILABLE);
    CHECK(t_new_down.ended == 1 && t_new_down.other == 1 &&
          t_new_down.other_st == EMBER_UNAVAILABLE);
}

/* ------------------------------------------------------------------ */
/* soak                                                               */
/* ------------------------------------------------------------------ */

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = 0;
    fclose(f);
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

#define SOAK_NODES 6
#define SOAK_RSS_GROWTH_KIB 4096

typedef struct soak {
    ember_root *root;
    int port;
    ember_limits lim;
    ember_node *nodes[SOAK_NODES];
    tally up, down;   /* node -> root, root -> node */
    bool running;
    int churned;
} soak;

static soak S;
static ctrack ST; /* every soak call, both ways (tag: node index, -1 down) */

static void soak_up_done(const ember_outcome *o, const void *p, size_t n, void *ud);

static void soak_fire(int i)
{
    if (!S.running || !S.nodes[i])
        return;
    void *ud = ct_start(&ST, i);
    if (!ud)
        return; /* counted in ST.full: fails the soak */
    S.up.started++;
    ember_call_raw(ember_node_root(S.nodes[i]), H_SVC, H_ECHO, "soak-payload", 12,
                   soak_up_done, ud, NULL);
}

static void soak_up_done(const ember_outcome *o, const void *p, size_t n, void *ud)
{
    int i = 0;
    if (ct_end(&ST, ud, &i))
        return; /* ended twice: counted in ST.twice */
    tally_done(o, p, n, &S.up);
    /* Only a reply refills at once; failures wait for the next kick (a
     * node being replaced fails its calls at once, from the loop). */
    if (o->status == EMBER_OK)
        soak_fire(i);
}

static void soak_down_done(const ember_outcome *o, const void *p, size_t n, void *ud)
{
    if (ct_end(&ST, ud, NULL))
        return;
    tally_done(o, p, n, &S.down);
}

static void soak_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (!S.running)
        return;
    /* Root -> every child. */
    for (ember_child *c = ember_root_child_next(S.root, NULL); c;
         c = ember_root_child_next(S.root, c)) {
        for (int k = 0; k < 4; k++) {
            void *ud = ct_start(&ST, -1);
            if (!ud)
                break;
            S.down.started++;
            ember_call_raw(ember_child_ref(c), H_SVC, H_NODE_ECHO, "down", 4,
                           soak_down_done, ud, NULL);
        }
    }
    /* Churn: replace one node every tick, round robin. */
    static int next;
    int i = next++ % SOAK_NODES;
    if (S.nodes[i]) {
        ember_node_free(S.nodes[i]);
        S.churned++;
    }
    char name[32];
    snprintf(name, sizeof name, "soak%d", i);
    S.nodes[i] = node_new(name, S.port, &S.lim);
}

static void soak_kick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    /* Keep 16 calls in flight per registered node. */
    for (int i = 0; i < SOAK_NODES; i++)
        if (S.nodes[i] && ember_node_state_get(S.nodes[i]) == EMBER_NODE_REGISTERED &&
            S.up.started - S.up.ended < 16 * SOAK_NODES)
            for (int k = 0; k < 4; k++)
                soak_fire(i);
}

static int run_soak(int secs)
{
    memset(&S, 0, sizeof S);
    ct_init(&ST);
    fast_limits(&S.lim);
    S.lim.call_timeout_ms = 2000;
    joins j = {0, 0, ""};
    S.root = root_new(&j, &S.lim, "127.0.0.1:0");
    if (!S.root)
        return 1;
    S.port = ember_root_port(S.root);
    for (int i = 0; i < SOAK_NODES; i++) {
        char name[32];
        snprintf(name, sizeof name, "soak%d", i);
        S.nodes[i] = node_new(name, S.port, &S.lim);
    }
    S.running = true;
    struct event *tick = event_new(H_base, -1, EV_PERSIST, soak_tick, NULL);
    struct event *kick = event_new(H_base, -1, EV_PERSIST, soak_kick, NULL);
    struct timeval tt = { 0, 250000 }, kt = { 0, 20000 };
    event_add(tick, &tt);
    event_add(kick, &kt);
    uint64_t t0 = h_now_ms(), end = t0 + (uint64_t)secs * 1000;
    long rss_warm = 0, rss_max = 0;
    while (h_now_ms() < end) {
        h_run_for(500); /* the soak runs for a fixed time: time is the test */
        long rss = rss_kib();
        if (!rss_warm && h_now_ms() - t0 >= (uint64_t)secs * 250)
            rss_warm = rss;
        if (rss_warm && rss > rss_max)
            rss_max = rss;
    }
    S.running = false;
    event_free(tick);
    event_free(kick);
    /* Drain: every call ends (replies, losses or timeouts). */
    h_run_until(tally_settled, &S.up, 5000);
    h_run_until(tally_settled, &S.down, 5000);
    h_run_until(ct_settled, &ST, 5000);
    for (int i = 0; i < SOAK_NODES; i++)
        if (S.nodes[i])
            ember_node_free(S.nodes[i]);
    ember_root_free(S.root);
    h_run_for(20); /* teardown, not a wait: let deferred frees run */
    long total = S.up.started + S.down.started;
    printf("soak: %d s, %ld calls (%.0f/s), %d nodes churned, joins %d leaves %d\n",
           secs, total, total / (double)secs, S.churned, j.joins, j.leaves);
    printf("soak: node->root sent %ld = ok %ld + lost %ld + timeout %ld + other %ld"
           " (e.g. %s: calls of a node freed while churning)\n",
           S.up.started, S.up.ok, S.up.lost, S.up.timeout, S.up.other,
           ember_status_name(S.up.other_st));
    printf("soak: root->node sent %ld = ok %ld + lost %ld + timeout %ld + other %ld\n",
           S.down.started, S.down.ok, S.down.lost, S.down.timeout, S.down.other);
    printf("soak: RSS after warm-up %ld KiB, max %ld KiB\n", rss_warm, rss_max);
    int bad = 0;
    if (S.up.started != S.up.ended || S.down.started != S.down.ended) {
        printf("soak: FAIL the books do not balance: calls were lost\n");
        bad = 1;
    }
    if (!ct_clean(&ST)) {
        printf("soak: FAIL %ld calls never ended, %ld outcomes for calls that "
               "had ended already, %ld calls not tracked (all slots taken)\n",
               ST.live, ST.twice, ST.full);
        bad = 1;
    }
    if (S.up.ok == 0 || S.down.ok == 0) {
        printf("soak: FAIL no traffic\n");
        bad = 1;
    }
    /* Stable: no more than 4 MiB of growth after warm-up (a quarter of
     * the run), however large the warm RSS. */
    if (rss_max > rss_warm + SOAK_RSS_GROWTH_KIB) {
        printf("soak: FAIL RSS grew from %ld to %ld KiB\n", rss_warm, rss_max);
        bad = 1;
    }
    printf("soak: %s\n", bad ? "FAILED" : "ok");
    return bad;
}

/* ------------------------------------------------------------------ */

typedef struct fcase { const char *name; void (*fn)(void); } fcase;
static const fcase cases[] = {
    { "kill9", case_kill9 },
    { "sigstop", case_sigstop },
    { "root-restart", case_root_restart },
    { "graceful-stop", case_graceful_stop },
};

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    h_log_install();
    if (!getenv("FAULTS_VERBOSE"))
        ember_set_log_level(EMBER_LOG_ERROR);
    H_base = event_base_new();
    if (argc >= 2 && strcmp(argv[1], "soak") == 0)
        return run_soak(argc >= 3 ? atoi(argv[2]) : 60);
    int failed = 0, ran = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool sel = argc < 2;
        for (int a = 1; a < argc; a++)
            if (strcmp(argv[a], cases[i].name) == 0)
                sel = true;
        if (!sel)
            continue;
        ran++;
        h_failures = 0;
        h_log_clear();
        cases[i].fn();
        printf("faults: %s %s\n", h_failures ? "FAIL" : "ok", cases[i].name);
        if (h_failures) {
            h_log_dump(stderr);
            failed++;
        }
    }
    event_base_free(H_base);
    h_log_clear();
    printf("faults: %d cases, %d failed\n", ran, failed);
    return failed ? 1 : 0;
}
