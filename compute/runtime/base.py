"""The runtime interface shared by jobs and endpoints.

A runtime starts a container from a `ContainerSpec`, streams its output, waits for it,
stops and removes it, and finds containers again by label (so a restarted worker can
re-attach to what an earlier one started). Two implementations: `DockerRuntime` (isolated,
the real one) and `ProcessRuntime` (local processes, unisolated, for machines without an
engine). Library errors never escape: they become `RuntimeUnavailable` (the platform's
fault: retry or fail with a platform reason) or `ImageNotFound` / `ContainerNotFound`.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from studio.errors import Conflict, NotFound, Unavailable, ValidationError

# A container environment variable's name, as SageMaker allows it (jobs' and models'
# `Environment`), so requests valid there are valid here and back.
ENV_KEY = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,511}$")


class RuntimeUnavailable(Unavailable):
    """The engine cannot be reached or failed in a way that is not the user's doing."""


class ImageNotFound(ValidationError):
    def __init__(self, image: str) -> None:
        super().__init__(f"image: {image!r} does not exist on the container engine", field="image")


class ContainerNotFound(NotFound):
    pass


class ContainerAlreadyExists(Conflict):
    """A container with the spec's deterministic name exists already (an earlier attempt
    started it): find it by name or label and re-attach instead of starting another."""

    def __init__(self, name: str) -> None:
        super().__init__(f"a container named {name!r} exists already", field="name")
        self.name = name


@dataclass(frozen=True)
class Mount:
    source: Path  # a folder on the host
    target: str  # where it appears inside the container, e.g. "/opt/ml"
    read_only: bool = False


@dataclass(frozen=True)
class ContainerSpec:
    name: str  # deterministic, compute.labels.engine_name: "studiolo-3fa2b1-job-42"; starting a second one with it fails
    image: str
    command: list[str] | None = None  # arguments; replaces the image's CMD ("train")
    entrypoint: list[str] | None = None  # replaces the image's ENTRYPOINT when given
    env: Mapping[str, str] = field(default_factory=dict)
    mounts: tuple[Mount, ...] = ()
    workdir: str | None = None
    cpus: float | None = None  # CPU limit in cores
    memory_bytes: int | None = None  # hard memory limit; exceeding it is an OOM kill
    gpus: int = 0
    network: bool = False  # False: no network at all (training default)
    # With `network`: a named (user-defined) network to join instead of the engine's default
    # bridge, for containers that other containers on it must reach by address.
    network_name: str | None = None
    # container port -> 127.0.0.1 port (None: any free one); never another interface
    ports: Mapping[int, int | None] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    user: str | None = None  # None: the image's default user
    hostname: str | None = None  # e.g. "algo-1", as SageMaker names training hosts
    # name -> address written into the container's /etc/hosts (with no network: a one-instance
    # job's own host name on loopback)
    extra_hosts: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ContainerState:
    id: str
    name: str
    running: bool
    exit_code: int | None  # None while running
    oom_killed: bool
    started_at: datetime | None
    finished_at: datetime | None
    labels: Mapping[str, str]
    ports: Mapping[int, int]  # container port -> published 127.0.0.1 port
    error: str = ""  # the engine's own error text, if it could not run the container
    # network name -> the container's IP address on it, while it runs
    addresses: Mapping[str, str] = field(default_factory=dict)
    # network name -> that network's gateway (the host's side of a bridge network)
    gateways: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NetworkState:
    """A user-defined network that containers join (the Docker runtime's bridge networks)."""

    name: str
    id: str
    labels: Mapping[str, str]
    gateways: tuple[str, ...]  # the host's addresses on it: reached from the host when local
    containers: tuple[str, ...]  # ids of the containers attached to it now
    created_at: datetime | None = None


@dataclass(frozen=True)
class LogChunk:
    stream: str  # "stdout" | "stderr"
    data: bytes  # raw bytes as they arrived; may hold several lines or part of one


class Runtime(abc.ABC):
    name: str
    isolated: bool

    @abc.abstractmethod
    def ping(self) -> str:
        """A one-line description of the runtime; raises RuntimeUnavailable."""

    @abc.abstractmethod
    def image_exists(self, image: str) -> bool: ...

    @abc.abstractmethod
    def image_digest(self, image: str) -> str:
        """The image's content id (sha256:...), recorded as lineage; raises ImageNotFound."""

    @abc.abstractmethod
    def start(self, spec: ContainerSpec) -> ContainerState:
        """Create and start the container; raises ImageNotFound, RuntimeUnavailable."""

    @abc.abstractmethod
    def logs(self, container_id: str, *, follow: bool = True) -> Iterator[LogChunk]:
        """Everything the container printed from its start, then (with follow) new output
        as it arrives, until the container exits."""

    @abc.abstractmethod
    def wait(self, container_id: str, timeout: float | None = None) -> ContainerState:
        """Block until the container exits or the timeout passes; returns its state."""

    @abc.abstractmethod
    def inspect(self, container_id: str) -> ContainerState:
        """Raises ContainerNotFound."""

    @abc.abstractmethod
    def stop(self, container_id: str, grace_seconds: float) -> None:
        """SIGTERM, then SIGKILL after the grace period. No error if already stopped."""

    @abc.abstractmethod
    def remove(self, container_id: str) -> None:
        """Remove the container (killing it if needed). No error if already gone."""

    @abc.abstractmethod
    def find(self, labels: Mapping[str, str]) -> list[ContainerState]:
        """Containers (running or exited) carrying all the given labels."""

    # --- networks ------------------------------------------------------------------------------
    # Only an isolated runtime has networks of its own; the process runtime's "containers" share
    # the host's: it finds no network and refuses to make or join one.

    @abc.abstractmethod
    def network_ensure(
        self, name: str, labels: Mapping[str, str], *, internal: bool = False
    ) -> NetworkState:
        """The bridge network `name`, made with these labels when it does not exist.
        `internal`: its containers reach each other and nothing else: no route out, and no
        address of the host on it."""

    @abc.abstractmethod
    def network_inspect(self, name: str) -> NetworkState | None:
        """The network, or None when there is none by that name."""

    @abc.abstractmethod
    def network_connect(self, name: str, container_id: str) -> None:
        """Attach a running container to the network; no error if it is attached already."""

    @abc.abstractmethod
    def network_disconnect(self, name: str, container_id: str) -> None:
        """Detach a container from the network; no error if it is not attached."""

    @abc.abstractmethod
    def network_remove(self, name: str) -> bool:
        """Remove the network unless a container is still attached; True when it is gone."""

    @abc.abstractmethod
    def networks_find(self, labels: Mapping[str, str]) -> list[NetworkState]:
        """Networks carrying all the given labels."""
