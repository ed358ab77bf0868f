#!/usr/bin/python3
"""check_metrics.py PAGE EXPECT DOC... — reads a Prometheus page with
python3-prometheus-client's parser and checks it against what the bots did.

PAGE    the text of GET /metrics
EXPECT  lines `KEY VALUE`: bots, calls, moves (per bot), servers (comma
        separated), master_children, gate_children, db_children
DOC     docs/runtime.md, docs/cluster.md: every family on the page must be
        documented in one of them

Exits 1 with one line per problem.
"""
import sys
from collections import defaultdict

from prometheus_client.parser import text_string_to_metric_families

page_path, expect_path = sys.argv[1:3]
doc_paths = sys.argv[3:]
text = open(page_path, encoding="utf-8").read()
expect = dict(line.split() for line in open(expect_path) if line.strip())
doc = "".join(open(p, encoding="utf-8").read() for p in doc_paths)
problems = []


def check(ok, what):
    if not ok:
        problems.append(what)


families = list(text_string_to_metric_families(text))
samples = [s for f in families for s in f.samples]
lines = [l for l in text.splitlines() if l and not l.startswith("#")]
check(len(samples) == len(lines),
      "the parser read %d samples from %d sample lines" % (len(samples), len(lines)))
for f in families:
    check(f.documentation, "%s has no HELP" % f.name)
    # The parser names a counter's family without its _total.
    check(("`%s`" % f.name) in doc or ("`%s_total`" % f.name) in doc,
          "%s is not documented in %s" % (f.name, " or ".join(doc_paths)))
    check(f.name.startswith("ember_"), "%s: no ember_ prefix" % f.name)
    check(f.type != "counter" or all(s.name.endswith("_total") for s in f.samples)
          or not f.samples, "%s: counter samples without _total" % f.name)

by_name = defaultdict(list)
for s in samples:
    by_name[s.name].append(s)


def total(name, **want):
    return sum(s.value for s in by_name[name]
               if all(s.labels.get(k) == v for k, v in want.items()))


bots = int(expect["bots"])
moves = int(expect["moves"])
# What the bots did, as the servers counted it.
check(total("ember_calls_total", server="gate", method="forward") == int(expect["calls"]),
      "gate forwarded %d commands, the bots sent %s"
      % (total("ember_calls_total", server="gate", method="forward"), expect["calls"]))
check(total("ember_calls_total", server="db", method="login") == bots,
      "db served %d logins for %d bots" % (total("ember_calls_total", server="db", method="login"), bots))
check(total("ember_calls_total", server="db", method="logout") == bots, "db logouts != bots")
game_moves = sum(total("ember_calls_total", server=g, method="move") for g in ("game1", "game2"))
check(game_moves == bots * (moves + 1),
      "the game nodes served %d moves; %d bots made %d each and one refused" % (game_moves, bots, moves))
refused = sum(total("ember_call_failures_total", server=g, method="move", status="raised")
              for g in ("game1", "game2"))
check(refused == bots, "%d moves raised, one per bot (%d) expected" % (refused, bots))
check(total("ember_call_failures_total", server="db") == 0, "db counted failures")
for k in ("master", "gate", "db"):
    got = total("ember_children", server=k)
    check(got == int(expect[k + "_children"]), "%s has %d children, not %s" % (k, got, expect[k + "_children"]))
for srv in expect["servers"].split(","):
    check(total("ember_cluster_server_up", server=srv) == 1, "%s is not up" % srv)
    check(total("ember_connections", server=srv) >= 1, "%s has no connection" % srv)

# Every method's histogram: cumulative, +Inf == count == calls (all ended,
# but the Admin.metrics call each server is answering right now).
series = defaultdict(dict)
for s in by_name["ember_call_duration_seconds_bucket"]:
    key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
    series[key][float(s.labels["le"])] = s.value
for key, buckets in series.items():
    labels = dict(key)
    les = sorted(buckets)
    vals = [buckets[le] for le in les]
    check(vals == sorted(vals), "%s: buckets not cumulative" % labels)
    count = total("ember_call_duration_seconds_count", **labels)
    check(vals[-1] == count, "%s: +Inf %d != count %d" % (labels, vals[-1], count))
    calls = total("ember_calls_total", **labels)
    in_flight = 1 if labels.get("method") == "metrics" else 0
    check(count == calls - in_flight, "%s: %d timed of %d calls" % (labels, count, calls))
    if count:
        check(total("ember_call_duration_seconds_sum", **labels) > 0, "%s: zero sum" % labels)
check(len(series) > 20, "only %d method histograms" % len(series))

for p in problems:
    print("check_metrics: " + p)
if not problems:
    print("check_metrics: %d families, %d samples, %d method histograms: ok"
          % (len(families), len(samples), len(series)))
sys.exit(1 if problems else 0)
