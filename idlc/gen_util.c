/*
 * gen_util.c — naming, C types and the value-type inventory shared by
 * gen_h.c and gen_c.c. Both generators must agree exactly on names and on
 * the order things are emitted in, so every such decision lives here.
 */
#include "gen_util.h"

#include <stdarg.h>
#include <stdlib.h>
#include <ctype.h>
#include <string.h>

#include "sema.h"

/* ---- growable string ---- */

static void gb_reserve(gbuf *b, size_t more)
{
    if (b->n + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + more + 1)
        cap *= 2;
    b->p = idl_xrealloc(b->p, cap);
    b->cap = cap;
}

void gb_putc(gbuf *b, char c)
{
    gb_reserve(b, 1);
    b->p[b->n++] = c;
    b->p[b->n] = '\0';
}

void gb_puts(gbuf *b, const char *s)
{
    size_t n = strlen(s);
    gb_reserve(b, n);
    memcpy(b->p + b->n, s, n + 1);
    b->n += n;
}

void gb_printf(gbuf *b, const char *fmt, ...)
{
    va_list ap;
    if (!fmt) /* closes the NULL path UBSan's checks leave for gcc to warn on */
        return;
    /* Most calls fit the room already there: format once, straight in. */
    gb_reserve(b, 0);
    size_t room = b->cap - b->n;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->n, room, fmt, ap);
    va_end(ap);
    if (n <= 0) {
        b->p[b->n] = '\0';
        return;
    }
    if ((size_t)n >= room) {
        gb_reserve(b, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    b->n += (size_t)n;
}

void gb_clear(gbuf *b)
{
    b->n = 0;
    if (b->p)
        b->p[0] = '\0';
}

void gb_free(gbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

const char *gb_str(const gbuf *b)
{
    return b->p ? b->p : "";
}

/* ---- string set ---- */

static size_t strset_find(const strset *s, const char *key)
{
    size_t i = (size_t)idl_fnv1a64(key, strlen(key)) & (s->cap - 1);
    while (s->slots[i] && strcmp(s->slots[i], key) != 0)
        i = (i + 1) & (s->cap - 1);
    return i;
}

bool strset_has(const strset *s, const char *key)
{
    return s->cap && s->slots[strset_find(s, key)] != NULL;
}

bool strset_add(strset *s, const char *key)
{
    if ((s->n + 1) * 2 > s->cap) {             /* keep the load under 1/2 */
        strset old = *s;
        s->cap = old.cap ? old.cap * 2 : 64;
        s->slots = idl_xrealloc(NULL, s->cap * sizeof *s->slots);
        memset(s->slots, 0, s->cap * sizeof *s->slots);
        for (size_t i = 0; i < old.cap; i++)
            if (old.slots[i])
                s->slots[strset_find(s, old.slots[i])] = old.slots[i];
        free(old.slots);
    }
    size_t i = strset_find(s, key);
    if (s->slots[i])
        return false;
    size_t n = strlen(key);
    s->slots[i] = memcpy(idl_xrealloc(NULL, n + 1), key, n + 1);
    s->n++;
    return true;
}

void strset_free(strset *s)
{
    for (size_t i = 0; i < s->cap; i++)
        free(s->slots[i]);
    free(s->slots);
    s->slots = NULL;
    s->cap = s->n = 0;
}

/* ---- types ---- */

gu_class gu_classify(const idl_type *t)
{
    switch (t->kind) {
    case IDL_LIST:
        return GU_LIST;
    case IDL_MAP:
        return GU_MAP;
    case IDL_NAMED:
        if (t->decl && t->decl->kind == IDL_ENUM)
            return GU_ENUM;
        return GU_STRUCT;
    default:
        return GU_PRIM;
    }
}

const char *gu_decl_mod(const idl_decl *d)
{
    return d && d->module && d->module->name ? d->module->name : "";
}

static const char *const scalar_names[] = {
    [IDL_BOOL] = "bool", [IDL_I8] = "i8", [IDL_I16] = "i16", [IDL_I32] = "i32",
    [IDL_I64] = "i64", [IDL_U8] = "u8", [IDL_U16] = "u16", [IDL_U32] = "u32",
    [IDL_U64] = "u64", [IDL_F32] = "f32", [IDL_F64] = "f64",
    [IDL_STRING] = "string", [IDL_BYTES] = "bytes",
};

/* A named type as written in mangled names: imported ones keep their module. */
static void mangle_name(gbuf *b, const gen_ctx *g, const idl_type *t)
{
    const char *mod = t->decl ? gu_decl_mod(t->decl) : (t->qual ? t->qual : g->mod);
    if (strcmp(mod, g->mod) != 0)
        gb_printf(b, "%s_", mod);
    gb_puts(b, t->decl ? t->decl->name : t->name);
}

void gu_mangle(gbuf *b, const gen_ctx *g, const idl_type *t)
{
    switch (t->kind) {
    case IDL_LIST:
        gb_puts(b, "list_");
        gu_mangle(b, g, t->elem);
        break;
    case IDL_MAP:
        gb_puts(b, "map_");
        gu_mangle(b, g, t->key);
        gb_putc(b, '_');
        gu_mangle(b, g, t->elem);
        break;
    case IDL_REF:
        gb_puts(b, "ref_");
        mangle_name(b, g, t);
        break;
    case IDL_NAMED:
        mangle_name(b, g, t);
        break;
    default:
        gb_puts(b, scalar_names[t->kind]);
        break;
    }
}

void gu_ctype(gbuf *b, const gen_ctx *g, const idl_type *t)
{
    static const char *const c[] = {
        [IDL_BOOL] = "bool", [IDL_I8] = "int8_t", [IDL_I16] = "int16_t",
        [IDL_I32] = "int32_t", [IDL_I64] = "int64_t", [IDL_U8] = "uint8_t",
        [IDL_U16] = "uint16_t", [IDL_U32] = "uint32_t", [IDL_U64] = "uint64_t",
        [IDL_F32] = "float", [IDL_F64] = "double",
        [IDL_STRING] = "const char *", [IDL_BYTES] = "ember_bytes",
    };
    switch (t->kind) {
    case IDL_LIST:
    case IDL_MAP:
        gb_printf(b, "%s_", g->mod);     /* containers belong to the using module */
        gu_mangle(b, g, t);
        break;
    case IDL_REF:
        gb_puts(b, "ember_ref *");
        break;
    case IDL_NAMED:
        gb_printf(b, "%s_%s", t->decl ? gu_decl_mod(t->decl) : g->mod,
                  t->decl ? t->decl->name : t->name);
        break;
    default:
        gb_puts(b, c[t->kind]);
        break;
    }
}

static void join_decl(gbuf *b, const char *type, const char *name)
{
    size_t n = strlen(type);
    gb_puts(b, type);
    if (n && type[n - 1] != '*')
        gb_putc(b, ' ');
    gb_puts(b, name);
}

void gu_cdecl(gbuf *b, const gen_ctx *g, const idl_type *t, const char *name)
{
    gbuf ty = {0};
    gu_ctype(&ty, g, t);
    join_decl(b, gb_str(&ty), name);
    gb_free(&ty);
}

void gu_cdecl_constptr(gbuf *b, const gen_ctx *g, const idl_type *t, const char *name)
{
    gbuf ty = {0};
    if (t->kind == IDL_STRING || t->kind == IDL_REF) {
        gu_ctype(&ty, g, t);          /* "const char *" -> "const char *const *" */
        gb_puts(&ty, "const *");
    } else {
        gb_puts(&ty, "const ");
        gu_ctype(&ty, g, t);
        gb_puts(&ty, " *");
    }
    join_decl(b, gb_str(&ty), name);
    gb_free(&ty);
}

bool gu_by_pointer(const idl_type *t)
{
    gu_class c = gu_classify(t);
    return c == GU_STRUCT || c == GU_LIST || c == GU_MAP;
}

bool gu_opt_as_is(const idl_type *t)
{
    return t->kind == IDL_STRING || t->kind == IDL_REF;
}

const char *gu_prim_sfx(const idl_type *t)
{
    if (t->kind == IDL_REF)
        return "ref";
    return scalar_names[t->kind];
}

const char *gu_wire(const idl_type *t)
{
    switch (t->kind) {
    case IDL_F32:
        return "EMBER_WT_I32";
    case IDL_F64:
        return "EMBER_WT_I64";
    case IDL_STRING:
    case IDL_BYTES:
    case IDL_LIST:
    case IDL_MAP:
        return "EMBER_WT_LEN";
    case IDL_NAMED:
        return gu_classify(t) == GU_ENUM ? "EMBER_WT_VARINT" : "EMBER_WT_LEN";
    default:
        return "EMBER_WT_VARINT";
    }
}

unsigned gu_min_bytes(const idl_type *t)
{
    return t->kind == IDL_F32 ? 4 : t->kind == IDL_F64 ? 8 : 1;
}

bool gu_needs_init(const idl_type *t)
{
    return t->kind == IDL_STRING || gu_classify(t) == GU_STRUCT;
}

/* The module gen_ctx_init was last given: gu_ident renames names that are
 * generated names of it or of a direct import ("game_MAX", "game_Pos_init",
 * "game_list_Pos"), not every name that merely starts with "game_"
 * ("player_id" in module player keeps its name). */
static const idl_module *gu_cur_module;

/* NAME is MOD's "MOD_<decl>", "MOD_<decl>_...", "MOD_list_..." or
 * "MOD_map_..." (gen_h.c's helper types): the shapes idlc generates. */
static bool generated_by(const char *name, const idl_module *mod)
{
    size_t n = mod && mod->name ? strlen(mod->name) : 0;
    if (!n || strncmp(name, mod->name, n) != 0 || name[n] != '_')
        return false;
    const char *rest = name + n + 1;
    if (strncmp(rest, "list_", 5) == 0 || strncmp(rest, "map_", 4) == 0)
        return true;
    for (const idl_decl *d = mod->decls; d; d = d->next) {
        size_t k = d->name ? strlen(d->name) : 0;
        if (k && strncmp(rest, d->name, k) == 0 && (rest[k] == '\0' || rest[k] == '_'))
            return true;
    }
    return false;
}

static bool module_prefixed(const char *name)
{
    if (!gu_cur_module)
        return false;
    if (generated_by(name, gu_cur_module))
        return true;
    for (const idl_import *im = gu_cur_module->imports; im; im = im->next)
        if (generated_by(name, im->module))
            return true;
    return false;
}

const char *gu_ident(const char *name, bool param, gbuf *scratch)
{
    static const char *const reserved[] = {
        /* C11 keywords and the macros <stdbool.h> defines */
        "auto", "break", "case", "char", "const", "continue", "default", "do",
        "double", "else", "enum", "extern", "float", "for", "goto", "if",
        "inline", "int", "long", "register", "restrict", "return", "short",
        "signed", "sizeof", "static", "struct", "switch", "typedef", "union",
        "unsigned", "void", "volatile", "while", "bool", "true", "false",
        "asm", "_Bool", "_Complex", "_Imaginary", "_Alignas", "_Alignof",
        "_Atomic", "_Generic", "_Noreturn", "_Static_assert", "_Thread_local",
        NULL,
        /* names the generated functions give their own parameters/locals */
        "to", "cb", "ud", "opts", "args", "r", "filter", "fud", "call", "ret",
        "res", "ex", "h", "e", "d", "v", "value", "out", "err",
    };
    /* object-like macros of the headers <ember/ember.h> includes
     * (<stddef.h>, <stdint.h>): as a name they would be expanded */
    static const char *const macros[] = {
        "NULL", "SIZE_MAX", "PTRDIFF_MIN", "PTRDIFF_MAX", "SIG_ATOMIC_MIN",
        "SIG_ATOMIC_MAX", "WCHAR_MIN", "WCHAR_MAX", "WINT_MIN", "WINT_MAX",
        "INTPTR_MIN", "INTPTR_MAX", "UINTPTR_MAX", "INTMAX_MIN", "INTMAX_MAX",
        "UINTMAX_MAX",
    };
    bool rename = false;
    for (size_t i = 0; i < sizeof macros / sizeof *macros && !rename; i++)
        rename = strcmp(name, macros[i]) == 0;
    /* INT8_MIN ... UINT64_MAX, INT_LEAST8_MIN ..., INT_FAST8_MIN ... */
    size_t len = strlen(name);
    if (!rename && len > 4 && (strncmp(name, "INT", 3) == 0 || strncmp(name, "UINT", 4) == 0) &&
        (strcmp(name + len - 4, "_MIN") == 0 || strcmp(name + len - 4, "_MAX") == 0))
        rename = true;
    /* ember's own macros (EMBER_...), identifiers reserved to the C
     * implementation (__func__, _Pragma, ...) */
    if (strncmp(name, "EMBER_", 6) == 0 || (name[0] == '_' && (name[1] == '_' || isupper((unsigned char)name[1]))))
        rename = true;
    /* the generated names of this module and its imports (game_MAX,
     * game_Pos, common_Vec_ID) */
    if (module_prefixed(name))
        rename = true;
    /* a parameter named like ember's functions and types, or like a type of
     * <stdint.h> / <stddef.h> (uint32_t, size_t), would hide them in the
     * prototype and the stub; other names ending in _t (delta_t) are kept */
    bool c_type = len > 2 && strcmp(name + len - 2, "_t") == 0 &&
                  (strncmp(name, "int", 3) == 0 || strncmp(name, "uint", 4) == 0 ||
                   strcmp(name, "size_t") == 0 || strcmp(name, "ptrdiff_t") == 0 ||
                   strcmp(name, "wchar_t") == 0 || strcmp(name, "max_align_t") == 0);
    if (param && (strncmp(name, "ember_", 6) == 0 || c_type))
        rename = true;
    /* NAME.c's static tables (type_u32, fields_Pos, params_..., raises_...)
     * are file-scope objects: a parameter named like one would shadow it
     * in the stubs and handlers (-Wshadow) */
    static const char *const tables[] = { GU_PFX_TYPE, GU_PFX_FIELDS, GU_PFX_PARAMS, GU_PFX_RAISES };
    for (size_t i = 0; param && !rename && i < sizeof tables / sizeof *tables; i++)
        rename = strncmp(name, tables[i], strlen(tables[i])) == 0;
    if (rename) {
        gb_clear(scratch);
        gb_printf(scratch, "%s_", name);
        return gb_str(scratch);
    }
    for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++) {
        if (!reserved[i]) {
            if (!param)
                break;
            continue;
        }
        if (name[0] == reserved[i][0] && strcmp(name, reserved[i]) == 0) {
            gb_clear(scratch);
            gb_printf(scratch, "%s_", name);
            return gb_str(scratch);
        }
    }
    return name;
}

void gu_doc(FILE *out, const char *indent, const char *doc)
{
    if (!doc)
        return;
    const char *s = doc;
    for (;;) {
        const char *eol = strchr(s, '\n');
        size_t n = eol ? (size_t)(eol - s) : strlen(s);
        /* Trailing blanks and backslashes would splice the next source line
         * into the comment; '??' could start a trigraph. */
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' ||
                     s[n - 1] == '\\'))
            n--;
        size_t i = (n && s[0] == ' ') ? 1 : 0;
        if (!(eol == NULL && n == 0 && s != doc)) {
            fprintf(out, "%s///%s", indent, n > i ? " " : "");
            for (; i < n; i++) {
                if (s[i] == '\r')
                    continue;
                fputc(s[i], out);
                if (s[i] == '?' && i + 1 < n && s[i + 1] == '?')
                    fputc(' ', out);
            }
            fputc('\n', out);
        }
        if (!eol)
            break;
        s = eol + 1;
    }
}

void gu_proto(FILE *out, const char *head, const char *const *params, size_t n,
              const char *tail)
{
    size_t len = strlen(head) + 2 + strlen(tail);
    for (size_t i = 0; i < n; i++)
        len += strlen(params[i]) + (i ? 2 : 0);
    if (n == 0) {
        fprintf(out, "%s(void)%s\n", head, tail);
        return;
    }
    if (len <= 80) {
        fprintf(out, "%s(", head);
        for (size_t i = 0; i < n; i++)
            fprintf(out, "%s%s", i ? ", " : "", params[i]);
        fprintf(out, ")%s\n", tail);
        return;
    }
    /* Aligned under the parenthesis when that leaves room, else indented. */
    size_t hl = strlen(head) + 1;
    bool align = hl <= 40;
    fprintf(out, "%s(%s", head, align ? "" : "\n    ");
    size_t col = align ? hl : 4;
    for (size_t i = 0; i < n; i++) {
        size_t pl = strlen(params[i]);
        if (i > 0) {
            if (col + 2 + pl + (i + 1 == n ? 1 + strlen(tail) : 1) > 80) {
                fprintf(out, ",\n%*s", (int)(align ? hl : 4), "");
                col = align ? hl : 4;
            } else {
                fputs(", ", out);
                col += 2;
            }
        }
        fputs(params[i], out);
        col += pl;
    }
    fprintf(out, ")%s\n", tail);
}

void gu_basename(gbuf *b, const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 4 && strcmp(base + n - 4, ".idl") == 0)
        n -= 4;     /* main.c names the outputs alike */
    for (size_t i = 0; i < n; i++)
        gb_putc(b, base[i]);
}

/* ---- the module inventory ---- */

static void push_val(gen_ctx *g, const idl_type *t)
{
    if (g->nvals == g->capvals) {
        g->capvals = g->capvals ? g->capvals * 2 : 16;
        g->vals = idl_xrealloc(g->vals, g->capvals * sizeof *g->vals);
    }
    g->vals[g->nvals++] = t;
}

/* Post-order, so a container's element helpers come before the container. */
static void collect(gen_ctx *g, strset *seen, gbuf *scratch, const idl_type *t)
{
    gu_class c = gu_classify(t);
    if (c == GU_PRIM)
        return;
    if (c == GU_MAP)
        collect(g, seen, scratch, t->key);
    if (c == GU_LIST || c == GU_MAP)
        collect(g, seen, scratch, t->elem);
    gb_clear(scratch);
    gu_mangle(scratch, g, t);
    if (strset_add(seen, gb_str(scratch)))
        push_val(g, t);
}

static bool same_module(const gen_ctx *g, const idl_decl *d)
{
    return strcmp(gu_decl_mod(d), g->mod) == 0;
}

/* Structs in source order, each after the structs it holds by value. */
static void order_struct(gen_ctx *g, strset *seen, const idl_decl *d)
{
    if (!strset_add(seen, d->name))
        return;
    for (const idl_field *f = d->fields; f; f = f->next) {
        const idl_type *t = f->type;
        if (!f->optional && t->kind == IDL_NAMED && t->decl &&
            (t->decl->kind == IDL_STRUCT || t->decl->kind == IDL_ERROR) &&
            same_module(g, t->decl))
            order_struct(g, seen, t->decl);
    }
    g->structs[g->nstructs++] = d;
}

int gen_ctx_init(gen_ctx *g, const idl_module *m)
{
    memset(g, 0, sizeof *g);
    g->m = m;
    gu_cur_module = m;
    g->mod = m->name ? m->name : "";

    strset seen = {0}, raised = {0};
    gbuf scratch = {0};
    size_t ndecls = 0;
    for (const idl_decl *d = m->decls; d; d = d->next) {
        ndecls++;
        if (d->kind == IDL_STRUCT || d->kind == IDL_ERROR) {
            for (const idl_field *f = d->fields; f; f = f->next)
                collect(g, &seen, &scratch, f->type);
        } else if (d->kind == IDL_SERVICE) {
            for (const idl_method *me = d->methods; me; me = me->next) {
                for (const idl_field *p = me->params; p; p = p->next)
                    collect(g, &seen, &scratch, p->type);
                if (me->ret)
                    collect(g, &seen, &scratch, me->ret);
                if (!me->params || (!me->ret && !me->oneway))
                    g->need_empty = true;
                for (const idl_name *r = me->raises; r; r = r->next) {
                    if (!r->decl)
                        continue;
                    gb_clear(&scratch);
                    gb_printf(&scratch, "%s.%s", gu_decl_mod(r->decl), r->decl->name);
                    if (!strset_add(&raised, gb_str(&scratch)))
                        continue;
                    if (g->nraised == g->capraised) {
                        g->capraised = g->capraised ? g->capraised * 2 : 8;
                        g->raised = idl_xrealloc(g->raised, g->capraised * sizeof *g->raised);
                    }
                    g->raised[g->nraised++] = r->decl;
                }
            }
        }
    }

    g->structs = idl_xrealloc(NULL, (ndecls ? ndecls : 1) * sizeof *g->structs);
    strset ordered = {0};
    for (const idl_decl *d = m->decls; d; d = d->next)
        if (d->kind == IDL_STRUCT || d->kind == IDL_ERROR)
            order_struct(g, &ordered, d);

    strset_free(&ordered);
    strset_free(&seen);
    strset_free(&raised);
    gb_free(&scratch);
    return 0;
}

void gen_ctx_free(gen_ctx *g)
{
    free(g->vals);
    free(g->raised);
    free(g->structs);
    memset(g, 0, sizeof *g);
}

/* ---- names and signatures ---- */

void gu_decl_cname(gbuf *b, const idl_decl *d)
{
    gb_printf(b, "%s_%s", gu_decl_mod(d), d->name);
}

void gu_decl_mangle(gbuf *b, const gen_ctx *g, const idl_decl *d)
{
    if (!same_module(g, d))
        gb_printf(b, "%s_", gu_decl_mod(d));
    gb_puts(b, d->name);
}

void gu_method_prefix(gbuf *b, const gen_ctx *g, const idl_decl *svc,
                      const idl_method *me)
{
    gb_printf(b, "%s_%s_%s", g->mod, svc->name, me->name);
}

/* A growable list of parameter strings for gu_proto. */
typedef struct plist {
    char **v;
    size_t n, cap;
} plist;

static void pl_add(plist *p, const char *s)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 8;
        p->v = idl_xrealloc(p->v, p->cap * sizeof *p->v);
    }
    size_t n = strlen(s);
    p->v[p->n++] = memcpy(idl_xrealloc(NULL, n + 1), s, n + 1);
}

static void pl_free(plist *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->v[i]);
    free(p->v);
}

/* A value by the passing rule: structs, lists and maps as const T *. */
static void pl_add_param(plist *p, const gen_ctx *g, const idl_type *t,
                         const char *name)
{
    gbuf b = {0};
    if (gu_by_pointer(t))
        gu_cdecl_constptr(&b, g, t, name);
    else
        gu_cdecl(&b, g, t, name);
    pl_add(p, gb_str(&b));
    gb_free(&b);
}

/* Optional parameters are pointers, NULL when absent: strings and refs as
 * they are, everything else as const T *. */
void gu_param_cdecl(gbuf *b, const gen_ctx *g, const idl_field *p, const char *name)
{
    if (p->optional ? !gu_opt_as_is(p->type) : gu_by_pointer(p->type))
        gu_cdecl_constptr(b, g, p->type, name);
    else
        gu_cdecl(b, g, p->type, name);
}

static void pl_add_user_params(plist *p, const gen_ctx *g, const idl_method *me)
{
    gbuf scratch = {0}, b = {0};
    for (const idl_field *f = me->params; f; f = f->next) {
        gb_clear(&b);
        gu_param_cdecl(&b, g, f, gu_ident(f->name, true, &scratch));
        pl_add(p, gb_str(&b));
    }
    gb_free(&scratch);
    gb_free(&b);
}

static void pl_add_cb(plist *p, const char *prefix)
{
    gbuf b = {0};
    gb_printf(&b, "%s" GU_SFX_CB " cb", prefix);
    pl_add(p, gb_str(&b));
    pl_add(p, "void *ud");
    pl_add(p, "const ember_callopts *opts");
    gb_free(&b);
}

void gu_signature(FILE *out, const gen_ctx *g, gu_sig kind, const idl_decl *svc,
                  const idl_method *me, const idl_decl *err, const char *tail)
{
    gbuf pre = {0}, head = {0}, tmp = {0};
    plist p = {0};
    if (me)
        gu_method_prefix(&pre, g, svc, me);

    switch (kind) {
    case GU_SIG_CB:
        gb_printf(&head, "typedef void (*%s" GU_SFX_CB ")", gb_str(&pre));
        pl_add(&p, "const ember_outcome *o");
        if (me->ret) {
            gu_cdecl_constptr(&tmp, g, me->ret, "ret");
            pl_add(&p, gb_str(&tmp));
        }
        pl_add(&p, "void *ud");
        break;
    case GU_SIG_STUB:
        gb_printf(&head, "%s%s", me->oneway ? "int " : "ember_handle ", gb_str(&pre));
        pl_add(&p, "ember_ref *to");
        pl_add_user_params(&p, g, me);
        if (!me->oneway)
            pl_add_cb(&p, gb_str(&pre));
        break;
    case GU_SIG_BROADCAST:
        gb_printf(&head, "int %s" GU_SFX_BROADCAST, gb_str(&pre));
        pl_add(&p, "ember_root *r");
        pl_add(&p, "ember_child_filter filter");
        pl_add(&p, "void *fud");
        pl_add_user_params(&p, g, me);
        pl_add_cb(&p, gb_str(&pre));
        break;
    case GU_SIG_REPLY:
        gb_printf(&head, "int %s" GU_SFX_REPLY, gb_str(&pre));
        pl_add(&p, "ember_call *call");
        if (me->ret)
            pl_add_param(&p, g, me->ret, "ret");
        break;
    case GU_SIG_FAIL:
        gb_printf(&head, "int %s" GU_SFX_FAIL, gb_str(&pre));
        gu_decl_mangle(&head, g, err);
        pl_add(&p, "ember_call *call");
        gb_puts(&tmp, "const ");
        gu_decl_cname(&tmp, err);
        gb_puts(&tmp, " *err");
        pl_add(&p, gb_str(&tmp));
        break;
    case GU_SIG_HANDLER:
        gb_printf(&head, "    void (*remote_%s)", me->name);
        pl_add(&p, "ember_call *call");
        pl_add_user_params(&p, g, me);
        pl_add(&p, "void *ud");
        break;
    case GU_SIG_EXPORT:
    case GU_SIG_LOCAL:
        gu_decl_cname(&tmp, svc);
        if (kind == GU_SIG_EXPORT) {
            gb_printf(&head, "int %s" GU_SFX_EXPORT, gb_str(&tmp));
            pl_add(&p, "ember_exports *ex");
        } else {
            gb_printf(&head, "ember_ref *%s" GU_SFX_LOCAL, gb_str(&tmp));
        }
        gb_clear(&pre);
        gb_printf(&pre, "const %s" GU_SFX_HANDLERS " *h", gb_str(&tmp));
        pl_add(&p, gb_str(&pre));
        pl_add(&p, "void *ud");
        break;
    }
    gu_proto(out, gb_str(&head), (const char *const *)p.v, p.n, tail);
    pl_free(&p);
    gb_free(&pre);
    gb_free(&head);
    gb_free(&tmp);
}
