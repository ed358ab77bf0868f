/*
 * compat.h — --check-compat: does a new version of a module still talk to
 * peers built from the old one? The rules are in docs/idl.md, "Schema
 * evolution".
 */
#ifndef IDLC_COMPAT_H
#define IDLC_COMPAT_H

#include "ast.h"
#include "diag.h"

/* Both modules must have passed sema. Reports every breaking change (at
 * the new location, or the old one for removals) and returns their count. */
int compat_check(const idl_module *old_mod, const idl_module *new_mod, idl_diag *diag);

#endif
