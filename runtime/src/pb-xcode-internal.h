/*
 * pb-xcode-internal.h — typed values between jelly and ember's encoding
 * (pb-xcode.c), for the PB personality (pb.c).
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
#ifndef EMBER_PB_XCODE_INTERNAL_H
#define EMBER_PB_XCODE_INTERNAL_H

#include "pb-internal.h"
#include "wire-internal.h"

typedef struct ember_pbx {
    ember_conn *c;          /* whose objects (local refs) exist */
    ember_jl_cur cur;       /* the jelly being read (the *_in functions) */
    char why[256];          /* what did not match */
    size_t clip;            /* > 0: ember -> jelly cuts strings and bytes to
                             * this many bytes (values for a text of that size) */
} ember_pbx;

/* nvals positional jelly values at x->cur -> m's argument struct in e. -1:
 * x->why names the argument ("move: argument 2 'dir': expected i32, got
 * unicode"); missing trailing arguments are left out (zero / absent). */
int ember_pbx_args_in(ember_pbx *x, uint32_t nvals, const ember_method_desc *m,
                      ember_enc *e);
/* One jelly value at x->cur -> the result struct {1: value} (t NULL: void,
 * the value is skipped). */
int ember_pbx_result_in(ember_pbx *x, const ember_type *t, ember_enc *e);
/* A Python failure (its type's qualified name, str(exception)) to a typed
 * call as one of m's declared errors: the error whose name the type names,
 * its fields from the exception's arguments in declaration order, written
 * to out[0..cap) (*len). NULL when it names none of them or its arguments
 * do not fit the fields: the failure stays a failure. */
const ember_raise_desc *ember_pbx_raised_in(ember_pbx *x, const ember_method_desc *m,
                                            const char *type, const char *value,
                                            uint8_t *out, size_t cap, size_t *len);
/* m's argument struct p[0..n) -> its n_params positional jelly values. */
int ember_pbx_args_out(ember_pbx *x, const uint8_t *p, size_t n,
                       const ember_method_desc *m, ember_jl_w *w);
/* A result struct p[0..n) -> one jelly value ((None) for void). */
int ember_pbx_result_out(ember_pbx *x, const uint8_t *p, size_t n,
                         const ember_type *t, ember_jl_w *w);

/* A raised error's struct p[0..n) of type t as the value of a Python
 * failure: str() of an exception raised with its fields in declaration
 * order, "(404, 'not in a room')", ending "..." when cut to fit cap. */
void ember_pbx_text(const uint8_t *p, size_t n, const ember_type *t, char *out,
                    size_t cap);

#endif
