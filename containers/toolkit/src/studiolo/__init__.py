"""Studiolo's tracking client (standard library only): ``studiolo.start_run(...)``.

See ``studiolo.client`` for the whole story; the names below are the public API.
"""

from __future__ import annotations

from studiolo._http import RetryPolicy
from studiolo.client import Client, Run, start_run
from studiolo.errors import (
    ApiError,
    ConfigurationError,
    InvalidInput,
    StudioloError,
    TransportError,
)

__version__ = "0.1.0"

__all__ = [
    "ApiError",
    "Client",
    "ConfigurationError",
    "InvalidInput",
    "RetryPolicy",
    "Run",
    "StudioloError",
    "TransportError",
    "start_run",
]
