/*
 * clock.c — a cached monotonic clock for the hot path. clock_gettime costs
 * ~20 ns here, and a served call used to read it three times (its start, its
 * end, the read that brought it) and a started call once more (its
 * deadline). Now a read batch or a timer "holds" the clock: it is read once
 * when the batch starts, and every call started or served inside the batch
 * uses that reading. Outside a hold (a call started from the application's
 * own event, say) the clock is read for real, so a stale reading never
 * leaks out of the batch that took it.
 *
 * What that costs: a deadline set inside a batch is early by at most the
 * time the batch has run so far, and a served call's time counts from the
 * start of the batch that read its frame.
 */
#include <time.h>

#include "ember-internal.h"

/* Per thread: each thread runs its own event loops. */
static _Thread_local uint64_t held_us;
static _Thread_local unsigned holds;

void ember_clock_hold(void)
{
    held_us = ember_now_us();
    holds++;
}

void ember_clock_release(void)
{
    if (holds)
        holds--;
}

uint64_t ember_clock_us(void)
{
    return holds ? held_us : ember_now_us();
}

uint64_t ember_clock_ms(void)
{
    return ember_clock_us() / 1000u;
}
