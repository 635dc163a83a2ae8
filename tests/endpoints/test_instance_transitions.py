"""An endpoint instance's status has one writer, `instance_transition`: the moves its table
allows and no other, a compare-and-swap on the status the caller read, one log row per move
(who, what, why, when) kept after the instance is gone, and a live event after the commit."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from endpoints.models import (
    INSTANCE_TRANSITIONS,
    Endpoint,
    EndpointConfig,
    EndpointInstance,
    InstanceTransition,
)
from endpoints.models import InstanceStatus as Status
from endpoints.services.instances import Component, instance_record, instance_transition
from endpoints.services.lifecycle import IllegalTransition
from tests.endpoints.team_events import listening
from tests.factories import make_team, make_user

pytestmark = pytest.mark.django_db

ALLOWED = {
    (Status.STARTING, Status.HEALTHY),
    (Status.STARTING, Status.DRAINING),
    (Status.STARTING, Status.REMOVED),
    (Status.HEALTHY, Status.UNHEALTHY),
    (Status.HEALTHY, Status.DRAINING),
    (Status.HEALTHY, Status.REMOVED),
    (Status.UNHEALTHY, Status.DRAINING),
    (Status.UNHEALTHY, Status.REMOVED),
    (Status.DRAINING, Status.REMOVED),
}
# Every status a row can hold, to every status: the table's moves and no other.
MOVES = [
    (current, target)
    for current in Status
    if current != Status.REMOVED  # no row holds it
    for target in Status
]


@pytest.fixture
def endpoint() -> Endpoint:
    team = make_team()
    config = EndpointConfig.objects.create(team=team, name="echo-config")
    return Endpoint.objects.create(team=team, name="echo", config=config)


def instance_in(endpoint: Endpoint, status: str) -> EndpointInstance:
    return EndpointInstance.objects.create(
        endpoint=endpoint,
        config=endpoint.config,
        variant_name="AllTraffic",
        container_name=f"c-{status.lower()}",
        status=status,
    )


def test_the_table_is_the_one_the_fleet_relies_on() -> None:
    table = {(c, t) for c, targets in INSTANCE_TRANSITIONS.items() for t in targets}
    assert table == ALLOWED | {("", Status.STARTING)}
    assert INSTANCE_TRANSITIONS[Status.REMOVED] == frozenset()


@pytest.mark.parametrize(("current", "target"), MOVES, ids=lambda s: str(s))
def test_every_allowed_move_is_made_and_logged_and_every_other_refused(
    endpoint: Endpoint, current: str, target: str
) -> None:
    instance = instance_in(endpoint, current)
    if (current, target) not in ALLOWED:
        with pytest.raises(IllegalTransition, match=f"cannot go from {current} to {target}"):
            instance_transition(
                instance=instance, status=target, expect=current, actor=Component.HEALING
            )
        assert EndpointInstance.objects.get(pk=instance.pk).status == current
        assert not InstanceTransition.objects.exists()
        return

    moved = instance_transition(
        instance=instance,
        status=target,
        expect=current,
        actor=Component.HEALTH_CHECK,
        why="it did not answer /ping",
    )

    assert moved
    row = EndpointInstance.objects.filter(pk=instance.pk).first()
    assert (row is None) == (target == Status.REMOVED)
    assert row is None or row.status == target
    log = InstanceTransition.objects.get()
    assert (
        log.endpoint_id,
        log.instance_id,
        log.container_name,
        log.variant_name,
        log.from_status,
        log.to_status,
        log.message,
        log.actor_name,
    ) == (
        endpoint.pk,
        instance.pk,
        instance.container_name,
        "AllTraffic",
        current,
        target,
        "it did not answer /ping",
        "system: health check",
    )
    assert log.created_at is not None


def test_a_move_made_on_a_stale_read_writes_nothing(endpoint: Endpoint) -> None:
    instance = instance_in(endpoint, Status.HEALTHY)
    EndpointInstance.objects.filter(pk=instance.pk).update(status=Status.DRAINING)  # meanwhile

    moved = instance_transition(
        instance=instance,
        status=Status.UNHEALTHY,
        expect=Status.HEALTHY,
        actor=Component.HEALTH_CHECK,
        message="it did not answer /ping",
    )

    assert not moved
    assert EndpointInstance.objects.get(pk=instance.pk).status == Status.DRAINING
    assert EndpointInstance.objects.get(pk=instance.pk).message == ""
    assert not InstanceTransition.objects.exists()


def test_a_removal_reads_the_status_it_removes_from_and_a_gone_instance_is_no_move(
    endpoint: Endpoint,
) -> None:
    instance = instance_in(endpoint, Status.HEALTHY)
    EndpointInstance.objects.filter(pk=instance.pk).update(status=Status.UNHEALTHY)  # meanwhile

    assert instance_transition(
        instance=instance, status=Status.REMOVED, actor=Component.DELETION, why="deleted"
    )
    assert not instance_transition(
        instance=instance, status=Status.REMOVED, actor=Component.DELETION, why="again"
    )
    assert list(InstanceTransition.objects.values_list("from_status", "to_status")) == [
        (Status.UNHEALTHY, Status.REMOVED)
    ]


def test_a_recorded_instance_starts_its_history_and_is_named_by_its_id(
    endpoint: Endpoint,
) -> None:
    named: Callable[[EndpointInstance], str] = lambda instance: f"studiolo-ep-{instance.pk}"  # noqa: E731

    instance = instance_record(
        endpoint=endpoint,
        config=endpoint.config,
        variant_name="AllTraffic",
        container_name=named,
        actor=Component.DEPLOYMENT,
        why="to serve config echo-config",
    )

    assert EndpointInstance.objects.get(pk=instance.pk).container_name == named(instance)
    assert instance.status == Status.STARTING
    log = InstanceTransition.objects.get()
    assert (log.from_status, log.to_status, log.container_name, log.actor_name) == (
        "",
        Status.STARTING,
        named(instance),
        "system: deployment",
    )


def test_the_history_outlives_the_instance_and_goes_with_the_endpoint(endpoint: Endpoint) -> None:
    instance = instance_in(endpoint, Status.DRAINING)
    instance_transition(instance=instance, status=Status.REMOVED, actor=Component.ROLL_OUT)
    assert InstanceTransition.objects.filter(endpoint=endpoint).count() == 1

    endpoint.delete()

    assert not InstanceTransition.objects.exists()


def test_a_user_may_be_the_actor(endpoint: Endpoint) -> None:
    user = make_user(endpoint.team, role="scientist")
    instance = instance_in(endpoint, Status.HEALTHY)

    instance_transition(instance=instance, status=Status.DRAINING, actor=user, expect="Healthy")

    assert InstanceTransition.objects.get().actor_name == user.username


@pytest.mark.usefixtures("redis_available")
@pytest.mark.django_db(transaction=True)
def test_the_move_is_announced_to_the_team_after_it_commits(endpoint: Endpoint) -> None:
    instance = instance_in(endpoint, Status.STARTING)

    with listening(endpoint.team_id) as events:
        instance_transition(
            instance=instance, status=Status.HEALTHY, expect="Starting", actor=Component.ROLL_OUT
        )
        heard = events.take("endpoint.instance", 1)

    assert heard == [
        {
            "id": endpoint.pk,
            "name": "echo",
            "instance": "c-starting",
            "from": "Starting",
            "to": "Healthy",
            "message": "",
            "actor": "system: roll-out",
        }
    ]
