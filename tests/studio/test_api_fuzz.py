"""Schemathesis fuzzes every operation of /api/v1/schema/ against the real server, with the
token of a team admin whose team has data (experiments, runs with metrics, a model group
with packages, a job, an endpoint, a webhook): no server error, and every answer conforms to
the schema (status code, content type, body).

Each operation gets an equal share of STUDIOLO_FUZZ_SECONDS (default 180 s), with data that
fits the schema and data that does not, against objects that exist and ids that do not.
Generation is derandomized: a run is reproducible. Celery's dispatch is stubbed, so job
submission and endpoint creation go through validation and are recorded, and no container
starts.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.studio.conftest import ApiLab, served_schema

FUZZ_SECONDS = float(os.environ.get("STUDIOLO_FUZZ_SECONDS", "180"))
MAX_EXAMPLES = 200  # per operation; its share of the time usually ends it first
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Reads first, deletions last: the data stays there for most of the run.
METHOD_ORDER = {"get": 0, "put": 1, "post": 2, "patch": 3, "delete": 4}


def _known(api_lab: ApiLab, path: str) -> dict[str, Any]:
    for prefix, values in api_lab.known.items():
        if path.startswith(prefix):
            return values
    return {}


def _operations(base_url: str, token: str) -> list[Any]:
    schema = served_schema(base_url, token)
    operations = [result.ok() for result in schema.get_all_operations()]
    return sorted(operations, key=lambda op: (METHOD_ORDER.get(op.method.lower(), 9), op.path))


class _TimeUp(Exception):
    """The operation's share of time is spent (ends Hypothesis's run at once)."""


def _fuzz(operation: Any, strategy: Any, base_url: str, token: str, seconds: float) -> int:
    """Cases of one operation until its share of time is spent; how many were sent."""
    headers = {"Authorization": f"Bearer {token}"}
    stop_at = time.monotonic() + seconds
    sent = 0

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the curl line says enough
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def fuzz(case: Any) -> None:
        nonlocal sent
        if time.monotonic() > stop_at:
            raise _TimeUp
        sent += 1
        response = case.call(base_url=base_url, headers=headers, timeout=60)
        case.validate_response(response, checks=CHECKS)

    with contextlib.suppress(_TimeUp):
        fuzz()
    return sent


def test_every_operation_survives_fuzzing(asgi_server: str, api_lab: ApiLab) -> None:
    operations = _operations(asgi_server, api_lab.token)
    assert len(operations) > 50
    share = FUZZ_SECONDS / len(operations)
    failures: list[str] = []
    sent = 0
    for operation in operations:
        known = {
            name: value
            for name, value in _known(api_lab, operation.path).items()
            if "{" + name + "}" in operation.path
        }
        strategies = [
            operation.as_strategy(GenerationMode.POSITIVE, path_parameters=known),
            operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=known),
        ]
        if known:  # also ids of objects that do not exist
            strategies.append(operation.as_strategy(GenerationMode.POSITIVE))
        try:
            sent += _fuzz(operation, st.one_of(strategies), asgi_server, api_lab.token, share)
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis groups its findings
            failures.append(f"{operation.label}: {exc}")
    print(f"fuzzed {len(operations)} operations with {sent} requests")  # noqa: T201
    assert not failures, "\n\n".join(failures)
