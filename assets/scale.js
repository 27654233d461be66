/* Scale Plotly's px fonts with the canvas (CSS rem scales everything else).
 *
 * font.size = innerHeight / 72 (15 px on 1080 lines, 30 px on 2160), applied to every
 * .js-plotly-plot inside .wall-canvas: on load, when graphs appear (MutationObserver, debounced
 * to one animation frame), on window resize, and after any re-plot that reset the size (a
 * plotly_afterplot listener attached once per graph). Idempotent: a graph already at the
 * wanted size is left alone; one resize listener, one observer, no intervals.
 */
(function () {
  "use strict";
  if (window.__wallScale) { return; }
  var RATIO = 72;
  var MIN_PX = 10;
  var pending = false;
  var tries = 0;

  function wanted() {
    return Math.max(MIN_PX, Math.round(window.innerHeight / RATIO));
  }

  function scaleOne(gd, px) {
    var Plotly = window.Plotly;
    if (!Plotly || !gd || !gd._fullLayout || !gd.isConnected) { return false; }
    if (!gd.__wallScaleHooked && typeof gd.on === "function") {
      gd.__wallScaleHooked = true;
      gd.on("plotly_afterplot", function () {
        var f = gd.layout && gd.layout.font;
        if (!f || f.size !== wanted()) { schedule(); }
      });
    }
    var cur = gd.layout && gd.layout.font && gd.layout.font.size;
    if (cur === px) { return true; }
    Plotly.relayout(gd, { "font.size": px });
    return true;
  }

  function scaleAll() {
    pending = false;
    var px = wanted();
    var graphs = document.querySelectorAll(".wall-canvas .js-plotly-plot");
    var missing = false;
    for (var i = 0; i < graphs.length; i++) {
      if (!scaleOne(graphs[i], px)) { missing = true; }
    }
    // Plotly (loaded lazily by dcc.Graph) or a graph not yet drawn: retry a few times.
    if (missing && tries < 50) {
      tries += 1;
      window.setTimeout(schedule, 200);
    } else if (!missing) {
      tries = 0;
    }
  }

  function schedule() {
    if (pending) { return; }
    pending = true;
    window.requestAnimationFrame(scaleAll);
  }

  window.__wallScale = { apply: scaleAll, fontSize: wanted };
  window.addEventListener("resize", schedule);
  var observer = new MutationObserver(function (records) {
    for (var i = 0; i < records.length; i++) {
      var added = records[i].addedNodes;
      for (var j = 0; j < added.length; j++) {
        var n = added[j];
        if (n.nodeType === 1 && (n.classList.contains("js-plotly-plot") ||
            n.querySelector(".js-plotly-plot") || n.classList.contains("main-svg"))) {
          schedule();
          return;
        }
      }
    }
  });
  function start() {
    observer.observe(document.body, { childList: true, subtree: true });
    schedule();
  }
  if (document.body) { start(); } else { document.addEventListener("DOMContentLoaded", start); }
})();
