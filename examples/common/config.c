/* config.c — reads the cluster config with jansson. */
#include "config.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static void copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static const char *str_or(json_t *obj, const char *key, const char *dflt)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : dflt;
}

/* A string key into dst[cap]: absent is dflt; anything but a string that
 * fits is an error (a number for "secret" was taken as none, a token
 * longer than dst was cut, so the full one was refused). */
static int str_key(json_t *obj, const char *key, const char *dflt, char *dst, size_t cap,
                   const char *where, char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    size_t wl = strlen(where);
    const char *dot = wl && where[wl - 1] == ':' ? " " : ".";   /* "PATH:" is the top */
    if (v && !json_is_string(v)) {
        snprintf(err, errlen, "%s%s%s must be a string", where, dot, key);
        return -1;
    }
    const char *str = v ? json_string_value(v) : dflt;
    if (strlen(str) >= cap) {
        snprintf(err, errlen, "%s%s%s is too long (at most %zu bytes)", where, dot, key, cap - 1);
        return -1;
    }
    copy(dst, cap, str);
    return 0;
}

/* Every key of o must be one of known (NULL-terminated): a misspelt key
 * ("secrett", "rootprot") would otherwise be a default taken in silence. */
static int known_keys(json_t *o, const char *const *known, const char *where,
                      char *err, size_t errlen)
{
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        size_t i = 0;
        while (known[i] && strcmp(known[i], key) != 0)
            i++;
        if (!known[i]) {
            snprintf(err, errlen, "%s: unknown key \"%s\"", where, key);
            return -1;
        }
    }
    return 0;
}

/* A port key: absent is 0; anything but an integer from 0 to 65535 is an
 * error (a cast to 16 bits would turn 70000 into 4464, a string into 0). */
static int port_of(json_t *obj, const char *key, int *port, const char *where,
                   char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    *port = 0;
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 65535) {
        snprintf(err, errlen, "%s.%s must be a port: an integer from 0 to 65535", where, key);
        return -1;
    }
    *port = (int)json_integer_value(v);
    return 0;
}

void cfg_pb_addr(int port, char *buf, size_t len)
{
    snprintf(buf, len, "127.0.0.1:%d", port);
}

bool cfg_is_loopback(const char *host)
{
    unsigned char a[16];
    if (strcasecmp(host, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, host, a) == 1)
        return a[0] == 127;
    if (inet_pton(AF_INET6, host, a) == 1) {
        static const unsigned char one[16] = {[15] = 1};
        return memcmp(a, one, 16) == 0;
    }
    return false;
}

bool cfg_is_shipped(const char *value)
{
    static const char *const shipped[] = {
        "change me: a long random string shared by the cluster",
        "change me: another long random string, for POST /stop",
    };
    for (size_t i = 0; i < sizeof shipped / sizeof shipped[0]; i++)
        if (strcmp(value, shipped[i]) == 0)
            return true;
    return false;
}

const char *cfg_refuse_secret(const char *host, const char *secret)
{
    if (cfg_is_loopback(host))
        return NULL;
    if (!*secret)
        return "there is no cluster secret: anyone who reaches the port could register "
               "as a server";
    if (cfg_is_shipped(secret))
        return "the cluster secret is the one examples/cluster.json ships with, known "
               "to everyone who read the repository";
    return NULL;
}

const cfg_server *cfg_find(const cluster_cfg *c, const char *name)
{
    for (int i = 0; i < c->n_servers; i++)
        if (strcmp(c->servers[i].name, name) == 0)
            return &c->servers[i];
    return NULL;
}

void cfg_master_addr(const cluster_cfg *c, char *buf, size_t len)
{
    snprintf(buf, len, "%s:%d", c->master_host, c->master_port);
}

void cfg_root_config(const cluster_cfg *c, ember_root_config *rc)
{
    ember_root_config_default(rc);
    rc->secret = c->secret[0] ? c->secret : NULL;
    rc->tls = c->tls_on ? &c->tls : NULL;
}

void cfg_node_config(const cluster_cfg *c, ember_node_config *nc)
{
    ember_node_config_default(nc);
    nc->secret = c->secret[0] ? c->secret : NULL;
    nc->tls = c->tls_on ? &c->tls : NULL;
}

/* "tls": {"cert", "key", "ca", "require_client_cert"}: a root needs cert
 * and key, a node needs ca, so every server needs all three. */
static int load_tls(cluster_cfg *c, json_t *t, char *err, size_t errlen)
{
    if (!t)
        return 0;
    if (!json_is_object(t)) {
        snprintf(err, errlen, "%s: \"tls\" is not an object", c->path);
        return -1;
    }
    static const char *const keys[] = {"cert", "key", "ca", "require_client_cert", NULL};
    char where[sizeof c->path + 8];
    snprintf(where, sizeof where, "%s: tls", c->path);
    if (known_keys(t, keys, where, err, errlen))
        return -1;
    json_t *req = json_object_get(t, "require_client_cert");
    if (str_key(t, "cert", "", c->tls_cert, sizeof c->tls_cert, where, err, errlen) ||
        str_key(t, "key", "", c->tls_key, sizeof c->tls_key, where, err, errlen) ||
        str_key(t, "ca", "", c->tls_ca, sizeof c->tls_ca, where, err, errlen))
        return -1;
    if (req && !json_is_boolean(req)) {
        snprintf(err, errlen, "%s.require_client_cert must be true or false", where);
        return -1;
    }
    if (!c->tls_cert[0] || !c->tls_key[0] || !c->tls_ca[0]) {
        snprintf(err, errlen, "%s: tls needs \"cert\", \"key\" and \"ca\"", c->path);
        return -1;
    }
    c->tls_on = true;
    c->tls.cert_file = c->tls_cert;
    c->tls.key_file = c->tls_key;
    c->tls.ca_file = c->tls_ca;
    c->tls.require_client_cert = json_is_true(json_object_get(t, "require_client_cert"));
    return 0;
}

/* "clients": net's bounds on its game clients. Every key is optional; an
 * unknown key or a value out of range is an error, not a silent default. */
static int load_clients(cfg_client_limits *l, const char *name, json_t *o,
                        char *err, size_t errlen)
{
    static const struct {
        const char *key;
        size_t off;
        int dflt, min, max;
    } keys[] = {
        {"max_clients", offsetof(cfg_client_limits, max_clients), 10000, 1, 1000000},
        {"max_inflight", offsetof(cfg_client_limits, max_inflight), 4, 1, 1024},
        {"max_queued", offsetof(cfg_client_limits, max_queued), 65536, 1024, 1 << 28},
        {"stall_ms", offsetof(cfg_client_limits, stall_ms), 10000, 1, 3600000},
        {"login_ms", offsetof(cfg_client_limits, login_ms), 10000, 1, 3600000},
        {"idle_ms", offsetof(cfg_client_limits, idle_ms), 120000, 0, 86400000},
        {"chat_per_s", offsetof(cfg_client_limits, chat_per_s), 5, 0, 100000},
        {"chat_burst", offsetof(cfg_client_limits, chat_burst), 10, 1, 100000},
    };
    const size_t nkeys = sizeof keys / sizeof keys[0];
    for (size_t i = 0; i < nkeys; i++)
        *(int *)((char *)l + keys[i].off) = keys[i].dflt;
    if (!o)
        return 0;
    if (!json_is_object(o)) {
        snprintf(err, errlen, "servers.%s.clients: not an object", name);
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        size_t i = 0;
        while (i < nkeys && strcmp(keys[i].key, key) != 0)
            i++;
        if (i == nkeys) {
            snprintf(err, errlen, "servers.%s.clients: unknown key \"%s\"", name, key);
            return -1;
        }
        json_int_t x = json_is_integer(v) ? json_integer_value(v) : -1;
        if (!json_is_integer(v) || x < keys[i].min || x > keys[i].max) {
            snprintf(err, errlen, "servers.%s.clients.%s: must be an integer from %d to %d",
                     name, key, keys[i].min, keys[i].max);
            return -1;
        }
        *(int *)((char *)l + keys[i].off) = (int)x;
    }
    return 0;
}

static int load_server(cfg_server *s, const char *name, json_t *o,
                       char *err, size_t errlen)
{
    if (!json_is_object(o)) {
        snprintf(err, errlen, "servers.%s: not an object", name);
        return -1;
    }
    static const char *const keys[] = {"app", "host", "rootport", "netport", "metricsport",
                                       "pbport", "db", "clients", "remoteport", NULL};
    char where[96];
    snprintf(where, sizeof where, "servers.%s", name);
    if (known_keys(o, keys, where, err, errlen))
        return -1;
    if (strlen(name) >= sizeof s->name) {
        snprintf(err, errlen, "servers: a server's name is too long (at most %zu bytes)",
                 sizeof s->name - 1);
        return -1;
    }
    copy(s->name, sizeof s->name, name);
    if (str_key(o, "app", name, s->app, sizeof s->app, where, err, errlen) ||
        str_key(o, "host", "127.0.0.1", s->host, sizeof s->host, where, err, errlen) ||
        str_key(o, "db", "", s->db, sizeof s->db, where, err, errlen))
        return -1;
    /* The master runs the app from its own folder: only its programs. */
    static const char *const apps[] = {"db", "gate", "game", "net", "pygame", NULL};
    size_t a = 0;
    while (apps[a] && strcmp(apps[a], s->app) != 0)
        a++;
    if (!apps[a]) {
        snprintf(err, errlen, "%s.app: no app \"%s\" (db, gate, game, net or pygame)",
                 where, s->app);
        return -1;
    }
    if (port_of(o, "rootport", &s->rootport, where, err, errlen) ||
        port_of(o, "netport", &s->netport, where, err, errlen) ||
        port_of(o, "metricsport", &s->metricsport, where, err, errlen) ||
        port_of(o, "pbport", &s->pbport, where, err, errlen))
        return -1;
    if (load_clients(&s->clients, name, json_object_get(o, "clients"), err, errlen))
        return -1;
    json_t *rem = json_object_get(o, "remoteport");
    if (rem && !json_is_array(rem)) {
        snprintf(err, errlen, "servers.%s.remoteport: not a list", name);
        return -1;
    }
    size_t i;
    json_t *r;
    json_array_foreach(rem, i, r) {
        if (s->n_remotes == CFG_MAX_REMOTES) {
            snprintf(err, errlen, "servers.%s: too many remotes", name);
            return -1;
        }
        static const char *const rkeys[] = {"rootname", "roothost", "rootport", NULL};
        char kwhere[128];
        snprintf(kwhere, sizeof kwhere, "servers.%s.remoteport[%zu]", name, i);
        if (!json_is_object(r)) {
            snprintf(err, errlen, "%s: not an object", kwhere);
            return -1;
        }
        if (known_keys(r, rkeys, kwhere, err, errlen))
            return -1;
        const char *rn = str_or(r, "rootname", NULL);
        if (!rn || strlen(rn) >= sizeof s->remotes[0].name) {
            snprintf(err, errlen, "servers.%s.remoteport[%zu]: no rootname (a string of at most 63 bytes)",
                     name, i);
            return -1;
        }
        cfg_remote *cr = &s->remotes[s->n_remotes++];
        copy(cr->name, sizeof cr->name, rn);
        if (str_key(r, "roothost", "", cr->host, sizeof cr->host, kwhere, err, errlen))
            return -1;
        if (port_of(r, "rootport", &cr->port, kwhere, err, errlen))
            return -1;
    }
    return 0;
}

/* net's forwards must stay below the calls its link to the gate may have in
 * flight (max_outstanding): the gate counts a oneway (Gate.closed) against
 * it too while it runs, and drops a link that sends one with
 * max_outstanding calls in flight. Checked on loading, so the master
 * refuses the file before it starts anything (net alone used to find it,
 * after every other server was up). */
static int check_net_limits(const cfg_server *s, const char *path, char *err, size_t errlen)
{
    if (strcmp(s->app, "net") != 0)
        return 0;
    ember_node_config nc;
    ember_node_config_default(&nc);
    uint64_t most = (uint64_t)s->clients.max_clients * (uint64_t)s->clients.max_inflight;
    if (most < nc.limits.max_outstanding)
        return 0;
    snprintf(err, errlen, "%s: servers.%s.clients: max_clients x max_inflight (%llu) must be "
             "less than the calls one link may have in flight (max_outstanding %u)", path,
             s->name, (unsigned long long)most, nc.limits.max_outstanding);
    return -1;
}

/* What each app needs of its entry: a root listens on its rootport, and
 * every app calls its roots by name (srv_need; game.py registers on their
 * pbport and the master's). Checked on loading, so the master refuses the
 * file before it starts anything; the server alone used to find it, once
 * the master had started the others (the cluster never became ready). */
static int check_needs(const cluster_cfg *c, const cfg_server *s, const char *path,
                       char *err, size_t errlen)
{
    static const struct {
        const char *app;
        bool root;
        const char *roots[2];
    } needs[] = {
        {"db", true, {NULL, NULL}},      {"gate", true, {"db", NULL}},
        {"game", false, {"gate", "db"}}, {"pygame", false, {"gate", "db"}},
        {"net", false, {"gate", NULL}},
    };
    size_t a = 0;
    while (a < sizeof needs / sizeof needs[0] && strcmp(needs[a].app, s->app) != 0)
        a++;
    if (a == sizeof needs / sizeof needs[0])
        return 0;
    if (needs[a].root && s->rootport <= 0) {
        snprintf(err, errlen, "%s: servers.%s: app \"%s\" is a root: it needs a \"rootport\" "
                 "(1 to 65535)", path, s->name, s->app);
        return -1;
    }
    bool pb = strcmp(s->app, "pygame") == 0;
    if (pb && c->master_pbport <= 0) {
        snprintf(err, errlen, "%s: servers.%s: app \"pygame\" registers over Perspective "
                 "Broker: master needs a \"pbport\"", path, s->name);
        return -1;
    }
    for (int k = 0; k < 2 && needs[a].roots[k]; k++) {
        const char *root = needs[a].roots[k];
        int j = 0;
        while (j < s->n_remotes && strcmp(s->remotes[j].name, root) != 0)
            j++;
        if (j == s->n_remotes) {
            snprintf(err, errlen, "%s: servers.%s.remoteport: app \"%s\" needs the root "
                     "\"%s\" ({\"rootname\": \"%s\"})", path, s->name, s->app, root, root);
            return -1;
        }
    }
    for (int j = 0; pb && j < s->n_remotes; j++) {
        const cfg_server *t = cfg_find(c, s->remotes[j].name);
        if (!t || t->pbport <= 0) {
            snprintf(err, errlen, "%s: servers.%s: app \"pygame\" registers over Perspective "
                     "Broker: servers.%s needs a \"pbport\"", path, s->name,
                     s->remotes[j].name);
            return -1;
        }
    }
    return 0;
}

int cfg_load(cluster_cfg *c, const char *path, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    copy(c->path, sizeof c->path, path);
    json_error_t je;
    /* A key given twice (a copied "game1" left unrenamed) is an error, not
     * the last one taken in silence. */
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        if (je.line > 0)
            snprintf(err, errlen, "%s:%d: %s", path, je.line, je.text);
        else /* not read at all: no line to name */
            snprintf(err, errlen, "%s: %s", path, je.text);
        return -1;
    }
    int rc = -1;
    static const char *const keys[] = {"master", "secret", "admin_token", "tls", "db",
                                       "servers", NULL};
    static const char *const mkeys[] = {"roothost", "rootport", "webport", "pbport", NULL};
    json_t *m = json_object_get(root, "master");
    if (!json_is_object(m)) {
        snprintf(err, errlen, "%s: no \"master\" object", path);
        goto out;
    }
    char where[sizeof c->path + 16];
    snprintf(where, sizeof where, "%s", path);
    if (known_keys(root, keys, where, err, errlen))
        goto out;
    snprintf(where, sizeof where, "%s: master", path);
    if (known_keys(m, mkeys, where, err, errlen))
        goto out;
    if (str_key(m, "roothost", "127.0.0.1", c->master_host, sizeof c->master_host, where,
                err, errlen))
        goto out;
    if (port_of(m, "rootport", &c->master_port, where, err, errlen) ||
        port_of(m, "webport", &c->web_port, where, err, errlen) ||
        port_of(m, "pbport", &c->master_pbport, where, err, errlen))
        goto out;
    snprintf(where, sizeof where, "%s:", path);
    if (str_key(root, "secret", "", c->secret, sizeof c->secret, where, err, errlen) ||
        str_key(root, "admin_token", "", c->admin_token, sizeof c->admin_token, where, err,
                errlen) ||
        str_key(root, "db", "var/ember.sqlite", c->db, sizeof c->db, where, err, errlen))
        goto out;
    if (load_tls(c, json_object_get(root, "tls"), err, errlen))
        goto out;
    if (c->master_port <= 0) {
        snprintf(err, errlen, "%s: master.rootport must be 1 to 65535 (every server "
                 "connects to the port the file gives)", path);
        goto out;
    }
    json_t *servers = json_object_get(root, "servers");
    if (!json_is_object(servers)) {
        snprintf(err, errlen, "%s: no \"servers\" object", path);
        goto out;
    }
    const char *name;
    json_t *o;
    json_object_foreach(servers, name, o) {
        if (c->n_servers == CFG_MAX_SERVERS) {
            snprintf(err, errlen, "%s: too many servers", path);
            goto out;
        }
        if (load_server(&c->servers[c->n_servers], name, o, err, errlen)) {
            char why[512];
            snprintf(why, sizeof why, "%s", err);
            snprintf(err, errlen, "%s: %s", path, why);
            goto out;
        }
        c->n_servers++;
    }
    for (int i = 0; i < c->n_servers; i++)
        if (check_needs(c, &c->servers[i], path, err, errlen))
            goto out;
    /* Resolve each remote's address from the server it names. */
    for (int i = 0; i < c->n_servers; i++) {
        cfg_server *s = &c->servers[i];
        for (int j = 0; j < s->n_remotes; j++) {
            cfg_remote *r = &s->remotes[j];
            const cfg_server *t = cfg_find(c, r->name);
            if (!r->host[0])
                copy(r->host, sizeof r->host, t ? t->host : "127.0.0.1");
            if (!r->port && t)
                r->port = t->rootport;
            if (r->port <= 0) {
                snprintf(err, errlen, "%s: servers.%s: root \"%s\" has no rootport",
                         path, s->name, r->name);
                goto out;
            }
        }
        if (!s->db[0])
            copy(s->db, sizeof s->db, c->db);
        if (check_net_limits(s, path, err, errlen))
            goto out;
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}
