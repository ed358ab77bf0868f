/*
 * frame.c — the frame layer: u32 little-endian length (of what follows),
 * u8 kind, the kind's header varints, then the payload up to the end of the
 * frame. See docs/protocol.md.
 */
#include <string.h>

#include "rt-internal.h"

static const uint8_t nhdr[EMBER_FR_MAX_ + 1] = {
    [EMBER_FR_CALL] = 3,   /* call id, object id, method id */
    [EMBER_FR_ONEWAY] = 2, /* object id, method id */
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
    return kind <= EMBER_FR_MAX_ ? nhdr[kind] : 0;
}

const char *ember_frame_kind_name(uint8_t kind)
{
    return kind <= EMBER_FR_MAX_ ? kind_names[kind] : "?";
}

int ember_frame_parse(const uint8_t *p, size_t n, uint32_t max_frame,
                      ember_frame *f, size_t *used, const char **why)
{
    *used = 0;
    if (n < 4)
        return 0;
    uint32_t len = ember_frame_len(p);
    if (len == 0) {
        *why = "empty frame";
        return -1;
    }
    if (len > max_frame) {
        *why = "frame larger than max_frame";
        return -1;
    }
    *used = (size_t)len + 4;
    if (n < *used)
        return 0;
    uint8_t kind = p[4];
    if (kind == 0 || kind > EMBER_FR_MAX_) {
        *why = "unknown frame kind";
        return -1;
    }
    ember_dec d;
    ember_dec_init(&d, p + EMBER_FRAME_HDR, len - 1, NULL);
    f->kind = kind;
    f->h[0] = f->h[1] = f->h[2] = 0;
    for (int i = 0; i < nhdr[kind]; i++)
        if (ember_dec_raw_varint(&d, &f->h[i])) {
            *why = "truncated frame header";
            return -1;
        }
    f->payload = d.p;
    f->len = (size_t)(d.end - d.p);
    return 1;
}

int ember_frame_begin(ember_conn *c, ember_enc *e, uint8_t kind)
{
    if (c->state == EMBER_CONN_CLOSED) {
        e->failed = 1;
        e->owner = NULL;
        return ember_seterr("connection closed");
    }
    if (ember_buf_enc_begin(&c->out, e, c, 64))
        return -1;
    memset(e->p, 0, 4);
    e->p[4] = kind;
    e->p += EMBER_FRAME_HDR;
    return 0;
}

int ember_frame_end(ember_conn *c, ember_enc *e)
{
    if (e->failed) {
        ember_buf_enc_abort(&c->out, e);
        return ember_seterr("frame could not be encoded (out of memory, "
                            "a limit, or a ref from another connection)");
    }
    size_t len = ember_enc_len(e) - 4;
    if (len > c->ep->lim.max_frame) {
        ember_buf_enc_abort(&c->out, e);
        return ember_seterr("frame of %zu bytes exceeds max_frame", len);
    }
    e->base[0] = (uint8_t)len;
    e->base[1] = (uint8_t)(len >> 8);
    e->base[2] = (uint8_t)(len >> 16);
    e->base[3] = (uint8_t)(len >> 24);
    ember_buf_enc_commit(&c->out, e);
    ember_conn_mark_dirty(c);
    return 0;
}

int ember_frame_send_hdr(ember_conn *c, uint8_t kind, uint64_t a, uint64_t b)
{
    ember_enc e;
    if (ember_frame_begin(c, &e, kind))
        return -1;
    uint64_t v[2] = {a, b};
    for (int i = 0; i < nhdr[kind]; i++)
        ember_enc_raw_varint(&e, v[i]);
    return ember_frame_end(c, &e);
}
