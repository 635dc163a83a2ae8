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
Writes benchmarks/results/cluster_jobs.{json,md}; exits 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import sys
import time
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
        ]
    )


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
