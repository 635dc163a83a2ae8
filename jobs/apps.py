from __future__ import annotations

from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"

    def ready(self) -> None:
        from compute.staging import staged_models_in_use_register
        from jobs.outputs import job_output_write_refusal
        from jobs.work_folders import transforms_in_use
        from studio.artifacts.protection import protected_key_checker_register

        # What the platform writes for a job is not the users' to overwrite.
        protected_key_checker_register("jobs.outputs", job_output_write_refusal)
        # A running batch transform keeps its staged model.
        staged_models_in_use_register("jobs.transforms", transforms_in_use)
