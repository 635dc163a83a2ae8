"""`run.metrics` live events: announced after the batch commits, throttled per run (at once,
then at most one trailing event per window), nothing for a rolled-back batch. The window is
shared by every process through Redis (tested against the real one, two announcers standing
for two processes); without Redis each process throttles on its own and logging goes on."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from itertools import pairwise
from typing import Any

import pytest
import redis
from django.contrib.auth.models import User
from redis.backoff import NoBackoff
from redis.retry import Retry

from experiments import events
from experiments.events import MetricsAnnouncer, RunTarget, connect_redis
from experiments.models import MetricPoint, Run
from experiments.services import MetricInput, Point, metrics_log_batch, run_log_batch
from studio.errors import ValidationError

TARGET = RunTarget(1, "alpha", "a" * 32, 7)


class Harness:
    """A clock the test moves, timers the test fires, and the events sent."""

    def __init__(self) -> None:
        self.now = 100.0
        self.timers: list[tuple[float, Callable[[], None]]] = []
        self.sent: list[tuple[str, list[str]]] = []
        self.announcer = MetricsAnnouncer(
            interval=2.0,
            clock=lambda: self.now,
            schedule=self.schedule,
            send=self.send,
            connect=None,  # one process: the windows' rules, on a clock the test moves
        )

    def schedule(self, delay: float, work: Callable[[], None]) -> None:
        self.timers.append((self.now + delay, work))

    def send(self, target: RunTarget, keys: Iterable[str]) -> None:
        self.sent.append((target.run_id, sorted(keys)))

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = [timer for timer in self.timers if timer[0] <= self.now]
        self.timers = [timer for timer in self.timers if timer[0] > self.now]
        for _, work in due:
            work()

    def offer(self, *keys: str, run_pk: int = 1, target: RunTarget = TARGET) -> None:
        self.announcer.offer(run_pk, keys, lambda: target)


def test_a_quiet_run_is_announced_at_once() -> None:
    harness = Harness()
    harness.offer("loss")
    assert harness.sent == [(TARGET.run_id, ["loss"])]
    assert harness.timers == []


def test_batches_within_the_window_make_one_trailing_event_with_all_their_keys() -> None:
    harness = Harness()
    harness.offer("loss")
    harness.advance(0.5)
    harness.offer("acc")
    harness.advance(0.5)
    harness.offer("loss", "lr")
    assert len(harness.sent) == 1
    assert harness.announcer.owed() == {TARGET.run_id}  # the trailing event is this process's
    harness.advance(1.0)  # the window ends
    assert harness.sent[1] == (TARGET.run_id, ["acc", "loss", "lr"])
    assert harness.announcer.owed() == set()
    harness.advance(10)
    assert len(harness.sent) == 2  # nothing more was logged


def test_a_steady_stream_is_announced_once_per_window() -> None:
    harness = Harness()
    for _ in range(100):  # a batch every 0.1 s for 10 s
        harness.offer("loss")
        harness.advance(0.1)
    harness.advance(2)
    assert 5 <= len(harness.sent) <= 7


def test_runs_are_throttled_apart() -> None:
    harness = Harness()
    other = RunTarget(1, "alpha", "b" * 32, 7)
    harness.offer("loss", run_pk=1)
    harness.offer("loss", run_pk=2, target=other)
    assert [run_id for run_id, _ in harness.sent] == [TARGET.run_id, other.run_id]


def test_a_run_that_is_gone_is_not_announced() -> None:
    harness = Harness()
    harness.announcer.offer(1, ["loss"], lambda: None)
    assert harness.sent == []


def test_a_failing_channel_layer_does_not_fail_the_logging() -> None:
    def broken(target: RunTarget, keys: Iterable[str]) -> None:
        raise ConnectionError("redis is down")

    MetricsAnnouncer(send=broken, connect=None).offer(1, ["loss"], lambda: TARGET)  # no exception


# --- through the logging services ------------------------------------------------------


@pytest.fixture
def heard(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(events, "send_team_event", lambda **kwargs: sent.append(kwargs))
    events.announcer.reset()
    yield sent
    events.announcer.reset()


def test_logging_metrics_to_a_running_run_announces_them_after_commit(
    run: Run, scientist: User, heard: list[dict[str, Any]], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run_log_batch(
            run=run,
            actor=scientist,
            metrics=[MetricInput("loss", 1.0, 0, 1), MetricInput("acc", 0.5, 0, 1)],
        )
    assert heard == []  # nothing before the commit
    for callback in callbacks:
        callback()
    (event,) = heard
    assert event["event"] == "run.metrics"
    assert event["team_id"] == run.experiment.team_id
    assert event["team_slug"] == run.experiment.team.slug
    assert event["data"] == {
        "run_id": run.run_uuid,
        "experiment_id": run.experiment_id,
        "keys": ["acc", "loss"],
    }


def test_params_and_tags_alone_announce_nothing(
    run: Run, scientist: User, heard: list[dict[str, Any]], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        run_log_batch(run=run, actor=scientist, params=[("lr", "0.1")], tags=[("t", "v")])
    assert heard == []


def test_a_refused_batch_announces_nothing(
    run: Run, scientist: User, heard: list[dict[str, Any]], django_capture_on_commit_callbacks: Any
) -> None:
    run_log_batch(run=run, actor=scientist, params=[("lr", "0.1")])
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ValidationError):
        run_log_batch(
            run=run,
            actor=scientist,
            metrics=[MetricInput("loss", 1.0, 0, 1)],
            params=[("lr", "0.2")],  # changed: the whole batch is refused
        )
    assert heard == []


def test_a_jobs_log_metrics_are_announced_too(
    run: Run, heard: list[dict[str, Any]], django_capture_on_commit_callbacks: Any
) -> None:
    from django.utils import timezone

    with django_capture_on_commit_callbacks(execute=True):
        metrics_log_batch(run_id=run.pk, points=[Point("rmse", 0.3, 1, timezone.now())])
    (event,) = heard
    assert event["data"]["run_id"] == run.run_uuid
    assert event["data"]["keys"] == ["rmse"]


# --- one window for every process, through Redis -------------------------------------------

WINDOW = 0.4  # seconds: short, so the tests wait little; Redis keeps the time


def dead_redis() -> redis.Redis:
    """Nothing listens on port 1: refused at once."""
    return redis.Redis.from_url(
        "redis://127.0.0.1:1/0", socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


class Sent:
    """Events as the channel layer would get them: (process, keys, when)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, list[str], float]] = []
        self._lock = threading.Lock()

    def by(self, process: str) -> Callable[[RunTarget, Iterable[str]], None]:
        def send(target: RunTarget, keys: Iterable[str]) -> None:
            with self._lock:
                self.events.append((process, sorted(keys), time.monotonic()))

        return send

    def __len__(self) -> int:
        return len(self.events)


@pytest.fixture
def prefix(redis_available: None) -> str:
    """Keys of this test alone in the shared Redis."""
    return f"test:run-metrics:{uuid.uuid4().hex}"


def target() -> RunTarget:
    return RunTarget(1, "alpha", uuid.uuid4().hex, 7)


def process(name: str, sent: Sent, prefix: str, **kwargs: Any) -> MetricsAnnouncer:
    return MetricsAnnouncer(interval=WINDOW, send=sent.by(name), prefix=prefix, **kwargs)


def test_two_processes_share_one_window_and_its_trailing_event(prefix: str) -> None:
    sent = Sent()
    web, worker = process("web", sent, prefix), process("worker", sent, prefix)
    run = target()
    web.offer_target(run, ["loss"])
    assert sent.events[0][:2] == ("web", ["loss"])  # a quiet run: at once
    worker.offer_target(run, ["acc"])  # inside web's window: the worker owns its end
    web.offer_target(run, ["lr"])  # and the web process's keys wait for it in Redis
    assert len(sent) == 1

    wait_for(lambda: len(sent) == 2)
    (_, _, first), (by, keys, trailing) = sent.events
    assert (by, keys) == ("worker", ["acc", "lr"])
    assert trailing - first >= WINDOW * 0.9
    time.sleep(WINDOW * 2.5)
    assert len(sent) == 2  # nothing more was logged, nothing more is sent
    worker.offer_target(run, ["loss"])
    assert sent.events[2][:2] == ("worker", ["loss"])  # quiet again: at once, whoever logs


def test_a_stream_through_two_processes_is_announced_once_per_window(prefix: str) -> None:
    sent = Sent()
    processes = [process("web", sent, prefix), process("worker", sent, prefix)]
    run = target()
    started = time.monotonic()
    batches = 0
    while time.monotonic() - started < 2.0:  # a batch every 20 ms, alternating processes
        processes[batches % 2].offer_target(run, ["loss"])
        batches += 1
        time.sleep(0.02)
    processes[0].offer_target(run, ["last"])  # the last batch lands in an open window
    last_logged = time.monotonic()

    wait_for(lambda: any("last" in keys for _, keys, _ in sent.events))
    times = [when for _, _, when in sent.events]
    assert 3 <= len(times) <= 2.0 / WINDOW + 2  # not one per batch (about 100), nor per process
    assert all(later - earlier >= WINDOW * 0.9 for earlier, later in pairwise(times))
    assert times[-1] >= last_logged  # the trailing event comes after the last batch
    assert {by for by, _, _ in sent.events} == {"web", "worker"}


def test_a_batch_costs_one_round_trip_and_none_while_its_process_owns_the_window(
    prefix: str,
) -> None:
    round_trips: list[str] = []

    def counted() -> redis.Redis:
        client = connect_redis()
        register = client.register_script

        def counting(script: str) -> Any:
            run_script = register(script)

            def call(**kwargs: Any) -> Any:
                round_trips.append("close" if "SMEMBERS" in script else "claim")
                return run_script(**kwargs)

            return call

        client.register_script = counting  # type: ignore[method-assign]
        return client

    sent = Sent()
    web = process("web", sent, prefix, connect=counted)
    worker = process("worker", sent, prefix, connect=counted)
    run = target()
    web.offer_target(run, ["loss"])  # leading edge
    worker.offer_target(run, ["loss"])  # owns the trailing event
    for _ in range(10):
        worker.offer_target(run, ["loss"])  # kept in the worker's memory
    for _ in range(3):
        web.offer_target(run, ["acc"])  # joins in Redis
    assert round_trips == ["claim"] * 5
    wait_for(lambda: len(sent) == 2)
    assert round_trips[-1] == "close"
    assert sent.events[1][:2] == ("worker", ["acc", "loss"])


def test_without_redis_each_process_throttles_on_its_own(prefix: str) -> None:
    sent = Sent()
    alone = process("web", sent, prefix, connect=dead_redis)
    run = target()
    alone.offer_target(run, ["loss"])
    alone.offer_target(run, ["acc"])
    assert [keys for _, keys, _ in sent.events] == [["loss"]]
    wait_for(lambda: len(sent) == 2)
    assert sent.events[1][:2] == ("web", ["acc"])


def test_a_dead_redis_does_not_fail_the_batch_and_the_throttle_goes_on_in_process(
    run: Run,
    scientist: User,
    heard: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    cut_off = MetricsAnnouncer(interval=0.3, connect=dead_redis)
    monkeypatch.setattr(events, "announcer", cut_off)
    with django_capture_on_commit_callbacks(execute=True):
        run_log_batch(run=run, actor=scientist, metrics=[MetricInput("loss", 1.0, 0, 1)])
    with django_capture_on_commit_callbacks(execute=True):
        run_log_batch(run=run, actor=scientist, metrics=[MetricInput("acc", 0.5, 1, 2)])
    assert MetricPoint.objects.filter(run_id=run.pk).count() == 2
    assert [event["data"]["keys"] for event in heard] == [["loss"]]  # at once
    wait_for(lambda: len(heard) == 2)
    assert heard[1]["data"]["keys"] == ["acc"]  # the trailing event, from this process
