from __future__ import annotations

from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"

    def ready(self) -> None:
        from jobs.models import JobKind
        from jobs.outputs import job_output_write_refusal
        from jobs.runners import job_runner_register
        from jobs.training import TrainingRunner
        from studio.artifacts.protection import protected_key_checker_register

        # What the platform writes for a job is not the users' to overwrite.
        protected_key_checker_register("jobs.outputs", job_output_write_refusal)
        job_runner_register(JobKind.TRAINING, TrainingRunner)
