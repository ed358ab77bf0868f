/*
 * sema.h — the semantic pass.
 *
 * Runs over every loaded module after parsing, collects every error in one
 * run, and completes the tree for the generators: each named type, ref<>
 * and raises entry gets its `decl`, each service its `fingerprint` and
 * `wire_id` (the service id), each error its `wire_id` (the error id). The generators may only run when it reports no
 * error.
 */
#ifndef IDLC_SEMA_H
#define IDLC_SEMA_H

#include <stddef.h>
#include <stdint.h>

#include "ast.h"
#include "diag.h"

/* Checks every module in the list (linked through `next`). Returns the
 * number of errors it reported. */
int sema_check(idl_module *modules, idl_diag *diag);

/* sema_pb.c: the @pb annotations of m's services (pb_dispatch, pb_name). */
void sema_pb_module(idl_diag *diag, idl_module *m);

/* FNV-1a hashes, as used by fingerprints and error ids. */
uint64_t idl_fnv1a64(const void *data, size_t len);
uint32_t idl_fnv1a32(const void *data, size_t len);

/* A growable string for canonical forms. */
typedef struct idl_buf {
    char *p;
    size_t len, cap;
} idl_buf;

void idl_buf_puts(idl_buf *b, const char *s);
void idl_buf_printf(idl_buf *b, const char *fmt, ...) IDL_PRINTF(2, 3);
void idl_buf_free(idl_buf *b);

/* Appends the canonical spelling of t: "u32", "list<game.Pos>",
 * "map<string,i64>", "ref<game.Observer>"; names are module-qualified. */
void idl_spell_type(idl_buf *b, const idl_type *t);
/* The same, but names declared in module self are left unqualified. */
void idl_spell_type_in(idl_buf *b, const idl_type *t, const idl_module *self);

/* The text a service's fingerprint hashes (see docs/idl.md). */
void idl_service_canonical(idl_buf *b, const idl_decl *svc);

#endif
