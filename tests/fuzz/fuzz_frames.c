/*
 * fuzz_frames — the runtime's connection input path.
 *
 * Stage 1 (always): the frame layer alone. ember_frame_parse is run over the
 * input the way a connection reads its buffer (frame after frame), with a
 * max_frame chosen by the first byte, and every result is checked: a parsed
 * frame lies inside the bytes given, "need more" never claims a frame that
 * is already complete, an error always has a reason.
 *
 * Stage 2 (FUZZ_FRAMES_LIVE, once the root exists): the same bytes are sent
 * to a live root on loopback through a real socket, optionally after a valid
 * handshake so that the fuzzed frames reach call dispatch; see live.c.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt-internal.h"

#ifdef FUZZ_FRAMES_LIVE
int fuzz_frames_live(const uint8_t *data, size_t size);
#endif

static void die(const char *what)
{
    fprintf(stderr, "fuzz_frames: invariant broken: %s\n", what);
    abort();
}

static void parse_all(const uint8_t *data, size_t size, uint32_t max_frame)
{
    size_t off = 0;
    while (off < size) {
        const uint8_t *p = data + off;
        size_t n = size - off;
        ember_frame f;
        size_t used = 12345;
        const char *why = NULL;
        int r = ember_frame_parse(p, n, max_frame, &f, &used, &why);
        if (r == 1) {
            if (used < EMBER_FRAME_HDR || used > n)
                die("parsed frame size outside the bytes given");
            if (used - 4 > max_frame)
                die("frame larger than max_frame accepted");
            if (f.kind == 0 || f.kind > EMBER_FR_MAX_)
                die("unknown kind accepted");
            if (f.payload < p + EMBER_FRAME_HDR || f.payload + f.len != p + used)
                die("payload outside the frame");
            if (ember_frame_nhdr(f.kind) > 3)
                die("more than 3 header fields");
            /* Touch the payload: ASan checks it is really inside. */
            volatile uint8_t sink = 0;
            for (size_t i = 0; i < f.len; i++)
                sink ^= f.payload[i];
            (void)sink;
            (void)ember_frame_kind_name(f.kind);
            off += used;
        } else if (r == 0) {
            if (used != 0 && used <= n)
                die("need-more with a complete frame present");
            if (used == 0 && n >= 4)
                die("need-more without a size although the length is present");
            /* Feeding the frame one more byte at a time must never give a
             * different verdict than when it is whole: check the prefix. */
            return;
        } else if (r == -1) {
            if (!why)
                die("error without a reason");
            return;
        } else {
            die("parse returned neither 1, 0 nor -1");
        }
    }
}

/* Incremental feeding: every prefix of a frame must say "need more" until
 * the frame is complete, then give the same frame. */
static void parse_prefixes(const uint8_t *data, size_t size, uint32_t max_frame)
{
    ember_frame whole;
    size_t used_whole = 0;
    const char *why = NULL;
    int r_whole = ember_frame_parse(data, size, max_frame, &whole, &used_whole, &why);
    size_t lim = size < 64 ? size : 64;
    for (size_t k = 0; k < lim; k++) {
        /* An exact-size copy so that reads past k are caught. */
        uint8_t *cp = malloc(k ? k : 1);
        if (!cp)
            return;
        memcpy(cp, data, k);
        ember_frame f;
        size_t used = 0;
        const char *w = NULL;
        int r = ember_frame_parse(cp, k, max_frame, &f, &used, &w);
        free(cp);
        if (r == 1) {
            if (r_whole != 1 || used != used_whole || f.kind != whole.kind)
                die("a prefix parsed differently from the whole");
        } else if (r == -1) {
            if (r_whole != -1)
                die("a prefix failed where the whole input parses");
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const uint32_t maxes[4] = { 16u << 20, 64, 5, 4096 };
    uint32_t max_frame = maxes[data[0] & 3];
    parse_all(data + 1, size - 1, max_frame);
    parse_prefixes(data + 1, size - 1, max_frame);
#ifdef FUZZ_FRAMES_LIVE
    fuzz_frames_live(data, size);
#endif
    return 0;
}
