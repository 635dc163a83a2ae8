"""Serving containers: what endpoints and batch transform jobs both run.

A serving container is the model's image started with the command `serve` (contract section
2.1): the unpacked `model.tar.gz` at `/opt/ml/model`, answering on port 8080, with the instance
type's CPU and memory limits. It is ready when `GET /ping` answers 200.

Where it runs (`serving_placement`): on a bridge network of its team's own,
`studiolo-<installation tag>-serve-<team>`, that the studio makes when the team's first serving
container starts and removes once none is left (`serving_network_release`, and the fleet's
periodic check for any it missed). Containers on different bridges cannot reach each other (the
engine drops traffic between them), so one team's model cannot call another team's, and
training jobs with network access, each on a bridge of its own (`compute.networks`), reach no
serving container at all.

How the studio reaches it (`serving_address`): the studio runs on the engine's host, and a
bridge whose gateway is one of this host's addresses routes there, so it calls the container at
its address on the team's network, port 8080, and nothing is published. Only when the bridge is
not this host's (a remote engine) is port 8080 published, on 127.0.0.1 only, and called there.
A studio that runs in containers itself (compose) sets `ENDPOINT_NETWORK`, the network its own
containers share: the studio then attaches those containers (those on ENDPOINT_NETWORK that it
did not start) to each team's network, and calls serving containers at their address there.
Nothing is published either way. Containers started by earlier versions (on the default bridge
or on ENDPOINT_NETWORK itself) are still reached the way they were started.

The model archive is downloaded, checked and unpacked once per artifact into a shared folder
under `JOBS_WORK_DIR/serving/` (`compute/staging.py`; mounted read-only into Docker containers),
so ten instances of one model cost one download.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import math
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings

from compute.frameworks import CONTAINER_UID, is_framework_image
from compute.instance_types import instance_type_get
from compute.labels import (
    KIND_SERVING_NETWORK,
    LABEL_INSTANCE,
    LABEL_KIND,
    LABEL_MANAGED,
    LABEL_TEAM,
    ROLE_SERVING_NETWORK,
    engine_name,
    instance_label,
)
from compute.runtime.base import (
    ContainerNotFound,
    ContainerSpec,
    ContainerState,
    Mount,
    Runtime,
    RuntimeUnavailable,
)
from studio.artifacts.integrity import ArtifactPin
from studio.errors import StudioloError

SERVING_PORT = 8080
DEFAULT_BRIDGE = "bridge"  # the engine's default network: networked jobs, never serving containers
LOOPBACK = "127.0.0.1"  # where published serving ports are bound: never another interface
PING_TIMEOUT = 2.0  # SageMaker's per-request /ping timeout
LAST_LINES = 20  # log lines quoted in the failure reason of a container that would not start
LOAD_ERROR_SECONDS = 1.0  # /ping answering 500 this long: the model failed to load


class ServingStartFailed(StudioloError):
    """The container exited or never answered /ping; the message quotes its last log lines."""


@dataclass(frozen=True)
class ServingSource:
    """What to serve: an image, a model archive and the environment the model asks for."""

    image: str
    artifact_uri: str
    environment: Mapping[str, str] = field(default_factory=dict)
    program: str = ""  # the package's entry point (SAGEMAKER_PROGRAM), if it names one
    # What the archive's content must be, and who pinned it ("package churn/3"). A source
    # with `pinned_by` and no pin (a package registered before pinning, whose artifact was
    # gone at the upgrade) is refused; one with neither (an admin's image model) is not
    # checked.
    pin: ArtifactPin | None = None
    pinned_by: str = ""


@dataclass(frozen=True)
class Placement:
    """Where a serving container goes: its network (None: the process runtime's host
    network) and whether port 8080 must be published on 127.0.0.1 to be reached."""

    network: str | None
    publish: bool


def serving_network_name(team_slug: str) -> str:
    return engine_name(ROLE_SERVING_NETWORK, team_slug)


def _network_labels(team_slug: str) -> dict[str, str]:
    return {
        LABEL_KIND: KIND_SERVING_NETWORK,
        LABEL_TEAM: team_slug,
        LABEL_INSTANCE: instance_label(),
    }


def serving_placement(runtime: Runtime, team_slug: str) -> Placement:
    """Make (if needed) the team's network and say whether its containers must publish their
    port; under ENDPOINT_NETWORK, attach the studio's own containers to it first."""
    if not runtime.isolated:
        return Placement(network=None, publish=True)  # local processes: a 127.0.0.1 port
    name = serving_network_name(team_slug)
    network = runtime.network_ensure(name, _network_labels(team_slug))
    if settings.ENDPOINT_NETWORK:
        _attach_studio(runtime, name)
        return Placement(network=name, publish=False)
    return Placement(network=name, publish=not any(map(is_local_address, network.gateways)))


def _studio_containers(runtime: Runtime) -> list[str]:
    """The studio's own containers: those on ENDPOINT_NETWORK that it did not start."""
    shared = runtime.network_inspect(str(settings.ENDPOINT_NETWORK))
    if shared is None:
        raise RuntimeUnavailable(
            f"ENDPOINT_NETWORK: network {settings.ENDPOINT_NETWORK!r} does not exist on the "
            "engine (compose makes it with the studio's containers)"
        )
    return [cid for cid in shared.containers if not _started_by_studio(runtime, cid)]


def _started_by_studio(runtime: Runtime, container_id: str) -> bool:
    try:
        return runtime.inspect(container_id).labels.get(LABEL_MANAGED) == "true"
    except ContainerNotFound:
        return True  # gone: nothing to attach or detach


def _attach_studio(runtime: Runtime, network: str) -> None:
    for container_id in _studio_containers(runtime):
        runtime.network_connect(network, container_id)


def serving_network_release(runtime: Runtime, team_slug: str) -> bool:
    """Remove the team's network once no container the studio started is on it (the studio's
    own containers, attached under ENDPOINT_NETWORK, are detached first). True when it is
    gone. A container starting on it at this very moment finds it gone and makes it again
    (`serving_start`)."""
    if not runtime.isolated:
        return True
    name = serving_network_name(team_slug)
    network = runtime.network_inspect(name)
    if network is None:
        return True
    attached = list(network.containers)
    if any(_started_by_studio(runtime, cid) for cid in attached):
        return False
    for container_id in attached:  # the studio's own, under ENDPOINT_NETWORK
        runtime.network_disconnect(name, container_id)
    return runtime.network_remove(name)


def serving_networks_reconcile(runtime: Runtime, *, older_than: timedelta) -> int:
    """The periodic pass over this installation's serving networks: one that no container of
    the studio uses and that was made more than `older_than` ago (so not one being made for a
    start right now) is removed; under ENDPOINT_NETWORK, the studio's containers are attached
    to every other one (a web container that compose made again is attached to none).
    Returns how many networks were removed."""
    if not runtime.isolated:
        return 0
    horizon = datetime.now(UTC) - older_than
    removed = 0
    labels = {LABEL_KIND: KIND_SERVING_NETWORK, LABEL_INSTANCE: instance_label()}
    for network in runtime.networks_find(labels):
        team = network.labels.get(LABEL_TEAM, "")
        if network.name != serving_network_name(team):
            continue  # not one of ours after all (a label copied by hand)
        young = network.created_at is not None and network.created_at > horizon
        if not young and serving_network_release(runtime, team):
            removed += 1
        elif settings.ENDPOINT_NETWORK:
            _attach_studio(runtime, network.name)
    return removed


def serving_start(runtime: Runtime, spec: ContainerSpec, team_slug: str) -> ContainerState:
    """Start a serving container. Its team's network may have been released between
    `serving_placement` and now (the team's last other container went away meanwhile):
    then the network is made again and the start tried once more."""
    state = runtime.start(spec)
    missing = "network" in state.error and "not found" in state.error
    if state.running or not missing or spec.network_name is None:
        return state
    runtime.remove(state.id)
    serving_placement(runtime, team_slug)
    return runtime.start(spec)


def serving_container_spec(
    source: ServingSource,
    *,
    runtime: Runtime,
    placement: Placement,
    name: str,
    instance_type: str,
    labels: Mapping[str, str],
    model_root: Path,
    extra_env: Mapping[str, str] | None = None,
) -> ContainerSpec:
    instance = instance_type_get(instance_type)
    env = {
        # One worker per CPU the instance type grants (the toolkit would count the host's).
        "SAGEMAKER_MODEL_SERVER_WORKERS": str(max(1, math.ceil(instance.cpus))),
        "PYTHONUNBUFFERED": "1",
        **({"SAGEMAKER_PROGRAM": source.program} if source.program else {}),
        **source.environment,
        **(extra_env or {}),
    }
    user = None
    if runtime.isolated:
        # The model is shared by every instance: read-only, where the runtime can say so.
        mounts = (Mount(model_root / "model", "/opt/ml/model", read_only=True),)
        if is_framework_image(source.image) and os.geteuid() == 0:
            user = f"{CONTAINER_UID}:{CONTAINER_UID}"
    else:
        mounts = (Mount(model_root, "/opt/ml"),)
    return ContainerSpec(
        name=name,
        image=source.image,
        command=["serve"],
        env=env,
        mounts=mounts,
        cpus=instance.cpus,
        memory_bytes=instance.memory_bytes,
        gpus=instance.gpus,
        network=True,
        network_name=placement.network,
        ports={SERVING_PORT: None} if placement.publish else {},
        labels=labels,
        user=user,
    )


def serving_network(runtime: Runtime) -> str:
    """ENDPOINT_NETWORK, for an isolated runtime: set when the studio runs in containers on
    that network (and reaches serving containers only through the networks it is on)."""
    return str(settings.ENDPOINT_NETWORK) if runtime.isolated else ""


def serving_address(state: ContainerState, network: str) -> tuple[str, int] | None:
    """Where the studio reaches a serving container: with `network` (ENDPOINT_NETWORK: the
    studio is in containers), its address on any network but the default bridge (a team's,
    to which the studio's containers are attached, or ENDPOINT_NETWORK itself for containers
    started before teams had networks); without, its address on a network whose gateway is
    one of this host's addresses (a team's network, or the default bridge for older
    containers); else its port published on 127.0.0.1; None when it has neither (not
    running, or not started as a serving container)."""
    for name, address in state.addresses.items():
        if network and name != DEFAULT_BRIDGE:
            return address, SERVING_PORT
        if not network and is_local_address(state.gateways.get(name, "")):
            return address, SERVING_PORT
    port = state.ports.get(SERVING_PORT)
    if port is not None:
        return LOOPBACK, port
    return None


@functools.cache
def is_local_address(ip: str) -> bool:
    """True when `ip` is an address of one of this host's interfaces (binding to it succeeds;
    nothing is sent). A bridge network whose gateway is local is attached to this host, so
    its containers' addresses are reached directly."""
    if not ip:
        return False
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((ip, 0))
        except OSError:
            return False
    return True


def ping_status(host: str, port: int, timeout: float = PING_TIMEOUT) -> int | None:
    """The status `GET /ping` answers with, or None when nothing answers in time."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", "/ping")
        response = connection.getresponse()
        response.read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()
    return response.status


def ping(host: str, port: int, timeout: float = PING_TIMEOUT) -> bool:
    """True when the server answers `GET /ping` with 200 within the timeout."""
    return ping_status(host, port, timeout) == 200


def last_log_lines(runtime: Runtime, container_id: str, count: int = LAST_LINES) -> str:
    data = bytearray()
    with contextlib.suppress(StudioloError):
        for chunk in runtime.logs(container_id, follow=False):
            data += chunk.data
    lines = [
        line
        for line in data.decode("utf-8", errors="replace").rstrip("\n").splitlines()
        if '"GET /ping"' not in line  # the access log of our own polling says nothing
    ]
    return "\n".join(lines[-count:])


def wait_until_ready(
    runtime: Runtime,
    container_id: str,
    *,
    host: str,
    port: int,
    timeout: float,
) -> None:
    """Poll /ping until it answers 200. Raises ServingStartFailed (with the container's last
    log lines) if the container exits first, if /ping keeps answering 500 (the model failed to
    load: the toolkit reports that for good; 503 means "still loading" and is waited for), or
    if the timeout passes."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    errors_since: float | None = None
    while True:
        status = ping_status(
            host, port, timeout=min(PING_TIMEOUT, max(0.1, deadline - time.monotonic()))
        )
        if status == 200:
            return
        now = time.monotonic()
        errors_since = (errors_since or now) if status == 500 else None
        state = runtime.inspect(container_id)
        if not state.running:
            lines = last_log_lines(runtime, container_id)
            why = state.error or (
                "killed: out of memory" if state.oom_killed else f"exit code {state.exit_code}"
            )
            raise ServingStartFailed(
                f"the serving container exited before answering /ping ({why})"
                + (f"; last log lines:\n{lines}" if lines else "")
            )
        if errors_since is not None and now - errors_since >= LOAD_ERROR_SECONDS:
            lines = last_log_lines(runtime, container_id)
            raise ServingStartFailed(
                "the model failed to load (GET /ping answers 500)"
                + (f"; last log lines:\n{lines}" if lines else "")
            )
        if now >= deadline:
            lines = last_log_lines(runtime, container_id)
            raise ServingStartFailed(
                f"the serving container did not answer /ping within {timeout:.0f} s"
                + (f"; last log lines:\n{lines}" if lines else "")
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
