"""Open websockets end with what let them in: a revoked or expired token, a logged-out
session, a deactivated user close them within 5 s; a user removed from a team stops hearing
its events, and loses a job's log socket. Against the real ASGI server and Redis."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from jobs.models import Job, JobStatus
from studio.accounts import services
from studio.accounts.grants import RECHECK_SECONDS
from studio.accounts.models import ApiToken, Team
from tests.factories import make_team, make_token, make_user

PASSWORD = "pw-for-tests-1"  # what tests.factories.make_user sets
DEADLINE = 5.0  # what the data plane allows a revocation (AUTH_TTL_SECONDS)

pytestmark = pytest.mark.usefixtures("transactional_db")


@pytest.fixture
def open_socket(asgi_server: str) -> Iterator[Callable[..., Any]]:
    """Opens websockets to the test server (a bearer token, or a session cookie as a browser
    sends it with its origin); all closed at the end of the test."""
    from websockets.sync.client import connect

    with ExitStack() as stack:

        def opener(path: str, *, token: str = "", cookie: str = "") -> Any:
            headers = {}
            if token:
                headers["Authorization"] = f"Bearer {token}"
            if cookie:
                headers["Cookie"] = cookie
            return stack.enter_context(
                connect(
                    asgi_server.replace("http://", "ws://") + path,
                    additional_headers=headers,
                    origin=asgi_server if cookie else None,  # type: ignore[arg-type]
                    open_timeout=10,
                )
            )

        yield opener


def seconds_until_closed(socket: Any, started: float, limit: float = 30.0) -> tuple[float, int]:
    """Read (and drop) messages until the server closes the socket: (seconds since
    `started`, close code). Fails if it is still open after `limit`."""
    from websockets.exceptions import ConnectionClosed

    while True:
        left = started + limit - time.monotonic()
        if left <= 0:
            pytest.fail(f"the socket is still open after {limit} s")
        try:
            socket.recv(timeout=left)
        except ConnectionClosed as closed:
            # No close frame from the server (None) fails the code check of the caller.
            return time.monotonic() - started, closed.rcvd.code if closed.rcvd else 1006
        except TimeoutError:
            continue


def events_within(socket: Any, seconds: float) -> list[dict[str, Any]]:
    """Every message the socket gets in the next `seconds`."""
    received = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            received.append(json.loads(socket.recv(timeout=left)))
        except TimeoutError:
            break
    return received


def is_open(socket: Any) -> bool:
    from websockets.protocol import State

    return bool(socket.protocol.state is State.OPEN)


def session_cookie(base: str, username: str) -> str:
    """Sign in through the login page, as a browser: the session cookie for the socket."""
    with httpx.Client(base_url=base) as http:
        token = http.get("/login/").cookies["csrftoken"]
        answer = http.post(
            "/login/",
            data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token},
        )
        assert answer.status_code == 302
        return f"sessionid={http.cookies['sessionid']}; csrftoken={http.cookies['csrftoken']}"


def sign_out(base: str, cookie: str) -> None:
    csrf = cookie.split("csrftoken=")[1]
    answer = httpx.post(
        f"{base}/logout/",
        headers={"Cookie": cookie, "X-CSRFToken": csrf, "Origin": base, "Referer": f"{base}/"},
    )
    assert answer.status_code == 302


@pytest.fixture
def lab() -> tuple[Team, User]:
    team = make_team("lab")
    return team, make_user(team, role="admin", username="ada")


def make_job(team: Team, user: User) -> Job:
    return Job.objects.create(
        team=team,
        name="long-training",
        created_by=user,
        image="studiolo/sklearn:latest",
        instance_type="ml.local.small",
        status=JobStatus.IN_PROGRESS,
    )


# --- tokens ----------------------------------------------------------------------------


def test_revoking_a_token_closes_its_sockets_within_5_s(
    asgi_server: str, lab: tuple[Team, User], open_socket: Callable[..., Any]
) -> None:
    team, ada = lab
    token, secret = services.token_create(user=ada, name="laptop")
    other = make_token(ada)
    events = open_socket("/ws/events", token=secret)
    logs = open_socket(f"/ws/jobs/{make_job(team, ada).pk}/logs", token=secret)
    untouched = open_socket("/ws/events", token=other)

    started = time.monotonic()
    answer = httpx.delete(
        f"{asgi_server}/api/v1/tokens/{token.pk}", headers={"Authorization": f"Bearer {other}"}
    )
    assert answer.status_code == 200
    for socket in (events, logs):
        elapsed, code = seconds_until_closed(socket, started)
        assert code == 4401
        assert elapsed < DEADLINE
    assert is_open(untouched)


def test_a_revocation_nobody_announced_is_found_by_the_periodic_check(
    asgi_server: str, lab: tuple[Team, User], open_socket: Callable[..., Any]
) -> None:
    """As if the `auth.revoked` message were lost (Redis down a moment): the socket reads
    its grant again every RECHECK_SECONDS anyway."""
    _, ada = lab
    token, secret = services.token_create(user=ada, name="laptop")
    socket = open_socket("/ws/events", token=secret)
    started = time.monotonic()
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())  # no message sent
    elapsed, code = seconds_until_closed(socket, started)
    assert code == 4401
    assert elapsed < DEADLINE
    assert RECHECK_SECONDS < DEADLINE


def test_a_token_expiring_closes_its_socket_at_its_expiry(
    asgi_server: str, lab: tuple[Team, User], open_socket: Callable[..., Any]
) -> None:
    _, ada = lab
    expires_at = timezone.now() + timedelta(seconds=2)
    _, secret = services.token_create(user=ada, name="short", expires_at=expires_at)
    socket = open_socket("/ws/events", token=secret)
    started = time.monotonic()
    until_expiry = (expires_at - timezone.now()).total_seconds()
    elapsed, code = seconds_until_closed(socket, started)
    assert code == 4401
    assert until_expiry - 0.05 <= elapsed < until_expiry + DEADLINE


# --- sessions and users ----------------------------------------------------------------


def test_signing_out_closes_that_sessions_sockets_only(
    asgi_server: str, lab: tuple[Team, User], open_socket: Callable[..., Any]
) -> None:
    _, ada = lab
    laptop, phone = session_cookie(asgi_server, "ada"), session_cookie(asgi_server, "ada")
    on_laptop = open_socket("/ws/events", cookie=laptop)
    on_phone = open_socket("/ws/events", cookie=phone)

    started = time.monotonic()
    sign_out(asgi_server, laptop)
    elapsed, code = seconds_until_closed(on_laptop, started)
    assert code == 4401
    assert elapsed < DEADLINE
    assert is_open(on_phone)


def test_a_password_change_closes_session_sockets_not_token_sockets(
    asgi_server: str, lab: tuple[Team, User], open_socket: Callable[..., Any]
) -> None:
    _, ada = lab
    browser = open_socket("/ws/events", cookie=session_cookie(asgi_server, "ada"))
    cli = open_socket("/ws/events", token=make_token(ada))
    started = time.monotonic()
    services.user_password_set(user=ada, password="a-new-long-passphrase-9")
    elapsed, code = seconds_until_closed(browser, started)
    assert code == 4401
    assert elapsed < DEADLINE
    assert is_open(cli)


def test_deactivating_a_user_closes_every_socket_of_theirs(
    asgi_server: str, lab: tuple[Team, User], open_socket: Callable[..., Any]
) -> None:
    team, ada = lab
    sockets = [
        open_socket("/ws/events", cookie=session_cookie(asgi_server, "ada")),
        open_socket("/ws/events", token=make_token(ada)),
        open_socket(f"/ws/jobs/{make_job(team, ada).pk}/logs", token=make_token(ada)),
    ]
    started = time.monotonic()
    services.user_set_active(user=ada, active=False, actor=None)
    for socket in sockets:
        elapsed, code = seconds_until_closed(socket, started)
        assert code == 4401
        assert elapsed < DEADLINE


# --- teams -----------------------------------------------------------------------------


def test_a_user_removed_from_a_team_hears_no_more_of_its_events(
    asgi_server: str, lab: tuple[Team, User], open_socket: Callable[..., Any]
) -> None:
    lab_team, ada = lab
    other_team = make_team("vision")
    bob = make_user(lab_team, role="admin", username="bob")
    services.membership_set(team=other_team, user=bob, role="admin")
    services.membership_set(team=lab_team, user=ada, role="viewer", actor=bob)
    services.membership_set(team=other_team, user=ada, role="viewer", actor=bob)
    socket = open_socket("/ws/events", token=make_token(ada))

    services.membership_remove(team=lab_team, user=ada, actor=bob)
    # Right away, events of both teams: only the team she is still in reaches her.
    services.membership_set(
        team=lab_team, user=make_user(username="carol"), role="viewer", actor=bob
    )
    services.membership_set(
        team=other_team, user=make_user(username="dan"), role="viewer", actor=bob
    )
    heard = events_within(socket, 3.0)
    assert {event["team"] for event in heard} == {"vision"}
    assert [event["data"]["object_repr"] for event in heard] == ["dan in vision"]
    assert is_open(socket)  # still hers for the other team

    # Added back: the socket follows the team again, without reconnecting.
    services.membership_set(team=lab_team, user=ada, role="viewer", actor=bob)
    services.membership_set(
        team=lab_team, user=make_user(username="erin"), role="viewer", actor=bob
    )
    heard = events_within(socket, 3.0)
    assert "erin in lab" in [event["data"]["object_repr"] for event in heard]


def test_a_user_removed_from_the_jobs_team_loses_its_log_socket(
    asgi_server: str, lab: tuple[Team, User], open_socket: Callable[..., Any]
) -> None:
    team, ada = lab
    bob = make_user(team, role="admin", username="bob")
    socket = open_socket(f"/ws/jobs/{make_job(team, ada).pk}/logs", token=make_token(ada))
    started = time.monotonic()
    services.membership_remove(team=team, user=ada, actor=bob)
    elapsed, code = seconds_until_closed(socket, started)
    assert code == 4404  # as if the job did not exist: it is another team's now
    assert elapsed < DEADLINE
