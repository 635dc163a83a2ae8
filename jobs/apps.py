from __future__ import annotations

from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"

    def ready(self) -> None:
        from experiments.services.retention import busy_run_condition_register
        from jobs.models import JobKind
        from jobs.outputs import job_output_write_refusal
        from jobs.processing import ProcessingRunner
        from jobs.runners import job_runner_register
        from jobs.selectors import runs_of_active_jobs
        from jobs.training import TrainingRunner
        from studio.artifacts.protection import protected_key_checker_register

        # What the platform writes for a job is not the users' to overwrite.
        protected_key_checker_register("jobs.outputs", job_output_write_refusal)
        job_runner_register(JobKind.TRAINING, TrainingRunner)
        job_runner_register(JobKind.PROCESSING, ProcessingRunner)
        # Retention keeps a deleted run while its job still writes into it (log lines).
        busy_run_condition_register("jobs.active", runs_of_active_jobs)
