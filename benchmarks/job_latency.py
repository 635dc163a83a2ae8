"""Job start-up and log latency: how soon a trivial job shows its first line and completes.

Four parts, one throw-away studio (see common.py):

(a) floor: `docker run --rm --network none studiolo/sklearn:latest python3 -c "print('x')"`,
    wall time and time to its first stdout byte (plus the same with the flags the Docker
    runtime adds, and with the in-container toolkit imported), N times each;
(b) N trivial script-mode jobs one after another: submit -> first log line at a websocket
    client, submit -> Completed, and where the time goes (the job's transitions and line
    timestamps);
(c) log line latency: a job printing 200 lines 20 ms apart, each with time.time() at print;
    receive time minus print time at the websocket client;
(d) burst: 50 jobs submitted at once; all must complete, each with its log and model;
(e) one job whose script sleeps 30 s (the public SageMaker report's case), end to end;
(f) line latency against the output rate: steady 200 ... 10,000 lines/s for a few seconds each.

Run: .venv/bin/python benchmarks/job_latency.py [--jobs 20] [--burst 50] [--out ...]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import subprocess
import sys
import tarfile
import threading
import time
from typing import Any

from common import (
    IMAGE,
    TEAM,
    TERMINAL,
    Client,
    Studio,
    add_studio_arguments,
    follow_log,
    loadavg,
    machine_facts,
    machine_markdown,
    ms,
    parse_time,
    secs,
    stamp_name,
    summary,
    timed_docker_run,
    write_results,
)

TRIVIAL_SCRIPT = """\
import os
print("hello", flush=True)
model_dir = os.environ.get("SM_MODEL_DIR", "/opt/ml/model")
with open(os.path.join(model_dir, "model.txt"), "w") as f:
    f.write("a trivial model\\n")
print("saved", os.path.join(model_dir, "model.txt"), flush=True)
"""

TICK_SCRIPT = """\
import time
for i in range({lines}):
    print(f"tick {{i}} {{time.time():.6f}}", flush=True)
    time.sleep({interval})
"""

# The flags compute.runtime.docker adds to every job container (see DockerRuntime._host_config),
# for an apples-to-apples floor; ml.local.small is 1 CPU, 1024 MB.
RUNTIME_FLAGS = [
    "--init",
    "--cpus",
    "1",
    "--memory",
    "1024m",
    "--memory-swap",
    "1024m",
    "--security-opt",
    "no-new-privileges",
    "--cap-drop",
    "ALL",
    *("--cap-add=CHOWN", "--cap-add=DAC_OVERRIDE", "--cap-add=FOWNER"),
    *("--cap-add=SETUID", "--cap-add=SETGID", "--cap-add=KILL"),
    "--user",
    "1000:1000",
]

SPEC_TARGET_FIRST_LOG_P50 = 1.5
SPEC_TARGET_LINE_P95 = 0.300
# Peer figures, cited in benchmarks/README.md (sagemaker-contract.md section 11, DESIGN.md).
PEER_SAGEMAKER_30S_JOB_END_TO_END = 8 * 60.0  # "a 30 s script took over 8 minutes end to end"
PEER_SAGEMAKER_STARTING_TO_TRAINING = 4 * 60.0  # "4 min from Starting to Training" (2024 log)
PEER_SAGEMAKER_WARM_POOL_START = 20.0  # warm pools: "under 20 seconds" start


# --- (a) the floor ------------------------------------------------------------------------------


def floor(runs: int) -> dict[str, Any]:
    variants = {
        "plain": ["docker", "run", "--rm", "--network", "none", IMAGE, "python3", "-c", "print('x')"],
        "runtime_flags": [
            "docker", "run", "--rm", "--network", "none", *RUNTIME_FLAGS,
            IMAGE, "python3", "-c", "print('x')",
        ],
        "runtime_flags_toolkit_import": [
            "docker", "run", "--rm", "--network", "none", *RUNTIME_FLAGS,
            IMAGE, "python3", "-c", "import studiolo_toolkit.training; print('x')",
        ],
    }  # fmt: skip
    result: dict[str, Any] = {"loadavg_before": loadavg()}
    for name, argv in variants.items():
        timed_docker_run(argv)  # one unrecorded run: page cache, image layers
        samples = [timed_docker_run(argv) for _ in range(runs)]
        result[name] = {
            "argv": argv,
            "wall": summary([s["wall"] for s in samples]),
            "first_byte": summary([s["first_byte"] for s in samples]),
            "failures": sum(1 for s in samples if s["exit_code"] != 0),
        }
        print(
            f"floor {name}: wall p50 {secs(result[name]['wall']['p50'])}, "
            f"first byte p50 {secs(result[name]['first_byte']['p50'])}",
            flush=True,
        )
    result["loadavg_after"] = loadavg()
    return result


# --- (b) sequential trivial jobs -----------------------------------------------------------------


def _first(transitions: list[dict[str, Any]], status: str, secondary: str) -> float | None:
    for t in transitions:
        if t["status"] == status and t["secondary_status"] == secondary:
            return parse_time(t["at"])
    return None


def _diff(later: float | None, earlier: float | None) -> float | None:
    if later is None or earlier is None:
        return None
    return later - earlier


def trivial_job(
    studio: Studio, client: Client, name: str, script: str = TRIVIAL_SCRIPT
) -> dict[str, Any]:
    """Submit a job running `script` (which prints "hello" first) and follow it to its end."""
    source_uri = client.upload_source(name, {"train.py": script})
    t0_wall, t0 = time.time(), time.perf_counter()
    job = client.submit(name, source_uri)
    posted = time.perf_counter()
    session = follow_log(studio.url, client.token, job["id"], timeout=300)
    first_hello = None
    hello_line: dict[str, Any] | None = None
    for received, line in session.lines():
        if line["stream"] == "stdout" and line["line"] == "hello":
            first_hello, hello_line = received, line
            break
    detail = client.job(job["id"])
    lines, _ = client.all_lines(job["id"])
    transitions = detail["transitions"]
    created = parse_time(detail["created_at"])
    starting = _first(transitions, "InProgress", "Starting")
    downloading = _first(transitions, "InProgress", "Downloading")
    training = _first(transitions, "InProgress", "Training")
    uploading = _first(transitions, "InProgress", "Uploading")
    completed = _first(transitions, "Completed", "Completed")
    container_line = next(
        (parse_time(x["at"]) for x in lines if x["line"] == "Starting the training container"),
        None,
    )
    hello_at = parse_time(hello_line["at"]) if hello_line else None
    end_wall = session.ended.wall if session.ended else None
    stages = {
        "post_to_created": _diff(created, t0_wall),
        "queue_pickup_pending_to_starting": _diff(starting, created),
        "starting_to_downloading": _diff(downloading, starting),
        "preparing_downloading_to_container_start": _diff(container_line, downloading),
        "docker_create_start_to_training": _diff(training, container_line),
        "training_to_first_line_at_worker": _diff(hello_at, training),
        "first_line_worker_to_client": _diff(first_hello.wall if first_hello else None, hello_at),
        "first_line_to_uploading": _diff(uploading, hello_at),
        "uploading_to_completed": _diff(completed, uploading),
        "completed_to_end_at_client": _diff(end_wall, completed),
    }
    return {
        "job_id": job["id"],
        "name": name,
        "status": detail["status"],
        "end_status": session.ended.message.get("status") if session.ended else None,
        "ws_error": session.error,
        "post_seconds": posted - t0,
        "ws_connect_seconds": session.connected - session.connect_started,
        "submit_to_first_log": first_hello.perf - t0 if first_hello else None,
        "submit_to_completed": session.ended.perf - t0 if session.ended else None,
        "first_log_printed_before_socket_open": hello_at is not None
        and hello_at < session.connected_wall,
        "stages": stages,
        "log_lines": detail["log_line_count"],
    }


def sequential(studio: Studio, client: Client, count: int) -> dict[str, Any]:
    result: dict[str, Any] = {"loadavg_before": loadavg()}
    warmup = trivial_job(studio, client, stamp_name("warmup"))
    print(
        f"warm-up job: first log {secs(warmup['submit_to_first_log'])}, "
        f"completed {secs(warmup['submit_to_completed'])}",
        flush=True,
    )
    jobs = []
    for i in range(count):
        job = trivial_job(studio, client, stamp_name(f"trivial{i}"))
        jobs.append(job)
        print(
            f"job {i + 1}/{count}: {job['status']}, first log {secs(job['submit_to_first_log'])}, "
            f"completed {secs(job['submit_to_completed'])}, load {loadavg()[0]}",
            flush=True,
        )
    result["loadavg_after"] = loadavg()
    result["warmup"] = warmup
    result["jobs"] = jobs
    result["completed"] = sum(1 for j in jobs if j["status"] == "Completed")
    result["submit_to_first_log"] = summary(
        [j["submit_to_first_log"] for j in jobs if j["submit_to_first_log"] is not None]
    )
    result["submit_to_completed"] = summary(
        [j["submit_to_completed"] for j in jobs if j["submit_to_completed"] is not None]
    )
    result["post_seconds"] = summary([j["post_seconds"] for j in jobs])
    result["stages"] = {
        stage: summary([j["stages"][stage] for j in jobs if j["stages"][stage] is not None])
        for stage in jobs[0]["stages"]
    }
    return result


# --- (c) log line latency --------------------------------------------------------------------------


def line_latency(
    studio: Studio, client: Client, lines: int, interval: float, script: str | None = None
) -> dict[str, Any]:
    before = loadavg()
    name = stamp_name("ticks")
    if script is None:
        script = TICK_SCRIPT.format(lines=lines, interval=interval)
    source_uri = client.upload_source(name, {"train.py": script})
    job = client.submit(name, source_uri)
    session = follow_log(studio.url, client.token, job["id"], timeout=600)
    total, to_worker, worker_to_client, stamps = [], [], [], []
    backlog = 0
    seen = set()
    for received, line in session.lines():
        parts = line["line"].split()
        if line["stream"] != "stdout" or len(parts) != 3 or parts[0] != "tick":
            continue
        printed = float(parts[2])
        seen.add(int(parts[1]))
        stamps.append(printed)
        if printed < session.connected_wall:
            backlog += 1  # printed before the socket was open: replayed, not live
            continue
        at = parse_time(line["at"])
        total.append(received.wall - printed)
        if at is not None:
            to_worker.append(at - printed)
            worker_to_client.append(received.wall - at)
    detail = client.job(job["id"])
    return {
        "job_id": job["id"],
        "status": detail["status"],
        "ws_error": session.error,
        "lines_printed": lines,
        "interval_seconds": interval,
        "lines_received": len(seen),
        "lines_replayed_from_backlog": backlog,
        "latency": summary(total),
        "print_to_worker": summary(to_worker),
        "worker_to_client": summary(worker_to_client),
        "lines_messages": sum(1 for m in session.messages if m.message.get("type") == "lines"),
        "achieved_lines_per_second": (len(stamps) - 1) / (max(stamps) - min(stamps))
        if len(stamps) > 1 and max(stamps) > min(stamps)
        else None,
        "loadavg_before": before,
        "loadavg_after": loadavg(),
    }


# --- (f) latency against the output rate ------------------------------------------------------------

RATE_SCRIPT = """\
import time
start = time.time()
for i in range({lines}):
    delay = start + i / {rate} - time.time()
    if delay > 0:
        time.sleep(delay)
    print(f"tick {{i}} {{time.time():.6f}}", flush=True)
"""


def rate_sweep(
    studio: Studio, client: Client, rates: list[int], seconds: float
) -> list[dict[str, Any]]:
    """Line latency at a steady output rate, for each rate: where live logs start lagging."""
    results = []
    for rate in rates:
        lines = int(rate * seconds)
        result = line_latency(
            studio, client, lines, 1 / rate, RATE_SCRIPT.format(lines=lines, rate=rate)
        )
        result["target_lines_per_second"] = rate
        results.append(result)
        print(
            f"rate {rate}/s: latency p50 {ms(result['latency'].get('p50'))} "
            f"p95 {ms(result['latency'].get('p95'))} max {ms(result['latency'].get('max'))}",
            flush=True,
        )
    return results


# --- (e) a 30 s script, end to end ----------------------------------------------------------------

LONG_SCRIPT = """\
import os, time
print("hello", flush=True)
time.sleep({seconds})
with open(os.path.join(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"), "model.txt"), "w") as f:
    f.write("a model\\n")
print("done", flush=True)
"""


def long_job(studio: Studio, client: Client, seconds: float) -> dict[str, Any]:
    before = loadavg()
    script = LONG_SCRIPT.format(seconds=seconds)
    result = trivial_job(studio, client, stamp_name("sleep"), script)
    end = result["submit_to_completed"]
    return {
        **result,
        "script_seconds": seconds,
        "overhead": end - seconds if end is not None else None,
        "loadavg_before": before,
        "loadavg_after": loadavg(),
    }


# --- (d) burst -------------------------------------------------------------------------------------


def _check_job(client: Client, job_id: int) -> dict[str, Any]:
    detail = client.job(job_id)
    lines, _ = client.all_lines(job_id)
    model_ok = False
    if detail.get("downloads", {}).get("model"):
        data = client.download(detail["downloads"]["model"])
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            names = archive.getnames()
        model_ok = any(n.endswith("model.txt") for n in names)
    created, ended = parse_time(detail["created_at"]), parse_time(detail["ended_at"])
    starting = _first(detail["transitions"], "InProgress", "Starting")
    return {
        "job_id": job_id,
        "status": detail["status"],
        "failure_reason": detail["failure_reason"][:300],
        "log_lines": detail["log_line_count"],
        "hello_in_log": any(x["stream"] == "stdout" and x["line"] == "hello" for x in lines),
        "stdout_lines": [x["line"] for x in lines if x["stream"] == "stdout"],
        "model_ok": model_ok,
        "created_to_ended": _diff(ended, created),
        "queue_wait": _diff(starting, created),
        "created": created,
        "ended": ended,
    }


def _both_lines(stdout: list[str]) -> bool:
    """The trivial script's two lines, exactly, in order."""
    return len(stdout) == 2 and stdout[0] == "hello" and stdout[1].startswith("saved ")


def burst(studio: Studio, count: int, threads: int, timeout: float) -> dict[str, Any]:
    before = loadavg()
    local = threading.local()
    prefix = stamp_name("burst")

    def submit(i: int) -> tuple[int, float]:
        if not hasattr(local, "client"):
            local.client = studio.client()
        name = f"{prefix}-{i}"
        uri = local.client.upload_source(name, {"train.py": TRIVIAL_SCRIPT})
        job = local.client.submit(name, uri)
        return int(job["id"]), time.time()

    t0_wall, t0 = time.time(), time.perf_counter()
    submit_errors: list[str] = []
    ids: list[int] = []
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for future in concurrent.futures.as_completed(
            [pool.submit(submit, i) for i in range(count)]
        ):
            try:
                ids.append(future.result()[0])
            except Exception as exc:
                submit_errors.append(f"{type(exc).__name__}: {exc}")
    submitted = time.perf_counter() - t0
    print(f"burst: {len(ids)} jobs submitted in {submitted:.2f} s", flush=True)

    client = studio.client()
    deadline = time.monotonic() + timeout
    peak_load = loadavg()
    while True:
        page = client.http.get(
            "/api/v1/jobs", params={"team": TEAM, "name": prefix, "limit": 500}
        ).json()
        states = {j["id"]: j["status"] for j in page["results"]}
        running = [i for i in ids if states.get(i) not in TERMINAL]
        peak_load = max(peak_load, loadavg(), key=lambda x: x[0])
        if not running or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    all_done = time.perf_counter() - t0
    checks = [_check_job(client, job_id) for job_id in sorted(ids)]
    leftover = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=io.studiolo.instance={studio.home}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    client.close()
    ended = [c["ended"] for c in checks if c["ended"] is not None]
    wall = (max(ended) - t0_wall) if ended else None
    completed = sum(1 for c in checks if c["status"] == "Completed")
    return {
        "jobs": count,
        "threads": threads,
        "submitted": len(ids),
        "submit_errors": submit_errors,
        "submit_seconds": submitted,
        "completed": completed,
        "not_completed": [c for c in checks if c["status"] != "Completed"],
        "timed_out": all_done > timeout,
        "with_hello_line": sum(1 for c in checks if c["hello_in_log"]),
        "with_model_archive": sum(1 for c in checks if c["model_ok"]),
        "with_both_stdout_lines": sum(1 for c in checks if _both_lines(c["stdout_lines"])),
        "lost": count - sum(1 for c in checks if c["status"] == "Completed" and _both_lines(c["stdout_lines"]) and c["model_ok"]),
        "wall_first_submit_to_last_completed": wall,
        "jobs_per_minute": (completed / wall * 60) if wall else None,
        "created_to_ended": summary([c["created_to_ended"] for c in checks if c["created_to_ended"] is not None]),
        "queue_wait": summary([c["queue_wait"] for c in checks if c["queue_wait"] is not None]),
        "containers_left": len(leftover),
        "loadavg_before": before,
        "loadavg_peak_seen": peak_load,
        "loadavg_after": loadavg(),
        "per_job": [{k: v for k, v in c.items() if k not in ("created", "ended")} for c in checks],
    }  # fmt: skip


# --- report --------------------------------------------------------------------------------------


def ratio(value: float | None, peer: float) -> str:
    if not value:
        return "-"
    return f"{peer / value:.0f}x faster" if value < peer else f"{value / peer:.1f}x slower"


def markdown(data: dict[str, Any]) -> str:
    f, s, c, b = data["floor"], data["sequential"], data["line_latency"], data["burst"]
    lj = data.get("long_job")
    first, done = s["submit_to_first_log"], s["submit_to_completed"]
    out = [
        "# Job latency",
        "",
        machine_markdown(data["machine"]),
        f"Studio ready in {data['studio_ready_seconds']:.1f} s (`studiolo up`, embedded SQLite + Redis, Docker runtime).",
        "",
        "## Targets",
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
        f"| p50 submit -> first log line < 1.5 s | {secs(first.get('p50'))} | {'met' if data['targets']['first_log_p50'] else 'MISSED'} |",
        f"| log line latency p95 < 300 ms | {ms(c['latency'].get('p95'))} | {'met' if data['targets']['line_latency_p95'] else 'MISSED'} |",
        f"| {b['jobs']} jobs at once, none lost | {b['completed']}/{b['jobs']} Completed, {b['lost']} lost | {'met' if data['targets']['burst_none_lost'] else 'MISSED'} |",
        "",
        f"## (a) Floor: raw `docker run` ({f['plain']['wall']['n']} runs each, load {f['loadavg_before']} -> {f['loadavg_after']})",
        "",
        "| variant | wall p50 | wall p95 | first byte p50 | first byte p95 |",
        "|---|---|---|---|---|",
    ]
    for name in ("plain", "runtime_flags", "runtime_flags_toolkit_import"):
        v = f[name]
        out.append(
            f"| {name} | {secs(v['wall']['p50'])} | {secs(v['wall']['p95'])} | "
            f"{secs(v['first_byte']['p50'])} | {secs(v['first_byte']['p95'])} |"
        )
    out += [
        "",
        f"## (b) {first['n']} trivial jobs, one after another (load {s['loadavg_before']} -> {s['loadavg_after']})",
        "",
        "| measure | p50 | p95 | max |",
        "|---|---|---|---|",
        f"| submit -> first log line at websocket client | {secs(first['p50'])} | {secs(first['p95'])} | {secs(first['max'])} |",
        f"| submit -> Completed (`end` at client) | {secs(done['p50'])} | {secs(done['p95'])} | {secs(done['max'])} |",
        f"| POST /api/v1/jobs | {ms(s['post_seconds']['p50'])} | {ms(s['post_seconds']['p95'])} | {ms(s['post_seconds']['max'])} |",
        "",
        f"Completed {s['completed']}/{first['n']}. Warm-up job (not counted): first log "
        f"{secs(s['warmup']['submit_to_first_log'])}, Completed {secs(s['warmup']['submit_to_completed'])}.",
        "",
        "Where the time goes (server timestamps: transitions and line `at`; same clock):",
        "",
        "| stage | p50 | p95 |",
        "|---|---|---|",
    ]
    for stage, v in s["stages"].items():
        out.append(f"| {stage} | {ms(v.get('p50'))} | {ms(v.get('p95'))} |")
    out += [
        "",
        f"## (c) Log line latency: {c['lines_printed']} lines, {c['interval_seconds'] * 1000:.0f} ms apart (load {c['loadavg_before']} -> {c['loadavg_after']})",
        "",
        "| measure | p50 | p95 | max |",
        "|---|---|---|---|",
        f"| printed -> received by websocket client | {ms(c['latency'].get('p50'))} | {ms(c['latency'].get('p95'))} | {ms(c['latency'].get('max'))} |",
        f"| printed -> read by the worker (docker log stream) | {ms(c['print_to_worker'].get('p50'))} | {ms(c['print_to_worker'].get('p95'))} | {ms(c['print_to_worker'].get('max'))} |",
        f"| worker -> client (flush, database, channel layer, websocket) | {ms(c['worker_to_client'].get('p50'))} | {ms(c['worker_to_client'].get('p95'))} | {ms(c['worker_to_client'].get('max'))} |",
        "",
        f"{c['lines_received']}/{c['lines_printed']} lines received ({c['lines_replayed_from_backlog']} printed before the socket opened, excluded), in {c['lines_messages']} messages.",
        "",
        f"## (d) Burst: {b['jobs']} jobs submitted at once ({b['threads']} threads; load {b['loadavg_before']}, peak seen {b['loadavg_peak_seen']}, after {b['loadavg_after']})",
        "",
        f"- submitted in {secs(b['submit_seconds'])} (upload + POST each), {len(b['submit_errors'])} submit errors",
        f"- Completed {b['completed']}/{b['jobs']}; with exactly their two stdout lines {b['with_both_stdout_lines']}; with a model.tar.gz holding model.txt {b['with_model_archive']}; lost {b['lost']}",
        f"- first submit -> last Completed {secs(b['wall_first_submit_to_last_completed'])}: {b['jobs_per_minute'] and round(b['jobs_per_minute'], 1)} jobs/minute (worker concurrency 2)",
        f"- per job created -> ended p50 {secs(b['created_to_ended'].get('p50'))}, p95 {secs(b['created_to_ended'].get('p95'))}; queue wait p50 {secs(b['queue_wait'].get('p50'))}, max {secs(b['queue_wait'].get('max'))}",
        f"- job containers left behind: {b['containers_left']}",
        "",
        *(
            [
                f"## (e) A {lj['script_seconds']:g} s script (the public SageMaker report's case; load {lj['loadavg_before']} -> {lj['loadavg_after']})",
                "",
                f"Submit -> first log line {secs(lj['submit_to_first_log'])}, submit -> Completed {secs(lj['submit_to_completed'])}: "
                f"{secs(lj['overhead'])} of platform overhead around the script. Stages: "
                + ", ".join(f"{k} {ms(v)}" for k, v in lj["stages"].items()),
                "",
            ]
            if lj
            else []
        ),
        *(
            [
                f"## (f) Line latency against the output rate ({data['rate_sweep'][0]['lines_printed'] / data['rate_sweep'][0]['target_lines_per_second']:g} s of output per rate)",
                "",
                "| target rate | achieved | lines received | p50 | p95 | max | load before -> after |",
                "|---|---|---|---|---|---|---|",
                *(
                    f"| {r['target_lines_per_second']}/s | {r['achieved_lines_per_second'] and round(r['achieved_lines_per_second'])}/s | "
                    f"{r['lines_received']}/{r['lines_printed']} | {ms(r['latency'].get('p50'))} | {ms(r['latency'].get('p95'))} | "
                    f"{ms(r['latency'].get('max'))} | {r['loadavg_before'][0]} -> {r['loadavg_after'][0]} |"
                    for r in data["rate_sweep"]
                ),
                "",
            ]
            if data.get("rate_sweep")
            else []
        ),
        "## Against the peers and the floor",
        "",
        "| comparison | ours | reference | ratio |",
        "|---|---|---|---|",
        *(
            [
                f"| a {lj['script_seconds']:g} s script, submit -> Completed, vs SageMaker's 30 s script taking over 8 min end to end (DESIGN.md) | {secs(lj['submit_to_completed'])} | > 480 s | {ratio(lj['submit_to_completed'], PEER_SAGEMAKER_30S_JOB_END_TO_END)} |",
                f"| its platform overhead (end to end minus the script's {lj['script_seconds']:g} s) vs SageMaker's (> 480 s - 30 s) | {secs(lj['overhead'])} | > 450 s | {ratio(lj['overhead'], PEER_SAGEMAKER_30S_JOB_END_TO_END - 30)} |",
            ]
            if lj
            else []
        ),
        f"| p50 submit -> Completed of the trivial job vs SageMaker's 30 s script taking over 8 min (DESIGN.md) | {secs(done['p50'])} | > 480 s | {ratio(done['p50'], PEER_SAGEMAKER_30S_JOB_END_TO_END)} |",
        f"| p50 Pending -> Training (queue pickup included) vs SageMaker's 4 min Starting -> Training (contract section 11) | {secs(data['ratios']['pending_to_training_p50'])} | 240 s | {ratio(data['ratios']['pending_to_training_p50'], PEER_SAGEMAKER_STARTING_TO_TRAINING)} |",
        f'| p50 submit -> first log vs SageMaker warm pools\' "under 20 seconds" start | {secs(first["p50"])} | 20 s | {ratio(first["p50"], PEER_SAGEMAKER_WARM_POOL_START)} |',
        f"| p50 submit -> first log vs raw `docker run` first byte (runtime flags, same run) | {secs(first['p50'])} | {secs(f['runtime_flags']['first_byte']['p50'])} | {data['ratios']['first_log_over_floor']:.1f}x the floor |",
        f"| p50 submit -> Completed vs raw `docker run` wall (runtime flags, same run) | {secs(done['p50'])} | {secs(f['runtime_flags']['wall']['p50'])} | {data['ratios']['completed_over_floor']:.1f}x the floor |",
    ]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_studio_arguments(parser, "job_latency")
    parser.add_argument("--jobs", type=int, default=20, help="sequential trivial jobs")
    parser.add_argument("--floor-runs", type=int, default=20)
    parser.add_argument("--lines", type=int, default=200, help="lines of the latency job")
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between its lines")
    parser.add_argument("--burst", type=int, default=50, help="jobs submitted at once")
    parser.add_argument("--burst-threads", type=int, default=8)
    parser.add_argument("--burst-timeout", type=float, default=900.0)
    parser.add_argument(
        "--sweep-rates",
        default="200,1000,3000,10000",
        help="lines/s for the latency-against-rate sweep (comma-separated; empty skips)",
    )
    parser.add_argument("--sweep-seconds", type=float, default=3.0, help="printing time per rate")
    parser.add_argument(
        "--long-script-seconds",
        type=float,
        default=30.0,
        help="also run one job sleeping this long (the public SageMaker report's 30 s script); 0 skips",
    )
    args = parser.parse_args()

    facts = machine_facts()
    print(f"load average {facts['loadavg_at_start']}; floor first", flush=True)
    data: dict[str, Any] = {"machine": facts, "floor": floor(args.floor_runs)}
    studio = Studio(
        database_url=args.database_url, redis_url=args.redis_url, keep_home=args.keep_home
    )
    studio.start()
    try:
        print(f"studio at {studio.url} (data in {studio.home})", flush=True)
        data["studio_ready_seconds"] = studio.ready_seconds
        data["studio"] = {
            "database": "external" if args.database_url else "sqlite (embedded)",
            "redis": "external" if args.redis_url else "embedded",
        }
        client = studio.client()
        data["sequential"] = sequential(studio, client, args.jobs)
        data["line_latency"] = line_latency(studio, client, args.lines, args.interval)
        c = data["line_latency"]
        print(
            f"line latency p50 {ms(c['latency'].get('p50'))} p95 {ms(c['latency'].get('p95'))}",
            flush=True,
        )
        if args.long_script_seconds > 0:
            data["long_job"] = long_job(studio, client, args.long_script_seconds)
            print(
                f"{args.long_script_seconds:g} s script: {data['long_job']['submit_to_completed']:.2f} s",
                flush=True,
            )
        if args.sweep_rates:
            rates = [int(x) for x in args.sweep_rates.split(",") if x]
            data["rate_sweep"] = rate_sweep(studio, client, rates, args.sweep_seconds)
        client.close()
        data["burst"] = burst(studio, args.burst, args.burst_threads, args.burst_timeout)
    finally:
        studio.stop()
    facts["loadavg_at_end"] = loadavg()
    s, f = data["sequential"], data["floor"]
    pending_to_training = [
        j["stages"]["queue_pickup_pending_to_starting"]
        + j["stages"]["starting_to_downloading"]
        + j["stages"]["preparing_downloading_to_container_start"]
        + j["stages"]["docker_create_start_to_training"]
        for j in s["jobs"]
        if None
        not in (
            j["stages"]["queue_pickup_pending_to_starting"],
            j["stages"]["starting_to_downloading"],
            j["stages"]["preparing_downloading_to_container_start"],
            j["stages"]["docker_create_start_to_training"],
        )
    ]
    data["ratios"] = {
        "pending_to_training_p50": summary(pending_to_training).get("p50"),
        "first_log_over_floor": (s["submit_to_first_log"]["p50"] or 0)
        / f["runtime_flags"]["first_byte"]["p50"],
        "completed_over_floor": (s["submit_to_completed"]["p50"] or 0)
        / f["runtime_flags"]["wall"]["p50"],
        "completed_vs_sagemaker_8min": PEER_SAGEMAKER_30S_JOB_END_TO_END
        / (s["submit_to_completed"]["p50"] or 1),
    }
    first_p50 = s["submit_to_first_log"].get("p50")
    line_p95 = data["line_latency"]["latency"].get("p95")
    data["targets"] = {
        "first_log_p50": first_p50 is not None and first_p50 < SPEC_TARGET_FIRST_LOG_P50,
        "line_latency_p95": line_p95 is not None and line_p95 < SPEC_TARGET_LINE_P95,
        "burst_none_lost": data["burst"]["lost"] == 0 and not data["burst"]["submit_errors"],
    }
    write_results(args.out, data, markdown(data))
    print(markdown(data))
    return 0 if all(data["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
