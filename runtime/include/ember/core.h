/*
 * ember/core.h — allocator hook, logging, call outcomes and limits.
 */
#ifndef EMBER_CORE_H
#define EMBER_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EMBER_VERSION_STRING "0.1.0"
/* Wire protocol version spoken in the handshake (docs/protocol.md). */
#define EMBER_PROTOCOL_VERSION 3

/*
 * Allocator hook, in the manner of lua_Alloc: with nsize == 0 free ptr and
 * return NULL; otherwise behave like realloc(ptr, nsize). osize is the old
 * size when known (0 otherwise). Set it before creating any root or node;
 * every allocation of the runtime goes through it.
 */
typedef void *(*ember_alloc_fn)(void *ud, void *ptr, size_t osize, size_t nsize);
void ember_set_allocator(ember_alloc_fn fn, void *ud);
/* Allocations made through the hook so far (allocations per call: bench). */
uint64_t ember_alloc_count(void);

/* Logging. The default writes to stderr at INFO and above;
 * EMBER_LOG=debug|info|warn|error|off in the environment sets the level. */
typedef enum ember_log_level {
    EMBER_LOG_DEBUG = 0,
    EMBER_LOG_INFO = 1,
    EMBER_LOG_WARN = 2,
    EMBER_LOG_ERROR = 3,
    EMBER_LOG_OFF = 4
} ember_log_level;

typedef void (*ember_log_fn)(ember_log_level level, const char *msg, void *ud);
/* fn NULL restores the default writer. */
void ember_set_log(ember_log_fn fn, void *ud);
void ember_set_log_level(ember_log_level level);
ember_log_level ember_log_get_level(void);
/* What ember does to every line before your log callback sees it, for your
 * own lines that quote a peer (o->message, a reason): copies src[0..n) to
 * dst (NUL-terminated, cut to cap) with \n \r \t written as two
 * characters and other control bytes (C0, DEL, C1) and bytes that are not
 * UTF-8 as \xNN; printable UTF-8 and backslashes are kept, so escaping
 * twice changes nothing. Returns the length written. */
size_t ember_escape(char *dst, size_t cap, const char *src, size_t n);

/* The rules of node names: 0 when name[0..len) is 1..255 bytes of valid
 * UTF-8 without control characters (C0, DEL, C1, U+2028, U+2029, the
 * bidirectional marks and overrides: a name goes into log lines and onto
 * screens); -1 with ember_last_error() naming the rule broken. For names
 * an application shows others too (a player's). */
int ember_name_check(const char *name, size_t len);

/* Why the last call that returned -1 (or NULL) on this thread failed. */
const char *ember_last_error(void);

/*
 * How a call ended. Exactly one outcome is delivered per call; o->message
 * says more in words.
 */
typedef enum ember_status {
    EMBER_OK = 0,      /* the reply arrived and decoded */
    EMBER_RAISED,      /* the handler raised an error declared in `raises` */
    EMBER_FAILED,      /* the handler failed with a message (remote failure),
                          or the peer failed the call for us: our arguments
                          did not decode there, its reply could not be
                          encoded (a string in it not UTF-8, say), or it
                          raised an error we do not know; or, locally, a
                          string argument was not valid UTF-8 (not sent;
                          o->message names the argument) */
    EMBER_TIMEOUT,     /* no reply before the deadline */
    EMBER_LOST,        /* the connection went before the reply, for any
                          reason: the peer closed it, went silent past
                          dead_after_ms, was dropped, or broke the protocol
                          or a limit (then o->message reads "connection lost:
                          peer broke the protocol: <why>") */
    EMBER_CANCELLED,   /* cancelled by the caller */
    EMBER_UNAVAILABLE, /* no connection to call on when the call was made, or
                          the peer is stopping and refused it */
    EMBER_NO_METHOD,   /* the peer does not serve this method or object */
    EMBER_LIMIT,       /* refused locally before sending: max_outstanding
                          calls in flight, or out_high_water bytes queued to
                          a peer that is not reading (or the peer ran out
                          of memory for the call) */
    EMBER_PROTOCOL,    /* this call's own reply arrived but could not be
                          decoded (generated code); never used for calls
                          that were merely pending on a broken connection */
    EMBER_SHUTDOWN     /* the local root or node was freed with the call pending */
} ember_status;

const char *ember_status_name(ember_status s);

/*
 * Limits, each with a safe default (ember_limits_default). A peer that
 * breaks one is disconnected with a logged reason.
 */
typedef struct ember_limits {
    uint32_t max_frame;        /* bytes in one frame: 16 MiB */
    uint32_t max_depth;        /* nesting of values: 64 */
    uint32_t max_elems;        /* elements in one list or map: 16 Mi */
    uint32_t max_string;       /* bytes in one string or bytes value: 16 MiB */
    uint32_t max_outstanding;  /* calls in flight on one connection, each way: 65536 */
    size_t out_high_water;     /* output bytes queued to a peer before calls
                                  to it fail fast and we stop reading from it
                                  until it drains to half: 64 MiB (64 KiB
                                  before registration) */
    uint32_t call_timeout_ms;  /* default call deadline: 30000 */
    uint32_t heartbeat_ms;     /* ping after this much silence: 2000 */
    uint32_t dead_after_ms;    /* declare the peer lost after this much silence: 6000 */
    uint32_t handshake_ms;     /* time allowed to register: 5000 */
    /* Decode budget: the values decoded from one frame (arrays, strings,
     * optional structs...) may take at most
     * decode_floor + decode_ratio x payload bytes of memory, or the frame is
     * a protocol violation. Defaults: 16 and 64 KiB (docs/security.md). */
    uint32_t decode_ratio;
    uint32_t decode_floor;
    /* Memory held by the decoded arguments of incoming calls not yet
     * answered (deferred replies), per connection; a peer that sends a call
     * while its calls hold more is disconnected: 256 MiB. */
    size_t max_deferred_bytes;
    /* Graceful stop (ember_root_shutdown, ember_node_close): how long calls
     * in flight may take to end. Past it, calls served and still open are
     * orphaned, calls made and still pending end EMBER_SHUTDOWN, and the
     * stop completes: 30000. */
    uint32_t shutdown_ms;
} ember_limits;

void ember_limits_default(ember_limits *l);

/*
 * TLS for links between machines (docs/runtime.md, "TLS"). Point a root's or
 * node's config at one of these; NULL there means plain TCP. Files are PEM.
 * The strings are read when the root or node is created.
 */
typedef struct ember_tls_config {
    const char *cert_file;    /* our certificate (chain): required on a root;
                                 on a node, the client certificate (optional) */
    const char *key_file;     /* the private key of cert_file */
    const char *ca_file;      /* CAs that sign the peer's certificate: required
                                 on a node; on a root, checks client certs */
    const char *server_name;  /* node: the name (or IP) the root's certificate
                                 must carry; NULL: the host part of the address
                                 given to ember_node_connect */
    int require_client_cert;  /* root: refuse nodes without a certificate
                                 signed by ca_file */
} ember_tls_config;

#ifdef __cplusplus
}
#endif
#endif
