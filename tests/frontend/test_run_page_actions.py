"""A run's page renames, deletes and restores the run through the experiments services: a
scientist can, a viewer sees no buttons and is refused, bad names come back with a clear
error, every change is audited, and the forms are POSTs behind Django's CSRF check. Deleted
runs wait under the experiment's "Deleted runs" until restored or purged."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from experiments.models import Experiment, Lifecycle, Run
from experiments.services import experiment_create, run_create, run_delete
from studio.accounts.models import Team
from studio.audit.models import AuditEvent
from tests.factories import make_team, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _thirty_days(settings: Any) -> None:
    settings.TRACKING_RETENTION_DAYS = 30


@pytest.fixture
def team() -> Team:
    return make_team("alpha")


@pytest.fixture
def ada(team: Team) -> User:
    return make_user(team, role="scientist", username="ada")


@pytest.fixture
def vic(team: Team) -> User:
    return make_user(team, role="viewer", username="vic")


@pytest.fixture
def experiment(team: Team, ada: User) -> Experiment:
    return experiment_create(team=team, name="churn", actor=ada)


@pytest.fixture
def run(experiment: Experiment, ada: User) -> Run:
    return run_create(experiment=experiment, name="baseline", actor=ada)


def signed_in(user: User, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def url(name: str, run: Run) -> str:
    return reverse(name, args=[run.run_uuid])


def stored(run: Run) -> tuple[str, str]:
    run.refresh_from_db()
    return run.name, run.lifecycle


def test_scientist_sees_rename_and_delete_and_renames_the_run(ada: User, run: Run) -> None:
    client = signed_in(ada)
    html = client.get(url("run-detail", run)).content.decode()
    assert "data-rename-run" in html
    assert f'action="{url("run-rename", run)}"' in html
    assert 'data-delete-form data-confirm="Delete the run “baseline”?' in html
    assert "data-restore-run" not in html

    response = client.post(url("run-rename", run), {"name": " tuned "})

    assert response.status_code == 302
    assert response["Location"] == url("run-detail", run)
    assert stored(run) == ("tuned", Lifecycle.ACTIVE)
    event = AuditEvent.objects.get(action="run.renamed")
    assert (event.actor_name, event.details) == ("ada", {"from": "baseline", "to": "tuned"})
    page = client.get(url("run-detail", run)).content.decode()
    assert "Run renamed to “tuned”." in page


@pytest.mark.parametrize(
    ("name", "says"),
    [("", "This field is required."), ("   ", "This field is required."),
     ("x" * 251, "at most 250 characters")],
)  # fmt: skip
def test_a_blank_or_too_long_name_is_a_400_that_says_why(
    ada: User, run: Run, name: str, says: str
) -> None:
    response = signed_in(ada).post(url("run-rename", run), {"name": name})
    assert response.status_code == 400
    assert says in response.content.decode()
    assert response.context["form_open"] is True  # the form stays open with its error
    assert response.context["run"].name == "baseline"
    assert stored(run) == ("baseline", Lifecycle.ACTIVE)
    assert not AuditEvent.objects.filter(action="run.renamed").exists()


def test_viewer_sees_no_buttons_and_cannot_rename_delete_or_restore(
    vic: User, ada: User, run: Run
) -> None:
    client = signed_in(vic)
    html = client.get(url("run-detail", run)).content.decode()
    for marker in ("data-rename-run", "data-delete-form", "data-restore-run"):
        assert marker not in html
    assert client.post(url("run-rename", run), {"name": "mine"}).status_code == 403
    assert client.post(url("run-delete", run)).status_code == 403
    assert stored(run) == ("baseline", Lifecycle.ACTIVE)
    run_delete(run=run, actor=ada)
    assert client.post(url("run-restore", run)).status_code == 403
    assert stored(run) == ("baseline", Lifecycle.DELETED)


def test_delete_hides_the_run_under_deleted_runs_and_restore_brings_it_back(
    ada: User, experiment: Experiment, run: Run
) -> None:
    client = signed_in(ada)
    response = client.post(url("run-delete", run))
    assert response.status_code == 302
    assert response["Location"] == reverse("experiment-detail", args=[experiment.pk])
    assert stored(run) == ("baseline", Lifecycle.DELETED)
    table = client.get(response["Location"])
    assert [row.run.name for row in table.context["rows"]] == []
    assert "Run “baseline” deleted." in table.content.decode()
    deleted = client.get(response["Location"], {"view": "deleted"})
    assert [row.run.name for row in deleted.context["rows"]] == ["baseline"]
    assert "data-runs-view" in deleted.content.decode()

    page = client.get(url("run-detail", run))
    html = page.content.decode()
    assert "data-restore-run" in html
    assert "data-rename-run" not in html
    assert page.context["restorable_until"] == run.deleted_at + timedelta(days=30)

    restored = client.post(url("run-restore", run))
    assert restored.status_code == 302
    assert restored["Location"] == url("run-detail", run)
    assert stored(run) == ("baseline", Lifecycle.ACTIVE)
    events = AuditEvent.objects.filter(action__in=["run.deleted", "run.restored"])
    assert sorted(events.values_list("action", "actor_name")) == [
        ("run.deleted", "ada"),
        ("run.restored", "ada"),
    ]


def test_a_deleted_run_cannot_be_renamed(ada: User, run: Run) -> None:
    run_delete(run=run, actor=ada)
    response = signed_in(ada).post(url("run-rename", run), {"name": "ghost"})
    assert response.status_code == 400
    assert "restore it first" in response.content.decode()
    assert stored(run) == ("baseline", Lifecycle.DELETED)


def test_a_run_past_its_retention_period_is_not_restored(ada: User, run: Run) -> None:
    run_delete(run=run, actor=ada)
    Run.objects.filter(pk=run.pk).update(deleted_at=timezone.now() - timedelta(days=31))
    response = signed_in(ada).post(url("run-restore", run))
    assert response.status_code == 400
    assert "cannot be restored" in response.content.decode()
    assert stored(run) == ("baseline", Lifecycle.DELETED)


def test_the_forms_need_the_csrf_token(ada: User, run: Run) -> None:
    client = signed_in(ada, csrf=True)
    assert client.post(url("run-rename", run), {"name": "forged"}).status_code == 403
    assert client.post(url("run-delete", run)).status_code == 403
    assert stored(run) == ("baseline", Lifecycle.ACTIVE)

    client.get(url("run-detail", run))  # sets the CSRF cookie, as a browser's visit does
    token = client.cookies["csrftoken"].value
    response = client.post(url("run-rename", run), {"name": "real", "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert stored(run) == ("real", Lifecycle.ACTIVE)


def test_another_teams_run_is_not_found(ada: User) -> None:
    theirs = make_team("beta")
    them = make_user(theirs)
    secret = run_create(
        experiment=experiment_create(team=theirs, name="secret", actor=them), name="r", actor=them
    )
    client = signed_in(ada)
    for name in ("run-rename", "run-delete", "run-restore"):
        assert client.post(url(name, secret), {"name": "x"}).status_code == 404
    assert stored(secret) == ("r", Lifecycle.ACTIVE)


def test_the_actions_take_only_posts(ada: User, run: Run) -> None:
    client = signed_in(ada)
    for name in ("run-rename", "run-delete", "run-restore"):
        assert client.get(url(name, run)).status_code == 405
    assert stored(run) == ("baseline", Lifecycle.ACTIVE)
