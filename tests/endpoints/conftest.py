"""Endpoint test data: approved packages holding small pure-Python models, made through the
registry's services (so the approval policy is the real one)."""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Callable, Iterator

import pytest
from django.contrib.auth.models import User

from compute.labels import LABEL_INSTANCE, LABEL_KIND, instance_label
from compute.runtime import get_runtime
from endpoints.models import Endpoint
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

# Answers "<tag>:<instance>:<sum of the row>" per CSV row; the instance name comes from the
# environment the fleet gives every serving container.
ECHO_MODEL = """
import os

def model_fn(model_dir):
    return open(os.path.join(model_dir, "tag.txt")).read().strip()

def input_fn(body, content_type):
    if content_type != "text/csv":
        from studiolo_toolkit.handlers import UnsupportedContentTypeError
        raise UnsupportedContentTypeError(content_type)
    text = body.decode() if isinstance(body, bytes) else body
    try:
        return [[float(v) for v in line.split(",")] for line in text.splitlines() if line]
    except ValueError as exc:
        from studiolo_toolkit.handlers import BaseInferenceToolkitError
        raise BaseInferenceToolkitError(400, f"bad CSV: {exc}")

def predict_fn(rows, tag):
    return [f"{tag}:{os.environ.get('STUDIOLO_INSTANCE', '?')}:{sum(r):g}" for r in rows]

def output_fn(prediction, accept):
    return "\\n".join(prediction) + "\\n", "text/csv"
"""

# A model whose server never comes up: model_fn fails after printing a recognisable line.
CRASHING_MODEL = """
def model_fn(model_dir):
    print("loading the crashing model", flush=True)
    raise RuntimeError("this model cannot load: missing weights.bin")
"""


def model_archive(tag: str, code: str = ECHO_MODEL) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in (("tag.txt", tag), ("code/inference.py", code)):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def approved_package(
    team: Team,
    author: User,
    approver: User,
    *,
    group: str = "echo",
    tag: str = "v1",
    code: str = ECHO_MODEL,
    approve: bool = True,
) -> ModelPackage:
    from registry.models import ModelPackageGroup

    store = get_store()
    key = f"teams/{team.slug}/models/{group}-{tag}/model.tar.gz"
    store.put(key, model_archive(tag, code))
    model_group = ModelPackageGroup.objects.filter(team=team, name=group).first() or group_create(
        team=team, name=group, actor=author
    )
    package = package_register_external(
        group=model_group,
        actor=author,
        artifact=ExternalArtifact(artifact_uri=store.uri(key)),
        inference=InferenceSpec(framework="sklearn"),
    )
    if approve:
        package_decide(package=package, actor=approver, decision="approve", comment="ok")
        package.refresh_from_db()
    return package


def wait_for_endpoint(
    endpoint_id: int, until: Callable[[Endpoint], bool], *, timeout: float = 90
) -> Endpoint:
    deadline = time.monotonic() + timeout
    while True:
        endpoint = Endpoint.objects.filter(pk=endpoint_id).first()
        if endpoint is not None and until(endpoint):
            return endpoint
        if time.monotonic() > deadline:
            state = (
                "deleted" if endpoint is None else f"{endpoint.status}: {endpoint.failure_reason}"
            )
            pytest.fail(f"endpoint {endpoint_id} did not get there in {timeout} s ({state})")
        time.sleep(0.1)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """The tasks the services and the fleet hand to workers, recorded instead of sent."""
    calls: list[tuple[str, int]] = []
    for name in ("heal_instance", "deploy_endpoint", "roll_out_endpoint", "delete_endpoint"):
        monkeypatch.setattr(
            f"endpoints.tasks.{name}.delay", lambda pk, name=name: calls.append((name, pk))
        )
    return calls


@pytest.fixture
def no_container_left_behind() -> Iterator[None]:
    """A failed test must not leave serving containers running for the next ones."""
    yield
    runtime = get_runtime()
    for state in runtime.find({LABEL_KIND: "endpoint", LABEL_INSTANCE: instance_label()}):
        runtime.remove(state.id)
