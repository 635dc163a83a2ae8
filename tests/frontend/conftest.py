"""The `page` fixture: a fresh Chromium page per browser test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.frontend.browser_support import CHROMIUM, CHROMIUM_ARGS
from tests.support import component_missing


@pytest.fixture
def page() -> Iterator[Any]:
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
            yield context.new_page()
        finally:
            context.close()
            browser.close()
