/* metrics.c — see metrics.h. */
#include "metrics.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mx_label(char *buf, size_t cap, const char *name, const char *value)
{
    size_t at = (size_t)snprintf(buf, cap, "%s=\"", name);
    if (cap < 2 || at >= cap - 2) {
        if (cap)
            buf[0] = 0;
        return;
    }
    for (; *value && at + 4 < cap; value++) {
        if (*value == '\\' || *value == '"' || *value == '\n') {
            buf[at++] = '\\';
            buf[at++] = *value == '\n' ? 'n' : *value;
        } else {
            buf[at++] = *value;
        }
    }
    buf[at++] = '"';
    buf[at] = 0;
}

void mx_labels(char *buf, size_t cap, const char *server, const char *endpoint)
{
    char a[160], b[160];
    mx_label(a, sizeof a, "server", server);
    mx_label(b, sizeof b, "endpoint", endpoint);
    snprintf(buf, cap, "%s,%s", a, b);
}

char *mx_render(const ember_metrics_src *src, size_t n)
{
    size_t cap = 64 * 1024;
    for (;;) {
        char *text = malloc(cap);
        if (!text)
            return NULL;
        long len = ember_metrics_render(src, n, text, cap);
        if (len >= 0 && (size_t)len < cap)
            return text;
        free(text);
        if (len < 0)
            return NULL;
        cap = (size_t)len + 1;
    }
}

/* The family a sample line belongs to: its name, less a histogram's
 * suffix when that is a family of the page. */
static size_t family_len(const char *line, size_t len)
{
    size_t n = 0;
    while (n < len && line[n] != '{' && line[n] != ' ')
        n++;
    return n;
}

static bool same_family(const char *fam, size_t flen, const char *line, size_t len)
{
    size_t n = family_len(line, len);
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
    if (n == flen)
        return memcmp(fam, line, n) == 0;
    for (size_t i = 0; i < 3; i++) {
        size_t sl = strlen(suffixes[i]);
        if (n == flen + sl && memcmp(fam, line, flen) == 0 &&
            memcmp(line + flen, suffixes[i], sl) == 0)
            return true;
    }
    return false;
}

/* Appends the samples of family fam from page. */
static void add_samples(struct evbuffer *out, const char *page, const char *fam,
                        size_t flen)
{
    for (const char *p = page; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len && p[0] != '#' && same_family(fam, flen, p, len)) {
            evbuffer_add(out, p, len);
            evbuffer_add(out, "\n", 1);
        }
        p += len + (nl != NULL);
    }
}

static bool seen_before(const char *const *pages, size_t upto, const char *fam,
                        size_t flen)
{
    for (size_t i = 0; i < upto; i++)
        for (const char *p = pages[i]; p && (p = strstr(p, "# HELP ")); p++)
            if (strncmp(p + 7, fam, flen) == 0 && p[7 + flen] == ' ' &&
                (p == pages[i] || p[-1] == '\n'))
                return true;
    return false;
}

void mx_merge(struct evbuffer *out, const char *const *pages, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (const char *p = pages[i]; p && (p = strstr(p, "# HELP ")); p++) {
            if (p != pages[i] && p[-1] != '\n')
                continue;
            const char *fam = p + 7;
            size_t flen = strcspn(fam, " \n");
            if (seen_before(pages, i, fam, flen))
                continue;
            /* The HELP line and the TYPE line after it, as this page has them. */
            const char *end = strchr(p, '\n');
            if (end && strncmp(end + 1, "# TYPE ", 7) == 0)
                end = strchr(end + 1, '\n');
            size_t hl = end ? (size_t)(end - p) : strlen(p);
            evbuffer_add(out, p, hl);
            evbuffer_add(out, "\n", 1);
            for (size_t j = i; j < n; j++)
                add_samples(out, pages[j], fam, flen);
        }
    }
}
