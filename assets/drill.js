/* In-place drill of the wall: a tap on a map region, a breadcrumb or the back button turns the
 * wall into another centre's wall without Dash re-rendering the screen.
 *
 * Re-rendering meant a new Leaflet map and a Plotly newPlot per chart (about 1 s of main
 * thread on a wall PC, several under load: bench/wall_drill.py). Instead this script fetches
 * the centre's screen as JSON (dashboard/screen_api.py: the same layout functions as the full
 * route, the viewer's scope checked on the server) and applies it to the page it has:
 *  - the wall's canvas is rebuilt from the answer's component tree with createElement and
 *    textContent (tags and attributes from a fixed list, never innerHTML), except the map area
 *    and the charts, whose nodes are kept and moved into place;
 *  - the charts are redrawn with Plotly.react (not newPlot); the map's layers get their new
 *    data and hideouts and the map its new bounds through dash_clientside.set_props, so Dash's
 *    store stays in step with what is drawn;
 *  - the live stream is pointed at the new centre (assets/wall.js closes and reopens it);
 *  - the URL moves through dcc.Location (set_props: it pushes the history entry), with the
 *    Store app-screen-shown saying "drawn in place" so the router's `route` callback leaves the
 *    screen alone; the back button comes here first (popstate) and drills in place as well.
 * Any failure (network, a 5xx, an answer of unknown shape) falls back to today's full route: the
 * Store is cleared and the URL set, so Dash re-renders the screen. A centre the viewer may not
 * see (403) leaves the wall as it is. React never sees these DOM changes: the router's next
 * render remounts the whole screen (a new `children` of app-screen), so nothing it holds is
 * stale. The tablet (/brief), language changes and first loads keep the full route.
 */
(function () {
  "use strict";
  if (window.pinganDrill) { return; }

  var SCREEN_PATH = "/screen/wall";
  var URL_ID = "app-url";            // layouts/ids.py URL
  var SHOWN_ID = "app-screen-shown";  // layouts/ids.py SCREEN_SHOWN
  var VC_TIER = "vc-tier";            // layouts/ids.py VC_TIER
  var MAP_AREA = "wall-map-area";     // layouts/wall_ids.py MAP_AREA
  var REGIONS = "wall-map-regions";   // layouts/map.py map_ids()["regions"]
  var WALL_PATHS = { "/": true, "/wall": true, "/wall/": true };
  var TAGS = {
    Div: "div", Span: "span", A: "a", H1: "h1", H2: "h2", H3: "h3", H4: "h4", Nav: "nav",
    Header: "header", Main: "main", Section: "section", Ol: "ol", Ul: "ul", Li: "li", I: "i",
    B: "b", Em: "em", Strong: "strong", Small: "small", P: "p", Button: "button", Label: "label",
    Table: "table", Thead: "thead", Tbody: "tbody", Tr: "tr", Th: "th", Td: "td"
  };
  var ATTRS = { title: true, lang: true, role: true };
  var UNITLESS = { order: true, zIndex: true, opacity: true, flex: true, flexGrow: true,
                   flexShrink: true, fontWeight: true, lineHeight: true };

  var state = { seq: 0, disabled: false, last: null, canvas: null, reactCentre: null,
                reactGroup: false, shown: undefined };

  /* Where the time of the last drill went: ms after the tap, by step (bench/wall_drill.py). */
  function mark(name) {
    if (state.last && state.last.marks) { state.last.marks[name] = performance.now() - state.last.t0; }
  }

  function setProps(id, props) { window.dash_clientside.set_props(id, props); }

  function onWall() {
    return !!WALL_PATHS[window.location.pathname] && !!document.querySelector(".live-screen .wall-canvas");
  }

  /* The wall's query for `code`, as the router writes it (callbacks/router.py search_for):
     the language, push mode, map indicator, wall group and chime kept, a tour dropped. */
  function searchFor(code) {
    var cur = new URLSearchParams(window.location.search);
    var out = new URLSearchParams();
    out.set("centre", code);
    if (cur.get("lang") && cur.get("lang") !== "zh") { out.set("lang", cur.get("lang")); }
    if (cur.get("push") && cur.get("push") !== "sse") { out.set("push", cur.get("push")); }
    if (cur.get("indicator") && cur.get("indicator") !== "index") { out.set("indicator", cur.get("indicator")); }
    // a wall following a console's group (?screen=) and its chime (?sound=1) keep them
    if (cur.get("screen")) { out.set("screen", cur.get("screen")); }
    if (cur.get("sound") === "1") { out.set("sound", "1"); }
    return "?" + out.toString();
  }

  // -- building the canvas from the component tree -----------------------------------------
  function safeHref(v) {
    return typeof v === "string" && /^(\?|\/(?!\/))/.test(v) && v.indexOf("\\") < 0 ? v : null;
  }

  function setStyle(el, style) {
    Object.keys(style || {}).forEach(function (k) {
      var v = style[k];
      if (v === null || v === undefined) { return; }
      if (k.slice(0, 2) === "--") { el.style.setProperty(k, String(v)); return; }
      el.style[k] = (typeof v === "number" && !UNITLESS[k]) ? v + "px" : String(v);
    });
  }

  function setAttrs(el, p) {
    Object.keys(p).forEach(function (k) {
      var v = p[k];
      if (v === null || v === undefined || v === false) { return; }
      if (k === "className") { el.className = String(v); }
      else if (k === "id") { if (typeof v === "string") { el.id = v; } }
      else if (k === "style") { setStyle(el, v); }
      else if (k === "hidden") { el.hidden = !!v; }
      else if (k === "href") { var h = safeHref(v); if (h) { el.setAttribute("href", h); } }
      else if (ATTRS[k] || /^(data|aria)-[a-z0-9_-]+$/.test(k)) { el.setAttribute(k, String(v)); }
    });
  }

  /* 整体联动's tier picker, as a native select (a dcc.Dropdown is React's to draw). */
  function tierSelect(p) {
    var sel = document.createElement("select");
    sel.className = ((p.className || "") + " drill-tier").trim();
    (p.options || []).forEach(function (o) {
      var opt = document.createElement("option");
      opt.value = String(o.value);
      opt.textContent = String(o.label);
      if (o.value === p.value) { opt.selected = true; }
      sel.appendChild(opt);
    });
    return sel;
  }

  function graphNode(p, ctx) {
    var el = ctx.keep[p.id];
    if (el) { delete ctx.keep[p.id]; } else {
      el = document.createElement("div");
      el.id = p.id;
      el.className = ("dash-graph " + (p.className || "")).trim();
      setStyle(el, p.style);
    }
    ctx.charts.push({ box: el, figure: p.figure || {}, config: p.config || {} });
    return el;
  }

  function build(node, ctx) {
    if (node === null || node === undefined || node === false) { return []; }
    if (typeof node === "string" || typeof node === "number") { return [document.createTextNode(String(node))]; }
    if (Array.isArray(node)) {
      var all = [];
      node.forEach(function (n) { all = all.concat(build(n, ctx)); });
      return all;
    }
    var p = node.props || {};
    if (typeof p.id === "string" && p.id === MAP_AREA && ctx.keep[MAP_AREA]) {
      var area = ctx.keep[MAP_AREA];
      delete ctx.keep[MAP_AREA];
      return [area];
    }
    if (node.namespace === "dash_core_components") {
      if (node.type === "Graph" && typeof p.id === "string") { return [graphNode(p, ctx)]; }
      if (node.type === "Dropdown") { return [tierSelect(p)]; }
      throw new Error("drill: no way to draw " + node.type);
    }
    var tag = node.namespace === "dash_html_components" && TAGS[node.type];
    if (!tag) { throw new Error("drill: unknown component " + node.namespace + "." + node.type); }
    var el = document.createElement(tag);
    setAttrs(el, p);
    if (tag === "button" && p["data-vc-code"]) {  // 视频连线 / 整体联动 (the id is Dash's)
      el.type = "button";
      el.setAttribute("data-drill-vc", /vc-btn-group/.test(p.className || "") ? "group" : "one");
    }
    build(p.children, ctx).forEach(function (c) { el.appendChild(c); });
    return [el];
  }

  // -- applying an answer -------------------------------------------------------------------
  function fontSize() {
    return window.__wallScale ? window.__wallScale.fontSize() : null;
  }

  /* The charts once the new figures and map had a frame to show, all in one task (yielding
     between them let the stream's and the map's work in between and doubled the time). */
  function drawCharts(charts) {
    var px = fontSize();
    return new Promise(function (resolve) {
      window.requestAnimationFrame(function () { window.setTimeout(resolve, 0); });
    }).then(function () {
      mark("chartsStart");
      if (window.pinganWall) { window.pinganWall.state.chartsAt = Date.now(); }
      return Promise.all(charts.map(function (c) {
        if (!c.box.isConnected) { return null; }  // a later drill replaced the screen
        var gd = c.box.querySelector(".js-plotly-plot");
        if (!gd) {
          gd = document.createElement("div");
          gd.style.height = "100%";
          gd.style.width = "100%";
          c.box.appendChild(gd);
        }
        var layout = Object.assign({}, c.figure.layout || {});
        if (px) { layout.font = Object.assign({}, layout.font || {}, { size: px }); }
        var done = window.Plotly.react(gd, c.figure.data || [], layout, c.config);
        mark("react:" + c.box.id.replace("wall-chart-", ""));
        return Promise.resolve(done)
          .then(function () { gd.__drillAt = performance.now(); mark("chart:" + c.box.id); });
      }));
    });
  }

  function valid(data) {
    return data && typeof data === "object" && typeof data.centre === "string" &&
      typeof data.search === "string" && data.search.charAt(0) === "?" &&
      data.canvas && data.canvas.type === "Div" && data.canvas.props &&
      data.canvas.props["data-centre"] === data.centre && data.vm && data.vm.code === data.centre &&
      data.map && data.map.props && typeof data.map.props === "object";
  }

  function apply(data) {
    if (!valid(data)) { throw new Error("drill: an answer of unknown shape"); }
    if (!window.Plotly || !window.dash_clientside || !window.dash_clientside.set_props) {
      throw new Error("drill: Plotly or Dash not ready");
    }
    var root = document.querySelector(".live-screen");
    var canvas = root && root.querySelector(".wall-canvas");
    if (!canvas) { throw new Error("drill: no wall on screen"); }
    if (canvas !== state.canvas) {  // drawn by Dash: its tier picker is the one the vc callback reads
      state.canvas = canvas;
      state.reactCentre = canvas.getAttribute("data-centre");
      state.reactGroup = !!canvas.querySelector(".vc-group .vc-tier");
    }
    var ctx = { keep: {}, charts: [] };
    canvas.querySelectorAll(".dash-graph[id]").forEach(function (el) { ctx.keep[el.id] = el; });
    var area = document.getElementById(MAP_AREA);
    if (area && canvas.contains(area)) { ctx.keep[MAP_AREA] = area; }
    var oldClock = canvas.querySelector(".wall-clock");
    var clockText = oldClock ? oldClock.textContent : "";
    var kids = build(data.canvas.props.children, ctx);  // throws before anything changed
    mark("built");

    // the stream first: no message of the old centre may land on the new screen
    root.setAttribute("data-stream", data.stream || "");
    if (data.centre) { root.setAttribute("data-vc-centre", String(data.centre)); }  // assets/vc.js rings for it
    var wall = window.pinganWall;
    if (wall && wall.connect) {
      wall.connect();
      // what this answer draws, so that the new stream's first message does not draw it again:
      // the layers' hideouts, and the charts (wall.js leaves them alone for a while)
      ["wall-map-regions", "wall-map-grids", "wall-map-cameras"].forEach(function (id) {
        var lp = data.map.props[id];
        if (lp && lp.hideout) { wall.state.mapSent[id] = JSON.stringify({ hideout: lp.hideout }); }
      });
      wall.state.chartsAt = Date.now();
    }

    var p = data.canvas.props;
    canvas.className = String(p.className || "wall-canvas");
    ["lang", "data-centre", "data-lang", "data-i18n"].forEach(function (k) {
      if (typeof p[k] === "string") { canvas.setAttribute(k, p[k]); }
    });
    canvas.replaceChildren.apply(canvas, kids);
    var clock = canvas.querySelector(".wall-clock");
    if (clock) { clock.textContent = clockText; }

    var box = canvas.querySelector(".pm-box");
    if (box) {
      box.setAttribute("data-level", String(data.map.level));
      box.setAttribute("data-code", String(data.map.code));
    }
    mark("canvas");
    Object.keys(data.map.props).forEach(function (id) { setProps(id, data.map.props[id]); });
    mark("mapProps");
    return drawCharts(ctx.charts);
  }

  /* The Store app-screen-shown (each set_props is three store dispatches, each checked by
     every component on the page: not again when it holds the value already). */
  function shown(value) {
    if (state.shown === value) { return; }
    state.shown = value;
    setProps(SHOWN_ID, { data: value });
  }

  function fallback(search) {
    shown(null);
    setProps(URL_ID, { search: search });
  }

  /* Fetch and apply the wall of `search`. `push`: move the URL (a tap or a crumb; after a
     popstate the URL is already there). `stay`: a refusal (403, 400) leaves the wall as it is
     (else the full route shows the refusal, as before). */
  function run(search, push, stay) {
    var seq = ++state.seq;
    var t0 = performance.now();
    var path = window.location.pathname;
    var rec = { search: search, t0: t0, fetched: null, applied: null, charts: null, error: null,
                marks: {} };
    state.last = rec;
    return window.fetch(SCREEN_PATH + search, { credentials: "same-origin", cache: "no-store",
                                                headers: { Accept: "application/json" } })
      .then(function (r) {
        if (r.status === 401) { window.location.reload(); throw { quiet: true }; }
        if (r.status === 403 || r.status === 404 || r.status === 400) { throw { refused: r.status }; }
        if (!r.ok) { throw new Error("drill: HTTP " + r.status); }
        return r.json();
      })
      .then(function (data) {
        if (seq !== state.seq) { return null; }  // a later drill took over
        rec.fetched = performance.now() - t0;
        var charts = apply(data);
        rec.centre = data.centre;
        rec.applied = performance.now() - t0;
        shown(path + data.search);
        if (push || data.search !== window.location.search) { setProps(URL_ID, { search: data.search }); }
        return charts.then(function () { rec.charts = performance.now() - t0; return data; });
      })
      .catch(function (err) {
        if (seq !== state.seq || (err && err.quiet)) { return null; }
        rec.error = err && err.refused ? "refused " + err.refused : String(err && err.message || err);
        if (err && err.refused && stay) {
          shown(null);
          return null;
        }
        if (window.console) { window.console.warn("drill: full route instead:", rec.error); }
        fallback(search);
        return null;
      });
  }

  function current() {
    var c = document.querySelector(".live-screen .wall-canvas");
    return c ? c.getAttribute("data-centre") : null;
  }

  /* A tap on a child region (assets/map.js). Dash's own `drill` callback moves the URL too; the
     Store is set at once so that the router finds the screen drawn in place. */
  function tap(code, layerId) {
    if (state.disabled || layerId !== REGIONS || !onWall() || typeof code !== "string" ||
        code === current() || !window.fetch) { return false; }
    var search = searchFor(code);
    run(search, true, false);  // the request first: the store's work below runs while it flies
    shown(window.location.pathname + search);
    return true;
  }

  /* Drill the wall to any centre (a breadcrumb, a test); resolves to the answer or null. */
  function go(code) {
    if (!onWall() || typeof code !== "string") { return Promise.resolve(null); }
    return run(searchFor(code), true, true);
  }

  window.addEventListener("popstate", function () {
    // before dcc.Location's own listener: the router then finds the screen drawn in place
    if (state.disabled || !onWall() || !window.fetch) { return; }
    var cur = new URLSearchParams(window.location.search);
    var lang = cur.get("lang") || "zh";
    var canvas = document.querySelector(".live-screen .wall-canvas");
    if (cur.get("tour") || !canvas || canvas.getAttribute("data-lang") !== lang) {
      shown(null);
      return;
    }
    run(window.location.search, false, false);
    shown(window.location.pathname + window.location.search);
  });

  document.addEventListener("click", function (e) {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) { return; }
    var t = e.target;
    if (!t || !t.closest) { return; }
    var crumb = t.closest(".live-screen .wall-canvas .breadcrumb a.crumb");
    if (crumb && !state.disabled && window.fetch) {
      var code = new URLSearchParams(crumb.getAttribute("href") || "").get("centre");
      if (code) {
        e.preventDefault();
        if (code !== current()) { go(code); }
      }
      return;
    }
    var vc = t.closest("[data-drill-vc]");
    if (vc && window.pinganWall) {
      var group = vc.getAttribute("data-drill-vc") === "group";
      if (group && state.reactGroup) {
        var sel = vc.parentNode && vc.parentNode.querySelector("select.drill-tier");
        if (sel) { setProps({ type: VC_TIER, code: state.reactCentre }, { value: parseInt(sel.value, 10) || 0 }); }
      }
      window.pinganWall.call(vc.getAttribute("data-vc-code"), group);
    }
  }, true);

  window.pinganDrill = { tap: tap, go: go, state: state, searchFor: searchFor };
})();
