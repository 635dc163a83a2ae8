"""`run.metrics` live events: announced after the batch commits, throttled per run (at once,
then at most one trailing event per window), nothing for a rolled-back batch."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User

from experiments import events
from experiments.events import MetricsAnnouncer, RunTarget
from experiments.models import Run
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
            interval=2.0, clock=lambda: self.now, schedule=self.schedule, send=self.send
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
    harness.advance(1.0)  # the window ends
    assert harness.sent[1] == (TARGET.run_id, ["acc", "loss", "lr"])
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

    MetricsAnnouncer(send=broken).offer(1, ["loss"], lambda: TARGET)  # no exception


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
