"""Where the studio reaches a serving container, and what it asks the runtime for: published
on 127.0.0.1 by default (and called at its bridge address when that bridge is this host's),
on a named Docker network (nothing published) with ENDPOINT_NETWORK."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jobs.runtime.base import ContainerSpec, ContainerState
from jobs.runtime.docker import DockerRuntime
from jobs.runtime.process import ProcessRuntime
from jobs.serving import ServingSource, serving_address, serving_container_spec, serving_network


def state(
    *,
    ports: dict[int, int] | None = None,
    addresses: dict[str, str] | None = None,
    gateways: dict[str, str] | None = None,
) -> ContainerState:
    return ContainerState(
        id="c",
        name="c",
        running=True,
        exit_code=None,
        oom_killed=False,
        started_at=None,
        finished_at=None,
        labels={},
        ports=ports or {},
        addresses=addresses or {},
        gateways=gateways or {},
    )


def test_without_a_network_the_published_loopback_port_is_the_address() -> None:
    # No gateway known, or one that is not this host's: the bridge is not attached here.
    published = state(ports={8080: 32771}, addresses={"bridge": "172.17.0.5"})
    assert serving_address(published, "") == ("127.0.0.1", 32771)
    elsewhere = state(
        ports={8080: 32771},
        addresses={"bridge": "172.17.0.5"},
        gateways={"bridge": "192.0.2.1"},  # TEST-NET-1: never an address of this host
    )
    assert serving_address(elsewhere, "") == ("127.0.0.1", 32771)


def test_a_bridge_attached_to_this_host_is_used_directly() -> None:
    # 127.0.0.1 stands in for a local gateway (docker0's 172.17.0.1 on an engine's host).
    local = state(
        ports={8080: 32771}, addresses={"bridge": "172.17.0.5"}, gateways={"bridge": "127.0.0.1"}
    )
    assert serving_address(local, "") == ("172.17.0.5", 8080)
    # A named network wins, and its container publishes nothing.
    assert serving_address(local, "studiolo-serving") == ("127.0.0.1", 32771)


def test_on_a_named_network_the_containers_address_there_and_port_8080() -> None:
    attached = state(addresses={"bridge": "172.17.0.5", "studiolo-serving": "172.30.0.7"})
    assert serving_address(attached, "studiolo-serving") == ("172.30.0.7", 8080)


def test_a_container_started_before_the_network_was_set_keeps_its_published_port() -> None:
    older = state(ports={8080: 32771}, addresses={"bridge": "172.17.0.5"})
    assert serving_address(older, "studiolo-serving") == ("127.0.0.1", 32771)


def test_a_container_with_neither_has_no_address() -> None:
    assert serving_address(state(), "") is None
    assert serving_address(state(addresses={"bridge": "172.17.0.5"}), "studiolo-serving") is None


@pytest.mark.parametrize(
    ("network", "expected_network", "expected_ports"),
    [("", None, {8080: None}), ("studiolo-serving", "studiolo-serving", {})],
)
def test_docker_serving_containers_publish_on_loopback_or_join_the_network(
    settings: Any, tmp_path: Path, network: str, expected_network: str | None, expected_ports: Any
) -> None:
    settings.ENDPOINT_NETWORK = network
    runtime = DockerRuntime()
    assert serving_network(runtime) == network
    spec = serving_container_spec(
        ServingSource(image="studiolo/sklearn:latest", artifact_uri="file:///m.tar.gz"),
        runtime=runtime,
        name="n",
        instance_type="ml.local.small",
        labels={},
        model_root=tmp_path,
    )
    assert spec.network is True
    assert spec.network_name == expected_network
    assert spec.ports == expected_ports


def test_local_processes_are_always_reached_on_loopback(settings: Any, tmp_path: Path) -> None:
    settings.ENDPOINT_NETWORK = "studiolo-serving"
    runtime = ProcessRuntime()
    assert serving_network(runtime) == ""
    spec = serving_container_spec(
        ServingSource(image="studiolo/sklearn:latest", artifact_uri="file:///m.tar.gz"),
        runtime=runtime,
        name="n",
        instance_type="ml.local.small",
        labels={},
        model_root=tmp_path,
    )
    assert spec.network_name is None
    assert spec.ports == {8080: None}


def test_docker_binds_published_ports_to_loopback_and_names_the_network() -> None:
    class Api:
        def create_host_config(self, **kwargs: Any) -> dict[str, Any]:
            return kwargs

    published = DockerRuntime._host_config(
        Api(), ContainerSpec(name="a", image="i", network=True, ports={8080: None})
    )
    assert published["network_mode"] == "bridge"
    assert published["port_bindings"] == {"8080/tcp": ("127.0.0.1", None)}
    attached = DockerRuntime._host_config(
        Api(), ContainerSpec(name="a", image="i", network=True, network_name="studiolo-serving")
    )
    assert attached["network_mode"] == "studiolo-serving"
    assert attached["port_bindings"] == {}
