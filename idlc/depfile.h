/*
 * depfile.h — make dependency rules for -M / -MF.
 *
 *   out/game.h out/game.c: idl/game.idl idl/common.idl
 *   idl/common.idl:
 *
 * The empty rule for each import (like gcc -MP) keeps make working when an
 * import is later deleted.
 */
#ifndef IDLC_DEPFILE_H
#define IDLC_DEPFILE_H

#include <stdio.h>

#include "ast.h"
#include "load.h"

/* A file name of the rule for m that make cannot read (one with a
 * newline, or ending in a backslash), or NULL. */
const char *depfile_unnamable(const idl_loader *l, const idl_module *m,
                              const char *header, const char *source);

/* Writes the rule for one input file whose outputs are header and source. */
void depfile_write(FILE *out, const idl_loader *l, const idl_module *m,
                   const char *header, const char *source);

#endif
