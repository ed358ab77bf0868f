/*
 * hello — the tutorial: a root and a node on one event_base, calling each
 * other both ways over one connection.
 *
 *   node  --greet("ember")-->  root     (the root serves Greeter)
 *   root  --add(2, 40)----->   node     (the node serves Adder)
 *
 * Build: make (see Makefile: idlc -o build/gen hello.idl, then cc), or the
 *        README's two lines (mkdir -p gen; idlc ..., then cc ... -o hello)
 * Run:   ./build/hello, or ./hello (exits 0 when both calls came back right)
 */
#include <stdio.h>
#include <string.h>

#include <event2/event.h>
#include <ember/ember.h>

#include "hello.h"

struct app {
    struct event_base *base;
    ember_root *root;
    ember_node *node;
    unsigned greetings;  /* the root's counter */
    int done;            /* calls that came back */
    int failed;
};

/* ---- the root serves Greeter ---- */

static void remote_greet(ember_call *call, const char *name, void *ud)
{
    struct app *app = ud;
    if (strcmp(name, "nobody") == 0) {
        hello_Shy shy = { .why = "I only greet somebody" };
        hello_Greeter_greet_fail_Shy(call, &shy);
        return;
    }
    char text[128];
    snprintf(text, sizeof text, "hello, %s", name);
    hello_Greeting g = { .text = text, .count = ++app->greetings };
    hello_Greeter_greet_reply(call, &g);  /* the reply is encoded right away */
}

/* ---- the node serves Adder ---- */

static void remote_add(ember_call *call, uint64_t a, uint64_t b, void *ud)
{
    (void)ud;
    hello_Adder_add_reply(call, a + b);
}

/* ---- outcomes ---- */

static void finish(struct app *app, int ok)
{
    app->failed += !ok;
    if (++app->done == 2)
        event_base_loopexit(app->base, NULL);
}

static void greeted(const ember_outcome *o, const hello_Greeting *g, void *ud)
{
    if (o->status == EMBER_OK)
        printf("node: the root says \"%s\" (greeting #%u)\n", g->text, g->count);
    else
        printf("node: greet failed: %s\n", o->message);
    finish(ud, o->status == EMBER_OK);
}

static void added(const ember_outcome *o, const uint64_t *sum, void *ud)
{
    if (o->status == EMBER_OK)
        printf("root: child says 2 + 40 = %llu\n", (unsigned long long)*sum);
    else
        printf("root: add failed: %s\n", o->message);
    finish(ud, o->status == EMBER_OK && *sum == 42);
}

/* A child registered: call the service it exports. */
static void on_join(ember_root *root, ember_child *child, void *ud)
{
    (void)root;
    printf("root: %s joined\n", ember_child_name(child));
    hello_Adder_add(ember_child_ref(child), 2, 40, added, ud, NULL);
}

/* The node registered: call the root's service. */
static void on_state(ember_node *node, ember_node_state st, const char *why,
                     void *ud)
{
    if (st == EMBER_NODE_REGISTERED)
        hello_Greeter_greet(ember_node_root(node), "ember", greeted, ud, NULL);
    else if (st == EMBER_NODE_LOST)
        printf("node: lost (%s), retrying\n", why ? why : "?");
}

static void deadline(evutil_socket_t fd, short what, void *ud)
{
    (void)fd;
    (void)what;
    struct app *app = ud;
    fprintf(stderr, "hello: no answer within 10 s\n");
    app->failed++;
    event_base_loopexit(app->base, NULL);
}

int main(void)
{
    struct app app = { 0 };
    app.base = event_base_new();

    /* The root: listen on a free port, serve Greeter, watch children join. */
    ember_root_config rc;
    ember_root_config_default(&rc);
    rc.on_join = on_join;
    rc.ud = &app;
    app.root = ember_root_new(app.base, &rc);
    static const hello_Greeter_handlers greeter = { .remote_greet = remote_greet };
    hello_Greeter_export(ember_root_exports(app.root), &greeter, &app);
    if (ember_root_listen(app.root, "127.0.0.1:0") < 0) {
        fprintf(stderr, "hello: %s\n", ember_last_error());
        return 1;
    }

    /* The node: serve Adder, connect to the root by its port. */
    ember_node_config nc;
    ember_node_config_default(&nc);
    nc.on_state = on_state;
    nc.ud = &app;
    app.node = ember_node_new(app.base, "worker-1", &nc);
    static const hello_Adder_handlers adder = { .remote_add = remote_add };
    hello_Adder_export(ember_node_exports(app.node), &adder, NULL);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ember_root_port(app.root));
    ember_node_connect(app.node, addr);

    struct event *timer = evtimer_new(app.base, deadline, &app);
    evtimer_add(timer, &(struct timeval){ .tv_sec = 10 });
    event_base_dispatch(app.base);

    event_free(timer);
    ember_node_free(app.node);
    ember_root_free(app.root);
    event_base_free(app.base);
    if (app.failed || app.done != 2) {
        fprintf(stderr, "hello: FAILED\n");
        return 1;
    }
    printf("hello: both calls came back\n");
    return 0;
}
