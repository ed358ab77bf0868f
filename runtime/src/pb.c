/*
 * pb.c — the Twisted Perspective Broker personality (docs/protocol-pb.md):
 * the wire hooks of wire-internal.h for a PB connection.
 *
 *   negotiation  server: ("pb" "none") -> "pb", both (version 6);
 *                client: picks "pb", sends it, (version 6) and takeProxy.
 *   input        banana expressions -> message / answer / error / decref;
 *                a message becomes an ember CALL or ONEWAY frame (arguments
 *                transcoded by the IDL's run-time types, pb-xcode.c) for
 *                ember_call_dispatch; an answer or error becomes a REPLY or
 *                ERROR frame for ember_calltab_answer.
 *   output       calls as (message id obj name answerRequired (tuple...)
 *                (dictionary)), answers, CopyableFailures, decrefs, and the
 *                liveness probe: a message to object 0, which a Twisted
 *                peer answers with an error and logs nothing.
 *
 * Objects: a root serves its exports as "root" and reaches a PB child's
 * exports at the luid the child gave takeProxy; a node exports its own
 * exports as luid 1 and reaches the root's as "root". Other luids are
 * ember's object ids as they are.
 *
 * pb_input goes by the connection's state after each expression, not by
 * what the input handlers return.
 */
#include <stdio.h>
#include <string.h>

#include "buf-internal.h"
#include "call-internal.h"
#include "conn-internal.h"
#include "ember-internal.h"
#include "metrics-internal.h"
#include "pb-internal.h"
#include "pb-raw-internal.h"
#include "pb-xcode-internal.h"
#include "ref-internal.h"
#include "wire-internal.h"

#define PB_VERSION 6
#define PB_NODE_LUID 1          /* a node's exports, given to takeProxy */
#define PB_PROBE_ID 0           /* request id of the liveness probe */
#define PB_TAKEPROXY "takeProxy"
#define PB_NO_SUCH_METHOD "twisted.spread.flavors.NoSuchMethod"

enum { PB_DIALECT, PB_VERSION_WAIT, PB_READY };

typedef struct ember_pb {
    ember_bn_scan scan;
    int phase;
    bool server;                /* a root's PB listener */
    bool vocab;                 /* dialect "pb" */
    uint64_t peer_obj;          /* root: the luid of the child's proxy */
    char *name;                 /* node: the name it registers as */
    uint64_t proxy_id;          /* node: our takeProxy request, 0: answered */
    ember_buf xin, xout;        /* ember bytes while transcoding in / out */
} ember_pb;

static const ember_wire pb_wire;

/*
 * The classes a failure names after its own type (NULL-terminated, as
 * Python's MRO): a Twisted errback's trap() matches any of them, so every
 * ember failure traps as pb.Error and a raised IDL error as ember.Raised.
 */
static const char *const raised_mro[] = {
    "ember.Raised", "twisted.spread.pb.Error", "builtins.Exception",
    "builtins.BaseException", "builtins.object", NULL,
};
static const char *const *const pb_error_mro = raised_mro + 1;
static const char *const *const exception_mro = raised_mro + 2;
static const char *const no_method_mro[] = {
    "builtins.AttributeError", "builtins.Exception", "builtins.BaseException",
    "builtins.object", NULL,
};

/* ---- writing ---- */

/* An encoder over the connection's output, and its jelly writer. */
static int out_begin(ember_conn *c, ember_enc *e, ember_jl_w *w)
{
    if (c->state == EMBER_CONN_CLOSED)
        return ember_seterr("connection closed");
    if (ember_buf_enc_begin(&c->out, e, c, 64))
        return ember_seterr("out of memory");
    w->e = e;
    w->vocab = c->pb->vocab;
    return 0;
}

/* Sends nothing of a value that did not transcode (x->why says why). */
static int out_abort(ember_conn *c, ember_enc *e, const ember_pbx *x)
{
    ember_buf_enc_abort(&c->out, e);
    return ember_seterr("%s", x->why[0] ? x->why : "value does not transcode");
}

/* Sends what was written, or nothing when any part of it failed. */
static int out_end(ember_conn *c, ember_enc *e)
{
    if (e->failed) {
        ember_buf_enc_abort(&c->out, e);
        return ember_seterr("value Twisted could not receive (a string or list "
                            "over 655360), or out of memory");
    }
    ember_buf_enc_commit(&c->out, e);
    ember_conn_mark_dirty(c);
    return 0;
}

static void put_version(ember_jl_w *w)
{
    ember_jl_put_head(w, EMBER_BN_W_VERSION, 1);
    ember_bn_put_int(w->e, false, PB_VERSION);
}

/* (error id <CopyableFailure type: value>), the type first in its MRO. */
static int send_failure(ember_conn *c, uint64_t id, const char *type,
                        const char *value, const char *const *mro)
{
    const char *all[8] = {type};
    size_t k = 1;
    for (; *mro && k < 8; mro++)
        if (strcmp(*mro, type) != 0)
            all[k++] = *mro;
    ember_enc e;
    ember_jl_w w;
    if (out_begin(c, &e, &w))
        return -1;
    ember_jl_put_head(&w, EMBER_BN_W_ERROR, 2);
    ember_bn_put_int(&e, false, id);
    ember_jl_put_failure(&w, type, value, all, k);
    return out_end(c, &e);
}

/* An ember failure of the given type (ember.Limit, ember.Refused, ...). */
static int send_error(ember_conn *c, uint64_t id, const char *type, const char *value)
{
    return send_failure(c, id, type, value, pb_error_mro);
}

static int send_type_error(ember_conn *c, uint64_t id, const char *msg)
{
    return send_failure(c, id, "builtins.TypeError", msg, exception_mro);
}

static int send_no_method(ember_conn *c, uint64_t id, const char *msg)
{
    return send_failure(c, id, PB_NO_SUCH_METHOD, msg,
                        no_method_mro);
}

/* (answer id (None)): what a Python method that returns nothing sends. */
static void send_none(ember_conn *c, uint64_t id)
{
    ember_enc e;
    ember_jl_w w;
    if (out_begin(c, &e, &w))
        return;
    ember_jl_put_head(&w, EMBER_BN_W_ANSWER, 2);
    ember_bn_put_int(&e, false, id);
    ember_jl_put_none(&w);
    out_end(c, &e);
}

/* ---- the wire hooks: output ---- */

/* What enc(value) writes in ember's encoding, in pb->xout (the caller
 * consumes *n bytes when done): the generated encoders write ember bytes,
 * read back as jelly. Refs are exported on c. true: it failed. */
static bool ember_bytes_of(ember_conn *c, ember_enc *a, ember_encode_fn enc,
                           const void *value, const uint8_t **p, size_t *n)
{
    ember_buf *b = &c->pb->xout;
    *p = NULL;
    *n = 0;
    if (ember_buf_enc_begin(b, a, c, 256))
        return true;
    if (enc)
        enc(a, value);
    ember_buf_enc_commit(b, a);
    *p = b->data + b->off;
    *n = ember_buf_used(b);
    return a->failed != 0;
}

/* The refs enc wrote were exported on c by ember_bytes_of: they stay when
 * what carries them is sent (rc 0), and are taken back when it is not. */
static int exports_settle(ember_conn *c, int rc)
{
    if (rc)
        ember_ref_exports_undo(c);
    else if (c->xundo)
        ember_frame_exports_kept_(c);
    return rc;
}

/*
 * (message id obj name answerRequired: a call's head; its (tuple ...) and
 * (dictionary) follow. obj is an object we were given, or the peer's
 * exports ("root" on a root; the luid takeProxy named on a child). A call
 * without an id (a oneway) asks for no answer.
 */
static void put_call_head(ember_conn *c, ember_jl_w *w, uint64_t call_id, uint64_t oid,
                          const char *name)
{
    ember_jl_put_head(w, EMBER_BN_W_MESSAGE, 6);
    ember_bn_put_int(w->e, false, call_id);
    if (oid)
        ember_bn_put_int(w->e, false, oid);
    else if (c->pb->server)
        ember_bn_put_int(w->e, false, c->pb->peer_obj);
    else
        ember_bn_put_bytes(w->e, "root", 4, w->vocab);
    ember_bn_put_bytes(w->e, name, strlen(name), w->vocab);
    ember_bn_put_int(w->e, false, call_id ? 1 : 0);
}

/* An untyped call (ember_pb_call_raw): its name and jellied tuple as
 * given. A name or arguments that cannot go are the caller's values:
 * EMBER_FAILED in *st. */
static int call_raw(ember_conn *c, uint64_t call_id, uint64_t oid,
                    const ember_pb_raw_args *a, ember_status *st)
{
    char why[EMBER_JL_WHY];
    *st = EMBER_FAILED;
    if (ember_pb_name_check(a->name))
        return -1;
    if (!a->args && a->len)
        return ember_seterr("arguments of %zu bytes at NULL", a->len);
    if (ember_jl_check(a->args, a->len, c->pb->vocab,
                       EMBER_JL_TUPLE_ONLY | EMBER_JL_NO_REFS, why, sizeof why))
        return ember_seterr("arguments are not a jellied tuple: %s", why);
    *st = EMBER_LIMIT;
    ember_enc e;
    ember_jl_w w;
    if (out_begin(c, &e, &w))
        return -1;
    put_call_head(c, &w, call_id, oid, a->name);
    ember_bn_put_raw(&e, a->args, a->len);
    ember_jl_put_head(&w, EMBER_BN_W_DICTIONARY, 0);
    return out_end(c, &e);
}

/* A typed call: the ember argument struct read back as positional jelly
 * arguments, after the command id for a command-mode method. */
static int call_typed(ember_conn *c, uint64_t call_id, uint64_t oid,
                      const ember_method_desc *m, const uint8_t *p, size_t n)
{
    ember_enc e;
    ember_jl_w w;
    ember_pbx x = {c, {0}, {0}, 0};
    if (out_begin(c, &e, &w))
        return -1;
    put_call_head(c, &w, call_id, oid, m->pb_name);
    ember_jl_put_head(&w, EMBER_BN_W_TUPLE, m->n_params + (m->pb_command ? 1 : 0));
    if (m->pb_command)
        ember_bn_put_int(&e, false, m->id);
    if (ember_pbx_args_out(&x, p, n, m, &w) && !e.failed)
        return out_abort(c, &e, &x);
    ember_jl_put_head(&w, EMBER_BN_W_DICTIONARY, 0);
    return out_end(c, &e);
}

static int pb_call(ember_conn *c, uint64_t call_id, uint64_t oid, uint32_t method,
                   const ember_service_desc *svc, const ember_method_desc *m,
                   ember_encode_fn enc, const void *args, ember_status *st)
{
    *st = EMBER_LIMIT;
    if (!m && enc == ember_pb_raw_enc)
        return call_raw(c, call_id, oid, args, st);
    if (!m || !m->pb_name || (m->n_params && !m->params))
        return ember_seterr("method %u: a PB peer needs its run-time types (call "
                            "it through the generated stub)", method);
    const uint8_t *p;
    size_t n;
    int rc;
    ember_enc a;
    char bad[200];
    if (ember_bytes_of(c, &a, enc, args, &p, &n)) /* the same reasons as on ember's wire */
        rc = ember_seterr("%s", ember_calltab_encode_failure(&a, svc, method, bad,
                                                             sizeof bad, st));
    else
        rc = call_typed(c, call_id, oid, m, p, n);
    ember_buf_consume(&c->pb->xout, n);
    return exports_settle(c, rc);
}

/* A typed error: its qualified IDL name as the failure's type (then
 * ember.Raised and pb.Error, so trap(pb.Error) works), its fields as the
 * value. */
static int send_raised(ember_conn *c, uint64_t call_id, const ember_method_desc *m,
                       uint32_t error_id, ember_encode_fn enc, const void *value)
{
    const ember_type *t = ember_raise_type(m, error_id);
    /* A cut text (ending "...") is longer than the EMBER_JL_FAIL_TEXT - 1
     * bytes ember reads of a failure: relayed back, it is known as cut and
     * stays a failure. */
    char text[EMBER_JL_FAIL_TEXT + 3], type[96];
    const uint8_t *p;
    size_t n;
    ember_enc a;
    bool bad = ember_bytes_of(c, &a, enc, value, &p, &n);
    if (bad || !t)
        snprintf(text, sizeof text, "raised error %u", (unsigned)error_id);
    else
        ember_pbx_text(p, n, t, text, sizeof text);
    ember_buf_consume(&c->pb->xout, n);
    exports_settle(c, -1); /* a failure carries text: its refs never leave */
    snprintf(type, sizeof type, "%s", t && t->name ? t->name : "ember.Raised");
    return send_failure(c, call_id, type, text, raised_mro);
}

/* (answer id value): m's result struct p[0..n) as one jelly value, or for
 * an untyped answer (m NULL, a raw handler's) the jelly as it is. */
static int send_answer(ember_conn *c, uint64_t call_id, const ember_method_desc *m,
                       const uint8_t *p, size_t n)
{
    ember_enc e;
    ember_jl_w w;
    ember_pbx x = {c, {0}, {0}, 0};
    if (out_begin(c, &e, &w))
        return -1;
    ember_jl_put_head(&w, EMBER_BN_W_ANSWER, 2);
    ember_bn_put_int(&e, false, call_id);
    if (m && ember_pbx_result_out(&x, p, n, m->result, &w) && !e.failed)
        return out_abort(c, &e, &x);
    if (!m)
        ember_bn_put_raw(&e, p, n);
    return out_end(c, &e);
}

static int pb_answer(ember_conn *c, uint64_t call_id, const ember_method_desc *m,
                     ember_status st, uint32_t error_id, ember_encode_fn enc,
                     const void *value, const char *msg)
{
    if (st == EMBER_RAISED)
        return send_raised(c, call_id, m, error_id, enc, value);
    if (st == EMBER_NO_METHOD)
        return send_no_method(c, call_id, msg);
    if (st != EMBER_OK) {
        const char *type = st == EMBER_UNAVAILABLE ? "ember.Unavailable"
                           : st == EMBER_LIMIT     ? "ember.Limit"
                                                   : "ember.Failed";
        return send_error(c, call_id, type, msg ? msg : ember_status_name(st));
    }
    const uint8_t *p;
    size_t n;
    char why[EMBER_JL_WHY];
    /* A raw handler's answer goes out as it is: it must be one jelly value
     * in this connection's dialect, holding no refs. */
    ember_enc a;
    bool bad = ember_bytes_of(c, &a, enc, value, &p, &n);
    bool not_jelly = !bad && !m &&
        ember_jl_check(p, n, c->pb->vocab, EMBER_JL_NO_REFS, why, sizeof why);
    int rc = exports_settle(c, bad || not_jelly ? -1 : send_answer(c, call_id, m, p, n));
    ember_buf_consume(&c->pb->xout, n);
    if (not_jelly) {
        char msg[EMBER_JL_WHY + 32];
        snprintf(msg, sizeof msg, "reply is not one jelly value: %s", why);
        send_error(c, call_id, "ember.Failed", msg);
    } else if (rc) {
        send_error(c, call_id, "ember.Limit", "reply could not be encoded for "
                   "Twisted (a string or list over 655360?)");
    }
    return rc;
}

static void pb_cancel(ember_conn *c, uint64_t call_id)
{
    /* PB has no cancel: the late answer is ignored. */
    (void)c;
    (void)call_id;
}

static void pb_decref(ember_conn *c, uint64_t oid, uint64_t count)
{
    ember_enc e;
    ember_jl_w w;
    if (count == 0 || out_begin(c, &e, &w))
        return;
    for (uint64_t i = 0; i < count; i++) { /* one per reception, as Twisted */
        ember_jl_put_head(&w, EMBER_BN_W_DECREF, 1);
        ember_bn_put_int(&e, false, oid);
    }
    out_end(c, &e);
}

/* The probe: a message to object 0, which no PB peer exports. Twisted
 * answers it with an error ("Invalid Object ID") and logs nothing. */
static void pb_ping(ember_conn *c)
{
    if (c->pb->phase != PB_READY)
        return;
    ember_enc e;
    ember_jl_w w;
    if (out_begin(c, &e, &w))
        return;
    ember_jl_put_head(&w, EMBER_BN_W_MESSAGE, 6);
    ember_bn_put_int(&e, false, PB_PROBE_ID);
    ember_bn_put_int(&e, false, 0);
    ember_bn_put_bytes(&e, "ember_heartbeat", 15, w.vocab);
    ember_bn_put_int(&e, false, 1);
    ember_jl_put_head(&w, EMBER_BN_W_TUPLE, 0);
    ember_jl_put_head(&w, EMBER_BN_W_DICTIONARY, 0);
    out_end(c, &e);
}

static int pb_goodbye(ember_conn *c, const char *reason)
{
    /* PB has no goodbye: a close is the message. */
    (void)c;
    (void)reason;
    return -1;
}

static void pb_free(ember_conn *c)
{
    ember_pb *pb = c->pb;
    if (!pb)
        return;
    ember_buf_release(&pb->xin);
    ember_buf_release(&pb->xout);
    ember_strfree(pb->name);
    ember_free(pb, sizeof *pb);
    c->pb = NULL;
}

/* ---- input: transcoding into ember bytes ---- */

/* An encoder over pb->xin, where jelly becomes ember bytes for the call
 * table; -1: out of memory, the connection closed. */
static int xin_begin(ember_conn *c, ember_enc *e)
{
    if (ember_buf_enc_begin(&c->pb->xin, e, c, 256) == 0)
        return 0;
    ember_conn_close(c, EMBER_LOST, "out of memory");
    return -1;
}

/* Consumes the transcoded bytes once the call table is done with them
 * (a close meanwhile has released pb->xin already). */
static void xin_consume(ember_conn *c, size_t n)
{
    if (c->state != EMBER_CONN_CLOSED)
        ember_buf_consume(&c->pb->xin, n);
}

/* ---- input: incoming calls ---- */

/* One (message id obj name answerRequired (tuple args...) (dictionary)). */
typedef struct pb_msg {
    uint64_t id;
    bool oneway;               /* answerRequired 0: no answer goes back */
    ember_jl_val obj, name;
    uint64_t oid;              /* 0: the exports; else an object we passed */
    const uint8_t *args_at;    /* the (tuple ...) */
    const uint8_t *args_end;
    uint32_t nargs;
    uint64_t kept;             /* the luid of the ref a takeProxy's
                                * registration keeps; 0: none */
} pb_msg;

/*
 * The (remote luid)s of a message or an answer, each reception counted and
 * held while it is handled, as a frame's table of refs holds them on
 * ember's wire (c->ref_tables): a decode makes refs of those it reads, and
 * the rest are released once it is handled, as Twisted releases what it
 * unjellied and then dropped (the sender counts each time it sent an
 * object and keeps it until as many decrefs came back). So are the refs of
 * a refused call, of a struct's key it does not have, of a void result and
 * of untyped jelly, which nothing makes a ref of.
 */
typedef struct pb_held {
    ember_conn *c;
    ember_dec budget;          /* new entries cost what a decode pays */
    ember_ref *list;
} pb_held;

static void hold_remote(uint64_t luid, void *ud)
{
    pb_held *h = ud;
    const char *why;
    /* Only luids Twisted can have given: no other becomes a ref (put_ref
     * refuses it), and a decref of one makes Twisted drop the connection. */
    if (luid == 0 || luid >= (1ull << 62))
        return;
    if (ember_ref_hold_in(h->c, &h->budget, luid, 1, &h->list, &why))
        pb_decref(h->c, luid, 1); /* over the budget: released at once */
}

/* Holds the (remote)s in the n jelly values at p[0..end). */
static void hold_remotes(ember_conn *c, pb_held *h, const uint8_t *p,
                         const uint8_t *end, size_t n)
{
    ember_jl_cur cur;
    h->c = c;
    h->list = NULL;
    if (c->state == EMBER_CONN_CLOSED)
        return;
    ember_dec_init_conn(&h->budget, c, p, (size_t)(end - p), NULL);
    ember_jl_init(&cur, p, (size_t)(end - p), c->pb->vocab);
    ember_jl_remotes(&cur, n, hold_remote, h);
}

/* The registration keeps its reception of luid for the connection's life:
 * it is not counted, and so never released. */
static void held_keep(pb_held *h, uint64_t luid)
{
    for (ember_ref *r = h->list; r; r = r->held_next)
        if (r->oid == luid && r->wire) {
            r->wire--;
            return;
        }
}

static bool pb_name_is(const ember_method_desc *m, const uint8_t *name, size_t n)
{
    return m && m->pb_name && strlen(m->pb_name) == n && memcmp(m->pb_name, name, n) == 0;
}

/* The exports entry for a PB message name: a by-name method, or the first
 * of a command-mode name's methods. */
static ember_xentry *find_named(ember_exports *ex, const uint8_t *name, size_t n)
{
    for (uint32_t i = 0; i < ex->n; i++)
        if (pb_name_is(ex->v[i].m, name, n))
            return &ex->v[i];
    return NULL;
}

/* The command-mode method `id` dispatched as message name[0..n). */
static ember_xentry *find_command(ember_exports *ex, const uint8_t *name, size_t n,
                                  uint64_t id)
{
    for (uint32_t i = 0; i < ex->n; i++) {
        const ember_method_desc *m = ex->v[i].m;
        if (pb_name_is(m, name, n) && m->pb_command && m->id == id)
            return &ex->v[i];
    }
    return NULL;
}

/* Whether ex has an untyped handler (ember_pb_export_raw) named
 * name[0..n); *sid: its service id. */
static bool find_raw(ember_exports *ex, const uint8_t *name, size_t n, uint32_t *sid)
{
    char nm[65];
    bool served;
    if (n > 64)
        return false;
    memcpy(nm, name, n);
    nm[n] = 0;
    *sid = ember_pb_raw_service(nm);
    ember_xentry *raw = ember_exports_resolve(ex, *sid, 1, &served);
    return raw && raw->raw;
}

/* The exports a message's obj names: "root" (a root's exports), 1 (a
 * node's exports), or an object we passed (m->oid); NULL: none of ours. */
static ember_exports *message_target(ember_conn *c, pb_msg *m)
{
    bool server = c->pb->server;
    m->oid = 0;
    if (m->obj.kind == EMBER_JL_BYTES)
        return server && m->obj.len == 4 && memcmp(m->obj.s, "root", 4) == 0
                   ? c->ep->exports : NULL;
    if (!server && m->obj.mag == PB_NODE_LUID)
        return c->ep->exports;
    ember_ref *t = m->obj.mag ? ember_ref_find_xobj(c, m->obj.mag) : NULL;
    m->oid = m->obj.mag;
    return t ? t->lex : NULL;
}

static int take_proxy(ember_conn *c, uint64_t id, ember_jl_cur *cur, uint32_t nargs,
                      uint64_t *kept)
{
    ember_jl_val v, ref;
    char why[200];
    if (nargs < 2 || nargs > 3)
        return send_type_error(c, id, "takeProxy(name, ref) takes 2 or 3 arguments");
    if (ember_jl_read(cur, &v) || (v.kind != EMBER_JL_BYTES && v.kind != EMBER_JL_UNICODE))
        return send_type_error(c, id, "takeProxy(name, ref): name must be bytes or text");
    if (nargs == 3 && (ember_jl_read(cur, &ref) || ref.kind != EMBER_JL_INT))
        return send_type_error(c, id, "takeProxy(name, weight, ref): weight must "
                               "be an int");
    if (ember_jl_read(cur, &ref) || ref.kind != EMBER_JL_REMOTE || ref.mag == 0)
        return send_type_error(c, id, "takeProxy(name, ref): ref must be a "
                               "pb.Referenceable");
    if (c->child) {
        send_error(c, id, "ember.Refused", "already registered");
        return 0;
    }
    /* Refused already, and closing once the refusal is out: as a second
     * REGISTER there, a violation (it must not register meanwhile). */
    if (c->close_after_flush) {
        ember_conn_close(c, EMBER_PROTOCOL, "protocol violation: PB takeProxy "
                         "after a refusal");
        return -1;
    }
    /* The name as sent: admission applies REGISTER's rules to all of it. */
    int r = c->ep->admit ? c->ep->admit(c, (const char *)v.s, v.len, why, sizeof why) : 1;
    if (r < 0)
        return -1;
    if (r > 0) { /* the node gets why, then the connection closes */
        send_error(c, id, "ember.Refused", why);
        c->close_class = 1 + EMBER_CLOSE_REFUSED;
        c->close_after_flush = true;
        ember_conn_flush(c);
        return 0;
    }
    c->pb->peer_obj = ref.mag;
    *kept = ref.mag;
    send_none(c, id);
    if (c->ep->joined)
        c->ep->joined(c);
    return 0;
}

/* The CALL (or ONEWAY) frame of message m for ember_call_dispatch. */
static int dispatch_frame(ember_conn *c, pb_msg *m, bool oneway, uint32_t svc,
                          uint32_t method, const uint8_t *payload, size_t len)
{
    ember_frame f;
    f.kind = oneway ? EMBER_FR_ONEWAY : EMBER_FR_CALL;
    f.svc = svc;
    f.h[0] = oneway ? m->oid : m->id;
    f.h[1] = oneway ? method : m->oid;
    f.h[2] = oneway ? 0 : method;
    f.payload = payload;
    f.len = len;
    return ember_call_dispatch(c, &f);
}

/* A message for a typed method: nvals jelly arguments at cur -> the ember
 * argument struct, then dispatched. */
static int dispatch_typed(ember_conn *c, ember_jl_cur *cur, pb_msg *m,
                          const ember_xentry *x, uint32_t nvals)
{
    ember_pbx t = {c, *cur, {0}, 0};
    ember_enc e;
    if (xin_begin(c, &e))
        return -1;
    int r = ember_pbx_args_in(&t, nvals, x->m, &e);
    ember_buf_enc_commit(&c->pb->xin, &e);
    const uint8_t *payload = c->pb->xin.data + c->pb->xin.off;
    size_t n = ember_buf_used(&c->pb->xin);
    if (r) {
        ember_buf_consume(&c->pb->xin, n);
        return m->oneway ? 0 : send_type_error(c, m->id, t.why);
    }
    /* A oneway method called with answerRequired is answered None at once
     * and served as oneway by ember_call_dispatch, as on ember's wire. */
    r = dispatch_frame(c, m, m->oneway, (uint32_t)(x->key >> 32), x->m->id, payload, n);
    xin_consume(c, n);
    return r;
}

/* Message m for a method of ex: typed by name, typed by a command-mode
 * name and the command id its first argument (read at cur) carries, or
 * untyped by name. */
static int dispatch_call(ember_conn *c, ember_jl_cur *cur, pb_msg *m,
                         ember_exports *ex)
{
    char msg[160];
    uint32_t nvals = m->nargs;
    ember_xentry *x = find_named(ex, m->name.s, m->name.len);
    if (!x) {
        /* An untyped handler gets the jellied tuple as it is. */
        uint32_t sid;
        char why[EMBER_JL_WHY];
        size_t len = (size_t)(m->args_end - m->args_at);
        if (find_raw(ex, m->name.s, m->name.len, &sid)) {
            /* The whitelist holds for the handler's payload as for typed
             * arguments: it never sees a type the reader refuses. */
            if (ember_jl_check(m->args_at, len, c->pb->vocab, EMBER_JL_TUPLE_ONLY,
                               why, sizeof why))
                return m->oneway ? 0 : send_type_error(c, m->id, why);
            return dispatch_frame(c, m, m->oneway, sid, 1, m->args_at, len);
        }
        snprintf(msg, sizeof msg, "No such method: remote_%.*s",
                 (int)(m->name.len > 64 ? 64 : m->name.len), (const char *)m->name.s);
        return m->oneway ? 0 : send_no_method(c, m->id, msg);
    }
    if (x->m->pb_command) {
        ember_jl_val cmd;
        if (nvals == 0 || ember_jl_read(cur, &cmd) || cmd.kind != EMBER_JL_INT ||
            cmd.neg || cmd.big || cmd.mag > UINT32_MAX)
            return m->oneway ? 0 : send_type_error(c, m->id, "the first argument "
                                                   "must be the command id");
        nvals--;
        x = find_command(ex, m->name.s, m->name.len, cmd.mag);
        if (!x) {
            snprintf(msg, sizeof msg, "no command %llu", (unsigned long long)cmd.mag);
            return m->oneway ? 0 : send_no_method(c, m->id, msg);
        }
    }
    if (!x->m->params && x->m->n_params)
        return m->oneway ? 0 : send_no_method(c, m->id, "method has no run-time types");
    return dispatch_typed(c, cur, m, x, nvals);
}

/* Reads a message's head: -1 when it is malformed (the connection
 * closed). */
static int read_message(ember_conn *c, ember_jl_cur *cur, uint32_t count, pb_msg *m)
{
    ember_jl_val id, ans;
    if (count != 7 || ember_jl_read(cur, &id) || id.kind != EMBER_JL_INT || id.neg ||
        id.big || id.mag >= (1ull << 63) || ember_jl_read(cur, &m->obj) ||
        (m->obj.kind != EMBER_JL_INT && m->obj.kind != EMBER_JL_BYTES) ||
        ember_jl_read(cur, &m->name) || m->name.kind != EMBER_JL_BYTES ||
        ember_jl_read(cur, &ans) || ans.kind != EMBER_JL_INT || ans.mag > 1) {
        ember_conn_close(c, EMBER_PROTOCOL, "PB message malformed");
        return -1;
    }
    m->id = id.mag;
    m->oneway = ans.mag == 0;
    return 0;
}

/* Reads a message's (tuple args...) and (dictionary kw...) and leaves cur
 * on the first argument; NULL, or why they cannot be served. */
static const char *read_arguments(ember_jl_cur *cur, pb_msg *m)
{
    ember_jl_val args, kw;
    m->args_at = cur->p;
    if (ember_jl_read(cur, &args) ||
        (args.kind != EMBER_JL_TUPLE && args.kind != EMBER_JL_LIST) ||
        ember_jl_skip_rest(cur, &args))
        return cur->why ? cur->why : "arguments are not a tuple";
    m->args_end = cur->p;
    if (ember_jl_read(cur, &kw) || kw.kind != EMBER_JL_DICT)
        return cur->why ? cur->why : "arguments are not a tuple";
    if (kw.count)
        return "keyword arguments are not supported by ember";
    cur->p = m->args_at;
    ember_jl_read(cur, &args);
    m->nargs = args.count;
    return NULL;
}

static int serve_message(ember_conn *c, ember_jl_cur *cur, pb_msg *m)
{
    const char *why = read_arguments(cur, m);
    if (why)
        return m->oneway ? 0 : send_type_error(c, m->id, why);
    ember_exports *ex = message_target(c, m);
    if (!ex)
        return m->oneway ? 0 : send_error(c, m->id, "twisted.spread.pb.Error",
                                          "Invalid Object ID");
    if (c->pb->server && m->oid == 0 && m->name.len == strlen(PB_TAKEPROXY) &&
        memcmp(m->name.s, PB_TAKEPROXY, m->name.len) == 0)
        return take_proxy(c, m->id, cur, m->nargs, &m->kept);
    if (c->state != EMBER_CONN_READY)
        return m->oneway ? 0 : send_error(c, m->id, "ember.Unavailable",
                                          "call takeProxy first");
    return dispatch_call(c, cur, m, ex);
}

/* A message: served, or answered with why not; the refs in its arguments
 * that neither the decode nor the registration keeps are released. */
static int on_message(ember_conn *c, ember_jl_cur *cur, uint32_t count)
{
    pb_msg m;
    pb_held h;
    if (read_message(c, cur, count, &m))
        return -1;
    m.args_at = cur->p;
    m.kept = 0;
    hold_remotes(c, &h, m.args_at, cur->end, 2); /* (tuple ...) (dictionary ...) */
    int r = serve_message(c, cur, &m);
    if (m.kept)
        held_keep(&h, m.kept);
    ember_ref_table_done(h.list);
    return r;
}

/* ---- input: answers to our calls ---- */

static void registered(ember_conn *c, bool ok, const char *why)
{
    c->pb->proxy_id = 0;
    if (c->ep->registered)
        c->ep->registered(c, ok, why);
}

/* A synthesized REPLY or ERROR frame for ember_calltab_answer. */
static void answer_frame(ember_conn *c, uint8_t kind, uint64_t id, ember_status st,
                         uint32_t error_id, const uint8_t *payload, size_t len)
{
    ember_frame f;
    f.kind = kind;
    f.h[0] = id;
    f.h[1] = (uint64_t)st;
    f.h[2] = error_id;
    f.payload = payload;
    f.len = len;
    ember_calltab_answer(c, &f);
}

/* An ERROR frame whose payload is {1: msg}, msg cut at 250 bytes. */
static void answer_error(ember_conn *c, uint64_t id, ember_status st, const char *msg)
{
    uint8_t tmp[300];
    ember_enc e;
    size_t n = ember_utf8_cut(msg, strlen(msg), 250); /* it must decode */
    ember_bytes s = {(const uint8_t *)msg, n};
    ember_enc_init_fixed(&e, tmp, sizeof tmp);
    ember_enc_bytes(&e, 1, s);
    answer_frame(c, EMBER_FR_ERROR, id, st, 0, tmp, ember_enc_len(&e));
}

/* An untyped call's answer: the jelly value at cur as it is, once it has
 * passed the whitelist (one that does not ends the call EMBER_PROTOCOL, as
 * a typed answer that does not match the IDL does). */
static int answer_untyped(ember_conn *c, uint64_t id, ember_jl_cur *cur)
{
    const uint8_t *at = cur->p;
    char why[EMBER_JL_WHY], msg[EMBER_JL_WHY + 32];
    if (ember_jl_skip(cur, 1)) {
        ember_conn_close(c, EMBER_PROTOCOL, "PB answer malformed");
        return -1;
    }
    size_t n = (size_t)(cur->p - at);
    if (ember_jl_check(at, n, c->pb->vocab, 0, why, sizeof why)) {
        snprintf(msg, sizeof msg, "answer is not accepted jelly: %s", why);
        answer_error(c, id, EMBER_PROTOCOL, msg);
    } else {
        answer_frame(c, EMBER_FR_REPLY, id, EMBER_OK, 0, at, n);
    }
    return 0;
}

/* A typed call's answer: the jelly value at cur -> m's result struct. */
static int answer_typed(ember_conn *c, uint64_t id, const ember_method_desc *m,
                        ember_jl_cur *cur)
{
    ember_pbx t = {c, *cur, {0}, 0};
    ember_enc e;
    if (xin_begin(c, &e))
        return -1;
    int r = ember_pbx_result_in(&t, m->result, &e);
    ember_buf_enc_commit(&c->pb->xin, &e);
    size_t n = ember_buf_used(&c->pb->xin);
    if (r) {
        char why[300];
        snprintf(why, sizeof why, "reply does not match the IDL: %.200s", t.why);
        answer_error(c, id, EMBER_PROTOCOL, why);
    } else {
        answer_frame(c, EMBER_FR_REPLY, id, EMBER_OK, 0,
                     c->pb->xin.data + c->pb->xin.off, n);
    }
    xin_consume(c, n);
    return 0;
}

/* A typed call's Python failure that is one of m's declared errors
 * arrives as that error (docs/protocol-pb.md, "Failures"); false when it
 * is none of them, or its text was cut (its fields would read cut). */
static bool answer_raised(ember_conn *c, uint64_t id, const ember_method_desc *m,
                          const ember_jl_failure *fl)
{
    ember_pbx x = {c, {0}, {0}, 0};
    uint8_t out[2 * EMBER_JL_FAIL_TEXT];
    size_t n;
    if (fl->cut)
        return false;
    const ember_raise_desc *r =
        ember_pbx_raised_in(&x, m, fl->type, fl->value, out, sizeof out, &n);
    if (!r)
        return false;
    answer_frame(c, EMBER_FR_ERROR, id, EMBER_RAISED, r->id, out, n);
    return true;
}

/* An answer (error: a failure) to request id. */
static int answer_in(ember_conn *c, ember_jl_val id, ember_jl_cur *cur, bool error)
{
    ember_pb *pb = c->pb;
    ember_jl_failure fl;
    char msg[EMBER_JL_FAIL_TEXT * 2 + 4] = "";
    if (error) {
        if (ember_jl_read_failure(cur, &fl)) {
            ember_conn_close(c, EMBER_PROTOCOL, "PB error malformed");
            return -1;
        }
        snprintf(msg, sizeof msg, "%s%s%s", fl.type, fl.type[0] ? ": " : "", fl.value);
    }
    if (id.mag == PB_PROBE_ID && !id.neg)
        return 0; /* the probe's answer: being alive was the point */
    if (pb->proxy_id && id.mag == pb->proxy_id && !id.neg) {
        char why[EMBER_JL_FAIL_TEXT * 8 + 24] = "", safe[EMBER_JL_FAIL_TEXT * 8];
        if (error) { /* on_state's reasons that quote a peer are escaped */
            ember_escape(safe, sizeof safe, msg, strlen(msg));
            snprintf(why, sizeof why, "refused by root: %s", safe);
        }
        registered(c, !error, error ? why : NULL);
        return 0;
    }
    const ember_method_desc *m = NULL;
    int r = id.neg ? -1 : ember_calltab_lookup(c, id.mag, &m);
    if (r < 0) {
        ember_conn_close(c, EMBER_PROTOCOL, "protocol violation: answer to a call "
                         "id never issued");
        return -1;
    }
    if (r == 0) /* the call ended already (timeout, cancel): ignored */
        return 0;
    if (error && m && m->n_raises && answer_raised(c, id.mag, m, &fl))
        return 0;
    if (error) {
        /* Twisted's own, by its full name, as reflect.qual writes it or
         * as older releases under Python 2 sent it (str of the class):
         * an application's myapp.NoSuchMethodError is a failure like any
         * other. */
        bool nsm = strcmp(fl.type, PB_NO_SUCH_METHOD) == 0 ||
                   strcmp(fl.type, "<class '" PB_NO_SUCH_METHOD "'>") == 0;
        answer_error(c, id.mag, nsm ? EMBER_NO_METHOD : EMBER_FAILED, msg);
        return 0;
    }
    return m ? answer_typed(c, id.mag, m, cur) : answer_untyped(c, id.mag, cur);
}

/* An answer or error: its refs that no decode keeps are released. */
static int on_answer(ember_conn *c, ember_jl_cur *cur, uint32_t count, bool error)
{
    ember_jl_val id;
    pb_held h;
    if (count != 3 || ember_jl_read(cur, &id) || id.kind != EMBER_JL_INT || id.big) {
        ember_conn_close(c, EMBER_PROTOCOL, "PB answer malformed");
        return -1;
    }
    hold_remotes(c, &h, cur->p, cur->end, 1);
    int r = answer_in(c, id, cur, error);
    ember_ref_table_done(h.list);
    return r;
}

static int on_decref(ember_conn *c, ember_jl_cur *cur, uint32_t count)
{
    ember_jl_val luid;
    if (count != 2 || ember_jl_read(cur, &luid) || luid.kind != EMBER_JL_INT ||
        luid.neg || luid.big) {
        ember_conn_close(c, EMBER_PROTOCOL, "PB decref malformed");
        return -1;
    }
    /* A node's exports stay for the connection's life (a Firefly root that
     * does not keep the proxy drops it at once). */
    if (!c->pb->server && luid.mag == PB_NODE_LUID)
        return 0;
    ember_ref_decref_in(c, luid.mag, 1);
    return 0;
}

/* ---- input: negotiation ---- */

static int start_client(ember_conn *c);

static void set_dialect(ember_pb *pb, bool vocab)
{
    pb->vocab = vocab;
    pb->scan.vocab = vocab;
    pb->phase = PB_VERSION_WAIT;
}

/* Server: the client's choice, a bare string we offered. */
static int on_choice(ember_conn *c, const uint8_t *p, size_t n, const ember_bn_tok *t)
{
    bool is_pb = t->size == n && n == 4 && memcmp(p, "\x02\x82pb", 4) == 0;
    bool none = t->size == n && n == 6 && memcmp(p, "\x04\x82none", 6) == 0;
    if (!is_pb && !none) {
        ember_conn_close(c, EMBER_PROTOCOL, "PB negotiation: a dialect we did "
                         "not offer");
        return -1;
    }
    set_dialect(c->pb, is_pb);
    ember_enc e;
    ember_jl_w w;
    if (out_begin(c, &e, &w) == 0) {
        put_version(&w);
        out_end(c, &e);
    }
    return 0;
}

/* Client: the server's offer, a list of strings; we speak "pb" or "none". */
static int on_offer(ember_conn *c, const uint8_t *p, size_t n, const ember_bn_tok *t)
{
    ember_jl_cur cur;
    bool have_pb = false, have_none = false;
    if (t->type != EMBER_BN_LIST) {
        ember_conn_close(c, EMBER_PROTOCOL, "PB negotiation: no dialect list");
        return -1;
    }
    ember_jl_init(&cur, p + t->head, n - t->head, false);
    for (uint64_t i = 0; i < t->num; i++) {
        ember_jl_val v;
        if (ember_jl_read(&cur, &v) || v.kind != EMBER_JL_BYTES) {
            ember_conn_close(c, EMBER_PROTOCOL, "PB negotiation: bad dialect list");
            return -1;
        }
        have_pb |= v.len == 2 && memcmp(v.s, "pb", 2) == 0;
        have_none |= v.len == 4 && memcmp(v.s, "none", 4) == 0;
    }
    if (!have_pb && !have_none) {
        ember_conn_close(c, EMBER_PROTOCOL, "PB negotiation: no dialect in common");
        return -1;
    }
    set_dialect(c->pb, have_pb);
    return start_client(c);
}

static int on_dialect(ember_conn *c, const uint8_t *p, size_t n)
{
    ember_bn_tok t;
    const char *why = NULL;
    if (ember_bn_head(p, n, false, &t, &why) != 1) {
        ember_conn_close(c, EMBER_PROTOCOL, "PB negotiation: malformed");
        return -1;
    }
    return c->pb->server ? on_choice(c, p, n, &t) : on_offer(c, p, n, &t);
}

/* (version 6): once, first after the dialect. */
static int on_version(ember_conn *c, ember_jl_cur *cur, uint32_t count)
{
    ember_pb *pb = c->pb;
    ember_jl_val v;
    if (pb->phase != PB_VERSION_WAIT || count != 2 || ember_jl_read(cur, &v) ||
        v.kind != EMBER_JL_INT || v.neg || v.mag != PB_VERSION) {
        ember_conn_close(c, EMBER_PROTOCOL, pb->phase != PB_VERSION_WAIT
                         ? "PB: a second version" : "PB: version is not 6");
        return -1;
    }
    pb->phase = PB_READY;
    return 0;
}

/* One top-level expression: a command list (word args...). */
static int handle_expr(ember_conn *c, const uint8_t *p, size_t n)
{
    ember_pb *pb = c->pb;
    if (pb->phase == PB_DIALECT)
        return on_dialect(c, p, n);
    ember_jl_cur cur;
    ember_bn_tok t;
    const char *why = NULL;
    if (ember_bn_head(p, n, pb->vocab, &t, &why) != 1 || t.type != EMBER_BN_LIST ||
        t.num == 0) {
        ember_conn_close(c, EMBER_PROTOCOL, "PB: a top-level expression that is "
                         "not a command list");
        return -1;
    }
    ember_jl_init(&cur, p + t.head, n - t.head, pb->vocab);
    ember_jl_val cmd;
    if (ember_jl_read(&cur, &cmd) || cmd.kind != EMBER_JL_BYTES) {
        ember_conn_close(c, EMBER_PROTOCOL, "PB: a command list without a command");
        return -1;
    }
    uint32_t count = (uint32_t)t.num;
    unsigned k = ember_bn_vocab_index(cmd.s, cmd.len);
    if (k == EMBER_BN_W_VERSION)
        return on_version(c, &cur, count);
    if (pb->phase != PB_READY) {
        ember_conn_close(c, EMBER_PROTOCOL, "PB: a command before the version");
        return -1;
    }
    switch (k) {
    case EMBER_BN_W_MESSAGE:
        return on_message(c, &cur, count);
    case EMBER_BN_W_ANSWER:
        return on_answer(c, &cur, count, false);
    case EMBER_BN_W_ERROR:
        return on_answer(c, &cur, count, true);
    case EMBER_BN_W_DECREF:
        return on_decref(c, &cur, count);
    default: {
        /* The reason reaches on_leave and on_state: the peer's bytes escaped. */
        char name[32 * 4 + 1];
        ember_escape(name, sizeof name, (const char *)cmd.s, cmd.len > 32 ? 32 : cmd.len);
        ember_conn_closef(c, EMBER_PROTOCOL, "PB command '%s' is not supported", name);
        return -1;
    }
    }
}

static int pb_input(ember_conn *c)
{
    ember_pb *pb = c->pb;
    if (!ember_conn_read_into(c, EMBER_BUF_BLOCK))
        return 0;
    ember_buf *in = &c->in;
    size_t off = in->off;
    while (c->state != EMBER_CONN_CLOSED && off < in->len) {
        size_t used;
        /* Before registration only small messages make sense. */
        pb->scan.lim.max_expr = c->state == EMBER_CONN_HANDSHAKE &&
                                c->ep->lim.max_frame > EMBER_HANDSHAKE_MAX_FRAME
                                    ? EMBER_HANDSHAKE_MAX_FRAME : c->ep->lim.max_frame;
        int r = ember_bn_scan_feed(&pb->scan, in->data + off, in->len - off, &used);
        if (r == 0)
            break;
        if (r < 0) {
            if (pb->scan.why == ember_bn_too_large)
                c->close_class = 1 + EMBER_CLOSE_LIMIT;
            ember_conn_closef(c, EMBER_PROTOCOL, "bad banana: %s", pb->scan.why);
            return 0;
        }
        handle_expr(c, in->data + off, used);
        off += used;
    }
    if (c->state == EMBER_CONN_CLOSED)
        return 0;
    return ember_conn_read_done(c, off - in->off);
}

/* ---- starting ---- */

/* A node: our dialect, our version and takeProxy(name, (remote 1)), in one
 * write, as Twisted does; the connection serves calls from now on. */
static int start_client(ember_conn *c)
{
    ember_pb *pb = c->pb;
    ember_enc e;
    ember_jl_w w;
    if (out_begin(c, &e, &w))
        return -1;
    ember_bn_put_bytes(&e, pb->vocab ? "pb" : "none", pb->vocab ? 2 : 4, false);
    put_version(&w);
    pb->proxy_id = 1; /* our first request; ember's call ids are never 1 */
    put_call_head(c, &w, pb->proxy_id, 0, PB_TAKEPROXY);
    ember_jl_put_head(&w, EMBER_BN_W_TUPLE, 2);
    /* Text: a py3 root keys its children by str; on py2, u"a" == "a". */
    ember_jl_put_unicode(&w, pb->name, strlen(pb->name));
    ember_jl_put_ref(&w, false, PB_NODE_LUID);
    ember_jl_put_head(&w, EMBER_BN_W_DICTIONARY, 0);
    if (out_end(c, &e))
        return -1;
    ember_conn_set_ready(c);
    return 0;
}

int ember_pb_start(ember_conn *c, bool server, const char *name)
{
    ember_pb *pb = ember_calloc(sizeof *pb);
    if (!pb || (name && !(pb->name = ember_strdup(name)))) {
        if (pb)
            ember_free(pb, sizeof *pb);
        ember_conn_close(c, EMBER_LOST, "out of memory");
        return ember_seterr("out of memory");
    }
    const ember_limits *lim = &c->ep->lim;
    ember_bn_limits bl = {lim->max_string, lim->max_elems, lim->max_depth,
                          lim->max_frame};
    ember_bn_scan_init(&pb->scan, &bl, false);
    pb->server = server;
    pb->phase = PB_DIALECT;
    pb->xin.pool = pb->xout.pool = &c->ep->pool;
    c->pb = pb;
    c->wire = &pb_wire;
    c->ref_tables = true; /* a message's remotes are counted as it comes in */
    if (!server) {
        c->next_oid = PB_NODE_LUID + 1; /* luid 1 is our exports */
        return 0;
    }
    /* The server offers its dialects at once, in order of preference. */
    ember_enc e;
    ember_jl_w w;
    if (out_begin(c, &e, &w))
        return -1;
    ember_bn_put_list(&e, 2);
    ember_bn_put_bytes(&e, "pb", 2, false);
    ember_bn_put_bytes(&e, "none", 4, false);
    return out_end(c, &e);
}

static const ember_wire pb_wire = {
    "Perspective Broker", pb_input, pb_call, pb_answer, pb_cancel, pb_decref, pb_ping,
    pb_goodbye, pb_free,
};
