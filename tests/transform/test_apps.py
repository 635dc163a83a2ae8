"""The transform app registers its runner with jobs at start-up: jobs never imports it."""

from __future__ import annotations

import pytest

from jobs.lease import Lease
from jobs.models import Job, JobKind
from jobs.runners import job_runner_for
from tests.factories import make_team
from transform.runner import TransformRunner

pytestmark = pytest.mark.django_db


def test_transform_jobs_get_the_transform_runner() -> None:
    job = Job.objects.create(
        team=make_team(),
        name="scoring",
        kind=JobKind.TRANSFORM,
        image="x",
        instance_type="ml.local.small",
    )
    assert isinstance(job_runner_for(job, Lease(job.pk)), TransformRunner)
