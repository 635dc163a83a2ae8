from __future__ import annotations

from django.urls import path

from studio.consumers import TeamEventsConsumer

websocket_urlpatterns = [
    path("ws/events", TeamEventsConsumer.as_asgi()),
]
