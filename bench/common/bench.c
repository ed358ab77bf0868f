/* bench/common/bench.c — see bench.h. */
#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static unsigned msb64(uint64_t v)
{
#if defined(__GNUC__)
    return 63u - (unsigned)__builtin_clzll(v);   /* v > 0 here */
#else
    unsigned n = 0;
    while (v >>= 1)
        n++;
    return n;
#endif
}

void bench_hist_add(bench_hist *h, uint64_t ns)
{
    size_t idx;
    if (ns < BENCH_HIST_SUB) {
        idx = (size_t)ns;
    } else {
        unsigned k = msb64(ns) - BENCH_HIST_SUB_BITS;
        idx = BENCH_HIST_SUB + (size_t)k * BENCH_HIST_SUB +
              (size_t)((ns >> k) & (BENCH_HIST_SUB - 1));
    }
    h->bucket[idx]++;
    h->count++;
}

/* The middle of bucket idx, in ns. */
static double bucket_value(size_t idx)
{
    if (idx < BENCH_HIST_SUB)
        return (double)idx;
    size_t k = (idx - BENCH_HIST_SUB) / BENCH_HIST_SUB;
    size_t sub = (idx - BENCH_HIST_SUB) % BENCH_HIST_SUB;
    double low = (double)((uint64_t)(BENCH_HIST_SUB + sub) << k);
    return low + (double)((uint64_t)1 << k) / 2.0;
}

double bench_hist_quantile(const bench_hist *h, double q)
{
    if (h->count == 0)
        return 0.0;
    uint64_t want = (uint64_t)(q * (double)h->count);
    if (want >= h->count)
        want = h->count - 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen > want)
            return bucket_value(i);
    }
    return bucket_value(BENCH_HIST_BUCKETS - 1);
}

static void usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s [--port N] [--host A] [--secs S] [--warmup S] [--inflight N]\n"
            "       [--size BYTES] [--conns N] [--bidir N] [--fanout N] [--echo-only]\n"
            "       [--allocs] [--idle] [--calls N]\n",
            prog);
    exit(2);
}

static unsigned long num_arg(const char *prog, const char *v)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (errno || *end || end == v || n > 100000000ul)
        usage(prog);
    return n;
}

static double secs_arg(const char *prog, const char *v)
{
    char *end;
    double d = strtod(v, &end);
    if (*end || end == v || !(d >= 0.0) || d > 3600.0)
        usage(prog);
    return d;
}

void bench_parse(bench_opts *o, int argc, char **argv, const char *prog)
{
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->secs = 3.0;
    o->warmup = 0.5;
    o->inflight = 1;
    o->size = 64;
    o->conns = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--echo-only")) {
            o->echo_only = 1;
        } else if (!strcmp(a, "--allocs")) {
            o->allocs = 1;
        } else if (!strcmp(a, "--idle")) {
            o->idle = 1;
        } else if (!v) {
            usage(prog);
        } else {
            i++;
            if (!strcmp(a, "--port"))
                o->port = (int)num_arg(prog, v);
            else if (!strcmp(a, "--host"))
                o->host = v;
            else if (!strcmp(a, "--secs"))
                o->secs = secs_arg(prog, v);
            else if (!strcmp(a, "--warmup"))
                o->warmup = secs_arg(prog, v);
            else if (!strcmp(a, "--inflight"))
                o->inflight = (unsigned)num_arg(prog, v);
            else if (!strcmp(a, "--size"))
                o->size = (unsigned)num_arg(prog, v);
            else if (!strcmp(a, "--conns"))
                o->conns = (unsigned)num_arg(prog, v);
            else if (!strcmp(a, "--bidir"))
                o->bidir = (unsigned)num_arg(prog, v);
            else if (!strcmp(a, "--fanout"))
                o->fanout = (unsigned)num_arg(prog, v);
            else if (!strcmp(a, "--calls"))
                o->calls = num_arg(prog, v);
            else
                usage(prog);
        }
    }
    if (o->port > 65535 || o->size > (64u << 20) || o->inflight == 0 || o->conns == 0)
        usage(prog);
}

void bench_window_start(bench_window *w, const bench_opts *o)
{
    memset(w, 0, sizeof *w);
    uint64_t now = bench_now_ns();
    w->t_measure = now + (uint64_t)(o->warmup * 1e9);
    w->t_end = w->t_measure + (uint64_t)(o->secs * 1e9);
}

int bench_window_record(bench_window *w, uint64_t t_sent, uint64_t now)
{
    if (now >= w->t_end)
        return 1;
    if (now >= w->t_measure) {
        w->calls++;
        bench_hist_add(&w->hist, now - t_sent);
    }
    return 0;
}

void bench_window_print(const bench_window *w)
{
    double secs = (double)(w->t_end - w->t_measure) / 1e9;
    printf("calls_per_s=%.0f p50_us=%.1f p99_us=%.1f\n",
           (double)(w->calls + w->peer_calls) / secs,
           bench_hist_quantile(&w->hist, 0.50) / 1e3,
           bench_hist_quantile(&w->hist, 0.99) / 1e3);
    fflush(stdout);
}

unsigned long bench_count_start(bench_count *c, const bench_opts *o)
{
    c->total = o->calls;
    c->done = 0;
    c->sent = o->inflight < o->calls ? o->inflight : o->calls;
    return c->sent;
}

int bench_count_done(bench_count *c, int *more)
{
    *more = 0;
    if (++c->done == c->total)
        return 1;
    if (c->sent < c->total) {
        c->sent++;
        *more = 1;
    }
    return 0;
}

void bench_raise_nofile(unsigned long want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl))
        return;
    rlim_t target = rl.rlim_max;
    if (want && (rlim_t)want < target)
        target = (rlim_t)want;
    if (rl.rlim_cur < target) {
        rl.rlim_cur = target;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

void bench_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

void bench_sock_tune(int fd)
{
    int one = 1;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        bench_die("fcntl: %s", strerror(errno));
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
        bench_die("TCP_NODELAY: %s", strerror(errno));
}

int bench_listen(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        bench_die("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 4096) < 0)
        bench_die("bind/listen: %s", strerror(errno));
    socklen_t len = sizeof sa;
    if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
        bench_die("getsockname: %s", strerror(errno));
    *port = ntohs(sa.sin_port);
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    return fd;
}

int bench_connect(const char *host, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        bench_die("socket: %s", strerror(errno));
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        bench_die("bad address %s", host);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        bench_die("connect %s:%d: %s", host, port, strerror(errno));
    bench_sock_tune(fd);
    return fd;
}

void bench_announce_port(int port)
{
    printf("port=%d\n", port);
    fflush(stdout);
}

char *bench_payload(unsigned size)
{
    char *p = malloc((size_t)size + 1);
    if (!p)
        bench_die("out of memory");
    memset(p, 'x', size);
    p[size] = '\0';
    return p;
}

static const char *deadline_prog;

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    bench_die("%s: deadline passed, giving up", deadline_prog);
}

struct event *bench_deadline(struct event_base *base, const bench_opts *o, int slack,
                             const char *prog)
{
    struct timeval limit = {(time_t)(o->warmup + o->secs) + slack, 0};
    deadline_prog = prog;
    struct event *dl = evtimer_new(base, on_deadline, NULL);
    if (!dl || evtimer_add(dl, &limit))
        bench_die("%s: cannot arm the deadline", prog);
    return dl;
}
