from __future__ import annotations

from django.apps import AppConfig


def runtime_readiness() -> str:
    """The `runtime` check of `/readyz` and `studiolo doctor`: the container runtime the
    configuration selects, and whether it answers."""
    from jobs.runtime import runtime_status
    from studio.errors import StudioloError

    status = runtime_status()
    if not status.ok:
        raise StudioloError(f"{status.name}: {status.detail}")
    return f"{status.name}: {status.detail}"


class JobsConfig(AppConfig):
    name = "jobs"

    def ready(self) -> None:
        from experiments.services.retention import busy_run_condition_register
        from jobs.outputs import job_output_write_refusal
        from jobs.selectors import runs_of_active_jobs
        from jobs.staging import staged_models_in_use_register, transforms_in_use
        from studio.artifacts.protection import protected_key_checker_register
        from studio.health import readiness_check_register

        # What the platform writes for a job is not the users' to overwrite.
        protected_key_checker_register("jobs.outputs", job_output_write_refusal)
        # A running batch transform keeps its staged model.
        staged_models_in_use_register("jobs.transforms", transforms_in_use)
        # The studio is ready only when the container runtime answers (after the studio's
        # own checks: database, Redis, artifact store).
        readiness_check_register("runtime", runtime_readiness)
        # Retention keeps a deleted run while its job still writes into it (log lines).
        busy_run_condition_register("jobs.active", runs_of_active_jobs)
