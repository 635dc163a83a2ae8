"""The ``serve`` console script: the SageMaker inference HTTP server (contract section 2).

A pre-fork server on the standard library. The parent binds ``0.0.0.0:$SAGEMAKER_BIND_TO_PORT``
(default 8080) and forks ``$SAGEMAKER_MODEL_SERVER_WORKERS`` workers (default: the CPU count).
Each worker loads the model once (``handlers.load_transformer``) and serves the shared socket
with a thread per connection (HTTP/1.1 keep-alive, ``TCP_NODELAY``). The parent replaces a
worker that dies, and on SIGTERM/SIGINT stops the workers gracefully and exits 0. This module
is the parent; a worker's life is in ``serving_worker``.

A prediction that outlives ``$SAGEMAKER_MODEL_SERVER_TIMEOUT`` seconds cannot be interrupted
safely (it is a thread inside user code): a watchdog thread answers the client 504 and closes
that connection, then the worker drains its other requests and exits, and the parent starts a
fresh one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass

from studiolo_toolkit.environment import Paths, detect_num_cpus
from studiolo_toolkit.handlers import DEFAULT_ACCEPT
from studiolo_toolkit.serving_worker import DRAIN_SECONDS, STOP_SIGNALS, log, run_worker

logger = logging.getLogger("studiolo_toolkit.serving")
# A worker that dies sooner than this after its start is restarted after a pause, not at once.
RESTART_BACKOFF_SECONDS = 1.0


@dataclass(frozen=True)
class ServingConfig:
    model_dir: str
    program: str | None
    port: int
    workers: int
    timeout: float
    max_payload_bytes: int
    max_payload_mb: int
    default_accept: str

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ServingConfig:
        def number(name: str, default: float) -> float:
            raw = environ.get(name, "").strip()
            try:
                return float(raw) if raw else default
            except ValueError:
                raise SystemExit(f"serve: {name}={raw!r} is not a number") from None

        payload_mb = int(number("SAGEMAKER_MAX_PAYLOAD_IN_MB", 6))
        return cls(
            model_dir=Paths.from_environ(environ).model_dir,
            program=environ.get("SAGEMAKER_PROGRAM") or None,
            port=int(number("SAGEMAKER_BIND_TO_PORT", 8080)),
            workers=max(1, int(number("SAGEMAKER_MODEL_SERVER_WORKERS", detect_num_cpus()))),
            timeout=number(
                "SAGEMAKER_MODEL_SERVER_TIMEOUT",
                number("SAGEMAKER_MODEL_SERVER_TIMEOUT_SECONDS", 60),
            ),
            max_payload_bytes=payload_mb * 1024 * 1024,
            max_payload_mb=payload_mb,
            default_accept=environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or DEFAULT_ACCEPT,
        )


# ---- the parent ------------------------------------------------------------------------------


def bind(port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", port))  # noqa: S104 - the container contract says all interfaces
    listener.listen(1024)
    # Non-blocking: every worker polls the one socket; the losers of a race get EAGAIN, which
    # socketserver ignores, instead of blocking in accept.
    listener.setblocking(False)
    return listener


def spawn(listener: socket.socket, config: ServingConfig) -> int:
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            status = run_worker(listener, config)
        except BaseException:  # noqa: BLE001 - a child must never return into the parent's code
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
    return pid


def serve(config: ServingConfig) -> int:
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS | {signal.SIGCHLD})
    listener = bind(config.port)
    log(
        f"studiolo-toolkit serve: model {config.model_dir}, {config.workers} worker(s) on "
        f"0.0.0.0:{listener.getsockname()[1]}"
    )
    workers = {spawn(listener, config): time.monotonic() for _ in range(config.workers)}
    while True:
        info = signal.sigwaitinfo(STOP_SIGNALS | {signal.SIGCHLD})
        if info.si_signo in STOP_SIGNALS:
            break
        for pid, status in reap():
            started = workers.pop(pid, None)
            if started is None:
                continue
            log(f"studiolo-toolkit serve: worker {pid} exited ({describe(status)}); restarting")
            if time.monotonic() - started < RESTART_BACKOFF_SECONDS:
                time.sleep(RESTART_BACKOFF_SECONDS)
            workers[spawn(listener, config)] = time.monotonic()
    log("studiolo-toolkit serve: stopping workers")
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + DRAIN_SECONDS + 2
    while workers and time.monotonic() < deadline:
        for pid, _status in reap():
            workers.pop(pid, None)
        if workers:
            signal.sigtimedwait({signal.SIGCHLD}, 0.1)
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    listener.close()
    return 0


def reap() -> list[tuple[int, int]]:
    done = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        done.append((pid, status))
    return done


def describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="studiolo-toolkit: %(message)s")
    config = ServingConfig.from_environ(os.environ)
    raise SystemExit(serve(config))


if __name__ == "__main__":
    main()
