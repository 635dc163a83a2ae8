"""Metric points buffered in memory and handed on in batches by a background thread.

A batch goes out when the buffer holds `batch_size` points, when its oldest point has waited
`interval` seconds, when someone flushes, and when the run ends. A batch that fails in a way
that may pass (the studio restarting, a timeout) is sent again after a backoff, for as long
as the run lasts: nothing buffered is dropped. Only a refusal (a 4xx: a bad key, a run that
has ended) drops its batch, and the error is raised in the caller's thread at its next call.
When the studio stays away and the buffer reaches `max_buffered` points, logging waits for
room (back-pressure) rather than growing without bound.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import NamedTuple

from studiolo._http import RetryPolicy, Transient
from studiolo.errors import StudioloError, TransportError


class Metric(NamedTuple):
    key: str
    value: float
    step: int
    timestamp: int  # milliseconds since the epoch


class Flusher:
    def __init__(
        self,
        send: Callable[[list[Metric]], None],
        *,
        interval: float,
        batch_size: int,
        max_buffered: int,
        retry: RetryPolicy,
        name: str,
    ) -> None:
        self._send = send
        self._interval = interval
        self._batch_size = batch_size
        self._max_buffered = max(max_buffered, batch_size)
        self._retry = retry
        self._cond = threading.Condition()
        self._points: deque[Metric] = deque()
        self._oldest: float | None = None  # when the oldest buffered point arrived (monotonic)
        self._in_flight = 0
        self._flushing = 0  # callers waiting in flush()
        self._closing = False
        self._give_up_at: float | None = None
        self._last_failure: str | None = None
        self._errors: list[StudioloError] = []
        self.sent = 0  # points the studio has taken
        self.lost = 0  # points dropped when the run ended with the studio unreachable
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    # --- the caller's side ----------------------------------------------------------------

    def add(self, points: Iterable[Metric]) -> None:
        with self._cond:
            if self._closing:
                raise StudioloError("the run has ended: it takes no more metrics")
            wake = False
            for point in points:
                while len(self._points) >= self._max_buffered and self._thread.is_alive():
                    self._cond.wait(1.0)  # the studio is not keeping up: wait for room
                if self._oldest is None:
                    self._oldest = time.monotonic()
                    wake = True  # the thread sleeps until told: now it has a deadline
                self._points.append(point)
            if wake or len(self._points) >= self._batch_size:
                self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> None:
        """Return once everything buffered so far has been handed on; TransportError when
        `timeout` passes first (the points stay buffered and keep being retried)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()
            try:
                while (self._points or self._in_flight) and self._thread.is_alive():
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise TransportError(
                            f"{len(self._points) + self._in_flight} metric points are not sent "
                            f"yet ({self._last_failure or 'still sending'}); they stay "
                            "buffered and are retried"
                        )
                    self._cond.wait(remaining)
            finally:
                self._flushing -= 1

    def close(self, timeout: float) -> None:
        """Send what is left, retrying for up to `timeout` seconds, then stop the thread.
        Points still unsent then are counted in `lost` and reported by `raise_errors`."""
        with self._cond:
            self._closing = True
            self._give_up_at = time.monotonic() + timeout
            self._cond.notify_all()
        # The thread may be inside a request (bounded by the HTTP timeout) when time is up.
        self._thread.join(timeout + 60)
        with self._cond:
            left = len(self._points) + self._in_flight
            if left:
                self._lose(left)
                self._points.clear()
                self._in_flight = 0

    def raise_errors(self) -> None:
        """Raise the first error of a batch sent in the background, once."""
        with self._cond:
            if not self._errors:
                return
            first, self._errors = self._errors[0], []
        raise first

    # --- the background thread ----------------------------------------------------------

    def _due(self) -> bool:
        if not self._points:
            return False
        if self._closing or self._flushing or len(self._points) >= self._batch_size:
            return True
        return self._oldest is not None and time.monotonic() - self._oldest >= self._interval

    def _loop(self) -> None:
        batch: list[Metric] = []
        attempt = 0
        while True:
            with self._cond:
                if not batch:
                    while not self._due():
                        if self._closing and not self._points:
                            self._cond.notify_all()
                            return
                        wait = None
                        if self._oldest is not None:
                            wait = max(0.0, self._oldest + self._interval - time.monotonic())
                        self._cond.wait(wait)
                    size = min(len(self._points), self._batch_size)
                    batch = [self._points.popleft() for _ in range(size)]
                    self._in_flight = len(batch)
                    self._oldest = time.monotonic() if self._points else None
                    self._cond.notify_all()  # room for a caller waiting on a full buffer
            try:
                self._send(batch)
            except Transient as failure:
                attempt += 1
                with self._cond:
                    self._last_failure = str(failure)
                    if self._give_up_at is not None and time.monotonic() >= self._give_up_at:
                        self._lose(self._in_flight + len(self._points))
                        self._points.clear()
                        self._in_flight, batch = 0, []
                        self._cond.notify_all()
                        return
                    delay = self._retry.delay(attempt, failure.retry_after)
                    if self._give_up_at is not None:
                        delay = min(delay, max(0.0, self._give_up_at - time.monotonic()))
                    self._cond.wait(delay)
                continue  # the same batch again
            except StudioloError as error:  # refused: sending it again cannot help
                with self._cond:
                    self._errors.append(error)
            except Exception as error:  # a bug must not kill the thread and strand the buffer
                with self._cond:
                    self._errors.append(StudioloError(f"sending metrics failed: {error!r}"))
            else:
                with self._cond:
                    self.sent += len(batch)
            attempt = 0
            with self._cond:
                self._in_flight, batch = 0, []
                self._last_failure = None
                self._cond.notify_all()

    def _lose(self, count: int) -> None:
        self.lost += count
        self._errors.append(
            TransportError(
                f"{count} metric points could not be sent before the run ended: "
                f"{self._last_failure or 'the studio did not answer in time'}"
            )
        )
