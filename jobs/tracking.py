"""The in-job tracking protocol: structured lines a job prints to record into its run.

Training containers have no network, so the Studiolo client (`studiolo.start_run()` in the
framework images, `containers/toolkit/src/studiolo/_lines.py`) writes what it records as
lines on stdout::

    #studiolo {"m": [[key, value, step, timestamp_ms], ...]}     metric points
    #studiolo {"p": [[key, value], ...]}                         params
    #studiolo {"t": [[key, value], ...]}                         tags

Values that are not finite are the strings "NaN", "Infinity" and "-Infinity", as MLflow's
JSON has them. The job's `LogWriter` keeps each such line in the job's log (it is the
record) under the stream `track`, so the log view can show it quietly, and records its
content into the job's run through the experiments services. A line carries no run id: a
job can only ever record into its own run.

This module only parses; what is allowed (keys, sizes) is decided by
`experiments.validation` and the services, and a refusal becomes a system line in the log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from experiments.validation import parse_int64, parse_metric_value, validate_key
from studio.errors import ValidationError

MARKER = "#studiolo {"
TRACK_STREAM = "track"  # JobLogLine.stream holds six characters
# Timestamps become datetimes on the way into the metrics service: years 1970..9999.
MAX_TIMESTAMP_MS = 253_402_300_799_999
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class TrackedPoint:
    key: str
    value: float
    step: int
    timestamp_ms: int

    @property
    def at(self) -> datetime:
        return EPOCH + timedelta(milliseconds=self.timestamp_ms)


@dataclass
class TrackingRecord:
    """What one line asks to record, and what in it was refused (messages for the log)."""

    metrics: list[TrackedPoint] = field(default_factory=list)
    params: list[tuple[str, str]] = field(default_factory=list)
    tags: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def is_tracking_line(line: str) -> bool:
    """Anywhere in the line: another thread's unfinished print may have come first."""
    return MARKER in line


def parse_tracking_line(line: str) -> TrackingRecord:
    """The line's records; anything malformed is left out and described in `problems`."""
    record = TrackingRecord()
    text = line[line.find(MARKER) + len(MARKER) - 1 :]
    try:
        body = json.loads(text)
    except ValueError as error:
        record.problems.append(f"not JSON after '#studiolo ' ({error})")
        return record
    if not isinstance(body, dict):
        record.problems.append("expected a JSON object after '#studiolo '")
        return record
    for kind, items in body.items():
        if kind not in ("m", "p", "t"):
            record.problems.append(f"unknown record {kind!r} (expected m, p or t)")
            continue
        if not isinstance(items, list):
            record.problems.append(f"{kind}: expected a list")
            continue
        for index, item in enumerate(items):
            try:
                if kind == "m":
                    record.metrics.append(_point(item, f"m[{index}]"))
                else:
                    pair = _pair(item, f"{kind}[{index}]")
                    (record.params if kind == "p" else record.tags).append(pair)
            except ValidationError as error:
                record.problems.append(error.message)
    return record


def _point(item: object, where: str) -> TrackedPoint:
    if not isinstance(item, list) or len(item) != 4:
        raise ValidationError(f"{where}: expected [key, value, step, timestamp_ms]")
    key, value, step, timestamp = item
    checked_key = validate_key(key, field=f"metrics {where}.key")
    timestamp_ms = parse_int64(timestamp, field=f"metrics {where}.timestamp", minimum=0)
    if timestamp_ms > MAX_TIMESTAMP_MS:
        raise ValidationError(f"metrics {where}.timestamp: {timestamp_ms} is after the year 9999")
    return TrackedPoint(
        checked_key,
        parse_metric_value(value, field=f"metrics {where}.value"),
        parse_int64(step, field=f"metrics {where}.step"),
        timestamp_ms,
    )


def _pair(item: object, where: str) -> tuple[str, str]:
    if not isinstance(item, list) or len(item) != 2 or not isinstance(item[1], str):
        raise ValidationError(f"{where}: expected [key, value] with a string value")
    # Keys and values are checked again by the service; its message names the key.
    return str(item[0]), item[1]
