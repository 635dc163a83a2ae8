"""Running a child process the way a training container's PID 1 should.

* stdout is inherited (the platform reads the container's stdout live; nothing in between);
* stderr goes through a pump thread that writes every chunk straight to our own fd 2 and keeps
  the last lines for the failure message;
* SIGTERM/SIGINT received by the toolkit are forwarded to the child, so a script can save a
  checkpoint during the platform's grace period.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import IO, Any

DEFAULT_TAIL_LINES = 20
_MAX_LINE_BYTES = 4096
_READ_SIZE = 65536
# After the child exits, a grandchild that inherited stderr can keep the pipe open forever;
# wait this long for the pump to drain, then go on without it.
_PUMP_JOIN_SECONDS = 5.0

FORWARDED_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)

_SignalHandler = Callable[[int, FrameType | None], Any] | int | None


class OutputTail:
    """The last ``max_lines`` lines seen on a stream, with bounded memory.

    Progress bars redraw with ``\\r`` and may never print ``\\n``; only what a terminal would
    show (the text after the last ``\\r``) is kept, and a line is capped at 4 KiB.
    """

    def __init__(self, max_lines: int = DEFAULT_TAIL_LINES) -> None:
        self._lines: collections.deque[bytes] = collections.deque(maxlen=max_lines)
        self._partial = b""
        self._lock = threading.Lock()

    @staticmethod
    def _visible(line: bytes) -> bytes:
        return line.rstrip(b"\r").rsplit(b"\r", 1)[-1][-_MAX_LINE_BYTES:]

    def feed(self, chunk: bytes) -> None:
        with self._lock:
            *complete, rest = (self._partial + chunk).split(b"\n")
            self._lines.extend(self._visible(line) for line in complete)
            self._partial = rest[-_MAX_LINE_BYTES:]

    def lines(self) -> list[str]:
        with self._lock:
            raw = list(self._lines)
            if self._partial:
                raw.append(self._visible(self._partial))
            if self._lines.maxlen is not None:
                raw = raw[-self._lines.maxlen :]
        return [line.decode("utf-8", errors="replace") for line in raw]


def _write_all(fd: int, data: bytes) -> bool:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except InterruptedError:
            continue
        except OSError:
            return False  # our own stdout/stderr is gone; keep draining the child anyway
        view = view[written:]
    return True


def _pump(source_fd: int, target_fd: int, tail: OutputTail) -> None:
    target_ok = True
    while True:
        try:
            chunk = os.read(source_fd, _READ_SIZE)
        except InterruptedError:
            continue
        except OSError:
            return
        if not chunk:
            return
        if target_ok:
            target_ok = _write_all(target_fd, chunk)
        tail.feed(chunk)


class SignalForwarder:
    """Forward stop signals to whichever child is running; remember them when none is.

    Python runs signal handlers in the main thread between bytecodes, also while it waits in
    ``Popen.wait()``, so forwarding happens as soon as the signal arrives. Install it from the
    main thread only (``signal.signal`` refuses otherwise).
    """

    def __init__(self, signals: Iterable[signal.Signals] = FORWARDED_SIGNALS) -> None:
        self._signals = tuple(signals)
        self._previous: dict[signal.Signals, _SignalHandler] = {}
        self._child: subprocess.Popen[bytes] | None = None
        self.received: list[int] = []
        self.pending: int | None = None

    def __enter__(self) -> SignalForwarder:
        if threading.current_thread() is threading.main_thread():
            for sig in self._signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)
        child = self._child
        if child is None:
            self.pending = signum
            return
        self._forward(child, signum)

    @staticmethod
    def _forward(child: subprocess.Popen[bytes], signum: int) -> None:
        # It may exit between our check and the kill; wait() reports that.
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    def attach(self, child: subprocess.Popen[bytes]) -> None:
        self._child = child
        # A signal that landed while Popen was still starting the child is delivered now.
        if self.pending is not None:
            self._forward(child, self.pending)
            self.pending = None

    def detach(self) -> None:
        self._child = None


@dataclass(frozen=True)
class ProcessResult:
    command: list[str]
    returncode: int
    """The child's exit status; ``128 + N`` when it was killed by signal ``N`` (shell style)."""
    tail: list[str]
    """The last lines of stderr (and of stdout when it was teed)."""


def exit_status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def run_streaming(
    command: Sequence[str],
    *,
    cwd: str,
    env: Mapping[str, str],
    forwarder: SignalForwarder,
    tee_stdout: bool = False,
    tail_lines: int = DEFAULT_TAIL_LINES,
) -> ProcessResult:
    """Run ``command`` to completion, passing its output straight through.

    stdout is inherited unless ``tee_stdout`` (used for pip, whose errors may land on either
    stream); stderr is always pumped so its last lines can explain a failure. stdin is
    ``/dev/null``, as in a training container.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    tail = OutputTail(tail_lines)
    # The command is built by the toolkit from the user's entry point, which is exactly what
    # a training container exists to run.
    child = subprocess.Popen(  # noqa: S603
        list(command),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if tee_stdout else None,
        stderr=subprocess.PIPE,
    )
    forwarder.attach(child)
    # Our own fds 1 and 2, not sys.stdout/sys.stderr: no Python buffering in between.
    streams = [(child.stderr, 2)]
    if tee_stdout:
        streams.append((child.stdout, 1))
    pumps: list[tuple[threading.Thread, IO[bytes]]] = []
    for source, target_fd in streams:
        if source is None:  # cannot happen: PIPE was requested for it
            continue
        thread = threading.Thread(
            target=_pump, args=(source.fileno(), target_fd, tail), daemon=True
        )
        thread.start()
        pumps.append((thread, source))
    try:
        returncode = child.wait()
    finally:
        forwarder.detach()
    for thread, source in pumps:
        thread.join(_PUMP_JOIN_SECONDS)
        # A pump still blocked on a pipe a grandchild holds open keeps its fd: closing it
        # under the thread could let the number be reused and read by mistake.
        if not thread.is_alive():
            source.close()
    return ProcessResult(
        command=list(command), returncode=exit_status(returncode), tail=tail.lines()
    )
