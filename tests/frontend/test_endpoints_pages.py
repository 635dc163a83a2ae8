"""The endpoint pages: the team's list (live config, bounded queries), an endpoint's page
(attention, failure, variants, instances, events, traffic charts), the update form and the
Delete button for those who may deploy, the "try it" console's short-lived token, deploying
an approved package from its page, and the dashboard card.

Endpoints are made through the endpoints services with the worker tasks stubbed out (no
container starts); instance rows, which only the fleet writes, are created directly.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries

from endpoints.models import (
    Endpoint,
    EndpointConfig,
    EndpointInstance,
    EndpointStatus,
    InstanceStatus,
    InvocationStat,
    ServingModel,
)
from endpoints.services.lifecycle import endpoint_create, endpoint_transition
from endpoints.services.models import VariantRequest, config_create, model_for_package
from registry.models import ModelPackage
from registry.services.approval import package_decide
from studio.accounts.models import ApiToken, Team, TokenPurpose
from studio.accounts.services import token_authenticate
from tests.endpoints.conftest import approved_package
from tests.factories import make_team, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def sent(settings: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    settings.RUNTIME = "process"  # every image "exists"; nothing is started
    tasks: list[tuple[str, int]] = []
    for name in ("deploy_endpoint", "roll_out_endpoint", "delete_endpoint"):
        monkeypatch.setattr(
            f"endpoints.tasks.{name}.delay", lambda pk, name=name: tasks.append((name, pk))
        )
    return tasks


@pytest.fixture
def team() -> Team:
    return make_team("alpha")


@pytest.fixture
def scientist(team: Team) -> User:
    return make_user(team, role="scientist", username="ada")


@pytest.fixture
def approver(team: Team) -> User:
    return make_user(team, role="approver", username="grace")


@pytest.fixture
def viewer(team: Team) -> User:
    return make_user(team, role="viewer", username="vic")


@pytest.fixture
def package(team: Team, scientist: User, approver: User) -> ModelPackage:
    return approved_package(team, scientist, approver)


def signed_in(user: User, **kwargs: Any) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def deploy(
    team: Team, user: User, package: ModelPackage, name: str = "churn-api", count: int = 2
) -> Endpoint:
    model = model_for_package(team=team, actor=user, package=package)
    config = config_create(
        team=team,
        actor=user,
        name=f"{name}-config-1",
        variants=[VariantRequest(model=model, instance_count=count)],
    )
    return endpoint_create(team=team, actor=user, name=name, config=config)


def in_service(endpoint: Endpoint) -> Endpoint:
    return endpoint_transition(
        endpoint_id=endpoint.pk, status=EndpointStatus.IN_SERVICE, message="instances healthy"
    )


def add_instance(endpoint: Endpoint, status: str, **fields: Any) -> EndpointInstance:
    count = EndpointInstance.objects.filter(endpoint=endpoint).count()
    return EndpointInstance.objects.create(
        endpoint=endpoint,
        config_id=endpoint.config_id,
        variant_name="AllTraffic",
        container_name=f"studiolo-ep-{endpoint.pk}-{count + 1}",
        status=status,
        **fields,
    )


# --- list --------------------------------------------------------------------------------


def test_endpoints_nav_item_is_enabled_and_lists_the_teams_endpoints(
    team: Team, scientist: User, package: ModelPackage
) -> None:
    endpoint = in_service(deploy(team, scientist, package))
    add_instance(endpoint, InstanceStatus.HEALTHY, port=9001)
    add_instance(endpoint, InstanceStatus.STARTING)
    other = make_team("beta")
    deploy(
        other,
        make_user(other),
        approved_package(other, make_user(other), make_user(other, role="approver")),
        name="secret",
    )

    response = signed_in(scientist).get(reverse("endpoints"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'href="/endpoints/"' in html  # the navigation links the section now
    assert 'data-endpoint="churn-api"' in html
    assert "secret" not in html  # another team's endpoint
    assert 'class="status status-green" data-status-badge data-status="InService"' in html
    assert "churn-api-config-1" in html
    assert 'href="/models/echo/1/"' in html
    assert 'data-status="Approved"' in html
    assert "<span data-healthy>1</span> / <span data-total>2</span>" in html
    assert ">ada<" in html
    config = response.context["live_config"]
    assert config["team"] == "alpha"
    assert config["colours"]["Failed"] == "red"
    assert config["api"] == "/api/v1/endpoints"


def test_an_endpoint_serving_a_rejected_package_is_marked_in_the_list_and_on_its_page(
    team: Team, scientist: User, approver: User, package: ModelPackage
) -> None:
    in_service(deploy(team, scientist, package))
    client = signed_in(scientist)
    assert (
        'data-attention-marker title="" hidden' in client.get(reverse("endpoints")).content.decode()
    )

    package_decide(package=package, actor=approver, decision="reject", comment="data leak")
    html = client.get(reverse("endpoints")).content.decode()
    marker = html.split("data-attention-marker", 1)[1].split(">", 1)[0]
    assert "hidden" not in marker
    assert "data leak" in marker

    page = client.get(reverse("endpoint-detail", args=["churn-api"])).content.decode()
    banner = page.split("data-attention ", 1)[1].split("</section>", 1)[0]
    assert "hidden" not in banner.split(">", 1)[0]
    assert "Needs attention" in banner
    assert "was rejected by grace: data leak" in banner
    assert 'data-status="Rejected"' in page  # the variant's package


def test_an_endpoint_in_service_without_a_healthy_instance_is_marked(
    team: Team, scientist: User, package: ModelPackage
) -> None:
    endpoint = in_service(deploy(team, scientist, package))
    add_instance(endpoint, InstanceStatus.HEALTHY, port=9001)
    client = signed_in(scientist)

    def markers() -> tuple[str, str]:
        listing = client.get(reverse("endpoints")).content.decode()
        page = client.get(reverse("endpoint-detail", args=["churn-api"])).content.decode()
        return tuple(  # type: ignore[return-value]
            html.split("data-unserved-marker", 1)[1].split(">", 1)[0] for html in (listing, page)
        )

    assert all("hidden" in marker for marker in markers())
    # The engine went away: the check took the instance out of rotation.
    EndpointInstance.objects.filter(endpoint=endpoint).update(status=InstanceStatus.UNHEALTHY)
    assert all("hidden" not in marker for marker in markers())
    # Creating (nothing meant to serve yet): no marker.
    deploy(team, scientist, package, name="fresh")
    listing = client.get(reverse("endpoints")).content.decode()
    fresh = listing.split('data-endpoint="fresh"', 1)[1].split("data-unserved-marker", 1)[1]
    assert "hidden" in fresh.split(">", 1)[0]


def test_list_queries_do_not_grow_with_the_number_of_endpoints(
    team: Team,
    scientist: User,
    approver: User,
    package: ModelPackage,
    django_assert_max_num_queries: DjangoAssertNumQueries,
) -> None:
    client = signed_in(scientist)
    deploy(team, scientist, package, name="first")
    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse("endpoints")).status_code == 200
    with_one = len(queries)
    # session, user, memberships, the endpoints with their counts, their variants
    assert with_one <= 6
    for index in range(2, 7):
        other = approved_package(team, scientist, approver, group=f"g{index}", tag=f"t{index}")
        endpoint = in_service(deploy(team, scientist, other, name=f"ep-{index}"))
        add_instance(endpoint, InstanceStatus.HEALTHY, port=9000 + index)
    with django_assert_max_num_queries(with_one):
        response = client.get(reverse("endpoints"))
    assert len(response.context["rows"]) == 6


def test_a_user_without_a_team_sees_an_empty_list(client: Client) -> None:
    client.force_login(make_user(username="loner"))
    response = client.get(reverse("endpoints"))
    assert response.status_code == 200
    assert b"No team yet" in response.content


# --- one endpoint ------------------------------------------------------------------------


def test_another_teams_endpoint_is_not_found(team: Team, scientist: User) -> None:
    other = make_team("beta")
    theirs = deploy(
        other,
        make_user(other),
        approved_package(other, make_user(other), make_user(other, role="approver")),
        name="theirs",
    )
    client = signed_in(scientist)
    assert client.get(reverse("endpoint-detail", args=["theirs"])).status_code == 404
    assert client.post(reverse("endpoint-delete", args=["theirs"])).status_code == 404
    assert client.post(reverse("endpoint-try-token", args=["theirs"])).status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == EndpointStatus.CREATING


def test_endpoint_page_shows_variants_instances_events_and_traffic(
    team: Team, scientist: User, package: ModelPackage
) -> None:
    endpoint = in_service(deploy(team, scientist, package))
    now = timezone.now()
    add_instance(endpoint, InstanceStatus.HEALTHY, port=9001, last_check_at=now, message="ok")
    add_instance(endpoint, InstanceStatus.UNHEALTHY, port=9002, message="/ping timed out")
    InvocationStat.objects.create(
        endpoint=endpoint,
        variant_name="AllTraffic",
        bucket_start=now - timedelta(minutes=2),
        count=40,
        errors_4xx=3,
        errors_5xx=1,
        latency_sum_ms=400.0,
        latency_max_ms=30.0,
        latency_histogram={"10": 40},
    )
    response = signed_in(scientist).get(reverse("endpoint-detail", args=["churn-api"]))
    assert response.status_code == 200
    html = response.content.decode()
    # variants
    assert 'data-variant="AllTraffic"' in html
    assert "echo-v1" in html  # the serving model made for the package
    assert 'href="/models/echo/1/"' in html
    assert "ml.local.small" in html
    # instances
    assert f'data-instance="studiolo-ep-{endpoint.pk}-1"' in html
    assert "127.0.0.1:9001" in html
    assert 'data-status="Unhealthy"' in html
    assert "/ping timed out" in html
    # events, oldest first
    assert html.index("Creating with config churn-api-config-1") < html.index("instances healthy")
    # traffic: totals and the two charts
    assert "<span data-traffic-4xx>3</span> / <span data-traffic-5xx>1</span>" in html
    charts = {chart["key"]: chart["figure"] for chart in response.context["charts"]}
    assert sum(y for y in charts["invocations"]["data"][0]["y"] if y) == 40
    assert charts["latency"]["data"][0]["name"] == "AllTraffic p50"
    assert 'id="figure-invocations"' in html
    assert 'id="figure-latency"' in html
    # the live config points at the REST answer the page re-reads, and at its traffic
    assert response.context["live_config"]["api"] == "/api/v1/endpoints/churn-api?team=alpha"
    assert response.context["live_config"]["traffic"] == "/endpoints/churn-api/traffic/"
    # the data plane's address, for clients
    assert "POST /endpoints/churn-api/invocations" in html


def test_the_traffic_figures_are_served_for_the_page_to_redraw_them(
    team: Team, scientist: User, package: ModelPackage
) -> None:
    endpoint = in_service(deploy(team, scientist, package))
    client = signed_in(scientist)
    url = reverse("endpoint-traffic", args=["churn-api"])
    empty = client.get(url)
    assert empty.status_code == 200
    assert "no-cache" in empty["Cache-Control"]
    assert empty.json()["totals"] == {"count": 0, "errors_4xx": 0, "errors_5xx": 0}

    # What the data plane's flush inserts while the page is open.
    for minutes_ago, count in ((3, 10), (1, 5)):
        InvocationStat.objects.create(
            endpoint=endpoint,
            variant_name="AllTraffic",
            bucket_start=timezone.now() - timedelta(minutes=minutes_ago),
            count=count,
            errors_5xx=1,
            latency_sum_ms=count * 12.0,
            latency_max_ms=20.0,
            latency_histogram={"21": count},
        )
    answer = client.get(url).json()

    assert answer["totals"] == {"count": 15, "errors_4xx": 0, "errors_5xx": 2}
    figures = answer["figures"]
    assert set(figures) == {"invocations", "latency"}
    invocations = figures["invocations"]["data"][0]
    assert invocations["name"].startswith("AllTraffic")
    assert sum(y for y in invocations["y"] if y) == 15
    assert figures["invocations"]["layout"]["annotations"] == []  # no "No invocations" note
    assert figures["latency"]["data"][0]["name"] == "AllTraffic p50"
    # the same figures the page was rendered with
    page = client.get(reverse("endpoint-detail", args=["churn-api"]))
    rendered = {c["key"]: c["figure"] for c in page.context["charts"]}
    assert rendered["invocations"]["data"][0]["y"] == figures["invocations"]["data"][0]["y"]


def test_another_teams_traffic_is_not_found(team: Team, scientist: User) -> None:
    other = make_team("beta")
    deploy(
        other,
        make_user(other),
        approved_package(other, make_user(other), make_user(other, role="approver")),
        name="theirs",
    )
    client = signed_in(scientist)
    assert client.get(reverse("endpoint-traffic", args=["theirs"])).status_code == 404


def test_a_failure_reason_is_shown_preformatted(
    team: Team, scientist: User, package: ModelPackage
) -> None:
    endpoint = deploy(team, scientist, package)
    endpoint_transition(
        endpoint_id=endpoint.pk,
        status=EndpointStatus.FAILED,
        failure_reason="instance did not answer /ping\nlast lines:\nTraceback <missing weights>",
    )
    html = signed_in(scientist).get(reverse("endpoint-detail", args=["churn-api"])).content.decode()
    assert "Failure reason" in html
    assert (
        '<pre class="failure-reason" data-failure-reason>instance did not answer /ping\n'
        "last lines:\nTraceback &lt;missing weights&gt;</pre>"
    ) in html


def test_update_delete_and_console_are_shown_only_to_those_who_may(
    team: Team, scientist: User, viewer: User, package: ModelPackage
) -> None:
    in_service(deploy(team, scientist, package))
    url = reverse("endpoint-detail", args=["churn-api"])
    mine = signed_in(scientist).get(url).content.decode()
    assert "data-delete-form" in mine
    assert "data-update-form" in mine
    assert "data-try-form" in mine
    assert '<option value="echo/1" selected>echo/1</option>' in mine

    theirs = signed_in(viewer).get(url).content.decode()
    assert "data-delete-form" not in theirs
    assert "data-update-form" not in theirs
    assert "data-try-form" not in theirs


def test_a_busy_endpoint_offers_no_update_and_says_why(
    team: Team, scientist: User, viewer: User, package: ModelPackage
) -> None:
    endpoint = deploy(team, scientist, package)  # Creating: the service would refuse an update
    url = reverse("endpoint-detail", args=["churn-api"])
    page = signed_in(scientist).get(url).content.decode()
    assert "data-update-form" not in page
    assert "data-update-note" in page
    assert "endpoint churn-api is Creating; wait until it is InService" in page
    assert "data-delete-form" in page  # deleting is allowed in any status but Deleting
    assert "data-update-note" not in signed_in(viewer).get(url).content.decode()

    endpoint_transition(endpoint_id=endpoint.pk, status=EndpointStatus.DELETING, message="bye")
    page = signed_in(scientist).get(url).content.decode()
    assert "data-delete-form" not in page
    assert "data-update-form" not in page
    assert "endpoint churn-api is being deleted" in page


def test_a_viewer_posting_anyway_is_refused_by_the_services(
    team: Team, scientist: User, viewer: User, package: ModelPackage
) -> None:
    endpoint = in_service(deploy(team, scientist, package))
    client = signed_in(viewer)
    response = client.post(
        reverse("endpoint-update", args=["churn-api"]),
        {"model": "echo/1", "instance_type": "ml.local.small", "instance_count": 1},
    )
    assert response.status_code == 403
    assert "does not allow endpoint.deploy" in response.content.decode()
    response = client.post(reverse("endpoint-delete", args=["churn-api"]), follow=True)
    assert "does not allow endpoint.deploy" in response.content.decode()
    assert client.post(reverse("endpoint-try-token", args=["churn-api"])).status_code == 403
    endpoint.refresh_from_db()
    assert endpoint.status == EndpointStatus.IN_SERVICE
    assert not ApiToken.objects.filter(user=viewer).exists()


def test_update_rolls_out_a_new_config_of_another_approved_package(
    team: Team,
    scientist: User,
    approver: User,
    package: ModelPackage,
    sent: list[tuple[str, int]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    endpoint = in_service(deploy(team, scientist, package))
    approved_package(team, scientist, approver, tag="v2")  # echo/2
    client = signed_in(scientist)
    page = client.get(reverse("endpoint-detail", args=["churn-api"])).content.decode()
    assert '<option value="echo/2">echo/2</option>' in page

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("endpoint-update", args=["churn-api"]),
            {"model": "echo/2", "instance_type": "ml.local.medium", "instance_count": 3},
        )
    assert response.status_code == 302
    assert response["Location"] == reverse("endpoint-detail", args=["churn-api"])
    endpoint.refresh_from_db()
    assert endpoint.status == EndpointStatus.UPDATING
    assert endpoint.pending_config is not None
    assert endpoint.pending_config.name == "churn-api-config-2"
    variant = endpoint.pending_config.variants.get()
    assert (variant.model.package.version, variant.instance_type, variant.instance_count) == (
        2,
        "ml.local.medium",
        3,
    )
    assert ("roll_out_endpoint", endpoint.pk) in sent
    page = client.get(reverse("endpoint-detail", args=["churn-api"])).content.decode()
    assert "Rolling out <code>churn-api-config-2</code>" in page


def test_update_errors_are_shown_next_to_their_fields(
    team: Team, scientist: User, approver: User, package: ModelPackage
) -> None:
    endpoint = deploy(team, scientist, package)
    approved_package(team, scientist, approver, tag="v2", approve=False)  # echo/2, pending
    client = signed_in(scientist)
    url = reverse("endpoint-update", args=["churn-api"])
    configs_before = EndpointConfig.objects.count()

    too_many = client.post(
        url, {"model": "echo/1", "instance_type": "ml.local.small", "instance_count": 50}
    )
    assert too_many.status_code == 400
    form = too_many.context["update_form"]
    assert form.errors["instance_count"] == ["variants.instance_count: between 1 and 10"]
    assert '<p class="field-error">variants.instance_count: between 1 and 10</p>' in (
        too_many.content.decode()
    )

    pending = client.post(
        url, {"model": "echo/2", "instance_type": "ml.local.small", "instance_count": 1}
    )
    assert pending.status_code == 400
    assert (
        "only Approved packages can be deployed"
        in pending.context["update_form"].errors["model"][0]
    )

    busy = client.post(
        url, {"model": "echo/1", "instance_type": "ml.local.small", "instance_count": 1}
    )
    assert busy.status_code == 409
    assert "wait until it is InService" in busy.context["update_form"].non_field_errors()[0]

    # Refusals leave nothing behind.
    assert EndpointConfig.objects.count() == configs_before
    endpoint.refresh_from_db()
    assert endpoint.status == EndpointStatus.CREATING


def test_delete_asks_the_service_and_goes_back_to_the_list(
    team: Team,
    scientist: User,
    package: ModelPackage,
    sent: list[tuple[str, int]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    endpoint = in_service(deploy(team, scientist, package))
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in(scientist).post(reverse("endpoint-delete", args=["churn-api"]))
    assert response.status_code == 302
    assert response["Location"] == reverse("endpoints")
    endpoint.refresh_from_db()
    assert endpoint.status == EndpointStatus.DELETING
    assert ("delete_endpoint", endpoint.pk) in sent


# --- the "try it" console ----------------------------------------------------------------


def test_the_console_gets_a_short_lived_token_of_the_user_once_per_post(
    team: Team, scientist: User, package: ModelPackage
) -> None:
    in_service(deploy(team, scientist, package))
    client = signed_in(scientist, enforce_csrf_checks=True)
    url = reverse("endpoint-try-token", args=["churn-api"])
    assert client.get(url).status_code == 405
    assert client.post(url).status_code == 403  # no CSRF token: another site cannot mint one

    page = client.get(reverse("endpoint-detail", args=["churn-api"]))
    csrf = page.context["csrf_token"]
    response = client.post(url, HTTP_X_CSRFTOKEN=str(csrf))
    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]
    body = response.json()
    assert token_authenticate(body["token"]) == scientist
    token = ApiToken.objects.get(user=scientist)
    assert (token.name, token.purpose) == ("try-it console", TokenPurpose.TRY_IT)
    assert token.expires_at is not None
    assert body["expires_at"] == token.expires_at.isoformat()
    lifetime = token.expires_at - timezone.now()
    assert timedelta(minutes=14) < lifetime <= timedelta(minutes=15)

    # Once expired it is not listed, and the next mint deletes it rather than piling up.
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now())
    assert b"try-it console" not in client.get(reverse("settings-tokens")).content
    assert client.post(url, HTTP_X_CSRFTOKEN=str(csrf)).status_code == 200
    assert ApiToken.objects.filter(user=scientist).exclude(pk=token.pk).count() == 1
    assert not ApiToken.objects.filter(pk=token.pk).exists()


# --- deploy from a package ---------------------------------------------------------------


def test_deploy_button_and_form_create_the_endpoint(
    team: Team,
    scientist: User,
    package: ModelPackage,
    sent: list[tuple[str, int]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    client = signed_in(scientist)
    page = client.get(reverse("model-package", args=["echo", 1])).content.decode()
    assert f'href="{reverse("model-package-deploy", args=["echo", 1])}"' in page

    form = client.get(reverse("model-package-deploy", args=["echo", 1]))
    assert form.status_code == 200
    assert 'value="echo-v1"' in form.content.decode()  # a suggested name

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("model-package-deploy", args=["echo", 1]),
            {"name": "churn-api", "instance_type": "ml.local.small", "instance_count": 2},
        )
    assert response.status_code == 302
    assert response["Location"] == reverse("endpoint-detail", args=["churn-api"])
    endpoint = Endpoint.objects.get(name="churn-api")
    assert endpoint.status == EndpointStatus.CREATING
    assert endpoint.created_by == scientist
    assert endpoint.config.variants.get().instance_count == 2
    assert ("deploy_endpoint", endpoint.pk) in sent

    lineage = client.get(reverse("model-package", args=["echo", 1])).content.decode()
    chain = lineage.split('data-chain="endpoints"', 1)[1].split("</li>", 1)[0]
    assert 'href="/endpoints/churn-api/"' in chain
    assert "churn-api (Creating)" in chain


def test_deploying_a_package_that_is_not_approved_is_refused_with_the_reason(
    team: Team, scientist: User, approver: User
) -> None:
    pending = approved_package(team, scientist, approver, approve=False)
    client = signed_in(scientist)
    page = client.get(reverse("model-package", args=["echo", pending.version])).content.decode()
    assert "data-deploy" not in page

    response = client.post(
        reverse("model-package-deploy", args=["echo", pending.version]),
        {"name": "churn-api", "instance_type": "ml.local.small", "instance_count": 1},
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "is PendingManualApproval; only Approved packages can be deployed" in html
    assert not Endpoint.objects.exists()
    assert not ServingModel.objects.exists()
    assert not EndpointConfig.objects.exists()


def test_the_deploy_page_gives_the_registrys_reason_for_an_approved_package_without_a_pin(
    team: Team, scientist: User, package: ModelPackage
) -> None:
    # Approved, but registered before packages pinned their artifact: the registry's policy
    # refuses it, and the pages say what the service would say, not a rule of their own.
    ModelPackage.objects.filter(pk=package.pk).update(artifact_sha256="")
    client = signed_in(scientist)
    page = client.get(reverse("model-package", args=["echo", 1])).content.decode()
    assert "data-deploy" not in page
    form = client.get(reverse("model-package-deploy", args=["echo", 1])).content.decode()
    reason = form.split("data-not-deployable>", 1)[1].split("</p>", 1)[0]
    assert "has no pinned artifact checksum" in reason
    response = client.post(
        reverse("model-package-deploy", args=["echo", 1]),
        {"name": "churn-api", "instance_type": "ml.local.small", "instance_count": 1},
    )
    assert response.status_code == 400
    assert "has no pinned artifact checksum" in response.content.decode()
    assert not Endpoint.objects.exists()


def test_deploy_form_errors_are_shown_next_to_their_fields(
    team: Team, scientist: User, package: ModelPackage
) -> None:
    client = signed_in(scientist)
    url = reverse("model-package-deploy", args=["echo", 1])
    bad_name = client.post(
        url, {"name": "no spaces", "instance_type": "ml.local.small", "instance_count": 1}
    )
    assert bad_name.status_code == 400
    assert "letters, digits and hyphens" in bad_name.context["form"].errors["name"][0]

    deploy(team, scientist, package, name="taken")
    taken = client.post(
        url, {"name": "taken", "instance_type": "ml.local.small", "instance_count": 1}
    )
    assert taken.status_code == 400
    assert "an endpoint named 'taken' exists already" in taken.context["form"].errors["name"][0]
    assert Endpoint.objects.count() == 1
    assert EndpointConfig.objects.count() == 1  # the refused one's config was not kept


def test_a_viewer_sees_no_deploy_button_and_cannot_deploy(
    team: Team, viewer: User, package: ModelPackage
) -> None:
    client = signed_in(viewer)
    assert (
        "data-deploy" not in client.get(reverse("model-package", args=["echo", 1])).content.decode()
    )
    response = client.post(
        reverse("model-package-deploy", args=["echo", 1]),
        {"name": "churn-api", "instance_type": "ml.local.small", "instance_count": 1},
    )
    assert response.status_code == 403
    assert not Endpoint.objects.exists()


# --- dashboard ---------------------------------------------------------------------------


def test_dashboard_card_counts_endpoints_in_service_and_those_needing_attention(
    team: Team, scientist: User, approver: User, package: ModelPackage
) -> None:
    client = signed_in(scientist)
    assert 'id="card-endpoints"' not in client.get(reverse("dashboard")).content.decode()
    in_service(deploy(team, scientist, package, name="one"))
    deploy(team, scientist, package, name="two")
    html = client.get(reverse("dashboard")).content.decode()
    card = html.split('id="card-endpoints"', 1)[1].split("</a>", 1)[0]
    assert '<span class="stat-value" data-card-value>1</span>' in card
    assert "of 2 endpoints, none needs attention" in card

    package_decide(package=package, actor=approver, decision="reject", comment="bias")
    card = client.get(reverse("dashboard")).content.decode().split('id="card-endpoints"', 1)[1]
    assert "2 need attention" in card.split("</a>", 1)[0]
