/*
 * status.js: the master's status page: polls /status and /metrics once a
 * second and draws, in place, the graph of the cluster (who is registered
 * with whom, live or lost), a chart of calls/s and p99 per server over the
 * last five minutes, and the servers' method tables. Every value from the
 * cluster reaches the page through textContent or setAttribute, never as
 * markup.
 */
"use strict";
var SVG = "http://www.w3.org/2000/svg";
var WINDOW_S = 300;
function el(tag, cls, text) {
  var e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function fmt(x) { return (Math.round(x * 10) / 10).toString(); }
function nodeBox(n) {
  var box = el("div", "box");
  box.appendChild(el("span", "name", n.name));
  box.appendChild(document.createTextNode(" "));
  box.appendChild(el("span", "app", (n.app || "?") + (n.pid ? " pid " + n.pid : "") +
                     (n.port ? " port " + n.port : "")));
  var st = n.registered ? (n.state || "?") : "absent";
  box.appendChild(document.createTextNode(" "));
  box.appendChild(el("span", st === "running" ? "ok" : (st === "stopping" ? "warn" : "bad"), st));
  if (n.uptime !== undefined) box.appendChild(el("span", "app", " up " + fmt(n.uptime) + " s"));
  if (n.links) {
    var ls = el("div", "links");
    ls.textContent = "roots: " + n.links.map(function (l) {
      return l.root + " (" + l.state + ")";
    }).join(", ");
    box.appendChild(ls);
  }
  if (n.error) box.appendChild(el("div", "bad", n.error));
  var ms = (n.methods || []).filter(function (m) { return m.calls > 0 || m.service !== "raw"; });
  if (ms.length) {
    var t = el("table", "m");
    var h = el("tr");
    ["method", "calls", "failures", "avg \u00b5s", "max \u00b5s"].forEach(function (c) { h.appendChild(el("th", "", c)); });
    t.appendChild(h);
    ms.forEach(function (m) {
      var r = el("tr");
      r.appendChild(el("td", "", m.service + "." + m.method + " (" + m.id + ")"));
      r.appendChild(el("td", "", String(m.calls)));
      r.appendChild(el("td", m.failures ? "bad" : "", String(m.failures)));
      r.appendChild(el("td", "", fmt(m.avg_us)));
      r.appendChild(el("td", "", String(m.max_us)));
      t.appendChild(r);
    });
    box.appendChild(t);
  }
  return box;
}
function renderTree(s) {
  var byName = {};
  s.nodes.forEach(function (n) { byName[n.name] = n; });
  var tree = document.getElementById("tree");
  tree.textContent = "";
  var top = el("li", "node");
  top.setAttribute("data-name", "master");
  var mb = el("div", "box");
  mb.appendChild(el("span", "name", "master"));
  mb.appendChild(el("span", "app", " root port " + s.master.rootport + ", web port " +
                    s.master.webport + ", pid " + s.master.pid + ", up " + fmt(s.master.uptime) + " s"));
  top.appendChild(mb);
  var kids = el("ul");
  s.nodes.forEach(function (n) {
    var li = el("li", "node");
    li.setAttribute("data-name", n.name);
    li.appendChild(nodeBox(n));
    if (n.children && n.children.length) {
      var sub = el("ul");
      n.children.forEach(function (c) {
        var cl = el("li", "child");
        cl.appendChild(el("span", "name", c));
        var cn = byName[c];
        if (cn) cl.appendChild(el("span", "app", " " + cn.app + ", node of " + n.name));
        sub.appendChild(cl);
      });
      li.appendChild(sub);
    }
    kids.appendChild(li);
  });
  top.appendChild(kids);
  tree.appendChild(top);
  var reg = s.nodes.filter(function (n) { return n.registered; }).length;
  var summary = document.getElementById("summary");
  summary.textContent = s.state + ": " + reg + " of " + s.nodes.length + " servers registered" +
    (s.ready ? ", all connected" : ", waiting") + " \u2014 updated " + new Date().toLocaleTimeString();
  summary.className = s.ready ? "ok" : "warn";
}

function svg(tag, attrs, parent) {
  var e = document.createElementNS(SVG, tag);
  Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
  if (parent) parent.appendChild(e);
  return e;
}

/* ---- the graph ---- */

/* live: registered and every link up; degraded: a link down; lost: not
 * registered with the master; unknown: registered, status unanswered. */
function stateOf(n) {
  if (!n.registered) return "lost";
  if (n.state === "unknown") return "unknown";
  if (n.state === "stopping") return "stopping";
  var down = (n.links || []).some(function (l) { return l.state !== "registered"; });
  return down ? "degraded" : "live";
}

function graphModel(s) {
  var nodes = [{name: "master", app: "master", state: s.state === "stopping" ? "stopping" : "live",
                sub: "root, pid " + s.master.pid, roots: []}];
  var edges = [];
  s.nodes.forEach(function (n) {
    var st = stateOf(n);
    var roots = (n.roots || []).slice();
    var linkState = {};
    (n.links || []).forEach(function (l) {
      linkState[l.root] = l.state;
      if (roots.indexOf(l.root) < 0) roots.push(l.root);
    });
    nodes.push({name: n.name, app: n.app || "?", state: st, roots: roots,
                stranger: n.configured === false,
                sub: (n.app || "?") + " \u00b7 " + (st === "lost" ? "lost" : st)});
    roots.forEach(function (r) {
      edges.push({from: n.name, to: r, live: st !== "lost" && linkState[r] === "registered"});
    });
  });
  return {nodes: nodes, edges: edges};
}

/* Rows by depth: a server sits one row below the deepest root it uses. */
function layout(model) {
  var byName = {};
  model.nodes.forEach(function (n) { byName[n.name] = n; });
  function depth(n, seen) {
    if (n.depth !== undefined) return n.depth;
    if (seen[n.name]) return 1;
    seen[n.name] = true;
    var d = n.name === "master" ? 0 : 1;
    n.roots.forEach(function (r) {
      if (byName[r] && r !== n.name) d = Math.max(d, depth(byName[r], seen) + 1);
    });
    n.depth = d;
    return d;
  }
  var rows = [];
  model.nodes.forEach(function (n) {
    var d = depth(n, {});
    (rows[d] = rows[d] || []).push(n);
  });
  var W = 720, rowH = 105;
  /* Row by row, each server under the middle of its roots (fewer crossing
   * arrows), then by name. */
  function under(n) {
    var xs = n.roots.map(function (r) { return byName[r] ? byName[r].x : undefined; })
      .filter(function (x) { return x !== undefined; });
    return xs.length ? xs.reduce(function (a, b) { return a + b; }, 0) / xs.length : W / 2;
  }
  rows.forEach(function (row, d) {
    row.forEach(function (n) { n.under = under(n); });
    row.sort(function (a, b) {
      return a.under !== b.under ? a.under - b.under : (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    });
    row.forEach(function (n, i) {
      n.x = W * (i + 1) / (row.length + 1);
      n.y = 45 + d * rowH;
    });
  });
  return {byName: byName, height: 45 + rows.length * rowH - 20};
}

var BOX_W = 128, BOX_H = 46;

function drawGraph(s) {
  var g = document.getElementById("graph");
  var model = graphModel(s);
  var lay = layout(model);
  g.setAttribute("viewBox", "0 0 720 " + Math.max(200, lay.height));
  if (!g.querySelector("defs")) {
    var defs = svg("defs", {}, g);
    var m = svg("marker", {id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5",
                           markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse"}, defs);
    svg("path", {d: "M 0 0 L 10 5 L 0 10 z", fill: "#666"}, m);
    svg("g", {id: "edges"}, g);
    svg("g", {id: "boxes"}, g);
  }
  var eg = g.querySelector("#edges"), bg = g.querySelector("#boxes");
  /* Edges: one path per (node, root), kept and updated by key. */
  var keep = {};
  model.edges.forEach(function (e) {
    var a = lay.byName[e.from], b = lay.byName[e.to];
    if (!a || !b) return;
    var key = e.from + "\u2192" + e.to;
    keep[key] = true;
    var p = null;
    Array.prototype.forEach.call(eg.childNodes, function (c) {
      if (c.getAttribute("data-key") === key) p = c;
    });
    if (!p) { p = svg("path", {"marker-end": "url(#arrow)"}, eg); p.setAttribute("data-key", key); }
    var x1 = a.x, y1 = a.y - BOX_H / 2, x2 = b.x, y2 = b.y + BOX_H / 2 + 2;
    var my = (y1 + y2) / 2;
    p.setAttribute("d", "M " + x1 + " " + y1 + " C " + x1 + " " + my + ", " + x2 + " " + my + ", " + x2 + " " + y2);
    p.setAttribute("class", "edge " + (e.live ? "live" : "down"));
  });
  Array.prototype.slice.call(eg.childNodes).forEach(function (c) {
    if (!keep[c.getAttribute("data-key")]) eg.removeChild(c);
  });
  /* Boxes: one group per server. */
  var seen = {};
  model.nodes.forEach(function (n) {
    seen[n.name] = true;
    var box = null;
    Array.prototype.forEach.call(bg.childNodes, function (c) {
      if (c.getAttribute("data-name") === n.name) box = c;
    });
    if (!box) {
      box = svg("g", {}, bg);
      box.setAttribute("data-name", n.name);
      svg("rect", {width: BOX_W, height: BOX_H}, box);
      svg("text", {"class": "nm"}, box);
      svg("text", {"class": "sub"}, box);
      svg("title", {}, box);
    }
    var st = lay.byName[n.name];
    box.setAttribute("class", "node " + n.state + (n.stranger ? " stranger" : ""));
    box.setAttribute("data-state", n.state);
    box.setAttribute("transform", "translate(" + (st.x - BOX_W / 2) + "," + (st.y - BOX_H / 2) + ")");
    var t = box.querySelectorAll("text");
    t[0].setAttribute("x", BOX_W / 2); t[0].setAttribute("y", 19);
    t[0].textContent = n.name.length > 16 ? n.name.slice(0, 15) + "\u2026" : n.name;
    t[1].setAttribute("x", BOX_W / 2); t[1].setAttribute("y", 36);
    t[1].textContent = n.stranger ? "not in the config" : n.sub;
    box.querySelector("title").textContent = n.name + " (" + n.app + "): " + n.state +
      (n.roots.length ? "; registers with " + n.roots.join(", ") : "");
  });
  Array.prototype.slice.call(bg.childNodes).forEach(function (c) {
    if (!seen[c.getAttribute("data-name")]) bg.removeChild(c);
  });
}

/* ---- metrics: calls/s and p99 per server ---- */

function parseLabels(text) {
  var out = {}, re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g, m;
  while ((m = re.exec(text)) !== null)
    out[m[1]] = m[2].replace(/\\(["\\n])/g, function (x, c) { return c === "n" ? "\n" : c; });
  return out;
}

/* Per server: calls served and the latency histogram summed over its
 * methods (the cluster's own Admin calls left out). */
function digest(text) {
  var per = {};
  text.split("\n").forEach(function (line) {
    if (!line || line.charAt(0) === "#") return;
    var m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) return;
    var name = m[1];
    if (name !== "ember_calls_total" && name !== "ember_call_duration_seconds_bucket") return;
    var l = parseLabels(m[2] || "");
    if (!l.server || l.service === "cluster.Admin") return;
    var p = per[l.server] = per[l.server] || {calls: 0, buckets: {}};
    var v = Number(m[3]);
    if (name === "ember_calls_total") p.calls += v;
    else p.buckets[l.le] = (p.buckets[l.le] || 0) + v;
  });
  return per;
}

function quantile(cur, prev, q) {
  var les = Object.keys(cur).map(function (k) { return {k: k, v: k === "+Inf" ? Infinity : Number(k)}; })
    .sort(function (a, b) { return a.v - b.v; });
  if (!les.length) return null;
  var total = cur["+Inf"] - ((prev && prev["+Inf"]) || 0);
  if (!(total > 0)) return null;
  var last = 0;
  for (var i = 0; i < les.length; i++) {
    var d = cur[les[i].k] - ((prev && prev[les[i].k]) || 0);
    if (d >= q * total) return les[i].v === Infinity ? last : les[i].v;
    if (les[i].v !== Infinity) last = les[i].v;
  }
  return last;
}

var hist = {}, lastDigest = null, lastAt = 0;

function addSample(per, now) {
  Object.keys(per).forEach(function (name) {
    var h = hist[name] = hist[name] || [];
    var prev = lastDigest && lastDigest[name];
    var rate = null, p99 = null;
    if (prev && per[name].calls >= prev.calls && now > lastAt) {
      rate = (per[name].calls - prev.calls) * 1000 / (now - lastAt);
      p99 = quantile(per[name].buckets, prev.buckets, 0.99);
    }
    h.push({t: now, rate: rate, p99: p99});
    while (h.length && h[0].t < now - WINDOW_S * 1000) h.shift();
  });
  lastDigest = per;
  lastAt = now;
}

function fmtMs(s) {
  if (s === null) return "\u2013";
  var ms = s * 1000;
  return ms < 1 ? (Math.round(ms * 1000) + " \u00b5s") : (ms < 100 ? ms.toFixed(1) : Math.round(ms)) + " ms";
}

/* The charts' time span in seconds: the data's, in steps of 30 s, from
 * 30 s up to WINDOW_S, so a page just opened is not all empty chart. */
function spanOf(h, now) {
  var s = h.length ? (now - h[0].t) / 1000 : 0;
  return Math.max(30, Math.min(WINDOW_S, Math.ceil(s / 30) * 30));
}

function spanText(span) {
  return span < 60 ? span + " s" : (span / 60) + " min";
}

function line(h, key, now, w, ht, span) {
  var max = 0;
  h.forEach(function (p) { if (p[key] !== null && p[key] > max) max = p[key]; });
  var d = "", pen = false;
  h.forEach(function (p) {
    if (p[key] === null) { pen = false; return; }
    var x = w - (now - p.t) / (span * 1000) * w;
    var y = ht - 3 - (max > 0 ? p[key] / max : 0) * (ht - 8);
    d += (pen ? " L " : " M ") + x.toFixed(1) + " " + y.toFixed(1);
    pen = true;
  });
  return {d: d.trim(), max: max};
}

function drawCharts(now, names) {
  var box = document.getElementById("charts");
  names.forEach(function (name) {
    var c = null;
    Array.prototype.forEach.call(box.childNodes, function (x) {
      if (x.getAttribute("data-name") === name) c = x;
    });
    if (!c) {
      c = el("div", "chart");
      c.setAttribute("data-name", name);
      c.appendChild(el("div", "title", name));
      c.appendChild(el("div", "vals"));
      var s = svg("svg", {viewBox: "0 0 300 64", preserveAspectRatio: "none"}, c);
      svg("line", {"class": "axis", x1: 0, y1: 61, x2: 300, y2: 61}, s);
      svg("path", {"class": "calls"}, s);
      svg("path", {"class": "p99"}, s);
      box.appendChild(c);
    }
    var h = hist[name] || [];
    var span = spanOf(h, now);
    var a = line(h, "rate", now, 300, 64, span), b = line(h, "p99", now, 300, 64, span);
    c.querySelector("path.calls").setAttribute("d", a.d || "M 0 61");
    c.querySelector("path.p99").setAttribute("d", b.d || "M 0 61");
    c.setAttribute("data-points", String(h.filter(function (p) { return p.rate !== null; }).length));
    var cur = h.length ? h[h.length - 1] : {rate: null, p99: null};
    var vals = c.querySelector(".vals");
    vals.textContent = "";
    vals.appendChild(el("span", "c-calls", (cur.rate === null ? "\u2013" : Math.round(cur.rate)) + " calls/s"));
    vals.appendChild(document.createTextNode(" (max " + Math.round(a.max) + ") \u00b7 "));
    vals.appendChild(el("span", "c-p99", "p99 " + fmtMs(cur.p99)));
    vals.appendChild(document.createTextNode(" (max " + fmtMs(b.max || null) + ") \u00b7 last " +
                                             spanText(span)));
  });
}

/* ---- polling ---- */

var lastStates = {}, lastDrawn = -1;

function render(s) {
  renderTree(s);
  drawGraph(s);
  /* Say what the graph now shows, for whoever watches the console. */
  Array.prototype.forEach.call(document.querySelectorAll("#boxes g"), function (g) {
    var n = g.getAttribute("data-name"), st = g.getAttribute("data-state");
    if (lastStates[n] !== st) console.log("ember-graph " + encodeURIComponent(n) + " " + st);
    lastStates[n] = st;
  });
}

function metricsPoll(names) {
  return fetch("/metrics", {cache: "no-store"}).then(function (r) { return r.text(); })
    .then(function (text) {
      var now = Date.now();
      addSample(digest(text), now);
      drawCharts(now, names);
      var drawn = Array.prototype.filter.call(document.querySelectorAll("#charts .chart"),
        function (c) { return Number(c.getAttribute("data-points")) > 0; }).length;
      if (drawn !== lastDrawn) console.log("ember-charts " + drawn);
      lastDrawn = drawn;
    });
}

function poll() {
  var names = [];
  fetch("/status", {cache: "no-store"}).then(function (r) { return r.json(); })
    .then(function (s) {
      render(s);
      names = s.nodes.filter(function (n) { return n.configured !== false; })
        .map(function (n) { return n.name; });
      return metricsPoll(names);
    })
    .catch(function (e) {
      var summary = document.getElementById("summary");
      summary.textContent = "cannot reach the master: " + e;
      summary.className = "bad";
    })
    .then(function () { setTimeout(poll, 1000); });
}
poll();
