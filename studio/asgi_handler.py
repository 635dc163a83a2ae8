"""Django under ASGI, one thread hop per request.

Django's own ASGI handler runs the middleware chain in async mode. Every Studiolo view is
sync, and so is every middleware in settings.MIDDLEWARE (WhiteNoise cannot run async), so in
that mode a request crosses between the event loop and a thread twice per middleware (each
`MiddlewareMixin.__acall__` wraps `process_request` and `process_response` in
`sync_to_async`), and each request starts a thread of its own (`ThreadSensitiveContext`),
which opens a database connection of its own. That machinery cost more CPU than the view
on the tracking API's hot path (a 1,000-point `log-batch`).

`PooledASGIHandler` keeps Django's ASGI request parsing and response sending and runs the
whole request (started signal, the sync middleware chain and view, finished signal) in one
call on a fixed pool of threads, as a WSGI server would: the middleware behaves exactly as
under WSGI, and each pool thread keeps its database connection between requests
(`CONN_MAX_AGE`, checked at each request's start and end by Django's own signal handlers,
which run in the pool thread). An async view, should one appear, still works: Django's sync
path runs it with `async_to_sync`, holding one pool thread meanwhile.

Several pool threads also let one process serve a page's parallel requests (the run page's
series) at once while one of them waits on the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers import base
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.db import connections
from django.http import FileResponse, HttpRequest
from django.http.response import HttpResponseBase
from django.urls import set_script_prefix


class PooledASGIHandler(ASGIHandler):
    def __init__(self, threads: int) -> None:
        base.BaseHandler.__init__(self)
        self.load_middleware(is_async=False)
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None

    @property
    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="django")
        return self._pool

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django serves HTTP here, not {scope['type']}")
        await self.handle(scope, receive, send)

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            set_script_prefix(get_script_prefix(scope))
            response = await sync_to_async(
                self._respond, thread_sensitive=False, executor=self.pool
            )(scope, body_file)
            try:
                await self._send_or_abort(response, receive, send)
            finally:
                if response.streaming:
                    # Sent now; its closers (and the finished signal) run in a pool thread.
                    await sync_to_async(
                        response.close, thread_sensitive=False, executor=self.pool
                    )()
        finally:
            body_file.close()

    def _respond(self, scope: dict[str, Any], body_file: Any) -> HttpResponseBase:
        """The whole request as WSGIHandler runs it, in a pool thread. A response that is not
        streamed is complete here, so it is closed here too (its closers and
        `request_finished`, which returns the thread's database connection to its age
        check), before it is sent."""
        signals.request_started.send(sender=self.__class__, environ=scope)
        request, error_response = self.create_request(scope, body_file)
        response = self._response_for(request) if request is not None else error_response
        if response is None:  # create_request returns a request or an error response
            raise RuntimeError("no request and no error response")
        if not response.streaming:
            response.close()
        return response

    def _response_for(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        response._handler_class = self.__class__  # type: ignore[attr-defined]
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size
            if not response.is_async:
                # Django sends a sync iterator under ASGI by reading it whole into a list
                # first: a multi-gigabyte artifact would sit in memory. Its blocks are read
                # one at a time in a pool thread instead.
                blocks = cast(Iterator[bytes], response.streaming_content)
                response.streaming_content = self._blocks(iter(blocks))
        return response

    async def _blocks(self, blocks: Iterator[bytes]) -> AsyncIterator[bytes]:
        def read() -> bytes | None:
            return next(blocks, None)

        pooled = sync_to_async(read, thread_sensitive=False, executor=self.pool)
        while (block := await pooled()) is not None:
            yield block

    async def _send_or_abort(self, response: HttpResponseBase, receive: Any, send: Any) -> None:
        """Send the response; a client that goes away meanwhile cancels the sending."""

        class Sent(Exception):
            pass

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.listen_for_disconnect(receive))
                await self.send_response(response, send)
                raise Sent
        except* (Sent, RequestAborted):
            pass

    def close_connections(self) -> None:
        """Stop the pool, closing each thread's database connections (tests: before the test
        database is dropped)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        threads = list(getattr(pool, "_threads", ()))
        if threads:
            # One task per thread, each held until all have started, so every thread runs one.
            barrier = threading.Barrier(len(threads))

            def close() -> None:
                # A broken barrier (a thread that did not start in time) still closes this
                # thread's connections.
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait(timeout=5)
                connections.close_all()

            for _ in threads:
                pool.submit(close)
        pool.shutdown(wait=True)


def get_pooled_asgi_application() -> PooledASGIHandler:
    """Like `django.core.asgi.get_asgi_application`, pooled (`WEB_THREADS` threads)."""
    import django

    django.setup(set_prefix=False)
    return PooledASGIHandler(threads=settings.WEB_THREADS)
