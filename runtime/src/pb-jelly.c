/*
 * pb-jelly.c — jelly values over banana, restricted to the types a typed
 * peer needs: ints, floats, bytes, (unicode), (None), (boolean), (list),
 * (tuple), (dictionary), (remote) and (local); CopyableFailure only where an
 * `error` carries one. Everything else jelly can say (set, reference, module,
 * class, instance, copy, cache, dotted class names, ...) is refused by name.
 */
#include <stdio.h>
#include <string.h>

#include "ember-internal.h"
#include "pb-internal.h"

#define FAILURE_CLASS "twisted.spread.pb.CopyableFailure"

void ember_jl_init(ember_jl_cur *c, const void *p, size_t n, bool vocab)
{
    c->p = p;
    c->end = c->p + n;
    c->vocab = vocab;
    c->no_refs = false;
    c->why = NULL;
    c->whybuf[0] = 0;
}

static int jl_fail(ember_jl_cur *c, const char *why)
{
    c->why = why;
    return -1;
}

/* The next token, its body checked to be within the expression. */
static int next_tok(ember_jl_cur *c, ember_bn_tok *t, const uint8_t **body)
{
    const char *why = NULL;
    size_t n = (size_t)(c->end - c->p);
    int r = ember_bn_head(c->p, n, c->vocab, t, &why);
    if (r == 0 || (r > 0 && t->size > n))
        return jl_fail(c, "truncated banana expression");
    if (r < 0)
        return jl_fail(c, why);
    *body = c->p + t->head;
    c->p += t->size;
    return 0;
}

/* The next token as a byte string (STRING or VOCAB): -1 if it is not one. */
static int next_str(ember_jl_cur *c, const uint8_t **s, size_t *len)
{
    ember_bn_tok t;
    const uint8_t *body;
    if (next_tok(c, &t, &body))
        return -1;
    if (t.type == EMBER_BN_STRING) {
        *s = body;
        *len = (size_t)t.num;
        return 0;
    }
    if (t.type == EMBER_BN_VOCAB) {
        const char *w = ember_bn_vocab_word(t.num);
        *s = (const uint8_t *)w;
        *len = strlen(w);
        return 0;
    }
    return jl_fail(c, "expected a byte string");
}

static bool is(const uint8_t *s, size_t n, const char *word)
{
    return strlen(word) == n && memcmp(s, word, n) == 0;
}

bool ember_jl_utf8_ok(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t len = ember_utf8_seq(s + i, n - i);
        if (!len)
            return false;
        i += len;
    }
    return true;
}

static int refuse(ember_jl_cur *c, const uint8_t *name, size_t n)
{
    int shown = n > 40 ? 40 : (int)n;
    for (int i = 0; i < shown; i++)
        if (name[i] < 0x20 || name[i] >= 0x7f)
            shown = i;
    snprintf(c->whybuf, sizeof c->whybuf, "jelly type '%.*s' is not accepted",
             shown, (const char *)name);
    return jl_fail(c, c->whybuf);
}

/* How many banana elements (the name included) a jelly type with a fixed
 * form takes; 0 for the sequences (any) and for a refused type. */
static uint64_t fixed_arity(const uint8_t *name, size_t n)
{
    if (is(name, n, "None"))
        return 1;
    if (is(name, n, "unicode") || is(name, n, "boolean") || is(name, n, "remote") ||
        is(name, n, "local"))
        return 2;
    return 0;
}

/* The body of a jelly compound: LIST of `count` whose head is name[0..n). */
static int read_compound(ember_jl_cur *c, ember_jl_val *v, uint64_t count,
                         const uint8_t *name, size_t n)
{
    const uint8_t *s;
    size_t len;
    if (is(name, n, "list") || is(name, n, "tuple") || is(name, n, "dictionary")) {
        v->kind = name[0] == 'l' ? EMBER_JL_LIST
                  : name[0] == 't' ? EMBER_JL_TUPLE : EMBER_JL_DICT;
        v->count = (uint32_t)(count - 1);
        return 0;
    }
    uint64_t arity = fixed_arity(name, n);
    if (arity == 0)
        return refuse(c, name, n);
    if (count != arity)
        return jl_fail(c, "jelly value with the wrong number of elements");
    if (is(name, n, "None")) {
        v->kind = EMBER_JL_NONE;
    } else if (is(name, n, "unicode")) {
        if (next_str(c, &s, &len))
            return jl_fail(c, "jelly unicode without its UTF-8 bytes");
        if (!ember_jl_utf8_ok(s, len))
            return jl_fail(c, "jelly unicode that is not valid UTF-8");
        v->kind = EMBER_JL_UNICODE;
        v->s = s;
        v->len = len;
    } else if (is(name, n, "boolean")) {
        if (next_str(c, &s, &len) || !(is(s, len, "true") || is(s, len, "false")))
            return jl_fail(c, "jelly boolean that is not \"true\" or \"false\"");
        v->kind = EMBER_JL_BOOL;
        v->b = len == 4;
    } else { /* remote, local */
        ember_bn_tok t;
        const uint8_t *body;
        if (next_tok(c, &t, &body) ||
            (t.type != EMBER_BN_INT && t.type != EMBER_BN_LONGINT) || t.big)
            return jl_fail(c, "jelly reference without an integer luid");
        v->kind = name[0] == 'r' ? EMBER_JL_REMOTE : EMBER_JL_LOCAL;
        v->mag = t.num;
    }
    return 0;
}

int ember_jl_read(ember_jl_cur *c, ember_jl_val *v)
{
    ember_bn_tok t;
    const uint8_t *body;
    memset(v, 0, sizeof *v);
    if (next_tok(c, &t, &body))
        return -1;
    switch (t.type) {
    case EMBER_BN_INT:
    case EMBER_BN_LONGINT:
    case EMBER_BN_NEG:
    case EMBER_BN_LONGNEG:
        v->kind = EMBER_JL_INT;
        v->neg = (t.type == EMBER_BN_NEG || t.type == EMBER_BN_LONGNEG) &&
                 t.num != 0;
        v->mag = t.num;
        v->big = t.big;
        return 0;
    case EMBER_BN_FLOAT: {
        uint64_t u = 0;
        for (int k = 0; k < 8; k++)
            u = u << 8 | body[k];
        v->kind = EMBER_JL_FLOAT;
        memcpy(&v->f, &u, sizeof v->f);
        return 0;
    }
    case EMBER_BN_STRING:
        v->kind = EMBER_JL_BYTES;
        v->s = body;
        v->len = (size_t)t.num;
        return 0;
    case EMBER_BN_VOCAB:
        v->kind = EMBER_JL_BYTES;
        v->s = (const uint8_t *)ember_bn_vocab_word(t.num);
        v->len = strlen((const char *)v->s);
        return 0;
    default: /* EMBER_BN_LIST */
        break;
    }
    if (t.num == 0)
        return jl_fail(c, "empty jelly list");
    const uint8_t *name;
    size_t n;
    if (next_str(c, &name, &n))
        return jl_fail(c, "jelly list without a type name");
    return read_compound(c, v, t.num, name, n);
}

int ember_jl_pair(ember_jl_cur *c)
{
    ember_bn_tok t;
    const uint8_t *body;
    if (next_tok(c, &t, &body))
        return -1;
    if (t.type != EMBER_BN_LIST || t.num != 2)
        return jl_fail(c, "jelly dictionary item that is not a pair");
    return 0;
}

int ember_jl_skip(ember_jl_cur *c, size_t n)
{
    while (n) {
        ember_bn_tok t;
        const uint8_t *body;
        if (next_tok(c, &t, &body))
            return -1;
        n--;
        if (t.type == EMBER_BN_LIST)
            n += (size_t)t.num; /* at most 655 360 per list */
    }
    return 0;
}

int ember_jl_skip_rest(ember_jl_cur *c, const ember_jl_val *v)
{
    switch (v->kind) {
    case EMBER_JL_LIST:
    case EMBER_JL_TUPLE:
    case EMBER_JL_DICT:
        return ember_jl_skip(c, v->count);
    default:
        return 0;
    }
}

/*
 * The (remote)s of one value, by the shape jelly gives every compound, a
 * name and then elements: also inside the types ember refuses (a set, a
 * shared object's (reference), a Copyable's class name and state...), as
 * Twisted counted each remote it put there. A dictionary's items are
 * (key value) pairs, walked as such, so a pair that looks like a remote
 * ("remote" -> 5) is not taken for one: a decref of a luid Twisted did
 * not give makes it drop the connection.
 */
static int remotes_in(ember_jl_cur *c, int depth, void (*fn)(uint64_t, void *),
                      void *ud)
{
    ember_bn_tok t;
    const uint8_t *body, *name;
    size_t n;
    if (next_tok(c, &t, &body))
        return -1;
    if (t.type != EMBER_BN_LIST)
        return 0;
    if (depth >= EMBER_BN_DEPTH_MAX || t.num == 0 || next_str(c, &name, &n))
        return -1;
    uint64_t left = t.num - 1;
    if (is(name, n, "remote")) {
        if (left != 1 || next_tok(c, &t, &body) ||
            (t.type != EMBER_BN_INT && t.type != EMBER_BN_LONGINT) || t.big)
            return -1;
        fn(t.num, ud);
        return 0;
    }
    bool dict = is(name, n, "dictionary");
    for (; left; left--) {
        if (dict && (ember_jl_pair(c) || remotes_in(c, depth + 2, fn, ud)))
            return -1;
        if (remotes_in(c, depth + (dict ? 2 : 1), fn, ud))
            return -1;
    }
    return 0;
}

void ember_jl_remotes(ember_jl_cur *c, size_t n, void (*fn)(uint64_t luid, void *ud),
                      void *ud)
{
    for (size_t i = 0; i < n; i++)
        if (remotes_in(c, 0, fn, ud))
            return;
}

/* One whitelisted value, nested at most EMBER_BN_DEPTH_MAX deep. A
 * dictionary's keys and values sit two lists down, in their (key value)
 * pair; other elements one. */
static int check_value(ember_jl_cur *c, int depth)
{
    ember_jl_val v;
    if (depth > EMBER_BN_DEPTH_MAX)
        return jl_fail(c, "jelly nested too deep");
    if (ember_jl_read(c, &v))
        return -1;
    if (c->no_refs && (v.kind == EMBER_JL_REMOTE || v.kind == EMBER_JL_LOCAL))
        return jl_fail(c, "untyped jelly holds a (remote) or (local): ember "
                       "passes objects to PB peers in typed calls only");
    bool dict = v.kind == EMBER_JL_DICT;
    for (uint32_t i = 0; i < v.count; i++) {
        if (dict && (ember_jl_pair(c) || check_value(c, depth + 2)))
            return -1;
        if (check_value(c, depth + (dict ? 2 : 1)))
            return -1;
    }
    return 0;
}

/* The reason is copied out: it may be in the cursor's whybuf, which is
 * gone when ember_jl_check returns. */
int ember_jl_check(const void *p, size_t n, bool vocab, unsigned flags, char *why,
                   size_t whylen)
{
    ember_jl_cur c;
    ember_jl_val v;
    ember_jl_init(&c, p, n, vocab);
    c.no_refs = flags & EMBER_JL_NO_REFS;
    const uint8_t *start = c.p;
    if ((flags & EMBER_JL_TUPLE_ONLY) && (ember_jl_read(&c, &v) ||
                  (v.kind != EMBER_JL_TUPLE && v.kind != EMBER_JL_LIST))) {
        snprintf(why, whylen, "%s", c.why ? c.why : "not a jellied tuple");
        return -1;
    }
    c.p = start;
    if (check_value(&c, 0) || c.p != c.end) {
        snprintf(why, whylen, "%s", c.why ? c.why : "more than one jelly value");
        return -1;
    }
    return 0;
}

/* ---- writing ---- */

void ember_jl_put_head(ember_jl_w *w, unsigned word, size_t count)
{
    ember_bn_put_list(w->e, count + 1);
    ember_bn_put_word(w->e, word, w->vocab);
}

void ember_jl_put_none(ember_jl_w *w)
{
    ember_jl_put_head(w, EMBER_BN_W_NONE, 0);
}

void ember_jl_put_bool(ember_jl_w *w, bool v)
{
    ember_bn_put_list(w->e, 2);
    ember_bn_put_bytes(w->e, "boolean", 7, false);
    ember_bn_put_bytes(w->e, v ? "true" : "false", v ? 4 : 5, false);
}

void ember_jl_put_unicode(ember_jl_w *w, const void *s, size_t n)
{
    ember_bn_put_list(w->e, 2);
    ember_bn_put_bytes(w->e, "unicode", 7, false);
    ember_bn_put_bytes(w->e, s, n, w->vocab);
}

void ember_jl_put_ref(ember_jl_w *w, bool local, uint64_t luid)
{
    ember_jl_put_head(w, local ? EMBER_BN_W_LOCAL : EMBER_BN_W_REMOTE, 1);
    ember_bn_put_int(w->e, false, luid);
}

static void put_key(ember_jl_w *w, const char *key)
{
    ember_bn_put_list(w->e, 2);
    ember_jl_put_unicode(w, key, strlen(key));
}

void ember_jl_put_failure(ember_jl_w *w, const char *type, const char *value,
                          const char *const *parents, size_t nparents)
{
    static const char fixed_tb[] = "Traceback unavailable\n";
    ember_enc *e = w->e;
    ember_bn_put_list(e, 2);
    ember_bn_put_bytes(e, FAILURE_CLASS, sizeof FAILURE_CLASS - 1, false);
    ember_jl_put_head(w, EMBER_BN_W_DICTIONARY, 10);
    put_key(w, "count");
    ember_bn_put_int(e, false, 1);
    put_key(w, "type");
    ember_bn_put_bytes(e, type, strlen(type), w->vocab);
    put_key(w, "value");
    ember_jl_put_unicode(w, value, strlen(value));
    put_key(w, "captureVars");
    ember_jl_put_bool(w, false);
    put_key(w, "frames");
    ember_jl_put_head(w, EMBER_BN_W_LIST, 0);
    put_key(w, "stack");
    ember_jl_put_head(w, EMBER_BN_W_LIST, 0);
    put_key(w, "tb");
    ember_jl_put_none(w);
    put_key(w, "parents");
    ember_jl_put_head(w, EMBER_BN_W_LIST, nparents);
    for (size_t i = 0; i < nparents; i++)
        ember_jl_put_unicode(w, parents[i], strlen(parents[i]));
    put_key(w, "unsafeTracebacks");
    ember_jl_put_bool(w, false);
    put_key(w, "traceback");
    ember_jl_put_unicode(w, fixed_tb, sizeof fixed_tb - 1);
}

/* Copies a failure text (cut to fit at a character boundary), NUL and C0 controls but newlines
 * shown as '?'. It becomes o->message, which may hold newlines, DEL and C1
 * like any peer's text (docs/runtime.md, "Logging"): whoever prints it
 * escapes it (ember_escape). */
static bool copy_text(char *dst, const uint8_t *s, size_t n)
{
    bool cut = n > EMBER_JL_FAIL_TEXT - 1;
    n = ember_utf8_cut(s, n, EMBER_JL_FAIL_TEXT - 1);
    for (size_t i = 0; i < n; i++)
        dst[i] = s[i] < 0x20 && s[i] != '\n' ? '?' : (char)s[i];
    dst[n] = 0;
    return cut;
}

static bool is_text(const ember_jl_val *v)
{
    return v->kind == EMBER_JL_BYTES || v->kind == EMBER_JL_UNICODE;
}

/* The dictionary of a CopyableFailure: keeps `type` and `value`. */
static int read_failure_state(ember_jl_cur *c, ember_jl_failure *f)
{
    ember_jl_val d, k, v;
    if (ember_jl_read(c, &d))
        return -1;
    if (d.kind != EMBER_JL_DICT)
        return ember_jl_skip_rest(c, &d);
    for (uint32_t i = 0; i < d.count; i++) {
        if (ember_jl_pair(c))
            return -1;
        const uint8_t *kp = c->p;
        if (ember_jl_read(c, &k) || !is_text(&k)) {
            c->p = kp; /* a key we cannot read: skip the pair */
            if (ember_jl_skip(c, 2))
                return -1;
            continue;
        }
        bool want = is(k.s, k.len, "type") || is(k.s, k.len, "value");
        const uint8_t *vp = c->p;
        if (want && ember_jl_read(c, &v) == 0 && is_text(&v)) {
            f->cut |= copy_text(k.len == 4 ? f->type : f->value, v.s, v.len);
            continue;
        }
        c->p = vp;
        if (ember_jl_skip(c, 1))
            return -1;
    }
    return 0;
}

int ember_jl_read_failure(ember_jl_cur *c, ember_jl_failure *f)
{
    f->type[0] = 0;
    f->cut = false;
    snprintf(f->value, sizeof f->value, "remote error");
    const uint8_t *start = c->p;
    ember_bn_tok t;
    const uint8_t *body, *name;
    size_t n;
    if (next_tok(c, &t, &body) == 0 && t.type == EMBER_BN_LIST &&
        t.num == 2 && next_str(c, &name, &n) == 0 && is(name, n, FAILURE_CLASS))
        return read_failure_state(c, f);
    c->p = start;
    ember_jl_val v;
    if (ember_jl_read(c, &v) == 0) {
        if (is_text(&v))
            f->cut |= copy_text(f->value, v.s, v.len);
        return ember_jl_skip_rest(c, &v);
    }
    c->p = start;
    return ember_jl_skip(c, 1);
}
