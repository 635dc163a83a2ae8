"""What the UI's forms share: service errors put on their fields, and the cursors of keyset
paged lists (the audit log, the jobs list). Each domain's forms are in its sub-package; they
parse and shape input, every rule lives in the services."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from django import forms
from django.http import HttpRequest
from django.utils.dateparse import parse_datetime

from studio.errors import StudioloError


def add_service_error(form: forms.Form, error: StudioloError) -> None:
    """Show a service's error on the field it names, or above the form."""
    field = error.field if error.field in form.fields else None
    form.add_error(field, error.message)


# --- keyset paging ---------------------------------------------------------------------


def encode_cursor(created_at: datetime, event_id: int) -> str:
    raw = f"{created_at.isoformat()}|{event_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The (created_at, id) of the last event of the previous page; ValueError if garbled."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("bad cursor") from exc
    when, _, event_id = raw.partition("|")
    created_at = parse_datetime(when)
    if created_at is None or not event_id.isdigit():
        raise ValueError("bad cursor")
    return created_at, int(event_id)


def without_cursor(request: HttpRequest) -> str:
    """This page's address without its cursor: the newest page of the same list."""
    query = request.GET.copy()
    query.pop("cursor", None)
    return f"?{query.urlencode()}" if query else request.path


class CursorField(forms.CharField):
    """A list's hidden page cursor: the (created_at, id) of the previous page's last row, or
    None on the first page; a garbled one is a field error, not a 500."""

    def __init__(self) -> None:
        super().__init__(required=False, widget=forms.HiddenInput)

    def clean(self, value: Any) -> tuple[datetime, int] | None:
        cursor: str = super().clean(value) or ""
        if not cursor:
            return None
        try:
            return decode_cursor(cursor)
        except ValueError as exc:
            raise forms.ValidationError("This page link is no longer valid.") from exc
