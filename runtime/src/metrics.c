/*
 * metrics.c — an endpoint's counters in the Prometheus text exposition
 * format. The counting happens where the runtime already is (call.c,
 * conn.c, node.c); this file only reads the counters and the live state
 * (connections, calls in flight, queued bytes) and writes the text: one
 * family at a time across every endpoint given, so a process with a root
 * and nodes serves one valid page.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "buf-internal.h"
#include "conn-internal.h"
#include "ember-internal.h"
#include "ep-internal.h"
#include "metrics-internal.h"
#include "ref-internal.h"
#include "wire-internal.h"

uint64_t ember_hist_bound(uint32_t i)
{
    if (i < 2)
        return i + 1;
    uint32_t k = i / 2, h = i % 2;
    return ((uint64_t)1 << k) + ((uint64_t)(h + 1) << (k - 1));
}

/* ---- why a connection closed ---- */

static const struct {
    const char *prefix;
    unsigned reason;
} close_prefixes[] = {
    {EMBER_GOODBYE_REASON, EMBER_CLOSE_GOODBYE},
    {"said goodbye", EMBER_CLOSE_GOODBYE},
    {"peer closed the connection", EMBER_CLOSE_PEER},
    {"shutting down", EMBER_CLOSE_SHUTDOWN},
    {"node closing", EMBER_CLOSE_SHUTDOWN},
    {"root shutting down", EMBER_CLOSE_SHUTDOWN},
    {"peer exceeded", EMBER_CLOSE_LIMIT},
    {"frame of", EMBER_CLOSE_LIMIT},
    {"peer silent for", EMBER_CLOSE_HEARTBEAT},
    {"peer not reading", EMBER_CLOSE_SLOW},
    {"handshake timed out", EMBER_CLOSE_HANDSHAKE},
    {"bad credentials", EMBER_CLOSE_REFUSED},
    {"refused by root", EMBER_CLOSE_REFUSED},
    {"replaced by a new registration", EMBER_CLOSE_DROPPED},
};

unsigned ember_metrics_close_reason(ember_status st, const char *reason)
{
    if (st == EMBER_SHUTDOWN)
        return EMBER_CLOSE_SHUTDOWN;
    for (size_t i = 0; i < sizeof close_prefixes / sizeof close_prefixes[0]; i++)
        if (strncmp(reason, close_prefixes[i].prefix,
                    strlen(close_prefixes[i].prefix)) == 0)
            return close_prefixes[i].reason;
    return st == EMBER_PROTOCOL ? EMBER_CLOSE_PROTOCOL : EMBER_CLOSE_ERROR;
}

static const char *const close_names[EMBER_CLOSE_N] = {
    [EMBER_CLOSE_GOODBYE] = "goodbye",     [EMBER_CLOSE_PEER] = "peer_closed",
    [EMBER_CLOSE_SHUTDOWN] = "shutdown",   [EMBER_CLOSE_PROTOCOL] = "protocol",
    [EMBER_CLOSE_LIMIT] = "limit",         [EMBER_CLOSE_HEARTBEAT] = "heartbeat",
    [EMBER_CLOSE_SLOW] = "slow_reader",    [EMBER_CLOSE_HANDSHAKE] = "handshake",
    [EMBER_CLOSE_REFUSED] = "refused",     [EMBER_CLOSE_DROPPED] = "dropped",
    [EMBER_CLOSE_ERROR] = "error",
};

static const char *const end_names[EMBER_END_N] = {
    [EMBER_END_OK] = "ok",               [EMBER_END_RAISED] = "raised",
    [EMBER_END_FAILED] = "failed",       [EMBER_END_CANCELLED] = "cancelled",
    [EMBER_END_LOST] = "lost",
};

/* ---- the text ---- */

typedef struct out {
    char *buf;
    size_t cap, len;
} out;

static void put(out *o, const char *fmt, ...) EMBER_PRINTF(2, 3);
static void put(out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *at = o->len < o->cap ? o->buf + o->len : NULL;
    int n = vsnprintf(at, at ? o->cap - o->len : 0, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n;
}

/* A label value: backslash, double quote and newline escaped. */
static void put_value(out *o, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            put(o, "\\%c", *s);
        else if (*s == '\n')
            put(o, "\\n");
        else
            put(o, "%c", *s);
    }
}

/* `name{src labels,more}` or `name{more}` or `name`; more is already
 * formatted. */
static void put_series(out *o, const char *name, const ember_metrics_src *s,
                       const char *more)
{
    bool a = s->labels && *s->labels, b = more && *more;
    put(o, "%s%s%s%s%s%s", name, a || b ? "{" : "", a ? s->labels : "",
        a && b ? "," : "", b ? more : "", a || b ? "}" : "");
}

static bool is_name_char(char c, bool first)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (!first && c >= '0' && c <= '9');
}

/* `name="value"` pairs separated by commas, values escaped as above. */
static bool labels_valid(const char *p)
{
    if (!p || !*p)
        return true;
    for (;;) {
        if (!is_name_char(*p, true))
            return false;
        while (is_name_char(*p, false))
            p++;
        if (*p++ != '=' || *p++ != '"')
            return false;
        while (*p != '"') {
            if (!*p || *p == '\n')
                return false;
            if (*p == '\\' && p[1] != '\\' && p[1] != '"' && p[1] != 'n')
                return false;
            p += *p == '\\' ? 2 : 1;
        }
        p++;
        if (!*p)
            return true;
        if (*p++ != ',')
            return false;
    }
}

/* One `name="value"` pair of labels that labels_valid took. */
typedef struct lpair {
    const char *name, *pair;
    size_t nlen, plen;
} lpair;

/* The pair at *p, moving *p past it and its comma; false at the end. */
static bool next_pair(const char **p, lpair *lp)
{
    const char *s = *p;
    if (!s || !*s)
        return false;
    lp->name = lp->pair = s;
    while (*s != '=')
        s++;
    lp->nlen = (size_t)(s - lp->name);
    for (s += 2; *s != '"'; s += *s == '\\' ? 2 : 1)
        ;
    lp->plen = (size_t)(++s - lp->pair);
    *p = *s == ',' ? s + 1 : s;
    return true;
}

/* Whether labels hold x, name and value (escapes are canonical: one way
 * to write each value). */
static bool has_pair(const char *labels, const lpair *x)
{
    lpair y;
    while (next_pair(&labels, &y))
        if (y.plen == x->plen && memcmp(y.pair, x->pair, x->plen) == 0)
            return true;
    return false;
}

static size_t count_pairs(const char *labels)
{
    lpair y;
    size_t n = 0;
    while (next_pair(&labels, &y))
        n++;
    return n;
}

/* The same set of pairs, in any order (names are distinct in each). */
static bool same_labels(const char *a, const char *b)
{
    if (count_pairs(a) != count_pairs(b))
        return false;
    lpair x;
    while (next_pair(&a, &x))
        if (!has_pair(b, &x))
            return false;
    return true;
}

/* The labels ember's own series carry. */
static const char *const own_labels[] = {"service", "service_id", "method", "id",
                                         "status", "le", "direction", "reason"};

/* -1 (with why) if source i's labels would write a series with a label
 * twice or one Prometheus reserves. */
static int labels_clash(const char *labels, size_t i)
{
    lpair x, y;
    for (const char *p = labels; next_pair(&p, &x);) {
        int n = (int)x.nlen;
        for (size_t k = 0; k < sizeof own_labels / sizeof own_labels[0]; k++)
            if (strlen(own_labels[k]) == x.nlen &&
                memcmp(own_labels[k], x.name, x.nlen) == 0)
                return ember_seterr("ember_metrics_render: labels of source %zu "
                                    "use \"%.*s\", a label of ember's own "
                                    "series", i, n, x.name);
        if (x.nlen >= 2 && x.name[0] == '_' && x.name[1] == '_')
            return ember_seterr("ember_metrics_render: labels of source %zu "
                                "use \"%.*s\": names starting with __ are "
                                "reserved", i, n, x.name);
        for (const char *q = p; next_pair(&q, &y);)
            if (y.nlen == x.nlen && memcmp(y.name, x.name, x.nlen) == 0)
                return ember_seterr("ember_metrics_render: labels of source %zu "
                                    "name \"%.*s\" twice", i, n, x.name);
    }
    return 0;
}

static ember_ep *src_ep(const ember_metrics_src *s)
{
    return s->root ? ember_root_ep(s->root) : ember_node_ep(s->node);
}

/* ---- the families ---- */

typedef void (*family_fn)(out *o, const ember_metrics_src *s, const char *name);

/* Every method s serves, typed and raw. */
typedef void (*method_fn)(out *o, const ember_metrics_src *s, const char *name,
                          const ember_xentry *x);

static void each_method(out *o, const ember_metrics_src *s, const char *name,
                        method_fn fn)
{
    const ember_exports *ex = src_ep(s)->exports;
    for (uint32_t i = 0; i <= ex->n; i++) {
        const ember_xentry *x = i < ex->n ? &ex->v[i] : &ex->fallback;
        if (i == ex->n && !ex->fallback.raw)
            break;
        fn(o, s, name, x);
    }
}

/* `name<suffix>{src labels,service=...,id="..."[,more]}`: a method's series,
 * its names written whole however long they are. */
static void put_mseries(out *o, const char *name, const char *suffix,
                        const ember_metrics_src *s, const ember_xentry *x,
                        const char *more)
{
    bool a = s->labels && *s->labels;
    put(o, "%s%s{%s%sservice=\"", name, suffix, a ? s->labels : "", a ? "," : "");
    put_value(o, x->st.service);
    put(o, "\",service_id=\"%08x\",method=\"", x->st.service_id);
    put_value(o, x->st.method);
    put(o, "\",id=\"%u\"%s%s}", x->st.id, more ? "," : "", more ? more : "");
}

static void m_calls(out *o, const ember_metrics_src *s, const char *name,
                    const ember_xentry *x)
{
    put_mseries(o, name, "", s, x, NULL);
    put(o, " %llu\n", (unsigned long long)x->st.calls);
}

static void m_failures(out *o, const ember_metrics_src *s, const char *name,
                       const ember_xentry *x)
{
    char l[32];
    for (unsigned e = EMBER_END_OK + 1; e < EMBER_END_N; e++) {
        snprintf(l, sizeof l, "status=\"%s\"", end_names[e]);
        put_mseries(o, name, "", s, x, l);
        put(o, " %llu\n", (unsigned long long)x->mx->ends[e]);
    }
}

static void m_duration(out *o, const ember_metrics_src *s, const char *name,
                       const ember_xentry *x)
{
    char l[32];
    uint64_t cum = 0;
    for (uint32_t i = 0; i < EMBER_HIST_BUCKETS; i++) {
        cum += x->mx->bucket[i];
        if (i + 1 < EMBER_HIST_BUCKETS)
            snprintf(l, sizeof l, "le=\"%.9g\"", (double)ember_hist_bound(i) / 1e6);
        else
            snprintf(l, sizeof l, "le=\"+Inf\"");
        put_mseries(o, name, "_bucket", s, x, l);
        put(o, " %llu\n", (unsigned long long)cum);
    }
    put_mseries(o, name, "_sum", s, x, NULL);
    put(o, " %.6f\n", (double)x->mx->sum_us / 1e6);
    put_mseries(o, name, "_count", s, x, NULL);
    put(o, " %llu\n", (unsigned long long)cum);
}

static void f_calls(out *o, const ember_metrics_src *s, const char *name)
{
    each_method(o, s, name, m_calls);
}

static void f_failures(out *o, const ember_metrics_src *s, const char *name)
{
    each_method(o, s, name, m_failures);
}

static void f_duration(out *o, const ember_metrics_src *s, const char *name)
{
    each_method(o, s, name, m_duration);
}

static void put_u64(out *o, const ember_metrics_src *s, const char *name,
                    const char *more, uint64_t v)
{
    put_series(o, name, s, more);
    put(o, " %llu\n", (unsigned long long)v);
}

static void f_connections(out *o, const ember_metrics_src *s, const char *name)
{
    put_u64(o, s, name, NULL, src_ep(s)->nconns);
}

static void f_children(out *o, const ember_metrics_src *s, const char *name)
{
    if (s->root)
        put_u64(o, s, name, NULL, ember_root_child_count(s->root));
}

static void f_in_flight(out *o, const ember_metrics_src *s, const char *name)
{
    uint64_t in = 0, outgoing = 0;
    for (const ember_conn *c = src_ep(s)->conns; c; c = c->next) {
        in += c->ncalls;
        outgoing += c->npending;
    }
    put_u64(o, s, name, "direction=\"in\"", in);
    put_u64(o, s, name, "direction=\"out\"", outgoing);
}

static void f_queued(out *o, const ember_metrics_src *s, const char *name)
{
    uint64_t q = 0;
    for (const ember_conn *c = src_ep(s)->conns; c; c = c->next)
        q += ember_buf_used(&c->out);
    put_u64(o, s, name, NULL, q);
}

static void f_reconnects(out *o, const ember_metrics_src *s, const char *name)
{
    uint64_t r = src_ep(s)->mt.registrations;
    if (s->node)
        put_u64(o, s, name, NULL, r > 1 ? r - 1 : 0);
}

static void f_closed(out *o, const ember_metrics_src *s, const char *name)
{
    char l[64];
    for (unsigned i = 0; i < EMBER_CLOSE_N; i++) {
        snprintf(l, sizeof l, "reason=\"%s\"", close_names[i]);
        put_u64(o, s, name, l, src_ep(s)->mt.closed[i]);
    }
}

static const struct family {
    const char *name, *type, *help;
    family_fn fn;
} families[] = {
    {"ember_calls_total", "counter",
     "Calls received by a served method (counted on arrival).", f_calls},
    {"ember_call_failures_total", "counter",
     "Served calls that ended without a reply, by how they ended.", f_failures},
    {"ember_call_duration_seconds", "histogram",
     "Time from a served call's arrival to its answer.", f_duration},
    {"ember_connections", "gauge",
     "Open connections, registered or still registering.", f_connections},
    {"ember_children", "gauge", "Nodes registered with this root.", f_children},
    {"ember_calls_in_flight", "gauge",
     "Calls not yet ended: in, served here; out, made from here.", f_in_flight},
    {"ember_queued_bytes", "gauge",
     "Output bytes queued to peers, not yet written.", f_queued},
    {"ember_reconnects_total", "counter",
     "Registrations of this node after its first one.", f_reconnects},
    {"ember_connections_closed_total", "counter",
     "Connections closed, by reason.", f_closed},
};

EMBER_API long ember_metrics_render(const ember_metrics_src *src, size_t n,
                                    char *buf, size_t cap)
{
    if (!src && n)
        return ember_seterr("ember_metrics_render: NULL sources");
    if (!buf && cap)
        return ember_seterr("ember_metrics_render: NULL buffer of %zu bytes", cap);
    for (size_t i = 0; i < n; i++) {
        if (!src[i].root == !src[i].node)
            return ember_seterr("ember_metrics_render: source %zu needs exactly "
                                "one of root and node", i);
        if (!labels_valid(src[i].labels))
            return ember_seterr("ember_metrics_render: labels of source %zu are "
                                "not name=\"value\" pairs", i);
        if (labels_clash(src[i].labels, i))
            return -1;
        for (size_t j = 0; j < i; j++)
            if (same_labels(src[j].labels, src[i].labels))
                return ember_seterr("ember_metrics_render: sources %zu and %zu "
                                    "have the same labels (their series would "
                                    "clash)", j, i);
    }
    out o = {buf, cap, 0};
    if (cap)
        buf[0] = 0;
    locale_t was = ember_numbers_begin(); /* the text format's '.' */
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
        put(&o, "# HELP %s %s\n# TYPE %s %s\n", families[f].name,
            families[f].help, families[f].name, families[f].type);
        for (size_t i = 0; i < n; i++)
            families[f].fn(&o, &src[i], families[f].name);
    }
    uselocale(was);
    return (long)o.len;
}
