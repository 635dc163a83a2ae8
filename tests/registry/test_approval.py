"""The approval workflow in the registry's services: who may decide, when, how many must
agree, and one consistent result when approvers race."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection

from registry.models import (
    ApprovalStatus,
    ApprovalTransition,
    ApprovalVote,
    ModelPackage,
    ModelPackageGroup,
)
from registry.selectors import packages_awaiting_review
from registry.services.approval import (
    package_decide,
    package_is_deployable,
    package_require_deployable,
)
from registry.services.registration import (
    ExternalArtifact,
    InferenceSpec,
    group_create,
    package_register_external,
)
from studio.accounts.models import Team
from studio.accounts.services import team_set_self_approval
from studio.artifacts import get_store
from studio.audit.models import AuditEvent
from studio.errors import Conflict, NotFound, PermissionDenied, StudioloError, ValidationError
from tests.factories import make_team, make_user

ROLES = ["viewer", "scientist", "approver", "admin"]


@pytest.fixture(autouse=True)
def _process_runtime(settings: Any) -> None:
    settings.RUNTIME = "process"  # every image "exists": registration needs no engine here


def register(
    team: Team, author: User, group: ModelPackageGroup | None = None, approvals: int = 1
) -> ModelPackage:
    group = group or group_create(
        team=team,
        name=f"g{ModelPackageGroup.objects.count() + 1}",
        actor=author,
        approvals_required=approvals,
    )
    key = f"teams/{team.slug}/models/m{ModelPackage.objects.count()}.tar.gz"
    get_store().put(key, b"archive")
    return package_register_external(
        group=group,
        actor=author,
        artifact=ExternalArtifact(get_store().uri(key), metrics={"auc": 0.91}),
        inference=InferenceSpec(framework="sklearn"),
    )


def set_status(package: ModelPackage, status: str) -> ModelPackage:
    ModelPackage.objects.filter(pk=package.pk).update(approval_status=status, approval_round=5)
    package.refresh_from_db()
    return package


TRANSITIONS = [
    (ApprovalStatus.PENDING, "approve", ApprovalStatus.APPROVED),
    (ApprovalStatus.PENDING, "reject", ApprovalStatus.REJECTED),
    (ApprovalStatus.APPROVED, "reject", ApprovalStatus.REJECTED),
    (ApprovalStatus.REJECTED, "approve", ApprovalStatus.APPROVED),
    (ApprovalStatus.APPROVED, "approve", None),  # not a move: 409
    (ApprovalStatus.REJECTED, "reject", None),
]


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("is_author", [False, True], ids=["other", "author"])
@pytest.mark.parametrize(("start", "decision", "end"), TRANSITIONS)
def test_role_transition_author_matrix(
    role: str, is_author: bool, start: str, decision: str, end: str | None
) -> None:
    team = make_team()
    registrar = make_user(team, role="scientist")
    actor = registrar if is_author else make_user(team, role=role)
    package = set_status(register(team, registrar), start)
    team.memberships.filter(user=actor).update(role=role)  # an author may be promoted later
    before = (
        package.approval_status,
        ApprovalVote.objects.count(),
        ApprovalTransition.objects.count(),
    )

    may_decide = role in ("approver", "admin") and not is_author
    if not may_decide:
        with pytest.raises(PermissionDenied):
            package_decide(package=package, actor=actor, decision=decision, comment="looks fine")
    elif end is None:
        with pytest.raises(Conflict):
            package_decide(package=package, actor=actor, decision=decision, comment="again")
    else:
        result = package_decide(
            package=package, actor=actor, decision=decision, comment="reviewed the metrics"
        )
        assert result.changed
        assert result.package.approval_status == end
        last = package.transitions.last()
        assert last is not None
        assert (last.from_status, last.to_status, last.actor_name) == (start, end, actor.username)
        assert last.message == "reviewed the metrics"
        return
    package.refresh_from_db()
    assert (
        package.approval_status,
        ApprovalVote.objects.count(),
        ApprovalTransition.objects.count(),
    ) == before


@pytest.mark.django_db
def test_a_decision_without_a_comment_changes_nothing() -> None:
    team = make_team()
    package = register(team, make_user(team))
    approver = make_user(team, role="approver")
    for comment in ("", "   "):
        with pytest.raises(ValidationError) as error:
            package_decide(package=package, actor=approver, decision="approve", comment=comment)
        assert error.value.field == "comment"
    package.refresh_from_db()
    assert package.approval_status == ApprovalStatus.PENDING
    assert not ApprovalVote.objects.exists()


@pytest.mark.django_db
def test_outsiders_get_not_found() -> None:
    team = make_team()
    package = register(team, make_user(team))
    outsider = make_user(make_team(), role="admin")
    with pytest.raises(NotFound):
        package_decide(package=package, actor=outsider, decision="approve", comment="x")


@pytest.mark.django_db
def test_self_approval_can_be_allowed_by_an_admin_and_that_is_audited() -> None:
    team = make_team()
    admin = make_user(team, role="admin")
    author = make_user(team, role="approver")
    package = register(team, author)
    with pytest.raises(PermissionDenied, match="separation of duties"):
        package_decide(package=package, actor=author, decision="approve", comment="mine")
    with pytest.raises(PermissionDenied):
        team_set_self_approval(team=team, allowed=True, actor=author)
    team_set_self_approval(team=team, allowed=True, actor=admin)
    assert (
        AuditEvent.objects.filter(
            action="team.self_approval_allowed", actor_name=admin.username
        ).count()
        == 1
    )
    result = package_decide(package=package, actor=author, decision="approve", comment="small team")
    assert result.package.approval_status == ApprovalStatus.APPROVED


@pytest.mark.django_db
def test_n_approvals_rule_needs_distinct_approvers_and_one_rejection_is_enough() -> None:
    team = make_team()
    author = make_user(team)
    package = register(team, author, approvals=3)
    first, second, third = (make_user(team, role="approver") for _ in range(3))
    one = package_decide(package=package, actor=first, decision="approve", comment="ok 1")
    assert (one.changed, one.approvals, one.required) == (False, 1, 3)
    with pytest.raises(Conflict, match="already"):
        package_decide(package=package, actor=first, decision="approve", comment="ok again")
    two = package_decide(package=package, actor=second, decision="approve", comment="ok 2")
    assert (two.changed, two.approvals) == (False, 2)
    assert two.package.approval_status == ApprovalStatus.PENDING
    three = package_decide(package=package, actor=third, decision="approve", comment="ok 3")
    assert three.changed
    assert three.package.approval_status == ApprovalStatus.APPROVED
    assert package_is_deployable(three.package)
    # A rejection by any one approver takes it back, and a new round of votes starts.
    rejected = package_decide(
        package=package, actor=first, decision="reject", comment="drift found"
    )
    assert rejected.package.approval_status == ApprovalStatus.REJECTED
    with pytest.raises(ValidationError):
        package_require_deployable(rejected.package)
    again = package_decide(package=package, actor=second, decision="approve", comment="fixed")
    assert (again.changed, again.approvals) == (False, 1)
    events = AuditEvent.objects.filter(
        object_type="registry.modelpackage", object_id=str(package.pk)
    )
    assert [e.action for e in events.order_by("id")] == [
        "model_package.created",
        "model_package.approval_vote",
        "model_package.approval_vote",
        "model_package.approved",
        "model_package.rejected",
        "model_package.approval_vote",
    ]


@pytest.mark.django_db
def test_the_inbox_lists_what_the_user_may_still_decide() -> None:
    team = make_team()
    author = make_user(team, role="approver")
    reviewer = make_user(team, role="approver")
    mine = register(team, author, approvals=2)
    theirs = register(team, reviewer, approvals=2)
    assert list(packages_awaiting_review(author)) == [theirs]
    assert list(packages_awaiting_review(reviewer)) == [mine]
    package_decide(package=mine, actor=reviewer, decision="approve", comment="one of two")
    assert list(packages_awaiting_review(reviewer)) == []
    assert list(packages_awaiting_review(make_user(team, role="scientist"))) == []


@pytest.mark.django_db
def test_versions_count_up_per_group_and_duplicate_group_names_are_refused() -> None:
    team = make_team()
    author = make_user(team)
    group = group_create(team=team, name="churn", actor=author)
    assert [register(team, author, group).version for _ in range(3)] == [1, 2, 3]
    with pytest.raises(ValidationError) as error:
        group_create(team=team, name="churn", actor=author)
    assert error.value.field == "name"
    other = make_team()
    assert group_create(team=other, name="churn", actor=make_user(other)).name == "churn"


@pytest.mark.django_db
def test_external_artifacts_must_exist_in_the_team_area() -> None:
    team = make_team()
    author = make_user(team)
    group = group_create(team=team, name="ext", actor=author)
    get_store().put("teams/elsewhere/m.tar.gz", b"x")
    for uri in (
        get_store().uri("teams/elsewhere/m.tar.gz"),
        get_store().uri(f"teams/{team.slug}/nothing.tar.gz"),
        "s3://x/y.tar.gz",
    ):
        with pytest.raises(ValidationError) as error:
            package_register_external(
                group=group,
                actor=author,
                artifact=ExternalArtifact(uri),
                inference=InferenceSpec(framework="sklearn"),
            )
        assert error.value.field == "artifact_uri"
    assert not ModelPackage.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_approvers_at_the_same_moment_leave_one_consistent_result() -> None:
    team = make_team()
    package = register(team, make_user(team), approvals=1)
    approvers = [make_user(team, role="approver") for _ in range(2)]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def decide(user: User, decision: str) -> None:
        try:
            barrier.wait(timeout=10)
            package_decide(
                package=ModelPackage.objects.get(pk=package.pk),
                actor=user,
                decision=decision,
                comment=f"{decision} by {user}",
            )
            outcomes.append(f"{decision}:ok")
        except StudioloError as exc:
            outcomes.append(f"{decision}:{type(exc).__name__}")
        finally:
            connection.close()

    threads = [
        threading.Thread(target=decide, args=(approvers[0], "approve")),
        threading.Thread(target=decide, args=(approvers[1], "reject")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    package.refresh_from_db()
    moves = list(
        ApprovalTransition.objects.filter(package=package).exclude(to_status=ApprovalStatus.PENDING)
    )
    # Both may succeed in turn (approve then reject, or reject then approve), or the second
    # may be refused; never a lost update: the history explains the final status exactly.
    assert len(outcomes) == 2
    assert moves, outcomes
    assert moves[-1].to_status == package.approval_status
    for earlier, later in zip(moves, moves[1:], strict=False):
        assert later.from_status == earlier.to_status
    assert package.approval_round == 1 + len(moves)


@pytest.mark.django_db
def test_approval_changes_go_out_to_subscribed_webhooks() -> None:
    from studio.webhooks.models import WebhookDelivery
    from studio.webhooks.services import webhook_create

    team = make_team()
    admin = make_user(team, role="admin")
    webhook_create(
        team=team,
        actor=admin,
        url="http://127.0.0.1:9/hook",
        events=["model_package.approval_changed"],
    )
    package = register(team, make_user(team))
    assert not WebhookDelivery.objects.exists()  # created: not subscribed
    package_decide(
        package=package,
        actor=make_user(team, role="approver"),
        decision="approve",
        comment="ship it",
    )
    delivery = WebhookDelivery.objects.get()
    assert delivery.event_type == "model_package.approval_changed"
    assert delivery.payload["approval_status"] == "Approved"
    assert delivery.payload["from"] == "PendingManualApproval"
    assert delivery.payload["comment"] == "ship it"


@pytest.mark.django_db
def test_a_refused_registration_into_a_new_group_leaves_no_group_behind() -> None:
    from jobs.models import Job
    from registry.services.registration import package_register_from_job_in_new_group

    team = make_team()
    author = make_user(team)
    job = Job.objects.create(
        team=team, name="unfinished", image="x", output_path="x", instance_type="ml.local.small"
    )
    with pytest.raises(ValidationError) as error:
        package_register_from_job_in_new_group(
            team=team,
            group_name="fresh",
            approvals_required=1,
            job=job,
            actor=author,
            inference=InferenceSpec(framework="sklearn"),
        )
    assert error.value.field == "job"
    assert not ModelPackageGroup.objects.filter(name="fresh").exists()
