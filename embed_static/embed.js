/* Live refresh of a portal embed (/embed/<widget>), loaded as an external file (the page's
   Content-Security-Policy forbids inline scripts). Every data-refresh seconds it fetches
   /embed/<widget>/data (token and centre from the root's data- attributes) and writes:
     text  {key: string}          → textContent of the elements with data-k="key"
     attr  {key: {name: value}}   → SVG attributes of those elements (a fixed list of names)
     figures {path: value}        → data-value of the elements with data-figure="path"
   Never innerHTML. A failed or refused fetch marks the widget stale ("数据延迟"); a refused
   token (HTTP 403) shows the server's reason and stops polling. */
(function () {
  "use strict";
  var root = document.querySelector("[data-embed]");
  if (!root || !window.fetch) { return; }
  var ATTRS = { d: 1, width: 1, height: 1, x: 1, y: 1, fill: 1 };
  var every = Math.max(1, parseFloat(root.getAttribute("data-refresh")) || 5) * 1000;
  var flag = root.querySelector("[data-stale-flag]");
  var flagText = flag ? flag.textContent : "";
  var byKey = {}, byFigure = {};
  function index(attr, into) {
    var els = root.querySelectorAll("[" + attr + "]");
    for (var i = 0; i < els.length; i++) {
      var k = els[i].getAttribute(attr);
      (into[k] = into[k] || []).push(els[i]);
    }
  }
  index("data-k", byKey);
  index("data-figure", byFigure);
  var version = root.getAttribute("data-version") || "";
  var updates = 0;

  function setStale(on, text) {
    root.classList.toggle("is-stale", on);
    root.setAttribute("data-stale", on ? "1" : "0");
    if (flag) {
      flag.hidden = !on;
      flag.textContent = text || flagText;
    }
  }

  function each(map, fn) {
    if (!map) { return; }
    Object.keys(map).forEach(function (k) { fn(k, map[k]); });
  }

  function apply(d) {
    each(d.text, function (k, v) {
      (byKey[k] || []).forEach(function (el) { el.textContent = String(v); });
    });
    each(d.attr, function (k, attrs) {
      (byKey[k] || []).forEach(function (el) {
        each(attrs, function (name, v) { if (ATTRS[name]) { el.setAttribute(name, String(v)); } });
      });
    });
    each(d.figures, function (p, v) {
      var s = v === null ? "" : (typeof v === "object" ? JSON.stringify(v) : String(v));
      (byFigure[p] || []).forEach(function (el) { el.setAttribute("data-value", s); });
    });
    if (d.version !== undefined) {
      version = String(d.version);
      root.setAttribute("data-version", version);
    }
    setStale(!!d.stale);
  }

  function url() {
    var q = new URLSearchParams();
    q.set("token", root.getAttribute("data-token") || "");
    q.set("centre", root.getAttribute("data-centre") || "");
    q.set("lang", root.getAttribute("data-lang") || "zh");
    var ind = root.getAttribute("data-indicator");
    if (ind) { q.set("indicator", ind); }
    if (version) { q.set("have", version); }
    return root.getAttribute("data-src") + "?" + q.toString();
  }

  function tick() {
    if (document.hidden) { setTimeout(tick, every); return; }
    var refused = false;
    fetch(url(), { cache: "no-store", credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (r.status === 403) {
          refused = true;
          return r.json().then(function (d) { setStale(true, d && d.message); });
        }
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.json().then(function (d) {
          apply(d);
          root.setAttribute("data-updates", String(++updates));
        });
      })
      .catch(function () { setStale(true); })
      .then(function () { if (!refused) { setTimeout(tick, every); } });
  }
  setTimeout(tick, every);
})();
