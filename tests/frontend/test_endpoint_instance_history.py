"""An endpoint's page and its API show its instances' history, newest first: which instance
moved from where to where, which part of the studio moved it, and why; an instance gone
included. Moves are made through the one writer, as the fleet makes them."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from endpoints.models import Endpoint, EndpointInstance, EndpointStatus
from endpoints.models import InstanceStatus as Status
from endpoints.services.instances import Component, instance_record, instance_transition
from endpoints.services.lifecycle import endpoint_create, endpoint_transition
from endpoints.services.models import VariantRequest, config_create, model_for_package
from studio.accounts.models import Team
from tests.endpoints.conftest import approved_package
from tests.factories import make_team, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_worker(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.RUNTIME = "process"  # every image "exists"; nothing is started
    monkeypatch.setattr("endpoints.tasks.deploy_endpoint.delay", lambda pk: None)


@pytest.fixture
def team() -> Team:
    return make_team("alpha")


@pytest.fixture
def viewer(team: Team) -> User:
    return make_user(team, role="viewer", username="vic")


@pytest.fixture
def endpoint(team: Team) -> Endpoint:
    scientist = make_user(team, role="scientist", username="ada")
    package = approved_package(team, scientist, make_user(team, role="approver"))
    model = model_for_package(team=team, actor=scientist, package=package)
    config = config_create(
        team=team, actor=scientist, name="churn-config-1", variants=[VariantRequest(model=model)]
    )
    endpoint = endpoint_create(team=team, actor=scientist, name="churn", config=config)
    return endpoint_transition(endpoint_id=endpoint.pk, status=EndpointStatus.IN_SERVICE)


def started(endpoint: Endpoint, by: Component, why: str) -> EndpointInstance:
    instance = instance_record(
        endpoint=endpoint,
        config=endpoint.config,
        variant_name="AllTraffic",
        container_name=lambda row: f"studiolo-ep-{row.pk}",
        actor=by,
        why=why,
    )
    instance_transition(
        instance=instance,
        status=Status.HEALTHY,
        expect=Status.STARTING,
        actor=by,
        why="it answers /ping",
    )
    return instance


def a_replaced_instance(endpoint: Endpoint) -> tuple[EndpointInstance, EndpointInstance]:
    first = started(endpoint, Component.DEPLOYMENT, "to serve config churn-config-1")
    instance_transition(
        instance=first,
        status=Status.UNHEALTHY,
        expect=Status.HEALTHY,
        actor=Component.HEALTH_CHECK,
        why="its container exited (exit code 137)",
    )
    second = started(endpoint, Component.HEALING, f"to replace {first.container_name}")
    instance_transition(
        instance=first,
        status=Status.REMOVED,
        actor=Component.HEALING,
        why=f"replaced by {second.container_name}",
    )
    return first, second


def test_the_endpoint_page_shows_the_instance_history_newest_first(
    endpoint: Endpoint, viewer: User
) -> None:
    first, second = a_replaced_instance(endpoint)
    client = Client()
    client.force_login(viewer)

    response = client.get(reverse("endpoint-detail", args=[endpoint.name]))

    assert response.status_code == 200
    table = re.search(
        r"<tbody data-instance-history>(.*?)</tbody>", response.content.decode(), re.DOTALL
    )
    assert table is not None
    rows = [
        re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip()
        for row in re.findall(r"<tr data-move=.*?</tr>", table[1], re.DOTALL)
    ]
    one, two = first.container_name, second.container_name
    assert [re.sub(r"^\S+ \S+ ", "", row) for row in rows] == [  # without the time
        f"{one} AllTraffic Unhealthy → Removed system: healing replaced by {two}",
        f"{two} AllTraffic Starting → Healthy system: healing it answers /ping",
        f"{two} AllTraffic Starting system: healing to replace {one}",
        f"{one} AllTraffic Healthy → Unhealthy system: health check its container exited "
        "(exit code 137)",
        f"{one} AllTraffic Starting → Healthy system: deployment it answers /ping",
        f"{one} AllTraffic Starting system: deployment to serve config churn-config-1",
    ]


def test_an_endpoint_without_moves_says_so(endpoint: Endpoint, viewer: User) -> None:
    client = Client()
    client.force_login(viewer)

    response = client.get(reverse("endpoint-detail", args=[endpoint.name]))

    assert b"No instance has moved yet." in response.content


def test_the_page_reads_the_history_in_one_query(endpoint: Endpoint, viewer: User) -> None:
    client = Client()
    client.force_login(viewer)
    started(endpoint, Component.DEPLOYMENT, "to serve config churn-config-1")
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("endpoint-detail", args=[endpoint.name]))
    for _ in range(5):
        a_replaced_instance(endpoint)

    with CaptureQueriesContext(connection) as many:
        response = client.get(reverse("endpoint-detail", args=[endpoint.name]))

    assert len(response.context["instance_history"]) == 2 + 5 * 6
    assert len(many) == len(few)


def test_the_api_gives_the_instance_history_newest_first(
    endpoint: Endpoint, viewer: User, team: Team
) -> None:
    first, second = a_replaced_instance(endpoint)
    client = APIClient()
    client.force_authenticate(viewer)

    body = client.get(f"/api/v1/endpoints/{endpoint.name}?team={team.slug}").json()

    assert [
        (move["instance"], move["container"], move["from_status"], move["to_status"], move["actor"])
        for move in body["instance_history"]
    ] == [
        (first.pk, first.container_name, "Unhealthy", "Removed", "system: healing"),
        (second.pk, second.container_name, "Starting", "Healthy", "system: healing"),
        (second.pk, second.container_name, "", "Starting", "system: healing"),
        (first.pk, first.container_name, "Healthy", "Unhealthy", "system: health check"),
        (first.pk, first.container_name, "Starting", "Healthy", "system: deployment"),
        (first.pk, first.container_name, "", "Starting", "system: deployment"),
    ]
    move = body["instance_history"][0]
    assert (move["variant"], move["message"]) == (
        "AllTraffic",
        f"replaced by {second.container_name}",
    )
    assert move["at"]
