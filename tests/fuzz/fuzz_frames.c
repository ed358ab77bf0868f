/*
 * fuzz_frames — the runtime's connection input path.
 *
 * Stage 1 (always): the frame layer alone. ember_frame_parse is run over the
 * input the way a connection reads its buffer (frame after frame), with a
 * max_frame chosen by the first byte, and every result is checked: a parsed
 * frame lies inside the bytes given, "need more" never claims a frame that
 * is already complete, an error always has a reason.
 *
 * Stage 2: the same bytes are sent to a live root through one end of a
 * socketpair it adopted (ember_root_adopt_fd: no listener, no filesystem,
 * no ephemeral ports) — the whole connection input path: reading, framing, handshake,
 * dispatch, replies, refs), optionally after a valid REGISTER so that the
 * fuzzed frames reach call dispatch. The root serves raw and typed methods
 * and calls every child that joins, so REPLY/ERROR/CANCEL/DECREF frames have
 * something to hit. After each input the root must close the connection
 * (we half-close), and every call it made must have ended exactly once.
 * The first byte's bits: 0x80 the REGISTER first, 0x40 the root that wants a
 * secret, 0x20 registering as protocol version 2 (no tables of refs; 3,
 * with them, otherwise), 0x03 stage 1's max_frame.
 *
 * Stage 3 (first byte's bit 0x10, instead of stage 2): the same bytes are
 * what a root sends a live node — the node's input path: HELLO, WELCOME
 * and REFUSED decoded and checked in order, then calls to its exports,
 * answers to its calls, CANCEL, DECREF, PING and GOODBYE. A fresh node per
 * input connects over loopback TCP to a socket this target listens on; we
 * send a HELLO (versions 2..3, or 2..2 with bit 0x20) and, unless bit 0x08
 * leaves the answer to the stream, a WELCOME, then the bytes, and
 * half-close. Once registered the node makes three calls to the root (ids
 * 0x1000001 ... 0x3000003, the same for every fresh node), so the stream
 * can answer them; bit 0x04 gives it small limits. The node must close the
 * connection, and every call it made must end exactly once, within 5 s.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "ember-internal.h" /* ember_now_ms */
#include "wire-internal.h"

static int fuzz_frames_live(const uint8_t *data, size_t size);
static void fuzz_frames_node(const uint8_t *data, size_t size);

static void die(const char *what)
{
    fprintf(stderr, "fuzz_frames: invariant broken: %s\n", what);
    abort();
}

static void parse_all(const uint8_t *data, size_t size, uint32_t max_frame)
{
    size_t off = 0;
    while (off < size) {
        const uint8_t *p = data + off;
        size_t n = size - off;
        ember_frame f;
        size_t used = 12345;
        const char *why = NULL;
        int r = ember_frame_parse(p, n, max_frame, &f, &used, &why);
        if (r == 1) {
            if (used < EMBER_FRAME_HDR || used > n)
                die("parsed frame size outside the bytes given");
            if (used - 4 > max_frame)
                die("frame larger than max_frame accepted");
            unsigned base = f.kind & ~EMBER_FR_REFS;
            if (base == 0 || base > EMBER_FR_MAX_ ||
                (f.kind != base && (base < EMBER_FR_CALL || base > EMBER_FR_ERROR)))
                die("unknown kind accepted");
            if (f.payload < p + EMBER_FRAME_HDR || f.payload + f.len != p + used)
                die("payload outside the frame");
            if (ember_frame_nhdr(f.kind) > 3)
                die("more than 3 header fields");
            /* Touch the payload: ASan checks it is really inside. */
            volatile uint8_t sink = 0;
            for (size_t i = 0; i < f.len; i++)
                sink ^= f.payload[i];
            (void)sink;
            (void)ember_frame_kind_name(f.kind);
            off += used;
        } else if (r == 0) {
            if (used != 0 && used <= n)
                die("need-more with a complete frame present");
            if (used == 0 && n >= 4)
                die("need-more without a size although the length is present");
            /* Feeding the frame one more byte at a time must never give a
             * different verdict than when it is whole: check the prefix. */
            return;
        } else if (r == -1) {
            if (!why)
                die("error without a reason");
            return;
        } else {
            die("parse returned neither 1, 0 nor -1");
        }
    }
}

/* Incremental feeding: every prefix of a frame must say "need more" until
 * the frame is complete, then give the same frame. */
static void parse_prefixes(const uint8_t *data, size_t size, uint32_t max_frame)
{
    ember_frame whole;
    size_t used_whole = 0;
    const char *why = NULL;
    int r_whole = ember_frame_parse(data, size, max_frame, &whole, &used_whole, &why);
    size_t lim = size < 64 ? size : 64;
    for (size_t k = 0; k < lim; k++) {
        /* An exact-size copy so that reads past k are caught. */
        uint8_t *cp = malloc(k ? k : 1);
        if (!cp)
            return;
        memcpy(cp, data, k);
        ember_frame f;
        size_t used = 0;
        const char *w = NULL;
        int r = ember_frame_parse(cp, k, max_frame, &f, &used, &w);
        free(cp);
        if (r == 1) {
            if (r_whole != 1 || used != used_whole || f.kind != whole.kind)
                die("a prefix parsed differently from the whole");
        } else if (r == -1) {
            if (r_whole != -1)
                die("a prefix failed where the whole input parses");
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const uint32_t maxes[4] = { 16u << 20, 64, 5, 4096 };
    uint32_t max_frame = maxes[data[0] & 3];
    parse_all(data + 1, size - 1, max_frame);
    parse_prefixes(data + 1, size - 1, max_frame);
    if (data[0] & 0x10)
        fuzz_frames_node(data, size);
    else
        fuzz_frames_live(data, size);
    return 0;
}

/* ------------------------------------------------------------------ */
/* stage 2: a live root                                               */
/* ------------------------------------------------------------------ */

static struct event_base *base;
static ember_root *root;      /* the one the current input talks to */
static ember_root *roots[2];  /* [0] open, [1] with a cluster secret */
static long calls_started, calls_ended;
/* Each call is numbered (its ud is number + 1); the calls of the current
 * input are counted one by one, so a call ending twice while another never
 * ends cannot balance the totals. One connection per input joins at most
 * once: 3 calls. */
#define CALLS_PER_INPUT 64
static long input_first_call;
static unsigned char call_ends[CALLS_PER_INPUT];

static void quiet_log(ember_log_level lv, const char *msg, void *ud)
{
    (void)lv;
    (void)msg;
    (void)ud;
}

static void r_echo(ember_call *k, uint32_t sid, uint32_t id, const void *p,
                   size_t n, void *ud)
{
    (void)sid;
    (void)id;
    (void)ud;
    ember_call_reply_raw(k, p, n);
}

static void r_fail(ember_call *k, uint32_t sid, uint32_t id, const void *p,
                   size_t n, void *ud)
{
    (void)sid;
    (void)id;
    (void)p;
    (void)n;
    (void)ud;
    ember_call_fail(k, "failed on purpose");
}

/* Decodes any value the way generated code does, recursing into field 1. */
static int dec_any(ember_dec *d)
{
    uint32_t tag;
    unsigned wt;
    int r;
    while ((r = ember_dec_field(d, &tag, &wt)) == 1) {
        const uint8_t *saved;
        if (tag == 1) {
            if (ember_dec_enter(d, wt, &saved) || dec_any(d))
                return -1;
            ember_dec_leave(d, saved);
        } else if (tag == 2) {
            const char *s;
            if (ember_dec_string(d, wt, &s))
                return -1;
        } else if (tag == 3) {
            uint32_t n;
            void *items;
            if (ember_dec_list_begin(d, wt, 1, 8, &n, &items, &saved))
                return -1;
            uint64_t *v = items;
            for (uint32_t i = 0; i < n; i++)
                if (ember_dec_raw_u64(d, &v[i]))
                    return -1;
            if (ember_dec_list_end(d, saved))
                return -1;
        } else if (tag == 4) {
            ember_ref *ref;
            if (ember_dec_ref(d, wt, &ref))
                return -1;
        } else if (ember_dec_skip(d, wt)) {
            return -1;
        }
    }
    return r;
}

static int dispatch_any(ember_call *k, ember_dec *args, const void *h, void *ud)
{
    (void)h;
    (void)ud;
    if (dec_any(args))
        return -1;
    return ember_call_reply_raw(k, "ok", 2) ? -1 : 0;
}

/* The service of every method the roots serve, raw and typed. */
#define FUZZ_SVC 0x66757a7au

static const ember_method_desc any_methods[] = {
    {.id = 300, .name = "any", .dispatch = dispatch_any},
    {.id = 301, .name = "anyway", .oneway = true, .dispatch = dispatch_any},
};
static const ember_service_desc any_svc = {
    .name = "fuzz.Any", .id = FUZZ_SVC, .fingerprint = 0x66757a7aull, .n_methods = 2, .methods = any_methods};

static void call_done(const ember_outcome *o, const void *p, size_t n, void *ud)
{
    (void)o;
    (void)p;
    (void)n;
    long k = (long)(intptr_t)ud - 1;
    if (k < input_first_call)
        die("a call made for an earlier input ended again");
    if (k - input_first_call >= CALLS_PER_INPUT)
        die("more calls for one input than tracked");
    if (call_ends[k - input_first_call]++)
        die("a call the root made ended twice");
    calls_ended++;
}

static void on_join(ember_root *r, ember_child *c, void *ud)
{
    (void)r;
    (void)ud;
    /* Calls towards the fuzzer: its REPLY/ERROR frames can answer them. */
    for (int i = 0; i < 3; i++) {
        long k = calls_started++;
        if (k - input_first_call >= CALLS_PER_INPUT)
            die("more calls for one input than tracked");
        ember_call_raw(ember_child_ref(c), FUZZ_SVC, 5 + (uint32_t)i, "q", 1, call_done,
                       (void *)(intptr_t)(k + 1), NULL);
    }
}

static void live_init(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (!getenv("FUZZ_FRAMES_LOG"))
        ember_set_log(quiet_log, NULL);
    base = event_base_new();
    ember_root_config cfg;
    ember_root_config_default(&cfg);
    cfg.limits.max_frame = 1u << 20;
    cfg.limits.max_string = 1u << 16;
    cfg.limits.max_elems = 1u << 16;
    cfg.limits.handshake_ms = 2000;
    cfg.limits.call_timeout_ms = 2000;
    cfg.limits.max_outstanding = 64;
    cfg.on_join = on_join;
    for (int i = 0; i < 2; i++) {
        /* The second root wants a secret: the fuzzer cannot forge the
         * HMAC, but HELLO's nonce, the proof checks and REFUSED run. */
        cfg.secret = i ? "fuzz-cluster-secret" : NULL;
        roots[i] = ember_root_new(base, &cfg);
        if (!roots[i]) {
            fprintf(stderr, "fuzz_frames: cannot make a root: %s\n",
                    ember_last_error());
            abort();
        }
        ember_exports *ex = ember_root_exports(roots[i]);
        ember_exports_add_raw(ex, FUZZ_SVC, 100, r_echo, NULL);
        ember_exports_add_raw(ex, FUZZ_SVC, 101, r_fail, NULL);
        ember_exports_add(ex, &any_svc, NULL, NULL);
    }
}

typedef struct client {
    int fd;
    const uint8_t *p;
    size_t left;
    bool shut, closed;
    struct event *ev;
} client;

static void client_io(evutil_socket_t fd, short what, void *arg)
{
    client *c = arg;
    if (what & EV_READ) {
        uint8_t buf[65536];
        for (;;) {
            ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (r > 0)
                continue;
            if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
                c->closed = true;
            break;
        }
    }
    if (!c->closed && c->left) {
        ssize_t w = send(fd, c->p, c->left, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            c->p += w;
            c->left -= (size_t)w;
        } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            c->left = 0;
        }
    }
    if (!c->left && !c->shut) {
        shutdown(fd, SHUT_WR);
        c->shut = true;
        event_del(c->ev);
        event_assign(c->ev, base, fd, EV_READ | EV_PERSIST, client_io, c);
        event_add(c->ev, NULL);
    }
}

static void deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(bool *)arg = true;
}

/* The REGISTER frame of a node named "fz" with no services; byte
 * REG_VERSION is its protocol version (3, or 2: frames without tables of
 * refs). */
static const uint8_t reg_frame[] = { 7, 0, 0, 0, 2, 0x08, EMBER_PROTOCOL_VERSION, 0x12, 0x02, 'f', 'z' };
#define REG_VERSION 6

static int fuzz_frames_live(const uint8_t *data, size_t size)
{
    if (!base)
        live_init();
    input_first_call = calls_started;
    memset(call_ends, 0, sizeof call_ends);
    bool with_register = size && (data[0] & 0x80);
    int which = size && (data[0] & 0x40) ? 1 : 0;
    root = roots[which];
    size_t n = (with_register ? sizeof reg_frame : 0) + (size ? size - 1 : 0);
    uint8_t *bytes = malloc(n ? n : 1);
    if (!bytes)
        return 0;
    size_t off = 0;
    if (with_register) {
        memcpy(bytes, reg_frame, sizeof reg_frame);
        if (data[0] & 0x20)
            bytes[REG_VERSION] = 2;
        off = sizeof reg_frame;
    }
    if (size > 1)
        memcpy(bytes + off, data + 1, size - 1);

    /* sv[1] goes to the root (which owns it from here on); we are sv[0]. */
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        perror("fuzz_frames: socketpair");
        abort();
    }
    if (ember_root_adopt_fd(root, sv[1]) != 0) {
        fprintf(stderr, "fuzz_frames: adopt: %s\n", ember_last_error());
        abort();
    }
    int fd = sv[0];
    client c = { fd, bytes, n, false, false, NULL };
    c.ev = event_new(base, fd, EV_READ | EV_WRITE | EV_PERSIST, client_io, &c);
    event_add(c.ev, NULL);
    bool expired = false;
    struct event *t = evtimer_new(base, deadline, &expired);
    struct timeval tv = { 5, 0 };
    evtimer_add(t, &tv);
    while (!c.closed && !expired)
        event_base_loop(base, EVLOOP_ONCE);
    /* Let the root finish with the connection: children gone, every call
     * it made ended. */
    while (!expired && (ember_root_child_count(root) || calls_ended != calls_started))
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    event_free(t);
    event_free(c.ev);
    close(fd);
    free(bytes);
    if (expired) {
        fprintf(stderr, "fuzz_frames: the root did not close a half-closed "
                "connection, or its calls did not end, within 5 s "
                "(children %zu, calls %ld started %ld ended)\n",
                ember_root_child_count(root), calls_started, calls_ended);
        abort();
    }
    if (calls_ended != calls_started)
        die("a call the root made did not end exactly once");
    for (long k = input_first_call; k < calls_started; k++)
        if (call_ends[k - input_first_call] != 1)
            die("a call the root made did not end exactly once");
    return 0;
}

/* ------------------------------------------------------------------ */
/* stage 3: a live node                                               */
/* ------------------------------------------------------------------ */

#define NODE_CALLS 3

static int listen_fd = -1;
static char listen_addr[32];
static int node_calls_made;
static unsigned char node_ends[NODE_CALLS];

/* Where the node finds its root: a socket on 127.0.0.1, port 0, opened
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

static void node_call_done(const ember_outcome *o, const void *p, size_t n, void *ud)
{
    (void)p;
    (void)n;
    if ((unsigned)o->status > EMBER_SHUTDOWN ||
        (o->status != EMBER_OK && (!o->message || strnlen(o->message, 4096) == 4096)))
        die("a call the node made ended without a status or a text");
    if (node_ends[(intptr_t)ud]++)
        die("a call the node made ended twice");
}

/* Once registered, the node calls the root (raw, typed, oneway-typed), so
 * the stream's REPLY and ERROR frames have something to answer. */
static void node_state(ember_node *nd, ember_node_state st, const char *why, void *ud)
{
    (void)why;
    (void)ud;
    if (st != EMBER_NODE_REGISTERED || node_calls_made)
        return;
    node_calls_made = NODE_CALLS;
    for (int i = 0; i < NODE_CALLS; i++)
        ember_call_raw(ember_node_root(nd), FUZZ_SVC, i == 0 ? 100 : 300 + (uint32_t)i - 1,
                       "q", 1, node_call_done, (void *)(intptr_t)i, NULL);
}

static ember_node *node_open(bool small)
{
    ember_node_config cfg;
    ember_node_config_default(&cfg);
    cfg.on_state = node_state;
    cfg.backoff_min_ms = cfg.backoff_max_ms = 60000; /* no second connection */
    cfg.limits.handshake_ms = 2000;
    cfg.limits.call_timeout_ms = 2000;
    cfg.limits.max_outstanding = 64;
    if (small) {
        cfg.limits.max_frame = 256;
        cfg.limits.max_string = 16;
        cfg.limits.max_elems = 8;
        cfg.limits.max_depth = 6;
    }
    node_calls_made = 0;
    memset(node_ends, 0, sizeof node_ends);
    ember_node *nd = ember_node_new(base, "fz", &cfg);
    if (!nd)
        die("live node");
    ember_exports *ex = ember_node_exports(nd);
    if (ember_exports_add_raw(ex, FUZZ_SVC, 100, r_echo, NULL) ||
        ember_exports_add_raw(ex, FUZZ_SVC, 101, r_fail, NULL) ||
        ember_exports_add(ex, &any_svc, NULL, NULL) ||
        ember_node_connect(nd, listen_addr))
        die("live node");
    return nd;
}

/* A root's HELLO (magic, versions 2..3; byte HELLO_VMAX is the maximum)
 * and WELCOME (child id 7): what the stream follows. */
static const uint8_t hello_frame[] = { 11, 0, 0, 0, 1, 0x0a, 4, 'E', 'M', 'B', 'R',
                                       0x10, 2, 0x18, 3 };
#define HELLO_VMAX 14
static const uint8_t welcome_frame[] = { 3, 0, 0, 0, 3, 0x08, 7 };

static void fuzz_frames_node(const uint8_t *data, size_t size)
{
    if (!base)
        live_init();
    if (listen_fd < 0)
        listen_init();
    bool answered = !(data[0] & 0x08);
    size_t pre = sizeof hello_frame + (answered ? sizeof welcome_frame : 0);
    size_t n = pre + size - 1;
    uint8_t *bytes = malloc(n);
    if (!bytes)
        die("out of memory");
    memcpy(bytes, hello_frame, sizeof hello_frame);
    if (data[0] & 0x20)
        bytes[HELLO_VMAX] = 2;
    if (answered)
        memcpy(bytes + sizeof hello_frame, welcome_frame, sizeof welcome_frame);
    memcpy(bytes + pre, data + 1, size - 1);

    ember_node *nd = node_open(data[0] & 0x04);
    uint64_t t0 = ember_now_ms();
    int fd = -1;
    while (fd < 0) {
        if (ember_now_ms() - t0 > 5000)
            die("the node did not connect within 5 s");
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        fd = accept(listen_fd, NULL, NULL);
        if (fd < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            die("accept");
    }
    if (fcntl(fd, F_SETFL, O_NONBLOCK))
        die("fcntl");
    client c = { fd, bytes, n, false, false, NULL };
    c.ev = event_new(base, fd, EV_READ | EV_WRITE | EV_PERSIST, client_io, &c);
    event_add(c.ev, NULL);
    bool expired = false;
    struct event *t = evtimer_new(base, deadline, &expired);
    struct timeval tv = { 5, 0 };
    evtimer_add(t, &tv);
    for (;;) {
        bool ended = true;
        for (int i = 0; i < node_calls_made; i++)
            ended = ended && node_ends[i] == 1;
        if (expired || (c.closed && ember_node_state_get(nd) != EMBER_NODE_REGISTERED &&
                        ended))
            break;
        event_base_loop(base, EVLOOP_ONCE);
    }
    event_free(t);
    event_free(c.ev);
    close(fd);
    free(bytes);
    if (expired)
        die("the node did not close a half-closed connection, or its calls "
            "did not end, within 5 s");
    ember_node_free(nd);
    for (int i = 0; i < node_calls_made; i++)
        if (node_ends[i] != 1)
            die("a call the node made did not end exactly once");
}
