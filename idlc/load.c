/*
 * load.c — reading files and resolving imports.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "load.h"
#include "cnames.h"
#include "parser.h"
#include "sema.h"

/* Larger inputs are certainly not hand-written IDL; the limit also keeps
 * sizes within flex's int-sized buffers. */
enum { MAX_FILE = 64 * 1024 * 1024 };

typedef enum { LOADING, LOADED } load_state;

typedef struct loaded_file {
    char *key;              /* real path (malloc'd), identifies the file */
    idl_module *mod;
    load_state state;
    struct loaded_file *next;
} loaded_file;

struct idl_loader {
    idl_arena *arena;
    idl_diag *diag;
    char **incdirs;
    size_t nincdirs;
    loaded_file *files;
    loaded_file **slots;        /* files by key, open addressing; a power of 2 */
    size_t nslots, nfiles;
    idl_module *first, *last;   /* dependency order */
    /* The files being loaded, each with its next import: an explicit
     * stack, so that a chain of thousands of imports costs no C stack (and
     * the cycle messages read it). */
    struct load_frame *stack;
    size_t depth, cap;
};

typedef struct load_frame {
    idl_module *mod;
    loaded_file *file;      /* NULL for a buffer */
    idl_import *next;       /* the next import to load */
    bool from_memory;
} load_frame;

idl_loader *idl_loader_new(idl_arena *arena, idl_diag *diag)
{
    idl_loader *l = idl_xcalloc(1, sizeof *l);
    l->arena = arena;
    l->diag = diag;
    return l;
}

void idl_loader_free(idl_loader *l)
{
    if (!l)
        return;
    for (loaded_file *f = l->files, *n; f; f = n) {
        n = f->next;
        free(f->key);
        free(f);
    }
    free(l->incdirs);
    free(l->slots);
    free(l->stack);
    free(l);
}

void idl_loader_add_include(idl_loader *l, const char *dir)
{
    l->incdirs = idl_xrealloc(l->incdirs, (l->nincdirs + 1) * sizeof *l->incdirs);
    l->incdirs[l->nincdirs++] = idl_strdup(l->arena, dir);
}

idl_module *idl_loader_modules(const idl_loader *l)
{
    return l->first;
}

static void append_module(idl_loader *l, idl_module *m)
{
    if (l->last)
        l->last->next = m;
    else
        l->first = m;
    l->last = m;
}

/* Reads a whole file into the arena. errno is kept for the message. */
static char *read_file(idl_loader *l, const char *path, size_t *len, const char **why)
{
    /* O_NONBLOCK: opening a FIFO nobody writes to would wait forever; it
     * is refused below as any other file that is not a regular one. */
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0) {
        *why = strerror(errno);
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        *why = "not a regular file";
        return NULL;
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        *why = strerror(errno);
        close(fd);
        return NULL;
    }
    if (st.st_size > MAX_FILE) {
        fclose(f);
        *why = "file too large";
        return NULL;
    }
    size_t size = (size_t)st.st_size;
    char *buf = idl_alloc(l->arena, size + 1);
    size_t n = fread(buf, 1, size, f);
    bool bad = ferror(f) != 0;
    fclose(f);
    if (bad) {
        *why = "read error";
        return NULL;
    }
    *len = n;
    return buf;
}

/* path is a regular file, or (any) is there at all. */
static bool is_file(const char *path, bool any)
{
    struct stat st;
    return stat(path, &st) == 0 && (any || S_ISREG(st.st_mode));
}

static char *join(idl_arena *a, const char *dir, size_t dirlen, const char *name)
{
    if (dirlen == 0)
        return idl_strdup(a, name);
    size_t n = strlen(name);
    char *p = idl_alloc(a, dirlen + 1 + n + 1);
    memcpy(p, dir, dirlen);
    p[dirlen] = '/';
    memcpy(p + dirlen + 1, name, n + 1);
    return p;
}

/* The importing file's folder first, then the -I folders. */
static char *resolve(idl_loader *l, const char *from, const char *name, bool any)
{
    if (name[0] == '/')
        return is_file(name, any) ? idl_strdup(l->arena, name) : NULL;
    if (from) {
        const char *slash = strrchr(from, '/');
        size_t dirlen = slash ? (size_t)(slash - from) : 0;
        if (slash == from)
            dirlen = 1;     /* a file in "/" */
        char *p = join(l->arena, from, dirlen, name);
        if (is_file(p, any))
            return p;
    }
    for (size_t i = 0; i < l->nincdirs; i++) {
        const char *d = l->incdirs[i];
        size_t dl = strlen(d);
        while (dl > 1 && d[dl - 1] == '/')
            dl--;
        char *p = join(l->arena, d, dl, name);
        if (is_file(p, any))
            return p;
    }
    return NULL;
}

/* A hash table: a chain of thousands of imports looks each one up. */
static loaded_file **file_slot(loaded_file **slots, size_t nslots, const char *key)
{
    size_t i = (size_t)idl_fnv1a64(key, strlen(key)) & (nslots - 1);
    while (slots[i] && strcmp(slots[i]->key, key) != 0)
        i = (i + 1) & (nslots - 1);
    return &slots[i];
}

static loaded_file *find_file(idl_loader *l, const char *key)
{
    return l->nslots ? *file_slot(l->slots, l->nslots, key) : NULL;
}

static void add_file(idl_loader *l, loaded_file *f)
{
    f->next = l->files;
    l->files = f;
    if ((l->nfiles + 1) * 2 > l->nslots) {
        size_t n = l->nslots ? l->nslots * 2 : 64;
        loaded_file **slots = idl_xcalloc(n, sizeof *slots);
        for (loaded_file *g = l->files->next; g; g = g->next)
            *file_slot(slots, n, g->key) = g;
        free(l->slots);
        l->slots = slots;
        l->nslots = n;
    }
    *file_slot(l->slots, l->nslots, f->key) = f;
    l->nfiles++;
}

static void push(idl_loader *l, idl_module *m, loaded_file *f, bool from_memory)
{
    if (l->depth == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->stack = idl_xrealloc(l->stack, l->cap * sizeof *l->stack);
    }
    l->stack[l->depth++] = (load_frame){ m, f, m->imports, from_memory };
}

/* Parses text as the module at path (arena-owned) and puts it on the
 * stack: load_stack() loads its imports. */
static idl_module *load_text(idl_loader *l, loaded_file *f, const char *path,
                             const char *text, size_t len, bool from_memory)
{
    diag_add_source(l->diag, path, text, len);
    idl_module *m = idl_parse_text(l->arena, l->diag, path, text, len);
    if (f)
        f->mod = m;
    push(l, m, f, from_memory);
    return m;
}

static idl_module *load_path(idl_loader *l, const char *path, const idl_import *via)
{
    char *real = realpath(path, NULL);
    if (real) {
        loaded_file *f = find_file(l, real);
        if (f) {
            free(real);
            return f->mod;  /* a cycle if it is LOADING: idl_loader_cycles() */
        }
    }
    size_t len = 0;
    const char *why = NULL;
    char *text = read_file(l, path, &len, &why);
    if (!text) {
        free(real);
        if (via)
            diag_error(l->diag, via->loc, "cannot read import '%s': %s", path, why);
        else
            diag_fatal(l->diag, "cannot read '%s': %s", path, why);
        return NULL;
    }
    loaded_file *f = idl_xrealloc(NULL, sizeof *f);
    f->key = real ? real : strdup(path);
    f->mod = NULL;
    f->state = LOADING;
    add_file(l, f);
    return load_text(l, f, idl_strdup(l->arena, path), text, len, false);
}

/* "cannot find import" says where it looked, as resolve() does: the
 * importing file's folder, then each -I folder. */
static void import_missing(idl_loader *l, const idl_module *m, const idl_import *im,
                           bool from_memory)
{
    const char *there = from_memory ? NULL : resolve(l, m->path, im->path, true);
    if (there) { /* a folder, a device, a pipe: found, but no file */
        if (strcmp(there, im->path) == 0)
            diag_error(l->diag, im->loc, "import '%s' is not a regular file", im->path);
        else
            diag_error(l->diag, im->loc, "import '%s' is '%s', which is not a regular file",
                       im->path, there);
        return;
    }
    if (from_memory || im->path[0] == '/') {
        diag_error(l->diag, im->loc, "cannot find import '%s'%s", im->path,
                   from_memory ? " (this input is not a file: it imports nothing)" : "");
        return;
    }
    idl_buf where = {0};
    const char *slash = m->path ? strrchr(m->path, '/') : NULL;
    if (!slash)
        idl_buf_puts(&where, "'.'");
    else
        idl_buf_printf(&where, "'%.*s'", slash == m->path ? 1 : (int)(slash - m->path), m->path);
    for (size_t i = 0; i < l->nincdirs; i++)
        idl_buf_printf(&where, ", '%s'", l->incdirs[i]);
    diag_error(l->diag, im->loc, "cannot find import '%s' (looked in %s%s)", im->path,
               where.p, l->nincdirs ? "" : "; -I adds a folder");
    idl_buf_free(&where);
}

static void load_import1(idl_loader *l, idl_module *m, idl_import *im, bool from_memory)
{
    char *path = NULL;
    /* A file name cannot hold a NUL; cutting the path there would open
     * some other file than the one written. */
    if (strlen(im->path) != im->path_len)
        diag_error(l->diag, im->loc, "import path contains a NUL character");
    else if (im->path_len == 0)
        diag_error(l->diag, im->loc, "empty import path");
    else if (!from_memory && (path = resolve(l, m->path, im->path, false)) != NULL)
        im->module = load_path(l, path, im);
    else
        import_missing(l, m, im, from_memory);
}

static bool loc_before(idl_loc a, idl_loc b)
{
    return a.line < b.line || (a.line == b.line && a.col < b.col);
}

static void load_import(idl_loader *l, idl_module *m, idl_import *im, bool from_memory)
{
    int errors = diag_errors(l->diag);
    load_import1(l, m, im, from_memory);
    /* An import that failed and also comes after a declaration has one
     * error at the import: being late is a note at the declaration it
     * follows (sema reports a late import that loaded). */
    if (!im->module && diag_errors(l->diag) > errors && m->decls && loc_before(m->decls->loc, im->loc))
        diag_note(l->diag, m->decls->loc,
                  "the import also comes after this declaration; imports must come before all declarations");
}

/* Loads the imports of the files on the stack above base, depth first; a
 * file is done (and comes after what it imports) when its last import is. */
static void load_stack(idl_loader *l, size_t base)
{
    while (l->depth > base) {
        load_frame *top = &l->stack[l->depth - 1];
        idl_import *im = top->next;
        if (!im) {
            l->depth--;
            if (top->file)
                top->file->state = LOADED;
            append_module(l, top->mod);
            continue;
        }
        top->next = im->next;
        load_import(l, top->mod, im, top->from_memory); /* may push: top moves */
    }
}

idl_module *idl_load_file(idl_loader *l, const char *path)
{
    size_t base = l->depth;
    idl_module *m = load_path(l, path, NULL);
    load_stack(l, base);
    return m;
}

idl_module *idl_load_buffer(idl_loader *l, const char *name, const char *data, size_t len)
{
    if (len > MAX_FILE) {
        diag_fatal(l->diag, "'%s': input too large", name);
        return NULL;
    }
    size_t base = l->depth;
    idl_module *m = load_text(l, NULL, idl_strdup(l->arena, name), data, len, true);
    load_stack(l, base);
    return m;
}

/* Adds m to an open-addressing set of modules (nslots a power of 2, kept
 * under half full by the caller); false if it was there. */
static bool mark(const idl_module **slots, size_t nslots, const idl_module *m)
{
    size_t i = (size_t)(((uintptr_t)m >> 4) * 0x9E3779B97F4A7C15u) & (nslots - 1);
    while (slots[i]) {
        if (slots[i] == m)
            return false;
        i = (i + 1) & (nslots - 1);
    }
    slots[i] = m;
    return true;
}

/* Depth-first over imports, each file once; an explicit stack, so that a
 * chain of thousands of imports costs no C stack. */
void idl_loader_deps(const idl_loader *l, const idl_module *m,
                     void (*fn)(const char *path, void *ctx), void *ctx)
{
    size_t nslots = 64;
    while (nslots < 2 * (l->nfiles + 1))
        nslots *= 2;
    const idl_module **seen = idl_xcalloc(nslots, sizeof *seen);
    const idl_import **stack = NULL;
    size_t depth = 0, cap = 0;
    mark(seen, nslots, m);
    const idl_import *next = m->imports;
    for (;;) {
        if (!next) {
            if (depth == 0)
                break;
            next = stack[--depth];
            continue;
        }
        const idl_module *d = next->module;
        next = next->next;
        if (!d || !mark(seen, nslots, d))
            continue;
        fn(d->path, ctx);
        if (depth == cap) {
            cap = cap ? cap * 2 : 16;
            stack = idl_xrealloc(stack, cap * sizeof *stack);
        }
        stack[depth++] = next;
        next = d->imports;
    }
    free(stack);
    free(seen);
}

/* ---- import cycles ----
 *
 * Found once every file is loaded, on the whole import graph, so that what
 * is reported does not depend on the order of the inputs: every elementary
 * cycle once (Johnson's algorithm), starting at its file whose real path
 * sorts first, reported at the import that closes it. Each round of the
 * search finds at least one cycle, so the work is bounded by the cycles
 * reported, at most MAX_CYCLES of them. Explicit stacks throughout: a ring
 * of thousands of files costs no C stack. */
enum { MAX_CYCLES = 100 };

typedef struct cyc_graph {
    size_t n;
    loaded_file **node;         /* by real path */
    size_t *first, *adj;        /* node v's edges: adj[first[v] .. first[v + 1]) */
    const idl_import **via;     /* the import of each edge */
    const idl_module **mods;    /* module -> node map: open addressing */
    size_t *mod_idx, nslots;
} cyc_graph;

static int cmp_file(const void *a, const void *b)
{
    return strcmp((*(loaded_file *const *)a)->key, (*(loaded_file *const *)b)->key);
}

static size_t mod_slot(const cyc_graph *g, const idl_module *m)
{
    size_t i = (size_t)(((uintptr_t)m >> 4) * 0x9E3779B97F4A7C15u) & (g->nslots - 1);
    while (g->mods[i] && g->mods[i] != m)
        i = (i + 1) & (g->nslots - 1);
    return i;
}

static size_t node_of(const cyc_graph *g, const idl_module *m)
{
    size_t i = mod_slot(g, m);
    return g->mods[i] ? g->mod_idx[i] : SIZE_MAX;
}

typedef struct { size_t to; const idl_import *via; } cyc_edge;

static int cmp_edge(const void *a, const void *b)
{
    const cyc_edge *x = a, *y = b;
    return (x->to > y->to) - (x->to < y->to);
}

static void graph_build(const idl_loader *l, cyc_graph *g)
{
    size_t n = 0;
    for (loaded_file *f = l->files; f; f = f->next)
        n += f->mod != NULL;
    g->n = n;
    g->node = idl_xcalloc(n + 1, sizeof *g->node);
    n = 0;
    for (loaded_file *f = l->files; f; f = f->next)
        if (f->mod)
            g->node[n++] = f;
    qsort(g->node, n, sizeof *g->node, cmp_file);
    g->nslots = 64;
    while (g->nslots < 2 * (n + 1))
        g->nslots *= 2;
    g->mods = idl_xcalloc(g->nslots, sizeof *g->mods);
    g->mod_idx = idl_xcalloc(g->nslots, sizeof *g->mod_idx);
    size_t nedges = 0;
    for (size_t v = 0; v < n; v++) {
        size_t i = mod_slot(g, g->node[v]->mod);
        g->mods[i] = g->node[v]->mod;
        g->mod_idx[i] = v;
        for (const idl_import *im = g->node[v]->mod->imports; im; im = im->next)
            nedges++;
    }
    g->first = idl_xcalloc(n + 1, sizeof *g->first);
    g->adj = idl_xcalloc(nedges + 1, sizeof *g->adj);
    g->via = idl_xcalloc(nedges + 1, sizeof *g->via);
    cyc_edge *e = idl_xcalloc(nedges + 1, sizeof *e);
    size_t k = 0;
    for (size_t v = 0; v < n; v++) {
        g->first[v] = k;
        size_t m = 0;
        for (const idl_import *im = g->node[v]->mod->imports; im; im = im->next) {
            size_t w = im->module ? node_of(g, im->module) : SIZE_MAX;
            if (w != SIZE_MAX)
                e[m++] = (cyc_edge){ w, im };
        }
        /* Sorted (stable for the first import of a file imported twice,
         * which is reported apart), each target once. */
        for (size_t i = 1; i < m; i++)
            for (size_t j = i; j > 0 && cmp_edge(&e[j - 1], &e[j]) > 0; j--) {
                cyc_edge t = e[j];
                e[j] = e[j - 1];
                e[j - 1] = t;
            }
        for (size_t i = 0; i < m; i++)
            if (i == 0 || e[i].to != e[i - 1].to) {
                g->adj[k] = e[i].to;
                g->via[k++] = e[i].via;
            }
    }
    g->first[n] = k;
    free(e);
}

/* Strongly connected components of the nodes >= s (Tarjan, iterative):
 * comp[v] for v >= s; SIZE_MAX below s. */
static void graph_scc(const cyc_graph *g, size_t s, size_t *comp)
{
    size_t n = g->n;
    size_t *index = idl_xcalloc(n, sizeof *index), *low = idl_xcalloc(n, sizeof *low);
    size_t *stk = idl_xcalloc(n + 1, sizeof *stk), *call = idl_xcalloc(n + 1, sizeof *call);
    size_t *edge = idl_xcalloc(n + 1, sizeof *edge);
    bool *on = idl_xcalloc(n + 1, sizeof *on);
    size_t counter = 1, sp = 0, ncomp = 0;
    for (size_t v = 0; v < n; v++)
        comp[v] = SIZE_MAX;
    for (size_t root = s; root < n; root++) {
        if (index[root])
            continue;
        size_t depth = 0;
        call[depth] = root;
        edge[depth] = g->first[root];
        index[root] = low[root] = counter++;
        stk[sp++] = root;
        on[root] = true;
        while (true) {
            size_t v = call[depth];
            if (edge[depth] < g->first[v + 1]) {
                size_t w = g->adj[edge[depth]++];
                if (w < s)
                    continue;
                if (!index[w]) {
                    index[w] = low[w] = counter++;
                    stk[sp++] = w;
                    on[w] = true;
                    depth++;
                    call[depth] = w;
                    edge[depth] = g->first[w];
                } else if (on[w] && index[w] < low[v]) {
                    low[v] = index[w];
                }
                continue;
            }
            if (low[v] == index[v]) {
                size_t w;
                do {
                    w = stk[--sp];
                    on[w] = false;
                    comp[w] = ncomp;
                } while (w != v);
                ncomp++;
            }
            if (depth == 0)
                break;
            depth--;
            if (low[v] < low[call[depth]])
                low[call[depth]] = low[v];
        }
    }
    free(index);
    free(low);
    free(stk);
    free(call);
    free(edge);
    free(on);
}

/* A node whose component is more than itself, or that imports itself. */
static bool on_cycle(const cyc_graph *g, const size_t *comp, size_t v)
{
    for (size_t k = g->first[v]; k < g->first[v + 1]; k++)
        if (comp[g->adj[k]] == comp[v])
            return true;
    return false;
}

static void report_cycle(idl_loader *l, const cyc_graph *g, const size_t *path, size_t len,
                         const idl_import *closing)
{
    idl_buf chain = { 0 };
    for (size_t i = 0; i < len; i++)
        idl_buf_printf(&chain, "%s -> ", g->node[path[i]]->mod->path);
    idl_buf_puts(&chain, g->node[path[0]]->mod->path);
    diag_error(l->diag, closing->loc, "import cycle: %s", chain.p);
    idl_buf_free(&chain);
}

typedef struct { size_t *p; size_t n, cap; } size_vec;

static void vec_push(size_vec *v, size_t x)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 4;
        v->p = idl_xrealloc(v->p, v->cap * sizeof *v->p);
    }
    v->p[v->n++] = x;
}

void idl_loader_cycles(idl_loader *l)
{
    cyc_graph g = { 0 };
    graph_build(l, &g);
    size_t n = g.n, reported = 0;
    size_t *comp = idl_xcalloc(n + 1, sizeof *comp);
    bool *blocked = idl_xcalloc(n + 1, sizeof *blocked);
    size_vec *B = idl_xcalloc(n + 1, sizeof *B);
    size_t *path = idl_xcalloc(n + 1, sizeof *path), *edge = idl_xcalloc(n + 1, sizeof *edge);
    bool *found = idl_xcalloc(n + 1, sizeof *found);
    size_vec work = { 0 };
    bool more = false;
    for (size_t s = 0; s < n && !more; s++) {
        graph_scc(&g, s, comp);
        while (s < n && !on_cycle(&g, comp, s))
            s++;
        if (s == n)
            break;
        for (size_t v = s; v < n; v++) {
            blocked[v] = false;
            B[v].n = 0;
        }
        size_t c = comp[s], depth = 0;
        path[0] = s;
        edge[0] = g.first[s];
        found[0] = false;
        blocked[s] = true;
        while (true) {
            size_t v = path[depth];
            if (edge[depth] < g.first[v + 1]) {
                size_t k = edge[depth]++, w = g.adj[k];
                if (comp[w] != c)
                    continue;
                if (w == s) {
                    if (reported == MAX_CYCLES) {
                        more = true;
                        break;
                    }
                    report_cycle(l, &g, path, depth + 1, g.via[k]);
                    reported++;
                    found[depth] = true;
                } else if (!blocked[w]) {
                    depth++;
                    path[depth] = w;
                    edge[depth] = g.first[w];
                    found[depth] = false;
                    blocked[w] = true;
                }
                continue;
            }
            if (found[depth]) {
                /* unblock(v), iteratively */
                work.n = 0;
                vec_push(&work, v);
                while (work.n) {
                    size_t x = work.p[--work.n];
                    if (!blocked[x])
                        continue;
                    blocked[x] = false;
                    for (size_t i = 0; i < B[x].n; i++)
                        vec_push(&work, B[x].p[i]);
                    B[x].n = 0;
                }
            } else {
                for (size_t k = g.first[v]; k < g.first[v + 1]; k++)
                    if (comp[g.adj[k]] == c)
                        vec_push(&B[g.adj[k]], v);
            }
            if (depth == 0)
                break;
            depth--;
            found[depth] = found[depth] || found[depth + 1];
        }
    }
    if (more)
        diag_note(l->diag, (idl_loc){ 0 }, "more import cycles are not listed (%d are)", MAX_CYCLES);
    for (size_t v = 0; v <= n; v++)
        free(B[v].p);
    free(B);
    free(work.p);
    free(comp);
    free(blocked);
    free(path);
    free(edge);
    free(found);
    free(g.node);
    free(g.first);
    free(g.adj);
    free(g.via);
    free(g.mods);
    free(g.mod_idx);
}

void idl_loader_check(idl_loader *l, idl_diag *diag)
{
    idl_loader_cycles(l);
    sema_check(idl_loader_modules(l), diag);
    cnames_check(idl_loader_modules(l), diag);
}

int idlc_check_buffer(const char *name, const char *data, size_t len, FILE *diag_out)
{
    FILE *sink = NULL;
    if (!diag_out) {
        sink = fopen("/dev/null", "w");
        diag_out = sink;
        if (!diag_out)
            return 1;
    }
    idl_arena *arena = idl_arena_new();
    idl_diag *diag = diag_new(diag_out);
    idl_loader *l = idl_loader_new(arena, diag);
    idl_load_buffer(l, name ? name : "<input>", data, len);
    idl_loader_check(l, diag);
    int rc = diag_errors(diag) ? 1 : 0;
    idl_loader_free(l);
    diag_free(diag);
    idl_arena_free(arena);
    if (sink)
        fclose(sink);
    return rc;
}
