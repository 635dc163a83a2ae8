from __future__ import annotations

from django.apps import AppConfig


class EndpointsConfig(AppConfig):
    name = "endpoints"

    def ready(self) -> None:
        from compute.staging import staged_models_in_use_register
        from endpoints.selectors import package_serving_endpoints, staged_model_uris
        from endpoints.services.lifecycle import endpoints_flag_rejected_package
        from registry.selectors import lineage_link_register
        from registry.services.approval import package_rejected_hook_register

        # A worker keeps a staged model while an endpoint may still serve it.
        staged_models_in_use_register("endpoints", staged_model_uris)
        # A package's lineage ends with the endpoints serving it.
        lineage_link_register("endpoints", package_serving_endpoints)
        # Rejecting an approved package flags the endpoints still serving it (in the decision's
        # transaction).
        package_rejected_hook_register("endpoints.flag-serving", endpoints_flag_rejected_package)
