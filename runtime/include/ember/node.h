/*
 * ember/node.h — a node connects to a root, registers, and stays connected
 * (Firefly's RemoteObject, with reconnection).
 */
#ifndef EMBER_NODE_H
#define EMBER_NODE_H

#include <stdint.h>

#include <ember/core.h>
#include <ember/rpc.h>

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;

typedef enum ember_node_state {
    EMBER_NODE_IDLE = 0,      /* not started */
    EMBER_NODE_CONNECTING,    /* connecting or registering */
    EMBER_NODE_REGISTERED,    /* calls flow both ways */
    EMBER_NODE_LOST,          /* lost or refused; a retry is scheduled */
    EMBER_NODE_CLOSED         /* ember_node_close finished */
} ember_node_state;

const char *ember_node_state_name(ember_node_state s);

typedef struct ember_node_config {
    ember_limits limits;
    const char *secret;          /* the cluster secret; NULL or "": none */
    uint32_t backoff_min_ms;     /* first retry delay: 100 */
    uint32_t backoff_max_ms;     /* cap of the exponential backoff: 5000 */
    /* Every state change, with the reason for LOST. */
    void (*on_state)(ember_node *n, ember_node_state st, const char *reason,
                     void *ud);
    void *ud;
    /* TLS on every connection (NULL: plain TCP). Must outlive the call to
     * ember_node_new only. */
    const ember_tls_config *tls;
} ember_node_config;

void ember_node_config_default(ember_node_config *cfg);

/* name identifies the node to its root. cfg may be NULL. */
ember_node *ember_node_new(struct event_base *base, const char *name,
                           const ember_node_config *cfg);

/* The services the root may call on this node. Export before connecting:
 * the root learns the node's service list at registration (a later export
 * is served, but ember_child_has_service does not see it). */
ember_exports *ember_node_exports(ember_node *n);

/*
 * Connects to a root at addr ("host:port" or "unix:/path") and registers;
 * after any loss it reconnects with exponential backoff and jitter and
 * registers again, until closed or freed. A host name is resolved on each
 * attempt: one that does not resolve fails that attempt (LOST, retried), as
 * a root that is down does. -1 (ember_last_error) only when nothing was
 * started: an address that does not parse, a node that already has one,
 * a node closed by ember_node_close, TLS without a server name to check.
 */
int ember_node_connect(ember_node *n, const char *addr);
/*
 * The same with a Twisted Perspective Broker root (Firefly's PBRoot,
 * docs/protocol-pb.md): the node registers with takeProxy(name, ref to its
 * exports), serves the root's callChild from the moment it is connected
 * (even before takeProxy is answered), and is REGISTERED when the answer
 * comes; a refusal is LOST "refused by root: <type>: <value>", then the
 * usual backoff.
 */
int ember_node_connect_pb(ember_node *n, const char *addr);

/* The root's exported services. Stable across reconnects; calls made while
 * not registered end with EMBER_UNAVAILABLE. Owned by the node. */
ember_ref *ember_node_root(ember_node *n);

ember_node_state ember_node_state_get(const ember_node *n);
const char *ember_node_name(const ember_node *n);
/* The id the root gave this node at its last registration (0 before). */
uint32_t ember_node_id(const ember_node *n);

/* Graceful stop: finish calls the root made to us, say goodbye, stop
 * reconnecting, then run done once the socket has closed (it waits for the
 * root to close, at most limits.handshake_ms). Calls still in flight after
 * limits.shutdown_ms (30 s) are cut as by ember_root_shutdown. */
void ember_node_close(ember_node *n, void (*done)(ember_node *n, void *ud),
                      void *ud);

/* Frees the node; pending calls end with EMBER_SHUTDOWN. */
void ember_node_free(ember_node *n);

#ifdef __cplusplus
}
#endif
#endif
