"""Fixtures of the browser tests."""

from __future__ import annotations

import pytest

from dashboard.devkit.browser import chromium


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium per test module, 1920x1080."""
    d = chromium(1920, 1080)
    yield d
    d.quit()
