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
 */
#include <stdio.h>
#include <string.h>

#include "buf-internal.h"
#include "call-internal.h"
#include "conn-internal.h"
#include "ember-internal.h"
#include "pb-internal.h"
#include "pb-raw-internal.h"
#include "pb-xcode-internal.h"
#include "ref-internal.h"
#include "wire-internal.h"

#define PB_VERSION 6
#define PB_NODE_LUID 1          /* a node's exports, given to takeProxy */
#define PB_PROBE_ID 0           /* request id of the liveness probe */
#define PB_TAKEPROXY "takeProxy"

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

static const char *const failed_parents[] = {
    "twisted.spread.pb.Error", "builtins.Exception", "builtins.BaseException",
    "builtins.object",
};

/* ---- writing ---- */

static int out_begin(ember_conn *c, ember_enc *e)
{
    if (c->state == EMBER_CONN_CLOSED)
        return ember_seterr("connection closed");
    return ember_buf_enc_begin(&c->out, e, c, 64) ? ember_seterr("out of memory") : 0;
}

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

/* A command list's head: LIST(n) and the command word. */
static void put_cmd(ember_jl_w *w, unsigned word, size_t n)
{
    ember_bn_put_list(w->e, n + 1);
    ember_bn_put_word(w->e, word, w->vocab);
}

static void put_version(ember_conn *c)
{
    ember_enc e;
    if (out_begin(c, &e))
        return;
    ember_jl_w w = {&e, c->pb->vocab};
    put_cmd(&w, EMBER_BN_W_VERSION, 1);
    ember_bn_put_int(&e, false, PB_VERSION);
    out_end(c, &e);
}

/* (error id <CopyableFailure type: value>), parents after the type. */
static int send_failure(ember_conn *c, uint64_t id, const char *type,
                        const char *value, const char *const *parents, size_t n)
{
    const char *all[8];
    size_t k = 0;
    all[k++] = type;
    for (size_t i = 0; i < n && k < 8; i++)
        if (strcmp(parents[i], type) != 0)
            all[k++] = parents[i];
    ember_enc e;
    if (out_begin(c, &e))
        return -1;
    ember_jl_w w = {&e, c->pb->vocab};
    put_cmd(&w, EMBER_BN_W_ERROR, 2);
    ember_bn_put_int(&e, false, id);
    ember_jl_put_failure(&w, type, value, all, k);
    return out_end(c, &e);
}

static int send_type_error(ember_conn *c, uint64_t id, const char *msg)
{
    return send_failure(c, id, "builtins.TypeError", msg, failed_parents + 1, 3);
}

static int send_no_method(ember_conn *c, uint64_t id, const char *msg)
{
    static const char *const p[] = {"builtins.AttributeError", "builtins.Exception",
                                    "builtins.BaseException", "builtins.object"};
    return send_failure(c, id, "twisted.spread.flavors.NoSuchMethod", msg, p, 4);
}

/* ---- the wire hooks: output ---- */

/* What enc(value) writes in ember's encoding, in pb->xout (the caller
 * consumes *n bytes when done): the generated encoders write ember bytes,
 * read back as jelly. Refs are exported on c. true: it failed. */
static bool ember_bytes_of(ember_conn *c, ember_encode_fn enc, const void *value,
                           const uint8_t **p, size_t *n)
{
    ember_buf *b = &c->pb->xout;
    ember_enc a;
    *p = NULL;
    *n = 0;
    if (ember_buf_enc_begin(b, &a, c, 256))
        return true;
    if (enc)
        enc(&a, value);
    ember_buf_enc_commit(b, &a);
    *p = b->data + b->off;
    *n = ember_buf_used(b);
    return a.failed != 0;
}

/* The object part of a message: an object we were given, or the peer's
 * exports ("root" on a root; the luid takeProxy named on a child). */
static void put_target(ember_conn *c, ember_enc *e, uint64_t oid)
{
    if (oid)
        ember_bn_put_int(e, false, oid);
    else if (c->pb->server)
        ember_bn_put_int(e, false, c->pb->peer_obj);
    else
        ember_bn_put_bytes(e, "root", 4, c->pb->vocab);
}

/* An untyped call (ember_pb_call_raw): its name and jellied tuple as given. */
static int call_raw(ember_conn *c, uint64_t call_id, uint64_t oid,
                    const ember_pb_raw_args *a)
{
    const char *why;
    size_t n = a->name ? strlen(a->name) : 0;
    if (n == 0 || n > 64)
        return ember_seterr("a PB name has 1..64 bytes");
    if (ember_jl_check(a->args, a->len, c->pb->vocab, true, &why))
        return ember_seterr("arguments are not a jellied tuple: %s", why);
    ember_enc e;
    if (out_begin(c, &e))
        return -1;
    ember_jl_w w = {&e, c->pb->vocab};
    put_cmd(&w, EMBER_BN_W_MESSAGE, 6);
    ember_bn_put_int(&e, false, call_id);
    put_target(c, &e, oid);
    ember_bn_put_bytes(&e, a->name, n, c->pb->vocab);
    ember_bn_put_int(&e, false, call_id ? 1 : 0);
    if (ember_enc_reserve(&e, a->len) == 0) {
        memcpy(e.p, a->args, a->len);
        e.p += a->len;
    }
    ember_jl_put_head(&w, EMBER_BN_W_DICTIONARY, 0);
    return out_end(c, &e);
}

static int pb_call(ember_conn *c, uint64_t call_id, uint64_t oid, uint32_t method,
                   const ember_service_desc *svc, const ember_method_desc *m,
                   ember_encode_fn enc, const void *args)
{
    ember_pb *pb = c->pb;
    (void)svc;
    if (!m && enc == ember_pb_raw_enc)
        return call_raw(c, call_id, oid, args);
    if (!m || !m->pb_name || (m->n_params && !m->params))
        return ember_seterr("method %u: a PB peer needs its run-time types (call "
                            "it through the generated stub)", method);
    const uint8_t *p;
    size_t n;
    bool bad = ember_bytes_of(c, enc, args, &p, &n);
    ember_enc e;
    int rc = -1;
    if (bad) {
        ember_seterr("arguments could not be encoded");
    } else if (out_begin(c, &e) == 0) {
        ember_jl_w w = {&e, pb->vocab};
        ember_pbx x = {c, {0}, {0}};
        put_cmd(&w, EMBER_BN_W_MESSAGE, 6);
        ember_bn_put_int(&e, false, call_id);
        put_target(c, &e, oid);
        ember_bn_put_bytes(&e, m->pb_name, strlen(m->pb_name), pb->vocab);
        ember_bn_put_int(&e, false, call_id ? 1 : 0);
        ember_jl_put_head(&w, EMBER_BN_W_TUPLE, m->n_params + (m->pb_command ? 1 : 0));
        if (m->pb_command)
            ember_bn_put_int(&e, false, m->id);
        ember_pbx_args_out(&x, p, n, m, &w);
        ember_jl_put_head(&w, EMBER_BN_W_DICTIONARY, 0);
        rc = out_end(c, &e);
    }
    ember_buf_consume(&pb->xout, n);
    return rc;
}

/* A typed error: its qualified IDL name as the failure's type (then
 * ember.Raised and pb.Error, so trap(pb.Error) works), its fields as the
 * value. */
static int send_raised(ember_conn *c, uint64_t call_id, const ember_method_desc *m,
                       uint32_t error_id, ember_encode_fn enc, const void *value)
{
    static const char *const parents[] = {"ember.Raised", "twisted.spread.pb.Error",
                                          "builtins.Exception", "builtins.BaseException",
                                          "builtins.object"};
    const ember_type *t = NULL;
    for (uint32_t i = 0; m && i < m->n_raises && !t; i++)
        if (m->raises[i].id == error_id)
            t = m->raises[i].type;
    char text[240], type[96];
    const uint8_t *p;
    size_t n;
    bool bad = ember_bytes_of(c, enc, value, &p, &n);
    if (bad || !t)
        snprintf(text, sizeof text, "raised error %u", (unsigned)error_id);
    else
        ember_pbx_text(p, n, t, text, sizeof text);
    ember_buf_consume(&c->pb->xout, n);
    snprintf(type, sizeof type, "%s", t && t->name ? t->name : "ember.Raised");
    return send_failure(c, call_id, type, text, parents, 5);
}

static int pb_answer(ember_conn *c, uint64_t call_id, const ember_method_desc *m,
                     ember_status st, uint32_t error_id, ember_encode_fn enc,
                     const void *value, const char *msg)
{
    ember_pb *pb = c->pb;
    if (st == EMBER_RAISED)
        return send_raised(c, call_id, m, error_id, enc, value);
    if (st == EMBER_NO_METHOD)
        return send_no_method(c, call_id, msg);
    if (st != EMBER_OK) {
        const char *type = st == EMBER_UNAVAILABLE ? "ember.Unavailable"
                           : st == EMBER_LIMIT     ? "ember.Limit"
                                                   : "ember.Failed";
        return send_failure(c, call_id, type, msg ? msg : ember_status_name(st),
                            failed_parents, 4);
    }
    const uint8_t *p;
    size_t n;
    const char *why = NULL;
    bool bad = ember_bytes_of(c, enc, value, &p, &n);
    /* An untyped answer (a raw handler's) is one jelly value as it is. */
    if (!bad && !m && ember_jl_check(p, n, pb->vocab, false, &why))
        bad = true;
    ember_enc e;
    int rc = -1;
    if (!bad && out_begin(c, &e) == 0) {
        ember_jl_w w = {&e, pb->vocab};
        ember_pbx x = {c, {0}, {0}};
        put_cmd(&w, EMBER_BN_W_ANSWER, 2);
        ember_bn_put_int(&e, false, call_id);
        if (m)
            ember_pbx_result_out(&x, p, n, m->result, &w);
        else if (ember_enc_reserve(&e, n) == 0) {
            memcpy(e.p, p, n);
            e.p += n;
        }
        rc = out_end(c, &e);
    }
    ember_buf_consume(&pb->xout, n);
    if (rc)
        send_failure(c, call_id, "ember.Limit", "reply could not be encoded for "
                     "Twisted (a string or list over 655360?)", failed_parents, 4);
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
    if (out_begin(c, &e))
        return;
    ember_jl_w w = {&e, c->pb->vocab};
    for (uint64_t i = 0; i < count; i++) { /* one per reception, as Twisted */
        put_cmd(&w, EMBER_BN_W_DECREF, 1);
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
    if (out_begin(c, &e))
        return;
    ember_jl_w w = {&e, c->pb->vocab};
    put_cmd(&w, EMBER_BN_W_MESSAGE, 6);
    ember_bn_put_int(&e, false, PB_PROBE_ID);
    ember_bn_put_int(&e, false, 0);
    ember_bn_put_bytes(&e, "ember_heartbeat", 15, c->pb->vocab);
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

/* ---- input: incoming calls ---- */

/* The exports entry for a PB message name: a command-mode method (the
 * first argument is its id) or a by-name one. */
static ember_xentry *find_named(ember_exports *ex, const uint8_t *name, size_t n,
                                bool *command)
{
    for (uint32_t i = 0; ex && i < ex->n; i++) {
        const ember_method_desc *m = ex->v[i].m;
        if (m && m->pb_name && strlen(m->pb_name) == n &&
            memcmp(m->pb_name, name, n) == 0) {
            *command = m->pb_command;
            return &ex->v[i];
        }
    }
    return NULL;
}

/* The command-mode method `id` dispatched as message name[0..n). */
static ember_xentry *find_command(ember_exports *ex, const uint8_t *name, size_t n,
                                  uint64_t id)
{
    for (uint32_t i = 0; i < ex->n; i++) {
        const ember_method_desc *m = ex->v[i].m;
        if (m && m->pb_command && m->id == id && strlen(m->pb_name) == n &&
            memcmp(m->pb_name, name, n) == 0)
            return &ex->v[i];
    }
    return NULL;
}

static int take_proxy(ember_conn *c, uint64_t id, ember_jl_cur *cur, uint32_t nargs)
{
    ember_pb *pb = c->pb;
    ember_jl_val v, ref;
    char name[256], why[200];
    if (nargs < 2 || nargs > 3 || ember_jl_read(cur, &v) ||
        (v.kind != EMBER_JL_BYTES && v.kind != EMBER_JL_UNICODE) ||
        v.len == 0 || v.len >= sizeof name)
        return send_type_error(c, id, "takeProxy(name, ref): name must be "
                               "1..255 bytes");
    memcpy(name, v.s, v.len);
    name[v.len] = 0;
    if (nargs == 3 && (ember_jl_read(cur, &ref) || ref.kind != EMBER_JL_INT))
        return send_type_error(c, id, "takeProxy(name, weight, ref): weight must "
                               "be an int");
    if (ember_jl_read(cur, &ref) || ref.kind != EMBER_JL_REMOTE || ref.mag == 0)
        return send_type_error(c, id, "takeProxy(name, ref): ref must be a "
                               "pb.Referenceable");
    if (c->child) {
        send_failure(c, id, "ember.Refused", "already registered", failed_parents, 4);
        return 0;
    }
    int r = c->ep->admit ? c->ep->admit(c, name, why, sizeof why) : 1;
    if (r < 0)
        return -1;
    if (r > 0) {
        static const char *const p[] = {"ember.Refused", "twisted.spread.pb.Error",
                                        "builtins.Exception", "builtins.BaseException",
                                        "builtins.object"};
        send_failure(c, id, "ember.Refused", why, p, 5);
        c->close_after_flush = true;
        ember_conn_flush(c);
        return 0;
    }
    pb->peer_obj = ref.mag;
    ember_enc e;
    if (out_begin(c, &e) == 0) {
        ember_jl_w w = {&e, pb->vocab};
        put_cmd(&w, EMBER_BN_W_ANSWER, 2);
        ember_bn_put_int(&e, false, id);
        ember_jl_put_none(&w);
        out_end(c, &e);
    }
    if (c->ep->joined)
        c->ep->joined(c);
    return 0;
}

/* A message for an untyped handler: the jellied tuple is the payload. */
static int dispatch_raw(ember_conn *c, uint64_t id, uint64_t oid, bool oneway,
                        uint32_t sid, const uint8_t *args_at, ember_jl_cur *cur)
{
    cur->p = args_at;
    if (ember_jl_skip(cur, 1))
        return oneway ? 0 : send_type_error(c, id, cur->why);
    ember_frame f;
    f.kind = oneway ? EMBER_FR_ONEWAY : EMBER_FR_CALL;
    f.svc = sid;
    f.h[0] = oneway ? oid : id;
    f.h[1] = oneway ? 1 : oid;
    f.h[2] = oneway ? 0 : 1;
    f.payload = args_at;
    f.len = (size_t)(cur->p - args_at);
    return ember_call_dispatch(c, &f);
}

/* (message id obj name answerRequired (tuple args...) (dictionary kw...)) */
static int on_message(ember_conn *c, ember_jl_cur *cur, uint32_t count)
{
    ember_pb *pb = c->pb;
    ember_jl_val id, obj, name, ans, args, kw;
    if (count != 7 || ember_jl_read(cur, &id) || id.kind != EMBER_JL_INT || id.neg ||
        id.big || id.mag >= (1ull << 63) || ember_jl_read(cur, &obj) ||
        (obj.kind != EMBER_JL_INT && obj.kind != EMBER_JL_BYTES) ||
        ember_jl_read(cur, &name) || name.kind != EMBER_JL_BYTES ||
        ember_jl_read(cur, &ans) || ans.kind != EMBER_JL_INT || ans.mag > 1) {
        ember_conn_close(c, EMBER_PROTOCOL, "PB message malformed");
        return -1;
    }
    bool oneway = ans.mag == 0;
    const uint8_t *args_at = cur->p;
    if (ember_jl_read(cur, &args) ||
        (args.kind != EMBER_JL_TUPLE && args.kind != EMBER_JL_LIST) ||
        ember_jl_skip_rest(cur, &args) || ember_jl_read(cur, &kw) ||
        kw.kind != EMBER_JL_DICT)
        return oneway ? 0 : send_type_error(c, id.mag, cur->why ? cur->why
                                            : "arguments are not a tuple");
    if (kw.count)
        return oneway ? 0 : send_type_error(c, id.mag, "keyword arguments are not "
                                            "supported by ember");
    cur->p = args_at;
    ember_jl_read(cur, &args);

    /* Which object: "root" (a root's exports), 1 (a node's exports), or an
     * object we passed. */
    uint64_t oid = 0;
    ember_exports *ex = c->ep->exports;
    if (obj.kind == EMBER_JL_BYTES) {
        if (!pb->server || obj.len != 4 || memcmp(obj.s, "root", 4) != 0)
            ex = NULL;
    } else if (!(!pb->server && obj.mag == PB_NODE_LUID)) {
        ember_ref *t = obj.mag ? ember_ref_find_xobj(c, obj.mag) : NULL;
        oid = obj.mag;
        ex = t ? t->lex : NULL;
    }
    if (!ex)
        return oneway ? 0 : send_failure(c, id.mag, "twisted.spread.pb.Error",
                                         "Invalid Object ID", failed_parents + 1, 3);
    if (pb->server && oid == 0 && name.len == strlen(PB_TAKEPROXY) &&
        memcmp(name.s, PB_TAKEPROXY, name.len) == 0)
        return take_proxy(c, id.mag, cur, args.count);
    if (c->state != EMBER_CONN_READY)
        return oneway ? 0 : send_failure(c, id.mag, "ember.Unavailable",
                                         "call takeProxy first", failed_parents, 4);

    char msg[160];
    bool command = false;
    uint32_t nvals = args.count;
    ember_xentry *x = find_named(ex, name.s, name.len, &command);
    if (x && command) {
        ember_jl_val cmd;
        if (nvals == 0 || ember_jl_read(cur, &cmd) || cmd.kind != EMBER_JL_INT ||
            cmd.neg || cmd.big || cmd.mag > UINT32_MAX)
            return oneway ? 0 : send_type_error(c, id.mag, "the first argument "
                                                "must be the command id");
        nvals--;
        x = find_command(ex, name.s, name.len, cmd.mag);
        if (!x) {
            snprintf(msg, sizeof msg, "no command %llu", (unsigned long long)cmd.mag);
            return oneway ? 0 : send_no_method(c, id.mag, msg);
        }
    }
    if (!x && name.len <= 64) {
        /* An untyped handler (ember_pb_export_raw) gets the tuple as is. */
        char nm[65];
        bool served;
        memcpy(nm, name.s, name.len);
        nm[name.len] = 0;
        uint32_t sid = ember_pb_raw_service(nm);
        ember_xentry *raw = ember_exports_resolve(ex, sid, 1, &served);
        if (raw && raw->raw)
            return dispatch_raw(c, id.mag, oid, oneway, sid, args_at, cur);
    }
    if (!x) {
        snprintf(msg, sizeof msg, "No such method: remote_%.*s",
                 (int)(name.len > 64 ? 64 : name.len), (const char *)name.s);
        return oneway ? 0 : send_no_method(c, id.mag, msg);
    }
    if (!x->m->params && x->m->n_params)
        return oneway ? 0 : send_no_method(c, id.mag, "method has no run-time types");

    /* Jelly arguments -> the ember argument struct, then dispatch. */
    ember_pbx t = {c, *cur, {0}};
    ember_enc e;
    if (ember_buf_enc_begin(&pb->xin, &e, c, 256)) {
        ember_conn_close(c, EMBER_LOST, "out of memory");
        return -1;
    }
    int r = ember_pbx_args_in(&t, nvals, x->m, &e);
    ember_buf_enc_commit(&pb->xin, &e);
    ember_frame f;
    f.payload = pb->xin.data + pb->xin.off;
    f.len = ember_buf_used(&pb->xin);
    if (r) {
        ember_buf_consume(&pb->xin, f.len);
        return oneway ? 0 : send_type_error(c, id.mag, t.why);
    }
    /* A oneway method called with answerRequired: served as oneway, and
     * answered None at once (what a Python method returning nothing does). */
    if (!oneway && x->m->oneway) {
        oneway = true;
        ember_enc a;
        if (out_begin(c, &a) == 0) {
            ember_jl_w w = {&a, pb->vocab};
            put_cmd(&w, EMBER_BN_W_ANSWER, 2);
            ember_bn_put_int(&a, false, id.mag);
            ember_jl_put_none(&w);
            out_end(c, &a);
        }
    }
    f.kind = oneway ? EMBER_FR_ONEWAY : EMBER_FR_CALL;
    f.svc = (uint32_t)(x->key >> 32);
    f.h[0] = oneway ? oid : id.mag;
    f.h[1] = oneway ? x->m->id : oid;
    f.h[2] = oneway ? 0 : x->m->id;
    r = ember_call_dispatch(c, &f);
    if (c->state != EMBER_CONN_CLOSED)
        ember_buf_consume(&pb->xin, f.len);
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
static void answer_frame(ember_conn *c, uint64_t id, uint8_t kind, ember_status st,
                         const ember_buf *b, const char *msg)
{
    ember_frame f;
    uint8_t tmp[300];
    f.kind = kind;
    f.h[0] = id;
    f.h[1] = (uint64_t)st;
    f.h[2] = 0;
    if (msg) {
        ember_enc e;
        ember_enc_init_fixed(&e, tmp, sizeof tmp);
        size_t n = strlen(msg);
        ember_bytes s = {(const uint8_t *)msg, n > 250 ? 250 : n};
        ember_enc_bytes(&e, 1, s);
        f.payload = tmp;
        f.len = ember_enc_len(&e);
    } else {
        f.payload = b->data + b->off;
        f.len = ember_buf_used(b);
    }
    ember_calltab_answer(c, &f);
}

static int on_answer(ember_conn *c, ember_jl_cur *cur, uint32_t count, bool error)
{
    ember_pb *pb = c->pb;
    ember_jl_val id;
    if (count != 3 || ember_jl_read(cur, &id) || id.kind != EMBER_JL_INT || id.big) {
        ember_conn_close(c, EMBER_PROTOCOL, "PB answer malformed");
        return -1;
    }
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
        char why[EMBER_JL_FAIL_TEXT * 2 + 24] = "";
        if (error)
            snprintf(why, sizeof why, "refused by root: %s", msg);
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
    if (r == 0)
        return 0; /* the call ended already (timeout, cancel): ignored */
    if (error) {
        bool nsm = strstr(fl.type, "NoSuchMethod") != NULL;
        answer_frame(c, id.mag, EMBER_FR_ERROR, nsm ? EMBER_NO_METHOD : EMBER_FAILED,
                     NULL, msg);
        return 0;
    }
    if (!m) { /* an untyped call: the jellied answer as it is */
        ember_buf v;
        memset(&v, 0, sizeof v);
        const uint8_t *at = cur->p;
        if (ember_jl_skip(cur, 1)) {
            ember_conn_close(c, EMBER_PROTOCOL, "PB answer malformed");
            return -1;
        }
        v.data = (uint8_t *)at;
        v.len = (size_t)(cur->p - at);
        answer_frame(c, id.mag, EMBER_FR_REPLY, EMBER_OK, &v, NULL);
        return 0;
    }
    ember_pbx t = {c, *cur, {0}};
    ember_enc e;
    if (ember_buf_enc_begin(&pb->xin, &e, c, 256)) {
        ember_conn_close(c, EMBER_LOST, "out of memory");
        return -1;
    }
    r = ember_pbx_result_in(&t, m->result, &e);
    ember_buf_enc_commit(&pb->xin, &e);
    size_t n = ember_buf_used(&pb->xin);
    if (r) {
        char why[300];
        snprintf(why, sizeof why, "reply does not match the IDL: %.200s", t.why);
        answer_frame(c, id.mag, EMBER_FR_ERROR, EMBER_PROTOCOL, NULL, why);
    } else {
        answer_frame(c, id.mag, EMBER_FR_REPLY, EMBER_OK, &pb->xin, NULL);
    }
    if (c->state != EMBER_CONN_CLOSED)
        ember_buf_consume(&pb->xin, n);
    return 0;
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

static int on_dialect(ember_conn *c, const uint8_t *p, size_t n)
{
    ember_pb *pb = c->pb;
    ember_jl_cur cur;
    ember_bn_tok t;
    const char *why = NULL;
    ember_jl_init(&cur, p, n, false);
    if (ember_bn_head(p, n, false, &t, &why) != 1) {
        ember_conn_close(c, EMBER_PROTOCOL, "PB negotiation: malformed");
        return -1;
    }
    if (pb->server) { /* the client's choice: a bare string we offered */
        bool is_pb = t.size == n && n == 4 && memcmp(p, "\x02\x82pb", 4) == 0;
        bool none = t.size == n && n == 6 && memcmp(p, "\x04\x82none", 6) == 0;
        if (!is_pb && !none) {
            ember_conn_close(c, EMBER_PROTOCOL, "PB negotiation: a dialect we did "
                             "not offer");
            return -1;
        }
        pb->vocab = is_pb;
        pb->scan.vocab = is_pb;
        pb->phase = PB_VERSION_WAIT;
        put_version(c);
        return 0;
    }
    /* The server's offer: a list of strings; we speak "pb" or "none". */
    bool have_pb = false, have_none = false;
    if (t.type != EMBER_BN_LIST) {
        ember_conn_close(c, EMBER_PROTOCOL, "PB negotiation: no dialect list");
        return -1;
    }
    cur.p += t.head;
    for (uint64_t i = 0; i < t.num; i++) {
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
    pb->vocab = have_pb;
    pb->scan.vocab = have_pb;
    pb->phase = PB_VERSION_WAIT;
    return start_client(c);
}

static int handle_expr(ember_conn *c, const uint8_t *p, size_t n)
{
    ember_pb *pb = c->pb;
    if (pb->phase == PB_DIALECT)
        return on_dialect(c, p, n);
    ember_jl_cur cur;
    ember_bn_tok t;
    const char *why = NULL;
    const uint8_t *word;
    ember_jl_init(&cur, p, n, pb->vocab);
    if (ember_bn_head(p, n, pb->vocab, &t, &why) != 1 || t.type != EMBER_BN_LIST ||
        t.num == 0) {
        ember_conn_close(c, EMBER_PROTOCOL, "PB: a top-level expression that is "
                         "not a command list");
        return -1;
    }
    cur.p += t.head;
    ember_jl_val cmd;
    if (ember_jl_read(&cur, &cmd) || cmd.kind != EMBER_JL_BYTES) {
        ember_conn_close(c, EMBER_PROTOCOL, "PB: a command list without a command");
        return -1;
    }
    word = cmd.s;
    unsigned k = ember_bn_vocab_index(word, cmd.len);
    if (k == EMBER_BN_W_VERSION) {
        ember_jl_val v;
        if (pb->phase != PB_VERSION_WAIT || t.num != 2 || ember_jl_read(&cur, &v) ||
            v.kind != EMBER_JL_INT || v.neg || v.mag != PB_VERSION) {
            ember_conn_close(c, EMBER_PROTOCOL, pb->phase != PB_VERSION_WAIT
                             ? "PB: a second version" : "PB: version is not 6");
            return -1;
        }
        pb->phase = PB_READY;
        return 0;
    }
    if (pb->phase != PB_READY) {
        ember_conn_close(c, EMBER_PROTOCOL, "PB: a command before the version");
        return -1;
    }
    uint32_t count = (uint32_t)t.num;
    switch (k) {
    case EMBER_BN_W_MESSAGE:
        return on_message(c, &cur, count);
    case EMBER_BN_W_ANSWER:
        return on_answer(c, &cur, count, false);
    case EMBER_BN_W_ERROR:
        return on_answer(c, &cur, count, true);
    case EMBER_BN_W_DECREF:
        return on_decref(c, &cur, count);
    default:
        ember_conn_closef(c, EMBER_PROTOCOL, "PB command '%.*s' is not supported",
                          (int)(cmd.len > 32 ? 32 : cmd.len), (const char *)word);
        return -1;
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
    if (out_begin(c, &e))
        return -1;
    ember_jl_w w = {&e, pb->vocab};
    ember_bn_put_bytes(&e, pb->vocab ? "pb" : "none", pb->vocab ? 2 : 4, false);
    put_cmd(&w, EMBER_BN_W_VERSION, 1);
    ember_bn_put_int(&e, false, PB_VERSION);
    pb->proxy_id = 1; /* our first request; ember's call ids are never 1 */
    put_cmd(&w, EMBER_BN_W_MESSAGE, 6);
    ember_bn_put_int(&e, false, pb->proxy_id);
    ember_bn_put_bytes(&e, "root", 4, pb->vocab);
    ember_bn_put_bytes(&e, PB_TAKEPROXY, strlen(PB_TAKEPROXY), pb->vocab);
    ember_bn_put_int(&e, false, 1);
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
    if (!server) {
        c->next_oid = PB_NODE_LUID + 1; /* luid 1 is our exports */
        return 0;
    }
    /* The server offers its dialects at once, in order of preference. */
    ember_enc e;
    if (out_begin(c, &e))
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
