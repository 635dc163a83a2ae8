from __future__ import annotations

from django.urls import path

from jobs.routing import websocket_urlpatterns as job_routes
from studio.consumers import TeamEventsConsumer

websocket_urlpatterns = [
    path("ws/events", TeamEventsConsumer.as_asgi()),
    *job_routes,
]
