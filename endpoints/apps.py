from __future__ import annotations

from django.apps import AppConfig


class EndpointsConfig(AppConfig):
    name = "endpoints"

    def ready(self) -> None:
        from compute.staging import staged_models_in_use_register
        from endpoints.selectors import staged_model_uris

        # A worker keeps a staged model while an endpoint may still serve it.
        staged_models_in_use_register("endpoints", staged_model_uris)
