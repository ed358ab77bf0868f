/*
 * depfile.c — make dependency rules for -M / -MF.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "depfile.h"

/* Escapes a file name as GNU make reads it back, as gcc -MD does, and ':'
 * too: a space, tab, '#' or ':' gets a '\\' before it and the backslashes
 * already before it doubled; '$' is "$$"; any other backslash stands for
 * itself. A newline, or a backslash that ends the name (make reads a line
 * continuation, or the backslashes as they are), cannot be written at all
 * (depfile_unnamable). */
static void put_path(FILE *out, const char *p)
{
    size_t bs = 0;
    for (;; p++) {
        if (*p == '\\') {
            bs++;
            continue;
        }
        bool special = *p == ' ' || *p == '\t' || *p == '#' || *p == ':';
        for (size_t i = 0; i < (special ? 2 * bs : bs); i++)
            fputc('\\', out);
        if (*p == '\0')
            return;
        bs = 0;
        if (special)
            fputc('\\', out);
        else if (*p == '$')
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

static bool unnamable(const char *p)
{
    size_t n = strlen(p);
    return strchr(p, '\n') || (n && p[n - 1] == '\\');
}

const char *depfile_unnamable(const idl_loader *l, const idl_module *m,
                              const char *header, const char *source)
{
    if (unnamable(header))
        return header;
    if (unnamable(source))
        return source;
    if (unnamable(m->path))
        return m->path;
    dep_list d = { 0 };
    idl_loader_deps(l, m, collect, &d);
    const char *bad = NULL;
    for (size_t i = 0; i < d.n && !bad; i++)
        if (unnamable(d.paths[i]))
            bad = d.paths[i];
    free(d.paths);
    return bad;
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
