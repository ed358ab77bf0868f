/*
 * auth.c — the shared-secret registration proofs (docs/protocol.md,
 * "Authentication"). The cryptography is OpenSSL's: HMAC-SHA256 for the
 * proofs, RAND_bytes for nonces, CRYPTO_memcmp to compare without leaking
 * through timing how many leading bytes matched.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "auth-internal.h"
#include "ember-internal.h"

int ember_random(void *p, size_t n)
{
    if (RAND_bytes(p, (int)n) != 1)
        return ember_seterr("no randomness available (RAND_bytes failed)");
    return 0;
}

int ember_auth_mac(const char *secret, const char *label, const uint8_t *a,
                   const uint8_t *b, const void *tail, size_t tail_len,
                   uint8_t out[EMBER_MAC_LEN])
{
    /* label || a || b || tail, in one buffer: the names we sign are short
     * (the root refuses names over 255 bytes before verifying). */
    uint8_t msg[32 + 2 * EMBER_NONCE_LEN + 256];
    size_t ll = strlen(label);
    if (ll > 32 || tail_len > 256)
        return -1;
    memcpy(msg, label, ll);
    memcpy(msg + ll, a, EMBER_NONCE_LEN);
    memcpy(msg + ll + EMBER_NONCE_LEN, b, EMBER_NONCE_LEN);
    if (tail_len)
        memcpy(msg + ll + 2 * EMBER_NONCE_LEN, tail, tail_len);
    unsigned int outlen = 0;
    if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), msg,
              ll + 2 * EMBER_NONCE_LEN + tail_len, out, &outlen) ||
        outlen != EMBER_MAC_LEN)
        return -1;
    return 0;
}

int ember_auth_register_proof(const char *secret, const uint8_t *root_nonce,
                              const uint8_t *node_nonce, const char *name,
                              size_t name_len, uint8_t out[EMBER_MAC_LEN])
{
    return ember_auth_mac(secret, "ember-register-v1", root_nonce, node_nonce,
                          name, name_len, out);
}

int ember_auth_welcome_proof(const char *secret, const uint8_t *node_nonce,
                             const uint8_t *root_nonce, uint32_t child_id,
                             uint8_t out[EMBER_MAC_LEN])
{
    /* The id as 4 bytes, little endian like every fixed width on the wire. */
    uint8_t id[4] = {(uint8_t)child_id, (uint8_t)(child_id >> 8),
                     (uint8_t)(child_id >> 16), (uint8_t)(child_id >> 24)};
    return ember_auth_mac(secret, "ember-welcome-v1", node_nonce, root_nonce,
                          id, sizeof id, out);
}

bool ember_auth_check(const ember_bytes *got, const uint8_t want[EMBER_MAC_LEN])
{
    /* The length is public; only the contents are compared in constant time. */
    return got->len == EMBER_MAC_LEN &&
           CRYPTO_memcmp(got->data, want, EMBER_MAC_LEN) == 0;
}
