"""Which runner drives a job, by its kind.

Jobs knows how to lease, watch and end a job, not what every kind of job does in between:
each app that adds a kind registers its runner from its `AppConfig.ready()` (jobs registers
training; the transform app, which sits above the registry and endpoints, registers batch
transform). So `jobs.runner` dispatches without importing any app above it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from jobs.lease import Lease
    from jobs.models import Job


class Runner(Protocol):
    def run(self) -> None:
        """Drive the job to a final state (or raise LeaseLost)."""


RunnerFactory = Callable[["Job", "Lease"], Runner]

_runners: dict[str, RunnerFactory] = {}


def job_runner_register(kind: str, factory: RunnerFactory) -> None:
    """Register (or replace) the runner of one kind of job."""
    _runners[kind] = factory


def job_runner_for(job: Job, lease: Lease) -> Runner | None:
    """The runner for `job`, or None when no installed app runs its kind."""
    factory = _runners.get(job.kind)
    return factory(job, lease) if factory is not None else None
