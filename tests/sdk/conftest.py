"""The tracking client (`studiolo`, in containers/toolkit/src) against a live studio.

The client is not installed in the test environment (it ships with the toolkit): it is
imported from its source folder, as the process runtime does for jobs. Requests go through
`FlakyProxy`, a real HTTP server in front of the studio that counts them and, when told,
fails some (503 answers or dropped connections) the way a restarting studio would.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import User

from studio.accounts.models import Team
from tests.factories import make_team, make_token, make_user

TOOLKIT_SRC = Path(__file__).resolve().parents[2] / "containers" / "toolkit" / "src"
if str(TOOLKIT_SRC) not in sys.path:
    sys.path.insert(0, str(TOOLKIT_SRC))


@dataclass
class Seen:
    method: str
    path: str
    body: Any
    failed: bool


class FlakyProxy:
    """Forwards every request to `upstream`; `fail(n)` makes the next n requests matching
    `path_part` fail (`mode` "503" or "drop": the connection closes with no answer)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._failures = 0
        self._mode = "503"
        self._path_part = ""
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = (
                        json.loads(raw)
                        if raw and "json" in self.headers.get("Content-Type", "")
                        else None
                    )
                except ValueError:
                    body = None
                mode = proxy._take_failure(self.path)
                with proxy._lock:
                    proxy.seen.append(Seen(self.command, self.path, body, mode is not None))
                if mode == "drop":
                    self.close_connection = True
                    return
                if mode == "503":
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() in ("authorization", "content-type", "accept")
                }
                answer = httpx.request(
                    self.command,
                    proxy.upstream + self.path,
                    content=raw,
                    headers=headers,
                    timeout=30,
                )
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("content-type", "text/plain"))
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def fail(self, count: int, *, mode: str = "503", path_part: str = "") -> None:
        with self._lock:
            self._failures, self._mode, self._path_part = count, mode, path_part

    def _take_failure(self, path: str) -> str | None:
        with self._lock:
            if self._failures and self._path_part in path:
                self._failures -= 1
                return self._mode
            return None

    def calls(self, path_part: str, method: str = "POST") -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if path_part in s.path and s.method == method]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Member:
    team: Team
    user: User
    token: str


@pytest.fixture
def member(asgi_server: str) -> Member:
    team = make_team()
    user = make_user(team, role="scientist")
    return Member(team, user, make_token(user))


@pytest.fixture
def proxy(asgi_server: str) -> Iterator[FlakyProxy]:
    flaky = FlakyProxy(asgi_server)
    yield flaky
    flaky.close()


@pytest.fixture(autouse=True)
def _no_studiolo_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own STUDIOLO_* variables must not leak into the client under test."""
    for name in ("STUDIOLO_URL", "STUDIOLO_TOKEN", "STUDIOLO_TEAM", "STUDIOLO_RUN_ID"):
        monkeypatch.delenv(name, raising=False)


def api(base: str, token: str, route: str, **params: Any) -> Any:
    response = httpx.get(
        f"{base}/api/v1{route}", params=params, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    return response.json()
