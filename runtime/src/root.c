/*
 * root.c — a root (Firefly's PBRoot + ChildsManager): listens, runs the
 * registration handshake, keeps the children (by name, by id, in join
 * order), and calls them, one by one or by broadcast.
 *
 * Duplicate names: a newcomer whose name is taken replaces the old child if
 * the old connection left our heartbeat PING unanswered for a whole
 * heartbeat interval, or has been silent for dead_after_ms (a node
 * restarted before we noticed). An idle child answers the PING, so it is
 * never replaced; the newcomer is REFUSED with "name in use" and keeps
 * retrying with backoff until the old one is declared dead.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/listener.h>
#include <event2/util.h>
#include <openssl/crypto.h>

#include "addr-internal.h"
#include "auth-internal.h"
#include "buf-internal.h"
#include "call-internal.h"
#include "conn-internal.h"
#include "ember-internal.h"
#include "ep-internal.h"
#include "handshake-internal.h"
#include "hash-internal.h"
#include "metrics-internal.h"
#include "probe-internal.h"
#include "ref-internal.h"
#include "wire-internal.h"

#define MAX_LISTENERS 8
#define ACCEPT_PAUSE_MS 100

struct ember_child {
    ember_root *root;
    ember_conn *conn;
    uint32_t id;
    uint32_t nsvcs;
    char *name;
    ember_svcinfo *svcs;           /* names owned */
    ember_ref *ref;
    void *data;
    uint64_t joined_us;
    ember_child *prev, *next;      /* join order */
    ember_child *name_next, *id_next;
};

struct ember_root {
    ember_ep ep;
    ember_root_config cfg;
    struct evconnlistener *ls[MAX_LISTENERS];
    bool ls_pb[MAX_LISTENERS];     /* a Perspective Broker listener */
    int ports[MAX_LISTENERS];      /* each listener's TCP port, -1: unix */
    int nls, nports;
    int port;                      /* the first TCP listener's */
    ember_child *first, *last;
    size_t count;
    ember_child **by_name, **by_id;
    uint32_t nbuckets;
    uint32_t next_id;
    void (*stop_done)(ember_root *r, void *ud);
    void *stop_ud;
    bool stop_said;
    struct event *accept_pause_ev; /* re-enables accepting after EMFILE */
    struct child_walk *walks;      /* broadcasts walking the children */
};

/* A broadcast walking the children. A child can leave during the walk (a
 * filter that drops one): child_remove moves every walk on past it. */
typedef struct child_walk {
    ember_child *cur, *next;       /* cur: NULL once it left */
    struct child_walk *up;         /* a broadcast started by a filter */
} child_walk;

/* ---- child tables ---- */

/* Names are the peer's choice: keyed (hash.c), so none can be picked to
 * share a chain. Ids are ours. */
static uint32_t hash_str(const char *s)
{
    return ember_hash_str(s);
}

static uint32_t hash_u32(uint32_t x)
{
    return x * 2654435761u;
}

/* Puts c at the head of its chains in tables of n buckets. */
static void hash_link(ember_child **by_name, ember_child **by_id, uint32_t n,
                      ember_child *c)
{
    uint32_t h = hash_str(c->name) & (n - 1);
    c->name_next = by_name[h];
    by_name[h] = c;
    h = hash_u32(c->id) & (n - 1);
    c->id_next = by_id[h];
    by_id[h] = c;
}

static int tables_grow(ember_root *r)
{
    uint32_t nn = r->nbuckets ? r->nbuckets * 2 : 16;
    ember_child **bn = ember_calloc(sizeof *bn * nn);
    ember_child **bi = ember_calloc(sizeof *bi * nn);
    if (!bn || !bi) {
        ember_free(bn, sizeof *bn * nn);
        ember_free(bi, sizeof *bi * nn);
        return -1;
    }
    for (ember_child *c = r->first; c; c = c->next)
        hash_link(bn, bi, nn, c);
    ember_free(r->by_name, sizeof *bn * r->nbuckets);
    ember_free(r->by_id, sizeof *bi * r->nbuckets);
    r->by_name = bn;
    r->by_id = bi;
    r->nbuckets = nn;
    return 0;
}

static int child_insert(ember_root *r, ember_child *c)
{
    if (r->count + 1 > r->nbuckets && tables_grow(r))
        return -1;
    c->prev = r->last;
    c->next = NULL;
    if (r->last)
        r->last->next = c;
    else
        r->first = c;
    r->last = c;
    hash_link(r->by_name, r->by_id, r->nbuckets, c);
    r->count++;
    return 0;
}

static void child_remove(ember_root *r, ember_child *c)
{
    for (child_walk *w = r->walks; w; w = w->up) {
        if (w->cur == c)
            w->cur = NULL;
        if (w->next == c)
            w->next = c->next;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        r->first = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        r->last = c->prev;
    ember_child **pp = &r->by_name[hash_str(c->name) & (r->nbuckets - 1)];
    for (; *pp; pp = &(*pp)->name_next)
        if (*pp == c) {
            *pp = c->name_next;
            break;
        }
    pp = &r->by_id[hash_u32(c->id) & (r->nbuckets - 1)];
    for (; *pp; pp = &(*pp)->id_next)
        if (*pp == c) {
            *pp = c->id_next;
            break;
        }
    r->count--;
}

static void child_free(ember_child *c)
{
    for (uint32_t i = 0; i < c->nsvcs; i++)
        ember_strfree((char *)c->svcs[i].name);
    ember_free(c->svcs, sizeof *c->svcs * c->nsvcs);
    if (c->ref) {
        c->ref->conn = NULL;
        ember_ref_release(c->ref);
    }
    ember_strfree(c->name);
    ember_free(c, sizeof *c);
}

/* ---- public child manager ---- */

EMBER_API size_t ember_root_child_count(const ember_root *r)
{
    return r ? r->count : 0;
}

EMBER_API ember_child *ember_root_child_by_name(ember_root *r, const char *name)
{
    if (!r || !r->nbuckets || !name)
        return NULL;
    for (ember_child *c = r->by_name[hash_str(name) & (r->nbuckets - 1)]; c;
         c = c->name_next)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

EMBER_API ember_child *ember_root_child_by_id(ember_root *r, uint32_t id)
{
    if (!r || !r->nbuckets)
        return NULL;
    for (ember_child *c = r->by_id[hash_u32(id) & (r->nbuckets - 1)]; c;
         c = c->id_next)
        if (c->id == id)
            return c;
    return NULL;
}

EMBER_API ember_child *ember_root_child_next(ember_root *r, ember_child *prev)
{
    if (!r || (prev && prev->root != r))
        return NULL;
    return prev ? prev->next : r->first;
}

EMBER_API void ember_root_drop(ember_root *r, ember_child *c, const char *reason)
{
    if (!r || !c || c->root != r || !c->conn)
        return;
    reason = reason && *reason ? reason : "dropped";
    /* The node learns why (the close writes what is queued). */
    char why[220];
    snprintf(why, sizeof why, "dropped by the root: %s", reason);
    ember_conn_goodbye(c->conn, why);
    c->conn->close_class = 1 + EMBER_CLOSE_DROPPED;
    ember_conn_close(c->conn, EMBER_LOST, reason);
}

EMBER_API const char *ember_child_name(const ember_child *c)
{
    return c ? c->name : NULL;
}
EMBER_API uint32_t ember_child_id(const ember_child *c) { return c ? c->id : 0; }
EMBER_API ember_ref *ember_child_ref(ember_child *c) { return c ? c->ref : NULL; }
EMBER_API const char *ember_child_peer(const ember_child *c)
{
    if (!c)
        return NULL;
    return c->conn ? c->conn->peer : "?";
}
EMBER_API void ember_child_set_data(ember_child *c, void *data)
{
    if (c)
        c->data = data;
}
EMBER_API void *ember_child_data(const ember_child *c) { return c ? c->data : NULL; }

EMBER_API double ember_child_uptime(const ember_child *c)
{
    return c ? (double)(ember_now_us() - c->joined_us) / 1e6 : 0;
}

EMBER_API bool ember_child_has_service(const ember_child *c, const char *name)
{
    for (uint32_t i = 0; c && name && i < c->nsvcs; i++)
        if (strcmp(c->svcs[i].name, name) == 0)
            return true;
    return false;
}

/* ---- handshake ---- */

static void refuse(ember_conn *c, uint32_t code, const char *msg)
{
    ember_hs hs;
    memset(&hs, 0, sizeof hs);
    hs.code = code;
    hs.message = msg;
    ember_log(EMBER_LOG_WARN, "root: refusing registration from %s: %s",
              c->peer, msg);
    ember_hs_send(c, EMBER_FR_REFUSED, &hs, NULL);
    c->close_class = 1 + EMBER_CLOSE_REFUSED;
    c->close_after_flush = true;
    ember_conn_flush(c);
}

static bool has_secret(const ember_root *r)
{
    return r->cfg.secret && *r->cfg.secret;
}

/* The node proves it knows the secret by MACing the nonce we sent on this
 * connection (so a REGISTER recorded from another session is worthless),
 * its own nonce and its name: the bytes sent, however many (a REGISTER may
 * carry no name at all, or one with a NUL inside; the name's rules come
 * after the proof). */
static bool proof_ok(ember_root *r, ember_conn *c, const ember_hs *hs)
{
    uint8_t want[EMBER_MAC_LEN];
    if (hs->node_nonce.len != EMBER_NONCE_LEN || hs->proof.len != EMBER_MAC_LEN)
        return false;
    if (ember_auth_register_proof(r->cfg.secret, c->root_nonce,
                                  hs->node_nonce.data, hs->name, hs->name_len,
                                  want))
        return false;
    return ember_auth_check(&hs->proof, want);
}

/* The old connection of a taken name looks dead: our PING has gone
 * unanswered for a heartbeat interval (it is sent after one interval of
 * silence), or it is past dead_after_ms. */
static bool seems_dead(const ember_conn *c, uint64_t idle)
{
    uint64_t hb = c->heartbeat_ms;
    return (hb && c->ping_out && idle >= 2 * hb) ||
           (c->dead_after_ms && idle >= c->dead_after_ms);
}

/*
 * Admission, whatever wire the peer speaks: the duplicate-name policy, then
 * the child in the tables and c READY. 0 admitted (*out), 1 refused (msg
 * says why), -1 closed (out of memory).
 */
static int admit(ember_root *r, ember_conn *c, const char *name,
                 const ember_svcinfo *svcs, uint32_t nsvcs, char *msg,
                 size_t msz, ember_child **out)
{
    ember_child *old = ember_root_child_by_name(r, name);
    if (old) {
        uint64_t idle = ember_now_ms() - old->conn->last_rx_ms;
        if (!seems_dead(old->conn, idle)) {
            snprintf(msg, msz, "name in use: a child named \"%s\" is "
                     "registered and alive", name);
            return 1;
        }
        char why[200];
        snprintf(why, sizeof why, "replaced by a new registration from %s "
                 "(silent for %llu ms)", c->peer, (unsigned long long)idle);
        ember_conn_close(old->conn, EMBER_LOST, why);
    }
    ember_child *ch = ember_calloc(sizeof *ch);
    if (ch) {
        ch->root = r;
        ch->name = ember_strdup(name);
        ch->ref = ember_ref_new_peer(&r->ep);
        ch->svcs = nsvcs ? ember_calloc(sizeof *ch->svcs * nsvcs) : NULL;
        ch->nsvcs = ch->svcs ? nsvcs : 0;
    }
    bool ok = ch && ch->name && ch->ref && (!nsvcs || ch->svcs);
    for (uint32_t i = 0; ok && i < nsvcs; i++) {
        ch->svcs[i].fingerprint = svcs[i].fingerprint;
        if (!(ch->svcs[i].name = ember_strdup(svcs[i].name)))
            ok = false;
    }
    if (ok) {
        do {
            if (++r->next_id == 0)
                r->next_id = 1;
        } while (ember_root_child_by_id(r, r->next_id));
        ch->id = r->next_id;
        ok = child_insert(r, ch) == 0;
    }
    if (!ok) {
        if (ch)
            child_free(ch);
        ember_conn_close(c, EMBER_LOST, "out of memory registering a child");
        return -1;
    }
    ch->conn = c;
    ch->joined_us = ember_now_us();
    ch->ref->conn = c;
    c->child = ch;
    c->name = ch->name;
    c->peer_ref = ch->ref;
    ember_conn_set_ready(c);
    *out = ch;
    return 0;
}

static int root_handshake(ember_conn *c, const ember_frame *f)
{
    ember_root *r = c->ep->root;
    ember_hs hs;
    const char *why;
    char msg[200];

    if (f->kind != EMBER_FR_REGISTER || c->close_after_flush) {
        ember_conn_closef(c, EMBER_PROTOCOL, "protocol violation: %s during "
                          "registration", ember_frame_kind_name(f->kind));
        return -1;
    }
    /* Closing a connection below may deliver outcomes: hold the scratch. */
    ember_scratch_hold(c->ep);
    if (ember_hs_decode(f, &c->ep->scratch, &hs, &why)) {
        ember_scratch_release(c->ep);
        ember_conn_closef(c, EMBER_PROTOCOL, "bad REGISTER: %s", why);
        return -1;
    }
    int rc = -1;
    if (hs.version < EMBER_PROTO_MIN || hs.version > r->ep.proto_max) {
        snprintf(msg, sizeof msg, "protocol version %u not supported (%u..%u)",
                 hs.version, EMBER_PROTO_MIN, r->ep.proto_max);
        refuse(c, EMBER_REFUSE_VERSION, msg);
    } else if (has_secret(r) && !proof_ok(r, c, &hs)) {
        /* One message for every failure (no proof, wrong proof, replayed
         * proof): an impostor learns nothing about which part was wrong,
         * nor anything about the node (its name's rules come after). */
        refuse(c, EMBER_REFUSE_AUTH, "bad credentials");
    } else if (ember_name_check(hs.name, hs.name_len)) {
        refuse(c, EMBER_REFUSE_BAD_NAME, ember_last_error());
    } else if (r->ep.stopping) {
        refuse(c, EMBER_REFUSE_STOPPING, "root is shutting down");
    } else {
        rc = 0;
    }
    ember_child *ch = NULL;
    if (rc == 0) {
        rc = admit(r, c, hs.name, hs.svcs, hs.nsvcs, msg, sizeof msg, &ch);
        if (rc > 0)
            refuse(c, EMBER_REFUSE_NAME_IN_USE, msg);
        if (rc < 0) {
            ember_scratch_release(c->ep);
            return -1;
        }
    }
    if (rc == 0) {
        ember_hs w;
        memset(&w, 0, sizeof w);
        c->ref_tables = hs.version >= 3;
        w.id = ch->id;
        w.heartbeat_ms = r->ep.lim.heartbeat_ms;
        w.dead_after_ms = r->ep.lim.dead_after_ms;
        /* Mutual: prove the secret back, bound to the node's nonce and the
         * id we give it, so the node knows it reached the real root. */
        uint8_t root_proof[EMBER_MAC_LEN];
        if (has_secret(r)) {
            if (ember_auth_welcome_proof(r->cfg.secret, hs.node_nonce.data,
                                         c->root_nonce, ch->id, root_proof)) {
                ember_scratch_release(c->ep);
                ember_conn_close(c, EMBER_LOST, "cannot compute the root proof");
                return -1;
            }
            w.root_proof.data = root_proof;
            w.root_proof.len = sizeof root_proof;
        }
        ember_hs_send(c, EMBER_FR_WELCOME, &w, r->ep.exports);
        ember_conn_peer_limits(c, hs.max_frame, &hs.lim);
        ember_log(EMBER_LOG_INFO, "root: child \"%s\" (id %u) registered from %s",
                  ch->name, ch->id, c->peer);
        ember_scratch_release(c->ep);
        if (r->cfg.on_join)
            r->cfg.on_join(r, ch, r->cfg.ud);
        return 0;
    }
    ember_scratch_release(c->ep);
    return -1;
}

/* A peer of another wire asks to register (PB: takeProxy(name, ref)): the
 * same admission as REGISTER, minus the secret (that wire has none). */
static int root_wire_admit(ember_conn *c, const char *name, size_t len, char *why,
                           size_t n)
{
    ember_root *r = c->ep->root;
    ember_child *ch;
    char cname[EMBER_NAME_MAX + 1];
    int rc = 1;
    if (ember_name_check(name, len)) {
        snprintf(why, n, "bad name: %s", ember_last_error());
    } else if (r->ep.stopping) {
        snprintf(why, n, "root is shutting down");
        return 1;
    } else {
        memcpy(cname, name, len); /* no NUL inside: the check said so */
        cname[len] = 0;
        rc = admit(r, c, cname, NULL, 0, why, n, &ch);
    }
    if (rc > 0)
        ember_log(EMBER_LOG_WARN, "root: refusing registration from %s: %s",
                  c->peer, why);
    return rc;
}

static void root_wire_joined(ember_conn *c)
{
    ember_root *r = c->ep->root;
    ember_log(EMBER_LOG_INFO, "root: child \"%s\" (id %u) registered from %s "
              "(%s)", c->child->name, c->child->id, c->peer, c->wire->name);
    if (r->cfg.on_join)
        r->cfg.on_join(r, c->child, r->cfg.ud);
}

static void root_lost(ember_conn *c, const char *reason)
{
    ember_root *r = c->ep->root;
    ember_child *ch = c->child;
    if (!ch)
        return;
    c->child = NULL;
    c->peer_ref = NULL;
    child_remove(r, ch);
    ch->ref->conn = NULL;
    /* Broadcast calls to it that could not start end now, naming it. */
    ember_defer_run_child(&r->ep, ch);
    if (r->cfg.on_leave)
        r->cfg.on_leave(r, ch, reason, r->cfg.ud);
    ch->conn = NULL;
    child_free(ch);
}

/* ---- listening ---- */

/* A new connection: say HELLO and wait for REGISTER. Takes fd. */
static int root_take(ember_root *r, int fd, const char *peer, bool pb)
{
    if (r->ep.stopping) {
        close(fd);
        return ember_seterr("root is shutting down");
    }
    if (ember_sock_prepare(fd)) {
        close(fd);
        return -1;
    }
    /* Full: the newcomer gets in, the oldest unregistered peer goes (a node
     * registers within a round trip; a flood must open max_unregistered
     * connections meanwhile to push it out). */
    if (r->ep.unreg_n >= r->cfg.max_unregistered && r->ep.unreg_head) {
        r->ep.unreg_head->close_class = 1 + EMBER_CLOSE_LIMIT;
        ember_conn_closef(r->ep.unreg_head, EMBER_LOST, "%u peers not "
                          "registered yet, at max_unregistered: the oldest "
                          "goes", r->ep.unreg_n);
    }
    ember_conn *c = ember_conn_new(&r->ep, fd, peer);
    if (!c)
        return -1;
    /* A fresh nonce per connection: the node's proof is bound to it. */
    if (ember_random(c->root_nonce, sizeof c->root_nonce)) {
        ember_conn_close(c, EMBER_LOST, ember_last_error());
        return -1;
    }
    if (r->ep.tls_ctx && ember_tls_attach(c, true, NULL)) {
        ember_conn_close(c, EMBER_LOST, ember_last_error());
        return -1;
    }
    if (pb)
        return ember_pb_start(c, true, NULL);
    ember_hs hs;
    memset(&hs, 0, sizeof hs);
    hs.vmin = EMBER_PROTO_MIN;
    hs.vmax = r->ep.proto_max;
    hs.nonce.data = c->root_nonce;
    hs.nonce.len = sizeof c->root_nonce;
    ember_hs_send(c, EMBER_FR_HELLO, &hs, r->ep.exports);
    return 0;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *arg)
{
    ember_root *r = arg;
    bool pb = false;
    for (int i = 0; i < r->nls; i++)
        if (r->ls[i] == l)
            pb = r->ls_pb[i];
    char *peer = ember_addr_text(sa, (socklen_t)salen);
    if (root_take(r, fd, peer ? peer : "?", pb) && !r->ep.stopping)
        ember_log(EMBER_LOG_WARN, "root: cannot accept a connection: %s",
                  ember_last_error());
    ember_strfree(peer);
}

/* accept() failed (out of file descriptors, typically). libevent would
 * retry at once in a busy loop; instead stop accepting for a moment. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
    ember_root *r = arg;
    int err = EVUTIL_SOCKET_ERROR();
    (void)l;
    ember_log(EMBER_LOG_WARN, "root: accept failed: %s; pausing accepts for "
              "%d ms", evutil_socket_error_to_string(err), ACCEPT_PAUSE_MS);
    for (int i = 0; i < r->nls; i++)
        evconnlistener_disable(r->ls[i]);
    struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
    if (r->accept_pause_ev)
        evtimer_add(r->accept_pause_ev, &tv);
}

static void on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
    ember_root *r = arg;
    (void)fd;
    (void)what;
    if (r->ep.stopping)
        return;
    for (int i = 0; i < r->nls; i++)
        evconnlistener_enable(r->ls[i]);
}

EMBER_API int ember_root_adopt_fd(ember_root *r, int fd)
{
    if (!r) {
        if (fd >= 0)
            close(fd); /* ours even so */
        return ember_seterr("ember_root_adopt_fd: NULL root");
    }
    if (fd < 0)
        return ember_seterr("bad file descriptor");
    return root_take(r, fd, "adopted", false);
}

EMBER_API void ember_root_config_default(ember_root_config *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof *cfg);
    ember_limits_default(&cfg->limits);
    cfg->max_unregistered = EMBER_MAX_UNREGISTERED;
    cfg->unregistered_bytes = EMBER_UNREGISTERED_BYTES;
}

EMBER_API ember_root *ember_root_new(struct event_base *base,
                                     const ember_root_config *cfg)
{
    if (!base) {
        ember_seterr("ember_root_new: NULL event_base");
        return NULL;
    }
    ember_root *r = ember_calloc(sizeof *r);
    if (!r) {
        ember_seterr("out of memory");
        return NULL;
    }
    if (cfg)
        r->cfg = *cfg;
    else
        ember_root_config_default(&r->cfg);
    if (ember_ep_init(&r->ep, base, &r->cfg.limits, "root")) {
        ember_free(r, sizeof *r);
        return NULL;
    }
    r->ep.root = r;
    if (!r->cfg.max_unregistered)
        r->cfg.max_unregistered = EMBER_MAX_UNREGISTERED;
    if (!r->cfg.unregistered_bytes)
        r->cfg.unregistered_bytes = EMBER_UNREGISTERED_BYTES;
    r->ep.unreg_budget = r->cfg.unregistered_bytes;
    /* Our own copy of the secret (the caller's may be a temporary). */
    r->cfg.secret = NULL;
    if (cfg && cfg->secret && *cfg->secret &&
        !(r->cfg.secret = ember_strdup(cfg->secret))) {
        ember_root_free(r);
        ember_seterr("out of memory");
        return NULL;
    }
    if (cfg && cfg->tls && ember_tls_ctx_new(&r->ep, cfg->tls, true)) {
        ember_root_free(r);
        return NULL;
    }
    r->cfg.tls = NULL;
    r->ep.on_handshake = root_handshake;
    r->ep.on_lost = root_lost;
    r->ep.admit = root_wire_admit;
    r->ep.joined = root_wire_joined;
    r->port = -1;
    r->accept_pause_ev = evtimer_new(base, on_accept_resume, r);
    if (!r->accept_pause_ev) {
        ember_root_free(r);
        ember_seterr("out of memory");
        return NULL;
    }
    return r;
}

static int listen_on(ember_root *r, const char *addr, bool pb)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (r->ep.stopping) /* it would accept only to close what it accepts */
        return ember_seterr("root is shutting down");
    if (r->nls >= MAX_LISTENERS)
        return ember_seterr("too many listeners");
    if (ember_addr_parse(addr, &ss, &len))
        return -1;
    int fd = socket(ss.ss_family, SOCK_STREAM, 0);
    if (fd < 0)
        return ember_seterr("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ss.ss_family == AF_UNIX)
        unlink(((struct sockaddr_un *)&ss)->sun_path);
    if (bind(fd, (struct sockaddr *)&ss, len) || ember_sock_prepare(fd)) {
        int e = errno;
        close(fd);
        return ember_seterr("cannot listen on %s: %s", addr, strerror(e));
    }
    struct evconnlistener *l = evconnlistener_new(
        r->ep.base, on_accept, r, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
        1024, fd);
    if (!l) {
        int e = errno;
        close(fd);
        return ember_seterr("cannot listen on %s: %s", addr, strerror(e));
    }
    evconnlistener_set_error_cb(l, on_accept_error);
    r->ls_pb[r->nls] = pb;
    r->ls[r->nls++] = l;
    /* What we really bound ("127.0.0.1:0" says nothing): its port, and
     * its address for the log. */
    struct sockaddr_storage bound;
    socklen_t bl = sizeof bound;
    char *text = NULL;
    int port = -1;
    if (ss.ss_family != AF_UNIX &&
        getsockname(fd, (struct sockaddr *)&bound, &bl) == 0) {
        if (bound.ss_family == AF_INET)
            port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
        else if (bound.ss_family == AF_INET6)
            port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
        text = ember_addr_text((struct sockaddr *)&bound, bl);
    }
    r->ports[r->nports++] = port;
    if (r->port < 0)
        r->port = port;
    if (pb)
        ember_log(EMBER_LOG_WARN, "root: listening for Perspective Broker peers "
                  "on %s%s: no cluster secret applies to them", text ? text : addr,
                  r->ep.tls_ctx ? " (TLS)" : "");
    else
        ember_log(EMBER_LOG_INFO, "root: listening on %s%s", text ? text : addr,
                  r->ep.tls_ctx ? " (TLS)" : "");
    ember_strfree(text);
    return 0;
}

EMBER_API int ember_root_listen(ember_root *r, const char *addr)
{
    if (!r)
        return ember_seterr("ember_root_listen: NULL root");
    return listen_on(r, addr, false);
}

EMBER_API int ember_root_listen_pb(ember_root *r, const char *addr)
{
    if (!r)
        return ember_seterr("ember_root_listen_pb: NULL root");
    if (ember_exports_pb_check(r->ep.exports))
        return -1;
    return listen_on(r, addr, true);
}

EMBER_API int ember_root_port(const ember_root *r)
{
    return r ? r->port : -1;
}

EMBER_API int ember_root_listener_count(const ember_root *r)
{
    return r ? r->nports : 0;
}

EMBER_API int ember_root_listener_port(const ember_root *r, int i)
{
    return r && i >= 0 && i < r->nports ? r->ports[i] : -1;
}

EMBER_API ember_exports *ember_root_exports(ember_root *r)
{
    return r ? r->ep.exports : NULL;
}

ember_ep *ember_root_ep(ember_root *r)
{
    return &r->ep;
}

static void close_listeners(ember_root *r)
{
    for (int i = 0; i < r->nls; i++)
        evconnlistener_free(r->ls[i]);
    r->nls = 0;
}

EMBER_API void ember_root_free(ember_root *r)
{
    if (!r)
        return;
    close_listeners(r);
    if (r->accept_pause_ev)
        event_free(r->accept_pause_ev);
    ember_ep_fini(&r->ep, EMBER_SHUTDOWN);
    ember_free(r->by_name, sizeof *r->by_name * r->nbuckets);
    ember_free(r->by_id, sizeof *r->by_id * r->nbuckets);
    if (r->cfg.secret) {
        OPENSSL_cleanse((char *)r->cfg.secret, strlen(r->cfg.secret));
        ember_strfree((char *)r->cfg.secret);
    }
    ember_free(r, sizeof *r);
}

/* ---- broadcast ---- */

EMBER_API int ember_root_broadcast(ember_root *r, ember_child_filter filter,
                                   void *fud, const ember_service_desc *svc,
                                   uint32_t method_id, ember_encode_fn enc,
                                   const void *args, ember_complete_fn done,
                                   ember_fn cb, void *ud,
                                   const ember_callopts *opts)
{
    /* Encode once; arguments holding refs are encoded once per child
     * instead, so each child gets its own export of the objects. */
    if (!r)
        return ember_seterr("ember_root_broadcast: NULL root");
    ember_buf tmp;
    memset(&tmp, 0, sizeof tmp);
    ember_enc e;
    if (ember_buf_enc_begin(&tmp, &e, NULL, 256))
        return -1;
    if (enc)
        enc(&e, args);
    bool per_child = e.failed == EMBER_ENC_NEEDS_CONN;
    if (e.failed && !per_child) {
        char bad[200];
        ember_status st;
        const char *why = ember_calltab_encode_failure(&e, svc, method_id, bad,
                                                       sizeof bad, &st);
        ember_buf_enc_abort(&tmp, &e);
        ember_buf_release(&tmp);
        return ember_seterr("broadcast not sent: %s", why);
    }
    if (per_child)
        ember_buf_enc_abort(&tmp, &e);
    else
        ember_buf_enc_commit(&tmp, &e);
    ember_bytes payload = {tmp.data + tmp.off, ember_buf_used(&tmp)};
    uint32_t sid = svc ? svc->id : 0;
    int n = 0;
    child_walk w = {NULL, r->first, r->walks};
    r->walks = &w;
    while ((w.cur = w.next)) {
        w.next = w.cur->next;
        if (filter && !filter(w.cur, fud))
            continue;
        ember_child *c = w.cur;
        if (!c)
            continue; /* the filter made it leave: not called */
        ember_callback k = {done, NULL, cb, ud, c, svc};
        if (per_child)
            ember_calltab_start(c->ref, svc, sid, method_id, false, enc, args, &k,
                                opts);
        else
            ember_calltab_start(c->ref, svc, sid, method_id, false,
                                ember_enc_payload, &payload, &k, opts);
        n++;
    }
    r->walks = w.up;
    ember_buf_release(&tmp);
    return n;
}

/* ---- graceful shutdown ---- */

static void root_quiet(ember_ep *ep)
{
    ember_root *r = ep->root;
    if (r->stop_done)
        r->stop_done(r, r->stop_ud); /* last: it may free the root */
}

static void root_idle(ember_ep *ep)
{
    ember_root *r = ep->root;
    if (r->stop_said)
        return;
    r->stop_said = true;
    ep->on_idle = NULL;
    ember_conn_walk w;
    for (ember_conn *c = ember_conn_walk_start(ep, &w); c;
         c = ember_conn_walk_next(ep, &w)) {
        if (c->state == EMBER_CONN_READY) {
            ember_conn_goodbye(c, NULL);
            c->close_after_flush = true;
            ember_conn_flush(c);
        } else {
            ember_conn_close(c, EMBER_SHUTDOWN, "root shutting down");
        }
    }
    /* done runs once every GOODBYE was written and every socket has
     * lingered to its peer's end of stream (or its deadline). */
    ep->on_quiet = root_quiet;
    ember_ep_kick(ep);
}

EMBER_API void ember_root_shutdown(ember_root *r,
                                   void (*done)(ember_root *r, void *ud), void *ud)
{
    /* Stopping already: the first call's done runs, as with a node's close. */
    if (!r || r->ep.stopping)
        return;
    close_listeners(r);
    r->stop_done = done;
    r->stop_ud = ud;
    ember_ep_stop(&r->ep, root_idle);
}

/* ---- counters for tests (probe-internal.h) ---- */

uint64_t ember_root_htab_probes_(const ember_root *r)
{
    uint64_t n = r->ep.htab_probes;
    for (const ember_conn *c = r->ep.conns; c; c = c->next)
        n += ember_conn_htab_probes(c);
    for (const ember_conn *c = r->ep.dead; c; c = c->next)
        n += ember_conn_htab_probes(c);
    return n;
}

uint64_t ember_child_htab_probes_(const ember_child *c)
{
    return c->conn ? ember_conn_htab_probes(c->conn) : 0;
}

int ember_root_adopt_fd_pb_(ember_root *r, int fd)
{
    return fd < 0 ? ember_seterr("bad file descriptor")
                  : root_take(r, fd, "adopted", true);
}

uint32_t ember_child_exported_(const ember_child *c)
{
    return c->conn ? c->conn->xobj_oids.n : 0;
}

uint32_t ember_child_version_(const ember_child *c)
{
    return !c->conn ? 0 : c->conn->ref_tables ? 3 : 2;
}

uint64_t ember_child_sent_(const ember_child *c, const ember_ref *r)
{
    return ember_ref_sent_on(c->conn, r);
}

size_t ember_root_unreg_bytes_(const ember_root *r) { return r->ep.unreg_bytes; }
size_t ember_root_unreg_peak_(const ember_root *r) { return r->ep.unreg_peak; }
uint32_t ember_root_unreg_count_(const ember_root *r) { return r->ep.unreg_n; }
