"""Registry test data: completed jobs with a model in the store, made without containers."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from jobs.models import Job, JobStatus
from registry.models import ModelPackage, ModelPackageGroup
from registry.services.registration import InferenceSpec, group_create, package_register_from_job
from studio.accounts.models import Team
from studio.artifacts import get_store


@pytest.fixture(autouse=True)
def _process_runtime(settings: Any) -> None:
    settings.RUNTIME = "process"  # every image "exists"; nothing is started


def completed_job(team: Team, user: User | None, name: str, **fields: Any) -> Job:
    """A Completed job row with its model.tar.gz in the store (no container ran)."""
    store = get_store()
    key = f"teams/{team.slug}/jobs/{name}/output/model.tar.gz"
    store.put(key, b"model bytes")
    values: dict[str, Any] = {
        "team": team,
        "name": name,
        "created_by": user,
        "image": "studiolo/sklearn:latest",
        "framework": "sklearn",
        "instance_type": "ml.local.small",
        "status": JobStatus.COMPLETED,
        "secondary_status": "Completed",
        "model_artifact_uri": store.uri(key),
        "hyperparameters": {"max_depth": "6"},
        "input_channels": [{"name": "train", "uri": f"file:///data/{team.slug}/train.csv"}],
        "output_path": f"file:///teams/{team.slug}/jobs/{name}/output",
    }
    values.update(fields)
    return Job.objects.create(**values)


def registered(group: ModelPackageGroup, user: User, job_name: str) -> ModelPackage:
    job = completed_job(group.team, user, job_name)
    return package_register_from_job(
        group=group, job=job, actor=user, inference=InferenceSpec(framework="sklearn")
    )


def make_group(
    team: Team, user: User, name: str = "churn", approvals: int = 1
) -> ModelPackageGroup:
    return group_create(team=team, name=name, actor=user, approvals_required=approvals)
