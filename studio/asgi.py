"""ASGI entry point: the data plane for invocations, Django for the rest of HTTP, Channels
for websockets."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")

from studio.asgi_handler import get_pooled_asgi_application  # noqa: E402

# Django must be set up before anything imports models (the websocket routes do).
django_asgi_app = get_pooled_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from endpoints.gateway import lifespan, with_data_plane  # noqa: E402
from studio.accounts.websocket import TokenAuthMiddlewareStack, origin_checked  # noqa: E402
from studio.forwarded import TrustedProxyHeaders  # noqa: E402
from studio.routing import websocket_urlpatterns  # noqa: E402

# X-Forwarded-For/-Proto of requests and websockets are believed from TRUSTED_PROXIES only.
application = TrustedProxyHeaders(
    ProtocolTypeRouter(
        {
            # POST /endpoints/<name>/invocations never reaches Django (no middleware on the
            # prediction path); every other HTTP request goes to Django unchanged.
            "http": with_data_plane(django_asgi_app),
            "websocket": origin_checked(TokenAuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
            "lifespan": lifespan,
        }
    )
)
