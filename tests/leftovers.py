"""The end of a test run: what the runtimes started in it goes, and nothing of it may survive.

Tests remove what they start, but not always: a test that fails half-way, or a deploy task a
worker runs after the test that sent it has ended, leaves serving containers behind. So the
run removes every container and serving network labelled with its installation (its
temporary STUDIOLO_HOME) and every process-runtime container in it. Then no process the
process runtime started in this run (marked with a state folder under the run's home or its
pytest temporary folder, see compute/runtime/process.py) may still be alive: removing a
container must end everything of it, however it was started.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import psutil

SURVIVOR_DEADLINE = 10.0  # seconds for what was removed to be gone


def remove_this_runs_containers(home: Path) -> None:
    """Only for a run's own temporary home: a STUDIOLO_HOME set to a real studio's folder
    must not lose that studio's containers."""
    if not str(home.resolve()).startswith(tempfile.gettempdir() + "/"):
        return
    from compute.labels import LABEL_INSTANCE
    from compute.runtime import docker_status
    from compute.runtime.process import ProcessRuntime

    process_runtime = ProcessRuntime(home / "runtime" / "process")
    for state in process_runtime.find({}):
        process_runtime.remove(state.id)
    if not docker_status().ok:
        return
    import docker

    client = docker.from_env()
    try:
        label = {"label": f"{LABEL_INSTANCE}={home}"}
        for container in client.containers.list(all=True, filters=label):
            container.remove(force=True)
        for network in client.networks.list(filters=label):
            network.remove()
    finally:
        client.close()


def surviving_processes(*roots: Path) -> list[psutil.Process]:
    """Processes marked by the process runtime with a container folder under `roots` that
    are still alive after SURVIVOR_DEADLINE."""
    from compute.runtime.process_supervisor import MARK_ENV, marked_processes

    prefixes = tuple(str(root.resolve()) + "/" for root in roots)
    deadline = time.monotonic() + SURVIVOR_DEADLINE
    while True:
        found = []
        for process in marked_processes():
            try:
                if process.environ().get(MARK_ENV, "").startswith(prefixes):
                    found.append(process)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def describe_and_kill(processes: list[psutil.Process]) -> str:
    lines = []
    for process in processes:
        try:
            lines.append(f"pid {process.pid}: {' '.join(process.cmdline())[:200]}")
            process.kill()
        except psutil.NoSuchProcess:
            continue
    return "\n".join(lines)
