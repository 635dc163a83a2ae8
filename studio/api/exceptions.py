"""One error shape for the whole REST API: {"error": {"code", "message", "field"}}."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from studio.errors import StudioloError

log = logging.getLogger(__name__)


def _first_field_error(detail: Any, path: str = "") -> tuple[str | None, str]:
    """Flatten DRF's nested validation errors to the first (field, message)."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = key if key != "non_field_errors" else ""
            field, message = _first_field_error(
                value, f"{path}.{name}" if path and name else path or name
            )
            return field, message
    if isinstance(detail, list) and detail:
        return _first_field_error(detail[0], path)
    return (path or None), str(detail)


def error_response(
    *, status_code: int, code: str, message: str, field: str | None = None
) -> Response:
    return Response(
        {"error": {"code": code, "message": message, "field": field}}, status=status_code
    )


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, StudioloError):
        return error_response(
            status_code=exc.status, code=exc.code, message=exc.message, field=exc.field
        )
    if isinstance(exc, Http404):
        return error_response(status_code=404, code="not_found", message=str(exc) or "not found")
    # Django's own limits on what it reads (a form body over DATA_UPLOAD_MAX_MEMORY_SIZE,
    # too many fields in a query string): its HTML 400 page otherwise.
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        message = f"body: a request body holds at most {limit} bytes"
        return error_response(status_code=413, code="too_large", message=message, field="body")
    if isinstance(exc, SuspiciousOperation):
        return error_response(status_code=400, code="bad_request", message=str(exc))
    if isinstance(exc, exceptions.ValidationError):
        field, message = _first_field_error(exc.detail)
        text = f"{field}: {message}" if field else message
        return error_response(status_code=400, code="invalid", message=text, field=field)
    response = drf_exception_handler(exc, context)
    if response is None and not settings.DEBUG:
        # A bug, not the caller's fault: the traceback goes to the log under an id the caller
        # can quote, and the caller gets the API's shape rather than Django's HTML page.
        incident = uuid.uuid4().hex[:12]
        log.error("unhandled error in the API (incident %s)", incident, exc_info=exc)
        return error_response(
            status_code=500,
            code="internal_error",
            message=f"internal error (incident {incident}); the server's log has the details",
        )
    if response is not None and isinstance(exc, exceptions.APIException):
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else "error"
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        response.data = {"error": {"code": code, "message": detail, "field": None}}
    return response
