"""Fixtures of the browser tests, and a guard against app threads outliving their module."""

from __future__ import annotations

import threading
import time

import pytest

from dashboard.devkit.browser import chromium
from dashboard.versions import THREAD_NAME as WATCHER_THREAD
from datasources.signal import THREAD_NAME as SIGNAL_THREAD

APP_THREADS = (WATCHER_THREAD, SIGNAL_THREAD)
STOP_WAIT_S = 3.0  # a stopped watcher ends after its current tick


@pytest.fixture(scope="module", autouse=True)
def _no_app_thread_outlives_its_module():
    """An app made in process (`create_app`) starts its version watcher (and the call
    signalling hub) on first use; a test must stop them. One left running polls on into the
    next modules, and once the unit tests refuse Redis it logs tracebacks, whose formatting
    (CPython 3.11: `ast` for the error carets, not thread-safe, gh-106905) breaks a test that
    parses source at the same moment. Fails the module that left one behind."""
    before = {t.ident for t in threading.enumerate() if t.name in APP_THREADS}
    yield
    deadline = time.monotonic() + STOP_WAIT_S
    while True:
        left = [t.name for t in threading.enumerate()
                if t.name in APP_THREADS and t.ident not in before and t.is_alive()]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not left, (f"this module left {left} running: stop the app's services "
                      "(Services.watcher.stop(), as tests/integration/test_hardening.py does)")


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium per test module, 1920x1080."""
    d = chromium(1920, 1080)
    yield d
    d.quit()
