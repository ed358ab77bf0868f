/*
 * ast.h — the syntax tree idlc's parser builds and its later passes read.
 *
 * Every node lives in one arena (idl_arena) freed once at exit. Lists are
 * singly linked in source order through `next`. The parser fills in what it
 * sees; fields marked "sema" are filled by the semantic pass (sema.c).
 */
#ifndef IDLC_AST_H
#define IDLC_AST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- arena ---- */

typedef struct idl_arena idl_arena;

idl_arena *idl_arena_new(void);
void idl_arena_free(idl_arena *a);
/* Zeroed memory; aborts with a message when out of memory. */
void *idl_alloc(idl_arena *a, size_t size);

/* Heap memory outside the arena (tables, growable buffers): like realloc
 * and calloc, but idlc stops with "out of memory" instead of returning NULL. */
void *idl_xrealloc(void *p, size_t size);
void *idl_xcalloc(size_t n, size_t size);
char *idl_strndup(idl_arena *a, const char *s, size_t n);
char *idl_strdup(idl_arena *a, const char *s);

/* ---- locations ---- */

typedef struct idl_loc {
    const char *file;   /* path as given or resolved; arena-owned */
    int line;           /* 1-based */
    int col;            /* 1-based, in bytes */
    int len;            /* length of the token underlined by a caret (>= 1) */
} idl_loc;

/* ---- types ---- */

typedef enum idl_type_kind {
    IDL_BOOL, IDL_I8, IDL_I16, IDL_I32, IDL_I64,
    IDL_U8, IDL_U16, IDL_U32, IDL_U64, IDL_F32, IDL_F64,
    IDL_STRING, IDL_BYTES,
    IDL_LIST,           /* elem */
    IDL_MAP,            /* key, elem */
    IDL_REF,            /* ref<name>: decl is a service (sema) */
    IDL_NAMED           /* name: decl is an enum, struct or error (sema) */
} idl_type_kind;

struct idl_decl;

typedef struct idl_type {
    idl_type_kind kind;
    idl_loc loc;
    struct idl_type *elem;      /* LIST, MAP value */
    struct idl_type *key;       /* MAP key */
    const char *qual;           /* REF/NAMED: "common" in common.Pos, else NULL */
    const char *name;           /* REF/NAMED: "Pos" */
    struct idl_decl *decl;      /* REF/NAMED: what the name means (sema) */
} idl_type;

/* ---- literals (const values) ---- */

typedef enum idl_lit_kind { IDL_LIT_INT, IDL_LIT_FLOAT, IDL_LIT_STRING, IDL_LIT_BOOL } idl_lit_kind;

typedef struct idl_literal {
    idl_lit_kind kind;
    idl_loc loc;
    bool negative;      /* INT: a leading '-' */
    uint64_t u;         /* INT: magnitude (overflow beyond 2^64-1 flagged by the lexer) */
    bool overflow;      /* INT: the magnitude did not fit 64 bits */
    double f;           /* FLOAT */
    const char *s;      /* STRING: unescaped bytes, NUL-terminated */
    size_t slen;        /* STRING: length (may contain escaped NULs) */
    bool b;             /* BOOL */
} idl_literal;

/* ---- members ---- */

/* A struct/error field or a method parameter. */
typedef struct idl_field {
    idl_loc loc;            /* of the name */
    idl_loc tag_loc;
    uint64_t tag;           /* as written; range-checked by sema */
    bool optional;          /* `optional`: the field or parameter may be absent */
    idl_type *type;
    const char *name;
    const char *doc;        /* /// comment text, or NULL */
    struct idl_field *next;
} idl_field;

typedef struct idl_enumerator {
    idl_loc loc;
    const char *name;
    idl_literal value;      /* INT */
    const char *doc;
    struct idl_enumerator *next;
} idl_enumerator;

/* A name in a raises (...) list. */
typedef struct idl_name {
    idl_loc loc;
    const char *qual;
    const char *name;
    struct idl_decl *decl;  /* sema: must be an error */
    struct idl_name *next;
} idl_name;

/* An annotation: @name("value") or @name(key = "value"). */
typedef struct idl_annot {
    idl_loc loc;            /* of the name */
    const char *name;       /* "pb" */
    const char *key;        /* "dispatch", or NULL when positional */
    idl_loc key_loc;
    const char *value;      /* unescaped, NUL-terminated */
    size_t value_len;       /* may exceed strlen(value) (escaped NUL) */
    idl_loc value_loc;
} idl_annot;

typedef struct idl_method {
    idl_loc loc;            /* of the name */
    idl_loc id_loc;
    const char *name;
    bool oneway;
    idl_type *ret;          /* NULL for void and oneway */
    idl_field *params;
    idl_name *raises;
    uint64_t id;            /* as written; range-checked by sema */
    const char *doc;
    idl_annot *annot;       /* @pb("name"), or NULL */
    const char *pb_name;    /* sema: the name PB callers use (default: name) */
    struct idl_method *next;
} idl_method;

/* ---- declarations ---- */

typedef enum idl_decl_kind { IDL_CONST, IDL_ENUM, IDL_STRUCT, IDL_ERROR, IDL_SERVICE } idl_decl_kind;

struct idl_module;

typedef struct idl_decl {
    idl_decl_kind kind;
    idl_loc loc;                /* of the name */
    const char *name;
    const char *doc;
    struct idl_module *module;  /* the module declaring it */
    /* IDL_CONST */
    idl_type *const_type;
    idl_literal const_value;
    /* IDL_ENUM */
    idl_enumerator *enumerators;
    /* IDL_STRUCT, IDL_ERROR */
    idl_field *fields;
    /* IDL_SERVICE */
    idl_method *methods;
    idl_annot *annot;           /* @pb(dispatch = "..."), or NULL */
    const char *pb_dispatch;    /* sema: PB command-mode message, or NULL (by name) */
    uint64_t fingerprint;       /* sema: FNV-1a 64 of the canonical form */
    uint32_t wire_id;           /* IDL_ERROR, IDL_SERVICE, sema: FNV-1a 32 of
                                   "module.Name": the error or service id */
    struct idl_decl *next;
    /* Added by the front end: the parser recovered from a syntax error inside
     * this enum or constant, so its body is lost; sema checks only its name.
     * (A struct, error or service just loses the member that failed.) */
    bool syntax_error;
} idl_decl;

typedef struct idl_import {
    idl_loc loc;
    const char *path;           /* as written in the import, unescaped */
    size_t path_len;            /* its length: more than strlen(path) when an
                                 * escape put a NUL in it (load.c rejects that) */
    struct idl_module *module;  /* resolved (main.c / sema) */
    struct idl_import *next;
} idl_import;

typedef struct idl_module {
    const char *name;           /* from `module NAME;` (NULL if missing) */
    idl_loc loc;
    const char *path;           /* the file */
    const char *doc;
    idl_import *imports;
    idl_decl *decls;
    struct idl_module *next;    /* all loaded modules, in load order */
    bool name_clash_reported;   /* sema reported its name as clashing with
                                 * an import's (the run-wide check skips it) */
} idl_module;

#endif
