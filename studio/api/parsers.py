"""Reading a request's JSON body, for DRF's views and the MLflow API alike: at most
DATA_UPLOAD_MAX_MEMORY_SIZE bytes (413 past it, whatever the Content-Length said), and any
body that is not JSON, or is nested deeper than MAX_JSON_DEPTH, is a 400 naming `body`.

Python's JSON decoder recurses per nesting level: `[` repeated 100,000 times raised
RecursionError (a 500), and a valid document a few hundred levels deep passed the decoder
only to overflow the stack of whatever walked it next. No request of this API nests more
than a handful of levels.
"""

from __future__ import annotations

import json
from typing import IO, Any

from django.conf import settings
from django.http import HttpRequest
from rest_framework.parsers import BaseParser

from studio.errors import PayloadTooLarge, ValidationError

MAX_JSON_DEPTH = 64


def _too_large(size: int, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"body: {size} bytes or more; a request body holds at most {limit} bytes",
        field="body",
    )


def read_body(stream: IO[bytes] | HttpRequest, meta: dict[str, Any]) -> bytes:
    """The body, read only up to the limit: a Content-Length over it is refused before
    anything is read, and a body longer than it said is cut off one byte past the limit."""
    limit: int | None = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    try:
        declared = int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if limit is not None and declared > limit:
        raise _too_large(declared, limit)
    data = stream.read(limit + 1) if limit is not None else stream.read()
    if limit is not None and len(data) > limit:
        raise _too_large(len(data), limit)
    return data


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _deeper_than(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return False


def parse_json(data: bytes, *, strict: bool = True) -> Any:
    """`strict`: NaN and Infinity, which JSON lacks, are refused (DRF's rule)."""
    try:
        value = json.loads(data, parse_constant=_refuse_constant if strict else None)
    except RecursionError:
        raise ValidationError(
            f"body: JSON nested more than {MAX_JSON_DEPTH} levels deep", field="body"
        ) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, a refused constant
        raise ValidationError(f"body: not valid JSON ({exc})", field="body") from None
    # Each level opens with a bracket: fewer brackets than the limit need no walk.
    openers = data.count(b"[") + data.count(b"{")
    if openers > MAX_JSON_DEPTH and _deeper_than(value, MAX_JSON_DEPTH):
        raise ValidationError(
            f"body: JSON nested more than {MAX_JSON_DEPTH} levels deep", field="body"
        )
    return value


class JSONParser(BaseParser):
    """DRF's JSON parser with the rules above."""

    media_type = "application/json"

    def parse(
        self, stream: IO[bytes], media_type: str | None = None, parser_context: Any = None
    ) -> Any:
        request = (parser_context or {}).get("request")
        meta = request.META if request is not None else {}
        return parse_json(read_body(stream, meta))
