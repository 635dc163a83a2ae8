"""A worker of the ``serve`` console script (``studiolo_toolkit.serving`` forks them): the loaded
model, the HTTP handler of ``/ping``, ``/execution-parameters`` and ``/invocations`` (a thread
per connection, HTTP/1.1 keep-alive, ``TCP_NODELAY``), the batched access log, the watchdog
that answers 504 for a prediction past ``$SAGEMAKER_MODEL_SERVER_TIMEOUT``, and draining on a
stop signal.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import socket
import socketserver
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from studiolo_toolkit.handlers import (
    CUSTOM_ATTRIBUTES_HEADER,
    BaseInferenceToolkitError,
    Transformer,
    load_transformer,
)

if TYPE_CHECKING:
    from studiolo_toolkit.serving import ServingConfig

STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
# SageMaker sends SIGKILL 30 s after SIGTERM; workers get this long to finish in-flight requests.
DRAIN_SECONDS = 20.0


def error_body(error: str, message: str, stack_trace: str = "") -> bytes:
    return json.dumps(
        {"error": error, "error-message": message, "stack-trace": stack_trace}
    ).encode()


class Worker:
    """One forked process: the loaded model and the bookkeeping for draining."""

    def __init__(self, config: ServingConfig) -> None:
        self.config = config
        self.transformer: Transformer | None = None
        self.load_error: str | None = None
        self.lock = threading.Lock()
        self.connections: dict[socket.socket, bool] = {}  # socket -> busy
        self.stuck = 0
        # request handler -> (monotonic deadline, perf_counter start), for the watchdog
        self.deadlines: dict[InferenceHandler, tuple[float, float]] = {}
        self.draining = False

    def load(self) -> None:
        try:
            self.transformer = load_transformer(
                self.config.model_dir, self.config.program, self.config.default_accept
            )
        except Exception as error:  # noqa: BLE001 - reported on /ping and /invocations
            self.load_error = f"{type(error).__name__}: {error}"
            log(f"worker {os.getpid()}: model loading failed:\n{traceback.format_exc()}")

    def set_busy(self, connection: socket.socket, busy: bool) -> None:
        with self.lock:
            self.connections[connection] = busy

    def forget(self, connection: socket.socket) -> None:
        with self.lock:
            self.connections.pop(connection, None)

    def active(self) -> int:
        with self.lock:
            return sum(self.connections.values())

    def close_idle(self) -> None:
        with self.lock:
            idle = [conn for conn, busy in self.connections.items() if not busy]
        for connection in idle:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


_log_lock = threading.Lock()
_access_lines: list[str] = []  # access lines not written yet (see access_log)
ACCESS_LOG_SECONDS = 0.25


def log(line: str) -> None:
    with _log_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def access_log(line: str) -> None:
    """One line per request, written by `flush_access_log` at most ACCESS_LOG_SECONDS later:
    a write and flush per request (through the engine's log driver) cost as much CPU as a
    small model's prediction."""
    with _log_lock:
        _access_lines.append(line)


def flush_access_log() -> None:
    with _log_lock:
        if _access_lines:
            sys.stdout.write("\n".join(_access_lines) + "\n")
            sys.stdout.flush()
            _access_lines.clear()


def access_log_writer() -> None:
    while True:
        time.sleep(ACCESS_LOG_SECONDS)
        flush_access_log()


class InferenceHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "studiolo-serve"
    # A buffered writer (the base class's is unbuffered): head and body of an answer leave in
    # one write when handle_one_request flushes, one segment and one wakeup of the client.
    wbufsize = 64 * 1024
    worker: Worker  # set on the subclass each worker builds

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.worker.set_busy(self.connection, False)

    def finish(self) -> None:
        self.worker.forget(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # one access line per request instead, in _dispatch

    def _dispatch(self) -> None:
        started = time.perf_counter()
        self.worker.set_busy(self.connection, True)
        status = 500
        try:
            status = self._route()
        except _AlreadyAnswered:
            return
        finally:
            if self.worker.draining:
                self.close_connection = True
            self.worker.set_busy(self.connection, False)
        elapsed = (time.perf_counter() - started) * 1000
        access_log(
            f'{self.client_address[0]} "{self.command} {self.path}" {status} {elapsed:.2f}ms'
        )

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch

    def _send(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> int:
        self.send_response(status)
        if body:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection or self.worker.draining:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)
        return status

    def _route(self) -> int:
        path = self.path.split("?", 1)[0]
        if path == "/ping" and self.command == "GET":
            return self._send(200 if self.worker.transformer is not None else 500)
        if path == "/execution-parameters" and self.command == "GET":
            config = self.worker.config
            parameters = {
                "MaxConcurrentTransforms": config.workers,
                "BatchStrategy": "MULTI_RECORD",
                "MaxPayloadInMB": config.max_payload_mb,
            }
            return self._send(200, json.dumps(parameters).encode())
        if path == "/invocations" and self.command == "POST":
            return self._invoke()
        self._discard_body()
        return self._send(404, b"{}")

    def _discard_body(self) -> None:
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and int(length) <= self.worker.config.max_payload_bytes:
            self.rfile.read(int(length))
        elif length or self.headers.get("Transfer-Encoding"):
            self.close_connection = True

    def _invoke(self) -> int:
        config = self.worker.config
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            self.close_connection = True
            if self.headers.get("Transfer-Encoding"):
                message = "chunked request bodies are not supported; send Content-Length"
                return self._send(411, error_body("LengthRequired", message))
            if length is None:
                body = b""
            else:
                return self._send(400, error_body("BadRequest", "invalid Content-Length"))
        else:
            size = int(length)
            if size > config.max_payload_bytes:
                self.close_connection = True
                message = f"payload of {size} bytes exceeds {config.max_payload_mb} MB"
                # Read (and drop) a modest overshoot first: closing while the client is
                # still sending makes it see a reset instead of this answer.
                if size <= 4 * config.max_payload_bytes:
                    self._discard(size)
                return self._send(413, error_body("PayloadTooLarge", message))
            body = self.rfile.read(size)
        transformer = self.worker.transformer
        if transformer is None:
            message = f"the model failed to load: {self.worker.load_error}"
            return self._send(500, error_body("ModelLoadError", message))
        return self._run(transformer, body)

    def _discard(self, size: int) -> None:
        remaining = size
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1024 * 1024))
            if not chunk:
                return
            remaining -= len(chunk)

    def _run(self, transformer: Transformer, body: bytes) -> int:
        worker = self.worker
        timeout = worker.config.timeout
        if timeout > 0:
            with worker.lock:
                worker.deadlines[self] = (time.monotonic() + timeout, time.perf_counter())
        headers = dict(self.headers.items())
        stack = ""
        try:
            result: Any = transformer.transform(
                body, self.headers.get("Content-Type"), self.headers.get("Accept"), headers
            )
        except BaseException as error:  # noqa: BLE001 - even sys.exit() in user code is a 500
            result = error
            stack = traceback.format_exc()
        if timeout > 0:
            with worker.lock:
                on_time = worker.deadlines.pop(self, None) is not None
                if not on_time:
                    worker.stuck -= 1
            if not on_time:  # the watchdog has answered 504 and closed the connection
                self.close_connection = True
                raise _AlreadyAnswered
        if isinstance(result, BaseInferenceToolkitError):
            return self._send(result.status_code, error_body(result.phrase, result.message))
        if isinstance(result, BaseException):
            log(f"worker {os.getpid()}: inference failed:\n{stack}")
            return self._send(500, error_body(type(result).__name__, str(result), stack))
        payload, content_type, context = result
        extra = {}
        if context.response_custom_attributes is not None:
            extra[CUSTOM_ATTRIBUTES_HEADER] = context.response_custom_attributes
        return self._send(200, payload, content_type, extra)

    def answer_timeout(self, started: float) -> None:
        """Called by the watchdog thread while the request thread is still predicting."""
        timeout = self.worker.config.timeout
        message = f"the model did not answer within {timeout:g} s; the worker is being replaced"
        body = error_body("ModelTimeout", message)
        head = (
            f"HTTP/1.1 504 Gateway Timeout\r\nServer: {self.server_version}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        with contextlib.suppress(OSError):
            self.connection.sendall(head.encode() + body)
            self.connection.shutdown(socket.SHUT_RDWR)
        elapsed = (time.perf_counter() - started) * 1000
        log(f'{self.client_address[0]} "{self.command} {self.path}" 504 {elapsed:.2f}ms')
        log(f"worker {os.getpid()}: a request exceeded {timeout:g} s; replacing this worker")


class _AlreadyAnswered(Exception):
    """The watchdog answered this request (504) while it was still running."""


def watchdog(worker: Worker) -> None:
    """Answer 504 for requests past their deadline, then make the worker drain and exit."""
    interval = min(0.1, worker.config.timeout / 4)
    while True:
        time.sleep(interval)
        now = time.monotonic()
        with worker.lock:
            expired = [
                (handler, started)
                for handler, (deadline, started) in worker.deadlines.items()
                if deadline < now
            ]
            for handler, _started in expired:
                del worker.deadlines[handler]
            worker.stuck += len(expired)
        for handler, started in expired:
            handler.answer_timeout(started)
        if expired:
            os.kill(os.getpid(), signal.SIGTERM)  # the worker's main thread drains and exits


class WorkerServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, listener: socket.socket, handler: type[InferenceHandler]) -> None:
        super().__init__(listener.getsockname(), handler, bind_and_activate=False)
        self.socket.close()
        self.socket = listener

    def server_close(self) -> None:
        pass  # the listener belongs to the parent

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the client reset or closed its connection: routine, not worth a traceback
        super().handle_error(request, client_address)


def run_worker(listener: socket.socket, config: ServingConfig) -> int:
    """A worker's whole life, in the forked child; returns its exit status."""
    # Stop signals stay blocked (inherited from the parent) so that every thread ignores them
    # and the main thread collects them with sigwaitinfo.
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    worker = Worker(config)
    worker.load()
    handler = type("Handler", (InferenceHandler,), {"worker": worker})
    server = WorkerServer(listener, handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.5,), name="accept")
    thread.start()
    if config.timeout > 0:
        threading.Thread(target=watchdog, args=(worker,), name="watchdog", daemon=True).start()
    threading.Thread(target=access_log_writer, name="access-log", daemon=True).start()
    parent = os.getppid()
    # Wait for a stop signal; a worker whose parent died (SIGKILL) stops too.
    while signal.sigtimedwait(STOP_SIGNALS, 1.0) is None and os.getppid() == parent:
        pass
    worker.draining = True
    server.shutdown()
    deadline = time.monotonic() + DRAIN_SECONDS
    worker.close_idle()
    while worker.active() > worker.stuck and time.monotonic() < deadline:
        time.sleep(0.02)
        worker.close_idle()
    flush_access_log()
    sys.stdout.flush()
    return 1 if worker.stuck else 0
