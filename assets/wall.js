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
                chartsAt: 0, chartsTimer: null, retryAt: 0, retries: 0, leaving: false, marks: {} };

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
    renderAlerts(root);
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
      if (/-marks$/.test(id)) { state.marks[id] = props[id]; drawMarks(); return; }
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
    if (patch.alerts) { drawMarks(); }
    if (Object.prototype.hasOwnProperty.call(patch, "directive")) { command.directive(patch.directive); }
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
    var url = withScreen(root ? root.getAttribute("data-stream") : null);
    var canvas = root ? root.querySelector("[data-i18n]") : null;
    if (canvas) {
      try { state.i18n = JSON.parse(canvas.getAttribute("data-i18n")); } catch (e) { state.i18n = {}; }
    }
    if (url === state.url && state.source && state.source.readyState !== 2) { return; }
    if (url === state.url && Date.now() < state.retryAt) { return; }  // backing off
    if (url !== state.url) {
      state.retries = 0; state.retryAt = 0;
      state.vm = {}; state.lastMsg = 0; state.mapSent = {}; state.cases = {}; state.casesHideout = {};
      state.marks = {};
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
      drawMarks();
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

  /* -- the wall as a command post (issue 10) -------------------------------------------------
   * The alert strip (the push's `alerts`: layouts/viewmodel.alert_rows): one element per
   * unacknowledged alert with data-alert=<id>, newest first, what fits on one line and a
   * "+N more" count; the panel of each alert's rule and its region's ranking row are marked,
   * its region pulses on the map (pinganMap.setMarks), a new one chimes with ?sound=1 (a tone
   * made with WebAudio; a kiosk browser needs --autoplay-policy=no-user-gesture-required).
   * The counts with cases behind them ([data-cases]) open the list of those cases for the
   * centre in view (GET /api/cases), and a wall of a console's group (?screen=GROUP) follows
   * the group's directive (the push's `directive`): it drills in place to its centre and
   * spotlights its case (GET /api/case/<eid>) or alert; each seq acts once. Overlays close by
   * themselves (nobody touches the wall). Text from the server is only ever textContent. */
  var OVERLAY_S = 60;
  var LIST_LIMIT = 20;
  var SEV_RANK = { critical: 3, major: 2, minor: 1 };
  var command = { seq: null, chimes: 0, seen: null, seenCode: null, spotAlert: "", overlay: null,
                  overlayTimer: null, closeAt: 0, fetches: 0 };

  function params() { return new URLSearchParams(window.location.search); }

  /* The stream of a wall that follows a console's group carries the group (?screen=). */
  function withScreen(url) {
    if (!url) { return url; }
    var g = params().get("screen");
    return g && /^[A-Za-z0-9_-]{1,32}$/.test(g) ? url + "&screen=" + encodeURIComponent(g) : url;
  }

  function tr(key, vals) {
    var s = state.i18n[key] || key;
    Object.keys(vals || {}).forEach(function (k) { s = s.split("{" + k + "}").join(String(vals[k])); });
    return s;
  }

  function node(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }

  function rootEl() { return document.querySelector(".live-screen"); }
  function currentCentre() {
    var c = document.querySelector(".live-screen .wall-canvas");
    return c ? c.getAttribute("data-centre") : null;
  }

  function centreName(code) {
    var vm = state.vm, found = null;
    (vm.children || []).concat(vm.breadcrumb || []).forEach(function (c) { if (c.code === code) { found = c.name; } });
    ((vm.alerts && vm.alerts.rows) || []).forEach(function (a) { if (!found && a.centre === code) { found = a.name; } });
    if (!found && vm.code === code) { found = vm.name; }
    return found || code;
  }

  function when(ms) {
    if (!ms) { return "—"; }
    var root = rootEl(), tz = root ? tzOf(root) : "";
    var p = window.pinganFormat.parts(ms, tz), today = window.pinganFormat.parts(Date.now(), tz);
    var t = window.pinganFormat.hhmm(ms, tz);
    return (p.year === today.year && p.month === today.month && p.day === today.day) ? t
      : p.month + "/" + p.day + " " + t;
  }

  function span(ms) {
    var m = Math.round((ms || 0) / 60000);
    if (m < 60) { return tr("wc_m", { n: Math.max(1, m) }); }
    if (m < 48 * 60) { return tr("wc_h", { n: Math.round(m / 6) / 10 }); }
    return tr("wc_d", { n: Math.round(m / 144) / 10 });
  }

  function alertText(a) {
    var parts = [tr("wc_rule_" + a.rule), a.name];
    var d = a.detail || {};
    if (d.hours !== undefined) { parts.push(tr("wc_h", { n: d.hours })); }
    if (d.down !== undefined) { parts.push(tr("wc_cams", { n: d.down })); }
    if (d.seconds !== undefined) { parts.push(span(d.seconds * 1000)); }
    if (d.count !== undefined) { parts.push(tr("wc_this_hour", { n: d.count })); }
    return parts.join(" · ");
  }

  /* Hide what does not fit on the strip's line and count it in "+N more" (the first alert
     always shows, shortened with an ellipsis if it must). */
  function fitAlerts(strip) {
    var data = state.vm.alerts;
    var list = strip.querySelector(".alert-list"), more = strip.querySelector(".alert-more");
    if (!list || !more || !data) { return; }
    var items = list.querySelectorAll(".alert-item");
    items.forEach(function (i) { i.hidden = false; i.classList.remove("squeeze"); });
    var extra = Math.max(0, (data.total || 0) - items.length);
    more.hidden = false;
    more.textContent = tr("wc_alerts_more", { n: data.total || 0 });  // the widest it can be
    var right = list.getBoundingClientRect().right + 0.5, cut = 0;
    items.forEach(function (i, k) {
      if (k > 0 && (cut || i.getBoundingClientRect().right > right)) { i.hidden = true; cut++; }
    });
    if (items.length && items[0].getBoundingClientRect().right > right) { items[0].classList.add("squeeze"); }
    if (cut + extra > 0) {
      more.textContent = tr("wc_alerts_more", { n: cut + extra });
    } else {
      more.hidden = true;
    }
    strip.setAttribute("data-alert-shown", String(items.length - cut));
  }

  /* The panels and ranking rows of every unacknowledged alert (`panels` / `regions`: the
     worst severity over all of them, also those the strip has no room for). */
  function markPanels(root, data) {
    var panels = data.panels || {}, regions = data.regions || {};
    root.querySelectorAll(".panel[data-panel]").forEach(function (p) {
      var sev = panels[p.getAttribute("data-panel")];
      if (!sev && !p.classList.contains("alerted")) { return; }
      p.classList.toggle("alerted", !!sev);
      ["critical", "major", "minor"].forEach(function (s) { p.classList.toggle("alert-" + s, sev === s); });
    });
    root.querySelectorAll("[data-rank-row]").forEach(function (r) {
      r.classList.toggle("alerted", !!regions[r.getAttribute("data-rank-row")]);
    });
  }

  function renderAlerts(root) {
    var data = state.vm.alerts;
    var strip = root.querySelector(".alert-strip");
    if (!strip || !data || !Array.isArray(data.rows)) { return; }
    var list = strip.querySelector(".alert-list");
    var key = data.code + "|" + data.total + "|" + command.spotAlert + "|" +
      data.rows.map(function (a) { return a.id; }).join(",");
    if (!list || list.__wcKey === key) { return; }
    list.__wcKey = key;
    var first = command.seen === null || command.seenCode !== data.code;
    var fresh = [];
    var items = data.rows.map(function (a) {
      var sev = SEV_RANK[a.severity] ? a.severity : "minor";
      var text = alertText(a);
      var item = node("div", "alert-item sev-" + sev);
      item.setAttribute("data-alert", String(a.id));
      item.setAttribute("data-region", String(a.region));
      item.setAttribute("data-eid", String(a.eid || ""));
      item.setAttribute("data-severity", sev);
      item.title = text;
      item.appendChild(node("span", "alert-sev", tr("wc_sev_" + sev)));
      item.appendChild(node("span", "alert-text", text));
      item.appendChild(node("span", "alert-time", a.raised_at ? when(a.raised_at) : ""));
      if (!first && !command.seen[a.id]) { item.classList.add("is-new"); fresh.push(a); }
      if (command.spotAlert && command.spotAlert === a.id) { item.classList.add("is-spot"); }
      return item;
    });
    if (!items.length) { items = [node("span", "alert-none", tr("wc_alerts_none"))]; }
    list.replaceChildren.apply(list, items);
    command.seen = {};
    data.rows.forEach(function (a) { command.seen[a.id] = true; });
    command.seenCode = data.code;
    strip.setAttribute("data-alert-count", String(data.total || 0));
    fitAlerts(strip);
    markPanels(root, data);
    if (fresh.length) { chime(fresh); }
  }

  var audio = null;
  function chime(fresh) {
    if (params().get("sound") !== "1") { return; }
    var AC = window.AudioContext || window.webkitAudioContext;
    if (!AC) { return; }
    try {
      audio = audio || new AC();
      if (audio.state === "suspended") { audio.resume(); }
      var crit = fresh.some(function (a) { return a.severity === "critical"; });
      var t0 = audio.currentTime + 0.02;
      [880, crit ? 1318 : 660].forEach(function (f, i) {
        var o = audio.createOscillator(), g = audio.createGain(), at = t0 + i * 0.2;
        o.type = "sine";
        o.frequency.value = f;
        g.gain.setValueAtTime(0.0001, at);
        g.gain.exponentialRampToValueAtTime(0.3, at + 0.02);
        g.gain.exponentialRampToValueAtTime(0.0001, at + 0.18);
        o.connect(g);
        g.connect(audio.destination);
        o.start(at);
        o.stop(at + 0.2);
      });
      command.chimes++;
    } catch (e) { /* no audio device: the strip still flashes */ }
  }

  function drawMarks() {
    if (!window.pinganMap || !window.pinganMap.setMarks || !document.querySelector(".pm-box")) { return; }
    if (document.querySelector(".live-screen [data-replay='1']")) { return; }
    var al = state.vm.alerts;
    Object.keys(state.marks).forEach(function (id) {
      var m = state.marks[id];
      var regions = al && m && al.code === m.code ? al.regions : null;
      window.pinganMap.setMarks(id.replace(/-marks$/, ""), m, regions || {});
    });
  }

  // -- overlays: the cases behind a count, the spotlight card ---------------------------------
  function closeOverlay() {
    if (command.overlayTimer) { window.clearInterval(command.overlayTimer); command.overlayTimer = null; }
    if (command.overlay) { command.overlay.remove(); command.overlay = null; }
  }

  function tickOverlay() {
    var o = command.overlay;
    if (!o) { return; }
    var left = Math.ceil((command.closeAt - Date.now()) / 1000);
    if (left <= 0) { closeOverlay(); return; }
    var c = o.querySelector(".wc-closein");
    if (c) { c.textContent = tr("wc_close_in", { s: left }); }
  }

  function openOverlay(kind, title, note, body, attrs) {
    closeOverlay();
    var box = node("div", "wc-overlay wc-" + kind);
    box.setAttribute("role", "dialog");
    box.setAttribute("data-overlay", kind);
    box.setAttribute("data-centre", currentCentre() || "");
    Object.keys(attrs || {}).forEach(function (k) { box.setAttribute(k, String(attrs[k])); });
    var head = node("div", "wc-head");
    head.appendChild(node("div", "wc-title", title));
    if (note) { head.appendChild(node("div", "wc-note", note)); }
    head.appendChild(node("div", "wc-closein"));
    var x = node("button", "wc-x", "×");
    x.type = "button";
    x.title = tr("wc_close");
    x.addEventListener("click", closeOverlay);
    head.appendChild(x);
    var b = node("div", "wc-body");
    b.appendChild(body);
    box.appendChild(head);
    box.appendChild(b);
    document.body.appendChild(box);
    command.overlay = box;
    command.closeAt = Date.now() + OVERLAY_S * 1000;
    tickOverlay();
    command.overlayTimer = window.setInterval(tickOverlay, 1000);
    return box;
  }

  function getJSON(url) {
    command.fetches++;
    return window.fetch(url, { credentials: "same-origin", cache: "no-store",
                               headers: { Accept: "application/json" } })
      .then(function (r) {
        if (!r.ok) { throw { status: r.status }; }
        return r.json();
      });
  }

  var CASE_COLUMNS = ["eid", "category", "channel", "centre", "tier", "status", "reported", "due",
                      "over", "supervised", "summary"];

  function caseCell(row, col) {
    switch (col) {
      case "eid": return row.eid;
      case "category": return tr("cat_" + row.category);
      case "channel": return tr("ch_" + row.channel);
      case "centre": return row.centre_name || centreName(row.centre);
      case "tier": return row.tier >= 0 ? tr("level_" + row.tier) : "—";
      case "status": return tr("wc_st_" + row.status);
      case "reported": return when(row.reported_at);
      case "due": return when(row.due);
      case "over": return row.overdue_ms > 0 ? span(row.overdue_ms) : "";
      case "supervised": return row.supervised ? String(row.supervised) : "";
      case "summary": return row.summary || "";
    }
    return "";
  }

  function casesTable(data) {
    var rows = (data && data.cases) || [];
    if (!rows.length) { return node("div", "wc-empty", tr("wc_cases_empty")); }
    var table = node("table", "wc-table");
    var head = node("tr");
    CASE_COLUMNS.forEach(function (c) { head.appendChild(node("th", "wc-c-" + c, tr("wc_col_" + c))); });
    var thead = node("thead");
    thead.appendChild(head);
    var tbody = node("tbody");
    rows.slice(0, LIST_LIMIT).forEach(function (row) {
      var tr_ = node("tr", (row.overdue_ms > 0 ? "is-overdue " : "") + (row.urgency === "urgent" ? "is-urgent" : ""));
      tr_.setAttribute("data-eid", String(row.eid));
      CASE_COLUMNS.forEach(function (c) { tr_.appendChild(node("td", "wc-c-" + c, caseCell(row, c))); });
      tbody.appendChild(tr_);
    });
    table.appendChild(thead);
    table.appendChild(tbody);
    return table;
  }

  /* The cases behind a count of the centre in view. */
  function openCases(status, label) {
    var code = currentCentre();
    if (!code || !window.fetch) { return Promise.resolve(null); }
    var title = tr("wc_cases_title", { label: label, name: centreName(code) });
    var url = "/api/cases?centre=" + encodeURIComponent(code) + "&status=" + encodeURIComponent(status) +
      "&limit=" + LIST_LIMIT;
    return getJSON(url).then(function (data) {
      if (currentCentre() !== code) { return null; }  // drilled away meanwhile
      var total = data && typeof data.total === "number" ? data.total : ((data && data.cases) || []).length;
      var n = Math.min(LIST_LIMIT, ((data && data.cases) || []).length);
      var note = total > n ? tr("wc_cases_shown", { total: total, n: n }) : tr("wc_cases_count", { total: total });
      return openOverlay("cases", title, note, casesTable(data), { "data-cases": status, "data-total": total });
    }, function () {
      return openOverlay("cases", title, "", node("div", "wc-empty", tr("wc_cases_error")), { "data-cases": status });
    });
  }

  function caseBody(card, alertRow) {
    var body = node("div", "wc-card");
    if (alertRow) {
      var sev = SEV_RANK[alertRow.severity] ? alertRow.severity : "minor";
      var line = node("div", "alert-item sev-" + sev);
      line.appendChild(node("span", "alert-sev", tr("wc_sev_" + sev)));
      line.appendChild(node("span", "alert-text", alertText(alertRow)));
      line.appendChild(node("span", "alert-time", when(alertRow.raised_at)));
      body.appendChild(line);
    }
    if (!card) { return body; }
    var row = card.row || {};
    var facts = node("div", "wc-facts");
    ["eid", "category", "channel", "centre", "tier", "status", "reported", "due", "over", "supervised"].forEach(function (c) {
      var v = caseCell(row, c);
      if (v === "" || v === null || v === undefined) { return; }
      var f = node("span");
      f.appendChild(document.createTextNode(tr("wc_col_" + c) + " "));
      f.appendChild(node("b", "", v));
      facts.appendChild(f);
    });
    body.appendChild(facts);
    if (row.summary) { body.appendChild(node("div", "wc-summary", row.summary)); }
    var steps = card.steps || [];
    if (steps.length) {
      body.appendChild(node("div", "wc-note", tr("wc_spot_steps")));
      var ol = node("ol", "wc-steps");
      steps.forEach(function (s) {
        var bits = [when(s.ts), tr("wc_st_" + s.status), centreName(s.centre)];
        if (s.to) { bits.push("→ " + centreName(s.to)); }
        if (s.by) { bits.push(centreName(s.by)); }
        if (s.note) { bits.push(s.note); }
        if (s.spent_ms) { bits.push(span(s.spent_ms)); }
        ol.appendChild(node("li", s.over_ms > 0 ? "late" : "", bits.join(" · ")));
      });
      body.appendChild(ol);
    }
    return body;
  }

  function findAlert(id) {
    var rows = (state.vm.alerts && state.vm.alerts.rows) || [];
    for (var i = 0; i < rows.length; i++) { if (rows[i].id === id) { return rows[i]; } }
    return null;
  }

  function spotlight(d) {
    command.spotAlert = d.alert || "";
    var root = rootEl();
    var list = root && root.querySelector(".alert-list");
    if (list) { list.__wcKey = null; }
    if (root) { renderAlerts(root); }
    if (!d.case && !d.alert) {
      if (command.overlay && command.overlay.getAttribute("data-overlay") === "spot") { closeOverlay(); }
      return Promise.resolve(null);
    }
    // after a drill the new centre's alerts come with its stream's first message: wait for it
    var alertRow = d.alert ? findAlert(d.alert) : null;
    var waited = d.alert && !alertRow ? new Promise(function (res) { window.setTimeout(res, 1200); }) : Promise.resolve();
    return waited.then(function () {
      alertRow = d.alert ? (alertRow || findAlert(d.alert)) : null;
      var eid = d.case || (alertRow && alertRow.eid) || "";
      var card = eid ? getJSON("/api/case/" + encodeURIComponent(eid)).then(function (c) {
        return c && (c.card || c.case || c);
      }, function () { return null; }) : Promise.resolve(null);
      return card.then(function (c) {
        if (command.seq !== d.seq) { return null; }  // a newer directive took over
        var title = tr(d.case ? "wc_spot_case" : "wc_spot_alert") + " · " + centreName(d.centre);
        var body = caseBody(c, alertRow);
        if (!c && !alertRow) { body.appendChild(node("div", "wc-empty", tr("wc_spot_gone"))); }
        return openOverlay("spot", title, eid, body, { "data-spot-case": eid, "data-spot-alert": d.alert || "",
                                                       "data-seq": d.seq });
      });
    });
  }

  /* A directive of the wall's group (already checked against the viewer's scope by the
     server). Each seq acts once; the first one seen on a page drills to its centre (the
     group's current view) and spotlights only when it is recent. */
  command.directive = function (d) {
    if (!d || typeof d.seq !== "number" || typeof d.centre !== "string") { return; }
    if (command.seq !== null && d.seq <= command.seq) { return; }
    var first = command.seq === null;
    command.seq = d.seq;
    command.directiveAt = Date.now();
    var f = state.vm.freshness;
    var recent = !first || (d.at && (f ? f.now : Date.now()) - d.at < OVERLAY_S * 1000);
    var move = d.centre !== currentCentre() && window.pinganDrill
      ? window.pinganDrill.go(d.centre) : Promise.resolve(true);
    Promise.resolve(move).then(function () {
      command.drilledAt = Date.now();
      if (recent && command.seq === d.seq) { return spotlight(d); }
      return null;
    });
  };

  document.addEventListener("click", function (e) {
    var t = e.target;
    var fig = t && t.closest && t.closest(".live-screen .wall-canvas [data-cases]");
    if (!fig) { return; }
    var label = fig.querySelector(".kpi-label");
    openCases(fig.getAttribute("data-cases"), label ? label.textContent : "");
  });
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape") { closeOverlay(); return; }
    if (e.key !== "Enter") { return; }
    var fig = e.target && e.target.closest && e.target.closest(".live-screen .wall-canvas [data-cases]");
    if (fig) { fig.click(); }
  });
  window.addEventListener("resize", function () {
    var strip = document.querySelector(".live-screen .alert-strip");
    if (strip) { fitAlerts(strip); }
  });
  // a drill replaces the canvas: the list of the old centre goes with it
  new MutationObserver(function () {
    var o = command.overlay;
    if (o && o.getAttribute("data-overlay") === "cases" && o.getAttribute("data-centre") !== currentCentre()) {
      closeOverlay();
    }
  }).observe(document.documentElement, { attributes: true, subtree: true, attributeFilter: ["data-centre"] });

  window.pinganWall = { apply: apply, format: format, series: series, state: state, call: requestCall,
                        updateChart: updateChart, connect: connect, command: command,
                        openCases: openCases, closeOverlay: closeOverlay };

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
