/*
 * helpers.h — shared by the runtime suites: run the event loop until a
 * condition holds or a deadline passes (never sleep to synchronise).
 */
#ifndef EMBER_TEST_HELPERS_H
#define EMBER_TEST_HELPERS_H

#include <stdbool.h>

#include <CUnit/CUnit.h>
#include <event2/event.h>

#include <ember/ember.h>

typedef bool (*cond_fn)(void *ud);

/* Runs base until cond(ud) is true or ms pass; returns cond's last value. */
bool run_until(struct event_base *base, cond_fn cond, void *ud, int ms);
/* Runs base for ms (letting late, wrong events show up). */
void run_for(struct event_base *base, int ms);
/* Quiet logs below ERROR unless EMBER_LOG is set. */
void quiet_logs(void);

void add_codec_suite(void);
void add_frame_suite(void);
void add_e2e_suite(void);
void add_security_suite(void);
void add_mem_suite(void);

#endif
