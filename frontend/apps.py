from __future__ import annotations

from django.apps import AppConfig


class FrontendConfig(AppConfig):
    name = "frontend"

    def ready(self) -> None:
        # Importing these registers their dashboard cards (studio and jobs cards in
        # `dashboard`, the review inbox card in `models_views`).
        from frontend import dashboard, models_views  # noqa: F401
