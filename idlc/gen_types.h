/*
 * gen_types.h — the run-time type tables gen_c.c puts in a generated .c
 * (gen_types.c).
 */
#ifndef IDLC_GEN_TYPES_H
#define IDLC_GEN_TYPES_H

#include <stdio.h>

#include "gen_util.h"

/* Declares and defines type_<mangle> for every type m's methods use. */
void gen_types_emit(FILE *out, const gen_ctx *g, const idl_module *m);
/* "&type_<mangle>": the table of t. */
void gen_types_ref(gbuf *b, const gen_ctx *g, const idl_type *t);
/* The initializer lines of an ember_field_desc array for f's list. */
void gen_types_fields(FILE *out, const gen_ctx *g, const idl_field *f);

/* raises_<pre>[]: the ember_raise_desc table of me's raises clause. */
void gen_types_raises(FILE *out, const gen_ctx *g, const char *pre, const idl_method *me);

#endif
