/*
 * hash-internal.h — keyed hashing of what peers choose (hash.c) and the
 * intrusive hash table keyed by 64-bit ids (htab.c). A leaf.
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
#ifndef EMBER_HASH_INTERNAL_H
#define EMBER_HASH_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* ---- hash.c: keyed hashing of what peers choose ---- */

/* SipHash's initial state for one key. */
typedef struct ember_sipkey {
    uint64_t v[4];
} ember_sipkey;

/* The process's random key (set by ember_hash_init). */
extern ember_sipkey ember_sipkey_;
/* Draws the key once (thread-safe). ember_ep_init calls it, so the key is
 * set before any table of an endpoint hashes its first key (put hashes
 * before the table's first grow). */
void ember_hash_init(void);
void ember_sipkey_init(ember_sipkey *s, uint64_t k0, uint64_t k1);
/* SipHash-c-d of data[0..n) (c = 1, d = 3 for the tables; 2-4 is the
 * reference, for tests). */
uint64_t ember_siphash(const ember_sipkey *s, const void *data, size_t n,
                       int crounds, int drounds);
/* A NUL-terminated string under the process key (child names). */
uint32_t ember_hash_str(const char *s);

static inline uint64_t ember_rotl64(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

static inline void ember_sipround(uint64_t v[4])
{
    v[0] += v[1]; v[1] = ember_rotl64(v[1], 13); v[1] ^= v[0];
    v[0] = ember_rotl64(v[0], 32);
    v[2] += v[3]; v[3] = ember_rotl64(v[3], 16); v[3] ^= v[2];
    v[0] += v[3]; v[3] = ember_rotl64(v[3], 21); v[3] ^= v[0];
    v[2] += v[1]; v[1] = ember_rotl64(v[1], 17); v[1] ^= v[2];
    v[2] = ember_rotl64(v[2], 32);
}

/* SipHash-1-3 of one 64-bit key (its 8 little-endian bytes) under the
 * process key: what ember_siphash(&ember_sipkey_, bytes, 8, 1, 3) gives,
 * in five rounds and no loads. Once per call served: inline. */
static inline uint64_t ember_hash_u64(uint64_t m)
{
    uint64_t v[4] = {ember_sipkey_.v[0], ember_sipkey_.v[1],
                     ember_sipkey_.v[2], ember_sipkey_.v[3]};
    const uint64_t b = (uint64_t)8 << 56;
    v[3] ^= m;
    ember_sipround(v);
    v[0] ^= m;
    v[3] ^= b;
    ember_sipround(v);
    v[0] ^= b;
    v[2] ^= 0xff;
    ember_sipround(v);
    ember_sipround(v);
    ember_sipround(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* ---- htab.c: objects hashed by a 64-bit key, intrusive ---- */

typedef struct ember_hnode {
    struct ember_hnode *next;
    uint64_t key;
    uint32_t hash;                 /* ember_hash_u64(key), kept for del and grow */
} ember_hnode;

typedef struct ember_htab {
    ember_hnode **b;
    uint32_t nb, n;
    uint64_t probes;               /* nodes looked at, for tests */
} ember_htab;

void ember_htab_grow(ember_htab *t);
/* Empties t; returns what it held, chained through next. */
ember_hnode *ember_htab_take_all(ember_htab *t);
void ember_htab_free(ember_htab *t);

/* Put, get and delete run once or twice per call: inline. Keys are hashed
 * under the process's random key (hash.c), so chains stay short whatever
 * keys a peer picks. */

/* Inserts x under key: 0; 1 when a node with that key is already in (x is
 * not inserted); -1 only when there is no table at all (out of memory). */
static inline int ember_htab_put_h(ember_htab *t, ember_hnode *x, uint64_t key,
                                   uint32_t h)
{
    if (t->n >= t->nb)
        ember_htab_grow(t);
    if (!t->nb)
        return -1;
    ember_hnode **head = &t->b[h & (t->nb - 1)];
    for (ember_hnode *y = *head; y; y = y->next) {
        t->probes++;
        if (y->key == key)
            return 1;
    }
    x->key = key;
    x->hash = h;
    x->next = *head;
    *head = x;
    t->n++;
    return 0;
}

/* The _h forms take ember_hash_u64(key) computed by the caller. */
static inline ember_hnode *ember_htab_get_h(ember_htab *t, uint64_t key, uint32_t h)
{
    if (!t->nb)
        return NULL;
    ember_hnode *x = t->b[h & (t->nb - 1)];
    for (; x; x = x->next) {
        t->probes++;
        if (x->key == key)
            break;
    }
    return x;
}

static inline int ember_htab_put(ember_htab *t, ember_hnode *x, uint64_t key)
{
    return ember_htab_put_h(t, x, key, (uint32_t)ember_hash_u64(key));
}

static inline ember_hnode *ember_htab_get(ember_htab *t, uint64_t key)
{
    return ember_htab_get_h(t, key, (uint32_t)ember_hash_u64(key));
}

static inline void ember_htab_del(ember_htab *t, ember_hnode *x)
{
    if (!t->nb)
        return;
    for (ember_hnode **pp = &t->b[x->hash & (t->nb - 1)]; *pp;
         pp = &(*pp)->next) {
        t->probes++;
        if (*pp == x) {
            *pp = x->next;
            t->n--;
            return;
        }
    }
}

#define EMBER_CONTAINER(p, type, member) \
    ((type *)(void *)((char *)(p) - offsetof(type, member)))

#endif
