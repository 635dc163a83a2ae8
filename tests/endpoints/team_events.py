"""Hearing a team's live events the way `/ws/events` does: a channel of the real channel layer
(Redis) added to the team's group."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from studio.events import team_group


class TeamEvents:
    def __init__(self, layer: Any, channel: str) -> None:
        self.layer = layer
        self.channel = channel

    def take(self, event: str, count: int, *, timeout: float = 30) -> list[dict[str, Any]]:
        """The data of the next `count` events named `event` (others are skipped); fails the
        test when they do not all arrive within `timeout` seconds."""

        async def receive(seconds: float) -> dict[str, Any]:
            return dict(await asyncio.wait_for(self.layer.receive(self.channel), seconds))

        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(found) < count:
            left = deadline - time.monotonic()
            try:
                message = async_to_sync(receive)(max(0.1, left))
            except TimeoutError:
                raise AssertionError(
                    f"heard {len(found)} of {count} {event} events in {timeout} s: {found}"
                ) from None
            if message.get("event") == event:
                found.append(message["data"])
        return found


@contextmanager
def listening(team_id: int) -> Iterator[TeamEvents]:
    layer = get_channel_layer()
    assert layer is not None
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(team_group(team_id), channel)
    try:
        yield TeamEvents(layer, channel)
    finally:
        async_to_sync(layer.group_discard)(team_group(team_id), channel)
