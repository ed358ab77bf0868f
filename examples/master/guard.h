/*
 * guard.h — who may do what on the master's admin HTTP (docs/security.md):
 * reading (GET) is for whoever reaches the port; changing the cluster
 * (POST /stop) needs the admin credential of the config, sent the way no
 * cross-site request can send it, to the admin server by its own name.
 */
#ifndef MASTER_GUARD_H
#define MASTER_GUARD_H

#include <stdbool.h>
#include <stddef.h>

struct evbuffer;
struct evhttp_request;

#define GUARD_MAX_HOSTS 4

typedef struct guard {
    const char *token;                  /* config admin_token, "" : none */
    char hosts[GUARD_MAX_HOSTS][160];   /* Host header values we answer to */
    int nhosts;
    bool any_host;                      /* bound to 0.0.0.0 or ::: any Host */
} guard;

/* host:port the admin server listens on; token points into the config. */
void guard_init(guard *g, const char *token, const char *host, int port);
/* 0 when req may change the cluster; otherwise the HTTP status to answer
 * with, and *why says what was wrong. */
int guard_check_change(const guard *g, struct evhttp_request *req, const char **why);
/* True for 127.0.0.0/8, ::1 and "localhost". */
bool guard_is_loopback(const char *host);
/* Why the master must not listen on host with this secret and token, or
 * NULL when it may. */
const char *guard_refuse_listen(const char *host, const char *secret, const char *token);
/* Appends s escaped for HTML text and attribute values. */
void html_escape(struct evbuffer *out, const char *s);

#endif
