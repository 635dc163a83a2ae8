"""Reads of the registry, scoped to the reader's teams."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, F, OuterRef, Q, QuerySet, Subquery

from registry.models import ApprovalStatus, ApprovalVote, Decision, ModelPackage, ModelPackageGroup
from studio.accounts.models import Membership
from studio.accounts.roles import MINIMUM_ROLE, ROLE_ORDER, Action
from studio.accounts.selectors import teams_for_user
from studio.errors import NotFound


def groups_for_user(user: AbstractBaseUser | AnonymousUser) -> QuerySet[ModelPackageGroup]:
    return (
        ModelPackageGroup.objects.filter(team__in=teams_for_user(user))
        .select_related("team")
        .annotate(
            package_count=Count("packages"),
            approved_count=Count(
                "packages", filter=Q(packages__approval_status=ApprovalStatus.APPROVED)
            ),
        )
    )


def group_for_user(
    user: AbstractBaseUser | AnonymousUser, *, team: str, name: str
) -> ModelPackageGroup:
    group = groups_for_user(user).filter(team__slug=team, name=name).first()
    if group is None:
        raise NotFound(f"model group {name!r} not found", field="group")
    return group


def packages_for_user(user: AbstractBaseUser | AnonymousUser) -> QuerySet[ModelPackage]:
    return ModelPackage.objects.filter(group__team__in=teams_for_user(user)).select_related(
        "group__team", "created_by", "source_job"
    )


def package_for_user(
    user: AbstractBaseUser | AnonymousUser, *, team: str, group: str, version: int
) -> ModelPackage:
    package = (
        packages_for_user(user)
        .filter(group__team__slug=team, group__name=group, version=version)
        .first()
    )
    if package is None:
        raise NotFound(f"model package {group}/{version} not found", field="package")
    return package


def packages_awaiting_review(user: AbstractBaseUser | AnonymousUser) -> QuerySet[ModelPackage]:
    """The "waiting for my review" inbox: pending packages in teams where the user may
    approve, not registered by the user (unless the team allows it), not voted on yet."""
    if not user.is_authenticated:
        return ModelPackage.objects.none()
    approver_roles = [
        r.value for r in ROLE_ORDER[ROLE_ORDER.index(MINIMUM_ROLE[Action.APPROVE_MODEL]) :]
    ]
    teams = Membership.objects.filter(user_id=user.pk, role__in=approver_roles).values("team_id")
    return (
        packages_for_user(user)
        .filter(group__team_id__in=teams, approval_status=ApprovalStatus.PENDING)
        .exclude(Q(created_by_id=user.pk) & Q(group__team__allow_self_approval=False))
        .exclude(votes__actor_id=user.pk, votes__round=F("approval_round"))
        .order_by("created_at")
    )


@dataclass(frozen=True)
class ShownVotes:
    votes: list[ApprovalVote]
    approvals: int
    decided: bool  # these votes gave the package its status (else: a round still open)


def package_votes(package: ModelPackage) -> ShownVotes:
    """The votes a package shows, in the API and on its pages alike (from `package.votes`,
    prefetch it): those of the round still open once it has any, or while the package
    awaits its first decision; otherwise those of the round that gave the package its
    status. A decision opens a new, empty round, so the current round alone left every
    Approved package showing no approvals at all."""
    votes = list(package.votes.all())
    shown = [vote for vote in votes if vote.round == package.approval_round]
    decided = not shown and package.approval_status != ApprovalStatus.PENDING
    if decided:
        shown = [vote for vote in votes if vote.round == package.approval_round - 1]
    approvals = sum(1 for vote in shown if vote.decision == Decision.APPROVE)
    return ShownVotes(shown, approvals, decided)


def package_may_decide(user: AbstractBaseUser | AnonymousUser, package: ModelPackage) -> bool:
    """Whether the UI should offer `user` the Approve/Reject buttons on `package` (the
    approval service's own rules, asked without raising)."""
    from registry.services.approval import decision_refusal

    return decision_refusal(package=package, actor=user) is None


def groups_with_latest(groups: QuerySet[ModelPackageGroup]) -> QuerySet[ModelPackageGroup]:
    """`groups` with their newest package's version and status, in the same one query (the
    groups list shows them; a query per group would grow with the team's registry)."""
    newest = ModelPackage.objects.filter(group_id=OuterRef("pk")).order_by("-version")
    return groups.annotate(
        latest_version=Subquery(newest.values("version")[:1]),
        latest_status=Subquery(newest.values("approval_status")[:1]),
    )


# The links of a package's lineage past the package itself (what serves it), which apps above
# the registry know and register at start-up (their AppConfig.ready): the registry may not
# import them. A link takes the package and returns what its key shows (JSON-ready).
LineageLink = Callable[[ModelPackage], Any]

_lineage_links: dict[str, LineageLink] = {}


def lineage_link_register(key: str, link: LineageLink) -> None:
    """Append the link `key` to every package's lineage (or replace it, keeping its place)."""
    _lineage_links[key] = link


def package_lineage(package: ModelPackage) -> dict[str, Any]:
    """Where the package came from, in order: input data → job → run → model artifact →
    package, then the registered links (endpoints). Read from what registration copied, so it
    stays true when the job's team deletes or renames things later (the copied fields never
    change)."""
    job = package.source_job
    run = package.source_run
    return {
        "input_data": list(package.input_data),
        "job": None
        if job is None
        else {
            "id": job.pk,
            "name": job.name,
            "status": job.status,
            "training_image": package.training_image,
            "image_digest": package.image_digest,
            "hyperparameters": dict(package.hyperparameters),
        },
        "run": None
        if run is None
        else {"id": run.pk, "name": run.name, "experiment": run.experiment.name},
        "artifact": {"uri": package.artifact_uri, "external": package.external},
        "package": {
            "group": package.group.name,
            "version": package.version,
            "approval_status": package.approval_status,
        },
        **{key: link(package) for key, link in _lineage_links.items()},
    }
