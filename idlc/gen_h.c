/*
 * gen_h.c — writes NAME.h: the C types, constants, codecs, client stubs and
 * server skeletons of one module. This is the file users read, so it is laid
 * out for reading: constants, enums, types, then one block per service
 * method, each declaration under its doc comment. The layout is documented
 * in docs/generated-code.md.
 */
#include <ctype.h>
#include <math.h>
#include <string.h>

#include "gen.h"
#include "gen_util.h"

/* A C string literal for bytes s[0..n). Octal escapes are three digits so
 * that a following digit cannot extend them; '?' after '?' is escaped so no
 * trigraph forms. Bytes above 0x7f are escaped too when `binary` (they are
 * not text, and a compiler may reject them as a bad source encoding). */
static void c_string(gbuf *b, const char *s, size_t n, bool binary)
{
    gb_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"':  gb_puts(b, "\\\""); break;
        case '\\': gb_puts(b, "\\\\"); break;
        case '\n': gb_puts(b, "\\n"); break;
        case '\t': gb_puts(b, "\\t"); break;
        case '\r': gb_puts(b, "\\r"); break;
        case '?':
            gb_puts(b, i > 0 && s[i - 1] == '?' ? "\\?" : "?");
            break;
        default:
            if (c < 0x20 || c == 0x7f || (binary && c > 0x7f))
                gb_printf(b, "\\%03o", c);
            else
                gb_putc(b, (char)c);
        }
    }
    gb_putc(b, '"');
}

/* A double literal that reads back as the same value. */
static void c_double(gbuf *b, double f)
{
    if (isnan(f)) {
        gb_puts(b, "(0.0 / 0.0)");
        return;
    }
    if (isinf(f)) {
        gb_puts(b, f < 0 ? "(-1e999)" : "1e999");
        return;
    }
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%.17g", f);
    gb_puts(b, tmp);
    if (!strpbrk(tmp, ".eEn"))
        gb_puts(b, ".0");
}

static void const_value(gbuf *b, const gen_ctx *g, const idl_decl *d)
{
    const idl_type *t = d->const_type;
    const idl_literal *l = &d->const_value;
    double f = l->kind == IDL_LIT_FLOAT ? l->f
             : l->negative ? -(double)l->u : (double)l->u;

    switch (t->kind) {
    case IDL_BOOL:
        gb_puts(b, (l->kind == IDL_LIT_BOOL ? l->b : l->u != 0) ? "true" : "false");
        break;
    case IDL_STRING:
        c_string(b, l->s ? l->s : "", l->s ? l->slen : 0, false);
        break;
    case IDL_BYTES:             /* a compound literal: usable as an ember_bytes value */
        gb_puts(b, "((ember_bytes){(const uint8_t *)");
        c_string(b, l->s ? l->s : "", l->s ? l->slen : 0, true);
        gb_printf(b, ", %zu})", l->s ? l->slen : 0);
        break;
    case IDL_F32:
        gb_puts(b, "((float)");
        c_double(b, f);
        gb_putc(b, ')');
        break;
    case IDL_F64:
        gb_putc(b, '(');
        c_double(b, f);
        gb_putc(b, ')');
        break;
    case IDL_U64:
        gb_printf(b, "UINT64_C(%llu)", (unsigned long long)l->u);
        break;
    case IDL_I64:
        if (l->negative && l->u > (uint64_t)INT64_MAX)
            gb_puts(b, "INT64_MIN");
        else
            gb_printf(b, l->negative ? "(-INT64_C(%llu))" : "INT64_C(%llu)",
                      (unsigned long long)l->u);
        break;
    case IDL_U8:
    case IDL_U16:
    case IDL_U32: {
        gbuf ty = {0};
        gu_ctype(&ty, g, t);
        gb_printf(b, "((%s)%lluu)", gb_str(&ty), (unsigned long long)l->u);
        gb_free(&ty);
        break;
    }
    default: {                   /* i8..i32, enums */
        gbuf ty = {0};
        gu_ctype(&ty, g, t);
        if (l->negative && l->u == 2147483648u)
            gb_printf(b, "((%s)(-2147483647 - 1))", gb_str(&ty));
        else
            gb_printf(b, "((%s)%s%llu)", gb_str(&ty), l->negative ? "-" : "",
                      (unsigned long long)l->u);
        gb_free(&ty);
        break;
    }
    }
}

static void emit_const(FILE *out, const gen_ctx *g, const idl_decl *d)
{
    gbuf v = {0};
    const_value(&v, g, d);
    gu_doc(out, "", d->doc);
    fprintf(out, "#define %s_%s %s\n", g->mod, d->name, gb_str(&v));
    gb_free(&v);
}

static void emit_enum(FILE *out, const gen_ctx *g, const idl_decl *d)
{
    gu_doc(out, "", d->doc);
    fprintf(out, "typedef enum %s_%s {\n", g->mod, d->name);
    for (const idl_enumerator *e = d->enumerators; e; e = e->next) {
        gu_doc(out, "    ", e->doc);
        const idl_literal *l = &e->value;
        if (l->negative && l->u == 2147483648u)
            fprintf(out, "    %s_%s_%s = -2147483647 - 1,\n", g->mod, d->name, e->name);
        else
            fprintf(out, "    %s_%s_%s = %s%llu,\n", g->mod, d->name, e->name,
                    l->negative && l->u ? "-" : "", (unsigned long long)l->u);
    }
    fprintf(out, "} %s_%s;\n", g->mod, d->name);
    fprintf(out, "/* The enumerator's name (\"%s\" for %s_%s_%s), or NULL for a value\n"
                 " * this version does not know. */\n",
            d->enumerators->name, g->mod, d->name, d->enumerators->name);
    fprintf(out, "const char *%s_%s" GU_SFX_NAME "(%s_%s v);\n\n", g->mod, d->name, g->mod, d->name);
}

/* One member of a struct: optional structs are pointers (NULL when absent),
 * other optionals carry a has_ flag. */
static void emit_member(FILE *out, const gen_ctx *g, const idl_field *f)
{
    gbuf scratch = {0}, decl = {0}, star = {0};
    const char *name = gu_ident(f->name, false, &scratch);
    gu_doc(out, "    ", f->doc);
    if (f->optional && gu_classify(f->type) == GU_STRUCT) {
        gb_printf(&star, "*%s", name);
        gu_cdecl(&decl, g, f->type, gb_str(&star));
        fprintf(out, "    %s;   /* optional: NULL when absent */\n", gb_str(&decl));
    } else {
        if (f->optional)
            fprintf(out, "    bool " GU_PFX_HAS "%s;\n", f->name);
        gu_cdecl(&decl, g, f->type, name);
        fprintf(out, "    %s;\n", gb_str(&decl));
    }
    gb_free(&scratch);
    gb_free(&decl);
    gb_free(&star);
}

static void emit_struct(FILE *out, const gen_ctx *g, const idl_decl *d)
{
    gbuf cn = {0};
    gu_decl_cname(&cn, d);
    const char *c = gb_str(&cn);

    gu_doc(out, "", d->doc);
    if (d->kind == IDL_ERROR)
        fprintf(out, "#define %s" GU_SFX_ID " 0x%08xu   /* FNV-1a 32 of \"%s.%s\" */\n",
                c, (unsigned)d->wire_id, g->mod, d->name);
    fprintf(out, "struct %s {\n", c);
    for (const idl_field *f = d->fields; f; f = f->next)
        emit_member(out, g, f);
    if (!d->fields)
        fputs("    uint8_t unused_;   /* C has no empty structs */\n", out);
    fputs("};\n", out);
    fprintf(out, "void %s" GU_SFX_INIT "(%s *v);\n", c, c);
    fprintf(out, "void %s" GU_SFX_ENCODE "(ember_enc *e, const %s *v);\n", c, c);
    fprintf(out, "int %s" GU_SFX_DECODE "(ember_dec *d, %s *v);\n\n", c, c);
    gb_free(&cn);
}

static void emit_container(FILE *out, const gen_ctx *g, const idl_type *t)
{
    gbuf name = {0}, a = {0}, ty = {0};
    gu_ctype(&name, g, t);
    gu_ctype(&ty, g, t->elem);
    gb_puts(&ty, gb_str(&ty)[ty.n - 1] == '*' ? "*" : " *");
    if (t->kind == IDL_LIST) {
        fprintf(out, "typedef struct %s {\n    %sitems;\n    uint32_t n;\n} %s;\n\n",
                gb_str(&name), gb_str(&ty), gb_str(&name));
    } else {
        gu_ctype(&a, g, t->key);
        gb_puts(&a, gb_str(&a)[a.n - 1] == '*' ? "*" : " *");
        fprintf(out, "typedef struct %s {\n    %skeys;\n    %svals;\n    uint32_t n;\n} %s;\n\n",
                gb_str(&name), gb_str(&a), gb_str(&ty), gb_str(&name));
    }
    gb_free(&name);
    gb_free(&a);
    gb_free(&ty);
}

static void emit_service(FILE *out, const gen_ctx *g, const idl_decl *s)
{
    gbuf cn = {0}, pre = {0};
    gu_decl_cname(&cn, s);
    const char *c = gb_str(&cn);

    fprintf(out, "/* ---- service %s.%s ---- */\n\n", g->mod, s->name);
    gu_doc(out, "", s->doc);
    fprintf(out, "extern const ember_service_desc %s" GU_SFX_SERVICE ";\n", c);
    fprintf(out, "#define %s" GU_SFX_SERVICE_ID " 0x%08xu   /* FNV-1a 32 of \"%s.%s\" */\n\n",
            c, (unsigned)s->wire_id, g->mod, s->name);
    fputs("/* Per method: its id (unique within the service); the client stub\n"
          " * (the callback runs exactly once; ret is NULL unless o->status ==\n"
          " * EMBER_OK, o->error holds the error struct when EMBER_RAISED); a\n"
          " * broadcast from a root to its children; the reply and fail helpers\n"
          " * a handler answers with. */\n\n", out);
    bool any_optional = false;
    for (const idl_method *me = s->methods; me; me = me->next)
        for (const idl_field *p = me->params; p; p = p->next)
            any_optional |= p->optional;
    if (any_optional)
        fputs("/* An optional parameter is a pointer, NULL when absent (the caller\n"
              " * leaves it out, the handler gets NULL): strings as const char *,\n"
              " * refs as ember_ref *, anything else as const T *. */\n\n", out);

    for (const idl_method *me = s->methods; me; me = me->next) {
        gb_clear(&pre);
        gu_method_prefix(&pre, g, s, me);
        fprintf(out, "/* %s.%s */\n", s->name, me->name);
        gu_doc(out, "", me->doc);
        fprintf(out, "#define %s" GU_SFX_ID " %lluu\n", gb_str(&pre), (unsigned long long)me->id);
        if (me->oneway) {
            gu_signature(out, g, GU_SIG_STUB, s, me, NULL, ";");
            fputc('\n', out);
            continue;
        }
        gu_signature(out, g, GU_SIG_CB, s, me, NULL, ";");
        gu_signature(out, g, GU_SIG_STUB, s, me, NULL, ";");
        gu_signature(out, g, GU_SIG_BROADCAST, s, me, NULL, ";");
        gu_signature(out, g, GU_SIG_REPLY, s, me, NULL, ";");
        for (const idl_name *r = me->raises; r; r = r->next)
            if (r->decl)
                gu_signature(out, g, GU_SIG_FAIL, s, me, r->decl, ";");
        fputc('\n', out);
    }

    fprintf(out, "/* Server side: fill in the handlers you serve; a NULL handler fails\n"
                 " * its calls with \"method not implemented\". Each handler answers with\n"
                 " * its _reply or _fail_<Error> helper, now or later. */\n");
    fprintf(out, "typedef struct %s" GU_SFX_HANDLERS " {\n", c);
    for (const idl_method *me = s->methods; me; me = me->next) {
        gu_doc(out, "    ", me->doc);
        gu_signature(out, g, GU_SIG_HANDLER, s, me, NULL, ";");
    }
    if (!s->methods)
        fputs("    void (*unused_)(void);   /* C has no empty structs */\n", out);
    fprintf(out, "} %s" GU_SFX_HANDLERS ";\n", c);
    fprintf(out, "/* Serves the service to the peers of the root or node owning ex. */\n");
    gu_signature(out, g, GU_SIG_EXPORT, s, NULL, NULL, ";");
    fprintf(out, "/* A local object to pass as a ref<%s> argument. */\n", s->name);
    gu_signature(out, g, GU_SIG_LOCAL, s, NULL, NULL, ";");
    fputc('\n', out);
    gb_free(&cn);
    gb_free(&pre);
}

int gen_header(const idl_module *m, FILE *out)
{
    gen_ctx g;
    gbuf base = {0}, guard = {0};
    gen_ctx_init(&g, m);

    gu_basename(&base, m->path ? m->path : g.mod);
    /* The base name upper-cased, other characters as '_': that alone is
     * one guard for a-b, a.b and a_b, or A and a, which one program may
     * include together. A name with anything but [a-z0-9_] gets its bytes
     * in hex after "_x" too, whose lowercase x no plain name's guard has. */
    bool plain = true;
    gb_puts(&guard, "EMBER_GEN_");
    for (const char *s = gb_str(&base); *s; s++) {
        unsigned char ch = (unsigned char)*s;
        plain = plain && ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_');
        gb_putc(&guard, isalnum(ch) ? (char)toupper(ch) : '_');
    }
    if (!plain) {
        gb_puts(&guard, "_x");
        for (const char *s = gb_str(&base); *s; s++)
            gb_printf(&guard, "%02x", (unsigned char)*s);
    }
    gb_puts(&guard, "_H");

    fprintf(out, "/* %s.h — generated by idlc from %s.idl. Do not edit. */\n",
            gb_str(&base), gb_str(&base));
    gu_doc(out, "", m->doc);
    fprintf(out, "#ifndef %s\n#define %s\n\n#include <ember/ember.h>\n", gb_str(&guard),
            gb_str(&guard));
    bool any = false;
    for (const idl_import *i = m->imports; i; i = i->next) {
        gbuf ib = {0};
        gu_basename(&ib, i->module && i->module->path ? i->module->path : i->path);
        fprintf(out, "%s#include \"%s.h\"\n", any ? "" : "\n", gb_str(&ib));
        any = true;
        gb_free(&ib);
    }
    fputs("\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n", out);

    any = false;
    for (const idl_decl *d = m->decls; d; d = d->next) {
        if (d->kind != IDL_CONST)
            continue;
        if (!any)
            fputs("/* ---- constants ---- */\n\n", out);
        any = true;
        emit_const(out, &g, d);
    }
    if (any)
        fputc('\n', out);

    any = false;
    for (const idl_decl *d = m->decls; d; d = d->next) {
        if (d->kind != IDL_ENUM)
            continue;
        if (!any)
            fputs("/* ---- enums: encoded as zigzag varints; a value this version does not\n"
                  " * know is kept as is ---- */\n\n", out);
        any = true;
        emit_enum(out, &g, d);
    }

    if (g.nstructs) {
        fputs("/* ---- structs and errors ---- */\n\n", out);
        for (size_t i = 0; i < g.nstructs; i++)
            fprintf(out, "typedef struct %s_%s %s_%s;\n", g.mod, g.structs[i]->name,
                    g.mod, g.structs[i]->name);
        fputc('\n', out);
    }

    any = false;
    for (size_t i = 0; i < g.nvals; i++) {
        gu_class k = gu_classify(g.vals[i]);
        if (k != GU_LIST && k != GU_MAP)
            continue;
        if (!any)
            fputs("/* ---- lists and maps: n elements in items (maps: keys[i] -> vals[i]) ---- */\n\n", out);
        any = true;
        emit_container(out, &g, g.vals[i]);
    }

    if (g.nstructs)
        fputs("/* Each struct comes with\n"
              " *   _init    zeroes it, strings \"\" (decoded strings are never NULL);\n"
              " *   _encode  writes its fields to e;\n"
              " *   _decode  reads fields to the end of d's region (unknown ones are\n"
              " *            skipped, missing ones stay zero); 0 or -1. */\n\n", out);
    for (size_t i = 0; i < g.nstructs; i++)
        emit_struct(out, &g, g.structs[i]);

    for (const idl_decl *d = m->decls; d; d = d->next)
        if (d->kind == IDL_SERVICE)
            emit_service(out, &g, d);

    fprintf(out, "#ifdef __cplusplus\n}\n#endif\n\n#endif /* %s */\n", gb_str(&guard));

    gb_free(&base);
    gb_free(&guard);
    gen_ctx_free(&g);
    return ferror(out) ? -1 : 0;
}
