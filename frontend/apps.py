from __future__ import annotations

from django.apps import AppConfig


class FrontendConfig(AppConfig):
    name = "frontend"

    def ready(self) -> None:
        from frontend import dashboard  # noqa: F401 - registers the studio's own dashboard cards
