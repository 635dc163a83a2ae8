"""`/ws/jobs/<id>/logs`: what the job printed so far, then live lines, then the end.

Ordering without gaps or repeats: the consumer joins the job's group *before* reading the
backlog, so nothing published meanwhile is lost; it remembers the last sequence number sent
and drops live lines at or below it; a gap (a publish that failed) is filled from the
database. When the job ends, whatever is left in the database is sent before the end
message, so a client always receives every line.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from jobs.logs import job_group, lines_after, to_wire
from jobs.models import TERMINAL_STATUSES, Job
from jobs.selectors import job_for_user
from jobs.services.lifecycle import job_status_payload
from studio.accounts.consumers import GrantedConsumer
from studio.accounts.grants import CLOSE_NOT_FOUND
from studio.errors import NotFound

BACKLOG_PAGE = 1000


def _after(query_string: bytes) -> int:
    values = parse_qs(query_string.decode("latin-1")).get("after", ["0"])
    try:
        return max(0, int(values[0]))
    except ValueError:
        return 0


class JobLogsConsumer(GrantedConsumer):
    job_id: int
    last_seq: int
    ended: bool

    def connect(self) -> None:
        if not self.authorise():
            return
        try:
            job = job_for_user(self.scope["user"], int(self.scope["url_route"]["kwargs"]["job_id"]))
        except NotFound:
            self.close(code=CLOSE_NOT_FOUND)
            return
        self.job_id, self.ended = job.pk, False
        # ?after=N: the client has lines 1..N already (a reconnect); resume after them.
        self.last_seq = _after(self.scope.get("query_string", b""))
        self.join([job_group(job.pk)])
        self.accept()
        self.send_json({"type": "status", "status": job_status_payload(job)})
        self._send_from_database()
        job.refresh_from_db()
        if job.status in TERMINAL_STATUSES:
            self._end(job)

    def rights_changed(self) -> None:
        # Out of the job's team (or a role that may not see it): the job is out of sight.
        try:
            job_for_user(self.scope["user"], self.job_id)
        except NotFound:
            self.close(code=CLOSE_NOT_FOUND)

    def log_lines(self, message: dict[str, Any]) -> None:
        if self.ended or self.closing:
            return
        lines = [line for line in message["lines"] if line["seq"] > self.last_seq]
        if not lines:
            return
        if lines[0]["seq"] != self.last_seq + 1:
            self._send_from_database()  # a gap: read it back rather than skip it
            lines = [line for line in lines if line["seq"] > self.last_seq]
        if lines:
            self.send_json({"type": "lines", "lines": lines})
            self.last_seq = lines[-1]["seq"]

    def job_metrics(self, message: dict[str, Any]) -> None:
        if not (self.ended or self.closing):
            self.send_json({"type": "metrics", "points": message["points"]})

    def job_status(self, message: dict[str, Any]) -> None:
        if self.ended or self.closing:
            return
        status = message["status"]
        self.send_json({"type": "status", "status": status})
        if status["terminal"]:
            self._send_from_database()
            self._end(Job.objects.select_related("team").get(pk=self.job_id))

    def _send_from_database(self) -> None:
        while True:
            rows = lines_after(self.job_id, self.last_seq, BACKLOG_PAGE)
            if not rows:
                return
            self.send_json({"type": "lines", "lines": [to_wire(row) for row in rows]})
            self.last_seq = rows[-1].seq
            if len(rows) < BACKLOG_PAGE:
                return

    def _end(self, job: Job) -> None:
        self.ended = True
        self.send_json(
            {
                "type": "end",
                "status": job.status,
                "secondary_status": job.secondary_status,
                "failure_reason": job.failure_reason,
                "lines": self.last_seq,
            }
        )
        self.close(code=1000)
