/*
 * gen_util.h — what the header and source generators share: a growable
 * string, a string set, C names and C types for IDL types, and the per-module
 * inventory of value types (containers, nested structs, enums) that both
 * generators walk in the same order.
 */
#ifndef IDLC_GEN_UTIL_H
#define IDLC_GEN_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ast.h"

/* ---- growable string ---- */

typedef struct gbuf {
    char *p;
    size_t n, cap;
} gbuf;

void gb_putc(gbuf *b, char c);
void gb_puts(gbuf *b, const char *s);
void gb_printf(gbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void gb_clear(gbuf *b);
void gb_free(gbuf *b);
/* Never NULL. */
const char *gb_str(const gbuf *b);

/* ---- string set (open addressing; keys are copied) ---- */

typedef struct strset {
    char **slots;
    size_t cap, n;
} strset;

/* true if key was not in the set (and is now). */
bool strset_add(strset *s, const char *key);
bool strset_has(const strset *s, const char *key);
void strset_free(strset *s);

/* ---- the fixed parts of generated names ----
 * Every suffix and prefix the generators add to a C name, spelled once:
 * gen_h.c, gen_c.c and gu_signature write them, cnames.c checks them. */

#define GU_SFX_INIT      "_init"        /* struct, argument and result structs */
#define GU_SFX_ENCODE    "_encode"
#define GU_SFX_DECODE    "_decode"
#define GU_SFX_ID        "_ID"          /* error id, method id */
#define GU_SFX_NAME      "_name"        /* enum value -> name */
#define GU_SFX_ARGS      "_args"        /* per method */
#define GU_SFX_RESULT    "_result"
#define GU_SFX_CB        "_cb"
#define GU_SFX_DONE      "_done"
#define GU_SFX_BROADCAST "_broadcast"
#define GU_SFX_REPLY     "_reply"
#define GU_SFX_FAIL      "_fail_"       /* followed by the error's mangle */
#define GU_SFX_DISPATCH  "_dispatch"
#define GU_SFX_SERVICE   "_service"     /* per service */
#define GU_SFX_SERVICE_ID "_SERVICE_ID" /* the service's wire id */
#define GU_SFX_HANDLERS  "_handlers"
#define GU_SFX_EXPORT    "_export"
#define GU_SFX_LOCAL     "_local"
#define GU_SFX_METHODS   "_methods"
#define GU_PFX_HAS       "has_"         /* presence flag of an optional member */
#define GU_PFX_ENC       "enc_"         /* static value helpers, + mangle */
#define GU_PFX_DEC       "dec_"
#define GU_PFX_RAISE     "raise_"       /* static raise helper, + error mangle */
#define GU_NOTHING       "enc_nothing"  /* the empty-payload encoder */
#define GU_PFX_TYPE      "type_"        /* static run-time type table, + mangle */
#define GU_PFX_FIELDS    "fields_"      /* static field table of a struct, + mangle */
#define GU_PFX_PARAMS    "params_"      /* static parameter table, + method prefix */
#define GU_PFX_RAISES    "raises_"      /* static raises table, + method prefix */

/* ---- value types of a module ---- */

/* How a type is encoded: primitives go straight to codec.h, the others
 * through a static enc_<mangle>/dec_<mangle> pair in the generated .c. */
typedef enum gu_class { GU_PRIM, GU_ENUM, GU_STRUCT, GU_LIST, GU_MAP } gu_class;

typedef struct gen_ctx {
    const idl_module *m;
    const char *mod;            /* m->name: the C prefix without '_' */
    const idl_type **vals;      /* non-primitive value types, inner first */
    size_t nvals, capvals;
    const idl_decl **raised;    /* errors some method raises, first use order */
    size_t nraised, capraised;
    const idl_decl **structs;   /* structs and errors, by-value deps first */
    size_t nstructs;
    bool need_empty;            /* some call has no arguments or no result */
} gen_ctx;

int gen_ctx_init(gen_ctx *g, const idl_module *m);
void gen_ctx_free(gen_ctx *g);

gu_class gu_classify(const idl_type *t);
/* The declaring module's name of a named/ref type. */
const char *gu_decl_mod(const idl_decl *d);
/* "Pos", "common_Vec", "list_u32", "map_string_list_u32", "ref_Observer". */
void gu_mangle(gbuf *b, const gen_ctx *g, const idl_type *t);
/* C type, e.g. "uint32_t", "const char *", "game_list_u32". */
void gu_ctype(gbuf *b, const gen_ctx *g, const idl_type *t);
/* "uint32_t name" / "const char *name". */
void gu_cdecl(gbuf *b, const gen_ctx *g, const idl_type *t, const char *name);
/* "const T *name" with the const where it belongs for pointer types. */
void gu_cdecl_constptr(gbuf *b, const gen_ctx *g, const idl_type *t, const char *name);
/* Parameters of this type are passed as const T * (structs, lists, maps). */
bool gu_by_pointer(const idl_type *t);
/* An optional parameter of this type is passed as its own C type, already a
 * pointer, NULL when absent (string: const char *, ref: ember_ref *); any
 * other optional parameter is passed as const T *, NULL when absent. */
bool gu_opt_as_is(const idl_type *t);
/* "const uint32_t *name", "const char *name", "const game_Pos *name": a
 * parameter in stubs, broadcasts and handlers, by the passing rule. */
void gu_param_cdecl(gbuf *b, const gen_ctx *g, const idl_field *p, const char *name);
/* Primitive codec suffix: "u32", "i8", "bool", "f64", "string", "bytes", "ref". */
const char *gu_prim_sfx(const idl_type *t);
/* Wire type constant, e.g. "EMBER_WT_VARINT". */
const char *gu_wire(const idl_type *t);
/* Least bytes one encoded element of this type takes (list_begin). */
unsigned gu_min_bytes(const idl_type *t);
/* Needs an initialiser beyond zero bytes ("" for strings, nested init). */
bool gu_needs_init(const idl_type *t);

/* The C identifier for a field (param false: C keywords get a trailing '_')
 * or a parameter (param true: so do the names the generated functions give
 * their own parameters and locals). May return scratch's text. */
const char *gu_ident(const char *name, bool param, gbuf *scratch);

/* "game_Pos" for a struct, enum, error or service declaration. */
void gu_decl_cname(gbuf *b, const idl_decl *d);
/* "Pos" in its own module, "common_Vec" when imported. */
void gu_decl_mangle(gbuf *b, const gen_ctx *g, const idl_decl *d);
/* "game_Game_move". */
void gu_method_prefix(gbuf *b, const gen_ctx *g, const idl_decl *svc,
                      const idl_method *me);

/* The signatures the header declares and the source defines. */
typedef enum gu_sig {
    GU_SIG_CB,          /* typedef void (*P_cb)(outcome, ret, ud) */
    GU_SIG_STUB,        /* P(to, params, cb, ud, opts) / oneway P(to, params) */
    GU_SIG_BROADCAST,   /* P_broadcast(r, filter, fud, params, cb, ud, opts) */
    GU_SIG_REPLY,       /* P_reply(call, ret) */
    GU_SIG_FAIL,        /* P_fail_<Error>(call, err) */
    GU_SIG_HANDLER,     /* void (*remote_m)(call, params, ud), indented */
    GU_SIG_EXPORT,      /* S_export(ex, h, ud) */
    GU_SIG_LOCAL        /* S_local(h, ud) */
} gu_sig;
void gu_signature(FILE *out, const gen_ctx *g, gu_sig kind, const idl_decl *svc,
                  const idl_method *me, const idl_decl *err, const char *tail);

/* Writes `doc` as /// lines at the given indent (nothing if NULL). */
void gu_doc(FILE *out, const char *indent, const char *doc);

/* Writes "<head>(<p0>, <p1>, ...)<tail>\n", wrapping at 80 columns with
 * continuation lines aligned after the parenthesis. */
void gu_proto(FILE *out, const char *head, const char *const *params, size_t n,
              const char *tail);

/* File basename without directories and without ".idl" (main.c's output_stem:
 * the name of the outputs, "x.txt" writes x.txt.h). */
void gu_basename(gbuf *b, const char *path);

#endif
