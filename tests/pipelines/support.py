"""Definitions for the pipelines' tests: the fixtures on disk, and a small valid one."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pipelines"
# Written by the SageMaker Python SDK's Pipeline(...).definition() (feat/sdkdefs).
# Every definition the SDK wrote; uploads.json lists the objects it uploaded, not a pipeline.
SDK_DEFINITIONS = sorted(
    path for path in (FIXTURES / "sdk").glob("*.json") if path.name != "uploads.json"
)
# Written by hand from the SDK's source (src/sagemaker/workflow/*.py).
HANDWRITTEN_DEFINITIONS = sorted((FIXTURES / "handwritten").glob("*.json"))


def canonical() -> dict[str, Any]:
    """process → train → evaluate (property file) → condition → register/model/transform
    or fail, as the SDK writes it."""
    document: dict[str, Any] = json.loads((FIXTURES / "handwritten" / "canonical.json").read_text())
    return document


def small(**threshold: Any) -> dict[str, Any]:
    """Two steps and a parameter."""
    return copy.deepcopy(
        {
            "Version": "2020-12-01",
            "Parameters": [
                {
                    "Name": "Threshold",
                    "Type": "Float",
                    "DefaultValue": threshold.get("default", 0.5),
                }
            ],
            "Steps": [
                {
                    "Name": "Prepare",
                    "Type": "Processing",
                    "Arguments": {
                        "ProcessingOutputConfig": {
                            "Outputs": [{"OutputName": "out", "S3Output": {"S3Uri": "s3://b/o"}}]
                        }
                    },
                },
                {
                    "Name": "Stop",
                    "Type": "Fail",
                    "DependsOn": ["Prepare"],
                    "Arguments": {"ErrorMessage": {"Get": "Parameters.Threshold"}},
                },
            ],
        }
    )


def step(document: dict[str, Any], name: str) -> dict[str, Any]:
    """The step object named `name`, searched in the branches too."""

    def walk(steps: list[dict[str, Any]]) -> dict[str, Any] | None:
        for item in steps:
            if item["Name"] == name:
                return item
            for key in ("IfSteps", "ElseSteps"):
                found = walk(item.get("Arguments", {}).get(key, []))
                if found is not None:
                    return found
        return None

    found = walk(document["Steps"])
    assert found is not None, name
    return found
