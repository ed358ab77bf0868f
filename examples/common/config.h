/*
 * config.h — the cluster config file (Firefly's config.json, typed).
 *
 *   {
 *     "master":  {"roothost": "127.0.0.1", "rootport": 7000, "webport": 7080},
 *     "secret":  "cluster secret (optional)",
 *     "admin_token": "the credential POST /stop needs (optional: without
 *                     it nothing can change the cluster over HTTP)",
 *     "tls":     {"cert": "c.pem", "key": "k.pem", "ca": "ca.pem",
 *                 "require_client_cert": false}   (optional)
 *     "db":      "var/ember.sqlite",
 *     "servers": {
 *       "db":    {"app": "db",   "rootport": 7001},
 *       "gate":  {"app": "gate", "rootport": 7002, "remoteport": [{"rootname": "db"}],
 *                 "metricsport": 7092,      (optional: its own /metrics)
 *                 "pbport": 7102},          (optional: Twisted PB nodes, loopback)
 *       "game1": {"app": "game", "remoteport": [{"rootname": "gate"}, {"rootname": "db"}]},
 *       "game2": {"app": "pygame", ...}   (a Twisted node: examples/pygame/game.py,
 *                 registering on the pbport of master and of its roots)
 *       "net":   {"app": "net",  "netport": 7010, "remoteport": [{"rootname": "gate"}],
 *                 "clients": {"max_clients": 10000, ...}}   (optional)
 *     }
 *   }
 *
 * Every server connects to the master; "remoteport" lists the other roots
 * it connects to. A remote's host and port default to the named server's
 * "host" (default 127.0.0.1) and "rootport"; give "roothost"/"rootport" to
 * override.
 */
#ifndef EXAMPLES_CONFIG_H
#define EXAMPLES_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include <ember/ember.h>

#define CFG_MAX_SERVERS 32
#define CFG_MAX_REMOTES 8

typedef struct cfg_remote {
    char name[64];
    char host[128];
    int port;
} cfg_remote;

/* net's bounds on its game clients ("clients" of a net server; every key
 * optional, docs/cluster.md "Client limits"). */
typedef struct cfg_client_limits {
    int max_clients;      /* connections at once; more are refused: 10000 */
    int max_inflight;     /* commands of one client forwarded, not answered
                             yet; at the bound net stops reading it: 4 */
    int max_queued;       /* bytes queued for one client; over it net stops
                             reading it; pushes past twice it drop the
                             client: 65536 */
    int stall_ms;         /* over max_queued this long: dropped: 10000 */
    int login_ms;         /* from connect (or logout) to an accepted LOGIN:
                             10000 */
    int idle_ms;          /* without a frame while net would read one;
                             0: no idle timeout: 120000 */
    int chat_per_s;       /* CHATs one client may send a second, sustained
                             (each is pushed to its whole room); more are
                             refused 429; 0: no limit: 5 */
    int chat_burst;       /* CHATs it may send at once after a quiet while
                             (the token bucket's size): 10 */
} cfg_client_limits;

typedef struct cfg_server {
    char name[64];
    char app[32];
    char host[128];
    int rootport;        /* 0: not a root */
    int netport;         /* 0: no client port */
    int metricsport;     /* its own GET /metrics on host:metricsport; 0: none */
    int pbport;          /* a Perspective Broker listener for Twisted nodes
                            on 127.0.0.1:pbport (root servers); 0: none */
    char db[512];        /* db path (app "db") */
    cfg_client_limits clients;   /* app "net" */
    int n_remotes;
    cfg_remote remotes[CFG_MAX_REMOTES];
} cfg_server;

typedef struct cluster_cfg {
    char path[512];
    char master_host[128];
    int master_port;
    int web_port;
    int master_pbport;   /* master.pbport: PB listener on 127.0.0.1; 0: none */
    char secret[128];
    char admin_token[128]; /* the master's admin credential ("" : none) */
    bool tls_on;         /* a "tls" block was given */
    char tls_cert[512], tls_key[512], tls_ca[512];
    ember_tls_config tls;   /* points into tls_cert/key/ca: do not copy c */
    char db[512];
    int n_servers;
    cfg_server servers[CFG_MAX_SERVERS];
} cluster_cfg;

/* Loads and checks path; on error writes a message to err and returns -1. */
int cfg_load(cluster_cfg *c, const char *path, char *err, size_t errlen);
const cfg_server *cfg_find(const cluster_cfg *c, const char *name);
/* Root and node configs with the cluster's defaults, secret and TLS
 * (pointing into c, which must outlive the ember_root_new/ember_node_new
 * call). A node presents the TLS certificate as its client certificate. */
void cfg_root_config(const cluster_cfg *c, ember_root_config *rc);
void cfg_node_config(const cluster_cfg *c, ember_node_config *nc);
/* "127.0.0.1:port": a PB listener ("pbport") binds to loopback only, as PB
 * has no cluster secret (docs/security.md). */
void cfg_pb_addr(int port, char *buf, size_t len);
/* "host:port" of the master's root. */
void cfg_master_addr(const cluster_cfg *c, char *buf, size_t len);
/* True for 127.0.0.0/8, ::1 and "localhost". */
bool cfg_is_loopback(const char *host);
/* True for a placeholder examples/cluster.json ships with ("secret",
 * "admin_token"): known to everyone who read the repository. */
bool cfg_is_shipped(const char *value);
/* Why a root must not listen on host with this cluster secret (none, or
 * a shipped placeholder: anyone could register), or NULL when it may. */
const char *cfg_refuse_secret(const char *host, const char *secret);

#endif
