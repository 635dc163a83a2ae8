"""Forms of the UI. They parse and shape input; every rule lives in the services."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timedelta
from typing import Any, cast

from django import forms
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from studio.accounts.models import Team
from studio.accounts.roles import Role
from studio.audit.selectors import AuditFilter
from studio.errors import StudioloError

AUDIT_PAGE_SIZE = 50


def add_service_error(form: forms.Form, error: StudioloError) -> None:
    """Show a service's error on the field it names, or above the form."""
    field = error.field if error.field in form.fields else None
    form.add_error(field, error.message)


# --- tokens ----------------------------------------------------------------------------


class TokenCreateForm(forms.Form):
    name = forms.CharField(
        max_length=100, widget=forms.TextInput(attrs={"placeholder": "e.g. laptop CLI"})
    )
    expires_in_days = forms.IntegerField(
        label="Expires in (days)",
        required=False,
        min_value=1,
        max_value=3650,
        help_text="Leave empty for a token that does not expire.",
        widget=forms.NumberInput(attrs={"placeholder": "never"}),
    )

    def expires_at(self) -> datetime | None:
        days = self.cleaned_data.get("expires_in_days")
        return timezone.now() + timedelta(days=days) if days else None


# --- team ------------------------------------------------------------------------------


class MemberAddForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)


class RoleChangeForm(forms.Form):
    membership = forms.IntegerField(widget=forms.HiddenInput)
    role = forms.ChoiceField(choices=Role.choices)


# --- audit -----------------------------------------------------------------------------


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


class _DateTimeLocal(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self) -> None:
        super().__init__(format="%Y-%m-%dT%H:%M")


class AuditFilterForm(forms.Form):
    team = forms.ChoiceField(required=False)
    actor = forms.CharField(required=False, max_length=150)
    action = forms.CharField(
        required=False,
        max_length=64,
        widget=forms.TextInput(attrs={"placeholder": "token. or token.created"}),
        help_text='Exact, or a prefix ending in "."',
    )
    object_type = forms.CharField(
        required=False,
        max_length=64,
        widget=forms.TextInput(attrs={"placeholder": "accounts.apitoken"}),
    )
    since = forms.DateTimeField(required=False, label="Since (UTC)", widget=_DateTimeLocal())
    until = forms.DateTimeField(required=False, label="Until (UTC)", widget=_DateTimeLocal())
    cursor = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, teams: list[Team], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        team_field = cast(forms.ChoiceField, self.fields["team"])
        team_field.choices = [("", "All my teams")] + [(t.slug, t.name) for t in teams]

    def clean_cursor(self) -> tuple[datetime, int] | None:
        cursor: str = self.cleaned_data.get("cursor") or ""
        if not cursor:
            return None
        try:
            return decode_cursor(cursor)
        except ValueError as exc:
            raise forms.ValidationError("This page link is no longer valid.") from exc

    def audit_filter(self) -> AuditFilter:
        data = self.cleaned_data
        return AuditFilter(
            team=data.get("team") or None,
            actor=(data.get("actor") or "").strip() or None,
            action=(data.get("action") or "").strip() or None,
            object_type=(data.get("object_type") or "").strip() or None,
            since=data.get("since"),
            until=data.get("until"),
        )
