"""Headless Chromium for the browser tests (the app and the HTML report), shared by their test modules.

Playwright cannot download its own browser here, so it drives the system Chromium (Debian's ``chromium`` package,
``/usr/bin/chromium``; override with ``ULTRALYTICS_CAM_CHROMIUM``). Without it a user's own test run skips these tests
with the reason; in CI (``CI=true``, where ``.ci/run`` installs Chromium) they fail instead, so they never pass by
being skipped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from typing import Any

from conftest import require

#: The flags the workplace's own probe used: no sandbox as root, and no background connections to hosts this
#: machine cannot reach (they are refused many at a time and slow every start).
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """The Chromium executable to drive, or None."""
    path = os.environ.get("ULTRALYTICS_CAM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    return path if os.path.exists(path) else None


def _unavailable(reason: str) -> None:
    require(False, f"browser tests need Chromium and Playwright: {reason}")  # skips; fails in CI


@contextlib.contextmanager
def browser() -> Iterator[Any]:
    """Yield a Playwright ``Browser`` on the system Chromium (skips, or fails in CI, when unavailable)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        _unavailable(f"the 'playwright' package is not installed ({e}); pip install playwright")
    path = chromium_path()
    if path is None:
        _unavailable("no Chromium found (apt-get install chromium, or set ULTRALYTICS_CAM_CHROMIUM)")
    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        except Exception as e:
            _unavailable(f"{path} could not be started: {type(e).__name__}: {e}")
        try:
            yield b
        finally:
            b.close()


class ConsoleErrors(list):
    """Console errors and uncaught page errors of a page, collected as they happen."""

    def attach(self, page: Any) -> Any:
        """Start collecting from ``page``; return it."""
        page.on("console", lambda m: self.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.append(f"pageerror: {e}"))
        return page
