from __future__ import annotations

from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "studio.webhooks"
    label = "webhooks"
    verbose_name = "Outgoing webhooks"

    def ready(self) -> None:
        # Registers `webhooks.deliver` with Celery in every process that sets Django up,
        # workers included, whether or not `studio.celery` autodiscovers this package.
        from studio.webhooks import tasks  # noqa: F401
