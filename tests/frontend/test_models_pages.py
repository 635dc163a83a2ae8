"""The model registry pages: groups list, group page (versions table and chart), package page
(lineage, history, the decision form only for those who may decide), inbox, dashboard card,
and registering a completed job's model from its page."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from frontend.registry.charts import VersionMetrics, metric_names, versions_metric_figure
from registry.models import ApprovalStatus, ModelPackage, ModelPackageGroup
from registry.services.approval import package_decide
from registry.services.registration import (
    ExternalArtifact,
    InferenceSpec,
    package_register_external,
)
from studio.accounts.models import Team
from studio.accounts.services import team_set_self_approval
from studio.artifacts import get_store
from tests.factories import make_team, make_user
from tests.registry.conftest import completed_job, make_group, registered

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _process_runtime(settings: Any) -> None:
    settings.RUNTIME = "process"


@pytest.fixture
def team() -> Team:
    return make_team()


@pytest.fixture
def scientist(team: Team) -> User:
    return make_user(team, role="scientist")


@pytest.fixture
def approver(team: Team) -> User:
    return make_user(team, role="approver")


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def external(group: ModelPackageGroup, user: User, metrics: dict[str, float]) -> ModelPackage:
    key = f"teams/{group.team.slug}/uploads/m-{len(metrics)}-{sum(metrics.values())}.tar.gz"
    get_store().put(key, b"m")
    return package_register_external(
        group=group,
        actor=user,
        artifact=ExternalArtifact(get_store().uri(key), metrics),
        inference=InferenceSpec(image="my/model:1"),
    )


# --- chart ------------------------------------------------------------------------------


def test_version_chart_has_a_bar_per_version_with_the_metric() -> None:
    versions = [
        VersionMetrics(2, "Approved", {"auc": 0.9, "f1": 0.7}),
        VersionMetrics(1, "Rejected", {"auc": 0.8}),
        VersionMetrics(3, "PendingManualApproval", {"f1": 0.6}),
    ]
    assert metric_names(versions) == ["auc", "f1"]
    figure = versions_metric_figure(versions, "auc")
    trace = figure["data"][0]
    assert trace["x"] == ["v1", "v2"]
    assert trace["y"] == [0.8, 0.9]
    assert trace["marker"]["color"] == ["#dc2626", "#16a34a"]
    assert figure["layout"]["annotations"] == []
    assert figure["layout"]["yaxis"]["title"]["text"] == "auc"
    import plotly.graph_objects as go

    go.Figure(figure)  # a valid plotly figure


def test_version_chart_without_values_says_so() -> None:
    figure = versions_metric_figure([VersionMetrics(1, "Approved", {"x": float("nan")})], "x")
    assert figure["data"][0]["y"] == []
    assert figure["layout"]["annotations"][0]["text"] == "No version has x"


# --- pages ------------------------------------------------------------------------------


def test_models_nav_item_is_enabled_and_lists_groups(team: Team, scientist: User) -> None:
    group = make_group(team, scientist)
    registered(group, scientist, "train-1")
    response = signed_in(scientist).get("/models/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'href="/models/"' in html
    assert 'data-group="churn"' in html
    assert "Pending manual approval" in html


def test_group_page_shows_metrics_side_by_side_and_the_chart(team: Team, scientist: User) -> None:
    group = make_group(team, scientist)
    external(group, scientist, {"auc": 0.81, "f1": 0.5})
    external(group, scientist, {"auc": 0.86})
    response = signed_in(scientist).get("/models/churn/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-metric-col="auc"' in html
    assert 'data-metric-col="f1"' in html
    assert '<option value="auc">auc</option>' in html
    figures = response.context["figures"]
    assert figures["auc"]["data"][0]["x"] == ["v1", "v2"]
    assert [r["metrics"] for r in response.context["rows"]] == [[0.86, None], [0.81, 0.5]]


def test_package_page_shows_lineage_and_history(team: Team, scientist: User) -> None:
    package = registered(make_group(team, scientist), scientist, "train-1")
    response = signed_in(scientist).get("/models/churn/1/")
    assert response.status_code == 200
    html = response.content.decode()
    for kind in ("data", "job", "run", "artifact", "package", "endpoints"):
        assert f'data-chain="{kind}"' in html
    assert f"train: file:///data/{team.slug}/train.csv" in html
    assert f'href="/jobs/{package.source_job_id}/"' in html
    assert "Registered" in html
    assert "0 of 1 approval" in html
    # The content it was registered with, which every deployment checks.
    assert f"data-artifact-sha256>{package.artifact_sha256}</code>" in html


def test_decision_buttons_only_for_those_allowed(
    team: Team, scientist: User, approver: User
) -> None:
    registered(make_group(team, scientist), scientist, "train-1")
    assert "data-decision-form" in signed_in(approver).get("/models/churn/1/").content.decode()
    assert "data-decision-form" not in signed_in(scientist).get("/models/churn/1/").content.decode()
    viewer = make_user(team, role="viewer")
    assert "data-decision-form" not in signed_in(viewer).get("/models/churn/1/").content.decode()
    # The author who is an approver: only when the team allows self-approval.
    admin = make_user(team, role="admin")
    own = registered(ModelPackageGroup.objects.get(), admin, "train-2")
    url = f"/models/churn/{own.version}/"
    assert "data-decision-form" not in signed_in(admin).get(url).content.decode()
    team_set_self_approval(team=team, allowed=True, actor=admin)
    assert "data-decision-form" in signed_in(admin).get(url).content.decode()


def test_approving_in_the_ui_with_a_comment(team: Team, scientist: User, approver: User) -> None:
    registered(make_group(team, scientist), scientist, "train-1")
    client = signed_in(approver)
    refused = client.post("/models/churn/1/decide/", {"decision": "approve", "comment": ""})
    assert refused.status_code == 302
    assert ModelPackage.objects.get().approval_status == ApprovalStatus.PENDING
    client.post("/models/churn/1/decide/", {"decision": "approve", "comment": "good"})
    assert ModelPackage.objects.get().approval_status == ApprovalStatus.APPROVED
    page = client.get("/models/churn/1/").content.decode()
    assert "good" in page
    # a scientist posting directly is refused by the service
    signed_in(scientist).post("/models/churn/1/decide/", {"decision": "reject", "comment": "x"})
    assert ModelPackage.objects.get().approval_status == ApprovalStatus.APPROVED


def test_another_teams_package_is_404(team: Team, scientist: User) -> None:
    registered(make_group(team, scientist), scientist, "train-1")
    outsider = make_user(make_team(), role="admin")
    assert signed_in(outsider).get("/models/churn/").status_code == 404
    assert signed_in(outsider).get("/models/churn/1/").status_code == 404


def test_inbox_and_dashboard_card(team: Team, scientist: User, approver: User) -> None:
    package = registered(make_group(team, scientist), scientist, "train-1")
    client = signed_in(approver)
    inbox = client.get("/reviews/").content.decode()
    assert f'data-inbox-package="{package.pk}"' in inbox
    dashboard = client.get("/").content.decode()
    assert 'data-card="models-review"' in dashboard
    card = dashboard.split('data-card="models-review"')[1]
    assert card.split("data-card-value>")[1].startswith("1<")
    assert 'data-card="models-review"' not in signed_in(scientist).get("/").content.decode()
    package_decide(package=package, actor=approver, decision="approve", comment="ok")
    assert f'data-inbox-package="{package.pk}"' not in client.get("/reviews/").content.decode()


def test_register_model_from_a_completed_jobs_page(team: Team, scientist: User) -> None:
    job = completed_job(team, scientist, "train-1")
    client = signed_in(scientist)
    assert (
        f'href="/jobs/{job.pk}/register-model/"' in client.get(f"/jobs/{job.pk}/").content.decode()
    )
    form = client.get(f"/jobs/{job.pk}/register-model/")
    assert form.status_code == 200
    bad = client.post(
        f"/jobs/{job.pk}/register-model/",
        {"group": "__new__", "new_group": "bad name", "framework": "sklearn"},
    )
    assert bad.status_code == 400
    assert "letters, digits and hyphens" in bad.content.decode()
    assert not ModelPackageGroup.objects.exists()
    done = client.post(
        f"/jobs/{job.pk}/register-model/",
        {
            "group": "__new__",
            "new_group": "churn",
            "approvals_required": "2",
            "framework": "sklearn",
            "entry_point": "inference.py",
        },
    )
    assert done.status_code == 302
    assert done["Location"] == "/models/churn/1/"
    package = ModelPackage.objects.get()
    assert (package.group.approvals_required, package.entry_point) == (2, "inference.py")
    again = client.post(
        f"/jobs/{job.pk}/register-model/", {"group": "churn", "framework": "sklearn"}
    )
    assert again["Location"] == "/models/churn/2/"


def test_no_register_button_for_unfinished_jobs_or_viewers(team: Team, scientist: User) -> None:
    running = completed_job(team, scientist, "running", status="InProgress", model_artifact_uri="")
    assert (
        "data-register-model"
        not in signed_in(scientist).get(f"/jobs/{running.pk}/").content.decode()
    )
    done = completed_job(team, scientist, "done")
    viewer = make_user(team, role="viewer")
    assert "data-register-model" not in signed_in(viewer).get(f"/jobs/{done.pk}/").content.decode()


def test_the_register_page_shows_the_registrys_reason_instead_of_its_form(
    team: Team, scientist: User
) -> None:
    # Completed, but its model never reached the store: the registry would refuse it.
    job = completed_job(team, scientist, "no-model", model_artifact_uri="")
    client = signed_in(scientist)
    assert "data-register-model" not in client.get(f"/jobs/{job.pk}/").content.decode()
    page = client.get(f"/jobs/{job.pk}/register-model/").content.decode()
    assert "data-register-refusal" in page
    assert "only a Completed job with a model can be registered" in page
    assert "register-form" not in page

    done = completed_job(team, scientist, "done")
    viewer = make_user(team, role="viewer")
    page = signed_in(viewer).get(f"/jobs/{done.pk}/register-model/").content.decode()
    assert "does not allow model.register" in page
    assert "register-form" not in page
