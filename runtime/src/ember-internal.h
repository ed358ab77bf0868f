/*
 * ember-internal.h — what every runtime source shares and users never see:
 * the export attribute, the allocator wrappers, logging and the arena's
 * private side.
 */
#ifndef EMBER_INTERNAL_H
#define EMBER_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ember/ember.h>

/* The library is built with -fvisibility=hidden; this marks the public API. */
#if defined(__GNUC__)
#define EMBER_API __attribute__((visibility("default")))
#define EMBER_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define EMBER_API
#define EMBER_PRINTF(a, b)
#endif

/* ---- alloc.c: every allocation goes through the user's hook ---- */
void *ember_malloc(size_t n);
void *ember_calloc(size_t n);                 /* zeroed */
void *ember_realloc(void *p, size_t osize, size_t nsize);
void ember_free(void *p, size_t osize);
char *ember_strdup(const char *s);
void ember_strfree(char *s);

/* ---- log.c ---- */
void ember_log(ember_log_level lv, const char *fmt, ...) EMBER_PRINTF(2, 3);
bool ember_log_enabled(ember_log_level lv);
/* Sets ember_last_error and returns -1. */
int ember_seterr(const char *fmt, ...) EMBER_PRINTF(1, 2);

/* ---- arena.c ---- */
struct ember_arena_blk;
struct ember_arena_cleanup;
struct ember_arena {
    uint8_t *p, *end;              /* free space of the current block */
    uint8_t *first;                /* first block: inline or with the struct */
    size_t first_cap;
    struct ember_arena_blk *extra; /* heap blocks after the first */
    struct ember_arena_cleanup *cleanups; /* run on reset (decoded refs) */
    bool standalone;               /* made by ember_arena_new */
};
/* An arena over a caller-provided first block (8-byte aligned). */
void ember_arena_init(ember_arena *a, void *buf, size_t cap);
/* Runs the cleanups and frees the extra blocks (not the first). */
void ember_arena_fini(ember_arena *a);
/* Runs fn(p) when the arena is reset or finished. */
int ember_arena_defer(ember_arena *a, void (*fn)(void *), void *p);

/* Monotonic milliseconds / microseconds. */
uint64_t ember_now_ms(void);
uint64_t ember_now_us(void);

#endif
