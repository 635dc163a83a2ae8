"""The job page shows a job's checkpoint URI and the last thing done with its checkpoints."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from jobs.services.checkpoints import LOG_PREFIX
from studio.accounts.models import Team
from studio.artifacts import get_store
from tests.frontend.test_jobs_pages import (  # noqa: F401 - fixtures
    _nothing_runs,
    add_log,
    make_job,
    member,
    run,
    signed_in,
    team,
)

pytestmark = pytest.mark.django_db


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
