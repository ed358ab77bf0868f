/*
 * pb-pylit.c — Python literals read back as jelly. Twisted sends a
 * failure's value as str(exception), and for an exception raised with
 * several arguments that is the repr of their tuple: "(404, 'not in a
 * room')". A failure naming one of a method's declared errors becomes that
 * error again by reading those literals (pb-xcode.c, ember_pbx_raised_in):
 * integers, floats, True, False, None, and str and bytes with Python's
 * escapes. Nothing else is read (lists, dicts, an object's repr): such a
 * failure stays a failure.
 *
 * The other way, a declared error ember raises to a Python caller goes out
 * as the text Python's str() gives an exception raised with the error's
 * fields (ember_pylit_str): the caller sees what the Python server ember
 * replaced showed, and a Python node relaying it hands back a text that
 * reads as the error again.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ember-internal.h"
#include "pb-internal.h"

/* Room for one unescaped string: never longer than its literal. */
#define PYLIT_STR_MAX EMBER_JL_FAIL_TEXT

/* n hex digits at s, -1 when they are not. */
static long hex_digits(const char *s, int n)
{
    long v = 0;
    for (int i = 0; i < n; i++) {
        int c = s[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static size_t put_utf8(uint8_t *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (uint8_t)(0xc0 | cp >> 6);
        o[1] = (uint8_t)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xe0 | cp >> 12);
        o[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (uint8_t)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (uint8_t)(0xf0 | cp >> 18);
    o[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (uint8_t)(0x80 | (cp & 0x3f));
    return 4;
}

/* The quoted string at *s, unescaped into out[0..*n): for str (\u, \U,
 * \x as code points, written as UTF-8) or bytes (\x as a byte). */
static int read_quoted(const char **s, bool bytes, uint8_t *out, size_t *n)
{
    const char *p = *s;
    char q = *p++;
    size_t o = 0;
    while (*p != q) {
        if (!*p || o + 4 > PYLIT_STR_MAX)
            return -1;
        if (*p != '\\') {
            out[o++] = (uint8_t)*p++;
            continue;
        }
        long v = 0;
        int digits = 0;
        switch (*++p) {
        case '\\':
        case '\'':
        case '"':
            v = *p;
            break;
        case 'n':
            v = '\n';
            break;
        case 'r':
            v = '\r';
            break;
        case 't':
            v = '\t';
            break;
        case 'x':
            digits = 2;
            break;
        case 'u':
            digits = bytes ? -1 : 4;
            break;
        case 'U':
            digits = bytes ? -1 : 8;
            break;
        default:
            return -1;
        }
        if (digits < 0 || (digits && (v = hex_digits(p + 1, digits)) < 0))
            return -1;
        p += 1 + digits;
        if (bytes || v < 0x80)
            out[o++] = (uint8_t)v;
        else if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
            return -1;
        else
            o += put_utf8(out + o, (uint32_t)v);
    }
    *n = o;
    *s = p + 1;
    return 0;
}

/* An int (any size up to 64 bits of magnitude) or a float at *s. */
static int read_number(const char **s, ember_jl_w *w)
{
    const char *p = *s, *d = p + (*p == '-');
    const char *q = d;
    while (*q >= '0' && *q <= '9')
        q++;
    if (q > d && *q != '.' && *q != 'e' && *q != 'E') {
        errno = 0;
        unsigned long long mag = strtoull(d, NULL, 10);
        if (errno == ERANGE)
            return -1;
        ember_bn_put_int(w->e, *p == '-', mag);
        *s = q;
        return 0;
    }
    /* Python writes floats as 1.5, 1e+20, inf, nan: no hex, no spaces. */
    if (*d != 'i' && *d != 'n' && (*d < '0' || *d > '9') && *d != '.')
        return -1;
    char *end;
    locale_t was = ember_numbers_begin();
    double v = strtod(p, &end);
    uselocale(was);
    if (end == p)
        return -1;
    ember_bn_put_float(w->e, v);
    *s = end;
    return 0;
}

static bool word_at(const char **s, const char *word)
{
    size_t n = strlen(word);
    if (strncmp(*s, word, n) != 0)
        return false;
    *s += n;
    return true;
}

/* One literal at *s, written to w. */
static int read_value(const char **s, ember_jl_w *w)
{
    uint8_t tmp[PYLIT_STR_MAX];
    size_t n;
    if (word_at(s, "True") || word_at(s, "False")) {
        ember_jl_put_bool(w, (*s)[-2] == 'u'); /* Tr[u]e, Fal[s]e */
        return 0;
    }
    if (word_at(s, "None")) {
        ember_jl_put_none(w);
        return 0;
    }
    bool bytes = **s == 'b' && ((*s)[1] == '\'' || (*s)[1] == '"');
    if (bytes || **s == '\'' || **s == '"') {
        *s += bytes;
        if (read_quoted(s, bytes, tmp, &n) || (!bytes && !ember_jl_utf8_ok(tmp, n)))
            return -1;
        if (bytes)
            ember_bn_put_bytes(w->e, tmp, n, w->vocab);
        else
            ember_jl_put_unicode(w, tmp, n);
        return 0;
    }
    return read_number(s, w);
}

/* The repr of a tuple of two or more, as str() of an exception with that
 * many arguments writes it: "(a, b)". "()" and "(a,)" are not: str() gives
 * "" and the argument's own text for none or one, so those are the repr of
 * one argument that is itself a tuple, which no declared error's field is. */
int ember_pylit_tuple(const char *s, ember_jl_w *w, uint32_t *n)
{
    *n = 0;
    if (*s++ != '(')
        return -1;
    for (;;) {
        if (read_value(&s, w))
            return -1;
        ++*n;
        if (*s == ')')
            break;
        if (s[0] != ',' || s[1] != ' ')
            return -1;
        s += 2;
    }
    return *n < 2 || s[1] ? -1 : 0;
}

int ember_pylit_value(const char *s, ember_jl_w *w)
{
    return read_value(&s, w) || *s ? -1 : 0;
}

/* ---- writing: str(exception) ---- */

typedef struct pyout {
    char *p;        /* the terminating NUL */
    size_t left;    /* room before it */
    bool cut;
} pyout;

static void out_raw(pyout *o, const char *s, size_t n)
{
    if (n > o->left) {
        n = o->left = ember_utf8_cut(s, n, o->left);
        o->cut = true;
    }
    memcpy(o->p, s, n);
    o->p += n;
    o->left -= n;
    *o->p = 0;
}

static void out_fmt(pyout *o, const char *fmt, ...)
{
    char b[40];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b, sizeof b, fmt, ap);
    va_end(ap);
    out_raw(o, b, n < 0 ? 0 : (size_t)n);
}

/* Characters Python's repr escapes beyond ASCII's controls (what is not
 * printable: controls, format characters, separators other than the space,
 * surrogates, private use), as ranges of Unicode 14 (Python 3.11's); the
 * unassigned code points it also escapes are left as they are (their list
 * changes with each Unicode version). */
static const uint32_t unprintable[][2] = {
    {0x80, 0xa0}, {0xad, 0xad}, {0x600, 0x605}, {0x61c, 0x61c},
    {0x6dd, 0x6dd}, {0x70f, 0x70f}, {0x890, 0x891}, {0x8e2, 0x8e2},
    {0x1680, 0x1680}, {0x180e, 0x180e}, {0x2000, 0x200f}, {0x2028, 0x202f},
    {0x205f, 0x2064}, {0x2066, 0x206f}, {0x3000, 0x3000}, {0xd800, 0xf8ff},
    {0xfeff, 0xfeff}, {0xfff9, 0xfffb}, {0x110bd, 0x110bd}, {0x110cd, 0x110cd},
    {0x13430, 0x13438}, {0x1bca0, 0x1bca3}, {0x1d173, 0x1d17a},
    {0xe0001, 0xe0001}, {0xe0020, 0xe007f}, {0xf0000, 0xffffd},
    {0x100000, 0x10fffd},
};

static bool printable(uint32_t cp)
{
    if (cp < 0x20 || cp == 0x7f)
        return false;
    for (size_t i = 0; cp >= 0x80 && i < sizeof unprintable / sizeof unprintable[0]; i++)
        if (cp >= unprintable[i][0] && cp <= unprintable[i][1])
            return false;
    return true;
}

/* repr() of a str or bytes: Python's choice of quote and its escapes. A
 * str keeps its printable characters as they are. */
static void out_quoted(pyout *o, const uint8_t *s, size_t n, bool bytes)
{
    char q = memchr(s, '\'', n) && !memchr(s, '"', n) ? '"' : '\'';
    if (bytes)
        out_raw(o, "b", 1);
    out_raw(o, &q, 1);
    for (size_t i = 0; i < n && !o->cut;) {
        uint32_t cp = s[i];
        size_t len = 1;
        if (!bytes && cp >= 0x80) { /* checked UTF-8: decode one */
            len = cp >= 0xf0 ? 4 : cp >= 0xe0 ? 3 : 2;
            cp &= 0x3f >> (len - 1);
            for (size_t k = 1; k < len; k++)
                cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp == '\\' || cp == (uint32_t)q)
            out_fmt(o, "\\%c", (char)cp);
        else if (cp == '\n' || cp == '\r' || cp == '\t')
            out_fmt(o, "\\%c", cp == '\n' ? 'n' : cp == '\r' ? 'r' : 't');
        else if (cp < 0x100 && (bytes ? cp < 0x20 || cp >= 0x7f : !printable(cp)))
            out_fmt(o, "\\x%02x", (unsigned)cp);
        else if (!bytes && !printable(cp))
            out_fmt(o, cp < 0x10000 ? "\\u%04x" : "\\U%08x", (unsigned)cp);
        else
            out_raw(o, (const char *)s + i, len);
        i += len;
    }
    out_raw(o, &q, 1);
}

/* repr() of a float: the shortest digits that read back as v, in fixed
 * notation for exponents -4..15 and with ".0" when they end a whole number,
 * as Python writes it. */
static void out_float(pyout *o, double v)
{
    if (isnan(v) || isinf(v)) {
        out_fmt(o, "%s", isnan(v) ? "nan" : v < 0 ? "-inf" : "inf");
        return;
    }
    char b[40];
    int prec = 1;
    locale_t was = ember_numbers_begin();
    for (; prec < 17; prec++) {
        snprintf(b, sizeof b, "%.*e", prec - 1, v);
        if (strtod(b, NULL) == v)
            break;
    }
    snprintf(b, sizeof b, "%.*e", prec - 1, v);
    int exp = atoi(strchr(b, 'e') + 1);
    int decimals = prec - 1 - exp > 0 ? prec - 1 - exp : 0;
    if (exp >= -4 && exp < 16)
        snprintf(b, sizeof b, decimals ? "%.*f" : "%.*f.0", decimals, v);
    uselocale(was);
    out_fmt(o, "%s", b);
}

/* repr() of the next jelly value at c. */
static int out_value(ember_jl_cur *c, pyout *o, int depth)
{
    ember_jl_val v;
    if (depth > 64 || ember_jl_read(c, &v))
        return -1;
    switch (v.kind) {
    case EMBER_JL_INT:
        if (v.big)
            return -1; /* ember writes none: its ints have 64 bits */
        out_fmt(o, "%s%llu", v.neg ? "-" : "", (unsigned long long)v.mag);
        return 0;
    case EMBER_JL_FLOAT:
        out_float(o, v.f);
        return 0;
    case EMBER_JL_BYTES:
    case EMBER_JL_UNICODE:
        out_quoted(o, v.s, v.len, v.kind == EMBER_JL_BYTES);
        return 0;
    case EMBER_JL_NONE:
        out_fmt(o, "None");
        return 0;
    case EMBER_JL_BOOL:
        out_fmt(o, v.b ? "True" : "False");
        return 0;
    case EMBER_JL_REMOTE:
    case EMBER_JL_LOCAL:
        out_fmt(o, "<RemoteReference>");
        return 0;
    default:
        break;
    }
    bool dict = v.kind == EMBER_JL_DICT;
    out_raw(o, dict ? "{" : v.kind == EMBER_JL_LIST ? "[" : "(", 1);
    for (uint32_t i = 0; i < v.count && !o->cut; i++) {
        if (i)
            out_raw(o, ", ", 2);
        if (dict) { /* the key, then the value below */
            if (ember_jl_pair(c) || out_value(c, o, depth + 1))
                return -1;
            out_raw(o, ": ", 2);
        }
        if (out_value(c, o, depth + 1))
            return -1;
    }
    if (v.kind == EMBER_JL_TUPLE && v.count == 1)
        out_raw(o, ",", 1);
    out_raw(o, dict ? "}" : v.kind == EMBER_JL_LIST ? "]" : ")", 1);
    return 0;
}

/* The text of nvals values; -1 when they do not read. */
static int out_str(ember_jl_cur *c, pyout *o, uint32_t nvals)
{
    ember_jl_val v;
    if (nvals == 1) { /* str() of one string is the string */
        ember_jl_cur peek = *c;
        if (ember_jl_read(&peek, &v) == 0 && v.kind == EMBER_JL_UNICODE) {
            out_raw(o, (const char *)v.s, v.len);
            return 0;
        }
        return out_value(c, o, 0);
    }
    if (nvals)
        out_raw(o, "(", 1);
    for (uint32_t i = 0; i < nvals; i++) {
        if (i)
            out_raw(o, ", ", 2);
        if (out_value(c, o, 0))
            return -1;
    }
    if (nvals)
        out_raw(o, ")", 1);
    return 0;
}

int ember_pylit_str(const void *p, size_t n, uint32_t nvals, bool vocab,
                    char *out, size_t cap)
{
    ember_jl_cur c;
    pyout o = {out, cap - 1, false};
    ember_jl_init(&c, p, n, vocab);
    out[0] = 0;
    if (out_str(&c, &o, nvals) == 0 && !o.cut)
        return 0; /* all of it fits: cap - 1 bytes whole */
    /* Cut: room for "..." at the end, never inside a UTF-8 sequence. */
    size_t len = ember_utf8_cut(out, (size_t)(o.p - out), cap - 4);
    memcpy(out + len, "...", 4);
    return -1;
}
