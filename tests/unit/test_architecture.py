"""The structure rules import-linter cannot see, checked on the source (pure: AST only).

- no private name (`_x`) is imported from another module;
- the vocabularies of the contract (statuses, urgencies, camera states, …) are written once,
  in `datasources/contract.py`, and the region's defaults (categories, channels, camera kinds)
  once, in `datasources/vocabulary.py`; both are imported everywhere else;
- Redis keys are built by `datasources.keys.Keys` only (no f-string starting with a prefix);
- tools in `bench/` and `scripts/` import the project, they do not patch `sys.path`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("dashboard", "callbacks", "layouts", "datasources")
VOCAB_HOME = ROOT / "datasources" / "contract.py"
REGION_VOCAB_HOME = ROOT / "datasources" / "vocabulary.py"
KEYS_HOME = ROOT / "datasources" / "keys.py"


def _sources(*dirs: str) -> list[Path]:
    return sorted(p for d in dirs for p in (ROOT / d).rglob("*.py") if "migrations" not in p.parts)


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _string_collections(tree: ast.AST) -> list[tuple[int, frozenset[str]]]:
    """Literal tuples/lists/sets of ≥ 3 strings (and frozenset({...}) calls) with their line."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            elts = node.elts
        else:
            continue
        if len(elts) >= 3 and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in elts):
            found.append((node.lineno, frozenset(e.value for e in elts)))
    return found


def _vocabularies() -> dict[str, frozenset[str]]:
    """The contract's public vocabulary constants: NAME = ("a", "b", …)."""
    vocab = {}
    for node in _tree(VOCAB_HOME).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            name = getattr(node.targets[0], "id", "")
            if name.isupper() and not name.startswith("_"):
                for _, values in _string_collections(node.value):
                    vocab[name] = values
    return vocab


@pytest.mark.parametrize("path", _sources(*PACKAGES, "bench", "scripts", "tests"), ids=_rel)
def test_no_private_name_is_imported_from_another_module(path):
    bad = [
        f"{_rel(path)}:{node.lineno}: from {node.module} import {alias.name}"
        for node in ast.walk(_tree(path))
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    ]
    assert not bad, "private names are private to their module; make them public or move them:\n" + "\n".join(bad)


def _region_vocabularies() -> dict[str, frozenset[str]]:
    """The default codes of the region's vocabularies (issue 12: datasources/vocabulary.py)."""
    from datasources.vocabulary import DEFAULT, KINDS

    return {f"vocabulary.DEFAULT {k}": DEFAULT.allowed(k) for k in KINDS}


def test_the_contract_defines_the_vocabularies():
    vocab = _vocabularies()
    for name in ("STATUSES", "CAMERA_STATES"):
        assert name in vocab, f"datasources/contract.py lost {name}"
    region = _region_vocabularies()
    assert all(len(codes) >= 3 for codes in region.values())


@pytest.mark.parametrize("path", [p for p in _sources(*PACKAGES)
                                  if p not in (VOCAB_HOME, REGION_VOCAB_HOME)], ids=_rel)
def test_vocabularies_are_written_once(path):
    vocab = {**_vocabularies(), **_region_vocabularies()}
    copies = [
        f"{_rel(path)}:{line}: a copy of contract.{name}"
        for line, values in _string_collections(_tree(path))
        for name, known in vocab.items()
        if values == known
    ]
    assert not copies, "import the vocabulary from datasources.contract:\n" + "\n".join(copies)


def _hand_built_keys(tree: ast.AST) -> list[int]:
    """f-strings that start with a key prefix and a colon: f"{prefix}:…", f"{self.prefix}:…"."""
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.JoinedStr) or len(node.values) < 2:
            continue
        head, nxt = node.values[0], node.values[1]
        if not isinstance(head, ast.FormattedValue):
            continue
        name = ast.unparse(head.value)
        if "prefix" in name.lower() and isinstance(nxt, ast.Constant) and str(nxt.value).startswith(":"):
            lines.append(node.lineno)
    return lines


@pytest.mark.parametrize("path", [p for p in _sources(*PACKAGES) if p != KEYS_HOME], ids=_rel)
def test_redis_keys_are_built_by_keys(path):
    lines = _hand_built_keys(_tree(path))
    assert not lines, f"{_rel(path)} builds Redis keys by hand at lines {lines}: add a Keys method"


@pytest.mark.parametrize("path", _sources("bench", "scripts"), ids=_rel)
def test_tools_do_not_patch_sys_path(path):
    bad = [
        node.lineno for node in ast.walk(_tree(path))
        if isinstance(node, ast.Attribute) and node.attr == "path"
        and isinstance(node.value, ast.Name) and node.value.id == "sys"
    ]
    assert not bad, f"{_rel(path)} touches sys.path at lines {bad}: import the project (dashboard.devkit)"


def test_the_checks_see_what_they_look_for():
    """The detectors themselves: each finds its pattern in a snippet (so a pass means something)."""
    snippet = ast.parse(
        'from m import _hidden\n'
        'CATS = ("dispute", "security", "fire")\n'
        'k = f"{self.prefix}:{{auth}}:ended:{sid}"\n'
        'import sys\nsys.path.insert(0, "..")\n'
    )
    assert [n for n in ast.walk(snippet) if isinstance(n, ast.ImportFrom)][0].names[0].name == "_hidden"
    assert _string_collections(snippet)[0][1] == frozenset({"dispute", "security", "fire"})
    assert _hand_built_keys(snippet) == [3]
