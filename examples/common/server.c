/* server.c — the common life of a cluster server; see server.h. */
#include "server.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "cluster.h"
#include "metrics.h"
#include "webguard.h"

uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static const char *log_name = "?";

static void log_writer(ember_log_level level, const char *msg, void *ud)
{
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    (void)ud;
    fprintf(stderr, "[%s] %s: %s\n", log_name, names[level], msg);
}

/* Escaped: names, reasons and messages in a line may come from peers. */
void srv_log(srv *s, const char *fmt, ...)
{
    char buf[512], safe[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ember_escape(safe, sizeof safe, buf, strlen(buf));
    fprintf(stderr, "[%s] %s\n", s->me ? s->me->name : s->app, safe);
}

static void enc_refused(ember_enc *e, const void *v)
{
    client_Refused_encode(e, v);
}

void srv_refuse(ember_call *call, int32_t code, const char *why)
{
    client_Refused err = {code, why};
    ember_call_raise(call, client_Refused_ID, enc_refused, &err);
}

/* ---- Admin service ---------------------------------------------------- */

typedef struct stat_acc {
    ember_call *call;
    const char *endpoint;
    cluster_MethodStat *items;
    uint32_t n, cap;
} stat_acc;

static void add_stat(const ember_method_stats *st, void *ud)
{
    stat_acc *a = ud;
    if (a->n == a->cap)
        return;
    cluster_MethodStat *m = &a->items[a->n++];
    m->endpoint = a->endpoint;
    m->service_name = st->service ? st->service : "";
    m->method = st->method ? st->method : "";
    m->id = st->id;
    m->calls = st->calls;
    m->failures = st->failures;
    m->total_us = st->total_us;
    m->max_us = st->max_us;
}

static const char *call_strdup(ember_call *call, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = ember_call_alloc(call, n);
    if (p)
        memcpy(p, s, n);
    return p ? p : "";
}

static void remote_status(ember_call *call, void *ud)
{
    srv *s = ud;
    cluster_NodeStatus st;
    memset(&st, 0, sizeof st);
    st.name = s->me->name;
    st.app = s->app;
    st.pid = (uint32_t)getpid();
    st.uptime = (double)(now_us() - s->started_us) / 1e6;
    st.state = s->stopping ? "stopping" : "running";
    st.port = (uint32_t)(s->port > 0 ? s->port : 0);

    uint32_t nl = (uint32_t)s->n_links + 1;
    cluster_Link *links = ember_call_alloc(call, nl * sizeof *links);
    if (!links) {
        ember_call_fail(call, "out of memory");
        return;
    }
    links[0].root = "master";
    links[0].addr = s->master_addr;
    links[0].state = ember_node_state_name(ember_node_state_get(s->master));
    for (int i = 0; i < s->n_links; i++) {
        links[i + 1].root = s->links[i].root;
        links[i + 1].addr = s->links[i].addr;
        links[i + 1].state = ember_node_state_name(ember_node_state_get(s->links[i].node));
    }
    st.links.items = links;
    st.links.n = nl;

    if (s->root) {
        size_t nc = ember_root_child_count(s->root);
        const char **names = ember_call_alloc(call, (nc + 1) * sizeof *names);
        uint32_t k = 0;
        for (ember_child *c = ember_root_child_next(s->root, NULL); c && names && k < nc;
             c = ember_root_child_next(s->root, c))
            names[k++] = call_strdup(call, ember_child_name(c));
        st.children.items = names;
        st.children.n = k;
    }

    stat_acc acc = {call, NULL, NULL, 0, 256};
    acc.items = ember_call_alloc(call, acc.cap * sizeof *acc.items);
    if (acc.items) {
        acc.endpoint = "node:master";
        ember_exports_stats(ember_node_exports(s->master), add_stat, &acc);
        for (int i = 0; i < s->n_links; i++) {
            char ep[96];
            snprintf(ep, sizeof ep, "node:%s", s->links[i].root);
            acc.endpoint = call_strdup(call, ep);
            ember_exports_stats(ember_node_exports(s->links[i].node), add_stat, &acc);
        }
        if (s->root) {
            acc.endpoint = "root";
            ember_exports_stats(ember_root_exports(s->root), add_stat, &acc);
        }
    }
    st.methods.items = acc.items;
    st.methods.n = acc.n;
    cluster_Admin_status_reply(call, &st);
}

/* Every endpoint of this server, labelled server and endpoint. */
static char *metrics_text(srv *s)
{
    ember_metrics_src src[CFG_MAX_REMOTES + 2];
    char labels[CFG_MAX_REMOTES + 2][320];
    char ep[96];
    size_t n = 0;
    mx_labels(labels[n], sizeof labels[n], s->me->name, "node:master");
    src[n] = (ember_metrics_src){NULL, s->master, labels[n]};
    n++;
    for (int i = 0; i < s->n_links; i++, n++) {
        snprintf(ep, sizeof ep, "node:%s", s->links[i].root);
        mx_labels(labels[n], sizeof labels[n], s->me->name, ep);
        src[n] = (ember_metrics_src){NULL, s->links[i].node, labels[n]};
    }
    if (s->root) {
        mx_labels(labels[n], sizeof labels[n], s->me->name, "root");
        src[n] = (ember_metrics_src){s->root, NULL, labels[n]};
        n++;
    }
    return mx_render(src, n);
}

static void remote_metrics(ember_call *call, void *ud)
{
    char *text = metrics_text(ud);
    if (!text) {
        ember_call_fail(call, "cannot render the metrics: %s", ember_last_error());
        return;
    }
    cluster_Admin_metrics_reply(call, text);
    free(text);
}

/* GET /metrics on the server's own metricsport. */
static void on_metrics_http(struct evhttp_request *req, void *ud)
{
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (!path || strcmp(path, "/metrics") != 0) {
        evhttp_send_error(req, HTTP_NOTFOUND, "Not Found");
        return;
    }
    char *text = metrics_text(ud);
    if (!text) {
        evhttp_send_error(req, HTTP_INTERNAL, "cannot render the metrics");
        return;
    }
    struct evbuffer *out = evbuffer_new();
    evbuffer_add(out, text, strlen(text));
    free(text);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(req, HTTP_OK, "OK", out);
    evbuffer_free(out);
}

static int serve_metrics(srv *s)
{
    if (s->me->metricsport <= 0)
        return 0;
    s->http = evhttp_new(s->base);
    if (!s->http || evhttp_bind_socket(s->http, s->me->host, (ev_uint16_t)s->me->metricsport)) {
        srv_log(s, "cannot serve /metrics on %s:%d: %s", s->me->host, s->me->metricsport,
                strerror(errno));
        return -1;
    }
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET);
    wg_serve(s->http, s->base, s->me->name, on_metrics_http, s);
    srv_log(s, "metrics on http://%s:%d/metrics", s->me->host, s->me->metricsport);
    return 0;
}

static void remote_stop(ember_call *call, void *ud)
{
    srv *s = ud;
    if (s->stopping) {
        ember_call_fail(call, "already stopping");
        return;
    }
    s->stop_call = call;
    srv_stop(s);
}

static const cluster_Admin_handlers admin_handlers = {
    .remote_status = remote_status,
    .remote_stop = remote_stop,
    .remote_metrics = remote_metrics,
};

/* ---- stop sequence ---------------------------------------------------- */

static void master_closed(ember_node *n, void *ud)
{
    srv *s = ud;
    (void)n;
    srv_log(s, "stopped");
    event_base_loopexit(s->base, NULL);
}

static void close_next_link(ember_node *n, void *ud);

static void links_closed(srv *s)
{
    if (s->stop_call) {
        cluster_Admin_stop_reply(s->stop_call);
        s->stop_call = NULL;
    }
    ember_node_close(s->master, master_closed, s);
}

static void close_next_link(ember_node *n, void *ud)
{
    srv *s = ud;
    (void)n;
    if (s->closing == s->n_links) {
        links_closed(s);
        return;
    }
    ember_node *next = s->links[s->closing++].node;
    ember_node_close(next, close_next_link, s);
}

static void root_shut(ember_root *r, void *ud)
{
    (void)r;
    close_next_link(NULL, ud);
}

void srv_drained(srv *s)
{
    if (s->root)
        ember_root_shutdown(s->root, root_shut, s);
    else
        close_next_link(NULL, s);
}

void srv_stop(srv *s)
{
    if (s->stopping)
        return;
    s->stopping = true;
    srv_log(s, "stopping");
    if (s->on_stop)
        s->on_stop(s);
    else
        srv_drained(s);
}

static void on_signal(evutil_socket_t fd, short what, void *ud)
{
    (void)fd;
    (void)what;
    srv_stop(ud);
}

/* ---- root callbacks --------------------------------------------------- */

static void root_join(ember_root *r, ember_child *c, void *ud)
{
    srv *s = ud;
    (void)r;
    srv_log(s, "child %s joined from %s", ember_child_name(c), ember_child_peer(c));
    if (s->on_join)
        s->on_join(s, c);
}

static void root_leave(ember_root *r, ember_child *c, const char *reason, void *ud)
{
    srv *s = ud;
    (void)r;
    srv_log(s, "child %s left: %s", ember_child_name(c), reason ? reason : "");
    if (s->on_leave)
        s->on_leave(s, c, reason);
}

/* ---- setup ------------------------------------------------------------ */

static void link_state(ember_node *n, ember_node_state st, const char *reason, void *ud)
{
    srv *s = ud;
    (void)reason;
    if (s->on_link)
        s->on_link(s, n, st);
}

int srv_init(srv *s, const char *app, int argc, char **argv)
{
    memset(s, 0, sizeof *s);
    snprintf(s->app, sizeof s->app, "%s", app);
    s->started_us = now_us();
    const char *name = app, *path = NULL;
    if (argc == 2) {
        path = argv[1];
    } else if (argc == 3) {
        name = argv[1];
        path = argv[2];
    } else {
        fprintf(stderr, "usage: %s [NAME] CONFIG.json\n", argv[0]);
        return -1;
    }
    char err[600];
    if (cfg_load(&s->cfg, path, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", app, err);
        return -1;
    }
    s->me = cfg_find(&s->cfg, name);
    if (!s->me) {
        fprintf(stderr, "%s: no server \"%s\" in %s\n", app, name, path);
        return -1;
    }
    /* Another program's entry would run under its name: a net registered
     * as game1 took game1's place with the master and the gate. */
    if (strcmp(s->me->app, app) != 0) {
        fprintf(stderr, "%s: %s: servers.%s.app is \"%s\": start it with %s, not %s\n", app,
                path, name, s->me->app, s->me->app, app);
        return -1;
    }
    log_name = s->me->name;
    ember_set_log(log_writer, NULL);
    /* Started by the master: go down with it. */
    if (getenv("EMBER_MASTER_PID"))
        prctl(PR_SET_PDEATHSIG, SIGTERM);
    signal(SIGPIPE, SIG_IGN);

    s->base = event_base_new();
    if (!s->base)
        return -1;
    ember_node_config nc;
    cfg_node_config(&s->cfg, &nc);
    nc.on_state = link_state;
    nc.ud = s;
    s->master = ember_node_new(s->base, s->me->name, &nc);
    if (!s->master || cluster_Admin_export(ember_node_exports(s->master), &admin_handlers, s)) {
        fprintf(stderr, "%s: %s\n", name, ember_last_error());
        return -1;
    }
    cfg_master_addr(&s->cfg, s->master_addr, sizeof s->master_addr);
    for (int i = 0; i < s->me->n_remotes; i++) {
        const cfg_remote *r = &s->me->remotes[i];
        srv_link *l = &s->links[s->n_links++];
        snprintf(l->root, sizeof l->root, "%s", r->name);
        snprintf(l->addr, sizeof l->addr, "%s:%d", r->host, r->port);
        l->node = ember_node_new(s->base, s->me->name, &nc);
        if (!l->node) {
            fprintf(stderr, "%s: %s\n", name, ember_last_error());
            return -1;
        }
    }
    s->sig[0] = evsignal_new(s->base, SIGTERM, on_signal, s);
    s->sig[1] = evsignal_new(s->base, SIGINT, on_signal, s);
    event_add(s->sig[0], NULL);
    event_add(s->sig[1], NULL);
    return 0;
}

ember_node *srv_node(srv *s, const char *root)
{
    for (int i = 0; i < s->n_links; i++)
        if (strcmp(s->links[i].root, root) == 0)
            return s->links[i].node;
    return NULL;
}

ember_node *srv_need(srv *s, const char *root)
{
    ember_node *n = srv_node(s, root);
    if (!n)
        srv_log(s, "config: %s needs the root \"%s\"", s->app, root);
    return n;
}

ember_root *srv_root(srv *s)
{
    if (s->root)
        return s->root;
    if (s->me->rootport <= 0) {
        srv_log(s, "config gives no rootport");
        return NULL;
    }
    /* As the master's: a secret everyone knows (or none) admits anyone who
     * reaches the port, so only loopback may have it. */
    const char *refuse = cfg_refuse_secret(s->me->host, s->cfg.secret);
    if (refuse) {
        srv_log(s, "refusing to listen on %s (not a loopback address): %s. Make your own "
                "with `openssl rand -hex 32` and put it in %s as \"secret\"; see "
                "docs/security.md", s->me->host, refuse, s->cfg.path);
        exit(1);
    }
    ember_root_config rc;
    cfg_root_config(&s->cfg, &rc);
    rc.on_join = root_join;
    rc.on_leave = root_leave;
    rc.ud = s;
    s->root = ember_root_new(s->base, &rc);
    char addr[192];
    snprintf(addr, sizeof addr, "%s:%d", s->me->host, s->me->rootport);
    if (!s->root || ember_root_listen(s->root, addr)) {
        srv_log(s, "cannot listen on %s: %s", addr, ember_last_error());
        exit(1);
    }
    if (s->me->pbport > 0) {
        cfg_pb_addr(s->me->pbport, addr, sizeof addr);
        if (ember_root_listen_pb(s->root, addr)) {
            srv_log(s, "cannot listen (Perspective Broker) on %s: %s", addr, ember_last_error());
            exit(1);
        }
    }
    s->port = ember_root_port(s->root);
    return s->root;
}

int srv_run(srv *s)
{
    if (ember_node_connect(s->master, s->master_addr)) {
        srv_log(s, "cannot connect to the master: %s", ember_last_error());
        return 1;
    }
    for (int i = 0; i < s->n_links; i++)
        if (ember_node_connect(s->links[i].node, s->links[i].addr)) {
            srv_log(s, "cannot connect to %s: %s", s->links[i].root, ember_last_error());
            return 1;
        }
    if (serve_metrics(s))
        return 1;
    srv_log(s, "%s running (pid %d)", s->app, (int)getpid());
    event_base_dispatch(s->base);
    if (s->http)
        evhttp_free(s->http);
    for (int i = 0; i < s->n_links; i++)
        ember_node_free(s->links[i].node);
    ember_node_free(s->master);
    if (s->root)
        ember_root_free(s->root);
    for (int i = 0; i < 2; i++)
        if (s->sig[i])
            event_free(s->sig[i]);
    event_base_free(s->base);
    return s->exit_code;
}
