"""Invocation counters: kept in memory by the request path, written to the database by a
background thread every `FLUSH_INTERVAL_SECONDS`, and at shutdown (ASGI lifespan; `atexit`
for other hosts).

One counter per (endpoint, variant, 10-second bucket): requests, 4xx, 5xx (the status the
client got, the gateway's own errors included), latency sum, max and histogram
(`endpoints.metrics`). Each flush *inserts* `InvocationStat` rows, never updates: several web
processes count the same bucket, and a bucket flushed twice by one process simply has two rows;
readers add them up. Recording is a dict update under an uncontended lock; the database is
never touched on the request path.

After each periodic flush, every endpoint that got rows is announced to its team
(`endpoint.traffic` on `/ws/events`), so an open endpoint page redraws its traffic charts:
at most one event per endpoint every FLUSH_INTERVAL_SECONDS, none while it has no traffic.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from datetime import UTC, datetime
from typing import NamedTuple

from django.db import DatabaseError, IntegrityError, connection, transaction

from endpoints.metrics import bucket_index, histogram_from_counts
from endpoints.models import Endpoint, InvocationStat
from studio.events import publish_team_event

logger = logging.getLogger(__name__)

BUCKET_SECONDS = 10
FLUSH_INTERVAL_SECONDS = 5.0
# Counters a failed flush puts back are dropped once their bucket is this old: a database
# that stays down must not make the web process grow without bound.
RETRY_HORIZON_SECONDS = 300

Key = tuple[int, str, int]  # endpoint id, variant name, bucket start (epoch seconds)
TRAFFIC_EVENT = "endpoint.traffic"


class _Owner(NamedTuple):
    """What announcing an endpoint's new statistics needs."""

    name: str
    team_id: int
    team_slug: str


class _Counter:
    __slots__ = ("count", "errors_4xx", "errors_5xx", "histogram", "latency_max", "latency_sum")

    def __init__(self) -> None:
        self.count = 0
        self.errors_4xx = 0
        self.errors_5xx = 0
        self.latency_sum = 0.0
        self.latency_max = 0.0
        self.histogram: dict[int, int] = {}

    def add(self, other: _Counter) -> None:
        self.count += other.count
        self.errors_4xx += other.errors_4xx
        self.errors_5xx += other.errors_5xx
        self.latency_sum += other.latency_sum
        self.latency_max = max(self.latency_max, other.latency_max)
        for index, count in other.histogram.items():
            self.histogram[index] = self.histogram.get(index, 0) + count


class InvocationCounters:
    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards _pending (event loop vs flusher)
        self._flush_lock = threading.Lock()  # one flush at a time (thread, atexit, tests)
        self._start_lock = threading.Lock()
        self._pending: dict[Key, _Counter] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def record(self, endpoint_id: int, variant: str, status: int, latency_ms: float) -> None:
        bucket = int(time.time()) // BUCKET_SECONDS * BUCKET_SECONDS
        index = bucket_index(latency_ms)
        key = (endpoint_id, variant, bucket)
        with self._lock:
            counter = self._pending.get(key)
            if counter is None:
                counter = self._pending[key] = _Counter()
            counter.count += 1
            if 400 <= status < 500:
                counter.errors_4xx += 1
            elif status >= 500:
                counter.errors_5xx += 1
            counter.latency_sum += latency_ms
            if latency_ms > counter.latency_max:
                counter.latency_max = latency_ms
            counter.histogram[index] = counter.histogram.get(index, 0) + 1
        if self._thread is None:
            self._start()

    def flush_now(self, *, announce: bool = False) -> int:
        """Write every pending counter; returns the number of rows inserted. With `announce`,
        tell each endpoint's team that it has new statistics (the periodic flush does)."""
        with self._flush_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
            if not pending:
                return 0
            try:
                inserted, written = _insert(pending)
            except DatabaseError:
                logger.exception("gateway: writing invocation statistics failed; kept for later")
                self._put_back(pending)
                return 0
        if announce:
            for endpoint_id, owner in written.items():
                publish_team_event(
                    team_id=owner.team_id,
                    team_slug=owner.team_slug,
                    event=TRAFFIC_EVENT,
                    data={"id": endpoint_id, "name": owner.name},
                )
        return inserted

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=10)
        self._thread = None
        self._stop = threading.Event()

    def discard(self) -> None:
        """Forget every pending counter (tests)."""
        with self._lock:
            self._pending = {}

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            thread = threading.Thread(target=self._run, name="gateway-stats", daemon=True)
            self._thread = thread
            thread.start()

    def _run(self) -> None:
        stop = self._stop
        while not stop.wait(FLUSH_INTERVAL_SECONDS):
            try:
                self.flush_now(announce=True)
            finally:
                # This thread sleeps between flushes; it holds no connection meanwhile.
                connection.close()
        self.flush_now()
        connection.close()

    def _put_back(self, pending: dict[Key, _Counter]) -> None:
        horizon = int(time.time()) - RETRY_HORIZON_SECONDS
        with self._lock:
            for key, counter in pending.items():
                if key[2] < horizon:
                    continue
                current = self._pending.get(key)
                if current is None:
                    self._pending[key] = counter
                else:
                    current.add(counter)


def _insert(pending: dict[Key, _Counter]) -> tuple[int, dict[int, _Owner]]:
    """Insert the rows; returns how many, and the endpoints that got rows."""
    # An endpoint deleted since its requests were counted takes its statistics with it.
    alive = {
        pk: _Owner(name, team_id, team_slug)
        for pk, name, team_id, team_slug in Endpoint.objects.filter(
            id__in={key[0] for key in pending}
        ).values_list("id", "name", "team_id", "team__slug")
    }
    rows = [
        InvocationStat(
            endpoint_id=endpoint_id,
            variant_name=variant,
            bucket_start=datetime.fromtimestamp(bucket, tz=UTC),
            count=counter.count,
            errors_4xx=counter.errors_4xx,
            errors_5xx=counter.errors_5xx,
            latency_sum_ms=counter.latency_sum,
            latency_max_ms=counter.latency_max,
            latency_histogram=histogram_from_counts(counter.histogram.items()),
        )
        for (endpoint_id, variant, bucket), counter in pending.items()
        if endpoint_id in alive
    ]
    try:
        with transaction.atomic():
            InvocationStat.objects.bulk_create(rows)
    except IntegrityError:
        # An endpoint was deleted between the check and the insert: row by row, losing only that
        # endpoint's rows.
        inserted, written = 0, {}
        for row in rows:
            try:
                with transaction.atomic():
                    row.save(force_insert=True)
            except IntegrityError:
                continue
            inserted += 1
            written[row.endpoint_id] = alive[row.endpoint_id]
        return inserted, written
    return len(rows), {row.endpoint_id: alive[row.endpoint_id] for row in rows}


counters = InvocationCounters()
atexit.register(counters.flush_now)
