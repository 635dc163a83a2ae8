"""Creating, renaming, tagging, deleting and restoring experiments."""

from __future__ import annotations

from collections.abc import Mapping

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from experiments.models import Experiment, ExperimentTag, Lifecycle, Run
from experiments.services.common import Actor, require_tracking, retention_cutoff, user_of
from experiments.validation import (
    MAX_EXPERIMENT_NAME_LENGTH,
    MAX_EXPERIMENT_TAG_VALUE_LENGTH,
    validate_key,
    validate_text,
)
from studio.accounts.models import Team
from studio.accounts.roles import Action
from studio.accounts.services import require_permission
from studio.audit.services import audit_record
from studio.errors import Conflict, ValidationError


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("name: a non-empty string is required", field="name")
    name = name.strip()
    if len(name) > MAX_EXPERIMENT_NAME_LENGTH:
        raise ValidationError(
            f"name: {len(name)} characters; the limit is {MAX_EXPERIMENT_NAME_LENGTH}",
            field="name",
        )
    return name


def _check_tags(tags: Mapping[str, str]) -> dict[str, str]:
    return {
        validate_key(key, field=f"tags[{key!r}].key"): validate_text(
            value, field=f"tags[{key!r}].value", limit=MAX_EXPERIMENT_TAG_VALUE_LENGTH
        )
        for key, value in tags.items()
    }


def experiment_create(
    *,
    team: Team,
    name: str,
    actor: Actor,
    description: str = "",
    tags: Mapping[str, str] | None = None,
) -> Experiment:
    require_permission(user=actor, team=team, action=Action.TRACK)
    name = _check_name(name)
    checked_tags = _check_tags(tags or {})
    if not isinstance(description, str):
        raise ValidationError("description: a string is required", field="description")
    try:
        with transaction.atomic():
            experiment = Experiment.objects.create(
                team=team, name=name, description=description, created_by=user_of(actor)
            )
            ExperimentTag.objects.bulk_create(
                ExperimentTag(experiment=experiment, key=k, value=v)
                for k, v in checked_tags.items()
            )
            audit_record(actor=actor, action="experiment.created", target=experiment, team=team)
    except IntegrityError as exc:
        raise Conflict(
            f"name: an experiment named {name!r} exists already in team {team.slug}"
            " (deleted experiments keep their name until they are purged)",
            field="name",
        ) from exc
    return experiment


def experiment_get_or_create(*, team: Team, name: str, actor: Actor) -> Experiment:
    """The team's experiment called `name`, created when missing (jobs record into one)."""
    name = _check_name(name)
    existing = Experiment.objects.filter(team=team, name=name).first()
    if existing is not None:
        if existing.lifecycle != Lifecycle.ACTIVE:
            raise ValidationError(
                f"experiment: {name!r} is deleted; restore it or choose another name",
                field="experiment",
            )
        return existing
    try:
        return experiment_create(team=team, name=name, actor=actor)
    except Conflict:  # created concurrently by another request: use that one
        return Experiment.objects.get(team=team, name=name)


def experiment_update(
    *,
    experiment: Experiment,
    actor: Actor,
    name: str | None = None,
    description: str | None = None,
) -> Experiment:
    require_tracking(actor=actor, experiment=experiment)
    changes: dict[str, object] = {}
    if name is not None and _check_name(name) != experiment.name:
        changes["name"] = _check_name(name)
    if description is not None and description != experiment.description:
        changes["description"] = validate_text(
            description, field="description", limit=MAX_EXPERIMENT_TAG_VALUE_LENGTH
        )
    if not changes:
        return experiment
    before = {field: getattr(experiment, field) for field in changes}
    try:
        with transaction.atomic():
            for field, value in changes.items():
                setattr(experiment, field, value)
            experiment.save(update_fields=[*changes, "updated_at"])
            audit_record(
                actor=actor,
                action="experiment.updated",
                target=experiment,
                team=experiment.team,
                details={"before": before, "after": changes},
            )
    except IntegrityError as exc:
        raise Conflict(
            f"name: an experiment named {changes['name']!r} exists already", field="name"
        ) from exc
    return experiment


def experiment_set_tags(*, experiment: Experiment, actor: Actor, tags: Mapping[str, str]) -> None:
    require_tracking(actor=actor, experiment=experiment)
    checked = _check_tags(tags)
    with transaction.atomic():
        for key, value in checked.items():
            ExperimentTag.objects.update_or_create(
                experiment=experiment, key=key, defaults={"value": value}
            )
        Experiment.objects.filter(pk=experiment.pk).update(updated_at=timezone.now())


def experiment_delete_tag(*, experiment: Experiment, actor: Actor, key: str) -> None:
    require_tracking(actor=actor, experiment=experiment)
    ExperimentTag.objects.filter(experiment=experiment, key=key).delete()


def experiment_delete(*, experiment: Experiment, actor: Actor) -> Experiment:
    """Soft-delete the experiment and its active runs (as MLflow does); restorable."""
    require_tracking(actor=actor, experiment=experiment)
    now = timezone.now()
    with transaction.atomic():
        updated = Experiment.objects.filter(pk=experiment.pk, lifecycle=Lifecycle.ACTIVE).update(
            lifecycle=Lifecycle.DELETED, deleted_at=now, updated_at=now
        )
        if updated:
            # The runs deleted together carry the experiment's deletion time, so a restore
            # brings back exactly those and not runs deleted on their own before.
            runs = Run.objects.filter(experiment=experiment, lifecycle=Lifecycle.ACTIVE).update(
                lifecycle=Lifecycle.DELETED, deleted_at=now
            )
            audit_record(
                actor=actor,
                action="experiment.deleted",
                target=experiment,
                team=experiment.team,
                details={"runs_deleted": runs},
            )
    experiment.refresh_from_db()
    return experiment


def experiment_restore(*, experiment: Experiment, actor: Actor) -> Experiment:
    """Undo a deletion (with the runs deleted together), until the retention period has
    passed: then the experiment is due for its purge (see `retention`)."""
    require_tracking(actor=actor, experiment=experiment)
    with transaction.atomic():
        current = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if (
            current.lifecycle == Lifecycle.DELETED
            and current.deleted_at is not None
            and current.deleted_at <= retention_cutoff()
        ):
            raise ValidationError(
                f"experiment: {current.name!r} was deleted more than "
                f"{settings.TRACKING_RETENTION_DAYS} days ago and is being purged; "
                "it cannot be restored",
                field="experiment",
            )
        if current.lifecycle == Lifecycle.DELETED:
            runs = Run.objects.filter(
                experiment=current, lifecycle=Lifecycle.DELETED, deleted_at=current.deleted_at
            ).update(lifecycle=Lifecycle.ACTIVE, deleted_at=None)
            current.lifecycle, current.deleted_at = Lifecycle.ACTIVE, None
            current.save(update_fields=["lifecycle", "deleted_at", "updated_at"])
            audit_record(
                actor=actor,
                action="experiment.restored",
                target=current,
                team=current.team,
                details={"runs_restored": runs},
            )
    experiment.refresh_from_db()
    return experiment
