/* Pingan briefing view (/brief, layouts/brief.py) — replay playback in the browser.
 *
 * The server sends the replay of the last 24 hours once (dcc.Store "brief-replay", built by
 * datasources/replay.py): hourly counters and case markers [ts, lat, lon, category, urgent].
 * One clientside callback, `pinganBrief.step` (callbacks/brief.py), runs the player: play /
 * pause, speed (1× = 10 minutes of the day per second), the slider, back to live. For a time
 * T it writes, in place:
 *   - the replay counters ([data-replay-figure]): sums of the hourly buckets that ended by T
 *     (all of them at the end of the window), and the resolution rate;
 *   - the cursor of the 24 h chart (Plotly.relayout of two shapes; bars after T dimmed);
 *   - the markers of the cases reported in [T − 1 h, T] on the wall's map, through
 *     pinganMap.setCases (assets/map.js), fading with age.
 * While replaying, the counters hand their data-figure to data-live-figure (wall.js then
 * leaves them alone) and .live-screen carries data-replay="1" (wall.js then leaves the map's
 * case markers alone); back to live hands both back and writes the latest live values.
 */
(function () {
  "use strict";
  if (window.pinganBrief) { return; }

  var MIN_PER_S = 10;             // 1× = 10 minutes of the replayed day per second
  var WINDOW_MS = 3600000;        // markers: cases reported in the hour before T
  var RELOAD_AFTER_MS = 300000;   // a replay older than this is reloaded when replay starts
  var MAP_ID = "wall-map";
  var CHART_ID = "brief-chart-replay";
  var REQ_ID = "brief-replay-req";
  var CYAN = "#2ec7ff";
  var DIM = "rgba(46, 199, 255, 0.22)";

  var S = { root: null, replaying: false, hour: null, lastTick: 0, strings: null, cursor: null };

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

  function format(v, kind) {
    if (window.pinganWall && window.pinganWall.format) { return window.pinganWall.format(v, kind); }
    return v === null || v === undefined ? "\u2014" : String(v);
  }

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
    var out = { reported: 0, resolved: 0, petitions: 0, upto: p.starts[0] };
    for (var i = 0; i < p.starts.length; i++) {
      var end = p.starts[i] + p.hour_ms;
      if (end <= t || atEnd) {
        out.reported += p.reported[i];
        out.resolved += p.resolved[i];
        out.petitions += p.petitions[i];
        out.upto = Math.min(end, p.now);
      }
    }
    out.rate = out.reported ? Math.round(out.resolved / out.reported * 10000) / 10000 : null;
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

  /* Markers of the cases reported in [T − 1 h, T]; none (and the live ones back) when off. */
  function drawMarkers(p, t, on) {
    var pm = window.pinganMap;
    var rows = (p && p.cases) || [];
    var feats = [];
    if (on) {
      for (var i = firstAtOrAfter(rows, t - WINDOW_MS); i < rows.length && rows[i][0] <= t; i++) {
        var row = rows[i];
        feats.push({ type: "Feature", geometry: { type: "Point", coordinates: [row[2], row[1]] },
                     properties: { eid: "replay-" + i, ts: row[0], category: row[3],
                                   urgency: row[4] ? "urgent" : "normal" } });
      }
    }
    if (pm && pm.setCases) {
      pm.setCases(MAP_ID, { type: "FeatureCollection", features: feats },
                  { now: t, max_age: WINDOW_MS + 1, colors: (p && p.colors) || {} });
    }
    return feats.length;
  }

  function chartDiv() {
    var el = document.getElementById(CHART_ID);
    if (!el) { return null; }
    return el.classList.contains("js-plotly-plot") ? el : el.querySelector(".js-plotly-plot");
  }

  function drawChart(p, t, on) {
    var gd = chartDiv();
    if (!gd || !window.Plotly || !gd._fullLayout || !gd.data || !gd.data.length) { return; }
    var x = on ? (t - p.starts[0]) / p.hour_ms : p.starts.length;
    var key = (on ? 1 : 0) + ":" + x.toFixed(3);
    if (S.cursor !== key || !gd.layout.shapes || gd.layout.shapes[1].visible !== on) {
      S.cursor = key;
      window.Plotly.relayout(gd, { "shapes[0].x1": x, "shapes[1].x0": x, "shapes[1].x1": x,
                                   "shapes[0].visible": on, "shapes[1].visible": on });
    }
    var hour = on ? Math.floor(x) : -1;
    if (hour !== S.hour) {
      S.hour = hour;
      var colors = p.starts.map(function (s) { return !on || s + p.hour_ms <= t ? CYAN : DIM; });
      window.Plotly.restyle(gd, { "marker.color": [colors] }, [0]);
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
    r.querySelectorAll("[data-speed].brief-speed").forEach(function (b) {
      var on = Number(b.getAttribute("data-speed")) === st.speed;
      b.classList.toggle("is-on", on);
      b.setAttribute("aria-pressed", on ? "true" : "false");
    });
    var host = r.closest(".live-screen");
    if (st.mode === "replay") {
      if (!S.replaying) {
        S.replaying = true;
        takeOver(r);
        if (Date.now() - p.now > RELOAD_AFTER_MS) { reload(); }
      }
      if (host) { host.setAttribute("data-replay", "1"); }
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
      if (host) { host.removeAttribute("data-replay"); }
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

  function step(_play, _live, _s1, _s4, _s16, _tick, value, payload, state) {
    var dc = window.dash_clientside || {};
    var no = dc.no_update;
    var st = Object.assign({ mode: "live", playing: false, speed: 1, minute: null, t: null }, state || {});
    var triggered = ((dc.callback_context && dc.callback_context.triggered) || [])
      .map(function (x) { return x.prop_id || ""; });
    var r = screen();
    if (!r) { return [st, no, true, "none"]; }
    if (S.root !== r) {  // a new screen (first render or a drill): nothing of the old one holds
      S.root = r; S.replaying = false; S.hour = null; S.cursor = null; S.strings = null;
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
    } else if (has(triggered, "brief-speed-")) {
      var id = triggered[0].split(".")[0];
      st.speed = Number(id.replace("brief-speed-", "")) || 1;
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

  window.pinganBrief = { step: step, totals: totals, hhmm: hhmm, state: S };
  window.dash_clientside = window.dash_clientside || {};
  window.dash_clientside.pinganBrief = { step: step };
})();
