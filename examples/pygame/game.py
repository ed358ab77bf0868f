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
import json.scanner
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


# ---- the config, checked as the C servers check it ----------------------
# examples/common/config.c (cfg_load) is the reference: the same keys, the
# same bounds, the same messages, and exit status 1 on any error, so that a
# misspelt or mistyped key stops game.py as it stops a C server.


class ConfigError(Exception):
    pass


MAX_OUTSTANDING = 65536  # ember_node_config_default's limits.max_outstanding
CLIENT_KEYS = (  # key, default, min, max: config.c's load_clients
    ("max_clients", 10000, 1, 1000000),
    ("max_inflight", 4, 1, 1024),
    ("max_queued", 65536, 1024, 1 << 28),
    ("stall_ms", 10000, 1, 3600000),
    ("login_ms", 10000, 1, 3600000),
    ("idle_ms", 120000, 0, 86400000),
    ("chat_per_s", 5, 0, 100000),
    ("chat_burst", 10, 1, 100000),
)
APPS = ("db", "gate", "game", "net", "pygame")
NEEDS = {"db": (True, ()), "gate": (True, ("db",)), "game": (False, ("gate", "db")),
         "pygame": (False, ("gate", "db")), "net": (False, ("gate",))}


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _known(obj, keys, where):
    for k in obj:
        if k not in keys:
            raise ConfigError('%s: unknown key "%s"' % (where, k))


def _str_key(obj, key, dflt, cap, where):
    dot = " " if where.endswith(":") else "."
    if key not in obj:
        return dflt
    v = obj[key]
    if not isinstance(v, str):
        raise ConfigError("%s%s%s must be a string" % (where, dot, key))
    if len(v.encode("utf-8", "surrogatepass")) >= cap:
        raise ConfigError("%s%s%s is too long (at most %d bytes)" % (where, dot, key, cap - 1))
    return v


def _port(obj, key, where):
    if key not in obj:
        return 0
    v = obj[key]
    if not _is_int(v) or v < 0 or v > 65535:
        raise ConfigError("%s.%s must be a port: an integer from 0 to 65535" % (where, key))
    return v


def _second_key(text, start, end, key):
    """Offset in text of the second time key is a key of the object that
    spans text[start:end] (its own keys, not those of objects inside)."""
    depth, i, seen = 0, start, 0
    while i < end:
        c = text[i]
        if c == '"':
            j = i + 1
            while text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            rest = text[j + 1:end].lstrip()
            if depth == 1 and rest.startswith(":") and json.loads(text[i:j + 1]) == key:
                seen += 1
                if seen == 2:
                    return i
            i = j + 1
            continue
        if c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
        i += 1
    return start


class _Decoder(json.JSONDecoder):
    """json, stricter where jansson is (config.c reads the file with
    JSON_REJECT_DUPLICATES): a key given twice in one object, NaN and
    Infinity are errors, with the line as jansson gives it."""

    def __init__(self):
        def constant(name):
            raise ValueError("%s is not JSON" % name)
        super().__init__(parse_constant=constant)
        parse = self.parse_object

        def parse_object(s_and_end, *args):
            text, start = s_and_end
            pairs, end = parse(s_and_end, *args[:2], None, list, *args[4:])
            out = {}
            for k, v in pairs:
                if k in out:
                    at = _second_key(text, start - 1, end, k)
                    raise ConfigError("%d: duplicate object key near '%s'"
                                      % (text.count("\n", 0, at) + 1, json.dumps(k)))
                out[k] = v
            return out, end
        self.parse_object = parse_object
        self.scan_once = json.scanner.py_make_scanner(self)


def _parse(path):
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError("%s: %s" % (path, e))
    try:
        doc = _Decoder().decode(text)
    except json.JSONDecodeError as e:
        raise ConfigError("%s:%d: %s" % (path, e.lineno, e.msg))
    except ConfigError as e:
        raise ConfigError("%s:%s" % (path, e))
    except (ValueError, RecursionError) as e:
        raise ConfigError("%s: %s" % (path, e))
    if not isinstance(doc, (dict, list)):
        raise ConfigError("%s: the file is not a JSON object" % path)
    return doc


def _server(name, o):
    if not isinstance(o, dict):
        raise ConfigError("servers.%s: not an object" % name)
    where = "servers.%s" % name
    _known(o, ("app", "host", "rootport", "netport", "metricsport", "pbport", "db",
               "clients", "remoteport"), where)
    if len(name.encode("utf-8", "surrogatepass")) >= 64:
        raise ConfigError("servers: a server's name is too long (at most 63 bytes)")
    s = {"name": name}
    s["app"] = _str_key(o, "app", name, 32, where)
    s["host"] = _str_key(o, "host", "127.0.0.1", 128, where)
    s["db"] = _str_key(o, "db", "", 512, where)
    if s["app"] not in APPS:
        raise ConfigError('%s.app: no app "%s" (db, gate, game, net or pygame)'
                          % (where, s["app"]))
    for k in ("rootport", "netport", "metricsport", "pbport"):
        s[k] = _port(o, k, where)
    lim = {k: d for k, d, _, _ in CLIENT_KEYS}
    cl = o.get("clients")
    if cl is not None:
        if not isinstance(cl, dict):
            raise ConfigError("servers.%s.clients: not an object" % name)
        bounds = {k: (lo, hi) for k, _, lo, hi in CLIENT_KEYS}
        for k, v in cl.items():
            if k not in bounds:
                raise ConfigError('servers.%s.clients: unknown key "%s"' % (name, k))
            lo, hi = bounds[k]
            if not _is_int(v) or v < lo or v > hi:
                raise ConfigError("servers.%s.clients.%s: must be an integer from %d to %d"
                                  % (name, k, lo, hi))
            lim[k] = v
    s["clients"] = lim
    rem = o.get("remoteport")
    if rem is not None and not isinstance(rem, list):
        raise ConfigError("servers.%s.remoteport: not a list" % name)
    s["remotes"] = []
    for i, r in enumerate(rem or []):
        if len(s["remotes"]) == 8:
            raise ConfigError("servers.%s: too many remotes" % name)
        kwhere = "servers.%s.remoteport[%d]" % (name, i)
        if not isinstance(r, dict):
            raise ConfigError("%s: not an object" % kwhere)
        _known(r, ("rootname", "roothost", "rootport"), kwhere)
        rn = r.get("rootname")
        if not isinstance(rn, str) or len(rn.encode("utf-8", "surrogatepass")) >= 64:
            raise ConfigError("servers.%s.remoteport[%d]: no rootname (a string of at most "
                              "63 bytes)" % (name, i))
        s["remotes"].append({"name": rn, "host": _str_key(r, "roothost", "", 128, kwhere),
                             "port": _port(r, "rootport", kwhere)})
    return s


def _needs(cfg, s, path):
    need = NEEDS.get(s["app"])
    if not need:
        return
    root, roots = need
    name, app = s["name"], s["app"]
    if root and s["rootport"] <= 0:
        raise ConfigError('%s: servers.%s: app "%s" is a root: it needs a "rootport" '
                          "(1 to 65535)" % (path, name, app))
    pbn = app == "pygame"
    if pbn and cfg["master"]["pbport"] <= 0:
        raise ConfigError('%s: servers.%s: app "pygame" registers over Perspective '
                          'Broker: master needs a "pbport"' % (path, name))
    names = [r["name"] for r in s["remotes"]]
    for r in roots:
        if r not in names:
            raise ConfigError('%s: servers.%s.remoteport: app "%s" needs the root "%s" '
                              '({"rootname": "%s"})' % (path, name, app, r, r))
    for r in names if pbn else ():
        t = cfg["servers"].get(r)
        if not t or t["pbport"] <= 0:
            raise ConfigError('%s: servers.%s: app "pygame" registers over Perspective '
                              'Broker: servers.%s needs a "pbport"' % (path, name, r))


def load_config(path):
    """The config at path as config.c's cfg_load reads it, or ConfigError
    with config.c's message."""
    doc = _parse(path)
    m = doc.get("master") if isinstance(doc, dict) else None
    if not isinstance(m, dict):
        raise ConfigError('%s: no "master" object' % path)
    _known(doc, ("master", "secret", "admin_token", "tls", "db", "servers"), path)
    where = "%s: master" % path
    _known(m, ("roothost", "rootport", "webport", "pbport"), where)
    cfg = {"master": {"roothost": _str_key(m, "roothost", "127.0.0.1", 128, where)}}
    for k in ("rootport", "webport", "pbport"):
        cfg["master"][k] = _port(m, k, where)
    top = "%s:" % path
    for k in ("secret", "admin_token"):
        cfg[k] = _str_key(doc, k, "", 128, top)
    cfg["db"] = _str_key(doc, "db", "var/ember.sqlite", 512, top)
    t = doc.get("tls")
    if t is not None:
        if not isinstance(t, dict):
            raise ConfigError('%s: "tls" is not an object' % path)
        twhere = "%s: tls" % path
        _known(t, ("cert", "key", "ca", "require_client_cert"), twhere)
        files = [_str_key(t, k, "", 512, twhere) for k in ("cert", "key", "ca")]
        if "require_client_cert" in t and not isinstance(t["require_client_cert"], bool):
            raise ConfigError("%s.require_client_cert must be true or false" % twhere)
        if not all(files):
            raise ConfigError('%s: tls needs "cert", "key" and "ca"' % path)
    if cfg["master"]["rootport"] <= 0:
        raise ConfigError("%s: master.rootport must be 1 to 65535 (every server connects "
                          "to the port the file gives)" % path)
    servers = doc.get("servers")
    if not isinstance(servers, dict):
        raise ConfigError('%s: no "servers" object' % path)
    cfg["servers"] = {}
    for name, o in servers.items():
        if len(cfg["servers"]) == 32:
            raise ConfigError("%s: too many servers" % path)
        try:
            cfg["servers"][name] = _server(name, o)
        except ConfigError as e:
            raise ConfigError("%s: %s" % (path, e))
    for s in cfg["servers"].values():
        _needs(cfg, s, path)
    for s in cfg["servers"].values():
        for r in s["remotes"]:
            t = cfg["servers"].get(r["name"])
            if not r["host"]:
                r["host"] = t["host"] if t else "127.0.0.1"
            if not r["port"] and t:
                r["port"] = t["rootport"]
            if r["port"] <= 0:
                raise ConfigError('%s: servers.%s: root "%s" has no rootport'
                                  % (path, s["name"], r["name"]))
        if s["app"] == "net":
            most = s["clients"]["max_clients"] * s["clients"]["max_inflight"]
            if most >= MAX_OUTSTANDING:
                raise ConfigError("%s: servers.%s.clients: max_clients x max_inflight (%d) "
                                  "must be less than the calls one link may have in flight "
                                  "(max_outstanding %d)" % (path, s["name"], most,
                                                            MAX_OUTSTANDING))
    return cfg


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
    # As the C servers (server.c): [NAME] CONFIG.json, NAME the app's name
    # when left out; a usage error exits 1.
    if len(sys.argv) not in (2, 3):
        sys.stderr.write("usage: %s [NAME] CONFIG.json\n" % sys.argv[0])
        return 1
    NAME = sys.argv[1] if len(sys.argv) == 3 else "pygame"
    path = sys.argv[-1]
    try:
        cfg = load_config(path)
    except ConfigError as e:
        sys.stderr.write("pygame: %s\n" % e)
        return 1
    servers = cfg["servers"]
    me = servers.get(NAME)
    if me is None:
        sys.stderr.write('pygame: no server "%s" in %s\n' % (NAME, path))
        return 1
    if me["app"] != "pygame":
        sys.stderr.write('pygame: %s: servers.%s.app is "%s": start it with %s, not pygame\n'
                         % (path, NAME, me["app"], me["app"]))
        return 1
    STARTED = time.monotonic()
    if os.environ.get("EMBER_MASTER_PID"):
        # Started by the master: go down with it, as the C servers do.
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    game = Game()
    admin = Admin(game)
    services = {"master": admin, "gate": game}
    LINKS = {}
    # load_config checked that the master and every root have a pbport.
    roots = [("master", cfg["master"])]
    roots += [(r["name"], servers[r["name"]]) for r in me["remotes"]]
    for root, rcfg in roots:
        port = rcfg["pbport"]
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
