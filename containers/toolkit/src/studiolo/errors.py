"""What the client raises. Every error is a ``StudioloError``."""

from __future__ import annotations


class StudioloError(Exception):
    """Base of the client's errors."""


class ConfigurationError(StudioloError):
    """The client is not set up to reach a studio (a bad ``STUDIOLO_URL``, no run to use)."""


class ApiError(StudioloError):
    """The studio refused a request (a 4xx answer): resending it cannot help.

    ``field`` names what was wrong (``params.lr``, ``metrics[3].key``), as the studio said.
    """

    def __init__(self, message: str, *, status: int, code: str = "error", field: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.field = field

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status} {self.code})"


class TransportError(StudioloError):
    """The studio could not be reached, or kept failing (5xx, timeouts) through every retry."""


class InvalidInput(StudioloError, ValueError):
    """A value the client can tell is wrong before sending it (a key that is not a string,
    a metric value that is not a number, an unknown status)."""
