from __future__ import annotations

from django.apps import AppConfig


class FrontendConfig(AppConfig):
    name = "frontend"

    def ready(self) -> None:
        # Importing these registers their dashboard cards: the studio's own in `dashboard`,
        # and each domain's in its `cards` module.
        from frontend import dashboard  # noqa: F401
        from frontend.endpoints import cards as endpoints_cards  # noqa: F401
        from frontend.jobs import cards as jobs_cards  # noqa: F401
        from frontend.registry import cards as registry_cards  # noqa: F401
