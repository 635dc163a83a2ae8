"""Test helpers for ``serve``: a model dir, and the server run as a real subprocess.

The server runs as ``python -m studiolo_toolkit.serving`` with ``src`` on ``PYTHONPATH`` on a
free loopback port (``SAGEMAKER_BIND_TO_PORT``), rooted at a temporary ``SAGEMAKER_BASE_DIR``.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

SRC_DIR = Path(__file__).resolve().parent.parent / "src"
PYTHON = os.environ.get("STUDIOLO_TOOLKIT_PYTHON") or sys.executable

# A picklable stand-in for a scikit-learn estimator (the venv has no numpy or scikit-learn):
# it lives in the model's code/ dir, which the server puts on sys.path before unpickling.
TINY_MODEL = '''
import os


class ThresholdModel:
    """Predicts 1 when the sum of a row is above the threshold, else 0."""

    def __init__(self, threshold):
        self.threshold = threshold

    def predict(self, rows):
        return [int(sum(row) > self.threshold) for row in rows]
'''

# input_fn for the tiny model: CSV and JSON rows as lists of floats, the rest refused (415).
LIST_INPUT = """
import json

from studiolo_toolkit.handlers import UnsupportedContentTypeError


def input_fn(body, content_type):
    kind = (content_type or "").split(";")[0]
    text = body.decode()
    if kind == "text/csv":
        return [[float(cell) for cell in line.split(",")] for line in text.splitlines() if line]
    if kind == "application/json":
        data = json.loads(text)
        return data["instances"] if isinstance(data, dict) else data
    raise UnsupportedContentTypeError(content_type)
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ModelDir:
    """``<base>/model`` with an optional ``code/`` dir."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.path = base / "model"
        self.code = self.path / "code"
        self.code.mkdir(parents=True)

    def write_code(self, name: str, text: str) -> None:
        (self.code / name).write_text(textwrap.dedent(text))

    def pickle_tiny_model(self, threshold: float = 1.0) -> None:
        """Save ``ThresholdModel`` as ``model.pkl``, pickled by another interpreter."""
        self.write_code("tiny_model.py", TINY_MODEL)
        script = (
            "import pickle, sys; from tiny_model import ThresholdModel; "
            f"pickle.dump(ThresholdModel({threshold}), open(sys.argv[1], 'wb'))"
        )
        subprocess.run(  # noqa: S603 - fixed command
            [PYTHON, "-c", script, str(self.path / "model.pkl")],
            cwd=self.code,
            check=True,
        )


class Server:
    """``serve`` as a subprocess; ``stop()`` sends SIGTERM and returns the exit code."""

    def __init__(self, base: Path, **env: str) -> None:
        self.port = free_port()
        self.log_path = base / f"serve-{self.port}.log"
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("SAGEMAKER_", "SM_"))}
        clean.update(
            PYTHONPATH=str(SRC_DIR),
            SAGEMAKER_BASE_DIR=str(base),
            SAGEMAKER_BIND_TO_PORT=str(self.port),
            SAGEMAKER_MODEL_SERVER_WORKERS="1",
        )
        clean.update(env)
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(  # noqa: S603 - fixed command
            [PYTHON, "-m", "studiolo_toolkit.serving"],
            env=clean,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes, http.client.HTTPResponse]:
        connection = self.connect()
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read(), response
        finally:
            connection.close()

    def invoke(
        self, body: bytes | str, content_type: str, accept: str | None = None
    ) -> tuple[int, bytes, http.client.HTTPResponse]:
        headers = {"Content-Type": content_type}
        if accept is not None:
            headers["Accept"] = accept
        return self.request("POST", "/invocations", body, headers)

    def wait_ready(self, expect: int = 200, timeout: float = 20) -> None:
        """Wait until ``/ping`` answers ``expect``."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited with {self.process.returncode}:\n{self.log}")
            try:
                last = self.request("GET", "/ping")[0]
                if last == expect:
                    return
            except OSError as error:
                last = error
            time.sleep(0.05)
        raise AssertionError(f"/ping did not answer {expect} (last: {last}):\n{self.log}")

    def workers(self) -> set[int]:
        """The pids of the server's worker processes."""
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return {int(pid) for pid in path.read_text().split()}

    def stop(self, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()


def as_json(body: bytes) -> object:
    return json.loads(body)
