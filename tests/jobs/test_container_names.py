"""Every container the studio starts carries its installation's tag in its name, so two studios
with different data folders on one Docker engine never reach for the same name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jobs.models import Job
from jobs.runner import container_name


def test_two_installations_name_the_same_job_differently(settings: Any, tmp_path: Path) -> None:
    job = Job(pk=7)
    settings.STUDIOLO_HOME = tmp_path / "one"
    first = container_name(job)
    settings.STUDIOLO_HOME = tmp_path / "two"
    second = container_name(job)
    assert first != second
    assert first.startswith("studiolo-job-")
    assert first.endswith("-7")
