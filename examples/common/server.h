/*
 * server.h — what every cluster server (gate, game, db, net) shares:
 * command line, config, the connection to the master, the roots it
 * connects to, its own root, the Admin service and the graceful stop.
 *
 *   srv s;
 *   if (srv_init(&s, "game", argc, argv)) return 1;
 *   game_Game_export(ember_node_exports(srv_node(&s, "gate")), &handlers, &g);
 *   return srv_run(&s);
 *
 * Stop (Admin.stop from the master, or SIGTERM/SIGINT): the app's on_stop
 * hook drains what it owns and calls srv_drained(); then the server's root
 * shuts down gracefully (calls in flight finish), its links to other roots
 * close one after the other in config order, the stop call is answered,
 * the link to the master closes and srv_run returns.
 */
#ifndef EXAMPLES_SERVER_H
#define EXAMPLES_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include <ember/ember.h>

#include "config.h"

struct event_base;
struct event;
struct evhttp;

typedef struct srv_link {
    char root[64];
    char addr[192];
    ember_node *node;
} srv_link;

typedef struct srv srv;
struct srv {
    struct event_base *base;
    cluster_cfg cfg;
    const cfg_server *me;
    char app[32];
    uint64_t started_us;
    ember_node *master;
    char master_addr[192];
    int n_links;
    srv_link links[CFG_MAX_REMOTES];
    ember_root *root;
    int port;                 /* root port or client port, for status */
    bool stopping;
    ember_call *stop_call;    /* Admin.stop being served, or NULL */
    int closing;              /* next link to close */
    int exit_code;
    /* Set by the app: drain what it owns, then call srv_drained(s). */
    void (*on_stop)(srv *s);
    /* Set by the app: its root's on_join / on_leave. */
    void (*on_join)(srv *s, ember_child *c);
    void (*on_leave)(srv *s, ember_child *c, const char *reason);
    /* Set by the app: a state change of its link to a root (n is what
     * srv_node returned, or the master's). */
    void (*on_link)(srv *s, ember_node *n, ember_node_state st);
    void *app_ud;
    struct event *sig[2];
    struct evhttp *http;      /* GET /metrics (config "metricsport"), or NULL */
};

uint64_t now_us(void);

/* argv: [name] config.json. name defaults to app. 0 or -1 (message printed). */
int srv_init(srv *s, const char *app, int argc, char **argv);
/* The node connected to the root named root in this server's remoteport
 * (NULL when the config lists no such root). Export before srv_run. */
ember_node *srv_node(srv *s, const char *root);
/* srv_node, or NULL with "config: APP needs the root ROOT" logged. */
ember_node *srv_need(srv *s, const char *root);
/* This server's root (listening on its rootport), created on first use. */
ember_root *srv_root(srv *s);
/* Runs the event loop until stopped; returns the exit code. */
int srv_run(srv *s);
/* Called by the app's on_stop hook when it has drained. */
void srv_drained(srv *s);
/* Raises client.Refused {code, why} on call: the typed error the gate
 * passes back to net and net to the client. */
void srv_refuse(ember_call *call, int32_t code, const char *why);
/* Starts the graceful stop (as Admin.stop does). */
void srv_stop(srv *s);
void srv_log(srv *s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#endif
