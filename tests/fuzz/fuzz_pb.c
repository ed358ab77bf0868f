/*
 * fuzz_pb — the PB codec: banana scanning and jelly reading.
 *
 * Input layout:
 *   byte 0          flags: bit 0 dialect "pb" (VOCAB allowed), bit 1 small
 *                   limits (so the limit checks fire often)
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
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>
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

static void live_init(void)
{
    static const shapes_Store_handlers none_s;
    static const shapes_Watcher_handlers none_w;
    ember_set_log(quiet_log, NULL);
    base = event_base_new();
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
    if (!base)
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
