/*
 * pb-raw-internal.h — how pb-raw.c hands an untyped call to pb.c.
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
#ifndef EMBER_PB_RAW_INTERNAL_H
#define EMBER_PB_RAW_INTERNAL_H

#include "pb-internal.h"

/* The arguments ember_pb_call_raw passes through the call table. */
typedef struct ember_pb_raw_args {
    const char *name;
    const void *args;   /* a jellied tuple */
    size_t len;
} ember_pb_raw_args;

/* 0 when name has 1..64 bytes, as a PB message name must; else -1 with
 * the error set. */
int ember_pb_name_check(const char *name);

/* The encoder of an untyped PB call: the PB wire recognises it and writes
 * the ember_pb_raw_args as they are; any other wire fails the call. */
void ember_pb_raw_enc(ember_enc *e, const void *value);

#endif
