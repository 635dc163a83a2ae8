from __future__ import annotations

from django.urls import path

from jobs.consumers import JobLogsConsumer

websocket_urlpatterns = [
    path("ws/jobs/<int:job_id>/logs", JobLogsConsumer.as_asgi()),
]
