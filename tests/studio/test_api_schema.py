"""The OpenAPI schema: generated without a single drf-spectacular warning or error, valid
OpenAPI, and every serializer a component of its own (no two views' `InputSerializer`
collapsed into one `Input`)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
from django.core.management import call_command
from drf_spectacular.drainage import GENERATOR_STATS

from tests.studio.conftest import ApiLab, served_schema


def test_the_schema_generates_without_warnings_and_validates(tmp_path: Path) -> None:
    GENERATOR_STATS.reset()  # what other tests' schema requests left behind
    out = tmp_path / "schema.json"
    # Raises SchemaGenerationError on any warning or error, and on invalid OpenAPI.
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", "--file", out
    )
    components = json.loads(out.read_text())["components"]["schemas"]
    # A view's nested serializers are named after the view...
    assert {"EndpointListInput", "ConfigListInput", "JobListInput", "TokenListInput"} <= set(
        components
    )
    assert "Input" not in components
    assert "Output" not in components
    # ...and module-level ones that share a class name say whose they are.
    assert {"JobTransition", "PackageTransition"} <= set(components)
    assert "Transition" not in components
    # The traffic route describes its answer (it returned an untyped body before).
    assert set(components["Traffic"]["properties"]) == {
        "since",
        "bucket_seconds",
        "totals",
        "variants",
    }


# Requests whose answers must match the schema: every list (paged ones with `next`,
# `previous`, `results`; whole ones with `results`), a creation (201), deletions that
# answer the object, and errors in the API's shape (400, 404, 413).
REAL_REQUESTS = [
    ("GET", "/api/v1/experiments", None, 200),
    ("GET", "/api/v1/jobs", None, 200),
    ("GET", "/api/v1/models", None, 200),
    ("GET", "/api/v1/endpoint-configs", None, 200),
    ("GET", "/api/v1/endpoints", None, 200),
    ("GET", "/api/v1/audit", None, 200),
    ("GET", "/api/v1/teams/lab/model-groups", None, 200),
    ("GET", "/api/v1/teams/lab/webhooks/{webhook_id}/deliveries", None, 200),
    ("GET", "/api/v1/teams/lab/webhooks", None, 200),
    ("GET", "/api/v1/teams/lab/members", None, 200),
    ("GET", "/api/v1/tokens", None, 200),
    ("GET", "/api/v1/model-packages/awaiting-review", None, 200),
    ("GET", "/api/v1/artifacts?prefix=teams/lab", None, 200),
    ("GET", "/api/v1/runs/{run_id}/artifacts", None, 200),
    ("GET", "/api/v1/jobs/{job_id}/logs", None, 200),
    ("GET", "/api/v1/endpoints/churn-api", None, 200),
    ("GET", "/api/v1/teams/lab/model-groups/churn/packages/1", None, 200),
    ("GET", "/api/v1/pipelines", None, 200),
    ("GET", "/api/v1/pipelines/abalone?team=lab", None, 200),
    ("GET", "/api/v1/pipelines/abalone/versions", None, 200),
    ("GET", "/api/v1/pipelines/abalone/versions/1", None, 200),
    ("GET", "/api/v1/pipelines/abalone/versions/1/diff/2", None, 200),
    ("GET", "/api/v1/pipelines/abalone/versions/9", None, 404),
    ("PUT", "/api/v1/pipelines/abalone", {"description": "abalone age"}, 200),
    ("POST", "/api/v1/pipelines", {"name": "p2", "definition": {"Version": "1"}}, 400),
    ("POST", "/api/v1/tokens", {"name": "laptop"}, 201),
    ("POST", "/api/v1/tokens", {"name": ""}, 400),
    ("POST", "/api/v1/experiments", {"name": "churn"}, 409),
    ("POST", "/api/v1/experiments", "[" * 100_000, 400),
    ("POST", "/api/v1/experiments", {"name": "x", "description": "a" * 2_700_000}, 413),
    ("GET", "/api/v1/experiments?team=elsewhere", None, 404),
    ("GET", "/api/v1/jobs/{job_id}9999", None, 404),
    ("DELETE", "/api/v1/runs/{run_id}", None, 200),
    ("DELETE", "/api/v1/endpoints/churn-api", None, 202),
]


def test_real_answers_match_the_schema(asgi_server: str, api_lab: ApiLab) -> None:
    schema = served_schema(asgi_server, api_lab.token)
    ids = {name: value for known in api_lab.known.values() for name, value in known.items()}
    headers = {"Authorization": f"Bearer {api_lab.token}"}
    with httpx.Client(base_url=asgi_server, headers=headers, timeout=60) as client:
        for method, template, body, status in REAL_REQUESTS:
            url = template.format(**ids)
            content = body if isinstance(body, str) else None
            response = client.request(
                method,
                url,
                json=None if content is not None else body,
                content=content,
                headers={"Content-Type": "application/json"} if content is not None else None,
            )
            assert response.status_code == status, (method, url, response.text[:300])
            label = f"{method} {url.split('?')[0]}"
            operation = _operation(schema, method, url.split("?")[0])
            if operation is None:  # a path no route takes: the API's 404 all the same
                assert response.json()["error"]["code"] == "not_found", label
                continue
            assert str(status) in operation.definition.raw["responses"], label
            operation.validate_response(response)


def _operation(schema: Any, method: str, path: str) -> Any:
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.method.upper() != method:
            continue
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", operation.path) + "$"
        if re.match(pattern, path):
            return operation
    return None
