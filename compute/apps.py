from __future__ import annotations

from django.apps import AppConfig


def runtime_readiness() -> str:
    """The `runtime` check of `/readyz` and `studiolo doctor`: the container runtime the
    configuration selects, and whether it answers."""
    from compute.runtime import runtime_status
    from studio.errors import StudioloError

    status = runtime_status()
    if not status.ok:
        raise StudioloError(f"{status.name}: {status.detail}")
    return f"{status.name}: {status.detail}"


class ComputeConfig(AppConfig):
    """Containers and nothing about jobs: the runtimes, instance types, framework images,
    serving containers, staged models, and the labels and names of what the studio starts.
    The bottom app above `studio`: it imports no other app of the project."""

    name = "compute"

    def ready(self) -> None:
        from studio.health import readiness_check_register

        # The studio is ready only when the container runtime answers (after the studio's
        # own checks: database, Redis, artifact store).
        readiness_check_register("runtime", runtime_readiness)
