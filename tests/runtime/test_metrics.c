/*
 * test_metrics.c — ember_metrics_render: the histogram's buckets, the
 * series a root and a node render after real calls, reasons of closed
 * connections, reconnects, and the renderer's argument checks.
 */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "call-internal.h"
#include "metrics-internal.h"
#include "wire-internal.h"

enum { SVC = 0x5e7e1234, M_OK = 10, M_FAIL = 11, M_HOLD = 12 };

static struct {
    struct event_base *base;
    ember_root *root;
    ember_node *node;
    ember_call *held;
    int done;
    char text[1 << 20];
} T;

static void h_ok(ember_call *c, uint32_t sid, uint32_t mid, const void *p, size_t len,
                  void *ud)
{
    (void)sid, (void)mid, (void)ud;
    ember_call_reply_raw(c, p, len);
}

static void h_fail(ember_call *c, uint32_t sid, uint32_t mid, const void *p, size_t len,
                    void *ud)
{
    (void)sid, (void)mid, (void)p, (void)len, (void)ud;
    ember_call_fail(c, "no");
}

static void h_hold(ember_call *c, uint32_t sid, uint32_t mid, const void *p, size_t len,
                    void *ud)
{
    (void)sid, (void)mid, (void)p, (void)len, (void)ud;
    T.held = c;
}

static void on_done(const ember_outcome *o, const void *p, size_t len, void *ud)
{
    (void)o, (void)p, (void)len, (void)ud;
    T.done++;
}

static bool registered(void *ud)
{
    (void)ud;
    return ember_node_state_get(T.node) == EMBER_NODE_REGISTERED &&
           ember_root_child_count(T.root) == 1;
}

static bool done_is(void *ud)
{
    return T.done == *(int *)ud;
}

static bool held(void *ud)
{
    (void)ud;
    return T.held != NULL;
}

static void setup(void)
{
    memset(&T, 0, sizeof T);
    T.base = event_base_new();
    T.root = ember_root_new(T.base, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(T.root);
    CU_ASSERT_EQUAL_FATAL(ember_root_listen(T.root, "127.0.0.1:0"), 0);
    ember_exports *ex = ember_root_exports(T.root);
    ember_exports_add_raw(ex, SVC, M_OK, h_ok, NULL);
    ember_exports_add_raw(ex, SVC, M_FAIL, h_fail, NULL);
    ember_exports_add_raw(ex, SVC, M_HOLD, h_hold, NULL);
    ember_node_config nc;
    ember_node_config_default(&nc);
    nc.backoff_min_ms = nc.backoff_max_ms = 10;
    T.node = ember_node_new(T.base, "n0", &nc);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ember_root_port(T.root));
    CU_ASSERT_EQUAL_FATAL(ember_node_connect(T.node, addr), 0);
    CU_ASSERT_TRUE_FATAL(run_until(T.base, registered, NULL, 3000));
}

static void teardown(void)
{
    ember_node_free(T.node);
    ember_root_free(T.root);
    event_base_free(T.base);
}

static const char *render(ember_root *r, ember_node *n, const char *labels)
{
    ember_metrics_src s = {r, n, labels};
    long len = ember_metrics_render(&s, 1, T.text, sizeof T.text);
    CU_ASSERT_TRUE(len > 0 && (size_t)len < sizeof T.text);
    CU_ASSERT_EQUAL((size_t)len, strlen(T.text));
    return T.text;
}

/* The value of the series line that starts with `series ` (-1: none). */
static long long value(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return atoll(p + n + 1);
    return -1;
}

#define RAW_L "service=\"raw\",service_id=\"5e7e1234\",method=\"raw\","
#define OK_L RAW_L "id=\"10\""
#define FAIL_L RAW_L "id=\"11\""
#define HOLD_L RAW_L "id=\"12\""

static void t_hist_buckets(void)
{
    uint32_t last = 0;
    for (uint64_t us = 0; us < (1u << 20); us += 1 + us / 64) {
        uint32_t i = ember_hist_index(us);
        CU_ASSERT_TRUE(i >= last);
        last = i;
        CU_ASSERT_TRUE(us < ember_hist_bound(i));
        if (i > 0)
            CU_ASSERT_TRUE(us >= ember_hist_bound(i - 1));
    }
    CU_ASSERT_EQUAL(ember_hist_index(0), 0);
    CU_ASSERT_EQUAL(ember_hist_index(3), 3);
    CU_ASSERT_EQUAL(ember_hist_bound(3), 4);
    CU_ASSERT_EQUAL(ember_hist_index(5), 4);
    CU_ASSERT_EQUAL(ember_hist_bound(4), 6);
    CU_ASSERT_EQUAL(ember_hist_index(UINT64_MAX), EMBER_HIST_BUCKETS - 1);
    CU_ASSERT_EQUAL(ember_hist_index((uint64_t)1 << EMBER_HIST_MAX_LOG2),
                    EMBER_HIST_BUCKETS - 1);
    CU_ASSERT_EQUAL(ember_hist_bound(EMBER_HIST_BUCKETS - 2),
                    (uint64_t)1 << EMBER_HIST_MAX_LOG2);
}

static void t_calls_and_gauges(void)
{
    setup();
    ember_ref *up = ember_node_root(T.node);
    for (int i = 0; i < 3; i++)
        ember_call_raw(up, SVC, M_OK, "x", 1, on_done, NULL, NULL);
    ember_call_raw(up, SVC, M_FAIL, NULL, 0, on_done, NULL, NULL);
    int want = 4;
    CU_ASSERT_TRUE(run_until(T.base, done_is, &want, 3000));
    ember_call_raw(up, SVC, M_HOLD, NULL, 0, on_done, NULL, NULL);
    CU_ASSERT_TRUE_FATAL(run_until(T.base, held, NULL, 3000));

    const char *t = render(T.root, NULL, "server=\"r\"");
    CU_ASSERT_EQUAL(value(t, "ember_calls_total{server=\"r\"," OK_L "}"), 3);
    CU_ASSERT_EQUAL(value(t, "ember_calls_total{server=\"r\"," FAIL_L "}"), 1);
    CU_ASSERT_EQUAL(value(t, "ember_calls_total{server=\"r\"," HOLD_L "}"), 1);
    CU_ASSERT_EQUAL(value(t, "ember_call_failures_total{server=\"r\"," FAIL_L
                          ",status=\"failed\"}"), 1);
    CU_ASSERT_EQUAL(value(t, "ember_call_failures_total{server=\"r\"," OK_L
                          ",status=\"failed\"}"), 0);
    CU_ASSERT_EQUAL(value(t, "ember_call_duration_seconds_count{server=\"r\"," OK_L "}"), 3);
    CU_ASSERT_EQUAL(value(t, "ember_call_duration_seconds_bucket{server=\"r\"," OK_L
                          ",le=\"+Inf\"}"), 3);
    /* Still in flight: counted on arrival, not yet timed. */
    CU_ASSERT_EQUAL(value(t, "ember_call_duration_seconds_count{server=\"r\"," HOLD_L "}"), 0);
    CU_ASSERT_EQUAL(value(t, "ember_calls_in_flight{server=\"r\",direction=\"in\"}"), 1);
    CU_ASSERT_EQUAL(value(t, "ember_calls_in_flight{server=\"r\",direction=\"out\"}"), 0);
    CU_ASSERT_EQUAL(value(t, "ember_connections{server=\"r\"}"), 1);
    CU_ASSERT_EQUAL(value(t, "ember_children{server=\"r\"}"), 1);
    CU_ASSERT_EQUAL(value(t, "ember_reconnects_total{server=\"r\"}"), -1); /* node only */
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "# TYPE ember_call_duration_seconds histogram\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "# TYPE ember_calls_total counter\n"));

    /* Buckets are cumulative and end with the count. */
    long long prev = 0;
    int nb = 0;
    for (const char *p = strstr(t, "ember_call_duration_seconds_bucket{server=\"r\"," OK_L);
         p && strncmp(p, "ember_call_duration_seconds_bucket{server=\"r\"," OK_L,
                      strlen("ember_call_duration_seconds_bucket{server=\"r\"," OK_L)) == 0;
         p = strchr(p, '\n') + 1, nb++) {
        long long v = atoll(strchr(p, ' ') + 1);
        CU_ASSERT_TRUE(v >= prev);
        prev = v;
    }
    CU_ASSERT_EQUAL(nb, EMBER_HIST_BUCKETS);
    CU_ASSERT_EQUAL(prev, 3);

    t = render(NULL, T.node, NULL);
    CU_ASSERT_EQUAL(value(t, "ember_calls_in_flight{direction=\"out\"}"), 1);
    CU_ASSERT_EQUAL(value(t, "ember_reconnects_total"), 0);
    CU_ASSERT_EQUAL(value(t, "ember_children"), -1);

    ember_call_reply_raw(T.held, NULL, 0);
    want = 5;
    CU_ASSERT_TRUE(run_until(T.base, done_is, &want, 3000));
    t = render(T.root, NULL, NULL);
    CU_ASSERT_EQUAL(value(t, "ember_call_duration_seconds_count{" HOLD_L "}"), 1);
    CU_ASSERT_EQUAL(value(t, "ember_calls_in_flight{direction=\"in\"}"), 0);

    /* The text format's numbers have a '.' whatever LC_NUMERIC the
     * application set (de_DE writes 1,5; the Makefile builds that locale
     * under LOCPATH): the same page as in the C locale. */
    static char in_c[sizeof T.text];
    snprintf(in_c, sizeof in_c, "%s", t);
    CU_ASSERT_PTR_NOT_NULL(strstr(in_c, "le=\"1e-06\"}"));
    CU_ASSERT_PTR_NOT_NULL(strstr(in_c, "le=\"0.000384\"}"));
    if (!setlocale(LC_NUMERIC, "de_DE.UTF-8")) {
        CU_FAIL("no de_DE.UTF-8 locale: run through make (LOCPATH)");
    } else {
        char b[16];
        snprintf(b, sizeof b, "%.1f", 1.5);
        CU_ASSERT_STRING_EQUAL(b, "1,5"); /* the locale is in force */
        t = render(T.root, NULL, NULL);
        CU_ASSERT_STRING_EQUAL(t, in_c);
        setlocale(LC_NUMERIC, "C");
    }
    teardown();
}

static void t_two_sources_one_family_each(void)
{
    setup();
    ember_metrics_src s[2] = {{T.root, NULL, "endpoint=\"root\""},
                              {NULL, T.node, "endpoint=\"node\""}};
    long len = ember_metrics_render(s, 2, T.text, sizeof T.text);
    CU_ASSERT_TRUE_FATAL(len > 0);
    int n = 0;
    for (const char *p = T.text; (p = strstr(p, "# TYPE ember_connections gauge")); p++)
        n++;
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(value(T.text, "ember_connections{endpoint=\"root\"}"), 1);
    CU_ASSERT_EQUAL(value(T.text, "ember_connections{endpoint=\"node\"}"), 1);
    /* A small buffer: cut, NUL-terminated, and the full length returned. */
    char small[32];
    CU_ASSERT_EQUAL(ember_metrics_render(s, 2, small, sizeof small), len);
    CU_ASSERT_EQUAL(strlen(small), sizeof small - 1);
    CU_ASSERT_EQUAL(ember_metrics_render(s, 2, NULL, 0), len);
    teardown();
}

static void t_bad_arguments(void)
{
    setup();
    char b[64];
    ember_metrics_src both = {T.root, T.node, NULL};
    ember_metrics_src none = {NULL, NULL, NULL};
    CU_ASSERT_EQUAL(ember_metrics_render(&both, 1, b, sizeof b), -1);
    CU_ASSERT_EQUAL(ember_metrics_render(&none, 1, b, sizeof b), -1);
    const char *bad[] = {"server", "server=db", "server=\"db", "1x=\"a\"",
                         "a=\"b\",", "a=\"b\"}", "a=\"\\x\"", "a=\"b\"c=\"d\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ember_metrics_src s = {T.root, NULL, bad[i]};
        CU_ASSERT_EQUAL(ember_metrics_render(&s, 1, b, sizeof b), -1);
    }
    ember_metrics_src ok = {T.root, NULL, "a=\"x \\\" \\\\ \\n\",b_2=\"\""};
    CU_ASSERT_TRUE(ember_metrics_render(&ok, 1, b, sizeof b) > 0);
    teardown();
}

static bool reregistered(void *ud)
{
    (void)ud;
    const char *t = render(NULL, T.node, NULL);
    return ember_node_state_get(T.node) == EMBER_NODE_REGISTERED &&
           value(t, "ember_reconnects_total") == 1;
}

static void t_closes_and_reconnects(void)
{
    setup();
    ember_root_drop(T.root, ember_root_child_by_name(T.root, "n0"), "kicked");
    CU_ASSERT_TRUE(run_until(T.base, reregistered, NULL, 3000));
    const char *t = render(T.root, NULL, NULL);
    CU_ASSERT_EQUAL(value(t, "ember_connections_closed_total{reason=\"dropped\"}"), 1);
    CU_ASSERT_EQUAL(value(t, "ember_connections_closed_total{reason=\"protocol\"}"), 0);
    /* The node heard the root's GOODBYE, or only its close. */
    t = render(NULL, T.node, NULL);
    CU_ASSERT_EQUAL(value(t, "ember_connections_closed_total{reason=\"goodbye\"}") +
                    value(t, "ember_connections_closed_total{reason=\"peer_closed\"}"), 1);
    CU_ASSERT_EQUAL(value(t, "ember_connections_closed_total{reason=\"error\"}"), 0);
    teardown();
}

static void t_close_reasons(void)
{
    CU_ASSERT_EQUAL(ember_metrics_close_reason(EMBER_LOST, "peer silent for 6000 ms (heartbeat)"),
                    EMBER_CLOSE_HEARTBEAT);
    CU_ASSERT_EQUAL(ember_metrics_close_reason(EMBER_PROTOCOL, "peer exceeded max_outstanding"),
                    EMBER_CLOSE_LIMIT);
    CU_ASSERT_EQUAL(ember_metrics_close_reason(EMBER_PROTOCOL, "bad frame: unknown frame kind"),
                    EMBER_CLOSE_PROTOCOL);
    CU_ASSERT_EQUAL(ember_metrics_close_reason(EMBER_SHUTDOWN, "whatever"), EMBER_CLOSE_SHUTDOWN);
    CU_ASSERT_EQUAL(ember_metrics_close_reason(EMBER_LOST, "Connection reset by peer"),
                    EMBER_CLOSE_ERROR);
    CU_ASSERT_EQUAL(ember_metrics_close_reason(EMBER_LOST, "handshake timed out"),
                    EMBER_CLOSE_HANDSHAKE);
}

/* ---- connections closed for breaking a limit ---- */

static struct {
    ember_root *root;
    long long want;
} L;

static long long closed_by(ember_root *r, const char *reason)
{
    char series[96];
    snprintf(series, sizeof series, "ember_connections_closed_total{reason=\"%s\"}",
             reason);
    return value(render(r, NULL, NULL), series);
}

static bool limit_closes_are(void *ud)
{
    (void)ud;
    return closed_by(L.root, "limit") >= L.want;
}

/* A root of its own (limits cfg) listening on ember's wire or on PB. */
static ember_root *limits_root(const ember_root_config *cfg, bool pb, int *port)
{
    ember_root *r = ember_root_new(T.base, cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL_FATAL(pb ? ember_root_listen_pb(r, "127.0.0.1:0")
                             : ember_root_listen(r, "127.0.0.1:0"), 0);
    *port = ember_root_listener_port(r, 0);
    CU_ASSERT_TRUE_FATAL(*port > 0);
    return r;
}

static void t_limit_closes(void)
{
    memset(&T, 0, sizeof T);
    T.base = event_base_new();
    ember_root_config cfg;
    int port, fd[3];

    /* A frame header over the limit before registration, then over
     * max_frame on the PB wire (a banana string of 1000 bytes). */
    ember_root_config_default(&cfg);
    cfg.limits.max_frame = 256;
    L.root = limits_root(&cfg, false, &port);
    static const uint8_t big[] = {0xff, 0xff, 0xff, 0x7f, EMBER_FR_PING};
    fd[0] = loopback_connect(port);
    CU_ASSERT_EQUAL(write(fd[0], big, sizeof big), (ssize_t)sizeof big);
    L.want = 1;
    CU_ASSERT_TRUE(run_until(T.base, limit_closes_are, NULL, 3000));
    CU_ASSERT_EQUAL(closed_by(L.root, "protocol"), 0);
    close(fd[0]);
    ember_root_free(L.root);

    L.root = limits_root(&cfg, true, &port);
    static const uint8_t pb_big[] = {0x68, 0x07, 0x82}; /* string, 1000 bytes */
    fd[0] = loopback_connect(port);
    CU_ASSERT_EQUAL(write(fd[0], pb_big, sizeof pb_big), (ssize_t)sizeof pb_big);
    CU_ASSERT_TRUE(run_until(T.base, limit_closes_are, NULL, 3000));
    CU_ASSERT_EQUAL(closed_by(L.root, "protocol"), 0);
    close(fd[0]);
    ember_root_free(L.root);

    /* Unregistered peers over unregistered_bytes: a byte takes a block. */
    ember_root_config_default(&cfg);
    cfg.unregistered_bytes = 1;
    L.root = limits_root(&cfg, false, &port);
    fd[0] = loopback_connect(port);
    CU_ASSERT_EQUAL(write(fd[0], "x", 1), 1);
    CU_ASSERT_TRUE(run_until(T.base, limit_closes_are, NULL, 3000));
    CU_ASSERT_EQUAL(closed_by(L.root, "error"), 0);
    close(fd[0]);
    ember_root_free(L.root);

    /* ...and over max_unregistered: the oldest goes. */
    ember_root_config_default(&cfg);
    cfg.max_unregistered = 2;
    L.root = limits_root(&cfg, false, &port);
    for (int i = 0; i < 3; i++)
        fd[i] = loopback_connect(port);
    CU_ASSERT_TRUE(run_until(T.base, limit_closes_are, NULL, 3000));
    CU_ASSERT_EQUAL(closed_by(L.root, "error"), 0);
    for (int i = 0; i < 3; i++)
        close(fd[i]);
    ember_root_free(L.root);
    event_base_free(T.base);
}

/* ---- calls refused after they were counted ---- */

/* A hand-rolled peer registered as name (no secret): it sends raw frames. */
static int raw_peer(int port, const char *name)
{
    int fd = loopback_connect(port);
    uint8_t buf[64];
    ember_enc e;
    ember_enc_init_fixed(&e, buf, sizeof buf);
    e.p += 4;
    *e.p++ = EMBER_FR_REGISTER;
    ember_enc_uint(&e, 1, EMBER_PROTOCOL_VERSION);
    ember_enc_string(&e, 2, name);
    uint32_t len = (uint32_t)ember_enc_len(&e) - 4;
    memcpy(buf, &len, 4); /* little endian host assumed by the test */
    CU_ASSERT_EQUAL(write(fd, buf, len + 4), (ssize_t)(len + 4));
    return fd;
}

/* CALL(SVC, call id, object 0, method) with no arguments. */
static void raw_call(int fd, uint8_t call_id, uint8_t method)
{
    uint8_t f[] = {8, 0, 0, 0, EMBER_FR_CALL, 0x34, 0x12, 0x7e, 0x5e, call_id, 0, method};
    CU_ASSERT_EQUAL(write(fd, f, sizeof f), (ssize_t)sizeof f);
}

static bool two_children(void *ud)
{
    (void)ud;
    return ember_root_child_count(T.root) == 2;
}

static const char *calls_series[] = {
    "ember_calls_total{" OK_L "}", "ember_calls_total{" HOLD_L "}",
};

static bool calls_are(void *ud)
{
    const long long *want = ud;
    const char *t = render(T.root, NULL, NULL);
    return value(t, calls_series[want[0]]) == want[1];
}

static bool fail_call_alloc;

static void *failing_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud, (void)osize;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    if (fail_call_alloc && !ptr && nsize == sizeof(ember_call))
        return NULL;
    return realloc(ptr, nsize);
}

static void t_refused_calls_end_failed(void)
{
    setup();
    int fd = raw_peer(ember_root_port(T.root), "raw");
    CU_ASSERT_TRUE_FATAL(run_until(T.base, two_children, NULL, 3000));

    /* No call object to be had: the call is refused "out of memory". */
    ember_set_allocator(failing_alloc, NULL);
    fail_call_alloc = true;
    raw_call(fd, 5, M_OK);
    long long want[2] = {0, 1};
    CU_ASSERT_TRUE(run_until(T.base, calls_are, want, 3000));
    fail_call_alloc = false;
    ember_set_allocator(NULL, NULL);
    const char *t = render(T.root, NULL, NULL);
    CU_ASSERT_EQUAL(value(t, "ember_call_failures_total{" OK_L ",status=\"failed\"}"), 1);
    CU_ASSERT_EQUAL(value(t, "ember_call_duration_seconds_count{" OK_L "}"), 1);
    CU_ASSERT_EQUAL(value(t, "ember_call_duration_seconds_bucket{" OK_L ",le=\"+Inf\"}"), 1);

    /* A second call under an id in flight fails; the first stays. */
    raw_call(fd, 7, M_HOLD);
    CU_ASSERT_TRUE_FATAL(run_until(T.base, held, NULL, 3000));
    raw_call(fd, 7, M_HOLD);
    want[0] = 1, want[1] = 2;
    CU_ASSERT_TRUE(run_until(T.base, calls_are, want, 3000));
    t = render(T.root, NULL, NULL);
    CU_ASSERT_EQUAL(value(t, "ember_call_failures_total{" HOLD_L ",status=\"failed\"}"), 1);
    CU_ASSERT_EQUAL(value(t, "ember_call_duration_seconds_count{" HOLD_L "}"), 1);
    CU_ASSERT_EQUAL(value(t, "ember_calls_in_flight{direction=\"in\"}"), 1);
    ember_call_reply_raw(T.held, NULL, 0);
    t = render(T.root, NULL, NULL);
    CU_ASSERT_EQUAL(value(t, "ember_call_duration_seconds_count{" HOLD_L "}"), 2);
    CU_ASSERT_EQUAL(value(t, "ember_call_failures_total{" HOLD_L ",status=\"failed\"}"), 1);
    close(fd);
    teardown();
}

/* ---- calls cancelled or lost end once ---- */

static void raw_cancel(int fd, uint8_t call_id)
{
    uint8_t f[] = {2, 0, 0, 0, EMBER_FR_CANCEL, call_id};
    CU_ASSERT_EQUAL(write(fd, f, sizeof f), (ssize_t)sizeof f);
}

static bool is_cancelled(void *ud)
{
    return ember_call_cancelled(ud);
}

static bool hold_count_is(void *ud)
{
    const char *t = render(T.root, NULL, NULL);
    return value(t, "ember_call_duration_seconds_count{" HOLD_L "}") == *(long long *)ud;
}

/* The held call of a new CALL id to M_HOLD. */
static ember_call *hold(int fd, uint8_t call_id)
{
    T.held = NULL;
    raw_call(fd, call_id, M_HOLD);
    CU_ASSERT_TRUE(run_until(T.base, held, NULL, 3000));
    return T.held;
}

static long long hold_ends(const char *status)
{
    char series[160];
    snprintf(series, sizeof series, "ember_call_failures_total{" HOLD_L
             ",status=\"%s\"}", status);
    return value(render(T.root, NULL, NULL), series);
}

static void t_cancelled_and_lost_end_once(void)
{
    setup();
    int fd = raw_peer(ember_root_port(T.root), "raw");
    CU_ASSERT_TRUE_FATAL(run_until(T.base, two_children, NULL, 3000));

    /* Cancelled, then failed or raised by its handler: cancelled. */
    ember_call *k[4];
    k[0] = hold(fd, 9);
    k[1] = hold(fd, 11);
    CU_ASSERT_PTR_NOT_NULL_FATAL(k[1]);
    raw_cancel(fd, 9);
    raw_cancel(fd, 11);
    CU_ASSERT_TRUE(run_until(T.base, is_cancelled, k[1], 3000));
    CU_ASSERT_EQUAL(ember_call_fail(k[0], "too late"), 0);
    CU_ASSERT_EQUAL(ember_call_raise_raw(k[1], 1, NULL, 0), 0);
    CU_ASSERT_EQUAL(hold_ends("cancelled"), 2);
    CU_ASSERT_EQUAL(hold_ends("failed"), 0);
    CU_ASSERT_EQUAL(hold_ends("raised"), 0);

    /* One cancelled and one not when the connection goes: each ends once
     * then, and its late answer adds nothing. */
    k[2] = hold(fd, 13);
    k[3] = hold(fd, 15);
    CU_ASSERT_PTR_NOT_NULL_FATAL(k[3]);
    raw_cancel(fd, 13);
    CU_ASSERT_TRUE(run_until(T.base, is_cancelled, k[2], 3000));
    close(fd);
    long long want = 4;
    CU_ASSERT_TRUE(run_until(T.base, hold_count_is, &want, 3000));
    CU_ASSERT_EQUAL(ember_call_fail(k[2], "later still"), 0);
    CU_ASSERT_EQUAL(ember_call_reply_raw(k[3], NULL, 0), 0);
    CU_ASSERT_EQUAL(hold_ends("cancelled"), 3);
    CU_ASSERT_EQUAL(hold_ends("lost"), 1);
    CU_ASSERT_EQUAL(hold_ends("failed"), 0);
    CU_ASSERT_TRUE(hold_count_is(&want));
    CU_ASSERT_EQUAL(value(render(T.root, NULL, NULL), "ember_calls_total{" HOLD_L "}"), 4);
    teardown();
}

/* ---- an answer that does not encode ---- */

static void enc_bad_utf8(ember_enc *e, const void *value)
{
    (void)value;
    ember_enc_string(e, 1, "\xff");
}

static void h_bad_raise(ember_call *c, uint32_t sid, uint32_t mid, const void *p,
                        size_t len, void *ud)
{
    (void)sid, (void)mid, (void)p, (void)len, (void)ud;
    ember_call_raise(c, 1, enc_bad_utf8, NULL);
}

static ember_status last_status;

static void on_status(const ember_outcome *o, const void *p, size_t len, void *ud)
{
    (void)p, (void)len, (void)ud;
    last_status = o->status;
    T.done++;
}

static void t_unencodable_raise_fails(void)
{
    setup();
    CU_ASSERT_EQUAL_FATAL(ember_exports_add_raw(ember_root_exports(T.root), SVC, 13,
                                                h_bad_raise, NULL), 0);
    ember_call_raw(ember_node_root(T.node), SVC, 13, NULL, 0, on_status, NULL, NULL);
    int want = 1;
    CU_ASSERT_TRUE(run_until(T.base, done_is, &want, 3000));
    CU_ASSERT_EQUAL(last_status, EMBER_FAILED);
    const char *t = render(T.root, NULL, NULL);
    CU_ASSERT_EQUAL(value(t, "ember_call_failures_total{" RAW_L "id=\"13\",status=\"failed\"}"), 1);
    CU_ASSERT_EQUAL(value(t, "ember_call_failures_total{" RAW_L "id=\"13\",status=\"raised\"}"), 0);
    teardown();
}

/* ---- long names ---- */

static int d_reply(ember_call *c, ember_dec *d, const void *handlers, void *ud)
{
    (void)d, (void)handlers, (void)ud;
    return ember_call_reply(c, NULL, NULL);
}

static void t_long_names(void)
{
    setup();
    static char sname[301], mname[301];
    memset(sname, 'S', 300);
    memset(mname, 'm', 300);
    sname[0] = '"'; /* escaped: one more byte in the label */
    static ember_method_desc m = {7, mname, false, d_reply, NULL, false, NULL, 0,
                                  NULL, NULL, 0};
    static ember_service_desc svc = {sname, 0x10ee0001, 0, 1, &m, NULL};
    CU_ASSERT_EQUAL_FATAL(ember_exports_add(ember_root_exports(T.root), &svc, NULL,
                                            NULL), 0);
    ember_call_raw(ember_node_root(T.node), svc.id, 7, NULL, 0, on_done, NULL, NULL);
    int want = 1;
    CU_ASSERT_TRUE(run_until(T.base, done_is, &want, 3000));
    static char l[800], series[900];
    snprintf(l, sizeof l, "service=\"\\\"%s\",service_id=\"10ee0001\",method=\"%s\",id=\"7\"",
             sname + 1, mname);
    const char *t = render(T.root, NULL, "server=\"r\"");
    snprintf(series, sizeof series, "ember_calls_total{server=\"r\",%s}", l);
    CU_ASSERT_EQUAL(value(t, series), 1);
    snprintf(series, sizeof series, "ember_call_failures_total{server=\"r\",%s,status=\"lost\"}", l);
    CU_ASSERT_EQUAL(value(t, series), 0);
    snprintf(series, sizeof series, "ember_call_duration_seconds_bucket{server=\"r\",%s,le=\"+Inf\"}", l);
    CU_ASSERT_EQUAL(value(t, series), 1);
    snprintf(series, sizeof series, "ember_call_duration_seconds_count{server=\"r\",%s}", l);
    CU_ASSERT_EQUAL(value(t, series), 1);
    teardown();
}

/* ---- registrations over PB ---- */

/* A root listening for PB peers and a node registered with it over PB. */
static void setup_pb(void)
{
    memset(&T, 0, sizeof T);
    T.base = event_base_new();
    T.root = ember_root_new(T.base, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(T.root);
    CU_ASSERT_EQUAL_FATAL(ember_root_listen_pb(T.root, "127.0.0.1:0"), 0);
    ember_node_config nc;
    ember_node_config_default(&nc);
    nc.backoff_min_ms = nc.backoff_max_ms = 10;
    T.node = ember_node_new(T.base, "n0", &nc);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ember_root_listener_port(T.root, 0));
    CU_ASSERT_EQUAL_FATAL(ember_node_connect_pb(T.node, addr), 0);
    CU_ASSERT_TRUE_FATAL(run_until(T.base, registered, NULL, 3000));
}

static void t_pb_reconnects(void)
{
    setup_pb();
    CU_ASSERT_EQUAL(value(render(NULL, T.node, NULL), "ember_reconnects_total"), 0);
    ember_root_drop(T.root, ember_root_child_by_name(T.root, "n0"), "kicked");
    CU_ASSERT_TRUE(run_until(T.base, reregistered, NULL, 3000));
    CU_ASSERT_EQUAL(value(render(T.root, NULL, NULL),
                          "ember_connections_closed_total{reason=\"dropped\"}"), 1);
    teardown();
}

/* The root closed the twin's connection, and the twin heard why. */
static bool twin_refused(void *twin)
{
    long long root = closed_by(T.root, "refused") + closed_by(T.root, "goodbye") +
                     closed_by(T.root, "peer_closed");
    const char *t = render(NULL, twin, NULL);
    return root >= 1 && value(t, "ember_connections_closed_total{reason=\"refused\"}") +
                        value(t, "ember_connections_closed_total{reason=\"peer_closed\"}") >= 1;
}

/* A second "n0" over PB while the first is alive: refused, like REGISTER. */
static void t_pb_refused(void)
{
    setup_pb();
    ember_node_config nc;
    ember_node_config_default(&nc);
    nc.backoff_min_ms = nc.backoff_max_ms = 1000;
    ember_node *twin = ember_node_new(T.base, "n0", &nc);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ember_root_listener_port(T.root, 0));
    CU_ASSERT_EQUAL_FATAL(ember_node_connect_pb(twin, addr), 0);
    CU_ASSERT_TRUE(run_until(T.base, twin_refused, twin, 3000));
    CU_ASSERT_EQUAL(closed_by(T.root, "refused"), 1);
    CU_ASSERT_EQUAL(closed_by(T.root, "goodbye"), 0);
    CU_ASSERT_EQUAL(value(render(NULL, twin, NULL),
                          "ember_connections_closed_total{reason=\"refused\"}"), 1);
    ember_node_free(twin);
    teardown();
}

/* ---- labels that would clash ---- */

static void t_clashing_labels(void)
{
    setup();
    char b[64];
    /* A label twice, one of the series' own, or one Prometheus reserves. */
    const char *bad[] = {"a=\"1\",a=\"2\"", "service=\"x\"", "service_id=\"1\"",
                         "method=\"m\"", "id=\"1\"", "status=\"ok\"", "le=\"1\"",
                         "direction=\"in\"", "reason=\"x\"", "__name__=\"x\"",
                         "b=\"1\",reason=\"x\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ember_metrics_src s = {T.root, NULL, bad[i]};
        CU_ASSERT_EQUAL(ember_metrics_render(&s, 1, b, sizeof b), -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(ember_last_error(), i ? "use \"" : "twice"));
    }
    /* Two sources under the same labels, in any order, or none. */
    const char *same[][2] = {{NULL, NULL}, {NULL, ""}, {"a=\"1\"", "a=\"1\""},
                             {"a=\"1\",b=\"2\"", "b=\"2\",a=\"1\""}};
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        ember_metrics_src s[2] = {{T.root, NULL, same[i][0]}, {NULL, T.node, same[i][1]}};
        CU_ASSERT_EQUAL(ember_metrics_render(s, 2, b, sizeof b), -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(ember_last_error(), "same labels"));
    }
    /* Told apart: fine. */
    const char *apart[][2] = {{"a=\"1\"", "a=\"2\""}, {"a=\"1\"", "a=\"1\",b=\"2\""},
                              {NULL, "a=\"\""}, {"a=\"x\\\"\"", "a=\"x\""}};
    for (size_t i = 0; i < sizeof apart / sizeof apart[0]; i++) {
        ember_metrics_src s[2] = {{T.root, NULL, apart[i][0]}, {NULL, T.node, apart[i][1]}};
        CU_ASSERT_TRUE(ember_metrics_render(s, 2, b, sizeof b) > 0);
    }
    teardown();
}

void add_metrics_suite(void)
{
    CU_pSuite s = CU_add_suite("metrics", NULL, NULL);
    CU_add_test(s, "histogram buckets", t_hist_buckets);
    CU_add_test(s, "calls, failures, durations and gauges", t_calls_and_gauges);
    CU_add_test(s, "two endpoints, each family once", t_two_sources_one_family_each);
    CU_add_test(s, "bad arguments", t_bad_arguments);
    CU_add_test(s, "closes by reason and reconnects", t_closes_and_reconnects);
    CU_add_test(s, "close reasons", t_close_reasons);
    CU_add_test(s, "frame and unregistered limits close as limit", t_limit_closes);
    CU_add_test(s, "calls refused for their id or memory end failed", t_refused_calls_end_failed);
    CU_add_test(s, "cancelled and lost calls end once", t_cancelled_and_lost_end_once);
    CU_add_test(s, "a raised error that does not encode ends failed", t_unencodable_raise_fails);
    CU_add_test(s, "long service and method names", t_long_names);
    CU_add_test(s, "a node registering over PB counts reconnects", t_pb_reconnects);
    CU_add_test(s, "a registration refused over PB counts refused", t_pb_refused);
    CU_add_test(s, "labels that would clash are refused", t_clashing_labels);
}
