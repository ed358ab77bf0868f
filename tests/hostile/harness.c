/*
 * harness.c — see harness.h.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "../common/loop.h"
#include "../common/net.h"
#include "../golden/game.h"

struct event_base *H_base;
int h_failures;

/* ------------------------------------------------------------------ */
/* logs                                                               */
/* ------------------------------------------------------------------ */

#define NLOG 1024
static char *logs[NLOG];
static int nlogs;

static void log_cb(ember_log_level lv, const char *msg, void *ud)
{
    (void)ud;
    if (getenv("HOSTILE_VERBOSE"))
        fprintf(stderr, "    log[%d] %s\n", (int)lv, msg);
    if (nlogs == NLOG) {
        free(logs[0]);
        memmove(logs, logs + 1, (NLOG - 1) * sizeof *logs);
        nlogs--;
    }
    logs[nlogs++] = strdup(msg);
}

void h_log_install(void)
{
    ember_set_log(log_cb, NULL);
    ember_set_log_level(EMBER_LOG_DEBUG);
}

void h_log_clear(void)
{
    for (int i = 0; i < nlogs; i++)
        free(logs[i]);
    nlogs = 0;
}

bool h_log_has(const char *a, const char *b)
{
    for (int i = 0; i < nlogs; i++)
        if (logs[i] && (!a || strstr(logs[i], a)) && (!b || strstr(logs[i], b)))
            return true;
    return false;
}

void h_log_dump(FILE *f)
{
    for (int i = 0; i < nlogs; i++)
        fprintf(f, "    | %s\n", logs[i]);
}

/* ------------------------------------------------------------------ */
/* allocator accounting                                               */
/* ------------------------------------------------------------------ */

static size_t live, peak;

static void *acct_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    (void)osize;
    size_t *hdr = ptr ? (size_t *)ptr - 2 : NULL;
    if (nsize == 0) {
        if (hdr) {
            live -= hdr[0];
            free(hdr);
        }
        return NULL;
    }
    size_t old = hdr ? hdr[0] : 0;
    size_t *n = realloc(hdr, nsize + 2 * sizeof(size_t));
    if (!n)
        return NULL;
    n[0] = nsize;
    live = live - old + nsize;
    if (live > peak)
        peak = live;
    return n + 2;
}

void h_alloc_install(void) { ember_set_allocator(acct_alloc, NULL); }
size_t h_alloc_live(void) { return live; }
size_t h_alloc_peak(void) { return peak; }
void h_alloc_reset_peak(void) { peak = live; }

/* ------------------------------------------------------------------ */
/* loop                                                               */
/* ------------------------------------------------------------------ */

uint64_t h_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

bool h_run_until(h_cond cond, void *ud, int ms)
{
    return run_until(H_base, cond, ud, ms);
}

void h_run_for(int ms)
{
    run_for(H_base, ms);
}

/* ------------------------------------------------------------------ */
/* frames and raw sockets                                             */
/* ------------------------------------------------------------------ */

size_t h_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

size_t h_frame(uint8_t *buf, size_t cap, uint8_t kind, int nh,
               const uint64_t *h, const void *payload, size_t plen)
{
    if (cap < 9 + (size_t)nh * 10 + plen) {
        fprintf(stderr, "h_frame: buffer of %zu bytes too small\n", cap);
        abort();
    }
    size_t n = 4;
    buf[n++] = kind;
    if ((kind & ~FR_REFS) == FR_CALL || (kind & ~FR_REFS) == FR_ONEWAY)
        for (int i = 0; i < 4; i++)
            buf[n++] = (uint8_t)(H_SVC >> 8 * i);
    for (int i = 0; i < nh; i++)
        n += h_varint(buf + n, h[i]);
    if (plen)
        memcpy(buf + n, payload, plen);
    n += plen;
    uint32_t len = (uint32_t)(n - 4);
    buf[0] = (uint8_t)len;
    buf[1] = (uint8_t)(len >> 8);
    buf[2] = (uint8_t)(len >> 16);
    buf[3] = (uint8_t)(len >> 24);
    return n;
}

int h_connect(int port) { return loopback_connect(port); }

int h_local_port(int fd)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    if (getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
        return -1;
    return ntohs(sa.sin_port);
}

int h_write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

bool h_peer_closed(int fd)
{
    uint8_t buf[4096];
    for (;;) {
        ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r == 0)
            return true;
        if (r < 0)
            return !(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
    }
}

/* ------------------------------------------------------------------ */
/* the fixture                                                        */
/* ------------------------------------------------------------------ */

/* What H_HOLD and H_NODE_HOLD keep (a node's are usually released after
 * its connection is gone: the answer then only frees the call). */
static h_held root_held, node_held;

void h_hold(ember_call *call, uint32_t sid, uint32_t id, const void *p,
            size_t n, void *ud)
{
    h_held *h = ud;
    (void)sid;
    (void)id;
    (void)p;
    (void)n;
    if (h->n == h->cap) {
        int ncap = h->cap ? h->cap * 2 : 1024;
        ember_call **nc = realloc(h->call, sizeof *nc * (size_t)ncap);
        if (!nc) {
            ember_call_fail(call, "test out of memory");
            return;
        }
        h->call = nc;
        h->cap = ncap;
    }
    h->call[h->n++] = call;
}

void h_held_release(h_held *h, const void *p, size_t n)
{
    for (int i = 0; i < h->n; i++)
        ember_call_reply_raw(h->call[i], p, n);
    h->n = 0;
}

static void flood_done(const ember_outcome *o, const void *p, size_t n, void *ud)
{
    h_flood *f = ud;
    (void)p;
    (void)n;
    f->pending--;
    if (o->status == EMBER_OK) {
        f->ok++;
    } else if (o->status == EMBER_LIMIT) {
        f->limit++;
    } else {
        f->other++;
        f->other_st = o->status;
    }
}

void h_flood_send(h_flood *f, ember_ref *to, const void *p, size_t n, int max,
                  int pace)
{
    for (int i = 0; i < max && !f->limit; i++) {
        f->sent++;
        f->pending++;
        ember_call_raw(to, H_SVC, H_NODE_ECHO, p, n, flood_done, f, NULL);
        if (i % pace == pace - 1)
            h_run_for(1); /* pacing, not a wait: let the loop flush */
    }
}

bool h_flood_limited(void *f) { return ((h_flood *)f)->limit > 0; }
bool h_flood_settled(void *f) { return ((h_flood *)f)->pending == 0; }

void h_echo(ember_call *call, uint32_t sid, uint32_t id, const void *p,
            size_t n, void *ud)
{
    (void)sid;
    (void)id;
    (void)ud;
    ember_call_reply_raw(call, p, n);
}

int h_held_count(void) { return root_held.n; }

void h_release_held(void) { h_held_release(&root_held, NULL, 0); }

/* Typed methods decoded the way generated code does. */
static int dec_deep(ember_dec *d)
{
    uint32_t tag;
    unsigned wt;
    int r;
    while ((r = ember_dec_field(d, &tag, &wt)) == 1) {
        if (tag == 1) {
            const uint8_t *saved;
            if (ember_dec_enter(d, wt, &saved) || dec_deep(d))
                return -1;
            ember_dec_leave(d, saved);
        } else if (ember_dec_skip(d, wt)) {
            return -1;
        }
    }
    return r;
}

static int dispatch_deep(ember_call *call, ember_dec *args, const void *h,
                         void *ud)
{
    (void)h;
    (void)ud;
    if (dec_deep(args))
        return -1;
    ember_call_reply_raw(call, NULL, 0);
    return 0;
}

static int dispatch_list(ember_call *call, ember_dec *args, const void *h,
                         void *ud)
{
    (void)h;
    (void)ud;
    uint32_t tag;
    unsigned wt;
    int r;
    while ((r = ember_dec_field(args, &tag, &wt)) == 1) {
        if (tag == 1) {
            uint32_t count;
            void *items;
            const uint8_t *saved;
            if (ember_dec_list_begin(args, wt, 1, sizeof(uint32_t), &count,
                                     &items, &saved))
                return -1;
            uint32_t *v = items;
            for (uint32_t i = 0; i < count; i++)
                if (ember_dec_raw_u32(args, &v[i]))
                    return -1;
            if (ember_dec_list_end(args, saved))
                return -1;
        } else if (ember_dec_skip(args, wt)) {
            return -1;
        }
    }
    if (r < 0)
        return -1;
    ember_call_reply_raw(call, NULL, 0);
    return 0;
}

/* list<Big> where Big is a 256-byte C struct that can be empty on the
 * wire (1 byte per element): what generated code does for any struct. */
typedef struct big { uint64_t f[32]; } big;

static int dispatch_bigs(ember_call *call, ember_dec *args, const void *h,
                         void *ud)
{
    (void)h;
    (void)ud;
    uint32_t tag;
    unsigned wt;
    int r;
    while ((r = ember_dec_field(args, &tag, &wt)) == 1) {
        if (tag == 1) {
            uint32_t count;
            void *items;
            const uint8_t *saved, *inner;
            if (ember_dec_list_begin(args, wt, 1, sizeof(big), &count, &items,
                                     &saved))
                return -1;
            for (uint32_t i = 0; i < count; i++) {
                if (ember_dec_enter_raw(args, &inner))
                    return -1;
                ember_dec_leave(args, inner);
            }
            if (ember_dec_list_end(args, saved))
                return -1;
        } else if (ember_dec_skip(args, wt)) {
            return -1;
        }
    }
    if (r < 0)
        return -1;
    ember_call_reply_raw(call, NULL, 0);
    return 0;
}

/* list<ref> in field 1, as generated code decodes list<ref<S>>; H_HOLD_REFS
 * keeps the call, and so the refs, until h_release_held. */
static int dispatch_refs(ember_call *call, ember_dec *args, const void *h,
                         void *ud)
{
    (void)h;
    uint32_t tag;
    unsigned wt;
    int r;
    while ((r = ember_dec_field(args, &tag, &wt)) == 1) {
        if (tag == 1) {
            uint32_t count;
            void *items;
            const uint8_t *saved;
            if (ember_dec_list_begin(args, wt, 1, sizeof(ember_ref *), &count,
                                     &items, &saved))
                return -1;
            ember_ref **v = items;
            for (uint32_t i = 0; i < count; i++)
                if (ember_dec_raw_ref(args, &v[i]))
                    return -1;
            if (ember_dec_list_end(args, saved))
                return -1;
        } else if (ember_dec_skip(args, wt)) {
            return -1;
        }
    }
    if (r < 0)
        return -1;
    if (ud)
        h_hold(call, 0, 0, NULL, 0, ud);
    else
        ember_call_reply_raw(call, NULL, 0);
    return 0;
}

static int dispatch_hold_refs(ember_call *call, ember_dec *args, const void *h,
                              void *ud)
{
    (void)ud;
    return dispatch_refs(call, args, h, &root_held);
}

/* The arguments are a game.Player (tests/idl/game.idl), decoded by the
 * idlc-generated code in tests/golden/game.c; the reply is what was
 * decoded, encoded again by the same generated code. */
static void enc_player(ember_enc *e, const void *v)
{
    game_Player_encode(e, v);
}

static int dispatch_player(ember_call *call, ember_dec *args, const void *h,
                           void *ud)
{
    (void)h;
    (void)ud;
    game_Player p;
    if (game_Player_decode(args, &p))
        return -1;
    ember_call_reply(call, enc_player, &p);
    return 0;
}

static const ember_method_desc typed_methods[] = {
    {.id = H_DEEP, .name = "deep", .dispatch = dispatch_deep},
    {.id = H_LIST, .name = "list", .dispatch = dispatch_list},
    {.id = H_BIGS, .name = "bigs", .dispatch = dispatch_bigs},
    {.id = H_PLAYER, .name = "player", .dispatch = dispatch_player},
    {.id = H_REFS, .name = "refs", .dispatch = dispatch_refs},
    {.id = H_HOLD_REFS, .name = "hold_refs", .dispatch = dispatch_hold_refs},
};
static const ember_service_desc typed_svc = {
    .name = "hostile.Typed", .id = H_SVC, .fingerprint = 0x686f7374696c65ull,
    .n_methods = 6, .methods = typed_methods};

void h_limits(ember_limits *l)
{
    ember_limits_default(l);
    l->handshake_ms = 400;
    l->call_timeout_ms = 5000;
    l->heartbeat_ms = 500;
    l->dead_after_ms = 1500;
}

static void on_join(ember_root *r, ember_child *c, void *ud)
{
    (void)r;
    (void)c;
    ((h_fixture *)ud)->joins++;
}

static void on_leave(ember_root *r, ember_child *c, const char *why, void *ud)
{
    (void)r;
    (void)c;
    (void)why;
    ((h_fixture *)ud)->leaves++;
}

int h_node_held_count(void) { return node_held.n; }

static ember_ref *node_kept[8];
static int node_nkept;

void h_release_node_held(void)
{
    h_held_release(&node_held, NULL, 0);
    while (node_nkept > 0)
        ember_ref_release(node_kept[--node_nkept]);
}

static int dispatch_keep(ember_call *call, ember_dec *args, const void *h,
                         void *ud)
{
    (void)h;
    (void)ud;
    const uint8_t *p = args->p;
    size_t n = (size_t)(args->end - args->p);
    uint32_t tag;
    unsigned wt;
    ember_ref *r = NULL;
    if (ember_dec_field(args, &tag, &wt) != 1 || ember_dec_ref(args, wt, &r))
        return -1;
    if (r && node_nkept < 8)
        node_kept[node_nkept++] = ember_ref_retain(r);
    ember_call_reply_raw(call, p, n);
    return 0;
}

static const ember_method_desc keep_methods[] = {
    {.id = H_NODE_KEEP, .name = "keep", .dispatch = dispatch_keep}};
const ember_service_desc h_keep_svc = {
    .name = "hostile.Keep", .id = H_KEEP_SVC, .n_methods = 1,
    .methods = keep_methods};

const ember_tls_config *h_root_tls;
const ember_tls_config *h_node_tls;

ember_node *h_node_new(const char *name, int port)
{
    ember_node_config cfg;
    ember_node_config_default(&cfg);
    h_limits(&cfg.limits);
    cfg.tls = h_node_tls;
    cfg.backoff_min_ms = 10;
    cfg.backoff_max_ms = 100;
    return h_node_new_cfg(name, port, &cfg);
}

ember_node *h_node_new_cfg(const char *name, int port, const ember_node_config *cfg)
{
    ember_node *n = ember_node_new(H_base, name, cfg);
    if (!n)
        return NULL;
    ember_exports_add_raw(ember_node_exports(n), H_SVC, H_NODE_ECHO, h_echo, NULL);
    ember_exports_add_raw(ember_node_exports(n), H_SVC, H_NODE_HOLD, h_hold, &node_held);
    ember_exports_add(ember_node_exports(n), &h_keep_svc, NULL, NULL);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    if (ember_node_connect(n, addr)) {
        ember_node_free(n);
        return NULL;
    }
    return n;
}

bool h_node_registered(void *node)
{
    return ember_node_state_get(node) == EMBER_NODE_REGISTERED;
}

int h_fixture_start(h_fixture *fx, const ember_limits *lim)
{
    memset(fx, 0, sizeof *fx);
    if (lim)
        fx->lim = *lim;
    else
        h_limits(&fx->lim);
    ember_root_config cfg;
    ember_root_config_default(&cfg);
    cfg.limits = fx->lim;
    cfg.on_join = on_join;
    cfg.on_leave = on_leave;
    cfg.ud = fx;
    cfg.tls = h_root_tls;
    fx->root = ember_root_new(H_base, &cfg);
    if (!fx->root)
        return -1;
    ember_exports *ex = ember_root_exports(fx->root);
    ember_exports_add_raw(ex, H_SVC, H_ECHO, h_echo, NULL);
    ember_exports_add_raw(ex, H_SVC, H_HOLD, h_hold, &root_held);
    ember_exports_add(ex, &typed_svc, NULL, NULL);
    if (ember_root_listen(fx->root, "127.0.0.1:0"))
        return -1;
    fx->port = ember_root_port(fx->root);
    fx->good = h_node_new("good", fx->port);
    if (!fx->good || !h_run_until(h_node_registered, fx->good, 3000))
        return -1;
    return 0;
}

static void good_done(const ember_outcome *o, const void *p, size_t n, void *ud);

static void good_one(h_fixture *fx)
{
    static const char msg[] = "well-behaved payload";
    fx->sent++;
    fx->inflight++;
    ember_call_raw(ember_node_root(fx->good), H_SVC, H_ECHO, msg, sizeof msg,
                   good_done, fx, NULL);
}

static void good_done(const ember_outcome *o, const void *p, size_t n, void *ud)
{
    h_fixture *fx = ud;
    (void)p;
    fx->inflight--;
    if (o->status == EMBER_OK && n == sizeof "well-behaved payload") {
        fx->ok++;
    } else {
        fx->bad++;
        fx->last_bad = o->status;
        snprintf(fx->last_bad_msg, sizeof fx->last_bad_msg, "%s: %s",
                 ember_status_name(o->status), o->message ? o->message : "");
    }
    if (fx->traffic)
        good_one(fx);
}

void h_traffic_start(h_fixture *fx, int depth)
{
    fx->traffic = true;
    for (int i = 0; i < depth; i++)
        good_one(fx);
}

static bool drained(void *ud)
{
    return ((h_fixture *)ud)->inflight == 0;
}

void h_traffic_stop(h_fixture *fx)
{
    fx->traffic = false;
    h_run_until(drained, fx, 10000);
}

void h_fixture_stop(h_fixture *fx)
{
    h_traffic_stop(fx);
    h_release_held();
    if (fx->good)
        ember_node_free(fx->good);
    if (fx->root)
        ember_root_free(fx->root);
    fx->good = NULL;
    fx->root = NULL;
    h_release_node_held();
    /* Teardown, not a wait: let deferred frees run; nothing is asserted. */
    h_run_for(20);
}

/* ------------------------------------------------------------------ */
/* relay                                                              */
/* ------------------------------------------------------------------ */

#define MAX_ANS 256

struct h_relay {
    struct evconnlistener *lis;
    int port, root_port;
    struct bufferevent *down, *up;
    bool up_ready;
    int up_port;
    int up_closed;
    bool no_read;
    bool hold_down;
    struct { uint64_t id, code; uint8_t kind; } ans[MAX_ANS];
    int nans;
};

static void pair_free(h_relay *r)
{
    if (r->down)
        bufferevent_free(r->down);
    if (r->up)
        bufferevent_free(r->up);
    r->down = r->up = NULL;
    r->up_ready = false;
}

static bool read_varint(const uint8_t *p, size_t n, size_t *off, uint64_t *v)
{
    *v = 0;
    for (unsigned s = 0; s < 64 && *off < n; s += 7) {
        uint8_t b = p[(*off)++];
        *v |= (uint64_t)(b & 0x7f) << s;
        if (b < 0x80)
            return true;
    }
    return false;
}

/* Moves whole frames from src to dst; answers to injected ids are kept. */
static void move_frames(h_relay *r, struct evbuffer *src, struct evbuffer *dst,
                        bool from_root)
{
    for (;;) {
        size_t have = evbuffer_get_length(src);
        if (have < 5)
            return;
        uint8_t hdr[32];
        size_t peek = have < sizeof hdr ? have : sizeof hdr;
        evbuffer_copyout(src, hdr, peek);
        uint32_t len = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 |
                       (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 24;
        if (have < (size_t)len + 4)
            return;
        uint8_t kind = hdr[4];
        /* The root's answers are not read: the relay answers the node's
         * PINGs itself, so the node never gives up on a silent root and the
         * root alone decides when the connection ends. */
        if (!from_root && r->no_read && kind == FR_PING && len == 1) {
            static const uint8_t pong[5] = { 1, 0, 0, 0, FR_PONG };
            evbuffer_drain(src, 5);
            bufferevent_write(r->down, pong, sizeof pong);
            continue;
        }
        if (from_root && (kind == FR_REPLY || kind == FR_ERROR)) {
            size_t off = 5;
            uint64_t id = 0, code = 0;
            read_varint(hdr, peek, &off, &id);
            if (kind == FR_ERROR)
                read_varint(hdr, peek, &off, &code);
            if ((id & 0xff000000ull) == 0x7f000000ull) {
                if (r->nans < MAX_ANS) {
                    r->ans[r->nans].id = id;
                    r->ans[r->nans].code = code;
                    r->ans[r->nans].kind = kind;
                    r->nans++;
                }
                evbuffer_drain(src, (size_t)len + 4);
                continue;
            }
        }
        evbuffer_remove_buffer(src, dst, (size_t)len + 4);
    }
}

static void down_read(struct bufferevent *bev, void *arg)
{
    h_relay *r = arg;
    if (!r->up || r->hold_down)
        return;
    move_frames(r, bufferevent_get_input(bev), bufferevent_get_output(r->up), false);
}

static void up_read(struct bufferevent *bev, void *arg)
{
    h_relay *r = arg;
    if (!r->down || r->no_read)
        return;
    move_frames(r, bufferevent_get_input(bev), bufferevent_get_output(r->down), true);
}

static void up_event(struct bufferevent *bev, short what, void *arg)
{
    h_relay *r = arg;
    if (what & BEV_EVENT_CONNECTED) {
        r->up_ready = true;
        r->up_port = h_local_port(bufferevent_getfd(bev));
        down_read(r->down, r);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        r->up_closed++;
        pair_free(r);
    }
}

static void down_event(struct bufferevent *bev, short what, void *arg)
{
    h_relay *r = arg;
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        pair_free(r);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *arg)
{
    h_relay *r = arg;
    (void)l;
    (void)sa;
    (void)salen;
    pair_free(r);
    r->no_read = false;
    r->hold_down = false;
    r->down = bufferevent_socket_new(H_base, fd, BEV_OPT_CLOSE_ON_FREE);
    r->up = bufferevent_socket_new(H_base, -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(r->down, down_read, NULL, down_event, r);
    bufferevent_setcb(r->up, up_read, NULL, up_event, r);
    struct sockaddr_in to;
    memset(&to, 0, sizeof to);
    to.sin_family = AF_INET;
    to.sin_port = htons((uint16_t)r->root_port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bufferevent_enable(r->down, EV_READ | EV_WRITE);
    bufferevent_enable(r->up, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(r->up, (struct sockaddr *)&to, sizeof to))
        pair_free(r);
}

h_relay *h_relay_new(int root_port)
{
    h_relay *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->root_port = root_port;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    r->lis = evconnlistener_new_bind(H_base, on_accept, r,
                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                     16, (struct sockaddr *)&sa, sizeof sa);
    if (!r->lis) {
        free(r);
        return NULL;
    }
    r->port = h_local_port(evconnlistener_get_fd(r->lis));
    return r;
}

void h_relay_free(h_relay *r)
{
    if (!r)
        return;
    pair_free(r);
    evconnlistener_free(r->lis);
    free(r);
}

int h_relay_port(const h_relay *r) { return r->port; }
int h_relay_up_port(const h_relay *r) { return r->up_port; }
int h_relay_up_closed(const h_relay *r) { return r->up_closed; }
bool h_relay_connected(const h_relay *r) { return r->up && r->up_ready; }

void h_relay_inject(h_relay *r, const void *p, size_t n)
{
    if (r->up)
        bufferevent_write(r->up, p, n);
}

bool h_relay_got_answer(h_relay *r, uint64_t id, uint8_t *kind, uint64_t *code)
{
    for (int i = 0; i < r->nans; i++)
        if (r->ans[i].id == id) {
            if (kind)
                *kind = r->ans[i].kind;
            if (code)
                *code = r->ans[i].code;
            return true;
        }
    return false;
}

void h_relay_stop_reading(h_relay *r)
{
    r->no_read = true;
    if (r->up) {
        int fd = bufferevent_getfd(r->up);
        int small = 4096;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
        bufferevent_disable(r->up, EV_READ);
    }
}

void h_relay_hold_down(h_relay *r) { r->hold_down = true; }

void h_relay_shutdown_up(h_relay *r)
{
    if (r->up)
        shutdown(bufferevent_getfd(r->up), SHUT_WR);
}

bool h_relay_flushed(void *arg)
{
    h_relay *r = arg;
    return !r->up || evbuffer_get_length(bufferevent_get_output(r->up)) == 0;
}
