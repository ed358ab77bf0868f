/*
 * depfile.c — make dependency rules for -M / -MF.
 */
#include <stdlib.h>
#include <string.h>

#include "depfile.h"

/* Make needs spaces, '#' and '$' escaped in file names. */
static void put_path(FILE *out, const char *p)
{
    for (; *p; p++) {
        if (*p == ' ' || *p == '#' || *p == '\\')
            fputc('\\', out);
        if (*p == '$')
            fputc('$', out);
        fputc(*p, out);
    }
}

typedef struct dep_list {
    const char **paths;
    size_t n, cap;
} dep_list;

static void collect(const char *path, void *ctx)
{
    dep_list *d = ctx;
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 8;
        d->paths = idl_xrealloc(d->paths, d->cap * sizeof *d->paths);
    }
    d->paths[d->n++] = path;
}

void depfile_write(FILE *out, const idl_loader *l, const idl_module *m,
                   const char *header, const char *source)
{
    dep_list d = { 0 };
    idl_loader_deps(l, m, collect, &d);
    put_path(out, header);
    fputc(' ', out);
    put_path(out, source);
    fputs(": ", out);
    put_path(out, m->path);
    for (size_t i = 0; i < d.n; i++) {
        fputs(" \\\n  ", out);
        put_path(out, d.paths[i]);
    }
    fputc('\n', out);
    for (size_t i = 0; i < d.n; i++) {
        fputc('\n', out);
        put_path(out, d.paths[i]);
        fputs(":\n", out);
    }
    free(d.paths);
}
