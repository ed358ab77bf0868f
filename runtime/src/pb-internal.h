/*
 * pb-internal.h — Twisted Perspective Broker's two encodings: banana (the
 * token stream) and jelly (values as banana lists). See docs/protocol-pb.md.
 *
 *   pb-banana.c   one token's head, the incremental scanner that finds where
 *                 a top-level expression ends (limits checked on the prefix,
 *                 before a body arrives), the token writer.
 *   pb-jelly.c    a cursor over one complete expression that accepts only
 *                 the whitelisted jelly types, the jelly writer, the
 *                 CopyableFailure template and its reader.
 *
 * Neither knows about connections: they read byte ranges and write through
 * an ember_enc.
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
#ifndef EMBER_PB_INTERNAL_H
#define EMBER_PB_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ember/codec.h>

/* ---- pb-banana.c ---- */

enum ember_bn_type {
    EMBER_BN_LIST = 0x80,
    EMBER_BN_INT = 0x81,
    EMBER_BN_STRING = 0x82,
    EMBER_BN_NEG = 0x83,
    EMBER_BN_FLOAT = 0x84,
    EMBER_BN_LONGINT = 0x85,
    EMBER_BN_LONGNEG = 0x86,
    EMBER_BN_VOCAB = 0x87
};

#define EMBER_BN_SIZE_LIMIT (640u * 1024u) /* Twisted's SIZE_LIMIT */
#define EMBER_BN_PREFIX_MAX 64             /* Twisted's prefixLimit */
#define EMBER_BN_DEPTH_MAX 64              /* nesting ember accepts at most */
#define EMBER_BN_NVOCAB 31                 /* words of dialect "pb" */

/* Vocabulary indexes ember writes (dialect "pb"). */
enum ember_bn_word {
    EMBER_BN_W_NONE = 1,
    EMBER_BN_W_DICTIONARY = 5,
    EMBER_BN_W_LIST = 8,
    EMBER_BN_W_TUPLE = 11,
    EMBER_BN_W_REMOTE = 16,
    EMBER_BN_W_LOCAL = 17,
    EMBER_BN_W_VERSION = 19,
    EMBER_BN_W_MESSAGE = 26,
    EMBER_BN_W_ANSWER = 27,
    EMBER_BN_W_ERROR = 28,
    EMBER_BN_W_DECREF = 29
};

/* The word with index 1..31, or NULL. */
const char *ember_bn_vocab_word(uint64_t index);
/* The index of the word p[0..n), or 0 when it is not one. */
unsigned ember_bn_vocab_index(const void *p, size_t n);

/* One token's head: prefix digits then the type byte. */
typedef struct ember_bn_tok {
    uint8_t type;
    uint64_t num;   /* the prefix's value (saturated when big) */
    bool big;       /* the prefix is 2^64 or more */
    size_t head;    /* bytes of prefix + type byte */
    size_t size;    /* bytes of the whole token: head + body */
} ember_bn_tok;

/*
 * Reads the head of the token at p[0..n). 1: *t set (the body may not all
 * be there: t->size says how much the token needs); 0: the head is not
 * complete yet; -1: malformed (*why): more than 64 prefix bytes, an unknown
 * type byte, a prefix before FLOAT, a STRING or LIST over 655 360, a VOCAB
 * index outside 1..31, or VOCAB when `vocab` is false.
 */
int ember_bn_head(const uint8_t *p, size_t n, bool vocab, ember_bn_tok *t,
                  const char **why);

typedef struct ember_bn_limits {
    uint32_t max_string; /* bytes of one STRING (capped at 655 360) */
    uint32_t max_list;   /* elements of one LIST (capped at 655 360) */
    uint32_t max_depth;  /* nested LISTs (capped at EMBER_BN_DEPTH_MAX) */
    size_t max_expr;     /* bytes of one top-level expression */
} ember_bn_limits;

/*
 * Finds where top-level expressions end in a stream fed in any chunks.
 * The caller keeps every byte of the current expression in one buffer and
 * hands all of it (from the expression's first byte) to each call.
 */
typedef struct ember_bn_scan {
    ember_bn_limits lim;
    bool vocab;                        /* VOCAB allowed (dialect "pb") */
    size_t off;                        /* bytes of the expression scanned */
    uint32_t depth;                    /* open LISTs */
    uint32_t left[EMBER_BN_DEPTH_MAX]; /* elements each open LIST awaits */
    const char *why;                   /* reason of the last -1 */
} ember_bn_scan;

void ember_bn_scan_init(ember_bn_scan *s, const ember_bn_limits *lim,
                        bool vocab);
/*
 * p[0..n) holds the current expression from its first byte. 1: it ends at
 * *used (the scanner is ready for the next one); 0: more bytes are needed
 * (nothing seen breaks a limit, including the announced size of a body
 * that has not arrived); -1: malformed or over a limit (s->why).
 */
int ember_bn_scan_feed(ember_bn_scan *s, const uint8_t *p, size_t n,
                       size_t *used);
/* s->why of an expression over max_expr (the connection broke max_frame). */
extern const char ember_bn_too_large[];

/* Writers (canonical, as Twisted writes them). They fail the encoder on a
 * STRING or LIST over 655 360, which Twisted would refuse to receive. */
void ember_bn_put_list(ember_enc *e, size_t count);
void ember_bn_put_int(ember_enc *e, bool neg, uint64_t mag);
void ember_bn_put_i64(ember_enc *e, int64_t v);
void ember_bn_put_float(ember_enc *e, double v);
/* A byte string: VOCAB when `vocab` and it is one of the 31 words. */
void ember_bn_put_bytes(ember_enc *e, const void *p, size_t n, bool vocab);
/* A vocabulary word by index: VOCAB when `vocab`, else a STRING. */
void ember_bn_put_word(ember_enc *e, unsigned index, bool vocab);
/* p[0..n) as it is: banana already encoded (a jellied value passed through). */
void ember_bn_put_raw(ember_enc *e, const void *p, size_t n);

/* ---- pb-jelly.c ---- */

typedef enum ember_jl_kind {
    EMBER_JL_INT,
    EMBER_JL_FLOAT,
    EMBER_JL_BYTES,   /* a bare STRING or VOCAB */
    EMBER_JL_UNICODE, /* (unicode utf8), checked UTF-8 */
    EMBER_JL_NONE,
    EMBER_JL_BOOL,
    EMBER_JL_LIST,
    EMBER_JL_TUPLE,
    EMBER_JL_DICT,
    EMBER_JL_REMOTE,  /* (remote luid): the sender's object */
    EMBER_JL_LOCAL    /* (local luid): the receiver's object coming home */
} ember_jl_kind;

typedef struct ember_jl_val {
    ember_jl_kind kind;
    bool neg, big;          /* INT: value is -mag when neg; big: |v| >= 2^64 */
    uint64_t mag;           /* INT magnitude; REMOTE/LOCAL luid */
    double f;               /* FLOAT */
    bool b;                 /* BOOL */
    const uint8_t *s;       /* BYTES, UNICODE: the bytes (not terminated) */
    size_t len;
    uint32_t count;         /* LIST, TUPLE: elements; DICT: pairs that follow */
} ember_jl_val;

/* Bytes of a reader's reason (one naming a refused type included). */
#define EMBER_JL_WHY 80

/* A cursor over one complete expression (bounds-checked on any input). */
typedef struct ember_jl_cur {
    const uint8_t *p, *end;
    bool vocab;
    bool no_refs;           /* ember_jl_check: refuse (remote) and (local) */
    const char *why;        /* reason of the last -1 */
    char whybuf[EMBER_JL_WHY]; /* room for a reason naming a refused type */
} ember_jl_cur;

void ember_jl_init(ember_jl_cur *c, const void *p, size_t n, bool vocab);
/*
 * Reads the next value. Compound values (LIST, TUPLE, DICT) leave the
 * cursor on their first element: the caller reads `count` values (DICT:
 * `count` times ember_jl_pair, a key, a value), or skips them. Refused jelly
 * types (set, reference, module, dotted names, ...) and malformed forms are
 * -1 with c->why naming them.
 */
int ember_jl_read(ember_jl_cur *c, ember_jl_val *v);
/* Enters one dictionary item: a 2-element banana list (no jelly head). */
int ember_jl_pair(ember_jl_cur *c);
/* Skips n banana expressions (whatever they hold). */
int ember_jl_skip(ember_jl_cur *c, size_t n);
/* Skips the rest of a value just read (the elements of a compound). */
int ember_jl_skip_rest(ember_jl_cur *c, const ember_jl_val *v);
/* ember_jl_check's flags. */
enum {
    EMBER_JL_TUPLE_ONLY = 1, /* a (tuple) or (list): a call's arguments */
    EMBER_JL_NO_REFS = 2     /* no (remote) or (local): raw jelly ember
                              * sends, whose refs would name objects of
                              * whichever connection they came from */
};
/* p[0..n) is exactly one whitelisted jelly value (as flags narrow it); -1
 * otherwise, with the reason in why[0..whylen). */
int ember_jl_check(const void *p, size_t n, bool vocab, unsigned flags, char *why,
                   size_t whylen);
/* Calls fn(luid, ud) for each (remote luid) in the n values at c, in
 * order, down to any depth, inside types the whitelist refuses too (a set,
 * a (reference N ...)); stops at the first token it cannot read. */
void ember_jl_remotes(ember_jl_cur *c, size_t n, void (*fn)(uint64_t luid, void *ud),
                      void *ud);
/* Strict UTF-8 (no overlongs, no surrogates, nothing past U+10FFFF). */
bool ember_jl_utf8_ok(const uint8_t *s, size_t n);

/* Writer: an encoder and the dialect. */
typedef struct ember_jl_w {
    ember_enc *e;
    bool vocab;
} ember_jl_w;

/* A jelly compound's head: LIST(count + 1) and its type word. */
void ember_jl_put_head(ember_jl_w *w, unsigned word, size_t count);
void ember_jl_put_none(ember_jl_w *w);
void ember_jl_put_bool(ember_jl_w *w, bool v);
void ember_jl_put_unicode(ember_jl_w *w, const void *s, size_t n);
void ember_jl_put_ref(ember_jl_w *w, bool local, uint64_t luid);

/* What a failure says: type (qualified name) and value (str(exception)). */
#define EMBER_JL_FAIL_TEXT 256
typedef struct ember_jl_failure {
    char type[EMBER_JL_FAIL_TEXT];
    char value[EMBER_JL_FAIL_TEXT];
    bool cut;   /* type or value was longer and is cut */
} ember_jl_failure;

/*
 * A jellied twisted.spread.pb.CopyableFailure with Twisted's ten keys (unicode
 * keys, as py3 Twisted sends them): `type`, `value` and the `parents` list
 * (the type first) are ours, the other keys fixed.
 */
void ember_jl_put_failure(ember_jl_w *w, const char *type, const char *value,
                          const char *const *parents, size_t nparents);
/*
 * Reads the value of an `error` message: a CopyableFailure (keys unicode or
 * bytes, unknown keys skipped) or any other value (a bare string is taken as
 * the value, anything else reads as "remote error"). -1 only when the
 * expression is malformed.
 */
int ember_jl_read_failure(ember_jl_cur *c, ember_jl_failure *f);

/* ---- pb-pylit.c: Python literals (a failure's str(exception)) ---- */

/* s is exactly "(v, v, ...)", Python's repr of a tuple of ints, floats,
 * True/False/None, str and bytes: each written to w, *n their count. */
int ember_pylit_tuple(const char *s, ember_jl_w *w, uint32_t *n);
/* s is exactly one such literal. */
int ember_pylit_value(const char *s, ember_jl_w *w);
/* str() of a Python exception raised with the nvals jelly values at
 * p[0..n): "" for none, one string as it is (any other single value as its
 * repr), the repr of their tuple for several. Written into out[0..cap),
 * cap >= 4, terminated; when the jelly does not read or the text does not
 * fit, it ends in "..." (cut between characters) and the result is -1. */
int ember_pylit_str(const void *p, size_t n, uint32_t nvals, bool vocab,
                    char *out, size_t cap);

#endif
