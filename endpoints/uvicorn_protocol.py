"""The data plane's fast path inside uvicorn: an invocation answered from the connection.

`studiolo web` runs uvicorn with `--http endpoints.uvicorn_protocol:DataPlaneHttpProtocol`:
uvicorn's own httptools protocol, except that a plain invocation skips the ASGI layers (a task
per request, the scope, the proxy-headers middleware, Channels' router, two response messages
and two writes) and is answered by `DataPlane.respond` with a single write. On this 2-core
machine that is about half of the data plane's CPU per request (docs/benchmarks.md).

Plain means: `POST /endpoints/<name>/invocations` over HTTP/1.1 with a `Content-Length` of at
most 6 MiB, no `Transfer-Encoding`, `Expect` or `Upgrade`, no query string or percent-encoding,
and no earlier request of the connection still being answered. Anything else takes the ASGI path
(`app.with_data_plane`), which gives the same answers: both call `DataPlane.respond`, and the
tests run the same requests through both. Under any other ASGI server only the ASGI path exists.

It lives outside `endpoints.gateway` because uvicorn imports the protocol before the application,
that is before Django is set up, and that package imports models; it imports them on first use.

A pipelined request behind a fast one is kept in order by uvicorn's own pipeline: while a fast
request is answered it stands as the connection's current cycle (unfinished), so uvicorn queues
what follows and starts it when the fast answer is written.
"""

from __future__ import annotations

import logging
import re
from functools import cache
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

if TYPE_CHECKING:
    from endpoints.gateway.app import DataPlane

logger = logging.getLogger(__name__)

# Endpoint names are letters, digits and hyphens (`endpoints.services.models.check_name`);
# any other path, even a valid one in another spelling, is left to the ASGI path.
_FAST_PATH = re.compile(rb"^/endpoints/([A-Za-z0-9-]{1,63})/invocations$")


class _Event:
    """uvicorn sets the current cycle's `message_event` when the client disconnects."""

    __slots__ = ()

    def set(self) -> None:
        pass


class FastRequest:
    """One fast invocation; while it is answered, it is also the connection's current cycle,
    so it carries the attributes uvicorn reads and writes there."""

    __slots__ = ("body", "disconnected", "headers", "keep_alive", "name", "response_complete")
    message_event = _Event()

    def __init__(self, name: str, headers: list[tuple[bytes, bytes]], keep_alive: bool) -> None:
        self.name = name
        self.headers = headers
        self.body: list[bytes] = []
        self.keep_alive = keep_alive  # uvicorn clears it on shutdown: close after answering
        self.response_complete = False
        self.disconnected = False

    async def read_body(self) -> bytes:
        return self.body[0] if len(self.body) == 1 else b"".join(self.body)


def _data_plane() -> DataPlane:
    # Imported on first use: uvicorn loads this class before the application (and Django).
    from endpoints.gateway.app import data_plane

    return data_plane


class DataPlaneHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the fast path (`--http UVICORN_HTTP`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._receiving: FastRequest | None = None  # a fast request whose body is arriving

    # -- httptools callbacks (uvicorn's, for every request that is not fast) -----------------

    def on_headers_complete(self) -> None:
        fast = self._fast_request()
        if fast is None:
            super().on_headers_complete()
            return
        self._receiving = fast
        self.cycle = fast  # type: ignore[assignment]  # see the module's docstring

    def on_body(self, body: bytes) -> None:
        if self._receiving is not None:
            self._receiving.body.append(body)  # bounded: Content-Length is at most 6 MiB
        else:
            super().on_body(body)

    def on_message_complete(self) -> None:
        fast = self._receiving
        if fast is None:
            super().on_message_complete()
            return
        self._receiving = None
        task = self.loop.create_task(self._answer(fast))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)  # uvicorn waits for these at shutdown

    # -- the fast path -------------------------------------------------------------------------

    def _fast_request(self) -> FastRequest | None:
        parser = self.parser
        if (
            self.expect_100_continue
            or self.limit_concurrency is not None
            or (self.cycle is not None and not self.cycle.response_complete)
            or parser.get_method() != b"POST"
            or parser.get_http_version() != "1.1"
            or parser.should_upgrade()
        ):
            return None
        found = _FAST_PATH.match(self.url)
        if found is None:
            return None
        length = None
        for name, value in self.headers:
            if name == b"content-length":
                if length is not None:
                    return None  # let the ASGI path deal with an odd request
                length = value
            elif name == b"transfer-encoding":
                return None
        if length is None or not length.isdigit() or int(length) > _max_payload():
            return None
        return FastRequest(found.group(1).decode(), self.headers, parser.should_keep_alive())

    async def _answer(self, fast: FastRequest) -> None:
        try:
            status, headers, body = await _data_plane().respond(
                fast.name, "POST", fast.headers, fast.read_body
            )
        except Exception:  # respond answers its own failures; this is a last resort
            logger.exception("gateway: fast path failed for endpoint %r", fast.name)
            self.transport.close()
            return
        finally:
            fast.response_complete = True
        if self.transport.is_closing():
            return  # the client left
        keep_alive = fast.keep_alive
        parts = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:  # date, server
            parts += (name, b": ", value, b"\r\n")
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        parts.append(b"content-length: %d\r\n" % len(body))
        if not keep_alive:
            parts.append(b"connection: close\r\n")
        parts += (b"\r\n", body)
        self.transport.write(b"".join(parts))
        if keep_alive:
            self.on_response_complete()  # uvicorn's: resume a queued request or arm keep-alive
        else:
            self.server_state.total_requests += 1
            self.transport.close()


# uvicorn's `--http` (or `Config(http=...)`) for this protocol.
UVICORN_HTTP = f"{__name__}:{DataPlaneHttpProtocol.__name__}"


@cache
def _max_payload() -> int:
    from endpoints.gateway.app import MAX_PAYLOAD_BYTES

    return MAX_PAYLOAD_BYTES
