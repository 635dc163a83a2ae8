"""JSON in and out for both tracking APIs (native and MLflow): the shapes of logged values.

Only translation lives here; what is allowed is decided by `experiments.validation` and the
services. Non-finite doubles travel as MLflow (protobuf's JSON mapping) writes them: the
strings "NaN", "Infinity" and "-Infinity".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from experiments.services.common import now_ms
from experiments.services.logging import MetricInput
from experiments.validation import json_float, parse_int64, parse_metric_value
from studio.errors import ValidationError

__all__ = ["json_float", "metrics_from_json", "pairs_from_json"]


def metrics_from_json(items: object, *, field: str = "metrics") -> list[MetricInput]:
    """`[{"key", "value", "step"?, "timestamp"?}]`; step defaults to 0, timestamp to now."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise ValidationError(f"{field}: a list is required", field=field)
    now = now_ms()
    metrics = []
    for index, item in enumerate(items):
        path = f"{field}[{index}]"
        if not isinstance(item, Mapping):
            raise ValidationError(f"{path}: an object is required", field=path)
        if item.get("value") is None:
            raise ValidationError(f"{path}.value: required", field=f"{path}.value")
        step = item.get("step")
        timestamp = item.get("timestamp")
        metrics.append(
            MetricInput(
                item.get("key"),  # type: ignore[arg-type]  # validated by the service
                parse_metric_value(item["value"], field=f"{path}.value"),
                0 if step in (None, "") else parse_int64(step, field=f"{path}.step"),
                now
                if timestamp in (None, "")
                else parse_int64(timestamp, field=f"{path}.timestamp", minimum=0),
            )
        )
    return metrics


def pairs_from_json(items: object, *, field: str) -> list[tuple[str, str]]:
    """Params or tags as `{"key": "value"}` or `[{"key": ..., "value": ...}]`."""
    if items is None:
        return []
    if isinstance(items, Mapping):
        return [(key, _string(value, f"{field}.{key}")) for key, value in items.items()]
    if not isinstance(items, list):
        raise ValidationError(f"{field}: an object or a list is required", field=field)
    pairs = []
    for index, item in enumerate(items):
        path = f"{field}[{index}]"
        if not isinstance(item, Mapping):
            raise ValidationError(f"{path}: an object is required", field=path)
        pairs.append((item.get("key"), _string(item.get("value", ""), f"{path}.value")))
    return pairs  # type: ignore[return-value]  # keys are validated by the service


def _string(value: Any, field: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str | int | float):
        return str(value)
    raise ValidationError(f"{field}: a string is required", field=field)
