/*
 * pb-xcode.c — typed values between jelly and ember's own encoding, driven
 * by the run-time type tables idlc generates (ember_type, ember_field_desc).
 *
 * In:  positional jelly arguments -> an ember argument struct (tags from the
 *      parameter table), a jelly answer -> an ember result struct {1: v};
 *      every value is checked against its IDL type (docs/protocol-pb.md,
 *      "Typed mapping"), a mismatch names the argument.
 * Out: an ember struct the generated encoder wrote -> jelly values.
 *
 * The generated decoders then read the ember bytes as for any call, under
 * the connection's limits and decode budget; refs map onto ember's ref
 * wire values ((remote N) = N<<1, (local N) = N<<1|1).
 */
#include <stdio.h>
#include <math.h>
#include <string.h>

#include "ember-internal.h"
#include "pb-internal.h"
#include "pb-xcode-internal.h"
#include "ref-internal.h"

/* ---- jelly -> ember ---- */

static const char *const jelly_kind[] = {
    [EMBER_JL_INT] = "int", [EMBER_JL_FLOAT] = "float",
    [EMBER_JL_BYTES] = "bytes", [EMBER_JL_UNICODE] = "unicode",
    [EMBER_JL_NONE] = "None", [EMBER_JL_BOOL] = "bool",
    [EMBER_JL_LIST] = "list", [EMBER_JL_TUPLE] = "tuple",
    [EMBER_JL_DICT] = "dictionary", [EMBER_JL_REMOTE] = "remote reference",
    [EMBER_JL_LOCAL] = "local reference",
};

static const char *const type_word[] = {
    [EMBER_T_BOOL] = "bool", [EMBER_T_I8] = "i8", [EMBER_T_I16] = "i16",
    [EMBER_T_I32] = "i32", [EMBER_T_I64] = "i64", [EMBER_T_U8] = "u8",
    [EMBER_T_U16] = "u16", [EMBER_T_U32] = "u32", [EMBER_T_U64] = "u64",
    [EMBER_T_F32] = "f32", [EMBER_T_F64] = "f64", [EMBER_T_STRING] = "string",
    [EMBER_T_BYTES] = "bytes", [EMBER_T_LIST] = "list", [EMBER_T_MAP] = "map",
    [EMBER_T_REF] = "ref", [EMBER_T_STRUCT] = "struct", [EMBER_T_ENUM] = "enum",
};

static int in_fail(ember_pbx *x, const char *fmt, const char *a, const char *b)
{
    snprintf(x->why, sizeof x->why, fmt, a, b);
    return -1;
}

/* Puts "<what>: " before the reason already in x->why. */
static int in_prefix(ember_pbx *x, const char *what)
{
    char inner[160];
    memcpy(inner, x->why, sizeof inner - 1);
    inner[sizeof inner - 1] = 0;
    snprintf(x->why, sizeof x->why, "%.90s: %s", what, inner);
    return -1;
}

/* The jelly cursor's own reason, as x's. */
static int cur_fail(ember_pbx *x)
{
    return in_fail(x, "%s%s", x->cur.why, "");
}

static int mismatch(ember_pbx *x, const ember_type *t, const ember_jl_val *v)
{
    return in_fail(x, "expected %s, got %s", type_word[t->kind], jelly_kind[v->kind]);
}

/* An optional field or argument given as (None): read, and left absent.
 * Otherwise the cursor stays where it was. */
static bool skip_none(ember_pbx *x, bool optional)
{
    const uint8_t *at = x->cur.p;
    ember_jl_val v;
    if (optional && ember_jl_read(&x->cur, &v) == 0 && v.kind == EMBER_JL_NONE)
        return true;
    x->cur.p = at;
    return false;
}

/* The range of an integer kind: [-(lo), hi] with lo a magnitude. */
static void int_range(ember_type_kind k, uint64_t *lo, uint64_t *hi)
{
    static const uint64_t top[] = {
        [EMBER_T_I8] = 127, [EMBER_T_I16] = 32767, [EMBER_T_I32] = 2147483647,
        [EMBER_T_I64] = INT64_MAX, [EMBER_T_ENUM] = 2147483647,
        [EMBER_T_U8] = 255, [EMBER_T_U16] = 65535, [EMBER_T_U32] = UINT32_MAX,
        [EMBER_T_U64] = UINT64_MAX,
    };
    *hi = top[k];
    *lo = k >= EMBER_T_U8 && k <= EMBER_T_U64 ? 0 : *hi + 1;
}

/* Reads one jelly value and writes it as type t: keyed with tag, or bare
 * (a list element, a map key or value) when tag is 0. */
static int put_value(ember_pbx *x, const ember_type *t, ember_enc *e, uint32_t tag,
                     uint32_t depth);

static void key(ember_enc *e, uint32_t tag, unsigned wt)
{
    if (tag)
        ember_enc_key(e, tag, wt);
}

static int put_text(ember_pbx *x, const ember_type *t, const ember_jl_val *v,
                    ember_enc *e, uint32_t tag)
{
    if (v->kind != EMBER_JL_BYTES && v->kind != EMBER_JL_UNICODE)
        return mismatch(x, t, v);
    if (t->kind == EMBER_T_STRING &&
        (memchr(v->s, 0, v->len) || !ember_jl_utf8_ok(v->s, v->len)))
        return in_fail(x, "expected %s, got %s that is not UTF-8 without NUL",
                       "string", jelly_kind[v->kind]);
    key(e, tag, EMBER_WT_LEN);
    ember_enc_raw_bytes(e, v->s, v->len);
    return 0;
}

static int put_int(ember_pbx *x, const ember_type *t, const ember_jl_val *v,
                   ember_enc *e, uint32_t tag)
{
    uint64_t lo, hi;
    if (v->kind != EMBER_JL_INT)
        return mismatch(x, t, v);
    int_range(t->kind, &lo, &hi);
    if (v->big || (v->neg ? v->mag > lo : v->mag > hi))
        return in_fail(x, "%s out of the range of %s", "int", type_word[t->kind]);
    key(e, tag, EMBER_WT_VARINT);
    if (lo == 0)
        ember_enc_raw_varint(e, v->mag);
    else
        ember_enc_raw_sint(e, v->neg ? (int64_t)(0 - v->mag) : (int64_t)v->mag);
    return 0;
}

static int put_float(ember_pbx *x, const ember_type *t, const ember_jl_val *v,
                     ember_enc *e, uint32_t tag)
{
    double f;
    if (v->kind == EMBER_JL_FLOAT)
        f = v->f;
    else if (v->kind == EMBER_JL_INT && !v->big && v->mag <= (1ull << 53))
        f = v->neg ? -(double)v->mag : (double)v->mag; /* Python passes 1 for 1.0 */
    else
        return mismatch(x, t, v);
    if (t->kind == EMBER_T_F32) {
        /* Python floats are doubles: one too large for f32 is refused, as
         * an int out of range is, not turned into inf. */
        if (isfinite(f) && isinf((float)f))
            return in_fail(x, "%s out of the range of %s", "float", "f32");
        key(e, tag, EMBER_WT_I32);
        ember_enc_raw_f32(e, (float)f);
    } else {
        key(e, tag, EMBER_WT_I64);
        ember_enc_raw_f64(e, f);
    }
    return 0;
}

static int put_ref(ember_pbx *x, const ember_type *t, const ember_jl_val *v,
                   ember_enc *e, uint32_t tag)
{
    uint64_t w = 0;
    if (v->kind == EMBER_JL_REMOTE && v->mag > 0 && v->mag < (1ull << 62))
        w = v->mag << 1;
    else if (v->kind == EMBER_JL_LOCAL && v->mag < (1ull << 62))
        /* One of ours coming home; one we no longer export (the peer's
         * decref overtook its answer) or our exports is NULL, as in
         * Twisted. */
        w = x->c && ember_ref_find_xobj(x->c, v->mag) ? v->mag << 1 | 1 : 0;
    else if (v->kind != EMBER_JL_NONE)
        return mismatch(x, t, v);
    key(e, tag, EMBER_WT_VARINT);
    ember_enc_raw_varint(e, w);
    return 0;
}

static int put_seq(ember_pbx *x, const ember_type *t, const ember_jl_val *v,
                   ember_enc *e, uint32_t tag, uint32_t depth)
{
    bool map = t->kind == EMBER_T_MAP;
    if (map ? v->kind != EMBER_JL_DICT
            : v->kind != EMBER_JL_LIST && v->kind != EMBER_JL_TUPLE)
        return mismatch(x, t, v);
    key(e, tag, EMBER_WT_LEN);
    size_t mark = ember_enc_len_begin(e);
    ember_enc_raw_varint(e, v->count);
    for (uint32_t i = 0; i < v->count; i++) {
        if (map && ember_jl_pair(&x->cur))
            return cur_fail(x);
        if (map && put_value(x, t->key, e, 0, depth + 1))
            return -1;
        if (put_value(x, t->elem, e, 0, depth + 1))
            return -1;
    }
    ember_enc_len_end(e, mark);
    return 0;
}

static const ember_field_desc *field_named(const ember_type *t, const ember_jl_val *k)
{
    if (k->kind != EMBER_JL_BYTES && k->kind != EMBER_JL_UNICODE)
        return NULL;
    for (uint32_t i = 0; i < t->n_fields; i++)
        if (strlen(t->fields[i].name) == k->len &&
            memcmp(t->fields[i].name, k->s, k->len) == 0)
            return &t->fields[i];
    return NULL;
}

/* A struct from a dictionary keyed by field name: unknown keys skipped,
 * missing fields left out (zero / absent), (None) for an optional one. */
static int put_struct(ember_pbx *x, const ember_type *t, const ember_jl_val *v,
                      ember_enc *e, uint32_t tag, uint32_t depth)
{
    if (v->kind != EMBER_JL_DICT)
        return mismatch(x, t, v);
    key(e, tag, EMBER_WT_LEN);
    size_t mark = ember_enc_len_begin(e);
    for (uint32_t i = 0; i < v->count; i++) {
        ember_jl_val k;
        if (ember_jl_pair(&x->cur) || ember_jl_read(&x->cur, &k))
            return cur_fail(x);
        const ember_field_desc *f = field_named(t, &k);
        if (!f) {
            if (ember_jl_skip_rest(&x->cur, &k) || ember_jl_skip(&x->cur, 1))
                return cur_fail(x);
            continue;
        }
        if (skip_none(x, f->optional))
            continue;
        if (put_value(x, f->type, e, f->tag, depth + 1)) {
            char what[64];
            snprintf(what, sizeof what, "field '%.40s'", f->name);
            return in_prefix(x, what);
        }
    }
    ember_enc_len_end(e, mark);
    return 0;
}

static int put_value(ember_pbx *x, const ember_type *t, ember_enc *e, uint32_t tag,
                     uint32_t depth)
{
    ember_jl_val v;
    if (depth > EMBER_BN_DEPTH_MAX)
        return in_fail(x, "%s%s", "nested too deep", "");
    if (ember_jl_read(&x->cur, &v))
        return cur_fail(x);
    switch (t->kind) {
    case EMBER_T_BOOL:
        if (v.kind != EMBER_JL_BOOL)
            return mismatch(x, t, &v);
        key(e, tag, EMBER_WT_VARINT);
        ember_enc_raw_varint(e, v.b);
        return 0;
    case EMBER_T_F32:
    case EMBER_T_F64:
        return put_float(x, t, &v, e, tag);
    case EMBER_T_STRING:
    case EMBER_T_BYTES:
        return put_text(x, t, &v, e, tag);
    case EMBER_T_LIST:
    case EMBER_T_MAP:
        return put_seq(x, t, &v, e, tag, depth);
    case EMBER_T_STRUCT:
        return put_struct(x, t, &v, e, tag, depth);
    case EMBER_T_REF:
        return put_ref(x, t, &v, e, tag);
    default:
        return put_int(x, t, &v, e, tag);
    }
}

int ember_pbx_args_in(ember_pbx *x, uint32_t nvals, const ember_method_desc *m,
                      ember_enc *e)
{
    if (nvals > m->n_params) {
        snprintf(x->why, sizeof x->why, "%s takes at most %u argument%s (%u given)",
                 m->name, m->n_params, m->n_params == 1 ? "" : "s", nvals);
        return -1;
    }
    for (uint32_t i = 0; i < nvals; i++) {
        const ember_field_desc *p = &m->params[i];
        if (skip_none(x, p->optional))
            continue;
        if (put_value(x, p->type, e, p->tag, 0)) {
            char what[96];
            snprintf(what, sizeof what, "%.32s: argument %u '%.32s'", m->name,
                     (unsigned)(i + 1), p->name);
            return in_prefix(x, what);
        }
    }
    return e->failed ? -1 : 0;
}

int ember_pbx_result_in(ember_pbx *x, const ember_type *t, ember_enc *e)
{
    if (!t)
        return ember_jl_skip(&x->cur, 1) ? cur_fail(x) : 0;
    return put_value(x, t, e, 1, 0) || e->failed ? -1 : 0;
}

/* ---- a Python failure as a declared error ---- */

/* The error of m's raises clause a Python exception type names: its
 * qualified IDL name, or its class name alone when only one of m's errors
 * has that name (Python's module is not the IDL's: "__main__.Refused"). */
static const ember_raise_desc *raise_named(const ember_method_desc *m,
                                           const char *type)
{
    const char *cls = strrchr(type, '.');
    cls = cls ? cls + 1 : type;
    const ember_raise_desc *hit = NULL;
    unsigned hits = 0;
    for (uint32_t i = 0; i < m->n_raises; i++) {
        const char *name = m->raises[i].type ? m->raises[i].type->name : NULL;
        if (!name)
            continue;
        if (strcmp(name, type) == 0)
            return &m->raises[i];
        const char *short_name = strrchr(name, '.');
        if (strcmp(short_name ? short_name + 1 : name, cls) == 0)
            hit = &m->raises[i], hits++;
    }
    return hits == 1 ? hit : NULL;
}

/* value's literals as jelly in jl (the tuple of the exception's arguments,
 * or its one argument); *n how many. -1 when they do not read. */
static int value_in(const ember_type *t, const char *value, bool as_tuple,
                    ember_enc *jl, uint32_t *n)
{
    ember_jl_w w = {jl, false};
    if (as_tuple)
        return ember_pylit_tuple(value, &w, n);
    *n = value[0] && t->n_fields ? 1 : 0;
    if (!*n)
        return value[0] ? -1 : 0;
    /* One argument: str() of a string is the string itself, of bytes their
     * repr (other text for a bytes field is taken as it is). */
    ember_type_kind k = t->fields[0].type->kind;
    if (k == EMBER_T_STRING) {
        ember_jl_put_unicode(&w, value, strlen(value));
    } else if (k == EMBER_T_BYTES) {
        bool repr = value[0] == 'b' && (value[1] == '\'' || value[1] == '"');
        if (repr && ember_pylit_value(value, &w) == 0)
            return 0;
        jl->p = jl->base; /* not a literal after all: the text as it is */
        jl->failed = 0;
        ember_bn_put_bytes(jl, value, strlen(value), false);
    } else {
        return ember_pylit_value(value, &w);
    }
    return 0;
}

/* An error struct's fields as a method's parameters: on PB an exception's
 * arguments are its fields in declaration order. */
static ember_method_desc fields_as_params(const ember_type *t)
{
    ember_method_desc m = {0};
    m.name = t->name;
    m.params = t->fields;
    m.n_params = t->n_fields;
    return m;
}

const ember_raise_desc *ember_pbx_raised_in(ember_pbx *x, const ember_method_desc *m,
                                            const char *type, const char *value,
                                            uint8_t *out, size_t cap, size_t *len)
{
    const ember_raise_desc *r = raise_named(m, type);
    if (!r || r->type->kind != EMBER_T_STRUCT)
        return NULL;
    ember_method_desc fields = fields_as_params(r->type);
    uint8_t jl_buf[2 * EMBER_JL_FAIL_TEXT];
    for (int as_tuple = value[0] == '('; as_tuple >= 0; as_tuple--) {
        ember_enc jl, e;
        uint32_t n;
        ember_enc_init_fixed(&jl, jl_buf, sizeof jl_buf);
        ember_enc_init_fixed(&e, out, cap);
        if (value_in(r->type, value, as_tuple, &jl, &n) || jl.failed)
            continue;
        ember_jl_init(&x->cur, jl_buf, ember_enc_len(&jl), false);
        if (ember_pbx_args_in(x, n, &fields, &e) == 0) {
            *len = ember_enc_len(&e);
            return r;
        }
    }
    return NULL;
}

/* ---- ember -> jelly ---- */

static int get_value(ember_pbx *x, const ember_type *t, ember_dec *d, ember_jl_w *w,
                     uint32_t depth);

/* A LEN region of d as its own decoder. */
static int sub_region(ember_dec *d, ember_dec *sub)
{
    uint64_t n;
    if (ember_dec_raw_varint(d, &n) || n > (uint64_t)(d->end - d->p))
        return -1;
    ember_dec_init(sub, d->p, (size_t)n, NULL);
    d->p += n;
    return 0;
}

static unsigned wire_type(const ember_type *t)
{
    switch (t->kind) {
    case EMBER_T_F32:
        return EMBER_WT_I32;
    case EMBER_T_F64:
        return EMBER_WT_I64;
    case EMBER_T_STRING: case EMBER_T_BYTES: case EMBER_T_LIST:
    case EMBER_T_MAP: case EMBER_T_STRUCT:
        return EMBER_WT_LEN;
    default:
        return EMBER_WT_VARINT;
    }
}

/* The field of t that a wire field (tag, wt) is: its tag, written as its
 * type is (anything else is skipped, as an unknown field). */
static const ember_field_desc *field_tagged(const ember_type *t, uint32_t tag, unsigned wt)
{
    for (uint32_t i = 0; i < t->n_fields; i++)
        if (t->fields[i].tag == tag && wire_type(t->fields[i].type) == wt)
            return &t->fields[i];
    return NULL;
}

static int get_struct(ember_pbx *x, const ember_type *t, ember_dec *d, ember_jl_w *w,
                      uint32_t depth)
{
    ember_dec s, s2;
    uint32_t tag, n = 0;
    unsigned wt;
    int r;
    if (sub_region(d, &s))
        return -1;
    s2 = s;
    while ((r = ember_dec_field(&s, &tag, &wt)) == 1) { /* present known fields */
        n += field_tagged(t, tag, wt) != NULL;
        if (ember_dec_skip(&s, wt))
            return -1;
    }
    if (r < 0)
        return -1;
    ember_jl_put_head(w, EMBER_BN_W_DICTIONARY, n);
    while (ember_dec_field(&s2, &tag, &wt) == 1) {
        const ember_field_desc *f = field_tagged(t, tag, wt);
        if (!f) {
            if (ember_dec_skip(&s2, wt))
                return -1;
            continue;
        }
        ember_bn_put_list(w->e, 2);
        ember_jl_put_unicode(w, f->name, strlen(f->name));
        if (get_value(x, f->type, &s2, w, depth + 1))
            return -1;
    }
    return 0;
}

static int get_seq(ember_pbx *x, const ember_type *t, ember_dec *d, ember_jl_w *w,
                   uint32_t depth)
{
    ember_dec s;
    uint64_t n;
    bool map = t->kind == EMBER_T_MAP;
    if (sub_region(d, &s) || ember_dec_raw_varint(&s, &n) ||
        n > (uint64_t)(s.end - s.p))
        return -1;
    ember_jl_put_head(w, map ? EMBER_BN_W_DICTIONARY : EMBER_BN_W_LIST, (size_t)n);
    for (uint64_t i = 0; i < n; i++) {
        if (map) {
            ember_bn_put_list(w->e, 2);
            if (get_value(x, t->key, &s, w, depth + 1))
                return -1;
        }
        if (get_value(x, t->elem, &s, w, depth + 1))
            return -1;
    }
    return 0;
}

static int get_value(ember_pbx *x, const ember_type *t, ember_dec *d, ember_jl_w *w,
                     uint32_t depth)
{
    uint64_t v;
    uint32_t v32;
    float f;
    double g;
    ember_dec s;
    if (depth > EMBER_BN_DEPTH_MAX)
        return -1;
    switch (t->kind) {
    case EMBER_T_BOOL:
        if (ember_dec_raw_varint(d, &v))
            return -1;
        ember_jl_put_bool(w, v != 0);
        return 0;
    case EMBER_T_U8: case EMBER_T_U16: case EMBER_T_U32: case EMBER_T_U64:
        if (ember_dec_raw_varint(d, &v))
            return -1;
        ember_bn_put_int(w->e, false, v);
        return 0;
    case EMBER_T_F32:
        if (ember_dec_raw_fixed32(d, &v32))
            return -1;
        memcpy(&f, &v32, sizeof f);
        ember_bn_put_float(w->e, f);
        return 0;
    case EMBER_T_F64:
        if (ember_dec_raw_fixed64(d, &v))
            return -1;
        memcpy(&g, &v, sizeof g);
        ember_bn_put_float(w->e, g);
        return 0;
    case EMBER_T_STRING:
    case EMBER_T_BYTES: {
        if (sub_region(d, &s))
            return -1;
        size_t len = (size_t)(s.end - s.p);
        if (x->clip && len > x->clip)
            len = t->kind == EMBER_T_STRING ? ember_utf8_cut(s.p, len, x->clip) : x->clip;
        if (t->kind == EMBER_T_STRING)
            ember_jl_put_unicode(w, s.p, len);
        else
            ember_bn_put_bytes(w->e, s.p, len, w->vocab);
        return 0;
    }
    case EMBER_T_LIST:
    case EMBER_T_MAP:
        return get_seq(x, t, d, w, depth);
    case EMBER_T_STRUCT:
        return get_struct(x, t, d, w, depth);
    case EMBER_T_REF:
        if (ember_dec_raw_varint(d, &v))
            return -1;
        if (v == 0)
            ember_jl_put_none(w);
        else
            ember_jl_put_ref(w, v & 1, v >> 1);
        return 0;
    default: /* signed ints, enums: zigzag */
        if (ember_dec_raw_varint(d, &v))
            return -1;
        ember_bn_put_i64(w->e, ember_unzigzag64(v));
        return 0;
    }
}

/* What an absent value reads as: ember's zero for t. */
static void put_zero(const ember_type *t, ember_jl_w *w)
{
    switch (t->kind) {
    case EMBER_T_BOOL:
        ember_jl_put_bool(w, false);
        break;
    case EMBER_T_F32:
    case EMBER_T_F64:
        ember_bn_put_float(w->e, 0.0);
        break;
    case EMBER_T_STRING:
        ember_jl_put_unicode(w, "", 0);
        break;
    case EMBER_T_BYTES:
        ember_bn_put_bytes(w->e, "", 0, w->vocab);
        break;
    case EMBER_T_LIST:
        ember_jl_put_head(w, EMBER_BN_W_LIST, 0);
        break;
    case EMBER_T_MAP:
    case EMBER_T_STRUCT:
        ember_jl_put_head(w, EMBER_BN_W_DICTIONARY, 0);
        break;
    case EMBER_T_REF:
        ember_jl_put_none(w);
        break;
    default:
        ember_bn_put_int(w->e, false, 0);
        break;
    }
}

/* The value of field `tag` of the struct p[0..n), as t: (None) when
 * absent and optional, the zero value when absent and required. */
static int get_field(ember_pbx *x, const uint8_t *p, size_t n, uint32_t tag,
                     const ember_type *t, bool optional, ember_jl_w *w)
{
    ember_dec d;
    uint32_t ft;
    unsigned wt;
    ember_dec_init(&d, p, n, NULL);
    while (ember_dec_field(&d, &ft, &wt) == 1) {
        if (ft == tag && wt == wire_type(t))
            return get_value(x, t, &d, w, 0);
        if (ember_dec_skip(&d, wt))
            return -1;
    }
    if (optional)
        ember_jl_put_none(w);
    else
        put_zero(t, w);
    return 0;
}

int ember_pbx_args_out(ember_pbx *x, const uint8_t *p, size_t n,
                       const ember_method_desc *m, ember_jl_w *w)
{
    for (uint32_t i = 0; i < m->n_params; i++)
        if (get_field(x, p, n, m->params[i].tag, m->params[i].type,
                      m->params[i].optional, w))
            return -1;
    return w->e->failed ? -1 : 0;
}

int ember_pbx_result_out(ember_pbx *x, const uint8_t *p, size_t n,
                         const ember_type *t, ember_jl_w *w)
{
    if (!t) {
        ember_jl_put_none(w);
        return w->e->failed ? -1 : 0;
    }
    return get_field(x, p, n, 1, t, false, w) || w->e->failed ? -1 : 0;
}

/* ---- a struct as text (a raised error's value) ---- */

void ember_pbx_text(const uint8_t *p, size_t n, const ember_type *t, char *out,
                    size_t cap)
{
    ember_method_desc fields = fields_as_params(t);
    uint8_t jl_buf[8 * EMBER_JL_FAIL_TEXT];
    ember_enc e;
    ember_jl_w w = {&e, false};
    /* A string longer than the text is cut to it (the text is cut then);
     * values still too large for jl_buf leave it cut: the text stops there. */
    ember_pbx x = {NULL, {0}, {0}, cap};
    ember_enc_init_fixed(&e, jl_buf, sizeof jl_buf);
    ember_pbx_args_out(&x, p, n, &fields, &w);
    ember_pylit_str(jl_buf, ember_enc_len(&e), fields.n_params, false, out, cap);
}
