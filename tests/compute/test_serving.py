"""Where the studio reaches a serving container, and what it asks the runtime for: its team's
network, published on 127.0.0.1 only when that bridge is not this host's; with
ENDPOINT_NETWORK, the team's network with the studio's containers attached, nothing published.
(tests/endpoints/test_network_isolation.py does the same with the real engine.)"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from compute.runtime.base import ContainerSpec, ContainerState, NetworkState, Runtime
from compute.runtime.docker import DockerRuntime
from compute.runtime.process import ProcessRuntime
from compute.serving import (
    ServingSource,
    serving_address,
    serving_container_spec,
    serving_network,
    serving_network_name,
    serving_placement,
)


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


def test_a_teams_network_is_reached_directly_from_the_host_or_from_the_studios_containers() -> None:
    on_team = state(addresses={"studiolo-abc123-serve-vision": "172.18.0.2"}, gateways={})
    # The studio in containers (ENDPOINT_NETWORK): attached to the team's network.
    assert serving_address(on_team, "studiolo-serving") == ("172.18.0.2", 8080)
    # The studio on the host: only when the bridge is this host's.
    assert serving_address(on_team, "") is None
    local = dataclasses.replace(on_team, gateways={"studiolo-abc123-serve-vision": "127.0.0.1"})
    assert serving_address(local, "") == ("172.18.0.2", 8080)


def test_a_container_with_neither_has_no_address() -> None:
    assert serving_address(state(), "") is None
    assert serving_address(state(addresses={"bridge": "172.17.0.5"}), "studiolo-serving") is None


class ScriptedDocker(DockerRuntime):
    """The Docker runtime with the engine's network side played by the test: networks by
    name, containers' labels, and what was connected where."""

    def __init__(self, gateway: str = "127.0.0.1") -> None:
        super().__init__()
        self.gateway = gateway  # 127.0.0.1 stands in for a local bridge gateway (172.18.0.1)
        self.networks: dict[str, NetworkState] = {}
        self.labels: dict[str, dict[str, str]] = {}  # container id -> labels
        self.connected: list[tuple[str, str]] = []

    def network_ensure(
        self, name: str, labels: Mapping[str, str], *, internal: bool = False
    ) -> NetworkState:
        made = NetworkState(name, f"id-{name}", dict(labels), (self.gateway,), ())
        return self.networks.setdefault(name, made)

    def network_inspect(self, name: str) -> NetworkState | None:
        return self.networks.get(name)

    def network_connect(self, name: str, container_id: str) -> None:
        self.connected.append((name, container_id))

    def inspect(self, container_id: str) -> ContainerState:
        return dataclasses.replace(state(), id=container_id, labels=self.labels[container_id])


def spec_for(runtime: Runtime, tmp_path: Path, team: str = "vision") -> ContainerSpec:
    return serving_container_spec(
        ServingSource(image="studiolo/sklearn:latest", artifact_uri="file:///m.tar.gz"),
        runtime=runtime,
        placement=serving_placement(runtime, team),
        name="n",
        instance_type="ml.local.small",
        labels={},
        model_root=tmp_path,
    )


def test_docker_serving_containers_join_their_teams_network_and_publish_nothing(
    settings: Any, tmp_path: Path
) -> None:
    settings.ENDPOINT_NETWORK = ""
    engine = ScriptedDocker()
    spec = spec_for(engine, tmp_path, "vision")
    assert spec.network is True
    assert spec.network_name == serving_network_name("vision")
    assert spec.network_name.startswith("studiolo-")
    assert spec.network_name.endswith("-serve-vision")
    assert spec.ports == {}
    assert engine.networks[spec.network_name].labels["io.studiolo.team"] == "vision"


def test_a_bridge_that_is_not_this_hosts_falls_back_to_a_loopback_port(
    settings: Any, tmp_path: Path
) -> None:
    settings.ENDPOINT_NETWORK = ""
    engine = ScriptedDocker(gateway="192.0.2.1")  # TEST-NET-1: never an address of this host
    spec = spec_for(engine, tmp_path)
    assert spec.network_name == serving_network_name("vision")
    assert spec.ports == {8080: None}


def test_under_endpoint_network_the_studios_containers_join_the_teams_network(
    settings: Any, tmp_path: Path
) -> None:
    settings.ENDPOINT_NETWORK = "studiolo-serving"
    engine = ScriptedDocker(gateway="192.0.2.1")
    engine.networks["studiolo-serving"] = NetworkState(
        "studiolo-serving", "id-s", {}, ("192.0.2.9",), ("web", "worker", "old-instance")
    )
    engine.labels = {"web": {}, "worker": {}, "old-instance": {"io.studiolo.managed": "true"}}
    spec = spec_for(engine, tmp_path, "vision")
    team_network = serving_network_name("vision")
    assert spec.network_name == team_network
    assert spec.ports == {}  # the studio's containers reach it on the team's network
    assert engine.connected == [(team_network, "web"), (team_network, "worker")]


def test_local_processes_are_always_reached_on_loopback(settings: Any, tmp_path: Path) -> None:
    settings.ENDPOINT_NETWORK = "studiolo-serving"
    runtime = ProcessRuntime()
    assert serving_network(runtime) == ""
    spec = spec_for(runtime, tmp_path)
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
