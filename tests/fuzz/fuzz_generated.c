/*
 * fuzz_generated — idlc's generated decoders for tests/idl/shapes.idl (and
 * what it imports), which uses every type shape: scalars, strings, bytes,
 * enums, nested and recursive structs, optionals, lists of lists, maps,
 * refs.
 *
 * Input: byte 0 picks the struct (every <struct>_decode of the generated
 * headers, listed by the build in structs.inc), byte 1 picks the limits, the
 * rest is the encoded value. A value that decodes is encoded again, decoded
 * again and encoded a third time: the two encodings must be identical (the
 * round trip is stable) and the second decode must succeed.
 *
 * The same bytes also go through the check a proxy makes before it
 * forwards a call's arguments (proxy.c, ember_proxy_check_fields: a peer
 * reaches it by calling a ref passed on to a third party), under the
 * struct's run-time type from the services' tables: it must accept exactly
 * what the generated decoder accepts, having charged the decode budget
 * byte for byte alike, or a caller could get the owner to drop its
 * connection (a value the check let through) or be refused for a valid one.
 *
 * With bit 1 of byte 1 set, byte 0 picks a method of shapes' services
 * instead, and the rest is a call's arguments: the method's generated
 * dispatch and that check (ember_proxy_check_args, the argument struct
 * included) must accept and refuse alike, charging the same budget.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ember/codec.h>

#include "common.h"
#include "ref-internal.h" /* ember_proxy_check_fields, ember_proxy_check_args */
#include "shapes.h"

typedef struct shape {
    const char *name;
    size_t size;
    int (*dec)(ember_dec *d, void *v);
    void (*enc)(ember_enc *e, const void *v);
} shape;

#define X(T)                                                                 \
    static int dec_##T(ember_dec *d, void *v) { return T##_decode(d, v); }  \
    static void enc_##T(ember_enc *e, const void *v) { T##_encode(e, v); }
#include "structs.inc"
#undef X

static const shape shapes[] = {
#define X(T) { #T, sizeof(T), dec_##T, enc_##T },
#include "structs.inc"
#undef X
};
#define NSHAPES (sizeof shapes / sizeof shapes[0])

/* The run-time type of each shape ("shapes.Scalars" for shapes_Scalars),
 * found in the tables of the services that use it; NULL for a struct no
 * method reaches (no proxy checks it). */
static const ember_type *types[NSHAPES];

static bool same_name(const char *c_name, const char *idl_name)
{
    for (; *c_name && *idl_name; c_name++, idl_name++)
        if (*c_name != (*idl_name == '.' ? '_' : *idl_name))
            return false;
    return *c_name == *idl_name;
}

static void find_types(const ember_type *t, int depth)
{
    if (!t || depth > 64)
        return;
    find_types(t->elem, depth + 1);
    find_types(t->key, depth + 1);
    if (t->kind != EMBER_T_STRUCT)
        return;
    for (size_t i = 0; i < NSHAPES; i++) {
        if (!same_name(shapes[i].name, t->name))
            continue;
        if (types[i])
            return; /* seen: recursive types end here */
        types[i] = t;
    }
    for (uint32_t i = 0; i < t->n_fields; i++)
        find_types(t->fields[i].type, depth + 1);
}

static void find_all_types(void)
{
    static bool done;
    static const ember_service_desc *svcs[] = { &shapes_Store_service,
                                                &shapes_Watcher_service };
    if (done)
        return;
    done = true;
    size_t found = 0;
    for (size_t k = 0; k < sizeof svcs / sizeof svcs[0]; k++) {
        for (uint32_t i = 0; i < svcs[k]->n_methods; i++) {
            const ember_method_desc *m = &svcs[k]->methods[i];
            for (uint32_t j = 0; j < m->n_params; j++)
                find_types(m->params[j].type, 0);
            find_types(m->result, 0);
            for (uint32_t j = 0; j < m->n_raises; j++)
                find_types(m->raises[j].type, 0);
        }
    }
    for (size_t i = 0; i < NSHAPES; i++)
        found += types[i] != NULL;
    if (getenv("FUZZ_GENERATED_TYPES"))
        for (size_t i = 0; i < NSHAPES; i++)
            fprintf(stderr, "%s: %s\n", shapes[i].name, types[i] ? "checked" : "-");
    /* The services' tables name most shapes: finding none would make the
     * comparison below vacuous. */
    if (found < NSHAPES / 2) {
        fprintf(stderr, "fuzz_generated: run-time types of %zu shapes of %zu\n",
                found, (size_t)NSHAPES);
        abort();
    }
}

static void die(const shape *s, const char *what)
{
    fprintf(stderr, "fuzz_generated: %s: %s\n", s->name, what);
    abort();
}

/* Encodes v into a fresh buffer; NULL if it does not fit in cap. */
static uint8_t *encode(const shape *s, const void *v, size_t cap, size_t *len)
{
    uint8_t *buf = malloc(cap);
    if (!buf)
        return NULL;
    ember_enc e;
    ember_enc_init_fixed(&e, buf, cap);
    s->enc(&e, v);
    if (e.failed) {
        free(buf);
        return NULL;
    }
    *len = ember_enc_len(&e);
    return buf;
}

/* Handlers none of which is set: a dispatch that decoded its arguments
 * answers "method not implemented" (to no call). */
static const shapes_Watcher_handlers no_watcher;
static const shapes_Store_handlers no_store;

static void check_method(uint8_t pick, const uint8_t *in, size_t n, ember_dec_limits lim)
{
    const ember_service_desc *svc = pick & 1 ? &shapes_Store_service : &shapes_Watcher_service;
    const void *none = pick & 1 ? (const void *)&no_store : (const void *)&no_watcher;
    const ember_method_desc *m = &svc->methods[(pick >> 1) % svc->n_methods];
    if (!m->n_params) /* a proxy forwards such a call as it came */
        return;
    ember_arena *a = ember_arena_new();
    if (!a)
        abort();
    ember_dec d, c;
    ember_dec_init(&d, in, n, a);
    ember_dec_init(&c, in, n, NULL);
    d.lim = c.lim = lim;
    d.depth = c.depth = 1; /* a call's payload is its first level */
    int r = m->dispatch(NULL, &d, none, NULL);
    int k = ember_proxy_check_args(&c, m);
    if ((r == 0) != (k == 0) || (r == 0 && d.used != c.used)) {
        fprintf(stderr, "fuzz_generated: %s.%s: dispatch %d (%s, %zu bytes), "
                "check %d (%s, %zu bytes)\n", svc->name, m->name, r,
                d.why ? d.why : "ok", d.used, k, c.why ? c.why : "ok", c.used);
        abort();
    }
    ember_arena_free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const shape *s = &shapes[data[0] % NSHAPES];
    /* The default decode budget, or a tight one that fires often. */
    ember_dec_limits lim = { 32, 4096, 4096, 16, 1u << 16 };
    if (data[1] & 1)
        lim = (ember_dec_limits){ 4, 8, 8, 2, 256 };
    const uint8_t *in = data + 2;
    size_t n = size - 2;
    if (data[1] & 2) {
        check_method(data[0], in, n, lim);
        return 0;
    }

    uint8_t *copy = malloc(n ? n : 1);
    ember_arena *a1 = ember_arena_new(), *a2 = ember_arena_new();
    void *v1 = calloc(1, s->size), *v2 = calloc(1, s->size);
    if (!copy || !a1 || !a2 || !v1 || !v2)
        abort();
    if (n)
        memcpy(copy, in, n);

    ember_dec d;
    ember_dec_init(&d, copy, n, a1);
    d.lim = lim;
    int r = s->dec(&d, v1);
    if (r != 0 && r != -1)
        die(s, "decode returned neither 0 nor -1");
    if (r == -1 && !d.why)
        die(s, "decode failed without a reason");
    find_all_types();
    const ember_type *t = types[s - shapes];
    if (t) {
        ember_dec dc;
        ember_dec_init(&dc, copy, n, NULL);
        dc.lim = lim;
        int rc = ember_proxy_check_fields(&dc, t->fields, t->n_fields);
        if (rc == -1 && !dc.why)
            die(s, "the proxy's check failed without a reason");
        if ((rc == 0) != (r == 0) || (r == 0 && dc.used != d.used)) {
            fprintf(stderr, "decoder %d (%s, %zu bytes charged), proxy check %d "
                    "(%s, %zu bytes charged)\n", r, d.why ? d.why : "ok", d.used,
                    rc, dc.why ? dc.why : "ok", dc.used);
            die(s, "the proxy's check and the generated decoder disagree");
        }
    }
    if (r == 0) {
        if (d.why)
            die(s, "decode succeeded with a reason set");
        if (d.p != d.end)
            die(s, "decode succeeded without consuming its region");
        /* Encoded size is bounded by what was decoded plus the zero fields
         * an encoder may write; 64 KiB of slack is plenty at these limits. */
        size_t cap = 16 * n + 65536, l1 = 0, l2 = 0;
        uint8_t *e1 = encode(s, v1, cap, &l1);
        if (e1) {
            ember_dec d2;
            ember_dec_init(&d2, e1, l1, a2);
            /* No budget here: the canonical encoding can be much shorter
             * than the input (skipped unknown fields), so the same value
             * may legitimately need a larger ratio. */
            d2.lim = (ember_dec_limits){ 64, 1u << 20, 1u << 20, UINT32_MAX,
                                         UINT32_MAX };
            if (s->dec(&d2, v2) != 0) {
                fprintf(stderr, "re-decoding failed: %s\n", d2.why ? d2.why : "?");
                die(s, "a re-encoded value does not decode");
            }
            uint8_t *e2 = encode(s, v2, cap, &l2);
            if (!e2)
                die(s, "the second encoding did not fit where the first did");
            if (l1 != l2 || memcmp(e1, e2, l1) != 0)
                die(s, "encode(decode(encode(x))) differs from encode(x)");
            free(e2);
            free(e1);
        }
    }
    free(v1);
    free(v2);
    ember_arena_free(a1);
    ember_arena_free(a2);
    free(copy);
    return 0;
}
