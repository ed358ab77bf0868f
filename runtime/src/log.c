/*
 * log.c — levels, the user's log callback (stderr by default), the
 * EMBER_LOG environment variable and the per-thread last error.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "ember-internal.h"

static const char *level_names[] = {"debug", "info", "warn", "error", "off"};

static void default_log(ember_log_level lv, const char *msg, void *ud)
{
    (void)ud;
    fprintf(stderr, "ember %s: %s\n", level_names[lv], msg);
}

static ember_log_fn g_log = default_log;
static void *g_log_ud;
static int g_level = -1; /* -1: not read from the environment yet */

/* The level EMBER_LOG names, or INFO. A value naming none is said once,
 * at WARN, so that a typo does not quietly keep the default. */
static int env_level(void)
{
    const char *e = getenv("EMBER_LOG");
    if (!e)
        return EMBER_LOG_INFO;
    for (int i = 0; i <= EMBER_LOG_OFF; i++)
        if (strcasecmp(e, level_names[i]) == 0)
            return i;
    char safe[64];
    ember_escape(safe, sizeof safe, e, strlen(e));
    char msg[160];
    snprintf(msg, sizeof msg, "EMBER_LOG=\"%s\" is not a level (debug, info, "
             "warn, error, off): logging at info", safe);
    g_log(EMBER_LOG_WARN, msg, g_log_ud);
    return EMBER_LOG_INFO;
}

void ember_log_reread_env_(void)
{
    g_level = -1;
}

EMBER_API void ember_set_log(ember_log_fn fn, void *ud)
{
    g_log = fn ? fn : default_log;
    g_log_ud = fn ? ud : NULL;
}

EMBER_API void ember_set_log_level(ember_log_level level)
{
    g_level = (int)level;
}

EMBER_API ember_log_level ember_log_get_level(void)
{
    if (g_level < 0) {
        /* INFO while env_level says a bad value: the log callback it runs
         * may ask for the level, or log, and must not read it again. */
        g_level = EMBER_LOG_INFO;
        g_level = env_level();
    }
    return (ember_log_level)g_level;
}

bool ember_log_enabled(ember_log_level lv)
{
    return lv >= ember_log_get_level() && lv < EMBER_LOG_OFF;
}

/* Bytes of the UTF-8 sequence at s[0..n) that is a printable character
 * (not C1 control), or 0. */
static size_t printable_utf8(const uint8_t *s, size_t n)
{
    size_t len = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : 2;
    if (n < len || !ember_utf8_valid((const char *)s, len))
        return 0;
    if (s[0] == 0xc2 && s[1] < 0xa0) /* U+0080..U+009F */
        return 0;
    return len;
}

EMBER_API size_t ember_escape(char *dst, size_t cap, const char *src, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *s = (const uint8_t *)src;
    size_t o = 0;
    if (cap == 0)
        return 0;
    for (size_t i = 0; i < n;) {
        char esc[5];
        size_t k = 0, take = 1;
        const char *out = esc;
        uint8_t c = s[i];
        if (c >= 0x20 && c < 0x7f) {
            esc[k++] = (char)c;
        } else if (c == '\n' || c == '\r' || c == '\t') {
            esc[k++] = '\\';
            esc[k++] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
        } else if (c >= 0x80 && (take = printable_utf8(s + i, n - i)) > 0) {
            out = (const char *)s + i;
            k = take;
        } else {
            take = 1;
            esc[k++] = '\\';
            esc[k++] = 'x';
            esc[k++] = hex[c >> 4];
            esc[k++] = hex[c & 15];
        }
        if (o + k >= cap)
            break;
        memcpy(dst + o, out, k);
        o += k;
        i += take;
    }
    dst[o] = 0;
    return o;
}

void ember_log(ember_log_level lv, const char *fmt, ...)
{
    char buf[512], safe[1024];
    va_list ap;
    if (!ember_log_enabled(lv))
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    /* Log lines carry peer data (names, reasons, addresses): no control
     * characters reach the log, so none can forge a line or drive the
     * operator's terminal. */
    ember_escape(safe, sizeof safe, buf, strlen(buf));
    g_log(lv, safe, g_log_ud);
}

static _Thread_local char last_error[256];

EMBER_API const char *ember_last_error(void)
{
    return last_error;
}

int ember_seterr(const char *fmt, ...)
{
    /* Formatted aside first: an argument may be ember_last_error() itself
     * (a reason passed on), which formatting in place would wipe. */
    char buf[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    memcpy(last_error, buf, sizeof buf);
    return -1;
}

EMBER_API const char *ember_status_name(ember_status s)
{
    static const char *names[] = {
        "ok", "raised", "failed", "timeout", "lost", "cancelled",
        "unavailable", "no-method", "limit", "protocol", "shutdown",
    };
    if ((unsigned)s < sizeof names / sizeof names[0])
        return names[s];
    return "unknown";
}

EMBER_API void ember_limits_default(ember_limits *l)
{
    if (!l)
        return;
    l->max_frame = 16u << 20;
    l->max_depth = 64;
    l->max_elems = 16u << 20;
    l->max_string = 16u << 20;
    l->max_outstanding = 65536;
    l->out_high_water = (size_t)64 << 20;
    l->call_timeout_ms = 30000;
    l->heartbeat_ms = 2000;
    l->dead_after_ms = 6000;
    l->handshake_ms = 5000;
    l->decode_ratio = 16;
    l->decode_floor = 64u << 10;
    l->max_deferred_bytes = (size_t)256 << 20;
    l->shutdown_ms = 30000;
}

void ember_limits_resolve(ember_limits *l)
{
    ember_limits d;
    ember_limits_default(&d);
#define EMBER_ZERO_IS_DEFAULT(f) \
    if (!l->f)                   \
        l->f = d.f
    EMBER_ZERO_IS_DEFAULT(max_frame);
    EMBER_ZERO_IS_DEFAULT(max_depth);
    EMBER_ZERO_IS_DEFAULT(max_elems);
    EMBER_ZERO_IS_DEFAULT(max_string);
    EMBER_ZERO_IS_DEFAULT(max_outstanding);
    EMBER_ZERO_IS_DEFAULT(out_high_water);
    EMBER_ZERO_IS_DEFAULT(call_timeout_ms);
    EMBER_ZERO_IS_DEFAULT(heartbeat_ms);
    EMBER_ZERO_IS_DEFAULT(dead_after_ms);
    EMBER_ZERO_IS_DEFAULT(handshake_ms);
    EMBER_ZERO_IS_DEFAULT(decode_ratio);
    EMBER_ZERO_IS_DEFAULT(decode_floor);
    EMBER_ZERO_IS_DEFAULT(max_deferred_bytes);
    EMBER_ZERO_IS_DEFAULT(shutdown_ms);
#undef EMBER_ZERO_IS_DEFAULT
}

uint64_t ember_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t ember_now_ms(void)
{
    return ember_now_us() / 1000u;
}

/* Made once, for every thread; (locale_t)0 if newlocale failed, and then
 * uselocale leaves the thread's locale as it is. */
static locale_t c_numeric;

static void make_c_numeric(void)
{
    c_numeric = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

locale_t ember_numbers_begin(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, make_c_numeric);
    return uselocale(c_numeric);
}
