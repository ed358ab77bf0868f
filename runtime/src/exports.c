/*
 * exports.c — what an endpoint (or a local object) serves: a table keyed by
 * (service id, method id) kept sorted, so dispatch is a binary search
 * (Firefly's CommandService, with the service in the key so that two
 * services' method ids never meet), plus raw handlers (one method, a whole
 * service, or the fallback for the forwarding gate) and per-method counters.
 */
#include <stdlib.h>
#include <string.h>

#include "ember-internal.h"
#include "metrics-internal.h"
#include "ref-internal.h"

ember_exports *ember_exports_new(void)
{
    ember_exports *ex = ember_calloc(sizeof *ex);
    if (ex) {
        ex->fallback.st.service = "raw";
        ex->fallback.st.method = "*";
    }
    return ex;
}

void ember_exports_free(ember_exports *ex)
{
    if (!ex)
        return;
    for (uint32_t i = 0; i < ex->n; i++)
        ember_free(ex->v[i].mx, sizeof *ex->v[i].mx);
    ember_free(ex->fallback.mx, sizeof *ex->fallback.mx);
    ember_free(ex->v, sizeof *ex->v * ex->cap);
    ember_free(ex->svcs, sizeof *ex->svcs * ex->nsvcs);
    ember_free(ex, sizeof *ex);
}

static int reserve(ember_exports *ex, uint32_t more)
{
    if (ex->n + more <= ex->cap)
        return 0;
    uint32_t ncap = ex->cap ? ex->cap : 1; /* a proxy's table holds one */
    while (ncap < ex->n + more)
        ncap *= 2;
    ember_xentry *nv = ember_realloc(ex->v, sizeof *nv * ex->cap, sizeof *nv * ncap);
    if (!nv)
        return ember_seterr("out of memory");
    ex->v = nv;
    ex->cap = ncap;
    return 0;
}

static int cmp_entry(const void *a, const void *b)
{
    uint64_t x = ((const ember_xentry *)a)->key, y = ((const ember_xentry *)b)->key;
    return x < y ? -1 : x > y;
}

/* A zeroed entry at the end of v (room reserved), with its metrics; sort()
 * puts it in place. NULL: out of memory. */
static ember_xentry *append(ember_exports *ex, uint32_t service, uint32_t id,
                            const char *sname, const char *method)
{
    ember_xmetrics *mx = ember_calloc(sizeof *mx);
    if (!mx) {
        ember_seterr("out of memory");
        return NULL;
    }
    ember_xentry *x = &ex->v[ex->n++];
    memset(x, 0, sizeof *x);
    x->key = ember_xkey(service, id);
    x->st.service_id = service;
    x->mx = mx;
    x->st.id = id;
    x->st.service = sname;
    x->st.method = method;
    return x;
}

/* Entries move: calls that kept one look it up again (ember_exports_record). */
static void sort(ember_exports *ex)
{
    if (ex->n > 1) /* v is NULL while nothing was ever added */
        qsort(ex->v, ex->n, sizeof *ex->v, cmp_entry);
    ex->ver++;
}

static bool serves(const ember_exports *ex, uint32_t service)
{
    uint32_t i = ember_exports_lower(ex, ember_xkey(service, 0));
    return i < ex->n && (uint32_t)(ex->v[i].key >> 32) == service;
}

ember_xentry *ember_exports_resolve(ember_exports *ex, uint32_t service,
                                    uint32_t method, bool *served)
{
    uint64_t key = ember_xkey(service, method);
    /* A stream of calls mostly names one method over and over. */
    if (ex->hint < ex->n && ex->v[ex->hint].key == key) {
        *served = true;
        return &ex->v[ex->hint];
    }
    uint32_t i = ember_exports_lower(ex, key);
    if (i < ex->n && ex->v[i].key == key) {
        *served = true;
        ex->hint = i;
        return &ex->v[i];
    }
    /* A raw handler of the whole service sorts first among its entries;
     * the service's other entries, if any, sit right before or at i. */
    ember_xentry *w = ember_exports_find(ex, ember_xkey(service, 0));
    *served = w || (i < ex->n && (uint32_t)(ex->v[i].key >> 32) == service) ||
              (i > 0 && (uint32_t)(ex->v[i - 1].key >> 32) == service);
    return w;
}

int ember_exports_pb_check(const ember_exports *ex)
{
    for (uint32_t i = 0; i < ex->n; i++) {
        const ember_method_desc *m = ex->v[i].m;
        for (uint32_t j = 0; m && m->pb_name && j < i; j++) {
            const ember_method_desc *o = ex->v[j].m;
            if (!o || !o->pb_name || strcmp(o->pb_name, m->pb_name) != 0)
                continue;
            if (o->pb_command && m->pb_command && o->id != m->id)
                continue; /* one dispatch name, different command ids */
            return ember_seterr("%s.%s and %s.%s both travel over PB as '%s'%s: "
                                "a PB peer could not tell them apart (set @pb names)",
                                ex->v[i].st.service, ex->v[i].st.method,
                                ex->v[j].st.service, ex->v[j].st.method, m->pb_name,
                                m->pb_command ? " with the same command id" : "");
        }
    }
    return 0;
}

EMBER_API int ember_exports_add(ember_exports *ex, const ember_service_desc *svc,
                                const void *handlers, void *ud)
{
    if (!ex || !svc)
        return ember_seterr("ember_exports_add: NULL argument");
    if (!svc->name)
        return ember_seterr("service descriptor %08x has no name", svc->id);
    if (svc->n_methods && !svc->methods)
        return ember_seterr("service %s has %u methods and no method table",
                            svc->name, svc->n_methods);
    if (svc->id == 0)
        return ember_seterr("service %s has no id", svc->name);
    for (uint32_t i = 0; i < ex->nsvcs; i++)
        if (ex->svcs[i]->id == svc->id)
            return ember_seterr("service id %08x of %s is already exported "
                                "(by %s)", svc->id, svc->name, ex->svcs[i]->name);
    if (ember_exports_find(ex, ember_xkey(svc->id, 0)))
        return ember_seterr("service %s is already served raw", svc->name);
    for (uint32_t i = 0; i < svc->n_methods; i++) {
        const ember_method_desc *m = &svc->methods[i];
        if (!m->name)
            return ember_seterr("method %u of %s has no name", i, svc->name);
        if (!m->dispatch)
            return ember_seterr("%s.%s has no dispatch function", svc->name, m->name);
        if (m->id == 0)
            return ember_seterr("%s.%s has method id 0", svc->name, m->name);
        if (ember_exports_find(ex, ember_xkey(svc->id, m->id)))
            return ember_seterr("method id %u (%s.%s) is already served raw",
                                m->id, svc->name, m->name);
        for (uint32_t j = 0; j < i; j++)
            if (svc->methods[j].id == m->id)
                return ember_seterr("method id %u appears twice in %s", m->id,
                                    svc->name);
    }
    const ember_service_desc **ns = ember_realloc(
        ex->svcs, sizeof *ns * ex->nsvcs, sizeof *ns * (ex->nsvcs + 1));
    if (!ns)
        return ember_seterr("out of memory");
    ex->svcs = ns;
    if (reserve(ex, svc->n_methods))
        return -1;
    for (uint32_t i = 0; i < svc->n_methods; i++) {
        ember_xentry *x = append(ex, svc->id, svc->methods[i].id, svc->name,
                                 svc->methods[i].name);
        if (!x) { /* the entries of this service are the last i */
            while (i--)
                ember_free(ex->v[--ex->n].mx, sizeof *ex->v[ex->n].mx);
            return -1;
        }
        x->m = &svc->methods[i];
        x->handlers = handlers;
        x->ud = ud;
    }
    ex->svcs[ex->nsvcs++] = svc;
    sort(ex);
    return 0;
}

EMBER_API int ember_exports_add_raw(ember_exports *ex, uint32_t service_id,
                                    uint32_t method_id, ember_raw_handler h,
                                    void *ud)
{
    if (!ex || !h)
        return ember_seterr("ember_exports_add_raw: NULL argument");
    if (service_id == 0) {
        if (method_id != 0)
            return ember_seterr("a raw handler for method %u needs its "
                                "service id", method_id);
        if (!ex->fallback.mx && !(ex->fallback.mx = ember_calloc(sizeof *ex->fallback.mx)))
            return ember_seterr("out of memory");
        ex->fallback.raw = h;
        ex->fallback.ud = ud;
        return 0;
    }
    if (ember_exports_find(ex, ember_xkey(service_id, method_id)) ||
        (method_id == 0 && serves(ex, service_id)))
        return ember_seterr("method %u of service %08x is already exported",
                            method_id, service_id);
    if (reserve(ex, 1))
        return -1;
    ember_xentry *x = append(ex, service_id, method_id, "raw",
                             method_id ? "raw" : "*");
    if (!x)
        return -1;
    x->raw = h;
    x->ud = ud;
    sort(ex);
    return 0;
}

/* The entry a call dispatched to, found again by key if entries moved. */
static ember_xentry *current(ember_exports *ex, ember_xentry *x, uint32_t ver,
                             uint64_t key)
{
    /* The fallback never moves; a table entry may have since dispatch. */
    if (x == &ex->fallback || ver == ex->ver)
        return x;
    return ember_exports_find(ex, key);
}

void ember_exports_add_time(ember_exports *ex, ember_xentry *x, uint32_t ver,
                            uint64_t key, uint64_t total_us, uint64_t max_us,
                            uint32_t n)
{
    if (!(x = current(ex, x, ver, key)))
        return;
    x->st.total_us += total_us;
    if (max_us > x->st.max_us)
        x->st.max_us = max_us;
    ember_xmetrics_time(x->mx, max_us, n);
}

void ember_exports_record(ember_exports *ex, ember_xentry *x, uint32_t ver,
                          uint64_t key, unsigned end, uint64_t us)
{
    if (!(x = current(ex, x, ver, key)))
        return;
    x->mx->ends[end]++;
    x->st.total_us += us;
    if (us > x->st.max_us)
        x->st.max_us = us;
    ember_xmetrics_time(x->mx, us, 1);
}

/* failures is not counted apart: it is every end but a reply. */
static void report_stats(const ember_xentry *x, ember_stats_fn fn, void *ud)
{
    ember_method_stats st = x->st;
    st.failures = 0;
    for (unsigned e = EMBER_END_OK + 1; e < EMBER_END_N; e++)
        st.failures += x->mx->ends[e];
    fn(&st, ud);
}

EMBER_API void ember_exports_stats(const ember_exports *ex, ember_stats_fn fn,
                                   void *ud)
{
    if (!ex || !fn)
        return;
    for (uint32_t i = 0; i < ex->n; i++)
        report_stats(&ex->v[i], fn, ud);
    if (ex->fallback.raw)
        report_stats(&ex->fallback, fn, ud);
}
