"""The duty console (值班席, /console) and the tablet's command panel. Pure: data in, components out.

The data are the plain dicts of the data modules (`CaseList.to_dict()`, `CaseCard.to_dict()`,
`Alert.to_dict()`, datasources/cases.py and datasources/alerts.py) and the topology (names and
tiers of centres). Every text that came from outside (a case's summary, a 督办 note, a user
name, an id) is a child string, which React writes as text: never markup.

Pieces (ids in layouts/console_ids.py; one set of callbacks, callbacks/console.py, fills them
on either screen):
- the alert queue: a row per alert (`data-alert`, `data-state`, `data-severity`), the
  unacknowledged first, with 确认 (ack) and 上墙;
- the status tabs (open / overdue / urgent / escalated / supervised) with their counts;
- the case list: a row per case (`data-case`), overdue first;
- the case card: the stages 受理 → 分流 → 处置 → 反馈 → 评价, the timeline of every
  transition (escalations with the tiers, 督办 with who and when, time spent at each step
  against the deadline), and the actions (督办 with a note, 视频连线, 上墙);
- on the console only, the producers (数据来源): per producer entries accepted, dead letters,
  last entry, lag, and a silent one marked (`data-silent`, 静默).
assets/console.js adds the keyboard (j/k or arrows move, Enter opens, a acknowledges).
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from dash import dcc, html

from datasources.contract import ALERT_STATES, MAX_TEXT, SEVERITIES, STATUS_FILTERS
from datasources.registry import LEVELS
from datasources.topology import Topology
from datasources.vocabulary import DEFAULT, Vocabulary
from layouts import console_ids as cid
from layouts import vc
from layouts.i18n import STRINGS, norm_lang, t
from layouts.shell import vc_marks
from layouts.viewmodel import centre_tier
from layouts.wall import breadcrumb

# the stages of a case's life, in order, and the status that reaches each
STAGES = (("reported", "console_stage_reported"), ("dispatched", "console_stage_dispatched"),
          ("handling", "console_stage_handling"), ("resolved", "console_stage_resolved"),
          ("evaluated", "console_stage_evaluated"))
NOTE_MAX = MAX_TEXT  # a 督办 note, characters
CASE_RULES = ("urgent_case", "overdue_case")  # alerts about a case: 查看 opens its card
DETAIL_HIDDEN = frozenset({"kind", "pid"})  # said by the rule's name, or shown as the alert's ref
DASH = "—"


# -- text helpers ----------------------------------------------------------------------------
def _zone(tz: str) -> ZoneInfo | type[UTC]:
    try:
        return ZoneInfo(tz) if tz else UTC
    except (ValueError, KeyError):
        return UTC


def clock_text(ms: int | None, tz: str, now_ms: int) -> str:
    """A moment as HH:MM when it is today (in `tz`), else MM-DD HH:MM; — when unknown."""
    if not ms:
        return DASH
    zone = _zone(tz)
    when = datetime.fromtimestamp(ms / 1000, zone)
    today = datetime.fromtimestamp(now_ms / 1000, zone).date()
    return when.strftime("%H:%M" if when.date() == today else "%m-%d %H:%M")


def span_text(ms: int | None, lang: str) -> str:
    """A duration in minutes, hours and minutes, or days and hours."""
    if ms is None:
        return DASH
    minutes = max(0, int(ms)) // 60_000
    if minutes < 60:
        return t("console_span_m", lang, m=minutes)
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return t("console_span_hm", lang, h=hours, m=minutes)
    days, hours = divmod(hours, 24)
    return t("console_span_dh", lang, d=days, h=hours)


def centre_name(topo: Topology, code: str) -> str:
    info = topo.centres.get(code)
    return info.name if info is not None else (code or DASH)


def tier_text(level: int | None, lang: str, vocab: Vocabulary = DEFAULT) -> str:
    """The region's name of a tier (`vocab`'s `tier` terms), a dash for none."""
    return vocab.tier_name(level, lang) if level in LEVELS else DASH


def label(prefix: str, value: str, lang: str) -> str:
    """The catalogue's text for a value (`console_step_resolved`), or the value itself."""
    key = f"{prefix}{value}"
    return t(key, lang) if key in STRINGS else str(value)


def centre_options(topo: Topology, scope: str, lang: str) -> list[dict]:
    """The centre picker: every centre of the viewer's subtree, depth first, indented by tier."""
    if scope not in topo.centres:
        return []
    out, todo = [], [scope]
    top = topo.centres[scope].level
    while todo:
        code = todo.pop()
        info = topo.centres[code]
        pad = "\u3000" * max(0, info.level - top)
        out.append({"label": f"{pad}{info.name} · {tier_text(info.level, lang, topo.vocab)}",
                    "value": code,
                    "search": f"{info.name} {code}"})
        todo.extend(reversed(topo.children.get(code, ())))
    return out


# -- alerts ----------------------------------------------------------------------------------
def alert_text(alert: dict, lang: str) -> str:
    """What the alert says: its rule, with the small figures of its detail (hours overdue,
    cameras offline, …) each in the catalogue's words when it has them."""
    detail = alert.get("detail") if isinstance(alert.get("detail"), dict) else {}
    bits = []
    for k, v in sorted(detail.items()):
        if k in DETAIL_HIDDEN or isinstance(v, bool) or not isinstance(v, int | float | str) \
                or len(bits) == 3:
            continue
        key = f"console_detail_{k}"
        bits.append(t(key, lang, v=v) if key in STRINGS else f"{k} {v}")
    text = label("wc_rule_", str(alert.get("rule", "")), lang)
    return text + (" · " + ", ".join(bits) if bits else "")


def alert_row(alert: dict, topo: Topology, lang: str, now_ms: int, tz: str,
              can_ack: bool) -> html.Div:
    aid = str(alert.get("id", ""))
    state = alert.get("state") if alert.get("state") in ALERT_STATES else "raised"
    severity = alert.get("severity") if alert.get("severity") in SEVERITIES else "minor"
    eid = str(alert.get("eid") or "")
    detail = alert.get("detail") if isinstance(alert.get("detail"), dict) else {}
    ref = eid or str(detail.get("pid") or "")  # the case, or the petition, it is about
    where = centre_name(topo, str(alert.get("centre", "")))
    body = [html.Span(label("wc_sev_", severity, lang), className=f"sev sev-{severity}"),
            html.Span([html.Span(alert_text(alert, lang), className="alert-text"),
                       html.Span(where + (f" · {ref}" if ref else ""), className="alert-where")],
                      className="alert-main"),
            html.Span(clock_text(alert.get("raised_at"), tz, now_ms), className="alert-time")]
    if state == "acknowledged":
        who = str(alert.get("acked_by") or DASH)
        body.append(html.Span(t("console_acked_by", lang, who=who,
                                time=clock_text(alert.get("acked_at"), tz, now_ms)),
                              className="alert-state"))
    elif state == "cleared":
        body.append(html.Span(t("console_state_cleared", lang), className="alert-state"))
    actions = []
    if eid and alert.get("rule") in CASE_RULES:
        actions.append(html.Button(t("console_open", lang), n_clicks=0, className="con-btn con-open",
                                   id={"type": cid.ALERT_ROW, "alert": aid},
                                   title=t("console_open_case", lang, eid=eid)))
    if can_ack and state == "raised":
        actions.append(html.Button(t("console_ack", lang), n_clicks=0, className="con-btn con-ack",
                                   id={"type": cid.ACK, "alert": aid}))
    if can_ack:
        actions.append(html.Button(t("console_wall", lang), n_clicks=0, className="con-btn con-wall",
                                   id={"type": cid.WALL_ALERT, "alert": aid}))
    body.append(html.Span(actions, className="row-actions"))
    return html.Div(body, key=aid, tabIndex="0",
                    className=f"alert-row sev-{severity} state-{state}",
                    **{"data-alert": aid, "data-state": state, "data-severity": severity,
                       "data-eid": eid, "role": "listitem"})


def alert_list(alerts: list[dict], topo: Topology, lang: str, now_ms: int, tz: str,
               can_ack: bool) -> list:
    if not alerts:
        return [html.Div(t("console_alerts_none", lang), className="empty-note")]
    return [alert_row(a, topo, lang, now_ms, tz, can_ack) for a in alerts]


def alert_count(alerts: list[dict], lang: str) -> str:
    raised = sum(1 for a in alerts if a.get("state") == "raised")
    return t("console_alerts_count", lang, n=raised, total=len(alerts))


# -- cases -----------------------------------------------------------------------------------
def status_tabs(counts: dict[str, int | None], active: str, lang: str) -> list:
    """One tab per filter with its count (— when unknown); `active` is pressed."""
    tabs = []
    for s in STATUS_FILTERS:
        n = counts.get(s)
        on = s == active
        tabs.append(html.Button(
            [html.Span(t(f"console_tab_{s}", lang), className="tab-name"),
             html.Span(DASH if n is None else f"{n:,}", className="tab-count",
                       **{"data-count": "" if n is None else str(n)})],
            id={"type": cid.TAB, "status": s}, n_clicks=0,
            className="con-tab" + (" is-on" if on else "") + (f" tab-{s}"),
            **{"data-status": s, "aria-pressed": "true" if on else "false"}))
    return tabs


CASE_COLUMNS = ("eid", "category", "channel", "centre", "tier", "status", "reported", "due",
                "overdue", "supervised")


def case_header(lang: str) -> html.Div:
    return html.Div([html.Span(t(f"console_col_{c}", lang), className=f"col col-{c}")
                     for c in CASE_COLUMNS], className="case-row case-head", role="row")


def case_row(row: dict, topo: Topology, lang: str, now_ms: int, tz: str,
             selected: str | None = None) -> html.Div:
    eid = str(row.get("eid", ""))
    over = int(row.get("overdue_ms") or 0)
    urgent = row.get("urgency") == "urgent"
    cells = {
        "eid": [html.Span(eid, className="eid")]
        + ([html.Span(t("console_urgent", lang), className="chip chip-urgent")] if urgent else []),
        "category": topo.vocab.label("category", str(row.get("category", "")), lang),
        "channel": topo.vocab.label("event_channel", str(row.get("channel", "")), lang),
        "centre": centre_name(topo, str(row.get("centre", ""))),
        "tier": tier_text(row.get("tier"), lang, topo.vocab),
        "status": label("console_step_", str(row.get("status", "")), lang),
        "reported": clock_text(row.get("reported_at"), tz, now_ms),
        "due": clock_text(row.get("due"), tz, now_ms),
        "overdue": span_text(over, lang) if over > 0 else "",
        "supervised": str(row.get("supervised") or "") if row.get("supervised") else "",
    }
    summary = str(row.get("summary") or "")
    cols = [html.Span(cells[c], className=f"col col-{c}") for c in CASE_COLUMNS]
    if summary:
        cols.append(html.Span(summary, className="col col-summary"))
    cls = "case-row" + (" is-overdue" if over > 0 else "") + (" is-urgent" if urgent else "")
    cls += " is-selected" if selected == eid else ""
    return html.Div(cols, id={"type": cid.CASE_ROW, "eid": eid}, key=eid, n_clicks=0,
                    tabIndex="0", className=cls, role="row",
                    **{"data-case": eid, "data-overdue": str(over), "data-centre": row.get("centre", "")})


def case_list(data: dict, topo: Topology, lang: str, now_ms: int, tz: str,
              selected: str | None = None) -> list:
    rows = data.get("cases") or []
    if not rows:
        return [html.Div(t("console_cases_none", lang), className="empty-note")]
    total = int(data.get("total") or len(rows))
    out = [case_header(lang), *[case_row(r, topo, lang, now_ms, tz, selected) for r in rows]]
    if total > len(rows):
        out.append(html.Div(t("console_cases_more", lang, n=len(rows), total=f"{total:,}"),
                            className="list-note"))
    return out


# -- the case card ---------------------------------------------------------------------------
def stage_bar(steps: list[dict], lang: str) -> html.Ol:
    reached = {s.get("status") for s in steps}
    last = max((i for i, (s, _) in enumerate(STAGES) if s in reached), default=-1)
    return html.Ol([html.Li(t(key, lang), className="stage" + (" is-done" if i <= last else "")
                            + (" is-current" if i == last else ""), **{"data-stage": s})
                    for i, (s, key) in enumerate(STAGES)], className="stage-bar")


def step_item(step: dict, topo: Topology, lang: str, now_ms: int, tz: str) -> html.Li:
    status = str(step.get("status", ""))
    where = centre_name(topo, str(step.get("centre", "")))
    lines: list = [html.Div([html.Span(label("console_step_", status, lang), className="step-name"),
                             html.Span(clock_text(step.get("ts"), tz, now_ms), className="step-time"),
                             html.Span(where, className="step-centre")], className="step-head")]
    if status == "escalated" and step.get("to"):
        src, dst = str(step.get("centre", "")), str(step["to"])
        lines.append(html.Div(t("console_escalated_from_to", lang,
                                src=centre_name(topo, src),
                                src_tier=tier_text(getattr(topo.centres.get(src), "level", None),
                                                   lang, topo.vocab),
                                dst=centre_name(topo, dst),
                                dst_tier=tier_text(getattr(topo.centres.get(dst), "level", None),
                                                   lang, topo.vocab)),
                              className="step-move"))
    if status == "supervised":
        lines.append(html.Div(t("console_supervised_by", lang,
                                by=centre_name(topo, str(step.get("by", ""))),
                                user=str(step.get("user") or DASH)), className="step-by"))
    if step.get("note"):
        lines.append(html.Div([html.Span(t("console_note", lang), className="step-label"),
                               html.Span(str(step["note"]), className="step-note")],
                              className="step-text"))
    if step.get("summary"):
        lines.append(html.Div([html.Span(t("console_summary", lang), className="step-label"),
                               html.Span(str(step["summary"]), className="step-summary")],
                              className="step-text"))
    spent = step.get("spent_ms")
    over = int(step.get("over_ms") or 0)
    timing = []
    if spent:
        timing.append(html.Span(t("console_spent", lang, d=span_text(spent, lang)),
                                className="step-spent"))
    if over > 0:
        timing.append(html.Span(t("console_over", lang, d=span_text(over, lang)),
                                className="step-over"))
    if timing:
        lines.append(html.Div(timing, className="step-timing"))
    return html.Li(lines, className=f"step step-{status}" + (" is-late" if over > 0 else ""),
                   **{"data-step": status})


def card_body(card: dict, topo: Topology, lang: str, now_ms: int, tz: str) -> list:
    """The card's figures and timeline (re-drawn when the data move; the actions are apart,
    so a note being typed survives)."""
    row = card.get("row") or {}
    steps = list(card.get("steps") or [])
    eid = str(row.get("eid", ""))
    over = int(row.get("overdue_ms") or 0)
    closed = int(card.get("closed_at") or 0)
    due = row.get("due")
    if closed:
        due_text = t("console_closed_at", lang, time=clock_text(closed, tz, now_ms))
    elif over > 0:
        due_text = t("console_overdue_by", lang, d=span_text(over, lang))
    elif due:
        due_text = t("console_due_in", lang, d=span_text(int(due) - now_ms, lang))
    else:
        due_text = DASH
    chips = [html.Span(label("console_step_", str(row.get("status", "")), lang), className="chip"),
             *([html.Span(t("console_urgent", lang), className="chip chip-urgent")]
               if row.get("urgency") == "urgent" else []),
             *([html.Span(t("console_tab_overdue", lang), className="chip chip-overdue")]
               if over > 0 else [])]
    facts = [
        ("console_col_centre", f"{centre_name(topo, str(row.get('centre', '')))} · "
                               f"{tier_text(row.get('tier'), lang, topo.vocab)}"),
        ("console_col_category", topo.vocab.label("category", str(row.get("category", "")), lang)),
        ("console_col_channel", topo.vocab.label("event_channel", str(row.get("channel", "")),
                                                 lang)),
        ("console_col_reported", clock_text(row.get("reported_at"), tz, now_ms)),
        ("console_col_due", clock_text(due, tz, now_ms)),
        ("console_deadline", due_text),
        ("console_col_supervised", str(int(row.get("supervised") or 0))),
        ("console_escalations", str(int(row.get("escalated") or 0))),
    ]
    out = [
        html.Div([html.H3(eid, className="card-eid"), *chips], className="card-head"),
        html.Dl([x for k, v in facts for x in (html.Dt(t(k, lang)), html.Dd(v))],
                className="card-facts"),
    ]
    if row.get("summary"):
        out.append(html.P(str(row["summary"]), className="card-summary"))
    out.append(stage_bar(steps, lang))
    out.append(html.Ol([step_item(s, topo, lang, now_ms, tz) for s in steps],
                       className="timeline"))
    return [html.Div(out, className="case-card" + (" is-overdue" if over > 0 else "")
                     + (" is-closed" if closed else ""),
                     **{"data-card": eid, "data-open": "1" if row.get("open") else "0"})]


def card_actions(card: dict, lang: str, *, can_supervise: bool, can_act: bool,
                 calls: bool, here: str = "") -> list:
    """督办 with a note (when the viewer sits above the case's centre and it is open),
    视频连线 to the case's centre (not when that is `here`, the screen's own centre: a call
    goes to another centre), 上墙."""
    row = card.get("row") or {}
    eid = str(row.get("eid", ""))
    centre = str(row.get("centre", ""))
    out: list = []
    if can_supervise and row.get("open"):
        out.append(html.Div([
            dcc.Textarea(id={"type": cid.NOTE, "eid": eid}, maxLength=NOTE_MAX, value="",
                         placeholder=t("console_note_placeholder", lang), className="con-note",
                         title=t("console_note", lang)),
            html.Button(t("console_supervise", lang), id={"type": cid.SUPERVISE, "eid": eid},
                        n_clicks=0, className="con-btn con-supervise"),
        ], className="card-supervise"))
    buttons = []
    if calls and centre and centre != here:
        buttons.append(vc.call_button(centre, lang))
    if can_act:
        buttons.append(html.Button(t("console_wall", lang), id={"type": cid.WALL, "eid": eid},
                                   n_clicks=0, className="con-btn con-wall"))
    if buttons:
        out.append(html.Div(buttons, className="card-buttons"))
    return out


def card_note(key: str, lang: str) -> list:
    """The card's place when no card is shown (none selected, or not one the viewer may see)."""
    return [html.Div(t(key, lang), className="empty-note", **{"data-card-note": key})]


# -- producers (数据来源, issue 12) -------------------------------------------------------------
PRODUCER_COLUMNS = ("name", "accepted", "dead", "last", "lag", "state")
SIMULATOR, UNREGISTERED = "pingan-sim", "(unregistered)"  # datasources/producers.py's buckets


def lag_text(ms: int | None, lang: str) -> str:
    """A lag in seconds under a minute, else as a span."""
    if ms is None:
        return DASH
    ms = max(0, int(ms))
    return t("console_span_s", lang, s=f"{ms / 1000:.1f}") if ms < 60_000 else span_text(ms, lang)


def producer_row(p: dict, lang: str, now_ms: int, tz: str) -> html.Div:
    """One producer's figures (`datasources.producers.stats` row); a silent one is marked."""
    name = str(p.get("name", ""))
    silent = bool(p.get("silent"))
    dead = p.get("dead") if isinstance(p.get("dead"), dict) else {}
    names = [html.Span(name, className="prod-name")]
    if name in (SIMULATOR, UNREGISTERED):
        key = "console_prod_sim" if name == SIMULATOR else "console_prod_unregistered"
        names = [html.Span(t(key, lang), className="prod-name"),
                 *([html.Span(name, className="prod-id")] if name == SIMULATOR else [])]
    counts = {str(k): v for k, v in dead.items() if isinstance(v, int) and not isinstance(v, bool)}
    reasons = " · ".join(f"{k} {v:,}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:3])
    cells = {
        "name": names,
        "accepted": f"{int(p.get('accepted') or 0):,}",
        "dead": f"{int(p.get('dead_total') or 0):,}",
        "last": clock_text(p.get("last_ts"), tz, now_ms),
        "lag": lag_text(p.get("lag_ms"), lang),
        "state": html.Span(t("console_prod_silent" if silent else "console_prod_ok", lang),
                           className="chip chip-silent" if silent else "prod-ok"),
    }
    cols = [html.Span(cells[c], className=f"col col-{c}") for c in PRODUCER_COLUMNS]
    if reasons:  # the dead letters' commonest reasons, on a line of their own
        cols.append(html.Span(reasons, className="col col-reasons"))
    return html.Div(cols, key=name, role="row",
                    className="producer-row" + (" is-silent" if silent else "")
                    + (" has-dead" if counts else ""),
                    **{"data-producer": name, "data-silent": "1" if silent else "0"})


def producer_list(rows: list[dict], lang: str, now_ms: int, tz: str) -> list:
    if not rows:
        return [html.Div(t("console_producers_none", lang), className="empty-note")]
    head = html.Div([html.Span(t(f"console_prod_col_{c}", lang), className=f"col col-{c}")
                     for c in PRODUCER_COLUMNS], className="producer-row producer-head", role="row")
    return [head, *[producer_row(p, lang, now_ms, tz) for p in rows]]


def producer_count(rows: list[dict], lang: str) -> str:
    return t("console_producers_count", lang, n=len(rows),
             silent=sum(1 for p in rows if p.get("silent")))


def producers_section(lang: str) -> html.Section:
    """The duty console's 数据来源 panel, empty; its own interval refreshes it."""
    return html.Section([
        html.Div([html.H2(t("console_producers", lang), className="con-title"),
                  html.Span("", id=cid.PRODUCER_COUNT, className="con-count")],
                 className="con-head"),
        html.Div([], id=cid.PRODUCERS, className="con-body producer-table", role="table"),
        dcc.Interval(id=cid.PRODUCERS_TICK, interval=cid.PRODUCERS_TICK_MS),
    ], className="con-section con-producers", **{"data-section": "producers"})


# -- the screens -------------------------------------------------------------------------------
def machinery(code: str) -> list:
    """The stores and the 1 s version tick both screens need."""
    return [
        dcc.Interval(id=cid.TICK, interval=cid.TICK_MS),
        dcc.Store(id=cid.VERSION, data=None),
        dcc.Store(id=cid.REQUEST, data={"centre": code}),
        dcc.Store(id=cid.STATUS, data="open"),
        dcc.Store(id=cid.SELECTED, data=None),
        dcc.Store(id=cid.ACTED, data=0),
        dcc.Store(id=cid.LISTS_SHOWN, data=None),
        dcc.Store(id=cid.CARD_SHOWN, data=None),
        html.Div(id=cid.SINK, hidden=True),
    ]


def wall_controls(code: str, lang: str, can_act: bool) -> html.Div:
    """The wall group the 上墙 buttons drive, and 上墙 for the centre in view."""
    return html.Div([
        html.Label(t("console_wall_group", lang), htmlFor=cid.GROUP, className="con-label"),
        dcc.Input(id=cid.GROUP, value=cid.DEFAULT_GROUP, type="text", maxLength=32,
                  debounce=True, className="con-input"),
        html.Button(t("console_wall_centre", lang), id=cid.WALL_CENTRE, n_clicks=0,
                    className="con-btn con-wall", disabled=not can_act),
    ], className="wall-controls")


def section(name: str, title: str, body: list, extra: list | None = None,
            body_id: str | None = None) -> html.Section:
    return html.Section([
        html.Div([html.H2(title, className="con-title"), *(extra or [])], className="con-head"),
        html.Div(body, id=body_id, className="con-body", **({"role": "list"} if name == "alerts" else {})),
    ], className=f"con-section con-{name}", **{"data-section": name})


def pieces(code: str, lang: str) -> list:
    """The alert queue, the case lists and the card, empty (the callbacks fill them)."""
    return [
        section("alerts", t("console_alerts", lang), [],
                [html.Span("", id=cid.ALERT_COUNT, className="con-count")], body_id=cid.ALERTS),
        html.Section([
            html.Div([html.H2(t("console_cases", lang), className="con-title"),
                      html.Div(status_tabs({}, "open", lang), id=cid.TABS, className="con-tabs",
                               role="tablist")], className="con-head"),
            html.Div([], id=cid.CASES, className="con-body case-table", role="table"),
        ], className="con-section con-cases", **{"data-section": "cases"}),
        html.Section([
            html.Div([html.H2(t("console_card", lang), className="con-title")], className="con-head"),
            html.Div([html.Div(card_note("console_card_none", lang), id=cid.CARD),
                      html.Div([], id=cid.CARD_ACTIONS, className="card-actions")],
                     className="con-body"),
        ], className="con-section con-card", **{"data-section": "card"}),
    ]


def console_screen(vm: dict, lang: str, *, options: list[dict], can_act: bool,
                   chip=None, tz: str = "") -> html.Div:
    """The whole console of the centre described by `vm` (its name, tier and breadcrumb):
    `options` the centre picker (`centre_options`), `can_act` whether the viewer's role may
    act (ack, 督办, 上墙), `chip` who is signed in."""
    lang = norm_lang(lang)
    code = vm["code"]
    head = html.Header([
        html.Div([
            html.Div([html.H1(t("console_title", lang, name=vm["name"]), className="con-h1"),
                      html.Span(centre_tier(vm, lang), className="level-chip"),
                      *([chip] if chip is not None else [])], className="title-line"),
            breadcrumb(vm, lang, in_app=True),
        ], className="con-head-main"),
        html.Div([
            html.Label(t("console_centre", lang), htmlFor=cid.PICKER, className="con-label"),
            dcc.Dropdown(id=cid.PICKER, options=options, value=code, clearable=False,
                         searchable=True, className="con-picker"),
        ], className="con-picker-box"),
        wall_controls(code, lang, can_act),
        html.Div([html.Span(t("console_keys", lang), className="con-keys"),
                  html.Div("", id=cid.MESSAGE, className="con-message", role="status",
                           **{"aria-live": "polite"})], className="con-status"),
    ], className="con-header")
    return html.Div(
        [head, html.Main([*pieces(code, lang), producers_section(lang)], className="con-grid"),
         *machinery(code)],
        id=cid.ROOT,
        className="console-screen",
        lang="zh-CN" if lang == "zh" else "en",
        **{"data-centre": code, "data-lang": lang, "data-tz": tz, **vc_marks(code, "desk", lang)},
    )


def command_panel(vm: dict, lang: str, can_act: bool = True) -> html.Section:
    """The tablet's panel (/brief): the same pieces and ids, touch-sized (assets/console.css)."""
    lang = norm_lang(lang)
    code = vm["code"]
    return html.Section([
        html.Div([html.H2(t("console_panel", lang), className="panel-name"),
                  html.Span(className="age", **{"data-age": "all"})], className="panel-title"),
        html.Div([
            html.Div([wall_controls(code, lang, can_act),
                      html.Div("", id=cid.MESSAGE, className="con-message", role="status",
                               **{"aria-live": "polite"})], className="con-status"),
            html.Div(pieces(code, lang), className="con-grid"),
            *machinery(code),
        ], className="panel-body"),
    ], id=cid.PANEL, className="panel command-panel", **{"data-panel": "command",
                                                         "data-centre": code})


def validation_components() -> list:
    """Stand-ins for the components the console callbacks use, for the app's validation layout."""
    return [*machinery(""), html.Div(id=cid.ALERTS), html.Span(id=cid.ALERT_COUNT),
            html.Div(id=cid.TABS), html.Div(id=cid.CASES), html.Div(id=cid.CARD),
            html.Div(id=cid.CARD_ACTIONS), html.Div(id=cid.MESSAGE), dcc.Dropdown(id=cid.PICKER),
            dcc.Input(id=cid.GROUP), html.Button(id=cid.WALL_CENTRE),
            html.Div(id=cid.PRODUCERS), html.Span(id=cid.PRODUCER_COUNT),
            dcc.Interval(id=cid.PRODUCERS_TICK)]
