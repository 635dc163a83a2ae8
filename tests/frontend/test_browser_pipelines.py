"""A pipeline's page in a real browser: the SageMaker SDK's canonical pipeline drawn as a DAG
(every step a box, the condition's branches labelled), a step's facts on hover and focus,
switching versions, the diff, and at a phone's width the DAG scrolls inside its panel while
the page never scrolls sideways.

Same set-up as test_browser_models.py: Debian's Chromium through Playwright against uvicorn
serving studio.asgi; the pipeline is made through the pipelines services.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User

from pipelines.definition import definition_parse
from pipelines.services import pipeline_create, pipeline_update
from studio.accounts.models import Team
from tests.factories import make_team, make_user
from tests.frontend.browser_support import ARTIFACTS, in_server_thread
from tests.frontend.test_browser_models import sign_in
from tests.pipelines.support import FIXTURES

pytestmark = pytest.mark.browser

CANONICAL = json.loads((FIXTURES / "sdk" / "canonical.json").read_text())
STEPS = [step.name for step in definition_parse(CANONICAL).steps]
NO_SIDEWAYS_SCROLL = (
    "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
)


@pytest.fixture
def lab(transactional_db: None) -> tuple[Team, User]:
    team = make_team("lab")
    return team, make_user(team, role="scientist", username="ada")


def make_canonical(team: Team, ada: User) -> None:
    pipeline = pipeline_create(team=team, name="canonical", definition=CANONICAL, actor=ada)
    stricter = json.loads(json.dumps(CANONICAL))
    threshold = next(p for p in stricter["Parameters"] if p["Name"] == "threshold")
    threshold["DefaultValue"] = 0.85
    pipeline_update(
        pipeline=pipeline, actor=ada, definition=stricter, version_description="stricter"
    )


def test_the_canonical_pipelines_dag_versions_and_diff(
    asgi_server: str, lab: tuple[Team, User], page: Any
) -> None:
    from playwright.sync_api import expect

    team, ada = lab
    in_server_thread(lambda: make_canonical(team, ada))
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_viewport_size({"width": 1440, "height": 900})
    sign_in(page, asgi_server, "ada")

    page.click(".sidebar .nav-link >> text=Pipelines")
    expect(page.locator("[data-pipeline=canonical]")).to_contain_text("v2")
    page.click("[data-pipeline=canonical] .pipeline-name a")
    expect(page.locator("[data-shown-version]")).to_have_text("version 2")

    # Every step is a box; the condition's branches are labelled on their edges.
    for name in STEPS:
        expect(page.locator(f'.dag-node[data-step="{name}"]')).to_be_visible()
    branch = page.locator("[data-branch-label]")
    expect(branch.filter(has_text="if")).to_have_count(2)  # CheckAccuracy, CheckRegisterEnabled
    expect(branch.filter(has_text="else")).to_have_count(1)
    expect(
        page.locator('[data-branch-label=else][data-branch-target="AccuracyTooLow"]')
    ).to_be_visible()

    # A step's facts on hover, and on keyboard focus.
    facts = page.locator(".step-facts.is-active")
    page.hover('.dag-node[data-step="Train"]')
    expect(facts).to_have_count(1)
    expect(facts).to_contain_text("Parameters.train_instance_type")
    page.focus('.dag-node[data-step="CheckAccuracy"]')
    expect(facts).to_contain_text("metrics.accuracy.value")
    expect(facts).to_contain_text("AccuracyTooLow")
    page.wait_for_function(NO_SIDEWAYS_SCROLL)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "pipeline-1440.png"), full_page=True)

    # Switch to version 1: its own parameters.
    page.click('[data-version-link="1"]')
    expect(page.locator("[data-shown-version]")).to_have_text("version 1")
    expect(page.locator('[data-parameter="threshold"]')).to_contain_text("0.7")
    for name in STEPS:
        expect(page.locator(f'.dag-node[data-step="{name}"]')).to_be_visible()

    # The diff from v1 to v2: one line removed, one added, each said in words too.
    page.click('[data-diff-link="2"]')
    expect(page.locator("[data-kind=removed]")).to_have_count(1)
    expect(page.locator("[data-kind=removed]")).to_contain_text("removed: ")
    expect(page.locator("[data-kind=removed]")).to_contain_text('"DefaultValue": 0.7')
    expect(page.locator("[data-kind=added]")).to_contain_text('"DefaultValue": 0.85')
    page.screenshot(path=str(ARTIFACTS / "pipeline-diff-1440.png"), full_page=True)

    # A phone's width: the DAG scrolls inside its panel; the page does not scroll sideways.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{asgi_server}/pipelines/canonical/")
    expect(page.locator('.dag-node[data-step="Preprocess"]')).to_be_visible()
    page.wait_for_function(NO_SIDEWAYS_SCROLL)
    scroll = page.locator("[data-dag-scroll]")
    assert scroll.evaluate("node => node.scrollWidth > node.clientWidth")
    assert scroll.evaluate("node => node.getBoundingClientRect().right <= 390")
    page.screenshot(path=str(ARTIFACTS / "pipeline-390.png"), full_page=True)
    page.goto(f"{asgi_server}/pipelines/canonical/diff/1/2/")
    expect(page.locator("[data-kind=added]")).to_have_count(1)
    page.wait_for_function(NO_SIDEWAYS_SCROLL)
    page.goto(f"{asgi_server}/pipelines/")
    page.wait_for_function(NO_SIDEWAYS_SCROLL)
    assert errors == []
