"""A job's log: every line kept in the database, published live, mined for metrics.

The runner feeds raw output chunks to a `LogWriter`. A flusher thread turns pending lines
into one bulk INSERT and one channel-layer message at most every `FLUSH_INTERVAL`, so a
chatty job costs a few writes per second rather than one per line, and a quiet job's line
still reaches the browser within ~50 ms. Metric definitions are applied to each line as it
is flushed and the values recorded in the job's run, and so are the `#studiolo {...}` lines of
the Studiolo client running in the job (`jobs/tracking.py`): those are kept under the stream
`track` and recorded into the run through the same experiments services as the REST API.

A job of several instances feeds each instance's output with its host name (`algo-2`), kept
with each line; the platform's own lines have none. Metric definitions are applied to the
output of `algo-1` only (the host the studio takes the model from; in data-parallel training
every rank prints the same loss, and counting each would repeat every step); `#studiolo`
tracking lines are recorded from every host, since the script chose to write them.

Lines are numbered 1, 2, 3... in the order they arrive (`seq`), and `Job.log_line_count`
counts them in the same transaction as their INSERT: a complete log is exactly the lines
1..log_line_count (`jobs.services.lifecycle` checks it before Completed). A writer of a
worker's runner is fenced by its lease: each batch first bumps the count *on the condition
that the lease generation is still the runner's*, so a runner that lost the job to another
writes no line more (and numbers cannot collide with the new owner's). A database error
does not lose lines: the batch is retried, and `complete` says whether all were stored.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import DatabaseError, IntegrityError, close_old_connections, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from experiments.models import MetricSummary, Run
from experiments.services import Point, metrics_log_batch, run_log_batch
from jobs.models import Job, JobLogLine
from jobs.tracking import TRACK_STREAM, is_tracking_line, parse_tracking_line
from studio.errors import StudioloError

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.05  # seconds a line may wait before it is written and published
MAX_BATCH = 2000  # lines per INSERT
PUBLISH_BATCH = 500  # lines per channel-layer message (Redis messages stay small)
MAX_LINE = 64 * 1024  # longer lines are cut; a runaway line must not exhaust memory
MAX_POINTS_PER_WRITE = 10_000  # metric points per transaction of the metrics service
RETRY_FIRST, RETRY_MAX = 0.1, 5.0  # seconds between attempts to store a batch that failed


class WireLine(TypedDict):
    seq: int
    stream: str
    host: str
    at: str
    line: str


def job_group(job_id: int) -> str:
    return f"job.{job_id}"


def _send(job_id: int, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(job_group(job_id), message)
    except Exception as exc:  # lines are in the database already; a late client reads them there
        log.warning("could not publish to %s: %s: %s", job_group(job_id), type(exc).__name__, exc)


def publish_status(job_id: int, payload: dict[str, Any]) -> None:
    _send(job_id, {"type": "job.status", "status": payload})


class PendingLine(NamedTuple):
    """A line not yet stored. Plain tuples, not model instances: building and saving a
    model object per line cost ~100 µs of CPU, which capped a worker at a few thousand
    lines a second (benchmarks/log_volume.py)."""

    seq: int
    stream: str
    at: datetime
    line: str
    host: str = ""


# The host whose output metric definitions are applied to ("" : a one-instance job's lines
# from before hosts were recorded).
METRICS_HOSTS = frozenset({"", "algo-1"})

SkipKey = str | tuple[str, str]  # a stream (of the one host), or (host, stream)


def to_wire(row: JobLogLine | PendingLine) -> WireLine:
    return {
        "seq": row.seq,
        "stream": row.stream,
        "host": row.host,
        "at": row.at.isoformat(),
        "line": row.line,
    }


@dataclass
class _Metric:
    name: str
    pattern: re.Pattern[str]
    step: int = 0


class LogWriter:
    """Collects a job's output and persists/publishes it in batches from a thread.

    `fence`: the condition on the job's row under which lines may still be written (a
    runner's lease, `Lease.mine()`); when it no longer holds, the writer stops for good
    (`fenced`)."""

    def __init__(
        self,
        job: Job,
        *,
        skip_lines: Mapping[SkipKey, int] | None = None,
        fence: Q | None = None,
    ) -> None:
        self.job_id = job.pk
        self._fence = fence if fence is not None else Q(pk=job.pk)
        self.fenced = False  # another worker owns the job: nothing more is written
        self.error: str | None = None  # why lines could not be stored, if they could not
        self.run_id = job.run_id
        # Params and tags from the job's client are recorded as the job's author.
        self.author_id = job.created_by_id
        # Steps continue from what a previous writer (a worker before a re-attach) recorded.
        recorded = (
            dict(MetricSummary.objects.filter(run_id=job.run_id).values_list("key", "count"))
            if job.run_id
            else {}
        )
        self.metrics = [
            _Metric(m["name"], re.compile(m["regex"]), int(recorded.get(m["name"], 0)))
            for m in job.metric_definitions
        ]
        self._seq = job.log_line_count
        # Lines a previous worker already stored, per host and stream: a re-attached log
        # stream replays them. Counted per stream because only each stream's own order is
        # reproducible. Tracking lines came from stdout.
        self._skip: dict[tuple[str, str], int] = {}
        for key, count in (skip_lines or {}).items():
            host, stream = ("", key) if isinstance(key, str) else key
            if stream == TRACK_STREAM:
                stream = "stdout"
            self._skip[(host, stream)] = self._skip.get((host, stream), 0) + count
        self._partial: dict[tuple[str, str], bytes] = {}
        self._pending: list[PendingLine] = []
        self._lock = threading.Condition()
        self._closed = False
        self._tail: list[str] = []
        self._host_tails: dict[str, list[str]] = {}
        self._thread = threading.Thread(
            target=self._flush_loop, name=f"job-{job.pk}-logs", daemon=True
        )
        self._thread.start()

    # --- producer side (the runner's thread) ---------------------------------------------

    def feed(self, stream: str, data: bytes, *, host: str = "") -> None:
        """Raw output of one instance (`host`, empty for a one-instance job's runner that
        names none); safe to call from one thread per host."""
        key = (host, stream)
        with self._lock:
            buffered = self._partial.get(key, b"") + data
            *complete, rest = buffered.split(b"\n")
            self._partial[key] = rest
            if len(rest) > MAX_LINE:
                complete.append(rest)
                self._partial[key] = b""
        self._add(stream, complete, host=host)

    def system(self, text: str) -> None:
        """A line from the platform itself ("Downloading input data"), kept in the log."""
        self._add("system", [text.encode()])

    def close(self) -> None:
        """Flush partial lines and everything pending; returns when all is written."""
        for (host, stream), rest in list(self._partial.items()):
            if rest:
                self._add(stream, [rest], host=host)
        self._partial.clear()
        with self._lock:
            self._closed = True
            self._lock.notify()
        self._thread.join()

    def tail(self, host: str | None = None) -> list[str]:
        """The last lines seen (for failure reasons): of every host, or of one."""
        with self._lock:
            return list(self._tail if host is None else self._host_tails.get(host, []))

    @property
    def complete(self) -> bool:
        """Every line fed so far is stored (after `close`: the whole log)."""
        with self._lock:
            return not self._pending and not self.fenced and self.error is None

    def _add(self, stream: str, raw_lines: Iterable[bytes], *, host: str = "") -> None:
        now = timezone.now()
        key = (host, stream)
        with self._lock:
            host_tail = self._host_tails.setdefault(host, [])
            for raw in raw_lines:
                if self._skip.get(key, 0) > 0:
                    self._skip[key] -= 1
                    continue
                text = raw[:MAX_LINE].decode("utf-8", errors="replace").rstrip("\r")
                self._seq += 1
                if stream == "stdout" and is_tracking_line(text):
                    self._pending.append(PendingLine(self._seq, TRACK_STREAM, now, text, host))
                    continue  # a record, not something to quote in a failure reason
                self._pending.append(PendingLine(self._seq, stream, now, text, host))
                self._tail.append(text)
                host_tail.append(text)
            del self._tail[:-50]
            del host_tail[:-50]
            if len(self._pending) >= MAX_BATCH:
                self._lock.notify()

    # --- consumer side (the flusher thread) ---------------------------------------------

    def _flush_loop(self) -> None:
        delay = RETRY_FIRST
        try:
            while True:
                with self._lock:
                    if not self._pending and not self._closed:
                        self._lock.wait(timeout=FLUSH_INTERVAL)
                    batch, self._pending = self._pending, []
                    closed = self._closed
                if not batch:
                    if closed:
                        return
                    continue
                try:
                    self._write(batch)
                    delay = RETRY_FIRST
                except _Fenced:
                    log.warning("job %s: lost to another worker; its log is theirs", self.job_id)
                    with self._lock:
                        self.fenced = True
                        self._pending = batch + self._pending
                    return
                except DatabaseError as exc:
                    # Not lost: the batch goes back in front and is tried again (a database
                    # restarting, a lock held too long); `close` waits for it.
                    with self._lock:
                        self._pending = batch + self._pending
                        self.error = f"{type(exc).__name__}: {exc}"
                    if isinstance(exc, IntegrityError):
                        log.error("job %s: log lines refused: %s", self.job_id, exc)
                        return  # the numbering itself is wrong: retrying cannot help
                    log.warning("job %s: storing log lines failed (retrying): %s", self.job_id, exc)
                    connection.close()
                    time.sleep(delay)
                    delay = min(RETRY_MAX, delay * 2)
                    if closed and delay >= RETRY_MAX:
                        return  # closing, and the database is still away: give up, said
                else:
                    with self._lock:
                        self.error = None
        finally:
            connection.close()  # this thread's own database connection

    def _write(self, batch: list[PendingLine]) -> None:
        close_old_connections()
        table = connection.ops.quote_name(JobLogLine._meta.db_table)
        sql = f"INSERT INTO {table} (job_id, seq, stream, host, at, line) VALUES (%s, %s, %s, %s, %s, %s)"  # noqa: S608 - the table name is the model's own, quoted; values are parameters
        adapted: dict[datetime, Any] = {}  # lines of one feed share a time: adapt it once
        isoformat: dict[datetime, str] = {}
        with transaction.atomic(), connection.cursor() as cursor:
            # First, so that the row lock orders us with a take-over: the lines and their
            # count are written only while the job is still ours.
            counted = Job.objects.filter(self._fence).update(
                log_line_count=F("log_line_count") + len(batch)
            )
            if not counted:
                raise _Fenced()
            for start in range(0, len(batch), MAX_BATCH):
                cursor.executemany(
                    sql,
                    [
                        (
                            self.job_id,
                            row.seq,
                            row.stream,
                            row.host,
                            adapted.get(row.at)
                            or adapted.setdefault(
                                row.at, connection.ops.adapt_datetimefield_value(row.at)
                            ),
                            row.line,
                        )
                        for row in batch[start : start + MAX_BATCH]
                    ],
                )
        for start in range(0, len(batch), PUBLISH_BATCH):
            lines: list[WireLine] = [
                {
                    "seq": row.seq,
                    "stream": row.stream,
                    "host": row.host,
                    "at": isoformat.get(row.at) or isoformat.setdefault(row.at, row.at.isoformat()),
                    "line": row.line,
                }
                for row in batch[start : start + PUBLISH_BATCH]
            ]
            _send(self.job_id, {"type": "log.lines", "lines": lines})
        try:
            self._record_metrics(batch)
        except Exception:  # the lines are stored; a metric that could not be must not undo that
            log.exception("job %s: recording metrics from its log failed", self.job_id)

    def _record_metrics(self, batch: list[PendingLine]) -> None:
        points = self._metric_points(batch)
        if self.run_id is not None:
            points += self._record_tracking(batch)
        if points and self.run_id is not None:
            for start in range(0, len(points), MAX_POINTS_PER_WRITE):
                metrics_log_batch(
                    run_id=self.run_id, points=points[start : start + MAX_POINTS_PER_WRITE]
                )
            _send(
                self.job_id,
                {
                    "type": "job.metrics",
                    "points": [
                        {
                            "name": p.key,
                            # JSON has no NaN/Infinity: a browser could not parse the message.
                            "value": p.value if math.isfinite(p.value) else None,
                            "step": p.step,
                            "at": p.timestamp.isoformat(),
                        }
                        for p in points
                    ],
                },
            )

    def _metric_points(self, batch: list[PendingLine]) -> list[Point]:
        points: list[Point] = []
        if not self.metrics:
            return points
        for row in batch:
            if row.stream in ("system", TRACK_STREAM) or row.host not in METRICS_HOSTS:
                continue
            for metric in self.metrics:
                match = metric.pattern.search(row.line)
                if match is None:
                    continue
                value = _to_float(match.group(1))
                if value is None:
                    continue
                points.append(Point(metric.name, value, metric.step, row.at))
                metric.step += 1
        return points

    def _record_tracking(self, batch: list[PendingLine]) -> list[Point]:
        """Params and tags of the batch's tracking lines recorded now, one service call per
        line (a refused line must not take the others with it); their metric points
        returned, to be written with the log metrics. What is refused is said in the log."""
        points: list[Point] = []
        for row in batch:
            if row.stream != TRACK_STREAM:
                continue
            record = parse_tracking_line(row.line)
            points += [Point(p.key, p.value, p.step, p.at) for p in record.metrics]
            problems = [f"line {row.seq}: {problem}" for problem in record.problems]
            if record.params or record.tags:
                try:
                    run_log_batch(
                        run=self._tracked_run(),
                        actor=self._author(),
                        params=record.params,
                        tags=record.tags,
                    )
                except StudioloError as error:
                    problems.append(f"line {row.seq}: {error.message}")
            for problem in problems[:5]:
                self.system(f"studiolo tracking: {problem} (not recorded)")
            if len(problems) > 5:
                self.system(f"studiolo tracking: line {row.seq}: {len(problems) - 5} more refused")
        return points

    def _tracked_run(self) -> Run:
        assert self.run_id is not None  # noqa: S101 - only called for a job with a run
        return Run.objects.select_related("experiment__team").get(pk=self.run_id)

    def _author(self) -> AbstractBaseUser | None:
        if self.author_id is None:
            return None
        return get_user_model().objects.filter(pk=self.author_id).first()


class _Fenced(Exception):
    """The job is no longer the writer's (its runner's lease was taken over)."""


def _to_float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text.strip())
    except ValueError:
        return None


def lines_after(job_id: int, after_seq: int, limit: int = 1000) -> list[JobLogLine]:
    return list(JobLogLine.objects.filter(job_id=job_id, seq__gt=after_seq).order_by("seq")[:limit])
