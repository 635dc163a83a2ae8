"""Updating and deleting an endpoint: the checks the pages ask (`endpoint_update_refusal`,
`endpoint_delete_refusal`) and the services agree, in every status and role."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from endpoints.models import Endpoint, EndpointConfig, EndpointStatus
from endpoints.services.lifecycle import (
    endpoint_create,
    endpoint_delete,
    endpoint_delete_refusal,
    endpoint_transition,
    endpoint_update,
    endpoint_update_refusal,
)
from endpoints.services.models import VariantRequest, config_create, model_for_package
from studio.accounts.models import Team
from studio.errors import StudioloError
from tests.endpoints.conftest import approved_package
from tests.factories import make_team, make_user

pytestmark = pytest.mark.django_db

# How to bring a new endpoint (Creating) to each status, through the transition service.
PATHS: dict[str, tuple[str, ...]] = {
    EndpointStatus.CREATING: (),
    EndpointStatus.IN_SERVICE: (EndpointStatus.IN_SERVICE,),
    EndpointStatus.UPDATING: (EndpointStatus.IN_SERVICE, EndpointStatus.UPDATING),
    EndpointStatus.FAILED: (EndpointStatus.FAILED,),
    EndpointStatus.DELETING: (EndpointStatus.DELETING,),
}


@pytest.fixture(autouse=True)
def _no_worker(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.RUNTIME = "process"  # every image "exists"; nothing is started
    for name in ("deploy_endpoint", "roll_out_endpoint", "delete_endpoint"):
        monkeypatch.setattr(f"endpoints.tasks.{name}.delay", lambda pk: None)


@pytest.fixture
def team() -> Team:
    return make_team()


@pytest.fixture
def author(team: Team) -> User:
    return make_user(team, role="scientist")


def config(team: Team, author: User, name: str) -> EndpointConfig:
    package = approved_package(team, author, make_user(team, role="approver"), tag=name)
    model = model_for_package(team=team, actor=author, package=package)
    return config_create(team=team, actor=author, name=name, variants=[VariantRequest(model)])


def endpoint_in(status: str, team: Team, author: User) -> Endpoint:
    endpoint = endpoint_create(
        team=team, actor=author, name="churn-api", config=config(team, author, "c1")
    )
    for step in PATHS[status]:
        endpoint = endpoint_transition(endpoint_id=endpoint.pk, status=step, message="test")
    assert endpoint.status == status
    return endpoint


def same_refusal(refusal: StudioloError, raised: pytest.ExceptionInfo[StudioloError]) -> bool:
    return (type(raised.value), raised.value.message) == (type(refusal), refusal.message)


@pytest.mark.parametrize("status", list(PATHS))
@pytest.mark.parametrize("role", ["viewer", "scientist"])
def test_the_update_check_and_updating_agree(
    team: Team, author: User, status: str, role: str
) -> None:
    endpoint = endpoint_in(status, team, author)
    new_config = config(team, author, "c2")
    actor = make_user(team, role=role)
    refusal = endpoint_update_refusal(endpoint=endpoint, actor=actor)
    updatable = role == "scientist" and status in (EndpointStatus.IN_SERVICE, EndpointStatus.FAILED)
    assert (refusal is None) is updatable
    if refusal is None:
        assert endpoint_update(endpoint=endpoint, actor=actor, config=new_config).status == (
            EndpointStatus.UPDATING
        )
    else:
        with pytest.raises(StudioloError) as raised:
            endpoint_update(endpoint=endpoint, actor=actor, config=new_config)
        assert same_refusal(refusal, raised)


@pytest.mark.parametrize("status", list(PATHS))
@pytest.mark.parametrize("role", ["viewer", "scientist"])
def test_the_delete_check_and_deleting_agree(
    team: Team, author: User, status: str, role: str
) -> None:
    endpoint = endpoint_in(status, team, author)
    actor = make_user(team, role=role)
    refusal = endpoint_delete_refusal(endpoint=endpoint, actor=actor)
    assert (refusal is None) is (role == "scientist" and status != EndpointStatus.DELETING)
    if refusal is None:
        assert endpoint_delete(endpoint=endpoint, actor=actor).status == EndpointStatus.DELETING
    else:
        with pytest.raises(StudioloError) as raised:
            endpoint_delete(endpoint=endpoint, actor=actor)
        assert same_refusal(refusal, raised)


def test_an_outsider_is_told_the_endpoint_is_not_there(team: Team, author: User) -> None:
    endpoint = endpoint_in(EndpointStatus.IN_SERVICE, team, author)
    outsider = make_user(make_team())
    for check in (endpoint_update_refusal, endpoint_delete_refusal):
        refusal = check(endpoint=endpoint, actor=outsider)
        assert refusal is not None
        assert refusal.status == 404
