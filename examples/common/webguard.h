/*
 * webguard.h — an example server's HTTP port (the master's admin web, a
 * server's /metrics) with the limits docs/security.md promises.
 *
 * libevent's evhttp bounds headers and bodies and drops a client silent for
 * its timeout, but every byte that arrives restarts that timeout: a client
 * sending one byte every few seconds would keep a request open for hours,
 * and a thousand of them a thousand descriptors. The guard gives each
 * request WG_REQUEST_S seconds from its first byte to arrive whole, however
 * it trickles, and keeps at most WG_MAX_CONNS clients at once (one more is
 * closed as soon as it sends).
 *
 * One guard per process: the callbacks libevent gives it carry one pointer.
 */
#ifndef EXAMPLES_WEBGUARD_H
#define EXAMPLES_WEBGUARD_H

#include <event2/event.h>
#include <event2/http.h>

#define WG_REQUEST_S 10
#define WG_MAX_CONNS 256

/* Serves every request of http through cb(req, arg), with the limits:
 * headers 16 KiB, body 64 KiB, WG_REQUEST_S of silence, WG_REQUEST_S for a
 * whole request. `who` names the server in the log lines of drops. */
void wg_serve(struct evhttp *http, struct event_base *base, const char *who,
              void (*cb)(struct evhttp_request *, void *), void *arg);

#endif
