"""An open endpoint page hears its instances move (`endpoint.instance` over /ws/events) and
draws their history again, newest first, without a reload. Same set-up as
test_browser_endpoints.py: no container starts, the test moves the instance through the one
writer as the fleet would."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from endpoints.models import Endpoint, EndpointStatus
from endpoints.models import InstanceStatus as Status
from endpoints.services.instances import Component, instance_record, instance_transition
from endpoints.services.lifecycle import endpoint_create, endpoint_transition
from endpoints.services.models import VariantRequest, config_create, model_for_package
from studio.accounts.models import Team
from tests.endpoints.conftest import approved_package
from tests.factories import make_team, make_user
from tests.frontend.browser_support import in_server_thread
from tests.frontend.test_browser_models import sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def lab(
    transactional_db: None, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> tuple[Team, User]:
    settings.RUNTIME = "process"
    monkeypatch.setattr("endpoints.tasks.deploy_endpoint.delay", lambda pk: None)
    team = make_team("lab")
    return team, make_user(team, role="scientist", username="ada")


def test_the_instance_history_follows_the_instances_live(
    asgi_server: str, lab: tuple[Team, User], page: Any
) -> None:
    from playwright.sync_api import expect

    team, ada = lab

    def create() -> None:
        package = approved_package(team, ada, make_user(team, role="approver"))
        model = model_for_package(team=team, actor=ada, package=package)
        config = config_create(
            team=team, actor=ada, name="churn-config-1", variants=[VariantRequest(model=model)]
        )
        endpoint = endpoint_create(team=team, actor=ada, name="churn", config=config)
        endpoint_transition(endpoint_id=endpoint.pk, status=EndpointStatus.IN_SERVICE)

    in_server_thread(create)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, asgi_server, "ada")
    page.goto(f"{asgi_server}/endpoints/churn/")
    expect(page.locator("[data-live-dot]")).to_have_attribute("data-state", "connected")
    expect(page.locator("[data-instance-history] [data-empty]")).to_be_visible()
    page.evaluate("window.__studioloSamePage = true")  # a reload would wipe this out

    def start_one() -> None:
        endpoint = Endpoint.objects.select_related("team", "config").get(name="churn")
        instance = instance_record(
            endpoint=endpoint,
            config=endpoint.config,
            variant_name="AllTraffic",
            container_name=lambda row: "churn-1",
            actor=Component.DEPLOYMENT,
            why="to serve config churn-config-1",
        )
        instance_transition(
            instance=instance,
            status=Status.HEALTHY,
            expect=Status.STARTING,
            actor=Component.DEPLOYMENT,
            why="it answers /ping",
        )

    in_server_thread(start_one)
    moves = page.locator('[data-instance-history] tr[data-move="churn-1"]')
    expect(moves).to_have_count(2)
    expect(moves.first).to_contain_text("Starting → Healthy")
    expect(moves.first).to_contain_text("system: deployment")
    expect(moves.first).to_contain_text("it answers /ping")
    expect(moves.nth(1)).to_contain_text("to serve config churn-config-1")
    assert page.evaluate("window.__studioloSamePage") is True
    assert errors == []
