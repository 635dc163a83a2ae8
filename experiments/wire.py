"""JSON in and out for both tracking APIs (native and MLflow): the shapes of logged values.

Only translation lives here; what is allowed is decided by `experiments.validation` and the
services. Non-finite doubles travel as MLflow (protobuf's JSON mapping) writes them: the
strings "NaN", "Infinity" and "-Infinity".
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from experiments.services.common import now_ms
from experiments.services.logging import MetricInput
from experiments.validation import json_float, parse_int64, parse_metric_value
from studio.errors import ValidationError

__all__ = ["json_float", "json_number", "metrics_from_json", "pairs_from_json", "points_json"]


def metrics_from_json(items: object, *, field: str = "metrics") -> list[MetricInput]:
    """`[{"key", "value", "step"?, "timestamp"?}]`; step defaults to 0, timestamp to now.

    A float value and integer step and timestamp (what the mlflow client and the SDK send)
    pass through as they are: the service checks their ranges (and the keys) with a few
    comparisons. Anything else is parsed here. A batch of 1,000 points is most of a logging
    request's work, so the common case makes no string per point."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise ValidationError(f"{field}: a list is required", field=field)
    now = now_ms()
    metrics = []
    for index, item in enumerate(items):
        if type(item) is not dict and not isinstance(item, Mapping):
            raise ValidationError(
                f"{field}[{index}]: an object is required", field=f"{field}[{index}]"
            )
        get = item.get
        value = get("value")
        step = get("step")
        timestamp = get("timestamp")
        if type(value) is not float:
            if value is None:
                path = f"{field}[{index}].value"
                raise ValidationError(f"{path}: required", field=path)
            value = parse_metric_value(value, field=f"{field}[{index}].value")
        if type(step) is not int:
            step = 0 if step in (None, "") else parse_int64(step, field=f"{field}[{index}].step")
        if type(timestamp) is not int:
            timestamp = (
                now
                if timestamp in (None, "")
                else parse_int64(timestamp, field=f"{field}[{index}].timestamp", minimum=0)
            )
        # The key is validated by the service.
        metrics.append(MetricInput(get("key"), value, step, timestamp))  # type: ignore[arg-type]
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


# --- many points out, fast -----------------------------------------------------------------

_NON_FINITE = {math.inf: '"Infinity"', -math.inf: '"-Infinity"'}


def json_number(value: float | None) -> str:
    """`json_float` as JSON text. A finite double's repr is what `json.dumps` writes."""
    if value is None or value != value:  # NULL is NaN (and NaN is unequal to itself)
        return '"NaN"'
    return _NON_FINITE.get(value) or repr(value)


def points_json(rows: Iterable[tuple[int, float | None, int]], *, key: str | None = None) -> str:
    """A JSON array of (step, value, timestamp) points, as the native API writes them
    (`{"step", "value", "timestamp"}`) or, given the metric's `key`, as MLflow does
    (`{"key", "value", "timestamp", "step"}`). Text is built per point from a template, the
    finite values (all but a few) with their repr inline: a history page of 25,000 points
    costs no dict and no function call per point."""
    inf = math.inf
    if key is None:
        items = [
            f'{{"step":{s},"value":{v!r},"timestamp":{t}}}'
            if v is not None and -inf < v < inf
            else f'{{"step":{s},"value":{json_number(v)},"timestamp":{t}}}'
            for s, v, t in rows
        ]
    else:
        start = '{"key":' + json.dumps(key) + ',"value":'
        items = [
            f'{start}{v!r},"timestamp":{t},"step":{s}}}'
            if v is not None and -inf < v < inf
            else f'{start}{json_number(v)},"timestamp":{t},"step":{s}}}'
            for s, v, t in rows
        ]
    return "[" + ",".join(items) + "]"
