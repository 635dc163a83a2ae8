"""The fleet's health check and healing against a scripted engine (no containers): what it
does while the Docker engine is away, when it comes back, and when addresses change hands.

Instances answer `/ping` from real little HTTP servers on 127.0.0.1; the engine's side
(`inspect`, `start`, `ping`) is a fake whose answers each test sets.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from compute.runtime.base import (
    ContainerNotFound,
    ContainerSpec,
    ContainerState,
    LogChunk,
    NetworkState,
    Runtime,
    RuntimeUnavailable,
)
from compute.serving import serving_network_name
from endpoints.gateway.directory import ROUTING_TTL_SECONDS
from endpoints.models import (
    Endpoint,
    EndpointEvent,
    EndpointInstance,
    EndpointStatus,
    InstanceTransition,
)
from endpoints.models import InstanceStatus as Status
from endpoints.services.fleet import containers, health
from endpoints.services.lifecycle import endpoint_create, endpoint_transition
from endpoints.services.models import VariantRequest, config_create, model_for_package
from tests.endpoints.conftest import approved_package
from tests.factories import make_team, make_user
from tests.support import free_port

# transaction=True: the check closes stale connections, which would end a test transaction.
pytestmark = pytest.mark.django_db(transaction=True)


class PingServer:
    """Answers GET /ping with 200 on a free 127.0.0.1 port: a live serving container."""

    def __init__(self) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the standard library's name
                self.send_response(200 if self.path == "/ping" else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class ScriptedEngine(Runtime):
    """A Docker engine whose answers the test sets: up or down, and each container's state."""

    name = "docker"
    isolated = True
    down: bool = False
    containers: dict[str, ContainerState] = field(default_factory=dict)
    next_start: ContainerState | None = None
    started: list[ContainerSpec] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    networks: dict[str, NetworkState] = field(default_factory=dict)

    def _engine(self) -> None:
        if self.down:
            raise RuntimeUnavailable("the Docker engine is not reachable: connection refused")

    def ping(self) -> str:
        self._engine()
        return "scripted engine"

    def image_exists(self, image: str) -> bool:
        return True

    def image_digest(self, image: str) -> str:
        return "sha256:0"

    def start(self, spec: ContainerSpec) -> ContainerState:
        self._engine()
        assert self.next_start is not None, "the test did not say what starts"
        state, self.next_start = self.next_start, None
        self.containers[state.id] = state
        self.started.append(spec)
        return state

    def logs(self, container_id: str, *, follow: bool = True) -> Iterator[LogChunk]:
        return iter(())

    def wait(self, container_id: str, timeout: float | None = None) -> ContainerState:
        return self.inspect(container_id)

    def inspect(self, container_id: str) -> ContainerState:
        self._engine()
        if container_id not in self.containers:
            raise ContainerNotFound(f"container {container_id!r} does not exist")
        return self.containers[container_id]

    def stop(self, container_id: str, grace_seconds: float) -> None:
        self._engine()

    def remove(self, container_id: str) -> None:
        self._engine()
        self.containers.pop(container_id, None)
        self.removed.append(container_id)

    def find(self, labels: Mapping[str, str]) -> list[ContainerState]:
        self._engine()
        return []

    # A network per team, on a bridge that is not this host's (TEST-NET-1): port 8080 is
    # published, so the instances' addresses are the test's loopback servers.
    def network_ensure(
        self, name: str, labels: Mapping[str, str], *, internal: bool = False
    ) -> NetworkState:
        self._engine()
        made = NetworkState(name, f"id-{name}", dict(labels), ("192.0.2.1",), ())
        return self.networks.setdefault(name, made)

    def network_inspect(self, name: str) -> NetworkState | None:
        self._engine()
        return self.networks.get(name)

    def network_connect(self, name: str, container_id: str) -> None:
        self._engine()

    def network_disconnect(self, name: str, container_id: str) -> None:
        self._engine()

    def network_remove(self, name: str) -> bool:
        self._engine()
        self.networks.pop(name, None)
        return True

    def networks_find(self, labels: Mapping[str, str]) -> list[NetworkState]:
        self._engine()
        return []


def container(
    container_id: str, *, running: bool = True, port: int | None = None, exit_code: int = 0
) -> ContainerState:
    return ContainerState(
        id=container_id,
        name=container_id,
        running=running,
        exit_code=None if running else exit_code,
        oom_killed=False,
        started_at=None,
        finished_at=None,
        labels={},
        ports={8080: port} if port is not None else {},
    )


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch, settings: Any) -> ScriptedEngine:
    settings.ENDPOINT_NETWORK = ""
    scripted = ScriptedEngine()
    monkeypatch.setattr(health, "get_runtime", lambda: scripted)
    return scripted


@pytest.fixture
def live() -> Iterator[PingServer]:
    server = PingServer()
    yield server
    server.close()


def in_service_endpoint(name: str = "echo") -> Endpoint:
    team = make_team()
    scientist, approver = make_user(team, role="scientist"), make_user(team, role="approver")
    package = approved_package(team, scientist, approver)
    model = model_for_package(team=team, actor=scientist, package=package)
    config = config_create(
        team=team,
        actor=scientist,
        name=f"{name}-config",
        variants=[VariantRequest(model=model, instance_count=2)],
    )
    endpoint = endpoint_create(team=team, actor=scientist, name=name, config=config)
    return endpoint_transition(endpoint_id=endpoint.pk, status=EndpointStatus.IN_SERVICE)


def healthy_instance(endpoint: Endpoint, container_id: str, port: int) -> EndpointInstance:
    return EndpointInstance.objects.create(
        endpoint=endpoint,
        config=endpoint.config,
        variant_name="AllTraffic",
        container_name=f"studiolo-ep-{container_id}",
        container_id=container_id,
        port=port,
        status=Status.HEALTHY,
    )


def test_while_the_engine_is_away_silent_instances_leave_rotation_and_the_endpoint_stays_in_service(
    engine: ScriptedEngine, sent: list[tuple[str, int]], live: PingServer, settings: Any
) -> None:
    settings.RUNTIME = "process"  # every image "exists" for endpoint_create
    endpoint = in_service_endpoint()
    answering = healthy_instance(endpoint, "c-live", live.port)
    silent = healthy_instance(endpoint, "c-dead", free_port())
    sent.clear()  # the deployment endpoint_create asked for
    engine.down = True

    first = health.check_endpoints()
    assert first["engine_unreachable"] == 1
    assert EndpointInstance.objects.get(pk=silent.pk).status == Status.HEALTHY  # one miss
    health.check_endpoints()

    silent.refresh_from_db()
    assert silent.status == Status.UNHEALTHY
    assert "the Docker engine is unreachable" in silent.message
    assert EndpointInstance.objects.get(pk=answering.pk).status == Status.HEALTHY
    endpoint.refresh_from_db()
    assert endpoint.status == EndpointStatus.IN_SERVICE
    assert endpoint.failure_reason == ""
    assert sent == []  # nothing can start without the engine: no replacement, no resumption
    note = EndpointEvent.objects.get(endpoint=endpoint, message__contains=silent.container_name)
    assert "replaced once the engine answers again" in note.message
    assert note.actor_name == "system"
    assert note.created_at is not None

    # The engine is back, without the dead instance's container running: it is replaced.
    engine.down = False
    engine.containers["c-live"] = container("c-live", port=live.port)
    engine.containers["c-dead"] = container("c-dead", running=False, exit_code=143)
    counts = health.check_endpoints()
    assert counts["engine_unreachable"] == 0
    assert sent == [("heal_instance", silent.pk)]
    assert Endpoint.objects.get(pk=endpoint.pk).status == EndpointStatus.IN_SERVICE


def test_the_instances_the_check_takes_out_while_the_engine_is_away_are_logged(
    engine: ScriptedEngine, sent: list[tuple[str, int]], live: PingServer, settings: Any
) -> None:
    settings.RUNTIME = "process"
    endpoint = in_service_endpoint()
    healthy_instance(endpoint, "c-live", live.port)
    silent = healthy_instance(endpoint, "c-dead", free_port())
    engine.down = True

    health.check_endpoints()
    health.check_endpoints()

    assert list(
        InstanceTransition.objects.filter(endpoint=endpoint).values_list(
            "container_name", "from_status", "to_status", "actor_name", "message"
        )
    ) == [
        (
            silent.container_name,
            Status.HEALTHY,
            Status.UNHEALTHY,
            "system: health check",
            "it did not answer /ping, and the Docker engine is unreachable "
            "(the Docker engine is not reachable: connection refused)",
        )
    ]


def test_an_instance_whose_container_restarted_at_another_port_is_followed(
    engine: ScriptedEngine, sent: list[tuple[str, int]], live: PingServer, settings: Any
) -> None:
    settings.RUNTIME = "process"
    endpoint = in_service_endpoint()
    old_port = free_port()
    instance = healthy_instance(endpoint, "c-1", old_port)
    engine.containers["c-1"] = container("c-1", port=live.port)
    sent.clear()

    counts = health.check_endpoints()

    assert counts["moved"] == 1
    instance.refresh_from_db()
    assert (instance.status, instance.host, instance.port) == (
        Status.HEALTHY,
        "127.0.0.1",
        live.port,
    )
    assert EndpointEvent.objects.filter(
        endpoint=endpoint, message__contains=f"now answers at 127.0.0.1:{live.port}"
    ).exists()
    assert sent == []


def test_a_replacement_given_an_address_still_in_rotation_takes_that_row_out(
    engine: ScriptedEngine, sent: list[tuple[str, int]], live: PingServer, settings: Any
) -> None:
    # After a restart the engine hands out ports from the start of its range again: another
    # endpoint's row may still claim the port the replacement gets.
    settings.RUNTIME = "process"
    endpoint = in_service_endpoint("a")
    other = in_service_endpoint("b")
    bad = healthy_instance(endpoint, "c-bad", free_port())
    EndpointInstance.objects.filter(pk=bad.pk).update(
        status=Status.UNHEALTHY,
        message="its container exited (exit code 143)",
        last_check_at=timezone.now() - timedelta(seconds=10),
    )
    stale = healthy_instance(other, "c-stale", live.port)
    engine.next_start = container("c-new", port=live.port)

    health.heal_instance(bad.pk)

    replacement = EndpointInstance.objects.get(container_id="c-new")
    assert replacement.status == Status.HEALTHY
    assert replacement.port == live.port
    assert not EndpointInstance.objects.filter(pk=bad.pk).exists()
    assert "c-bad" in engine.removed or "c-bad" not in engine.containers
    stale.refresh_from_db()
    assert stale.status == Status.UNHEALTHY
    assert "was given to another container" in stale.message
    taken_out = InstanceTransition.objects.get(endpoint=other)
    assert (taken_out.from_status, taken_out.to_status, taken_out.actor_name) == (
        Status.HEALTHY,
        Status.UNHEALTHY,
        "system: healing",
    )
    assert taken_out.message == stale.message
    # The team's bridge is not this host's: published on 127.0.0.1, on the team's network.
    assert engine.started[0].ports == {8080: None}
    assert engine.started[0].network_name == serving_network_name(endpoint.team.slug)


def test_no_container_starts_while_an_instance_left_rotation_less_than_a_routing_ttl_ago(
    engine: ScriptedEngine, live: PingServer, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert containers.OUT_OF_ROTATION_SECONDS > ROUTING_TTL_SECONDS
    settings.RUNTIME = "process"
    endpoint = in_service_endpoint()
    bad = healthy_instance(endpoint, "c-bad", free_port())
    EndpointInstance.objects.filter(pk=bad.pk).update(
        status=Status.UNHEALTHY, last_check_at=timezone.now()
    )
    slept: list[float] = []
    monkeypatch.setattr("time.sleep", slept.append)  # the fleet's wait, recorded
    engine.next_start = container("c-new", port=live.port)

    health.heal_instance(bad.pk)

    assert len(slept) >= 1
    assert containers.OUT_OF_ROTATION_SECONDS - 0.5 < slept[0] <= containers.OUT_OF_ROTATION_SECONDS


def test_an_update_of_an_old_endpoint_is_not_resumed_while_it_runs(
    engine: ScriptedEngine, sent: list[tuple[str, int]], settings: Any
) -> None:
    settings.RUNTIME = "process"
    endpoint = in_service_endpoint()
    long_ago = timezone.now() - timedelta(hours=1)
    Endpoint.objects.filter(pk=endpoint.pk).update(created_at=long_ago, updated_at=long_ago)
    sent.clear()

    endpoint_transition(
        endpoint_id=endpoint.pk, status=EndpointStatus.UPDATING, pending_config=endpoint.config
    )
    health.check_endpoints()

    assert ("roll_out_endpoint", endpoint.pk) not in sent
