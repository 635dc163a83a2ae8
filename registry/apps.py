from __future__ import annotations

from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"

    def ready(self) -> None:
        from registry.services.artifacts import package_artifact_write_refusal
        from studio.artifacts.protection import protected_key_checker_register

        # Users may not overwrite an archive a package was registered (and approved) with.
        protected_key_checker_register("registry.package-artifacts", package_artifact_write_refusal)
