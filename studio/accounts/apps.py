from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "studio.accounts"
    label = "accounts"
    verbose_name = "Accounts, teams and tokens"

    def ready(self) -> None:
        from studio.api import schema  # noqa: F401 - registers the OpenAPI auth extension
