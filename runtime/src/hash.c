/*
 * hash.c — keyed hashing for every table keyed by what a peer chooses
 * (incoming call ids, the peer's object ids, child names): SipHash-1-3
 * under a key drawn once per process from getrandom(). Without the key a
 * peer cannot pick keys that share a bucket, so a table's chains stay
 * short whatever ids or names it sends. The 8-byte form used per call is
 * inline in hash-internal.h; this file has the key and the byte-string form.
 */
#include <pthread.h>
#include <sys/random.h>

#include "auth-internal.h"
#include "ember-internal.h"
#include "hash-internal.h"

ember_sipkey ember_sipkey_;

static void key_init(void)
{
    uint64_t k[2];
    if (getrandom(k, sizeof k, 0) != (ssize_t)sizeof k &&
        ember_random(k, sizeof k)) {
        /* No entropy at all: still a key nobody chose, if a weak one. */
        k[0] = ember_now_us() * 0x9e3779b97f4a7c15ull;
        k[1] = (uint64_t)(uintptr_t)&k ^ 0xc2b2ae3d27d4eb4full;
    }
    ember_sipkey_init(&ember_sipkey_, k[0], k[1]);
}

void ember_hash_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, key_init);
}

void ember_sipkey_init(ember_sipkey *s, uint64_t k0, uint64_t k1)
{
    s->v[0] = k0 ^ 0x736f6d6570736575ull;
    s->v[1] = k1 ^ 0x646f72616e646f6dull;
    s->v[2] = k0 ^ 0x6c7967656e657261ull;
    s->v[3] = k1 ^ 0x7465646279746573ull;
}

uint64_t ember_siphash(const ember_sipkey *s, const void *data, size_t n,
                       int crounds, int drounds)
{
    const uint8_t *p = data;
    uint64_t v[4] = {s->v[0], s->v[1], s->v[2], s->v[3]};
    size_t i = 0;
    for (; n - i >= 8; i += 8) {
        uint64_t m = 0;
        for (int k = 7; k >= 0; k--)
            m = m << 8 | p[i + (size_t)k];
        v[3] ^= m;
        for (int r = 0; r < crounds; r++)
            ember_sipround(v);
        v[0] ^= m;
    }
    uint64_t b = (uint64_t)n << 56;
    for (size_t k = 0; i + k < n; k++)
        b |= (uint64_t)p[i + k] << (8 * k);
    v[3] ^= b;
    for (int r = 0; r < crounds; r++)
        ember_sipround(v);
    v[0] ^= b;
    v[2] ^= 0xff;
    for (int r = 0; r < drounds; r++)
        ember_sipround(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

uint32_t ember_hash_str(const char *s)
{
    ember_hash_init();
    return (uint32_t)ember_siphash(&ember_sipkey_, s, strlen(s), 1, 3);
}
