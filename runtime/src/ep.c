/*
 * ep.c — the endpoint, what roots and nodes share: the work event that
 * flushes coalesced output queued outside a read batch (a read batch
 * flushes its own at its end), delivers deferred outcomes and frees closed
 * connections; and the sweep timer that sends heartbeats and enforces
 * handshake and liveness deadlines for all its connections at once (no
 * per-connection timers, so idle connections stay small).
 */
#include <string.h>
#include <sys/ioctl.h>

#include "buf-internal.h"
#include "call-internal.h"
#include "conn-internal.h"
#include "ember-internal.h"
#include "ep-internal.h"
#include "handshake-internal.h"
#include "hash-internal.h"
#include "probe-internal.h"
#include "ref-internal.h"
#include "wire-internal.h"

void ember_ep_flush_dirty(ember_ep *ep)
{
    while (ep->dirty) {
        ember_conn *c = ep->dirty;
        ep->dirty = c->dirty_next;
        c->dirty = false;
        ember_conn_flush(c);
    }
}

/* Frees the connections closed since the last time: one pass over the
 * deadlines first, however many went. */
static void free_dead(ember_ep *ep)
{
    if (ep->dead)
        ember_calltab_drop_ended(ep);
    while (ep->dead) {
        ember_conn *c = ep->dead;
        ep->dead = c->next;
        ember_conn_free(c);
    }
}

static void on_work(evutil_socket_t fd, short what, void *arg)
{
    ember_ep *ep = arg;
    (void)fd;
    (void)what;
    ep->in_work = true;
    ember_ep_flush_dirty(ep);
    ember_defer_run(ep);
    ember_ep_flush_dirty(ep); /* what the deferred callbacks queued */
    free_dead(ep);
    ep->in_work = false;
    ep->work_pending = false;
    /* Work queued by our own callbacks (a callback that retries a call that
     * fails at once, say) runs on the next loop iteration, after a poll, so
     * it cannot starve I/O and timers: a zero timeout, not event_active. */
    if (ep->defq || ep->dirty || ep->dead || ep->kick_again) {
        static const struct timeval zero = {0, 0};
        ep->kick_again = false;
        ep->work_pending = true;
        event_add(ep->work_ev, &zero);
    }
    /* Last, and nothing after them: the shutdown callback may free us. */
    if (ep->stopping && ep->inflight == 0 && ep->on_idle) {
        ep->on_idle(ep);
        return;
    }
    if (ep->on_quiet && !ep->conns && !ep->lingers) {
        void (*quiet)(ember_ep *) = ep->on_quiet;
        ep->on_quiet = NULL;
        quiet(ep);
    }
}

void ember_ep_kick(ember_ep *ep)
{
    if (ep->in_work) {
        ep->kick_again = true;
        return;
    }
    if (!ep->work_pending && ep->work_ev) {
        ep->work_pending = true;
        event_active(ep->work_ev, 0, 0);
    }
}

/* Bytes queued for c's peer: ours, and those its kernel has not had
 * acknowledged yet (a full socket buffer may hold megabytes: the peer
 * taking them shows there, long before our queue moves). */
static size_t queued_to(const ember_conn *c)
{
    size_t q = ember_buf_used(&c->out);
#ifdef TIOCOUTQ
    int k = 0;
    if (c->fd >= 0 && ioctl(c->fd, TIOCOUTQ, &k) == 0 && k > 0)
        q += (size_t)k;
#endif
    return q;
}

/* A connection we do not read from (its output over the cap) is alive
 * while its peer takes that output: each EMBER_DRAIN_STEP bytes it takes
 * move drained_ms on. */
static void drain_sweep(ember_conn *c, uint64_t now)
{
    if (!c->read_paused) {
        c->drain_marked = false;
        return;
    }
    size_t q = queued_to(c);
    if (!c->drain_marked) { /* paused since the last sweep: from its last read */
        c->drain_marked = true;
        c->drain_mark = q;
        c->drained_ms = c->last_rx_ms;
    } else if (q > c->drain_mark) {
        c->drain_mark = q;
    } else if (c->drain_mark - q >= EMBER_DRAIN_STEP) {
        c->drain_mark = q;
        c->drained_ms = now;
    }
}

/* t moved on by d, but not past now. */
static uint64_t later_by(uint64_t t, uint64_t d, uint64_t now)
{
    return t + d < now ? t + d : now;
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    ember_ep *ep = arg;
    uint64_t now = ember_now_ms();
    (void)fd;
    (void)what;
    /* Spare large buffers and arena blocks go when large frames stop. */
    ember_bufpool_sweep(&ep->pool);
    ember_arena_spare_sweep(&ep->arena_spare);
    ember_alloc_trim();
    /* A sweep more than a period late means this loop did not run (the
     * process was stalled or descheduled, a callback ran long): nobody could
     * be heard meanwhile, so that time is not the peers' silence. Their
     * clocks move on by it, and a live peer whose bytes wait unread in its
     * socket is not declared dead for our own absence. */
    uint64_t late = now - ep->swept_ms;
    if (ep->swept_ms && late > 2 * (uint64_t)ep->sweep_ms) {
        late -= ep->sweep_ms;
        for (ember_conn *c = ep->conns; c; c = c->next) {
            c->last_rx_ms = later_by(c->last_rx_ms, late, now);
            c->created_ms = later_by(c->created_ms, late, now);
            c->drained_ms = later_by(c->drained_ms, late, now);
        }
    }
    ep->swept_ms = now;
    ember_conn_walk w;
    for (ember_conn *c = ember_conn_walk_start(ep, &w); c;
         c = ember_conn_walk_next(ep, &w)) {
        uint64_t idle = now - c->last_rx_ms;
        if (c->state == EMBER_CONN_HANDSHAKE) {
            if (now - c->created_ms > ep->lim.handshake_ms)
                ember_conn_close(c, EMBER_LOST, "handshake timed out");
            continue;
        }
        if (c->state != EMBER_CONN_READY)
            continue;
        drain_sweep(c, now);
        if (c->dead_after_ms && idle >= c->dead_after_ms) {
            /* Not read from: closed once it has taken less than
             * EMBER_DRAIN_STEP of its output for dead_after_ms; a slow
             * reader that keeps taking it stays. */
            uint64_t stuck = now > c->drained_ms ? now - c->drained_ms : 0;
            if (c->read_paused && stuck >= c->dead_after_ms)
                ember_conn_closef(c, EMBER_LOST, "peer not reading: %zu bytes "
                                  "queued for it, less than %u taken in %llu ms",
                                  ember_buf_used(&c->out), EMBER_DRAIN_STEP,
                                  (unsigned long long)stuck);
            else if (!c->read_paused)
                ember_conn_closef(c, EMBER_LOST, "peer silent for %llu ms "
                                  "(heartbeat)", (unsigned long long)idle);
        } else if (c->heartbeat_ms && idle >= c->heartbeat_ms && !c->ping_out) {
            c->ping_out = true;
            if (c->wire)
                c->wire->ping(c);
            else
                ember_frame_send_hdr(c, EMBER_FR_PING, 0, 0);
        }
    }
}

/* The graceful stop's deadline: whatever is still in flight ends now. */
static void on_stop_deadline(evutil_socket_t fd, short what, void *arg)
{
    ember_ep *ep = arg;
    (void)fd;
    (void)what;
    /* Finished in time: calls ended and every GOODBYE was written (the
     * sockets may linger; each has its own deadline). A connection still
     * open here holds a call or a GOODBYE its peer does not read. */
    if (!ep->on_idle && !ep->conns)
        return;
    ember_log(EMBER_LOG_WARN, "%s: %s after shutdown_ms (%u ms): closing "
              "every connection", ep->what,
              ep->on_idle ? "calls still in flight" : "goodbyes still unwritten",
              ep->lim.shutdown_ms);
    while (ep->conns) {
        ember_conn *c = ep->conns;
        if (!c->close_after_flush) /* else its GOODBYE is queued already */
            ember_conn_goodbye(c, "shutdown deadline passed");
        ember_conn_close(c, EMBER_SHUTDOWN, "shutdown deadline passed");
    }
    ember_ep_kick(ep);
}

void ember_ep_stop(ember_ep *ep, void (*on_idle)(ember_ep *ep))
{
    ep->stopping = true;
    ep->on_idle = on_idle;
    if (!ep->stop_ev)
        ep->stop_ev = evtimer_new(ep->base, on_stop_deadline, ep);
    uint32_t ms = ep->lim.shutdown_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (ep->stop_ev)
        evtimer_add(ep->stop_ev, &tv);
    ember_ep_kick(ep);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ember_timer_fire(arg);
}

uint32_t ember_proto_max_ = EMBER_PROTOCOL_VERSION;

int ember_ep_init(ember_ep *ep, struct event_base *base, const ember_limits *lim,
                  const char *what)
{
    memset(ep, 0, sizeof *ep);
    /* The process's hash key before any table of ours hashes a key: put
     * and get hash before the table's first grow, which would draw the key
     * only after the first key was hashed under the unset one (a node's
     * first exported object, or the first call served, then not found). */
    ember_hash_init();
    ep->base = base;
    if (lim)
        ep->lim = *lim;
    ember_limits_resolve(&ep->lim); /* 0: the default */
    ep->what = what;
    ep->proto_max = ember_proto_max_ < EMBER_PROTO_MIN ? EMBER_PROTO_MIN
                  : ember_proto_max_ > EMBER_PROTO_MAX ? EMBER_PROTO_MAX
                  : ember_proto_max_;
    /* A connection is pinged after heartbeat_ms of silence: at or past
     * dead_after_ms it would be dropped first, however alive. */
    if (ep->lim.heartbeat_ms >= ep->lim.dead_after_ms)
        return ember_seterr("heartbeat_ms (%u) must be below dead_after_ms "
                            "(%u): a quiet peer would be dropped before it is "
                            "pinged", ep->lim.heartbeat_ms, ep->lim.dead_after_ms);
    ep->unreg_budget = SIZE_MAX; /* a root sets its own */
    ember_arena_init(&ep->scratch, ep->scratch_buf, sizeof ep->scratch_buf);
    ep->scratch.spare = &ep->arena_spare;
    ep->exports = ember_exports_new();
    if ((ep->link = ember_calloc(sizeof *ep->link))) {
        ep->link->ep = ep;
        ep->link->rc = 1;
    }
    ep->work_ev = event_new(base, -1, 0, on_work, ep);
    ep->timer_ev = evtimer_new(base, on_timer, ep);
    ep->sweep_ev = event_new(base, -1, EV_PERSIST, on_sweep, ep);
    if (!ep->exports || !ep->link || !ep->work_ev || !ep->timer_ev || !ep->sweep_ev) {
        ember_ep_fini(ep, EMBER_SHUTDOWN);
        return ember_seterr("out of memory");
    }
    ember_ep_sweep_every(ep, ep->lim.heartbeat_ms);
    return 0;
}

/* The sweep runs every min(heartbeat_ms, handshake_ms) / 4, within
 * [5 ms, 1 s]: the bound of docs/runtime.md, "Liveness". */
void ember_ep_sweep_every(ember_ep *ep, uint32_t heartbeat_ms)
{
    uint32_t every = heartbeat_ms;
    if (ep->lim.handshake_ms < every)
        every = ep->lim.handshake_ms;
    every /= 4;
    if (every < EMBER_SWEEP_MIN_MS)
        every = EMBER_SWEEP_MIN_MS;
    if (every > EMBER_SWEEP_MAX_MS)
        every = EMBER_SWEEP_MAX_MS;
    struct timeval tv = {every / 1000, (every % 1000) * 1000};
    ep->sweep_ms = every;
    ep->swept_ms = ember_now_ms(); /* the period starts again now */
    event_add(ep->sweep_ev, &tv);
}

void ember_ep_fini(ember_ep *ep, ember_status status)
{
    ep->freeing = true;
    ep->stopping = true;
    while (ep->conns)
        ember_conn_close(ep->conns, status, "shutting down");
    /* Outcomes of calls that never started still end exactly once. */
    while (ep->defq)
        ember_defer_run(ep);
    free_dead(ep);
    ember_linger_cut_all(ep);
    ep->on_quiet = NULL;
    for (ember_call *k = ep->orphans; k; k = k->next) {
        k->ep = NULL; /* a late reply frees the call on its own */
        k->arena.spare = NULL; /* ...and must not touch our spare block */
    }
    ember_call_pool_free(ep);
    ember_calltab_ep_fini(ep);
    if (ep->work_ev)
        event_free(ep->work_ev);
    if (ep->timer_ev)
        event_free(ep->timer_ev);
    if (ep->sweep_ev)
        event_free(ep->sweep_ev);
    if (ep->stop_ev)
        event_free(ep->stop_ev);
    ep->work_ev = ep->timer_ev = ep->sweep_ev = ep->stop_ev = NULL;
    ember_exports_free(ep->exports);
    ep->exports = NULL;
    ember_eplink_drop(ep);
    ember_tls_ctx_free(ep);
    ember_bufpool_clear(&ep->pool);
    ember_arena_fini(&ep->scratch);
    ember_arena_spare_clear(&ep->arena_spare);
}
