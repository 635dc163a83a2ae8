"""The data plane's own answers: the studio's error shape, without DRF on the hot path.

Every error answer also carries `x-amzn-ErrorType: <Code>`, the header AWS SDKs read first
for an error's code (botocore's rest-json parser takes it before the body and keeps what is
left of `:`), so that a sagemaker-runtime client raises the exception SageMaker would:
`ValidationError`, `ModelError`, `ServiceUnavailable`, `InternalFailure` are the shapes of
InvokeEndpoint's errors in botocore's `sagemaker-runtime/2017-05-13/service-2.json`; the
authentication ones are AWS's common errors.
"""

from __future__ import annotations

import json

ERROR_TYPE_HEADER = b"x-amzn-ErrorType"
# The model container answered 4xx/5xx (passed on untouched), broke the connection or sent
# invalid HTTP, or did not answer in time: SageMaker calls all of these ModelError.
MODEL_ERROR = "ModelError"

# The studio's error code -> the SageMaker runtime's error code.
ERROR_TYPES = {
    "invalid": "ValidationError",
    # SageMaker answers an unknown endpoint with ValidationError ("Endpoint x of account y
    # not found."); SDK users catch that code for it.
    "not_found": "ValidationError",
    "payload_too_large": "ValidationError",
    "not_authenticated": "UnrecognizedClientException",
    "permission_denied": "AccessDeniedException",
    "method_not_allowed": "UnknownOperationException",
    "bad_gateway": MODEL_ERROR,
    "timeout": MODEL_ERROR,
    "unavailable": "ServiceUnavailable",
    "error": "InternalFailure",
}


class GatewayError(Exception):
    """A request the gateway answers itself: `{"error": {"code", "message", "field"},
    "message"}` (the studio's shape, plus the message where AWS SDKs look for it), with
    the SageMaker error type of `code` (or `error_type` when one code covers several)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: tuple[tuple[bytes, bytes], ...] = (),
        error_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers
        self.error_type = error_type or ERROR_TYPES[code]

    def body(self) -> bytes:
        error = {"code": self.code, "message": self.message, "field": self.field}
        # `message` once more at the top: where AWS SDKs read an error's text (botocore's
        # rest-json parser looks for `message`/`Message` in the body), so a sagemaker-runtime
        # client shows it too.
        return json.dumps({"error": error, "message": self.message}).encode()

    def response_headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"content-type", b"application/json"),
            (ERROR_TYPE_HEADER, self.error_type.encode()),
            *self.headers,
        ]


def invalid(message: str, *, field: str | None = None) -> GatewayError:
    return GatewayError(400, "invalid", message, field=field)


def not_found(name: str) -> GatewayError:
    # The same answer for a missing endpoint and another team's: names must not leak.
    return GatewayError(404, "not_found", f"endpoint {name!r} not found")


def unavailable(message: str) -> GatewayError:
    return GatewayError(503, "unavailable", message)
