/*
 * pb-raw.c — the untyped PB path (ember/pb.h): raw handlers by PB name,
 * raw replies and raw calls whose payloads are jelly bytes. pb.c moves
 * them on the wire.
 */
#include <string.h>

#include "call-internal.h"
#include "ember-internal.h"
#include "pb-internal.h"
#include "pb-raw-internal.h"

/* FNV-1a 32 of s, continued from h. A PB name's service id hashes
 * "pb:" + name: no IDL service's "module.Service" is spelt that way. */
static uint32_t fnv1a(uint32_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x01000193u;
    return h;
}

EMBER_API uint32_t ember_pb_raw_service(const char *name)
{
    return name ? fnv1a(fnv1a(0x811c9dc5u, "pb:"), name) : 0;
}

int ember_pb_name_check(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    return n >= 1 && n <= 64 ? 0 : ember_seterr("a PB name has 1..64 bytes");
}

EMBER_API int ember_pb_export_raw(ember_exports *ex, const char *name,
                                  ember_raw_handler h, void *ud)
{
    if (ember_pb_name_check(name))
        return -1;
    return ember_exports_add_raw(ex, ember_pb_raw_service(name), 1, h, ud);
}

EMBER_API int ember_pb_reply_raw(ember_call *call, const void *value, size_t len)
{
    char why[EMBER_JL_WHY] = "a value of that many bytes at NULL";
    if ((!value && len) ||
        ember_jl_check(value, len, true, EMBER_JL_NO_REFS, why, sizeof why)) {
        ember_call_fail(call, "reply is not one jelly value: %s", why);
        return ember_seterr("reply is not one jelly value: %s", why);
    }
    return ember_call_reply_raw(call, value, len);
}

void ember_pb_raw_enc(ember_enc *e, const void *value)
{
    (void)value;
    e->failed = 1; /* only a PB connection sends jelly as it is */
}

EMBER_API ember_handle ember_pb_call_raw(ember_ref *to, const char *name,
                                         const void *args, size_t len,
                                         ember_raw_cb cb, void *ud,
                                         const ember_callopts *opts)
{
    ember_pb_raw_args a = {name, args, len};
    ember_callback k = {NULL, cb, NULL, ud, NULL, NULL};
    if (ember_pb_name_check(name))
        name = "?"; /* fails in the wire, with the outcome delivered */
    return ember_calltab_start(to, NULL, ember_pb_raw_service(name), 1, false,
                               ember_pb_raw_enc, &a, &k, opts);
}
