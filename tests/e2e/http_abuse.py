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
"""
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
elif mode == "slow":
    s.sendall(b"GET /status HTTP/1.1\r\nHost: %s:%d\r\nX-Slow: " % (host.encode(), port))
    what = outcome()
    done(what in ("closed", "reset") or what.startswith("HTTP/1.1 4"), what)
else:
    sys.exit("usage: http_abuse.py header|body|slow HOST PORT")
