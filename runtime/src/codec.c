/*
 * codec.c — the out-of-line half of codec.h: growing an encoder's region,
 * long length prefixes, and every decoder that checks ranges, limits and
 * UTF-8. The inline half (varints, keys) stays in the header so generated
 * code inlines the hot path.
 */
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "buf-internal.h"
#include "call-internal.h"
#include "ember-internal.h"
#include "wire-internal.h"

EMBER_API int ember_enc_grow_(ember_enc *e, size_t need)
{
    if (e->failed)
        return -1;
    if (!e->owner) { /* a fixed buffer cannot grow */
        e->failed = 1;
        return -1;
    }
    if (ember_buf_enc_grow(e->owner, e, need)) {
        e->failed = 1;
        return -1;
    }
    return 0;
}

EMBER_API void ember_enc_too_deep_(ember_enc *e)
{
    if (e->failed)
        return;
    ember_seterr("a value nested deeper than max_depth (structs, lists and maps "
                 "inside one another)");
    e->failed = EMBER_ENC_BAD_ARGS;
}

EMBER_API void ember_enc_len_end_slow_(ember_enc *e, size_t mark, size_t n)
{
    size_t k = ember_enc_varint_size_(n);
    if (ember_enc_reserve(e, k - 1))
        return;
    /* reserve may have moved base: positions are offsets. */
    uint8_t *body = e->base + mark + 1;
    memmove(body + k - 1, body, n);
    e->p += k - 1;
    uint8_t *q = e->base + mark;
    while (n >= 0x80) {
        *q++ = (uint8_t)(n | 0x80);
        n >>= 7;
    }
    *q = (uint8_t)n;
}

EMBER_API int ember_dec_varint_(ember_dec *d, uint64_t *out)
{
    const uint8_t *p = d->p;
    if (d->end - p >= 8) {
        unsigned n = ember_varint_word_(p, out);
        if (n) {
            d->p = p + n;
            return 0;
        }
    }
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (p >= d->end) {
            d->p = p;
            return ember_dec_fail(d, "truncated varint");
        }
        uint8_t b = *p++;
        if (shift == 63 && b > 1) {
            d->p = p;
            return ember_dec_fail(d, "varint overflows 64 bits");
        }
        v |= (uint64_t)(b & 0x7f) << shift;
        if (b < 0x80) {
            d->p = p;
            *out = v;
            return 0;
        }
    }
    d->p = p;
    return ember_dec_fail(d, "varint too long");
}

EMBER_API void ember_dec_init(ember_dec *d, const void *data, size_t len,
                              ember_arena *arena)
{
    static const ember_dec_limits deflim = EMBER_DEC_LIMITS_DEFAULT;
    if (!d)
        return;
    if (!data)
        len = 0;
    d->p = data;
    d->end = d->p + len;
    d->arena = arena;
    d->conn = NULL;
    d->lim = deflim;
    d->depth = 0;
    d->why = NULL;
    d->in_len = len;
    d->used = 0;
    d->outside = 0;
}

/*
 * The one place decoded memory is accounted: every arena allocation a
 * decode makes (ember_dec_alloc, string and bytes copies, ref cleanups)
 * charges its rounded size here first. The cap is computed on use, not in
 * ember_dec_init, because the runtime sets d->lim after init.
 */
EMBER_HOT_INLINE int dec_charge(ember_dec *d, size_t size)
{
    uint64_t n = ((uint64_t)size + 7u) & ~(uint64_t)7u;
    if (n == 0)
        n = 8; /* the arena hands out at least 8 bytes */
    /* in_len <= SIZE_MAX and ratio < 2^32: the product fits in 64 bits
     * for any frame ember accepts (max_frame is 32-bit). */
    uint64_t cap = (uint64_t)d->lim.decode_floor +
                   (uint64_t)d->in_len * d->lim.decode_ratio;
    if (size > SIZE_MAX - 8 || n > cap || d->used > cap - n)
        return ember_dec_fail(d, "decoded size exceeds the decode budget "
                              "(decode_ratio x frame + decode_floor)");
    d->used += (size_t)n;
    return 0;
}

int ember_dec_charge(ember_dec *d, size_t size)
{
    return dec_charge(d, size);
}

EMBER_API int ember_dec_skip(ember_dec *d, unsigned wt)
{
    uint64_t v;
    switch (wt) {
    case EMBER_WT_VARINT:
        return ember_dec_raw_varint(d, &v);
    case EMBER_WT_I64:
        if (d->end - d->p < 8)
            return ember_dec_fail(d, "truncated fixed64");
        d->p += 8;
        return 0;
    case EMBER_WT_I32:
        if (d->end - d->p < 4)
            return ember_dec_fail(d, "truncated fixed32");
        d->p += 4;
        return 0;
    case EMBER_WT_LEN:
        if (ember_dec_raw_varint(d, &v))
            return -1;
        if (v > (uint64_t)(d->end - d->p))
            return ember_dec_fail(d, "length runs past the end");
        d->p += v;
        return 0;
    default:
        return ember_dec_fail(d, "unknown wire type");
    }
}

EMBER_API int ember_dec_raw_u64(ember_dec *d, uint64_t *v)
{
    return ember_dec_raw_varint(d, v);
}

#define DEC_UNSIGNED(name, ctype, max)                          \
    EMBER_API int ember_dec_raw_##name(ember_dec *d, ctype *v)  \
    {                                                           \
        uint64_t x;                                             \
        if (ember_dec_raw_varint(d, &x))                        \
            return -1;                                          \
        if (x > (max))                                          \
            return ember_dec_fail(d, "integer out of range");   \
        *v = (ctype)x;                                          \
        return 0;                                               \
    }
DEC_UNSIGNED(u32, uint32_t, UINT32_MAX)
DEC_UNSIGNED(u16, uint16_t, UINT16_MAX)
DEC_UNSIGNED(u8, uint8_t, UINT8_MAX)

EMBER_API int ember_dec_raw_i64(ember_dec *d, int64_t *v)
{
    uint64_t x;
    if (ember_dec_raw_varint(d, &x))
        return -1;
    *v = ember_unzigzag64(x);
    return 0;
}

#define DEC_SIGNED(name, ctype, min, max)                       \
    EMBER_API int ember_dec_raw_##name(ember_dec *d, ctype *v)  \
    {                                                           \
        int64_t x;                                              \
        if (ember_dec_raw_i64(d, &x))                           \
            return -1;                                          \
        if (x < (min) || x > (max))                             \
            return ember_dec_fail(d, "integer out of range");   \
        *v = (ctype)x;                                          \
        return 0;                                               \
    }
DEC_SIGNED(i32, int32_t, INT32_MIN, INT32_MAX)
DEC_SIGNED(i16, int16_t, INT16_MIN, INT16_MAX)
DEC_SIGNED(i8, int8_t, INT8_MIN, INT8_MAX)

EMBER_API int ember_dec_raw_bool(ember_dec *d, bool *v)
{
    uint64_t x;
    if (ember_dec_raw_varint(d, &x))
        return -1;
    if (x > 1)
        return ember_dec_fail(d, "bool is neither 0 nor 1");
    *v = x == 1;
    return 0;
}

EMBER_API int ember_dec_raw_f32(ember_dec *d, float *v)
{
    uint32_t x;
    if (ember_dec_raw_fixed32(d, &x))
        return -1;
    memcpy(v, &x, 4);
    return 0;
}

EMBER_API int ember_dec_raw_f64(ember_dec *d, double *v)
{
    uint64_t x;
    if (ember_dec_raw_fixed64(d, &x))
        return -1;
    memcpy(v, &x, 8);
    return 0;
}

/* Reads a length prefix and checks it against the limit and the bytes present. */
EMBER_HOT_INLINE int dec_len(ember_dec *d, size_t *n)
{
    uint64_t v;
    if (ember_dec_raw_varint(d, &v))
        return -1;
    if (v > d->lim.max_string)
        return ember_dec_fail(d, "string or bytes longer than the limit");
    if (v > (uint64_t)(d->end - d->p))
        return ember_dec_fail(d, "length runs past the end");
    *n = (size_t)v;
    return 0;
}

#define ONES8 0x0101010101010101ull
#define HIGH8 0x8080808080808080ull

/* Nonzero when the 8 bytes in w are not all in 0x01..0x7f: a byte with its
 * high bit set, or a NUL ((w - 0x01..) & ~w & 0x80.. is nonzero exactly when
 * some byte of w is zero). */
static inline uint64_t not_plain_ascii(uint64_t w)
{
    return (w & HIGH8) | ((w - ONES8) & ~w & HIGH8);
}

/*
 * The longest prefix of s[0..n), in whole 64-byte blocks, that is plain
 * ASCII (0x01..0x7f), copied to dst (unless NULL). With SSE2 (every x86-64)
 * a block is four 16-byte loads: the OR of the four has a high bit set when
 * some byte does, their unsigned minimum a zero byte when some byte is NUL;
 * one test per block, and the copy runs near memcpy's speed.
 */
#if defined(__SSE2__)
static size_t ascii_blocks(uint8_t *dst, const uint8_t *s, size_t n)
{
    const __m128i zero = _mm_setzero_si128();
    size_t i = 0;
    while (n - i >= 64) {
        __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(s + i + 16));
        __m128i c = _mm_loadu_si128((const __m128i *)(const void *)(s + i + 32));
        __m128i d = _mm_loadu_si128((const __m128i *)(const void *)(s + i + 48));
        __m128i hi = _mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(c, d));
        __m128i lo = _mm_min_epu8(_mm_min_epu8(a, b), _mm_min_epu8(c, d));
        if (_mm_movemask_epi8(_mm_or_si128(hi, _mm_cmpeq_epi8(lo, zero))))
            break;
        if (dst) {
            _mm_storeu_si128((__m128i *)(void *)(dst + i), a);
            _mm_storeu_si128((__m128i *)(void *)(dst + i + 16), b);
            _mm_storeu_si128((__m128i *)(void *)(dst + i + 32), c);
            _mm_storeu_si128((__m128i *)(void *)(dst + i + 48), d);
        }
        i += 64;
    }
    return i;
}
#else
static size_t ascii_blocks(uint8_t *dst, const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (n - i >= 64) {
        uint64_t w[8], bad = 0;
        memcpy(w, s + i, 64);
        for (int k = 0; k < 8; k++)
            bad |= not_plain_ascii(w[k]);
        if (bad)
            break;
        if (dst)
            memcpy(dst + i, w, 64);
        i += 64;
    }
    return i;
}
#endif

/*
 * Strict UTF-8: no overlongs, no surrogates, nothing above U+10FFFF, no NUL.
 * Copies s[0..n) to dst as it checks (dst may be NULL: check only), so a
 * string is read once. Runs of plain ASCII go 64 bytes at a time
 * (ascii_blocks), then 8; the byte-by-byte decoder only sees the words
 * holding something else, and the fast path resumes after each multi-byte
 * sequence.
 */
static bool utf8_copy(uint8_t *dst, const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        i += ascii_blocks(dst ? dst + i : NULL, s + i, n - i);
        while (n - i >= 32) {
            uint64_t w[4];
            memcpy(w, s + i, 32);
            if (not_plain_ascii(w[0]) | not_plain_ascii(w[1]) |
                not_plain_ascii(w[2]) | not_plain_ascii(w[3]))
                break;
            if (dst)
                memcpy(dst + i, w, 32);
            i += 32;
        }
        while (n - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (not_plain_ascii(w))
                break;
            if (dst)
                memcpy(dst + i, &w, 8);
            i += 8;
        }
        if (i == n)
            break;
        /* One character, byte by byte. */
        uint8_t c = s[i];
        if (c == 0)
            return false;
        if (c < 0x80) {
            if (dst)
                dst[i] = c;
            i++;
            continue;
        }
        size_t len = ember_utf8_seq(s + i, n - i);
        if (!len)
            return false;
        if (dst)
            memcpy(dst + i, s + i, len);
        i += len;
    }
    return true;
}

/*
 * The usual string, up to SHORT_STR bytes of plain ASCII: one pass of
 * 16-byte (else 8-byte) blocks, the last one overlapping the one before
 * it, that checks every byte is 0x01..0x7f and copies (dst may be NULL).
 * False when some byte is not: utf8_copy then does the real work from the
 * start (the copy is redone), so a short non-ASCII string costs one wasted
 * pass of at most SHORT_STR / 16 blocks.
 */
#define SHORT_STR 128u

EMBER_HOT_INLINE bool ascii_copy_short(uint8_t *dst, const uint8_t *s, size_t n)
{
#if defined(__SSE2__)
    if (n >= 16) {
        const __m128i zero = _mm_setzero_si128();
        __m128i ok = _mm_cmpeq_epi8(zero, zero);
        for (size_t i = 0; i + 16 < n; i += 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
            ok = _mm_and_si128(ok, _mm_cmpgt_epi8(v, zero)); /* 1..127 */
            if (dst)
                _mm_storeu_si128((__m128i *)(void *)(dst + i), v);
        }
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + n - 16));
        ok = _mm_and_si128(ok, _mm_cmpgt_epi8(v, zero));
        if (dst)
            _mm_storeu_si128((__m128i *)(void *)(dst + n - 16), v);
        return _mm_movemask_epi8(ok) == 0xffff;
    }
#endif
    if (n >= 8) {
        uint64_t bad = 0, w;
        for (size_t i = 0; i + 8 < n; i += 8) {
            memcpy(&w, s + i, 8);
            bad |= not_plain_ascii(w);
            if (dst)
                memcpy(dst + i, &w, 8);
        }
        memcpy(&w, s + n - 8, 8);
        bad |= not_plain_ascii(w);
        if (dst)
            memcpy(dst + n - 8, &w, 8);
        return bad == 0;
    }
    for (size_t i = 0; i < n; i++) {
        if ((uint8_t)(s[i] - 1) >= 0x7f) /* NUL or a high bit */
            return false;
        if (dst)
            dst[i] = s[i];
    }
    return true;
}

/* utf8_copy with the short plain-ASCII string inline. */
EMBER_HOT_INLINE bool utf8_copy_any(uint8_t *dst, const uint8_t *s, size_t n)
{
    if (n <= SHORT_STR && ascii_copy_short(dst, s, n))
        return true;
    return utf8_copy(dst, s, n);
}

EMBER_API void ember_enc_str_(ember_enc *e, uint32_t tag, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    uint64_t key = ((uint64_t)tag << 3) | EMBER_WT_LEN;
    size_t hdr = (tag ? ember_enc_varint_size_(key) : 0) + ember_enc_varint_size_(n);
    if (n > SIZE_MAX - hdr || ember_enc_reserve(e, hdr + n))
        return;
    uint8_t *p = e->p;
    if (tag)
        p = ember_enc_varint_at_(p, key);
    p = ember_enc_varint_at_(p, n);
    if (n && !utf8_copy_any(p, (const uint8_t *)s, n)) {
        if (!e->bad_utf8)
            e->bad_utf8 = tag ? tag : EMBER_ENC_ELEM;
        e->failed = 1;
        return;
    }
    e->p = p + n;
}

EMBER_API bool ember_utf8_valid(const char *s, size_t n)
{
    if (!s)
        return n == 0;
    return utf8_copy(NULL, (const uint8_t *)s, n);
}

/* Arena memory the caller overwrites at once (no zeroing). */
EMBER_HOT_INLINE void *dec_alloc_nz(ember_dec *d, size_t size)
{
    if (!d->arena) {
        ember_dec_fail(d, "decoder has no arena");
        return NULL;
    }
    if (dec_charge(d, size))
        return NULL;
    void *p = ember_arena_alloc_nz_fast(d->arena, size);
    if (!p)
        ember_dec_fail(d, "out of memory");
    return p;
}

EMBER_API int ember_dec_raw_string(ember_dec *d, const char **v)
{
    size_t n;
    if (dec_len(d, &n))
        return -1;
    /* Without an arena, report bad UTF-8 before the missing arena, as
     * before; with one, check while copying. */
    if (!d->arena && !utf8_copy(NULL, d->p, n))
        return ember_dec_fail(d, "string is not valid UTF-8 (or holds NUL)");
    if (n == 0 && d->arena) {
        /* Shared, read-only "": a list of empty strings then costs only its
         * pointers, which keeps such legit lists well inside the budget. */
        *v = "";
        return 0;
    }
    char *s = dec_alloc_nz(d, n + 1);
    if (!s)
        return -1;
    if (!utf8_copy_any((uint8_t *)s, d->p, n))
        return ember_dec_fail(d, "string is not valid UTF-8 (or holds NUL)");
    s[n] = 0;
    d->p += n;
    *v = s;
    return 0;
}

EMBER_API int ember_dec_raw_bytes(ember_dec *d, ember_bytes *v)
{
    size_t n;
    if (dec_len(d, &n))
        return -1;
    v->len = n;
    v->data = NULL;
    if (n) {
        uint8_t *b = dec_alloc_nz(d, n);
        if (!b)
            return -1;
        memcpy(b, d->p, n);
        v->data = b;
    }
    d->p += n;
    return 0;
}

EMBER_API int ember_dec_enter_raw(ember_dec *d, const uint8_t **saved_end)
{
    uint64_t n;
    if (d->depth >= d->lim.max_depth)
        return ember_dec_fail(d, "values nested too deeply");
    if (ember_dec_raw_varint(d, &n))
        return -1;
    if (n > (uint64_t)(d->end - d->p))
        return ember_dec_fail(d, "length runs past the end");
    *saved_end = d->end;
    d->end = d->p + n;
    d->depth++;
    return 0;
}

EMBER_API int ember_dec_enter(ember_dec *d, unsigned wt, const uint8_t **saved_end)
{
    if (ember_dec_expect(d, wt, EMBER_WT_LEN))
        return -1;
    return ember_dec_enter_raw(d, saved_end);
}

EMBER_API void ember_dec_leave(ember_dec *d, const uint8_t *saved_end)
{
    d->p = d->end;
    d->end = saved_end;
    if (d->depth)
        d->depth--;
}

EMBER_API int ember_dec_list_begin_raw(ember_dec *d, size_t min_elem_bytes,
                                       size_t elem_size, uint32_t *count,
                                       void **items, const uint8_t **saved_end)
{
    uint64_t n;
    *count = 0;
    *items = NULL;
    if (ember_dec_enter_raw(d, saved_end))
        return -1;
    if (ember_dec_raw_varint(d, &n))
        return -1;
    if (n > d->lim.max_elems)
        return ember_dec_fail(d, "list or map longer than the limit");
    size_t left = (size_t)(d->end - d->p);
    if (min_elem_bytes && n > left / min_elem_bytes)
        return ember_dec_fail(d, "list or map count exceeds the bytes present");
    if (n && elem_size) {
        if (n > SIZE_MAX / elem_size)
            return ember_dec_fail(d, "list too large");
        *items = ember_dec_alloc(d, (size_t)n * elem_size);
        if (!*items)
            return -1;
    }
    *count = (uint32_t)n;
    return 0;
}

EMBER_API int ember_dec_list_begin(ember_dec *d, unsigned wt, size_t min_elem_bytes,
                                   size_t elem_size, uint32_t *count, void **items,
                                   const uint8_t **saved_end)
{
    *count = 0;
    *items = NULL;
    if (ember_dec_expect(d, wt, EMBER_WT_LEN))
        return -1;
    return ember_dec_list_begin_raw(d, min_elem_bytes, elem_size, count, items,
                                    saved_end);
}

EMBER_API int ember_dec_list_end(ember_dec *d, const uint8_t *saved_end)
{
    if (d->p != d->end)
        return ember_dec_fail(d, "list or map has trailing bytes");
    ember_dec_leave(d, saved_end);
    return 0;
}

EMBER_API void *ember_dec_alloc(ember_dec *d, size_t size)
{
    if (!d->arena) {
        ember_dec_fail(d, "decoder has no arena");
        return NULL;
    }
    if (dec_charge(d, size))
        return NULL;
    void *p = ember_arena_alloc_nz_fast(d->arena, size);
    if (!p) {
        ember_dec_fail(d, "out of memory");
        return NULL;
    }
    ember_arena_zero(p, size);
    return p;
}

void ember_enc_payload(ember_enc *e, const void *value)
{
    const ember_bytes *b = value;
    if (b->len && !b->data) {
        ember_seterr("a payload of %zu bytes at NULL", b->len);
        e->failed = EMBER_ENC_BAD_ARGS;
        return;
    }
    if (b->len && ember_enc_reserve(e, b->len) == 0) {
        memcpy(e->p, b->data, b->len);
        e->p += b->len;
    }
}
