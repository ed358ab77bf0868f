/*
 * load.h — reading .idl files and everything they import.
 *
 * An import is resolved against the importing file's folder first, then
 * against each -I folder in order. Every file is parsed once (files are
 * identified by their real path), import cycles and missing files are
 * reported at the import that causes them, and the loaded modules are kept
 * in dependency order: a module comes after everything it imports.
 */
#ifndef IDLC_LOAD_H
#define IDLC_LOAD_H

#include <stdio.h>

#include "ast.h"
#include "diag.h"

typedef struct idl_loader idl_loader;

idl_loader *idl_loader_new(idl_arena *arena, idl_diag *diag);
void idl_loader_free(idl_loader *l);
void idl_loader_add_include(idl_loader *l, const char *dir);

/* Loads path and, recursively, its imports. Returns the module (possibly
 * incomplete after syntax errors; check diag_errors) or NULL when the file
 * cannot be read (reported). */
idl_module *idl_load_file(idl_loader *l, const char *path);

/* Loads a module from memory; its imports resolve against nothing (each is
 * reported as missing). */
idl_module *idl_load_buffer(idl_loader *l, const char *name, const char *data, size_t len);

/* Every module loaded so far, dependencies first. */
idl_module *idl_loader_modules(const idl_loader *l);
/* Reports every import cycle among the files l loaded, each once, in an
 * order that does not depend on the order they were loaded in. */
void idl_loader_cycles(idl_loader *l);
/* Every check of what l loaded, all errors reported in one run: sema's,
 * then the generated C names' (cnames.h), after the import cycles. */
void idl_loader_check(idl_loader *l, idl_diag *diag);

/* The files a module depends on, transitively, in load order (for -M).
 * Calls fn once per file other than m's own. */
void idl_loader_deps(const idl_loader *l, const idl_module *m,
                     void (*fn)(const char *path, void *ctx), void *ctx);

/*
 * The fuzzing entry point: lexes, parses and checks one buffer exactly as
 * idlc checks a file (imports resolve against nothing), prints diagnostics
 * to diag_out (NULL: discard them) and frees everything it allocated.
 * Returns 0 if the buffer is a valid module, 1 if it has errors.
 */
int idlc_check_buffer(const char *name, const char *data, size_t len, FILE *diag_out);

#endif
