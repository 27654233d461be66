"""Plotly figures of the wall (pure: view model in, figure dicts out).

Every trace carries `meta = {"series": <vm path>, "x": <vm path>}` so that assets/wall.js can
swap the data in place when the view model changes:

- "hourly.today"            a list in the vm
- "petitions_7d[].letter"   the field `letter` of each row of the list `petitions_7d`
- "by_category{}"           the values of the dict `by_category`, in the order of the trace's
                            category coordinates (which are the dict's keys; labels are shown
                            through the axis' ticktext)

Vertical traces take the series as `y` (and `meta.x` as `x`); horizontal bars
(`orientation: "h"`) take the series as `x` and their keys are in `y`.
Font sizes are in px here and are rescaled to the canvas by assets/scale.js.
"""

from __future__ import annotations

from datasources.registry import LEVEL_OF
from datasources.vocabulary import Vocabulary
from layouts.i18n import t
from layouts.viewmodel import closed_keys, tier_name, vocab_of

FONT = '"Noto Sans CJK SC", "Source Han Sans SC", "Microsoft YaHei", "PingFang SC", sans-serif'
TEXT = "#9fb8d6"
GRID = "rgba(120, 170, 220, 0.14)"
AXIS = "rgba(120, 170, 220, 0.35)"

CYAN = "#2ec7ff"
TEAL = "#29d3a4"
AMBER = "#ffb020"
RED = "#ff5a5f"
VIOLET = "#8c7bff"
BLUE = "#4f8cff"
GREY = "#6f86a3"

def _keys(d: dict, preferred: tuple[str, ...]) -> list[str]:
    """The known keys in their canonical order, then any others the data carries."""
    return [k for k in preferred if k in d] + [k for k in d if k not in preferred]


def _axis(**kw) -> dict:
    base = {"gridcolor": GRID, "linecolor": AXIS, "zeroline": False, "automargin": True,
            "fixedrange": True, "showline": False, "ticks": "", "tickfont": {"color": TEXT}}
    base.update(kw)
    return base


def _layout(**kw) -> dict:
    base = {
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "font": {"family": FONT, "size": 14, "color": TEXT},
        "margin": {"l": 4, "r": 8, "t": 6, "b": 4, "pad": 2},
        "showlegend": False,
        "hovermode": False,
        "dragmode": False,
        "uirevision": "wall",
        "bargap": 0.3,
        "xaxis": _axis(),
        "yaxis": _axis(),
    }
    base.update(kw)
    return base


def _wrap(label: str, width: int = 7) -> str:
    """Long labels with spaces go on two lines (plotly's <br>), so ticks never rotate."""
    if len(label) <= width or " " not in label:
        return label
    cut = min((i for i, ch in enumerate(label) if ch == " "), key=lambda i: abs(i - len(label) / 2))
    return label[:cut] + "<br>" + label[cut + 1:]


def plain(label: str) -> str:
    """A label as plain text for Plotly, which reads tags (`<b>`, `<a href>`) and entities
    in its texts: the region's labels are data, never markup."""
    return label.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _terms(vm: dict, kind: str, key: str, lang: str) -> tuple[list[str], list[str], list[str]]:
    """The codes of `vm[key]` in the vocabulary's order (then any others it carries), with
    their labels in `lang` (plain text for Plotly) and their colours."""
    vocab: Vocabulary = vocab_of(vm)
    keys = _keys(vm[key], vocab.codes(kind))
    return (keys, [plain(vocab.label(kind, k, lang)) for k in keys],
            [vocab.colour(kind, k) for k in keys])


def _one_or_each(colours: list[str]) -> str | list[str]:
    """One colour for every bar when the terms share it (as the default lists do), else one
    per bar."""
    return colours[0] if colours and len(set(colours)) == 1 else colours


def _label_axis(keys: list[str], labels: list[str], wrap: bool = True, **kw) -> dict:
    kw.setdefault("tickangle", 0)
    return _axis(type="category", categoryorder="array", categoryarray=keys, tickvals=keys,
                 ticktext=[_wrap(x) for x in labels] if wrap else labels, showgrid=False, **kw)


def hourly(vm: dict, lang: str) -> dict:
    h = vm["hourly"]
    return {
        "data": [
            {"type": "scatter", "mode": "lines", "name": t("yesterday", lang),
             "x": h["hours"], "y": h["yesterday"],
             "line": {"color": GREY, "width": 2, "dash": "dot", "shape": "spline"},
             "meta": {"series": "hourly.yesterday", "x": "hourly.hours"}},
            {"type": "scatter", "mode": "lines", "name": t("today", lang),
             "x": h["hours"], "y": h["today"],
             "line": {"color": CYAN, "width": 3, "shape": "spline"},
             "fill": "tozeroy", "fillcolor": "rgba(46, 199, 255, 0.12)",
             "meta": {"series": "hourly.today", "x": "hourly.hours"}},
        ],
        "layout": _layout(
            xaxis=_axis(type="category", showgrid=False, nticks=12),
            yaxis=_axis(rangemode="tozero", nticks=5),
        ),
    }


def by_category(vm: dict, lang: str) -> dict:
    keys, labels, colours = _terms(vm, "category", "by_category", lang)
    return {
        "data": [{
            "type": "bar", "orientation": "h",
            "y": keys, "x": [vm["by_category"][k] for k in keys],
            "marker": {"color": _one_or_each(colours), "line": {"width": 0}},
            "texttemplate": "%{x:,}", "textposition": "outside", "cliponaxis": False, "constraintext": "none",
            "textfont": {"color": "#d8e6f5"},
            "meta": {"series": "by_category{}", "x": "by_category{}"},
        }],
        "layout": _layout(
            bargap=0.28,
            yaxis=_label_axis(keys, labels, wrap=False, autorange="reversed"),
            xaxis=_axis(rangemode="tozero", showticklabels=False, showgrid=False),
            margin={"l": 4, "r": 48, "t": 2, "b": 2, "pad": 4},
        ),
    }


def _count_bars(vm: dict, key: str, keys: list[str], colors: list[str],
                labels: list[str]) -> dict:
    """Vertical bars of the counts in `vm[key]`, labelled with `labels`."""
    return {
        "data": [{
            "type": "bar", "x": keys, "y": [vm[key][k] for k in keys],
            "marker": {"color": colors},
            "texttemplate": "%{y:,}", "textposition": "outside", "cliponaxis": False, "constraintext": "none",
            "textfont": {"color": "#d8e6f5"},
            "meta": {"series": f"{key}{{}}", "x": f"{key}{{}}"},
        }],
        "layout": _layout(
            xaxis=_label_axis(keys, labels),
            yaxis=_axis(rangemode="tozero", showticklabels=False, showgrid=False),
            margin={"l": 2, "r": 2, "t": 22, "b": 2, "pad": 2},
        ),
    }


def by_channel(vm: dict, lang: str) -> dict:
    keys, labels, colours = _terms(vm, "event_channel", "by_channel", lang)
    return _count_bars(vm, "by_channel", keys, colours, labels)


def closed_at_level(vm: dict, lang: str) -> dict:
    """Cases closed today at each of the region's tiers, labelled with its tier names."""
    keys, vocab = closed_keys(vm), vocab_of(vm)
    return _count_bars(vm, "closed_at_level", keys,
                       [vocab.colour("tier", str(LEVEL_OF.get(k, k))) for k in keys],
                       [plain(tier_name(vm, k, lang)) for k in keys])


def child_coverage(vm: dict, lang: str) -> dict:
    kids = vm["children"]
    many = len(kids) > 4  # a small panel: five names side by side would overlap
    return {
        "data": [{
            "type": "bar", "x": [c["name"] for c in kids], "y": [c["coverage"] for c in kids],
            "marker": {"color": TEAL},
            "texttemplate": "" if many else "%{y:.0%}", "textposition": "outside",
            "cliponaxis": False, "constraintext": "none", "textfont": {"color": "#d8e6f5"},
            "meta": {"series": "children[].coverage", "x": "children[].name"},
        }],
        "layout": _layout(
            bargap=0.25,
            xaxis=_axis(type="category", showgrid=False, tickangle=-40 if many else 0),
            yaxis=_axis(range=[0, 1.12 if not many else 1.02], tickformat=".0%", nticks=3,
                        tickvals=[0, 0.5, 1]),
            margin={"l": 2, "r": 2, "t": 4 if many else 18, "b": 2, "pad": 2},
        ),
    }


def camera_kinds(vm: dict, lang: str) -> dict:
    keys, labels, colours = _terms(vm, "camera_kind", "cameras_by_kind", lang)
    return {
        "data": [{
            "type": "bar", "x": keys, "y": [vm["cameras_by_kind"][k] for k in keys],
            "marker": {"color": _one_or_each(colours)},
            "texttemplate": "%{y:.1%}", "textposition": "outside", "cliponaxis": False, "constraintext": "none",
            "textfont": {"color": "#d8e6f5"},
            "meta": {"series": "cameras_by_kind{}", "x": "cameras_by_kind{}"},
        }],
        "layout": _layout(
            xaxis=_label_axis(keys, labels),
            yaxis=_axis(range=[0, 1.15], showticklabels=False, showgrid=False),
            margin={"l": 2, "r": 2, "t": 4, "b": 2, "pad": 2},
        ),
    }


def petitions(vm: dict, lang: str, window: str) -> dict:
    rows_key = f"petitions_{window}"
    rows = vm[rows_key]
    days = [r["day"] for r in rows]
    bars = window == "7d"
    vocab = vocab_of(vm)
    data = []
    for ch in vocab.codes("petition_channel"):
        colour = vocab.colour("petition_channel", ch)
        trace = {
            "name": plain(vocab.label("petition_channel", ch, lang)), "x": days,
            "y": [r.get(ch, 0) for r in rows],
            "meta": {"series": f"{rows_key}[].{ch}", "x": f"{rows_key}[].day"},
        }
        if bars:
            trace.update(type="bar", marker={"color": colour})
        else:
            trace.update(type="scatter", mode="lines",
                         line={"color": colour, "width": 2, "shape": "spline"})
        data.append(trace)
    return {
        "data": data,
        "layout": _layout(
            barmode="stack", bargap=0.35,
            xaxis=_axis(type="date", showgrid=False, tickformat="%m-%d",
                        nticks=7 if bars else 5),
            yaxis=_axis(rangemode="tozero", nticks=4),
        ),
    }
