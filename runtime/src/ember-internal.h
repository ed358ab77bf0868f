/*
 * ember-internal.h — what every runtime source shares and users never see:
 * the export attribute, the allocator wrappers, logging and the arena's
 * private side.
 */
/*
 * Rooms, lowest first (docs/internals.md); a header includes only headers
 * of rooms below its own:
 *
 *   handshake  pb-raw  pb-xcode   the wires' insides
 *   call       outgoing calls (calltab), incoming calls (dispatch)
 *   ref        exports, refs, proxies
 *   conn       a connection: struct, transport, TLS, frame output
 *   ep         the endpoint: struct, work event, sweep, graceful stop
 *   wire       frames, the personality interface
 *   hash  auth  addr  ember  buf  metrics  pb  probe   (leaves: they
 *              include public headers and ember-internal.h only)
 */
#ifndef EMBER_INTERNAL_H
#define EMBER_INTERNAL_H

#include <locale.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <ember/ember.h>

/* The library is built with -fvisibility=hidden; this marks the public API. */
#if defined(__GNUC__)
#define EMBER_API __attribute__((visibility("default")))
#define EMBER_PRINTF(a, b) __attribute__((format(printf, a, b)))
/* A small helper of a per-value hot path that the compiler would otherwise
 * keep out of line (it has several callers). */
#define EMBER_HOT_INLINE static inline __attribute__((always_inline))
/* The general side of an inline fast path: kept out of line and cold. */
#define EMBER_COLD __attribute__((noinline, cold))
#else
#define EMBER_API
#define EMBER_PRINTF(a, b)
#define EMBER_HOT_INLINE static inline
#define EMBER_COLD
#endif

/* The struct type of the error m (NULL: untyped) raises under id; NULL
 * when it does not declare it. */
static inline const ember_type *ember_raise_type(const ember_method_desc *m,
                                                 uint32_t id)
{
    for (uint32_t i = 0; m && i < m->n_raises; i++)
        if (m->raises[i].id == id)
            return m->raises[i].type;
    return NULL;
}

/* The longest prefix of UTF-8 text s[0..n) of at most max bytes that does
 * not end inside a character: where text is cut and must stay UTF-8. */
static inline size_t ember_utf8_cut(const void *s, size_t n, size_t max)
{
    const uint8_t *u = s;
    if (n <= max)
        return n;
    /* A character has at most 3 continuation bytes: text that is not
     * UTF-8 (bytes) is not walked back further. */
    for (int k = 0; k < 3 && max > 0 && (u[max] & 0xc0) == 0x80; k++)
        max--;
    return max;
}

/* ---- alloc.c: every allocation goes through the user's hook ---- */
void *ember_malloc(size_t n);
void *ember_calloc(size_t n);                 /* zeroed */
void *ember_realloc(void *p, size_t osize, size_t nsize);
void ember_free(void *p, size_t osize);
char *ember_strdup(const char *s);
/* Gives freed memory back to the system after a burst (with the default
 * allocator, once 16 MiB of big blocks were freed since the last time):
 * the endpoints' sweep calls it. */
void ember_alloc_trim(void);
void ember_strfree(char *s);

/* ---- log.c ---- */
/* Every line is passed through ember_escape on its way out. */
void ember_log(ember_log_level lv, const char *fmt, ...) EMBER_PRINTF(2, 3);
bool ember_log_enabled(ember_log_level lv);
/* Every limit left 0 takes its default (a zeroed config is the default). */
void ember_limits_resolve(ember_limits *l);
/* Sets ember_last_error and returns -1. */
int ember_seterr(const char *fmt, ...) EMBER_PRINTF(1, 2);
/* Numbers read and written as C does, with a '.', whatever LC_NUMERIC
 * the application set (setlocale(LC_ALL, "") in a German locale makes
 * strtod stop at a '.' and printf write ','): switches the calling thread
 * alone to the C locale's (uselocale) and returns what to give uselocale
 * when done. */
locale_t ember_numbers_begin(void);

/* ---- arena.c ---- */
struct ember_arena_blk;
struct ember_arena_cleanup;
/*
 * One big arena block kept for reuse by the arenas that share the slot (an
 * endpoint's call arenas and its reply scratch), so a stream of large values
 * does not malloc, free and page-fault a block on every call. Bounded:
 * blocks over EMBER_ARENA_SPARE_MAX are never kept, and a sweep that finds
 * the spare unused since the previous one frees it.
 */
#define EMBER_ARENA_SPARE_MAX (1024u * 1024u)
typedef struct ember_arena_spare {
    struct ember_arena_blk *blk;   /* NULL: none kept */
    bool busy;                     /* taken or given back since the sweep */
} ember_arena_spare;

struct ember_arena {
    uint8_t *p, *end;              /* free space of the current block */
    uint8_t *first;                /* first block: inline or with the struct */
    size_t first_cap;
    struct ember_arena_blk *extra; /* heap blocks after the first */
    struct ember_arena_cleanup *cleanups; /* run on reset (decoded refs) */
    bool standalone;               /* made by ember_arena_new */
    ember_arena_spare *spare;      /* where big blocks come from, or NULL */
    size_t heap;                   /* bytes in extra blocks (held memory) */
};
/* Zeroes arena memory: n bytes rounded up to 8 (at least 8). The usual
 * argument or result struct is a few words: stores, not a memset call (a
 * loop would be turned back into one). */
static inline void ember_arena_zero(void *p, size_t n)
{
    n = (n + 7u) & ~(size_t)7u;
    uint64_t *w = p;
    switch (n / 8) {
    case 4: w[3] = 0; /* fallthrough */
    case 3: w[2] = 0; /* fallthrough */
    case 2: w[1] = 0; /* fallthrough */
    case 1: /* fallthrough */
    case 0: w[0] = 0; break;
    default: memset(p, 0, n); break;
    }
}
/* An arena over a caller-provided first block (8-byte aligned). */
void ember_arena_init(ember_arena *a, void *buf, size_t cap);
/* Runs the cleanups and frees the extra blocks (not the first). Inline
 * when there are none (a call's or reply's arena, nearly always): it runs
 * once per call served and per reply. */
void ember_arena_fini_(ember_arena *a);
static inline void ember_arena_fini(ember_arena *a)
{
    if (a->cleanups || a->extra) {
        ember_arena_fini_(a);
        return;
    }
    a->p = a->first;
    a->end = a->first + a->first_cap;
    a->heap = 0;
}
/* Frees the kept block when unused since the last sweep (or always: clear). */
void ember_arena_spare_sweep(ember_arena_spare *s);
void ember_arena_spare_clear(ember_arena_spare *s);
size_t ember_arena_spare_bytes(const ember_arena_spare *s);
/* Runs fn(p) when the arena is reset or finished. */
int ember_arena_defer(ember_arena *a, void (*fn)(void *), void *p);
/* Arena bytes one ember_arena_defer takes (charged to a decode's budget). */
#define EMBER_ARENA_CLEANUP_BYTES (3 * sizeof(void *))
/* codec.c: counts size bytes of arena memory against the decode budget;
 * -1 (with d->why set) when the budget would be exceeded. */
int ember_dec_charge(struct ember_dec *d, size_t size);

/* The length (2..4) of the valid multi-byte UTF-8 sequence at s[0..n), or
 * 0: no overlongs, no surrogates, nothing above U+10FFFF. */
static inline size_t ember_utf8_seq(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    size_t len;
    uint32_t cp, min;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2, cp = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, cp = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* Monotonic milliseconds / microseconds. */
uint64_t ember_now_ms(void);
uint64_t ember_now_us(void);

/* ---- arena.c, clock.c: hot-path helpers ---- */

/* Like ember_arena_alloc, without zeroing (the caller overwrites it all). */
void *ember_arena_alloc_nz(ember_arena *a, size_t size);
/* Its bump when the current block has room (inline: each decoded string
 * and argument struct takes one). */
static inline void *ember_arena_alloc_nz_fast(ember_arena *a, size_t size)
{
    size_t n = (size + 7u) & ~(size_t)7u;
    if (n == 0 || n < size || (size_t)(a->end - a->p) < n)
        return ember_arena_alloc_nz(a, size);
    void *r = a->p;
    a->p += n;
    return r;
}
/* A read batch or timer holds the clock: read once, used by everything the
 * batch does (call deadlines, call times). Holds nest; release each. */
void ember_clock_hold(void);
void ember_clock_release(void);
/* The held reading, or the real clock outside a hold. */
uint64_t ember_clock_us(void);
uint64_t ember_clock_ms(void);

#endif
