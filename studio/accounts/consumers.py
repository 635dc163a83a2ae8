"""The base of every websocket consumer: a socket that stays open only while what let it in
still holds (studio.accounts.grants), and that re-reads what it may see when told to."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.generic.websocket import JsonWebsocketConsumer
from django.utils import timezone

from studio.accounts.grants import (
    CLOSE_UNAUTHENTICATED,
    RECHECK_SECONDS,
    SocketGrant,
    grant_ended,
    grant_from_scope,
)

RECHECK: dict[str, Any] = {"type": "auth.recheck"}


class GrantedConsumer(JsonWebsocketConsumer):
    """A sync JSON consumer whose subclasses call `authorise()` first in `connect`, and
    override `rights_changed()` to re-read what the socket may see (its teams, its job).

    `auth.revoked` closes the socket (4401); `auth.recheck`, sent by the services after a
    change and made up every RECHECK_SECONDS (and at the token's expiry) by the receive
    wrapper below, reads the grant again: closed if it ended, else `rights_changed()`. Both
    run like every handler, in a worker thread: no ORM call in async code, none per event.
    """

    grant: SocketGrant | None = None
    closing: bool = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await super().__call__(scope, _ReceiveOrRecheck(receive, self), send)

    def authorise(self) -> bool:
        """Take the handshake's grant and join its groups; refuse (4401) an anonymous one,
        and one revoked between the handshake's lookup and the joining (its announcement
        went to groups the socket was not in yet)."""
        self.grant = grant_from_scope(self.scope)
        if self.grant is None:
            self.close(code=CLOSE_UNAUTHENTICATED)
            return False
        self.groups: list[str] = []
        self.join(self.grant.groups)
        if grant_ended(self.grant) is not None:
            self.close(code=CLOSE_UNAUTHENTICATED)
            return False
        return True

    def rights_changed(self) -> None:
        """The grant still holds; re-read what it lets the socket see. Default: nothing."""

    def join(self, groups: Iterable[str]) -> None:
        for group in groups:
            async_to_sync(self.channel_layer.group_add)(group, self.channel_name)
            self.groups.append(group)

    def leave(self, groups: Iterable[str]) -> None:
        for group in groups:
            async_to_sync(self.channel_layer.group_discard)(group, self.channel_name)
            self.groups.remove(group)

    def auth_revoked(self, message: dict[str, Any]) -> None:
        self.close(code=CLOSE_UNAUTHENTICATED, reason=message.get("reason"))

    def auth_recheck(self, message: dict[str, Any]) -> None:
        if self.grant is None or self.closing:
            return  # the handshake has not authorised yet, or the socket is going
        reason = grant_ended(self.grant)
        if reason is not None:
            self.close(code=CLOSE_UNAUTHENTICATED, reason=reason)
        else:
            self.rights_changed()

    def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        if self.closing:
            return
        self.closing = True
        super().close(code=code, reason=reason)

    def send(
        self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False
    ) -> None:
        # Events already queued for this socket keep arriving until the client's close
        # handshake ends it; after `close()` they are dropped, not sent.
        if not self.closing:
            super().send(text_data=text_data, bytes_data=bytes_data, close=close)

    def seconds_to_recheck(self) -> float:
        """Until the next made-up recheck: RECHECK_SECONDS, or the token's expiry if sooner.
        Read from the event loop; only looks at the grant, never the database."""
        grant = self.grant
        if self.closing or grant is None or grant.token_expires_at is None:
            return RECHECK_SECONDS
        until_expiry = (grant.token_expires_at - timezone.now()).total_seconds()
        # Just past it, so the check sees it expired; once past, the usual interval.
        return until_expiry + 0.01 if 0 < until_expiry < RECHECK_SECONDS else RECHECK_SECONDS


class _ReceiveOrRecheck:
    """The client's next message, or a made-up `auth.recheck` when the consumer is due one.

    Channels takes the client's messages and the channel layer's as two streams and
    dispatches each as it comes; this wraps the client's. Its pending receive is kept across
    calls (never cancelled by a timeout), so no client message is lost."""

    def __init__(self, receive: Callable[[], Awaitable[Any]], consumer: GrantedConsumer) -> None:
        self._receive = receive
        self._consumer = consumer
        self._pending: asyncio.Future[Any] | None = None
        self._due = asyncio.get_running_loop().time() + RECHECK_SECONDS

    async def __call__(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._receive())
        self._due = min(self._due, loop.time() + self._consumer.seconds_to_recheck())
        try:
            done, _ = await asyncio.wait({self._pending}, timeout=max(0.0, self._due - loop.time()))
        except asyncio.CancelledError:
            self._pending.cancel()
            raise
        if done:
            message = self._pending.result()
            self._pending = None
            return message
        self._due = loop.time() + RECHECK_SECONDS
        return dict(RECHECK)
