/* test_codec.c — every codec primitive, the limits, malformed input, arena. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "buf-internal.h"
#include "helpers.h"

static ember_arena *A;

static void dec(ember_dec *d, const void *p, size_t n)
{
    ember_arena_reset(A);
    ember_dec_init(d, p, n, A);
}

static void test_varint_roundtrip(void)
{
    static const uint64_t vals[] = {0, 1, 127, 128, 255, 300, 16383, 16384,
                                    UINT32_MAX, (uint64_t)1 << 56, UINT64_MAX};
    uint8_t buf[256];
    ember_enc e;
    ember_enc_init_fixed(&e, buf, sizeof buf);
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
        ember_enc_raw_varint(&e, vals[i]);
    CU_ASSERT_FALSE(e.failed);
    ember_dec d;
    dec(&d, buf, ember_enc_len(&e));
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        uint64_t v = 1234;
        CU_ASSERT_EQUAL(ember_dec_raw_u64(&d, &v), 0);
        CU_ASSERT_EQUAL(v, vals[i]);
    }
    CU_ASSERT_PTR_EQUAL(d.p, d.end);
    /* 0 is one byte, UINT64_MAX ten. */
    ember_enc_init_fixed(&e, buf, sizeof buf);
    ember_enc_raw_varint(&e, UINT64_MAX);
    CU_ASSERT_EQUAL(ember_enc_len(&e), 10);
}

static void test_varint_malformed(void)
{
    ember_dec d;
    uint64_t v;
    static const uint8_t trunc[] = {0x80, 0x80};
    dec(&d, trunc, sizeof trunc);
    CU_ASSERT_EQUAL(ember_dec_raw_u64(&d, &v), -1);
    CU_ASSERT_PTR_NOT_NULL(d.why);
    static const uint8_t over[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                   0xff, 0xff, 0x02};
    dec(&d, over, sizeof over);
    CU_ASSERT_EQUAL(ember_dec_raw_u64(&d, &v), -1);
    static const uint8_t toolong[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                                      0x80, 0x80, 0x80, 0x00};
    dec(&d, toolong, sizeof toolong);
    CU_ASSERT_EQUAL(ember_dec_raw_u64(&d, &v), -1);
}

static void test_ints_ranges(void)
{
    uint8_t buf[128];
    ember_enc e;
    ember_enc_init_fixed(&e, buf, sizeof buf);
    ember_enc_raw_varint(&e, 255);            /* u8 ok */
    ember_enc_raw_varint(&e, 256);            /* u8 too big */
    ember_enc_raw_varint(&e, 65535);          /* u16 ok */
    ember_enc_raw_varint(&e, 65536);          /* u16 too big */
    ember_enc_raw_varint(&e, UINT32_MAX);     /* u32 ok */
    ember_enc_raw_varint(&e, (uint64_t)UINT32_MAX + 1);
    ember_enc_raw_sint(&e, -128);             /* i8 ok */
    ember_enc_raw_sint(&e, 128);              /* i8 too big */
    ember_enc_raw_sint(&e, -32769);           /* i16 too small */
    ember_enc_raw_sint(&e, INT32_MIN);        /* i32 ok */
    ember_enc_raw_sint(&e, (int64_t)INT32_MAX + 1);
    ember_enc_raw_sint(&e, INT64_MIN);        /* i64 ok */
    ember_enc_raw_varint(&e, 1);              /* bool ok */
    ember_enc_raw_varint(&e, 2);              /* bool bad */
    CU_ASSERT_FALSE(e.failed);
    ember_dec d;
    dec(&d, buf, ember_enc_len(&e));
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    int8_t i8;
    int16_t i16;
    int32_t i32;
    int64_t i64;
    bool b;
    CU_ASSERT_EQUAL(ember_dec_raw_u8(&d, &u8), 0);
    CU_ASSERT_EQUAL(u8, 255);
    CU_ASSERT_EQUAL(ember_dec_raw_u8(&d, &u8), -1);
    d.why = NULL;
    CU_ASSERT_EQUAL(ember_dec_raw_u16(&d, &u16), 0);
    CU_ASSERT_EQUAL(u16, 65535);
    CU_ASSERT_EQUAL(ember_dec_raw_u16(&d, &u16), -1);
    CU_ASSERT_EQUAL(ember_dec_raw_u32(&d, &u32), 0);
    CU_ASSERT_EQUAL(u32, UINT32_MAX);
    CU_ASSERT_EQUAL(ember_dec_raw_u32(&d, &u32), -1);
    CU_ASSERT_EQUAL(ember_dec_raw_i8(&d, &i8), 0);
    CU_ASSERT_EQUAL(i8, -128);
    CU_ASSERT_EQUAL(ember_dec_raw_i8(&d, &i8), -1);
    CU_ASSERT_EQUAL(ember_dec_raw_i16(&d, &i16), -1);
    CU_ASSERT_EQUAL(ember_dec_raw_i32(&d, &i32), 0);
    CU_ASSERT_EQUAL(i32, INT32_MIN);
    CU_ASSERT_EQUAL(ember_dec_raw_i32(&d, &i32), -1);
    CU_ASSERT_EQUAL(ember_dec_raw_i64(&d, &i64), 0);
    CU_ASSERT_EQUAL(i64, INT64_MIN);
    CU_ASSERT_EQUAL(ember_dec_raw_bool(&d, &b), 0);
    CU_ASSERT_TRUE(b);
    CU_ASSERT_EQUAL(ember_dec_raw_bool(&d, &b), -1);
    CU_ASSERT_PTR_EQUAL(d.p, d.end);
}

static void test_floats_and_keys(void)
{
    uint8_t buf[128];
    ember_enc e;
    ember_enc_init_fixed(&e, buf, sizeof buf);
    ember_enc_f32(&e, 1, 1.5f);
    ember_enc_f64(&e, 2, -2.25);
    ember_enc_f64(&e, 3, INFINITY);
    ember_enc_string(&e, 4, "hé");
    ember_enc_bool(&e, EMBER_TAG_MAX, true);
    CU_ASSERT_FALSE(e.failed);
    ember_dec d;
    dec(&d, buf, ember_enc_len(&e));
    uint32_t tag = 0;
    unsigned wt = 0;
    float f;
    double g;
    const char *s;
    bool b;
    CU_ASSERT_EQUAL(ember_dec_field(&d, &tag, &wt), 1);
    CU_ASSERT_EQUAL(tag, 1);
    CU_ASSERT_EQUAL(ember_dec_f32(&d, wt, &f), 0);
    CU_ASSERT_EQUAL(f, 1.5f);
    CU_ASSERT_EQUAL(ember_dec_field(&d, &tag, &wt), 1);
    CU_ASSERT_EQUAL(ember_dec_f64(&d, wt, &g), 0);
    CU_ASSERT_EQUAL(g, -2.25);
    CU_ASSERT_EQUAL(ember_dec_field(&d, &tag, &wt), 1);
    CU_ASSERT_EQUAL(ember_dec_f32(&d, wt, &f), -1); /* wrong wire type */
    d.why = NULL;
    CU_ASSERT_EQUAL(ember_dec_f64(&d, wt, &g), 0);
    CU_ASSERT_TRUE(isinf(g));
    CU_ASSERT_EQUAL(ember_dec_field(&d, &tag, &wt), 1);
    CU_ASSERT_EQUAL(ember_dec_string(&d, wt, &s), 0);
    CU_ASSERT_STRING_EQUAL(s, "hé");
    CU_ASSERT_EQUAL(ember_dec_field(&d, &tag, &wt), 1);
    CU_ASSERT_EQUAL(tag, EMBER_TAG_MAX);
    CU_ASSERT_EQUAL(ember_dec_bool(&d, wt, &b), 0);
    CU_ASSERT_EQUAL(ember_dec_field(&d, &tag, &wt), 0);
    /* tag 0 is invalid */
    static const uint8_t zero[] = {0x00, 0x01};
    dec(&d, zero, sizeof zero);
    CU_ASSERT_EQUAL(ember_dec_field(&d, &tag, &wt), -1);
}

static int dec_one_string(const void *p, size_t n, const char **s)
{
    ember_dec d;
    dec(&d, p, n);
    return ember_dec_raw_string(&d, s);
}

static void test_strings(void)
{
    const char *s;
    static const uint8_t ok[] = {4, 'a', 0xe2, 0x82, 0xac};           /* a€ */
    CU_ASSERT_EQUAL(dec_one_string(ok, sizeof ok, &s), 0);
    CU_ASSERT_EQUAL(strlen(s), 4);
    static const uint8_t nul[] = {3, 'a', 0, 'b'};
    CU_ASSERT_EQUAL(dec_one_string(nul, sizeof nul, &s), -1);
    static const uint8_t overlong[] = {2, 0xc0, 0x80};
    CU_ASSERT_EQUAL(dec_one_string(overlong, sizeof overlong, &s), -1);
    static const uint8_t surrogate[] = {3, 0xed, 0xa0, 0x80};
    CU_ASSERT_EQUAL(dec_one_string(surrogate, sizeof surrogate, &s), -1);
    static const uint8_t big[] = {4, 0xf4, 0x90, 0x80, 0x80};        /* > U+10FFFF */
    CU_ASSERT_EQUAL(dec_one_string(big, sizeof big, &s), -1);
    static const uint8_t cut[] = {2, 0xe2, 0x82};
    CU_ASSERT_EQUAL(dec_one_string(cut, sizeof cut, &s), -1);
    static const uint8_t past[] = {9, 'a'};
    CU_ASSERT_EQUAL(dec_one_string(past, sizeof past, &s), -1);
    static const uint8_t empty[] = {0};
    CU_ASSERT_EQUAL(dec_one_string(empty, sizeof empty, &s), 0);
    CU_ASSERT_STRING_EQUAL(s, "");

    /* limit */
    ember_dec d;
    static const uint8_t five[] = {5, 'a', 'b', 'c', 'd', 'e'};
    dec(&d, five, sizeof five);
    d.lim.max_string = 4;
    CU_ASSERT_EQUAL(ember_dec_raw_string(&d, &s), -1);
    /* bytes may hold NUL */
    ember_bytes b;
    dec(&d, nul, sizeof nul);
    CU_ASSERT_EQUAL(ember_dec_raw_bytes(&d, &b), 0);
    CU_ASSERT_EQUAL(b.len, 3);
    CU_ASSERT_EQUAL(b.data[1], 0);
    /* NULL string encodes as empty (a varint reserves 10 bytes) */
    uint8_t buf[16];
    ember_enc e;
    ember_enc_init_fixed(&e, buf, sizeof buf);
    ember_enc_raw_string(&e, NULL);
    CU_ASSERT_EQUAL(ember_enc_len(&e), 1);
}

/* Every length around the short-string fast path (blocks of 16 and 8, the
 * last one overlapping) with one byte that is not plain ASCII at every
 * position: a NUL and a stray continuation byte are refused, a two-byte
 * character is kept, both by the decoder and by the encoder. */
static void test_short_strings(void)
{
    uint8_t str[160], frame[176], out[176];
    for (size_t n = 1; n <= 140; n++) {
        for (size_t at = 0; at < n; at++) {
            static const uint8_t odd[] = {0x00, 0x80, 0xc3};
            for (size_t k = 0; k < sizeof odd; k++) {
                memset(str, 'a' + (int)(n % 26), n);
                str[at] = odd[k];
                size_t len = n;
                if (odd[k] == 0xc3) { /* U+00E9, one byte longer */
                    memmove(str + at + 2, str + at + 1, n - at - 1);
                    str[at + 1] = 0xa9;
                    len = n + 1;
                }
                bool good = odd[k] == 0xc3;
                frame[0] = (uint8_t)(len < 128 ? len : 0x80 | (len & 0x7f));
                size_t h = len < 128 ? 1 : 2;
                if (h == 2)
                    frame[1] = (uint8_t)(len >> 7);
                memcpy(frame + h, str, len);
                const char *s = NULL;
                int r = dec_one_string(frame, h + len, &s);
                CU_ASSERT_EQUAL(r, good ? 0 : -1);
                if (good && r == 0)
                    CU_ASSERT_EQUAL(memcmp(s, str, len) == 0 && s[len] == 0, 1);
                if (odd[k] == 0x00)
                    continue; /* a C string ends at its NUL */
                str[len] = 0;
                ember_enc e;
                ember_enc_init_fixed(&e, out, sizeof out);
                ember_enc_raw_string(&e, (const char *)str);
                CU_ASSERT_EQUAL(e.failed != 0, !good);
                if (good)
                    CU_ASSERT_EQUAL(ember_enc_len(&e) == h + len &&
                                    memcmp(out, frame, h + len) == 0, 1);
            }
        }
    }
}

static void test_skip(void)
{
    uint8_t buf[64];
    ember_enc e;
    ember_enc_init_fixed(&e, buf, sizeof buf);
    ember_enc_uint(&e, 1, 300);
    ember_enc_f64(&e, 2, 1.0);
    ember_enc_f32(&e, 3, 1.0f);
    ember_enc_string(&e, 4, "skip me");
    ember_enc_uint(&e, 5, 7);
    ember_dec d;
    dec(&d, buf, ember_enc_len(&e));
    uint32_t tag = 0;
    unsigned wt = 0;
    while (ember_dec_field(&d, &tag, &wt) == 1 && tag != 5)
        CU_ASSERT_EQUAL(ember_dec_skip(&d, wt), 0);
    uint64_t v;
    CU_ASSERT_EQUAL(ember_dec_u64(&d, wt, &v), 0);
    CU_ASSERT_EQUAL(v, 7);
    /* groups (3, 4) and 6, 7 are unknown wire types */
    static const uint8_t grp[] = {(1 << 3) | 3};
    dec(&d, grp, sizeof grp);
    CU_ASSERT_EQUAL(ember_dec_field(&d, &tag, &wt), 1);
    CU_ASSERT_EQUAL(ember_dec_skip(&d, wt), -1);
    static const uint8_t shortlen[] = {(1 << 3) | 2, 5, 1};
    dec(&d, shortlen, sizeof shortlen);
    CU_ASSERT_EQUAL(ember_dec_field(&d, &tag, &wt), 1);
    CU_ASSERT_EQUAL(ember_dec_skip(&d, wt), -1);
    static const uint8_t short64[] = {(1 << 3) | 1, 1, 2};
    dec(&d, short64, sizeof short64);
    CU_ASSERT_EQUAL(ember_dec_field(&d, &tag, &wt), 1);
    CU_ASSERT_EQUAL(ember_dec_skip(&d, wt), -1);
}

static void test_nested_and_depth(void)
{
    uint8_t buf[256];
    ember_enc e;
    ember_enc_init_fixed(&e, buf, sizeof buf);
    /* { 1: { 1: { 1: 5 } } } */
    size_t m[3];
    for (int i = 0; i < 3; i++) {
        ember_enc_key(&e, 1, EMBER_WT_LEN);
        m[i] = ember_enc_len_begin(&e);
    }
    ember_enc_uint(&e, 1, 5);
    for (int i = 2; i >= 0; i--)
        ember_enc_len_end(&e, m[i]);
    ember_enc_uint(&e, 2, 9);
    CU_ASSERT_FALSE(e.failed);
    ember_dec d;
    for (uint32_t maxd = 2; maxd <= 3; maxd++) {
        dec(&d, buf, ember_enc_len(&e));
        d.lim.max_depth = maxd;
        const uint8_t *saved[3];
        uint32_t tag = 0;
        unsigned wt = 0;
        int rc = 0;
        int i;
        for (i = 0; i < 3 && rc == 0; i++) {
            CU_ASSERT_EQUAL(ember_dec_field(&d, &tag, &wt), 1);
            rc = ember_dec_enter(&d, wt, &saved[i]);
        }
        if (maxd == 2) {
            CU_ASSERT_EQUAL(rc, -1);
            continue;
        }
        CU_ASSERT_EQUAL(rc, 0);
        uint64_t v;
        CU_ASSERT_EQUAL(ember_dec_field(&d, &tag, &wt), 1);
        CU_ASSERT_EQUAL(ember_dec_u64(&d, wt, &v), 0);
        CU_ASSERT_EQUAL(v, 5);
        CU_ASSERT_EQUAL(ember_dec_field(&d, &tag, &wt), 0);
        for (i = 2; i >= 0; i--)
            ember_dec_leave(&d, saved[i]);
        CU_ASSERT_EQUAL(ember_dec_field(&d, &tag, &wt), 1);
        CU_ASSERT_EQUAL(tag, 2);
        CU_ASSERT_EQUAL(d.depth, 0);
    }
}

static void test_len_end_slow(void)
{
    /* Lengths needing 2 and 3 varint bytes move the content. */
    static const size_t sizes[] = {127, 128, 300, 16383, 16384, 70000};
    static uint8_t buf[80000];
    static char s[70001];
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        memset(s, 'x', n);
        s[n] = 0;
        s[n - 1] = 'y';
        ember_enc e;
        ember_enc_init_fixed(&e, buf, sizeof buf);
        ember_enc_key(&e, 1, EMBER_WT_LEN);
        size_t m = ember_enc_len_begin(&e);
        for (size_t i = 0; i < n; i++)
            ember_enc_raw_varint(&e, (uint8_t)s[i]);
        ember_enc_len_end(&e, m);
        ember_enc_uint(&e, 2, 1);
        CU_ASSERT_FALSE(e.failed);
        ember_dec d;
        dec(&d, buf, ember_enc_len(&e));
        d.lim.max_string = 1u << 20;
        uint32_t tag = 0;
        unsigned wt = 0;
        const char *got;
        CU_ASSERT_EQUAL(ember_dec_field(&d, &tag, &wt), 1);
        CU_ASSERT_EQUAL(ember_dec_string(&d, wt, &got), 0);
        CU_ASSERT_TRUE(got && strcmp(got, s) == 0);
        CU_ASSERT_EQUAL(ember_dec_field(&d, &tag, &wt), 1);
        CU_ASSERT_EQUAL(tag, 2);
    }
}

static void test_fixed_overflow(void)
{
    uint8_t buf[4];
    ember_enc e;
    ember_enc_init_fixed(&e, buf, sizeof buf);
    ember_enc_string(&e, 1, "too long for four bytes");
    CU_ASSERT_TRUE(e.failed);
    size_t n = ember_enc_len(&e);
    ember_enc_uint(&e, 2, 1); /* no-op once failed */
    CU_ASSERT_EQUAL(ember_enc_len(&e), n);
}

static void test_growing_buffer(void)
{
    ember_bufpool pool;
    memset(&pool, 0, sizeof pool);
    ember_buf b = {NULL, 0, 0, 0, &pool, 0};
    ember_enc e;
    CU_ASSERT_EQUAL(ember_buf_enc_begin(&b, &e, NULL, 16), 0);
    ember_enc_key(&e, 1, EMBER_WT_LEN);
    size_t m = ember_enc_len_begin(&e);
    for (int i = 0; i < 100000; i++) /* forces several grows mid-region */
        ember_enc_raw_varint(&e, (uint64_t)i);
    ember_enc_len_end(&e, m);
    CU_ASSERT_FALSE(e.failed);
    size_t len = ember_enc_len(&e);
    ember_buf_enc_commit(&b, &e);
    CU_ASSERT_EQUAL(ember_buf_used(&b), len);
    ember_dec d;
    dec(&d, b.data + b.off, ember_buf_used(&b));
    uint32_t tag = 0;
    unsigned wt = 0;
    const uint8_t *saved;
    CU_ASSERT_EQUAL(ember_dec_field(&d, &tag, &wt), 1);
    CU_ASSERT_EQUAL(ember_dec_enter(&d, wt, &saved), 0);
    int i = 0, bad = 0;
    uint64_t v;
    while (d.p < d.end && ember_dec_raw_u64(&d, &v) == 0)
        bad += v != (uint64_t)i++;
    CU_ASSERT_EQUAL(i, 100000);
    CU_ASSERT_EQUAL(bad, 0);
    ember_buf_release(&b);
    ember_bufpool_clear(&pool);
}

static void test_lists(void)
{
    uint8_t buf[128];
    ember_enc e;
    ember_enc_init_fixed(&e, buf, sizeof buf);
    ember_enc_key(&e, 1, EMBER_WT_LEN);
    size_t m = ember_enc_len_begin(&e);
    ember_enc_raw_varint(&e, 3);
    for (uint32_t i = 0; i < 3; i++)
        ember_enc_raw_varint(&e, i * 100);
    ember_enc_len_end(&e, m);
    ember_dec d;
    dec(&d, buf, ember_enc_len(&e));
    uint32_t tag = 0, count = 0;
    unsigned wt = 0;
    void *items;
    const uint8_t *saved;
    CU_ASSERT_EQUAL(ember_dec_field(&d, &tag, &wt), 1);
    CU_ASSERT_EQUAL(ember_dec_list_begin(&d, wt, 1, sizeof(uint32_t), &count,
                                         &items, &saved), 0);
    CU_ASSERT_EQUAL(count, 3);
    uint32_t *u = items;
    for (uint32_t i = 0; i < count; i++)
        CU_ASSERT_EQUAL(ember_dec_raw_u32(&d, &u[i]), 0);
    CU_ASSERT_EQUAL(u[2], 200);
    CU_ASSERT_EQUAL(ember_dec_list_end(&d, saved), 0);

    /* A count the bytes cannot hold is refused before allocating. */
    static const uint8_t lie[] = {(1 << 3) | 2, 6, 0xff, 0xff, 0xff, 0x0f, 1, 2};
    dec(&d, lie, sizeof lie);
    CU_ASSERT_EQUAL(ember_dec_field(&d, &tag, &wt), 1);
    CU_ASSERT_EQUAL(ember_dec_list_begin(&d, wt, 1, 8, &count, &items, &saved), -1);
    CU_ASSERT_PTR_NULL(items);
    /* Over max_elems. */
    static const uint8_t many[] = {(1 << 3) | 2, 5, 4, 1, 1, 1, 1};
    dec(&d, many, sizeof many);
    d.lim.max_elems = 3;
    CU_ASSERT_EQUAL(ember_dec_field(&d, &tag, &wt), 1);
    CU_ASSERT_EQUAL(ember_dec_list_begin(&d, wt, 1, 8, &count, &items, &saved), -1);
    /* Trailing bytes after the elements. */
    static const uint8_t trail[] = {(1 << 3) | 2, 3, 1, 7, 9};
    dec(&d, trail, sizeof trail);
    CU_ASSERT_EQUAL(ember_dec_field(&d, &tag, &wt), 1);
    CU_ASSERT_EQUAL(ember_dec_list_begin(&d, wt, 1, 8, &count, &items, &saved), 0);
    uint64_t v;
    CU_ASSERT_EQUAL(ember_dec_raw_u64(&d, &v), 0);
    CU_ASSERT_EQUAL(ember_dec_list_end(&d, saved), -1);
    /* Empty list: no allocation. */
    static const uint8_t none[] = {(1 << 3) | 2, 1, 0};
    dec(&d, none, sizeof none);
    CU_ASSERT_EQUAL(ember_dec_field(&d, &tag, &wt), 1);
    CU_ASSERT_EQUAL(ember_dec_list_begin(&d, wt, 1, 8, &count, &items, &saved), 0);
    CU_ASSERT_EQUAL(count, 0);
    CU_ASSERT_PTR_NULL(items);
    CU_ASSERT_EQUAL(ember_dec_list_end(&d, saved), 0);
}

static void test_arena(void)
{
    ember_arena *a = ember_arena_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    uint8_t *first = ember_arena_alloc(a, 3);
    for (int i = 0; i < 1000; i++) {
        uint8_t *p = ember_arena_alloc(a, (size_t)(i % 37) + 1);
        CU_ASSERT_EQUAL((uintptr_t)p % 8, 0);
        CU_ASSERT_EQUAL(p[0], 0);
        memset(p, 0xab, (size_t)(i % 37) + 1);
    }
    void *big = ember_arena_alloc(a, 1 << 20);
    CU_ASSERT_PTR_NOT_NULL(big);
    ember_arena_reset(a);
    uint8_t *again = ember_arena_alloc(a, 3);
    CU_ASSERT_PTR_EQUAL(first, again); /* reset keeps (and reuses) the first block */
    ember_arena_free(a);
}

static void test_names(void)
{
    CU_ASSERT_STRING_EQUAL(ember_status_name(EMBER_OK), "ok");
    CU_ASSERT_STRING_EQUAL(ember_status_name(EMBER_SHUTDOWN), "shutdown");
    CU_ASSERT_STRING_EQUAL(ember_status_name((ember_status)99), "unknown");
    ember_limits l;
    ember_limits_default(&l);
    CU_ASSERT_EQUAL(l.max_frame, 16u << 20);
    CU_ASSERT_EQUAL(l.max_depth, 64);
    CU_ASSERT_EQUAL(l.decode_ratio, 16);
    CU_ASSERT_EQUAL(l.decode_floor, 64u << 10);
    CU_ASSERT_EQUAL(l.max_deferred_bytes, (size_t)256 << 20);
}

/* ---- decode budget: decode_floor + decode_ratio x input bytes ---- */

/* Writes LEN { count, body } where body is n copies of elem[0..k). */
static size_t list_of(uint8_t *buf, size_t cap, uint32_t count,
                      const uint8_t *elem, size_t k)
{
    ember_enc e;
    ember_enc_init_fixed(&e, buf, cap);
    size_t mark = ember_enc_len_begin(&e);
    ember_enc_raw_varint(&e, count);
    for (uint32_t i = 0; i < count; i++)
        if (ember_enc_reserve(&e, k) == 0) {
            memcpy(e.p, elem, k);
            e.p += k;
        }
    ember_enc_len_end(&e, mark);
    CU_ASSERT_FALSE(e.failed);
    return ember_enc_len(&e);
}

static void test_budget_refuses_amplification(void)
{
    /* 60,000 empty 256-byte structs: 1 byte each on the wire. */
    enum { N = 60000 };
    static uint8_t buf[N + 16];
    static const uint8_t empty = 0;
    size_t n = list_of(buf, sizeof buf, N, &empty, 1);
    ember_dec d;
    dec(&d, buf, n);
    uint32_t count;
    void *items;
    const uint8_t *saved;
    CU_ASSERT_EQUAL(ember_dec_list_begin_raw(&d, 1, 256, &count, &items, &saved), -1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d.why);
    CU_ASSERT_PTR_NOT_NULL(strstr(d.why, "decode budget"));
    CU_ASSERT_PTR_NULL(items);
    CU_ASSERT_EQUAL(count, 0);
    /* Within budget: 16-byte structs, x16 exactly the ratio... */
    dec(&d, buf, n);
    CU_ASSERT_EQUAL(ember_dec_list_begin_raw(&d, 1, 16, &count, &items, &saved), 0);
    CU_ASSERT_EQUAL(count, N);
    /* ...but 24-byte ones are not (60 KB x 24 > 64 KiB + 16 x 60 KB). */
    dec(&d, buf, n);
    CU_ASSERT_EQUAL(ember_dec_list_begin_raw(&d, 1, 24, &count, &items, &saved), -1);
}

static void test_budget_counts_everything(void)
{
    /* floor 64, ratio 0: exactly 64 bytes, each allocation rounded to 8. */
    uint8_t buf[64];
    ember_enc e;
    ember_enc_init_fixed(&e, buf, sizeof buf);
    ember_enc_raw_string(&e, "abcdefghijklmnopqrstuvwxyz0123"); /* 31 -> 32 */
    ember_enc_raw_bytes(&e, "0123456789", 10);                  /* 10 -> 16 */
    ember_enc_raw_string(&e, "x");                              /* 2 -> 8 */
    ember_enc_raw_string(&e, "");                               /* shared "" */
    ember_enc_raw_string(&e, "y");                              /* over */
    ember_dec d;
    dec(&d, buf, ember_enc_len(&e));
    d.lim.decode_ratio = 0;
    d.lim.decode_floor = 64;
    const char *s;
    ember_bytes b;
    CU_ASSERT_EQUAL(ember_dec_raw_string(&d, &s), 0);
    CU_ASSERT_EQUAL(ember_dec_raw_bytes(&d, &b), 0);
    CU_ASSERT_EQUAL(ember_dec_raw_string(&d, &s), 0);
    CU_ASSERT_EQUAL(d.used, 56);
    CU_ASSERT_PTR_NOT_NULL(ember_dec_alloc(&d, 1)); /* 8: now exactly 64 */
    CU_ASSERT_EQUAL(ember_dec_raw_string(&d, &s), 0);
    CU_ASSERT_STRING_EQUAL(s, "");
    CU_ASSERT_EQUAL(ember_dec_raw_string(&d, &s), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(d.why, "decode budget"));
    CU_ASSERT_PTR_NULL(ember_dec_alloc(&d, 1));
    /* The ratio scales with the input given to ember_dec_init. */
    dec(&d, buf, 10);
    d.lim.decode_ratio = 4;
    d.lim.decode_floor = 0;
    CU_ASSERT_PTR_NOT_NULL(ember_dec_alloc(&d, 40));
    CU_ASSERT_PTR_NULL(ember_dec_alloc(&d, 1));
    /* Huge requests fail cleanly, without wrapping. */
    dec(&d, buf, sizeof buf);
    CU_ASSERT_PTR_NULL(ember_dec_alloc(&d, SIZE_MAX));
    CU_ASSERT_PTR_NULL(ember_dec_alloc(&d, SIZE_MAX - 3));
}

static void test_budget_legit_large_lists(void)
{
    /* 1M u32 in a 4 MiB frame: each value 1 to 3 bytes on the wire. */
    enum { M = 1000000 };
    size_t cap = 4u << 20;
    uint8_t *buf = malloc(cap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    ember_enc e;
    ember_enc_init_fixed(&e, buf, cap);
    size_t mark = ember_enc_len_begin(&e);
    ember_enc_raw_varint(&e, M);
    for (uint32_t i = 0; i < M; i++)
        ember_enc_raw_varint(&e, i % 3 ? i % 100 : i);
    ember_enc_len_end(&e, mark);
    CU_ASSERT_FALSE_FATAL(e.failed);
    ember_dec d;
    dec(&d, buf, ember_enc_len(&e));
    uint32_t count;
    uint32_t *v;
    const uint8_t *saved;
    CU_ASSERT_EQUAL_FATAL(ember_dec_list_begin_raw(&d, 1, sizeof *v, &count,
                                                   (void **)&v, &saved), 0);
    CU_ASSERT_EQUAL(count, M);
    bool ok = true;
    for (uint32_t i = 0; i < count && ok; i++)
        ok = ember_dec_raw_u32(&d, &v[i]) == 0 && v[i] == (i % 3 ? i % 100 : i);
    CU_ASSERT_TRUE(ok);
    CU_ASSERT_EQUAL(ember_dec_list_end(&d, saved), 0);

    /* 100k small structs { 1: u32, 2: string } of 24 bytes in C, with
     * 1-char names: 6 bytes each on the wire. */
    typedef struct small { uint32_t id; const char *name; uint64_t pad; } small;
    enum { K = 100000 };
    static const uint8_t el[] = { 5, 0x08, 42, 0x12, 1, 'a' };
    size_t n = list_of(buf, cap, K, el, sizeof el);
    dec(&d, buf, n);
    small *sv;
    CU_ASSERT_EQUAL_FATAL(ember_dec_list_begin_raw(&d, 1, sizeof *sv, &count,
                                                   (void **)&sv, &saved), 0);
    ok = count == K;
    for (uint32_t i = 0; i < count && ok; i++) {
        const uint8_t *in;
        uint32_t tag;
        unsigned wt;
        ok = ember_dec_enter_raw(&d, &in) == 0 &&
             ember_dec_field(&d, &tag, &wt) == 1 &&
             ember_dec_u32(&d, wt, &sv[i].id) == 0 &&
             ember_dec_field(&d, &tag, &wt) == 1 &&
             ember_dec_string(&d, wt, &sv[i].name) == 0 &&
             sv[i].id == 42 && strcmp(sv[i].name, "a") == 0;
        ember_dec_leave(&d, in);
    }
    CU_ASSERT_TRUE(ok);
    CU_ASSERT_EQUAL(ember_dec_list_end(&d, saved), 0);

    /* 1M empty strings: pointers only (the copies share one ""). */
    static const uint8_t none = 0;
    n = list_of(buf, cap, M, &none, 1);
    dec(&d, buf, n);
    const char **strs;
    CU_ASSERT_EQUAL_FATAL(ember_dec_list_begin_raw(&d, 1, sizeof *strs, &count,
                                                   (void **)&strs, &saved), 0);
    ok = true;
    for (uint32_t i = 0; i < count && ok; i++)
        ok = ember_dec_raw_string(&d, &strs[i]) == 0 && strs[i][0] == 0;
    CU_ASSERT_TRUE(ok);
    CU_ASSERT_EQUAL(ember_dec_list_end(&d, saved), 0);
    free(buf);
}

static int setup(void)
{
    A = ember_arena_new();
    return A ? 0 : -1;
}

static int teardown(void)
{
    ember_arena_free(A);
    return 0;
}

void add_codec_suite(void)
{
    CU_pSuite s = CU_add_suite("codec", setup, teardown);
    CU_add_test(s, "varint roundtrip", test_varint_roundtrip);
    CU_add_test(s, "varint malformed", test_varint_malformed);
    CU_add_test(s, "integer ranges", test_ints_ranges);
    CU_add_test(s, "floats and keys", test_floats_and_keys);
    CU_add_test(s, "strings and utf-8", test_strings);
    CU_add_test(s, "short strings: every length and position", test_short_strings);
    CU_add_test(s, "skip unknown fields", test_skip);
    CU_add_test(s, "nesting and depth", test_nested_and_depth);
    CU_add_test(s, "long length prefixes", test_len_end_slow);
    CU_add_test(s, "fixed buffer overflow", test_fixed_overflow);
    CU_add_test(s, "growing runtime buffer", test_growing_buffer);
    CU_add_test(s, "lists and counts", test_lists);
    CU_add_test(s, "arena", test_arena);
    CU_add_test(s, "names and limits", test_names);
    CU_add_test(s, "decode budget refuses amplification",
                test_budget_refuses_amplification);
    CU_add_test(s, "decode budget counts every allocation",
                test_budget_counts_everything);
    CU_add_test(s, "decode budget lets large legit lists through",
                test_budget_legit_large_lists);
}
