/* test_frame.c — the frame parser fed whole, byte by byte, split anywhere. */
#include <string.h>

#include "helpers.h"
#include "wire-internal.h"

#define MAXF 16

typedef struct expect {
    uint8_t kind;
    uint32_t svc; /* CALL, ONEWAY */
    uint64_t h[3];
    const char *payload;
} expect;

static const expect frames[] = {
    {EMBER_FR_CALL, 0xf1707769u, {1ull << 24 | 1, 0, 601}, "\x08\x01\x10\x02"},
    {EMBER_FR_REPLY, 0, {1ull << 24 | 1, 0, 0}, "\x08\x05"},
    {EMBER_FR_PING, 0, {0, 0, 0}, ""},
    {EMBER_FR_ERROR, 0, {77, EMBER_FAILED, 0}, "\x0a\x03" "bad"},
    {EMBER_FR_ONEWAY, 0x00000080u, {3, 602, 0}, "x"},
    {EMBER_FR_DECREF, 0, {3, 2, 0}, ""},
    {EMBER_FR_GOODBYE, 0, {0, 0, 0}, ""},
};
#define NFRAMES (sizeof frames / sizeof frames[0])

static size_t build(uint8_t *buf)
{
    size_t off = 0;
    for (size_t i = 0; i < NFRAMES; i++) {
        ember_enc e;
        ember_enc_init_fixed(&e, buf + off, 256);
        e.p += 4;
        *e.p++ = frames[i].kind;
        if (frames[i].kind == EMBER_FR_CALL || frames[i].kind == EMBER_FR_ONEWAY)
            ember_enc_raw_fixed32(&e, frames[i].svc);
        for (int k = 0; k < ember_frame_nhdr(frames[i].kind); k++)
            ember_enc_raw_varint(&e, frames[i].h[k]);
        size_t pl = strlen(frames[i].payload);
        memcpy(e.p, frames[i].payload, pl);
        e.p += pl;
        size_t len = ember_enc_len(&e) - 4;
        buf[off] = (uint8_t)len;
        buf[off + 1] = (uint8_t)(len >> 8);
        buf[off + 2] = buf[off + 3] = 0;
        off += len + 4;
    }
    return off;
}

static int check(const ember_frame *f, size_t i)
{
    if (i >= NFRAMES || f->kind != frames[i].kind)
        return false;
    if ((f->kind == EMBER_FR_CALL || f->kind == EMBER_FR_ONEWAY) &&
        f->svc != frames[i].svc)
        return 0;
    for (int k = 0; k < ember_frame_nhdr(f->kind); k++)
        if (f->h[k] != frames[i].h[k])
            return 0;
    size_t pl = strlen(frames[i].payload);
    return f->len == pl && memcmp(f->payload, frames[i].payload, pl) == 0;
}

/* Feeds the stream in chunks (given by cut points) like a socket would. */
static size_t feed(const uint8_t *stream, size_t n, const size_t *cuts,
                   size_t ncuts, int *bad)
{
    static uint8_t acc[4096];
    size_t have = 0, start = 0, got = 0, pos = 0;
    for (size_t c = 0; c <= ncuts; c++) {
        size_t upto = c < ncuts ? cuts[c] : n;
        memcpy(acc + have, stream + pos, upto - pos);
        have += upto - pos;
        pos = upto;
        for (;;) {
            ember_frame f;
            size_t used;
            const char *why = NULL;
            int r = ember_frame_parse(acc + start, have - start, 1 << 20, &f,
                                      &used, &why);
            if (r < 0)
                (*bad)++;
            if (r <= 0)
                break;
            if (!check(&f, got))
                (*bad)++;
            got++;
            start += used;
        }
    }
    return got;
}

static void test_whole(void)
{
    uint8_t buf[4096];
    size_t n = build(buf);
    int bad = 0;
    CU_ASSERT_EQUAL(feed(buf, n, NULL, 0, &bad), NFRAMES);
    CU_ASSERT_EQUAL(bad, 0);
}

static void test_byte_by_byte(void)
{
    uint8_t buf[4096];
    size_t n = build(buf);
    static size_t cuts[4096];
    for (size_t i = 0; i < n; i++)
        cuts[i] = i + 1;
    int bad = 0;
    CU_ASSERT_EQUAL(feed(buf, n, cuts, n, &bad), NFRAMES);
    CU_ASSERT_EQUAL(bad, 0);
}

static void test_split_everywhere(void)
{
    uint8_t buf[4096];
    size_t n = build(buf);
    int bad = 0, wrong = 0;
    for (size_t cut = 0; cut <= n; cut++)
        wrong += feed(buf, n, &cut, 1, &bad) != NFRAMES;
    CU_ASSERT_EQUAL(wrong, 0);
    CU_ASSERT_EQUAL(bad, 0);
}

static void test_bad_frames(void)
{
    ember_frame f;
    size_t used;
    const char *why;
    static const uint8_t empty[] = {0, 0, 0, 0};
    CU_ASSERT_EQUAL(ember_frame_parse(empty, 4, 100, &f, &used, &why), -1);
    static const uint8_t huge[] = {0xff, 0xff, 0xff, 0x7f, 5};
    CU_ASSERT_EQUAL(ember_frame_parse(huge, 5, 1 << 24, &f, &used, &why), -1);
    static const uint8_t kind0[] = {1, 0, 0, 0, 0};
    CU_ASSERT_EQUAL(ember_frame_parse(kind0, 5, 100, &f, &used, &why), -1);
    static const uint8_t kind99[] = {1, 0, 0, 0, 99};
    CU_ASSERT_EQUAL(ember_frame_parse(kind99, 5, 100, &f, &used, &why), -1);
    static const uint8_t trunc[] = {7, 0, 0, 0, EMBER_FR_CALL, 1, 2, 3, 4, 1, 0x80};
    CU_ASSERT_EQUAL(ember_frame_parse(trunc, 11, 100, &f, &used, &why), -1);
    CU_ASSERT_STRING_EQUAL(why, "truncated frame header");
    /* A header varint of 11 bytes is not cut short: it is too long. */
    static const uint8_t longv[] = {13, 0, 0, 0, EMBER_FR_REPLY, 0x80, 0x80, 0x80, 0x80,
                                    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0};
    CU_ASSERT_EQUAL(ember_frame_parse(longv, sizeof longv, 100, &f, &used, &why), -1);
    CU_ASSERT_STRING_EQUAL(why, "frame header varint overflows 64 bits");
    /* ...and so is one whose tenth byte ends the frame, but holds more than
     * the 64th bit; nine bytes still going at the end are cut short. */
    static const uint8_t lastv[] = {11, 0, 0, 0, EMBER_FR_CANCEL, 0xff, 0xff, 0xff,
                                    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
    CU_ASSERT_EQUAL(ember_frame_parse(lastv, sizeof lastv, 100, &f, &used, &why), -1);
    CU_ASSERT_STRING_EQUAL(why, "frame header varint overflows 64 bits");
    CU_ASSERT_EQUAL(ember_frame_parse(lastv, 10, 100, &f, &used, &why), 0);
    static const uint8_t ninev[] = {10, 0, 0, 0, EMBER_FR_CANCEL, 0xff, 0xff, 0xff,
                                    0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    CU_ASSERT_EQUAL(ember_frame_parse(ninev, sizeof ninev, 100, &f, &used, &why), -1);
    CU_ASSERT_STRING_EQUAL(why, "truncated frame header");
    /* A CALL or ONEWAY too short for its service id. */
    static const uint8_t nosvc[] = {4, 0, 0, 0, EMBER_FR_ONEWAY, 1, 2, 3};
    CU_ASSERT_EQUAL(ember_frame_parse(nosvc, 8, 100, &f, &used, &why), -1);
    static const uint8_t partial[] = {9, 0, 0, 0, EMBER_FR_CALL, 1};
    CU_ASSERT_EQUAL(ember_frame_parse(partial, 6, 100, &f, &used, &why), 0);
    CU_ASSERT_EQUAL(used, 13); /* the whole frame's size is known early */
}

void add_frame_suite(void)
{
    CU_pSuite s = CU_add_suite("frame", NULL, NULL);
    CU_add_test(s, "whole stream", test_whole);
    CU_add_test(s, "byte by byte", test_byte_by_byte);
    CU_add_test(s, "split at every offset", test_split_everywhere);
    CU_add_test(s, "malformed frames", test_bad_frames);
}
