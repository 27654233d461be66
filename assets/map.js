/* Pingan command wall — map functions for dash-leaflet (referenced from layouts/map.py with
 * dash_extensions.javascript.Namespace("pinganMap", <layer>)(<function>)).
 *
 * dash-leaflet calls each function with the component's props appended as the last argument
 * (`ctx`), so `ctx.hideout` is always the current hideout: live updates change only hideouts
 * and these functions recolour the layers without the geometry being sent again.
 *
 * Hideouts (built by layouts/map.py `hideouts`):
 *   regions: {indicator, fmt, values: {code: v}, figures: {code: {...}}, breaks, colors,
 *             none_color, selected, labels: {...}, info: <element id>}
 *   grids:   {patrols: {grid id: n}, target, colors: [zero, some, full], labels}
 *   cameras: {states: "oxfu…" (one letter per feature, by properties.i) | {id: state},
 *             colors: {online, offline, fault, unknown}}
 *   cases:   {now: ms, max_age: ms, colors: {normal, urgent}}
 */
(function () {
  "use strict";

  var STATE_LETTER = {o: "online", x: "offline", f: "fault", u: "unknown"};

  /* assets/format.js, looked up when used (Dash loads the assets in name order). */
  function fmt(v, kind) { return window.pinganFormat.fmt(v, kind); }

  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
  }

  function classOf(v, breaks) {
    var k = 0;
    for (var i = 0; i < breaks.length; i++) { if (v >= breaks[i]) { k = i + 1; } }
    return k;
  }

  function regionColor(code, h) {
    var v = h.values ? h.values[code] : null;
    if (v === null || v === undefined) { return h.none_color || "#3a4658"; }
    return h.colors[classOf(v, h.breaks || [])];
  }

  function cameraState(p, h) {
    var s = h.states;
    if (typeof s === "string") { return STATE_LETTER[s.charAt(p.i)] || "unknown"; }
    if (s && s[p.id]) { return s[p.id]; }
    return "unknown";
  }

  function infoHtml(p, h) {
    var f = (h.figures || {})[p.code] || {};
    var L = h.labels || {};
    var rows = [
      ["index", "index"], ["reported", "int"], ["open", "int"], ["overdue", "int"],
      ["resolution_rate", "pct"], ["coverage", "pct"], ["online_rate", "pct"], ["petitions", "int"]
    ];
    var html = '<div class="pm-info-name">' + esc(p.name) + "</div><table>";
    rows.forEach(function (r) {
      var cls = r[0] === h.indicator ? ' class="pm-info-on"' : "";
      html += "<tr" + cls + "><th>" + esc(L[r[0]] || r[0]) + "</th><td>" + fmt(f[r[0]], r[1]) + "</td></tr>";
    });
    return html + "</table>";
  }

  function showInfo(id, html) {
    var el = id && document.getElementById(id);
    if (!el) { return; }
    if (html) { el.innerHTML = html; el.classList.add("pm-info-shown"); } else { el.classList.remove("pm-info-shown"); }
  }

  // The live Leaflet layers, by component id then feature key (region code, grid id, camera
  // id): lets the wall highlight a region and the browser tests inspect colours. Layers are
  // re-registered whenever dash-leaflet redraws (a hideout or data change).
  var registry = {};
  var maps = {};
  var liveCases = {};
  var liveMarks = {};

  /* A bent line from `a` to `b` ([lat, lon]) with an arrow head at `b`: a quadratic curve
     bulging to the left of the way, drawn as a polyline of 24 segments (SVG, animated dashes). */
  function arc(entry, a, b) {
    var dy = b[0] - a[0], dx = b[1] - a[1];
    var mid = [(a[0] + b[0]) / 2 + dx * 0.25, (a[1] + b[1]) / 2 - dy * 0.25];
    var pts = [];
    for (var i = 0; i <= 24; i++) {
      var t = i / 24, u = 1 - t;
      pts.push([u * u * a[0] + 2 * u * t * mid[0] + t * t * b[0],
                u * u * a[1] + 2 * u * t * mid[1] + t * t * b[1]]);
    }
    var line = L.polyline(pts, {className: "pm-arc", interactive: false, pane: "pinganMarks",
                                renderer: entry.renderer});
    var head = L.circleMarker(b, {radius: 6, className: "pm-arc-head", interactive: false,
                                  pane: "pinganMarks", renderer: entry.renderer});
    return [line.addTo(entry.group), head.addTo(entry.group)];
  }
  function register(ctx, key, layer) {
    if (!ctx || !ctx.id) { return layer; }
    var id = typeof ctx.id === "string" ? ctx.id : JSON.stringify(ctx.id);
    var reg = registry[id];
    if (!reg || reg.__data !== ctx.data) {  // new data (a drill): forget the old layers
      reg = registry[id] = {};
      Object.defineProperty(reg, "__data", {value: ctx.data, enumerable: false});
    }
    reg[key] = layer;
    if (ctx.map) { maps[id] = ctx.map; }
    return layer;
  }

  window.pinganMap = {
    fmt: fmt,
    registry: registry,
    maps: maps,
    self: {
      style: function () {
        return {color: "#2ec7ff", weight: 3, opacity: 0.9, fill: false, interactive: false};
      }
    },
    regions: {
      style: function (feature, ctx) {
        var h = (ctx && ctx.hideout) || {};
        var code = feature.properties.code;
        var sel = h.selected === code;
        return {
          fillColor: regionColor(code, h), fillOpacity: 0.62,
          color: sel ? "#ffffff" : "#9fd4ff", weight: sel ? 4 : 1.4, opacity: sel ? 1 : 0.85
        };
      },
      hover: function () {
        return {weight: 3.5, color: "#ffffff", fillOpacity: 0.8};
      },
      each: function (feature, layer, ctx) {
        var h = (ctx && ctx.hideout) || {};
        var p = feature.properties;
        var v = h.values ? h.values[p.code] : null;
        layer.bindTooltip(
          '<span class="pm-label-name">' + esc(p.name) + '</span><span class="pm-label-value">' +
            fmt(v, h.fmt) + "</span>",
          {permanent: true, direction: "center", className: "pm-label", interactive: false}
        );
        register(ctx, p.code, layer);
        // a tap drills the wall in place (assets/drill.js); the layer's click still reaches Dash
        layer.on("click", function () {
          if (window.pinganDrill) { window.pinganDrill.tap(p.code, ctx && ctx.id); }
        });
        layer.on("mouseover", function () { showInfo(h.info, infoHtml(p, h)); });
        layer.on("mouseout", function () { showInfo(h.info, null); });
        // long-press (touch) or right-click: a popup with 视频连线 (a click drills instead)
        layer.on("contextmenu", function (e) {
          if (h.vc === false || !window.pinganWall) { return; }
          var L = h.labels || {};
          var box = document.createElement("div");
          box.className = "pm-popup";
          var name = document.createElement("div");
          name.className = "pm-popup-name";
          name.textContent = p.name;
          var btn = document.createElement("button");
          btn.className = "vc-btn pm-popup-vc";
          btn.setAttribute("data-vc-code", p.code);
          btn.textContent = L.vc_call || "视频连线";
          btn.onclick = function () { window.pinganWall.call(p.code, false); layer.closePopup(); };
          box.appendChild(name);
          box.appendChild(btn);
          layer.bindPopup(box, {className: "pm-popup-wrap", closeButton: true}).openPopup(e.latlng);
        });
      }
    },
    grids: {
      style: function (feature, ctx) {
        var h = (ctx && ctx.hideout) || {};
        var n = (h.patrols || {})[feature.properties.id] || 0;
        var c = h.colors || ["#ff5a5f", "#ffb020", "#29d3a4"];
        var color = n <= 0 ? c[0] : (n >= (h.target || 2) ? c[2] : c[1]);
        return {fillColor: color, fillOpacity: 0.45, color: "#cfe8ff", weight: 1.2, opacity: 0.8, dashArray: "4 3"};
      },
      each: function (feature, layer, ctx) {
        var h = (ctx && ctx.hideout) || {};
        var L = h.labels || {};
        var id = feature.properties.id;
        var n = (h.patrols || {})[id] || 0;
        register(ctx, id, layer);
        var short = id.indexOf("-") >= 0 ? id.slice(id.lastIndexOf("-") + 1) : id;
        layer.bindTooltip(
          '<span class="pm-label-name">' + esc(short) + '</span><span class="pm-label-value">' +
            esc((L.patrols || "") + " " + n) + "</span>",
          {permanent: true, direction: "center", className: "pm-label pm-label-grid", interactive: false}
        );
      }
    },
    cameras: {
      point: function (feature, latlng, ctx) {
        var h = (ctx && ctx.hideout) || {};
        var state = cameraState(feature.properties, h);
        var color = (h.colors || {})[state] || "#8a94a6";
        return register(ctx, feature.properties.id, L.circleMarker(latlng, {
          radius: state === "online" ? 5 : 7, fillColor: color, fillOpacity: 0.95,
          color: "#081628", weight: 1.2, opacity: 1, pmState: state
        }));
      },
      style: function (feature, ctx) {
        // GeoJSON(cluster=True) applies a default style over pointToLayer's: repeat the colours
        var h = (ctx && ctx.hideout) || {};
        var state = cameraState(feature.properties, h);
        return {fillColor: (h.colors || {})[state] || "#8a94a6", fillOpacity: 0.95,
                color: "#081628", weight: 1.2, opacity: 1};
      },
      cluster: function (feature, latlng, index, ctx) {
        var h = (ctx && ctx.hideout) || {};
        var n = feature.properties.point_count;
        var bad = 0, fault = 0;
        var leaves = index.getLeaves(feature.properties.cluster_id, Infinity);
        for (var i = 0; i < leaves.length; i++) {
          var s = cameraState(leaves[i].properties, h);
          if (s === "offline") { bad++; } else if (s === "fault") { bad++; fault++; }
        }
        var share = n ? bad / n : 0;
        var size = Math.round(30 + 10 * Math.log10(Math.max(1, n)));
        var ring = fault > 0 ? "#ff5a5f" : (bad > 0 ? "#ffb020" : "#29d3a4");
        var html = '<div class="pm-cluster" style="--pm-bad:' + (share * 360).toFixed(1) +
          "deg;--pm-ring:" + ring + ";width:" + size + "px;height:" + size + 'px"><span>' +
          feature.properties.point_count_abbreviated + "</span></div>";
        return L.marker(latlng, {
          icon: L.divIcon({html: html, className: "pm-cluster-icon", iconSize: L.point(size, size)}),
          pmBad: bad, pmCount: n
        });
      }
    },
    /* Live recent cases, kept by plain Leaflet in place: markers are added, faded and
       removed without re-rendering a dash-leaflet layer (which re-created every marker and
       grew the page's memory ~0.2 MB/s on a busy wall). `mapId` is the dl.Map's id. */
    setCases: function (mapId, fc, h) {
      var map = maps[mapId + "-regions"] || maps[mapId + "-grids"] || maps[mapId + "-cameras"];
      if (!map || !window.L) { return; }
      var entry = liveCases[mapId];
      if (!entry || entry.map !== map) {
        if (entry) { entry.group.remove(); }
        // their own pane above the regions and grids: dash-leaflet repaints those layers on
        // every live update and would otherwise bury the markers under the region fill
        if (!map.getPane("pinganCases")) {
          map.createPane("pinganCases").style.zIndex = 450;
        }
        entry = liveCases[mapId] = {map: map, group: L.layerGroup().addTo(map), markers: {},
                                    renderer: L.svg({pane: "pinganCases"})};
      }
      var now = h.now || Date.now();
      var maxAge = h.max_age || 900000;
      var seen = {};
      ((fc && fc.features) || []).forEach(function (f) {
        var p = f.properties;
        var age = Math.max(0, now - p.ts);
        if (age >= maxAge) { return; }
        seen[p.eid] = true;
        var op = Math.max(0.12, 1 - age / maxAge);
        var urgent = p.urgency === "urgent";
        var color = (h.colors || {})[urgent ? "urgent" : "normal"] || "#ffffff";
        var m = entry.markers[p.eid];
        if (!m) {
          var c = f.geometry.coordinates;
          m = entry.markers[p.eid] = L.circleMarker([c[1], c[0]], {
            radius: urgent ? 11 : 8, color: color, weight: 2.5, fillColor: color,
            interactive: false, pane: "pinganCases", renderer: entry.renderer
          }).addTo(entry.group);
        }
        m.setStyle({opacity: op, fillOpacity: 0.35 * op});
      });
      Object.keys(entry.markers).forEach(function (eid) {
        if (!seen[eid]) { entry.group.removeLayer(entry.markers[eid]); delete entry.markers[eid]; }
      });
    },
    /* Marks over the map (issue 10), kept by plain Leaflet like setCases, in their own pane:
       a pulse on each region with an unacknowledged alert (by severity) or with overdue cases
       (by how overdue: pm-od-1..3), and an animated arc per recent escalation, from the lower
       centre to the one above. `marks`: layouts/map.py marks(); `alerts`: region → worst
       severity of its unacknowledged alerts (viewmodel.alert_rows `regions`). Markers are
       kept by key and only re-made when they change. */
    setMarks: function (mapId, marks, alerts) {
      var map = maps[mapId + "-regions"] || maps[mapId + "-grids"] || maps[mapId + "-cameras"];
      if (!map || !window.L) { return; }
      var entry = liveMarks[mapId];
      if (!entry || entry.map !== map) {
        if (entry) { entry.group.remove(); }
        if (!map.getPane("pinganMarks")) {
          var pane = map.createPane("pinganMarks");
          pane.style.zIndex = 460;
          pane.style.pointerEvents = "none";  // taps reach the regions under the pulses
        }
        entry = liveMarks[mapId] = {map: map, group: L.layerGroup().addTo(map), items: {},
                                    renderer: L.svg({pane: "pinganMarks", padding: 0.5})};
      }
      marks = marks || {};
      var points = marks.points || {};
      var rem = parseFloat(window.getComputedStyle(document.documentElement).fontSize) || 16;
      var want = {};
      var worst = alerts || {};
      function pulse(key, code, cls, size) {
        var p = points[code];
        if (!p) { return; }
        want[key] = {kind: "pulse", at: p, cls: cls, size: Math.round(size * rem), code: code};
      }
      Object.keys(marks.overdue || {}).forEach(function (code) {
        pulse("o:" + code, code, "pm-od-" + marks.overdue[code], 2.6 + 0.5 * marks.overdue[code]);
      });
      Object.keys(worst).forEach(function (code) {
        pulse("a:" + code, code, "pm-alert-" + worst[code], 5);
      });
      (marks.arcs || []).forEach(function (a) {
        want["e:" + a.eid + ":" + a.ts] = {kind: "arc", from: a.from, to: a.to};
      });
      Object.keys(entry.items).forEach(function (key) {
        var it = entry.items[key], w = want[key];
        if (!w || w.kind !== it.kind || (w.kind === "pulse" && (w.cls !== it.cls || w.size !== it.size ||
            w.at[0] !== it.at[0] || w.at[1] !== it.at[1]))) {
          it.layers.forEach(function (l) { entry.group.removeLayer(l); });
          delete entry.items[key];
        }
      });
      Object.keys(want).forEach(function (key) {
        if (entry.items[key]) { return; }
        var w = want[key];
        if (w.kind === "pulse") {
          var icon = L.divIcon({className: "pm-pulse-icon", iconSize: L.point(w.size, w.size),
                                html: '<div class="pm-pulse ' + w.cls + '" data-mark="' + esc(key) + '"></div>'});
          var m = L.marker(w.at, {icon: icon, interactive: false, keyboard: false, pane: "pinganMarks"});
          w.layers = [m.addTo(entry.group)];
        } else {
          w.layers = arc(entry, w.from, w.to);
        }
        entry.items[key] = w;
      });
    },
    cases: {
      filter: function (feature, ctx) {
        var h = (ctx && ctx.hideout) || {};
        if (!h.now) { return true; }
        return h.now - feature.properties.ts < (h.max_age || 900000);
      },
      point: function (feature, latlng, ctx) {
        var h = (ctx && ctx.hideout) || {};
        var age = h.now ? Math.max(0, h.now - feature.properties.ts) : 0;
        var op = Math.max(0.12, 1 - age / (h.max_age || 900000));
        var urgent = feature.properties.urgency === "urgent";
        var color = (h.colors || {})[urgent ? "urgent" : "normal"] || "#ffffff";
        return register(ctx, feature.properties.eid, L.circleMarker(latlng, {
          radius: urgent ? 11 : 8, color: color, weight: 2.5, opacity: op,
          fillColor: color, fillOpacity: 0.35 * op, interactive: false
        }));
      },
      style: function (feature, ctx) {
        var h = (ctx && ctx.hideout) || {};
        var age = h.now ? Math.max(0, h.now - feature.properties.ts) : 0;
        var op = Math.max(0.12, 1 - age / (h.max_age || 900000));
        var color = (h.colors || {})[feature.properties.urgency === "urgent" ? "urgent" : "normal"] || "#ffffff";
        return {color: color, opacity: op, fillColor: color, fillOpacity: 0.35 * op};
      }
    }
  };
})();
