"""The registry's REST API: groups, registration, approvals, lineage, the inbox, and the
team's self-approval setting. Every refusal is a 4xx naming the field, with nothing changed."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from experiments.services import Point, experiment_get_or_create, metrics_log_batch, run_create
from jobs.models import JobStatus
from registry.models import ApprovalStatus, ApprovalVote, ModelPackage, ModelPackageGroup
from studio.accounts.models import Team
from studio.artifacts import get_store
from studio.audit.models import AuditEvent
from tests.factories import make_team, make_user
from tests.registry.conftest import completed_job, make_group, registered

pytestmark = pytest.mark.django_db

BASE = "/api/v1/teams"


@pytest.fixture
def team() -> Team:
    return make_team()


@pytest.fixture
def scientist(team: Team) -> User:
    return make_user(team, role="scientist")


@pytest.fixture
def approver(team: Team) -> User:
    return make_user(team, role="approver")


def api(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def error(response: Any, status: int, field: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body: dict[str, Any] = response.json()["error"]
    assert body["field"] == field, body
    return body


# --- groups -----------------------------------------------------------------------------


def test_scientist_creates_and_lists_groups(team: Team, scientist: User) -> None:
    response = api(scientist).post(
        f"{BASE}/{team.slug}/model-groups",
        {"name": "churn", "description": "Who leaves", "approvals_required": 2},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["approvals_required"] == 2
    listed = api(scientist).get(f"{BASE}/{team.slug}/model-groups").json()["results"]
    assert [(g["name"], g["package_count"], g["latest_status"]) for g in listed] == [
        ("churn", 0, None)
    ]


def test_duplicate_group_name_is_refused_naming_the_field(team: Team, scientist: User) -> None:
    make_group(team, scientist, "churn")
    response = api(scientist).post(
        f"{BASE}/{team.slug}/model-groups", {"name": "churn"}, format="json"
    )
    error(response, 400, "name")
    assert ModelPackageGroup.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "bad name!"}, "name"),
        ({}, "name"),
        ({"name": "ok", "approvals_required": 0}, "approvals_required"),
        ({"name": "ok", "approvals_required": "many"}, "approvals_required"),
    ],
)
def test_bad_group_input_is_a_400_naming_the_field(
    team: Team, scientist: User, body: dict[str, Any], field: str
) -> None:
    error(api(scientist).post(f"{BASE}/{team.slug}/model-groups", body, format="json"), 400, field)
    assert not ModelPackageGroup.objects.exists()


def test_viewer_cannot_create_a_group(team: Team) -> None:
    viewer = make_user(team, role="viewer")
    response = api(viewer).post(f"{BASE}/{team.slug}/model-groups", {"name": "x"}, format="json")
    assert response.status_code == 403
    assert not ModelPackageGroup.objects.exists()


def test_anonymous_gets_401(team: Team) -> None:
    assert api(None).get(f"{BASE}/{team.slug}/model-groups").status_code == 401


def test_group_detail_lists_packages_with_current_votes(
    team: Team, scientist: User, approver: User
) -> None:
    group = make_group(team, scientist, approvals=2)
    first = registered(group, scientist, "train-1")
    registered(group, scientist, "train-2")
    api(approver).post(
        f"{BASE}/{team.slug}/model-groups/churn/packages/{first.version}/approve",
        {"comment": "looks good"},
        format="json",
    )
    body = api(scientist).get(f"{BASE}/{team.slug}/model-groups/churn").json()
    assert [p["version"] for p in body["packages"]] == [2, 1]
    assert body["package_count"] == 2
    assert body["latest_version"] == 2
    v1 = body["packages"][1]
    assert v1["approval_status"] == ApprovalStatus.PENDING
    assert v1["approvals"] == 1
    assert v1["approvals_required"] == 2
    assert [(v["actor"], v["decision"], v["comment"]) for v in v1["votes"]] == [
        (approver.username, "approve", "looks good")
    ]
    assert v1["created_by"] == scientist.username


def test_groups_list_query_count_is_constant(
    team: Team, scientist: User, django_assert_max_num_queries: Any
) -> None:
    client = api(scientist)
    make_group(team, scientist, "one")
    registered(ModelPackageGroup.objects.get(name="one"), scientist, "j1")
    with CaptureQueriesContext(connection) as few:
        assert client.get(f"{BASE}/{team.slug}/model-groups").status_code == 200
    for index in range(5):
        group = make_group(team, scientist, f"g{index}")
        registered(group, scientist, f"job-{index}")
        registered(group, scientist, f"job-{index}-b")
    with CaptureQueriesContext(connection) as many:
        listed = client.get(f"{BASE}/{team.slug}/model-groups").json()["results"]
    assert len(listed) == 6
    assert len(many.captured_queries) == len(few.captured_queries)
    assert {g["name"]: g["latest_version"] for g in listed}["g0"] == 2


# --- registration -----------------------------------------------------------------------


def test_register_from_a_completed_job_copies_its_lineage(team: Team, scientist: User) -> None:
    make_group(team, scientist)
    experiment = experiment_get_or_create(team=team, name="churn", actor=scientist)
    run = run_create(experiment=experiment, name="run-1", actor=scientist)
    metrics_log_batch(
        run_id=run.pk, points=[Point(key="auc", value=0.91, step=1, timestamp=timezone.now())]
    )
    job = completed_job(team, scientist, "train-churn", run=run)
    response = api(scientist).post(
        f"{BASE}/{team.slug}/model-groups/churn/packages",
        {"job": "train-churn", "framework": "sklearn", "entry_point": "inference.py"},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["version"] == 1
    assert body["approval_status"] == ApprovalStatus.PENDING
    assert body["metrics"] == {"auc": 0.91}
    assert body["lineage"]["job"] == {"id": job.pk, "name": "train-churn"}
    assert body["lineage"]["run_id"] == run.pk
    assert body["lineage"]["hyperparameters"] == {"max_depth": "6"}
    assert body["lineage"]["input_data"] == [{"name": "train", "uri": job.input_channels[0]["uri"]}]
    assert body["lineage"]["artifact_uri"] == job.model_artifact_uri
    assert body["lineage"]["training_image"] == "studiolo/sklearn:latest"
    assert [t["comment"] for t in body["transitions"]] == ["Registered"]
    # by id as well
    again = api(scientist).post(
        f"{BASE}/{team.slug}/model-groups/churn/packages",
        {"job": str(job.pk), "framework": "sklearn"},
        format="json",
    )
    assert again.json()["version"] == 2


def test_register_an_external_artifact_with_metrics(team: Team, scientist: User) -> None:
    make_group(team, scientist)
    key = f"teams/{team.slug}/uploads/model.tar.gz"
    get_store().put(key, b"m")
    response = api(scientist).post(
        f"{BASE}/{team.slug}/model-groups/churn/packages",
        {"artifact_uri": get_store().uri(key), "metrics": {"auc": 0.8}, "image": "my/img:1"},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["external"] is True
    assert response.json()["metrics"] == {"auc": 0.8}
    assert response.json()["lineage"]["job"] is None


def test_registering_a_job_that_did_not_complete_is_a_400(team: Team, scientist: User) -> None:
    make_group(team, scientist)
    completed_job(team, scientist, "broken", status=JobStatus.FAILED, model_artifact_uri="")
    response = api(scientist).post(
        f"{BASE}/{team.slug}/model-groups/churn/packages",
        {"job": "broken", "framework": "sklearn"},
        format="json",
    )
    error(response, 400, "job")
    assert not ModelPackage.objects.exists()


def test_registering_another_teams_job_is_a_404(team: Team, scientist: User) -> None:
    make_group(team, scientist)
    other = make_team()
    make_user_in_both = scientist
    from studio.accounts.services import membership_set

    membership_set(team=other, user=make_user_in_both, role="scientist")
    foreign = completed_job(other, scientist, "elsewhere")
    stranger_team = make_team()
    hidden = completed_job(stranger_team, None, "hidden")
    for ref in (str(foreign.pk), "elsewhere", str(hidden.pk)):
        response = api(scientist).post(
            f"{BASE}/{team.slug}/model-groups/churn/packages",
            {"job": ref, "framework": "sklearn"},
            format="json",
        )
        error(response, 404, "job")
    assert not ModelPackage.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"framework": "sklearn"}, "job"),
        ({"job": "train-1", "artifact_uri": "file:///x.tar.gz", "framework": "sklearn"}, "job"),
        ({"job": "train-1"}, "image"),
        ({"job": "train-1", "framework": "sklearn", "image": "a/b:1"}, "image"),
        ({"job": "train-1", "framework": "tensorflow"}, "framework"),
        ({"job": "train-1", "framework": "sklearn", "content_types": ["csv"]}, "content_types"),
        ({"job": "train-1", "framework": "sklearn", "metrics": {"a": 1}}, "metrics"),
        ({"artifact_uri": "file:///nowhere/model.tar.gz", "image": "a/b:1"}, "artifact_uri"),
        ({"artifact_uri": "s3://x/y", "image": "a/b:1", "metrics": {"a": "x"}}, "artifact_uri"),
    ],
)
def test_bad_registration_input_is_a_400_naming_the_field(
    team: Team, scientist: User, body: dict[str, Any], field: str
) -> None:
    make_group(team, scientist)
    completed_job(team, scientist, "train-1")
    response = api(scientist).post(
        f"{BASE}/{team.slug}/model-groups/churn/packages", body, format="json"
    )
    error(response, 400, field)
    assert not ModelPackage.objects.exists()


def test_external_metrics_must_be_numbers(team: Team, scientist: User) -> None:
    make_group(team, scientist)
    key = f"teams/{team.slug}/uploads/model.tar.gz"
    get_store().put(key, b"m")
    response = api(scientist).post(
        f"{BASE}/{team.slug}/model-groups/churn/packages",
        {"artifact_uri": get_store().uri(key), "image": "a/b:1", "metrics": {"auc": "high"}},
        format="json",
    )
    error(response, 400, "metrics.auc")
    assert not ModelPackage.objects.exists()


# --- package, lineage -------------------------------------------------------------------


def test_package_detail_and_lineage(team: Team, scientist: User) -> None:
    package = registered(make_group(team, scientist), scientist, "train-1")
    detail = api(scientist).get(f"{BASE}/{team.slug}/model-groups/churn/packages/1").json()
    assert detail["id"] == package.pk
    assert detail["image"] == "studiolo/sklearn:latest"
    lineage = api(scientist).get(f"{BASE}/{team.slug}/model-groups/churn/packages/1/lineage")
    assert lineage.status_code == 200
    chain = lineage.json()
    assert chain["input_data"] == [{"name": "train", "uri": f"file:///data/{team.slug}/train.csv"}]
    assert chain["job"]["name"] == "train-1"
    assert chain["run"] is None
    assert chain["artifact"]["uri"] == package.artifact_uri
    assert chain["package"] == {
        "group": "churn",
        "version": 1,
        "approval_status": "PendingManualApproval",
    }
    assert chain["endpoints"] == []


# --- decisions --------------------------------------------------------------------------


def decide(user: User, team: Team, what: str, comment: str | None = "ok", version: int = 1) -> Any:
    body = {} if comment is None else {"comment": comment}
    return api(user).post(
        f"{BASE}/{team.slug}/model-groups/churn/packages/{version}/{what}", body, format="json"
    )


def test_approver_approves_with_a_comment(team: Team, scientist: User, approver: User) -> None:
    registered(make_group(team, scientist), scientist, "train-1")
    response = decide(approver, team, "approve", "metrics beat v0")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["changed"], body["approvals"], body["required"]) == (True, 1, 1)
    assert body["package"]["approval_status"] == ApprovalStatus.APPROVED
    assert [(t["to_status"], t["actor"], t["comment"]) for t in body["package"]["transitions"]][
        -1
    ] == (ApprovalStatus.APPROVED, approver.username, "metrics beat v0")


def test_two_approvals_needed_then_reject_after_approval(
    team: Team, scientist: User, approver: User
) -> None:
    registered(make_group(team, scientist, approvals=2), scientist, "train-1")
    second = make_user(team, role="admin")
    first = decide(approver, team, "approve").json()
    assert (first["changed"], first["approvals"], first["required"]) == (False, 1, 2)
    assert first["package"]["approval_status"] == ApprovalStatus.PENDING
    done = decide(second, team, "approve").json()
    assert done["changed"] is True
    assert done["package"]["approval_status"] == ApprovalStatus.APPROVED
    # The package shows the two approvals that decided it (a new round is open, empty).
    assert [v["actor"] for v in done["package"]["votes"]] == [approver.username, second.username]
    assert (done["package"]["approvals"], done["package"]["votes_decided"]) == (2, True)
    rejected = decide(approver, team, "reject", "drift found").json()
    assert rejected["package"]["approval_status"] == ApprovalStatus.REJECTED


def test_approving_your_own_package_is_403(team: Team, approver: User) -> None:
    registered(make_group(team, approver), approver, "train-1")
    error(decide(approver, team, "approve"), 403, None)
    assert not ApprovalVote.objects.exists()


def test_approving_without_the_role_is_403(team: Team, scientist: User) -> None:
    registered(make_group(team, scientist), scientist, "train-1")
    other = make_user(team, role="scientist")
    error(decide(other, team, "approve"), 403, None)
    assert ModelPackage.objects.get().approval_status == ApprovalStatus.PENDING


def test_a_transition_that_is_not_allowed_is_409(
    team: Team, scientist: User, approver: User
) -> None:
    registered(make_group(team, scientist), scientist, "train-1")
    decide(approver, team, "approve")
    other = make_user(team, role="approver")
    error(decide(other, team, "approve"), 409, "decision")
    assert ModelPackage.objects.get().transitions.count() == 2


def test_voting_twice_in_a_round_is_409(team: Team, scientist: User, approver: User) -> None:
    registered(make_group(team, scientist, approvals=2), scientist, "train-1")
    decide(approver, team, "approve")
    error(decide(approver, team, "approve"), 409, "decision")
    assert ApprovalVote.objects.count() == 1


@pytest.mark.parametrize("comment", [None, "", "   "])
def test_a_decision_without_a_comment_is_400(
    team: Team, scientist: User, approver: User, comment: str | None
) -> None:
    registered(make_group(team, scientist), scientist, "train-1")
    error(decide(approver, team, "reject", comment), 400, "comment")
    assert not ApprovalVote.objects.exists()


def test_decisions_are_audited(team: Team, scientist: User, approver: User) -> None:
    registered(make_group(team, scientist), scientist, "train-1")
    decide(approver, team, "reject", "leaks labels")
    assert AuditEvent.objects.filter(action="model_package.rejected").count() == 1


# --- isolation --------------------------------------------------------------------------


def test_another_teams_registry_is_404(team: Team, scientist: User) -> None:
    registered(make_group(team, scientist), scientist, "train-1")
    outsider_team = make_team()
    outsider = make_user(outsider_team, role="admin")
    client = api(outsider)
    root = f"{BASE}/{team.slug}/model-groups"
    for url in (
        root,
        f"{root}/churn",
        f"{root}/churn/packages/1",
        f"{root}/churn/packages/1/lineage",
    ):
        assert client.get(url).status_code == 404, url
    assert client.post(root, {"name": "x"}, format="json").status_code == 404
    for what in ("approve", "reject"):
        assert client.post(f"{root}/churn/packages/1/{what}", {"comment": "x"}).status_code == 404
    assert (
        client.post(
            f"{root}/churn/packages", {"job": "train-1", "framework": "sklearn"}
        ).status_code
        == 404
    )
    response = client.patch(f"{BASE}/{team.slug}/settings", {"allow_self_approval": True})
    assert response.status_code == 404
    assert client.get("/api/v1/model-packages/awaiting-review").json()["results"] == []
    assert ModelPackageGroup.objects.count() == 1
    assert ModelPackage.objects.get().approval_status == ApprovalStatus.PENDING


def test_missing_group_or_version_is_404(team: Team, scientist: User) -> None:
    make_group(team, scientist)
    error(api(scientist).get(f"{BASE}/{team.slug}/model-groups/nope"), 404, "group")
    error(api(scientist).get(f"{BASE}/{team.slug}/model-groups/churn/packages/9"), 404, "package")


# --- inbox and settings -----------------------------------------------------------------


def test_awaiting_review_lists_what_the_user_may_still_decide(
    team: Team, scientist: User, approver: User
) -> None:
    group = make_group(team, scientist, approvals=2)
    registered(group, scientist, "train-1")
    registered(group, scientist, "train-2")
    inbox = api(approver).get("/api/v1/model-packages/awaiting-review").json()["results"]
    assert [(p["group"], p["version"]) for p in inbox] == [("churn", 1), ("churn", 2)]
    decide(approver, team, "approve", version=1)
    inbox = api(approver).get("/api/v1/model-packages/awaiting-review").json()["results"]
    assert [p["version"] for p in inbox] == [2]
    assert api(scientist).get("/api/v1/model-packages/awaiting-review").json()["results"] == []


def test_admin_allows_self_approval(team: Team) -> None:
    admin = make_user(team, role="admin")
    registered(make_group(team, admin), admin, "train-1")
    error(decide(admin, team, "approve"), 403, None)
    response = api(admin).patch(
        f"{BASE}/{team.slug}/settings", {"allow_self_approval": True}, format="json"
    )
    assert response.json() == {"team": team.slug, "allow_self_approval": True}
    assert decide(admin, team, "approve").status_code == 200


def test_only_admins_change_team_settings(team: Team, approver: User) -> None:
    response = api(approver).patch(
        f"{BASE}/{team.slug}/settings", {"allow_self_approval": True}, format="json"
    )
    error(response, 403, None)
    team.refresh_from_db()
    assert team.allow_self_approval is False
    admin = make_user(team, role="admin")
    error(
        api(admin).patch(f"{BASE}/{team.slug}/settings", {}, format="json"),
        400,
        "allow_self_approval",
    )
