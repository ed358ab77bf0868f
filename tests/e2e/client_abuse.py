#!/usr/bin/python3
"""client_abuse.py MODE HOST PORT — a game client that misbehaves the way an
attacker would, against net's client port (docs/cluster.md, "The client
protocol"). Prints what the cluster did and exits 0 when it did the right
thing, 1 otherwise.

  badargs  a logged-in player in a room sends ENTER, MOVE, CHAT and LEAVE
           whose payloads are not their request structs (truncated, a
           wrong wire type, an overlong varint, a string that is not
           UTF-8 or holds a NUL, a length past the end, a value out of
           range): each must be answered 400, and then another player in
           the same room (so on the same game node) must still move there
           (not 410: the node must not have lost its link to the gate)
  names    LOGIN with names the cluster cannot keep: longer than 63 bytes
           (also one whose 63rd byte is inside a UTF-8 sequence) must be
           refused 400, and so must names with a control character (C0,
           DEL, C1, U+2028/U+2029, bidirectional marks and overrides), which
           every other player of the room would be shown; a 63-byte name
           logs in, enters, moves, and comes back whole in the room's
           player list
  enters   a player sends two ENTERs at once (net forwards up to
           max_inflight commands of a client), for two rooms whose game
           nodes differ: the second must be refused 409, and a player
           entering the first room later must meet it there (its chat
           delivered to both)
  reenter  a player in a room sends LEAVE and ENTER (the same room) at
           once: the ENTER must be refused 409; after it logged out, a
           player entering that room must be alone there (no one left
           behind on the game node)
  relink   (relink HOST PORT NODE PID LOG) two players in a room on game
           node NODE (process PID); NODE is stopped (SIGSTOP) until the
           gate's log (LOG) says it left, and continued until it joined
           again, the players PINGing meanwhile: each one's next command
           must be 410 and its ENTER must go through (not 409: the node
           must have forgotten the players the gate took out of its
           rooms), the first to enter alone in the room
  full     log in on one connection after another until a LOGIN is
           refused: it must be 503 "too many sessions", after about 4096
           (the gate's sessions); once those connections are closed, a
           LOGIN goes through again
  twice    a player logged in (and in a room) on one connection logs in
           on a second: refused 409 (and not counted as a login by db),
           and once the first logged out the second may log in
  sizes    a player in a room sends a MOVE padded (an unknown field) to
           8000, 9000 and 60000 bytes, and CHATs of 4000 and 4200 bytes:
           within a frame, but what the gate passes on ends near 8 KiB and
           a chat's push near 4 KiB: answered 0, 413, 413, 0, 413, and the
           connection goes on
  short    a frame whose length is under 4 (3, then its 3 bytes, and
           nothing more) and a length over client_MAX_FRAME (its 4 bytes
           alone): each connection must be closed (flood.sh checks net
           logged the bad length, not a login timeout)
  pushids  a logged-in player sends a command with a push's id (9001
           PUSH_CHAT, 9002 PUSH_BYE, 9999): its answer could not be told
           from a push, so net must close the connection without a frame
           for it (logged), and the player may log in again on another
  chatrate (chatrate HOST PORT PER_S BURST: net's chat_per_s and
           chat_burst) a player sends 40 CHATs as fast as net answers them
           in a room with another player: at most BURST plus PER_S a
           second since the first are answered 0 and pushed to the other
           (who gets exactly those, in order), the rest 429 and not pushed;
           the other player's own CHAT right after is answered 0 (the bound
           is per client), and the flooder's next CHAT is answered 0 once a
           token is back (within about 1/PER_S s)
"""
import os
import signal
import socket
import time
import struct
import sys

LOGIN, ENTER, MOVE, CHAT, LEAVE = 1001, 601, 602, 603, 604
mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])


def varint(n):
    out = b''
    while True:
        b, n = n & 0x7f, n >> 7
        if not n:
            return out + bytes([b])
        out += bytes([b | 0x80])


def string(tag, s):
    return varint(tag << 3 | 2) + varint(len(s)) + s


def fields(b):
    """The top-level fields of a protobuf message: {tag: value}."""
    out, i = {}, 0
    while i < len(b):
        k, sh = 0, 0
        while True:
            c = b[i]; i += 1; k |= (c & 0x7f) << sh; sh += 7
            if not c & 0x80:
                break
        v, sh = 0, 0
        while True:
            c = b[i]; i += 1; v |= (c & 0x7f) << sh; sh += 7
            if not c & 0x80:
                break
        if k & 7 == 2:
            v, i = b[i:i + v], i + v
        out[k >> 3] = v
    return out


class Client:
    def __init__(self):
        self.s = socket.create_connection((host, port), timeout=10)
        self.buf = b''
        self.early = []   # replies read while waiting for another command's
        self.pushes = []  # pushes read meanwhile, in order

    def frame(self):
        """The next frame from net: (command, payload)."""
        while len(self.buf) < 4 or len(self.buf) < 4 + struct.unpack('<I', self.buf[:4])[0]:
            d = self.s.recv(65536)
            if not d:
                raise EOFError('net closed the connection')
            self.buf += d
        n, cmd = struct.unpack('<II', self.buf[:8])
        p, self.buf = self.buf[8:4 + n], self.buf[4 + n:]
        return cmd, p

    def call(self, command, payload=b''):
        """(code, message, body) of the reply to command; pushes are
        skipped. payload None: send nothing, take the next reply to command
        (replies to different commands may come in any order)."""
        if payload is not None:
            self.s.sendall(struct.pack('<II', len(payload) + 4, command) + payload)
        for i, (cmd, p) in enumerate(self.early):
            if cmd == command:
                del self.early[i]
                break
        else:
            while True:
                cmd, p = self.frame()
                if cmd == command:
                    break
                if cmd < 9000:
                    self.early.append((cmd, p))
                else:
                    self.pushes.append((cmd, p))
        f = fields(p)
        code = f.get(1, 0)
        return ((code >> 1) ^ -(code & 1), f.get(2, b'').decode(errors='replace'),
                f.get(3, b''))


def expect(what, got, code):
    if got[0] != code:
        print('FAIL: %s: got %s, expected %d' % (what, got, code))
        sys.exit(1)


if mode == 'badargs':
    a, b = Client(), Client()
    expect('login', a.call(LOGIN, string(1, b'abuser')), 0)
    expect('login', b.call(LOGIN, string(1, b'bystander')), 0)
    expect('enter', a.call(ENTER, b'\x08\x05'), 0)
    expect('enter', b.call(ENTER, b'\x08\x05'), 0)
    bad = [(MOVE, b'\x08'), (MOVE, b'\x0b'), (MOVE, b'\x08' + b'\xff' * 10 + b'\x01'),
           (MOVE, b'\x08' + varint(1 << 40)), (CHAT, b'\x0a\x02\xc3\x28'),
           (CHAT, b'\x0a\x03a\x00b'), (CHAT, b'\x0a\x7fabc'), (ENTER, b'\x08'),
           (LEAVE, b'\x0a\x05ab')]
    for command, payload in bad:
        expect('%d %s' % (command, payload.hex()), a.call(command, payload), 400)
    expect("the other player's move after the bad requests", b.call(MOVE, b'\x08\x00'), 0)
    expect("the abuser's own move after them", a.call(MOVE, b'\x08\x00'), 0)
    print('badargs: ok (%d bad requests answered 400; the room stayed on its node)' % len(bad))
elif mode == 'names':
    refused = ['x' * 64, 'a' * 62 + '\u00e9', 'a' * 62 + '\u00e9zz', 'n' * 1000,
               'ev\nil', 'ev\ril', 'ev\x1b[31mil', '\x07', 'ev\tl', 'ev\x7fil',
               'ev\u0085il', 'ev\u009bil', 'ev\u2028il', 'ev\u2029il', 'ev\u202eil',
               'ev\u202ail', 'ev\u200fil', 'ev\u061cil', 'ev\u2066il', 'ev\u2069il']
    for name in refused:
        expect('login as %r' % name[:70], Client().call(LOGIN, string(1, name.encode())), 400)
    c = Client()
    for ok in ('\u00e9l\u00e8ve \u00a0\u05d0\u2030', 'plain name'):
        expect('login as %r' % ok, Client().call(LOGIN, string(1, ok.encode())), 0)
    name = ('b' * 61 + '\u00e9').encode()
    expect('login as a 63-byte name', c.call(LOGIN, string(1, name)), 0)
    got = c.call(ENTER, b'\x08\x06')
    expect('enter with a 63-byte name', got, 0)
    if name not in fields(got[2]).get(3, b''):
        print('FAIL: the room does not list the 63-byte name whole: %r' % got[2])
        sys.exit(1)
    expect('move with a 63-byte name', c.call(MOVE, b'\x08\x00'), 0)
    print('names: ok (%d names refused 400; a 63-byte one plays)' % len(refused))
elif mode == 'enters':
    # Two rooms on different nodes: RoomState's field 4 names the node.
    probe, nodes = Client(), {}
    expect('login', probe.call(LOGIN, string(1, b'prober')), 0)
    for room in range(11, 40):
        got = probe.call(ENTER, bytes([8, room]))
        expect('enter', got, 0)
        node = fields(got[2])[4]
        nodes.setdefault(node, room)
        expect('leave', probe.call(LEAVE), 0)
        if len(nodes) == 2:
            break
    if len(nodes) < 2:
        print('FAIL: every room is on one game node: %s' % nodes)
        sys.exit(1)
    r1, r2 = nodes.values()
    c = Client()
    expect('login', c.call(LOGIN, string(1, b'pipeliner')), 0)
    c.s.sendall(struct.pack('<II', 6, ENTER) + bytes([8, r1]) +
                struct.pack('<II', 6, ENTER) + bytes([8, r2]))
    # The refusal comes first: the gate answers it at once.
    codes = sorted([c.call(ENTER, None)[0], c.call(ENTER, None)[0]])
    if codes != [0, 409]:
        print('FAIL: two ENTERs at once answered %s, expected one 0 and one 409' % codes)
        sys.exit(1)
    other = Client()
    expect('login', other.call(LOGIN, string(1, b'roommate')), 0)
    expect('enter', other.call(ENTER, bytes([8, r1])), 0)
    got = other.call(CHAT, string(1, b'anyone?'))
    expect('chat', got, 0)
    if fields(got[2]).get(1) != 2:
        print('FAIL: a chat in room %d reached %s players, expected 2 (the pipeliner is in '
              'that room on another node)' % (r1, fields(got[2]).get(1)))
        sys.exit(1)
    print('enters: ok (the second ENTER refused 409; room %d on one node)' % r1)
elif mode == 'reenter':
    c = Client()
    expect('login', c.call(LOGIN, string(1, b'reenterer')), 0)
    expect('enter', c.call(ENTER, b'\x08\x2a'), 0)
    c.s.sendall(struct.pack('<II', 4, LEAVE) + struct.pack('<II', 6, ENTER) + b'\x08\x2a')
    leave, enter = c.call(LEAVE, None), c.call(ENTER, None)
    if (leave[0], enter[0]) != (0, 409):
        print('FAIL: LEAVE and ENTER at once answered %d and %d, expected 0 and 409'
              % (leave[0], enter[0]))
        sys.exit(1)
    expect('logout', c.call(1002), 0)
    c.s.close()
    other = Client()
    expect('login', other.call(LOGIN, string(1, b'newcomer')), 0)
    got = other.call(ENTER, b'\x08\x2a')
    expect('enter', got, 0)
    players = fields(got[2]).get(3, b'')
    if b'reenterer' in players:
        print('FAIL: room 42 still holds the player that left it and logged out: %r' % players)
        sys.exit(1)
    print('reenter: ok (an ENTER behind a LEAVE refused 409; nobody left behind)')
elif mode == 'relink':
    node, pid, logfile = sys.argv[4], int(sys.argv[5]), sys.argv[6]

    def wait_log(what, since):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with open(logfile, 'rb') as f:
                if what in f.read()[since:]:
                    return
            for c in (a, b):
                expect('ping', c.call(1003), 0)
            time.sleep(0.5)
        print('FAIL: %r not in %s within 30 s' % (what, logfile))
        sys.exit(1)

    a, b = Client(), Client()
    expect('login', a.call(LOGIN, string(1, b'relinker1')), 0)
    expect('login', b.call(LOGIN, string(1, b'relinker2')), 0)
    room = None
    for r in range(50, 90):
        got = a.call(ENTER, bytes([8, r]))
        expect('enter', got, 0)
        if fields(got[2])[4] == node.encode():
            room = r
            break
        expect('leave', a.call(LEAVE), 0)
    if room is None:
        print('FAIL: no room of 50..89 is on %s' % node)
        sys.exit(1)
    expect('enter', b.call(ENTER, bytes([8, room])), 0)
    since = os.path.getsize(logfile)
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_log(b'[gate] child %s left' % node.encode(), since)
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_log(b'[gate] child %s joined' % node.encode(), since)
    expect("a's first command after its node left", a.call(MOVE, b'\x08\x00'), 410)
    expect("b's first command after its node left", b.call(MOVE, b'\x08\x00'), 410)
    # Rooms nobody is in are placed afresh: find one on NODE again.
    for r in [room] + list(range(50, 90)):
        got = a.call(ENTER, bytes([8, r]))
        expect("a's ENTER of room %d after its node left and came back" % r, got, 0)
        if fields(got[2])[4] == node.encode():
            break
        expect('leave', a.call(LEAVE), 0)
    else:
        print('FAIL: no room of 50..89 is on %s any more' % node)
        sys.exit(1)
    players = fields(got[2]).get(3, b'')
    if players.count(b'relinker') != 1:
        print('FAIL: room %d on %s holds players the gate took out of it: %r' % (r, node, players))
        sys.exit(1)
    expect("b's ENTER after its node left and came back", b.call(ENTER, bytes([8, r])), 0)
    expect('a move in the room again', a.call(MOVE, b'\x08\x00'), 0)
    print('relink: ok (after %s lost its link and came back: 410, then ENTER went through)' % node)
elif mode == 'full':
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4200 if hard == resource.RLIM_INFINITY else min(hard, 4200)
    if want < 4200:
        print('full: SKIP (open files limited to %d: 4200 needed)' % hard)
        sys.exit(0)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    clients = []
    while len(clients) < 4200:
        c = Client()
        got = c.call(LOGIN, string(1, b'full%05d' % len(clients)))
        if got[0]:
            break
        clients.append(c)
    if got[:2] != (503, 'too many sessions') or not 4000 <= len(clients) <= 4096:
        print('FAIL: login %d answered %s, expected 503 too many sessions after at most 4096'
              % (len(clients) + 1, got[:2]))
        sys.exit(1)
    c.s.close()
    for c in clients:
        c.s.close()
    deadline = time.monotonic() + 10
    while True:
        got = Client().call(LOGIN, string(1, b'after-full'))
        if got[0] == 0:
            break
        if time.monotonic() > deadline:
            print('FAIL: a login 10 s after the full sessions went: %s' % (got[:2],))
            sys.exit(1)
        time.sleep(0.1)
    print('full: ok (%d logged in, the next refused 503 too many sessions; freed once they went)'
          % len(clients))
elif mode == 'twice':
    a, b = Client(), Client()
    expect('login', a.call(LOGIN, string(1, b'twice')), 0)
    expect('enter', a.call(ENTER, b'\x08\x07'), 0)
    expect('the same player on a second connection', b.call(LOGIN, string(1, b'twice')), 409)
    expect('the second connection is not logged in', b.call(ENTER, b'\x08\x07'), 401)
    expect('the first plays on', a.call(MOVE, b'\x08\x00'), 0)
    expect('logout', a.call(1002), 0)
    got = b.call(LOGIN, string(1, b'twice'))
    expect('the second after the first logged out', got, 0)
    # LoginRep's logins (field 5): the refused login was not counted.
    if fields(got[2]).get(5) != 2:
        print('FAIL: the player has %s logins, expected 2 (the refused one counted?)'
              % fields(got[2]).get(5))
        sys.exit(1)
    print('twice: ok (a second login of a logged-in player refused 409, not counted)')
elif mode == 'pushids':
    for command in (9001, 9002, 9999):
        name = b'pushid-%d' % command
        c = Client()
        expect('login', c.call(LOGIN, string(1, name)), 0)
        c.s.sendall(struct.pack('<II', 4, command))
        try:
            got = c.frame()
            print('FAIL: command %d from the client was answered with a frame %d (%r): '
                  'a client cannot tell it from a push' % (command, got[0], got[1]))
            sys.exit(1)
        except (EOFError, ConnectionResetError):
            pass
        deadline = time.monotonic() + 10
        while True:   # the gate logs the closed session out
            got = Client().call(LOGIN, string(1, name))
            if got[0] == 0:
                break
            if time.monotonic() > deadline:
                print('FAIL: %s could not log in again: %s' % (name, got[:2]))
                sys.exit(1)
            time.sleep(0.05)
    print('pushids: ok (a command with a push id closes the connection)')
elif mode == 'short':
    for what, data in (('a length of 3', struct.pack('<I', 3) + b'abc'),
                       ('a length of 1 MiB', struct.pack('<I', 1 << 20))):
        c = Client()
        c.s.sendall(data)
        try:
            got = c.s.recv(64)
        except ConnectionResetError:
            got = b''
        except socket.timeout:
            got = None
        if got != b'':
            print('FAIL: %s: the connection was not closed (%r)' % (what, got))
            sys.exit(1)
    print('short: ok (bad lengths close the connection)')
elif mode == 'sizes':
    c = Client()
    expect('login', c.call(LOGIN, string(1, b'sizes')), 0)
    expect('enter', c.call(ENTER, b'\x08\x09'), 0)
    # A MOVE with an unknown field (15) padding it: skipped by the game node.
    def move(n):
        return c.call(MOVE, b'\x08\x02' + string(15, b'z' * n))
    expect('a MOVE of 8000 bytes', move(8000), 0)
    for n in (9000, 60000):
        got = move(n)
        expect('a MOVE of %d bytes (the gate passes on about 8 KiB)' % n, got, 413)
    expect('a CHAT of 4000 bytes', c.call(CHAT, string(1, b'x' * 4000)), 0)
    expect('a CHAT of 4200 bytes (its push would pass 4 KiB)',
           c.call(CHAT, string(1, b'x' * 4200)), 413)
    expect('a MOVE after the refusals, on the same connection', move(0), 0)
    print('sizes: ok (payloads over about 8 KiB and chats over about 4 KiB refused 413, '
          'the connection kept)')
elif mode == 'chatrate':
    per_s, burst = int(sys.argv[4]), int(sys.argv[5])
    a, b = Client(), Client()
    expect('login', a.call(LOGIN, string(1, b'chatter')), 0)
    expect('login', b.call(LOGIN, string(1, b'listener')), 0)
    expect('enter', a.call(ENTER, b'\x08\x4d'), 0)
    expect('enter', b.call(ENTER, b'\x08\x4d'), 0)
    t0 = time.monotonic()
    codes = [a.call(CHAT, string(1, b'spam %d' % i))[0] for i in range(40)]
    took = time.monotonic() - t0
    ok = [i for i, code in enumerate(codes) if code == 0]
    if any(code not in (0, 429) for code in codes):
        print('FAIL: CHATs answered %s, expected 0 or 429' % codes)
        sys.exit(1)
    most = burst + int(per_s * took) + 1
    if len(ok) < burst or len(ok) > most or ok[:burst] != list(range(burst)):
        print('FAIL: %d of 40 CHATs in %.2f s answered 0 (%s), expected the first %d and at '
              'most %d' % (len(ok), took, codes, burst, most))
        sys.exit(1)
    expect("the listener's own CHAT right after", b.call(CHAT, string(1, b'mine')), 0)
    deadline = time.monotonic() + 1.0 / per_s + 2
    while True:
        got = a.call(CHAT, string(1, b'last'))
        if got[0] == 0:
            break
        expect('a CHAT while waiting for a token', got, 429)
        if time.monotonic() > deadline:
            print('FAIL: no CHAT answered 0 within %.1f s of the flood' % (1.0 / per_s + 2))
            sys.exit(1)
        time.sleep(0.05)   # paced as a client would be: the bucket refills with time
    # The listener's pushes, in order, up to the last one: exactly the
    # chats answered 0.
    texts = []
    while True:
        cmd, p = b.pushes.pop(0) if b.pushes else b.frame()
        if cmd != 9001:
            continue
        f = fields(p)
        if f.get(2) != b'chatter':
            continue
        texts.append(f.get(3))
        if texts[-1] == b'last':
            break
    want = [b'spam %d' % i for i in ok] + [b'last']
    if texts != want:
        print('FAIL: the listener got %s, expected %s' % (texts, want))
        sys.exit(1)
    print('chatrate: ok (%d of 40 CHATs in %.2f s pushed, the rest refused 429; the room got '
          'only those)' % (len(ok), took))
else:
    sys.exit('unknown mode ' + mode)
