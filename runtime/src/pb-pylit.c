/*
 * pb-pylit.c — Python literals read back as jelly. Twisted sends a
 * failure's value as str(exception), and for an exception raised with
 * several arguments that is the repr of their tuple: "(404, 'not in a
 * room')". A failure naming one of a method's declared errors becomes that
 * error again by reading those literals (pb-xcode.c, ember_pbx_raised_in):
 * integers, floats, True, False, None, and str and bytes with Python's
 * escapes. Nothing else is read (lists, dicts, an object's repr): such a
 * failure stays a failure.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

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
    double v = strtod(p, &end);
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

int ember_pylit_tuple(const char *s, ember_jl_w *w, uint32_t *n)
{
    *n = 0;
    if (*s++ != '(')
        return -1;
    while (*s != ')') {
        if (read_value(&s, w))
            return -1;
        ++*n;
        if (*s == ',') {
            s++;
            if (*s == ' ')
                s++;
        } else if (*s != ')') {
            return -1;
        }
    }
    return s[1] ? -1 : 0;
}

int ember_pylit_value(const char *s, ember_jl_w *w)
{
    return read_value(&s, w) || *s ? -1 : 0;
}
