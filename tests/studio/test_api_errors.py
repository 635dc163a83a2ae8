"""Bad bodies get the API's own error shape, never a 500 or Django's HTML page: JSON that
is not JSON or nests too deep is a 400 naming `body`, a body over DATA_UPLOAD_MAX_MEMORY_SIZE
a 413 (in MLflow's shape on MLflow's routes), and Django's limits on query strings a 400."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from experiments.models import Experiment, Run
from experiments.services import experiment_create, run_create
from studio.accounts.models import Team
from tests.factories import make_team, make_token, make_user

DEEP_BROKEN = "[" * 100_000  # RecursionError in Python's decoder: a 500 before
DEEP_VALID = '{"name": "x", "tags": ' + '{"a": ' * 200 + "1" + "}" * 200 + "}"
TOO_BIG = json.dumps({"name": "x", "description": "a" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE)})


@pytest.fixture
def lab(db: None) -> tuple[Team, User, Run]:
    team = make_team("lab")
    user = make_user(team, role="scientist")
    experiment: Experiment = experiment_create(team=team, name="churn", actor=user)
    return team, user, run_create(experiment=experiment, name="r", actor=user)


def _rest_routes(run: Run) -> list[str]:
    return [
        "/api/v1/experiments",
        "/api/v1/runs/search",
        f"/api/v1/runs/{run.run_uuid}/batch",
        f"/api/v1/runs/{run.run_uuid}/params",
        "/api/v1/tokens",
        "/api/v1/teams/lab/model-groups",
        "/api/v1/jobs",
        "/api/v1/endpoints",
    ]


MLFLOW_ROUTES = [
    "/api/2.0/mlflow/experiments/create",
    "/api/2.0/mlflow/runs/search",
    "/api/2.0/mlflow/runs/log-batch",
    "/mlflow/lab/api/2.0/mlflow/runs/log-metric",
]


def _post(user: User, path: str, body: str) -> Any:
    client = Client(HTTP_AUTHORIZATION=f"Bearer {make_token(user)}")
    return client.post(path, body, content_type="application/json")


def _studio_error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json", response.content[:300]
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"code", "message", "field"}
    return error


def _mlflow_error(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json", response.content[:300]
    body = response.json()
    assert body["error_code"] == code, body
    return str(body["message"])


@pytest.mark.parametrize("body", [DEEP_BROKEN, DEEP_VALID, "{nope", '{"name": NaN}', "\xff"])
def test_a_body_that_is_not_plain_json_is_a_400_naming_it(
    lab: tuple[Team, User, Run], body: str
) -> None:
    _, user, run = lab
    for path in _rest_routes(run):
        error = _studio_error(_post(user, path, body), 400)
        assert error["field"] == "body", (path, error)


@pytest.mark.parametrize("body", [DEEP_BROKEN, DEEP_VALID, "{nope"])
def test_mlflow_routes_answer_malformed_request(lab: tuple[Team, User, Run], body: str) -> None:
    _, user, _ = lab
    for path in MLFLOW_ROUTES:
        _mlflow_error(_post(user, path, body), 400, "MALFORMED_REQUEST")


def test_a_body_over_the_limit_is_a_413_in_the_apis_shape(lab: tuple[Team, User, Run]) -> None:
    _, user, run = lab
    for path in _rest_routes(run):
        error = _studio_error(_post(user, path, TOO_BIG), 400 if run.run_uuid in path else 413)
        if run.run_uuid in path:  # logging routes: MLflow's 1 MB limit is checked first
            assert "at most 1000000 bytes" in error["message"]
        else:
            assert (error["code"], error["field"]) == ("too_large", "body")
    for path in MLFLOW_ROUTES:
        message = _mlflow_error(_post(user, path, TOO_BIG), 413, "INVALID_PARAMETER_VALUE")
        assert str(settings.DATA_UPLOAD_MAX_MEMORY_SIZE) in message


def test_a_form_body_over_the_limit_is_a_413_too(lab: tuple[Team, User, Run]) -> None:
    _, user, _ = lab
    client = Client(HTTP_AUTHORIZATION=f"Bearer {make_token(user)}")
    form = "name=" + "a" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    response = client.post(
        "/api/v1/experiments", form, content_type="application/x-www-form-urlencoded"
    )
    assert _studio_error(response, 413)["code"] == "too_large"


def test_mlflow_keeps_its_own_one_megabyte_batch_limit(lab: tuple[Team, User, Run]) -> None:
    _, user, run = lab
    body = json.dumps({"run_id": run.run_uuid, "params": [{"key": "k", "value": "v" * 1_100_000}]})
    message = _mlflow_error(
        _post(user, "/api/2.0/mlflow/runs/log-batch", body), 400, "INVALID_PARAMETER_VALUE"
    )
    assert "at most 1000000 bytes" in message


def test_a_query_string_of_too_many_fields_is_a_400(lab: tuple[Team, User, Run]) -> None:
    _, user, run = lab
    client = Client(HTTP_AUTHORIZATION=f"Bearer {make_token(user)}")
    query = "&".join(f"f{i}=1" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    _studio_error(client.get(f"/api/v1/experiments?{query}"), 400)
    response = client.get(f"/api/2.0/mlflow/runs/get?run_id={run.run_uuid}&{query}")
    _mlflow_error(response, 400, "MALFORMED_REQUEST")


@pytest.mark.parametrize(
    "token",
    [
        "W" * 4 + "1" * 10,  # not base64 of JSON
        base64.urlsafe_b64encode(b"[" * 100_000).decode(),
        base64.urlsafe_b64encode(b'{"offset": 100000000000000000000}').decode(),
    ],
)
def test_a_forged_page_token_is_a_400(lab: tuple[Team, User, Run], token: str) -> None:
    _, user, run = lab
    body = json.dumps({"experiment_ids": [run.experiment_id], "filter": "", "page_token": token})
    error = _studio_error(_post(user, "/api/v1/runs/search", body), 400)
    assert error["field"] == "page_token"


@pytest.fixture
def served(asgi_server: str) -> Iterator[tuple[httpx.Client, Run]]:
    team = make_team("lab")
    user = make_user(team, role="scientist")
    experiment = experiment_create(team=team, name="churn", actor=user)
    run = run_create(experiment=experiment, name="r", actor=user)
    headers = {"Authorization": f"Bearer {make_token(user)}", "Content-Type": "application/json"}
    with httpx.Client(base_url=asgi_server, headers=headers, timeout=60) as client:
        yield client, run


def test_the_server_answers_json_for_deep_and_oversized_bodies(
    served: tuple[httpx.Client, Run],
) -> None:
    client, run = served
    for path in ("/api/v1/experiments", "/api/2.0/mlflow/experiments/create"):
        deep = client.post(path, content=DEEP_BROKEN)
        assert deep.status_code == 400, deep.text[:300]
        assert deep.headers["content-type"] == "application/json"
        big = client.post(path, content=TOO_BIG)
        assert big.status_code == 413, big.text[:300]
        assert big.headers["content-type"] == "application/json"


def test_a_chunked_body_is_read_no_further_than_the_limit(
    served: tuple[httpx.Client, Run],
) -> None:
    """No Content-Length to refuse on: reading stops one byte past the limit."""
    client, _ = served

    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(40):
            yield b"a" * 100_000
        yield b'"}'

    response = client.post("/api/2.0/mlflow/experiments/create", content=chunks())
    assert response.status_code == 413, response.text[:300]
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"


@pytest.mark.parametrize(
    "path",
    ["/api/v1/experiments/-1", "/api/v1/teams/%0Ax/model-groups", "/api/v1/nothing/here"],
)
def test_a_path_no_route_takes_is_the_apis_404(lab: tuple[Team, User, Run], path: str) -> None:
    _, user, _ = lab
    response = Client(HTTP_AUTHORIZATION=f"Bearer {make_token(user)}").get(path)
    assert _studio_error(response, 404)["code"] == "not_found"  # not the UI's HTML page


def test_an_upload_without_a_body_stores_an_empty_file(lab: tuple[Team, User, Run]) -> None:
    _, user, run = lab
    client = Client(HTTP_AUTHORIZATION=f"Bearer {make_token(user)}")
    response = client.put(f"/api/v1/runs/{run.run_uuid}/artifacts/empty.txt")
    assert response.status_code == 201, response.content  # it was a 500
    assert response.json()["size"] == 0


def test_a_chunked_upload_keeps_its_bytes(served: tuple[httpx.Client, Run]) -> None:
    client, run = served

    def chunks() -> Iterator[bytes]:
        yield b"first,"
        yield b"second"

    response = client.put(f"/api/v1/runs/{run.run_uuid}/artifacts/data.csv", content=chunks())
    assert response.status_code == 201, response.text
    assert response.json()["size"] == len(b"first,second")


HUGE = str(2**70)  # past a signed 64-bit column: SQLite cannot bind it, bigint overflows


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/runs/{run}/metric-history?key=loss&step_max=" + HUGE, "step_max"),
        ("/api/v1/runs/{run}/metric-history?key=loss&step_min=-" + HUGE, "step_min"),
        ("/api/v1/runs/{run}/metric-history?key=loss&limit=" + HUGE, "limit"),
    ],
)
def test_a_number_past_64_bits_is_a_400_naming_its_field(
    lab: tuple[Team, User, Run], path: str, field: str
) -> None:
    _, user, run = lab
    client = Client(HTTP_AUTHORIZATION=f"Bearer {make_token(user)}")
    response = client.get(path.format(run=run.run_uuid))
    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field


def test_an_id_past_64_bits_in_a_path_is_a_404(lab: tuple[Team, User, Run]) -> None:
    _, user, _ = lab
    client = Client(HTTP_AUTHORIZATION=f"Bearer {make_token(user)}")
    for path in (f"/api/v1/jobs/{HUGE}", f"/api/v1/endpoints/{HUGE}"):
        response = client.get(path)
        assert response.status_code == 404, (path, response.content)
        assert "error" in response.json()


def test_a_bug_in_a_view_is_a_json_500_with_an_incident_id(
    lab: tuple[Team, User, Run], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _, user, _ = lab

    def broken(user: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr("studio.accounts.selectors.memberships_for_user", broken)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {make_token(user)}", raise_request_exception=False)
    response = client.get("/api/v1/me")
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "internal_error"
    incident = error["message"].split("incident ")[1].split(")")[0]
    assert any(incident in record.getMessage() and record.exc_info for record in caplog.records)
    assert "a bug" not in error["message"]
