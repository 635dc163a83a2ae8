"""The API against the real server with a team that has data (the schema test and the
fuzzer)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from celery.app.task import Task

from endpoints.services.lifecycle import endpoint_create
from endpoints.services.models import VariantRequest, config_create, model_for_package
from experiments.services import (
    MetricInput,
    experiment_create,
    run_artifact_put,
    run_create,
    run_log_batch,
)
from jobs.services.submission import JobRequest, job_create
from pipelines.services import pipeline_create, pipeline_update
from registry.services.approval import package_decide
from studio.accounts.services import token_create
from studio.artifacts import get_store
from studio.webhooks.services import webhook_create
from tests.endpoints.conftest import approved_package
from tests.factories import make_team, make_user
from tests.pipelines.support import canonical, small


@dataclass(frozen=True)
class ApiLab:
    token: str
    known: dict[str, dict[str, Any]]  # path prefix -> path parameters of existing objects


@pytest.fixture
def api_lab(asgi_server: str, monkeypatch: pytest.MonkeyPatch) -> ApiLab:
    """Team `lab` with one of everything, made through the services, and the token of its
    admin; the real server runs. Celery's dispatch is stubbed: a job or an endpoint is
    recorded and validated, and no container starts."""
    monkeypatch.setattr(Task, "apply_async", lambda *args, **kwargs: None)
    team = make_team("lab")
    admin = make_user(team, role="admin", username="ada")
    approver = make_user(team, role="approver", username="abe")
    experiment = experiment_create(team=team, name="churn", actor=admin)
    run = run_create(experiment=experiment, name="baseline", actor=admin, tags={"stage": "dev"})
    run_log_batch(
        run=run,
        actor=admin,
        metrics=[
            MetricInput("loss", 1.0 / (step + 1), step, 1_700_000_000_000) for step in range(50)
        ],
        params=[("lr", "0.1")],
    )
    run_artifact_put(run=run, actor=admin, path="notes.txt", data=io.BytesIO(b"hello"))
    package = approved_package(team, admin, approver, group="churn")
    approved_package(team, admin, approver, group="churn", tag="v2", approve=False)
    package_decide(
        package=package.group.packages.get(version=2),
        actor=approver,
        decision="reject",
        comment="no",
    )
    model = model_for_package(team=team, actor=admin, package=package)
    config = config_create(
        team=team, actor=admin, name="churn-config", variants=[VariantRequest(model=model)]
    )
    endpoint_create(team=team, actor=admin, name="churn-api", config=config)
    job = job_create(
        team=team,
        actor=admin,
        request=JobRequest(
            name="train-1", instance_type="ml.local.small", image="studiolo/sklearn:latest"
        ),
    )
    webhook, _ = webhook_create(
        team=team, actor=admin, url="https://hooks.example.org/studiolo", events=["*"]
    )
    get_store().put("teams/lab/data/train.csv", b"1,2\n")
    pipeline = pipeline_create(team=team, name="abalone", definition=canonical(), actor=admin)
    pipeline_update(pipeline=pipeline, definition=small(), actor=admin)
    spare, _ = token_create(user=admin, name="spare")
    _, secret = token_create(user=admin, name="fuzz")
    return ApiLab(
        token=secret,
        known={
            "/api/v1/teams/{team}/model-groups/{name}": {
                "team": "lab",
                "name": "churn",
                "version": 1,
            },
            "/api/v1/teams/{team}": {"team": "lab", "webhook_id": webhook.pk},
            "/api/v1/endpoints/{name}": {"name": "churn-api"},
            "/api/v1/endpoint-configs/{name}": {"name": "churn-config"},
            "/api/v1/models/{name}": {"name": model.name},
            "/api/v1/experiments/{experiment_id}": {"experiment_id": experiment.pk},
            "/api/v1/runs/{run_id}": {"run_id": run.run_uuid, "key": "stage", "path": "notes.txt"},
            "/api/v1/jobs/{job_id}": {"job_id": job.pk},
            "/api/v1/tokens/{token_id}": {"token_id": spare.pk},
            "/api/v1/artifacts/{key}": {"key": "teams/lab/data/train.csv"},
            "/api/v1/pipelines/{name}": {"name": "abalone", "number": 1, "a": 1, "b": 2},
        },
    )


def served_schema(base_url: str, token: str) -> Any:
    """The OpenAPI schema the server serves, loaded by Schemathesis."""
    schema_json = httpx.get(
        f"{base_url}/api/v1/schema/?format=json",
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    ).json()
    return schemathesis.openapi.from_dict(schema_json)
