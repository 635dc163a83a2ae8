"""The "New processing job" page and a processing job's page: the form becomes a processing
job (the script uploaded), the service's refusals come back on the fields, and the job page
shows the inputs and the outputs with links to their files. Nothing runs (queue stubbed)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from jobs.models import Job, JobKind
from studio.accounts.models import Team
from studio.artifacts import get_store
from tests.factories import make_team, make_user
from tests.jobs.processing_support import pretend_docker

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _nothing_runs(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    monkeypatch.setattr("jobs.tasks.run_job.apply_async", lambda *a, **k: None)
    settings.RUNTIME = "process"  # nothing is started
    pretend_docker(monkeypatch)  # the submission's questions answered as Docker would


@pytest.fixture
def team() -> Team:
    team = make_team("alpha")
    get_store().put("teams/alpha/raw/a.csv", b"1,2\n")
    return team


@pytest.fixture
def signed_in(client: Client, team: Team) -> Client:
    member: User = make_user(team, role="scientist", username="ada")
    client.force_login(member)
    return client


def form_data(**overrides: Any) -> dict[str, Any]:
    data = {
        "name": "split-1",
        "framework": "sklearn",
        "image": "",
        "code_uri": "",
        "entrypoint": "",
        "arguments": "--split=0.2\n",
        "inputs": f"raw={get_store().uri('teams/alpha/raw')}:/opt/ml/processing/input:sharded",
        "outputs": "train=/opt/ml/processing/train\ntest=/opt/ml/processing/test",
        "environment": "SEED=1",
        "instance_type": "ml.local.small",
        "instance_count": "1",
        "max_runtime_seconds": "600",
    }
    data.update(overrides)
    return data


def test_the_form_uploads_the_script_and_submits_a_processing_job(signed_in: Client) -> None:
    page = signed_in.get(reverse("job-new-processing"))
    assert page.status_code == 200
    assert b"New processing job" in page.content
    script = SimpleUploadedFile("split.py", b"print('split')\n")
    response = signed_in.post(reverse("job-new-processing"), {**form_data(), "code_file": script})
    job = Job.objects.get(name="split-1")
    assert response.status_code == 302
    assert response["Location"] == reverse("job-detail", args=[job.pk])
    assert job.kind == JobKind.PROCESSING
    assert job.container_entrypoint[-1] == "/opt/ml/processing/input/code/split.py"
    assert job.container_arguments == ["--split=0.2"]
    assert job.environment == {"SEED": "1"}
    raw = next(item for item in job.processing["inputs"] if item["name"] == "raw")
    assert (raw["local_path"], raw["distribution"]) == (
        "/opt/ml/processing/input",
        "ShardedByS3Key",
    )
    code = next(item for item in job.processing["inputs"] if item["name"] == "code")
    assert get_store().get(get_store().key_from_uri(code["uri"])) == b"print('split')\n"


def test_a_refusal_comes_back_on_its_field_and_the_upload_is_removed(signed_in: Client) -> None:
    script = SimpleUploadedFile("split.py", b"print('split')\n")
    outputs = "train=/opt/ml/processing/input"  # the input's folder
    response = signed_in.post(
        reverse("job-new-processing"),
        {**form_data(name="refused-1", outputs=outputs), "code_file": script},
    )
    assert response.status_code == 400
    assert "outputs.train.local_path" in response.context["form"].errors["outputs"][0]
    assert not Job.objects.exists()
    assert list(get_store().list("teams/alpha/uploads/refused-1/")) == []


def test_a_bad_output_line_is_a_form_error(signed_in: Client) -> None:
    response = signed_in.post(reverse("job-new-processing"), form_data(outputs="train=s3://x"))
    assert response.status_code == 400
    assert "the local path comes first" in response.context["form"].errors["outputs"][0]


def test_the_job_page_shows_inputs_and_outputs_with_links_to_their_files(
    signed_in: Client,
) -> None:
    get_store().put("teams/alpha/code/split.py", b"print(1)\n")
    data = form_data(code_uri=get_store().uri("teams/alpha/code/split.py"))
    signed_in.post(reverse("job-new-processing"), data)
    job = Job.objects.get(name="split-1")
    train = next(item for item in job.processing["outputs"] if item["name"] == "train")
    get_store().put(get_store().key_from_uri(train["uri"]) + "/part-0.csv", b"1\n")
    page = signed_in.get(reverse("job-detail", args=[job.pk])).content.decode()
    assert "data-processing-inputs" in page
    assert "/opt/ml/processing/input" in page
    assert "(sharded)" in page
    assert train["uri"] in page
    assert ">part-0.csv</a>" in page
    assert "/artifacts/download?" in page
