"""`studiolo train` and `studiolo jobs ...` against a real ASGI server (HTTP + websockets).

Nothing runs the jobs: the queue hand-off is a no-op and, where a test needs a job to
progress, the test drives it itself through the same services the worker uses
(`LogWriter` for lines, `job_transition` for status).
"""

from __future__ import annotations

import json
import re
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import F
from django.utils import timezone

from jobs.logs import LogWriter
from jobs.models import Job, JobLogLine, JobStatus, SecondaryStatus
from jobs.services.lifecycle import job_transition
from jobs.services.submission import ChannelRequest, JobRequest, job_create
from studio.accounts import services
from studio.accounts.models import Team
from studio.artifacts import get_store
from studio.cli import job_follow
from studio.cli.main import main
from tests.factories import make_team, make_token, make_user

LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ")
DEFAULT_NAME = re.compile(r"^train-\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d-\d{3}$")


@dataclass
class Studio:
    url: str
    team: Team
    user: User


@pytest.fixture
def studio(asgi_server: str, monkeypatch: pytest.MonkeyPatch, settings: Any) -> Studio:
    """A running studio where nothing runs jobs, and a scientist's token in the environment.

    Each test has its own team (the artifact store outlives a test's database)."""
    settings.RUNTIME = "process"  # image checks pass; nothing is started anyway
    monkeypatch.setattr("jobs.tasks.run_job.apply_async", lambda *args, **kwargs: None)
    monkeypatch.setattr(job_follow, "RETRY_DELAYS", (0.05, 0.1))
    monkeypatch.setattr(job_follow, "POLL_INTERVAL", 0.05)
    team = make_team()
    user = make_user(team, role="scientist")
    monkeypatch.setenv("STUDIOLO_URL", asgi_server)
    monkeypatch.setenv("STUDIOLO_TOKEN", make_token(user))
    return Studio(asgi_server, team, user)


@pytest.fixture
def source_dir(tmp_path: Path) -> Path:
    source = tmp_path / "src"
    (source / "lib").mkdir(parents=True)
    (source / "train.py").write_text("print('training')\n")
    (source / "lib" / "helpers.py").write_text("X = 1\n")
    (source / "__pycache__").mkdir()
    (source / "__pycache__" / "train.cpython-312.pyc").write_bytes(b"\0")
    (source / ".git").mkdir()
    (source / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return source


def train_argv(source: Path, *extra: str) -> list[str]:
    return ["train", "--framework", "sklearn", "--entry-point", "train.py", "--source-dir", str(source), *extra]  # fmt: skip


def stored_keys(prefix: str) -> list[str]:
    return sorted(info.key for info in get_store().list(prefix))


def make_job(studio: Studio, name: str, **overrides: Any) -> Job:
    request = JobRequest(
        name=name, instance_type="ml.local.small", image="example/train:1", **overrides
    )
    return job_create(team=studio.team, actor=studio.user, request=request)


def add_log_lines(job: Job, lines: list[tuple[str, str]]) -> None:
    job.refresh_from_db(fields=["log_line_count"])
    now = timezone.now()
    JobLogLine.objects.bulk_create(
        JobLogLine(job=job, seq=job.log_line_count + i, stream=stream, at=now, line=text)
        for i, (stream, text) in enumerate(lines, start=1)
    )
    Job.objects.filter(pk=job.pk).update(log_line_count=F("log_line_count") + len(lines))


# --- train -----------------------------------------------------------------------------------


def test_train_uploads_the_source_and_local_inputs_and_prints_the_name_alone(
    studio: Studio, source_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    (data / "more").mkdir(parents=True)
    (data / "train.csv").write_text("1,2\n")
    (data / "more" / "extra.csv").write_text("3,4\n")
    config = tmp_path / "config.json"
    config.write_text("{}")
    store = get_store()
    slug = studio.team.slug
    store.put(f"teams/{slug}/datasets/valid/v.csv", b"5,6\n")
    existing = store.uri(f"teams/{slug}/datasets/valid")

    argv = train_argv(
        source_dir,
        "--hp", "epochs=3",
        "--hp", "layers=[64, 32]",
        "--hp", "name=resnet",
        "--input", f"train={data}",
        "--input", f"config={config}",
        "--input", f"validation={existing}",
        "--metric", "loss=loss=([0-9.]+)",
        "--env", "MODE=fast",
    )  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    name = captured.out.strip()
    assert captured.out == f"{name}\n"
    assert DEFAULT_NAME.match(name), name
    assert "Uploading" in captured.err

    source_key = f"teams/{slug}/jobs-source/{name}/sourcedir.tar.gz"
    assert store.exists(source_key)
    with store.open(source_key) as stream, tarfile.open(fileobj=stream, mode="r|gz") as archive:
        members = sorted(info.name for info in archive)
    assert members == ["lib/helpers.py", "train.py"]

    inputs = f"teams/{slug}/jobs-input/{name}"
    assert stored_keys(inputs) == [
        f"{inputs}/config/config.json",
        f"{inputs}/train/more/extra.csv",
        f"{inputs}/train/train.csv",
    ]
    job = Job.objects.get(team=studio.team, name=name)
    assert job.hyperparameters == {"epochs": "3", "layers": "[64, 32]", "name": "resnet"}
    assert job.source_uri == store.uri(source_key)
    assert job.framework == "sklearn"
    assert job.entry_point == "train.py"
    assert job.environment == {"MODE": "fast"}
    assert job.metric_definitions == [{"name": "loss", "regex": "loss=([0-9.]+)"}]
    assert {c["name"]: c["uri"] for c in job.input_channels} == {
        "train": store.uri(f"{inputs}/train"),
        "config": store.uri(f"{inputs}/config"),
        "validation": existing,
    }


def test_train_json_prints_the_created_job(
    studio: Studio, source_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*train_argv(source_dir, "--name", "my-job", "--json")]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["name"] == "my-job"
    assert body["status"] == "Pending"
    assert body["team"] == studio.team.slug


def test_a_missing_entry_point_exits_2_and_uploads_nothing(
    studio: Studio, source_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data.csv"
    data.write_text("1\n")
    argv = ["train", "--framework", "sklearn", "--entry-point", "missing.py",
            "--source-dir", str(source_dir), "--input", f"train={data}"]  # fmt: skip
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("studiolo: --entry-point 'missing.py': no such file")
    assert stored_keys(f"teams/{studio.team.slug}") == []
    assert not Job.objects.exists()


def test_an_input_that_is_neither_a_path_nor_a_uri_exits_2_before_uploading(
    studio: Studio, source_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(train_argv(source_dir, "--input", "train=no/such/folder")) == 2
    assert "neither a local file or folder nor a URI" in capsys.readouterr().err
    assert stored_keys(f"teams/{studio.team.slug}") == []


def test_train_refuses_a_name_in_use_before_uploading_over_its_source(
    studio: Studio, source_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_job(studio, "taken")
    assert main(train_argv(source_dir, "--name", "taken")) == 1
    assert "a job named 'taken' exists already" in capsys.readouterr().err
    assert stored_keys(f"teams/{studio.team.slug}") == []


def test_the_api_rejection_is_shown_without_a_traceback(
    studio: Studio, source_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(train_argv(source_dir, "--instance-type", "ml.p4d.24xlarge")) == 1
    err = capsys.readouterr().err
    assert "instance_type: unknown 'ml.p4d.24xlarge'" in err
    assert "Traceback" not in err


def test_the_team_defaults_to_the_first_of_several_and_says_so(
    studio: Studio, source_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = make_team("zz-other")
    services.membership_set(team=other, user=studio.user, role="scientist")
    assert main(train_argv(source_dir, "--name", "first-team")) == 0
    assert f"Team: {studio.team.slug} (of 2; choose with --team)" in capsys.readouterr().err
    assert Job.objects.get(name="first-team").team == studio.team

    assert main(train_argv(source_dir, "--name", "other-team", "--team", "zz-other")) == 0
    assert Job.objects.get(name="other-team").team == other


# --- train --wait ----------------------------------------------------------------------------


@pytest.fixture
def socket_open(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Set once the CLI's log websocket is open. The consumer joins the job's group before
    it accepts, so whatever happens to the job after this reaches the CLI live."""
    opened = threading.Event()
    real_connect = job_follow.websocket_connect

    def connect(client: Any, job_id: int) -> Any:
        socket = real_connect(client, job_id)
        opened.set()
        return socket

    monkeypatch.setattr(job_follow, "websocket_connect", connect)
    return opened


def drive_job(
    studio: Studio, script: Callable[[Job], None], *, after: threading.Event | None = None
) -> threading.Thread:
    """Run `script` on the job the CLI is about to submit, in a thread, as a worker would
    (once `after` is set, when given)."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            deadline = time.monotonic() + 30
            while (job := Job.objects.filter(team=studio.team).first()) is None:
                if time.monotonic() > deadline:
                    raise TimeoutError("the CLI never submitted the job")
                time.sleep(0.02)
            if after is not None and not after.wait(timeout=30):
                raise TimeoutError("the CLI never opened the log socket")
            script(job)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run, name="job-driver", daemon=True)
    thread.errors = errors  # type: ignore[attr-defined]
    thread.start()
    return thread


def finish(thread: threading.Thread) -> None:
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert not thread.errors, thread.errors  # type: ignore[attr-defined]


def run_and_log(job: Job, outcome: Callable[[Job], None]) -> None:
    job_transition(job_id=job.pk, status=JobStatus.IN_PROGRESS, secondary_status=SecondaryStatus.TRAINING, message="Training in progress.")  # fmt: skip
    writer = LogWriter(Job.objects.get(pk=job.pk))
    writer.system("Starting the training container")
    for epoch in range(1, 4):
        writer.feed("stdout", f"epoch {epoch} loss=0.{9 - epoch}\n".encode())
        writer.feed("stderr", f"warning {epoch}\n".encode())
        time.sleep(0.05)
    writer.feed("stdout", b"done")  # no final newline: flushed at close
    writer.close()
    outcome(job)


def completed(job: Job) -> None:
    model = get_store().uri(f"teams/{job.team.slug}/jobs/{job.name}/output/model.tar.gz")
    job_transition(job_id=job.pk, status=JobStatus.COMPLETED, secondary_status=SecondaryStatus.COMPLETED, message="Training job completed", model_artifact_uri=model)  # fmt: skip


def failed(job: Job) -> None:
    job_transition(job_id=job.pk, status=JobStatus.FAILED, secondary_status=SecondaryStatus.FAILED, message="AlgorithmError", failure_reason="AlgorithmError: ValueError: bad input shape")  # fmt: skip


EXPECTED_STDOUT = ["epoch 1 loss=0.8", "epoch 2 loss=0.7", "epoch 3 loss=0.6", "done"]
EXPECTED_STDERR_LINES = ["Starting the training container", "warning 1", "warning 2", "warning 3"]


def cli_lines(err: str) -> list[str]:
    """stderr without the log records of the in-process server (Django configures logging
    in the test process; a real `studiolo` process prints none)."""
    return [line for line in err.splitlines() if not LOG_RECORD.match(line)]


def in_order(text: str, expected: list[str]) -> bool:
    lines = text.splitlines()
    positions = [lines.index(line) for line in expected if line in lines]
    return len(positions) == len(expected) and positions == sorted(positions)


def test_train_wait_streams_the_log_and_exits_0_when_completed(
    studio: Studio,
    source_dir: Path,
    socket_open: threading.Event,
    capsys: pytest.CaptureFixture[str],
) -> None:
    driver = drive_job(studio, lambda job: run_and_log(job, completed), after=socket_open)
    assert main(train_argv(source_dir, "--name", "waited", "--wait")) == 0
    finish(driver)
    captured = capsys.readouterr()
    assert captured.out.splitlines() == EXPECTED_STDOUT
    assert in_order(captured.err, EXPECTED_STDERR_LINES), captured.err
    assert "live log unavailable" not in captured.err  # the websocket carried it all
    assert "Training - Training in progress." in captured.err
    assert "Job waited: Completed" in captured.err
    assert re.search(r"^Model artifacts: \S+/jobs/waited/output/model.tar.gz$", captured.err, re.M)


def test_train_wait_exits_1_with_the_failure_reason_when_the_job_fails(
    studio: Studio,
    source_dir: Path,
    socket_open: threading.Event,
    capsys: pytest.CaptureFixture[str],
) -> None:
    driver = drive_job(studio, lambda job: run_and_log(job, failed), after=socket_open)
    assert main(train_argv(source_dir, "--name", "doomed", "--wait")) == 1
    finish(driver)
    captured = capsys.readouterr()
    assert captured.out.splitlines() == EXPECTED_STDOUT
    assert "Job doomed: Failed" in captured.err
    assert "Failure reason: AlgorithmError: ValueError: bad input shape" in captured.err


def test_train_wait_json_keeps_stdout_for_the_final_job(
    studio: Studio,
    source_dir: Path,
    socket_open: threading.Event,
    capsys: pytest.CaptureFixture[str],
) -> None:
    driver = drive_job(studio, lambda job: run_and_log(job, completed), after=socket_open)
    assert main(train_argv(source_dir, "--name", "quiet", "--wait", "--json")) == 0
    finish(driver)
    captured = capsys.readouterr()
    assert json.loads(captured.out)["status"] == "Completed"
    assert in_order(captured.err, ["epoch 1 loss=0.8", "done"])


@pytest.mark.parametrize("socket_returns", [True, False], ids=["socket-back", "socket-never"])
def test_lines_missed_while_the_socket_is_down_come_from_the_rest_api_once(
    studio: Studio,
    source_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    socket_returns: bool,
) -> None:
    real_connect = job_follow.websocket_connect
    attempts: list[int] = []
    half_written, reopened = threading.Event(), threading.Event()

    def flaky_connect(client: Any, job_id: int) -> Any:
        attempts.append(job_id)
        if len(attempts) == 1 or not socket_returns:
            half_written.wait(timeout=30)
            raise ConnectionRefusedError(111, "Connection refused")
        socket = real_connect(client, job_id)
        reopened.set()
        return socket

    def script(job: Job) -> None:
        # Half the log while the socket is refused (the CLI reads it from the REST API),
        # the rest once it is back (its backlog repeats the first half: shown once).
        job_transition(job_id=job.pk, status=JobStatus.IN_PROGRESS, secondary_status=SecondaryStatus.TRAINING)  # fmt: skip
        writer = LogWriter(Job.objects.get(pk=job.pk))
        writer.feed("stdout", b"first\nsecond\n")
        time.sleep(0.3)  # flushed (every 50 ms)
        half_written.set()
        if socket_returns:
            assert reopened.wait(timeout=30)
        writer.feed("stdout", b"third\nfourth\n")
        writer.close()
        completed(job)

    monkeypatch.setattr(job_follow, "websocket_connect", flaky_connect)
    driver = drive_job(studio, script)
    assert main(train_argv(source_dir, "--name", "bumpy", "--wait")) == 0
    finish(driver)
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["first", "second", "third", "fourth"]
    assert "live log unavailable" in captured.err
    assert "Job bumpy: Completed" in captured.err
    if socket_returns:
        assert len(attempts) == 2


def test_ctrl_c_while_waiting_detaches_and_says_how_to_follow_again(
    studio: Studio,
    source_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def interrupted(client: Any, job_id: int) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(job_follow, "websocket_connect", interrupted)
    assert main(train_argv(source_dir, "--name", "detached", "--wait")) == 130
    assert "studiolo jobs logs detached --follow" in capsys.readouterr().err
    assert Job.objects.get(name="detached").status == JobStatus.PENDING  # not stopped


# --- jobs list / describe / logs / stop -------------------------------------------------------


@pytest.fixture
def two_jobs(studio: Studio) -> tuple[Job, Job]:
    first = make_job(studio, "alpha", hyperparameters={"lr": "0.1"})
    second = make_job(studio, "alpha-2")
    job_transition(job_id=second.pk, status=JobStatus.IN_PROGRESS, secondary_status=SecondaryStatus.TRAINING)  # fmt: skip
    job_transition(job_id=second.pk, status=JobStatus.FAILED, secondary_status=SecondaryStatus.FAILED, failure_reason="OutOfMemory")  # fmt: skip
    add_log_lines(first, [("system", "Starting"), ("stdout", "hello"), ("stderr", "oops")])
    return first, second


def test_jobs_list_shows_a_table_and_filters_by_status(
    two_jobs: tuple[Job, Job], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["jobs", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:5] == ["NAME", "TEAM", "STATUS", "SECONDARY", "INSTANCE"]
    assert [line.split()[0] for line in lines[1:]] == ["alpha-2", "alpha"]  # newest first
    assert lines[1].split()[2:5] == ["Failed", "Failed", "ml.local.small"]

    assert main(["jobs", "list", "--status", "pending", "--json"]) == 0
    assert [job["name"] for job in json.loads(capsys.readouterr().out)] == ["alpha"]

    assert main(["jobs", "list", "--limit", "1", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 1


def test_jobs_describe_by_name_shows_config_status_and_history(
    two_jobs: tuple[Job, Job], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["jobs", "describe", "alpha-2"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^Name:\s+alpha-2 ", out, re.MULTILINE)
    assert re.search(r"^Status:\s+Failed$", out, re.MULTILINE)
    assert re.search(r"^Failure reason:\s+OutOfMemory$", out, re.MULTILINE)
    history = out.split("\n\n", 1)[1].splitlines()
    assert history[0].split()[:3] == ["TIME", "STATUS", "SECONDARY"]
    assert [line.split()[2] for line in history[1:]] == ["Pending", "InProgress", "Failed"]

    first = two_jobs[0]
    assert main(["jobs", "describe", str(first.pk), "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["name"] == "alpha"
    assert body["hyperparameters"] == {"lr": "0.1"}


def test_a_job_name_is_matched_exactly_and_unknown_names_are_an_error(
    two_jobs: tuple[Job, Job], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["jobs", "describe", "alph"]) == 1
    assert cli_lines(capsys.readouterr().err) == ["studiolo: no job named 'alph'"]


def test_a_name_in_several_teams_asks_for_team(
    studio: Studio, two_jobs: tuple[Job, Job], capsys: pytest.CaptureFixture[str]
) -> None:
    other = make_team("zz-other")
    services.membership_set(team=other, user=studio.user, role="scientist")
    job_create(
        team=other,
        actor=studio.user,
        request=JobRequest(name="alpha", instance_type="ml.local.small", image="example/x:1"),
    )
    assert main(["jobs", "describe", "alpha"]) == 1
    assert "choose one with --team" in capsys.readouterr().err
    assert main(["jobs", "describe", "alpha", "--team", "zz-other", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["team"] == "zz-other"


def test_jobs_logs_prints_every_line_by_stream(
    two_jobs: tuple[Job, Job], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(job_follow, "LOG_PAGE", 2)  # several pages
    first = two_jobs[0]
    add_log_lines(first, [("stdout", f"line {i}") for i in range(5)])
    assert main(["jobs", "logs", "alpha"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["hello", *[f"line {i}" for i in range(5)]]
    assert cli_lines(captured.err) == ["Starting", "oops"]


def test_jobs_logs_follow_reads_to_the_end_and_exits_with_the_status(
    two_jobs: tuple[Job, Job], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["jobs", "logs", "alpha-2", "--follow"]) == 1
    assert "Job alpha-2: Failed" in capsys.readouterr().err


def test_jobs_stop_stops_a_pending_job_and_refuses_an_ended_one(
    two_jobs: tuple[Job, Job], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["jobs", "stop", "alpha", "--wait"]) == 0
    assert "Job alpha: Stopped" in capsys.readouterr().err
    assert Job.objects.get(name="alpha").status == JobStatus.STOPPED

    assert main(["jobs", "stop", "alpha"]) == 1
    assert "only active jobs can be stopped" in capsys.readouterr().err


def test_jobs_stop_wait_follows_a_running_job_until_it_has_stopped(
    studio: Studio, capsys: pytest.CaptureFixture[str]
) -> None:
    job = make_job(studio, "running")
    job_transition(job_id=job.pk, status=JobStatus.IN_PROGRESS, secondary_status=SecondaryStatus.TRAINING)  # fmt: skip

    def worker_stops_it() -> None:
        try:
            deadline = time.monotonic() + 20
            while Job.objects.get(pk=job.pk).status != JobStatus.STOPPING:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            job_transition(job_id=job.pk, status=JobStatus.STOPPED, secondary_status=SecondaryStatus.STOPPED, message="Training job stopped")  # fmt: skip
        finally:
            connection.close()

    worker = threading.Thread(target=worker_stops_it, daemon=True)
    worker.start()
    assert main(["jobs", "stop", "running", "--wait"]) == 0
    worker.join(timeout=20)
    err = capsys.readouterr().err
    assert in_order(err, ["Job running: Stopping", "Stopped - Training job stopped"]), err
    assert "Job running: Stopped" in err


# --- checkpoints -------------------------------------------------------------------------


def test_train_with_a_checkpoint_uri_and_local_path_sets_the_checkpoint_config(
    studio: Studio, source_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = get_store().uri(f"teams/{studio.team.slug}/checkpoints/resnet")
    argv = train_argv(
        source_dir, "--checkpoint-uri", uri, "--checkpoint-local-path", "/opt/ml/state"
    )
    assert main(argv) == 0
    name = capsys.readouterr().out.strip()
    job = Job.objects.get(team=studio.team, name=name)
    assert job.checkpoint == {"uri": uri, "local_path": "/opt/ml/state"}

    assert main(["jobs", "describe", name]) == 0
    out = capsys.readouterr().out
    assert re.search(
        rf"^Checkpoints:\s+{re.escape(uri)}  \(synced from /opt/ml/state\)$", out, re.MULTILINE
    )


def test_a_bad_checkpoint_path_is_refused_naming_the_field(
    studio: Studio, source_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = get_store().uri(f"teams/{studio.team.slug}/checkpoints/x")
    argv = train_argv(source_dir, "--checkpoint-uri", uri, "--checkpoint-local-path", "/tmp/x")
    assert main(argv) != 0
    assert "checkpoint_config.local_path" in capsys.readouterr().err
    assert not Job.objects.filter(team=studio.team).exists()


def test_a_checkpoint_path_without_a_uri_exits_2_before_uploading(
    studio: Studio, source_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = train_argv(source_dir, "--checkpoint-local-path", "/opt/ml/state")
    assert main(argv) == 2
    assert "--checkpoint-local-path needs --checkpoint-uri" in capsys.readouterr().err
    assert list(get_store().list(f"teams/{studio.team.slug}/")) == []


def test_describe_says_when_a_job_has_no_checkpoints(
    studio: Studio, capsys: pytest.CaptureFixture[str]
) -> None:
    make_job(studio, "plain")
    assert main(["jobs", "describe", "plain"]) == 0
    assert re.search(r"^Checkpoints:\s+-$", capsys.readouterr().out, re.MULTILINE)


# --- jobs of several instances ----------------------------------------------------------------


def add_host_lines(job: Job, lines: list[tuple[str, str, str]]) -> None:
    """(host, stream, text) lines, as the runner of a job of several instances writes them."""
    job.refresh_from_db(fields=["log_line_count"])
    now = timezone.now()
    JobLogLine.objects.bulk_create(
        JobLogLine(job=job, seq=job.log_line_count + i, stream=stream, host=host, at=now, line=text)
        for i, (host, stream, text) in enumerate(lines, start=1)
    )
    Job.objects.filter(pk=job.pk).update(log_line_count=F("log_line_count") + len(lines))


HOST_LINES = [
    ("", "system", "Starting 2 instances"),
    ("algo-1", "stdout", "rank 0 ready"),
    ("algo-2", "stdout", "rank 1 ready"),
    ("algo-2", "stderr", "rank 1 warns"),
    ("algo-1", "stdout", "rank 0 done"),
]


@pytest.fixture
def pair_job(studio: Studio) -> Job:
    """A failed job of two instances (the count set on its row: the process runtime these
    tests use runs one instance) with lines of both hosts and of the platform."""
    job = make_job(studio, "pair")
    Job.objects.filter(pk=job.pk).update(instance_count=2)
    add_host_lines(job, HOST_LINES)
    job_transition(job_id=job.pk, status=JobStatus.IN_PROGRESS, secondary_status=SecondaryStatus.TRAINING)  # fmt: skip
    job_transition(job_id=job.pk, status=JobStatus.FAILED, secondary_status=SecondaryStatus.FAILED, failure_reason="algo-2: AlgorithmError: exit code 1")  # fmt: skip
    return job


def test_train_submits_several_instances_and_sharded_channels(
    studio: Studio, source_dir: Path, tmp_path: Path, settings: Any
) -> None:
    settings.RUNTIME = "docker"  # the runtime that runs several instances (the real engine)
    shards = tmp_path / "shards"
    shards.mkdir()
    for n in range(3):
        (shards / f"part-{n}.csv").write_text(f"{n}\n")
    config = tmp_path / "config.json"
    config.write_text("{}")
    argv = train_argv(
        source_dir,
        "--name", "sharded",
        "--instance-count", "3",
        "--input", f"train={shards}",
        "--input", f"config={config}",
        "--distribution", "train=shardedbys3key",
    )  # fmt: skip
    assert main(argv) == 0
    job = Job.objects.get(team=studio.team, name="sharded")
    assert job.instance_count == 3
    assert {c["name"]: c["distribution"] for c in job.input_channels} == {
        "train": "ShardedByS3Key",
        "config": "FullyReplicated",
    }


def test_train_refuses_more_instances_than_the_type_allows(
    studio: Studio, source_dir: Path, capsys: pytest.CaptureFixture[str], settings: Any
) -> None:
    settings.RUNTIME = "docker"
    assert main(train_argv(source_dir, "--name", "crowd", "--instance-count", "5")) != 0
    assert "instance_count: between 1 and 4 for instance type ml.local.small" in (
        capsys.readouterr().err
    )
    assert not Job.objects.filter(name="crowd").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--distribution", "train=ShardedByS3Key"], "--distribution train=...: no --input train"),
        (["--input", "train=s3://b/k", "--distribution", "train=Sharded"], "expected CHANNEL="),
        (["--instance-count", "0"], "must be at least 1"),
    ],
    ids=["channel-not-an-input", "unknown-distribution", "no-instance"],
)
def test_bad_instance_flags_exit_2_before_uploading(
    studio: Studio,
    source_dir: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    assert main(train_argv(source_dir, "--name", "flagged", *extra)) == 2
    assert message in capsys.readouterr().err
    assert stored_keys(f"teams/{studio.team.slug}/jobs-source/flagged") == []


def test_jobs_logs_labels_each_instances_lines_with_its_host(
    pair_job: Job, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["jobs", "logs", "pair"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        "[algo-1] rank 0 ready",
        "[algo-2] rank 1 ready",
        "[algo-1] rank 0 done",
    ]
    assert cli_lines(captured.err) == ["Starting 2 instances", "[algo-2] rank 1 warns"]


def test_jobs_logs_host_shows_one_instance_and_the_platforms_lines(
    pair_job: Job, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["jobs", "logs", "pair", "--host", "algo-2"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["[algo-2] rank 1 ready"]
    assert cli_lines(captured.err) == ["Starting 2 instances", "[algo-2] rank 1 warns"]


def test_jobs_logs_follow_with_a_host_reads_the_socket_and_filters(
    pair_job: Job, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["jobs", "logs", "pair", "--follow", "--host", "algo-1"]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["[algo-1] rank 0 ready", "[algo-1] rank 0 done"]
    assert "Failure reason: algo-2: AlgorithmError: exit code 1" in captured.err
    assert "rank 1" not in captured.err


def test_a_bad_host_name_exits_2(pair_job: Job, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["jobs", "logs", "pair", "--host", "worker-2"]) == 2
    assert "expected a host name such as algo-2" in capsys.readouterr().err


def test_a_one_instance_jobs_lines_have_no_label(
    studio: Studio, capsys: pytest.CaptureFixture[str]
) -> None:
    job = make_job(studio, "single")
    add_host_lines(job, [("algo-1", "stdout", "alone")])
    assert main(["jobs", "logs", "single"]) == 0
    assert capsys.readouterr().out.splitlines() == ["alone"]


def test_jobs_describe_shows_the_instances_and_a_sharded_channel(
    studio: Studio, capsys: pytest.CaptureFixture[str]
) -> None:
    store = get_store()
    store.put(f"teams/{studio.team.slug}/data/shards/a.csv", b"1\n")
    uri = store.uri(f"teams/{studio.team.slug}/data/shards")
    make_job(
        studio, "described", channels=[ChannelRequest("train", uri, distribution="ShardedByS3Key")]
    )
    assert main(["jobs", "describe", "described"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^Instances:\s+1 x ml.local.small$", out, re.M)
    assert re.search(rf"^Input train:\s+{re.escape(uri)}  \(ShardedByS3Key\)$", out, re.M)


def test_train_wait_labels_the_lines_of_each_instance(
    studio: Studio,
    source_dir: Path,
    socket_open: threading.Event,
    capsys: pytest.CaptureFixture[str],
    settings: Any,
) -> None:
    settings.RUNTIME = "docker"

    def two_hosts(job: Job) -> None:
        job_transition(job_id=job.pk, status=JobStatus.IN_PROGRESS, secondary_status=SecondaryStatus.TRAINING, message="Training in progress.")  # fmt: skip
        writer = LogWriter(Job.objects.get(pk=job.pk))
        writer.system("Starting 2 instances")
        writer.feed("stdout", b"rank 0 step 1\n", host="algo-1")
        writer.feed("stdout", b"rank 1 step 1\n", host="algo-2")
        writer.close()
        completed(job)

    driver = drive_job(studio, two_hosts, after=socket_open)
    argv = train_argv(source_dir, "--name", "waited-pair", "--instance-count", "2", "--wait")
    assert main(argv) == 0
    finish(driver)
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["[algo-1] rank 0 step 1", "[algo-2] rank 1 step 1"]
    assert "Starting 2 instances" in cli_lines(captured.err)
