/*
 * hex.h — byte strings written as hex in tests ("07 80 1a 87"), shared by
 * the suites that compare against recorded bytes. Header-only.
 */
#ifndef EMBER_TEST_HEX_H
#define EMBER_TEST_HEX_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* "07 80 1a 87" -> out; returns the number of bytes (at most cap). */
static inline size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    unsigned v;
    int k;
    while (n < cap && sscanf(hex, " %2x%n", &v, &k) == 1) {
        out[n++] = (uint8_t)v;
        hex += k;
    }
    return n;
}

#endif
