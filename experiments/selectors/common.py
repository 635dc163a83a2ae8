"""What every experiments selector shares: the reader, the lifecycle views, page tokens and
their checks."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from experiments.models import Lifecycle
from experiments.validation import INT64_MAX, INT64_MIN
from studio.errors import ValidationError

User = AbstractBaseUser | AnonymousUser

MAX_SEARCH_RESULTS = 50_000  # MLflow's limit for one page of search-runs


class ViewType:
    ACTIVE_ONLY = "ACTIVE_ONLY"
    DELETED_ONLY = "DELETED_ONLY"
    ALL = "ALL"
    values = (ACTIVE_ONLY, DELETED_ONLY, ALL)


def lifecycle_filter(view: str) -> dict[str, str]:
    if view not in ViewType.values:
        raise ValidationError(
            f"view_type: expected one of {', '.join(ViewType.values)}", field="view_type"
        )
    if view == ViewType.ALL:
        return {}
    return {"lifecycle": Lifecycle.ACTIVE if view == ViewType.ACTIVE_ONLY else Lifecycle.DELETED}


# --- page tokens ----------------------------------------------------------------------------


def encode_token(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()


def decode_token(token: str | None) -> dict[str, Any]:
    if not token:
        return {}
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise ValidationError(
            "page_token: not a token this server issued", field="page_token"
        ) from None
    if not isinstance(data, dict):
        raise ValidationError("page_token: not a token this server issued", field="page_token")
    return data


# Past any table's size, and far from the database's integer limit when a page is added.
MAX_OFFSET = 2**53


def page_offset(token: str | None) -> int:
    offset = decode_token(token).get("offset", 0)
    if not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
        raise ValidationError("page_token: not a token this server issued", field="page_token")
    return offset


def int64(value: Any) -> int:
    """An id or a cursor's integer: within the columns' 64 bits (a database refuses more)."""
    number = int(value)
    if not INT64_MIN <= number <= INT64_MAX:
        raise ValueError(number)
    return number


@dataclass(frozen=True)
class Page[T]:
    items: list[T]
    next_page_token: str | None


def bad_token() -> ValidationError:
    return ValidationError("page_token: not a token this server issued", field="page_token")
