"""The jobs pages: the team's list, the new-job form, a job's page and its Stop button.

Jobs are made through `job_create` with the worker queue stubbed out (nothing runs) and the
process runtime (every image "exists"); their status moves through the lifecycle service.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries

from experiments.services import Point, metrics_log_batch
from jobs.models import Job, JobLogLine, JobStatus, SecondaryStatus
from jobs.services.checkpoints import LOG_PREFIX
from jobs.services.lifecycle import job_fail, job_stop, job_transition
from jobs.services.submission import ChannelRequest, JobRequest, MetricDefinition, job_create
from studio.accounts import services
from studio.accounts.models import Team
from studio.artifacts import get_store
from tests.factories import make_team, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _nothing_runs(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    monkeypatch.setattr("jobs.tasks.run_job.apply_async", lambda *a, **k: None)
    settings.RUNTIME = "process"  # image checks pass without an engine


@pytest.fixture
def team() -> Team:
    return make_team("alpha")


@pytest.fixture
def member(team: Team) -> User:
    return make_user(team, role="scientist", username="ada")


@pytest.fixture
def signed_in(client: Client, member: User) -> Client:
    client.force_login(member)
    return client


def make_job(team: Team, user: User | None, name: str, **overrides: Any) -> Job:
    request = JobRequest(
        name=name, instance_type="ml.local.small", image="studiolo/custom:1", **overrides
    )
    return job_create(team=team, actor=user, request=request)


def run(job: Job) -> Job:
    return job_transition(
        job_id=job.pk,
        status=JobStatus.IN_PROGRESS,
        secondary_status=SecondaryStatus.TRAINING,
        message="Training started",
    )


def complete(job: Job, **fields: Any) -> Job:
    run(job)
    return job_transition(
        job_id=job.pk,
        status=JobStatus.COMPLETED,
        secondary_status=SecondaryStatus.COMPLETED,
        message="Training job completed",
        **fields,
    )


def add_log(job: Job, lines: list[tuple[str, str]]) -> None:
    now = timezone.now()
    start = Job.objects.get(pk=job.pk).log_line_count
    JobLogLine.objects.bulk_create(
        JobLogLine(job=job, seq=start + index, stream=stream, at=now, line=text)
        for index, (stream, text) in enumerate(lines, start=1)
    )
    Job.objects.filter(pk=job.pk).update(log_line_count=start + len(lines))


def source_archive(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def names_in(response: Any) -> list[str]:
    return [row.job.name for row in response.context["rows"]]


# --- navigation and access ---------------------------------------------------------------


@pytest.mark.parametrize("path", ["/jobs/", "/jobs/new/", "/jobs/1/"])
def test_anonymous_visitor_is_sent_to_login(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith(f"{reverse('login')}?next=")


def test_jobs_nav_item_links_to_the_list_and_is_highlighted_there(signed_in: Client) -> None:
    html = signed_in.get(reverse("jobs")).content.decode()
    link = re.search(r'<a class="nav-link active" href="/jobs/"[^>]*>.*?<span>Jobs</span>', html)
    assert link is not None
    assert 'aria-current="page"' in link.group(0)


def test_user_without_a_team_sees_an_empty_state(client: Client) -> None:
    client.force_login(make_user(username="loner"))
    assert b"No team yet" in client.get(reverse("jobs")).content
    assert b"No team yet" in client.get(reverse("job-new")).content


# --- the list ----------------------------------------------------------------------------


def test_list_shows_the_current_teams_jobs_newest_first_with_coloured_badges(
    signed_in: Client, team: Team, member: User
) -> None:
    make_job(team, member, "first")
    run(make_job(team, member, "second"))
    theirs = make_team("beta")
    make_job(theirs, make_user(theirs, role="admin"), "hushhush")
    response = signed_in.get(reverse("jobs"))
    assert names_in(response) == ["second", "first"]
    html = response.content.decode()
    assert "hushhush" not in html
    assert (
        'class="status status-blue" data-status-badge data-status="InProgress">In progress<' in html
    )
    assert 'class="status status-cyan" data-status-badge data-status="Pending">Pending<' in html
    assert "<code>ml.local.small</code>" in html
    assert f'href="{reverse("job-detail", args=[Job.objects.get(name="first").pk])}"' in html
    assert "<td>ada</td>" in html
    config = json.loads(re.search(r'id="jobs-live-config"[^>]*>(.*?)</script>', html).group(1))
    assert config["colours"]["Failed"] == "red"
    assert config["newest_id"] == Job.objects.get(name="second").pk


def test_list_shows_the_session_team_only(signed_in: Client, team: Team, member: User) -> None:
    other = make_team("beta")
    services.membership_set(team=other, user=member, role="scientist")
    make_job(team, member, "in-alpha")
    make_job(other, member, "in-beta")
    assert names_in(signed_in.get(reverse("jobs"))) == ["in-alpha"]
    signed_in.post(reverse("team-switch"), {"team": "beta"})
    assert names_in(signed_in.get(reverse("jobs"))) == ["in-beta"]


@pytest.fixture
def jobs_of_every_status(team: Team, member: User) -> None:
    make_job(team, member, "pending")
    run(make_job(team, member, "running"))
    complete(make_job(team, member, "done"))
    job_fail(job_id=make_job(team, member, "broken").pk, reason="exit code 1")
    job_stop(job=make_job(team, member, "halted"), actor=member)
    stopping = run(make_job(team, member, "stopping"))
    job_stop(job=stopping, actor=member)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("", ["stopping", "halted", "broken", "done", "running", "pending"]),
        ("active", ["stopping", "running", "pending"]),
        ("completed", ["done"]),
        ("failed", ["broken"]),
        ("stopped", ["halted"]),
    ],
)
def test_status_chips_filter_the_list(
    signed_in: Client, jobs_of_every_status: None, status: str, expected: list[str]
) -> None:
    response = signed_in.get(reverse("jobs"), {"status": status} if status else {})
    assert names_in(response) == expected
    chips = {chip.key: chip for chip in response.context["chips"]}
    assert {key: chip.count for key, chip in chips.items()} == {
        "": 6,
        "active": 3,
        "completed": 1,
        "failed": 1,
        "stopped": 1,
    }
    assert chips[status].active
    assert sum(chip.active for chip in chips.values()) == 1


def test_name_search_narrows_the_list_and_the_chip_counts(
    signed_in: Client, jobs_of_every_status: None
) -> None:
    response = signed_in.get(reverse("jobs"), {"q": "ING"})
    assert names_in(response) == ["stopping", "running", "pending"]
    chips = {chip.key: chip for chip in response.context["chips"]}
    assert chips[""].count == 3
    assert chips["completed"].count == 0
    # the chips keep the search
    assert chips["failed"].href == "?q=ING&status=failed"
    response = signed_in.get(reverse("jobs"), {"q": "ING", "status": "active"})
    assert names_in(response) == ["stopping", "running", "pending"]
    assert b'name="status" value="active"' in response.content


def test_an_unknown_status_filter_is_refused_not_ignored(
    signed_in: Client, team: Team, member: User
) -> None:
    make_job(team, member, "one")
    response = signed_in.get(reverse("jobs"), {"status": "sideways"})
    assert response.status_code == 200
    assert names_in(response) == []
    assert b"Status filter: Select a valid choice" in response.content


def test_list_pages_with_a_keyset_cursor(
    signed_in: Client, team: Team, member: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("frontend.jobs.views.JOBS_PAGE_SIZE", 3)
    for index in range(7):
        make_job(team, member, f"job-{index}")
    first = signed_in.get(reverse("jobs"), {"q": "job"})
    assert names_in(first) == ["job-6", "job-5", "job-4"]
    older = first.context["older_url"]
    assert "q=job" in older
    second = signed_in.get(reverse("jobs") + older)
    assert names_in(second) == ["job-3", "job-2", "job-1"]
    # a job created meanwhile does not shift the next page
    make_job(team, member, "job-new")
    third = signed_in.get(reverse("jobs") + second.context["older_url"])
    assert names_in(third) == ["job-0"]
    assert third.context["older_url"] is None
    assert b"Newest" in third.content


def test_a_garbled_cursor_is_a_form_error(signed_in: Client) -> None:
    response = signed_in.get(reverse("jobs"), {"cursor": "not-a-cursor!"})
    assert response.status_code == 200
    assert b"no longer valid" in response.content


def _list_queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse("jobs")).status_code == 200
    return len(queries)


def test_list_queries_do_not_grow_with_the_number_of_jobs(
    signed_in: Client,
    team: Team,
    member: User,
    django_assert_max_num_queries: DjangoAssertNumQueries,
) -> None:
    others = [make_user(team) for _ in range(3)]
    for index in range(2):
        make_job(team, others[index % 3], f"early-{index}")
    with_two = _list_queries(signed_in)
    # session, user, memberships, the chip counts, one page of jobs (+1 spare)
    assert with_two <= 6
    for index in range(20):
        run(make_job(team, others[index % 3], f"late-{index}"))
    with django_assert_max_num_queries(with_two):
        response = signed_in.get(reverse("jobs"))
    assert len(response.context["rows"]) == 22


# --- the job page ------------------------------------------------------------------------


def test_a_job_of_another_team_is_not_found(signed_in: Client) -> None:
    theirs = make_team("beta")
    job = make_job(theirs, make_user(theirs, role="admin"), "secret-job")
    assert signed_in.get(reverse("job-detail", args=[job.pk])).status_code == 404
    assert signed_in.post(reverse("job-stop", args=[job.pk])).status_code == 404
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING
    assert signed_in.get(reverse("job-detail", args=[999999])).status_code == 404


def test_job_page_shows_configuration_and_timeline(
    signed_in: Client, team: Team, member: User
) -> None:
    store = get_store()
    store.put("teams/alpha/data/page/train.csv", b"1,2\n")
    job = make_job(
        team,
        member,
        "configured",
        hyperparameters={"epochs": "3", "lr": "<0.1>"},
        channels=[ChannelRequest(name="train", uri=store.uri("teams/alpha/data/page"))],
        max_runtime_seconds=600,
    )
    run(job)
    html = signed_in.get(reverse("job-detail", args=[job.pk])).content.decode()
    assert "<code>studiolo/custom:1</code>" in html
    assert "<code>epochs</code></th><td><code>3</code>" in html
    assert "&lt;0.1&gt;" in html
    assert "<code>train</code>" in html
    assert "teams/alpha/data/page" in html
    assert 'max runtime 10m 00s <span class="muted">(600 s)</span>' in html
    assert "1 CPU · 1024 MB" in html
    timeline = re.findall(r'<li class="timeline-item" data-status="(\w+)"', html)
    assert timeline == ["Pending", "InProgress"]
    assert "Job submitted" in html
    assert "Training started" in html
    assert '<span class="timeline-actor">ada</span>' in html
    assert '<span class="timeline-actor">system</span>' in html
    assert 'data-status="InProgress">In progress<' in html


def test_job_page_renders_log_lines_by_stream_escaped(
    signed_in: Client, team: Team, member: User
) -> None:
    job = make_job(team, member, "chatty")
    add_log(
        job,
        [
            ("system", "Downloading input data"),
            ("stdout", "epoch 1 <b>loss</b>=0.5"),
            ("stderr", "Traceback (most recent call last):"),
        ],
    )
    html = signed_in.get(reverse("job-detail", args=[job.pk])).content.decode()
    assert '<div class="log-line log-system" data-seq="1">' in html
    assert (
        '<div class="log-line log-stdout" data-seq="2"><span class="log-seq">2</span>'
        '<span class="log-text">epoch 1 &lt;b&gt;loss&lt;/b&gt;=0.5</span></div>'
    ) in html
    assert '<div class="log-line log-stderr" data-seq="3">' in html
    assert f'href="/api/v1/jobs/{job.pk}/logs/download"' in html
    assert "<b>loss</b>" not in html
    config = json.loads(re.search(r'id="job-live-config"[^>]*>(.*?)</script>', html).group(1))
    assert config["socket"] == f"/ws/jobs/{job.pk}/logs"
    assert config["connect"] is True
    assert config["last_seq"] == 3
    assert config["total"] == 3


def two_instance_job(team: Team, member: User, name: str) -> Job:
    """A job of two instances as its rows are (the process runtime these tests use runs one
    instance, so the count is set on the row), with lines of both hosts and the platform."""
    job = make_job(team, member, name)
    Job.objects.filter(pk=job.pk).update(instance_count=2)
    now = timezone.now()
    lines = [
        ("", "system", "Starting 2 instances"),
        ("algo-1", "stdout", "rank 0 <ready>"),
        ("algo-2", "stdout", "rank 1 ready"),
        ("algo-2", "stderr", "algo-2 warns"),
    ]
    JobLogLine.objects.bulk_create(
        JobLogLine(job=job, seq=seq, stream=stream, host=host, at=now, line=text)
        for seq, (host, stream, text) in enumerate(lines, start=1)
    )
    Job.objects.filter(pk=job.pk).update(log_line_count=len(lines))
    return Job.objects.get(pk=job.pk)


def test_two_instance_job_page_labels_each_line_with_its_host_and_offers_a_host_filter(
    signed_in: Client, team: Team, member: User
) -> None:
    job = two_instance_job(team, member, "pair")
    html = signed_in.get(reverse("job-detail", args=[job.pk])).content.decode()
    assert "2 × <code>ml.local.small</code>" in html
    assert (
        '<div class="log-line log-stdout" data-seq="2" data-host="algo-1">'
        '<span class="log-seq">2</span><span class="log-text">'
        '<span class="log-host log-host-1">algo-1</span>rank 0 &lt;ready&gt;</span></div>'
    ) in html
    assert '<span class="log-host log-host-2">algo-2</span>algo-2 warns' in html
    # The platform's line has no host and no label.
    assert (
        '<div class="log-line log-system" data-seq="1" data-host="">'
        '<span class="log-seq">1</span><span class="log-text">Starting 2 instances</span>'
    ) in html
    filter_html = re.search(r"<select data-log-host-filter[^>]*>(.*?)</select>", html).group(1)
    assert re.findall(r'<option value="([^"]*)">([^<]*)</option>', filter_html) == [
        ("", "All hosts"),
        ("algo-1", "algo-1"),
        ("algo-2", "algo-2"),
    ]
    config = json.loads(re.search(r'id="job-live-config"[^>]*>(.*?)</script>', html).group(1))
    assert config["show_hosts"] is True


def test_one_instance_job_page_has_no_host_labels_or_filter(
    signed_in: Client, team: Team, member: User
) -> None:
    job = make_job(team, member, "single")
    add_log(job, [("stdout", "alone")])
    JobLogLine.objects.filter(job=job).update(host="algo-1")
    html = signed_in.get(reverse("job-detail", args=[job.pk])).content.decode()
    assert "1 × <code>ml.local.small</code>" in html
    assert "log-host" not in html
    assert "data-log-host-filter" not in html
    assert '<span class="log-text">alone</span>' in html


def test_job_page_keeps_only_the_newest_lines_of_a_long_log(
    signed_in: Client, team: Team, member: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("frontend.jobs.views.LOG_TAIL", 10)
    job = make_job(team, member, "long")
    add_log(job, [("stdout", f"line {n}") for n in range(1, 26)])
    response = signed_in.get(reverse("job-detail", args=[job.pk]))
    html = response.content.decode()
    assert [line.seq for line in response.context["log_lines"]] == list(range(16, 26))
    assert 'data-seq="15"' not in html
    assert (
        "Showing the last <span data-log-shown>10</span> of <span data-log-total>25</span>" in html
    )
    assert "Download for all" in html


def test_failed_job_page_shows_the_failure_reason_and_does_not_connect(
    signed_in: Client, team: Team, member: User
) -> None:
    job = make_job(team, member, "crashes")
    run(job)
    job_fail(job_id=job.pk, reason="AlgorithmError: exit code 1\nValueError: <bad> input")
    html = signed_in.get(reverse("job-detail", args=[job.pk])).content.decode()
    box = re.search(r'<section class="panel callout-failure" data-failure (hidden)?', html)
    assert box is not None
    assert box.group(1) is None
    assert "ValueError: &lt;bad&gt; input" in html
    assert 'data-status="Failed">Failed<' in html
    config = json.loads(re.search(r'id="job-live-config"[^>]*>(.*?)</script>', html).group(1))
    assert config["connect"] is False


def test_a_job_that_did_not_fail_hides_the_failure_box(
    signed_in: Client, team: Team, member: User
) -> None:
    job = make_job(team, member, "fine")
    html = signed_in.get(reverse("job-detail", args=[job.pk])).content.decode()
    assert '<section class="panel callout-failure" data-failure hidden' in html


def test_job_page_charts_each_metric_from_its_history(
    signed_in: Client, team: Team, member: User
) -> None:
    job = make_job(
        team,
        member,
        "learning",
        metric_definitions=[
            MetricDefinition("loss", r"loss=([0-9.]+)"),
            MetricDefinition("accuracy", r"acc=([0-9.]+)"),
        ],
    )
    now = timezone.now()
    metrics_log_batch(
        run_id=job.run_id, points=[Point("loss", v, s, now) for s, v in enumerate([0.9, 0.5, 0.2])]
    )
    response = signed_in.get(reverse("job-detail", args=[job.pk]))
    charts = {chart["name"]: chart["figure"] for chart in response.context["charts"]}
    assert list(charts) == ["loss", "accuracy"]
    assert charts["loss"]["data"][0]["x"] == [0, 1, 2]
    assert charts["loss"]["data"][0]["y"] == [0.9, 0.5, 0.2]
    assert charts["accuracy"]["data"][0]["y"] == []
    html = response.content.decode()
    assert 'data-metric="loss" data-figure-id="figure-1"' in html
    figure = json.loads(re.search(r'id="figure-1"[^>]*>(.*?)</script>', html).group(1))
    assert figure["data"][0]["y"] == [0.9, 0.5, 0.2]
    assert "vendor/plotly-basic.min.js" in html  # lines only: the small bundle


def test_completed_job_page_links_its_archives_through_signed_downloads(
    signed_in: Client, team: Team, member: User
) -> None:
    store = get_store()
    job = make_job(team, member, "trained")
    model_key = f"teams/alpha/jobs/{job.name}/output/model.tar.gz"
    store.put(model_key, b"model-bytes")
    complete(job, model_artifact_uri=store.uri(model_key))
    response = signed_in.get(reverse("job-detail", args=[job.pk]))
    downloads = response.context["downloads"]
    assert [item["name"] for item in downloads] == ["model.tar.gz"]
    assert downloads[0]["href"].startswith("/artifacts/download?")
    assert b'data-artifact="model.tar.gz"' in response.content
    download = signed_in.get(downloads[0]["href"])
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == b"model-bytes"


def test_archives_of_another_store_are_listed_without_links(
    signed_in: Client, team: Team, member: User
) -> None:
    job = complete(
        make_job(team, member, "moved"), model_artifact_uri="gopher://old/teams/alpha/m.tar.gz"
    )
    response = signed_in.get(reverse("job-detail", args=[job.pk]))
    assert response.status_code == 200
    assert response.context["downloads"] == []


def test_active_job_page_says_archives_come_later(
    signed_in: Client, team: Team, member: User
) -> None:
    job = make_job(team, member, "waiting")
    response = signed_in.get(reverse("job-detail", args=[job.pk]))
    assert response.context["downloads"] == []
    assert b"appear here when the job ends" in response.content


# --- stopping ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "shown"),
    [("viewer", False), ("scientist", True), ("approver", True), ("admin", True)],
)
def test_stop_button_is_shown_to_roles_that_may_stop(
    client: Client, team: Team, member: User, role: str, shown: bool
) -> None:
    job = make_job(team, member, "stoppable")
    client.force_login(make_user(team, role=role))
    html = client.get(reverse("job-detail", args=[job.pk])).content.decode()
    assert (f'action="{reverse("job-stop", args=[job.pk])}"' in html) is shown


@pytest.mark.parametrize("state", ["stopping", "completed", "failed"])
def test_stop_button_is_hidden_once_the_job_is_not_stoppable(
    signed_in: Client, team: Team, member: User, state: str
) -> None:
    job = make_job(team, member, f"past-{state}")
    if state == "stopping":
        job_stop(job=run(job), actor=member)
    elif state == "completed":
        complete(job)
    else:
        job_fail(job_id=job.pk, reason="boom")
    html = signed_in.get(reverse("job-detail", args=[job.pk])).content.decode()
    assert "data-stop-form" not in html


def test_stop_button_stops_the_job(signed_in: Client, team: Team, member: User) -> None:
    job = run(make_job(team, member, "to-stop"))
    response = signed_in.post(reverse("job-stop", args=[job.pk]), follow=True)
    assert response.redirect_chain[-1][0] == reverse("job-detail", args=[job.pk])
    job.refresh_from_db()
    assert job.status == JobStatus.STOPPING
    assert job.transitions.last().actor_name == "ada"
    assert "Stop requested for “to-stop”" in response.content.decode()


def test_stop_is_post_only(signed_in: Client, team: Team, member: User) -> None:
    job = make_job(team, member, "get-stop")
    assert signed_in.get(reverse("job-stop", args=[job.pk])).status_code == 405


def test_viewer_cannot_stop_a_job(client: Client, team: Team, member: User) -> None:
    job = make_job(team, member, "protected")
    client.force_login(make_user(team, role="viewer", username="vera"))
    response = client.post(reverse("job-stop", args=[job.pk]), follow=True)
    assert b"does not allow job.stop" in response.content
    assert b"message-error" in response.content
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING


def test_stopping_a_finished_job_is_an_error_message(
    signed_in: Client, team: Team, member: User
) -> None:
    job = complete(make_job(team, member, "over"))
    response = signed_in.post(reverse("job-stop", args=[job.pk]), follow=True)
    assert "only active jobs can be stopped" in response.content.decode()
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED


# --- a new job ---------------------------------------------------------------------------


def form_data(**overrides: Any) -> dict[str, Any]:
    data = {
        "name": "new-job",
        "framework": "sklearn",
        "image": "",
        "entry_point": "",
        "source_uri": "",
        "hyperparameters": "epochs=3\n# a comment\n\nlearning_rate = 0.01\n",
        "channels": "",
        "instance_type": "ml.local.medium",
        "max_runtime_seconds": "3600",
        "metric_definitions": "loss=loss=([0-9.]+)\n",
    }
    data.update(overrides)
    return data


def script(name: str = "train.py", text: str = "print('loss=0.1')\n") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(), content_type="text/x-python")


def uploads_of(name: str) -> list[str]:
    return [info.key for info in get_store().list(f"teams/alpha/uploads/{name}/")]


def test_new_job_form_offers_frameworks_and_instance_types(signed_in: Client) -> None:
    html = signed_in.get(reverse("job-new")).content.decode()
    assert '<option value="sklearn" selected>sklearn · studiolo/sklearn:latest</option>' in html
    assert '<option value="">Custom image…</option>' in html
    assert '<option value="ml.local.large">ml.local.large · 2 CPU, 4096 MB</option>' in html
    assert re.search(r'<input type="number" name="instance_count" value="1" min="1"', html)
    assert 'name="sharded_channels"' in html
    assert 'enctype="multipart/form-data"' in html
    assert 'name="csrfmiddlewaretoken"' in html


def test_new_job_with_an_uploaded_script_is_created_and_opens_its_page(
    signed_in: Client, team: Team
) -> None:
    store = get_store()
    store.put("teams/alpha/data/new/train.csv", b"1,2\n")
    data = form_data(
        name="from-script",
        source_file=script(),
        channels=f"train={store.uri('teams/alpha/data/new')}\n",
    )
    response = signed_in.post(reverse("job-new"), data)
    job = Job.objects.get(team=team, name="from-script")
    assert response.status_code == 302
    assert response["Location"] == reverse("job-detail", args=[job.pk])
    assert job.framework == "sklearn"
    assert job.entry_point == "train.py"
    (uploaded,) = uploads_of("from-script")
    assert uploaded.endswith("/train.py")
    assert job.source_uri == store.uri(uploaded.rsplit("/", 1)[0])
    assert store.get(uploaded) == b"print('loss=0.1')\n"
    assert job.hyperparameters == {"epochs": "3", "learning_rate": "0.01"}
    assert [c["name"] for c in job.input_channels] == ["train"]
    assert job.metric_definitions == [{"name": "loss", "regex": "loss=([0-9.]+)"}]
    assert job.instance_type == "ml.local.medium"
    assert job.max_runtime_seconds == 3600
    page = signed_in.get(response["Location"])
    assert "Job “from-script” submitted." in page.content.decode()


def test_new_job_with_an_uploaded_archive(signed_in: Client, team: Team) -> None:
    archive = SimpleUploadedFile(
        "sourcedir.tar.gz", source_archive({"main.py": "print(1)\n", "lib.py": ""})
    )
    response = signed_in.post(
        reverse("job-new"),
        form_data(name="from-archive", entry_point="main.py", source_file=archive),
    )
    assert response.status_code == 302, response.content
    job = Job.objects.get(name="from-archive")
    assert job.source_uri.endswith(".tar.gz")
    assert "teams/alpha/uploads/from-archive/" in job.source_uri
    assert job.entry_point == "main.py"


def test_new_job_with_an_existing_source_and_a_custom_image(signed_in: Client) -> None:
    store = get_store()
    store.put("teams/alpha/code/existing/train.py", b"print(1)\n")
    response = signed_in.post(
        reverse("job-new"),
        form_data(
            name="from-uri",
            framework="",
            image="registry.local/trainer:2",
            entry_point="train.py",
            source_uri=store.uri("teams/alpha/code/existing"),
        ),
    )
    assert response.status_code == 302, response.content
    job = Job.objects.get(name="from-uri")
    assert job.image == "registry.local/trainer:2"
    assert job.framework == ""
    assert job.source_uri == store.uri("teams/alpha/code/existing")


def test_the_custom_image_box_is_ignored_while_a_framework_is_chosen(signed_in: Client) -> None:
    response = signed_in.post(
        reverse("job-new"),
        form_data(name="framework-wins", image="left/over:1", source_file=script()),
    )
    assert response.status_code == 302, response.content
    assert Job.objects.get(name="framework-wins").image == "studiolo/sklearn:latest"


# Each kind of refusal: (form data, the field it is shown on, part of the message).
FIELD_ERRORS: dict[str, tuple[dict[str, Any], str, str]] = {
    "bad name": ({"name": "no spaces allowed"}, "name", "1-63 letters, digits and hyphens"),
    "unknown framework": ({"framework": "tensorflow"}, "framework", "unknown 'tensorflow'"),
    "no image": ({"framework": "", "image": ""}, "image", "give either an image or a framework"),
    "no entry point": ({"source_file": None}, "entry_point", "script mode needs an entry point"),
    "missing source": (
        {
            "source_file": None,
            "entry_point": "train.py",
            "source_uri": "STORE:teams/alpha/code/absent",
        },
        "source_uri",
        "code/absent does not exist",
    ),
    "wrong upload type": (
        {"source_file": "notes.txt"},
        "source_file",
        "Upload a .py script or a .tar.gz",
    ),
    "entry point not in archive": (
        {"source_file": "archive", "entry_point": "missing.py"},
        "entry_point",
        "'missing.py' is not in the source archive",
    ),
    "upload and uri": (
        {"source_uri": "s3://bucket/teams/alpha/x"},
        "source_uri",
        "not both",
    ),
    "malformed hyperparameters": (
        {"hyperparameters": "epochs 3"},
        "hyperparameters",
        "line 1: expected key=value",
    ),
    "hyperparameter twice": (
        {"hyperparameters": "a=1\na=2"},
        "hyperparameters",
        "a is given twice",
    ),
    "missing channel data": (
        {"channels": "train=STORE:teams/alpha/data/absent"},
        "channels",
        "train: ",
    ),
    "channel of another team": (
        {"channels": "train=STORE:teams/beta/data"},
        "channels",
        "does not exist",
    ),
    "bad channel name": (
        {"channels": "bad name=STORE:teams/alpha/data"},
        "channels",
        "bad name: names are unique",
    ),
    "unknown instance type": (
        {"instance_type": "ml.p5.huge"},
        "instance_type",
        "unknown 'ml.p5.huge'",
    ),
    "too many instances": (
        {"instance_count": "5"},
        "instance_count",
        "between 1 and 4 for instance type ml.local.medium",
    ),
    "no instance": ({"instance_count": "0"}, "instance_count", "between 1 and 4"),
    "several instances on the process runtime": (
        {"instance_count": "2"},
        "instance_count",
        "the process runtime runs one instance per job",
    ),
    "instance count not a number": (
        {"instance_count": "two"},
        "instance_count",
        "Enter a whole number",
    ),
    "sharded channel that is not a channel": (
        {"channels": "train=STORE:teams/alpha/data", "sharded_channels": "train, validation"},
        "sharded_channels",
        "not an input channel: validation",
    ),
    "runtime out of range": (
        {"max_runtime_seconds": "0"},
        "max_runtime_seconds",
        "between 1 and",
    ),
    "runtime not a number": (
        {"max_runtime_seconds": "a day"},
        "max_runtime_seconds",
        "Enter a whole number",
    ),
    "metric without a group": (
        {"metric_definitions": "loss=loss=[0-9.]+"},
        "metric_definitions",
        "needs a capture group",
    ),
    "metric regex invalid": (
        {"metric_definitions": "loss=loss=([0-9.]+"},
        "metric_definitions",
        "invalid regex",
    ),
    "metric twice": (
        {"metric_definitions": "loss=a=(1)\nloss=b=(2)"},
        "metric_definitions",
        "loss: names are unique",
    ),
}


@pytest.mark.parametrize("case", list(FIELD_ERRORS))
def test_each_refusal_is_shown_on_its_field_and_creates_nothing(
    signed_in: Client, team: Team, case: str
) -> None:
    store = get_store()
    store.put("teams/alpha/data/present.csv", b"1\n")
    overrides, field, message = FIELD_ERRORS[case]
    name = f"refused-{list(FIELD_ERRORS).index(case)}"
    data = form_data(name=overrides.get("name", name), source_file=script())
    for key, value in overrides.items():
        if key == "source_file" and value == "notes.txt":
            value = SimpleUploadedFile("notes.txt", b"hello")
        elif key == "source_file" and value == "archive":
            value = SimpleUploadedFile("src.tar.gz", source_archive({"main.py": ""}))
        elif isinstance(value, str) and "STORE:" in value:  # a URI in the store's scheme
            channel, _, key_part = value.partition("STORE:")
            value = channel + store.uri(key_part)
        data[key] = value
    data = {key: value for key, value in data.items() if value is not None}

    response = signed_in.post(reverse("job-new"), data)

    assert response.status_code in (400, 404), response.status_code
    errors = response.context["form"].errors
    assert field in errors, errors
    assert message in " ".join(errors[field])
    html = response.content.decode()
    assert re.search(rf'<div class="field has-error">\s*<label for="id_{field}">', html)
    assert not Job.objects.exists()
    assert uploads_of(name) == []


def test_new_job_of_two_instances_with_a_sharded_channel(
    signed_in: Client, team: Team, settings: Any
) -> None:
    settings.RUNTIME = "docker"  # the runtime that runs several instances (the real engine)
    store = get_store()
    store.put("teams/alpha/data/shards/part-1.csv", b"1\n")
    store.put("teams/alpha/data/config/c.json", b"{}")
    data = form_data(
        name="pair-of-instances",
        source_file=script(),
        instance_count="2",
        channels=f"train={store.uri('teams/alpha/data/shards')}\n"
        f"config={store.uri('teams/alpha/data/config')}\n",
        sharded_channels="train",
    )
    response = signed_in.post(reverse("job-new"), data)
    assert response.status_code == 302, response.context["form"].errors
    job = Job.objects.get(team=team, name="pair-of-instances")
    assert job.instance_count == 2
    assert {c["name"]: c["distribution"] for c in job.input_channels} == {
        "train": "ShardedByS3Key",
        "config": "FullyReplicated",
    }


def test_a_taken_name_is_refused_without_touching_the_existing_jobs_source(
    signed_in: Client, team: Team, member: User
) -> None:
    first = signed_in.post(reverse("job-new"), form_data(name="taken", source_file=script()))
    assert first.status_code == 302
    (original,) = uploads_of("taken")
    again = signed_in.post(
        reverse("job-new"),
        form_data(name="taken", source_file=script(text="print('replaced')\n")),
    )
    assert again.status_code == 400
    assert "a job named 'taken' exists already" in " ".join(again.context["form"].errors["name"])
    assert uploads_of("taken") == [original]
    assert get_store().get(original) == b"print('loss=0.1')\n"
    assert Job.objects.count() == 1


def test_viewer_gets_no_form_and_cannot_submit(client: Client, team: Team) -> None:
    client.force_login(make_user(team, role="viewer", username="vera"))
    assert b"Your role cannot submit jobs" in client.get(reverse("job-new")).content
    response = client.post(reverse("job-new"), form_data(name="sneaky", source_file=script()))
    assert response.status_code == 403
    assert not Job.objects.exists()
    assert uploads_of("sneaky") == []
    assert b"New job" not in client.get(reverse("jobs")).content


# --- the dashboard card --------------------------------------------------------------------


def test_dashboard_counts_the_teams_active_jobs(
    signed_in: Client, team: Team, member: User
) -> None:
    pending = make_job(team, member, "pending")
    running = run(make_job(team, member, "running"))
    complete(make_job(team, member, "done"))
    theirs = make_team("beta")
    make_job(theirs, make_user(theirs, role="admin"), "not-ours")
    response = signed_in.get(reverse("dashboard"))
    card = next(card for card in response.context["cards"] if card.key == "jobs-active")
    assert card.value == 2
    assert card.href == "/jobs/?status=active"
    assert card.tracks == "job.status"
    assert sorted(card.tracked_ids) == sorted([pending.pk, running.pk])
    assert b'id="card-jobs-active"' in response.content


# --- checkpoints -------------------------------------------------------------------------


def checkpoint_cell(html: str) -> str:
    found = re.search(r"<dd data-checkpoint>(.*?)</dd>", html, re.DOTALL)
    assert found is not None
    return found.group(1)


def test_job_page_shows_the_checkpoint_uri_and_the_last_sync(
    signed_in: Client, team: Team, member: User
) -> None:
    uri = get_store().uri("teams/alpha/checkpoints/resnet")
    job = make_job(team, member, "resumable", checkpoint_config={"s3_uri": uri})
    run(job)
    page = reverse("job-detail", args=[job.pk])
    cell = checkpoint_cell(signed_in.get(page).content.decode())
    assert f'<code class="uri">{uri}</code>' in cell
    assert "<code>/opt/ml/checkpoints</code>" in cell
    assert "not synced yet" in cell

    add_log(
        job,
        [
            ("system", f"{LOG_PREFIX}algo-1 synced 1 file(s) (0.1 MB) to {uri}"),
            ("stdout", "epoch 3"),
            ("system", f"{LOG_PREFIX}algo-1 synced 2 file(s) (0.2 MB) to {uri}"),
            ("stdout", f"{LOG_PREFIX}printed by the script, not the platform"),
        ],
    )
    cell = checkpoint_cell(signed_in.get(page).content.decode())
    assert f"{LOG_PREFIX}algo-1 synced 2 file(s) (0.2 MB) to {uri}" in cell
    assert "1 file(s)" not in cell
    assert "printed by the script" not in cell
    assert "not synced yet" not in cell


def test_job_page_says_a_job_has_no_checkpoints(
    signed_in: Client, team: Team, member: User
) -> None:
    job = make_job(team, member, "plain")
    html = signed_in.get(reverse("job-detail", args=[job.pk])).content.decode()
    assert '<dd data-checkpoint><span class="muted">none</span></dd>' in html
