"""What the fault tests share: a job that runs until told to finish, submitting it, waiting
on conditions, and the checks that a job ran once with every line of its log kept once."""

from __future__ import annotations

import io
import re
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from jobs.models import Job, JobLogLine, JobTransition, SecondaryStatus
from jobs.runner import work_dir
from studio.artifacts import get_store

# Prints "tick N" five times a second until the test drops a `finish` file into its
# /opt/ml/input/config (the job's work folder, on this host), then "done after N ticks": the
# test decides how long the job lives, and knows exactly which lines it printed.
TICKER = """
import os, time
base = os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")
finish = os.path.join(base, "input", "config", "finish")
i = 0
while not os.path.exists(finish) and i < 3000:
    i += 1
    print(f"tick {i}", flush=True)
    time.sleep(0.2)
print(f"done after {i} ticks", flush=True)
"""


def source_archive(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class Api:
    """A scientist of team `slug` submitting through the REST API."""

    def __init__(self, client: Client, slug: str, token: str) -> None:
        self.client, self.slug = client, slug
        self.auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    def submit(self, name: str, script: str, **fields: Any) -> int:
        store = get_store()
        key = f"teams/{self.slug}/code/{name}/sourcedir.tar.gz"
        store.put(key, source_archive({"train.py": script}))
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


def wait_until[T](condition: Callable[[], T], what: str, timeout: float = 90) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.05)


def job(job_id: int) -> Job:
    return Job.objects.select_related("team").get(pk=job_id)


def owner_pid(job_id: int) -> int | None:
    """The process that holds the job's lease (`host:pid:nonce`), if any."""
    owner = Job.objects.filter(pk=job_id).values_list("lease_owner", flat=True).get()
    return int(owner.split(":")[1]) if owner else None


def ticks_logged(job_id: int) -> int:
    return JobLogLine.objects.filter(job_id=job_id, line__startswith="tick ").count()


def finish(job_id: int, work_root: Path | None = None) -> None:
    """Tell a TICKER job to end (its work folder is on this host)."""
    folder = (work_root / f"job-{job_id}") if work_root else work_dir(job(job_id))
    (folder / "algo-1" / "opt_ml" / "input" / "config" / "finish").write_text("")


def log_lines(job_id: int) -> list[tuple[int, str, str]]:
    return list(
        JobLogLine.objects.filter(job_id=job_id)
        .order_by("seq")
        .values_list("seq", "stream", "line")
    )


def assert_ran_once_with_its_whole_log(job_id: int, *, takeovers: int) -> None:
    """Started once (one preparation, one container), handed over `takeovers` times, and its
    log is whole: numbered 1..N with no gap, every printed line exactly once and in order."""
    rows = log_lines(job_id)
    text = [line for _, _, line in rows]
    assert [seq for seq, _, _ in rows] == list(range(1, len(rows) + 1)), "gaps in the numbering"
    assert job(job_id).log_line_count == len(rows)
    done = [line for line in text if line.startswith("done after ")]
    assert len(done) == 1, done
    printed = int(re.findall(r"\d+", done[0])[0])
    assert [line for line in text if line.startswith("tick ")] == [
        f"tick {i}" for i in range(1, printed + 1)
    ], "ticks lost, repeated or out of order"
    assert sum(line.startswith("Starting job ") for line in text) == 1, "prepared twice"
    assert sum(line == "Starting the training container" for line in text) == 1
    reattached = sum(line.startswith("Re-attached to the running container") for line in text)
    assert reattached == takeovers, text
    starts = JobTransition.objects.filter(job_id=job_id, secondary_status=SecondaryStatus.STARTING)
    assert starts.filter(to_status="InProgress").count() == 1
