"""A real browser for the UI tests: Debian's Chromium driven by Playwright, every request and
WebSocket to another host blocked and counted, every console error and page error kept.

Playwright cannot download browsers here, so it launches /usr/bin/chromium
(``apt-get install chromium``; .ci/run installs it). Without it the UI tests fail in CI
(``CI`` set) and are skipped, with the reason, elsewhere.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Route,
    WebSocketRoute,
    sync_playwright,
)

CHROMIUM = Path(os.environ.get("MLTRAIN_TEST_CHROMIUM", "/usr/bin/chromium"))
ROOT = Path(__file__).resolve().parent.parent
AXE = ROOT / "tests" / "ui_vendor" / "axe-core@4.14.1" / "axe.min.js"
#: Screenshots go to docs/ui/ (docs/ui.md shows them) when MLTRAIN_UI_SCREENSHOTS=docs, else
#: to .pytest_cache/ui/: they differ on every run (dates), and a test run should not dirty docs.
SCREENSHOTS = (
    ROOT / "docs" / "ui"
    if os.environ.get("MLTRAIN_UI_SCREENSHOTS") == "docs"
    else ROOT / ".pytest_cache" / "ui"
)


def launch() -> Iterator[Browser]:
    """One headless Chromium (a module's tests share it: the machine has two cores)."""
    if not CHROMIUM.is_file():
        reason = f"{CHROMIUM} is missing: apt-get install chromium (the UI tests need it)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Visit:
    """A browser tab allowed to reach one server only, and what it tried besides."""

    page: Page
    context: BrowserContext
    origin: str
    external: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return [f"request to another host: {u}" for u in self.external] + [
            f"console: {e}" for e in self.console_errors
        ]

    def close(self) -> None:
        self.context.close()


def visit(browser: Browser, origin: str, *, bypass_csp: bool = False) -> Visit:
    """A new tab (its own context: fresh sessionStorage) on ``origin`` (``http://host:port``)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=bypass_csp)
    page = context.new_page()
    tab = Visit(page, context, origin)
    host = urlsplit(origin).netloc

    def route(route: Route) -> None:
        url = route.request.url
        if url.startswith("data:") or urlsplit(url).netloc == host:
            route.continue_()
        else:
            tab.external.append(url)
            route.abort()

    def route_socket(socket: WebSocketRoute) -> None:
        if urlsplit(socket.url).netloc == host:
            socket.connect_to_server()
        else:
            tab.external.append(socket.url)
            socket.close()

    context.route("**/*", route)
    context.route_web_socket(re.compile(".*"), route_socket)
    page.on(
        "console",
        lambda message: (
            tab.console_errors.append(message.text) if message.type == "error" else None
        ),
    )
    page.on("pageerror", lambda error: tab.console_errors.append(f"uncaught: {error}"))
    return tab


def screenshot(page: Page, name: str) -> None:
    """<name>.png of the whole page, in SCREENSHOTS."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def serious_axe_violations(page: Page) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now (WCAG 2 A/AA)."""
    page.add_script_tag(content=AXE.read_text())
    results = page.evaluate(
        "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})",
        ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"],
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results["violations"]
        if v["impact"] in {"serious", "critical"}
    ]
