"""`studiolo endpoints ...` against a real ASGI server (REST API and data plane).

No container starts (test_endpoints_cli_fleet.py runs the CLI against the real fleet): the
worker tasks are replaced by a small stand-in fleet that moves the
endpoint through the lifecycle service a moment later, in a thread, as a worker would. For
`invoke`, the endpoint's instance row points at a tiny HTTP server in the test, so the request
really goes through the data plane (token, routing, the variant header)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection

import endpoints.gateway
from endpoints.models import Endpoint, EndpointInstance, EndpointStatus, InstanceStatus
from endpoints.services.lifecycle import endpoint_event, endpoint_transition
from studio.accounts.models import Team
from studio.cli.common import TIMED_OUT
from studio.cli.main import build_parser, main
from tests.endpoints.conftest import approved_package
from tests.factories import make_team, make_token, make_user

DELAY = 0.4  # seconds before the stand-in fleet acts: long enough for the CLI to poll first


@dataclass
class Studio:
    url: str
    team: Team
    scientist: User
    approver: User


class Fleet:
    """What the worker would do when a task is sent, chosen per test."""

    def __init__(self) -> None:
        self.deploy: Callable[[int], None] = self.bring_into_service
        self.roll_out: Callable[[int], None] = self.switch_config
        self.threads: list[threading.Thread] = []

    def later(self, action: Callable[[int], None], endpoint_id: int) -> None:
        def run() -> None:
            try:
                action(endpoint_id)
            finally:
                connection.close()  # this thread's own connection

        thread = threading.Timer(DELAY, run)
        self.threads.append(thread)
        thread.start()

    @staticmethod
    def bring_into_service(endpoint_id: int) -> None:
        endpoint = Endpoint.objects.get(pk=endpoint_id)
        for variant in endpoint.config.variants.all():
            for index in range(variant.instance_count):
                EndpointInstance.objects.create(
                    endpoint=endpoint,
                    config=endpoint.config,
                    variant_name=variant.name,
                    container_name=f"{endpoint.name}-{index + 1}",
                    port=9000 + index,
                    status=InstanceStatus.HEALTHY,
                )
        endpoint_event(endpoint=endpoint, message="2 instance(s) healthy")
        endpoint_transition(endpoint_id=endpoint_id, status=EndpointStatus.IN_SERVICE)

    @staticmethod
    def fail(endpoint_id: int) -> None:
        endpoint_transition(
            endpoint_id=endpoint_id,
            status=EndpointStatus.FAILED,
            message="could not start",
            failure_reason="instance did not answer /ping\nlast lines:\nRuntimeError: missing weights.bin",
        )

    @staticmethod
    def switch_config(endpoint_id: int) -> None:
        endpoint = Endpoint.objects.get(pk=endpoint_id)
        endpoint_transition(
            endpoint_id=endpoint_id,
            status=EndpointStatus.IN_SERVICE,
            message="switched",
            config=endpoint.pending_config,
            pending_config=None,
        )

    @staticmethod
    def roll_back(endpoint_id: int) -> None:
        endpoint_transition(
            endpoint_id=endpoint_id,
            status=EndpointStatus.IN_SERVICE,
            message="rolled back",
            pending_config=None,
            failure_reason="update failed: the new instances did not answer /ping",
        )

    @staticmethod
    def remove(endpoint_id: int) -> None:
        Endpoint.objects.filter(pk=endpoint_id).delete()


@pytest.fixture
def fleet(monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    stand_in = Fleet()
    monkeypatch.setattr(
        "endpoints.tasks.deploy_endpoint.delay", lambda pk: stand_in.later(stand_in.deploy, pk)
    )
    monkeypatch.setattr(
        "endpoints.tasks.roll_out_endpoint.delay",
        lambda pk: stand_in.later(stand_in.roll_out, pk),
    )
    monkeypatch.setattr(
        "endpoints.tasks.delete_endpoint.delay", lambda pk: stand_in.later(stand_in.remove, pk)
    )
    yield stand_in
    for thread in stand_in.threads:
        thread.join(10)


@pytest.fixture
def studio(
    asgi_server: str, monkeypatch: pytest.MonkeyPatch, settings: Any, fleet: Fleet
) -> Iterator[Studio]:
    settings.RUNTIME = "process"  # image checks pass; nothing is started
    monkeypatch.setattr("studio.cli.endpoints.POLL_SECONDS", 0.1)
    endpoints.gateway.reset()  # the data plane caches tokens and routes per process
    team = make_team("alpha")
    scientist = make_user(team, role="scientist")
    approver = make_user(team, role="approver")
    monkeypatch.setenv("STUDIOLO_URL", asgi_server)
    monkeypatch.setenv("STUDIOLO_TOKEN", make_token(scientist))
    yield Studio(asgi_server, team, scientist, approver)
    endpoints.gateway.reset()


def _create(studio: Studio, *extra: str) -> int:
    approved_package(studio.team, studio.scientist, studio.approver)
    return main(["endpoints", "create", "churn-api", "--model", "echo/1", *extra])


# --- create, list, describe --------------------------------------------------------------


def test_create_wait_follows_the_endpoint_into_service(
    studio: Studio, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _create(studio, "--instances", "2", "--wait") == 0
    captured = capsys.readouterr()
    assert captured.out == "churn-api\n"
    assert "Creating endpoint churn-api in team alpha (config churn-api-config-1)" in captured.err
    assert "- -> Creating: Creating with config churn-api-config-1" in captured.err
    assert "2 instance(s) healthy" in captured.err
    assert "Creating -> InService" in captured.err
    assert "Endpoint churn-api: InService (2/2 instances healthy)" in captured.err
    assert "POST /endpoints/churn-api/invocations" in captured.err
    variant = Endpoint.objects.get().config.variants.get()
    assert (variant.instance_count, variant.instance_type) == (2, "ml.local.small")


def test_create_wait_exits_1_with_the_failure_reason(
    studio: Studio, fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet.deploy = fleet.fail
    assert _create(studio, "--wait") == 1
    err = capsys.readouterr().err
    assert "Creating -> Failed: could not start" in err
    assert "Endpoint churn-api: Failed." in err
    assert "RuntimeError: missing weights.bin" in err


def test_create_without_wait_prints_the_name_or_the_json(
    studio: Studio, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _create(studio, "--instance-type", "ml.local.medium", "--json") == 0
    endpoint = json.loads(capsys.readouterr().out)
    assert endpoint["status"] == "Creating"
    assert endpoint["variants"][0]["instance_type"] == "ml.local.medium"
    assert endpoint["variants"][0]["package"] == "echo/1"


def test_deploying_a_package_that_is_not_approved_exits_1_with_the_reason(
    studio: Studio, capsys: pytest.CaptureFixture[str]
) -> None:
    approved_package(studio.team, studio.scientist, studio.approver, approve=False)
    assert main(["endpoints", "create", "churn-api", "--model", "echo/1"]) == 1
    assert "only Approved packages can be deployed" in capsys.readouterr().err
    assert not Endpoint.objects.exists()


def test_a_bad_model_reference_is_a_usage_error(
    studio: Studio, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["endpoints", "create", "churn-api", "--model", "echo"]) == 2
    assert "GROUP/VERSION" in capsys.readouterr().err


def test_list_and_describe(studio: Studio, capsys: pytest.CaptureFixture[str]) -> None:
    assert _create(studio, "--instances", "2", "--wait") == 0
    capsys.readouterr()

    assert main(["endpoints", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["NAME", "TEAM", "STATUS", "CONFIG"]
    assert lines[1].split()[:5] == ["churn-api", "alpha", "InService", "churn-api-config-1", "2/2"]
    assert main(["endpoints", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["healthy_count"] == 2

    assert main(["endpoints", "describe", "churn-api"]) == 0
    out = capsys.readouterr().out
    assert "Status:      InService" in out
    assert "AllTraffic  echo-v1  echo/1   Approved" in out
    assert "churn-api-1" in out
    assert "127.0.0.1:9000" in out
    assert "Creating with config churn-api-config-1" in out
    assert main(["endpoints", "describe", "churn-api", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["instances"]) == 2

    assert main(["endpoints", "describe", "nope"]) == 1
    assert "endpoint 'nope' not found" in capsys.readouterr().err


# --- update, delete ----------------------------------------------------------------------


def test_update_wait_follows_the_rollout(
    studio: Studio, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _create(studio, "--wait") == 0
    approved_package(studio.team, studio.scientist, studio.approver, tag="v2")
    capsys.readouterr()
    argv = ["endpoints", "update", "churn-api", "--model", "echo/2", "--instances", "3"]
    assert main([*argv, "--wait"]) == 0
    err = capsys.readouterr().err
    assert "Updating endpoint churn-api to config churn-api-config-2" in err
    assert "InService -> Updating" in err
    assert "Updating -> InService: switched" in err
    assert "Creating with config" not in err  # history from before the command
    endpoint = Endpoint.objects.get()
    assert endpoint.config.name == "churn-api-config-2"
    assert endpoint.config.variants.get().instance_count == 3


def test_a_rolled_back_update_exits_1_with_the_reason(
    studio: Studio, fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _create(studio, "--wait") == 0
    fleet.roll_out = fleet.roll_back
    capsys.readouterr()
    assert main(["endpoints", "update", "churn-api", "--model", "echo/1", "--wait"]) == 1
    err = capsys.readouterr().err
    assert "the update failed; churn-api-config-1 still serves" in err
    assert "the new instances did not answer /ping" in err


def test_update_of_a_busy_endpoint_is_refused(
    studio: Studio, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _create(studio) == 0
    capsys.readouterr()
    assert main(["endpoints", "update", "churn-api", "--model", "echo/1"]) == 1
    assert "wait until it is InService" in capsys.readouterr().err


def test_delete_wait_returns_when_the_endpoint_is_gone(
    studio: Studio, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _create(studio, "--wait") == 0
    capsys.readouterr()
    assert main(["endpoints", "delete", "churn-api", "--wait"]) == 0
    err = capsys.readouterr().err
    assert "Deleting endpoint churn-api (team alpha)" in err
    assert "Endpoint churn-api is deleted." in err
    assert not Endpoint.objects.exists()


# --- --wait --timeout --------------------------------------------------------------------


def _stuck(endpoint_id: int) -> None:
    """A worker that never gets round to it."""


def test_create_wait_gives_up_after_the_timeout_naming_the_endpoint_and_its_status(
    studio: Studio, fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet.deploy = _stuck
    started = time.monotonic()
    assert _create(studio, "--wait", "--timeout", "1") == TIMED_OUT == 124
    assert time.monotonic() - started < 5
    err = capsys.readouterr().err
    assert (
        "studiolo: timed out after 1 s waiting for endpoint churn-api (last status: Creating); "
        "it carries on: studiolo endpoints describe churn-api"
    ) in err
    assert Endpoint.objects.get().status == EndpointStatus.CREATING  # left as it is


def test_update_and_delete_wait_give_up_after_the_timeout(
    studio: Studio, fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _create(studio, "--wait") == 0
    fleet.roll_out = fleet.remove = _stuck
    update = ["endpoints", "update", "churn-api", "--model", "echo/1", "--wait"]
    assert main([*update, "--timeout", "1"]) == TIMED_OUT
    assert "endpoint churn-api (last status: Updating)" in capsys.readouterr().err

    Fleet.switch_config(Endpoint.objects.get().pk)  # the rollout ends after all
    assert main(["endpoints", "delete", "churn-api", "--wait", "--timeout", "1"]) == TIMED_OUT
    assert "endpoint churn-api (last status: Deleting)" in capsys.readouterr().err
    assert Endpoint.objects.get().status == EndpointStatus.DELETING


def test_wait_timeout_defaults_to_15_minutes_and_must_be_positive(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = build_parser().parse_args(["endpoints", "delete", "churn-api", "--wait"])
    assert args.timeout == 900
    argv = ["endpoints", "create", "x", "--model", "a/1", "--wait", "--timeout", "0"]
    assert main(argv) == 2
    assert "--timeout: must be at least 1" in capsys.readouterr().err


# --- invoke ------------------------------------------------------------------------------


class _Model(BaseHTTPRequestHandler):
    """A stand-in serving container: echoes what it got, or refuses a body saying 'bad'."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if body == b"bad":
            status, answer, kind = 400, b"bad CSV: could not parse 'bad'", "text/plain"
        else:
            status, kind = 200, "text/csv"
            answer = f"{self.headers['Content-Type']}|{self.headers['Accept']}|".encode() + body
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:  # quiet
        pass


@pytest.fixture
def model_server() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Model)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _serving(studio: Studio, port: int) -> None:
    assert _create(studio, "--wait") == 0
    EndpointInstance.objects.update(port=port)
    EndpointInstance.objects.filter(container_name="churn-api-2").delete()


def test_invoke_prints_the_answer_and_the_variant(
    studio: Studio, model_server: int, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _serving(studio, model_server)
    capsys.readouterr()
    argv = ["endpoints", "invoke", "churn-api", "--content-type", "text/csv"]
    assert main([*argv, "--body", "1,2,3"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "text/csv|*/*|1,2,3"
    assert captured.err.startswith("variant AllTraffic, ")
    assert captured.err.rstrip().endswith("ms, HTTP 200")

    payload = tmp_path / "rows.csv"
    payload.write_text("4,5\n6,7\n")
    assert main([*argv, "--file", str(payload), "--accept", "text/csv", "--team", "alpha"]) == 0
    assert capsys.readouterr().out == "text/csv|text/csv|4,5\n6,7\n"


def test_invoke_exits_1_with_the_error(
    studio: Studio, model_server: int, capsys: pytest.CaptureFixture[str]
) -> None:
    _serving(studio, model_server)
    capsys.readouterr()
    argv = ["endpoints", "invoke", "churn-api", "--content-type", "text/csv"]
    assert main([*argv, "--body", "bad"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "HTTP 400 from variant AllTraffic: bad CSV: could not parse 'bad'" in captured.err

    assert main(["endpoints", "invoke", "nope", "--content-type", "text/csv", "--body", "1"]) == 1
    assert "endpoint 'nope' not found" in capsys.readouterr().err
    assert main([*argv, "--file", "/no/such/file"]) == 1
    assert "--file: cannot read /no/such/file" in capsys.readouterr().err
