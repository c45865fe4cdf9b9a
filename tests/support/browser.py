"""Debian's Chromium driven by Playwright, as the browser tests use it: launch, log in, screenshot.

with chromium() as browser:            skips the test when Chromium is not installed
    page = log_in(browser.new_context(base_url=url).new_page(), "erin", password)
    shot(page, "gateway-history")      tests/artifacts/gateway-history.png
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    expect,
    sync_playwright,
)

from tests.conftest import REPO

LOG = logging.getLogger("browser")
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium for the block; the test is skipped when it is not installed."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        _log_page_errors(browser)
        try:
            yield browser
        finally:
            browser.close()


def _log_page_errors(browser: Browser) -> None:
    """Every context of `browser` logs its pages' console errors and uncaught exceptions at
    ERROR (logger `browser`), so a page that fails in the browser fails its test the way an
    ERROR log does (tests/conftest.py); a test that provokes one says `expect_errors`."""
    new_context = browser.new_context

    def with_error_log(*args, **kwargs) -> BrowserContext:
        context = new_context(*args, **kwargs)
        context.on("console", _console)
        context.on("weberror", lambda error: LOG.error("uncaught in the page: %s", error.error))
        return context

    browser.new_context = with_error_log  # type: ignore[method-assign]


def _console(message: ConsoleMessage) -> None:
    if message.type == "error":
        LOG.error("console error at %s: %s", message.location.get("url", "?"), message.text)


def log_in(page: Page, user: str, password: str) -> Page:
    """Log `page` in through the login form and wait until the header names the user."""
    page.goto("/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    expect(page.locator("header.bar .who")).to_contain_text(user)
    return page


def shot(page: Page, name: str) -> None:
    """A full-page screenshot as tests/artifacts/<name>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
