"""Running `studiolo` as a real process, the way people and containers do."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
