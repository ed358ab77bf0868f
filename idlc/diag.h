/*
 * diag.h — gcc-style diagnostics.
 *
 *   path/file.idl:3:12: error: message
 *       struct Pos { 1: i32 x; 1: i32 y; }
 *                              ^
 *
 * Every stage reports through one idl_diag, which counts the errors (the
 * exit status depends on it) and knows the text of every loaded file so it
 * can quote the offending line.
 */
#ifndef IDLC_DIAG_H
#define IDLC_DIAG_H

#include <stdarg.h>
#include <stdio.h>

#include "ast.h"

#if defined(__GNUC__)
#define IDL_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define IDL_PRINTF(f, a)
#endif

typedef struct idl_diag idl_diag;

idl_diag *diag_new(FILE *out);
void diag_free(idl_diag *d);

/* Makes `text` quotable for locations whose file is `path` (compared as a
 * string). The text must outlive the idl_diag; it need not be NUL-terminated. */
void diag_add_source(idl_diag *d, const char *path, const char *text, size_t len);

/* An error at loc (loc.line == 0: no line/column, just the file). */
void diag_error(idl_diag *d, idl_loc loc, const char *fmt, ...) IDL_PRINTF(3, 4);
/* A note attached to the preceding error ("previous definition is here"). */
void diag_note(idl_diag *d, idl_loc loc, const char *fmt, ...) IDL_PRINTF(3, 4);
/* An error not tied to any file: "idlc: error: ...". */
void diag_fatal(idl_diag *d, const char *fmt, ...) IDL_PRINTF(2, 3);

int diag_errors(const idl_diag *d);

/* Copies the source text at loc (at most max bytes of its line) into buf;
 * returns 0 when the text is unknown. Used to quote tokens in messages. */
size_t diag_token_text(idl_diag *d, idl_loc loc, char *buf, size_t max);

#endif
