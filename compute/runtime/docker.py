"""The Docker runtime: every container Studiolo runs on a Docker engine goes through here.

This is the one module that talks to the Docker SDK about containers (`compute.runtime` only
asks the engine for its version). It speaks the domain's language: a `ContainerSpec` in, a
`ContainerState` and `LogChunk`s out, and Docker's errors become `ImageNotFound`,
`ContainerNotFound`, `ContainerAlreadyExists` or `RuntimeUnavailable`.

What every container gets, whatever the spec says:
- the deterministic name from the spec (a second start with it is `ContainerAlreadyExists`);
- `no-new-privileges` and all capabilities dropped but the few a root process needs to own
  files in its bind-mounted `/opt/ml` (see `KEPT_CAPABILITIES`);
- a real memory limit (memory == memory+swap: no swapping past it), a CPU quota, and a limit
  on its processes and threads (CONTAINER_PIDS_LIMIT: a fork bomb stops there);
- a read-only root file system: the contract's writable places are the spec's mounts
  (`/opt/ml` of a job) and a tmpfs on `/tmp` sized CONTAINER_TMP_PERCENT of its memory limit
  (tmpfs pages count against that limit); `/dev/shm` stays the engine's 64 MB tmpfs;
- no network unless the spec asks for one (the spec's named network, or the default bridge),
  and published ports on 127.0.0.1 only;
- docker's init (tini) as PID 1 (see `start`);
- the label `io.studiolo.managed=true`.

Networks (`network_ensure` and friends) are user-defined bridges the studio makes for serving
containers (see `compute.serving`); they carry the same managed label.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import docker
import docker.errors
from django.conf import settings
from docker.types import DeviceRequest

from compute.labels import LABEL_MANAGED
from compute.runtime.base import (
    ContainerNotFound,
    ContainerSpec,
    ContainerState,
    ImageNotFound,
    LogChunk,
    NetworkState,
    Runtime,
    RuntimeUnavailable,
)
from compute.runtime.docker_api import (
    NS,
    STREAM_NAMES,
    EngineErrors,
    network_state,
    parse_time_ns,
    split_frames,
    state_from_inspect,
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

DEFAULT_PIDS_LIMIT = 4096  # CONTAINER_PIDS_LIMIT; see studio/config.py
DEFAULT_TMP_PERCENT = 50  # CONTAINER_TMP_PERCENT
MIN_TMP_BYTES = 16 * 1024 * 1024

# After a follow ends, what the engine still has is fetched again from this far back (see
# `logs`); one second covers any reordering between the stdout and stderr copiers.
_CATCH_UP_OVERLAP_NS = NS


def _tmpfs_options(memory_bytes: int | None, percent: int) -> str:
    """Mount options of a container's /tmp: world-writable with the sticky bit (images run
    as root or as their own user), no devices or set-uid files, and `percent` of the memory
    limit (the kernel's default, half the host's memory, without one)."""
    options = "rw,nosuid,nodev,mode=1777"
    if memory_bytes:
        size = max(MIN_TMP_BYTES, memory_bytes * percent // 100)
        options += f",size={size // 1024}k"
    return options


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
            with EngineErrors():
                self._client = docker.from_env(timeout=self._timeout)
            self._client_pid = os.getpid()
        return self._client.api

    # --- engine and images -------------------------------------------------------------------

    def ping(self) -> str:
        with EngineErrors():
            version = self._api.version()
        return f"Docker engine {version.get('Version', '?')} (API {version.get('ApiVersion', '?')})"

    def image_exists(self, image: str) -> bool:
        try:
            self.image_digest(image)
        except ImageNotFound:
            return False
        return True

    def image_digest(self, image: str) -> str:
        with EngineErrors(image=image):
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
        with EngineErrors(image=spec.image, name=spec.name):
            host_config = self._host_config(
                api,
                spec,
                pids_limit=int(getattr(settings, "CONTAINER_PIDS_LIMIT", DEFAULT_PIDS_LIMIT)),
                tmp_percent=int(getattr(settings, "CONTAINER_TMP_PERCENT", DEFAULT_TMP_PERCENT)),
            )
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
                networking_config=self._networking_config(api, spec),
            )
        container_id = str(created["Id"])
        start_error = ""
        with EngineErrors(name=spec.name):
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
    def _host_config(
        api: Any,
        spec: ContainerSpec,
        *,
        pids_limit: int = DEFAULT_PIDS_LIMIT,
        tmp_percent: int = DEFAULT_TMP_PERCENT,
    ) -> Any:
        return api.create_host_config(
            binds={
                str(mount.source): {"bind": mount.target, "mode": "ro" if mount.read_only else "rw"}
                for mount in spec.mounts
            },
            network_mode=(spec.network_name or "bridge") if spec.network else "none",
            extra_hosts=dict(spec.extra_hosts) or None,
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
            pids_limit=pids_limit,
            security_opt=["no-new-privileges"],
            cap_drop=["ALL"],
            cap_add=list(KEPT_CAPABILITIES),
            # Nothing of the image can be changed: what a job may write goes to its mounts
            # (/opt/ml) or to /tmp, whose pages count against its memory limit.
            read_only=True,
            tmpfs={"/tmp": _tmpfs_options(spec.memory_bytes, tmp_percent)},  # noqa: S108
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

    @staticmethod
    def _networking_config(api: Any, spec: ContainerSpec) -> Any:
        # On a named network a container's hostname is also its name there: peers reach
        # algo-2 as "algo-2", as on SageMaker. The engine's DNS knows container names and
        # aliases, not hostnames.
        if not (spec.network and spec.network_name and spec.hostname):
            return None
        return api.create_networking_config(
            {spec.network_name: api.create_endpoint_config(aliases=[spec.hostname])}
        )

    def inspect(self, container_id: str) -> ContainerState:
        with EngineErrors(name=container_id):
            return state_from_inspect(self._api.inspect_container(container_id))

    def wait(self, container_id: str, timeout: float | None = None) -> ContainerState:
        """Block until the container exits; after `timeout` seconds return its state as it is
        (still running) instead of raising."""
        if timeout is not None and timeout <= 0:
            return self.inspect(container_id)
        try:
            with EngineErrors(name=container_id):
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
        with EngineErrors(name=container_id):
            self._api.stop(container_id, timeout=grace)

    def remove(self, container_id: str) -> None:
        try:
            with EngineErrors(name=container_id):
                self._api.remove_container(container_id, force=True, v=True)
        except ContainerNotFound:
            return
        except RuntimeUnavailable as exc:
            if "already in progress" in exc.message:  # someone else is removing it
                return
            raise

    def find(self, labels: Mapping[str, str]) -> list[ContainerState]:
        filters = {"label": [f"{key}={value}" for key, value in labels.items()]}
        with EngineErrors():
            listed = self._api.containers(all=True, filters=filters)
        states = []
        for entry in listed:
            try:
                states.append(self.inspect(str(entry["Id"])))
            except ContainerNotFound:
                continue  # removed between the listing and the inspect
        return states

    # --- networks ----------------------------------------------------------------------------

    def _networks_named(self, name: str) -> list[NetworkState]:
        """Every network called exactly `name` (the engine's name filter also matches parts
        of names), the oldest first."""
        with EngineErrors():
            listed = self._api.networks(names=[name])
        found = []
        for entry in listed:
            if entry.get("Name") != name:
                continue
            with contextlib.suppress(ContainerNotFound), EngineErrors():  # removed meanwhile
                found.append(network_state(self._api.inspect_network(entry["Id"])))
        return sorted(found, key=lambda n: (n.created_at or datetime.min.replace(tzinfo=UTC), n.id))

    def network_inspect(self, name: str) -> NetworkState | None:
        found = self._networks_named(name)
        return found[0] if found else None

    def network_ensure(
        self, name: str, labels: Mapping[str, str], *, internal: bool = False
    ) -> NetworkState:
        """Make the bridge network unless it exists. Two workers making it at once can both
        succeed (the engine's duplicate check is not atomic): then the oldest is kept and the
        others, still empty, are removed, so the name stays unambiguous."""
        found = self._networks_named(name)
        if not found:
            try:
                with EngineErrors():
                    self._api.create_network(
                        name,
                        driver="bridge",
                        internal=internal,
                        # An internal bridge routes nothing out, but the host's own address on
                        # it still answers (every service listening on all addresses): without
                        # one its containers reach each other and nothing else.
                        options=(
                            {"com.docker.network.bridge.inhibit_ipv4": "true"} if internal else None
                        ),
                        labels={**labels, LABEL_MANAGED: "true"},
                        check_duplicate=True,
                    )
            except RuntimeUnavailable as exc:
                if "address pool" in exc.message:
                    raise RuntimeUnavailable(
                        f"the Docker engine has no address range left for network {name}: "
                        "remove unused networks or widen the engine's default-address-pools "
                        f"({exc.message})"
                    ) from exc
                if "already exists" not in exc.message:  # made by another worker meanwhile
                    raise
            found = self._networks_named(name)
        if not found:
            raise RuntimeUnavailable(f"network {name} vanished while it was being made")
        kept, *extra = found
        for duplicate in extra:
            # Still empty unless its maker attached something already; then it stays and the
            # kept one serves every later start.
            with contextlib.suppress(RuntimeUnavailable, ContainerNotFound), EngineErrors():
                self._api.remove_network(duplicate.id)
        return kept

    def network_connect(self, name: str, container_id: str) -> None:
        try:
            with EngineErrors(name=container_id):
                self._api.connect_container_to_network(container_id, name)
        except RuntimeUnavailable as exc:
            if "already exists" not in exc.message:  # "endpoint with name ... already exists"
                raise

    def network_disconnect(self, name: str, container_id: str) -> None:
        try:
            with EngineErrors(name=container_id):
                self._api.disconnect_container_from_network(container_id, name, force=True)
        except ContainerNotFound:
            return  # the container or the network is gone
        except RuntimeUnavailable as exc:
            if "is not connected" not in exc.message:
                raise

    def network_remove(self, name: str) -> bool:
        for network in self._networks_named(name):
            try:
                with EngineErrors():
                    self._api.remove_network(network.id)
            except ContainerNotFound:
                continue  # removed meanwhile
            except RuntimeUnavailable as exc:
                if "active endpoints" in exc.message:  # a container is attached
                    return False
                raise
        return True

    def networks_find(self, labels: Mapping[str, str]) -> list[NetworkState]:
        filters = {"label": [f"{key}={value}" for key, value in labels.items()]}
        with EngineErrors():
            listed = self._api.networks(filters=filters)
        states = []
        for entry in listed:
            with contextlib.suppress(ContainerNotFound), EngineErrors():  # removed meanwhile
                states.append(network_state(self._api.inspect_network(entry["Id"])))
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
        with EngineErrors(name=container_id):
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
                with EngineErrors(name=container_id):
                    running = bool(api.inspect_container(container_id)["State"]["Running"])
            except ContainerNotFound:
                return  # removed while we followed it: nothing more to read
            if running and not frames:
                time.sleep(0.1)  # an engine that keeps ending follows must not spin us
            since_ns = max(recent) - _CATCH_UP_OVERLAP_NS if recent else 0

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
            params["since"] = f"{since_ns // NS}.{since_ns % NS:09d}"
        with EngineErrors(name=container_id):
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
            for stream_type, payload in split_frames(response.raw, container_id):
                stream = STREAM_NAMES.get(stream_type)
                if stream is None:
                    continue  # stdin (0) or systemerr (3): not the container's output
                # With timestamps=1 every message starts with "<RFC 3339 nano time> ".
                stamp, _, data = payload.partition(b" ")
                ts = parse_time_ns(stamp.decode("ascii", "replace"))
                if ts is None:  # not a timestamp after all: keep the bytes
                    ts, data = 0, payload
                yield stream, ts, data
        finally:
            with contextlib.suppress(Exception):
                response.close()
