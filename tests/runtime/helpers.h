/*
 * helpers.h — shared by the runtime suites: run the event loop until a
 * condition holds or a deadline passes (never sleep to synchronise; see
 * tests/common/), raw loopback connections, quiet logs.
 */
#ifndef EMBER_TEST_HELPERS_H
#define EMBER_TEST_HELPERS_H

#include <stdbool.h>

#include <CUnit/CUnit.h>
#include <event2/event.h>

#include <ember/ember.h>

#include "../common/loop.h" /* run_until, run_for */
#include "../common/net.h"  /* loopback_connect */

/* Quiet logs below ERROR unless EMBER_LOG is set. */
void quiet_logs(void);

void add_codec_suite(void);
void add_frame_suite(void);
void add_e2e_suite(void);
void add_security_suite(void);
void add_mem_suite(void);
void add_pb_suite(void);
void add_edges_suite(void);
void add_metrics_suite(void);
void add_misuse_suite(void);
void add_linger_suite(void);

#endif
