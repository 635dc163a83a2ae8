from __future__ import annotations

from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"

    def ready(self) -> None:
        from jobs.staging import staged_models_in_use_register, transforms_in_use

        # A running batch transform keeps its staged model.
        staged_models_in_use_register("jobs.transforms", transforms_in_use)
