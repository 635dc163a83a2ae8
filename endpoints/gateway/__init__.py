"""The data plane: `POST /endpoints/<name>/invocations` on the studio's own port.

`studio.asgi` mounts `with_data_plane` in front of Django. See `app` for the request path and
its answers, `directory` for what is cached and for how long, `balancer` for instance choice,
`upstream` for the HTTP client, `stats` for the invocation counters.
"""

from __future__ import annotations

from endpoints.gateway import balancer, directory
from endpoints.gateway.app import INVOCATIONS_PATH, MAX_PAYLOAD_BYTES, lifespan, with_data_plane
from endpoints.gateway.directory import AUTH_TTL_SECONDS, ROUTING_TTL_SECONDS
from endpoints.gateway.stats import counters

__all__ = [
    "AUTH_TTL_SECONDS",
    "INVOCATIONS_PATH",
    "MAX_PAYLOAD_BYTES",
    "ROUTING_TTL_SECONDS",
    "flush_now",
    "lifespan",
    "reset",
    "with_data_plane",
]


def flush_now() -> int:
    """Write the invocation counters gathered so far; returns the rows inserted."""
    return counters.flush_now()


def reset() -> None:
    """Forget everything cached in this process (tests): tokens, routes, instance marks and
    unflushed counters; stop the background threads (they start again on demand)."""
    directory.clear_caches()
    directory.shutdown_db_threads()
    balancer.reset()
    counters.stop()
    counters.discard()
