/*
 * ember/root.h — a root listens for nodes and keeps its children
 * (Firefly's PBRoot + ChildsManager).
 */
#ifndef EMBER_ROOT_H
#define EMBER_ROOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ember/core.h>
#include <ember/rpc.h>

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;

typedef struct ember_root_config {
    ember_limits limits;
    /* Shared cluster secret; NULL or "" accepts nodes without one. */
    const char *secret;
    /* A child finished registering / is gone (reason in text). */
    void (*on_join)(ember_root *r, ember_child *c, void *ud);
    void (*on_leave)(ember_root *r, ember_child *c, const char *reason, void *ud);
    void *ud;
    /* TLS on every connection (NULL: plain TCP). Must outlive the call to
     * ember_root_new only. */
    const ember_tls_config *tls;
    /* Connections not registered yet, together (docs/security.md, "Peers
     * that have not registered"): at most max_unregistered of them (1024;
     * a new one makes the oldest go), holding at most unregistered_bytes
     * of input (64 MiB; over it the one holding most goes). 0: default. */
    uint32_t max_unregistered;
    size_t unregistered_bytes;
} ember_root_config;

void ember_root_config_default(ember_root_config *cfg);

/* cfg may be NULL for defaults. */
ember_root *ember_root_new(struct event_base *base, const ember_root_config *cfg);

/*
 * Starts listening. addr is "host:port" ("127.0.0.1:0", "[::1]:7000",
 * "0.0.0.0:7000") or "unix:/path". May be called more than once.
 */
int ember_root_listen(ember_root *r, const char *addr);
/*
 * Opt-in: a separate listener for Twisted Perspective Broker peers
 * (Firefly's RemoteObject nodes, docs/protocol-pb.md). They register with
 * takeProxy(name, ref) and become children like any other; the cluster
 * secret does not apply to them (PB has none): bind it to loopback or a
 * private network (docs/security.md). TLS, when configured, applies too.
 * Its port: ember_root_listener_port() at its index.
 */
int ember_root_listen_pb(ember_root *r, const char *addr);
/* The TCP port of the first TCP listener (useful after listening on port
 * 0); -1 before any. */
int ember_root_port(const ember_root *r);
/* Listeners made by ember_root_listen so far, in the order they were made
 * (they stay counted after ember_root_shutdown closes them). */
int ember_root_listener_count(const ember_root *r);
/* The TCP port listener i (0-based) is bound to; -1 for a unix socket or
 * an i out of range. */
int ember_root_listener_port(const ember_root *r, int i);

/*
 * Serves an already connected stream socket as if the root had accepted it
 * (a socketpair in tests and fuzzers, a socket handed over by a supervisor).
 * Takes ownership of fd, even on failure. 0, or -1 with ember_last_error().
 */
int ember_root_adopt_fd(ember_root *r, int fd);

/* The services this root serves to its children. */
ember_exports *ember_root_exports(ember_root *r);

/*
 * Frees the root: closes every connection; every pending call in either
 * direction ends (EMBER_SHUTDOWN); on_leave runs for every child.
 */
void ember_root_free(ember_root *r);

/* The child manager. Children are valid until on_leave returns. */
size_t ember_root_child_count(const ember_root *r);
ember_child *ember_root_child_by_name(ember_root *r, const char *name);
ember_child *ember_root_child_by_id(ember_root *r, uint32_t id);
/* Iteration in join order: pass NULL for the first child. */
ember_child *ember_root_child_next(ember_root *r, ember_child *prev);
/* Disconnects a child (its pending calls end with EMBER_LOST). */
void ember_root_drop(ember_root *r, ember_child *c, const char *reason);

const char *ember_child_name(const ember_child *c);
uint32_t ember_child_id(const ember_child *c);
/* The child's exported services: call them through this ref. */
ember_ref *ember_child_ref(ember_child *c);
/* True if the child declared service `name` ("game.Game") at registration. */
bool ember_child_has_service(const ember_child *c, const char *name);
/* Peer address text ("127.0.0.1:41234"). */
const char *ember_child_peer(const ember_child *c);
/* Seconds since the child registered. */
double ember_child_uptime(const ember_child *c);
/* User data slot. */
void ember_child_set_data(ember_child *c, void *data);
void *ember_child_data(const ember_child *c);

/*
 * Calls method_id of service svc on every child that passes `filter` (NULL:
 * all). The arguments are encoded once (once per child when they hold refs:
 * each child gets its own export of the objects passed). `done` runs once
 * per child called, with o->child set. Returns how many children were
 * called, or -1 (ember_last_error) when the arguments cannot be encoded
 * (a string that is not UTF-8): no child is called and done never runs.
 */
typedef bool (*ember_child_filter)(ember_child *c, void *ud);
int ember_root_broadcast(ember_root *r, ember_child_filter filter, void *fud,
                         const ember_service_desc *svc, uint32_t method_id,
                         ember_encode_fn enc, const void *args,
                         ember_complete_fn done, ember_fn cb, void *ud,
                         const ember_callopts *opts);

/*
 * Graceful stop: stop accepting nodes and new calls (new calls are refused
 * with EMBER_UNAVAILABLE), let calls in flight finish, say goodbye to every
 * child, then run done once every child's socket has closed (each waits for
 * its peer to close, at most limits.handshake_ms: docs/runtime.md, "Closing
 * a connection"). Free the root afterwards. Calls still in flight
 * after limits.shutdown_ms (30 s) are cut: served ones are orphaned, ours
 * end EMBER_SHUTDOWN, and done runs.
 */
void ember_root_shutdown(ember_root *r, void (*done)(ember_root *r, void *ud),
                         void *ud);

#ifdef __cplusplus
}
#endif
#endif
