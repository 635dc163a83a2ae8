"""Submitting a batch transform job (SageMaker's CreateTransformJob): every check happens
here, before anything starts, and each failure is a 400 naming the field.

The model is a registered package (`GROUP/VERSION`) or a model made for endpoints (its name),
and the registry's policy decides whether it may be used: only Approved packages are. What
the model is made of (image, artifact, entry point, environment) is copied into the job, so
the job runs what was checked even if the model is deleted meanwhile; whether the package is
still Approved is asked again when the job starts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NotRequired, TypedDict

from compute.runtime import get_runtime
from compute.runtime.base import ENV_KEY
from endpoints.models import ServingModel
from endpoints.services.models import model_require_deployable, package_from_ref, serving_source
from jobs.models import Job, JobKind
from jobs.services.idempotency import Idempotency, job_submit_once
from jobs.services.submission import (
    DEFAULT_MAX_RUNTIME,
    Actor,
    job_admit,
    job_insert,
    key_in_team,
    prefix_or_object_exists,
)
from registry.services.approval import package_require_deployable
from studio.accounts.models import Team
from studio.artifacts import ArtifactStore, get_store
from studio.artifacts.keys import team_prefix
from studio.errors import NotFound, ValidationError
from transform.records import ASSEMBLE_WITH, BATCH_STRATEGIES, SPLIT_TYPES

DEFAULT_EXPERIMENT = "transform-jobs"
# CreateTransformJob's limits (contract section 3).
MAX_PAYLOAD_MB = 100
MAX_CONCURRENCY_TIMES_PAYLOAD = 100
MAX_ENV = 16
MAX_ENV_VALUE = 10240
TIMEOUT_RANGE = (1, 3600)
DEFAULT_INVOCATION_TIMEOUT = 600
MAX_RETRIES = 3
MEDIA_TYPE = re.compile(r"^[\x20-\x7e]{1,256}$")  # printable: it becomes an HTTP header
UNSUPPORTED_SPLIT_TYPES = ("RecordIO", "TFRecord")


class TransformSettings(TypedDict):
    """`Job.transform`: the request as checked, plus what the runner settled on."""

    model: str  # as given: GROUP/VERSION or a model name
    model_package_id: int | None
    serving_model_id: int | None
    model_artifact_uri: str
    program: str  # SAGEMAKER_PROGRAM of the model, "" for the toolkit's default
    model_environment: dict[str, str]
    input_uri: str
    content_type: str
    split_type: str
    compression_type: str
    batch_strategy: str  # "" unset: the container's /execution-parameters, else MultiRecord
    max_payload_mb: int | None  # None unset: the container's, else 6
    max_concurrent_transforms: int | None  # None unset: the container's, else 1
    accept: str
    assemble_with: str
    invocations_timeout_seconds: int
    invocations_max_retries: int
    # Written by the runner once the container answered /execution-parameters.
    effective: NotRequired[dict[str, object]]


@dataclass(frozen=True)
class TransformRequest:
    name: str
    model: str
    input_uri: str
    instance_type: str
    output_path: str = ""
    content_type: str = ""
    split_type: str = "None"
    compression_type: str = "None"
    batch_strategy: str = ""
    max_payload_mb: int | None = None
    max_concurrent_transforms: int | None = None
    accept: str = ""
    assemble_with: str = "None"
    environment: Mapping[str, object] = field(default_factory=dict)
    instance_count: int = 1
    max_runtime_seconds: int = DEFAULT_MAX_RUNTIME
    invocations_timeout_seconds: int = DEFAULT_INVOCATION_TIMEOUT
    invocations_max_retries: int = MAX_RETRIES
    experiment: str = ""


@dataclass(frozen=True)
class _Model:
    image: str
    artifact_uri: str
    program: str
    environment: dict[str, str]
    package_id: int | None = None
    serving_model_id: int | None = None


def transform_job_create(
    *, team: Team, actor: Actor, request: TransformRequest, idempotency: Idempotency | None = None
) -> Job:
    return job_submit_once(
        actor=actor,
        idempotency=idempotency,
        create=lambda: _transform_job_create(
            team=team, actor=actor, request=request, idempotency=idempotency
        ),
    )


def _transform_job_create(
    *, team: Team, actor: Actor, request: TransformRequest, idempotency: Idempotency | None
) -> Job:
    if request.instance_count != 1:
        # Its runner drives one serving container; splitting the input objects across
        # several is not built yet.
        raise ValidationError(
            "instance_count: batch transform runs on one instance", field="instance_count"
        )
    instance = job_admit(
        team=team,
        actor=actor,
        name=request.name,
        instance_type=request.instance_type,
        instance_count=request.instance_count,
        max_runtime_seconds=request.max_runtime_seconds,
    )
    store = get_store()
    model = _model(team, request.model)
    input_key = _input(store, team, request.input_uri)
    content_type = _media_type("content_type", request.content_type)
    split_type, strategy = _splitting(request)
    payload, concurrency = _sizes(request)
    accept = _media_type("accept", request.accept)
    if request.assemble_with not in ASSEMBLE_WITH:
        raise ValidationError(
            f"assemble_with: one of {', '.join(ASSEMBLE_WITH)}", field="assemble_with"
        )
    environment = _environment(request.environment)
    if not TIMEOUT_RANGE[0] <= request.invocations_timeout_seconds <= TIMEOUT_RANGE[1]:
        raise ValidationError(
            f"invocations_timeout_seconds: between {TIMEOUT_RANGE[0]} and {TIMEOUT_RANGE[1]}",
            field="invocations_timeout_seconds",
        )
    if not 0 <= request.invocations_max_retries <= MAX_RETRIES:
        raise ValidationError(
            f"invocations_max_retries: between 0 and {MAX_RETRIES}",
            field="invocations_max_retries",
        )
    output_path = _output_path(store, team, request, input_key)
    settings: TransformSettings = {
        "model": request.model.strip(),
        "model_package_id": model.package_id,
        "serving_model_id": model.serving_model_id,
        "model_artifact_uri": model.artifact_uri,
        "program": model.program,
        "model_environment": model.environment,
        "input_uri": store.uri(input_key),
        "content_type": content_type,
        "split_type": split_type,
        "compression_type": request.compression_type,
        "batch_strategy": strategy,
        "max_payload_mb": payload,
        "max_concurrent_transforms": concurrency,
        "accept": accept,
        "assemble_with": request.assemble_with,
        "invocations_timeout_seconds": request.invocations_timeout_seconds,
        "invocations_max_retries": request.invocations_max_retries,
    }
    return job_insert(
        team=team,
        actor=actor,
        name=request.name,
        experiment=request.experiment or DEFAULT_EXPERIMENT,
        queue=instance.queue,
        audit_details={
            "model": settings["model"],
            "image": model.image,
            "input_uri": settings["input_uri"],
            "instance_type": instance.name,
        },
        idempotency=idempotency,
        fields={
            "kind": JobKind.TRANSFORM,
            "image": model.image,
            "environment": environment,
            "transform": settings,
            "output_path": output_path,
            "instance_type": instance.name,
            "instance_count": request.instance_count,
            "max_runtime_seconds": request.max_runtime_seconds,
            "enable_network": True,  # the studio must reach the serving port
        },
    )


def _model(team: Team, raw: str) -> _Model:
    ref = (raw or "").strip()
    if not ref:
        raise ValidationError(
            "model: give a registered model package as GROUP/VERSION, or a model's name",
            field="model",
        )
    if "/" in ref:
        try:
            package = package_from_ref(team=team, ref=ref)
        except NotFound as exc:  # a request naming a missing model is a bad request
            raise ValidationError(exc.message, field="model") from exc
        package_require_deployable(package)
        model = _Model(
            image=package.image,
            artifact_uri=package.artifact_uri,
            program=package.entry_point,
            environment={},
            package_id=package.pk,
        )
    else:
        serving = (
            ServingModel.objects.filter(team=team, name=ref)
            .select_related("package__group")
            .first()
        )
        if serving is None:
            raise ValidationError(
                f"model: no model named {ref!r} (for a registered package give GROUP/VERSION)",
                field="model",
            )
        model_require_deployable(serving)
        source = serving_source(serving)
        model = _Model(
            image=source.image,
            artifact_uri=source.artifact_uri,
            program=source.program,
            environment=dict(source.environment),
            package_id=serving.package_id,
            serving_model_id=serving.pk,
        )
    if not get_runtime().image_exists(model.image):
        raise ValidationError(
            f"model: the model's image {model.image!r} does not exist on the container engine",
            field="model",
        )
    return model


def _input(store: ArtifactStore, team: Team, uri: str) -> str:
    if not uri:
        raise ValidationError(
            "input_uri: required: the S3 prefix (or object) to transform", field="input_uri"
        )
    key = key_in_team(store, team, uri, "input_uri")
    if not prefix_or_object_exists(store, key):
        raise ValidationError(f"input_uri: {uri} does not exist", field="input_uri")
    return key


def _media_type(name: str, value: str) -> str:
    value = (value or "").strip()
    if value and not MEDIA_TYPE.match(value):
        raise ValidationError(
            f"{name}: a media type like text/csv (1-256 printable characters)", field=name
        )
    return value


def _splitting(request: TransformRequest) -> tuple[str, str]:
    if request.split_type in UNSUPPORTED_SPLIT_TYPES:
        raise ValidationError(
            f"split_type: {request.split_type} is not supported (None or Line)", field="split_type"
        )
    if request.split_type not in SPLIT_TYPES:
        raise ValidationError(f"split_type: one of {', '.join(SPLIT_TYPES)}", field="split_type")
    if request.compression_type != "None":
        raise ValidationError(
            f"compression_type: {request.compression_type!r} is not supported (None)",
            field="compression_type",
        )
    strategy = request.batch_strategy or ""
    if strategy and strategy not in BATCH_STRATEGIES:
        raise ValidationError(
            f"batch_strategy: one of {', '.join(BATCH_STRATEGIES)}", field="batch_strategy"
        )
    if strategy and request.split_type == "None":
        raise ValidationError(
            "batch_strategy: needs split_type Line; with None every object is one request",
            field="batch_strategy",
        )
    return request.split_type, strategy


def _sizes(request: TransformRequest) -> tuple[int | None, int | None]:
    payload = request.max_payload_mb
    if payload == 0:
        raise ValidationError(
            "max_payload_mb: 0 (unlimited, chunked requests) is not supported; between 1 and "
            f"{MAX_PAYLOAD_MB}",
            field="max_payload_mb",
        )
    if payload is not None and not 1 <= payload <= MAX_PAYLOAD_MB:
        raise ValidationError(
            f"max_payload_mb: between 1 and {MAX_PAYLOAD_MB}", field="max_payload_mb"
        )
    concurrency = request.max_concurrent_transforms or None  # 0 is "ask the container"
    if concurrency is not None and not 1 <= concurrency <= MAX_CONCURRENCY_TIMES_PAYLOAD:
        raise ValidationError(
            f"max_concurrent_transforms: between 0 and {MAX_CONCURRENCY_TIMES_PAYLOAD}",
            field="max_concurrent_transforms",
        )
    if payload and concurrency and payload * concurrency > MAX_CONCURRENCY_TIMES_PAYLOAD:
        raise ValidationError(
            "max_concurrent_transforms: max_concurrent_transforms × max_payload_mb must not "
            f"exceed {MAX_CONCURRENCY_TIMES_PAYLOAD} (got {concurrency} × {payload})",
            field="max_concurrent_transforms",
        )
    return payload, concurrency


def _environment(raw: Mapping[str, object]) -> dict[str, str]:
    if not isinstance(raw, Mapping) or len(raw) > MAX_ENV:
        raise ValidationError(
            f"environment: an object of at most {MAX_ENV} entries", field="environment"
        )
    result: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not ENV_KEY.match(key):
            raise ValidationError(
                f"environment.{key}: not a valid variable name", field="environment"
            )
        if not isinstance(value, str) or len(value) > MAX_ENV_VALUE:
            raise ValidationError(
                f"environment.{key}: a string of at most {MAX_ENV_VALUE} characters",
                field=f"environment.{key}",
            )
        result[key] = value
    return result


def _output_path(
    store: ArtifactStore, team: Team, request: TransformRequest, input_key: str
) -> str:
    if not request.output_path:
        return store.uri(f"{team_prefix(team)}jobs/{request.name}/output")
    key = key_in_team(store, team, request.output_path, "output_path")
    if (key.rstrip("/") + "/").startswith(input_key.rstrip("/") + "/"):
        # A second run would transform the first run's .out objects.
        raise ValidationError(
            "output_path: must not be inside the input prefix", field="output_path"
        )
    return store.uri(key).rstrip("/")
