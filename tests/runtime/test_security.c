/*
 * test_security.c — shared-secret registration (HMAC challenge–response,
 * both ways) and TLS between root and node, on loopback.
 *
 * The TLS tests make a throwaway CA and certificates with the openssl CLI in
 * a temporary directory; without the CLI they say so and skip.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/ssl.h>

#include "auth-internal.h"
#include "conn-internal.h"
#include "handshake-internal.h"
#include "helpers.h"

#define M_ECHO 1
#define SEC_SVC 0x5ec00001u /* the raw echo service */

/* ---- fixture ---- */

static struct {
    struct event_base *base;
    ember_root *root;
    ember_node *node;
    char addr[64];
    int port;
    int served;            /* handlers run, on either side */
    int joins;
    int lost;              /* node LOST reports */
    int registered;        /* node REGISTERED reports */
    char reason[300];      /* the node's last LOST reason */
    int replies;
    ember_status st;
    size_t reply_len;
    bool reply_intact;
} S;

static void echo(ember_call *call, uint32_t sid, uint32_t mid, const void *p,
                 size_t len, void *ud)
{
    (void)sid;
    (void)mid;
    (void)ud;
    S.served++;
    ember_call_reply_raw(call, p, len);
}

static void on_join(ember_root *r, ember_child *c, void *ud)
{
    (void)r;
    (void)c;
    (void)ud;
    S.joins++;
}

static void on_state(ember_node *n, ember_node_state st, const char *reason,
                     void *ud)
{
    (void)n;
    (void)ud;
    if (st == EMBER_NODE_LOST) {
        S.lost++;
        snprintf(S.reason, sizeof S.reason, "%s", reason ? reason : "");
    } else if (st == EMBER_NODE_REGISTERED) {
        S.registered++;
    }
}

/* Handshake deadline for the next start()/node_to() (0: default). */
static uint32_t handshake_ms;

static void start(const char *root_secret, const ember_tls_config *rtls)
{
    memset(&S, 0, sizeof S);
    S.base = event_base_new();
    ember_root_config cfg;
    ember_root_config_default(&cfg);
    if (handshake_ms)
        cfg.limits.handshake_ms = handshake_ms;
    cfg.secret = root_secret;
    cfg.tls = rtls;
    cfg.on_join = on_join;
    S.root = ember_root_new(S.base, &cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(S.root);
    CU_ASSERT_EQUAL(ember_exports_add_raw(ember_root_exports(S.root), SEC_SVC, M_ECHO,
                                          echo, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(ember_root_listen(S.root, "127.0.0.1:0"), 0);
    S.port = ember_root_port(S.root);
    snprintf(S.addr, sizeof S.addr, "127.0.0.1:%d", S.port);
}

static ember_node *node_to(const char *addr, const char *secret,
                           const ember_tls_config *tls)
{
    ember_node_config cfg;
    ember_node_config_default(&cfg);
    if (handshake_ms)
        cfg.limits.handshake_ms = handshake_ms;
    cfg.secret = secret;
    cfg.tls = tls;
    cfg.backoff_min_ms = 20;
    cfg.backoff_max_ms = 200;
    cfg.on_state = on_state;
    ember_node *n = ember_node_new(S.base, "n1", &cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(n);
    CU_ASSERT_EQUAL(ember_exports_add_raw(ember_node_exports(n), SEC_SVC, M_ECHO, echo,
                                          NULL), 0);
    CU_ASSERT_EQUAL(ember_node_connect(n, addr), 0);
    return n;
}

static void finish(void)
{
    ember_node_free(S.node);
    ember_root_free(S.root);
    event_base_free(S.base);
}

static bool registered(void *ud)
{
    (void)ud;
    return S.node && ember_node_state_get(S.node) == EMBER_NODE_REGISTERED &&
           ember_root_child_count(S.root) == 1;
}

static bool lost_n(void *ud)
{
    return S.lost >= *(int *)ud;
}

static void raw_done(const ember_outcome *o, const void *p, size_t len, void *ud)
{
    const uint8_t *want = ud;
    S.replies++;
    S.st = o->status;
    S.reply_len = len;
    S.reply_intact = want ? memcmp(p, want, len) == 0 : true;
}

static bool replied(void *ud)
{
    return S.replies >= *(int *)ud;
}

/* One call each way, of len bytes; checks the echo. */
static void calls_both_ways(size_t len)
{
    uint8_t *buf = malloc(len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(i * 7 + (i >> 16));
    int want = 1;
    ember_call_raw(ember_node_root(S.node), SEC_SVC, M_ECHO, buf, len, raw_done, buf, NULL);
    CU_ASSERT_TRUE(run_until(S.base, replied, &want, 5000));
    CU_ASSERT_EQUAL(S.st, EMBER_OK);
    CU_ASSERT_EQUAL(S.reply_len, len);
    CU_ASSERT_TRUE(S.reply_intact);
    ember_child *c = ember_root_child_by_name(S.root, "n1");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    want = 2;
    ember_call_raw(ember_child_ref(c), SEC_SVC, M_ECHO, buf, len, raw_done, buf, NULL);
    CU_ASSERT_TRUE(run_until(S.base, replied, &want, 5000));
    CU_ASSERT_EQUAL(S.st, EMBER_OK);
    CU_ASSERT_EQUAL(S.reply_len, len);
    CU_ASSERT_TRUE(S.reply_intact);
    CU_ASSERT_EQUAL(S.served, 2);
    free(buf);
}

/* ---- raw peers ---- */

typedef struct rawpeer {
    int fd;
    uint8_t in[4096];
    size_t n;
    bool closed;
    ember_frame f;         /* the frame read, payload in `in` */
} rawpeer;

static bool frame_in(void *ud)
{
    rawpeer *p = ud;
    size_t used;
    const char *why;
    if (p->n < sizeof p->in) {
        ssize_t r = recv(p->fd, p->in + p->n, sizeof p->in - p->n, MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            p->closed = true;
        if (r > 0)
            p->n += (size_t)r;
    }
    return p->closed ||
           ember_frame_parse(p->in, p->n, sizeof p->in, &p->f, &used, &why) == 1;
}

/* Reads one frame into p->f (false if the peer closed first). Only one frame
 * at a time is expected, so the buffer simply restarts afterwards. */
static bool read_frame(rawpeer *p)
{
    p->n = 0;
    if (!run_until(S.base, frame_in, p, 3000))
        return false;
    return !p->closed || p->n > 0;
}

static void send_frame(int fd, ember_enc *e, uint8_t *buf)
{
    uint32_t len = (uint32_t)ember_enc_len(e) - 4;
    buf[0] = (uint8_t)len;
    buf[1] = (uint8_t)(len >> 8);
    buf[2] = (uint8_t)(len >> 16);
    buf[3] = (uint8_t)(len >> 24);
    CU_ASSERT_EQUAL(send(fd, buf, len + 4, MSG_NOSIGNAL), (ssize_t)(len + 4));
}

static void begin(ember_enc *e, uint8_t *buf, size_t cap, uint8_t kind)
{
    ember_enc_init_fixed(e, buf, cap);
    e->p += 4;
    *e->p++ = kind;
}

static void send_register(int fd, const char *name, const uint8_t *proof,
                          const uint8_t *node_nonce)
{
    uint8_t buf[512];
    ember_enc e;
    begin(&e, buf, sizeof buf, EMBER_FR_REGISTER);
    ember_enc_uint(&e, 1, EMBER_PROTOCOL_VERSION);
    ember_enc_string(&e, 2, name);
    if (proof) {
        ember_enc_bytes(&e, 4, (ember_bytes){proof, EMBER_MAC_LEN});
        ember_enc_bytes(&e, 5, (ember_bytes){node_nonce, EMBER_NONCE_LEN});
    }
    send_frame(fd, &e, buf);
}

/* Reads HELLO on a raw connection and returns the root's nonce. */
static bool read_hello(rawpeer *p, uint8_t nonce[EMBER_NONCE_LEN])
{
    if (!read_frame(p) || p->closed || p->f.kind != EMBER_FR_HELLO)
        return false;
    ember_arena *a = ember_arena_new();
    ember_hs hs;
    const char *why;
    bool ok = ember_hs_decode(&p->f, a, &hs, &why) == 0 &&
              hs.nonce.len == EMBER_NONCE_LEN;
    if (ok)
        memcpy(nonce, hs.nonce.data, EMBER_NONCE_LEN);
    ember_arena_free(a);
    return ok;
}

/* ---- authentication ---- */

static void t_right_secret(void)
{
    start("s3cret", NULL);
    S.node = node_to(S.addr, "s3cret", NULL);
    CU_ASSERT_TRUE_FATAL(run_until(S.base, registered, NULL, 3000));
    CU_ASSERT_EQUAL(S.lost, 0);
    calls_both_ways(100);
    finish();
}

static void t_wrong_secret(void)
{
    start("s3cret", NULL);
    S.node = node_to(S.addr, "guess", NULL);
    int want = 3;
    CU_ASSERT_TRUE(run_until(S.base, lost_n, &want, 3000));
    CU_ASSERT_TRUE(strstr(S.reason, "bad credentials") != NULL);
    CU_ASSERT_EQUAL(S.registered, 0);
    CU_ASSERT_EQUAL(S.joins, 0);
    /* Calls made meanwhile never reach a handler. */
    int one = 1;
    ember_call_raw(ember_node_root(S.node), SEC_SVC, M_ECHO, "x", 1, raw_done, NULL, NULL);
    CU_ASSERT_TRUE(run_until(S.base, replied, &one, 1000));
    CU_ASSERT_EQUAL(S.st, EMBER_UNAVAILABLE);
    /* The backoff applies to refusals: 20..200 ms delays allow no more than
     * a handful of attempts in 600 ms (a hammering node would make 100s). */
    int before = S.lost;
    /* Time is the point: count the attempts within a fixed window. */
    run_for(S.base, 600);
    CU_ASSERT_TRUE(S.lost - before <= 8);
    CU_ASSERT_EQUAL(S.served, 0);
    CU_ASSERT_EQUAL(ember_root_child_count(S.root), 0);
    finish();
}

static void t_missing_proof(void)
{
    start("s3cret", NULL);
    S.node = node_to(S.addr, NULL, NULL);
    int want = 1;
    CU_ASSERT_TRUE(run_until(S.base, lost_n, &want, 3000));
    CU_ASSERT_TRUE(strstr(S.reason, "refused by root: bad credentials") != NULL);
    CU_ASSERT_EQUAL(S.joins, 0);
    finish();
}

static void t_no_secret_root_accepts_all(void)
{
    start(NULL, NULL);
    S.node = node_to(S.addr, NULL, NULL);
    CU_ASSERT_TRUE(run_until(S.base, registered, NULL, 3000));
    finish();
}

static void t_node_refuses_secretless_root(void)
{
    /* The root would take the node, but the node cannot authenticate it. */
    start(NULL, NULL);
    S.node = node_to(S.addr, "s3cret", NULL);
    int want = 2;
    CU_ASSERT_TRUE(run_until(S.base, lost_n, &want, 3000));
    CU_ASSERT_TRUE(strstr(S.reason, "bad credentials") != NULL);
    CU_ASSERT_TRUE(strstr(S.reason, "no proof") != NULL);
    CU_ASSERT_EQUAL(S.registered, 0);
    finish();
}

static int before_reg_logs;

static void grab_log(ember_log_level lv, const char *msg, void *ud)
{
    (void)ud;
    if (lv >= EMBER_LOG_WARN && strstr(msg, "before registration"))
        before_reg_logs++;
}

static void t_call_before_register(void)
{
    start("s3cret", NULL);
    rawpeer p = {loopback_connect(S.port), {0}, 0, false, {0}};
    CU_ASSERT_TRUE_FATAL(p.fd >= 0);
    uint8_t nonce[EMBER_NONCE_LEN];
    CU_ASSERT_TRUE(read_hello(&p, nonce));
    ember_set_log(grab_log, NULL);
    /* CALL id 1 on object 0, method M_ECHO, before any REGISTER */
    static const uint8_t call[] = {8, 0, 0, 0, EMBER_FR_CALL, 0x01, 0x00, 0xc0, 0x5e, 1, 0, M_ECHO};
    CU_ASSERT_EQUAL(send(p.fd, call, sizeof call, MSG_NOSIGNAL), (ssize_t)sizeof call);
    p.n = 0;
    CU_ASSERT_TRUE(run_until(S.base, frame_in, &p, 3000));
    CU_ASSERT_TRUE(p.closed);
    /* ONEWAY too */
    close(p.fd);
    rawpeer q = {loopback_connect(S.port), {0}, 0, false, {0}};
    CU_ASSERT_TRUE(read_hello(&q, nonce));
    static const uint8_t ow[] = {7, 0, 0, 0, EMBER_FR_ONEWAY, 0x01, 0x00, 0xc0, 0x5e, 0, M_ECHO};
    CU_ASSERT_EQUAL(send(q.fd, ow, sizeof ow, MSG_NOSIGNAL), (ssize_t)sizeof ow);
    q.n = 0;
    CU_ASSERT_TRUE(run_until(S.base, frame_in, &q, 3000));
    CU_ASSERT_TRUE(q.closed);
    close(q.fd);
    quiet_logs();
    CU_ASSERT_EQUAL(before_reg_logs, 2); /* each logged with its reason */
    CU_ASSERT_EQUAL(S.served, 0);
    CU_ASSERT_EQUAL(S.joins, 0);
    finish();
}

static void t_replayed_register(void)
{
    start("s3cret", NULL);
    uint8_t nonce_a[EMBER_NONCE_LEN], nonce_b[EMBER_NONCE_LEN];
    uint8_t mine[EMBER_NONCE_LEN], proof[EMBER_MAC_LEN];
    memset(mine, 0x5a, sizeof mine);
    rawpeer a = {loopback_connect(S.port), {0}, 0, false, {0}};
    rawpeer b = {loopback_connect(S.port), {0}, 0, false, {0}};
    CU_ASSERT_TRUE_FATAL(read_hello(&a, nonce_a));
    CU_ASSERT_TRUE_FATAL(read_hello(&b, nonce_b));
    CU_ASSERT_NOT_EQUAL(memcmp(nonce_a, nonce_b, EMBER_NONCE_LEN), 0);
    /* A valid REGISTER for session a, as an eavesdropper would record it... */
    CU_ASSERT_EQUAL(ember_auth_register_proof("s3cret", nonce_a, mine, "n1", 2,
                                              proof), 0);
    /* ... replayed on session b: refused. */
    send_register(b.fd, "n1", proof, mine);
    CU_ASSERT_TRUE(read_frame(&b));
    CU_ASSERT_EQUAL(b.f.kind, EMBER_FR_REFUSED);
    ember_arena *ar = ember_arena_new();
    ember_hs hs;
    const char *why;
    CU_ASSERT_EQUAL(ember_hs_decode(&b.f, ar, &hs, &why), 0);
    CU_ASSERT_EQUAL(hs.code, EMBER_REFUSE_AUTH);
    CU_ASSERT_STRING_EQUAL(hs.message, "bad credentials");
    ember_arena_reset(ar);
    /* On its own session the same proof is good, and WELCOME proves the
     * root: HMAC(secret, "ember-welcome-v1" || node nonce || root nonce || id). */
    send_register(a.fd, "n1", proof, mine);
    CU_ASSERT_TRUE(read_frame(&a));
    CU_ASSERT_EQUAL_FATAL(a.f.kind, EMBER_FR_WELCOME);
    CU_ASSERT_EQUAL(ember_hs_decode(&a.f, ar, &hs, &why), 0);
    uint8_t rp[EMBER_MAC_LEN];
    CU_ASSERT_EQUAL(ember_auth_welcome_proof("s3cret", mine, nonce_a, hs.id, rp), 0);
    CU_ASSERT_TRUE(ember_auth_check(&hs.root_proof, rp));
    ember_arena_free(ar);
    CU_ASSERT_EQUAL(S.joins, 1);
    close(a.fd);
    close(b.fd);
    finish();
}

/* The code of the REFUSED that p's REGISTER got (-1: none). */
static int refused_code(rawpeer *p)
{
    if (!read_frame(p) || p->f.kind != EMBER_FR_REFUSED)
        return -1;
    ember_arena *ar = ember_arena_new();
    ember_hs hs;
    const char *why;
    int code = ember_hs_decode(&p->f, ar, &hs, &why) == 0 ? (int)hs.code : -1;
    ember_arena_free(ar);
    return code;
}

/* With a secret, the proof is checked before the name's rules: without it
 * a node learns nothing about the node it claims to be, not even that its
 * name is malformed; with it, the name's rules apply as on any root. */
static void t_proof_before_name(void)
{
    start("s3cret", NULL);
    static const char bad[] = "bad\x01name";
    uint8_t nonce[EMBER_NONCE_LEN], mine[EMBER_NONCE_LEN], proof[EMBER_MAC_LEN];
    memset(mine, 0x5a, sizeof mine);
    rawpeer a = {loopback_connect(S.port), {0}, 0, false, {0}};
    CU_ASSERT_TRUE_FATAL(read_hello(&a, nonce));
    send_register(a.fd, bad, NULL, NULL);
    CU_ASSERT_EQUAL(refused_code(&a), EMBER_REFUSE_AUTH);
    rawpeer b = {loopback_connect(S.port), {0}, 0, false, {0}};
    CU_ASSERT_TRUE_FATAL(read_hello(&b, nonce));
    CU_ASSERT_EQUAL(ember_auth_register_proof("s3cret", nonce, mine, bad,
                                              strlen(bad), proof), 0);
    send_register(b.fd, bad, proof, mine);
    CU_ASSERT_EQUAL(refused_code(&b), EMBER_REFUSE_BAD_NAME);
    close(a.fd);
    close(b.fd);
    CU_ASSERT_EQUAL(S.joins, 0);
    finish();
}

/* REGISTER with a proof and a node nonce whose name field holds name
 * (len bytes, NULL: no name field at all). */
static void send_register_raw(int fd, const char *name, size_t len,
                              const uint8_t *proof, const uint8_t *node_nonce)
{
    uint8_t buf[512];
    ember_enc e;
    begin(&e, buf, sizeof buf, EMBER_FR_REGISTER);
    ember_enc_uint(&e, 1, EMBER_PROTOCOL_VERSION);
    if (name)
        ember_enc_bytes(&e, 2, (ember_bytes){(const uint8_t *)name, len});
    ember_enc_bytes(&e, 4, (ember_bytes){proof, EMBER_MAC_LEN});
    ember_enc_bytes(&e, 5, (ember_bytes){node_nonce, EMBER_NONCE_LEN});
    send_frame(fd, &e, buf);
}

/* The proof covers the name's bytes as sent. A REGISTER with a proof but
 * no name used to crash the root (strlen of no name) before anyone had
 * proved anything; a name with a NUL inside was checked as its prefix. */
static void t_proof_over_name_as_sent(void)
{
    start("s3cret", NULL);
    uint8_t nonce[EMBER_NONCE_LEN], mine[EMBER_NONCE_LEN], proof[EMBER_MAC_LEN];
    memset(mine, 0x5a, sizeof mine);
    memset(proof, 0x33, sizeof proof);
    rawpeer a = {loopback_connect(S.port), {0}, 0, false, {0}};
    CU_ASSERT_TRUE_FATAL(read_hello(&a, nonce));
    send_register_raw(a.fd, NULL, 0, proof, mine);
    CU_ASSERT_EQUAL(refused_code(&a), EMBER_REFUSE_AUTH);
    /* A proof for "n1" does not admit "n1\0x" (refused as a bad name only
     * after a proof for those four bytes). */
    rawpeer b = {loopback_connect(S.port), {0}, 0, false, {0}};
    CU_ASSERT_TRUE_FATAL(read_hello(&b, nonce));
    CU_ASSERT_EQUAL(ember_auth_register_proof("s3cret", nonce, mine, "n1", 2,
                                              proof), 0);
    send_register_raw(b.fd, "n1\0x", 4, proof, mine);
    CU_ASSERT_EQUAL(refused_code(&b), EMBER_REFUSE_AUTH);
    rawpeer c = {loopback_connect(S.port), {0}, 0, false, {0}};
    CU_ASSERT_TRUE_FATAL(read_hello(&c, nonce));
    CU_ASSERT_EQUAL(ember_auth_register_proof("s3cret", nonce, mine, "n1\0x", 4,
                                              proof), 0);
    send_register_raw(c.fd, "n1\0x", 4, proof, mine);
    CU_ASSERT_EQUAL(refused_code(&c), EMBER_REFUSE_BAD_NAME);
    close(a.fd);
    close(b.fd);
    close(c.fd);
    CU_ASSERT_EQUAL(S.joins, 0);
    finish();
}

static void wake_only(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

typedef struct accept_wait { int ls, fd; } accept_wait;
static bool accepted(void *ud)
{
    accept_wait *w = ud;
    if (w->fd < 0)
        w->fd = accept(w->ls, NULL, NULL);
    return w->fd >= 0;
}

/* Plays root by hand: listens, starts a node (secret) towards it, accepts
 * its connection into p. Returns the listening socket. */
static int fake_root(rawpeer *p, const char *secret)
{
    memset(&S, 0, sizeof S);
    S.base = event_base_new();
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = loopback_addr(0);
    socklen_t sl = sizeof sa;
    CU_ASSERT_EQUAL_FATAL(bind(ls, (struct sockaddr *)&sa, sizeof sa), 0);
    CU_ASSERT_EQUAL_FATAL(listen(ls, 4), 0);
    fcntl(ls, F_SETFL, O_NONBLOCK); /* accept polls while the loop runs */
    getsockname(ls, (struct sockaddr *)&sa, &sl);
    snprintf(S.addr, sizeof S.addr, "127.0.0.1:%d", ntohs(sa.sin_port));
    /* A real root exists only so finish() has something to free. */
    ember_root_config rc;
    ember_root_config_default(&rc);
    S.root = ember_root_new(S.base, &rc);
    S.node = node_to(S.addr, secret, NULL);

    /* Let the node connect. */
    *p = (rawpeer){-1, {0}, 0, false, {0}};
    /* The listening socket wakes the loop when the node connects. */
    struct event *lev = event_new(S.base, ls, EV_READ | EV_PERSIST, wake_only, NULL);
    event_add(lev, NULL);
    accept_wait aw = {ls, -1};
    CU_ASSERT_TRUE(run_until(S.base, accepted, &aw, 3000));
    event_free(lev);
    p->fd = aw.fd;
    return ls;
}

/* Sends HELLO speaking protocol versions vmin..vmax, with nonce. */
static void send_hello(int fd, uint32_t vmin, uint32_t vmax, const uint8_t *nonce)
{
    uint8_t buf[128];
    ember_enc e;
    begin(&e, buf, sizeof buf, EMBER_FR_HELLO);
    ember_enc_string(&e, 1, EMBER_MAGIC);
    ember_enc_uint(&e, 2, vmin);
    ember_enc_uint(&e, 3, vmax);
    ember_enc_bytes(&e, 4, (ember_bytes){nonce, EMBER_NONCE_LEN});
    send_frame(fd, &e, buf);
}

/* A fake root that knows another secret (or none) and claims WELCOME. */
static void t_root_impersonation(void)
{
    rawpeer p;
    int ls = fake_root(&p, "s3cret");
    CU_ASSERT_TRUE_FATAL(p.fd >= 0);
    uint8_t buf[512], nonce[EMBER_NONCE_LEN];
    memset(nonce, 1, sizeof nonce);
    send_hello(p.fd, EMBER_PROTOCOL_VERSION, EMBER_PROTOCOL_VERSION, nonce);
    ember_enc e;
    CU_ASSERT_TRUE_FATAL(read_frame(&p));
    CU_ASSERT_EQUAL_FATAL(p.f.kind, EMBER_FR_REGISTER);
    ember_arena *ar = ember_arena_new();
    ember_hs hs;
    const char *why;
    CU_ASSERT_EQUAL(ember_hs_decode(&p.f, ar, &hs, &why), 0);
    CU_ASSERT_EQUAL_FATAL(hs.node_nonce.len, EMBER_NONCE_LEN);
    CU_ASSERT_EQUAL(hs.proof.len, EMBER_MAC_LEN);
    /* The secret itself never appears in what the node sent. */
    bool leaked = false;
    for (size_t i = 0; i + 6 <= p.n; i++)
        leaked |= memcmp(p.in + i, "s3cret", 6) == 0;
    CU_ASSERT_FALSE(leaked);
    uint8_t forged[EMBER_MAC_LEN];
    CU_ASSERT_EQUAL(ember_auth_welcome_proof("other", hs.node_nonce.data, nonce,
                                             7, forged), 0);
    begin(&e, buf, sizeof buf, EMBER_FR_WELCOME);
    ember_enc_uint(&e, 1, 7);
    ember_enc_bytes(&e, 5, (ember_bytes){forged, sizeof forged});
    send_frame(p.fd, &e, buf);
    ember_arena_free(ar);
    int want = 1;
    CU_ASSERT_TRUE(run_until(S.base, lost_n, &want, 3000));
    CU_ASSERT_TRUE(strstr(S.reason, "bad credentials") != NULL);
    CU_ASSERT_TRUE(strstr(S.reason, "failed to prove") != NULL);
    CU_ASSERT_EQUAL(S.registered, 0);
    close(p.fd);
    close(ls);
    finish();
}

/* ---- protocol versions ---- */

/* A node of protocol version 1 (calls without service ids) is refused at
 * registration, and told why. */
static void t_old_node_refused(void)
{
    start(NULL, NULL);
    rawpeer p = {loopback_connect(S.port), {0}, 0, false, {0}};
    CU_ASSERT_TRUE_FATAL(p.fd >= 0);
    CU_ASSERT_TRUE_FATAL(read_frame(&p) && p.f.kind == EMBER_FR_HELLO);
    ember_arena *a = ember_arena_new();
    ember_hs hs;
    const char *why;
    CU_ASSERT_EQUAL(ember_hs_decode(&p.f, a, &hs, &why), 0);
    CU_ASSERT_EQUAL(hs.vmin, 2);
    CU_ASSERT_EQUAL(hs.vmax, EMBER_PROTOCOL_VERSION);
    uint8_t buf[128];
    ember_enc e;
    begin(&e, buf, sizeof buf, EMBER_FR_REGISTER);
    ember_enc_uint(&e, 1, 1);
    ember_enc_string(&e, 2, "old-node");
    send_frame(p.fd, &e, buf);
    CU_ASSERT_TRUE_FATAL(read_frame(&p));
    CU_ASSERT_EQUAL_FATAL(p.f.kind, EMBER_FR_REFUSED);
    CU_ASSERT_EQUAL(ember_hs_decode(&p.f, a, &hs, &why), 0);
    CU_ASSERT_EQUAL(hs.code, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(hs.message);
    CU_ASSERT_STRING_EQUAL(hs.message, "protocol version 1 not supported (2..3)");
    CU_ASSERT_EQUAL(ember_root_child_count(S.root), 0);
    ember_arena_free(a);
    close(p.fd);
    finish();
}

/* A root of protocol version 1 only: the node closes, saying why. */
static void t_old_root_refused(void)
{
    rawpeer p;
    int ls = fake_root(&p, NULL);
    CU_ASSERT_TRUE_FATAL(p.fd >= 0);
    uint8_t nonce[EMBER_NONCE_LEN];
    memset(nonce, 1, sizeof nonce);
    send_hello(p.fd, 1, 1, nonce);
    int want = 1;
    CU_ASSERT_TRUE(run_until(S.base, lost_n, &want, 3000));
    CU_ASSERT_TRUE(strstr(S.reason, "no common protocol version (root 1..1, "
                                    "node 2..3)") != NULL);
    CU_ASSERT_EQUAL(S.registered, 0);
    close(p.fd);
    close(ls);
    finish();
}

/* ---- output ---- */

#define BATCH 64
#define M_PEEK 2

static int peek_fd = -1;
static ssize_t peeked;     /* answer bytes the raw node had when call BATCH ran */

/* Echo that, as the batch's last call runs, looks at what the raw node
 * has received so far. */
static void echo_peek(ember_call *call, uint32_t sid, uint32_t mid, const void *p,
                      size_t len, void *ud)
{
    static uint8_t tmp[1 << 16];
    (void)sid;
    (void)mid;
    (void)ud;
    if (++S.served == BATCH)
        peeked = recv(peek_fd, tmp, sizeof tmp, MSG_PEEK | MSG_DONTWAIT);
    ember_call_reply_raw(call, p, len);
}

typedef struct replies {
    int fd, n;
    uint8_t in[1 << 16];
    size_t len;
} replies;

static bool all_replied(void *ud)
{
    replies *r = ud;
    ssize_t got = recv(r->fd, r->in + r->len, sizeof r->in - r->len, MSG_DONTWAIT);
    if (got > 0)
        r->len += (size_t)got;
    size_t off = 0, used;
    ember_frame f;
    const char *why;
    r->n = 0;
    while (ember_frame_parse(r->in + off, r->len - off, sizeof r->in, &f, &used,
                             &why) == 1) {
        r->n += f.kind == EMBER_FR_REPLY;
        off += used;
    }
    return r->n == BATCH;
}

/* BATCH calls in one write: the root reads them as one batch, and the
 * answers of the first ones are on their way before the last one runs,
 * so the caller starts on them while the root works on the rest. */
static void t_long_batch_sends_early(void)
{
    start(NULL, NULL);
    CU_ASSERT_EQUAL(ember_exports_add_raw(ember_root_exports(S.root), SEC_SVC,
                                          M_PEEK, echo_peek, NULL), 0);
    rawpeer p = {loopback_connect(S.port), {0}, 0, false, {0}};
    CU_ASSERT_TRUE_FATAL(p.fd >= 0);
    CU_ASSERT_TRUE_FATAL(read_frame(&p) && p.f.kind == EMBER_FR_HELLO);
    send_register(p.fd, "raw", NULL, NULL);
    CU_ASSERT_TRUE_FATAL(read_frame(&p) && p.f.kind == EMBER_FR_WELCOME);

    static uint8_t calls[BATCH * 128];
    uint8_t payload[64];
    memset(payload, 'x', sizeof payload);
    size_t len = 0;
    for (int i = 0; i < BATCH; i++) {
        ember_enc e;
        begin(&e, calls + len, sizeof calls - len, EMBER_FR_CALL);
        ember_enc_raw_fixed32(&e, SEC_SVC);
        ember_enc_raw_varint(&e, (uint64_t)i + 1);
        ember_enc_raw_varint(&e, 0);
        ember_enc_raw_varint(&e, M_PEEK);
        ember_enc_raw_bytes(&e, payload, sizeof payload);
        uint32_t n = (uint32_t)ember_enc_len(&e) - 4;
        ember_put_le32(calls + len, n);
        len += n + 4;
    }
    peek_fd = p.fd;
    peeked = -1;
    CU_ASSERT_EQUAL_FATAL(send(p.fd, calls, len, MSG_NOSIGNAL), (ssize_t)len);
    replies r = {p.fd, 0, {0}, 0};
    CU_ASSERT_TRUE(run_until(S.base, all_replied, &r, 3000));
    CU_ASSERT_EQUAL(S.served, BATCH);
    CU_ASSERT(peeked > 0);
    close(p.fd);
    finish();
}

/* ---- TLS ---- */

static char tmpdir[64];
static bool have_certs;

static int sh(const char *cmd)
{
    char full[1024];
    snprintf(full, sizeof full, "cd %s && { %s; } >/dev/null 2>&1", tmpdir, cmd);
    return system(full);
}

/* ca / wrongca, server cert for localhost + 127.0.0.1, a client cert. */
static int make_certs(void)
{
    if (system("command -v openssl >/dev/null 2>&1") != 0) {
        if (geteuid() == 0)
            (void)system("apt-get install -y -qq openssl >/dev/null 2>&1");
        if (system("command -v openssl >/dev/null 2>&1") != 0)
            return -1;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ember-tls-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    static const char *cmds[] = {
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=ember-test-ca"
        " -keyout ca.key -out ca.pem",
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=wrong-ca"
        " -keyout wrongca.key -out wrongca.pem",
        "openssl req -newkey rsa:2048 -nodes -subj /CN=localhost"
        " -keyout server.key -out server.csr",
        "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > server.ext",
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
        " -days 2 -extfile server.ext -out server.pem",
        "openssl req -newkey rsa:2048 -nodes -subj /CN=n1"
        " -keyout client.key -out client.csr",
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
        " -days 2 -out client.pem",
    };
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
        if (sh(cmds[i]) != 0)
            return -1;
    return 0;
}

static char pth[8][128];

static const char *f(int slot, const char *name)
{
    snprintf(pth[slot], sizeof pth[slot], "%s/%s", tmpdir, name);
    return pth[slot];
}

static bool tls_ready(void)
{
    if (!have_certs)
        printf("\n    SKIPPED: no openssl CLI to make test certificates "
               "(Debian package \"openssl\")\n");
    return have_certs;
}

static ember_tls_config root_tls(int require_client)
{
    ember_tls_config t = {f(0, "server.pem"), f(1, "server.key"), f(2, "ca.pem"),
                          NULL, require_client};
    return t;
}

static void t_tls_register_and_call(void)
{
    if (!tls_ready())
        return;
    ember_tls_config rt = root_tls(1);
    start("s3cret", &rt);
    ember_tls_config nt = {f(3, "client.pem"), f(4, "client.key"),
                           f(5, "ca.pem"), "localhost", 0};
    S.node = node_to(S.addr, "s3cret", &nt);
    CU_ASSERT_TRUE_FATAL(run_until(S.base, registered, NULL, 5000));
    calls_both_ways(100);
    S.served = 0;
    S.replies = 0;
    calls_both_ways(3u << 20); /* 3 MiB: many TLS records each way */
    finish();
    /* The default server name is the host dialled: 127.0.0.1 is in the
     * certificate's IP addresses. */
    rt = root_tls(0);
    start(NULL, &rt);
    ember_tls_config nt2 = {NULL, NULL, f(5, "ca.pem"), NULL, 0};
    S.node = node_to(S.addr, NULL, &nt2);
    CU_ASSERT_TRUE(run_until(S.base, registered, NULL, 5000));
    finish();
}

static void t_tls_wrong_ca(void)
{
    if (!tls_ready())
        return;
    ember_tls_config rt = root_tls(0);
    start(NULL, &rt);
    ember_tls_config nt = {NULL, NULL, f(5, "wrongca.pem"), "localhost", 0};
    S.node = node_to(S.addr, NULL, &nt);
    int want = 2;
    CU_ASSERT_TRUE(run_until(S.base, lost_n, &want, 5000));
    CU_ASSERT_TRUE(strstr(S.reason, "certificate verification failed") != NULL);
    CU_ASSERT_EQUAL(S.joins, 0);
    finish();
}

static void t_tls_wrong_host(void)
{
    if (!tls_ready())
        return;
    ember_tls_config rt = root_tls(0);
    start(NULL, &rt);
    ember_tls_config nt = {NULL, NULL, f(5, "ca.pem"), "game.example.org", 0};
    S.node = node_to(S.addr, NULL, &nt);
    int want = 2;
    CU_ASSERT_TRUE(run_until(S.base, lost_n, &want, 5000));
    CU_ASSERT_TRUE(strstr(S.reason, "hostname mismatch") != NULL);
    CU_ASSERT_EQUAL(S.joins, 0);
    finish();
}

static void t_tls_client_cert_required(void)
{
    if (!tls_ready())
        return;
    ember_tls_config rt = root_tls(1);
    start(NULL, &rt);
    ember_tls_config nt = {NULL, NULL, f(5, "ca.pem"), "localhost", 0};
    S.node = node_to(S.addr, NULL, &nt);
    int want = 2;
    CU_ASSERT_TRUE(run_until(S.base, lost_n, &want, 5000));
    CU_ASSERT_EQUAL(S.joins, 0);
    CU_ASSERT_EQUAL(S.registered, 0);
    finish();
}

static void t_tls_plain_node(void)
{
    if (!tls_ready())
        return;
    /* Each side waits for the other to speak first (ClientHello / HELLO):
     * the handshake deadline ends it. */
    handshake_ms = 200;
    ember_tls_config rt = root_tls(0);
    start(NULL, &rt);
    S.node = node_to(S.addr, NULL, NULL);
    int want = 2;
    CU_ASSERT_TRUE(run_until(S.base, lost_n, &want, 5000));
    /* whichever side's deadline comes first */
    CU_ASSERT_TRUE(strstr(S.reason, "timed out") != NULL ||
                   strstr(S.reason, "peer closed") != NULL);
    CU_ASSERT_EQUAL(S.joins, 0);
    CU_ASSERT_EQUAL(S.registered, 0);
    finish();
    handshake_ms = 0;
    /* and a TLS node against a plain root: the root's HELLO is not TLS */
    start(NULL, NULL);
    ember_tls_config nt = {NULL, NULL, f(5, "ca.pem"), "localhost", 0};
    S.node = node_to(S.addr, NULL, &nt);
    CU_ASSERT_TRUE(run_until(S.base, lost_n, &want, 5000));
    CU_ASSERT_TRUE(strstr(S.reason, "TLS handshake failed") != NULL);
    CU_ASSERT_EQUAL(S.joins, 0);
    finish();
}

/* ---- TLS: the last frame and close_notify, then EOF ---- */

typedef struct tlspeer {
    int fd;
    SSL *ssl;
    uint8_t in[4096];
    size_t n;
    bool notify;           /* the root's close_notify came */
    int err;               /* a TLS failure (-1), or recv's errno */
    bool eof;              /* the socket's end of stream, after close_notify */
} tlspeer;

static bool tls_connected(void *ud)
{
    tlspeer *p = ud;
    int r = SSL_connect(p->ssl);
    if (r == 1)
        return true;
    int e = SSL_get_error(p->ssl, r);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
        p->err = -1;
    return p->err != 0;
}

/* Reads decrypted bytes into p->in; true once a frame is there or the
 * session ended. */
static bool tls_frame_in(void *ud)
{
    tlspeer *p = ud;
    ember_frame f;
    size_t used;
    const char *why;
    while (!p->notify && !p->err && p->n < sizeof p->in) {
        int r = SSL_read(p->ssl, p->in + p->n, (int)(sizeof p->in - p->n));
        if (r > 0) {
            p->n += (size_t)r;
            continue;
        }
        int e = SSL_get_error(p->ssl, r);
        if (e == SSL_ERROR_ZERO_RETURN)
            p->notify = true;
        else if (e != SSL_ERROR_WANT_READ)
            p->err = -1;
        break;
    }
    return p->notify || p->err ||
           ember_frame_parse(p->in, p->n, sizeof p->in, &f, &used, &why) == 1;
}

/* The first frame of p->in, taken out of it: its kind (0: none). */
static uint8_t tls_take_frame(tlspeer *p)
{
    ember_frame f;
    size_t used;
    const char *why;
    if (ember_frame_parse(p->in, p->n, sizeof p->in, &f, &used, &why) != 1)
        return 0;
    uint8_t kind = f.kind;
    memmove(p->in, p->in + used, p->n - used);
    p->n -= used;
    return kind;
}

static bool tls_raw_end(void *ud)
{
    tlspeer *p = ud;
    char c;
    ssize_t r = recv(p->fd, &c, 1, MSG_DONTWAIT);
    if (r == 0)
        p->eof = true;
    else if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        p->err = errno;
    return p->eof || p->err;
}

static void tls_send(tlspeer *p, const void *b, size_t n)
{
    CU_ASSERT_EQUAL(SSL_write(p->ssl, b, (int)n), (int)n);
}

static int tls_stops;
static void tls_stopped(ember_root *r, void *ud)
{
    (void)r;
    (void)ud;
    tls_stops++;
}

/* ember_root_shutdown while a TLS peer's records wait unread: the peer
 * reads GOODBYE and the root's close_notify, then the socket's EOF (not a
 * reset); done runs once it closed. */
static void t_tls_goodbye_then_eof(void)
{
    if (!tls_ready())
        return;
    ember_tls_config rt = root_tls(0);
    start(NULL, &rt);
    tlspeer p;
    memset(&p, 0, sizeof p);
    p.fd = loopback_connect(S.port);
    CU_ASSERT_TRUE_FATAL(p.fd >= 0);
    CU_ASSERT_EQUAL_FATAL(fcntl(p.fd, F_SETFL, O_NONBLOCK), 0);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    p.ssl = SSL_new(ctx);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p.ssl);
    SSL_set_fd(p.ssl, p.fd);
    CU_ASSERT_TRUE_FATAL(run_until(S.base, tls_connected, &p, 5000));
    CU_ASSERT_EQUAL_FATAL(p.err, 0);
    CU_ASSERT_TRUE_FATAL(run_until(S.base, tls_frame_in, &p, 5000));
    CU_ASSERT_EQUAL_FATAL(tls_take_frame(&p), EMBER_FR_HELLO);
    uint8_t buf[512];
    ember_enc e;
    begin(&e, buf, sizeof buf, EMBER_FR_REGISTER);
    ember_enc_uint(&e, 1, EMBER_PROTOCOL_VERSION);
    ember_enc_string(&e, 2, "n1");
    uint32_t len = (uint32_t)ember_enc_len(&e) - 4;
    ember_put_le32(buf, len);
    tls_send(&p, buf, len + 4);
    CU_ASSERT_TRUE_FATAL(run_until(S.base, tls_frame_in, &p, 5000));
    CU_ASSERT_EQUAL_FATAL(tls_take_frame(&p), EMBER_FR_WELCOME);
    CU_ASSERT_EQUAL_FATAL(S.joins, 1);
    /* 32 KiB of PONGs the root will not have read when it closes (it takes
     * them in whole, without blocking either side). */
    static uint8_t pongs[5 * 6553];
    for (size_t i = 0; i < sizeof pongs; i += 5)
        memcpy(pongs + i, (const uint8_t[5]){1, 0, 0, 0, EMBER_FR_PONG}, 5);
    tls_send(&p, pongs, sizeof pongs);
    tls_stops = 0;
    ember_root_shutdown(S.root, tls_stopped, NULL);
    uint8_t kind;
    do {
        CU_ASSERT_TRUE_FATAL(run_until(S.base, tls_frame_in, &p, 5000));
        kind = tls_take_frame(&p);
    } while (kind == EMBER_FR_PING);
    CU_ASSERT_EQUAL(kind, EMBER_FR_GOODBYE);
    CU_ASSERT_TRUE(run_until(S.base, tls_frame_in, &p, 5000));
    CU_ASSERT_TRUE(p.notify);
    CU_ASSERT_EQUAL(p.n, 0);
    CU_ASSERT_TRUE(run_until(S.base, tls_raw_end, &p, 5000));
    if (p.err)
        fprintf(stderr, "\n  after close_notify: %s, not an end of stream\n",
                p.err > 0 ? strerror(p.err) : "TLS failure");
    CU_ASSERT_EQUAL(p.err, 0);
    CU_ASSERT_TRUE(p.eof);
    CU_ASSERT_EQUAL(tls_stops, 0); /* the socket lingers until we close */
    SSL_free(p.ssl);
    SSL_CTX_free(ctx);
    close(p.fd);
    CU_ASSERT_TRUE(run_until(S.base, flag_set, &tls_stops, 5000));
    finish();
}

static void t_tls_bad_config(void)
{
    if (!tls_ready())
        return;
    ember_root_config rc;
    ember_root_config_default(&rc);
    ember_tls_config t = {f(0, "nope.pem"), NULL, NULL, NULL, 0};
    rc.tls = &t;
    struct event_base *b = event_base_new();
    CU_ASSERT_PTR_NULL(ember_root_new(b, &rc));
    CU_ASSERT_TRUE(strstr(ember_last_error(), "cert_file") != NULL);
    /* Each error names the file and says what is wrong with it. */
    static const struct {
        const char *cert, *key, *ca, *file, *why;
    } bad[] = {
        {"server.pem", "nope.key", NULL, "nope.key", "No such file or directory"},
        {"server.key", "server.key", NULL, "server.key", "no PEM data"},
        {"server.pem", "client.key", NULL, "client.key", "not the key of cert_file"},
        {"server.pem", NULL, NULL, "server.pem", "no private key in cert_file"},
        {"server.pem", "server.key", "server.key", "server.key", "ca_file"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ember_tls_config bt = {f(0, bad[i].cert),
                               bad[i].key ? f(1, bad[i].key) : NULL,
                               bad[i].ca ? f(2, bad[i].ca) : NULL, NULL, 0};
        rc.tls = &bt;
        CU_ASSERT_PTR_NULL(ember_root_new(b, &rc));
        const char *e = ember_last_error();
        if (!strstr(e, bad[i].file) || !strstr(e, bad[i].why))
            printf("\n    case %zu: \"%s\"\n", i, e);
        CU_ASSERT_TRUE(strstr(e, bad[i].file) != NULL);
        CU_ASSERT_TRUE(strstr(e, bad[i].why) != NULL);
    }
    ember_node_config nc;
    ember_node_config_default(&nc);
    ember_tls_config t2 = {NULL, NULL, NULL, NULL, 0}; /* no CA */
    nc.tls = &t2;
    CU_ASSERT_PTR_NULL(ember_node_new(b, "x", &nc));
    /* A client key without its certificate would be ignored: the node
     * would send no certificate, and learn why only from a root that
     * requires one. */
    ember_tls_config t3 = {NULL, f(1, "client.key"), f(2, "ca.pem"), NULL, 0};
    nc.tls = &t3;
    CU_ASSERT_PTR_NULL(ember_node_new(b, "x", &nc));
    CU_ASSERT_TRUE(strstr(ember_last_error(), "key_file without cert_file") != NULL);
    /* An empty server_name is refused here, not at every connection. */
    ember_tls_config t4 = {NULL, NULL, f(2, "ca.pem"), "", 0};
    nc.tls = &t4;
    CU_ASSERT_PTR_NULL(ember_node_new(b, "x", &nc));
    CU_ASSERT_TRUE(strstr(ember_last_error(), "bad server name") != NULL);
    event_base_free(b);
}

static int tls_suite_init(void)
{
    have_certs = make_certs() == 0;
    return 0;
}

static int tls_suite_clean(void)
{
    if (tmpdir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
        (void)system(cmd);
    }
    return 0;
}

void add_security_suite(void)
{
    CU_pSuite s = CU_add_suite("authentication", NULL, NULL);
    CU_add_test(s, "right secret: registered, calls both ways", t_right_secret);
    CU_add_test(s, "wrong secret: refused, backoff, no handler", t_wrong_secret);
    CU_add_test(s, "missing proof: refused", t_missing_proof);
    CU_add_test(s, "root without secret accepts nodes without", t_no_secret_root_accepts_all);
    CU_add_test(s, "node with secret refuses a secretless root", t_node_refuses_secretless_root);
    CU_add_test(s, "CALL/ONEWAY before registering: disconnected", t_call_before_register);
    CU_add_test(s, "replayed REGISTER refused", t_replayed_register);
    CU_add_test(s, "proof checked before the name's rules", t_proof_before_name);
    CU_add_test(s, "proof over the name as sent (none, NUL inside)",
                t_proof_over_name_as_sent);
    CU_add_test(s, "root impersonation refused by the node", t_root_impersonation);
    CU_add_test(s, "a node of protocol version 1 is refused", t_old_node_refused);
    CU_add_test(s, "a root of protocol version 1 is refused", t_old_root_refused);
    CU_add_test(s, "a long read batch sends its first answers early",
                t_long_batch_sends_early);
    s = CU_add_suite("tls", tls_suite_init, tls_suite_clean);
    CU_add_test(s, "register and call both ways (3 MiB)", t_tls_register_and_call);
    CU_add_test(s, "wrong CA refused", t_tls_wrong_ca);
    CU_add_test(s, "wrong hostname refused", t_tls_wrong_host);
    CU_add_test(s, "client certificate required", t_tls_client_cert_required);
    CU_add_test(s, "shutdown: GOODBYE, close_notify, then EOF over unread records",
                t_tls_goodbye_then_eof);
    CU_add_test(s, "plain node vs TLS root, and back", t_tls_plain_node);
    CU_add_test(s, "bad TLS configuration", t_tls_bad_config);
}
