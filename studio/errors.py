"""Domain errors shared by every app.

Services raise these; the API exception handler, the UI and the CLI turn them into a
4xx/5xx answer. Nothing outside the services decides what counts as bad input.
"""

from __future__ import annotations


class StudioloError(Exception):
    """Base of every domain error; `code` is a stable machine-readable name."""

    code = "error"
    status = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ValidationError(StudioloError):
    code = "invalid"
    status = 400


class NotFound(StudioloError):
    code = "not_found"
    status = 404


class PermissionDenied(StudioloError):
    code = "permission_denied"
    status = 403


class Conflict(StudioloError):
    code = "conflict"
    status = 409


class PayloadTooLarge(StudioloError):
    code = "too_large"
    status = 413


class Unavailable(StudioloError):
    code = "unavailable"
    status = 503
