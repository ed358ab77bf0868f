/*
 * proxy.c — third-party references, in the manner of Cap'n Proto: when a
 * ref to a peer's object (or a peer's exports) is passed on to another
 * connection, the receiver gets an object of ours, a proxy, exported like a
 * local object. Its calls are forwarded untouched to where the ref points
 * and its answers relayed back, so no user code runs on the way. A proxy
 * serves the one service the ref was passed as (ref<Service>). A call's
 * arguments are first checked against the method's run-time types as the
 * owner's generated decoder will read them: arguments it would refuse (and
 * drop its connection to us for) are the caller's violation, answered and
 * disconnected here as by a direct callee. Arguments,
 * results and raised errors that hold refs are re-encoded on the way, with
 * the run-time types of the method (generated code): each ref decoded on
 * one connection is encoded on the other, so it becomes a proxy in turn (or
 * goes home). It lives as long as the receiver holds it (or a call through
 * it is in flight) and holds the forwarded ref meanwhile, so the owner
 * learns the release (its DECREF) once both the receiver and the local
 * holders are done. When the owner goes, the forwarded calls end
 * EMBER_UNAVAILABLE.
 */
#include <stdio.h>
#include <string.h>

#include "call-internal.h"
#include "conn-internal.h"
#include "ember-internal.h"
#include "ref-internal.h"
#include "wire-internal.h"
#include "metrics-internal.h"

/* What a proxy costs, made when a ref new to us is passed on: the ref, its
 * exports table with its one entry and that entry's metrics, and its slot
 * among the connection's exported objects (and two buckets of each of the
 * two tables that find it). Charged to the decode that brought the ref. */
#define PROXY_BYTES                                                          \
    (sizeof(ember_ref) + sizeof(ember_exports) + sizeof(ember_xentry) +      \
     sizeof(ember_xmetrics) + sizeof(ember_xobj) + 4 * sizeof(void *))

/* True if a value of type t can hold a ref (structs are walked to `depth`
 * levels: enough for every type a recursive struct reaches). */
static bool type_has_ref(const ember_type *t, int depth)
{
    if (!t || depth > 64)
        return false;
    switch (t->kind) {
    case EMBER_T_REF:
        return true;
    case EMBER_T_LIST:
        return type_has_ref(t->elem, depth + 1);
    case EMBER_T_MAP:
        return type_has_ref(t->key, depth + 1) || type_has_ref(t->elem, depth + 1);
    case EMBER_T_STRUCT:
        for (uint32_t i = 0; i < t->n_fields; i++)
            if (type_has_ref(t->fields[i].type, depth + 1))
                return true;
        return false;
    default:
        return false;
    }
}

/* Refs inside the arguments, the result or a raised error would name
 * objects of the wrong connection on the other side: such methods are
 * re-encoded. */
static bool method_has_refs(const ember_method_desc *m)
{
    for (uint32_t i = 0; i < m->n_params; i++)
        if (type_has_ref(m->params[i].type, 0))
            return true;
    for (uint32_t i = 0; i < m->n_raises; i++)
        if (type_has_ref(m->raises[i].type, 0))
            return true;
    return type_has_ref(m->result, 0);
}

static const ember_method_desc *find_method(const ember_service_desc *svc,
                                           uint32_t id)
{
    for (uint32_t i = 0; i < svc->n_methods; i++)
        if (svc->methods[i].id == id)
            return &svc->methods[i];
    return NULL;
}

/* ---- walking a value by its run-time types ---- */

static unsigned wire_type(const ember_type *t)
{
    switch (t->kind) {
    case EMBER_T_F64:
        return EMBER_WT_I64;
    case EMBER_T_F32:
        return EMBER_WT_I32;
    case EMBER_T_STRING:
    case EMBER_T_BYTES:
    case EMBER_T_LIST:
    case EMBER_T_MAP:
    case EMBER_T_STRUCT:
        return EMBER_WT_LEN;
    default:
        return EMBER_WT_VARINT;
    }
}

/* The C layout idlc gives a value (gen_h.c, gen_c.c): what a generated
 * decoder allocates for it, so that a check charges the decode budget as
 * the owner's decoder will. Lists and maps are { items; n } and
 * { keys; vals; n }, an empty struct holds one byte, an optional struct is
 * a pointer, any other optional has a bool has_ flag before it. */
typedef struct c_list { void *items; uint32_t n; } c_list;
typedef struct c_map { void *keys, *vals; uint32_t n; } c_map;
typedef struct c_layout { size_t size, align; } c_layout;
#define C_LAYOUT(type) ((c_layout){sizeof(type), _Alignof(type)})

static c_layout c_type(const ember_type *t, int depth);

static void c_member(c_layout *s, c_layout m)
{
    s->size = (s->size + m.align - 1) / m.align * m.align + m.size;
    if (m.align > s->align)
        s->align = m.align;
}

static void c_field(c_layout *s, const ember_field_desc *f, int depth)
{
    if (f->optional && f->type && f->type->kind == EMBER_T_STRUCT) {
        c_member(s, C_LAYOUT(void *));
        return;
    }
    if (f->optional)
        c_member(s, C_LAYOUT(bool));
    c_member(s, c_type(f->type, depth));
}

static c_layout c_struct(const ember_field_desc *fs, uint32_t n, int depth)
{
    c_layout s = {0, 1};
    for (uint32_t i = 0; i < n; i++)
        c_field(&s, &fs[i], depth + 1);
    if (n == 0)
        c_member(&s, C_LAYOUT(uint8_t));
    s.size = (s.size + s.align - 1) / s.align * s.align;
    return s;
}

static c_layout c_type(const ember_type *t, int depth)
{
    if (!t || depth > 64) /* a table no IDL makes: a struct holding itself */
        return C_LAYOUT(uint8_t);
    switch (t->kind) {
    case EMBER_T_BOOL: return C_LAYOUT(bool);
    case EMBER_T_I8: return C_LAYOUT(int8_t);
    case EMBER_T_U8: return C_LAYOUT(uint8_t);
    case EMBER_T_I16: return C_LAYOUT(int16_t);
    case EMBER_T_U16: return C_LAYOUT(uint16_t);
    case EMBER_T_I32: return C_LAYOUT(int32_t);
    case EMBER_T_U32: return C_LAYOUT(uint32_t);
    case EMBER_T_I64: return C_LAYOUT(int64_t);
    case EMBER_T_U64: return C_LAYOUT(uint64_t);
    case EMBER_T_F32: return C_LAYOUT(float);
    case EMBER_T_F64: return C_LAYOUT(double);
    case EMBER_T_ENUM: return C_LAYOUT(ember_type_kind); /* int32 enumerators */
    case EMBER_T_STRING: return C_LAYOUT(const char *);
    case EMBER_T_BYTES: return C_LAYOUT(ember_bytes);
    case EMBER_T_REF: return C_LAYOUT(ember_ref *);
    case EMBER_T_LIST: return C_LAYOUT(c_list);
    case EMBER_T_MAP: return C_LAYOUT(c_map);
    case EMBER_T_STRUCT: return c_struct(t->fields, t->n_fields, depth);
    }
    return C_LAYOUT(uint8_t);
}

/* The fewest bytes an element takes on the wire (idlc's gu_min_bytes). */
static size_t min_bytes(const ember_type *t)
{
    return t->kind == EMBER_T_F32 ? 4 : t->kind == EMBER_T_F64 ? 8 : 1;
}

/*
 * What a walk does with the values it reads from d:
 *   CHECK  checks each as the generated decoder of its type reads it: wire
 *          types, integer ranges (bool 0 or 1, enums as i32), strict UTF-8,
 *          max_string, max_elems, counts against the bytes present, lists
 *          consumed exactly, nesting (max_depth), and the decode budget,
 *          charged to d with what that decoder allocates; refs are read as
 *          varints, not decoded; unknown fields are skipped;
 *   OUT    checks as CHECK does the arguments XCODE wrote for the owner,
 *          whose decode budget counts their own length (check_ref_out);
 *   SKIM   decodes the refs (counted, released with the call's arena) and
 *          skips the rest;
 *   XCODE  decodes the refs and encodes them on e's connection (each
 *          becomes a proxy there in turn, or goes home), and copies what
 *          holds no ref.
 */
enum { WALK_CHECK, WALK_OUT, WALK_SKIM, WALK_XCODE };
/* CHECK and OUT both check; OUT reads what XCODE wrote, as the owner
 * will (check_ref_out). */
#define WALK_CHECKS(w) ((w)->mode <= WALK_OUT)

typedef struct walk {
    ember_dec *d;
    ember_enc *e; /* XCODE */
    int mode;
} walk;

/* Copies a value of wire type wt as it is. */
static int copy_value(ember_dec *d, ember_enc *e, unsigned wt)
{
    const uint8_t *p = d->p;
    if (ember_dec_skip(d, wt))
        return -1;
    ember_bytes b = {p, (size_t)(d->p - p)};
    ember_enc_payload(e, &b);
    return 0;
}

/* A value walked over without looking at it. */
static int pass_value(walk *w, unsigned wt)
{
    return w->e ? copy_value(w->d, w->e, wt) : ember_dec_skip(w->d, wt);
}

/* A string (strict UTF-8, no NUL) or bytes value, and its copy. */
static int check_str(ember_dec *d, bool utf8)
{
    uint64_t n;
    if (ember_dec_raw_varint(d, &n))
        return -1;
    if (n > d->lim.max_string)
        return ember_dec_fail(d, "string or bytes longer than the limit");
    if (n > (uint64_t)(d->end - d->p))
        return ember_dec_fail(d, "length runs past the end");
    if (utf8 && !ember_utf8_valid((const char *)d->p, (size_t)n))
        return ember_dec_fail(d, "string is not valid UTF-8 (or holds NUL)");
    d->p += n;
    /* copied with a NUL (a string); "" and empty bytes are not copied */
    return n ? ember_dec_charge(d, (size_t)n + utf8) : 0;
}

/* A scalar, range-checked by the reader of its C type. */
static int check_scalar(ember_dec *d, const ember_type *t)
{
    union {
        bool b;
        int8_t i8;
        uint8_t u8;
        int16_t i16;
        uint16_t u16;
        int32_t i32;
        uint32_t u32;
        int64_t i64;
        uint64_t u64;
        float f32;
        double f64;
    } v;
    switch (t->kind) {
    case EMBER_T_BOOL: return ember_dec_raw_bool(d, &v.b);
    case EMBER_T_I8: return ember_dec_raw_i8(d, &v.i8);
    case EMBER_T_U8: return ember_dec_raw_u8(d, &v.u8);
    case EMBER_T_I16: return ember_dec_raw_i16(d, &v.i16);
    case EMBER_T_U16: return ember_dec_raw_u16(d, &v.u16);
    case EMBER_T_I32:
    case EMBER_T_ENUM: return ember_dec_raw_i32(d, &v.i32); /* unknown values kept */
    case EMBER_T_U32: return ember_dec_raw_u32(d, &v.u32);
    case EMBER_T_I64: return ember_dec_raw_i64(d, &v.i64);
    case EMBER_T_U64: return ember_dec_raw_u64(d, &v.u64);
    case EMBER_T_F32: return ember_dec_raw_f32(d, &v.f32);
    case EMBER_T_F64: return ember_dec_raw_f64(d, &v.f64);
    case EMBER_T_STRING: return check_str(d, true);
    case EMBER_T_BYTES: return check_str(d, false);
    default: /* a kind of a newer runtime's tables */
        return ember_dec_skip(d, wire_type(t));
    }
}

/* A list's or map's count, as ember_dec_list_begin_raw takes it, and the
 * arrays the decoder allocates for it. */
static int check_count(ember_dec *d, const ember_type *t, uint64_t n)
{
    bool map = t->kind == EMBER_T_MAP;
    size_t least = min_bytes(t->elem) + (map ? min_bytes(t->key) : 0);
    if (n > d->lim.max_elems)
        return ember_dec_fail(d, "list or map longer than the limit");
    if (n > (uint64_t)(d->end - d->p) / least)
        return ember_dec_fail(d, "list or map count exceeds the bytes present");
    for (int i = 0; n && i < 1 + map; i++) {
        size_t size = c_type(map && i == 0 ? t->key : t->elem, 0).size;
        if (n > SIZE_MAX / size)
            return ember_dec_fail(d, "list too large");
        if (ember_dec_charge(d, (size_t)n * size))
            return -1;
    }
    return 0;
}

static int walk_fields(walk *w, const ember_field_desc *fs, uint32_t n);

/* A ref as the owner reads it from what XCODE wrote: its cleanup, and its
 * entry unless it goes home there. One the owner was passed before may be
 * known to it still, or released with a DECREF on its way: counted as new. */
static int check_ref_out(ember_dec *d)
{
    uint64_t w;
    if (ember_dec_raw_varint(d, &w))
        return -1;
    if (w == 0)
        return 0;
    if (ember_dec_charge(d, EMBER_ARENA_CLEANUP_BYTES))
        return -1;
    return w & 1 ? 0 : ember_dec_charge(d, EMBER_REF_ENTRY_BYTES);
}

/* Walks one value (no key) of type t. */
static int walk_value(walk *w, unsigned wt, const ember_type *t)
{
    ember_dec *d = w->d;
    if (!t)
        return pass_value(w, wt);
    if (WALK_CHECKS(w)) {
        if (wt != wire_type(t))
            return ember_dec_fail(d, "field has the wrong wire type");
    } else if (!type_has_ref(t, 0) || wt != wire_type(t)) {
        return pass_value(w, wt);
    }
    const uint8_t *end;
    size_t mark = 0;
    uint64_t count;
    int r = 0;
    switch (t->kind) {
    case EMBER_T_REF: {
        ember_ref *ref;
        size_t outside = d->outside;
        if (w->mode == WALK_CHECK) {
            /* decoded later (XCODE), or copied, if it names an object
             * (a direct callee drops a caller that sends one that does
             * not) */
            return ember_dec_check_ref(d);
        }
        if (w->mode == WALK_OUT)
            return check_ref_out(d);
        if (ember_dec_raw_ref(d, &ref)) /* released with the call's arena */
            return -1;
        if (w->mode == WALK_SKIM)
            return 0;
        /* A ref new to us becomes a new proxy on e's connection, which
         * lives as long as the ref: decoded memory too (the decode budget,
         * and a forwarded call's max_deferred_bytes while it waits). */
        if (d->outside != outside) {
            if (ember_dec_charge(d, PROXY_BYTES))
                return -1;
            d->outside += PROXY_BYTES;
        }
        ember_enc_ref_value_as(w->e, ref, t->svc);
        return 0;
    }
    case EMBER_T_STRUCT:
        if (ember_dec_enter_raw(d, &end))
            return -1;
        if (w->e)
            mark = ember_enc_len_begin(w->e);
        r = walk_fields(w, t->fields, t->n_fields);
        break;
    case EMBER_T_LIST:
    case EMBER_T_MAP: /* a count, then the elements (pairs) */
        if (!t->elem || (t->kind == EMBER_T_MAP && !t->key))
            return ember_dec_fail(d, "a list or map type without its element types");
        if (ember_dec_enter_raw(d, &end) || ember_dec_raw_varint(d, &count))
            return -1;
        if (WALK_CHECKS(w) && check_count(d, t, count)) {
            ember_dec_leave(d, end);
            return -1;
        }
        if (w->e) {
            mark = ember_enc_len_begin(w->e);
            ember_enc_raw_varint(w->e, count);
        }
        for (uint64_t i = 0; i < count && r == 0; i++) {
            if (t->kind == EMBER_T_MAP)
                r = walk_value(w, wire_type(t->key), t->key);
            if (r == 0)
                r = walk_value(w, wire_type(t->elem), t->elem);
        }
        if (r == 0 && d->p != d->end)
            r = ember_dec_fail(d, "list or map has trailing bytes");
        break;
    default:
        return check_scalar(d, t);
    }
    if (w->e)
        ember_enc_len_end(w->e, mark);
    ember_dec_leave(d, end);
    return r;
}

/* The fields of a struct, to the end of d's region: 0, or -1. */
static int walk_fields(walk *w, const ember_field_desc *fs, uint32_t n)
{
    uint32_t tag;
    unsigned wt;
    int k;
    while ((k = ember_dec_field(w->d, &tag, &wt)) == 1) {
        const ember_field_desc *f = NULL;
        for (uint32_t i = 0; i < n && !f; i++)
            if (fs[i].tag == tag)
                f = &fs[i];
        if (w->e)
            ember_enc_key(w->e, tag, wt);
        /* an optional struct is decoded into memory of its own */
        if (f && WALK_CHECKS(w) && f->optional && f->type &&
            f->type->kind == EMBER_T_STRUCT &&
            ember_dec_charge(w->d, c_type(f->type, 0).size))
            return -1;
        if (f ? walk_value(w, wt, f->type) : pass_value(w, wt))
            return -1;
    }
    return k;
}

int ember_proxy_check_fields(ember_dec *d, const ember_field_desc *fs, uint32_t n)
{
    walk w = {d, NULL, WALK_CHECK};
    return walk_fields(&w, fs, n);
}

/* A forwarded call's arguments, checked (CHECK or OUT) as m's generated
 * dispatch decodes them: into an argument struct of the arena unless every
 * argument reaches the handler by value (gen_c.c, args_by_value), then the
 * fields. A method without parameters reads nothing. */
static int check_args(ember_dec *d, const ember_method_desc *m, int mode)
{
    bool by_value = true;
    c_layout args = {0, 1};
    for (uint32_t i = 0; i < m->n_params; i++) {
        const ember_field_desc *p = &m->params[i];
        ember_type_kind k = p->type ? p->type->kind : EMBER_T_BOOL;
        if (p->optional ? k != EMBER_T_STRUCT && k != EMBER_T_STRING && k != EMBER_T_REF
                        : k == EMBER_T_STRUCT || k == EMBER_T_LIST || k == EMBER_T_MAP)
            by_value = false;
        c_field(&args, p, 0);
    }
    if (!by_value && ember_dec_charge(d, args.size))
        return -1;
    walk w = {d, NULL, mode};
    return walk_fields(&w, m->params, m->n_params);
}

int ember_proxy_check_args(ember_dec *d, const ember_method_desc *m)
{
    return check_args(d, m, WALK_CHECK);
}

/* The smaller of our limit and the owner's (0: it did not say). */
static uint32_t within(uint32_t ours, uint32_t owners)
{
    return owners && owners < ours ? owners : ours;
}

/* Our decode limits lim made the smaller of them and those the owner
 * (the peer of to) said at registration. */
static void owner_limits(ember_dec_limits *lim, const ember_conn *to)
{
    const ember_dec_limits *o = &to->peer_lim;
    lim->max_depth = within(lim->max_depth, o->max_depth);
    lim->max_elems = within(lim->max_elems, o->max_elems);
    lim->max_string = within(lim->max_string, o->max_string);
    lim->decode_ratio = within(lim->decode_ratio, o->decode_ratio);
    lim->decode_floor = within(lim->decode_floor, o->decode_floor);
}

#define OWNER_SAID "bad arguments: %s (the limits %s.%s's owner said)"

/* The caller's arguments do not decode as the owner's dispatch will read
 * them: forwarded, they would make the owner drop its connection to us
 * with every call on it. Checked under the smaller of our limits and those
 * the owner said at registration; true then, and the call is answered.
 * Arguments our own limits refuse are the caller's violation, as they
 * would be at a direct callee: it is answered FAILED "bad arguments: ..."
 * and disconnected (protocol.md, section 4). Arguments only the owner's
 * tighter limits refuse are no fault of the caller, who cannot know them:
 * that call alone fails FAILED, as a value over the peer's max_depth fails
 * at its sender. Either way the owner never sees the call. */
static bool bad_args(ember_call *call, const ember_ref *px, const ember_method_desc *m,
                     const void *p, size_t n)
{
    ember_dec d;
    ember_dec_init_conn(&d, call->conn, p, n, NULL); /* nothing is allocated */
    const ember_dec_limits ours = d.lim;
    if (px->fwd->conn)
        owner_limits(&d.lim, px->fwd->conn);
    if (check_args(&d, m, WALK_CHECK) == 0)
        return false;
    const char *why = d.why ? d.why : "arguments do not decode";
    if (memcmp(&ours, &d.lim, sizeof ours) != 0) {
        ember_dec own;
        ember_dec_init_conn(&own, call->conn, p, n, NULL);
        if (check_args(&own, m, WALK_CHECK) == 0) {
            ember_call_fail(call, OWNER_SAID, why, px->svc->name, m->name);
            return true;
        }
        why = own.why ? own.why : "arguments do not decode";
    }
    ember_conn *c = call->conn; /* the answer ends the call */
    ember_call_fail(call, "bad arguments: %s", why);
    ember_conn_closef(c, EMBER_PROTOCOL, "undecodable arguments for %s.%s: "
                      "%s", px->svc->name, m->name, why);
    return true;
}

/* Protocol 3: the frame being handled on c lists refs of its sender that
 * no decode took: they sit where the method's types know no ref (a field
 * of a newer version, a hand-written table), and copied they would name
 * objects of the wrong connection on the other side, which the receiver
 * finds unlisted (and drops the connection) or takes for its own. Such
 * values are not passed on: false, with why (logged at WARN). */
static bool refs_copied(const ember_conn *c, const ember_service_desc *svc,
                        const ember_method_desc *m, char *why, size_t n)
{
    if (!c || !c->in_refs)
        return false;
    snprintf(why, n, "values holding refs where the types of %s.%s have "
             "none: not passed on", svc->name, m ? m->name : "?");
    ember_log(EMBER_LOG_WARN, "%s: %s from %s (%s)", c->ep->what, why,
              c->name ? c->name : "unregistered peer", c->peer);
    return true;
}

/* What is re-encoded: a struct of fields from a decoder (on the other
 * connection); the encoder writes on the frame's. */
typedef struct xcode {
    ember_dec *d;
    const ember_field_desc *fields;
    uint32_t n;
    const ember_service_desc *svc;
    const ember_method_desc *m;
    bool args; /* m's arguments, for the owner (e's peer) */
} xcode;

/* The arguments XCODE wrote for x's owner from off on: read as the
 * owner's dispatch will, under its limits (as bad_args read the caller's).
 * Their length is not the caller's (refs and keys are written anew, in
 * their fewest bytes), and the owner's decode budget counts it. Refused,
 * e fails with why. */
static void check_out(ember_enc *e, size_t off, const xcode *x)
{
    ember_conn *to = e->conn;
    ember_dec d;
    ember_dec_init_conn(&d, to, e->base + off, (size_t)(e->p - e->base) - off, NULL);
    owner_limits(&d.lim, to);
    if (check_args(&d, x->m, WALK_OUT) == 0)
        return;
    ember_seterr(OWNER_SAID, d.why ? d.why : "arguments do not decode",
                 x->svc->name, x->m->name);
    e->failed = EMBER_ENC_BAD_ARGS;
}

static void enc_xcode(ember_enc *e, const void *value)
{
    const xcode *x = value;
    char why[200];
    size_t off = (size_t)(e->p - e->base);
    walk w = {x->d, e, WALK_XCODE};
    int k = walk_fields(&w, x->fields, x->n);
    if (k == 0 && !e->failed &&
        refs_copied(x->d->conn, x->svc, x->m, why, sizeof why)) {
        ember_seterr("%s", why);
        e->failed = EMBER_ENC_BAD_ARGS;
    }
    if (k == 0 && !e->failed && x->args)
        check_out(e, off, x);
    if (k && !e->failed) {
        /* what the peer sent, not our encoder: FAILED, with why */
        const ember_conn *from = x->d->conn;
        const char *why = x->d->why ? x->d->why : "they do not decode";
        ember_log(EMBER_LOG_WARN, "%s: values from %s (%s) not passed on "
                  "through a proxy: %s", from->ep->what,
                  from->name ? from->name : "unregistered peer", from->peer, why);
        ember_seterr("bad values: %s", why);
        e->failed = EMBER_ENC_BAD_ARGS;
    }
}

/* An answer of the owner's (a REPLY or an ERROR it raised) that would go
 * on as it came, holding refs no decode took: fails the call instead. */
static bool answer_refs_copied(ember_call *call, const ember_outcome *o)
{
    char why[200];
    const ember_ref *px = call->target; /* the proxy, held by the call */
    if ((o->status != EMBER_OK && o->status != EMBER_RAISED) || !call->fwd_to ||
        !refs_copied(call->fwd_to->conn, px->svc, find_method(px->svc, call->method),
                     why, sizeof why))
        return false;
    ember_call_fail(call, "%s", why);
    return true;
}

static void relayed(const ember_outcome *o, const void *p, size_t n, void *ud)
{
    ember_call *call = ud;
    call->fwd_h = 0;
    if (!answer_refs_copied(call, o))
        ember_call_relay(call, o, p, n);
}

/* The answer of a forwarded call whose result or errors may hold refs. A
 * raised error the method does not declare cannot be re-encoded: its refs
 * would name the wrong objects, so the caller gets a failure instead. */
static void relayed_typed(const ember_outcome *o, ember_dec *reply, ember_fn cb,
                          void *ud)
{
    ember_call *call = ud;
    (void)cb;
    /* call->target is the proxy, held by the call. */
    const ember_method_desc *m = find_method(call->target->svc, call->method);
    call->fwd_h = 0;
    if (o->status == EMBER_OK && reply && m) {
        ember_field_desc ret = {1, "ret", m->result, false};
        xcode x = {reply, &ret, m->result ? 1 : 0, call->target->svc, m, false};
        if (ember_call_reply(call, enc_xcode, &x) == 0)
            return;
    }
    if (o->status == EMBER_RAISED && reply && m) {
        const ember_type *t = ember_raise_type(m, o->error_id);
        if (!t) {
            ember_call_fail(call, "the owner raised error %u, which %s does not "
                            "declare", (unsigned)o->error_id, m->name);
            return;
        }
        xcode x = {reply, t->fields, t->n_fields, call->target->svc, m, false};
        if (ember_call_raise(call, o->error_id, enc_xcode, &x) == 0)
            return;
    }
    const void *p = reply ? reply->p : NULL;
    if (!answer_refs_copied(call, o))
        ember_call_relay(call, o, p, reply ? (size_t)(reply->end - reply->p) : 0);
}

/* The raw handler of every call to a proxy: the service matched already
 * (it is all the proxy serves). */
static void forward(ember_call *call, uint32_t service, uint32_t method,
                    const void *p, size_t n, void *ud)
{
    ember_ref *px = ud;
    const ember_service_desc *svc = px->svc;
    const ember_method_desc *m = find_method(svc, method);
    char why[200];
    if (!m) {
        ember_call_fail_status(call, EMBER_NO_METHOD, "no method %u in %s",
                               method, svc->name);
    } else if (m->n_params && m->params && bad_args(call, px, m, p, n)) {
        return; /* answered (and, its violation, the caller dropped) */
    } else if (method_has_refs(m)) {
        /* Decoded from the caller's connection (in the call's arena),
         * encoded on the owner's as the frame is written. */
        ember_dec d;
        ember_dec_init_conn(&d, call->conn, p, n, &call->arena);
        xcode x = {&d, m->params, m->n_params, svc, m, true};
        if (ember_call_oneway(call)) {
            ember_oneway_start(px->fwd, svc, method, enc_xcode, &x);
        } else {
            call->fwd_to = ember_ref_retain(px->fwd);
            call->fwd_h = ember_call_start(px->fwd, svc, method, enc_xcode, &x,
                                           relayed_typed, NULL, call, NULL);
        }
        /* Refused before a byte was encoded (the owner gone, stopping, a
         * limit): the refs the caller sent are still ours to count, or its
         * exports would stay until its connection closes. */
        if (d.p == (const uint8_t *)p && n) {
            walk w = {&d, NULL, WALK_SKIM};
            (void)walk_fields(&w, m->params, m->n_params);
        }
        if (ember_call_oneway(call))
            return;
        /* The refs new to us live while the call waits at the owner: held
         * like a typed call's (max_deferred_bytes). */
        call->raw_outside = d.outside;
    } else if (refs_copied(call->conn, svc, m, why, sizeof why)) {
        if (!ember_call_oneway(call))
            ember_call_fail(call, "%s", why);
    } else {
        ember_call_forward_with(call, px->fwd, service, method, p, n, relayed, NULL);
    }
}

ember_ref *ember_proxy_on(ember_conn *c, ember_ref *to,
                          const ember_service_desc *svc)
{
    ember_ref *x = ember_proxy_find(c, to, svc->id);
    if (x)
        return ember_ref_retain(x);
    if (!svc->id)
        return NULL;
    ember_ref *px = ember_calloc(sizeof *px);
    if (!px)
        return NULL;
    if (!(px->lex = ember_exports_new()) ||
        ember_exports_add_raw(px->lex, svc->id, 0, forward, px)) {
        ember_exports_free(px->lex);
        ember_free(px, sizeof *px);
        return NULL;
    }
    px->kind = EMBER_REF_PROXY;
    px->rc = 1;
    px->svc = svc;
    px->fwd = ember_ref_retain(to);
    return px;
}

void ember_proxy_free(ember_ref *r)
{
    ember_exports_free(r->lex);
    ember_ref_release(r->fwd);
}
