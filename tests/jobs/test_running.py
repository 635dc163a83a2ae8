"""Jobs end to end: a real worker process, a real runtime (Docker and process), real files.

Each test submits through the REST API, lets the worker run the job, and checks status,
secondary status, failure reason, artifacts and the log, as a user would see them.
"""

from __future__ import annotations

import io
import json
import tarfile
import textwrap
import time
import uuid
from typing import Any

import pytest
from django.test import Client

from experiments.models import MetricPoint, RunParam
from experiments.services import run_artifact_prefix
from jobs.models import Job, JobLogLine, JobStatus, SecondaryStatus
from studio.artifacts import get_store
from tests.factories import make_team, make_token, make_user
from tests.jobs.conftest import Worker, wait_for_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SKLEARN_TRAIN = textwrap.dedent(
    """
    import argparse, os, glob, json, tempfile
    import joblib, numpy as np, pandas as pd
    import studiolo  # the tracking client, in the image with the toolkit
    from sklearn.linear_model import LogisticRegression

    parser = argparse.ArgumentParser()
    parser.add_argument("-C", type=float, default=1.0)  # one-letter names arrive as -C (SageMaker)
    parser.add_argument("--max_iter", type=int, default=100)
    parser.add_argument("--model-dir", default=os.environ["SM_MODEL_DIR"])
    args = parser.parse_args()
    files = glob.glob(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "*.csv"))
    frame = pd.concat(pd.read_csv(f, header=None) for f in files)
    X, y = frame.iloc[:, 1:].values, frame.iloc[:, 0].values
    model = LogisticRegression(C=args.C, max_iter=args.max_iter)
    run = studiolo.start_run()  # no network in the container: the job's run, through the log
    print("recording into run", run.run_id, flush=True)
    run.log_params({"C": args.C, "max_iter": args.max_iter})
    for epoch in range(3):
        model.fit(X, y)
        print(f"epoch={epoch} train_accuracy={model.score(X, y):.4f};", flush=True)
        run.log_metric("sdk:accuracy", model.score(X, y), step=epoch)
    joblib.dump(model, os.path.join(args.model_dir, "model.joblib"))
    report = os.path.join(tempfile.mkdtemp(), "coefficients.json")
    json.dump(model.coef_.tolist(), open(report, "w"))
    run.log_artifact(report, artifact_path="reports")
    run.end()
    print("hosts", os.environ["SM_HOSTS"], "hps", os.environ["SM_HPS"])
    import socket; print("hostname", socket.gethostname())
    """
)


def archive(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class Api:
    def __init__(self, client: Client, slug: str, token: str) -> None:
        self.client, self.slug = client, slug
        self.auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    def submit(self, name: str, script: str, **fields: Any) -> int:
        store = get_store()
        key = f"teams/{self.slug}/code/{name}/sourcedir.tar.gz"
        store.put(key, archive({"train.py": script}))
        body = {
            "name": name,
            "framework": "sklearn",
            "entry_point": "train.py",
            "source_uri": store.uri(key),
            "instance_type": "ml.local.small",
            **fields,
        }
        response = self.client.post(
            "/api/v1/jobs", body, content_type="application/json", **self.auth
        )
        assert response.status_code == 201, response.content
        return int(response.json()["id"])

    def stop(self, job_id: int) -> Any:
        return self.client.post(f"/api/v1/jobs/{job_id}/stop", **self.auth)


@pytest.fixture
def api(client: Client, worker: Worker, use_runtime: str) -> Api:
    team = make_team("lab")
    return Api(client, team.slug, make_token(make_user(team, role="scientist")))


def model_members(job: Job) -> dict[str, bytes]:
    store = get_store()
    with store.open(store.key_from_uri(job.model_artifact_uri)) as stream:
        data = stream.read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def log_text(job: Job) -> str:
    return "\n".join(
        JobLogLine.objects.filter(job=job).order_by("seq").values_list("line", flat=True)
    )


def test_sklearn_script_mode_job_completes_with_model_and_metrics(
    api: Api, runtime_name: str
) -> None:
    if runtime_name != "docker":
        pytest.skip(
            "scikit-learn lives in the framework image; the process runtime uses the host's Python"
        )
    store = get_store()
    rows = "\n".join(f"{i % 2},{i},{(i * 7) % 5}" for i in range(60))
    store.put(f"teams/{api.slug}/data/iris/part-1.csv", rows.encode())
    job_id = api.submit(
        "sklearn-job",
        SKLEARN_TRAIN,
        hyperparameters={"C": "0.5", "max_iter": "200"},
        input_channels=[
            {
                "name": "train",
                "uri": store.uri(f"teams/{api.slug}/data/iris"),
                "content_type": "text/csv",
            }
        ],
        metric_definitions=[{"name": "train:accuracy", "regex": r"train_accuracy=([0-9.]+);"}],
    )
    job = wait_for_job(job_id)
    assert job.status == JobStatus.COMPLETED, (job.failure_reason, log_text(job))
    assert job.secondary_status == SecondaryStatus.COMPLETED
    assert job.model_artifact_uri.endswith(f"teams/{api.slug}/jobs/sklearn-job/output/model.tar.gz")
    assert job.output_artifact_uri.endswith("sklearn-job/output/output.tar.gz")
    assert "model.joblib" in model_members(job)
    text = log_text(job)
    assert 'hosts ["algo-1"]' in text
    assert "hostname algo-1" in text
    assert '"C":0.5' in text
    assert '"max_iter":200' in text
    accuracy = list(MetricPoint.objects.filter(run=job.run, key="train:accuracy").order_by("step"))
    assert [p.step for p in accuracy] == [0, 1, 2]
    assert 0.4 < accuracy[-1].value <= 1.0
    # The tracking client in the container: the job's run by its public id, through the log.
    assert job.run is not None
    assert f"recording into run {job.run.run_uuid}" in text
    tracked = list(MetricPoint.objects.filter(run=job.run, key="sdk:accuracy").order_by("step"))
    assert [(p.step, p.value) for p in tracked] == [(p.step, p.value) for p in accuracy]
    assert dict(RunParam.objects.filter(run=job.run).values_list("key", "value")) == {
        "C": "0.5",
        "max_iter": "200",
    }
    assert JobLogLine.objects.filter(job=job, stream="track").count() >= 2
    report = f"{run_artifact_prefix(job.run)}/reports/coefficients.json"
    assert len(json.loads(store.get(report))[0]) == 2
    secondary = [t.secondary_status for t in job.transitions.all()]
    assert secondary[:4] == ["Starting", "Starting", "Downloading", "Training"]
    assert secondary[-1] == "Completed"
    assert "Uploading" in secondary
    assert job.run is not None
    assert job.run.status == "FINISHED"


def test_failure_file_becomes_the_failure_reason(api: Api) -> None:
    script = textwrap.dedent(
        """
        import os
        with open(os.path.join(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"), "output", "failure"), "w") as f:
            f.write("DataError: column 'label' is missing")
        raise SystemExit(3)
        """
    )
    job = wait_for_job(api.submit("writes-failure", script))
    assert job.status == JobStatus.FAILED
    assert job.secondary_status == SecondaryStatus.FAILED
    assert job.failure_reason == "DataError: column 'label' is missing"
    assert job.exit_code == 3
    assert job.run is not None
    assert job.run.status == "FAILED"


def test_crash_gives_exit_code_and_traceback(api: Api) -> None:
    script = textwrap.dedent(
        """
        import os, tempfile
        import studiolo
        with studiolo.start_run() as run:
            run.log_metric("loss", 0.5)
            notes = os.path.join(tempfile.mkdtemp(), "notes.txt")
            open(notes, "w").write("lr too high")
            run.log_artifact(notes)
            print('about to fail', flush=True)
            raise ValueError('bad learning rate')
        """
    )
    job = wait_for_job(api.submit("crashes", script))
    assert job.status == JobStatus.FAILED
    assert "ExecuteUserScriptError" in job.failure_reason
    assert "ValueError: bad learning rate" in job.failure_reason
    assert "#studiolo" not in job.failure_reason  # records are not quoted as the last lines
    assert job.exit_code not in (0, None)
    assert "about to fail" in log_text(job)
    # What the failed run recorded is kept: its metrics, and its artifacts uploaded anyway.
    assert job.run is not None
    assert job.run.status == "FAILED"
    assert MetricPoint.objects.filter(run=job.run, key="loss").count() == 1
    notes = f"{run_artifact_prefix(job.run)}/notes.txt"
    assert get_store().get(notes) == b"lr too high"


def test_out_of_memory_is_reported(api: Api, runtime_name: str) -> None:
    if runtime_name != "docker":
        pytest.skip("memory limits are enforced by the container engine")
    script = "blocks = []\nwhile True:\n    blocks.append(bytearray(50 * 1024 * 1024))\n"
    job = wait_for_job(api.submit("eats-memory", script))
    assert job.status == JobStatus.FAILED
    assert job.failure_reason.startswith("OutOfMemory"), job.failure_reason
    assert "1024 MB" in job.failure_reason
    assert "ml.local.small" in job.failure_reason


def test_max_runtime_stops_the_job(api: Api) -> None:
    script = textwrap.dedent(
        """
        import os, time, signal, sys
        def saved(*_):
            open(os.path.join(os.environ["SM_MODEL_DIR"], "checkpoint.txt"), "w").write("partial")
            sys.exit(0)
        signal.signal(signal.SIGTERM, saved)
        print("working", flush=True)
        time.sleep(120)
        """
    )
    job = wait_for_job(api.submit("too-slow", script, max_runtime_seconds=2))
    assert job.status == JobStatus.STOPPED
    assert job.secondary_status == SecondaryStatus.MAX_RUNTIME_EXCEEDED
    assert model_members(job) == {"checkpoint.txt": b"partial"}
    assert job.ended_at is not None
    assert job.training_started_at is not None
    assert (job.ended_at - job.training_started_at).total_seconds() < 30


def test_stop_sends_sigterm_and_keeps_what_the_script_saved(api: Api) -> None:
    script = textwrap.dedent(
        """
        import os, time, signal, sys
        def on_term(*_):
            print("got SIGTERM, saving", flush=True)
            open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w").write("saved on stop")
            sys.exit(0)
        signal.signal(signal.SIGTERM, on_term)
        print("training", flush=True)
        time.sleep(120)
        """
    )
    job_id = api.submit("to-stop", script)
    wait_for_job(
        job_id,
        until=lambda j: j.secondary_status == SecondaryStatus.TRAINING and j.log_line_count > 3,
    )
    time.sleep(0.5)
    response = api.stop(job_id)
    assert response.status_code == 200
    assert response.json()["status"] == "Stopping"
    job = wait_for_job(job_id)
    assert job.status == JobStatus.STOPPED
    assert job.secondary_status == SecondaryStatus.STOPPED
    assert model_members(job) == {"model.txt": b"saved on stop"}
    assert "got SIGTERM, saving" in log_text(job)
    statuses = [t.to_status for t in job.transitions.all()]
    assert statuses.index("Stopping") < statuses.index("Stopped")


def test_script_ignoring_sigterm_is_killed_after_the_grace_period(api: Api) -> None:
    script = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('stubborn', flush=True)\ntime.sleep(120)\n"
    job_id = api.submit("stubborn", script)
    wait_for_job(job_id, until=lambda j: JobLogLine.objects.filter(job=j, line="stubborn").exists())
    started = time.monotonic()
    api.stop(job_id)
    job = wait_for_job(job_id)
    assert job.status == JobStatus.STOPPED, (job.failure_reason, log_text(job))
    assert 2.5 < time.monotonic() - started < 30  # tests.settings: a 3 s grace period


def test_image_that_does_not_exist_is_a_400(
    client: Client, settings: Any, docker_engine: None
) -> None:
    settings.RUNTIME = "docker"
    team = make_team("img")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {make_token(make_user(team))}"}
    body = {
        "name": "no-image",
        "image": "studiolo/does-not-exist:1",
        "instance_type": "ml.local.small",
    }
    response = client.post(
        "/api/v1/jobs", json.dumps(body), content_type="application/json", **auth
    )
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "image"
    assert not Job.objects.exists()


def test_websocket_client_joining_mid_job_gets_every_line_in_order_then_the_end(
    api: Api, asgi_server: str
) -> None:
    from websockets.sync.client import connect

    script = "import time\nfor i in range(1, 41):\n    print(f'line {i}', flush=True)\n    time.sleep(0.08)\n"
    job_id = api.submit("chatty", script)
    wait_for_job(job_id, until=lambda j: j.log_line_count >= 15)
    url = asgi_server.replace("http://", "ws://") + f"/ws/jobs/{job_id}/logs"
    received: list[dict[str, Any]] = []
    end: dict[str, Any] = {}
    with connect(url, additional_headers={**_bearer(api)}, open_timeout=10) as socket:
        while True:
            message = json.loads(socket.recv(timeout=60))
            if message["type"] == "lines":
                received.extend(message["lines"])
            elif message["type"] == "end":
                end = message
                break
    assert end["status"] == "Completed"
    seqs = [line["seq"] for line in received]
    assert seqs == list(range(1, len(seqs) + 1)), "gaps or repeats"
    printed = [line["line"] for line in received if line["stream"] == "stdout"]
    assert printed == [f"line {i}" for i in range(1, 41)]
    assert end["lines"] == len(received) == Job.objects.get(pk=job_id).log_line_count


def _bearer(api: Api) -> dict[str, str]:
    return {"Authorization": api.auth["HTTP_AUTHORIZATION"]}


def test_killing_the_worker_mid_job_never_leaves_it_stuck(api: Api, worker: Worker) -> None:
    from jobs.reconcile import reconcile_jobs

    script = "import time\nfor i in range(1, 31):\n    print(f'tick {i}', flush=True)\n    time.sleep(0.2)\n"
    job_id = api.submit("survivor", script)
    wait_for_job(job_id, until=lambda j: j.log_line_count >= 8)
    worker.kill()
    worker.start()
    # The dead worker's lease runs out (tests.settings: 4 s); beat would then reconcile.
    deadline = time.monotonic() + 60
    while Job.objects.get(pk=job_id).status not in ("Completed", "Failed", "Stopped"):
        reconcile_jobs()
        assert time.monotonic() < deadline, "job stuck after its worker died"
        time.sleep(1)
    job = Job.objects.get(pk=job_id)
    if job.status == JobStatus.FAILED:
        assert job.failure_reason, "a failed job always says why"
    else:
        assert job.status == JobStatus.COMPLETED
        ticks = [line for line in log_text(job).splitlines() if line.startswith("tick")]
        assert ticks == [f"tick {i}" for i in range(1, 31)], (
            "lines lost or repeated after re-attach"
        )


def test_container_entrypoint_and_arguments_are_honoured(api: Api) -> None:
    job_id = api.submit(
        "own-entrypoint",
        "raise SystemExit('train.py must not run')\n",
        container_entrypoint=["/bin/bash"],
        container_arguments=["-c", 'echo "entrypoint ran for $TRAINING_JOB_NAME"'],
    )
    job = wait_for_job(job_id)
    assert job.status == JobStatus.COMPLETED, job.failure_reason
    assert "entrypoint ran for own-entrypoint" in log_text(job)


# --- checkpoints ---------------------------------------------------------------------------

EPOCHS_WITH_CHECKPOINTS = textwrap.dedent(
    """
    import json, os, time
    # SageMaker's default LocalPath; the process runtime moves /opt/ml to SAGEMAKER_BASE_DIR.
    folder = os.path.join(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"), "checkpoints")
    state = os.path.join(folder, "state.json")
    epochs = int(os.environ["SM_HP_EPOCHS"])
    start = json.load(open(state))["epoch"] if os.path.exists(state) else 0
    print(f"resumed from epoch {start}" if start else "starting from scratch", flush=True)
    for epoch in range(start + 1, epochs + 1):
        time.sleep(0.4)
        with open(state + ".tmp", "w") as stream:
            json.dump({"epoch": epoch}, stream)
        os.replace(state + ".tmp", state)
        print(f"epoch {epoch} done", flush=True)
    open(os.path.join(os.environ["SM_MODEL_DIR"], "trained.txt"), "w").write(f"{start}->{epoch}")
    print(f"finished at epoch {epoch}", flush=True)
    """
)


def stored_epoch(key: str) -> int:
    store = get_store()
    return int(json.loads(store.get(key))["epoch"]) if store.exists(key) else 0


def test_a_stopped_job_keeps_its_checkpoints_and_the_next_job_resumes_from_them(
    api: Api,
) -> None:
    store = get_store()
    # The store outlives the test's database (and the other runtime's run): a fresh folder.
    prefix = f"teams/{api.slug}/checkpoints/counting-{uuid.uuid4().hex[:8]}"
    checkpoint = {"s3_uri": store.uri(prefix)}
    first = api.submit(
        "counting-1",
        EPOCHS_WITH_CHECKPOINTS,
        hyperparameters={"epochs": "20"},
        checkpoint_config=checkpoint,
    )
    # Half-way: once the store holds a checkpoint of a few epochs (synced every second).
    wait_for_job(first, until=lambda _: stored_epoch(prefix + "/state.json") >= 3, timeout=60)
    assert api.stop(first).status_code == 200
    job = wait_for_job(first)
    assert job.status == JobStatus.STOPPED, (job.failure_reason, log_text(job))
    saved = stored_epoch(prefix + "/state.json")
    first_log = log_text(job)
    assert 3 <= saved < 20, (
        first_log,
        job.log_line_count,
        [(t.to_status, t.secondary_status, t.message) for t in job.transitions.all()],
    )
    assert "starting from scratch" in first_log
    assert f"Checkpoints: nothing under {store.uri(prefix)} yet" in first_log
    assert "Checkpoints: algo-1 synced 1 file(s)" in first_log
    assert f"epoch {saved} done" in first_log
    assert f"epoch {saved + 1} done" not in first_log  # the last pass had the last epoch
    assert [info.key for info in store.list(prefix)] == [prefix + "/state.json"]

    second = api.submit(
        "counting-2",
        EPOCHS_WITH_CHECKPOINTS,
        hyperparameters={"epochs": "20"},
        checkpoint_config=checkpoint,
    )
    job = wait_for_job(second)
    second_log = log_text(job)
    assert job.status == JobStatus.COMPLETED, (job.failure_reason, second_log)
    assert "Checkpoints: restored 1 file(s)" in second_log
    assert f"resumed from epoch {saved}" in second_log
    assert f"epoch {saved} done" not in second_log
    assert "finished at epoch 20" in second_log
    assert model_members(job) == {"trained.txt": f"{saved}->20".encode()}
    assert stored_epoch(prefix + "/state.json") == 20
