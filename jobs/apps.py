from __future__ import annotations

from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"

    def ready(self) -> None:
        from compute.staging import staged_models_in_use_register
        from experiments.services.retention import busy_run_condition_register
        from jobs.outputs import job_output_write_refusal
        from jobs.selectors import runs_of_active_jobs
        from jobs.work_folders import transforms_in_use
        from studio.artifacts.protection import protected_key_checker_register

        # What the platform writes for a job is not the users' to overwrite.
        protected_key_checker_register("jobs.outputs", job_output_write_refusal)
        # A running batch transform keeps its staged model.
        staged_models_in_use_register("jobs.transforms", transforms_in_use)
        # Retention keeps a deleted run while its job still writes into it (log lines).
        busy_run_condition_register("jobs.active", runs_of_active_jobs)
