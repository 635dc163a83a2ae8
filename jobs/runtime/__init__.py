"""Container runtimes for jobs and endpoints: `docker` (isolated) and `process` (local).

This module decides which one the configuration selects; the runtimes themselves live in
`jobs.runtime.docker` and `jobs.runtime.process`.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class RuntimeStatus:
    name: str  # "docker" or "process"
    ok: bool
    detail: str


def docker_status(timeout: float = 3.0) -> RuntimeStatus:
    """Ask the Docker engine (DOCKER_HOST or the default socket) whether it answers."""
    import docker  # imported here: the process runtime must work without an engine
    from docker.errors import DockerException

    try:
        client = docker.from_env(timeout=timeout)
        try:
            version = client.version()
        finally:
            client.close()
    except DockerException as exc:
        return RuntimeStatus("docker", False, f"engine not reachable: {exc}")
    return RuntimeStatus("docker", True, f"Docker engine {version.get('Version', '?')}")


def runtime_status() -> RuntimeStatus:
    """The runtime the configuration selects, and whether it can run containers now.

    `auto` picks Docker when an engine answers and falls back to the unisolated process
    runtime otherwise; an explicit `docker` never falls back.
    """
    choice = settings.RUNTIME
    if choice == "process":
        return RuntimeStatus("process", True, "local processes (unisolated)")
    status = docker_status()
    if choice == "docker" or status.ok:
        return status
    return RuntimeStatus("process", True, f"local processes (unisolated); {status.detail}")
