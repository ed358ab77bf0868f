/*
 * alloc.c — the allocator hook (like lua_Alloc). Every byte the runtime
 * allocates goes through here, so a user can account for it and the bench
 * can count allocations per call.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "ember-internal.h"

/* Blocks at least this big count towards a trim when freed. */
#define TRIM_BLOCK ((size_t)128 << 10)
/* Bytes of such blocks freed since the last trim that make the next sweep
 * trim the heap. */
#define TRIM_AFTER ((size_t)16 << 20)

static void *default_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    (void)osize;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, nsize);
}

static ember_alloc_fn g_alloc = default_alloc;
static void *g_alloc_ud;
/* Allocations made (malloc or growing realloc); read by the bench. */
static atomic_ullong g_alloc_count;
/* Big blocks freed since the last trim. */
static atomic_size_t g_freed_big;

EMBER_API void ember_set_allocator(ember_alloc_fn fn, void *ud)
{
    g_alloc = fn ? fn : default_alloc;
    g_alloc_ud = fn ? ud : NULL;
}

EMBER_API uint64_t ember_alloc_count(void)
{
    return (uint64_t)atomic_load_explicit(&g_alloc_count, memory_order_relaxed);
}

void *ember_malloc(size_t n)
{
    if (n == 0)
        n = 1;
    atomic_fetch_add_explicit(&g_alloc_count, 1, memory_order_relaxed);
    return g_alloc(g_alloc_ud, NULL, 0, n);
}

void *ember_calloc(size_t n)
{
    void *p = ember_malloc(n);
    if (p)
        memset(p, 0, n ? n : 1);
    return p;
}

void *ember_realloc(void *p, size_t osize, size_t nsize)
{
    if (nsize == 0)
        nsize = 1;
    atomic_fetch_add_explicit(&g_alloc_count, 1, memory_order_relaxed);
    return g_alloc(g_alloc_ud, p, p ? osize : 0, nsize);
}

void ember_free(void *p, size_t osize)
{
    if (!p)
        return;
    if (osize >= TRIM_BLOCK)
        atomic_fetch_add_explicit(&g_freed_big, osize, memory_order_relaxed);
    g_alloc(g_alloc_ud, p, osize, 0);
}

void ember_alloc_trim(void)
{
    if (g_alloc != default_alloc ||
        atomic_load_explicit(&g_freed_big, memory_order_relaxed) < TRIM_AFTER)
        return;
    atomic_store_explicit(&g_freed_big, 0, memory_order_relaxed);
#if defined(__GLIBC__)
    /* glibc keeps freed blocks below its (adaptive, up to 32 MiB) mmap
     * threshold in the heap: a burst of 1 MiB buffers stays resident after
     * they are all freed unless the heap is trimmed. */
    malloc_trim(0);
#endif
}

char *ember_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = ember_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

void ember_strfree(char *s)
{
    if (s)
        ember_free(s, strlen(s) + 1);
}
