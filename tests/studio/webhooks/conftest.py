"""A real HTTP receiver on 127.0.0.1 that records what it gets and answers as told."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

HANG = "hang"  # an answer plan entry: hold the request open past the client's timeout


@dataclass(frozen=True)
class ReceivedRequest:
    path: str
    headers: Message  # case-insensitive lookups, like a web framework's request.headers
    body: bytes


class Receiver:
    """Answers each POST with the next planned status (200 once the plan runs out)."""

    def __init__(self) -> None:
        self.requests: list[ReceivedRequest] = []
        self._plan: list[int | str] = []
        self._lock = threading.Lock()
        self.release = threading.Event()  # set at teardown so hanging handlers return
        self.hang_seconds = 5.0
        handler = self._handler_class()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def answer(self, *plan: int | str) -> None:
        with self._lock:
            self._plan.extend(plan)

    def fail(self, times: int, status: int = 500) -> None:
        self.answer(*([status] * times))

    def _next(self) -> int | str:
        with self._lock:
            return self._plan.pop(0) if self._plan else 200

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.requests.append(ReceivedRequest(self.path, self.headers, body))
                answer = receiver._next()
                if answer == HANG:
                    receiver.release.wait(receiver.hang_seconds)
                    answer = 200
                try:
                    self.send_response(int(answer))
                    if int(answer) in (301, 302, 307, 308):
                        self.send_header("Location", "/elsewhere")
                    reply = b"" if int(answer) < 300 else f"answer {answer}".encode()
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        return Handler

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running
