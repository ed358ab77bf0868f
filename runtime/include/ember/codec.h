/*
 * ember/codec.h — value encoding primitives used by idlc's generated code.
 *
 * The value format is protobuf's wire format for scalars and structs, so
 * `protoc --decode_raw` can read a captured payload:
 *
 *   field    := key value           key = varint(tag << 3 | wiretype)
 *   VARINT 0 := bool, unsigned ints, signed ints (zigzag), enums (zigzag)
 *   I64    1 := f64, little endian
 *   LEN    2 := varint(n) then n bytes: string, bytes, struct, list, map
 *   I32    5 := f32, little endian
 *
 * Containers differ from protobuf: a list is LEN { varint count, elements }
 * and a map is LEN { varint count, key value key value ... }, elements
 * written without keys (a struct element as LEN { fields }). The count lets a
 * decoder check it against the bytes present before it allocates.
 *
 * A struct is a sequence of fields in any order; a decoder skips tags it does
 * not know and leaves absent fields zero. See docs/protocol.md.
 *
 * Encoding writes straight into the connection's output buffer; decoding
 * reads from the received frame and allocates what it builds (arrays, copies
 * of strings with a terminating NUL) in the call's arena.
 */
#ifndef EMBER_CODEC_H
#define EMBER_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    EMBER_WT_VARINT = 0,
    EMBER_WT_I64 = 1,
    EMBER_WT_LEN = 2,
    EMBER_WT_I32 = 5
};

/* Largest field tag (protobuf's limit). */
#define EMBER_TAG_MAX 536870911u

/* bytes: a counted byte string. Decoded bytes live in the call's arena. */
typedef struct ember_bytes {
    const uint8_t *data;
    size_t len;
} ember_bytes;

typedef struct ember_arena ember_arena;
typedef struct ember_ref ember_ref;

/* ------------------------------------------------------------------ */
/* Encoder                                                            */
/* ------------------------------------------------------------------ */

/*
 * An encoder appends to a contiguous region. `base` may move when the region
 * grows, so positions kept across writes are offsets from `base`.
 * Once `failed` is set every write is a no-op and the frame is abandoned.
 */
typedef struct ember_enc {
    uint8_t *base;     /* start of the region being written */
    uint8_t *p;        /* next byte */
    uint8_t *end;      /* end of the reserved space */
    void *owner;       /* runtime buffer behind the region (grow) */
    void *conn;        /* connection the frame goes to (refs); may be NULL */
    int failed;        /* a grow failed or a value broke a limit; 2: a ref
                          was written with no connection (EMBER_ENC_NEEDS_CONN);
                          3: a ref that cannot go to this connection
                          (EMBER_ENC_BAD_REF, ember_last_error() says why) */
    /* A string that was not valid UTF-8 made it fail: the tag of its field
     * (EMBER_ENC_ELEM: an element of a list or map); 0: none. */
    uint32_t bad_utf8;
    /* Structs, lists and maps it may still open inside one another: a frame
     * starts with its connection's max_depth, so a value the peer's decoder
     * would refuse (and disconnect for) fails here, that call alone. */
    uint32_t depth_left;
} ember_enc;

#define EMBER_ENC_ELEM UINT32_MAX

#define EMBER_ENC_NEEDS_CONN 2
#define EMBER_ENC_BAD_REF 3

/* Out of line: grows the region so that at least `need` bytes are free. */
int ember_enc_grow_(ember_enc *e, size_t need);

/*
 * Encodes a reference on the connection the encoder writes to. A ref of a
 * peer passed on to another connection (a third party) needs the service
 * it is a ref<> of, svc (generated code passes it): the third party then
 * calls a proxy of ours, which forwards its calls of that service.
 */
struct ember_service_desc;
void ember_enc_ref_value_as(ember_enc *e, ember_ref *ref,
                            const struct ember_service_desc *svc);
void ember_enc_ref_as(ember_enc *e, uint32_t tag, ember_ref *ref,
                      const struct ember_service_desc *svc);
/* The same without a service: local objects and refs going home only. */
void ember_enc_ref_value(ember_enc *e, ember_ref *ref);
void ember_enc_ref(ember_enc *e, uint32_t tag, ember_ref *ref);

static inline int ember_enc_reserve(ember_enc *e, size_t n)
{
    if (e->failed)
        return -1;
    if ((size_t)(e->end - e->p) >= n)
        return 0;
    return ember_enc_grow_(e, n);
}

/* Standalone encoder over a caller-owned fixed buffer (tests, tools). */
static inline void ember_enc_init_fixed(ember_enc *e, void *buf, size_t cap)
{
    e->base = e->p = (uint8_t *)buf;
    e->end = e->base + cap;
    e->owner = NULL;
    e->conn = NULL;
    e->failed = 0;
    e->bad_utf8 = 0;
    e->depth_left = UINT32_MAX;
}

static inline size_t ember_enc_len(const ember_enc *e)
{
    return (size_t)(e->p - e->base);
}

/* Writes v as a varint at p (room for 10 bytes reserved); returns the end.
 * Encoders keep their cursor in a local: byte stores through e->p could
 * alias e->p itself, so the compiler would reload and store it per byte. */
static inline uint8_t *ember_enc_varint_at_(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static inline void ember_enc_raw_varint(ember_enc *e, uint64_t v)
{
    if (ember_enc_reserve(e, 10))
        return;
    e->p = ember_enc_varint_at_(e->p, v);
}

static inline uint64_t ember_zigzag64(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static inline int64_t ember_unzigzag64(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

static inline void ember_enc_raw_sint(ember_enc *e, int64_t v)
{
    ember_enc_raw_varint(e, ember_zigzag64(v));
}

static inline void ember_enc_raw_fixed32(ember_enc *e, uint32_t v)
{
    if (ember_enc_reserve(e, 4))
        return;
    e->p[0] = (uint8_t)v;
    e->p[1] = (uint8_t)(v >> 8);
    e->p[2] = (uint8_t)(v >> 16);
    e->p[3] = (uint8_t)(v >> 24);
    e->p += 4;
}

static inline void ember_enc_raw_fixed64(ember_enc *e, uint64_t v)
{
    ember_enc_raw_fixed32(e, (uint32_t)v);
    ember_enc_raw_fixed32(e, (uint32_t)(v >> 32));
}

static inline void ember_enc_raw_f32(ember_enc *e, float f)
{
    uint32_t v;
    memcpy(&v, &f, 4);
    ember_enc_raw_fixed32(e, v);
}

static inline void ember_enc_raw_f64(ember_enc *e, double f)
{
    uint64_t v;
    memcpy(&v, &f, 8);
    ember_enc_raw_fixed64(e, v);
}

/* Bytes v takes as a varint. */
static inline size_t ember_enc_varint_size_(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Length-prefixed bytes, after the key varint when keyed: one reservation
 * of exactly what it takes. */
static inline void ember_enc_len_bytes_(ember_enc *e, bool keyed, uint64_t key,
                                        const void *data, size_t n)
{
    size_t hdr = (keyed ? ember_enc_varint_size_(key) : 0) + ember_enc_varint_size_(n);
    if (n > SIZE_MAX - hdr || ember_enc_reserve(e, hdr + n))
        return;
    uint8_t *p = e->p;
    if (keyed)
        p = ember_enc_varint_at_(p, key);
    p = ember_enc_varint_at_(p, n);
    if (n)
        memcpy(p, data, n);
    e->p = p + n;
}

static inline void ember_enc_raw_bytes(ember_enc *e, const void *data, size_t n)
{
    ember_enc_len_bytes_(e, false, 0, data, n);
}

/* Out of line: a string's key (unless tag is 0: a list or map element),
 * length and bytes, in room reserved once, the bytes checked as the decoder
 * checks them (strict UTF-8) while they are copied; one that is not fails
 * the encoder, recording tag (0: EMBER_ENC_ELEM) in e->bad_utf8. */
void ember_enc_str_(ember_enc *e, uint32_t tag, const char *s);

/* A NULL string is written as the empty string. */
static inline void ember_enc_raw_string(ember_enc *e, const char *s)
{
    ember_enc_str_(e, 0, s);
}

static inline void ember_enc_key(ember_enc *e, uint32_t tag, unsigned wt)
{
    ember_enc_raw_varint(e, ((uint64_t)tag << 3) | wt);
}

/*
 * Length-delimited regions (structs, lists, maps): begin reserves one byte
 * for the length and returns its offset; end writes the real length, moving
 * the content when the length needs more than one byte.
 */
/* Out of line: fails e for a value nested deeper than its depth_left. */
void ember_enc_too_deep_(ember_enc *e);

static inline size_t ember_enc_len_begin(ember_enc *e)
{
    size_t mark = ember_enc_len(e);
    if (e->depth_left == 0)
        ember_enc_too_deep_(e);
    else
        e->depth_left--;
    if (ember_enc_reserve(e, 1) == 0)
        *e->p++ = 0;
    return mark;
}

void ember_enc_len_end_slow_(ember_enc *e, size_t mark, size_t n);

static inline void ember_enc_len_end(ember_enc *e, size_t mark)
{
    if (e->failed)
        return;
    e->depth_left++;
    size_t n = ember_enc_len(e) - mark - 1;
    if (n < 0x80)
        e->base[mark] = (uint8_t)n;
    else
        ember_enc_len_end_slow_(e, mark, n);
}

/* Keyed writers, one per scalar kind. */
static inline void ember_enc_uint(ember_enc *e, uint32_t tag, uint64_t v)
{
    ember_enc_key(e, tag, EMBER_WT_VARINT);
    ember_enc_raw_varint(e, v);
}

static inline void ember_enc_sint(ember_enc *e, uint32_t tag, int64_t v)
{
    ember_enc_key(e, tag, EMBER_WT_VARINT);
    ember_enc_raw_sint(e, v);
}

static inline void ember_enc_bool(ember_enc *e, uint32_t tag, bool v)
{
    ember_enc_uint(e, tag, v ? 1 : 0);
}

static inline void ember_enc_f32(ember_enc *e, uint32_t tag, float v)
{
    ember_enc_key(e, tag, EMBER_WT_I32);
    ember_enc_raw_f32(e, v);
}

static inline void ember_enc_f64(ember_enc *e, uint32_t tag, double v)
{
    ember_enc_key(e, tag, EMBER_WT_I64);
    ember_enc_raw_f64(e, v);
}

static inline void ember_enc_string(ember_enc *e, uint32_t tag, const char *s)
{
    ember_enc_str_(e, tag, s);
}

static inline void ember_enc_bytes(ember_enc *e, uint32_t tag, ember_bytes b)
{
    ember_enc_len_bytes_(e, true, ((uint64_t)tag << 3) | EMBER_WT_LEN, b.data,
                         b.len);
}

/* ------------------------------------------------------------------ */
/* Decoder                                                            */
/* ------------------------------------------------------------------ */

/*
 * Decoding limits; the runtime fills them from the connection's config.
 *
 * Decode budget: everything one decode allocates in the arena (arrays,
 * string and bytes copies, optional structs, ref bookkeeping; each counted
 * rounded up to 8 bytes, as the arena hands it out) may not exceed
 *     decode_floor + decode_ratio x (length of the input given to ember_dec_init)
 * bytes. Counts are checked against the bytes present at >= 1 byte per
 * element, so without this a list of N empty structs of S bytes each would
 * turn N bytes into N x S bytes of memory.
 */
typedef struct ember_dec_limits {
    uint32_t max_depth;      /* nesting of structs, lists and maps */
    uint32_t max_elems;      /* elements in one list or map */
    uint32_t max_string;     /* bytes in one string or bytes value */
    uint32_t decode_ratio;   /* budget: bytes allocated per input byte: 16 */
    uint32_t decode_floor;   /* budget: bytes allowed on top: 64 KiB */
} ember_dec_limits;

#define EMBER_DEC_LIMITS_DEFAULT { 64, 1u << 24, 1u << 24, 16, 1u << 16 }

typedef struct ember_dec {
    const uint8_t *p;        /* next byte */
    const uint8_t *end;      /* end of the current region */
    ember_arena *arena;      /* where decoded values are allocated */
    void *conn;              /* connection the frame came from (refs) */
    ember_dec_limits lim;
    uint32_t depth;
    const char *why;         /* first error, static text; NULL when fine */
    size_t in_len;           /* input length given to ember_dec_init (budget) */
    size_t used;             /* bytes this decode allocated (budget) */
    size_t outside;          /* of used, those outside the arena: the
                                entries of refs received for the first
                                time, which live until released */
} ember_dec;

/* Records the first error and returns -1. */
static inline int ember_dec_fail(ember_dec *d, const char *why)
{
    if (!d->why)
        d->why = why;
    return -1;
}

void ember_dec_init(ember_dec *d, const void *data, size_t len, ember_arena *arena);

/* Out of line: a varint of two bytes or more (call ids, large lengths). */
int ember_dec_varint_(ember_dec *d, uint64_t *out);

static inline int ember_dec_raw_varint(ember_dec *d, uint64_t *out)
{
    const uint8_t *p = d->p;
    if (p < d->end && *p < 0x80) { /* one byte: most tags and lengths */
        *out = *p;
        d->p = p + 1;
        return 0;
    }
    return ember_dec_varint_(d, out);
}

static inline int ember_dec_raw_fixed32(ember_dec *d, uint32_t *out)
{
    if (d->end - d->p < 4)
        return ember_dec_fail(d, "truncated fixed32");
    *out = (uint32_t)d->p[0] | (uint32_t)d->p[1] << 8 |
           (uint32_t)d->p[2] << 16 | (uint32_t)d->p[3] << 24;
    d->p += 4;
    return 0;
}

static inline int ember_dec_raw_fixed64(ember_dec *d, uint64_t *out)
{
    uint32_t lo = 0, hi = 0;
    if (d->end - d->p < 8)
        return ember_dec_fail(d, "truncated fixed64");
    ember_dec_raw_fixed32(d, &lo);
    ember_dec_raw_fixed32(d, &hi);
    *out = (uint64_t)hi << 32 | lo;
    return 0;
}

/*
 * Reads the next field key of the current region.
 * Returns 1 with *tag and *wt set, 0 at the end of the region, -1 on error.
 */
static inline int ember_dec_field(ember_dec *d, uint32_t *tag, unsigned *wt)
{
    uint64_t k;
    if (d->p >= d->end)
        return 0;
    if (ember_dec_raw_varint(d, &k))
        return -1;
    *wt = (unsigned)(k & 7);
    if ((k >> 3) == 0 || (k >> 3) > EMBER_TAG_MAX)
        return ember_dec_fail(d, "field tag out of range");
    *tag = (uint32_t)(k >> 3);
    return 1;
}

/* Skips a value of wire type wt (an unknown field). */
int ember_dec_skip(ember_dec *d, unsigned wt);

/* Checks a known field's wire type. */
static inline int ember_dec_expect(ember_dec *d, unsigned wt, unsigned want)
{
    return wt == want ? 0 : ember_dec_fail(d, "field has the wrong wire type");
}

/*
 * Element readers (no key). Narrow integers are range-checked so that a
 * peer cannot smuggle a value the C type cannot hold.
 */
int ember_dec_raw_u64(ember_dec *d, uint64_t *v);
int ember_dec_raw_u32(ember_dec *d, uint32_t *v);
int ember_dec_raw_u16(ember_dec *d, uint16_t *v);
int ember_dec_raw_u8(ember_dec *d, uint8_t *v);
int ember_dec_raw_i64(ember_dec *d, int64_t *v);
int ember_dec_raw_i32(ember_dec *d, int32_t *v);
int ember_dec_raw_i16(ember_dec *d, int16_t *v);
int ember_dec_raw_i8(ember_dec *d, int8_t *v);
int ember_dec_raw_bool(ember_dec *d, bool *v);
int ember_dec_raw_f32(ember_dec *d, float *v);
int ember_dec_raw_f64(ember_dec *d, double *v);
/* True if s[0..n) is strict UTF-8 (no overlongs, no surrogates, nothing
 * above U+10FFFF) without NUL: what the decoder accepts as a string. */
bool ember_utf8_valid(const char *s, size_t n);
/* Copies into the arena with a terminating NUL; rejects invalid UTF-8 and NUL. */
int ember_dec_raw_string(ember_dec *d, const char **v);
/* Copies into the arena. */
int ember_dec_raw_bytes(ember_dec *d, ember_bytes *v);
/* Decodes a reference received on the decoder's connection. */
int ember_dec_raw_ref(ember_dec *d, ember_ref **v);

/*
 * Keyed readers: the field's wire type was read by ember_dec_field and is
 * checked here. Each returns 0 or -1.
 */
#define EMBER_DEC_KEYED_(name, ctype, wire)                                  \
    static inline int ember_dec_##name(ember_dec *d, unsigned wt, ctype *v)  \
    {                                                                        \
        if (ember_dec_expect(d, wt, wire))                                   \
            return -1;                                                       \
        return ember_dec_raw_##name(d, v);                                   \
    }
EMBER_DEC_KEYED_(u64, uint64_t, EMBER_WT_VARINT)
EMBER_DEC_KEYED_(u32, uint32_t, EMBER_WT_VARINT)
EMBER_DEC_KEYED_(u16, uint16_t, EMBER_WT_VARINT)
EMBER_DEC_KEYED_(u8, uint8_t, EMBER_WT_VARINT)
EMBER_DEC_KEYED_(i64, int64_t, EMBER_WT_VARINT)
EMBER_DEC_KEYED_(i32, int32_t, EMBER_WT_VARINT)
EMBER_DEC_KEYED_(i16, int16_t, EMBER_WT_VARINT)
EMBER_DEC_KEYED_(i8, int8_t, EMBER_WT_VARINT)
EMBER_DEC_KEYED_(bool, bool, EMBER_WT_VARINT)
EMBER_DEC_KEYED_(f32, float, EMBER_WT_I32)
EMBER_DEC_KEYED_(f64, double, EMBER_WT_I64)
EMBER_DEC_KEYED_(string, const char *, EMBER_WT_LEN)
EMBER_DEC_KEYED_(bytes, ember_bytes, EMBER_WT_LEN)
EMBER_DEC_KEYED_(ref, ember_ref *, EMBER_WT_VARINT)
#undef EMBER_DEC_KEYED_

/*
 * Nested regions. For a struct: ember_dec_enter(d, wt, &saved) narrows the
 * decoder to the LEN value (checking depth); decode its fields; then
 * ember_dec_leave(d, saved) moves on to the bytes after it.
 * ember_dec_enter_raw does the same for an element (no key, no wire type).
 */
int ember_dec_enter(ember_dec *d, unsigned wt, const uint8_t **saved_end);
int ember_dec_enter_raw(ember_dec *d, const uint8_t **saved_end);
void ember_dec_leave(ember_dec *d, const uint8_t *saved_end);

/*
 * Lists and maps: enters the LEN value and reads the element count, checking
 * it against the limits and against the bytes present, assuming each element
 * takes at least min_elem_bytes (maps: each pair). Then allocates
 * count * elem_size bytes (zeroed) in the arena into *items (NULL when 0).
 * The array counts against the decode budget, so a count that the bytes
 * present allow can still fail when the elements' C size is large.
 * Decode `count` elements, then ember_dec_list_end(d, saved_end), which fails
 * unless the region was consumed exactly.
 */
int ember_dec_list_begin(ember_dec *d, unsigned wt, size_t min_elem_bytes,
                         size_t elem_size, uint32_t *count, void **items,
                         const uint8_t **saved_end);
int ember_dec_list_begin_raw(ember_dec *d, size_t min_elem_bytes,
                             size_t elem_size, uint32_t *count, void **items,
                             const uint8_t **saved_end);
/* Ends a list or map region; -1 if bytes are left over. */
int ember_dec_list_end(ember_dec *d, const uint8_t *saved_end);

/* Zeroed memory from the decoder's arena (optional structs), or NULL;
 * counted against the decode budget (ember_dec_limits). */
void *ember_dec_alloc(ember_dec *d, size_t size);

/* ------------------------------------------------------------------ */
/* Arena                                                              */
/* ------------------------------------------------------------------ */

/* A standalone arena for decoding outside a call (tests, tools). */
ember_arena *ember_arena_new(void);
void ember_arena_free(ember_arena *a);
/* Frees everything allocated so far; keeps the first block. */
void ember_arena_reset(ember_arena *a);
/* Zeroed, 8-byte aligned; NULL when out of memory. */
void *ember_arena_alloc(ember_arena *a, size_t size);

#ifdef __cplusplus
}
#endif
#endif
