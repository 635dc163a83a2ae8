"""Live announcements of logged metric points: `run.metrics` team events on `/ws/events`.

An open run page (or compare view) redraws its charts when one of its runs logs points: it
hears `{"run_id", "experiment_id", "keys"}` and fetches only the points after the last step
it has. A training loop may log a batch every few milliseconds, so announcements are
throttled per run to one every THROTTLE_SECONDS: the first batch of a quiet run is announced
at once, and whatever is logged during the rest of the window is announced by one trailing
event when the window ends, so the last points of a run never go unannounced.

Every decision is taken after the batch commits (`transaction.on_commit`): a page never hears
of points it cannot read yet, and a rolled-back batch announces nothing. The throttle lives
in each process (no Redis round trip on the logging path): with several web processes a run
is announced at most once per window per process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from django.db import transaction

from experiments.models import Run
from studio.events import send_team_event

log = logging.getLogger(__name__)

RUN_METRICS_EVENT = "run.metrics"
THROTTLE_SECONDS = 2.0
MAX_EVENT_KEYS = 100  # a page that sees more (or a new key) fetches what it needs anyway
_PRUNE_ABOVE = 4096  # windows kept in memory before the quiet ones are dropped


class RunTarget(NamedTuple):
    """Who hears about a run: its team, and what the page needs to match it."""

    team_id: int
    team_slug: str
    run_id: str  # the public 32-hex id
    experiment_id: int


@dataclass
class _Window:
    target: RunTarget
    sent_at: float
    pending: set[str] | None = field(default=None)  # keys waiting for the trailing event


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


class MetricsAnnouncer:
    """Leading and trailing edge throttle, one window per run."""

    def __init__(
        self,
        *,
        interval: float = THROTTLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        schedule: Schedule = _timer,
        send: Send = _send,
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._schedule = schedule
        self._send = send
        self._lock = threading.Lock()
        self._windows: dict[int, _Window] = {}

    def offer(
        self, run_pk: int, keys: Iterable[str], resolve: Callable[[], RunTarget | None]
    ) -> None:
        """Points of `keys` were committed to the run. `resolve` names its team; it is only
        called for a run this process has not announced recently (it may query)."""
        with self._lock:
            known = run_pk in self._windows
        # Looked up outside the lock: other runs' batches need not wait for this query.
        target = None if known else resolve()
        if not known and target is None:  # deleted meanwhile: nobody to tell
            return
        send_now: tuple[RunTarget, set[str]] | None = None
        with self._lock:
            now = self._clock()
            window = self._windows.get(run_pk)
            if window is None:
                if target is None:  # pruned between the two looks (rare): ask now
                    target = resolve()
                    if target is None:
                        return
                window = self._windows[run_pk] = _Window(target, now - self._interval)
            if window.pending is not None:
                window.pending.update(keys)  # the trailing event is on its way
            elif now - window.sent_at >= self._interval:
                window.sent_at = now
                send_now = (window.target, set(keys))
            else:
                window.pending = set(keys)
                self._schedule(
                    window.sent_at + self._interval - now, lambda: self._trailing(run_pk)
                )
            if len(self._windows) > _PRUNE_ABOVE:
                self._prune(now)
        if send_now is not None:
            self._deliver(*send_now)

    def _trailing(self, run_pk: int) -> None:
        with self._lock:
            window = self._windows.get(run_pk)
            if window is None or window.pending is None:
                return
            keys, window.pending = window.pending, None
            window.sent_at = self._clock()
            target = window.target
        self._deliver(target, keys)

    def _deliver(self, target: RunTarget, keys: set[str]) -> None:
        try:
            self._send(target, keys)
        except Exception:  # a lost live event only means a page redraws later
            log.warning("could not announce new points of run %s", target.run_id, exc_info=True)

    def _prune(self, now: float) -> None:
        quiet = [
            pk
            for pk, window in self._windows.items()
            if window.pending is None and now - window.sent_at >= self._interval
        ]
        for pk in quiet:
            del self._windows[pk]

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()


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
        transaction.on_commit(lambda: announcer.offer(run.pk, names, lambda: target))


def announce_metrics_by_id(run_pk: int, keys: Iterable[str]) -> None:
    """As `announce_metrics`, for a caller that holds only the run's id (a job's log
    metrics); the team is looked up once per run and process, after commit."""
    names = set(keys)
    if names:
        transaction.on_commit(lambda: announcer.offer(run_pk, names, lambda: _target_by_pk(run_pk)))
