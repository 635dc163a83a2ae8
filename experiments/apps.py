from __future__ import annotations

from django.apps import AppConfig
from django.db.backends.signals import connection_created


class ExperimentsConfig(AppConfig):
    name = "experiments"

    def ready(self) -> None:
        from experiments.like import register_sqlite_function

        # The search's LIKE on SQLite (see experiments/like.py), on every new connection.
        connection_created.connect(register_sqlite_function, dispatch_uid="studiolo_like")
