"""One statement of the job and channel name rules (`jobs.names`): `studiolo train` refuses
before uploading exactly what the server would refuse, and takes the rule without Django."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from jobs.services.submission import ChannelRequest, JobRequest, check_job_name, job_create
from studio.cli.common import CliError
from studio.cli.job_transfer import check_job_name as cli_check_job_name
from studio.cli.job_transfer import parse_inputs
from studio.errors import ValidationError
from tests.factories import make_team, make_user

NAMES = [
    "train",
    "a",
    "churn-2024-01-31",
    "a--b",
    "A1-b2-C3",
    "x" * 63,
    "x" * 64,
    "a" + "-" * 70 + "b",  # SageMaker's pattern alone allows it; 72 characters do not fit
    "-leading",
    "trailing-",
    "under_score",
    "dot.ted",
    "space d",
    "",
    "abc\n",
    "naïve",
]
CHANNELS = ["train", "Val.2", "a-b_c", "x" * 64, "x" * 65, "", "spa ce", "a/b", "eval\n", "ünï"]


def cli_accepts_name(name: str) -> bool:
    try:
        cli_check_job_name(name)
    except CliError:
        return False
    return True


@pytest.mark.django_db
@pytest.mark.parametrize("name", NAMES)
def test_the_client_refuses_a_job_name_exactly_when_the_server_does(name: str) -> None:
    try:
        check_job_name(make_team(), name)
        server_accepts = True
    except ValidationError:
        server_accepts = False
    assert cli_accepts_name(name) is server_accepts


@pytest.mark.django_db
@pytest.mark.parametrize("channel", CHANNELS)
def test_the_client_refuses_a_channel_name_exactly_when_the_server_does(
    channel: str, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.RUNTIME = "process"  # every image "exists"; nothing is started
    monkeypatch.setattr("jobs.tasks.run_job.apply_async", lambda *a, **k: None)
    team = make_team()
    request = JobRequest(
        name="channels",
        instance_type="ml.local.small",
        image="studiolo/x:1",
        channels=[ChannelRequest(name=channel, uri=f"s3://elsewhere/{team.slug}/data")],
    )
    try:
        job_create(team=team, actor=make_user(team), request=request)
        server_accepts_name = True
    except ValidationError as error:  # the URI may be refused next: only the name counts here
        server_accepts_name = "names are unique" not in error.message
    try:
        parse_inputs([(channel, "s3://elsewhere/data")])
        client_accepts = True
    except CliError:
        client_accepts = False
    assert client_accepts is server_accepts_name


def test_the_client_takes_the_rule_without_loading_django_models() -> None:
    probe = (
        "import sys, studio.cli.job_transfer;"
        "loaded = [m for m in ('jobs.names', 'django.db', 'jobs.models') if m in sys.modules];"
        "print(','.join(loaded))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "jobs.names"
