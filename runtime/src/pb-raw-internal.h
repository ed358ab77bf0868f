/*
 * pb-raw-internal.h — how pb-raw.c hands an untyped call to pb.c.
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

/* The encoder of an untyped PB call: the PB wire recognises it and writes
 * the ember_pb_raw_args as they are; any other wire fails the call. */
void ember_pb_raw_enc(ember_enc *e, const void *value);

#endif
