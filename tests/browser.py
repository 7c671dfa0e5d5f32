"""A real headless Chromium for tests: Debian's ``chromium`` driven by Playwright.

Playwright's own browser downloads are never used (they cannot be fetched here): the
browser is the system's ``/usr/bin/chromium``, which ``./dev test`` installs with apt-get.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CHROMIUM = os.environ.get("CROPSTACK_CHROMIUM", "/usr/bin/chromium")

#: Headless, and nothing the browser would fetch by itself (updates, sync, QUIC probes).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: Where screenshots go when CROPSTACK_SCREENSHOTS=1 (docs/console.md shows them).
DOCS_IMG = Path(__file__).resolve().parents[1] / "docs" / "img"


@contextmanager
def chromium() -> Iterator[Any]:
    """A launched browser (Playwright ``Browser``), closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Recorder:
    """Every request a page makes and every console message and page error it reports."""

    requests: list[str] = field(default_factory=list)
    console: list[tuple[str, str]] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        """Record ``page`` (also requests of its workers and subresources)."""
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("console", lambda message: self.console.append((message.type, message.text)))
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))

    def foreign_requests(self, base: str) -> list[str]:
        """Requests to any origin other than ``base`` (scheme, host and port)."""
        origin = urlsplit(base)
        return [
            url
            for url in self.requests
            if (urlsplit(url).scheme, urlsplit(url).netloc) != (origin.scheme, origin.netloc)
        ]

    def errors(self) -> list[str]:
        """Console errors and uncaught exceptions (CSP violations are console errors)."""
        return [text for kind, text in self.console if kind == "error"] + self.page_errors


def screenshot(page: Any, name: str, tmp: Path, *, full_page: bool = False) -> Path:
    """Save a PNG of ``page`` as ``console-{name}.png``: into docs/img when
    CROPSTACK_SCREENSHOTS=1 (how the documentation's pictures are made), else into ``tmp``."""
    folder = DOCS_IMG if os.environ.get("CROPSTACK_SCREENSHOTS") == "1" else tmp
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"console-{name}.png"
    page.screenshot(path=str(path), full_page=full_page, animations="disabled")
    return path
