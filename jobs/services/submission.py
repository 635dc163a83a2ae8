"""Submitting a job: every check happens here, before anything starts.

A request that passes is stored as a Pending job with its run, audited, and handed to the
worker queue of its instance type after the transaction commits. If the broker (Redis) cannot
take the task then, the submission still succeeds: the job is stored, `dispatched_at` stays
empty, and reconciliation hands it over as soon as the broker answers (`job_dispatch`).

A submission may carry an idempotency key (the API's `Idempotency-Key` header, see
`jobs.services.idempotency`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db import IntegrityError, transaction
from django.utils import timezone

from compute import archives
from compute.frameworks import framework_image
from compute.instance_types import InstanceType, instance_type_get
from compute.runtime import get_runtime
from compute.runtime.base import ENV_KEY
from experiments.models import RunSource
from experiments.services import experiment_get_or_create, run_create
from jobs.contract import DISTRIBUTIONS, FULLY_REPLICATED
from jobs.models import Job, JobKind, JobStatus, JobTransition, SecondaryStatus
from jobs.names import CHANNEL_NAME_RULE, JOB_NAME_RULE, is_channel_name, is_job_name
from jobs.services.idempotency import Idempotency, job_submit_once
from jobs.services.lifecycle import job_status_payload
from studio.accounts.models import Team
from studio.accounts.roles import Action
from studio.accounts.services import require_permission
from studio.artifacts import ArtifactStore, get_store
from studio.artifacts.errors import ArtifactStoreError
from studio.artifacts.integrity import artifact_label
from studio.artifacts.keys import team_prefix
from studio.audit.services import audit_record
from studio.errors import ValidationError
from studio.events import publish_team_event

log = logging.getLogger(__name__)

Actor = AbstractBaseUser | AnonymousUser | None

# SageMaker's limits and name rules (jobs.names), so requests valid there are valid here
# and back.
MAX_HYPERPARAMETERS = 100
MAX_CHANNELS = 20
MAX_METRICS = 40
MAX_ENV = 100
MAX_RUNTIME_LIMIT = 28 * 24 * 3600
DEFAULT_MAX_RUNTIME = 24 * 3600
DEFAULT_EXPERIMENT = "training-jobs"
# How much of a source archive's content a submission reads past (decompressing it) to check
# its headers: about a second of work. A bigger archive is checked in full by the worker.
SUBMISSION_SCAN_BYTES = 256 * 1024 * 1024
INPUT_MODES = ("File",)


@dataclass(frozen=True)
class ChannelRequest:
    name: str
    uri: str
    content_type: str = ""
    input_mode: str = "File"
    distribution: str = FULLY_REPLICATED  # S3DataDistributionType


@dataclass(frozen=True)
class MetricDefinition:
    name: str
    regex: str


@dataclass(frozen=True)
class JobRequest:
    name: str
    instance_type: str
    image: str = ""
    framework: str = ""
    entry_point: str = ""
    source_uri: str = ""
    hyperparameters: Mapping[str, object] = field(default_factory=dict)
    environment: Mapping[str, object] = field(default_factory=dict)
    channels: Sequence[ChannelRequest] = ()
    output_path: str = ""
    instance_count: int = 1
    max_runtime_seconds: int = DEFAULT_MAX_RUNTIME
    metric_definitions: Sequence[MetricDefinition] = ()
    container_entrypoint: Sequence[str] | None = None
    container_arguments: Sequence[str] | None = None
    enable_network: bool = False
    experiment: str = ""


def job_admit(
    *,
    team: Team,
    actor: Actor,
    name: str,
    instance_type: str,
    instance_count: int,
    max_runtime_seconds: int,
) -> InstanceType:
    """What every kind of job must pass before its own checks (training and batch transform
    alike): the actor may submit in the team, the name is free, the instance type exists, an
    instance count within its limit (one on the process runtime), a runtime limit in range.
    Returns the instance type."""
    require_permission(user=actor, team=team, action=Action.SUBMIT_JOB)
    check_job_name(team, name)
    instance = instance_type_get(instance_type)
    if not 1 <= instance_count <= instance.max_count:
        raise ValidationError(
            f"instance_count: between 1 and {instance.max_count} for instance type "
            f"{instance.name} (its max_count in INSTANCE_TYPES)",
            field="instance_count",
        )
    if instance_count > 1 and not get_runtime().isolated:
        raise ValidationError(
            "instance_count: the process runtime runs one instance per job (its jobs share "
            "the host and have no network of their own); use the Docker runtime for "
            f"{instance_count} instances",
            field="instance_count",
        )
    if not 1 <= max_runtime_seconds <= MAX_RUNTIME_LIMIT:
        raise ValidationError(
            f"max_runtime_seconds: between 1 and {MAX_RUNTIME_LIMIT}", field="max_runtime_seconds"
        )
    return instance


def job_create(
    *, team: Team, actor: Actor, request: JobRequest, idempotency: Idempotency | None = None
) -> Job:
    return job_submit_once(
        actor=actor,
        idempotency=idempotency,
        create=lambda: _job_create(
            team=team, actor=actor, request=request, idempotency=idempotency
        ),
    )


def _job_create(
    *, team: Team, actor: Actor, request: JobRequest, idempotency: Idempotency | None
) -> Job:
    instance = job_admit(
        team=team,
        actor=actor,
        name=request.name,
        instance_type=request.instance_type,
        instance_count=request.instance_count,
        max_runtime_seconds=request.max_runtime_seconds,
    )
    store = get_store()
    hyperparameters = _hyperparameters(request.hyperparameters)
    environment = _environment(request.environment)
    metrics = _metric_definitions(request.metric_definitions)
    entrypoint = _string_list("container_entrypoint", request.container_entrypoint)
    arguments = _string_list("container_arguments", request.container_arguments)
    image = _image(request)
    source_uri = _source(store, team, request)
    channels = _channels(store, team, request.channels)
    output_path = _output_path(store, team, request.output_path)

    return job_insert(
        team=team,
        actor=actor,
        name=request.name,
        experiment=request.experiment or DEFAULT_EXPERIMENT,
        queue=instance.queue,
        audit_details={"image": image, "instance_type": instance.name},
        idempotency=idempotency,
        fields={
            "kind": JobKind.TRAINING,
            "image": image,
            "framework": request.framework,
            "entry_point": request.entry_point,
            "source_uri": source_uri,
            "hyperparameters": hyperparameters,
            "environment": environment,
            "container_entrypoint": entrypoint,
            "container_arguments": arguments,
            "input_channels": channels,
            "output_path": output_path,
            "metric_definitions": metrics,
            "instance_type": instance.name,
            "instance_count": request.instance_count,
            "max_runtime_seconds": request.max_runtime_seconds,
            "enable_network": request.enable_network,
        },
    )


def job_insert(
    *,
    team: Team,
    actor: Actor,
    name: str,
    experiment: str,
    queue: str,
    audit_details: dict[str, Any],
    fields: dict[str, Any],
    idempotency: Idempotency | None = None,
) -> Job:
    """Store a checked request as a Pending job with its run, audit it, and hand it to the
    worker queue `queue` once the transaction commits. Every kind of job is made here."""
    if idempotency is not None and isinstance(actor, User):
        fields = {
            **fields,
            "idempotency_key": idempotency.key,
            "request_digest": idempotency.digest,
        }
    with transaction.atomic():
        run = run_create(
            experiment=experiment_get_or_create(team=team, name=experiment, actor=actor),
            name=name,
            actor=actor,
            source=RunSource.JOB,
        )
        try:
            with transaction.atomic():
                job = Job.objects.create(
                    team=team,
                    name=name,
                    created_by=actor if isinstance(actor, User) else None,
                    run=run,
                    **fields,
                )
        except IntegrityError as exc:  # lost a race with a request using the same name (or key)
            raise ValidationError(
                f"name: a job named {name!r} exists already", field="name"
            ) from exc
        actor_name = actor.get_username() if isinstance(actor, User) else "system"
        JobTransition.objects.create(
            job=job,
            to_status=JobStatus.PENDING,
            secondary_status=SecondaryStatus.STARTING,
            message="Job submitted",
            actor_name=actor_name,
        )
        audit_record(
            actor=actor,
            action="job.created",
            target=job,
            team=team,
            details={"kind": job.kind, **audit_details},
        )
        publish_team_event(
            team_id=team.pk,
            team_slug=team.slug,
            event="job.status",
            data=job_status_payload(job, actor=actor_name),
        )
        # After the commit: a worker must find the job. A broker that is away then fails
        # nothing: the job is stored, and reconciliation dispatches it later.
        transaction.on_commit(lambda: job_dispatch(job_id=job.pk, queue=queue))
    return job


def job_dispatch(*, job_id: int, queue: str) -> bool:
    """Hand the job's task to the broker; records when. False (logged) when the broker did
    not take it: the job waits, Pending, for reconciliation to try again."""
    from jobs.tasks import run_job  # tasks import services; import here, not at load

    try:
        run_job.apply_async(args=[job_id], queue=queue)
    except Exception as exc:  # kombu's OperationalError, redis' errors, a socket error...
        log.warning(
            "job %s: the work queue is unreachable (%s: %s); it is dispatched once it answers",
            job_id,
            type(exc).__name__,
            exc,
        )
        return False
    Job.objects.filter(pk=job_id, dispatched_at__isnull=True).update(dispatched_at=timezone.now())
    return True


def check_job_name(team: Team, name: str) -> None:
    if not is_job_name(name):
        raise ValidationError(f"name: {JOB_NAME_RULE}", field="name")
    if Job.objects.filter(team=team, name=name).exists():
        raise ValidationError(f"name: a job named {name!r} exists already", field="name")


def _hyperparameters(raw: Mapping[str, object]) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise ValidationError(
            "hyperparameters: expected an object of name -> string", field="hyperparameters"
        )
    if len(raw) > MAX_HYPERPARAMETERS:
        raise ValidationError(
            f"hyperparameters: at most {MAX_HYPERPARAMETERS}", field="hyperparameters"
        )
    result: dict[str, str] = {}
    for key, value in raw.items():
        where = f"hyperparameters.{key}"
        if not isinstance(key, str) or not 1 <= len(key) <= 256:
            raise ValidationError(f"{where}: names are 1-256 characters", field="hyperparameters")
        if not isinstance(value, str):
            raise ValidationError(
                f"{where}: values are strings, as in SageMaker (got {type(value).__name__}); "
                "JSON-encode structured values",
                field=where,
            )
        if len(value) > 2500:
            raise ValidationError(f"{where}: at most 2500 characters", field=where)
        result[key] = value
    return result


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
        if not isinstance(value, str) or len(value) > 512:
            raise ValidationError(
                f"environment.{key}: a string of at most 512 characters", field=f"environment.{key}"
            )
        result[key] = value
    return result


def _metric_definitions(raw: Sequence[MetricDefinition]) -> list[dict[str, str]]:
    if len(raw) > MAX_METRICS:
        raise ValidationError(
            f"metric_definitions: at most {MAX_METRICS}", field="metric_definitions"
        )
    result: list[dict[str, str]] = []
    seen: set[str] = set()
    for metric in raw:
        where = f"metric_definitions.{metric.name}"
        if not 1 <= len(metric.name) <= 255 or metric.name in seen:
            raise ValidationError(
                f"{where}: names are unique, 1-255 characters", field="metric_definitions"
            )
        if not 1 <= len(metric.regex) <= 500:
            raise ValidationError(f"{where}: the regex is 1-500 characters", field=where)
        try:
            compiled = re.compile(metric.regex)
        except re.error as exc:
            raise ValidationError(f"{where}: invalid regex: {exc}", field=where) from exc
        if compiled.groups < 1:
            raise ValidationError(
                f"{where}: the regex needs a capture group for the value", field=where
            )
        seen.add(metric.name)
        result.append({"name": metric.name, "regex": metric.regex})
    return result


def _string_list(name: str, raw: Sequence[str] | None) -> list[str] | None:
    if raw is None:
        return None
    if isinstance(raw, str) or not 1 <= len(raw) <= 100 or not all(isinstance(v, str) for v in raw):
        raise ValidationError(f"{name}: a list of 1-100 strings", field=name)
    return list(raw)


def _image(request: JobRequest) -> str:
    if bool(request.image) == bool(request.framework):
        raise ValidationError("image: give either an image or a framework", field="image")
    if request.framework:
        if not request.entry_point:
            raise ValidationError(
                "entry_point: script mode needs an entry point", field="entry_point"
            )
        image = framework_image(request.framework)
    else:
        image = request.image
    if not get_runtime().image_exists(image):
        field_name = "framework" if request.framework else "image"
        raise ValidationError(
            f"{field_name}: image {image!r} does not exist on the container engine",
            field=field_name,
        )
    return image


def key_in_team(store: ArtifactStore, team: Team, uri: str, field_name: str) -> str:
    try:
        key = store.key_from_uri(uri.rstrip("/"))
    except ArtifactStoreError as exc:
        raise ValidationError(f"{field_name}: {exc.message}", field=field_name) from exc
    if not (key + "/").startswith(team_prefix(team)):
        # Outside the team's area is, for this team, the same as not existing.
        raise ValidationError(f"{field_name}: {uri} does not exist", field=field_name)
    return key


def prefix_or_object_exists(store: ArtifactStore, key: str) -> bool:
    """An object, or a prefix with at least one object below it."""
    if store.exists(key):
        return True
    return next(iter(store.list(key.rstrip("/") + "/")), None) is not None


def _source(store: ArtifactStore, team: Team, request: JobRequest) -> str:
    if not request.source_uri:
        return ""
    key = key_in_team(store, team, request.source_uri, "source_uri")
    if store.exists(key):
        if not key.endswith((".tar.gz", ".tgz")):
            raise ValidationError(
                "source_uri: expected a sourcedir.tar.gz or a folder", field="source_uri"
            )
        _check_source_archive(store, key, request.entry_point)
    elif not prefix_or_object_exists(store, key):
        raise ValidationError(
            f"source_uri: {request.source_uri} does not exist", field="source_uri"
        )
    elif request.entry_point and not store.exists(key.rstrip("/") + "/" + request.entry_point):
        raise ValidationError(
            f"entry_point: {request.entry_point!r} is not in the source folder", field="entry_point"
        )
    return store.uri(key)


def _check_source_archive(store: ArtifactStore, key: str, entry_point: str) -> None:
    """What is cheap to check in a web request: the archive's headers, within the archive
    limits, up to SUBMISSION_SCAN_BYTES of content, and the entry point among them. The
    archive is unpacked by the worker, which applies the limits to the rest (and looks for an
    entry point the scan did not reach)."""
    with store.open(key) as stream:
        scanned = archives.scan(
            stream,
            archive_size=store.stat(key).size,
            label=f"source archive {artifact_label(store, key)}",
            field="source_uri",
            wanted=entry_point,
            budget_bytes=SUBMISSION_SCAN_BYTES,
        )
    if entry_point and scanned.complete and not scanned.found:
        raise ValidationError(
            f"entry_point: {entry_point!r} is not in the source archive", field="entry_point"
        )


def _channels(
    store: ArtifactStore, team: Team, channels: Sequence[ChannelRequest]
) -> list[dict[str, str]]:
    if len(channels) > MAX_CHANNELS:
        raise ValidationError(f"input_channels: at most {MAX_CHANNELS}", field="input_channels")
    result: list[dict[str, str]] = []
    names: set[str] = set()
    for channel in channels:
        where = f"input_channels.{channel.name}"
        if not is_channel_name(channel.name) or channel.name in names:
            raise ValidationError(
                f"{where}: names are unique, {CHANNEL_NAME_RULE}", field="input_channels"
            )
        if channel.input_mode not in INPUT_MODES:
            raise ValidationError(
                f"{where}: input mode {channel.input_mode!r} is not supported (File)", field=where
            )
        if channel.distribution not in DISTRIBUTIONS:
            raise ValidationError(
                f"{where}: distribution {channel.distribution!r} is not one of "
                f"{', '.join(DISTRIBUTIONS)}",
                field=where,
            )
        key = key_in_team(store, team, channel.uri, where)
        if not prefix_or_object_exists(store, key):
            raise ValidationError(f"{where}: {channel.uri} does not exist", field=where)
        names.add(channel.name)
        result.append(
            {
                "name": channel.name,
                "uri": store.uri(key),
                "content_type": channel.content_type,
                "input_mode": channel.input_mode,
                "distribution": channel.distribution,
            }
        )
    return result


def _output_path(store: ArtifactStore, team: Team, raw: str) -> str:
    if not raw:
        return store.uri(team_prefix(team) + "jobs").rstrip("/")
    key = key_in_team(store, team, raw, "output_path")
    return store.uri(key).rstrip("/")
