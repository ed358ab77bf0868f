/*
 * diag.c — gcc-style diagnostics with the source line and a caret.
 */
#include <stdlib.h>
#include <string.h>

#include "diag.h"

typedef struct diag_source {
    const char *path;
    const char *text;
    size_t len;
    size_t *lines;      /* offset of each line's start, built on first use */
    size_t nlines;
    struct diag_source *next;
} diag_source;

struct idl_diag {
    FILE *out;
    int errors;
    diag_source *sources;
};

idl_diag *diag_new(FILE *out)
{
    idl_diag *d = idl_xcalloc(1, sizeof *d);
    d->out = out;
    return d;
}

void diag_free(idl_diag *d)
{
    if (!d)
        return;
    for (diag_source *s = d->sources, *n; s; s = n) {
        n = s->next;
        free(s->lines);
        free(s);
    }
    free(d);
}

void diag_add_source(idl_diag *d, const char *path, const char *text, size_t len)
{
    diag_source *s = idl_xcalloc(1, sizeof *s);
    s->path = path;
    s->text = text;
    s->len = len;
    s->next = d->sources;
    d->sources = s;
}

int diag_errors(const idl_diag *d)
{
    return d->errors;
}

static diag_source *find_source(idl_diag *d, const char *path)
{
    if (!path)
        return NULL;
    for (diag_source *s = d->sources; s; s = s->next)
        if (s->path == path || strcmp(s->path, path) == 0)
            return s;
    return NULL;
}

/* The line index is built lazily: a fuzzed file may produce thousands of
 * errors, and rescanning the text for each would be quadratic. */
static bool source_line(diag_source *s, int line, const char **start, size_t *len)
{
    if (!s->lines) {
        size_t n = 1;
        for (size_t i = 0; i < s->len; i++)
            n += s->text[i] == '\n';
        s->lines = malloc(n * sizeof *s->lines);
        if (!s->lines)
            return false;
        s->lines[0] = 0;
        s->nlines = 1;
        for (size_t i = 0; i < s->len; i++)
            if (s->text[i] == '\n')
                s->lines[s->nlines++] = i + 1;
    }
    if (line < 1 || (size_t)line > s->nlines)
        return false;
    /* The next line's start ends this one: scanning for the newline would
     * make every error on one long line cost its length. */
    size_t b = s->lines[line - 1];
    size_t e = (size_t)line < s->nlines ? s->lines[line] - 1 : s->len;
    if (e > b && s->text[e - 1] == '\r')
        e--;
    *start = s->text + b;
    *len = e - b;
    return true;
}

/* Very long lines (minified or fuzzed input) are not quoted. */
enum { QUOTE_MAX = 400 };

static void quote(idl_diag *d, idl_loc loc)
{
    diag_source *s = find_source(d, loc.file);
    const char *text;
    size_t len;
    if (!s || loc.line < 1 || loc.col < 1 || !source_line(s, loc.line, &text, &len))
        return;
    if (len > QUOTE_MAX || (size_t)loc.col > len + 1)
        return;
    FILE *o = d->out;
    fputc(' ', o);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        /* Control bytes (NUL included) would garble a terminal. */
        fputc(c == '\t' || c >= 0x20 ? c : ' ', o);
    }
    fputc('\n', o);
    fputc(' ', o);
    /* Keep tabs so the caret lines up whatever the tab width is. */
    for (int i = 0; i < loc.col - 1; i++)
        fputc(text[i] == '\t' ? '\t' : ' ', o);
    fputc('^', o);
    size_t room = len >= (size_t)loc.col ? len - (size_t)loc.col : 0;
    for (int i = 1; i < loc.len && (size_t)i <= room; i++)
        fputc('~', o);
    fputc('\n', o);
}

static void report(idl_diag *d, idl_loc loc, const char *kind, const char *fmt, va_list ap)
{
    FILE *o = d->out;
    if (loc.file && loc.line > 0)
        fprintf(o, "%s:%d:%d: %s: ", loc.file, loc.line, loc.col, kind);
    else if (loc.file)
        fprintf(o, "%s: %s: ", loc.file, kind);
    else
        fprintf(o, "idlc: %s: ", kind);
    /* UBSan's null checks leave a path where gcc sees fmt == NULL and warns
     * (-Wformat-overflow); close that path explicitly. */
    if (fmt)
        vfprintf(o, fmt, ap);
    fputc('\n', o);
    quote(d, loc);
}

void diag_error(idl_diag *d, idl_loc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(d, loc, "error", fmt, ap);
    va_end(ap);
    d->errors++;
}

void diag_note(idl_diag *d, idl_loc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(d, loc, "note", fmt, ap);
    va_end(ap);
}

void diag_fatal(idl_diag *d, const char *fmt, ...)
{
    va_list ap;
    idl_loc none = { 0 };
    va_start(ap, fmt);
    report(d, none, "error", fmt, ap);
    va_end(ap);
    d->errors++;
}

size_t diag_token_text(idl_diag *d, idl_loc loc, char *buf, size_t max)
{
    diag_source *s = find_source(d, loc.file);
    const char *text;
    size_t len;
    if (!s || max == 0 || loc.col < 1 || !source_line(s, loc.line, &text, &len))
        return 0;
    if ((size_t)loc.col > len)
        return 0;
    size_t n = (size_t)(loc.len > 0 ? loc.len : 1);
    if (n > len - (size_t)(loc.col - 1))
        n = len - (size_t)(loc.col - 1);
    if (n > max - 1)
        n = max - 1;
    memcpy(buf, text + loc.col - 1, n);
    buf[n] = '\0';
    return n;
}
