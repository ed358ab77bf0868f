/*
 * ember/rpc.h — references, calls, served calls and exported services.
 *
 * Most users touch this through idlc's generated stubs and skeletons:
 *   game_Game_move(ref, player, dir, cb, ud, opts)    a call
 *   game_Game_export(exports, &handlers, ud)          serve a service
 *   game_Game_move_reply(call, &pos)                  answer, now or later
 *
 * Ownership, in one sentence: everything decoded for you (handler arguments,
 * reply values, errors) lives until your handler replies or your callback
 * returns; copy what you keep (refs: ember_ref_retain).
 */
#ifndef EMBER_RPC_H
#define EMBER_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ember/codec.h>
#include <ember/core.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ember_call ember_call;       /* an incoming call being served */
typedef struct ember_exports ember_exports; /* the services an endpoint serves */
typedef struct ember_child ember_child;     /* a node registered with a root */
typedef struct ember_root ember_root;
typedef struct ember_node ember_node;
typedef struct ember_service_desc ember_service_desc;

/* ------------------------------------------------------------------ */
/* References                                                         */
/* ------------------------------------------------------------------ */

/*
 * An ember_ref is something you can call: a peer's exported services
 * (ember_node_root, ember_child_ref), a reference a peer passed you
 * (ref<Service> arguments), or a local object you pass to a peer.
 * Refs are counted: retain what you keep beyond a handler or callback and
 * release it when done; the owner learns when no one holds it (decref).
 * When the connection drops every ref on it stops working: calls end with
 * EMBER_LOST or EMBER_UNAVAILABLE.
 */
ember_ref *ember_ref_retain(ember_ref *r);
void ember_ref_release(ember_ref *r);
/* True while calls through r can reach the object. */
bool ember_ref_alive(const ember_ref *r);

/* Generic function pointer: generated code stores typed callbacks here. */
typedef void (*ember_fn)(void);

/* ------------------------------------------------------------------ */
/* Making calls                                                       */
/* ------------------------------------------------------------------ */

typedef struct ember_outcome {
    ember_status status;
    const char *message;  /* text for every status but EMBER_OK */
    uint32_t error_id;    /* EMBER_RAISED: which error (<mod>_<Error>_ID);
                             EMBER_NO_METHOD: the service id the object does
                             not serve (0: it serves it, not the method) */
    const void *error;    /* EMBER_RAISED: the decoded error struct */
    ember_child *child;   /* broadcasts: the child this outcome is from */
} ember_outcome;

typedef struct ember_callopts {
    uint32_t timeout_ms;  /* 0: the connection's default */
} ember_callopts;

/* Names a call in flight, for ember_cancel. 0 is never a valid handle. */
typedef uint64_t ember_handle;

/* Writes the arguments (a struct's fields) of a call. */
typedef void (*ember_encode_fn)(ember_enc *e, const void *value);

/*
 * Completes a call: called exactly once. For EMBER_OK `reply` decodes the
 * reply payload (field 1 is the return value); for EMBER_RAISED it decodes
 * the error struct named by o->error_id; otherwise it is NULL. Generated
 * code decodes and forwards to the typed user callback `cb`.
 */
typedef void (*ember_complete_fn)(const ember_outcome *o, ember_dec *reply,
                                  ember_fn cb, void *ud);

/*
 * Starts a call of method_id of service svc on `to` (the call carries
 * svc->id, so it can only reach that service's method). Returns a handle, or
 * 0 if the call could not start; even then `done` runs exactly once, from
 * the event loop, never from inside this function.
 */
ember_handle ember_call_start(ember_ref *to, const ember_service_desc *svc,
                              uint32_t method_id, ember_encode_fn enc,
                              const void *args, ember_complete_fn done,
                              ember_fn cb, void *ud, const ember_callopts *opts);

/* A oneway call: no reply, no outcome. 0 when queued, -1 otherwise. */
int ember_oneway_start(ember_ref *to, const ember_service_desc *svc,
                       uint32_t method_id, ember_encode_fn enc,
                       const void *args);

/* Cancels a call in flight: its outcome is EMBER_CANCELLED, delivered
 * before this returns. -1 if it already ended. */
int ember_cancel(ember_ref *to, ember_handle h);

/*
 * Untyped path (the gate pattern): payload is an encoded argument struct
 * forwarded as is to method_id of the service whose id is service_id
 * (<mod>_<Service>_SERVICE_ID); the reply payload is handed over undecoded.
 *
 * The callback's outcome: for EMBER_OK, payload/len is the encoded reply
 * struct. For EMBER_RAISED, o->error is NULL (nothing knows the error's
 * type to decode it), o->error_id names the error, and payload/len is the
 * encoded error struct, to decode or forward as is. For the other statuses
 * ignore payload (o->message says what happened). The payload pointer is
 * valid only during the callback: copy what you keep.
 */
typedef void (*ember_raw_cb)(const ember_outcome *o, const void *payload,
                             size_t len, void *ud);
ember_handle ember_call_raw(ember_ref *to, uint32_t service_id,
                            uint32_t method_id, const void *payload,
                            size_t len, ember_raw_cb cb, void *ud,
                            const ember_callopts *opts);
int ember_oneway_raw(ember_ref *to, uint32_t service_id, uint32_t method_id,
                     const void *payload, size_t len);

/* ------------------------------------------------------------------ */
/* Serving calls                                                      */
/* ------------------------------------------------------------------ */

/*
 * Decodes the arguments from `args` (allocating in the call's arena) and
 * calls the user's handler. Returns -1 if the arguments do not decode: the
 * runtime then fails the call and disconnects the peer.
 */
typedef int (*ember_dispatch_fn)(ember_call *call, ember_dec *args,
                                 const void *handlers, void *ud);

/*
 * Run-time types, generated by idlc next to every method: what a
 * personality whose values carry no schema (Twisted PB, docs/protocol-pb.md)
 * needs to turn positional dynamic values into typed ones and back.
 */
typedef enum ember_type_kind {
    EMBER_T_BOOL, EMBER_T_I8, EMBER_T_I16, EMBER_T_I32, EMBER_T_I64,
    EMBER_T_U8, EMBER_T_U16, EMBER_T_U32, EMBER_T_U64, EMBER_T_F32,
    EMBER_T_F64, EMBER_T_STRING, EMBER_T_BYTES, EMBER_T_LIST, EMBER_T_MAP,
    EMBER_T_REF, EMBER_T_STRUCT, EMBER_T_ENUM
} ember_type_kind;

typedef struct ember_type ember_type;

/* A struct field or a method parameter. */
typedef struct ember_field_desc {
    uint32_t tag;
    const char *name;           /* as in the IDL */
    const ember_type *type;
    bool optional;
} ember_field_desc;

struct ember_type {
    ember_type_kind kind;
    const char *name;           /* STRUCT, ENUM, REF: "game.Pos" */
    const ember_type *elem;     /* LIST element, MAP value */
    const ember_type *key;      /* MAP key */
    const ember_field_desc *fields; /* STRUCT, by declaration order */
    uint32_t n_fields;
    const ember_service_desc *svc;  /* REF: the service it is a ref<> of */
};

/* A typed error a method raises: its id and its struct type. */
typedef struct ember_raise_desc {
    uint32_t id;                /* <mod>_<Error>_ID */
    const ember_type *type;     /* STRUCT, name "game.NotInRoom" */
} ember_raise_desc;

typedef struct ember_method_desc {
    uint32_t id;                /* wire identity, unique within its service */
    const char *name;           /* "move" */
    bool oneway;
    ember_dispatch_fn dispatch;
    /* Run-time types (NULL / 0 in hand-written tables: untyped). */
    const char *pb_name;        /* the PB message it travels as */
    bool pb_command;            /* command mode: pb_name is the service's
                                   @pb(dispatch), the method id goes first */
    const ember_field_desc *params; /* in declaration order */
    uint32_t n_params;
    const ember_type *result;   /* NULL: void or oneway */
    const ember_raise_desc *raises; /* the errors of its raises clause */
    uint32_t n_raises;
} ember_method_desc;

struct ember_service_desc {
    const char *name;           /* "game.Game" */
    uint32_t id;                /* wire identity: FNV-1a 32 of the name */
    uint64_t fingerprint;       /* of the service's canonical form */
    uint32_t n_methods;
    const ember_method_desc *methods;
    /* PB command mode: the message its methods travel as ("callTarget",
     * "callChild"), the method id first; NULL: by name (pb_name). */
    const char *pb_dispatch;
};

/*
 * Exports a service: its methods become callable by the peers of the root or
 * node owning `ex`. Calls are dispatched on (service id, method id), so
 * services whose method ids overlap can be exported side by side; the same
 * service (or two whose ids collide) cannot be exported twice. handlers and
 * ud must outlive the export.
 */
int ember_exports_add(ember_exports *ex, const ember_service_desc *svc,
                      const void *handlers, void *ud);

/*
 * Serves calls untyped (the gate pattern): method method_id of the service
 * whose id is service_id; method_id 0: every method of that service;
 * service_id 0 (with method_id 0): every call on object 0 that nothing else
 * serves (a forwarding gate). The handler learns the service and method id
 * (and ember_call_oneway tells a oneway call) and answers with any of the
 * ember_call_* answers below, forwarding a raw call's outcome with
 * ember_call_relay.
 */
typedef void (*ember_raw_handler)(ember_call *call, uint32_t service_id,
                                  uint32_t method_id, const void *payload,
                                  size_t len, void *ud);
int ember_exports_add_raw(ember_exports *ex, uint32_t service_id,
                          uint32_t method_id, ember_raw_handler h, void *ud);

/* Per-method counters of what ex served (admin pages). */
typedef struct ember_method_stats {
    const char *service;   /* "game.Game", or "raw" */
    const char *method;    /* "move" */
    uint32_t service_id;   /* the service's wire id */
    uint32_t id;           /* the method's */
    uint64_t calls;        /* calls received */
    uint64_t failures;     /* ended with anything but a reply */
    uint64_t total_us;     /* sum of handler-to-reply times */
    uint64_t max_us;
} ember_method_stats;
typedef void (*ember_stats_fn)(const ember_method_stats *s, void *ud);
void ember_exports_stats(const ember_exports *ex, ember_stats_fn fn, void *ud);

/*
 * Answers a served call, now or later: exactly one of them per call, also
 * after the caller cancelled or went away (the answer is then a harmless
 * no-op). The answer ends the call and releases it: like a freed pointer,
 * `call` must not be used again once an answer returned, except inside the
 * handler it was given to, where the call lives until the handler returns
 * and a second answer returns -1 ("call already answered"). NULL: -1.
 */
int ember_call_reply(ember_call *call, ember_encode_fn enc, const void *value);
int ember_call_raise(ember_call *call, uint32_t error_id,
                     ember_encode_fn enc, const void *error);
int ember_call_fail(ember_call *call, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
int ember_call_reply_raw(ember_call *call, const void *payload, size_t len);
/* Raises error error_id with its struct already encoded (passed through as
 * is: a gate forwarding a typed error it need not understand). */
int ember_call_raise_raw(ember_call *call, uint32_t error_id,
                         const void *payload, size_t len);
/* Fails the call with a status of its own: EMBER_FAILED (= ember_call_fail),
 * EMBER_NO_METHOD (a gate that has nowhere to route the call),
 * EMBER_UNAVAILABLE or EMBER_LIMIT; EMBER_LOST and EMBER_SHUTDOWN (a
 * connection or endpoint gone on the way) are sent as EMBER_UNAVAILABLE,
 * anything else as EMBER_FAILED. */
int ember_call_fail_status(ember_call *call, ember_status status,
                           const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/*
 * Answers call with the outcome of a raw call made for it (inside its
 * ember_raw_cb): the reply or the raised error's struct passed through
 * untouched, NO_METHOD, UNAVAILABLE, LIMIT and FAILED as they came; a lost
 * connection or a shutdown on the way becomes EMBER_UNAVAILABLE, a timeout,
 * cancel or undecodable reply EMBER_FAILED, each with its message.
 */
int ember_call_relay(ember_call *call, const ember_outcome *o,
                     const void *payload, size_t len);
/*
 * Forwards call, its payload untouched, to method `method` of service
 * `service` at `to` (ember_call_raw, with opts: NULL for the defaults) and
 * answers it with the outcome, as ember_call_relay does; a oneway goes on
 * as a oneway (ember_oneway_raw). The caller's cancel or timeout (its
 * CANCEL) and its connection going cancel the forwarded call, which sends
 * CANCEL on: a chain of gates lets go of a call end to end. 0, or -1 with
 * ember_last_error(): NULL arguments, a call answered or forwarded
 * already, a oneway that could not be sent.
 */
int ember_call_forward(ember_call *call, ember_ref *to, uint32_t service,
                       uint32_t method, const void *payload, size_t len,
                       const ember_callopts *opts);

/* Who is calling: a ref to the caller's exported services (to call back). */
ember_ref *ember_call_caller(ember_call *call);
/* On a root: the child that made the call; NULL when it came from a root. */
ember_child *ember_call_child(ember_call *call);
/* What is called: the service's wire id, the method id, oneway or not. */
uint32_t ember_call_service(const ember_call *call);
uint32_t ember_call_method(const ember_call *call);
bool ember_call_oneway(const ember_call *call);
/* True once the caller cancelled or went away; a reply is then discarded. */
bool ember_call_cancelled(const ember_call *call);
/* Zeroed memory that lives as long as the call. */
void *ember_call_alloc(ember_call *call, size_t size);

/* A local object a peer can call once it is passed as a ref<Service>.
 * Starts with one reference, the caller's. */
ember_ref *ember_ref_local(const ember_service_desc *svc,
                           const void *handlers, void *ud);
/*
 * Withdraws a local object: its handlers are never called again, and every
 * call to it from now on (also one forwarded by a third party's proxy)
 * ends EMBER_UNAVAILABLE ("object withdrawn by its owner"). The refs peers
 * hold stay refs to release as usual. -1 if r is not a local object.
 */
int ember_ref_revoke(ember_ref *r);

#ifdef __cplusplus
}
#endif
#endif
