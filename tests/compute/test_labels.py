"""Every container and network the studio makes carries its installation's tag in its name,
after one rule, so two studios with different data folders on one Docker engine never reach
for the same name, and all of one studio's objects share one prefix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compute.labels import ROLE_ENDPOINT, ROLE_JOB, ROLE_SERVING_NETWORK, engine_name
from compute.serving import serving_network_name
from endpoints.models import EndpointInstance
from endpoints.services.fleet.containers import container_name as instance_container_name
from jobs.models import Job
from jobs.runner import container_name


def test_two_installations_name_the_same_job_differently(settings: Any, tmp_path: Path) -> None:
    job = Job(pk=7)
    settings.STUDIOLO_HOME = tmp_path / "one"
    first = container_name(job)
    settings.STUDIOLO_HOME = tmp_path / "two"
    second = container_name(job)
    assert first != second
    assert first.startswith("studiolo-")
    assert first.endswith("-job-7")


def test_every_name_follows_the_one_rule(settings: Any, tmp_path: Path) -> None:
    settings.STUDIOLO_HOME = tmp_path / "home"
    tag = engine_name("x").split("-")[1]
    assert len(tag) == 6
    assert container_name(Job(pk=7)) == engine_name(ROLE_JOB, 7) == f"studiolo-{tag}-job-7"
    instance = EndpointInstance(pk=9, endpoint_id=3)
    assert instance_container_name(instance) == engine_name(ROLE_ENDPOINT, 3, 9)
    assert instance_container_name(instance) == f"studiolo-{tag}-ep-3-9"
    assert serving_network_name("vision") == engine_name(ROLE_SERVING_NETWORK, "vision")
    assert serving_network_name("vision") == f"studiolo-{tag}-serve-vision"


def test_the_tag_depends_on_the_data_folder_alone(settings: Any, tmp_path: Path) -> None:
    settings.STUDIOLO_HOME = tmp_path / "one"
    first = engine_name(ROLE_JOB, 1)
    assert engine_name(ROLE_JOB, 1) == first  # stable
    settings.STUDIOLO_HOME = tmp_path / "two"
    assert engine_name(ROLE_JOB, 1) != first
