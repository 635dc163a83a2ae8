"""ENDPOINT_NETWORK with the real engine: an endpoint's container joins a user-defined bridge
network made by the test, publishes nothing, and the data plane and the health check reach it
at its address there (as compose's web and worker do on `studiolo-serving`). The fleet runs in
this process; no worker is needed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import docker
import httpx
import pytest

import endpoints.gateway
from endpoints.models import Endpoint, EndpointInstance, EndpointStatus, InstanceStatus
from endpoints.services import fleet
from endpoints.services.lifecycle import endpoint_delete, endpoint_deploy_package
from tests.endpoints.conftest import approved_package
from tests.factories import make_team, make_token, make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture(autouse=True)
def _fresh_gateway() -> Iterator[None]:
    # The data plane's caches and counter thread are per process: none may outlive the test.
    endpoints.gateway.reset()
    yield
    endpoints.gateway.reset()


@pytest.fixture
def network(use_runtime: str) -> Iterator[str]:
    client = docker.from_env()
    name = f"studiolo-test-{uuid.uuid4().hex[:8]}"
    created = client.networks.create(name, driver="bridge")
    try:
        yield name
    finally:
        created.reload()
        for container in created.containers:  # a failed test's instances
            container.remove(force=True)
        created.remove()
        client.close()


@pytest.mark.parametrize("runtime_name", ["docker"], indirect=True)
def test_on_a_named_network_instances_are_reached_at_their_address_and_publish_nothing(
    network: str, asgi_server: str, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.ENDPOINT_NETWORK = network
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
    fleet.deploy_endpoint(endpoint.pk)
    endpoint.refresh_from_db()
    assert endpoint.status == EndpointStatus.IN_SERVICE, endpoint.failure_reason

    instance = EndpointInstance.objects.get(endpoint=endpoint)
    client = docker.from_env()
    try:
        attrs = client.api.inspect_container(instance.container_id)
    finally:
        client.close()
    assert attrs["HostConfig"]["NetworkMode"] == network
    assert not attrs["HostConfig"]["PortBindings"]
    assert not any((attrs["NetworkSettings"]["Ports"] or {}).values())  # nothing published
    assert instance.host == attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
    assert instance.port == 8080

    response = httpx.post(
        f"{asgi_server}/endpoints/netecho/invocations",
        content=b"1,2\n",
        headers={"Authorization": f"Bearer {make_token(scientist)}", "Content-Type": "text/csv"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.text.startswith("net:")
    counts = fleet.check_endpoints()
    assert (counts["checked"], counts["unhealthy"], counts["moved"]) == (1, 0, 0)
    assert EndpointInstance.objects.get(pk=instance.pk).status == InstanceStatus.HEALTHY

    endpoint_delete(endpoint=endpoint, actor=scientist)
    fleet.delete_endpoint(endpoint.pk)
    assert not Endpoint.objects.filter(pk=endpoint.pk).exists()
