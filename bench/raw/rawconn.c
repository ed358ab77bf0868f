/* bench/raw/rawconn.c — see rawconn.h. */
#include "rawconn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#define REPLY_BIT 0x80000000u
#define LEN_MASK 0x7fffffffu
#define MAX_FRAME (64u << 20)
#define BUF_INIT (256u << 10)
/* Reads per readable event when each read fills the buffer. */
#define MAX_READS 16

struct rconn {
    int fd;
    int closed;
    int want_write;            /* the write event is armed */
    struct event *rev, *wev;
    uint8_t *in;
    size_t in_len, in_cap;
    uint8_t *out;
    size_t out_off, out_len, out_cap;
    uint64_t served;
    rconn_reply_fn on_reply;
    rconn_close_fn on_close;
    void *ud;
};

static uint8_t *filler;         /* payload filler, grown on demand */
static size_t filler_len;

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

uint64_t rconn_ts(const uint8_t *payload)
{
    return (uint64_t)get_le32(payload) | (uint64_t)get_le32(payload + 4) << 32;
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) {
        fprintf(stderr, "rawconn: out of memory\n");
        exit(1);
    }
    return q;
}

static void shut(rconn *c)
{
    if (c->closed)
        return;
    c->closed = 1;
    event_del(c->rev);
    event_del(c->wev);
    c->on_close(c, c->ud);
}

/* Room for n more output bytes. */
static uint8_t *out_reserve(rconn *c, size_t n)
{
    if (c->out_off == c->out_len) {
        c->out_off = c->out_len = 0;
    } else if (c->out_off > 0 && c->out_cap - c->out_len < n) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    if (c->out_cap - c->out_len < n) {
        size_t cap = c->out_cap;
        while (cap - c->out_len < n)
            cap *= 2;
        c->out = xrealloc(c->out, cap);
        c->out_cap = cap;
    }
    return c->out + c->out_len;
}

static void out_append(rconn *c, const uint8_t *p, size_t n)
{
    memcpy(out_reserve(c, n), p, n);
    c->out_len += n;
}

void rconn_request(rconn *c, uint64_t ts, uint32_t size)
{
    if (size < 8)
        size = 8;
    if (filler_len < size) {
        filler = xrealloc(filler, size);
        memset(filler, 'x', size);
        filler_len = size;
    }
    uint8_t *p = out_reserve(c, 4 + (size_t)size);
    put_le32(p, size);
    put_le32(p + 4, (uint32_t)ts);
    put_le32(p + 8, (uint32_t)(ts >> 32));
    memcpy(p + 12, filler, size - 8);
    c->out_len += 4 + (size_t)size;
}

void rconn_flush(rconn *c)
{
    while (!c->closed && c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->want_write) {
                c->want_write = 1;
                event_add(c->wev, NULL);
            }
            return;
        }
        shut(c);
        return;
    }
    c->out_off = c->out_len = 0;
    if (c->want_write) {
        c->want_write = 0;
        event_del(c->wev);
    }
}

/*
 * Echoes input bytes [s, e) (requests whose headers are already flipped).
 * At the end of a batch with nothing queued, they are written straight from
 * the input buffer; only what the socket does not take is copied.
 */
static void emit_span(rconn *c, size_t s, size_t e, int last)
{
    if (s == e)
        return;
    if (last && c->out_off == c->out_len && !c->closed) {
        ssize_t n;
        do
            n = write(c->fd, c->in + s, e - s);
        while (n < 0 && errno == EINTR);
        if (n > 0)
            s += (size_t)n;
        else if (n < 0 && !(errno == EAGAIN || errno == EWOULDBLOCK)) {
            shut(c);
            return;
        }
        if (s == e)
            return;
    }
    out_append(c, c->in + s, e - s);
}

/* Handles every complete frame in the input buffer. */
static void process(rconn *c)
{
    size_t pos = 0, span_s = 0, span_e = 0;
    while (!c->closed && c->in_len - pos >= 4) {
        uint32_t h = get_le32(c->in + pos);
        uint32_t len = h & LEN_MASK;
        if (len > MAX_FRAME) {
            fprintf(stderr, "rawconn: frame of %u bytes\n", len);
            shut(c);
            return;
        }
        if (c->in_len - pos - 4 < len)
            break;
        if (!(h & REPLY_BIT)) {
            if (span_e != pos) {
                emit_span(c, span_s, span_e, 0);
                span_s = pos;
            }
            put_le32(c->in + pos, h | REPLY_BIT);
            span_e = pos + 4 + len;
            c->served++;
        } else {
            emit_span(c, span_s, span_e, 0);
            span_s = span_e = pos + 4 + len;
            c->on_reply(c, c->in + pos + 4, len, c->ud);
        }
        pos += 4 + (size_t)len;
    }
    if (c->closed)
        return;
    emit_span(c, span_s, span_e, 1);
    if (pos > 0) {
        memmove(c->in, c->in + pos, c->in_len - pos);
        c->in_len -= pos;
    }
    /* Make room for a frame larger than the buffer. */
    if (c->in_len >= 4) {
        size_t need = 4 + (size_t)(get_le32(c->in) & LEN_MASK);
        if (need > c->in_cap) {
            size_t cap = c->in_cap;
            while (cap < need)
                cap *= 2;
            c->in = xrealloc(c->in, cap);
            c->in_cap = cap;
        }
    }
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    rconn *c = arg;
    (void)what;
    for (int i = 0; i < MAX_READS && !c->closed; i++) {
        size_t room = c->in_cap - c->in_len;
        ssize_t n = read(fd, c->in + c->in_len, room);
        if (n > 0) {
            c->in_len += (size_t)n;
            process(c);
            if ((size_t)n < room)
                break;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            shut(c);
            return;
        }
    }
    rconn_flush(c);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    rconn_flush(arg);
}

rconn *rconn_new(struct event_base *base, int fd, rconn_reply_fn on_reply,
                 rconn_close_fn on_close, void *ud)
{
    rconn *c = xrealloc(NULL, sizeof *c);
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->on_reply = on_reply;
    c->on_close = on_close;
    c->ud = ud;
    c->in_cap = c->out_cap = BUF_INIT;
    c->in = xrealloc(NULL, c->in_cap);
    c->out = xrealloc(NULL, c->out_cap);
    c->rev = event_new(base, fd, EV_READ | EV_PERSIST, on_read, c);
    c->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, on_write, c);
    if (!c->rev || !c->wev || event_add(c->rev, NULL)) {
        fprintf(stderr, "rawconn: event_new failed\n");
        exit(1);
    }
    return c;
}

void rconn_free(rconn *c)
{
    if (!c)
        return;
    event_free(c->rev);
    event_free(c->wev);
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
}

uint64_t rconn_served(const rconn *c)
{
    return c->served;
}
