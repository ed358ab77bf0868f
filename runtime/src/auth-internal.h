/*
 * auth-internal.h — shared-secret proofs and nonces (auth.c, libcrypto).
 * A leaf.
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
#ifndef EMBER_AUTH_INTERNAL_H
#define EMBER_AUTH_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ember-internal.h"

#define EMBER_NONCE_LEN 32  /* HELLO and REGISTER nonces */
#define EMBER_MAC_LEN 32    /* HMAC-SHA256 */

/* ---- auth.c: shared-secret proofs (libcrypto) ---- */
int ember_random(void *p, size_t n);
int ember_auth_mac(const char *secret, const char *label, const uint8_t *a,
                   const uint8_t *b, const void *tail, size_t tail_len,
                   uint8_t out[EMBER_MAC_LEN]);
/* HMAC-SHA256(secret, "ember-register-v1" || root_nonce || node_nonce ||
 * name): name_len bytes of name, as sent (name may be NULL when 0). */
int ember_auth_register_proof(const char *secret, const uint8_t *root_nonce,
                              const uint8_t *node_nonce, const char *name,
                              size_t name_len, uint8_t out[EMBER_MAC_LEN]);
/* HMAC-SHA256(secret, "ember-welcome-v1" || node_nonce || root_nonce || id LE32) */
int ember_auth_welcome_proof(const char *secret, const uint8_t *node_nonce,
                             const uint8_t *root_nonce, uint32_t child_id,
                             uint8_t out[EMBER_MAC_LEN]);
/* Constant-time: got is exactly want. */
bool ember_auth_check(const ember_bytes *got, const uint8_t want[EMBER_MAC_LEN]);

#endif
