#!/usr/bin/python3
"""game.py -- a game node written the way Firefly users write one: Python,
unmodified Twisted, remote_xxx methods. It takes the place of a C game node
(examples/game/game.c) in the ember cluster (docs/cluster.md, "A mixed
cluster"):

    game.py NAME CONFIG.json     (the master starts it as `pygame NAME CONFIG`)

Like a Firefly node it connects to its roots and registers with
takeProxy(NAME, service): to the master (Admin: status, stop, metrics), to
the gate (game.Game: enter, move, chat, leave) and to db, each on the
root's "pbport" (master.pbport for the master). The ember servers call it
by name, as idl/game.idl and idl/cluster.idl say (no @pb: the IDL names are
the PB names), and it calls db (position, save) and the gate (push) the
same way. A refusal is a Refused exception raised with client.Refused's
fields, Refused(404, "not in a room"): the gate gets it as that typed
error and hands it to the client.

It counts what it served: Admin.status lists the counts (as every server's
status does) and it prints them when it exits.
"""
import ctypes
import json
import os
import signal
import sys
import time

from twisted.internet import defer, reactor
from twisted.spread import pb

PUSH_CHAT = 9001
PR_SET_PDEATHSIG = 1  # prctl(2)
GAME_IDS = {"enter": 601, "move": 602, "chat": 603, "leave": 604}
ADMIN_IDS = {"status": 101, "stop": 102, "metrics": 103}
STEPS = {0: (0, 1), 1: (1, 0), 2: (0, -1), 3: (-1, 0)}  # client.Dir


class Refused(pb.Error):
    """client.Refused: raised with its fields in order, Refused(code, why)."""


def log(msg):
    sys.stderr.write("[%s] %s\n" % (NAME, msg))
    sys.stderr.flush()


# ---- ember's encoding, for the one payload the gate forwards undecoded --


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


# The largest chat push a C game node encodes (its 4096-byte buffer): a
# longer one is refused 413 there, so it is here too.
MAX_CHAT_PUSH = 4096


def chat_msg(room, sender, text):
    """client.ChatMsg {1: u32 room, 2: string from, 3: string text}, encoded
    as ember encodes a struct (docs/protocol.md): the push's payload."""
    out = varint(1 << 3) + varint(room)
    for tag, s in ((2, sender), (3, text)):
        b = s.encode("utf-8")
        out += varint(tag << 3 | 2) + varint(len(b)) + b
    return out


# ---- counters (Admin.status's "methods") ------------------------------


class Counter:
    def __init__(self, endpoint, service, ids):
        self.endpoint, self.service, self.ids = endpoint, service, ids
        self.stats = {m: [0, 0, 0, 0] for m in ids}  # calls failures total max

    def served(self, method, t0, failed):
        us = int((time.monotonic() - t0) * 1e6)
        st = self.stats[method]
        st[0] += 1
        st[1] += 1 if failed else 0
        st[2] += us
        st[3] = max(st[3], us)

    def run(self, method, fn, *args):
        """Runs fn (which may return a Deferred) and counts it."""
        t0 = time.monotonic()
        d = defer.maybeDeferred(fn, *args)

        def ok(v):
            self.served(method, t0, False)
            return v

        def bad(f):
            self.served(method, t0, True)
            return f

        return d.addCallbacks(ok, bad)

    def rows(self):
        return [{"endpoint": self.endpoint, "service_name": self.service,
                 "method": m, "id": self.ids[m], "calls": st[0],
                 "failures": st[1], "total_us": st[2], "max_us": st[3]}
                for m, st in self.stats.items() if st[0]]


# ---- links to the roots -----------------------------------------------


class Link:
    """One root: connect to its PB port, takeProxy(NAME, service), and
    connect and register again after a loss (as ember nodes do)."""

    def __init__(self, root, host, port, service):
        self.root, self.host, self.port, self.service = root, host, port, service
        self.ref = None      # the root object, once registered
        self.broker = None
        self.delay = 0.1
        self.closing = False

    @property
    def addr(self):
        return "%s:%d" % (self.host, self.port)

    def state(self):
        return "registered" if self.ref else ("closed" if self.closing else "connecting")

    def connect(self):
        factory = pb.PBClientFactory()
        reactor.connectTCP(self.host, self.port, factory)
        factory.getRootObject().addCallbacks(self.got_root, self.lost)

    @defer.inlineCallbacks
    def got_root(self, root):
        self.broker = root.broker
        root.notifyOnDisconnect(self.lost)
        try:
            yield root.callRemote("takeProxy", NAME, self.service)
        except Exception as e:  # refused: retry later, as after any loss
            log("%s refused the registration: %s" % (self.root, e))
            root.broker.transport.loseConnection()
            return
        self.ref = root
        self.delay = 0.1
        log("registered with %s on %s (Perspective Broker)" % (self.root, self.addr))

    def lost(self, why):
        was = self.ref is not None
        self.ref = None
        self.broker = None
        if was and isinstance(self.service, Game):
            self.service.gate_lost()
        if self.closing:
            return
        if was:
            log("lost %s: reconnecting" % self.root)
        reactor.callLater(self.delay, self.connect)
        self.delay = min(self.delay * 2, 2.0)

    def call(self, method, *args):
        if not self.ref:
            return defer.fail(Refused(503, "%s unavailable" % self.root))
        return self.ref.callRemote(method, *args)

    def close(self):
        self.closing = True
        if self.broker:
            self.broker.transport.loseConnection()


# ---- game.Game, served to the gate --------------------------------------


class Player:
    def __init__(self, who, room, pos):
        self.session = who.get("session", 0)
        self.id = who.get("player", 0)
        self.name = who.get("name", "")
        self.room = room
        self.x, self.y = pos.get("x", 0), pos.get("y", 0)

    def pos(self):
        return {"x": self.x, "y": self.y}


class Game(pb.Referenceable):
    """idl/game.idl's Game, by name: the gate calls enter(who, req) and so
    on, as it calls C game nodes' game.Game. Structs arrive as dictionaries
    keyed by field name; a field an older sender does not know is missing."""

    def __init__(self):
        self.players = {}   # session -> Player
        self.count = Counter("node:gate", "game.Game", GAME_IDS)
        self.epoch = 0      # links to the gate lost so far

    def gate_lost(self):
        """The gate takes every player of this node out of its room when
        the link goes (docs/cluster.md): forget them too, so their ENTERs
        start afresh when it is back."""
        if self.players:
            log("link to the gate lost: %d player(s) out of their rooms" % len(self.players))
        self.players = {}
        self.epoch += 1

    def in_room(self, who):
        p = self.players.get(who.get("session", 0))
        if not p:
            raise Refused(404, "not in a room")
        return p

    def remote_enter(self, who, req):
        return self.count.run("enter", self.enter, who, req)

    def remote_move(self, who, req):
        return self.count.run("move", self.move, who, req)

    def remote_chat(self, who, req):
        return self.count.run("chat", self.chat, who, req)

    def remote_leave(self, who, req):
        return self.count.run("leave", self.leave, who, req)

    @defer.inlineCallbacks
    def enter(self, who, req):
        room = req.get("room", 0)
        if room == 0:
            raise Refused(400, "no room 0")
        if who.get("session", 0) in self.players:
            raise Refused(409, "already in a room")
        epoch = self.epoch
        pos = yield self.db_call("position", who.get("player", 0))
        if epoch != self.epoch:
            raise Refused(503, "the link to the gate was lost")
        p = Player(who, room, pos)
        self.players[p.session] = p
        names = [q.name for q in self.players.values() if q.room == room]
        return {"room": room, "pos": p.pos(), "players": names, "node": NAME}

    def move(self, who, req):
        p = self.in_room(who)
        step = STEPS.get(req.get("dir", 0))
        if not step:
            raise Refused(400, "no such direction")
        p.x += step[0]
        p.y += step[1]
        return self.db_call("save", p.id, p.pos()).addCallback(lambda _: p.pos())

    def chat(self, who, req):
        me = self.in_room(who)
        to = [q.session for q in self.players.values() if q.room == me.room]
        data = chat_msg(me.room, me.name, req.get("text", ""))
        if len(data) > MAX_CHAT_PUSH:
            raise Refused(413, "message too long")
        LINKS["gate"].call("push", to, PUSH_CHAT, data).addErrback(
            lambda f: log("push failed: %s" % f.getErrorMessage()))
        return {"delivered": len(to)}

    def leave(self, who, req):
        p = self.in_room(who)
        d = self.db_call("save", p.id, p.pos())
        del self.players[p.session]
        return d.addCallback(lambda _: {"room": p.room, "pos": p.pos()})

    def db_call(self, method, *args):
        def unavailable(f):
            if f.check(Refused):
                return f
            raise Refused(503, f.getErrorMessage())
        return LINKS["db"].call(method, *args).addErrback(unavailable)


# ---- cluster.Admin, served to the master --------------------------------


class Admin(pb.Referenceable):
    def __init__(self, game):
        self.game = game
        self.count = Counter("node:master", "cluster.Admin", ADMIN_IDS)
        self.stopping = False

    def remote_status(self):
        return self.count.run("status", self.status)

    def remote_metrics(self):
        return self.count.run("metrics", self.metrics)

    def remote_stop(self):
        return self.count.run("stop", self.stop)

    def status(self):
        links = [{"root": n, "addr": l.addr, "state": l.state()} for n, l in LINKS.items()]
        return {"name": NAME, "app": "pygame", "pid": os.getpid(),
                "uptime": time.monotonic() - STARTED,
                "state": "stopping" if self.stopping else "running",
                "links": links, "children": [],
                "methods": self.count.rows() + self.game.count.rows(), "port": 0}

    def metrics(self):
        out = ["# TYPE ember_pygame_calls_total counter"]
        for r in self.count.rows() + self.game.count.rows():
            out.append('ember_pygame_calls_total{server="%s",method="%s"} %d'
                       % (NAME, r["method"], r["calls"]))
        return "\n".join(out) + "\n"

    def stop(self):
        """Graceful stop: answered, then the links close (gate and db
        first, the master last) and the process exits."""
        if self.stopping:
            raise pb.Error("already stopping")
        self.stopping = True
        log("stopping")
        reactor.callLater(0, shutdown)


def shutdown():
    for name in ("gate", "db", "master"):
        if name in LINKS:
            LINKS[name].close()
    reactor.callLater(0, reactor.stop)


def main():
    global NAME, STARTED, LINKS
    if len(sys.argv) != 3:
        sys.stderr.write("usage: game.py NAME CONFIG.json\n")
        return 2
    NAME = sys.argv[1]
    with open(sys.argv[2]) as f:
        cfg = json.load(f)
    servers = cfg.get("servers", {})
    me = servers.get(NAME)
    if me is None:
        log("%s is not in %s" % (NAME, sys.argv[2]))
        return 1
    if me.get("app", NAME) != "pygame":
        log("%s: servers.%s.app is \"%s\": start it with %s, not pygame"
            % (sys.argv[2], NAME, me.get("app", NAME), me.get("app", NAME)))
        return 1
    STARTED = time.monotonic()
    if os.environ.get("EMBER_MASTER_PID"):
        # Started by the master: go down with it, as the C servers do.
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    game = Game()
    admin = Admin(game)
    services = {"master": admin, "gate": game}
    LINKS = {}
    roots = [("master", cfg.get("master", {}))]
    roots += [(r.get("rootname"), servers.get(r.get("rootname"), {}))
              for r in me.get("remoteport", [])]
    for root, rcfg in roots:
        port = rcfg.get("pbport", 0)
        if not port:
            log("config: %s has no pbport" % root)
            return 1
        # A pbport listens on loopback only (docs/security.md).
        LINKS[root] = Link(root, "127.0.0.1", port, services.get(root, pb.Referenceable()))
    for link in LINKS.values():
        link.connect()
    log("pygame running (pid %d)" % os.getpid())
    reactor.run()
    served = " ".join("%s=%d" % (m, st[0]) for m, st in game.count.stats.items())
    log("stopped; served %s" % served)
    return 0


NAME = "pygame"
STARTED = 0.0
LINKS = {}

if __name__ == "__main__":
    sys.exit(main())
