#!/usr/bin/python3
"""A Firefly-style Twisted PB peer for tests/pb/test_pb.c.

    peer.py node PORT NAME
        connects to an ember root's PB listener, registers with
        takeProxy(NAME, ref) like Firefly's RemoteObject, serves callChild
        (Firefly's ProxyReference) and runs the value matrix, errors,
        by-name calls and type errors against the root's callTarget.
    peer.py hang PORT NAME
        registers, leaves a callTarget(1015) pending at the root and does
        not answer the root's callChild(605); prints READY once both are
        in flight, then expects its call to end with PBConnectionLost when
        the root drops it (or is killed or stopped by the test).
    peer.py refs PORT NAME
        references both ways: a Referenceable passed to the root is called
        back and released exactly as many times as it was sent (it leaves
        the broker's localObjects, and the connection stays), in typed
        and untyped calls alike, and so are those its callChild answers
        the root's untyped calls with; an ember
        object the root returns is called by name, comes home as the same
        object, and is released when Python drops it.
    peer.py taken PORT NAME
        registers under a name a live child holds: takeProxy fails with
        ember.Refused "name in use", and the root closes the connection.
    peer.py tls PORT NAME
        registers over TLS (connectSSL) and makes a few calls.
    peer.py root PORT NAME
        a Firefly-style PBRoot on PORT (0: a free one; printed first, "PORT n"):
        its takeProxy calls callChild on the node before answering (as
        Firefly's reference root does); it serves callTarget and a by-name
        remote_status, and calls the node back: values, its failures,
        NoSuchMethod and TypeError. It waits for the node's "done" note.
    peer.py refroot PORT NAME
        a PBRoot (PORT 0: a free one, printed first) whose callTarget(1016,
        who, v) calls the node's object `who` back (callChild(602, v)) and
        answers what it got, and whose callTarget(1006) answers a Pos with
        a Referenceable under a key Pos lacks; after the node's "done"
        note it checks that the node released that Referenceable.

Prints one JSON line ({"ok": true, ...} or the failures) and exits 0 only
when every check held. Only unmodified Twisted is used.
"""
import json
import math
import sys

from twisted.internet import defer, reactor, task
from twisted.python import failure
from twisted.spread import flavors, pb

checks = 0
failures = []
child_calls = []
given = []  # the objects callChild(608, 609) answered with


def check(what, cond, detail=""):
    global checks
    checks += 1
    if not cond:
        failures.append("%s %s" % (what, detail))


class Refused(pb.Error):
    """Named as pbt.Refused is: the root gets it as that typed error."""


class Note(pb.Error):
    """pbt.Note: one string field."""


# What callChild(606, v) raises: v -> the exception.
PICKS = {
    1: lambda: Refused(7, 'it\'s "closed"\n\u00e9\U0001f600'),
    2: lambda: Refused(9),
    3: lambda: Refused("seven", 3),
    4: lambda: ValueError("plain"),
    5: lambda: Refused(),
    6: lambda: Refused(2 ** 40, "x"),
    # Longer than ember reads, cut inside a two-byte character: the text
    # still arrives, cut at a character boundary.
    8: lambda: ValueError("\u00e9" * 200),
    # One string field: 255 bytes are read whole; a longer text is cut,
    # so it stays a failure instead of a typed error with its text cut.
    9: lambda: Note("a" * 255),
    10: lambda: Note("a" * 256),
}
# pick(RELAY) relays the root's own Refused back to it (its gate(77)):
# the text ember raised it with reads as the typed error again.
RELAY = 7
# What the root's gate(77) raises Refused with; gate(v) else says "closed".
TRICKY = 'it\'s "closed"\n\u00e9\U0001f600\x85\xa0\u202e\u200b\ufeff\ue000\u08e2\U0001d173'
node_root = None


class ProxyReference(pb.Referenceable):
    """Firefly's node-side service: the root's callChild(command, *args)."""

    def remote_callChild(self, command, *args, **kw):
        child_calls.append(command)
        if command == 601:
            return "hello " + args[0]
        if command == 602:
            return args[0] * 2
        if command == 603:
            raise ValueError("boom!")
        if command == 604:
            return b"x" * args[0]
        if command == 605:
            return defer.Deferred()  # never answered
        if command == 607:  # a raw callChild: an answer ember refuses
            return {1, 2}
        if command == 608:  # a raw callChild answered with an object of ours
            given.append(Callback())
            return given[-1]
        if command == 609:  # ...and with one beside a type ember refuses
            given.append(Callback())
            return [given[-1], {1, 2}]
        if command == 606:
            if args[0] == RELAY:
                return node_root.callRemote("callTarget", 1020, 77)
            if args[0] in PICKS:
                raise PICKS[args[0]]()
            return args[0]
        raise KeyError(command)


@defer.inlineCallbacks
def expect(root, what, want, *args):
    try:
        got = yield root.callRemote("callTarget", *args)
    except Exception as e:  # a failure is a failed check here
        check(what, False, "failed: %r" % (e,))
        return
    ok = got == want and type(got) == type(want)
    if isinstance(want, float) and isinstance(got, float):
        ok = (got == want or (math.isnan(got) and math.isnan(want))) and \
            math.copysign(1, got) == math.copysign(1, want)
    check(what, ok, "got %r want %r" % (got, want))


def outcome(d):
    """("ok", result) or ("fail", the Failure itself: check(), trap())."""
    out = defer.Deferred()
    d.addCallbacks(lambda r: out.callback(("ok", r)),
                   lambda f: out.callback(("fail", f)))
    return out


@defer.inlineCallbacks
def expect_failure(d, what, trap, text):
    kind, f = yield outcome(d)
    if kind == "ok":
        check(what, False, "answered %r" % (f,))
        return
    check(what, text in f.getErrorMessage(), "message %r" % (f.getErrorMessage(),))
    check(what + " check", f.check(trap) is not None, f.type)
    try:
        f.trap(trap)
        check(what + " trap", True)
    except Exception:
        check(what + " trap", False, f.type)


def expect_fail(root, what, trap, text, *args, **kw):
    name = kw.pop("_name", "callTarget")
    return expect_failure(root.callRemote(name, *args, **kw), what, trap, text)


@defer.inlineCallbacks
def register(port, name, tls=False):
    """Firefly's RemoteObject: connect, getRootObject, takeProxy."""
    factory = pb.PBClientFactory()
    if tls:
        from twisted.internet import ssl
        reactor.connectSSL("127.0.0.1", port, factory, ssl.ClientContextFactory())
    else:
        reactor.connectTCP("127.0.0.1", port, factory)
    global node_root
    root = yield factory.getRootObject()
    node_root = root
    got = yield root.callRemote("takeProxy", name, ProxyReference())
    check("takeProxy answers None", got is None, repr(got))
    return factory, root


@defer.inlineCallbacks
def node(port, name):
    factory, root = yield register(port, name)
    # A second takeProxy is refused; the registration and connection stay
    # (every check below runs on them).
    yield expect_fail(root, "second takeProxy", pb.Error, "already registered",
                      name, ProxyReference(), _name="takeProxy")

    # The value matrix, through callTarget(command, *args).
    yield expect(root, "echo_s", "h\u00e9llo \u4e16\u754c", 1001, "h\u00e9llo \u4e16\u754c")
    yield expect(root, "echo_s bytes", "plain", 1001, b"plain")
    yield expect(root, "echo_s empty", "", 1001, "")
    for b in (b"", b"list", b"None", b"message", b"\x00\xff", b"x" * 655360):
        yield expect(root, "echo_b %d" % len(b), b, 1002, b)
    yield expect(root, "echo_b from str", b"abc", 1002, "abc")
    for a, b in ((1, 2), (2**31 - 1, 1), (-2**31, 0), (-2**31, -1),
                 (2**63 - 1, 0), (-2**63, 0), (0, -1)):
        yield expect(root, "add %d %d" % (a, b), a + b, 1003, a, b)
    for u in (0, 2**31, 2**63, 2**64 - 1):
        yield expect(root, "echo_u %d" % u, u, 1004, u)
    for f in (1.5, -0.0, 0.0, float("inf"), float("-inf"), 1e300, float("nan")):
        yield expect(root, "echo_f %r" % f, f, 1005, f)
    yield expect(root, "echo_f from int", 7.0, 1005, 7)
    yield expect(root, "echo_f32", 1.5, 1021, 1.5)
    yield expect(root, "echo_f32 inf", math.inf, 1021, math.inf)
    yield expect(root, "echo_f32 max", 3.4028234663852886e38, 1021, 3.4028234663852886e38)
    yield expect_fail(root, "echo_f32 over", TypeError, "float out of the range of f32",
                      1021, 1e39)
    yield expect(root, "move", {"x": 4, "y": 2}, 1006, {"x": 1, "y": 2}, 3)
    yield expect(root, "move tag", {"x": 0, "y": 5, "tag": "t"}, 1006,
                 {b"y": 5, "tag": "t", "unknown": [1]}, 0)
    # The value of a key Pos lacks is skipped unread: a type ember refuses is
    # no error there; the key itself is read.
    yield expect(root, "move, a set under a key Pos lacks", {"x": 1, "y": 0}, 1006,
                 {"x": 1, "unknown": {1, 2}}, 0)
    yield expect_fail(root, "move, a frozenset as a key", TypeError, "'frozenset'", 1006,
                      {"x": 1, frozenset([3]): 4}, 0)
    yield expect(root, "split", ["a", "b", "c"], 1007, "a b c")
    yield expect(root, "count", {"a": 2, "b": 1}, 1008, ("a", "b", "a"))
    yield expect(root, "flip", False, 1011, True)
    yield expect(root, "opt absent", 101, 1012, 1)
    yield expect(root, "opt None", 101, 1012, 1, None)
    yield expect(root, "opt given", 3, 1012, 1, 2)
    yield expect(root, "echo_i8", -128, 1013, -128)
    yield expect(root, "children", 1, 1014)
    root.callRemote("callTarget", 1010, "a note", pbanswer=False)

    # Errors both ways, and bad values: the connection stays.
    yield expect_fail(root, "fail", pb.Error, "nope", 1009, "nope")
    kind, f = yield outcome(root.callRemote("callTarget", 1020, 7))
    check("typed error", kind == "fail" and "pbt.Refused" in str(f.type) and
          f.getErrorMessage() == "(7, 'closed')" and f.check(pb.Error) is not None,
          "%s %r" % (kind, getattr(f, "type", f)))
    kind, f = yield outcome(root.callRemote("callTarget", 1020, 77))
    check("typed error text is Python's", kind == "fail" and
          f.getErrorMessage() == str(Refused(77, TRICKY)),
          "%s %r" % (kind, getattr(f, "value", f)))
    kind, f = yield outcome(root.callRemote("callTarget", 1020, 78))
    check("typed error text of 255 bytes is whole", kind == "fail" and
          f.getErrorMessage() == str(Refused(78, "a" * 247)),
          "%s %r" % (kind, getattr(f, "value", f)))
    yield expect_fail(root, "unknown command", flavors.NoSuchMethod, "no command 9999", 9999)
    yield expect_fail(root, "i8 range", TypeError, "argument 1 'v'", 1013, 128)
    yield expect_fail(root, "u64 negative", TypeError, "out of the range", 1004, -1)
    yield expect_fail(root, "i64 over", TypeError, "out of the range", 1003, 2**63, 0)
    yield expect_fail(root, "type", TypeError, "expected bytes, got int", 1002, 5)
    yield expect_fail(root, "bool from int", TypeError, "expected bool", 1011, 1)
    yield expect_fail(root, "arity", TypeError, "at most 2 arguments", 1003, 1, 2, 3)
    yield expect_fail(root, "kwargs", TypeError, "keyword", 1003, 1, b=2)
    yield expect_fail(root, "bad utf-8", TypeError, "not UTF-8", 1001, b"\xff")
    yield expect_fail(root, "a set", TypeError, "'set'", 1007, {1, 2})
    yield expect_fail(root, "no such method", flavors.NoSuchMethod, "remote_nosuch",
                      _name="nosuch")
    yield expect_fail(root, "reply that does not transcode", pb.Error,
                      "reply could not be encoded", 1004, 77777)
    yield expect(root, "still connected", 3, 1003, 1, 2)

    # Untyped: the root's raw handler answers the tuple it got.
    got = yield root.callRemote("forward", 1, "x", [b"y", {"k": None}])
    check("untyped", got == (1, "x", [b"y", {"k": None}]), repr(got))
    # ...checked against the same whitelist before the handler sees them.
    yield expect_fail(root, "untyped set", TypeError, "jelly type 'set' is not accepted",
                      [1, {2}], _name="forward")
    yield expect_fail(root, "untyped shared", TypeError, "jelly type 'reference'",
                      *([[2]] * 2), _name="forward")

    # By name: remote_status.
    got = yield root.callRemote("status", "py")
    check("status by name", got == "ok py", repr(got))

    # The root called us back through its typed stubs (callChild).
    for _ in range(200):
        if len(child_calls) >= 8 + len(PICKS):
            break
        yield task.deferLater(reactor, 0.01, lambda: None)
    check("callChild calls",
          sorted(child_calls) == [601, 602, 602, 602, 603, 604] + [606] * (len(PICKS) + 1) + [607],
          child_calls)
    # Tell the root we are done, and leave.
    yield root.callRemote("callTarget", 1010, "done")
    factory.disconnect()


class Root(pb.Root):
    """Firefly's PBRoot: takeProxy registers a child, callTarget serves it."""

    def __init__(self, name):
        self.name = name
        self.children = {}
        self.finished = defer.Deferred()
        self.done_note = False
        self.child_checks = None

    def remote_takeProxy(self, name, transport):
        check("takeProxy name", name == self.name, repr(name))
        self.children[name] = transport
        # Called before takeProxy is answered, as real Firefly roots do.
        d = transport.callRemote("callChild", 601, "early")
        d.addCallback(lambda r: check("callChild before the answer", r == "hello early", r))
        self.child_checks = self.call_child(transport)
        self.child_checks.addBoth(self.maybe_done)

    @defer.inlineCallbacks
    def call_child(self, t):
        got = yield t.callRemote("callChild", 602, 21)
        check("twice", got == 42, repr(got))
        got = yield t.callRemote("callChild", 601, "py \u00fc")
        check("hello", got == "hello py \u00fc", repr(got))
        got = yield t.callRemote("callChild", 604, 655360)
        check("blob 640 KiB", got == b"x" * 655360, len(got))
        for what, trap, text, args in (
                ("boom", pb.Error, "boom", (603,)),
                ("no command", flavors.NoSuchMethod, "no command 699", (699,)),
                ("type", TypeError, "expected i64, got unicode", (602, "x")),
                ("too big for Twisted", pb.Error, "could not be encoded", (604, 655361))):
            yield expect_failure(t.callRemote("callChild", *args), what, trap, text)
        check("still connected", (yield t.callRemote("callChild", 602, 1)) == 2)

    def remote_callTarget(self, command, *args):
        if command == 1003:
            return args[0] + args[1]
        if command == 1001:
            return args[0]
        if command == 1004:
            return "not a u64"  # does not match the IDL: EMBER_PROTOCOL there
        if command == 1009:
            if args[0] == "app nsm":  # a NoSuchMethod of its own: no NO_METHOD
                raise NoSuchMethodError(args[0])
            if args[0] == "old nsm":  # as Twisted before reflect.qual names it
                f = failure.Failure(flavors.NoSuchMethod("No such method: remote_x"))
                f.type = b"<class 'twisted.spread.flavors.NoSuchMethod'>"
                return defer.fail(f)
            raise pb.Error(args[0])
        if command == 1010:
            if args[0] == "done":
                self.done_note = True
                self.maybe_done(None)
            return None
        if command == 1014:
            return len(self.children)
        raise ValueError("no command %r" % (command,))

    def remote_status(self, who):
        return "py ok " + who

    def maybe_done(self, r):
        if isinstance(r, failure.Failure):
            failures.append("callChild: %s" % r.getTraceback())
        if self.done_note and self.child_checks is not None and self.child_checks.called \
                and not self.finished.called:
            self.finished.callback(None)
        return None


class NoSuchMethodError(Exception):
    pass


class RefRoot(pb.Root):
    """A PBRoot that calls back the objects a node passes it."""

    def __init__(self, name):
        self.name = name
        self.finished = defer.Deferred()

    def remote_takeProxy(self, name, transport):
        check("takeProxy name", name == self.name, repr(name))
        self.broker = transport.broker
        self.given = None
        self.done = False

    def remote_callTarget(self, command, *args):
        if command == 1016:
            return args[0].callRemote("callChild", 602, args[1])
        if command == 1006:  # move: a Pos with a reference under a key it lacks
            self.given = Callback()
            return {"x": args[0]["x"] + args[1], "y": 0, "extra": [{"k": self.given}]}
        if command == 1010 and args[0] == "done" and not self.done:
            self.done = True
            self.finish()
            return None
        raise ValueError("no command %r" % (command,))

    @defer.inlineCallbacks
    def finish(self):
        # The node skips "extra" and releases the reference in it.
        released = yield until(lambda: self.given is not None and all(
            o.object is not self.given for o in self.broker.localObjects.values()))
        check("ref under a key Pos lacks released", released,
              repr(self.broker.localObjects))
        self.finished.callback(None)


@defer.inlineCallbacks
def serve_root(r, port):
    port = reactor.listenTCP(port, pb.PBServerFactory(r), interface="127.0.0.1")
    print("PORT %d" % port.getHost().port, flush=True)
    yield r.finished


def refroot(port, name):
    return serve_root(RefRoot(name), port)


def root(port, name):
    return serve_root(Root(name), port)


@defer.inlineCallbacks
def hang(port, name):
    factory, root = yield register(port, name)
    pending = outcome(root.callRemote("callTarget", 1015, 7))
    for _ in range(500):
        if 605 in child_calls:
            break
        yield task.deferLater(reactor, 0.01, lambda: None)
    check("callChild 605 arrived", 605 in child_calls)
    print("READY", flush=True)
    kind, f = yield pending
    check("pending call lost", kind == "fail" and f.check(pb.PBConnectionLost) is not None,
          repr(f))


class Carrier(pb.Copyable):
    def __init__(self, ref):
        self.ref = ref


class Callback(pb.Referenceable):
    def remote_callChild(self, command, *args):
        return args[0] * 2


@defer.inlineCallbacks
def until(cond):
    for _ in range(500):
        if cond():
            return True
        yield task.deferLater(reactor, 0.01, lambda: None)
    return cond()


@defer.inlineCallbacks
def refs(port, name):
    import gc
    factory, root = yield register(port, name)
    broker = root.broker
    cb = Callback()
    for v in (21, 5):
        got = yield root.callRemote("callTarget", 1016, cb, v)
        check("called back", got == 2 * v, repr(got))
    # Calls that reach no handler: ember releases the reference each one
    # carried, as a Python server drops what it unjellied.
    yield expect_fail(root, "ref, too many arguments", TypeError, "at most", 1016, cb, 1, 2)
    yield expect_fail(root, "ref, wrong type", TypeError, "argument 2", 1016, cb, "x")
    yield expect_fail(root, "ref, no command", flavors.NoSuchMethod, "no command", 9999, cb)
    yield expect_fail(root, "ref, no method", flavors.NoSuchMethod, "remote_nosuch", cb,
                      _name="nosuch")
    yield expect_fail(root, "ref, keyword", TypeError, "keyword", 1016, cb, v=cb)
    yield expect_fail(root, "ref, a second takeProxy", pb.Error, "already registered",
                      name, cb, _name="takeProxy")
    # A Pos from a dictionary: a key Pos does not have is skipped, and a
    # reference in it (or the key itself) is released as it is.
    yield expect(root, "ref under a key Pos lacks", {"x": 4, "y": 2}, 1006,
                 {"x": 1, "y": 2, "extra": [1, {"k": (cb,)}]}, 3)
    yield expect(root, "ref as a key Pos lacks", {"x": 4, "y": 0}, 1006, {"x": 1, cb: 2}, 3)
    # Untyped: the root's raw handler drops what it got (it cannot keep
    # a jellied reference), so ember releases each one after it ran.
    got = yield root.callRemote("sink", cb)
    check("ref, untyped", got is None, repr(got))
    got = yield root.callRemote("sink", [1, {"k": (cb,)}])
    check("ref, untyped nested", got is None, repr(got))
    yield expect_fail(root, "ref, untyped set", TypeError, "'set'", cb, {1}, _name="sink")
    # An untyped answer holding it (the root's forward echoes its
    # arguments): sent as it is, it would name an object of the root's.
    yield expect_fail(root, "ref, echoed untyped", pb.Error, "(remote) or (local)", 1, cb,
                      _name="forward")
    yield expect_fail(root, "ref, echoed by a plain raw reply", pb.Error,
                      "reply is not one jelly value: untyped jelly holds a (remote)", 1, cb,
                      _name="echo_plain")
    # Inside the types ember refuses: a set, an object sent twice (jelly's
    # reference and dereference), a Copyable's state; typed and untyped.
    shared = [cb]
    yield expect_fail(root, "ref in a set", TypeError, "'set'", {cb}, _name="sink")
    yield expect_fail(root, "ref in a shared list", TypeError, "'reference'",
                      [shared, shared], _name="sink")
    yield expect_fail(root, "ref in a Copyable", TypeError, "not accepted",
                      Carrier(cb), _name="sink")
    yield expect_fail(root, "ref in a set, typed", TypeError, "'set'", 1016, {cb}, 1)
    yield expect_fail(root, "ref after a set", TypeError, "'set'", {1}, cb, _name="sink")
    yield expect_fail(root, "ref after a set, typed", TypeError, "'set'", 1016, {1}, cb)
    # A key Pos does not have is skipped whatever its value holds.
    yield expect(root, "ref beside a set under a key Pos lacks", {"x": 4, "y": 2}, 1006,
                 {"x": 1, "y": 2, "extra": [{1}, cb]}, 3)
    # A dictionary item shaped like a remote is no remote: nothing of ours
    # is released for it (luid 1 is the registration's ProxyReference).
    got = yield root.callRemote("sink", {b"remote": 1}, [{b"remote": 1}])
    check("a pair like a remote", got is None and 1 in broker.localObjects,
          repr(broker.localObjects))
    luid = broker.luids.get(id(cb)) if hasattr(broker, "luids") else None
    released = yield until(lambda: all(o.object is not cb for o in broker.localObjects.values()))
    check("callback released", released, repr(broker.localObjects))
    a = yield root.callRemote("callTarget", 1017)
    got = yield a.callRemote("status", "x")
    check("ember object called by name", got == "local ok x", repr(got))
    same = yield root.callRemote("callTarget", 1018, a)
    check("comes home as the same object", same is True, repr(same))
    n = yield root.callRemote("callTarget", 1019)
    check("exported while held", n == 1, repr(n))
    del a
    gc.collect()
    n = yield root.callRemote("callTarget", 1019)
    check("released when dropped", n == 0, repr(n))
    check("connection alive", (yield root.callRemote("callTarget", 1003, 1, 1)) == 2)
    check("no stray luid", luid is None or luid not in broker.localObjects)
    # The root's raw callChild(608, 609) got objects of ours in its
    # answers: none keeps them, so ember releases them.
    released = yield until(lambda: len(given) == 2 and not any(
        o.object is g for g in given for o in broker.localObjects.values()))
    check("untyped answers' refs released", released,
          "%d given, %r" % (len(given), broker.localObjects))
    factory.disconnect()


@defer.inlineCallbacks
def taken(port, name):
    factory = pb.PBClientFactory()
    reactor.connectTCP("127.0.0.1", port, factory)
    root = yield factory.getRootObject()
    yield expect_failure(root.callRemote("takeProxy", name, ProxyReference()),
                         "name taken", pb.Error, "name in use")
    factory.disconnect()


@defer.inlineCallbacks
def tls(port, name):
    factory, root = yield register(port, name, tls=True)
    check("add over TLS", (yield root.callRemote("callTarget", 1003, 2, 3)) == 5)
    got = yield root.callRemote("callTarget", 1002, b"x" * 100000)
    check("100 KB over TLS", got == b"x" * 100000, len(got))
    yield root.callRemote("callTarget", 1010, "done")
    factory.disconnect()


def main():
    mode, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    result = {}

    def done(r):
        result["ok"] = not failures
        if reactor.running:
            reactor.stop()

    def err(f):
        failures.append("exception: %s" % f.getTraceback())
        done(None)

    if mode not in ("node", "root", "hang", "refs", "tls", "taken", "refroot"):
        print(json.dumps({"ok": False, "failures": ["unknown mode " + mode]}))
        sys.exit(2)
    d = {"node": lambda: node(port, name), "root": lambda: root(port, name),
         "hang": lambda: hang(port, name), "refs": lambda: refs(port, name),
         "tls": lambda: tls(port, name), "taken": lambda: taken(port, name),
         "refroot": lambda: refroot(port, name)}[mode]()
    d.addCallbacks(done, err)
    reactor.callLater(30, lambda: err(failure.Failure(Exception("timeout"))))
    reactor.run()
    print(json.dumps({"ok": not failures, "checks": checks, "failures": failures}))
    sys.exit(0 if not failures else 1)


if __name__ == "__main__":
    main()
