/* Pingan duty console (值班席, /console, layouts/console.py) — the keyboard, and the mark of the
 * open case.
 *
 * Keys (never while typing in a field): j / ArrowDown and k / ArrowUp move the focus within
 * the list that has it (the case list when none has), Enter opens the focused row (a case
 * row's card, an alert's case), a acknowledges the focused alert. Every key only clicks what
 * a mouse could click, so the server's callbacks (callbacks/console.py) check everything.
 * Rows keep their DOM nodes across live updates (React keys: the case and alert ids), so the
 * focus stays where it is while the lists refresh.
 *
 * `pinganConsole.mark(eid)` (a clientside callback on the open case's store) marks its row.
 */
(function () {
  "use strict";
  if (window.pinganConsole) { return; }

  var ROWS = ".alert-row, .case-row[data-case]";

  function root() { return document.querySelector(".console-screen"); }

  function typing(el) {
    if (!el) { return false; }
    var tag = (el.tagName || "").toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || el.isContentEditable;
  }

  function listOf(el) { return el && el.closest ? el.closest(".con-body") : null; }

  function rows(list) { return list ? Array.prototype.slice.call(list.querySelectorAll(ROWS)) : []; }

  function focusRow(row) {
    if (!row) { return; }
    row.focus({ preventScroll: true });
    row.scrollIntoView({ block: "nearest" });
  }

  function move(r, step) {
    var active = document.activeElement;
    var row = active && active.closest ? active.closest(ROWS) : null;
    var list = row ? listOf(row) : r.querySelector("#console-cases");
    var all = rows(list);
    if (!all.length) { return; }
    var i = row ? all.indexOf(row) : -1;
    focusRow(all[Math.max(0, Math.min(all.length - 1, i < 0 ? 0 : i + step))]);
  }

  function clickIn(row, selector) {
    var el = row && row.querySelector(selector);
    if (el && !el.disabled) { el.click(); return true; }
    return false;
  }

  function onKey(e) {
    var r = root();
    if (!r || e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) { return; }
    var active = document.activeElement;
    var row = active && active.closest ? active.closest(ROWS) : null;
    var key = e.key;
    if (key === "j" || key === "ArrowDown") {
      move(r, 1);
    } else if (key === "k" || key === "ArrowUp") {
      move(r, -1);
    } else if (key === "Enter" && row && active === row) {
      if (row.classList.contains("case-row")) { row.click(); } else { clickIn(row, ".con-open"); }
    } else if ((key === "a" || key === "A") && row && row.classList.contains("alert-row")) {
      clickIn(row, ".con-ack");
    } else {
      return;
    }
    e.preventDefault();
  }

  document.addEventListener("keydown", onKey);

  // The tablet (/brief): a tapped count with cases behind it ([data-cases], the wall's figures)
  // opens that list in the command panel: its tab is pressed and brought into view.
  document.addEventListener("click", function (e) {
    var fig = e.target && e.target.closest && e.target.closest(".brief-screen [data-cases]");
    if (!fig) { return; }
    var tab = document.querySelector('.brief-screen .con-tab[data-status="' +
                                      fig.getAttribute("data-cases") + '"]');
    if (!tab) { return; }
    tab.click();
    tab.scrollIntoView({ block: "start" });
  });

  /* A live update redraws a list as new DOM (Dash mounts the children a callback returns
     afresh): the row the keyboard was on is found again by its id and gets the focus back. */
  var place = null;  // [attribute, value] of the row that has the focus

  function placeOf(row) {
    var attr = row.hasAttribute("data-case") ? "data-case" : "data-alert";
    return [attr, row.getAttribute(attr)];
  }

  var observer = null;  // made when the keyboard first lands on a console row: the wall never pays

  document.addEventListener("focusin", function (e) {
    var row = e.target && e.target.closest ? e.target.closest(ROWS) : null;
    place = row && root() ? placeOf(row) : null;
    if (place && !observer && window.MutationObserver) {
      observer = new MutationObserver(restore);
      observer.observe(document.body, { childList: true, subtree: true });
    }
  });
  document.addEventListener("mousedown", function (e) {
    if (!(e.target && e.target.closest && e.target.closest(ROWS))) { place = null; }
  }, true);

  function restore() {
    if (!root()) {  // the console was left: nothing to keep
      if (observer) { observer.disconnect(); observer = null; }
      place = null;
      return;
    }
    if (!place) { return; }
    var a = document.activeElement;
    if (a && a !== document.body && a.isConnected) { return; }
    var rows = document.querySelectorAll(".console-screen [" + place[0] + "]");
    for (var i = 0; i < rows.length; i++) {
      if (rows[i].getAttribute(place[0]) === place[1] && rows[i].matches(ROWS)) {
        rows[i].focus({ preventScroll: true });
        return;
      }
    }
  }


  function mark(eid) {
    document.querySelectorAll(".case-row.is-selected").forEach(function (el) {
      if (el.getAttribute("data-case") !== eid) { el.classList.remove("is-selected"); }
    });
    if (typeof eid === "string" && eid) {
      document.querySelectorAll(".case-row[data-case]").forEach(function (el) {
        if (el.getAttribute("data-case") === eid) { el.classList.add("is-selected"); }
      });
    }
    return typeof eid === "string" ? eid : "";
  }

  window.pinganConsole = { mark: mark, move: move };
  window.dash_clientside = window.dash_clientside || {};
  window.dash_clientside.pinganConsole = { mark: mark };
})();
