/*
 * check_buffer.c — tests idlc_check_buffer(), the entry point the fuzz
 * targets call: buffers with NULs, no terminating NUL, imports (which
 * resolve against nothing) and a discarded diagnostic stream.
 */
#include <stdio.h>
#include <string.h>

#include "load.h"

static int failures, passes;

static void expect(const char *name, const char *data, size_t len, int want, const char *needle)
{
    char out[8192] = "";
    FILE *f = fmemopen(out, sizeof out - 1, "w");
    int rc = idlc_check_buffer("buf.idl", data, len, f);
    fclose(f);
    if (rc != want || (needle && !strstr(out, needle))) {
        printf("FAIL: check_buffer %s: rc %d (want %d)\n%s", name, rc, want, out);
        failures++;
    } else {
        passes++;
    }
}

int main(void)
{
    static const char good[] =
        "module m;\nenum E { a = 0 }\nstruct S { 1: E e; 2: optional S next; }\n"
        "error Oops { }\nservice Svc { S get(1: u32 id) raises (Oops) = 1; }\n";
    expect("valid module", good, sizeof good - 1, 0, NULL);
    /* Not NUL-terminated: only len bytes may be read. */
    char copy[sizeof good - 1];
    memcpy(copy, good, sizeof copy);
    expect("no terminating NUL", copy, sizeof copy, 0, NULL);
    expect("truncated", good, 30, 1, "buf.idl:3:1: error: expected declaration");
    /* The generated-C name check runs here too: S_init is S's init function. */
    static const char clash[] = "module m;\nstruct S { 1: i32 a; }\nstruct S_init { }\n";
    expect("generated C name clash", clash, sizeof clash - 1, 1,
           "buf.idl:3:8: error: generated C name 'm_S_init' of struct 'S_init' clashes");
    static const char impnul[] = "module m;\nimport \"a\\0b.idl\";\n";
    expect("NUL in an import path", impnul, sizeof impnul - 1, 1,
           "buf.idl:2:8: error: import path contains a NUL character");
    static const char nul[] = "module m;\0struct A { 1: i32 x; }";
    expect("embedded NUL", nul, sizeof nul - 1, 1, "invalid character '\\x00'");
    static const char imp[] = "module m;\nimport \"other.idl\";\n";
    expect("imports resolve against nothing", imp, sizeof imp - 1, 1, "cannot find import 'other.idl'");
    expect("empty buffer", "", 0, 1, "expected 'module'");
    if (idlc_check_buffer(NULL, "junk", 4, NULL) != 1) {
        printf("FAIL: check_buffer with no diagnostic stream\n");
        failures++;
    } else {
        passes++;
    }
    printf("%d passed, %d failed\n", passes, failures);
    return failures != 0;
}
