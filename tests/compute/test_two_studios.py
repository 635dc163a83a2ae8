"""Two studios with different data folders on one Docker engine run a job each with the same
name and the same id at the same time, and neither touches the other's containers: their
names differ (each carries its studio's installation tag), and each studio's job stop and its
reconciliation (which removes containers of jobs that are over or unknown) leave the other's
running.

Studio A is this test process with the suite's workers; studio B is a second set of the same
workers with its own STUDIOLO_HOME, SQLite database and Redis key prefix, driven through
tests/compute/peer_studio.py. Both run jobs through the real runner on the real engine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from compute.labels import LABEL_INSTANCE, LABEL_JOB_ID, ROLE_JOB, engine_name
from compute.runtime.base import ContainerState
from compute.runtime.docker import DockerRuntime
from jobs.models import Job, JobStatus
from jobs.reconcile import ORPHAN_GRACE, reconcile_jobs
from jobs.services.lifecycle import job_stop
from jobs.services.submission import JobRequest, job_create
from tests import leftovers
from tests.compute.peer_studio import SLEEPER
from tests.factories import make_team, make_user
from tests.jobs.conftest import wait_for_job
from tests.workers import ROOT, Worker, children_env

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.parametrize("runtime_name", ["docker"], indirect=True),
]

IMAGE = "studiolo/sklearn:latest"
NAME = "same-name"


class PeerStudio:
    """Studio B: its home, its workers, and its users' and periodic tasks' actions."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = children_env("docker", **self.own_env)
        self.worker = Worker("docker", home / "logs", **self.own_env)

    @property
    def own_env(self) -> dict[str, str]:
        return {
            "STUDIOLO_HOME": str(self.home),
            "DATABASE_URL": f"sqlite:///{self.home / 'studiolo.sqlite3'}",
        }

    def run(self, *args: str) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-m", "tests.compute.peer_studio", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"studio B: {' '.join(args)} failed:\n{done.stdout}\n{done.stderr[-3000:]}")
        answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return answer


@pytest.fixture
def studio_b(worker: Worker, use_runtime: str) -> Iterator[PeerStudio]:
    # Under the temporary folder, short (like the suite's own home), and not the suite's.
    home = Path(tempfile.mkdtemp(prefix="stl-peer-", dir="/tmp"))
    (home / "logs").mkdir()
    peer = PeerStudio(home)
    peer.run("migrate")
    peer.worker.start()
    try:
        yield peer
    finally:
        peer.worker.stop()
        leftovers.remove_this_runs_containers(home)
        subprocess.run(["rm", "-rf", str(home)], check=False)  # noqa: S607 - a test's own folder


def containers(home: Path | str, job_id: int) -> list[ContainerState]:
    return DockerRuntime().find({LABEL_JOB_ID: str(job_id), LABEL_INSTANCE: str(home)})


def running_container(home: Path | str, job_id: int, timeout: float = 90) -> ContainerState:
    deadline = time.monotonic() + timeout
    while True:
        found = [state for state in containers(home, job_id) if state.running]
        if found:
            return found[0]
        if time.monotonic() > deadline:
            pytest.fail(f"no running container of job {job_id} of the studio at {home}")
        time.sleep(0.2)


def still_running(state: ContainerState) -> bool:
    return DockerRuntime().inspect(state.id).running


def test_two_studios_on_one_engine_never_touch_each_others_containers(
    studio_b: PeerStudio, settings: Any
) -> None:
    home_a = str(settings.STUDIOLO_HOME)
    team = make_team("lab")
    user = make_user(team, role="scientist")

    def submit(name: str) -> Job:
        request = JobRequest(
            name=name, instance_type="ml.local.small", image=IMAGE, container_entrypoint=SLEEPER
        )
        return job_create(team=team, actor=user, request=request)

    # Same name and id in both studios; A runs a second job that B knows nothing of.
    same = submit(NAME)
    other = submit("another-name")
    assert studio_b.run("submit", NAME, IMAGE, str(same.pk)) == {"id": same.pk}
    a_same = running_container(home_a, same.pk)
    a_other = running_container(home_a, other.pk)
    b_same = running_container(studio_b.home, same.pk)
    assert a_same.name != b_same.name
    assert a_same.name == engine_name(ROLE_JOB, same.pk)
    assert a_same.name.endswith(f"-job-{same.pk}")
    assert b_same.name.endswith(f"-job-{same.pk}")

    # A stops its job; once it is over, A's reconciliation removes what is left of it, and
    # would remove B's container too if it took it for its own (same job id).
    job_stop(job=same, actor=user)
    stopped = wait_for_job(same.pk)
    assert stopped.status == JobStatus.STOPPED
    Job.objects.filter(pk=same.pk).update(
        ended_at=stopped.ended_at - ORPHAN_GRACE - timedelta(seconds=1)  # type: ignore[operator]
    )
    reconcile_jobs()
    assert containers(home_a, same.pk) == []
    assert still_running(b_same)
    assert still_running(a_other)

    # B stops its job and reconciles: A's other job is unknown to B, and a container of an
    # unknown job is removed at once, if it were B's.
    answer = studio_b.run("stop-and-reconcile", str(same.pk))
    assert answer["status"] == JobStatus.STOPPED
    assert containers(studio_b.home, same.pk) == []
    assert still_running(a_other)
    assert Job.objects.get(pk=other.pk).status == JobStatus.IN_PROGRESS

    job_stop(job=Job.objects.get(pk=other.pk), actor=user)
    assert wait_for_job(other.pk).status == JobStatus.STOPPED
