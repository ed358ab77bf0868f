#!/usr/bin/python3
"""docs/protocol.md from an attacker's side: a raw-socket peer written from
the page alone (tests/wire/test_wire.py's helpers) sends what the page says
is a violation, malformed, or over a limit, and checks that the real peer
(tests/wire/peer.c) does what the page says: it disconnects with the
documented reason, logged (and, to a registered peer, sent in GOODBYE
first), or answers as documented and carries on; and that a bystander
node registered on the same root is never affected.

  frames       length 0, over the limit before registration and over
               max_frame after it, unknown kinds, headers cut short,
               10-byte and overlong header varints, values over 64 bits,
               answers to call ids never issued
  ordering     every call-side kind before registration, PING allowed,
               handshake kinds sent to a root, REGISTER twice, a call
               after GOODBYE in the same write
  values       lengths that lie, counts over the bytes present or over
               max_elems, regions not consumed exactly, wire types 3, 4,
               6, 7, values out of their C type's range, strict UTF-8,
               nesting at and over max_depth
  handshake    too many services, names at the length limits, bidi marks
  slow reader  a peer that never reads: the root's output queue stays
               within out_high_water, the frame that crossed it and 1 MiB,
               and the peer is closed as not reading
  limits       max_outstanding at and over its default
  node         a Python root's violations against a real node
  liveness     a PING flood is answered in order; a peer that stops
               answering is dropped after dead_after_ms; a dead child's
               name is taken over; a half-closed peer

  python3 tests/wire/test_attack.py build/bin/wire-peer
"""
import os
import queue
import socket
import struct
import sys
import threading
import time

import test_wire as w
from test_wire import (CALL, ONEWAY, REPLY, ERROR, CANCEL, DECREF, PING, PONG,
                       GOODBYE, HELLO, REGISTER, WELCOME, REFUSED, DB, STORE,
                       Conn, check, f_len, f_str, f_varint, fields, lst, lenv,
                       one, register, start_root, uv, answer_of, SLOW)


def raw_frame(body):
    return struct.pack('<I', len(body)) + body


def frame(kind, hdr=(), payload=b'', svc=None):
    body = bytes([kind])
    if svc is not None:
        body += struct.pack('<I', svc)
    return raw_frame(body + b''.join(uv(h) for h in hdr) + payload)


def drain(c, timeout=3):
    """Frames until EOF: (frames, True), or (frames, False) at the deadline."""
    got, end = [], time.time() + timeout * SLOW
    while time.time() < end:
        f = c.recv(end - time.time())
        if f == 'EOF':
            return got, True
        if f is None:
            break
        got.append(f)
    return got, False


class Bystander:
    """A well-behaved node on the same root: a thread answers its PINGs
    (the root may run a 300 ms heartbeat), alive() calls db.login."""

    def __init__(self, port):
        self.c, kind, _, _ = register(port, 'bystander')
        check(kind == WELCOME, 'the bystander registers')
        self.ids = iter(range(1, 1 << 30))
        self.q = queue.Queue()
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            f = self.c.recv(3600)
            if f is None:
                continue
            if f != 'EOF' and f[0] == PING:
                with self.lock:
                    self.c.send(PONG)
                continue
            self.q.put(f)
            if f == 'EOF':
                return

    def alive(self, what):
        cid = next(self.ids)
        with self.lock:
            self.c.send(CALL, (cid, 0, 301), f_str(1, 'bystander'), DB)
        try:
            f = self.q.get(timeout=3 * SLOW)
        except queue.Empty:
            f = None
        return check(f not in (None, 'EOF') and f[0] == REPLY and f[2] == [cid],
                     '%s: the bystander is served as before: %r' % (what, f))


class Root:
    def __init__(self, env=None):
        self.peer, self.port = start_root(env=env)
        self.by = Bystander(self.port)
        self.n = 0

    def node(self):
        """A freshly registered raw node with a name of its own."""
        self.n += 1
        name = 'atk-%d' % self.n
        c, kind, _, _ = register(self.port, name)
        check(kind == WELCOME, '%s registers' % name)
        return c, name

    def unregistered(self):
        c = Conn(socket.create_connection(('127.0.0.1', self.port)))
        f = c.recv(5)
        check(f not in (None, 'EOF') and f[0] == HELLO, 'HELLO first')
        return c

    def expect_drop(self, c, what, why, goodbye=True, timeout=3):
        """c is closed by the root, with GOODBYE `why` first when registered,
        and the root logged it at WARN; the bystander carries on."""
        got, eof = drain(c, timeout)
        check(eof, '%s: the root closes the connection (got %s)' %
              (what, [g[0] for g in got]))
        if goodbye:
            bye = [g for g in got if g[0] == GOODBYE]
            reason = one(fields(bye[-1][3]), 1, b'').decode() if bye else None
            check(reason == why, '%s: GOODBYE says why: %r, not %r' % (what, reason, why))
        line = self.peer.wait_line(lambda l: ('closed: ' + why) in l and '(127.0.0.1:' in l
                                   and l not in self.seen)
        check(line is not None and ' warn: ' in line,
              '%s: logged at WARN "closed: %s": %s' % (what, why, line))
        if line:
            self.seen.add(line)
        self.by.alive(what)

    seen = set()

    def stop(self):
        self.peer.stop()


# ---- frames -----------------------------------------------------------------

def case_frames():
    r = Root()
    try:
        # length 0, before and after registration
        c = r.unregistered()
        c.s.sendall(struct.pack('<I', 0))
        r.expect_drop(c, 'length 0 (unregistered)', 'bad frame: empty frame', goodbye=False)
        c, _ = r.node()
        c.s.sendall(struct.pack('<I', 0))
        r.expect_drop(c, 'length 0', 'bad frame: empty frame')
        # the limit before registration, then max_frame; nothing buffered
        c = r.unregistered()
        c.s.sendall(struct.pack('<I', (1 << 20) + 1))
        r.expect_drop(c, '1 MiB + 1 unregistered', 'bad frame: frame of 1048577 bytes, '
                      'larger than the limit before registration (1048576)', goodbye=False)
        c = r.unregistered()
        c.s.sendall(frame(PING, payload=bytes((1 << 20) - 1)))
        f = c.recv(3)
        check(f not in (None, 'EOF') and f[0] == PONG, 'a PING of exactly 1 MiB before registration')
        c, _ = r.node()
        c.s.sendall(struct.pack('<I', (16 << 20) + 1) + bytes([PING]))
        r.expect_drop(c, 'max_frame + 1', 'bad frame: frame of 16777217 bytes, larger '
                      'than max_frame (16777216)')
        c, _ = r.node()
        c.s.sendall(struct.pack('<I', 0xffffffff))
        r.expect_drop(c, 'length 2^32-1', 'bad frame: frame of 4294967295 bytes, larger '
                      'than max_frame (16777216)')
        # unknown kinds
        for kind in (0, 14, 255):
            c = r.unregistered()
            c.s.sendall(raw_frame(bytes([kind])))
            r.expect_drop(c, 'kind %d unregistered' % kind, 'bad frame: unknown frame kind',
                          goodbye=False)
            c, _ = r.node()
            c.s.sendall(raw_frame(bytes([kind])))
            r.expect_drop(c, 'kind %d' % kind, 'bad frame: unknown frame kind')
        # too short for the header: the service id, then each varint
        for what, body in (('CALL without service id', bytes([CALL, 1, 2, 3])),
                           ('CALL without method id', bytes([CALL]) + struct.pack('<I', DB) + b'\x01\x00'),
                           ('CALL cut inside a varint', bytes([CALL]) + struct.pack('<I', DB) + b'\x01\x00\x80'),
                           ('ERROR without error id', bytes([ERROR, 1, 2])),
                           ('DECREF without count', bytes([DECREF, 1])),
                           ('CANCEL without call id', bytes([CANCEL]))):
            c, _ = r.node()
            c.s.sendall(raw_frame(body))
            r.expect_drop(c, what, 'bad frame: truncated frame header')
        # header varints: 10 bytes (2^64-1) is a value; over 64 bits is not,
        # wherever the varint ends
        c, _ = r.node()
        c.s.sendall(frame(CALL, (2**64 - 1, 0, 707), svc=STORE))
        f = answer_of(c, 2**64 - 1)
        check(f not in (None, 'EOF') and f[0] == REPLY, 'a 10-byte call id is echoed: %r' % (f,))
        # overlong header varints (1 as 81 00, 0 as 80 80 00): values as any
        c.s.sendall(raw_frame(bytes([CALL]) + struct.pack('<I', STORE) +
                              b'\x85\x00' + b'\x80\x80\x00' + uv(707)))
        f = answer_of(c, 5)
        check(f not in (None, 'EOF') and f[0] == REPLY, 'overlong header varints: %r' % (f,))
        over = b'\xff' * 9 + b'\x02'
        for what, body in (('call id of 65 bits, last in the frame', bytes([CANCEL]) + over),
                           ('call id of 65 bits', bytes([CALL]) + struct.pack('<I', STORE) +
                            over + b'\x00' + uv(707)),
                           ('11-byte varint', bytes([CANCEL]) + b'\x80' * 10 + b'\x00')):
            c, _ = r.node()
            c.s.sendall(raw_frame(body))
            r.expect_drop(c, what, 'bad frame: frame header varint overflows 64 bits')
        # an answer to a call id whose slot was never issued
        c, _ = r.node()
        c.send(REPLY, (1 << 23,), b'')
        r.expect_drop(c, 'REPLY to a slot never issued',
                      'protocol violation: answer to a call id never issued')
        c, _ = r.node()
        c.send(ERROR, (0, 2, 0), f_str(1, 'x'))
        r.expect_drop(c, 'ERROR to call id 0', 'protocol violation: answer to a call id never issued')
    finally:
        r.stop()


# ---- ordering ---------------------------------------------------------------

def case_ordering():
    r = Root()
    try:
        for kind, hdr, svc in ((CALL, (1, 0, 301), DB), (ONEWAY, (0, 301), DB),
                               (REPLY, (1,), None), (ERROR, (1, 2, 0), None),
                               (CANCEL, (1,), None), (DECREF, (1, 1), None)):
            c = r.unregistered()
            c.s.sendall(frame(PING) + frame(kind, hdr, f_str(1, 'early'), svc))
            f = c.recv(3)
            check(f not in (None, 'EOF') and f[0] == PONG, 'PING before registration: PONG')
            r.expect_drop(c, '%s before REGISTER' % w.NAMES[kind], 'protocol violation: %s '
                          'before registration' % w.NAMES[kind], goodbye=False)
        check(not r.peer.has('serve login early', 0.2), 'no handler ran for an early call')
        for kind in (HELLO, WELCOME, REFUSED):
            c = r.unregistered()
            c.send(kind, payload=b'')
            r.expect_drop(c, '%s to a root' % w.NAMES[kind], 'protocol violation: %s during '
                          'registration' % w.NAMES[kind], goodbye=False)
        for kind in (HELLO, REGISTER, WELCOME, REFUSED):
            c, _ = r.node()
            c.send(kind, payload=f_varint(1, 2) + f_str(2, 'again'))
            r.expect_drop(c, '%s after registration' % w.NAMES[kind], 'protocol violation: %s '
                          'after registration' % w.NAMES[kind])
        # a call after GOODBYE, in the same write: never served
        c, name = r.node()
        c.s.sendall(frame(GOODBYE, payload=f_str(1, 'leaving')) +
                    frame(CALL, (1, 0, 301), f_str(1, 'after-goodbye'), DB))
        got, eof = drain(c)
        check(eof and not [g for g in got if g[0] in (REPLY, ERROR)],
              'a call after GOODBYE is not answered: %s' % got)
        check(r.peer.has('leave %s peer said goodbye: leaving' % name), 'GOODBYE is a loss')
        check(not r.peer.has('serve login after-goodbye', 0.3), 'nor served')
        r.by.alive('after GOODBYE')
    finally:
        r.stop()


# ---- values -----------------------------------------------------------------

def bad_args(r, what, svc, mid, args, why):
    """A CALL whose arguments are malformed: ERROR FAILED "bad arguments:
    why", then the connection closes."""
    c, _ = r.node()
    c.send(CALL, (1, 0, mid), args, svc)
    got, eof = drain(c)
    err = [g for g in got if g[0] == ERROR]
    msg = one(fields(err[0][3]), 1) if err else None
    check(err and err[0][2][:2] == [1, 2] and msg == b'bad arguments: ' + why.encode(),
          '%s: ERROR FAILED "bad arguments: %s": %r' % (what, why, msg))
    check(eof, '%s: then the connection closes' % what)
    r.by.alive(what)


def good_args(r, what, svc, mid, args):
    c, _ = r.node()
    c.send(CALL, (1, 0, mid), args, svc)
    f = answer_of(c, 1)
    check(f not in (None, 'EOF') and f[0] == REPLY, '%s: answered: %r' % (what, f))
    return c, f


def tree(depth):
    t = f_varint(1, 2)
    for _ in range(depth - 1):
        t = f_varint(1, 2) + f_len(2, t)
    return t


def case_values():
    r = Root()
    try:
        B = lambda s: f_len(1, s)   # db.login(1: string)
        # a CALL to a oneway method (shapes.Store.forget) is answered an
        # empty REPLY once its arguments decode; these do not
        bad_args(r, 'CALL to a oneway method, wire type 3', STORE, 705, b'\x0b\x01',
                 'field has the wrong wire type')
        bad_args(r, 'string length past the end', DB, 301, uv(1 << 3 | 2) + uv(9) + b'abc',
                 'length runs past the end')
        bad_args(r, 'string length of 2^64-1', DB, 301, uv(1 << 3 | 2) + uv(2**64 - 1) + b'abc',
                 'string or bytes longer than the limit')
        bad_args(r, 'payload varint over 64 bits', DB, 302, uv(1 << 3) + b'\xff' * 9 + b'\x02',
                 'varint overflows 64 bits')
        bad_args(r, 'payload varint of 11 bytes', DB, 302, uv(1 << 3) + b'\x80' * 10 + b'\x00',
                 'varint overflows 64 bits')
        bad_args(r, 'payload varint cut short', DB, 302, uv(1 << 3) + b'\x80\x80',
                 'truncated varint')
        good_args(r, 'a 10-byte u64 (2^64-1)', DB, 302, uv(1 << 3) + b'\xff' * 9 + b'\x01')
        good_args(r, 'an overlong u64', DB, 302, uv(1 << 3) + b'\x85\x80\x00')
        for wt in (3, 4, 6, 7):
            bad_args(r, 'unknown tag of wire type %d' % wt, DB, 301,
                     uv(900 << 3 | wt) + B(b'x'), 'unknown wire type')
            bad_args(r, 'known tag of wire type %d' % wt, DB, 301, uv(1 << 3 | wt),
                     'field has the wrong wire type')
        bad_args(r, 'fixed64 cut short', DB, 301, uv(900 << 3 | 1) + b'1234567',
                 'truncated fixed64')
        bad_args(r, 'fixed32 cut short', DB, 301, uv(900 << 3 | 5) + b'123', 'truncated fixed32')
        bad_args(r, 'unknown LEN past the end', DB, 301, uv(900 << 3 | 2) + b'\x05ab',
                 'length runs past the end')
        # strict UTF-8 and NUL
        for what, s in (('overlong /', b'\xc0\xaf'), ('overlong NUL', b'\xc0\x80'),
                        ('surrogate', b'\xed\xa0\x80'), ('above U+10FFFF', b'\xf4\x90\x80\x80'),
                        ('NUL', b'a\x00b'), ('cut sequence', b'\xe2\x82')):
            c, _ = r.node()
            c.send(CALL, (1, 0, 301), B(s), DB)
            got, eof = drain(c)
            err = [g for g in got if g[0] == ERROR]
            check(err and err[0][2][:2] == [1, 2] and eof and
                  one(fields(err[0][3]), 1).startswith(b'bad arguments: '),
                  'string %s: FAILED then closed: %r' % (what, err))
        good_args(r, 'a 4-byte UTF-8 string', DB, 301, B('\U0010ffff'.encode()))
        # ranges: shapes.Scalars fields 1 bool, 6 u8, 2 i8, 14 Temp enum
        put = lambda sc: f_str(1, 'k') + f_len(2, sc)
        for what, sc in (('bool 2', f_varint(1, 2)), ('u8 256', f_varint(6, 256)),
                         ('i8 128', f_varint(2, w.zz(128))), ('u16 65536', f_varint(7, 65536)),
                         ('u32 2^32', f_varint(8, 2**32))):
            bad_args(r, what, STORE, 702, put(sc), 'integer out of range' if what[0] != 'b'
                     else 'bool is neither 0 nor 1')
        # lists: a count over the bytes present, over max_elems, a region
        # not consumed exactly (shapes.Containers field 1: list<u32>)
        echo = lambda body: f_len(1, f_len(1, body))
        for what, body in (('count over the bytes', uv(5) + uv(1)),
                           ('count of 2^64-1', uv(2**64 - 1) + uv(1)),
                           ('count over max_elems', uv((16 << 20) + 1) + uv(1)),
                           ('bytes left over', uv(1) + uv(1) + uv(2)),
                           ('map count over the bytes', None)):
            c, _ = r.node()
            if body is None:
                c.send(CALL, (1, 0, 703), f_len(1, f_len(11, uv(3) + lenv(b'k'))), STORE)
            else:
                c.send(CALL, (1, 0, 703), echo(body), STORE)
            got, eof = drain(c)
            err = [g for g in got if g[0] == ERROR]
            check(err and err[0][2][:2] == [1, 2] and eof, 'list %s: FAILED then closed: %r'
                  % (what, [(g[0], g[2], g[3][:80]) for g in got]))
            r.by.alive('list ' + what)
        # nesting: max_depth (64) levels, the payload's own struct the
        # first (runtime.md): a Tree chain of n is n + 1 levels in the
        # arguments of grow (its handler echoes the seed)
        c, _ = r.node()
        c.send(CALL, (1, 0, 704), f_len(1, tree(63)) + f_varint(2, 0), STORE)
        f = answer_of(c, 1)
        check(r.peer.has('serve grow depth 63'), 'arguments 64 levels deep are served')
        check(f not in (None, 'EOF') and f[0] == ERROR and one(fields(f[3]), 1).startswith(
            b'reply could not be encoded: a value nested deeper than max_depth'),
            'and their echo, 65 levels (the last kids list), is not sent: %r' % (f,))
        bad_args(r, 'arguments 65 levels deep', STORE, 704,
                 f_len(1, tree(64)) + f_varint(2, 0), 'values nested too deeply')
        check(not r.peer.has('serve grow depth 64', 0.2), 'and not served')
    finally:
        r.stop()


# ---- handshake --------------------------------------------------------------

def case_handshake():
    r = Root()
    try:
        svc = f_len(3, w.service('game.Game', 1))
        c, kind, _, _ = register(r.port, 'many', services=[svc] * 4097)
        check(kind == 'EOF', '4097 services: malformed')
        check(r.peer.has('bad REGISTER: too many services'), 'logged "too many services"')
        _, kind, _, _ = register(r.port, 'many', services=[svc] * 4096)
        check(kind == WELCOME, '4096 services: registered')
        for name, code in (('', 3), ('x' * 255, None), ('a\u202eb', 3), ('a\u2028b', 3),
                           ('a\x7fb', 3), ('a\u0085b', 3), ('é' * 128, 3), ('é' * 127, None)):
            _, kind, wf, _ = register(r.port, name)
            if code is None:
                check(kind == WELCOME, 'name of %d bytes registers' % len(name.encode()))
            else:
                check(kind == REFUSED and one(wf, 1) == code,
                      'name %r refused %d: %s' % (name[:6], code, wf))
        # a REGISTER name that is not UTF-8: refused 3, not malformed
        c = r.unregistered()
        c.send(REGISTER, payload=f_varint(1, 2) + f_len(2, b'\xff\xfe'))
        f = c.recv(3)
        check(f not in (None, 'EOF') and f[0] == REFUSED and
              one(fields(f[3]), 2) == b'a node name must be valid UTF-8',
              'a name that is not UTF-8: REFUSED "a node name must be valid UTF-8": %r' % (f,))
        r.by.alive('handshake')
    finally:
        r.stop()


# ---- liveness ---------------------------------------------------------------

def case_liveness():
    r = Root(env={'EMBER_WIRE_HB': '1'})
    try:
        # a PING flood is answered, one PONG each, in order with a call
        c, _ = r.node()
        n = 50000
        c.s.sendall(frame(PING) * n + frame(CALL, (1, 0, 707), svc=STORE))
        pongs, f = 0, None
        end = time.time() + 10 * SLOW
        while time.time() < end:
            f = c.recv(end - time.time())
            if f in (None, 'EOF') or f[0] != PONG:
                break
            pongs += 1
        check(pongs == n and f not in (None, 'EOF') and f[0] == REPLY,
              'a PING flood: %d PONGs of %d, then the reply: %r' % (pongs, n, f))
        r.by.alive('PING flood')
        # a registered peer that goes silent (answers no PING): lost
        # after dead_after_ms (900 here), with the reason logged
        c, name = r.node()
        t0 = time.time()
        got, eof = drain(c, 3)
        took = time.time() - t0
        check(eof and any(g[0] == PING for g in got), 'PINGed, then closed')
        # dead_after_ms is the peer's own, not scaled by SLOW: only the upper
        # bound (the sweep's lateness on a slow build) is
        check(0.8 < took < 2.0 * SLOW, 'closed after about dead_after_ms: %.2f s' % took)
        check(r.peer.wait_line(lambda l: 'closed: peer silent for' in l and '(heartbeat)' in l),
              'logged "peer silent for N ms (heartbeat)"')
        # a child whose PING went unanswered is replaced by a newcomer
        # under its name; a live one is not
        old, name = r.node()
        t_reg = time.time()    # just after the root took its REGISTER
        _, kind, wf, _ = register(r.port, name)
        check(kind == REFUSED and one(wf, 1) == 1, 'a live child keeps its name')
        pinged = None
        while pinged is None:
            f = old.recv(2)
            if f in (None, 'EOF'):
                break
            if f[0] == PING:
                pinged = time.time()
        check(pinged is not None, 'the idle child is PINGed')
        # newcomers until one gets in: refused until the old child, PINGed,
        # has been silent for twice heartbeat_ms (600 ms), then it goes
        end, kinds = time.time() + 3 * SLOW, []
        while time.time() < end and (not kinds or kinds[-1][0] != WELCOME):
            _, kind, _, _ = register(r.port, name)
            kinds.append((kind, time.time() - t_reg))
        check(kinds and kinds[-1][0] == WELCOME, 'a child silent past its unanswered PING is replaced')
        check(kinds[-1][1] >= 0.55 and all(k == REFUSED for k, _ in kinds[:-1]),
              'not before it was silent for twice heartbeat_ms: %d refused, in after %.3f s'
              % (len(kinds) - 1, kinds[-1][1]))
        check(r.peer.has('replaced by a new registration'), 'logged as replaced')
        check(drain(old, 1)[1], 'the old connection is closed')
        # half-closed: a node that sends a call and shuts its side down
        c, name = r.node()
        c.send(CALL, (1, 0, 301), f_str(1, 'half'), DB)
        c.s.shutdown(socket.SHUT_WR)
        got, eof = drain(c)
        check(eof, 'a half-closed peer is closed')
        check(r.peer.has('leave %s peer closed the connection' % name), 'as "peer closed the connection"')
        r.by.alive('half-closed')
    finally:
        r.stop()


# ---- slow reader ------------------------------------------------------------

def queued_at_pause(peer):
    line = peer.wait_line(lambda l: 'is not reading (' in l and l not in peer.lines_used, 5)
    if not line:
        return None
    peer.lines_used.add(line)
    return int(line.split('is not reading (')[1].split()[0])


def case_slow_reader():
    cap = 1 << 20
    r = Root(env={'EMBER_WIRE_HB': '1', 'EMBER_WIRE_OUT': str(cap), 'EMBER_LOG': 'debug'})
    r.peer.lines_used = set()
    try:
        # a peer that reads late gets every answer, in order: the calls
        # left unread while its output was over the cap are served once
        # it drains
        c, name = r.node()
        n = 100000
        c.s.sendall(b''.join(frame(CALL, (i, 0, 1), b'', 0x1a2b3c4d) for i in range(1, n + 1)) +
                    frame(CALL, (n + 1, 0, 707), svc=STORE))
        check(queued_at_pause(r.peer) is not None, 'the root stops reading from it')
        ids, f = [], None
        end = time.time() + 10 * SLOW
        while time.time() < end:
            f = c.recv(end - time.time())
            if f in (None, 'EOF'):
                break
            if f[0] == PING:
                c.send(PONG)
            elif f[0] == ERROR:
                ids.append(f[2][0])
            else:
                break
        check(ids == list(range(1, n + 1)) and f not in (None, 'EOF') and f[0] == REPLY and
              f[2] == [n + 1], 'once it reads, every answer in order: %d of %d, then %r'
              % (len(ids), n, f))
        # NO_METHOD answers are larger than the calls: many small calls,
        # never read, after one large frame (so the root reads big)
        c, name = r.node()
        c.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        call = frame(CALL, (1, 0, 1), b'', 0x1a2b3c4d)
        big = frame(PING, payload=bytes(1 << 20))
        c.s.settimeout(5 * SLOW)
        sent = 0
        try:
            for _ in range(8):
                c.s.sendall(big + call * 300000)
                sent += 1
        except (socket.timeout, OSError):
            pass
        q = queued_at_pause(r.peer)
        check(q is not None, 'the root stops reading from a peer that does not read')
        if q is not None:
            bound = cap + (1 << 20) + 200
            check(q <= bound, 'the root queued %d bytes for it, at most %d '
                  '(out_high_water + 1 MiB + a frame)' % (q, bound))
        line = r.peer.wait_line(lambda l: 'closed: peer not reading' in l, 5)
        check(line is not None and ' warn: ' in line, 'then closed as not reading: %s' % line)
        r.by.alive('slow reader')
    finally:
        r.stop()


# ---- limits -----------------------------------------------------------------

def case_limits():
    r = Root()
    try:
        # max_outstanding (65536): ONEWAYs to db.save of player 99, a
        # two-way method whose handler defers, stay in flight; the call
        # that would make 65537 disconnects
        c, _ = r.node()
        held = frame(ONEWAY, (0, 303), f_varint(1, 99) + f_len(2, b''), DB)
        c.s.sendall(held * 65535 + frame(CALL, (1, 0, 707), svc=STORE))
        f = answer_of(c, 1, timeout=10)
        check(f not in (None, 'EOF') and f[0] == REPLY, '65536 calls in flight: served: %r' % (f,))
        c.s.sendall(held + frame(CALL, (2, 0, 707), svc=STORE))
        r.expect_drop(c, 'the 65537th call in flight',
                      'peer exceeded max_outstanding (65536 calls in flight)')
    finally:
        r.stop()


# ---- the node's side ---------------------------------------------------------

def case_node():
    # a Python root against a real node: each violation closes the
    # connection with its reason (in GOODBYE once registered), reported
    # through the state callback; the node comes back with its backoff
    ls = w.listener()
    peer = w.Peer('node', '127.0.0.1:%d' % ls.getsockname()[1], 'c-node')

    def hello(c, vmin=2, vmax=2):
        c.send(HELLO, payload=f_str(1, 'EMBR') + f_varint(2, vmin) + f_varint(3, vmax) +
               f_len(4, os.urandom(32)))

    def welcomed():
        c = Conn(ls.accept()[0])
        hello(c)
        f = c.recv(5)
        check(f not in (None, 'EOF') and f[0] == REGISTER, 'REGISTER')
        c.send(WELCOME, payload=f_varint(1, 3))
        return c

    def dropped(c, what, why, goodbye=True):
        got, eof = drain(c)
        check(eof, '%s: the node closes' % what)
        if goodbye:
            bye = [g for g in got if g[0] == GOODBYE]
            check(bye and one(fields(bye[-1][3]), 1) == why.encode(),
                  '%s: GOODBYE says why: %s' % (what, [g[3] for g in bye]))
        check(peer.has('state lost ' + why), '%s: reported "%s"' % (what, why))

    try:
        c = welcomed()
        c.send(REPLY, (1 << 23,), b'')
        dropped(c, 'a REPLY never asked', 'protocol violation: answer to a call id never issued')
        c = welcomed()
        c.s.sendall(raw_frame(bytes([14])))
        dropped(c, 'kind 14', 'bad frame: unknown frame kind')
        c = welcomed()
        c.send(CALL, (1, 0, 601), b'\x08', w.GAME)
        dropped(c, 'bad arguments', 'undecodable arguments for game.Game.enter: '
                'field has the wrong wire type')
        c = Conn(ls.accept()[0])
        c.s.sendall(struct.pack('<I', (1 << 20) + 1))
        dropped(c, '1 MiB + 1 before HELLO', 'bad frame: frame of 1048577 bytes, larger '
                'than the limit before registration (1048576)', goodbye=False)
        c = Conn(ls.accept()[0])
        c.send(PING)
        f = c.recv(3)
        check(f not in (None, 'EOF') and f[0] == PONG, 'the node answers a PING before HELLO')
        hello(c)
        f = c.recv(3)
        c.send(REFUSED, payload=f_varint(1, 1) + f_len(2, b'\xff'))
        dropped(c, 'REFUSED not UTF-8', 'bad REFUSED: ', goodbye=False)
        c = Conn(ls.accept()[0])
        hello(c, 3, 1)
        dropped(c, 'HELLO 3..1', 'no common protocol version (root 3..1, node 2..3)',
                goodbye=False)
        c = Conn(ls.accept()[0])
        hello(c)
        f = c.recv(3)
        c.send(CALL, (1, 0, 601), b'', w.GAME)
        dropped(c, 'CALL before WELCOME', 'protocol violation: CALL before registration',
                goodbye=False)
        check(not peer.has('serve enter', 0.2), 'and no handler ran')
    finally:
        peer.stop()
        ls.close()


CASES = [case_frames, case_ordering, case_values, case_handshake, case_liveness,
         case_slow_reader, case_limits, case_node]


def main():
    only = sys.argv[2:]
    for case in CASES:
        if only and case.__name__[5:] not in only:
            continue
        before = len(w.failures)
        try:
            case()
        except Exception as e:  # a broken case is a failure, not a crash
            import traceback
            traceback.print_exc()
            w.failures.append('%s: %r' % (case.__name__, e))
        print('%s %s' % ('ok  ' if len(w.failures) == before else 'FAIL', case.__name__[5:]))
    if w.failures:
        print('test-wire attacks: %d check(s) failed' % len(w.failures))
        sys.exit(1)
    print('test-wire attacks: all %d cases passed' % len(CASES))


if __name__ == '__main__':
    main()
