"""What the data plane knows about tokens and endpoints, cached in the process.

Every database read runs in a small dedicated thread pool (never on the event loop), and its
result is kept for a few seconds, so a request on a warm cache does no database query and no
thread hop:

- token -> user and the user's roles in each team: `AUTH_TTL_SECONDS` (5 s), never past the
  token's own expiry. Revoking a token, deactivating a user or changing a role therefore takes
  up to 5 s to reach the data plane (the REST API sees it at once).
- endpoint name -> every endpoint of that name (one per team) with its routing table:
  `ROUTING_TTL_SECONDS` (1 s). After the database switches an endpoint to a new config, no
  request *starts* on an old-config instance later than 1 s after the switch committed (a
  table is dated from the moment its query began). `endpoints.services` relies on this: old
  instances are stopped only a few seconds after the switch.

A hit past half its lifetime starts a background refresh, so under steady traffic entries are
renewed before they expire and requests never wait for the database; concurrent misses of one
key share a single query.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from django.db import close_old_connections, connections
from django.utils import timezone

from endpoints.models import Endpoint, EndpointInstance, InstanceStatus, ProductionVariant
from studio.accounts.models import ApiToken, Membership
from studio.accounts.roles import Action, role_allows
from studio.accounts.services import token_authenticate, token_digest

logger = logging.getLogger(__name__)

AUTH_TTL_SECONDS = 5.0
ROUTING_TTL_SECONDS = 1.0
REFRESH_AHEAD = 0.5  # a hit older than this fraction of its TTL refreshes in the background
MAX_ENTRIES = 10_000  # per cache; unknown tokens and names are cached too, so bound them
DB_THREADS = 2

# --- the database threads ---------------------------------------------------------------

_executor: concurrent.futures.ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _db_executor() -> concurrent.futures.ThreadPoolExecutor:
    global _executor
    if _executor is None:
        with _executor_lock:
            if _executor is None:
                _executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=DB_THREADS, thread_name_prefix="gateway-db"
                )
    return _executor


def shutdown_db_threads() -> None:
    """Close the database threads' connections and stop the threads (tests, which must not
    leave connections open to a test database); new ones start on demand."""
    global _executor
    with _executor_lock:
        executor, _executor = _executor, None
    if executor is None:
        return
    # One job per thread: the barrier keeps each thread on its job until all have started.
    barrier = threading.Barrier(DB_THREADS)

    def close_connections() -> None:
        connections.close_all()
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=5)

    for _ in range(DB_THREADS):
        executor.submit(close_connections)
    executor.shutdown(wait=True)


def _with_connection[A, V](function: Callable[[A], V], argument: A) -> V:
    # What Django's request_started/finished signals do around a request: drop connections
    # that are broken or older than CONN_MAX_AGE, so a long-lived thread behaves like a view.
    close_old_connections()
    try:
        return function(argument)
    finally:
        close_old_connections()


# --- a TTL cache with asynchronous, single-flight loads ---------------------------------


@dataclass(slots=True)
class _Entry[V]:
    value: V
    loaded_at: float  # monotonic time at which the query started
    expires_at: float


class TtlCache[K, A, V]:
    """`await cache.get(key, argument)`: the cached value, or `load(argument)` run in a
    database thread. `load` returns the value and an optional shorter lifetime in seconds."""

    def __init__(self, ttl: float, load: Callable[[A], tuple[V, float | None]]) -> None:
        self.ttl = ttl
        self._load = load
        self._entries: dict[K, _Entry[V]] = {}
        # concurrent.futures (not asyncio) futures: usable from any event loop and thread.
        self._loading: dict[K, concurrent.futures.Future[V]] = {}

    async def get(self, key: K, argument: A) -> V:
        entry = self._entries.get(key)
        now = time.monotonic()
        if entry is not None and now < entry.expires_at:
            if now - entry.loaded_at >= self.ttl * REFRESH_AHEAD and key not in self._loading:
                self._start(key, argument)
            return entry.value
        future = self._loading.get(key) or self._start(key, argument)
        return await asyncio.wrap_future(future)

    def clear(self) -> None:
        self._entries.clear()

    def _start(self, key: K, argument: A) -> concurrent.futures.Future[V]:
        future = _db_executor().submit(self._run, key, argument)
        self._loading[key] = future
        future.add_done_callback(partial(self._finished, key))
        return future

    def _run(self, key: K, argument: A) -> V:
        started = time.monotonic()
        value, lifetime = _with_connection(self._load, argument)
        ttl = self.ttl if lifetime is None else max(0.0, min(self.ttl, lifetime))
        self._entries[key] = _Entry(value, started, started + ttl)
        if len(self._entries) > MAX_ENTRIES:
            self._evict()
        return value

    def _finished(self, key: K, future: concurrent.futures.Future[V]) -> None:
        if self._loading.get(key) is future:
            del self._loading[key]
        if not future.cancelled() and future.exception() is not None:
            # Awaiting callers get the exception; a background refresh only logs it.
            logger.warning("gateway: lookup failed: %s", future.exception())

    def _evict(self) -> None:
        now = time.monotonic()
        for key, entry in list(self._entries.items()):
            if entry.expires_at <= now:
                self._entries.pop(key, None)
        if len(self._entries) > MAX_ENTRIES:
            self._entries.clear()


# --- who is calling ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TeamRole:
    slug: str
    role: str
    may_invoke: bool


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    username: str
    teams: Mapping[int, TeamRole]  # team id -> the user's role there


def _load_principal(secret: str) -> tuple[Principal | None, float | None]:
    user = token_authenticate(secret)  # unknown, revoked, expired, inactive user: None
    if user is None:
        return None, None
    expires_at: datetime | None = (
        ApiToken.objects.filter(digest=token_digest(secret))
        .values_list("expires_at", flat=True)
        .first()
    )
    lifetime = None
    if expires_at is not None:
        lifetime = (expires_at - timezone.now()).total_seconds()
    memberships = Membership.objects.filter(user_id=user.pk).values_list(
        "team_id", "team__slug", "role"
    )
    teams = {
        team_id: TeamRole(slug=slug, role=role, may_invoke=role_allows(role, Action.INVOKE))
        for team_id, slug, role in memberships
    }
    return Principal(user_id=user.pk, username=user.get_username(), teams=teams), lifetime


# --- where requests go ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Instance:
    id: int
    variant: str
    host: str
    port: int
    hostport: bytes  # the Host header


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    weight: float
    instances: tuple[Instance, ...]  # healthy instances of the endpoint's current config


@dataclass(frozen=True, slots=True)
class Route:
    endpoint_id: int
    team_id: int
    name: str
    status: str
    variants: Mapping[str, Variant]  # every variant of the current config, by name


def _load_routes(name: str) -> tuple[tuple[Route, ...], None]:
    """Every endpoint called `name` (at most one per team) with its routing table."""
    endpoints = list(
        Endpoint.objects.filter(name=name).values_list("id", "team_id", "status", "config_id")
    )
    if not endpoints:
        return (), None
    config_ids = {config_id for _, _, _, config_id in endpoints}
    variants: dict[int, list[tuple[str, float]]] = {}
    for config_id, variant_name, weight in ProductionVariant.objects.filter(
        config_id__in=config_ids
    ).values_list("config_id", "name", "initial_weight"):
        variants.setdefault(config_id, []).append((variant_name, weight))
    healthy: dict[tuple[int, int, str], list[Instance]] = {}
    for instance_id, endpoint_id, config_id, variant_name, host, port in (
        EndpointInstance.objects.filter(
            endpoint_id__in=[row[0] for row in endpoints],
            status=InstanceStatus.HEALTHY,
            port__isnull=False,
        )
        .order_by("id")
        .values_list("id", "endpoint_id", "config_id", "variant_name", "host", "port")
    ):
        if port is None:  # excluded by the query; says so to the type checker
            continue
        instance = Instance(
            id=instance_id,
            variant=variant_name,
            host=host,
            port=port,
            hostport=f"{host}:{port}".encode(),
        )
        healthy.setdefault((endpoint_id, config_id, variant_name), []).append(instance)
    routes = []
    for endpoint_id, team_id, status, config_id in endpoints:
        # Instances of another config (the previous one during an update) get no traffic.
        table = {
            variant_name: Variant(
                name=variant_name,
                weight=weight,
                instances=tuple(healthy.get((endpoint_id, config_id, variant_name), ())),
            )
            for variant_name, weight in variants.get(config_id, [])
        }
        routes.append(Route(endpoint_id, team_id, name, status, table))
    return tuple(routes), None


# --- the caches -------------------------------------------------------------------------

principals: TtlCache[str, str, Principal | None] = TtlCache(AUTH_TTL_SECONDS, _load_principal)
routes: TtlCache[str, str, tuple[Route, ...]] = TtlCache(ROUTING_TTL_SECONDS, _load_routes)


async def principal_for(secret: str) -> Principal | None:
    return await principals.get(token_digest(secret), secret)


async def routes_named(name: str) -> tuple[Route, ...]:
    return await routes.get(name, name)


def clear_caches() -> None:
    principals.clear()
    routes.clear()
