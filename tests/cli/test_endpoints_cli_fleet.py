"""`studiolo endpoints ...` end to end with the real fleet: a Celery worker starts, updates and
removes real serving containers on the Docker engine while the CLI waits on them. (The other
CLI tests, in test_endpoints_cli.py, script the fleet to pin down every message and exit code.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

import endpoints.gateway
from compute.labels import LABEL_INSTANCE, ROLE_ENDPOINT, engine_name, instance_label
from compute.runtime import get_runtime
from endpoints.gateway import ROUTING_TTL_SECONDS
from endpoints.models import Endpoint
from studio.cli.main import main
from tests.endpoints.conftest import approved_package
from tests.factories import make_team, make_token, make_user
from tests.workers import Worker

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_gateway() -> Iterator[None]:
    endpoints.gateway.reset()  # the data plane caches tokens and routes per process
    yield
    endpoints.gateway.reset()  # and flushes statistics in a thread: stopped before teardown


@pytest.mark.parametrize("runtime_name", ["docker"], indirect=True)
def test_create_invoke_update_delete_with_real_containers(
    asgi_server: str,
    worker: Worker,
    use_runtime: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    settings: Any,
) -> None:
    monkeypatch.setattr("studio.cli.endpoints.POLL_SECONDS", 0.2)
    team = make_team("fleet")
    scientist = make_user(team, role="scientist")
    approver = make_user(team, role="approver")
    approved_package(team, scientist, approver, tag="v1")
    approved_package(team, scientist, approver, tag="v2")
    monkeypatch.setenv("STUDIOLO_URL", asgi_server)
    monkeypatch.setenv("STUDIOLO_TOKEN", make_token(scientist))

    create = ["endpoints", "create", "churn", "--model", "echo/1", "--instances", "2"]
    assert main([*create, "--wait", "--timeout", "120"]) == 0
    err = capsys.readouterr().err
    assert "Endpoint churn: InService (2/2 instances healthy)" in err

    assert (
        main(["endpoints", "invoke", "churn", "--content-type", "text/csv", "--body", "1,2"]) == 0
    )
    out, err = capsys.readouterr()
    # the model's tag, the instance (its container's name), the sum
    assert out.startswith(f"v1:{engine_name(ROLE_ENDPOINT)}-")
    assert out.strip().endswith(":3")
    assert "AllTraffic" in err

    update = ["endpoints", "update", "churn", "--model", "echo/2", "--instances", "1"]
    assert main([*update, "--wait", "--timeout", "120"]) == 0
    capsys.readouterr()
    # Requests leave the old config within the data plane's routing TTL (1 s) of the switch.
    time.sleep(ROUTING_TTL_SECONDS + 0.2)
    for _ in range(5):
        assert (
            main(["endpoints", "invoke", "churn", "--content-type", "text/csv", "--body", "4"]) == 0
        )
        assert capsys.readouterr().out.startswith("v2:")

    endpoint_id = Endpoint.objects.get(name="churn").pk
    assert main(["endpoints", "delete", "churn", "--wait", "--timeout", "120"]) == 0
    assert not Endpoint.objects.filter(pk=endpoint_id).exists()
    assert not get_runtime().find(
        {"io.studiolo.endpoint-id": str(endpoint_id), LABEL_INSTANCE: instance_label()}
    )
