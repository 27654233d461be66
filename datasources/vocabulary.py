"""The region's vocabulary: categories, event channels, petition channels, camera kinds and
the names of its tiers.

Each is a list of terms (code, zh and en labels, chart colour) in the order the screens show
them. A region's registry may replace any kind's whole list (`vocabulary.csv`, the
`vocabulary` table); a kind it does not list keeps `DEFAULT`, today's lists.

`tier` is different: its codes are the registry's levels "0" (province) … "4" (village), always
all five, and a region's `tier` row renames one tier (县/镇/村 for a county-rooted region), the
others keep their default names; an empty colour keeps the tier's default colour (the
closed-at-tier chart's). The codes are
what the streams carry, the read model counts (`cat:<code>`, `ch:<code>`, `pet:<code>`,
cameras by kind) and the screens label; they are checked by `check_term` wherever they come
in, because they end up in Redis field names, view-model keys and chart coordinates.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from datasources.registry import LEVELS, VocabularyRow

KINDS = ("category", "event_channel", "petition_channel", "camera_kind", "tier")
TIER = "tier"
TIER_CODES = tuple(str(lv) for lv in sorted(LEVELS))  # "0" province … "4" village
CODE = re.compile(r"[a-z][a-z0-9_]{0,31}")
COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
MAX_LABEL = 64
MAX_TERMS = 32  # per kind: every term is a counter per centre and day, and a bar on the wall
# codes a kind may not use: a petition channel is a column of the trend rows beside these
RESERVED: dict[str, frozenset[str]] = {"petition_channel": frozenset({"day", "total"})}

# today's chart colours (layouts/charts.py's palette)
_CYAN, _AMBER, _VIOLET, _TEAL, _BLUE = "#2ec7ff", "#ffb020", "#8c7bff", "#29d3a4", "#4f8cff"
FALLBACK_COLOUR = "#6f86a3"  # a code the vocabulary does not know (GREY)


@dataclass(frozen=True)
class Term:
    code: str
    zh: str
    en: str
    colour: str

    def label(self, lang: str) -> str:
        """The label in `lang`, else in the other language, else the code (plain text)."""
        first, second = (self.en, self.zh) if lang == "en" else (self.zh, self.en)
        return first or second or self.code


def check_term(kind: str, code: str, zh: str, en: str, colour: str) -> str | None:
    """Why a term cannot be part of a vocabulary, or None when it can."""
    if kind not in KINDS:
        return f"unknown kind '{kind[:40]}' (expected one of {', '.join(KINDS)})"
    if kind == TIER:
        if code not in TIER_CODES:
            return f"bad tier '{code[:40]}' (a level: {', '.join(TIER_CODES)})"
    elif not CODE.fullmatch(code):
        return f"bad code '{code[:40]}' (a-z first, then a-z 0-9 _, at most 32)"
    if code in RESERVED.get(kind, ()):
        return f"code '{code}' is reserved for {kind}"
    if not zh and not en:
        return "empty labels (zh and en)"
    for lang, text in (("zh", zh), ("en", en)):
        if len(text) > MAX_LABEL:
            return f"{lang} label too long ({len(text)} > {MAX_LABEL} characters)"
        if not text.isprintable() or text != text.strip():
            return f"control characters or surrounding spaces in the {lang} label"
    if not COLOUR.fullmatch(colour) and not (kind == TIER and colour == ""):
        return f"bad colour '{colour[:20]}' (#rrggbb)"
    return None


def _sets(terms: tuple[Term, ...]) -> frozenset[str]:
    return frozenset(x.code for x in terms)


@dataclass(frozen=True)
class Vocabulary:
    """One tuple of terms per kind; the frozensets of codes are what validation tests."""

    category: tuple[Term, ...]
    event_channel: tuple[Term, ...]
    petition_channel: tuple[Term, ...]
    camera_kind: tuple[Term, ...]
    tier: tuple[Term, ...]  # always the five levels, "0" … "4" (`with_tiers`)
    categories: frozenset[str] = field(init=False, repr=False, compare=False)
    event_channels: frozenset[str] = field(init=False, repr=False, compare=False)
    petition_channels: frozenset[str] = field(init=False, repr=False, compare=False)
    camera_kinds: frozenset[str] = field(init=False, repr=False, compare=False)
    _index: dict[tuple[str, str], Term] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "categories", _sets(self.category))
        put(self, "event_channels", _sets(self.event_channel))
        put(self, "petition_channels", _sets(self.petition_channel))
        put(self, "camera_kinds", _sets(self.camera_kind))
        put(self, "_index", {(k, x.code): x for k in KINDS for x in getattr(self, k)})

    def terms(self, kind: str) -> tuple[Term, ...]:
        if kind not in KINDS:
            raise KeyError(kind)
        return getattr(self, kind)

    def codes(self, kind: str) -> tuple[str, ...]:
        return tuple(x.code for x in self.terms(kind))

    def allowed(self, kind: str) -> frozenset[str]:
        return frozenset(self.codes(kind))

    def term(self, kind: str, code: str) -> Term | None:
        return self._index.get((kind, code))

    def label(self, kind: str, code: str, lang: str) -> str:
        """The label of `code` in `lang` (see `Term.label`); an unknown code is its own."""
        x = self._index.get((kind, code))
        return x.label(lang) if x is not None else str(code)

    def tier_name(self, level: object, lang: str) -> str:
        """The region's name of the tier of `level` (an int or its text) in `lang`."""
        return self.label(TIER, str(level), lang)

    def colour(self, kind: str, code: str) -> str:
        x = self._index.get((kind, code))
        return x.colour if x is not None else FALLBACK_COLOUR

    def replace(self, kind: str, terms: Iterable[Term]) -> Vocabulary:
        """This vocabulary with `kind`'s whole list replaced (`tier`: the tiers it names
        renamed, see `with_tiers`)."""
        lists = {k: getattr(self, k) for k in KINDS}
        lists[kind] = with_tiers(terms) if kind == TIER else tuple(terms)
        return Vocabulary(**lists)

    def to_plain(self) -> dict[str, list[list[str]]]:
        """JSON-ready: kind → [[code, zh, en, colour], …] (the view model carries it)."""
        return {k: [[x.code, x.zh, x.en, x.colour] for x in getattr(self, k)] for k in KINDS}

    @classmethod
    def from_plain(cls, plain: Any) -> Vocabulary:
        """The inverse of `to_plain`; a kind missing or malformed keeps `DEFAULT`'s list and
        a malformed term is left out (a view model is built by us, but keep screens up)."""
        lists = {k: getattr(DEFAULT, k) for k in KINDS}
        if isinstance(plain, dict):
            for k in KINDS:
                rows = plain.get(k)
                if not isinstance(rows, list):
                    continue
                terms = [Term(*row) for row in rows if isinstance(row, list | tuple)
                         and len(row) == 4 and all(isinstance(v, str) for v in row)
                         and check_term(k, *row) is None]
                lists[k] = with_tiers(terms) if k == TIER else tuple(terms)
        return cls(**lists)


def _terms(*rows: tuple[str, str, str, str]) -> tuple[Term, ...]:
    return tuple(Term(*r) for r in rows)


# The default tier names are today's (the wall's level names before tiers were the region's):
# 省级/市级/区县/镇街/村社区. Colours: the closed-at-tier chart's bars.
DEFAULT_TIERS = _terms(
    ("0", "省级", "Province", _AMBER),
    ("1", "市级", "City", _VIOLET),
    ("2", "区县", "District", _BLUE),
    ("3", "镇街", "Town/street", _CYAN),
    ("4", "村社区", "Community/village", _TEAL),
)


def with_tiers(terms: Iterable[Term]) -> tuple[Term, ...]:
    """The five tiers, each named by `terms` when they name it (the first such term; an
    empty colour keeps the default one), else by `DEFAULT_TIERS`."""
    given: dict[str, Term] = {}
    for x in terms:
        given.setdefault(x.code, x)
    out = []
    for d in DEFAULT_TIERS:
        x = given.get(d.code)
        out.append(d if x is None else Term(d.code, x.zh, x.en, x.colour or d.colour))
    return tuple(out)


DEFAULT = Vocabulary(
    category=_terms(
        ("dispute", "矛盾纠纷", "Disputes", _CYAN),
        ("security", "治安隐患", "Security hazards", _CYAN),
        ("fire", "消防", "Fire safety", _CYAN),
        ("sanitation", "环境卫生", "Sanitation", _CYAN),
        ("special_population", "特殊人群", "Special populations", _CYAN),
        ("citizen_request", "民生诉求", "Citizen requests", _CYAN),
        ("other", "其他", "Other", _CYAN),
    ),
    event_channel=_terms(
        ("grid_worker", "网格员", "Grid worker", _CYAN),
        ("hotline_12345", "12345", "12345", _AMBER),
        ("video", "视频", "Video", _VIOLET),
        ("public", "群众", "Public", _TEAL),
        ("police_110", "110", "110", _BLUE),
    ),
    petition_channel=_terms(
        ("letter", "来信", "Letter", _CYAN),
        ("visit", "来访", "Visit", _AMBER),
        ("online", "网上", "Online", _VIOLET),
    ),
    camera_kind=_terms(
        ("dome", "球机", "Dome", _BLUE),
        ("face", "人脸", "Face", _BLUE),
        ("checkpoint", "卡口", "Checkpoint", _BLUE),
        ("smart", "智能", "Smart", _BLUE),
        ("integrated", "一体化", "Integrated", _BLUE),
    ),
    tier=DEFAULT_TIERS,
)


def from_rows(rows: Iterable[Any]) -> Vocabulary:
    """A vocabulary from `VocabularyRow`-like rows (kind, code, position, zh, en, colour):
    each kind with rows gets exactly those, by position; a kind without rows keeps
    `DEFAULT`'s list. A row that `check_term` refuses, a repeated code and the terms beyond
    `MAX_TERMS` are left out (the import refuses them; the table may be written by hand)."""
    by_kind: dict[str, list[tuple[int, Term]]] = defaultdict(list)
    for r in rows:
        zh, en = r.zh or "", r.en or ""
        colour = (r.colour or "").lower()
        if check_term(r.kind, r.code, zh, en, colour) is None:
            by_kind[r.kind].append((int(r.position or 0), Term(r.code, zh, en, colour)))
    vocab = DEFAULT
    for kind, items in by_kind.items():
        seen: set[str] = set()
        terms = []
        for _pos, x in sorted(items, key=lambda p: (p[0], p[1].code)):
            if x.code not in seen and len(terms) < MAX_TERMS:
                seen.add(x.code)
                terms.append(x)
        vocab = vocab.replace(kind, terms)
    return vocab


def load_vocabulary(engine: Engine) -> Vocabulary:
    """The registry's vocabulary (`DEFAULT` when the table is empty or not there yet)."""
    if not inspect(engine).has_table(VocabularyRow.__tablename__):
        return DEFAULT
    with Session(engine) as s:
        rows = list(s.scalars(select(VocabularyRow)))
    return from_rows(rows)
