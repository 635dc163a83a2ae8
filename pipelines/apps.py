from __future__ import annotations

from django.apps import AppConfig


class PipelinesConfig(AppConfig):
    name = "pipelines"

    def ready(self) -> None:
        from jobs.services.lifecycle import job_ended_hook_register
        from pipelines.tasks import advance_for_job

        # A step's job ended: the orchestrator takes the execution's next steps.
        job_ended_hook_register("pipelines.advance", advance_for_job)
