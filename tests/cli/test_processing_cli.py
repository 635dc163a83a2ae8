"""`studiolo process` and `studiolo jobs describe` on processing jobs, against a real ASGI
server. Nothing runs the jobs here (the queue hand-off is a no-op): what is checked is what
the CLI uploads and asks for. Running them is tests/jobs/test_processing_running.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jobs.models import Job, JobKind
from studio.artifacts import get_store
from studio.cli import job_follow
from studio.cli.common import CliError
from studio.cli.main import main
from studio.cli.processing import (
    join_arg_values,
    parse_processing_inputs,
    parse_processing_outputs,
)
from tests.factories import make_team, make_token, make_user
from tests.jobs.processing_support import pretend_docker

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def team(asgi_server: str, monkeypatch: pytest.MonkeyPatch, settings: Any) -> str:
    settings.RUNTIME = "process"  # nothing is started
    pretend_docker(monkeypatch)  # the submission's questions answered as Docker would
    monkeypatch.setattr("jobs.tasks.run_job.apply_async", lambda *args, **kwargs: None)
    team = make_team()
    monkeypatch.setenv("STUDIOLO_URL", asgi_server)
    monkeypatch.setenv("STUDIOLO_TOKEN", make_token(make_user(team, role="scientist")))
    return team.slug


def test_process_uploads_the_script_and_local_inputs_and_submits_the_job(
    team: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("1,2\n")
    script = tmp_path / "preprocess.py"
    script.write_text("print('hi')\n")
    store = get_store()
    store.put(f"teams/{team}/shared/part-0", b"x")
    shared = store.uri(f"teams/{team}/shared")
    target = store.uri(f"teams/{team}/train-set")
    argv = ["process", "--framework", "sklearn", "--code", str(script), "--name", "prep"]
    argv += ["--input", f"raw={data}:/opt/ml/processing/input"]
    argv += ["--input", f"more={shared}:/opt/ml/processing/more:sharded"]
    argv += ["--output", "train=/opt/ml/processing/train"]
    argv += ["--output", f"test=/opt/ml/processing/test:{target}:continuous"]
    argv += ["--instance-count", "1", "--arg", "--split=0.2", "--arg", "-v"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "prep"
    job = Job.objects.get(name="prep")
    assert job.kind == JobKind.PROCESSING
    assert job.container_entrypoint == ["python3", "/opt/ml/processing/input/code/preprocess.py"]
    assert job.container_arguments == ["--split=0.2", "-v"]
    inputs = {item["name"]: item for item in job.processing["inputs"]}
    assert store.get(f"teams/{team}/jobs-input/prep/raw/a.csv") == b"1,2\n"
    assert inputs["raw"]["uri"] == store.uri(f"teams/{team}/jobs-input/prep/raw")
    assert inputs["raw"]["local_path"] == "/opt/ml/processing/input"
    assert (inputs["more"]["uri"], inputs["more"]["distribution"]) == (shared, "ShardedByS3Key")
    assert inputs["code"]["uri"] == store.uri(f"teams/{team}/jobs-input/prep/code/preprocess.py")
    outputs = {item["name"]: item for item in job.processing["outputs"]}
    assert outputs["train"]["uri"] == store.uri(f"teams/{team}/processing/prep/output/train")
    assert (outputs["test"]["uri"], outputs["test"]["upload_mode"]) == (target, "Continuous")
    assert f"output train: /opt/ml/processing/train → {outputs['train']['uri']}" in err

    assert main(["jobs", "describe", "prep", "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert {o["name"]: o["uri"] for o in described["processing"]["outputs"]} == {
        "train": outputs["train"]["uri"],
        "test": target,
    }
    assert main(["jobs", "describe", "prep"]) == 0
    text = capsys.readouterr().out
    assert f"/opt/ml/processing/test → {target}  (continuous)" in text
    assert "(sharded)" in text


def test_process_with_an_image_and_entrypoint(
    team: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["process", "--image", "studiolo/python-base:bookworm", "--name", "byo"]
    argv += ["--entrypoint", "python3 -c 'print(1)'", "--output", "out=/opt/ml/processing/out"]
    assert main(argv) == 0
    job = Job.objects.get(name="byo")
    assert job.container_entrypoint == ["python3", "-c", "print(1)"]
    assert job.container_arguments is None


def test_a_refused_processing_job_says_why_and_exits_1(
    team: str, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = get_store().uri(f"teams/{team}/nothing")
    argv = ["process", "--image", "img:1", "--name", "bad", "--input", f"raw={missing}"]
    assert main(argv) == 1
    assert f"inputs.raw.uri: {missing} does not exist" in capsys.readouterr().err
    assert not Job.objects.exists()


def test_input_and_output_arguments_are_parsed_around_the_colons_of_uris() -> None:
    [item] = parse_processing_inputs([("raw", "s3://bucket/a:b/c:/opt/ml/processing/in:sharded")])
    assert (item.spec.uri, item.local_path, item.distribution) == (
        "s3://bucket/a:b/c",
        "/opt/ml/processing/in",
        "ShardedByS3Key",
    )
    [plain] = parse_processing_inputs([("raw", "s3://bucket/data")])
    assert (plain.spec.uri, plain.local_path, plain.distribution) == (
        "s3://bucket/data",
        "",
        "FullyReplicated",
    )
    [out] = parse_processing_outputs([("o", "/opt/ml/processing/o:s3://b/x:y:Continuous")])
    assert (out.local_path, out.uri, out.upload_mode) == (
        "/opt/ml/processing/o",
        "s3://b/x:y",
        "Continuous",
    )
    with pytest.raises(CliError, match="the local path comes first"):
        parse_processing_outputs([("o", "s3://b/x")])
    assert join_arg_values(["process", "--arg", "--split=0.2", "--arg", "x", "--arg"]) == [
        "process",
        "--arg=--split=0.2",
        "--arg=x",
        "--arg",
    ]


@pytest.fixture
def running_team(
    asgi_server: str, worker: Any, use_runtime: str, monkeypatch: pytest.MonkeyPatch
) -> str:
    """A studio whose worker runs the jobs, in containers."""
    monkeypatch.setattr(job_follow, "RETRY_DELAYS", (0.05, 0.1))
    monkeypatch.setattr(job_follow, "POLL_INTERVAL", 0.05)
    team = make_team()
    monkeypatch.setenv("STUDIOLO_URL", asgi_server)
    monkeypatch.setenv("STUDIOLO_TOKEN", make_token(make_user(team, role="scientist")))
    return team.slug


@pytest.mark.slow
@pytest.mark.parametrize("runtime_name", ["docker"], indirect=True)
def test_process_wait_runs_the_script_on_two_instances_and_follows_it_to_the_end(
    running_team: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "rows.csv").write_text("1\n2\n3\n")
    script = tmp_path / "preprocess.py"
    script.write_text(
        "import json, shutil, sys\n"
        "host = json.load(open('/opt/ml/config/resourceconfig.json'))['current_host']\n"
        "print('args', sys.argv[1:], 'on', host, flush=True)\n"
        "shutil.copy('/opt/ml/processing/input/rows.csv', f'/opt/ml/processing/train/{host}.csv')\n"
    )
    argv = ["process", "--framework", "sklearn", "--code", str(script), "--name", "prep-wait"]
    argv += ["--input", f"raw={data}:/opt/ml/processing/input"]
    argv += ["--output", "train=/opt/ml/processing/train", "--instance-count", "2"]
    argv += ["--arg", "--split=0.2", "--wait"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "args ['--split=0.2'] on algo-1" in out
    assert "args ['--split=0.2'] on algo-2" in out
    job = Job.objects.get(name="prep-wait")
    uri = job.processing["outputs"][0]["uri"]
    store = get_store()
    for host in ("algo-1", "algo-2"):
        assert store.get(store.key_from_uri(uri) + f"/{host}.csv") == b"1\n2\n3\n"
