/* test_pb.c — banana and jelly against bytes recorded between real Twisted
 * peers (docs/protocol-pb.md): decoding, writing byte for byte, finding
 * message boundaries however the stream is cut, and the limits. */
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "helpers.h"
#include "../common/hex.h"
#include "pb-internal.h"
#include "pb-xcode-internal.h"

/* Reads the first jelly value of hex (kept in b) into *v. */
static int read_hex(const char *hex, uint8_t *b, size_t cap, ember_jl_cur *c,
                    ember_jl_val *v)
{
    size_t n = unhex(hex, b, cap);
    ember_jl_init(c, b, n, true);
    return ember_jl_read(c, v);
}

/* ---- writing: byte for byte what Twisted sends ---- */

typedef void (*put_fn)(ember_jl_w *w);

static int written_is(put_fn put, const char *hex)
{
    uint8_t buf[1024], want[1024];
    ember_enc e;
    ember_enc_init_fixed(&e, buf, sizeof buf);
    ember_jl_w w = {&e, true};
    put(&w);
    size_t n = unhex(hex, want, sizeof want);
    if (e.failed || ember_enc_len(&e) != n || memcmp(buf, want, n) != 0) {
        fprintf(stderr, "\nwrote:");
        for (size_t i = 0; i < ember_enc_len(&e); i++)
            fprintf(stderr, " %02x", buf[i]);
        fprintf(stderr, "\nwant:  %s\n", hex);
        return 0;
    }
    return 1;
}

static const struct { int64_t v; const char *hex; } ints[] = {
    {0, "00 81"}, {127, "7f 81"}, {128, "00 01 81"}, {601, "59 04 81"},
    {1001, "69 07 81"}, {-1, "01 83"}, {2147483647, "7f 7f 7f 7f 07 81"},
    {2147483648, "00 00 00 00 08 85"}, {-2147483648LL, "00 00 00 00 08 83"},
    {-2147483649LL, "01 00 00 00 08 86"},
};

static void test_write_ints(void)
{
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        uint8_t buf[16], want[16];
        ember_enc e;
        ember_enc_init_fixed(&e, buf, sizeof buf);
        ember_bn_put_i64(&e, ints[i].v);
        size_t n = unhex(ints[i].hex, want, sizeof want);
        CU_ASSERT_EQUAL(ember_enc_len(&e), n);
        CU_ASSERT(memcmp(buf, want, n) == 0);
    }
    uint8_t buf[16], want[16];
    ember_enc e;
    ember_enc_init_fixed(&e, buf, sizeof buf);
    ember_bn_put_int(&e, false, 1ull << 63);
    size_t n = unhex("00 00 00 00 00 00 00 00 00 01 85", want, sizeof want);
    CU_ASSERT(ember_enc_len(&e) == n && memcmp(buf, want, n) == 0);
}

static void put_floats(ember_jl_w *w)
{
    ember_bn_put_float(w->e, 1.5);
    ember_bn_put_float(w->e, -0.0);
    ember_bn_put_float(w->e, INFINITY);
}
static void put_bytes(ember_jl_w *w)
{
    ember_bn_put_bytes(w->e, "", 0, w->vocab);
    ember_bn_put_bytes(w->e, "bytes", 5, w->vocab);
    ember_bn_put_bytes(w->e, "list", 4, w->vocab);
}
static void put_none_bools(ember_jl_w *w)
{
    ember_jl_put_none(w);
    ember_jl_put_bool(w, true);
    ember_jl_put_bool(w, false);
}
static void put_texts(ember_jl_w *w)
{
    ember_jl_put_unicode(w, "str", 3);
    ember_jl_put_unicode(w, "\xc3\xbc" "n\xc3\xaf", 5);
}
static void put_containers(ember_jl_w *w)
{
    ember_jl_put_head(w, EMBER_BN_W_LIST, 0);
    ember_jl_put_head(w, EMBER_BN_W_LIST, 3); /* [1, b"x", None] */
    ember_bn_put_i64(w->e, 1);
    ember_bn_put_bytes(w->e, "x", 1, w->vocab);
    ember_jl_put_none(w);
    ember_jl_put_head(w, EMBER_BN_W_TUPLE, 2);
    ember_bn_put_i64(w->e, 1);
    ember_bn_put_i64(w->e, 2);
    ember_jl_put_head(w, EMBER_BN_W_DICTIONARY, 0);
    ember_jl_put_ref(w, false, 1);
    ember_jl_put_ref(w, true, 1);
}
/* (message 2 "root" "callTarget" 1 (tuple 1001 7 "payload") (dictionary)) */
static void put_call_target(ember_jl_w *w)
{
    ember_bn_put_list(w->e, 7);
    ember_bn_put_word(w->e, EMBER_BN_W_MESSAGE, w->vocab);
    ember_bn_put_i64(w->e, 2);
    ember_bn_put_bytes(w->e, "root", 4, w->vocab);
    ember_bn_put_bytes(w->e, "callTarget", 10, w->vocab);
    ember_bn_put_i64(w->e, 1);
    ember_jl_put_head(w, EMBER_BN_W_TUPLE, 3);
    ember_bn_put_i64(w->e, 1001);
    ember_bn_put_i64(w->e, 7);
    ember_bn_put_bytes(w->e, "payload", 7, w->vocab);
    ember_jl_put_head(w, EMBER_BN_W_DICTIONARY, 0);
}

static void test_write_values(void)
{
    CU_ASSERT(written_is(put_floats, "84 3f f8 00 00 00 00 00 00 "
                                     "84 80 00 00 00 00 00 00 00 "
                                     "84 7f f0 00 00 00 00 00 00"));
    CU_ASSERT(written_is(put_bytes, "00 82 05 82 62 79 74 65 73 08 87"));
    CU_ASSERT(written_is(put_none_bools,
                         "01 80 01 87 "
                         "02 80 07 82 62 6f 6f 6c 65 61 6e 04 82 74 72 75 65 "
                         "02 80 07 82 62 6f 6f 6c 65 61 6e 05 82 66 61 6c 73 65"));
    CU_ASSERT(written_is(put_texts,
                         "02 80 07 82 75 6e 69 63 6f 64 65 03 82 73 74 72 "
                         "02 80 07 82 75 6e 69 63 6f 64 65 05 82 c3 bc 6e c3 af"));
    CU_ASSERT(written_is(put_containers,
                         "01 80 08 87 "
                         "04 80 08 87 01 81 01 82 78 01 80 01 87 "
                         "03 80 0b 87 01 81 02 81 "
                         "01 80 05 87 "
                         "02 80 10 87 01 81 02 80 11 87 01 81"));
    CU_ASSERT(written_is(put_call_target,
                         "07 80 1a 87 02 81 04 82 72 6f 6f 74 "
                         "0a 82 63 61 6c 6c 54 61 72 67 65 74 01 81 "
                         "04 80 0b 87 69 07 81 07 81 07 82 70 61 79 6c 6f 61 64 "
                         "01 80 05 87"));
}

static void test_write_limits(void)
{
    static uint8_t big[EMBER_BN_SIZE_LIMIT + 1];
    static uint8_t out[EMBER_BN_SIZE_LIMIT + 16];
    ember_enc e;
    ember_enc_init_fixed(&e, out, sizeof out);
    ember_bn_put_bytes(&e, big, EMBER_BN_SIZE_LIMIT, true);
    CU_ASSERT_FALSE(e.failed);
    ember_enc_init_fixed(&e, out, sizeof out);
    ember_bn_put_bytes(&e, big, EMBER_BN_SIZE_LIMIT + 1, true);
    CU_ASSERT_TRUE(e.failed);
    ember_enc_init_fixed(&e, out, sizeof out);
    ember_bn_put_list(&e, EMBER_BN_SIZE_LIMIT + 1);
    CU_ASSERT_TRUE(e.failed);
}

/* ---- reading ---- */

static void test_read_ints_floats(void)
{
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        uint8_t b[16];
        ember_jl_cur c;
        ember_jl_val v;
        CU_ASSERT_EQUAL_FATAL(read_hex(ints[i].hex, b, sizeof b, &c, &v), 0);
        CU_ASSERT_EQUAL(v.kind, EMBER_JL_INT);
        CU_ASSERT_EQUAL(v.neg, ints[i].v < 0);
        CU_ASSERT_EQUAL(v.mag, ints[i].v < 0 ? (uint64_t)0 - (uint64_t)ints[i].v
                                              : (uint64_t)ints[i].v);
        CU_ASSERT(c.p == c.end);
    }
    /* 448-bit ints are read (and marked big); 2^64 - 1 is not big. */
    uint8_t b[80];
    memset(b, 0x7f, 64);
    b[64] = EMBER_BN_LONGINT;
    ember_jl_cur c;
    ember_jl_val v;
    ember_jl_init(&c, b, 65, true);
    CU_ASSERT(ember_jl_read(&c, &v) == 0 && v.big);
    size_t n = unhex("7f 7f 7f 7f 7f 7f 7f 7f 7f 01 85", b, sizeof b);
    ember_jl_init(&c, b, n, true);
    CU_ASSERT(ember_jl_read(&c, &v) == 0 && !v.big && v.mag == UINT64_MAX);
    n = unhex("84 80 00 00 00 00 00 00 00", b, sizeof b);
    ember_jl_init(&c, b, n, true);
    CU_ASSERT(ember_jl_read(&c, &v) == 0 && v.kind == EMBER_JL_FLOAT &&
              v.f == 0.0 && signbit(v.f));
}

static void test_read_dictionary(void)
{
    /* {"a": 1, b"b": [None], 3: 4.0} */
    uint8_t b[128];
    size_t n = unhex("04 80 05 87 02 80 02 80 07 82 75 6e 69 63 6f 64 65 01 82 61 "
                     "01 81 02 80 01 82 62 02 80 08 87 01 80 01 87 02 80 03 81 "
                     "84 40 10 00 00 00 00 00 00", b, sizeof b);
    ember_jl_cur c;
    ember_jl_val d, k, v;
    ember_jl_init(&c, b, n, true);
    CU_ASSERT_EQUAL_FATAL(ember_jl_read(&c, &d), 0);
    CU_ASSERT_EQUAL(d.kind, EMBER_JL_DICT);
    CU_ASSERT_EQUAL_FATAL(d.count, 3);
    CU_ASSERT(ember_jl_pair(&c) == 0 && ember_jl_read(&c, &k) == 0 &&
              k.kind == EMBER_JL_UNICODE && k.len == 1 && k.s[0] == 'a');
    CU_ASSERT(ember_jl_read(&c, &v) == 0 && v.kind == EMBER_JL_INT && v.mag == 1);
    CU_ASSERT(ember_jl_pair(&c) == 0 && ember_jl_read(&c, &k) == 0 &&
              k.kind == EMBER_JL_BYTES && k.len == 1 && k.s[0] == 'b');
    CU_ASSERT(ember_jl_read(&c, &v) == 0 && v.kind == EMBER_JL_LIST && v.count == 1);
    CU_ASSERT(ember_jl_read(&c, &v) == 0 && v.kind == EMBER_JL_NONE);
    CU_ASSERT(ember_jl_pair(&c) == 0 && ember_jl_read(&c, &k) == 0 &&
              k.kind == EMBER_JL_INT && k.mag == 3);
    CU_ASSERT(ember_jl_read(&c, &v) == 0 && v.kind == EMBER_JL_FLOAT && v.f == 4.0);
    CU_ASSERT(c.p == c.end);
    /* The same, skipped whole. */
    ember_jl_init(&c, b, n, true);
    CU_ASSERT(ember_jl_read(&c, &d) == 0 && ember_jl_skip_rest(&c, &d) == 0);
    CU_ASSERT(c.p == c.end);
}

/* Each is one jelly value the cursor must refuse, naming why. */
static const struct { const char *hex; const char *why; } refused[] = {
    {"03 80 03 82 73 65 74 01 81 02 81", "'set'"},                /* {1, 2} */
    {"02 80 09 82 66 72 6f 7a 65 6e 73 65 74 03 81", "'frozenset'"},
    {"03 80 04 87 01 81 03 80 08 87 01 81 02 81", "'reference'"},
    {"02 80 03 87 01 81", "'dereference'"},
    {"02 80 09 87 02 82 6f 73", "'module'"},                      /* (module "os") */
    {"02 80 09 82 6f 73 2e 73 79 73 74 65 6d 02 82 69 64", "'os.system'"},
    {"02 80 0a 82 5f 5f 6d 61 69 6e 5f 5f 2e 4b 01 80 05 87", "'__main__.K'"},
    {"02 80 0f 87 01 81", "'cached'"},
    {"02 80 07 82 75 6e 69 63 6f 64 65 02 82 ff fe", "UTF-8"},   /* (unicode ff fe) */
    {"02 80 07 82 75 6e 69 63 6f 64 65 03 82 ed a0 80", "UTF-8"}, /* a surrogate */
    {"02 80 07 82 62 6f 6f 6c 65 61 6e 01 81", "boolean"},
    {"02 80 10 87 01 83", "luid"},                                /* (remote -1) */
    {"03 80 01 87 01 81 02 81", "number of elements"},             /* (None 1 2) */
    {"00 80", "empty"},
    {"02 80 01 81 02 81", "type name"},
    {"02 80 05 87 01 81", "pair"},                                /* (dictionary 1) */
    {"03 80 08 87 01 81", "truncated"},
};

static void test_refused(void)
{
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        uint8_t b[64];
        ember_jl_cur c;
        ember_jl_val v;
        int r = read_hex(refused[i].hex, b, sizeof b, &c, &v);
        if (r == 0 && (v.kind == EMBER_JL_DICT || v.kind == EMBER_JL_LIST)) {
            r = v.kind == EMBER_JL_DICT ? ember_jl_pair(&c) : ember_jl_skip_rest(&c, &v);
        }
        CU_ASSERT_EQUAL(r, -1);
        if (r == -1 && !strstr(c.why, refused[i].why)) {
            fprintf(stderr, "\ncase %zu: why '%s', want '%s'\n", i, c.why, refused[i].why);
            CU_FAIL("reason");
        }
    }
}

/* Values nested `levels` deep, innermost the int 1: as lists ("list" x),
 * or as dictionaries' values (dictionary (1 x)), two lists down each. */
static size_t nest(uint8_t *b, size_t cap, int levels, bool dict)
{
    static const uint8_t list_head[] = {0x02, 0x80, 0x04, 0x82, 'l', 'i', 's', 't'};
    static const uint8_t dict_head[] = {0x02, 0x80, 0x0a, 0x82, 'd', 'i', 'c', 't',
                                        'i', 'o', 'n', 'a', 'r', 'y', 0x02, 0x80,
                                        0x01, 0x81};
    const uint8_t *h = dict ? dict_head : list_head;
    size_t hn = dict ? sizeof dict_head : sizeof list_head, n = 0;
    for (int i = 0; i < levels && n + hn + 2 <= cap; i++, n += hn)
        memcpy(b + n, h, hn);
    b[n++] = 0x01;
    b[n++] = 0x81;
    return n;
}

/* The depth jelly may nest, counted in banana lists: 64. */
static void test_jelly_depth(void)
{
    static uint8_t b[2048];
    char why[EMBER_JL_WHY] = "";
    CU_ASSERT_EQUAL(ember_jl_check(b, nest(b, sizeof b, 64, false), false, 0, why, sizeof why), 0);
    CU_ASSERT_EQUAL(ember_jl_check(b, nest(b, sizeof b, 65, false), false, 0, why, sizeof why), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "nested too deep"));
    why[0] = 0;
    CU_ASSERT_EQUAL(ember_jl_check(b, nest(b, sizeof b, 32, true), false, 0, why, sizeof why), 0);
    CU_ASSERT_EQUAL(ember_jl_check(b, nest(b, sizeof b, 33, true), false, 0, why, sizeof why), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "nested too deep"));
}

/* Stack the size of a cursor, overwritten: what a returned function's
 * locals become once another call runs. */
static __attribute__((noinline)) void clobber(void)
{
    volatile char junk[512];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (char)0x9c;
}

/* A refused type's reason names it, and outlives the check (it was read
 * from the check's own cursor once that was gone). */
static void test_jelly_check_why(void)
{
    /* (tuple (set 1)) */
    static const uint8_t set[] = {0x02, 0x80, 0x05, 0x82, 't', 'u', 'p', 'l', 'e',
                                  0x02, 0x80, 0x03, 0x82, 's', 'e', 't', 0x01, 0x81};
    char why[EMBER_JL_WHY] = "";
    CU_ASSERT_EQUAL(ember_jl_check(set, sizeof set, false, EMBER_JL_TUPLE_ONLY, why,
                                   sizeof why), -1);
    clobber();
    CU_ASSERT_STRING_EQUAL(why, "jelly type 'set' is not accepted");
}

/* ---- the scanner ---- */

/* A recorded node→root write, then the root's replies: handshake, two
 * calls, an answer, a decref. */
static const char *stream_hex =
    "02 80 02 82 70 62 04 82 6e 6f 6e 65 "  /* ("pb" "none")    */
    "02 82 70 62 "                          /* "pb"             */
    "02 80 13 87 06 81 "                    /* (version 6)      */
    "07 80 1a 87 02 81 04 82 72 6f 6f 74 0a 82 63 61 6c 6c 54 61 72 67 65 74 01 81 "
    "04 80 0b 87 69 07 81 07 81 07 82 70 61 79 6c 6f 61 64 01 80 05 87 "
    "03 80 1b 87 02 81 07 82 6f 6b 3a 31 30 30 31 " /* (answer 2 "ok:1001") */
    "07 80 1a 87 01 81 01 81 09 82 63 61 6c 6c 43 68 69 6c 64 01 81 04 80 0b 87 "
    "59 04 81 07 81 02 82 7b 7d 01 80 05 87 "
    "02 80 1d 87 01 81 "                    /* (decref 1)       */
    "84 3f f8 00 00 00 00 00 00";           /* a bare float     */
static const size_t stream_ends[] = {12, 16, 22, 70, 85, 123, 129, 138};
#define NENDS (sizeof stream_ends / sizeof stream_ends[0])

static const ember_bn_limits lim = {EMBER_BN_SIZE_LIMIT, EMBER_BN_SIZE_LIMIT,
                                    EMBER_BN_DEPTH_MAX, 1u << 20};

/* Feeds stream[0..n) in chunks ending at cuts[]; records where expressions
 * end. Returns the count, or -1 on a scan error. */
static int feed(const uint8_t *stream, size_t n, const size_t *cuts,
                size_t ncuts, size_t *ends)
{
    ember_bn_scan s;
    ember_bn_scan_init(&s, &lim, true);
    size_t start = 0, avail = 0;
    int found = 0;
    for (size_t k = 0; k <= ncuts; k++) {
        avail = k < ncuts ? cuts[k] : n;
        for (;;) {
            size_t used;
            int r = ember_bn_scan_feed(&s, stream + start, avail - start, &used);
            if (r < 0)
                return -1;
            if (r == 0)
                break;
            start += used;
            ends[found++] = start;
        }
    }
    return start == n ? found : -1;
}

static void test_scan_cuts(void)
{
    uint8_t b[256];
    size_t n = unhex(stream_hex, b, sizeof b);
    CU_ASSERT_EQUAL_FATAL(n, stream_ends[NENDS - 1]);
    size_t ends[16];
    CU_ASSERT_EQUAL(feed(b, n, NULL, 0, ends), (int)NENDS);
    CU_ASSERT(memcmp(ends, stream_ends, sizeof stream_ends) == 0);
    /* Byte by byte. */
    size_t cuts[256];
    for (size_t i = 0; i < n; i++)
        cuts[i] = i + 1;
    CU_ASSERT_EQUAL(feed(b, n, cuts, n, ends), (int)NENDS);
    CU_ASSERT(memcmp(ends, stream_ends, sizeof stream_ends) == 0);
    /* Two chunks, cut at every offset. */
    for (size_t i = 0; i <= n; i++) {
        size_t one = i;
        CU_ASSERT_EQUAL(feed(b, n, &one, 1, ends), (int)NENDS);
        CU_ASSERT(memcmp(ends, stream_ends, sizeof stream_ends) == 0);
    }
}

/* Expects the scanner to fail on b[0..n) with a reason containing want. */
static void scan_fails(const uint8_t *b, size_t n, const ember_bn_limits *l,
                       bool vocab, const char *want)
{
    ember_bn_scan s;
    ember_bn_scan_init(&s, l, vocab);
    size_t used;
    int r = ember_bn_scan_feed(&s, b, n, &used);
    CU_ASSERT_EQUAL(r, -1);
    if (r == -1 && !strstr(s.why, want)) {
        fprintf(stderr, "\nwhy '%s', want '%s'\n", s.why, want);
        CU_FAIL("reason");
    }
}

static void test_scan_limits(void)
{
    uint8_t b[128];
    /* A STRING of 655 361 and a LIST of 655 361: refused on the prefix,
     * with none of the body there. */
    size_t n = unhex("01 00 28 82", b, sizeof b);
    scan_fails(b, n, &lim, true, "string longer");
    n = unhex("01 00 28 80", b, sizeof b);
    scan_fails(b, n, &lim, true, "list longer");
    /* Exactly 655 360 announced: waits for the body. */
    ember_bn_scan s;
    size_t used;
    n = unhex("00 00 28 82", b, sizeof b);
    ember_bn_scan_init(&s, &lim, true);
    CU_ASSERT_EQUAL(ember_bn_scan_feed(&s, b, n, &used), 0);
    /* Over the caller's own limits, before the body arrives. */
    ember_bn_limits small = {100, 10, 4, 64};
    n = unhex("65 82", b, sizeof b);
    scan_fails(b, n, &small, true, "max_string");
    n = unhex("0b 80", b, sizeof b);
    scan_fails(b, n, &small, true, "max_elems");
    n = unhex("02 80 3f 82", b, sizeof b);            /* 63 + 6 > 64 bytes */
    scan_fails(b, n, &small, true, "max_frame");
    n = unhex("01 80 01 80 01 80 01 80 01 80", b, sizeof b);
    scan_fails(b, n, &small, true, "deeper");
    /* 65 prefix bytes, complete or not; 64 are fine. */
    memset(b, 0x01, 65);
    scan_fails(b, 65, &lim, true, "prefix");
    b[64] = EMBER_BN_INT;
    ember_bn_scan_init(&s, &lim, true);
    CU_ASSERT_EQUAL(ember_bn_scan_feed(&s, b, 65, &used), 1);
    CU_ASSERT_EQUAL(used, 65);
    b[0] = 0x88;
    scan_fails(b, 1, &lim, true, "type byte");
    n = unhex("00 87", b, sizeof b);
    scan_fails(b, n, &lim, true, "1..31");
    n = unhex("20 87", b, sizeof b);
    scan_fails(b, n, &lim, true, "1..31");
    n = unhex("08 87", b, sizeof b);
    scan_fails(b, n, &lim, false, "dialect");
    n = unhex("01 84 00 00 00 00 00 00 00 00", b, sizeof b);
    scan_fails(b, n, &lim, true, "float with a prefix");
}

/* ---- failures ---- */

static void put_fail(ember_jl_w *w)
{
    static const char *const parents[] = {"twisted.spread.pb.Error",
                                          "builtins.Exception"};
    ember_jl_put_failure(w, "twisted.spread.pb.Error", "nope", parents, 2);
}

static void test_failure(void)
{
    uint8_t buf[1024];
    ember_enc e;
    ember_enc_init_fixed(&e, buf, sizeof buf);
    ember_jl_w w = {&e, true};
    put_fail(&w);
    CU_ASSERT_FALSE_FATAL(e.failed);
    size_t n = ember_enc_len(&e);
    /* The head and the first pair Twisted sends. */
    uint8_t want[64];
    size_t wn = unhex("02 80 21 82", want, sizeof want);
    CU_ASSERT(memcmp(buf, want, wn) == 0);
    CU_ASSERT(memcmp(buf + 4, "twisted.spread.pb.CopyableFailure", 33) == 0);
    wn = unhex("0b 80 05 87 02 80 02 80 07 82 75 6e 69 63 6f 64 65 05 82 63 "
               "6f 75 6e 74", want, sizeof want);
    CU_ASSERT(memcmp(buf + 37, want, wn) == 0);
    /* The whole is one expression, and reads back. */
    ember_bn_scan s;
    size_t used;
    ember_bn_scan_init(&s, &lim, true);
    CU_ASSERT(ember_bn_scan_feed(&s, buf, n, &used) == 1 && used == n);
    ember_jl_cur c;
    ember_jl_failure f;
    ember_jl_init(&c, buf, n, true);
    CU_ASSERT_EQUAL(ember_jl_read_failure(&c, &f), 0);
    CU_ASSERT_STRING_EQUAL(f.type, "twisted.spread.pb.Error");
    CU_ASSERT_STRING_EQUAL(f.value, "nope");
    CU_ASSERT(c.p == c.end);
    /* Python 2 style: bytes keys and values; and a bare string. */
    n = unhex("02 80 21 82", buf, 8);
    memcpy(buf + n, "twisted.spread.pb.CopyableFailure", 33);
    n += 33;
    n += unhex("03 80 05 87 02 80 04 82 74 79 70 65 01 82 45 "
               "02 80 05 82 76 61 6c 75 65 02 82 68 69", buf + n, sizeof buf - n);
    ember_jl_init(&c, buf, n, true);
    CU_ASSERT_EQUAL(ember_jl_read_failure(&c, &f), 0);
    CU_ASSERT_STRING_EQUAL(f.type, "E");
    CU_ASSERT_STRING_EQUAL(f.value, "hi");
    n = unhex("03 82 61 62 63", buf, sizeof buf);
    ember_jl_init(&c, buf, n, true);
    CU_ASSERT(ember_jl_read_failure(&c, &f) == 0 && strcmp(f.value, "abc") == 0);
    n = unhex("03 80 03 82 73 65 74 01 81 02 81", buf, sizeof buf);
    ember_jl_init(&c, buf, n, true);
    CU_ASSERT(ember_jl_read_failure(&c, &f) == 0 &&
              strcmp(f.value, "remote error") == 0 && c.p == c.end);
}

/* ---- typed values: ember -> jelly -> ember is the identity ---- */

static const ember_type t_i64 = {.kind = EMBER_T_I64};
static const ember_type t_u32 = {.kind = EMBER_T_U32};
static const ember_type t_str = {.kind = EMBER_T_STRING};
static const ember_type t_bytes = {.kind = EMBER_T_BYTES};
static const ember_type t_bool = {.kind = EMBER_T_BOOL};
static const ember_type t_f64 = {.kind = EMBER_T_F64};
static const ember_type t_ref = {.kind = EMBER_T_REF, .name = "t.S"};
static const ember_type t_list = {.kind = EMBER_T_LIST, .elem = &t_u32};
static const ember_type t_map = {.kind = EMBER_T_MAP, .elem = &t_i64, .key = &t_str};
static const ember_field_desc pos_fields[] = {
    {1, "x", &t_i64, false}, {2, "name", &t_str, true}, {3, "ok", &t_bool, false},
};
static const ember_type t_pos = {.kind = EMBER_T_STRUCT, .name = "t.Pos", .fields = pos_fields, .n_fields = 3};
static const ember_field_desc params[] = {
    {1, "a", &t_i64, false}, {2, "s", &t_str, false}, {3, "b", &t_bytes, false},
    {4, "l", &t_list, false}, {5, "m", &t_map, false}, {6, "p", &t_pos, false},
    {7, "f", &t_f64, false}, {8, "o", &t_u32, true}, {9, "r", &t_ref, false},
};
static const ember_method_desc method = {
    .id = 1, .name = "m", .pb_name = "m", .params = params, .n_params = 9,
    .result = &t_pos,
};

/* The argument struct generated code would write, fields in tag order. */
static size_t write_args(uint8_t *buf, size_t cap)
{
    ember_enc e;
    ember_enc_init_fixed(&e, buf, cap);
    ember_enc_sint(&e, 1, INT64_MIN);
    ember_enc_string(&e, 2, "\xc3\xbc" "ber");
    ember_bytes b = {(const uint8_t *)"list", 4};
    ember_enc_bytes(&e, 3, b);
    ember_enc_key(&e, 4, EMBER_WT_LEN); /* list<u32> {3, 0, 2^32-1, 7} */
    size_t mark = ember_enc_len_begin(&e);
    ember_enc_raw_varint(&e, 3);
    ember_enc_raw_varint(&e, 0);
    ember_enc_raw_varint(&e, UINT32_MAX);
    ember_enc_raw_varint(&e, 7);
    ember_enc_len_end(&e, mark);
    ember_enc_key(&e, 5, EMBER_WT_LEN); /* map<string, i64> {"k": -5} */
    mark = ember_enc_len_begin(&e);
    ember_enc_raw_varint(&e, 1);
    ember_enc_raw_string(&e, "k");
    ember_enc_raw_sint(&e, -5);
    ember_enc_len_end(&e, mark);
    ember_enc_key(&e, 6, EMBER_WT_LEN); /* Pos {x: 3, name: "n", ok: true} */
    mark = ember_enc_len_begin(&e);
    ember_enc_sint(&e, 1, 3);
    ember_enc_string(&e, 2, "n");
    ember_enc_bool(&e, 3, true);
    ember_enc_len_end(&e, mark);
    ember_enc_f64(&e, 7, -0.0);
    /* 8 (optional) absent; 9 a NULL ref */
    ember_enc_uint(&e, 9, 0);
    return e.failed ? 0 : ember_enc_len(&e);
}

static void test_typed_round_trip(void)
{
    uint8_t in[512], jel[1024], out[512];
    size_t n = write_args(in, sizeof in);
    CU_ASSERT_FATAL(n > 0);
    /* ember -> jelly: 9 positional values, the absent optional as None */
    ember_enc e;
    ember_enc_init_fixed(&e, jel, sizeof jel);
    ember_jl_w w = {&e, true};
    ember_pbx x = {NULL, {0}, {0}, 0};
    CU_ASSERT_EQUAL_FATAL(ember_pbx_args_out(&x, in, n, &method, &w), 0);
    size_t jn = ember_enc_len(&e);
    /* jelly -> ember: the same bytes */
    ember_jl_init(&x.cur, jel, jn, true);
    ember_enc_init_fixed(&e, out, sizeof out);
    CU_ASSERT_EQUAL_FATAL(ember_pbx_args_in(&x, 9, &method, &e), 0);
    CU_ASSERT(x.cur.p == x.cur.end);
    CU_ASSERT_EQUAL(ember_enc_len(&e), n);
    CU_ASSERT(memcmp(in, out, n) == 0);
}

/* A raised error's text for Python (ember_pbx_text): Python's str() of the
 * exception; a long string shows its start and the text ends "...", longer
 * than what ember reads back of a failure, so a relay of it stays a
 * failure; a bytes field's text that only looks like a literal is taken as
 * it is. */
static void test_raised_text(void)
{
    static const ember_field_desc refused_f[] = {
        {1, "code", &t_u32, false}, {2, "why", &t_str, false}};
    static const ember_type refused = {.kind = EMBER_T_STRUCT, .name = "t.Refused",
                                       .fields = refused_f, .n_fields = 2};
    static const ember_field_desc blob_f[] = {{1, "b", &t_bytes, false}};
    static const ember_type blob = {.kind = EMBER_T_STRUCT, .name = "t.Blob",
                                    .fields = blob_f, .n_fields = 1};
    static uint8_t in[4000];
    char text[EMBER_JL_FAIL_TEXT + 3];
    ember_enc e;
    char why[3000];
    memset(why, 'a', sizeof why - 1);
    why[sizeof why - 1] = 0;
    static const size_t lens[] = {6, 600, sizeof why - 1};
    for (size_t i = 0; i < 3; i++) {
        size_t len = lens[i];
        ember_enc_init_fixed(&e, in, sizeof in);
        ember_enc_key(&e, 1, EMBER_WT_VARINT);
        ember_enc_raw_varint(&e, 404);
        ember_enc_key(&e, 2, EMBER_WT_LEN);
        ember_enc_raw_varint(&e, len);
        memcpy(e.p, why, len);
        e.p += len;
        ember_pbx_text(in, ember_enc_len(&e), &refused, text, sizeof text);
        size_t n = strlen(text);
        if (len == 6) {
            CU_ASSERT_STRING_EQUAL(text, "(404, 'aaaaaa')");
        } else {
            CU_ASSERT(n == sizeof text - 1 && n > EMBER_JL_FAIL_TEXT - 1);
            CU_ASSERT(strncmp(text, "(404, 'aaaa", 11) == 0);
            CU_ASSERT(strcmp(text + n - 4, "a...") == 0);
        }
    }
    ember_pbx x = {NULL, {0}, {0}, 0};
    static const ember_raise_desc raises[] = {{7, &blob}};
    const ember_method_desc m = {.id = 1, .name = "m", .pb_name = "m",
                                 .raises = raises, .n_raises = 1};
    uint8_t out[64];
    size_t olen = 0;
    CU_ASSERT_PTR_EQUAL(ember_pbx_raised_in(&x, &m, "t.Blob", "b'hello", out,
                                            sizeof out, &olen), &raises[0]);
    CU_ASSERT(olen == 9 && out[0] == ((1 << 3) | EMBER_WT_LEN) && out[1] == 7 &&
              memcmp(out + 2, "b'hello", 7) == 0);
    CU_ASSERT_PTR_EQUAL(ember_pbx_raised_in(&x, &m, "t.Blob", "b'h\\x00i'", out,
                                            sizeof out, &olen), &raises[0]);
    CU_ASSERT(olen == 5 && out[1] == 3 && memcmp(out + 2, "h\0i", 3) == 0);
    /* Several arguments read only as str() writes them: "(a, b)". "()" and
     * "(7,)" are str() of one argument that is a tuple: a failure. */
    static const ember_raise_desc rraises[] = {{7, &refused}};
    const ember_method_desc mr = {.id = 1, .name = "m", .pb_name = "m",
                                  .raises = rraises, .n_raises = 1};
    CU_ASSERT_PTR_EQUAL(ember_pbx_raised_in(&x, &mr, "t.Refused", "(7, 'a')", out,
                                            sizeof out, &olen), &rraises[0]);
    CU_ASSERT(olen == 5 && out[1] == 7 && out[4] == 'a');
    CU_ASSERT_PTR_EQUAL(ember_pbx_raised_in(&x, &mr, "t.Refused", "7", out, sizeof out,
                                            &olen), &rraises[0]);
    static const char *const not_str[] = {"()", "(7,)", "(7,'a')", "(7, 'a',)", "(7 , 'a')"};
    for (size_t i = 0; i < sizeof not_str / sizeof *not_str; i++)
        CU_ASSERT_PTR_NULL(ember_pbx_raised_in(&x, &mr, "t.Refused", not_str[i], out,
                                               sizeof out, &olen));
}

static void test_typed_mismatch(void)
{
    uint8_t jel[64], out[64];
    ember_enc e;
    ember_pbx x = {NULL, {0}, {0}, 0};
    /* (local 5) for a ref: an object we do not export decodes to NULL */
    size_t n = unhex("02 80 11 87 05 81", jel, sizeof jel);
    static const ember_field_desc one_ref[] = {{9, "r", &t_ref, false}};
    const ember_method_desc m = {.id = 1, .name = "m", .pb_name = "m",
                                 .params = one_ref, .n_params = 1};
    ember_jl_init(&x.cur, jel, n, true);
    ember_enc_init_fixed(&e, out, sizeof out);
    CU_ASSERT_EQUAL(ember_pbx_args_in(&x, 1, &m, &e), 0);
    CU_ASSERT(ember_enc_len(&e) == 2 && out[0] == (9 << 3) && out[1] == 0);
    /* unicode where bytes... is fine; an int where a string is: named */
    n = unhex("05 81", jel, sizeof jel);
    static const ember_field_desc one_str[] = {{1, "name", &t_str, false}};
    const ember_method_desc ms = {.id = 1, .name = "login", .pb_name = "login",
                                  .params = one_str, .n_params = 1};
    ember_jl_init(&x.cur, jel, n, true);
    ember_enc_init_fixed(&e, out, sizeof out);
    CU_ASSERT_EQUAL(ember_pbx_args_in(&x, 1, &ms, &e), -1);
    CU_ASSERT(strstr(x.why, "login: argument 1 'name': expected string, got int") != NULL);
}

/* Python's float text, read and written with a '.' whatever LC_NUMERIC
 * the application set: de_DE writes 1,5 (the Makefile builds that locale
 * under LOCPATH). */
static void test_float_text_locale(void)
{
    if (!setlocale(LC_NUMERIC, "de_DE.UTF-8")) {
        CU_FAIL("no de_DE.UTF-8 locale: run through make (LOCPATH)");
        return;
    }
    char b[16];
    snprintf(b, sizeof b, "%.1f", 1.5);
    CU_ASSERT_STRING_EQUAL(b, "1,5"); /* the locale is in force */
    uint8_t jel[64], want[16];
    ember_enc e;
    ember_enc_init_fixed(&e, jel, sizeof jel);
    ember_jl_w w = {&e, true};
    CU_ASSERT_EQUAL(ember_pylit_value("2.25", &w), 0);
    size_t n = unhex("84 40 02 00 00 00 00 00 00", want, sizeof want);
    CU_ASSERT(ember_enc_len(&e) == n && memcmp(jel, want, n) == 0);
    ember_enc_init_fixed(&e, jel, sizeof jel);
    ember_bn_put_float(&e, 1.5);
    ember_bn_put_float(&e, 1e-7);
    char text[64];
    CU_ASSERT_EQUAL(ember_pylit_str(jel, ember_enc_len(&e), 2, true, text, sizeof text), 0);
    CU_ASSERT_STRING_EQUAL(text, "(1.5, 1e-07)");
    setlocale(LC_NUMERIC, "C");
}

void add_pb_suite(void)
{
    CU_pSuite s = CU_add_suite("pb codec", NULL, NULL);
    CU_add_test(s, "ints as Twisted writes them", test_write_ints);
    CU_add_test(s, "values as Twisted writes them", test_write_values);
    CU_add_test(s, "Twisted's size limits on writing", test_write_limits);
    CU_add_test(s, "reading ints and floats", test_read_ints_floats);
    CU_add_test(s, "reading a dictionary", test_read_dictionary);
    CU_add_test(s, "refused jelly", test_refused);
    CU_add_test(s, "jelly nested 64 lists deep at most", test_jelly_depth);
    CU_add_test(s, "a refused jelly type named after the check", test_jelly_check_why);
    CU_add_test(s, "boundaries however the stream is cut", test_scan_cuts);
    CU_add_test(s, "scanner limits on the prefix", test_scan_limits);
    CU_add_test(s, "CopyableFailure", test_failure);
    CU_add_test(s, "typed round trip ember -> jelly -> ember", test_typed_round_trip);
    CU_add_test(s, "typed mismatches and refs coming home", test_typed_mismatch);
    CU_add_test(s, "a raised error's Python text", test_raised_text);
    CU_add_test(s, "float text under a locale writing 1,5", test_float_text_locale);
}
