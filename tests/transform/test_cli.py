"""`studiolo transform` and `studiolo jobs ...` on transform jobs, against a real studio (ASGI
server, websockets) and a real worker on the process runtime."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jobs.models import Job, JobStatus
from studio.artifacts import get_store
from studio.cli import job_follow
from studio.cli.main import main
from tests.factories import make_team, make_token, make_user
from tests.jobs.conftest import Worker
from tests.transform.support import read_text, register_model

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.parametrize("runtime_name", ["process"], indirect=True),
]


@pytest.fixture
def studio(
    asgi_server: str, worker: Worker, use_runtime: str, monkeypatch: pytest.MonkeyPatch
) -> Any:
    monkeypatch.setattr(job_follow, "RETRY_DELAYS", (0.05, 0.1))
    monkeypatch.setattr(job_follow, "POLL_INTERVAL", 0.05)
    team = make_team()
    author = make_user(team, role="scientist")
    register_model(team, author, make_user(team, role="approver"), offset=1)
    monkeypatch.setenv("STUDIOLO_URL", asgi_server)
    monkeypatch.setenv("STUDIOLO_TOKEN", make_token(author))
    return team


def test_transform_uploads_a_local_folder_follows_the_job_and_prints_its_progress(
    studio: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    (data / "day2").mkdir(parents=True)
    (data / "day1.csv").write_text("1,1\n2,2\n")
    (data / "day2" / "part.csv").write_text("5\n")
    output = get_store().uri(f"teams/{studio.slug}/scores")
    argv = ["transform", "nightly", "--model", "summer/1", "--input", str(data)]
    argv += ["--output", output, "--content-type", "text/csv", "--accept", "text/csv"]
    argv += ["--split-type", "Line", "--strategy", "MultiRecord", "--max-payload-mb", "6"]
    argv += ["--assemble-with", "Line", "--instance-type", "ml.local.small", "--wait"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "Transforming - Transforming input data: 0/3 records, 0/2 files" in err
    assert "Completed - Transform job completed" in err
    assert f"Transformed 3/3 records, 2/2 files into {output}" in err
    assert "day1.csv: 2 records in 1 requests" in err  # the job's log, as it is printed
    assert read_text(f"{output}/day1.csv.out") == "3\n5\n"
    assert read_text(f"{output}/day2/part.csv.out") == "6\n"
    job = Job.objects.get(name="nightly")
    assert job.status == JobStatus.COMPLETED
    assert job.transform["input_uri"].endswith(f"teams/{studio.slug}/jobs-input/nightly/input")

    assert main(["jobs", "describe", "nightly"]) == 0
    described = capsys.readouterr().out
    assert "Kind:" in described
    assert "batch transform" in described
    assert "3/3 records, 2/2 files" in described
    assert "MultiRecord" in described

    assert main(["jobs", "list", "--kind", "transform", "--json"]) == 0
    assert [j["name"] for j in json.loads(capsys.readouterr().out)] == ["nightly"]


def test_a_refused_transform_says_why_and_exits_1(
    studio: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = get_store().uri(f"teams/{studio.slug}/nothing")
    assert main(["transform", "t1", "--model", "summer/1", "--input", uri]) == 1
    # (The studio runs in this process: its request log shares stderr.)
    said = [line for line in capsys.readouterr().err.splitlines() if "django.request" not in line]
    assert said == [f"studiolo: input_uri: {uri} does not exist"]
    assert main(["transform", "bad_name", "--model", "summer/1", "--input", uri]) == 2
