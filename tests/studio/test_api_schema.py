"""The OpenAPI schema: generated without a single drf-spectacular warning or error, valid
OpenAPI, and every serializer a component of its own (no two views' `InputSerializer`
collapsed into one `Input`)."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management import call_command
from drf_spectacular.drainage import GENERATOR_STATS


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
