"""The in-job tracking protocol: `#studiolo {...}` lines parsed (jobs/tracking.py), and the
job's log writer recording them into the job's run through the experiments services while
keeping each line in the log under the stream `track`."""

from __future__ import annotations

import json
import math

import pytest
from django.contrib.auth.models import User

from experiments.models import MetricPoint, RunParam, RunTag
from experiments.services import experiment_create, run_create
from jobs.logs import LogWriter
from jobs.models import Job, JobLogLine
from jobs.tracking import TRACK_STREAM, is_tracking_line, parse_tracking_line
from studio.accounts.models import Team
from tests.factories import make_team, make_user


def line(**records: object) -> str:
    return "#studiolo " + json.dumps(records, separators=(",", ":"))


# --- the parser ---------------------------------------------------------------------------


def test_metric_param_and_tag_records_are_parsed() -> None:
    record = parse_tracking_line(
        line(
            m=[
                ["loss", 0.5, 3, 1_700_000_000_123],
                ["acc", "NaN", 0, 0],
                ["gap", "-Infinity", 1, 5],
            ],
            p=[["lr", "0.1"]],
            t=[["stage", "dev"]],
        )
    )
    assert record.problems == []
    first = record.metrics[0]
    assert (first.key, first.value, first.step, first.timestamp_ms) == (
        "loss",
        0.5,
        3,
        1_700_000_000_123,
    )
    assert first.at.isoformat() == "2023-11-14T22:13:20.123000+00:00"
    assert math.isnan(record.metrics[1].value)
    assert record.metrics[2].value == -math.inf
    assert record.params == [("lr", "0.1")]
    assert record.tags == [("stage", "dev")]


def test_a_record_after_another_threads_unfinished_print_is_still_found() -> None:
    text = "epoch 3 of 10" + line(m=[["loss", 1, 0, 0]])
    assert is_tracking_line(text)
    assert [p.key for p in parse_tracking_line(text).metrics] == ["loss"]
    assert not is_tracking_line("#studiolo is a studio")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("#studiolo {not json", "not JSON"),
        ("#studiolo {}" + "x", "not JSON"),
        (line(z=[]), "unknown record 'z'"),
        (line(m="loss"), "m: expected a list"),
        (line(m=[["loss", 1]]), "expected [key, value, step, timestamp_ms]"),
        (line(m=[["bad key!", 1, 0, 0]]), "'bad key!' is not a valid name"),
        (line(m=[["loss", "high", 0, 0]]), "'high' is not a number"),
        (line(m=[["loss", 1, 1.5, 0]]), "step: an integer is required"),
        (line(m=[["loss", 1, 0, -1]]), "timestamp: -1 is outside"),
        (line(m=[["loss", 1, 0, 10**15]]), "after the year 9999"),
        (line(p=[["lr", 0.1]]), "expected [key, value] with a string value"),
    ],
)
def test_what_is_malformed_is_described_and_left_out(text: str, problem: str) -> None:
    record = parse_tracking_line(text)
    assert not record.metrics
    assert not record.params
    assert len(record.problems) == 1
    assert problem in record.problems[0]


def test_one_bad_point_does_not_take_the_others_with_it() -> None:
    record = parse_tracking_line(line(m=[["ok", 1, 0, 0], ["no good!", 2, 0, 0], ["ok", 3, 1, 0]]))
    assert [p.value for p in record.metrics] == [1, 3]
    assert len(record.problems) == 1


# --- the log writer -----------------------------------------------------------------------


@pytest.fixture
def job(transactional_db: None) -> Job:
    team: Team = make_team()
    author: User = make_user(team, role="scientist")
    experiment = experiment_create(team=team, name="jobs", actor=author)
    run = run_create(experiment=experiment, name="train-1", actor=author)
    return Job.objects.create(
        team=team,
        name="train-1",
        created_by=author,
        image="studiolo/sklearn:latest",
        instance_type="ml.local.small",
        run=run,
        metric_definitions=[{"name": "printed:loss", "regex": r"loss=([0-9.]+)"}],
    )


def feed(job: Job, *lines: str, skip: dict[str, int] | None = None) -> None:
    writer = LogWriter(Job.objects.get(pk=job.pk), skip_lines=skip)
    writer.feed("stdout", "".join(f"{text}\n" for text in lines).encode())
    writer.close()


def stored(job: Job) -> list[tuple[str, str]]:
    return list(JobLogLine.objects.filter(job=job).order_by("seq").values_list("stream", "line"))


def test_tracking_lines_are_recorded_into_the_jobs_run_and_kept_in_the_log(job: Job) -> None:
    feed(
        job,
        "epoch 1 loss=0.9",
        line(p=[["lr", "0.1"]], t=[["stage", "dev"]]),
        line(m=[["loss", 0.5, 0, 1_700_000_000_000], ["loss", 0.25, 1, 1_700_000_001_000]]),
        "done",
    )
    streams = [stream for stream, _ in stored(job)]
    assert streams == ["stdout", TRACK_STREAM, TRACK_STREAM, "stdout"]
    points = MetricPoint.objects.filter(run=job.run).order_by("key", "step")
    assert [(p.key, p.step, p.value, p.timestamp) for p in points] == [
        ("loss", 0, 0.5, 1_700_000_000_000),
        ("loss", 1, 0.25, 1_700_000_001_000),
        ("printed:loss", 0, 0.9, points[2].timestamp),  # the regex metrics go on as before
    ]
    assert dict(RunParam.objects.filter(run=job.run).values_list("key", "value")) == {"lr": "0.1"}
    assert dict(RunTag.objects.filter(run=job.run).values_list("key", "value")) == {"stage": "dev"}


def test_refusals_are_said_in_the_log_and_spare_the_rest(job: Job) -> None:
    feed(job, line(p=[["lr", "0.1"]]))
    feed(
        job,
        line(p=[["lr", "0.2"]]),  # params are written once
        line(m=[["bad key!", 1, 0, 0], ["fine", 2, 0, 0]]),
        "#studiolo {broken",
    )
    lines = stored(job)
    system = [text for stream, text in lines if stream == "system"]
    assert any("params.lr" in text and "already set" in text for text in system), system
    assert any("'bad key!' is not a valid name" in text for text in system), system
    assert any("not JSON" in text for text in system), system
    assert list(MetricPoint.objects.filter(run=job.run).values_list("key", flat=True)) == ["fine"]
    assert RunParam.objects.get(run=job.run, key="lr").value == "0.1"


def test_a_reattached_writer_counts_tracking_lines_as_the_stdout_they_came_from(job: Job) -> None:
    first = [line(m=[["loss", 1, 0, 0]]), "plain"]
    feed(job, *first)
    # A new worker replays the container's stdout from the start: what was stored is skipped.
    feed(job, *first, line(m=[["loss", 2, 1, 0]]), skip={"stdout": 1, TRACK_STREAM: 1})
    assert [stream for stream, _ in stored(job)] == [TRACK_STREAM, "stdout", TRACK_STREAM]
    assert MetricPoint.objects.filter(run=job.run, key="loss").count() == 2


def test_tracking_lines_stay_out_of_the_failure_reasons_tail(job: Job) -> None:
    writer = LogWriter(Job.objects.get(pk=job.pk))
    writer.feed("stdout", f"Traceback: boom\n{line(m=[['loss', 1, 0, 0]])}\n".encode())
    writer.close()
    assert writer.tail() == ["Traceback: boom"]
