/*
 * master — the root every server of the cluster registers with (Firefly's
 * master). It reads the cluster config, starts every server in it as a
 * child process (unless -n), and serves the admin web on its web port:
 *
 *   GET  /status   JSON: every server, the roots it is connected to, its
 *                  state, uptime and per-method call counts and latency
 *                  (?format=text: the same as a few lines of text)
 *   GET  /metrics  the cluster's metrics in the Prometheus text format: the
 *                  master's and every server's, labelled server and endpoint
 *   GET  /         the status page (graph of the cluster, live charts;
 *                  its script is GET /status.js)
 *   POST /stop     graceful stop of the whole cluster, then the master exits;
 *                  needs the config's admin_token (guard.h)
 *
 *   master [-n] CONFIG.json       (-n: start nothing, wait for the servers)
 *
 * A web port of 0 picks a free port; the master prints the ports it uses as
 * "master: root 127.0.0.1:PORT web http://127.0.0.1:PORT/".
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ember/ember.h>

#include "cluster.h"
#include "config.h"
#include "guard.h"
#include "metrics.h"
#include "status_page.h"
#include "webguard.h"
#include "status_script.h"

#define STATUS_TIMEOUT_MS 2000
#define STOP_TIMEOUT_MS 20000
#define REAP_TIMEOUT_S 15

typedef struct proc {
    char name[64];
    char app[32];
    pid_t pid;
    bool running;
    bool stop_sent;      /* Admin.stop was called on it */
    int status;          /* wait status once exited */
} proc;

static struct {
    struct event_base *base;
    cluster_cfg cfg;
    char bindir[PATH_MAX];
    ember_root *root;
    struct evhttp *http;
    int web_port;
    guard guard;
    uint64_t started_us;
    proc procs[CFG_MAX_SERVERS];
    int n_procs;
    bool stopping;
    bool stop_finished;   /* the stop's answer is made (finish_stop, once) */
    int tier;                       /* stop tier in progress */
    int tier_pending;
    struct evhttp_request *stop_req;
    json_t *stop_report;
    struct event *reap_deadline;
    struct event *exit_grace;       /* after the stop answer: see stop_reply_sent */
    struct event *sig[3];
    int exit_code;
} M;

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void mlog(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
/* One line, one write: the servers append to the same log, and a line
 * written in pieces can have another process's line inside it. Escaped:
 * names, reasons and messages in it may come from peers. */
static void mlog(const char *fmt, ...)
{
    char buf[1024], safe[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ember_escape(safe, sizeof safe, buf, strlen(buf));
    fprintf(stderr, "[master] %s\n", safe);
}

static void log_writer(ember_log_level level, const char *msg, void *ud)
{
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    (void)ud;
    fprintf(stderr, "[master] %s: %s\n", names[level], msg);
}

/* Stop order: clients' entry first, storage last, so no call is lost. */
static int tier_of(const char *app)
{
    if (strcmp(app, "net") == 0)
        return 0;
    if (strcmp(app, "gate") == 0)
        return 1;
    if (strcmp(app, "db") == 0)
        return 3;
    return 2;
}
#define N_TIERS 4

static const cfg_server *server_of(ember_child *c)
{
    return cfg_find(&M.cfg, ember_child_name(c));
}

/* ---- child processes -------------------------------------------------- */

static void spawn(const cfg_server *s)
{
    char exe[PATH_MAX + 64];
    snprintf(exe, sizeof exe, "%s/%s", M.bindir, s->app);
    pid_t pid = fork();
    if (pid < 0) {
        mlog("fork: %s", strerror(errno));
        return;
    }
    if (pid == 0) {
        char ppid[32];
        snprintf(ppid, sizeof ppid, "%d", (int)getppid());
        setenv("EMBER_MASTER_PID", ppid, 1);
        signal(SIGPIPE, SIG_DFL);
        execl(exe, s->app, s->name, M.cfg.path, (char *)NULL);
        fprintf(stderr, "[master] cannot run %s: %s\n", exe, strerror(errno));
        _exit(127);
    }
    proc *p = &M.procs[M.n_procs++];
    snprintf(p->name, sizeof p->name, "%s", s->name);
    snprintf(p->app, sizeof p->app, "%s", s->app);
    p->pid = pid;
    p->running = true;
    mlog("started %s (%s) pid %d", s->name, s->app, (int)pid);
}

static int running_procs(void)
{
    int n = 0;
    for (int i = 0; i < M.n_procs; i++)
        n += M.procs[i].running;
    return n;
}

static void finish_stop(void);

static void on_sigchld(evutil_socket_t fd, short what, void *ud)
{
    (void)fd;
    (void)what;
    (void)ud;
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        for (int i = 0; i < M.n_procs; i++) {
            proc *p = &M.procs[i];
            if (p->pid != pid)
                continue;
            p->running = false;
            p->status = st;
            if (WIFEXITED(st))
                mlog("%s (pid %d) exited with %d", p->name, (int)pid, WEXITSTATUS(st));
            else if (WIFSIGNALED(st))
                mlog("%s (pid %d) killed by signal %d", p->name, (int)pid, WTERMSIG(st));
            if (!M.stopping || (WIFEXITED(st) && WEXITSTATUS(st) != 0) || WIFSIGNALED(st))
                M.exit_code = 1;
        }
    }
    if (M.stopping && M.tier == N_TIERS && running_procs() == 0)
        finish_stop();
}

/* ---- GET /status -------------------------------------------------------- */

typedef struct status_req {
    struct evhttp_request *req;
    bool text;              /* GET /status?format=text */
    json_t *nodes;          /* name -> node object */
    int pending;
} status_req;

typedef struct status_call {
    status_req *sr;
    char name[64];
} status_call;

static json_t *process_json(const char *name)
{
    for (int i = 0; i < M.n_procs; i++) {
        proc *p = &M.procs[i];
        if (strcmp(p->name, name) != 0)
            continue;
        json_t *o = json_pack("{s:i, s:b}", "pid", (int)p->pid, "running", p->running);
        if (!p->running && WIFEXITED(p->status))
            json_object_set_new(o, "exit", json_integer(WEXITSTATUS(p->status)));
        return o;
    }
    return json_null();
}

/* Every answer: its type, never cached, never sniffed as something else,
 * never framed. */
static void set_headers(struct evhttp_request *req, const char *type)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(h, "X-Frame-Options", "DENY");
}

static void send_json(struct evhttp_request *req, int code, const char *reason, json_t *j)
{
    char *text = json_dumps(j, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    struct evbuffer *out = evbuffer_new();
    evbuffer_add_printf(out, "%s\n", text ? text : "{}");
    set_headers(req, "application/json");
    evhttp_send_reply(req, code, reason, out);
    evbuffer_free(out);
    free(text);
}

static void send_error_json(struct evhttp_request *req, int code, const char *why)
{
    json_t *j = json_pack("{s:s}", "error", why);
    if (code == 401)
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                          "Bearer realm=\"ember admin\"");
    send_json(req, code, code == 400 ? "Bad Request" : code == 401 ? "Unauthorized"
                         : code == 415 ? "Unsupported Media Type" : code == 409 ? "Conflict"
                         : "Forbidden", j);
    json_decref(j);
}

/* 404 and 405 as JSON with the headers of every answer (libevent's own
 * error page has none of them); a 405 says what is allowed. */
static void send_refusal(struct evhttp_request *req, int code, const char *reason,
                         const char *allow, const char *why)
{
    json_t *j = json_pack("{s:s}", "error", why);
    if (allow)
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
    send_json(req, code, reason, j);
    json_decref(j);
}

/* The status as a few lines of text: one per server, one per method that
 * served calls. */
static void send_text(struct evhttp_request *req, json_t *top)
{
    struct evbuffer *out = evbuffer_new();
    json_t *m = json_object_get(top, "master");
    json_t *sec = json_object_get(top, "security");
    evbuffer_add_printf(out, "cluster %s, %s, %s, %s; master pid %d, up %.1f s\n",
                        json_string_value(json_object_get(top, "state")),
                        json_is_true(json_object_get(top, "ready")) ? "ready" : "not ready",
                        json_is_true(json_object_get(sec, "secret")) ? "authenticated" : "no secret",
                        json_is_true(json_object_get(sec, "tls")) ? "TLS" : "plain TCP",
                        (int)json_integer_value(json_object_get(m, "pid")),
                        json_real_value(json_object_get(m, "uptime")));
    size_t i, j;
    json_t *n, *x;
    json_array_foreach(json_object_get(top, "nodes"), i, n) {
        evbuffer_add_printf(out, "%-8s %-5s pid %-7d %-8s roots:",
                            json_string_value(json_object_get(n, "name")),
                            json_string_value(json_object_get(n, "app")),
                            (int)json_integer_value(json_object_get(n, "pid")),
                            json_string_value(json_object_get(n, "state")));
        json_array_foreach(json_object_get(n, "links"), j, x)
            evbuffer_add_printf(out, " %s(%s)", json_string_value(json_object_get(x, "root")),
                                json_string_value(json_object_get(x, "state")));
        if (json_array_size(json_object_get(n, "children"))) {
            evbuffer_add_printf(out, "  children:");
            json_array_foreach(json_object_get(n, "children"), j, x)
                evbuffer_add_printf(out, " %s", json_string_value(x));
        }
        evbuffer_add_printf(out, "\n");
        json_array_foreach(json_object_get(n, "methods"), j, x) {
            json_int_t calls = json_integer_value(json_object_get(x, "calls"));
            if (!calls)
                continue;
            char name[128];
            snprintf(name, sizeof name, "%s.%s",
                     json_string_value(json_object_get(x, "service")),
                     json_string_value(json_object_get(x, "method")));
            evbuffer_add_printf(out, "    %-24s %7lld calls %5lld failed  avg %7.1f us  max %6lld us\n",
                                name, (long long)calls,
                                (long long)json_integer_value(json_object_get(x, "failures")),
                                json_real_value(json_object_get(x, "avg_us")),
                                (long long)json_integer_value(json_object_get(x, "max_us")));
        }
    }
    set_headers(req, "text/plain; charset=utf-8");
    evhttp_send_reply(req, HTTP_OK, "OK", out);
    evbuffer_free(out);
}

static bool links_registered(json_t *node)
{
    json_t *links = json_object_get(node, "links");
    size_t i;
    json_t *l;
    if (!json_array_size(links))
        return false;
    json_array_foreach(links, i, l) {
        const char *st = json_string_value(json_object_get(l, "state"));
        if (!st || strcasecmp(st, "registered") != 0)
            return false;
    }
    return true;
}

static void status_done(status_req *sr)
{
    json_t *top = json_object();
    bool ready = !M.stopping;
    json_t *nodes = json_array();
    for (int i = 0; i < M.cfg.n_servers; i++) {
        const cfg_server *s = &M.cfg.servers[i];
        json_t *n = json_object_get(sr->nodes, s->name);
        if (n) {
            json_incref(n);
        } else {
            n = json_pack("{s:s, s:s, s:b, s:s}", "name", s->name, "app", s->app,
                          "registered", false, "state", "absent");
        }
        if (!json_is_true(json_object_get(n, "registered")) || !links_registered(n))
            ready = false;
        json_object_set_new(n, "process", process_json(s->name));
        /* The roots the config has it register with. */
        json_t *roots = json_pack("[s]", "master");
        for (int k = 0; k < s->n_remotes; k++)
            json_array_append_new(roots, json_string(s->remotes[k].name));
        json_object_set_new(n, "roots", roots);
        json_array_append_new(nodes, n);
    }
    /* Registered with the secret, yet not in the config: shown, flagged. */
    const char *cname;
    json_t *cn;
    json_object_foreach(sr->nodes, cname, cn) {
        if (cfg_find(&M.cfg, cname))
            continue;
        json_object_set_new(cn, "configured", json_false());
        json_array_append(nodes, cn);
    }
    json_object_set_new(top, "cluster", json_string("ember example game cluster"));
    json_object_set_new(top, "state", json_string(M.stopping ? "stopping" : "running"));
    json_object_set_new(top, "ready", json_boolean(ready));
    json_object_set_new(top, "master",
                        json_pack("{s:s, s:i, s:f, s:i, s:i, s:s, s:i}", "name", "master",
                                  "pid", (int)getpid(), "uptime",
                                  (double)(now_us() - M.started_us) / 1e6, "rootport",
                                  ember_root_port(M.root), "webport", M.web_port, "config",
                                  M.cfg.path, "children", (int)ember_root_child_count(M.root)));
    /* How the cluster's links are protected (secret: every registration
     * proved the shared secret; tls: every link is encrypted). */
    json_object_set_new(top, "security", json_pack("{s:b, s:b}", "secret", M.cfg.secret[0] != 0,
                                                   "tls", M.cfg.tls_on));
    json_object_set_new(top, "nodes", nodes);
    if (sr->text)
        send_text(sr->req, top);
    else
        send_json(sr->req, HTTP_OK, "OK", top);
    json_decref(top);
    json_decref(sr->nodes);
    free(sr);
}

static json_t *status_json(const cluster_NodeStatus *st)
{
    json_t *links = json_array();
    for (uint32_t i = 0; i < st->links.n; i++) {
        const cluster_Link *l = &st->links.items[i];
        json_array_append_new(links, json_pack("{s:s, s:s, s:s}", "root", l->root, "addr",
                                               l->addr, "state", l->state));
    }
    json_t *children = json_array();
    for (uint32_t i = 0; i < st->children.n; i++)
        json_array_append_new(children, json_string(st->children.items[i]));
    json_t *methods = json_array();
    for (uint32_t i = 0; i < st->methods.n; i++) {
        const cluster_MethodStat *m = &st->methods.items[i];
        double avg = m->calls ? (double)m->total_us / (double)m->calls : 0.0;
        json_array_append_new(
            methods, json_pack("{s:s, s:s, s:s, s:i, s:I, s:I, s:f, s:I}", "endpoint",
                               m->endpoint, "service", m->service_name, "method", m->method, "id",
                               (int)m->id, "calls", (json_int_t)m->calls, "failures",
                               (json_int_t)m->failures, "avg_us", avg, "max_us",
                               (json_int_t)m->max_us));
    }
    return json_pack("{s:s, s:s, s:b, s:i, s:f, s:s, s:i, s:o, s:o, s:o}", "name", st->name,
                     "app", st->app, "registered", true, "pid", (int)st->pid, "uptime",
                     st->uptime, "state", st->state, "port", (int)st->port, "links", links,
                     "children", children, "methods", methods);
}

static void got_status(const ember_outcome *o, const cluster_NodeStatus *st, void *ud)
{
    status_call *sc = ud;
    status_req *sr = sc->sr;
    json_t *n;
    if (o->status == EMBER_OK) {
        n = status_json(st);
    } else {
        n = json_pack("{s:s, s:b, s:s, s:s}", "name", sc->name, "registered", true, "state",
                      "unknown", "error", o->message ? o->message : ember_status_name(o->status));
    }
    const cfg_server *cs = cfg_find(&M.cfg, sc->name);
    if (cs && !json_object_get(n, "app"))
        json_object_set_new(n, "app", json_string(cs->app));
    json_object_set_new(sr->nodes, sc->name, n);
    free(sc);
    if (--sr->pending == 0)
        status_done(sr);
}

static void get_status(struct evhttp_request *req)
{
    status_req *sr = calloc(1, sizeof *sr);
    if (!sr) {
        evhttp_send_error(req, 503, "out of memory");
        return;
    }
    sr->req = req;
    /* format=text among whatever else the query holds (a cache buster, a
     * second parameter): the whole query had to be "format=text". */
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq params;   /* set up (and on failure cleared) by evhttp_parse_query_str */
    if (q && evhttp_parse_query_str(q, &params) == 0) {
        const char *f = evhttp_find_header(&params, "format");
        sr->text = f && strcmp(f, "text") == 0;
        evhttp_clear_headers(&params);
    }
    sr->nodes = json_object();
    sr->pending = 1;
    ember_callopts opts = {STATUS_TIMEOUT_MS};
    for (ember_child *c = ember_root_child_next(M.root, NULL); c;
         c = ember_root_child_next(M.root, c)) {
        status_call *sc = calloc(1, sizeof *sc);
        if (!sc) {   /* its entry says so, as for a call that failed */
            json_object_set_new(sr->nodes, ember_child_name(c),
                                json_pack("{s:s, s:b, s:s, s:s}", "name", ember_child_name(c),
                                          "registered", true, "state", "unknown", "error",
                                          "out of memory"));
            continue;
        }
        sc->sr = sr;
        snprintf(sc->name, sizeof sc->name, "%s", ember_child_name(c));
        sr->pending++;
        cluster_Admin_status(ember_child_ref(c), got_status, sc, &opts);
    }
    if (--sr->pending == 0)
        status_done(sr);
}

/* ---- GET / ------------------------------------------------------------- */

static void get_page(struct evhttp_request *req)
{
    struct evbuffer *out = evbuffer_new();
    evbuffer_add(out, status_page_head, strlen(status_page_head));
    /* The servers registered right now, so the page shows the cluster even
     * before its script has fetched /status. */
    evbuffer_add_printf(out, "<ul id=\"initial\">\n");
    for (ember_child *c = ember_root_child_next(M.root, NULL); c;
         c = ember_root_child_next(M.root, c)) {
        const cfg_server *s = server_of(c);
        evbuffer_add_printf(out, "<li class=\"node\" data-name=\"");
        html_escape(out, ember_child_name(c));
        evbuffer_add_printf(out, "\">");
        html_escape(out, ember_child_name(c));
        evbuffer_add_printf(out, " <span class=\"app\">");
        html_escape(out, s ? s->app : "?");
        evbuffer_add_printf(out, "</span></li>\n");
    }
    evbuffer_add_printf(out, "</ul>\n");
    evbuffer_add(out, status_page_tail, strlen(status_page_tail));
    set_headers(req, "text/html; charset=utf-8");
    /* No inline script runs, whatever a value might smuggle in: the page's
     * only script is /status.js. */
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Security-Policy",
                      "default-src 'none'; script-src 'self'; connect-src 'self'; "
                      "style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; "
                      "form-action 'none'; frame-ancestors 'none'");
    evhttp_send_reply(req, HTTP_OK, "OK", out);
    evbuffer_free(out);
}

static void get_script(struct evhttp_request *req)
{
    struct evbuffer *out = evbuffer_new();
    evbuffer_add(out, status_script, strlen(status_script));
    set_headers(req, "text/javascript; charset=utf-8");
    evhttp_send_reply(req, HTTP_OK, "OK", out);
    evbuffer_free(out);
}

/* ---- GET /metrics: the master's own, then every server's ---------------- */

typedef struct metrics_req {
    struct evhttp_request *req;
    int pending;
    int n;
    char *pages[CFG_MAX_SERVERS + 1];
    char names[CFG_MAX_SERVERS + 1][64];
} metrics_req;

typedef struct metrics_call {
    metrics_req *mr;
    int slot;
} metrics_call;

static bool page_of(const metrics_req *mr, const char *name)
{
    for (int i = 1; i < mr->n; i++)
        if (mr->pages[i] && strcmp(mr->names[i], name) == 0)
            return true;
    return false;
}

static void metrics_done(metrics_req *mr)
{
    struct evbuffer *out = evbuffer_new();
    mx_merge(out, (const char *const *)mr->pages, (size_t)mr->n);
    /* Which configured servers answered (0: absent, or did not answer). */
    evbuffer_add_printf(out, "# HELP ember_cluster_server_up 1 when the server is registered "
                             "with the master and answered for its metrics.\n"
                             "# TYPE ember_cluster_server_up gauge\n");
    char labels[320];
    for (int i = 0; i < M.cfg.n_servers; i++) {
        mx_label(labels, sizeof labels, "server", M.cfg.servers[i].name);
        evbuffer_add_printf(out, "ember_cluster_server_up{%s} %d\n", labels,
                            page_of(mr, M.cfg.servers[i].name));
    }
    set_headers(mr->req, "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(mr->req, HTTP_OK, "OK", out);
    evbuffer_free(out);
    for (int i = 0; i < mr->n; i++)
        free(mr->pages[i]);
    free(mr);
}

static void got_metrics(const ember_outcome *o, const char *const *text, void *ud)
{
    metrics_call *mc = ud;
    metrics_req *mr = mc->mr;
    if (o->status == EMBER_OK && text && *text)
        mr->pages[mc->slot] = strdup(*text);
    free(mc);
    if (--mr->pending == 0)
        metrics_done(mr);
}

static void get_metrics(struct evhttp_request *req)
{
    metrics_req *mr = calloc(1, sizeof *mr);
    if (!mr) {
        evhttp_send_error(req, 503, "out of memory");
        return;
    }
    char labels[128];
    mx_labels(labels, sizeof labels, "master", "root");
    ember_metrics_src self = {M.root, NULL, labels};
    mr->req = req;
    mr->pages[0] = mx_render(&self, 1);
    snprintf(mr->names[0], sizeof mr->names[0], "master");
    mr->n = 1;
    mr->pending = 1;
    ember_callopts opts = {STATUS_TIMEOUT_MS};
    for (ember_child *c = ember_root_child_next(M.root, NULL); c && mr->n <= CFG_MAX_SERVERS;
         c = ember_root_child_next(M.root, c)) {
        if (!server_of(c))
            continue;   /* only the configured servers' pages */
        metrics_call *mc = calloc(1, sizeof *mc);
        if (!mc)
            continue;   /* its page is missing: the server shows as down */
        mc->mr = mr;
        mc->slot = mr->n++;
        snprintf(mr->names[mc->slot], sizeof mr->names[0], "%s", ember_child_name(c));
        mr->pending++;
        cluster_Admin_metrics(ember_child_ref(c), got_metrics, mc, &opts);
    }
    if (--mr->pending == 0)
        metrics_done(mr);
}

/* ---- POST /stop: tier by tier, then wait for the processes ------------- */

static void stop_tier(void);

static void master_shut(ember_root *r, void *ud)
{
    (void)r;
    (void)ud;
    mlog("stopped (exit %d)", M.exit_code);
    event_base_loopexit(M.base, NULL);
}

static void shut_now(void)
{
    if (M.exit_grace) {
        event_free(M.exit_grace);
        M.exit_grace = NULL;
        ember_root_shutdown(M.root, master_shut, NULL);
    }
}

static void stop_client_closed(struct evhttp_connection *evcon, void *ud)
{
    (void)evcon;
    (void)ud;
    shut_now();
}

static void exit_grace_over(evutil_socket_t fd, short what, void *ud)
{
    (void)fd;
    (void)what;
    (void)ud;
    shut_now();
}

/* The stop answer is written: exit once the client has read it and closed
 * its connection (at most 2 s), so that our exit cannot cut the connection
 * under an answer still on its way. */
static void stop_reply_sent(struct evhttp_request *req, void *ud)
{
    (void)ud;
    struct timeval tv = {2, 0};
    M.exit_grace = evtimer_new(M.base, exit_grace_over, NULL);
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (!M.exit_grace) {
        ember_root_shutdown(M.root, master_shut, NULL);
        return;
    }
    evtimer_add(M.exit_grace, &tv);
    if (evcon)
        evhttp_connection_set_closecb(evcon, stop_client_closed, NULL);
}

/* Once, when the last process is gone: a SIGCHLD delivered again after
 * that (each child's exit signals) must not shut the master down under the
 * answer on its way. */
static void finish_stop(void)
{
    if (M.stop_finished)
        return;
    M.stop_finished = true;
    if (M.reap_deadline) {
        event_free(M.reap_deadline);
        M.reap_deadline = NULL;
    }
    json_t *procs = json_array();
    for (int i = 0; i < M.n_procs; i++) {
        proc *p = &M.procs[i];
        json_t *o = json_pack("{s:s, s:i, s:b}", "name", p->name, "pid", (int)p->pid,
                              "running", p->running);
        if (!p->running && WIFEXITED(p->status))
            json_object_set_new(o, "exit", json_integer(WEXITSTATUS(p->status)));
        else if (!p->running && WIFSIGNALED(p->status))
            json_object_set_new(o, "signal", json_integer(WTERMSIG(p->status)));
        json_array_append_new(procs, o);
    }
    json_object_set_new(M.stop_report, "processes", procs);
    json_object_set_new(M.stop_report, "ok", json_boolean(M.exit_code == 0));
    struct evhttp_request *req = M.stop_req;
    M.stop_req = NULL;
    if (req && evhttp_request_get_connection(req)) {
        /* Exit once the answer is out. */
        evhttp_request_set_on_complete_cb(req, stop_reply_sent, NULL);
        send_json(req, HTTP_OK, "OK", M.stop_report);
    } else {
        if (req)   /* the client went away: libevent frees the request */
            send_json(req, HTTP_OK, "OK", M.stop_report);
        ember_root_shutdown(M.root, master_shut, NULL);
    }
}

static void reap_timeout(evutil_socket_t fd, short what, void *ud)
{
    (void)fd;
    (void)what;
    (void)ud;
    for (int i = 0; i < M.n_procs; i++)
        if (M.procs[i].running) {
            mlog("%s (pid %d) did not exit: killing it", M.procs[i].name, (int)M.procs[i].pid);
            kill(M.procs[i].pid, SIGKILL);
        }
    M.exit_code = 1;
}

typedef struct stop_call {
    char name[64];
} stop_call;

static void stopped(const ember_outcome *o, void *ud)
{
    stop_call *sc = ud;
    json_t *ent = json_pack("{s:s, s:s}", "name", sc->name, "outcome", ember_status_name(o->status));
    if (o->status != EMBER_OK) {
        mlog("stop %s: %s", sc->name, o->message ? o->message : ember_status_name(o->status));
        /* A server that went away while stopping has stopped too. */
        if (o->status != EMBER_LOST)
            M.exit_code = 1;
    } else {
        mlog("%s stopped", sc->name);
    }
    json_array_append_new(json_object_get(M.stop_report, "servers"), ent);
    free(sc);
    if (--M.tier_pending == 0) {
        M.tier++;
        stop_tier();
    }
}

static void stop_tier(void)
{
    ember_callopts opts = {STOP_TIMEOUT_MS};
    for (; M.tier < N_TIERS; M.tier++) {
        M.tier_pending = 1;
        for (ember_child *c = ember_root_child_next(M.root, NULL); c;
             c = ember_root_child_next(M.root, c)) {
            const cfg_server *s = server_of(c);
            if (tier_of(s ? s->app : "") != M.tier)
                continue;
            stop_call *sc = calloc(1, sizeof *sc);
            if (!sc) {
                /* Not asked: its process gets SIGTERM after the tiers, and
                 * the report says why (the stop is not ok). */
                mlog("stopping %s: out of memory; SIGTERM after the tiers", ember_child_name(c));
                json_array_append_new(json_object_get(M.stop_report, "servers"),
                                      json_pack("{s:s, s:s}", "name", ember_child_name(c),
                                                "outcome", "out of memory"));
                M.exit_code = 1;
                continue;
            }
            snprintf(sc->name, sizeof sc->name, "%s", ember_child_name(c));
            mlog("stopping %s", sc->name);
            for (int i = 0; i < M.n_procs; i++)
                if (strcmp(M.procs[i].name, sc->name) == 0)
                    M.procs[i].stop_sent = true;
            M.tier_pending++;
            cluster_Admin_stop(ember_child_ref(c), stopped, sc, &opts);
        }
        if (--M.tier_pending > 0)
            return;   /* stopped() goes on with the next tier */
    }
    /* Every registered server answered; processes that never registered
     * are ours to stop too. */
    for (int i = 0; i < M.n_procs; i++)
        if (M.procs[i].running && !M.procs[i].stop_sent) {
            mlog("%s was not asked to stop (it never registered, or out of memory): SIGTERM",
                 M.procs[i].name);
            kill(M.procs[i].pid, SIGTERM);
        }
    if (running_procs() == 0) {
        finish_stop();
        return;
    }
    struct timeval tv = {REAP_TIMEOUT_S, 0};
    M.reap_deadline = evtimer_new(M.base, reap_timeout, NULL);
    evtimer_add(M.reap_deadline, &tv);
}

static void begin_stop(struct evhttp_request *req)
{
    M.stopping = true;
    M.stop_req = req;
    /* The answer waits for the whole stop: every tier's Admin.stop, then the
     * reaping. The admin server's 10 s timeout must not close this one
     * connection under it (the client would get an empty reply). */
    if (req && evhttp_request_get_connection(req))
        evhttp_connection_set_timeout(evhttp_request_get_connection(req),
                                      N_TIERS * STOP_TIMEOUT_MS / 1000 + REAP_TIMEOUT_S + 5);
    M.stop_report = json_pack("{s:[]}", "servers");
    mlog("graceful stop");
    M.tier = 0;
    stop_tier();
}

/* ---- HTTP dispatch ----------------------------------------------------- */

static void on_http(struct evhttp_request *req, void *ud)
{
    (void)ud;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    if (!path)
        path = "/";
    bool get = cmd == EVHTTP_REQ_GET;
    const char *why = NULL;
    int code;
    if (strcmp(path, "/status") == 0 && get) {
        get_status(req);
    } else if (strcmp(path, "/metrics") == 0 && get) {
        get_metrics(req);
    } else if ((strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0) && get) {
        get_page(req);
    } else if (strcmp(path, "/status.js") == 0 && get) {
        get_script(req);
    } else if (strcmp(path, "/stop") == 0 && cmd == EVHTTP_REQ_POST) {
        if ((code = guard_check_change(&M.guard, req, &why))) {
            mlog("POST /stop refused (%d): %s", code, why);
            send_error_json(req, code, why);
        } else if (M.stopping) {
            send_error_json(req, 409, "already stopping");
        } else {
            begin_stop(req);
        }
    } else if (strcmp(path, "/stop") == 0) {
        send_refusal(req, 405, "Method Not Allowed", "POST", "POST /stop is the only method");
    } else if (strcmp(path, "/status") == 0 || strcmp(path, "/metrics") == 0 ||
               strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0 ||
               strcmp(path, "/status.js") == 0) {
        send_refusal(req, 405, "Method Not Allowed", "GET", "only GET is allowed here");
    } else {
        send_refusal(req, HTTP_NOTFOUND, "Not Found", NULL, "no such page");
    }
}

static void on_term(evutil_socket_t fd, short what, void *ud)
{
    (void)fd;
    (void)what;
    (void)ud;
    if (!M.stopping)
        begin_stop(NULL);
}

static void on_join(ember_root *r, ember_child *c, void *ud)
{
    (void)r;
    (void)ud;
    mlog("%s registered from %s", ember_child_name(c), ember_child_peer(c));
    if (!server_of(c))
        mlog("warning: %s is not in %s", ember_child_name(c), M.cfg.path);
}

static void on_leave(ember_root *r, ember_child *c, const char *reason, void *ud)
{
    (void)r;
    (void)ud;
    mlog("%s left: %s", ember_child_name(c), reason ? reason : "");
}

/* ---- main -------------------------------------------------------------- */

static void find_bindir(const char *argv0)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0)
        exe[n] = 0;
    else
        snprintf(exe, sizeof exe, "%s", argv0);
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(exe, sizeof exe, ".");
    snprintf(M.bindir, sizeof M.bindir, "%s", exe);
}

int main(int argc, char **argv)
{
    bool spawn_all = true;
    int opt;
    while ((opt = getopt(argc, argv, "n")) != -1) {
        if (opt == 'n')
            spawn_all = false;
        else
            goto usage;
    }
    if (optind != argc - 1) {
usage:
        fprintf(stderr, "usage: %s [-n] CONFIG.json\n", argv[0]);
        return 2;
    }
    char err[600];
    if (cfg_load(&M.cfg, argv[optind], err, sizeof err)) {
        fprintf(stderr, "master: %s\n", err);
        return 1;
    }
    find_bindir(argv[0]);
    const char *refuse = guard_refuse_listen(M.cfg.master_host, M.cfg.secret, M.cfg.admin_token);
    if (refuse) {
        fprintf(stderr, "master: refusing to listen on %s (not a loopback address): %s. "
                        "Make your own with `openssl rand -hex 32` and put it in %s as "
                        "\"secret\" (and another as \"admin_token\"); see docs/security.md\n",
                M.cfg.master_host, refuse, M.cfg.path);
        return 1;
    }
    M.started_us = now_us();
    ember_set_log(log_writer, NULL);
    signal(SIGPIPE, SIG_IGN);

    M.base = event_base_new();
    ember_root_config rc;
    cfg_root_config(&M.cfg, &rc);
    rc.on_join = on_join;
    rc.on_leave = on_leave;
    M.root = ember_root_new(M.base, &rc);
    char addr[192];
    cfg_master_addr(&M.cfg, addr, sizeof addr);
    if (!M.root || ember_root_listen(M.root, addr)) {
        mlog("cannot listen on %s: %s", addr, ember_last_error());
        return 1;
    }
    if (M.cfg.master_pbport > 0) {
        cfg_pb_addr(M.cfg.master_pbport, addr, sizeof addr);
        if (ember_root_listen_pb(M.root, addr)) {
            mlog("cannot listen (Perspective Broker) on %s: %s", addr, ember_last_error());
            return 1;
        }
    }
    M.http = evhttp_new(M.base);
    struct evhttp_bound_socket *hs =
        M.http ? evhttp_bind_socket_with_handle(M.http, M.cfg.master_host, (ev_uint16_t)M.cfg.web_port)
               : NULL;
    if (!hs) {
        mlog("cannot serve http on %s:%d: %s", M.cfg.master_host, M.cfg.web_port, strerror(errno));
        return 1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(evhttp_bound_socket_get_fd(hs), (struct sockaddr *)&ss, &sl);
    M.web_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    evhttp_set_allowed_methods(M.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
    guard_init(&M.guard, M.cfg.admin_token, M.cfg.master_host, M.web_port);
    wg_serve(M.http, M.base, "master", on_http, NULL);
    printf("master: root %s:%d web http://%s:%d/\n", M.cfg.master_host, ember_root_port(M.root),
           M.cfg.master_host, M.web_port);
    fflush(stdout);

    M.sig[0] = evsignal_new(M.base, SIGCHLD, on_sigchld, NULL);
    M.sig[1] = evsignal_new(M.base, SIGTERM, on_term, NULL);
    M.sig[2] = evsignal_new(M.base, SIGINT, on_term, NULL);
    for (int i = 0; i < 3; i++)
        event_add(M.sig[i], NULL);

    if (spawn_all)
        for (int t = N_TIERS - 1; t >= 0; t--)  /* storage first, clients' entry last */
            for (int i = 0; i < M.cfg.n_servers; i++)
                if (tier_of(M.cfg.servers[i].app) == t)
                    spawn(&M.cfg.servers[i]);

    event_base_dispatch(M.base);

    for (int i = 0; i < 3; i++)
        event_free(M.sig[i]);
    json_decref(M.stop_report);
    evhttp_free(M.http);
    ember_root_free(M.root);
    event_base_free(M.base);
    return M.exit_code;
}
