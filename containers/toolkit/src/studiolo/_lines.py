"""Recording from inside a Studiolo job, where there is no network: structured lines on
stdout, and artifact files left where the platform collects them.

The job's log pipeline (the studio's ``jobs/tracking.py``) recognises lines of the form::

    #studiolo {"m": [[key, value, step, timestamp_ms], ...]}
    #studiolo {"p": [[key, value], ...]}
    #studiolo {"t": [[key, value], ...]}

and records them into the job's run through the same services as the REST API. A value
that is not finite is written as MLflow writes it: ``"NaN"``, ``"Infinity"``,
``"-Infinity"``. Lines stay under 16,000 bytes (Docker splits longer log lines), so a big
batch becomes several lines. Files given to ``log_artifact`` are copied below
``/opt/ml/output/artifacts/`` (``$SAGEMAKER_BASE_DIR/output/artifacts`` when the base is
relocated), which the platform uploads into the run's artifacts when the job ends.
"""

from __future__ import annotations

import json
import math
import os
import posixpath
import shutil
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from studiolo._buffer import Metric
from studiolo.errors import StudioloError

PREFIX = "#studiolo "
LINE_LIMIT = 16_000
ARTIFACTS_DIR = ("output", "artifacts")

_write_lock = threading.Lock()


def json_value(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _write(kind: str, items: Sequence[str]) -> None:
    line = PREFIX + '{"' + kind + '":[' + ",".join(items) + "]}\n"
    # The stream the job's output goes to; resolved per write, as print() does.
    stream = sys.stdout
    with _write_lock:
        stream.write(line)
        stream.flush()


def emit(kind: str, items: Sequence[Any]) -> None:
    """Write `items` as one or more `#studiolo {"<kind>": [...]}` lines."""
    chunk: list[str] = []
    size = 0
    for item in items:
        text = json.dumps(item, separators=(",", ":"), allow_nan=False)
        if chunk and size + len(text) + 1 > LINE_LIMIT - 40:
            _write(kind, chunk)
            chunk, size = [], 0
        chunk.append(text)
        size += len(text) + 1
    if chunk:
        _write(kind, chunk)


def emit_metrics(batch: Sequence[Metric]) -> None:
    emit("m", [[m.key, json_value(m.value), m.step, m.timestamp] for m in batch])


def base_dir() -> Path:
    return Path(os.environ.get("SAGEMAKER_BASE_DIR") or "/opt/ml")


def artifact_destination(local: Path, artifact_path: str | None) -> Path:
    """Where `local` goes below the job's artifacts folder (`artifact_path/<name>`)."""
    relative = local.name
    if artifact_path:
        folder = posixpath.normpath(artifact_path.strip().replace(os.sep, "/"))
        if folder.startswith(("/", "..")) or folder == ".":
            raise StudioloError(
                f"artifact_path: {artifact_path!r} must be a relative folder without '..'"
            )
        relative = f"{folder}/{local.name}"
    return base_dir().joinpath(*ARTIFACTS_DIR, *relative.split("/"))


def copy_artifact(local: Path, artifact_path: str | None) -> Path:
    """Copy a file (or a folder, recursively) into the job's artifacts folder."""
    destination = artifact_destination(local, artifact_path)
    destination.parent.mkdir(parents=True, exist_ok=True)
    if local.is_dir():
        shutil.copytree(local, destination, dirs_exist_ok=True)
    else:
        shutil.copyfile(local, destination)
    return destination
