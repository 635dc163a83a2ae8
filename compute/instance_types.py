"""Instance types: named cpu/memory/gpu sizes, each with its own Celery queue."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from studio.errors import ValidationError

QUEUE_PREFIX = "jobs."


@dataclass(frozen=True)
class InstanceType:
    name: str
    cpus: float
    memory_mb: int
    gpus: int
    max_count: int = 4  # the most instances of this type one job may use

    @property
    def queue(self) -> str:
        return QUEUE_PREFIX + self.name

    @property
    def memory_bytes(self) -> int:
        return self.memory_mb * 1024 * 1024


def instance_types() -> dict[str, InstanceType]:
    return {
        name: InstanceType(
            name,
            spec["cpus"],
            int(spec["memory_mb"]),
            int(spec["gpus"]),
            int(spec.get("max_count", 4)),
        )
        for name, spec in settings.INSTANCE_TYPES.items()
    }


def instance_type_get(name: str) -> InstanceType:
    types = instance_types()
    if name not in types:
        raise ValidationError(
            f"instance_type: unknown {name!r} (available: {', '.join(sorted(types))})",
            field="instance_type",
        )
    return types[name]


def job_queues() -> list[str]:
    """Every job queue; `studiolo up` and `studiolo worker` consume all of them by default."""
    return [t.queue for t in instance_types().values()]
