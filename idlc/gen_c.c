/*
 * gen_c.c — writes NAME.c: the code behind NAME.h.
 *
 * Layout of the output:
 *   1. prototypes of the static value helpers enc_<T>/dec_<T> (one pair per
 *      enum, nested struct, list and map type the module uses; recursive
 *      types call each other, hence prototypes first);
 *   2. enum names; struct init/encode/decode;
 *   3. the value helpers;
 *   4. per service method: the argument and result structs (file-local),
 *      the client stub, its completion, broadcast, reply and fail helpers,
 *      the dispatch function; then the service descriptor.
 *
 * Every struct body — public structs, argument structs, result structs —
 * goes through emit_struct_fns, so there is one encoder/decoder shape.
 */
#include <stdlib.h>
#include <string.h>

#include "gen.h"
#include "gen_types.h"
#include "gen_util.h"

/* "&x", or "p" for "*p": the address of an lvalue expression. */
static void addr_of(gbuf *b, const char *x)
{
    if (x[0] == '*')
        gb_puts(b, x + 1);
    else
        gb_printf(b, "&%s", x);
}

static bool is_signed(const idl_type *t)
{
    return t->kind >= IDL_I8 && t->kind <= IDL_I64;
}

static bool is_unsigned(const idl_type *t)
{
    return t->kind >= IDL_U8 && t->kind <= IDL_U64;
}

/* A statement encoding lvalue x of type t without a key. */
static void enc_raw(FILE *out, const char *ind, const gen_ctx *g,
                    const idl_type *t, const char *x)
{
    gbuf b = {0};
    switch (gu_classify(t)) {
    case GU_PRIM:
        if (is_unsigned(t) || t->kind == IDL_BOOL)
            fprintf(out, "%sember_enc_raw_varint(e, %s);\n", ind, x);
        else if (is_signed(t))
            fprintf(out, "%sember_enc_raw_sint(e, %s);\n", ind, x);
        else if (t->kind == IDL_BYTES)
            fprintf(out, "%sember_enc_raw_bytes(e, %s.data, %s.len);\n", ind, x, x);
        else if (t->kind == IDL_REF) {
            /* The service travels along for a ref passed on to a third
             * party (the runtime proxies it). */
            gu_decl_cname(&b, t->decl);
            fprintf(out, "%sember_enc_ref_value_as(e, %s, &%s" GU_SFX_SERVICE ");\n", ind, x,
                    gb_str(&b));
        }
        else
            fprintf(out, "%sember_enc_raw_%s(e, %s);\n", ind, gu_prim_sfx(t), x);
        break;
    case GU_ENUM:
        gu_mangle(&b, g, t);
        fprintf(out, "%s" GU_PFX_ENC "%s(e, %s);\n", ind, gb_str(&b), x);
        break;
    default:
        gb_puts(&b, GU_PFX_ENC);
        gu_mangle(&b, g, t);
        gb_puts(&b, "(e, ");
        addr_of(&b, x);
        fprintf(out, "%s%s);\n", ind, gb_str(&b));
        break;
    }
    gb_free(&b);
}

/* A statement encoding lvalue x of type t as field `tag`. */
static void enc_field(FILE *out, const char *ind, const gen_ctx *g,
                      unsigned long long tag, const idl_type *t, const char *x)
{
    if (t->kind == IDL_REF) {
        gbuf b = {0};
        gu_decl_cname(&b, t->decl);
        fprintf(out, "%sember_enc_ref_as(e, %llu, %s, &%s" GU_SFX_SERVICE ");\n", ind, tag, x,
                gb_str(&b));
        gb_free(&b);
        return;
    }
    if (gu_classify(t) == GU_PRIM) {
        const char *fn = is_unsigned(t) ? "uint" : is_signed(t) ? "sint" : gu_prim_sfx(t);
        fprintf(out, "%sember_enc_%s(e, %llu, %s);\n", ind, fn, tag, x);
        return;
    }
    fprintf(out, "%sember_enc_key(e, %llu, %s);\n", ind, tag, gu_wire(t));
    enc_raw(out, ind, g, t, x);
}

/* An expression, nonzero on failure, decoding an element into lvalue x. */
static void dec_raw(gbuf *b, const gen_ctx *g, const idl_type *t, const char *x)
{
    if (gu_classify(t) == GU_PRIM) {
        gb_printf(b, "ember_dec_raw_%s(d, ", gu_prim_sfx(t));
    } else {
        gb_puts(b, GU_PFX_DEC);
        gu_mangle(b, g, t);
        gb_puts(b, "(d, ");
    }
    addr_of(b, x);
    gb_putc(b, ')');
}

/* The same for a field whose wire type `wt` ember_dec_field just read. */
static void dec_field(gbuf *b, const gen_ctx *g, const idl_type *t, const char *x)
{
    if (gu_classify(t) == GU_PRIM) {
        gb_printf(b, "ember_dec_%s(d, wt, ", gu_prim_sfx(t));
        addr_of(b, x);
        gb_putc(b, ')');
        return;
    }
    gb_printf(b, "ember_dec_expect(d, wt, %s) ||\n                ", gu_wire(t));
    dec_raw(b, g, t, x);
}

/* "<head>(<a>, <b>)<tail>", wrapped like the header's prototypes. */
static void proto2(FILE *out, const char *tail, const char *fmt_head, const char *name,
                   const char *a, const char *b)
{
    gbuf head = {0};
    gb_printf(&head, fmt_head, name);
    const char *p[] = { a, b };
    gu_proto(out, gb_str(&head), p, b ? 2 : 1, tail);
    gb_free(&head);
}

/* ---- structs ---- */

/*
 * init/encode/decode for a struct named cname with these fields. Internal
 * structs (method arguments and results) are static and their encoder has
 * the ember_encode_fn signature; argument structs (params) name their
 * members as the stubs name their parameters.
 */
static void emit_struct_fns(FILE *out, const gen_ctx *g, const char *cname,
                            const idl_field *fields, bool internal, bool params)
{
    gbuf scratch = {0}, x = {0}, ex = {0}, ty = {0};

    /* init: zero, then what zero bytes do not express */
    gb_printf(&ty, "%s *v", cname);
    proto2(out, "", internal ? "static void %s" GU_SFX_INIT : "void %s" GU_SFX_INIT, cname, gb_str(&ty), NULL);
    fputs("{\n    memset(v, 0, sizeof *v);\n", out);
    for (const idl_field *f = fields; f; f = f->next) {
        const char *n = gu_ident(f->name, params, &scratch);
        if (f->type->kind == IDL_STRING) {
            fprintf(out, "    v->%s = \"\";\n", n);
        } else if (gu_classify(f->type) == GU_STRUCT && !f->optional) {
            gb_clear(&ty);
            gu_ctype(&ty, g, f->type);
            fprintf(out, "    %s" GU_SFX_INIT "(&v->%s);\n", gb_str(&ty), n);
        }
    }
    fputs("}\n\n", out);

    /* encode: every field but absent optionals */
    if (internal)
    {
        proto2(out, "", "static void %s" GU_SFX_ENCODE, cname, "ember_enc *e", "const void *value");
        fprintf(out, "{\n    const %s *v = value;\n\n", cname);
    } else {
        gb_clear(&ty);
        gb_printf(&ty, "const %s *v", cname);
        proto2(out, "", "void %s" GU_SFX_ENCODE, cname, "ember_enc *e", gb_str(&ty));
        fputs("{\n", out);
    }
    if (!fields)
        fputs("    (void)e;\n    (void)v;\n", out);
    for (const idl_field *f = fields; f; f = f->next) {
        const char *n = gu_ident(f->name, params, &scratch);
        gb_clear(&x);
        gb_printf(&x, "v->%s", n);
        if (!f->optional) {
            enc_field(out, "    ", g, f->tag, f->type, gb_str(&x));
        } else if (gu_classify(f->type) == GU_STRUCT) {
            fprintf(out, "    if (v->%s) {\n", n);
            gb_clear(&x);
            gb_printf(&x, "*v->%s", n);
            enc_field(out, "        ", g, f->tag, f->type, gb_str(&x));
            fputs("    }\n", out);
        } else {
            fprintf(out, "    if (v->" GU_PFX_HAS "%s)%s\n", f->name,
                    gu_classify(f->type) == GU_PRIM ? "" : " {");
            enc_field(out, "        ", g, f->tag, f->type, gb_str(&x));
            if (gu_classify(f->type) != GU_PRIM)
                fputs("    }\n", out);
        }
    }
    fputs("}\n\n", out);

    /* decode: a loop over the region's fields */
    gb_clear(&ty);
    gb_printf(&ty, "%s *v", cname);
    proto2(out, "", internal ? "static int %s" GU_SFX_DECODE : "int %s" GU_SFX_DECODE, cname, "ember_dec *d",
           gb_str(&ty));
    fprintf(out, "{\n    uint32_t tag;\n    unsigned wt;\n    int r;\n\n"
                 "    %s" GU_SFX_INIT "(v);\n", cname);
    if (!fields) {
        fputs("    while ((r = ember_dec_field(d, &tag, &wt)) > 0)\n"
              "        if (ember_dec_skip(d, wt))\n"
              "            return -1;\n"
              "    return r;\n}\n\n", out);
        goto done;
    }
    fputs("    while ((r = ember_dec_field(d, &tag, &wt)) > 0) {\n"
          "        switch (tag) {\n", out);
    for (const idl_field *f = fields; f; f = f->next) {
        const char *n = gu_ident(f->name, params, &scratch);
        bool block = f->optional && gu_classify(f->type) == GU_STRUCT && params;
        fprintf(out, "        case %llu:%s\n", (unsigned long long)f->tag, block ? " {" : "");
        gb_clear(&ex);
        if (block) {
            /* an argument struct points at a const struct: decode into a
             * fresh one, then point at it */
            gb_clear(&ty);
            gu_ctype(&ty, g, f->type);
            dec_raw(&ex, g, f->type, "*pv");
            fprintf(out, "            %s *pv;\n\n"
                         "            if (ember_dec_expect(d, wt, EMBER_WT_LEN))\n"
                         "                return -1;\n"
                         "            if (!(pv = ember_dec_alloc(d, sizeof *pv)))\n"
                         "                return ember_dec_fail(d, \"out of memory\");\n"
                         "            if (%s)\n                return -1;\n"
                         "            v->%s = pv;\n"
                         "            break;\n"
                         "        }\n", gb_str(&ty), gb_str(&ex), n);
            continue;
        } else if (f->optional && gu_classify(f->type) == GU_STRUCT) {
            fprintf(out, "            if (ember_dec_expect(d, wt, EMBER_WT_LEN))\n"
                         "                return -1;\n"
                         "            if (!(v->%s = ember_dec_alloc(d, sizeof *v->%s)))\n"
                         "                return ember_dec_fail(d, \"out of memory\");\n", n, n);
            gb_clear(&x);
            gb_printf(&x, "*v->%s", n);
            dec_raw(&ex, g, f->type, gb_str(&x));
            fprintf(out, "            if (%s)\n                return -1;\n", gb_str(&ex));
        } else {
            gb_clear(&x);
            gb_printf(&x, "v->%s", n);
            dec_field(&ex, g, f->type, gb_str(&x));
            fprintf(out, "            if (%s)\n                return -1;\n", gb_str(&ex));
            if (f->optional)
                fprintf(out, "            v->" GU_PFX_HAS "%s = true;\n", f->name);
        }
        fputs("            break;\n", out);
    }
    fputs("        default:\n"
          "            if (ember_dec_skip(d, wt))\n"
          "                return -1;\n"
          "            break;\n"
          "        }\n"
          "    }\n"
          "    return r;\n}\n\n", out);
done:
    gb_free(&scratch);
    gb_free(&x);
    gb_free(&ex);
    gb_free(&ty);
}

/* ---- value helpers ---- */

static void helper_proto(FILE *out, const gen_ctx *g, const idl_type *t, bool dec,
                         const char *tail)
{
    gbuf m = {0}, c = {0};
    gu_mangle(&m, g, t);
    gu_ctype(&c, g, t);
    if (dec) {
        gb_puts(&c, " *v");
        proto2(out, tail, "static int " GU_PFX_DEC "%s", gb_str(&m), "ember_dec *d", gb_str(&c));
    } else if (gu_classify(t) == GU_ENUM) {
        gb_puts(&c, " v");
        proto2(out, tail, "static void " GU_PFX_ENC "%s", gb_str(&m), "ember_enc *e", gb_str(&c));
    } else {
        gbuf p = {0};
        gb_printf(&p, "const %s *v", gb_str(&c));
        proto2(out, tail, "static void " GU_PFX_ENC "%s", gb_str(&m), "ember_enc *e", gb_str(&p));
        gb_free(&p);
    }
    gb_free(&m);
    gb_free(&c);
}

static void emit_helper(FILE *out, const gen_ctx *g, const idl_type *t)
{
    gbuf c = {0}, ex = {0};
    gu_ctype(&c, g, t);

    switch (gu_classify(t)) {
    case GU_ENUM:
        /* int32 on the wire; unknown values are kept */
        helper_proto(out, g, t, false, "");
        fputs("{\n    ember_enc_raw_sint(e, (int32_t)v);\n}\n\n", out);
        helper_proto(out, g, t, true, "");
        fprintf(out, "{\n    int32_t x;\n\n    if (ember_dec_raw_i32(d, &x))\n        return -1;\n"
                     "    *v = (%s)x;\n    return 0;\n}\n\n", gb_str(&c));
        break;
    case GU_STRUCT:
        /* a struct as a value: LEN { fields } */
        helper_proto(out, g, t, false, "");
        fprintf(out, "{\n    size_t mark = ember_enc_len_begin(e);\n\n"
                     "    %s" GU_SFX_ENCODE "(e, v);\n    ember_enc_len_end(e, mark);\n}\n\n", gb_str(&c));
        helper_proto(out, g, t, true, "");
        fprintf(out, "{\n    const uint8_t *end;\n\n"
                     "    if (ember_dec_enter_raw(d, &end) || %s" GU_SFX_DECODE "(d, v))\n"
                     "        return -1;\n    ember_dec_leave(d, end);\n    return 0;\n}\n\n",
                gb_str(&c));
        break;
    case GU_LIST:
        /* LEN { count, elements } */
        helper_proto(out, g, t, false, "");
        fputs("{\n    size_t mark = ember_enc_len_begin(e);\n\n"
              "    ember_enc_raw_varint(e, v->n);\n"
              "    for (uint32_t i = 0; i < v->n; i++)\n", out);
        enc_raw(out, "        ", g, t->elem, "v->items[i]");
        fputs("    ember_enc_len_end(e, mark);\n}\n\n", out);
        helper_proto(out, g, t, true, "");
        dec_raw(&ex, g, t->elem, "v->items[i]");
        fprintf(out, "{\n    const uint8_t *end;\n    void *items;\n\n"
                     "    if (ember_dec_list_begin_raw(d, %u, sizeof *v->items, &v->n, &items, &end))\n"
                     "        return -1;\n"
                     "    v->items = items;\n"
                     "    for (uint32_t i = 0; i < v->n; i++)\n"
                     "        if (%s)\n"
                     "            return -1;\n"
                     "    return ember_dec_list_end(d, end);\n}\n\n",
                gu_min_bytes(t->elem), gb_str(&ex));
        break;
    case GU_MAP:
        /* LEN { count, key value key value ... } */
        helper_proto(out, g, t, false, "");
        fputs("{\n    size_t mark = ember_enc_len_begin(e);\n\n"
              "    ember_enc_raw_varint(e, v->n);\n"
              "    for (uint32_t i = 0; i < v->n; i++) {\n", out);
        enc_raw(out, "        ", g, t->key, "v->keys[i]");
        enc_raw(out, "        ", g, t->elem, "v->vals[i]");
        fputs("    }\n    ember_enc_len_end(e, mark);\n}\n\n", out);
        helper_proto(out, g, t, true, "");
        dec_raw(&ex, g, t->key, "v->keys[i]");
        gb_puts(&ex, " ||\n            ");
        dec_raw(&ex, g, t->elem, "v->vals[i]");
        fprintf(out, "{\n    const uint8_t *end;\n    void *keys;\n\n"
                     "    if (ember_dec_list_begin_raw(d, %u, sizeof *v->keys, &v->n, &keys, &end))\n"
                     "        return -1;\n"
                     "    v->keys = keys;\n"
                     "    if (v->n && !(v->vals = ember_dec_alloc(d, (size_t)v->n * sizeof *v->vals)))\n"
                     "        return ember_dec_fail(d, \"out of memory\");\n"
                     "    for (uint32_t i = 0; i < v->n; i++)\n"
                     "        if (%s)\n"
                     "            return -1;\n"
                     "    return ember_dec_list_end(d, end);\n}\n\n",
                gu_min_bytes(t->key) + gu_min_bytes(t->elem), gb_str(&ex));
        break;
    case GU_PRIM:
        break;
    }
    gb_free(&c);
    gb_free(&ex);
}

/* ---- services ---- */

/* Fills the local `args` from the stub's parameters. An optional parameter
 * is a pointer, NULL when absent: an optional struct is pointed at as it is,
 * any other is copied and flagged present. */
static void emit_pack_args(FILE *out, const char *pre, const idl_method *me)
{
    gbuf scratch = {0};
    fprintf(out, "    %s" GU_SFX_ARGS " args;\n\n    %s" GU_SFX_ARGS GU_SFX_INIT "(&args);\n", pre, pre);
    for (const idl_field *p = me->params; p; p = p->next) {
        const char *n = gu_ident(p->name, true, &scratch);
        if (p->optional && gu_classify(p->type) == GU_STRUCT)
            fprintf(out, "    args.%s = %s;\n", n, n);
        else if (p->optional)
            fprintf(out, "    if (%s) {\n        args." GU_PFX_HAS "%s = true;\n"
                         "        args.%s = %s%s;\n    }\n",
                    n, p->name, n, gu_opt_as_is(p->type) ? "" : "*", n);
        else if (gu_by_pointer(p->type))
            fprintf(out, "    if (%s)\n        args.%s = *%s;\n", n, n, n);
        else
            fprintf(out, "    args.%s = %s;\n", n, n);
    }
    gb_free(&scratch);
}

/* The arguments as passed to a handler from the decoded `args`, one
 * string each into b (NUL-separated, n of them): absent optionals as NULL. */
static bool handler_args(gbuf *b, size_t *n, const idl_method *me)
{
    gbuf scratch = {0};
    bool any_optional = false;
    *n = 0;
    for (const idl_field *p = me->params; p; p = p->next, ++*n) {
        const char *nm = gu_ident(p->name, true, &scratch);
        any_optional |= p->optional;
        if (p->optional && gu_classify(p->type) == GU_STRUCT)
            gb_printf(b, "args->%s", nm);
        else if (p->optional)
            gb_printf(b, "args->" GU_PFX_HAS "%s ? %sargs->%s : NULL", p->name,
                      gu_opt_as_is(p->type) ? "" : "&", nm);
        else
            gb_printf(b, "%sargs->%s", gu_by_pointer(p->type) ? "&" : "", nm);
        gb_putc(b, '\0');
    }
    gb_free(&scratch);
    return any_optional;
}

/* Whether the handler gets every argument by value (no pointer into the
 * args struct): then the struct lives on the dispatch's stack, and what its
 * fields point to stays in the call's arena until the call is answered. */
static bool args_by_value(const idl_method *me)
{
    for (const idl_field *p = me->params; p; p = p->next)
        if (p->optional ? gu_classify(p->type) != GU_STRUCT && !gu_opt_as_is(p->type)
                        : gu_by_pointer(p->type))
            return false;
    return true;
}

/* The handler call "h->remote_m(call, args..., ud);" at this indent. */
static void emit_handler_call(FILE *out, const char *ind, const idl_method *me)
{
    gbuf a = {0}, head = {0};
    size_t n;
    bool wrap = handler_args(&a, &n, me);
    const char **p = idl_xcalloc(n + 2, sizeof *p);
    const char *s = a.p;
    p[0] = "call";
    for (size_t i = 0; i < n; i++, s += strlen(s) + 1)
        p[i + 1] = s;
    p[n + 1] = "ud";
    gb_printf(&head, "%sh->remote_%s", ind, me->name);
    if (wrap) {
        gu_proto(out, gb_str(&head), p, n + 2, ";");
    } else {
        /* one line, however long (as every release so far wrote it) */
        fprintf(out, "%s(", gb_str(&head));
        for (size_t i = 0; i < n + 2; i++)
            fprintf(out, "%s%s", i ? ", " : "", p[i]);
        fputs(");\n", out);
    }
    free(p);
    gb_free(&a);
    gb_free(&head);
}

/* The completion: decodes the reply or the raised error, calls the typed cb. */
static void emit_done(FILE *out, const char *pre, const idl_method *me)
{
    const char *nul = me->ret ? "NULL, " : "";
    bool decodes = me->ret || me->raises;
    gbuf c = {0};

    fprintf(out, "static void %s" GU_SFX_DONE "(const ember_outcome *o, ember_dec *reply,\n"
                 "%*sember_fn fn, void *ud)\n{\n"
                 "    %s" GU_SFX_CB " cb = (%s" GU_SFX_CB ")fn;\n"
                 "    ember_outcome out = *o;\n",
            pre, (int)(strlen(pre) + 18), "", pre, pre);
    if (!decodes)
        fputs("\n    (void)reply;\n", out);
    fputs("\n    if (!cb)\n        return;\n", out);
    if (!decodes) {
        /* Nothing to decode, but a newer peer may still raise an error
         * this version does not declare. */
        fputs("    if (o->status == EMBER_RAISED) {\n"
              "        /* an error this version of the method does not declare */\n"
              "        out.status = EMBER_FAILED;\n"
              "        out.message = \"the peer raised an undeclared error\";\n"
              "        out.error = NULL;\n"
              "        cb(&out, ud);\n"
              "        return;\n"
              "    }\n"
              "    cb(o, ud);\n}\n\n", out);
        return;
    }
    fputs("    switch (o->status) {\n    case EMBER_OK: {\n", out);
    /* The result lives as long as the callback: on the stack (what it
     * points to is in the reply's arena). */
    if (me->ret)
        fprintf(out, "        %s" GU_SFX_RESULT " res;\n\n"
                     "        if (%s" GU_SFX_RESULT GU_SFX_DECODE "(reply, &res))\n"
                     "            goto undecodable;\n"
                     "        cb(o, &res.ret, ud);\n"
                     "        return;\n    }\n", pre, pre);
    else
        fputs("        cb(o, ud);\n        return;\n    }\n", out);
    fputs("    case EMBER_RAISED:\n", out);
    if (me->raises) {
        fputs("        switch (o->error_id) {\n", out);
        for (const idl_name *r = me->raises; r; r = r->next) {
            if (!r->decl)
                continue;
            gb_clear(&c);
            gu_decl_cname(&c, r->decl);
            fprintf(out, "        case %s" GU_SFX_ID ": {\n"
                         "            %s *err = ember_dec_alloc(reply, sizeof *err);\n\n"
                         "            if (!err || %s" GU_SFX_DECODE "(reply, err))\n"
                         "                goto undecodable;\n"
                         "            out.error = err;\n"
                         "            cb(&out, %sud);\n"
                         "            return;\n        }\n",
                    gb_str(&c), gb_str(&c), gb_str(&c), nul);
        }
        fputs("        }\n", out);
    }
    fprintf(out, "        /* an error this version of the method does not declare */\n"
                 "        out.status = EMBER_FAILED;\n"
                 "        out.message = \"the peer raised an undeclared error\";\n"
                 "        out.error = NULL;\n"
                 "        cb(&out, %sud);\n"
                 "        return;\n"
                 "    default:\n"
                 "        cb(o, %sud);\n"
                 "        return;\n"
                 "    }\n"
                 "undecodable:\n"
                 "    out.status = EMBER_PROTOCOL;\n"
                 "    out.message = reply->why ? reply->why : \"the reply does not decode\";\n"
                 "    out.error = NULL;\n"
                 "    cb(&out, %sud);\n}\n\n", nul, nul, nul);
    gb_free(&c);
}

static void emit_method(FILE *out, const gen_ctx *g, const idl_decl *s, const idl_method *me)
{
    gbuf pre_b = {0}, tmp = {0};
    gu_method_prefix(&pre_b, g, s, me);
    const char *pre = gb_str(&pre_b);
    const char *enc_args = GU_NOTHING, *args_ptr = "NULL";

    fprintf(out, "/* ---- %s.%s ---- */\n\n", s->name, me->name);

    /* arguments (and result) as file-local structs */
    if (me->params) {
        fprintf(out, "typedef struct %s" GU_SFX_ARGS " {\n", pre);
        for (const idl_field *p = me->params; p; p = p->next) {
            gb_clear(&tmp);
            gbuf sc = {0};
            const char *n = gu_ident(p->name, true, &sc);
            if (p->optional && gu_classify(p->type) == GU_STRUCT) {
                /* the caller's own struct, or one in the call's arena */
                gu_cdecl_constptr(&tmp, g, p->type, n);
            } else {
                if (p->optional)
                    fprintf(out, "    bool " GU_PFX_HAS "%s;\n", p->name);
                gu_cdecl(&tmp, g, p->type, n);
            }
            fprintf(out, "    %s;\n", gb_str(&tmp));
            gb_free(&sc);
        }
        fprintf(out, "} %s" GU_SFX_ARGS ";\n\n", pre);
        gb_clear(&tmp);
        gb_printf(&tmp, "%s" GU_SFX_ARGS, pre);
        emit_struct_fns(out, g, gb_str(&tmp), me->params, true, true);
        enc_args = NULL;
        args_ptr = "&args";
    }
    if (me->ret) {
        idl_field f = { .tag = 1, .type = me->ret, .name = "ret" };
        gb_clear(&tmp);
        gu_cdecl(&tmp, g, me->ret, "ret");
        fprintf(out, "/* the reply payload: field 1 is the return value */\n"
                     "typedef struct %s" GU_SFX_RESULT " {\n    %s;\n} %s" GU_SFX_RESULT ";\n\n",
                pre, gb_str(&tmp), pre);
        gb_clear(&tmp);
        gb_printf(&tmp, "%s" GU_SFX_RESULT, pre);
        emit_struct_fns(out, g, gb_str(&tmp), &f, true, false);
    }
    gbuf encb = {0};
    if (!enc_args) {
        gb_printf(&encb, "%s" GU_SFX_ARGS GU_SFX_ENCODE, pre);
        enc_args = gb_str(&encb);
    }

    /* client side */
    if (!me->oneway)
        emit_done(out, pre, me);
    gu_signature(out, g, GU_SIG_STUB, s, me, NULL, "");
    fputs("{\n", out);
    if (me->params)
        emit_pack_args(out, pre, me);
    gbuf id = {0}, done = {0}, sv = {0};
    gb_printf(&id, "%s" GU_SFX_ID, pre);
    gb_putc(&sv, '&');
    gu_decl_cname(&sv, s);
    gb_puts(&sv, GU_SFX_SERVICE);
    gb_printf(&done, "%s" GU_SFX_DONE, pre);
    if (me->oneway) {
        const char *p[] = { "to", gb_str(&sv), gb_str(&id), enc_args, args_ptr };
        gu_proto(out, "    return ember_oneway_start", p, 5, ";");
    } else {
        const char *p[] = { "to", gb_str(&sv), gb_str(&id), enc_args, args_ptr,
                            gb_str(&done), "(ember_fn)cb", "ud", "opts" };
        gu_proto(out, "    return ember_call_start", p, 9, ";");
    }
    fputs("}\n\n", out);
    if (!me->oneway) {
        gu_signature(out, g, GU_SIG_BROADCAST, s, me, NULL, "");
        fputs("{\n", out);
        if (me->params)
            emit_pack_args(out, pre, me);
        const char *p[] = { "r", "filter", "fud", gb_str(&sv), gb_str(&id), enc_args,
                            args_ptr, gb_str(&done), "(ember_fn)cb", "ud", "opts" };
        gu_proto(out, "    return ember_root_broadcast", p, 11, ";");
        fputs("}\n\n", out);
    }

    /* server side */
    if (!me->oneway) {
        gu_signature(out, g, GU_SIG_REPLY, s, me, NULL, "");
        if (me->ret) {
            fprintf(out, "{\n    %s" GU_SFX_RESULT " res;\n\n    %s" GU_SFX_RESULT GU_SFX_INIT "(&res);\n", pre, pre);
            if (gu_by_pointer(me->ret))
                fputs("    if (ret)\n        res.ret = *ret;\n", out);
            else
                fputs("    res.ret = ret;\n", out);
            fprintf(out, "    return ember_call_reply(call, %s" GU_SFX_RESULT GU_SFX_ENCODE ", &res);\n}\n\n", pre);
        } else {
            fputs("{\n    return ember_call_reply(call, " GU_NOTHING ", NULL);\n}\n\n", out);
        }
        for (const idl_name *r = me->raises; r; r = r->next) {
            if (!r->decl)
                continue;
            gbuf c = {0}, mg = {0};
            gu_decl_cname(&c, r->decl);
            gu_decl_mangle(&mg, g, r->decl);
            gu_signature(out, g, GU_SIG_FAIL, s, me, r->decl, "");
            fprintf(out, "{\n    %s zero;\n\n"
                         "    if (!err) {\n        %s" GU_SFX_INIT "(&zero);\n        err = &zero;\n    }\n"
                         "    return ember_call_raise(call, %s" GU_SFX_ID ", " GU_PFX_RAISE "%s, err);\n}\n\n",
                    gb_str(&c), gb_str(&c), gb_str(&c), gb_str(&mg));
            gb_free(&c);
            gb_free(&mg);
        }
    }

    gbuf hc = {0};
    gu_decl_cname(&hc, s);
    fprintf(out, "static int %s" GU_SFX_DISPATCH "(ember_call *call, ember_dec *d,\n"
                 "%*sconst void *handlers, void *ud)\n{\n"
                 "    const %s" GU_SFX_HANDLERS " *h = handlers;\n",
            pre, (int)(strlen(pre) + 21), "", gb_str(&hc));
    if (me->params && args_by_value(me))
        fprintf(out, "    %s" GU_SFX_ARGS " local, *args = &local;\n\n"
                     "    if (%s" GU_SFX_ARGS GU_SFX_DECODE "(d, args))\n        return -1;\n", pre, pre);
    else if (me->params)
        fprintf(out, "    %s" GU_SFX_ARGS " *args = ember_dec_alloc(d, sizeof *args);\n\n"
                     "    if (!args)\n        return ember_dec_fail(d, \"out of memory\");\n"
                     "    if (%s" GU_SFX_ARGS GU_SFX_DECODE "(d, args))\n        return -1;\n", pre, pre);
    else
        fputs("\n    (void)d;\n", out);
    if (me->oneway) {
        fprintf(out, "    if (h->remote_%s)\n", me->name);
        emit_handler_call(out, "        ", me);
    } else {
        fprintf(out, "    if (!h->remote_%s) {\n"
                     "        ember_call_fail(call, \"method not implemented\");\n"
                     "        return 0;\n    }\n", me->name);
        emit_handler_call(out, "    ", me);
    }
    fputs("    return 0;\n}\n\n", out);
    gb_free(&hc);
    gb_free(&id);
    gb_free(&done);
    gb_free(&sv);
    gb_free(&encb);
    gb_free(&pre_b);
    gb_free(&tmp);
}

/* params_<method prefix>[]: the run-time parameter table of each method
 * that has parameters. */
static void emit_param_tables(FILE *out, const gen_ctx *g, const idl_decl *s)
{
    gbuf pre = {0};
    for (const idl_method *me = s->methods; me; me = me->next) {
        gb_clear(&pre);
        gu_method_prefix(&pre, g, s, me);
        if (me->raises)
            gen_types_raises(out, g, gb_str(&pre), me);
        if (!me->params)
            continue;
        fprintf(out, "static const ember_field_desc " GU_PFX_PARAMS "%s[] = {\n", gb_str(&pre));
        gen_types_fields(out, g, me->params);
        fputs("};\n", out);
    }
    gb_free(&pre);
    fputc('\n', out);
}

static void emit_method_desc(FILE *out, const gen_ctx *g, const idl_decl *s,
                             const idl_method *me)
{
    gbuf pre = {0}, res = {0};
    gu_method_prefix(&pre, g, s, me);
    size_t np = 0;
    for (const idl_field *p = me->params; p; p = p->next)
        np++;
    if (me->ret)
        gen_types_ref(&res, g, me->ret);
    const char *pb = s->pb_dispatch ? s->pb_dispatch : me->pb_name ? me->pb_name : me->name;
    size_t nr = 0;
    for (const idl_name *e = me->raises; e; e = e->next)
        nr += e->decl != NULL;
    fprintf(out, "    { %s" GU_SFX_ID ", \"%s\", %s, %s" GU_SFX_DISPATCH ",\n"
                 "      \"%s\", %s, %s%s, %zu, %s, %s%s, %zu },\n",
            gb_str(&pre), me->name, me->oneway ? "true" : "false", gb_str(&pre),
            pb, s->pb_dispatch ? "true" : "false", np ? GU_PFX_PARAMS : "NULL",
            np ? gb_str(&pre) : "", np, me->ret ? gb_str(&res) : "NULL",
            me->raises ? GU_PFX_RAISES : "NULL", me->raises ? gb_str(&pre) : "", nr);
    gb_free(&pre);
    gb_free(&res);
}

static void emit_service(FILE *out, const gen_ctx *g, const idl_decl *s)
{
    gbuf c = {0};
    gu_decl_cname(&c, s);
    const char *cn = gb_str(&c);
    size_t n = 0;

    fprintf(out, "/* ---- service %s.%s ---- */\n\n", g->mod, s->name);
    for (const idl_method *me = s->methods; me; me = me->next, n++)
        emit_method(out, g, s, me);

    if (n) {
        emit_param_tables(out, g, s);
        fprintf(out, "static const ember_method_desc %s" GU_SFX_METHODS "[] = {\n", cn);
        for (const idl_method *me = s->methods; me; me = me->next)
            emit_method_desc(out, g, s, me);
        fputs("};\n\n", out);
    }
    gbuf disp = {0};
    if (s->pb_dispatch)
        gb_printf(&disp, "\"%s\"", s->pb_dispatch);
    fprintf(out, "const ember_service_desc %s" GU_SFX_SERVICE " = {\n"
                 "    \"%s.%s\", %s" GU_SFX_SERVICE_ID ", UINT64_C(0x%016llx), %zu, %s%s, %s\n};\n\n",
            cn, g->mod, s->name, cn, (unsigned long long)s->fingerprint, n,
            n ? cn : "NULL", n ? GU_SFX_METHODS : "", s->pb_dispatch ? gb_str(&disp) : "NULL");
    gb_free(&disp);
    gu_signature(out, g, GU_SIG_EXPORT, s, NULL, NULL, "");
    fprintf(out, "{\n    return ember_exports_add(ex, &%s" GU_SFX_SERVICE ", h, ud);\n}\n\n", cn);
    gu_signature(out, g, GU_SIG_LOCAL, s, NULL, NULL, "");
    fprintf(out, "{\n    return ember_ref_local(&%s" GU_SFX_SERVICE ", h, ud);\n}\n\n", cn);
    gb_free(&c);
}

int gen_source(const idl_module *m, const char *header_name, FILE *out)
{
    gen_ctx g;
    gbuf base = {0};
    gen_ctx_init(&g, m);
    gu_basename(&base, m->path ? m->path : g.mod);

    fprintf(out, "/* %s.c — generated by idlc from %s.idl. Do not edit. */\n"
                 "#include \"%s\"\n\n", gb_str(&base), gb_str(&base), header_name);

    if (g.nvals || g.nraised || g.need_empty) {
        fputs("/* ---- value helpers: one encoder/decoder pair per nested type ---- */\n\n", out);
        for (size_t i = 0; i < g.nvals; i++) {
            helper_proto(out, &g, g.vals[i], false, ";");
            helper_proto(out, &g, g.vals[i], true, ";");
        }
        if (g.nvals)
            fputc('\n', out);
        if (g.need_empty)
            fputs("/* calls without arguments, replies without a value */\n"
                  "static void " GU_NOTHING "(ember_enc *e, const void *value)\n"
                  "{\n    (void)e;\n    (void)value;\n}\n\n", out);
        for (size_t i = 0; i < g.nraised; i++) {
            gbuf c = {0}, mg = {0};
            gu_decl_cname(&c, g.raised[i]);
            gu_decl_mangle(&mg, &g, g.raised[i]);
            fprintf(out, "static void " GU_PFX_RAISE "%s(ember_enc *e, const void *value)\n"
                         "{\n    %s" GU_SFX_ENCODE "(e, value);\n}\n\n", gb_str(&mg), gb_str(&c));
            gb_free(&c);
            gb_free(&mg);
        }
    }

    bool any = false;
    for (const idl_decl *d = m->decls; d; d = d->next) {
        if (d->kind != IDL_ENUM)
            continue;
        if (!any)
            fputs("/* ---- enums ---- */\n\n", out);
        any = true;
        fprintf(out, "const char *%s_%s" GU_SFX_NAME "(%s_%s v)\n{\n    switch (v) {\n",
                g.mod, d->name, g.mod, d->name);
        for (const idl_enumerator *e = d->enumerators; e; e = e->next)
            fprintf(out, "    case %s_%s_%s:\n        return \"%s\";\n",
                    g.mod, d->name, e->name, e->name);
        fputs("    }\n    return NULL;\n}\n\n", out);
    }

    if (g.nstructs)
        fputs("/* ---- structs and errors ---- */\n\n", out);
    for (size_t i = 0; i < g.nstructs; i++) {
        gbuf c = {0};
        gu_decl_cname(&c, g.structs[i]);
        emit_struct_fns(out, &g, gb_str(&c), g.structs[i]->fields, false, false);
        gb_free(&c);
    }

    if (g.nvals)
        fputs("/* ---- value helpers ---- */\n\n", out);
    for (size_t i = 0; i < g.nvals; i++)
        emit_helper(out, &g, g.vals[i]);

    gen_types_emit(out, &g, m);
    for (const idl_decl *d = m->decls; d; d = d->next)
        if (d->kind == IDL_SERVICE)
            emit_service(out, &g, d);

    gb_free(&base);
    gen_ctx_free(&g);
    return ferror(out) ? -1 : 0;
}
