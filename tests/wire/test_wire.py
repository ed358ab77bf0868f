#!/usr/bin/python3
"""ember's wire protocol from its documentation alone.

A node and a root written here in plain Python 3 (no libember, no generated
code) from docs/protocol.md and docs/idl.md, against a real ember root and
node (tests/wire/peer.c, which serves and calls idl/db.idl, idl/game.idl and
tests/idl/shapes.idl through generated code). Each case checks what the
documents promise, on the bytes:

  handshake      HELLO, REGISTER and WELCOME as documented (services as
                 repeated fields, fingerprints and service ids), the name
                 and version refusals
  secret         the HMAC proofs both ways, computed as documented; wrong
                 ones refused ("bad credentials") by the root and the node
  calls_to_root  CALL/REPLY/ERROR of every status the root can send,
                 NO_METHOD's three forms, a raised error, ONEWAY to a
                 two-way method, CALL to a oneway one, a call id already in
                 flight, CANCEL, refs with their DECREF counts, PING
  calls_to_node  the root calls the Python node: replies, a raised error,
                 every ERROR code mapped as documented, a timeout's CANCEL
  values         list and map elements of every kind (shapes.Containers,
                 echoed byte for byte), scalars at their extremes, a zero
                 return value (sent, not left out)
  decoding       a tag sent twice (the last wins, whole), a known tag of
                 the wrong wire type, tags 0 and 2^29 (malformed)
  refs_malformed a ref to object 0, or home to an object never exported:
                 malformed
  root           a real node registers with the Python root, is refused
                 "name in use" and retries, calls and is called, PINGs on
                 the root's heartbeat, leaves on GOODBYE with its reason
  welcome_defaults  a WELCOME without (or with 0) heartbeat_ms and
                 dead_after_ms: the node keeps its own

  python3 tests/wire/test_wire.py build/bin/wire-peer
"""
import hashlib
import hmac
import os
import queue
import socket
import struct
import subprocess
import sys
import threading
import time

PEER = sys.argv[1] if len(sys.argv) > 1 else 'build/bin/wire-peer'
SLOW = float(os.environ.get('EMBER_TEST_SLOW', '1') or 1)

# ---- the protocol, from docs/protocol.md ---------------------------------

HELLO, REGISTER, WELCOME, REFUSED, CALL, ONEWAY, REPLY, ERROR, CANCEL, \
    DECREF, PING, PONG, GOODBYE = range(1, 14)
NAMES = ['?', 'HELLO', 'REGISTER', 'WELCOME', 'REFUSED', 'CALL', 'ONEWAY',
         'REPLY', 'ERROR', 'CANCEL', 'DECREF', 'PING', 'PONG', 'GOODBYE']
HEADER = {CALL: 3, ONEWAY: 2, REPLY: 1, ERROR: 3, CANCEL: 1, DECREF: 2}
REFS = 0x80  # version 3: in the kind of a CALL..ERROR that ends with its table of refs


def fnv32(s):
    h = 0x811c9dc5
    for b in s.encode():
        h = ((h ^ b) * 0x01000193) & 0xffffffff
    return h


def fnv64(s):
    h = 0xcbf29ce484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return h


def uv(n):
    out = bytearray()
    while True:
        b, n = n & 0x7f, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def zz(n):
    return (n << 1) ^ (n >> 63) if n < 0 else n << 1


def unzz(n):
    return (n >> 1) ^ -(n & 1)


def rv(buf, i):
    n = shift = 0
    for _ in range(10):
        b = buf[i]
        i += 1
        n |= (b & 0x7f) << shift
        shift += 7
        if not b & 0x80:
            return n, i
    raise ValueError('varint too long')


def f_varint(tag, n):
    return uv(tag << 3) + uv(n)


def f_len(tag, data):
    return uv(tag << 3 | 2) + uv(len(data)) + data


def f_str(tag, s):
    return f_len(tag, s.encode())


def f_f32(tag, x):
    return uv(tag << 3 | 5) + struct.pack('<f', x)


def f_f64(tag, x):
    return uv(tag << 3 | 1) + struct.pack('<d', x)


def fields(buf):
    """A struct's fields: {tag: [value, ...]} in wire order."""
    out, i = {}, 0
    while i < len(buf):
        key, i = rv(buf, i)
        wt = key & 7
        if wt == 0:
            v, i = rv(buf, i)
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        elif wt == 2:
            n, i = rv(buf, i)
            v, i = bytes(buf[i:i + n]), i + n
        else:
            raise ValueError('wire type %d' % wt)
        out.setdefault(key >> 3, []).append(v)
    return out


def one(d, tag, default=None):
    v = d.get(tag)
    return v[-1] if v else default


def lst(elems):
    """A list value: count, then the elements as they are."""
    return uv(len(elems)) + b''.join(elems)


def lenv(b):
    """A length-delimited element: a string, bytes or nested value."""
    return uv(len(b)) + b


def service(name, fp):
    return f_str(1, name) + f_varint(2, fp)


def proof(secret, root_nonce, node_nonce, name):
    return hmac.new(secret, b'ember-register-v1' + root_nonce + node_nonce +
                    name.encode(), hashlib.sha256).digest()


def root_proof(secret, node_nonce, root_nonce, child_id):
    return hmac.new(secret, b'ember-welcome-v1' + node_nonce + root_nonce +
                    struct.pack('<I', child_id), hashlib.sha256).digest()


# Canonical texts (docs/idl.md, "Fingerprints") of the services used.
GAME_TEXT = """service game.Game
601 enter(1:game.Who,2:client.EnterReq) -> client.RoomState raises(client.Refused)
602 move(1:game.Who,2:client.MoveReq) -> client.Pos raises(client.Refused)
603 chat(1:game.Who,2:client.ChatReq) -> client.ChatRep raises(client.Refused)
604 leave(1:game.Who,2:client.LeaveReq) -> client.LeaveRep raises(client.Refused)
"""
DB_TEXT = """service db.Db
301 login(1:string) -> db.Player
302 position(1:u64) -> client.Pos
303 save(1:u64,2:client.Pos) -> void
304 logout(1:u64,2:optional client.Pos) -> client.Pos
"""
STORE_TEXT = """service shapes.Store
701 get(1:string) -> shapes.Scalars raises(common.Denied,shapes.NotFound)
702 put(1:string,2:shapes.Scalars) -> void
703 echo(1:shapes.Containers) -> shapes.Containers
704 grow(1:shapes.Tree,2:u32) -> shapes.Tree
705 oneway forget(1:string)
706 watch(1:ref<shapes.Watcher>) -> void
707 count() -> u64
708 name() -> string raises(shapes.Empty2)
709 opt(1:shapes.Optionals,2:list<ref<shapes.Watcher>>) -> shapes.Optionals
710 oneway stop()
711 find(1:string,2:optional u32,3:optional string,4:optional shapes.Inner,5:optional list<u32>) -> string
"""
WATCHER_TEXT = """service shapes.Watcher
801 oneway progress(1:u32,2:u32)
802 ping(1:string) -> u32
"""
GAME, DB, STORE, WATCHER = (fnv32(n) for n in
                            ('game.Game', 'db.Db', 'shapes.Store', 'shapes.Watcher'))
REFUSED_ID = fnv32('client.Refused')


class Conn:
    def __init__(self, sock):
        self.s = sock
        self.buf = b''

    def send(self, kind, hdr=(), payload=b'', svc=None):
        body = bytes([kind])  # kind | REFS: the payload ends with its table
        if svc is not None:
            body += struct.pack('<I', svc)
        body += b''.join(uv(h) for h in hdr) + payload
        self.s.sendall(struct.pack('<I', len(body)) + body)

    def recv(self, timeout):
        """(kind, service, header, payload), 'EOF', or None at the deadline."""
        end = time.time() + timeout * SLOW
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack('<I', self.buf[:4])[0]
                if len(self.buf) >= 4 + n:
                    body, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
                    # a frame with a table of refs comes as its plain kind
                    kind, i, svc = body[0] & ~REFS, 1, None
                    if kind in (CALL, ONEWAY):
                        svc, i = struct.unpack('<I', body[1:5])[0], 5
                    hdr = []
                    for _ in range(HEADER.get(kind, 0)):
                        v, i = rv(body, i)
                        hdr.append(v)
                    return kind, svc, hdr, body[i:]
            left = end - time.time()
            if left <= 0:
                return None
            self.s.settimeout(left)
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                return None
            except OSError:
                return 'EOF'
            if not d:
                return 'EOF'
            self.buf += d


# ---- the real peer ---------------------------------------------------------

class Peer:
    def __init__(self, *args, env=None):
        e = dict(os.environ, EMBER_LOG='info')
        e.update(env or {})
        self.p = subprocess.Popen([PEER] + list(args), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, env=e)
        self.q = queue.Queue()
        self.lines = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.q.put(line.rstrip('\n'))

    def wait_line(self, pred, timeout=5):
        """The first line (seen before or now) for which pred holds."""
        for line in self.lines:
            if pred(line):
                return line
        end = time.time() + timeout * SLOW
        while time.time() < end:
            try:
                line = self.q.get(timeout=max(0.01, end - time.time()))
            except queue.Empty:
                break
            self.lines.append(line)
            if pred(line):
                return line
        return None

    def has(self, text, timeout=5):
        return self.wait_line(lambda l: text in l, timeout)

    def stop(self):
        self.p.kill()
        self.p.wait()


failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print('  check failed: %s' % what)
    return cond


def listener():
    """A loopback listening socket on a port of the system's choosing, for a
    Python root that a real node connects to."""
    ls = socket.socket()
    ls.bind(('127.0.0.1', 0))
    ls.listen(4)
    ls.settimeout(5 * SLOW)
    return ls


def start_root(*args, env=None):
    peer = Peer('root', *args, env=env)
    line = peer.wait_line(lambda l: l.startswith('port '))
    if not line:
        raise RuntimeError('the root did not start: %s' % peer.lines)
    return peer, int(line.split()[1])


def register(port, name, secret=None, version=2, services=None, sign_name=None):
    """Connects and registers as documented; (conn, kind, fields, hello)."""
    c = Conn(socket.create_connection(('127.0.0.1', port)))
    f = c.recv(5)
    assert f not in (None, 'EOF') and f[0] == HELLO, f
    hello = fields(f[3])
    reg = f_varint(1, version) + f_str(2, name)
    if services is None:
        services = [f_len(3, service('game.Game', fnv64(GAME_TEXT))),
                    f_len(3, service('shapes.Watcher', fnv64(WATCHER_TEXT)))]
    reg += b''.join(services)
    node_nonce = os.urandom(32)
    if secret:
        reg += f_len(4, proof(secret, one(hello, 4), node_nonce, sign_name or name))
        reg += f_len(5, node_nonce)
    c.send(REGISTER, payload=reg)
    f = c.recv(5)
    if f in (None, 'EOF'):
        return c, f, {}, hello
    w = fields(f[3])
    if f[0] == WELCOME and secret:
        check(one(w, 5) == root_proof(secret, node_nonce, one(hello, 4), one(w, 1)),
              'WELCOME carries root_proof as documented')
    return c, f[0], w, hello


def answer_of(c, cid, timeout=3, serve=None):
    """Reads until the REPLY or ERROR of cid; serve(frame) handles the rest."""
    end = time.time() + timeout * SLOW
    while time.time() < end:
        f = c.recv(end - time.time())
        if f is None or f == 'EOF':
            return f
        if f[0] == PING:
            c.send(PONG)
        elif f[0] in (REPLY, ERROR) and f[2][0] == cid:
            return f
        elif serve:
            serve(f)
    return None


# ---- cases -----------------------------------------------------------------

def case_handshake():
    peer, port = start_root()
    try:
        c, kind, w, hello = register(port, 'wire-node')
        check(one(hello, 1) == b'EMBR', 'HELLO magic')
        check(one(hello, 2) == 2 and one(hello, 3) == 3, 'HELLO versions 2..3')
        check(len(one(hello, 4, b'')) == 32, 'HELLO nonce of 32 bytes')
        check(one(hello, 6) == 16 << 20 and one(hello, 7) == 64,
              "HELLO says the root's max_frame and max_depth")
        # "Service services (repeated)": one LEN field per service, same tag
        svcs = {one(fields(s), 1): one(fields(s), 2) for s in hello.get(5, [])}
        check(svcs == {b'db.Db': fnv64(DB_TEXT), b'game.Game': fnv64(GAME_TEXT),
                       b'shapes.Store': fnv64(STORE_TEXT)},
              'HELLO lists the services, fingerprints as docs/idl.md computes them: %s' % svcs)
        check(kind == WELCOME, 'registered')
        check(one(w, 1, 0) >= 1 and one(w, 2) == 2000 and one(w, 3) == 6000,
              'WELCOME child id and heartbeat settings')
        check(len(w.get(4, [])) == 3, 'WELCOME lists the services again')
        check(peer.has('join wire-node'), 'the root saw the node join')
        _, kind, w, _ = register(port, 'wire-node')
        check(kind == REFUSED and one(w, 1) == 1 and
              one(w, 2) == b'name in use: a child named "wire-node" is registered and alive',
              'a live name: REFUSED 1 "name in use: ...": %s' % w)
        # a list<Service> is not the repeated form
        svc = service('game.Game', fnv64(GAME_TEXT))
        c2, kind, _, _ = register(port, 'wire-list', services=[f_len(3, lst([lenv(svc)]))])
        check(kind == 'EOF', 'REGISTER with services as a list<Service> is malformed')
        check(peer.has('bad REGISTER'), 'logged as a bad REGISTER')
        for name, version, code in (('bad\x01', 2, 3), ('x' * 256, 2, 3),
                                    ('v1', 1, 2), ('v4', 4, 2)):
            _, kind, w, _ = register(port, name, version=version)
            check(kind == REFUSED and one(w, 1) == code,
                  'REFUSED %d for %r version %d: %s' % (code, name[:8], version, w))
        _, kind, w, _ = register(port, 'v1', version=1)
        check(one(w, 2) == b'protocol version 1 not supported (2..3)',
              'the documented version refusal')
    finally:
        peer.stop()


def case_secret():
    secret = b'cluster secret'
    peer, port = start_root(secret.decode())
    try:
        for how, kw in (('no proof', {}),
                        ('wrong secret', {'secret': b'other'}),
                        ('proof for another name', {'secret': secret, 'sign_name': 'x'})):
            _, kind, w, _ = register(port, 'wire-node', **kw)
            check(kind == REFUSED and one(w, 1) == 4 and one(w, 2) == b'bad credentials',
                  '%s: REFUSED 4 "bad credentials": %s' % (how, w))
        # the proof comes before the name's rules, the version before the proof
        _, kind, w, _ = register(port, 'bad\x01', secret=secret)
        check(kind == REFUSED and one(w, 1) == 3, 'a proved bad name is refused 3')
        _, kind, w, _ = register(port, 'bad\x01', secret=b'other')
        check(kind == REFUSED and one(w, 1) == 4, 'an unproved bad name is refused 4')
        _, kind, w, _ = register(port, 'wire-node', secret=secret)
        check(kind == WELCOME and len(one(w, 5, b'')) == 32, 'registered with proofs')
    finally:
        peer.stop()


def case_calls_to_root():
    peer, port = start_root()
    c, kind, _, _ = register(port, 'wire-node')
    ids = iter(range(1, 1000))

    def call(svc, mid, args, oid=0, cid=None):
        cid = next(ids) if cid is None else cid
        c.send(CALL, (cid, oid, mid), args, svc)
        return cid

    try:
        # a struct reply: db.Player { id, name, pos, logins, created }
        f = answer_of(c, call(DB, 301, f_str(1, 'zoë')))
        p = fields(one(fields(f[3]), 1))
        pos = fields(one(p, 3))
        check((one(p, 1), one(p, 2), unzz(one(pos, 1)), unzz(one(pos, 2)), one(p, 4), one(p, 5))
              == (42, 'zoë'.encode(), 3, -4, 7, 1), 'login reply decodes: %s' % p)
        # every status a handler can send
        for player, code, msg in ((1, 2, b'boom 1'), (2, 6, b'unavail'),
                                  (3, 7, b'nomethod'), (4, 8, b'limit')):
            f = answer_of(c, call(DB, 302, f_varint(1, player)))
            check(f[0] == ERROR and f[2][1:] == [code, 0] and one(fields(f[3]), 1) == msg,
                  'ERROR %d, error id 0, {1: message}: %s' % (code, f))
        # optional parameter given and left out
        f = answer_of(c, call(DB, 304, f_varint(1, 11) + f_len(2, f_varint(1, zz(-7)) + f_varint(2, zz(8)))))
        check(fields(one(fields(f[3]), 1)) == {1: [zz(-7)], 2: [zz(8)]}, 'optional pos given')
        f = answer_of(c, call(DB, 304, f_varint(1, 12)))
        check(fields(one(fields(f[3]), 1)) == {1: [zz(-1)], 2: [zz(-1)]}, 'optional pos absent')
        check(peer.has('serve logout 12 nopos'), 'the handler saw it absent')
        # NO_METHOD: unknown object, service not served, unknown method
        f = answer_of(c, call(DB, 301, b'', oid=7))
        check(f[2][1:] == [7, 0] and one(fields(f[3]), 1) == b'no object 7 on this connection',
              'no object: %r' % (f,))
        f = answer_of(c, call(0x1a2b3c4d, 1, b''))
        d = fields(f[3])
        check(f[2][1:] == [7, 0x1a2b3c4d] and one(d, 2) == 0 and
              one(d, 1) == b'object 0 does not serve service 1a2b3c4d', 'service not served: %r' % (f,))
        f = answer_of(c, call(GAME, 999, b''))
        check(f[2][1:] == [7, 0] and one(fields(f[3]), 1) == b'no method 999 in game.Game',
              'no method: %r' % (f,))
        # a raised error: its id and its struct
        f = answer_of(c, call(GAME, 601, f_len(1, f_varint(1, 1) + f_str(3, 'ann')) + f_len(2, b'')))
        d = fields(f[3])
        check(f[2][1:] == [1, REFUSED_ID] and unzz(one(d, 1)) == -5 and one(d, 2) == b'no room 0',
              'RAISED client.Refused: %r' % (f,))
        # unknown fields of every wire type are skipped
        f = answer_of(c, call(DB, 301, f_str(1, 'skip') + f_varint(900, 5) + f_f64(901, 1.5) +
                              f_f32(902, 2.5) + f_len(903, b'xx')))
        check(f[0] == REPLY, 'unknown fields skipped')
        # ONEWAY to a two-way method: served, never answered
        c.send(ONEWAY, (0, 301), f_str(1, 'oneway-login'), DB)
        check(peer.has('serve login oneway-login'), 'ONEWAY to a two-way method is served')
        # CALL to a oneway method: an empty REPLY at once
        f = answer_of(c, call(STORE, 705, f_str(1, 'k')))
        check(f[0] == REPLY and f[3] == b'', 'CALL to a oneway method: empty REPLY')
        # a call id in flight, then CANCEL: the held call's answer is not sent
        held = call(DB, 303, f_varint(1, 99) + f_len(2, b''))
        check(peer.has('serve save 99'), 'the held call is served')
        call(DB, 303, f_varint(1, 5) + f_len(2, b''), cid=held)
        f = answer_of(c, held)
        check(f[0] == ERROR and f[2][1] == 2 and
              one(fields(f[3]), 1) == b'call id %d is already in flight' % held, 'id in flight: %r' % (f,))
        c.send(CANCEL, (held,))
        extra = []
        f = answer_of(c, call(DB, 304, f_varint(1, 13)), serve=extra.append)
        check(peer.has('held cancelled=1'), 'the callee marked the call cancelled')
        check(f[0] == REPLY and not extra, 'no answer for the cancelled call: %s' % extra)
        # refs: our object 1 passed twice and another once; each DECREF counts
        seen = []

        def serve(f):
            seen.append(f)
            if f[0] == CALL and f[1] == WATCHER:
                c.send(REPLY, (f[2][0],), f_varint(1, 77))
        f = answer_of(c, call(STORE, 709, f_len(1, b'') + f_len(2, lst([uv(1 << 1), uv(1 << 1), uv(2 << 1)]))),
                      serve=serve)
        check(f[0] == REPLY, 'opt with refs answered')
        f = answer_of(c, call(STORE, 706, f_varint(1, 1 << 1)), serve=serve)
        check(f[0] == REPLY and peer.has('ping outcome ok 77'), 'the root called our object back')
        end = time.time() + 2 * SLOW
        while time.time() < end and sum(1 for x in seen if x[0] == DECREF) < 3:
            x = c.recv(0.2)
            if x not in (None, 'EOF'):
                seen.append(x)
        kinds = [(NAMES[x[0]], x[1], x[2]) for x in seen]
        check(('ONEWAY', WATCHER, [1, 801]) in kinds and ('CALL', WATCHER, [kinds[[k[0] for k in kinds].index('CALL')][2][0], 1, 802]) in kinds,
              'ONEWAY and CALL address our object 1 with its service: %s' % kinds)
        dec = sorted(tuple(x[2]) for x in seen if x[0] == DECREF)
        check(dec == [(1, 1), (1, 2), (2, 1)], 'DECREF(oid, count) per reception: %s' % dec)
        c.send(CANCEL, (777,))
        c.send(DECREF, (55, 1))
        c.send(PING, payload=b'ignored')
        f = c.recv(2)
        check(f not in (None, 'EOF') and f[0] == PONG,
              'CANCEL and DECREF of unknown ids ignored; PING (with a payload) answered PONG')
        c.send(GOODBYE, payload=f_str(1, 'wire says bye') + f_varint(2, 5))
        check(c.recv(2) == 'EOF', 'the root closes after GOODBYE')
        check(peer.has('leave wire-node peer said goodbye: wire says bye'), 'the reason reached the root')
    finally:
        peer.stop()


def case_calls_to_node():
    peer, port = start_root()
    c, kind, _, _ = register(port, 'py-calls')
    seen, stalled = [], []
    try:
        end = time.time() + 4 * SLOW
        while time.time() < end and not any(f[0] == CANCEL for f in seen):
            f = c.recv(0.3)
            if f in (None, 'EOF'):
                continue
            seen.append(f)
            kind, svc, hdr, pl = f
            if kind == PING:
                c.send(PONG)
            if kind != CALL:
                continue
            cid, oid, mid = hdr
            a = fields(pl)
            who, req = fields(one(a, 1, b'')), fields(one(a, 2, b''))
            if mid == 601 and one(req, 1, 0):
                st = (f_varint(1, one(req, 1)) + f_len(2, f_varint(1, zz(1)) + f_varint(2, zz(-2))) +
                      f_len(3, lst([lenv(b'ann'), lenv(b'py!')])) + f_str(4, 'py-node'))
                c.send(REPLY, (cid,), f_len(1, st))
            elif mid == 601:
                c.send(ERROR, (cid, 1, REFUSED_ID), f_varint(1, zz(-5)) + f_str(2, 'no room 0 (py)'))
            elif one(who, 2, 0) == 0:
                stalled.append(cid)          # times out: the caller sends CANCEL
            elif one(who, 2) == 12:
                c.send(REPLY, (cid,), f_len(1, f_varint(1, zz(-100)) + f_varint(2, zz(100))))
            else:
                code = one(who, 2) % 13        # 13: ERROR with code 0 (OK)
                c.send(ERROR, (cid, code, 0), f_str(1, 'py code %d' % code))
        check(any(f[0] == CANCEL and f[2] == stalled for f in seen), 'CANCEL of the timed-out call')
        check(peer.has('enter ok room 9 pos 1,-2 n=2 ann py! node py-node'), 'the reply decoded')
        check(peer.has('enter raised 8e5d0498 code -5 why no room 0 (py)'), 'the raised error decoded')
        want = {1: 'failed', 2: 'failed', 3: 'failed', 4: 'failed', 5: 'failed',
                6: 'unavailable', 7: 'no-method', 8: 'limit', 9: 'protocol',
                10: 'failed', 11: 'failed', 13: 'failed'}
        for code, status in want.items():
            check(peer.has('move %d %s' % (code, status), 1), 'ERROR code %d reads %s' % (code, status))
        check(peer.has('move 12 ok -100 100', 1), 'a reply after the errors')
        check(peer.has('move 0 timeout', 1), 'the stalled call timed out')
    finally:
        peer.stop()

def case_values():
    peer, port = start_root()
    c, kind, _, _ = register(port, 'wire-values')
    try:
        # shapes.Containers: every element kind, as section 2 spells it
        inner = lambda d, l: f_varint(1, zz(d)) + f_str(2, l)
        vec = lambda x, y: f_f32(1, x) + f_f32(2, y)
        cont = (f_len(1, lst([uv(1), uv(300), uv(2**32 - 1)])) +
                f_len(2, lst([lenv(lst([uv(1), uv(2)])), lenv(lst([]))])) +
                f_len(3, lst([lenv(b'a'), lenv(b'')])) +
                f_len(4, lst([lenv(b'\0\xff')])) +
                f_len(5, lst([lenv(inner(-3, 'x'))])) +
                f_len(6, lst([lenv(vec(1.5, -2))])) +
                f_len(7, lst([struct.pack('<f', 0.25)])) +
                f_len(8, lst([struct.pack('<d', -1e300)])) +
                f_len(9, lst([uv(1), uv(0)])) +
                f_len(10, lst([uv(zz(-40)), uv(zz(40))])) +
                f_len(11, uv(1) + lenv(b'k') + lenv(inner(7, 'seven'))) +
                f_len(12, uv(1) + uv(5) + lenv(lst([lenv(b't')]))) +
                f_len(13, uv(1) + uv(zz(-9)) + struct.pack('<d', 0.5)) +
                f_len(14, uv(1) + uv(zz(40)) + uv(zz(2))) +
                f_len(15, lst([lenv(uv(1) + lenv(b's') + uv(zz(-1)))])) +
                f_len(16, lst([uv(zz(-2**63))])))
        c.send(CALL, (1, 0, 703), f_len(1, cont), STORE)
        f = answer_of(c, 1)
        check(f not in (None, 'EOF') and f[0] == REPLY, 'echo answered: %r' % (f,))
        check(peer.has('serve echo nums=3 grid=2 names=2 floats=1 flags=2 by_name=1'),
              'the elements decoded')
        check(one(fields(f[3]), 1) == cont, 'echoed byte for byte')
        # shapes.Scalars at their extremes
        sc = (f_varint(1, 1) + f_varint(2, zz(-128)) + f_varint(3, zz(-32768)) +
              f_varint(4, zz(-2**31)) + f_varint(5, zz(-2**63)) + f_varint(6, 255) +
              f_varint(7, 65535) + f_varint(8, 2**32 - 1) + f_varint(9, 2**64 - 1) +
              f_f32(10, 1.5) + f_f64(11, -0.0) + f_str(12, 'é') + f_len(13, b'\0') +
              f_varint(14, zz(-40)) + f_varint(15, zz(2)))
        c.send(CALL, (2, 0, 702), f_str(1, 'k') + f_len(2, sc), STORE)
        f = answer_of(c, 2)
        check(f not in (None, 'EOF') and f[0] == REPLY, 'put answered')
        check(peer.has('serve put k b=1 i8=-128 i16=-32768 i32=-2147483648 '
                       'i64=-9223372036854775808 u8=255 u16=65535 u32=4294967295 '
                       'u64=18446744073709551615 f32=1.5 f64=-0 s=é raw=1 temp=-40 color=2'),
              'the scalars decoded')
        # a zero return value is sent, not left out
        c.send(CALL, (3, 0, 707), b'', STORE)
        f = answer_of(c, 3)
        check(f[3] == b'\x08\x00', 'count() == 0 replies 08 00: %r' % (f,))
        c.send(CALL, (4, 0, 302), f_varint(1, 0), DB)
        f = answer_of(c, 4)
        check(f[3] == b'\x0a\x04\x08\x00\x10\x00', 'a zero Pos is sent whole: %r' % (f,))
    finally:
        peer.stop()


def case_decoding():
    peer, port = start_root()
    try:
        c, kind, _, _ = register(port, 'wire-dec')
        c.send(CALL, (1, 0, 301), f_str(1, 'first') + f_str(1, 'second'), DB)
        f = answer_of(c, 1)
        check(one(fields(one(fields(f[3]), 1)), 2) == b'second', 'the last occurrence wins')
        c.send(CALL, (2, 0, 303), f_varint(1, 1) + f_len(2, f_varint(1, zz(5))) +
               f_len(2, f_varint(2, zz(6))), DB)
        check(answer_of(c, 2)[0] == REPLY and peer.has('serve save 1 0 6'),
              'a struct sent twice is not merged')
        c.send(CALL, (3, 0, 703), f_len(1, f_len(1, lst([uv(1), uv(2)])) + f_len(1, lst([uv(3)]))), STORE)
        check(answer_of(c, 3)[0] == REPLY and peer.has('serve echo nums=1 '),
              'a list sent twice is not concatenated')
        for name, args, why in (('wrong wire type', f_str(1, 'x'), b'field has the wrong wire type'),
                                ('tag 0', uv(0) + uv(1) + f_varint(1, 1), b'field tag out of range'),
                                ('tag 2^29', f_varint(2**29, 1) + f_varint(1, 1), b'field tag out of range')):
            c.send(CALL, (9, 0, 302), args, DB)
            f = answer_of(c, 9)
            check(f not in (None, 'EOF') and f[0] == ERROR and f[2][1] == 2 and
                  one(fields(f[3]), 1) == b'bad arguments: ' + why, '%s: FAILED: %r' % (name, f))
            check(answer_of(c, 0) == 'EOF', '%s: then the connection closes' % name)
            c, kind, _, _ = register(port, 'wire-dec')
        # a 2^29-1 tag is a tag like any other: skipped when unknown
        c.send(CALL, (4, 0, 302), f_varint(2**29 - 1, 1) + f_varint(1, 5), DB)
        check(answer_of(c, 4)[0] == REPLY, 'tag 2^29-1 skipped')
    finally:
        peer.stop()


def case_welcome_defaults():
    # a node whose own heartbeat is 300 / 900 ms; WELCOME leaves both out,
    # then sends them as 0: the node keeps its own; then WELCOME keeps the
    # heartbeat (0) but says dead after 200 ms: the node PINGs before it
    # gives up (at half of it), never silent until dropped
    ls = listener()
    peer = Peer('node', '127.0.0.1:%d' % ls.getsockname()[1], 'c-node',
                env={'EMBER_WIRE_HB': '1'})
    def welcomed(hb):
        # the node's next attempt, registered with WELCOME's fields hb
        c = Conn(ls.accept()[0])
        c.send(HELLO, payload=f_str(1, 'EMBR') + f_varint(2, 2) + f_varint(3, 2) +
               f_len(4, os.urandom(32)))
        f = c.recv(5)
        check(f not in (None, 'EOF') and f[0] == REGISTER, 'REGISTER')
        c.send(WELCOME, payload=f_varint(1, 3) + hb)
        return c

    try:
        for how, hb in (('absent', b''), ('0', f_varint(2, 0) + f_varint(3, 0))):
            c = welcomed(hb)
            t0, ping, end = time.time(), None, None
            while True:
                f = c.recv(3)
                if f is None or f == 'EOF':
                    end = f and time.time() - t0
                    break
                if f[0] == PING and ping is None:
                    ping = time.time() - t0    # not answered: the node gives up
            check(ping is not None and ping < 0.9 * SLOW,
                  '%s: the node PINGs after its own 300 ms: %s' % (how, ping))
            check(end is not None and end < 2 * SLOW,
                  '%s: and closes after its own 900 ms: %s' % (how, end))
        c = welcomed(f_varint(2, 0) + f_varint(3, 200))
        ping = None
        while True:
            f = c.recv(3)
            if f is None or f == 'EOF':
                break
            if f[0] == PING:
                ping = f
        check(ping is not None, 'dead_after_ms 200 under the heartbeat 300: a PING before the close')
    finally:
        peer.stop()
        ls.close()


def case_refs_malformed():
    peer, port = start_root()
    try:
        for name, wire, why in (('object 0 home', 1, b"a ref to the receiver's own exports"),
                                ('never exported', (5 << 1) | 1, b'ref to an object we never exported')):
            c, kind, _, _ = register(port, 'wire-refs')
            c.send(CALL, (1, 0, 706), f_varint(1, wire), STORE)
            f = answer_of(c, 1)
            check(f not in (None, 'EOF') and f[0] == ERROR and f[2][1] == 2 and
                  one(fields(f[3]), 1) == b'bad arguments: ' + why, '%s: FAILED: %r' % (name, f))
            check(answer_of(c, 0) == 'EOF', '%s: then the connection closes' % name)
    finally:
        peer.stop()


def with_table(payload, refs):
    """payload, then its table of refs: (oid, count) pairs and their length."""
    table = b''.join(uv(oid) + uv(n) for oid, n in refs)
    return payload + table + struct.pack('<I', len(table))


def case_ref_tables():
    """Version 3: frames holding the sender's objects list them; the receiver
    counts the list and releases what it never decodes."""
    peer, port = start_root()
    try:
        c, kind, _, _ = register(port, 'wire-v3', version=3)
        check(kind == WELCOME, 'a node of version 3 registers')
        seen = []

        def decrefs():
            return sorted(tuple(x[2]) for x in seen if x[0] == DECREF)

        def wait_decrefs(n):
            end = time.time() + 2 * SLOW
            while time.time() < end and len(decrefs()) < n:
                x = c.recv(0.2)
                if x not in (None, 'EOF'):
                    seen.append(x)
        cid = [0]

        def call(svc, method, payload, refs):
            cid[0] += 1
            c.send(CALL | REFS, (cid[0], 0, method), with_table(payload, refs), svc)
            return answer_of(c, cid[0], serve=seen.append)
        # decoded: objects 1 (twice) and 2, counted from the table
        f = call(STORE, 709, f_len(1, b'') + f_len(2, lst([uv(1 << 1), uv(1 << 1), uv(2 << 1)])),
                 [(1, 2), (2, 1)])
        check(f[0] == REPLY, 'a call with its table of refs answered')
        wait_decrefs(2)
        check(decrefs() == [(1, 2), (2, 1)], 'DECREF per object, counts from the table: %s' % decrefs())
        # never decoded: a method the root lacks, a field login does not know
        f = call(GAME, 999, f_varint(1, 3 << 1), [(3, 1)])
        check(f[0] == ERROR and f[2][1] == 7, 'NO_METHOD: %r' % (f,))
        f = call(DB, 301, f_str(1, 'v3-login') + f_varint(900, 4 << 1), [(4, 1)])
        check(f[0] == REPLY, 'an unknown field with a ref skipped')
        wait_decrefs(4)
        check(decrefs() == [(1, 2), (2, 1), (3, 1), (4, 1)],
              'refs never decoded go back at once: %s' % decrefs())
        # a ref its table does not list is malformed
        c.send(CALL, (99, 0, 706), f_varint(1, 5 << 1), STORE)
        f = answer_of(c, 99)
        check(f not in (None, 'EOF') and f[0] == ERROR and f[2][1] == 2 and
              one(fields(f[3]), 1) == b"bad arguments: a ref its frame's table of refs does not list",
              'a ref not in the table: FAILED: %r' % (f,))
        check(answer_of(c, 0) == 'EOF', 'then the connection closes')
        # ...also a ref the root holds from an earlier frame: watch keeps
        # object 5 while its ping to it waits for our answer
        for name, kind, payload in (
                ('no table', CALL, f_varint(1, 5 << 1)),
                ('another listed', CALL | REFS, with_table(f_varint(1, 5 << 1), [(6, 1)]))):
            c, _, _, _ = register(port, 'wire-v3-' + name.replace(' ', '-'), version=3)
            c.send(CALL | REFS, (1, 0, 706), with_table(f_varint(1, 5 << 1), [(5, 1)]), STORE)
            got, end = [], time.time() + 3 * SLOW
            while time.time() < end and not any(x[0] == CALL for x in got):
                x = c.recv(0.2)
                if x not in (None, 'EOF'):
                    got.append(x)
            check(any(x[0] == CALL and x[1] == WATCHER and x[2][1] == 5 for x in got),
                  '%s: watch holds object 5 and pings it: %r' % (name, got))
            c.send(kind, (2, 0, 706), payload, STORE)
            f = answer_of(c, 2)
            check(f not in (None, 'EOF') and f[0] == ERROR and f[2][1] == 2 and
                  one(fields(f[3]), 1) == b"bad arguments: a ref its frame's table of refs does not list",
                  "%s: a held ref its frame's table does not list: FAILED: %r" % (name, f))
            check(answer_of(c, 0) == 'EOF', '%s: then the connection closes' % name)
        # malformed tables close the connection with the documented reason
        for name, payload, why in (
                ('object 0', with_table(b'', [(0, 1)]), 'its table of refs names object 0'),
                ('count 0', with_table(f_varint(1, 2), [(1, 0)]),
                 'its table of refs counts an object 0 times'),
                ('too many', with_table(f_varint(1, 2), [(1, 9)]),
                 'its table of refs counts more refs than the frame holds'),
                ('cut short', b'\x02' + struct.pack('<I', 9), 'its table of refs is cut short'),
                ('no length', b'\x01', 'its table of refs is cut short')):
            c, kind, _, _ = register(port, 'wire-v3-bad', version=3)
            c.send(CALL | REFS, (1, 0, 706), payload, STORE)
            check(answer_of(c, 1) == 'EOF', '%s: the connection closes' % name)
            check(peer.has('bad frame: ' + why), '%s: logged "%s"' % (name, why))
        # a version 2 connection has no such kinds
        c, kind, _, _ = register(port, 'wire-v2', version=2)
        c.send(CALL | REFS, (1, 0, 706), with_table(f_varint(1, 2), [(1, 1)]), STORE)
        check(answer_of(c, 1) == 'EOF', 'version 2: a kind with the table bit closes')
        check(peer.has('wire-v2') and peer.has('bad frame: unknown frame kind'),
              'logged as an unknown frame kind')
    finally:
        peer.stop()


def case_root():
    secret = b'cluster secret'
    ls = listener()
    peer = Peer('node', '127.0.0.1:%d' % ls.getsockname()[1], 'c-node', secret.decode())

    def accept():
        c = Conn(ls.accept()[0])
        root_nonce = os.urandom(32)
        c.send(HELLO, payload=f_str(1, 'EMBR') + f_varint(2, 2) + f_varint(3, 2) +
               f_len(4, root_nonce) + f_len(5, service('db.Db', fnv64(DB_TEXT))))
        f = c.recv(5)
        r = fields(f[3])
        check(f[0] == REGISTER and one(r, 1) == 2 and one(r, 2) == b'c-node', 'REGISTER')
        check(one(r, 4) == proof(secret, root_nonce, one(r, 5), 'c-node'), 'the node proof as documented')
        check([one(fields(s), 1) for s in r.get(3, [])] == [b'game.Game'], 'its services, repeated')
        return c, root_nonce, one(r, 5)

    def welcome(c, rn, nn, rp=None):
        c.send(WELCOME, payload=f_varint(1, 7) + f_varint(2, 300) + f_varint(3, 900) +
               f_len(4, service('db.Db', fnv64(DB_TEXT))) +
               f_len(5, rp if rp is not None else root_proof(secret, nn, rn, 7)))

    try:
        c, rn, nn = accept()
        welcome(c, rn, nn, rp=bytes(32))
        check(c.recv(2) == 'EOF', 'a wrong root_proof: the node closes')
        check(peer.has('state lost bad credentials: '), 'reason "bad credentials: ..."')
        c, rn, nn = accept()
        c.send(REFUSED, payload=f_varint(1, 1) + f_str(2, 'name in use'))
        check(peer.has('state lost refused by root: name in use'), 'REFUSED reaches the node')
        c, rn, nn = accept()
        welcome(c, rn, nn)
        check(peer.has('registered id 7'), 'registered with the child id of WELCOME')
        calls, t0 = [], time.time()
        while len(calls) < 3 and time.time() - t0 < 3 * SLOW:
            f = c.recv(0.5)
            if f in (None, 'EOF') or f[0] != CALL:
                continue
            cid, oid, mid = f[2]
            a = fields(f[3])
            calls.append((f[1], oid, mid))
            if mid == 301:
                c.send(REPLY, (cid,), f_len(1, f_varint(1, 42) + f_len(2, one(a, 1)) +
                                         f_len(3, f_varint(1, zz(-3)) + f_varint(2, zz(4))) +
                                         f_varint(4, 1) + f_varint(5, 1)))
            else:
                c.send(REPLY, (cid,), f_len(1, one(a, 2, b'')))
        check(calls == [(DB, 0, 301), (DB, 0, 304), (DB, 0, 304)], 'the node called db.Db: %s' % calls)
        check(peer.has('login ok 42 zoë -3,4 1 1'), 'our reply decoded')
        c.send(CALL, (5, 0, 601), f_len(1, f_varint(1, 1) + f_str(3, 'ann')) + f_len(2, f_varint(1, 3)), GAME)
        f = answer_of(c, 5)
        st = fields(one(fields(f[3]), 1))
        check(one(st, 1) == 3 and one(st, 3) == lst([lenv(b'ann'), lenv(b'bob')]) and one(st, 4) == b'c-peer',
              'the node served our call: %s' % st)
        t0 = time.time()
        f = c.recv(3)
        check(f not in (None, 'EOF') and f[0] == PING and time.time() - t0 < 0.9 * SLOW,
              'the node PINGs after the root\'s heartbeat_ms (300)')
        c.send(GOODBYE, payload=f_str(1, 'root drops you\x1b[31m'))
        check(c.recv(2) == 'EOF', 'the node closes on GOODBYE')
        check(peer.has('state lost peer said goodbye: root drops you\\x1b[31m'), 'reason, escaped')
    finally:
        peer.stop()
        ls.close()


CASES = [case_handshake, case_secret, case_calls_to_root, case_calls_to_node, case_values,
         case_decoding, case_refs_malformed, case_ref_tables, case_root, case_welcome_defaults]


def main():
    for case in CASES:
        before = len(failures)
        try:
            case()
        except Exception as e:  # a broken case is a failure, not a crash
            failures.append('%s: %r' % (case.__name__, e))
            print('  exception: %r' % e)
        print('%s %s' % ('ok  ' if len(failures) == before else 'FAIL', case.__name__[5:]))
    if failures:
        print('test-wire: %d check(s) failed' % len(failures))
        sys.exit(1)
    print('test-wire: all %d cases passed' % len(CASES))


if __name__ == '__main__':
    main()
