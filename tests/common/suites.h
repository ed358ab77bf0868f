/*
 * suites.h — the end of a CUnit program's main: runs what is registered,
 * verbosely, and turns failures (of tests, asserts or a suite's setup) into
 * the exit code. Header-only (static inline), like loop.h.
 */
#ifndef EMBER_TEST_SUITES_H
#define EMBER_TEST_SUITES_H

#include <CUnit/Basic.h>

static inline int run_suites(void)
{
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    if (CU_get_number_of_suites_failed())
        failed++;
    CU_cleanup_registry();
    return failed ? 1 : 0;
}

#endif
