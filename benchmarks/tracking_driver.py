"""The workload of benchmarks/tracking.py, run by the mlflow venv's Python against one server.

The same code for MLflow's own server and for Studiolo: only MLFLOW_TRACKING_URI (and, for
Studiolo, MLFLOW_TRACKING_TOKEN) differ. Prints one JSON object on its last line.

Usage: python tracking_driver.py '{"runs": 200, "log_metric_points": 2000, ...}'
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
import uuid

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

# CPU seconds this client process spent in each line's timed calls (building requests,
# parsing answers): time no server can take away, so the line's ceiling through this client.
CLIENT_CPU: dict[str, list[float]] = {}


def timed(action, line=None):  # type: ignore[no-untyped-def]
    started, cpu = time.perf_counter(), time.process_time()
    result = action()
    if line is not None:
        CLIENT_CPU.setdefault(line, []).append(time.process_time() - cpu)
    return time.perf_counter() - started, result


def _session_and_uri():  # type: ignore[no-untyped-def]
    """A requests session with the client's own auth header, and the tracking URI."""
    import os

    import requests
    from mlflow.tracking._tracking_service.utils import get_tracking_uri

    session = requests.Session()
    if os.environ.get("MLFLOW_TRACKING_TOKEN"):
        session.headers["Authorization"] = f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}"
    return session, get_tracking_uri().rstrip("/")


def repeated_fetch(line: str, fetch, expected: int, sizes: dict) -> dict:  # type: ignore[no-untyped-def]
    """`fetch` (returning the points it got) timed `history_repeats` times: the median."""
    times = []
    count = 0
    for _ in range(sizes["history_repeats"]):
        seconds, count = timed(fetch, line)
        times.append(seconds)
    if count != expected:
        raise SystemExit(f"{line}: {count} points, expected {expected}")
    median = statistics.median(times)
    return {"n": count, "seconds": median, "all_seconds": times, "rate": count / median}


def log_batch_bodies(run_id: str, payloads: list[list[Metric]]) -> list[str]:
    """The JSON bodies MlflowClient.log_batch sends for these metrics (the same protobuf
    message, turned into JSON by the same function), built ahead of the timed posts."""
    from mlflow.protos.service_pb2 import LogBatch
    from mlflow.utils.proto_json_utils import message_to_json

    return [
        message_to_json(LogBatch(run_id=run_id, metrics=[m.to_proto() for m in metrics]))
        for metrics in payloads
    ]


def raw_log_batch(bodies: list[str]) -> None:
    """POST prepared log-batch bodies over plain HTTP: the servers' own time per call."""
    session, uri = _session_and_uri()
    for body in bodies:
        response = session.post(
            f"{uri}/api/2.0/mlflow/runs/log-batch",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        response.raise_for_status()


def raw_history(run_id: str, key: str) -> int:
    """All pages of metrics/get-history as the client requests them (25,000 a page), bodies
    read and counted but not parsed: one requests session, the client's own auth header."""
    session, uri = _session_and_uri()
    count, token = 0, None
    while True:
        params = {"run_id": run_id, "metric_key": key, "max_results": 25000}
        if token:
            params["page_token"] = token
        response = session.get(f"{uri}/api/2.0/mlflow/metrics/get-history", params=params)
        response.raise_for_status()
        body = response.content
        count += body.count(b'"key"')
        # The token is the last field; find it without parsing the page.
        marker = body.rfind(b'"next_page_token"')
        if marker < 0:
            return count
        token = json.loads(b"{" + body[marker:])["next_page_token"]


def main() -> None:
    sizes = json.loads(sys.argv[1])
    client = MlflowClient()
    out: dict[str, object] = {}
    experiment = client.create_experiment(f"bench-{uuid.uuid4().hex[:8]}")

    # 1. Runs created per second, one create_run call each.
    seconds, _ = timed(
        lambda: [client.create_run(experiment) for _ in range(sizes["runs"])], "runs_create"
    )
    out["runs_create"] = {"n": sizes["runs"], "seconds": seconds, "rate": sizes["runs"] / seconds}

    # 2. log_metric: one call per point.
    run = client.create_run(experiment).info.run_id
    n = sizes["log_metric_points"]
    seconds, _ = timed(
        lambda: [client.log_metric(run, "loss", 1.0 / (i + 1), step=i) for i in range(n)],
        "log_metric",
    )
    out["log_metric"] = {"n": n, "seconds": seconds, "rate": n / seconds}

    # 3. log_batch: 1,000 points a call, one metric key (which step 4 then reads back).
    run = client.create_run(experiment).info.run_id
    batches, per_batch = sizes["batches"], 1000
    now = int(time.time() * 1000)
    payloads = [
        [
            Metric("curve", math.sin((b * per_batch + i) / 500.0), now + b, b * per_batch + i)
            for i in range(per_batch)
        ]
        for b in range(batches)
    ]
    seconds, _ = timed(lambda: [client.log_batch(run, metrics=p) for p in payloads], "log_batch")
    points = batches * per_batch
    out["log_batch"] = {"n": points, "calls": batches, "seconds": seconds, "rate": points / seconds}

    # 4. The full history of that metric (client.get_metric_history pages through it).
    out["history"] = repeated_fetch(
        "history", lambda: len(client.get_metric_history(run, "curve")), points, sizes
    )

    # 4b. The same history over plain HTTP, pages as the client asks for them but left as
    # JSON text: the servers' own time, without the client's ~10 us per metric of protobuf
    # parsing (which no server can speed up).
    out["history_raw"] = repeated_fetch(
        "history_raw", lambda: raw_history(run, "curve"), points, sizes
    )

    # 4c. The same log_batch calls over plain HTTP, into a run of their own: the bodies the
    # client sends, built beforehand, so the time is the servers' (and one requests post).
    raw_run = client.create_run(experiment).info.run_id
    bodies = log_batch_bodies(raw_run, payloads)
    seconds, _ = timed(lambda: raw_log_batch(bodies), "log_batch_raw")
    out["log_batch_raw"] = {
        "n": points,
        "calls": batches,
        "seconds": seconds,
        "rate": points / seconds,
    }

    # 5. Search over runs filtered by a param.
    search_experiment = client.create_experiment(f"bench-search-{uuid.uuid4().hex[:8]}")
    values = ["0.1", "0.01", "0.001", "0.0001"]
    setup_started = time.perf_counter()
    for i in range(sizes["search_runs"]):
        run_id = client.create_run(search_experiment).info.run_id
        client.log_batch(
            run_id,
            metrics=[Metric("acc", (i % 97) / 97.0, now, 0)],
            params=[Param("lr", values[i % len(values)]), Param("depth", str(i % 10))],
        )
    setup_seconds = time.perf_counter() - setup_started
    searches = []
    found = 0
    for _ in range(sizes["search_repeats"]):
        seconds, runs = timed(
            lambda: client.search_runs(
                [search_experiment], "params.lr = '0.01'", max_results=sizes["search_runs"]
            ),
            "search",
        )
        searches.append(seconds)
        found = len(runs)
    expected = len(range(1, sizes["search_runs"], len(values)))
    if found != expected:
        raise SystemExit(f"search_runs found {found} runs, expected {expected}")
    out["search"] = {
        "runs": sizes["search_runs"],
        "found": found,
        "seconds": statistics.median(searches),
        "all_seconds": searches,
        "setup_seconds": setup_seconds,
    }
    for line, cpu in CLIENT_CPU.items():
        out[line]["client_cpu_seconds"] = statistics.median(cpu)  # as "seconds", per timing
    print(json.dumps(out))


if __name__ == "__main__":
    main()
