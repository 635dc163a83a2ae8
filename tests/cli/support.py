"""Running `studiolo` as a real process, the way people and containers do."""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest


def studiolo_argv(*args: str) -> list[str]:
    """The installed console script when present (what users run), else the module."""
    script = Path(sys.executable).with_name("studiolo")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-m", "studio.cli.main", *args]


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """A bare environment: no DATABASE_URL or REDIS_URL, so SQLite and the embedded Redis."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "STUDIOLO_HOME": str(home),
        "RUNTIME": "process",
    }
    env.update(extra)
    return env


@contextmanager
def short_home() -> Iterator[Path]:
    """A data folder under /tmp with a short path: the Redis unix socket lives in it and a
    socket path must fit in 108 bytes (pytest's tmp_path can be longer)."""
    root = Path(tempfile.mkdtemp(prefix="stl-", dir="/tmp"))
    try:
        yield root / "home"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_studiolo(
    *args: str, env: dict[str, str], timeout: float = 60, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        studiolo_argv(*args),
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Up:
    """A `studiolo up` child whose output is read line by line in a thread."""

    def __init__(self, home: Path, port: int, **env: str) -> None:
        self.home = home
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.env = clean_env(home, **env)
        self.lines: list[str] = []
        self.known: list[psutil.Process] = []  # every descendant seen, for the final sweep
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.process = subprocess.Popen(
            studiolo_argv("up", "--port", str(port)),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                code = self.process.wait()
                pytest.fail(f"`up` exited ({code}) before {pattern!r}:\n" + "\n".join(self.lines))
            self.lines.append(line)
            if match := re.search(pattern, line):
                return match
        pytest.fail(f"no {pattern!r} within {timeout} s:\n" + "\n".join(self.lines))

    def drain(self) -> list[str]:
        """Every line printed so far (read without waiting)."""
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                return self.lines
            if line is not None:
                self.lines.append(line)

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_gone(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while (left := [p for p in processes if alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left
