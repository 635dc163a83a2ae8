"""Processing jobs end to end: a real worker process, real containers (Docker: a processing
script uses the absolute /opt/ml/processing paths, which only a container has), real files
in the store. Each test submits through the REST API and checks what a user would see."""

from __future__ import annotations

import re
import textwrap
import time
from typing import Any

import pytest
from django.test import Client

from jobs.models import Job, JobLogLine, JobStatus
from jobs.services.submission import job_dispatch
from studio.artifacts import get_store
from tests.factories import make_team, make_token, make_user
from tests.jobs.conftest import Worker, wait_for_job

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.parametrize("runtime_name", ["docker"], indirect=True),
]

SPLIT = textwrap.dedent(
    """
    import glob, json, os, sys
    import pandas as pd
    from sklearn.model_selection import train_test_split

    split = float(sys.argv[1].split("=", 1)[1])  # --split=0.2
    files = sorted(glob.glob("/opt/ml/processing/input/*.csv"))
    frame = pd.concat(pd.read_csv(f) for f in files)
    train, rest = train_test_split(frame, test_size=2 * split, random_state=0)
    validation, test = train_test_split(rest, test_size=0.5, random_state=0)
    for name, part in (("train", train), ("validation", validation), ("test", test)):
        os.makedirs(f"/opt/ml/processing/{name}/csv", exist_ok=True)
        part.to_csv(f"/opt/ml/processing/{name}/csv/{name}.csv", index=False)
    config = json.load(open("/opt/ml/config/processingjobconfig.json"))
    resource = json.load(open("/opt/ml/config/resourceconfig.json"))
    print("job", config["ProcessingJobName"], "host", resource["current_host"], flush=True)
    print("rows", len(train), len(validation), len(test), flush=True)
    """
)

FAILING = textwrap.dedent(
    """
    import sys
    print("reading the input", flush=True)
    print("column 'label' is missing", file=sys.stderr, flush=True)
    sys.exit(3)
    """
)


class Api:
    def __init__(self, client: Client, slug: str, token: str) -> None:
        self.client, self.slug = client, slug
        self.auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    def script(self, name: str, text: str) -> str:
        store = get_store()
        key = f"teams/{self.slug}/code/{name}"
        store.put(key, text.encode())
        return store.uri(key)

    def submit(self, **fields: Any) -> int:
        body = {"instance_type": "ml.local.small", "framework": "sklearn", **fields}
        response = self.client.post(
            "/api/v1/processing-jobs", body, content_type="application/json", **self.auth
        )
        assert response.status_code == 201, response.content
        return int(response.json()["id"])


@pytest.fixture
def api(client: Client, worker: Worker, use_runtime: str) -> Api:
    team = make_team()  # a slug of its own: the store outlives each test's database
    return Api(client, team.slug, make_token(make_user(team, role="scientist")))


def log_text(job: Job) -> str:
    return "\n".join(
        JobLogLine.objects.filter(job=job).order_by("seq").values_list("line", flat=True)
    )


def test_a_sklearn_script_splits_a_csv_into_three_outputs_read_back_from_the_store(
    api: Api,
) -> None:
    store = get_store()
    rows = "a,b,label\n" + "".join(f"{i},{i * 2},{i % 2}\n" for i in range(100))
    store.put(f"teams/{api.slug}/raw/data.csv", rows.encode())
    job_id = api.submit(
        name="split",
        code=api.script("split.py", SPLIT),
        inputs=[
            {
                "name": "raw",
                "uri": store.uri(f"teams/{api.slug}/raw"),
                "local_path": "/opt/ml/processing/input",
            }
        ],
        outputs=[
            {"name": name, "local_path": f"/opt/ml/processing/{name}"}
            for name in ("train", "validation", "test")
        ],
        container_arguments=["--split=0.2"],
    )
    job = wait_for_job(job_id, timeout=180)
    assert job.status == JobStatus.COMPLETED, (job.failure_reason, log_text(job))
    assert "job split host algo-1" in log_text(job)
    assert "rows 60 20 20" in log_text(job)
    # The download, with its size and time (the Downloading status message shows it live).
    assert re.search(r"input raw → /opt/ml/processing/input: 0\.0 MB in \d+\.\d s", log_text(job))
    counts = {}
    for output in job.processing["outputs"]:
        name = output["name"]
        assert output["uri"] == store.uri(f"teams/{api.slug}/processing/split/output/{name}")
        text = store.get(store.key_from_uri(output["uri"]) + f"/csv/{name}.csv").decode()
        assert text.startswith("a,b,label\n")
        counts[name] = len(text.splitlines()) - 1
    assert counts == {"train": 60, "validation": 20, "test": 20}


def test_a_script_exiting_non_zero_fails_the_job_with_its_last_lines(api: Api) -> None:
    store = get_store()
    job_id = api.submit(
        name="broken",
        code=api.script("broken.py", FAILING),
        outputs=[{"name": "out", "local_path": "/opt/ml/processing/out"}],
    )
    job = wait_for_job(job_id, timeout=180)
    assert job.status == JobStatus.FAILED
    assert job.exit_code == 3
    assert "exited with code 3" in job.failure_reason
    assert "column 'label' is missing" in job.failure_reason
    assert not list(store.list(f"teams/{api.slug}/processing/broken/output/out/"))


def test_the_exit_message_is_the_failure_reason_and_outputs_of_a_failed_job_are_kept(
    api: Api,
) -> None:
    script = textwrap.dedent(
        """
        import sys
        open("/opt/ml/processing/out/partial.csv", "w").write("1\\n")
        open("/opt/ml/output/message", "w").write("bad input: 3 rows without a label")
        sys.exit(1)
        """
    )
    job_id = api.submit(
        name="partial",
        code=api.script("partial.py", script),
        outputs=[{"name": "out", "local_path": "/opt/ml/processing/out"}],
    )
    job = wait_for_job(job_id, timeout=180)
    assert job.status == JobStatus.FAILED
    assert job.failure_reason == "bad input: 3 rows without a label"
    assert job.processing["exit_message"] == "bad input: 3 rows without a label"
    store = get_store()
    key = store.key_from_uri(job.processing["outputs"][0]["uri"]) + "/partial.csv"
    assert store.get(key) == b"1\n"


def test_an_input_missing_when_the_job_starts_fails_it_naming_the_uri(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = get_store()
    store.put(f"teams/{api.slug}/gone/a.csv", b"1\n")
    uri = store.uri(f"teams/{api.slug}/gone")
    sent: list[Any] = []
    # Hold the hand-off, remove the input, then dispatch: deterministic, no race.
    monkeypatch.setattr("jobs.services.submission.job_dispatch", lambda **kw: sent.append(kw))
    job_id = api.submit(
        name="gone",
        code=api.script("gone.py", "print('never')\n"),
        inputs=[{"name": "raw", "uri": uri}],
    )
    store.delete(f"teams/{api.slug}/gone/a.csv")
    monkeypatch.undo()
    [handoff] = sent
    assert job_dispatch(**handoff)
    job = wait_for_job(job_id, timeout=180)
    assert job.status == JobStatus.FAILED
    assert uri in job.failure_reason


LIST_SHARE = textwrap.dedent(
    """
    import json, os
    host = json.load(open("/opt/ml/config/resourceconfig.json"))["current_host"]
    names = sorted(os.listdir("/opt/ml/processing/input/parts"))
    with open(f"/opt/ml/processing/out/{host}.txt", "w") as out:
        out.write("\\n".join(names))
    print(host, "got", ",".join(names), flush=True)
    """
)


def test_sharded_by_s3_key_over_two_instances_gives_disjoint_shares_covering_every_object(
    api: Api,
) -> None:
    store = get_store()
    names = [f"part-{n}.csv" for n in range(5)]
    for name in names:
        store.put(f"teams/{api.slug}/parts/{name}", b"1\n")
    job_id = api.submit(
        name="sharded",
        instance_count=2,
        code=api.script("share.py", LIST_SHARE),
        inputs=[
            {
                "name": "parts",
                "uri": store.uri(f"teams/{api.slug}/parts"),
                "distribution": "ShardedByS3Key",
            }
        ],
        outputs=[{"name": "out", "local_path": "/opt/ml/processing/out"}],
    )
    job = wait_for_job(job_id, timeout=180)
    assert job.status == JobStatus.COMPLETED, (job.failure_reason, log_text(job))
    prefix = store.key_from_uri(job.processing["outputs"][0]["uri"])
    # Both instances uploaded to the same output URI, as on SageMaker.
    shares = {
        host: store.get(f"{prefix}/{host}.txt").decode().split("\n")
        for host in ("algo-1", "algo-2")
    }
    assert shares == {"algo-1": names[0::2], "algo-2": names[1::2]}
    assert JobLogLine.objects.filter(job=job, host="algo-2", line__contains="algo-2 got").exists()


def test_a_continuous_output_is_uploaded_while_the_job_runs_and_a_stopped_job_keeps_it(
    api: Api,
) -> None:
    script = textwrap.dedent(
        """
        import time
        open("/opt/ml/processing/out/early.txt", "w").write("early")
        print("wrote early", flush=True)
        time.sleep(300)
        """
    )
    job_id = api.submit(
        name="continuous",
        code=api.script("continuous.py", script),
        outputs=[
            {"name": "out", "local_path": "/opt/ml/processing/out", "upload_mode": "Continuous"}
        ],
    )
    store = get_store()
    key = f"teams/{api.slug}/processing/continuous/output/out/early.txt"
    deadline = time.monotonic() + 120
    while not store.exists(key):
        assert time.monotonic() < deadline, "the continuous output was never uploaded"
        time.sleep(0.2)
    assert Job.objects.get(pk=job_id).status == JobStatus.IN_PROGRESS
    response = api.client.post(f"/api/v1/jobs/{job_id}/stop", **api.auth)
    assert response.status_code == 200, response.content
    job = wait_for_job(job_id, timeout=180)
    assert job.status == JobStatus.STOPPED
    assert store.get(key) == b"early"
