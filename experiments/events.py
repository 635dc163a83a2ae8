"""Live announcements of logged metric points: `run.metrics` team events on `/ws/events`.

An open run page (or compare view) redraws its charts when one of its runs logs points: it
hears `{"run_id", "experiment_id", "keys"}` and fetches only the points after the last step
it has. A training loop may log a batch every few milliseconds, so announcements are
throttled per run to one every THROTTLE_SECONDS: the first batch of a quiet run is announced
at once, and whatever is logged during the rest of the window is announced by one trailing
event when the window ends, so the last points of a run never go unannounced.

Every decision is taken after the batch commits (`transaction.on_commit`): a page never hears
of points it cannot read yet, and a rolled-back batch announces nothing.

The window is shared by every web and worker process through Redis (`RedisWindows`), so a
run is announced once per window however many processes take its batches. The process that
first logs into an open window owns its trailing event: it keeps a timer, and the keys other
processes log meanwhile wait in Redis until that timer collects them. Per batch that costs
one round trip (one Lua script), and none while this process owns the trailing event. Redis
being unreachable never fails a batch: the process then throttles on its own
(`LocalWindows`, the same rules in memory) and tries Redis again after REDIS_RETRY_SECONDS.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import NamedTuple, Protocol

import redis
from django.conf import settings
from django.db import transaction
from redis.backoff import NoBackoff
from redis.retry import Retry

from experiments.models import Run
from studio.events import send_team_event

log = logging.getLogger(__name__)

RUN_METRICS_EVENT = "run.metrics"
THROTTLE_SECONDS = 2.0
MAX_EVENT_KEYS = 100  # a page that sees more (or a new key) fetches what it needs anyway
KEY_PREFIX = "studiolo:run-metrics"
# How long after a failure the throttle stays in memory before it asks Redis again: a Redis
# that is down costs one failed connection per this many seconds, not one per batch.
REDIS_RETRY_SECONDS = 10.0
# Bounds on a Redis call on the logging path: it answers in well under a millisecond, or is
# treated as down (no retries: the in-memory throttle takes over).
REDIS_TIMEOUT_SECONDS = 0.5
_PRUNE_ABOVE = 4096  # windows and run targets kept in memory before the quiet ones are dropped


class RunTarget(NamedTuple):
    """Who hears about a run: its team, and what the page needs to match it."""

    team_id: int
    team_slug: str
    run_id: str  # the public 32-hex id
    experiment_id: int


class Claim(IntEnum):
    """What a batch's keys do in the run's window."""

    SEND = 0  # the window was quiet: announce them now (the leading edge); a window opens
    OWN = 1  # the window is open and nobody waits for its end: send the trailing event then
    JOIN = 2  # another process (or thread) sends the trailing event; the keys wait for it


class Windows(Protocol):
    """Throttle windows per run, keyed by the run's public id."""

    def claim(self, run_id: str, keys: set[str]) -> tuple[Claim, float]:
        """The claim of a batch of `keys`, and for OWN the seconds left in the window."""
        ...

    def close(self, run_id: str) -> set[str]:
        """The window's end, by its owner: the keys that joined it; the trailing event
        opens the next window."""
        ...


# --- the windows in Redis, shared by every process ----------------------------------------

# KEYS: the window (exists while open), the keys waiting for the trailing event, the
# owner's mark. ARGV: the window in ms, how long past the window a waiting owner's mark and
# the waiting keys outlive it (an owner that died leaves nothing behind for long), the keys.
_CLAIM = """
local left = redis.call('PTTL', KEYS[1])
local owned = redis.call('EXISTS', KEYS[3]) == 1
if left <= 0 and not owned then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
  return {0, 0}
end
if left < 0 then left = 0 end
local keep = left + tonumber(ARGV[2])
if not owned then
  redis.call('SET', KEYS[3], '1', 'PX', keep)
  return {1, left}
end
if #ARGV > 2 then
  redis.call('SADD', KEYS[2], unpack(ARGV, 3))
  redis.call('PEXPIRE', KEYS[2], keep)
end
return {2, left}
"""
_CLOSE = """
local keys = redis.call('SMEMBERS', KEYS[2])
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
return keys
"""


def connect_redis() -> redis.Redis:
    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )


class RedisWindows:
    """Each window is a key with the window's expiry; a claim or a close is one atomic
    script, so processes never both take the leading edge or both own the trailing event.
    A run's keys share a hash tag (one Redis Cluster slot, as scripts need)."""

    def __init__(
        self, client: redis.Redis, *, interval: float = THROTTLE_SECONDS, prefix: str = KEY_PREFIX
    ) -> None:
        self._interval_ms = max(1, round(interval * 1000))
        self._prefix = prefix
        self._claim = client.register_script(_CLAIM)
        self._close = client.register_script(_CLOSE)

    def _keys(self, run_id: str) -> list[str]:
        base = f"{self._prefix}:{{{run_id}}}"
        return [f"{base}:window", f"{base}:waiting", f"{base}:owner"]

    def claim(self, run_id: str, keys: set[str]) -> tuple[Claim, float]:
        # An event names at most MAX_EVENT_KEYS keys, the first in sorted order: each
        # batch's first ones are enough to find them.
        args: list[int | str] = [self._interval_ms, self._interval_ms]
        args += sorted(keys)[:MAX_EVENT_KEYS]
        kind, left_ms = self._claim(keys=self._keys(run_id), args=args)
        return Claim(int(kind)), int(left_ms) / 1000

    def close(self, run_id: str) -> set[str]:
        return set(self._close(keys=self._keys(run_id), args=[self._interval_ms]))


# --- the same windows in memory, for one process ------------------------------------------


@dataclass
class _Window:
    opened_at: float
    owned: bool = False
    waiting: set[str] = field(default_factory=set)


class LocalWindows:
    """The Redis windows' rules for this process alone: what a process falls back to when
    Redis cannot be reached (and what tests of the rules use, with a clock they move)."""

    def __init__(
        self, *, interval: float = THROTTLE_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}

    def claim(self, run_id: str, keys: set[str]) -> tuple[Claim, float]:
        with self._lock:
            now = self._clock()
            window = self._windows.get(run_id)
            left = 0.0 if window is None else window.opened_at + self._interval - now
            if window is None or (left <= 0 and not window.owned):
                self._windows[run_id] = _Window(now)
                if len(self._windows) > _PRUNE_ABOVE:
                    self._prune(now)
                return Claim.SEND, 0.0
            if not window.owned:
                window.owned = True
                return Claim.OWN, max(0.0, left)
            window.waiting |= keys
            return Claim.JOIN, max(0.0, left)

    def close(self, run_id: str) -> set[str]:
        with self._lock:
            window = self._windows.pop(run_id, None)
            self._windows[run_id] = _Window(self._clock())
            return window.waiting if window is not None else set()

    def _prune(self, now: float) -> None:
        quiet = [
            run_id
            for run_id, window in self._windows.items()
            if not window.owned and now - window.opened_at >= self._interval
        ]
        for run_id in quiet:
            del self._windows[run_id]


# --- the announcer ----------------------------------------------------------------------------

Schedule = Callable[[float, Callable[[], None]], None]
Send = Callable[[RunTarget, Iterable[str]], None]


def _timer(delay: float, work: Callable[[], None]) -> None:
    timer = threading.Timer(max(0.0, delay), work)
    timer.daemon = True  # a process that exits does not wait for a live announcement
    timer.start()


def _send(target: RunTarget, keys: Iterable[str]) -> None:
    send_team_event(
        team_id=target.team_id,
        team_slug=target.team_slug,
        event=RUN_METRICS_EVENT,
        data={
            "run_id": target.run_id,
            "experiment_id": target.experiment_id,
            "keys": sorted(keys)[:MAX_EVENT_KEYS],
        },
    )


@dataclass
class _Trailing:
    """A trailing event this process owes: the run, the keys logged here, whose window."""

    target: RunTarget
    keys: set[str]
    windows: Windows


class MetricsAnnouncer:
    """Leading and trailing edge throttle, one window per run, shared through Redis.

    `connect` makes the Redis client of the shared windows (called once, when first needed);
    None keeps the windows in this process only."""

    def __init__(
        self,
        *,
        interval: float = THROTTLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        schedule: Schedule = _timer,
        send: Send = _send,
        connect: Callable[[], redis.Redis] | None = connect_redis,
        prefix: str = KEY_PREFIX,
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._schedule = schedule
        self._send = send
        self._connect = connect
        self._prefix = prefix
        self._lock = threading.Lock()
        self._local = LocalWindows(interval=interval, clock=clock)
        self._shared: RedisWindows | None = None
        self._redis_down_until = 0.0
        self._trailing: dict[str, _Trailing] = {}  # by run id: the trailing events owed
        self._targets: dict[int, RunTarget] = {}  # by run pk: the runs announced lately

    def offer(
        self, run_pk: int, keys: Iterable[str], resolve: Callable[[], RunTarget | None]
    ) -> None:
        """Points of `keys` were committed to the run. `resolve` names its team; it is only
        called for a run this process has not announced lately (it may query)."""
        target = self._target(run_pk, resolve)
        if target is not None:  # else deleted meanwhile: nobody to tell
            self.offer_target(target, keys)

    def offer_target(self, target: RunTarget, keys: Iterable[str]) -> None:
        """As `offer`, for a caller that has the run's target at hand."""
        names = set(keys)
        run_id = target.run_id
        with self._lock:
            owed = self._trailing.get(run_id)
            if owed is not None:  # this process sends the trailing event: no round trip
                owed.keys |= names
                return
        windows = self._windows()
        try:
            claim, left = windows.claim(run_id, names)
        except Exception as exc:  # Redis down or slow: never the batch's problem
            self._redis_failed(exc)
            windows = self._local
            claim, left = windows.claim(run_id, names)
        if claim is Claim.SEND:
            self._deliver(target, names)
        elif claim is Claim.OWN:
            with self._lock:
                owed = self._trailing.get(run_id)
                if owed is not None:  # another thread took this window's end meanwhile
                    owed.keys |= names
                    return
                self._trailing[run_id] = _Trailing(target, names, windows)
            self._schedule(left, lambda: self._send_trailing(run_id))

    def _send_trailing(self, run_id: str) -> None:
        with self._lock:
            owed = self._trailing.pop(run_id, None)
        if owed is None:
            return
        keys = owed.keys
        try:
            keys |= owed.windows.close(run_id)
        except Exception as exc:  # the keys other processes logged are lost; ours go out
            self._redis_failed(exc)
        self._deliver(owed.target, keys)

    def _target(self, run_pk: int, resolve: Callable[[], RunTarget | None]) -> RunTarget | None:
        with self._lock:
            target = self._targets.get(run_pk)
        if target is not None:
            return target
        # Looked up outside the lock: other runs' batches need not wait for this query.
        target = resolve()
        if target is not None:
            with self._lock:
                if len(self._targets) >= _PRUNE_ABOVE:
                    self._targets.clear()
                self._targets[run_pk] = target
        return target

    def _windows(self) -> Windows:
        if self._connect is None or self._clock() < self._redis_down_until:
            return self._local
        if self._shared is None:
            try:
                client = self._connect()
                self._shared = RedisWindows(client, interval=self._interval, prefix=self._prefix)
            except Exception as exc:  # a bad REDIS_URL: live events throttle per process
                self._redis_failed(exc)
                return self._local
        return self._shared

    def _redis_failed(self, exc: Exception) -> None:
        with self._lock:
            if self._clock() < self._redis_down_until:
                return
            self._redis_down_until = self._clock() + REDIS_RETRY_SECONDS
        log.warning(
            "live-event throttle: Redis unreachable (%s: %s); throttling in this process for "
            "%.0f s",
            type(exc).__name__,
            exc,
            REDIS_RETRY_SECONDS,
        )

    def _deliver(self, target: RunTarget, keys: set[str]) -> None:
        try:
            self._send(target, keys)
        except Exception:  # a lost live event only means a page redraws later
            log.warning("could not announce new points of run %s", target.run_id, exc_info=True)

    def owed(self) -> set[str]:
        """The runs (ids) whose trailing event this process still owes."""
        with self._lock:
            return set(self._trailing)

    def reset(self) -> None:
        """Forget this process's state (tests). Windows in Redis expire on their own."""
        with self._lock:
            self._trailing.clear()
            self._targets.clear()
            self._redis_down_until = 0.0
            self._shared = None
        self._local = LocalWindows(interval=self._interval, clock=self._clock)


announcer = MetricsAnnouncer()


def _target_of(run: Run) -> RunTarget:
    team = run.experiment.team
    return RunTarget(team.pk, team.slug, run.run_uuid, run.experiment_id)


def _target_by_pk(run_pk: int) -> RunTarget | None:
    row = (
        Run.objects.filter(pk=run_pk)
        .values_list("experiment__team_id", "experiment__team__slug", "run_uuid", "experiment_id")
        .first()
    )
    return None if row is None else RunTarget(*row)


def announce_metrics(run: Run, keys: Iterable[str]) -> None:
    """Call inside the transaction that wrote the points of `keys` to `run` (whose
    experiment and team are loaded)."""
    names = set(keys)
    if names:
        target = _target_of(run)
        transaction.on_commit(lambda: announcer.offer_target(target, names))


def announce_metrics_by_id(run_pk: int, keys: Iterable[str]) -> None:
    """As `announce_metrics`, for a caller that holds only the run's id (a job's log
    metrics); the team is looked up once per run and process, after commit."""
    names = set(keys)
    if names:
        transaction.on_commit(lambda: announcer.offer(run_pk, names, lambda: _target_by_pk(run_pk)))
