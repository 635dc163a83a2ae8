"""`/ws/events`: live events of every team the user belongs to."""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.generic.websocket import JsonWebsocketConsumer

from studio.accounts.selectors import teams_for_user
from studio.events import team_group


class TeamEventsConsumer(JsonWebsocketConsumer):
    def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            self.close(code=4401)
            return
        self.groups = [team_group(pk) for pk in teams_for_user(user).values_list("pk", flat=True)]
        for group in self.groups:
            async_to_sync(self.channel_layer.group_add)(group, self.channel_name)
        self.accept()

    def team_event(self, message: dict[str, Any]) -> None:
        self.send_json({key: value for key, value in message.items() if key != "type"})
