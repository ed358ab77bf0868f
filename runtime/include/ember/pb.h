/*
 * ember/pb.h — the untyped path for Twisted Perspective Broker peers
 * (docs/protocol-pb.md, "Untyped calls"): Firefly's free-form payloads,
 * served and forwarded without a schema, the PB counterpart of the raw
 * handlers and ember_call_raw.
 *
 * On a PB connection a raw payload is jelly: the arguments of a call are
 * the bytes of its jellied tuple, `(tuple a b ...)`, and an answer is the
 * bytes of one jellied value. They pass the same whitelist and limits as
 * typed values; a gate hands them on as they came.
 */
#ifndef EMBER_PB_H
#define EMBER_PB_H

#include <ember/rpc.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Serves PB messages named `name` (1..64 bytes) that no typed method
 * serves: h gets the jellied argument tuple as payload and answers with
 * ember_pb_reply_raw (or ember_call_fail). service_id is
 * ember_pb_raw_service(name), method_id 1.
 */
int ember_pb_export_raw(ember_exports *ex, const char *name,
                        ember_raw_handler h, void *ud);
/* The service id untyped PB calls named `name` are served under. */
uint32_t ember_pb_raw_service(const char *name);

/* Answers with one jellied value (checked: it must be exactly one value
 * of the whitelist). */
int ember_pb_reply_raw(ember_call *call, const void *value, size_t len);

/*
 * Calls `name` on a PB peer with a jellied argument tuple; cb gets the
 * jellied answer as payload (EMBER_OK), or the failure. On an ember
 * connection the call fails (EMBER_LIMIT): ember peers take
 * ember_call_raw.
 */
ember_handle ember_pb_call_raw(ember_ref *to, const char *name, const void *args,
                               size_t len, ember_raw_cb cb, void *ud,
                               const ember_callopts *opts);

#ifdef __cplusplus
}
#endif
#endif
