"""The client's submission retries (`ApiClient.create_once`): the policy alone, against a
scripted transport (the end-to-end case, a studio whose Redis restarts under a `studiolo
train`, is in tests/faults/test_redis_restart.py)."""

from __future__ import annotations

import httpx
import pytest

from studio.cli.client import ApiClient
from studio.cli.common import CliError

CREATED = httpx.Response(201, json={"id": 7, "name": "nightly"})


def scripted(*answers: httpx.Response | Exception) -> tuple[ApiClient, list[httpx.Request]]:
    sent: list[httpx.Request] = []
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return ApiClient("http://studio.test", "t0ken", transport=httpx.MockTransport(handle)), sent


def test_a_submission_is_retried_with_one_key_until_the_studio_takes_it() -> None:
    client, sent = scripted(
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("no answer"),  # it may have arrived: the key makes that safe
        httpx.Response(503, json={"error": {"code": "unavailable", "message": "restarting"}}),
        CREATED,
    )

    job = client.create_once("/api/v1/jobs", {"name": "nightly"}, delays=(0, 0, 0, 0))

    assert job == {"id": 7, "name": "nightly"}
    keys = {request.headers["Idempotency-Key"] for request in sent}
    assert len(sent) == 4
    assert len(keys) == 1
    assert len(keys.pop()) == 36  # a UUID


def test_a_refusal_is_not_retried() -> None:
    client, sent = scripted(
        httpx.Response(400, json={"error": {"message": "name: a job named 'x' exists already"}})
    )

    with pytest.raises(CliError, match="exists already"):
        client.create_once("/api/v1/jobs", {"name": "x"}, delays=(0, 0))
    assert len(sent) == 1


def test_it_gives_up_after_the_last_delay_naming_why() -> None:
    client, sent = scripted(*(httpx.ConnectError("connection refused") for _ in range(3)))

    with pytest.raises(CliError, match="cannot reach the studio"):
        client.create_once("/api/v1/jobs", {"name": "x"}, delays=(0, 0))
    assert len(sent) == 3


def test_each_submission_has_a_key_of_its_own() -> None:
    client, sent = scripted(CREATED, CREATED)

    client.create_once("/api/v1/jobs", {"name": "a"}, delays=())
    client.create_once("/api/v1/jobs", {"name": "b"}, delays=())

    assert sent[0].headers["Idempotency-Key"] != sent[1].headers["Idempotency-Key"]
