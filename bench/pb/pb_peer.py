#!/usr/bin/python3
"""The Twisted side of the PB workloads (bench/pb.sh).

    pb_peer.py server
        a Twisted PB root serving remote_echo (and takeProxy, as Firefly's
        PBRoot does); prints "port=N" and serves until killed: the
        Twisted-to-Twisted reference.
    pb_peer.py client PORT SECS INFLIGHT SIZE
        registers with takeProxy like a Firefly node, then keeps INFLIGHT
        echo calls of SIZE-character strings in flight for SECS seconds
        (after a short warm-up) and prints "calls_per_s=N".
"""
import sys
import time

from twisted.internet import defer, reactor
from twisted.spread import pb


class Root(pb.Root):
    def remote_takeProxy(self, name, ref):
        self.ref = ref

    def remote_echo(self, s):
        return s


class Node(pb.Referenceable):
    pass


@defer.inlineCallbacks
def client(port, secs, inflight, size):
    factory = pb.PBClientFactory()
    reactor.connectTCP("127.0.0.1", port, factory)
    root = yield factory.getRootObject()
    yield root.callRemote("takeProxy", "bench", Node())
    s = "x" * size
    state = {"n": 0, "measuring": False, "stop": False}
    done = defer.Deferred()

    def one(_=None):
        if state["stop"]:
            state["inflight"] -= 1
            if state["inflight"] == 0 and not done.called:
                done.callback(None)
            return
        if state["measuring"]:
            state["n"] += 1
        root.callRemote("echo", s).addCallback(one)

    state["inflight"] = inflight
    for _ in range(inflight):
        root.callRemote("echo", s).addCallback(one)
    yield deferLater(0.3)  # warm-up
    state["measuring"] = True
    t0 = time.monotonic()
    yield deferLater(secs)
    state["stop"] = True
    n, t = state["n"], time.monotonic() - t0
    yield done
    print("calls_per_s=%.0f" % (n / t), flush=True)
    factory.disconnect()


def deferLater(secs):
    d = defer.Deferred()
    reactor.callLater(secs, d.callback, None)
    return d


def main():
    if sys.argv[1] == "server":
        port = reactor.listenTCP(0, pb.PBServerFactory(Root()), interface="127.0.0.1")
        print("port=%d" % port.getHost().port, flush=True)
        reactor.run()
        return
    port, secs, inflight, size = int(sys.argv[2]), float(sys.argv[3]), \
        int(sys.argv[4]), int(sys.argv[5])
    d = client(port, secs, inflight, size)
    d.addErrback(lambda f: print("error=%s" % f.getErrorMessage().replace(" ", "_")))
    d.addBoth(lambda _: reactor.stop())
    reactor.run()


if __name__ == "__main__":
    main()
