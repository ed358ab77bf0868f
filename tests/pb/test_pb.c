/*
 * test_pb.c — ember and unmodified Twisted Perspective Broker peers, in
 * one cluster (docs/protocol-pb.md). Each case runs the event loop until
 * the Python peer (tests/pb/peer.py, real Twisted) has exited and the
 * ember side has seen what it must, or a deadline passes.
 *
 *   twisted_node   a Firefly-style Twisted node registers with an ember
 *                  root (takeProxy); its callTarget(command, *args) runs the
 *                  value matrix, errors and type errors against the root's
 *                  typed exports; the root calls it back through the
 *                  generated stubs (callChild); every call ends once; the
 *                  child joins and leaves once.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include <ember/ember.h>

#include "../common/loop.h"
#include "pbtest.h"

static int failed;
#define CHECK(c)                                                            \
    do {                                                                    \
        if (!(c)) {                                                         \
            fprintf(stderr, "test-pb: %s:%d: check failed: %s\n", __FILE__, \
                    __LINE__, #c);                                          \
            failed++;                                                       \
        }                                                                   \
    } while (0)

static const char *python = "/usr/bin/python3";
static const char *peer_py = "tests/pb/peer.py";

/* ---- a Python peer as a child process, its stdout read by the loop ---- */

typedef struct peer {
    pid_t pid;
    int fd;
    struct event *ev;
    char out[8192];
    size_t len;
    bool eof;
    int status;
} peer;

static void on_peer_out(evutil_socket_t fd, short what, void *arg)
{
    peer *p = arg;
    (void)what;
    ssize_t n = read(fd, p->out + p->len, sizeof p->out - 1 - p->len);
    if (n > 0) {
        p->len += (size_t)n;
        p->out[p->len] = 0;
        return;
    }
    if (n < 0 && errno == EAGAIN)
        return;
    p->eof = true;
    event_del(p->ev);
    waitpid(p->pid, &p->status, 0);
}

static int peer_start(peer *p, struct event_base *base, const char *mode, int port,
                      const char *name)
{
    int fds[2];
    char portbuf[16];
    memset(p, 0, sizeof *p);
    if (pipe(fds))
        return -1;
    snprintf(portbuf, sizeof portbuf, "%d", port);
    p->pid = fork();
    if (p->pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl(python, python, peer_py, mode, portbuf, name, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    p->fd = fds[0];
    fcntl(p->fd, F_SETFL, O_NONBLOCK);
    p->ev = event_new(base, p->fd, EV_READ | EV_PERSIST, on_peer_out, p);
    event_add(p->ev, NULL);
    return p->pid > 0 ? 0 : -1;
}

static bool peer_ok(const peer *p)
{
    return p->eof && WIFEXITED(p->status) && WEXITSTATUS(p->status) == 0 &&
           strstr(p->out, "\"ok\": true") != NULL;
}

static void peer_end(peer *p)
{
    if (!p->eof) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, &p->status, 0);
    }
    if (p->len)
        fprintf(stderr, "test-pb: peer said: %s", p->out);
    event_free(p->ev);
    close(p->fd);
}

/* ---- the root's exports ---- */

typedef struct state {
    ember_root *root;
    int joins, leaves, notes;
    bool done_note, caller_ok;
    /* callChild outcomes, each counted once */
    int outcomes;
    bool hello_ok, twice_ok, boom_ok, blob_ok;
} state;

static void r_echo_s(ember_call *c, const char *s, void *ud)
{
    (void)ud;
    pbt_Root_echo_s_reply(c, s);
}
static void r_echo_b(ember_call *c, ember_bytes b, void *ud)
{
    (void)ud;
    pbt_Root_echo_b_reply(c, b);
}
static void r_add(ember_call *c, int64_t a, int64_t b, void *ud)
{
    (void)ud;
    pbt_Root_add_reply(c, (int64_t)((uint64_t)a + (uint64_t)b));
}
static void r_echo_u(ember_call *c, uint64_t v, void *ud)
{
    (void)ud;
    pbt_Root_echo_u_reply(c, v);
}
static void r_echo_f(ember_call *c, double v, void *ud)
{
    (void)ud;
    pbt_Root_echo_f_reply(c, v);
}
static void r_move(ember_call *c, const pbt_Pos *p, int32_t dx, void *ud)
{
    (void)ud;
    pbt_Pos q = *p;
    q.x += dx;
    pbt_Root_move_reply(c, &q);
}
static void r_split(ember_call *c, const char *s, void *ud)
{
    static char copy[256];
    const char *items[16];
    uint32_t n = 0;
    (void)ud;
    snprintf(copy, sizeof copy, "%s", s);
    for (char *t = strtok(copy, " "); t && n < 16; t = strtok(NULL, " "))
        items[n++] = t;
    pbt_list_string l = {items, n};
    pbt_Root_split_reply(c, &l);
}
static void r_count(ember_call *c, const pbt_list_string *w, void *ud)
{
    const char *keys[16];
    int64_t vals[16];
    uint32_t n = 0;
    (void)ud;
    for (uint32_t i = 0; i < w->n; i++) {
        uint32_t k = 0;
        while (k < n && strcmp(keys[k], w->items[i]) != 0)
            k++;
        if (k == n && n < 16) {
            keys[n] = w->items[i];
            vals[n++] = 0;
        }
        if (k < n)
            vals[k]++;
    }
    pbt_map_string_i64 m = {keys, vals, n};
    pbt_Root_count_reply(c, &m);
}
static void r_fail(ember_call *c, const char *why, void *ud)
{
    (void)ud;
    ember_call_fail(c, "%s", why);
}
static void r_note(ember_call *c, const char *s, void *ud)
{
    state *st = ud;
    (void)c;
    st->notes++;
    if (strcmp(s, "done") == 0)
        st->done_note = true;
}
static void r_flip(ember_call *c, bool b, void *ud)
{
    (void)ud;
    pbt_Root_flip_reply(c, !b);
}
static void r_opt(ember_call *c, int32_t a, const int32_t *b, void *ud)
{
    (void)ud;
    pbt_Root_opt_reply(c, a + (b ? *b : 100));
}
static void r_echo_i8(ember_call *c, int8_t v, void *ud)
{
    (void)ud;
    pbt_Root_echo_i8_reply(c, v);
}
static void r_children(ember_call *c, void *ud)
{
    state *st = ud;
    ember_child *ch = ember_call_child(c);
    st->caller_ok = ch && strcmp(ember_child_name(ch), "pynode") == 0;
    pbt_Root_children_reply(c, (uint32_t)ember_root_child_count(st->root));
}
static void a_status(ember_call *c, const char *who, void *ud)
{
    char buf[128];
    (void)ud;
    snprintf(buf, sizeof buf, "ok %s", who);
    pbt_Admin_status_reply(c, buf);
}

static const pbt_Root_handlers root_h = {
    r_echo_s, r_echo_b, r_add, r_echo_u, r_echo_f, r_move, r_split, r_count,
    r_fail, r_note, r_flip, r_opt, r_echo_i8, r_children,
};
static const pbt_Admin_handlers admin_h = {a_status, NULL};

/* ---- the root's calls to its PB child ---- */

static void got_hello(const ember_outcome *o, const char *const *ret, void *ud)
{
    state *st = ud;
    st->outcomes++;
    st->hello_ok = o->status == EMBER_OK && strcmp(*ret, "hello root") == 0;
}
static void got_twice(const ember_outcome *o, const int64_t *ret, void *ud)
{
    state *st = ud;
    st->outcomes++;
    st->twice_ok = o->status == EMBER_OK && *ret == 42;
}
static void got_boom(const ember_outcome *o, void *ud)
{
    state *st = ud;
    st->outcomes++;
    st->boom_ok = o->status == EMBER_FAILED &&
                  strcmp(o->message, "builtins.ValueError: boom!") == 0;
    if (!st->boom_ok)
        fprintf(stderr, "test-pb: boom: %s %s\n", ember_status_name(o->status),
                o->message);
}
static void got_blob(const ember_outcome *o, const ember_bytes *ret, void *ud)
{
    state *st = ud;
    st->outcomes++;
    st->blob_ok = o->status == EMBER_OK && ret->len == 1000 && ret->data[999] == 'x';
}

static void on_join(ember_root *r, ember_child *ch, void *ud)
{
    state *st = ud;
    (void)r;
    st->joins++;
    ember_ref *to = ember_child_ref(ch);
    pbt_Child_hello(to, "root", got_hello, st, NULL);
    pbt_Child_twice(to, 21, got_twice, st, NULL);
    pbt_Child_boom(to, got_boom, st, NULL);
    pbt_Child_blob(to, 1000, got_blob, st, NULL);
}

static void on_leave(ember_root *r, ember_child *ch, const char *why, void *ud)
{
    state *st = ud;
    (void)r;
    (void)ch;
    (void)why;
    st->leaves++;
}

typedef struct wait_for {
    peer *p;
    state *st;
} wait_for;

static bool peer_gone(void *ud)
{
    wait_for *w = ud;
    return w->p->eof && w->st->leaves == w->st->joins;
}

static ember_root *new_root(struct event_base *base, state *st, int *port)
{
    ember_root_config cfg;
    ember_root_config_default(&cfg);
    cfg.on_join = on_join;
    cfg.on_leave = on_leave;
    cfg.ud = st;
    ember_root *r = ember_root_new(base, &cfg);
    if (!r || pbt_Root_export(ember_root_exports(r), &root_h, st) ||
        pbt_Admin_export(ember_root_exports(r), &admin_h, st) ||
        ember_root_listen_pb(r, "127.0.0.1:0"))
        return NULL;
    *port = ember_root_listener_port(r, ember_root_listener_count(r) - 1);
    st->root = r;
    return r;
}

static void twisted_node(void)
{
    struct event_base *base = event_base_new();
    state st;
    memset(&st, 0, sizeof st);
    int port = -1;
    ember_root *r = new_root(base, &st, &port);
    CHECK(r && port > 0);
    peer p;
    CHECK(peer_start(&p, base, "node", port, "pynode") == 0);
    wait_for w = {&p, &st};
    CHECK(run_until(base, peer_gone, &w, 40000));
    CHECK(peer_ok(&p));
    CHECK(st.joins == 1 && st.leaves == 1);
    CHECK(st.outcomes == 4);
    CHECK(st.hello_ok && st.twice_ok && st.boom_ok && st.blob_ok);
    CHECK(st.done_note && st.notes == 2);
    CHECK(st.caller_ok);
    CHECK(ember_root_child_count(r) == 0);
    peer_end(&p);
    ember_root_free(r);
    event_base_free(base);
    printf("test-pb: twisted node -> ember root: %s\n", failed ? "FAILED" : "ok");
}

int main(int argc, char **argv)
{
    if (argc > 1)
        peer_py = argv[1];
    if (getenv("PYTHON"))
        python = getenv("PYTHON");
    signal(SIGPIPE, SIG_IGN);
    twisted_node();
    printf("test-pb: %s\n", failed ? "FAILED" : "all passed");
    return failed ? 1 : 0;
}
