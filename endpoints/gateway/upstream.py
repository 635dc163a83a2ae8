"""A small pooled HTTP/1.1 client for the serving containers.

Only what the data plane needs: one `POST /invocations` at a time per connection, kept-alive
connections reused per instance (most recently used first, so a few stay warm), `TCP_NODELAY`,
responses framed by Content-Length, chunked encoding or the end of the connection, parsed by
`httptools` (the C parser uvicorn uses; it comes with `uvicorn[standard]`).

It sits on an asyncio `Protocol` (the layer under asyncio streams) rather than on a
`StreamReader`: received bytes go straight into the parser and a request costs one future,
which measurably trims the gateway's CPU per request.

The errors say whether the request may be sent elsewhere: `ConnectFailed` and
`ClosedBeforeResponse` happened before the container answered a single byte, so the caller may
retry on another instance; `BadResponse` happened after, and must not be retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from dataclasses import dataclass
from typing import cast

import httptools

from endpoints.gateway.directory import Instance

MAX_IDLE_PER_INSTANCE = 64
IDLE_SECONDS = 30.0  # an idle connection older than this is closed rather than reused
SWEEP_SECONDS = 10.0


class UpstreamError(Exception):
    pass


class ConnectFailed(UpstreamError):
    """The instance refused (or could not take) a new connection."""


class ClosedBeforeResponse(UpstreamError):
    """The connection broke after the request was (partly) sent, before any response byte."""


class BadResponse(UpstreamError):
    """The container broke the connection mid-answer, answered garbage, or too much."""


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    body: bytes
    content_type: bytes | None
    custom_attributes: bytes | None


class _Exchange:
    """One request's answer being received: the httptools callbacks and the waiting future."""

    __slots__ = (
        "body",
        "body_size",
        "close",
        "complete",
        "content_type",
        "custom_attributes",
        "framed",
        "headers_done",
        "limit",
        "parser",
        "received",
        "waiter",
    )

    def __init__(self, waiter: asyncio.Future[None], limit: int) -> None:
        self.waiter = waiter
        self.parser = httptools.HttpResponseParser(self)
        self.limit = limit
        self.received = False
        self.body: list[bytes] = []
        self.body_size = 0
        self.complete = False
        self.headers_done = False
        self.framed = False  # Content-Length or chunked: the end is known without EOF
        self.close = False  # the container said `Connection: close`
        self.content_type: bytes | None = None
        self.custom_attributes: bytes | None = None

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        if lowered == b"content-type":
            self.content_type = value
        elif lowered == b"x-amzn-sagemaker-custom-attributes":
            self.custom_attributes = value
        elif lowered in (b"content-length", b"transfer-encoding"):
            self.framed = True
        elif lowered == b"connection" and b"close" in value.lower():
            self.close = True

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        if self.body_size <= self.limit:
            self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True

    # fed by the protocol
    def feed(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            self.fail(BadResponse(f"the model answered invalid HTTP: {error}"))
            return
        if self.body_size > self.limit:
            self.fail(BadResponse(f"the model's answer exceeds {self.limit} bytes"))
        elif self.complete and not self.waiter.done():
            self.waiter.set_result(None)

    def ended(self, error: Exception | None) -> None:
        """The connection closed (cleanly when `error` is None)."""
        if self.waiter.done():
            return
        if error is None and self.headers_done and not self.framed:
            self.complete = True  # an answer delimited by the end of the connection
            self.waiter.set_result(None)
        elif self.received:
            self.fail(BadResponse(f"the model's connection broke in mid-answer ({error})"))
        else:
            self.fail(ClosedBeforeResponse(f"connection closed before an answer ({error})"))

    def fail(self, error: UpstreamError) -> None:
        if not self.waiter.done():
            self.waiter.set_exception(error)

    def response(self) -> UpstreamResponse:
        body = self.body
        return UpstreamResponse(
            status=self.parser.get_status_code(),
            body=body[0] if len(body) == 1 else b"".join(body),
            content_type=self.content_type,
            custom_attributes=self.custom_attributes,
        )

    def keep_alive(self) -> bool:
        # (llhttp's should_keep_alive() is only meaningful inside its callbacks.)
        return self.complete and not self.close and self.parser.get_http_version() == "1.1"


class Connection(asyncio.Protocol):
    """One TCP connection to an instance, carrying one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.exchange: _Exchange | None = None
        self.closed = False
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # asyncio and uvloop set it already; say it once more rather than depend on that.
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self.exchange is None:  # nothing asked: a confused server; never reuse this one
            self.close()
            return
        self.exchange.feed(data)

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.exchange is not None:
            self.exchange.ended(exc)

    def usable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def send(self, request: bytes, body: bytes, limit: int) -> _Exchange:
        if self.closed or self.transport is None:
            # Closed between leaving the pool and now: a write would vanish without an error.
            raise ClosedBeforeResponse("connection closed while idle")
        exchange = _Exchange(asyncio.get_running_loop().create_future(), limit)
        self.exchange = exchange
        try:
            self.transport.write(request + body if len(body) < 65536 else request)
            if len(body) >= 65536:
                self.transport.write(body)  # no copy of a large body; the transport buffers it
            await exchange.waiter
        finally:
            self.exchange = None
        return exchange


async def connect(instance: Instance) -> Connection:
    loop = asyncio.get_running_loop()
    try:
        _, connection = await loop.create_connection(Connection, instance.host, instance.port)
    except OSError as error:
        raise ConnectFailed(f"{instance.hostport.decode()}: {error}") from error
    return connection


class Pool:
    """Idle kept-alive connections per instance. One per event loop (transports belong to one)."""

    def __init__(self) -> None:
        self._idle: dict[int, list[Connection]] = {}
        self._swept_at = time.monotonic()

    async def exchange(
        self, instance: Instance, request: bytes, body: bytes, *, response_limit: int
    ) -> UpstreamResponse:
        """Send one request (`request` is the head; `body` follows it) and read the answer.

        A kept-alive connection the container closed while idle is noticed here and the
        request goes once more on a fresh connection: that is routine, not a sick instance.
        """
        connection = self._acquire(instance.id)
        if connection is not None:
            try:
                return await self._send(instance, connection, request, body, response_limit)
            except ClosedBeforeResponse:
                self.discard(instance.id)  # its siblings are most likely stale as well
        connection = await connect(instance)
        return await self._send(instance, connection, request, body, response_limit)

    def discard(self, instance_id: int) -> None:
        for connection in self._idle.pop(instance_id, ()):
            connection.close()

    def close(self) -> None:
        for instance_id in list(self._idle):
            self.discard(instance_id)

    async def _send(
        self,
        instance: Instance,
        connection: Connection,
        request: bytes,
        body: bytes,
        response_limit: int,
    ) -> UpstreamResponse:
        keep = False
        try:
            exchange = await connection.send(request, body, response_limit)
            keep = exchange.keep_alive()
        except ClosedBeforeResponse as error:
            raise ClosedBeforeResponse(f"{instance.hostport.decode()}: {error}") from None
        finally:
            # A timeout (cancellation) or a broken answer leaves the connection in an unknown
            # state: closed, never pooled.
            if keep and connection.usable():
                self._release(instance.id, connection)
            else:
                connection.close()
        return exchange.response()

    def _acquire(self, instance_id: int) -> Connection | None:
        idle = self._idle.get(instance_id)
        while idle:
            connection = idle.pop()
            if connection.usable():
                return connection
            connection.close()
        return None

    def _release(self, instance_id: int, connection: Connection) -> None:
        now = time.monotonic()
        connection.idle_since = now
        idle = self._idle.setdefault(instance_id, [])
        if len(idle) < MAX_IDLE_PER_INSTANCE:
            idle.append(connection)
        else:
            connection.close()
        if now - self._swept_at > SWEEP_SECONDS:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        """Close connections idle too long: those of instances that left the routing table
        (replaced, drained) would otherwise stay open forever."""
        self._swept_at = now
        for instance_id, idle in list(self._idle.items()):
            fresh = [c for c in idle if now - c.idle_since < IDLE_SECONDS and c.usable()]
            for connection in idle:
                if connection not in fresh:
                    connection.close()
            if fresh:
                self._idle[instance_id] = fresh
            else:
                del self._idle[instance_id]
