/*
 * suites.h — the end of a CUnit program's main: runs what is registered,
 * verbosely, and turns failures (of tests, asserts or a suite's setup) into
 * the exit code. Header-only (static inline), like loop.h.
 */
#ifndef EMBER_TEST_SUITES_H
#define EMBER_TEST_SUITES_H

#include <stdio.h>

#include <CUnit/Basic.h>

/* The same, and a summary line "<name>: N tests run, all passed" (or
 * FAILED) after CUnit's own. */
static inline int run_suites_named(const char *name)
{
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    if (CU_get_number_of_suites_failed())
        failed++;
    unsigned run = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    if (name)
        printf("%s: %u tests run, %s\n", name, run, failed ? "FAILED" : "all passed");
    return failed ? 1 : 0;
}

static inline int run_suites(void)
{
    return run_suites_named(NULL);
}

#endif
