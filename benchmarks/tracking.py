"""Tracking: Studiolo's MLflow-compatible API against `mlflow server`, same client code.

Both servers run here, on the same machine, in the same run:
- MLflow: `mlflow server --backend-store-uri sqlite:///... --artifacts-destination ...`
  (its SQLite backend, as the issue asks), `--workers 1` by default: uvicorn with several
  workers leaves Nagle's algorithm on for kept-alive connections (Kludex/uvicorn#3149), which
  costs a sequential client ~40 ms an answer and would flatter Studiolo (`--mlflow-workers`).
- Studiolo: a throw-away studio (`studiolo up`, embedded defaults: SQLite, or --database-url),
  the tracking URI `<studio>/mlflow/bench` and the bench user's API token as
  MLFLOW_TRACKING_TOKEN.

The workload (`tracking_driver.py`) is the same mlflow client code against each, run by the
mlflow venv's Python: runs created per second (one `create_run` each), `log_metric` points per
second (one call per point), `log_batch` points per second (1,000 per call), the full history
of that 100,000-point metric (`get_metric_history`, which pages), and `search_runs` over 1,000
runs filtered by a param. Two lines send the same requests over plain HTTP (`log_batch`'s
bodies built beforehand; history pages read but not parsed): the servers' own time. The driver
records its own CPU per line too, which bounds the ratio any server can reach through this
client. The servers take turns per round; medians over rounds are kept.

Run: .venv/bin/python benchmarks/tracking.py [--rounds 2] [--database-url postgres://...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    TEAM,
    ServerProcess,
    Studio,
    add_studio_arguments,
    cpu_delta,
    cpu_seconds,
    find_python,
    free_port,
    loadavg,
    machine_facts,
    machine_markdown,
    mlflow_env,
    write_results,
)

DRIVER = Path(__file__).resolve().parent / "tracking_driver.py"

# (key in the driver's output, label, unit, higher is better)
LINES = [
    ("runs_create", "runs created", "runs/s", True),
    ("log_metric", "`log_metric`, one call per point", "points/s", True),
    ("log_batch", "`log_batch`, 1,000 points per call", "points/s", True),
    (
        "log_batch_raw",
        "the same `log_batch` bodies over plain HTTP (server time, bodies built beforehand)",
        "points/s",
        True,
    ),
    ("history", "full history of a 100,000-point metric", "s", False),
    (
        "history_raw",
        "the same history over plain HTTP (server time, no client parsing)",
        "s",
        False,
    ),
    ("search", "`search_runs` over 1,000 runs, filtered by a param", "s", False),
]
TARGET_5X = {"log_batch", "history"}
# Lines that measure the same target another way: shown, judged against that target.
SAME_TARGET_AS = {"history_raw": "history", "log_batch_raw": "log_batch"}


class MlflowTrackingServer(ServerProcess):
    def __init__(self, venv: Path, folder: Path, workers: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(
            [
                str(venv / "bin" / "mlflow"),
                "server",
                "--backend-store-uri",
                f"sqlite:///{folder / 'mlflow.db'}",
                "--artifacts-destination",
                str(folder / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
            ],  # fmt: skip
            folder / "mlflow-server.log",
            self.url + "/health",
            "mlflow server",
        )


def drive(venv: Path, uri: str, token: str | None, sizes: dict[str, int]) -> dict[str, Any]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DJANGO_", "STUDIOLO_"))
    }
    env["MLFLOW_TRACKING_URI"] = uri
    if token:
        env["MLFLOW_TRACKING_TOKEN"] = token
    done = subprocess.run(
        [str(venv / "bin" / "python"), str(DRIVER), json.dumps(sizes)],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"the workload failed against {uri}:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def value(cell: dict[str, Any], higher: bool) -> float:
    return float(cell["rate"] if higher and "rate" in cell else cell["seconds"])


def summarize(rounds: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    table = {}
    for key, label, unit, higher in LINES:
        per = {
            server: statistics.median(value(r[key], higher) for r in results)
            for server, results in rounds.items()
        }
        ratio = (per["studiolo"] / per["mlflow"]) if higher else (per["mlflow"] / per["studiolo"])
        table[key] = {
            "label": label,
            "unit": unit,
            "higher_is_better": higher,
            "mlflow": per["mlflow"],
            "studiolo": per["studiolo"],
            "ratio": ratio,  # > 1: Studiolo is better
            "target": "5x" if SAME_TARGET_AS.get(key, key) in TARGET_5X else "not slower",
            "met": ratio >= (5.0 if SAME_TARGET_AS.get(key, key) in TARGET_5X else 1.0),
        }
    return table


def client_ceilings(rounds: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per line, the CPU the mlflow client itself spent (medians over rounds, against each
    server) and the best ratio any server could reach through it: MLflow's time over the
    client's own time against Studiolo (a server that answered in no time at all)."""
    table = {}
    for key, label, _, _ in LINES:
        cpu = {
            server: statistics.median(r[key]["client_cpu_seconds"] for r in results)
            for server, results in rounds.items()
            if all("client_cpu_seconds" in r[key] for r in results)
        }
        if len(cpu) < 2:
            continue
        mlflow_seconds = statistics.median(r[key]["seconds"] for r in rounds["mlflow"])
        studiolo_seconds = statistics.median(r[key]["seconds"] for r in rounds["studiolo"])
        table[key] = {
            "label": label,
            "mlflow_seconds": mlflow_seconds,
            "studiolo_seconds": studiolo_seconds,
            "client_cpu_mlflow": cpu["mlflow"],
            "client_cpu_studiolo": cpu["studiolo"],
            "ceiling": mlflow_seconds / cpu["studiolo"] if cpu["studiolo"] else None,
        }
    return table


def fmt(number: float, unit: str) -> str:
    if unit == "s":
        return f"{number * 1000:,.0f} ms" if number < 10 else f"{number:,.1f} s"
    return f"{number:,.0f} {unit}"


def markdown(data: dict[str, Any]) -> str:
    lines = [
        "# Tracking: Studiolo's MLflow API against `mlflow server`",
        "",
        machine_markdown(data["machine"]),
        "",
        f"MLflow {data['mlflow_version']} (`mlflow server`, SQLite backend, "
        f"`--workers {data['mlflow_workers']}`), Python {data['mlflow_python']}; Studiolo with "
        f"{data['studio_database']}. The same client code (`benchmarks/tracking_driver.py`, "
        "mlflow's `MlflowClient`) against both, one after the other, "
        f"{data['rounds']} round(s), order alternating; medians kept.",
        "",
        "| line | MLflow | Studiolo | Studiolo vs MLflow | target | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for row in data["summary"].values():
        lines.append(
            f"| {row['label']} | {fmt(row['mlflow'], row['unit'])} | "
            f"{fmt(row['studiolo'], row['unit'])} | {row['ratio']:.1f}x | {row['target']} | "
            f"{'met' if row['met'] else 'MISSED'} |"
        )
    lines += [
        "",
        "Ratios are Studiolo's advantage: rate / rate for throughputs, time / time for reads.",
        "",
        "## The client's own time",
        "",
        "CPU seconds the mlflow client spent inside each line's timed calls (building requests, "
        "parsing answers; medians over rounds), and the best ratio a server could reach through "
        "this client: MLflow's time for the line over the client's own CPU time against "
        "Studiolo, i.e. Studiolo's side taking no time at all.",
        "",
        "| line | MLflow (wall) | Studiolo (wall) | client CPU vs MLflow | client CPU vs "
        "Studiolo | ceiling through this client |",
        "|---|---|---|---|---|---|",
    ]
    for row in data.get("client", {}).values():
        ceiling = "-" if row["ceiling"] is None else f"{row['ceiling']:.1f}x"
        lines.append(
            f"| {row['label']} | {fmt(row['mlflow_seconds'], 's')} | "
            f"{fmt(row['studiolo_seconds'], 's')} | {fmt(row['client_cpu_mlflow'], 's')} | "
            f"{fmt(row['client_cpu_studiolo'], 's')} | {ceiling} |"
        )
    lines += [
        "",
        "## CPU seconds used by each server during its workload (per round)",
        "",
        "| round | server | CPU (its processes) | wall |",
        "|---|---|---|---|",
    ]
    for sample in data["cpu"]:
        own = sum(v for k, v in sample["cpu"].items() if k not in ("dockerd", "containerd"))
        lines.append(
            f"| {sample['round']} | {sample['server']} | {own:.1f} s | "
            f"{sample['wall_seconds']:.1f} s |"
        )
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_studio_arguments(parser, "tracking")
    parser.add_argument("--work-dir", type=Path, default=Path.home() / ".cache" / "studiolo-bench")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--runs", type=int, default=200, help="runs created, one call each")
    parser.add_argument("--log-metric-points", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=100, help="log_batch calls of 1,000 points")
    parser.add_argument("--history-repeats", type=int, default=3)
    parser.add_argument("--search-runs", type=int, default=1000)
    parser.add_argument("--search-repeats", type=int, default=5)
    parser.add_argument("--mlflow", default="mlflow>=3,<4", help="pip requirement for mlflow")
    parser.add_argument("--mlflow-python", default=None, help="Python for the mlflow venv")
    parser.add_argument("--mlflow-workers", type=int, default=1)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    sizes = {
        "runs": args.runs,
        "log_metric_points": args.log_metric_points,
        "batches": args.batches,
        "history_repeats": args.history_repeats,
        "search_runs": args.search_runs,
        "search_repeats": args.search_repeats,
    }
    facts = machine_facts()
    python = (
        find_python("3.11", args.mlflow_python)
        if args.mlflow_python is None
        else args.mlflow_python
    )
    venv = mlflow_env(args.work_dir, python, [args.mlflow])
    mlflow_version = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import mlflow; print(mlflow.__version__)"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    rounds: dict[str, list[dict[str, Any]]] = {"mlflow": [], "studiolo": []}
    cpu: list[dict[str, Any]] = []
    for number in range(1, args.rounds + 1):
        order = ["mlflow", "studiolo"] if number % 2 else ["studiolo", "mlflow"]
        for server in order:
            folder = Path(tempfile.mkdtemp(prefix="bench-tracking-"))
            if server == "mlflow":
                mlflow = MlflowTrackingServer(venv, folder, args.mlflow_workers)
                mlflow.start()
                root, uri, token = mlflow.process.pid, mlflow.url, None  # type: ignore[union-attr]
                stop = mlflow.stop
            else:
                studio = Studio(
                    database_url=args.database_url,
                    redis_url=args.redis_url,
                    keep_home=args.keep_home,
                )
                studio.start()
                root, uri, token = studio.process.pid, f"{studio.url}/mlflow/{TEAM}", studio.token  # type: ignore[union-attr]
                stop = studio.stop
            try:
                before, started = cpu_seconds(root), time.perf_counter()
                print(f"round {number}: {server} at {uri} (load {loadavg()[0]})", flush=True)
                result = drive(venv, uri, token, sizes)
                wall = time.perf_counter() - started
                used = cpu_delta(before, cpu_seconds(root))
            finally:
                stop()
            rounds[server].append(result)
            cpu.append({"round": number, "server": server, "cpu": used, "wall_seconds": wall})
            summary = ", ".join(
                f"{key} {value(result[key], higher):,.3f}" for key, _, _, higher in LINES
            )
            print(f"round {number}: {server}: {summary}", flush=True)
    facts["loadavg_at_end"] = loadavg()
    data = {
        "machine": facts,
        "mlflow_version": mlflow_version,
        "mlflow_python": subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-c",
                "import platform; print(platform.python_version())",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip(),  # fmt: skip
        "mlflow_workers": args.mlflow_workers,
        "studio_database": "PostgreSQL" if args.database_url else "SQLite (the embedded default)",
        "rounds": args.rounds,
        "sizes": sizes,
        "results": rounds,
        "cpu": cpu,
    }
    data["summary"] = summarize(rounds)
    data["client"] = client_ceilings(rounds)
    write_results(args.out, data, markdown(data))
    print(markdown(data))
    return 0 if all(row["met"] for row in data["summary"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
