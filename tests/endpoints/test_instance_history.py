"""Each path of the fleet, on the real Docker engine, writes its instances' history: who
(which part of the studio) moved which instance from where to where, and why; and no SQL it
runs writes an instance's status other than through `instance_transition`. (The check with the
engine away is in test_fleet.py, against a scripted engine.)"""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import docker
import pytest
from django.db import connection

from endpoints.models import EndpointInstance, EndpointStatus, InstanceTransition
from endpoints.models import InstanceStatus as Status
from endpoints.services.fleet import deploy, health, rollout
from endpoints.services.lifecycle import (
    endpoint_delete,
    endpoint_deploy_package,
    endpoint_update_package,
)
from tests.endpoints.conftest import approved_package
from tests.endpoints.team_events import listening
from tests.factories import make_team, make_user

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.usefixtures("redis_available"),
]

WRITER = "endpoints/services/instances.py"
# Statements on the instance table that write a status (matched, not built: no f-strings).
INSERT = re.compile(r'^INSERT INTO "endpoints_endpointinstance"')
UPDATE_SET = re.compile(r'^UPDATE "endpoints_endpointinstance" SET (?P<set>.*?) WHERE', re.DOTALL)
DELETE = re.compile(r'^DELETE FROM "endpoints_endpointinstance"')
CASCADE = re.compile(
    r'^DELETE FROM "endpoints_endpointinstance" WHERE "endpoints_endpointinstance"\."endpoint_id" IN'
)


@dataclass
class StatusWrites:
    """SQL statements that wrote an instance's status, by whether the writer ran them (a
    deletion that cascades from the endpoint's own is none)."""

    by_writer: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)


@pytest.fixture
def status_writes() -> Iterator[StatusWrites]:
    seen = StatusWrites()

    def guard(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        writes = (
            bool(INSERT.match(sql))
            or bool(DELETE.match(sql) and not CASCADE.match(sql))
            or bool((m := UPDATE_SET.match(sql)) and '"status"' in m["set"])
        )
        if writes:
            by_writer = any(f.filename.endswith(WRITER) for f in traceback.extract_stack())
            (seen.by_writer if by_writer else seen.elsewhere).append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(guard):
        yield seen


def history(endpoint_id: int, since: int = 0) -> list[tuple[str, str, str, str, str]]:
    return [
        (row.container_name, row.from_status, row.to_status, row.actor_name, row.message)
        for row in InstanceTransition.objects.filter(endpoint_id=endpoint_id, pk__gt=since)
    ]


def last_row() -> int:
    return InstanceTransition.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


@pytest.mark.parametrize("runtime_name", ["docker"], indirect=True)
def test_create_heal_roll_out_and_delete_each_log_their_moves(
    use_runtime: str, sent: list[tuple[str, int]], status_writes: StatusWrites
) -> None:
    team = make_team("history")
    scientist, approver = make_user(team, role="scientist"), make_user(team, role="approver")
    first = approved_package(team, scientist, approver, tag="v1")
    endpoint = endpoint_deploy_package(
        team=team,
        actor=scientist,
        name="histecho",
        package=first,
        instance_type="ml.local.small",
        instance_count=1,
    )

    # Create.
    deploy.deploy_endpoint(endpoint.pk)
    endpoint.refresh_from_db()
    assert endpoint.status == EndpointStatus.IN_SERVICE, endpoint.failure_reason
    one = EndpointInstance.objects.get(endpoint=endpoint)
    config = endpoint.config.name
    assert history(endpoint.pk) == [
        (
            one.container_name,
            "",
            Status.STARTING,
            "system: deployment",
            f"to serve config {config}",
        ),
        (
            one.container_name,
            Status.STARTING,
            Status.HEALTHY,
            "system: deployment",
            "it answers /ping",
        ),
    ]

    # Heal: its container is killed; the check takes it out, healing replaces it.
    mark = last_row()
    client = docker.from_env()
    try:
        client.containers.get(one.container_id).kill()
    finally:
        client.close()
    health.check_endpoints()
    assert ("heal_instance", one.pk) in sent
    health.heal_instance(one.pk)
    two = EndpointInstance.objects.get(endpoint=endpoint)
    assert history(endpoint.pk, mark) == [
        (
            one.container_name,
            Status.HEALTHY,
            Status.UNHEALTHY,
            "system: health check",
            "its container exited (exit code 137)",
        ),
        (
            two.container_name,
            "",
            Status.STARTING,
            "system: healing",
            f"to replace {one.container_name}",
        ),
        (
            two.container_name,
            Status.STARTING,
            Status.HEALTHY,
            "system: healing",
            "it answers /ping",
        ),
        (
            one.container_name,
            Status.UNHEALTHY,
            Status.REMOVED,
            "system: healing",
            f"replaced by {two.container_name}",
        ),
    ]

    # Roll-out: the new config's instance comes up, the old one drains and goes.
    mark = last_row()
    second = approved_package(team, scientist, approver, tag="v2")
    endpoint_update_package(
        endpoint=endpoint,
        actor=scientist,
        package=second,
        instance_type="ml.local.small",
        instance_count=1,
    )
    rollout.roll_out_endpoint(endpoint.pk)
    endpoint.refresh_from_db()
    assert endpoint.status == EndpointStatus.IN_SERVICE, endpoint.failure_reason
    three = EndpointInstance.objects.get(endpoint=endpoint)
    new_config = endpoint.config.name
    assert history(endpoint.pk, mark) == [
        (
            three.container_name,
            "",
            Status.STARTING,
            "system: roll-out",
            f"to serve config {new_config}",
        ),
        (
            three.container_name,
            Status.STARTING,
            Status.HEALTHY,
            "system: roll-out",
            "it answers /ping",
        ),
        (
            two.container_name,
            Status.HEALTHY,
            Status.DRAINING,
            "system: roll-out",
            f"config {new_config} serves now; stopped in 3 s",
        ),
        (
            two.container_name,
            Status.DRAINING,
            Status.REMOVED,
            "system: roll-out",
            f"drained: config {new_config} serves",
        ),
    ]

    # Delete: the history goes with the endpoint; its last moves were announced live.
    with listening(team.pk) as events:
        endpoint_delete(endpoint=endpoint, actor=scientist)
        deploy.delete_endpoint(endpoint.pk)
        heard = events.take("endpoint.instance", 1)
    assert heard == [
        {
            "id": endpoint.pk,
            "name": "histecho",
            "instance": three.container_name,
            "from": Status.HEALTHY,
            "to": Status.REMOVED,
            "message": "the endpoint is deleted",
            "actor": "system: deletion",
        }
    ]
    assert not InstanceTransition.objects.filter(endpoint_id=endpoint.pk).exists()

    # Every INSERT, UPDATE of status and DELETE of an instance row was the writer's: three
    # instances recorded, eight moves.
    assert len(status_writes.by_writer) == 3 + 8
    assert status_writes.elsewhere == []
