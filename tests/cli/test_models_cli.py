"""`studiolo models ...` against a real ASGI server: groups, registration, list, describe,
and the approval decisions (with the API's message and exit 1 on a refusal)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from registry.models import ApprovalStatus, ModelPackage, ModelPackageGroup
from studio.accounts.models import Team
from studio.artifacts import get_store
from studio.cli.main import main
from tests.factories import make_team, make_token, make_user
from tests.registry.conftest import completed_job, make_group, registered


@dataclass
class Studio:
    url: str
    team: Team
    scientist: User
    approver: User
    approver_token: str


@pytest.fixture
def studio(asgi_server: str, monkeypatch: pytest.MonkeyPatch, settings: Any) -> Studio:
    settings.RUNTIME = "process"  # image checks pass; nothing is started
    team = make_team()
    scientist = make_user(team, role="scientist")
    approver = make_user(team, role="approver")
    monkeypatch.setenv("STUDIOLO_URL", asgi_server)
    monkeypatch.setenv("STUDIOLO_TOKEN", make_token(scientist))
    return Studio(asgi_server, team, scientist, approver, make_token(approver))


def test_create_group_register_from_job_and_list(
    studio: Studio, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "create-group", "churn", "--approvals", "2", "--description", "d"]) == 0
    assert "Created model group churn" in capsys.readouterr().err
    assert ModelPackageGroup.objects.get(name="churn").approvals_required == 2
    completed_job(studio.team, studio.scientist, "train-churn")

    argv = ["models", "register", "--group", "churn", "--from-job", "train-churn"]
    assert main([*argv, "--entry-point", "inference.py"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == "churn/1"
    assert "PendingManualApproval" in captured.err
    assert ModelPackage.objects.get().entry_point == "inference.py"

    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["GROUP", "VERSIONS", "APPROVED"]
    assert "churn" in out
    assert "PendingManualApproval" in out

    assert main(["models", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["package_count"] == 1


def test_register_external_with_metrics_and_list_versions_side_by_side(
    studio: Studio, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    make_group(studio.team, studio.scientist)
    key = f"teams/{studio.team.slug}/uploads/model.tar.gz"
    get_store().put(key, b"m")
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"auc": 0.875, "f1": 0.5}))
    argv = ["models", "register", "--group", "churn", "--artifact", get_store().uri(key)]
    assert main([*argv, "--image", "my/model:1", "--metrics-file", str(report), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"] == {"auc": 0.875, "f1": 0.5}

    assert main(["models", "list", "churn"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-2:] == ["AUC", "F1"]
    assert lines[1].split()[0] == "1"
    assert "0.875" in lines[1]
    assert "0 of 1 approvals" in lines[1]


def test_describe_shows_lineage_and_history(
    studio: Studio, capsys: pytest.CaptureFixture[str]
) -> None:
    package = registered(make_group(studio.team, studio.scientist), studio.scientist, "train-1")
    assert main(["models", "describe", "churn/1"]) == 0
    out = capsys.readouterr().out
    assert f"Artifact sha256: {package.artifact_sha256}  (11 bytes)" in out
    assert "train-1" in out
    assert f"file:///data/{studio.team.slug}/train.csv" in out
    assert "Registered" in out
    assert main(["models", "describe", "churn/1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["lineage"]["job"]["name"] == "train-1"


def test_approve_and_reject_with_a_comment(
    studio: Studio, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    registered(make_group(studio.team, studio.scientist), studio.scientist, "train-1")
    monkeypatch.setenv("STUDIOLO_TOKEN", studio.approver_token)
    assert main(["models", "approve", "churn/1", "--comment", "beats v0"]) == 0
    assert "churn/1 is now Approved" in capsys.readouterr().err
    assert main(["models", "reject", "churn/1", "--comment", "drift", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["package"]["approval_status"] == "Rejected"


def test_refusals_exit_1_with_the_apis_message(
    studio: Studio, capsys: pytest.CaptureFixture[str]
) -> None:
    registered(make_group(studio.team, studio.scientist), studio.scientist, "train-1")
    # The scientist is the author and has no approver role.
    assert main(["models", "approve", "churn/1", "--comment", "mine"]) == 1
    assert "does not allow model.approve" in capsys.readouterr().err
    assert main(["models", "describe", "churn/7"]) == 1
    assert "churn/7 not found" in capsys.readouterr().err
    completed_job(studio.team, studio.scientist, "failed-job", status="Failed")
    argv = ["models", "register", "--group", "churn", "--from-job", "failed-job"]
    assert main(argv) == 1
    assert "only a Completed job" in capsys.readouterr().err
    assert ModelPackage.objects.get().approval_status == ApprovalStatus.PENDING


def test_approve_needs_a_comment_and_a_package_reference(
    studio: Studio, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "approve", "churn/1"]) == 2
    assert "--comment" in capsys.readouterr().err
    assert main(["models", "describe", "churn"]) == 2
    assert "GROUP/VERSION" in capsys.readouterr().err
