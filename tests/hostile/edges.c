/*
 * edges.c — the runtime at its edges, against the hostile fixture (a root
 * with a well-behaved node calling it the whole time; hostile.c's run_one
 * checks that node after every case):
 *
 *   edge-colliding-call-ids  ids i << 48 held then cancelled and answered:
 *                            the call table's work (probes) stays linear;
 *                            a call id already in flight is refused alone
 *   edge-heartbeat-welcome   a node follows the heartbeat its root sent in
 *                            WELCOME, whatever its own limits say
 *   edge-drop-reason         a node the root drops learns why (GOODBYE)
 *   edge-log-injection       a node name with a newline and an escape
 *                            sequence reaches the log escaped
 *   edge-unregistered-flood  many connections sending big frames before
 *                            registering: their memory stays within the
 *                            root's budget, a real node registers meanwhile
 *   edge-never-reads-peak    calls to a peer that never reads: memory stays
 *                            within out_high_water plus about a frame
 *   edge-bad-name-refused    a REGISTER whose name is not UTF-8 is REFUSED
 *                            with the reason, not dropped without one
 */
#include "harness.h"
#include "../common/loop.h"
#include "../common/net.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "probe-internal.h"

/* ---- a victim registered through the relay ---- */

typedef struct edge_victim {
    h_relay *relay;
    ember_node *node;
} edge_victim;

static bool victim_joined(void *ud)
{
    return ember_root_child_by_name(ud, "edge-victim") != NULL;
}

static int edge_victim_start(h_fixture *fx, edge_victim *v)
{
    memset(v, 0, sizeof *v);
    if (!(v->relay = h_relay_new(fx->port)))
        return -1;
    v->node = h_node_new("edge-victim", h_relay_port(v->relay));
    if (!v->node || !h_run_until(h_node_registered, v->node, 3000) ||
        !h_run_until(victim_joined, fx->root, 3000))
        return -1;
    return 0;
}

static void edge_victim_stop(edge_victim *v)
{
    if (v->node)
        ember_node_free(v->node);
    h_relay_free(v->relay);
    h_run_for(20); /* teardown, not a wait */
}

/* ---- item: peer-chosen call ids ---- */

#define EDGE_HOLD 120  /* root: keeps every call until released */
#define EDGE_N 20000

static h_held held;

static bool all_held(void *ud) { return held.n >= *(int *)ud; }
static bool last_cancelled(void *ud)
{
    (void)ud;
    return held.n > 0 && ember_call_cancelled(held.call[held.n - 1]);
}

typedef struct ans_wait { h_relay *r; uint64_t id; } ans_wait;
static bool answered(void *ud)
{
    ans_wait *w = ud;
    return h_relay_got_answer(w->r, w->id, NULL, NULL);
}

/* Frames of one kind for ids id(i), i in [0, n), into one injection. */
static void inject_many(h_relay *r, uint8_t kind, int n, uint64_t (*id)(int))
{
    size_t cap = (size_t)n * 40, len = 0;
    uint8_t *b = malloc(cap);
    if (!b)
        return;
    for (int i = 0; i < n; i++) {
        uint64_t h[3] = { id(i), 0, EDGE_HOLD };
        len += h_frame(b + len, cap - len, kind, kind == FR_CALL ? 3 : 1, h,
                       NULL, 0);
    }
    h_relay_inject(r, b, len);
    free(b);
}

/* Ids that all land in one bucket of an unkeyed multiplicative hash (their
 * low 48 bits are equal), and that the relay keeps answers to. */
static uint64_t colliding_id(int i) { return (uint64_t)(i + 1) << 48 | 0x7f000000u; }

void edge_colliding_call_ids(h_fixture *fx)
{
    edge_victim v;
    ember_exports_add_raw(ember_root_exports(fx->root), H_SVC, EDGE_HOLD, h_hold,
                          &held);
    int ok = edge_victim_start(fx, &v) == 0;
    ember_child *c = ember_root_child_by_name(fx->root, "edge-victim");
    uint64_t p0 = c ? ember_child_htab_probes_(c) : 0;
    int want = EDGE_N;
    /* Held (put), cancelled (get), answered (delete). */
    if (ok) {
        inject_many(v.relay, FR_CALL, EDGE_N, colliding_id);
        ok = h_run_until(all_held, &want, 10000);
    }
    if (ok) {
        inject_many(v.relay, FR_CANCEL, EDGE_N, colliding_id);
        ok = h_run_until(last_cancelled, NULL, 10000);
    }
    h_held_release(&held, NULL, 0);
    uint64_t probes = ok ? ember_child_htab_probes_(c) - p0 : 0;
    fprintf(stderr, "  %d calls with ids i << 48, held, cancelled, answered: "
            "%llu probes\n", EDGE_N, (unsigned long long)probes);

    /* One id many times: the first is held, the others fail alone. */
    uint64_t same = H_INJ_ID(7);
    bool dup_failed = false, one_held = false;
    if (ok) {
        uint8_t fr[64];
        uint64_t h[3] = { same, 0, EDGE_HOLD };
        size_t n = h_frame(fr, sizeof fr, FR_CALL, 3, h, NULL, 0);
        for (int i = 0; i < 100; i++)
            h_relay_inject(v.relay, fr, n);
        ans_wait w = { v.relay, same };
        uint8_t kind = 0;
        uint64_t code = 0;
        dup_failed = h_run_until(answered, &w, 3000) &&
                     h_relay_got_answer(v.relay, same, &kind, &code) &&
                     kind == FR_ERROR && code == EMBER_FAILED;
        one_held = held.n == 1;
    }
    bool still = h_node_registered(v.node) &&
                 ember_root_child_by_name(fx->root, "edge-victim") != NULL;
    bool logged = h_log_has("already in flight", NULL);
    h_held_release(&held, NULL, 0);
    edge_victim_stop(&v);
    free(held.call);
    memset(&held, 0, sizeof held);
    CHECK(ok);
    /* Put, get and delete each walk a chain of about one node: an unkeyed
     * hash put all of them in one chain (~N^2 / 2 = 2e8 probes). */
    CHECK(probes > 0 && probes < 6u * EDGE_N);
    CHECK(dup_failed);
    CHECK(one_held);
    CHECK(logged);
    CHECK(still); /* refused calls, not a disconnect */
}

/* ---- item: the node follows WELCOME's heartbeat ---- */

typedef struct fake {
    int lfd, fd;
    int pings;
    uint8_t in[4096];
    size_t inlen;
} fake;

static bool fake_accept(void *ud)
{
    fake *f = ud;
    if (f->fd < 0)
        f->fd = accept(f->lfd, NULL, NULL);
    return f->fd >= 0;
}

/* Counts the PINGs the node sent; true once the node closed. */
static bool fake_drain(void *ud)
{
    fake *f = ud;
    for (;;) {
        ssize_t r = recv(f->fd, f->in + f->inlen, sizeof f->in - f->inlen,
                         MSG_DONTWAIT);
        if (r == 0)
            return true;
        if (r < 0)
            return false;
        f->inlen += (size_t)r;
        while (f->inlen >= 5) {
            uint32_t len = (uint32_t)f->in[0] | (uint32_t)f->in[1] << 8 |
                           (uint32_t)f->in[2] << 16 | (uint32_t)f->in[3] << 24;
            if (f->inlen < (size_t)len + 4)
                break;
            if (f->in[4] == FR_PING)
                f->pings++;
            memmove(f->in, f->in + len + 4, f->inlen - len - 4);
            f->inlen -= len + 4;
        }
    }
}

static int lost_n;
static uint64_t lost_ms;
static char lost_reason[256];
static void edge_on_state(ember_node *n, ember_node_state st, const char *reason,
                          void *ud)
{
    (void)n;
    (void)ud;
    if (st == EMBER_NODE_LOST && !lost_n++) {
        lost_ms = h_now_ms();
        snprintf(lost_reason, sizeof lost_reason, "%s", reason ? reason : "");
    }
}

static bool node_lost(void *ud)
{
    (void)ud;
    return lost_n > 0;
}

void edge_heartbeat_welcome(h_fixture *fx)
{
    (void)fx;
    fake f = { -1, -1, 0, {0}, 0 };
    f.lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = loopback_addr(0);
    CHECK(f.lfd >= 0 && bind(f.lfd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
          listen(f.lfd, 4) == 0);
    fcntl(f.lfd, F_SETFL, O_NONBLOCK);
    /* The node's own limits are slow: ping after 10 s, dead after 30 s. */
    ember_node_config cfg;
    ember_node_config_default(&cfg);
    cfg.limits.heartbeat_ms = 10000;
    cfg.limits.dead_after_ms = 30000;
    cfg.backoff_min_ms = 5000;
    cfg.on_state = edge_on_state;
    lost_n = 0;
    ember_node *n = h_node_new_cfg("hb", h_local_port(f.lfd), &cfg);
    bool ok = n && h_run_until(fake_accept, &f, 3000);
    /* HELLO, then WELCOME { 1: id 9, 2: heartbeat 200, 3: dead after 600 }. */
    static const uint8_t hello_pl[] = { 0x0a, 4, 'E', 'M', 'B', 'R',
                                        0x10, 2, 0x18, 2 };
    static const uint8_t welcome_pl[] = { 0x08, 9, 0x10, 0xc8, 0x01,
                                          0x18, 0xd8, 0x04 };
    uint8_t fr[64];
    if (ok) {
        size_t k = h_frame(fr, sizeof fr, FR_HELLO, 0, NULL, hello_pl,
                           sizeof hello_pl);
        ok = h_write_all(f.fd, fr, k) == 0;
    }
    /* The node's silence counts from the WELCOME it reads: no earlier than
     * this. */
    uint64_t t0 = h_now_ms();
    if (ok) {
        size_t k = h_frame(fr, sizeof fr, FR_WELCOME, 0, NULL, welcome_pl,
                           sizeof welcome_pl);
        ok = h_write_all(f.fd, fr, k) == 0 && h_run_until(h_node_registered, n,
                                                          3000);
    }
    /* Its sweep follows: a quarter of WELCOME's 200 ms, not of its own
     * 10 s (clamped to 1 s). */
    uint32_t sweep = ok ? ember_node_sweep_ms_(n) : 0;
    /* The fake root reads but never answers: the node must ping it after
     * 200 ms of silence and give it up after 600 ms (plus one sweep). */
    bool closed = ok && h_run_until(fake_drain, &f, 5000);
    bool lost = closed && h_run_until(node_lost, NULL, 1000);
    uint64_t after = lost_ms - t0;
    ember_node_free(n);
    if (f.fd >= 0)
        close(f.fd);
    close(f.lfd);
    h_run_for(20);
    fprintf(stderr, "  root sent 200/600 ms: sweep every %u ms, %d PINGs, "
            "lost after %llu ms (%s)\n", sweep, f.pings,
            (unsigned long long)after, lost_reason);
    CHECK(ok && closed && lost);
    CHECK(sweep == 50);
    CHECK(f.pings >= 1);
    CHECK(strstr(lost_reason, "silent") != NULL);
    /* dead_after_ms + one sweep (50 ms) + scheduling (generous, and
     * stretched by test_slow() for sanitizers and valgrind): below the
     * node's own 30 s in any case. */
    uint64_t bound = 600 + 1400u * (unsigned)test_slow();
    if (bound > cfg.limits.dead_after_ms)
        bound = cfg.limits.dead_after_ms;
    CHECK(after >= 600 && after < bound);
}

/* ---- item: a dropped node learns why ---- */

void edge_drop_reason(h_fixture *fx)
{
    ember_node_config cfg;
    ember_node_config_default(&cfg);
    h_limits(&cfg.limits);
    cfg.backoff_min_ms = 2000;
    cfg.on_state = edge_on_state;
    lost_n = 0;
    lost_reason[0] = 0;
    ember_node *n = h_node_new_cfg("dropped", fx->port, &cfg);
    bool ok = n && h_run_until(h_node_registered, n, 3000);
    ember_child *c = ok ? ember_root_child_by_name(fx->root, "dropped") : NULL;
    if (c)
        ember_root_drop(fx->root, c, "test: too many logins");
    bool lost = c && h_run_until(node_lost, NULL, 3000);
    ember_node_free(n);
    h_run_for(20);
    fprintf(stderr, "  the dropped node's reason: %s\n", lost_reason);
    CHECK(ok && c && lost);
    CHECK(strstr(lost_reason, "dropped by the root: test: too many logins"));
}

/* ---- item: what unregistered peers hold together ---- */

#define FLOOD_MAX 200          /* flood connections opened in all */
#define FLOOD_FRAME (1u << 20) /* each announces a 1 MiB REGISTER... */
#define FLOOD_SEND (768u << 10) /* ...and sends 768 KiB of it, slowly */

typedef struct flood {
    int port;
    int fd[FLOOD_MAX];
    size_t sent[FLOOD_MAX];
    int opened, open;
    size_t total;
} flood;

/* One step of the flood per loop iteration: a new connection while there
 * are fewer than FLOOD_MAX, and up to 64 KiB more on each sending one. */
static void flood_step(flood *f)
{
    static uint8_t chunk[64 << 10];
    if (f->opened < FLOOD_MAX) {
        int fd = h_connect(f->port);
        if (fd >= 0) {
            fcntl(fd, F_SETFL, O_NONBLOCK);
            uint8_t hdr[5] = { 0, 0, 0x10, 0, FR_REGISTER }; /* 1 MiB */
            if (send(fd, hdr, sizeof hdr, MSG_NOSIGNAL) != (ssize_t)sizeof hdr) {
                close(fd);
                fd = -1;
            }
        }
        f->fd[f->opened++] = fd;
        f->open += fd >= 0;
    }
    /* One in four sends its frame; the others stay silent after the
     * header (they hold a block each, and their number). */
    for (int i = 0; i < f->opened; i += 4) {
        if (f->fd[i] < 0 || f->sent[i] >= FLOOD_SEND)
            continue;
        size_t want = FLOOD_SEND - f->sent[i];
        if (want > sizeof chunk)
            want = sizeof chunk;
        ssize_t w = send(f->fd[i], chunk, want, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            f->sent[i] += (size_t)w;
            f->total += (size_t)w;
        } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            close(f->fd[i]); /* the root shed it */
            f->fd[i] = -1;
            f->open--;
        }
    }
}

typedef struct flood_run {
    flood *f;
    ember_node *node;
    ember_root *root;
    size_t budget;
} flood_run;

static bool flood_until_registered(void *ud)
{
    flood_run *r = ud;
    flood_step(r->f);
    return r->f->opened == FLOOD_MAX && r->node &&
           h_node_registered(r->node);
}

static bool flood_shed(void *ud)
{
    flood_run *r = ud;
    flood_step(r->f);
    return r->f->total > 2 * r->budget;
}

static bool none_unregistered(void *ud)
{
    return ember_root_unreg_count_(ud) == 0;
}

void edge_unregistered_flood(h_fixture *fx)
{
    (void)fx;
    ember_root_config rc;
    ember_root_config_default(&rc);
    h_limits(&rc.limits);
    rc.limits.handshake_ms = 5000; /* the flood is shed, not timed out */
    rc.unregistered_bytes = 8u << 20;
    rc.max_unregistered = 64;
    ember_root *root = ember_root_new(H_base, &rc);
    CHECK(root);
    CHECK(ember_root_listen(root, "127.0.0.1:0") == 0);
    static flood f;
    memset(&f, 0, sizeof f);
    f.port = ember_root_port(root);
    size_t before = h_alloc_live();
    h_alloc_reset_peak();
    flood_run run = { &f, NULL, root, rc.unregistered_bytes };
    /* The flood first: two budgets' worth of big frames arrive... */
    bool shed = h_run_until(flood_shed, &run, 10000);
    /* ...then a legitimate node registers while it goes on. */
    run.node = h_node_new("legit", f.port);
    bool registered = shed && run.node &&
                      h_run_until(flood_until_registered, &run, 10000);
    size_t peak = h_alloc_peak() - before;
    size_t acct_peak = ember_root_unreg_peak_(root);
    for (int i = 0; i < f.opened; i++)
        if (f.fd[i] >= 0)
            close(f.fd[i]);
    bool drained = h_run_until(none_unregistered, root, 3000);
    size_t left = ember_root_unreg_bytes_(root);
    fprintf(stderr, "  %d connections, %zu MiB sent before registering: the "
            "unregistered held at most %zu KiB (budget %zu KiB), the process "
            "grew by at most %zu KiB\n", f.opened, f.total >> 20,
            acct_peak >> 10, rc.unregistered_bytes >> 10, peak >> 10);
    bool by_bytes = h_log_has("over unregistered_bytes", NULL);
    bool by_count = h_log_has("at max_unregistered: the oldest goes", NULL);
    ember_node_free(run.node);
    ember_root_free(root);
    h_run_for(20);
    size_t after = h_alloc_live();
    CHECK(shed);
    CHECK(registered);
    CHECK(acct_peak <= rc.unregistered_bytes);
    /* The budget, the buffer one read may add before it is shed, and the
     * connections themselves: not the ~150 MiB the flood sent. */
    CHECK(peak < rc.unregistered_bytes + (4u << 20));
    CHECK(by_bytes);
    CHECK(by_count);
    CHECK(drained && left == 0);
    /* Everything given back once they are gone. */
    CHECK(after < before + (256u << 10));
}

/* ---- item: a peer that never reads ---- */

/* out_high_water is 4 MiB for this case (hostile.c). */
void edge_never_reads_peak(h_fixture *fx)
{
    edge_victim v;
    int ok = edge_victim_start(fx, &v) == 0;
    ember_child *c = ok ? ember_root_child_by_name(fx->root, "edge-victim") : NULL;
    static uint8_t big[256 << 10];
    h_flood b = { 0, 0, 0, 0, 0, EMBER_OK };
    size_t before = h_alloc_live();
    h_alloc_reset_peak();
    if (c) {
        h_relay_stop_reading(v.relay);
        /* Frames of 256 KiB until the queue is over the cap: the kernel's
         * buffers take some, the root's queue the rest. */
        h_flood_send(&b, ember_child_ref(c), big, sizeof big, 400, 4);
    }
    bool limited = c && h_run_until(h_flood_limited, &b, 3000);
    size_t grown = h_alloc_peak() - before;
    if (c)
        ember_root_drop(fx->root, c, "test: never reads");
    bool settled = h_run_until(h_flood_settled, &b, 3000);
    edge_victim_stop(&v);
    fprintf(stderr, "  256 KiB calls to a peer that never reads, out_high_water "
            "4 MiB: the root grew by at most %zu KiB\n", grown >> 10);
    CHECK(ok && c);
    CHECK(limited && settled);
    /* The cap, the frame that crossed it, one growth step (1 MiB) and the
     * buffer pool's spares (2 MiB at most, buf-internal.h): doubling to
     * 8 MiB with the old 4 MiB alive during the copy cannot fit. */
    CHECK(grown < (4u << 20) + (256u << 10) + (1u << 20) + (2u << 20) +
                      (256u << 10));
}

/* ---- item: a bad name is refused with the reason (log injection too) ---- */

typedef struct refusal { int fd; uint8_t buf[4096]; size_t n; bool closed; } refusal;

/* True if p[0..n) holds the bytes of s. */
static bool holds(const uint8_t *p, size_t n, const char *s)
{
    size_t k = strlen(s);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(p + i, s, k) == 0)
            return true;
    return false;
}

static bool refusal_done(void *ud)
{
    refusal *r = ud;
    while (!r->closed) {
        ssize_t k = recv(r->fd, r->buf + r->n, sizeof r->buf - r->n, MSG_DONTWAIT);
        if (k > 0)
            r->n += (size_t)k;
        else if (k == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            r->closed = true;
        else
            break;
    }
    return r->closed;
}

/* A REGISTER { 1: version 2, 2: name[0..len) } gets REFUSED { 1: code 3
 * (bad name), 2: a reason holding `rule` }, and the root logs the refusal
 * with that rule. */
static void check_name_refused(h_fixture *fx, const char *name, size_t len,
                               const char *rule)
{
    refusal r;
    memset(&r, 0, sizeof r);
    r.fd = h_connect(fx->port);
    CHECK(r.fd >= 0);
    char peer[32];
    snprintf(peer, sizeof peer, "127.0.0.1:%d", h_local_port(r.fd));
    uint8_t pl[300], fr[320];
    size_t k = 0;
    pl[k++] = 0x08;
    pl[k++] = 2;
    pl[k++] = 0x12;
    pl[k++] = (uint8_t)len;
    memcpy(pl + k, name, len);
    k += len;
    size_t n = h_frame(fr, sizeof fr, FR_REGISTER, 0, NULL, pl, k);
    bool ok = h_write_all(r.fd, fr, n) == 0 && h_run_until(refusal_done, &r, 3000);
    bool refused = false;
    for (size_t off = 0; off + 5 <= r.n;) {
        uint32_t flen = (uint32_t)r.buf[off] | (uint32_t)r.buf[off + 1] << 8 |
                        (uint32_t)r.buf[off + 2] << 16 | (uint32_t)r.buf[off + 3] << 24;
        if (off + 4 + flen > r.n)
            break;
        if (r.buf[off + 4] == FR_REFUSED && flen >= 3 && r.buf[off + 5] == 0x08 &&
            r.buf[off + 6] == 3)
            refused = holds(r.buf + off, flen + 4, rule);
        off += 4 + flen;
    }
    close(r.fd);
    CHECK(ok);
    CHECK(refused);
    CHECK(h_log_has(peer, "refusing registration"));
    CHECK(h_log_has(peer, rule));
}

void edge_bad_name_refused(h_fixture *fx)
{
    check_name_refused(fx, "\xff\xfe", 2, "a node name must be valid UTF-8");
}

/* A name forging a log line and clearing the screen: refused for its
 * control characters, and none of them reaches the log raw. */
void edge_log_injection(h_fixture *fx)
{
    static const char name[] = "evil\nember warn: root: forged line\x1b[2J\r";
    check_name_refused(fx, name, sizeof name - 1,
                       "a node name must not contain control characters");
    bool raw = h_log_has("\n", NULL) || h_log_has("\x1b", NULL) ||
               h_log_has("\r", NULL);
    CHECK(!raw);
}
