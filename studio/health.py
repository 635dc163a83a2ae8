"""Component checks shared by `/readyz` and `studiolo doctor`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import redis
from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from redis.backoff import NoBackoff
from redis.retry import Retry

from compute.runtime import runtime_status
from studio.artifacts import get_store
from studio.errors import StudioloError

HEARTBEAT_KEY = "studiolo:worker-heartbeat"
# A worker beats every 10 s (see studio.schedules); three missed beats mean it is gone.
HEARTBEAT_STALE_AFTER = 30.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    ms: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _timed(name: str, probe: Callable[[], str]) -> Check:
    start = time.perf_counter()
    try:
        detail = probe()
        ok = True
    except Exception as exc:  # a probe reports every failure; it never raises
        detail = f"{type(exc).__name__}: {exc}".strip()
        ok = False
    return Check(name, ok, detail, round((time.perf_counter() - start) * 1000, 1))


def redis_client() -> redis.Redis:
    # Probes answer fast or fail: no connection retries with backoff (redis-py's default).
    return redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0)
    )


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if pending:
        raise RuntimeError(f"{len(pending)} migrations not applied (run `studiolo migrate`)")
    return f"{connection.vendor} {connection.settings_dict['NAME']}"


def _redis() -> str:
    client = redis_client()
    try:
        client.ping()
        info = client.info("server")
    finally:
        client.close()
    kind = "embedded" if settings.REDIS_EMBEDDED else "external"
    return f"redis {info.get('redis_version', '?')} ({kind})"


def _artifacts() -> str:
    store = get_store()
    store.check()
    return store.describe()


def _runtime() -> str:
    status = runtime_status()
    if not status.ok:
        raise StudioloError(f"{status.name}: {status.detail}")
    return f"{status.name}: {status.detail}"


def runtime_name(check: Check) -> str:
    """The runtime a `runtime` check found ("docker" or "process"); details follow a colon."""
    return check.detail.removeprefix("StudioloError: ").split(":", 1)[0]


def _worker() -> str:
    client = redis_client()
    try:
        raw = client.get(HEARTBEAT_KEY)
    finally:
        client.close()
    if raw is None:
        raise RuntimeError("no worker heartbeat seen (is `studiolo worker` running?)")
    age = time.time() - float(raw)
    if age > HEARTBEAT_STALE_AFTER:
        raise RuntimeError(f"last worker heartbeat {age:.0f} s ago")
    return f"last heartbeat {age:.0f} s ago"


READINESS_CHECKS: dict[str, Callable[[], str]] = {
    "database": _database,
    "redis": _redis,
    "artifact_store": _artifacts,
    "runtime": _runtime,
}


def readiness() -> list[Check]:
    return [_timed(name, probe) for name, probe in READINESS_CHECKS.items()]


def worker_check() -> Check:
    return _timed("worker", _worker)
