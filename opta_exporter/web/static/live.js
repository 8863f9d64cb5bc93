// The live view: keeps the server-rendered page (page.py) current from
// /api/live/events. No dependency, no build step, no request beyond this origin.
// The reconnect is ours, not the browser's: on any error the EventSource is closed and
// reopened after an exponential backoff with proportional jitter (a wait drawn from
// [d/2, d], d = 1 s * 2^(failures-1), capped at 30 s), shown as a countdown.
(function () {
  "use strict";
  var DASH = "\u2014";
  var W = 600, H = 160, CAP = 300, PAINT_MS = 500, BASE = 1, MAX_WAIT = 30;
  var RATE_SPAN = 15; // seconds of relay totals a request or error rate is taken over

  var MAX_LINES = 6; // per-model lines at most (web/chart.py)

  // A circular buffer of the last CAP {timestamp, tokensPerSecond} points of one line.
  function Ring() { this.items = new Array(CAP); this.head = 0; this.size = 0; this.lastTs = -Infinity; }
  Ring.prototype.take = function (samples) {
    if (!Array.isArray(samples)) return;
    for (var i = 0; i < samples.length; i++) {
      var s = samples[i];
      if (!Array.isArray(s) || s.length !== 2) continue;
      var t = num(s[0]), r = num(s[1]);
      if (t === null || r === null || t <= this.lastTs) continue;
      this.items[this.head] = { timestamp: t, tokensPerSecond: r };
      this.head = (this.head + 1) % CAP;
      this.size = Math.min(this.size + 1, CAP);
      this.lastTs = t;
    }
  };
  Ring.prototype.within = function (now, windowS) { // oldest first
    var pts = [];
    for (var i = 0; i < this.size; i++) {
      var p = this.items[(this.head - this.size + i + CAP) % CAP];
      if (windowS === null || now === null || p.timestamp >= now - windowS) pts.push(p);
    }
    return pts;
  };
  var ring = new Ring(), rings = new Map(); // the total; each model's, by id
  var totals = []; // [{time, requests, errors}], oldest first, within RATE_SPAN
  var pending = null, lastPaint = 0, paintTimer = null, modelsKey = null;
  var failures = 0, source = null, retryAt = null, retryTimer = null;
  var lmxWait = null, lmxRetryAt = null, lmxText = null;

  function $(id) { return document.getElementById(id); }
  function set(id, text) {
    var el = $(id);
    if (el && el.firstElementChild) el = el.firstElementChild; // <span id><strong>…
    if (el && el.textContent !== text) el.textContent = text;
  }
  function num(v) { return typeof v === "number" && isFinite(v) ? v : null; }
  function text(v) { return v === null || v === undefined || v === "" ? DASH : String(v); }
  function gib(v) { v = num(v); return v === null ? DASH : (v / 1073741824).toFixed(1) + " GiB"; }
  function percent(v) { v = num(v); return v === null ? DASH : (v * 100).toFixed(0) + " %"; }
  function count(v) { v = num(v); return v === null ? DASH : v.toFixed(0); }
  function yes(v) { return v === null || v === undefined ? DASH : (v ? "yes" : "no"); }
  function stamp(t) {
    t = num(t);
    return t === null ? DASH : new Date(t * 1000).toISOString().slice(11, 19) + " UTC";
  }
  function obj(v) { return v && typeof v === "object" ? v : {}; }

  // -- what arrives: buffered; painted at most every PAINT_MS --------------------------
  function receive(doc) {
    var tp = obj(doc.throughput), models = obj(tp.models), ids = Object.keys(models);
    if (tp.samples === null) ring = new Ring(); // the relay is stale: the chart starts over
    ring.take(tp.samples);
    rings.forEach(function (r, m) { // the server sends the lines to draw: no others
      if (!Object.prototype.hasOwnProperty.call(models, m)) rings.delete(m);
    });
    ids.slice(0, MAX_LINES).forEach(function (m) {
      if (!rings.has(m)) rings.set(m, new Ring());
      rings.get(m).take(models[m]);
    });
    var relay = obj(obj(doc.lmx).relay), now = num(doc.time);
    var req = num(relay.requests_total), err = num(relay.errors_total);
    var last = totals[totals.length - 1];
    if (now === null || req === null || err === null ||
        (last && (req < last.requests || err < last.errors))) {
      totals = []; // not fresh, or LMX restarted: the counters start again
    }
    if (now !== null && req !== null && err !== null && (!last || now > last.time)) {
      totals.push({ time: now, requests: req, errors: err });
      while (totals.length > 2 && now - totals[1].time >= RATE_SPAN) totals.shift();
    }
    pending = doc;
    schedule();
  }

  function schedule() {
    if (paintTimer !== null) return;
    var wait = Math.max(0, lastPaint + PAINT_MS - Date.now());
    paintTimer = setTimeout(function () {
      paintTimer = null;
      lastPaint = Date.now();
      if (pending !== null) { var doc = pending; pending = null; paint(doc); }
    }, wait);
  }

  function paint(doc) {
    var conn = obj(doc.connection), lmx = obj(doc.lmx), mem = obj(lmx.memory);
    var reqs = obj(lmx.requests), relay = obj(lmx.relay);
    set("doc-time", stamp(doc.time));
    set("lmx-version", text(lmx.version));
    var state = text(conn.state), wait = num(conn.backoff_seconds);
    $("connection").setAttribute("data-state", state);
    if ((state === "backoff" || state === "auth_failed") && wait !== null && wait > 0) {
      if (lmxText !== state || lmxWait !== wait) lmxRetryAt = Date.now() + wait * 1000;
    } else {
      lmxRetryAt = null;
    }
    lmxText = state;
    lmxWait = wait;
    var lastEvent = num(conn.last_event), now = num(doc.time);
    set("last-event", lastEvent === null ? "last event never" : now === null ? "last event " + DASH
      : "last event " + Math.max(now - lastEvent, 0).toFixed(1) + " s ago");
    set("last-error", typeof conn.last_error === "string" && conn.last_error !== ""
      ? "last lost at " + stamp(conn.last_error_time) + ": " + conn.last_error
      : "never lost");
    set("lmx-up", yes(lmx.up));
    set("lmx-health", text(lmx.health));
    set("lmx-shedding", yes(lmx.shedding));
    set("lmx-memory", gib(mem.used_bytes) + " of " + gib(mem.total_bytes) + " (" +
      percent(mem.usage_ratio) + "; LMX sheds load at " + percent(mem.threshold_ratio) + ")");
    var meter = $("memory-meter"), usage = num(mem.usage_ratio), high = num(mem.threshold_ratio);
    if (meter) {
      meter.hidden = usage === null;
      if (usage !== null) meter.value = usage;
      if (high !== null) meter.high = high;
    }
    set("lmx-in-flight", count(reqs.in_flight) + " of " + count(reqs.max_concurrent));
    set("lmx-requests-total", count(relay.requests_total));
    set("lmx-errors-total", count(relay.errors_total));
    var first = totals[0], newest = totals[totals.length - 1];
    var span = totals.length > 1 ? newest.time - first.time : 0;
    set("lmx-request-rate", span > 0 ? ((newest.requests - first.requests) / span).toFixed(2) : DASH);
    set("lmx-error-rate", span > 0 ? ((newest.errors - first.errors) / span).toFixed(2) : DASH);
    paintModels(Array.isArray(doc.models) ? doc.models : []);
    paintChart(obj(doc.throughput), now);
    tick();
  }

  function paintModels(models) {
    var key = JSON.stringify(models);
    if (key === modelsKey) return;
    modelsKey = key;
    var body = $("models"), rows = document.createDocumentFragment();
    if (models.length === 0) {
      var empty = document.createElement("tr"), cell = document.createElement("td");
      cell.colSpan = 5;
      cell.textContent = "no model loaded";
      empty.appendChild(cell);
      rows.appendChild(empty);
    }
    models.forEach(function (m) {
      m = obj(m);
      var row = document.createElement("tr"), name = document.createElement("th");
      name.scope = "row";
      name.textContent = text(m.model); // textContent: an id is text, never markup
      row.appendChild(name);
      [text(m.format), gib(m.memory_bytes), text(m.readiness), count(m.crashes)].forEach(
        function (value, i) {
          var td = document.createElement("td");
          td.textContent = value;
          if (i === 2) td.setAttribute("data-readiness", value);
          row.appendChild(td);
        });
      rows.appendChild(row);
    });
    while (body.firstChild) body.removeChild(body.firstChild);
    body.appendChild(rows);
  }

  // Drawn as web/chart.py draws it: one frame for every line, the models the server
  // chose (the busiest) listed by id, a model's colour its place in that list.
  function paintChart(tp, now) {
    var windowS = num(tp.window_seconds), pts = ring.within(now, windowS), shown = [];
    rings.forEach(function (r, m) {
      var mp = r.within(now, windowS);
      if (mp.length) shown.push({ model: m, pts: mp });
    });
    shown.sort(function (a, b) { return a.model < b.model ? -1 : a.model > b.model ? 1 : 0; });
    var fr = frame([pts].concat(shown.map(function (l) { return l.pts; })));
    $("chart-line").setAttribute("points", coords(pts, fr));
    var group = $("chart-models"), legend = $("chart-legend");
    var polys = document.createDocumentFragment(), items = document.createDocumentFragment();
    shown.forEach(function (l, i) {
      var poly = $("chart-line").cloneNode(false); // an SVG element, without a namespace URL
      poly.removeAttribute("id");
      poly.setAttribute("class", "model s" + i);
      poly.setAttribute("data-model", l.model);
      poly.setAttribute("points", coords(l.pts, fr));
      polys.appendChild(poly);
      var li = document.createElement("li"), key = document.createElement("span");
      var name = document.createElement("span"), rate = document.createElement("strong");
      li.className = "s" + i;
      li.setAttribute("data-model", l.model);
      key.className = "key";
      name.textContent = l.model; // textContent: an id is text, never markup
      rate.textContent = l.pts[l.pts.length - 1].tokensPerSecond.toFixed(1);
      li.appendChild(key);
      li.appendChild(document.createTextNode(" "));
      li.appendChild(name);
      li.appendChild(document.createTextNode(" "));
      li.appendChild(rate);
      li.appendChild(document.createTextNode(" tokens/s"));
      items.appendChild(li);
    });
    var followed = num(tp.models_with_samples);
    if (followed !== null && followed > shown.length) {
      var more = document.createElement("li");
      more.className = "more";
      more.textContent = "and " + (followed - shown.length).toFixed(0) + " more, not drawn";
      items.appendChild(more);
    }
    while (group.firstChild) group.removeChild(group.firstChild);
    group.appendChild(polys);
    while (legend.firstChild) legend.removeChild(legend.firstChild);
    legend.appendChild(items);
    if (pts.length) {
      var peak = 0;
      pts.forEach(function (p) { peak = Math.max(peak, p.tokensPerSecond); });
      set("tps-latest", pts[pts.length - 1].tokensPerSecond.toFixed(1) + " tokens/s");
      set("tps-peak", peak.toFixed(1));
    } else {
      set("tps-latest", DASH);
      set("tps-peak", DASH);
    }
    set("tps-window", windowS === null ? DASH : windowS.toFixed(0) + " s");
    var every = num(tp.resolution_seconds); // 1 s while watched, the relay's interval else
    set("tps-resolution", every === null ? DASH : String(every) + " s");
    $("chart").setAttribute("data-count", String(pts.length));
  }

  function frame(lines) { // {t0, span, top} over every point of every line, or null
    var t0 = Infinity, t1 = -Infinity, top = 1;
    lines.forEach(function (line) {
      line.forEach(function (p) {
        t0 = Math.min(t0, p.timestamp);
        t1 = Math.max(t1, p.timestamp);
        top = Math.max(top, p.tokensPerSecond);
      });
    });
    return t0 === Infinity ? null : { t0: t0, span: Math.max(t1 - t0, 1), top: top };
  }
  function coords(pts, fr) {
    if (fr === null) return "";
    return pts.map(function (p) {
      return ((p.timestamp - fr.t0) / fr.span * W).toFixed(1) + "," +
        (H - p.tokensPerSecond / fr.top * (H - 10)).toFixed(1);
    }).join(" ");
  }

  // -- countdowns: LMX's (from the exporter) and ours (to the exporter) ----------------
  function seconds(at) { return Math.max(0, Math.ceil((at - Date.now()) / 1000)); }
  function tick() {
    if (lmxText !== null) {
      set("conn-state", lmxRetryAt === null ? lmxText
        : lmxText + ", retrying LMX in " + seconds(lmxRetryAt) + " s");
    }
    if (retryAt !== null) {
      status("reconnecting", "disconnected from the exporter, reconnecting in " +
        seconds(retryAt) + " s");
    }
  }
  function status(state, words) {
    $("view-status").setAttribute("data-state", state);
    set("view-state", words);
  }

  // -- the stream --------------------------------------------------------------------
  function connect() {
    retryAt = null;
    retryTimer = null;
    status("connecting", "connecting");
    source = new EventSource("/api/live/events");
    var onDoc = function (e) {
      var doc;
      try { doc = JSON.parse(e.data); } catch (x) { return; }
      failures = 0; // a connection that delivers resets the backoff
      status("live", "live");
      receive(obj(doc));
    };
    source.addEventListener("live", onDoc);
    source.addEventListener("change", onDoc);
    source.onerror = function () {
      source.close(); // never the browser's fixed retry: ours, with backoff
      source = null;
      failures += 1;
      var d = Math.min(MAX_WAIT, BASE * Math.pow(2, failures - 1));
      var wait = d / 2 + Math.random() * d / 2;
      retryAt = Date.now() + wait * 1000;
      tick();
      retryTimer = setTimeout(connect, wait * 1000);
    };
  }

  // A page left for another is kept whole in the back/forward cache, stream and all:
  // it would hold one of the exporter's few viewer places (and its 1 s relay reads)
  // for a minute after. So leaving closes the stream; coming back reopens it.
  function leave() {
    if (source !== null) { source.close(); source = null; }
    if (retryTimer !== null) { clearTimeout(retryTimer); retryTimer = null; }
  }

  if (typeof EventSource === "undefined") return; // the server's snapshot stays
  setInterval(tick, 1000);
  window.addEventListener("pagehide", leave);
  window.addEventListener("pageshow", function (e) {
    if (e.persisted) { leave(); failures = 0; connect(); }
  });
  connect();
})();
