"""The Content-Security-Policy in a real browser: every page keeps to it, and what it forbids
(an injected inline script, a style attribute) is blocked and reported.

Every browser test's `page` fails on a reported violation (tests/frontend/conftest.py), so the
pages with charts are covered by their own tests; this one walks the others and proves that
the detector sees violations at all.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from tests.factories import make_team, make_user
from tests.frontend.browser_support import CspViolations

pytestmark = pytest.mark.browser

PASSWORD = "pw-for-tests-1"  # what tests.factories.make_user sets
PAGES = [
    "/",
    "/experiments/",
    "/jobs/",
    "/jobs/new/",
    "/models/",
    "/reviews/",
    "/endpoints/",
    "/pipelines/",
    "/audit/",
    "/settings/tokens/",
    "/settings/team/",
]


@pytest.fixture
def admin(transactional_db: None) -> User:
    return make_user(make_team("lab"), role="admin", username="ada")


def sign_in(page: Any, base: str) -> None:
    page.goto(f"{base}/login/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def test_every_page_keeps_to_the_policy(asgi_server: str, admin: User, page: Any) -> None:
    from playwright.sync_api import expect

    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, asgi_server)
    for path in PAGES:
        response = page.goto(f"{asgi_server}{path}")
        assert response is not None, path
        assert response.status == 200, path
        assert "script-src 'self';" in response.headers["content-security-policy"], path
        # The first-party script ran: it opened the live-events socket (a connect-src).
        expect(page.locator("html")).to_have_attribute("data-live", "connected")
    assert errors == []
    # The `page` fixture then fails the test if any of them reported a violation.


def test_an_injected_inline_script_and_style_are_blocked_and_reported(
    asgi_server: str, admin: User, page: Any, csp_violations: CspViolations
) -> None:
    sign_in(page, asgi_server)
    assert csp_violations.messages == []
    page.evaluate(
        """() => {
          const script = document.createElement("script");
          script.textContent = "window.__injected = true;";
          document.body.appendChild(script);
          const styled = document.createElement("div");
          styled.setAttribute("style", "color: red");
          document.body.appendChild(styled);
        }"""
    )
    for _ in range(200):  # the console messages arrive asynchronously
        if len(csp_violations.messages) >= 2:
            break
        page.wait_for_timeout(25)
    assert page.evaluate("() => window.__injected") is None
    reported = "\n".join(csp_violations.messages)
    assert "script-src" in reported
    assert "style-src-attr" in reported
    with pytest.raises(AssertionError, match="broke its Content-Security-Policy"):
        csp_violations.assert_none()
    csp_violations.messages.clear()  # caused on purpose
