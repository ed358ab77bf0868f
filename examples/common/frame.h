/*
 * frame.h — the client protocol's framing, shared by net and the bot
 * (docs/cluster.md, "The client protocol"):
 *
 *   u32 length (little endian, counts what follows) | u32 command | payload
 */
#ifndef EXAMPLES_FRAME_H
#define EXAMPLES_FRAME_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

#define FRAME_HDR 8

/* The header of a frame of command with len payload bytes. */
void frame_header(uint8_t hdr[FRAME_HDR], uint32_t command, size_t len);
/* Appends one frame to out. */
void frame_add(struct evbuffer *out, uint32_t command, const void *payload, size_t len);
/* The header at the front of in: 0 with *len (command + payload) and
 * *command; 1 with *len alone while the command has not come (a length
 * can be judged from its 4 bytes); -1 while fewer than 4 bytes are there. */
int frame_peek(struct evbuffer *in, uint32_t *len, uint32_t *command);

#endif
