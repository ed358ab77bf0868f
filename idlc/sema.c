/*
 * sema.c — semantic checks, name resolution, fingerprints and error ids.
 *
 * The pass runs in phases over all loaded modules so that one run reports
 * every error:
 *   1. declaration tables: duplicate names, import sanity;
 *   2. resolution of every name (types, ref<>, raises) with kind checks;
 *   3. per-declaration rules: tags, ids, enum values, constants, map keys;
 *   4. by-value struct cycles across all modules;
 *   5. fingerprints and error ids.
 * A declaration the parser had to recover inside is only registered by
 * name: its half-parsed body would produce nonsense diagnostics.
 */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sema.h"

/* Deeper type nesting than this is certainly a mistake (or a fuzzer); the
 * limit also bounds every recursion over types, here and in generators. */
enum { MAX_TYPE_DEPTH = 32 };

enum {
    MAX_TAG = 536870911,        /* 2^29 - 1: tag and wire type share a varint */
    MAX_METHOD_ID = 2147483647, /* fits a signed 32-bit id */
};

/* ---- hashing ---- */

uint64_t idl_fnv1a64(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

uint32_t idl_fnv1a32(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint32_t h = UINT32_C(0x811c9dc5);
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= UINT32_C(0x01000193);
    }
    return h;
}

/* ---- growable strings ---- */

static void buf_reserve(idl_buf *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + more + 1)
        cap *= 2;
    b->p = idl_xrealloc(b->p, cap);
    b->cap = cap;
}

void idl_buf_puts(idl_buf *b, const char *s)
{
    size_t n = strlen(s);
    buf_reserve(b, n);
    memcpy(b->p + b->len, s, n + 1);
    b->len += n;
}

void idl_buf_printf(idl_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void idl_buf_free(idl_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ---- canonical spellings ---- */

static const char *const scalar_names[] = {
    [IDL_BOOL] = "bool", [IDL_I8] = "i8", [IDL_I16] = "i16", [IDL_I32] = "i32",
    [IDL_I64] = "i64", [IDL_U8] = "u8", [IDL_U16] = "u16", [IDL_U32] = "u32",
    [IDL_U64] = "u64", [IDL_F32] = "f32", [IDL_F64] = "f64",
    [IDL_STRING] = "string", [IDL_BYTES] = "bytes",
};

static void spell_name(idl_buf *b, const idl_decl *d, const char *qual, const char *name)
{
    if (d && d->module && d->module->name)
        idl_buf_printf(b, "%s.%s", d->module->name, d->name);
    else if (qual)
        idl_buf_printf(b, "%s.%s", qual, name);
    else
        idl_buf_puts(b, name ? name : "?");
}

/* self: names declared in this module are spelled unqualified (compat
 * compares two versions of a module whose name may have changed). */
static void spell(idl_buf *b, const idl_type *t, int depth, const idl_module *self)
{
    if (depth > MAX_TYPE_DEPTH) {
        idl_buf_puts(b, "...");
        return;
    }
    switch (t->kind) {
    case IDL_LIST:
        idl_buf_puts(b, "list<");
        spell(b, t->elem, depth + 1, self);
        idl_buf_puts(b, ">");
        break;
    case IDL_MAP:
        idl_buf_puts(b, "map<");
        spell(b, t->key, depth + 1, self);
        idl_buf_puts(b, ",");
        spell(b, t->elem, depth + 1, self);
        idl_buf_puts(b, ">");
        break;
    case IDL_REF:
        idl_buf_puts(b, "ref<");
        if (self && t->decl && t->decl->module == self)
            idl_buf_puts(b, t->decl->name);
        else
            spell_name(b, t->decl, t->qual, t->name);
        idl_buf_puts(b, ">");
        break;
    case IDL_NAMED:
        if (self && t->decl && t->decl->module == self)
            idl_buf_puts(b, t->decl->name);
        else
            spell_name(b, t->decl, t->qual, t->name);
        break;
    default:
        idl_buf_puts(b, scalar_names[t->kind]);
        break;
    }
}

void idl_spell_type(idl_buf *b, const idl_type *t)
{
    spell(b, t, 0, NULL);
}

void idl_spell_type_in(idl_buf *b, const idl_type *t, const idl_module *self)
{
    spell(b, t, 0, self);
}

static int cmp_method_id(const void *a, const void *b)
{
    const idl_method *x = *(const idl_method *const *)a, *y = *(const idl_method *const *)b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int cmp_field_tag(const void *a, const void *b)
{
    const idl_field *x = *(const idl_field *const *)a, *y = *(const idl_field *const *)b;
    return x->tag < y->tag ? -1 : x->tag > y->tag;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * service game.Game
 * 601 move(1:u64,2:game.Dir) -> game.Pos raises(game.NotInRoom)
 * 602 oneway kick(1:u64,2:string)
 * 603 watch(1:ref<game.Observer>) -> void
 * 604 find(1:string,2:optional u32) -> void
 *
 * Methods by id, parameters by tag, raises sorted; parameter names are left
 * out because renaming them is free. An optional parameter's type is
 * preceded by "optional ".
 */
void idl_service_canonical(idl_buf *b, const idl_decl *svc)
{
    idl_buf_printf(b, "service %s.%s\n", svc->module && svc->module->name ? svc->module->name : "?",
                   svc->name);
    size_t n = 0;
    for (const idl_method *m = svc->methods; m; m = m->next)
        n++;
    const idl_method **ms = idl_xcalloc(n, sizeof *ms);
    n = 0;
    for (const idl_method *m = svc->methods; m; m = m->next)
        ms[n++] = m;
    qsort(ms, n, sizeof *ms, cmp_method_id);
    for (size_t i = 0; i < n; i++) {
        const idl_method *m = ms[i];
        idl_buf_printf(b, "%" PRIu64 " %s%s(", m->id, m->oneway ? "oneway " : "", m->name);
        size_t np = 0;
        for (const idl_field *p = m->params; p; p = p->next)
            np++;
        const idl_field **ps = idl_xcalloc(np, sizeof *ps);
        np = 0;
        for (const idl_field *p = m->params; p; p = p->next)
            ps[np++] = p;
        qsort(ps, np, sizeof *ps, cmp_field_tag);
        for (size_t j = 0; j < np; j++) {
            idl_buf_printf(b, "%s%" PRIu64 ":%s", j ? "," : "", ps[j]->tag,
                           ps[j]->optional ? "optional " : "");
            idl_spell_type(b, ps[j]->type);
        }
        free(ps);
        idl_buf_puts(b, ")");
        if (!m->oneway) {
            idl_buf_puts(b, " -> ");
            if (m->ret)
                idl_spell_type(b, m->ret);
            else
                idl_buf_puts(b, "void");
        }
        size_t nr = 0;
        for (const idl_name *r = m->raises; r; r = r->next)
            nr++;
        if (nr) {
            char **rs = idl_xcalloc(nr, sizeof *rs);
            idl_buf one = { 0 };
            nr = 0;
            for (const idl_name *r = m->raises; r; r = r->next) {
                one.len = 0;
                spell_name(&one, r->decl, r->qual, r->name);
                rs[nr++] = strdup(one.p);
            }
            idl_buf_free(&one);
            qsort(rs, nr, sizeof *rs, cmp_str);
            idl_buf_puts(b, " raises(");
            for (size_t j = 0; j < nr; j++) {
                idl_buf_printf(b, "%s%s", j ? "," : "", rs[j]);
                free(rs[j]);
            }
            idl_buf_puts(b, ")");
            free(rs);
        }
        idl_buf_puts(b, "\n");
    }
    free(ms);
}

/* ---- a small string-keyed hash table ---- */

typedef struct table {
    const char **keys;
    void **vals;
    size_t cap, n;
} table;

static size_t hash_str(const char *s)
{
    return (size_t)idl_fnv1a64(s, strlen(s));
}

static void *table_get(const table *t, const char *key)
{
    if (!t->cap)
        return NULL;
    for (size_t i = hash_str(key) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        if (!t->keys[i])
            return NULL;
        if (strcmp(t->keys[i], key) == 0)
            return t->vals[i];
    }
}

static void table_put(table *t, const char *key, void *val);

static void table_grow(table *t)
{
    table old = *t;
    t->cap = old.cap ? old.cap * 2 : 16;
    t->n = 0;
    t->keys = idl_xcalloc(t->cap, sizeof *t->keys);
    t->vals = idl_xcalloc(t->cap, sizeof *t->vals);
    for (size_t i = 0; i < old.cap; i++)
        if (old.keys[i])
            table_put(t, old.keys[i], old.vals[i]);
    free(old.keys);
    free(old.vals);
}

/* Does not replace: callers look up first. */
static void table_put(table *t, const char *key, void *val)
{
    if ((t->n + 1) * 2 > t->cap)
        table_grow(t);
    size_t i = hash_str(key) & (t->cap - 1);
    while (t->keys[i])
        i = (i + 1) & (t->cap - 1);
    t->keys[i] = key;
    t->vals[i] = val;
    t->n++;
}

static void table_free(table *t)
{
    free(t->keys);
    free(t->vals);
    memset(t, 0, sizeof *t);
}

/* Tables keyed by number (tags, ids, enum values) use the decimal text. */
static void num_key(char *buf, size_t size, bool neg, uint64_t v)
{
    snprintf(buf, size, "%s%" PRIu64, neg ? "-" : "", v);
}

/* ---- the pass ---- */

typedef struct mod_info {
    idl_module *mod;
    table decls;            /* name -> idl_decl */
    table imports;          /* module name -> idl_import */
} mod_info;

typedef struct sema {
    int suggestions;        /* "did you mean" searches done so far */
    idl_diag *diag;
    mod_info *mods;
    size_t nmods;
    const idl_type *too_deep;   /* the last type reported as nested too deeply */
    mod_info **byaddr;      /* mods sorted by module address, for info_of */
} sema;

static int cmp_info(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)(*(mod_info *const *)a)->mod;
    uintptr_t y = (uintptr_t)(*(mod_info *const *)b)->mod;
    return (x > y) - (x < y);
}

/* A binary search: thousands of modules each look up their imports. */
static mod_info *info_of(sema *S, const idl_module *m)
{
    size_t lo = 0, hi = S->nmods;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uintptr_t at = (uintptr_t)S->byaddr[mid]->mod;
        if (at == (uintptr_t)m)
            return S->byaddr[mid];
        if (at < (uintptr_t)m)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static const char *kind_name(idl_decl_kind k)
{
    switch (k) {
    case IDL_CONST: return "constant";
    case IDL_ENUM: return "enum";
    case IDL_STRUCT: return "struct";
    case IDL_ERROR: return "error";
    case IDL_SERVICE: return "service";
    }
    return "declaration";
}

/* Levenshtein distance, capped: only short names are worth suggesting. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return SIZE_MAX;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* What a name may refer to where it is used. */
enum { WANT_VALUE = 1, WANT_SERVICE = 2, WANT_ERROR = 4 };

static bool kind_fits(idl_decl_kind k, int want)
{
    if (want & WANT_VALUE)
        return k == IDL_ENUM || k == IDL_STRUCT || k == IDL_ERROR;
    if (want & WANT_SERVICE)
        return k == IDL_SERVICE;
    return k == IDL_ERROR;
}

/* The closest declared name of a fitting kind, spelled as the user would
 * have to write it, or NULL. */
static const char *suggest(sema *S, const idl_module *m, const char *name, int want, char *buf, size_t size)
{
    /* Each search scans every declaration: past a few dozen unknown names
     * (a fuzzed or badly broken file) suggestions are not worth the time. */
    if (++S->suggestions > 50)
        return NULL;
    size_t best = SIZE_MAX;
    size_t limit = strlen(name) / 3 + 1;
    bool found = false;
    for (const idl_decl *d = m->decls; d; d = d->next) {
        if (!d->name || !kind_fits(d->kind, want))
            continue;
        size_t dist = edit_distance(name, d->name);
        if (dist <= limit && dist < best && dist > 0) {
            best = dist;
            snprintf(buf, size, "%s", d->name);
            found = true;
        }
    }
    for (const idl_import *im = m->imports; im; im = im->next) {
        if (!im->module || !im->module->name)
            continue;
        for (const idl_decl *d = im->module->decls; d; d = d->next) {
            if (!d->name || !kind_fits(d->kind, want))
                continue;
            size_t dist = edit_distance(name, d->name);
            if (dist <= limit && dist < best) {
                best = dist;
                snprintf(buf, size, "%s.%s", im->module->name, d->name);
                found = true;
            }
        }
    }
    return found ? buf : NULL;
}

static const char *want_noun(int want)
{
    return want & WANT_SERVICE ? "service" : want & WANT_ERROR ? "error" : "type";
}

static bool import_failed(const idl_module *m)
{
    for (const idl_import *im = m->imports; im; im = im->next)
        if (!im->module)
            return true;
    return false;
}

/* Resolves qual.name as written in module m; reports and returns NULL when
 * it names nothing. */
static idl_decl *lookup(sema *S, const idl_module *m, const char *qual, const char *name,
                        idl_loc loc, int want)
{
    mod_info *mi = info_of(S, m);
    if (qual && !(m->name && strcmp(qual, m->name) == 0)) {
        idl_import *im = mi ? table_get(&mi->imports, qual) : NULL;
        if (!im) {
            /* An import that did not load (its error is out) may be the
             * module named: saying it is not imported would be wrong. */
            if (!import_failed(m))
                diag_error(S->diag, loc, "module '%s' is not imported", qual);
            return NULL;
        }
        mod_info *ti = info_of(S, im->module);
        idl_decl *d = ti ? table_get(&ti->decls, name) : NULL;
        if (!d)
            diag_error(S->diag, loc, "module '%s' has no declaration named '%s'", qual, name);
        return d;
    }
    idl_decl *d = mi ? table_get(&mi->decls, name) : NULL;
    if (d)
        return d;
    /* Declared in an imported module but used without its qualifier? */
    for (size_t i = 0; mi && i < mi->imports.cap; i++) {
        idl_import *im = mi->imports.vals[i];
        if (!mi->imports.keys[i])
            continue;
        mod_info *ti = info_of(S, im->module);
        idl_decl *other = ti ? table_get(&ti->decls, name) : NULL;
        if (other) {
            diag_error(S->diag, loc, "'%s' is declared in module '%s'; write '%s.%s'", name,
                       im->module->name, im->module->name, name);
            return NULL;
        }
    }
    char buf[160];
    const char *hint = suggest(S, m, name, want, buf, sizeof buf);
    if (hint)
        diag_error(S->diag, loc, "unknown %s '%s'; did you mean '%s'?", want_noun(want), name, hint);
    else
        diag_error(S->diag, loc, "unknown %s '%s'", want_noun(want), name);
    return NULL;
}

static bool is_integer(idl_type_kind k)
{
    return k >= IDL_I8 && k <= IDL_U64;
}

/* Resolves every name inside t and checks what each may be. Recursion is
 * bounded by MAX_TYPE_DEPTH; returns false when the type is unusable. */
static bool resolve_nested(sema *S, const idl_module *m, idl_type *t, int depth, const idl_type *root);

static bool resolve_type(sema *S, const idl_module *m, idl_type *t, int depth)
{
    return resolve_nested(S, m, t, depth, t);
}

static bool resolve_nested(sema *S, const idl_module *m, idl_type *t, int depth, const idl_type *root)
{
    if (depth > MAX_TYPE_DEPTH) {
        /* Once per type, however many of its branches (a map's key and
         * value) go past the limit. */
        if (S->too_deep != root) {
            idl_loc at = root->loc;
            at.len = 1;
            diag_error(S->diag, at, "type nested too deeply (the limit is %d levels)", MAX_TYPE_DEPTH);
            S->too_deep = root;
        }
        return false;
    }
    switch (t->kind) {
    case IDL_LIST:
        return resolve_nested(S, m, t->elem, depth + 1, root);
    case IDL_MAP: {
        bool ok = resolve_nested(S, m, t->key, depth + 1, root);
        if (ok) {
            const idl_type *k = t->key;
            bool good = is_integer(k->kind) || k->kind == IDL_STRING
                || (k->kind == IDL_NAMED && k->decl && k->decl->kind == IDL_ENUM);
            if (!good) {
                idl_buf b = { 0 };
                idl_spell_type(&b, k);
                diag_error(S->diag, k->loc,
                           "invalid map key type '%s': keys must be integers, strings or enums", b.p);
                idl_buf_free(&b);
                ok = false;
            }
        }
        return resolve_nested(S, m, t->elem, depth + 1, root) && ok;
    }
    case IDL_REF: {
        idl_decl *d = lookup(S, m, t->qual, t->name, t->loc, WANT_SERVICE);
        if (!d)
            return false;
        if (d->kind != IDL_SERVICE) {
            diag_error(S->diag, t->loc, "ref<> needs a service, but '%s' is %s %s", t->name,
                       d->kind == IDL_ENUM || d->kind == IDL_ERROR ? "an" : "a", kind_name(d->kind));
            diag_note(S->diag, d->loc, "'%s' is declared here", d->name);
            return false;
        }
        t->decl = d;
        return true;
    }
    case IDL_NAMED: {
        idl_decl *d = lookup(S, m, t->qual, t->name, t->loc, WANT_VALUE);
        if (!d)
            return false;
        if (d->kind == IDL_SERVICE) {
            diag_error(S->diag, t->loc,
                       "'%s' is a service, not a value type; pass a reference with ref<%s>",
                       t->name, t->name);
            diag_note(S->diag, d->loc, "'%s' is declared here", d->name);
            return false;
        }
        if (d->kind == IDL_CONST) {
            diag_error(S->diag, t->loc, "'%s' is a constant, not a type", t->name);
            diag_note(S->diag, d->loc, "'%s' is declared here", d->name);
            return false;
        }
        t->decl = d;
        return true;
    }
    default:
        return true;
    }
}

/* ---- phase 1: declaration tables and imports ---- */

static bool loc_before(idl_loc a, idl_loc b)
{
    return a.line < b.line || (a.line == b.line && a.col < b.col);
}

static void declare(sema *S, mod_info *mi)
{
    idl_module *m = mi->mod;
    for (idl_decl *d = m->decls; d; d = d->next) {
        d->module = m;
        if (!d->name)
            continue;
        idl_decl *prev = table_get(&mi->decls, d->name);
        if (prev) {
            diag_error(S->diag, d->loc, "redefinition of '%s'", d->name);
            diag_note(S->diag, prev->loc, "previous definition is here");
            continue;
        }
        table_put(&mi->decls, d->name, d);
    }

    /* Imports come first, each module is imported under one name, and a
     * module cannot import a module of its own name (qualifiers would be
     * ambiguous). */
    table *seen = &mi->imports;
    for (idl_import *im = m->imports; im; im = im->next) {
        idl_module *t = im->module;
        /* One that failed to load has its error, with this as a note. */
        if (t && m->decls && loc_before(m->decls->loc, im->loc))
            diag_error(S->diag, im->loc, "imports must come before all declarations");
        if (!t || !t->name)
            continue;
        if (t == m)
            continue;   /* a file importing itself: reported as a cycle */
        if (m->name && strcmp(t->name, m->name) == 0) {
            diag_error(S->diag, im->loc, "imported module has the same name '%s' as this module",
                       t->name);
            diag_note(S->diag, t->loc, "module '%s' of '%s' is declared here", t->name, t->path);
            m->name_clash_reported = t->name_clash_reported = true;
            continue;
        }
        /* By module name: a file imported twice is one module, so it is
         * found the same way. A table keeps a huge import list linear. */
        idl_import *p = table_get(seen, t->name);
        if (!p) {
            table_put(seen, t->name, im);
        } else if (p->module == t) {
            diag_error(S->diag, im->loc, "'%s' is imported twice", im->path);
            diag_note(S->diag, p->loc, "previous import is here");
        } else {
            diag_error(S->diag, im->loc, "two imported files declare module '%s'", t->name);
            diag_note(S->diag, p->loc, "previous import of module '%s' is here", t->name);
            t->name_clash_reported = p->module->name_clash_reported = true;
        }
    }
}

/* ---- phase 2 and 3: names and per-declaration rules ---- */

static void check_tag(sema *S, uint64_t tag, idl_loc loc, const char *what)
{
    if (tag == UINT64_MAX)
        diag_error(S->diag, loc, "%s tag is out of range (1..%d)", what, MAX_TAG);
    else if (tag < 1 || tag > MAX_TAG)
        diag_error(S->diag, loc, "%s tag %" PRIu64 " is out of range (1..%d)", what, tag, MAX_TAG);
}

/* Fields of a struct/error or parameters of a method: unique tags, unique
 * names, tags in range, types resolved. */
static void check_members(sema *S, const idl_module *m, idl_field *list, const char *what)
{
    table tags = { 0 }, names = { 0 };
    char key[32];
    for (idl_field *f = list; f; f = f->next) {
        check_tag(S, f->tag, f->tag_loc, what);
        num_key(key, sizeof key, false, f->tag);
        idl_field *prev = table_get(&tags, key);
        if (prev) {
            diag_error(S->diag, f->tag_loc, "duplicate %s tag %" PRIu64, what, f->tag);
            diag_note(S->diag, prev->tag_loc, "previous use of tag %" PRIu64 " is here", f->tag);
        } else {
            /* Keys must outlive the table: the tag's own text would not. */
            table_put(&tags, strcpy(idl_xcalloc(1, strlen(key) + 1), key), f);
        }
        prev = table_get(&names, f->name);
        if (prev) {
            diag_error(S->diag, f->loc, "duplicate %s name '%s'", what, f->name);
            diag_note(S->diag, prev->loc, "previous definition is here");
        } else {
            table_put(&names, f->name, f);
        }
        resolve_type(S, m, f->type, 0);
    }
    for (size_t i = 0; i < tags.cap; i++)
        free((void *)tags.keys[i]);
    table_free(&tags);
    table_free(&names);
}

static const char *lit_kind_name(idl_lit_kind k)
{
    switch (k) {
    case IDL_LIT_INT: return "an integer";
    case IDL_LIT_FLOAT: return "a floating-point number";
    case IDL_LIT_STRING: return "a string";
    case IDL_LIT_BOOL: return "a boolean";
    }
    return "a value";
}


/* Strict UTF-8 (what the runtime's string encoder and decoder accept): no
 * overlong forms, no surrogates, nothing above U+10FFFF. */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        if (!len || len > n - i)
            return false;
        unsigned cp = len == 1 ? c : c & (0x7fu >> len);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3fu);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

static void check_const(sema *S, const idl_module *m, idl_decl *d)
{
    idl_type *t = d->const_type;
    const idl_literal *v = &d->const_value;
    if (!resolve_type(S, m, t, 0))
        return;
    if (t->kind >= IDL_LIST || (t->kind == IDL_NAMED)) {
        idl_buf b = { 0 };
        idl_spell_type(&b, t);
        diag_error(S->diag, t->loc,
                   "constant '%s' has type '%s'; constants must be bool, numbers, string or bytes",
                   d->name, b.p);
        idl_buf_free(&b);
        return;
    }
    const char *tn = scalar_names[t->kind];
    bool fits = true;
    switch (t->kind) {
    case IDL_BOOL:
        if (v->kind != IDL_LIT_BOOL)
            goto mismatch;
        return;
    case IDL_STRING:
    case IDL_BYTES:
        if (v->kind != IDL_LIT_STRING)
            goto mismatch;
        if (t->kind == IDL_STRING && memchr(v->s, '\0', v->slen))
            diag_error(S->diag, v->loc, "string constant '%s' contains a NUL byte; use bytes", d->name);
        else if (t->kind == IDL_STRING && !utf8_valid((const unsigned char *)v->s, v->slen))
            diag_error(S->diag, v->loc, "string constant '%s' is not valid UTF-8; use bytes", d->name);
        return;
    case IDL_F32:
    case IDL_F64:
        if (v->kind == IDL_LIT_INT)
            return;
        if (v->kind != IDL_LIT_FLOAT)
            goto mismatch;
        if (isinf(v->f) || (t->kind == IDL_F32 && fabs(v->f) > FLT_MAX))
            diag_error(S->diag, v->loc, "constant value is out of range for %s", tn);
        return;
    default:
        break;
    }
    /* Integers. */
    if (v->kind != IDL_LIT_INT)
        goto mismatch;
    if (v->overflow) {
        diag_error(S->diag, v->loc, "integer constant is too large");
        return;
    }
    static const int bits[] = { [IDL_I8] = 8, [IDL_I16] = 16, [IDL_I32] = 32, [IDL_I64] = 64,
                                [IDL_U8] = 8, [IDL_U16] = 16, [IDL_U32] = 32, [IDL_U64] = 64 };
    int nb = bits[t->kind];
    bool is_signed = t->kind <= IDL_I64;
    if (is_signed) {
        uint64_t maxpos = (UINT64_C(1) << (nb - 1)) - 1;
        fits = v->negative ? v->u <= maxpos + 1 : v->u <= maxpos;
    } else {
        uint64_t max = nb == 64 ? UINT64_MAX : (UINT64_C(1) << nb) - 1;
        fits = (!v->negative || v->u == 0) && v->u <= max;
    }
    if (!fits)
        diag_error(S->diag, v->loc, "constant value %s%" PRIu64 " does not fit in %s",
                   v->negative ? "-" : "", v->u, tn);
    return;
mismatch:
    diag_error(S->diag, v->loc, "cannot initialize constant '%s' of type %s with %s", d->name, tn,
               lit_kind_name(v->kind));
}

static void check_enum(sema *S, idl_decl *d)
{
    table names = { 0 }, values = { 0 };
    char key[32];
    for (idl_enumerator *e = d->enumerators; e; e = e->next) {
        idl_enumerator *prev = table_get(&names, e->name);
        if (prev) {
            diag_error(S->diag, e->loc, "duplicate enumerator '%s' in enum '%s'", e->name, d->name);
            diag_note(S->diag, prev->loc, "previous definition is here");
        } else {
            table_put(&names, e->name, e);
        }
        const idl_literal *v = &e->value;
        bool fits = !v->overflow && (v->negative ? v->u <= UINT64_C(2147483648) : v->u <= 2147483647);
        if (!fits) {
            if (v->overflow)
                diag_error(S->diag, v->loc, "enum value is too large for i32");
            else
                diag_error(S->diag, v->loc, "enum value %s%" PRIu64 " does not fit in i32",
                           v->negative ? "-" : "", v->u);
            continue;
        }
        num_key(key, sizeof key, v->negative && v->u, v->u);
        prev = table_get(&values, key);
        if (prev) {
            diag_error(S->diag, v->loc, "duplicate value %s in enum '%s': '%s' and '%s'", key, d->name,
                       prev->name, e->name);
            diag_note(S->diag, prev->value.loc, "previous use of %s is here", key);
        } else {
            table_put(&values, strcpy(idl_xcalloc(1, strlen(key) + 1), key), e);
        }
    }
    for (size_t i = 0; i < values.cap; i++)
        free((void *)values.keys[i]);
    table_free(&values);
    table_free(&names);
}

static void check_service(sema *S, const idl_module *m, idl_decl *d)
{
    table names = { 0 }, idtab = { 0 }, *ids = &idtab;
    char key[32];
    for (idl_method *me = d->methods; me; me = me->next) {
        idl_method *prev = table_get(&names, me->name);
        if (prev) {
            diag_error(S->diag, me->loc, "duplicate method '%s' in service '%s'", me->name, d->name);
            diag_note(S->diag, prev->loc, "previous definition is here");
        } else {
            table_put(&names, me->name, me);
        }
        if (me->id == UINT64_MAX) {
            diag_error(S->diag, me->id_loc, "method id is out of range (1..%d)", MAX_METHOD_ID);
        } else if (me->id < 1 || me->id > MAX_METHOD_ID) {
            diag_error(S->diag, me->id_loc, "method id %" PRIu64 " is out of range (1..%d)", me->id,
                       MAX_METHOD_ID);
        } else {
            /* Calls carry the service id and the method id, so method ids
             * are unique within their service only. */
            num_key(key, sizeof key, false, me->id);
            idl_method *other = table_get(ids, key);
            if (other) {
                diag_error(S->diag, me->id_loc, "duplicate method id %" PRIu64, me->id);
                diag_note(S->diag, other->id_loc, "previous use of id %" PRIu64 " (method '%s') is here",
                          me->id, other->name);
            } else {
                table_put(ids, strcpy(idl_xcalloc(1, strlen(key) + 1), key), me);
            }
        }
        if (me->ret)
            resolve_type(S, m, me->ret, 0);
        check_members(S, m, me->params, "parameter");
        if (me->oneway && me->raises)
            diag_error(S->diag, me->raises->loc, "oneway method '%s' cannot raise errors: it has no reply",
                       me->name);
        /* The errors listed so far, by declaration: `Oops` and
         * `mod.Oops` are one error. */
        table listed = { 0 };
        for (idl_name *r = me->raises; r; r = r->next) {
            idl_decl *e = lookup(S, m, r->qual, r->name, r->loc, WANT_ERROR);
            if (e && e->kind != IDL_ERROR) {
                diag_error(S->diag, r->loc, "raises needs an error, but '%s' is %s %s", r->name,
                           e->kind == IDL_ENUM ? "an" : "a", kind_name(e->kind));
                diag_note(S->diag, e->loc, "'%s' is declared here", e->name);
                e = NULL;
            }
            r->decl = e;
            if (!e)
                continue;
            snprintf(key, sizeof key, "%p", (void *)e);
            const idl_name *first = table_get(&listed, key);
            if (first) {
                diag_error(S->diag, r->loc, "error '%s' is listed twice", r->name);
                diag_note(S->diag, first->loc, "previous listing of '%s' is here", first->name);
            } else {
                table_put(&listed, strcpy(idl_xcalloc(1, strlen(key) + 1), key), r);
            }
        }
        for (size_t i = 0; i < listed.cap; i++)
            free((void *)listed.keys[i]);
        table_free(&listed);
    }
    table_free(&names);
    for (size_t i = 0; i < idtab.cap; i++)
        free((void *)idtab.keys[i]);
    table_free(&idtab);
}

static void check_module(sema *S, mod_info *mi)
{
    idl_module *m = mi->mod;
    for (idl_decl *d = m->decls; d; d = d->next) {
        if (d->syntax_error)
            continue;
        switch (d->kind) {
        case IDL_CONST:
            check_const(S, m, d);
            break;
        case IDL_ENUM:
            check_enum(S, d);
            break;
        case IDL_STRUCT:
            check_members(S, m, d->fields, "field");
            break;
        case IDL_ERROR:
            check_members(S, m, d->fields, "field");
            break;
        case IDL_SERVICE:
            check_service(S, m, d);
            break;
        }
    }
    sema_pb_module(S->diag, m);
}

/* ---- phase 4: by-value cycles ---- */

/* The struct/error a field holds by plain value (not optional, list or
 * map), or NULL. */
static idl_decl *by_value(const idl_field *f)
{
    if (f->optional || f->type->kind != IDL_NAMED || !f->type->decl)
        return NULL;
    idl_decl *d = f->type->decl;
    return d->kind == IDL_STRUCT || d->kind == IDL_ERROR ? d : NULL;
}

typedef struct frame {
    idl_decl *decl;
    idl_field *next;        /* next field to follow */
    idl_field *via;         /* the field that led to the next frame */
} frame;

typedef struct color_entry {
    idl_decl *decl;
    int color;              /* 1: on the stack, 2: done */
} color_entry;

/* Iterative depth-first search: a chain of thousands of structs must not
 * overflow the C stack. */
static void check_cycles(sema *S)
{
    table color = { 0 };    /* decl address text -> (void*)1 or 2 */
    size_t total = 0;
    for (size_t i = 0; i < S->nmods; i++)
        for (idl_decl *d = S->mods[i].mod->decls; d; d = d->next)
            total++;
    /* Colors live in a parallel array indexed through a table of decls. */
    idl_decl **all = idl_xcalloc(total, sizeof *all);
    int *col = idl_xcalloc(total, sizeof *col);
    char key[32];
    size_t n = 0;
    for (size_t i = 0; i < S->nmods; i++)
        for (idl_decl *d = S->mods[i].mod->decls; d; d = d->next) {
            snprintf(key, sizeof key, "%p", (void *)d);
            if (!table_get(&color, key)) {
                all[n] = d;
                table_put(&color, strcpy(idl_xcalloc(1, strlen(key) + 1), key), (void *)(n + 1));
                n++;
            }
        }
    frame *stack = idl_xcalloc(n + 1, sizeof *stack);
    for (size_t root = 0; root < n; root++) {
        idl_decl *r = all[root];
        if (col[root] || (r->kind != IDL_STRUCT && r->kind != IDL_ERROR) || r->syntax_error)
            continue;
        size_t sp = 0;
        stack[sp++] = (frame){ r, r->fields, NULL };
        col[root] = 1;
        while (sp) {
            frame *top = &stack[sp - 1];
            idl_field *f = top->next;
            if (!f) {
                snprintf(key, sizeof key, "%p", (void *)top->decl);
                col[(size_t)table_get(&color, key) - 1] = 2;
                sp--;
                continue;
            }
            top->next = f->next;
            idl_decl *to = by_value(f);
            if (!to || to->syntax_error)
                continue;
            snprintf(key, sizeof key, "%p", (void *)to);
            size_t idx = (size_t)table_get(&color, key);
            if (!idx)
                continue;   /* a declaration of a module not being checked */
            idx--;
            top->via = f;
            if (col[idx] == 0) {
                col[idx] = 1;
                stack[sp++] = (frame){ to, to->fields, NULL };
            } else if (col[idx] == 1) {
                /* Back edge: the cycle is the stack from `to` upwards. */
                size_t from = 0;
                while (stack[from].decl != to)
                    from++;
                idl_buf path = { 0 };
                for (size_t i = from; i < sp; i++)
                    idl_buf_printf(&path, "%s.%s -> ", stack[i].decl->name, stack[i].via->name);
                idl_buf_puts(&path, to->name);
                diag_error(S->diag, stack[from].via->loc,
                           "%s '%s' contains itself by value (%s); make a field optional, a list or a map",
                           kind_name(to->kind), to->name, path.p);
                for (size_t i = from + 1; i < sp; i++)
                    diag_note(S->diag, stack[i].via->loc, "'%s' holds '%s' by value here",
                              stack[i].decl->name, by_value(stack[i].via)->name);
                idl_buf_free(&path);
            }
        }
    }
    for (size_t i = 0; i < color.cap; i++)
        free((void *)color.keys[i]);
    table_free(&color);
    free(stack);
    free(all);
    free(col);
}

/* ---- phase 5: fingerprints and error ids ---- */

static void fill_ids(idl_module *m)
{
    for (idl_decl *d = m->decls; d; d = d->next) {
        if (d->kind == IDL_SERVICE) {
            idl_buf b = { 0 };
            idl_service_canonical(&b, d);
            d->fingerprint = idl_fnv1a64(b.p, b.len);
            b.len = 0;
            idl_buf_printf(&b, "%s.%s", m->name ? m->name : "?", d->name);
            d->wire_id = idl_fnv1a32(b.p, b.len);
            idl_buf_free(&b);
        } else if (d->kind == IDL_ERROR) {
            idl_buf b = { 0 };
            idl_buf_printf(&b, "%s.%s", m->name ? m->name : "?", d->name);
            d->wire_id = idl_fnv1a32(b.p, b.len);
            idl_buf_free(&b);
        }
    }
}

static int cmp_wire_id(const void *a, const void *b)
{
    const idl_decl *x = *(const idl_decl *const *)a, *y = *(const idl_decl *const *)b;
    if (x->wire_id != y->wire_id)
        return x->wire_id < y->wire_id ? -1 : 1;
    return x->loc.line < y->loc.line ? -1 : x->loc.line > y->loc.line;
}

/* Error and service ids are 32-bit hashes: a collision, however unlikely,
 * would make two errors (or two services) indistinguishable on the wire, so
 * it is reported. A service id of 0 is reserved (a raw handler's "any
 * service"). */
static void check_wire_ids(sema *S, idl_decl_kind kind, const char *what)
{
    size_t n = 0;
    for (size_t i = 0; i < S->nmods; i++)
        for (idl_decl *d = S->mods[i].mod->decls; d; d = d->next)
            n += d->kind == kind;
    idl_decl **v = idl_xcalloc(n, sizeof *v);
    n = 0;
    for (size_t i = 0; i < S->nmods; i++)
        for (idl_decl *d = S->mods[i].mod->decls; d; d = d->next)
            if (d->kind == kind)
                v[n++] = d;
    qsort(v, n, sizeof *v, cmp_wire_id);
    for (size_t i = 0; i < n; i++) {
        if (kind == IDL_SERVICE && v[i]->wire_id == 0)
            diag_error(S->diag, v[i]->loc, "service id of '%s' is 0, which is reserved; rename it",
                       v[i]->name);
        /* The same name twice in one module is a redefinition, reported already. */
        if (i && v[i]->wire_id == v[i - 1]->wire_id
            && (v[i]->module != v[i - 1]->module || strcmp(v[i]->name, v[i - 1]->name) != 0)) {
            diag_error(S->diag, v[i]->loc, "%s id 0x%08" PRIx32 " of '%s' collides with '%s'; rename one",
                       what, v[i]->wire_id, v[i]->name, v[i - 1]->name);
            diag_note(S->diag, v[i - 1]->loc, "'%s' is declared here", v[i - 1]->name);
        }
    }
    free(v);
}

int sema_check(idl_module *modules, idl_diag *diag)
{
    int before = diag_errors(diag);
    sema S = { 0, diag, NULL, 0, NULL, NULL };
    for (idl_module *m = modules; m; m = m->next)
        S.nmods++;
    S.mods = idl_xcalloc(S.nmods ? S.nmods : 1, sizeof *S.mods);
    S.byaddr = idl_xcalloc(S.nmods ? S.nmods : 1, sizeof *S.byaddr);
    size_t i = 0;
    for (idl_module *m = modules; m; m = m->next) {
        S.byaddr[i] = &S.mods[i];
        S.mods[i++].mod = m;
    }
    qsort(S.byaddr, S.nmods, sizeof *S.byaddr, cmp_info);
    for (i = 0; i < S.nmods; i++)
        declare(&S, &S.mods[i]);
    for (i = 0; i < S.nmods; i++)
        check_module(&S, &S.mods[i]);
    check_cycles(&S);
    for (i = 0; i < S.nmods; i++)
        fill_ids(S.mods[i].mod);
    check_wire_ids(&S, IDL_ERROR, "error");
    check_wire_ids(&S, IDL_SERVICE, "service");
    for (i = 0; i < S.nmods; i++) {
        table_free(&S.mods[i].decls);
        table_free(&S.mods[i].imports);
    }
    free(S.mods);
    free(S.byaddr);
    return diag_errors(diag) - before;
}
