/*
 * node.c — a node (Firefly's RemoteObject, plus what it lacked): connects to
 * a root, registers, and after any loss reconnects with exponential backoff
 * and jitter, forever, until closed or freed. Its root ref is stable across
 * reconnects: it simply points at the current connection, or at none.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/util.h>
#include <openssl/crypto.h>

#include "addr-internal.h"
#include "auth-internal.h"
#include "call-internal.h"
#include "conn-internal.h"
#include "ember-internal.h"
#include "ep-internal.h"
#include "handshake-internal.h"
#include "probe-internal.h"
#include "ref-internal.h"
#include "wire-internal.h"

struct ember_node {
    ember_ep ep;
    ember_node_config cfg;
    char *name;
    char *addr;
    char *tls_host;            /* the name the root's certificate must carry */
    char what[64];
    ember_node_state st;
    ember_conn *conn;          /* current connection (handshaking or ready) */
    bool registering;          /* REGISTER sent on conn: WELCOME or REFUSED next */
    bool pb;                   /* the root speaks Twisted PB (connect_pb) */
    ember_ref *root_ref;
    uint32_t id;
    unsigned attempt;          /* failures since the last registration */
    int cfd;                   /* socket while connect() is in progress */
    struct event *connect_ev;
    struct event *retry_ev;
    bool closing;
    void (*close_done)(ember_node *n, void *ud);
    void *close_ud;
};

EMBER_API const char *ember_node_state_name(ember_node_state s)
{
    static const char *names[] = {"idle", "connecting", "registered", "lost",
                                  "closed"};
    return (unsigned)s < 5 ? names[s] : "?";
}

static void set_state(ember_node *n, ember_node_state st, const char *reason)
{
    n->st = st;
    if (n->cfg.on_state)
        n->cfg.on_state(n, st, reason, n->cfg.ud);
}

static void schedule_retry(ember_node *n, const char *reason)
{
    uint64_t d = n->cfg.backoff_min_ms;
    for (unsigned i = 0; i < n->attempt && d < n->cfg.backoff_max_ms; i++)
        d *= 2;
    if (n->cfg.backoff_max_ms && d > n->cfg.backoff_max_ms)
        d = n->cfg.backoff_max_ms;
    /* Jitter: somewhere in [d/2, d], so restarted nodes do not stampede. */
    uint32_t rnd;
    evutil_secure_rng_get_bytes(&rnd, sizeof rnd);
    d = d / 2 + rnd % (d / 2 + 1);
    if (n->attempt < 32)
        n->attempt++;
    ember_log(EMBER_LOG_INFO, "%s: %s; retrying in %llu ms", n->what, reason,
              (unsigned long long)d);
    struct timeval tv = {(time_t)(d / 1000), (suseconds_t)(d % 1000) * 1000};
    evtimer_add(n->retry_ev, &tv);
    set_state(n, EMBER_NODE_LOST, reason);
}

static void cancel_connect(ember_node *n)
{
    if (n->cfd >= 0) {
        event_del(n->connect_ev);
        close(n->cfd);
        n->cfd = -1;
    }
}

static void on_connected(evutil_socket_t fd, short what, void *arg)
{
    ember_node *n = arg;
    char reason[160];
    int err = 0;
    socklen_t el = sizeof err;
    if (what & EV_TIMEOUT) {
        cancel_connect(n);
        schedule_retry(n, "connect timed out");
        return;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
        err = errno;
    if (err) {
        cancel_connect(n);
        snprintf(reason, sizeof reason, "cannot connect to %s: %s", n->addr,
                 strerror(err));
        schedule_retry(n, reason);
        return;
    }
    n->cfd = -1;
    ember_conn *c = ember_conn_new(&n->ep, fd, n->addr);
    if (!c) {
        schedule_retry(n, "out of memory");
        return;
    }
    c->name = "root";
    n->conn = c; /* now wait for HELLO */
    n->registering = false;
    if (n->ep.tls_ctx && ember_tls_attach(c, false, n->tls_host)) {
        /* A failure closes c: node_lost schedules the retry. */
        ember_conn_close(c, EMBER_LOST, ember_last_error());
        return;
    }
    if (n->pb)
        ember_pb_start(c, false, n->name); /* a failure closes c */
}

static void try_connect(ember_node *n)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char reason[300];
    set_state(n, EMBER_NODE_CONNECTING, NULL);
    if (n->closing)
        return; /* on_state closed the node: the close finishes it */
    if (ember_addr_parse(n->addr, &ss, &len)) {
        schedule_retry(n, ember_last_error());
        return;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM, 0);
    if (fd < 0 || ember_sock_prepare(fd)) {
        if (fd >= 0)
            close(fd);
        snprintf(reason, sizeof reason, "socket: %s", strerror(errno));
        schedule_retry(n, reason);
        return;
    }
    if (connect(fd, (struct sockaddr *)&ss, len) < 0 && errno != EINPROGRESS) {
        snprintf(reason, sizeof reason, "cannot connect to %s: %s", n->addr,
                 strerror(errno));
        close(fd);
        schedule_retry(n, reason);
        return;
    }
    n->cfd = fd;
    if (n->connect_ev)
        event_free(n->connect_ev);
    n->connect_ev = event_new(n->ep.base, fd, EV_WRITE, on_connected, n);
    uint32_t ms = n->ep.lim.handshake_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (!n->connect_ev || event_add(n->connect_ev, &tv)) {
        close(fd);
        n->cfd = -1;
        schedule_retry(n, "out of memory");
    }
}

static void node_quiet(ember_ep *ep)
{
    struct timeval zero = {0, 0};
    evtimer_add(ep->node->retry_ev, &zero); /* on_retry finishes the close */
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    ember_node *n = arg;
    (void)fd;
    (void)what;
    if (n->closing) {
        n->ep.on_idle = NULL;
        /* The GOODBYE's socket lingers to the root's end of stream: CLOSED
         * and done once it is gone. */
        if (n->ep.lingers) {
            n->ep.on_quiet = node_quiet;
            return;
        }
        set_state(n, EMBER_NODE_CLOSED, "closed");
        if (n->close_done)
            n->close_done(n, n->close_ud);
        return;
    }
    try_connect(n);
}

static bool has_secret(const ember_node *n)
{
    return n->cfg.secret && *n->cfg.secret;
}

/* With a secret, WELCOME must carry HMAC(secret, "ember-welcome-v1" ||
 * our nonce || the root's nonce || id): only a holder of the secret can
 * make it, and it fits this connection only. */
static bool root_proof_ok(ember_node *n, ember_conn *c, const ember_hs *hs)
{
    uint8_t want[EMBER_MAC_LEN];
    if (!has_secret(n))
        return true;
    if (ember_auth_welcome_proof(n->cfg.secret, c->node_nonce, c->root_nonce,
                                 hs->id, want))
        return false;
    return ember_auth_check(&hs->root_proof, want);
}

static int node_handshake(ember_conn *c, const ember_frame *f)
{
    ember_node *n = c->ep->node;
    ember_hs hs;
    const char *why;
    char msg[300];
    /* Closing a connection below may deliver outcomes: hold the scratch. */
    ember_scratch_hold(c->ep);
    if (ember_hs_decode(f, &c->ep->scratch, &hs, &why)) {
        ember_scratch_release(c->ep);
        ember_conn_closef(c, EMBER_PROTOCOL, "bad %s: %s",
                          ember_frame_kind_name(f->kind), why);
        return -1;
    }
    int rc = 0;
    /* One sequence: HELLO, then (our REGISTER) WELCOME or REFUSED. */
    bool hello = f->kind == EMBER_FR_HELLO;
    bool answer = f->kind == EMBER_FR_WELCOME || f->kind == EMBER_FR_REFUSED;
    if ((hello && n->registering) || (answer && !n->registering)) {
        ember_conn_closef(c, EMBER_PROTOCOL, "protocol violation: %s %s REGISTER",
                          ember_frame_kind_name(f->kind),
                          n->registering ? "after" : "before");
        rc = -1;
    } else if (hello) {
        if (!hs.magic || strcmp(hs.magic, EMBER_MAGIC) != 0) {
            ember_conn_close(c, EMBER_PROTOCOL, "peer is not an ember root");
            rc = -1;
        } else if (hs.vmin > c->ep->proto_max || hs.vmax < EMBER_PROTO_MIN ||
                   hs.vmin > hs.vmax) {
            /* The version picked, min(root max, node max), must be at
             * least both minimums: a range 3..2 holds none. */
            snprintf(msg, sizeof msg, "no common protocol version (root %u..%u,"
                     " node %u..%u)", hs.vmin, hs.vmax, EMBER_PROTO_MIN,
                     c->ep->proto_max);
            ember_conn_close(c, EMBER_PROTOCOL, msg);
            rc = -1;
        } else {
            ember_hs reg;
            uint8_t proof[EMBER_MAC_LEN];
            memset(&reg, 0, sizeof reg);
            reg.version = hs.vmax < c->ep->proto_max ? hs.vmax : c->ep->proto_max;
            c->ref_tables = reg.version >= 3;
            reg.name = n->name;
            if (has_secret(n)) {
                /* Without the root's nonce we could not check its proof. */
                if (hs.nonce.len != EMBER_NONCE_LEN) {
                    ember_conn_close(c, EMBER_PROTOCOL, "root sent no usable "
                                     "nonce: cannot authenticate it");
                    ember_scratch_release(c->ep);
                    return -1;
                }
                memcpy(c->root_nonce, hs.nonce.data, EMBER_NONCE_LEN);
                if (ember_random(c->node_nonce, sizeof c->node_nonce) ||
                    ember_auth_register_proof(n->cfg.secret, c->root_nonce,
                                              c->node_nonce, n->name,
                                              strlen(n->name), proof)) {
                    ember_conn_close(c, EMBER_LOST, "cannot compute the "
                                     "registration proof");
                    ember_scratch_release(c->ep);
                    return -1;
                }
                reg.proof.data = proof;
                reg.proof.len = sizeof proof;
                reg.node_nonce.data = c->node_nonce;
                reg.node_nonce.len = sizeof c->node_nonce;
            }
            ember_hs_send(c, EMBER_FR_REGISTER, &reg, n->ep.exports);
            ember_conn_peer_limits(c, hs.max_frame, &hs.lim);
            n->registering = true;
        }
    } else if (f->kind == EMBER_FR_WELCOME && !root_proof_ok(n, c, &hs)) {
        /* A root that cannot prove the secret may be an impostor: nothing
         * is callable yet, so drop it and retry with the usual backoff. */
        ember_conn_close(c, EMBER_LOST, hs.root_proof.len
                         ? "bad credentials: the root failed to prove the "
                           "shared secret"
                         : "bad credentials: the root sent no proof of the "
                           "shared secret (is it configured without one?)");
        rc = -1;
    } else if (f->kind == EMBER_FR_WELCOME) {
        n->id = hs.id;
        /* The root's heartbeat, whatever our own limits say (a root that
         * sends none leaves ours), and a sweep fast enough for it. */
        if (hs.heartbeat_ms)
            c->heartbeat_ms = hs.heartbeat_ms;
        if (hs.dead_after_ms)
            c->dead_after_ms = hs.dead_after_ms;
        /* A root whose values would have us drop it before we ever ping
         * it (an ember root refuses such limits) is pinged in time. */
        if (c->heartbeat_ms >= c->dead_after_ms) {
            uint32_t half = c->dead_after_ms / 2 ? c->dead_after_ms / 2 : 1;
            ember_log(EMBER_LOG_WARN, "%s: the root's heartbeat_ms %u is not "
                      "below its dead_after_ms %u: pinging after %u ms", n->what,
                      c->heartbeat_ms, c->dead_after_ms, half);
            c->heartbeat_ms = half;
        }
        ember_ep_sweep_every(&n->ep, c->heartbeat_ms); /* below dead_after_ms now */
        ember_conn_set_ready(c);
        c->peer_ref = n->root_ref;
        n->root_ref->conn = c;
        n->attempt = 0;
        n->ep.mt.registrations++;
        ember_log(EMBER_LOG_INFO, "%s: registered with %s as id %u", n->what,
                  n->addr, n->id);
        set_state(n, EMBER_NODE_REGISTERED, NULL);
    } else if (f->kind == EMBER_FR_REFUSED) {
        char why[200] = "no reason given";
        if (hs.message && *hs.message) /* on_state hands it on: no controls */
            ember_escape(why, sizeof why, hs.message, strlen(hs.message));
        snprintf(msg, sizeof msg, "refused by root: %s", why);
        ember_conn_close(c, EMBER_LOST, msg);
        rc = -1;
    } else {
        ember_conn_closef(c, EMBER_PROTOCOL, "protocol violation: %s sent to a "
                          "node", ember_frame_kind_name(f->kind));
        rc = -1;
    }
    ember_scratch_release(c->ep);
    return rc;
}

/* A root of another wire answered our registration (PB: takeProxy):
 * registered, or refused (why). */
static void node_wire_registered(ember_conn *c, bool ok, const char *why)
{
    ember_node *n = c->ep->node;
    if (c != n->conn)
        return;
    if (!ok) {
        ember_conn_close(c, EMBER_LOST, why);
        return;
    }
    c->peer_ref = n->root_ref;
    n->root_ref->conn = c;
    n->attempt = 0;
    n->ep.mt.registrations++;
    ember_log(EMBER_LOG_INFO, "%s: registered with the %s root at %s", n->what,
              c->wire->name, n->addr);
    set_state(n, EMBER_NODE_REGISTERED, NULL);
}

static void node_lost(ember_conn *c, const char *reason)
{
    ember_node *n = c->ep->node;
    if (c != n->conn)
        return;
    n->conn = NULL;
    n->root_ref->conn = NULL;
    if (n->ep.freeing)
        return;
    if (n->closing) {
        struct timeval zero = {0, 0};
        evtimer_add(n->retry_ev, &zero); /* finish from the loop */
        return;
    }
    schedule_retry(n, reason);
}

static void node_idle(ember_ep *ep)
{
    ember_node *n = ep->node;
    ep->on_idle = NULL;
    if (n->conn && n->conn->state == EMBER_CONN_READY) {
        ember_conn_goodbye(n->conn, NULL);
        n->conn->close_after_flush = true;
        ember_conn_flush(n->conn); /* closes once written: node_lost finishes */
    } else {
        if (n->conn)
            ember_conn_close(n->conn, EMBER_SHUTDOWN, "node closing");
        struct timeval zero = {0, 0};
        evtimer_add(n->retry_ev, &zero);
    }
}

/* The rules a root applies to the name in REGISTER (root.c). */
EMBER_API int ember_name_check(const char *name, size_t len)
{
    if (!name || len == 0 || len > EMBER_NAME_MAX)
        return ember_seterr("a node name must be 1..%d bytes (got %zu)",
                            EMBER_NAME_MAX, len);
    if (!ember_utf8_valid(name, len))
        return ember_seterr("a node name must be valid UTF-8");
    /* Names go into every log line about their node, the application's
     * own too: no control character can forge or hide one (C0, DEL, C1),
     * break it (U+2028, U+2029) or make it read in another order (the
     * bidirectional marks and overrides, U+061C, U+200E, U+200F,
     * U+202A..U+202E, U+2066..U+2069). */
    for (size_t i = 0; i < len; i++) {
        const uint8_t *u = (const uint8_t *)name + i;
        size_t rest = len - i;
        if (u[0] < 0x20 || u[0] == 0x7f ||
            (u[0] == 0xc2 && rest > 1 && u[1] < 0xa0) ||
            (u[0] == 0xd8 && rest > 1 && u[1] == 0x9c) ||
            (u[0] == 0xe2 && rest > 2 && u[1] == 0x80 &&
             (u[2] == 0x8e || u[2] == 0x8f || (u[2] >= 0xa8 && u[2] <= 0xae))) ||
            (u[0] == 0xe2 && rest > 2 && u[1] == 0x81 && u[2] >= 0xa6 && u[2] <= 0xa9))
            return ember_seterr("a node name must not contain control characters");
    }
    return 0;
}

EMBER_API void ember_node_config_default(ember_node_config *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof *cfg);
    ember_limits_default(&cfg->limits);
    cfg->backoff_min_ms = EMBER_BACKOFF_MIN_MS;
    cfg->backoff_max_ms = EMBER_BACKOFF_MAX_MS;
}

EMBER_API ember_node *ember_node_new(struct event_base *base, const char *name,
                                     const ember_node_config *cfg)
{
    if (!base) {
        ember_seterr("ember_node_new: NULL event_base");
        return NULL;
    }
    if (ember_name_check(name, name ? strlen(name) : 0))
        return NULL;
    ember_node *n = ember_calloc(sizeof *n);
    if (!n) {
        ember_seterr("out of memory");
        return NULL;
    }
    if (cfg)
        n->cfg = *cfg;
    else
        ember_node_config_default(&n->cfg);
    /* 0 means the default, as for the limits. */
    if (!n->cfg.backoff_min_ms)
        n->cfg.backoff_min_ms = EMBER_BACKOFF_MIN_MS;
    if (!n->cfg.backoff_max_ms)
        n->cfg.backoff_max_ms = EMBER_BACKOFF_MAX_MS;
    if (n->cfg.backoff_min_ms > n->cfg.backoff_max_ms) {
        ember_seterr("backoff_min_ms (%u) must not be above backoff_max_ms (%u)",
                     n->cfg.backoff_min_ms, n->cfg.backoff_max_ms);
        ember_free(n, sizeof *n);
        return NULL;
    }
    snprintf(n->what, sizeof n->what, "node %s", name);
    n->cfd = -1;
    if (ember_ep_init(&n->ep, base, &n->cfg.limits, n->what)) {
        ember_free(n, sizeof *n);
        return NULL;
    }
    n->ep.node = n;
    n->cfg.secret = NULL;
    if (cfg && cfg->secret && *cfg->secret &&
        !(n->cfg.secret = ember_strdup(cfg->secret))) {
        ember_node_free(n);
        ember_seterr("out of memory");
        return NULL;
    }
    if (cfg && cfg->tls) {
        if (ember_tls_ctx_new(&n->ep, cfg->tls, false)) {
            ember_node_free(n);
            return NULL;
        }
        if (cfg->tls->server_name &&
            ember_tls_host_check(&n->ep, cfg->tls->server_name)) {
            ember_node_free(n);
            return NULL;
        }
        if (cfg->tls->server_name &&
            !(n->tls_host = ember_strdup(cfg->tls->server_name))) {
            ember_node_free(n);
            ember_seterr("out of memory");
            return NULL;
        }
    }
    n->cfg.tls = NULL;
    n->ep.on_handshake = node_handshake;
    n->ep.on_lost = node_lost;
    n->ep.registered = node_wire_registered;
    n->name = ember_strdup(name);
    n->root_ref = ember_ref_new_peer(&n->ep);
    n->retry_ev = evtimer_new(base, on_retry, n);
    if (!n->name || !n->root_ref || !n->retry_ev) {
        ember_node_free(n);
        ember_seterr("out of memory");
        return NULL;
    }
    return n;
}

EMBER_API ember_exports *ember_node_exports(ember_node *n)
{
    return n ? n->ep.exports : NULL;
}

ember_ep *ember_node_ep(ember_node *n)
{
    return &n->ep;
}

/* "host:port" / "[v6]:port" -> host: by default the root's certificate
 * must name the host we dial. NULL for unix sockets. */
static char *host_of(const char *addr)
{
    char buf[256];
    const char *end;
    if (strncmp(addr, "unix:", 5) == 0)
        return NULL;
    if (addr[0] == '[') {
        addr++;
        end = strchr(addr, ']');
    } else {
        end = strrchr(addr, ':');
    }
    if (!end || end == addr || (size_t)(end - addr) >= sizeof buf)
        return NULL;
    memcpy(buf, addr, (size_t)(end - addr));
    buf[end - addr] = 0;
    return ember_strdup(buf);
}

/* -1 when n cannot start connecting: closed, or connecting already. */
static int connect_refused(const ember_node *n)
{
    /* A closed node stays closed: connecting it again would register it
     * with its close's done already run (and run done again later). */
    if (n->closing)
        return ember_seterr("node is closed (ember_node_close)");
    if (n->addr)
        return ember_seterr("node already connecting (one root per node)");
    return 0;
}

EMBER_API int ember_node_connect(ember_node *n, const char *addr)
{
    if (!n)
        return ember_seterr("ember_node_connect: NULL node");
    if (connect_refused(n))
        return -1;
    /* Only the form is checked here: a host name that does not resolve
     * (yet) fails the attempt, which is retried like a root that is down. */
    if (ember_addr_check(addr))
        return -1;
    if (n->ep.tls_ctx && !n->tls_host) {
        if (!(n->tls_host = host_of(addr)))
            return ember_seterr("TLS: no server name to check the root against");
        if (ember_tls_host_check(&n->ep, n->tls_host)) {
            ember_strfree(n->tls_host);
            n->tls_host = NULL;
            return -1;
        }
    }
    if (!(n->addr = ember_strdup(addr)))
        return ember_seterr("out of memory");
    try_connect(n);
    return 0;
}

EMBER_API int ember_node_connect_pb(ember_node *n, const char *addr)
{
    if (!n)
        return ember_seterr("ember_node_connect_pb: NULL node");
    if (connect_refused(n))
        return -1;
    if (ember_exports_pb_check(n->ep.exports))
        return -1;
    n->pb = true;
    return ember_node_connect(n, addr);
}

EMBER_API ember_ref *ember_node_root(ember_node *n)
{
    return n ? n->root_ref : NULL;
}

EMBER_API ember_node_state ember_node_state_get(const ember_node *n)
{
    return n ? n->st : EMBER_NODE_IDLE;
}

EMBER_API const char *ember_node_name(const ember_node *n)
{
    return n ? n->name : NULL;
}

EMBER_API uint32_t ember_node_id(const ember_node *n)
{
    return n ? n->id : 0;
}

EMBER_API void ember_node_close(ember_node *n, void (*done)(ember_node *n, void *ud),
                                void *ud)
{
    if (!n || n->closing)
        return;
    n->closing = true;
    n->close_done = done;
    n->close_ud = ud;
    evtimer_del(n->retry_ev);
    cancel_connect(n);
    ember_ep_stop(&n->ep, node_idle);
}

EMBER_API void ember_node_free(ember_node *n)
{
    if (!n)
        return;
    cancel_connect(n);
    if (n->connect_ev)
        event_free(n->connect_ev);
    if (n->retry_ev)
        event_free(n->retry_ev);
    ember_ep_fini(&n->ep, EMBER_SHUTDOWN);
    if (n->root_ref) {
        n->root_ref->conn = NULL;
        ember_ref_release(n->root_ref);
    }
    ember_strfree(n->name);
    ember_strfree(n->addr);
    ember_strfree(n->tls_host);
    if (n->cfg.secret) {
        OPENSSL_cleanse((char *)n->cfg.secret, strlen(n->cfg.secret));
        ember_strfree((char *)n->cfg.secret);
    }
    ember_free(n, sizeof *n);
}

/* ---- counters for tests (probe-internal.h) ---- */

uint32_t ember_node_sweep_ms_(const ember_node *n)
{
    return n->ep.sweep_ms;
}

uint32_t ember_node_version_(const ember_node *n)
{
    return n->st != EMBER_NODE_REGISTERED || !n->conn ? 0
         : n->conn->ref_tables ? 3 : 2;
}

uint64_t ember_node_sent_(const ember_node *n, const ember_ref *r)
{
    return ember_ref_sent_on(n->conn, r);
}
