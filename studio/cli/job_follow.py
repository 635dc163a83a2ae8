"""Following a job to its end: its lines as they are printed, its status changes, a summary.

Lines come over the job's log websocket (`/ws/jobs/<id>/logs`: the backlog, then live lines,
then an `end` message). When the socket cannot be opened or drops, the lines missed are read
from the REST logs API (`?after=<last seq shown>`) and the socket is tried again, sooner
after a drop than after a refusal. Every line carries its sequence number, so a line the
server sends twice (each new socket starts with the whole backlog) is shown once.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

from studio.cli.job_transfer import JobClient, note

# The API's statuses (jobs.models.JobStatus); the CLI does not load Django.
STATUSES = ("Pending", "InProgress", "Completed", "Failed", "Stopping", "Stopped")
EXIT_CODES = {"Completed": 0, "Failed": 1, "Stopped": 3}  # the terminal statuses
LOG_PAGE = 1000  # lines per REST page
RECV_TIMEOUT = 1.0  # seconds: the receive loop wakes up this often (Ctrl-C stays prompt)
RETRY_DELAYS = (0.5, 1.0, 2.0, 5.0)  # seconds before the next socket attempt, growing
POLL_INTERVAL = 1.0  # seconds between status reads while waiting without the log
MAX_MESSAGE = 64 * 1024 * 1024  # a backlog page is 1000 lines of up to 64 KiB each
SOCKET_ERRORS = (OSError, TimeoutError, WebSocketException)


def is_terminal(status: str) -> bool:
    return status in EXIT_CODES


def _dim(text: str) -> str:
    if os.environ.get("NO_COLOR") or not sys.stderr.isatty():
        return text
    return f"\x1b[2m{text}\x1b[0m"


class Printer:
    """Where a job's lines go: stdout lines to stdout (to stderr when stdout is reserved for
    --json), stderr lines to stderr, the platform's own lines and the tracking client's
    `#studiolo {...}` records (stream `track`) dimmed to stderr.

    `labelled`: the job has several instances; each instance's line starts with its host
    (`[algo-2] `). `host`: only that instance's lines are shown (and the platform's own,
    which have no host)."""

    def __init__(
        self, *, stdout_to_stderr: bool = False, labelled: bool = False, host: str | None = None
    ) -> None:
        self.stdout_to_stderr = stdout_to_stderr
        self.labelled = labelled
        self.host = host
        self._state: tuple[str, str, str] | None = None

    @classmethod
    def for_job(cls, job: dict[str, Any], **kwargs: Any) -> Printer:
        return cls(labelled=int(job.get("instance_count") or 1) > 1, **kwargs)

    def line(self, line: dict[str, Any]) -> None:
        stream, text = line.get("stream"), str(line.get("line", ""))
        host = str(line.get("host") or "")
        if self.host and host and host != self.host:
            return
        if self.labelled and host:
            text = f"[{host}] {text}"
        if stream == "stdout" and not self.stdout_to_stderr:
            print(text, file=sys.stdout, flush=True)
        elif stream in ("system", "track"):
            print(_dim(text), file=sys.stderr, flush=True)
        else:
            print(text, file=sys.stderr, flush=True)

    def status(self, status: str, secondary: str, message: str) -> None:
        """`Training - Training in progress.`, as the SageMaker SDK shows progress: once per
        change of status, not for every progress message within one."""
        if self._state is not None and self._state[:2] == (status, secondary):
            return
        self._state = (status, secondary, message)
        if status == "Pending":
            # Until a worker takes it, a job's secondary status already says Starting.
            note("Pending - Waiting for a worker to take the job (is `studiolo worker` running?)")
        else:
            note(f"{secondary} - {message}" if message else secondary)


def websocket_connect(client: JobClient, job_id: int) -> ClientConnection:
    headers = {"Authorization": f"Bearer {client.token}"} if client.token else None
    return connect(
        client.websocket_url(f"/ws/jobs/{job_id}/logs"),
        origin=Origin(client.origin()),
        additional_headers=headers,
        user_agent_header="studiolo-cli",
        open_timeout=10,
        close_timeout=2,
        max_size=MAX_MESSAGE,
    )


class Follower:
    """Shows a job's lines and status changes until it has ended and every line is shown."""

    def __init__(
        self, client: JobClient, job_id: int, *, printer: Printer, show_status: bool = True
    ) -> None:
        self.client = client
        self.job_id = job_id
        self.printer = printer
        self.show_status = show_status
        self.last_seq = 0
        self._refusal_noted = False

    def run(self) -> None:
        failed_attempts = 0
        while True:
            try:
                if self._stream():
                    return
                failed_attempts = 0  # it was up and dropped: come back quickly
            except SOCKET_ERRORS as exc:
                failed_attempts += 1
                if not self._refusal_noted:
                    note(
                        f"(live log unavailable: {exc or type(exc).__name__}; reading the log API)"
                    )
                    self._refusal_noted = True
            if self._catch_up():
                return
            time.sleep(RETRY_DELAYS[min(failed_attempts, len(RETRY_DELAYS) - 1)])

    def _stream(self) -> bool:
        """One websocket session; True once the server has said `end`."""
        with websocket_connect(self.client, self.job_id) as socket:
            while True:
                try:
                    raw = socket.recv(timeout=RECV_TIMEOUT)
                except TimeoutError:
                    continue
                except ConnectionClosed:
                    return False
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "lines":
                    self._show(message["lines"])
                elif kind == "status" and self.show_status:
                    status = message["status"]
                    self.printer.status(
                        status["status"], status["secondary_status"], status.get("message", "")
                    )
                elif kind == "end":
                    return True

    def read_available(self) -> str:
        """Show the lines not shown yet, page by page from the REST API; the job's status.

        The API reads the job's status before its lines, so a terminal status means the
        lines returned include every line written before the end.
        """
        while True:
            page = self.client.get(
                f"/api/v1/jobs/{self.job_id}/logs", {"after": self.last_seq, "limit": LOG_PAGE}
            )
            self._show(page["results"])
            if len(page["results"]) < LOG_PAGE:
                return str(page["status"])

    def _catch_up(self) -> bool:
        """The lines missed while the socket was down; True when the job has ended."""
        status = self.read_available()
        if self.show_status:
            job = self.client.get(f"/api/v1/jobs/{self.job_id}")
            self.printer.status(job["status"], job["secondary_status"], job["status_message"])
        return is_terminal(status)

    def _show(self, lines: list[dict[str, Any]]) -> None:
        for line in lines:
            if line["seq"] > self.last_seq:
                self.printer.line(line)
                self.last_seq = line["seq"]


def wait_quietly(client: JobClient, job_id: int, *, printer: Printer) -> None:
    """Wait for the end without the log (`jobs stop --wait`), showing status changes."""
    while True:
        job = client.get(f"/api/v1/jobs/{job_id}")
        printer.status(job["status"], job["secondary_status"], job["status_message"])
        if is_terminal(job["status"]):
            return
        time.sleep(POLL_INTERVAL)


def summary(job: dict[str, Any]) -> int:
    """The end of a followed job on stderr; the exit code of its status (0, 1 or 3)."""
    status, secondary = job["status"], job["secondary_status"]
    state = status if secondary in (status, "") else f"{status} ({secondary})"
    note(f"Job {job['name']}: {state}{_durations(job)}")
    if job.get("failure_reason"):
        note(f"Failure reason: {job['failure_reason']}")
    if job.get("model_artifact_uri"):
        note(f"Model artifacts: {job['model_artifact_uri']}")
    if job.get("output_artifact_uri"):
        note(f"Output artifacts: {job['output_artifact_uri']}")
    progress = job.get("progress") or {}
    if job.get("kind") == "transform" and progress:
        note(
            f"Transformed {progress['records_done']}/{progress['records_total']} records, "
            f"{progress['files_done']}/{progress['files_total']} files into {job['output_path']}"
        )
    return EXIT_CODES.get(status, 1)


def _durations(job: dict[str, Any]) -> str:
    total = duration(job.get("created_at"), job.get("ended_at"))
    training = duration(job.get("training_started_at"), job.get("training_ended_at"))
    parts = [f"{total} in total"] if total else []
    if training:
        parts.append(
            f"{training} {'transforming' if job.get('kind') == 'transform' else 'training'}"
        )
    return f" ({', '.join(parts)})" if parts else ""


def parse_time(iso: str | None) -> datetime | None:
    """The API's ISO 8601 times (UTC, `Z` suffix)."""
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso)
    except ValueError:
        return None


def duration(start_iso: str | None, end_iso: str | None) -> str:
    """`1h 02m`, `3m 07s`, `12s` from start to end (to now while it runs); "" without a start."""
    start = parse_time(start_iso)
    if start is None:
        return ""
    end = parse_time(end_iso) or datetime.now(UTC)
    seconds = max(0, round((end - start).total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
