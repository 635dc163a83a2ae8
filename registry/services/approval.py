"""The approval workflow: who may decide, how many must agree, and one result under races.

Rules, in order:
- only a member whose role allows Action.APPROVE_MODEL decides, with a comment;
- by default never the package's author (separation of duties); the team can relax that,
  and the relaxation is audited (studio.accounts.services.team_set_self_approval);
- a decision must lead somewhere from the current status (PendingManualApproval → Approved |
  Rejected, Approved ↔ Rejected);
- approving takes `approvals_required` distinct approvals in the current round (the votes
  are shown to the team); one rejection is enough to reject;
- the package row is locked for the whole decision, so two approvers acting at the same
  moment leave one consistent result, never a double transition or a lost vote.

What a rejection means to the apps above the registry (endpoints still serving the package
are flagged) they register at start-up with `package_rejected_hook_register`, from their
AppConfig.ready: the registry may not import them. The hooks run inside the decision's
transaction, so a decision and its consequences are recorded together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from registry.models import (
    ALLOWED_APPROVALS,
    ApprovalStatus,
    ApprovalTransition,
    ApprovalVote,
    Decision,
    ModelPackage,
)
from registry.services.registration import package_payload
from studio.accounts.roles import Action
from studio.accounts.services import require_permission
from studio.audit.services import audit_record
from studio.errors import Conflict, PermissionDenied, StudioloError, ValidationError
from studio.events import publish_team_event
from studio.webhooks.services import webhooks_emit

Actor = AbstractBaseUser | AnonymousUser | None
MAX_COMMENT = 2000


class PackageRejectedHook(Protocol):
    """Called when an Approved package is rejected, inside the decision's transaction."""

    def __call__(self, *, package: ModelPackage, actor: User, comment: str) -> object: ...


_package_rejected_hooks: dict[str, PackageRejectedHook] = {}


def package_rejected_hook_register(name: str, hook: PackageRejectedHook) -> None:
    """Register (or replace, when the app is set up again) the hook called `name`."""
    _package_rejected_hooks[name] = hook


@dataclass(frozen=True)
class DecisionResult:
    package: ModelPackage
    changed: bool  # the status moved (else: a vote recorded, more approvals needed)
    approvals: int  # approvals in the current round
    required: int


def package_decide(
    *, package: ModelPackage, actor: Actor, decision: str, comment: str
) -> DecisionResult:
    if decision not in Decision.values:
        raise ValidationError(
            f"decision: expected one of {', '.join(Decision.values)}", field="decision"
        )
    comment = (comment or "").strip()
    if not comment:
        raise ValidationError("comment: every decision needs a reason", field="comment")
    if len(comment) > MAX_COMMENT:
        raise ValidationError(f"comment: at most {MAX_COMMENT} characters", field="comment")
    # The role, before taking a lock; the caller's `package` may be stale, so the rules that
    # read its state are applied below, to the locked row.
    require_permission(user=actor, team=package.group.team, action=Action.APPROVE_MODEL)
    if not isinstance(actor, User):  # require_permission admits members only
        raise PermissionDenied("sign in to decide")
    with transaction.atomic():
        locked = (
            ModelPackage.objects.select_for_update()
            .select_related("group__team")
            .get(pk=package.pk)
        )
        refusal = decision_refusal(package=locked, actor=actor)
        if refusal is not None:
            raise refusal
        target = (
            ApprovalStatus.APPROVED if decision == Decision.APPROVE else ApprovalStatus.REJECTED
        )
        if target not in ALLOWED_APPROVALS[locked.approval_status]:
            raise Conflict(
                f"{locked}: it is {locked.approval_status}; it cannot be {target.lower()} now",
                field="decision",
            )
        ApprovalVote.objects.create(
            package=locked,
            round=locked.approval_round,
            decision=decision,
            comment=comment,
            actor=actor,
        )
        approvals = ApprovalVote.objects.filter(
            package=locked, round=locked.approval_round, decision=Decision.APPROVE
        ).count()
        required = locked.group.approvals_required
        if decision == Decision.APPROVE and approvals < required:
            audit_record(
                actor=actor,
                action="model_package.approval_vote",
                target=locked,
                team=locked.group.team,
                details={
                    "decision": decision,
                    "comment": comment,
                    "approvals": approvals,
                    "required": required,
                },
            )
            _publish(locked, actor, comment, approvals, required)
            return DecisionResult(locked, changed=False, approvals=approvals, required=required)
        _transition(locked, target, actor, comment)
        _publish(locked, actor, comment, approvals, required)
    return DecisionResult(locked, changed=True, approvals=approvals, required=required)


def decision_refusal(*, package: ModelPackage, actor: Actor) -> StudioloError | None:
    """Why `actor` may not decide on `package` now, or None when they may: the role, the
    separation of duties, one vote per round. The one statement of these rules:
    `package_decide` raises the answer, the UI asks it which buttons to offer."""
    team = package.group.team
    try:
        require_permission(user=actor, team=team, action=Action.APPROVE_MODEL)
    except StudioloError as refusal:
        return refusal
    if package.created_by_id == actor.pk and not team.allow_self_approval:  # type: ignore[union-attr]
        return PermissionDenied(
            "you registered this package; another approver must decide (separation of duties)"
        )
    voted = ApprovalVote.objects.filter(
        package=package,
        round=package.approval_round,
        actor_id=actor.pk,  # type: ignore[union-attr]
    ).exists()
    if voted:
        return Conflict(f"{package}: you have decided in this round already", field="decision")
    return None


def _transition(package: ModelPackage, target: str, actor: User, comment: str) -> None:
    previous = package.approval_status
    updated = ModelPackage.objects.filter(pk=package.pk, approval_status=previous).update(
        approval_status=target,
        approval_round=F("approval_round") + 1,
        status_changed_at=timezone.now(),
    )
    if updated != 1:  # impossible under the row lock; guard against a future caller without it
        raise Conflict(f"{package}: its status changed concurrently", field="decision")
    package.refresh_from_db()
    ApprovalTransition.objects.create(
        package=package,
        from_status=previous,
        to_status=target,
        message=comment,
        actor_name=actor.get_username(),
    )
    webhooks_emit(
        team=package.group.team,
        event_type="model_package.approval_changed",
        payload={
            **package_payload(package),
            "from": previous,
            "actor": actor.get_username(),
            "comment": comment,
        },
    )
    audit_record(
        actor=actor,
        action="model_package.approved"
        if target == ApprovalStatus.APPROVED
        else "model_package.rejected",
        target=package,
        team=package.group.team,
        details={"from": previous, "to": target, "comment": comment},
    )
    if target == ApprovalStatus.REJECTED and previous == ApprovalStatus.APPROVED:
        # The policy's other half: what was deployed from the package while it was approved
        # (endpoints serving it are marked and the team told), in this same transaction.
        for hook in _package_rejected_hooks.values():
            hook(package=package, actor=actor, comment=comment)


def _publish(
    package: ModelPackage, actor: User, comment: str, approvals: int, required: int
) -> None:
    data: dict[str, Any] = {
        **package_payload(package),
        "actor": actor.get_username(),
        "comment": comment,
        "approvals": approvals,
        "approvals_required": required,
    }
    publish_team_event(
        team_id=package.group.team_id,
        team_slug=package.group.team.slug,
        event="model_package.approval",
        data=data,
    )


def deploy_refusal(package: ModelPackage) -> str | None:
    """The policy other apps obey, as the reason a package may not be deployed or used for
    batch transform, or None: only Approved packages with a pinned artifact are (endpoints and
    transform jobs ask here, never look at the status themselves; what serves them checks the
    pin). The pages ask it to offer deployment; `package_require_deployable` raises it."""
    if package.approval_status != ApprovalStatus.APPROVED:
        return (
            f"model: {package} is {package.approval_status}; only Approved packages can be deployed"
        )
    if not package.artifact_sha256:
        return (
            f"model: {package} has no pinned artifact checksum (it was registered before "
            "packages pinned their artifact, and its artifact was missing when the studio was "
            "upgraded): register the model again"
        )
    return None


def package_is_deployable(package: ModelPackage) -> bool:
    return deploy_refusal(package) is None


def package_require_deployable(package: ModelPackage) -> None:
    refusal = deploy_refusal(package)
    if refusal is not None:
        raise ValidationError(refusal, field="model")
