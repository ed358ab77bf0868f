/*
 * gen.h — the code generators. Each writes one kind of output for one
 * module whose tree passed the semantic checks (every name resolved).
 * Output is deterministic: same tree, same bytes.
 */
#ifndef IDLC_GEN_H
#define IDLC_GEN_H

#include <stdio.h>

#include "ast.h"

/* NAME.h: types, constants, stubs, skeletons, encoders/decoders. */
int gen_header(const idl_module *m, FILE *out);
/* NAME.c: the code behind NAME.h; header_name is what it #includes. */
int gen_source(const idl_module *m, const char *header_name, FILE *out);

#endif
