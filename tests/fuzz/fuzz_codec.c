/*
 * fuzz_codec — drives the codec.h decoding primitives from the input.
 *
 * Input layout:
 *   byte 0          limits selector (defaults, or small limits that make
 *                   the limit checks fire often)
 *   byte 1          program length L (0..255, clamped to what is present)
 *   bytes 2..2+L    the program: one opcode byte per primitive call, some
 *                   opcodes take one argument byte from the program
 *   the rest        the bytes being decoded
 *
 * After every step the decoder's invariants are checked (p within the
 * region, region within the input, the first error sticks), every
 * allocation the decoder claims to have made is written in full (ASan
 * catches a short one), and decoded scalars are re-encoded with the
 * encoder and decoded again: the round trip must give the same value.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ember/codec.h>

#define STACK_MAX 256

static void die(const char *what)
{
    fprintf(stderr, "fuzz_codec: invariant broken: %s\n", what);
    abort();
}

/* Independent UTF-8 check: what a decoded string must satisfy. */
static int utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned min;
        uint32_t cp;
        if ((c & 0xe0) == 0xc0) {
            len = 2; min = 0x80; cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3; min = 0x800; cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4; min = 0x10000; cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i < len)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += len;
    }
    return 1;
}

/* Re-encodes a varint and decodes it again. */
static void roundtrip_varint(uint64_t v)
{
    uint8_t buf[16];
    ember_enc e;
    ember_enc_init_fixed(&e, buf, sizeof buf);
    ember_enc_raw_varint(&e, v);
    if (e.failed)
        die("varint encode into 16 bytes failed");
    ember_dec d;
    ember_dec_init(&d, buf, ember_enc_len(&e), NULL);
    uint64_t w = 0;
    if (ember_dec_raw_varint(&d, &w) || w != v || d.p != d.end)
        die("varint round trip");
}

/* Encodes a LEN region of n filler bytes into a fixed buffer of cap bytes;
 * when it fits, the length prefix must decode back to n. */
static void roundtrip_len(size_t n, size_t cap)
{
    uint8_t *buf = malloc(cap ? cap : 1);
    if (!buf)
        return;
    ember_enc e;
    ember_enc_init_fixed(&e, buf, cap);
    ember_enc_key(&e, 7, EMBER_WT_LEN);
    size_t mark = ember_enc_len_begin(&e);
    for (size_t i = 0; i < n && !e.failed; i++) {
        if (ember_enc_reserve(&e, 1) == 0)
            *e.p++ = (uint8_t)i;
    }
    ember_enc_len_end(&e, mark);
    if (e.p < e.base || e.p > e.end)
        die("encoder ran past its buffer");
    if (!e.failed) {
        ember_dec d;
        ember_dec_init(&d, buf, ember_enc_len(&e), NULL);
        uint32_t tag;
        unsigned wt;
        uint64_t len;
        if (ember_dec_field(&d, &tag, &wt) != 1 || tag != 7 || wt != EMBER_WT_LEN)
            die("len region key");
        if (ember_dec_raw_varint(&d, &len) || len != n ||
            (size_t)(d.end - d.p) != n)
            die("len region round trip");
        for (size_t i = 0; i < n; i++)
            if (d.p[i] != (uint8_t)i)
                die("len region content moved wrongly");
    }
    free(buf);
}

static void limits_from(uint8_t sel, ember_dec_limits *lim)
{
    static const ember_dec_limits dflt = EMBER_DEC_LIMITS_DEFAULT;
    if ((sel & 0x80) == 0) {
        *lim = dflt;
        return;
    }
    lim->max_depth = sel & 0x07;
    lim->max_elems = (sel >> 3) & 0x07 ? 1u << ((sel >> 3) & 0x07) : 0;
    lim->max_string = (sel & 0x40) ? 3 : 64;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t sel = data[0];
    size_t plen = data[1];
    if (plen > size - 2)
        plen = size - 2;
    const uint8_t *prog = data + 2;
    const uint8_t *buf = prog + plen;
    size_t blen = size - 2 - plen;

    /* The decoded bytes get their own allocation so ASan sees overreads. */
    uint8_t *copy = malloc(blen ? blen : 1);
    if (!copy)
        return 0;
    if (blen)
        memcpy(copy, buf, blen);

    ember_arena *arena = ember_arena_new();
    if (!arena) {
        free(copy);
        return 0;
    }
    ember_dec d;
    ember_dec_init(&d, copy, blen, arena);
    limits_from(sel, &d.lim);

    const uint8_t *stack[STACK_MAX];
    size_t sp = 0;
    const uint8_t *const lo = copy, *const hi = copy + blen;

    for (size_t pc = 0; pc < plen && !d.why; pc++) {
        uint8_t op = prog[pc];
        uint8_t arg = pc + 1 < plen ? prog[pc + 1] : 0;
        int rc = 0;
        switch (op % 24) {
        case 0: { uint64_t v; rc = ember_dec_raw_varint(&d, &v); if (!rc) roundtrip_varint(v); break; }
        case 1: { uint32_t v; rc = ember_dec_raw_fixed32(&d, &v); break; }
        case 2: { uint64_t v; rc = ember_dec_raw_fixed64(&d, &v); break; }
        case 3: {
            uint32_t tag; unsigned wt;
            int r = ember_dec_field(&d, &tag, &wt);
            if (r == 1) {
                if (tag == 0 || tag > EMBER_TAG_MAX || wt > 7)
                    die("field key out of range accepted");
                /* Skip the value as an unknown field. */
                rc = ember_dec_skip(&d, wt);
            } else if (r < 0) {
                rc = -1;
            } else if (d.p != d.end) {
                die("field returned 0 before the end");
            }
            break;
        }
        case 4: rc = ember_dec_skip(&d, arg & 7); pc++; break;
        case 5: { uint64_t v; rc = ember_dec_raw_u64(&d, &v); break; }
        case 6: { uint32_t v; rc = ember_dec_raw_u32(&d, &v); break; }
        case 7: { uint16_t v; rc = ember_dec_raw_u16(&d, &v); break; }
        case 8: { uint8_t v; rc = ember_dec_raw_u8(&d, &v); break; }
        case 9: {
            int64_t v; rc = ember_dec_raw_i64(&d, &v);
            if (!rc && ember_unzigzag64(ember_zigzag64(v)) != v)
                die("zigzag round trip");
            break;
        }
        case 10: { int32_t v; rc = ember_dec_raw_i32(&d, &v); break; }
        case 11: { int16_t v; rc = ember_dec_raw_i16(&d, &v); break; }
        case 12: { int8_t v; rc = ember_dec_raw_i8(&d, &v); break; }
        case 13: {
            bool v; rc = ember_dec_raw_bool(&d, &v);
            if (!rc && v != 0 && v != 1)
                die("bool not 0 or 1");
            break;
        }
        case 14: { float v; rc = ember_dec_raw_f32(&d, &v); break; }
        case 15: { double v; rc = ember_dec_raw_f64(&d, &v); break; }
        case 16: {
            const char *s = NULL;
            rc = ember_dec_raw_string(&d, &s);
            if (!rc) {
                if (!s)
                    die("string decoded to NULL");
                size_t n = strlen(s);
                if (n > d.lim.max_string)
                    die("string longer than max_string accepted");
                if (!utf8_ok((const unsigned char *)s, n))
                    die("invalid UTF-8 accepted");
            }
            break;
        }
        case 17: {
            ember_bytes b = { NULL, 0 };
            rc = ember_dec_raw_bytes(&d, &b);
            if (!rc) {
                if (b.len > d.lim.max_string)
                    die("bytes longer than max_string accepted");
                if (b.len && !b.data)
                    die("bytes with length but no data");
                volatile uint8_t sink = 0;
                for (size_t i = 0; i < b.len; i++)
                    sink ^= b.data[i];
                (void)sink;
            }
            break;
        }
        case 18: /* enter a struct by key */
        case 19: { /* enter a struct element */
            if (sp == STACK_MAX)
                break;
            const uint8_t *saved = NULL;
            if (op % 24 == 18) {
                rc = ember_dec_enter(&d, arg & 7, &saved);
                pc++;
            } else {
                rc = ember_dec_enter_raw(&d, &saved);
            }
            if (!rc) {
                if (d.depth > d.lim.max_depth)
                    die("depth beyond max_depth accepted");
                stack[sp++] = saved;
            }
            break;
        }
        case 20: /* leave a struct (or list) */
            if (sp) {
                const uint8_t *saved = stack[--sp];
                if (op & 0x80) {
                    rc = ember_dec_list_end(&d, saved);
                } else {
                    ember_dec_leave(&d, saved);
                }
            }
            break;
        case 21: /* list/map by key */
        case 22: { /* list element */
            if (sp == STACK_MAX)
                break;
            /* Generated code never passes 0: every element takes a byte. */
            size_t min_elem = (arg & 0x0f) ? (arg & 0x0f) : 1;
            size_t elem_size = (size_t)1 << ((arg >> 4) & 0x07);
            uint32_t count = 0;
            void *items = NULL;
            const uint8_t *saved = NULL;
            const uint8_t *before = d.p;
            if (op % 24 == 21) {
                unsigned wt = (arg >> 7) ? EMBER_WT_LEN : (op >> 5) & 7;
                rc = ember_dec_list_begin(&d, wt, min_elem, elem_size,
                                          &count, &items, &saved);
            } else {
                rc = ember_dec_list_begin_raw(&d, min_elem, elem_size,
                                              &count, &items, &saved);
            }
            pc++;
            if (!rc) {
                if (count > d.lim.max_elems)
                    die("count beyond max_elems accepted");
                if (min_elem && (uint64_t)count * min_elem > (uint64_t)(hi - before))
                    die("count larger than the bytes present accepted");
                if (count && !items)
                    die("list items NULL with a count");
                if (!count && items)
                    die("list items not NULL for 0 elements");
                if (count) {
                    /* All of it must be there and zeroed. */
                    const uint8_t *it = items;
                    for (size_t i = 0; i < (size_t)count * elem_size; i++)
                        if (it[i])
                            die("list items not zeroed");
                    memset(items, 0xa5, (size_t)count * elem_size);
                }
                stack[sp++] = saved;
            }
            break;
        }
        case 23: { /* encoder: a LEN region of arg*37 bytes into a buffer of program-chosen size */
            size_t n = (size_t)arg * 37;
            size_t cap = (size_t)(op >> 5) * 300;
            roundtrip_len(n, cap);
            pc++;
            /* May fail: the decode budget counts this too (with a reason). */
            void *m = ember_dec_alloc(&d, (size_t)arg * 3);
            if (m)
                memset(m, 0x5a, (size_t)arg * 3);
            else
                rc = -1;
            break;
        }
        }
        /* Invariants after every step. */
        if (rc != 0 && rc != -1)
            die("primitive returned neither 0 nor -1");
        if (rc == -1 && !d.why)
            die("failure without a reason");
        if (rc == 0 && d.why && op % 24 != 20)
            die("success with a reason set");
        if (d.p < lo || d.p > hi || d.end < lo || d.end > hi)
            die("decoder pointer outside the input");
        if (!d.why && d.p > d.end)
            die("decoder past the end of its region");
    }
    if (d.why) {
        const char *first = d.why;
        ember_dec_fail(&d, "second");
        if (d.why != first)
            die("first error not kept");
    }

    ember_arena_reset(arena);
    void *m = ember_arena_alloc(arena, 24);
    if (m)
        memset(m, 1, 24);
    ember_arena_free(arena);
    free(copy);
    return 0;
}
