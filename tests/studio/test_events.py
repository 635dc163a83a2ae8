"""`/ws/events` pushes a team's events to its members, and to nobody else."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User

from studio.accounts import services
from studio.accounts.models import Team
from studio.asgi import application
from tests.factories import make_team, make_token, make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("redis_available")]


def connect(token: str | None) -> WebsocketCommunicator:
    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    return WebsocketCommunicator(application, "/ws/events", headers=headers)


async def test_anonymous_connection_is_refused() -> None:
    communicator = connect(None)
    connected, code = await communicator.connect()
    assert connected is False
    assert code == 4401


async def test_bad_token_is_refused() -> None:
    communicator = connect("stl_wrong")
    connected, _ = await communicator.connect()
    assert connected is False


async def test_member_receives_team_events_and_outsider_does_not() -> None:
    @sync_to_async
    def setup() -> tuple[Team, User, str, str]:
        team, other = make_team("live"), make_team("elsewhere")
        admin = make_user(team, role="admin", username="boss")
        return team, admin, make_token(admin), make_token(make_user(other))

    team, admin, member_token, outsider_token = await setup()
    member, outsider = connect(member_token), connect(outsider_token)
    assert (await member.connect())[0]
    assert (await outsider.connect())[0]

    await sync_to_async(services.membership_set)(
        team=team,
        user=await sync_to_async(make_user)(username="joiner"),
        role="viewer",
        actor=admin,
    )
    message = await member.receive_json_from(timeout=5)
    assert message["event"] == "audit"
    assert message["team"] == "live"
    assert message["data"]["action"] == "membership.added"
    assert message["data"]["actor"] == "boss"
    assert await outsider.receive_nothing(timeout=0.5)
    await member.disconnect()
    await outsider.disconnect()


async def test_foreign_origin_is_refused_but_no_origin_is_allowed() -> None:
    @sync_to_async
    def token() -> str:
        return make_token(make_user(make_team()))

    secret = await token()
    auth = (b"authorization", f"Bearer {secret}".encode())
    foreign = WebsocketCommunicator(
        application, "/ws/events", headers=[(b"origin", b"http://evil.example"), auth]
    )
    assert (await foreign.connect())[0] is False
    cli = WebsocketCommunicator(application, "/ws/events", headers=[auth])
    assert (await cli.connect())[0] is True
    await cli.disconnect()
