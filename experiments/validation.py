"""What runs may record: MLflow's rules for names, values and batches, stated once.

The native API and the MLflow compatibility API both pass through these checks (the
services call them), so a key accepted by one is accepted by the other.
"""

from __future__ import annotations

import math
import posixpath
import re

# INT64_*: a signed 64-bit integer, the type of steps and timestamps in MLflow's protocol.
from studio.api.fields import INT64_MAX as INT64_MAX
from studio.api.fields import INT64_MIN as INT64_MIN
from studio.errors import ValidationError

# MLflow's limits (mlflow/utils/validation.py).
MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
MAX_EXPERIMENT_TAG_VALUE_LENGTH = 20000
MAX_EXPERIMENT_NAME_LENGTH = 500
MAX_RUN_NAME_LENGTH = 250
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100
MAX_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000
MAX_BATCH_REQUEST_BYTES = 1_000_000

# MLflow's server (on POSIX) accepts word characters, slashes, periods, dashes, colons and
# spaces; "\w" includes non-ASCII letters and digits, as it does there.
_KEY = re.compile(r"^[/\w.\- :]+$")

# JSON has no NaN or infinities; MLflow's JSON (protobuf's mapping) writes them as strings.
NON_FINITE_JSON = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def validate_key(key: object, *, field: str) -> str:
    """A metric, param or tag key; `field` names it in the error (`metrics[3].key`)."""
    if not isinstance(key, str) or not key:
        raise ValidationError(f"{field}: a non-empty string is required", field=field)
    if len(key) > MAX_KEY_LENGTH:
        raise ValidationError(
            f"{field}: {key[:40]!r}... is {len(key)} characters long; the limit is {MAX_KEY_LENGTH}",
            field=field,
        )
    if not _KEY.match(key):
        raise ValidationError(
            f"{field}: {key!r} is not a valid name; names may only contain alphanumerics, "
            "underscores (_), dashes (-), periods (.), spaces ( ), colons (:) and slashes (/)",
            field=field,
        )
    # Keys become file names in some tools: they must not resolve to another name.
    normalised = posixpath.normpath(key)
    if normalised != key or normalised.startswith(("..", "/")) or normalised == ".":
        raise ValidationError(
            f"{field}: {key!r} would resolve to {normalised!r} as a path; "
            "no leading or trailing slashes, '//', '.' or '..' segments",
            field=field,
        )
    return key


def validate_text(value: object, *, field: str, limit: int) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{field}: a string is required", field=field)
    if len(value) > limit:
        raise ValidationError(
            f"{field}: {len(value)} characters; the limit is {limit}", field=field
        )
    return value


def parse_metric_value(value: object, *, field: str) -> float:
    """A double: a JSON number, or "NaN" / "Infinity" / "-Infinity" as MLflow writes them."""
    if isinstance(value, bool):
        raise ValidationError(f"{field}: a number is required, not a boolean", field=field)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        if value in NON_FINITE_JSON:
            return NON_FINITE_JSON[value]
        try:
            return float(value)
        except ValueError:
            pass
    raise ValidationError(
        f"{field}: {value!r} is not a number (NaN, Infinity and -Infinity are written as strings)",
        field=field,
    )


def parse_int64(value: object, *, field: str, minimum: int = INT64_MIN) -> int:
    """A 64-bit integer; JSON strings of digits are accepted (protobuf writes int64 so)."""
    if isinstance(value, bool):
        raise ValidationError(f"{field}: an integer is required", field=field)
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,19}", value.strip()):
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise ValidationError(f"{field}: an integer is required", field=field)
    if not minimum <= value <= INT64_MAX:
        raise ValidationError(f"{field}: {value} is outside {minimum}..{INT64_MAX}", field=field)
    return value


def json_float(value: float | None) -> float | str:
    """A double for JSON: NaN (stored as NULL) and infinities as MLflow's strings."""
    if value is None or math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def check_batch_limits(*, metrics: int, params: int, tags: int) -> None:
    for name, count, limit in (
        ("metrics", metrics, MAX_METRICS_PER_BATCH),
        ("params", params, MAX_PARAMS_PER_BATCH),
        ("tags", tags, MAX_TAGS_PER_BATCH),
        ("metrics, params and tags", metrics + params + tags, MAX_ENTITIES_PER_BATCH),
    ):
        if count > limit:
            raise ValidationError(
                f"{name.split(',')[0]}: a batch holds at most {limit} {name}, got {count}; "
                "split it across several requests",
                field=name.split(",")[0],
            )
