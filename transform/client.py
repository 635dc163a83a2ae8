"""POST /invocations to a batch transform's serving container.

One keep-alive HTTP/1.1 connection per calling thread (the runner keeps MaxConcurrentTransforms
threads busy), `TCP_NODELAY` on each, so a request costs a loopback round trip and no
connection set-up. ModelClientConfig's rules: every request may take
InvocationsTimeoutInSeconds, and is retried up to InvocationsMaxRetries times when it got no
answer (connection refused or reset, timeout) or a 5xx answer, with a short growing pause.
A 4xx answer is not retried: the model refused that request and would refuse it again.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from dataclasses import dataclass

from studio.errors import StudioloError

RETRY_PAUSES = (0.1, 0.4, 1.0)  # seconds before the 1st, 2nd, 3rd retry
MESSAGE_LIMIT = 500  # characters of a model's error message quoted in a failure reason


class InvocationFailed(StudioloError):
    """The model did not answer a request with success, even after the retries."""

    def __init__(self, message: str, *, model_status: int | None = None) -> None:
        super().__init__(message)
        self.model_status = model_status  # the answer's HTTP status; None: no answer


@dataclass(frozen=True)
class ModelClientConfig:
    content_type: str
    accept: str
    timeout: float
    max_retries: int


class ModelClient:
    def __init__(
        self, host: str, port: int, config: ModelClientConfig, *, cancelled: threading.Event
    ) -> None:
        self.host, self.port, self.config = host, port, config
        self.cancelled = cancelled
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[http.client.HTTPConnection] = []

    def invoke(self, payload: bytes) -> bytes:
        """The model's answer to `payload`; raises InvocationFailed."""
        attempt = 0
        while True:
            try:
                status, body = self._post(payload)
            except (OSError, http.client.HTTPException) as exc:
                self._drop_connection()
                failure = InvocationFailed(
                    f"no answer from the model container ({type(exc).__name__}: {exc})"
                )
            else:
                if 200 <= status < 300:
                    return body
                failure = InvocationFailed(
                    f"the model answered {status}: {error_message(body)}", model_status=status
                )
                if status < 500:
                    raise failure
            if attempt >= self.config.max_retries or self.cancelled.is_set():
                if attempt:
                    failure.message += f" (after {attempt} retries)"
                raise failure
            pause = RETRY_PAUSES[min(attempt, len(RETRY_PAUSES) - 1)]
            attempt += 1
            if self.cancelled.wait(pause):
                raise failure

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()

    def _post(self, payload: bytes) -> tuple[int, bytes]:
        connection = self._connection()
        headers = {"Content-Length": str(len(payload))}
        if self.config.content_type:
            headers["Content-Type"] = self.config.content_type
        if self.config.accept:
            headers["Accept"] = self.config.accept
        connection.request("POST", "/invocations", body=payload, headers=headers)
        response = connection.getresponse()
        body = response.read()
        if response.will_close:
            self._drop_connection()
        return response.status, body

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(
                self.host, self.port, timeout=self.config.timeout
            )
            connection.connect()
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def _drop_connection(self) -> None:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None


def error_message(body: bytes) -> str:
    """The message of an error answer: the toolkit's `{"error-message": ...}`, a JSON
    `message`, or the start of the body as text."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        kind, message = parsed.get("error"), parsed.get("error-message")
        if isinstance(kind, str) and isinstance(message, str) and kind and message:
            text = f"{kind}: {message}"  # the serving toolkit's error body
        else:
            for key in ("error-message", "message", "Message", "error"):
                value = parsed.get(key)
                if isinstance(value, str) and value:
                    text = value
                    break
    text = text or "(empty body)"
    return text if len(text) <= MESSAGE_LIMIT else text[:MESSAGE_LIMIT] + "…"


def execution_parameters(host: str, port: int, timeout: float = 2.0) -> dict[str, object]:
    """The container's `GET /execution-parameters` (contract 2.1), or {} when it has none."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", "/execution-parameters")
        response = connection.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException):
        return {}
    finally:
        connection.close()
    if response.status != 200:
        return {}
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
