/*
 * roundtrip.c — the generated codecs of tests/idl/shapes.idl, end to end on
 * the runtime's codec: encode -> decode -> compare, for empty, maximal and
 * nested values of every type shape; every truncation of every encoding;
 * unknown fields; range checks; the exact bytes of a few values.
 *
 * "Compare" re-encodes the decoded value and compares bytes with the first
 * encoding (the encoder is deterministic), plus explicit checks of the
 * semantics the bytes cannot show (never-NULL strings, has_ flags, NaN).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "../common/suites.h"

#include "shapes.h"
#include "ref-internal.h" /* ember_proxy_check_fields */

#define BUFSZ (8u << 20)

/*
 * Per type T: enc_T (encode into a buffer, the length), dec_T (decode n
 * bytes; 0 or -1, with d.why set exactly on failure) and rt_T, the round
 * trip: encode in, decode into out, re-encode out and compare the bytes;
 * then decode every proper prefix of the encoding from a malloc'd copy
 * (each must succeed or fail cleanly, never read past the end: run it
 * under ASan/valgrind).
 */
#define DEF_CODEC(T)                                                          \
    static size_t enc_##T(const T *v, uint8_t *buf)                           \
    {                                                                         \
        ember_enc e;                                                          \
        ember_enc_init_fixed(&e, buf, BUFSZ);                                 \
        T##_encode(&e, v);                                                    \
        CU_ASSERT_FATAL(!e.failed);                                           \
        return ember_enc_len(&e);                                             \
    }                                                                         \
    static int dec_##T(const uint8_t *buf, size_t n, T *out)                  \
    {                                                                         \
        ember_dec d;                                                          \
        ember_dec_init(&d, buf, n, arena);                                    \
        int r = T##_decode(&d, out);                                          \
        CU_ASSERT(r == 0 || r == -1);                                         \
        CU_ASSERT((r == 0) == (d.why == NULL));                               \
        return r;                                                             \
    }                                                                         \
    static void rt_##T(const T *in, T *out)                                   \
    {                                                                         \
        size_t n = enc_##T(in, buf1);                                         \
        CU_ASSERT_FATAL(dec_##T(buf1, n, out) == 0);                          \
        size_t m = enc_##T(out, buf2);                                        \
        CU_ASSERT_EQUAL(n, m);                                                \
        CU_ASSERT(memcmp(buf1, buf2, n) == 0);                                \
        for (size_t k = 0; k < n; k++) {                                      \
            T tmp;                                                            \
            uint8_t *copy = malloc(k ? k : 1);                                \
            memcpy(copy, buf1, k);                                            \
            (void)dec_##T(copy, k, &tmp);                                     \
            free(copy);                                                       \
        }                                                                     \
    }

static uint8_t *buf1, *buf2;
static ember_arena *arena;

DEF_CODEC(shapes_Scalars)
DEF_CODEC(shapes_Inner)
DEF_CODEC(shapes_Outer)
DEF_CODEC(shapes_Containers)
DEF_CODEC(shapes_Optionals)
DEF_CODEC(shapes_Tree)
DEF_CODEC(shapes_NotFound)
DEF_CODEC(shapes_Empty2)

static int setup(void)
{
    buf1 = malloc(BUFSZ);
    buf2 = malloc(BUFSZ);
    arena = ember_arena_new();
    return buf1 && buf2 && arena ? 0 : -1;
}

static int teardown(void)
{
    free(buf1);
    free(buf2);
    ember_arena_free(arena);
    return 0;
}

/* ---- scalars ---- */

static void test_scalars_empty(void)
{
    shapes_Scalars in, out;
    shapes_Scalars_init(&in);
    CU_ASSERT_STRING_EQUAL(in.s, "");
    rt_shapes_Scalars(&in, &out);
    CU_ASSERT_PTR_NOT_NULL(out.s);
    CU_ASSERT_STRING_EQUAL(out.s, "");
    CU_ASSERT_EQUAL(out.raw.len, 0);
    CU_ASSERT_EQUAL(out.i64v, 0);

    /* an empty region decodes to the initialised value */
    CU_ASSERT_EQUAL(dec_shapes_Scalars(buf1, 0, &out), 0);
    CU_ASSERT_STRING_EQUAL(out.s, "");
    CU_ASSERT_FALSE(out.b);
}

static void test_scalars_max(void)
{
    static uint8_t blob[300];
    char *big = malloc(100001);
    for (size_t i = 0; i < 100000; i++)
        big[i] = (char)('a' + i % 26);
    big[100000] = '\0';
    for (size_t i = 0; i < sizeof blob; i++)
        blob[i] = (uint8_t)i;

    shapes_Scalars in, out;
    shapes_Scalars_init(&in);
    in.b = true;
    in.i8v = INT8_MIN;
    in.i16v = INT16_MIN;
    in.i32v = INT32_MIN;
    in.i64v = INT64_MIN;
    in.u8v = UINT8_MAX;
    in.u16v = UINT16_MAX;
    in.u32v = UINT32_MAX;
    in.u64v = UINT64_MAX;
    in.f32v = NAN;
    in.f64v = -INFINITY;
    in.s = big;
    in.raw.data = blob;
    in.raw.len = sizeof blob;
    in.temp = shapes_Temp_cold;
    in.color = common_Color_blue;
    rt_shapes_Scalars(&in, &out);
    CU_ASSERT(out.b);
    CU_ASSERT_EQUAL(out.i8v, INT8_MIN);
    CU_ASSERT_EQUAL(out.i16v, INT16_MIN);
    CU_ASSERT_EQUAL(out.i32v, INT32_MIN);
    CU_ASSERT(out.i64v == INT64_MIN);
    CU_ASSERT_EQUAL(out.u8v, UINT8_MAX);
    CU_ASSERT_EQUAL(out.u16v, UINT16_MAX);
    CU_ASSERT_EQUAL(out.u32v, UINT32_MAX);
    CU_ASSERT(out.u64v == UINT64_MAX);
    CU_ASSERT(isnan(out.f32v));
    CU_ASSERT(isinf(out.f64v) && out.f64v < 0);
    CU_ASSERT_STRING_EQUAL(out.s, big);
    CU_ASSERT(out.s != big);                    /* a copy in the arena */
    CU_ASSERT_EQUAL(out.raw.len, sizeof blob);
    CU_ASSERT(memcmp(out.raw.data, blob, sizeof blob) == 0);
    CU_ASSERT_EQUAL(out.temp, shapes_Temp_cold);
    CU_ASSERT_EQUAL(out.color, common_Color_blue);

    /* the other extremes */
    in.i8v = INT8_MAX;
    in.i16v = INT16_MAX;
    in.i32v = INT32_MAX;
    in.i64v = INT64_MAX;
    in.f32v = -0.0f;
    in.f64v = 1e-308;
    in.s = "h\xc3\xa9llo";
    rt_shapes_Scalars(&in, &out);
    CU_ASSERT(out.i64v == INT64_MAX);
    CU_ASSERT_EQUAL(out.i32v, INT32_MAX);
    CU_ASSERT(signbit(out.f32v));
    CU_ASSERT_EQUAL(out.f64v, 1e-308);
    CU_ASSERT_STRING_EQUAL(out.s, "h\xc3\xa9llo");
    free(big);
}

/* An enum value this version does not know is kept as is. */
static void test_enum_unknown_kept(void)
{
    shapes_Scalars in, out;
    shapes_Scalars_init(&in);
    in.temp = (shapes_Temp)-12345;
    in.color = (common_Color)77;
    rt_shapes_Scalars(&in, &out);
    CU_ASSERT_EQUAL((int)out.temp, -12345);
    CU_ASSERT_EQUAL((int)out.color, 77);
    CU_ASSERT_PTR_NULL(shapes_Temp_name(out.temp));
    CU_ASSERT_STRING_EQUAL(shapes_Temp_name(shapes_Temp_hot), "hot");
    CU_ASSERT_STRING_EQUAL(shapes_Temp_name(shapes_Temp_cold), "cold");
    CU_ASSERT_STRING_EQUAL(common_Color_name(common_Color_green), "green");
}

/* A peer cannot smuggle a value the C type cannot hold. */
static void test_narrow_range_checked(void)
{
    shapes_Scalars out;
    ember_enc e;
    static const struct { uint32_t tag; uint64_t raw; } bad[] = {
        { 2, 256 },                 /* i8 zigzag 256 = 128 */
        { 3, 1u << 16 },            /* i16 */
        { 4, 1ull << 32 },          /* i32 */
        { 6, 256 },                 /* u8 */
        { 7, 1u << 16 },            /* u16 */
        { 8, 1ull << 32 },          /* u32 */
        { 14, 1ull << 32 },         /* enum: int32 on the wire */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ember_enc_init_fixed(&e, buf1, BUFSZ);
        ember_enc_uint(&e, bad[i].tag, bad[i].raw);
        CU_ASSERT_EQUAL(dec_shapes_Scalars(buf1, ember_enc_len(&e), &out), -1);
    }
    /* a known field with the wrong wire type */
    ember_enc_init_fixed(&e, buf1, BUFSZ);
    ember_enc_string(&e, 1, "not a bool");
    CU_ASSERT_EQUAL(dec_shapes_Scalars(buf1, ember_enc_len(&e), &out), -1);
}

/* The bytes are protobuf's: readable with protoc --decode_raw. */
static void test_wire_bytes(void)
{
    shapes_Inner in;
    shapes_Inner_init(&in);
    in.depth = -1;
    in.label = "a";
    size_t n = enc_shapes_Inner(&in, buf1);
    static const uint8_t want[] = { 0x08, 0x01, 0x12, 0x01, 'a' };
    CU_ASSERT_EQUAL(n, sizeof want);
    CU_ASSERT(memcmp(buf1, want, sizeof want) == 0);
    shapes_Inner back;
    rt_shapes_Inner(&in, &back);
    CU_ASSERT_EQUAL(back.depth, -1);

    /* nested struct: LEN { fields }; list: LEN { count, elements } */
    shapes_Outer o;
    shapes_Outer_init(&o);
    o.inner.depth = 1;
    n = enc_shapes_Outer(&o, buf1);
    static const uint8_t want_outer[] = {
        0x0a, 0x04, 0x08, 0x02, 0x12, 0x00,                 /* inner */
        0x12, 0x0a, 0x0d, 0, 0, 0, 0, 0x15, 0, 0, 0, 0,     /* where */
        0x1a, 0x00,                                         /* nothing */
    };
    CU_ASSERT_EQUAL(n, sizeof want_outer);
    CU_ASSERT(memcmp(buf1, want_outer, sizeof want_outer) == 0);

    shapes_Containers c;
    shapes_Containers_init(&c);
    uint32_t nums[] = { 1, 300 };
    c.nums.items = nums;
    c.nums.n = 2;
    n = enc_shapes_Containers(&c, buf1);
    static const uint8_t want_list[] = { 0x0a, 0x04, 0x02, 0x01, 0xac, 0x02 };
    CU_ASSERT(n > sizeof want_list);
    CU_ASSERT(memcmp(buf1, want_list, sizeof want_list) == 0);
}

/* ---- nested structs ---- */

static void test_nested(void)
{
    shapes_Outer in, out;
    shapes_Outer_init(&in);
    CU_ASSERT_STRING_EQUAL(in.inner.label, "");
    rt_shapes_Outer(&in, &out);
    CU_ASSERT_STRING_EQUAL(out.inner.label, "");

    in.inner.depth = -7;
    in.inner.label = "deep";
    in.where.x = 1.5f;
    in.where.y = -2.25f;
    rt_shapes_Outer(&in, &out);
    CU_ASSERT_EQUAL(out.inner.depth, -7);
    CU_ASSERT_STRING_EQUAL(out.inner.label, "deep");
    CU_ASSERT_EQUAL(out.where.x, 1.5f);
    CU_ASSERT_EQUAL(out.where.y, -2.25f);

    /* an absent nested struct still has "" strings */
    CU_ASSERT_EQUAL(dec_shapes_Outer(buf1, 0, &out), 0);
    CU_ASSERT_PTR_NOT_NULL(out.inner.label);
}

/* ---- containers ---- */

static void test_containers_empty(void)
{
    shapes_Containers in, out;
    shapes_Containers_init(&in);
    rt_shapes_Containers(&in, &out);
    CU_ASSERT_EQUAL(out.nums.n, 0);
    CU_ASSERT_EQUAL(out.by_name.n, 0);
    CU_ASSERT_EQUAL(out.stats.n, 0);
}

static void test_containers_full(void)
{
    enum { MANY = 10000 };
    shapes_Containers in, out;
    shapes_Containers_init(&in);

    uint32_t *nums = malloc(MANY * sizeof *nums);
    for (uint32_t i = 0; i < MANY; i++)
        nums[i] = i * 2654435761u;
    in.nums.items = nums;
    in.nums.n = MANY;

    uint32_t r0[] = { 1, 2, 3 }, r2[] = { UINT32_MAX };
    shapes_list_u32 rows[] = { { r0, 3 }, { NULL, 0 }, { r2, 1 } };
    in.grid.items = rows;
    in.grid.n = 3;

    const char *names[] = { "", "one", "two \xe2\x82\xac", NULL };
    in.names.items = names;
    in.names.n = 4;                     /* NULL encodes as "" */

    uint8_t raw[] = { 0, 1, 0, 255 };
    ember_bytes blobs[] = { { raw, sizeof raw }, { NULL, 0 } };
    in.blobs.items = blobs;
    in.blobs.n = 2;

    shapes_Inner inners[2];
    shapes_Inner_init(&inners[0]);
    shapes_Inner_init(&inners[1]);
    inners[1].depth = 9;
    inners[1].label = "x";
    in.inners.items = inners;
    in.inners.n = 2;

    common_Vec path[] = { { 1, 2 }, { -3, 4 } };
    in.path.items = path;
    in.path.n = 2;

    float fl[] = { 0.25f, -1e30f };
    in.floats.items = fl;
    in.floats.n = 2;
    double db[] = { 1e300, -0.0, 3.5 };
    in.doubles.items = db;
    in.doubles.n = 3;
    bool flags[] = { true, false, true };
    in.flags.items = flags;
    in.flags.n = 3;
    shapes_Temp temps[] = { shapes_Temp_cold, shapes_Temp_hot, (shapes_Temp)5 };
    in.temps.items = temps;
    in.temps.n = 3;

    const char *keys[] = { "a", "b" };
    in.by_name.keys = keys;
    in.by_name.vals = inners;
    in.by_name.n = 2;

    uint32_t tk[] = { 7, 0 };
    shapes_list_string tv[] = { { names, 3 }, { NULL, 0 } };
    in.tags.keys = tk;
    in.tags.vals = tv;
    in.tags.n = 2;

    int64_t wk[] = { INT64_MIN, INT64_MAX };
    double wv[] = { 0.5, -0.5 };
    in.weights.keys = wk;
    in.weights.vals = wv;
    in.weights.n = 2;

    shapes_Temp pk[] = { shapes_Temp_mild };
    common_Color pv[] = { common_Color_red };
    in.palette.keys = pk;
    in.palette.vals = pv;
    in.palette.n = 1;

    int64_t sv[] = { -1, 1 };
    shapes_map_string_i64 st[] = { { keys, sv, 2 }, { NULL, NULL, 0 } };
    in.stats.items = st;
    in.stats.n = 2;

    int64_t sg[] = { INT64_MIN, -1, 0, 1 };
    in.ints.items = sg;
    in.ints.n = 4;

    /* the round trip, without the per-prefix decodes (10k elements) */
    size_t n = enc_shapes_Containers(&in, buf1);
    CU_ASSERT_FATAL(dec_shapes_Containers(buf1, n, &out) == 0);
    size_t m = enc_shapes_Containers(&out, buf2);
    CU_ASSERT_EQUAL(n, m);
    CU_ASSERT(memcmp(buf1, buf2, n) == 0);

    CU_ASSERT_EQUAL_FATAL(out.nums.n, MANY);
    CU_ASSERT(memcmp(out.nums.items, nums, MANY * sizeof *nums) == 0);
    CU_ASSERT_EQUAL_FATAL(out.grid.n, 3);
    CU_ASSERT_EQUAL(out.grid.items[0].n, 3);
    CU_ASSERT_EQUAL(out.grid.items[0].items[2], 3);
    CU_ASSERT_EQUAL(out.grid.items[1].n, 0);
    CU_ASSERT_EQUAL(out.grid.items[2].items[0], UINT32_MAX);
    CU_ASSERT_EQUAL_FATAL(out.names.n, 4);
    CU_ASSERT_STRING_EQUAL(out.names.items[2], "two \xe2\x82\xac");
    CU_ASSERT_STRING_EQUAL(out.names.items[3], "");
    CU_ASSERT_EQUAL(out.blobs.items[0].len, 4);
    CU_ASSERT_EQUAL(out.blobs.items[0].data[3], 255);
    CU_ASSERT_STRING_EQUAL(out.inners.items[0].label, "");
    CU_ASSERT_STRING_EQUAL(out.inners.items[1].label, "x");
    CU_ASSERT_EQUAL(out.path.items[1].x, -3);
    CU_ASSERT_EQUAL(out.floats.items[1], -1e30f);
    CU_ASSERT(signbit(out.doubles.items[1]));
    CU_ASSERT(out.flags.items[2]);
    CU_ASSERT_EQUAL((int)out.temps.items[2], 5);
    CU_ASSERT_STRING_EQUAL(out.by_name.keys[1], "b");
    CU_ASSERT_EQUAL(out.by_name.vals[1].depth, 9);
    CU_ASSERT_EQUAL(out.tags.keys[0], 7);
    CU_ASSERT_EQUAL(out.tags.vals[0].n, 3);
    CU_ASSERT_STRING_EQUAL(out.tags.vals[0].items[1], "one");
    CU_ASSERT(out.weights.keys[0] == INT64_MIN);
    CU_ASSERT_EQUAL(out.weights.vals[1], -0.5);
    CU_ASSERT_EQUAL(out.palette.vals[0], common_Color_red);
    CU_ASSERT_EQUAL(out.stats.items[0].vals[0], -1);
    CU_ASSERT_EQUAL(out.stats.items[1].n, 0);
    CU_ASSERT(out.ints.items[0] == INT64_MIN);

    /* every truncation of a smaller but complete value */
    in.nums.n = 5;
    rt_shapes_Containers(&in, &out);
    free(nums);
}

/* A list count larger than the bytes present is refused before allocating. */
static void test_container_count_lies(void)
{
    shapes_Containers out;
    static const uint8_t lie[] = { 0x0a, 0x05, 0xff, 0xff, 0xff, 0x7f, 0x01 };
    CU_ASSERT_EQUAL(dec_shapes_Containers(lie, sizeof lie, &out), -1);
    static const uint8_t trailing[] = { 0x0a, 0x03, 0x01, 0x01, 0x01 };
    CU_ASSERT_EQUAL(dec_shapes_Containers(trailing, sizeof trailing, &out), -1);
}

/* ---- optionals ---- */

static void test_optionals(void)
{
    shapes_Optionals in, out;
    shapes_Optionals_init(&in);
    rt_shapes_Optionals(&in, &out);
    CU_ASSERT_FALSE(out.has_b || out.has_i || out.has_u || out.has_f ||
                    out.has_s || out.has_raw || out.has_temp ||
                    out.has_nums || out.has_stats);
    CU_ASSERT_PTR_NULL(out.inner);
    CU_ASSERT_PTR_NULL(out.vec);
    CU_ASSERT_STRING_EQUAL(out.s, "");
    CU_ASSERT_EQUAL(enc_shapes_Optionals(&in, buf1), 0);   /* nothing written */

    /* present with zero values: still present */
    shapes_Inner inner;
    shapes_Inner_init(&inner);
    common_Vec vec = { 0, 0 };
    in.has_b = in.has_i = in.has_u = in.has_f = in.has_s = in.has_raw = true;
    in.has_temp = in.has_nums = in.has_stats = true;
    in.inner = &inner;
    in.vec = &vec;
    rt_shapes_Optionals(&in, &out);
    CU_ASSERT(out.has_b && out.has_i && out.has_u && out.has_f && out.has_s &&
              out.has_raw && out.has_temp && out.has_nums && out.has_stats);
    CU_ASSERT_PTR_NOT_NULL(out.inner);
    CU_ASSERT_PTR_NOT_NULL(out.vec);
    CU_ASSERT_STRING_EQUAL(out.inner->label, "");

    /* and with values */
    in.b = true;
    in.i = INT64_MIN;
    in.u = 42;
    in.f = NAN;
    in.s = "opt";
    in.temp = shapes_Temp_hot;
    inner.label = "in";
    vec.y = 8;
    uint32_t nums[] = { 5 };
    in.nums.items = nums;
    in.nums.n = 1;
    rt_shapes_Optionals(&in, &out);
    CU_ASSERT(out.i == INT64_MIN);
    CU_ASSERT(isnan(out.f));
    CU_ASSERT_STRING_EQUAL(out.s, "opt");
    CU_ASSERT_STRING_EQUAL(out.inner->label, "in");
    CU_ASSERT_EQUAL(out.vec->y, 8);
    CU_ASSERT_EQUAL(out.nums.items[0], 5);
}

/* ---- recursion ---- */

static void test_tree(void)
{
    enum { DEPTH = 20 };
    shapes_Tree nodes[DEPTH], kids[3], in, out;
    for (int i = 0; i < DEPTH; i++) {
        shapes_Tree_init(&nodes[i]);
        nodes[i].value = i;
        nodes[i].left = i + 1 < DEPTH ? &nodes[i + 1] : NULL;
    }
    for (int i = 0; i < 3; i++) {
        shapes_Tree_init(&kids[i]);
        kids[i].value = -i;
    }
    kids[1].right = &nodes[DEPTH - 2];
    shapes_Tree_init(&in);
    in.value = 100;
    in.left = &nodes[0];
    in.kids.items = kids;
    in.kids.n = 3;
    rt_shapes_Tree(&in, &out);
    const shapes_Tree *t = &out;
    int depth = 0;
    while (t->left) {
        t = t->left;
        depth++;
    }
    CU_ASSERT_EQUAL(depth, DEPTH);
    CU_ASSERT_EQUAL(t->value, DEPTH - 1);
    CU_ASSERT_EQUAL_FATAL(out.kids.n, 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out.kids.items[1].right);
    CU_ASSERT_EQUAL(out.kids.items[1].right->value, DEPTH - 2);
}

/* Nesting beyond the decoder's depth limit fails cleanly. */
static void test_tree_too_deep(void)
{
    enum { DEPTH = 200 };
    shapes_Tree *nodes = malloc(DEPTH * sizeof *nodes), out;
    for (int i = 0; i < DEPTH; i++) {
        shapes_Tree_init(&nodes[i]);
        nodes[i].left = i + 1 < DEPTH ? &nodes[i + 1] : NULL;
    }
    size_t n = enc_shapes_Tree(&nodes[0], buf1);
    CU_ASSERT_EQUAL(dec_shapes_Tree(buf1, n, &out), -1);
    free(nodes);
}

/* ---- schema evolution inside one schema ---- */

/* Unknown fields of every wire type are skipped. */
static void test_unknown_fields_skipped(void)
{
    ember_enc e;
    ember_enc_init_fixed(&e, buf1, BUFSZ);
    ember_enc_uint(&e, 50, UINT64_MAX);
    ember_enc_sint(&e, 1, -5);                          /* depth */
    ember_enc_f64(&e, 51, 1.0);
    ember_enc_string(&e, 52, "unknown");
    ember_enc_f32(&e, 53, 2.0f);
    ember_enc_key(&e, 54, EMBER_WT_LEN);                /* an unknown struct */
    size_t mark = ember_enc_len_begin(&e);
    ember_enc_string(&e, 1, "nested");
    ember_enc_len_end(&e, mark);
    ember_enc_string(&e, 2, "label");
    ember_enc_uint(&e, EMBER_TAG_MAX, 1);
    shapes_Inner out;
    CU_ASSERT_EQUAL(dec_shapes_Inner(buf1, ember_enc_len(&e), &out), 0);
    CU_ASSERT_EQUAL(out.depth, -5);
    CU_ASSERT_STRING_EQUAL(out.label, "label");
}

/* ---- the rest of the surface ---- */

static void test_errors_constants(void)
{
    shapes_NotFound nf, nfo;
    shapes_NotFound_init(&nf);
    nf.key = "k";
    rt_shapes_NotFound(&nf, &nfo);
    CU_ASSERT_STRING_EQUAL(nfo.key, "k");
    shapes_Empty2 e2, e2o;
    shapes_Empty2_init(&e2);
    rt_shapes_Empty2(&e2, &e2o);

    /* error ids: FNV-1a 32 of "module.Name" */
    uint32_t h = 2166136261u;
    for (const char *s = "shapes.NotFound"; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    CU_ASSERT_EQUAL(shapes_NotFound_ID, h);
    CU_ASSERT_NOT_EQUAL(common_Denied_ID, shapes_NotFound_ID);

    CU_ASSERT(shapes_FLAG == true);
    CU_ASSERT_EQUAL(shapes_SMALL, INT8_MIN);
    CU_ASSERT_EQUAL(shapes_NEG, INT32_MIN);
    CU_ASSERT(shapes_HUGE_NEG == INT64_MIN);
    CU_ASSERT_EQUAL(shapes_BYTE, 255);
    CU_ASSERT_EQUAL(shapes_MAX_ROOM, 64);
    CU_ASSERT(shapes_BIG == UINT64_MAX);
    CU_ASSERT_EQUAL(shapes_HALF, 0.5f);
    CU_ASSERT_EQUAL(shapes_PI, 3.141592653589793);
    CU_ASSERT_STRING_EQUAL(shapes_GREETING, "hello \"world\"\n\t?\?=");
    ember_bytes magic = shapes_MAGIC;
    static const uint8_t magic_want[] = { 'E', 0, 'M', 1, 0xff, '"', '?', '?', '=' };
    CU_ASSERT_EQUAL(magic.len, sizeof magic_want);
    CU_ASSERT(memcmp(magic.data, magic_want, sizeof magic_want) == 0);
    CU_ASSERT_EQUAL(shapes_NOTHING.len, 0);
    CU_ASSERT_PTR_NOT_NULL(shapes_NOTHING.data);

    CU_ASSERT_EQUAL(shapes_Store_get_ID, 701);
    CU_ASSERT_STRING_EQUAL(shapes_Store_service.name, "shapes.Store");
    CU_ASSERT_EQUAL(shapes_Store_service.n_methods, 11);
    CU_ASSERT_EQUAL(shapes_Store_service.methods[4].id, shapes_Store_forget_ID);
    CU_ASSERT(shapes_Store_service.methods[4].oneway);
    CU_ASSERT_FALSE(shapes_Store_service.methods[0].oneway);
    CU_ASSERT_NOT_EQUAL(shapes_Store_service.fingerprint, 0);
}

/* ---- a proxy's check agrees with the generated decoders ---- */

/* The type of parameter `param` of Store's method `id`: the tables a
 * proxy checks a forwarded call's arguments with. */
static const ember_type *store_param(uint32_t id, uint32_t param)
{
    for (uint32_t i = 0; i < shapes_Store_service.n_methods; i++)
        if (shapes_Store_service.methods[i].id == id)
            return shapes_Store_service.methods[i].params[param].type;
    CU_FAIL_FATAL("no such method");
    return NULL;
}

typedef int (*decode_fn)(ember_dec *d, void *v);
static int decode_scalars(ember_dec *d, void *v) { return shapes_Scalars_decode(d, v); }
static int decode_containers(ember_dec *d, void *v) { return shapes_Containers_decode(d, v); }
static int decode_optionals(ember_dec *d, void *v) { return shapes_Optionals_decode(d, v); }
static int decode_tree(ember_dec *d, void *v) { return shapes_Tree_decode(d, v); }

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

/* Decodes p[0..n) with the generated decoder and checks it as a proxy
 * does, under lim: both accept (having charged the decode budget alike)
 * or both refuse. False on a disagreement. */
static bool agree(const uint8_t *p, size_t n, const ember_type *t, decode_fn dec,
                  const ember_dec_limits *lim)
{
    union { shapes_Scalars s; shapes_Containers c; shapes_Optionals o; shapes_Tree t; } v;
    ember_dec d1, d2;
    ember_arena_reset(arena);
    ember_dec_init(&d1, p, n, arena);
    ember_dec_init(&d2, p, n, NULL);
    d1.lim = d2.lim = *lim;
    int r1 = dec(&d1, &v);
    int r2 = ember_proxy_check_fields(&d2, t->fields, t->n_fields);
    if ((r1 == 0) == (r2 == 0) && (r1 != 0 || d1.used == d2.used))
        return true;
    printf("\n    %s, %zu bytes: decoder %d (%s, %zu bytes), check %d (%s, %zu bytes)",
           t->name, n, r1, d1.why ? d1.why : "ok", d1.used, r2,
           d2.why ? d2.why : "ok", d2.used);
    return false;
}

/* Values of every shape, valid and then mutated (bytes changed, cut,
 * repeated), under the default limits and tight ones: the check a proxy
 * makes before it forwards arguments refuses exactly what the owner's
 * generated decoder would refuse, so the owner never drops its
 * connection for what a caller sent through the proxy, and charges the
 * decode budget byte for byte as that decoder does. */
static void test_proxy_check_agrees(void)
{
    static const ember_dec_limits lims[] = {
        EMBER_DEC_LIMITS_DEFAULT,
        {4, 3, 4, 16, 1u << 16},   /* depth, elements, strings */
        {64, 1u << 24, 1u << 24, 1, 64}, /* the budget */
        {64, 1u << 24, 1u << 24, 2, 0},
    };
    static uint8_t samples[4][4096];
    size_t lens[4];
    const ember_type *types[4] = {store_param(shapes_Store_put_ID, 1),
                                  store_param(shapes_Store_echo_ID, 0),
                                  store_param(shapes_Store_opt_ID, 0),
                                  store_param(shapes_Store_grow_ID, 0)};
    decode_fn decs[4] = {decode_scalars, decode_containers, decode_optionals, decode_tree};

    shapes_Scalars sc;
    shapes_Scalars_init(&sc);
    sc.b = true;
    sc.i8v = -5;
    sc.i16v = 300;
    sc.i32v = -70000;
    sc.i64v = INT64_MIN;
    sc.u8v = 200;
    sc.u16v = 60000;
    sc.u32v = UINT32_MAX;
    sc.u64v = UINT64_MAX;
    sc.f32v = 1.5f;
    sc.f64v = -2.25;
    sc.s = "h\xc3\xa9llo w\xe2\x82\xacrld";
    uint8_t raw[] = {0, 0xff, 0xc3, 0x28, 0};
    sc.raw.data = raw;
    sc.raw.len = sizeof raw;
    sc.temp = shapes_Temp_cold;
    sc.color = common_Color_red;
    lens[0] = enc_shapes_Scalars(&sc, samples[0]);

    shapes_Containers co;
    shapes_Containers_init(&co);
    uint32_t nums[] = {1, 300, 70000};
    co.nums = (shapes_list_u32){nums, 3};
    shapes_list_u32 rows[] = {{nums, 2}, {NULL, 0}};
    co.grid = (shapes_list_list_u32){rows, 2};
    const char *names[] = {"", "one", "\xe2\x82\xac", "8 bytes."};
    co.names = (shapes_list_string){names, 4};
    ember_bytes blobs[] = {{raw, sizeof raw}, {NULL, 0}};
    co.blobs = (shapes_list_bytes){blobs, 2};
    shapes_Inner inners[2];
    shapes_Inner_init(&inners[0]);
    shapes_Inner_init(&inners[1]);
    inners[1].depth = -9;
    inners[1].label = "x";
    co.inners = (shapes_list_Inner){inners, 2};
    common_Vec path[] = {{1, 2}, {-3, 4}};
    co.path = (shapes_list_common_Vec){path, 2};
    float fl[] = {0.25f};
    co.floats = (shapes_list_f32){fl, 1};
    double db[] = {1e300, -0.5};
    co.doubles = (shapes_list_f64){db, 2};
    bool flags[] = {true, false};
    co.flags = (shapes_list_bool){flags, 2};
    shapes_Temp temps[] = {shapes_Temp_hot, (shapes_Temp)5};
    co.temps = (shapes_list_Temp){temps, 2};
    const char *keys[] = {"a", "bc"};
    co.by_name = (shapes_map_string_Inner){keys, inners, 2};
    uint32_t tk[] = {7};
    shapes_list_string tv[] = {{names, 3}};
    co.tags = (shapes_map_u32_list_string){tk, tv, 1};
    int64_t wk[] = {INT64_MIN};
    double wv[] = {0.5};
    co.weights = (shapes_map_i64_f64){wk, wv, 1};
    shapes_Temp pk[] = {shapes_Temp_mild};
    common_Color pv[] = {common_Color_red};
    co.palette = (shapes_map_Temp_common_Color){pk, pv, 1};
    int64_t sv[] = {-1, 1};
    shapes_map_string_i64 st[] = {{keys, sv, 2}, {NULL, NULL, 0}};
    co.stats = (shapes_list_map_string_i64){st, 2};
    int64_t sg[] = {-1, 0, 1};
    co.ints = (shapes_list_i64){sg, 3};
    lens[1] = enc_shapes_Containers(&co, samples[1]);

    shapes_Optionals op;
    shapes_Optionals_init(&op);
    op.has_b = op.has_i = op.has_u = op.has_f = op.has_s = op.has_raw = true;
    op.has_temp = op.has_nums = op.has_stats = true;
    op.i = -3;
    op.u = 9;
    op.s = "opt";
    op.raw.data = raw;
    op.raw.len = 2;
    op.inner = &inners[1];
    op.vec = &path[1];
    op.nums = co.nums;
    op.stats = st[0];
    lens[2] = enc_shapes_Optionals(&op, samples[2]);

    enum { DEPTH = 6 };
    shapes_Tree nodes[DEPTH], kids[3];
    for (int i = 0; i < DEPTH; i++) {
        shapes_Tree_init(&nodes[i]);
        nodes[i].value = -i;
        nodes[i].left = i + 1 < DEPTH ? &nodes[i + 1] : NULL;
    }
    for (int i = 0; i < 3; i++)
        shapes_Tree_init(&kids[i]);
    kids[2].right = &nodes[DEPTH - 3];
    nodes[0].kids = (shapes_list_Tree){kids, 3};
    lens[3] = enc_shapes_Tree(&nodes[0], samples[3]);

    static const uint8_t odd[] = {0x00, 0x01, 0x02, 0x05, 0x08, 0x0a, 0x12, 0x7f,
                                  0x80, 0xc0, 0xed, 0xf4, 0xff};
    uint8_t m[8192];
    int bad = 0, refused = 0, total = 0;
    for (int k = 0; k < 4; k++) {
        for (size_t l = 0; l < sizeof lims / sizeof lims[0]; l++) {
            bad += !agree(samples[k], lens[k], types[k], decs[k], &lims[l]);
            for (int it = 0; it < 3000; it++) {
                size_t n = lens[k];
                memcpy(m, samples[k], n);
                for (int x = 1 + (int)rnd(3); x > 0; x--) {
                    uint32_t what = rnd(8);
                    size_t at = rnd((uint32_t)n);
                    if (what < 3) {
                        m[at] = (uint8_t)rnd(256);
                    } else if (what < 6) {
                        m[at] = odd[rnd(sizeof odd)];
                    } else if (what == 6) {
                        n = at;
                    } else if (n < sizeof m / 2) { /* a stretch repeated */
                        size_t len = 1 + rnd((uint32_t)(n - at));
                        memmove(m + at + len, m + at, n - at);
                        n += len;
                    }
                    if (n == 0)
                        break;
                }
                ember_dec d;
                ember_dec_init(&d, m, n, NULL);
                d.lim = lims[l];
                refused += ember_proxy_check_fields(&d, types[k]->fields,
                                                    types[k]->n_fields) != 0;
                bad += !agree(m, n, types[k], decs[k], &lims[l]);
                total++;
            }
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    /* the mutations reach both outcomes */
    CU_ASSERT(refused > total / 10 && refused < total - total / 10);
}

/* An encoder that runs out of room fails, without writing past its end. */
static void test_encoder_overflow(void)
{
    shapes_Inner in;
    shapes_Inner_init(&in);
    in.label = "a label longer than the buffer";
    uint8_t small[8 + 16];
    memset(small, 0xee, sizeof small);
    ember_enc e;
    ember_enc_init_fixed(&e, small, 8);
    shapes_Inner_encode(&e, &in);
    CU_ASSERT(e.failed);
    for (size_t i = 8; i < sizeof small; i++)
        CU_ASSERT_EQUAL(small[i], 0xee);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    CU_pSuite s = CU_add_suite("gen-roundtrip", setup, teardown);
    CU_add_test(s, "scalars: empty", test_scalars_empty);
    CU_add_test(s, "scalars: extremes", test_scalars_max);
    CU_add_test(s, "enums: unknown values kept", test_enum_unknown_kept);
    CU_add_test(s, "narrow integers range-checked", test_narrow_range_checked);
    CU_add_test(s, "wire bytes", test_wire_bytes);
    CU_add_test(s, "nested structs", test_nested);
    CU_add_test(s, "containers: empty", test_containers_empty);
    CU_add_test(s, "containers: full", test_containers_full);
    CU_add_test(s, "containers: lying counts", test_container_count_lies);
    CU_add_test(s, "optionals", test_optionals);
    CU_add_test(s, "recursive tree", test_tree);
    CU_add_test(s, "tree deeper than the limit", test_tree_too_deep);
    CU_add_test(s, "unknown fields skipped", test_unknown_fields_skipped);
    CU_add_test(s, "errors, constants, descriptors", test_errors_constants);
    CU_add_test(s, "encoder overflow", test_encoder_overflow);
    CU_add_test(s, "a proxy's check agrees with the decoders", test_proxy_check_agrees);
    return run_suites();
}
