/*
 * metrics-internal.h — the counters behind ember_metrics_render, kept where
 * the runtime already is on every call: a served method's end (call.c) adds
 * its status and its time to a log-linear histogram; a connection's close
 * counts its reason; a node's registration counts a reconnect.
 */
/*
 * Rooms, lowest first (docs/internals.md); a header includes only headers
 * of rooms below its own:
 *
 *   handshake  pb-raw  pb-xcode   the wires' insides
 *   call       outgoing calls (calltab), incoming calls (dispatch)
 *   ref        exports, refs, proxies
 *   conn       a connection: struct, transport, TLS, frame output
 *   ep         the endpoint: struct, work event, sweep, graceful stop
 *   wire       frames, the personality interface
 *   hash  auth  addr  ember  buf  metrics  pb  probe   (leaves: they
 *              include public headers and ember-internal.h only)
 */
#ifndef EMBER_METRICS_INTERNAL_H
#define EMBER_METRICS_INTERNAL_H

#include <stdint.h>

#include <ember/core.h>

/*
 * Call durations in whole microseconds, two buckets per power of two (the
 * log-linear layout of bench/common's histograms with one sub-bucket bit):
 * bucket 0 holds 0, bucket 1 holds 1, and above that bucket 2k + h holds
 * [2^k + h 2^(k-1), 2^k + (h + 1) 2^(k-1)). The last bucket takes everything
 * from 2^26 µs (67 s) on (+Inf).
 */
#define EMBER_HIST_MAX_LOG2 26
#define EMBER_HIST_BUCKETS (2 * EMBER_HIST_MAX_LOG2 + 1)

static inline uint32_t ember_hist_index(uint64_t us)
{
    if (us < 2)
        return (uint32_t)us;
    uint32_t k = 63u - (uint32_t)__builtin_clzll(us);
    if (k >= EMBER_HIST_MAX_LOG2)
        return EMBER_HIST_BUCKETS - 1;
    return 2 * k + (uint32_t)((us >> (k - 1)) & 1u);
}

/* The exclusive upper bound of bucket i in µs (i < EMBER_HIST_BUCKETS - 1). */
uint64_t ember_hist_bound(uint32_t i);

/* How a served call ended, beyond a reply. */
enum {
    EMBER_END_OK,
    EMBER_END_RAISED,     /* ember_call_raise */
    EMBER_END_FAILED,     /* ember_call_fail, or the answer did not encode */
    EMBER_END_CANCELLED,  /* the caller cancelled: the answer was discarded */
    EMBER_END_LOST,       /* the connection went before the answer */
    EMBER_END_N
};

/* One served method's metrics (per export entry; allocated with it). */
typedef struct ember_xmetrics {
    uint64_t ends[EMBER_END_N];
    uint64_t sum_us;
    uint64_t bucket[EMBER_HIST_BUCKETS];
} ember_xmetrics;

/* n calls of the method took us each (counted by their ends apart). */
static inline void ember_xmetrics_time(ember_xmetrics *m, uint64_t us,
                                       uint64_t n)
{
    m->sum_us += us * n;
    m->bucket[ember_hist_index(us)] += n;
}

/* Why connections closed (ember_metrics_close_reason). */
enum {
    EMBER_CLOSE_GOODBYE,     /* the peer said goodbye */
    EMBER_CLOSE_PEER,        /* the peer closed the connection */
    EMBER_CLOSE_SHUTDOWN,    /* we closed it: shutting down or closing */
    EMBER_CLOSE_PROTOCOL,    /* the peer broke the protocol */
    EMBER_CLOSE_LIMIT,       /* the peer broke a limit */
    EMBER_CLOSE_HEARTBEAT,   /* silent past dead_after_ms */
    EMBER_CLOSE_SLOW,        /* not reading what we queued for it */
    EMBER_CLOSE_HANDSHAKE,   /* did not register in time */
    EMBER_CLOSE_REFUSED,     /* registration refused (credentials, name...) */
    EMBER_CLOSE_DROPPED,     /* dropped by the application or a duplicate */
    EMBER_CLOSE_ERROR,       /* an I/O or TLS error, out of memory */
    EMBER_CLOSE_N
};

/* An endpoint's counters (in ember_ep). */
typedef struct ember_ep_metrics {
    uint64_t closed[EMBER_CLOSE_N];
    uint64_t registrations;  /* a node's successful registrations */
} ember_ep_metrics;

/* The reason class of a connection closed with st and reason. */
unsigned ember_metrics_close_reason(ember_status st, const char *reason);

#endif
