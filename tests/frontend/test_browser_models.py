"""The model registry in a real browser: an approver approves a package with a comment in the
UI, and its author, with the package page open in another browser context, sees the status
change to Approved live (over /ws/events) without a reload.

Same set-up as test_browser_jobs.py: Debian's Chromium through Playwright against uvicorn
serving studio.asgi; packages are registered through the registry services.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from registry.services.registration import (
    ExternalArtifact,
    InferenceSpec,
    package_register_external,
)
from studio.accounts.models import Team
from studio.artifacts import get_store
from tests.factories import make_team, make_user
from tests.frontend.browser_support import ARTIFACTS, in_server_thread
from tests.frontend.test_browser import PASSWORD
from tests.registry.conftest import make_group, registered

pytestmark = pytest.mark.browser


@pytest.fixture
def lab(transactional_db: None, settings: Any) -> tuple[Team, User, User]:
    settings.RUNTIME = "process"  # image checks pass; nothing is started
    team = make_team("lab")
    ada = make_user(team, role="scientist", username="ada")
    bob = make_user(team, role="approver", username="bob")
    return team, ada, bob


def sign_in(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def register_versions(team: Team, ada: User) -> None:
    """Two earlier versions with metrics (for the group page), then v3 from a job."""
    group = make_group(team, ada, "churn")
    for index, metrics in enumerate(({"auc": 0.81, "f1": 0.62}, {"auc": 0.84, "f1": 0.66})):
        key = f"teams/{team.slug}/uploads/model-{index}.tar.gz"
        get_store().put(key, b"m")
        package_register_external(
            group=group,
            actor=ada,
            artifact=ExternalArtifact(get_store().uri(key), metrics),
            inference=InferenceSpec(image="studiolo/sklearn:latest"),
        )
    registered(group, ada, "train-churn")


def test_approver_approves_and_the_author_sees_it_live(
    asgi_server: str, lab: tuple[Team, User, User], page: Any
) -> None:
    from playwright.sync_api import expect

    team, ada, _ = lab
    in_server_thread(lambda: register_versions(team, ada))

    # Ada, the author, keeps the package page open.
    sign_in(page, asgi_server, "ada")
    page.goto(f"{asgi_server}/models/churn/3/")
    expect(page.locator(".nav-link.active", has_text="Models")).to_be_visible()
    expect(page.locator("[data-live-dot]")).to_have_attribute("data-state", "connected")
    expect(page.locator(".page-header [data-status-badge]")).to_have_text("Pending manual approval")
    expect(page.locator("[data-decision-form]")).to_have_count(0)
    page.evaluate("window.__studioloSamePage = true")  # a reload would wipe this out

    # Bob, an approver, in another browser context (his own session).
    other = page.context.browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        bob_page = other.new_page()
        sign_in(bob_page, asgi_server, "bob")
        expect(bob_page.locator("#card-models-review [data-card-value]")).to_have_text("3")
        bob_page.goto(f"{asgi_server}/models/churn/")
        expect(bob_page.locator("[data-versions-table] tbody tr")).to_have_count(3)
        expect(bob_page.locator("[data-compare-plot] .main-svg").first).to_be_visible()
        bob_page.select_option("[data-compare-metric]", "f1")
        expect(bob_page.locator("[data-compare-plot] .ytitle")).to_have_text("f1")
        bob_page.screenshot(path=str(ARTIFACTS / "model-group.png"), full_page=True)

        bob_page.goto(f"{asgi_server}/models/churn/3/")
        form = bob_page.locator("[data-decision-form]")
        expect(form).to_be_visible()
        # The comment is required: the browser refuses an empty one.
        bob_page.click("[data-approve]")
        expect(bob_page.locator(".page-header [data-status-badge]")).to_have_text(
            "Pending manual approval"
        )
        bob_page.fill("#decision-comment", "AUC beats v2 on the holdout set")
        bob_page.click("[data-approve]")
        expect(bob_page.locator(".page-header [data-status-badge]")).to_have_text("Approved")
        expect(bob_page.locator(".message-success")).to_contain_text("is now Approved")
        bob_page.screenshot(path=str(ARTIFACTS / "model-package.png"), full_page=True)
    finally:
        other.close()

    # Ada's page followed, without a reload.
    expect(page.locator(".page-header [data-status-badge]")).to_have_text("Approved")
    history = page.locator("[data-history] .timeline-item")
    expect(history).to_have_count(2)
    expect(history.last).to_contain_text("AUC beats v2 on the holdout set")
    expect(history.last).to_contain_text("bob")
    assert page.evaluate("window.__studioloSamePage") is True
    page.screenshot(path=str(ARTIFACTS / "model-package-author.png"), full_page=True)
