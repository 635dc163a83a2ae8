"""`studiolo experiments list` and `studiolo runs list|show|compare` against a real ASGI
server: tables for people (chosen param and metric columns, differences marked), JSON for
scripts, and the API's message with exit 1 when something is not found or refused."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import User

from experiments.models import Experiment, Run
from experiments.services import (
    MetricInput,
    experiment_create,
    experiment_delete,
    run_artifact_put,
    run_create,
    run_log_batch,
    run_update,
)
from studio.accounts.models import Team
from studio.cli.main import main
from tests.factories import make_team, make_token, make_user

T0 = 1_700_000_000_000


@dataclass
class Studio:
    team: Team
    user: User
    experiment: Experiment
    runs: dict[str, Run]


def logged_run(
    experiment: Experiment, user: User, name: str, lr: str, acc: float, **params: str
) -> Run:
    run = run_create(experiment=experiment, name=name, actor=user, start_time=T0)
    run_log_batch(
        run=run,
        actor=user,
        metrics=[MetricInput("acc", acc / 2, 0, T0), MetricInput("acc", acc, 1, T0 + 1)],
        params=[("lr", lr), *params.items()],
        tags=[("stage", "dev")],
    )
    return run


@pytest.fixture
def studio(asgi_server: str, monkeypatch: pytest.MonkeyPatch) -> Studio:
    team = make_team()
    user = make_user(team, role="scientist")
    monkeypatch.setenv("STUDIOLO_URL", asgi_server)
    monkeypatch.setenv("STUDIOLO_TOKEN", make_token(user))
    experiment = experiment_create(team=team, name="churn", actor=user, description="first")
    runs = {
        "slow": logged_run(experiment, user, "slow", "0.01", 0.7, depth="3"),
        "fast": logged_run(experiment, user, "fast", "0.1", 0.9, depth="3"),
        "wild": logged_run(experiment, user, "wild", "0.1", 0.8, depth="5"),
    }
    run_artifact_put(run=runs["slow"], actor=user, path="model/model.pkl", data=b"w")
    run_update(run=runs["slow"], actor=user, status="FINISHED", end_time=T0 + 95_000)
    return Studio(team, user, experiment, runs)


def table(out: str) -> list[list[str]]:
    return [line.split() for line in out.strip().splitlines()]


def test_experiments_list_shows_the_teams_experiments(
    studio: Studio, capsys: pytest.CaptureFixture[str]
) -> None:
    experiment_create(team=studio.team, name="fraud", actor=studio.user)
    gone = experiment_create(team=studio.team, name="gone", actor=studio.user)
    experiment_delete(experiment=gone, actor=studio.user)
    other = make_team()
    experiment_create(team=other, name="not-ours", actor=make_user(other))

    assert main(["experiments", "list"]) == 0
    rows = table(capsys.readouterr().out)
    assert rows[0][:3] == ["ID", "NAME", "TEAM"]
    assert [row[1] for row in rows[1:]] == ["fraud", "churn"]  # newest first

    assert main(["experiments", "list", "--view", "all", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {(e["name"], e["lifecycle"]) for e in listed} == {
        ("fraud", "active"),
        ("churn", "active"),
        ("gone", "deleted"),
    }


def test_runs_list_filters_orders_and_shows_the_columns_it_mentions(
    studio: Studio, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["runs", "list", "churn", "--filter", "params.lr = '0.1'"]
    assert main([*argv, "--order-by", "metrics.acc DESC"]) == 0
    rows = table(capsys.readouterr().out)
    assert rows[0] == [
        "RUN",
        "ID",
        "NAME",
        "STATUS",
        "STARTED",
        "DURATION",
        "PARAMS.LR",
        "METRICS.ACC",
    ]
    assert [row[1] for row in rows[1:]] == ["fast", "wild"]
    assert rows[1][0] == studio.runs["fast"].run_uuid
    assert rows[1][-2:] == ["0.1", "0.9"]
    assert rows[1][2] == "RUNNING"


def test_runs_list_takes_chosen_columns_max_and_json(
    studio: Studio, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["runs", "list", str(studio.experiment.pk), "--columns", "depth,acc,tags.stage"]
    assert main([*argv, "--order-by", "params.lr", "--max", "2"]) == 0
    rows = table(capsys.readouterr().out)
    assert rows[0][-3:] == ["PARAMS.DEPTH", "METRICS.ACC", "TAGS.STAGE"]
    assert len(rows) == 3  # --max 2
    assert rows[1][1] == "slow"
    assert rows[1][3:] == ["2023-11-14", "22:13:20", "1m", "35s", "3", "0.7", "dev"]

    assert main(["runs", "list", "churn", "--filter", "metrics.acc > 0.75", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(r["name"] for r in listed) == ["fast", "wild"]
    assert listed[0]["metrics"]["acc"]["count"] == 2


def test_runs_list_without_filters_picks_some_params_and_metrics(
    studio: Studio, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runs", "list", "churn"]) == 0
    header = table(capsys.readouterr().out)[0]
    assert header[-3:] == ["PARAMS.DEPTH", "PARAMS.LR", "METRICS.ACC"]


def test_runs_list_errors_are_the_apis_message(
    studio: Studio, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runs", "list", "nope"]) == 1
    assert "experiment 'nope' not found" in capsys.readouterr().err
    assert main(["runs", "list", "churn", "--filter", "params.lr ~ 1"]) == 1
    assert "filter" in capsys.readouterr().err


def test_runs_compare_marks_the_differences(
    studio: Studio, capsys: pytest.CaptureFixture[str]
) -> None:
    fast, wild = studio.runs["fast"], studio.runs["wild"]
    assert main(["runs", "compare", fast.run_uuid, wild.run_uuid]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["FIELD", "RUN", "1", "RUN", "2"]
    assert lines[1].split() == ["run", "id", fast.run_uuid, wild.run_uuid]
    rows = {
        line.split()[1] if line.startswith("*") else line.split()[0]: line for line in lines[2:]
    }
    assert rows["name"].split()[-2:] == ["fast", "wild"]
    assert rows["params.depth"].startswith("*")
    assert not rows["params.lr"].startswith("*")
    assert rows["metrics.acc"].startswith("*")
    assert "0.9" in rows["metrics.acc"]
    assert "tags.stage" not in rows  # tags only with --tags

    assert main(["runs", "compare", fast.run_uuid, wild.run_uuid, "--diff-only", "--tags"]) == 0
    shown = capsys.readouterr().out
    assert "params.lr" not in shown
    assert "params.depth" in shown

    assert main(["runs", "compare", fast.run_uuid, wild.run_uuid, "--json"]) == 0
    compared = json.loads(capsys.readouterr().out)
    assert compared["runs"] == [fast.run_uuid, wild.run_uuid]
    depth = next(f for f in compared["fields"] if f["field"] == "params.depth")
    assert depth == {"field": "params.depth", "values": ["3", "5"], "differs": True}


def test_runs_compare_needs_two_runs_it_can_see(
    studio: Studio, capsys: pytest.CaptureFixture[str]
) -> None:
    fast = studio.runs["fast"].run_uuid
    assert main(["runs", "compare", fast, fast]) == 1
    assert "at least two" in capsys.readouterr().err
    assert main(["runs", "compare", fast, "0" * 32]) == 1
    assert f"run {'0' * 32} not found" in capsys.readouterr().err


def test_runs_show_prints_everything_about_a_run(
    studio: Studio, capsys: pytest.CaptureFixture[str]
) -> None:
    run = studio.runs["slow"]
    assert main(["runs", "show", run.run_uuid]) == 0
    out = capsys.readouterr().out
    assert run.run_uuid in out
    assert "churn (id" in out
    assert "FINISHED" in out
    assert "1m 35s" in out
    assert "lr     0.01" in out
    assert "acc     0.7" in out
    assert "model/" in out

    assert main(["runs", "show", run.run_uuid, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["params"] == {"depth": "3", "lr": "0.01"}
    assert shown["artifacts"] == [{"path": "model", "is_dir": True, "size": None}]
