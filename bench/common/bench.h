/*
 * bench/common/bench.h — what the raw and ember benchmark programs share:
 * a monotonic clock, a log-linear latency histogram, the measurement window
 * (warm-up, then BENCH_SECS), option parsing and the result line.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Nanoseconds on CLOCK_MONOTONIC. */
uint64_t bench_now_ns(void);

/*
 * Log-linear histogram of nanosecond values: 64 linear sub-buckets per
 * power of two, so a reported percentile is within 1/64 (1.6 %) of the
 * true value. Fixed size, no allocation on the hot path.
 */
#define BENCH_HIST_SUB_BITS 6
#define BENCH_HIST_SUB (1u << BENCH_HIST_SUB_BITS)
#define BENCH_HIST_BUCKETS (BENCH_HIST_SUB * (64 - BENCH_HIST_SUB_BITS + 1))

typedef struct bench_hist {
    uint64_t count;
    uint64_t bucket[BENCH_HIST_BUCKETS];
} bench_hist;

void bench_hist_add(bench_hist *h, uint64_t ns);
/* The value (ns) below which a fraction q (0..1) of the samples lie. */
double bench_hist_quantile(const bench_hist *h, double q);

/* Options every program understands; unknown ones are an error. */
typedef struct bench_opts {
    const char *host;        /* --host: 127.0.0.1 */
    int port;                /* --port */
    double secs;             /* --secs: measured seconds (3) */
    double warmup;           /* --warmup: seconds before measuring (0.5) */
    unsigned inflight;       /* --inflight: calls in flight per connection (1) */
    unsigned size;           /* --size: payload bytes (64) */
    unsigned conns;          /* --conns: connections / nodes (1) */
    unsigned bidir;          /* --bidir N: the server also keeps N in flight */
    unsigned fanout;         /* --fanout N: the server broadcasts to N children */
    int echo_only;           /* --echo-only: client answers, never calls */
    int allocs;              /* --allocs: count allocations (ember) */
    int idle;                /* --idle: register and stay idle (ember) */
    unsigned long calls;     /* --calls N: make exactly N calls, then stop
                              * (no clock, no window: the instruction count) */
} bench_opts;

/* Parses argv; prints usage and exits 2 on a bad option. */
void bench_parse(bench_opts *o, int argc, char **argv, const char *prog);

/*
 * The measurement window: samples count from start + warmup to
 * start + warmup + secs.
 */
typedef struct bench_window {
    uint64_t t_measure;      /* start of the measured interval */
    uint64_t t_end;          /* end of the measured interval */
    uint64_t calls;          /* calls completed in the interval */
    uint64_t peer_calls;     /* peer's calls served in the interval (bidir) */
    bench_hist hist;
} bench_window;

void bench_window_start(bench_window *w, const bench_opts *o);
/* Records a call sent at t_sent (ns) that completed at now; it counts if it
 * completed inside the interval. Returns 1 once the interval is over. */
int bench_window_record(bench_window *w, uint64_t t_sent, uint64_t now);
/* Prints "calls_per_s=N p50_us=X p99_us=Y" (calls + peer_calls). */
void bench_window_print(const bench_window *w);

/*
 * The --calls mode: a client makes exactly o->calls calls, at most
 * o->inflight at a time, and reads no clock per call, so that two runs of
 * N and 2N calls differ by the cost of N calls alone.
 */
typedef struct bench_count {
    unsigned long sent, done, total;
} bench_count;

/* Calls to start now (at the start: inflight, then one per completion). */
unsigned long bench_count_start(bench_count *c, const bench_opts *o);
/* One call completed: returns 1 when it was the last, else whether to send
 * another (*more). */
int bench_count_done(bench_count *c, int *more);

/* Raises RLIMIT_NOFILE to the hard limit (or want, if lower). */
void bench_raise_nofile(unsigned long want);

/* Prints a message and exits 1. */
void bench_die(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2), noreturn))
#endif
    ;

/* Sets O_NONBLOCK and TCP_NODELAY. */
void bench_sock_tune(int fd);

/* A TCP listener on 127.0.0.1, port 0; *port receives the port chosen. */
int bench_listen(int *port);
/* A blocking connect to host:port, then tuned. */
int bench_connect(const char *host, int port);

/* Announces the listening port on stdout ("port=N\n") and flushes. */
void bench_announce_port(int port);

/* --size bytes of 'x', NUL-terminated (malloc'ed); exits when out of memory. */
char *bench_payload(unsigned size);

struct event_base;
/* A timer armed for warm-up + secs + slack seconds that gives up
 * ("PROG: deadline passed, giving up", exit 1). Free it with event_free. */
struct event *bench_deadline(struct event_base *base, const bench_opts *o, int slack,
                             const char *prog);

#endif
