/*
 * pb-banana.c — banana, Twisted's token stream: a base-128 prefix (least
 * significant digit first, digits < 0x80) then a type byte 0x80..0x87 and,
 * for STRING and FLOAT, a body. A PB message is one top-level expression.
 */
#include <string.h>

#include "ember-internal.h"
#include "pb-internal.h"

static const char *const vocab[EMBER_BN_NVOCAB + 1] = {
    NULL, "None", "class", "dereference", "reference", "dictionary",
    "function", "instance", "list", "module", "persistent", "tuple",
    "unpersistable", "copy", "cache", "cached", "remote", "local", "lcache",
    "version", "login", "password", "challenge", "logged_in",
    "not_logged_in", "cachemessage", "message", "answer", "error", "decref",
    "decache", "uncache",
};

const char *ember_bn_vocab_word(uint64_t index)
{
    return index >= 1 && index <= EMBER_BN_NVOCAB ? vocab[index] : NULL;
}

unsigned ember_bn_vocab_index(const void *p, size_t n)
{
    if (n < 4 || n > 13) /* "None" .. "not_logged_in" */
        return 0;
    for (unsigned i = 1; i <= EMBER_BN_NVOCAB; i++)
        if (strlen(vocab[i]) == n && memcmp(vocab[i], p, n) == 0)
            return i;
    return 0;
}

int ember_bn_head(const uint8_t *p, size_t n, bool vocab_ok, ember_bn_tok *t,
                  const char **why)
{
    size_t k = 0;
    uint64_t num = 0;
    bool big = false;
    while (k < n && p[k] < 0x80) {
        if (k == EMBER_BN_PREFIX_MAX) {
            *why = "banana prefix longer than 64 bytes";
            return -1;
        }
        uint64_t d = p[k];
        if (d && (k > 9 || (k == 9 && d > 1)))
            big = true;
        else if (d)
            num |= d << (7 * k);
        k++;
    }
    if (k == n)
        return 0;
    t->type = p[k];
    t->num = big ? UINT64_MAX : num;
    t->big = big;
    t->head = k + 1;
    t->size = t->head;
    bool over = big || num > EMBER_BN_SIZE_LIMIT; /* what Twisted refuses */
    switch (t->type) {
    case EMBER_BN_LIST:
        if (over) {
            *why = "banana list longer than 655360";
            return -1;
        }
        return 1;
    case EMBER_BN_STRING:
        if (over) {
            *why = "banana string longer than 655360";
            return -1;
        }
        t->size += (size_t)num;
        return 1;
    case EMBER_BN_FLOAT:
        if (k) {
            *why = "banana float with a prefix";
            return -1;
        }
        t->size += 8;
        return 1;
    case EMBER_BN_VOCAB:
        if (!vocab_ok) {
            *why = "banana vocabulary token outside dialect pb";
            return -1;
        }
        if (!ember_bn_vocab_word(t->num)) {
            *why = "banana vocabulary index outside 1..31";
            return -1;
        }
        return 1;
    case EMBER_BN_INT:
    case EMBER_BN_NEG:
    case EMBER_BN_LONGINT:
    case EMBER_BN_LONGNEG:
        return 1;
    default:
        *why = "unknown banana type byte";
        return -1;
    }
}

void ember_bn_scan_init(ember_bn_scan *s, const ember_bn_limits *lim,
                        bool vocab_ok)
{
    memset(s, 0, sizeof *s);
    s->lim = *lim;
    if (s->lim.max_string > EMBER_BN_SIZE_LIMIT)
        s->lim.max_string = EMBER_BN_SIZE_LIMIT;
    if (s->lim.max_list > EMBER_BN_SIZE_LIMIT)
        s->lim.max_list = EMBER_BN_SIZE_LIMIT;
    if (s->lim.max_depth > EMBER_BN_DEPTH_MAX || s->lim.max_depth == 0)
        s->lim.max_depth = EMBER_BN_DEPTH_MAX;
    s->vocab = vocab_ok;
}

const char ember_bn_too_large[] = "PB message larger than max_frame";

static int scan_fail(ember_bn_scan *s, const char *why)
{
    s->why = why;
    return -1;
}

int ember_bn_scan_feed(ember_bn_scan *s, const uint8_t *p, size_t n,
                       size_t *used)
{
    *used = 0;
    while (s->off < n) {
        ember_bn_tok t;
        const char *why = NULL;
        int r = ember_bn_head(p + s->off, n - s->off, s->vocab, &t, &why);
        if (r < 0)
            return scan_fail(s, why);
        if (r == 0)
            break;
        if (t.type == EMBER_BN_STRING && t.num > s->lim.max_string)
            return scan_fail(s, "banana string over max_string");
        if (t.type == EMBER_BN_LIST && t.num > s->lim.max_list)
            return scan_fail(s, "banana list over max_elems");
        if (t.size > s->lim.max_expr || s->off > s->lim.max_expr - t.size)
            return scan_fail(s, ember_bn_too_large);
        if (t.size > n - s->off)
            break; /* a body still to come: its size was checked */
        s->off += t.size;
        if (t.type == EMBER_BN_LIST && t.num > 0) {
            if (s->depth == s->lim.max_depth)
                return scan_fail(s, "banana lists nested deeper than max_depth");
            s->left[s->depth++] = (uint32_t)t.num;
            continue;
        }
        /* One element done: close every list it completes. */
        while (s->depth && --s->left[s->depth - 1] == 0)
            s->depth--;
        if (s->depth == 0) {
            *used = s->off;
            s->off = 0;
            return 1;
        }
    }
    return 0;
}

/* ---- writing ---- */

static void put_prefix(ember_enc *e, uint64_t v, uint8_t type)
{
    if (ember_enc_reserve(e, 11))
        return;
    uint8_t *p = e->p;
    do {
        *p++ = (uint8_t)(v & 0x7f);
        v >>= 7;
    } while (v);
    *p++ = type;
    e->p = p;
}

void ember_bn_put_list(ember_enc *e, size_t count)
{
    if (count > EMBER_BN_SIZE_LIMIT) {
        e->failed = 1;
        return;
    }
    put_prefix(e, count, EMBER_BN_LIST);
}

void ember_bn_put_int(ember_enc *e, bool neg, uint64_t mag)
{
    if (mag == 0)
        neg = false;
    uint8_t type;
    if (neg)
        type = mag > (1ull << 31) ? EMBER_BN_LONGNEG : EMBER_BN_NEG;
    else
        type = mag >= (1ull << 31) ? EMBER_BN_LONGINT : EMBER_BN_INT;
    put_prefix(e, mag, type);
}

void ember_bn_put_i64(ember_enc *e, int64_t v)
{
    if (v < 0)
        ember_bn_put_int(e, true, (uint64_t)0 - (uint64_t)v);
    else
        ember_bn_put_int(e, false, (uint64_t)v);
}

void ember_bn_put_float(ember_enc *e, double v)
{
    if (ember_enc_reserve(e, 9))
        return;
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    *e->p++ = EMBER_BN_FLOAT;
    for (int k = 7; k >= 0; k--)
        *e->p++ = (uint8_t)(u >> (8 * k));
}

void ember_bn_put_bytes(ember_enc *e, const void *p, size_t n, bool vocab_ok)
{
    unsigned w = vocab_ok ? ember_bn_vocab_index(p, n) : 0;
    if (w) {
        put_prefix(e, w, EMBER_BN_VOCAB);
        return;
    }
    if (n > EMBER_BN_SIZE_LIMIT) {
        e->failed = 1;
        return;
    }
    put_prefix(e, n, EMBER_BN_STRING);
    ember_bn_put_raw(e, p, n);
}

void ember_bn_put_raw(ember_enc *e, const void *p, size_t n)
{
    if (n == 0 || ember_enc_reserve(e, n))
        return;
    memcpy(e->p, p, n);
    e->p += n;
}

void ember_bn_put_word(ember_enc *e, unsigned index, bool vocab_ok)
{
    const char *w = ember_bn_vocab_word(index);
    if (!w) {
        e->failed = 1;
        return;
    }
    if (vocab_ok)
        put_prefix(e, index, EMBER_BN_VOCAB);
    else
        ember_bn_put_bytes(e, w, strlen(w), false);
}
