"""`studiolo train --checkpoint-uri` and what `jobs describe` says of a job's checkpoints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from jobs.models import Job
from studio.artifacts import get_store
from studio.cli.main import main
from tests.cli.test_jobs_cli import (  # noqa: F401 - fixtures
    Studio,
    make_job,
    source_dir,
    studio,
    train_argv,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_train_with_a_checkpoint_uri_and_local_path_sets_the_checkpoint_config(
    studio: Studio, source_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = get_store().uri(f"teams/{studio.team.slug}/checkpoints/resnet")
    argv = train_argv(
        source_dir, "--checkpoint-uri", uri, "--checkpoint-local-path", "/opt/ml/state"
    )
    assert main(argv) == 0
    name = capsys.readouterr().out.strip()
    job = Job.objects.get(team=studio.team, name=name)
    assert job.checkpoint == {"uri": uri, "local_path": "/opt/ml/state"}

    assert main(["jobs", "describe", name]) == 0
    out = capsys.readouterr().out
    assert re.search(
        rf"^Checkpoints:\s+{re.escape(uri)}  \(synced from /opt/ml/state\)$", out, re.MULTILINE
    )


def test_a_bad_checkpoint_path_is_refused_naming_the_field(
    studio: Studio, source_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = get_store().uri(f"teams/{studio.team.slug}/checkpoints/x")
    argv = train_argv(source_dir, "--checkpoint-uri", uri, "--checkpoint-local-path", "/tmp/x")
    assert main(argv) != 0
    assert "checkpoint_config.local_path" in capsys.readouterr().err
    assert not Job.objects.filter(team=studio.team).exists()


def test_a_checkpoint_path_without_a_uri_exits_2_before_uploading(
    studio: Studio, source_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = train_argv(source_dir, "--checkpoint-local-path", "/opt/ml/state")
    assert main(argv) == 2
    assert "--checkpoint-local-path needs --checkpoint-uri" in capsys.readouterr().err
    assert list(get_store().list(f"teams/{studio.team.slug}/")) == []


def test_describe_says_when_a_job_has_no_checkpoints(
    studio: Studio, capsys: pytest.CaptureFixture[str]
) -> None:
    make_job(studio, "plain")
    assert main(["jobs", "describe", "plain"]) == 0
    assert re.search(r"^Checkpoints:\s+-$", capsys.readouterr().out, re.MULTILINE)
