from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "studio.accounts"
    label = "accounts"
    verbose_name = "Accounts, teams and tokens"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out

        from studio.accounts.grants import session_logged_out
        from studio.api import schema  # noqa: F401 - registers the OpenAPI auth extension

        # Websockets opened with the session close when it is logged out.
        user_logged_out.connect(session_logged_out, dispatch_uid="studiolo-sockets-logout")
