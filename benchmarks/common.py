"""What every benchmark shares: a throw-away studio, an API client, a log websocket client,
percentiles, machine facts and the result files.

The studio is the real thing: `studiolo up --port <free port>` as a subprocess, with its own
`STUDIOLO_HOME` under the temp folder, `RUNTIME=docker` and the embedded defaults (SQLite and
an embedded Redis) unless `--database-url`/`--redis-url` are given. A user `bench` in team
`bench` (role scientist) and its API token are made with `studiolo user create` and
`studiolo token create`, exactly as an operator would.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import hashlib
import io
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from websockets.typing import Origin

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TEAM = "bench"
USER = "bench"
IMAGE = "studiolo/sklearn:latest"
START_TIMEOUT = 180.0
TERMINAL = ("Completed", "Failed", "Stopped")


def studiolo_bin() -> str:
    """The `studiolo` next to the interpreter running the benchmark (the venv's), else PATH."""
    beside = Path(sys.executable).parent / "studiolo"
    if beside.exists():
        return str(beside)
    found = shutil.which("studiolo")
    if found is None:
        raise SystemExit("studiolo: command not found (run with the project's .venv/bin/python)")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def add_studio_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS / f"{name}.json",
        help="result file (JSON); a Markdown summary is written beside it (.md)",
    )
    parser.add_argument(
        "--database-url", default=None, help="DATABASE_URL for the studio (default: SQLite)"
    )
    parser.add_argument(
        "--redis-url", default=None, help="REDIS_URL for the studio (default: embedded Redis)"
    )
    parser.add_argument(
        "--keep-home", action="store_true", help="leave the studio's data folder behind"
    )


# --- the studio --------------------------------------------------------------------------------


class Studio:
    """`studiolo up` in a fresh data folder; `stop()` (SIGINT, wait) undoes everything."""

    def __init__(
        self,
        *,
        database_url: str | None = None,
        redis_url: str | None = None,
        keep_home: bool = False,
        home: Path | None = None,
    ) -> None:
        # A short path: the embedded Redis listens on a unix socket inside it (108-byte limit).
        # A given `home` is kept, and its user (made by an earlier studio there) is reused.
        if home is not None:
            home.mkdir(parents=True, exist_ok=True)
        self.reused = home is not None and (home / "bench-user").exists()
        self.home = home or Path(tempfile.mkdtemp(prefix="sb-", dir=tempfile.gettempdir()))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.keep_home = keep_home or home is not None
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "REDIS_URL", "STUDIOLO_URL", "STUDIOLO_TOKEN")
        }
        env.update(STUDIOLO_HOME=str(self.home), RUNTIME="docker", NO_COLOR="1")
        if database_url:
            env["DATABASE_URL"] = database_url
        if redis_url:
            env["REDIS_URL"] = redis_url
        self.env = env
        self.output: list[str] = []
        self.process: subprocess.Popen[str] | None = None
        self.token = ""
        self.ready_seconds = 0.0

    @property
    def sqlite_path(self) -> Path | None:
        if "DATABASE_URL" in self.env:
            return None
        return self.home / "studiolo.sqlite3"

    def start(self) -> Studio:
        started = time.monotonic()
        self.process = subprocess.Popen(
            [studiolo_bin(), "up", "--port", str(self.port)],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        ready = threading.Event()

        stdout = self.process.stdout
        assert stdout is not None

        def pump() -> None:
            for line in stdout:
                self.output.append(line.rstrip("\n"))
                if "running at" in line:
                    ready.set()

        threading.Thread(target=pump, name="studio-output", daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT
        while not ready.wait(0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = "\n".join(self.output[-30:])
                raise SystemExit(f"studiolo up did not start:\n{tail}")
        self.ready_seconds = time.monotonic() - started
        if not self.reused:
            self._cli("user", "create", USER, "--team", TEAM, "--role", "scientist")
            (self.home / "bench-user").write_text(f"{USER}\n")
        self.token = self._cli("token", "create", USER).strip()
        return self

    def _cli(self, *args: str) -> str:
        done = subprocess.run(
            [studiolo_bin(), *args], env=self.env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise SystemExit(f"studiolo {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGINT)  # a second Ctrl-C cuts the grace short
                self.process.wait(timeout=30)
        if not self.keep_home:
            shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> Studio:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self) -> Client:
        return Client(self.url, self.token)

    def database_bytes(self) -> dict[str, int]:
        """SQLite's file sizes (the main file and its write-ahead log)."""
        path = self.sqlite_path
        if path is None:
            return {}
        sizes = {}
        for suffix in ("", "-wal", "-shm"):
            file = Path(f"{path}{suffix}")
            sizes[file.name] = file.stat().st_size if file.exists() else 0
        sizes["total"] = sum(sizes.values())
        return sizes


# --- the REST API -----------------------------------------------------------------------------


def source_archive(files: Mapping[str, str]) -> bytes:
    """`sourcedir.tar.gz` with `files` (name -> text) at its root, as `studiolo train` packs."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = int(time.time())
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class Client:
    """The studio's REST API with the bench user's token (one keep-alive connection)."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.token = token
        self.http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(120.0, connect=10.0),
        )

    def close(self) -> None:
        self.http.close()

    def _check(self, response: httpx.Response) -> Any:
        if response.is_error:
            raise RuntimeError(
                f"{response.request.method} {response.request.url}: {response.status_code} "
                f"{response.text[:500]}"
            )
        return response.json()

    def upload(self, key: str, data: bytes) -> dict[str, Any]:
        response = self.http.put(
            "/api/v1/artifacts/" + quote(key, safe="/"),
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        return dict(self._check(response))

    def upload_source(self, job_name: str, files: Mapping[str, str]) -> str:
        key = f"teams/{TEAM}/jobs-source/{job_name}/sourcedir.tar.gz"
        return str(self.upload(key, source_archive(files))["uri"])

    def submit(
        self, name: str, source_uri: str, entry_point: str = "train.py", **extra: Any
    ) -> dict[str, Any]:
        body = {
            "team": TEAM,
            "name": name,
            "framework": "sklearn",
            "entry_point": entry_point,
            "source_uri": source_uri,
            "instance_type": "ml.local.small",
            **extra,
        }
        return dict(self._check(self.http.post("/api/v1/jobs", json=body)))

    def job(self, job_id: int) -> dict[str, Any]:
        return dict(self._check(self.http.get(f"/api/v1/jobs/{job_id}")))

    def logs_page(self, job_id: int, after: int = 0, limit: int = 1000) -> dict[str, Any]:
        response = self.http.get(
            f"/api/v1/jobs/{job_id}/logs", params={"after": after, "limit": limit}
        )
        return dict(self._check(response))

    def all_lines(self, job_id: int, limit: int = 10000) -> tuple[list[dict[str, Any]], int]:
        """Every stored line, page by page; (lines, pages)."""
        lines: list[dict[str, Any]] = []
        after, pages = 0, 0
        while True:
            page = self.logs_page(job_id, after, limit)
            pages += 1
            lines.extend(page["results"])
            if len(page["results"]) < limit:
                return lines, pages
            after = page["next_after"]

    def download_log(self, job_id: int) -> bytes:
        response = self.http.get(f"/api/v1/jobs/{job_id}/logs/download")
        if response.is_error:
            raise RuntimeError(f"log download: {response.status_code} {response.text[:300]}")
        return response.content

    def download(self, link: str) -> bytes:
        response = self.http.get(link)
        if response.is_error:
            raise RuntimeError(f"download {link}: {response.status_code}")
        return response.content

    def wait_terminal(self, job_id: int, timeout: float = 600.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["status"] in TERMINAL:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout} s")
            time.sleep(0.5)


# --- the log websocket ------------------------------------------------------------------------


@dataclass
class Received:
    """One websocket message and when it arrived (time.time() and perf_counter())."""

    wall: float
    perf: float
    message: dict[str, Any]


@dataclass
class LogSession:
    job_id: int
    connect_started: float = 0.0  # perf_counter
    connected: float = 0.0  # perf_counter, handshake done
    connected_wall: float = 0.0
    messages: list[Received] = field(default_factory=list)
    ended: Received | None = None
    error: str = ""

    def lines(self) -> Iterator[tuple[Received, dict[str, Any]]]:
        for received in self.messages:
            if received.message.get("type") == "lines":
                for line in received.message["lines"]:
                    yield received, line


def follow_log(
    base_url: str,
    token: str,
    job_id: int,
    *,
    timeout: float = 600.0,
    on_message: Callable[[Received], None] | None = None,
) -> LogSession:
    """Connect to `/ws/jobs/<id>/logs` and record every message until `end` (or timeout)."""
    session = LogSession(job_id)
    ws_url = "ws://" + base_url.split("://", 1)[1] + f"/ws/jobs/{job_id}/logs"
    deadline = time.monotonic() + timeout
    session.connect_started = time.perf_counter()
    try:
        with connect(
            ws_url,
            origin=Origin(base_url),
            additional_headers={"Authorization": f"Bearer {token}"},
            open_timeout=30,
            close_timeout=2,
            max_size=256 * 1024 * 1024,
            max_queue=None,
        ) as ws:
            session.connected = time.perf_counter()
            session.connected_wall = time.time()
            while time.monotonic() < deadline:
                try:
                    raw = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
                except TimeoutError:
                    break
                except ConnectionClosed:
                    break
                received = Received(time.time(), time.perf_counter(), json.loads(raw))
                session.messages.append(received)
                if on_message is not None:
                    on_message(received)
                if received.message.get("type") == "end":
                    session.ended = received
                    break
    except Exception as exc:  # recorded in the results, not fatal to the whole run
        session.error = f"{type(exc).__name__}: {exc}"
    if session.ended is None and not session.error:
        session.error = "no end message before the timeout"
    return session


# --- numbers ----------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100), linear interpolation between closest ranks (numpy's
    default, R's type 7); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float]) -> dict[str, Any]:
    """n, min, p50, p95, max, mean (seconds stay seconds), rounded to the microsecond."""
    if not values:
        return {"n": 0}

    def r(value: float | None) -> float | None:
        return None if value is None else round(value, 6)

    return {
        "n": len(values),
        "min": r(min(values)),
        "p50": r(percentile(values, 50)),
        "p95": r(percentile(values, 95)),
        "max": r(max(values)),
        "mean": r(sum(values) / len(values)),
    }


def parse_time(value: str | None) -> float | None:
    """An API time (ISO 8601) as epoch seconds."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


# --- the machine and the result files ---------------------------------------------------------


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _run_text(*argv: str) -> str:
    try:
        return subprocess.run(
            list(argv), capture_output=True, text=True, check=False, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine_facts() -> dict[str, Any]:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_total = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_total = line.split(":", 1)[1].strip()
                break
    commit = _run_text("git", "-C", str(ROOT), "rev-parse", "HEAD")
    dirty = bool(_run_text("git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"))
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": cpu_model,
        "memory": mem_total,
        "kernel": platform.release(),
        "loadavg_at_start": loadavg(),
        "python": platform.python_version(),
        "docker_server": _run_text("docker", "version", "--format", "{{.Server.Version}}"),
        "docker_client": _run_text("docker", "version", "--format", "{{.Client.Version}}"),
        "image": IMAGE,
        "image_id": _run_text("docker", "image", "inspect", "--format", "{{.Id}}", IMAGE),
        "git_commit": commit + ("-dirty" if dirty else ""),
    }


def machine_markdown(facts: Mapping[str, Any]) -> str:
    return (
        f"Machine: {facts['nproc']} cores ({facts['cpu']}), {facts['memory']} RAM, "
        f"kernel {facts['kernel']}, Python {facts['python']}, Docker {facts['docker_server']}, "
        f"commit `{facts['git_commit'][:12]}{'-dirty' if facts['git_commit'].endswith('-dirty') else ''}`, "
        f"{facts['date']}. Load average at start {facts['loadavg_at_start']}, "
        f"at end {facts.get('loadavg_at_end')}."
    )


def write_results(out: Path, data: dict[str, Any], markdown: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown.rstrip() + "\n")
    print(f"results: {out} and {out.with_suffix('.md')}")


def stamp_name(prefix: str) -> str:
    """A job name unique within a run: prefix plus milliseconds."""
    return f"{prefix}-{int(time.time() * 1000) % 10**10}"


def timed_docker_run(argv: Sequence[str]) -> dict[str, Any]:
    """`argv` (a docker run) with its wall time and the time to its first stdout byte."""
    started = time.perf_counter()
    process = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    first = process.stdout.read(1)
    first_byte = time.perf_counter() - started if first else float("nan")
    rest = process.stdout.read()
    process.wait()
    wall = time.perf_counter() - started
    return {
        "wall": wall,
        "first_byte": first_byte,
        "bytes": len(first) + len(rest),
        "lines": (first + rest).count(b"\n"),
        "exit_code": process.returncode,
    }


# --- mlflow, the peer ---------------------------------------------------------------------------


def find_python(version: str, given: str | None) -> str:
    """A Python `version` (major.minor) for the mlflow venv: --mlflow-python, else
    pythonX.Y on PATH, else pyenv's newest X.Y."""
    if given:
        return given
    found = shutil.which(f"python{version}")
    if found:
        return found
    root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates = sorted(
        glob.glob(f"{root}/versions/{version}.*/bin/python3"),
        key=lambda p: [int(x) for x in re.findall(r"\d+", Path(p).parent.parent.name)],
    )
    if not candidates:
        raise SystemExit(f"no Python {version} for the mlflow venv: give one with --mlflow-python")
    return candidates[-1]


def mlflow_env(work_dir: Path, python: str, requirements: Sequence[str]) -> Path:
    """A venv with `requirements`, reused while the Python and the requirements are the same."""
    py_version = _run_text(python, "-c", "import platform; print(platform.python_version())")
    key = hashlib.sha256("\n".join([python, py_version, *requirements]).encode()).hexdigest()[:12]
    venv = work_dir / f"mlflow-py{py_version}-{key}"
    ready = venv / "studiolo-bench-ready"
    if ready.exists():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    print(f"creating {venv} ({' '.join(requirements)}), a few minutes once", flush=True)
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    log = work_dir / "pip.log"
    done = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", *requirements],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        check=False,
    )
    if done.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise SystemExit(
            f"pip install {' '.join(requirements)} failed (log: {log}):\n{tail}\n"
            "(benchmarks/serving.py: if mlflow cannot live with the image's scikit-learn, pass "
            "--mlflow-sklearn VERSION.)"
        )
    ready.write_text("\n".join(requirements) + "\n")
    return venv


def wait_http_ok(url: str, timeout: float, alive: Any = None) -> float:
    """Poll GET url until 200; seconds waited. `alive()` False aborts (the server died)."""
    started = time.monotonic()
    with httpx.Client(timeout=2.0) as http:
        while time.monotonic() - started < timeout:
            if alive is not None and not alive():
                raise RuntimeError(f"{url}: the server exited before answering")
            with contextlib.suppress(httpx.HTTPError):
                if http.get(url).status_code == 200:
                    return time.monotonic() - started
            time.sleep(0.1)
    raise RuntimeError(f"{url}: no 200 within {timeout:g} s")


class ServerProcess:
    """A peer's server (`argv`) in its own process group, output to `log`; `start()` waits for
    GET `health_url` to answer 200 (seconds waited), `stop()` ends the whole group."""

    def __init__(self, argv: Sequence[str], log: Path, health_url: str, name: str) -> None:
        self.argv = list(argv)
        self.log = log
        self.health_url = health_url
        self.name = name
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        env = {**os.environ, "PATH": f"{Path(self.argv[0]).parent}:{os.environ['PATH']}"}
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        process = self.process
        try:
            return wait_http_ok(self.health_url, 180, alive=lambda: process.poll() is None)
        except RuntimeError as exc:
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
            self.stop()
            raise SystemExit(f"{self.name} did not start: {exc}\n{tail}") from None

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None


# --- CPU time of the studio's processes ---------------------------------------------------------


def _proc_stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user+system CPU seconds) of a process, from /proc."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks


def _role(pid: int) -> str:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "?"
    if "uvicorn" in cmdline:
        return "web"
    if "celery" in cmdline and " worker" in cmdline:
        return "worker"
    if "celery" in cmdline and " beat" in cmdline:
        return "beat"
    if "redis" in cmdline:
        return "redis"
    return "up"


def cpu_seconds(root_pid: int) -> dict[str, float]:
    """CPU seconds used so far by `root_pid` and its descendants (by role: web, worker, beat,
    redis, up), and by the Docker engine (dockerd, containerd), whose log path jobs use."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None:
                parents[int(entry.name)], cpu[int(entry.name)] = stat
    tree = {root_pid}
    changed = True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                changed = True
    totals: dict[str, float] = {}
    for pid in tree:
        if pid in cpu:
            role = _role(pid)
            totals[role] = totals.get(role, 0.0) + cpu[pid]
    for pid in parents:
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if name in ("dockerd", "containerd"):
            totals[name] = totals.get(name, 0.0) + cpu[pid]
    return {k: round(v, 2) for k, v in sorted(totals.items())}


def cpu_delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    return {k: round(after.get(k, 0.0) - before.get(k, 0.0), 2) for k in after}
