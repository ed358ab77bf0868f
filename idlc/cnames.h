/*
 * cnames.h — the generated-C name check.
 *
 * Two different IDL names can produce the same C identifier: `struct S_init`
 * is `game_S_init`, which is also the init function of `struct S`; an
 * optional field `x` brings a member `has_x`, which a field `has_x` repeats.
 * The C compiler would reject the generated code, so idlc rejects the input
 * instead. This pass lists every file-scope identifier the generators emit
 * for a module (built with the generators' own naming helpers in gen_util.c)
 * and every member of each generated struct, and reports each clash with a
 * note at the other side. A module's list also holds what the headers it
 * includes declare (its imports, however deep), and the public names of all
 * modules of one run are checked together (they are linked together); two
 * files declaring the same module clash as a whole. It runs after sema even when sema reported errors, so that one
 * run reports everything: a type sema could not resolve is skipped, and two
 * declarations of one IDL name (a duplicate sema reports) are not reported
 * again as a clash.
 */
#ifndef IDLC_CNAMES_H
#define IDLC_CNAMES_H

#include "ast.h"
#include "diag.h"

/* Checks every module in the list (linked through `next`). Returns the
 * number of errors it reported. */
int cnames_check(const idl_module *modules, idl_diag *diag);

#endif
