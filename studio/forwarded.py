"""Believing a reverse proxy's X-Forwarded-For and X-Forwarded-Proto, from it alone.

Behind a TLS proxy every connection comes from the proxy: the client's address and whether it
spoke HTTPS arrive in headers that anyone else could send too. They are believed only from the
addresses in TRUSTED_PROXIES (uvicorn runs with --no-proxy-headers, so it believes nobody by
itself): then the request's client address (login throttling, the audit log) is the right-most
address the proxy did not vouch for, and its scheme is the proxy's (HTTPS: HSTS, Secure
cookies, CSRF's origin check). The parsing is uvicorn's own middleware.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware


class TrustedProxyHeaders:
    """ASGI middleware: uvicorn's ProxyHeadersMiddleware for the configured proxies only.

    Settings are read per connection (a dictionary lookup), so tests can change them."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._proxies: list[str] = []
        self._middleware: ProxyHeadersMiddleware | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        proxies = list(settings.TRUSTED_PROXIES)
        if not proxies or scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if self._middleware is None or proxies != self._proxies:
            self._middleware = ProxyHeadersMiddleware(self.app, trusted_hosts=proxies)
            self._proxies = proxies
        await self._middleware(scope, receive, send)
