/*
 * loop.h — running an event_base until a condition holds or a deadline
 * passes, shared by every test program (tests never sleep to synchronise).
 * Header-only (static inline) so each suite's build needs no extra object.
 */
#ifndef EMBER_TEST_LOOP_H
#define EMBER_TEST_LOOP_H

#include <stdbool.h>

#include <event2/event.h>

typedef bool (*loop_cond)(void *ud);

static inline void loop_on_deadline_(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(bool *)arg = true;
}

/* Runs base until cond(ud) is true or ms pass; returns cond's last value.
 * A NULL cond never holds (the loop runs for ms). */
static inline bool run_until(struct event_base *base, loop_cond cond, void *ud,
                             int ms)
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

/* Runs base for ms (letting late, wrong events show up). */
static inline void run_for(struct event_base *base, int ms)
{
    run_until(base, NULL, NULL, ms);
}

/* A condition on an int flag: run_until(base, flag_set, &flag, ms). */
static inline bool flag_set(void *ud)
{
    return *(const int *)ud != 0;
}

#endif
