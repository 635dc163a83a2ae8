"""The data plane's own answers: the studio's error shape, without DRF on the hot path."""

from __future__ import annotations

import json


class GatewayError(Exception):
    """A request the gateway answers itself: `{"error": {"code", "message", "field"}}`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers

    def body(self) -> bytes:
        error = {"code": self.code, "message": self.message, "field": self.field}
        return json.dumps({"error": error}).encode()


def invalid(message: str, *, field: str | None = None) -> GatewayError:
    return GatewayError(400, "invalid", message, field=field)


def not_found(name: str) -> GatewayError:
    # The same answer for a missing endpoint and another team's: names must not leak.
    return GatewayError(404, "not_found", f"endpoint {name!r} not found")


def unavailable(message: str) -> GatewayError:
    return GatewayError(503, "unavailable", message)
