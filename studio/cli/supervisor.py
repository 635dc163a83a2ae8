"""The child processes of `studiolo up`.

Each child runs in its own session (so a Ctrl-C on the terminal reaches `up` alone, which
then stops the children in order) and gets SIGTERM from the kernel if `up` dies without
cleaning up (PR_SET_PDEATHSIG), so a SIGKILLed `up` leaves no orphans behind. Its output is
prefixed with its name on the terminal and appended to `logs/<name>.log`. A child that dies
is started again after a delay that grows while it keeps dying (`Backoff`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from studio.processes import die_with_parent

NAME_WIDTH = 7  # "control"


class Console:
    """Whole lines from several threads onto one stream; a closed terminal is not an error."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout
        self._lock = threading.Lock()

    def line(self, text: str) -> None:
        with self._lock:
            try:
                self._stream.write(text + "\n")
                self._stream.flush()
            except (BrokenPipeError, ValueError):  # `studiolo up | head`, or stdout closed
                pass


class Backoff:
    """The delay before restarting a process that died: 1 s, then doubled each time it dies
    again soon after (re)starting, up to `CAP`; back to 1 s once it has run `STABLE` seconds.
    A crash loop so costs a restart a minute, and a one-off death a second."""

    FIRST = 1.0
    CAP = 60.0
    STABLE = 60.0

    def __init__(self) -> None:
        self.restarts = 0
        self._failures = 0
        self._started_at = time.monotonic()

    def started(self) -> None:
        self._started_at = time.monotonic()

    def next_delay(self) -> float:
        if time.monotonic() - self._started_at >= self.STABLE:
            self._failures = 0
        self._failures += 1
        self.restarts += 1
        return min(self.CAP, self.FIRST * 2.0 ** (self._failures - 1))


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class Child:
    """One supervised process, leader of its own process group."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str],
        log_path: Path,
        console: Console,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self._console = console
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(),  # thread-safe enough: see die_with_parent
        )
        self.pid = self.process.pid
        self._forwarder = threading.Thread(target=self._forward, name=f"output-{name}", daemon=True)
        self._forwarder.start()

    def _forward(self) -> None:
        stream = self.process.stdout
        if stream is None:  # pragma: no cover - stdout is always a pipe here
            return
        prefix = f"{self.name:<{NAME_WIDTH}} | "
        for raw in iter(stream.readline, b""):
            try:
                self._log.write(raw)
                self._log.flush()
            except (OSError, ValueError):  # a full disk must not stop the terminal output
                pass
            self._console.line(prefix + raw.decode("utf-8", "replace").rstrip("\r\n"))

    def exit_code(self) -> int | None:
        """The exit code once the child has exited, None while it runs.

        The child is not reaped (WNOWAIT): as a zombie its pid stays taken, so its process
        group id cannot be reused by a stranger before `stop` has killed the group.
        """
        if self.process.returncode is not None:
            return self.process.returncode
        if not hasattr(os, "waitid"):  # macOS before Python 3.13
            return self.process.poll()
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # reaped already
            return self.process.poll()
        if info is None:
            return None
        return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def stop(self, timeout: float, *, hurry: Callable[[], bool] = lambda: False) -> int:
        """SIGTERM to the whole group, up to `timeout` seconds of grace, then SIGKILL to
        whatever is left of the group (pool processes, a server stuck on a connection).
        `hurry()` turning true (a second Ctrl-C) cuts the grace short."""
        if self.exit_code() is None:
            self._signal_group(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.exit_code() is None and time.monotonic() < deadline and not hurry():
                time.sleep(0.05)
        self._signal_group(signal.SIGKILL)
        code = self.process.wait()
        self._forwarder.join(timeout=2)
        self._log.close()
        return code
