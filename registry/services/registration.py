"""Creating groups and registering model packages, with their lineage."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db import IntegrityError, transaction
from django.db.models import Max

from compute.frameworks import framework_image
from compute.runtime import get_runtime
from experiments.models import MetricSummary
from jobs.models import Job, JobStatus
from registry.models import ApprovalStatus, ApprovalTransition, ModelPackage, ModelPackageGroup
from registry.services.artifacts import artifact_pin_read
from studio.accounts.models import Team
from studio.accounts.roles import Action
from studio.accounts.services import permission_refusal, require_permission
from studio.artifacts import get_store
from studio.artifacts.buckets import key_for_uri
from studio.artifacts.errors import ArtifactStoreError
from studio.artifacts.integrity import ArtifactPin
from studio.audit.services import audit_record
from studio.errors import NotFound, StudioloError, ValidationError
from studio.events import publish_team_event
from studio.names import NAME_RULE, is_name
from studio.webhooks.services import webhooks_emit

Actor = AbstractBaseUser | AnonymousUser | None
MAX_APPROVALS_REQUIRED = 10


@dataclass(frozen=True)
class InferenceSpec:
    """How the package is served: a framework (its image) or an image, and the handler."""

    framework: str = ""
    image: str = ""
    entry_point: str = ""
    content_types: Sequence[str] = ("text/csv", "application/json")
    response_types: Sequence[str] = ("application/json", "text/csv")


class _Artifact(NamedTuple):
    uri: str
    key: str
    field: str  # the request's field that named it, for errors


@dataclass(frozen=True)
class ExternalArtifact:
    artifact_uri: str
    metrics: Mapping[str, object] = field(default_factory=dict)


def group_create(
    *, team: Team, name: str, actor: Actor, description: str = "", approvals_required: int = 1
) -> ModelPackageGroup:
    require_permission(user=actor, team=team, action=Action.REGISTER_MODEL)
    if not is_name(name):
        raise ValidationError(f"name: {NAME_RULE}", field="name")
    if not 1 <= approvals_required <= MAX_APPROVALS_REQUIRED:
        raise ValidationError(
            f"approvals_required: between 1 and {MAX_APPROVALS_REQUIRED}",
            field="approvals_required",
        )
    try:
        with transaction.atomic():
            group = ModelPackageGroup.objects.create(
                team=team,
                name=name,
                description=description,
                approvals_required=approvals_required,
                created_by=actor if isinstance(actor, User) else None,
            )
            audit_record(
                actor=actor,
                action="model_group.created",
                target=group,
                team=team,
                details={"approvals_required": approvals_required},
            )
    except IntegrityError as exc:
        raise ValidationError(
            f"name: a model group named {name!r} exists already", field="name"
        ) from exc
    return group


def package_register_from_job(
    *,
    group: ModelPackageGroup,
    job: Job,
    actor: Actor,
    inference: InferenceSpec,
    description: str = "",
    pin: ArtifactPin | None = None,
    metrics: Mapping[str, object] | None = None,
) -> ModelPackage:
    """Register a completed job's model, copying its lineage: job, run, hyperparameters,
    input data, training image and its digest, and the run's final metrics, with `metrics`
    (an evaluation report's `{name: number}`) over them. `pin` is the model's, when the
    caller read it already (outside its transaction)."""
    require_permission(user=actor, team=group.team, action=Action.REGISTER_MODEL)
    key = _job_model_key(job, group.team)
    recorded: dict[str, Any] = {}
    if job.run_id is not None:
        recorded = {s.key: s.last_value for s in MetricSummary.objects.filter(run_id=job.run_id)}
    recorded.update(_metrics(metrics or {}))
    return _register(
        group=group,
        actor=actor,
        inference=inference,
        description=description,
        artifact=_Artifact(job.model_artifact_uri, key, "job"),
        pin=pin,
        lineage={
            "external": False,
            "source_job": job,
            "source_run_id": job.run_id,
            "hyperparameters": dict(job.hyperparameters),
            "input_data": [{"name": c["name"], "uri": c["uri"]} for c in job.input_channels],
            "training_image": job.image,
            "image_digest": _digest(job.image),
            "metrics": recorded,
        },
    )


def registration_refusal(*, job: Job, actor: Actor) -> StudioloError | None:
    """Why `actor` may not register `job`'s model now, or None when they may: the role in
    the job's team, and a Completed job whose model is in the artifact store. The one
    statement of these rules: registering raises the answer (`require_permission`,
    `_job_model_key`), the UI asks it whether to offer Register."""
    refusal = permission_refusal(user=actor, team=job.team, action=Action.REGISTER_MODEL)
    if refusal is not None:
        return refusal
    try:
        _job_model_key(job, job.team)
    except StudioloError as error:
        return error
    return None


def _job_model_key(job: Job, team: Team) -> str:
    """The key of a job's model archive, if the job may be registered in `team`."""
    if job.team_id != team.pk:
        raise NotFound(f"job {job.pk} not found", field="job")
    if job.status != JobStatus.COMPLETED or not job.model_artifact_uri:
        raise ValidationError(
            f"job: {job.name} is {job.status}; only a Completed job with a model can be registered",
            field="job",
        )
    try:
        return get_store().key_from_uri(job.model_artifact_uri)
    except ArtifactStoreError as exc:
        raise ValidationError(
            f"job: the model of {job.name} is not in the artifact store ({exc.message})",
            field="job",
        ) from exc


def package_register_external(
    *,
    group: ModelPackageGroup,
    actor: Actor,
    artifact: ExternalArtifact,
    inference: InferenceSpec,
    description: str = "",
) -> ModelPackage:
    """Register a model.tar.gz that did not come from a Studiolo job (marked external)."""
    require_permission(user=actor, team=group.team, action=Action.REGISTER_MODEL)
    store = get_store()
    key = key_for_uri(store, artifact.artifact_uri, group.team, field="artifact_uri")
    if not store.exists(key):
        raise ValidationError(
            f"artifact_uri: {artifact.artifact_uri} does not exist", field="artifact_uri"
        )
    if not key.endswith(".tar.gz"):
        raise ValidationError("artifact_uri: a model is a .tar.gz archive", field="artifact_uri")
    return _register(
        group=group,
        actor=actor,
        inference=inference,
        description=description,
        artifact=_Artifact(store.uri(key), key, "artifact_uri"),
        lineage={"external": True, "metrics": _metrics(artifact.metrics)},
    )


def _metrics(raw: Mapping[str, object]) -> dict[str, float]:
    """An uploaded evaluation report: {name: number}."""
    if not isinstance(raw, Mapping) or len(raw) > 100:
        raise ValidationError("metrics: an object of at most 100 name -> number", field="metrics")
    result: dict[str, float] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not 1 <= len(name) <= 250:
            raise ValidationError("metrics: names are 1-250 characters", field="metrics")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError(f"metrics.{name}: expected a number", field=f"metrics.{name}")
        result[name] = float(value)
    return result


def _inference_image(inference: InferenceSpec) -> tuple[str, str]:
    if bool(inference.framework) == bool(inference.image):
        raise ValidationError("image: give either an inference image or a framework", field="image")
    image = framework_image(inference.framework) if inference.framework else inference.image
    if not get_runtime().image_exists(image):
        field_name = "framework" if inference.framework else "image"
        raise ValidationError(
            f"{field_name}: image {image!r} does not exist on the container engine",
            field=field_name,
        )
    for name, values in (
        ("content_types", inference.content_types),
        ("response_types", inference.response_types),
    ):
        if isinstance(values, str) or not all(isinstance(v, str) and "/" in v for v in values):
            raise ValidationError(f"{name}: a list of media types like text/csv", field=name)
    return image, inference.framework


def _digest(image: str) -> str:
    try:
        return get_runtime().image_digest(image)
    except StudioloError:
        return ""  # the image is gone from the engine; the name stays in the lineage


def _register(
    *,
    group: ModelPackageGroup,
    actor: Actor,
    inference: InferenceSpec,
    description: str,
    artifact: _Artifact,
    pin: ArtifactPin | None = None,
    lineage: dict[str, Any],
) -> ModelPackage:
    """Record the package of `artifact`, pinned to the content its key holds now: read
    here, once the request is known to be valid, and before the transaction (slow I/O),
    unless the caller read it already."""
    image, framework = _inference_image(inference)
    artifact_uri = artifact.uri
    if pin is None:
        pin = artifact_pin_read(artifact.key, field=artifact.field)
    with transaction.atomic():
        # The group row lock serialises version numbers: two registrations never share one.
        ModelPackageGroup.objects.select_for_update().filter(pk=group.pk).first()
        version = (group.packages.aggregate(v=Max("version"))["v"] or 0) + 1
        package = ModelPackage.objects.create(
            group=group,
            version=version,
            description=description,
            created_by=actor if isinstance(actor, User) else None,
            artifact_uri=artifact_uri,
            artifact_sha256=pin.sha256,
            artifact_size=pin.size,
            image=image,
            framework=framework,
            entry_point=inference.entry_point,
            content_types=list(inference.content_types),
            response_types=list(inference.response_types),
            **lineage,
        )
        ApprovalTransition.objects.create(
            package=package,
            from_status=ApprovalStatus.PENDING,
            to_status=ApprovalStatus.PENDING,
            message="Registered",
            actor_name=actor.get_username() if isinstance(actor, User) else "system",
        )
        audit_record(
            actor=actor,
            action="model_package.created",
            target=package,
            team=group.team,
            details={
                "artifact_uri": artifact_uri,
                "artifact_sha256": pin.sha256,
                "artifact_size": pin.size,
                "external": package.external,
                "job": package.source_job_id,
            },
        )
        publish_team_event(
            team_id=group.team_id,
            team_slug=group.team.slug,
            event="model_package.created",
            data=package_payload(package),
        )
        webhooks_emit(
            team=group.team, event_type="model_package.created", payload=package_payload(package)
        )
    return package


def package_payload(package: ModelPackage) -> dict[str, Any]:
    return {
        "id": package.pk,
        "group": package.group.name,
        "version": package.version,
        "approval_status": package.approval_status,
        "created_by": package.created_by.get_username() if package.created_by else None,
    }


def package_register_from_job_in_new_group(
    *,
    team: Team,
    group_name: str,
    approvals_required: int,
    job: Job,
    actor: Actor,
    inference: InferenceSpec,
    description: str = "",
) -> ModelPackage:
    """Create a group and register the job's model as its first version, in one transaction:
    a refused registration leaves no new, empty group behind. The model is read (pinned)
    before the transaction begins."""
    require_permission(user=actor, team=team, action=Action.REGISTER_MODEL)
    pin = artifact_pin_read(_job_model_key(job, team), field="job")
    with transaction.atomic():
        group = group_create(
            team=team, name=group_name, actor=actor, approvals_required=approvals_required
        )
        return package_register_from_job(
            group=group,
            job=job,
            actor=actor,
            inference=inference,
            description=description,
            pin=pin,
        )
