"""Serving: the same sklearn model behind three HTTP servers, under the same load.

(a) direct: the serving container (`studiolo/sklearn:latest serve`) started here with
    `docker run`, the flags, CPU and memory limits and worker count the studio gives an
    instance of the chosen type, called on its published port;
(b) data plane: the same model registered, approved and deployed to an endpoint of a
    throw-away studio (see common.py), called on `POST /endpoints/<name>/invocations` of the
    studio's port with a bearer token; plus create -> InService of one instance, N times;
(c) mlflow: `mlflow models serve --env-manager local` on the same pickled estimator, from a
    venv of its own whose scikit-learn matches the image's (cached under --work-dir).

One estimator (LogisticRegression on iris, fixed seed) is trained once inside the image and
that file is served by all three. The load generator is wrk (Debian's `wrk`), the same for
every target: keep-alive connections, one row of features per request, 1 and 16 connections,
a warm-up before each measurement. Each target's prediction for the row is checked first.
Every server is up at once and the targets are measured in interleaved rounds (medians kept),
so a shared machine's drifting load weighs on all of them alike.

Run: .venv/bin/python benchmarks/serving.py [--duration 10] [--concurrency 1,16] [--out ...]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import math
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from common import (
    IMAGE,
    TEAM,
    Client,
    ServerProcess,
    Studio,
    add_studio_arguments,
    find_python,
    free_port,
    loadavg,
    machine_facts,
    machine_markdown,
    mlflow_env,
    secs,
    wait_http_ok,
    write_results,
)

PREFIX = "studiolo-bench-serving-"  # every container this script starts; stale ones are removed
DIRECT_NAME = PREFIX + "direct"
SERVING_PORT = 8080
CONTAINER_UID = 1000  # the studio runs framework images as this user (compute/serving.py)
# The built-in instance types (studio/config.py); the studio gives an instance one serving
# worker per CPU of its type (compute/serving.py).
INSTANCE_TYPES = {
    "ml.local.small": {"cpus": 1, "memory_mb": 1024},
    "ml.local.medium": {"cpus": 1, "memory_mb": 2048},
    "ml.local.large": {"cpus": 2, "memory_mb": 4096},
}
# The flags compute.runtime.docker adds to every container it starts (DockerRuntime._host_config).
RUNTIME_FLAGS = [
    "--init",
    "--security-opt",
    "no-new-privileges",
    "--cap-drop",
    "ALL",
    *("--cap-add=CHOWN", "--cap-add=DAC_OVERRIDE", "--cap-add=FOWNER"),
]
GROUP = "serving-bench"
ENDPOINT = "bench"
APPROVER = "bench-approver"
POLL = 0.05  # create -> InService polling interval

SPEC_TARGET_P50_DELTA = 0.001  # the data plane adds at most 1 ms at p50 over the container
SPEC_TARGET_THROUGHPUT_OVER_MLFLOW = 2.0  # Studiolo's requests/s at least 2x mlflow serve
SPEC_TARGET_CREATE_TO_INSERVICE = 5.0  # one instance, create -> InService, under 5 s

# Runs in the image (python3, Debian's scikit-learn) and in the mlflow venv: the same data,
# estimator and seed either way.
TRAIN = """\
import json, platform, sys
import joblib, numpy, sklearn
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

def train():
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000, random_state=0).fit(X, y)
    return model, {
        "dataset": "iris (sklearn.datasets.load_iris: 150 rows, 4 features, 3 classes)",
        "estimator": repr(model),
        "train_accuracy": round(float(model.score(X, y)), 4),
    }

def versions():
    return {"python": platform.python_version(), "sklearn": sklearn.__version__,
            "numpy": numpy.__version__, "joblib": joblib.__version__}
"""

TRAIN_IN_IMAGE = (
    TRAIN
    + """
import os
model, facts = train()
joblib.dump(model, sys.argv[1])
os.chmod(sys.argv[1], 0o644)
row = [[float(x) for x in sys.argv[2].split(",")]]
print(json.dumps({**facts, **versions(), "prediction": model.predict(row).tolist()}))
"""
)

SAVE_FOR_MLFLOW = (
    TRAIN
    + """
import mlflow, mlflow.sklearn
source, out, row = sys.argv[1], sys.argv[2], [[float(x) for x in sys.argv[3].split(",")]]
if source == "retrain":
    model, facts = train()
else:
    model, facts = joblib.load(source), {"loaded": source}
mlflow.sklearn.save_model(model, out)
print(json.dumps({**facts, **versions(), "mlflow": mlflow.__version__,
                  "prediction": model.predict(row).tolist()}))
"""
)

WRK_SCRIPT = """\
wrk.method = "POST"
wrk.body = {body}
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {{"duration_us": %.0f, "requests": %.0f, "bytes": %.0f, "connect_errors": %.0f, '
    .. '"read_errors": %.0f, "write_errors": %.0f, "status_errors": %.0f, "timeouts": %.0f, '
    .. '"min_us": %.0f, "p50_us": %.0f, "p90_us": %.0f, "p99_us": %.0f, "p999_us": %.0f, '
    .. '"max_us": %.0f, "mean_us": %.1f}}\\n',
    summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency.min, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))
end
"""


# --- helpers ---------------------------------------------------------------------------------


def run(*argv: str, check: bool = True, timeout: float = 600) -> str:
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv[:6])}...: exit {done.returncode}: {done.stderr[-2000:]}"
        )
    return done.stdout


def remove_stale_containers() -> list[str]:
    """Containers left by an earlier run of this script (killed before its cleanup)."""
    ids = run("docker", "ps", "-aq", "--filter", f"name=^{PREFIX}").split()
    if ids:
        run("docker", "rm", "-f", *ids, check=False)
    return ids


def remove_studio_containers(home: Path) -> int:
    """Instance containers the throw-away studio started (labelled with its home)."""
    ids = run(
        "docker", "ps", "-aq", "--filter", f"label=io.studiolo.instance={home}", check=False
    ).split()
    if ids:
        run("docker", "rm", "-f", *ids, check=False)
    return len(ids)


def predictions(response: httpx.Response) -> Any:
    """The prediction list of a JSON answer: `[0]` (SageMaker style) or mlflow's
    `{"predictions": [0]}`."""
    if response.status_code != 200:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text[:300]}")
    body = response.json()
    return body["predictions"] if isinstance(body, dict) and "predictions" in body else body


def ask(url: str, body: str, headers: Mapping[str, str]) -> Any:
    with httpx.Client(timeout=30.0) as http:
        return predictions(http.post(url, content=body.encode(), headers=dict(headers)))


# --- the model and the mlflow environment ---------------------------------------------------


def train_model(model_dir: Path, row: str) -> dict[str, Any]:
    model_dir.mkdir(parents=True, exist_ok=True)
    model_dir.chmod(0o755)
    out = run(
        "docker", "run", "--rm", "--network", "none", "-v", f"{model_dir}:/out", IMAGE,
        "python3", "-c", TRAIN_IN_IMAGE, "/out/model.joblib", row,
    )  # fmt: skip
    facts = json.loads(out.strip().splitlines()[-1])
    data = (model_dir / "model.joblib").read_bytes()
    facts.update(file="model.joblib", bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    return facts


def model_archive(model_dir: Path) -> bytes:
    """model.tar.gz with model.joblib at its root (what a training job uploads)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(model_dir / "model.joblib", arcname="model.joblib")
    return buffer.getvalue()


# --- the servers ----------------------------------------------------------------------------


class DirectContainer:
    """(a) the serving image, run as the studio runs an instance of `instance_type`."""

    def __init__(self, model_dir: Path, instance_type: Mapping[str, int], workers: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        memory = f"{instance_type['memory_mb']}m"
        self.argv = [
            "docker", "run", "-d", "--name", DIRECT_NAME, *RUNTIME_FLAGS,
            "--cpus", str(instance_type["cpus"]), "--memory", memory, "--memory-swap", memory,
            "--user", f"{CONTAINER_UID}:{CONTAINER_UID}",
            "-p", f"127.0.0.1:{self.port}:{SERVING_PORT}",
            "-v", f"{model_dir}:/opt/ml/model:ro",
            "-e", f"SAGEMAKER_MODEL_SERVER_WORKERS={workers}", "-e", "PYTHONUNBUFFERED=1",
            IMAGE, "serve",
        ]  # fmt: skip
        self.started = False

    def start(self) -> float:
        run(*self.argv)
        self.started = True
        return wait_http_ok(self.url + "/ping", 60)

    def bridge_address(self) -> str:
        """Its address on the engine's default bridge ("" when none)."""
        return run(
            "docker", "inspect", "-f", "{{.NetworkSettings.Networks.bridge.IPAddress}}", DIRECT_NAME,
            check=False,
        ).strip().replace("<no value>", "")  # fmt: skip

    def stop(self) -> None:
        if self.started:
            run("docker", "rm", "-f", DIRECT_NAME, check=False)
            self.started = False


class MlflowServer(ServerProcess):
    """(c) `mlflow models serve` in its own process group (uvicorn and its workers)."""

    def __init__(self, venv: Path, model: Path, workers: int, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        super().__init__(
            [
                str(venv / "bin" / "mlflow"),
                "models",
                "serve",
                "-m",
                str(model),
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-w",
                str(workers),
            ],  # fmt: skip
            log,
            self.url + "/ping",
            "mlflow models serve",
        )


# --- the load ---------------------------------------------------------------------------------


@dataclass
class Target:
    key: str
    url: str
    body: str
    headers: Mapping[str, str]
    script: Path | None = None


class Wrk:
    def __init__(self, work_dir: Path, duration: int, warmup: int, threads: int) -> None:
        self.work_dir = work_dir
        self.duration = duration
        self.warmup = warmup
        self.threads = threads

    def script(self, target: Target) -> Path:
        # JSON string literals are valid Lua string literals for ASCII text.
        lines = "\n".join(
            f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in target.headers.items()
        )
        path = self.work_dir / f"wrk-{target.key}.lua"
        path.write_text(WRK_SCRIPT.format(body=json.dumps(target.body), headers=lines))
        return path

    def once(self, target: Target, connections: int, seconds: int) -> dict[str, Any]:
        if target.script is None:
            target.script = self.script(target)
        threads = max(1, min(self.threads, connections))
        argv = [
            "wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
            "--timeout", "10s", "--latency", "-s", str(target.script), target.url,
        ]  # fmt: skip
        out = run(*argv, timeout=seconds + 60)
        found = [line for line in out.splitlines() if line.startswith("WRKJSON ")]
        if not found:
            raise RuntimeError(f"wrk printed no summary:\n{out[-2000:]}")
        raw = json.loads(found[-1].removeprefix("WRKJSON "))
        duration = raw["duration_us"] / 1e6
        error_keys = [k for k in raw if k.endswith("_errors") or k == "timeouts"]
        return {
            "connections": connections,
            "threads": threads,
            "seconds": round(duration, 3),
            "requests": int(raw["requests"]),
            "requests_per_second": round(raw["requests"] / duration, 1),
            "errors": int(sum(raw[k] for k in error_keys)),
            **{k: int(raw[k]) for k in error_keys},
            **{
                k.replace("_us", "_ms"): round(raw[k] / 1000, 3)
                for k in ("min_us", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "mean_us")
            },
        }

    def rounds(
        self, units: Sequence[Sequence[Target]], concurrency: Sequence[int], rounds: int
    ) -> dict[str, Any]:
        """Every target at every concurrency, `rounds` times, interleaved: a machine whose load
        drifts weighs on every target alike. The order of the units rotates each round; the
        targets of a unit (a pair compared with each other) run back to back, in turns first."""
        targets = [target for unit in units for target in unit]
        samples: dict[str, dict[str, list[dict[str, Any]]]] = {
            t.key: {str(c): [] for c in concurrency} for t in targets
        }
        for number in range(rounds):
            shift = number % len(units)
            rotated = [*units[shift:], *units[:shift]]
            order = [t for unit in rotated for t in (unit if number % 2 == 0 else unit[::-1])]
            for connections in concurrency:
                for target in order:
                    before = loadavg()
                    if self.warmup > 0:
                        self.once(target, connections, self.warmup)
                    cell = self.once(target, connections, self.duration)
                    cell.update(round=number + 1, loadavg_before=before, loadavg_after=loadavg())
                    samples[target.key][str(connections)].append(cell)
                    print(
                        f"round {number + 1} {target.key:>15} c={connections:<3} "
                        f"p50 {cell['p50_ms']:7.3f} ms  p99 {cell['p99_ms']:8.3f} ms  "
                        f"{cell['requests_per_second']:8.1f} req/s  errors {cell['errors']}  "
                        f"load {before[0]}",
                        flush=True,
                    )
        result: dict[str, Any] = {}
        for target in targets:
            result[target.key] = {
                "url": target.url,
                "body": target.body,
                "content_type": target.headers.get("Content-Type"),
            }
            for c, cells in samples[target.key].items():
                result[target.key][c] = {
                    **{
                        key: round(statistics.median(cell[key] for cell in cells), 3)
                        for key in ("p50_ms", "p99_ms", "requests_per_second")
                    },
                    "p50_ms_range": [
                        min(x["p50_ms"] for x in cells),
                        max(x["p50_ms"] for x in cells),
                    ],
                    "requests_per_second_range": [
                        min(x["requests_per_second"] for x in cells),
                        max(x["requests_per_second"] for x in cells),
                    ],
                    "requests": sum(x["requests"] for x in cells),
                    "errors": sum(x["errors"] for x in cells),
                    "rounds": cells,
                }
        return result


# --- (b) the studio's data plane ------------------------------------------------------------


class Unavailable(Exception):
    """The data plane's API is not there (404/405): reported, not fatal."""


def _json(response: httpx.Response) -> Any:
    if response.is_error:
        raise RuntimeError(
            f"{response.request.method} {response.request.url}: {response.status_code} "
            f"{response.text[:500]}"
        )
    return response.json() if response.content else None


def register_and_approve(studio: Studio, client: Client, archive: bytes) -> str:
    """model.tar.gz uploaded, registered as an external package of the sklearn framework,
    approved by a second user (an approver: the author may not approve); `GROUP/VERSION`."""
    uri = client.upload(f"teams/{TEAM}/models/{GROUP}/model.tar.gz", archive)["uri"]
    _json(client.http.post(f"/api/v1/teams/{TEAM}/model-groups", json={"name": GROUP}))
    package = _json(
        client.http.post(
            f"/api/v1/teams/{TEAM}/model-groups/{GROUP}/packages",
            json={
                "artifact_uri": uri,
                "framework": "sklearn",
                "content_types": ["text/csv", "application/json"],
                "response_types": ["application/json", "text/csv"],
                "description": "benchmarks/serving.py",
            },
        )
    )
    version = package["version"]
    studio._cli("user", "create", APPROVER, "--team", TEAM, "--role", "approver")
    approver = Client(studio.url, studio._cli("token", "create", APPROVER).strip())
    try:
        decision = _json(
            approver.http.post(
                f"/api/v1/teams/{TEAM}/model-groups/{GROUP}/packages/{version}/approve",
                json={"comment": "benchmark model"},
            )
        )
    finally:
        approver.close()
    status = decision["package"]["approval_status"]
    if status != "Approved":
        raise RuntimeError(f"package {GROUP}/{version} is {status} after the approval")
    return f"{GROUP}/{version}"


def create_endpoint(
    client: Client, name: str, model: str, instance_type: str, workers: int, timeout: float
) -> dict[str, Any]:
    """POST /api/v1/endpoints, then GET every 50 ms until InService: seconds from the POST."""
    body = {
        "team": TEAM,
        "name": name,
        "model": model,
        "instance_type": instance_type,
        "instance_count": 1,
        # The studio sets one worker per CPU of the type; said explicitly where the API takes it.
        "environment": {"SAGEMAKER_MODEL_SERVER_WORKERS": str(workers)},
    }
    t0 = time.perf_counter()
    response = client.http.post("/api/v1/endpoints", json=body)
    post_seconds = time.perf_counter() - t0
    if response.status_code in (404, 405):
        raise Unavailable(
            f"POST /api/v1/endpoints answered {response.status_code} (the data plane is not "
            "in this build)"
        )
    _json(response)
    statuses: list[tuple[float, str]] = []
    while True:
        endpoint = _json(client.http.get(f"/api/v1/endpoints/{name}"))
        elapsed = time.perf_counter() - t0
        if not statuses or statuses[-1][1] != endpoint["status"]:
            statuses.append((round(elapsed, 3), endpoint["status"]))
        if endpoint["status"] == "InService":
            return {
                "name": name,
                "create_to_inservice": round(elapsed, 3),
                "post_seconds": round(post_seconds, 3),
                "statuses_seen": statuses,
                "loadavg": loadavg(),
                "endpoint": endpoint,
            }
        if endpoint["status"] == "Failed" or elapsed > timeout:
            raise RuntimeError(
                f"endpoint {name}: {endpoint['status']} after {elapsed:.1f} s: "
                f"{endpoint.get('failure_reason')}"
            )
        time.sleep(POLL)


def delete_endpoint(client: Client, name: str, timeout: float = 60.0) -> float | None:
    """DELETE, then wait for the endpoint to be gone (404); seconds, or None when it is not."""
    t0 = time.perf_counter()
    response = client.http.delete(f"/api/v1/endpoints/{name}")
    if response.is_error and response.status_code != 404:
        return None
    while time.perf_counter() - t0 < timeout:
        if client.http.get(f"/api/v1/endpoints/{name}").status_code == 404:
            return round(time.perf_counter() - t0, 3)
        time.sleep(0.1)
    return None


def instance_container(home: Path) -> dict[str, Any]:
    """What the studio gave its instance container: limits, worker count, user (to compare
    with the direct container's)."""
    ids = run(
        "docker", "ps", "-q", "--filter", f"label=io.studiolo.instance={home}", check=False
    ).split()
    if not ids:
        return {}
    info = json.loads(run("docker", "inspect", ids[0]))[0]
    env = dict(item.split("=", 1) for item in info["Config"]["Env"] if "=" in item)
    host = info["HostConfig"]
    return {
        "name": info["Name"].lstrip("/"),
        "image": info["Config"]["Image"],
        "cpus": (host.get("NanoCpus") or 0) / 1e9,
        "memory_mb": (host.get("Memory") or 0) // (1024 * 1024),
        "user": info["Config"].get("User"),
        "init": host.get("Init"),
        "workers": env.get("SAGEMAKER_MODEL_SERVER_WORKERS"),
    }


class DataPlane:
    """(b): a throw-away studio with the model approved and deployed to endpoint `bench`."""

    def __init__(self, args: argparse.Namespace, workers: int) -> None:
        self.args = args
        self.workers = workers
        self.studio: Studio | None = None
        self.client: Client | None = None
        self.created: list[str] = []
        self.model = ""
        self.result: dict[str, Any] = {"available": False}

    def setup(self, archive: bytes, row: str, expected: Any) -> Target | None:
        """The endpoint's invocation target, or None when the studio has no data plane."""
        args = self.args
        self.studio = studio = Studio(
            database_url=args.database_url, redis_url=args.redis_url, keep_home=args.keep_home
        )
        studio.start()
        self.client = client = studio.client()
        print(f"studio at {studio.url} (data in {studio.home})", flush=True)
        self.result["studio_ready_seconds"] = round(studio.ready_seconds, 3)
        self.result["model"] = self.model = register_and_approve(studio, client, archive)
        try:
            self.created.append(ENDPOINT)
            first = create_endpoint(
                client, ENDPOINT, self.model, args.instance_type, self.workers, args.create_timeout
            )
        except Unavailable as exc:
            self.created.clear()
            self.result["reason"] = str(exc)
            print(f"data plane not available: {exc}", flush=True)
            self.close()  # not left running beside the measurements
            return None
        self.result.update(
            available=True, first_create=first, instance_container=instance_container(studio.home)
        )
        url = f"{studio.url}/endpoints/{ENDPOINT}/invocations"
        headers = {"Content-Type": "text/csv", "Authorization": f"Bearer {studio.token}"}
        self.result["prediction"] = got = ask(url, row, headers)
        if got != expected:
            raise RuntimeError(f"the data plane predicts {got}, the model {expected}")
        return Target("data_plane", url, row, headers)

    def create_runs(self, count: int) -> None:
        """Delete `bench`, then create -> InService of a one-instance endpoint `count` times
        (each deleted before the next)."""
        assert self.client is not None
        client = self.client
        if ENDPOINT in self.created:
            self.result["delete_seconds"] = delete_endpoint(client, ENDPOINT)
            if self.result["delete_seconds"] is not None:
                self.created.remove(ENDPOINT)
        samples = []
        for i in range(count):
            name = f"bench-start-{i + 1}"
            self.created.append(name)
            sample = create_endpoint(
                client, name, self.model, self.args.instance_type, self.workers,
                self.args.create_timeout,
            )  # fmt: skip
            sample["delete_seconds"] = delete_endpoint(client, name)
            if sample["delete_seconds"] is not None:
                self.created.remove(name)
            samples.append(sample)
            print(f"create -> InService {sample['create_to_inservice']:.3f} s", flush=True)
        values = [s["create_to_inservice"] for s in samples]
        self.result["create_to_inservice"] = {
            "runs": samples,
            "n": len(values),
            "median": round(statistics.median(values), 3) if values else None,
            "min": min(values, default=None),
            "max": max(values, default=None),
        }

    def close(self) -> None:
        if self.client is not None:
            for name in self.created:
                with contextlib.suppress(Exception):
                    delete_endpoint(self.client, name, timeout=30)
            self.client.close()
            self.client = None
        if self.studio is not None:
            self.studio.stop()
            self.result["instance_containers_removed_after_stop"] = remove_studio_containers(
                self.studio.home
            )
            self.studio = None


# --- report -----------------------------------------------------------------------------------

LABELS = {
    "direct": "(a) container direct",
    "direct_bridge": "(a') container direct, bridge address",
    "data_plane": "(b) studio data plane",
    "mlflow_csv": "(c) mlflow serve, text/csv",
    "mlflow_json": "(c) mlflow serve, JSON `inputs`",
    "mlflow_json_w1": "(c) mlflow serve -w 1, JSON `inputs`",
}


def compute(data: dict[str, Any], concurrency: Sequence[int]) -> None:
    runs, dp = data["runs"], data["data_plane"]
    ratios: dict[str, Any] = {}
    for c in map(str, concurrency):
        best = max((runs[k][c]["requests_per_second"], k) for k in runs if k.startswith("mlflow"))
        # The setting: mlflow with the same worker count (its faster request format).
        same = max((runs[k][c]["requests_per_second"], k) for k in ("mlflow_csv", "mlflow_json"))
        entry: dict[str, Any] = {
            "mlflow_best": best[1],
            "mlflow_same_workers": same[1],
            "direct_over_mlflow_throughput": round(
                runs["direct"][c]["requests_per_second"] / best[0], 2
            ),
        }
        if dp.get("available"):
            b, a = runs["data_plane"][c], runs["direct"][c]
            # Paired: (a) and (b) were measured back to back in each round.
            pairs = list(zip(a["rounds"], b["rounds"], strict=True))
            entry["data_plane_minus_direct_p50_ms"] = round(
                statistics.median(y["p50_ms"] - x["p50_ms"] for x, y in pairs), 3
            )
            entry["data_plane_minus_direct_p50_ms_rounds"] = [
                round(y["p50_ms"] - x["p50_ms"], 3) for x, y in pairs
            ]
            if "direct_bridge" in runs:
                bridge = runs["direct_bridge"][c]
                bridged = list(zip(bridge["rounds"], b["rounds"], strict=True))
                entry["data_plane_minus_direct_bridge_p50_ms"] = round(
                    statistics.median(y["p50_ms"] - x["p50_ms"] for x, y in bridged), 3
                )
            entry["data_plane_minus_direct_p99_ms"] = round(
                statistics.median(y["p99_ms"] - x["p99_ms"] for x, y in pairs), 3
            )
            entry["data_plane_over_mlflow_throughput"] = round(
                b["requests_per_second"] / best[0], 2
            )
            entry["data_plane_over_mlflow_same_workers_throughput"] = round(
                b["requests_per_second"] / same[0], 2
            )
            entry["data_plane_over_direct_throughput"] = round(
                b["requests_per_second"] / a["requests_per_second"], 2
            )
        ratios[c] = entry
    names = (
        "p50_delta_at_most_1ms",
        "throughput_at_least_2x_mlflow",
        "throughput_at_least_2x_mlflow_same_workers",
        "create_to_inservice_under_5s",
    )
    targets: dict[str, bool | None] = dict.fromkeys(names)
    if dp.get("available"):
        targets["p50_delta_at_most_1ms"] = all(
            e["data_plane_minus_direct_p50_ms"] <= SPEC_TARGET_P50_DELTA * 1000
            for e in ratios.values()
        )
        targets["throughput_at_least_2x_mlflow"] = all(
            e["data_plane_over_mlflow_throughput"] >= SPEC_TARGET_THROUGHPUT_OVER_MLFLOW
            for e in ratios.values()
        )
        targets["throughput_at_least_2x_mlflow_same_workers"] = all(
            e["data_plane_over_mlflow_same_workers_throughput"]
            >= SPEC_TARGET_THROUGHPUT_OVER_MLFLOW
            for e in ratios.values()
        )
        cti = dp.get("create_to_inservice") or {}
        if cti.get("n"):
            targets["create_to_inservice_under_5s"] = cti["max"] < SPEC_TARGET_CREATE_TO_INSERVICE
    data["ratios"], data["targets"] = ratios, targets


def verdict(value: bool | None) -> str:
    return "not available" if value is None else ("met" if value else "MISSED")


def markdown(data: dict[str, Any]) -> str:
    s, runs, dp, r = data["setup"], data["runs"], data["data_plane"], data["ratios"]
    cs = list(r)
    t = data["targets"]
    na = "" if dp.get("available") else f"not available: {dp.get('reason', '')}"

    def each(fmt: str, key: str) -> str:
        return na or ", ".join(f"c={c}: {fmt.format(r[c][key])}" for c in cs)

    cti = dp.get("create_to_inservice") or {}
    cti_text = (
        f"median {secs(cti['median'])}, max {secs(cti['max'])} ({cti['n']} runs)"
        if cti.get("n")
        else na or "-"
    )
    mlflow_note = (
        "; and `-w 1`, because uvicorn's `--workers N` leaves Nagle's algorithm on for "
        "keep-alive connections (Kludex/uvicorn#3149: about +40 ms a request, a delayed ACK)"
        if "mlflow_json_w1" in runs
        else ""
    )
    out = [
        "# Serving: the container, the data plane and mlflow serve",
        "",
        machine_markdown(data["machine"]),
        f"Load generator {s['wrk_version']}; client and servers share the machine's "
        f"{data['machine']['nproc']} cores (and with whatever else runs: see the load column).",
        "",
        f"Model: {s['model']['estimator']} on {s['model']['dataset']}, trained once in `{IMAGE}` "
        f"(scikit-learn {s['model']['sklearn']}, numpy {s['model']['numpy']}, Python {s['model']['python']}); "
        f"`model.joblib` sha256 `{s['model']['sha256'][:16]}`, served by all three. "
        f"mlflow {s['mlflow']['mlflow']} (scikit-learn {s['mlflow']['sklearn']}, numpy {s['mlflow']['numpy']}, "
        f"Python {s['mlflow']['python']}), "
        + (
            "the same file loaded and saved with `mlflow.sklearn.save_model`."
            if s["mlflow"].get("loaded")
            else "RETRAINED there with the same data, parameters and seed."
        ),
        f"Request: one row `{s['row']}` as `text/csv` (mlflow: with a header line, its CSV format; "
        f"and as JSON `{s['mlflow_json_body']}`); every target predicts `{s['prediction']}`.",
        f"Workers: {s['workers']} everywhere: the container with `SAGEMAKER_MODEL_SERVER_WORKERS={s['workers']}`, "
        f"the limits of `{s['instance_type']}` ({s['instance_limits']['cpus']} CPU, {s['instance_limits']['memory_mb']} MB) "
        f"and the runtime's flags; `mlflow models serve -w {s['workers']}` (uvicorn workers, no limits){mlflow_note}.",
        f"Load: wrk, keep-alive, every server up at once; {s['rounds']} interleaved rounds (order rotating), "
        f"each cell {s['warmup_seconds']:g} s warm-up then {s['duration_seconds']:g} s measured; "
        f"1 wrk thread for 1 connection, {s['wrk_threads']} otherwise. Figures are medians over the rounds.",
        "",
        "## Targets",
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
        f"| (b) adds at most 1 ms at p50 over (a) | {each('{:+.3f} ms', 'data_plane_minus_direct_p50_ms')} | {verdict(t['p50_delta_at_most_1ms'])} |",
        f"| (b) throughput at least 2x (c), (c) at its fastest (any variant) | {each('{:.2f}x', 'data_plane_over_mlflow_throughput')} | {verdict(t['throughput_at_least_2x_mlflow'])} |",
        f"| (b) throughput at least 2x (c), (c) with the same {s['workers']} workers (the issue's setting) | {each('{:.2f}x', 'data_plane_over_mlflow_same_workers_throughput')} | {verdict(t['throughput_at_least_2x_mlflow_same_workers'])} |",
        f"| create -> InService, one instance, under 5 s (every run) | {cti_text} | {verdict(t['create_to_inservice_under_5s'])} |",
        "",
        "(a) is the container as the studio publishes it (127.0.0.1, through the engine's port "
        "proxy). (a') is the same container at its bridge address, the way the data plane itself "
        "reaches instances: "
        + (
            each("{:+.3f} ms", "data_plane_minus_direct_bridge_p50_ms")
            if all("data_plane_minus_direct_bridge_p50_ms" in r[c] for c in cs)
            else "not measured"
        )
        + " at p50 for (b) over (a'), which no target names; reported so the gap without the "
        "proxy is on record too.",
        "",
        "## Latency and throughput (median of the rounds)",
        "",
        "| target | clients | p50 | p99 | req/s | p50 over rounds | req/s over rounds | errors | load (1 min) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key in LABELS:
        if key not in runs:
            if key == "data_plane":
                out.append(f"| {LABELS[key]} | - | - | - | - | - | - | - | {na} |")
            continue
        for c in cs:
            m = runs[key][c]
            loads = [x["loadavg_before"][0] for x in m["rounds"]]
            out.append(
                f"| {LABELS[key]} | {c} | {m['p50_ms']:.3f} ms | {m['p99_ms']:.3f} ms | "
                f"{m['requests_per_second']:,.0f} | {m['p50_ms_range'][0]:.3f}-{m['p50_ms_range'][1]:.3f} ms | "
                f"{m['requests_per_second_range'][0]:,.0f}-{m['requests_per_second_range'][1]:,.0f} | "
                f"{m['errors']} | {min(loads)}-{max(loads)} |"
            )
    out += [
        "",
        "## Ratios",
        "",
        "| clients | (b) - (a) p50 | (b) - (a) p50 per round | (b) - (a) p99 | (b) / (c) req/s | (b) / (a) req/s | (a) / (c) req/s | (c) used |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in cs:
        e = r[c]
        if dp.get("available"):
            b_cols = (
                f"{e['data_plane_minus_direct_p50_ms']:+.3f} ms | "
                + ", ".join(f"{x:+.3f}" for x in e["data_plane_minus_direct_p50_ms_rounds"])
                + f" | {e['data_plane_minus_direct_p99_ms']:+.3f} ms | "
                f"{e['data_plane_over_mlflow_throughput']:.2f}x | {e['data_plane_over_direct_throughput']:.2f}x"
            )
        else:
            b_cols = "- | - | - | - | -"
        out.append(
            f"| {c} | {b_cols} | {e['direct_over_mlflow_throughput']:.2f}x | {LABELS[e['mlflow_best']]} |"
        )
    out += [
        "",
        "(b) - (a): the median of the per-round differences ((a) and (b) run back to back in each "
        "round). (c) is mlflow's fastest variant at that concurrency (last column): the ratios "
        "against it are the conservative ones.",
        "",
        "## The data plane",
        "",
    ]
    if dp.get("available"):
        ic = dp.get("instance_container") or {}
        first = dp["first_create"]
        same = (
            str(ic.get("workers")) == str(s["workers"])
            and ic.get("cpus") == s["instance_limits"]["cpus"]
        )
        out += [
            f"Studio ready in {dp['studio_ready_seconds']:.1f} s; model `{dp['model']}` registered "
            "(external package, framework sklearn) and approved by a second user (role approver).",
            f"Endpoint `{ENDPOINT}` (the model staged from the artifact store first): create -> InService "
            f"{secs(first['create_to_inservice'])} (POST {secs(first['post_seconds'])}); statuses seen: "
            + ", ".join(f"{status} at {at:.2f} s" for at, status in first["statuses_seen"])
            + ".",
            f"Its instance container: {ic.get('cpus')} CPU, {ic.get('memory_mb')} MB, user {ic.get('user')}, "
            f"init {ic.get('init')}, `SAGEMAKER_MODEL_SERVER_WORKERS={ic.get('workers')}`"
            + ("" if same else " (DIFFERS from the direct container's: compare with care)")
            + ".",
            "",
            "Create -> InService (POST, then GET every 50 ms), after the load runs, each endpoint "
            "deleted before the next:",
            "",
            "| run | create -> InService | POST | delete -> gone | load (1 min) |",
            "|---|---|---|---|---|",
            *(
                f"| {x['name']} | {secs(x['create_to_inservice'])} | {secs(x['post_seconds'])} | "
                f"{secs(x['delete_seconds'])} | {x['loadavg'][0]} |"
                for x in cti.get("runs", [])
            ),
        ]
    else:
        out.append(f"Not measured: {dp.get('reason')}. (a) and (c) above stand on their own.")
    return "\n".join(out)


# --- main -----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_studio_arguments(parser, "serving")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=Path.home() / ".cache" / "studiolo-bench",
        help="the cached mlflow venv and this run's files (model, wrk scripts, logs)",
    )
    parser.add_argument(
        "--duration", type=int, default=5, help="seconds measured per cell (wrk: whole seconds)"
    )
    parser.add_argument(
        "--warmup", type=int, default=2, help="seconds of warm-up per cell, 0 for none"
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median kept)")
    parser.add_argument(
        "--concurrency",
        type=lambda v: [int(x) for x in v.split(",") if x],
        default=[1, 16],
        help="wrk connections (clients), comma-separated",
    )
    parser.add_argument("--wrk-threads", type=int, default=2, help="wrk threads above 1 client")
    parser.add_argument(
        "--instance-type",
        default="ml.local.large",
        choices=sorted(INSTANCE_TYPES),
        help="the endpoint's instance type; (a) gets its limits and both get one worker per CPU "
        "(the studio's rule), mlflow the same worker count",
    )
    parser.add_argument("--row", default="5.1,3.5,1.4,0.2", help="the feature row of every request")
    parser.add_argument("--create-runs", type=int, default=5, help="create -> InService samples")
    parser.add_argument("--create-timeout", type=float, default=120.0)
    parser.add_argument("--mlflow", default="mlflow>=3,<4", help="pip requirement for mlflow")
    parser.add_argument(
        "--mlflow-sklearn",
        default=None,
        help="scikit-learn for the mlflow venv (default: the image's, so the same pickle loads; "
        "another version retrains there with the same data, parameters and seed)",
    )
    parser.add_argument("--mlflow-python", default=None, help="Python for the mlflow venv")
    parser.add_argument("--skip-studio", action="store_true", help="measure (a) and (c) only")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk: command not found (Debian: apt-get install -y wrk)")
    if not run("docker", "image", "inspect", "--format", "{{.Id}}", IMAGE, check=False).strip():
        raise SystemExit(f"{IMAGE} is not on the engine: run scripts/build-images")
    limits = INSTANCE_TYPES[args.instance_type]
    workers = max(1, math.ceil(limits["cpus"]))
    work_dir = args.work_dir.resolve()
    run_dir = work_dir / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    run_dir.chmod(0o755)
    stale = remove_stale_containers()
    facts = machine_facts()
    facts["stale_containers_removed"] = len(stale)
    print(f"load average {facts['loadavg_at_start']}; training the model in {IMAGE}", flush=True)

    row = args.row
    model = train_model(run_dir / "model", row)
    expected = model["prediction"]
    sklearn_version = args.mlflow_sklearn or model["sklearn"]
    requirements = [args.mlflow, f"scikit-learn=={sklearn_version}"]
    if sklearn_version == model["sklearn"]:
        numpy_minor = ".".join(model["numpy"].split(".")[:2])
        requirements.append(f"numpy=={numpy_minor}.*")  # the pickle's numpy, for a like load
    python_version = ".".join(model["python"].split(".")[:2])
    venv = mlflow_env(work_dir, find_python(python_version, args.mlflow_python), requirements)
    mlflow_model = run_dir / "mlflow-model"
    source = (
        str(run_dir / "model" / "model.joblib")
        if sklearn_version == model["sklearn"]
        else "retrain"
    )
    saved = json.loads(
        run(str(venv / "bin" / "python"), "-c", SAVE_FOR_MLFLOW, source, str(mlflow_model), row)
        .strip()
        .splitlines()[-1]
    )
    if saved["prediction"] != expected:
        raise SystemExit(f"mlflow's copy predicts {saved['prediction']}, the model {expected}")
    mlflow_csv = "f0,f1,f2,f3\n" + row + "\n"  # pandas.read_csv: mlflow's CSV has a header
    mlflow_json = json.dumps({"inputs": [[float(x) for x in row.split(",")]]})
    data: dict[str, Any] = {
        "machine": facts,
        "setup": {
            "row": row,
            "prediction": expected,
            "model": model,
            "mlflow": saved,
            "mlflow_requirements": requirements,
            "mlflow_venv": str(venv),
            "mlflow_csv_body": mlflow_csv,
            "mlflow_json_body": mlflow_json,
            "workers": workers,
            "instance_type": args.instance_type,
            "instance_limits": limits,
            "rounds": args.rounds,
            "duration_seconds": args.duration,
            "warmup_seconds": args.warmup,
            "wrk_threads": args.wrk_threads,
            "wrk_version": run("wrk", "--version", check=False).split(" [")[0].strip()
            or "(unknown)",
        },
        "runs": {},
        "data_plane": {"available": False, "reason": "skipped (--skip-studio)"},
    }
    wrk = Wrk(run_dir, args.duration, args.warmup, args.wrk_threads)
    direct = DirectContainer(run_dir / "model", limits, workers)
    servers: dict[int, MlflowServer] = {}
    plane = DataPlane(args, workers)
    csv = {"Content-Type": "text/csv"}
    json_headers = {"Content-Type": "application/json"}
    try:
        data["setup"]["direct_argv"] = direct.argv
        data["setup"]["direct_ready_seconds"] = round(direct.start(), 3)
        targets = [Target("direct", direct.url + "/invocations", row, csv)]
        bridge = direct.bridge_address()
        if bridge:  # (a'): the same container without the engine's port proxy
            targets.append(Target("direct_bridge", f"http://{bridge}:8080/invocations", row, csv))
        # uvicorn --workers N leaves Nagle on (Kludex/uvicorn#3149): one worker as well.
        for count in sorted({workers, 1}, reverse=True):
            server = servers[count] = MlflowServer(
                venv, mlflow_model, count, run_dir / f"mlflow-w{count}.log"
            )
            data["setup"][f"mlflow_w{count}_argv"] = server.argv
            data["setup"][f"mlflow_w{count}_ready_seconds"] = round(server.start(), 3)
            url = server.url + "/invocations"
            if count == workers:
                targets += [
                    Target("mlflow_csv", url, mlflow_csv, csv),
                    Target("mlflow_json", url, mlflow_json, json_headers),
                ]
            else:
                targets.append(Target("mlflow_json_w1", url, mlflow_json, json_headers))
        if not args.skip_studio:
            try:
                found = plane.setup(model_archive(run_dir / "model"), row, expected)
            except Exception as exc:  # (a) and (c) are still measured and reported
                plane.result.update(available=False, error=True, reason=f"failed: {exc}")
                print(f"data plane: {plane.result['reason']}", flush=True)
                plane.close()
                found = None
            if found is not None:
                targets.insert(1, found)
        for target in targets:
            got = ask(target.url, target.body, target.headers)
            if got != expected:
                raise SystemExit(f"{target.key} predicts {got}, the model {expected}")
        # (a), (a') and (b) form a unit: their differences are taken round by round.
        pair = [t for t in targets if t.key in ("direct", "data_plane", "direct_bridge")]
        units = [pair, *([t] for t in targets if t not in pair)]
        data["runs"] = wrk.rounds(units, args.concurrency, args.rounds)
        for server in servers.values():
            server.stop()
        if plane.result.get("available"):
            try:
                plane.create_runs(args.create_runs)
            except Exception as exc:
                plane.result.update(error=True, create_error=str(exc))
                print(f"create -> InService: {exc}", flush=True)
    finally:
        plane.close()
        for server in servers.values():
            server.stop()
        direct.stop()
    if not args.skip_studio:
        data["data_plane"] = plane.result
    facts["loadavg_at_end"] = loadavg()
    compute(data, args.concurrency)
    text = markdown(data)
    write_results(args.out, data, text)
    print(text)
    missed = any(v is False for v in data["targets"].values())
    return 1 if missed or data["data_plane"].get("error") else 0


if __name__ == "__main__":
    sys.exit(main())
