/*
 * addr-internal.h — addresses and sockets (addr.c): parsing "host:port" and
 * "unix:PATH", printing a peer, preparing a socket. A leaf.
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
#ifndef EMBER_ADDR_INTERNAL_H
#define EMBER_ADDR_INTERNAL_H

#include <sys/socket.h>

/* An address to connect to, its form only (no name lookup; port 0 is
 * refused: nothing can be reached there): 0, or -1 with the reason. */
int ember_addr_check(const char *addr);
/* Form and name lookup (getaddrinfo, blocking for a host name). */
int ember_addr_parse(const char *addr, struct sockaddr_storage *ss,
                     socklen_t *len);
char *ember_addr_text(const struct sockaddr *sa, socklen_t len);
int ember_sock_prepare(int fd);

#endif
