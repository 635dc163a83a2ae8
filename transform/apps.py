from __future__ import annotations

from django.apps import AppConfig


class TransformConfig(AppConfig):
    name = "transform"

    def ready(self) -> None:
        from compute.staging import staged_models_in_use_register
        from jobs.models import JobKind
        from jobs.runners import job_runner_register
        from transform.runner import TransformRunner
        from transform.selectors import transform_models_in_use

        # jobs.run_job drives transform jobs with this runner.
        job_runner_register(JobKind.TRANSFORM, TransformRunner)
        # A running batch transform keeps its staged model.
        staged_models_in_use_register("transform", transform_models_in_use)
