"""The Docker engine's answers in the runtime's terms: its errors, its times, its inspect
documents and its multiplexed log stream. Pure translation, used by `compute.runtime.docker`."""

from __future__ import annotations

import calendar
import re
import struct
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import docker.errors
import requests

from compute.runtime.base import (
    ContainerAlreadyExists,
    ContainerNotFound,
    ContainerState,
    ImageNotFound,
    NetworkState,
    RuntimeUnavailable,
)

STDOUT, STDERR = 1, 2
STREAM_NAMES = {STDOUT: "stdout", STDERR: "stderr"}
FRAME_HEADER = struct.Struct(">BxxxL")  # stream type, 3 bytes padding, payload length
NS = 1_000_000_000

_RFC3339 = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$"
)


def parse_time_ns(value: str) -> int | None:
    """Docker's RFC 3339 time with nanoseconds ("...T13:36:28.899514004Z", trailing zeros
    trimmed) as nanoseconds since the epoch; None for Docker's "never" (year 1)."""
    match = _RFC3339.match(value or "")
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if int(year) <= 1:
        return None
    seconds = calendar.timegm(
        (int(year), int(month), int(day), int(hour), int(minute), int(second), 0, 0, 0)
    )
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds * NS + int((fraction or "0").ljust(9, "0"))


def time_from_ns(ns: int | None) -> datetime | None:
    if ns is None:
        return None
    return datetime.fromtimestamp(ns // NS, UTC) + timedelta(microseconds=(ns % NS) // 1000)


def parse_docker_time(value: str) -> datetime | None:
    """Docker's RFC 3339 nanosecond time as an aware datetime (microseconds kept)."""
    return time_from_ns(parse_time_ns(value))


def state_from_inspect(attrs: Mapping[str, Any]) -> ContainerState:
    state = attrs.get("State") or {}
    running = bool(state.get("Running"))
    error = str(state.get("Error") or "")
    # "created" and never started is not an exit; "created" with an error is a failed start.
    exited = not running and (state.get("Status") != "created" or bool(error))
    ports: dict[int, int] = {}
    for key, bindings in ((attrs.get("NetworkSettings") or {}).get("Ports") or {}).items():
        for binding in bindings or ():
            if binding.get("HostPort"):
                ports[int(key.split("/", 1)[0])] = int(binding["HostPort"])
                break
    networks = ((attrs.get("NetworkSettings") or {}).get("Networks") or {}).items()
    addresses = {
        name: str(network["IPAddress"])
        for name, network in networks
        if network and network.get("IPAddress")
    }
    gateways = {
        name: str(network["Gateway"])
        for name, network in networks
        if network and network.get("Gateway")
    }
    started_at = parse_docker_time(str(state.get("StartedAt") or ""))
    finished_at = parse_docker_time(str(state.get("FinishedAt") or "")) if exited else None
    if started_at and finished_at and finished_at < started_at:
        # The engine stamps the two from different places; a container that exits within
        # a millisecond can show FinishedAt a few microseconds before StartedAt.
        finished_at = started_at
    return ContainerState(
        id=str(attrs["Id"]),
        name=str(attrs.get("Name", "")).lstrip("/"),
        running=running,
        exit_code=int(state.get("ExitCode") or 0) if exited else None,
        oom_killed=bool(state.get("OOMKilled")),
        started_at=started_at,
        finished_at=finished_at,
        labels=dict((attrs.get("Config") or {}).get("Labels") or {}),
        ports=ports,
        error=error,
        addresses=addresses,
        gateways=gateways,
    )


def network_state(attrs: Mapping[str, Any]) -> NetworkState:
    ipam = (attrs.get("IPAM") or {}).get("Config") or []
    return NetworkState(
        name=str(attrs.get("Name", "")),
        id=str(attrs["Id"]),
        labels=dict(attrs.get("Labels") or {}),
        gateways=tuple(str(c["Gateway"]) for c in ipam if c and c.get("Gateway")),
        containers=tuple((attrs.get("Containers") or {}).keys()),
        created_at=parse_docker_time(str(attrs.get("Created") or "")),
    )


class EngineErrors:
    """Translate what the Docker SDK raises into the runtime's errors.

    A class rather than a generator-based context manager so that one instance can guard a
    single call inside a generator (`logs`) without wrapping the caller's code.
    """

    def __init__(self, *, image: str | None = None, name: str | None = None) -> None:
        self.image = image
        self.name = name

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> Literal[False]:
        if exc is None:
            return False
        if isinstance(exc, docker.errors.ImageNotFound):
            raise ImageNotFound(self.image or "?") from exc
        if isinstance(exc, docker.errors.NotFound):
            what = self.name or "?"
            raise ContainerNotFound(f"container {what!r} does not exist") from exc
        if isinstance(exc, docker.errors.APIError):
            explanation = str(exc.explanation or exc)
            if exc.status_code == 409 and "already in use" in explanation and self.name:
                raise ContainerAlreadyExists(self.name) from exc
            raise RuntimeUnavailable(f"the Docker engine refused: {explanation}") from exc
        if isinstance(exc, docker.errors.DockerException | requests.exceptions.RequestException):
            raise RuntimeUnavailable(f"the Docker engine is not reachable: {exc}") from exc
        return False


def split_frames(raw: Any, container_id: str) -> Iterator[tuple[int, bytes]]:
    """Cut (stream type, payload) frames out of the multiplexed stream.

    `read1` returns whatever has arrived (up to 64 KiB) without waiting for more, so a
    quiet container's line is passed on at once, and a chatty one's thousands of frames
    cost one read each batch rather than two reads per frame (half the CPU per line).
    """
    buffer = bytearray()
    size = FRAME_HEADER.size
    while True:
        with EngineErrors(name=container_id):
            data = raw.read1(65536)
        if not data:
            return  # end of stream; a cut mid-frame leaves bytes we drop
        buffer += data
        offset = 0
        while len(buffer) - offset >= size:
            stream_type, length = FRAME_HEADER.unpack_from(buffer, offset)
            end = offset + size + length
            if end > len(buffer):
                break
            yield stream_type, bytes(buffer[offset + size : end])
            offset = end
        del buffer[:offset]
