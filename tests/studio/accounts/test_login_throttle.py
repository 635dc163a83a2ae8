"""Signing in is throttled per account and per client address with growing lock-outs, a
refused attempt runs no password hasher, and every failure is audited."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.contrib.auth.hashers import MD5PasswordHasher, PBKDF2PasswordHasher
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import F
from django.test import Client

from studio.accounts.login import (
    DEVICE_COOKIE,
    LEAK_SECONDS,
    MAX_LOCK_SECONDS,
    LoginClient,
    LoginFailed,
    LoginThrottled,
    login_throttles_purge,
    password_login,
)
from studio.accounts.models import LoginThrottle
from studio.audit.models import AuditEvent
from tests.factories import make_team, make_user

PASSWORD = "pw-for-tests-1"  # what tests.factories.make_user sets


@pytest.fixture
def ada(db: None) -> User:
    return make_user(make_team("lab"), username="ada")


def sign_in(client: Client, password: str, username: str = "ada", **extra: Any) -> Any:
    return client.post("/login/", {"username": username, "password": password}, **extra)


def sign_out(client: Client) -> None:
    """Through the page, as a browser does: the device cookie stays (Client.logout() would
    drop every cookie)."""
    assert client.post("/logout/").status_code == 302


def pass_time(seconds: float) -> None:
    """Move every count and lock-out `seconds` into the past, as if that much time went by."""
    shift = timedelta(seconds=seconds)
    LoginThrottle.objects.update(
        last_failure_at=F("last_failure_at") - shift, locked_until=F("locked_until") - shift
    )


@pytest.fixture
def hasher_runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every time the (test settings') password hasher runs: a spy, the hasher still works."""
    runs: list[str] = []
    lock = threading.Lock()
    for name in ("verify", "encode"):
        original = getattr(MD5PasswordHasher, name)

        def spy(self: Any, *args: Any, _original: Any = original, _name: str = name) -> Any:
            with lock:
                runs.append(_name)
            return _original(self, *args)

        monkeypatch.setattr(MD5PasswordHasher, name, spy)
    return runs


# --- the login page --------------------------------------------------------------------


def test_wrong_passwords_are_refused_from_the_sixth_with_growing_retry_after(
    client: Client, ada: User
) -> None:
    answers = [sign_in(client, "wrong") for _ in range(30)]

    assert [answer.status_code for answer in answers[:5]] == [200] * 5
    assert all("Please enter a correct username and password" in a.text for a in answers[:5])
    refused = answers[5:]
    assert [answer.status_code for answer in refused] == [429] * 25
    waits = [int(answer["Retry-After"]) for answer in refused]
    # Each refusal doubles the lock-out, up to 15 minutes.
    assert waits[:10] == [2, 4, 8, 16, 32, 64, 128, 256, 512, MAX_LOCK_SECONDS]
    assert waits[10:] == [MAX_LOCK_SECONDS] * 15
    assert "Too many failed sign-ins. Try again in 2 seconds." in refused[0].text
    assert "Try again in 15 minutes." in refused[-1].text


def test_every_failure_is_audited_with_the_name_tried_the_address_and_the_reason(
    client: Client, ada: User
) -> None:
    for _ in range(30):
        sign_in(client, "wrong")
    sign_in(client, "wrong", username="nobody")

    events = list(AuditEvent.objects.filter(action="login.failed").order_by("id"))
    assert {event.actor_name for event in events} == {"anonymous"}
    assert {event.details["address"] for event in events} == {"127.0.0.1"}
    reasons = [(event.details["user"], event.details["reason"]) for event in events]
    # Five checks; refusals while they lengthened the lock-out (ten), then one per 15 minutes
    # at the cap (none more here): a flood of refusals does not flood the log.
    assert reasons == [("ada", "invalid_credentials")] * 5 + [("ada", "throttled")] * 10 + [
        ("nobody", "invalid_credentials")
    ]
    assert events[5].details["locked_seconds"] == 2
    # Ada sees the attempts on her account in her own audit log.
    client.force_login(ada)
    assert client.get("/audit/", {"action": "login."}).text.count("login.failed") == 15


def test_refusals_at_the_cap_are_audited_once_per_cap_period(client: Client, ada: User) -> None:
    for _ in range(16):
        sign_in(client, "wrong")
    audited = AuditEvent.objects.filter(action="login.failed").count()
    sign_in(client, "wrong")
    assert AuditEvent.objects.filter(action="login.failed").count() == audited
    # 15 minutes on, still knocking (so still locked): one more refusal is written.
    LoginThrottle.objects.update(refusal_audited_at=F("refusal_audited_at") - timedelta(minutes=15))
    assert sign_in(client, "wrong").status_code == 429
    assert sign_in(client, "wrong").status_code == 429
    assert AuditEvent.objects.filter(action="login.failed").count() == audited + 1


def test_the_right_password_is_refused_during_the_lock_out_and_works_after(
    client: Client, ada: User
) -> None:
    for _ in range(5):
        sign_in(client, "wrong")
    refused = sign_in(client, PASSWORD)
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) == 2
    assert "_auth_user_id" not in client.session

    pass_time(2)
    signed_in = sign_in(client, PASSWORD)
    assert signed_in.status_code == 302
    assert signed_in["Location"] == "/"
    assert int(client.session["_auth_user_id"]) == ada.pk
    assert AuditEvent.objects.filter(action="login.succeeded", actor=ada).count() == 1
    # The sign-in reset the account's count: five more mistakes before any lock-out.
    client.logout()
    assert [sign_in(client, "wrong").status_code for _ in range(6)] == [200] * 5 + [429]


def test_a_browser_that_signed_in_before_is_not_locked_out_by_others(
    client: Client, ada: User
) -> None:
    assert sign_in(client, PASSWORD).status_code == 302
    cookie = client.cookies[DEVICE_COOKIE]
    assert cookie["httponly"]
    assert cookie["path"] == "/login/"
    sign_out(client)

    attacker = Client()
    for _ in range(20):
        sign_in(attacker, "guess")
    assert sign_in(attacker, PASSWORD).status_code == 429

    # Ada's browser (her device cookie) still gets in, with her password only, and her own
    # mistakes count under its key alone.
    assert sign_in(client, PASSWORD).status_code == 302
    sign_out(client)
    assert [sign_in(client, "typo").status_code for _ in range(6)] == [200] * 5 + [429]
    assert sign_in(attacker, PASSWORD).status_code == 429


def test_a_device_cookie_for_another_account_or_forged_counts_as_none(
    client: Client, ada: User
) -> None:
    make_user(username="bob")
    sign_in(client, PASSWORD, username="bob")  # a device cookie naming bob
    sign_out(client)
    stranger = Client()
    for _ in range(6):
        sign_in(stranger, "guess")
    assert sign_in(client, PASSWORD).status_code == 429  # bob's cookie does not speak for ada
    forged = Client()
    forged.cookies[DEVICE_COOKIE] = "eyJ1IjoiYWRhIiwiZCI6IjAwMDAifQ:forged:signature"
    assert sign_in(forged, PASSWORD).status_code == 429


def test_one_address_trying_many_accounts_is_locked_and_others_are_not(
    client: Client, ada: User
) -> None:
    for number in range(20):
        assert sign_in(client, "Summer2025!", username=f"user{number}").status_code == 200
    refused = sign_in(client, "Summer2025!", username="user20")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) == 1
    # Knocking on does not lengthen an address's lock-out, nor count against the accounts.
    assert int(sign_in(client, "Summer2025!", username="user21")["Retry-After"]) == 1
    refused_names = LoginThrottle.objects.filter(key__in=["account:user20", "account:user21"])
    assert set(refused_names.values_list("failures", flat=True)) == {0}
    assert LoginThrottle.objects.get(key="address:127.0.0.1").failures == 20
    # Another address is unaffected, even for the same names.
    elsewhere = sign_in(Client(), "Summer2025!", username="user20", REMOTE_ADDR="10.0.0.2")
    assert elsewhere.status_code == 200


def test_counts_leak_away_one_failure_per_quarter_hour(client: Client, ada: User) -> None:
    for _ in range(4):
        sign_in(client, "wrong")
    pass_time(2 * LEAK_SECONDS)  # two of the four forgiven
    assert [sign_in(client, "wrong").status_code for _ in range(4)] == [200, 200, 200, 429]


def test_idle_counts_are_purged_and_live_ones_kept(client: Client, ada: User) -> None:
    for _ in range(5):
        sign_in(client, "wrong")
    assert login_throttles_purge() == 0
    pass_time(24 * 3600 + 1)
    assert login_throttles_purge() == 2  # the account's and the address's


# --- the cost of a refusal -------------------------------------------------------------


def test_a_refused_attempt_never_runs_the_password_hasher(
    client: Client, ada: User, hasher_runs: list[str]
) -> None:
    for _ in range(5):
        sign_in(client, "wrong")
    assert hasher_runs  # the five checks ran it
    hasher_runs.clear()
    assert sign_in(client, PASSWORD).status_code == 429
    assert sign_in(client, "wrong", username="nobody-at-all").status_code == 200  # a check
    assert hasher_runs == ["encode"]  # Django hashes for an unknown name too (timing)


@pytest.mark.django_db
def test_a_refused_attempt_costs_a_small_fraction_of_a_password_check(
    settings: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """With Django's real hasher (PBKDF2), CPU time of this thread: a failed check, then a
    refused attempt. Printed figures go to the report (`pytest -s`)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    user = make_user(username="ada")
    user.set_password(PASSWORD)
    user.save()
    client = LoginClient(address="192.0.2.10")

    def cpu_of_attempt() -> float:
        started = time.thread_time()
        with pytest.raises((LoginFailed, LoginThrottled)):
            password_login(username="ada", password="wrong", client=client)
        return time.thread_time() - started

    checks = [cpu_of_attempt() for _ in range(5)]
    refusals = [cpu_of_attempt() for _ in range(20)]
    check, refusal = min(checks), sorted(refusals)[len(refusals) // 2]
    with capsys.disabled():
        print(  # noqa: T201 - the measurement is the point
            f"\nlogin CPU: failed check {check * 1000:.0f} ms "
            f"({PBKDF2PasswordHasher.iterations} PBKDF2 iterations), "
            f"refused attempt {refusal * 1000:.2f} ms (median of 20)"
        )
    assert refusal < check / 20


@pytest.mark.django_db(transaction=True)
def test_parallel_attempts_cannot_slip_past_the_count(hasher_runs: list[str]) -> None:
    """Ten attempts at once: each is counted before its check, so five checks run, the
    fifth locks the account, and the other five are refused."""
    make_user(username="ada")
    outcomes: list[str] = []
    start = threading.Barrier(10)

    def attempt() -> None:
        start.wait()
        try:
            password_login(username="ada", password="wrong", client=LoginClient("192.0.2.20"))
        except LoginFailed:
            outcomes.append("failed")
        except LoginThrottled:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["failed"] * 5 + ["refused"] * 5
    assert hasher_runs.count("verify") == 5


# --- through the real server, behind a proxy -------------------------------------------


@pytest.fixture
def ada_live(transactional_db: None) -> User:
    return make_user(make_team("lab"), username="ada")


def _post_login(base: str, password: str, headers: dict[str, str]) -> httpx.Response:
    with httpx.Client(base_url=base, headers=headers) as http:
        token = http.get("/login/").cookies["csrftoken"]
        return http.post(
            "/login/",
            data={"username": "ada", "password": password, "csrfmiddlewaretoken": token},
        )


def test_behind_a_trusted_proxy_the_forwarded_client_is_counted_and_audited(
    asgi_server: str, ada_live: User, settings: Any
) -> None:
    forwarded = {"X-Forwarded-For": "198.51.100.7"}
    assert _post_login(asgi_server, "wrong", forwarded).status_code == 200
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    assert _post_login(asgi_server, "wrong", forwarded).status_code == 200
    addresses = list(
        AuditEvent.objects.filter(action="login.failed")
        .order_by("id")
        .values_list("details__address", flat=True)
    )
    # Untrusted, the header is the client's word: the peer counts. Trusted: the client does.
    assert addresses == ["127.0.0.1", "198.51.100.7"]
    assert set(LoginThrottle.objects.values_list("key", flat=True)) == {
        "account:ada",
        "address:127.0.0.1",
        "address:198.51.100.7",
    }
