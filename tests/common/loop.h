/*
 * loop.h — running an event_base until a condition holds or a deadline
 * passes, shared by every test program (tests never sleep to synchronise).
 * Header-only (static inline) so each suite's build needs no extra object.
 */
#ifndef EMBER_TEST_LOOP_H
#define EMBER_TEST_LOOP_H

#include <stdbool.h>
#include <stdlib.h>

#include <event2/event.h>

/* How many times slower than a plain build this run is allowed to be:
 * EMBER_TEST_SLOW (make check-asan sets 3, make check-valgrind 20; set it by
 * hand on a loaded machine), 1 when unset. run_until stretches every
 * deadline by it, and so do the few tests that bound a time or lower the
 * runtime's own deadlines (heartbeats): under valgrind a process can be
 * held off the CPU longer than a plain build's deadline, which says nothing
 * about the runtime. What a test asserts never changes with it. */
static inline int test_slow(void)
{
    static int f;
    if (!f) {
        const char *s = getenv("EMBER_TEST_SLOW");
        long v = s ? strtol(s, NULL, 10) : 1;
        f = v >= 1 && v <= 100 ? (int)v : 1;
    }
    return f;
}

typedef bool (*loop_cond)(void *ud);

static inline void loop_on_deadline_(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(bool *)arg = true;
}

/* Runs base until cond(ud) is true or ms pass; returns cond's last value.
 * A NULL cond never holds (the loop runs for ms). */
static inline bool run_until_ms_(struct event_base *base, loop_cond cond,
                                 void *ud, int ms)
{
    bool expired = false;
    struct event *t = evtimer_new(base, loop_on_deadline_, &expired);
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    evtimer_add(t, &tv);
    bool ok;
    while (!(ok = cond && cond(ud)) && !expired)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(t);
    return ok;
}

/* Runs base until cond(ud) is true or the deadline passes: ms, times
 * test_slow() (a NULL cond runs for ms as given, as run_for does). Returns
 * cond's last value. */
static inline bool run_until(struct event_base *base, loop_cond cond, void *ud,
                             int ms)
{
    return run_until_ms_(base, cond, ud, cond ? ms * test_slow() : ms);
}

/* Runs base for ms, as given (letting late, wrong events show up). */
static inline void run_for(struct event_base *base, int ms)
{
    run_until_ms_(base, NULL, NULL, ms);
}

/* A condition on an int flag: run_until(base, flag_set, &flag, ms). */
static inline bool flag_set(void *ud)
{
    return *(const int *)ud != 0;
}

/* A condition on a counter reaching a target:
 * int_at_least w = {&counter, target}; run_until(base, reached, &w, ms). */
typedef struct int_at_least { const int *p; int want; } int_at_least;
static inline bool reached(void *ud)
{
    const int_at_least *w = ud;
    return *w->p >= w->want;
}

#endif
