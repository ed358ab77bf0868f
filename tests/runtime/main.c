/* main.c — runs every runtime suite; exits non-zero on any failure. */
#include <stdio.h>
#include <stdlib.h>

#include <CUnit/Basic.h>

#include "../common/suites.h"
#include "helpers.h"

static void silent_log(ember_log_level lv, const char *msg, void *ud)
{
    (void)ud;
    if (lv >= EMBER_LOG_ERROR)
        fprintf(stderr, "ember: %s\n", msg);
}

void quiet_logs(void)
{
    if (!getenv("EMBER_LOG"))
        ember_set_log(silent_log, NULL);
}

int main(void)
{
    quiet_logs();
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    add_codec_suite();
    add_frame_suite();
    add_e2e_suite();
    add_security_suite();
    add_mem_suite();
    add_pb_suite();
    add_edges_suite();
    add_metrics_suite();
    add_misuse_suite();
    add_linger_suite();
    return run_suites_named("test-runtime");
}
