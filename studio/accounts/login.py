"""Signing in with a password, throttled, every failure audited.

A password check costs the hasher's time on purpose (PBKDF2: about a second of CPU), so a
guesser has to be stopped before the check, not by it. Failures are counted under keys:

- `account:<name>`: the account, tried from a browser that has never signed in to it;
- `device:<id>:<name>`: the account, tried from a browser that has (it carries a signed
  device cookie naming the account, set at each sign-in). An attacker who locks the account
  from elsewhere so never locks its owner out of the browsers they use ("device cookies",
  OWASP): the lock-out cannot be turned into a weapon against a user everywhere;
- `address:<ip>` (IPv6 by its /64): the client address, over every account it tries, so one
  address cannot spray a common password over many accounts.

Past a key's free failures (ACCOUNT_FREE_FAILURES, ADDRESS_FREE_FAILURES) each further one
locks the key for twice as long as the last: 1 s, 2 s, 4 s, ... up to MAX_LOCK_SECONDS. An
attempt under a locked key is refused with the time left (HTTP 429 and Retry-After on the
login page) without running the hasher; under a locked account key it counts as one more
failure (the lock-out grows while someone keeps knocking), under a locked address key not
(one impatient user must not lock out everyone behind the same NAT for longer). The right password is refused as well during a
lock-out: checking it would answer a guess. A count is forgiven one failure per LEAK_SECONDS
without one, so a trickle of typos never adds up, and a guesser held at the cap gets about
four checks an hour per key. A sign-in resets its account key.

The counts live in the database, not in Redis: they must hold across several web processes,
survive a Redis restart (or eviction) that would hand an attacker fresh guesses, commit with
their audit events, and keep sign-in working while Redis is down. An attempt is counted as a
failure before its check (checking and counting are one transaction on locked rows), so
attempts sent in parallel cannot all pass before the first failure is recorded; a right
password takes its count back.

Every failed check is audited (`login.failed`: the name tried, the client address, the
reason). Refused attempts are audited while they lengthen the lock-out; once it is at its
cap, one per key per cap period is, so a flood of refusals cannot fill the append-only log.
"""

from __future__ import annotations

import ipaddress
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core import signing
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from studio.accounts.models import LoginThrottle
from studio.audit.services import audit_record
from studio.errors import StudioloError

ACCOUNT_FREE_FAILURES = 5
ADDRESS_FREE_FAILURES = 20
FIRST_LOCK_SECONDS = 1
MAX_LOCK_SECONDS = 15 * 60
LEAK_SECONDS = 15 * 60
# Past this many doublings the lock-out is at its cap: counts stop growing there, so they
# also leak away within hours.
DOUBLINGS = math.ceil(math.log2(MAX_LOCK_SECONDS / FIRST_LOCK_SECONDS))
# Rows nobody failed under for this long count nothing any more; the beat deletes them.
IDLE_ROW_SECONDS = 24 * 3600
DEVICE_COOKIE = "studiolo_device"
DEVICE_COOKIE_MAX_AGE = 365 * 24 * 3600
_DEVICE_SALT = "studiolo.accounts.login.device"
_USERNAME_MAX = 150  # Django's; longer names cannot exist, and keys must stay short
ANONYMOUS = "anonymous"


class LoginThrottled(StudioloError):
    code = "throttled"
    status = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many failed sign-ins. Try again in {_duration(retry_after)}.")
        self.retry_after = retry_after


class LoginFailed(StudioloError):
    code = "invalid_login"
    status = 401


@dataclass(frozen=True)
class LoginClient:
    """Who is signing in, as far as the request tells: its address (the trusted proxy's
    X-Forwarded-For, studio/forwarded.py) and the device cookie its browser sent."""

    address: str
    device_cookie: str = ""


@dataclass(frozen=True)
class LoginSuccess:
    user: User
    device_cookie: str  # to set on the browser: names the account, valid a year


def password_login(*, username: str, password: str, client: LoginClient) -> LoginSuccess:
    """The user whose password this is; LoginThrottled while a key is locked (no check runs),
    LoginFailed for a wrong name or password or an inactive user."""
    username = username[:_USERNAME_MAX]
    device = _device(client.device_cookie, username)
    account_key = f"device:{device}:{username}" if device else f"account:{username}"
    address_key = f"address:{address_group(client.address)}"
    refused_for = _admit(account_key, address_key, username=username, client=client)
    if refused_for:
        raise LoginThrottled(refused_for)
    user = authenticate(None, username=username, password=password)
    if not isinstance(user, User):
        _record_failure(account_key, address_key, username=username, client=client)
        raise LoginFailed("wrong username or password")
    _record_success(account_key, address_key, user=user, client=client)
    return LoginSuccess(user=user, device_cookie=_device_cookie(username, device))


def login_throttles_purge() -> int:
    """Delete rows that count nothing any more (idle a day, not locked); returns how many."""
    now = timezone.now()
    idle = Q(last_failure_at__isnull=True) | Q(
        last_failure_at__lt=now - timedelta(seconds=IDLE_ROW_SECONDS)
    )
    unlocked = Q(locked_until__isnull=True) | Q(locked_until__lt=now)
    deleted, _ = LoginThrottle.objects.filter(idle & unlocked).delete()
    return deleted


def address_group(address: str) -> str:
    """The unit a client address is counted by: one IPv4 address, or an IPv6 /64 (what one
    subscriber usually gets, so rotating through it gains nothing)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64] or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


# --- the steps -------------------------------------------------------------------------


def _admit(account_key: str, address_key: str, *, username: str, client: LoginClient) -> int:
    """Count the attempt as a failure and let it through (0), or refuse it: the seconds to
    wait. One transaction on the two locked rows, so parallel attempts queue here."""
    with transaction.atomic():
        account, address = _locked(account_key, address_key)
        now = timezone.now()  # once the rows are ours: other attempts may have come first
        account_locked, address_wait = _seconds_left(account, now) > 0, _seconds_left(address, now)
        if account_locked or address_wait:
            # Knocking on a locked account lengthens its lock-out; an address's lock-out
            # (several people behind one NAT) is not lengthened by refusals.
            grew = account_locked and _count(account, now, ACCOUNT_FREE_FAILURES)
            refused_by = account if account_locked else address
            wait = max(_seconds_left(account, now), address_wait)
            if grew or _refusal_audit_due(refused_by, now):
                refused_by.refusal_audited_at = now
                _audit_failure(username, client, reason="throttled", row=refused_by, wait=wait)
            account.save()
            address.save()
            return wait
        _count(account, now, ACCOUNT_FREE_FAILURES)
        _count(address, now, ADDRESS_FREE_FAILURES)
        account.save()
        address.save()
    return 0


def _record_failure(
    account_key: str, address_key: str, *, username: str, client: LoginClient
) -> None:
    """The check failed: the counts made in `_admit` stand, and a lock-out they earned starts
    now, after the hasher's second, not before it."""
    with transaction.atomic():
        account, address = _locked(account_key, address_key)
        now = timezone.now()
        for row, free in ((account, ACCOUNT_FREE_FAILURES), (address, ADDRESS_FREE_FAILURES)):
            _lock_from(row, now, free)
            row.save()
        wait = max(_seconds_left(account, now), _seconds_left(address, now))
        _audit_failure(username, client, reason="invalid_credentials", row=account, wait=wait)


def _record_success(account_key: str, address_key: str, *, user: User, client: LoginClient) -> None:
    with transaction.atomic():
        LoginThrottle.objects.filter(key=account_key).delete()
        address = LoginThrottle.objects.select_for_update().filter(key=address_key).first()
        if address is not None and address.failures:
            address.failures -= 1  # this attempt's count, taken back
            if address.failures < ADDRESS_FREE_FAILURES:
                address.locked_until = None
            address.save(update_fields=["failures", "locked_until"])
        audit_record(
            actor=user,
            action="login.succeeded",
            target=user,
            object_repr=user.get_username(),
            details={"user": user.get_username(), "address": client.address},
        )


# --- counting --------------------------------------------------------------------------


def _locked(account_key: str, address_key: str) -> tuple[LoginThrottle, LoginThrottle]:
    """Both rows, made if new, locked for this transaction (in key order: no deadlock)."""
    for key in sorted((account_key, address_key)):
        LoginThrottle.objects.get_or_create(key=key)
    rows = {
        row.key: row
        for row in LoginThrottle.objects.select_for_update()
        .filter(key__in=[account_key, address_key])
        .order_by("key")
    }
    return rows[account_key], rows[address_key]


def _seconds_left(row: LoginThrottle, now: datetime) -> int:
    if row.locked_until is None or row.locked_until <= now:
        return 0
    return math.ceil((row.locked_until - now).total_seconds())


def _count(row: LoginThrottle, now: datetime, free: int) -> bool:
    """One more failure under the row's key, after the forgiven ones leaked away; returns
    whether the count grew (false at the cap)."""
    before = row.failures
    if row.last_failure_at is not None:
        quiet = max(0.0, (now - row.last_failure_at).total_seconds())
        before = max(0, row.failures - int(quiet // LEAK_SECONDS))
    row.failures = min(before + 1, free + DOUBLINGS)
    row.last_failure_at = now
    _lock_from(row, now, free)
    return row.failures > before


def _lock_from(row: LoginThrottle, now: datetime, free: int) -> None:
    """Past `free` failures, lock the key for 1 s doubled per failure beyond, from `now`."""
    if row.failures < free:
        return
    seconds = min(FIRST_LOCK_SECONDS * 2 ** (row.failures - free), MAX_LOCK_SECONDS)
    until = now + timedelta(seconds=seconds)
    if row.locked_until is None or row.locked_until < until:
        row.locked_until = until


def _refusal_audit_due(row: LoginThrottle, now: datetime) -> bool:
    return row.refusal_audited_at is None or (
        now - row.refusal_audited_at >= timedelta(seconds=MAX_LOCK_SECONDS)
    )


def _audit_failure(
    username: str, client: LoginClient, *, reason: str, row: LoginThrottle, wait: int
) -> None:
    audit_record(
        actor=None,
        actor_name=ANONYMOUS,
        action="login.failed",
        object_type="auth.user",
        object_repr=username,
        details={
            "user": username,
            "address": client.address,
            "reason": reason,
            # Whose count: "account", "device" (the account on a known browser), "address".
            "count": row.key.split(":", 1)[0],
            "failures": row.failures,
            "locked_seconds": wait,
        },
    )


# --- the device cookie -----------------------------------------------------------------


def _device(cookie: str, username: str) -> str | None:
    """The device id of a browser that signed in to `username` before, from its cookie."""
    if not cookie:
        return None
    try:
        value = signing.loads(cookie, salt=_DEVICE_SALT, max_age=DEVICE_COOKIE_MAX_AGE)
    except signing.BadSignature:
        return None
    if not isinstance(value, dict) or value.get("u") != username:
        return None
    device = value.get("d")
    return device if isinstance(device, str) and device.isalnum() else None  # made here: hex


def _device_cookie(username: str, device: str | None) -> str:
    return signing.dumps({"u": username, "d": device or secrets.token_hex(12)}, salt=_DEVICE_SALT)


def _duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    return f"{math.ceil(seconds / 60)} minutes"
