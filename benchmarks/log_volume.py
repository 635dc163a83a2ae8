"""Log volume: one job printing 100,000 lines (~80 bytes each) as fast as it can.

Checks that every line is kept and measures what it costs: ingestion rate, total job time,
the stored count (exactly N stdout lines, in order, plus the platform's system lines), paging
through the REST logs API (limit=10000), downloading the whole log, the database growth, a
websocket client receiving all N lines, and the CPU the studio's processes spent. The floor
is the same script under a bare `docker run` (the container alone printing the lines).

Run: .venv/bin/python benchmarks/log_volume.py [--lines 100000] [--out ...]
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

from common import (
    IMAGE,
    Received,
    Studio,
    add_studio_arguments,
    cpu_delta,
    cpu_seconds,
    follow_log,
    loadavg,
    machine_facts,
    machine_markdown,
    parse_time,
    secs,
    stamp_name,
    summary,
    timed_docker_run,
    write_results,
)
from job_latency import RUNTIME_FLAGS

SCRIPT = """\
import time
pad = "x" * 49
for i in range({lines}):
    print(f"line {{i:06d}} {{time.time():.6f}} {{pad}}")
"""  # "line 000123 1764250000.123456 " + 49 x = 79 characters + newline = 80 bytes


def sqlite_logical(path: Path | None) -> dict[str, Any]:
    """The database as SQLite sees it (WAL included): total bytes and the log table's share."""
    if path is None or not path.exists():
        return {}
    uri = f"file:{path}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as db:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        tables: dict[str, int] = {}
        with contextlib.suppress(sqlite3.DatabaseError):  # dbstat is a compile-time option
            for name, size in db.execute(
                "SELECT name, SUM(pgsize) FROM dbstat "
                "WHERE name LIKE 'jobs_joblogline%' OR name LIKE 'joblog_%' "
                "OR name LIKE 'sqlite_autoindex_jobs_joblogline%' GROUP BY name"
            ):
                tables[name] = int(size)
    return {"bytes": page_size * pages, "log_table_and_indexes": tables}


def floor(lines: int) -> dict[str, Any]:
    before = loadavg()
    argv = [
        "docker", "run", "--rm", "--network", "none", *RUNTIME_FLAGS,
        "-e", "PYTHONUNBUFFERED=1",
        IMAGE, "python3", "-c", SCRIPT.format(lines=lines),
    ]  # fmt: skip
    runs = [timed_docker_run(argv) for _ in range(3)]
    best = min(runs, key=lambda r: r["wall"])
    return {
        "argv_head": argv[:-1] + ["<script>"],
        "runs_wall": [round(r["wall"], 3) for r in runs],
        "wall": best["wall"],
        "lines": best["lines"],
        "bytes": best["bytes"],
        "loadavg_before": before,
        "loadavg_after": loadavg(),
    }


class CountPoller(threading.Thread):
    """Reads the job's stored line count every `every` seconds (GET /api/v1/jobs/<id>)."""

    def __init__(self, studio: Studio, job_id: int, every: float = 0.25) -> None:
        super().__init__(name="count-poller", daemon=True)
        self.client = studio.client()
        self.job_id = job_id
        self.every = every
        self.samples: list[tuple[float, int, str]] = []  # (perf_counter, count, status)
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            job = self.client.job(self.job_id)
            self.samples.append((time.perf_counter(), job["log_line_count"], job["status"]))
            if job["status"] in ("Completed", "Failed", "Stopped"):
                return
            self.stop.wait(self.every)


def run_job(studio: Studio, lines: int) -> dict[str, Any]:
    client = studio.client()
    name = stamp_name("volume")
    source_uri = client.upload_source(name, {"train.py": SCRIPT.format(lines=lines)})
    db_before = studio.database_bytes()
    logical_before = sqlite_logical(studio.sqlite_path)
    cpu_before = cpu_seconds(studio.process.pid) if studio.process else {}
    load_before = loadavg()

    counted = {"stdout": 0, "first": 0.0, "last": 0.0}
    lags: list[float] = []  # receive time minus print time, per line (same clock)
    printed: list[float] = []

    def on_message(received: Received) -> None:
        if received.message.get("type") != "lines":
            return
        n = 0
        for line in received.message["lines"]:
            if line["stream"] == "stdout" and line["line"].startswith("line "):
                n += 1
                at = float(line["line"].split()[2])
                printed.append(at)
                lags.append(received.wall - at)
        if n:
            if not counted["stdout"]:
                counted["first"] = received.perf
            counted["stdout"] += n
            counted["last"] = received.perf

    t0_wall, t0 = time.time(), time.perf_counter()
    job = client.submit(name, source_uri)
    poller = CountPoller(studio, job["id"])
    poller.start()
    session = follow_log(studio.url, client.token, job["id"], timeout=1800, on_message=on_message)
    poller.join(timeout=60)
    poller.stop.set()
    end_perf = session.ended.perf if session.ended else None
    cpu_after = cpu_seconds(studio.process.pid) if studio.process else {}
    load_after = loadavg()

    # The websocket's view: every stdout line once, in order.
    ws_indices = [
        int(line["line"].split()[1])
        for _, line in session.lines()
        if line["stream"] == "stdout" and line["line"].startswith("line ")
    ]
    ws_seqs = [line["seq"] for _, line in session.lines()]

    detail = client.job(job["id"])
    started = time.perf_counter()
    stored, pages = client.all_lines(job["id"], limit=10000)
    paging_seconds = time.perf_counter() - started
    started = time.perf_counter()
    download = client.download_log(job["id"])
    download_seconds = time.perf_counter() - started
    db_after = studio.database_bytes()
    logical_after = sqlite_logical(studio.sqlite_path)
    client.close()

    stdout = [x for x in stored if x["stream"] == "stdout"]
    indices = [int(x["line"].split()[1]) for x in stdout if x["line"].startswith("line ")]
    seqs = [x["seq"] for x in stored]
    stdout_at = [parse_time(x["at"]) for x in stdout]
    first_at = stdout_at[0] if stdout_at else None
    last_at = stdout_at[-1] if stdout_at else None
    final_count = detail["log_line_count"]
    reached = next((t for t, n, _ in poller.samples if n >= final_count), None)
    transitions = {
        (t["status"], t["secondary_status"]): parse_time(t["at"])
        for t in reversed(detail["transitions"])
    }
    training = transitions.get(("InProgress", "Training"))
    uploading = transitions.get(("InProgress", "Uploading"))
    created, ended = parse_time(detail["created_at"]), parse_time(detail["ended_at"])
    ws_span = counted["last"] - counted["first"] if counted["stdout"] else None
    return {
        "job_id": job["id"],
        "status": detail["status"],
        "failure_reason": detail["failure_reason"],
        "ws_error": session.error,
        "lines_printed": lines,
        "stored": {
            "log_line_count": final_count,
            "rows_returned": len(stored),
            "stdout_lines": len(stdout),
            "system_lines": sum(1 for x in stored if x["stream"] == "system"),
            "stderr_lines": sum(1 for x in stored if x["stream"] == "stderr"),
            "exactly_all_stdout_in_order": indices == list(range(lines)),
            "seq_contiguous": seqs == list(range(1, len(seqs) + 1)),
        },
        "ingest": {
            "first_to_last_line_read_by_worker": (last_at - first_at)
            if first_at and last_at
            else None,
            "first_line_read_to_count_complete": (reached - t0) - (first_at - t0_wall)
            if reached and first_at
            else None,
            "lines_per_second_read_by_worker": lines / (last_at - first_at)
            if first_at and last_at and last_at > first_at
            else None,
            "lines_per_second_at_websocket": lines / ws_span if ws_span else None,
            "training_to_uploading": (uploading - training) if training and uploading else None,
        },
        "job_time": {
            "created_to_ended": (ended - created) if created and ended else None,
            "submit_to_end_at_client": (end_perf - t0) if end_perf else None,
            "submit_to_first_line_at_client": (counted["first"] - t0)
            if counted["stdout"]
            else None,
        },
        "websocket": {
            "stdout_lines_received": counted["stdout"],
            "exactly_all_stdout_in_order": ws_indices == list(range(lines)),
            "no_repeated_seq": len(ws_seqs) == len(set(ws_seqs)),
            "first_to_last_line": ws_span,
            "messages": len(session.messages),
            "lag_printed_to_received": summary(lags),
            "container_print_span": (max(printed) - min(printed)) if printed else None,
        },
        "rest_paging": {
            "limit": 10000,
            "pages": pages,
            "seconds": paging_seconds,
            "lines_per_second": len(stored) / paging_seconds if paging_seconds else None,
        },
        "download": {
            "seconds": download_seconds,
            "bytes": len(download),
            "lines": download.count(b"\n"),
            "mb_per_second": len(download) / 1e6 / download_seconds if download_seconds else None,
        },
        "database": {
            "files_before": db_before,
            "files_after": db_after,
            "files_growth": db_after.get("total", 0) - db_before.get("total", 0),
            "logical_before": logical_before,
            "logical_after": logical_after,
            "logical_growth": logical_after.get("bytes", 0) - logical_before.get("bytes", 0),
            "logical_bytes_per_line": (
                (logical_after.get("bytes", 0) - logical_before.get("bytes", 0)) / lines
            ),
        },
        "cpu_seconds": cpu_delta(cpu_before, cpu_after),
        "count_samples": len(poller.samples),
        "per_message_lines": summary(
            [
                float(len(m.message["lines"]))
                for m in session.messages
                if m.message.get("type") == "lines"
            ]
        ),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
    }


def markdown(data: dict[str, Any]) -> str:
    j, f = data["job"], data["floor"]
    st, ing, jt, ws = j["stored"], j["ingest"], j["job_time"], j["websocket"]
    rp, dl, db = j["rest_paging"], j["download"], j["database"]

    def rate(value: float | None) -> str:
        return "-" if value is None else f"{value:,.0f} lines/s"

    ok = "yes" if data["holds"] else "NO"
    out = [
        f"# Log volume: {j['lines_printed']:,} lines in one job",
        "",
        machine_markdown(data["machine"]),
        f"Load average around the job: {j['loadavg_before']} -> {j['loadavg_after']}.",
        "",
        f"**Every line kept: {ok}** (job {j['status']}; {st['stdout_lines']:,} stdout lines stored, "
        f"exactly 0..{j['lines_printed'] - 1} in order: {st['exactly_all_stdout_in_order']}; "
        f"+{st['system_lines']} system lines; log_line_count {st['log_line_count']:,}; "
        f"seq contiguous: {st['seq_contiguous']}).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| floor: same script under bare `docker run` (runtime flags, best of 3) | {secs(f['wall'])} ({f['lines']:,} lines; runs {f['runs_wall']}) |",
        f"| job: Training -> Uploading (container running, as the worker sees it) | {secs(ing['training_to_uploading'])} |",
        f"| job: created -> Completed | {secs(jt['created_to_ended'])} |",
        f"| job: submit -> `end` at the websocket client | {secs(jt['submit_to_end_at_client'])} |",
        f"| first -> last line read by the worker | {secs(ing['first_to_last_line_read_by_worker'])} ({rate(ing['lines_per_second_read_by_worker'])}) |",
        f"| first line read -> stored count complete (polled every 0.25 s) | {secs(ing['first_line_read_to_count_complete'])} |",
        f"| container: first -> last line printed (inside the job) | {secs(ws['container_print_span'])} |",
        f"| websocket: first -> last line received | {secs(ws['first_to_last_line'])} ({rate(ing['lines_per_second_at_websocket'])}) |",
        f"| websocket: line printed -> received, p50 / p95 / max | {secs(ws['lag_printed_to_received'].get('p50'))} / {secs(ws['lag_printed_to_received'].get('p95'))} / {secs(ws['lag_printed_to_received'].get('max'))} |",
        f"| websocket: stdout lines received, all in order, no repeats | {ws['stdout_lines_received']:,}, {ws['exactly_all_stdout_in_order']}, {ws['no_repeated_seq']} ({ws['messages']} messages) |",
        f"| REST: page through all lines, limit=10000 | {secs(rp['seconds'])} ({rp['pages']} pages, {rate(rp['lines_per_second'])}) |",
        f"| REST: download the whole log | {secs(dl['seconds'])} ({dl['bytes'] / 1e6:.1f} MB, {dl['lines']:,} lines, {dl['mb_per_second']:.1f} MB/s) |",
        f"| SQLite growth (logical, WAL included) | {db['logical_growth'] / 1e6:.1f} MB ({db['logical_bytes_per_line']:.0f} bytes/line) |",
        f"| SQLite growth (files: main + -wal + -shm) | {db['files_growth'] / 1e6:.1f} MB |",
        f"| CPU seconds spent during the job | {', '.join(f'{k} {v}' for k, v in j['cpu_seconds'].items())} |",
        "",
        f"Job time over the floor: {data['ratios']['job_over_floor']:.1f}x (created -> Completed vs bare `docker run`).",
    ]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_studio_arguments(parser, "log_volume")
    parser.add_argument("--lines", type=int, default=100_000)
    args = parser.parse_args()

    facts = machine_facts()
    print(f"load average {facts['loadavg_at_start']}; floor first", flush=True)
    data: dict[str, Any] = {"machine": facts, "floor": floor(args.lines)}
    print(f"floor: {data['floor']['wall']:.2f} s for {data['floor']['lines']} lines", flush=True)
    studio = Studio(
        database_url=args.database_url, redis_url=args.redis_url, keep_home=args.keep_home
    )
    studio.start()
    try:
        print(f"studio at {studio.url} (data in {studio.home})", flush=True)
        data["studio_ready_seconds"] = studio.ready_seconds
        data["job"] = run_job(studio, args.lines)
    finally:
        studio.stop()
    facts["loadavg_at_end"] = loadavg()
    j = data["job"]
    data["holds"] = (
        j["status"] == "Completed"
        and j["stored"]["exactly_all_stdout_in_order"]
        and j["stored"]["seq_contiguous"]
        and j["websocket"]["exactly_all_stdout_in_order"]
        and j["download"]["lines"] == j["stored"]["rows_returned"]
    )
    created_to_ended = j["job_time"]["created_to_ended"] or 0.0
    data["ratios"] = {"job_over_floor": created_to_ended / data["floor"]["wall"]}
    write_results(args.out, data, markdown(data))
    print(markdown(data))
    return 0 if data["holds"] else 1


if __name__ == "__main__":
    sys.exit(main())
