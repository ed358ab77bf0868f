/*
 * frame.c — the frame layer: u32 little-endian length (of what follows),
 * u8 kind, for CALL and ONEWAY the u32 service id, the kind's header
 * varints, then the payload up to the end of the
 * frame. See docs/protocol.md.
 */
#include <string.h>

#include "buf-internal.h"
#include "call-internal.h"
#include "conn-internal.h"
#include "ember-internal.h"
#include "ref-internal.h"
#include "wire-internal.h"

const char ember_frame_too_large[] = "frame larger than max_frame";

const uint8_t ember_frame_nhdr_[EMBER_FR_MAX_ + 1] = {
    [EMBER_FR_CALL] = 3,   /* (u32 service id) call id, object id, method id */
    [EMBER_FR_ONEWAY] = 2, /* (u32 service id) object id, method id */
    [EMBER_FR_REPLY] = 1,  /* call id */
    [EMBER_FR_ERROR] = 3,  /* call id, code, error id */
    [EMBER_FR_CANCEL] = 1, /* call id */
    [EMBER_FR_DECREF] = 2, /* object id, count */
};

static const char *kind_names[EMBER_FR_MAX_ + 1] = {
    "?", "HELLO", "REGISTER", "WELCOME", "REFUSED", "CALL", "ONEWAY",
    "REPLY", "ERROR", "CANCEL", "DECREF", "PING", "PONG", "GOODBYE",
};

int ember_frame_nhdr(uint8_t kind)
{
    kind &= (uint8_t)~EMBER_FR_REFS;
    return kind <= EMBER_FR_MAX_ ? ember_frame_nhdr_[kind] : 0;
}

const char *ember_frame_kind_name(uint8_t kind)
{
    kind &= (uint8_t)~EMBER_FR_REFS;
    return kind <= EMBER_FR_MAX_ ? kind_names[kind] : "?";
}

int ember_frame_closed_(ember_enc *e)
{
    e->failed = 1;
    e->bad_utf8 = 0;
    e->owner = NULL;
    return ember_seterr("connection closed");
}

void ember_frame_exports_kept_(ember_conn *c)
{
    for (ember_xobj *x = c->xundo; x; x = x->undo_next)
        x->undo = 0;
    c->xundo = NULL;
}

/* The table: (object id, times this frame sent it) varint pairs, then its
 * length in bytes as a u32 little endian, so the receiver finds it from
 * the frame's end and counts refs it never decodes (docs/protocol.md). */
static void put_refs(ember_conn *c, ember_enc *e)
{
    size_t start = ember_enc_len(e);
    for (ember_xobj *x = c->xundo; x; x = x->undo_next) {
        ember_enc_raw_varint(e, x->by_oid.key);
        ember_enc_raw_varint(e, x->undo);
    }
    size_t n = ember_enc_len(e) - start;
    ember_enc_raw_fixed32(e, (uint32_t)n);
    e->base[4] |= EMBER_FR_REFS;
}

int ember_frame_end_refs_(ember_conn *c, ember_enc *e)
{
    if (c->ref_tables)
        put_refs(c, e);
    if (ember_frame_commit_(c, e))
        return -1; /* the exports were taken back */
    ember_frame_exports_kept_(c);
    return 0;
}

int ember_frame_end_fail_(ember_conn *c, ember_enc *e, size_t len)
{
    ember_buf_enc_abort(&c->out, e);
    /* Nothing of the frame was sent: neither are the refs it holds. */
    ember_ref_exports_undo(c);
    if (e->bad_utf8)
        return ember_seterr("a string (field %u) is not valid UTF-8",
                            e->bad_utf8);
    if (e->failed == EMBER_ENC_BAD_REF || e->failed == EMBER_ENC_BAD_ARGS)
        return -1; /* the ref or the values said why */
    if (e->failed)
        return ember_seterr("frame could not be encoded (out of memory, "
                            "or a limit)");
    if (len > c->ep->lim.max_frame)
        return ember_seterr("frame of %zu bytes exceeds max_frame", len);
    return ember_seterr("frame of %zu bytes exceeds the peer's max_frame (%u)",
                        len, c->out_max_frame);
}

int ember_frame_send_hdr(ember_conn *c, uint8_t kind, uint64_t a, uint64_t b)
{
    ember_enc e;
    if (ember_frame_begin(c, &e, kind))
        return -1;
    uint64_t v[2] = {a, b};
    for (int i = 0; i < ember_frame_nhdr_[kind]; i++)
        ember_enc_raw_varint(&e, v[i]);
    return ember_frame_end(c, &e);
}
