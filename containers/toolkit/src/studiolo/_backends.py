"""Where a run's records go: the studio's REST API, or (inside a job) the job's log lines
and artifacts folder. Also the checks made before anything is sent."""

from __future__ import annotations

import operator
import re
from collections.abc import Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from studiolo import _lines
from studiolo._buffer import Metric
from studiolo._http import Http, RetryPolicy, call_with_retries, path_quote
from studiolo.errors import ApiError, InvalidInput

END_STATUSES = ("FINISHED", "FAILED", "KILLED")
# The studio's limits for one request (MLflow's).
MAX_METRICS_PER_REQUEST = 1000
MAX_PAIRS_PER_REQUEST = 100
MAX_KEY_LENGTH = 250

_METRIC_INDEX = re.compile(r"^metrics\[(\d+)\]")


def check_key(key: object, what: str) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidInput(f"{what}: keys must be non-empty strings, got {key!r}")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(
            f"{what}.{key[:40]}...: keys are at most {MAX_KEY_LENGTH} characters ({len(key)})"
        )
    return key


def check_number(value: object, key: str) -> float:
    if isinstance(value, bool | str):
        raise InvalidInput(f"metrics.{key}: a number is required, got {value!r}")
    try:
        return float(value)  # type: ignore[arg-type]  # ints, floats, numpy scalars, tensors
    except (TypeError, ValueError):
        raise InvalidInput(f"metrics.{key}: a number is required, got {value!r}") from None


def check_integer(value: object, what: str) -> int:
    if isinstance(value, bool):
        raise InvalidInput(f"{what}: an integer is required, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    try:
        return operator.index(value)  # type: ignore[arg-type]  # ints, numpy integers
    except TypeError:
        pass
    raise InvalidInput(f"{what}: an integer is required, got {value!r}")


def param_text(value: object) -> str:
    """How params and tag values are written: strings as they are, booleans as JSON spells
    them, anything else with str() (MLflow's rule, and the studio's)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def check_pairs(values: Mapping[str, Any], what: str) -> list[tuple[str, str]]:
    if not isinstance(values, Mapping):
        raise InvalidInput(f"{what}: a mapping of key -> value is required")
    return [(check_key(key, what), param_text(value)) for key, value in values.items()]


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Backend(Protocol):
    def send_metrics(self, batch: list[Metric]) -> None: ...
    def log_pairs(self, kind: str, pairs: list[tuple[str, str]]) -> None: ...
    def log_artifact(self, local: Path, artifact_path: str | None) -> None: ...
    def set_status(self, status: str, end_time: int) -> None: ...


class HttpBackend:
    """The run in a studio reached over HTTP (the native REST API, /api/v1)."""

    def __init__(self, http: Http, run_id: str, retry: RetryPolicy) -> None:
        self.http = http
        self.run_path = f"/api/v1/runs/{path_quote(run_id)}"
        self.retry = retry
        self._refused: ApiError | None = None  # a point taken out of a batch still in flight

    def send_metrics(self, batch: list[Metric]) -> None:
        """One request (one attempt: the flusher retries transient failures). A point the
        studio refuses (`metrics[i]...`) is taken out and the rest sent again, so one bad
        key does not cost its batch; the refusal is raised once the rest is in."""
        while batch:
            body = {
                "metrics": [
                    {
                        "key": m.key,
                        "value": _lines.json_value(m.value),
                        "step": m.step,
                        "timestamp": m.timestamp,
                    }
                    for m in batch
                ]
            }
            try:
                self.http.request("POST", f"{self.run_path}/metrics", body=body)
                break
            except ApiError as error:
                match = _METRIC_INDEX.match(error.field or "")
                if match is None or int(match.group(1)) >= len(batch):
                    raise
                self._refused = self._refused or error
                del batch[int(match.group(1))]  # the flusher's own list: a retry sends the rest
        refused, self._refused = self._refused, None
        if refused is not None:
            raise refused

    def log_pairs(self, kind: str, pairs: list[tuple[str, str]]) -> None:
        for chunk in chunks(pairs, MAX_PAIRS_PER_REQUEST):
            body = {kind: dict(chunk)}
            send = partial(self.http.request, "POST", f"{self.run_path}/{kind}", body=body)
            call_with_retries(send, self.retry)

    def log_artifact(self, local: Path, artifact_path: str | None) -> None:
        folder = (artifact_path or "").strip("/")
        if local.is_dir():
            files = sorted(p for p in local.rglob("*") if p.is_file())
            uploads = [
                (p, "/".join(filter(None, [folder, local.name, p.relative_to(local).as_posix()])))
                for p in files
            ]
        else:
            uploads = [(local, f"{folder}/{local.name}" if folder else local.name)]
        for path, remote in uploads:
            url = f"{self.run_path}/artifacts/{path_quote(remote)}"
            call_with_retries(partial(self.http.request, "PUT", url, file=path), self.retry)

    def set_status(self, status: str, end_time: int) -> None:
        body: dict[str, Any] = {"status": status}
        if status in END_STATUSES:
            body["end_time"] = end_time
        call_with_retries(lambda: self.http.request("PATCH", self.run_path, body=body), self.retry)


class JobBackend:
    """The job's run, recorded through the job's stdout and its /opt/ml/output folder."""

    def send_metrics(self, batch: list[Metric]) -> None:
        _lines.emit_metrics(batch)

    def log_pairs(self, kind: str, pairs: list[tuple[str, str]]) -> None:
        _lines.emit(kind[0], [[key, value] for key, value in pairs])

    def log_artifact(self, local: Path, artifact_path: str | None) -> None:
        _lines.copy_artifact(local, artifact_path)

    def set_status(self, status: str, end_time: int) -> None:
        """The job's outcome decides its run's status."""
