"""The Studiolo tracking client: start a run, then log metrics, params, tags and artifacts.

::

    import studiolo

    with studiolo.start_run(experiment="churn", name="baseline", tags={"stage": "dev"}) as run:
        run.log_params({"lr": 0.1, "epochs": 10})
        for epoch in range(10):
            run.log_metric("loss", train_one_epoch(), step=epoch)
        run.log_artifact("model.pkl", artifact_path="model")

Two ways of recording, chosen from the environment:

- **Over HTTP** (a laptop, a notebook, a job with network): ``STUDIOLO_URL`` (default
  ``http://127.0.0.1:8000``), ``STUDIOLO_TOKEN`` and optionally ``STUDIOLO_TEAM``. Metrics are
  buffered and sent in batches of up to 1,000 points by a background thread (about every
  second, sooner when the buffer fills, and when the run ends); params, tags, artifacts and
  status changes are sent at once, so the studio's refusal (a param changed, a bad key)
  raises ``ApiError`` naming the field at the call. Transient failures are retried with
  backoff; buffered points are kept until they are sent.
- **Inside a Studiolo job without network** (``STUDIOLO_RUN_ID`` set by the platform and no
  ``STUDIOLO_URL``): the run is the job's run. Records become ``#studiolo {...}`` lines on
  stdout that the job's log pipeline records, and artifacts are copied below
  ``/opt/ml/output/artifacts``, uploaded into the run when the job ends (see ``_lines``).
  The job's outcome sets the run's status.

Runs still open when the interpreter exits are ended: FAILED after an uncaught exception,
KILLED after Ctrl-C, else FINISHED.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from studiolo._backends import (
    END_STATUSES,
    MAX_METRICS_PER_REQUEST,
    Backend,
    HttpBackend,
    JobBackend,
    check_integer,
    check_key,
    check_number,
    check_pairs,
)
from studiolo._buffer import Flusher, Metric
from studiolo._exit import register, unregister
from studiolo._http import Http, RetryPolicy, call_with_retries, path_quote
from studiolo.errors import ApiError, ConfigurationError, InvalidInput, StudioloError

__all__ = ["Client", "Run", "start_run"]

ENV_URL = "STUDIOLO_URL"
ENV_TOKEN = "STUDIOLO_TOKEN"  # noqa: S105 - the variable's name, not a secret
ENV_TEAM = "STUDIOLO_TEAM"
ENV_RUN_ID = "STUDIOLO_RUN_ID"  # set by the platform in a job's container: the job's run
DEFAULT_URL = "http://127.0.0.1:8000"  # the CLI's default too
DEFAULT_EXPERIMENT = "Default"  # MLflow's name for "no experiment chosen"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# --- runs ---------------------------------------------------------------------------------


class Run:
    """A run being recorded. Made by `start_run`; usable as a context manager."""

    def __init__(
        self,
        *,
        run_id: str,
        backend: Backend,
        client: Client,
        owns_status: bool,
        info: Mapping[str, Any] | None = None,
    ) -> None:
        self.run_id = run_id
        # What the studio said about the run when it was started or resumed (empty in a job).
        self.info: dict[str, Any] = dict(info or {})
        self.in_job = isinstance(backend, JobBackend)
        self._backend = backend
        self._owns_status = owns_status
        self._end_timeout = client.end_timeout
        self._lock = threading.Lock()
        self._ended = False
        # Steps go on from what the run holds already (a resumed run).
        self._next_step: dict[str, int] = {
            key: int(summary["step"]) + 1
            for key, summary in (self.info.get("metrics") or {}).items()
            if isinstance(summary, Mapping) and isinstance(summary.get("step"), int)
        }
        self._flusher = Flusher(
            backend.send_metrics,
            interval=client.flush_interval,
            batch_size=min(client.batch_size, MAX_METRICS_PER_REQUEST),
            max_buffered=client.max_buffered,
            retry=client.retry,
            name=f"studiolo-run-{run_id[:8]}",
        )
        register(self)

    def __repr__(self) -> str:
        return f"<studiolo.Run {self.run_id}{' (job)' if self.in_job else ''}>"

    @property
    def name(self) -> str | None:
        name = self.info.get("name")
        return name if isinstance(name, str) else None

    @property
    def experiment_id(self) -> int | None:
        value = self.info.get("experiment_id")
        return value if isinstance(value, int) else None

    # --- metrics (buffered) --------------------------------------------------------------

    def log_metric(
        self, key: str, value: float, step: int | None = None, timestamp: int | None = None
    ) -> None:
        """Buffer one point. `step` defaults to one more than this key's last step (0 first);
        `timestamp` is milliseconds since the epoch, now by default."""
        self.log_metrics({key: value}, step=step, timestamp=timestamp)

    def log_metrics(
        self, metrics: Mapping[str, float], step: int | None = None, timestamp: int | None = None
    ) -> None:
        """Buffer one point per key, all at the same `step` and `timestamp`."""
        self._check_open()
        self._flusher.raise_errors()
        if not isinstance(metrics, Mapping):
            raise InvalidInput("metrics: a mapping of key -> number is required")
        at = now_ms() if timestamp is None else check_integer(timestamp, "timestamp")
        if at < 0:
            raise InvalidInput(f"timestamp: milliseconds since the epoch, got {at}")
        given = None if step is None else check_integer(step, "step")
        points = []
        with self._lock:
            for key, value in metrics.items():
                check_key(key, "metrics")
                number = check_number(value, key)
                this_step = self._next_step.get(key, 0) if given is None else given
                self._next_step[key] = max(self._next_step.get(key, 0), this_step + 1)
                points.append(Metric(key, number, this_step, at))
        self._flusher.add(points)

    # --- params, tags, artifacts (sent at once) ------------------------------------------

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Params are written once: the same value again is fine, another raises ApiError
        naming the key (`params.lr`)."""
        self._check_open()
        pairs = check_pairs(params, "params")
        if pairs:
            self._backend.log_pairs("params", pairs)

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Tags may change: a later value replaces an earlier one."""
        self._check_open()
        pairs = check_pairs(tags, "tags")
        if pairs:
            self._backend.log_pairs("tags", pairs)

    def log_artifact(
        self, local_path: str | os.PathLike[str], artifact_path: str | None = None
    ) -> None:
        """Store a file as `<artifact_path>/<file name>` in the run's artifacts (a folder is
        stored whole, below its own name)."""
        self._check_open()
        local = Path(local_path)
        if not local.exists():
            raise InvalidInput(f"log_artifact: {local} does not exist")
        self._backend.log_artifact(local, artifact_path)

    def log_artifacts(
        self, local_dir: str | os.PathLike[str], artifact_path: str | None = None
    ) -> None:
        """Store everything below a folder (not the folder itself) under `artifact_path`."""
        self._check_open()
        folder = Path(local_dir)
        if not folder.is_dir():
            raise InvalidInput(f"log_artifacts: {folder} is not a folder")
        for entry in sorted(folder.iterdir()):
            self._backend.log_artifact(entry, artifact_path)

    # --- the end -------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every buffered point has been sent (TransportError after `timeout`
        seconds; the points stay buffered), then raise any refusal of a background batch."""
        self._flusher.flush(timeout)
        self._flusher.raise_errors()

    def end(self, status: str = "FINISHED") -> None:
        """Send what is buffered (retrying for up to the client's `end_timeout`), then end
        the run with `status` (FINISHED, FAILED or KILLED). A job's own run is ended by the
        job. Ending twice does nothing."""
        if status not in END_STATUSES:
            raise InvalidInput(f"status: one of {', '.join(END_STATUSES)}, got {status!r}")
        with self._lock:
            if self._ended:
                return
            self._ended = True
        try:
            self._flusher.close(self._end_timeout)
            if self._owns_status:
                self._backend.set_status(status, now_ms())
        finally:
            unregister(self)
        self._flusher.raise_errors()

    @property
    def ended(self) -> bool:
        return self._ended

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.end("FINISHED")
            return
        status = "KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED"
        try:
            self.end(status)
        except StudioloError as error:  # never hide the exception that ended the block
            sys.stderr.write(f"studiolo: ending run {self.run_id}: {error}\n")

    def _check_open(self) -> None:
        if self._ended:
            raise StudioloError(f"run {self.run_id} has ended")


# --- the client -----------------------------------------------------------------------------


class Client:
    """Where runs are recorded and how: the studio's URL, a token, a team, and the
    buffering and retry settings. `Client.from_env()` reads the STUDIOLO_* variables."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        team: str | None = None,
        job_run_id: str | None = None,
        flush_interval: float = 1.0,
        batch_size: int = MAX_METRICS_PER_REQUEST,
        max_buffered: int = 200_000,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        end_timeout: float = 60.0,
    ) -> None:
        self.url = url
        self.token = token
        self.team = team
        self.job_run_id = job_run_id
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.max_buffered = max_buffered
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.end_timeout = end_timeout

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> Client:
        env = os.environ if environ is None else environ
        settings: dict[str, Any] = {
            "url": env.get(ENV_URL) or None,
            "token": env.get(ENV_TOKEN) or None,
            "team": env.get(ENV_TEAM) or None,
            "job_run_id": env.get(ENV_RUN_ID) or None,
        }
        settings.update({key: value for key, value in options.items() if value is not None})
        return cls(**settings)

    @property
    def in_job(self) -> bool:
        """Inside a job with no URL to reach: record through the job's log."""
        return self.url is None and self.job_run_id is not None

    def http(self) -> Http:
        return Http(self.url or DEFAULT_URL, self.token, timeout=self.timeout)

    def start_run(
        self,
        experiment: str | None = None,
        *,
        name: str | None = None,
        tags: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> Run:
        """Start a run in `experiment` (created when missing; "Default" when not given), or
        resume the run `run_id`. Inside a job, the job's run is used."""
        if self.in_job:
            assert self.job_run_id is not None  # noqa: S101 - in_job says so; for the type checker
            if run_id is not None and run_id != self.job_run_id:
                raise ConfigurationError(
                    f"run {run_id}: inside a job without network only the job's run "
                    f"({self.job_run_id}) can be recorded; set STUDIOLO_URL to reach the studio"
                )
            run = Run(run_id=self.job_run_id, backend=JobBackend(), client=self, owns_status=False)
            if tags:
                run.set_tags(tags)
            return run
        http = self.http()
        target = run_id or self.job_run_id
        if target is not None:
            return self._resume(http, target, name=name, tags=tags, owned=target != self.job_run_id)
        found = self._experiment(http, experiment or DEFAULT_EXPERIMENT)
        body: dict[str, Any] = {"experiment_id": found["id"], "name": name or ""}
        if tags:
            body["tags"] = dict(check_pairs(tags, "tags"))
        info = call_with_retries(
            lambda: http.request("POST", "/api/v1/runs", body=body), self.retry
        )
        return Run(
            run_id=info["run_id"],
            backend=HttpBackend(http, info["run_id"], self.retry),
            client=self,
            owns_status=True,
            info=info,
        )

    def _resume(
        self,
        http: Http,
        run_id: str,
        *,
        name: str | None,
        tags: Mapping[str, Any] | None,
        owned: bool,
    ) -> Run:
        path = f"/api/v1/runs/{path_quote(run_id)}"
        info = call_with_retries(lambda: http.request("GET", path), self.retry)
        changes: dict[str, Any] = {}
        if owned and info.get("status") != "RUNNING":
            changes["status"] = "RUNNING"  # resuming an ended run, as MLflow's start_run does
        if owned and name and name != info.get("name"):
            changes["name"] = name
        if changes:
            info = call_with_retries(lambda: http.request("PATCH", path, body=changes), self.retry)
        run = Run(
            run_id=run_id,
            backend=HttpBackend(http, run_id, self.retry),
            client=self,
            owns_status=owned,
            info=info,
        )
        if tags:
            run.set_tags(tags)
        return run

    def _experiment(self, http: Http, name: str) -> dict[str, Any]:
        """The team's experiment called `name`, created when missing."""
        query: dict[str, str | int] = {"name": name}
        if self.team:
            query["team"] = self.team

        def find() -> dict[str, Any] | None:
            page = http.request("GET", "/api/v1/experiments", query=query)
            results = page.get("results", []) if isinstance(page, dict) else []
            return next((e for e in results if e.get("name") == name), None)

        found = call_with_retries(find, self.retry)
        if found is not None:
            return found
        body: dict[str, Any] = {"name": name}
        if self.team:
            body["team"] = self.team
        try:
            created: dict[str, Any] = call_with_retries(
                lambda: http.request("POST", "/api/v1/experiments", body=body), self.retry
            )
            return created
        except ApiError as error:
            if error.status != 409:
                raise
            found = call_with_retries(find, self.retry)  # made meanwhile by another process
            if found is None:
                raise  # a deleted experiment keeps its name: the studio's message says so
            return found


def start_run(
    experiment: str | None = None,
    *,
    name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    **options: Any,
) -> Run:
    """`Client.from_env(**options).start_run(...)`: options are those of `Client` (url,
    token, team, flush_interval, ...); unset ones come from the STUDIOLO_* variables."""
    client = Client.from_env(**options)
    return client.start_run(experiment, name=name, tags=tags, run_id=run_id)
