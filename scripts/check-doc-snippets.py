#!/usr/bin/env python3
"""check-doc-snippets.py BUILD_DIR IDLC CC... -- the docs' C snippets compile.

Every ```c block of README.md, docs/runtime.md and docs/generated-code.md is
compiled, each in its own translation unit, with every compiler named at
-std=c11 -Wall -Wextra -Wpedantic -Werror, against the headers idlc makes
for the module it is written for. A snippet is compiled as shown: function
definitions at file scope, the statements around them in a function body,
with a prelude that declares only the names the text leaves to the reader
("yours": an `app`, a `base`, the handlers tables). A block that is not C
(the annotated excerpt of game.h) is listed as skipped, so that a new block
is never left unchecked by accident: a block no entry matches fails.
"""
import os
import re
import subprocess
import sys

# A snippet's handler is used by a table the snippet does not show.
FLAGS = ["-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror",
         "-Wno-unused-function", "-D_POSIX_C_SOURCE=200809L", "-fsyntax-only"]

HELLO = "#include <stdio.h>\n#include <string.h>\n#include <event2/event.h>\n#include \"hello.h\"\n"
TESTS = "#include <stdio.h>\n#include <string.h>\n#include \"game.h\"\n#include \"shapes.h\"\n"
CLUSTER = ("#include <stdio.h>\n#include <event2/event.h>\n"
           "#include \"gate.h\"\n#include \"game.h\"\n")

# (doc, first line of the block, module set, prelude, mode); mode "file":
# the block is file-scope declarations; "body": statements, functions
# hoisted; "skip": not C.
SNIPPETS = [
    ("README.md", "ember_handle hello_Greeter_greet(", "hello", HELLO, "file"),
    ("README.md", "static void remote_greet(", "hello", HELLO, "file"),
    ("README.md", "struct event_base *base = event_base_new();", "hello", HELLO + """
extern ember_root_config root_config;
extern ember_node_config node_config;
extern const hello_Greeter_handlers greeter_handlers;
extern const hello_Adder_handlers adder_handlers;
extern void *app;
extern ember_child *child;
void greeted(const ember_outcome *o, const hello_Greeting *ret, void *ud);
void added(const ember_outcome *o, const uint64_t *ret, void *ud);
""", "body"),
    ("README.md", "ember_root_listen_pb(root,", "hello", HELLO + """
extern ember_root *root;
extern ember_node *node;
""", "body"),
    ("docs/runtime.md", "static void on_join(", "cluster", CLUSTER + """
extern struct event_base *base;
extern void *app;
extern const gate_Gate_handlers gate_handlers;
""", "body"),
    ("docs/runtime.md", "static void on_state(", "cluster", CLUSTER + """
extern struct event_base *base;
extern void *app;
extern const game_Game_handlers game_handlers;
extern uint32_t command;
extern uint64_t session;
extern ember_bytes data;
void on_forward(const ember_outcome *o, const ember_bytes *ret, void *ud);
""", "body"),
    ("docs/runtime.md", "/* root */", "cluster", CLUSTER + """
extern ember_root_config root_cfg;
extern ember_node_config node_cfg;
""", "body"),
    ("docs/runtime.md", "ember_handle ember_call_start(", "cluster", CLUSTER, "file"),
    ("docs/runtime.md", "static void forward(ember_call", "cluster", CLUSTER + """
ember_ref *pick_route(void *app, uint32_t service);
extern ember_root *gate;
extern void *app;
""", "body"),
    ("docs/runtime.md", "static void on_reply(", "cluster", CLUSTER + """
extern const ember_service_desc calc_svc;
#define CALC_ADD 1u
struct add_args { int64_t a, b; };
void enc_add_args(ember_enc *e, const void *args);
""", "body"),
    ("docs/generated-code.md", "#define game_MAX_ROOM", "tests", TESTS, "file"),
    ("docs/generated-code.md", "/* string find(", "tests", TESTS + """
extern ember_ref *to;
extern void *ud;
void cb(const ember_outcome *o, const char *const *ret, void *ud);
""", "body"),
    ("docs/generated-code.md", "void game_Player_init(", "tests", TESTS, "file"),
    ("docs/generated-code.md", "#define game_Game_SERVICE_ID", "tests", TESTS, "file"),
    # The handlers struct is game.h's own typedef, which a second
    # definition cannot be checked against; the golden game.h is.
    ("docs/generated-code.md", "typedef struct game_Game_handlers {", "tests", TESTS, "skip"),
    ("docs/generated-code.md", "/// Where a player may walk.", "tests", TESTS, "skip"),
    ("docs/generated-code.md", "static void store_get(", "tests", TESTS + """
extern ember_root *root;
extern ember_node *node;
""", "body"),
]


def blocks(path):
    text = open(path, encoding="utf-8").read()
    return re.findall(r"```c\n(.*?)```", text, re.S)


def split(block):
    """File-scope definitions (static functions and tables) and the rest."""
    top, body, lines, i = [], [], block.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("static "):
            if re.sub(r"/\*.*?\*/|//.*", "", line).rstrip().endswith(";"):
                top.append(line)
                i += 1
                continue
            while True:
                top.append(lines[i])
                i += 1
                if lines[i - 1].startswith("}"):
                    break
            continue
        body.append(line)
        i += 1
    return "\n".join(top), "\n".join(body)


def source(block, prelude, mode):
    if mode == "file":
        return prelude + block
    top, body = split(block)
    return "%s%s\nvoid doc_snippet(void);\nvoid doc_snippet(void)\n{\n%s\n}\n" % (
        prelude, top, body)


def main():
    build, idlc, compilers = sys.argv[1], sys.argv[2], sys.argv[3:]
    gen = os.path.join(build, "gen", "doc-snippets")
    incs = {
        "hello": (os.path.join(gen, "hello"), ["examples/hello/hello.idl"], []),
        "tests": (os.path.join(gen, "tests"),
                  ["tests/idl/common.idl", "tests/idl/game.idl", "tests/idl/shapes.idl"],
                  ["-I", "tests/idl"]),
        "cluster": ("generated", [], []),
    }
    for d, idls, opts in incs.values():
        if idls:
            os.makedirs(d, exist_ok=True)
            subprocess.run([idlc] + opts + ["-o", d] + idls, check=True)
    cflags = subprocess.run(["pkg-config", "--cflags", "libevent"],
                            capture_output=True, text=True).stdout.split()
    failed = checked = 0
    matched = set()
    for doc in sorted({s[0] for s in SNIPPETS}):
        for n, block in enumerate(blocks(doc)):
            first = block.splitlines()[0]
            spec = [s for s in SNIPPETS if s[0] == doc and first.startswith(s[1])]
            if len(spec) != 1:
                print("FAIL: %s, C block %d (%s): no entry in %s" % (doc, n, first, sys.argv[0]))
                failed += 1
                continue
            _, key, mods, prelude, mode = spec[0]
            matched.add((doc, key))
            if mode == "skip":
                continue
            src = source(block, prelude, mode)
            path = os.path.join(gen, "%s.%d.c" % (doc.replace("/", "_"), n))
            os.makedirs(gen, exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(src)
            for cc in compilers:
                r = subprocess.run([cc] + FLAGS + ["-Iruntime/include", "-I", incs[mods][0]]
                                   + cflags + [path], capture_output=True, text=True)
                checked += 1
                if r.returncode:
                    failed += 1
                    print("FAIL: %s, the C block starting %r, with %s (%s):\n%s"
                          % (doc, first, cc, path, r.stderr))
    for s in SNIPPETS:
        if (s[0], s[1]) not in matched:
            print("FAIL: %s has no C block starting %r any more" % (s[0], s[1]))
            failed += 1
    print("doc snippets: %d compiles, %d failures" % (checked, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
