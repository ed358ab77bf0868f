/*
 * main.c — idlc's command line. Parsing arguments and writing files only:
 * every stage lives in its own file (load, sema, compat, gen_*).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ast.h"
#include "cnames.h"
#include "compat.h"
#include "depfile.h"
#include "diag.h"
#include "gen.h"
#include "load.h"
#include "sema.h"

#ifndef IDLC_VERSION
#define IDLC_VERSION "0.1.0"
#endif

static const char usage_text[] =
    "usage: idlc [options] FILE.idl...\n"
    "\n"
    "Compiles ember IDL files to C: for each path/NAME.idl, writes OUTDIR/NAME.h\n"
    "and OUTDIR/NAME.c. Imported modules are checked but not generated.\n"
    "\n"
    "options:\n"
    "  -I DIR                 search DIR for imports (after the importing file's folder);\n"
    "                         may be repeated, searched in order\n"
    "  -o OUTDIR              write generated files into OUTDIR (default: .)\n"
    "  -M                     print make dependency rules to stdout; generate nothing\n"
    "  -MF FILE               write make dependency rules to FILE, and generate\n"
    "  --check-compat OLD.idl check that FILE.idl can talk to peers built from OLD.idl;\n"
    "                         reports every breaking change, generates nothing\n"
    "  --help                 print this help and exit\n"
    "  --version              print the version and exit\n"
    "\n"
    "exit status: 0 success (--check-compat: compatible), 1 errors in the input,\n"
    "             incompatible versions or an output not written, 2 usage error\n";

typedef struct options {
    const char **inc;
    size_t ninc;
    const char **files;
    size_t nfiles;
    const char *outdir;
    const char *depfile;
    const char *compat_old;
    bool deps_only;
} options;

static int usage_error(const char *fmt, const char *arg)
{
    fputs("idlc: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\nTry 'idlc --help' for more information.\n", stderr);
    return 2;
}

/* The part of path/NAME.idl that names the outputs: "NAME" (length in *n). */
static const char *output_stem(const char *path, size_t *n)
{
    const char *s = strrchr(path, '/');
    s = s ? s + 1 : path;
    *n = strlen(s);
    if (*n > 4 && strcmp(s + *n - 4, ".idl") == 0)
        *n -= 4;
    return s;
}

/* Every input writes OUTDIR/NAME.h and NAME.c: two inputs with one NAME
 * would silently overwrite each other's output. Quadratic, but over the
 * command line's file list only. Returns -1 or the exit status. */
static int check_output_names(const options *o)
{
    for (size_t i = 0; i < o->nfiles; i++) {
        size_t ni, nj;
        const char *si = output_stem(o->files[i], &ni);
        for (size_t j = 0; j < i; j++) {
            const char *sj = output_stem(o->files[j], &nj);
            if (ni == nj && memcmp(si, sj, ni) == 0) {
                fprintf(stderr, "idlc: '%s' and '%s' would both write %.*s.h and %.*s.c\n"
                                "Try 'idlc --help' for more information.\n",
                        o->files[j], o->files[i], (int)ni, si, (int)ni, si);
                return 2;
            }
        }
    }
    /* One file under two names (a symbolic link) would be generated
     * twice, and the two copies would define the same names. A hard link
     * is two files to realpath: their one module name is reported. */
    char **real = calloc(o->nfiles, sizeof *real);
    int rc = -1;
    for (size_t i = 0; real && i < o->nfiles && rc < 0; i++) {
        real[i] = realpath(o->files[i], NULL);
        for (size_t j = 0; real[i] && j < i && rc < 0; j++) {
            if (real[j] && strcmp(real[i], real[j]) == 0) {
                fprintf(stderr, "idlc: '%s' and '%s' are one file ('%s'); give it once\n"
                                "Try 'idlc --help' for more information.\n",
                        o->files[j], o->files[i], real[i]);
                rc = 2;
            }
        }
    }
    for (size_t i = 0; real && i < o->nfiles; i++)
        free(real[i]);
    free(real);
    return rc;
}

/* Returns -1 to go on, or the exit status. */
static int parse_args(int argc, char **argv, options *o)
{
    o->inc = calloc((size_t)argc, sizeof *o->inc);
    o->files = calloc((size_t)argc, sizeof *o->files);
    if (!o->inc || !o->files)
        return 2;
    bool no_more_opts = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (no_more_opts || a[0] != '-' || a[1] == '\0') {
            o->files[o->nfiles++] = a;
        } else if (strcmp(a, "--") == 0) {
            no_more_opts = true;
        } else if (strcmp(a, "--help") == 0) {
            fputs(usage_text, stdout);
            return 0;
        } else if (strcmp(a, "--version") == 0) {
            printf("idlc (ember) %s\n", IDLC_VERSION);
            return 0;
        } else if (strcmp(a, "-M") == 0) {
            o->deps_only = true;
        } else if (strcmp(a, "-MF") == 0 || strcmp(a, "--check-compat") == 0
                   || strcmp(a, "-I") == 0 || strcmp(a, "-o") == 0) {
            if (i + 1 >= argc)
                return usage_error("option '%s' needs an argument", a);
            const char *v = argv[++i];
            if (a[1] == 'I')
                o->inc[o->ninc++] = v;
            else if (a[1] == 'o')
                o->outdir = v;
            else if (a[1] == 'M')
                o->depfile = v;
            else
                o->compat_old = v;
        } else if (strncmp(a, "-I", 2) == 0) {
            o->inc[o->ninc++] = a + 2;
        } else if (strncmp(a, "-o", 2) == 0) {
            o->outdir = a + 2;
        } else if (strncmp(a, "--check-compat=", 15) == 0) {
            o->compat_old = a + 15;
        } else {
            return usage_error("unknown option '%s'", a);
        }
    }
    if (o->nfiles == 0)
        return usage_error("%s", "no input files");
    if (o->compat_old && o->nfiles != 1)
        return usage_error("%s", "--check-compat compares exactly one new file with the old one");
    if (o->compat_old && (o->deps_only || o->depfile))
        return usage_error("%s", "--check-compat cannot be combined with -M or -MF");
    if (!o->compat_old)
        return check_output_names(o);
    return -1;
}

/* "path/to/game.idl" -> "game" (arena-owned). */
static char *base_name(idl_arena *a, const char *path)
{
    size_t n;
    const char *s = output_stem(path, &n);
    return idl_strndup(a, s, n);
}

/* NAME.h is named in an #include "NAME.h": a '"' or a newline would end the
 * name, a \\, ', // or slash-star in it is undefined (C11 6.4.7) and ?? may be a
 * trigraph. Returns the first byte that cannot be written there, or NULL. */
static const char *include_unsafe(const char *path)
{
    size_t n;
    const char *s = output_stem(path, &n);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\' || c == '\'' ||
            (c == '?' && i + 1 < n && s[i + 1] == '?'))
            return s + i;
    }
    return NULL;
}

/* Every module generated, and every module it includes, must have a header
 * name an #include can spell. Reports each that cannot; true if all can. */
static bool check_include_names(idl_diag *diag, idl_module *const *mods, size_t n)
{
    static const char why[] = "rename the file (no \", \\, ', ?? or control characters)";
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        const idl_module *m = mods[i];
        if (m->path && include_unsafe(m->path)) {
            diag_fatal(diag, "'%s': the generated header's name cannot be written in an #include; %s",
                       m->path, why);
            ok = false;
        }
        for (const idl_import *im = m->imports; im; im = im->next) {
            const char *p = im->module && im->module->path ? im->module->path : im->path;
            if (p && include_unsafe(p)) {
                diag_error(diag, im->loc, "the header of '%s' cannot be named in an #include; %s",
                           p, why);
                ok = false;
            }
        }
    }
    return ok;
}

static char *out_path(idl_arena *a, const char *outdir, const char *base, const char *ext)
{
    if (outdir) {
        /* "out/" and "out" name the same folder; keep paths tidy for -M. */
        size_t len = strlen(outdir);
        while (len > 1 && outdir[len - 1] == '/')
            len--;
        outdir = idl_strndup(a, outdir, len);
    }
    size_t n = (outdir ? strlen(outdir) + 1 : 0) + strlen(base) + strlen(ext) + 1;
    char *p = idl_alloc(a, n);
    snprintf(p, n, "%s%s%s%s", outdir ? outdir : "", outdir ? "/" : "", base, ext);
    return p;
}

/* True when the file at path holds exactly the bytes f holds (read from
 * its start). */
static bool same_contents(const char *path, FILE *f)
{
    FILE *old = fopen(path, "rb");
    if (!old)
        return false;
    static char a[1 << 16], b[1 << 16];
    bool same = fseek(f, 0, SEEK_SET) == 0;
    while (same) {
        size_t na = fread(a, 1, sizeof a, f);
        size_t nb = fread(b, 1, sizeof b, old);
        same = na == nb && memcmp(a, b, na) == 0;
        if (na < sizeof a)
            break;
    }
    same = same && !ferror(f) && !ferror(old) && feof(old);
    fclose(old);
    return same;
}

typedef int (*gen_fn)(const idl_module *m, const char *header, FILE *out);

/* Generates into a temporary file beside path, then renames it over path,
 * unless path already holds exactly these bytes: then it is left alone so
 * that make does not rebuild what depends on an unchanged output. */
static bool generate(idl_diag *diag, const idl_module *m, gen_fn fn, const char *header, const char *path)
{
    size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    if (!tmp) {
        diag_fatal(diag, "out of memory");
        return false;
    }
    snprintf(tmp, n, "%s.tmpXXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        /* Name what the user gave: the output, not our temporary beside it. */
        diag_fatal(diag, "cannot write '%s': %s", path, strerror(errno));
        free(tmp);
        return false;
    }
    /* Generated files run to megabytes: write them in large pieces. */
    FILE *f = fdopen(fd, "w+b");
    if (!f || setvbuf(f, NULL, _IOFBF, 1 << 20) != 0) {
        diag_fatal(diag, "cannot write '%s': %s", tmp, strerror(errno));
        if (f)
            fclose(f);
        else
            close(fd);
        remove(tmp);
        free(tmp);
        return false;
    }
    bool ok = fn(m, header, f) == 0 && fflush(f) == 0;
    if (!ok)
        diag_fatal(diag, "generating '%s' failed", path);
    bool keep_old = ok && same_contents(path, f);
    if (fclose(f) != 0 && ok) {
        diag_fatal(diag, "cannot write '%s': %s", path, strerror(errno));
        ok = false;
    }
    if (ok && !keep_old) {
        /* mkstemp makes the file 0600; outputs should be like any other file. */
        mode_t mask = umask(0);
        umask(mask);
        if (chmod(tmp, 0666 & ~mask) != 0 || rename(tmp, path) != 0) {
            diag_fatal(diag, "cannot write '%s': %s", path, strerror(errno));
            ok = false;
        }
    }
    if (!ok || keep_old)
        remove(tmp);
    free(tmp);
    return ok;
}

typedef struct stem_ref {
    const idl_module *m;
    const char *s;
    size_t n, order;
} stem_ref;

static int cmp_stem(const void *a, const void *b)
{
    const stem_ref *x = a, *y = b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->s, y->s, n);
    if (c == 0)
        c = (x->n > y->n) - (x->n < y->n);
    return c ? c : (x->order > y->order) - (x->order < y->order);
}

/* Every header is included by its name alone, "NAME.h": two files of one
 * run (inputs or imports, however deep) whose headers have one name, such
 * as x/c.idl and y/c.idl, cannot both be included (the generated code
 * would #include "c.h" twice and get one of them). Sorted, so that
 * thousands of files cost n log n. */
static bool check_header_names(idl_diag *diag, const idl_module *modules)
{
    size_t n = 0;
    for (const idl_module *m = modules; m; m = m->next)
        n += m->path != NULL;
    stem_ref *v = calloc(n ? n : 1, sizeof *v);
    if (!v) {
        diag_fatal(diag, "out of memory");
        return false;
    }
    n = 0;
    for (const idl_module *m = modules; m; m = m->next)
        if (m->path) {
            v[n].m = m;
            v[n].s = output_stem(m->path, &v[n].n);
            v[n].order = n;
            n++;
        }
    qsort(v, n, sizeof *v, cmp_stem);
    bool ok = true;
    for (size_t i = 1, first = 0; i < n; i++) {
        if (v[i].n != v[first].n || memcmp(v[i].s, v[first].s, v[i].n) != 0) {
            first = i;
            continue;
        }
        diag_error(diag, v[i].m->loc, "the header of '%s' is '%.*s.h', as is that of '%s': "
                   "an #include names a header alone, so the code of one run cannot include both; "
                   "rename one file", v[i].m->path, (int)v[i].n, v[i].s, v[first].m->path);
        diag_note(diag, v[first].m->loc, "module '%s' of '%s' is here", v[first].m->name,
                  v[first].m->path);
        ok = false;
    }
    free(v);
    return ok;
}

static int gen_h(const idl_module *m, const char *header, FILE *out)
{
    (void)header;
    return gen_header(m, out);
}

static int gen_c(const idl_module *m, const char *header, FILE *out)
{
    return gen_source(m, header, out);
}

int main(int argc, char **argv)
{
    /* Diagnostics in blocks, not a write per byte: a file of millions of
     * errors is reported in seconds, not minutes. exit() flushes it. */
    static char errbuf[1 << 16];
    setvbuf(stderr, errbuf, _IOFBF, sizeof errbuf);
    options o = { 0 };
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0) {
        free(o.inc);
        free(o.files);
        return rc;
    }

    idl_arena *arena = idl_arena_new();
    idl_diag *diag = diag_new(stderr);
    idl_loader *loader = idl_loader_new(arena, diag);
    idl_loader *old_loader = NULL;
    for (size_t i = 0; i < o.ninc; i++)
        idl_loader_add_include(loader, o.inc[i]);

    idl_module **mods = calloc(o.nfiles, sizeof *mods);
    for (size_t i = 0; mods && i < o.nfiles; i++)
        mods[i] = idl_load_file(loader, o.files[i]);
    idl_module *old_mod = NULL;
    if (o.compat_old) {
        /* The old version gets its own loader: both define the same module. */
        old_loader = idl_loader_new(arena, diag);
        for (size_t i = 0; i < o.ninc; i++)
            idl_loader_add_include(old_loader, o.inc[i]);
        old_mod = idl_load_file(old_loader, o.compat_old);
        idl_loader_cycles(old_loader);
        sema_check(idl_loader_modules(old_loader), diag);
    }
    idl_loader_check(loader, diag);

    if (diag_errors(diag) == 0 && mods) {
        if (o.compat_old) {
            compat_check(old_mod, mods[0], diag);
        } else {
            FILE *dep = NULL;
            /* A newline in a file name, or a backslash at its end, cannot
             * be written in a make rule: refused before anything is
             * written. */
            for (size_t i = 0; (o.depfile || o.deps_only) && i < o.nfiles; i++) {
                char *base = base_name(arena, o.files[i]);
                const char *bad = depfile_unnamable(loader, mods[i], out_path(arena, o.outdir, base, ".h"),
                                                    out_path(arena, o.outdir, base, ".c"));
                if (bad) {
                    diag_fatal(diag, "cannot name '%s' in a make rule (-M, -MF): make cannot read a file name with a newline or ending in a backslash", bad);
                    break;
                }
            }
            if (diag_errors(diag)) {
                /* nothing is written */
            } else if (o.depfile) {
                dep = fopen(o.depfile, "w");
                if (!dep)
                    diag_fatal(diag, "cannot write '%s': %s", o.depfile, strerror(errno));
            } else if (o.deps_only) {
                dep = stdout;
            }
            if (!(o.deps_only && !o.depfile))
                if (check_include_names(diag, mods, o.nfiles))
                    check_header_names(diag, idl_loader_modules(loader));
            for (size_t i = 0; i < o.nfiles && diag_errors(diag) == 0; i++) {
                char *base = base_name(arena, o.files[i]);
                char *h = out_path(arena, o.outdir, base, ".h");
                char *c = out_path(arena, o.outdir, base, ".c");
                if (dep)
                    depfile_write(dep, loader, mods[i], h, c);
                if (o.deps_only && !o.depfile)
                    continue;
                char *hname = out_path(arena, NULL, base, ".h");
                if (generate(diag, mods[i], gen_h, hname, h))
                    generate(diag, mods[i], gen_c, hname, c);
            }
            if (dep && dep != stdout && fclose(dep) != 0)
                diag_fatal(diag, "cannot write '%s'", o.depfile);
        }
    }

    rc = diag_errors(diag) ? 1 : 0;
    free(mods);
    idl_loader_free(loader);
    idl_loader_free(old_loader);
    diag_free(diag);
    idl_arena_free(arena);
    free(o.inc);
    free(o.files);
    return rc;
}
