"""The `page` fixture: a fresh Chromium page per browser test, which fails the test when the
page broke its Content-Security-Policy (the studio sends one with every page)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.frontend.browser_support import CHROMIUM, CHROMIUM_ARGS, CspViolations
from tests.support import component_missing


@pytest.fixture
def csp_violations() -> CspViolations:
    """What the `page` reported; a test that causes violations on purpose clears them."""
    return CspViolations()


@pytest.fixture
def page(csp_violations: CspViolations) -> Iterator[Any]:
    if not CHROMIUM.exists():
        component_missing(f"Chromium not installed at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        component_missing("the playwright package is not installed")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        try:
            new_page = context.new_page()
            csp_violations.watch(new_page)
            yield new_page
        finally:
            context.close()
            browser.close()
        # After the browser is gone: a violation reported while the test ran fails it, even
        # when everything the test looked at worked (a blocked style or script still counts).
        csp_violations.assert_none()
