/*
 * fuzz_pb — the PB codec (banana scanning, jelly reading) and both ends of
 * a live PB connection: a root's and a node's.
 *
 * Input layout:
 *   byte 0          flags: bit 0 dialect "pb" (VOCAB allowed), bit 1 small
 *                   limits (so the limit checks fire often), bit 2 stage 3,
 *                   bit 3 stage 4 (bit 2 clear), bit 4 stage 4's prefix
 *                   leaves takeProxy unanswered
 *   byte 1          seed of the chunk sizes
 *   the rest        the stream a peer sends
 *
 * Stage 1: the stream is scanned whole and again in pseudo-random chunks
 * (as a socket delivers it). Both must find the same expression
 * boundaries and, when one fails, fail at the same expression with the same
 * reason; every boundary lies within the bytes given.
 *
 * Stage 2: every complete expression is read as jelly (the whitelist) and
 * as an `error` value, whose texts are read as Python literals too. What
 * reads is written back with the jelly writer; the written form must read
 * again and write the same bytes (the round trip is the identity on what
 * the writer produces), and it must scan as one expression of exactly its
 * length.
 *
 * Stage 3 (flags bit 2): the stream goes to a live root's PB personality
 * through a socketpair it adopted, after a fixed prefix that negotiates and
 * registers (dialect "pb", version 6, takeProxy). The root serves
 * tests/idl/shapes.idl's services by name (no handlers: every call that
 * decodes fails "not implemented") and calls every child that joins. We
 * half-close; the root must close the connection, and every call it made
 * must have ended exactly once.
 *
 * Stage 4 (flags bit 3): the stream is what a Twisted root sends a live
 * ember node. A fresh node per input, exporting shapes.idl's services by
 * name (no handlers), connects with ember_node_connect_pb over loopback TCP
 * to a socket this target listens on (127.0.0.1, port 0, opened once). We
 * send a fixed prefix recorded from a Twisted 22.4 root: its dialects,
 * (version 6) and the answer None to the node's takeProxy (dialect "pb"
 * with bit 0, else a root offering "none" alone), then the stream, and
 * half-close. With bit 4 the prefix stops before the answer, so the stream
 * answers takeProxy (or refuses it, or never does: the node is then never
 * registered) and can call the node first, as a Firefly root does inside
 * takeProxy. Once registered the node makes four calls to the root (ids
 * 0x1000001 ... 0x4000004, the same for every fresh node), so the stream can
 * answer them; it also carries the root's calls to the node's exports and to
 * the Watcher it passed, decrefs and errors. Bit 1 gives the node small
 * limits. The node must close the connection, and every call it made must
 * end exactly once, with a status and a text (its result when OK), within
 * 5 s.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include <ember/ember.h>

#include "ember-internal.h"
#include "pb-internal.h"
#include "probe-internal.h"
#include "shapes.h"

#define MAX_ENDS 4096

static void die(const char *what)
{
    fprintf(stderr, "fuzz_pb: invariant broken: %s\n", what);
    abort();
}

typedef struct outcome {
    size_t ends[MAX_ENDS];
    size_t nends;
    const char *why;     /* NULL: no error */
} outcome;

static void scan_chunked(const uint8_t *p, size_t n, const ember_bn_limits *lim,
                         bool vocab, uint32_t seed, outcome *o)
{
    ember_bn_scan s;
    ember_bn_scan_init(&s, lim, vocab);
    size_t start = 0, avail = 0;
    o->nends = 0;
    o->why = NULL;
    while (avail < n) {
        if (seed == 0) {
            avail = n;
        } else {
            seed = seed * 1103515245u + 12345u;
            avail += 1 + (seed >> 16) % 17;
            if (avail > n)
                avail = n;
        }
        for (;;) {
            size_t used = 777;
            int r = ember_bn_scan_feed(&s, p + start, avail - start, &used);
            if (r < 0) {
                if (!s.why)
                    die("scan error without a reason");
                o->why = s.why;
                return;
            }
            if (r == 0) {
                if (used != 0)
                    die("need-more with a size");
                break;
            }
            if (used == 0 || used > avail - start)
                die("expression outside the bytes given");
            start += used;
            if (o->nends < MAX_ENDS)
                o->ends[o->nends++] = start;
        }
    }
}

/* Reads one jelly value and writes it back canonically; -1 when it does not
 * read (the cursor's reason is set). Depth is bounded by the scanner. */
static int copy_value(ember_jl_cur *c, ember_jl_w *w, int depth)
{
    ember_jl_val v;
    if (depth > EMBER_BN_DEPTH_MAX)
        die("jelly nesting deeper than the scanner allows");
    if (ember_jl_read(c, &v)) {
        if (!c->why)
            die("jelly error without a reason");
        return -1;
    }
    switch (v.kind) {
    case EMBER_JL_INT:
        if (!v.big)
            ember_bn_put_int(w->e, v.neg, v.mag);
        else
            ember_bn_put_bytes(w->e, "big", 3, w->vocab);
        return 0;
    case EMBER_JL_FLOAT:
        ember_bn_put_float(w->e, v.f);
        return 0;
    case EMBER_JL_BYTES:
        ember_bn_put_bytes(w->e, v.s, v.len, w->vocab);
        return 0;
    case EMBER_JL_UNICODE:
        if (!ember_jl_utf8_ok(v.s, v.len))
            die("invalid UTF-8 accepted as unicode");
        ember_jl_put_unicode(w, v.s, v.len);
        return 0;
    case EMBER_JL_NONE:
        ember_jl_put_none(w);
        return 0;
    case EMBER_JL_BOOL:
        ember_jl_put_bool(w, v.b);
        return 0;
    case EMBER_JL_REMOTE:
    case EMBER_JL_LOCAL:
        ember_jl_put_ref(w, v.kind == EMBER_JL_LOCAL, v.mag);
        return 0;
    case EMBER_JL_LIST:
    case EMBER_JL_TUPLE:
        ember_jl_put_head(w, v.kind == EMBER_JL_LIST ? EMBER_BN_W_LIST
                                                     : EMBER_BN_W_TUPLE, v.count);
        for (uint32_t i = 0; i < v.count; i++)
            if (copy_value(c, w, depth + 1))
                return -1;
        return 0;
    case EMBER_JL_DICT:
        ember_jl_put_head(w, EMBER_BN_W_DICTIONARY, v.count);
        for (uint32_t i = 0; i < v.count; i++) {
            if (ember_jl_pair(c))
                return -1;
            ember_bn_put_list(w->e, 2);
            if (copy_value(c, w, depth + 2) || copy_value(c, w, depth + 2))
                return -1;
        }
        return 0;
    }
    die("unknown jelly kind");
    return -1;
}

#define OUT_CAP (1u << 21)
static uint8_t out1[OUT_CAP], out2[OUT_CAP];

/* A failure's text read as Python literals (what a typed call makes of
 * it, pb-pylit.c): what they write must read back as that many scalars. */
static void check_pylit(const char *text, bool vocab)
{
    for (int as_tuple = 0; as_tuple < 2; as_tuple++) {
        uint8_t buf[4 * EMBER_JL_FAIL_TEXT];
        ember_enc e;
        ember_enc_init_fixed(&e, buf, sizeof buf);
        ember_jl_w w = {&e, vocab};
        uint32_t n = 1;
        int r = as_tuple ? ember_pylit_tuple(text, &w, &n) : ember_pylit_value(text, &w);
        if (r || e.failed)
            continue;
        ember_jl_cur c;
        ember_jl_init(&c, buf, ember_enc_len(&e), vocab);
        for (uint32_t i = 0; i < n; i++) {
            ember_jl_val v;
            if (ember_jl_read(&c, &v) || v.kind == EMBER_JL_LIST ||
                v.kind == EMBER_JL_TUPLE || v.kind == EMBER_JL_DICT)
                die("a Python literal wrote jelly that does not read as a scalar");
        }
        if (c.p != c.end)
            die("Python literals wrote more jelly than they counted");
    }
}

/* Reads the value at p[0..n) and writes it to out; -1 when it does not read
 * or does not fit. */
static int copy_into(const uint8_t *p, size_t n, bool vocab, uint8_t *out,
                     size_t *len)
{
    ember_jl_cur c;
    ember_jl_init(&c, p, n, vocab);
    ember_enc e;
    ember_enc_init_fixed(&e, out, OUT_CAP);
    ember_jl_w w = {&e, vocab};
    if (copy_value(&c, &w, 0) || e.failed)
        return -1;
    if (c.p != c.end)
        die("one value read short of its expression");
    *len = ember_enc_len(&e);
    return 0;
}

/* str() of an exception raised with p[0..n) (one value; twice, as a
 * tuple), what a raised error's text is made of (pb-pylit.c): terminated
 * UTF-8 in its room, and a scalar's text reads back as the same jelly. */
static void check_pystr(const uint8_t *p, size_t n, bool vocab)
{
    static uint8_t two[2 * 4096], back[2 * 4096];
    char text[EMBER_JL_FAIL_TEXT];
    ember_jl_cur c;
    ember_jl_val v;
    ember_jl_init(&c, p, n, vocab);
    if (n > 4096 || ember_jl_read(&c, &v))
        return;
    bool scalar = v.kind != EMBER_JL_LIST && v.kind != EMBER_JL_TUPLE &&
                  v.kind != EMBER_JL_DICT && v.kind != EMBER_JL_REMOTE &&
                  v.kind != EMBER_JL_LOCAL && !(v.kind == EMBER_JL_INT && v.big) &&
                  !(v.kind == EMBER_JL_FLOAT && isnan(v.f));
    memcpy(two, p, n);
    memcpy(two + n, p, n);
    for (uint32_t nvals = 1; nvals <= 2; nvals++) {
        int r = ember_pylit_str(two, nvals * n, nvals, vocab, text, sizeof text);
        size_t len = strnlen(text, sizeof text);
        if (len == sizeof text || !ember_jl_utf8_ok((const uint8_t *)text, len))
            die("a Python text is not terminated UTF-8");
        if (r || !scalar || (nvals == 1 && v.kind == EMBER_JL_UNICODE))
            continue;
        ember_enc e;
        ember_jl_w w = {&e, vocab};
        uint32_t got = 1;
        ember_enc_init_fixed(&e, back, sizeof back);
        if ((nvals == 1 ? ember_pylit_value(text, &w)
                        : ember_pylit_tuple(text, &w, &got)) || got != nvals ||
            ember_enc_len(&e) != nvals * n || memcmp(back, two, nvals * n) != 0)
            die("a scalar's Python text does not read back as itself");
    }
}

static void check_expr(const uint8_t *p, size_t n, bool vocab,
                       const ember_bn_limits *lim)
{
    ember_jl_cur c;
    ember_jl_failure f;
    ember_jl_init(&c, p, n, vocab);
    if (ember_jl_read_failure(&c, &f) == 0 && c.p != c.end)
        die("error value read short of its expression");
    if (!memchr(f.type, 0, sizeof f.type) || !memchr(f.value, 0, sizeof f.value))
        die("failure text not terminated");
    check_pylit(f.value, vocab);
    check_pylit(f.type, vocab);

    size_t n1, n2;
    if (copy_into(p, n, vocab, out1, &n1))
        return;
    check_pystr(out1, n1, vocab);
    ember_bn_limits wide = *lim;
    wide.max_expr = sizeof out1;
    ember_bn_scan s;
    size_t used;
    ember_bn_scan_init(&s, &wide, vocab);
    if (ember_bn_scan_feed(&s, out1, n1, &used) != 1 || used != n1)
        die("written value does not scan as one expression");
    if (copy_into(out1, n1, vocab, out2, &n2))
        die("written value does not read back");
    if (n2 != n1 || memcmp(out1, out2, n1) != 0)
        die("jelly round trip is not the identity");
}

/* ---- stage 3: a live root ---- */

static struct event_base *base;
static ember_root *root;
static long calls_started, calls_ended;

static void quiet_log(ember_log_level lv, const char *msg, void *ud)
{
    (void)lv;
    (void)msg;
    (void)ud;
}

static void pinged(const ember_outcome *o, const uint32_t *ret, void *ud)
{
    (void)o;
    (void)ret;
    (void)ud;
    calls_ended++;
}

static void on_join(ember_root *r, ember_child *ch, void *ud)
{
    (void)r;
    (void)ud;
    for (int i = 0; i < 2; i++) {
        calls_started++;
        shapes_Watcher_ping(ember_child_ref(ch), "fuzz", pinged, NULL, NULL);
    }
}

static void base_init(void)
{
    if (base)
        return;
    ember_set_log(quiet_log, NULL);
    if (!(base = event_base_new()))
        die("event base");
}

static void live_init(void)
{
    static const shapes_Store_handlers none_s;
    static const shapes_Watcher_handlers none_w;
    base_init();
    ember_root_config cfg;
    ember_root_config_default(&cfg);
    cfg.on_join = on_join;
    cfg.limits.handshake_ms = 2000;
    root = ember_root_new(base, &cfg);
    if (!root || shapes_Store_export(ember_root_exports(root), &none_s, NULL) ||
        shapes_Watcher_export(ember_root_exports(root), &none_w, NULL))
        die("live root");
}

/* dialect "pb", (version 6), takeProxy("fz", (remote 1)) */
static const uint8_t prefix[] = {
    0x02, 0x82, 'p', 'b', 0x02, 0x80, 0x13, 0x87, 0x06, 0x81,
    0x07, 0x80, 0x1a, 0x87, 0x01, 0x81, 0x04, 0x82, 'r', 'o', 'o', 't',
    0x09, 0x82, 't', 'a', 'k', 'e', 'P', 'r', 'o', 'x', 'y', 0x01, 0x81,
    0x03, 0x80, 0x0b, 0x87, 0x02, 0x82, 'f', 'z', 0x02, 0x80, 0x10, 0x87,
    0x01, 0x81, 0x01, 0x80, 0x05, 0x87,
};

static void fuzz_pb_live(const uint8_t *p, size_t n)
{
    if (!root)
        live_init();
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) || ember_root_adopt_fd_pb_(root, sv[1]))
        die("socketpair / adopt");
    /* Small inputs: the socket buffer holds them all. */
    if (write(sv[0], prefix, sizeof prefix) != (ssize_t)sizeof prefix ||
        (n && write(sv[0], p, n) != (ssize_t)n))
        die("write");
    shutdown(sv[0], SHUT_WR);
    uint64_t t0 = ember_now_ms();
    bool eof = false;
    while (!eof || ember_root_child_count(root) || calls_ended != calls_started) {
        if (ember_now_ms() - t0 > 5000)
            die("the root did not close a half-closed PB connection, or its "
                "calls did not end, within 5 s");
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        uint8_t buf[4096];
        ssize_t r;
        while ((r = recv(sv[0], buf, sizeof buf, MSG_DONTWAIT)) > 0)
            ;
        eof = eof || r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
    }
    close(sv[0]);
    if (calls_ended != calls_started)
        die("a call the root made did not end exactly once");
}

/* ---- stage 4: a live node ---- */

#define NODE_CALLS 4

static int listen_fd = -1;
static char listen_addr[32];
static int node_calls_made, node_ends[NODE_CALLS];

/* Where the node finds its roots: a socket on 127.0.0.1, port 0, opened
 * once; each input's root is the connection accepted on it. */
static void listen_init(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (listen_fd < 0 || fcntl(listen_fd, F_SETFL, O_NONBLOCK) ||
        bind(listen_fd, (struct sockaddr *)&sa, sizeof sa) || listen(listen_fd, 8) ||
        getsockname(listen_fd, (struct sockaddr *)&sa, &len))
        die("listening socket");
    snprintf(listen_addr, sizeof listen_addr, "127.0.0.1:%u", ntohs(sa.sin_port));
}

/* Every call ends once, with a known status, a text unless it is OK and
 * its result when it is. */
static void node_ended(const ember_outcome *o, bool has_result, int *end)
{
    if ((unsigned)o->status > EMBER_SHUTDOWN ||
        (o->status != EMBER_OK && (!o->message || strnlen(o->message, 4096) == 4096)))
        die("a call the node made ended without a status or a text");
    if (o->status == EMBER_OK && !has_result)
        die("a call the node made ended OK without its result");
    if (++*end != 1)
        die("a call the node made ended twice");
}

static void node_pinged(const ember_outcome *o, const uint32_t *ret, void *ud)
{
    node_ended(o, ret != NULL, ud);
}

static void node_got(const ember_outcome *o, const shapes_Scalars *ret, void *ud)
{
    node_ended(o, ret != NULL, ud);
}

static void node_watched(const ember_outcome *o, void *ud)
{
    node_ended(o, true, ud);
}

static void node_echoed(const ember_outcome *o, const shapes_Containers *ret, void *ud)
{
    node_ended(o, ret != NULL, ud);
}

/* Once registered, the node calls the root: a u32 answer, a struct with
 * declared errors, a ref to a local Watcher (the root may call it and
 * decref it), and a struct of lists and maps. Their call ids are the same
 * for every fresh node: 0x1000001, 0x2000002, 0x3000003, 0x4000004. */
static void node_state(ember_node *n, ember_node_state st, const char *why, void *ud)
{
    static const shapes_Watcher_handlers none_w;
    static const shapes_Containers empty;
    (void)why;
    (void)ud;
    if (st != EMBER_NODE_REGISTERED || node_calls_made)
        return;
    ember_ref *to = ember_node_root(n), *w = shapes_Watcher_local(&none_w, NULL);
    if (!w)
        die("local watcher");
    node_calls_made = NODE_CALLS;
    shapes_Watcher_ping(to, "fuzz", node_pinged, &node_ends[0], NULL);
    shapes_Store_get(to, "k", node_got, &node_ends[1], NULL);
    shapes_Store_watch(to, w, node_watched, &node_ends[2], NULL);
    shapes_Store_echo(to, &empty, node_echoed, &node_ends[3], NULL);
    ember_ref_release(w);
}

/* A fresh node exporting shapes.idl's services by name (no handlers), PB
 * towards addr; small limits when asked (the prefix still fits them). */
static ember_node *node_open(const char *addr, bool small)
{
    static const shapes_Store_handlers none_s;
    static const shapes_Watcher_handlers none_w;
    ember_node_config cfg;
    ember_node_config_default(&cfg);
    cfg.on_state = node_state;
    cfg.backoff_min_ms = cfg.backoff_max_ms = 60000; /* no second connection */
    if (small) {
        cfg.limits.max_string = 16;
        cfg.limits.max_elems = 8;
        cfg.limits.max_depth = 6;
    }
    node_calls_made = 0;
    memset(node_ends, 0, sizeof node_ends);
    ember_node *n = ember_node_new(base, "fz", &cfg);
    if (!n || shapes_Store_export(ember_node_exports(n), &none_s, NULL) ||
        shapes_Watcher_export(ember_node_exports(n), &none_w, NULL) ||
        ember_node_connect_pb(n, addr))
        die("live node");
    return n;
}

static bool node_calls_done(void)
{
    for (int i = 0; i < node_calls_made; i++)
        if (node_ends[i] != 1)
            return false;
    return true;
}

/* What a Twisted root sends first: its dialects, (version 6) and the answer
 * None to the node's takeProxy (request 1); recorded from Twisted 22.4,
 * dialect "pb" (offered first) and, with a root that offers "none" alone,
 * dialect "none". The answer is the last ROOT_ANSWER_* bytes. */
static const uint8_t root_prefix_pb[] = {
    0x02, 0x80, 0x02, 0x82, 'p', 'b', 0x04, 0x82, 'n', 'o', 'n', 'e',
    0x02, 0x80, 0x13, 0x87, 0x06, 0x81,
    0x03, 0x80, 0x1b, 0x87, 0x01, 0x81, 0x01, 0x80, 0x01, 0x87,
};
static const uint8_t root_prefix_none[] = {
    0x01, 0x80, 0x04, 0x82, 'n', 'o', 'n', 'e',
    0x02, 0x80, 0x07, 0x82, 'v', 'e', 'r', 's', 'i', 'o', 'n', 0x06, 0x81,
    0x03, 0x80, 0x06, 0x82, 'a', 'n', 's', 'w', 'e', 'r', 0x01, 0x81,
    0x01, 0x80, 0x04, 0x82, 'N', 'o', 'n', 'e',
};
#define ROOT_ANSWER_PB 10
#define ROOT_ANSWER_NONE 19

/* Writes what fits of p[*at..n) to fd; true once all of it is written. */
static bool write_some(int fd, const uint8_t *p, size_t n, size_t *at)
{
    while (*at < n) {
        ssize_t w = send(fd, p + *at, n - *at, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return false;
            return true; /* the node closed: nothing more to write */
        }
        *at += (size_t)w;
    }
    return true;
}

static void fuzz_pb_node(const uint8_t *p, size_t n, bool vocab, bool small,
                         bool unanswered)
{
    base_init();
    if (listen_fd < 0)
        listen_init();
    ember_node *node = node_open(listen_addr, small);
    uint64_t t0 = ember_now_ms();
    int s = -1;
    while (s < 0) {
        if (ember_now_ms() - t0 > 5000)
            die("the node did not connect within 5 s");
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        s = accept(listen_fd, NULL, NULL);
        if (s < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            die("accept");
    }
    if (fcntl(s, F_SETFL, O_NONBLOCK))
        die("fcntl");
    const uint8_t *pre = vocab ? root_prefix_pb : root_prefix_none;
    size_t npre = vocab ? sizeof root_prefix_pb : sizeof root_prefix_none;
    if (unanswered)
        npre -= vocab ? ROOT_ANSWER_PB : ROOT_ANSWER_NONE;
    size_t at_pre = 0, at = 0;
    bool sent = false, eof = false;
    while (!eof || ember_node_state_get(node) != EMBER_NODE_LOST || !node_calls_done()) {
        if (ember_now_ms() - t0 > 5000)
            die("the node did not close a half-closed PB connection, or its "
                "calls did not end, within 5 s");
        if (!sent && write_some(s, pre, npre, &at_pre) && write_some(s, p, n, &at)) {
            shutdown(s, SHUT_WR);
            sent = true;
        }
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        uint8_t buf[4096];
        ssize_t r;
        while ((r = recv(s, buf, sizeof buf, MSG_DONTWAIT)) > 0)
            ;
        eof = eof || r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
    }
    close(s);
    ember_node_free(node);
    if (!node_calls_done())
        die("a call the node made did not end exactly once");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    bool vocab = data[0] & 1;
    ember_bn_limits lim = {EMBER_BN_SIZE_LIMIT, EMBER_BN_SIZE_LIMIT,
                           EMBER_BN_DEPTH_MAX, 1u << 20};
    if (data[0] & 2) {
        lim.max_string = 16;
        lim.max_list = 8;
        lim.max_depth = 6;
        lim.max_expr = 96;
    }
    const uint8_t *p = data + 2;
    size_t n = size - 2;
    if (data[0] & 4) {
        fuzz_pb_live(p, n);
        return 0;
    }
    if (data[0] & 8) {
        fuzz_pb_node(p, n, vocab, data[0] & 2, data[0] & 16);
        return 0;
    }

    static outcome whole, chunked;
    scan_chunked(p, n, &lim, vocab, 0, &whole);
    scan_chunked(p, n, &lim, vocab, data[1] | 1u, &chunked);
    if (whole.nends != chunked.nends ||
        memcmp(whole.ends, chunked.ends, whole.nends * sizeof whole.ends[0]) ||
        (whole.why == NULL) != (chunked.why == NULL) ||
        (whole.why && strcmp(whole.why, chunked.why) != 0))
        die("chunked scanning differs from whole");

    size_t start = 0;
    for (size_t i = 0; i < whole.nends; i++) {
        check_expr(p + start, whole.ends[i] - start, vocab, &lim);
        start = whole.ends[i];
    }
    return 0;
}
