#!/usr/bin/python3
"""game.py (app "pygame") checks its config as the C servers do
(examples/common/config.c, docs/cluster.md "The config file"): for each bad
config below, build/bin/pygame game2 FILE must exit 1 with the message the
C game server prints for the same file (its "game: " prefix read as
"pygame: "), before it connects anywhere. The JSON-level errors (syntax,
a key given twice) are worded by each parser: there both must exit 1 and
name the file (and the line for a syntax error).

    pygame_config.py BINDIR WORKDIR
"""
import copy
import json
import os
import subprocess
import sys

BIN, WORK = sys.argv[1], sys.argv[2]
BASE = json.load(open("examples/cluster-mixed.json"))
failures = []


def run(prog, path):
    try:
        p = subprocess.run([os.path.join(BIN, prog), "game2", path], capture_output=True,
                           text=True, timeout=10, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return -1, "still running after 10 s: it took the config"
    return p.returncode, p.stderr.strip()


def write(name, text):
    path = os.path.join(WORK, name + ".json")
    with open(path, "w") as f:
        f.write(text)
    return path


def variant(name, edit):
    cfg = copy.deepcopy(BASE)
    edit(cfg)
    return write(name, json.dumps(cfg, indent=1))


def same(name, path):
    """game.py's exit and message are the C server's."""
    crc, cerr = run("game", path)
    prc, perr = run("pygame", path)
    if crc != 1 or not cerr.startswith("game: "):
        failures.append("%s: the C game did not refuse it (exit %d: %s)" % (name, crc, cerr))
        return
    want = "pygame: " + cerr[len("game: "):]
    if prc != 1 or perr != want:
        failures.append("%s: pygame exit %d, said %r; want exit 1, %r" % (name, prc, perr, want))


def refused(name, path, must):
    for prog in ("game", "pygame"):
        rc, err = run(prog, path)
        if rc != 1 or not err.startswith("%s: %s" % (prog, must)) or "Traceback" in err:
            failures.append("%s: %s exit %d, said %r; want exit 1 and %r"
                            % (name, prog, rc, err, must))


def setk(*path_value):
    *keys, value = path_value

    def edit(cfg):
        o = cfg
        for k in keys[:-1]:
            o = o[k]
        o[keys[-1]] = value
    return edit


def delk(*keys):
    def edit(cfg):
        o = cfg
        for k in keys[:-1]:
            o = o[k]
        del o[keys[-1]]
    return edit


cases = {
    "unknown-top": setk("secrett", "x"),
    "unknown-master": setk("master", "rootprot", 1),
    "unknown-server": setk("servers", "db", "rootprot", 7001),
    "unknown-own": setk("servers", "game2", "hots", "127.0.0.1"),
    "unknown-remote": setk("servers", "game2", "remoteport", [{"rootname": "gate", "x": 1},
                                                              {"rootname": "db"}]),
    "unknown-client": setk("servers", "net", "clients", "max_client", 5),
    "secret-number": setk("secret", 5),
    "token-long": setk("admin_token", "t" * 128),
    "host-long": setk("servers", "game2", "host", "h" * 128),
    "app-long": setk("servers", "game2", "app", "a" * 40),
    "app-unknown": setk("servers", "game2", "app", "python"),
    "name-long": setk("servers", "n" * 64, {"app": "game", "remoteport": [
        {"rootname": "gate"}, {"rootname": "db"}]}),
    "port-string": setk("servers", "db", "pbport", "7101"),
    "port-float": setk("master", "pbport", 7100.0),
    "port-bool": setk("master", "pbport", True),
    "port-big": setk("servers", "gate", "pbport", 70000),
    "port-negative": setk("servers", "gate", "rootport", -1),
    "rootport-zero": setk("master", "rootport", 0),
    "no-master-pbport": delk("master", "pbport"),
    "no-gate-pbport": delk("servers", "gate", "pbport"),
    "no-db-root": setk("servers", "game2", "remoteport", [{"rootname": "gate"}]),
    "remote-not-list": setk("servers", "game2", "remoteport", {"rootname": "gate"}),
    "remote-not-object": setk("servers", "game2", "remoteport", ["gate", {"rootname": "db"}]),
    "remote-no-name": setk("servers", "game2", "remoteport", [{"roothost": "x"},
                                                              {"rootname": "db"}]),
    "server-not-object": setk("servers", "game1", 5),
    "servers-missing": delk("servers"),
    "master-missing": delk("master"),
    "tls-partial": setk("tls", {"cert": "c.pem"}),
    "tls-bool": setk("tls", {"cert": "c", "key": "k", "ca": "a", "require_client_cert": 1}),
    "clients-range": setk("servers", "net", "clients", "max_inflight", 0),
    "clients-type": setk("servers", "net", "clients", "idle_ms", "60000"),
    "chat-rate-range": setk("servers", "net", "clients", "chat_per_s", -1),
    "chat-burst-zero": setk("servers", "net", "clients", "chat_burst", 0),
    "net-outstanding": setk("servers", "net", "clients", {"max_clients": 65536,
                                                          "max_inflight": 1}),
    "gate-no-rootport": delk("servers", "gate", "rootport"),
    "db-path-type": setk("db", ["var/x"]),
}
for name, edit in cases.items():
    same(name, variant(name, edit))

good = json.dumps(BASE, indent=1)
dup = good.replace('"game1":', '"game2": {"app": "game"},\n "game1":', 1)
assert dup != good
lines = good.split("\n")
lines[3] += " ,,"
dupk = good.replace('"pbport": 7100', '"pbport": 7100, "pbport": 7100', 1)
assert dupk != good
refused("syntax", write("syntax", "\n".join(lines)), os.path.join(WORK, "syntax.json") + ":4: ")
refused("nan", write("nan", good.replace("7100", "NaN", 1)), os.path.join(WORK, "nan.json") + ":")
refused("missing", os.path.join(WORK, "no-such-file.json"),
        os.path.join(WORK, "no-such-file.json") + ": ")
# A key given twice: both say so, on the same line, naming the key.
same("duplicate-server", write("duplicate-server", dup))
same("duplicate-key", write("duplicate-key", dupk))

# The command line, as the C servers take it: [NAME] CONFIG.json.
good_path = write("good", good)
for prog in ("game", "pygame"):
    for args in ([], ["a", "b", good_path]):
        p = subprocess.run([os.path.join(BIN, prog)] + args, capture_output=True, text=True,
                           timeout=10, stdin=subprocess.DEVNULL)
        if p.returncode != 1 or "usage: " not in p.stderr or "[NAME] CONFIG.json" not in p.stderr:
            failures.append("%s with %d arguments: exit %d, said %r; want exit 1 and its usage"
                            % (prog, len(args), p.returncode, p.stderr.strip()))
    # NAME left out: the app's own name, which no server of the file has.
    p = subprocess.run([os.path.join(BIN, prog), good_path], capture_output=True, text=True,
                       timeout=10, stdin=subprocess.DEVNULL)
    want = '%s: no server "%s" in %s' % (prog, prog, good_path)
    if p.returncode != 1 or p.stderr.strip() != want:
        failures.append("%s CONFIG.json: exit %d, said %r; want exit 1, %r"
                        % (prog, p.returncode, p.stderr.strip(), want))

if failures:
    for f in failures:
        print("test-pygame-config: FAIL: " + f, file=sys.stderr)
    sys.exit(1)
print("test-pygame-config: ok (%d bad configs refused by game.py as by the C servers, "
      "a key given twice, 3 more at the JSON level, and the command line)" % len(cases))
