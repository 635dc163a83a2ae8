"""Jobs of several instances: how long until all N containers run, for N = 1, 2, 4.

Starts a throw-away studio (`benchmarks/common.py`), then for each N submits a warm-up job and
`--runs` measured jobs of N instances, one after another. Each job's script prints
`ready <host>` on every instance at once and exits. Measured per job:

- submit -> every instance's `ready` line received at the websocket client (the user's view of
  "all N containers run");
- on the server's clock (the job's transitions and its log lines' `at`): created -> the
  "Starting the training container(s)" line (queue, preparation of N folders, the job's
  network), that line -> Training (N containers created and started in parallel), and
  Training -> the last instance's `ready` line as the worker read it;
- submit -> Completed.

Target (issue #15): p50 of submit -> all running at N = 4 at most 1 s over N = 1's. Peer: the
same container started with a bare `docker run` (the floor every N pays once per instance).

Then a processing job's overhead per step: a script processor (sklearn image) that reads a
1,000-row CSV input and writes two CSV outputs, `--runs` times, against a bare `docker run` of
the same script with the same input folder and output folders mounted (the peer: what a
user's own script costs without the platform). Steps from the job's transitions: queue ->
Starting, Downloading (the input), container start -> Processing, Processing (the script:
container and Python start-up included), Uploading (the outputs) -> Completed.
Writes benchmarks/results/cluster_jobs.{json,md}; exits 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    Client,
    Studio,
    add_studio_arguments,
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

READY_SCRIPT = """
import os
print("ready", os.environ["SM_CURRENT_HOST"], flush=True)
"""

PROCESS_SCRIPT = """
import csv, os
rows = list(csv.reader(open("/opt/ml/processing/input/raw/data.csv")))
half = len(rows) // 2
for name, part in (("train", rows[:half]), ("test", rows[half:])):
    folder = f"/opt/ml/processing/{name}"
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name + ".csv"), "w", newline="") as out:
        csv.writer(out).writerows(part)
print("split", len(rows), flush=True)
"""

CSV = "".join(f"{i},{i % 7},{i * 0.5}\n" for i in range(1000))

TARGET_EXTRA_SECONDS_AT_4 = 1.0
COUNTS = (1, 2, 4)


def _first(transitions: list[dict[str, Any]], status: str, secondary: str) -> float | None:
    for item in transitions:
        if item["status"] == status and item["secondary_status"] == secondary:
            return parse_time(item["at"])
    return None


def cluster_job(studio: Studio, client: Client, count: int, name: str) -> dict[str, Any]:
    source_uri = client.upload_source(name, {"train.py": READY_SCRIPT})
    t0_wall, t0 = time.time(), time.perf_counter()
    job = client.submit(name, source_uri, instance_count=count)
    session = follow_log(studio.url, client.token, job["id"], timeout=300)
    wanted = {f"algo-{number}" for number in range(1, count + 1)}
    seen: dict[str, float] = {}
    for received, line in session.lines():
        text = line["line"]
        if line["stream"] == "stdout" and text.startswith("ready "):
            host = text.split()[1]
            if host in wanted and host not in seen:
                seen[host] = received.perf - t0
    detail = client.job(job["id"])
    lines, _ = client.all_lines(job["id"])
    created = parse_time(detail["created_at"])
    training = _first(detail["transitions"], "InProgress", "Training")
    container_line = next(
        (
            parse_time(x["at"])
            for x in lines
            if x["line"].startswith("Starting the training container")
        ),
        None,
    )
    ready_at = [
        parse_time(x["at"])
        for x in lines
        if x["stream"] == "stdout" and x["line"].startswith("ready ")
    ]
    last_ready = max((t for t in ready_at if t is not None), default=None)

    def diff(later: float | None, earlier: float | None) -> float | None:
        return later - earlier if later is not None and earlier is not None else None

    return {
        "job_id": job["id"],
        "instances": count,
        "status": detail["status"],
        "failure_reason": detail.get("failure_reason", ""),
        "ws_error": session.error,
        "hosts_ready": sorted(seen),
        "submit_to_all_running": max(seen.values()) if set(seen) == wanted else None,
        "submit_to_completed": session.ended.perf - t0 if session.ended else None,
        "stages": {
            "post_to_created": diff(created, t0_wall),
            "created_to_container_start": diff(container_line, created),
            "containers_create_start_to_training": diff(training, container_line),
            "training_to_last_ready_at_worker": diff(last_ready, training),
        },
    }


def run_count(studio: Studio, client: Client, count: int, runs: int) -> dict[str, Any]:
    result: dict[str, Any] = {"instances": count, "loadavg_before": loadavg()}
    result["warmup"] = cluster_job(studio, client, count, stamp_name(f"warm{count}"))
    jobs = []
    for index in range(runs):
        job = cluster_job(studio, client, count, stamp_name(f"n{count}-{index}"))
        jobs.append(job)
        print(
            f"N={count} job {index + 1}/{runs}: {job['status']}, all running "
            f"{secs(job['submit_to_all_running'])}, completed {secs(job['submit_to_completed'])}",
            flush=True,
        )
    result["loadavg_after"] = loadavg()
    result["jobs"] = jobs
    result["completed"] = sum(1 for j in jobs if j["status"] == "Completed")
    for measure in ("submit_to_all_running", "submit_to_completed"):
        result[measure] = summary([j[measure] for j in jobs if j[measure] is not None])
    result["stages"] = {
        stage: summary([j["stages"][stage] for j in jobs if j["stages"][stage] is not None])
        for stage in jobs[0]["stages"]
    }
    return result


def floor(runs: int) -> dict[str, Any]:
    argv = [
        "docker", "run", "--rm", "--network", "none", "--init",
        "--entrypoint", "python3", "studiolo/sklearn:latest", "-c", "print('ready')",
    ]  # fmt: skip
    timed_docker_run(argv)  # not recorded: warms the engine's caches
    samples = [timed_docker_run(argv) for _ in range(runs)]
    return {
        "argv": argv,
        "wall": summary([s["wall"] for s in samples]),
        "first_byte": summary([s["first_byte"] for s in samples if s["first_byte"] is not None]),
    }


def processing_job(client: Client, name: str, code_uri: str, raw_uri: str) -> dict[str, Any]:
    t0_wall, t0 = time.time(), time.perf_counter()
    body = {
        "name": name,
        "framework": "sklearn",
        "code": code_uri,
        "instance_type": "ml.local.small",
        "inputs": [{"name": "raw", "uri": raw_uri}],
        "outputs": [
            {"name": "train", "local_path": "/opt/ml/processing/train"},
            {"name": "test", "local_path": "/opt/ml/processing/test"},
        ],
    }
    response = client.http.post("/api/v1/processing-jobs", json=body)
    if response.is_error:
        raise RuntimeError(f"processing job: {response.status_code} {response.text[:300]}")
    job = client.wait_terminal(response.json()["id"], timeout=300)
    done = time.perf_counter() - t0
    transitions = job["transitions"]
    created = parse_time(job["created_at"])
    starting = _first(transitions, "InProgress", "Starting")
    downloading = _first(transitions, "InProgress", "Downloading")
    processing = _first(transitions, "InProgress", "Processing")
    uploading = _first(transitions, "InProgress", "Uploading")
    completed = _first(transitions, "Completed", "Completed")

    def diff(later: float | None, earlier: float | None) -> float | None:
        return later - earlier if later is not None and earlier is not None else None

    return {
        "job_id": job["id"],
        "status": job["status"],
        "submit_to_completed_polled": done,
        "steps": {
            "post_to_created": diff(created, t0_wall),
            "queue_to_starting": diff(starting, created),
            "starting_to_downloading": diff(downloading, starting),
            "downloading_and_container_start": diff(processing, downloading),
            "processing": diff(uploading, processing),
            "uploading_to_completed": diff(completed, uploading),
            "created_to_completed": diff(completed, created),
        },
    }


def processing_overhead(client: Client, runs: int) -> dict[str, Any]:
    """The platform's processing job against a bare `docker run` of the same script."""
    code = client.upload(
        f"teams/bench/processing-bench/{stamp_name('code')}/split.py", PROCESS_SCRIPT.encode()
    )
    raw = client.upload(f"teams/bench/processing-bench/{stamp_name('raw')}/data.csv", CSV.encode())
    raw_prefix = raw["uri"].rsplit("/", 1)[0]
    work = Path(tempfile.mkdtemp(prefix="proc-bench-"))
    try:
        (work / "code").mkdir()
        (work / "code" / "split.py").write_text(PROCESS_SCRIPT)
        (work / "raw").mkdir()
        (work / "raw" / "data.csv").write_text(CSV)
        bare = []
        for index in range(runs + 1):
            for name in ("train", "test"):
                shutil.rmtree(work / name, ignore_errors=True)
                (work / name).mkdir()
                (work / name).chmod(0o777)
            argv = [
                "docker", "run", "--rm", "--network", "none", "--init", "--read-only",
                "--tmpfs", "/tmp", "--cpus", "1", "--memory", "1g",  # noqa: S108 - the container's
                "--user", "1000:1000", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                "-v", f"{work / 'code'}:/opt/ml/processing/input/code:ro",
                "-v", f"{work / 'raw'}:/opt/ml/processing/input/raw:ro",
                "-v", f"{work / 'train'}:/opt/ml/processing/train",
                "-v", f"{work / 'test'}:/opt/ml/processing/test",
                "--entrypoint", "python3", "studiolo/sklearn:latest",
                "/opt/ml/processing/input/code/split.py",
            ]  # fmt: skip
            started = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True)
            if index:  # the first warms the engine's caches
                bare.append(time.perf_counter() - started)
        processing_job(client, stamp_name("proc-warm"), code["uri"], raw_prefix)
        jobs = [
            processing_job(client, stamp_name(f"proc-{index}"), code["uri"], raw_prefix)
            for index in range(runs)
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    steps = {
        step: summary([j["steps"][step] for j in jobs if j["steps"][step] is not None])
        for step in jobs[0]["steps"]
    }
    bare_p50 = summary(bare).get("p50") or 0.0
    total_p50 = steps["created_to_completed"].get("p50") or 0.0
    return {
        "jobs": jobs,
        "completed": sum(1 for j in jobs if j["status"] == "Completed"),
        "steps": steps,
        "bare_docker_run": summary(bare),
        "overhead_p50": total_p50 - bare_p50,
        "ratio_p50": total_p50 / bare_p50 if bare_p50 else None,
    }


def markdown(data: dict[str, Any]) -> str:
    rows = []
    for count in COUNTS:
        part = data["counts"][str(count)]
        rows.append(
            f"| {count} | {part['completed']}/{len(part['jobs'])} | "
            f"{secs(part['submit_to_all_running'].get('p50'))} | "
            f"{secs(part['submit_to_all_running'].get('p95'))} | "
            f"{secs(part['submit_to_completed'].get('p50'))} | "
            + " | ".join(secs(part["stages"][s].get("p50")) for s in part["stages"])
            + " |"
        )
    extra = data["extra_at_4_over_1"]
    floor_p50 = data["floor"]["first_byte"].get("p50")
    return "\n".join(
        [
            "# Jobs of several instances: submit -> all N containers running",
            "",
            machine_markdown(data["machine"]),
            "",
            "## Target",
            "",
            "| target | measured | verdict |",
            "|---|---|---|",
            f"| p50 submit -> all running at N = 4 at most {TARGET_EXTRA_SECONDS_AT_4:g} s over N = 1 "
            f"| +{secs(extra)} | {'met' if data['target_met'] else 'MISSED'} |",
            "",
            f"Peer: a bare `docker run` of the same image to its first output byte: p50 "
            f"{secs(floor_p50)} (wall p50 {secs(data['floor']['wall'].get('p50'))}); "
            f"N = 1 is {data['ratio_n1_over_floor']:.2f}x that, N = 4 "
            f"{data['ratio_n4_over_floor']:.2f}x. SageMaker's published start-up for a "
            "training or processing job is minutes.",
            "",
            f"## Per N ({data['runs']} jobs each after a warm-up; p50 unless said)",
            "",
            "| N | completed | all running p50 | all running p95 | completed p50 "
            "| post -> created | created -> container start | create+start N -> Training "
            "| Training -> last ready (worker) |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            *processing_markdown(data.get("processing")),
        ]
    )


def processing_markdown(part: dict[str, Any] | None) -> list[str]:
    if not part:
        return []
    bare = part["bare_docker_run"]
    rows = [
        f"| {step.replace('_', ' ')} | {secs(value.get('p50'))} | {secs(value.get('p95'))} |"
        for step, value in part["steps"].items()
    ]
    return [
        f"## A processing job against a bare `docker run` ({len(part['jobs'])} runs each)",
        "",
        f"Completed {part['completed']}/{len(part['jobs'])}. Bare `docker run` of the same script "
        f"(same mounts and limits): p50 {secs(bare.get('p50'))}, p95 {secs(bare.get('p95'))}. "
        f"The job, created -> Completed: p50 {secs(part['steps']['created_to_completed'].get('p50'))}"
        f" — {secs(part['overhead_p50'])} over the bare run, "
        f"{(part['ratio_p50'] or 0):.2f}x. SageMaker's published start-up for a processing job "
        "is minutes.",
        "",
        "| step | p50 | p95 |",
        "|---|---|---|",
        *rows,
        "",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_studio_arguments(parser, "cluster_jobs")
    parser.add_argument("--runs", type=int, default=8, help="measured jobs per N")
    parser.add_argument("--floor-runs", type=int, default=10)
    args = parser.parse_args()

    facts = machine_facts()
    data: dict[str, Any] = {"machine": facts, "runs": args.runs, "floor": floor(args.floor_runs)}
    studio = Studio(
        database_url=args.database_url, redis_url=args.redis_url, keep_home=args.keep_home
    )
    studio.start()
    try:
        print(f"studio at {studio.url} (data in {studio.home})", flush=True)
        client = studio.client()
        data["counts"] = {str(n): run_count(studio, client, n, args.runs) for n in COUNTS}
        data["processing"] = processing_overhead(client, args.runs)
        client.close()
    finally:
        studio.stop()
    facts["loadavg_at_end"] = loadavg()
    one = data["counts"]["1"]["submit_to_all_running"].get("p50")
    four = data["counts"]["4"]["submit_to_all_running"].get("p50")
    floor_p50 = data["floor"]["first_byte"].get("p50") or 1.0
    data["extra_at_4_over_1"] = four - one if one is not None and four is not None else None
    data["ratio_n1_over_floor"] = (one or 0) / floor_p50
    data["ratio_n4_over_floor"] = (four or 0) / floor_p50
    complete = all(data["counts"][str(n)]["completed"] == args.runs for n in COUNTS)
    data["target_met"] = (
        complete
        and data["extra_at_4_over_1"] is not None
        and data["extra_at_4_over_1"] <= TARGET_EXTRA_SECONDS_AT_4
    )
    write_results(args.out, data, markdown(data))
    print(markdown(data))
    return 0 if data["target_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
