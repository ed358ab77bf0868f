#!/usr/bin/python3
"""http_abuse.py MODE HOST PORT — an HTTP client that misbehaves the way an
attacker would, against the master's admin web. Prints one line saying what
the server did and exits 0 when it did the right thing, 1 otherwise.

  header  a request whose one header line grows to 32 MiB: the server must
          close before we sent 8 MiB (what socket buffers can hold), within
          a few seconds
  body    POST /stop announcing a 256 MiB body: refused (413) or closed
          without reading it, within a few seconds
  slow    a request that never finishes: the server must close the
          connection on its own (evhttp_set_timeout), within 20 s
  trickle a request sent a byte every 2 s, each byte within the silence
          timeout: the server must still close it, within 20 s (its request
          deadline is 10 s from the first byte, however it trickles)
  pipe    a whole request and the first byte of the next in one write,
          then a byte every 5 s: the second request's 10 s count from its
          first byte (already waiting when the first was answered), so the
          server closes within 13 s
  deaf    requests for /metrics pipelined without reading the answers:
          the server must close before we sent 16 MiB (what it holds for a
          client is bounded), within a few seconds
  hosts   POST /stop with the admin token (TOKEN in the environment) and
          two Host headers, the server's own first: refused 400 (a proxy
          in front may route by the other)
  lengths POST /stop with the admin token (TOKEN) and two Content-Length
          headers, 2 (the body sent) first and 40: refused 400 (a proxy in
          front may frame the body by the other)
  many    300 clients each send a byte of a request: past the cap (256 at
          once) the next ones are closed at once, while the first stay
          open; then every one of them goes
"""
import os
import socket
import sys
import time

mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.create_connection((host, port), timeout=20)
t0 = time.monotonic()


def outcome():
    """What came back: the status line, or how the connection ended."""
    try:
        data = s.recv(4096)
    except (ConnectionResetError, BrokenPipeError):
        return "reset"
    except socket.timeout:
        return "no answer"
    if not data:
        return "closed"
    return data.split(b"\r\n", 1)[0].decode("latin-1")


def done(ok, what):
    print("%s: %s after %.2f s" % (mode, what, time.monotonic() - t0))
    sys.exit(0 if ok else 1)


if mode == "header":
    s.sendall(b"GET /status HTTP/1.1\r\nHost: %s:%d\r\nX-Big: " % (host.encode(), port))
    chunk = b"a" * (1 << 20)
    try:
        for sent in range(32):
            s.sendall(chunk)
    except (ConnectionResetError, BrokenPipeError):
        done(time.monotonic() - t0 < 5 and sent < 8, "reset while sending, after %d MiB" % sent)
    done(False, "sent it all, then " + outcome())
elif mode == "body":
    s.sendall(b"POST /stop HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % (host.encode(), port, 256 << 20))
    s.sendall(b"{" * 65536)
    what = outcome()
    done(what.startswith("HTTP/1.1 413") or what in ("closed", "reset"), what)
elif mode == "hosts":
    s.sendall(b"POST /stop HTTP/1.1\r\nHost: %s:%d\r\nHost: evil.example:1\r\n"
              b"Content-Type: application/json\r\nAuthorization: Bearer %s\r\n"
              b"Content-Length: 2\r\n\r\n{}" % (host.encode(), port, os.environ["TOKEN"].encode()))
    what = outcome()
    done(what.startswith("HTTP/1.1 400"), what)
elif mode == "lengths":
    s.sendall(b"POST /stop HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
              b"Authorization: Bearer %s\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}"
              % (host.encode(), port, os.environ["TOKEN"].encode()))
    what = outcome()
    done(what.startswith("HTTP/1.1 400"), what)
elif mode == "slow":
    s.sendall(b"GET /status HTTP/1.1\r\nHost: %s:%d\r\nX-Slow: " % (host.encode(), port))
    what = outcome()
    done(what in ("closed", "reset") or what.startswith("HTTP/1.1 4"), what)
elif mode == "trickle":
    head = b"GET /status HTTP/1.1\r\nHost: %s:%d\r\nX-Slow: " % (host.encode(), port)
    s.sendall(head)
    s.settimeout(2)
    while time.monotonic() - t0 < 25:
        what = outcome()
        if what != "no answer":
            done(time.monotonic() - t0 < 20 and not what.startswith("HTTP/1.1 2"), what)
        try:
            s.sendall(b"a")
        except (ConnectionResetError, BrokenPipeError):
            done(time.monotonic() - t0 < 20, "reset")
    done(False, "still open")
elif mode == "pipe":
    req = b"GET /status HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (host.encode(), port)
    s.sendall(req + b"G")
    s.settimeout(5)
    got = b""
    while time.monotonic() - t0 < 25:
        try:
            data = s.recv(65536)
        except socket.timeout:
            data = None
        except ConnectionResetError:
            data = b""
        if data == b"":
            done(b"HTTP/1.1 200" in got and time.monotonic() - t0 < 13,
                 "closed (first answered: %s)" % (b"HTTP/1.1 200" in got))
        if data:
            got += data
            continue
        try:
            s.sendall(b"E")
        except (ConnectionResetError, BrokenPipeError):
            done(b"HTTP/1.1 200" in got and time.monotonic() - t0 < 13, "reset")
    done(False, "still open")
elif mode == "deaf":
    req = b"GET /metrics HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (host.encode(), port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sent = 0
    try:
        while sent < (16 << 20) and time.monotonic() - t0 < 20:
            s.sendall(req * 64)
            sent += len(req) * 64
    except (ConnectionResetError, BrokenPipeError, socket.timeout):
        done(sent < (16 << 20) and time.monotonic() - t0 < 20,
             "closed after %d KiB sent" % (sent >> 10))
    done(False, "sent %d KiB, still open" % (sent >> 10))
elif mode == "many":
    import select
    s.close()
    conns = []
    for _ in range(300):
        c = socket.create_connection((host, port), timeout=20)
        c.sendall(b"G")
        conns.append(c)
    # When each one is closed by the server (readable: EOF or a reset).
    ends = {}
    while len(ends) < len(conns) and time.monotonic() - t0 < 25:
        ready, _, _ = select.select([c for c in conns if c not in ends], [], [], 1)
        for c in ready:
            try:
                c.recv(1)
            except ConnectionResetError:
                pass
            ends[c] = time.monotonic() - t0
    early = sum(1 for e in ends.values() if e < 5)
    done(300 - 256 <= early < 300 and len(ends) == len(conns),
         "%d of 300 closed at once, %d closed in all" % (early, len(ends)))
else:
    sys.exit("usage: http_abuse.py header|body|hosts|lengths|slow|trickle|pipe|deaf|many HOST PORT")
