"""Registering a job's model: the check the pages ask (`registration_refusal`) and the
registration agree."""

from __future__ import annotations

from typing import Any

import pytest

from registry.models import ModelPackage
from registry.services.registration import (
    InferenceSpec,
    package_register_from_job,
    registration_refusal,
)
from studio.errors import StudioloError
from tests.factories import make_team, make_user
from tests.registry.conftest import completed_job, make_group

pytestmark = pytest.mark.django_db

CASES: dict[str, dict[str, Any]] = {
    "completed with a model": {},
    "still running": {"status": "InProgress", "secondary_status": "Training"},
    "failed": {"status": "Failed", "secondary_status": "Failed"},
    "completed without a model": {"model_artifact_uri": ""},
    "model outside the store": {"model_artifact_uri": "s3://elsewhere/model.tar.gz"},
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("role", ["viewer", "scientist"])
def test_the_registration_check_and_registering_agree(case: str, role: str) -> None:
    team = make_team()
    owner = make_user(team, role="admin")
    group = make_group(team, owner)
    job = completed_job(team, owner, "train-1", **CASES[case])
    actor = make_user(team, role=role)
    refusal = registration_refusal(job=job, actor=actor)
    assert (refusal is None) is (role == "scientist" and case == "completed with a model")
    register = {"group": group, "job": job, "actor": actor, "inference": InferenceSpec("sklearn")}
    if refusal is None:
        assert package_register_from_job(**register).version == 1
    else:
        with pytest.raises(StudioloError) as raised:
            package_register_from_job(**register)
        assert (type(raised.value), raised.value.message) == (type(refusal), refusal.message)
        assert not ModelPackage.objects.exists()


def test_an_outsider_is_told_the_job_is_not_there() -> None:
    team = make_team()
    job = completed_job(team, make_user(team), "train-1")
    refusal = registration_refusal(job=job, actor=make_user(make_team()))
    assert refusal is not None
    assert refusal.status == 404
