"""Encoding rules shared by SageMaker's training toolkit (TTK ``mapping.py``), contract 1.5/1.6.

Hyperparameters make a two-step trip: the SDK ``json.dumps`` every value, the toolkit
``json.loads`` it back; command-line arguments then use Python ``str()`` (``True``,
``[64, 32]``) while environment variables use compact, sorted JSON (``true``, ``[64,32]``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

SAGEMAKER_PREFIX = "sagemaker_"

# Hyperparameters the toolkit consumes itself: never passed to the script, never in SM_HPS.
RESERVED_HYPERPARAMETERS: frozenset[str] = frozenset(
    {
        "sagemaker_program",
        "sagemaker_submit_directory",
        "sagemaker_enable_cloudwatch_metrics",
        "sagemaker_region",
        "sagemaker_container_log_level",
        "sagemaker_job_name",
        "default_user_module_name",
        "_tuning_objective_metric",
        "sagemaker_s3_output",
    }
)


def decode_hyperparameters(raw: Mapping[str, object]) -> dict[str, object]:
    """``json.loads`` each value when it is valid JSON, else keep it as given.

    The SDK JSON-encodes (``"\\"adam\\""`` → ``adam``, ``"true"`` → ``True``); raw API callers
    usually do not (``"adam"`` stays ``adam``).
    """
    decoded: dict[str, object] = {}
    for key, value in raw.items():
        try:
            decoded[key] = json.loads(value) if isinstance(value, str | bytes) else value
        except ValueError:
            decoded[key] = value
    return decoded


@dataclass(frozen=True)
class SplitHyperparameters:
    user: dict[str, object]
    """Everything not reserved and not ``sagemaker_*``: SM_HPS, SM_HP_*, CLI args."""
    framework: dict[str, object]
    """Non-reserved ``sagemaker_*`` keys: SM_FRAMEWORK_PARAMS."""
    reserved: dict[str, object]
    """The toolkit's own keys (program, submit directory, log level, ...)."""


def split_hyperparameters(hyperparameters: Mapping[str, object]) -> SplitHyperparameters:
    user: dict[str, object] = {}
    framework: dict[str, object] = {}
    reserved: dict[str, object] = {}
    for key, value in hyperparameters.items():
        if key in RESERVED_HYPERPARAMETERS:
            reserved[key] = value
        elif key.startswith(SAGEMAKER_PREFIX):
            framework[key] = value
        else:
            user[key] = value
    return SplitHyperparameters(user=user, framework=framework, reserved=reserved)


def to_env_value(value: object) -> str:
    """Strings raw, ``None`` empty, anything else compact JSON with sorted keys."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin1")
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def to_env_vars(mapping: Mapping[str, object]) -> dict[str, str]:
    """``{"model_dir": "/opt/ml/model"}`` → ``{"SM_MODEL_DIR": "/opt/ml/model"}``.

    Names are upper-cased verbatim: hyphens and dots survive (``SM_HP_LEARNING-RATE``), so some
    are not shell identifiers — exactly like SageMaker.
    """
    return {f"SM_{key.upper()}": to_env_value(value) for key, value in mapping.items() if key}


def _to_str(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin1")
    return str(value)


def to_cmd_args(mapping: Mapping[str, object]) -> list[str]:
    """User hyperparameters as ``--key value`` pairs, sorted by key (``-k value`` for 1-char keys).

    Values use Python ``str()``: ``True``, ``[64, 32]``; mappings become ``a=1,b=2``.
    """
    args: list[str] = []
    for key in sorted(mapping):
        name = _to_str(key)
        args.append(("--" if len(name) > 1 else "-") + name if name else "")
        value = mapping[key]
        if isinstance(value, Mapping):
            args.append(",".join(f"{k}={v}" for k, v in sorted(value.items())))
        else:
            args.append(_to_str(value))
    return args
