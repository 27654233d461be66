"""Helpers for tests of pure layout functions (Dash component trees)."""

from __future__ import annotations

from collections.abc import Iterator


def walk(component) -> Iterator:
    """Every component of a tree, depth first (text children are skipped)."""
    yield component
    children = getattr(component, "children", None)
    if children is None:
        return
    for child in children if isinstance(children, list | tuple) else [children]:
        if hasattr(child, "to_plotly_json"):
            yield from walk(child)
