"""The dashboard in a real browser: sign in, see the counts, go live, and watch an audit
event caused on the server appear without a reload.

Drives Debian's Chromium through Playwright against uvicorn serving studio.asgi (the
`asgi_server` fixture), so HTTP, the session cookie and the `/ws/events` websocket are the
real ones.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from studio.accounts import services
from studio.accounts.models import Team
from tests.factories import make_team, make_user
from tests.frontend.browser_support import ARTIFACTS, in_server_thread

pytestmark = pytest.mark.browser

PASSWORD = "pw-for-tests-1"  # what tests.factories.make_user sets


@pytest.fixture
def lab(transactional_db: None) -> tuple[Team, User, User]:
    """A team with one admin, and a user outside it. Made before the browser starts (see
    `in_server_thread`)."""
    team = make_team("lab")
    team.name = "Vision Lab"
    team.save(update_fields=["name"])
    user = make_user(team, role="admin", username="ada")
    user.first_name, user.last_name = "Ada", "Lovelace"
    user.save(update_fields=["first_name", "last_name"])
    return team, user, make_user(username="grace")


def test_dashboard_goes_live_and_shows_new_audit_events(
    asgi_server: str, lab: tuple[Team, User, User], page: Any
) -> None:
    from playwright.sync_api import expect

    team, user, newcomer = lab

    page.goto(f"{asgi_server}/login/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{asgi_server}/")

    expect(page.locator("[data-user-name]")).to_have_text("Ada Lovelace")
    expect(page.locator("#card-members [data-card-value]")).to_have_text("1")
    expect(page.locator("#card-tokens [data-card-value]")).to_have_text("0")
    expect(page.locator("#card-audit-24h [data-card-value]")).to_have_text("2")
    expect(page.locator("[data-live-dot]")).to_have_attribute("data-state", "connected")
    expect(page.locator("#card-jobs-active [data-card-value]")).to_have_text("0")
    expect(page.locator("a.nav-link", has_text="Experiments")).to_have_attribute(
        "href", "/experiments/"
    )

    # A marker that a reload would wipe out.
    page.evaluate("window.__studioloSamePage = true")
    in_server_thread(
        lambda: (
            services.membership_set(team=team, user=newcomer, role="viewer", actor=user) and None
        )
    )

    newest = page.locator(".activity-item").first
    expect(newest).to_contain_text("membership.added")
    expect(newest).to_contain_text("grace in lab")
    expect(newest).to_contain_text("ada")
    expect(page.locator("#card-audit-24h [data-card-value]")).to_have_text("3")
    assert page.evaluate("window.__studioloSamePage") is True

    ARTIFACTS.mkdir(exist_ok=True)
    page.wait_for_timeout(2600)  # let the highlight of the new row fade for the screenshot
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
