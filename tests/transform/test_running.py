"""Batch transform end to end: a real worker process runs the model's serving container
(Docker or the process runtime) over input objects in the store, and the tests read the
`.out` objects, the job's status, progress and log as a user would.

Docker costs seconds per test, so the Docker runtime runs the main acceptance test only; the
other behaviours run on the process runtime, which runs the same toolkit `serve`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from compute.labels import LABEL_INSTANCE, LABEL_JOB_ID, instance_label
from compute.runtime import get_runtime
from jobs.models import Job, JobStatus, SecondaryStatus
from registry.models import ModelPackage
from studio.accounts.models import Team
from studio.artifacts import get_store
from tests.factories import make_team, make_token, make_user
from tests.jobs.conftest import Worker, wait_for_job
from tests.transform.support import (
    BROKEN_INFERENCE,
    TransformApi,
    exists,
    log_text,
    put_inputs,
    read_text,
    register_model,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
process_only = pytest.mark.parametrize("runtime_name", ["process"], indirect=True)

FILES = {
    "a.csv": "1,2\n3,4\n5,6\n",
    "nested/deeper/b.csv": "10,20,30\n0.5,0.25",  # no line break after the last record
}


class Lab:
    def __init__(self, client: Client) -> None:
        self.team: Team = make_team()
        self.author = make_user(self.team, role="scientist")
        self.approver = make_user(self.team, role="approver")
        self.api = TransformApi(client, self.team, make_token(self.author))

    def model(self, **kwargs: Any) -> ModelPackage:
        return register_model(self.team, self.author, self.approver, **kwargs)

    def output_uri(self, name: str) -> str:
        return get_store().uri(f"teams/{self.team.slug}/predictions/{name}")


@pytest.fixture
def lab(client: Client, worker: Worker, use_runtime: str) -> Lab:
    return Lab(client)


def containers_of(job: Job) -> list[Any]:
    return get_runtime().find({LABEL_JOB_ID: str(job.pk), LABEL_INSTANCE: instance_label()})


def wait_until(job_id: int, condition: Callable[[Job], bool]) -> Job:
    return wait_for_job(job_id, until=lambda job: condition(job) or job.is_terminal)


def test_line_split_over_several_files_writes_each_files_predictions_in_order(
    lab: Lab, runtime_name: str
) -> None:
    package = lab.model(offset=0.5)
    output = lab.output_uri("line")
    job_id = lab.api.submit(
        name="score-line",
        model=f"{package.group.name}/{package.version}",
        input_uri=put_inputs(lab.team, "batch/line", FILES),
        output_path=output,
        content_type="text/csv",
        accept="text/csv",
        split_type="Line",
        batch_strategy="MultiRecord",
        max_payload_mb=1,
        max_concurrent_transforms=2,
        assemble_with="Line",
    )
    job = wait_for_job(job_id, timeout=120)
    assert job.status == JobStatus.COMPLETED, (job.failure_reason, log_text(job))
    assert read_text(f"{output}/a.csv.out") == "3.5\n7.5\n11.5\n"
    assert read_text(f"{output}/nested/deeper/b.csv.out") == "60.5\n1.25\n"
    assert (job.records_done, job.records_total, job.files_done, job.files_total) == (5, 5, 2, 2)
    secondary = [t.secondary_status for t in job.transitions.all()]
    assert secondary == ["Starting", "Starting", "Downloading", "Transforming", "Completed"]
    assert job.training_started_at is not None
    assert job.training_ended_at is not None
    text = log_text(job)
    # The serving container's own output is in the job's log, batch variables included.
    assert (
        "batch env: SAGEMAKER_BATCH=true,SAGEMAKER_BATCH_STRATEGY=MULTI_RECORD,"
        "SAGEMAKER_MAX_PAYLOAD_IN_MB=1,SAGEMAKER_MAX_CONCURRENT_TRANSFORMS=2" in text
    )
    assert "a.csv: 3 records in 1 requests" in text
    assert "nested/deeper/b.csv: 2 records in 1 requests" in text
    described = lab.api.describe(job_id)
    assert described["kind"] == "transform"
    assert described["progress"] == {
        "records_done": 5,
        "records_total": 5,
        "files_done": 2,
        "files_total": 2,
    }
    assert described["transform"]["effective"] == {
        "batch_strategy": "MultiRecord",
        "max_payload_mb": 1,
        "max_concurrent_transforms": 2,
    }
    assert containers_of(job) == []  # stopped and removed at the end


@process_only
def test_single_record_sends_one_request_per_line_and_keeps_input_order(lab: Lab) -> None:
    package = lab.model()
    output = lab.output_uri("single")
    rows = "".join(f"{i},{i}\n" for i in range(40))
    job_id = lab.api.submit(
        name="score-single",
        model=f"{package.group.name}/{package.version}",
        input_uri=put_inputs(lab.team, "batch/single", {"rows.csv": rows}),
        output_path=output,
        content_type="text/csv",
        accept="text/csv",
        split_type="Line",
        batch_strategy="SingleRecord",
        max_concurrent_transforms=8,  # answers arrive out of order; the file must not
        assemble_with="Line",
    )
    job = wait_for_job(job_id)
    assert job.status == JobStatus.COMPLETED, (job.failure_reason, log_text(job))
    assert read_text(f"{output}/rows.csv.out") == "".join(f"{2 * i}\n" for i in range(40))
    text = log_text(job)
    assert "rows.csv: 40 records in 40 requests" in text
    assert text.count('"POST /invocations" 200') == 40
    assert "SAGEMAKER_BATCH_STRATEGY=SINGLE_RECORD" in text


@process_only
def test_split_type_none_sends_each_object_whole_and_assembles_nothing(lab: Lab) -> None:
    package = lab.model()
    output = lab.output_uri("whole")
    job_id = lab.api.submit(
        name="score-whole",
        model=f"{package.group.name}/{package.version}",
        input_uri=put_inputs(lab.team, "batch/whole", FILES),
        output_path=output,
        content_type="text/csv",
        accept="application/json",
    )
    job = wait_for_job(job_id)
    assert job.status == JobStatus.COMPLETED, (job.failure_reason, log_text(job))
    assert read_text(f"{output}/a.csv.out") == "[3.0, 7.0, 11.0]"
    assert read_text(f"{output}/nested/deeper/b.csv.out") == "[60.0, 0.75]"
    # For SplitType None a record is a whole object.
    assert (job.records_done, job.records_total, job.files_done) == (2, 2, 2)
    # Unset settings come from the container's /execution-parameters.
    assert job.transform["effective"] == {
        "batch_strategy": "",
        "max_payload_mb": 6,
        "max_concurrent_transforms": 1,
    }


@process_only
def test_a_model_error_fails_the_job_naming_the_object_the_record_and_the_message(
    lab: Lab,
) -> None:
    package = lab.model()
    output = lab.output_uri("errors")
    job_id = lab.api.submit(
        name="score-errors",
        model=f"{package.group.name}/{package.version}",
        input_uri=put_inputs(
            lab.team, "batch/errors", {"a.csv": "1,1\n", "b.csv": "2,2\nboom\n3,3\n"}
        ),
        output_path=output,
        content_type="text/csv",
        accept="text/csv",
        split_type="Line",
        batch_strategy="SingleRecord",
        invocations_max_retries=1,
    )
    job = wait_for_job(job_id)
    assert job.status == JobStatus.FAILED
    assert job.failure_reason.startswith(
        "ClientError: transforming b.csv, record 2: the model answered 500: "
        "ValueError: cannot score 'boom' (after 1 retries)"
    ), job.failure_reason
    assert read_text(f"{output}/a.csv.out") == "2\n"
    assert not exists(f"{output}/b.csv.out")  # written only when the whole object succeeded
    assert (job.records_done, job.files_done) == (2, 1)
    assert "inference failed" in log_text(job)  # the model's traceback, from its container
    assert containers_of(job) == []


@process_only
def test_a_container_that_exits_before_answering_ping_fails_the_job_with_its_last_lines(
    lab: Lab,
) -> None:
    package = lab.model(inference=BROKEN_INFERENCE)
    job_id = lab.api.submit(
        name="score-broken",
        model=f"{package.group.name}/{package.version}",
        input_uri=put_inputs(lab.team, "batch/broken", {"a.csv": "1,1\n"}),
        content_type="text/csv",
    )
    job = wait_for_job(job_id)
    assert job.status == JobStatus.FAILED
    assert "exited before answering /ping" in job.failure_reason
    assert "the weights file is missing" in job.failure_reason
    assert containers_of(job) == []


@process_only
def test_stop_ends_a_running_transform_stopped_with_the_finished_objects_kept(
    lab: Lab,
) -> None:
    package = lab.model()
    output = lab.output_uri("stop")
    rows = "".join(f"{i}\n" for i in range(200))
    job_id = lab.api.submit(
        name="score-stop",
        model=f"{package.group.name}/{package.version}",
        input_uri=put_inputs(lab.team, "batch/stop", {"a.csv": "1\n", "b.csv": rows}),
        output_path=output,
        content_type="text/csv",
        accept="text/csv",
        split_type="Line",
        batch_strategy="SingleRecord",
        environment={"SLOW_SECONDS": "0.05"},
    )
    wait_until(job_id, lambda job: job.records_done >= 5)
    assert lab.api.stop(job_id).status_code == 200
    job = wait_for_job(job_id)
    assert job.status == JobStatus.STOPPED, (job.failure_reason, log_text(job))
    assert job.secondary_status == SecondaryStatus.STOPPED
    assert 5 <= job.records_done < 201
    assert read_text(f"{output}/a.csv.out") == "1\n"
    assert not exists(f"{output}/b.csv.out")
    assert containers_of(job) == []


@process_only
def test_max_runtime_stops_a_transform_that_runs_too_long(lab: Lab) -> None:
    package = lab.model()
    rows = "".join(f"{i}\n" for i in range(500))
    job_id = lab.api.submit(
        name="score-slow",
        model=f"{package.group.name}/{package.version}",
        input_uri=put_inputs(lab.team, "batch/slow", {"rows.csv": rows}),
        content_type="text/csv",
        split_type="Line",
        batch_strategy="SingleRecord",
        environment={"SLOW_SECONDS": "0.05"},
        max_runtime_seconds=1,
    )
    job = wait_for_job(job_id)
    assert job.status == JobStatus.STOPPED, (job.failure_reason, log_text(job))
    assert job.secondary_status == SecondaryStatus.MAX_RUNTIME_EXCEEDED
    assert job.training_started_at is not None
    assert job.ended_at is not None
    assert (job.ended_at - job.training_started_at).total_seconds() < 20
    assert 0 < job.records_done < 500


@process_only
def test_killing_the_worker_mid_transform_restarts_it_elsewhere_to_the_same_output(
    lab: Lab, worker: Worker
) -> None:
    from jobs.reconcile import reconcile_jobs

    package = lab.model()
    output = lab.output_uri("survivor")
    rows = "".join(f"{i}\n" for i in range(60))
    job_id = lab.api.submit(
        name="score-survivor",
        model=f"{package.group.name}/{package.version}",
        input_uri=put_inputs(lab.team, "batch/survivor", {"rows.csv": rows}),
        output_path=output,
        content_type="text/csv",
        accept="text/csv",
        split_type="Line",
        batch_strategy="SingleRecord",
        assemble_with="Line",
        environment={"SLOW_SECONDS": "0.05"},
    )
    wait_until(job_id, lambda job: job.records_done >= 5)
    worker.kill()  # its serving container keeps running, orphaned
    worker.start()
    deadline = time.monotonic() + 90
    while not Job.objects.get(pk=job_id).is_terminal:
        reconcile_jobs()  # what beat does: the dead worker's lease runs out (4 s in tests)
        assert time.monotonic() < deadline, "transform stuck after its worker died"
        time.sleep(0.5)
    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.COMPLETED, (job.failure_reason, log_text(job))
    assert read_text(f"{output}/rows.csv.out") == "".join(f"{i}\n" for i in range(60))
    assert (job.records_done, job.records_total) == (60, 60)
    text = log_text(job)
    assert "Restarting the transform after a worker change" in text
    assert "Removing the serving container of the previous attempt" in text
    assert containers_of(job) == []
