/* Pingan briefing view (/brief, layouts/brief.py) — replay playback in the browser.
 *
 * The server sends the replay of the last 24 hours once (dcc.Store "brief-replay", built by
 * datasources/replay.py): hourly counters and case markers [ts, lat, lon, category, urgent].
 * One clientside callback, `pinganBrief.step` (callbacks/brief.py), runs the player: play /
 * pause, speed (1× = 10 minutes of the day per second), the slider, back to live. For a time
 * T it writes, in place:
 *   - the replay counters ([data-replay-figure]): sums of the hourly buckets that ended by T
 *     (all of them at the end of the window), and the resolution rate;
 *   - the cursor of the 24 h chart (two shapes, via pinganWall.updateChart; bars after T dimmed);
 *   - the markers of the cases reported in [T − 1 h, T] on the wall's map (a Leaflet layer
 *     of their own; newer ones brighter).
 * While replaying, the counters hand their data-figure to data-live-figure (wall.js then
 * leaves them alone) and .brief-screen carries data-replay="1" (wall.js then leaves the map's
 * case markers alone); back to live hands both back and writes the latest live values. A
 * drill mounts a fresh screen (layouts/brief.py keys it), so nothing of this outlives it.
 */
(function () {
  "use strict";
  if (window.pinganBrief) { return; }

  var MIN_PER_S = 10;             // 1× = 10 minutes of the replayed day per second
  var WINDOW_MS = 3600000;        // markers: cases reported in the hour before T
  var RELOAD_AFTER_MS = 300000;   // a replay older than this is reloaded when replay starts
  var MAP_ID = "wall-map";
  var PANE = "briefReplay";
  var CHART_ID = "brief-chart-replay";
  var REQ_ID = "brief-replay-req";
  var CYAN = "#2ec7ff";
  var DIM = "rgba(46, 199, 255, 0.22)";

  var S = { root: null, replaying: false, lastTick: 0, strings: null, chart: null };

  function screen() { return document.querySelector(".brief-screen"); }

  function strings(r) {
    if (S.strings === null || S.root !== r) {
      try { S.strings = JSON.parse(r.getAttribute("data-i18n") || "{}"); } catch (e) { S.strings = {}; }
    }
    return S.strings;
  }

  function fill(text, params) {
    return String(text || "").replace(/\{(\w+)\}/g, function (m, k) {
      return Object.prototype.hasOwnProperty.call(params, k) ? params[k] : m;
    });
  }

  /* assets/format.js, looked up when used (Dash loads the assets in name order). */
  function format(v, kind) { return window.pinganFormat.fmt(v, kind); }

  function pad(n) { return ("0" + n).slice(-2); }

  function hourIndex(p, t) {
    var i = Math.floor((t - p.starts[0]) / p.hour_ms);
    return Math.max(0, Math.min(p.starts.length - 1, i));
  }

  /* HH:MM of T in the server's time zone (the payload carries its UTC offsets). */
  function hhmm(p, t) {
    var off = ((p.offsets || [])[hourIndex(p, t)] || 0) * 60000;
    var d = new Date(t + off);
    return pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes());
  }

  /* The counters at T: the hourly buckets that ended by T (every bucket at the end). */
  function totals(p, t, atEnd) {
    var out = { reported: 0, resolved: 0, petitions: 0, done: 0, upto: p.starts[0] };
    for (var i = 0; i < p.starts.length; i++) {
      var end = p.starts[i] + p.hour_ms;
      if (end <= t || atEnd) {
        out.reported += p.reported[i];
        out.resolved += p.resolved[i];
        out.petitions += p.petitions[i];
        out.done += (p.reported_resolved || [])[i] || 0;  /* this hour's reports resolved since */
        out.upto = Math.min(end, p.now);
      }
    }
    out.rate = out.reported ? Math.round(out.done / out.reported * 10000) / 10000 : null;
    return out;
  }

  function setFig(el, v) {
    el.setAttribute("data-value", v === null || v === undefined ? "" : String(v));
    el.textContent = format(v, el.getAttribute("data-format"));
  }

  /* Replay takes the counters from the live updater, and gives them back. */
  function takeOver(r) {
    r.querySelectorAll("[data-replay-figure][data-figure]").forEach(function (el) {
      el.setAttribute("data-live-figure", el.getAttribute("data-figure"));
      el.setAttribute("data-live-value", el.getAttribute("data-value") || "");
      el.removeAttribute("data-figure");
    });
  }

  function giveBack(r) {
    var vm = (window.pinganWall && window.pinganWall.state && window.pinganWall.state.vm) || {};
    r.querySelectorAll("[data-live-figure]").forEach(function (el) {
      var path = el.getAttribute("data-live-figure");
      var has = vm.figures && Object.prototype.hasOwnProperty.call(vm.figures, path);
      var kept = el.getAttribute("data-live-value");
      setFig(el, has ? vm.figures[path] : (kept === "" || kept === null ? null : Number(kept)));
      el.setAttribute("data-figure", path);
      el.removeAttribute("data-live-figure");
      el.removeAttribute("data-live-value");
    });
  }

  function firstAtOrAfter(rows, t) {
    var lo = 0, hi = rows.length;
    while (lo < hi) {
      var mid = (lo + hi) >> 1;
      if (rows[mid][0] < t) { lo = mid + 1; } else { hi = mid; }
    }
    return lo;
  }

  /* Markers of the cases reported in [T − 1 h, T], on a layer of their own on the wall's map
     (plain Leaflet, like pinganMap.setCases; newer ones brighter); none when off. The live
     markers are cleared while replaying (wall.js redraws them within a second after). */
  var layer = { map: null, group: null, markers: {} };

  function theMap() {
    var pm = window.pinganMap || {};
    var maps = pm.maps || {};
    var layers = ["-regions", "-grids", "-cameras"];
    for (var i = 0; i < layers.length; i++) {
      if (maps[MAP_ID + layers[i]]) { return maps[MAP_ID + layers[i]]; }
    }
    for (var j = 0; j < layers.length; j++) {  // a drawn feature knows its map too
      var reg = (pm.registry || {})[MAP_ID + layers[j]] || {};
      for (var k in reg) {
        if (reg[k] && reg[k]._map) { return reg[k]._map; }
      }
    }
    return null;
  }

  function drawMarkers(p, t, on) {
    var rows = (p && p.cases) || [];
    var map = theMap();
    var n = 0;
    if (!map || !window.L) { layer.markers = {}; layer.map = null; return on ? count(rows, t) : 0; }
    if (layer.map !== map) {
      if (layer.group) { layer.group.remove(); }
      // a pane of their own above the regions: dash-leaflet redraws the regions on every live
      // update, and on a shared canvas they would then be painted over the markers
      if (!map.getPane(PANE)) { map.createPane(PANE).style.zIndex = 450; }
      layer = { map: map, group: window.L.layerGroup().addTo(map), markers: {} };
    }
    var seen = {};
    if (on) {
      if (window.pinganMap.setCases) { window.pinganMap.setCases(MAP_ID, { features: [] }, {}); }
      var colors = (p && p.colors) || {};
      for (var i = firstAtOrAfter(rows, t - WINDOW_MS); i < rows.length && rows[i][0] <= t; i++) {
        var row = rows[i];
        var fresh = 1 - Math.max(0, t - row[0]) / WINDOW_MS;
        var color = row[4] ? (colors.urgent || "#ff5a5f") : (colors.normal || "#2ec7ff");
        var m = layer.markers[i];
        if (!m) {
          m = layer.markers[i] = window.L.circleMarker([row[1], row[2]], {
            radius: row[4] ? 10 : 8, color: "#ffffff", weight: 2, fillColor: color,
            interactive: false, pane: PANE, pmReplay: row[0]
          }).addTo(layer.group);
        }
        m.setStyle({ opacity: 0.55 + 0.45 * fresh, fillOpacity: 0.55 + 0.4 * fresh });
        seen[i] = true;
        n++;
      }
    }
    Object.keys(layer.markers).forEach(function (k) {
      if (!seen[k]) { layer.group.removeLayer(layer.markers[k]); delete layer.markers[k]; }
    });
    return n;
  }

  function count(rows, t) {
    var n = 0;
    for (var i = firstAtOrAfter(rows, t - WINDOW_MS); i < rows.length && rows[i][0] <= t; i++) { n++; }
    return n;
  }

  function chartDiv() {
    var el = document.getElementById(CHART_ID);
    if (!el) { return null; }
    return el.classList.contains("js-plotly-plot") ? el : el.querySelector(".js-plotly-plot");
  }

  /* The chart's cursor and the dimmed hours after it, compared with what the chart shows (a
     new figure from the server, e.g. a reloaded replay, is put right after it is drawn). */
  function drawChart(p, t, on) {
    var gd = chartDiv();
    S.chart = [p, t, on];
    if (!gd || !window.Plotly || !gd._fullLayout || !gd.data || !gd.data.length) { return; }
    if (!gd.__briefHooked && typeof gd.on === "function") {
      gd.__briefHooked = true;
      gd.on("plotly_afterplot", function () {
        if (S.chart) { drawChart(S.chart[0], S.chart[1], S.chart[2]); }
      });
    }
    var x = on ? (t - p.starts[0]) / p.hour_ms : p.starts.length;
    var shapes = (gd.layout && gd.layout.shapes) || [];
    var lay = null;
    if (shapes.length < 2 || shapes[1].visible !== on || Math.abs(shapes[1].x0 - x) > 1e-6) {
      lay = { "shapes[0].x1": x, "shapes[1].x0": x, "shapes[1].x1": x,
                  "shapes[0].visible": on, "shapes[1].visible": on };
    }
    var colors = p.starts.map(function (s) { return !on || s + p.hour_ms <= t ? CYAN : DIM; });
    var now = ((gd.data[0].marker || {}).color) || [];
    var same = now.length === colors.length;
    for (var i = 0; same && i < colors.length; i++) { same = now[i] === colors[i]; }
    // through Plotly.react (pinganWall.updateChart): restyle / relayout would send a Dash
    // prop change (relayoutData) at every step of a replay
    if (lay || !same) {
      window.pinganWall.updateChart(gd, same ? null : { 0: { "marker.color": colors } }, lay);
    }
  }

  function text(r, selector, value) {
    var el = r.querySelector(selector);
    if (el && el.textContent !== value) { el.textContent = value; }
  }

  function reload() {
    var dc = window.dash_clientside;
    if (dc && dc.set_props) { dc.set_props(REQ_ID, { data: { t: Date.now() } }); }
  }

  function render(r, p, st, maxM) {
    var L = strings(r);
    r.setAttribute("data-mode", st.mode);
    r.setAttribute("data-playing", st.playing ? "1" : "0");
    r.setAttribute("data-speed", String(st.speed));
    r.setAttribute("data-sample", p.sample ? "1" : "0");
    r.setAttribute("data-replay-start", String(p.starts[0]));
    r.querySelectorAll("[data-speed].brief-speed").forEach(function (b) {
      var on = Number(b.getAttribute("data-speed")) === st.speed;
      b.classList.toggle("is-on", on);
      b.setAttribute("aria-pressed", on ? "true" : "false");
    });
    if (st.mode === "replay") {
      if (!S.replaying) {
        S.replaying = true;
        takeOver(r);
        if (Date.now() - p.now > RELOAD_AFTER_MS) { reload(); }
      }
      r.setAttribute("data-replay", "1");
      var atEnd = st.minute >= maxM;
      var t = atEnd ? p.now : p.starts[0] + Math.round(st.minute) * 60000;
      var sums = totals(p, t, atEnd);
      r.querySelectorAll("[data-replay-figure]").forEach(function (el) {
        var name = el.getAttribute("data-replay-figure");
        if (Object.prototype.hasOwnProperty.call(sums, name)) { setFig(el, sums[name]); }
      });
      r.setAttribute("data-replay-t", String(t));
      text(r, "#brief-replay-time", hhmm(p, t));
      text(r, ".brief-caption", fill(L.brief_caption_replay, { start: p.labels[0], end: hhmm(p, sums.upto) }));
      var n = drawMarkers(p, t, true);
      text(r, ".brief-markers", fill(L.brief_markers, { n: n }) + (p.sample ? (L.brief_sample || "") : ""));
      drawChart(p, t, true);
    } else {
      if (S.replaying) {
        S.replaying = false;
        giveBack(r);
        drawMarkers(p, p.now, false);
      }
      r.removeAttribute("data-replay");
      r.removeAttribute("data-replay-t");
      text(r, ".brief-caption", L.brief_caption_live || "");
      text(r, ".brief-markers", L.brief_markers_live || "");
      drawChart(p, p.now, false);
    }
  }

  function has(triggered, id) {
    for (var i = 0; i < triggered.length; i++) {
      if (triggered[i].indexOf(id + ".") === 0) { return true; }
    }
    return false;
  }

  /* Inputs: play, live, one per speed, tick, slider value, replay payload; state: the player's
     state (callbacks/brief.py). The last three are read from the end. */
  function step() {
    var a = arguments;
    var value = a[a.length - 3], payload = a[a.length - 2], state = a[a.length - 1];
    var dc = window.dash_clientside || {};
    var no = dc.no_update;
    var st = Object.assign({ mode: "live", playing: false, speed: 1, minute: null, t: null }, state || {});
    var triggered = ((dc.callback_context && dc.callback_context.triggered) || [])
      .map(function (x) { return x.prop_id || ""; });
    var r = screen();
    if (!r) { return [st, no, true, "none"]; }
    if (S.root !== r) {  // a new screen (first render or a drill): nothing of the old one holds
      S.root = r; S.replaying = false; S.chart = null; S.strings = null;
      if (layer.group) { layer.group.remove(); }
      layer = { map: null, group: null, markers: {} };
    }
    var p = payload && payload.starts && payload.starts.length ? payload : null;
    if (!p) {
      var L = strings(r);
      text(r, ".brief-markers", payload && payload.error ? (L.brief_unavailable || "") : (L.brief_loading || ""));
      return [st, no, true, "loading"];
    }
    var maxM = Math.max(1, Math.floor((p.now - p.starts[0]) / 60000));
    var out = no;
    var clamp = function (m) { return Math.max(0, Math.min(maxM, m)); };
    if (has(triggered, "brief-replay")) {  // the payload arrived (or was reloaded)
      if (st.mode === "live") {
        st.minute = maxM;
      } else {
        st.minute = clamp(st.t === null ? st.minute || 0 : (st.t - p.starts[0]) / 60000);
      }
      out = Math.floor(st.minute);
    }
    if (has(triggered, "brief-live")) {
      st.mode = "live"; st.playing = false; st.minute = maxM; out = maxM;
    } else if (has(triggered, "brief-play")) {
      if (st.mode === "live") {
        st.mode = "replay"; st.playing = true;
        st.minute = value === null || value === undefined || value >= maxM ? 0 : clamp(value);
        out = Math.floor(st.minute);
      } else if (st.playing) {
        st.playing = false;
      } else {
        st.playing = true;
        if (st.minute >= maxM) { st.minute = 0; out = 0; }
      }
      S.lastTick = Date.now();
    } else if (/^brief-speed-\d+\./.test(triggered[0] || "")) {
      st.speed = Number(triggered[0].split(".")[0].replace("brief-speed-", "")) || 1;
    } else if (has(triggered, "brief-tick")) {
      if (st.playing && st.mode === "replay") {
        var now = Date.now();
        var dt = Math.min(1, Math.max(0, (now - (S.lastTick || now)) / 1000));
        S.lastTick = now;
        st.minute = clamp((st.minute || 0) + MIN_PER_S * st.speed * dt);
        if (st.minute >= maxM) { st.playing = false; }
        out = Math.floor(st.minute);
      }
    } else if (has(triggered, "brief-slider")) {
      if (value !== null && value !== undefined) {
        // the slider sits at the end while live: only a move away from it starts a replay
        if (!(st.mode === "live" && value >= maxM)) {
          st.mode = "replay";
          if (Math.floor(st.minute || 0) !== value) { st.minute = clamp(value); }
        }
      }
    }
    st.t = p.starts[0] + Math.round(st.minute || 0) * 60000;
    render(r, p, st, maxM);
    var playing = st.playing && st.mode === "replay";
    return [st, out, !playing, st.mode + (playing ? ":playing" : "") + ":" + Math.round(st.minute || 0)];
  }

  window.pinganBrief = { step: step, totals: totals, hhmm: hhmm, state: S,
                         markers: function () { return Object.keys(layer.markers).length; } };
  window.dash_clientside = window.dash_clientside || {};
  window.dash_clientside.pinganBrief = { step: step };
})();
