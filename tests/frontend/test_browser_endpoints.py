"""An endpoint's page in a real browser: it follows the endpoint into service live (status,
instances, events, over /ws/events) without a reload, and its "try it" console gets a
short-lived token and sends a request through the data plane, showing the answer, the variant
and the latency; the traffic charts and totals then redraw in place once the data plane has
written its statistics.

Same set-up as test_browser_models.py. No container starts: the deploy task is a no-op and
the test moves the endpoint through the lifecycle service itself; the instance row points at
a tiny HTTP server standing in for a serving container.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.contrib.auth.models import User

import endpoints.gateway
from endpoints.models import Endpoint, EndpointInstance, EndpointStatus, InstanceStatus
from endpoints.services.lifecycle import endpoint_create, endpoint_event, endpoint_transition
from endpoints.services.models import VariantRequest, config_create, model_for_package
from studio.accounts.models import ApiToken, Team
from tests.endpoints.conftest import approved_package
from tests.factories import make_team, make_user
from tests.frontend.browser_support import in_server_thread
from tests.frontend.test_browser_models import sign_in

pytestmark = pytest.mark.browser


class _Model(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        answer = b"predicted:" + body
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def model_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Model)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def lab(
    transactional_db: None, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Team, User]]:
    settings.RUNTIME = "process"
    monkeypatch.setattr("endpoints.tasks.deploy_endpoint.delay", lambda pk: None)
    monkeypatch.setattr("endpoints.gateway.stats.FLUSH_INTERVAL_SECONDS", 0.5)
    endpoints.gateway.reset()
    team = make_team("lab")
    ada = make_user(team, role="scientist", username="ada")
    yield team, ada
    endpoints.gateway.reset()


def test_endpoint_page_goes_live_and_the_console_invokes_the_endpoint(
    asgi_server: str, lab: tuple[Team, User], page: Any, model_port: int
) -> None:
    from playwright.sync_api import expect

    team, ada = lab

    def create() -> None:
        package = approved_package(team, ada, make_user(team, role="approver"))
        model = model_for_package(team=team, actor=ada, package=package)
        config = config_create(
            team=team, actor=ada, name="churn-config-1", variants=[VariantRequest(model=model)]
        )
        endpoint_create(team=team, actor=ada, name="churn", config=config)

    in_server_thread(create)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, asgi_server, "ada")
    page.goto(f"{asgi_server}/endpoints/churn/")
    expect(page.locator(".nav-link.active", has_text="Endpoints")).to_be_visible()
    expect(page.locator("[data-live-dot]")).to_have_attribute("data-state", "connected")
    expect(page.locator(".page-header [data-status-badge]")).to_have_text("Creating")
    expect(page.locator("[data-instance-rows] [data-empty]")).to_be_visible()
    invocations_chart = page.locator('[data-chart="invocations"]')
    expect(invocations_chart.locator(".main-svg").first).to_be_visible()
    expect(invocations_chart).to_contain_text("No invocations in this window")
    expect(page.locator('[data-chart="latency"] .main-svg').first).to_be_visible()
    page.evaluate("window.__studioloSamePage = true")  # a reload would wipe this out

    def bring_into_service() -> None:
        endpoint = Endpoint.objects.get(name="churn")
        EndpointInstance.objects.create(
            endpoint=endpoint,
            config=endpoint.config,
            variant_name="AllTraffic",
            container_name="churn-1",
            port=model_port,
            status=InstanceStatus.HEALTHY,
            message="answers /ping",
        )
        endpoint_event(endpoint=endpoint, message="1 instance(s) healthy")
        endpoint_transition(
            endpoint_id=endpoint.pk, status=EndpointStatus.IN_SERVICE, message="ready"
        )

    in_server_thread(bring_into_service)
    expect(page.locator(".page-header [data-status-badge]")).to_have_text("In service")
    row = page.locator('[data-instance-rows] tr[data-instance="churn-1"]')
    expect(row).to_contain_text("Healthy")
    expect(row).to_contain_text(f"127.0.0.1:{model_port}")
    expect(page.locator("[data-events]")).to_contain_text("1 instance(s) healthy")
    expect(page.locator("[data-healthy]").first).to_have_text("1")
    assert page.evaluate("window.__studioloSamePage") is True

    # The console: a token is made on the first Send, then the data plane answers.
    page.fill("[data-try-body]", "1,2,3")
    page.click("[data-try-send]")
    expect(page.locator("[data-try-status]")).to_have_text("200 OK")
    expect(page.locator("[data-try-response]")).to_have_text("predicted:1,2,3")
    expect(page.locator("[data-try-variant]")).to_have_text("variant AllTraffic")
    expect(page.locator("[data-try-latency]")).to_contain_text(" ms")
    page.click("[data-try-send]")  # the same token again
    expect(page.locator("[data-try-response]")).to_have_text("predicted:1,2,3")

    # The statistics flush announces new traffic: totals and charts redraw, no reload.
    expect(page.locator("[data-traffic-count]")).to_have_text("2")
    expect(invocations_chart).not_to_contain_text("No invocations in this window")
    expect(invocations_chart.locator(".legendtext").first).to_contain_text("AllTraffic")
    assert page.evaluate("window.__studioloSamePage") is True

    def tokens() -> None:
        assert list(ApiToken.objects.values_list("name", flat=True)) == ["try-it console"]

    in_server_thread(tokens)
    assert errors == []
