"""The jobs pages in a real browser: a job page follows its log, metrics and status live,
and the list follows the team's `job.status` events, both without a reload.

Same set-up as test_browser.py: Debian's Chromium through Playwright against uvicorn
serving studio.asgi (`asgi_server`), so HTTP, the session cookie and both websockets
(`/ws/jobs/<id>/logs`, `/ws/events`) are the real ones. Log lines are produced by the real
`jobs.logs.LogWriter` and statuses by the real lifecycle service.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from jobs.logs import LogWriter
from jobs.models import Job, JobStatus, SecondaryStatus
from jobs.services.lifecycle import job_fail, job_transition
from jobs.services.submission import JobRequest, MetricDefinition, job_create
from studio.accounts.models import Team
from tests.factories import make_team, make_user
from tests.frontend.browser_support import ARTIFACTS, in_server_thread
from tests.frontend.test_browser import PASSWORD

pytestmark = pytest.mark.browser


@pytest.fixture
def lab_job(
    transactional_db: None, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> tuple[Team, User, Job]:
    """A team, its admin and one pending job with a metric. Made before the browser starts
    (see `in_server_thread`); nothing runs the job: the test plays the worker."""
    monkeypatch.setattr("jobs.tasks.run_job.apply_async", lambda *a, **k: None)
    settings.RUNTIME = "process"
    team = make_team("lab")
    user = make_user(team, role="admin", username="ada")
    job = job_create(
        team=team,
        actor=user,
        request=JobRequest(
            name="iris-baseline",
            instance_type="ml.local.small",
            framework="sklearn",
            entry_point="train.py",
            hyperparameters={"n_estimators": "200", "max_depth": "6"},
            metric_definitions=[
                MetricDefinition("loss", r"loss=([0-9.]+)"),
                MetricDefinition("accuracy", r"accuracy=([0-9.]+)"),
            ],
        ),
    )
    return team, user, job


def sign_in(page: Any, base: str) -> None:
    page.goto(f"{base}/login/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def open_log_writer(job_id: int) -> LogWriter:
    """The runner's log writer for the job. Made in a thread of its own (it reads the job);
    feeding it touches no database, and its flusher thread writes the rows and publishes
    them to the job's channel group every 50 ms."""
    made: list[LogWriter] = []
    in_server_thread(lambda: made.append(LogWriter(Job.objects.get(pk=job_id))))
    return made[0]


def transition(job_id: int, status: str, secondary: str, message: str) -> None:
    in_server_thread(
        lambda: (
            job_transition(
                job_id=job_id, status=status, secondary_status=secondary, message=message
            )
            and None
        )
    )


def test_job_page_follows_log_metrics_and_status_live(
    asgi_server: str, lab_job: tuple[Team, User, Job], page: Any
) -> None:
    from playwright.sync_api import expect

    _, _, job = lab_job
    sign_in(page, asgi_server)
    page.goto(f"{asgi_server}/jobs/{job.pk}/")

    expect(page.locator(".nav-link.active", has_text="Jobs")).to_be_visible()
    expect(page.locator("[data-log-state]")).to_have_attribute("data-log-state", "live")
    expect(page.locator("[data-log-empty]")).to_be_visible()
    expect(page.locator(".timeline-item")).to_have_count(1)
    expect(page.locator("[data-stop-form] button")).to_be_visible()
    page.evaluate("window.__studioloSamePage = true")  # a reload would wipe this out

    # The worker picks the job up...
    transition(job.pk, JobStatus.IN_PROGRESS, SecondaryStatus.DOWNLOADING, "Preparing the job")
    transition(job.pk, JobStatus.IN_PROGRESS, SecondaryStatus.TRAINING, "Training started")
    expect(page.locator(".timeline-item")).to_have_count(3)
    expect(page.locator(".timeline-item").last).to_contain_text("Training started")
    expect(page.locator(".page-header [data-status-badge]")).to_have_text("In progress")
    expect(page.locator("[data-job-secondary]")).to_have_text("Training")

    # ...and the script prints.
    writer = open_log_writer(job.pk)
    writer.system("Downloading input data (0 channels)")
    writer.feed("stdout", b"epoch 1 loss=0.92 accuracy=0.61\n")
    writer.feed("stderr", b"UserWarning: <b>not</b> markup\n")
    writer.feed("stdout", b"epoch 2 loss=0.48 accuracy=0.83\nepoch 3 loss=0.31 accu")
    writer.feed("stdout", b"racy=0.90\n")
    lines = page.locator("[data-log] .log-line")
    expect(lines).to_have_count(5)
    expect(page.locator("[data-log-count]")).to_have_text("5")
    expect(lines.nth(0)).to_have_class("log-line log-system")
    expect(lines.nth(2)).to_have_class("log-line log-stderr")
    expect(lines.nth(2).locator(".log-text")).to_have_text("UserWarning: <b>not</b> markup")
    expect(lines.last.locator(".log-seq")).to_have_text("5")
    expect(lines.last.locator(".log-text")).to_have_text("epoch 3 loss=0.31 accuracy=0.90")
    expect(page.locator("[data-log-empty]")).to_be_hidden()
    page.wait_for_function(
        "() => document.querySelector('[data-metric=\"loss\"]').data[0].x.length === 3"
    )
    assert page.evaluate(
        "() => document.querySelector('[data-metric=\"accuracy\"]').data[0].y"
    ) == [0.61, 0.83, 0.90]

    # More output for the picture.
    for n in range(4, 13):
        loss, accuracy = 0.31 * 0.8 ** (n - 3), 1 - 0.1 * 0.7 ** (n - 3)
        writer.feed("stdout", f"epoch {n} loss={loss:.3f} accuracy={accuracy:.3f}\n".encode())
    writer.close()
    expect(lines).to_have_count(14)
    page.wait_for_timeout(2600)  # let the highlight of the new timeline rows fade
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "job.png"), full_page=True)

    # A failure ends the stream, shows the reason and takes the Stop button away.
    in_server_thread(
        lambda: job_fail(job_id=job.pk, reason="AlgorithmError: exit code 1\nMemoryError") and None
    )
    expect(page.locator("[data-failure]")).to_be_visible()
    expect(page.locator("[data-failure-reason]")).to_have_text(
        "AlgorithmError: exit code 1\nMemoryError"
    )
    expect(page.locator("[data-log-state]")).to_have_attribute("data-log-state", "ended")
    expect(page.locator(".page-header [data-status-badge]")).to_have_text("Failed")
    expect(page.locator("[data-stop-form]")).to_have_count(0)
    expect(page.locator(".timeline-item")).to_have_count(4)
    assert page.evaluate("window.__studioloSamePage") is True
    page.wait_for_timeout(2600)
    page.screenshot(path=str(ARTIFACTS / "job-failed.png"), full_page=True)


def test_job_list_follows_status_events_and_announces_new_jobs(
    asgi_server: str, lab_job: tuple[Team, User, Job], page: Any
) -> None:
    from playwright.sync_api import expect

    team, user, job = lab_job
    sign_in(page, asgi_server)
    page.goto(f"{asgi_server}/jobs/")
    expect(page.locator("[data-live-dot]")).to_have_attribute("data-state", "connected")
    row = page.locator(f'tr[data-job-id="{job.pk}"]')
    expect(row.locator("[data-status-badge]")).to_have_text("Pending")
    page.evaluate("window.__studioloSamePage = true")

    transition(job.pk, JobStatus.IN_PROGRESS, SecondaryStatus.TRAINING, "Training started")
    expect(row.locator("[data-status-badge]")).to_have_text("In progress")
    expect(row.locator("[data-status-badge]")).to_have_class("status status-blue changed")
    expect(row.locator("[data-secondary]")).to_have_text("Training")

    in_server_thread(
        lambda: (
            job_create(
                team=team,
                actor=user,
                request=JobRequest(
                    name="second-run", instance_type="ml.local.small", image="studiolo/x:1"
                ),
            )
            and None
        )
    )
    expect(page.locator("[data-new-jobs]")).to_be_visible()
    expect(page.locator("[data-new-jobs-text]")).to_have_text("1 new job.")
    assert page.evaluate("window.__studioloSamePage") is True
    page.wait_for_timeout(1800)
    page.screenshot(path=str(ARTIFACTS / "jobs.png"), full_page=True)


def test_a_long_log_keeps_the_page_bounded_and_respects_a_reader_scrolled_up(
    asgi_server: str, lab_job: tuple[Team, User, Job], page: Any
) -> None:
    from playwright.sync_api import expect

    from frontend.jobs.views import LOG_TAIL

    _, _, job = lab_job
    sign_in(page, asgi_server)
    page.goto(f"{asgi_server}/jobs/{job.pk}/")
    expect(page.locator("[data-log-state]")).to_have_attribute("data-log-state", "live")

    writer = open_log_writer(job.pk)
    writer.feed("stdout", "".join(f"warm-up line {n}\n" for n in range(1, 201)).encode())
    lines = page.locator("[data-log] .log-line")
    expect(lines).to_have_count(200)
    # The reader scrolls up to read: new lines must not yank the view back down.
    page.locator("[data-log]").evaluate("log => { log.scrollTop = 0; }")
    expect(page.locator("[data-log-follow]")).to_be_visible()

    total = 100_000
    chunk = 5_000
    for start in range(201, total + 1, chunk):
        end = min(total, start + chunk - 1)
        writer.feed(
            "stdout", "".join(f"line {n} of the run\n" for n in range(start, end + 1)).encode()
        )
    writer.close()

    expect(page.locator("[data-log-count]")).to_have_text(str(total), timeout=60_000)
    expect(lines).to_have_count(LOG_TAIL)
    expect(lines.last.locator(".log-text")).to_have_text(f"line {total} of the run")
    expect(lines.first.locator(".log-seq")).to_have_text(str(total - LOG_TAIL + 1))
    expect(page.locator("[data-log-truncated]")).to_be_visible()
    expect(page.locator("[data-log-truncated]")).to_contain_text(
        f"Showing the last {LOG_TAIL} of {total} lines"
    )
    assert page.locator("[data-log]").evaluate(
        "log => log.scrollTop + log.clientHeight < log.scrollHeight - 50"
    )

    page.click("[data-log-follow]")
    expect(page.locator("[data-log-follow]")).to_be_hidden()
    assert page.locator("[data-log]").evaluate(
        "log => log.scrollTop + log.clientHeight >= log.scrollHeight - 8"
    )


def test_a_two_instance_jobs_log_labels_hosts_and_filters_them_also_for_live_lines(
    asgi_server: str, lab_job: tuple[Team, User, Job], page: Any
) -> None:
    from playwright.sync_api import expect

    _, _, job = lab_job
    # Two instances, as the job's row says (the process runtime of these tests runs one).
    in_server_thread(lambda: Job.objects.filter(pk=job.pk).update(instance_count=2) and None)
    writer = open_log_writer(job.pk)
    writer.system("Starting 2 instances")
    writer.feed("stdout", b"algo-1 line before\n", host="algo-1")
    writer.feed("stdout", b"algo-2 line before\n", host="algo-2")
    writer.close()

    sign_in(page, asgi_server)
    page.goto(f"{asgi_server}/jobs/{job.pk}/")
    expect(page.locator("[data-log-state]")).to_have_attribute("data-log-state", "live")
    expect(page.locator("[data-instances]")).to_contain_text("2 × ml.local.small")
    lines = page.locator("[data-log] .log-line")
    visible = page.locator("[data-log] .log-line:visible")
    expect(lines).to_have_count(3)
    expect(lines.nth(1).locator(".log-host")).to_have_text("algo-1")
    expect(lines.nth(2).locator(".log-host")).to_have_text("algo-2")
    expect(lines.nth(0).locator(".log-host")).to_have_count(0)  # the platform's own line

    # Lines already on the page: algo-2's and the platform's stay.
    page.select_option("[data-log-host-filter]", "algo-2")
    expect(visible).to_have_count(2)
    expect(visible.nth(0)).to_contain_text("Starting 2 instances")
    expect(visible.nth(1)).to_contain_text("algo-2 line before")

    # Lines arriving live over the socket are filtered as they come.
    writer = open_log_writer(job.pk)
    writer.feed("stdout", b"algo-1 live\n", host="algo-1")
    writer.feed("stderr", b"algo-2 live\n", host="algo-2")
    writer.system("Uploading the model")
    writer.close()
    expect(lines).to_have_count(6)
    expect(visible).to_have_count(4)
    expect(page.locator("[data-log] .log-line", has_text="algo-1 live")).to_be_hidden()
    live = page.locator("[data-log] .log-line", has_text="algo-2 live")
    expect(live).to_be_visible()
    expect(live.locator(".log-host")).to_have_class("log-host log-host-2")
    expect(page.locator("[data-log-count]")).to_have_text("6")

    page.select_option("[data-log-host-filter]", "algo-1")
    expect(visible).to_have_count(4)
    expect(page.locator("[data-log] .log-line", has_text="algo-1 live")).to_be_visible()
    page.select_option("[data-log-host-filter]", "")
    expect(visible).to_have_count(6)

    # A phone's width: nothing of the job's page sticks out sideways (the charts resize once
    # Plotly hears of the new width), and the filter still works.
    page.set_viewport_size({"width": 390, "height": 844})
    page.select_option("[data-log-host-filter]", "algo-2")
    expect(visible).to_have_count(4)
    page.wait_for_function(
        """() => Array.from(document.querySelectorAll('[data-job-page] *'))
            .every(node => node.getBoundingClientRect().right <= 390)"""
    )
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "job-hosts-390.png"), full_page=True)
