/*
 * conn.c — one connection: a nonblocking socket with a raw read event and a
 * write event (no bufferevent: we read 64 KiB or a whole large frame at a
 * time), a contiguous input buffer parsed in place, and a contiguous output
 * buffer the encoders write into. Writes are coalesced: a frame queued on an
 * empty buffer puts the connection on the endpoint's dirty list, and
 * everything queued goes in one syscall per connection: at the end of the
 * read batch that queued it (the answers to what was read leave as raw's
 * echo does, without another trip through the event loop), or else from
 * the endpoint's work event later in the same loop iteration.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf-internal.h"
#include "call-internal.h"
#include "conn-internal.h"
#include "ember-internal.h"
#include "ep-internal.h"
#include "hash-internal.h"
#include "metrics-internal.h"
#include "ref-internal.h"
#include "wire-internal.h"

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);

/* ---- the plain transport: the socket itself ---- */

static ssize_t plain_read(ember_conn *c, void *p, size_t n)
{
    ssize_t r = read(c->fd, p, n);
    if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            errno = EAGAIN;
            return -1;
        }
        ember_seterr("read failed: %s", strerror(errno));
    }
    return r;
}

static ssize_t plain_write(ember_conn *c, const void *p, size_t n)
{
    /* send(MSG_NOSIGNAL): a peer gone away is an error, not a SIGPIPE. An
     * adopted descriptor may not be a socket: then plain write(). */
    ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == ENOTSOCK)
        w = write(c->fd, p, n);
    if (w < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            errno = EAGAIN;
            return -1;
        }
        ember_seterr("write failed: %s", strerror(errno));
    }
    return w;
}

const ember_transport ember_plain_transport = {plain_read, plain_write, NULL,
                                               NULL};

ember_conn *ember_conn_new(ember_ep *ep, int fd, const char *peer)
{
    ember_conn *c = ember_calloc(sizeof *c);
    if (!c) {
        close(fd);
        ember_seterr("out of memory");
        return NULL;
    }
    c->ep = ep;
    c->fd = fd;
    c->tp = &ember_plain_transport;
    c->state = EMBER_CONN_HANDSHAKE;
    c->in.pool = c->out.pool = &ep->pool;
    /* Calls fail fast over out_high_water: the queue stays near it. */
    c->out.soft_cap = ep->lim.out_high_water;
    c->created_ms = c->last_rx_ms = ember_now_ms();
    c->heartbeat_ms = ep->lim.heartbeat_ms;
    c->dead_after_ms = ep->lim.dead_after_ms;
    c->next_oid = 1;
    c->out_max_frame = ep->lim.max_frame;
    c->out_max_depth = ep->lim.max_depth;
    c->peer = ember_strdup(peer ? peer : "?");
    c->rev = event_new(ep->base, fd, EV_READ | EV_PERSIST, on_read, c);
    c->wev = event_new(ep->base, fd, EV_WRITE, on_write, c);
    if (!c->peer || !c->rev || !c->wev || event_add(c->rev, NULL)) {
        ember_seterr("out of memory");
        close(fd);
        if (c->rev)
            event_free(c->rev);
        if (c->wev)
            event_free(c->wev);
        ember_strfree(c->peer);
        ember_free(c, sizeof *c);
        return NULL;
    }
    c->next = ep->conns;
    if (ep->conns)
        ep->conns->prev = c;
    ep->conns = c;
    ep->nconns++;
    /* Unregistered until the handshake ends: last in the age order. */
    c->unreg = true;
    c->unreg_prev = ep->unreg_tail;
    if (ep->unreg_tail)
        ep->unreg_tail->unreg_next = c;
    else
        ep->unreg_head = c;
    ep->unreg_tail = c;
    ep->unreg_n++;
    return c;
}

static void unreg_unlink(ember_conn *c)
{
    ember_ep *ep = c->ep;
    if (!c->unreg)
        return;
    c->unreg = false;
    if (c->unreg_prev)
        c->unreg_prev->unreg_next = c->unreg_next;
    else
        ep->unreg_head = c->unreg_next;
    if (c->unreg_next)
        c->unreg_next->unreg_prev = c->unreg_prev;
    else
        ep->unreg_tail = c->unreg_prev;
    c->unreg_prev = c->unreg_next = NULL;
    ep->unreg_n--;
    ep->unreg_bytes -= c->unreg_held;
    c->unreg_held = 0;
}

void ember_conn_set_ready(ember_conn *c)
{
    c->state = EMBER_CONN_READY;
    unreg_unlink(c);
}

/* Over the budget of unregistered peers: the one holding the most input
 * goes (the oldest of equals), until the rest fit. A legitimate node's
 * REGISTER is small, so a flood of big frames sheds the flooders. */
static void unreg_shed(ember_ep *ep, ember_conn *reading)
{
    while (ep->unreg_bytes > ep->unreg_budget) {
        ember_conn *big = NULL;
        for (ember_conn *x = ep->unreg_head; x; x = x->unreg_next)
            if (!big || x->unreg_held > big->unreg_held)
                big = x;
        if (!big || !big->unreg_held)
            return;
        big->close_class = 1 + EMBER_CLOSE_LIMIT;
        ember_conn_closef(big, EMBER_LOST, "unregistered peers hold %zu bytes, "
                          "over unregistered_bytes %zu: the largest (%zu "
                          "bytes) goes", ep->unreg_bytes, ep->unreg_budget,
                          big->unreg_held);
        /* Its input goes now, not when it is reaped (nothing parses it:
         * only `reading` is inside a read), and not into the pool. */
        if (big != reading) {
            big->in.pool = NULL;
            ember_buf_release(&big->in);
        }
    }
}

/* Recounts what an unregistered c holds (its input buffer, and over TLS
 * what OpenSSL read before its handshake finished) and sheds if that took
 * the endpoint over budget. -1 when c itself was shed. */
static int unreg_charge(ember_conn *c)
{
    ember_ep *ep = c->ep;
    if (!c->unreg)
        return 0;
    size_t held = c->in.cap + (c->tls && !c->tls_done ? c->tls_hs_in : 0);
    ep->unreg_bytes = ep->unreg_bytes - c->unreg_held + held;
    c->unreg_held = held;
    if (ep->unreg_bytes > ep->unreg_budget)
        unreg_shed(ep, c);
    if (ep->unreg_bytes > ep->unreg_peak)
        ep->unreg_peak = ep->unreg_bytes;
    return c->state == EMBER_CONN_CLOSED ? -1 : 0;
}

void ember_conn_mark_dirty_(ember_conn *c)
{
    c->dirty = true;
    c->dirty_next = c->ep->dirty;
    c->ep->dirty = c;
    if (!c->ep->batch_depth) /* else the batch's end flushes it */
        ember_ep_kick(c->ep);
}

static void unmark_dirty(ember_conn *c)
{
    if (!c->dirty)
        return;
    for (ember_conn **pp = &c->ep->dirty; *pp; pp = &(*pp)->dirty_next)
        if (*pp == c) {
            *pp = c->dirty_next;
            break;
        }
    c->dirty = false;
}

/* Output queued to a peer beyond which we stop reading from it: what it
 * sends makes answers (PONGs, replies, errors) that would pile up while it
 * does not read. Before registration only the handshake's few frames are
 * due, so the cap is small. */
static size_t out_cap(const ember_conn *c)
{
    size_t cap = c->ep->lim.out_high_water;
    if (c->state == EMBER_CONN_HANDSHAKE && cap > EMBER_HANDSHAKE_MAX_OUT)
        cap = EMBER_HANDSHAKE_MAX_OUT;
    return cap;
}

static void pause_reading(ember_conn *c)
{
    event_del(c->rev);
    c->read_paused = true;
    ember_log(EMBER_LOG_DEBUG, "%s: %s is not reading (%zu bytes queued): "
              "not reading from it until it does", c->ep->what, c->peer,
              ember_buf_used(&c->out));
}

/* Half the cap drained: read again (and what TLS already decrypted, and
 * the frames left unparsed when the cap was crossed). */
static void resume_reading(ember_conn *c)
{
    c->read_paused = false;
    event_add(c->rev, NULL);
    if (ember_buf_used(&c->in) > 0 || (c->tp->pending && c->tp->pending(c)))
        event_active(c->rev, EV_READ, 0);
}

void ember_conn_flush(ember_conn *c)
{
    if (c->state == EMBER_CONN_CLOSED)
        return;
    size_t n = ember_buf_used(&c->out);
    c->write_needs_read = false;
    /* TLS writes a record at a time: keep going while the socket takes it. */
    while (n > 0) {
        ssize_t w = c->tp->write(c, c->out.data + c->out.off, n);
        if (w < 0) {
            if (errno != EAGAIN) {
                c->peer_gone = true;
                ember_conn_close(c, EMBER_LOST, ember_last_error());
                return;
            }
            break;
        }
        ember_buf_consume(&c->out, (size_t)w);
        n = ember_buf_used(&c->out);
    }
    /* A TLS handshake reads the peer's bytes inside our writes too (the
     * root's HELLO waits for it): count what it took in. */
    if (c->unreg && c->tls && !c->tls_done && unreg_charge(c))
        return;
    if (c->read_paused && n <= out_cap(c) / 2)
        resume_reading(c);
    if (ember_buf_used(&c->out) > 0) {
        /* Waiting on readability (a TLS handshake): on_read flushes again;
         * arming the write event now would spin on a writable socket. */
        if (!c->write_needs_read && !c->wev_added && event_add(c->wev, NULL) == 0)
            c->wev_added = true;
    } else if (c->close_after_flush) {
        ember_conn_close(c, EMBER_LOST, "said goodbye");
    }
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    ember_conn *c = arg;
    (void)fd;
    (void)what;
    c->wev_added = false;
    if (c->read_needs_write) {
        c->read_needs_write = false;
        on_read(c->fd, EV_READ, c);
        if (c->state == EMBER_CONN_CLOSED)
            return;
    }
    ember_conn_flush(c);
}

/* GOODBYE { 1: string reason }: the reason is optional (a graceful stop
 * sends none; a peer that drops us says why). */
static void goodbye_in(ember_conn *c, const ember_frame *f)
{
    char why[200];
    size_t wl = 0;
    ember_dec d;
    uint32_t tag;
    unsigned wt;
    uint64_t n;
    ember_dec_init(&d, f->payload, f->len, NULL);
    while (!wl && ember_dec_field(&d, &tag, &wt) == 1) {
        if (tag == 1 && wt == EMBER_WT_LEN) {
            if (ember_dec_raw_varint(&d, &n) || n > (uint64_t)(d.end - d.p))
                break;
            wl = ember_escape(why, sizeof why, (const char *)d.p, (size_t)n);
        } else if (ember_dec_skip(&d, wt)) {
            break;
        }
    }
    if (wl)
        ember_conn_closef(c, EMBER_LOST, "%s: %s", EMBER_GOODBYE_REASON, why);
    else
        ember_conn_close(c, EMBER_LOST, EMBER_GOODBYE_REASON);
}

void ember_conn_peer_limits(ember_conn *c, uint32_t max_frame,
                            const ember_dec_limits *lim)
{
    if (max_frame && max_frame < c->out_max_frame)
        c->out_max_frame = max_frame;
    if (lim->max_depth && lim->max_depth < c->out_max_depth)
        c->out_max_depth = lim->max_depth;
    c->peer_lim = *lim;
}

int ember_conn_goodbye(ember_conn *c, const char *reason)
{
    ember_enc e;
    if (c->wire)
        return c->state == EMBER_CONN_READY ? c->wire->goodbye(c, reason) : -1;
    if (c->state != EMBER_CONN_READY || ember_frame_begin(c, &e, EMBER_FR_GOODBYE))
        return -1;
    if (reason && *reason)
        ember_enc_string(&e, 1, reason);
    return ember_frame_end(c, &e);
}

static void handle_frame(ember_conn *c, const ember_frame *f);

/* A CALL, ONEWAY, REPLY or ERROR ending with the table of the sender's
 * objects it holds (protocol 3): the table counts them all, so those no
 * decode keeps (a refused call, an unknown field, a late answer) go back
 * to their owner once the frame is handled. */
static void frame_with_refs(ember_conn *c, const ember_frame *in)
{
    ember_frame f = *in;
    ember_ref *held;
    const char *why;
    if (!c->ref_tables) { /* not a kind of the version it speaks */
        ember_conn_close(c, EMBER_PROTOCOL, "bad frame: unknown frame kind");
        return;
    }
    f.kind &= (uint8_t)~EMBER_FR_REFS;
    if (c->state != EMBER_CONN_READY) {
        handle_frame(c, &f); /* the violation */
        return;
    }
    if (ember_ref_table_in(c, f.payload, &f.len, &held, &why))
        ember_conn_closef(c, EMBER_PROTOCOL, "bad frame: %s", why);
    else
        handle_frame(c, &f);
    c->in_refs = 0; /* c lives until the work event, closed or not */
    ember_ref_table_done(held);
}

static void handle_frame(ember_conn *c, const ember_frame *f)
{
    ember_ep *ep = c->ep;
    if (f->kind & EMBER_FR_REFS) {
        frame_with_refs(c, f);
        return;
    }
    switch (f->kind) {
    case EMBER_FR_PING:
        ember_frame_send_hdr(c, EMBER_FR_PONG, 0, 0);
        return;
    case EMBER_FR_PONG:
        return;
    case EMBER_FR_GOODBYE:
        goodbye_in(c, f);
        return;
    case EMBER_FR_HELLO:
    case EMBER_FR_REGISTER:
    case EMBER_FR_WELCOME:
    case EMBER_FR_REFUSED:
        if (c->state != EMBER_CONN_HANDSHAKE) {
            ember_conn_closef(c, EMBER_PROTOCOL, "protocol violation: %s after "
                              "registration", ember_frame_kind_name(f->kind));
            return;
        }
        ep->on_handshake(c, f);
        return;
    default:
        break;
    }
    if (c->state != EMBER_CONN_READY) {
        ember_conn_closef(c, EMBER_PROTOCOL, "protocol violation: %s before "
                          "registration", ember_frame_kind_name(f->kind));
        return;
    }
    switch (f->kind) {
    case EMBER_FR_CALL:
    case EMBER_FR_ONEWAY:
        ember_call_dispatch(c, f);
        break;
    case EMBER_FR_REPLY:
    case EMBER_FR_ERROR:
        ember_calltab_answer(c, f);
        break;
    case EMBER_FR_CANCEL:
        ember_call_cancel_in(c, f->h[0]);
        break;
    case EMBER_FR_DECREF:
        ember_ref_decref_in(c, f->h[0], f->h[1]);
        break;
    }
}

int ember_conn_read_into(ember_conn *c, size_t want)
{
    ember_buf *in = &c->in;
    if (ember_buf_reserve(in, want)) {
        ember_conn_close(c, EMBER_LOST, "out of memory for the input buffer");
        return 0;
    }
    if (c->unreg && unreg_charge(c))
        return 0;
    ssize_t n = c->tp->read(c, in->data + in->len, in->cap - in->len);
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN) {
            if (ember_buf_used(in) == 0) {
                ember_buf_release(in);
                unreg_charge(c);
            }
            /* TLS may need to write before it can read (a handshake). */
            if (c->read_needs_write && !c->wev_added &&
                event_add(c->wev, NULL) == 0)
                c->wev_added = true;
            return 0;
        }
        if (n == 0) {
            c->peer_gone = true; /* nothing to linger for */
            ember_conn_close(c, EMBER_LOST, "peer closed the connection");
        } else {
            ember_conn_close(c, EMBER_LOST, ember_last_error());
        }
        return 0;
    }
    in->len += (size_t)n;
    c->last_rx_ms = ember_clock_ms(); /* held by on_read */
    c->ping_out = false;
    return 1;
}

int ember_conn_read_done(ember_conn *c, size_t used)
{
    ember_buf_consume(&c->in, used);
    unreg_charge(c); /* the buffer may have gone back to the pool */
    if (ember_buf_used(&c->out) > out_cap(c)) {
        pause_reading(c);
        return 0;
    }
    return 1;
}

/* Output a read batch sends before the batch ends (docs/runtime.md,
 * "Output"). 64 pipelined calls of 64 bytes answer ~5 KiB: sent in two
 * parts, the peer's work on the first overlaps ours on the rest (1 KiB, a
 * send every ~13 calls, costs more in syscalls than it buys). */
#define EMBER_FLUSH_EARLY 3072u

/* A frame over the size limit c is under (limit: max_frame, or less
 * before registration): the reason names which. */
static void close_too_large(ember_conn *c, uint32_t len, uint32_t limit)
{
    c->close_class = 1 + EMBER_CLOSE_LIMIT;
    ember_conn_closef(c, EMBER_PROTOCOL, "bad frame: frame of %u bytes, larger "
                      "than %s (%u)", len, limit < c->ep->lim.max_frame
                      ? "the limit before registration" : "max_frame", limit);
}

/* One read into the input buffer and the frames it completes. Returns 1
 * when bytes came in, 0 otherwise (or the connection closed). */
static int read_once(ember_conn *c)
{
    if (c->wire)
        return c->wire->input(c);
    ember_buf *in = &c->in;
    uint32_t max = c->ep->lim.max_frame;
    /* Before registration only small frames make sense: an unregistered
     * peer must not make us buffer 16 MiB. */
    if (c->state == EMBER_CONN_HANDSHAKE && max > EMBER_HANDSHAKE_MAX_FRAME)
        max = EMBER_HANDSHAKE_MAX_FRAME;

    /* Read at least a block, or as much of a large frame as we can take in
     * one go. The buffer at most doubles over what the peer actually sent,
     * so a header announcing a huge frame costs nothing until the bytes
     * arrive. */
    size_t want = EMBER_BUF_BLOCK, have = ember_buf_used(in);
    /* The last frame was large: expect another of its size and read it
     * whole into one (pooled) buffer, instead of a block first and then a
     * grow that copies it. Only sizes the pool keeps spares of: a burst of
     * huge frames must not make every later wake-up allocate megabytes. */
    if (have == 0 && c->in_hint > want &&
        c->in_hint <= EMBER_BUF_LARGE_BUDGET / 2)
        want = c->in_hint;
    bool whole = false; /* a complete frame is buffered already */
    if (have >= 4) {
        uint32_t len = ember_frame_len(in->data + in->off);
        if (len > max) {
            close_too_large(c, len, max);
            return 0;
        }
        whole = have >= (size_t)len + 4;
        size_t rest = whole ? 0 : (size_t)len + 4 - have;
        if (rest > want)
            want = rest < have ? rest : (have > want ? have : want);
    }
    /* Frames left unparsed when the output went over its cap (below) are
     * handled before anything more is read. */
    if (!whole && ember_conn_read_into(c, want) <= 0)
        return 0;

    /* Frames are contiguous: parse each in place. */
    size_t off = in->off;
    /* Over the cap, the rest waits in the buffer: a read of many small
     * frames whose answers are larger (NO_METHOD errors) must not queue
     * more than the frame that crossed it. Checked with the early flush
     * below (a cap under EMBER_FLUSH_EARLY is overshot by less than it). */
    bool over = ember_buf_used(&c->out) > out_cap(c);
    while (!over && c->state != EMBER_CONN_CLOSED) {
        ember_frame f;
        size_t used;
        const char *why = NULL;
        uint32_t limit = c->state == EMBER_CONN_HANDSHAKE ? max : c->ep->lim.max_frame;
        int r = ember_frame_parse(in->data + off, in->len - off, limit, &f,
                                  &used, &why);
        if (r == 0)
            break;
        if (r < 0) {
            if (why == ember_frame_too_large)
                close_too_large(c, ember_frame_len(in->data + off), limit);
            else
                ember_conn_closef(c, EMBER_PROTOCOL, "bad frame: %s", why);
            return 0;
        }
        c->in_hint = used > EMBER_BUF_BLOCK ? (uint32_t)used : 0;
        /* Calls and replies on a registered connection, the stream's bulk,
         * skip handle_frame's two switches. */
        if (f.kind == EMBER_FR_CALL && c->state == EMBER_CONN_READY)
            ember_call_dispatch(c, &f);
        else if (f.kind == EMBER_FR_REPLY && c->state == EMBER_CONN_READY)
            ember_calltab_answer(c, &f);
        else
            handle_frame(c, &f);
        off += used;
        /* A long batch sends what it answered so far: the peer starts on
         * it while we go on, at one more send per EMBER_FLUSH_EARLY bytes
         * (none while the socket is full: the write event sends then). */
        if (ember_buf_used(&c->out) >= EMBER_FLUSH_EARLY) {
            if (!c->wev_added)
                ember_conn_flush(c);
            over = ember_buf_used(&c->out) > out_cap(c);
        }
    }
    if (c->state == EMBER_CONN_CLOSED)
        return 0; /* buffers go when the connection is reaped */
    return ember_conn_read_done(c, off - in->off);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    ember_conn *c = arg;
    (void)fd;
    (void)what;
    /* A TLS write that waited for the peer's handshake bytes. */
    if (c->write_needs_read) {
        ember_conn_flush(c);
        if (c->state == EMBER_CONN_CLOSED)
            return;
    }
    if (c->read_paused)
        return;
    /* TLS can hold decrypted bytes the socket will never announce again:
     * drain them before going back to the loop. */
    ember_ep *ep = c->ep; /* c may close, but lives until the work event */
    ember_clock_hold(); /* one clock reading for the whole batch */
    ember_call_batch_begin(ep);
    while (read_once(c) && c->state != EMBER_CONN_CLOSED && c->tp->pending &&
           c->tp->pending(c))
        ;
    ember_call_batch_end(ep); /* the calls it answered inline get their time */
    ember_clock_release();
    if (!ep->batch_depth && ep->dirty)
        ember_ep_flush_dirty(ep); /* what the batch queued, one send each */
}

/* ---- lingering (conn-internal.h) ---- */

typedef struct ember_linger {
    ember_ep *ep;
    struct ember_linger *prev, *next; /* ep->lingers, newest first */
    int fd;
    struct event *ev;
    uint64_t until_ms;             /* the deadline: handshake_ms */
    size_t drained;                /* bytes of the peer's thrown away */
    uint8_t *out;                  /* output the close left unwritten */
    size_t out_len, out_off;
} ember_linger;

static void linger_end(ember_linger *l)
{
    ember_ep *ep = l->ep;
    event_free(l->ev);
    close(l->fd);
    if (l->out)
        ember_free(l->out, l->out_len);
    if (l->prev)
        l->prev->next = l->next;
    else
        ep->lingers = l->next;
    if (l->next)
        l->next->prev = l->prev;
    ep->nlingers--;
    ember_free(l, sizeof *l);
    if (!ep->lingers && ep->on_quiet)
        ember_ep_kick(ep);
}

void ember_linger_cut_all(ember_ep *ep)
{
    while (ep->lingers)
        linger_end(ep->lingers);
}

static void on_linger(evutil_socket_t fd, short what, void *arg);

/* (Re)arms l's event for what it waits on: the rest of its output, the
 * peer's end of stream, the deadline. -1 when the deadline passed. */
static int linger_arm(ember_linger *l)
{
    uint64_t now = ember_now_ms();
    if (now >= l->until_ms)
        return -1;
    uint64_t ms = l->until_ms - now;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    short what = EV_READ | (l->out_off < l->out_len ? EV_WRITE : 0);
    if (event_assign(l->ev, l->ep->base, l->fd, what, on_linger, l) ||
        event_add(l->ev, &tv))
        return -1;
    return 0;
}

static void on_linger(evutil_socket_t fd, short what, void *arg)
{
    ember_linger *l = arg;
    if (what & EV_TIMEOUT) {
        /* libevent adds the timeout to its time cached when the loop woke,
         * which may be behind ours: the deadline is until_ms, re-armed for
         * what is left of it. */
        if (linger_arm(l))
            linger_end(l);
        return;
    }
    if ((what & EV_WRITE) && l->out_off < l->out_len) {
        ssize_t w = send(fd, l->out + l->out_off, l->out_len - l->out_off,
                         MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            linger_end(l);
            return;
        }
        if (w > 0)
            l->out_off += (size_t)w;
        if (l->out_off == l->out_len && shutdown(fd, SHUT_WR)) {
            linger_end(l);
            return;
        }
    }
    if (what & EV_READ) {
        uint8_t sink[16384];
        for (;;) {
            ssize_t r = recv(fd, sink, sizeof sink, 0);
            if (r == 0 ||
                (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                linger_end(l); /* its end of stream (or it is gone) */
                return;
            }
            if (r < 0)
                break;
            l->drained += (size_t)r;
            if (l->drained > EMBER_LINGER_MAX_IN) {
                linger_end(l);
                return;
            }
        }
    }
    if (linger_arm(l))
        linger_end(l);
}

/* Hands c's socket to a linger, or closes it at once: when freeing, when
 * the peer is gone, when output is left that cannot be written from here
 * (TLS, or more than EMBER_LINGER_MAX_OUT), when it is no socket. */
static void linger_start(ember_conn *c, bool tls)
{
    ember_ep *ep = c->ep;
    size_t left = ember_buf_used(&c->out);
    ember_linger *l = NULL;
    if (ep->freeing || c->peer_gone || c->fd < 0 ||
        (left && (tls || left > EMBER_LINGER_MAX_OUT)) ||
        !(l = ember_calloc(sizeof *l)) ||
        (left && !(l->out = ember_malloc(left))) ||
        (!left && shutdown(c->fd, SHUT_WR)) ||
        !(l->ev = event_new(ep->base, -1, 0, on_linger, l))) {
        if (l) {
            if (l->out)
                ember_free(l->out, left);
            ember_free(l, sizeof *l);
        }
        if (c->fd >= 0)
            close(c->fd);
        return;
    }
    l->ep = ep;
    l->fd = c->fd;
    if (left)
        memcpy(l->out, c->out.data + c->out.off, left);
    l->out_len = left;
    l->until_ms = ember_now_ms() + ep->lim.handshake_ms;
    /* Full: the oldest goes now. */
    if (ep->nlingers >= EMBER_LINGER_MAX) {
        ember_linger *old = ep->lingers;
        while (old->next)
            old = old->next;
        linger_end(old);
    }
    l->next = ep->lingers;
    if (ep->lingers)
        ep->lingers->prev = l;
    ep->lingers = l;
    ep->nlingers++;
    if (linger_arm(l))
        linger_end(l);
}

static bool clean_close(ember_status st, const char *reason)
{
    return st == EMBER_SHUTDOWN || strcmp(reason, EMBER_GOODBYE_REASON) == 0 ||
           strcmp(reason, "said goodbye") == 0 ||
           strcmp(reason, "shutting down") == 0 ||
           strcmp(reason, "node closing") == 0 ||
           strcmp(reason, "root shutting down") == 0;
}

ember_conn *ember_conn_walk_start(ember_ep *ep, ember_conn_walk *w)
{
    w->next = ep->conns;
    w->up = ep->walks;
    ep->walks = w;
    return ember_conn_walk_next(ep, w);
}

ember_conn *ember_conn_walk_next(ember_ep *ep, ember_conn_walk *w)
{
    ember_conn *c = w->next;
    if (!c) {
        ep->walks = w->up;
        return NULL;
    }
    w->next = c->next;
    return c;
}

void ember_conn_close(ember_conn *c, ember_status st, const char *reason)
{
    ember_ep *ep = c->ep;
    if (c->state == EMBER_CONN_CLOSED)
        return;
    /* A registered peer we drop for breaking the protocol or a limit
     * learns why (written below with whatever else is queued). */
    if (st == EMBER_PROTOCOL)
        ember_conn_goodbye(c, reason);
    c->state = EMBER_CONN_CLOSED;
    unreg_unlink(c);
    ep->mt.closed[c->close_class ? c->close_class - 1u
                                 : ember_metrics_close_reason(st, reason)]++;
    /* Orderly ends (goodbyes, shutdown) are news, not trouble. */
    ember_log(clean_close(st, reason) ? EMBER_LOG_INFO : EMBER_LOG_WARN,
              "%s: connection to %s (%s) closed: %s", ep->what,
              c->name ? c->name : "unregistered peer", c->peer, reason);
    event_del(c->rev);
    event_del(c->wev);
    c->wev_added = false;
    /* The peer should see a last GOODBYE, ERROR or REFUSED we queued: what
     * the socket takes now, the rest from the linger. */
    size_t left = ember_buf_used(&c->out);
    while (left > 0 && !c->peer_gone) {
        ssize_t w = c->tp->write(c, c->out.data + c->out.off, left);
        if (w <= 0) {
            if (w < 0 && errno != EAGAIN) {
                c->peer_gone = true;
                ember_log(EMBER_LOG_DEBUG, "%s: last write to %s failed",
                          ep->what, c->peer);
            }
            break;
        }
        ember_buf_consume(&c->out, (size_t)w);
        left = ember_buf_used(&c->out);
    }
    bool tls = c->tls != NULL;
    if (c->tp->close)
        c->tp->close(c);
    linger_start(c, tls);
    c->fd = -1;
    unmark_dirty(c);

    /* Move from the live list to the dead list; freed by the work event. */
    for (ember_conn_walk *w = ep->walks; w; w = w->up)
        if (w->next == c)
            w->next = c->next;
    if (c->prev)
        c->prev->next = c->next;
    else
        ep->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    ep->nconns--;
    c->prev = NULL;
    c->next = ep->dead;
    ep->dead = c;
    ember_ep_kick(ep);

    /* Pending calls end EMBER_LOST however the connection went, a protocol
     * violation included: EMBER_PROTOCOL is kept for the one call whose own
     * reply does not decode. The message says why the connection went. */
    char msg[320];
    if (st == EMBER_PROTOCOL) {
        const char *pv = "protocol violation: ", *why = reason;
        if (strncmp(why, pv, strlen(pv)) == 0)
            why += strlen(pv);
        snprintf(msg, sizeof msg, "connection lost: peer broke the protocol: %s",
                 why);
        st = EMBER_LOST;
    } else {
        snprintf(msg, sizeof msg, "connection lost: %s", reason);
    }
    ember_calltab_fail_all(c, st, st == EMBER_SHUTDOWN ? "shut down" : msg);
    ember_call_orphan_all(c);
    ember_ref_conn_closed(c);
    if (ep->on_lost)
        ep->on_lost(c, reason);
    ember_ep_check_idle(ep);
}

void ember_conn_closef(ember_conn *c, ember_status st, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ember_conn_close(c, st, buf);
}

uint64_t ember_conn_htab_probes(const ember_conn *c)
{
    return c->calls_by_id.probes + c->rrefs.probes + c->xobj_oids.probes +
           c->xobj_refs.probes + c->proxies.probes;
}

void ember_conn_free(ember_conn *c)
{
    if (c->wire)
        c->wire->free(c);
    ember_buf_release(&c->in);
    ember_buf_release(&c->out);
    event_free(c->rev);
    event_free(c->wev);
    ember_calltab_free(c);
    c->ep->htab_probes += ember_conn_htab_probes(c);
    ember_htab_free(&c->calls_by_id);
    ember_htab_free(&c->xobj_oids);
    ember_htab_free(&c->xobj_refs);
    ember_htab_free(&c->proxies);
    ember_htab_free(&c->rrefs);
    ember_strfree(c->peer);
    ember_free(c, sizeof *c);
}
