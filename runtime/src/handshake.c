/*
 * handshake.c — encoding and decoding of the registration messages.
 *
 *   HELLO    { 1: string magic "EMBR", 2: u32 min version, 3: u32 max version,
 *              4: bytes nonce, 5: Service services (repeated),
 *              6..11: the sender's limits }
 *   REGISTER { 1: u32 version, 2: string name, 3: Service services (repeated),
 *              4: bytes proof, 5: bytes node_nonce, 6..11: the sender's limits }
 * The limits: 6: u32 max_frame, 7: u32 max_depth, 8: u32 max_elems,
 * 9: u32 max_string, 10: u32 decode_ratio, 11: u32 decode_floor.
 *   WELCOME  { 1: u32 child id, 2: u32 heartbeat_ms, 3: u32 dead_after_ms,
 *              4: Service services (repeated), 5: bytes root_proof }
 * proof / node_nonce / root_proof are present only with a shared secret
 * (auth.c has the exact HMAC inputs).
 *   REFUSED  { 1: u32 code, 2: string message }
 *   Service  { 1: string name, 2: u64 fingerprint }
 * Unknown tags are skipped, so fields can be added compatibly.
 */
#include <string.h>

#include "conn-internal.h"
#include "handshake-internal.h"
#include "ref-internal.h"
#include "wire-internal.h"

/* The tag that carries repeated services, per kind. */
static uint32_t svc_tag(uint8_t kind)
{
    switch (kind) {
    case EMBER_FR_HELLO: return 5;
    case EMBER_FR_REGISTER: return 3;
    case EMBER_FR_WELCOME: return 4;
    default: return 0;
    }
}

static int dec_service(ember_dec *d, unsigned wt, ember_hs *hs)
{
    const uint8_t *saved;
    ember_svcinfo s = {NULL, 0};
    uint32_t tag;
    unsigned w;
    int k;
    if (ember_dec_enter(d, wt, &saved))
        return -1;
    while ((k = ember_dec_field(d, &tag, &w)) == 1) {
        if (tag == 1)
            k = ember_dec_string(d, w, &s.name);
        else if (tag == 2)
            k = ember_dec_u64(d, w, &s.fingerprint);
        else
            k = ember_dec_skip(d, w);
        if (k)
            return -1;
    }
    if (k < 0)
        return -1;
    ember_dec_leave(d, saved);
    if (!s.name)
        return ember_dec_fail(d, "service without a name");
    if (hs->nsvcs >= 4096)
        return ember_dec_fail(d, "too many services");
    /* Grow by doubling inside the arena (old arrays are simply left). */
    if ((hs->nsvcs & (hs->nsvcs - 1)) == 0) {
        uint32_t cap = hs->nsvcs ? hs->nsvcs * 2 : 1;
        ember_svcinfo *nv = ember_dec_alloc(d, sizeof *nv * cap);
        if (!nv)
            return -1;
        if (hs->nsvcs)
            memcpy(nv, hs->svcs, sizeof *nv * hs->nsvcs);
        hs->svcs = nv;
    }
    hs->svcs[hs->nsvcs++] = s;
    return 0;
}

/* REGISTER's name as bytes: one that is not a valid name is refused with
 * the reason (REFUSED "bad name"), not taken for a malformed frame. */
static int dec_name(ember_dec *d, unsigned wt, ember_hs *hs)
{
    ember_bytes b;
    if (ember_dec_bytes(d, wt, &b))
        return -1;
    char *s = ember_dec_alloc(d, b.len + 1);
    if (!s)
        return -1;
    if (b.len)
        memcpy(s, b.data, b.len);
    s[b.len] = 0;
    hs->name = s;
    hs->name_len = b.len;
    return 0;
}

int ember_hs_decode(const ember_frame *f, ember_arena *arena, ember_hs *hs,
                    const char **why)
{
    ember_dec d;
    uint32_t tag;
    unsigned wt;
    int k;
    memset(hs, 0, sizeof *hs);
    ember_dec_init(&d, f->payload, f->len, arena);
    while ((k = ember_dec_field(&d, &tag, &wt)) == 1) {
        if (tag == svc_tag(f->kind)) {
            k = dec_service(&d, wt, hs);
        } else {
            switch (f->kind << 8 | tag) {
            case EMBER_FR_HELLO << 8 | 1: k = ember_dec_string(&d, wt, &hs->magic); break;
            case EMBER_FR_HELLO << 8 | 2: k = ember_dec_u32(&d, wt, &hs->vmin); break;
            case EMBER_FR_HELLO << 8 | 3: k = ember_dec_u32(&d, wt, &hs->vmax); break;
            case EMBER_FR_HELLO << 8 | 4: k = ember_dec_bytes(&d, wt, &hs->nonce); break;
            case EMBER_FR_HELLO << 8 | 6:
            case EMBER_FR_REGISTER << 8 | 6: k = ember_dec_u32(&d, wt, &hs->max_frame); break;
            case EMBER_FR_HELLO << 8 | 7:
            case EMBER_FR_REGISTER << 8 | 7: k = ember_dec_u32(&d, wt, &hs->lim.max_depth); break;
            case EMBER_FR_HELLO << 8 | 8:
            case EMBER_FR_REGISTER << 8 | 8: k = ember_dec_u32(&d, wt, &hs->lim.max_elems); break;
            case EMBER_FR_HELLO << 8 | 9:
            case EMBER_FR_REGISTER << 8 | 9: k = ember_dec_u32(&d, wt, &hs->lim.max_string); break;
            case EMBER_FR_HELLO << 8 | 10:
            case EMBER_FR_REGISTER << 8 | 10: k = ember_dec_u32(&d, wt, &hs->lim.decode_ratio); break;
            case EMBER_FR_HELLO << 8 | 11:
            case EMBER_FR_REGISTER << 8 | 11: k = ember_dec_u32(&d, wt, &hs->lim.decode_floor); break;
            case EMBER_FR_REGISTER << 8 | 1: k = ember_dec_u32(&d, wt, &hs->version); break;
            case EMBER_FR_REGISTER << 8 | 2: k = dec_name(&d, wt, hs); break;
            case EMBER_FR_REGISTER << 8 | 4: k = ember_dec_bytes(&d, wt, &hs->proof); break;
            case EMBER_FR_REGISTER << 8 | 5: k = ember_dec_bytes(&d, wt, &hs->node_nonce); break;
            case EMBER_FR_WELCOME << 8 | 1: k = ember_dec_u32(&d, wt, &hs->id); break;
            case EMBER_FR_WELCOME << 8 | 2: k = ember_dec_u32(&d, wt, &hs->heartbeat_ms); break;
            case EMBER_FR_WELCOME << 8 | 3: k = ember_dec_u32(&d, wt, &hs->dead_after_ms); break;
            case EMBER_FR_WELCOME << 8 | 5: k = ember_dec_bytes(&d, wt, &hs->root_proof); break;
            case EMBER_FR_REFUSED << 8 | 1: k = ember_dec_u32(&d, wt, &hs->code); break;
            case EMBER_FR_REFUSED << 8 | 2: k = ember_dec_string(&d, wt, &hs->message); break;
            default: k = ember_dec_skip(&d, wt); break;
            }
        }
        if (k)
            break;
    }
    if (k < 0 || d.why) {
        *why = d.why ? d.why : "malformed handshake";
        return -1;
    }
    return 0;
}

static void enc_services(ember_enc *e, uint32_t tag, const ember_exports *ex)
{
    if (!ex)
        return;
    for (uint32_t i = 0; i < ex->nsvcs; i++) {
        ember_enc_key(e, tag, EMBER_WT_LEN);
        size_t m = ember_enc_len_begin(e);
        ember_enc_string(e, 1, ex->svcs[i]->name);
        ember_enc_uint(e, 2, ex->svcs[i]->fingerprint);
        ember_enc_len_end(e, m);
    }
}

/* What the peer must keep within when it sends to us: a proxy checks the
 * values it passes on under them (proxy.c). */
static void enc_limits(ember_enc *e, const ember_limits *lim)
{
    ember_enc_uint(e, 6, lim->max_frame);
    ember_enc_uint(e, 7, lim->max_depth);
    ember_enc_uint(e, 8, lim->max_elems);
    ember_enc_uint(e, 9, lim->max_string);
    ember_enc_uint(e, 10, lim->decode_ratio);
    ember_enc_uint(e, 11, lim->decode_floor);
}

int ember_hs_send(ember_conn *c, uint8_t kind, const ember_hs *hs,
                  const ember_exports *ex)
{
    ember_enc e;
    if (ember_frame_begin(c, &e, kind))
        return -1;
    switch (kind) {
    case EMBER_FR_HELLO:
        ember_enc_string(&e, 1, EMBER_MAGIC);
        ember_enc_uint(&e, 2, hs->vmin);
        ember_enc_uint(&e, 3, hs->vmax);
        ember_enc_bytes(&e, 4, hs->nonce);
        enc_limits(&e, &c->ep->lim);
        break;
    case EMBER_FR_REGISTER:
        ember_enc_uint(&e, 1, hs->version);
        ember_enc_string(&e, 2, hs->name);
        if (hs->proof.len)
            ember_enc_bytes(&e, 4, hs->proof);
        if (hs->node_nonce.len)
            ember_enc_bytes(&e, 5, hs->node_nonce);
        enc_limits(&e, &c->ep->lim);
        break;
    case EMBER_FR_WELCOME:
        ember_enc_uint(&e, 1, hs->id);
        ember_enc_uint(&e, 2, hs->heartbeat_ms);
        ember_enc_uint(&e, 3, hs->dead_after_ms);
        if (hs->root_proof.len)
            ember_enc_bytes(&e, 5, hs->root_proof);
        break;
    case EMBER_FR_REFUSED:
        ember_enc_uint(&e, 1, hs->code);
        ember_enc_string(&e, 2, hs->message);
        break;
    }
    enc_services(&e, svc_tag(kind), ex);
    return ember_frame_end(c, &e);
}
