"""The data plane, end to end: uvicorn serving studio.asgi in front of real toolkit `serve`
processes. Endpoint rows are written directly (the fleet that normally writes them is not
under test here), pointing at those servers."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import psutil
import pytest
from botocore.config import Config as BotoConfig
from django.contrib.auth.models import User
from django.test import override_settings

import endpoints.gateway
from endpoints.gateway import MAX_PAYLOAD_BYTES, ROUTING_TTL_SECONDS
from endpoints.models import (
    Endpoint,
    EndpointConfig,
    EndpointInstance,
    EndpointStatus,
    InstanceStatus,
    InvocationStat,
    ProductionVariant,
    ServingModel,
)
from studio.accounts import services
from studio.accounts.models import Team
from tests.factories import make_team, make_token, make_user
from tests.support import free_port

pytestmark = pytest.mark.django_db(transaction=True)

TOOLKIT_SRC = Path(__file__).resolve().parents[2] / "containers" / "toolkit" / "src"

# Answers which server it is; sleeps, fails or echoes headers on request.
INFERENCE = """
import json
import os
import time

from studiolo_toolkit.handlers import BaseInferenceToolkitError, UnsupportedContentTypeError


def model_fn(model_dir):
    return os.environ["UPSTREAM_NAME"]


def input_fn(body, content_type, context):
    if content_type != "application/json":
        raise UnsupportedContentTypeError(content_type)
    return json.loads(body or b"{}")


def predict_fn(data, name, context):
    if "sleep" in data:
        time.sleep(data["sleep"])
    if "fail" in data:
        raise BaseInferenceToolkitError(400, data["fail"], "BadInput")
    if context.custom_attributes is not None:
        context.response_custom_attributes = "seen:" + context.custom_attributes
    headers = {k.lower(): v for k, v in context.request_headers.items()}
    return {
        "upstream": name,
        "echo": data,
        "inference_id": headers.get("x-amzn-sagemaker-inference-id"),
        "accept": headers.get("accept"),
    }


def output_fn(prediction, accept):
    return json.dumps(prediction), "application/json"
"""


class Upstream:
    """`python -m studiolo_toolkit.serving` in its own process group (so that killing it
    kills its worker too, as stopping a container does)."""

    def __init__(self, base: Path, name: str) -> None:
        self.name = name
        self.port = free_port()
        root = base / name
        (root / "model" / "code").mkdir(parents=True)
        (root / "model" / "code" / "inference.py").write_text(textwrap.dedent(INFERENCE))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGEMAKER_", "SM_"))}
        env.update(
            PYTHONPATH=str(TOOLKIT_SRC),
            SAGEMAKER_BASE_DIR=str(root),
            SAGEMAKER_BIND_TO_PORT=str(self.port),
            SAGEMAKER_MODEL_SERVER_WORKERS="1",
            UPSTREAM_NAME=name,
        )
        self.log = root / "serve.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "studiolo_toolkit.serving"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"serve {self.name} exited:\n{self.log.read_text()}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/ping")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        pytest.fail(f"serve {self.name} did not answer /ping:\n{self.log.read_text()}")

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


def start_upstreams(base: Path, *names: str) -> list[Upstream]:
    upstreams = [Upstream(base, name) for name in names]
    for upstream in upstreams:
        upstream.wait_ready()
    return upstreams


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Upstream]]:
    started = start_upstreams(tmp_path_factory.mktemp("upstreams"), "a1", "a2", "b1")
    yield {upstream.name: upstream for upstream in started}
    for upstream in started:
        upstream.kill()


@pytest.fixture(autouse=True)
def _fresh_gateway() -> Iterator[None]:
    # Caches, instance marks and counters are per process; a test starts from nothing.
    endpoints.gateway.reset()
    yield
    endpoints.gateway.reset()


# --- data --------------------------------------------------------------------------------


def make_endpoint(
    team: Team,
    name: str,
    variants: dict[str, tuple[float, list[Upstream]]],
    *,
    status: str = EndpointStatus.IN_SERVICE,
    instance_status: str = InstanceStatus.HEALTHY,
) -> Endpoint:
    config = make_config(team, variants)
    endpoint = Endpoint.objects.create(team=team, name=name, config=config, status=status)
    add_instances(endpoint, config, variants, instance_status)
    return endpoint


def make_config(team: Team, variants: dict[str, tuple[float, list[Upstream]]]) -> EndpointConfig:
    count = EndpointConfig.objects.count()
    model = ServingModel.objects.create(
        team=team, name=f"model-{count}", image="studiolo/sklearn", artifact_uri="file:///m"
    )
    config = EndpointConfig.objects.create(team=team, name=f"config-{count}")
    for variant, (weight, servers) in variants.items():
        ProductionVariant.objects.create(
            config=config,
            name=variant,
            model=model,
            instance_type="ml.local.small",
            instance_count=max(1, len(servers)),
            initial_weight=weight,
        )
    return config


def add_instances(
    endpoint: Endpoint,
    config: EndpointConfig,
    variants: dict[str, tuple[float, list[Upstream]]],
    status: str = InstanceStatus.HEALTHY,
) -> None:
    for variant, (_, servers) in variants.items():
        for server in servers:
            EndpointInstance.objects.create(
                endpoint=endpoint,
                config=config,
                variant_name=variant,
                port=server.port,
                status=status,
            )


def member(team: Team, role: str = "scientist") -> tuple[User, str]:
    user = make_user(team, role=role)
    return user, make_token(user)


# --- client ------------------------------------------------------------------------------


class Client:
    """One kept-alive connection to the studio, as SDKs use."""

    def __init__(self, base_url: str, token: str | None) -> None:
        parts = urlsplit(base_url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        self.token = token

    def invoke(
        self,
        name: str,
        payload: Any = None,
        *,
        method: str = "POST",
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> tuple[int, Any, http.client.HTTPResponse]:
        sent = {"Content-Type": "application/json"}
        if self.token is not None:
            sent["Authorization"] = f"Bearer {self.token}"
        sent.update(headers or {})
        if body is None:
            body = json.dumps(payload if payload is not None else {}).encode()
        self.connection.request(method, f"/endpoints/{name}/invocations", body=body, headers=sent)
        response = self.connection.getresponse()
        raw = response.read()
        try:
            decoded: Any = json.loads(raw)
        except ValueError:
            decoded = raw
        return response.status, decoded, response


def error_of(body: Any) -> dict[str, Any]:
    assert set(body) == {"error", "message"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "field"}, error
    assert body["message"] == error["message"]  # where AWS SDKs read it
    return error


def error_type(response: http.client.HTTPResponse) -> str | None:
    """The code an AWS SDK reads from an error answer."""
    return response.getheader("x-amzn-ErrorType")


# --- answers -----------------------------------------------------------------------------


def test_invocation_returns_the_models_answer_and_the_variant(
    asgi_server: str, upstreams: dict[str, Upstream]
) -> None:
    team = make_team()
    _, token = member(team)
    make_endpoint(team, "churn", {"main": (1.0, [upstreams["a1"]])})

    status, body, response = Client(asgi_server, token).invoke(
        "churn",
        {"rows": [1, 2]},
        headers={"Accept": "application/json", "X-Amzn-SageMaker-Inference-Id": "req-7"},
    )

    assert status == 200, body
    assert body == {
        "upstream": "a1",
        "echo": {"rows": [1, 2]},
        "inference_id": "req-7",
        "accept": "application/json",
    }
    assert response.getheader("Content-Type") == "application/json"
    assert response.getheader("x-Amzn-Invoked-Production-Variant") == "main"
    assert error_type(response) is None


def test_custom_attributes_go_to_the_model_and_come_back(
    asgi_server: str, upstreams: dict[str, Upstream]
) -> None:
    team = make_team()
    _, token = member(team)
    make_endpoint(team, "attrs", {"main": (1.0, [upstreams["a1"]])})

    status, _, response = Client(asgi_server, token).invoke(
        "attrs", {}, headers={"X-Amzn-SageMaker-Custom-Attributes": "trace=abc,1"}
    )

    assert status == 200
    assert response.getheader("X-Amzn-SageMaker-Custom-Attributes") == "seen:trace=abc,1"


def test_model_errors_pass_through_with_their_message(
    asgi_server: str, upstreams: dict[str, Upstream]
) -> None:
    team = make_team()
    _, token = member(team)
    make_endpoint(team, "strict", {"main": (1.0, [upstreams["a1"]])})
    client = Client(asgi_server, token)

    status, body, response = client.invoke("strict", {"fail": "feature 'age' is missing"})
    assert status == 400
    assert body["error-message"] == "feature 'age' is missing"
    assert response.getheader("x-Amzn-Invoked-Production-Variant") == "main"
    assert error_type(response) == "ModelError"  # as SageMaker marks a model's refusal

    status, body, response = client.invoke(
        "strict", body=b"a,b", headers={"Content-Type": "text/csv"}
    )
    assert status == 415
    assert "text/csv" in body["error-message"]
    assert set(body) != {"error"}  # the model's own body, not rewritten into the studio's
    assert error_type(response) == "ModelError"


# --- who may call ------------------------------------------------------------------------


def test_requests_without_a_valid_token_are_refused(
    asgi_server: str, upstreams: dict[str, Upstream]
) -> None:
    team = make_team()
    user, token = member(team)
    make_endpoint(team, "private", {"main": (1.0, [upstreams["a1"]])})
    revoked_token, revoked_secret = services.token_create(user=user, name="old")
    services.token_revoke(token=revoked_token, actor=user)

    for secret in (None, "stl_not-a-real-token", revoked_secret):
        status, body, response = Client(asgi_server, secret).invoke("private", {})
        assert status == 401, secret
        assert error_of(body)["code"] == "not_authenticated"
        assert response.getheader("WWW-Authenticate") == "Bearer"
        assert error_type(response) == (
            "MissingAuthenticationTokenException"
            if secret is None
            else "UnrecognizedClientException"
        )


def test_member_whose_role_may_not_invoke_gets_403(
    asgi_server: str, upstreams: dict[str, Upstream]
) -> None:
    team = make_team()
    _, token = member(team, role="viewer")
    make_endpoint(team, "guarded", {"main": (1.0, [upstreams["a1"]])})

    status, body, response = Client(asgi_server, token).invoke("guarded", {})

    assert status == 403
    assert error_of(body)["code"] == "permission_denied"
    assert error_type(response) == "AccessDeniedException"
    assert "viewer" in body["error"]["message"]


def test_another_teams_endpoint_looks_like_a_missing_one(
    asgi_server: str, upstreams: dict[str, Upstream]
) -> None:
    ours, theirs = make_team(), make_team()
    _, token = member(ours)
    make_endpoint(theirs, "secret-model", {"main": (1.0, [upstreams["a1"]])})
    client = Client(asgi_server, token)

    status, body, response = client.invoke("secret-model", {})
    missing_status, missing, missing_response = client.invoke("no-such-model", {})

    assert (status, missing_status) == (404, 404)
    # SageMaker's code for an unknown endpoint, the same for both
    assert error_type(response) == error_type(missing_response) == "ValidationError"
    assert error_of(body)["code"] == "not_found"
    assert body["error"]["message"] == "endpoint 'secret-model' not found"
    assert missing["error"]["message"] == "endpoint 'no-such-model' not found"
    assert client.invoke("x" * 200, {})[0] == 404


def test_a_name_in_several_of_my_teams_needs_the_team_header(
    asgi_server: str, upstreams: dict[str, Upstream]
) -> None:
    red, blue = make_team("red"), make_team("blue")
    user, token = member(red)
    services.membership_set(team=blue, user=user, role="scientist")
    make_endpoint(red, "shared", {"main": (1.0, [upstreams["a1"]])})
    make_endpoint(blue, "shared", {"main": (1.0, [upstreams["b1"]])})
    client = Client(asgi_server, token)

    status, body, response = client.invoke("shared", {})
    assert status == 400
    assert error_of(body)["field"] == "X-Studiolo-Team"
    assert error_type(response) == "ValidationError"
    assert "blue, red" in body["error"]["message"]

    status, body, _ = client.invoke("shared", {}, headers={"X-Studiolo-Team": "blue"})
    assert (status, body["upstream"]) == (200, "b1")
    status, body, _ = client.invoke("shared", {}, headers={"X-Studiolo-Team": "red"})
    assert (status, body["upstream"]) == (200, "a1")


# --- what is refused before the model ----------------------------------------------------


def test_only_post_is_allowed(asgi_server: str, upstreams: dict[str, Upstream]) -> None:
    team = make_team()
    _, token = member(team)
    make_endpoint(team, "posts", {"main": (1.0, [upstreams["a1"]])})

    status, body, response = Client(asgi_server, token).invoke("posts", method="GET", body=b"")

    assert status == 405
    assert error_of(body)["code"] == "method_not_allowed"
    assert response.getheader("Allow") == "POST"
    assert error_type(response) == "UnknownOperationException"


def test_ui_pages_under_endpoints_still_reach_django(asgi_server: str) -> None:
    client = Client(asgi_server, None)
    for path in ("/endpoints/", "/endpoints/churn/", "/endpoints/churn/invocations/"):
        client.connection.request("GET", path)
        response = client.connection.getresponse()
        response.read()
        # Django answers (a login redirect or its 404 page), never the data plane's 405.
        assert response.status in (302, 404), path
        assert response.getheader("Content-Type").startswith("text/html"), path


def test_bodies_over_6_mib_are_refused(asgi_server: str, upstreams: dict[str, Upstream]) -> None:
    team = make_team()
    _, token = member(team)
    make_endpoint(team, "big", {"main": (1.0, [upstreams["a1"]])})

    # Announced by Content-Length: refused before the body is read.
    parts = urlsplit(asgi_server)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.putrequest("POST", "/endpoints/big/invocations")
    connection.putheader("Authorization", f"Bearer {token}")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(MAX_PAYLOAD_BYTES + 1))
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413
    assert error_of(json.loads(response.read()))["code"] == "payload_too_large"
    assert error_type(response) == "ValidationError"
    connection.close()

    # Chunked, no length announced: refused once reading passes the limit.
    chunk = b" " * (1024 * 1024)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.request(
        "POST",
        "/endpoints/big/invocations",
        body=iter([chunk] * 6 + [b" " * 1024]),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        encode_chunked=True,
    )
    response = connection.getresponse()
    assert response.status == 413
    connection.close()

    # Exactly the limit is fine.
    status, body, _ = Client(asgi_server, token).invoke(
        "big", body=b"{}" + b" " * (MAX_PAYLOAD_BYTES - 2)
    )
    assert (status, body["upstream"]) == (200, "a1")


def test_unknown_target_variant_is_refused_and_a_known_one_is_used(
    asgi_server: str, upstreams: dict[str, Upstream]
) -> None:
    team = make_team()
    _, token = member(team)
    make_endpoint(team, "ab", {"blue": (1.0, [upstreams["a1"]]), "green": (0.0, [upstreams["b1"]])})
    client = Client(asgi_server, token)

    status, body, response = client.invoke(
        "ab", {}, headers={"X-Amzn-SageMaker-Target-Variant": "purple"}
    )
    assert status == 400
    assert error_type(response) == "ValidationError"
    assert error_of(body)["field"] == "X-Amzn-SageMaker-Target-Variant"
    assert "blue, green" in body["error"]["message"]

    # Weight 0 gets no traffic of its own, but can be targeted.
    status, body, response = client.invoke(
        "ab", {}, headers={"X-Amzn-SageMaker-Target-Variant": "green"}
    )
    assert (status, body["upstream"]) == (200, "b1")
    assert response.getheader("x-Amzn-Invoked-Production-Variant") == "green"


def test_endpoint_that_is_not_in_service_is_refused(
    asgi_server: str, upstreams: dict[str, Upstream]
) -> None:
    team = make_team()
    _, token = member(team)
    make_endpoint(team, "new", {"main": (1.0, [upstreams["a1"]])}, status=EndpointStatus.CREATING)

    status, body, response = Client(asgi_server, token).invoke("new", {})

    assert status == 400
    assert error_of(body)["message"] == "endpoint 'new' is Creating, not InService"
    assert error_type(response) == "ValidationError"


def test_no_healthy_instance_gives_503(asgi_server: str, upstreams: dict[str, Upstream]) -> None:
    team = make_team()
    _, token = member(team)
    make_endpoint(
        team,
        "starting",
        {"main": (1.0, [upstreams["a1"]])},
        instance_status=InstanceStatus.STARTING,
    )

    status, body, response = Client(asgi_server, token).invoke("starting", {})

    assert status == 503
    assert error_of(body)["code"] == "unavailable"
    assert error_type(response) == "ServiceUnavailable"
    assert "no healthy instance" in body["error"]["message"]


def test_a_slow_model_gets_504_after_the_invocation_timeout(
    asgi_server: str, upstreams: dict[str, Upstream]
) -> None:
    team = make_team()
    _, token = member(team)
    make_endpoint(team, "slow", {"main": (1.0, [upstreams["a2"]])})
    client = Client(asgi_server, token)

    with override_settings(ENDPOINT_INVOCATION_TIMEOUT_SECONDS=0.3):
        started = time.monotonic()
        status, body, response = client.invoke("slow", {"sleep": 2})
        elapsed = time.monotonic() - started

    assert status == 504
    assert error_of(body)["code"] == "timeout"
    assert error_type(response) == "ModelError"  # SageMaker: "invocation timed out"
    assert "0.3 s" in body["error"]["message"]
    assert elapsed < 1.5  # not retried elsewhere, not waited out
    status, body, _ = client.invoke("slow", {})
    assert status == 200


# --- where requests go -------------------------------------------------------------------


def test_sequential_requests_alternate_between_instances(
    asgi_server: str, upstreams: dict[str, Upstream]
) -> None:
    team = make_team()
    _, token = member(team)
    make_endpoint(team, "spread", {"main": (1.0, [upstreams["a1"], upstreams["a2"]])})
    client = Client(asgi_server, token)

    seen = Counter(client.invoke("spread", {})[1]["upstream"] for _ in range(20))

    assert seen == {"a1": 10, "a2": 10}


def test_concurrent_requests_spread_over_instances(
    asgi_server: str, upstreams: dict[str, Upstream]
) -> None:
    team = make_team()
    _, token = member(team)
    make_endpoint(team, "busy", {"main": (1.0, [upstreams["a1"], upstreams["a2"]])})
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def caller() -> None:
        client = Client(asgi_server, token)
        for _ in range(10):
            status, body, _ = client.invoke("busy", {"sleep": 0.01})
            assert status == 200
            with lock:
                seen[body["upstream"]] += 1

    threads = [threading.Thread(target=caller) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(seen.values()) == 60
    assert min(seen["a1"], seen["a2"]) >= 20, seen


def test_variant_weights_are_respected(asgi_server: str, upstreams: dict[str, Upstream]) -> None:
    team = make_team()
    _, token = member(team)
    make_endpoint(
        team,
        "weighted",
        {"big": (3.0, [upstreams["a1"], upstreams["a2"]]), "small": (1.0, [upstreams["b1"]])},
    )
    client = Client(asgi_server, token)

    variants = Counter(
        client.invoke("weighted", {})[2].getheader("x-Amzn-Invoked-Production-Variant")
        for _ in range(400)
    )

    # Expected 100 of 400 (sd ~8.7): five standard deviations either way.
    assert 55 <= variants["small"] <= 145, variants
    assert variants["big"] + variants["small"] == 400


def test_requests_leave_the_old_config_within_the_routing_ttl(
    asgi_server: str, upstreams: dict[str, Upstream]
) -> None:
    team = make_team()
    _, token = member(team)
    endpoint = make_endpoint(team, "rolling", {"main": (1.0, [upstreams["a1"]])})
    client = Client(asgi_server, token)
    assert client.invoke("rolling", {})[1]["upstream"] == "a1"

    # What an update does: new instances come up, then the endpoint switches config; the
    # old instance is still healthy (it keeps serving a few seconds for in-flight requests).
    new_variants = {"main": (1.0, [upstreams["b1"]])}
    config = make_config(team, new_variants)
    add_instances(endpoint, config, new_variants)
    Endpoint.objects.filter(pk=endpoint.pk).update(config=config, status=EndpointStatus.IN_SERVICE)
    switched = time.monotonic()
    time.sleep(ROUTING_TTL_SECONDS + 0.1)

    answers = {client.invoke("rolling", {})[1]["upstream"] for _ in range(10)}
    assert answers == {"b1"}, f"still on the old config {time.monotonic() - switched:.2f} s later"


def test_connections_to_instances_are_kept_alive(
    asgi_server: str, tmp_path: Path, upstreams: dict[str, Upstream]
) -> None:
    (own,) = start_upstreams(tmp_path, "own")
    team = make_team()
    _, token = member(team)
    make_endpoint(team, "pooled", {"main": (1.0, [own])})
    client = Client(asgi_server, token)
    try:
        for _ in range(30):
            assert client.invoke("pooled", {})[0] == 200

        # One connection reused, rather than 30 opened and left in TIME_WAIT (the one other
        # allowed is the readiness probe's).
        to_instance = [
            c for c in psutil.net_connections("tcp4") if c.raddr and c.raddr.port == own.port
        ]
        assert len(to_instance) <= 2, to_instance
        assert [c.status for c in to_instance].count(psutil.CONN_ESTABLISHED) == 1
    finally:
        own.kill()


def test_a_killed_instance_costs_no_failed_request(
    asgi_server: str, tmp_path: Path, upstreams: dict[str, Upstream]
) -> None:
    doomed, survivor = start_upstreams(tmp_path, "doomed", "survivor")
    team = make_team()
    _, token = member(team)
    make_endpoint(team, "resilient", {"main": (1.0, [doomed, survivor])})
    client = Client(asgi_server, token)
    try:
        # Both instances get used, so the gateway holds kept-alive connections to both.
        assert {client.invoke("resilient", {})[1]["upstream"] for _ in range(4)} == {
            "doomed",
            "survivor",
        }
        doomed.kill()

        results = [client.invoke("resilient", {}) for _ in range(20)]

        assert [status for status, _, _ in results] == [200] * 20
        assert {body["upstream"] for _, body, _ in results} == {"survivor"}
    finally:
        doomed.kill()
        survivor.kill()


def test_all_instances_down_gives_503_after_trying_them(
    asgi_server: str, tmp_path: Path, upstreams: dict[str, Upstream]
) -> None:
    first, second = start_upstreams(tmp_path, "first", "second")
    team = make_team()
    _, token = member(team)
    make_endpoint(team, "dead", {"main": (1.0, [first, second])})
    first.kill()
    second.kill()

    status, body, response = Client(asgi_server, token).invoke("dead", {})

    assert status == 503
    assert "no instance accepted the request" in error_of(body)["message"]
    assert error_type(response) == "ServiceUnavailable"


class _Garbage:
    """A stand-in container that answers every request with something that is not HTTP
    (it stands in for an Upstream: only `port` is read)."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return  # closed
            with connection:
                connection.recv(65536)
                connection.sendall(b"NOT HTTP AT ALL\r\n\r\n")

    def close(self) -> None:
        self.server.close()
        self.thread.join(5)


def test_a_container_answering_invalid_http_gives_502_model_error(asgi_server: str) -> None:
    garbage = _Garbage()
    team = make_team()
    _, token = member(team)
    make_endpoint(team, "broken", {"main": (1.0, [garbage])})
    try:
        status, body, response = Client(asgi_server, token).invoke("broken", {})
    finally:
        garbage.close()

    assert status == 502
    assert error_of(body)["code"] == "bad_gateway"
    assert error_type(response) == "ModelError"


def test_a_bug_in_the_data_plane_gives_500_internal_failure(
    asgi_server: str, upstreams: dict[str, Upstream], monkeypatch: pytest.MonkeyPatch
) -> None:
    team = make_team()
    _, token = member(team)
    make_endpoint(team, "buggy", {"main": (1.0, [upstreams["a1"]])})

    def broken(raw: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("endpoints.gateway.app._parse_headers", broken)
    status, body, response = Client(asgi_server, token).invoke("buggy", {})

    assert status == 500
    assert error_of(body)["code"] == "error"
    assert error_type(response) == "InternalFailure"


# --- boto3 -------------------------------------------------------------------------------


def sagemaker_runtime(base_url: str, token: str) -> Any:
    """boto3's sagemaker-runtime client pointed at the studio, its SigV4 signature swapped
    for the bearer token just before sending (the data plane takes bearer tokens only)."""
    client = boto3.client(
        "sagemaker-runtime",
        endpoint_url=base_url,
        region_name="us-east-1",
        aws_access_key_id="unused",
        aws_secret_access_key="unused",
        config=BotoConfig(retries={"total_max_attempts": 1}),
    )

    def bearer(request: Any, **_: Any) -> None:
        request.headers["Authorization"] = f"Bearer {token}"

    client.meta.events.register("before-send.sagemaker-runtime.InvokeEndpoint", bearer)
    return client


def test_boto3_raises_the_exceptions_sagemaker_would(
    asgi_server: str, upstreams: dict[str, Upstream]
) -> None:
    team = make_team()
    _, token = member(team)
    make_endpoint(team, "served", {"main": (1.0, [upstreams["a1"]])})
    make_endpoint(team, "new", {"main": (1.0, [upstreams["a1"]])}, status=EndpointStatus.CREATING)
    make_endpoint(
        team, "idle", {"main": (1.0, [upstreams["a1"]])}, instance_status=InstanceStatus.STARTING
    )
    runtime = sagemaker_runtime(asgi_server, token)

    def invoke(name: str, payload: Any) -> Any:
        return runtime.invoke_endpoint(
            EndpointName=name, ContentType="application/json", Body=json.dumps(payload)
        )

    answer = invoke("served", {"x": 1})
    assert answer["InvokedProductionVariant"] == "main"
    assert json.loads(answer["Body"].read())["echo"] == {"x": 1}

    with pytest.raises(runtime.exceptions.ModelError) as model_error:
        invoke("served", {"fail": "bad row"})
    assert model_error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(runtime.exceptions.ValidationError) as not_ready:
        invoke("new", {})
    assert "endpoint 'new' is Creating, not InService" in str(not_ready.value)
    with pytest.raises(runtime.exceptions.ValidationError) as missing:
        invoke("no-such-endpoint", {})
    assert missing.value.response["Error"]["Message"] == "endpoint 'no-such-endpoint' not found"
    with pytest.raises(runtime.exceptions.ServiceUnavailable):
        invoke("idle", {})


# --- statistics --------------------------------------------------------------------------


def test_invocations_are_counted_per_variant_after_a_flush(
    asgi_server: str, upstreams: dict[str, Upstream]
) -> None:
    team = make_team()
    _, token = member(team)
    endpoint = make_endpoint(team, "counted", {"main": (1.0, [upstreams["a1"]])})
    empty = make_endpoint(
        team,
        "empty",
        {"main": (1.0, [upstreams["a1"]])},
        instance_status=InstanceStatus.STARTING,
    )
    client = Client(asgi_server, token)
    for _ in range(3):
        assert client.invoke("counted", {})[0] == 200
    assert client.invoke("counted", {"fail": "no"})[0] == 400
    assert client.invoke("empty", {})[0] == 503

    expected = {
        (endpoint.pk, "main"): (4, 1, 0),
        (empty.pk, ""): (1, 0, 1),  # answered by the gateway before any variant was chosen
    }
    totals: dict[tuple[int, str], tuple[int, int, int]] = {}
    deadline = time.monotonic() + 5
    while totals != expected and time.monotonic() < deadline:
        # The server records a request just after answering it: allow it a moment.
        endpoints.gateway.flush_now()
        totals = {}
        for row in InvocationStat.objects.all():
            count, e4, e5 = totals.get((row.endpoint_id, row.variant_name), (0, 0, 0))
            totals[(row.endpoint_id, row.variant_name)] = (
                count + row.count,
                e4 + row.errors_4xx,
                e5 + row.errors_5xx,
            )
        time.sleep(0.05)
    assert totals == expected

    rows = InvocationStat.objects.filter(endpoint=endpoint)
    assert sum(sum(row.latency_histogram.values()) for row in rows) == 4
    assert all(row.bucket_start.timestamp() % 10 == 0 for row in rows)
    assert all(0 < row.latency_max_ms <= row.latency_sum_ms for row in rows)


def test_keep_alive_answers_do_not_wait_for_nagle(
    asgi_server: str, upstreams: dict[str, Upstream]
) -> None:
    """uvicorn writes the head and the body of an answer separately; without TCP_NODELAY on
    the accepted socket each kept-alive answer after the first waits ~40 ms for a delayed ACK
    (DESIGN.md, uvicorn #3149)."""
    team = make_team()
    _, token = member(team)
    make_endpoint(team, "quick", {"main": (1.0, [upstreams["a1"]])})
    client = Client(asgi_server, token)
    client.invoke("quick", {})

    timings = []
    for _ in range(15):
        started = time.perf_counter()
        client.invoke("quick", {})
        timings.append(time.perf_counter() - started)

    assert sorted(timings)[len(timings) // 2] < 0.02, timings
