/*
 * handshake-internal.h — the registration messages (HELLO, REGISTER,
 * WELCOME, REFUSED). Their payloads are tagged structs (codec.h), so fields
 * can be added later (the shared-secret proof, say) and old peers skip them.
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
#ifndef EMBER_HANDSHAKE_INTERNAL_H
#define EMBER_HANDSHAKE_INTERNAL_H

#include "wire-internal.h"

#define EMBER_MAGIC "EMBR"
#define EMBER_PROTO_MIN 2
#define EMBER_PROTO_MAX EMBER_PROTOCOL_VERSION

/* Node names: 1..EMBER_NAME_MAX bytes of UTF-8, no control characters. */
#define EMBER_NAME_MAX 255

#define EMBER_MAX_UNREGISTERED 1024
#define EMBER_UNREGISTERED_BYTES ((size_t)64 << 20)

#define EMBER_BACKOFF_MIN_MS 100
#define EMBER_BACKOFF_MAX_MS 5000

/* REFUSED codes. */
enum {
    EMBER_REFUSE_NAME_IN_USE = 1,
    EMBER_REFUSE_VERSION = 2,
    EMBER_REFUSE_BAD_NAME = 3,
    EMBER_REFUSE_AUTH = 4,
    EMBER_REFUSE_STOPPING = 5
};

typedef struct ember_svcinfo {
    const char *name;
    uint64_t fingerprint;
} ember_svcinfo;

typedef struct ember_hs {
    /* HELLO */
    const char *magic;
    uint32_t vmin, vmax;
    ember_bytes nonce;
    /* HELLO, REGISTER: the largest frame the sender takes and the decode
     * limits it reads values under (each 0: not said) */
    uint32_t max_frame;
    ember_dec_limits lim;
    /* REGISTER */
    uint32_t version;
    const char *name;              /* NUL-terminated; checked by the root */
    size_t name_len;
    ember_bytes proof;
    ember_bytes node_nonce;
    /* WELCOME */
    uint32_t id, heartbeat_ms, dead_after_ms;
    ember_bytes root_proof;
    /* REFUSED */
    uint32_t code;
    const char *message;
    /* HELLO, REGISTER, WELCOME: the sender's exported services */
    ember_svcinfo *svcs;
    uint32_t nsvcs;
} ember_hs;

/* Decodes the payload of a handshake frame into hs (strings in arena). */
int ember_hs_decode(const ember_frame *f, ember_arena *arena, ember_hs *hs,
                    const char **why);
/* Sends a handshake frame; services come from ex (may be NULL). */
int ember_hs_send(ember_conn *c, uint8_t kind, const ember_hs *hs,
                  const ember_exports *ex);

#endif
