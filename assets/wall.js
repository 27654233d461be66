/* Live updater of the wall (and of every live screen).
 *
 * The server renders a screen once per navigation from the view model (layouts/viewmodel.py).
 * This script keeps it live: it opens the screen's server-sent-event stream (data-stream on
 * .live-screen), merges each message (only the changed top-level keys of the view model) and
 * writes the values into the DOM in place: numbers into [data-figure] / [data-child] elements
 * (text + data-value), ranking order via style.order, chart data via Plotly.react (updateChart)
 * whose meta.series names a view-model path. It also judges freshness once a second and marks
 * panels stale (数据延迟 since hh:mm) when messages stop, the aggregator stalls or Redis is
 * down, and clears that by itself when data flows again. One interval, one observer, one
 * EventSource at a time: nothing grows while the wall runs for days.
 *
 * When the viewer's session ends (signed out, removed, password or scope changed) the server
 * closes the stream with an `end` event and refuses a new one: the page then reloads, which
 * leads to the sign-in page (or to the "not allowed" message), instead of reconnecting for
 * ever. A refused reconnect or a screen gone stale asks /auth/ping first: only a 401 (not
 * signed in) or a scope change reloads; a server or Redis that is down is waited for.
 */
(function () {
  "use strict";
  if (window.pinganWall) { return; }
  var state = { vm: {}, source: null, url: null, lastMsg: 0, i18n: {}, mapSent: {}, cases: {}, casesHideout: {},
                chartsAt: 0, chartsTimer: null, retryAt: 0, retries: 0, leaving: false };

  /* assets/format.js, looked up when used (Dash loads the assets in name order). */
  function format(v, kind) { return window.pinganFormat.fmt(v, kind); }

  function getPath(obj, path) {
    var parts = path.split(".");
    var cur = obj;
    for (var i = 0; i < parts.length; i++) {
      if (cur === null || cur === undefined) { return undefined; }
      cur = cur[parts[i]];
    }
    return cur;
  }

  /* "a.b" → list; "a[].f" → field f of each row of list a; "a{}" → values of dict a in the
     order of the trace's x (its keys). */
  function series(vm, path, xs) {
    var m = /^(.*)\[\]\.(.+)$/.exec(path);
    if (m) {
      var rows = getPath(vm, m[1]);
      return Array.isArray(rows) ? rows.map(function (r) { return r[m[2]]; }) : undefined;
    }
    if (/\{\}$/.test(path)) {
      var d = getPath(vm, path.slice(0, -2));
      if (!d || !xs) { return undefined; }
      return Array.prototype.map.call(xs, function (k) { return d[k]; });
    }
    return getPath(vm, path);
  }

  function sameArray(a, b) {
    if (!a || !b || a.length !== b.length) { return false; }
    for (var i = 0; i < a.length; i++) { if (a[i] !== b[i]) { return false; } }
    return true;
  }

  function setValue(el, v) {
    var s = (v === null || v === undefined) ? "" : String(v);
    if (el.getAttribute("data-value") !== s) {
      el.setAttribute("data-value", s);
      el.textContent = format(v, el.getAttribute("data-format"));
    }
  }

  function render(root) {
    var vm = state.vm;
    if (vm.figures) {
      root.querySelectorAll("[data-figure]").forEach(function (el) {
        var p = el.getAttribute("data-figure");
        if (Object.prototype.hasOwnProperty.call(vm.figures, p)) { setValue(el, vm.figures[p]); }
      });
    }
    if (vm.children) {
      var byCode = {};
      vm.children.forEach(function (c, i) { byCode[c.code] = { row: c, rank: i }; });
      root.querySelectorAll("[data-child]").forEach(function (el) {
        var c = byCode[el.getAttribute("data-child")];
        if (c) { setValue(el, c.row[el.getAttribute("data-field")]); }
      });
      root.querySelectorAll("[data-rank-row]").forEach(function (el) {
        var c = byCode[el.getAttribute("data-rank-row")];
        if (c) { el.style.order = String(c.rank); }
      });
    }
    if (vm.in_call) {
      var calling = {};
      vm.in_call.forEach(function (c) { calling[c] = true; });
      root.querySelectorAll("[data-vc-code]").forEach(function (el) {
        el.classList.toggle("in-call", !!calling[el.getAttribute("data-vc-code")]);
      });
      root.querySelectorAll("[data-rank-row]").forEach(function (el) {
        el.classList.toggle("in-call", !!calling[el.getAttribute("data-rank-row")]);
      });
    }
    renderCharts(root);
  }

  /* Chart updates go through Plotly.react, not Plotly.restyle / relayout: dcc.Graph turns
     every plotly_restyle / plotly_relayout event into a Dash prop change (restyleData,
     relayoutData), i.e. a store dispatch and a re-render of the Graph for every live update,
     which nothing here listens to. Plotly.react redraws the same without those events.
     `traces`: {index: {"path.to.key": value}}, `layout`: {"shapes[0].x1": value, ...}. */
  function setPath(obj, path, value) {
    var keys = path.replace(/\[(\d+)\]/g, ".$1").split(".");
    var root = Array.isArray(obj) ? obj.slice() : Object.assign({}, obj);
    var cur = root;
    for (var i = 0; i < keys.length - 1; i++) {
      var next = cur[keys[i]];
      next = Array.isArray(next) ? next.slice() : Object.assign({}, next || {});
      cur[keys[i]] = next;
      cur = next;
    }
    cur[keys[keys.length - 1]] = value;
    return root;
  }
  function updateChart(gd, traces, layout) {
    if (!window.Plotly || !gd || !gd.data) { return; }
    var data = gd.data.map(function (trace, i) {
      var upd = traces && traces[i];
      if (!upd) { return trace; }
      var out = trace;
      Object.keys(upd).forEach(function (k) { out = setPath(out, k, upd[k]); });
      return out;
    });
    var lay = gd.layout || {};
    Object.keys(layout || {}).forEach(function (k) { lay = setPath(lay, k, layout[k]); });
    window.Plotly.react(gd, data, lay);
  }

  /* Numbers update on every message; charts at most every CHART_GAP_MS (a redraw of eight
     plots costs the main thread ~0.3 s on a small PC, and trends need not move 4x a second). */
  var CHART_GAP_MS = 2000;
  function renderCharts(root) {
    if (!window.Plotly) { return; }
    var wait = state.chartsAt + CHART_GAP_MS - Date.now();
    if (wait > 0) {
      if (!state.chartsTimer) {
        state.chartsTimer = window.setTimeout(function () {
          state.chartsTimer = null;
          var r = document.querySelector(".live-screen");
          if (r) { renderCharts(r); }
        }, wait);
      }
      return;
    }
    state.chartsAt = Date.now();
    var vm = state.vm;
    root.querySelectorAll(".js-plotly-plot").forEach(function (gd) {
      var changes = {}, any = false;
      (gd.data || []).forEach(function (trace, i) {
        var meta = trace.meta;
        if (!meta || typeof meta !== "object" || !meta.series) { return; }
        var upd = {};
        if (trace.orientation === "h") {  // values on x, categories (the keys) on y
          var xv = series(vm, meta.series, trace.y);
          if (xv && !sameArray(xv, trace.x)) { upd.x = [xv]; }
        } else {
          if (meta.x && !/\{\}$/.test(meta.x)) {
            var x = series(vm, meta.x);
            if (x && !sameArray(x, trace.x)) { upd.x = [x]; }
          }
          var y = series(vm, meta.series, upd.x ? upd.x[0] : trace.x);
          if (y && !sameArray(y, trace.y)) { upd.y = [y]; }
        }
        if (upd.x) { changes[i] = Object.assign(changes[i] || {}, {x: upd.x[0]}); any = true; }
        if (upd.y) { changes[i] = Object.assign(changes[i] || {}, {y: upd.y[0]}); any = true; }
      });
      if (any) { updateChart(gd, changes, null); }
    });
  }

  /* Times and the date in the configured zone (data-tz on .live-screen: Settings.tz), not the
     browser's; the date rolls over at midnight there. */
  function tzOf(root) { return root.getAttribute("data-tz") || ""; }
  function hhmm(ms, root) { return window.pinganFormat.hhmm(ms, tzOf(root)); }

  function writeClock(root) {
    var now = Date.now();
    var clock = root.querySelector(".wall-clock");
    if (clock) {
      var s = window.pinganFormat.clock(now, tzOf(root));
      if (clock.textContent !== s) { clock.textContent = s; }
    }
    var day = root.querySelector(".wall-date");
    if (day && state.i18n.wd_0) {
      var d = window.pinganFormat.dateText(now, tzOf(root), root.getAttribute("data-lang"), state.i18n);
      if (day.textContent !== d) { day.textContent = d; }
    }
  }

  function judge(root) {
    var staleAfter = parseFloat(root.getAttribute("data-stale-after") || "10") * 1000;
    var f = state.vm.freshness;
    var now = Date.now();
    var serverNow = f ? f.now + (now - state.lastMsg) : now;
    var stale = false;
    var since = null;
    var staleShards = {};
    if (!state.lastMsg || now - state.lastMsg > staleAfter) {
      stale = true;
      since = state.lastMsg || null;
    } else if (f && f.redis_down_since) {
      stale = true;
      since = f.redis_down_since;
    } else if (f) {
      Object.keys(f.shards || {}).forEach(function (s) {
        var hb = f.shards[s].heartbeat;
        if (!hb || serverNow - hb > staleAfter) {
          staleShards[s] = true;
          stale = true;
          since = since === null ? (hb || null) : Math.min(since, hb || since);
        }
      });
    }
    var asOf = 0;
    if (f) {
      Object.keys(f.shards || {}).forEach(function (s) { asOf = Math.max(asOf, f.shards[s].applied_at || 0); });
    }
    var t = state.i18n;
    var text;
    if (stale) {
      text = (t.stale || "数据延迟") + (since ? " " + (t.since || "自") + " " + hhmm(since - (serverNow - now), root) : "");
    } else if (asOf) {
      var age = Math.max(0, Math.round((serverNow - asOf) / 1000));
      text = (t.live || "实时") + " · " + (t.ago_s || "{n}秒前").replace("{n}", age);
    } else {
      text = t.live || "实时";
    }
    root.querySelectorAll(".panel").forEach(function (p) { p.classList.toggle("stale", stale); });
    root.querySelectorAll(".age").forEach(function (el) {
      if (el.textContent !== text) { el.textContent = text; }
      el.classList.toggle("is-stale", stale);
    });
    root.classList.toggle("is-stale", stale);
    root.setAttribute("data-stale", stale ? "1" : "0");
    (state.vm.children || []).forEach(function (c) {
      var row = root.querySelector('[data-rank-row="' + c.code + '"]');
      if (row) { row.classList.toggle("stale", !!staleShards[c.shard]); }
    });
    writeClock(root);
  }

  /* Messages are coalesced: the top-level keys of every patch that arrived since the last
     frame are merged (later wins) and applied once per frame. A screen whose main thread
     falls behind (a small wall PC, a busy tablet) skips intermediate states instead of
     queueing renders, so its memory stays flat however fast the data moves. */
  var queued = null;
  function flush() {
    var patch = queued;
    queued = null;
    apply(patch);
  }
  function onMessage(ev) {
    var patch;
    try { patch = JSON.parse(ev.data); } catch (e) { return; }
    if (queued) { Object.assign(queued, patch); return; }
    queued = patch;
    if (document.hidden) { window.setTimeout(flush, 0); } else { window.requestAnimationFrame(flush); }
  }

  /* The map's live layers: hideouts and recent cases, by component id (layouts/map.py). */
  function applyMap(props) {
    var setProps = window.dash_clientside && window.dash_clientside.set_props;
    if (!setProps) { return; }
    if (!document.querySelector(".pm-box")) { return; }  // layers have no DOM element of their own
    Object.keys(props).forEach(function (id) {
      if (/-cases$/.test(id)) { mergeCases(id, props[id]); drawCases(id); return; }
      // only layers whose props changed: restyling thousands of camera markers for nothing
      // would keep the main thread busy
      var json = JSON.stringify(props[id]);
      if (state.mapSent[id] === json) { return; }
      state.mapSent[id] = json;
      try { setProps(id, props[id]); } catch (e) { /* not on this screen */ }
    });
  }

  /* Recent cases arrive whole (`data`) in a stream's first message, then as deltas (`add`
     features, `drop` ids: dashboard/live.py cases_delta); kept by case id per layer. */
  function mergeCases(id, props) {
    if (!props) { return; }
    var have = state.cases[id];
    if (props.data || !have) {
      have = state.cases[id] = {};
      ((props.data && props.data.features) || []).forEach(function (f) { have[f.properties.eid] = f; });
    }
    (props.add || []).forEach(function (f) { have[f.properties.eid] = f; });
    (props.drop || []).forEach(function (eid) { delete have[eid]; });
    if (props.hideout) { state.casesHideout[id] = props.hideout; }
  }

  /* Recent cases: drawn and faded in place by pinganMap.setCases (plain Leaflet). */
  function drawCases(id) {
    var cases = state.cases[id];
    if (!window.pinganMap || !window.pinganMap.setCases || !cases) { return; }
    var props = {hideout: state.casesHideout[id],
                 data: {type: "FeatureCollection", features: Object.values(cases)}};
    // the briefing view replays past markers on this map (assets/brief.js): leave them be
    if (document.querySelector(".live-screen [data-replay='1']")) { return; }
    var f = state.vm.freshness;
    var h = Object.assign({}, props.hideout || {},
      f ? { now: f.now + (Date.now() - state.lastMsg) } : {});
    window.pinganMap.setCases(id.replace(/-cases$/, ""), props.data, h);
  }

  function tickCases() {
    if (!document.querySelector(".pm-box")) { return; }
    Object.keys(state.cases).forEach(drawCases);
  }

  function apply(patch) {
    if (!patch) { return; }
    state.lastMsg = Date.now();
    Object.keys(patch).forEach(function (k) { state.vm[k] = patch[k]; });
    if (patch.map) { applyMap(patch.map); }
    var root = document.querySelector(".live-screen");
    if (root) { render(root); judge(root); }
  }

  /* Is the viewer still signed in? At most one question every 5 s (unless `force`). A 401
     reloads the page: the server answers it with the sign-in page, `next` = this screen. */
  var session = { at: 0, busy: false };
  function checkSession(force, reloadIfSignedIn) {
    var now = Date.now();
    if (state.leaving || session.busy || (!force && now - session.at < 5000) || !window.fetch) { return; }
    session.busy = true;
    session.at = now;
    window.fetch("/auth/ping", { credentials: "same-origin", cache: "no-store" }).then(function (r) {
      session.busy = false;
      if (r.status === 401 || (r.ok && reloadIfSignedIn)) { leave(); }
    }, function () { session.busy = false; });
  }
  function leave() {
    state.leaving = true;
    if (state.source) { state.source.close(); state.source = null; }
    window.location.reload();
  }

  function onEnd(ev) {
    var reason = "";
    try { reason = JSON.parse(ev.data).reason; } catch (e) { reason = ""; }
    if (state.source) { state.source.close(); state.source = null; }
    state.retryAt = Date.now() + 2000;
    // signed out: the ping says 401; scope: still signed in, but this screen is no longer theirs
    checkSession(true, reason === "scope");
  }

  function onError() {
    var src = state.source;
    if (!src || src.readyState !== 2) { return; }  // CONNECTING: the browser retries by itself
    // the server refused the stream (401, 403, 429, 5xx) or is gone: back off, ask why
    state.source = null;
    state.retries = Math.min(state.retries + 1, 5);
    state.retryAt = Date.now() + 1000 * Math.pow(2, state.retries);
    checkSession(true, false);
  }

  function connect() {
    if (state.leaving) { return; }
    var root = document.querySelector(".live-screen");
    var url = root ? root.getAttribute("data-stream") : null;
    var canvas = root ? root.querySelector("[data-i18n]") : null;
    if (canvas) {
      try { state.i18n = JSON.parse(canvas.getAttribute("data-i18n")); } catch (e) { state.i18n = {}; }
    }
    if (url === state.url && state.source && state.source.readyState !== 2) { return; }
    if (url === state.url && Date.now() < state.retryAt) { return; }  // backing off
    if (url !== state.url) {
      state.retries = 0; state.retryAt = 0;
      state.vm = {}; state.lastMsg = 0; state.mapSent = {}; state.cases = {}; state.casesHideout = {};
      queued = null;  // a patch of the previous centre (assets/drill.js re-points the stream)
    }
    if (state.source) { state.source.close(); state.source = null; }
    state.url = url;
    if (url && window.EventSource) {
      state.source = new EventSource(url);
      state.source.onmessage = function (ev) { state.retries = 0; onMessage(ev); };
      state.source.addEventListener("end", onEnd);
      state.source.onerror = onError;
    }
    if (root && !state.lastMsg) { state.lastMsg = Date.now(); }  // rendered just now
  }

  var pending = false;
  new MutationObserver(function () {
    if (pending) { return; }
    pending = true;
    window.requestAnimationFrame(function () { pending = false; connect(); });
  }).observe(document.documentElement, { childList: true, subtree: true });

  /* Leaving the page (a reload, a link, the back-forward cache): let go of the stream, else it
     keeps one of the browser's six connections to the server after the page is gone, and
     after a few navigations the next page's requests queue behind them for ever (its map's
     lazily loaded layers never come). Back again, the interval below reconnects. */
  window.addEventListener("pagehide", function () {
    if (state.source) { state.source.close(); state.source = null; }
  });

  window.setInterval(function () {
    connect();
    var root = document.querySelector(".live-screen");
    if (root) {
      judge(root);
      tickCases();
      // no message for a while (the polling fallback has no stream to end): still signed in?
      if (root.getAttribute("data-stale") === "1") { checkSession(false, false); }
    }
  }, 1000);

  /* 视频连线 from places Dash does not render (map popups): a request the vc callback takes. */
  function requestCall(code, group) {
    if (window.dash_clientside && window.dash_clientside.set_props) {
      window.dash_clientside.set_props("vc-request", { data: { code: code, group: !!group, t: Date.now() } });
    }
  }

  window.pinganWall = { apply: apply, format: format, series: series, state: state, call: requestCall,
                        updateChart: updateChart, connect: connect };

  /* The polling fallback (?push=poll): a Dash callback delivers the same patches. */
  window.dash_clientside = Object.assign({}, window.dash_clientside, {
    pingan: {
      applyPatch: function (vm) {
        if (vm) { apply(vm); }
        return "";
      },
      openWindow: function (url) {
        if (url) { window.open(url, "_blank", "noopener"); }
        return "";
      }
    }
  });
})();
