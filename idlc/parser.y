/*
 * parser.y — the IDL grammar. It builds the AST and nothing else: names are
 * resolved and every rule of the language is checked later, in sema.c.
 *
 * Error recovery: inside a struct, error or service body the parser skips to
 * the next ';' or the closing '}'; inside an enum body, to the '}'; at top
 * level, to the next declaration keyword. In a struct, error or service the
 * member that failed to parse is dropped and its well-formed siblings stay,
 * so sema still checks them (dropping a member cannot make another one
 * wrong: nothing refers to a field or method by name). An enum or constant
 * the parser had to recover inside has lost its body, so it is marked
 * syntax_error and sema checks only its name.
 */
%require "3.8"
%define api.pure full
%define parse.error custom
%define api.location.type {idl_yyltype}
%locations
%expect 0
%param {yyscan_t scanner}
%parse-param {idl_parse *P}
/* An empty file's end of input is at 1:1, like any other token's place. */
%initial-action { @$ = (idl_yyltype){ 1, 1, 1, 1, NULL }; }

%code requires {
#include <stdbool.h>
#include <stddef.h>

#include "ast.h"
#include "diag.h"

#ifndef YY_TYPEDEF_YY_SCANNER_T
#define YY_TYPEDEF_YY_SCANNER_T
typedef void *yyscan_t;
#endif

/* A bison location plus the /// doc comment that preceded the token. A
 * nonterminal inherits the doc of its first token, so a rule reads the doc
 * of whatever it builds from @1. */
typedef struct idl_yyltype {
    int first_line, first_column, last_line, last_column;
    const char *doc;
} idl_yyltype;

#define YYLLOC_DEFAULT(Cur, Rhs, N)                                    \
    do {                                                               \
        if (N) {                                                       \
            (Cur).first_line = YYRHSLOC(Rhs, 1).first_line;            \
            (Cur).first_column = YYRHSLOC(Rhs, 1).first_column;        \
            (Cur).last_line = YYRHSLOC(Rhs, N).last_line;              \
            (Cur).last_column = YYRHSLOC(Rhs, N).last_column;          \
            (Cur).doc = YYRHSLOC(Rhs, 1).doc;                          \
        } else {                                                       \
            (Cur).first_line = (Cur).last_line = YYRHSLOC(Rhs, 0).last_line;   \
            (Cur).first_column = (Cur).last_column = YYRHSLOC(Rhs, 0).last_column; \
            (Cur).doc = NULL;                                          \
        }                                                              \
    } while (0)

/* State shared by the lexer and the parser for one file. */
typedef struct idl_parse {
    idl_arena *arena;
    idl_diag *diag;
    const char *file;       /* arena-owned path used in locations */
    idl_module *mod;        /* what the parse fills in */
    int line, col;          /* lexer position of the next byte */
    char *doc;              /* pending /// text (malloc'd), attached to the next token */
    size_t doc_len, doc_cap;
    bool doc_pending;
    bool lex_stopped;       /* unterminated comment: the rest of the file is gone */
    bool after_lex_error;   /* the token just returned follows a lexical error */
    bool lex_error_seen;    /* a lexical error since the last token */
    bool too_deep;          /* the parser stack overflowed */
    idl_decl *last_decl;    /* tail of mod->decls */
    idl_yyltype prev_tok, cur_tok;  /* the last two tokens, for "expected ';'" */
    idl_import *last_import;
} idl_parse;

/* Lists are built in source order through a head/tail pair. */
typedef struct { idl_field *head, *tail; } idl_field_list;
typedef struct { idl_method *head, *tail; } idl_method_list;
typedef struct { idl_enumerator *head, *tail; } idl_enum_list;
typedef struct { idl_name *head, *tail; } idl_name_list;
}

%code provides {
int yylex(YYSTYPE *yylval, YYLTYPE *yylloc, yyscan_t scanner);
/* Parses one file's text into a module (lexer.l holds the driver). Errors go
 * to P->diag; the module is returned even when it is incomplete. */
idl_module *idl_parse_text(idl_arena *arena, idl_diag *diag, const char *path,
                           const char *text, size_t len);
idl_loc idl_yyloc(const idl_parse *P, const YYLTYPE *l);
}

%code {
#include <string.h>

static void yyerror(YYLTYPE *loc, yyscan_t scanner, idl_parse *P, const char *msg);

#define L(at) idl_yyloc(P, &(at))
#define NEW(T) ((T *)idl_alloc(P->arena, sizeof(T)))

static idl_type *mk_type(idl_parse *P, idl_type_kind k, YYLTYPE at)
{
    idl_type *t = NEW(idl_type);
    t->kind = k;
    t->loc = L(at);
    return t;
}

static idl_decl *mk_decl(idl_parse *P, idl_decl_kind k, const YYLTYPE *kw, char *name, YYLTYPE at)
{
    idl_decl *d = NEW(idl_decl);
    d->kind = k;
    d->name = name;
    d->loc = L(at);
    d->doc = kw->doc;
    d->module = P->mod;
    return d;
}

static idl_literal neg(idl_literal v)
{
    v.negative = !v.negative;
    if (v.kind == IDL_LIT_FLOAT)
        v.f = -v.f;
    return v;
}
}

%union {
    char *str;
    idl_literal lit;
    idl_type *type;
    idl_decl *decl;
    idl_field *field;
    idl_method *method;
    idl_annot *annot;
    idl_enumerator *enumerator;
    idl_name *name;
    idl_field_list fields;
    idl_method_list methods;
    idl_enum_list enums;
    idl_name_list names;
}

%token <str> IDENT
%token <lit> INT FLOAT STRING
%token MODULE "module" IMPORT "import" CONST "const" ENUM "enum" STRUCT "struct"
       ERROR_KW "error" SERVICE "service" OPTIONAL "optional" VOID "void"
       ONEWAY "oneway" RAISES "raises" LIST "list" MAP "map" REF "ref"
       TRUE "true" FALSE "false"
       BOOL "bool" I8 "i8" I16 "i16" I32 "i32" I64 "i64" U8 "u8" U16 "u16"
       U32 "u32" U64 "u64" F32 "f32" F64 "f64" STRING_KW "string" BYTES "bytes"

%type <type> type
%type <decl> decl const_decl enum_decl struct_decl error_decl service_decl
%type <lit> literal sint
%type <field> field param
%type <fields> fields params params_opt
%type <method> method method_core
%type <annot> annotation
%type <methods> methods
%type <enumerator> enumerator
%type <enums> enumerators
%type <name> name
%type <names> names raises_opt

%%

file:
    module_clause items
  ;

module_clause:
    MODULE IDENT ';'    { P->mod->name = $2; P->mod->loc = L(@2); P->mod->doc = @1.doc; }
  | error
  ;

/* Imports are accepted anywhere so that one misplaced import is a clear
 * semantic error ("imports must come before all declarations") rather than
 * a syntax error that throws away the declaration after it. */
items:
    %empty
  | items import
  | items decl {
        if ($2) {
            if (P->last_decl)
                P->last_decl->next = $2;
            else
                P->mod->decls = $2;
            P->last_decl = $2;
        }
    }
  | items error
  ;

import:
    IMPORT STRING ';' {
        idl_import *im = NEW(idl_import);
        im->loc = L(@2);
        im->path = $2.s;
        im->path_len = $2.slen;
        if (P->last_import)
            P->last_import->next = im;
        else
            P->mod->imports = im;
        P->last_import = im;
    }
  ;

decl:
    const_decl | enum_decl | struct_decl | error_decl | service_decl
  | annotation service_decl {
        $$ = $2;
        $$->annot = $1;
        if (!$$->doc)
            $$->doc = @1.doc;
    }
  ;

/* @pb("name") on a method, @pb(dispatch = "callTarget") on a service. */
annotation:
    '@' IDENT '(' STRING ')' {
        $$ = NEW(idl_annot);
        $$->loc = L(@2);
        $$->name = $2;
        $$->value = $4.s;
        $$->value_len = $4.slen;
        $$->value_loc = L(@4);
    }
  | '@' IDENT '(' IDENT '=' STRING ')' {
        $$ = NEW(idl_annot);
        $$->loc = L(@2);
        $$->name = $2;
        $$->key = $4;
        $$->key_loc = L(@4);
        $$->value = $6.s;
        $$->value_len = $6.slen;
        $$->value_loc = L(@6);
    }
  ;

const_decl:
    CONST type IDENT '=' literal ';' {
        $$ = mk_decl(P, IDL_CONST, &@1, $3, @3);
        $$->const_type = $2;
        $$->const_value = $5;
    }
  | CONST type IDENT '=' error {
        $$ = mk_decl(P, IDL_CONST, &@1, $3, @3);
        $$->const_type = $2;
        $$->syntax_error = true;
    }
  ;

literal:
    sint
  | FLOAT           { $$ = $1; }
  | '-' FLOAT       { $$ = neg($2); $$.loc = L(@$); }
  | '+' FLOAT       { $$ = $2; $$.loc = L(@$); }
  | STRING          { $$ = $1; }
  | TRUE            { memset(&$$, 0, sizeof $$); $$.kind = IDL_LIT_BOOL; $$.b = true; $$.loc = L(@1); }
  | FALSE           { memset(&$$, 0, sizeof $$); $$.kind = IDL_LIT_BOOL; $$.b = false; $$.loc = L(@1); }
  ;

sint:
    INT             { $$ = $1; }
  | '-' INT         { $$ = neg($2); $$.loc = L(@$); }
  | '+' INT         { $$ = $2; $$.loc = L(@$); }
  ;

enum_decl:
    ENUM IDENT '{' enumerators opt_comma '}' {
        $$ = mk_decl(P, IDL_ENUM, &@1, $2, @2);
        $$->enumerators = $4.head;
    }
  | ENUM IDENT '{' error '}' {
        $$ = mk_decl(P, IDL_ENUM, &@1, $2, @2);
        $$->syntax_error = true;
        yyerrok;
    }
  ;

opt_comma: %empty | ',' ;

enumerators:
    enumerator                  { $$.head = $$.tail = $1; }
  | enumerators ',' enumerator  { $$ = $1; $$.tail->next = $3; $$.tail = $3; }
  ;

enumerator:
    IDENT '=' sint {
        $$ = NEW(idl_enumerator);
        $$->loc = L(@1);
        $$->name = $1;
        $$->value = $3;
        $$->doc = @1.doc;
    }
  ;

struct_decl:
    STRUCT IDENT '{' fields '}' {
        $$ = mk_decl(P, IDL_STRUCT, &@1, $2, @2);
        $$->fields = $4.head;
    }
  | STRUCT IDENT '{' fields error '}' {
        $$ = mk_decl(P, IDL_STRUCT, &@1, $2, @2);
        $$->fields = $4.head;
        yyerrok;
    }
  ;

error_decl:
    ERROR_KW IDENT '{' fields '}' {
        $$ = mk_decl(P, IDL_ERROR, &@1, $2, @2);
        $$->fields = $4.head;
    }
  | ERROR_KW IDENT '{' fields error '}' {
        $$ = mk_decl(P, IDL_ERROR, &@1, $2, @2);
        $$->fields = $4.head;
        yyerrok;
    }
  ;

fields:
    %empty              { $$.head = $$.tail = NULL; }
  | fields field {
        $$ = $1;
        if ($$.tail)
            $$.tail->next = $2;
        else
            $$.head = $2;
        $$.tail = $2;
    }
  | fields error ';'    { $$ = $1; yyerrok; }   /* drops just this field */
  ;

field:
    INT ':' type IDENT ';' {
        $$ = NEW(idl_field);
        $$->tag = $1.overflow ? UINT64_MAX : $1.u;
        $$->tag_loc = L(@1);
        $$->type = $3;
        $$->name = $4;
        $$->loc = L(@4);
        $$->doc = @1.doc;
    }
  | INT ':' OPTIONAL type IDENT ';' {
        $$ = NEW(idl_field);
        $$->tag = $1.overflow ? UINT64_MAX : $1.u;
        $$->tag_loc = L(@1);
        $$->optional = true;
        $$->type = $4;
        $$->name = $5;
        $$->loc = L(@5);
        $$->doc = @1.doc;
    }
  ;

service_decl:
    SERVICE IDENT '{' methods '}' {
        $$ = mk_decl(P, IDL_SERVICE, &@1, $2, @2);
        $$->methods = $4.head;
    }
  | SERVICE IDENT '{' methods error '}' {
        $$ = mk_decl(P, IDL_SERVICE, &@1, $2, @2);
        $$->methods = $4.head;
        yyerrok;
    }
  ;

methods:
    %empty              { $$.head = $$.tail = NULL; }
  | methods method {
        $$ = $1;
        if ($$.tail)
            $$.tail->next = $2;
        else
            $$.head = $2;
        $$.tail = $2;
    }
  | methods error ';'   { $$ = $1; yyerrok; }   /* drops just this method */
  ;

method:
    method_core
  | annotation method_core {
        $$ = $2;
        $$->annot = $1;
        if (!$$->doc)
            $$->doc = @1.doc;
    }
  ;

/* A oneway method with a raises clause parses, so that sema can say why it
 * is wrong instead of a bare syntax error. */
method_core:
    type IDENT '(' params_opt ')' raises_opt '=' INT ';' {
        $$ = NEW(idl_method);
        $$->ret = $1;
        $$->name = $2;
        $$->loc = L(@2);
        $$->params = $4.head;
        $$->raises = $6.head;
        $$->id = $8.overflow ? UINT64_MAX : $8.u;
        $$->id_loc = L(@8);
        $$->doc = @1.doc;
    }
  | VOID IDENT '(' params_opt ')' raises_opt '=' INT ';' {
        $$ = NEW(idl_method);
        $$->name = $2;
        $$->loc = L(@2);
        $$->params = $4.head;
        $$->raises = $6.head;
        $$->id = $8.overflow ? UINT64_MAX : $8.u;
        $$->id_loc = L(@8);
        $$->doc = @1.doc;
    }
  | ONEWAY IDENT '(' params_opt ')' raises_opt '=' INT ';' {
        $$ = NEW(idl_method);
        $$->oneway = true;
        $$->name = $2;
        $$->loc = L(@2);
        $$->params = $4.head;
        $$->raises = $6.head;
        $$->id = $8.overflow ? UINT64_MAX : $8.u;
        $$->id_loc = L(@8);
        $$->doc = @1.doc;
    }
  ;

params_opt:
    %empty              { $$.head = $$.tail = NULL; }
  | params
  ;

params:
    param               { $$.head = $$.tail = $1; }
  | params ',' param    { $$ = $1; $$.tail->next = $3; $$.tail = $3; }
  ;

param:
    INT ':' type IDENT {
        $$ = NEW(idl_field);
        $$->tag = $1.overflow ? UINT64_MAX : $1.u;
        $$->tag_loc = L(@1);
        $$->type = $3;
        $$->name = $4;
        $$->loc = L(@4);
        $$->doc = @1.doc;
    }
  | INT ':' OPTIONAL type IDENT {
        $$ = NEW(idl_field);
        $$->tag = $1.overflow ? UINT64_MAX : $1.u;
        $$->tag_loc = L(@1);
        $$->optional = true;
        $$->type = $4;
        $$->name = $5;
        $$->loc = L(@5);
        $$->doc = @1.doc;
    }
  ;

raises_opt:
    %empty                  { $$.head = $$.tail = NULL; }
  | RAISES '(' names ')'    { $$ = $3; }
  ;

names:
    name                { $$.head = $$.tail = $1; }
  | names ',' name      { $$ = $1; $$.tail->next = $3; $$.tail = $3; }
  ;

name:
    IDENT {
        $$ = NEW(idl_name);
        $$->name = $1;
        $$->loc = L(@1);
    }
  | IDENT '.' IDENT {
        $$ = NEW(idl_name);
        $$->qual = $1;
        $$->name = $3;
        $$->loc = L(@$);
    }
  ;

type:
    BOOL        { $$ = mk_type(P, IDL_BOOL, @1); }
  | I8          { $$ = mk_type(P, IDL_I8, @1); }
  | I16         { $$ = mk_type(P, IDL_I16, @1); }
  | I32         { $$ = mk_type(P, IDL_I32, @1); }
  | I64         { $$ = mk_type(P, IDL_I64, @1); }
  | U8          { $$ = mk_type(P, IDL_U8, @1); }
  | U16         { $$ = mk_type(P, IDL_U16, @1); }
  | U32         { $$ = mk_type(P, IDL_U32, @1); }
  | U64         { $$ = mk_type(P, IDL_U64, @1); }
  | F32         { $$ = mk_type(P, IDL_F32, @1); }
  | F64         { $$ = mk_type(P, IDL_F64, @1); }
  | STRING_KW   { $$ = mk_type(P, IDL_STRING, @1); }
  | BYTES       { $$ = mk_type(P, IDL_BYTES, @1); }
  | LIST '<' type '>' {
        $$ = mk_type(P, IDL_LIST, @$);
        $$->elem = $3;
    }
  | MAP '<' type ',' type '>' {
        $$ = mk_type(P, IDL_MAP, @$);
        $$->key = $3;
        $$->elem = $5;
    }
  | REF '<' name '>' {
        $$ = mk_type(P, IDL_REF, @$);
        $$->qual = $3->qual;
        $$->name = $3->name;
    }
  | name {
        $$ = mk_type(P, IDL_NAMED, @$);
        $$->qual = $1->qual;
        $$->name = $1->name;
    }
  ;

%%

idl_loc idl_yyloc(const idl_parse *P, const YYLTYPE *l)
{
    idl_loc loc = { P->file, l->first_line, l->first_column, 1 };
    if (l->last_line == l->first_line && l->last_column > l->first_column)
        loc.len = l->last_column - l->first_column;
    return loc;
}

/* With parse.error custom, bison calls yyerror only when its stack is full:
 * input nested thousands of levels deep (list<list<...>>). */
static void yyerror(YYLTYPE *loc, yyscan_t scanner, idl_parse *P, const char *msg)
{
    (void)scanner;
    (void)msg;
    P->too_deep = true;
    diag_error(P->diag, L(*loc), "input nested too deeply; giving up on this file");
}

/* How a token is named in "expected X before Y". */
static const char *describe(yysymbol_kind_t k, char *buf, size_t size)
{
    switch (k) {
    case YYSYMBOL_YYEOF: return "end of input";
    case YYSYMBOL_IDENT: return "identifier";
    case YYSYMBOL_INT: return "integer";
    case YYSYMBOL_FLOAT: return "number";
    case YYSYMBOL_STRING: return "string";
    default: break;
    }
    /* bison spells "struct" with double quotes and ';' with single ones;
     * diagnostics quote both the same way. */
    const char *n = yysymbol_name(k);
    size_t len = strlen(n);
    if (len >= 2 && (n[0] == '"' || n[0] == '\'')) {
        snprintf(buf, size, "'%.*s'", (int)(len - 2), n + 1);
        return buf;
    }
    snprintf(buf, size, "'%s'", n);
    return buf;
}

static bool is_literal_start(yysymbol_kind_t k)
{
    return k == YYSYMBOL_INT || k == YYSYMBOL_FLOAT || k == YYSYMBOL_STRING || k == YYSYMBOL_TRUE
        || k == YYSYMBOL_FALSE || strcmp(yysymbol_name(k), "'-'") == 0
        || strcmp(yysymbol_name(k), "'+'") == 0;
}

static bool is_decl_start(yysymbol_kind_t k)
{
    return k == YYSYMBOL_CONST || k == YYSYMBOL_ENUM || k == YYSYMBOL_STRUCT || k == YYSYMBOL_ERROR_KW
        || k == YYSYMBOL_SERVICE || k == YYSYMBOL_IMPORT;
}

static bool is_type_start(yysymbol_kind_t k)
{
    return (k >= YYSYMBOL_BOOL && k <= YYSYMBOL_BYTES) || k == YYSYMBOL_LIST
        || k == YYSYMBOL_MAP || k == YYSYMBOL_REF || k == YYSYMBOL_IDENT;
}

/* gcc-like: "expected ';' before '}'", "expected type before ')'". */
static int yyreport_syntax_error(const yypcontext_t *ctx, yyscan_t scanner, idl_parse *P)
{
    (void)scanner;
    yysymbol_kind_t look = yypcontext_token(ctx);
    idl_loc loc = L(*yypcontext_location(ctx));
    idl_loc tok_loc = loc;
    /* The lexer already reported why this token is odd (an unterminated
     * string, a comment running to the end of the file). The end of input
     * does not pass through token(): a lexical error with no token after it
     * (an unterminated string on the last line) explains it as well. */
    if (P->after_lex_error
        || (look == YYSYMBOL_YYEOF && (P->lex_stopped || P->lex_error_seen)))
        return 0;

    enum { MAXEXP = 40 };
    yysymbol_kind_t exp[MAXEXP];
    int n = yypcontext_expected_tokens(ctx, exp, MAXEXP);
    if (n < 0)
        n = 0;
    bool any_type = false, any_value = false, any_decl = false;
    for (int i = 0; i < n; i++) {
        any_decl |= exp[i] == YYSYMBOL_STRUCT;
        any_type |= exp[i] == YYSYMBOL_BOOL;
        any_value |= exp[i] == YYSYMBOL_TRUE;
    }

    /* Collapse the type keywords into one word when a type is expected. */
    char parts[8][32];
    const char *names[8];
    int m = 0;
    if (any_type)
        names[m++] = "type";
    if (any_value)
        names[m++] = "value";
    if (any_decl)
        names[m++] = "declaration";
    for (int i = 0; i < n && m < 8; i++) {
        if ((any_type && is_type_start(exp[i])) || (any_value && is_literal_start(exp[i]))
            || (any_decl && is_decl_start(exp[i])))
            continue;
        /* An annotation may start a declaration or a method, but naming it
         * in every "expected" list would only add noise. */
        if (strcmp(yysymbol_name(exp[i]), "'@'") == 0)
            continue;
        names[m] = describe(exp[i], parts[m], sizeof parts[m]);
        m++;
    }

    char tokbuf[40], what[64], b[32];
    bool have_text = look != YYSYMBOL_YYEOF && diag_token_text(P->diag, tok_loc, tokbuf, 24) > 0;
    if (look == YYSYMBOL_YYEOF)
        snprintf(what, sizeof what, "at end of input");
    else if (have_text)
        snprintf(what, sizeof what, "before '%s'", tokbuf);
    else
        snprintf(what, sizeof what, "before %s", describe(look, b, sizeof b));

    if (m == 0 || m > 4) {
        if (look == YYSYMBOL_YYEOF)
            diag_error(P->diag, loc, "unexpected end of input");
        else if (have_text)
            diag_error(P->diag, loc, "unexpected '%s'", tokbuf);
        else
            diag_error(P->diag, loc, "unexpected %s", describe(look, b, sizeof b));
        return 0;
    }
    /* Like gcc, a missing ';' is shown just after the previous token when
     * the lookahead is on a later line: "1: i32 x" <newline> "2: ..." lacks
     * its ';' at the end of the first line, not before the '2'. */
    bool semi = false;
    for (int i = 0; i < m; i++)
        semi |= strcmp(names[i], "';'") == 0;
    if (semi && P->prev_tok.last_line > 0 && P->prev_tok.last_line < tok_loc.line) {
        loc.line = P->prev_tok.last_line;
        loc.col = P->prev_tok.last_column;
        loc.len = 1;
    }
    char list[256] = "";
    size_t used = 0;
    for (int i = 0; i < m; i++) {
        const char *sep = i == 0 ? "" : i == m - 1 ? " or " : ", ";
        int w = snprintf(list + used, sizeof list - used, "%s%s", sep, names[i]);
        if (w < 0 || (size_t)w >= sizeof list - used)
            break;
        used += (size_t)w;
    }
    diag_error(P->diag, loc, "expected %s %s", list, what);
    return 0;
}
