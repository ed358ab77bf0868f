/* frame.c — the client protocol's framing; see frame.h. */
#include "frame.h"

#include <event2/buffer.h>

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void frame_header(uint8_t hdr[FRAME_HDR], uint32_t command, size_t len)
{
    put_u32(hdr, (uint32_t)(len + 4));
    put_u32(hdr + 4, command);
}

void frame_add(struct evbuffer *out, uint32_t command, const void *payload, size_t len)
{
    uint8_t hdr[FRAME_HDR];
    frame_header(hdr, command, len);
    evbuffer_add(out, hdr, sizeof hdr);
    evbuffer_add(out, payload, len);
}

int frame_peek(struct evbuffer *in, uint32_t *len, uint32_t *command)
{
    uint8_t hdr[FRAME_HDR];
    ev_ssize_t got = evbuffer_copyout(in, hdr, sizeof hdr);
    if (got < 4)
        return -1;
    *len = get_u32(hdr);
    if (got < (ev_ssize_t)sizeof hdr)
        return 1;
    *command = get_u32(hdr + 4);
    return 0;
}
