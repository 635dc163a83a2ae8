"""The endpoint services' rules, without containers: what may be deployed, by whom, when;
and what happens to endpoints when the registry rejects what they serve."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import TestCase

from endpoints.models import Endpoint, EndpointEvent, EndpointStatus
from endpoints.services.lifecycle import (
    endpoint_create,
    endpoint_delete,
    endpoint_transition,
    endpoint_update,
)
from endpoints.services.models import (
    VariantRequest,
    config_create,
    model_create_from_image,
    model_create_from_package,
    model_for_package,
)
from registry.services.approval import package_decide
from studio.audit.models import AuditEvent
from studio.errors import Conflict, NotFound, PermissionDenied, ValidationError
from studio.webhooks.models import WebhookDelivery
from studio.webhooks.services import webhook_create
from tests.endpoints.conftest import approved_package
from tests.factories import make_team, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_containers(settings: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    settings.RUNTIME = "process"  # every image "exists"
    sent: list[tuple[str, int]] = []
    for name in ("deploy_endpoint", "roll_out_endpoint", "delete_endpoint"):
        monkeypatch.setattr(
            f"endpoints.tasks.{name}.delay", lambda pk, name=name: sent.append((name, pk))
        )
    return sent


@pytest.fixture
def people() -> dict[str, Any]:
    team = make_team("ep")
    return {
        "team": team,
        "scientist": make_user(team, role="scientist"),
        "approver": make_user(team, role="approver"),
        "viewer": make_user(team, role="viewer"),
        "admin": make_user(team, role="admin"),
    }


def _config(people: dict[str, Any], package: Any, name: str = "cfg-1") -> Any:
    model = model_for_package(team=people["team"], actor=people["scientist"], package=package)
    return config_create(
        team=people["team"],
        actor=people["scientist"],
        name=name,
        variants=[VariantRequest(model=model, instance_count=2)],
    )


def test_deployment_is_refused_for_a_package_that_is_not_approved(people: dict[str, Any]) -> None:
    pending = approved_package(
        people["team"], people["scientist"], people["approver"], approve=False
    )
    with pytest.raises(ValidationError) as error:
        model_create_from_package(
            team=people["team"], actor=people["scientist"], name="m", package=pending
        )
    assert error.value.field == "model"
    assert "PendingManualApproval" in error.value.message
    assert "only Approved packages can be deployed" in error.value.message


def test_a_package_rejected_after_its_config_was_made_cannot_be_deployed(
    people: dict[str, Any],
) -> None:
    package = approved_package(people["team"], people["scientist"], people["approver"])
    config = _config(people, package)
    package_decide(package=package, actor=people["approver"], decision="reject", comment="leak")
    with pytest.raises(ValidationError) as error:
        endpoint_create(team=people["team"], actor=people["scientist"], name="e", config=config)
    assert error.value.field == "model"
    assert "Rejected" in error.value.message
    assert not Endpoint.objects.exists()


def test_viewers_cannot_deploy_and_only_admins_deploy_images_without_a_package(
    people: dict[str, Any],
) -> None:
    package = approved_package(people["team"], people["scientist"], people["approver"])
    with pytest.raises(PermissionDenied):
        model_create_from_package(
            team=people["team"], actor=people["viewer"], name="m", package=package
        )
    with pytest.raises(PermissionDenied):
        model_create_from_image(
            team=people["team"],
            actor=people["scientist"],
            name="raw",
            image="studiolo/sklearn:latest",
            artifact_uri=package.artifact_uri,
        )
    model = model_create_from_image(
        team=people["team"],
        actor=people["admin"],
        name="raw",
        image="studiolo/sklearn:latest",
        artifact_uri=package.artifact_uri,
    )
    assert model.package is None


def test_another_teams_package_or_config_is_not_found(people: dict[str, Any]) -> None:
    other = make_team("other")
    other_user = make_user(other, role="scientist")
    package = approved_package(people["team"], people["scientist"], people["approver"])
    with pytest.raises(NotFound):
        model_create_from_package(team=other, actor=other_user, name="m", package=package)
    config = _config(people, package)
    with pytest.raises(NotFound):
        endpoint_create(team=other, actor=other_user, name="e", config=config)


@pytest.mark.parametrize(
    ("variant", "field"),
    [
        ({"instance_count": 0}, "variants.instance_count"),
        ({"instance_count": 11}, "variants.instance_count"),
        ({"instance_type": "ml.p9.huge"}, "variants.instance_type"),
        ({"initial_weight": 0.0}, "variants.initial_weight"),
        ({"name": "bad name"}, "variants.name"),
    ],
)
def test_bad_variants_are_refused_naming_the_field(
    people: dict[str, Any], variant: dict[str, Any], field: str
) -> None:
    package = approved_package(people["team"], people["scientist"], people["approver"])
    model = model_for_package(team=people["team"], actor=people["scientist"], package=package)
    with pytest.raises(ValidationError) as error:
        config_create(
            team=people["team"],
            actor=people["scientist"],
            name="cfg",
            variants=[VariantRequest(model=model, **variant)],
        )
    assert error.value.field == field


def test_duplicate_names_are_refused(people: dict[str, Any]) -> None:
    package = approved_package(people["team"], people["scientist"], people["approver"])
    config = _config(people, package)
    with pytest.raises(ValidationError) as error:
        _config(people, package)
    assert error.value.field == "name"
    endpoint_create(team=people["team"], actor=people["scientist"], name="e", config=config)
    with pytest.raises(ValidationError) as error:
        endpoint_create(team=people["team"], actor=people["scientist"], name="e", config=config)
    assert error.value.field == "name"
    assert Endpoint.objects.count() == 1


class CreateUpdateDelete(TestCase):
    """on_commit hooks fire in TestCase.captureOnCommitCallbacks: the task is sent only
    after the endpoint is committed."""

    def test_create_update_delete_record_who_and_send_their_task(self) -> None:
        team = make_team("cud")
        scientist = make_user(team, role="scientist")
        approver = make_user(team, role="approver")
        package = approved_package(team, scientist, approver)
        model = model_for_package(team=team, actor=scientist, package=package)
        first = config_create(
            team=team, actor=scientist, name="c1", variants=[VariantRequest(model=model)]
        )
        second = config_create(
            team=team,
            actor=scientist,
            name="c2",
            variants=[VariantRequest(model=model, instance_count=2)],
        )
        sent: list[tuple[str, int]] = []
        with pytest.MonkeyPatch.context() as patch:
            for name in ("deploy_endpoint", "roll_out_endpoint", "delete_endpoint"):
                patch.setattr(
                    f"endpoints.tasks.{name}.delay", lambda pk, name=name: sent.append((name, pk))
                )
            with self.captureOnCommitCallbacks(execute=True):
                endpoint = endpoint_create(team=team, actor=scientist, name="e", config=first)
            assert sent == [("deploy_endpoint", endpoint.pk)]
            with pytest.raises(Conflict):  # still Creating
                endpoint_update(endpoint=endpoint, actor=scientist, config=second)
            endpoint = endpoint_transition(
                endpoint_id=endpoint.pk, status=EndpointStatus.IN_SERVICE
            )
            with pytest.raises(ValidationError):  # already serving c1
                endpoint_update(endpoint=endpoint, actor=scientist, config=first)
            with self.captureOnCommitCallbacks(execute=True):
                endpoint = endpoint_update(endpoint=endpoint, actor=scientist, config=second)
            assert endpoint.status == EndpointStatus.UPDATING
            assert endpoint.pending_config == second
            with self.captureOnCommitCallbacks(execute=True):
                endpoint = endpoint_delete(endpoint=endpoint, actor=scientist)
            assert endpoint.status == EndpointStatus.DELETING
            with pytest.raises(Conflict):
                endpoint_delete(endpoint=endpoint, actor=scientist)
        assert [name for name, _ in sent] == [
            "deploy_endpoint",
            "roll_out_endpoint",
            "delete_endpoint",
        ]
        history = list(EndpointEvent.objects.filter(endpoint=endpoint).exclude(to_status=""))
        assert [(e.from_status, e.to_status) for e in history] == [
            ("", "Creating"),
            ("Creating", "InService"),
            ("InService", "Updating"),
            ("Updating", "Deleting"),
        ]
        assert history[2].actor_name == scientist.username
        actions = set(AuditEvent.objects.filter(team=team).values_list("action", flat=True))
        assert {"endpoint.created", "endpoint.updating", "endpoint.deleting"} <= actions


def test_rejecting_a_serving_package_marks_the_endpoint_and_tells_the_team(
    people: dict[str, Any], settings: Any
) -> None:
    team = people["team"]
    package = approved_package(team, people["scientist"], people["approver"])
    config = _config(people, package)
    endpoint = endpoint_create(team=team, actor=people["scientist"], name="live", config=config)
    endpoint_transition(endpoint_id=endpoint.pk, status=EndpointStatus.IN_SERVICE)
    webhook_create(
        team=team,
        actor=people["admin"],
        url="http://127.0.0.1:9/hook",
        events=["endpoint.model_rejected"],
    )
    package_decide(
        package=package, actor=people["approver"], decision="reject", comment="data leak found"
    )
    endpoint.refresh_from_db()
    assert endpoint.status == EndpointStatus.IN_SERVICE  # still serving: people decide
    assert "echo/1 was rejected" in endpoint.attention
    assert "data leak found" in endpoint.attention
    assert EndpointEvent.objects.filter(endpoint=endpoint, message__contains="rejected").exists()
    assert AuditEvent.objects.filter(action="endpoint.model_rejected").count() == 1
    delivery = WebhookDelivery.objects.get(event_type="endpoint.model_rejected")
    assert delivery.payload["name"] == "live"
    assert delivery.payload["package"] == "echo/1"
