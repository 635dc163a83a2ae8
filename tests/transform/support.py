"""What the batch transform tests share: a tiny model with pure-Python hooks, registered and
approved through the registry's services, and the REST calls.

The model predicts the sum of a CSV row's numbers plus the offset stored in its archive, one
answer line per input line; the row `boom` makes it raise. It prints the batch environment
variables when it loads, so tests can read them in the job's log.
"""

from __future__ import annotations

import io
import tarfile
import textwrap
import time
from typing import Any

from django.contrib.auth.models import User
from django.test import Client

from jobs.models import Job, JobLogLine
from registry.models import ModelPackage
from registry.services.approval import package_decide
from registry.services.registration import (
    ExternalArtifact,
    InferenceSpec,
    group_create,
    package_register_external,
)
from studio.accounts.models import Team
from studio.artifacts import get_store

INFERENCE = textwrap.dedent(
    """
    import json, os, time

    BATCH_VARIABLES = ("SAGEMAKER_BATCH", "SAGEMAKER_BATCH_STRATEGY",
                       "SAGEMAKER_MAX_PAYLOAD_IN_MB", "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS")

    def model_fn(model_dir):
        print("batch env:", ",".join(f"{k}={os.environ.get(k, '')}" for k in BATCH_VARIABLES),
              flush=True)
        with open(os.path.join(model_dir, "offset.txt")) as f:
            return float(f.read())

    def input_fn(body, content_type):
        if content_type != "text/csv":
            raise ValueError(f"expected text/csv, got {content_type}")
        return (body.decode() if isinstance(body, bytes) else body).splitlines()

    def predict_fn(rows, offset):
        delay = float(os.environ.get("SLOW_SECONDS", "0"))
        if delay:
            time.sleep(delay)
        predictions = []
        for row in rows:
            if row.strip() == "boom":
                raise ValueError("cannot score 'boom'")
            predictions.append(sum(float(x) for x in row.split(",")) + offset)
        return predictions

    def output_fn(predictions, accept):
        if accept == "application/json":
            return json.dumps(predictions), accept
        return "".join(f"{p:g}\\n" for p in predictions), "text/csv"
    """
)

# Dies while loading: the serving container exits before it ever answers /ping.
BROKEN_INFERENCE = textwrap.dedent(
    """
    import os, signal
    print("model cannot start: the weights file is missing", flush=True)
    os.kill(os.getppid(), signal.SIGKILL)
    """
)


def model_archive(inference: str = INFERENCE, offset: float = 0.0) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in (("offset.txt", str(offset)), ("code/inference.py", inference)):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def register_model(
    team: Team,
    author: User,
    approver: User | None,
    *,
    group: str = "summer",
    inference: str = INFERENCE,
    offset: float = 0.0,
) -> ModelPackage:
    """A package of the model in `team`, approved by `approver` (left pending without one)."""
    store = get_store()
    key = f"teams/{team.slug}/models/{group}-{time.monotonic_ns()}/model.tar.gz"
    store.put(key, model_archive(inference, offset))
    package = package_register_external(
        group=group_create(team=team, name=group, actor=author),
        actor=author,
        artifact=ExternalArtifact(store.uri(key)),
        inference=InferenceSpec(framework="sklearn"),
    )
    if approver is not None:
        package = package_decide(
            package=package, actor=approver, decision="approve", comment="fine for tests"
        ).package
    return package


def put_inputs(team: Team, prefix: str, files: dict[str, str]) -> str:
    """Objects below `teams/<team>/<prefix>/`; the prefix's URI."""
    store = get_store()
    for relative, text in files.items():
        store.put(f"teams/{team.slug}/{prefix}/{relative}", text.encode())
    return store.uri(f"teams/{team.slug}/{prefix}")


def read_text(uri: str) -> str:
    store = get_store()
    return store.get(store.key_from_uri(uri)).decode()


def exists(uri: str) -> bool:
    store = get_store()
    return store.exists(store.key_from_uri(uri))


class TransformApi:
    def __init__(self, client: Client, team: Team, token: str) -> None:
        self.client, self.team = client, team
        self.auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    def post(self, body: dict[str, Any]) -> Any:
        return self.client.post(
            "/api/v1/transform-jobs", body, content_type="application/json", **self.auth
        )

    def submit(self, **fields: Any) -> int:
        body = {"instance_type": "ml.local.small", **fields}
        response = self.post(body)
        assert response.status_code == 201, response.content
        return int(response.json()["id"])

    def describe(self, job_id: int) -> dict[str, Any]:
        response = self.client.get(f"/api/v1/jobs/{job_id}", **self.auth)
        assert response.status_code == 200, response.content
        result: dict[str, Any] = response.json()
        return result

    def stop(self, job_id: int) -> Any:
        return self.client.post(f"/api/v1/jobs/{job_id}/stop", **self.auth)


def log_text(job: Job) -> str:
    return "\n".join(
        JobLogLine.objects.filter(job=job).order_by("seq").values_list("line", flat=True)
    )
