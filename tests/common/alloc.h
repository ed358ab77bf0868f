/*
 * alloc.h — an allocator for ember_set_allocator that counts the bytes the
 * runtime holds, shared by the test programs that measure or check them.
 * Header-only (static inline) so each suite's build needs no extra object.
 */
#ifndef EMBER_TEST_ALLOC_H
#define EMBER_TEST_ALLOC_H

#include <stdlib.h>

/* Bytes allocated through counting_alloc and not freed yet. */
static long long live_bytes;

static inline void *counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    if (nsize == 0) {
        if (ptr)
            live_bytes -= (long long)osize;
        free(ptr);
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (p)
        live_bytes += (long long)nsize - (long long)(ptr ? osize : 0);
    return p;
}

#endif
