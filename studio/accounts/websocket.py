"""Websocket authentication: the session cookie (browsers) or a bearer token (CLI)."""

from __future__ import annotations

from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.security.websocket import OriginValidator
from django.conf import settings

from studio.accounts.services import token_lookup


class BearerTokenMiddleware(BaseMiddleware):
    """Replaces the session user when an `Authorization: Bearer` header is present, and
    notes the token (`auth_token`: its id and expiry) for the socket's grant."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                keyword, _, secret = value.decode("latin-1").partition(" ")
                if keyword.lower() == "bearer":
                    token = await database_sync_to_async(token_lookup)(secret.strip())
                    if token is None:
                        scope = {**scope, "user": None}
                    else:
                        noted = {"id": token.pk, "expires_at": token.expires_at}
                        scope = {**scope, "user": token.user, "auth_token": noted}
                break
        return await super().__call__(scope, receive, send)


def TokenAuthMiddlewareStack(inner: Any) -> Any:  # noqa: N802 - mirrors channels' naming
    return AuthMiddlewareStack(BearerTokenMiddleware(inner))


class BrowserOriginValidator(OriginValidator):
    """Cross-site websocket hijacking protection that lets non-browser clients in.

    Browsers always send `Origin`, so a page on another site is refused unless its origin is
    one of ALLOWED_HOSTS. The CLI and scripts send no `Origin` and authenticate with a bearer
    token, which a foreign page cannot attach: there is nothing to protect against there.
    """

    def valid_origin(self, parsed_origin: Any) -> bool:
        if parsed_origin is None:
            return True
        return bool(super().valid_origin(parsed_origin))


def origin_checked(inner: Any) -> BrowserOriginValidator:
    allowed = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    return BrowserOriginValidator(inner, allowed)
