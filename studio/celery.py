"""The Celery application: broker from REDIS_URL, periodic tasks from `studio.schedules`."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")

app = Celery("studiolo")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(
    [
        "studio",
        "studio.accounts",
        "studio.audit",
        "studio.webhooks",
        "jobs",
        "registry",
        "experiments",
        "endpoints",
    ]
)


@app.on_after_finalize.connect
def _install_schedules(sender: Celery, **kwargs: object) -> None:
    from studio.schedules import BEAT_SCHEDULE

    sender.conf.beat_schedule = BEAT_SCHEDULE
