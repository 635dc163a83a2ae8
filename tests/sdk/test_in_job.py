"""Inside a job (STUDIOLO_RUN_ID set by the platform, no STUDIOLO_URL): the client writes
`#studiolo {...}` lines on stdout and copies artifacts below /opt/ml/output/artifacts. What
it writes is read back with the studio's own parser (jobs/tracking.py): the two halves of
the protocol are checked against each other."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import studiolo
from studiolo import ConfigurationError

from jobs.tracking import MARKER, parse_tracking_line

RUN_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def in_job(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The environment the runner gives a job: its run, and /opt/ml relocated."""
    monkeypatch.setenv("STUDIOLO_RUN_ID", RUN_ID)
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path / "opt_ml"))
    return tmp_path / "opt_ml"


def tracking_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if MARKER in line]


def test_records_become_lines_the_job_log_pipeline_parses(
    in_job: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = studiolo.start_run("ignored: the job's run is the run", tags={"stage": "dev"})
    assert run.in_job
    assert run.run_id == RUN_ID
    run.log_params({"lr": 0.1, "layers": [64, 32], "early": False})
    print("epoch 1 done")  # noqa: T201 - a training script prints too
    run.log_metric("loss", 0.5, step=1, timestamp=1_700_000_000_123)
    run.log_metrics({"acc": math.nan, "gap": -math.inf}, timestamp=1_700_000_000_456)
    run.end()
    out = capsys.readouterr().out
    assert "epoch 1 done" in out.splitlines()  # the script's own lines are left alone
    lines = tracking_lines(out)
    assert all(line.startswith("#studiolo {") for line in lines)
    assert all(json.loads(line[len("#studiolo ") :]) for line in lines)  # strict JSON
    records = [parse_tracking_line(line) for line in lines]
    assert all(not r.problems for r in records)
    assert [pair for r in records for pair in r.tags] == [("stage", "dev")]
    assert [pair for r in records for pair in r.params] == [
        ("lr", "0.1"),
        ("layers", "[64, 32]"),
        ("early", "false"),
    ]
    metrics = [(p.key, p.value, p.step, p.timestamp_ms) for r in records for p in r.metrics]
    assert metrics[0] == ("loss", 0.5, 1, 1_700_000_000_123)
    assert metrics[1][0] == "acc"
    assert math.isnan(metrics[1][1])
    assert metrics[2] == ("gap", -math.inf, 0, 1_700_000_000_456)


def test_a_big_batch_is_split_into_lines_docker_keeps_whole(
    in_job: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with studiolo.start_run(flush_interval=60) as run:
        for step in range(3000):
            run.log_metric("a/rather/long/metric/name/for/the/line/size", step * 0.001)
    lines = tracking_lines(capsys.readouterr().out)
    assert len(lines) > 3
    assert max(len(line.encode()) for line in lines) <= 16_000
    steps = [p.step for line in lines for p in parse_tracking_line(line).metrics]
    assert steps == list(range(3000))


def test_artifacts_are_copied_where_the_runner_collects_them(
    in_job: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "model.pkl").write_bytes(b"weights")
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "roc.csv").write_text("fpr,tpr\n")
    with studiolo.start_run() as run:
        run.log_artifact(tmp_path / "model.pkl", artifact_path="model/v1")
        run.log_artifact(tmp_path / "plots")
        run.log_artifacts(tmp_path / "plots", artifact_path="flat")
        with pytest.raises(studiolo.StudioloError, match="artifact_path"):
            run.log_artifact(tmp_path / "model.pkl", artifact_path="../outside")
    collected = in_job / "output" / "artifacts"
    assert sorted(
        p.relative_to(collected).as_posix() for p in collected.rglob("*") if p.is_file()
    ) == [
        "flat/roc.csv",
        "model/v1/model.pkl",
        "plots/roc.csv",
    ]
    assert tracking_lines(capsys.readouterr().out) == []  # nothing logged, nothing printed


def test_only_the_jobs_own_run_can_be_recorded_without_network(in_job: Path) -> None:
    with pytest.raises(ConfigurationError, match="only the job's run"):
        studiolo.start_run(run_id="f" * 32)
    same = studiolo.start_run(run_id=RUN_ID)
    same.end()


def test_a_job_with_a_url_records_over_http_instead(
    in_job: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STUDIOLO_URL", "http://127.0.0.1:9")
    assert not studiolo.Client.from_env().in_job
    monkeypatch.delenv("STUDIOLO_URL")
    assert studiolo.Client.from_env().in_job
