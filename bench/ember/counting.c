/* bench/ember/counting.c — see counting.h. */
#include "counting.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>
#include <ember/ember.h>

static bench_counts counts;

static void *count_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    (void)osize;
    if (nsize == 0) {
        if (ptr) {
            counts.ember_live -= (int64_t)malloc_usable_size(ptr);
            free(ptr);
        }
        return NULL;
    }
    size_t old = ptr ? malloc_usable_size(ptr) : 0;
    void *q = realloc(ptr, nsize);
    if (!q)
        return NULL;
    counts.ember_allocs++;
    counts.ember_live += (int64_t)malloc_usable_size(q) - (int64_t)old;
    return q;
}

static void *ev_malloc(size_t n)
{
    counts.event_allocs++;
    return malloc(n);
}

static void *ev_realloc(void *p, size_t n)
{
    counts.event_allocs++;
    return realloc(p, n);
}

void bench_counting_install(void)
{
    event_set_mem_functions(ev_malloc, ev_realloc, free);
    ember_set_allocator(count_alloc, NULL);
}

bench_counts bench_counting_get(void)
{
    return counts;
}

size_t bench_heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

size_t bench_rss(void)
{
    unsigned long size = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &res) != 2)
        res = 0;
    fclose(f);
    return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}
