"""The channel layer survives idle periods longer than its blocking read (5 s)."""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import get_channel_layer

pytestmark = [pytest.mark.usefixtures("redis_available"), pytest.mark.slow]


async def test_an_idle_receive_does_not_time_out_then_gets_its_message() -> None:
    layer = get_channel_layer()
    assert layer is not None
    channel = await layer.new_channel()

    async def send_later() -> None:
        await asyncio.sleep(7)  # past channels_redis' 5 s BZPOPMIN
        await layer.send(channel, {"type": "hello"})

    sender = asyncio.create_task(send_later())
    message = await asyncio.wait_for(layer.receive(channel), timeout=15)
    await sender
    assert message == {"type": "hello"}
