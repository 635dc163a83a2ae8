"""`studiolo artifacts upload|download|ls` against a real ASGI server, on both store backends:
a folder goes up through the team's bucket and comes back byte for byte; another team's bucket
is not found; what the platform wrote for a job cannot be overwritten."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest

from jobs.models import Job, JobStatus
from studio.accounts import services
from studio.accounts.models import Team
from studio.artifacts import S3ArtifactStore, get_store
from studio.cli.main import main
from tests.factories import make_team, make_token, make_user
from tests.fixtures.s3 import moto_server, s3_store  # noqa: F401 - fixtures


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, settings: Any) -> Any:
    """The studio's store on each backend in turn (S3: moto's server, a bucket per test)."""
    if request.param == "s3":
        s3: S3ArtifactStore = request.getfixturevalue("s3_store")
        settings.ARTIFACT_STORE = f"s3://{s3.bucket}/{s3.prefix}"
        settings.S3_ENDPOINT_URL = s3.endpoint_url
    get_store.cache_clear()
    yield request.param
    get_store.cache_clear()


@pytest.fixture
def studio(backend: str, asgi_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    team = make_team("vision")
    user = make_user(team, role="scientist", username="alice")
    services.membership_set(team=make_team("nlp"), user=user, role="viewer")
    make_team("secret")
    monkeypatch.setenv("STUDIOLO_URL", asgi_server)
    monkeypatch.setenv("STUDIOLO_TOKEN", make_token(user))
    return asgi_server


def a_folder(root: Path) -> dict[str, bytes]:
    files = {
        "train.csv": b"1,2\n3,4\n",
        "nested/deeper/labels.txt": b"cat\ndog\n",
        "nested/blob.bin": bytes(range(256)) * 4096,  # 1 MiB: more than one chunk
    }
    for relative, data in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    return files


def cli_errors(capsys: pytest.CaptureFixture[str]) -> list[str]:
    # The in-process server may log to the same stderr: keep the CLI's own lines.
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("studiolo:")]


def test_a_folder_round_trips_through_the_team_bucket(
    studio: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = a_folder(tmp_path / "data")
    assert main(["artifacts", "upload", str(tmp_path / "data"), "s3://studiolo-vision/ds/"]) == 0
    out = capsys.readouterr().out
    assert "s3://studiolo-vision/ds/nested/deeper/labels.txt" in out
    assert get_store().get("teams/vision/ds/train.csv") == files["train.csv"]

    assert main(["artifacts", "ls", "s3://studiolo-vision/ds", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {item["s3_uri"]: item["size"] for item in listed} == {
        f"s3://studiolo-vision/ds/{name}": len(data) for name, data in files.items()
    }
    assert all(item["last_modified"] for item in listed)
    assert main(["artifacts", "ls", "s3://studiolo-vision/ds/"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["LAST", "MODIFIED", "SIZE", "URI"]
    assert len(table) == 1 + len(files)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert (
            main(["artifacts", "download", "s3://studiolo-vision/ds/", str(tmp_path / "back")]) == 0
        )
    # Django reads a sync iterator whole into memory under ASGI, and says so: the studio's
    # handler streams file responses block by block instead (studio.asgi_handler).
    assert not [w for w in caught if "consume synchronous iterators" in str(w.message)]
    for name, data in files.items():
        assert (tmp_path / "back" / name).read_bytes() == data
    assert not list((tmp_path / "back").rglob("*.part"))


def test_a_file_goes_to_the_uri_or_below_it_and_comes_back_alone(
    studio: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "model.tar.gz"
    source.write_bytes(b"weights")
    assert main(["artifacts", "upload", str(source), "s3://studiolo-vision/m/"]) == 0
    assert main(["artifacts", "upload", str(source), "s3://studiolo-vision/m/renamed.tgz"]) == 0
    store = get_store()
    assert store.get("teams/vision/m/model.tar.gz") == b"weights"
    assert store.get("teams/vision/m/renamed.tgz") == b"weights"
    # The store's own URI works as well as the bucket's.
    native = store.uri("teams/vision/m/renamed.tgz")
    assert main(["artifacts", "download", native, str(tmp_path / "out")]) == 0
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["renamed.tgz"]
    capsys.readouterr()


def test_another_teams_bucket_is_not_found(
    studio: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    get_store().put("teams/secret/plans.txt", b"hidden")
    (tmp_path / "x.txt").write_text("x")
    for argv in (
        ["artifacts", "ls", "s3://studiolo-secret/"],
        ["artifacts", "download", "s3://studiolo-secret/plans.txt", str(tmp_path / "d")],
        ["artifacts", "upload", str(tmp_path / "x.txt"), "s3://studiolo-secret/x.txt"],
        ["artifacts", "ls", get_store().uri("teams/secret/plans.txt")],
        ["artifacts", "ls", "s3://studiolo-nobody/"],
    ):
        assert main(argv) == 1, argv
        errors = cli_errors(capsys)
        assert len(errors) == 1
        assert "not found" in errors[0]
    assert not get_store().exists("teams/secret/x.txt")
    assert not (tmp_path / "d").exists()


def test_a_viewer_lists_but_cannot_upload(
    studio: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    get_store().put("teams/nlp/corpus.txt", b"words")
    assert main(["artifacts", "ls", "s3://studiolo-nlp/", "--json"]) == 0
    assert [item["key"] for item in json.loads(capsys.readouterr().out)] == ["teams/nlp/corpus.txt"]
    (tmp_path / "x.txt").write_text("x")
    assert main(["artifacts", "upload", str(tmp_path / "x.txt"), "s3://studiolo-nlp/x.txt"]) == 1
    assert "does not allow" in cli_errors(capsys)[0]


def test_a_jobs_model_cannot_be_overwritten(
    studio: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = get_store()
    store.put("teams/vision/jobs/churn/output/model.tar.gz", b"the job's model")
    Job.objects.create(
        team=Team.objects.get(slug="vision"),
        name="churn",
        image="x",
        instance_type="ml.local.small",
        output_path=store.uri("teams/vision/jobs"),
        status=JobStatus.COMPLETED,
        model_artifact_uri=store.uri("teams/vision/jobs/churn/output/model.tar.gz"),
    )
    (tmp_path / "model.tar.gz").write_bytes(b"swapped")
    target = "s3://studiolo-vision/jobs/churn/output/model.tar.gz"
    assert main(["artifacts", "upload", str(tmp_path / "model.tar.gz"), target]) == 1
    assert "cannot be written" in cli_errors(capsys)[0]
    assert store.get("teams/vision/jobs/churn/output/model.tar.gz") == b"the job's model"
