/*
 * htab.c — an intrusive hash of objects by a 64-bit key: a connection's
 * incoming calls by the caller's call id (for CANCEL, and to refuse an id
 * already in flight) and the peer's objects we hold by object id. Chained,
 * power-of-two buckets, grown to keep chains short; keys are hashed with
 * SipHash under a per-process random key (hash.c), so a peer cannot choose
 * ids that collide. Nothing is allocated per object. Put, get and delete are
 * inline in hash-internal.h.
 */
#include "ember-internal.h"
#include "hash-internal.h"

/* Doubles the buckets; out of memory keeps the table (chains get longer). */
void ember_htab_grow(ember_htab *t)
{
    uint32_t nn = t->nb ? t->nb * 2 : 8;
    ember_hash_init();
    ember_hnode **nb = nn > t->nb ? ember_calloc(sizeof *nb * nn) : NULL;
    if (!nb)
        return;
    for (uint32_t i = 0; i < t->nb; i++)
        for (ember_hnode *x = t->b[i], *nx; x; x = nx) {
            nx = x->next;
            uint32_t h = x->hash & (nn - 1);
            x->next = nb[h];
            nb[h] = x;
        }
    ember_free(t->b, sizeof *t->b * t->nb);
    t->b = nb;
    t->nb = nn;
}

ember_hnode *ember_htab_take_all(ember_htab *t)
{
    ember_hnode *all = NULL;
    for (uint32_t i = 0; i < t->nb; i++)
        for (ember_hnode *x = t->b[i], *nx; x; x = nx) {
            nx = x->next;
            x->next = all;
            all = x;
        }
    if (t->nb)
        memset(t->b, 0, sizeof *t->b * t->nb);
    t->n = 0;
    return all;
}

void ember_htab_free(ember_htab *t)
{
    ember_free(t->b, sizeof *t->b * t->nb);
    t->b = NULL;
    t->nb = t->n = 0;
}
