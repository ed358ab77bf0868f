/*
 * exports.c — what an endpoint (or a local object) serves: a table of
 * method ids kept sorted, so dispatch is a binary search (Firefly's
 * CommandService, without the dict of names), plus raw handlers and a raw
 * fallback for the forwarding gate, and per-method counters.
 */
#include <stdlib.h>
#include <string.h>

#include "rt-internal.h"

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
    ember_free(ex->v, sizeof *ex->v * ex->cap);
    ember_free(ex->svcs, sizeof *ex->svcs * ex->nsvcs);
    ember_free(ex, sizeof *ex);
}

static int reserve(ember_exports *ex, uint32_t more)
{
    if (ex->n + more <= ex->cap)
        return 0;
    uint32_t ncap = ex->cap ? ex->cap : 8;
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
    uint32_t x = ((const ember_xentry *)a)->id, y = ((const ember_xentry *)b)->id;
    return x < y ? -1 : x > y;
}

/* A zeroed entry at the end of v (room reserved); sort() puts it in place. */
static ember_xentry *append(ember_exports *ex, uint32_t id, const char *service,
                            const char *method)
{
    ember_xentry *x = &ex->v[ex->n++];
    memset(x, 0, sizeof *x);
    x->id = id;
    x->st.id = id;
    x->st.service = service;
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

EMBER_API int ember_exports_add(ember_exports *ex, const ember_service_desc *svc,
                                const void *handlers, void *ud)
{
    if (!ex || !svc)
        return ember_seterr("ember_exports_add: NULL argument");
    for (uint32_t i = 0; i < svc->n_methods; i++) {
        const ember_method_desc *m = &svc->methods[i];
        if (!m->dispatch)
            return ember_seterr("%s.%s has no dispatch function", svc->name, m->name);
        if (ember_exports_find(ex, m->id))
            return ember_seterr("method id %u (%s.%s) is already exported",
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
    ex->svcs[ex->nsvcs++] = svc;
    for (uint32_t i = 0; i < svc->n_methods; i++) {
        ember_xentry *x = append(ex, svc->methods[i].id, svc->name,
                                 svc->methods[i].name);
        x->m = &svc->methods[i];
        x->handlers = handlers;
        x->ud = ud;
    }
    sort(ex);
    return 0;
}

EMBER_API int ember_exports_add_raw(ember_exports *ex, uint32_t method_id,
                                    ember_raw_handler h, void *ud)
{
    if (!ex || !h)
        return ember_seterr("ember_exports_add_raw: NULL argument");
    if (method_id == 0) {
        ex->fallback.raw = h;
        ex->fallback.ud = ud;
        return 0;
    }
    if (ember_exports_find(ex, method_id))
        return ember_seterr("method id %u is already exported", method_id);
    if (reserve(ex, 1))
        return -1;
    ember_xentry *x = append(ex, method_id, "raw", "raw");
    x->raw = h;
    x->ud = ud;
    sort(ex);
    return 0;
}

void ember_exports_add_time(ember_exports *ex, ember_xentry *x, uint32_t ver,
                            uint32_t id, uint64_t total_us, uint64_t max_us)
{
    /* The fallback never moves; a table entry may have since dispatch. */
    if (x != &ex->fallback && ver != ex->ver && !(x = ember_exports_find(ex, id)))
        return;
    x->st.total_us += total_us;
    if (max_us > x->st.max_us)
        x->st.max_us = max_us;
}

void ember_exports_record(ember_exports *ex, ember_xentry *x, uint32_t ver,
                          uint32_t id, bool ok, uint64_t us)
{
    /* The fallback never moves; a table entry may have since dispatch. */
    if (x != &ex->fallback && ver != ex->ver && !(x = ember_exports_find(ex, id)))
        return;
    if (!ok)
        x->st.failures++;
    x->st.total_us += us;
    if (us > x->st.max_us)
        x->st.max_us = us;
}

EMBER_API void ember_exports_stats(const ember_exports *ex, ember_stats_fn fn,
                                   void *ud)
{
    if (!ex || !fn)
        return;
    for (uint32_t i = 0; i < ex->n; i++)
        fn(&ex->v[i].st, ud);
    if (ex->fallback.raw)
        fn(&ex->fallback.st, ud);
}
