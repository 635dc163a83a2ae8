"""The Docker runtime: every container Studiolo runs on a Docker engine goes through here.

This is the one module that talks to the Docker SDK about containers (`jobs.runtime` only
asks the engine for its version). It speaks the domain's language: a `ContainerSpec` in, a
`ContainerState` and `LogChunk`s out, and Docker's errors become `ImageNotFound`,
`ContainerNotFound`, `ContainerAlreadyExists` or `RuntimeUnavailable`.

What every container gets, whatever the spec says:
- the deterministic name from the spec (a second start with it is `ContainerAlreadyExists`);
- `no-new-privileges` and all capabilities dropped but the few a root process needs to own
  files in its bind-mounted `/opt/ml` (see `KEPT_CAPABILITIES`);
- a real memory limit (memory == memory+swap: no swapping past it), a CPU quota;
- no network unless the spec asks for one (the default bridge, or the spec's named network),
  and published ports on 127.0.0.1 only;
- docker's init (tini) as PID 1 (see `start`);
- the label `io.studiolo.managed=true`.
"""

from __future__ import annotations

import calendar
import collections
import contextlib
import dataclasses
import math
import os
import re
import struct
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import docker
import docker.errors
import requests
from docker.types import DeviceRequest

from jobs.runtime.base import (
    LABEL_MANAGED,
    ContainerAlreadyExists,
    ContainerNotFound,
    ContainerSpec,
    ContainerState,
    ImageNotFound,
    LogChunk,
    Runtime,
    RuntimeUnavailable,
)
from studio.errors import ValidationError

# Seconds an ordinary engine call (create, inspect, stop bookkeeping) may take before the
# engine counts as unavailable. Log streams and waits set their own (none, or the caller's).
API_TIMEOUT = 60.0

# Capabilities a container keeps; everything else Docker grants by default is dropped.
# Training images run as root (the SageMaker contract) and work in `/opt/ml`, a folder the
# worker created on the host as its own user. For the kernel, root without capabilities is just
# uid 0: it could not even write into that folder.
# - DAC_OVERRIDE: read and write files and folders regardless of their mode (`/opt/ml/model`,
#   `/opt/ml/output` owned by the worker's uid).
# - FOWNER: chmod/utime files root does not own (the toolkit makes a shell entry point in
#   /opt/ml/code executable; pip and tar set modes and times on what they unpack).
# - CHOWN: hand files to another user (images that prepare a folder for an unprivileged user).
# - SETUID, SETGID: let root step *down* to an unprivileged user (gosu/su/`user=` in a launcher);
#   with `no-new-privileges` nothing can step up.
# - KILL: the process that stepped down can still be signalled by its root parent (tini and the
#   toolkit forward SIGTERM to their child; without KILL that is EPERM across uids).
# Left out on purpose: NET_RAW (raw sockets: spoofing on the bridge), MKNOD, SYS_CHROOT,
# SETFCAP/SETPCAP, FSETID, NET_BIND_SERVICE (serving uses 8080), AUDIT_WRITE.
KEPT_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID", "KILL")

_STDOUT, _STDERR = 1, 2
_STREAM_NAMES = {_STDOUT: "stdout", _STDERR: "stderr"}
_FRAME_HEADER = struct.Struct(">BxxxL")  # stream type, 3 bytes padding, payload length
_NS = 1_000_000_000
# After a follow ends, what the engine still has is fetched again from this far back (see
# `logs`); one second covers any reordering between the stdout and stderr copiers.
_CATCH_UP_OVERLAP_NS = _NS

_RFC3339 = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$"
)


def _parse_time_ns(value: str) -> int | None:
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
    return seconds * _NS + int((fraction or "0").ljust(9, "0"))


def _time_from_ns(ns: int | None) -> datetime | None:
    if ns is None:
        return None
    return datetime.fromtimestamp(ns // _NS, UTC) + timedelta(microseconds=(ns % _NS) // 1000)


def parse_docker_time(value: str) -> datetime | None:
    """Docker's RFC 3339 nanosecond time as an aware datetime (microseconds kept)."""
    return _time_from_ns(_parse_time_ns(value))


def _state_from_inspect(attrs: Mapping[str, Any]) -> ContainerState:
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


class _EngineErrors:
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


class DockerRuntime(Runtime):
    """Containers on the Docker engine that DOCKER_HOST (or the default socket) points at."""

    name = "docker"
    isolated = True

    def __init__(self, *, timeout: float = API_TIMEOUT) -> None:
        self._timeout = timeout
        self._client: Any = None
        self._client_pid = 0

    @property
    def _api(self) -> Any:
        # One client per process: a client inherited through fork() (Celery's prefork pool)
        # would share its pooled sockets with the parent.
        if self._client is None or self._client_pid != os.getpid():
            with _EngineErrors():
                self._client = docker.from_env(timeout=self._timeout)
            self._client_pid = os.getpid()
        return self._client.api

    # --- engine and images -------------------------------------------------------------------

    def ping(self) -> str:
        with _EngineErrors():
            version = self._api.version()
        return f"Docker engine {version.get('Version', '?')} (API {version.get('ApiVersion', '?')})"

    def image_exists(self, image: str) -> bool:
        try:
            self.image_digest(image)
        except ImageNotFound:
            return False
        return True

    def image_digest(self, image: str) -> str:
        with _EngineErrors(image=image):
            try:
                return str(self._api.inspect_image(image)["Id"])
            except docker.errors.NotFound as exc:
                raise docker.errors.ImageNotFound(str(exc)) from exc
            except docker.errors.APIError as exc:
                # A reference the engine cannot parse (400 "invalid reference format") names
                # no image there: the caller's mistake, not an engine out of order (a 503).
                if exc.status_code == 400:
                    raise docker.errors.ImageNotFound(str(exc)) from exc
                raise

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self, spec: ContainerSpec) -> ContainerState:
        """Create and start the container.

        A container whose command cannot be executed still starts (tini is PID 1 and reports
        "exec ... failed" on stderr, exit code 127 or 126); one the engine cannot start at
        all (an impossible device request, say) is returned not running, with the engine's
        text in `error`. Either way the container exists and the caller removes it.
        """
        if (spec.ports or spec.network_name) and not spec.network:
            raise ValidationError(
                f"container {spec.name!r}: ports and named networks need a network (network=True)",
                field="ports",
            )
        api = self._api
        with _EngineErrors(image=spec.image, name=spec.name):
            host_config = self._host_config(api, spec)
            created = api.create_container(
                image=spec.image,
                command=list(spec.command) if spec.command is not None else None,
                entrypoint=list(spec.entrypoint) if spec.entrypoint is not None else None,
                environment=dict(spec.env),
                working_dir=spec.workdir,
                hostname=spec.hostname,
                user=spec.user,
                labels={**spec.labels, LABEL_MANAGED: "true"},
                ports=[(port, "tcp") for port in spec.ports],
                name=spec.name,
                host_config=host_config,
            )
        container_id = str(created["Id"])
        start_error = ""
        with _EngineErrors(name=spec.name):
            try:
                api.start(container_id)
            except docker.errors.NotFound as exc:
                if "network" not in str(exc.explanation or ""):
                    raise  # removed under our feet: ContainerNotFound
                # The spec's named network does not exist (the engine checks it only now).
                start_error = str(exc.explanation)
            except docker.errors.APIError as exc:
                # The engine could not start this container (a lost connection is not an
                # APIError and raises). It stays, created, with the reason attached.
                start_error = str(exc.explanation or exc)
        state = self.inspect(container_id)
        if start_error and not state.running and not state.error:
            state = dataclasses.replace(state, error=start_error)
        return state

    @staticmethod
    def _host_config(api: Any, spec: ContainerSpec) -> Any:
        return api.create_host_config(
            binds={
                str(mount.source): {"bind": mount.target, "mode": "ro" if mount.read_only else "rw"}
                for mount in spec.mounts
            },
            network_mode=(spec.network_name or "bridge") if spec.network else "none",
            port_bindings={
                f"{port}/tcp": ("127.0.0.1", host_port) for port, host_port in spec.ports.items()
            },
            nano_cpus=int(spec.cpus * 1e9) if spec.cpus else None,
            # Equal limits: the memory limit is hard, nothing is swapped out past it.
            mem_limit=spec.memory_bytes,
            memswap_limit=spec.memory_bytes,
            device_requests=(
                [DeviceRequest(count=spec.gpus, capabilities=[["gpu"]])] if spec.gpus else None
            ),
            security_opt=["no-new-privileges"],
            cap_drop=["ALL"],
            cap_add=list(KEPT_CAPABILITIES),
            # docker's init (tini) as PID 1, in front of the image's ENTRYPOINT/CMD, which it
            # leaves as they are (so `train` is still the image's command: this is not the
            # tini-as-ENTRYPOINT setup SageMaker calls unsupported). Without it the image's
            # process would be PID 1, and the kernel drops signals PID 1 has no handler for:
            # `bash -c ...` (SDK3's entry point) or a plain script would ignore `docker stop`'s
            # SIGTERM and be SIGKILLed after the whole grace period, and nobody would reap
            # orphaned grandchildren. tini forwards SIGTERM to its child only (the toolkit's
            # `train`, which forwards it to the user's script once: signalling the whole group
            # would deliver it twice) and exits with the child's status (128+N for signal N).
            init=True,
        )

    def inspect(self, container_id: str) -> ContainerState:
        with _EngineErrors(name=container_id):
            return _state_from_inspect(self._api.inspect_container(container_id))

    def wait(self, container_id: str, timeout: float | None = None) -> ContainerState:
        """Block until the container exits; after `timeout` seconds return its state as it is
        (still running) instead of raising."""
        if timeout is not None and timeout <= 0:
            return self.inspect(container_id)
        try:
            with _EngineErrors(name=container_id):
                self._api.wait(container_id, timeout=timeout)
        except RuntimeUnavailable:
            # The SDK reports a wait that ran out of time as a connection error (a read
            # timeout). If the engine answers an inspect, that is all it was.
            if timeout is None:
                raise
        return self.inspect(container_id)

    def stop(self, container_id: str, grace_seconds: float) -> None:
        """`docker stop`: SIGTERM (to tini, which passes it on), SIGKILL after the grace
        period. The engine counts the grace in whole seconds, so it is rounded up."""
        grace = max(0, math.ceil(grace_seconds))
        # The engine answers once the container is down; the SDK adds the grace period to
        # the request's timeout itself.
        with _EngineErrors(name=container_id):
            self._api.stop(container_id, timeout=grace)

    def remove(self, container_id: str) -> None:
        try:
            with _EngineErrors(name=container_id):
                self._api.remove_container(container_id, force=True, v=True)
        except ContainerNotFound:
            return
        except RuntimeUnavailable as exc:
            if "already in progress" in exc.message:  # someone else is removing it
                return
            raise

    def find(self, labels: Mapping[str, str]) -> list[ContainerState]:
        filters = {"label": [f"{key}={value}" for key, value in labels.items()]}
        with _EngineErrors():
            listed = self._api.containers(all=True, filters=filters)
        states = []
        for entry in listed:
            try:
                states.append(self.inspect(str(entry["Id"])))
            except ContainerNotFound:
                continue  # removed between the listing and the inspect
        return states

    # --- logs --------------------------------------------------------------------------------

    def logs(self, container_id: str, *, follow: bool = True) -> Iterator[LogChunk]:
        """Everything the container printed since it started, then (with follow) its output
        as it arrives, until it exits.

        The engine's log endpoint, not attach: attach only sees what is printed while it is
        attached (its replay and its live part can lose or repeat lines between them), while
        the log endpoint reads the log driver's record from the start and follows it.
        The SDK's own stream helpers drop the frame header that says which stream a chunk
        came from; the frames are read here instead (8-byte header: stream type, 3 bytes
        padding, big-endian payload length).

        Measured on a Debian docker.io 20.10 engine (json-file driver): a line reaches the
        iterator about 0.6 ms after the container printed it (p50; under 20 ms at worst).

        Two engine behaviours shape the loop:
        - Only what the engine's log driver keeps can be replayed: with a size limit in the
          daemon's `log-opts`, the start of a very chatty container's output is gone.
        - The log driver records whole lines; text without a newline is held back until the
          newline comes or the process exits (so a `\\r` progress bar appears in bursts).
        - A follow stops as soon as the container stops and can miss what was written last
          (an unterminated last line, always, in our tests). So after a follow ends, what
          the engine has from one second before the last chunk seen is fetched again (with
          timestamps), the chunks already yielded are skipped and the rest follows.
        """
        api = self._api
        with _EngineErrors(name=container_id):
            running = bool(api.inspect_container(container_id)["State"]["Running"])
        recent: collections.deque[int] = collections.deque()  # timestamps yielded lately
        since_ns: int | None = None
        while True:
            # Chunks already yielded that a fetch from `since_ns` returns again.
            skip = sum(1 for ts in recent if ts >= since_ns) if since_ns is not None else 0
            frames = 0
            for stream, ts, data in self._log_frames(
                container_id, follow=follow and running, since_ns=since_ns
            ):
                frames += 1
                if skip:
                    skip -= 1
                    continue
                recent.append(ts)
                while recent and recent[0] < ts - 2 * _CATCH_UP_OVERLAP_NS:
                    recent.popleft()
                if data:
                    yield LogChunk(stream=stream, data=data)
            if not (follow and running):
                return
            # The follow ended: the container stopped (or the engine dropped the stream).
            try:
                with _EngineErrors(name=container_id):
                    running = bool(api.inspect_container(container_id)["State"]["Running"])
            except ContainerNotFound:
                return  # removed while we followed it: nothing more to read
            if running and not frames:
                time.sleep(0.1)  # an engine that keeps ending follows must not spin us
            since_ns = max(recent) - _CATCH_UP_OVERLAP_NS if recent else 0

    @staticmethod
    def _frames(raw: Any, container_id: str) -> Iterator[tuple[int, bytes]]:
        """Cut (stream type, payload) frames out of the multiplexed stream.

        `read1` returns whatever has arrived (up to 64 KiB) without waiting for more, so a
        quiet container's line is passed on at once, and a chatty one's thousands of frames
        cost one read each batch rather than two reads per frame (half the CPU per line).
        """
        buffer = bytearray()
        size = _FRAME_HEADER.size
        while True:
            with _EngineErrors(name=container_id):
                data = raw.read1(65536)
            if not data:
                return  # end of stream; a cut mid-frame leaves bytes we drop
            buffer += data
            offset = 0
            while len(buffer) - offset >= size:
                stream_type, length = _FRAME_HEADER.unpack_from(buffer, offset)
                end = offset + size + length
                if end > len(buffer):
                    break
                yield stream_type, bytes(buffer[offset + size : end])
                offset = end
            del buffer[:offset]

    def _log_frames(
        self, container_id: str, *, follow: bool, since_ns: int | None
    ) -> Iterator[tuple[str, int, bytes]]:
        """(stream, timestamp in ns, payload) for each frame of the engine's log stream
        (empty payloads included, so that frames can be counted)."""
        api = self._api
        params: dict[str, Any] = {
            "stdout": 1,
            "stderr": 1,
            "timestamps": 1,
            "follow": 1 if follow else 0,
            "tail": "all",
        }
        if since_ns:
            params["since"] = f"{since_ns // _NS}.{since_ns % _NS:09d}"
        with _EngineErrors(name=container_id):
            # `_get`/`_url` are the SDK's own request helpers; a follow must not time out
            # while the container is silent, hence timeout=None.
            response = api._get(
                api._url("/containers/{0}/logs", container_id),
                params=params,
                stream=True,
                timeout=None,
            )
            api._raise_for_status(response)
        try:
            for stream_type, payload in self._frames(response.raw, container_id):
                stream = _STREAM_NAMES.get(stream_type)
                if stream is None:
                    continue  # stdin (0) or systemerr (3): not the container's output
                # With timestamps=1 every message starts with "<RFC 3339 nano time> ".
                stamp, _, data = payload.partition(b" ")
                ts = _parse_time_ns(stamp.decode("ascii", "replace"))
                if ts is None:  # not a timestamp after all: keep the bytes
                    ts, data = 0, payload
                yield stream, ts, data
        finally:
            with contextlib.suppress(Exception):
                response.close()
