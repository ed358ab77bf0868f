/*
 * probe-internal.h — counters the hostile and fault tests read to assert
 * work and memory bounds without timing anything. Not public API: the
 * tests link libember.a statically and include this header alone.
 */
/*
 * Rooms, lowest first (docs/internals.md); a header includes only headers
 * of rooms below its own:
 *
 *   handshake  pb-raw  pb-xcode   the wires' insides
 *   call       outgoing calls (calltab), incoming calls (dispatch)
 *   ref        exports, refs, proxies
 *   conn       a connection: struct, transport, TLS, frame output
 *   ep         the endpoint: struct, work event, sweep, graceful stop
 *   wire       frames, the personality interface
 *   hash  auth  addr  ember  buf  metrics  pb  probe   (leaves: they
 *              include public headers and ember-internal.h only)
 */
#ifndef EMBER_PROBE_INTERNAL_H
#define EMBER_PROBE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <ember/node.h>
#include <ember/root.h>

/* Hash table nodes looked at by the root's connections, closed ones
 * included: a put, get or delete adds the length of the chain it walked. */
uint64_t ember_root_htab_probes_(const ember_root *r);
/* The same for one child's connection alone. */
uint64_t ember_child_htab_probes_(const ember_child *c);

/* ember_root_adopt_fd for a PB peer (fuzz_pb). */
int ember_root_adopt_fd_pb_(ember_root *r, int fd);

/* Local objects exported on a child's connection (refs passed to it and
 * not yet released by it). */
uint32_t ember_child_exported_(const ember_child *c);

/* Unregistered peers of the root: the input bytes they hold now, the most
 * they held once shedding was done, and how many there are. */
size_t ember_root_unreg_bytes_(const ember_root *r);
size_t ember_root_unreg_peak_(const ember_root *r);
uint32_t ember_root_unreg_count_(const ember_root *r);

/* EMBER_LOG is read again at the next log line or ember_log_get_level. */
void ember_log_reread_env_(void);

/* The period of the node's sweep (heartbeats, liveness), in ms. */
uint32_t ember_node_sweep_ms_(const ember_node *n);

/* The highest protocol version of ember's wire that a root or node made
 * from now on speaks: a node offers at most it, a root announces and
 * accepts at most it. EMBER_PROTOCOL_VERSION unless a test lowers it (to 2,
 * for version 2 peers in one process); each endpoint keeps the value it
 * was made with, so a test sets it, makes the endpoint and sets it back. */
extern uint32_t ember_proto_max_;

/* The protocol version of ember's wire a child's (a node's) connection
 * speaks, 0 without one: 3 sends tables of refs, 2 does not (a PB peer's
 * reads 3: its refs are counted as they come in, as a table's are). */
uint32_t ember_child_version_(const ember_child *c);
uint32_t ember_node_version_(const ember_node *n);

/* The times the local object r was sent on a child's (a node's)
 * connection, minus what the peer's DECREFs released: 0 once it is not
 * exported there. */
uint64_t ember_child_sent_(const ember_child *c, const ember_ref *r);
uint64_t ember_node_sent_(const ember_node *n, const ember_ref *r);

#endif
