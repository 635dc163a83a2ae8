"""``studiolo-spark-submit``: run a PySpark script in a processing job, on one or N instances.

The platform starts every instance's container with the same command, e.g.
``studiolo-spark-submit /opt/ml/processing/input/code/job.py --arg 1``; the arguments go to
``spark-submit`` as they are (spark-submit options may come before the script). The hosts come
from processing's ``/opt/ml/config/resourceconfig.json``:

* one host: ``spark-submit --master local[*]``;
* N hosts: ``algo-1`` starts a standalone master and a worker, waits until all N workers have
  registered, and runs the driver (client mode) against ``spark://algo-1:7077``, so executors
  run on every host; the other hosts start a worker and stay up while the master answers. A
  worker host exits 0 once the master, which it reached before, stops answering (the driver is
  done), and 1 when it never reaches it within ``STUDIOLO_SPARK_CONNECT_TIMEOUT`` seconds.

The exit status is the driver's. Spark writes only under ``/tmp/spark`` (the root file system may
be read-only), and its JVMs are sized from the container's cgroup memory limit.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType

from studiolo_toolkit.cluster import memory_limit_bytes, usable_cpus, wait_for_hosts
from studiolo_toolkit.environment import BASE_DIR_ENV, DEFAULT_BASE_DIR, DEFAULT_HOST
from studiolo_toolkit.errors import ToolkitError

logger = logging.getLogger("studiolo_toolkit")

MASTER_PORT = 7077
MASTER_UI_PORT = 8080
WORKER_UI_PORT = 8081
SPARK_ROOT = "/tmp/spark"  # noqa: S108 - the container's own tmpfs
CONNECT_TIMEOUT_ENV = "STUDIOLO_SPARK_CONNECT_TIMEOUT"
DEFAULT_CONNECT_TIMEOUT = 300.0
_POLL_SECONDS = 1.0
# A master that stops answering this many polls in a row is gone (the job is over).
_MISSED_POLLS = 3

MiB = 1024 * 1024
SNAPPY_SYSTEM_LIB = "-Dorg.xerial.snappy.use.systemlib=true"


@dataclass(frozen=True)
class Cluster:
    current_host: str
    hosts: list[str]

    @property
    def master(self) -> str:
        return self.hosts[0]

    @property
    def is_master(self) -> bool:
        return self.current_host == self.master


def read_cluster(environ: Mapping[str, str]) -> Cluster:
    base = environ.get(BASE_DIR_ENV) or DEFAULT_BASE_DIR
    path = os.path.join(base, "config", "resourceconfig.json")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except FileNotFoundError:
        return Cluster(DEFAULT_HOST, [DEFAULT_HOST])
    current = str(config.get("current_host", DEFAULT_HOST))
    hosts = sorted(str(h) for h in config.get("hosts", [current]))
    if current not in hosts:
        raise ToolkitError(f"{path}: current_host {current!r} is not among hosts {hosts}")
    return Cluster(current, hosts)


@dataclass(frozen=True)
class MemoryPlan:
    """JVM heap sizes in MiB. What is left of the limit is for the JVMs' own overhead and
    PySpark's Python workers, which live outside the heaps."""

    driver: int
    executor: int  # the app's spark.executor.memory, the same on every host
    worker: int  # SPARK_WORKER_MEMORY: what a worker may give its executors
    daemon: int  # SPARK_DAEMON_MEMORY: master and worker processes themselves


def plan_memory(limit_bytes: int, hosts: int) -> MemoryPlan:
    total = limit_bytes // MiB
    if hosts == 1:
        # local[*]: the executors are threads of the driver's JVM.
        return MemoryPlan(driver=max(total * 55 // 100, 256), executor=0, worker=0, daemon=0)
    daemon = 128 if total < 2048 else 256
    # algo-1 holds the master, a worker, the driver and an executor: its share sets the
    # app-wide executor size, which the other (equal) hosts then fit easily.
    driver = max(total * 20 // 100, 256)
    executor = max(total * 35 // 100, 256)
    return MemoryPlan(driver=driver, executor=executor, worker=executor, daemon=daemon)


def spark_environment(
    environ: Mapping[str, str], cluster: Cluster, plan: MemoryPlan
) -> dict[str, str]:
    env = dict(environ)
    dirs = {
        "SPARK_LOCAL_DIRS": "local",
        "SPARK_WORKER_DIR": "work",
        "SPARK_LOG_DIR": "logs",
        "SPARK_PID_DIR": "pids",
    }
    for variable, name in dirs.items():
        env[variable] = os.path.join(SPARK_ROOT, name)
    home = env.get("HOME", "")
    if not home or not os.access(home, os.W_OK):
        env["HOME"] = os.path.join(SPARK_ROOT, "home")  # ~/.ivy2, ~/.cache: a read-only root
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    env["PYTHONUNBUFFERED"] = "1"
    env["SPARK_NO_DAEMONIZE"] = "1"
    if len(cluster.hosts) == 1:
        env["SPARK_LOCAL_IP"] = "127.0.0.1"  # no network is needed, and there may be none
    else:
        # Executors and the driver advertise the host's name, which its peers resolve.
        env["SPARK_LOCAL_HOSTNAME"] = cluster.current_host
        env["SPARK_DAEMON_MEMORY"] = f"{plan.daemon}m"
    return env


def submit_command(
    cluster: Cluster, plan: MemoryPlan, cores: int, user_args: Sequence[str]
) -> list[str]:
    conf = {
        "spark.local.dir": os.path.join(SPARK_ROOT, "local"),
        "spark.jars.ivy": os.path.join(SPARK_ROOT, "ivy"),
        "spark.ui.showConsoleProgress": "false",
        # snappy-java loads the image's /usr/lib/jni copy instead of unpacking one into /tmp,
        # which is mounted noexec (containers/spark/native-libs.py).
        "spark.driver.extraJavaOptions": SNAPPY_SYSTEM_LIB,
        "spark.executor.extraJavaOptions": SNAPPY_SYSTEM_LIB,
    }
    command = ["spark-submit", "--driver-memory", f"{plan.driver}m"]
    if len(cluster.hosts) == 1:
        command += ["--master", "local[*]"]
    else:
        total_cores = cores * len(cluster.hosts)
        command += ["--master", f"spark://{cluster.master}:{MASTER_PORT}"]
        command += ["--deploy-mode", "client", "--executor-memory", f"{plan.executor}m"]
        conf.update(
            {
                "spark.driver.host": cluster.current_host,
                "spark.executor.cores": str(cores),
                "spark.cores.max": str(total_cores),
                # Stages start only once every host's executor has registered.
                "spark.scheduler.minRegisteredResourcesRatio": "1.0",
                "spark.scheduler.maxRegisteredResourcesWaitingTime": "120s",
            }
        )
    for key, value in conf.items():
        command += ["--conf", f"{key}={value}"]
    return [*command, *user_args]


def _spark_class(*args: str) -> list[str]:
    return ["spark-class", *args]


def master_command(cluster: Cluster) -> list[str]:
    return _spark_class(
        "org.apache.spark.deploy.master.Master",
        "--host",
        cluster.master,
        "--port",
        str(MASTER_PORT),
        "--webui-port",
        str(MASTER_UI_PORT),
    )


def worker_command(cluster: Cluster, plan: MemoryPlan, cores: int) -> list[str]:
    return _spark_class(
        "org.apache.spark.deploy.worker.Worker",
        f"spark://{cluster.master}:{MASTER_PORT}",
        "--host",
        cluster.current_host,
        "--cores",
        str(cores),
        "--memory",
        f"{plan.worker}m",
        "--work-dir",
        os.path.join(SPARK_ROOT, "work"),
        "--webui-port",
        str(WORKER_UI_PORT),
    )


def port_open(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def alive_workers(host: str) -> int:
    url = f"http://{host}:{MASTER_UI_PORT}/json/"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our own master
            status = json.load(response)
    except (OSError, ValueError):
        return 0
    return int(status.get("aliveworkers", 0))


class Daemons:
    """Spark's master/worker processes of this host, logging to files under /tmp/spark/logs."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = dict(env)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        log_path = os.path.join(SPARK_ROOT, "logs", f"{name}.log")
        logger.info("Starting the Spark %s: %s (log: %s)", name, " ".join(command), log_path)
        with open(log_path, "ab") as log:
            process = subprocess.Popen(  # noqa: S603 - Spark's own launcher
                command, env=self._env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        self.processes[name] = process
        return process

    def exited(self) -> tuple[str, int] | None:
        for name, process in self.processes.items():
            code = process.poll()
            if code is not None:
                return name, code
        return None

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def show_log(self, name: str, lines: int = 30) -> None:
        path = os.path.join(SPARK_ROOT, "logs", f"{name}.log")
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                tail = f.readlines()[-lines:]
        except OSError:
            return
        sys.stderr.write(f"--- last lines of the Spark {name}'s log ---\n{''.join(tail)}")


def _wait_until(
    condition: Callable[[], bool], deadline: float, what: str, daemons: Daemons
) -> None:
    while not condition():
        dead = daemons.exited()
        if dead is not None:
            daemons.show_log(dead[0])
            raise ToolkitError(f"the Spark {dead[0]} exited with status {dead[1]} while {what}")
        if time.monotonic() > deadline:
            for name in daemons.processes:
                daemons.show_log(name)
            raise ToolkitError(f"timed out {what}")
        time.sleep(_POLL_SECONDS)


def _run_driver(command: list[str], env: Mapping[str, str], stop: _Stop) -> int:
    logger.info("Invoking: %s", " ".join(command))
    sys.stdout.flush()
    sys.stderr.flush()
    driver = subprocess.Popen(command, env=dict(env), stdin=subprocess.DEVNULL)  # noqa: S603
    stop.child = driver
    code = driver.wait()
    stop.child = None
    return 128 - code if code < 0 else code


class _Stop:
    """SIGTERM/SIGINT: pass it to the driver if one runs, then end the daemons (in ``finally``)."""

    def __init__(self) -> None:
        self.child: subprocess.Popen[bytes] | None = None
        self.signum: int | None = None

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signum)
        else:
            raise SystemExit(128 + signum)


def run(user_args: Sequence[str], environ: Mapping[str, str]) -> int:
    cluster = read_cluster(environ)
    cores = usable_cpus()
    plan = plan_memory(memory_limit_bytes(), len(cluster.hosts))
    env = spark_environment(environ, cluster, plan)
    for name in ("local", "work", "logs", "pids", "home", "ivy"):
        os.makedirs(os.path.join(SPARK_ROOT, name), exist_ok=True)
    logger.info(
        "Spark on %s of %s (%d cores, memory plan %s)",
        cluster.current_host,
        cluster.hosts,
        cores,
        plan,
    )
    stop = _Stop()
    stop.install()
    submit = submit_command(cluster, plan, cores, user_args)
    if len(cluster.hosts) == 1:
        return _run_driver(submit, env, stop)

    connect_timeout = float(environ.get(CONNECT_TIMEOUT_ENV) or DEFAULT_CONNECT_TIMEOUT)
    daemons = Daemons(env)
    try:
        wait_for_hosts(cluster.hosts if cluster.is_master else [cluster.master])
        if cluster.is_master:
            return _run_master_host(
                cluster, plan, cores, submit, env, daemons, stop, connect_timeout
            )
        return _run_worker_host(cluster, plan, cores, daemons, connect_timeout)
    finally:
        daemons.stop()


def _run_master_host(
    cluster: Cluster,
    plan: MemoryPlan,
    cores: int,
    submit: list[str],
    env: Mapping[str, str],
    daemons: Daemons,
    stop: _Stop,
    connect_timeout: float,
) -> int:
    daemons.start("master", master_command(cluster))
    deadline = time.monotonic() + connect_timeout
    _wait_until(
        lambda: port_open(cluster.master, MASTER_PORT), deadline, "starting the master", daemons
    )
    daemons.start("worker", worker_command(cluster, plan, cores))
    count = len(cluster.hosts)
    _wait_until(
        lambda: alive_workers(cluster.master) >= count,
        deadline,
        f"waiting for the {count} workers of {cluster.hosts} to register",
        daemons,
    )
    logger.info(
        "All %d Spark workers registered with spark://%s:%d", count, cluster.master, MASTER_PORT
    )
    return _run_driver(submit, env, stop)


def _run_worker_host(
    cluster: Cluster, plan: MemoryPlan, cores: int, daemons: Daemons, connect_timeout: float
) -> int:
    deadline = time.monotonic() + connect_timeout
    while not port_open(cluster.master, MASTER_PORT):
        if time.monotonic() > deadline:
            raise ToolkitError(
                f"the Spark master spark://{cluster.master}:{MASTER_PORT} did not answer within "
                f"{connect_timeout:.0f} s"
            )
        time.sleep(_POLL_SECONDS)
    worker = daemons.start("worker", worker_command(cluster, plan, cores))
    missed = 0
    while missed < _MISSED_POLLS:
        code = worker.poll()
        if code is not None:
            daemons.show_log("worker")
            raise ToolkitError(f"the Spark worker exited with status {code}")
        time.sleep(_POLL_SECONDS)
        missed = 0 if port_open(cluster.master, MASTER_PORT) else missed + 1
    logger.info("The Spark master on %s is gone: the job is over", cluster.master)
    return 0


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s studiolo-spark %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


USAGE = """usage: studiolo-spark-submit [spark-submit options] SCRIPT [ARGS...]

Runs SCRIPT with spark-submit: local[*] on one instance, a standalone cluster over the job's
instances (master on algo-1, from /opt/ml/config/resourceconfig.json) otherwise."""


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)  # noqa: T201
        raise SystemExit(0 if args else 2)
    _configure_logging()
    if shutil.which("spark-submit") is None:
        logger.error("spark-submit is not on PATH: this image has no Spark")
        raise SystemExit(127)
    try:
        code = run(args, os.environ)
    except ToolkitError as error:
        logger.error("%s", error)
        code = 1
    raise SystemExit(code)


if __name__ == "__main__":
    main()
