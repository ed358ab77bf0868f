/*
 * config.h — the cluster config file (Firefly's config.json, typed).
 *
 *   {
 *     "master":  {"roothost": "127.0.0.1", "rootport": 7000, "webport": 7080},
 *     "secret":  "cluster secret (optional)",
 *     "db":      "var/ember.sqlite",
 *     "servers": {
 *       "db":    {"app": "db",   "rootport": 7001},
 *       "gate":  {"app": "gate", "rootport": 7002, "remoteport": [{"rootname": "db"}]},
 *       "game1": {"app": "game", "remoteport": [{"rootname": "gate"}, {"rootname": "db"}]},
 *       "net":   {"app": "net",  "netport": 7010, "remoteport": [{"rootname": "gate"}]}
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

#include <stddef.h>

#define CFG_MAX_SERVERS 32
#define CFG_MAX_REMOTES 8

typedef struct cfg_remote {
    char name[64];
    char host[128];
    int port;
} cfg_remote;

typedef struct cfg_server {
    char name[64];
    char app[32];
    char host[128];
    int rootport;        /* 0: not a root */
    int netport;         /* 0: no client port */
    char db[512];        /* db path (app "db") */
    int n_remotes;
    cfg_remote remotes[CFG_MAX_REMOTES];
} cfg_server;

typedef struct cluster_cfg {
    char path[512];
    char master_host[128];
    int master_port;
    int web_port;
    char secret[128];
    char db[512];
    int n_servers;
    cfg_server servers[CFG_MAX_SERVERS];
} cluster_cfg;

/* Loads and checks path; on error writes a message to err and returns -1. */
int cfg_load(cluster_cfg *c, const char *path, char *err, size_t errlen);
const cfg_server *cfg_find(const cluster_cfg *c, const char *name);
/* "host:port" of the master's root. */
void cfg_master_addr(const cluster_cfg *c, char *buf, size_t len);

#endif
