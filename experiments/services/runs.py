"""Creating runs, their status transitions, renaming, deleting and restoring.

`run_transition` is the only writer of `Run.status`: atomic, guarded by a row lock and a
compare-and-swap on the status it read, and audited with the actor.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from experiments.models import (
    RUN_TRANSITIONS,
    TERMINAL_RUN_STATUSES,
    Experiment,
    Lifecycle,
    Run,
    RunSource,
    RunStatus,
    RunTag,
)
from experiments.services.common import (
    Actor,
    now_ms,
    require_active_experiment,
    require_tracking,
    retention_cutoff,
    user_of,
)
from experiments.validation import (
    MAX_RUN_NAME_LENGTH,
    MAX_TAG_VALUE_LENGTH,
    parse_int64,
    validate_key,
    validate_text,
)
from studio.artifacts import get_store
from studio.audit.services import audit_record
from studio.errors import ValidationError


class IllegalRunTransition(ValidationError):
    code = "illegal_transition"


def run_artifact_prefix(run: Run) -> str:
    """The run's folder in the artifact store, below its team's prefix."""
    experiment = run.experiment
    return f"teams/{experiment.team.slug}/experiments/{experiment.pk}/runs/{run.run_uuid}/artifacts"


def _check_name(name: str) -> str:
    return validate_text(name, field="name", limit=MAX_RUN_NAME_LENGTH).strip()


def run_create(
    *,
    experiment: Experiment,
    name: str,
    actor: Actor,
    source: RunSource = RunSource.EXTERNAL,
    tags: Mapping[str, str] | None = None,
    start_time: int | None = None,
) -> Run:
    """Start a RUNNING run in the experiment. Jobs call this for every job they create."""
    require_tracking(actor=actor, experiment=experiment)
    require_active_experiment(experiment)
    run_uuid = uuid.uuid4().hex
    name = _check_name(name) or f"run-{run_uuid[:8]}"
    checked_tags = {
        validate_key(key, field=f"tags[{key!r}].key"): validate_text(
            value, field=f"tags[{key!r}].value", limit=MAX_TAG_VALUE_LENGTH
        )
        for key, value in (tags or {}).items()
    }
    start = (
        now_ms() if start_time is None else parse_int64(start_time, field="start_time", minimum=0)
    )
    run = Run(
        run_uuid=run_uuid,
        experiment=experiment,
        name=name,
        start_time=start,
        source=source,
        created_by=user_of(actor),
    )
    run.artifact_uri = get_store().uri(run_artifact_prefix(run))
    with transaction.atomic():
        run.save(force_insert=True)
        RunTag.objects.bulk_create(RunTag(run=run, key=k, value=v) for k, v in checked_tags.items())
        audit_record(
            actor=actor,
            action="run.created",
            target=run,
            object_id=run.run_uuid,
            team=experiment.team,
            details={"experiment": experiment.name, "source": source},
        )
    return run


def run_transition(
    *, run: Run, status: str, actor: Actor, end_time: int | None = None, reason: str = ""
) -> bool:
    """Move the run to `status`; False when it is there already. Ending sets `end_time` (now
    unless given); resuming (an ended run back to RUNNING) clears it."""
    if status not in RunStatus.values:
        raise ValidationError(
            f"status: expected one of {', '.join(RunStatus.values)}", field="status"
        )
    with transaction.atomic():
        current = Run.objects.select_for_update().get(pk=run.pk)
        if current.status == status:
            return False
        if status not in RUN_TRANSITIONS[current.status]:
            raise IllegalRunTransition(
                f"status: run {run.run_uuid} cannot go from {current.status} to {status}",
                field="status",
            )
        ended = (
            (now_ms() if end_time is None else parse_int64(end_time, field="end_time", minimum=0))
            if status in TERMINAL_RUN_STATUSES
            else None
        )
        updated = Run.objects.filter(pk=run.pk, status=current.status).update(
            status=status, end_time=ended
        )
        if updated != 1:  # only reachable on databases without row locks
            raise IllegalRunTransition(
                f"status: run {run.run_uuid} changed concurrently", field="status"
            )
        audit_record(
            actor=actor,
            action="run.status_changed",
            target=run,
            object_id=run.run_uuid,
            team=run.experiment.team,
            details={"from": current.status, "to": status, "reason": reason},
        )
    run.status, run.end_time = status, ended
    return True


def run_end(*, run: Run, status: RunStatus) -> bool:
    """Close a running run for the platform (a job reached a final state); False when it had
    ended already (idempotent). No permission check: the caller is the job's lifecycle."""
    if status not in TERMINAL_RUN_STATUSES:
        raise ValueError(f"run_end needs a terminal status, not {status}")
    if Run.objects.filter(pk=run.pk).values_list("status", flat=True).first() != RunStatus.RUNNING:
        return False
    try:
        return run_transition(run=run, status=status, actor=None, reason="job ended")
    except IllegalRunTransition:  # ended concurrently by someone else
        return False


def _deleted(run: Run) -> ValidationError:
    return ValidationError(f"run: {run.run_uuid} is deleted; restore it first", field="run")


def _rename(*, run: Run, actor: Actor, name: str) -> None:
    """Inside a transaction: give an active run a new (checked, non-empty) name, audited."""
    if name == run.name:
        return
    # Conditional on the run still being active: a rename racing a delete loses.
    if not Run.objects.filter(pk=run.pk, lifecycle=Lifecycle.ACTIVE).update(name=name):
        raise _deleted(run)
    audit_record(
        actor=actor,
        action="run.renamed",
        target=run,
        object_id=run.run_uuid,
        team=run.experiment.team,
        details={"from": run.name, "to": name},
    )
    run.name = name


def run_update(
    *,
    run: Run,
    actor: Actor,
    name: str | None = None,
    status: str | None = None,
    end_time: int | None = None,
) -> Run:
    """Rename the run and/or change its status (see `run_transition`). An empty name leaves
    the name as it is (MLflow's `update-run` without `run_name`); `run_rename` refuses it."""
    require_tracking(actor=actor, experiment=run.experiment)
    if run.lifecycle != Lifecycle.ACTIVE:
        raise _deleted(run)
    new_name = None if name is None else _check_name(name)
    with transaction.atomic():
        if new_name:
            _rename(run=run, actor=actor, name=new_name)
        if status is not None:
            run_transition(run=run, status=status, actor=actor, end_time=end_time)
    return run


def run_rename(*, run: Run, actor: Actor, name: str) -> Run:
    """Give the run a new name (surrounding spaces dropped, at most MAX_RUN_NAME_LENGTH
    characters); a blank name is refused. Renaming to the current name changes nothing."""
    require_tracking(actor=actor, experiment=run.experiment)
    if run.lifecycle != Lifecycle.ACTIVE:
        raise _deleted(run)
    new_name = _check_name(name)
    if not new_name:
        raise ValidationError("name: a run needs a name", field="name")
    with transaction.atomic():
        _rename(run=run, actor=actor, name=new_name)
    return run


def run_delete(*, run: Run, actor: Actor) -> Run:
    require_tracking(actor=actor, experiment=run.experiment)
    now = timezone.now()
    with transaction.atomic():
        if Run.objects.filter(pk=run.pk, lifecycle=Lifecycle.ACTIVE).update(
            lifecycle=Lifecycle.DELETED, deleted_at=now
        ):
            audit_record(
                actor=actor,
                action="run.deleted",
                target=run,
                object_id=run.run_uuid,
                team=run.experiment.team,
            )
    run.refresh_from_db(fields=["lifecycle", "deleted_at"])
    return run


def run_restore(*, run: Run, actor: Actor) -> Run:
    """Undo a deletion, until the retention period has passed (then the run is due for its
    purge, which must not find it restored half-way: see `retention`)."""
    require_tracking(actor=actor, experiment=run.experiment)
    require_active_experiment(run.experiment)
    cutoff = retention_cutoff()
    with transaction.atomic():
        restorable = Run.objects.filter(pk=run.pk, lifecycle=Lifecycle.DELETED)
        if restorable.filter(deleted_at__lte=cutoff).exists():
            raise ValidationError(
                f"run: {run.run_uuid} was deleted more than {settings.TRACKING_RETENTION_DAYS} "
                "days ago and is being purged; it cannot be restored",
                field="run",
            )
        if restorable.filter(deleted_at__gt=cutoff).update(
            lifecycle=Lifecycle.ACTIVE, deleted_at=None
        ):
            audit_record(
                actor=actor,
                action="run.restored",
                target=run,
                object_id=run.run_uuid,
                team=run.experiment.team,
            )
    run.refresh_from_db(fields=["lifecycle", "deleted_at"])
    return run
