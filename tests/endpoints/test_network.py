"""ENDPOINT_NETWORK with the real engine, as compose runs the studio: its own containers (web,
worker) share that network, and an endpoint's container goes on its team's network, to which
the studio attaches them. A stand-in container plays the studio's web container; the data
plane and the health check in this process reach the instance too (the bridge is this host's).
The fleet runs in this process; no worker is needed."""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import httpx
import pytest

import endpoints.gateway
from compute.serving import serving_network_name
from endpoints.models import Endpoint, EndpointInstance, EndpointStatus, InstanceStatus
from endpoints.services.fleet import deploy, health
from endpoints.services.lifecycle import endpoint_delete, endpoint_deploy_package
from tests.endpoints.conftest import approved_package
from tests.factories import make_team, make_token, make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

PING = textwrap.dedent(
    """
    import sys, urllib.request
    print(urllib.request.urlopen(f"http://{sys.argv[1]}:8080/ping", timeout=5).status)
    """
)


@pytest.fixture(autouse=True)
def _fresh_gateway() -> Iterator[None]:
    # The data plane's caches and counter thread are per process: none may outlive the test.
    endpoints.gateway.reset()
    yield
    endpoints.gateway.reset()


@pytest.fixture
def network(use_runtime: str) -> Iterator[tuple[str, str]]:
    """ENDPOINT_NETWORK, and the id of a container standing in for the studio's web on it."""
    client = docker.from_env()
    name = f"studiolo-test-{uuid.uuid4().hex[:8]}"
    created = client.networks.create(name, driver="bridge")
    studio = client.containers.run(
        "studiolo/python-base:bookworm",
        ["sleep", "600"],
        name=f"{name}-web",
        network=name,
        detach=True,
    )
    try:
        yield name, studio.id
    finally:
        studio.remove(force=True)
        created.reload()
        for container in created.containers:  # a failed test's instances
            container.remove(force=True)
        created.remove()
        client.close()


@pytest.mark.parametrize("runtime_name", ["docker"], indirect=True)
def test_under_endpoint_network_the_studio_joins_the_teams_network_and_nothing_is_published(
    network: tuple[str, str], asgi_server: str, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared, studio = network
    settings.ENDPOINT_NETWORK = shared
    for task in ("deploy_endpoint", "delete_endpoint"):  # run below, in this process
        monkeypatch.setattr(f"endpoints.tasks.{task}.delay", lambda pk: None)
    team = make_team("net")
    scientist = make_user(team, role="scientist")
    package = approved_package(team, scientist, make_user(team, role="approver"), tag="net")
    endpoint = endpoint_deploy_package(
        team=team,
        actor=scientist,
        name="netecho",
        package=package,
        instance_type="ml.local.small",
        instance_count=1,
    )
    deploy.deploy_endpoint(endpoint.pk)
    endpoint.refresh_from_db()
    assert endpoint.status == EndpointStatus.IN_SERVICE, endpoint.failure_reason

    instance = EndpointInstance.objects.get(endpoint=endpoint)
    team_network = serving_network_name(team.slug)
    client = docker.from_env()
    try:
        attrs = client.api.inspect_container(instance.container_id)
        studio_networks = client.api.inspect_container(studio)["NetworkSettings"]["Networks"]
        exec_id = client.api.exec_create(studio, ["python3", "-c", PING, instance.host])["Id"]
        studio_pings = client.api.exec_start(exec_id).decode().strip()
    finally:
        client.close()
    assert attrs["HostConfig"]["NetworkMode"] == team_network
    assert list(attrs["NetworkSettings"]["Networks"]) == [team_network]  # not on the shared one
    assert not attrs["HostConfig"]["PortBindings"]
    assert not any((attrs["NetworkSettings"]["Ports"] or {}).values())  # nothing published
    assert instance.host == attrs["NetworkSettings"]["Networks"][team_network]["IPAddress"]
    assert instance.port == 8080
    # (Other teams' networks left by earlier tests may be there too: the studio joins them all.)
    assert {shared, team_network} <= set(studio_networks)
    assert studio_pings == "200"

    response = httpx.post(
        f"{asgi_server}/endpoints/netecho/invocations",
        content=b"1,2\n",
        headers={"Authorization": f"Bearer {make_token(scientist)}", "Content-Type": "text/csv"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.text.startswith("net:")
    counts = health.check_endpoints()
    assert (counts["checked"], counts["unhealthy"], counts["moved"]) == (1, 0, 0)
    assert EndpointInstance.objects.get(pk=instance.pk).status == InstanceStatus.HEALTHY

    endpoint_delete(endpoint=endpoint, actor=scientist)
    deploy.delete_endpoint(endpoint.pk)
    assert not Endpoint.objects.filter(pk=endpoint.pk).exists()
    client = docker.from_env()
    try:
        assert not [
            n for n in client.api.networks(names=[team_network]) if n["Name"] == team_network
        ]
        studio_networks = client.api.inspect_container(studio)["NetworkSettings"]["Networks"]
    finally:
        client.close()
    assert shared in studio_networks
    assert team_network not in studio_networks
