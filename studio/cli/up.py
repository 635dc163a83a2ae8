"""`studiolo up`: the whole studio on one machine, supervised.

Embedded Redis (when REDIS_URL is unset), migrations, the first admin, then the web
server, the control-plane worker, the job worker and beat as children (see `supervisor`);
stopped in order on Ctrl-C or SIGTERM, with nothing left behind. A child or the embedded
Redis that dies is started again (with a growing delay while it keeps dying); the others
carry on, and reconnect to a restarted Redis by themselves.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType, TracebackType

from studio.cli.common import CliError, config_load, django_setup, url_masked
from studio.cli.server import (
    beat_argv,
    beat_schedule_file,
    child_env,
    migrate_database,
    parse_port,
    web_argv,
    worker_argv,
    worker_queues,
)
from studio.cli.supervisor import Backoff, Child, Console, describe_exit
from studio.config import Config

# The server first (no new work), the job worker last.
STOP_ORDER = ("web", "beat", "control", "jobs")
STOP_GRACE = 10.0  # seconds: Celery's warm shutdown finishes the task at hand
HEALTHZ_TIMEOUT = 60.0
RUNNING_BANNER = "Studiolo is running at {url}  (Ctrl-C to stop)"


class UpLock:
    """`run/up.lock`, held (flock) while an `up` runs on this data folder.

    The kernel drops the lock when the holder dies however it dies, so a stale file left
    by a SIGKILLed `up` never blocks the next one.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1

    def __enter__(self) -> UpLock:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)  # not inherited by children
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise CliError(
                    f"another `studiolo up` (pid {holder}) is already running on "
                    f"{self.path.parent.parent}; stop it first (lock: {self.path})"
                ) from None
            try:
                same_file = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same_file = False
            if same_file:
                break
            os.close(fd)  # we locked a file its previous holder had just removed: retry
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Remove while still holding the lock, so a waiting `up` never locks a dead file
        # (and if it does, the inode check above sends it back to the new one).
        self.path.unlink(missing_ok=True)
        os.close(self._fd)


def _port_check(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            probe.bind((host, port))
        except OSError as exc:
            hint = " (choose another --port)" if exc.errno == errno.EADDRINUSE else ""
            raise CliError(f"cannot listen on {host}:{port}: {exc.strerror}{hint}") from exc


def _local_url(host: str, port: int) -> str:
    """Where this machine reaches the server (a wildcard address is reached on loopback)."""
    if host in ("0.0.0.0", ""):  # noqa: S104 - compared, not bound
        host = "127.0.0.1"
    elif host == "::":
        host = "[::1]"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/"


class Supervisor:
    """Everything `up` runs, in order, and the stop that undoes it in reverse."""

    def __init__(self, config: Config, args: argparse.Namespace, console: Console) -> None:
        self.config = config
        self.args = args
        self.console = console
        self.children: dict[str, Child] = {}  # running (or just died, not yet reaped)
        self.commands: dict[str, list[str]] = {}
        self.env: dict[str, str] = {}
        self.redis: subprocess.Popen[bytes] | None = None
        self.backoff: dict[str, Backoff] = {}
        self.restart_at: dict[str, float] = {}  # name -> when a dead one is started again
        self.signals: list[int] = []

    # Signal handlers only append to a list (no locks: a handler runs between two bytecodes
    # of the main thread, which may hold any lock); the main thread polls it.
    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals.append(signum)

    def _stopping(self) -> bool:
        return bool(self.signals)

    def _hurry(self) -> bool:
        return len(self.signals) > 1

    def run(self) -> int:
        handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in handled}
        try:
            code = self._start_and_wait()
        finally:
            try:
                self._stop()
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
        return code

    def _start_and_wait(self) -> int:
        config = self.config
        started = time.monotonic()
        self.console.line(f"Studiolo: data in {config.home}")
        django_setup()
        if config.redis_embedded:
            self._redis_start()
        else:
            self._redis_external_check()
        if self._stopping():
            return 0
        self._database_prepare()
        if self._stopping():
            return 0
        env = child_env(config)
        if config.runtime == "auto":
            # Settled once, here, for every process of this studio: a worker that started
            # while the engine was briefly away must not run local processes beside the
            # others' containers (nor take Docker instances for dead ones).
            from compute.runtime import runtime_status

            status = runtime_status()
            env["RUNTIME"] = status.name
            self.console.line(f"Runtime: {status.name} ({status.detail}; RUNTIME=auto)")
        self.env = env
        logs = config.home / "logs"
        self.commands = {"web": web_argv(config, self.args.host, self.args.port)}
        if not self.args.no_worker:
            for role in ("control", "jobs"):
                self.commands[role] = worker_argv(
                    role, log_level=config.log_level, queues=worker_queues(role)
                )
        self.commands["beat"] = beat_argv(
            log_level=config.log_level, schedule=beat_schedule_file(config)
        )
        for name in self.commands:
            self._child_start(name)
        url = _local_url(self.args.host, self.args.port)
        failure = self._wait_healthy(url + "healthz")
        if failure is not None:
            return failure
        if self._stopping():
            return 0
        self.console.line(RUNNING_BANNER.format(url=url))
        self.console.line(f"(ready in {time.monotonic() - started:.1f} s; logs in {logs})")
        while not self._stopping():
            self._supervise()
            time.sleep(0.2)
        return 0

    # --- supervision: what died is started again, the rest carries on ----------------------

    def _child_start(self, name: str) -> None:
        log_path = self.config.home / "logs" / f"{name}.log"
        self.children[name] = Child(
            name, self.commands[name], env=self.env, log_path=log_path, console=self.console
        )
        self.backoff.setdefault(name, Backoff()).started()

    def _supervise(self) -> None:
        """One round: notice what died, and start again what is due."""
        now = time.monotonic()
        redis = self.redis
        if redis is not None and redis.poll() is not None and "redis" not in self.restart_at:
            log = self.config.home / "logs" / "redis.log"
            self._schedule_restart(
                "redis", f"redis exited unexpectedly ({describe_exit(redis.returncode)}; see {log})"
            )
        for name, child in list(self.children.items()):
            code = child.exit_code()
            if code is None:
                continue
            # Reap it and whatever is left of its process group (a pool process) now, while
            # the group id still cannot belong to anyone else.
            child.stop(0)
            del self.children[name]
            self._schedule_restart(
                name,
                f"{name} exited unexpectedly ({describe_exit(code)}; see "
                f"{self.config.home / 'logs' / (name + '.log')})",
            )
        for name, due in list(self.restart_at.items()):
            if now < due or self._stopping():
                continue
            del self.restart_at[name]
            if name == "redis":
                self._redis_restart()
            else:
                self._child_start(name)
                pid = self.children[name].pid
                self.console.line(f"studiolo: {name} started again (pid {pid})")

    def _schedule_restart(self, name: str, why: str) -> None:
        delay = self.backoff.setdefault(name, Backoff()).next_delay()
        self.restart_at[name] = time.monotonic() + delay
        self.console.line(f"studiolo: {why}; starting it again in {delay:.0f} s")

    def _redis_restart(self) -> None:
        """Start the embedded Redis again on the same socket and data (its append-only file
        holds the queued work); the children reconnect by themselves."""
        try:
            self._redis_start()
        except CliError as exc:
            self.redis = None
            self._schedule_restart("redis", exc.message)
            return
        self.backoff.setdefault("redis", Backoff()).started()
        assert self.redis is not None  # noqa: S101 - set by _redis_start
        self.console.line(f"studiolo: redis started again (pid {self.redis.pid})")

    def _redis_start(self) -> None:
        from studio import embedded_redis

        socket_path = self.config.embedded_redis_socket
        _redis_leftover_stop(socket_path, self.console)
        try:
            self.redis = embedded_redis.start(
                socket_path,
                self.config.home / "redis",
                log_file=self.config.home / "logs" / "redis.log",
            )
        except embedded_redis.EmbeddedRedisError as exc:
            raise CliError(f"embedded Redis: {exc}") from exc
        if "redis" not in self.backoff:
            self.console.line(f"Redis: embedded, unix://{socket_path}")

    def _redis_external_check(self) -> None:
        import redis

        from studio.health import redis_client

        url = url_masked(self.config.redis_url)
        client = redis_client()
        try:
            client.ping()
        except (redis.RedisError, OSError) as exc:
            raise CliError(f"REDIS_URL: cannot use {url}: {exc}") from exc
        finally:
            client.close()
        self.console.line(f"Redis: external, {url}")

    def _database_prepare(self) -> None:
        from django.db import connections

        from studio.accounts.services import initial_admin_ensure

        applied = migrate_database(verbosity=0)
        state = f"applied {applied} migrations" if applied else "up to date"
        self.console.line(f"Database: {state} ({url_masked(self.config.database_url)})")
        password = initial_admin_ensure()
        if password is not None:
            self.console.line("")
            self.console.line(
                f"Admin user: admin   password: {password}   (shown once; change it in Settings)"
            )
            self.console.line("")
        connections.close_all()  # the children open their own; nothing held across fork

    def _wait_healthy(self, url: str) -> int | None:
        import httpx

        # Django's logging config shows INFO, and httpx logs every request at INFO.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        deadline = time.monotonic() + HEALTHZ_TIMEOUT
        # trust_env=False: a proxy from the environment must not come between us and loopback.
        with httpx.Client(timeout=2.0, trust_env=False) as http:
            while not self._stopping():
                self._supervise()
                try:
                    if http.get(url).status_code == 200:
                        return None
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    print(
                        f"studiolo: the web server did not answer {url} within "
                        f"{HEALTHZ_TIMEOUT:.0f} s (see {self.config.home / 'logs' / 'web.log'})",
                        file=sys.stderr,
                    )
                    return 1
                time.sleep(0.1)
        return None

    def _stop(self) -> None:
        running = [name for name in STOP_ORDER if name in self.children]
        parts = [*running, "redis"] if self.redis is not None else running
        self.restart_at.clear()
        if not parts:
            return
        why = signal.Signals(self.signals[0]).name if self.signals else "shutting down"
        self.console.line(f"Stopping ({why}): {', '.join(parts)}")
        for name in running:
            code = self.children[name].stop(STOP_GRACE, hurry=self._hurry)
            if code not in (0, -signal.SIGTERM):
                self.console.line(f"{name} stopped ({describe_exit(code)})")
        self.children.clear()
        if self.redis is not None:
            from studio import embedded_redis

            embedded_redis.stop(self.redis)
            self.config.embedded_redis_socket.unlink(missing_ok=True)
            self.redis = None
        self.console.line("Stopped.")


def _redis_leftover_stop(socket_path: Path, console: Console) -> None:
    """Stop a redis-server still serving our socket after an `up` was SIGKILLed.

    We hold `up.lock`, so no live `up` owns it: it is a leftover of this data folder.
    """
    import psutil
    import redis

    from studio import embedded_redis

    if not embedded_redis.is_running(socket_path):
        return
    client = redis.Redis(unix_socket_path=str(socket_path), socket_timeout=2)
    try:
        pid = int(client.info("server")["process_id"])
    finally:
        client.close()
    try:
        process = psutil.Process(pid)
        if "redis" not in process.name():
            raise CliError(f"{socket_path} is served by {process.name()} (pid {pid}), not redis")
        console.line(
            f"Redis: stopping the redis-server left running by an earlier `up` (pid {pid})"
        )
        process.terminate()
        try:
            process.wait(STOP_GRACE)
        except psutil.TimeoutExpired:
            process.kill()
            process.wait(STOP_GRACE)
    except psutil.NoSuchProcess:
        pass


def up(args: argparse.Namespace) -> int:
    config = config_load()
    for folder in (config.home, config.home / "run", config.home / "logs"):
        folder.mkdir(parents=True, exist_ok=True)
    with UpLock(config.home / "run" / "up.lock"):
        _port_check(args.host, args.port)
        return Supervisor(config, args, Console()).run()


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "up", help="run the whole studio: embedded Redis, migrations, web server, worker, beat"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=parse_port, default=8000, help="port to listen on (default 8000)"
    )
    parser.add_argument(
        "--no-worker",
        action="store_true",
        help="start no Celery worker (run `studiolo worker` elsewhere)",
    )
    parser.set_defaults(func=up)
