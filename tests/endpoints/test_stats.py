"""The data plane's statistics flush tells the endpoint's team there is new traffic, so an
open endpoint page redraws its charts (`endpoint.traffic` on /ws/events)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

import endpoints.gateway
from endpoints.gateway import stats
from endpoints.gateway.stats import counters
from endpoints.models import Endpoint, EndpointConfig, InvocationStat, ServingModel
from studio.accounts.models import Team
from studio.asgi import application
from tests.factories import make_team, make_token, make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("redis_available")]


@pytest.fixture(autouse=True)
def _fresh_counters() -> Iterator[None]:
    endpoints.gateway.reset()
    yield
    endpoints.gateway.reset()


def connect(token: str) -> WebsocketCommunicator:
    headers = [
        (b"origin", b"http://localhost"),
        (b"host", b"localhost"),
        (b"authorization", f"Bearer {token}".encode()),
    ]
    return WebsocketCommunicator(application, "/ws/events", headers=headers)


def make_endpoint(team: Team, name: str) -> Endpoint:
    model = ServingModel.objects.create(
        team=team, name=f"{name}-model", image="studiolo/sklearn", artifact_uri="file:///m"
    )
    config = EndpointConfig.objects.create(team=team, name=f"{name}-config")
    config.variants.create(
        name="main", model=model, instance_type="ml.local.small", instance_count=1
    )
    return Endpoint.objects.create(team=team, name=name, config=config, status="InService")


@sync_to_async
def setup() -> tuple[Endpoint, str, str]:
    team, other = make_team("live"), make_team("elsewhere")
    endpoint = make_endpoint(team, "churn")
    return endpoint, make_token(make_user(team)), make_token(make_user(other))


async def test_each_periodic_flush_announces_the_endpoints_with_new_traffic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stats, "FLUSH_INTERVAL_SECONDS", 0.2)
    endpoint, member_token, outsider_token = await setup()
    member, outsider = connect(member_token), connect(outsider_token)
    assert (await member.connect())[0]
    assert (await outsider.connect())[0]

    counters.record(endpoint.pk, "main", 200, 3.0)  # starts the flushing thread
    counters.record(endpoint.pk, "main", 500, 9.0)

    message = await member.receive_json_from(timeout=5)
    assert message["event"] == "endpoint.traffic"
    assert message["team"] == "live"
    assert message["data"] == {"id": endpoint.pk, "name": "churn"}
    assert await sync_to_async(InvocationStat.objects.filter(endpoint=endpoint).count)() == 1
    # once per flush with rows, nothing while there is no traffic, nothing to other teams
    assert await member.receive_nothing(timeout=0.6)
    assert await outsider.receive_nothing(timeout=0.1)
    await member.disconnect()
    await outsider.disconnect()


async def test_a_flush_outside_the_periodic_thread_announces_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Shutdown and tests flush directly: no event (nobody is left to redraw at shutdown)."""
    monkeypatch.setattr(stats, "FLUSH_INTERVAL_SECONDS", 3600)
    endpoint, member_token, _ = await setup()
    member = connect(member_token)
    assert (await member.connect())[0]

    counters.record(endpoint.pk, "main", 200, 3.0)
    assert await sync_to_async(endpoints.gateway.flush_now)() == 1

    assert await member.receive_nothing(timeout=0.5)
    await member.disconnect()


async def test_a_deleted_endpoints_traffic_is_neither_written_nor_announced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stats, "FLUSH_INTERVAL_SECONDS", 3600)
    endpoint, member_token, _ = await setup()
    member = connect(member_token)
    assert (await member.connect())[0]
    counters.record(endpoint.pk, "main", 200, 3.0)
    await sync_to_async(Endpoint.objects.filter(pk=endpoint.pk).delete)()

    assert await sync_to_async(counters.flush_now)(announce=True) == 0

    assert await member.receive_nothing(timeout=0.5)
    await member.disconnect()
