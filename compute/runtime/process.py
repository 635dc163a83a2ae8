"""The process runtime: the container contract as plain local processes. UNISOLATED.

For machines without a container engine (laptops, the embedded default). A "container" here is
a process on the host, running as the worker's user, with the worker's file system and network:
nothing protects the host from the job. `isolated = False` says so to every caller.

How the contract maps onto a process:
- There is no image. `image_exists` is always true and `image_digest` is "process:<image>"; the
  command runs with the host's tools. The commands `train` and `serve` (no entrypoint) become
  `python -m studiolo_toolkit.training` / `.serving` under the interpreter running Studiolo,
  with the toolkit's source folder (containers/toolkit/src in this repository) on PYTHONPATH.
  An entrypoint, or any other command, runs as given (`/bin/bash -c ...` works).
- There is no container file system. The one mount supported is the job's tree: a mount whose
  target is `/opt/ml` sets `SAGEMAKER_BASE_DIR=<source>`, which the toolkit honours; a workdir
  under /opt/ml is moved there too. Any other mount is refused (ValidationError).
- The environment is the spec's plus PATH, HOME and LANG from the host (and PYTHONUNBUFFERED=1,
  which the images set); nothing else leaks from the worker.
- Limits: memory is approximated with RLIMIT_AS (address space, not resident memory, and per
  process: each child the job starts gets the same limit of its own): going over it makes
  allocations fail (MemoryError in Python, a non-zero exit); it is never reported as an OOM
  kill (`oom_killed` is always False: nothing here can tell). CPU, GPU and network settings
  are not enforced.
- A serving port: the spec's container port 8080 becomes a free 127.0.0.1 port, passed to the
  process as SAGEMAKER_BIND_TO_PORT and reported in `ports`.

State lives on disk so that another worker process can find, follow, stop and remove what an
earlier one started: `<root>/<name>/` holds
  spec.json       name, image, labels, ports (written by `start`)
  launch.json     what the supervisor runs: argv, env, cwd, memory limit
  process.json    pid and creation time of the process and of its supervisor
  stdout.log      the process's stdout and stderr, written straight by the process
  stderr.log      (unbuffered on our side), so any reader can tail them
  exit_code       "<code>\\n" once the process has exited (128+N for signal N, as docker); its
                  modification time is the finish time
  error           why the command could not be executed, if it could not
  supervisor.log  the supervisor's own complaints, if any

Every process runs under a small supervisor (`process_supervisor.SUPERVISOR`, run by the same
interpreter),
detached from the worker by a double fork so that it outlives it and is reaped by init. The
supervisor starts the command in a session of its own, waits for it, kills what is left of it
(as the end of a container's PID 1 ends everything in it) and writes exit_code.

"What is left of it" is every process carrying the container's mark, `STUDIOLO_CONTAINER=
<state folder>` in its environment (set for the command, inherited by all it starts), whether
or not it stayed in the command's process group: a server that daemonises, or a script that
starts its own session, is found all the same. And the state folder is the container: while
the command runs the supervisor checks every second that it still exists, and once it is gone
(removed by `remove`, or with the whole data folder, as a test run's temporary home at its
end) the supervisor kills everything marked and exits. So a container that nobody removed
cannot outlive the folder that describes it, reparented to init and unfindable.

Stopping mirrors `docker stop` with docker's init: SIGTERM to the main process only (the
toolkit forwards it to the user's script; a SIGTERM to the whole group would reach the script
twice), then SIGKILL to the whole process group after the grace period.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from compute.labels import LABEL_MANAGED
from compute.runtime.base import (
    ContainerAlreadyExists,
    ContainerNotFound,
    ContainerSpec,
    ContainerState,
    LogChunk,
    NetworkState,
    Runtime,
    RuntimeUnavailable,
)
from compute.runtime.process_launch import BIND_TO_PORT_ENV, SERVING_PORT, process_launch
from compute.runtime.process_supervisor import MARK_ENV, SUPERVISOR, kill_marked
from studio.errors import ValidationError

# Names become folder names: the characters Docker allows in container names, nothing else.
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,199}$")
_STREAMS = ("stdout", "stderr")
_READ_SIZE = 65536
# Tailing polls the log files: quickly after output, backing off to _POLL_MAX when idle, so a
# printed line reaches the reader within ~25 ms and an idle follower costs ~40 reads a second.
_POLL_MIN = 0.002
_POLL_MAX = 0.025
_LIVENESS_EVERY = 1.0  # seconds between checks that the supervisor itself is still there
_START_TIMEOUT = 30.0
_SUPERVISOR_EXIT_TIMEOUT = 5.0  # after SIGKILL: time for the supervisor to record the exit
# An exit whose status nobody recorded (the supervisor was killed too, or the machine
# rebooted); 255 is what a shell reports for an unknown status.
UNKNOWN_EXIT_CODE = 255


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _alive(pid: object, create_time: object) -> bool:
    """Whether the process `pid` created at `create_time` still runs (not a zombie, and not
    another process that got the number later)."""
    if not isinstance(pid, int) or not isinstance(create_time, int | float) or pid <= 0:
        return False
    try:
        process = psutil.Process(pid)
        if abs(process.create_time() - create_time) > 0.05:
            return False
        return bool(process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # it exists; we may just not read it


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


class ProcessRuntime(Runtime):
    """Local processes standing in for containers. Not isolated: see the module docstring."""

    name = "process"
    isolated = False

    def __init__(self, root: Path | None = None) -> None:
        if root is None:
            from django.conf import settings

            root = Path(settings.STUDIOLO_HOME) / "runtime" / "process"
        self.root = Path(root)

    # --- engine and images -------------------------------------------------------------------

    def ping(self) -> str:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RuntimeUnavailable(f"process runtime: cannot use {self.root}: {exc}") from exc
        if not os.access(self.root, os.W_OK):
            raise RuntimeUnavailable(f"process runtime: {self.root} is not writable")
        version = ".".join(map(str, sys.version_info[:3]))
        return f"local processes (unisolated), Python {version} at {sys.executable}"

    def image_exists(self, image: str) -> bool:
        return True  # there are no images: the command runs with whatever the host has

    def image_digest(self, image: str) -> str:
        # Lineage still records what was asked for, marked as not being a content id.
        return f"process:{image}"

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self, spec: ContainerSpec) -> ContainerState:
        if not _NAME.match(spec.name):
            raise ValidationError(f"container name {spec.name!r} is not valid", field="name")
        launch = process_launch(spec)  # validates the spec before anything touches the disk
        ports = {}
        if SERVING_PORT in spec.ports:
            ports[SERVING_PORT] = spec.ports[SERVING_PORT] or _free_port()
            launch["env"][BIND_TO_PORT_ENV] = str(ports[SERVING_PORT])
        folder = self.root / spec.name
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            folder.mkdir()
        except FileExistsError:
            raise ContainerAlreadyExists(spec.name) from None
        except OSError as exc:
            raise RuntimeUnavailable(f"process runtime: cannot create {folder}: {exc}") from exc
        # The mark: how the supervisor and `remove` find every process of this container.
        launch["env"][MARK_ENV] = str(folder.resolve())
        try:
            self._launch_supervisor(folder, spec, launch, ports)
        except (OSError, subprocess.SubprocessError) as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise RuntimeUnavailable(
                f"process runtime: could not start {spec.name!r}: {exc}"
            ) from exc
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return self.inspect(spec.name)

    def _launch_supervisor(
        self,
        folder: Path,
        spec: ContainerSpec,
        launch: dict[str, Any],
        ports: Mapping[int, int],
    ) -> None:
        if launch["cwd"] is None:
            launch["cwd"] = str(folder)
        _write_json(
            folder / "spec.json",
            {
                "name": spec.name,
                "image": spec.image,
                "labels": {**spec.labels, LABEL_MANAGED: "true"},
                "ports": {str(port): host_port for port, host_port in ports.items()},
            },
        )
        _write_json(folder / "launch.json", launch)
        for stream in _STREAMS:
            (folder / f"{stream}.log").touch()
        with open(folder / "supervisor.log", "ab") as supervisor_log:
            # Our own interpreter running our own supervisor: no user input reaches a shell.
            launcher = subprocess.run(
                [sys.executable, "-c", SUPERVISOR, launch["env"][MARK_ENV], MARK_ENV],
                stdin=subprocess.DEVNULL,
                stdout=supervisor_log,
                stderr=supervisor_log,
                start_new_session=True,
                timeout=_START_TIMEOUT,
                check=False,
            )
        if launcher.returncode != 0:
            complaint = (folder / "supervisor.log").read_text(errors="replace").strip()
            raise RuntimeUnavailable(
                f"process runtime: could not start {spec.name!r}: "
                f"{complaint[-2000:] or f'supervisor exited with {launcher.returncode}'}"
            )

    def _folder(self, container_id: str) -> Path:
        folder = self.root / container_id
        if not _NAME.match(container_id) or not (folder / "spec.json").is_file():
            raise ContainerNotFound(f"container {container_id!r} does not exist")
        return folder

    def inspect(self, container_id: str) -> ContainerState:
        return self._state(self._folder(container_id))

    def _state(self, folder: Path) -> ContainerState:
        spec = _read_json(folder / "spec.json")
        process = _read_json(folder / "process.json")
        exit_code: int | None = None
        finished_at: datetime | None = None
        error = ""
        with contextlib.suppress(OSError):
            error = (folder / "error").read_text().strip()
        try:
            exit_file = folder / "exit_code"
            exit_code = int(exit_file.read_text().strip())
            finished_at = datetime.fromtimestamp(exit_file.stat().st_mtime, UTC)
        except (OSError, ValueError):
            exit_code = None
        running = exit_code is None and (
            _alive(process.get("pid"), process.get("create_time"))
            # The process is gone; its supervisor is writing down how it ended.
            or _alive(process.get("supervisor_pid"), process.get("supervisor_create_time"))
        )
        if exit_code is None and not running:
            exit_code = UNKNOWN_EXIT_CODE
            error = error or "the process ended without its exit status being recorded"
        started = process.get("started_at")
        return ContainerState(
            id=folder.name,
            name=str(spec.get("name", folder.name)),
            running=running,
            exit_code=exit_code,
            oom_killed=False,  # RLIMIT_AS failures are ordinary errors; see the module docstring
            started_at=(
                datetime.fromtimestamp(started, UTC) if isinstance(started, int | float) else None
            ),
            finished_at=finished_at,
            labels=dict(spec.get("labels") or {}),
            # Like docker, which unpublishes a stopped container's ports.
            ports={int(p): int(h) for p, h in (spec.get("ports") or {}).items()} if running else {},
            error=error,
        )

    def wait(self, container_id: str, timeout: float | None = None) -> ContainerState:
        folder = self._folder(container_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = _POLL_MIN
        while True:
            state = self._state(folder)
            if not state.running:
                return state
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return state
                delay = min(delay, remaining)
            time.sleep(delay)
            delay = min(delay * 2, _POLL_MAX * 2)

    def stop(self, container_id: str, grace_seconds: float) -> None:
        folder = self._folder(container_id)
        process = _read_json(folder / "process.json")
        if not self._state(folder).running:
            return
        if _alive(process.get("pid"), process.get("create_time")):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(process["pid"]), signal.SIGTERM)
        if not self.wait(container_id, timeout=max(0.0, grace_seconds)).running:
            return
        self._kill(folder, process)

    def _kill(self, folder: Path, process: Mapping[str, Any]) -> None:
        """SIGKILL to the process's group, then wait for the supervisor to record the exit;
        anything marked as this container's that is still there (it left the group, or the
        supervisor is gone too) is killed as well."""
        if _alive(process.get("pid"), process.get("create_time")):
            # The process leads its own session and group: the group id is its pid.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(process["pid"]), signal.SIGKILL)
        self.wait(folder.name, timeout=_SUPERVISOR_EXIT_TIMEOUT)
        kill_marked(folder)

    def remove(self, container_id: str) -> None:
        try:
            folder = self._folder(container_id)
        except ContainerNotFound:
            # A folder without spec.json is a start that failed half-way; clear it too.
            if _NAME.match(container_id):
                shutil.rmtree(self.root / container_id, ignore_errors=True)
            return
        if self._state(folder).running:
            self._kill(folder, _read_json(folder / "process.json"))
        else:
            kill_marked(folder)  # one its supervisor missed (it was killed itself, say)
        for _ in range(3):  # a supervisor finishing its last write can race the first pass
            shutil.rmtree(folder, ignore_errors=True)
            if not folder.exists():
                return
            time.sleep(0.05)

    def find(self, labels: Mapping[str, str]) -> list[ContainerState]:
        if not self.root.is_dir():
            return []
        states = []
        for folder in sorted(self.root.iterdir()):
            spec = _read_json(folder / "spec.json")
            if not spec:
                continue
            have = spec.get("labels") or {}
            if all(have.get(key) == value for key, value in labels.items()):
                states.append(self._state(folder))
        return states

    # --- networks: local processes share the host's ----------------------------------------

    @staticmethod
    def _no_networks(name: str) -> ValidationError:
        return ValidationError(
            f"network {name!r}: the process runtime has no networks (its processes share the "
            "host's)",
            field="network",
        )

    def network_ensure(
        self, name: str, labels: Mapping[str, str], *, internal: bool = False
    ) -> NetworkState:
        raise self._no_networks(name)

    def network_inspect(self, name: str) -> NetworkState | None:
        return None

    def network_connect(self, name: str, container_id: str) -> None:
        raise self._no_networks(name)

    def network_disconnect(self, name: str, container_id: str) -> None:
        return None

    def network_remove(self, name: str) -> bool:
        return True

    def networks_find(self, labels: Mapping[str, str]) -> list[NetworkState]:
        return []

    # --- logs --------------------------------------------------------------------------------

    def logs(self, container_id: str, *, follow: bool = True) -> Iterator[LogChunk]:
        """Tail stdout.log and stderr.log from their beginning; with follow, until the
        process has exited and both files are drained. Order holds within each stream;
        between the two it is the order the reads happened to see."""
        folder = self._folder(container_id)
        files = {stream: open(folder / f"{stream}.log", "rb", buffering=0) for stream in _STREAMS}  # noqa: SIM115 - closed below
        try:
            delay = _POLL_MIN
            last_liveness = time.monotonic()
            while True:
                # Decide before reading: a process that had exited by now has written all
                # it ever will, so the reads below drain the files completely.
                exited = not follow or (folder / "exit_code").exists()
                if not exited and time.monotonic() - last_liveness > _LIVENESS_EVERY:
                    last_liveness = time.monotonic()
                    with contextlib.suppress(ContainerNotFound):
                        exited = not self._state(folder).running
                    exited = exited or not folder.exists()
                got = True
                while got:
                    got = False
                    for stream, handle in files.items():
                        data = handle.read(_READ_SIZE)
                        if data:
                            got = True
                            delay = _POLL_MIN
                            yield LogChunk(stream=stream, data=data)
                if exited:
                    return
                time.sleep(delay)
                delay = min(delay * 2, _POLL_MAX)
        finally:
            for handle in files.values():
                handle.close()
