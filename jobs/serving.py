"""Serving containers: what endpoints and batch transform jobs both run.

A serving container is the model's image started with the command `serve` (contract section
2.1): the unpacked `model.tar.gz` at `/opt/ml/model`, port 8080 published on 127.0.0.1 only,
the instance type's CPU and memory limits. It is ready when `GET /ping` answers 200.

Where the studio reaches it (`serving_address`): by default the container is on the engine's
default bridge with port 8080 published on 127.0.0.1, and the studio calls it at its bridge
address, port 8080, when that bridge is one of this host's interfaces (a Linux engine on the
same machine: the studio's own host routes there without a hop through the engine's port
proxy, which costs about as much CPU per request as the whole data plane); otherwise at the
published port, which only processes on the engine's host can use. A studio that runs in
containers itself (compose) sets `ENDPOINT_NETWORK`: serving containers then join that Docker
network, publish nothing, and are reached at their address on it, port 8080 (the studio's own
containers join the same network).

The model archive is downloaded, checked and unpacked once per artifact into a shared folder
under `JOBS_WORK_DIR/serving/` (`jobs/staging.py`; mounted read-only into Docker containers),
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
from pathlib import Path

from django.conf import settings

from jobs.frameworks import CONTAINER_UID, is_framework_image
from jobs.instance_types import instance_type_get
from jobs.runtime.base import ContainerSpec, ContainerState, Mount, Runtime
from studio.artifacts.integrity import ArtifactPin
from studio.errors import StudioloError

SERVING_PORT = 8080
DEFAULT_BRIDGE = "bridge"  # the engine's default network, where serving containers go by default
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


def serving_container_spec(
    source: ServingSource,
    *,
    runtime: Runtime,
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
    network = serving_network(runtime)
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
        network_name=network or None,
        # On a named network the container is reached at its own address: nothing published.
        ports={} if network else {SERVING_PORT: None},
        labels=labels,
        user=user,
    )


def serving_network(runtime: Runtime) -> str:
    """The Docker network serving containers join ("" for none: publish on 127.0.0.1). The
    process runtime's servers are local processes: always reached on 127.0.0.1."""
    return str(settings.ENDPOINT_NETWORK) if runtime.isolated else ""


def serving_address(state: ContainerState, network: str) -> tuple[str, int] | None:
    """Where the studio reaches a serving container: its address on `network`, port 8080,
    when it is attached there; without a network, its address on the default bridge, port
    8080, when that bridge is attached to this host; else its port published on 127.0.0.1;
    None when it has neither (not running, or not started as a serving container).

    A container started before `ENDPOINT_NETWORK` changed keeps being reached the way it was
    started, so changing the setting never cuts off running instances."""
    if network and state.addresses.get(network):
        return state.addresses[network], SERVING_PORT
    if not network:
        address, gateway = state.addresses.get(DEFAULT_BRIDGE), state.gateways.get(DEFAULT_BRIDGE)
        if address and gateway and is_local_address(gateway):
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
