/* How figures, times and dates are written in the browser: window.pinganFormat, the one
 * formatter of wall.js, map.js and brief.js (they look it up when they format, so the order
 * in which Dash loads the assets does not matter).
 *
 * fmt(v, kind) gives exactly what layouts/formats.py `fmt` gives on the server's first paint
 * (tests/integration/test_format_parity.py compares them):
 *   "int"   nearest integer, thousands separators   1234.5 → "1,235"
 *   "pct"   a 0–1 ratio, one decimal + "%"          0.9668 → "96.7%"
 *   "index" one decimal                             92.44  → "92.4"
 *   null, undefined, "", NaN, ±Infinity → "—"; an unknown kind is written as "int".
 * Rounding is half away from zero on the exact binary value (Number#toFixed is exact and
 * rounds ties away from zero, like Python's Decimal ROUND_HALF_UP); BigInt writes the digits
 * of values too large for toFixed; a result that rounds to zero carries no sign.
 *
 * clock(ms, tz) "HH:MM:SS", hhmm(ms, tz) "HH:MM" and dateText(ms, tz, lang, strings) (the
 * header's date, as layouts/formats.py `date_text`) write the time in the configured zone
 * (Settings.tz, data-tz on .live-screen), not the browser's.
 */
(function () {
  "use strict";
  if (window.pinganFormat) { return; }

  var DASH = "\u2014";
  var MONTHS_EN = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  var BIG = 1e21;  // from here on toFixed writes an exponent; such doubles are integers

  function group(digits) {
    return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }

  function unsigned0(s) {  // "-0", "-0.0" → "0", "0.0"
    return /^-0(\.0*)?$/.test(s) ? s.slice(1) : s;
  }

  function integer(x) {
    var r = x < 0 ? -Math.round(-x) : Math.round(x);  // Math.round rounds ties up: mirror it
    return unsigned0((r < 0 ? "-" : "") + group(BigInt(Math.abs(r)).toString()));
  }

  function oneDecimal(x) {
    if (Math.abs(x) >= BIG) { return BigInt(x).toString() + ".0"; }
    return unsigned0(x.toFixed(1));
  }

  function fmt(v, kind) {
    if (kind !== "int" && kind !== "pct" && kind !== "index") { kind = "int"; }
    if (v === null || v === undefined || v === "") { return DASH; }
    var x = Number(v);
    if (kind === "pct") { x = x * 100; }
    if (!isFinite(x)) { return DASH; }
    if (kind === "int") { return integer(x); }
    return oneDecimal(x) + (kind === "pct" ? "%" : "");
  }

  /* One Intl formatter per time zone (there is one on a page); an unknown zone falls back to
     the browser's own. */
  var formatters = {};
  function formatter(tz) {
    var key = tz || "";
    if (!formatters[key]) {
      var opts = { hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric",
                   hour: "numeric", minute: "numeric", second: "numeric" };
      try {
        formatters[key] = new Intl.DateTimeFormat("en-US", tz ? Object.assign({ timeZone: tz }, opts) : opts);
      } catch (e) {
        formatters[key] = new Intl.DateTimeFormat("en-US", opts);
      }
    }
    return formatters[key];
  }

  /* {year, month, day, hour, minute, second} of the instant `ms` in zone `tz`. */
  function parts(ms, tz) {
    var out = {};
    formatter(tz).formatToParts(new Date(ms)).forEach(function (p) {
      if (p.type !== "literal") { out[p.type] = parseInt(p.value, 10); }
    });
    out.hour = out.hour % 24;
    return out;
  }

  function pad(n) { return ("0" + n).slice(-2); }

  function hhmm(ms, tz) {
    var p = parts(ms, tz);
    return pad(p.hour) + ":" + pad(p.minute);
  }

  function clock(ms, tz) {
    var p = parts(ms, tz);
    return pad(p.hour) + ":" + pad(p.minute) + ":" + pad(p.second);
  }

  /* The header's date: "11月30日 星期一" / "Mon 30 Nov"; `strings` holds wd_0 (Monday) … wd_6. */
  function dateText(ms, tz, lang, strings) {
    var p = parts(ms, tz);
    var weekday = (new Date(Date.UTC(p.year, p.month - 1, p.day)).getUTCDay() + 6) % 7;
    var wd = (strings || {})["wd_" + weekday] || "";
    if (lang === "en") { return wd + " " + p.day + " " + MONTHS_EN[p.month - 1]; }
    return p.month + "月" + p.day + "日 " + wd;
  }

  window.pinganFormat = { fmt: fmt, DASH: DASH, parts: parts, hhmm: hhmm, clock: clock,
                          dateText: dateText };
})();
