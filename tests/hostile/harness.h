/*
 * harness.h — what the hostile-peer and fault tests share: one event_base,
 * log capture, allocator accounting, running the loop until a condition or a
 * deadline (never sleeping), raw frame building, a root with a well-behaved
 * node making calls, and a frame-aligned relay that lets a real ember_node
 * register through it and then injects hostile frames into its stream (so
 * the tests need no knowledge of the handshake's encoding).
 */
#ifndef HOSTILE_HARNESS_H
#define HOSTILE_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <event2/event.h>

#include <ember/ember.h>

/* Frame kinds and header counts (runtime/src/wire-internal.h, protocol.md). */
enum {
    FR_HELLO = 1, FR_REGISTER = 2, FR_WELCOME = 3, FR_REFUSED = 4,
    FR_CALL = 5, FR_ONEWAY = 6, FR_REPLY = 7, FR_ERROR = 8, FR_CANCEL = 9,
    FR_DECREF = 10, FR_PING = 11, FR_PONG = 12, FR_GOODBYE = 13,
    FR_REFS = 0x80 /* in a CALL..ERROR kind: the frame ends with its table of refs */
};

extern struct event_base *H_base;
extern int h_failures;

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__,         \
                    __LINE__, #cond);                                        \
            h_failures++;                                                    \
            return;                                                          \
        }                                                                    \
    } while (0)

/* ---- logs ---- */
void h_log_install(void);
void h_log_clear(void);
/* True if one captured line contains every non-NULL needle. */
bool h_log_has(const char *a, const char *b);
void h_log_dump(FILE *f);

/* ---- allocator accounting (installed before anything is created) ---- */
void h_alloc_install(void);
size_t h_alloc_live(void);
size_t h_alloc_peak(void);
void h_alloc_reset_peak(void);

/* ---- loop ---- */
typedef bool (*h_cond)(void *ud);
/* Runs the loop until cond(ud) or ms elapsed; returns cond(ud). */
bool h_run_until(h_cond cond, void *ud, int ms);
/* Runs the loop for ms (to prove something does NOT happen). */
void h_run_for(int ms);
uint64_t h_now_ms(void);

/* ---- frames ---- */
size_t h_varint(uint8_t *p, uint64_t v);
/* Writes a whole frame into buf (cap bytes); returns its size. */
size_t h_frame(uint8_t *buf, size_t cap, uint8_t kind, int nh,
               const uint64_t *h, const void *payload, size_t plen);

/* ---- raw sockets ---- */
/* A blocking TCP connection to 127.0.0.1:port; -1 on failure. */
int h_connect(int port);
/* Local port of a socket (the "peer" text the root logs). */
int h_local_port(int fd);
/* Writes all of it (blocking); -1 on error. */
int h_write_all(int fd, const void *p, size_t n);
/* True once the peer closed fd (read returns 0 or an error). Nonblocking. */
bool h_peer_closed(int fd);

/* ---- the fixture: root + a well-behaved node calling it ---- */
/* Every method below belongs to one service, raw and typed alike; h_frame
 * writes its id into the CALL and ONEWAY frames it builds. */
#define H_SVC 0x686f7374u
#define H_ECHO 100    /* root: replies with the payload */
#define H_HOLD 101    /* root: keeps the call until h_release_held */
#define H_DEEP 300    /* root: typed, decodes a recursive value */
#define H_LIST 301    /* root: typed, decodes list<u32> */
#define H_BIGS 302    /* root: typed, decodes list<256-byte struct> */
#define H_PLAYER 303  /* root: typed, decodes a game.Player (generated code,
                         tests/golden/game.c) and replies with it re-encoded */
#define H_REFS 304    /* root: typed, decodes list<ref> */
#define H_HOLD_REFS 305 /* root: typed, decodes list<ref> and keeps the call
                           (with its refs) until h_release_held */
#define H_NODE_ECHO 200 /* nodes: replies with the payload */
#define H_NODE_HOLD 201 /* nodes: never replies until released */
/* nodes: service H_KEEP_SVC, typed: keeps the ref of field 1 until
 * h_release_node_held and replies with the payload as it came */
#define H_KEEP_SVC 0x6b656570u
#define H_NODE_KEEP 202
extern const ember_service_desc h_keep_svc;

typedef struct h_fixture {
    ember_root *root;
    int port;
    ember_limits lim;
    int joins, leaves;
    ember_node *good;
    /* the good node's traffic */
    bool traffic;
    int inflight;
    long sent, ok, bad;
    ember_status last_bad;
    char last_bad_msg[160];
} h_fixture;

/* Limits for the tests: defaults with short deadlines. */
void h_limits(ember_limits *l);
/* Starts a root (lim may be NULL for h_limits) and a good node registered
 * to it. Returns 0 or -1. */
int h_fixture_start(h_fixture *fx, const ember_limits *lim);
/* Ends the good traffic, waits for it to drain, frees everything. The good
 * node's books must balance: sent == ok + bad. */
void h_fixture_stop(h_fixture *fx);
void h_traffic_start(h_fixture *fx, int depth);
void h_traffic_stop(h_fixture *fx);
/* A raw handler that replies with the payload (H_ECHO, H_NODE_ECHO). */
void h_echo(ember_call *call, uint32_t sid, uint32_t id, const void *p,
            size_t n, void *ud);
/* Calls a raw handler keeps unanswered until released; the array grows
 * as it must. */
typedef struct h_held {
    ember_call **call;
    int n, cap;
} h_held;
/* A raw handler, exported with an h_held as its ud: keeps the call. */
void h_hold(ember_call *call, uint32_t sid, uint32_t id, const void *p,
            size_t n, void *ud);
/* Answers every call h keeps with p[0..n) and forgets them. */
void h_held_release(h_held *h, const void *p, size_t n);

/* Calls of one size to a peer that does not read, counted by outcome:
 * sent until the root's output limit refuses one (EMBER_LIMIT). */
typedef struct h_flood {
    int sent, pending, ok, limit, other;
    ember_status other_st;   /* the last of the others */
} h_flood;
/* Up to max calls of p[0..n) to H_NODE_ECHO at `to`, a 1 ms turn of the
 * loop after every `pace` of them (pacing, not a wait: the loop flushes),
 * until one is refused. */
void h_flood_send(h_flood *f, ember_ref *to, const void *p, size_t n, int max,
                  int pace);
bool h_flood_limited(void *f);   /* one was refused */
bool h_flood_settled(void *f);   /* every one has ended */

/* Calls held by H_HOLD on the root. */
int h_held_count(void);
void h_release_held(void);
/* Answers the calls H_NODE_HOLD kept (on any node), drops the refs
 * H_NODE_KEEP kept. */
void h_release_node_held(void);
/* Calls H_NODE_HOLD is keeping (on any node). */
int h_node_held_count(void);

/* TLS for the fixture's root and for h_node_new's nodes; NULL (the
 * default) is plain TCP. Set by the TLS cases (tls.c), reset after them. */
extern const ember_tls_config *h_root_tls;
extern const ember_tls_config *h_node_tls;

/* A node (with H_NODE_* exports) that connects to addr port. */
ember_node *h_node_new(const char *name, int port);
/* The same with the caller's config (h_node_new's: h_limits, h_node_tls,
 * backoff 10..100 ms). */
ember_node *h_node_new_cfg(const char *name, int port, const ember_node_config *cfg);
bool h_node_registered(void *node);

/* ---- relay: node <-> relay <-> root ---- */
typedef struct h_relay h_relay;
h_relay *h_relay_new(int root_port);
void h_relay_free(h_relay *r);
int h_relay_port(const h_relay *r);
/* Local port of the current upstream socket (the offender the root sees). */
int h_relay_up_port(const h_relay *r);
/* Number of upstream connections the root has closed so far. */
int h_relay_up_closed(const h_relay *r);
bool h_relay_connected(const h_relay *r);
/* Appends raw bytes to the upstream (towards the root), frame-aligned. */
void h_relay_inject(h_relay *r, const void *p, size_t n);
/* Answers to injected calls (REPLY/ERROR frames whose call id has the top
 * bit pattern H_INJ_ID) are kept here and not passed to the node. */
#define H_INJ_ID(n) (0x7f000000ull + (n))
bool h_relay_got_answer(h_relay *r, uint64_t id, uint8_t *kind, uint64_t *code);
/* Stops reading from the root (the node "never reads"). The relay answers
 * the node's PINGs itself from then on: the node, which hears nothing from
 * the root, does not give up on it, and the root alone ends the link. */
void h_relay_stop_reading(h_relay *r);
/* Stops passing the node's frames to the root (nothing the node sends can
 * land after a partial frame the test injected). */
void h_relay_hold_down(h_relay *r);
/* Half-closes the upstream (EOF towards the root). */
void h_relay_shutdown_up(h_relay *r);
/* True once everything injected was written to the socket. */
bool h_relay_flushed(void *r);

/* ---- TLS cases (tls.c) ---- */
/* Makes a throwaway CA and a server certificate (localhost, 127.0.0.1) with
 * the openssl CLI. 0, or -1 with the reason in *why (for a SKIP line). */
int h_tls_setup(const char **why);
void h_tls_cleanup(void);
/* The root's and the nodes' TLS configuration (valid after h_tls_setup). */
const ember_tls_config *h_tls_root_config(void);
const ember_tls_config *h_tls_node_config(void);
void case_tls_garbage(h_fixture *fx);
void case_tls_slow_silent(h_fixture *fx);
void case_tls_slow_partial_hello(h_fixture *fx);
void case_tls_plain_register(h_fixture *fx);
void case_tls_plain_hello(h_fixture *fx);
void case_tls_post_oversize(h_fixture *fx);
void case_tls_post_len_u32_max(h_fixture *fx);
void case_tls_post_call_before_register(h_fixture *fx);
void case_tls_post_record_then_junk(h_fixture *fx);
void case_tls_post_record_then_close_notify(h_fixture *fx);
void case_tls_big_client_hellos(h_fixture *fx);

/* ---- the runtime at its edges (edges.c) ---- */
void edge_colliding_call_ids(h_fixture *fx);
void edge_heartbeat_welcome(h_fixture *fx);
void edge_drop_reason(h_fixture *fx);
void edge_log_injection(h_fixture *fx);
void edge_unregistered_flood(h_fixture *fx);
void edge_never_reads_peak(h_fixture *fx);
void edge_bad_name_refused(h_fixture *fx);

#endif
