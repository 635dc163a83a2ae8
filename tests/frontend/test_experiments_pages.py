"""The experiments pages: the team's experiments (create, rename, delete, restore), the runs
table (columns, sorting and filtering on the server, pages), a run's page, the compare view
and the series endpoint the charts draw from. Data made through the experiments services;
every page read through the test client as a member of the team (or not)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from pytest_django import DjangoAssertNumQueries

from experiments.models import Experiment, Lifecycle, Run, RunStatus
from experiments.services import (
    MetricInput,
    experiment_create,
    run_artifact_put,
    run_create,
    run_log_batch,
    run_transition,
)
from frontend.experiments.runs import MAX_WIDTH
from frontend.experiments.views import RUNS_PAGE_SIZE
from studio.accounts.models import Team
from studio.audit.models import AuditEvent
from tests.factories import make_team, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _nothing_runs(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    monkeypatch.setattr("jobs.tasks.run_job.apply_async", lambda *a, **k: None)
    settings.RUNTIME = "process"


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
    return experiment_create(team=team, name="churn", description="Who leaves", actor=ada)


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def make_run(
    experiment: Experiment,
    user: User,
    name: str,
    *,
    params: dict[str, str] | None = None,
    metrics: dict[str, float] | None = None,
    start_time: int | None = None,
) -> Run:
    run = run_create(experiment=experiment, name=name, actor=user, start_time=start_time)
    run_log_batch(
        run=run,
        actor=user,
        params=list((params or {}).items()),
        metrics=[MetricInput(k, v, 0, 1_700_000_000_000) for k, v in (metrics or {}).items()],
    )
    return run


def log_series(run: Run, user: User, key: str, values: list[float], *, first_step: int = 0) -> None:
    for start in range(0, len(values), 1000):
        run_log_batch(
            run=run,
            actor=user,
            metrics=[
                MetricInput(key, value, first_step + start + i, 1_700_000_000_000 + start + i)
                for i, value in enumerate(values[start : start + 1000])
            ],
        )


def names_in_table(response: Any) -> list[str]:
    return [row.run.name for row in response.context["rows"]]


# --- navigation and access -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["experiments", "runs-compare"])
def test_anonymous_visitor_is_sent_to_login(client: Client, name: str) -> None:
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_anonymous_visitor_gets_no_series(client: Client) -> None:
    assert client.get(reverse("runs-series"), {"run": "x", "key": "loss"}).status_code == 302


def test_the_experiments_entry_of_the_navigation_is_live(experiment: Experiment, ada: User) -> None:
    run = make_run(experiment, ada, "base")
    client = signed_in(ada)
    for url in (
        reverse("experiments"),
        reverse("experiment-detail", args=[experiment.pk]),
        reverse("run-detail", args=[run.run_uuid]),
    ):
        html = client.get(url).content.decode()
        assert f'<a class="nav-link active" href="{reverse("experiments")}"' in html, url


def test_a_user_without_a_team_sees_an_empty_state() -> None:
    client = signed_in(make_user(username="loner"))
    response = client.get(reverse("experiments"))
    assert response.status_code == 200
    assert b"No team yet" in response.content


# --- the experiments list ------------------------------------------------------------------


def test_list_shows_the_teams_experiments_with_runs_and_activity(
    team: Team, ada: User, experiment: Experiment
) -> None:
    make_run(experiment, ada, "a", start_time=1_700_000_000_000)
    newest = make_run(experiment, ada, "b", start_time=1_800_000_000_000)
    run_transition(run=newest, status=RunStatus.FINISHED, actor=ada)
    experiment_create(team=team, name="empty-one", actor=ada)
    theirs = make_team("beta")
    experiment_create(team=theirs, name="secret", actor=make_user(theirs))

    response = signed_in(ada).get(reverse("experiments"))
    assert response.status_code == 200
    rows = {row["experiment"].name: row for row in response.context["rows"]}
    assert set(rows) == {"churn", "empty-one"}
    assert rows["churn"]["experiment"].run_count == 2
    assert rows["churn"]["experiment"].running_count == 1
    assert rows["churn"]["last_activity"].year == 2027  # the newest run's start
    assert rows["empty-one"]["experiment"].run_count == 0
    html = response.content.decode()
    assert "Who leaves" in html
    assert "secret" not in html
    assert "data-create-experiment" in html


def test_list_queries_do_not_grow_with_experiments_and_runs(
    team: Team, ada: User, django_assert_max_num_queries: DjangoAssertNumQueries
) -> None:
    client = signed_in(ada)
    experiment_create(team=team, name="one", actor=ada)
    with CaptureQueriesContext(connection) as baseline:
        client.get(reverse("experiments"))
    for index in range(5):
        experiment = experiment_create(team=team, name=f"more-{index}", actor=ada)
        make_run(experiment, ada, "r", params={"a": "1"}, metrics={"m": 1.0})
    with django_assert_max_num_queries(len(baseline)):
        response = client.get(reverse("experiments"))
    assert len(response.context["rows"]) == 6


def test_an_empty_team_sees_how_experiments_come_about(ada: User) -> None:
    html = signed_in(ada).get(reverse("experiments")).content.decode()
    assert "No experiments yet." in html
    assert "MLFLOW_TRACKING_URI" in html


def test_scientist_creates_an_experiment(team: Team, ada: User) -> None:
    response = signed_in(ada).post(
        reverse("experiment-create"), {"name": " vision ", "description": "cats"}
    )
    experiment = Experiment.objects.get(team=team, name="vision")
    assert response.status_code == 302
    assert response["Location"] == reverse("experiment-detail", args=[experiment.pk])
    assert experiment.description == "cats"
    assert AuditEvent.objects.filter(action="experiment.created").exists()


def test_creating_an_experiment_with_a_used_name_is_a_conflict(
    ada: User, experiment: Experiment
) -> None:
    response = signed_in(ada).post(reverse("experiment-create"), {"name": "churn"})
    assert response.status_code == 409
    assert "exists already" in response.content.decode()
    assert response.context["form_open"] is True


def test_creating_an_experiment_without_a_name_is_refused(ada: User) -> None:
    response = signed_in(ada).post(reverse("experiment-create"), {"name": ""})
    assert response.status_code == 400
    assert not Experiment.objects.exists()


def test_viewer_reads_but_cannot_create_rename_or_delete(vic: User, experiment: Experiment) -> None:
    client = signed_in(vic)
    html = client.get(reverse("experiments")).content.decode()
    assert "churn" in html
    assert "data-create-experiment" not in html
    detail = client.get(reverse("experiment-detail", args=[experiment.pk])).content.decode()
    assert "data-rename-experiment" not in detail
    assert "data-delete-form" not in detail

    assert client.post(reverse("experiment-create"), {"name": "mine"}).status_code == 403
    rename = client.post(reverse("experiment-rename", args=[experiment.pk]), {"name": "x"})
    assert rename.status_code == 403
    assert client.post(reverse("experiment-delete", args=[experiment.pk])).status_code == 403
    experiment.refresh_from_db()
    assert (experiment.name, experiment.lifecycle) == ("churn", Lifecycle.ACTIVE)
    assert not Experiment.objects.filter(name="mine").exists()


def test_scientist_renames_and_describes_an_experiment(ada: User, experiment: Experiment) -> None:
    response = signed_in(ada).post(
        reverse("experiment-rename", args=[experiment.pk]),
        {"name": "churn-v2", "description": "second try"},
    )
    assert response.status_code == 302
    experiment.refresh_from_db()
    assert (experiment.name, experiment.description) == ("churn-v2", "second try")


def test_renaming_onto_another_experiments_name_is_a_conflict(
    team: Team, ada: User, experiment: Experiment
) -> None:
    experiment_create(team=team, name="taken", actor=ada)
    response = signed_in(ada).post(
        reverse("experiment-rename", args=[experiment.pk]), {"name": "taken"}
    )
    assert response.status_code == 409
    assert response.context["experiment"].name == "churn"  # the stored name, not the refused one
    assert "exists already" in response.content.decode()


def test_delete_hides_the_experiment_and_restore_brings_it_back_with_its_runs(
    ada: User, experiment: Experiment
) -> None:
    run = make_run(experiment, ada, "base")
    client = signed_in(ada)
    response = client.post(reverse("experiment-delete", args=[experiment.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("experiments")
    assert "churn" not in [
        r["experiment"].name for r in client.get(reverse("experiments")).context["rows"]
    ]

    deleted = client.get(reverse("experiments"), {"view": "deleted"})
    assert [r["experiment"].name for r in deleted.context["rows"]] == ["churn"]
    assert "Restore" in deleted.content.decode()
    page = client.get(reverse("experiment-detail", args=[experiment.pk]))
    assert page.status_code == 200
    assert page.context["deleted"] is True
    assert names_in_table(page) == ["base"]  # the runs deleted with it, shown to restore

    assert client.post(reverse("experiment-restore", args=[experiment.pk])).status_code == 302
    run.refresh_from_db()
    experiment.refresh_from_db()
    assert experiment.lifecycle == run.lifecycle == Lifecycle.ACTIVE


def test_another_teams_experiment_is_not_found(ada: User) -> None:
    theirs = make_team("beta")
    secret = experiment_create(team=theirs, name="secret", actor=make_user(theirs))
    client = signed_in(ada)
    assert client.get(reverse("experiment-detail", args=[secret.pk])).status_code == 404
    assert client.get(reverse("experiment-detail", args=[999999])).status_code == 404
    for name in ("experiment-rename", "experiment-delete", "experiment-restore"):
        assert client.post(reverse(name, args=[secret.pk]), {"name": "x"}).status_code == 404
    secret.refresh_from_db()
    assert (secret.name, secret.lifecycle) == ("secret", Lifecycle.ACTIVE)


def test_pages_that_change_things_take_only_posts(ada: User, experiment: Experiment) -> None:
    client = signed_in(ada)
    assert client.get(reverse("experiment-create")).status_code == 405
    assert client.get(reverse("experiment-delete", args=[experiment.pk])).status_code == 405
    assert client.post(reverse("experiments")).status_code == 405


# --- the runs table ------------------------------------------------------------------------


@pytest.fixture
def three_runs(experiment: Experiment, ada: User) -> list[Run]:
    return [
        make_run(
            experiment,
            ada,
            "small",
            params={"lr": "0.1", "model": "cnn"},
            metrics={"acc": 0.7, "loss": 0.9},
            start_time=1_700_000_000_000,
        ),
        make_run(
            experiment,
            ada,
            "large",
            params={"lr": "0.01", "model": "resnet"},
            metrics={"acc": 0.95, "loss": math.nan},
            start_time=1_700_000_100_000,
        ),
        make_run(experiment, ada, "bare", start_time=1_700_000_200_000),
    ]


def test_runs_table_shows_attributes_params_and_latest_metrics(
    ada: User, experiment: Experiment, three_runs: list[Run]
) -> None:
    response = signed_in(ada).get(reverse("experiment-detail", args=[experiment.pk]))
    assert response.status_code == 200
    assert names_in_table(response) == ["bare", "large", "small"]  # newest first
    assert response.context["shown_params"] == ["lr", "model"]
    assert response.context["shown_metrics"] == ["acc", "loss"]
    rows = {row.run.name: row for row in response.context["rows"]}
    assert rows["large"].params == ["0.01", "resnet"]
    assert [cell.value for cell in rows["large"].metrics] == ["0.95", "NaN"]  # NaN as such
    assert [cell.value for cell in rows["bare"].metrics] == ["—", "—"]  # absent is not NaN
    html = response.content.decode()
    assert f'value="{three_runs[0].run_uuid}"' in html  # a checkbox to compare it
    assert f'action="{reverse("runs-compare")}"' in html


def test_runs_table_sorts_on_a_metric_with_runs_lacking_it_last(
    ada: User, experiment: Experiment, three_runs: list[Run]
) -> None:
    client = signed_in(ada)
    url = reverse("experiment-detail", args=[experiment.pk])
    descending = client.get(url, {"order": "metrics.acc DESC"})
    assert names_in_table(descending) == ["large", "small", "bare"]
    ascending = client.get(url, {"order": "metrics.acc ASC"})
    assert names_in_table(ascending) == ["small", "large", "bare"]
    header = next(h for h in ascending.context["metric_headers"] if h.column.key == "acc")
    assert header.direction == "asc"
    assert "order=metrics.acc+DESC" in header.href  # a second click sorts the other way


def test_runs_table_sorts_on_a_param_and_an_attribute(
    ada: User, experiment: Experiment, three_runs: list[Run]
) -> None:
    client = signed_in(ada)
    url = reverse("experiment-detail", args=[experiment.pk])
    assert names_in_table(client.get(url, {"order": "params.model ASC"})) == [
        "small",
        "large",
        "bare",
    ]
    assert names_in_table(client.get(url, {"order": "attributes.run_name ASC"})) == [
        "bare",
        "large",
        "small",
    ]


def test_runs_table_filters_on_params_and_metrics_on_the_server(
    ada: User, experiment: Experiment, three_runs: list[Run]
) -> None:
    client = signed_in(ada)
    url = reverse("experiment-detail", args=[experiment.pk])
    assert names_in_table(client.get(url, {"filter": "metrics.acc > 0.8"})) == ["large"]
    assert names_in_table(client.get(url, {"filter": "params.model = 'cnn'"})) == ["small"]
    both = client.get(url, {"filter": "params.lr LIKE '0.%' AND metrics.acc < 0.8"})
    assert names_in_table(both) == ["small"]
    none = client.get(url, {"filter": "metrics.acc > 2"})
    assert none.status_code == 200
    assert "No runs match this filter." in none.content.decode()


def test_filtering_or_sorting_on_a_key_adds_its_column(
    ada: User, experiment: Experiment, three_runs: list[Run]
) -> None:
    url = reverse("experiment-detail", args=[experiment.pk])
    response = signed_in(ada).get(
        url, {"cols": "1", "param": "lr", "filter": "params.model = 'cnn'", "order": "metrics.loss"}
    )
    assert response.context["shown_params"] == ["lr", "model"]
    assert response.context["shown_metrics"] == ["loss"]


def test_chosen_columns_replace_the_defaults(
    ada: User, experiment: Experiment, three_runs: list[Run]
) -> None:
    url = reverse("experiment-detail", args=[experiment.pk])
    response = signed_in(ada).get(url, {"cols": "1", "metric": "loss"})
    assert response.context["shown_params"] == []
    assert response.context["shown_metrics"] == ["loss"]
    assert '<th scope="col" class="param-col' not in response.content.decode()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"filter": "metrics.acc >"}, "ends in the middle"),
        ({"filter": "metrics.acc > 1 OR params.a = 'b'"}, "OR is not supported"),
        ({"filter": "metrics.acc = 'high'"}, "compares with a number"),
        ({"order": "attributes.colour"}, "unknown attribute"),
        ({"order": "metrics.acc SIDEWAYS"}, "ASC or DESC"),
        ({"page": "not-a-token"}, "not a token this server issued"),
    ],
)
def test_bad_filters_orders_and_pages_are_a_400_that_says_why(
    ada: User, experiment: Experiment, three_runs: list[Run], query: dict[str, str], message: str
) -> None:
    response = signed_in(ada).get(reverse("experiment-detail", args=[experiment.pk]), query)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert response.context["rows"] == []


def test_runs_table_pages_without_loading_every_run(
    ada: User,
    experiment: Experiment,
    django_assert_max_num_queries: DjangoAssertNumQueries,
) -> None:
    client = signed_in(ada)
    url = reverse("experiment-detail", args=[experiment.pk])
    make_run(experiment, ada, "first", params={"p": "1"}, metrics={"m": 1.0})
    with CaptureQueriesContext(connection) as baseline:
        client.get(url)
    for index in range(RUNS_PAGE_SIZE + 4):
        make_run(
            experiment,
            ada,
            f"run-{index:03d}",
            params={"p": str(index)},
            metrics={"m": float(index)},
            start_time=1_700_000_000_000 + index,
        )
    with django_assert_max_num_queries(len(baseline)):
        page_one = client.get(url, {"order": "metrics.m DESC"})
    assert len(page_one.context["rows"]) == RUNS_PAGE_SIZE
    assert names_in_table(page_one)[:2] == ["run-053", "run-052"]
    next_href = page_one.context["next_href"]
    assert next_href
    page_two = client.get(url + next_href)
    # "first" ties with run-001 on m = 1 and is newer: ties go newest first.
    assert names_in_table(page_two) == ["run-003", "run-002", "first", "run-001", "run-000"]
    assert page_two.context["next_href"] is None
    assert page_two.context["first_href"]


def test_runs_table_of_an_empty_experiment_says_how_runs_arrive(
    ada: User, experiment: Experiment
) -> None:
    html = signed_in(ada).get(reverse("experiment-detail", args=[experiment.pk])).content.decode()
    assert "No runs yet." in html


def test_deleted_runs_are_not_in_the_table(
    ada: User, experiment: Experiment, three_runs: list[Run]
) -> None:
    from experiments.services import run_delete

    run_delete(run=three_runs[0], actor=ada)
    response = signed_in(ada).get(reverse("experiment-detail", args=[experiment.pk]))
    assert names_in_table(response) == ["bare", "large"]


# --- a run's page --------------------------------------------------------------------------


def test_run_page_shows_params_tags_metrics_and_chart_placeholders(
    vic: User, ada: User, experiment: Experiment
) -> None:
    run = make_run(experiment, ada, "base", params={"lr": "0.1"}, metrics={"acc": 0.9})
    run_log_batch(
        run=run,
        actor=ada,
        tags=[("stage", "dev")],
        metrics=[MetricInput("loss", math.inf, 3, 1_700_000_000_500)],
    )
    response = signed_in(vic).get(reverse("run-detail", args=[run.run_uuid]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<code>lr</code>" in html
    assert "0.1" in html
    assert "<code>stage</code>" in html
    assert "dev" in html
    assert 'data-metric="loss"' in html
    assert ">Infinity<" in html
    assert html.count("data-metric-chart data-key=") == 2
    config = json.loads(
        html.split('id="metric-charts-config" type="application/json">')[1].split("</script>")[0]
    )
    assert config["keys"] == ["acc", "loss"]
    assert config["runs"][0]["id"] == run.run_uuid
    assert config["series"] == reverse("runs-series")
    assert "No artifacts logged." in html


def test_run_page_asks_for_its_series_before_loading_the_small_plotly_bundle(
    ada: User, experiment: Experiment
) -> None:
    run = make_run(experiment, ada, "base", metrics={"acc": 0.9})
    html = signed_in(ada).get(reverse("run-detail", args=[run.run_uuid])).content.decode()
    # Deferred scripts run in document order: experiments.js sends the series requests,
    # then the browser evaluates plotly while they travel.
    assert html.index("frontend/experiments.js") < html.index("vendor/plotly-basic.min.js")
    assert "vendor/plotly.min.js" not in html
    config = json.loads(
        html.split('id="metric-charts-config" type="application/json">')[1].split("</script>")[0]
    )
    assert config["webgl"] is False  # the basic bundle has no scattergl
    assert config["batch"] >= 10  # a run page's first 10 charts in one request


def test_run_page_without_metrics_shows_an_empty_state(ada: User, experiment: Experiment) -> None:
    run = make_run(experiment, ada, "quiet")
    html = signed_in(ada).get(reverse("run-detail", args=[run.run_uuid])).content.decode()
    assert "No metrics logged yet." in html
    assert "No parameters logged." in html


def test_run_page_lists_artifacts_and_links_their_download(
    ada: User, experiment: Experiment
) -> None:
    run = make_run(experiment, ada, "base")
    run_artifact_put(run=run, actor=ada, path="model/model.pkl", data=b"weights")
    run_artifact_put(run=run, actor=ada, path="notes.txt", data=b"hello")
    client = signed_in(ada)
    root = client.get(reverse("run-detail", args=[run.run_uuid]))
    names = [item["name"] for item in root.context["artifacts"]]
    assert names == ["model", "notes.txt"]
    notes = root.context["artifacts"][1]["href"]
    assert notes == reverse("api-run-artifact", args=[run.run_uuid, "notes.txt"])
    download = client.get(notes)
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == b"hello"  # type: ignore[attr-defined]

    folder = client.get(reverse("run-detail", args=[run.run_uuid]), {"path": "model"})
    assert [item["name"] for item in folder.context["artifacts"]] == ["model.pkl"]
    assert folder.context["artifact_crumbs"] == [("model", "model")]


def test_run_page_refuses_a_bad_artifact_path(ada: User, experiment: Experiment) -> None:
    run = make_run(experiment, ada, "base")
    response = signed_in(ada).get(reverse("run-detail", args=[run.run_uuid]), {"path": "a/../b"})
    assert response.status_code == 400
    assert response.context["artifacts_error"]


def test_run_of_a_job_links_the_job_and_its_log(team: Team, ada: User) -> None:
    from jobs.services.submission import JobRequest, job_create

    job = job_create(
        team=team,
        actor=ada,
        request=JobRequest(
            name="train-1", instance_type="ml.local.small", image="studiolo/custom:1"
        ),
    )
    assert job.run is not None
    html = signed_in(ada).get(reverse("run-detail", args=[job.run.run_uuid])).content.decode()
    assert f'href="{reverse("job-detail", args=[job.pk])}"' in html
    assert f"/api/v1/jobs/{job.pk}/logs/download" in html
    assert "data-job-panel" in html


def test_a_run_of_another_team_is_not_found(ada: User) -> None:
    theirs = make_team("beta")
    them = make_user(theirs)
    secret = make_run(experiment_create(team=theirs, name="secret", actor=them), them, "r")
    client = signed_in(ada)
    assert client.get(reverse("run-detail", args=[secret.run_uuid])).status_code == 404
    assert client.get(reverse("run-detail", args=["0" * 32])).status_code == 404


# --- the series endpoint -------------------------------------------------------------------


def series(client: Client, **query: Any) -> Any:
    return client.get(reverse("runs-series"), query)


def test_series_of_a_short_metric_come_whole_in_step_order(
    vic: User, ada: User, experiment: Experiment
) -> None:
    run = make_run(experiment, ada, "base")
    log_series(run, ada, "loss", [3.0, math.nan, 1.0, -math.inf])
    response = series(signed_in(vic), run=run.run_uuid, key="loss", width=400)
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    (item,) = response.json()["series"]
    assert item["run"] == run.run_uuid
    assert item["key"] == "loss"
    assert item["sampled"] is False
    assert item["step"] == [0, 1, 2, 3]
    assert item["value"] == [3.0, "NaN", 1.0, "-Infinity"]  # as the tracking API writes them
    assert item["time"] == [1_700_000_000_000 + step for step in range(4)]


def test_a_long_series_is_downsampled_to_the_width_keeping_the_spike(
    ada: User, experiment: Experiment
) -> None:
    run = make_run(experiment, ada, "long")
    values = [1.0] * 5000
    values[3333] = 99.0
    log_series(run, ada, "loss", values)
    client = signed_in(ada)
    (coarse,) = series(client, run=run.run_uuid, key="loss", width=100).json()["series"]
    assert coarse["sampled"] is True
    assert len(coarse["step"]) <= 200  # two points per pixel
    assert 99.0 in coarse["value"]  # the spike survives
    (zoomed,) = series(
        client, run=run.run_uuid, key="loss", width=100, step_min=3300, step_max=3380
    ).json()["series"]
    assert zoomed["sampled"] is False  # 81 points fit in 100 pixels: full resolution
    assert zoomed["step"] == list(range(3300, 3381))


def test_series_after_a_step_return_only_the_new_points(ada: User, experiment: Experiment) -> None:
    run = make_run(experiment, ada, "live")
    log_series(run, ada, "loss", [float(i) for i in range(10)])
    (item,) = series(signed_in(ada), run=run.run_uuid, key="loss", step_min=8).json()["series"]
    assert item["step"] == [8, 9]


def test_series_of_several_runs_and_keys_in_one_call(ada: User, experiment: Experiment) -> None:
    one = make_run(experiment, ada, "one", metrics={"acc": 0.5, "loss": 1.0})
    two = make_run(experiment, ada, "two", metrics={"acc": 0.6})
    response = signed_in(ada).get(
        reverse("runs-series"),
        {"run": [one.run_uuid, two.run_uuid], "key": ["acc", "loss"], "width": 300},
    )
    got = [(item["run"], item["key"], item["value"]) for item in response.json()["series"]]
    assert got == [
        (one.run_uuid, "acc", [0.5]),
        (one.run_uuid, "loss", [1.0]),
        (two.run_uuid, "acc", [0.6]),
        (two.run_uuid, "loss", []),
    ]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"key": "loss"}, "run"),
        ({"run": "RUN"}, "key"),
        ({"run": "RUN", "key": "loss", "width": "wide"}, "width"),
        ({"run": "RUN", "key": "loss", "width": "3"}, "width"),
        ({"run": "RUN", "key": "loss", "width": str(MAX_WIDTH + 1)}, "width"),
        ({"run": "RUN", "key": "loss", "step_min": "1.5"}, "step_min"),
        ({"run": "RUN", "key": "loss", "step_max": str(2**70)}, "step_max"),
    ],
)
def test_bad_series_requests_are_a_400_naming_the_field(
    ada: User, experiment: Experiment, query: dict[str, str], field: str
) -> None:
    run = make_run(experiment, ada, "base")
    query = {name: run.run_uuid if value == "RUN" else value for name, value in query.items()}
    response = series(signed_in(ada), **query)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field


def test_series_of_too_many_runs_are_refused(ada: User, experiment: Experiment) -> None:
    response = signed_in(ada).get(
        reverse("runs-series"), {"run": [f"{i:032x}" for i in range(21)], "key": "loss"}
    )
    assert response.status_code == 400


def test_series_of_another_teams_run_are_not_found(ada: User, experiment: Experiment) -> None:
    mine = make_run(experiment, ada, "mine", metrics={"loss": 1.0})
    theirs = make_team("beta")
    them = make_user(theirs)
    secret = make_run(
        experiment_create(team=theirs, name="s", actor=them), them, "r", metrics={"loss": 2.0}
    )
    response = signed_in(ada).get(
        reverse("runs-series"), {"run": [mine.run_uuid, secret.run_uuid], "key": "loss"}
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert "2.0" not in response.content.decode()


# --- the compare view ----------------------------------------------------------------------


def test_compare_shows_params_and_metrics_side_by_side_with_differences(
    vic: User, experiment: Experiment, three_runs: list[Run]
) -> None:
    small, large, _ = three_runs
    response = signed_in(vic).get(
        reverse("runs-compare"), {"run": [small.run_uuid, large.run_uuid]}
    )
    assert response.status_code == 200
    rows = {(row.section, row.label): row for row in response.context["rows"]}
    assert [cell.text for cell in rows[("params", "lr")].cells] == ["0.1", "0.01"]
    assert rows[("params", "lr")].differs is True
    assert rows[("attributes", "Experiment")].differs is False
    assert [cell.text for cell in rows[("metrics", "loss")].cells] == ["0.9", "NaN"]
    html = response.content.decode()
    assert "data-differs" in html
    assert 'id="figure-parallel"' in html
    assert 'id="figure-scatter"' in html
    assert response.context["metric"] == "acc"
    assert (response.context["x"], response.context["y"]) == ("params.lr", "metrics.acc")
    parallel = response.context["parallel"]["data"][0]
    assert parallel["type"] == "parcoords"
    assert [d["label"] for d in parallel["dimensions"]] == ["lr", "model", "acc"]
    config = response.context["charts_config"]
    assert [run["id"] for run in config["runs"]] == [small.run_uuid, large.run_uuid]
    assert config["keys"] == ["acc", "loss"]
    # Parallel coordinates and WebGL curves need the full bundle, after experiments.js.
    assert config["webgl"] is True
    assert html.index("frontend/experiments.js") < html.index("vendor/plotly.min.js")


def test_compare_draws_the_chosen_metric_and_columns(
    ada: User, experiment: Experiment, three_runs: list[Run]
) -> None:
    small, large, _ = three_runs
    response = signed_in(ada).get(
        reverse("runs-compare"),
        {
            "run": [small.run_uuid, large.run_uuid],
            "metric": "loss",
            "x": "metrics.acc",
            "y": "params.model",
        },
    )
    assert response.status_code == 200
    parallel = response.context["parallel"]["data"][0]
    assert parallel["dimensions"][-1]["label"] == "loss"
    scatter = response.context["scatter"]["data"][0]
    assert scatter["x"] == [0.7, 0.95]
    assert scatter["y"] == ["cnn", "resnet"]
    assert scatter["text"] == ["small", "large"]


@pytest.mark.parametrize("count", [0, 1, 21])
def test_compare_needs_two_to_twenty_runs(ada: User, experiment: Experiment, count: int) -> None:
    runs = [make_run(experiment, ada, f"r{i}") for i in range(min(count, 2))]
    ids = [run.run_uuid for run in runs] + [f"{i:032x}" for i in range(count - len(runs))]
    response = signed_in(ada).get(reverse("runs-compare"), {"run": ids})
    assert response.status_code == 400
    assert "Pick between 2 and 20 runs" in response.content.decode()


def test_compare_counts_a_run_picked_twice_once(ada: User, experiment: Experiment) -> None:
    run = make_run(experiment, ada, "r")
    response = signed_in(ada).get(reverse("runs-compare"), {"run": [run.run_uuid, run.run_uuid]})
    assert response.status_code == 400


@pytest.mark.parametrize(
    "query", [{"metric": "nope"}, {"x": "params.nope"}, {"y": "attributes.status"}]
)
def test_compare_refuses_unknown_columns(
    ada: User, experiment: Experiment, three_runs: list[Run], query: dict[str, str]
) -> None:
    ids = [three_runs[0].run_uuid, three_runs[1].run_uuid]
    response = signed_in(ada).get(reverse("runs-compare"), {"run": ids, **query})
    assert response.status_code == 400


def test_compare_with_a_run_of_another_team_is_not_found(ada: User, experiment: Experiment) -> None:
    mine = make_run(experiment, ada, "mine")
    theirs = make_team("beta")
    them = make_user(theirs)
    secret = make_run(experiment_create(team=theirs, name="s", actor=them), them, "r")
    response = signed_in(ada).get(
        reverse("runs-compare"), {"run": [mine.run_uuid, secret.run_uuid]}
    )
    assert response.status_code == 404


def test_compare_of_runs_without_params_or_metrics_draws_no_chart(
    ada: User, experiment: Experiment
) -> None:
    ids = [make_run(experiment, ada, f"r{i}").run_uuid for i in range(2)]
    response = signed_in(ada).get(reverse("runs-compare"), {"run": ids})
    assert response.status_code == 200
    assert response.context["parallel"] is None
    assert response.context["scatter"] is None
    assert "No metrics logged yet." in response.content.decode()


def test_compare_queries_do_not_grow_with_the_runs(
    ada: User, experiment: Experiment, django_assert_max_num_queries: DjangoAssertNumQueries
) -> None:
    runs = [
        make_run(experiment, ada, f"r{i}", params={"p": str(i)}, metrics={"m": i}) for i in range(6)
    ]
    client = signed_in(ada)
    with CaptureQueriesContext(connection) as two:
        client.get(reverse("runs-compare"), {"run": [r.run_uuid for r in runs[:2]]})
    with django_assert_max_num_queries(len(two)):
        response = client.get(reverse("runs-compare"), {"run": [r.run_uuid for r in runs]})
    assert len(response.context["runs"]) == 6


def test_keys_with_spaces_sort_through_quoted_names(ada: User, experiment: Experiment) -> None:
    make_run(experiment, ada, "low", metrics={"val loss": 0.2})
    make_run(experiment, ada, "high", metrics={"val loss": 0.8})
    client = signed_in(ada)
    url = reverse("experiment-detail", args=[experiment.pk])
    header = client.get(url).context["metric_headers"][0]
    assert header.column.name == "metrics.`val loss`"
    sorted_page = client.get(url + header.href)
    assert sorted_page.status_code == 200
    assert names_in_table(sorted_page) == ["low", "high"]
