/*
 * ast.c — the arena every AST node lives in.
 *
 * idlc allocates many small nodes and frees them all at once when it exits
 * (or when idlc_check_buffer returns), so a bump allocator over a chain of
 * blocks is both the simplest and the fastest choice: no per-node free, no
 * leaks to track, and valgrind sees exactly one free per block.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ast.h"

enum { ARENA_BLOCK = 64 * 1024 };

typedef struct arena_block {
    struct arena_block *prev;
    size_t used, size;
    max_align_t data[];     /* aligned for any object */
} arena_block;

struct idl_arena {
    arena_block *top;
};

static void out_of_memory(void)
{
    fputs("idlc: out of memory\n", stderr);
    exit(2);
}

void *idl_xrealloc(void *p, size_t size)
{
    p = realloc(p, size ? size : 1);
    if (!p)
        out_of_memory();
    return p;
}

void *idl_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        out_of_memory();
    return p;
}

idl_arena *idl_arena_new(void)
{
    idl_arena *a = idl_xrealloc(NULL, sizeof *a);
    a->top = NULL;
    return a;
}

void idl_arena_free(idl_arena *a)
{
    if (!a)
        return;
    for (arena_block *b = a->top, *prev; b; b = prev) {
        prev = b->prev;
        free(b);
    }
    free(a);
}

void *idl_alloc(idl_arena *a, size_t size)
{
    const size_t align = sizeof(max_align_t);
    size = (size + align - 1) / align * align;
    if (size == 0)
        size = align;
    arena_block *b = a->top;
    if (!b || b->size - b->used < size) {
        /* Large requests get a block of their own so they waste nothing. */
        size_t cap = size > ARENA_BLOCK ? size : ARENA_BLOCK;
        b = idl_xrealloc(NULL, sizeof *b + cap);
        b->size = cap;
        b->used = 0;
        b->prev = a->top;
        a->top = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += size;
    memset(p, 0, size);
    return p;
}

char *idl_strndup(idl_arena *a, const char *s, size_t n)
{
    char *p = idl_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *idl_strdup(idl_arena *a, const char *s)
{
    return idl_strndup(a, s, strlen(s));
}
