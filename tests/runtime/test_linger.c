/*
 * test_linger.c — the last frame a root sends before it closes (GOODBYE of
 * a shutdown, a drop's GOODBYE with its reason, a REFUSED) reaches a peer
 * that has sent bytes the root never read, followed by an end of stream:
 * the root writes it, shuts its side down, and reads the peer's bytes away
 * until the peer closes too (a socket closed over unread bytes makes the
 * kernel answer with a reset, and the peer then reads ECONNRESET).
 */
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "call-internal.h"
#include "conn-internal.h"
#include "handshake-internal.h"
#include "helpers.h"

static struct event_base *base;

/* ---- a raw peer ---- */

typedef struct peer {
    int fd;
    uint8_t in[8192];
    size_t n;
    bool eof;              /* recv returned 0 */
    int err;               /* recv failed with this errno (ECONNRESET) */
} peer;

/* Reads what the socket has (nonblocking); true once it ended. */
static bool peer_pump(peer *p)
{
    for (;;) {
        if (p->eof || p->err)
            return true;
        uint8_t junk[4096];
        uint8_t *to = p->n < sizeof p->in ? p->in + p->n : junk;
        size_t room = p->n < sizeof p->in ? sizeof p->in - p->n : sizeof junk;
        ssize_t r = recv(p->fd, to, room, MSG_DONTWAIT);
        if (r == 0)
            p->eof = true;
        else if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            p->err = errno;
        else if (r < 0)
            return false;
        else if (to != junk)
            p->n += (size_t)r;
    }
}

static bool peer_ended(void *ud) { return peer_pump(ud); }

/* The first frame in p->in (1), none yet (0), or malformed (-1). */
static int peer_frame(peer *p, ember_frame *f)
{
    size_t used;
    const char *why;
    return ember_frame_parse(p->in, p->n, sizeof p->in, f, &used, &why);
}

static bool peer_has_frame(void *ud)
{
    peer *p = ud;
    ember_frame f;
    peer_pump(p);
    return peer_frame(p, &f) != 0 || p->eof || p->err;
}

/* Drops the first frame of p->in. */
static void peer_consume(peer *p)
{
    ember_frame f;
    size_t used;
    const char *why;
    if (ember_frame_parse(p->in, p->n, sizeof p->in, &f, &used, &why) == 1) {
        memmove(p->in, p->in + used, p->n - used);
        p->n -= used;
    }
}

static void send_raw(int fd, const void *b, size_t n)
{
    CU_ASSERT_EQUAL(send(fd, b, n, MSG_NOSIGNAL), (ssize_t)n);
}

static void send_register(int fd, const char *name)
{
    uint8_t buf[256];
    ember_enc e;
    ember_enc_init_fixed(&e, buf, sizeof buf);
    e.p += 4;
    *e.p++ = EMBER_FR_REGISTER;
    ember_enc_uint(&e, 1, EMBER_PROTOCOL_VERSION);
    ember_enc_string(&e, 2, name);
    uint32_t len = (uint32_t)ember_enc_len(&e) - 4;
    ember_put_le32(buf, len);
    send_raw(fd, buf, len + 4);
}

/* Fills what the socket takes without blocking with PONG frames (which
 * the root reads without answering): bytes the root has not read when it
 * closes. Returns how many went. */
static size_t stuff_pongs(int fd, size_t max)
{
    static const uint8_t pong[5] = {1, 0, 0, 0, EMBER_FR_PONG};
    uint8_t block[5 * 4096];
    for (size_t i = 0; i < sizeof block; i += 5)
        memcpy(block + i, pong, 5);
    size_t sent = 0;
    while (sent < max) {
        ssize_t w = send(fd, block, sizeof block, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w <= 0)
            break;
        sent += (size_t)w;
    }
    /* A partial PONG left at the end would be a frame cut short: finish
     * it, blocking (five bytes at most; the root reads them away). */
    size_t part = sent % 5;
    if (part) {
        CU_ASSERT_EQUAL(send(fd, pong + part, 5 - part, MSG_NOSIGNAL),
                        (ssize_t)(5 - part));
        sent += 5 - part;
    }
    return sent;
}

/* ---- a root ---- */

static int joins, stops;

static void on_join(ember_root *r, ember_child *c, void *ud)
{
    (void)r;
    (void)c;
    (void)ud;
    joins++;
}

static void on_stopped(ember_root *r, void *ud)
{
    (void)r;
    (void)ud;
    stops++;
}

static uint32_t handshake_ms; /* 0: the default */

static ember_root *root_start(void)
{
    base = event_base_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(base);
    ember_root_config rc;
    ember_root_config_default(&rc);
    rc.on_join = on_join;
    if (handshake_ms)
        rc.limits.handshake_ms = handshake_ms;
    ember_root *r = ember_root_new(base, &rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL_FATAL(ember_root_listen(r, "127.0.0.1:0"), 0);
    joins = stops = 0;
    return r;
}

/* A raw peer that read HELLO and, with a name, registered (WELCOME read). */
static void peer_open(peer *p, ember_root *r, const char *name)
{
    memset(p, 0, sizeof *p);
    p->fd = loopback_connect(ember_root_port(r));
    CU_ASSERT_TRUE_FATAL(p->fd >= 0);
    ember_frame f;
    CU_ASSERT_TRUE_FATAL(run_until(base, peer_has_frame, p, 3000));
    CU_ASSERT_TRUE_FATAL(peer_frame(p, &f) == 1 && f.kind == EMBER_FR_HELLO);
    peer_consume(p);
    if (!name)
        return;
    send_register(p->fd, name);
    CU_ASSERT_TRUE_FATAL(run_until(base, peer_has_frame, p, 3000));
    CU_ASSERT_TRUE_FATAL(peer_frame(p, &f) == 1 && f.kind == EMBER_FR_WELCOME);
    peer_consume(p);
    CU_ASSERT_EQUAL_FATAL(joins, 1);
}

/* The peer reads frames up to the first of `kind` (PINGs and PONGs may
 * come first) and then the end of the stream: an EOF, not a reset. The
 * frame's payload, as text, must contain want (NULL: anything). */
static void expect_last_frame(peer *p, uint8_t kind, const char *want)
{
    ember_frame f;
    int got;
    for (;;) {
        CU_ASSERT_TRUE_FATAL(run_until(base, peer_has_frame, p, 5000));
        got = peer_frame(p, &f);
        if (got != 1 || f.kind == kind)
            break;
        peer_consume(p);
    }
    if (got != 1)
        fprintf(stderr, "\n  no %s frame: %s\n", ember_frame_kind_name(kind),
                p->err ? strerror(p->err) : p->eof ? "end of stream" : "malformed");
    CU_ASSERT_EQUAL_FATAL(got, 1);
    CU_ASSERT_EQUAL(f.kind, kind);
    if (want) {
        char text[600];
        size_t n = f.len < sizeof text - 1 ? f.len : sizeof text - 1;
        for (size_t i = 0; i < n; i++)
            text[i] = f.payload[i] >= 0x20 && f.payload[i] < 0x7f
                          ? (char)f.payload[i] : '.';
        text[n] = 0;
        if (!strstr(text, want))
            fprintf(stderr, "\n  frame \"%s\" lacks \"%s\"\n", text, want);
        CU_ASSERT_PTR_NOT_NULL(strstr(text, want));
    }
    peer_consume(p);
    CU_ASSERT_TRUE(run_until(base, peer_ended, p, 5000));
    if (p->err)
        fprintf(stderr, "\n  after the %s: %s, not an end of stream\n",
                ember_frame_kind_name(kind), strerror(p->err));
    CU_ASSERT_EQUAL(p->err, 0);
    CU_ASSERT_TRUE(p->eof);
    CU_ASSERT_EQUAL(p->n, 0); /* nothing after it */
}

/* ---- the cases ---- */

static bool stopped(void *ud)
{
    (void)ud;
    return stops > 0;
}

/* ember_root_shutdown while a registered peer's bytes wait unread: GOODBYE
 * then EOF; done runs once the peer has closed its side too. */
static void t_shutdown_goodbye_then_eof(void)
{
    ember_root *r = root_start();
    peer p;
    peer_open(&p, r, "writer");
    CU_ASSERT_TRUE(stuff_pongs(p.fd, 1u << 20) > 0);
    ember_root_shutdown(r, on_stopped, NULL);
    expect_last_frame(&p, EMBER_FR_GOODBYE, NULL);
    /* The peer has not closed: the root still reads its bytes away. */
    CU_ASSERT_EQUAL(stops, 0);
    close(p.fd);
    CU_ASSERT_TRUE(run_until(base, stopped, NULL, 3000));
    ember_root_free(r);
    event_base_free(base);
}

/* A registered peer breaking the protocol, with more bytes behind the bad
 * frame: the GOODBYE that says why, then EOF. */
static void t_drop_reason_then_eof(void)
{
    ember_root *r = root_start();
    peer p;
    peer_open(&p, r, "breaker");
    static const uint8_t bad[5] = {1, 0, 0, 0, 99}; /* an unknown kind */
    send_raw(p.fd, bad, sizeof bad);
    CU_ASSERT_TRUE(stuff_pongs(p.fd, 1u << 20) > 0);
    expect_last_frame(&p, EMBER_FR_GOODBYE, "unknown frame kind");
    close(p.fd);
    ember_root_free(r);
    event_base_free(base);
}

/* A REGISTER refused (a bad name) with more bytes behind it: REFUSED, then
 * EOF. */
static void t_refused_then_eof(void)
{
    ember_root *r = root_start();
    peer p;
    peer_open(&p, r, NULL);
    uint8_t buf[5 * 2048 + 64];
    ember_enc e;
    ember_enc_init_fixed(&e, buf, sizeof buf);
    e.p += 4;
    *e.p++ = EMBER_FR_REGISTER;
    ember_enc_uint(&e, 1, EMBER_PROTOCOL_VERSION);
    ember_enc_string(&e, 2, "bad\nname");
    uint32_t len = (uint32_t)ember_enc_len(&e) - 4;
    ember_put_le32(buf, len);
    /* PONGs behind it in the same segment: read with it, never parsed. */
    size_t n = len + 4;
    for (int i = 0; i < 2048; i++, n += 5)
        memcpy(buf + n, (const uint8_t[5]){1, 0, 0, 0, EMBER_FR_PONG}, 5);
    send_raw(p.fd, buf, n);
    CU_ASSERT_TRUE(stuff_pongs(p.fd, 1u << 20) > 0);
    expect_last_frame(&p, EMBER_FR_REFUSED, "control characters");
    CU_ASSERT_EQUAL(joins, 0);
    close(p.fd);
    ember_root_free(r);
    event_base_free(base);
}

/* ember_root_free while a socket lingers (the peer neither reads to the
 * end nor closes) releases it at once: the peer's socket ends (EOF or a
 * reset), and the suite's leak checks (ASan, valgrind) see nothing left. */
static void t_free_cuts_linger(void)
{
    ember_root *r = root_start();
    peer p;
    peer_open(&p, r, "stayer");
    ember_root_shutdown(r, on_stopped, NULL);
    ember_frame f;
    CU_ASSERT_TRUE(run_until(base, peer_has_frame, &p, 3000));
    CU_ASSERT_TRUE(peer_frame(&p, &f) == 1 && f.kind == EMBER_FR_GOODBYE);
    peer_consume(&p);
    CU_ASSERT_TRUE(run_until(base, peer_ended, &p, 3000));
    CU_ASSERT_TRUE(p.eof); /* our end of stream; the socket lingers */
    CU_ASSERT_EQUAL(stops, 0);
    ember_root_free(r);
    /* The root's socket is closed now (a lingering one would read the
     * bytes away): the peer's first byte is answered with a reset, and a
     * send after it fails. */
    int e = 0;
    uint64_t until = ember_now_ms() + 3000u * (unsigned)test_slow();
    while (!e && ember_now_ms() < until)
        if (send(p.fd, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 &&
            errno != EAGAIN && errno != EWOULDBLOCK)
            e = errno;
    CU_ASSERT_TRUE(e == ECONNRESET || e == EPIPE);
    close(p.fd);
    event_base_free(base);
}

/* A peer that never closes: the linger ends at handshake_ms, and done
 * runs then, not before. */
static void t_linger_deadline(void)
{
    handshake_ms = 300u * (unsigned)test_slow();
    ember_root *r = root_start();
    handshake_ms = 0;
    peer p;
    peer_open(&p, r, "stayer");
    uint64_t t0 = ember_now_ms();
    ember_root_shutdown(r, on_stopped, NULL);
    expect_last_frame(&p, EMBER_FR_GOODBYE, NULL);
    CU_ASSERT_TRUE(run_until(base, stopped, NULL, 5000));
    CU_ASSERT_TRUE(ember_now_ms() - t0 >= 300u * (unsigned)test_slow() - 1);
    close(p.fd);
    ember_root_free(r);
    event_base_free(base);
}

/* An application callback that takes a while, then shuts the root down:
 * the loop's notion of now is that long behind the clock. */
static void slow_then_shutdown(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    uint64_t until = ember_now_ms() + 100;
    while (ember_now_ms() < until)
        ; /* the application's own work */
    ember_root_shutdown(arg, on_stopped, NULL);
}

/* The linger's deadline is handshake_ms from the close, by the clock, even
 * when the loop's cached time lags it (a slow callback before the close):
 * done runs no sooner. */
static void t_linger_deadline_after_slow_callback(void)
{
    handshake_ms = 300u * (unsigned)test_slow();
    ember_root *r = root_start();
    handshake_ms = 0;
    peer p;
    peer_open(&p, r, "stayer");
    struct event *ev = evtimer_new(base, slow_then_shutdown, r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
    struct timeval zero = {0, 0};
    evtimer_add(ev, &zero);
    uint64_t t0 = ember_now_ms();
    CU_ASSERT_TRUE(run_until(base, peer_has_frame, &p, 3000));
    uint64_t t_close = ember_now_ms(); /* past the shutdown, and the close */
    CU_ASSERT_TRUE(t_close - t0 >= 100);
    CU_ASSERT_TRUE(run_until(base, stopped, NULL, 5000));
    uint64_t took = ember_now_ms() - t0;
    if (took < 100 + 300u * (unsigned)test_slow())
        fprintf(stderr, "\n  done %llu ms after the start, the linger's "
                "deadline is %u ms after the close at 100 ms\n",
                (unsigned long long)took, 300u * (unsigned)test_slow());
    CU_ASSERT_TRUE(took >= 100 + 300u * (unsigned)test_slow());
    event_free(ev);
    close(p.fd);
    ember_root_free(r);
    event_base_free(base);
}

typedef struct pusher {
    int fd;
    size_t sent;
    int err;
} pusher;

/* Sends what the socket takes; true once a send fails (the root closed). */
static bool push_more(void *ud)
{
    pusher *q = ud;
    static uint8_t block[65536];
    while (!q->err) {
        ssize_t w = send(q->fd, block, sizeof block, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0)
            q->sent += (size_t)w;
        else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            break;
        else
            q->err = errno;
    }
    return q->err != 0;
}

/* A peer that goes on writing after our end of stream: read away up to
 * EMBER_LINGER_MAX_IN, then the socket is closed (long before a 60 s
 * handshake_ms), and done runs. */
static void t_linger_byte_cap(void)
{
    handshake_ms = 60000;
    ember_root *r = root_start();
    handshake_ms = 0;
    peer p;
    peer_open(&p, r, "pusher");
    ember_root_shutdown(r, on_stopped, NULL);
    expect_last_frame(&p, EMBER_FR_GOODBYE, NULL);
    CU_ASSERT_EQUAL(stops, 0);
    pusher q = {p.fd, 0, 0};
    CU_ASSERT_TRUE(run_until(base, push_more, &q, 10000));
    CU_ASSERT_TRUE(q.err == ECONNRESET || q.err == EPIPE);
    CU_ASSERT_TRUE(q.sent > EMBER_LINGER_MAX_IN);
    CU_ASSERT_TRUE(run_until(base, stopped, NULL, 3000));
    close(p.fd);
    ember_root_free(r);
    event_base_free(base);
}

/* Sends PINGs, nonblocking, until `want` bytes went: the root answers each
 * with a PONG the peer never reads. */
typedef struct pinger {
    int fd;
    size_t sent, want;
} pinger;

static bool ping_more(void *ud)
{
    pinger *q = ud;
    static uint8_t pings[5 * 8192];
    if (!pings[4])
        for (size_t i = 0; i < sizeof pings; i += 5)
            memcpy(pings + i, (const uint8_t[5]){1, 0, 0, 0, EMBER_FR_PING}, 5);
    while (q->sent < q->want) {
        size_t at = q->sent % sizeof pings;
        ssize_t w = send(q->fd, pings + at, sizeof pings - at,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w <= 0)
            break;
        q->sent += (size_t)w;
    }
    return q->sent >= q->want;
}

/* A registered child that does not read while megabytes of output wait for
 * it (below out_high_water, so the root goes on reading it, and within
 * dead_after_ms): its GOODBYE cannot be written. The graceful stop still
 * ends by its deadline, shutdown_ms, and done runs. */
static void t_shutdown_deadline_unwritten_goodbye(void)
{
    base = event_base_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(base);
    ember_root_config rc;
    ember_root_config_default(&rc);
    rc.on_join = on_join;
    rc.limits.shutdown_ms = 300u * (unsigned)test_slow();
    rc.limits.handshake_ms = 300u * (unsigned)test_slow();
    rc.limits.heartbeat_ms = 30000;
    rc.limits.dead_after_ms = 60000;
    ember_root *r = ember_root_new(base, &rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL_FATAL(ember_root_listen(r, "127.0.0.1:0"), 0);
    joins = stops = 0;
    peer p;
    peer_open(&p, r, "deaf");
    int small = 4096;
    setsockopt(p.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    pinger q = {p.fd, 0, 16u << 20};
    CU_ASSERT_TRUE_FATAL(run_until(base, ping_more, &q, 10000));
    run_for(base, 50); /* the root reads the last of them */
    uint64_t t0 = ember_now_ms();
    ember_root_shutdown(r, on_stopped, NULL);
    bool done = run_until(base, stopped, NULL, 3000);
    if (!done)
        fprintf(stderr, "\n  no done %llu ms after ember_root_shutdown\n",
                (unsigned long long)(ember_now_ms() - t0));
    CU_ASSERT_TRUE(done);
    CU_ASSERT_EQUAL(stops, 1);
    close(p.fd);
    ember_root_free(r);
    event_base_free(base);
}

/* ---- a CALL to a oneway method, out of memory ---- */

#define OW_SVC 0x0e0a0001u
#define OW_METHOD 7

static int ow_served;
static ember_root *ow_root; /* set: the handler sends a ONEWAY to "noter" */

static int dispatch_ow(ember_call *call, ember_dec *args, const void *h, void *ud)
{
    (void)call;
    (void)args;
    (void)h;
    (void)ud;
    ow_served++;
    if (ow_root) {
        ember_child *c = ember_root_child_by_name(ow_root, "noter");
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        CU_ASSERT_EQUAL(ember_oneway_raw(ember_child_ref(c), 0x5e1f, 9, "x", 1), 0);
    }
    return 0;
}

static const ember_method_desc ow_methods[] = {
    {.id = OW_METHOD, .name = "note", .oneway = true, .dispatch = dispatch_ow}};
static const ember_service_desc ow_svc = {
    .name = "test.Notes", .id = OW_SVC, .n_methods = 1, .methods = ow_methods};

/* Fails the allocation of a call (its record's size) while armed. */
static bool fail_calls;

static void *no_call_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    (void)osize;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    if (fail_calls && !ptr && nsize == sizeof(ember_call))
        return NULL;
    return realloc(ptr, nsize);
}

/* A CALL (not a ONEWAY) to a oneway method when the root has no memory for
 * the call: the caller still gets its answer, ERROR LIMIT "out of memory",
 * as for a two-way method (it waits for one). */
static void t_call_to_oneway_out_of_memory(void)
{
    ember_root *r = root_start();
    CU_ASSERT_EQUAL_FATAL(ember_exports_add(ember_root_exports(r), &ow_svc, NULL,
                                            NULL), 0);
    peer p;
    peer_open(&p, r, "noter");
    uint8_t buf[64];
    ember_enc e;
    ember_enc_init_fixed(&e, buf, sizeof buf);
    e.p += 4;
    *e.p++ = EMBER_FR_CALL;
    ember_enc_raw_fixed32(&e, OW_SVC);
    ember_enc_raw_varint(&e, 5); /* call id */
    ember_enc_raw_varint(&e, 0); /* the root's own exports */
    ember_enc_raw_varint(&e, OW_METHOD);
    uint32_t len = (uint32_t)ember_enc_len(&e) - 4;
    ember_put_le32(buf, len);
    ow_served = 0;
    ember_set_allocator(no_call_alloc, NULL);
    fail_calls = true;
    send_raw(p.fd, buf, len + 4);
    ember_frame f;
    bool got = false;
    for (;;) { /* PINGs may come first */
        got = run_until(base, peer_has_frame, &p, 2000) && peer_frame(&p, &f) == 1;
        if (!got || (f.kind != EMBER_FR_PING && f.kind != EMBER_FR_PONG))
            break;
        peer_consume(&p);
    }
    fail_calls = false;
    ember_set_allocator(NULL, NULL);
    if (!got)
        fprintf(stderr, "\n  no answer to the CALL\n");
    CU_ASSERT_TRUE(got);
    if (got) {
        CU_ASSERT_EQUAL(f.kind, EMBER_FR_ERROR);
        CU_ASSERT_EQUAL(f.h[0], 5);
        CU_ASSERT_EQUAL(f.h[1], EMBER_LIMIT);
    }
    CU_ASSERT_EQUAL(ow_served, 0);
    close(p.fd);
    ember_root_free(r);
    event_base_free(base);
}

/* The empty REPLY to a CALL of a oneway method goes once its handler has
 * returned: a frame the handler sends its caller comes first. */
static void t_call_to_oneway_reply_after_handler(void)
{
    ember_root *r = root_start();
    CU_ASSERT_EQUAL_FATAL(ember_exports_add(ember_root_exports(r), &ow_svc, NULL,
                                            NULL), 0);
    peer p;
    peer_open(&p, r, "noter");
    uint8_t buf[64];
    ember_enc e;
    ember_enc_init_fixed(&e, buf, sizeof buf);
    e.p += 4;
    *e.p++ = EMBER_FR_CALL;
    ember_enc_raw_fixed32(&e, OW_SVC);
    ember_enc_raw_varint(&e, 5);
    ember_enc_raw_varint(&e, 0);
    ember_enc_raw_varint(&e, OW_METHOD);
    uint32_t len = (uint32_t)ember_enc_len(&e) - 4;
    ember_put_le32(buf, len);
    ow_served = 0;
    ow_root = r;
    send_raw(p.fd, buf, len + 4);
    uint8_t kinds[2];
    int n = 0;
    while (n < 2) {
        ember_frame f;
        if (!run_until(base, peer_has_frame, &p, 2000) || peer_frame(&p, &f) != 1)
            break;
        if (f.kind != EMBER_FR_PING && f.kind != EMBER_FR_PONG)
            kinds[n++] = f.kind;
        if (f.kind == EMBER_FR_REPLY)
            CU_ASSERT_EQUAL(f.h[0], 5);
        peer_consume(&p);
    }
    ow_root = NULL;
    CU_ASSERT_EQUAL(ow_served, 1);
    CU_ASSERT_EQUAL_FATAL(n, 2);
    CU_ASSERT_EQUAL(kinds[0], EMBER_FR_ONEWAY);
    CU_ASSERT_EQUAL(kinds[1], EMBER_FR_REPLY);
    close(p.fd);
    ember_root_free(r);
    event_base_free(base);
}

/* ---- a node closing towards a raw root ---- */

static int node_done;

static void on_node_closed(ember_node *n, void *ud)
{
    (void)n;
    (void)ud;
    node_done++;
}

static bool node_registered(void *ud)
{
    return ember_node_state_get(ud) == EMBER_NODE_REGISTERED;
}

static bool accepted(void *ud)
{
    int *fds = ud; /* {listener, accepted} */
    if (fds[1] < 0)
        fds[1] = accept(fds[0], NULL, NULL);
    return fds[1] >= 0;
}

static void send_hs(int fd, uint8_t kind, void (*fill)(ember_enc *e))
{
    uint8_t buf[256];
    ember_enc e;
    ember_enc_init_fixed(&e, buf, sizeof buf);
    e.p += 4;
    *e.p++ = kind;
    fill(&e);
    uint32_t len = (uint32_t)ember_enc_len(&e) - 4;
    ember_put_le32(buf, len);
    send_raw(fd, buf, len + 4);
}

static void fill_hello(ember_enc *e)
{
    static const uint8_t nonce[EMBER_NONCE_LEN] = {1, 2, 3};
    ember_enc_string(e, 1, EMBER_MAGIC);
    ember_enc_uint(e, 2, EMBER_PROTO_MIN);
    ember_enc_uint(e, 3, EMBER_PROTOCOL_VERSION);
    ember_enc_bytes(e, 4, (ember_bytes){nonce, sizeof nonce});
}

static void fill_welcome(ember_enc *e)
{
    ember_enc_uint(e, 1, 7);
}

/* ember_node_close while the root's bytes wait unread at the node: the
 * root reads GOODBYE then EOF; CLOSED and done once it closed its side. */
static void t_node_close_goodbye_then_eof(void)
{
    base = event_base_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(base);
    int fds[2] = {socket(AF_INET, SOCK_STREAM, 0), -1};
    CU_ASSERT_TRUE_FATAL(fds[0] >= 0);
    struct sockaddr_in sa = loopback_addr(0);
    socklen_t sl = sizeof sa;
    CU_ASSERT_EQUAL_FATAL(bind(fds[0], (struct sockaddr *)&sa, sizeof sa), 0);
    CU_ASSERT_EQUAL_FATAL(listen(fds[0], 4), 0);
    CU_ASSERT_EQUAL_FATAL(getsockname(fds[0], (struct sockaddr *)&sa, &sl), 0);
    CU_ASSERT_EQUAL_FATAL(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(sa.sin_port));
    ember_node_config nc;
    ember_node_config_default(&nc);
    ember_node *n = ember_node_new(base, "closer", &nc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(n);
    CU_ASSERT_EQUAL_FATAL(ember_node_connect(n, addr), 0);
    CU_ASSERT_TRUE_FATAL(run_until(base, accepted, fds, 3000));
    peer p;
    memset(&p, 0, sizeof p);
    p.fd = fds[1];
    send_hs(p.fd, EMBER_FR_HELLO, fill_hello);
    ember_frame f;
    CU_ASSERT_TRUE_FATAL(run_until(base, peer_has_frame, &p, 3000));
    CU_ASSERT_TRUE_FATAL(peer_frame(&p, &f) == 1 && f.kind == EMBER_FR_REGISTER);
    peer_consume(&p);
    send_hs(p.fd, EMBER_FR_WELCOME, fill_welcome);
    CU_ASSERT_TRUE_FATAL(run_until(base, node_registered, n, 3000));
    CU_ASSERT_TRUE(stuff_pongs(p.fd, 1u << 20) > 0);
    node_done = 0;
    ember_node_close(n, on_node_closed, NULL);
    expect_last_frame(&p, EMBER_FR_GOODBYE, NULL);
    CU_ASSERT_EQUAL(node_done, 0); /* it lingers until we close */
    close(p.fd);
    CU_ASSERT_TRUE(run_until(base, flag_set, &node_done, 3000));
    CU_ASSERT_EQUAL(ember_node_state_get(n), EMBER_NODE_CLOSED);
    ember_node_free(n);
    close(fds[0]);
    event_base_free(base);
}

void add_linger_suite(void)
{
    CU_pSuite s = CU_add_suite("linger", NULL, NULL);
    CU_add_test(s, "shutdown: GOODBYE then EOF over unread bytes",
                t_shutdown_goodbye_then_eof);
    CU_add_test(s, "drop: GOODBYE with its reason then EOF over unread bytes",
                t_drop_reason_then_eof);
    CU_add_test(s, "refused: REFUSED then EOF over unread bytes",
                t_refused_then_eof);
    CU_add_test(s, "ember_root_free cuts a lingering socket at once",
                t_free_cuts_linger);
    CU_add_test(s, "a peer that never closes: the linger ends at handshake_ms",
                t_linger_deadline);
    CU_add_test(s, "the linger's deadline counts from the close, after a slow callback",
                t_linger_deadline_after_slow_callback);
    CU_add_test(s, "a peer that goes on writing: the linger ends past 4 MiB",
                t_linger_byte_cap);
    CU_add_test(s, "shutdown: done by shutdown_ms when a GOODBYE cannot be written",
                t_shutdown_deadline_unwritten_goodbye);
    CU_add_test(s, "a CALL to a oneway method without memory for it is answered",
                t_call_to_oneway_out_of_memory);
    CU_add_test(s, "a CALL to a oneway method: its REPLY after what the handler sent",
                t_call_to_oneway_reply_after_handler);
    CU_add_test(s, "node close: GOODBYE then EOF over unread bytes",
                t_node_close_goodbye_then_eof);
}
