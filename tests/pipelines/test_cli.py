"""`studiolo pipelines ...` against a real ASGI server: create, update, list, describe,
versions and diff; a refusal prints the API's message (naming where) and exits 1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipelines.models import Pipeline, PipelineExecution
from studio.accounts.models import Team
from studio.cli.main import main
from tests.factories import make_team, make_token, make_user
from tests.pipelines.support import SDK_DEFINITIONS, canonical, small


@pytest.fixture
def team(asgi_server: str, monkeypatch: pytest.MonkeyPatch) -> Team:
    team = make_team()
    monkeypatch.setenv("STUDIOLO_URL", asgi_server)
    monkeypatch.setenv("STUDIOLO_TOKEN", make_token(make_user(team, role="scientist")))
    return team


def _file(tmp_path: Path, document: Any, name: str = "pipeline.json") -> str:
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return str(path)


def test_create_describe_list(
    team: Team, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    definition = _file(tmp_path, canonical())
    assert (
        main(["pipelines", "create", "abalone", "--definition", definition, "--description", "age"])
        == 0
    )
    assert (
        f"Created pipeline abalone in team {team.slug} (version 1, 8 steps)"
        in capsys.readouterr().err
    )
    assert Pipeline.objects.get().description == "age"

    assert main(["pipelines", "describe", "abalone"]) == 0
    out = capsys.readouterr().out
    assert "Version:     1 of 1" in out
    assert "AccuracyThreshold" in out
    step_lines = {line.split()[0]: line for line in out.splitlines() if line and line.split()}
    assert "CheckAccuracy.ElseSteps" in step_lines["AccuracyTooLow"]

    assert main(["pipelines", "list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["NAME", "TEAM", "VERSION"]
    assert out.splitlines()[1].split()[:3] == ["abalone", team.slug, "1"]


def test_the_sdks_definition_file_is_created_as_it_is(
    team: Team, capsys: pytest.CaptureFixture[str]
) -> None:
    path = next(p for p in SDK_DEFINITIONS if p.stem == "canonical")
    assert main(["pipelines", "create", "sdk", "--definition", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["version"]["definition"] == json.loads(
        path.read_text()
    )


def test_update_versions_and_diff(
    team: Team, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pipelines", "create", "p", "--definition", _file(tmp_path, small())]) == 0
    assert main(["pipelines", "update", "p", "--definition", _file(tmp_path, small())]) == 0
    assert "no new version" in capsys.readouterr().err
    changed = _file(tmp_path, small(default=0.9), "v2.json")
    assert main(["pipelines", "update", "p", "--definition", changed, "--comment", "stricter"]) == 0
    assert "Updated pipeline p: version 2" in capsys.readouterr().err

    assert main(["pipelines", "versions", "p"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["VERSION", "2", "1"]
    assert lines[1].endswith("stricter")

    assert main(["pipelines", "diff", "p", "1", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("--- p v1\n+++ p v2\n")
    assert '+      "DefaultValue": 0.9,' in out
    assert main(["pipelines", "diff", "p", "2", "2"]) == 0
    assert "are the same" in capsys.readouterr().err

    assert main(["pipelines", "describe", "p", "--version", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["version"]["number"] == 1


def test_a_bad_definition_prints_where_and_exits_1(
    team: Team, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = small()
    document["Steps"][1]["DependsOn"] = ["Nowhere"]
    assert main(["pipelines", "create", "p", "--definition", _file(tmp_path, document)]) == 1
    err = capsys.readouterr().err
    assert "definition.Steps[Stop].DependsOn[0]: no step named 'Nowhere'" in err
    assert not Pipeline.objects.exists()


def test_a_file_that_is_not_json_is_refused_before_sending(
    team: Team, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pipelines", "create", "p", "--definition", _file(tmp_path, "{oops")]) == 1
    assert "is not JSON" in capsys.readouterr().err
    assert main(["pipelines", "create", "p", "--definition", str(tmp_path / "none.json")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_an_unknown_pipeline_exits_1_with_the_apis_message(
    team: Team, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pipelines", "describe", "nope"]) == 1
    assert "pipeline 'nope' not found" in capsys.readouterr().err


class _NotAdvanced:
    """Stands in for the orchestrator's task: nothing advances the execution here."""

    def delay_on_commit(self, execution_id: int) -> None:
        return None


def test_start_executions_describe_execution_and_stop(
    team: Team, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CLI's views of an execution as it starts: no worker may move it on meanwhile (a
    # live worker of another test would run its first step, and it could end first).
    monkeypatch.setattr("pipelines.services.advance_execution", _NotAdvanced())
    assert main(["pipelines", "create", "flow", "--definition", _file(tmp_path, small())]) == 0
    capsys.readouterr()
    assert main(["pipelines", "start", "flow", "--param", "Threshold=0.25"]) == 0
    execution = PipelineExecution.objects.get()
    assert execution.parameters == {"Threshold": 0.25}
    assert f"Started execution {execution.pk} of flow v1" in capsys.readouterr().err

    assert main(["pipelines", "executions", "flow"]) == 0
    assert "Executing" in capsys.readouterr().out

    assert main(["pipelines", "describe-execution", str(execution.pk)]) == 0
    out = capsys.readouterr().out
    assert "Status:     Executing" in out
    assert "Prepare" in out

    assert main(["pipelines", "stop", str(execution.pk)]) == 0
    assert f"Execution {execution.pk}: Stopping" in capsys.readouterr().err


def test_start_refuses_a_bad_parameter_naming_it(
    team: Team, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pipelines", "create", "flow", "--definition", _file(tmp_path, small())]) == 0
    assert main(["pipelines", "start", "flow", "--param", "Threshold=high"]) == 1
    assert "parameters.Threshold" in capsys.readouterr().err
    assert main(["pipelines", "start", "flow", "--param", "nonsense"]) == 2
