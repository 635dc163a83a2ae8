"""Test helpers: a temporary SageMaker base dir, and ``train`` run as a real subprocess.

``train`` runs as ``python -m studiolo_toolkit.training`` with ``src`` on ``PYTHONPATH``: the
toolkit is not installed anywhere.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

SRC_DIR = Path(__file__).resolve().parent.parent / "src"

# STUDIOLO_TOOLKIT_PYTHON runs the end-to-end tests under another interpreter, e.g. Debian
# bookworm's /usr/bin/python3.11 (the one in the images), which has no tarfile data filter.
TRAIN_PYTHON = os.environ.get("STUDIOLO_TOOLKIT_PYTHON") or sys.executable
TRAIN_COMMAND = [TRAIN_PYTHON, "-m", "studiolo_toolkit.training"]
TRAIN_TIMEOUT = 120


class JobDir:
    """A ``SAGEMAKER_BASE_DIR`` laid out the way the platform lays out ``/opt/ml``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.config_dir = base / "input" / "config"
        self.code_dir = base / "code"
        self.model_dir = base / "model"
        self.output_dir = base / "output"
        self.config_dir.mkdir(parents=True)

    def write_config(
        self,
        hyperparameters: Mapping[str, str],
        channels: Mapping[str, Mapping[str, str]] | None = None,
        resource_config: Mapping[str, object] | None = None,
    ) -> None:
        """Write the config files; hyperparameter values are strings, as the API has them."""
        (self.config_dir / "hyperparameters.json").write_text(json.dumps(hyperparameters))
        channel_config = {
            name: {"TrainingInputMode": "File", **config}
            for name, config in (channels or {}).items()
        }
        (self.config_dir / "inputdataconfig.json").write_text(json.dumps(channel_config))
        for name in channel_config:
            (self.base / "input" / "data" / name).mkdir(parents=True, exist_ok=True)
        if resource_config is not None:
            (self.config_dir / "resourceconfig.json").write_text(json.dumps(resource_config))

    def write_code(self, name: str, text: str) -> Path:
        path = self.code_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def write_channel_file(self, channel: str, name: str, text: str) -> Path:
        path = self.base / "input" / "data" / channel / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    @property
    def failure(self) -> str | None:
        path = self.output_dir / "failure"
        return path.read_text() if path.exists() else None

    @property
    def succeeded(self) -> bool:
        return (self.output_dir / "success").exists()

    def env(self, **extra: str) -> dict[str, str]:
        """A clean environment for ``train``: nothing SageMaker-ish leaks in from outside."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("SM_", "SAGEMAKER_", "TRAINING_JOB_", "PIP_", "PYTHON"))
        }
        env.update(
            SAGEMAKER_BASE_DIR=str(self.base),
            PYTHONPATH=str(SRC_DIR),
            # Nothing a test does may reach a package index.
            PIP_NO_INDEX="1",
        )
        env.update(extra)
        return env

    def run_train(self, **extra_env: str) -> subprocess.CompletedProcess[str]:
        # The toolkit under test, run the way an image runs it; argv is fixed.
        return subprocess.run(  # noqa: S603
            TRAIN_COMMAND,
            env=self.env(**extra_env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TRAIN_TIMEOUT,
            check=False,
        )

    def start_train(self) -> subprocess.Popen[str]:
        # Same as run_train, but the test talks to the running process.
        return subprocess.Popen(  # noqa: S603
            TRAIN_COMMAND,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


class LineReader:
    """Reads a stream on a thread, timestamping each line as it arrives."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        self.seen: list[tuple[float, str]] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put((time.monotonic(), line.rstrip("\n")))

    def next_line(self, timeout: float = 30.0) -> tuple[float, str]:
        item = self.lines.get(timeout=timeout)
        self.seen.append(item)
        return item

    def wait_for(self, text: str, timeout: float = 30.0) -> float:
        deadline = time.monotonic() + timeout
        while True:
            arrived, line = self.next_line(timeout=max(0.01, deadline - time.monotonic()))
            if line == text:
                return arrived

    def rest(self, timeout: float = 30.0) -> list[str]:
        self._thread.join(timeout)
        while not self.lines.empty():
            self.seen.append(self.lines.get_nowait())
        return [line for _, line in self.seen]


def sm_values(stdout: str, marker: str = "SM_VALUES=") -> dict[str, str]:
    """The JSON a test script printed after ``marker``."""
    for line in stdout.splitlines():
        if line.startswith(marker):
            values: dict[str, str] = json.loads(line[len(marker) :])
            return values
    raise AssertionError(f"no {marker} line in stdout:\n{stdout}")
