"""What a transform runs with, and what its container is told.

The request's values win; those it left unset come from the container's
`GET /execution-parameters` (contract 2.1), else SageMaker's defaults. MaxConcurrentTransforms
is then bounded so that concurrency × MaxPayloadInMB stays within CreateTransformJob's limit.
Pure: no database, no HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from transform.services import MAX_CONCURRENCY_TIMES_PAYLOAD, MAX_PAYLOAD_MB, TransformSettings

DEFAULT_STRATEGY, DEFAULT_PAYLOAD_MB, DEFAULT_CONCURRENCY = "MultiRecord", 6, 1
ENV_STRATEGY = {"SingleRecord": "SINGLE_RECORD", "MultiRecord": "MULTI_RECORD"}


@dataclass(frozen=True)
class Plan:
    """What the transform runs with: the request's values, else the container's
    /execution-parameters, else SageMaker's defaults."""

    strategy: str
    max_payload_mb: int
    concurrency: int


def plan_needs_container(settings: TransformSettings) -> bool:
    """Whether the request left a value for the container's /execution-parameters to say."""
    return not (
        settings["batch_strategy"]
        and settings["max_payload_mb"]
        and settings["max_concurrent_transforms"]
    )


def plan_settle(settings: TransformSettings, asked: Mapping[str, object]) -> Plan:
    """The plan from the request and what the container answered (`{}`: nothing)."""
    strategy = (
        settings["batch_strategy"] or _strategy(asked.get("BatchStrategy")) or DEFAULT_STRATEGY
    )
    payload = (
        settings["max_payload_mb"]
        or _bounded(asked.get("MaxPayloadInMB"), MAX_PAYLOAD_MB)
        or DEFAULT_PAYLOAD_MB
    )
    concurrency = (
        settings["max_concurrent_transforms"]
        or _bounded(asked.get("MaxConcurrentTransforms"), MAX_CONCURRENCY_TIMES_PAYLOAD)
        or DEFAULT_CONCURRENCY
    )
    concurrency = max(1, min(concurrency, MAX_CONCURRENCY_TIMES_PAYLOAD // payload))
    return Plan(strategy, payload, concurrency)


def plan_effective(settings: TransformSettings, plan: Plan) -> dict[str, object]:
    """`TransformSettings.effective`: what the job shows it ran with."""
    return {
        "batch_strategy": plan.strategy if settings["split_type"] == "Line" else "",
        "max_payload_mb": plan.max_payload_mb,
        "max_concurrent_transforms": plan.concurrency,
    }


def batch_environment(
    settings: TransformSettings, *, job_id: int, model_environment: Mapping[str, str]
) -> dict[str, str]:
    """Contract 2.1's batch variables, for the values the request set."""
    env = {"SAGEMAKER_BATCH": "true", "STUDIOLO_JOB_ID": str(job_id)}
    if settings["max_payload_mb"]:
        env["SAGEMAKER_MAX_PAYLOAD_IN_MB"] = str(settings["max_payload_mb"])
    if settings["batch_strategy"]:
        env["SAGEMAKER_BATCH_STRATEGY"] = ENV_STRATEGY[settings["batch_strategy"]]
    if settings["max_concurrent_transforms"]:
        env["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] = str(settings["max_concurrent_transforms"])
    if "SAGEMAKER_MODEL_SERVER_TIMEOUT" not in model_environment:
        # The server's own limit must not cut the invocation timeout short.
        env["SAGEMAKER_MODEL_SERVER_TIMEOUT"] = str(settings["invocations_timeout_seconds"])
    return env


def _strategy(value: object) -> str:
    names = {"MULTI_RECORD": "MultiRecord", "SINGLE_RECORD": "SingleRecord"}
    text = str(value or "")
    return names.get(text.upper(), text if text in ENV_STRATEGY else "")


def _bounded(value: object, maximum: int) -> int:
    """A whole number from 1 to `maximum`, or 0 when the container said something else."""
    if isinstance(value, bool) or not isinstance(value, int):
        return 0
    return value if 1 <= value <= maximum else 0
