/*
 * gen_types.c — the run-time type tables of a generated .c: an ember_type
 * for every type a method's parameters or result use (structs with their
 * field tables, lists, maps, enums, refs, scalars), and per method the
 * parameter table. Personalities whose values are dynamic (Twisted PB)
 * read them to turn positional values into typed ones and back.
 *
 * Every table is `static const`, named type_<mangle> / fields_<mangle>;
 * all are declared first, so tables may refer to each other in any order
 * (a struct holding a list of itself).
 */
#include <stdlib.h>

#include "gen_types.h"

static const char *const kinds[] = {
    [IDL_BOOL] = "BOOL", [IDL_I8] = "I8", [IDL_I16] = "I16", [IDL_I32] = "I32",
    [IDL_I64] = "I64", [IDL_U8] = "U8", [IDL_U16] = "U16", [IDL_U32] = "U32",
    [IDL_U64] = "U64", [IDL_F32] = "F32", [IDL_F64] = "F64",
    [IDL_STRING] = "STRING", [IDL_BYTES] = "BYTES", [IDL_LIST] = "LIST",
    [IDL_MAP] = "MAP", [IDL_REF] = "REF",
};

typedef struct seen {
    strset names;
    const idl_type **v;
    size_t n, cap;
} seen;

static void collect(seen *s, const gen_ctx *g, const idl_type *t);

static void collect_fields(seen *s, const gen_ctx *g, const idl_field *f)
{
    for (; f; f = f->next)
        collect(s, g, f->type);
}

/* Every type reachable from t, each once (by mangle). */
static void collect(seen *s, const gen_ctx *g, const idl_type *t)
{
    gbuf m = {0};
    gu_mangle(&m, g, t);
    bool fresh = strset_add(&s->names, gb_str(&m));
    gb_free(&m);
    if (!fresh)
        return;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->v = idl_xrealloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = t;
    if (t->key)
        collect(s, g, t->key);
    if (t->elem)
        collect(s, g, t->elem);
    if (t->kind == IDL_NAMED && t->decl && t->decl->kind != IDL_ENUM)
        collect_fields(s, g, t->decl->fields);
}

void gen_types_ref(gbuf *b, const gen_ctx *g, const idl_type *t)
{
    gb_puts(b, "&" GU_PFX_TYPE);
    gu_mangle(b, g, t);
}

/* { tag, "name", &type_x, optional } lines of a field or parameter list. */
void gen_types_fields(FILE *out, const gen_ctx *g, const idl_field *f)
{
    gbuf r = {0};
    for (; f; f = f->next) {
        gb_clear(&r);
        gen_types_ref(&r, g, f->type);
        fprintf(out, "    { %llu, \"%s\", %s, %s },\n", (unsigned long long)f->tag,
                f->name, gb_str(&r), f->optional ? "true" : "false");
    }
    gb_free(&r);
}

static size_t count_fields(const idl_field *f)
{
    size_t n = 0;
    for (; f; f = f->next)
        n++;
    return n;
}

static void emit_type(FILE *out, const gen_ctx *g, const idl_type *t)
{
    gbuf m = {0}, key = {0}, elem = {0};
    gu_mangle(&m, g, t);
    const char *mn = gb_str(&m);
    const idl_decl *d = t->decl;
    if (t->kind == IDL_NAMED && d && d->kind != IDL_ENUM && d->fields) {
        fprintf(out, "static const ember_field_desc " GU_PFX_FIELDS "%s[] = {\n", mn);
        gen_types_fields(out, g, d->fields);
        fputs("};\n", out);
    }
    if (t->key)
        gen_types_ref(&key, g, t->key);
    if (t->elem)
        gen_types_ref(&elem, g, t->elem);
    const char *kind = t->kind == IDL_NAMED ? (d && d->kind == IDL_ENUM ? "ENUM" : "STRUCT")
                                            : kinds[t->kind];
    fprintf(out, "static const ember_type " GU_PFX_TYPE "%s = {\n    EMBER_T_%s, ", mn, kind);
    if (t->kind == IDL_NAMED || t->kind == IDL_REF)
        fprintf(out, "\"%s.%s\", ", gu_decl_mod(d), d ? d->name : t->name);
    else
        fputs("NULL, ", out);
    fprintf(out, "%s, %s, ", t->elem ? gb_str(&elem) : "NULL", t->key ? gb_str(&key) : "NULL");
    if (t->kind == IDL_NAMED && d && d->kind != IDL_ENUM && d->fields)
        fprintf(out, GU_PFX_FIELDS "%s, %zu, ", mn, count_fields(d->fields));
    else
        fputs("NULL, 0, ", out);
    /* A ref's service: a proxy forwarding it to a third party needs it. */
    if (t->kind == IDL_REF && d) {
        gbuf sv = {0};
        gu_decl_cname(&sv, d);
        fprintf(out, "&%s" GU_SFX_SERVICE "\n};\n\n", gb_str(&sv));
        gb_free(&sv);
    } else {
        fputs("NULL\n};\n\n", out);
    }
    gb_free(&m);
    gb_free(&key);
    gb_free(&elem);
}

void gen_types_emit(FILE *out, const gen_ctx *g, const idl_module *m)
{
    seen s = {0};
    /* The errors methods raise: their struct tables, through a type
     * naming each (kept until the tables are written). */
    idl_type *errs = g->nraised ? idl_xcalloc(g->nraised, sizeof *errs) : NULL;
    for (size_t i = 0; i < g->nraised; i++) {
        errs[i].kind = IDL_NAMED;
        errs[i].name = g->raised[i]->name;
        errs[i].decl = (idl_decl *)g->raised[i];
        collect(&s, g, &errs[i]);
    }
    for (const idl_decl *d = m->decls; d; d = d->next) {
        if (d->kind != IDL_SERVICE)
            continue;
        for (const idl_method *me = d->methods; me; me = me->next) {
            collect_fields(&s, g, me->params);
            if (me->ret)
                collect(&s, g, me->ret);
        }
    }
    if (s.n) {
        fputs("/* ---- run-time types (docs/generated-code.md) ---- */\n\n", out);
        gbuf mn = {0};
        for (size_t i = 0; i < s.n; i++) {
            gb_clear(&mn);
            gu_mangle(&mn, g, s.v[i]);
            fprintf(out, "static const ember_type " GU_PFX_TYPE "%s;\n", gb_str(&mn));
        }
        fputc('\n', out);
        gb_free(&mn);
        for (size_t i = 0; i < s.n; i++)
            emit_type(out, g, s.v[i]);
    }
    strset_free(&s.names);
    free(s.v);
    free(errs);
}

void gen_types_raises(FILE *out, const gen_ctx *g, const char *pre, const idl_method *me)
{
    gbuf c = {0}, r = {0};
    fprintf(out, "static const ember_raise_desc " GU_PFX_RAISES "%s[] = {\n", pre);
    for (const idl_name *e = me->raises; e; e = e->next) {
        if (!e->decl)
            continue;
        idl_type t = {0};
        t.kind = IDL_NAMED;
        t.name = e->decl->name;
        t.decl = e->decl;
        gb_clear(&c);
        gb_clear(&r);
        gu_decl_cname(&c, e->decl);
        gen_types_ref(&r, g, &t);
        fprintf(out, "    { %s" GU_SFX_ID ", %s },\n", gb_str(&c), gb_str(&r));
    }
    fputs("};\n", out);
    gb_free(&c);
    gb_free(&r);
}
