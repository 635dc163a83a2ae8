"""The job log API of a job of several instances: each line says the host that printed it,
and the plain-text download starts each instance's line with `[algo-N] `."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from jobs.models import Job, JobLogLine, JobStatus
from tests.factories import make_team, make_token, make_user

pytestmark = pytest.mark.django_db

LINES = [
    ("", "system", "Starting 2 instances"),
    ("algo-1", "stdout", "epoch 1 loss=0.5"),
    ("algo-2", "stderr", "algo-2: out of patience"),
    ("algo-2", "stdout", "[not a label] printed by the script"),
]


def job_with_lines(instance_count: int, name: str) -> tuple[Job, dict[str, str]]:
    team = make_team("alpha")
    job = Job.objects.create(
        team=team,
        name=name,
        image="studiolo/x:1",
        instance_type="ml.local.small",
        instance_count=instance_count,
        status=JobStatus.IN_PROGRESS,
        secondary_status="Training",
        log_line_count=len(LINES),
    )
    now = timezone.now()
    JobLogLine.objects.bulk_create(
        JobLogLine(job=job, seq=seq, stream=stream, host=host, at=now, line=text)
        for seq, (host, stream, text) in enumerate(LINES, start=1)
    )
    auth = {"HTTP_AUTHORIZATION": f"Bearer {make_token(make_user(team, role='viewer'))}"}
    return job, auth


def test_each_log_line_of_the_api_names_its_host(client: Client) -> None:
    job, auth = job_with_lines(2, "pair")
    response = client.get(f"/api/v1/jobs/{job.pk}/logs", {"after": 1, "limit": 2}, **auth)
    assert response.status_code == 200
    body = response.json()
    assert [(row["seq"], row["host"], row["stream"]) for row in body["results"]] == [
        (2, "algo-1", "stdout"),
        (3, "algo-2", "stderr"),
    ]
    assert body["next_after"] == 3
    assert body["total"] == 4
    first = client.get(f"/api/v1/jobs/{job.pk}/logs", **auth).json()["results"][0]
    assert first["host"] == ""  # the platform's own line


def test_the_download_of_a_multi_instance_job_prefixes_each_instances_lines(
    client: Client,
) -> None:
    job, auth = job_with_lines(2, "pair")
    response = client.get(f"/api/v1/jobs/{job.pk}/logs/download", **auth)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert b"".join(response.streaming_content).decode().splitlines() == [
        "Starting 2 instances",
        "[algo-1] epoch 1 loss=0.5",
        "[algo-2] algo-2: out of patience",
        "[algo-2] [not a label] printed by the script",
    ]


def test_the_download_of_a_one_instance_job_is_the_lines_as_printed(client: Client) -> None:
    job, auth = job_with_lines(1, "single")
    response = client.get(f"/api/v1/jobs/{job.pk}/logs/download", **auth)
    assert b"".join(response.streaming_content).decode().splitlines() == [
        text for _, _, text in LINES
    ]
