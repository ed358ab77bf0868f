/*
 * fuzz_idlc — idlc's whole front end (lexer, parser, semantic checks,
 * diagnostics with quoted source lines) on arbitrary text, through
 * idlc_check_buffer (idlc/load.h). The buffer is not NUL-terminated, so a
 * read past its end is caught by ASan. Diagnostics are formatted for real
 * (into /dev/null) so that the caret and quoting code runs too.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "load.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *sink;
    if (!sink) {
        sink = fopen("/dev/null", "w");
        if (!sink)
            abort();
    }
    int r = idlc_check_buffer("fuzz.idl", (const char *)data, size, sink);
    if (r != 0 && r != 1) {
        fprintf(stderr, "fuzz_idlc: idlc_check_buffer returned %d\n", r);
        abort();
    }
    return 0;
}
