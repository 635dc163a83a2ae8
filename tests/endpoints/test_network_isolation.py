"""Serving containers on the real engine: each team's on a bridge of its own that the studio
makes and removes, reached by the studio at their address there with nothing published, and
out of reach of other teams' containers and of training jobs with network access. The fleet
runs in this process; no worker is needed."""

from __future__ import annotations

import textwrap
import time
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import httpx
import pytest

import endpoints.gateway
from compute.labels import instance_label
from compute.runtime import get_runtime
from compute.runtime.base import ContainerSpec
from compute.serving import serving_network_name
from endpoints.models import Endpoint, EndpointInstance, EndpointStatus
from endpoints.services.fleet import health, recovery
from endpoints.services.fleet.deploy import delete_endpoint, deploy_endpoint
from endpoints.services.lifecycle import endpoint_delete, endpoint_deploy_package
from studio.accounts.models import Team
from tests.endpoints.conftest import approved_package
from tests.factories import make_team, make_token, make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

IMAGE = "studiolo/python-base:bookworm"

# Prints "connected" or "blocked <why>": a TCP connection to argv[1]:8080 within 3 s.
PROBE = textwrap.dedent(
    """
    import socket, sys
    try:
        socket.create_connection((sys.argv[1], 8080), timeout=3).close()
        print("connected", flush=True)
    except OSError as exc:
        print("blocked", type(exc).__name__, flush=True)
    """
)


@pytest.fixture(autouse=True)
def _in_process_fleet(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for task in ("deploy_endpoint", "delete_endpoint"):  # run below, in this process
        monkeypatch.setattr(f"endpoints.tasks.{task}.delay", lambda pk: None)
    endpoints.gateway.reset()
    yield
    endpoints.gateway.reset()


@pytest.fixture
def engine(docker_engine: None) -> Iterator[Any]:
    client = docker.from_env()
    yield client
    client.close()


def network_exists(engine: Any, name: str) -> bool:
    return any(n["Name"] == name for n in engine.api.networks(names=[name]))


def deploy(team: Team, name: str, *, instances: int = 1) -> Endpoint:
    scientist = make_user(team, role="scientist")
    package = approved_package(team, scientist, make_user(team, role="approver"), tag=name)
    endpoint = endpoint_deploy_package(
        team=team,
        actor=scientist,
        name=name,
        package=package,
        instance_type="ml.local.small",
        instance_count=instances,
    )
    deploy_endpoint(endpoint.pk)
    endpoint.refresh_from_db()
    assert endpoint.status == EndpointStatus.IN_SERVICE, endpoint.failure_reason
    return endpoint


def delete(endpoint: Endpoint) -> None:
    actor = make_user(endpoint.team, role="scientist")
    endpoint_delete(endpoint=endpoint, actor=actor)
    delete_endpoint(endpoint.pk)


def probe_from(engine: Any, container_id: str, address: str) -> str:
    """Run PROBE inside a running container (docker exec)."""
    exec_id = engine.api.exec_create(container_id, ["python3", "-c", PROBE, address])["Id"]
    return str(engine.api.exec_start(exec_id).decode().strip())


def run_probe(engine: Any, address: str, *, network: bool) -> str:
    """A training job's container (network access asked for, or not) runs PROBE."""
    runtime = get_runtime()
    spec = ContainerSpec(
        name=f"studiolo-test-probe-{uuid.uuid4().hex[:8]}",
        image=IMAGE,
        command=["python3", "-c", PROBE, address],
        network=network,
        memory_bytes=128 * 1024 * 1024,
    )
    state = runtime.start(spec)
    try:
        runtime.wait(state.id, timeout=60)
        return b"".join(c.data for c in runtime.logs(state.id, follow=False)).decode().strip()
    finally:
        runtime.remove(state.id)


@pytest.mark.parametrize("runtime_name", ["docker"], indirect=True)
def test_teams_endpoints_are_on_their_own_networks_and_cannot_reach_each_other(
    use_runtime: str, engine: Any, asgi_server: str
) -> None:
    team_a, team_b = make_team("iso-a"), make_team("iso-b")
    a = deploy(team_a, "a-model", instances=2)
    b = deploy(team_b, "b-model")
    a1, a2 = EndpointInstance.objects.filter(endpoint=a).order_by("pk")
    (b1,) = EndpointInstance.objects.filter(endpoint=b)

    for instance, team in ((a1, team_a), (a2, team_a), (b1, team_b)):
        attrs = engine.api.inspect_container(instance.container_id)
        network = serving_network_name(team.slug)
        assert attrs["HostConfig"]["NetworkMode"] == network
        assert list(attrs["NetworkSettings"]["Networks"]) == [network]
        # Nothing published on the host: the studio calls the container on its bridge.
        assert not attrs["HostConfig"]["PortBindings"]
        assert not any((attrs["NetworkSettings"]["Ports"] or {}).values())
        assert (instance.host, instance.port) == (
            attrs["NetworkSettings"]["Networks"][network]["IPAddress"],
            8080,
        )
        labels = engine.api.inspect_network(network)["Labels"]
        assert labels["io.studiolo.team"] == team.slug

    # Within the team the bridge works (the probe itself works); across teams it does not.
    assert probe_from(engine, a1.container_id, a2.host) == "connected"
    assert probe_from(engine, a1.container_id, b1.host).startswith("blocked")
    assert probe_from(engine, b1.container_id, a1.host).startswith("blocked")

    # The data plane (the studio, on the host) reaches both.
    for endpoint, team in ((a, team_a), (b, team_b)):
        response = httpx.post(
            f"{asgi_server}/endpoints/{endpoint.name}/invocations",
            content=b"1,2\n",
            headers={
                "Authorization": f"Bearer {make_token(make_user(team, role='scientist'))}",
                "Content-Type": "text/csv",
            },
            timeout=30,
        )
        assert response.status_code == 200, response.text

    # A team's network goes with its last endpoint.
    delete(b)
    assert not network_exists(engine, serving_network_name(team_b.slug))
    assert network_exists(engine, serving_network_name(team_a.slug))
    delete(a)
    assert not network_exists(engine, serving_network_name(team_a.slug))


@pytest.mark.parametrize("runtime_name", ["docker"], indirect=True)
def test_a_training_job_with_network_access_cannot_reach_an_endpoint(
    use_runtime: str, engine: Any
) -> None:
    endpoint = deploy(make_team("iso-job"), "job-target")
    (instance,) = EndpointInstance.objects.filter(endpoint=endpoint)
    try:
        # The probe works: the serving container itself reaches its own address.
        assert probe_from(engine, instance.container_id, instance.host) == "connected"
        assert run_probe(engine, instance.host, network=True).startswith("blocked")
        assert run_probe(engine, instance.host, network=False).startswith("blocked")
    finally:
        delete(endpoint)


@pytest.mark.parametrize("runtime_name", ["docker"], indirect=True)
def test_the_periodic_check_removes_a_serving_network_left_unused(
    use_runtime: str, engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    runtime = get_runtime()
    name = serving_network_name("iso-left")
    runtime.network_ensure(
        name,
        {
            "io.studiolo.kind": "serving-network",
            "io.studiolo.team": "iso-left",
            "io.studiolo.instance": instance_label(),
        },
    )
    health.check_endpoints()
    assert network_exists(engine, name)  # just made: may be about to get its container
    monkeypatch.setattr(recovery, "IDLE_NETWORK_AGE", timedelta(seconds=0))
    time.sleep(0.01)
    assert health.check_endpoints()["networks_removed"] >= 1  # earlier tests' too, if left
    assert not network_exists(engine, name)
