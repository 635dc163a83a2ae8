"""Runs still open when the interpreter exits are ended: FAILED after an uncaught exception,
KILLED after Ctrl-C, FINISHED otherwise (a `sys.exit(1)` cannot be told from a normal end)."""

from __future__ import annotations

import atexit
import sys
import threading
from types import TracebackType
from typing import TYPE_CHECKING

from studiolo.errors import StudioloError

if TYPE_CHECKING:
    from studiolo.client import Run

_registry_lock = threading.Lock()
_open_runs: dict[int, Run] = {}
_exit_status = {"status": "FINISHED"}
_hooks_installed = False


def register(run: Run) -> None:
    global _hooks_installed
    with _registry_lock:
        _open_runs[id(run)] = run
        if _hooks_installed:
            return
        _hooks_installed = True
    previous = sys.excepthook

    def excepthook(
        kind: type[BaseException], value: BaseException, traceback: TracebackType | None
    ) -> None:
        _exit_status["status"] = "KILLED" if issubclass(kind, KeyboardInterrupt) else "FAILED"
        previous(kind, value, traceback)

    sys.excepthook = excepthook
    atexit.register(_end_open_runs)


def unregister(run: Run) -> None:
    with _registry_lock:
        _open_runs.pop(id(run), None)


def _end_open_runs() -> None:
    with _registry_lock:
        runs = list(_open_runs.values())
    for run in runs:
        try:
            run.end(_exit_status["status"])
        except StudioloError as error:
            sys.stderr.write(f"studiolo: ending run {run.run_id} at exit: {error}\n")
