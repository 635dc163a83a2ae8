"""The audit log's filter form."""

from __future__ import annotations

from typing import Any, cast

from django import forms

from frontend.forms import CursorField
from studio.accounts.models import Team
from studio.audit.selectors import AuditFilter

AUDIT_PAGE_SIZE = 50


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
    cursor = CursorField()

    def __init__(self, *args: Any, teams: list[Team], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        team_field = cast(forms.ChoiceField, self.fields["team"])
        team_field.choices = [("", "All my teams")] + [(t.slug, t.name) for t in teams]

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
