/*
 * bench/ember/counting.h — allocation counters for the ember peer: every
 * allocation ember makes goes through ember_set_allocator's hook, every one
 * libevent makes through event_set_mem_functions; both are counted here.
 */
#ifndef BENCH_COUNTING_H
#define BENCH_COUNTING_H

#include <stddef.h>
#include <stdint.h>

typedef struct bench_counts {
    uint64_t ember_allocs;     /* allocations (and reallocations) through the hook */
    int64_t ember_live;        /* bytes ember holds now (usable sizes) */
    uint64_t event_allocs;     /* libevent's allocations */
} bench_counts;

/* Installs both hooks; call before creating any event_base, root or node. */
void bench_counting_install(void);
/* The counters so far. */
bench_counts bench_counting_get(void);

/* Heap bytes in use (mallinfo2), for every allocator in the process. */
size_t bench_heap_in_use(void);
/* Resident set size in bytes (/proc/self/statm). */
size_t bench_rss(void);

#endif
